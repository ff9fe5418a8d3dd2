"""Benchmarks: ``tiersolve bench NAME``. Each prints a table and saves JSON (and plots).

A benchmark module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args)``.
Results go to ``--out`` (default ``bench-results/``) as ``<name>.json``.
"""

from __future__ import annotations

import importlib

#: benchmark name -> module that implements it
BENCHMARKS = {
    "arith": "tiersolve.host.bench.arith",
    "cholesky": "tiersolve.host.bench.cholesky",
    "qr": "tiersolve.host.bench.qr",
    "update": "tiersolve.host.bench.qr",
    "learn": "tiersolve.host.bench.learn",
    "build": "tiersolve.host.bench.build",
    "link": "tiersolve.host.bench.link",
}


def _setup(parser):
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, module_name in BENCHMARKS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        # a module that serves several benchmarks (qr, update) may say which is which
        text = getattr(module, "HELPS", {}).get(name, module.HELP)
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--out", default="bench-results",
                       help="folder for the JSON results (default: bench-results)")
        module.add_arguments(p)
        p.set_defaults(_bench=module.run)


def _run(args) -> int:
    return args._bench(args) or 0


COMMAND = (_setup, _run, "run a benchmark and save its figures")
