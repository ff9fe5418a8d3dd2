"""The gateware rounding and saturation helpers equal their NumPy twins bit for bit."""

import re
import subprocess

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator
from tiersolve.gen import hwfixed
from tiersolve.gen.checks import silence_unused
from tiersolve.gen.fixed import FixedFormat, round_shift, saturate
from tiersolve.gen.sim import run_simulation


def _simulate(width, build, values):
    m = Module()
    inp = Signal(signed(width))
    outs = build(inp)
    sigs = []
    for out in outs:
        sig = Signal(out.shape())
        m.d.comb += sig.eq(out)
        sigs.append(sig)
    results = []

    async def bench(ctx):
        for v in values:
            ctx.set(inp, int(v))
            results.append(tuple(ctx.get(s) for s in sigs))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return results


def _values(width, count, seed):
    rng = np.random.default_rng(seed)
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    edges = [lo, lo + 1, -1, 0, 1, hi - 1, hi]
    return np.concatenate([edges, rng.integers(lo, hi + 1, count)]).astype(np.int64)


@pytest.mark.parametrize("rounding", ["nearest-even", "nearest-up", "truncate"])
@pytest.mark.parametrize("width, shift", [(12, 3), (20, 1), (36, 12)])
def test_round_shift(width, shift, rounding):
    values = _values(width, 400, shift)
    # every tie pattern around zero too
    values = np.concatenate([values, np.arange(-(2**shift) * 3, 2**shift * 3)])
    got = _simulate(width, lambda v: [hwfixed.round_shift(v, shift, rounding)], values)
    want = round_shift(values, shift, rounding)
    assert [g[0] for g in got] == want.tolist()


@pytest.mark.parametrize("width, fmt", [(12, FixedFormat(2, 4)), (40, FixedFormat(6, 12))])
def test_saturate(width, fmt):
    values = _values(width, 400, width)
    values = np.concatenate([values, [fmt.min_int - 1, fmt.min_int, fmt.max_int, fmt.max_int + 1]])
    got = _simulate(width, lambda v: list(hwfixed.saturate(v, fmt)), values)
    want, mask = saturate(values, fmt)
    assert [g[0] for g in got] == want.tolist()
    assert [bool(g[1]) for g in got] == mask.tolist()


def test_saturate_narrow_value_passes_through():
    fmt = FixedFormat(6, 12)
    values = _values(10, 50, 0)
    got = _simulate(10, lambda v: list(hwfixed.saturate(v, fmt)), values)
    assert [g[0] for g in got] == values.tolist()
    assert not any(g[1] for g in got)


def test_round_shift_rejects_unsigned():
    with pytest.raises(TypeError, match="signed"):
        hwfixed.round_shift(Signal(8), 2)


@pytest.mark.parametrize("width_a, width_b, signed_b",
                         [(24, 24, True), (24, 18, True), (18, 18, True), (36, 20, True),
                          (7, 30, True), (43, 21, True), (22, 18, False), (19, 19, False)])
def test_pipelined_product_is_exact(width_a, width_b, signed_b):
    """The split multiplier gives the exact product, ``product_latency`` cycles after its
    operands, free running (a new pair every cycle), on every pair of range limits and random
    operands; an unsigned operand is zero-extended (it would differ on a lost carry or sign)."""
    from amaranth.hdl import unsigned
    from tiersolve.gen.fixed import product_latency
    from tiersolve.gen.hwfixed import pipelined_product

    rng = np.random.default_rng(width_a * 100 + width_b)
    limits_a = [-(1 << (width_a - 1)), -1, 0, 1, (1 << (width_a - 1)) - 1]
    limits_b = ([-(1 << (width_b - 1)), -1, 0, 1, (1 << (width_b - 1)) - 1] if signed_b
                else [0, 1, (1 << width_b) - 1])
    pairs = [(a, b) for a in limits_a for b in limits_b]
    pairs += [(int(a), int(b)) for a, b in zip(rng.integers(limits_a[0], limits_a[-1] + 1, 200),
                                               rng.integers(limits_b[0], limits_b[-1] + 1, 200),
                                               strict=True)]
    latency = product_latency(width_a, width_b + (0 if signed_b else 1))
    m = Module()
    a = Signal(signed(width_a))
    b = Signal(signed(width_b) if signed_b else unsigned(width_b))
    product = Signal(signed(width_a + width_b + 1))
    m.d.comb += product.eq(pipelined_product(m, a, b, "product"))
    got = []

    async def bench(ctx):
        for cycle in range(len(pairs) + latency):
            if cycle < len(pairs):
                ctx.set(a, pairs[cycle][0])
                ctx.set(b, pairs[cycle][1])
            await ctx.tick()
            if cycle >= latency - 1 and len(got) < len(pairs):
                got.append(ctx.get(product))

    run_simulation(m, bench)
    assert got == [x * y for x, y in pairs]


