"""``tiersolve bench cholesky``: the table's cycles, and ``--synth`` with several seeds (the
tools replaced by a stand-in; the real flow is tested in tests/boards/test_synth.py)."""

import json

import pytest
from tiersolve.gen.checks import silence_unused
from tiersolve.gen.cholesky_model import cycle_model
from tiersolve.host.bench.cholesky import _rsqrt_latency
from tiersolve.host.cli import main


def _fake_reports(synth, fmax, calls):
    def fake_synthesize_seeds(core, seeds, *, target, top):
        calls.append(((core.n_max, core.k_max, core.lanes), list(seeds)))
        silence_unused(core)  # the stand-in does not elaborate it
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


def test_cpu_timing_holds_blas_to_the_threads_given(monkeypatch, tmp_path, capsys):
    """The CPU column is timed with the BLAS library held to --blas-threads (default 1),
    whatever the environment allows, and says so in the header and the JSON."""
    from threadpoolctl import threadpool_info, threadpool_limits
    from tiersolve.host.bench import cholesky

    seen = []
    real_timing = cholesky.cpu_timing

    def spying(*args, **kwargs):
        from scipy.linalg import cho_factor

        real_factor = cho_factor

        def factor(*a, **k):
            seen.append({info["num_threads"] for info in threadpool_info()
                         if info["user_api"] == "blas"})
            return real_factor(*a, **k)

        monkeypatch.setattr("scipy.linalg.cho_factor", factor)
        try:
            return real_timing(*args, **kwargs)
        finally:
            monkeypatch.setattr("scipy.linalg.cho_factor", real_factor)

    monkeypatch.setattr(cholesky, "cpu_timing", spying)
    assert main(["bench", "cholesky", "--n", "8", "--lanes", "4", "--k", "2", "--repeats", "4",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert seen and all(threads == {1} for threads in seen)
    assert len(seen) == cholesky.WARMUP_RUNS + 4
    assert "1 thread" in out.splitlines()[0] and "median of 4" in out.splitlines()[0]
    saved = json.loads((tmp_path / "cholesky.json").read_text())
    assert saved["cpu_blas_threads"] == 1 and saved["cpu_repeats"] == 4
    (row,) = saved["results"]
    assert 0 < row["cpu_min_us"] <= row["cpu_time_us"] <= row["cpu_p90_us"]
    with threadpool_limits(limits=1, user_api="blas"):
        timing = real_timing(8, 2, repeats=3, threads=None)  # None: leave the limit as it is
    assert "1 thread" in timing["blas"] and "threads" not in timing["blas"]


def test_cpu_parity_counts_the_work_and_the_clocks():
    """Matching the CPU: the work is n³/6 + n²k multiply-adds, the CPU's time in cycles at the
    clock gives the multiply-adds a cycle needed, and each lane count's factor + solve cycles
    over the CPU's time the clock it would need (the README's LAPACK paragraph quotes them)."""
    from tiersolve.host.bench.cholesky import cpu_parity, cycle_table

    records = cycle_table([16, 32], [4, 8], 10, _rsqrt_latency("Q6.12", None))
    parity = cpu_parity(records, 32, 20.0, 100.0)
    assert parity["multiply_adds"] == 32**3 / 6 + 32**2 * 10
    assert parity["cpu_cycles"] == 2000.0
    assert parity["multiply_adds_per_cycle"] == parity["multiply_adds"] / 2000.0
    clocks = parity["clock_to_match_mhz"]
    assert [row["lanes"] for row in clocks] == [4, 8]
    for row in clocks:
        model = cycle_model(32, 10, row["lanes"], rows=1,
                            rsqrt_latency=_rsqrt_latency("Q6.12", None))
        assert row["clock_mhz"] == (model["factor"] + model["solve"]) / 20.0
    with pytest.raises(ValueError, match="no record of n = 64"):
        cpu_parity(records, 64, 20.0, 100.0)
    with pytest.raises(ValueError, match="must be positive"):
        cpu_parity(records, 32, 0.0, 100.0)
