"""Tests of the two-tier demo (:mod:`tiersolve.host.demo`) and ``tiersolve demo``.

Tiny configurations (a few hidden units, large mini-batches) keep every test to a few seconds;
the device test runs the demo's default ``vsim://`` design (compiled once, then cached).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from tiersolve.boards import measured as real_measured  # noqa: E402
from tiersolve.host.cli import main  # noqa: E402
from tiersolve.host.demo import (  # noqa: E402
    CORE_FMAX_MHZ,
    DEFAULT_BOARD,
    DEFAULT_DEVICE_URL,
    UPDATER_FMAX_MHZ,
    ColumnBlockedBackend,
    board_fmax,
    run_demo,
)
from tiersolve.host.learn import FixedBackend, Float64Backend  # noqa: E402

#: Training samples of classes 5-9 in split_digits() (seed 0, 30 % held out).
NEW_SAMPLES = 627


def test_demo_float64_and_fixed(tmp_path):
    """float64 and fixed on a tiny network: one point per step, a plot, better than chance.

    A smoke test, not an accuracy bound: with eight hidden units both backends end far above
    chance (0.1), measured about 0.6; 0.5 catches a head that stopped learning the new classes.
    (Bit-exactness of fixed against the device is checked below; the fixed models' accuracy
    against float64 is tested in test_learn.py.)
    """
    lines = []
    result = run_demo(("float64", "fixed"), out=tmp_path, hidden_layer_sizes=(8,),
                      batch_size=300, progress=lines.append)
    steps = 1 + -(-NEW_SAMPLES // 300)
    for name in ("float64", "fixed"):
        curve = result[name]
        assert len(curve["accuracy"]) == len(curve["samples"]) == steps
        assert curve["samples"][-1] == curve["samples"][0] + NEW_SAMPLES
        assert curve["classes"] == list(range(10))
        assert curve["accuracy_new"][0] == 0.0  # the new classes are unknown after fit
        assert curve["coef"].shape == (9, 10)
        assert "fit_cycles" not in curve
    assert result["float64"]["final_accuracy"] > 0.5
    assert result["fixed"]["final_accuracy"] > 0.5
    assert result["fixed"]["accuracy_new"][-1] > 0.3
    assert "bit_exact" not in result
    assert (tmp_path / "continual.png").stat().st_size > 1000
    assert any(line.startswith("plot saved to") for line in lines)


def test_column_blocked_backend():
    """Blocks of right-hand sides: float64 unchanged (to rounding); one block == no blocking."""
    rng = np.random.default_rng(3)
    H, T = np.tanh(rng.standard_normal((60, 6))), rng.standard_normal((60, 7))
    plain = Float64Backend().ridge_solve(H, T, 0.5)
    blocked = ColumnBlockedBackend(Float64Backend(), 3)
    assert blocked.name == "float64"
    np.testing.assert_allclose(blocked.ridge_solve(H, T, 0.5), plain, rtol=1e-12, atol=1e-14)
    whole = FixedBackend().ridge_solve(H, T, 0.5)
    assert np.array_equal(ColumnBlockedBackend(FixedBackend(), 7).ridge_solve(H, T, 0.5), whole)
    in_threes = ColumnBlockedBackend(FixedBackend(), 3).ridge_solve(H, T, 0.5)
    assert np.array_equal(in_threes[:, 3:6], FixedBackend().ridge_solve(H, T[:, 3:6], 0.5))
    with pytest.raises(ValueError, match="block must be positive"):
        ColumnBlockedBackend(Float64Backend(), 0)
    with pytest.raises(TypeError, match="block must be an integer"):
        ColumnBlockedBackend(Float64Backend(), 2.0)
    with pytest.raises(TypeError, match="SolverBackend"):
        ColumnBlockedBackend("float64", 2)


def _fake_measured(monkeypatch, builds):
    """Install a stand-in ``tiersolve.boards.measured`` whose ``measured_build`` returns
    ``builds.get(board)`` and records its calls."""
    import sys
    import types

    calls = []
    module = types.ModuleType("tiersolve.boards.measured")

    def measured_build(board, **config):
        calls.append((board, config))
        return builds.get(board)

    module.measured_build = measured_build
    module.config_differences = real_measured.config_differences
    monkeypatch.setitem(sys.modules, "tiersolve.boards.measured", module)
    return calls


def test_board_fmax_uses_the_recorded_board_build(monkeypatch):
    build = {"fmax_mhz": 71.5, "clock_mhz": 45.0, "n_max": 16, "k_max": 4, "lanes": 4,
             "format": "Q8.16", "cores": ["cholesky", "updater"],
             "command": "tiersolve bench build --record"}
    calls = _fake_measured(monkeypatch, {DEFAULT_BOARD: build})
    clock = board_fmax(n_max=16, k_max=4, cores="cholesky,updater", format="Q8.16")
    assert calls == [(DEFAULT_BOARD, {"n_max": 16, "k_max": 4, "cores": "cholesky,updater",
                                      "format": "Q8.16"})]
    assert clock["fmax_mhz"] == 71.5 and clock["board"] == DEFAULT_BOARD
    assert clock["build"] is build and clock["match"] == "exact"
    for text in (DEFAULT_BOARD, "16/4/4", "Q8.16", "cholesky,updater", "runs at 45 MHz",
                 "`tiersolve bench build --record`"):
        assert text in clock["source"]
    assert "closest" not in clock["source"] and "stands in" not in clock["source"]
    # measured_build lets a build of another size stand in for the device's: the source says
    # so (it read as the device's own build)
    clock = board_fmax(n_max=8, k_max=2, cores="cholesky,updater")
    assert clock["match"] == "stand-in" and clock["fmax_mhz"] == 71.5
    assert "stands in for the device's (n_max 8, k_max 2;" in clock["source"]


def test_board_fmax_relaxes_to_the_closest_recorded_build(monkeypatch):
    """No build of the device's configuration: with the same cores, then any build of the
    board, and the source says it is the closest one, not the device's."""
    import sys
    import types

    build = {"fmax_mhz": 130.0, "clock_mhz": 90.0, "n_max": 16, "k_max": 4, "lanes": 4,
             "format": "Q6.12", "cores": ("cholesky",), "command": "tiersolve build ..."}
    calls = []
    module = types.ModuleType("tiersolve.boards.measured")

    def measured_build(board, **config):
        calls.append(config)
        return build if not config else None

    module.measured_build = measured_build
    module.config_differences = real_measured.config_differences
    monkeypatch.setitem(sys.modules, "tiersolve.boards.measured", module)
    config = {"n_max": 64, "k_max": 32, "cores": "cholesky,updater"}
    clock = board_fmax(**config)
    assert calls == [config, {"cores": "cholesky,updater"}, {}]
    assert clock["fmax_mhz"] == UPDATER_FMAX_MHZ and clock["match"] == "board"
    assert "closest recorded" in clock["source"] and "Q6.12" in clock["source"]
    assert f"capped at the bare updater's {UPDATER_FMAX_MHZ:g} MHz" in clock["source"]
    calls.clear()
    alone = board_fmax(n_max=64, cores="cholesky")  # no updater wanted: no cap
    assert alone["fmax_mhz"] == 130.0 and "capped" not in alone["source"]


