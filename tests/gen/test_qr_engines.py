"""Bit-exact simulation of :class:`tiersolve.gen.qr_engines.QREngines` against
:class:`tiersolve.gen.qr_model.QREnginesModel`: FOLDs spread over the engines, their factors
merged into engine 0's when the whole factor is needed, SOLVE and READ through engine 0."""

from __future__ import annotations

import numpy as np
import pytest
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.qr import Op, Select
from tiersolve.gen.qr_engines import QREngines
from tiersolve.gen.qr_model import QRConfig, QREnginesModel, QRSolverModel, UpdaterEnginesModel
from tiersolve.gen.sim import run_simulation, stream_get, stream_put


def random_rows(fmt, rng, count, n, k, scale=0.5):
    values = fmt.quantise(rng.uniform(-scale, scale, (count, n + k))).values
    return [(v[:n], v[n:]) for v in values]


def run_engines(dut, n, k, script, deadline=4e-3):
    """Run ``script`` on ``dut``: ``("reset", lam_sqrt)``, ``("fold", rows)`` (the even rows on
    ``i``, the odd ones on ``i_odd``; a single row on ``i``), ``("solve",)``, ``("read",
    select)``, and for updaters ``("update", h, t, b)`` (``b`` the forgetting constant, None:
    none), ``("downdate", h, t)``, ``("predict", h)``. Returns, per step, ``(values read,
    cycles)``, and the flags at the end."""
    w = dut.fmt.width
    got = {"steps": []}
    folds = [step[1] for step in script if step[0] == "fold"]

    def command(op, select=0, value=0):
        return {"op": op, "select": select, "n": n, "k": k, "value": value,
                "forgetting": 1 << w}

    async def main(ctx):
        for step in script:
            name, values = step[0], []
            if name == "reset":
                await stream_put(ctx, dut.command, command(Op.RESET, value=step[1]))
            elif name == "fold":
                rows = step[1]
                await stream_put(ctx, dut.command, command(Op.FOLD, value=len(rows)))
                for h, t in rows[0::2] if len(rows) > 1 else rows:
                    for v in [*h, *t]:
                        await stream_put(ctx, dut.i, int(v))
            elif name == "solve":
                await stream_put(ctx, dut.command, command(Op.SOLVE))
            elif name in ("update", "downdate"):
                payload = command(Op.UPDATE if name == "update" else Op.DOWNDATE)
                if name == "update" and step[3] is not None:
                    payload["forgetting"] = step[3]
                await stream_put(ctx, dut.command, payload)
                for v in [*step[1], *step[2]]:
                    await stream_put(ctx, dut.i, int(v))
            elif name == "predict":
                await stream_put(ctx, dut.command, command(Op.PREDICT))
                for v in step[1]:
                    await stream_put(ctx, dut.i, int(v))
                values = [(await stream_get(ctx, dut.o)).value for _ in range(k)]
            else:
                await stream_put(ctx, dut.command, command(Op.READ, step[1]))
                count = n * n if step[1] == Select.R else n * k
                values = [(await stream_get(ctx, dut.o)).value for _ in range(count)]
            await ctx.tick()
            while ctx.get(dut.busy):
                await ctx.tick()
            got["steps"].append((values, ctx.get(dut.cycles)))
            got.setdefault("saturated_after", []).append(ctx.get(dut.saturated))
        got["saturated"] = ctx.get(dut.saturated)
        got["bad_command"] = ctx.get(dut.bad_command)

    async def odd(ctx):
        for rows in folds:
            if len(rows) > 1:
                for h, t in rows[1::2]:
                    for v in [*h, *t]:
                        await stream_put(ctx, dut.i_odd, int(v))

    run_simulation(dut, main, odd, deadline=deadline)
    return got


def model_reads(model, script):
    """What the model gives for each READ of ``script`` (in order)."""
    reads = []
    for step in script:
        if step[0] == "reset":
            model.reset(step[1])
        elif step[0] == "fold":
            model.fold_rows(np.array([h for h, _ in step[1]]), np.array([t for _, t in step[1]]))
        elif step[0] == "solve":
            W = model.solve()
        elif step[0] == "update":
            model.update_with_constant(step[1], step[2], step[3]) if step[3] is not None \
                else model.fold(step[1], step[2])
        elif step[0] == "downdate":
            model.downdate(step[1], step[2])
        elif step[0] == "predict":
            reads.append([int(v) for v in model.predict(step[1])])
        elif step[1] == Select.W:
            reads.append([int(v) for v in np.ravel(W)])
        else:
            matrix = model.R if step[1] == Select.R else model.Z
            reads.append([int(v) for v in np.ravel(matrix)])
    return reads


