"""``tiersolve bench qr`` / ``bench update``: the cycle table's records and the plots."""

from __future__ import annotations

import pytest
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.qr import IncrementalUpdater
from tiersolve.host.bench.qr import cycle_table, plot_utilisation


def test_cycle_table_records_follow_the_cycle_models():
    fmt = FixedFormat(6, 12)
    records = cycle_table("update", [8, 16], ["1", "4", "n"], 1, fmt, ["cordic", "multiplier"],
                          fold_rows=100)
    assert len(records) == 2 * 2 * 3
    for r in records:
        core = IncrementalUpdater(r["n"], 1, fmt, units=r["units"], rotation=r["rotation"])
        core._MustUse__silence = True
        plan = core.fold_plan(r["n"], 1)
        rotations = core.rotations_per_row(r["n"], 1)
        assert r["cycles_per_row"] == core.update_cycles(r["n"], 1)
        assert r["utilisation"] == pytest.approx(rotations / (r["units"] * r["cycles_per_row"]))
        assert (r["fold_period"], r["fold_skew"]) == (plan["period"], plan["skew"])
        assert r["fold_cycles"] == core.fold_cycles(r["n"], 1, 100)
        assert r["fold_steady_utilisation"] == pytest.approx(
            rotations / (r["units"] * plan["period"]))
        assert r["fold_utilisation"] <= r["fold_steady_utilisation"] <= 1.0
        # the bound: rows at most one per P_min cycles, and no fewer cycles than the work
        assert r["fold_min_period"] == core.fold_min_period
        assert r["fold_bound_utilisation"] == pytest.approx(
            rotations / (r["units"] * max(-(-rotations // r["units"]), core.fold_min_period)))
        assert r["fold_steady_utilisation"] <= r["fold_bound_utilisation"] + 1e-12
        # with forgetting: the period of fold_plan(forgetting=True), never shorter
        plan = core.fold_plan(r["n"], 1, forgetting=True)
        assert r["fold_forgetting_period"] == plan["period"] >= r["fold_period"]
        assert r["fold_forgetting_cycles"] == core.fold_cycles(r["n"], 1, 100, forgetting=True)
        assert r["fold_forgetting_utilisation"] == pytest.approx(
            rotations * 100 / (r["units"] * r["fold_forgetting_cycles"]))
        if r["units"] == r["n"]:  # units = n at these sizes: the schedule is at its bound
            assert r["fold_steady_utilisation"] == pytest.approx(r["fold_bound_utilisation"])
    # one unit: the period is the work, so the steady state keeps the unit busy
    assert all(r["fold_steady_utilisation"] == pytest.approx(1.0)
               for r in records if r["units"] == 1)


def test_plot_utilisation_writes_a_png(tmp_path):
    records = cycle_table("qr", [8, 16], ["1", "2"], 1, FixedFormat(6, 12), ["cordic"],
                          fold_rows=64)
    path = tmp_path / "utilisation.png"
    plot_utilisation(path, records, 64)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
