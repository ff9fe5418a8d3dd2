"""Tests of the Givens QR / incremental-update models (:mod:`tiersolve.gen.qr_model`).

Accuracy against float64 ridge uses :func:`~tiersolve.gen.qr_model.ridge_error_bound`, a bound
derived from the format (rotation error bounds per coordinate, the number of rotations, and the
perturbation theory of least squares); the long-run test uses the same per-rotation bounds with
the decay of old errors by ``sqrt(beta)`` per update.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.qr_model import (
    ROTATIONS,
    IncrementalUpdaterModel,
    QRConfig,
    QREnginesModel,
    QRSolverModel,
    apply_rotation,
    back_substitution,
    fold_row,
    generate_rotation,
    normalise,
    predict,
    ridge_error_bound,
    round_nearest_up,
    scale_row,
)


def conditioned(rng, m, n, cond, scale=0.5):
    """``m x n`` matrix with singular values from ``scale`` down to ``scale / cond``."""
    U, _ = np.linalg.qr(rng.standard_normal((m, n)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return U @ np.diag(np.logspace(0, -np.log10(cond), n)) @ V.T * scale


def test_round_nearest_up_and_normalise():
    assert [round_nearest_up(v, 1) for v in (-3, -2, -1, 0, 1, 2, 3)] == [-1, -1, 0, 0, 1, 1, 2]
    assert round_nearest_up(5, 0) == 5
    for p in (1, 2, 3, 255, 1 << 20, (1 << 35) - 1):
        q, e = normalise(p, 20)
        assert q.bit_length() in (19, 20)
        assert (p >> (2 * e) if e >= 0 else p << (-2 * e)) == q


def test_config_validation():
    with pytest.raises(ValueError, match="rotation"):
        QRConfig(FixedFormat(4, 12), "givens")
    with pytest.raises(ValueError, match="wide"):
        QRConfig(FixedFormat(10, 20))
    with pytest.raises(TypeError, match="FixedFormat"):
        QRConfig(18)
    with pytest.raises(ValueError, match="beta"):
        QRConfig("Q4.12").forgetting_constant(1.5)
    with pytest.raises(ValueError, match="n must"):
        QRSolverModel(QRConfig("Q4.12"), 0, 1)


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_rotation_zeroes_and_preserves_length(rotation):
    config = QRConfig(FixedFormat(4, 14), rotation)
    fmt = config.fmt
    rng = np.random.default_rng(5)
    for _ in range(50):
        a, b = fmt.quantise(rng.uniform(-2, 2, 2)).values
        rot = generate_rotation(config, a, b)
        radius = math.hypot(a, b) * fmt.resolution
        assert abs(rot.r * fmt.resolution - radius) <= config.pivot_error_bound(radius)


@pytest.mark.parametrize("rotation", ROTATIONS)
@pytest.mark.parametrize("cond", [1.0, 1e2, 1e4, 1e6])
def test_accuracy_against_float64_ridge(rotation, cond):
    """``‖W - W_ridge‖ <= ridge_error_bound`` (derived from the format) for cond(H) 1..1e6.

    Q6.22 data, n = 6, k = 2, m = 40 rows, λ = 2**-30; the reference is
    ``numpy.linalg.lstsq`` on ``[H; √λ I] W = [T; 0]`` with the quantised data.
    """
    def fold(model, Hq, Tq):
        model.fold_rows(Hq, Tq)

    check_against_ridge(QRConfig(FixedFormat(6, 22), rotation), cond,
                        int(math.log10(cond)) + 10, QRSolverModel, fold)


def check_against_ridge(config, cond, seed, make, fold, merge_rows=0, **options):
    """Q6.22 data, n = 6, k = 2, m = 40 rows of cond(H) = ``cond``, λ = 2**-30: the model
    ``make(config, n, k, lam_sqrt, **options)`` after ``fold(model, Hq, Tq)`` solves within
    :func:`ridge_error_bound` (``merge_rows·n`` more rows folded) of float64 ridge, and the
    bound is not vacuous for well-conditioned problems."""
    fmt = config.fmt
    rng = np.random.default_rng(seed)
    n, k, m = 6, 2, 40
    H = conditioned(rng, m, n, cond)
    T = H @ rng.standard_normal((n, k)) * 0.5 + 1e-3 * rng.standard_normal((m, k))
    Hq, Tq = fmt.quantise(H).values, fmt.quantise(T).values
    lam_sqrt = fmt.const(2.0**-15)
    model = make(config, n, k, lam_sqrt, **options)
    fold(model, Hq, Tq)
    W = fmt.dequantise(model.solve())
    assert not model.saturated
    lam = (lam_sqrt * fmt.resolution) ** 2
    Hr, Tr = fmt.dequantise(Hq), fmt.dequantise(Tq)
    A = np.vstack([Hr, math.sqrt(lam) * np.eye(n)])
    B = np.vstack([Tr, np.zeros((n, k))])
    W_ridge = np.linalg.lstsq(A, B, rcond=None)[0]
    bound = ridge_error_bound(config, Hr, Tr, lam, fmt.dequantise(model.R), W,
                              rows=m + merge_rows * n)
    assert np.linalg.norm(W - W_ridge) <= bound
    if cond <= 1e2:
        assert bound < np.linalg.norm(W_ridge)


@pytest.mark.parametrize("rotation", ROTATIONS)
@pytest.mark.parametrize("cond", [1.0, 1e2, 1e4, 1e6])
@pytest.mark.parametrize("engines", [2, 4])
def test_engines_accuracy_against_float64_ridge(rotation, cond, engines):
    """Rows spread over engines and merged (:class:`QREnginesModel`) stay within the same
    bound, the merge's rows counted among the rows folded (``m + (engines - 1)·n``: every
    rotation, the merge's too, is an exact one up to its error)."""
    def fold(model, Hq, Tq):
        model.fold_rows(Hq[:25], Tq[:25])
        model.fold_rows(Hq[25:], Tq[25:])       # a second FOLD into the same factors

    check_against_ridge(QRConfig(FixedFormat(6, 22), rotation), cond,
                        int(math.log10(cond)) + 20, QREnginesModel, fold,
                        merge_rows=engines - 1, engines=engines)


