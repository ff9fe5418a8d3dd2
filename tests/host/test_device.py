"""Tests of the Device API over the simulated device (SolverDesign in Amaranth's simulator).

The key check: results are bit-exact equal to :func:`tiersolve.gen.cholesky_model.cholesky_model`
run on the integers the host sent (``Device.plan_solve`` / ``plan_fit``), and the device stays
usable after an error. One simulated device (n_max=8, k_max=2, lanes=2, Q6.12) is shared by the
module's tests; each job runs a few thousand cycles (about a second).
"""

import re
import subprocess
import sys

import numpy as np
import pytest
import tiersolve.host
from tiersolve.designs import regmap
from tiersolve.gen.cholesky_model import cholesky_model, forward_error_bound
from tiersolve.host.cli import main
from tiersolve.host.device import Device, Job, parse_url
from tiersolve.host.errors import (
    DeviceError,
    DeviceTimeout,
    DowndateRefused,
    IncompatibleDevice,
    NotPositiveDefinite,
    Saturated,
)
from tiersolve.host.transport import FramedTransport
from updater_state import device_ints, head_model, record_updater_ops

URL = "sim://?n_max=8&k_max=2&lanes=2&format=Q6.12"
N_MAX, K_MAX = 8, 2


@pytest.fixture(scope="module")
def device():
    with tiersolve.host.open(URL) as dev:
        yield dev


def model_of(device, job):
    info = device.info()
    mode = "direct" if job.op == regmap.Op.CHOLESKY_DIRECT else "gram"
    return cholesky_model(info.fmt, mode, job.n, job.k, job.lam, job.rows, n_max=info.n_max,
                          k_max=info.k_max, guard_bits=info.guard_bits,
                          inverse_format=info.inverse_format)


def spd(rng, n, m=None):
    h = rng.normal(size=(m or 2 * n, n))
    return h.T @ h / (m or 2 * n) + 0.2 * np.eye(n)


def test_info(device):
    info = device.info()
    assert info.cores == ("cholesky",)
    assert (info.n_max, info.k_max, info.lanes, str(info.fmt)) == (8, 2, 2, "Q6.12")
    assert info.layout == regmap.LAYOUT_ID and info.max_burst == 64


@pytest.mark.parametrize("n, k, seed", [(4, 1, 0), (6, 2, 1)])
def test_solve_is_bit_exact_and_accurate(device, n, k, seed):
    """Bit-exact with the model; and within forward_error_bound (cholesky_model) of the float64
    solution of the quantised system the device was given."""
    rng = np.random.default_rng(seed)
    A = spd(rng, n) * 3.0
    B = rng.normal(size=(n, k)) if k > 1 else rng.normal(size=n)
    job = device.plan_solve(A, B)
    assert job.op == regmap.Op.CHOLESKY_DIRECT and (job.n, job.k) == (n, k)
    result = device.run(job)
    model = model_of(device, job)
    assert not model.saturated and not model.npd
    assert np.array_equal(result, model.x)
    x = device._finish(job, result)
    assert x.shape == np.shape(B)
    fmt = device.info().fmt
    a_q = fmt.dequantise(job.rows[:, :n])
    a_q = np.tril(a_q) + np.tril(a_q, -1).T
    b_q = fmt.dequantise(job.rows[:, n:])
    exact = np.linalg.solve(a_q, b_q)
    x_dev = fmt.dequantise(result)
    bound = forward_error_bound(a_q, exact, fmt)
    assert np.isfinite(bound)
    assert np.linalg.norm(x_dev - exact) <= bound * np.linalg.norm(exact)
    # the public call returns the same numbers
    assert np.array_equal(device.solve(A, B), x)
    assert device.last_run["cycles"] > 0 and device.last_run["requests"] >= 4


def test_fit_is_bit_exact(device):
    rng = np.random.default_rng(5)
    H = rng.normal(size=(10, 5)) * 4.0
    T = rng.normal(size=(10, 2)) * 0.5
    lam = 0.3
    job = device.plan_fit(H, T, lam)
    assert job.op == regmap.Op.CHOLESKY_GRAM and job.rows.shape == (10, 7)
    result = device.run(job)
    model = model_of(device, job)
    assert not model.saturated
    assert np.array_equal(result, model.x)
    w = device._finish(job, result)
    reference = np.linalg.solve(H.T @ H + lam * np.eye(5), H.T @ T)
    # scaling and rounding only: a loose sanity check (the bit-exact check above is the test)
    assert np.max(np.abs(w - reference)) < 0.05 * np.max(np.abs(reference))