@pytest.mark.parametrize("rotation, engines, units, n, k, counts", [
    ("cordic", 2, 1, 3, 1, [5, 3, 1, 2]),
    ("multiplier", 2, 2, 4, 2, [6]),
    ("multiplier", 4, 1, 3, 1, [7, 3]),
])
def test_spread_folds_give_the_models_integers(rotation, engines, units, n, k, counts):
    """FOLDs of several rows spread over the engines, one after another into the same
    factors (fewer rows than engines too), a FOLD of one row (engine 0's, after the merge),
    SOLVE (after the merge), READ: R, Z and W are the model's, bit for bit."""
    fmt = FixedFormat(4, 12)
    rng = np.random.default_rng(engines * 10 + n)
    dut = QREngines(4, 2, fmt, engines=engines, units=units, rotation=rotation)
    folds = [random_rows(fmt, rng, count, n, k) for count in counts]
    script = [("reset", fmt.const(0.5)), *(("fold", rows) for rows in folds), ("solve",),
              ("read", Select.R), ("read", Select.Z), ("read", Select.W)]
    model = QREnginesModel(QRConfig(fmt, rotation), n, k, fmt.const(0.5), engines=engines)
    expected = model_reads(model, script)
    got = run_engines(dut, n, k, script)
    assert [values for values, _ in got["steps"] if values] == expected
    assert (got["saturated"], got["bad_command"]) == (int(model.saturated), 0)
    # the merge gives other integers than one fold a row, for the same problem
    sequential = QRSolverModel(QRConfig(fmt, rotation), n, k, fmt.const(0.5))
    for rows in folds:
        sequential.fold_rows(np.array([h for h, _ in rows]), np.array([t for _, t in rows]))
    assert not np.array_equal(sequential.R, model.R)
    assert np.allclose(sequential.R.astype(float), model.R.astype(float), atol=64)


def test_a_reset_drops_the_engines_rows_and_a_read_merges_them():
    """A RESET after a spread FOLD leaves the other engines' rows out of the next factor; a
    READ of R after a spread FOLD merges first, and its cycles count the merge."""
    fmt = FixedFormat(4, 12)
    n, k = 3, 1
    rng = np.random.default_rng(4)
    dut = QREngines(4, 2, fmt, engines=2, units=1, rotation="multiplier")
    first, second = random_rows(fmt, rng, 4, n, k), random_rows(fmt, rng, 3, n, k)
    script = [("reset", fmt.const(0.5)), ("fold", first), ("reset", fmt.const(0.25)),
              ("fold", second), ("read", Select.R), ("read", Select.R)]
    model = QREnginesModel(QRConfig(fmt, "multiplier"), n, k, fmt.const(0.5), engines=2)
    expected = model_reads(model, script)
    got = run_engines(dut, n, k, script)
    assert [values for values, _ in got["steps"] if values] == expected
    assert expected[0] == expected[1]
    fresh = QREnginesModel(QRConfig(fmt, "multiplier"), n, k, fmt.const(0.25), engines=2)
    fresh.fold_rows(np.array([h for h, _ in second]), np.array([t for _, t in second]))
    assert expected[0] == [int(v) for v in np.ravel(fresh.R)]
    (_, merged_read), (_, plain_read) = got["steps"][4:]
    assert merged_read > plain_read + 3 * (n + k)     # the first READ merged 3 rows first


@pytest.mark.parametrize("rotation", ["cordic", "multiplier"])
def test_updater_engines_merge_before_every_other_command(rotation):
    """Updaters as engines: spread FOLDs, then an UPDATE with forgetting, a DOWNDATE (each
    after the merge, on engine 0), another spread FOLD, SOLVE, PREDICT and READ: the
    integers of UpdaterEnginesModel."""
    fmt = FixedFormat(4, 12)
    n, k = 3, 1
    rng = np.random.default_rng(7)
    dut = QREngines(4, 2, fmt, engines=2, units=1, rotation=rotation, core="updater")
    config = QRConfig(fmt, rotation)
    first, second = random_rows(fmt, rng, 5, n, k), random_rows(fmt, rng, 4, n, k)
    (h, t), (hd, td) = random_rows(fmt, rng, 2, n, k, scale=0.1)
    script = [("reset", fmt.const(0.5)), ("fold", first),
              ("update", h, t, config.forgetting_constant(0.9)), ("downdate", *first[0]),
              ("fold", second), ("solve",), ("predict", hd), ("read", Select.R),
              ("read", Select.Z), ("read", Select.W)]
    model = UpdaterEnginesModel(config, n, k, fmt.const(0.5), engines=2)
    expected = model_reads(model, script)
    got = run_engines(dut, n, k, script)
    assert [values for values, _ in got["steps"] if values] == expected
    assert (got["saturated"], got["bad_command"]) == (int(model.saturated), 0)
    with pytest.raises(ValueError, match="core must be"):
        QREngines(4, 2, fmt, core="cholesky")


def test_a_clip_in_another_engine_shows_before_the_merge():
    """Rows that clip only in engine 1's factor set ``saturated`` as soon as the FOLD ends,
    before any merge, as the model's flag does."""
    fmt = FixedFormat(4, 12)
    n, k = 3, 1
    rng = np.random.default_rng(11)
    dut = QREngines(4, 2, fmt, engines=2, units=1, rotation="multiplier")
    rows = random_rows(fmt, rng, 6, n, k, scale=0.1)
    big = fmt.quantise(np.full(n + k, 6.0)).values
    rows[1::2] = [(big[:n], big[n:])] * 3          # engine 1's rows: |R[0, 0]| > 8 clips
    script = [("reset", fmt.const(0.5)), ("fold", rows), ("read", Select.R)]
    model = QREnginesModel(QRConfig(fmt, "multiplier"), n, k, fmt.const(0.5), engines=2)
    model.reset(fmt.const(0.5))
    model.fold_rows(np.array([h for h, _ in rows]), np.array([t for _, t in rows]))
    assert model.saturated and not model.holds[0] and model.holds[1]
    got = run_engines(dut, n, k, script)
    assert got["saturated_after"] == [0, 1, 1]


def test_engines_must_be_a_power_of_two():
    fmt = FixedFormat(4, 12)
    for engines in (1, 3, 128):
        with pytest.raises(ValueError, match="power of two"):
            QREngines(4, 2, fmt, engines=engines)
    with pytest.raises(TypeError, match="engines"):
        QREngines(4, 2, fmt, engines=2.0)
