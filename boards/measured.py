"""Record of measured board builds: what was built, how fast it closed timing, and how.

``measured_builds.json`` (next to this module, shipped with the package) holds one entry per
board configuration built with the YoWASP tools by ``tiersolve bench build --record`` (or
``nox -s build -- --record``): the configuration, the design clock, the routed Fmax, resource
use, cycle counts of one fit and one update, the date and the command that reproduces the
build. Other code reads it through :func:`measured_build` (the demo quotes a measured Fmax
instead of a number typed by hand); :func:`record_builds` merges new rows into it.

This module imports neither Amaranth nor the toolchain.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from .catalogue import get_board

__all__ = [
    "MEASURED_BUILDS_PATH",
    "build_command",
    "config_differences",
    "load_measured_builds",
    "measured_build",
    "record_builds",
]

#: The committed record that :func:`measured_build` reads by default.
MEASURED_BUILDS_PATH = Path(__file__).with_name("measured_builds.json")

#: Keys :func:`measured_build` matches on, and what it returns.
CONFIG_KEYS = ("n_max", "k_max", "lanes", "format", "cores", "updater_fold")
RESULT_KEYS = ("fmax_mhz", "clock_mhz", "n_max", "k_max", "lanes", "format", "cores",
               "updater_fold", "command")
#: Configuration keys an entry may leave out, and their value then (entries recorded before
#: the key existed were built that way).
CONFIG_DEFAULTS = {"updater_fold": False}


def _config_value(entry: dict, key: str):
    return entry.get(key, CONFIG_DEFAULTS.get(key)) if key in CONFIG_DEFAULTS else entry[key]


def _cores(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    try:
        cores = tuple(str(name).strip() for name in value)
    except TypeError:
        raise TypeError(f"cores must be a tuple of core names or a comma-separated str, "
                        f"not {value!r}") from None
    return tuple(name for name in cores if name)


def _normalise(config: dict) -> dict:
    """Config values in the form entries store them (cores as a tuple, format as a str)."""
    unknown = set(config) - set(CONFIG_KEYS)
    if unknown:
        raise TypeError(f"unknown build configuration keys {sorted(unknown)}; known: "
                        f"{', '.join(CONFIG_KEYS)}")
    normalised = {}
    for key, value in config.items():
        if key == "cores":
            normalised[key] = _cores(value)
        elif key == "updater_fold":
            if not isinstance(value, bool):
                raise TypeError(f"updater_fold must be a bool, not {value!r}")
            normalised[key] = value
        elif key == "format":
            normalised[key] = str(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{key} must be an int, not {value!r}")
            normalised[key] = value
    return normalised


def config_differences(build: dict, **config) -> list[str]:
    """The keys of ``config`` (any of :data:`CONFIG_KEYS`, as :func:`measured_build` takes
    them) whose value the recorded ``build`` (an entry, or what :func:`measured_build`
    returned) does not have, compared in the form entries store them.

    Raises
    ------
    TypeError
        An unknown configuration key, or a value of the wrong type.
    """
    wanted = _normalise(config)
    return [key for key in wanted
            if _normalise({key: _config_value(build, key)})[key] != wanted[key]]


def build_command(board: str, *, n_max: int, k_max: int, lanes: int, format: str,
                  cores=("cholesky",), inverse_format=None, seed=None, clock_mhz=None,
                  updater_fold: bool = False) -> str:
    """The ``tiersolve build`` command line that makes this configuration's bitstream
    (``inverse_format``: the pivot inverses' format, None for the data format; ``seed``: the
    nextpnr placement seed, None for nextpnr's default; ``clock_mhz``: the design clock of a
    ``--clock-mhz`` override, None for the catalogue's clock; ``updater_fold``: the updater's
    FOLD command built)."""
    cores = ",".join(_cores(cores))
    command = (f"tiersolve build --board {board} --n-max {n_max} --k-max {k_max} "
               f"--lanes {lanes} --format {format} --cores {cores}")
    if inverse_format is not None:
        command += f" --inverse-format {inverse_format}"
    if updater_fold:
        command += " --updater-fold"
    if seed is not None:
        command += f" --seed {seed}"
    if clock_mhz is not None:  # 9 digits: every whole Hz up to 999 MHz
        command += f" --clock-mhz {clock_mhz:.9g}"
    return command


def load_measured_builds(path=None) -> list[dict]:
    """Every recorded build (a list of dicts, oldest first); empty if there is no record.

    Parameters
    ----------
    path : str, pathlib.Path or None
        Record file (default :data:`MEASURED_BUILDS_PATH`).

    Raises
    ------
    ValueError
        If the file is not a record written by :func:`record_builds`.
    """
    path = Path(MEASURED_BUILDS_PATH if path is None else path)
    if not path.is_file():
        return []
    content = json.loads(path.read_text())
    if not isinstance(content, dict) or not isinstance(content.get("builds"), list):
        raise ValueError(f"{path} is not a measured-build record (no 'builds' list)")
    return content["builds"]


def measured_build(board: str, **config) -> dict | None:
    """The most relevant recorded build of ``board``, or None if none fits the request.

    Parameters
    ----------
    board : str
        Catalogue name (``"ulx3s-85f"``).
    **config
        Any of ``n_max``, ``k_max``, ``lanes`` (int), ``format`` (str, ``"Q6.12"``),
        ``cores`` (tuple of str or ``"cholesky,updater"``) and ``updater_fold`` (bool); keys
        left out match anything, but ``updater_fold`` left out is False (a design with the
        updater's FOLD command is another design, returned only when asked for).

    Returns
    -------
    dict or None
        ``fmax_mhz`` (routed Fmax of the design clock), ``clock_mhz`` (the clock the board
        runs the design at), ``n_max``, ``k_max``, ``lanes``, ``format``, ``cores`` (tuple),
        ``updater_fold`` and ``command`` (the ``tiersolve build`` line that reproduces it).

    Notes
    -----
    Only builds that fit the device count. Among the builds that match every given key, the
    one whose Fmax met its clock wins, then the most recently ``recorded``. When none matches
    and ``n_max`` or ``k_max`` was given, the smallest recorded build that holds them (``n_max``
    and ``k_max`` at least as large, the other given keys equal) stands in for it (a larger
    design of the same kind has longer counters and more memory to route: usually, not always,
    a little slower).

    Raises
    ------
    UnknownBoardError
        ``board`` is not in the catalogue.
    TypeError
        An unknown configuration key, or a value of the wrong type.
    """
    get_board(board)
    wanted = _normalise({**CONFIG_DEFAULTS, **config})
    entries = [entry for entry in load_measured_builds()
               if entry.get("board") == board and entry.get("fmax_mhz") is not None]

    def equal(entry, keys):
        return not config_differences(entry, **{key: wanted[key] for key in keys})

    exact = [entry for entry in entries if equal(entry, wanted)]
    if exact:
        chosen = max(exact, key=lambda entry: (entry["fmax_mhz"] >= entry["clock_mhz"],
                                               entry.get("recorded", "")))
    else:
        sizes = [key for key in ("n_max", "k_max") if key in wanted]
        if not sizes:
            return None
        others = [key for key in wanted if key not in sizes]
        covering = [entry for entry in entries if equal(entry, others)
                    and all(entry[key] >= wanted[key] for key in sizes)]
        if not covering:
            return None
        chosen = min(covering, key=lambda entry: (entry["n_max"], entry["k_max"]))
    result = {key: _config_value(chosen, key) for key in RESULT_KEYS}
    result["cores"] = _cores(result["cores"])
    return result


def _seed_runs(entry: dict) -> list[dict]:
    """The placement runs an entry reports: its ``seeds_tried``, or its one seed's run."""
    if entry.get("seeds_tried"):
        return [dict(run) for run in entry["seeds_tried"]]
    if entry.get("fmax_mhz") is None:
        return []
    return [{"seed": entry.get("seed"), "fmax_mhz": entry["fmax_mhz"],
             "timing_met": entry.get("timing_met", False)}]


def _merge_seeds(old: dict, new: dict) -> dict:
    """Two builds of one netlist (the same ``design_sha256``), placed with other seeds: the
    faster one's entry (met timing first), with every seed run of both in ``seeds_tried``
    (a seed run again keeps its newer result)."""
    runs = {run["seed"]: run for run in _seed_runs(old)}
    runs.update({run["seed"]: run for run in _seed_runs(new)})

    def speed(entry):
        fmax = entry.get("fmax_mhz")
        return (bool(entry.get("timing_met")), -1.0 if fmax is None else fmax)

    merged = dict(new if speed(new) >= speed(old) else old)
    merged["seeds_tried"] = sorted(runs.values(), key=lambda run: speed(run), reverse=True)
    return merged


def record_builds(rows, path=None) -> Path:
    """Merge measured builds into the record; a row replaces the entry of its configuration.

    A row of the same netlist as the entry it meets (the same ``design_sha256``: builds of
    one commit that tried other placement seeds) is merged with it instead: the faster of
    the two is kept, and ``seeds_tried`` lists the seeds of both.

    Parameters
    ----------
    rows : iterable of dict
        Rows of ``tiersolve bench build``: at least ``board``, the keys of
        :data:`CONFIG_KEYS`, ``clock_mhz``, ``fmax_mhz`` (None for a design that does not fit)
        and ``command``; every other key is kept as it is, and ``recorded`` (UTC date and
        time) is added where missing.
    path : str, pathlib.Path or None
        Record file (default :data:`MEASURED_BUILDS_PATH`).

    Returns
    -------
    pathlib.Path
        The file written (entries sorted by board, cores, ``n_max``, ``k_max``, ``lanes``,
        format).
    """
    path = Path(MEASURED_BUILDS_PATH if path is None else path)
    entries = load_measured_builds(path)

    def identity(entry):
        return (entry["board"],
                *(_normalise({key: _config_value(entry, key)})[key] for key in CONFIG_KEYS))

    merged = {identity(entry): entry for entry in entries}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for row in rows:
        missing = ({"board", *CONFIG_KEYS, "clock_mhz", "fmax_mhz", "command"}
                   - set(CONFIG_DEFAULTS) - set(row))
        if missing:
            raise ValueError(f"build row {row!r} lacks {sorted(missing)}")
        entry = dict(row)
        entry["cores"] = list(_cores(entry["cores"]))
        entry.setdefault("recorded", now)
        earlier = merged.get(identity(entry))
        if (earlier is not None and entry.get("design_sha256")
                and earlier.get("design_sha256") == entry["design_sha256"]):
            entry = _merge_seeds(earlier, entry)
        merged[identity(entry)] = entry
    ordered = sorted(merged.values(), key=lambda entry: (
        entry["board"], len(entry["cores"]), entry["n_max"], entry["k_max"], entry["lanes"],
        entry["format"], _config_value(entry, "updater_fold")))
    path.write_text(json.dumps({
        "about": "board builds measured with the YoWASP tools; rewritten by "
                 "`tiersolve bench build --record`; read with "
                 "tiersolve.boards.measured.measured_build",
        "builds": ordered,
    }, indent=2, ensure_ascii=False) + "\n")
    return path
