"""Bit-exact simulation of :class:`tiersolve.gen.qr_engines.QREngines` against
:meth:`tiersolve.gen.qr_model.QRSolverModel.fold_rows_in_engines`: a FOLD spread over the
engines, their factors merged into engine 0's, then SOLVE and READ through engine 0."""

from __future__ import annotations

import numpy as np
import pytest
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.qr import Op, Select
from tiersolve.gen.qr_engines import QREngines
from tiersolve.gen.qr_model import QRConfig, QRSolverModel
from tiersolve.gen.sim import run_simulation, stream_get, stream_put


def random_rows(fmt, rng, count, n, k, scale=0.5):
    values = fmt.quantise(rng.uniform(-scale, scale, (count, n + k))).values
    return [(v[:n], v[n:]) for v in values]


def run_engines(dut, n, k, lam_sqrt, folds, deadline=4e-3):
    """RESET, then one FOLD per entry of ``folds`` (a list of row lists; the even rows on
    ``i``, the odd ones on ``i_odd``), then SOLVE and READ R, Z, W. Returns the integers read,
    the flags and the cycles of each FOLD."""
    w = dut.fmt.width
    got = {"cycles": []}
    odd_rows = [[v for h, t in rows[1::2] for v in [*h, *t]] for rows in folds]

    def command(op, select=0, value=0):
        return {"op": op, "select": select, "n": n, "k": k, "value": value,
                "forgetting": 1 << w}

    async def wait_idle(ctx):
        await ctx.tick()
        while ctx.get(dut.busy):
            await ctx.tick()

    async def main(ctx):
        await stream_put(ctx, dut.command, command(Op.RESET, value=lam_sqrt))
        await wait_idle(ctx)
        for rows in folds:
            await stream_put(ctx, dut.command, command(Op.FOLD, value=len(rows)))
            for h, t in rows[0::2] if len(rows) > 1 else rows:
                for v in [*h, *t]:
                    await stream_put(ctx, dut.i, int(v))
            await wait_idle(ctx)
            got["cycles"].append(ctx.get(dut.cycles))
        await stream_put(ctx, dut.command, command(Op.SOLVE))
        await wait_idle(ctx)
        for select, count in ((Select.R, n * n), (Select.Z, n * k), (Select.W, n * k)):
            await stream_put(ctx, dut.command, command(Op.READ, select))
            got[select] = [(await stream_get(ctx, dut.o)).value for _ in range(count)]
            await wait_idle(ctx)
        got["saturated"] = ctx.get(dut.saturated)
        got["bad_command"] = ctx.get(dut.bad_command)

    async def odd(ctx):
        for rows, values in zip(folds, odd_rows, strict=True):
            if len(rows) > 1:
                for v in values:
                    await stream_put(ctx, dut.i_odd, int(v))

    run_simulation(dut, main, odd, deadline=deadline)
    return got


@pytest.mark.parametrize("rotation, engines, units, n, k, counts", [
    ("cordic", 2, 1, 3, 1, [5, 1, 2]),
    ("multiplier", 2, 2, 4, 2, [6]),
    ("multiplier", 4, 1, 3, 1, [7, 3]),
])
def test_a_spread_fold_gives_the_models_integers(rotation, engines, units, n, k, counts):
    """FOLDs of several rows spread over the engines (fewer rows than engines too), a FOLD of
    one row that stays on engine 0, then SOLVE: R, Z and W are the model's, bit for bit."""
    fmt = FixedFormat(4, 12)
    rng = np.random.default_rng(engines * 10 + n)
    dut = QREngines(4, 2, fmt, engines=engines, units=units, rotation=rotation)
    model = QRSolverModel(QRConfig(fmt, rotation), n, k, fmt.const(0.5))
    folds = [random_rows(fmt, rng, count, n, k) for count in counts]
    for rows in folds:
        H = np.array([h for h, _ in rows])
        T = np.array([t for _, t in rows])
        if len(rows) > 1:
            model.fold_rows_in_engines(H, T, engines)
        else:
            model.fold_rows(H, T)
    W = model.solve()
    got = run_engines(dut, n, k, fmt.const(0.5), folds)
    assert got[Select.R] == [int(v) for v in np.ravel(model.R)]
    assert got[Select.Z] == [int(v) for v in np.ravel(model.Z)]
    assert got[Select.W] == [int(v) for v in np.ravel(W)]
    assert (got["saturated"], got["bad_command"]) == (int(model.saturated), 0)
    # the spread FOLD's integers differ from one fold a row (the merge), the problem does not
    sequential = QRSolverModel(QRConfig(fmt, rotation), n, k, fmt.const(0.5))
    for rows in folds:
        sequential.fold_rows(np.array([h for h, _ in rows]), np.array([t for _, t in rows]))
    assert not np.array_equal(sequential.R, model.R)
    assert np.allclose(sequential.R.astype(float), model.R.astype(float), atol=64)


def test_engines_must_be_a_power_of_two():
    fmt = FixedFormat(4, 12)
    for engines in (1, 3, 128):
        with pytest.raises(ValueError, match="power of two"):
            QREngines(4, 2, fmt, engines=engines)
    with pytest.raises(TypeError, match="engines"):
        QREngines(4, 2, fmt, engines=2.0)
