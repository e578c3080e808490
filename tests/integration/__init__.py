"""The integration group: pdumqtt against the real programs (see conftest.py)."""
