"""Tests of the Verilator-backed simulated device (``vsim://``, :mod:`tiersolve.host.verilated`).

The key checks: results over ``vsim://`` are bit-exact equal to
:func:`tiersolve.gen.cholesky_model.cholesky_model` on the integers the host sent, equal to
``sim://`` (Amaranth's simulator) on the same design, including the core's cycle count, and a
problem of n = 32 (which would take minutes in Amaranth's simulator) runs in well under a
second. Failures of the driver process become ``LinkError`` / ``DeviceTimeout``, never a hang.

The first run compiles two configurations with Verilator (about a minute each on a loaded
machine); they are cached in ``~/.cache/tiersolve/crosssim`` (or
``$TIERSOLVE_CROSSSIM_CACHE``), after which the whole file runs in a few seconds.
"""

import os
import stat
import time

import numpy as np
import pytest
import tiersolve.host
from tiersolve.designs import regmap
from tiersolve.gen.cholesky_model import cholesky_model
from tiersolve.host.device import parse_url
from tiersolve.host.errors import DeviceTimeout, LinkError, NotPositiveDefinite
from tiersolve.host.verilated import VerilatedBytePort, VerilatorTransport

pytestmark = pytest.mark.verilator

SMALL = "n_max=8&k_max=2&lanes=2&format=Q6.12"
LARGE = "n_max=32&k_max=4&lanes=4&format=Q6.12"


@pytest.fixture(scope="module")
def device(verilator):
    with tiersolve.host.open(f"vsim://?{SMALL}") as dev:
        yield dev


@pytest.fixture(scope="module")
def large_device(verilator):
    with tiersolve.host.open(f"vsim://?{LARGE}") as dev:
        yield dev


def model_of(device, job):
    info = device.info()
    mode = "direct" if job.op == regmap.Op.CHOLESKY_DIRECT else "gram"
    return cholesky_model(info.fmt, mode, job.n, job.k, job.lam, job.rows, n_max=info.n_max,
                          k_max=info.k_max, guard_bits=info.guard_bits,
                          inverse_format=info.inverse_format)


def spd(rng, n):
    h = rng.normal(size=(2 * n, n))
    return h.T @ h / (2 * n) + 0.2 * np.eye(n)


def check_solve(device, n, k, seed):
    rng = np.random.default_rng(seed)
    A = spd(rng, n) * 3.0
    B = rng.normal(size=(n, k)) if k > 1 else rng.normal(size=n)
    job = device.plan_solve(A, B)
    result = device.run(job)
    model = model_of(device, job)
    assert not model.saturated and not model.npd
    assert np.array_equal(result, model.x)
    return job, result


def check_fit(device, m, n, k, lam, seed):
    rng = np.random.default_rng(seed)
    H = rng.normal(size=(m, n))
    T = H @ rng.normal(size=(n, k)) + 0.1 * rng.normal(size=(m, k))
    job = device.plan_fit(H, T, lam)
    assert job.op == regmap.Op.CHOLESKY_GRAM
    result = device.run(job)
    model = model_of(device, job)
    assert not model.saturated and not model.npd
    assert np.array_equal(result, model.x)
    return job, result


def test_url():
    assert parse_url(f"vsim://?{SMALL}") == (
        "vsim", "", {"n_max": 8, "k_max": 2, "lanes": 2, "fmt": "Q6.12"})
    with pytest.raises(ValueError, match="takes no path"):
        parse_url("vsim://somewhere")
    with pytest.raises(ValueError, match="unknown parameter"):
        parse_url("vsim://?baud=9600")


def test_info(device):
    info = device.info()
    assert info.cores == ("cholesky",)
    assert (info.n_max, info.k_max, info.lanes, str(info.fmt)) == (8, 2, 2, "Q6.12")
    assert info.layout == regmap.LAYOUT_ID and info.max_burst == 64


