"""Tests of the measured-build record (``boards/measured.py``) and the build benchmark's rows."""

import json

import pytest
from tiersolve.boards import measured
from tiersolve.boards.catalogue import BOARDS, UnknownBoardError
from tiersolve.boards.measured import (
    build_command,
    load_measured_builds,
    measured_build,
    record_builds,
)


def _row(board="ulx3s-85f", n_max=16, k_max=4, lanes=4, fmt="Q6.12", cores=("cholesky",),
         clock_mhz=90.0, fmax_mhz=95.0, **extra):
    return {"board": board, "n_max": n_max, "k_max": k_max, "lanes": lanes, "format": fmt,
            "cores": list(cores), "clock_mhz": clock_mhz, "fmax_mhz": fmax_mhz,
            "command": build_command(board, n_max=n_max, k_max=k_max, lanes=lanes, format=fmt,
                                     cores=cores), **extra}


@pytest.fixture
def record(tmp_path, monkeypatch):
    path = tmp_path / "measured_builds.json"
    monkeypatch.setattr(measured, "MEASURED_BUILDS_PATH", path)
    return path


def test_the_committed_record_is_readable_and_complete():
    builds = load_measured_builds()
    assert builds, "boards/measured_builds.json holds no build"
    for entry in builds:
        assert entry["board"] in BOARDS
        for key in set(measured.RESULT_KEYS) - set(measured.CONFIG_DEFAULTS):
            assert key in entry, (entry["board"], key)
        assert entry["command"] == build_command(
            entry["board"], n_max=entry["n_max"], k_max=entry["k_max"], lanes=entry["lanes"],
            format=entry["format"], cores=entry["cores"],
            inverse_format=entry.get("inverse_format"), seed=entry.get("seed"),
            updater_fold=entry.get("updater_fold", False),
            # the catalogue's clock: no --clock-mhz (every row recorded before it existed)
            clock_mhz=None if entry["clock_mhz"] == BOARDS[entry["board"]].clock_mhz
            else entry["clock_mhz"])
    fitted = [entry for entry in builds if entry["fmax_mhz"] is not None]
    for entry in fitted:
        found = measured_build(entry["board"], n_max=entry["n_max"], k_max=entry["k_max"],
                               lanes=entry["lanes"], format=entry["format"],
                               cores=tuple(entry["cores"]),
                               updater_fold=entry.get("updater_fold", False))
        assert found["fmax_mhz"] == entry["fmax_mhz"]


def test_the_record_ships_with_the_package():
    assert measured.MEASURED_BUILDS_PATH.name == "measured_builds.json"
    assert measured.MEASURED_BUILDS_PATH.parent.name == "boards"
    with open("pyproject.toml") as file:
        assert "measured_builds.json" in file.read()


def test_measured_build_picks_the_exact_configuration(record):
    record_builds([_row(), _row(n_max=32, k_max=8, fmax_mhz=88.0),
                   _row(cores=("cholesky", "updater"), fmax_mhz=85.0)])
    found = measured_build("ulx3s-85f", n_max=16, k_max=4, lanes=4, format="Q6.12",
                           cores=("cholesky",))
    assert found == {"fmax_mhz": 95.0, "clock_mhz": 90.0, "n_max": 16, "k_max": 4, "lanes": 4,
                     "format": "Q6.12", "cores": ("cholesky",), "updater_fold": False,
                     "command": "tiersolve build --board ulx3s-85f --n-max 16 --k-max 4 "
                                "--lanes 4 --format Q6.12 --cores cholesky"}
    assert measured_build("ulx3s-85f", n_max=16, cores="cholesky,updater")["fmax_mhz"] == 85.0
    assert measured_build("ulx3s-85f", n_max=32)["fmax_mhz"] == 88.0


def test_measured_build_prefers_met_timing_then_the_latest(record):
    record_builds([_row(n_max=8, fmax_mhz=80.0), _row(n_max=16, fmax_mhz=95.0)])
    assert measured_build("ulx3s-85f", lanes=4)["n_max"] == 16  # met beats missed
    record_builds([_row(n_max=8, fmax_mhz=91.0, recorded="2099-01-01T00:00:00Z")])
    assert measured_build("ulx3s-85f", lanes=4)["n_max"] == 8   # both met: the latest


