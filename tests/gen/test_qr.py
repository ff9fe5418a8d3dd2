"""Bit-exact simulation tests of :mod:`tiersolve.gen.qr` against :mod:`tiersolve.gen.qr_model`.

Each test runs a script of commands through the Amaranth simulator and through the model and
compares every integer read back (``R``, ``Z``, ``W``, predictions) and the flags. Sizes are
small (n <= 5) because the Python simulator runs about 25k cycles/s.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.qr import FoldKind, IncrementalUpdater, Op, QRSolver, Select
from tiersolve.gen.qr_model import IncrementalUpdaterModel, QRConfig, QRSolverModel
from tiersolve.gen.sim import run_simulation, stream_get, stream_put


def run_script(dut, script, n, k, deadline=2e-3):
    """Run ``script`` (a list of ``(op, args)``) on ``dut``; return what came back.

    Ops: ``("reset", lam_sqrt)``, ``("update", h, t, forgetting)``, ``("downdate", h, t)``,
    ``("solve",)``, ``("predict", h)``, ``("read", select)``, ``("load", select, values)``,
    ``("fold", [(h, t), ...])`` (its ``value`` is the row count; ``("fold", rows, count)``
    sends ``count`` instead, for the bad-command tests, None: the row count;
    ``("fold", rows, count, forgetting)`` folds with forgetting), ``("fold_downdate", [(h, t),
    ...])`` (FOLD with select FoldKind.DOWNDATE; ``("fold_downdate", rows, forgetting)``
    sends that constant, for the bad-command test).
    Returns a list with, per op, ``(values_out, flags)``; ``flags`` are ``refused``,
    ``saturated``, ``bad_command``, ``cycles`` after the op.
    """
    w = dut.fmt.width
    results = []

    async def bench(ctx):
        for step in script:
            name = step[0]
            op = {"reset": Op.RESET, "update": Op.UPDATE, "downdate": Op.DOWNDATE,
                  "solve": Op.SOLVE, "predict": Op.PREDICT, "read": Op.READ,
                  "load": Op.LOAD, "fold": Op.FOLD, "fold_downdate": Op.FOLD}[name]
            payload = {"op": op, "select": 0, "n": n, "k": k, "value": 0,
                       "forgetting": 1 << w}
            inputs, outputs = [], 0
            if name == "reset":
                payload["value"] = int(step[1])
            elif name in ("update", "downdate"):
                inputs = [int(v) for v in step[1]] + [int(v) for v in step[2]]
                if name == "update" and len(step) > 3 and step[3] is not None:
                    payload["forgetting"] = int(step[3])
            elif name == "predict":
                inputs = [int(v) for v in step[1]]
                outputs = k
            elif name == "read":
                payload["select"] = step[1]
                outputs = n * n if step[1] == Select.R else n * k
            elif name == "load":
                payload["select"] = step[1]
                inputs = [int(v) for v in np.ravel(step[2])]
            elif name == "fold":
                inputs = [int(v) for h, t in step[1] for v in [*h, *t]]
                payload["value"] = (step[2] if len(step) > 2 and step[2] is not None
                                    else len(step[1]))
                if len(step) > 3 and step[3] is not None:
                    payload["forgetting"] = int(step[3])
            elif name == "fold_downdate":
                inputs = [int(v) for h, t in step[1] for v in [*h, *t]]
                payload["value"] = len(step[1])
                payload["select"] = FoldKind.DOWNDATE
                if len(step) > 2:
                    payload["forgetting"] = int(step[2])
            await stream_put(ctx, dut.command, payload)
            await ctx.tick()    # the core checks the command in the cycle after the transfer
            if ctx.get(dut.bad_command):
                inputs, outputs = [], 0
            for value in inputs:
                await stream_put(ctx, dut.i, value)
            values = []
            for _ in range(outputs):
                out = await stream_get(ctx, dut.o)
                values.append(out.value)
            while ctx.get(dut.busy):
                await ctx.tick()
            results.append((values, {"refused": ctx.get(dut.refused),
                                     "saturated": ctx.get(dut.saturated),
                                     "bad_command": ctx.get(dut.bad_command),
                                     "cycles": ctx.get(dut.cycles)}))

    run_simulation(dut, bench, deadline=deadline)
    return results


def model_script(model, script):
    """What :func:`run_script` must return, from the model (cycles excluded)."""
    results = []
    n, k = model.n, model.k
    for step in script:
        name = step[0]
        values = []
        if name == "reset":
            model.__init__(model.config, n, k, int(step[1]))
            model.last_refused = False      # (an attribute of this harness: clear it too)
        elif name == "update":
            forgetting = step[3] if len(step) > 3 else None
            if isinstance(model, IncrementalUpdaterModel) and forgetting is not None:
                model.update_with_constant(step[1], step[2], forgetting)
            else:
                model.fold(step[1], step[2])
        elif name == "downdate":
            model.last_refused = model.downdate(step[1], step[2]).refused
        elif name == "fold_downdate":
            H = np.array([h for h, _ in step[1]])
            T = np.array([t for _, t in step[1]])
            model.last_refused = model.fold_downdate(H, T).refused
        elif name == "fold":
            forgetting = step[3] if len(step) > 3 else None
            for h, t in step[1]:
                if isinstance(model, IncrementalUpdaterModel) and forgetting is not None:
                    model.update_with_constant(h, t, forgetting)
                else:
                    model.fold(h, t)
        elif name == "solve":
            model.W = model.solve() if not isinstance(model, IncrementalUpdaterModel) \
                else model.solve()
        elif name == "predict":
            values = [int(v) for v in model.predict(step[1])]
        elif name == "read":
            matrix = {Select.R: lambda: model.R, Select.Z: lambda: model.Z,
                      Select.W: lambda: model.W}[step[1]]()
            values = [int(v) for v in np.ravel(matrix)]
        elif name == "load":
            key = {Select.R: "R", Select.Z: "Z", Select.W: "W"}[step[1]]
            model.load(**{key: np.asarray(step[2])})
        # `refused` tells of the last DOWNDATE since the last RESET (sticky across other ops)
        results.append((values, {"refused": int(getattr(model, "last_refused", False)),
                                 "saturated": int(model.saturated), "bad_command": 0}))
    return results


def check_script(dut, model, script, n, k):
    hardware = run_script(dut, script, n, k)
    expected = model_script(model, script)
    pairs = zip(hardware, expected, strict=True)
    for index, ((got, got_flags), (want, want_flags)) in enumerate(pairs):
        assert got == want, f"step {index} {script[index][0]}: {got} != {want}"
        for flag, value in want_flags.items():
            assert got_flags[flag] == value, f"step {index} {script[index][0]}: {flag}"
    return hardware


def random_rows(fmt, rng, count, n, k, scale=0.5):
    values = fmt.quantise(rng.uniform(-scale, scale, (count, n + k))).values
    return [(v[:n], v[n:]) for v in values]


READ_ALL = [("read", Select.R), ("read", Select.Z)]


@pytest.mark.parametrize("rotation", ["cordic", "multiplier"])
@pytest.mark.parametrize("units, fmt, n, k", [
    (1, FixedFormat(4, 12), 3, 1),
    (2, FixedFormat(4, 12), 4, 2),
    (4, FixedFormat(5, 14), 5, 1),
])
def test_updater_bit_exact(rotation, units, fmt, n, k):
    """Updates with beta = 1 and beta < 1, an all-zero row, a repeated row, solve, predict."""
    rng = np.random.default_rng(units * 10 + n)
    config = QRConfig(fmt, rotation)
    dut = IncrementalUpdater(5, 2, fmt, units=units, rotation=rotation)
    model = IncrementalUpdaterModel(config, n, k, 0)
    rows = random_rows(fmt, rng, 3, n, k)
    forgetting = config.forgetting_constant(0.9)
    zero = (np.zeros(n, np.int64), np.zeros(k, np.int64))
    script = [("reset", fmt.const(0.5))]
    script += [("update", h, t) for h, t in rows]
    script += [("update", *zero), ("update", *rows[0]), ("update", *rows[0])]
    script += [("update", h, t, forgetting) for h, t in rows[:2]]
    script += READ_ALL + [("solve",), ("read", Select.W), ("predict", rows[1][0])]
    check_script(dut, model, script, n, k)


@pytest.mark.parametrize("rotation", ["cordic", "multiplier"])
def test_downdate_and_refusal_bit_exact(rotation):
    """Downdating every sample back returns (bit for bit with the model) to about √λ·I; a
    downdate that must be refused sets ``refused`` and leaves R, Z as they were."""
    fmt = FixedFormat(4, 12)
    n, k = 3, 1
    rng = np.random.default_rng(4)
    dut = IncrementalUpdater(4, 2, fmt, units=2, rotation=rotation)
    model = IncrementalUpdaterModel(QRConfig(fmt, rotation), n, k, 0)
    rows = random_rows(fmt, rng, 3, n, k)
    lam = fmt.const(1.0)
    script = [("reset", lam)] + [("update", h, t) for h, t in rows]
    script += [("downdate", h, t) for h, t in rows[::-1]] + READ_ALL
    bad = (fmt.quantise([0.1, 0.2, 3.0]).values, fmt.quantise([0.0]).values)
    script += [("update", *rows[0]), ("downdate", *bad)] + READ_ALL
    results = check_script(dut, model, script, n, k)
    R_back = np.array(results[1 + 3 + 3][0]).reshape(n, n)
    assert np.abs(R_back - lam * np.eye(n)).max() <= 8
    assert results[-3][1]["refused"] == 1
    assert results[-4][1]["refused"] == 0


@pytest.mark.parametrize("rotation", ["cordic", "multiplier"])
def test_downdate_refused_when_a_coefficient_clips(rotation):
    """A downdate whose first pivot stays positive but barely (``a² - b²`` a few LSBs), so
    that ``c = a/√(a² - b²)`` does not fit the coefficient format: refused, R and Z kept, as
    in the model; a pivot with room to spare goes through."""
    fmt = FixedFormat(4, 12)
    n, k = 3, 1
    dut = IncrementalUpdater(4, 2, fmt, units=2, rotation=rotation)
    model = IncrementalUpdaterModel(QRConfig(fmt, rotation), n, k, 0)
    lam = fmt.const(1.0)
    one = int(fmt.const(1.0))
    close = (np.array([one - 1, 0, 0]), np.array([0]))   # a² - b² = 2·one - 1 (2f bits)
    room = (np.array([one // 2, 0, 0]), np.array([0]))
    script = [("reset", lam), ("downdate", *close)] + READ_ALL
    script += [("downdate", *room)] + READ_ALL
    results = check_script(dut, model, script, n, k)
    assert results[1][1]["refused"] == 1
    assert results[4][1]["refused"] == 0
    assert model_refuses(QRConfig(fmt, rotation), one, one - 1)


def model_refuses(config, a, b):
    """The model's hyperbolic rotation of ``b`` against ``a`` is refused for a clipped ``c``
    (``a² - b² > 0``: not the non-positive pivot's refusal)."""
    from tiersolve.gen.qr_model import generate_rotation

    assert a * a - b * b > 0
    return generate_rotation(config, a, b, hyperbolic=True).refused


@pytest.mark.parametrize("rotation, units, n, k", [("cordic", 1, 3, 1), ("cordic", 2, 5, 2),
                                                   ("multiplier", 2, 5, 2)])
def test_update_right_after_downdate(rotation, units, n, k):
    """An UPDATE straight after a DOWNDATE (a sliding window's step). The CORDIC kind rotates
    a DOWNDATE with its multiplier units, whose results come out sooner than the CORDIC
    units': the DOWNDATE's groups must not come out of the CORDIC units' longer valid line as
    write-backs into the UPDATE's work row (they did, corrupting its ``t`` values)."""
    fmt = FixedFormat(4, 12)
    rng = np.random.default_rng(units + 70)
    rows = random_rows(fmt, rng, 4, n, k)
    dut = IncrementalUpdater(5, 2, fmt, units=units, rotation=rotation)
    model = IncrementalUpdaterModel(QRConfig(fmt, rotation), n, k, 0)
    script = [("reset", fmt.const(0.5)), ("update", *rows[0]), ("update", *rows[1]),
              ("downdate", *rows[1]), ("update", *rows[2]), ("downdate", *rows[0]),
              ("update", *rows[3]), *READ_ALL]
    results = check_script(dut, model, script, n, k)
    assert not any(flags["refused"] for _, flags in results)


@pytest.mark.parametrize("rotation", ["cordic", "multiplier"])
def test_load_then_solve_bit_exact(rotation):
    fmt = FixedFormat(4, 12)
    n, k = 3, 2
    rng = np.random.default_rng(8)
    R = np.triu(fmt.quantise(rng.uniform(-1, 1, (n, n))).values)
    R[np.arange(n), np.arange(n)] = fmt.quantise(rng.uniform(0.5, 1.5, n)).values
    Z = fmt.quantise(rng.uniform(-1, 1, (n, k))).values
    W = fmt.quantise(rng.uniform(-1, 1, (n, k))).values
    dut = IncrementalUpdater(4, 2, fmt, units=1, rotation=rotation)
    model = IncrementalUpdaterModel(QRConfig(fmt, rotation), n, k, 0)
    script = [("reset", 0), ("load", Select.R, R), ("load", Select.Z, Z), ("load", Select.W, W),
              ("predict", fmt.quantise([0.5, -0.25, 0.75]).values), ("solve",),
              ("read", Select.W)] + READ_ALL
    check_script(dut, model, script, n, k)


@pytest.mark.parametrize("rotation", ["cordic", "multiplier"])
def test_qr_solver_bit_exact_and_cycles(rotation):
    """QRSolver: rows in, W out, bit-exact; UPDATE takes exactly ``update_cycles``."""
    fmt = FixedFormat(5, 13)
    n, k = 4, 1
    rng = np.random.default_rng(1)
    dut = QRSolver(4, 1, fmt, units=2, rotation=rotation)
    model = QRSolverModel(QRConfig(fmt, rotation), n, k, 0)
    script = [("reset", fmt.const(0.25))]
    script += [("update", h, t) for h, t in random_rows(fmt, rng, 4, n, k)]
    script += [("solve",), ("read", Select.W), ("read", Select.R)]
    results = check_script(dut, model, script, n, k)
    for _, flags in results[1:5]:
        assert flags["cycles"] == dut.update_cycles(n, k)


@pytest.mark.parametrize("core, rotation, units, fmt, n_max, k_max, n, k", [
    (QRSolver, "cordic", 1, FixedFormat(4, 12), 5, 2, 3, 1),      # skew 2
    (QRSolver, "cordic", 4, FixedFormat(5, 14), 5, 2, 5, 2),      # n = n_max, k = k_max
    (IncrementalUpdater, "cordic", 2, FixedFormat(4, 12), 5, 2, 4, 2),
    (IncrementalUpdater, "cordic", 1, FixedFormat(4, 12), 8, 2, 8, 2),  # skew 1
    (QRSolver, "multiplier", 4, FixedFormat(5, 14), 5, 2, 5, 2),
    (IncrementalUpdater, "multiplier", 2, FixedFormat(4, 12), 5, 2, 4, 2),
    (IncrementalUpdater, "multiplier", 1, FixedFormat(4, 12), 6, 1, 6, 1),
])
def test_fold_bit_exact_and_cycles(core, rotation, units, fmt, n_max, k_max, n, k):
    """FOLD (rows in flight together) gives the integers of one UPDATE (beta = 1) per row,
    in exactly ``fold_cycles``; the runs wrap the row slots, mix FOLD with UPDATE (the halves
    of A follow the row count's parity), fold a single row, and then solve."""
    rng = np.random.default_rng(n * 10 + units)
    config = QRConfig(fmt, rotation)
    dut = core(n_max, k_max, fmt, units=units, rotation=rotation)
    model = (IncrementalUpdaterModel if core is IncrementalUpdater else QRSolverModel)(
        config, n, k, 0)
    plan = dut.fold_plan(n, k)
    many = dut.fold_row_slots + 2
    rows = random_rows(fmt, rng, many + 5, n, k)
    script = [("reset", fmt.const(0.25)), ("fold", rows[:many]), ("update", *rows[many]),
              ("fold", rows[many + 1:many + 4]), ("fold", rows[many + 4:]), *READ_ALL,
              ("solve",), ("read", Select.W)]
    results = check_script(dut, model, script, n, k)
    for step, count in ((1, many), (3, 3), (4, 1)):
        assert results[step][1]["cycles"] == dut.fold_cycles(n, k, count), (step, plan)
    assert not np.array_equal(model.R, 0.25 * 2 ** fmt.frac_bits * np.eye(n))


@pytest.mark.parametrize("rotation, units, n_max, k_max, n, k", [
    ("multiplier", 4, 4, 1, 4, 1),   # units >= n: the period is the forgetting loop's P_min
    ("multiplier", 1, 6, 1, 6, 1),   # the period is the work
    ("multiplier", 2, 3, 2, 1, 1),   # n = 1 < scale latency: the settle before the schedule
    ("cordic", 2, 5, 2, 4, 2),
    ("cordic", 4, 3, 1, 2, 1),
])
def test_fold_with_forgetting_bit_exact_and_cycles(rotation, units, n_max, k_max, n, k):
    """FOLD with a forgetting constant gives the integers of one UPDATE with that constant per
    row (the pivots' register file holds r scaled as the array's read scales A), in exactly
    ``fold_cycles(..., forgetting=b)``; mixed with FOLD without forgetting, with UPDATE, and
    with another constant; a FOLD with an out-of-range constant is a bad command."""
    fmt = FixedFormat(4, 12)
    config = QRConfig(fmt, rotation)
    rng = np.random.default_rng(100 * n + 10 * units + k)
    dut = IncrementalUpdater(n_max, k_max, fmt, units=units, rotation=rotation)
    model = IncrementalUpdaterModel(config, n, k, 0)
    b1, b2 = config.forgetting_constant(0.9), config.forgetting_constant(0.75)
    many = dut.fold_row_slots + 2
    rows = random_rows(fmt, rng, many + 7, n, k)
    script = [("reset", fmt.const(0.5)), ("fold", rows[:many], None, b1),
              ("update", *rows[many], b2), ("fold", rows[many + 1:many + 3]),
              ("fold", rows[many + 3:many + 6], None, b2), ("fold", rows[many + 6:], None, b1),
              *READ_ALL, ("solve",), ("read", Select.W)]
    results = check_script(dut, model, script, n, k)
    for step, count, beta in ((1, many, b1), (3, 2, None), (4, 3, b2), (5, 1, b1)):
        assert results[step][1]["cycles"] == dut.fold_cycles(
            n, k, count, 1 << fmt.width if beta is None else beta), step
    if rotation == "multiplier" and units >= n:
        assert dut.fold_plan(n, k, True)["period"] == dut.fold_min_period_forgetting
        assert dut.fold_min_period_forgetting > dut.fold_min_period
    too_large = 1 + (1 << fmt.width)
    bad = run_script(dut, [("fold", rows[:1], None, 0), ("fold", rows[:1], None, too_large),
                           ("fold", rows[:1], None, 1 << fmt.width)], n, k)
    assert [flags["bad_command"] for _, flags in bad] == [1, 1, 0]


@pytest.mark.parametrize("units, n_max, k_max, n, k", [
    (2, 4, 2, 3, 1),
    (1, 6, 1, 5, 1),       # skew 1, a row slot wrap
    (4, 5, 2, 5, 2),       # n = n_max, k = k_max
])
def test_fold_downdate_bit_exact_and_cycles(units, n_max, k_max, n, k):
    """A FOLD of downdates (select FoldKind.DOWNDATE) gives the integers of one DOWNDATE per
    row, in exactly ``fold_cycles``, for odd and even row counts (the last row's parity picks
    which region each row writes); a batch with a row that must be refused, first, in the
    middle or last, is refused whole: R, Z, W and the flags as before, ``refused`` set; the
    next commands work; taking every row out returns to sqrt(lambda)·I."""
    fmt = FixedFormat(4, 12)
    rng = np.random.default_rng(n * 10 + units)
    config = QRConfig(fmt, "multiplier")
    dut = IncrementalUpdater(n_max, k_max, fmt, units=units, rotation="multiplier")
    assert dut.fold_downdates
    model = IncrementalUpdaterModel(config, n, k, 0)
    many = dut.fold_row_slots + 1
    rows = random_rows(fmt, rng, many + 4, n, k)
    bad = (fmt.quantise(np.r_[np.zeros(n - 1), 3.5]).values, np.zeros(k, np.int64))
    script = [("reset", fmt.const(0.25)), ("fold", rows), ("solve",),
              ("fold_downdate", rows[:many]), *READ_ALL,
              ("fold_downdate", [bad, *rows[many:many + 2]]), *READ_ALL,
              ("fold_downdate", [rows[many], bad]), ("read", Select.W),
              ("fold_downdate", [rows[many], bad, rows[many + 1]]), *READ_ALL,
              ("fold_downdate", rows[many:many + 1]), ("update", *rows[0]),
              ("downdate", *rows[0]), ("fold_downdate", rows[many + 1:]), *READ_ALL]
    results = check_script(dut, model, script, n, k)
    refused = [flags["refused"] for _, flags in results]
    assert refused == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    for step, (_, flags) in zip(script, results, strict=True):
        if step[0] == "fold_downdate":
            assert flags["cycles"] == dut.fold_cycles(n, k, len(step[1])), step
    # back to sqrt(lambda)·I within the bound of tests/gen/test_qr_model.py's
    # test_downdate_back_to_lambda: m·(n + k)·(c + s)_max LSBs, m rows in and out
    R, Z = (np.array(values) for values, _ in results[-2:])
    norm_v = math.sqrt(n + k) * 0.5                     # random_rows: entries below 0.5
    lam_sqrt = 0.25
    allowed = (len(rows) + 1) * (n + k) * (math.sqrt(1 + (norm_v / lam_sqrt) ** 2)
                                           + norm_v / lam_sqrt)
    assert np.abs(R.reshape(n, n) - np.diag([fmt.const(lam_sqrt)] * n)).max() <= allowed
    assert np.abs(Z).max() <= allowed


def test_fold_downdate_refused_after_a_saturating_row_restores_the_flag():
    """A FOLD of downdates whose first row saturates (a value clipped) and whose second row is
    refused ends with ``refused`` set and ``saturated`` as before the command (clear), R and
    Z untouched; a FOLD of one row that is refused does the same; then the saturating row
    alone is taken out and sets the flag."""
    fmt = FixedFormat(4, 12)
    n, k = 3, 1
    config = QRConfig(fmt, "multiplier")
    dut = IncrementalUpdater(3, 1, fmt, units=1, rotation="multiplier")
    model = IncrementalUpdaterModel(config, n, k, 0)
    rows = [([1970, 760, 616], [12196]), ([-455, -1495, 907], [1641]),
            ([-777, -58, 1595], [28090])]
    saturating = ([-582, 293, -730], [32727])
    bad = (fmt.quantise([0, 0, 3.5]).values, [0])
    script = [("reset", fmt.const(0.25)), ("fold", rows),
              ("fold_downdate", [saturating, bad]), *READ_ALL,
              ("fold_downdate", [bad]), *READ_ALL,
              ("fold_downdate", [saturating]), *READ_ALL]
    results = check_script(dut, model, script, n, k)
    flags = [(f["refused"], f["saturated"]) for _, f in results]
    assert flags == [(0, 0), (0, 0), (1, 0), (1, 0), (1, 0), (1, 0), (1, 0), (1, 0),
                     (0, 1), (0, 1), (0, 1)]


def test_fold_downdate_bad_commands_and_cores_without_it():
    """A FOLD of downdates with forgetting, or with select 2 or 3, is a bad command (nothing
    changes); the CORDIC updater and the QR solver have no FOLD of downdates: there it is a
    bad command too."""
    fmt = FixedFormat(4, 12)
    dut = IncrementalUpdater(2, 1, fmt, units=1, rotation="multiplier")
    row = ([100, -50], [30])
    results = run_script(dut, [("reset", fmt.const(0.5)), ("fold", [row]),
                               ("fold_downdate", [row], 4000), ("read", Select.R)], 2, 1)
    assert results[2][1]["bad_command"] == 1
    model = IncrementalUpdaterModel(QRConfig(fmt, "multiplier"), 2, 1, fmt.const(0.5))
    model.fold(*row)
    assert results[3][0] == [int(v) for v in np.ravel(model.R)]

    async def bench(ctx):
        for select in (2, 3):
            await stream_put(ctx, dut.command, {"op": Op.FOLD, "select": select, "n": 2,
                                                "k": 1, "value": 1, "forgetting": 1 << 16})
            await ctx.tick()
            assert ctx.get(dut.bad_command)
            while ctx.get(dut.busy):
                await ctx.tick()

    run_simulation(dut, bench, deadline=1e-4)
    core = IncrementalUpdater(4, 1, fmt, rotation="multiplier", fold=False)
    core._MustUse__silence = True       # only its attribute is asked for
    assert not core.fold_downdates
    # cores whose FOLD cannot take rows out: a FOLD of downdates is a bad command (it must
    # not fold the rows in instead), a FOLD of updates works
    for core in (IncrementalUpdater(2, 1, fmt, units=1, rotation="cordic"),
                 QRSolver(2, 1, fmt, units=1, rotation="multiplier")):
        assert not core.fold_downdates
        results = run_script(core, [("reset", fmt.const(0.5)), ("fold_downdate", [row]),
                                    ("read", Select.R), ("fold", [row]), ("read", Select.R)],
                             2, 1)
        assert results[1][1]["bad_command"] == 1 and results[3][1]["bad_command"] == 0
        assert results[2][0] == [fmt.const(0.5), 0, 0, fmt.const(0.5)]
        assert results[4][0] != results[2][0]


def random_script(rng, fmt, config, n, k, length, folds, fold_downdates=False):
    """A random command sequence: updates with and without forgetting, downdates of rows
    folded in earlier and of random rows (some refused), folds of 1-4 rows (with and without
    forgetting), with ``fold_downdates`` FOLDs of downdates of 1-3 rows folded in earlier (a
    random row among them now and then: refused), solve, predict, the read-outs, and resets,
    then a read of R and Z."""
    script = [("reset", fmt.const(float(rng.choice([0.25, 0.5, 1.0]))))]
    history = []                                # rows folded in since the last reset
    ops = ["update", "update_beta", "downdate", "downdate_any", "fold", "solve", "predict",
           "read", "reset"]
    weights = [.2, .12, .12, .04, .16 if folds else 0, .08, .08, .16 if folds else .32, .04]
    if fold_downdates:
        ops.append("fold_downdate")
        weights = [.16, .1, .1, .04, .16, .06, .06, .14, .04, .14]
    for _ in range(length):
        op = rng.choice(ops, p=weights)
        if op in ("update", "update_beta"):
            h, t = random_rows(fmt, rng, 1, n, k)[0]
            history.append((h, t))
            beta = (config.forgetting_constant(float(rng.uniform(0.7, 1.0)))
                    if op == "update_beta" else None)
            script.append(("update", h, t, beta))
        elif op == "downdate" and history:
            script.append(("downdate", *history.pop(int(rng.integers(len(history))))))
        elif op == "downdate_any":
            script.append(("downdate", *random_rows(fmt, rng, 1, n, k, scale=2.0)[0]))
        elif op == "fold":
            rows = random_rows(fmt, rng, int(rng.integers(1, 5)), n, k)
            history += rows
            # half of them with forgetting
            beta = (config.forgetting_constant(float(rng.uniform(0.7, 1.0)))
                    if rng.random() < 0.5 else None)
            script.append(("fold", rows, None, beta))
        elif op == "fold_downdate" and history:
            count = min(len(history), int(rng.integers(1, 4)))
            taken = [history.pop(int(rng.integers(len(history)))) for _ in range(count)]
            if rng.random() < 0.25:
                # a random large row among them: usually refused (then the rows stay in)
                stranger = random_rows(fmt, rng, 1, n, k, scale=2.0)[0]
                history += taken
                taken.insert(int(rng.integers(len(taken) + 1)), stranger)
            script.append(("fold_downdate", taken))
        elif op == "solve":
            script.append(("solve",))
        elif op == "reset":
            script.append(("reset", fmt.const(0.5)))
            history = []
        elif op == "predict":
            script.append(("predict", random_rows(fmt, rng, 1, n, k)[0][0]))
        elif op == "read":
            script.append(("read", [Select.R, Select.Z, Select.W][int(rng.integers(3))]))
    return script + READ_ALL


@pytest.mark.parametrize("seed, rotation, units, fold", [
    (1, "cordic", 2, True), (2, "multiplier", 4, True), (3, "cordic", 1, False),
    (4, "multiplier", 2, False), (5, "cordic", 4, True), (6, "multiplier", 1, True),
])
def test_random_command_sequences(seed, rotation, units, fold):
    """Random sequences of every command (in any order: an UPDATE straight after a DOWNDATE
    went wrong once) give the model's integers and flags; sizes drawn per seed."""
    fmt = FixedFormat(4, 12)
    rng = np.random.default_rng(seed + 1000)
    n, k = int(rng.integers(1, 6)), int(rng.integers(1, 3))
    config = QRConfig(fmt, rotation)
    dut = IncrementalUpdater(5, 2, fmt, units=units, rotation=rotation, fold=fold)
    model = IncrementalUpdaterModel(config, n, k, 0)
    check_script(dut, model, random_script(rng, fmt, config, n, k, 14, fold,
                                           dut.fold_downdates), n, k)


@pytest.mark.parametrize("rotation", ["cordic", "multiplier"])
def test_fold_edge_cases(rotation):
    """FOLD from R = 0 (λ = 0) with all-zero rows first (zero pivots: the identity rotation),
    a repeated row, and rows near full scale that saturate: integers and the sticky flag as
    one UPDATE per row."""
    fmt = FixedFormat(4, 12)
    n, k = 5, 1     # 4 units: the last pivots' tasks are one group each, back to back
    dut = IncrementalUpdater(5, 1, fmt, units=4, rotation=rotation)
    rng = np.random.default_rng(31)
    rows = random_rows(fmt, rng, 4, n, k)
    zero = (np.zeros(n, np.int64), np.zeros(k, np.int64))
    big = random_rows(fmt, rng, 6, n, k, scale=7.9)
    script = [("reset", 0), ("fold", [zero, zero, rows[0], rows[0], zero, rows[1], zero,
                                      rows[2], zero, zero, rows[3]]),
              *READ_ALL, ("fold", big), *READ_ALL]
    model = IncrementalUpdaterModel(QRConfig(fmt, rotation), n, k, 0)
    results = check_script(dut, model, script, n, k)
    assert results[-1][1]["saturated"] == 1     # the big rows clip (so the flag is tested)


async def offer_on_a_timetable(ctx, port, values, value_cycles):
    """Offer ``values`` on the stream ``port``, value ``v`` from the testbench's tick ``1 +
    v·value_cycles`` (the core's cycle ``2 + v·value_cycles`` of a command just taken), each
    held until taken."""
    tick = 0
    for index, value in enumerate(values):
        while tick < 1 + index * value_cycles:
            await ctx.tick()
            tick += 1
        ctx.set(port.valid, 1)
        ctx.set(port.payload, value)
        ready = False
        while not ready:
            *_, ready = await ctx.tick().sample(port.ready)
            tick += 1
        ctx.set(port.valid, 0)


def run_fold_fed(dut, fmt, n, k, rows, feed):
    """RESET (√λ = 0.5), one FOLD of ``rows`` whose values ``feed(ctx, values)`` offers on
    ``dut.i`` as it likes, then READ of R and Z: ``{"cycles": the FOLD's, Select.R: [...],
    Select.Z: [...]}``."""
    got = {}

    async def bench(ctx):
        w = fmt.width
        await stream_put(ctx, dut.command, {"op": Op.RESET, "n": n, "k": k,
                                            "value": fmt.const(0.5), "forgetting": 1 << w})
        while ctx.get(dut.busy) or ctx.get(dut.command.ready) == 0:
            await ctx.tick()
        await stream_put(ctx, dut.command, {"op": Op.FOLD, "n": n, "k": k,
                                            "value": len(rows), "forgetting": 1 << w})
        await feed(ctx, [int(v) for h, t in rows for v in [*h, *t]])
        while ctx.get(dut.busy):
            await ctx.tick()
        got["cycles"] = ctx.get(dut.cycles)
        for select in (Select.R, Select.Z):
            await stream_put(ctx, dut.command, {"op": Op.READ, "select": select, "n": n,
                                                "k": k, "value": 0, "forgetting": 1 << w})
            count = n * n if select == Select.R else n * k
            got[select] = [(await stream_get(ctx, dut.o)).value for _ in range(count)]
            while ctx.get(dut.busy):
                await ctx.tick()

    run_simulation(dut, bench, deadline=2e-3)
    return got


def test_fold_with_gaps_in_the_input():
    """Rows that arrive slowly (the periods wait for them) give the same integers."""
    fmt = FixedFormat(4, 12)
    n, k = 3, 1
    dut = QRSolver(3, 1, fmt, units=2, rotation="cordic")
    rows = random_rows(fmt, np.random.default_rng(9), 5, n, k)
    model = QRSolverModel(QRConfig(fmt, "cordic"), n, k, fmt.const(0.5))
    for h, t in rows:
        model.fold(h, t)

    async def feed(ctx, values):
        for index, value in enumerate(values):
            if index % 3:
                await ctx.tick().repeat(37 * (index % 3))  # 0, 37 or 74 idle cycles
            await stream_put(ctx, dut.i, value)

    got = run_fold_fed(dut, fmt, n, k, rows, feed)
    assert got[Select.R] == [int(v) for v in np.ravel(model.R)]
    assert got[Select.Z] == [int(v) for v in np.ravel(model.Z)]
    assert got["cycles"] > dut.fold_cycles(n, k, len(rows)) + 500


@pytest.mark.parametrize("rotation, units, n, k, count", [("multiplier", 2, 3, 1, 4),
                                                        ("cordic", 1, 4, 2, 5)])
@pytest.mark.parametrize("value_cycles", [3, 40])
def test_fold_cycles_with_rows_on_a_timetable(rotation, units, n, k, count, value_cycles):
    """Rows whose ``v``-th value is offered from cycle ``2 + v·value_cycles`` of the command
    (a source slower than the core: 3 cycles a value, about a period a row here; 40, far
    slower) take exactly ``fold_cycles(..., value_cycles)`` and give the model's integers
    (the host's choice between FOLD and UPDATEs estimates a link this way)."""
    fmt = FixedFormat(4, 12)
    dut = IncrementalUpdater(4, 2, fmt, units=units, rotation=rotation)
    rows = random_rows(fmt, np.random.default_rng(5), count, n, k)
    model = IncrementalUpdaterModel(QRConfig(fmt, rotation), n, k, fmt.const(0.5))
    for h, t in rows:
        model.update(h, t)

    async def feed(ctx, values):
        await offer_on_a_timetable(ctx, dut.i, values, value_cycles)

    got = run_fold_fed(dut, fmt, n, k, rows, feed)
    assert got[Select.R] == [int(v) for v in np.ravel(model.R)]
    assert got[Select.Z] == [int(v) for v in np.ravel(model.Z)]
    assert got["cycles"] == dut.fold_cycles(n, k, count, value_cycles=value_cycles)
    assert got["cycles"] > dut.fold_cycles(n, k, count)
    with pytest.raises(ValueError, match="value_cycles must be at least 1"):
        dut.fold_cycles(n, k, count, value_cycles=0.5)


@pytest.mark.parametrize("rotation, units, n, k", [("multiplier", 2, 3, 1), ("cordic", 1, 4, 2)])
@pytest.mark.parametrize("value_cycles", [3, 40])
def test_update_cycles_with_a_row_on_a_timetable(rotation, units, n, k, value_cycles):
    """One UPDATE whose row's ``v``-th value is offered from cycle ``2 + v·value_cycles`` (the
    timetable of :meth:`fold_cycles`' ``value_cycles``) takes ``update_cycles`` plus
    ``(n + k - 1)·(value_cycles - 1)``: the row is read before the first pivot, so every value
    after the first comes that much later. The host weighs a FOLD against UPDATEs on this
    timetable (:func:`tiersolve.host.device.fold_beats_updates`); at 40 cycles a value the
    UPDATE of the multiplier case ends first (262 cycles against the FOLD's 290)."""
    fmt = FixedFormat(4, 12)
    dut = IncrementalUpdater(4, 2, fmt, units=units, rotation=rotation)
    (h, t), = random_rows(fmt, np.random.default_rng(5), 1, n, k)
    model = IncrementalUpdaterModel(QRConfig(fmt, rotation), n, k, fmt.const(0.5))
    model.update(h, t)
    got = {}

    async def bench(ctx):
        w = fmt.width
        for op in (Op.RESET, Op.UPDATE):
            while ctx.get(dut.busy) or ctx.get(dut.command.ready) == 0:
                await ctx.tick()
            await stream_put(ctx, dut.command, {"op": op, "n": n, "k": k,
                                                "value": fmt.const(0.5), "forgetting": 1 << w})
        await offer_on_a_timetable(ctx, dut.i, [int(v) for v in [*h, *t]], value_cycles)
        while ctx.get(dut.busy):
            await ctx.tick()
        got["cycles"] = ctx.get(dut.cycles)
        await stream_put(ctx, dut.command, {"op": Op.READ, "select": Select.R, "n": n, "k": k,
                                            "value": 0, "forgetting": 1 << w})
        got["R"] = [(await stream_get(ctx, dut.o)).value for _ in range(n * n)]

    run_simulation(dut, bench, deadline=2e-3)
    assert got["R"] == [int(v) for v in np.ravel(model.R)]
    assert got["cycles"] == dut.update_cycles(n, k) + (n + k - 1) * (value_cycles - 1)
    if (rotation, value_cycles) == ("multiplier", 40):
        assert (got["cycles"], dut.fold_cycles(n, k, 1, value_cycles=40)) == (262, 290)


def test_fold_bad_commands():
    """FOLD needs a row count of at least 1."""
    fmt = FixedFormat(4, 12)
    row = ([fmt.const(0.5)] * 2, [fmt.const(0.25)])
    dut = QRSolver(2, 1, fmt, units=1, rotation="cordic")
    results = run_script(dut, [("fold", [row], 0), ("fold", [row], -3), ("fold", [row], 1)],
                         2, 1)
    assert [flags["bad_command"] for _, flags in results] == [1, 1, 0]
    # a core built without FOLD refuses it, and still updates
    dut = IncrementalUpdater(2, 1, fmt, units=1, rotation="multiplier", fold=False)
    results = run_script(dut, [("fold", [row]), ("update", *row)], 2, 1)
    assert [flags["bad_command"] for _, flags in results] == [1, 0]
    with pytest.raises(ValueError, match="without FOLD"):
        dut.fold_plan(2, 1)
    with pytest.raises(TypeError, match="fold"):
        QRSolver(2, 1, fmt, fold=1)


def test_cycles_formula_updater_downdate():
    fmt = FixedFormat(4, 12)
    dut = IncrementalUpdater(4, 2, fmt, units=4, rotation="cordic")
    rows = random_rows(fmt, np.random.default_rng(2), 1, 3, 2)
    results = run_script(dut, [("reset", fmt.const(1.0)), ("update", *rows[0]),
                               ("downdate", *rows[0])], 3, 2)
    assert results[1][1]["cycles"] == dut.update_cycles(3, 2)
    assert results[2][1]["cycles"] == dut.update_cycles(3, 2, hyperbolic=True)


@pytest.mark.parametrize("rotation", ["cordic", "multiplier"])
@pytest.mark.parametrize("units, n, k", [(1, 12, 3), (1, 26, 10), (2, 9, 2), (4, 9, 2),
                                         (4, 1, 1)])
def test_update_overlap_bit_exact_and_cycles(rotation, units, n, k):
    """UPDATE (with and without forgetting) and DOWNDATE, the array applying a pivot while
    the next one's rotation is generated: the model's integers, and exactly ``update_cycles``
    (units = 1, n + k = 36: the first pivots have more groups than the generator's latency,
    so the array sets their pace and the generator's result waits for its drain; units = 4,
    n = 9: column i + 1 starting a group; n = 1: a single pivot)."""
    fmt = FixedFormat(4, 12)
    rng = np.random.default_rng(units * 100 + n)
    rows = random_rows(fmt, rng, 3, n, k)
    beta = round(math.sqrt(0.9) * 2**fmt.width)
    script = [("reset", fmt.const(0.5)), ("update", *rows[0]), ("update", *rows[1], beta),
              ("update", *rows[2]), ("downdate", *rows[2]), *READ_ALL]
    dut = IncrementalUpdater(n, k, fmt, units=units, rotation=rotation, fold=False)
    model = IncrementalUpdaterModel(QRConfig(fmt, rotation), n, k, 0)
    results = check_script(dut, model, script, n, k)
    cycles = [flags["cycles"] for _, flags in results]
    assert not results[4][1]["refused"]
    assert cycles[1:4] == [dut.update_cycles(n, k)] * 3
    assert cycles[4] == dut.update_cycles(n, k, hyperbolic=True)


def test_bad_commands():
    fmt = FixedFormat(4, 12)
    dut = QRSolver(3, 1, fmt, units=1, rotation="multiplier")
    results = run_script(dut, [("reset", 0), ("solve",)], 4, 1)
    assert results[0][1]["bad_command"] == 1  # n > n_max
    results = run_script(dut, [("downdate", [0, 0, 0], [0])], 3, 1)
    assert results[0][1]["bad_command"] == 1  # no downdate in the QR solver


def test_forgetting_constant_edges():
    """UPDATE's forgetting constant is refused exactly outside ``1 .. 2**w`` (the check works
    on bits; this pins it to the range at its edges), and the QR solver ignores it."""
    fmt = FixedFormat(4, 4)
    w = fmt.width
    constants = [0, 1, 2, (1 << w) - 1, 1 << w, (1 << w) + 1, (1 << w) + (1 << (w - 1)),
                 (1 << (w + 1)) - 1]
    row = ([fmt.const(0.5)], [fmt.const(0.25)])
    script = [("reset", fmt.const(1.0))] + [("update", *row, b) for b in constants]
    results = run_script(IncrementalUpdater(1, 1, fmt, units=1, rotation="multiplier"),
                         script, 1, 1)
    assert [flags["bad_command"] for _, flags in results[1:]] == [
        int(not 1 <= b <= 1 << w) for b in constants]
    results = run_script(QRSolver(1, 1, fmt, units=1, rotation="multiplier"),
                         [("reset", fmt.const(1.0)), ("update", *row, 0)], 1, 1)
    assert results[1][1]["bad_command"] == 0


def test_command_check_cycle():
    """The cycle after a transfer checks the command: ``busy`` high and ``bad_command`` low
    (even after a refused command); then a refused command leaves ``busy`` low with
    ``bad_command`` set and ``cycles`` = 2, and a good one runs."""
    fmt = FixedFormat(4, 12)
    dut = IncrementalUpdater(2, 1, fmt, units=1, rotation="cordic")
    seen = []

    async def bench(ctx):
        for n in (3, 3, 2):     # n_max = 2: two refused RESETs, then a good one
            await stream_put(ctx, dut.command, {"op": Op.RESET, "n": n, "k": 1, "value": 0,
                                                "forgetting": 1 << fmt.width})
            checking = (ctx.get(dut.busy), ctx.get(dut.bad_command))
            await ctx.tick()
            seen.append((checking, ctx.get(dut.busy), ctx.get(dut.bad_command)))
            while ctx.get(dut.busy):
                await ctx.tick()
            seen.append(ctx.get(dut.cycles))

    run_simulation(dut, bench, deadline=1e-4)
    assert seen[:4] == [((1, 0), 0, 1), 2, ((1, 0), 0, 1), 2]
    assert seen[4] == ((1, 0), 1, 0) and seen[5] > 2


def test_parameter_validation():
    with pytest.raises(ValueError, match="units"):
        IncrementalUpdater(4, 1, "Q4.12", units=3)
    with pytest.raises(TypeError, match="n_max"):
        IncrementalUpdater(4.0, 1, "Q4.12")
    with pytest.raises(ValueError, match="rotation"):
        QRSolver(4, 1, "Q4.12", rotation="householder")
    # the Cholesky core's limits (there were none: 1024 / 256 took 10 s to refuse nothing)
    with pytest.raises(ValueError, match="n_max must be from 1 to 1024"):
        IncrementalUpdater(1025, 1, "Q4.12")
    with pytest.raises(ValueError, match="k_max from 1 to 256"):
        QRSolver(4, 257, "Q4.12")


@pytest.mark.parametrize("n_max, k_max, units, rotation", [
    (16, 2, 4, "cordic"), (64, 32, 1, "multiplier"), (8, 1, 8, "cordic"),
    (32, 4, 32, "multiplier")])
def test_fold_row_slots_cover_every_size(n_max, k_max, units, rotation):
    """The row slots are the most rows in flight over every runtime (n, k): the constructor
    takes k = 1 for each n (a larger k can only lengthen the period and shorten the skew)."""
    core = IncrementalUpdater(n_max, k_max, "Q4.12", units=units, rotation=rotation)
    core._MustUse__silence = True  # only its attributes are asked for
    assert core.fold_row_slots == max(
        core.fold_plan(n, k, forgetting)["skew"] * (n - 1) + 1
        for n in range(1, n_max + 1) for k in range(1, k_max + 1) for forgetting in (False, True))


def test_forgetting_run_in_simulation():
    """A shorter long run: 25 updates with beta = 0.95 stay bit-exact (multiplier, n = 2)."""
    fmt = FixedFormat(4, 12)
    n, k = 2, 1
    config = QRConfig(fmt, "multiplier")
    rng = np.random.default_rng(6)
    dut = IncrementalUpdater(2, 1, fmt, units=2, rotation="multiplier")
    model = IncrementalUpdaterModel(config, n, k, 0)
    forgetting = config.forgetting_constant(0.95)
    script = [("reset", fmt.const(0.5))]
    script += [("update", h, t, forgetting) for h, t in random_rows(fmt, rng, 25, n, k)]
    script += READ_ALL
    check_script(dut, model, script, n, k)


def verilator_script(dut, config, script, n, k, top, ready_seed):
    """Run ``script`` on ``dut``'s generated Verilog in Verilator (the output stream's ready
    toggling at random); check its outputs equal the model's. Returns the run's result and the
    model after the script."""
    from tiersolve.gen.crosssim import VerilatorSimulation
    from tiersolve.host.bench.qr import script_streams

    commands, values, outputs = script_streams(script, n, k, config.fmt)
    simulation = VerilatorSimulation(dut, top=top, log=None)
    result = simulation.run({"command": commands, "i": values}, {"o": outputs},
                            ready_seed=ready_seed, ready_probability=0.7)
    model = IncrementalUpdaterModel(config, n, k, 0)
    expected = [v for values_, _ in model_script(model, script) for v in values_]
    assert [payload["value"] for payload in result.values("o")] == expected
    assert result.port_value("saturated") == int(model.saturated)
    return result, model


@pytest.mark.verilator
def test_verilator_cross_simulation(verilator):
    """The generated Verilog of one IncrementalUpdater (CORDIC, 2 units, n = 6, k = 2) run in
    Verilator gives the model's integers: updates with and without forgetting, a downdate, a
    refused downdate, FOLDs of several rows without and with forgetting, solve, predict,
    reads; and its UPDATE and FOLD spacings are the cycle formulas."""
    fmt = FixedFormat(5, 13)
    n, k = 6, 2
    config = QRConfig(fmt, "cordic")
    rng = np.random.default_rng(12)
    dut = IncrementalUpdater(6, 2, fmt, units=2, rotation="cordic")
    rows = random_rows(fmt, rng, 10, n, k)
    folded = random_rows(fmt, rng, 7, n, k)
    forgetting = config.forgetting_constant(0.97)
    bad = (fmt.quantise([0, 0, 0, 0, 0, 3.5]).values, np.zeros(k, np.int64))
    script = [("reset", fmt.const(0.25))] + [("update", h, t) for h, t in rows[:4]]
    script += [("update", h, t, forgetting) for h, t in rows[4:]] + [("fold", folded)]
    script += [("fold", folded[:4], None, forgetting)]
    script += [("downdate", *rows[7]), ("downdate", *bad), ("solve",), ("predict", rows[0][0])]
    script += READ_ALL + [("read", Select.W)]
    result, _ = verilator_script(dut, config, script, n, k, "qr_updater", 3)
    assert result.port_value("refused") == 1  # the last DOWNDATE (of `bad`) was refused
    accepted = result.input_cycles["command"]
    assert accepted[2] - accepted[1] == dut.update_cycles(n, k)
    assert accepted[12] - accepted[11] == dut.fold_cycles(n, k, len(folded))
    assert accepted[13] - accepted[12] == dut.fold_cycles(n, k, 4, forgetting)


@pytest.mark.verilator
def test_verilator_cross_simulation_fold_downdates(verilator):
    """The generated Verilog of the multiplier updater (2 units, n = 5, k = 1) in Verilator:
    FOLDs of updates and of downdates (one refused whole), a DOWNDATE, solve and reads give
    the model's integers and flags, and each FOLD of downdates takes ``fold_cycles``."""
    fmt = FixedFormat(4, 12)
    n, k = 5, 1
    config = QRConfig(fmt, "multiplier")
    rng = np.random.default_rng(21)
    dut = IncrementalUpdater(5, 1, fmt, units=2, rotation="multiplier")
    rows = random_rows(fmt, rng, 12, n, k)
    bad = (fmt.quantise([0, 0, 0, 0, 3.5]).values, np.zeros(k, np.int64))
    script = [("reset", fmt.const(0.25)), ("fold", rows), ("fold_downdate", rows[:7]),
              ("fold_downdate", [rows[7], bad, rows[8]]), *READ_ALL,
              ("fold_downdate", rows[7:11]), ("downdate", *rows[11]), ("solve",),
              *READ_ALL, ("read", Select.W)]
    result, _ = verilator_script(dut, config, script, n, k, "qr_updater_fold_downdates", 5)
    assert result.port_value("refused") == 0   # the last, a DOWNDATE, was taken out
    accepted = result.input_cycles["command"]
    assert accepted[3] - accepted[2] == dut.fold_cycles(n, k, 7)
    assert accepted[4] - accepted[3] == dut.fold_cycles(n, k, 3)


def test_forgetting_constant_out_of_range_is_a_bad_command():
    fmt = FixedFormat(4, 12)
    dut = IncrementalUpdater(2, 1, fmt, units=1, rotation="multiplier")
    results = run_script(dut, [("reset", fmt.const(1.0)), ("update", [1, 2], [3], 0),
                               ("update", [1, 2], [3], (1 << fmt.width) + 1),
                               ("update", [1, 2], [3], 1 << fmt.width)], 2, 1)
    assert [flags["bad_command"] for _, flags in results] == [0, 1, 1, 0]
    model = IncrementalUpdaterModel(QRConfig(fmt, "multiplier"), 2, 1, 0)
    with pytest.raises(ValueError, match="forgetting constant"):
        model.update_with_constant([1, 2], [3], 0)


@pytest.mark.parametrize("rotation, generator, array", [("cordic", 22, 30),
                                                         ("multiplier", 34, 12)])
def test_documented_latencies_q6_12(rotation, generator, array):
    """The latencies :mod:`tiersolve.gen.qr` documents for the updater in Q6.12 (``S = 3``,
    ``G``, ``D``) are the cycle model's (that model is checked against simulation above)."""
    dut = IncrementalUpdater(16, 2, "Q6.12", units=4, rotation=rotation)
    dut._MustUse__silence = True    # never elaborated
    assert dut.scale_latency == 3
    assert dut.generator_cycles() == generator
    assert dut.array_cycles() == array


def test_rounded_clip_flag_matches_clip_width_exhaustively():
    """The clip flag the cores register beside the rounding (``_rounded_clips``, from the
    shifted value alone) and the value clipped with it (``hwfixed.clip_flagged``) equal
    ``clip_width`` on the rounded value ``(shifted + 1) >> 1``, for every 10-bit ``shifted``
    and ``width`` 4: the carry into the high bits, both signs and both limits included."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator
    from tiersolve.gen.hwfixed import clip_flagged, clip_width
    from tiersolve.gen.qr import _rounded_clips

    bits, width = 10, 4
    m = Module()
    shifted = Signal(signed(bits))
    rounded = Signal(signed(bits + 1))
    m.d.comb += rounded.eq((shifted + 1) >> 1)
    expected_value, expected_clip = clip_width(rounded, width)
    flag = _rounded_clips(shifted, width)
    value, clip, reference, reference_clip = (Signal(signed(width)), Signal(),
                                              Signal(signed(width)), Signal())
    m.d.comb += [value.eq(clip_flagged(rounded, width, flag)), clip.eq(flag),
                 reference.eq(expected_value), reference_clip.eq(expected_clip)]
    mismatches, clipped = [], 0

    async def testbench(ctx):
        nonlocal clipped
        for x in range(-(1 << (bits - 1)), 1 << (bits - 1)):
            ctx.set(shifted, x)
            clipped += ctx.get(reference_clip)
            if (ctx.get(value), ctx.get(clip)) != (ctx.get(reference), ctx.get(reference_clip)):
                mismatches.append(x)

    simulator = Simulator(m)
    simulator.add_testbench(testbench)
    simulator.run()
    assert mismatches == []
    assert 0 < clipped < 1 << bits      # both outcomes were exercised


@pytest.mark.parametrize("bits", [2, 5, 12, 34, 38])
def test_leading_one_is_the_highest_set_bit_below_the_sign(bits):
    """The normaliser's ``L`` (``_leading_one``, a balanced tree of multiplexers) is one more
    than the index of the highest set bit below the sign, 0 when none: every value for 12
    bits or fewer, and zero, the extremes and every single bit and random values at the
    widths the generators use (``2w + 2``: 38 in Q6.12, 34 in Q4.12)."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator
    from tiersolve.gen.qr import _leading_one

    m = Module()
    p = Signal(signed(bits))
    leading = _leading_one(m, p, "leading")
    low, high = -(1 << (bits - 1)), 1 << (bits - 1)
    if bits <= 12:
        values = list(range(low, high))
    else:
        rng = np.random.default_rng(bits)
        values = [0, -1, low, high - 1, *(1 << b for b in range(bits - 1)),
                  *(int(v) >> int(s) for v, s in zip(rng.integers(low, high, 3000),
                                                     rng.integers(0, bits, 3000), strict=True))]
    mismatches = []

    async def testbench(ctx):
        for value in values:
            ctx.set(p, value)
            want = (value & (high - 1)).bit_length()
            if ctx.get(leading) != want:
                mismatches.append((value, ctx.get(leading), want))

    simulator = Simulator(m)
    simulator.add_testbench(testbench)
    simulator.run()
    assert mismatches == []


def test_spread_copies_are_a_chain_with_bounded_lag():
    """``_spread_copies`` loads copy ``u`` from copy ``u - 1`` (so Yosys cannot merge them)
    and copy ``u`` follows the source ``1 + min(u, max_depth)`` cycles later."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator
    from tiersolve.gen.qr import _spread_copies

    m = Module()
    source = Signal(8)
    copies = _spread_copies(m, source, 6, 3, "copy")
    seen = []

    async def testbench(ctx):
        ctx.set(source, 0)
        await ctx.tick().repeat(6)
        ctx.set(source, 0xA5)
        for _ in range(6):
            await ctx.tick()
            seen.append([ctx.get(copy) for copy in copies])

    simulator = Simulator(m)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    for u in range(6):
        arrival = next(cycle for cycle, values in enumerate(seen, 1) if values[u] == 0xA5)
        assert arrival == 1 + min(u, 3), u