def long_run(rotation, updates, beta=0.99, seed=2):
    """Run ``updates`` updates with forgetting; return the worst ratio of the Gram error to its
    bound.

    Bound: each update's backward error (rotations, pivots, the ``sqrt(beta)`` scaling's
    rounding of each entry) is at most ``δ``; older errors are scaled by ``sqrt(beta)`` per
    update, so the accumulated backward error stays below ``Δ = δ / (1 - sqrt(beta))``. The
    computed ``[R | Z]`` is then the exact factor of data within ``Δ`` (Frobenius) of the exact
    weighted data ``D`` (whose Gram ``DᵀD`` is tracked in float64), so
    ``‖Rᵀ[R | Z] - Gram‖_F <= 2Δ‖D‖₂ + Δ²``.
    """
    config = QRConfig(FixedFormat(4, 16), rotation)
    fmt = config.fmt
    n, k = 4, 1
    rng = np.random.default_rng(seed)
    lam_sqrt = fmt.const(0.25)
    model = IncrementalUpdaterModel(config, n, k, lam_sqrt)
    gram = np.zeros((n + k, n + k))
    gram[:n, :n] = (lam_sqrt * fmt.resolution) ** 2 * np.eye(n)
    max_value = 0.5
    rho = math.sqrt((lam_sqrt * fmt.resolution) ** 2 + (n + k) * max_value**2 / (1 - beta))
    per_row = n * (n - 1) // 2 + n * k
    delta = (math.sqrt(2 * per_row) * float(config.rotation_error_bound(rho))
             + math.sqrt(n) * float(config.pivot_error_bound(rho))
             + 0.5 * fmt.resolution * math.sqrt(n * (n + 1) / 2 + n * k))
    accumulated = delta / (1 - math.sqrt(beta))
    b = config.forgetting_constant(beta)
    beta_exact = (b / 2**config.forgetting_frac_bits) ** 2
    worst = 0.0
    for step in range(updates):
        v = fmt.quantise(rng.uniform(-max_value, max_value, n + k)).values
        model.update_with_constant(v[:n], v[n:], b)
        vr = fmt.dequantise(v)
        gram = beta_exact * gram + np.outer(vr, vr)
        if step % 97 == 0 or step == updates - 1:
            R = fmt.dequantise(model.R)
            A = fmt.dequantise(model.A)
            error = np.linalg.norm(R.T @ A - gram[:n, :])
            norm_d = math.sqrt(np.linalg.norm(gram, 2))
            bound = 2 * accumulated * norm_d + accumulated**2
            worst = max(worst, error / bound)
    assert not model.saturated
    assert np.all(np.abs(fmt.dequantise(model.R)) <= rho)
    return worst


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_long_run_forgetting_short(rotation):
    updates = 2000 if rotation == "multiplier" else 300
    assert long_run(rotation, updates) <= 1.0


