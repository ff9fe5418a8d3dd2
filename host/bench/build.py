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

With ``--cores cholesky,updater`` the design also holds the incremental-update core
(:class:`~tiersolve.gen.qr.IncrementalUpdater`, one unit), and the update column gives the time
of one row update at ``n = n_max``, ``k = k_max``: its
:meth:`~tiersolve.gen.qr.IncrementalUpdater.update_cycles` divided by the Fmax measured. Builds
without the updater show "—" there.

``--clock-mhz`` builds every board at that design clock instead of its catalogue's (boards with
a PLL only; see :func:`tiersolve.boards.build.with_clock`): the rows, the recorded ``clock_mhz``
and the reproducing command carry it.

Results: the table on stdout and in ``<out>/build.md``, everything in ``<out>/build.json``, the
build folders under ``<out>/build/<board>-n<n_max>[-updater]``. ``--record`` also merges the
rows into the committed record ``tiersolve/boards/measured_builds.json`` (see
:mod:`tiersolve.boards.measured`), which other code reads with
:func:`~tiersolve.boards.measured.measured_build`. Each build takes from about a minute
(iCE40, small) to tens of minutes (ECP5-85F, large) on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["HELP", "add_arguments", "fit_cycles", "markdown_table", "run"]

HELP = "build every board x n_max from scratch: LUT/DSP/BRAM use, Fmax, time of one fit"


def add_arguments(parser):
    from tiersolve.boards.build import add_seed_minutes_argument, seed_argument

    parser.add_argument("--boards", nargs="+", default=None,
                        help="boards to build (default: every buildable board)")
    parser.add_argument("--n-max", type=int, nargs="+", default=[4, 8, 16, 32],
                        help="n_max values (default: 4 8 16 32)")
    parser.add_argument("--k-max", type=int, default=None,
                        help="k_max (default: max(1, n_max // 4))")
    parser.add_argument("--lanes", type=int, default=None,
                        help="lanes (default: 1 on iCE40, 4 on ECP5)")
    parser.add_argument("--format", default="Q6.12", help="data format (default Q6.12)")
    parser.add_argument("--inverse-format", default=None,
                        help="format of the Cholesky core's pivot inverses (default: the data "
                             "format)")
    parser.add_argument("--cores", default="cholesky", choices=["cholesky", "cholesky,updater"],
                        metavar="CORES",
                        help="cores of the design (default cholesky)")
    parser.add_argument("--updater-fold", action="store_true",
                        help="build the updater's FOLD command (needs --cores cholesky,updater)")
    parser.add_argument("--seed", type=seed_argument, nargs="+", default=[None],
                        metavar="SEED",
                        help="nextpnr placement seed, or several: every seed is placed and "
                             "routed, the fastest is the row's (and its bitstream), all are "
                             "in the row's seeds_tried ('default': nextpnr's own, the default)")
    add_seed_minutes_argument(parser)
    parser.add_argument("--clock-mhz", type=float, default=None, metavar="MHZ",
                        help="design clock of every board built (default: each board's "
                             "catalogue clock); the PLL's output and nextpnr's timing target")
    parser.add_argument("--record", action="store_true",
                        help="merge the rows into tiersolve/boards/measured_builds.json")
    parser.add_argument("--record-file", default=None,
                        help="record file for --record / --from-record (default: the "
                             "package's own)")
    parser.add_argument("--from-record", action="store_true",
                        help="build nothing: print the table of the recorded builds")


def fit_cycles(n: int, k: int, lanes: int, fmt="Q6.12", inverse_format=None) -> int:
    """Cycles of one direct-mode job of the core: factor + solve + output (``cycle_model``;
    the pivot inverses' format, default the data format, sets the rsqrt latency)."""
    from tiersolve.gen.cholesky_model import cycle_model
    from tiersolve.host.bench.cholesky import _rsqrt_latency

    cycles = cycle_model(n, k, lanes, rsqrt_latency=_rsqrt_latency(fmt, inverse_format),
                         fmt=fmt, inverse_format=inverse_format)
    return cycles["factor"] + cycles["solve"] + cycles["output"]


def update_cycles(n: int, k: int, fmt="Q6.12", units: int = 1,
                  rotation: str = "multiplier") -> int:
    """Cycles of one row update of the updater as the board design builds it (one unit,
    multiplier rotations: :class:`~tiersolve.designs.top.SolverDesign`'s defaults)."""
    from tiersolve.host.device import updater_cycle_model

    return updater_cycle_model(n, k, str(fmt), units, rotation).update_cycles(n, k)


