"""Host side: transports, wire protocol, the Device API and the ``tiersolve`` command."""