def test_not_positive_definite_then_usable(device):
    A = np.diag([2.0, -1.0, 3.0, 1.0])
    with pytest.raises(NotPositiveDefinite) as raised:
        device.solve(A, np.ones(4))
    assert raised.value.index == 1
    assert np.allclose(device.solve(np.diag([1.0, 2.0, 4.0, 8.0]), np.ones(4)),
                       [1, 0.5, 0.25, 0.125], atol=1e-3)


def test_device_saturation_flag_raises(device):
    """A hand-made job whose solution (100) exceeds Q6.12 (max 32): the device clips, flags, and
    the host raises instead of returning the clipped numbers."""
    fmt = device.info().fmt
    A = fmt.quantise(0.01 * np.eye(2)).values
    b = fmt.quantise(np.ones((2, 1))).values
    job = Job(regmap.Op.CHOLESKY_DIRECT, 2, 1, 0, np.concatenate([A, b], axis=1), 0)
    with pytest.raises(Saturated, match="clipped"):
        device.run(job)


def test_job_timeout_raises_and_returns_nothing(device):
    rng = np.random.default_rng(7)
    impatient = Device(device.transport, job_timeout=1e-9)
    with pytest.raises(DeviceTimeout, match="core reset"):
        impatient.solve(spd(rng, 8), rng.normal(size=8))
    assert device.solve(np.eye(2), [1.0, 2.0]) == pytest.approx([1.0, 2.0], abs=1e-3)


def test_polling_waits_the_transports_poll_interval(device, monkeypatch):
    """A transport that answers at once (a PCIe BAR) asks for a pause between status polls:
    the device waits it, so a long job does not hold a core (it polled flat out before)."""
    import tiersolve.host.device as device_module

    pauses = []
    monkeypatch.setattr(device_module.time, "sleep", pauses.append)
    monkeypatch.setattr(device.transport, "poll_interval", 0.002, raising=False)
    assert device.solve(np.eye(2), [1.0, 2.0]) == pytest.approx([1.0, 2.0], abs=1e-3)
    polls = device.last_run["polls"]
    assert polls >= 2 and pauses == [0.002] * (polls - 1)  # none after the last poll
    from tiersolve.host.pcie import PcieTransport

    assert PcieTransport.poll_interval > 0


def requests(device):
    return device.transport.statistics["requests"]


@pytest.mark.parametrize("call, error, match", [
    (lambda d: d.solve(np.ones((3, 4)), np.ones(3)), ValueError, "square"),
    (lambda d: d.solve(np.eye(3), np.ones(4)), ValueError, "rows"),
    (lambda d: d.solve(np.eye(9), np.ones(9)), ValueError, "n_max"),
    (lambda d: d.solve(np.eye(3), np.ones((3, 3))), ValueError, "k_max"),
    (lambda d: d.solve(np.eye(3) * np.nan, np.ones(3)), ValueError, "non-finite"),
    (lambda d: d.solve(np.eye(3), [1.0, np.inf, 0.0]), ValueError, "non-finite"),
    (lambda d: d.solve([[1.0, 2.0], [0.0, 1.0]], np.ones(2)), ValueError, "symmetric"),
    (lambda d: d.solve(np.eye(2, dtype=complex), np.ones(2)), TypeError, "real"),
    (lambda d: d.solve(np.eye(3), np.ones((3, 0))), ValueError, "empty"),
    (lambda d: d.fit(np.ones((4, 3)), np.ones(5), 0.1), ValueError, "rows"),
    (lambda d: d.fit(np.ones((4, 3)), np.ones(4), -1.0), ValueError, "lam"),
    (lambda d: d.fit(np.ones((4, 3)), np.ones(4), float("nan")), ValueError, "lam"),
    (lambda d: d.fit(np.ones((4, 3)), np.ones(4), "1"), TypeError, "lam"),
    (lambda d: d.fit(np.ones((20, 9)), np.ones(20), 0.1), ValueError, "n_max"),
    # too ill-conditioned for the pivot inverses, even after scaling
    (lambda d: d.solve(np.diag([1.0, 1e-6]), np.ones(2)), Saturated, "pivot"),
    # the solution's range (1e8) cannot be held together with b's
    (lambda d: d.solve(np.diag([1.0, 1e-8]), [1.0, 0.0]), Saturated, "pivot|round to zero"),
    (lambda d: d.solve(np.eye(2, dtype=bool), np.ones(2)), TypeError, "real"),
    # a column of B far below the other: at their common scale it would be all zeros
    (lambda d: d.solve(np.eye(2), [[1.0, 1e-9], [0.5, 2e-9]]), Saturated,
     "column 1 of B .* round to zero"),
    # λ so large that H, scaled to keep HᵀH + λI in range, rounds to zero
    (lambda d: d.fit(np.ones((4, 2)), np.ones(4), 1e12), Saturated,
     r"column 0 of H .*\(λ = 1e\+12\)"),
    (lambda d: d.fit(np.full((4, 2), 1e-30), np.ones(4), 1.0), Saturated, "round to zero"),
    (lambda d: d.fit(np.full((4, 2), 1e-310), np.ones(4), 1.0), Saturated, "round to zero"),
])
def test_bad_input_raises_before_sending(device, call, error, match):
    before = requests(device)
    with pytest.raises(error, match=match):
        call(device)
    assert requests(device) == before


