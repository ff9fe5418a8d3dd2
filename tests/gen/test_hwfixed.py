"""The gateware rounding and saturation helpers equal their NumPy twins bit for bit."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator
from tiersolve.gen import hwfixed
from tiersolve.gen.fixed import FixedFormat, round_shift, saturate


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
