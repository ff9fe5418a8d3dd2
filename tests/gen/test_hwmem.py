"""gen/hwmem.py: a chunked memory reads back what was written, two cycles after the address
(three with the address registered)."""

import json

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from tiersolve.gen.checks import silence_unused
from tiersolve.gen.hwmem import chunked_memory
from tiersolve.gen.sim import run_simulation


@pytest.mark.parametrize("address_register", [False, True])
@pytest.mark.parametrize(("depth", "chunk_depth"), [(13, 4), (16, 4), (5, 8), (40, 16)])
def test_chunked_memory_reads_what_was_written(depth, chunk_depth, address_register):
    m = Module()
    reads, write = chunked_memory(m, "mem", signed(12), depth, read_ports=2,
                                  chunk_depth=chunk_depth, address_register=address_register)
    latency = 3 if address_register else 2
    rng = np.random.default_rng(depth * 31 + chunk_depth)
    words = rng.integers(-2048, 2048, depth)
    # port 0 reads in address order, port 1 in a random order, one address a cycle
    orders = [np.arange(depth), rng.permutation(depth)]
    seen = [[], []]

    async def bench(ctx):
        for address, word in enumerate(words):
            ctx.set(write.addr, address)
            ctx.set(write.data, int(word))
            ctx.set(write.en, 1)
            await ctx.tick()
        ctx.set(write.en, 0)
        for cycle in range(depth + latency):
            for port in range(2):
                if cycle >= latency:  # the word of the address driven `latency` cycles ago
                    seen[port].append(ctx.get(reads[port].data))
                if cycle < depth:
                    ctx.set(reads[port].addr, int(orders[port][cycle]))
            await ctx.tick()

    run_simulation(m, bench)
    for port in range(2):
        assert seen[port] == [int(words[a]) for a in orders[port]]


def test_chunk_depth_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):  # the module is never elaborated
        chunked_memory(silence_unused(Module()), "mem", 8, 10, read_ports=1, chunk_depth=6)


class _OneChunk(wiring.Component):
    """One 512-word chunk, one read port, its registered read data straight to ``q``."""

    def __init__(self, family):
        self.family = family
        super().__init__({"raddr": In(9), "waddr": In(9), "wdata": In(34), "wen": In(1),
                          "q": Out(34)})

    def elaborate(self, platform):
        m = Module()
        (read,), write = chunked_memory(m, "mem", 34, 512, read_ports=1, family=self.family)
        m.d.comb += [read.addr.eq(self.raddr), write.addr.eq(self.waddr),
                     write.data.eq(self.wdata), write.en.eq(self.wen), self.q.eq(read.data)]
        return m


def _block_ram_pins(netlist_path):
    """{pin: signal} of the one DP16KD of a synthesised _OneChunk: the top-level port bit
    (``("wdata", 3)``) that drives an input pin, directly or through a flip-flop (Yosys delays
    the writes of the block RAM it infers by one cycle, as gen/hwmem.py does), or a constant;
    for an output pin, the ``q`` bit it reaches (straight, or through the bypass LUT and the
    flip-flop of an inferred memory)."""
    module = json.loads(netlist_path.read_text())["modules"]["one_chunk"]
    port_of = {bit: (name, index) for name, port in module["ports"].items()
               for index, bit in enumerate(port["bits"])}
    driver, sinks = {}, {}
    for cell in module["cells"].values():
        for pin, bits in cell["connections"].items():
            for bit in bits:
                if cell["port_directions"][pin] == "output":
                    driver[bit] = cell
                else:
                    sinks.setdefault(bit, []).append((cell, pin))

    def source(bit):
        if bit in ("0", "1", "x"):
            return "0" if bit == "x" else bit
        cell = driver.get(bit)
        if bit not in port_of and cell is not None and cell["type"] == "TRELLIS_FF":
            bit = cell["connections"]["DI"][0]
        return port_of.get(bit, "logic")

    def reached(bit, depth=0):
        if bit in port_of:
            return port_of[bit]
        for cell, pin in sinks.get(bit, []):
            if depth < 2 and cell["type"] in ("LUT4", "TRELLIS_FF") and pin in "ABCDDI":
                out = cell["connections"]["Z" if cell["type"] == "LUT4" else "Q"][0]
                found = reached(out, depth + 1)
                if found is not None:
                    return found
        return None

    (ram,) = [cell for cell in module["cells"].values() if cell["type"] == "DP16KD"]
    pins = {}
    for pin, (bit,) in ram["connections"].items():
        if pin.startswith("DO"):
            pins[pin] = reached(bit)
        elif not pin.startswith("CLK"):
            pins[pin] = source(bit)
    return ram["parameters"], pins