def test_an_underflowed_result_column_raises(device):
    """A result column that comes back all zero where float64 says it holds a unit or more is
    raised, not returned as zeros (the inputs' checks above exclude most such cases before
    anything is sent; this is the last guard)."""
    job = device.plan_solve(np.eye(2), [[1.0, 0.5], [0.5, 0.25]])
    assert job.expected_magnitude is not None and np.all(job.expected_magnitude >= 1)
    result = np.array([[5, 0], [7, 0]])
    with pytest.raises(Saturated, match="column 1 of the solution came back all zero"):
        device._check_result(job, result)
    device._check_result(job, np.array([[5, 1], [7, 0]]))


@pytest.mark.parametrize("url, match", [
    ("sim:/", "malformed"),
    ("tcp://host", "malformed"),
    ("sim://?n_max=abc", "not a valid int"),
    ("sim://?bogus=1", "unknown parameter 'bogus'"),
    ("sim://?n_max=4&n_max=5", "twice"),
    ("sim://somewhere", "no path"),
    ("uart://", "serial device path"),
    ("sim://?n_max=4#x", "fragment"),
    ("sim://?updater_fold=2", r"updater_fold='2' .* not a valid flag \(expected 0 or 1"),
    ("sim://?updater_fold=maybe", "expected 0 or 1"),
    ("sim://?cores=,", "no core named"),
])
def test_malformed_urls(url, match):
    with pytest.raises(ValueError, match=match):
        tiersolve.host.open(url)


def test_parse_url_defaults():
    assert parse_url("sim://") == ("sim", "", {})
    assert parse_url("sim://?format=Q4.10&lanes=1") == \
        ("sim", "", {"fmt": "Q4.10", "lanes": 1})
    assert parse_url("uart:///dev/ttyUSB1?baud=115200")[1:] == \
        ("/dev/ttyUSB1", {"baud_rate": 115200})
    assert parse_url("sim://?updater_fold=1")[2] == {"updater_fold": True}
    # the same on/off words as tiersolve generate -p (gen.registry.flag)
    assert parse_url("sim://?updater_fold=yes")[2] == {"updater_fold": True}
    assert parse_url("sim://?updater_fold=Off")[2] == {"updater_fold": False}
    assert parse_url("sim://?updater_fold=0")[2] == {"updater_fold": False}


class FakeRegisters:
    """A transport over a dict of words (for identity checks without a simulator)."""

    max_burst = 64
    statistics = {}

    def __init__(self, words):
        self.words = words

    def read(self, address, count, *, fixed_address=False):
        return [self.words.get(address + i, 0) for i in range(count)]

    def write(self, address, words, *, fixed_address=False):
        raise AssertionError("nothing may be written")

    def close(self):
        pass


