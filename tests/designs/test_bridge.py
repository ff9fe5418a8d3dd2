"""Tests of FrameBridge (byte-stream level) and UartFrameBridge (bit level) in simulation.

The bridge masters a small bus slave written here: 128 words of memory at addresses 0..127, a
register at 0x100 that counts the writes made to it (so a write executed twice is visible),
and an address 0x101 that never answers (to provoke the bus timeout). Every test compares the
bytes the gateware sends back with :class:`tiersolve.host.protocol.DeviceModel` fed the same
bytes, so the replies are checked byte for byte, NACKs, rejects and replays included.
"""

import random

import pytest
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In
from amaranth.sim import Simulator
from tiersolve.designs.bridge import FrameBridge, UartFrameBridge, crc16_next
from tiersolve.designs.bus import RegisterBusSignature
from tiersolve.gen.sim import stream_put
from tiersolve.host.protocol import (
    OP_READ,
    OP_WRITE,
    DeviceModel,
    FrameSplitter,
    Reply,
    Request,
    Status,
    cobs_encode,
    crc16,
    nack_frame,
)

ADDRESS_WIDTH = 12
MEMORY_WORDS = 128
COUNTER_ADDRESS = 0x100
SILENT_ADDRESS = 0x101
BUS_TIMEOUT = 16


class CountingSlave(wiring.Component):
    """Bus slave: memory, a write-counting register and an address that never acknowledges.

    ``wait_states`` delays every acknowledge by that many cycles.
    """

    bus: In(RegisterBusSignature(ADDRESS_WIDTH))

    def __init__(self, wait_states=0):
        self.wait_states = wait_states
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = memory = Memory(shape=32, depth=MEMORY_WORDS, init=[])
        read = memory.read_port(domain="comb")
        write = memory.write_port()
        write_count = Signal(32)
        in_memory = self.bus.addr < MEMORY_WORDS
        access = (self.bus.w_stb | self.bus.r_stb) & (self.bus.addr != SILENT_ADDRESS)
        if self.wait_states:
            waited = Signal(range(self.wait_states + 1))
            ack = access & (waited == self.wait_states)
            with m.If(ack | ~access):
                m.d.sync += waited.eq(0)
            with m.Else():
                m.d.sync += waited.eq(waited + 1)
        else:
            ack = access
        m.d.comb += [
            self.bus.ack.eq(ack),
            read.addr.eq(self.bus.addr),
            write.addr.eq(self.bus.addr),
            write.data.eq(self.bus.w_data),
            self.bus.r_data.eq(Mux(in_memory, read.data,
                                   Mux(self.bus.addr == COUNTER_ADDRESS, write_count, 0))),
        ]
        with m.If(ack & self.bus.w_stb):
            with m.If(in_memory):
                m.d.comb += write.en.eq(1)
            with m.Elif(self.bus.addr == COUNTER_ADDRESS):
                m.d.sync += write_count.eq(write_count + 1)
        return m


class ModelSlave:
    """The same slave for :class:`DeviceModel`."""

    def __init__(self):
        self.words = [0] * MEMORY_WORDS
        self.write_count = 0

    def read(self, address):
        if address == SILENT_ADDRESS:
            raise TimeoutError
        if address < MEMORY_WORDS:
            return self.words[address]
        return self.write_count if address == COUNTER_ADDRESS else 0

    def write(self, address, value):
        if address == SILENT_ADDRESS:
            raise TimeoutError
        if address < MEMORY_WORDS:
            self.words[address] = value
        elif address == COUNTER_ADDRESS:
            self.write_count += 1