def _row(board, n_max, k_max, lanes, fmt, out: Path, cores=("cholesky",),
         inverse_format=None, seeds=(None,), clock_mhz=None, seed_minutes=None,
         updater_fold=False) -> dict:
    from tiersolve.boards import synth
    from tiersolve.boards.build import TimingNotMetError, build, with_clock
    from tiersolve.boards.measured import build_command

    catalogue_hz = board.clock_hz
    if clock_mhz is not None:
        board = with_clock(board, clock_mhz)
    # the command names the clock only when it is not the catalogue's (rows recorded before
    # --clock-mhz existed have the catalogue's clock and no --clock-mhz)
    overridden = board.clock_hz != catalogue_hz
    row = {"board": board.name, "n_max": n_max, "k_max": k_max, "lanes": lanes,
           "format": fmt, "cores": list(cores), "clock_mhz": board.clock_mhz,
           "command": build_command(board.name, n_max=n_max, k_max=k_max, lanes=lanes,
                                    format=fmt, cores=cores, inverse_format=inverse_format,
                                    seed=seeds[0] if len(seeds) == 1 else None,
                                    clock_mhz=board.clock_mhz if overridden else None,
                                    updater_fold=updater_fold),
           "fmax_mhz": None}
    if updater_fold:  # (rows without the key: built without FOLD)
        row["updater_fold"] = True
    if inverse_format is not None:
        row["inverse_format"] = str(inverse_format)
    if len(seeds) == 1 and seeds[0] is not None:
        row["seed"] = seeds[0]
    if overridden:
        row["catalogue_clock_mhz"] = catalogue_hz / 1e6
    started = time.monotonic()
    suffix = ("-updater" if "updater" in cores else "") + ("-fold" if updater_fold else "")
    folder = out / "build" / f"{board.name}-n{n_max}{suffix}"
    try:
        result = build(board, folder, n_max=n_max, k_max=k_max, fmt=fmt, lanes=lanes,
                       cores=cores, inverse_format=inverse_format, updater_fold=updater_fold,
                       allow_timing_failure=True,
                       seed=list(seeds), keep_best=True, seed_minutes=seed_minutes,
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
    cycles = fit_cycles(n_max, k_max, lanes, fmt, inverse_format)
    row["fit_cycles"] = cycles
    row["fit_us_at_clock"] = cycles / board.clock_mhz
    if report is not None:
        for name in ("luts", "ffs", "dsps", "block_rams", "spram"):
            if name in report["resources"]:
                row[f"{name}_percent"] = report["resources"][name]["percent"]
                row[name] = report["resources"][name]["used"]
        row["fmax_mhz"] = report["fmax_mhz"]
        row["timing_met"] = report["timing_met"]
        row["fit_us_at_fmax"] = cycles / report["fmax_mhz"] if report["fmax_mhz"] else None
        row["tools"] = report["tools"]
        if report.get("design_sha256"):
            row["design_sha256"] = report["design_sha256"]
        if "seeds_tried" in report:  # several seeds: the row is the fastest one's
            row["seeds_tried"] = report["seeds_tried"]
            if report["seed"] is not None:
                row["seed"] = report["seed"]
            row["command"] = build_command(
                board.name, n_max=n_max, k_max=k_max, lanes=lanes, format=fmt, cores=cores,
                inverse_format=inverse_format, seed=report["seed"],
                clock_mhz=board.clock_mhz if overridden else None, updater_fold=updater_fold)
    if "updater" in cores:
        row["update_cycles"] = update_cycles(n_max, k_max, fmt)
        if row.get("fmax_mhz"):
            row["update_us_at_fmax"] = row["update_cycles"] / row["fmax_mhz"]
    return row


def update_cell(row) -> str:
    """Update column: µs of one update at Fmax and its cycles; "—" without the updater."""
    if row.get("update_cycles") is None:
        return "—"
    if row.get("update_us_at_fmax") is None:
        return f"— ({row['update_cycles']} cycles)"
    return f"{row['update_us_at_fmax']:.1f} µs ({row['update_cycles']} cycles)"


def markdown_table(rows) -> str:
    """The README table of :func:`run`'s rows (see :func:`format_note` for the sizes cell)."""
    lines = ["| board | n_max / k_max / lanes | LUT % | DSP % | BRAM % | Fmax (MHz) | clock (MHz) "
             "| fit cycles | fit µs at Fmax | fit µs at clock | update | status |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        def cell(name, row=row):
            value = row.get(name)
            return "—" if value is None else f"{value:.1f}"

        lines.append(
            f"| {row['board']} | {row['n_max']} / {row['k_max']} / {row['lanes']}"
            f"{format_note(row)} "
            f"| {cell('luts_percent')} | {cell('dsps_percent')} | {cell('block_rams_percent')} "
            f"| {cell('fmax_mhz')} | {row['clock_mhz']:g} | {row['fit_cycles']} "
            f"| {cell('fit_us_at_fmax')} | {cell('fit_us_at_clock')} | {update_cell(row)} "
            f"| {row['status']}{seed_note(row)} |")
    return "\n".join(lines) + "\n"


def seed_note(row) -> str:
    """What follows the status: the placement seed of the row's bitstream, and the other
    seeds' Fmax when several were tried."""
    from tiersolve.boards.build import seed_label, seeds_fmax_text

    tried = row.get("seeds_tried") or []
    if row.get("seed") is None and not tried:
        return ""
    others = seeds_fmax_text(entry for entry in tried if entry["seed"] != row.get("seed"))
    return f", seed {seed_label(row.get('seed'))}" + (f" (others {others})" if others else "")


def format_note(row) -> str:
    """What follows the sizes: the format if not Q6.12, ``+updater`` if the updater is in
    (``+updater with FOLD`` when its FOLD command is built)."""
    parts = [] if row.get("format", "Q6.12") == "Q6.12" else [row["format"]]
    if "updater" in row.get("cores", ()):
        parts.append("+updater with FOLD" if row.get("updater_fold") else "+updater")
    return f" ({', '.join(parts)})" if parts else ""


def _load_record(path, must_exist: bool) -> list[dict]:
    """The builds of the record file ``path`` (None: the package's), or the one-line error
    when it is not a record, or a folder, or (``must_exist``) missing, or has no folder to be
    written in."""
    from tiersolve.boards.measured import MEASURED_BUILDS_PATH, load_measured_builds
    from tiersolve.host.cli import CliError

    shown = Path(MEASURED_BUILDS_PATH if path is None else path)
    if shown.exists() and not shown.is_file():
        raise CliError(f"--record-file {shown}: not a file")
    if not shown.exists():
        if must_exist:
            raise CliError(f"--record-file {shown}: no such file")
        if not shown.parent.is_dir():
            raise CliError(f"--record-file {shown}: no folder {shown.parent} to write it in")
    try:
        return load_measured_builds(path)
    except json.JSONDecodeError as error:
        raise CliError(f"--record-file {shown}: not JSON ({error}); give a record written by "
                       "bench build --record") from None
    except (OSError, ValueError) as error:  # (its message names the file)
        raise CliError(f"--record-file: {error}") from None


def run(args) -> int:
    from tiersolve.boards.build import BoardError, with_clock
    from tiersolve.boards.catalogue import BOARDS, UnknownBoardError, get_board
    from tiersolve.boards.measured import record_builds
    from tiersolve.host.cli import CliError

    if args.from_record:
        try:
            for name in args.boards or ():
                get_board(name)
        except (UnknownBoardError, TypeError) as error:
            raise CliError(str(error)) from None
        recorded = _load_record(args.record_file, must_exist=True)
        rows = [row for row in recorded if not args.boards or row["board"] in args.boards]
        if not rows:
            have = sorted({row["board"] for row in recorded})
            raise CliError(f"the record holds no build of {', '.join(args.boards or ['any board'])}"
                           f"; it has builds of: {', '.join(have) or 'none'}")
        print(markdown_table(rows), end="")
        return 0
    cores = tuple(args.cores.split(","))
    updater_fold = getattr(args, "updater_fold", False)
    try:
        if updater_fold and "updater" not in cores:
            raise ValueError("--updater-fold builds the updater's FOLD command: it needs "
                             "--cores cholesky,updater")
        boards = [get_board(name) for name in args.boards] if args.boards else \
            [board for board in BOARDS.values() if board.buildable]
        clock_mhz = getattr(args, "clock_mhz", None)
        if clock_mhz is not None:  # every board's clock is checked before anything is built
            for board in boards:
                with_clock(board, clock_mhz)
    except (UnknownBoardError, BoardError, TypeError, ValueError) as error:
        raise CliError(str(error)) from None
    if args.record:  # a record --record cannot merge into fails now, not after a build
        _load_record(args.record_file, must_exist=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for board in boards:
        for n_max in args.n_max:
            k_max = args.k_max or max(1, n_max // 4)
            lanes = args.lanes or (1 if board.family == "ice40" else 4)
            print(f"{board.name} n_max={n_max} k_max={k_max} lanes={lanes}", flush=True)
            rows.append(_row(board, n_max, k_max, lanes, args.format, out, cores,
                             args.inverse_format, args.seed, clock_mhz,
                             args.seed_minutes, updater_fold))
            # written after every build: a long matrix can be stopped and still be read
            (out / "build.json").write_text(json.dumps(rows, indent=2) + "\n")
            (out / "build.md").write_text(markdown_table(rows))
            if args.record:
                path = record_builds(rows[-1:], args.record_file)
                print(f"recorded in {path}", flush=True)
    print(markdown_table(rows))
    return 0