@pytest.mark.parametrize("n, k, seed", [(1, 1, 0), (5, 2, 1), (8, 2, 2)])
def test_solve_is_bit_exact(device, n, k, seed):
    check_solve(device, n, k, seed)
    assert device.last_run["cycles"] > 0 and device.last_run["sim_cycles"] > 0


@pytest.mark.parametrize("m, n, k, lam, seed", [(20, 6, 2, 0.1, 3), (3, 8, 1, 0.5, 4)])
def test_fit_is_bit_exact(device, m, n, k, lam, seed):
    check_fit(device, m, n, k, lam, seed)


def test_equal_to_amaranth_simulation(device):
    """The same job over sim:// and vsim://: the same integers and the same core cycles."""
    rng = np.random.default_rng(5)
    A, B = spd(rng, 3), rng.normal(size=(3, 2))
    job = device.plan_solve(A, B)
    verilated = device.run(job)
    verilated_cycles = device.last_run["cycles"]
    with tiersolve.host.open(f"sim://?{SMALL}") as simulated:
        assert simulated.info() == device.info()
        assert np.array_equal(simulated.run(job), verilated)
        assert simulated.last_run["cycles"] == verilated_cycles


def test_error_then_usable(device):
    with pytest.raises(NotPositiveDefinite):
        device.solve(-np.eye(3), np.ones(3))
    check_solve(device, 4, 1, 6)


def test_large_problem(large_device):
    """n = 32 (k = 4) solve and n = 24 ridge fit of 200 samples, bit-exact with the model.

    In Amaranth's simulator (about 1,800 cycles/s for this design) these jobs take minutes.
    """
    port = large_device.transport.port
    cycles_before, seconds_before = port.cycles, port.seconds
    started = time.monotonic()
    check_solve(large_device, 32, 4, 7)
    check_fit(large_device, 200, 24, 3, 0.05, 8)
    elapsed = time.monotonic() - started
    cycles = port.cycles - cycles_before
    assert cycles > 50_000  # the host moved ~2 x 4k words through the byte bridge
    rate = cycles / (port.seconds - seconds_before)
    print(f"vsim n_max=32: {cycles} cycles in {elapsed:.2f} s wall, {rate:,.0f} cycles/s "
          f"while simulating")


def test_run_cycles_advances_time(device):
    port = device.transport.port
    before = port.cycles
    port.run_cycles(1000)
    assert port.cycles == before + 1000
    assert device.info().n_max == 8  # still answers


def test_dead_driver_raises_link_error(verilator):
    with VerilatorTransport(n_max=8, k_max=2, lanes=2, fmt="Q6.12") as transport:
        assert transport.read(regmap.address("N_MAX"), 1) == [8]
        transport.port._process.kill()
        transport.port._process.wait()
        with pytest.raises(LinkError, match="exited"):
            transport.read(regmap.address("N_MAX"), 1)
        with pytest.raises(LinkError, match="closed"):
            transport.read(regmap.address("N_MAX"), 1)


def test_silent_design_raises_device_timeout(verilator):
    """A reply that takes longer than wait_cycles is a DeviceTimeout after the retries."""
    with VerilatorTransport(n_max=8, k_max=2, lanes=2, fmt="Q6.12", wait_cycles=5,
                            retries=2) as transport:
        with pytest.raises(DeviceTimeout):
            transport.read(regmap.address("N_MAX"), 1)
        assert transport.statistics["retries"] == 2


def test_hung_driver_raises_device_timeout(tmp_path):
    """A driver that never answers is killed after reply_timeout seconds."""
    script = tmp_path / "hang.sh"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    port = VerilatedBytePort(script, reply_timeout=0.3)
    port.write(b"\x01\x02")
    started = time.monotonic()
    with pytest.raises(DeviceTimeout, match="did not answer"):
        port.read(1)
    assert time.monotonic() - started < 5
    assert not port.alive
    port.close()


def test_missing_driver_raises_link_error(tmp_path):
    with pytest.raises(LinkError, match="cannot start"):
        VerilatedBytePort(tmp_path / "nothing-here")
    assert not os.path.exists(tmp_path / "nothing-here")