def test_measured_build_falls_back_to_a_covering_build(record):
    record_builds([_row(n_max=32, k_max=8, fmax_mhz=88.0), _row(n_max=128, k_max=8,
                                                                fmax_mhz=70.0)])
    assert measured_build("ulx3s-85f", n_max=24, k_max=4)["n_max"] == 32
    assert measured_build("ulx3s-85f", n_max=200) is None
    assert measured_build("ulx3s-85f", n_max=24, format="Q8.16") is None
    assert measured_build("ecpix5-85f", n_max=16) is None
    assert measured_build("ulx3s-85f", format="Q8.16") is None


def test_builds_that_did_not_fit_are_never_returned(record):
    record_builds([_row(board="icebreaker", n_max=32, lanes=1, fmax_mhz=None,
                        status="does not fit: ICESTORM_RAM 32/30")])
    assert measured_build("icebreaker", n_max=32) is None
    assert len(load_measured_builds()) == 1


def test_measured_build_checks_its_arguments(record):
    with pytest.raises(UnknownBoardError, match="nosuch"):
        measured_build("nosuch")
    with pytest.raises(TypeError, match="unknown build configuration keys"):
        measured_build("ulx3s-85f", size=16)
    with pytest.raises(TypeError, match="n_max must be an int"):
        measured_build("ulx3s-85f", n_max="16")


def test_record_builds_replaces_the_same_configuration(record):
    record_builds([_row(fmax_mhz=90.0)])
    record_builds([_row(fmax_mhz=97.5, extra_note="rebuilt"), _row(n_max=8, fmax_mhz=99.0)])
    builds = load_measured_builds()
    assert [(entry["n_max"], entry["fmax_mhz"]) for entry in builds] == [(8, 99.0), (16, 97.5)]
    assert builds[1]["extra_note"] == "rebuilt" and builds[1]["recorded"].endswith("Z")
    assert json.loads(record.read_text())["builds"] == builds
    with pytest.raises(ValueError, match="lacks"):
        record_builds([{"board": "ulx3s-85f"}])
    record.write_text("[]")
    with pytest.raises(ValueError, match="not a measured-build record"):
        load_measured_builds()


def test_record_builds_merges_the_seeds_of_one_netlist(record):
    # two runs of `bench build` on one commit (same design_sha256), other seeds: the faster
    # row stays and seeds_tried has every seed; a run of another netlist replaces the entry
    def run(seed, fmax, met=True):
        return {"seed": seed, "fmax_mhz": fmax, "timing_met": met, "seconds": 300.0}

    record_builds([_row(fmax_mhz=92.8, seed=4, timing_met=True, design_sha256="a",
                        seeds_tried=[run(4, 92.8), run(None, 89.3, False)])])
    record_builds([_row(fmax_mhz=90.4, seed=5, timing_met=True, design_sha256="a",
                        seeds_tried=[run(5, 90.4), run(3, None, False)])])
    [entry] = load_measured_builds()
    assert (entry["seed"], entry["fmax_mhz"]) == (4, 92.8)
    assert [(r["seed"], r["fmax_mhz"]) for r in entry["seeds_tried"]] == [
        (4, 92.8), (5, 90.4), (None, 89.3), (3, None)]
    # a faster seed of the same netlist takes over the row (its command names its seed)
    record_builds([_row(fmax_mhz=99.0, seed=6, timing_met=True, design_sha256="a")])
    [entry] = load_measured_builds()
    assert (entry["seed"], entry["fmax_mhz"]) == (6, 99.0)
    assert [r["seed"] for r in entry["seeds_tried"]] == [6, 4, 5, None, 3]
    # another netlist: replaced, its seeds only
    record_builds([_row(fmax_mhz=88.0, seed=2, timing_met=False, design_sha256="b")])
    [entry] = load_measured_builds()
    assert entry["fmax_mhz"] == 88.0 and "seeds_tried" not in entry
    # rows without a digest (recorded before it existed) replace as before
    record_builds([_row(fmax_mhz=91.0)])
    [entry] = load_measured_builds()
    assert entry["fmax_mhz"] == 91.0 and "design_sha256" not in entry