def test_incompatible_devices_are_refused():
    good = {regmap.address("MAGIC"): regmap.MAGIC, regmap.address("VERSION"): regmap.VERSION,
            regmap.address("LAYOUT"): regmap.LAYOUT_ID, regmap.address("CORES"): 1,
            regmap.address("N_MAX"): 4, regmap.address("K_MAX"): 1,
            regmap.address("FORMAT"): regmap.encode_fields("FORMAT", int_bits=6, frac_bits=12),
            regmap.address("INVERSE_FORMAT"): regmap.encode_fields(
                "INVERSE_FORMAT", int_bits=6, frac_bits=12)}
    assert Device(FakeRegisters(good)).info().n_max == 4
    for key, value, match in (("MAGIC", 0x12345678, "not a tiersolve device"),
                              ("LAYOUT", regmap.LAYOUT_ID ^ 1, "layout"),
                              ("VERSION", regmap.VERSION + 1, "version"),
                              ("CORES", 2, "no Cholesky core"),
                              ("FORMAT", 0, "unusable format")):
        with pytest.raises(IncompatibleDevice, match=match):
            Device(FakeRegisters({**good, regmap.address(key): value}))


class SilentPort:
    """A byte port whose device never answers."""

    def __init__(self):
        self.sent = 0

    def write(self, data):
        self.sent += len(data)

    def read(self, size=1):
        return b""


def test_silent_link_raises_device_timeout():
    port = SilentPort()
    transport = FramedTransport(port, timeout=0.01, retries=2)
    with pytest.raises(DeviceTimeout, match="no intact reply"):
        Device(transport)
    assert port.sent > 0


def test_cli_info_solve_fit(tmp_path, capsys):
    url = "sim://?n_max=4&k_max=1&lanes=1"
    assert main(["info", "--regmap"]) == 0
    assert '"RESULT_COUNT"' in capsys.readouterr().out
    rng = np.random.default_rng(9)
    A = spd(rng, 3)
    b = rng.normal(size=3)
    np.save(tmp_path / "A.npy", A)
    np.savetxt(tmp_path / "b.csv", b, delimiter=",")
    assert main(["solve", "--device", url, str(tmp_path / "A.npy"), str(tmp_path / "b.csv"),
                 "-o", str(tmp_path / "x.csv")]) == 0
    x = np.loadtxt(tmp_path / "x.csv", delimiter=",")
    assert np.allclose(x, np.linalg.solve(A, b), atol=0.01)
    assert main(["solve", "--device", "sim://?bogus=1", "a.npy", "b.npy"]) == 2
    assert "unknown parameter" in capsys.readouterr().err
    assert main(["fit", "--device", url, str(tmp_path / "A.npy"), str(tmp_path / "b.csv"),
                 "--lam", "-1"]) == 2
    assert "lam" in capsys.readouterr().err


# -- the incremental-update core (Device.reset(lam=...), update, downdate, predict, weights) -----

UPDATER_URL = "sim://?n_max=4&k_max=2&lanes=1&format=Q6.12&cores=cholesky,updater"


@pytest.fixture(scope="module")
def updater_device():
    with tiersolve.host.open(UPDATER_URL) as dev:
        yield dev