@pytest.mark.slow
def test_long_run_forgetting_100k():
    """100 000 updates with beta = 0.99 stay within the bound (no drift)."""
    assert long_run("multiplier", 100_000) <= 1.0


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_downdate_back_to_lambda(rotation):
    """Updating m rows and downdating them all (in reverse) returns R to √λ·I and Z to 0
    within ``m·(n + k)·(c + s)_max`` LSBs, ``(c + s)_max = sqrt(1 + ‖v‖²/λ) + ‖v‖/√λ`` the
    largest hyperbolic rotation norm (each fold rounds each entry to within an LSB of its
    exact rotation, and later hyperbolic rotations amplify by at most their norm)."""
    config = QRConfig(FixedFormat(4, 14), rotation)
    fmt = config.fmt
    n, k, m = 4, 1, 20
    rng = np.random.default_rng(3)
    lam_sqrt = fmt.const(1.0)
    model = IncrementalUpdaterModel(config, n, k, lam_sqrt)
    V = fmt.quantise(rng.uniform(-0.5, 0.5, (m, n + k))).values
    for v in V:
        model.update(v[:n], v[n:])
    for v in V[::-1]:
        assert not model.downdate(v[:n], v[n:]).refused
    norm_v = math.sqrt(n + k) * 0.5
    hyperbolic_norm = math.sqrt(1 + norm_v**2) + norm_v
    allowed = m * (n + k) * hyperbolic_norm
    target = np.hstack([lam_sqrt * np.eye(n, dtype=np.int64), np.zeros((n, k), np.int64)])
    assert np.abs(model.A - target).max() <= allowed
    assert np.abs(model.A - target).max() <= 8  # what it actually is, as a regression guard


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_refused_downdate_leaves_state(rotation):
    config = QRConfig(FixedFormat(4, 14), rotation)
    fmt = config.fmt
    model = IncrementalUpdaterModel(config, 3, 1, fmt.const(1.0))
    model.update(fmt.quantise([0.5, 0.25, -0.5]).values, fmt.quantise([0.25]).values)
    before = model.A.copy()
    # removing a row longer than anything folded in would make R indefinite
    result = model.downdate(fmt.quantise([0.1, 0.2, 3.0]).values, [0])
    assert result.refused and result.refused_index == 2
    assert np.array_equal(model.A, before)
    result = model.downdate(fmt.quantise([2.0, 0, 0]).values, [0])
    assert result.refused and result.refused_index == 0
    assert np.array_equal(model.A, before)


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_predict_solve_load(rotation):
    config = QRConfig(FixedFormat(4, 14), rotation)
    fmt = config.fmt
    n, k = 3, 2
    rng = np.random.default_rng(9)
    model = IncrementalUpdaterModel(config, n, k, fmt.const(0.125))
    H = rng.uniform(-0.5, 0.5, (30, n))
    W_true = rng.uniform(-1, 1, (n, k))
    for h, t in zip(H, H @ W_true, strict=True):
        model.update(fmt.quantise(h).values, fmt.quantise(t).values)
    W = fmt.dequantise(model.solve())
    assert np.abs(W - W_true).max() < 0.01  # the ridge bias of λ = 1/64 over 30 rows
    h = fmt.quantise([0.25, -0.5, 0.125]).values
    y = fmt.dequantise(model.predict(h))
    assert np.allclose(y, fmt.dequantise(h) @ W, atol=2 * fmt.resolution * n)
    # resume from a loaded state: same R, Z give the same W
    other = IncrementalUpdaterModel(config, n, k, 0)
    other.load(R=model.R, Z=model.Z)
    assert np.array_equal(other.solve(), model.W)


