"""Tests of the UART PHY: waveform, TX->RX loopback, baud tolerance, glitches, framing errors."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator
from tiersolve.designs.uart import MIN_DIVISOR, UartReceiver, UartTransmitter, baud_divisor
from tiersolve.gen.sim import stream_put

CLOCK_PERIOD = 1e-8


class Loopback(wiring.Component):
    """Transmitter and receiver; the receiver listens to ``line`` (the transmitter's output
    unless the testbench drives ``drive_line``), and its error pulses are counted."""

    def __init__(self, divisor):
        self.transmitter = UartTransmitter(divisor)
        self.receiver = UartReceiver(divisor)
        self.drive_line = Signal()
        self.line = Signal(init=1)
        self.framing_errors = Signal(8)
        self.overruns = Signal(8)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.transmitter = self.transmitter
        m.submodules.receiver = self.receiver
        with m.If(~self.drive_line):
            m.d.comb += self.receiver.rx.eq(self.transmitter.tx)
        with m.Else():
            m.d.comb += self.receiver.rx.eq(self.line)
        with m.If(self.receiver.framing_error):
            m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
        with m.If(self.receiver.overrun):
            m.d.sync += self.overruns.eq(self.overruns + 1)
        return m


def simulate(dut, main, background=None, *, cycles):
    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(main)
    if background is not None:
        sim.add_testbench(background, background=True)

    async def watchdog(ctx):
        await ctx.delay(cycles * CLOCK_PERIOD)
        raise TimeoutError(f"still running after {cycles} cycles")

    sim.add_process(watchdog)
    sim.run()


def collector(stream, received):
    async def collect(ctx):
        ctx.set(stream.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(stream.valid, stream.payload):
            if valid:
                received.append(payload)
    return collect


def line_bits(byte, stop_bit=1):
    return [0, *((byte >> i) & 1 for i in range(8)), stop_bit]


async def drive_bits(ctx, line, bits, bit_time):
    """Drive ``line`` with ``bits``, each lasting ``bit_time`` seconds (any real number)."""
    for bit in bits:
        ctx.set(line, bit)
        await ctx.delay(bit_time)


def test_parameters():
    assert baud_divisor(12e6, 3e6) == 4
    assert baud_divisor(48e6, 3e6) == 16
    assert baud_divisor(48e6, 12e6) == 4
    assert baud_divisor(12e6, 115200) == 104  # 0.16 % off
    with pytest.raises(ValueError, match="at least 4"):
        baud_divisor(12e6, 4e6)
    with pytest.raises(ValueError, match="off by"):
        baud_divisor(12e6, 2.6e6)  # divisor 5 gives 2.4 Mbaud
    with pytest.raises(ValueError, match="divisor"):
        UartTransmitter(MIN_DIVISOR - 1)
    with pytest.raises(TypeError, match="divisor"):
        UartReceiver(4.0)


def test_transmitter_waveform():
    """Start bit one cycle after the byte is taken, every bit exactly `divisor` cycles."""
    divisor = 5
    dut = UartTransmitter(divisor)
    trace = []

    async def bench(ctx):
        ctx.set(dut.data.payload, 0xA5)
        ctx.set(dut.data.valid, 1)
        await ctx.tick().until(dut.data.ready)  # taken at this edge
        ctx.set(dut.data.valid, 0)
        for _ in range(10 * divisor + 3):
            trace.append((ctx.get(dut.tx), ctx.get(dut.data.ready)))
            await ctx.tick()

    simulate(dut, bench, cycles=200)
    expected = [bit for bit in line_bits(0xA5) for _ in range(divisor)] + [1, 1, 1]
    assert [tx for tx, _ in trace] == expected
    assert [ready for _, ready in trace] == [0] * (10 * divisor) + [1, 1, 1]


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_loopback(divisor):
    """Random bytes back to back through TX and RX arrive intact, with no errors."""
    rng = random.Random(divisor)
    data = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(24)]
    dut = Loopback(divisor)
    received = []

    async def bench(ctx):
        for byte in data:
            await stream_put(ctx, dut.transmitter.data, byte)
        await ctx.tick().repeat(12 * divisor)
        assert ctx.get(dut.framing_errors) == 0
        assert ctx.get(dut.overruns) == 0

    simulate(dut, bench, collector(dut.receiver.data, received),
             cycles=12 * divisor * (len(data) + 2))
    assert received == data


@pytest.mark.parametrize("divisor, rate_error", [(16, -0.03), (16, +0.03), (4, -0.01),
                                                 (4, +0.01)])
def test_receiver_tolerates_baud_error(divisor, rate_error):
    """A sender whose bit period is off by `rate_error` (a fraction) is still decoded."""
    rng = random.Random(3)
    data = [0x00, 0xFF] + [rng.randrange(256) for _ in range(10)]
    dut = Loopback(divisor)
    received = []
    bit_time = divisor * CLOCK_PERIOD * (1 + rate_error)

    async def bench(ctx):
        ctx.set(dut.drive_line, 1)
        await ctx.delay(3.3 * CLOCK_PERIOD)  # edges fall anywhere inside a clock period
        for byte in data:
            await drive_bits(ctx, dut.line, line_bits(byte), bit_time)
        await ctx.delay(2 * bit_time)
        assert ctx.get(dut.framing_errors) == 0

    simulate(dut, bench, collector(dut.receiver.data, received), cycles=20 * divisor * 12)
    assert received == data


def test_glitches_are_filtered():
    """A one-cycle spike in the middle of a bit, or on the idle line, does not corrupt data."""
    divisor = 16
    dut = Loopback(divisor)
    received = []

    async def bench(ctx):
        ctx.set(dut.drive_line, 1)
        await ctx.tick().repeat(3)
        for bit in line_bits(0x3C):
            ctx.set(dut.line, bit)
            await ctx.tick().repeat(divisor // 2)
            ctx.set(dut.line, 1 - bit)  # spike right at the sampling point
            await ctx.tick()
            ctx.set(dut.line, bit)
            await ctx.tick().repeat(divisor - divisor // 2 - 1)
        await ctx.tick().repeat(2 * divisor)
        ctx.set(dut.line, 0)  # a spike on the idle line: a start bit that does not hold
        await ctx.tick()
        ctx.set(dut.line, 1)
        await ctx.tick().repeat(2 * divisor)
        assert ctx.get(dut.framing_errors) == 1  # the false start bit is reported
        for bit in line_bits(0xC3):
            ctx.set(dut.line, bit)
            await ctx.tick().repeat(divisor)
        await ctx.tick().repeat(divisor)

    simulate(dut, bench, collector(dut.receiver.data, received), cycles=40 * divisor)
    assert received == [0x3C, 0xC3]


def test_framing_errors():
    """A low stop bit drops the byte and pulses framing_error; so does a break; both recover."""
    divisor = 6
    dut = Loopback(divisor)
    received = []
    bit_time = divisor * CLOCK_PERIOD

    async def bench(ctx):
        ctx.set(dut.drive_line, 1)
        await ctx.tick().repeat(2)
        await drive_bits(ctx, dut.line, line_bits(0x81), bit_time)
        await drive_bits(ctx, dut.line, line_bits(0x42, stop_bit=0), bit_time)
        await drive_bits(ctx, dut.line, [1], bit_time)
        assert ctx.get(dut.framing_errors) == 1
        await drive_bits(ctx, dut.line, [0] * 30 + [1], bit_time)  # a break, then idle
        assert ctx.get(dut.framing_errors) == 2
        await drive_bits(ctx, dut.line, line_bits(0x7E) + [1], bit_time)
        assert ctx.get(dut.framing_errors) == 2

    simulate(dut, bench, collector(dut.receiver.data, received), cycles=80 * divisor)
    assert received == [0x81, 0x7E]


def test_overrun_keeps_the_first_byte():
    divisor = 4
    dut = Loopback(divisor)

    async def bench(ctx):
        for byte in (0x11, 0x22, 0x33):
            await stream_put(ctx, dut.transmitter.data, byte)
        await ctx.tick().repeat(12 * divisor)
        assert ctx.get(dut.overruns) == 2
        assert ctx.get(dut.receiver.data.valid) == 1
        assert ctx.get(dut.receiver.data.payload) == 0x11

    simulate(dut, bench, cycles=60 * divisor)
