"""``tiersolve bench cholesky``: cycles, time and area of the Cholesky solver core.

For each ``n`` in ``--n`` and each lane count in ``--lanes`` (``k`` right-hand sides):

- **cycles** from :func:`tiersolve.gen.cholesky_model.cycle_model`, the core's cycle formula.
  The formula is not an estimate: ``test_cycle_model_matches_simulation`` in
  ``tests/gen/test_cholesky.py`` checks it, phase by phase, against the Amaranth simulation of
  the gateware (small ``n``; the Python simulator is too slow for ``n = 128``). Columns: Gram
  accumulation per row (row input included), factorisation (forward substitution included),
  back substitution, and the ratio of factor + solve cycles to the bound
  ``n³/(6·lanes) + n²·k/lanes``; where the ratio misses the 1.25 goal, the columns say where
  the factorisation's cycles go: ``partial`` (cycles lost to partly filled blocks: column
  ``j`` has ``n + k - j`` rows, issued as a head of 1..``lanes`` rows, split over lane pairs
  when it fills at most half the lanes, then whole blocks of ``lanes``), ``scale`` (scaling
  blocks, one per block of rows; they trail the dot products block by block and cost no
  cycle of their own), ``pivot wait`` (cycles that issue no dot-product step: a block
  waiting for the previous column's ``1/√s_j`` and scaling of its rows, the chain that
  short columns cannot hide, and the scaling still to go after the last column) and
  ``drain`` (the final drain); the back substitution has no drain between rows, only waits
  for ``X[i + 1, 0]`` (the late term, from 2 lanes) and ``X[i + 2, 0]`` when rows are shorter
  than the pipeline.
- **time** of factor + solve at the clock frequency (``--fmax-mhz``, or the lowest Fmax that
  ``--synth`` measured, else an assumed 100 MHz, marked as such), beside the time of SciPy's
  ``cho_factor`` + ``cho_solve`` for the same ``n``, ``k`` on this machine's CPU (median of
  ``--repeats`` runs after three unmeasured ones, with the BLAS library held to
  ``--blas-threads`` threads, default 1, through ``threadpoolctl``; the JSON keeps the
  minimum and the 90th percentile too, and the BLAS library and version).
- ``--synth``: synthesis and place-and-route on ECP5-85F (speed grade 6, out of context) of the
  core for ``n_max`` 16 and 64 (LUTs, DSPs, block RAM, Fmax; ``--synth-config`` for others)
  with :func:`tiersolve.boards.synth.synthesize_seeds`; ``--synth-seeds S ...`` places each
  core with every seed listed (default: seed 1) and gives each seed's Fmax, the time column
  the lowest.
- ``--plot PATH``: the accuracy sweep (relative forward error against ``cond(A)`` for two
  formats, with the derived bound) as a PNG.

Results: the table on stdout and ``<out>/cholesky.md``, everything in ``<out>/cholesky.json``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from tiersolve.gen.cholesky_model import (
    cholesky_model,
    cycle_model,
    forward_error_bound,
    late_term_default,
)
from tiersolve.gen.fixed import FixedFormat
from tiersolve.host.bench.seeds import add_seeds_argument, fmax_cell, seed_runs

__all__ = ["HELP", "accuracy_sweep", "add_arguments", "blas_description", "cpu_time_us",
           "cpu_timing", "cycle_table", "plot_accuracy", "run"]

HELP = "cycles vs the n³/6P bound, time at Fmax vs SciPy, area and accuracy of the Cholesky core"

#: (n_max, k_max, lanes) synthesised by ``--synth`` (``--synth-config`` replaces them).
SYNTH_CONFIGS = ((16, 4, 4), (64, 16, 16))

#: (data format, pivot-inverse format) pairs of the accuracy plot.
ACCURACY_FORMATS = (("Q6.12", None), ("Q4.20", "Q8.16"))


def add_arguments(parser):
    parser.add_argument("--n", type=int, nargs="+", default=[8, 16, 32, 64, 128],
                        help="system sizes (default: 8 16 32 64 128)")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64],
                        help="lane counts (default: 1 2 4 8 16 32 64)")
    parser.add_argument("--k", type=int, default=10, help="right-hand sides (default 10)")
    parser.add_argument("--format", default="Q6.12", help="data format (default Q6.12)")
    parser.add_argument("--inverse-format", default=None,
                        help="format of the pivot inverses (default: the data format)")
    parser.add_argument("--fmax-mhz", type=float, default=None,
                        help="clock for the time column (default: from --synth, else 100)")
    parser.add_argument("--synth", action="store_true",
                        help="synthesise n_max 16 and 64 for ECP5-85F (minutes)")
    parser.add_argument("--synth-config", nargs="+", default=None, metavar="N_MAX,K_MAX,LANES",
                        help="configurations for --synth instead of 16,4,4 and 64,16,16 "
                             "(e.g. 128,16,32: large ones take tens of minutes)")
    add_seeds_argument(parser)
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="write the accuracy plot here (e.g. docs/cholesky_accuracy.png)")
    parser.add_argument("--repeats", type=int, default=50,
                        help="CPU timing repetitions (default 50)")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="threads the BLAS library may use in the CPU timing (default 1; "
                             "set through threadpoolctl, whatever OPENBLAS_NUM_THREADS says)")


def _rsqrt_latency(fmt, inverse_format) -> int:
    from tiersolve.gen.checks import silence_unused
    from tiersolve.gen.recip import ReciprocalUnit

    unit = ReciprocalUnit(fmt, inverse_format or fmt, "rsqrt", "iterative")
    return silence_unused(unit).latency  # only asked for its latency, never elaborated


#: Unmeasured runs before the timed ones (first calls load code and warm the caches).
WARMUP_RUNS = 3


def cpu_timing(n: int, k: int, repeats: int = 50, seed: int = 0,
               threads: int | None = 1) -> dict:
    """Time ``scipy.linalg.cho_factor`` + ``cho_solve`` (float64) on an SPD ``n x n`` system
    with ``k`` right-hand sides: ``WARMUP_RUNS`` unmeasured runs, then ``repeats`` timed ones.

    ``threads`` caps the BLAS library's threads for the timing (``threadpoolctl``; None leaves
    them as they are). Returns ``median_us``, ``min_us``, ``p90_us``, ``repeats`` and
    ``blas`` (:func:`blas_description` during the timing).
    """
    from scipy.linalg import cho_factor, cho_solve
    from threadpoolctl import threadpool_limits

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer of at least 1, not {repeats!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be an integer of at least 1 or None, not {threads!r}")
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((2 * n, n))
    a = h.T @ h + np.eye(n)
    b = rng.standard_normal((n, k))
    times = []
    with threadpool_limits(limits=threads, user_api="blas"):
        blas = blas_description()
        for index in range(WARMUP_RUNS + repeats):
            started = time.perf_counter()
            cho_solve(cho_factor(a, lower=True, check_finite=False), b, check_finite=False)
            if index >= WARMUP_RUNS:
                times.append(time.perf_counter() - started)
    times = np.array(times) * 1e6
    return {"median_us": float(np.median(times)), "min_us": float(times.min()),
            "p90_us": float(np.percentile(times, 90)), "repeats": repeats, "blas": blas}


def cpu_time_us(n: int, k: int, repeats: int = 50, seed: int = 0,
                threads: int | None = 1) -> float:
    """Median time of ``scipy.linalg.cho_factor`` + ``cho_solve`` (float64), in µs, with the
    BLAS library held to ``threads`` threads (:func:`cpu_timing`)."""
    return cpu_timing(n, k, repeats, seed, threads)["median_us"]


def blas_description() -> str:
    """The BLAS libraries NumPy/SciPy use now, with versions and thread counts (e.g.
    ``"openblas 0.3.27, 1 thread"``)."""
    from threadpoolctl import threadpool_info

    parts = []
    for info in threadpool_info():
        if info.get("user_api") != "blas":
            continue
        threads = info.get("num_threads")
        parts.append(f"{info.get('internal_api', '?')} {info.get('version') or '?'}, "
                     f"{threads} thread{'s' if threads != 1 else ''}")
    return "; ".join(dict.fromkeys(parts)) or "no BLAS library found"


def cycle_table(ns, lanes_list, k, rsqrt_latency, fmt=None, inverse_format=None):
    """One record per (n, lanes): the cycle formula, the bound and the ratio (``fmt`` and
    ``inverse_format``: the core's formats, None for at most 18 bits)."""
    records = []
    for n in ns:
        for lanes in lanes_list:
            c = cycle_model(n, k, lanes, rows=1, rsqrt_latency=rsqrt_latency, fmt=fmt,
                            inverse_format=inverse_format)
            bound = n**3 / (6 * lanes) + n**2 * k / lanes
            ideal_lane_cycles = sum((n + k - j) * (j + 1) for j in range(n))
            records.append({
                "n": n, "k": k, "lanes": lanes,
                "gram_cycles_per_row": c["gram_per_row"],
                "factor_cycles": c["factor"],
                "solve_cycles": c["solve"],
                "factor_solve_cycles": c["factor"] + c["solve"],
                "bound_cycles": bound,
                "ratio_to_bound": (c["factor"] + c["solve"]) / bound,
                "partial_block_cycles": round(
                    (c["factor_busy_lane_cycles"] * lanes - ideal_lane_cycles) / lanes),
                "scale_cycles": c["factor_scale"],
                "pivot_wait_cycles": c["factor_pivot_wait"],
                "drain_cycles": c["factor_drain"],
                "output_cycles": c["output"],
                "multipliers": 2 * lanes + int(late_term_default(lanes)),
            })
    return records


def cpu_parity(records, n: int, cpu_us: float, fmax_mhz: float) -> dict:
    """What matching the CPU takes at size ``n``, from the :func:`cycle_table` records of that
    ``n`` (they carry ``k``), the CPU's time ``cpu_us`` and a clock ``fmax_mhz``.

    Returns
    -------
    dict
        ``multiply_adds`` (``n³/6 + n²k``, the work of factor + solve), ``cpu_cycles`` (the
        CPU's time in cycles at ``fmax_mhz``), ``multiply_adds_per_cycle`` (what a core needs
        with none idle to match the CPU at that clock) and ``clock_to_match_mhz``: per lane
        count of the table (``lanes``), the clock (``clock_mhz``) at which its factor + solve
        takes the CPU's time.
    """
    rows = [r for r in records if r["n"] == n]
    if not rows:
        raise ValueError(f"cpu_parity: no record of n = {n}")
    if not cpu_us > 0 or not fmax_mhz > 0:
        raise ValueError(f"cpu_parity: times and clocks must be positive, not {cpu_us!r}, "
                         f"{fmax_mhz!r}")
    work = n**3 / 6 + n**2 * rows[0]["k"]
    cycles = cpu_us * fmax_mhz
    return {"n": n, "k": rows[0]["k"], "cpu_us": cpu_us, "fmax_mhz": fmax_mhz,
            "multiply_adds": work, "cpu_cycles": cycles,
            "multiply_adds_per_cycle": work / cycles,
            "clock_to_match_mhz": [{"lanes": r["lanes"],
                                    "clock_mhz": r["factor_solve_cycles"] / cpu_us}
                                   for r in rows]}


def accuracy_sweep(fmt, inverse_format=None, n=16, k=2, conds=None, trials=4, seed=1):
    """Relative forward error of the core (bit-exact model) against float64 over ``cond(A)``.

    Returns a list of dicts: ``cond``, ``error``,
    ``bound`` (None where none exists), ``npd``, ``saturated``; ``error`` is None when the core
    flagged the matrix.
    """
    fmt = FixedFormat.parse(fmt)
    rng = np.random.default_rng(seed)
    conds = np.geomspace(1.0, 1e6, 25) if conds is None else conds
    points = []
    for cond in conds:
        for _ in range(trials):
            q, _ = np.linalg.qr(rng.standard_normal((n, n)))
            a = fmt.quantise((q * (4.0 * np.geomspace(1.0 / cond, 1.0, n))) @ q.T).values
            a = np.tril(a) + np.tril(a, -1).T
            a_real = fmt.dequantise(a)
            b = fmt.quantise(a_real @ rng.uniform(-1, 1, (n, k))).values
            result = cholesky_model(fmt, "direct", n, k, 0, np.hstack([a, b]), n_max=n,
                                    k_max=k, inverse_format=inverse_format)
            x = np.linalg.solve(a_real, fmt.dequantise(b))
            error = (None if result.x is None else
                     float(np.linalg.norm(fmt.dequantise(result.x) - x) / np.linalg.norm(x)))
            bound = forward_error_bound(a_real, x, fmt, inverse_format)
            points.append({"cond": float(np.linalg.cond(a_real)), "error": error,
                           "bound": bound if np.isfinite(bound) else None,
                           "npd": result.npd, "saturated": result.saturated})
    return points


def plot_accuracy(path, formats=ACCURACY_FORMATS):
    """Plot :func:`accuracy_sweep` for ``formats`` to ``path`` (PNG); return the sweeps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sweeps = {}
    for (fmt, inverse_format), colour in zip(formats, ("tab:blue", "tab:orange"), strict=False):
        label = fmt + (f" (1/√s in {inverse_format})" if inverse_format else "")
        points = accuracy_sweep(fmt, inverse_format)
        sweeps[label] = points
        cond = np.array([p["cond"] for p in points])
        error = np.array([np.nan if p["error"] is None else p["error"] for p in points])
        bound = np.array([np.inf if p["bound"] is None else p["bound"] for p in points])
        flagged = np.array([p["npd"] or p["saturated"] for p in points])
        ok = ~flagged & np.isfinite(error)
        ax.loglog(cond[ok], error[ok], "o", color=colour, ms=4, label=f"{label}: error")
        if flagged.any():
            ax.loglog(cond[flagged], np.full(flagged.sum(), 1.5), "x", color=colour,
                      label=f"{label}: flagged (npd / saturated)")
        finite = np.isfinite(bound)
        order = np.argsort(cond[finite])
        ax.loglog(cond[finite][order], bound[finite][order], "-", color=colour, alpha=0.6,
                  label=f"{label}: derived bound")
    ax.set_xlabel("cond(A)")
    ax.set_ylabel("relative forward error ‖X̂ − X‖ / ‖X‖")
    ax.set_title("Cholesky core (bit-exact model) vs float64, n = 16, k = 2")
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return sweeps


def _parse_synth_configs(texts):
    configs = []
    for text in texts:
        try:
            n_max, k_max, lanes = (int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"--synth-config wants N_MAX,K_MAX,LANES, not {text!r}") from None
        configs.append((n_max, k_max, lanes))
    return tuple(configs)


#: ``guard_bits`` of :class:`~tiersolve.gen.cholesky.CholeskySolver` as the bench builds it.
_GUARD_BITS = 4


def _check_options(args):
    """The options checked against the core's own parameter rules
    (:func:`~tiersolve.gen.cholesky_model.check_cholesky_parameters`, which the generator
    applies) before anything runs; returns ``(fmt, inverse_format, synth configs)``. An
    ``n`` of the table is the job of the smallest core that takes it (``n_max = max(n, 2)``)."""
    from tiersolve.gen.cholesky_model import check_cholesky_parameters, check_inverse_format
    from tiersolve.host.bench.checks import fail, finite_number, fixed_format, integer_at_least

    def check(option, value, n_max=2, k_max=1, lanes=1):
        try:
            check_cholesky_parameters(n_max, k_max, fmt, lanes, _GUARD_BITS)
        except (TypeError, ValueError) as error:
            fail(f"{option} {value}: {error}")

    fmt = fixed_format("--format", args.format)
    check("--format", args.format)
    inverse_format = None
    if args.inverse_format:
        inverse_format = fixed_format("--inverse-format", args.inverse_format)
        try:
            check_inverse_format(inverse_format, fmt)
        except (TypeError, ValueError) as error:
            fail(f"--inverse-format {args.inverse_format}: {error}")
    for n in args.n:
        integer_at_least("--n", n, 1, "give sizes of at least 1")
        check("--n", n, n_max=max(n, 2))
    check("--k", args.k, k_max=args.k)
    for lanes in args.lanes:
        check("--lanes", lanes, lanes=lanes)
    if args.fmax_mhz is not None:
        finite_number("--fmax-mhz", args.fmax_mhz)
    integer_at_least("--repeats", args.repeats, 1, "give at least 1 timing repetition")
    integer_at_least("--blas-threads", args.blas_threads, 1, "give at least 1 BLAS thread")
    configs = SYNTH_CONFIGS
    if getattr(args, "synth_config", None):
        try:
            configs = _parse_synth_configs(args.synth_config)
        except ValueError as error:
            fail(str(error))
        for (n_max, k_max, lanes), text in zip(configs, args.synth_config, strict=True):
            check("--synth-config", text, n_max, k_max, lanes)
    return fmt, inverse_format, configs


def _synthesise(fmt, inverse_format, configs=SYNTH_CONFIGS, seeds=(1,)):
    """One record per configuration: resources from the first seed's run, ``runs`` (each
    seed's Fmax) and the lowest Fmax as ``fmax_mhz`` (Yosys once per core)."""
    from tiersolve.boards.synth import synthesize_seeds
    from tiersolve.gen.cholesky import CholeskySolver

    seeds = list(dict.fromkeys(seeds))
    records = []
    for n_max, k_max, lanes in configs:
        print(f"synthesising n_max={n_max} k_max={k_max} lanes={lanes}, "
              f"seed{'s' if len(seeds) > 1 else ''} {' '.join(map(str, seeds))} ...",
              file=sys.stderr)
        core = CholeskySolver(n_max, k_max, fmt, lanes, inverse_format=inverse_format)
        reports = synthesize_seeds(core, seeds, target="ecp5-85f", top="tiersolve_cholesky")
        report = reports[0]
        records.append({"n_max": n_max, "k_max": k_max, "lanes": lanes, "fmt": str(fmt),
                        "luts": report.luts.used, "ffs": report.ffs.used,
                        "dsps": report.dsps.used, "block_rams": report.block_rams.used,
                        **seed_runs(reports, seeds), "report": report.to_dict()})
    return records


def run(args) -> int:
    from tiersolve.host.bench.arith import write_results

    fmt, inverse_format, configs = _check_options(args)
    if args.plot:
        from tiersolve.host.bench.checks import plot_path

        plot_path("--plot", args.plot)
    latency = _rsqrt_latency(fmt, inverse_format)
    synth = _synthesise(fmt, inverse_format, configs, args.synth_seeds) if args.synth else []
    if args.fmax_mhz:
        fmax, fmax_source = args.fmax_mhz, "given"
    elif synth and all(s["fmax_mhz"] for s in synth):
        fmax, fmax_source = min(s["fmax_mhz"] for s in synth), "synthesis (lowest)"
    else:
        fmax, fmax_source = 100.0, "assumed"
    records = cycle_table(args.n, args.lanes, args.k, latency, fmt, inverse_format)
    timings = {n: cpu_timing(n, args.k, args.repeats, threads=args.blas_threads)
               for n in args.n}
    cpu = {n: timing["median_us"] for n, timing in timings.items()}
    for record in records:
        timing = timings[record["n"]]
        record["device_time_us"] = record["factor_solve_cycles"] / fmax
        record["cpu_time_us"] = timing["median_us"]
        record["cpu_min_us"], record["cpu_p90_us"] = timing["min_us"], timing["p90_us"]
    blas = timings[args.n[0]]["blas"]
    largest = max(args.n)
    spread = timings[largest]
    lines = [
        f"Cholesky core, {fmt}, k = {args.k}, rsqrt latency {latency}; time at {fmax:.1f} MHz "
        f"({fmax_source}); CPU: scipy cho_factor + cho_solve (float64), {blas}, median of "
        f"{args.repeats} (n = {largest}: minimum {spread['min_us']:.1f} µs, 90th percentile "
        f"{spread['p90_us']:.1f} µs)",
        "",
        "| n | lanes | Gram cyc/row | factor cyc | solve cyc | bound | ratio | partial | scale |"
        " pivot wait | drain | device µs | CPU µs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['n']} | {r['lanes']} | {r['gram_cycles_per_row']} | {r['factor_cycles']} | "
            f"{r['solve_cycles']} | {r['bound_cycles']:.0f} | {r['ratio_to_bound']:.2f} | "
            f"{r['partial_block_cycles']} | {r['scale_cycles']} | "
            f"{r['pivot_wait_cycles']} | {r['drain_cycles']} | {r['device_time_us']:.1f} | "
            f"{r['cpu_time_us']:.1f} |")
    parity = cpu_parity(records, largest, cpu[largest], fmax)
    clocks = "; ".join(f"{row['lanes']} lane{'s' if row['lanes'] > 1 else ''} "
                       f"{row['clock_mhz']:.1f}" for row in parity["clock_to_match_mhz"])
    lines += ["", f"Matching the CPU at n = {largest}, k = {args.k}: factor + solve is "
              f"{parity['multiply_adds']:,.0f} multiply-adds; the CPU's {cpu[largest]:.1f} µs "
              f"are {parity['cpu_cycles']:,.0f} cycles at {fmax:.1f} MHz, so a core needs "
              f"{parity['multiply_adds_per_cycle']:.1f} multiply-adds every cycle with none "
              f"idle; the clock (MHz) at which each lane count matches it: {clocks}."]
    if synth:
        # each synthesised core at its own Fmax, on an n = n_max problem with the table's k
        # (k_max if that is smaller), beside the CPU on the same problem
        lines += ["", "ECP5-85F (speed grade 6, out of context); the last columns solve "
                  f"n = n_max, k = min({args.k}, k_max) on that core at its own Fmax (the "
                  "lowest over the seeds):", "",
                  "| n_max | k_max | lanes | LUTs | FFs | DSPs | block RAM | Fmax MHz | k |"
                  " factor+solve cyc | device µs | CPU µs |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in synth:
            k = s["k"] = min(args.k, s["k_max"])
            c = cycle_model(s["n_max"], k, s["lanes"], rows=1, rsqrt_latency=latency,
                            fmt=fmt, inverse_format=inverse_format, k_max=s["k_max"])
            s["factor_solve_cycles"] = c["factor"] + c["solve"]
            s["cpu_time_us"] = (cpu[s["n_max"]] if k == args.k and s["n_max"] in cpu
                                else cpu_time_us(s["n_max"], k, args.repeats,
                                                 threads=args.blas_threads))
            s["device_time_us"] = (s["factor_solve_cycles"] / s["fmax_mhz"]
                                   if s["fmax_mhz"] else None)
            device = f"{s['device_time_us']:.1f}" if s["device_time_us"] else "n/a"
            lines.append(f"| {s['n_max']} | {s['k_max']} | {s['lanes']} | {s['luts']} | "
                         f"{s['ffs']} | {s['dsps']} | {s['block_rams']} | "
                         f"{fmax_cell(s)} | {k} | "
                         f"{s['factor_solve_cycles']} | {device} | "
                         f"{s['cpu_time_us']:.1f} |")
    meta = {"format": str(fmt), "inverse_format": str(inverse_format or fmt),
            "rsqrt_latency": latency, "fmax_mhz": fmax, "fmax_source": fmax_source,
            "cpu_blas": blas, "cpu_blas_threads": args.blas_threads,
            "cpu_repeats": args.repeats, "cpu_warmup_runs": WARMUP_RUNS,
            "cycles_source": "tiersolve.gen.cholesky_model.cycle_model (checked against "
                             "simulation by tests/gen/test_cholesky.py)",
            "synthesis": synth, "cpu_parity": parity}
    if args.plot:
        sweeps = plot_accuracy(args.plot)
        meta["accuracy"] = sweeps
        lines += ["", f"accuracy plot: {args.plot}"]
    table = "\n".join(lines)
    print(table)
    for path in write_results(args.out, "cholesky", records, table, meta):
        print(f"wrote {path}", file=sys.stderr)
    return 0