def test_public_helpers_check_their_integers():
    # the helpers are public: a float was truncated by int()/astype and an out-of-range value
    # folded in as if the core could hold it
    config = QRConfig(FixedFormat(4, 12), "multiplier")
    fmt = config.fmt
    model = QRSolverModel(config, 2, 1, fmt.const(0.5))
    A = model.A
    with pytest.raises(TypeError, match="row must be integers"):
        fold_row(config, A, [0.5, 1.7, 0.0])
    with pytest.raises(ValueError, match="row out of range"):
        fold_row(config, A, [fmt.max_int + 1, 0, 0])
    with pytest.raises(TypeError, match="A must be integers"):
        fold_row(config, A.astype(float), [1, 2, 3])
    with pytest.raises(ValueError, match="2 dimensions"):
        fold_row(config, A[0], [1, 2, 3])
    with pytest.raises(ValueError, match="at least n"):
        fold_row(config, A[:, :1], [1])
    with pytest.raises(ValueError, match="forgetting constant"):
        fold_row(config, A, [1, 2, 3], forgetting=0)
    with pytest.raises(TypeError, match="forgetting must be an integer"):
        fold_row(config, A, [1, 2, 3], forgetting=4096.5)
    with pytest.raises(TypeError, match="a and b must be integers"):
        generate_rotation(config, 100.9, 3)
    with pytest.raises(ValueError, match="a and b out of range"):
        generate_rotation(config, 100, fmt.min_int - 1)
    rot = generate_rotation(config, 100, 3)
    with pytest.raises(TypeError, match="upper must be integers"):
        apply_rotation(config, rot, [1.5], [2])
    with pytest.raises(ValueError, match="1 and 2 entries"):
        apply_rotation(config, rot, [1], [2, 3])
    with pytest.raises(TypeError, match="Z must be integers"):
        back_substitution(config, model.R, model.Z.astype(float))
    with pytest.raises(ValueError, match="R must be 2 x 2"):
        back_substitution(config, model.R[:1], model.Z)
    with pytest.raises(ValueError, match="h has 3 entries"):
        predict(config, np.zeros((2, 1), dtype=np.int64), [1, 2, 3])
    with pytest.raises(TypeError, match="h must be integers"):
        predict(config, np.zeros((2, 1), dtype=np.int64), [0.5, 1])
    with pytest.raises(TypeError, match="values must be integers"):
        scale_row([1.5, 2], 4096, 12)
    with pytest.raises(TypeError, match="forgetting must be an integer"):
        IncrementalUpdaterModel(config, 2, 1, 0).update_with_constant([1, 2], [3], 4000.7)
    # what the checks let through gives the integers it gave before
    result = fold_row(config, A, np.array([5, -7, 9], dtype=np.int32))
    assert np.array_equal(result.A, fold_row(config, A, [5, -7, 9]).A)
    assert scale_row(np.array([3, -3]), 2048, 12) == [2, -1]


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_fold_downdate_is_downdates_all_or_nothing(rotation):
    """fold_downdate gives the integers of one downdate per row in order; if one row would be
    refused, nothing changes (A, the saturated flag, the rotation count) and the result names
    the row and its pivot."""
    config = QRConfig(FixedFormat(4, 14), rotation)
    fmt = config.fmt
    n, k = 4, 2
    rng = np.random.default_rng(8)
    V = fmt.quantise(rng.uniform(-0.5, 0.5, (9, n + k))).values
    batch = IncrementalUpdaterModel(config, n, k, fmt.const(0.5))
    for v in V:
        batch.update(v[:n], v[n:])
    single = IncrementalUpdaterModel(config, n, k, fmt.const(0.5))
    single.A, single.rotations = batch.A.copy(), batch.rotations
    result = batch.fold_downdate(V[:5, :n], V[:5, n:])
    for v in V[:5]:
        assert not single.downdate(v[:n], v[n:]).refused
    assert not result.refused
    assert np.array_equal(batch.A, single.A) and np.array_equal(result.A, batch.A)
    assert batch.rotations == single.rotations and result.rotations == 5 * (n * (n + 1) // 2
                                                                            + n * k)
    before, rotations = batch.A.copy(), batch.rotations
    stranger = fmt.quantise([0.1, 0.2, 0.3, 3.0, 0, 0]).values
    rows = np.vstack([V[5], stranger, V[6]])
    result = batch.fold_downdate(rows[:, :n], rows[:, n:])
    assert result.refused and result.refused_row == 1 and result.refused_index == 3
    assert np.array_equal(batch.A, before) and batch.rotations == rotations
    assert not batch.saturated
    with pytest.raises(ValueError, match="rows"):
        batch.fold_downdate(V[:2, :n], V[:3, n:])
    with pytest.raises(TypeError, match="integers"):
        batch.fold_downdate(V[:2, :n] * 0.5, V[:2, n:])
