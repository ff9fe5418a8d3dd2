"""AXI4-Lite slave that masters the internal register bus, for vendor PCIe bridges.

A PCIe bridge IP (AMD XDMA / QDMA "AXI-Lite master" BAR, LitePCIe, Intel's PCIe hard IP with an
AXI-Lite or Avalon-to-AXI adapter) turns the host's 32-bit memory reads and writes of a BAR
into AXI4-Lite transactions. :class:`AxiLiteBridge` receives them and carries each one out as
one access on the register bus of :mod:`tiersolve.designs.bus`, so the same register map serves
the UART frame bridge and PCIe.

Address mapping
---------------
AXI4-Lite addresses bytes; the register bus addresses 32-bit words. AXI byte address ``a``
reaches bus word ``a >> 2``; the two low address bits are ignored (accesses are whole words,
the host side, :class:`tiersolve.host.pcie.PcieTransport`, only issues aligned 32-bit
accesses). A byte address whose word lies outside the bus (``a >> 2 >= 2**address_width``) is
answered with ``SLVERR`` and no bus access.

Responses
---------
``OKAY``
    The bus access completed (or a write with all strobes low, which writes nothing and
    makes no bus access, as AXI allows).
``SLVERR``
    The address is outside the bus; or a write with some but not all four byte strobes set
    (the register bus has no byte enables, and a read-modify-write would repeat the read side
    effects of data ports, so partial writes are refused, with no bus access); or the bus
    slave did not acknowledge within ``bus_timeout`` cycles (the access is abandoned, a read
    returns 0). The register bus has no error signal, so an address inside the bus that the
    register map does not decode is whatever the register map makes of it.

``EXOKAY`` and ``DECERR`` are never returned.
"""

from __future__ import annotations

import enum

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from tiersolve.gen.checks import check_int, silent_if_refused

from .bus import BusSignature, RegisterBusSignature

__all__ = ["AxiLiteBridge", "AxiLiteSignature", "AxiResponse"]


