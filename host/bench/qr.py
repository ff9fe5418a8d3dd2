"""``tiersolve bench qr`` and ``tiersolve bench update``: cycles, utilisation, area, accuracy.

For ``n`` in ``--n`` and rotation units ``U`` in ``--units`` (``"n"`` means ``U = n``), both
rotation kinds (``--rotation``):

- **cycles per row** of an UPDATE (row streamed in at one value per cycle) from
  :meth:`tiersolve.gen.qr.IncrementalUpdater.update_cycles`. The formula is checked exactly
  against the Amaranth simulation in ``tests/gen/test_qr.py`` (small ``n``) and, with
  ``--verilator``, against the generated Verilog run in Verilator for ``n = 16`` here.
- **utilisation**: rotations done (``n(n+1)/2 + nk`` per row, pivots included) divided by
  ``U x cycles``. ``update`` also lists DOWNDATE cycles (hyperbolic, multiplier units).
- **FOLD** (the rows in flight together in a skewed schedule, ``update`` also with
  forgetting,
  :meth:`~tiersolve.gen.qr.IncrementalUpdater.fold_plan`): the period ``P`` (cycles per row
  in steady state) and skew, the steady-state utilisation ``rotations / (U x P)``, and the
  cycles per row and utilisation of one FOLD of ``--fold-rows`` rows
  (:meth:`~tiersolve.gen.qr.IncrementalUpdater.fold_cycles`, which counts the start-up and
  the drain; checked exactly against simulation, and with ``--verilator`` in Verilator), and
  the bound of any such schedule of these pipelines (:func:`fold_bound`: rows no closer than
  :attr:`~tiersolve.gen.qr.IncrementalUpdater.fold_min_period` cycles, nor than the ``n + k``
  cycles a row takes to come in at one value a cycle). ``update`` also
  gives the fewest rows one FOLD takes fewer cycles for than one UPDATE a row
  (:func:`fold_quicker_from`; the host sends fewer as UPDATEs).
- ``--synth``: LUTs, flip-flops, DSPs, block RAM, Fmax of the benchmark's core
  (:data:`SYNTH_CONFIGS`) on ECP5-85F (speed grade 6, out of context; ``n_max = 16``,
  ``k_max = 2``, 4 units, CORDIC against multiplier rotations) and iCE40UP5K (``n_max = 8``,
  ``k_max = 1``, 1 unit, multiplier rotations) via :func:`tiersolve.boards.synth.synthesize`;
  about 5 to 8 minutes per ECP5 run on a loaded 2-core machine. ``--synth-seeds S ...``
  places and routes each ECP5 core with every seed listed (default: seed 1 only), since
  placement alone moves Fmax by several per cent: the table gives every seed's Fmax, the JSON
  each run (``runs``) and, as ``fmax_mhz``, the lowest.
- ``--plot PATH``: error against float64 least squares over ``cond(H)`` (1 to 1e6, n = 8,
  m = 48, λ = 0) for the QR model (both rotation kinds) and for the Gram/Cholesky model
  (:mod:`tiersolve.gen.cholesky_model`), in Q6.12 and Q4.20 (Cholesky pivot inverses Q10.14).

Results: the table on stdout and ``<out>/<name>.md``, everything in ``<out>/<name>.json``.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from tiersolve.gen.fixed import FixedFormat
from tiersolve.host.bench.seeds import add_seeds_argument, fmax_cell, seed_runs

__all__ = ["HELP", "add_arguments", "accuracy_sweep", "cycle_table", "engines_lines",
           "engines_steady_period", "engines_table", "fold_bound",
           "fold_quicker_from", "plot_accuracy",
           "plot_utilisation", "run",
           "script_streams", "verilator_engines_fold", "verilator_fold_cycles",
           "verilator_update_cycles"]

HELP = "cycles per row, rotation-unit utilisation, area and accuracy of the Givens QR cores"
#: One line per benchmark this module serves (``tiersolve bench --help``).
HELPS = {"qr": "the QR solver core: cycles per row, rotation-unit utilisation, area and "
               "accuracy (QR against the Gram/Cholesky path)",
         "update": "the incremental updater: cycles per row (UPDATE, DOWNDATE, FOLD with and "
                   "without forgetting), rotation-unit utilisation, area and accuracy"}

#: (rotation, target, n_max, k_max, units) synthesised by ``--synth``, for the benchmark's
#: core (``qr``: QRSolver, ``update``: IncrementalUpdater). The iCE40UP5K line is the smallest
#: useful size (multiplier rotations, built without FOLD; CORDIC is larger).
SYNTH_CONFIGS = (
    ("cordic", "ecp5-85f", 16, 2, 4),
    ("multiplier", "ecp5-85f", 16, 2, 4),
    ("multiplier", "ice40-up5k", 8, 1, 1),
)


def add_arguments(parser):
    parser.add_argument("--n", type=int, nargs="+", default=[8, 16, 32, 64],
                        help="system sizes (default: 8 16 32 64)")
    parser.add_argument("--units", nargs="+", default=["1", "2", "4", "n"],
                        help="rotation units; 'n' means units = n (default: 1 2 4 n)")
    parser.add_argument("--k", type=int, default=1, help="right-hand sides (default 1)")
    parser.add_argument("--format", default="Q6.12", help="data format (default Q6.12)")
    parser.add_argument("--rotation", nargs="+", default=["cordic", "multiplier"],
                        choices=["cordic", "multiplier"], help="rotation kinds")
    parser.add_argument("--fold-rows", type=int, default=256,
                        help="rows of the FOLD command whose cycles are listed (default 256)")
    parser.add_argument("--verilator", action="store_true",
                        help="check the cycle formula in Verilator for n = 16 (about a minute); "
                             "with --engines, measure each split's FOLD and merge too")
    parser.add_argument("--engines", action="store_true",
                        help="units = n as several cores of 4, 8 or 16 units each "
                             "(QREngines): steady state, and with --verilator one FOLD of "
                             "--fold-rows rows and the merge, measured")
    parser.add_argument("--synth", action="store_true",
                        help="synthesise on ECP5-85F and iCE40UP5K (many minutes)")
    add_seeds_argument(parser)
    parser.add_argument("--plot-utilisation", default=None, metavar="PNG",
                        help="write the utilisation plot, UPDATE against FOLD "
                             "(docs/qr_utilisation.png)")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="write the QR-vs-Cholesky accuracy plot (docs/qr_vs_cholesky.png)")


def _core(name, n_max, k_max, fmt, units, rotation, fold=True):
    """The QR solver or updater the bench asks for its cycle formulas; never elaborated
    (silenced)."""
    from tiersolve.gen.checks import silence_unused
    from tiersolve.gen.qr import IncrementalUpdater, QRSolver

    cls = QRSolver if name == "qr" else IncrementalUpdater
    return silence_unused(cls(n_max, k_max, fmt, units=units, rotation=rotation, fold=fold))


def cycle_table(name, ns, units_list, k, fmt, rotations, fold_rows=256):
    """One record per (rotation, n, units): cycles per row and utilisation (formula), and for
    CORDIC rotations those of FOLD (steady state, and one FOLD of ``fold_rows`` rows)."""
    records = []
    for rotation in rotations:
        for n in ns:
            for units_text in units_list:
                units = n if units_text == "n" else int(units_text)
                if units & (units - 1) or units > 64:  # (units = n: not a count the core takes)
                    continue
                core = _core(name, n, k, fmt, units, rotation)
                cycles = core.update_cycles(n, k)
                rotations_done = core.rotations_per_row(n, k)
                record = {
                    "rotation": rotation, "n": n, "k": k, "units": units,
                    "cycles_per_row": cycles,
                    "rotations_per_row": rotations_done,
                    "utilisation": rotations_done / (units * cycles),
                    "generator_cycles": core.generator_cycles(),
                    "array_latency": core.array_cycles(),
                }
                if name == "update":
                    record["downdate_cycles"] = core.update_cycles(n, k, hyperbolic=True)
                if core.folds:
                    record.update(_fold_figures(core, n, k, fold_rows, "fold", False))
                    record.update({
                        "fold_skew": core.fold_plan(n, k)["skew"], "fold_rows": fold_rows,
                        "fold_cycles_per_row": record["fold_cycles"] / fold_rows,
                        "fold_bound_utilisation": fold_bound(rotations_done, units,
                                                             core.fold_min_period, n + k),
                    })
                    if name == "update":
                        # FOLD with forgetting (beta < 1): r is scaled in its loop, so the
                        # shortest period can be longer
                        record.update(_fold_figures(core, n, k, fold_rows, "fold_forgetting",
                                                    True))
                        record["fold_quicker_from"] = fold_quicker_from(core, n, k)
                records.append(record)
    return records


#: Units per engine that :func:`engines_table` lists (engines x units = n, engines >= 2).
ENGINE_UNITS = (4, 8, 16)


def engines_steady_period(core, n: int, k: int, engines: int) -> float:
    """Cycles per row of :class:`~tiersolve.gen.qr_engines.QREngines` in steady state: each
    engine takes a row every ``P`` cycles (``core``'s FOLD period) unless its stream, which
    feeds ``engines / 2`` engines a row each in turn at one value a cycle, is slower."""
    period = core.fold_plan(n, k)["period"]
    return max(period, -(-engines // 2) * (n + k)) / engines


def engines_table(ns, k, fmt, rotations, fold_rows, verilator=False, name="qr"):
    """One record per (rotation, n, split) with ``engines x units = n``: the steady state of
    :class:`~tiersolve.gen.qr_engines.QREngines` (:func:`engines_steady_period`; QR solver
    cores, or updaters with ``name="update"``), and with ``verilator`` one FOLD of
    ``fold_rows`` rows and the merge measured on the generated Verilog
    (:func:`verilator_engines_fold`)."""
    records = []
    for rotation in rotations:
        for n in ns:
            for units in ENGINE_UNITS:
                engines = n // units
                if engines < 2 or engines * units != n or engines > 64:
                    continue
                core = _core(name, n, k, fmt, units, rotation)
                rotations_done = core.rotations_per_row(n, k)
                steady = engines_steady_period(core, n, k, engines)
                record = {"rotation": rotation, "n": n, "k": k, "engines": engines,
                          "units": units, "rotations_per_row": rotations_done,
                          "steady_cycles_per_row": steady,
                          "steady_utilisation": rotations_done / (n * steady)}
                if verilator:
                    print(f"Verilator: QREngines n = {n}, {engines} x {units} {rotation}, "
                          f"FOLD of {fold_rows} rows ...", file=sys.stderr)
                    measured = verilator_engines_fold(n, k, fmt, engines, units, rotation,
                                                      fold_rows, name=name)
                    cycles, merge = measured["cycles"], measured["merge"]
                    record.update({
                        "fold_rows": fold_rows, "fold_cycles": cycles, "merge_cycles": merge,
                        "fold_utilisation": rotations_done * fold_rows / (n * cycles),
                        "with_merge_utilisation":
                            rotations_done * fold_rows / (n * (cycles + merge)),
                        "bit_exact": measured["bit_exact"]})
                records.append(record)
    return records


def engines_lines(records, fold_rows) -> list[str]:
    """The markdown table of :func:`engines_table`'s records."""
    measured = any("fold_cycles" in r for r in records)
    header = ("| rotation | n | engines x units | steady cycles/row | steady utilisation |")
    rule = "|---|---|---|---|---|"
    if measured:
        header += (f" FOLD of {fold_rows}: cycles/row | its utilisation | merge cycles | "
                   "utilisation with the merge | bit-exact |")
        rule += "---|---|---|---|---|"
    lines = [header, rule]
    for r in records:
        line = (f"| {r['rotation']} | {r['n']} | {r['engines']} x {r['units']} | "
                f"{r['steady_cycles_per_row']:.1f} | {100 * r['steady_utilisation']:.1f} % |")
        if "fold_cycles" in r:
            line += (f" {r['fold_cycles'] / r['fold_rows']:.1f} | "
                     f"{100 * r['fold_utilisation']:.1f} % | {r['merge_cycles']} | "
                     f"{100 * r['with_merge_utilisation']:.1f} % | "
                     f"{'yes' if r['bit_exact'] else 'NO'} |")
        elif measured:
            line += " — | — | — | — | — |"
        lines.append(line)
    return lines


def _fold_figures(core, n, k, fold_rows, prefix, forgetting) -> dict:
    """FOLD's period and its shortest, steady-state utilisation, and the cycles and
    utilisation of one FOLD of ``fold_rows`` rows, without or with forgetting, as
    ``<prefix>_period`` etc."""
    plan = core.fold_plan(n, k, forgetting)
    cycles = core.fold_cycles(n, k, fold_rows, forgetting)
    rotations = core.rotations_per_row(n, k)
    return {
        f"{prefix}_period": plan["period"],
        f"{prefix}_min_period": (core.fold_min_period_forgetting if forgetting
                                 else core.fold_min_period),
        f"{prefix}_steady_utilisation": rotations / (core.units * plan["period"]),
        f"{prefix}_cycles": cycles,
        f"{prefix}_utilisation": rotations * fold_rows / (core.units * cycles),
    }


def fold_quicker_from(core, n: int, k: int, limit: int = 1 << 16) -> int | None:
    """The fewest rows that one FOLD folds in sooner than one UPDATE per row on ``core`` (an
    updater with FOLD), by the exact cycle formulas with the rows arriving at a value a
    cycle; None if no count up to ``limit`` does. Below this count the rows go quicker one
    at a time (what :meth:`~tiersolve.host.device.Device.fold_is_quicker` decides for a
    device, with its link's costs on top). Since the FOLD's fill and drain were shortened
    (2026-11-27) it is 1 or 2 at every size of the README's table (it was up to 89 rows, at
    n = 64 with one unit): 1 where a FOLD of a single row is already the quicker."""
    from tiersolve.host.device import fold_beats_updates

    def quicker(rows):
        return fold_beats_updates(core, n, k, rows)

    # one FOLD grows by a period (or a row's arrival) a row, an UPDATE by more: once
    # quicker, a FOLD stays quicker for more rows, so double, then halve the interval
    low, high = 0, 1                # not quicker at low (no rows)
    while not quicker(high):
        if high >= limit:
            return None
        low, high = high, min(2 * high, limit)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if quicker(middle) else (middle, high)
    return high


def fold_bound(rotations: int, units: int, min_period: int, row_values: int) -> float:
    """The highest steady-state utilisation any schedule of rows through these pipelines can
    reach: a row takes at least ``ceil(rotations / units)`` cycles of array work; rows
    cannot follow each other faster than ``min_period`` cycles (``P_min``: each row's pivot
    ``i`` needs ``r_i`` and ``A[i, :]`` from the previous row's, through the generator and
    the array; the same for a triangular array of the same pipelines); and a row's
    ``row_values = n + k`` values come in through the ``i`` port at one a cycle, so rows
    cannot follow each other faster than that either. With ``units = n`` the last alone caps
    the utilisation at ``(n(n+1)/2 + nk) / (n(n + k))``, about 50-59 %, whatever the
    generator, the array or the schedule."""
    return rotations / (units * max(-(-rotations // units), min_period, row_values))


def script_streams(script, n, k, fmt):
    """Payloads of the ``command`` and ``i`` streams for a command script, and how many ``o``
    transfers it produces.

    ``script`` is a list of tuples: ``("reset", lam_sqrt)``, ``("update", h, t[, b])``,
    ``("downdate", h, t)``, ``("solve",)``, ``("predict", h)``, ``("read", select)``,
    ``("load", select, values)``, ``("fold", [(h, t), ...][, None, b])`` (stored integers;
    ``b`` the forgetting constant), ``("fold_downdate", [(h, t), ...])`` (a FOLD of
    downdates).
    """
    from tiersolve.gen.qr import FoldKind, Op, Select

    w = fmt.width
    commands, values, outputs = [], [], 0
    ops = {"reset": Op.RESET, "update": Op.UPDATE, "downdate": Op.DOWNDATE,
           "solve": Op.SOLVE, "predict": Op.PREDICT, "read": Op.READ, "load": Op.LOAD,
           "fold": Op.FOLD, "fold_downdate": Op.FOLD}
    for step in script:
        name = step[0]
        command = {"op": int(ops[name]), "select": 0, "n": n, "k": k, "value": 0,
                   "forgetting": 1 << w}
        if name == "reset":
            command["value"] = int(step[1])
        elif name in ("update", "downdate"):
            values += [int(v) for v in step[1]] + [int(v) for v in step[2]]
            if name == "update" and len(step) > 3 and step[3] is not None:
                command["forgetting"] = int(step[3])
        elif name == "predict":
            values += [int(v) for v in step[1]]
            outputs += k
        elif name == "read":
            command["select"] = int(step[1])
            outputs += n * n if step[1] == Select.R else n * k
        elif name == "load":
            command["select"] = int(step[1])
            values += [int(v) for v in np.ravel(step[2])]
        elif name in ("fold", "fold_downdate"):
            command["value"] = len(step[1])
            values += [int(v) for h, t in step[1] for v in [*h, *t]]
            if name == "fold_downdate":
                command["select"] = int(FoldKind.DOWNDATE)
            elif len(step) > 3 and step[3] is not None:
                command["forgetting"] = int(step[3])
        commands.append(command)
    return commands, values, outputs


def _verilator_acceptances(name, n, k, fmt, units, rotation, steps):
    """Run ``[("reset", 0.5), *steps, ("read", Z)]`` on the generated Verilog of the
    benchmark's core in Verilator; return the cycle in which each command was accepted (the
    next command is taken in the cycle after the previous one's FINISH)."""
    from tiersolve.gen.crosssim import VerilatorSimulation
    from tiersolve.gen.qr import Select

    core = _core(name, n, k, fmt, units, rotation)
    simulation = VerilatorSimulation(core, top=f"qr_{name}_{rotation}", optimize="-O1",
                                     log=None)
    script = [("reset", fmt.const(0.5)), *steps, ("read", Select.Z)]
    commands, values, outputs = script_streams(script, n, k, fmt)
    result = simulation.run({"command": commands, "i": values}, {"o": outputs})
    return result.input_cycles["command"]


def verilator_engines_fold(n, k, fmt, engines, units, rotation, rows, seed=0, name="qr"):
    """One FOLD of ``rows`` rows spread over :class:`~tiersolve.gen.qr_engines.QREngines`
    (``engines`` QR solver cores, or updaters with ``name="update"``, of ``units`` units; the
    even rows on ``i``, the odd ones on ``i_odd``) on the generated Verilog in Verilator,
    then READ ``R`` (which merges the engines' factors first), ``R`` again and ``Z``.

    Returns
    -------
    dict
        ``cycles``: the FOLD's, from its command to the next command's acceptance;
        ``merge``: the cycles the first READ took more than the second (the merge);
        ``bit_exact``: whether what was read is
        :class:`~tiersolve.gen.qr_model.QREnginesModel`'s.
    """
    from tiersolve.gen.crosssim import VerilatorSimulation
    from tiersolve.gen.qr import Select
    from tiersolve.gen.qr_engines import QREngines
    from tiersolve.gen.qr_model import QRConfig, QREnginesModel, UpdaterEnginesModel

    core = QREngines(n, k, fmt, engines=engines, units=units, rotation=rotation,
                     core="updater" if name == "update" else "qr")
    data = _random_rows(fmt, n, k, rows, seed)
    script = [("reset", fmt.const(0.5)), ("fold", data), ("read", Select.R),
              ("read", Select.R), ("read", Select.Z)]
    commands, _, outputs = script_streams(script, n, k, fmt)
    even, odd = ([int(v) for h, t in data[first::2] for v in (*h, *t)] for first in (0, 1))
    simulation = VerilatorSimulation(core, top=f"{name}_engines_{rotation}", optimize="-O1",
                                     log=None)
    result = simulation.run({"command": commands, "i": even, "i_odd": odd}, {"o": outputs})
    model = (UpdaterEnginesModel if name == "update" else QREnginesModel)(
        QRConfig(fmt, rotation), n, k, fmt.const(0.5), engines=engines)
    model.fold_rows(np.array([h for h, _ in data]), np.array([t for _, t in data]))
    R = [int(v) for v in np.ravel(model.R)]
    expected = R + R + [int(v) for v in np.ravel(model.Z)]
    got = [int(v["value"]) for v in result.values("o")]
    accepted = result.input_cycles["command"]
    return {"cycles": accepted[2] - accepted[1],
            "merge": (accepted[3] - accepted[2]) - (accepted[4] - accepted[3]),
            "bit_exact": got == expected}


def _random_rows(fmt, n, k, rows, seed):
    rng = np.random.default_rng(seed)
    values = [fmt.quantise(rng.uniform(-0.5, 0.5, n + k)).values for _ in range(rows)]
    return [(v[:n], v[n:]) for v in values]


def verilator_update_cycles(name, n, k, fmt, units, rotation, rows=4, seed=0):
    """Cycles between UPDATE commands measured on the generated Verilog in Verilator.

    Returns the list of spacings of consecutive UPDATE acceptances, each the cycles of one
    UPDATE command as :meth:`~tiersolve.gen.qr.IncrementalUpdater.update_cycles` counts them
    (the next command is taken in the cycle after FINISH).
    """
    steps = [("update", h, t) for h, t in _random_rows(fmt, n, k, rows, seed)]
    accepted = _verilator_acceptances(name, n, k, fmt, units, rotation, steps)
    return [b - a for a, b in zip(accepted[1:-1], accepted[2:], strict=True)]


def verilator_fold_cycles(name, n, k, fmt, units, rotation, rows=64, seed=0, forgetting=None):
    """Cycles of one FOLD of ``rows`` rows (with the forgetting constant ``forgetting``, None:
    none) measured on the generated Verilog in Verilator: the spacing of the FOLD command and
    the next one, which :meth:`~tiersolve.gen.qr.IncrementalUpdater.fold_cycles` predicts."""
    steps = [("fold", _random_rows(fmt, n, k, rows, seed), None, forgetting)]
    accepted = _verilator_acceptances(name, n, k, fmt, units, rotation, steps)
    return accepted[2] - accepted[1]


def verilator_fold_downdate_cycles(n, k, fmt, units, rows=64, seed=0):
    """Cycles of one FOLD of downdates of ``rows`` rows (the rows a FOLD put in just before)
    on the generated Verilog of the multiplier updater in Verilator, which
    :meth:`~tiersolve.gen.qr.IncrementalUpdater.fold_cycles` predicts (without forgetting)."""
    rows_ = _random_rows(fmt, n, k, rows, seed)
    accepted = _verilator_acceptances("update", n, k, fmt, units, "multiplier",
                                      [("fold", rows_), ("fold_downdate", rows_)])
    return accepted[3] - accepted[2]


def _synthesise(bench, fmt, seeds=(1,)):
    """One record per :data:`SYNTH_CONFIGS` line: the first seed's report, ``runs`` (seed and
    Fmax of each seed's run; the iCE40UP5K core, which does not fit, runs once) and, as
    ``fmax_mhz``, the lowest Fmax over the seeds."""
    from tiersolve.boards.synth import SynthesisError, synthesize_seeds

    name = "updater" if bench == "update" else "qr"
    seeds = list(dict.fromkeys(seeds))
    records = []
    for rotation, target, n_max, k_max, units in SYNTH_CONFIGS:
        fold = not target.startswith("ice40")   # the iCE40UP5K attempt: the smallest core
        record = {"core": name, "rotation": rotation, "target": target, "n_max": n_max,
                  "k_max": k_max, "units": units, "fold": fold, "runs": []}
        core = _core(name, n_max, k_max, fmt, units, rotation, fold=fold)
        target_seeds = seeds if target.startswith("ecp5") else seeds[:1]
        print(f"synthesising {name} {rotation} n_max={n_max} units={units} for {target}, "
              f"seed{'s' if len(target_seeds) > 1 else ''} "
              f"{' '.join(map(str, target_seeds))} ...", file=sys.stderr)
        try:
            reports = synthesize_seeds(core, target_seeds, target=target, top="qr")
        except SynthesisError as error:
            record["error"] = str(error).splitlines()[0][:300]
        else:
            record.update(reports[0].to_dict())
            record.update(seed_runs(reports, target_seeds))
        records.append(record)
    return records


def accuracy_sweep(fmt, rotation="multiplier", n=8, k=1, m=48, conds=None, seed=1,
                   inverse_format=None):
    """Relative error ``‖W - W_ridge‖ / ‖W_ridge‖`` of the QR model and of the Gram/Cholesky
    model against float64 least squares (λ = 0 for both), for each ``cond(H)``."""
    from tiersolve.gen.cholesky_model import cholesky_model
    from tiersolve.gen.qr_model import QRConfig, QRSolverModel

    fmt = FixedFormat.parse(fmt)
    conds = np.geomspace(1.0, 1e6, 13) if conds is None else conds
    rng = np.random.default_rng(seed)
    config = QRConfig(fmt, rotation)
    # λ = 0 (plain least squares): any λ the Gram path can hold (>= one LSB) would cap the
    # effective condition number at about 2**(f/2) and hide the difference
    lam_sqrt = lam_int = 0
    points = []
    for cond in conds:
        U, _ = np.linalg.qr(rng.standard_normal((m, n)))
        V, _ = np.linalg.qr(rng.standard_normal((n, n)))
        H = U @ np.diag(np.logspace(0, -np.log10(cond), n)) @ V.T * 0.5
        T = H @ rng.uniform(-1, 1, (n, k)) * 0.5
        Hq, Tq = fmt.quantise(H).values, fmt.quantise(T).values
        Hr, Tr = fmt.dequantise(Hq), fmt.dequantise(Tq)
        lam = (lam_sqrt * fmt.resolution) ** 2
        A = np.vstack([Hr, math.sqrt(lam) * np.eye(n)])
        B = np.vstack([Tr, np.zeros((n, k))])
        W_ridge = np.linalg.lstsq(A, B, rcond=None)[0]
        norm = np.linalg.norm(W_ridge)
        model = QRSolverModel(config, n, k, lam_sqrt)
        model.fold_rows(Hq, Tq)
        W_qr = fmt.dequantise(model.solve())
        qr_error = float(np.linalg.norm(W_qr - W_ridge) / norm)
        assert lam_int * fmt.resolution == lam
        result = cholesky_model(fmt, "gram", n, k, lam_int, np.hstack([Hq, Tq]), n_max=n,
                                k_max=k, inverse_format=inverse_format)
        if result.x is None:
            chol_error = None
        else:
            chol_error = float(np.linalg.norm(fmt.dequantise(result.x) - W_ridge) / norm)
        points.append({"cond": float(cond), "qr_error": qr_error, "cholesky_error": chol_error,
                       "cholesky_npd": bool(result.npd), "qr_saturated": bool(model.saturated),
                       "cholesky_saturated": bool(result.saturated)})
    return points


#: (data format, Cholesky pivot-inverse format) pairs of the accuracy plot.
PLOT_FORMATS = (("Q6.12", None), ("Q4.20", "Q10.14"))


def plot_accuracy(path, sweeps):
    """Plot ``sweeps`` ({(format, rotation): points}) to ``path``: QR error per rotation kind
    and the Gram/Cholesky error, for each format, against cond(H)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {"Q6.12": "tab:blue", "Q4.20": "tab:red"}
    done_cholesky = set()
    for (fmt, rotation), points in sweeps.items():
        colour = colours.get(fmt)
        conds = [p["cond"] for p in points]
        ax.loglog(conds, [max(p["qr_error"], 1e-9) for p in points],
                  "o-" if rotation == "multiplier" else "^-", color=colour, alpha=0.8,
                  label=f"QR, {rotation} rotations, {fmt}")
        if fmt not in done_cholesky:
            done_cholesky.add(fmt)
            ax.loglog(conds, [p["cholesky_error"] if p["cholesky_error"] is not None else 10.0
                              for p in points], "s--", color=colour, alpha=0.8,
                      label=f"Gram + Cholesky, {fmt} (10: flagged not positive definite)")
    conds = np.geomspace(1, 1e6, 50)
    u = 2.0**-20
    ax.loglog(conds, conds * u * 8, ":", color="grey", label="∝ cond(H) (QR slope), Q4.20")
    ax.loglog(conds, conds**2 * u * 8, ":", color="black", label="∝ cond(H)² (Gram slope), Q4.20")
    ax.set_ylim(1e-7, 20)
    ax.set_xlabel("cond(H)")
    ax.set_ylabel("‖W - W_ls‖ / ‖W_ls‖ against float64")
    ax.set_title("Least squares through Givens QR vs the Gram/Cholesky path (bit-exact models)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_utilisation(path, records, fold_rows):
    """Plot rotation-unit utilisation against ``n`` (one panel per rotation kind): one row
    per UPDATE, FOLD in steady state and one FOLD of ``fold_rows`` rows, per unit count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def unit_kind(record):      # "n" for units = n (beyond the fixed counts 1, 2, 4)
        return "n" if record["units"] == record["n"] and record["n"] > 4 else str(record["units"])

    rotations = sorted({r["rotation"] for r in records})
    fig, axes = plt.subplots(1, len(rotations), figsize=(6 * len(rotations), 5.5),
                             squeeze=False, sharey=True)
    for ax, rotation in zip(axes[0], rotations, strict=True):
        rows = [r for r in records if r["rotation"] == rotation]
        kinds = sorted({unit_kind(r) for r in rows}, key=lambda text: (text == "n", text))
        for index, kind in enumerate(kinds):
            chosen = sorted((r for r in rows if unit_kind(r) == kind), key=lambda r: r["n"])
            ns = [r["n"] for r in chosen]
            colour = f"C{index}"
            label = f"units = {kind}"
            ax.plot(ns, [100 * r["utilisation"] for r in chosen], ":", color=colour,
                    marker="x", label=f"{label}, one UPDATE per row")
            if all("fold_period" in r for r in chosen):
                ax.plot(ns, [100 * r["fold_steady_utilisation"] for r in chosen], "-",
                        color=colour, marker="o", label=f"{label}, FOLD steady state")
                ax.plot(ns, [100 * r["fold_utilisation"] for r in chosen], "--",
                        color=colour, marker="s", alpha=0.6,
                        label=f"{label}, one FOLD of {fold_rows} rows")
                if kind == "n":  # the other counts' bound is 100 % from n = 16 on
                    ax.plot(ns, [100 * r["fold_bound_utilisation"] for r in chosen], "-.",
                            color=colour, lw=0.8, label=f"{label}, bound with these pipelines "
                            "(rows ≥ P_min and n + k apart)")
        ax.axhline(80, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("n")
        ax.set_title(f"{rotation} rotations")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("rotation-unit utilisation (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=4)
    fig.suptitle("Rotations ÷ (units × cycles): one row at a time against rows in flight")
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _units_left_out(ns, units_list) -> list[int]:
    """The sizes of ``ns`` that ``units = n`` (if ``units_list`` has it) leaves out: ``n`` not
    a power of two from 1 to 64, the unit counts the cores take."""
    return [n for n in ns if n & (n - 1) or n > 64] if "n" in units_list else []


def _check_options(name, args):
    """The options checked (with the cores' own parameter checks) before anything runs;
    returns the data format."""
    from tiersolve.host.bench.checks import fail, fixed_format, integer_at_least, plot_path

    fmt = fixed_format("--format", args.format)
    for n in args.n:
        integer_at_least("--n", n, 1, "give sizes of at least 1")
    integer_at_least("--k", args.k, 1, "give at least 1 right-hand side")
    integer_at_least("--fold-rows", args.fold_rows, 1, "give at least 1 row")
    from tiersolve.gen.qr_model import QRConfig

    for rotation in args.rotation:  # the cores' check of the format
        try:
            QRConfig(fmt, rotation)
        except (TypeError, ValueError) as error:
            fail(f"--format {args.format}: {error}")
    for text in args.units:  # the cores' rule (a core is not built here: a failed one warns)
        try:
            units = None if text == "n" else int(text)
        except ValueError:
            fail(f"--units {text}: give a power of two from 1 to 64, or n (units = n)")
        if units is not None and not (1 <= units <= 64 and units & (units - 1) == 0):
            fail(f"--units {text}: units must be a power of two from 1 to 64, not {units} "
                 "(or n: units = n)")
    if set(args.units) == {"n"} and len(_units_left_out(args.n, args.units)) == len(args.n):
        fail(f"--units n with --n {' '.join(map(str, args.n))}: no row to tabulate (units = n "
             "must be a power of two from 1 to 64)")
    for option, path in (("--plot-utilisation", args.plot_utilisation),
                         ("--plot", args.plot)):
        if path:
            plot_path(option, path)
    return fmt


def run(args) -> int:
    from tiersolve.host.bench.arith import write_results

    name = getattr(args, "benchmark", "qr") or "qr"
    name = "update" if name == "update" else "qr"
    fmt = _check_options(name, args)
    left_out = _units_left_out(args.n, args.units)
    if left_out:
        print(f"units = n left out for n = {', '.join(map(str, left_out))} (the cores take a "
              "power of two from 1 to 64 units)", file=sys.stderr)
    records = cycle_table(name, args.n, args.units, args.k, fmt, args.rotation,
                          args.fold_rows)
    core_name = "QRSolver" if name == "qr" else "IncrementalUpdater"
    lines = [f"{core_name}, {fmt}, k = {args.k}: cycles per row (UPDATE, row streamed in) "
             "from the cycle formula (checked against simulation)", ""]
    header = "| rotation | n | units | cycles/row | rotations/row | utilisation |"
    rule = "|---|---|---|---|---|---|"
    if name == "update":
        header += " downdate cycles |"
        rule += "---|"
    header += (f" FOLD period (skew) | FOLD steady utilisation | FOLD of {args.fold_rows}: "
               "cycles/row | its utilisation | bound (P_min; n + k) |")
    rule += "---|---|---|---|---|"
    if name == "update":
        header += (f" FOLD with forgetting: period (P_min) | its FOLD of {args.fold_rows}: "
                   "utilisation | FOLD quicker than UPDATEs from (rows) |")
        rule += "---|---|---|"
    lines += [header, rule]
    for r in records:
        line = (f"| {r['rotation']} | {r['n']} | {r['units']} | {r['cycles_per_row']} | "
                f"{r['rotations_per_row']} | {100 * r['utilisation']:.1f} % |")
        if name == "update":
            line += f" {r['downdate_cycles']} |"
        if "fold_period" in r:
            line += (f" {r['fold_period']} ({r['fold_skew']}) | "
                     f"{100 * r['fold_steady_utilisation']:.1f} % | "
                     f"{r['fold_cycles_per_row']:.1f} | {100 * r['fold_utilisation']:.1f} % | "
                     f"{100 * r['fold_bound_utilisation']:.1f} % ({r['fold_min_period']}; "
                     f"{r['n'] + r['k']}) |")
            if name == "update":
                line += (f" {r['fold_forgetting_period']} ({r['fold_forgetting_min_period']}) "
                         f"| {100 * r['fold_forgetting_utilisation']:.1f} % | "
                         f"{r['fold_quicker_from'] or '—'} |")
        else:
            line += " — | — | — | — | — |" + (" — | — | — |" if name == "update" else "")
        lines.append(line)
    meta = {"format": str(fmt), "k": args.k, "core": core_name}
    if args.verilator:
        checks = []
        for rotation in args.rotation:
            core = _core(name, 16, args.k, fmt, 4, rotation)
            measured = verilator_update_cycles(name, 16, args.k, fmt, 4, rotation)
            checks.append({"rotation": rotation, "n": 16, "units": 4, "measured": measured,
                           "formula": core.update_cycles(16, args.k)})
        for rotation in args.rotation:
            core = _core(name, 16, args.k, fmt, 4, rotation)
            checks.append({"rotation": f"{rotation}, FOLD of 64 rows", "n": 16, "units": 4,
                           "measured": verilator_fold_cycles(name, 16, args.k, fmt, 4,
                                                             rotation),
                           "formula": core.fold_cycles(16, args.k, 64)})
            if name == "update":
                forgetting = core.config.forgetting_constant(0.99)
                checks.append({
                    "rotation": f"{rotation}, FOLD of 64 rows with forgetting (beta = 0.99)",
                    "n": 16, "units": 4,
                    "measured": verilator_fold_cycles(name, 16, args.k, fmt, 4, rotation,
                                                      forgetting=forgetting),
                    "formula": core.fold_cycles(16, args.k, 64, forgetting)})
            if core.fold_downdates:
                checks.append({
                    "rotation": f"{rotation}, FOLD of 64 downdates (the 64 rows just folded "
                                "in)", "n": 16, "units": 4,
                    "measured": verilator_fold_downdate_cycles(16, args.k, fmt, 4),
                    "formula": core.fold_cycles(16, args.k, 64)})
        meta["verilator_checks"] = checks
        lines += ["", "Verilator check (n = 16, units = 4; spacing of UPDATE commands, and "
                  "the cycles of one FOLD):"]
        lines += [f"- {c['rotation']}: measured {c['measured']}, formula {c['formula']}"
                  for c in checks]
    if getattr(args, "engines", False):
        from tiersolve.host.cli import CliError

        engine_records = engines_table(args.n, args.k, fmt, args.rotation, args.fold_rows,
                                       verilator=args.verilator, name=name)
        meta["engines"] = engine_records
        kind = "QR solver cores" if name == "qr" else "updaters"
        lines += ["", f"units = n as several {kind} (QREngines: a FOLD's rows spread over "
                  "them, their factors merged when the whole factor is next needed); "
                  "utilisation = rotations of the rows ÷ (n × cycles)", ""]
        lines += engines_lines(engine_records, args.fold_rows)
        if any(not r.get("bit_exact", True) for r in engine_records):
            print("\n".join(lines))
            raise CliError("QREngines in Verilator did not give the model's integers")
    if args.synth:
        synth = _synthesise(name, fmt, args.synth_seeds)
        meta["synthesis"] = synth
        lines += ["", "| core | rotation | target | n_max | units | LUT | FF | DSP | BRAM | "
                  "Fmax MHz |", "|---|---|---|---|---|---|---|---|---|---|"]
        for s in synth:
            if "error" in s:
                lines.append(f"| {s['core']} | {s['rotation']} | {s['target']} | "
                             f"{s['n_max']} | {s['units']} | {s['error']} |||||")
                continue
            def used(key, s=s):
                entry = s.get(key)
                return entry["used"] if isinstance(entry, dict) else "-"

            lines.append(f"| {s['core']} | {s['rotation']} | {s['target']} | {s['n_max']} | "
                         f"{s['units']} | {used('luts')} | {used('ffs')} | {used('dsps')} | "
                         f"{used('block_rams')} | {fmax_cell(s)} |")
    if args.plot_utilisation:
        plot_utilisation(args.plot_utilisation, records, args.fold_rows)
        lines += ["", f"utilisation plot: {args.plot_utilisation}"]
    if args.plot:
        sweeps = {(data_format, rotation): accuracy_sweep(data_format, rotation,
                                                          inverse_format=inverse_format)
                  for data_format, inverse_format in PLOT_FORMATS
                  for rotation in args.rotation}
        plot_accuracy(args.plot, sweeps)
        meta["accuracy"] = {f"{key[0]} {key[1]}": points for key, points in sweeps.items()}
        lines += ["", f"accuracy plot: {args.plot}"]
    text = "\n".join(lines)
    print(text)
    write_results(args.out, name, records, text, meta=meta)
    return 0
