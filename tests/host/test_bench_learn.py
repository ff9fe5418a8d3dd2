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


def _expected_cycles(m, d, width, classes, direct_link=False):
    """Lower tier: one ridge solve of ``m`` rows, ``n = width``, ``k = d`` right-hand sides in
    blocks of ``k_max`` (one core of ``n_max = width``); head: ``m`` UPDATEs of ``n = width +
    1`` (``+ d`` with the direct link), ``k = classes``."""
    core = learn.CHOLESKY_CORE
    latency = learn._rsqrt_latency(core["format"], core["inverse_format"])
    cholesky = 0
    for begin in range(0, d, core["k_max"]):
        block = min(core["k_max"], d - begin)
        c = cycle_model(width, block, core["lanes"], rows=m, rsqrt_latency=latency,
                        fmt=core["format"], inverse_format=core["inverse_format"],
                        n_max=max(width, 2), k_max=core["k_max"])
        cholesky += m * c["gram_per_row"] + c["factor"] + c["solve"]
    updater = learn.UPDATER_CORE
    n = width + 1 + (d if direct_link else 0)
    unit = IncrementalUpdater(n, classes, updater["format"], updater["units"],
                              updater["rotation"])
    unit._MustUse__silence = True  # only its cycle formula is used
    return cholesky, m * unit.update_cycles(n, classes)


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


def test_fpga_cycles_with_direct_link_and_board_clock():
    """The direct link widens the head to width + d + 1; a board clock converts both cores'
    cycles at that one frequency."""
    m, d, width, classes = 30, 5, 4, 3
    X, y = _tiny_problem(m, d, classes)
    _, _, cost = learn.train_two_tier(X, y, width, direct_link=True, clock=40.0)
    cholesky, updater = _expected_cycles(m, d, width, classes, direct_link=True)
    assert cost["n_max_updater"] == width + d + 1
    assert cost["cholesky_cycles"] == cholesky and cost["updater_cycles"] == updater
    assert cost["cholesky_mhz"] == cost["updater_mhz"] == 40.0
    assert cost["seconds"] == pytest.approx((cholesky + updater) / 40e6, rel=1e-12)
    with pytest.raises(ValueError, match="clock must be a positive"):
        learn.fpga_cost([(10, 4, 2)], [], clock=0.0)


def test_fpga_cost_blocks_wide_right_hand_sides():
    one = learn.fpga_cost([(20, 8, 10)], [])
    two = learn.fpga_cost([(20, 8, 11)], [])
    assert one["cholesky_jobs"] == 1 and two["cholesky_jobs"] == 2
    assert two["cholesky_cycles"] > one["cholesky_cycles"]
    assert one["updater_cycles"] == 0 and one["cycles"] == one["cholesky_cycles"]


def _tiny_tables(monkeypatch):
    X, y = _tiny_problem(60, 5, 3, seed=1)
    monkeypatch.setattr(learn, "DATASETS", ("tiny",))
    monkeypatch.setattr(learn, "_load", lambda name: (X[:40], X[40:], y[:40], y[40:]))


def test_fpga_cost_models_the_given_core_size():
    """A Cholesky core of a given n_max (deeper banks: the read stage) counts the cycles of
    that core, not of the smallest one that holds the solve; a solve larger than it raises."""
    latency = learn._rsqrt_latency(learn.CHOLESKY_CORE["format"],
                                   learn.CHOLESKY_CORE["inverse_format"])
    sized = learn.fpga_cost([(20, 16, 10)], [])
    big = learn.fpga_cost([(20, 16, 10)], [], cholesky={**learn.CHOLESKY_CORE, "n_max": 64})
    for result, n_max in ((sized, 16), (big, 64)):
        c = cycle_model(16, 10, 4, rows=20, rsqrt_latency=latency, n_max=n_max, k_max=10,
                        fmt=learn.CHOLESKY_CORE["format"],
                        inverse_format=learn.CHOLESKY_CORE["inverse_format"])
        assert result["cholesky_cycles"] == 20 * c["gram_per_row"] + c["factor"] + c["solve"]
    assert big["cholesky_cycles"] > sized["cholesky_cycles"]
    with pytest.raises(ValueError, match="does not fit the Cholesky core's n_max = 8"):
        learn.fpga_cost([(20, 16, 10)], [], cholesky={**learn.CHOLESKY_CORE, "n_max": 8})


def test_sweep_judges_worst_seed_and_mac_ratio(monkeypatch):
    """The sweep trains every (width, direct link) with each seed; a configuration meets the
    goal only if its worst seed is within one point of the MLP AND it needs <= 1/10 of its
    MACs (checked here against MLP rows that make each condition fail in turn)."""
    _tiny_tables(monkeypatch)
    from tiersolve.host.learn import training_macs

    macs = training_macs(40, 5, (4,), 3)["total"]
    generous = {"accuracy": 0.0, "macs": 10 * macs, "method": "MLP"}
    rows = learn.sweep_widths(generous, widths=(4,), seeds=2, dataset="tiny",
                              say=lambda *args: None)
    assert [(r["width"], r["direct_link"]) for r in rows] == [(4, False), (4, True)]
    plain = rows[0]
    assert len(plain["accuracies"]) == 2 and plain["accuracy_min"] <= plain["accuracy_mean"]
    assert plain["macs"] == macs and plain["mlp_mac_ratio"] == pytest.approx(10)
    assert plain["meets_goal"]
    costly = learn.sweep_widths({**generous, "macs": 9 * macs}, widths=(4,), seeds=2,
                                dataset="tiny", say=lambda *args: None)
    assert not costly[0]["meets_goal"]  # only 9x fewer MACs
    better = {**generous, "accuracy": plain["accuracy_min"] + 0.011}
    assert not learn.sweep_widths(better, widths=(4,), seeds=2, dataset="tiny",
                                  say=lambda *args: None)[0]["meets_goal"]
    assert "MET" in learn.format_sweep(rows, generous)
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        learn.sweep_widths(generous, widths=(4,), seeds=0, dataset="tiny")


def test_table_has_positive_cycle_columns(monkeypatch):
    """run_datasets on one tiny data set: two-tier rows carry positive cycles and times, the
    others none, and the printed table shows the two columns."""
    _tiny_tables(monkeypatch)
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
    notes = learn.table_notes(rows)
    assert "tiny:" in notes and "core Fmax, no board build recorded" in notes
    board = {"fmax_mhz": 70.0, "board": "ulx3s-85f", "source": "Fmax of the ulx3s-85f build"}
    assert "both cores at 70 MHz, the Fmax of the ulx3s-85f build" in learn.table_notes(
        rows, board)