def check_head_session(device, rng, n, k, rows):
    """Updates (one with forgetting), a downdate, a refused downdate, weights, predict: every
    integer the device holds equals the model fed the same integers; W is within the model's
    ridge_error_bound of the float64 ridge solution."""
    from tiersolve.gen.qr_model import ridge_error_bound

    H = rng.uniform(-1, 1, size=(rows, n))
    T = H @ rng.uniform(-1, 1, size=(n, k)) + 0.05 * rng.normal(size=(rows, k))
    lam = 0.25
    device.reset(lam, n=n, k=k, feature_bound=1.0, target_bound=float(np.max(np.abs(T))),
                 capacity=rows)
    model = head_model(device)
    head = device.head
    h_int, t_int = head.quantise_rows(H, T)
    device.update(H[:-1], T[:-1])
    device.update(H[-1], T[-1], forget=0.95)
    for index, (h, t) in enumerate(zip(h_int, t_int, strict=True)):
        model.update(h, t, beta=0.95 if index == rows - 1 else 1.0)
    assert np.array_equal(device_ints(device, regmap.UpdaterSelect.R, n), model.R)
    assert np.array_equal(device_ints(device, regmap.UpdaterSelect.Z, k), model.Z)

    # a row never folded in, far larger than the data: refused, R and Z untouched
    R_before, Z_before = device.read_state()
    with pytest.raises(DowndateRefused, match="unchanged"):
        device.downdate(np.full(n, 1.0), np.full(k, head.target_bound))
    R_after, Z_after = device.read_state()
    assert np.array_equal(R_before, R_after) and np.array_equal(Z_before, Z_after)
    h_big, t_big = head.quantise_rows(np.full(n, 1.0), np.full(k, head.target_bound))
    assert model.downdate(h_big[0], t_big[0]).refused

    device.downdate(H[0], T[0])
    assert not model.downdate(h_int[0], t_int[0]).refused
    W = device.weights()
    W_int = model.solve()
    scale = head.h_exponent - head.t_exponent - head.config.fmt.frac_bits
    assert np.array_equal(W, np.ldexp(W_int.astype(float), scale))
    y = device.predict(H[:2])
    for row, h in enumerate(h_int[:2]):
        assert np.array_equal(y[row], np.ldexp(model.predict(h).astype(float),
                                               -head.t_exponent - head.config.fmt.frac_bits))
    assert not model.saturated
    # accuracy, on the rows 1..rows-2 at full weight (no forgetting): refit without it
    device.reset(lam, n=n, k=k, feature_bound=1.0, target_bound=head.target_bound,
                 capacity=rows)
    device.update(H, T)
    W = device.weights()
    R, _ = device.read_state()
    Hq = np.ldexp(h_int.astype(float), -head.h_exponent - head.config.fmt.frac_bits)
    Tq = np.ldexp(t_int.astype(float), -head.t_exponent - head.config.fmt.frac_bits)
    # the bound is stated for the scaled problem the core saw
    s_h, s_t = 2.0 ** head.h_exponent, 2.0 ** head.t_exponent
    bound = ridge_error_bound(head.config, Hq * s_h, Tq * s_t, lam * s_h ** 2, R * s_h,
                              W * s_t / s_h)
    exact = np.linalg.solve(Hq.T @ Hq + lam * np.eye(n), Hq.T @ Tq)
    assert np.linalg.norm((W - exact) * s_t / s_h) <= bound


def test_updater_session_is_bit_exact(updater_device):
    info = updater_device.info()
    assert info.cores == ("cholesky", "updater") and info.updater_rotation == "multiplier"
    assert not info.updater_fold    # FOLD is opt-in for a complete design: one UPDATE a row
    ops = record_updater_ops(updater_device)
    try:
        check_head_session(updater_device, np.random.default_rng(21), 3, 2, 6)
    finally:
        del updater_device.updater_command
    assert regmap.UpdaterOp.FOLD not in ops and regmap.UpdaterOp.UPDATE in ops


def test_updater_with_cordic_rotations_folds_rows_bit_exact():
    """``update`` of several rows at ``forget = 1`` goes in FOLD commands (the rows in flight
    together) on a design built with FOLD, here with CORDIC rotations and two units; the
    session's integers are the model's."""
    url = UPDATER_URL + "&updater_rotation=cordic&updater_units=2&updater_fold=1"
    with tiersolve.host.open(url) as device:
        ops = record_updater_ops(device)
        assert device.info().updater_rotation == "cordic" and device.info().updater_fold
        assert not device.info().updater_fold_downdate   # (multiplier rotations only)
        check_head_session(device, np.random.default_rng(23), 3, 2, 6)
        # the single row with forgetting goes as the rule says (by one cycle a FOLD here)
        single = device.fold_is_quicker(3, 2, 1, device.head.config.forgetting_constant(0.95))
    assert ops.count(regmap.UpdaterOp.FOLD) == 2 + single   # the two multi-row updates
    assert (regmap.UpdaterOp.UPDATE in ops) == (not single)


