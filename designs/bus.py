"""The internal register bus: one master (a transport bridge) and register-mapped slaves.

The bus is a single-master, word-addressed, request/acknowledge interface, close to Wishbone
classic with separate read and write strobes. The UART :class:`~tiersolve.designs.bridge.
FrameBridge` and the AXI4-Lite slave master it; the register map of a top-level design is the
slave.

Transfer rules
--------------
* The master starts an access by raising exactly one of ``w_stb`` (write) or ``r_stb`` (read)
  with ``addr`` (and, for a write, ``w_data``) valid. ``w_stb`` and ``r_stb`` are never high
  together.
* The master holds ``addr``, ``w_data`` and the strobe unchanged until the slave raises
  ``ack``. The access completes at the clock edge that ends the cycle in which ``ack`` is high;
  for a read, the master samples ``r_data`` in that same cycle.
* After the completing edge the master may drop the strobe or immediately present the next
  access (back-to-back accesses, one per cycle with a zero-wait-state slave).
* The slave raises ``ack`` only while a strobe is high. It may raise it in the first cycle of
  the access (combinationally from the strobe: zero wait states) or any number of cycles later
  (wait states, e.g. to read a synchronous memory or to hold off a write until a FIFO has
  room). A write takes effect exactly once, at the completing edge; a read has side effects
  (e.g. popping a FIFO) exactly once, at the completing edge.
* ``r_data`` is only meaningful in a cycle where ``r_stb`` and ``ack`` are both high.

A slave that never answers stalls the master; the :class:`~tiersolve.designs.bridge.
FrameBridge` gives up after its ``bus_timeout`` and reports it to the host.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BusSignature", "RegisterBusSignature"]


class BusSignature(wiring.Signature):
    """Base of the bus signatures here: an address width and a data width, compared by value.

    Subclasses set ``_address_width`` and ``_data_width`` before calling
    ``super().__init__(members)``.
    """

    @property
    def address_width(self) -> int:
        return self._address_width

    @property
    def data_width(self) -> int:
        return self._data_width

    def __eq__(self, other):
        return (type(other) is type(self) and other.address_width == self.address_width
                and other.data_width == self.data_width)

    def __hash__(self):
        return hash((type(self), self._address_width, self._data_width))

    def __repr__(self):
        return f"{type(self).__name__}({self._address_width}, {self._data_width})"


class RegisterBusSignature(BusSignature):
    """Signature of the register bus, seen from the master.

    Parameters
    ----------
    address_width : int
        Width of the word address, 1..32.
    data_width : int
        Width of a data word (32 for the UART and AXI4-Lite bridges).

    Members
    -------
    addr : Out(address_width)
        Word address of the access.
    w_data : Out(data_width)
        Write data, valid with ``w_stb``.
    w_stb : Out(1)
        Write access requested.
    r_stb : Out(1)
        Read access requested.
    r_data : In(data_width)
        Read data, valid in the cycle where ``r_stb`` and ``ack`` are high.
    ack : In(1)
        The slave completes the current access at the end of this cycle.
    """

    def __init__(self, address_width: int, data_width: int = 32):
        for name, value, low, high in (("address_width", address_width, 1, 32),
                                       ("data_width", data_width, 1, 64)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{name} must be in {low}..{high}, not {value}")
        self._address_width = address_width
        self._data_width = data_width
        super().__init__({
            "addr": Out(address_width),
            "w_data": Out(data_width),
            "w_stb": Out(1),
            "r_stb": Out(1),
            "r_data": In(data_width),
            "ack": In(1),
        })
