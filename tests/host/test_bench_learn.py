"""Tests of ``tiersolve bench learn`` (tiersolve.host.bench.learn): the FPGA cycle columns.

The cycles must be exactly the cores' cycle models summed over the solves the estimator makes;
the expected sums here are recomputed independently from ``cycle_model`` and
``IncrementalUpdater.update_cycles``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from tiersolve.gen.cholesky_model import cycle_model  # noqa: E402
from tiersolve.gen.qr import IncrementalUpdater  # noqa: E402
from tiersolve.host.bench import learn  # noqa: E402


def _tiny_problem(m=40, d=13, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d))
    y = np.arange(m) % classes
    X[:, 0] += y  # something to learn
    return X, y


def _expected_cycles(m, d, width, classes):
    """Lower tier: one ridge solve of ``m`` rows, ``n = width``, ``k = d`` right-hand sides in
    blocks of ``k_max``; head: ``m`` UPDATEs of ``n = width + 1``, ``k = classes``."""
    core = learn.CHOLESKY_CORE
    latency = learn._rsqrt_latency(core["format"], core["inverse_format"])
    cholesky = 0
    for begin in range(0, d, core["k_max"]):
        block = min(core["k_max"], d - begin)
        c = cycle_model(width, block, core["lanes"], rows=m, rsqrt_latency=latency)
        cholesky += m * c["gram_per_row"] + c["factor"] + c["solve"]
    updater = learn.UPDATER_CORE
    unit = IncrementalUpdater(width + 1, classes, updater["format"], updater["units"],
                              updater["rotation"])
    return cholesky, m * unit.update_cycles(width + 1, classes)


@pytest.mark.parametrize("backend", ["float64", "fixed"])
def test_fpga_cycles_equal_cycle_model_sum(backend):
    m, d, width, classes = 40, 13, 6, 3
    X, y = _tiny_problem(m, d, classes)
    model, seconds, cost = learn.train_two_tier(X, y, width, backend)
    assert seconds > 0
    cholesky, updater = _expected_cycles(m, d, width, classes)
    assert cost["cholesky_jobs"] == 2  # 13 right-hand sides, k_max = 10
    assert cost["cholesky_cycles"] == cholesky > 0
    assert cost["updater_rows"] == m
    assert cost["updater_cycles"] == updater > 0
    assert cost["cycles"] == cholesky + updater
    expected_seconds = (cholesky / (learn.CHOLESKY_CORE["fmax_mhz"] * 1e6)
                        + updater / (learn.UPDATER_CORE["fmax_mhz"] * 1e6))
    assert cost["seconds"] == pytest.approx(expected_seconds, rel=1e-12)
    assert cost["n_max_cholesky"] == width and cost["n_max_updater"] == width + 1
    assert model.score(X, y) > 1 / classes  # it did train


def test_fpga_cost_blocks_wide_right_hand_sides():
    one = learn.fpga_cost([(20, 8, 10)], [])
    two = learn.fpga_cost([(20, 8, 11)], [])
    assert one["cholesky_jobs"] == 1 and two["cholesky_jobs"] == 2
    assert two["cholesky_cycles"] > one["cholesky_cycles"]
    assert one["updater_cycles"] == 0 and one["cycles"] == one["cholesky_cycles"]


def test_table_has_positive_cycle_columns(monkeypatch):
    """run_datasets on one tiny data set: two-tier rows carry positive cycles and times, the
    others none, and the printed table shows the two columns."""
    X, y = _tiny_problem(60, 5, 3, seed=1)
    monkeypatch.setattr(learn, "DATASETS", ("tiny",))
    monkeypatch.setattr(learn, "_load", lambda name: (X[:40], X[40:], y[:40], y[40:]))
    rows = learn.run_datasets(width=4, mlp_width=4, fixed=False, wide_width=8,
                              say=lambda *args: None)
    two_tier = [r for r in rows if r["method"].startswith("two-tier")]
    assert [r["width"] for r in two_tier] == [4, 8]
    for row in rows:
        if row in two_tier:
            assert row["fpga_cycles"] > 0 and row["fpga_seconds"] > 0
            assert row["fpga_cycles"] == row["fpga"]["cycles"]
        else:
            assert row["fpga_cycles"] is None and row["fpga_seconds"] is None
        row["mlp_mac_ratio"] = 1.0
    table = learn.format_table(rows)
    assert "FPGA cycles" in table and "FPGA ms" in table
    assert "tiny:" in learn.table_notes(rows)