def test_a_build_with_the_updaters_fold_is_another_configuration(record):
    # rows without the key were built without FOLD; a FOLD row neither replaces them nor is
    # returned unless asked for, and its command says --updater-fold
    both = ("cholesky", "updater")
    record_builds([_row(cores=both, fmax_mhz=104.6)])
    record_builds([_row(cores=both, fmax_mhz=98.0, updater_fold=True,
                        command=build_command("ulx3s-85f", n_max=16, k_max=4, lanes=4,
                                              format="Q6.12", cores=both, updater_fold=True))])
    assert [entry.get("updater_fold", False) for entry in load_measured_builds()] == [False, True]
    assert measured_build("ulx3s-85f", cores=both)["fmax_mhz"] == 104.6
    found = measured_build("ulx3s-85f", cores=both, updater_fold=True)
    assert found["fmax_mhz"] == 98.0 and found["updater_fold"] is True
    assert found["command"].endswith("--cores cholesky,updater --updater-fold")
    assert measured_build("ulx3s-85f", n_max=8, updater_fold=True)["fmax_mhz"] == 98.0
    with pytest.raises(TypeError, match="updater_fold must be a bool"):
        measured_build("ulx3s-85f", updater_fold=1)


def test_build_command_with_and_without_a_clock_override():
    base = ("tiersolve build --board ulx3s-85f --n-max 16 --k-max 4 --lanes 4 --format Q6.12 "
            "--cores cholesky")
    assert build_command("ulx3s-85f", n_max=16, k_max=4, lanes=4, format="Q6.12") == base
    assert build_command("ulx3s-85f", n_max=16, k_max=4, lanes=4, format="Q6.12",
                         clock_mhz=105.0) == f"{base} --clock-mhz 105"
    assert build_command("ulx3s-85f", n_max=16, k_max=4, lanes=4, format="Q6.12", seed=3,
                         clock_mhz=112.5) == f"{base} --seed 3 --clock-mhz 112.5"
    # every whole Hz survives the formatting: the command rebuilds the same clock
    assert build_command("ulx3s-85f", n_max=16, k_max=4, lanes=4, format="Q6.12",
                         clock_mhz=133.333333).endswith(" --clock-mhz 133.333333")


# -- the build benchmark's rows ----------------------------------------------------------------


def test_update_column_from_the_updater_cycle_model():
    from tiersolve.designs.top import SolverRegisters
    from tiersolve.gen.checks import silence_unused
    from tiersolve.gen.qr import IncrementalUpdater
    from tiersolve.host.bench.build import markdown_table, update_cell, update_cycles

    # the updater the board design builds (its rotation kind and units by default)
    design = silence_unused(SolverRegisters(16, 4, "Q6.12", cores=("cholesky", "updater")))
    assert (design.updater.rotation, design.updater.units) == ("multiplier", 1)
    cycles = design.updater.update_cycles(16, 4)
    assert update_cycles(16, 4) == cycles
    updater = IncrementalUpdater(16, 4, "Q6.12", units=1, rotation="cordic")
    updater._MustUse__silence = True
    assert update_cycles(16, 4) != updater.update_cycles(16, 4)  # (it counted these once)
    row = _row(cores=("cholesky", "updater"), fmax_mhz=80.0, luts_percent=9.0,
               dsps_percent=7.0, block_rams_percent=5.0, fit_cycles=1000, fit_us_at_fmax=12.5,
               fit_us_at_clock=11.1, status="fits", update_cycles=cycles,
               update_us_at_fmax=cycles / 80.0)
    assert update_cell(row) == f"{cycles / 80.0:.1f} µs ({cycles} cycles)"
    assert update_cell(_row()) == "—"
    table = markdown_table([row, {**row, "format": "Q4.12", "board": "icebreaker"}])
    lines = table.splitlines()
    assert f"| {cycles / 80.0:.1f} µs ({cycles} cycles) | fits |" in lines[2]
    assert lines[2].startswith("| ulx3s-85f | 16 / 4 / 4 (+updater) |")
    assert lines[3].startswith("| icebreaker | 16 / 4 / 4 (Q4.12, +updater) |")