def test_updater_folds_rows_with_forgetting_bit_exact():
    """``update`` of several rows with ``forget < 1`` on a design built with FOLD goes in one
    FOLD command that carries the forgetting constant: the integers of one UPDATE with
    forgetting per row."""
    from tiersolve.gen.qr import IncrementalUpdater

    n, k, rows = 3, 2, 5
    url = UPDATER_URL + "&updater_units=2&updater_fold=1"
    rng = np.random.default_rng(29)
    H, T = rng.uniform(-1, 1, (rows, n)), rng.uniform(-2, 2, (rows, k))
    with tiersolve.host.open(url) as device:
        calls = record_updater_ops(device, "forgetting")
        device.reset(0.5, n=n, k=k, feature_bound=1.0, target_bound=2.0, capacity=50)
        device.update(H, T, forget=0.9)
        cycles = device.last_run["cycles"]
        head = device.head
        R = device_ints(device, regmap.UpdaterSelect.R, n)
        Z = device_ints(device, regmap.UpdaterSelect.Z, k)
        model = head_model(device)
    b = head.config.forgetting_constant(0.9)
    assert calls[1] == (regmap.UpdaterOp.FOLD, b)
    assert not any(op == regmap.UpdaterOp.UPDATE for op, _ in calls)
    h_int, t_int = head.quantise_rows(H, T)
    for h, t in zip(h_int, t_int, strict=True):
        model.update_with_constant(h, t, b)
    assert np.array_equal(R, model.R) and np.array_equal(Z, model.Z)
    # the rows come over the register bus slower than one value a cycle, so the FOLD takes at
    # least what fold_cycles counts for rows that arrive at full rate
    core = IncrementalUpdater(4, 2, head.config.fmt, units=2, rotation="multiplier")
    core._MustUse__silence = True  # only its cycle formula is used
    assert cycles >= core.fold_cycles(n, k, rows, b)


def test_updater_fold_downdates_all_or_nothing_bit_exact():
    """On a design whose FOLD takes rows out (multiplier rotations), ``downdate`` of several
    rows is one FOLD of downdates: the model's integers (one DOWNDATE per row), in far fewer
    cycles; a call with a row that must be refused takes none out, says so, and leaves R, Z
    exactly as they were; a single row still goes as one DOWNDATE."""
    n, k = 3, 1
    url = UPDATER_URL + "&updater_units=2&updater_fold=1"
    rng = np.random.default_rng(31)
    H, T = rng.uniform(-1, 1, (6, n)), rng.uniform(-1, 1, (6, k))
    with tiersolve.host.open(url) as device:
        assert device.info().updater_fold_downdate
        calls = record_updater_ops(device, "select")
        device.reset(0.5, n=n, k=k, feature_bound=1.0, target_bound=1.0, capacity=20)
        device.update(H, T)
        device.downdate(H[:3], T[:3])
        fold_cycles = device.last_run["cycles"]
        model = head_model(device)
        head = device.head
        h_int, t_int = head.quantise_rows(H, T)
        for h, t in zip(h_int, t_int, strict=True):
            model.update(h, t)
        assert not model.fold_downdate(h_int[:3], t_int[:3]).refused
        assert np.array_equal(device_ints(device, regmap.UpdaterSelect.R, n), model.R)
        assert np.array_equal(device_ints(device, regmap.UpdaterSelect.Z, k), model.Z)
        before = device.read_state()
        big = np.array([[0.0, 0.0, 1.0]])
        with pytest.raises(DowndateRefused, match=r"remove rows 0-2: .*none of rows 0-2 was "
                                                  r"taken out .*as it was before them"):
            device.downdate(np.vstack([H[3:4], big, H[4:5]]), np.vstack([T[3:4], [[1.0]],
                                                                           T[4:5]]))
        for got, expected in zip(device.read_state(), before, strict=True):
            assert np.array_equal(got, expected)
        device.downdate(H[5], T[5])
        single_cycles = device.last_run["cycles"]
    fold = (regmap.UpdaterOp.FOLD, regmap.UpdaterFoldKind.DOWNDATE)
    assert calls.count(fold) == 2 and calls[-1][0] == regmap.UpdaterOp.DOWNDATE
    assert fold_cycles < 3 * single_cycles     # three rows in flight: fewer than 3 one by one


