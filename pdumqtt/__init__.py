"""pdumqtt: a power broker for PDUs over MQTT."""

__version__ = "0.1.0"
