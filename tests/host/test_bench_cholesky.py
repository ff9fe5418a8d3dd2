"""``tiersolve bench cholesky``: the table's cycles, and ``--synth`` with several seeds (the
tools replaced by a stand-in; the real flow is tested in tests/boards/test_synth.py)."""

import json

from tiersolve.gen.cholesky_model import cycle_model
from tiersolve.host.bench.cholesky import _rsqrt_latency
from tiersolve.host.cli import main


def _fake_reports(synth, fmax, calls):
    def fake_synthesize_seeds(core, seeds, *, target, top):
        calls.append(((core.n_max, core.k_max, core.lanes), list(seeds)))
        usage = synth.ResourceUsage
        return [synth.SynthesisReport(
            target=target, device="LFE5U-85F", top=top, luts=usage(5825, 83640),
            ffs=usage(3751, 83640), dsps=usage(9, 156), block_rams=usage(8, 208), spram=None,
            clock_mhz=100.0, fmax_mhz=fmax[seed], timing_met=True, out_of_context=True,
            io_harness_ffs=0, resources={}, clocks={}, critical_path={}, tools={},
            seconds={}) for seed in seeds]

    return fake_synthesize_seeds


def test_bench_cholesky_synth_seeds(monkeypatch, tmp_path, capsys):
    """Each configuration is synthesised once and placed with every seed; the table gives each
    seed's Fmax, the time columns use the lowest."""
    from tiersolve.boards import synth

    calls = []
    monkeypatch.setattr(synth, "synthesize_seeds",
                        _fake_reports(synth, {1: 124.8, 3: 110.0}, calls))
    assert main(["bench", "cholesky", "--n", "16", "--lanes", "4", "--k", "4", "--repeats", "3",
                 "--synth", "--synth-config", "16,4,4", "--synth-seeds", "1", "3",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert calls == [((16, 4, 4), [1, 3])]
    assert "| 124.8 / 110.0 (seeds 1 / 3) |" in out
    saved = json.loads((tmp_path / "cholesky.json").read_text())
    meta, records = saved, saved["results"]
    (record,) = meta["synthesis"]
    assert record["fmax_mhz"] == 110.0
    assert record["runs"] == [{"seed": 1, "fmax_mhz": 124.8}, {"seed": 3, "fmax_mhz": 110.0}]
    assert meta["fmax_mhz"] == 110.0 and meta["fmax_source"] == "synthesis (lowest)"
    cycles = cycle_model(16, 4, 4, rows=1, rsqrt_latency=_rsqrt_latency("Q6.12", None),
                         fmt="Q6.12")
    assert record["factor_solve_cycles"] == cycles["factor"] + cycles["solve"]
    assert abs(record["device_time_us"] - record["factor_solve_cycles"] / 110.0) < 1e-9
    (row,) = records
    assert row["factor_cycles"] == cycles["factor"] and row["solve_cycles"] == cycles["solve"]
