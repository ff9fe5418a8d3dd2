"""Placement seeds of the benchmarks' out-of-context synthesis (``--synth-seeds``).

Placement alone moves a core's Fmax by several per cent, so ``bench cholesky``, ``bench qr``
and ``bench update`` can place each synthesised core with several nextpnr seeds (Yosys runs
once per core: :func:`tiersolve.boards.synth.synthesize_seeds`). A record keeps the first
seed's report, ``runs`` (each seed's Fmax) and, as ``fmax_mhz``, the lowest of them; the
tables show every seed's figure.
"""

from __future__ import annotations

import argparse

__all__ = ["add_seeds_argument", "fmax_cell", "seed_runs"]


def _seed(text):
    """argparse type of ``--synth-seeds``: ``tiersolve build``'s seeds, but a number (the
    out-of-context flow always passes one to nextpnr)."""
    from tiersolve.boards.build import seed_argument

    value = seed_argument(text)
    if value is None:
        raise argparse.ArgumentTypeError("not a seed for --synth: 'default' (give a number; "
                                         "the out-of-context runs use seed 1 by default)")
    return value


def add_seeds_argument(parser) -> None:
    """``--synth-seeds SEED ...`` (default: seed 1)."""
    parser.add_argument("--synth-seeds", type=_seed, nargs="+", default=[1], metavar="SEED",
                        help="nextpnr placement seeds of each ECP5 run of --synth (default: 1); "
                             "the table lists each seed's Fmax, the JSON keeps them and the "
                             "lowest")


def seed_runs(reports, seeds) -> dict:
    """``{"runs": [...], "fmax_mhz": lowest}`` from the reports of :func:`synthesize_seeds`
    (``fmax_mhz`` None when a placement found no clock)."""
    runs = [{"seed": seed, "fmax_mhz": report.fmax_mhz}
            for seed, report in zip(seeds, reports, strict=True)]
    fmaxes = [run["fmax_mhz"] for run in runs]
    return {"runs": runs, "fmax_mhz": None if None in fmaxes else min(fmaxes)}


def fmax_cell(record) -> str:
    """``103.7 / 105.2 (seeds 1 / 2)``: every run's Fmax (one run: the number alone)."""
    runs = record.get("runs") or [{"seed": None, "fmax_mhz": record.get("fmax_mhz")}]

    def text(value):
        return "—" if value is None else f"{value:.1f}"

    cell = " / ".join(text(run["fmax_mhz"]) for run in runs)
    if len(runs) > 1:
        cell += f" (seeds {' / '.join(str(run['seed']) for run in runs)})"
    return cell