def _ecp5_fragment(elaboratable):
    """``elaboratable`` elaborated as an ECP5 board build or synthesis sees it."""
    from amaranth.hdl import Fragment
    from tiersolve.boards.synth import _FamilyOnly

    return Fragment.get(elaboratable, _FamilyOnly("ecp5"))


def _instances(fragment):
    from amaranth.hdl import Instance

    found = [fragment] if isinstance(fragment, Instance) else []
    for child, _name, *_ in fragment.subfragments:
        found += _instances(child)
    return found


@pytest.mark.parametrize("width_a, width_b", [(18, 18), (12, 7), (1, 18)])
def test_registered_product_on_ecp5_is_one_registered_dsp(width_a, width_b):
    """For ECP5 the product is a MULT18X18D whose output register is the product's register
    (inputs not registered, signed, operands sign-extended to 18 bits); elsewhere a register."""
    from amaranth.hdl import Fragment
    from tiersolve.gen.hwfixed import RegisteredProduct

    product = RegisteredProduct(width_a, width_b)
    dsp, = _instances(_ecp5_fragment(product))
    assert dsp.type == "MULT18X18D"
    assert dsp.parameters["REG_OUTPUT_CLK"] == "CLK0"
    for register in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_PIPELINE_CLK"):
        assert dsp.parameters[register] == "NONE"
    ports = dsp.ports
    assert {f"A{bit}" for bit in range(18)} <= set(ports)
    assert {f"P{bit}" for bit in range(36)} <= set(ports)
    assert ports["SIGNEDA"][0].value == 1 and ports["SIGNEDB"][0].value == 1
    assert not _instances(Fragment.get(RegisteredProduct(width_a, width_b), None))


def test_registered_product_rejects_wide_or_unsigned_operands():
    from amaranth.hdl import unsigned
    from tiersolve.gen.hwfixed import RegisteredProduct, registered_product

    with pytest.raises(ValueError, match="operand widths"):
        RegisteredProduct(19, 4)
    with pytest.raises(TypeError, match="signed"):  # the module is never elaborated
        registered_product(silence_unused(Module()), Signal(unsigned(4)), Signal(signed(4)), "p")


def test_pipelined_product_on_ecp5_uses_one_dsp_per_partial_product():
    """24 x 24 bits: 2 x 2 pieces, four MULT18X18D; a constant operand is left to Yosys."""
    from amaranth.hdl import Const, Elaboratable
    from tiersolve.gen.hwfixed import pipelined_product

    class Wide(Elaboratable):
        def __init__(self, b=None):
            self.b = b

        def elaborate(self, platform):
            m = Module()
            b = Signal(signed(24)) if self.b is None else self.b
            pipelined_product(m, Signal(signed(24)), b, "wide")
            return m

    assert len(_instances(_ecp5_fragment(Wide()))) == 4
    assert _instances(_ecp5_fragment(Wide(Const(-3, signed(24))))) == []


def test_product_latency():
    """One cycle up to 18 x 18 bits, then one more per level of the partial products' sum."""
    from tiersolve.gen.fixed import product_latency

    assert [product_latency(*widths) for widths in
            [(18, 18), (22, 18), (24, 24), (38, 20), (43, 21), (7, 30)]] == [1, 2, 3, 4, 4, 2]


