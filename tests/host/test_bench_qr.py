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
        # the bound: rows at most one per P_min cycles, none before its n + k values are in
        # (one a cycle), and no fewer cycles than the work
        assert r["fold_min_period"] == core.fold_min_period
        assert r["fold_bound_utilisation"] == pytest.approx(
            rotations / (r["units"] * max(-(-rotations // r["units"]), core.fold_min_period,
                                          r["n"] + 1)))
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


@pytest.mark.parametrize("name", ["qr", "update"])
def test_units_n_reach_the_bound_of_a_row_a_value_a_cycle(name):
    """With units = n the FOLD's steady state is at the bound at every size of the README's
    table: at n = 16 the generator's round trip P_min sets it, at n = 64 (and n = 32 with
    CORDIC rotations) the n + k cycles a row takes to come in, which cap units = n near
    ((n + 1) / 2 + k) / (n + k) whatever the schedule."""
    fmt = FixedFormat(6, 12)
    records = cycle_table(name, [16, 32, 64], ["n"], 1, fmt, ["cordic", "multiplier"],
                          fold_rows=8)
    for r in records:
        assert r["fold_steady_utilisation"] == pytest.approx(r["fold_bound_utilisation"])
        if r["n"] == 64:
            assert r["fold_period"] == r["n"] + 1
            assert r["fold_bound_utilisation"] == pytest.approx(
                r["rotations_per_row"] / (r["n"] * (r["n"] + 1)))


def test_plot_utilisation_writes_a_png(tmp_path):
    records = cycle_table("qr", [8, 16], ["1", "2"], 1, FixedFormat(6, 12), ["cordic"],
                          fold_rows=64)
    path = tmp_path / "utilisation.png"
    plot_utilisation(path, records, 64)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synth_runs_every_seed_and_tabulates_each_fmax(monkeypatch, tmp_path, capsys):
    """``bench update --synth --synth-seeds 1 2 1``: each ECP5 core is synthesised once and
    placed with both seeds (the iCE40UP5K one once), the table lists each seed's Fmax, the
    JSON the lowest."""
    import json

    from tiersolve.boards import synth
    from tiersolve.host.cli import main

    calls = []
    fmax = {("cordic", 1): 103.7, ("cordic", 2): 105.2, ("multiplier", 1): 115.2,
            ("multiplier", 2): 101.4}

    def fake_synthesize_seeds(core, seeds, *, target, top):
        # one call per core: Yosys runs once for all its seeds
        calls.append((core.rotation, target, list(seeds)))
        core._MustUse__silence = True  # the stand-in does not elaborate it
        if target.startswith("ice40"):
            raise synth.DesignDoesNotFitError("does not fit: ICESTORM_DSP 48/8",
                                              {"ICESTORM_DSP": (48, 8)})
        usage = synth.ResourceUsage
        return [synth.SynthesisReport(
            target=target, device="LFE5U-85F", top=top, luts=usage(100, 83640),
            ffs=usage(50, 83640), dsps=usage(4, 156), block_rams=usage(8, 208), spram=None,
            clock_mhz=100.0, fmax_mhz=fmax[core.rotation, seed], timing_met=True,
            out_of_context=True, io_harness_ffs=0, resources={}, clocks={}, critical_path={},
            tools={}, seconds={}) for seed in seeds]

    monkeypatch.setattr(synth, "synthesize_seeds", fake_synthesize_seeds)
    assert main(["bench", "update", "--n", "16", "--units", "4", "--synth", "--synth-seeds",
                 "1", "2", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert calls == [("cordic", "ecp5-85f", [1, 2]), ("multiplier", "ecp5-85f", [1, 2]),
                     ("multiplier", "ice40-up5k", [1])]
    assert "| 103.7 / 105.2 (seeds 1 / 2) |" in out and "| 115.2 / 101.4 (seeds 1 / 2) |" in out
    records = json.loads((tmp_path / "update.json").read_text())["synthesis"]
    assert [r.get("fmax_mhz") for r in records] == [103.7, 101.4, None]
    assert records[2]["error"].startswith("does not fit")
    for bad, message in (("-1", "not a seed: '-1'"), ("default", "give a number")):
        with pytest.raises(SystemExit):
            main(["bench", "update", "--synth", "--synth-seeds", bad])
        assert message in capsys.readouterr().err


def test_engines_table_steady_state():
    """units = n as engines: each engine's FOLD period over the engines, unless the stream
    that feeds half of them a row each in turn is slower (n = 64, 16 x 4: 560 / 16 = 35
    cycles a row, 95.7 %; n = 16, 2 x 8 with multiplier rotations: P_min = 35 binds)."""
    from tiersolve.host.bench.qr import engines_steady_period, engines_table

    fmt = FixedFormat(6, 12)
    records = {(r["n"], r["engines"], r["units"]): r
               for r in engines_table([8, 16, 64], 1, fmt, ["multiplier"], 64)}
    assert set(records) == {(8, 2, 4), (16, 4, 4), (16, 2, 8), (64, 16, 4), (64, 8, 8),
                            (64, 4, 16)}
    assert records[64, 16, 4]["steady_cycles_per_row"] == 35
    assert records[64, 16, 4]["steady_utilisation"] == pytest.approx(2144 / (64 * 35))
    assert records[16, 4, 4]["steady_utilisation"] == pytest.approx(152 / (16 * 11))
    assert records[16, 2, 8]["steady_cycles_per_row"] == 35 / 2
    # a stream slower than the engines: 16 engines of one unit at n = 8 could each take a
    # row every 44 cycles, but a stream brings one to each of its 8 engines every 8 x 9
    core = IncrementalUpdater(8, 1, fmt, units=1, rotation="multiplier")
    core._MustUse__silence = True
    assert core.fold_plan(8, 1)["period"] == 44
    assert engines_steady_period(core, 8, 1, 16) == 72 / 16


@pytest.mark.verilator
@pytest.mark.parametrize("name", ["qr", "update"])
def test_engines_in_verilator_give_the_models_integers(name):
    """The generated Verilog of QREngines (2 QR solver cores or updaters of 1 unit) folds 20
    rows spread over them, merges on the first READ and gives the model's integers
    (QREnginesModel, UpdaterEnginesModel)."""
    from tiersolve.host.bench.qr import verilator_engines_fold

    measured = verilator_engines_fold(4, 1, FixedFormat(4, 12), 2, 1, "multiplier", 20,
                                      name=name)
    assert measured["bit_exact"]
    assert measured["merge"] > 4 * 5          # four rows of five values at least
    assert measured["cycles"] > 0
