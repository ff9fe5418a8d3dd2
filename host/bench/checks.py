"""Checks of the benchmarks' options, made in ``run(args)`` before any long work.

Each failed check raises :class:`tiersolve.host.cli.CliError`, which ``tiersolve bench``
reports in one line (``tiersolve bench: error: ...``, exit status 2); the message says what
was given and what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["fail", "finite_number", "fixed_format", "integer_at_least", "plot_path"]


def fail(message: str):
    """Raise the one-line error of the command."""
    from tiersolve.host.cli import CliError

    raise CliError(message)


def integer_at_least(option: str, value, minimum: int = 1, allowed: str | None = None) -> int:
    """``value`` if it is an integer of at least ``minimum``, else the error for ``option``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        fail(f"{option} {value}: {allowed or f'give an integer of at least {minimum}'}")
    return value


def finite_number(option: str, value, *, positive: bool = True) -> float:
    """``value`` if it is a finite number above 0 (``positive``) or at least 0, else the error
    for ``option``."""
    ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        fail(f"{option} {value:g}: give a finite number "
             f"{'above 0' if positive else 'of at least 0'}")
    return float(value)


def fixed_format(option: str, text):
    """``text`` parsed as a :class:`~tiersolve.gen.fixed.FixedFormat`, else the error for
    ``option``."""
    from tiersolve.gen.fixed import FixedFormat

    try:
        return FixedFormat.parse(text)
    except (TypeError, ValueError) as error:
        fail(f"{option} {text}: {error}")


def plot_path(option: str, path) -> Path:
    """``path`` with its parent folders created (a plot is written there after the work),
    else the error for ``option``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(f"{option} {path}: cannot create its folder {path.parent} "
             f"({error.strerror or error})")
    if path.is_dir():
        fail(f"{option} {path}: is a folder; give the PNG file to write")
    return path