class AxiResponse(enum.IntEnum):
    """The ``BRESP`` / ``RRESP`` codes of AXI."""

    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class AxiLiteSignature(BusSignature):
    """Signature of an AXI4-Lite interface, seen from the manager (the master).

    The members carry the names of the AXI specification in lower case, so that a flattened
    port (``axi__awaddr`` in the generated Verilog) is recognised by vendor tools.

    Parameters
    ----------
    address_width : int
        Width of ``awaddr`` / ``araddr`` (byte addresses), 3..64.
    data_width : int
        32 or 64; ``wstrb`` has ``data_width // 8`` bits.

    Members
    -------
    awaddr, awprot, awvalid : Out ; awready : In
        Write address channel. ``awprot`` is carried for completeness and ignored by
        :class:`AxiLiteBridge`.
    wdata, wstrb, wvalid : Out ; wready : In
        Write data channel.
    bresp, bvalid : In ; bready : Out
        Write response channel.
    araddr, arprot, arvalid : Out ; arready : In
        Read address channel.
    rdata, rresp, rvalid : In ; rready : Out
        Read data channel.
    """

    def __init__(self, address_width: int, data_width: int = 32):
        check_int("address_width", address_width, 3, 64)
        if data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64 for AXI4-Lite, not {data_width!r}")
        self._address_width = address_width
        self._data_width = data_width
        super().__init__({
            "awaddr": Out(address_width),
            "awprot": Out(3),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata": Out(data_width),
            "wstrb": Out(data_width // 8),
            "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2),
            "bvalid": In(1),
            "bready": Out(1),
            "araddr": Out(address_width),
            "arprot": Out(3),
            "arvalid": Out(1),
            "arready": In(1),
            "rdata": In(data_width),
            "rresp": In(2),
            "rvalid": In(1),
            "rready": Out(1),
        })


class AxiLiteBridge(wiring.Component):
    """AXI4-Lite slave (32-bit data) that carries each transaction out on the register bus.

    The write address and write data channels are independent: either may arrive first, or
    both in the same cycle. Each direction holds one transaction at a time; the next write
    address / data (or read address) is accepted while the previous response waits for
    ``bready`` (``rready``), and is carried out once that response has been taken, so
    responses come back in order and a slow response channel never loses one. When a write and
    a read both wait for the bus, they take turns.

    Parameters
    ----------
    address_width : int
        Width of the register bus word address, 1..32.
    axi_address_width : int or None
        Width of the AXI byte address, at least ``address_width + 2`` and at most 64; ``None``
        (the default) means ``address_width + 2``. Bits above the bus are checked (non-zero
        gives ``SLVERR``): widen the port to catch stray accesses to a large BAR, but keep the
        default and connect only the low bits if the PCIe bridge adds a BAR-to-AXI
        translation offset to the address.
    bus_timeout : int or None
        Cycles the bridge holds a bus strobe without ``ack`` before it abandons the access and
        answers ``SLVERR``; ``None`` waits for ever. Default 2**20 (8.4 ms at 125 MHz, below
        the usual PCIe completion timeout of 50 ms).

    Members
    -------
    axi : In(AxiLiteSignature(axi_address_width))
        The AXI4-Lite slave port (the PCIe bridge is the manager). All outputs are registered
        except ``awready``, ``wready`` and ``arready``, which are inverted holding flags
        (none depends combinationally on an input).
    bus : Out(RegisterBusSignature(address_width))
        Register bus master (rules in :mod:`tiersolve.designs.bus`).

    Reset
    -----
    The ``sync`` domain's reset is active high; AXI's ``ARESETN`` is active low, so drive the
    reset from its inverse. After reset ``bvalid`` and ``rvalid`` are low and nothing is held.

    Timing
    ------
    With a zero-wait-state bus slave: the bus strobe rises in the cycle after the last of the
    AW/W (or AR) handshakes, and ``bvalid`` (``rvalid``) rises in the cycle after that: two
    cycles from the handshake to the response. With a manager that keeps ``bready`` and
    ``rready`` high, back-to-back writes complete one every two cycles, as do back-to-back
    reads; writes that complete without a bus access (errors, empty strobes) take the same
    time. Each wait state of the bus slave adds one cycle.
    """

    @silent_if_refused
    def __init__(self, *, address_width: int = 16, axi_address_width: int | None = None,
                 bus_timeout: int | None = 1 << 20):
        self._address_width = check_int("address_width", address_width, 1, 32)
        if axi_address_width is None:
            axi_address_width = address_width + 2
        self._axi_address_width = check_int("axi_address_width", axi_address_width,
                                             address_width + 2, 64)
        if bus_timeout is not None:
            check_int("bus_timeout", bus_timeout, 1, 1 << 32)
        self._bus_timeout = bus_timeout
        super().__init__({
            "axi": In(AxiLiteSignature(self._axi_address_width)),
            "bus": Out(RegisterBusSignature(address_width)),
        })

    @property
    def address_width(self) -> int:
        return self._address_width

    @property
    def axi_address_width(self) -> int:
        return self._axi_address_width

    @property
    def bus_timeout(self) -> int | None:
        return self._bus_timeout

    def elaborate(self, platform):
        m = Module()
        axi = self.axi
        bus = self.bus
        word_bits = slice(2, 2 + self._address_width)
        above_bus = slice(2 + self._address_width, self._axi_address_width)
        has_bits_above_bus = self._axi_address_width > 2 + self._address_width

        # --- Write: address and data are held independently until both have arrived. --------
        write_address_held = Signal()
        write_address = Signal(self._axi_address_width)
        write_data_held = Signal()
        write_data = Signal(32)
        write_strobes = Signal(4)
        write_response_valid = Signal()
        write_response = Signal(2)

        m.d.comb += [
            axi.awready.eq(~write_address_held),
            axi.wready.eq(~write_data_held),
            axi.bvalid.eq(write_response_valid),
            axi.bresp.eq(write_response),
        ]
        with m.If(axi.awvalid & ~write_address_held):
            m.d.sync += [write_address_held.eq(1), write_address.eq(axi.awaddr)]
        with m.If(axi.wvalid & ~write_data_held):
            m.d.sync += [write_data_held.eq(1), write_data.eq(axi.wdata),
                         write_strobes.eq(axi.wstrb)]
        with m.If(axi.bready & write_response_valid):
            m.d.sync += write_response_valid.eq(0)

        # --- Read: one address held until its data has been read. ----------------------------
        read_address_held = Signal()
        read_address = Signal(self._axi_address_width)
        read_response_valid = Signal()
        read_response = Signal(2)
        read_data = Signal(32)

        m.d.comb += [
            axi.arready.eq(~read_address_held),
            axi.rvalid.eq(read_response_valid),
            axi.rresp.eq(read_response),
            axi.rdata.eq(read_data),
        ]
        with m.If(axi.arvalid & ~read_address_held):
            m.d.sync += [read_address_held.eq(1), read_address.eq(axi.araddr)]
        with m.If(axi.rready & read_response_valid):
            m.d.sync += read_response_valid.eq(0)

        # --- Which transactions are ready to be carried out, and how. ------------------------
        if has_bits_above_bus:
            write_in_bus = write_address[above_bus] == 0
            read_in_bus = read_address[above_bus] == 0
        else:
            write_in_bus = read_in_bus = Const(1, 1)
        write_pending = write_address_held & write_data_held & ~write_response_valid
        read_pending = read_address_held & ~read_response_valid
        write_all_strobes = write_strobes == 0b1111
        write_no_strobes = write_strobes == 0
        write_uses_bus = write_pending & write_in_bus & write_all_strobes
        write_skips_bus = write_pending & ~(write_in_bus & write_all_strobes)
        read_uses_bus = read_pending & read_in_bus
        read_skips_bus = read_pending & ~read_in_bus

        def finish_write(response):
            m.d.sync += [
                write_address_held.eq(0), write_data_held.eq(0),
                write_response_valid.eq(1), write_response.eq(response),
            ]

        def finish_read(response, data):
            m.d.sync += [
                read_address_held.eq(0),
                read_response_valid.eq(1), read_response.eq(response), read_data.eq(data),
            ]

        with m.If(write_skips_bus):
            finish_write(Mux(write_in_bus & write_no_strobes,
                             AxiResponse.OKAY, AxiResponse.SLVERR))
        with m.If(read_skips_bus):
            finish_read(AxiResponse.SLVERR, 0)

        # --- Bus access: one at a time, turns alternate when both directions wait. -----------
        bus_owner = Signal(range(3))  # 0: free, 1: a write holds the bus, 2: a read does
        last_was_write = Signal()
        granted_write = Signal()
        granted_read = Signal()
        with m.Switch(bus_owner):
            with m.Case(0):
                m.d.comb += [
                    granted_write.eq(write_uses_bus & ~(read_uses_bus & last_was_write)),
                    granted_read.eq(read_uses_bus & ~(write_uses_bus & ~last_was_write)),
                ]
            with m.Case(1):
                m.d.comb += granted_write.eq(1)
            with m.Case(2):
                m.d.comb += granted_read.eq(1)

        m.d.comb += [
            bus.addr.eq(Mux(granted_write, write_address[word_bits], read_address[word_bits])),
            bus.w_data.eq(write_data),
            bus.w_stb.eq(granted_write),
            bus.r_stb.eq(granted_read),
        ]

        wait_cycles = Signal(range(1 if self._bus_timeout is None else self._bus_timeout))
        timed_out = Signal()
        if self._bus_timeout is not None:
            m.d.comb += timed_out.eq(~bus.ack & (wait_cycles == self._bus_timeout - 1))

        with m.If(granted_write | granted_read):
            with m.If(bus.ack | timed_out):
                m.d.sync += [bus_owner.eq(0), wait_cycles.eq(0), last_was_write.eq(granted_write)]
                response = Mux(bus.ack, AxiResponse.OKAY, AxiResponse.SLVERR)
                with m.If(granted_write):
                    finish_write(response)
                with m.Else():
                    finish_read(response, Mux(bus.ack, bus.r_data, 0))
            with m.Else():
                m.d.sync += [bus_owner.eq(Mux(granted_write, 1, 2)),
                             wait_cycles.eq(wait_cycles + 1)]

        return m
