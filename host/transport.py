"""Transports: how the host reaches a device's register bus.

A :class:`Transport` carries burst reads and writes of 32-bit words to word addresses of the
register map (:mod:`tiersolve.designs.regmap`). The framed transports speak the wire protocol
of :mod:`tiersolve.host.protocol` over a byte port (:class:`FramedTransport`):

``sim``
    :class:`SimTransport`: the *same* :class:`~tiersolve.designs.top.SolverDesign` running in
    Amaranth's simulator, fed at the frame bridge's byte stream. The simulator only runs while
    the host waits for a reply, one request byte per cycle.
``uart``
    :class:`UartTransport`: a serial port (pyserial), e.g. a board or ``tiersolve sim-serve``.

Link failures become :class:`~tiersolve.host.errors.LinkError` (a rejected request) and
:class:`~tiersolve.host.errors.DeviceTimeout` (no intact reply after the retries).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from .errors import DeviceTimeout, LinkError
from .protocol import (
    OP_READ,
    OP_WRITE,
    LinkTimeout,
    RegisterLink,
    Reply,
    Request,
    RequestRejected,
    Status,
)

__all__ = ["COMMAND_EXCHANGE_BYTES", "FramedTransport", "ReplyQueuePort", "SimTransport",
           "SimulatedBytePort", "Transport", "UartTransport"]


def _exchange_bytes(written: int, read: int) -> int:
    """Wire bytes of a write of ``written`` words and a read of ``read`` words, each request
    with its reply (words without zero bytes: COBS adds nothing for them)."""
    word = 0x01010101
    return (len(Request.write(1, 1, [word] * written).encode())
            + len(Reply(1, Status.OK, OP_WRITE, written).encode())
            + len(Request.read(1, 1, read).encode())
            + len(Reply(1, Status.OK, OP_READ, read, (word,) * read).encode()))


#: Bytes on the wire of one command's own exchange, beside its data: the write of the four
#: updater command registers and one read of the three status words, with their replies.
COMMAND_EXCHANGE_BYTES = _exchange_bytes(4, 3)


class Transport:
    """Interface: burst access to the device's register bus.

    Attributes
    ----------
    max_burst : int
        Longest burst the transport sends in one request (longer ones are split).
    poll_interval : float
        Seconds to wait between two polls of a job's status (see below).
    statistics : dict
        Counters of the link (at least ``requests``, ``bytes_sent``, ``bytes_received``,
        ``payload_bytes``, ``retries``).
    """

    max_burst: int = 64
    #: Seconds :class:`~tiersolve.host.device.Device` waits between two polls of a job's
    #: status. 0 for links whose every read is a round trip (a UART) or that run a simulation
    #: per read; a memory-mapped BAR answers at once, and polling it flat out holds a core.
    poll_interval: float = 0.0

    def read(self, address: int, count: int, *, fixed_address: bool = False) -> list[int]:
        """Read ``count`` 32-bit words from ``address`` (consecutive, or all from it)."""
        raise NotImplementedError

    def write(self, address: int, words: Iterable[int], *, fixed_address: bool = False) -> None:
        """Write 32-bit ``words`` from ``address`` (consecutive, or all to it)."""
        raise NotImplementedError

    @property
    def statistics(self) -> dict:
        return {}

    def byte_cycles(self, clock_hz: float) -> float:
        """Device clock cycles (at ``clock_hz``) one byte takes on this link. 0 here: a bus
        mapped into the host's memory (PCIe) moves a word in about a microsecond, which no
        choice between commands needs to count."""
        return 0.0

    def command_cycles(self, clock_hz: float) -> float:
        """Device clock cycles (at ``clock_hz``) that one more command costs on this link
        beyond the data it carries: the write of a command's four registers and one read of
        its three status words, with their replies (:data:`COMMAND_EXCHANGE_BYTES` bytes), at
        :meth:`byte_cycles` each."""
        return COMMAND_EXCHANGE_BYTES * self.byte_cycles(clock_hz)

    def close(self) -> None:
        """Release the port or the simulator."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class FramedTransport(Transport):
    """The framed protocol (:class:`~tiersolve.host.protocol.RegisterLink`) over a byte port.

    Parameters
    ----------
    port : object
        ``write(data)`` and ``read(size)`` (at most ``size`` bytes, waiting at most the port's
        own short timeout), optionally ``in_waiting``: a :class:`serial.Serial` or
        :class:`SimulatedBytePort`.
    max_burst : int
        Longest burst the device's bridge accepts.
    timeout, retries
        Seconds to wait for one reply, and attempts after the first.
    """

    def __init__(self, port, *, max_burst: int = 64, timeout: float = 0.5, retries: int = 5):
        self.port = port
        self.max_burst = max_burst
        self.link = RegisterLink(port, max_burst=max_burst, timeout=timeout, retries=retries)

    def read(self, address, count, *, fixed_address=False):
        return self._over_the_link(self.link.read, address, count, fixed_address=fixed_address)

    def write(self, address, words, *, fixed_address=False):
        self._over_the_link(self.link.write, address, words, fixed_address=fixed_address)

    @staticmethod
    def _over_the_link(operation, *args, **kwargs):
        """``operation(...)`` with the link's failures as the host's errors: no intact answer
        is :class:`DeviceTimeout`; a rejected request, or the port itself failing (a board
        unplugged, a pty whose server died: pyserial's ``SerialException`` is an
        ``OSError``), is :class:`LinkError`."""
        try:
            return operation(*args, **kwargs)
        except LinkTimeout as error:  # a TimeoutError, so an OSError: first
            raise DeviceTimeout(str(error)) from error
        except RequestRejected as error:
            raise LinkError(str(error)) from error
        except LinkError:
            raise
        except OSError as error:
            raise LinkError(f"the link failed: {error}") from error

    @property
    def statistics(self) -> dict:
        return self.link.statistics

    def byte_cycles(self, clock_hz: float) -> float:
        """Device clock cycles one byte takes on the wire: 1 here (the simulated ports feed
        the design a byte a cycle, and the simulation stands still while the host works)."""
        return 1.0

    def close(self):
        close = getattr(self.port, "close", None)
        if close is not None:
            close()