class Harness(wiring.Component):
    """FrameBridge + CountingSlave, with counters of the bridge's event pulses."""

    def __init__(self, *, max_burst, wait_states=0, uart_divisor=None):
        if uart_divisor is None:
            self.bridge = FrameBridge(max_burst=max_burst, address_width=ADDRESS_WIDTH,
                                      bus_timeout=BUS_TIMEOUT)
        else:
            self.bridge = UartFrameBridge(uart_divisor, max_burst=max_burst,
                                          address_width=ADDRESS_WIDTH, bus_timeout=BUS_TIMEOUT)
        self.slave = CountingSlave(wait_states)
        self.events = {name: Signal(16, name=f"count_{name}")
                       for name in ("executed", "rejected", "replayed", "nacked")}
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        m.submodules.slave = self.slave
        wiring.connect(m, self.bridge.bus, self.slave.bus)
        for name, counter in self.events.items():
            with m.If(getattr(self.bridge, name)):
                m.d.sync += counter.eq(counter + 1)
        return m


def simulate(dut, main, background, *, cycles):
    """Run testbench ``main`` with ``background`` beside it; fail if ``cycles`` pass first."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(background, background=True)

    async def watchdog(ctx):
        await ctx.delay(cycles * 1e-8)
        raise TimeoutError(f"simulation still running after {cycles} cycles: the design hung")

    sim.add_process(watchdog)
    sim.run()


def new_model(max_burst):
    slave = ModelSlave()
    return DeviceModel(slave.read, slave.write, max_burst=max_burst,
                       address_width=ADDRESS_WIDTH), slave


def simulate_bytes(data, *, max_burst=8, wait_states=0, expected_length=None):
    """Feed ``data`` to a FrameBridge; return (bytes sent back, event counts)."""
    harness = Harness(max_burst=max_burst, wait_states=wait_states)
    bridge = harness.bridge
    received = bytearray()
    events = {}

    async def sender(ctx):
        for byte in data:
            await stream_put(ctx, bridge.rx, byte)
        # Let the last replies out: wait for the expected bytes, then watch for extra ones.
        while expected_length is not None and len(received) < expected_length:
            await ctx.tick()
        await ctx.tick().repeat(100)
        for name, counter in harness.events.items():
            events[name] = ctx.get(counter)

    async def receiver(ctx):
        ctx.set(bridge.tx.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(bridge.tx.valid, bridge.tx.payload):
            if valid:
                received.append(payload)

    simulate(harness, sender, receiver, cycles=4 * len(data) + 60 * (expected_length or 0)
             + 10_000)
    return bytes(received), events


def check_against_model(data, *, max_burst=8, wait_states=0):
    """Run ``data`` through the gateware and the model; they must agree byte for byte."""
    model, slave = new_model(max_burst)
    expected = model.feed(data)
    received, events = simulate_bytes(data, max_burst=max_burst, wait_states=wait_states,
                                      expected_length=len(expected))
    assert received == expected
    assert events == model.events
    return [Reply.decode(frame) for frame in FrameSplitter().feed(received)], model, slave


def test_crc16_next_matches_binascii():
    m = Module()
    crc, byte, result = Signal(16), Signal(8), Signal(16)
    m.d.comb += result.eq(crc16_next(crc, byte))
    rng = random.Random(0)

    async def bench(ctx):
        for _ in range(200):
            value, data = rng.randrange(1 << 16), rng.randrange(256)
            ctx.set(crc, value)
            ctx.set(byte, data)
            assert ctx.get(result) == crc16(bytes([data]), value)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="max_burst"):
        FrameBridge(max_burst=0)
    with pytest.raises(TypeError, match="address_width"):
        FrameBridge(address_width=8.0)
    with pytest.raises(ValueError, match="bus_timeout"):
        FrameBridge(bus_timeout=0)
    with pytest.raises(ValueError, match="address_width"):
        RegisterBusSignature(33)


@pytest.mark.parametrize("wait_states", [0, 2])
def test_write_read_round_trip(wait_states):
    requests = [
        Request.write(1, 3, [0x11111111, 0x22222222, 0xDEADBEEF]),
        Request.read(2, 2, 5),
        Request.write(3, 10, [5, 6, 7], fixed_address=True),   # last one wins
        Request.read(4, 10, 2),
        Request.read(5, 5, 3, fixed_address=True),             # same word three times
        Request.read(6, 0, 0),                                 # no-op
    ]
    data = b"".join(request.encode() for request in requests)
    replies, _, slave = check_against_model(data, wait_states=wait_states)
    assert [reply.status for reply in replies] == [Status.OK] * 6
    assert all(reply.answers(request) for reply, request in zip(replies, requests, strict=True))
    assert replies[1].data == (0, 0x11111111, 0x22222222, 0xDEADBEEF, 0)
    assert replies[3].data == (7, 0)
    assert replies[4].data == (0xDEADBEEF,) * 3
    assert slave.words[3:6] == [0x11111111, 0x22222222, 0xDEADBEEF]


def test_crc_error_is_nacked_and_next_frame_works():
    good = Request.write(1, 0, [0x12345678, 0x9ABCDEF0])
    damaged = bytearray(good.raw())
    damaged[9] ^= 0x04  # a data bit; the COBS framing stays intact
    data = cobs_encode(bytes(damaged)) + b"\x00" + good.encode() + Request.read(2, 0, 2).encode()
    replies, model, _ = check_against_model(data)
    assert replies[0].status == Status.NACK_CRC
    assert replies[1].status == Status.OK
    assert replies[2].data == (0x12345678, 0x9ABCDEF0)


def test_resync_after_garbage():
    rng = random.Random(7)
    data = bytearray()
    requests = []
    for seq in range(6):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
        request = Request.write(seq, seq, [rng.randrange(1 << 32)])
        requests.append(request)
        data += garbage + b"\x00" + request.encode()  # a delimiter ends the garbage
    data += b"\x05\x01\x02" + Request.read(9, 0, 6).encode()  # garbage swallows this frame
    data += Request.read(10, 0, 6).encode()                   # ...and the next one works
    replies, _, _ = check_against_model(bytes(data))
    acks = [reply for reply in replies if not reply.status.is_transport_nack]
    assert [reply.seq for reply in acks] == [0, 1, 2, 3, 4, 5, 10]
    assert acks[-1].data == tuple(request.data[0] for request in requests)
    assert any(reply.status == Status.NACK_FRAMING for reply in replies)


def test_repeated_sequence_number_replays_without_executing():
    count_write = Request.write(1, COUNTER_ADDRESS, [0])
    read_counter = Request.read(2, COUNTER_ADDRESS, 1)
    read_again = Request.read(3, COUNTER_ADDRESS, 1)
    data = (count_write.encode() + b"\x00" + count_write.encode()   # retry: replayed
            + read_counter.encode() + read_counter.encode()         # replay of a read
            + Request.write(2, COUNTER_ADDRESS, [5]).encode()       # seq 2, new content: runs
            + read_again.encode())
    replies, model, slave = check_against_model(data)
    assert replies[0] == replies[1] == Reply(1, Status.OK, OP_WRITE, 1)
    assert replies[2] == replies[3] == Reply(2, Status.OK, OP_READ, 1, (1,))
    assert replies[4] == Reply(2, Status.OK, OP_WRITE, 1)
    assert replies[5].data == (2,)  # two writes executed out of three write frames
    assert slave.write_count == 2
    assert model.events["replayed"] == 2


def test_rejects_and_bus_timeout():
    raw_bad_command = bytes([1, 0x43, 0, 0, 0, 0, 0, 0])
    raw_read_with_data = bytes([4, OP_READ, 0, 0, 0, 0, 1, 0, 1, 2, 3, 4])
    data = b"".join([
        cobs_encode(raw_bad_command + crc16(raw_bad_command).to_bytes(2, "big")) + b"\x00",
        Request.read(2, 0, 9).encode(),                        # longer than max_burst (8)
        Request.write(3, 4094, [1, 2, 3]).encode(),            # runs past 2**12
        cobs_encode(raw_read_with_data + crc16(raw_read_with_data).to_bytes(2, "big")) + b"\x00",
        Request.write(5, SILENT_ADDRESS - 2, [1, 2, 3, 4]).encode(),  # times out at word 2
        Request.read(6, SILENT_ADDRESS - 1, 2).encode(),       # times out at word 1
        Request.read(7, COUNTER_ADDRESS, 1).encode(),
    ])
    replies, _, _ = check_against_model(data)
    assert [reply.status for reply in replies] == [
        Status.BAD_COMMAND, Status.BURST_TOO_LONG, Status.BAD_ADDRESS, Status.BAD_LENGTH,
        Status.BUS_TIMEOUT, Status.BUS_TIMEOUT, Status.OK]
    assert replies[4].count == 2
    assert replies[5].count == 1 and replies[5].data == (1,)  # the counter saw 1 write


def test_long_frames_cross_cobs_blocks():
    """Bursts whose raw frames exceed 254 bytes use full COBS blocks (code 0xFF) both ways."""
    rng = random.Random(8)
    words = [rng.randrange(1 << 24, 1 << 32) | 0x01010101 for _ in range(100)]  # no zero bytes
    data = (Request.write(0x11, 0, words).encode() + Request.read(0x12, 0, 100).encode()
            + Request.write(0x13, 0, [0] * 100).encode() + Request.read(0x14, 0, 100).encode())
    assert b"\xff" in Request.write(0x11, 0, words).encode()
    replies, _, _ = check_against_model(data, max_burst=100)
    assert replies[1].data == tuple(words)
    assert replies[3].data == (0,) * 100


def test_single_word_bursts():
    """max_burst = 1: the smallest buffers still carry single words and reject longer bursts."""
    data = (Request.write(1, 5, [9]).encode() + Request.write(2, 5, [1, 2]).encode()
            + Request.read(3, 5, 1).encode() + Request.read(4, 5, 2).encode())
    replies, _, _ = check_against_model(data, max_burst=1)
    assert [reply.status for reply in replies] == [
        Status.OK, Status.BURST_TOO_LONG, Status.OK, Status.BURST_TOO_LONG]
    assert replies[2].data == (9,)


def random_request(rng, seq, max_burst):
    """A well-formed request, mostly inside the slave, sometimes at its edges."""
    operation = rng.choice((OP_WRITE, OP_READ))
    count = rng.choice((0, 1, 1, 2, rng.randrange(max_burst + 1)))
    fixed = rng.random() < 0.2
    address = rng.choice((
        rng.randrange(MEMORY_WORDS - count + 1), rng.randrange(MEMORY_WORDS - count + 1),
        COUNTER_ADDRESS, SILENT_ADDRESS, rng.randrange(1 << ADDRESS_WIDTH),
    ))
    if operation == OP_WRITE:
        words = [rng.choice((0, rng.randrange(1 << 32))) for _ in range(count)]
        return Request.write(seq, address, words, fixed_address=fixed)
    return Request.read(seq, address, count, fixed_address=fixed)


def mutate(rng, frame):
    """Damage a wire frame: flipped bits, a byte dropped, inserted or duplicated, a cut."""
    frame = bytearray(frame)
    kind = rng.randrange(5)
    if kind == 0:
        for _ in range(rng.randrange(1, 4)):
            frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del frame[rng.randrange(len(frame))]
    elif kind == 2:
        frame.insert(rng.randrange(len(frame) + 1), rng.randrange(256))
    elif kind == 3:
        index = rng.randrange(len(frame))
        frame.insert(index, frame[index])
    else:
        frame = frame[:rng.randrange(len(frame))]  # truncated, no delimiter
    return bytes(frame)


def fuzz_stream(rng, cases, max_burst):
    """Random and damaged traffic; after each case, a delimiter and a valid probe request.

    Returns the byte stream and, per case, the probe request and the model's answer to the
    case followed by its probe.
    """
    model, _ = new_model(max_burst)
    stream = bytearray()
    probes = []
    seq = 0
    previous = previous_probe = b"\x00"
    for _ in range(cases):
        seq = (seq + 1) & 0xFF
        choice = rng.random()
        if choice < 0.2:
            chunk = random_request(rng, seq, max_burst).encode()
        elif choice < 0.6:
            chunk = mutate(rng, random_request(rng, seq, max_burst).encode())
        elif choice < 0.75:
            chunk = bytes(rng.choice((0, rng.randrange(256))) for _ in range(rng.randrange(24)))
        elif choice < 0.8:
            chunk = previous or b"\x00"  # a duplicated frame
        elif choice < 0.85:
            chunk = previous_probe  # a host retry of the last probe: replayed, not executed
        else:  # a well-formed frame with nonsense fields and a correct CRC
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(8, 20)))
            chunk = cobs_encode(raw + crc16(raw).to_bytes(2, "big")) + b"\x00"
        previous = chunk
        seq = (seq + 1) & 0xFF
        probe = random_request(rng, seq, max_burst)
        if probe.address == SILENT_ADDRESS:
            probe = Request.read(seq, 0, 1)
        probe_bytes = previous_probe = b"\x00" + probe.encode()
        stream += chunk + probe_bytes
        model.feed(chunk)
        answer = model.feed(probe_bytes)
        probes.append((probe, answer))
    return bytes(stream), probes


def run_fuzz(seed, cases, max_burst=4):
    rng = random.Random(seed)
    stream, probes = fuzz_stream(rng, cases, max_burst)
    for probe, answer in probes:  # the property itself: a valid frame after the mess works
        last = Reply.decode(FrameSplitter().feed(answer)[-1])
        assert last.answers(probe), (probe, last)
        assert last.status in (Status.OK, Status.BAD_ADDRESS, Status.BUS_TIMEOUT)
    replies, _, _ = check_against_model(stream, max_burst=max_burst)
    assert len(replies) >= cases


def test_fuzz_never_hangs_and_recovers():
    """1200 random/damaged frames, each followed by a valid probe (2400 frames in all)."""
    run_fuzz(seed=11, cases=1200)


@pytest.mark.slow
def test_fuzz_long():
    """10000 random/damaged frames with bursts up to 8 words, each followed by a probe."""
    run_fuzz(seed=12, cases=10000, max_burst=8)


# --- Bit level: UartFrameBridge with a host UART in the testbench ---------------------------


def test_uart_frame_bridge_bit_level():
    divisor = 4
    harness = Harness(max_burst=8, uart_divisor=divisor)
    bridge = harness.bridge
    replies = bytearray()
    write = Request.write(1, COUNTER_ADDRESS, [0])
    read = Request.read(2, COUNTER_ADDRESS, 1)
    results = {}

    async def send_byte(ctx, byte, stop_bit=1):
        for bit in [0, *((byte >> i) & 1 for i in range(8)), stop_bit]:
            ctx.set(bridge.rx, bit)
            await ctx.tick().repeat(divisor)

    async def host(ctx):
        damaged = write.encode()
        for index, byte in enumerate(damaged):  # one byte with a broken stop bit: lost
            await send_byte(ctx, byte, stop_bit=0 if index == 3 else 1)
        ctx.set(bridge.rx, 1)
        await ctx.tick().repeat(2 * divisor)
        for byte in b"\x00" + write.encode() + read.encode():
            await send_byte(ctx, byte)
        while replies.count(0) < 3:
            await ctx.tick()
        results.update({name: ctx.get(counter) for name, counter in harness.events.items()})

    async def host_receiver(ctx):
        age = None  # samples since the start edge, None while the line is idle
        byte = 0
        async for _, _, line in ctx.tick().sample(bridge.tx):
            if age is None:
                if line == 0:
                    age, byte = 0, 0
                continue
            age += 1
            bit, offset = divmod(age - divisor // 2, divisor)
            if offset == 0 and 1 <= bit <= 8:
                byte |= line << (bit - 1)
            elif offset == 0 and bit == 9:
                assert line == 1, "stop bit"
                replies.append(byte)
                age = None

    simulate(harness, host, host_receiver, cycles=40_000)
    frames = [Reply.decode(frame) for frame in FrameSplitter().feed(bytes(replies))]
    assert frames[0].status.is_transport_nack
    assert frames[0].encode() in (nack_frame(Status.NACK_CRC), nack_frame(Status.NACK_FRAMING))
    assert frames[1] == Reply(1, Status.OK, OP_WRITE, 1)
    assert frames[2] == Reply(2, Status.OK, OP_READ, 1, (1,))
    assert results["executed"] == 2 and results["nacked"] == 1