@pytest.mark.synth
def test_ecp5_chunk_is_wired_as_yosys_wires_its_block_ram(tmp_path):
    """The DP16KD of an ECP5 chunk (gen/hwmem.Ecp5RegisteredRam) takes every address, data,
    enable and constant pin from the same bit as the block RAM Yosys infers for the plain
    memory, and its outputs reach the same read-data bits (Yosys's through a fabric register,
    ours straight from the output register); only the register mode differs. No model of the
    DP16KD is at hand, so this comparison is the check that the instance is wired right."""
    from tiersolve.boards.synth import synthesize

    found = {}
    for family in (None, "ecp5"):
        workdir = tmp_path / str(family)
        report = synthesize(_OneChunk(family), target="ecp5-85f", top="one_chunk",
                            workdir=workdir)
        assert report.block_rams.used == 1
        found[family] = _block_ram_pins(workdir / "netlist.json")
    (inferred_params, inferred), (ours_params, ours) = found[None], found["ecp5"]
    assert inferred_params["REGMODE_A"] == inferred_params["REGMODE_B"] == "NOREG"
    assert ours_params["REGMODE_A"] == ours_params["REGMODE_B"] == "OUTREG"
    for name in ("DATA_WIDTH_A", "DATA_WIDTH_B", "CSDECODE_A", "CSDECODE_B"):
        assert int(str(ours_params[name]), 2 if name.startswith("DATA") else 0) == \
            int(str(inferred_params[name]), 2 if name.startswith("DATA") else 0), name
    # every pin of the inferred block RAM that carries a signal carries the same one in ours
    signals = {pin: role for pin, role in inferred.items() if isinstance(role, tuple)}
    assert sorted(role for role in signals.values() if role[0] == "q") == \
        [("q", bit) for bit in range(34)]
    assert sorted(role for role in signals.values() if role[0] == "wdata") == \
        [("wdata", bit) for bit in range(34)]
    assert {pin: ours.get(pin) for pin in signals} == signals
    # and the constants agree, except the output enable of port A (our output register of the
    # low half is enabled; Yosys leaves it off, unused without the register)
    for pin, role in inferred.items():
        if role in ("0", "1") and pin != "OCEA":
            assert ours[pin] == role, pin
    assert ours["OCEA"] == ours["OCEB"] == "1"



@pytest.mark.parametrize("model", [False, True])
@pytest.mark.parametrize("address_register", [False, True])
def test_reads_meeting_writes_behave_as_the_plain_memory(monkeypatch, model, address_register):
    """Random writes and reads on two ports, many of them meeting (same word, same cycle, or
    the cycle after): every read returns the word as it was before the writes of its access
    cycle. With MODEL_ECP5_BLOCK_RAMS the chunks are the ECP5 structure (registered write,
    bypass, a block RAM model whose colliding reads return garbage): the same words."""
    from tiersolve.gen import hwmem

    monkeypatch.setattr(hwmem, "MODEL_ECP5_BLOCK_RAMS", model)
    depth, cycles = 12, 300
    m = Module()
    reads, write = chunked_memory(m, "mem", signed(10), depth, read_ports=2, chunk_depth=8,
                                  address_register=address_register)
    rng = np.random.default_rng(5 + model + 2 * address_register)
    writes = [(bool(rng.random() < 0.7), int(rng.integers(4)), int(rng.integers(-512, 512)))
              for _ in range(cycles)]
    addresses = rng.integers(4, size=(cycles, 2))  # a few words: reads meet writes often
    access = int(address_register)  # cycles from driving an address to the access
    latency = 2 + access
    seen = [[], []]

    async def bench(ctx):
        for cycle in range(cycles + latency):
            if cycle < cycles:
                en, address, data = writes[cycle]
                ctx.set(write.en, en)
                ctx.set(write.addr, address)
                ctx.set(write.data, data)
                for port in range(2):
                    ctx.set(reads[port].addr, int(addresses[cycle][port]))
            else:
                ctx.set(write.en, 0)
            await ctx.tick()
            for port in range(2):
                if cycle + 1 >= latency:
                    seen[port].append(ctx.get(reads[port].data))

    run_simulation(m, bench)
    state, expected = [0] * depth, [[], []]
    contents = []  # contents[t]: the words before the writes of cycle t
    for en, address, data in writes + [(False, 0, 0)] * latency:
        contents.append(list(state))
        if en:
            state[address] = data
    for cycle in range(cycles):
        for port in range(2):
            expected[port].append(contents[cycle + access][int(addresses[cycle][port])])
    for port in range(2):
        assert seen[port][:cycles] == expected[port]
    met = sum(en and address in addresses[t + 1] for t, (en, address, _) in
              enumerate(writes[:-1]))
    assert met > 50  # the case the bypass exists for is exercised
