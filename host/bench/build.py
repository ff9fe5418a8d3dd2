"""``tiersolve bench build``: the board build matrix (resources, Fmax, solve time per board).

For every buildable board of :mod:`tiersolve.boards.catalogue` and every ``n_max`` of
``--n-max`` (with ``k_max`` and ``lanes`` from ``--k-max`` / ``--lanes``), the complete board
design is built from scratch with :func:`tiersolve.boards.build.build` (YoWASP tools). A row
gives LUT, DSP and block-RAM use in percent of the device, the routed Fmax of the design clock,
and the time of one fit at ``n = n_max``, ``k = k_max``: factorisation + solve + result output
cycles from :func:`tiersolve.gen.cholesky_model.cycle_model` (direct mode; the rows and the link
are not counted), divided by the Fmax measured (and by the board's clock, which is what a board
actually runs at). A configuration that does not fit is a row that says so, with the overused
resource.

The incremental-update core is not integrated in the board design yet: the update column says
so instead of inventing a number.

Results: the table on stdout and in ``<out>/build.md``, everything in ``<out>/build.json``, the
build folders under ``<out>/build/<board>-n<n_max>``. Each build takes from about a minute
(iCE40, small) to tens of minutes (ECP5-85F, large) on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["HELP", "add_arguments", "fit_cycles", "markdown_table", "run"]

HELP = "build every board x n_max from scratch: LUT/DSP/BRAM %, Fmax, time of one fit"


def add_arguments(parser):
    parser.add_argument("--boards", nargs="+", default=None,
                        help="boards to build (default: every buildable board)")
    parser.add_argument("--n-max", type=int, nargs="+", default=[4, 8, 16, 32],
                        help="n_max values (default: 4 8 16 32)")
    parser.add_argument("--k-max", type=int, default=None,
                        help="k_max (default: max(1, n_max // 4))")
    parser.add_argument("--lanes", type=int, default=None,
                        help="lanes (default: 1 on iCE40, 4 on ECP5)")
    parser.add_argument("--format", default="Q6.12", help="data format (default Q6.12)")


def fit_cycles(n: int, k: int, lanes: int, fmt="Q6.12") -> int:
    """Cycles of one direct-mode job of the core: factor + solve + output (``cycle_model``)."""
    from tiersolve.gen.cholesky_model import cycle_model
    from tiersolve.host.bench.cholesky import _rsqrt_latency

    cycles = cycle_model(n, k, lanes, rsqrt_latency=_rsqrt_latency(fmt, None))
    return cycles["factor"] + cycles["solve"] + cycles["output"]


def _row(board, n_max, k_max, lanes, fmt, out: Path) -> dict:
    from tiersolve.boards import synth
    from tiersolve.boards.build import TimingNotMetError, build

    row = {"board": board.name, "n_max": n_max, "k_max": k_max, "lanes": lanes,
           "format": fmt, "clock_mhz": board.clock_mhz}
    started = time.monotonic()
    folder = out / "build" / f"{board.name}-n{n_max}"
    try:
        result = build(board, folder, n_max=n_max, k_max=k_max, fmt=fmt, lanes=lanes,
                       allow_timing_failure=True,
                       progress=lambda line: print(f"  {line}", flush=True))
        report = result.report
        row.update(status="fits" if report["timing_met"] else "fits, timing missed")
    except TimingNotMetError as error:  # not raised with allow_timing_failure; kept for safety
        report = error.report
        row.update(status="timing missed")
    except synth.DesignDoesNotFitError as error:
        row.update(status="does not fit: " + ", ".join(
            f"{name} {used}/{available}" for name, (used, available) in error.overused.items()))
        report = None
    except synth.SynthesisError as error:
        row.update(status=f"failed: {str(error).splitlines()[0]}")
        report = None
    row["build_seconds"] = round(time.monotonic() - started, 1)
    cycles = fit_cycles(n_max, k_max, lanes, fmt)
    row["fit_cycles"] = cycles
    row["fit_us_at_clock"] = cycles / board.clock_mhz
    if report is not None:
        for name in ("luts", "ffs", "dsps", "block_rams", "spram"):
            if name in report["resources"]:
                row[f"{name}_percent"] = report["resources"][name]["percent"]
                row[name] = report["resources"][name]["used"]
        row["fmax_mhz"] = report["fmax_mhz"]
        row["fit_us_at_fmax"] = cycles / report["fmax_mhz"] if report["fmax_mhz"] else None
    row["update"] = "update core not integrated in the board design yet"
    return row


def markdown_table(rows) -> str:
    """The README table of :func:`run`'s rows."""
    lines = ["| board | n_max / k_max / lanes | LUT % | DSP % | BRAM % | Fmax (MHz) | clock (MHz) "
             "| fit cycles | fit µs at Fmax | fit µs at clock | update | status |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for row in rows:
        def cell(name, row=row):
            value = row.get(name)
            return "—" if value is None else f"{value:.1f}"

        lines.append(
            f"| {row['board']} | {row['n_max']} / {row['k_max']} / {row['lanes']} "
            f"| {cell('luts_percent')} | {cell('dsps_percent')} | {cell('block_rams_percent')} "
            f"| {cell('fmax_mhz')} | {row['clock_mhz']:g} | {row['fit_cycles']} "
            f"| {cell('fit_us_at_fmax')} | {cell('fit_us_at_clock')} | not integrated "
            f"| {row['status']} |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from tiersolve.boards.catalogue import BOARDS, get_board

    boards = [get_board(name) for name in args.boards] if args.boards else \
        [board for board in BOARDS.values() if board.buildable]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for board in boards:
        for n_max in args.n_max:
            k_max = args.k_max or max(1, n_max // 4)
            lanes = args.lanes or (1 if board.family == "ice40" else 4)
            print(f"{board.name} n_max={n_max} k_max={k_max} lanes={lanes}", flush=True)
            rows.append(_row(board, n_max, k_max, lanes, args.format, out))
            # written after every build: a long matrix can be stopped and still be read
            (out / "build.json").write_text(json.dumps(rows, indent=2) + "\n")
            (out / "build.md").write_text(markdown_table(rows))
    print(markdown_table(rows))
    return 0