def test_board_fmax_falls_back_to_the_core_with_a_caveat(monkeypatch):
    """No build of the board recorded, or no ``tiersolve.boards.measured`` at all: the bare
    core's Fmax, and the source says so."""
    _fake_measured(monkeypatch, {})
    clock = board_fmax()
    assert clock == {"fmax_mhz": CORE_FMAX_MHZ, "board": None, "build": None, "match": None,
                     "source": "core Fmax, no board build recorded"}
    import sys

    monkeypatch.setitem(sys.modules, "tiersolve.boards.measured", None)  # import fails
    assert board_fmax(core_fmax_mhz=50.0)["fmax_mhz"] == 50.0
    assert board_fmax()["source"] == "core Fmax, no board build recorded"


def test_default_device_is_sized_for_a_useful_demo():
    """The default demo device holds 63 hidden units (n_max = 64, the head adds the bias), ten
    classes in the head, and the autoencoder's 64 right-hand sides in two blocks of 32."""
    from tiersolve.host.device import parse_url

    scheme, _, params = parse_url(DEFAULT_DEVICE_URL)
    assert scheme == "vsim"
    assert (params["n_max"], params["k_max"]) == (64, 32)
    assert params["cores"] == ("cholesky", "updater")


def test_cli_demo(tmp_path, capsys):
    """`tiersolve demo` runs; bad backends and options are one-line errors (status 2)."""
    assert main(["demo", "--backends", "float64", "--hidden", "6", "--batch-size", "400",
                 "--out", str(tmp_path)]) == 0
    assert "plot saved to" in capsys.readouterr().out
    assert (tmp_path / "continual.png").exists()
    assert main(["demo", "--backends", "float64,gpu"]) == 2
    assert "unknown backend(s) gpu" in capsys.readouterr().err
    assert main(["demo", "--backends", "float64", "--device", "sim://"]) == 2
    assert "--device needs 'device'" in capsys.readouterr().err
    assert main(["demo", "--fmax-mhz", "0"]) == 2
    assert main(["demo", "--backends", "device", "--device", "sim://?n_max=4&k_max=2"]) == 2
    assert "incremental-update core" in capsys.readouterr().err
    # a serial port that does not open is a one-line error too, not a traceback
    missing = tmp_path / "no-such-port"
    assert main(["demo", "--backends", "device", "--device", f"uart://{missing}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tiersolve demo: error: uart://{missing}: LinkError: cannot open "
                          "serial port") and "Traceback" not in err


@pytest.mark.verilator
def test_demo_on_simulated_device(verilator, tmp_path):
    """The default vsim:// device and its matching fixed backend agree bit for bit."""
    lines = []
    result = run_demo(("fixed", "device"), out=tmp_path, hidden_layer_sizes=(4,),
                      batch_size=400, device=DEFAULT_DEVICE_URL, fmax_mhz=100.0,
                      progress=lines.append)
    assert result["bit_exact"] is True
    assert result["clock"] == {"fmax_mhz": 100.0, "board": None, "build": None, "match": None,
                               "source": "given by the caller (--fmax-mhz)"}
    assert any(line.startswith("clock for device time: 100 MHz") for line in lines)
    assert result["device"]["accuracy"] == result["fixed"]["accuracy"]
    assert np.array_equal(result["device"]["coef"], result["fixed"]["coef"])
    assert result["device"]["fit_cycles"] > 0 and result["device"]["update_cycles"] > 0
    assert any("agree bit for bit" in line for line in lines)
    assert any(line.startswith("device core cycles") and "at 100 MHz" in line
               for line in lines)
