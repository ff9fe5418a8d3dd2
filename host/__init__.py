"""Host side: transports, wire protocol, the Device API and the ``tiersolve`` command."""

from .device import Device, open  # noqa: E402, F401  (tiersolve.host.open(url))

__all__ = ["Device", "open"]
