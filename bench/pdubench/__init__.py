"""The pdumqtt benchmark: pdumqtt, PDUDaemon and the bare broker, measured in one run.

Not part of the test suite: ``bench/run`` is the entry point. Each module owns one part:
``env`` the venvs, ``procs`` the processes under test and /proc, ``clients`` the load
generators, ``workloads`` the workloads (a)-(e), ``report`` the table and the JSON.
"""