@pytest.mark.parametrize("width, shift, out_width", [(40, 12, 18), (20, 3, 8), (12, 0, 8)])
def test_round_clip_equals_model_primitives(width, shift, out_width):
    """The one-adder round-to-nearest-even and the carry-free clip (the cores' rounding and
    clipping stages) equal ``round_shift`` + ``saturate`` on random values, every tie pattern
    near zero and the range limits."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator
    from tiersolve.gen.fixed import round_shift, saturate
    from tiersolve.gen.hwfixed import clip_width, round_even

    rng = np.random.default_rng(width)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = np.concatenate([rng.integers(lo, hi + 1, 300), [lo, lo + 1, -1, 0, 1, hi - 1, hi],
                             np.arange(-(4 << shift), 4 << shift)]).astype(np.int64)
    fmt = FixedFormat(out_width - max(1, out_width // 2), max(1, out_width // 2))
    want, want_clipped = saturate(round_shift(values, shift, "nearest-even"), fmt)
    m = Module()
    inp = Signal(signed(width))
    result, clipped = clip_width(round_even(inp, shift), out_width)
    out, flag = Signal(signed(out_width)), Signal()
    m.d.comb += [out.eq(result), flag.eq(clipped)]
    got = []

    async def bench(ctx):
        for value in values:
            ctx.set(inp, int(value))
            got.append((ctx.get(out), ctx.get(flag)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert [g for g, _ in got] == want.tolist()
    assert [bool(c) for _, c in got] == want_clipped.tolist()


def _control_design(core: str):
    """A small core whose control state machine asks for one-hot: ``cholesky``, ``qr``
    (CORDIC) or ``updater-<rotation>`` (with FOLD)."""
    from tiersolve.gen.cholesky import CholeskySolver
    from tiersolve.gen.qr import IncrementalUpdater, QRSolver

    if core == "cholesky":
        return CholeskySolver(8, 2, "Q6.12", 2)
    if core == "qr":
        return QRSolver(4, 1, "Q6.12", units=2, rotation="cordic")
    return IncrementalUpdater(4, 1, "Q6.12", units=2, rotation=core.split("-")[1])


@pytest.mark.parametrize("core, state", [("cholesky", "control_state"),
                                         ("updater-multiplier", "sequencer_state")])
def test_control_state_machines_ask_yosys_for_one_hot(core, state):
    # the attribute is all one_hot_state does: it must reach the state register in the RTLIL
    # that Yosys reads (without it Yosys keeps Amaranth's binary encoding)
    from amaranth.back import rtlil

    text = rtlil.convert(_control_design(core))
    wire = text.index(f"\\{state}\n")
    attributes = text[text.rfind("\n\n", 0, wire):wire]
    assert 'attribute \\fsm_encoding "one-hot"' in attributes


@pytest.mark.parametrize("core, state", [("cholesky", "control_state"),
                                         ("updater-cordic", "sequencer_state"),
                                         ("updater-multiplier", "sequencer_state"),
                                         ("qr", "sequencer_state")])
def test_yosys_encodes_the_control_state_machines_one_hot(core, state, tmp_path):
    # the attribute only asks: Yosys's fsm pass declines a state register whose next-state
    # logic it cannot follow (a switch that proc_rom turned into a ROM did that to the
    # updater's sequencer), and then the state stays binary, every state test a decode
    from amaranth.back import verilog
    from tiersolve.boards.synth import find_tool

    (tmp_path / "core.v").write_text(verilog.convert(_control_design(core), name="top"))
    subprocess.run([*find_tool("yosys"), "-q", "-l", "yosys.log", "-p",
                    "read_verilog core.v; synth_ecp5 -top top -run :map_ram"],
                   cwd=tmp_path, check=True, capture_output=True)
    log = (tmp_path / "yosys.log").read_text()
    assert re.search(rf"Recoding FSM `\$fsm\$\\{state}\$\d+' from module `\\top' using "
                     r"`one-hot' encoding", log), f"{state} was not encoded one-hot"