class ReplyQueuePort:
    """Host side of a byte port whose far end is a simulated design.

    Subclasses keep ``_to_device`` (queued request bytes, with ``extend``), ``_from_device``
    (a ``bytearray`` of reply bytes), ``_frames_out`` (reply delimiters collected but not yet
    handed over) and ``closed``, and implement :meth:`_run_until_reply`. :meth:`write` only
    queues; :meth:`read` lets the design run until a whole reply frame is there, then hands
    bytes over, so simulated time advances only while the host waits for an answer.
    """

    #: Word naming the device in errors ("the simulated device is closed").
    device_kind = "simulated"

    def _run_until_reply(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _check_open(self) -> None:
        if self.closed:
            raise LinkError(f"the {self.device_kind} device is closed")

    def write(self, data: bytes) -> int:
        self._check_open()
        self._to_device.extend(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        self._check_open()
        if not self._from_device or self._frames_out == 0:
            self._run_until_reply()
        data = bytes(self._from_device[:size])
        del self._from_device[:size]
        self._frames_out -= data.count(0)
        return data

    @property
    def in_waiting(self) -> int:
        return len(self._from_device)


class SimulatedBytePort(ReplyQueuePort):
    """A byte port whose far end is a :class:`~tiersolve.designs.top.SolverDesign` in simulation.

    :meth:`write` only queues the bytes; :meth:`read` runs the simulator, feeding the queued
    bytes to the design's ``rx`` stream at up to one per cycle and collecting ``tx``, until a
    complete reply frame (its ``0x00`` delimiter) has come out or ``wait_cycles`` cycles have
    passed without one. Time therefore only advances while the host waits for an answer, as a
    stop-and-wait host does with a real device.

    Parameters
    ----------
    design : SolverDesign
        Built with ``bus="bytes"``.
    wait_cycles : int
        Cycles :meth:`read` simulates at most before it returns what it has (possibly nothing).

    Attributes
    ----------
    cycles : int
        Clock cycles simulated so far.
    """

    def __init__(self, design, *, wait_cycles: int = 1 << 16):
        from amaranth.sim import Simulator

        if getattr(design, "bus_kind", None) != "bytes":
            raise ValueError("SimulatedBytePort needs a SolverDesign built with bus='bytes'")
        self.design = design
        self.wait_cycles = wait_cycles
        self.cycles = 0
        self._to_device = collections.deque()
        self._from_device = bytearray()
        self._frames_out = 0        # delimiters that came out and were not yet handed over
        self._simulator = Simulator(design)
        self._simulator.add_clock(1 / design.registers.clock_frequency)
        self._simulator.add_testbench(self._pump)
        self.closed = False

    async def _pump(self, ctx):
        rx, tx = self.design.rx, self.design.tx
        ctx.set(tx.ready, 1)
        offered = False
        async for _clock, _reset, rx_ready, tx_valid, tx_byte in ctx.tick().sample(
                rx.ready, tx.valid, tx.payload):
            self.cycles += 1
            if offered and rx_ready:
                self._to_device.popleft()
            if tx_valid:
                self._from_device.append(tx_byte)
                if tx_byte == 0:
                    self._frames_out += 1
            offered = bool(self._to_device)
            if offered:
                ctx.set(rx.payload, self._to_device[0])
            ctx.set(rx.valid, offered)

    def _run_until_reply(self):
        start = self.cycles
        while self._frames_out == 0 and self.cycles - start < self.wait_cycles:
            self._simulator.advance()

    def run_cycles(self, cycles: int) -> None:
        """Let the design run ``cycles`` clock cycles (the host idles meanwhile)."""
        end = self.cycles + cycles
        while self.cycles < end:
            self._simulator.advance()

    def close(self):
        self.closed = True


class SimTransport(FramedTransport):
    """The simulated device: a :class:`~tiersolve.designs.top.SolverDesign` behind the frame
    bridge, in Amaranth's simulator.

    Parameters
    ----------
    retries : int
        Attempts after the first (a lost reply cannot happen in simulation, but a bus timeout
        or a hung design is reported as :class:`~tiersolve.host.errors.DeviceTimeout`).
    wait_cycles : int or None
        Simulated cycles to wait for one reply (default: the design's bus timeout plus the time
        to move the longest frames).
    **design_parameters
        Passed to :class:`~tiersolve.designs.top.SolverDesign` (``bus`` is ``"bytes"``).

    Attributes
    ----------
    design : SolverDesign
    port : SimulatedBytePort
    """

    def __init__(self, *, retries: int = 1, wait_cycles: int | None = None, **design_parameters):
        from tiersolve.designs.top import SolverDesign

        design_parameters.setdefault("bus", "bytes")
        if design_parameters["bus"] != "bytes":
            raise ValueError(f"the sim transport feeds bytes; bus={design_parameters['bus']!r}")
        self.design = SolverDesign(**design_parameters)
        if wait_cycles is None:
            wait_cycles = self.design.bus_timeout + 64 * self.design.max_burst + 4096
        port = SimulatedBytePort(self.design, wait_cycles=wait_cycles)
        # The port itself waits in simulated cycles; the link's wall-clock timeout only has to
        # let it return once.
        super().__init__(port, max_burst=self.design.max_burst, timeout=1e-6, retries=retries)

    @property
    def cycles(self) -> int:
        """Clock cycles simulated so far."""
        return self.port.cycles


class UartTransport(FramedTransport):
    """A serial port (pyserial): a board's UART bridge, or ``tiersolve sim-serve``'s tty.

    Parameters
    ----------
    path : str
        Serial device, e.g. ``/dev/ttyUSB1``.
    baud_rate : int
        Line rate (the design's, e.g. 3000000).
    max_burst, timeout, retries
        As for :class:`FramedTransport`.
    """

    def __init__(self, path: str, *, baud_rate: int = 3_000_000, max_burst: int = 64,
                 timeout: float = 0.5, retries: int = 5):
        try:
            import serial
        except ImportError as error:  # pragma: no cover - pyserial is a dependency
            raise LinkError("the uart transport needs pyserial (pip install pyserial)") from error
        if isinstance(baud_rate, bool) or not isinstance(baud_rate, int) or baud_rate < 1:
            # pyserial takes 0 (a hang-up on a real port) and says little about negatives
            raise ValueError(f"baud must be a positive whole number of bits per second, "
                             f"not {baud_rate!r}")
        try:
            port = serial.Serial(path, baud_rate, timeout=min(timeout, 0.05))
        except (OSError, serial.SerialException) as error:
            raise LinkError(f"cannot open serial port {path!r}: {error}") from error
        super().__init__(port, max_burst=max_burst, timeout=timeout, retries=retries)
        self.baud_rate = baud_rate

    def byte_cycles(self, clock_hz: float) -> float:
        """Device clock cycles of one byte on the line: 10 bits (start, 8 data, stop) at
        :attr:`baud_rate` (the USB adapter's latency comes on top and is not counted)."""
        return 10 * clock_hz / self.baud_rate