def test_updater_checks_and_errors(updater_device):
    device = updater_device
    with pytest.raises(TypeError, match="needs n and k"):
        device.reset(0.5)
    with pytest.raises(ValueError, match="lam must be finite and > 0"):
        device.reset(0.0, n=2, k=1)
    with pytest.raises(ValueError, match="n = 5 exceeds"):
        device.reset(0.5, n=5, k=1)
    with pytest.raises(Saturated, match="rounds to zero"):
        device.reset(1e-12, n=2, k=1, capacity=1000)
    device.reset(0.5, n=2, k=1, feature_bound=1.0, target_bound=1.0, capacity=4)
    with pytest.raises(ValueError, match="exceeds the feature_bound"):
        device.update([2.0, 0.0], [0.0])
    with pytest.raises(ValueError, match="t must have 1 row"):
        device.update([0.5, 0.0], [0.0, 1.0])
    # a transposed T holds the right number of values in the wrong places: refused
    with pytest.raises(ValueError, match=r"t must have 2 row\(s\) of k = 1 .* not shape \(1, 2\)"):
        device.update([[0.5, 0.0], [0.0, 0.5]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match=r"beta \(the forgetting factor\) must be in"):
        device.update([0.5, 0.0], [0.0], forget=1.5)
    with pytest.raises(TypeError, match=r"forgetting factor\) must be a real number, not 'x'"):
        device.update([0.5, 0.0], [0.0], forget="x")
    # far more rows than the declared capacity: the sticky flag becomes Saturated
    device.reset(0.5, n=2, k=1, feature_bound=1.0, target_bound=1.0, capacity=1)
    with pytest.raises(Saturated, match="sticky"):
        for _ in range(40):
            device.update([1.0, 1.0], [1.0])
    # several rows, the second refused: the first is out, the state is as after it
    device.reset(0.5, n=2, k=1, feature_bound=1.0, target_bound=1.0, capacity=4)
    device.update([[0.5, 0.0], [0.0, 0.5], [0.25, 0.25]], [0.5, -0.5, 0.0])
    device.downdate([0.25, 0.25], [0.0])
    after_first = device.read_state()
    device.update([0.25, 0.25], [0.0])
    with pytest.raises(DowndateRefused, match=r"remove row 1: .*row 0 of this call was taken "
                                              r"out, and the state is as it was after it"):
        device.downdate([[0.25, 0.25], [1.0, 1.0]], [0.0, 1.0])
    for got, expected in zip(device.read_state(), after_first, strict=True):
        assert np.array_equal(got, expected)
    # a reset recovers; load_state puts a saved state back
    device.reset(0.5, n=2, k=1, capacity=4)
    device.update([[0.5, -0.25], [0.125, 0.75]], [0.5, -0.5])
    R, Z = device.read_state()
    W = device.weights()
    device.reset(0.5, n=2, k=1, capacity=4)
    device.load_state(R, Z)
    assert np.array_equal(device.read_state()[0], R)
    assert np.array_equal(device.weights(), W)
    device.reset()
    with pytest.raises(DeviceError, match="not initialised"):
        device.weights()


def test_fold_without_the_updater_is_refused():
    """``updater_fold=1`` on a design without the updater is an error (as ``generate --board``
    says), not a key silently ignored."""
    with pytest.raises(ValueError, match="it needs the updater"):
        tiersolve.host.open("sim://?n_max=4&k_max=1&lanes=1&updater_fold=1")


def test_cli_refuses_an_output_it_cannot_write_before_the_job(tmp_path, capsys, monkeypatch):
    import tiersolve.host.device as device_module

    def no_device(url):
        raise AssertionError("the output should have been refused before opening the device")

    monkeypatch.setattr(device_module, "_open_for_cli", no_device)
    np.save(tmp_path / "A.npy", np.eye(2))
    np.save(tmp_path / "B.npy", np.ones(2))
    assert main(["solve", str(tmp_path / "A.npy"), str(tmp_path / "B.npy"),
                 "-o", str(tmp_path / "out.txt")]) == 2
    assert "the output must be a .npy or .csv file" in capsys.readouterr().err


def test_all_ones_identity_says_the_device_does_not_answer(tmp_path):
    """A PCIe device that does not answer reads as all ones; the error says so."""
    bar = tmp_path / "bar.bin"
    bar.write_bytes(b"\xff" * 4096)
    with pytest.raises(IncompatibleDevice, match="magic 0xffffffff.*does not answer"):
        tiersolve.host.open(f"pcie://{bar}")


def test_a_uart_url_with_a_baud_of_zero_is_refused():
    """pyserial takes 0 (on a real port: hang up); the URL's baud must be positive."""
    for baud in ("0", "-5"):
        with pytest.raises(ValueError, match="baud must be a positive whole number"):
            tiersolve.host.open(f"uart:///dev/null?baud={baud}")


def test_updater_absent_is_reported(device):
    with pytest.raises(DeviceError, match="no incremental-update core"):
        device.reset(0.5, n=2, k=1)


@pytest.mark.verilator
def test_updater_over_vsim_is_bit_exact(verilator):
    """A bigger head (n = 12, k = 2, 40 rows) in Verilator: the same checks as over sim://."""
    url = "vsim://?n_max=16&k_max=2&lanes=2&format=Q6.12&cores=cholesky,updater"
    with tiersolve.host.open(url) as device:
        check_head_session(device, np.random.default_rng(22), 12, 2, 40)


def test_cli_update(tmp_path, capsys):
    """`tiersolve update` folds rows in, takes one out and writes W; equal to the Device API."""
    rng = np.random.default_rng(5)
    H = rng.uniform(-1, 1, size=(5, 2))
    T = H @ np.array([0.5, -0.25])
    np.save(tmp_path / "H.npy", H)
    np.savetxt(tmp_path / "T.csv", T, delimiter=",")
    np.save(tmp_path / "Hd.npy", H[:1])
    np.save(tmp_path / "Td.npy", T[:1])
    args = ["update", "--device", UPDATER_URL, str(tmp_path / "H.npy"), str(tmp_path / "T.csv"),
            "--lam", "0.5", "--downdate", str(tmp_path / "Hd.npy"), str(tmp_path / "Td.npy"),
            "-o", str(tmp_path / "W.npy")]
    assert main(args) == 0
    W = np.load(tmp_path / "W.npy")
    with tiersolve.host.open(UPDATER_URL) as device:
        device.reset(0.5, n=2, k=1, feature_bound=np.max(np.abs(H)),
                     target_bound=np.max(np.abs(T)), capacity=5)
        device.update(H, T)
        device.downdate(H[:1], T[:1])
        assert np.array_equal(W, device.weights()[:, 0])
    assert np.allclose(W, np.linalg.solve(H[1:].T @ H[1:] + 0.5 * np.eye(2), H[1:].T @ T[1:]),
                       atol=0.01)
    assert main(["update", "--device", "sim://", str(tmp_path / "H.npy"),
                 str(tmp_path / "T.csv")]) == 2
    assert "no incremental-update core" in capsys.readouterr().err
    # shapes that hold the right number of values in the wrong places, NaN, capacity 0:
    # one-line errors before anything runs
    np.save(tmp_path / "Tt.npy", T[None, :])                  # (1, 5): transposed
    np.save(tmp_path / "Hnan.npy", np.where(H > 0.9, np.nan, H))
    np.save(tmp_path / "Tbad.npy", np.ones((1, 5)))
    base = ["update", "--device", UPDATER_URL]
    for extra, message in (
            ([str(tmp_path / "H.npy"), str(tmp_path / "Tt.npy")],
             r"T must have 5 row\(s\) of k = 5 value\(s\), shape \(5, 5\), not shape \(1, 5\)"),
            ([str(tmp_path / "H.npy"), str(tmp_path / "T.csv"), "--downdate",
              str(tmp_path / "H.npy"), str(tmp_path / "Tbad.npy")],
             r"TD must have 5 row\(s\) of k = 1 value\(s\), shape \(5, 1\) or \(5,\), "
             r"not shape \(1, 5\)"),
            ([str(tmp_path / "Hnan.npy"), str(tmp_path / "T.csv")],
             r"H holds a non-finite value nan at index \(\d+, \d+\)"),
            ([str(tmp_path / "H.npy"), str(tmp_path / "T.csv"), "--capacity", "0"],
             "capacity must be at least 1")):
        assert main(base + extra) == 2
        assert re.search(message, capsys.readouterr().err)


def test_a_refused_url_leaves_no_unused_design_warning():
    """A URL whose design parameters are refused raises, and nothing it had built warns
    "created but never used" afterwards (it did, twice, after the error). In a fresh
    interpreter, as a user's script: Amaranth warns only once something was elaborated, and
    only when the objects are collected."""
    script = (
        "import gc\n"
        "import tiersolve.host as ts\n"
        "with ts.open('sim://?n_max=4&k_max=1&lanes=1'):\n"
        "    pass\n"
        "try:\n"
        "    ts.open('sim://?n_max=4&k_max=1&lanes=3')\n"
        "except ValueError as error:\n"
        "    print('refused:', error)\n"
        "gc.collect()\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, check=True)
    assert "refused: lanes must be a power of two" in result.stdout
    assert "never used" not in result.stderr, result.stderr
