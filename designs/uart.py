"""UART physical layer: 8N1 transmitter and receiver with bytes on :mod:`amaranth.lib.stream`.

The bit period is a whole number of clock cycles, ``divisor`` (a constructor parameter): the
baud rate is ``clock_frequency / divisor``. ``divisor >= 4`` is required, which allows
3 Mbaud from a 12 MHz clock (the iCE40UP5K boards' oscillator) and 12 Mbaud from 48 MHz.
Use :func:`baud_divisor` to pick the divisor and check the rate error.

Line format: idle high, one start bit (low), 8 data bits least significant first, one stop
bit (high), no parity.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from tiersolve.gen.checks import silent_if_refused

__all__ = ["MIN_DIVISOR", "baud_divisor", "UartTransmitter", "UartReceiver"]

#: Smallest bit period in clock cycles: the receiver votes over 3 samples inside each bit.
MIN_DIVISOR = 4


def _check_divisor(divisor) -> int:
    if isinstance(divisor, bool) or not isinstance(divisor, int):
        raise TypeError(f"divisor must be an integer, not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be at least {MIN_DIVISOR} clock cycles per bit, "
                         f"not {divisor}")
    return divisor


def baud_divisor(clock_frequency: float, baud_rate: float, tolerance: float = 0.01) -> int:
    """The divisor (clock cycles per bit) closest to ``baud_rate``.

    Raises
    ------
    ValueError
        If the rate is out of reach (divisor below :data:`MIN_DIVISOR`) or the achieved rate is
        off by more than ``tolerance`` (relative). A UART link tolerates about 2 % in total
        between both ends; the default keeps this end's share at 1 %.
    """
    if clock_frequency <= 0 or baud_rate <= 0:
        raise ValueError(f"clock_frequency ({clock_frequency}) and baud_rate ({baud_rate}) "
                         "must be positive")
    divisor = round(clock_frequency / baud_rate)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"{baud_rate} baud needs a divisor of {clock_frequency / baud_rate:.2f}"
                         f" at {clock_frequency} Hz; at least {MIN_DIVISOR} is required")
    error = abs(clock_frequency / divisor - baud_rate) / baud_rate
    if error > tolerance:
        raise ValueError(f"{baud_rate} baud at {clock_frequency} Hz: divisor {divisor} is off "
                         f"by {error:.2%} (tolerance {tolerance:.2%})")
    return divisor


class UartTransmitter(wiring.Component):
    """UART 8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Bit period in clock cycles (at least :data:`MIN_DIVISOR`).

    Members
    -------
    data : In(stream.Signature(8))
        Bytes to send. ``ready`` is high while the transmitter is idle, including the cycle in
        which the previous stop bit ends, so bytes offered back to back are sent without gaps.
    tx : Out(1)
        Serial line output (registered, idle high).
    busy : Out(1)
        A byte is being sent.

    Timing
    ------
    ``tx`` falls (start bit) one cycle after a byte is accepted; each of the 10 bits lasts
    exactly ``divisor`` cycles; a byte takes ``10 * divisor`` cycles.
    """

    @silent_if_refused
    def __init__(self, divisor: int):
        self._divisor = _check_divisor(divisor)
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._divisor), init=0)
        bits_left = Signal(range(11))  # bits whose period has not ended yet
        shift = Signal(9, init=0x1FF)   # data bits then the stop bit, shifted out LSB first

        m.d.comb += [
            self.data.ready.eq(bits_left == 0),
            self.busy.eq(bits_left != 0),
        ]
        with m.If(bits_left == 0):
            with m.If(self.data.valid):
                m.d.sync += [
                    self.tx.eq(0),
                    shift.eq(Cat(self.data.payload, 1)),
                    bits_left.eq(10),
                    timer.eq(self._divisor - 1),
                ]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [
                self.tx.eq(shift[0]),
                shift.eq(Cat(shift[1:], 1)),
                bits_left.eq(bits_left - 1),
                timer.eq(self._divisor - 1),
            ]
        return m


class UartReceiver(wiring.Component):
    """UART 8N1 receiver with mid-bit majority sampling and framing-error detection.

    The line goes through a two-flip-flop synchroniser. A falling edge on the idle line starts
    a byte; every bit (start, 8 data, stop) is decided by a 2-of-3 majority vote over three
    consecutive samples centred on the middle of the bit, which rejects single-cycle glitches.
    A start bit that reads high at its middle (a glitch, not a byte) or a stop bit that reads
    low (a break, a baud mismatch or noise) is rejected: the byte is dropped and
    ``framing_error`` pulses. After a bad stop bit the receiver waits for the line to return
    high before looking for the next start bit.

    Parameters
    ----------
    divisor : int
        Bit period in clock cycles (at least :data:`MIN_DIVISOR`).

    Members
    -------
    rx : In(1, init=1)
        Serial line input (asynchronous; synchronised inside).
    data : Out(stream.Signature(8))
        Received bytes. A UART cannot be paused: if the previous byte has not been taken when
        the next one is complete, the new byte is dropped and ``overrun`` pulses.
    framing_error : Out(1)
        Pulses for one cycle when a byte is rejected for a bad start or stop bit.
    overrun : Out(1)
        Pulses for one cycle when a byte is dropped because ``data`` was not ready.

    Timing
    ------
    Bit ``k`` (0 = start) is decided by the samples ``k * divisor + middle + (-1, 0, 1)``
    cycles after the start edge reaches the synchroniser's output, where
    ``middle = (divisor - 1) // 2``. A byte is offered on ``data`` one cycle after the
    sample ``9 * divisor + middle + 1`` (about ``9.5 * divisor + 4`` cycles after the start
    edge on ``rx``), and the receiver looks for the next start edge from the cycle after, that
    is ``divisor - middle - 2`` cycles before the stop bit ends: back-to-back bytes from a
    sender whose clock runs slightly fast are not lost. Tested: senders off by +-3 % at
    ``divisor = 16`` and +-1 % at ``divisor = 4``.
    """

    @silent_if_refused
    def __init__(self, divisor: int):
        self._divisor = _check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor
        middle = (divisor - 1) // 2
        # Synchroniser, then the two previous samples for the vote.
        meta = Signal(init=1)
        sample = Signal(init=1)
        previous = Signal(2, init=0b11)
        m.d.sync += [meta.eq(self.rx), sample.eq(meta), previous.eq(Cat(sample, previous[0]))]
        vote = (sample & previous[0]) | (sample & previous[1]) | (previous[0] & previous[1])

        timer = Signal(range(divisor))
        bit_index = Signal(range(10))  # 0 start, 1..8 data, 9 stop
        shift = Signal(8)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~sample):
                    # Start edge seen at sample t0; the line fell somewhere after sample
                    # t0 - 1, so bit k spans samples t0 + k*divisor + (0 .. divisor - 1).
                    # The vote at cycle t covers samples t-2..t: voting at cycle
                    # t0 + k*divisor + middle + 1 centres the window on sample
                    # t0 + k*divisor + middle, with middle = (divisor - 1) // 2.
                    m.d.sync += [timer.eq(middle), bit_index.eq(0)]
                    m.next = "BITS"
            with m.State("BITS"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(divisor - 1), bit_index.eq(bit_index + 1)]
                    with m.If(bit_index == 0):
                        with m.If(vote):
                            m.d.comb += self.framing_error.eq(1)
                            m.next = "IDLE"
                    with m.Elif(bit_index != 9):
                        m.d.sync += shift.eq(Cat(shift[1:], vote))
                    with m.Elif(~vote):
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "WAIT_IDLE"
                    with m.Else():
                        with m.If(self.data.valid & ~self.data.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.data.valid.eq(1), self.data.payload.eq(shift)]
                        m.next = "IDLE"
            with m.State("WAIT_IDLE"):
                with m.If(vote):
                    m.next = "IDLE"
        return m
