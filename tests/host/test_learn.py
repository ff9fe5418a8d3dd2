"""Tests of the two-tier estimators and their solver backends (tiersolve.host.learn).

Bounds used here are the derived ones of the modules under test (stated where they are used);
none is a tolerance picked to make a test pass.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks
from tiersolve.gen.qr_model import QRConfig, fold_row, ridge_error_bound
from tiersolve.host.learn import (
    ACTIVATIONS,
    DowndateRefused,
    FixedBackend,
    Float64Backend,
    TwoTierClassifier,
    TwoTierRegressor,
    _fold_row_multiplier,
    ridge_perturbation_bound,
    training_macs,
)

#: float64 unit roundoff
U64 = 2.0**-53


def _ridge(H, T, lam):
    """Reference: least squares on the augmented system [H; √λ I] W = [T; 0]."""
    n = H.shape[1]
    A = np.vstack([H, math.sqrt(lam) * np.eye(n)])
    B = np.vstack([T, np.zeros((n, T.shape[1]))])
    return np.linalg.lstsq(A, B, rcond=None)[0]


def _float64_bound(H, lam, W):
    """Backward-stable QR / Cholesky in float64: ‖ΔW‖_F <= γ·cond([H; √λI])²·‖W‖_F with
    γ = 10·(m + n)·n·u (Higham, Householder QR, the ``γ_{cmn}`` constant with c = 10; squared
    condition because both the Cholesky path and the residual term of least squares can see
    it)."""
    m, n = H.shape
    A = np.vstack([H, math.sqrt(lam) * np.eye(n)])
    cond = np.linalg.cond(A)
    return 10 * (m + n) * n * U64 * cond**2 * np.linalg.norm(W)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    return X[order], y[order]


# -- scikit-learn's own checks ------------------------------------------------------------------


@parametrize_with_checks([
    TwoTierClassifier(hidden_layer_sizes=(8,), random_state=0),
    TwoTierRegressor(hidden_layer_sizes=(8,), random_state=0),
    TwoTierClassifier(hidden_layer_sizes=(8,), random_state=0, backend="fixed"),
    TwoTierRegressor(hidden_layer_sizes=(8,), random_state=0, backend="fixed"),
])
def test_sklearn_checks(estimator, check):
    """All of scikit-learn's estimator checks. The only ones skipped (by scikit-learn itself)
    are the array-API check (needs SCIPY_ARRAY_API) and the pandas one (pandas is not a
    dependency)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check(estimator)


# -- float64 backend ----------------------------------------------------------------------------


def test_float64_head_equals_ridge_and_downdates_back():
    rng = np.random.default_rng(1)
    H, T, lam = rng.standard_normal((40, 6)), rng.standard_normal((40, 2)), 0.5
    backend = Float64Backend()
    reference = _ridge(H, T, lam)
    bound = _float64_bound(H, lam, reference)
    assert np.linalg.norm(backend.ridge_solve(H, T, lam) - reference) <= bound
    state = backend.qr_init(6, 2, lam)
    for start in range(0, 40, 7):  # mini-batches of 7, then 5
        backend.qr_update(state, H[start:start + 7], T[start:start + 7])
    assert np.linalg.norm(backend.qr_solve(state) - reference) <= bound
    # downdating the first 30 rows leaves the ridge solution of the last 10
    backend.qr_downdate(state, H[:30], T[:30])
    later = _ridge(H[30:], T[30:], lam)
    assert np.linalg.norm(backend.qr_solve(state) - later) <= 1e3 * _float64_bound(
        H[30:], lam, later)  # downdating amplifies by cond(R_old)/cond(R_new) <= 1e3 here
    backend.qr_downdate(state, H[30:], T[30:])
    np.testing.assert_allclose(state.R, math.sqrt(lam) * np.eye(6), atol=1e-9)


def test_float64_forgetting_per_sample_equals_weighted_ridge():
    rng = np.random.default_rng(2)
    H, T, lam, beta = rng.standard_normal((30, 5)), rng.standard_normal((30, 1)), 1.0, 0.9
    backend = Float64Backend()
    state = backend.qr_init(5, 1, lam)
    backend.qr_update(state, H[:10], T[:10], beta)
    for h, t in zip(H[10:], T[10:], strict=True):
        backend.qr_update(state, h[None], t[None], beta)
    # weighted ridge: sample i weighted beta**(29 - i), the prior lam by beta**30
    weights = np.sqrt(beta ** np.arange(29, -1, -1.0))
    reference = _ridge(weights[:, None] * H, weights[:, None] * T, lam * beta**30)
    assert np.linalg.norm(backend.qr_solve(state) - reference) <= _float64_bound(
        weights[:, None] * H, lam * beta**30, reference)


def test_float64_refused_downdate_leaves_state():
    backend = Float64Backend()
    state = backend.qr_init(3, 1, 1.0)
    backend.qr_update(state, np.ones((1, 3)), np.ones((1, 1)))
    R, Z = state.R.copy(), state.Z.copy()
    with pytest.raises(DowndateRefused):
        backend.qr_downdate(state, 3 * np.ones((1, 3)), np.ones((1, 1)))
    assert (state.R == R).all() and (state.Z == Z).all()


# -- fixed backend ------------------------------------------------------------------------------


def test_fixed_refused_downdate_leaves_state_and_weight():
    """A downdate call whose second row is refused leaves R, Z and the head's weight (rows
    counted in) as they were: the first row's removal is undone with the rest (the weight
    dropped by one for it before)."""
    backend = FixedBackend()
    state = backend.qr_init(3, 1, 1.0, capacity=10, feature_bound=1.0, target_bound=1.0)
    rng = np.random.default_rng(2)
    H = rng.uniform(-0.5, 0.5, (4, 3))
    backend.qr_update(state, H, np.ones((4, 1)) * 0.25)
    A, weight = state.model.A.copy(), state.weight
    with pytest.raises(DowndateRefused):
        backend.qr_downdate(state, np.vstack([H[:1], np.ones((1, 3))]), np.full((2, 1), 0.25))
    assert np.array_equal(state.model.A, A) and state.weight == weight
    backend.qr_downdate(state, H[:2], np.full((2, 1), 0.25))
    assert state.weight == weight - 2



@pytest.mark.parametrize("beta", [1.0, 0.95])
def test_vectorised_fold_equals_qr_model(beta):
    """The vectorised multiplier fold is the qr_model's fold_row, bit for bit."""
    rng = np.random.default_rng(3)
    config = QRConfig("Q10.18", "multiplier")
    n, k = 7, 3
    A = np.zeros((n, n + k), dtype=np.int64)
    A[np.arange(n), np.arange(n)] = 1 << 17
    rows = []
    for step in range(25):
        row = rng.integers(-2**16, 2**16, n + k)
        if step == 5:
            row[:] = 0  # all-zero row
        rows.append(row)
        forgetting = None if beta == 1 else config.forgetting_constant(beta)
        expected = fold_row(config, A, row, forgetting)
        A_fast, refused, saturated = _fold_row_multiplier(config, A, row, forgetting, False)
        assert (A_fast == expected.A).all() and saturated == expected.saturated and not refused
        A = expected.A
    for row in rows[-3:]:  # downdates
        expected = fold_row(config, A, row, hyperbolic=True)
        A_fast, refused, _ = _fold_row_multiplier(config, A, row, None, True)
        assert (A_fast == expected.A).all() and refused == expected.refused
        A = expected.A
    big = np.full(n + k, 1 << 20)  # never folded in: must be refused
    expected = fold_row(config, A, big, hyperbolic=True)
    A_fast, refused, _ = _fold_row_multiplier(config, A, big, None, True)
    assert expected.refused and refused and (A_fast == A).all()


@pytest.mark.parametrize("shape", [(60, 8, 3), (200, 16, 5)])
def test_fixed_ridge_solve_within_derived_bound(shape):
    """Cholesky-model solve vs float64 ridge: within RidgeReport.bound, the core's
    forward_error_bound plus the perturbation by quantising H, T and λ
    (ridge_perturbation_bound). The bound is also checked to be small (< 1e-2 relative, so
    this test fails if the range analysis wastes precision; the core alone is ~1e-3)."""
    m, n, k = shape
    rng = np.random.default_rng(m)
    H = np.tanh(rng.standard_normal((m, n)) @ rng.standard_normal((n, n)))
    T = rng.standard_normal((m, k)) * 3
    lam = 0.3
    backend = FixedBackend()
    report = backend.ridge_report(H, T, lam)
    reference = _ridge(H, T, lam)
    bound = report.bound(H, T, lam, reference)
    error = np.linalg.norm(report.W - reference)
    assert error <= bound
    assert bound < 1e-2 * np.linalg.norm(reference)


def test_fixed_head_within_qr_model_bound():
    """Fixed head (incremental-updater model) vs float64 ridge, within
    tiersolve.gen.qr_model.ridge_error_bound (in the head's scaled units)."""
    rng = np.random.default_rng(5)
    m, n, k, lam = 50, 6, 2, 0.5
    H, T = np.tanh(rng.standard_normal((m, n))), (rng.random((m, k)) < 0.5).astype(float)
    backend = FixedBackend()
    state = backend.qr_init(n, k, lam, capacity=4096)
    backend.qr_update(state, H, T)
    W = backend.qr_solve(state)
    fmt = state.model.config.fmt
    e_h, e_t = state.h_shift, state.t_shift
    R = fmt.dequantise(state.model.R)
    W_scaled = np.ldexp(W, e_h - e_t)
    bound = ridge_error_bound(state.model.config, np.ldexp(H, -e_h), np.ldexp(T, -e_t),
                              state.lam * 4.0**-e_h, R, W_scaled)
    reference = _ridge(H, T, state.lam)  # the λ the model really holds (√λ quantised)
    error = np.linalg.norm(W_scaled - np.ldexp(reference, e_h - e_t))
    assert error <= bound < 0.05 * np.linalg.norm(np.ldexp(reference, e_h - e_t))


def test_fixed_rhs_block_solves_column_blocks_on_their_own():
    """``rhs_block`` (a device's k_max) splits the right-hand sides: each block is the
    one-block solve of its columns (own scaling), bit for bit."""
    rng = np.random.default_rng(6)
    H, T = rng.uniform(-1, 1, (30, 5)), rng.uniform(-1, 1, (30, 7))
    blocked = FixedBackend(rhs_block=3).ridge_solve(H, T, 0.5)
    whole = FixedBackend()
    expected = np.hstack([whole.ridge_solve(H, T[:, b:b + 3], 0.5) for b in (0, 3, 6)])
    assert np.array_equal(blocked, expected)
    assert np.array_equal(FixedBackend(rhs_block=7).ridge_solve(H, T, 0.5),
                          whole.ridge_solve(H, T, 0.5))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="rhs_block must be a positive integer"):
            FixedBackend(rhs_block=bad)


def test_fixed_ridge_rejects_tiny_lambda():
    with pytest.raises(ValueError, match="too small"):
        FixedBackend().ridge_solve(np.ones((100, 3)) * 10, np.ones((100, 1)), 1e-9)


# -- estimators ---------------------------------------------------------------------------------


def _split(digits, count=600):
    X, y = digits
    return X[:count], y[:count], X[count:count + 300], y[count:count + 300]


def test_classifier_learns_digits(digits):
    Xtr, ytr, Xte, yte = _split(digits)
    model = TwoTierClassifier(hidden_layer_sizes=(48,), random_state=0).fit(Xtr, ytr)
    assert model.score(Xte, yte) > 0.85
    proba = model.predict_proba(Xte)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert (model.classes_[proba.argmax(axis=1)] == model.predict(Xte)).all()


@pytest.mark.parametrize("direct_link", [False, True])
def test_fixed_matches_float64_within_chained_bound(digits, direct_link):
    """Decision values of the fixed and float64 classifiers differ by less than a bound chained
    through the network (one ELM-AE layer, tanh, Lipschitz 1; inputs standardised and clipped,
    encoder bias on, with and without the direct link):

    - encoder: ‖ΔB‖_F <= RidgeReport.bound (both backends see the same H and X);
    - features: ‖ΔF‖_F <= ‖X_std‖₂·‖ΔB‖_F (tanh is 1-Lipschitz entrywise; the encoder bias and
      the direct-link columns are the same in both, so they add nothing);
    - head: ‖ΔW‖_F <= qr_model.ridge_error_bound (fixed vs float64 on the fixed features)
      + ridge_perturbation_bound (float64 on fixed vs float64 features);
    - decisions: ‖ΔD‖_F <= ‖ΔF_test‖_F·‖W̃‖₂ + ‖F_test‖₂·‖ΔW‖_F.

    Each stage's own bound is checked to be useful (< 1% of the quantity it bounds; for the
    head with the direct link < 5%: the head bound grows with cond([F; √λI]), about 6 without
    and 34 with the 64 correlated pixel columns, and is 2% there). The
    chained end-to-end bound holds but is loose (here ~10^4 times the actual difference:
    ‖Z ΔBᵀ‖ <= ‖Z‖₂‖ΔB‖ is a worst case that random rounding errors never approach), so the
    end-to-end agreement is also checked directly: the test accuracies differ by at most one
    percentage point (the issue's goal).
    """
    Xtr, ytr, Xte, yte = _split(digits, 300)
    params = dict(hidden_layer_sizes=(24,), random_state=0, alpha=1.0, ae_alpha=1.0,
                  direct_link=direct_link)
    exact = TwoTierClassifier(**params).fit(Xtr, ytr)
    fixed = TwoTierClassifier(**params, backend="fixed").fit(Xtr, ytr)
    assert exact.coef_.shape == (24 + 64 * direct_link + 1, 10)
    # encoder
    Z = exact.standardised_inputs(Xtr)
    B_ref = exact.encoders_[0].T
    # the first ridge_report of the fit is the encoder's: recompute it on the same H
    report = _encoder_report(params, Xtr)
    H = report[1]
    dB = report[0].bound(H, Z, 1.0, B_ref)
    assert np.linalg.norm(fixed.encoders_[0].T - B_ref) <= dB < 0.01 * np.linalg.norm(B_ref)
    # features and head
    F_train_fixed = fixed.features(Xtr)
    F_train = exact.features(Xtr)
    dF_train = np.linalg.norm(Z, 2) * dB
    assert np.linalg.norm(F_train_fixed - F_train) <= dF_train
    state = fixed.head_
    e_h, e_t = state.h_shift, state.t_shift
    T = (ytr[:, None] == fixed.classes_[None, :]).astype(float)
    W_scaled = np.ldexp(fixed.coef_, e_h - e_t)
    head_core = ridge_error_bound(state.model.config, np.ldexp(F_train_fixed, -e_h),
                                  np.ldexp(T, -e_t), state.lam * 4.0**-e_h,
                                  state.model.config.fmt.dequantise(state.model.R), W_scaled)
    head_core *= 2.0 ** (e_t - e_h)
    W_on_fixed_features = Float64Backend().ridge_solve(F_train_fixed, T, state.lam)
    useful = 0.05 if direct_link else 0.01
    assert (np.linalg.norm(fixed.coef_ - W_on_fixed_features) <= head_core
            < useful * np.linalg.norm(W_on_fixed_features))
    W_ref = exact.coef_
    residual = np.linalg.norm(T - F_train @ W_ref)
    lam_error = abs(state.lam - 1.0) * np.linalg.norm(W_ref) / state.lam
    head_input = ridge_perturbation_bound(residual, np.linalg.norm(W_ref), state.lam,
                                          dF_train, 0.0)
    dW = head_core + head_input + lam_error
    assert np.linalg.norm(fixed.coef_ - W_ref) <= dW
    Z_test = exact.standardised_inputs(Xte)
    dF_test = np.linalg.norm(Z_test, 2) * dB
    F_test = exact.features(Xte)
    dD = dF_test * np.linalg.norm(fixed.coef_, 2) + np.linalg.norm(F_test, 2) * dW
    D_fixed, D_exact = fixed.decision_function(Xte), exact.decision_function(Xte)
    assert np.linalg.norm(D_fixed - D_exact) <= dD
    assert abs(fixed.score(Xte, yte) - exact.score(Xte, yte)) <= 0.01


def _encoder_report(params, X):
    """Redo the fixed encoder solve of a fit (same random projection) and return
    (RidgeReport, H)."""
    backend = FixedBackend()
    captured = {}
    original = backend.ridge_solve

    def capture(H, T, lam):
        captured.setdefault("report", backend.ridge_report(H, T, lam))
        captured.setdefault("H", H)
        return original(H, T, lam)

    backend.ridge_solve = capture
    TwoTierClassifier(**params, backend=backend).fit(X, np.arange(len(X)) % 3)
    return captured["report"], captured["H"]


@pytest.mark.parametrize(("backend", "direct_link"),
                         [("float64", False), ("fixed", False), ("fixed", True)])
def test_partial_fit_new_classes_equals_fit_on_all(digits, backend, direct_link):
    """fit on classes 0-4, partial_fit on 5-9 (three mini-batches) gives the head that a
    one-step fit on all the samples (same lower tier) gives: bit for bit with the fixed
    backend (the same rows reach the same model in the same order, and the new columns start
    at Z = 0, which is what earlier zero targets produce exactly), and within the float64
    bound of the QR path for float64. With the direct link the later batches are standardised
    with the statistics of the first fit (classes 0-4 only), and clipped, so their direct
    inputs stay within the head's feature bound of 1."""
    X, y = digits
    first, second = y < 5, y >= 5
    X1, y1, X2, y2 = X[first][:150], y[first][:150], X[second][:150], y[second][:150]
    model = TwoTierClassifier(hidden_layer_sizes=(16,), random_state=0, backend=backend,
                              direct_link=direct_link)
    model.fit(X1, y1)
    reference = copy.deepcopy(model)
    statistics = model.input_offset_.copy(), model.input_scale_.copy()
    for part in np.array_split(np.arange(150), 3):
        model.partial_fit(X2[part], y2[part])
    assert np.array_equal(model.input_offset_, statistics[0])
    assert np.array_equal(model.input_scale_, statistics[1])
    assert model.classes_.tolist() == list(range(10))
    reference.classes_ = np.arange(10)
    reference.fit_head(np.vstack([X1, X2]), np.concatenate([y1, y2]))
    if backend == "fixed":
        assert (model.head_.model.A == reference.head_.model.A).all()
        assert (model.coef_ == reference.coef_).all()
    else:
        F = model.features(np.vstack([X1, X2]))
        bound = _float64_bound(F, model.alpha, reference.coef_)
        assert np.linalg.norm(model.coef_ - reference.coef_) <= bound
    assert model.score(X2, y2) > 0.6  # a lower tier that never saw 5-9: far above chance


def test_sliding_window_equals_fit_on_last_samples(digits):
    X, y = digits
    model = TwoTierClassifier(hidden_layer_sizes=(10,), window=40, random_state=0)
    model.fit(X[:60], y[:60])
    reference = copy.deepcopy(model)
    model.partial_fit(X[60:75], y[60:75])
    model.partial_fit(X[75:90], y[75:90])
    reference.fit_head(X[50:90], y[50:90])
    F = model.features(X[50:90])
    bound = 1e3 * _float64_bound(F, model.alpha, reference.coef_)  # downdates: see above
    assert np.linalg.norm(model.coef_ - reference.coef_) <= bound


def test_forgetting_favours_recent_samples():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((400, 3))
    model = TwoTierRegressor(hidden_layer_sizes=(8,), activation="identity",
                             forgetting_factor=0.9, random_state=0)
    model.fit(X[:200], X[:200, 0])
    model.partial_fit(X[200:], -X[200:, 0])  # the relation flips
    assert np.corrcoef(model.predict(X[:50]), -X[:50, 0])[0, 1] > 0.99


# -- input scaling, encoder bias, direct link ------------------------------------------------


def test_standardised_inputs_are_clipped_and_fit_statistics_kept(digits):
    X, y = digits
    model = TwoTierClassifier(hidden_layer_sizes=(8,), random_state=0).fit(X[:200], y[:200])
    np.testing.assert_allclose(model.input_offset_, X[:200].mean(axis=0))
    Z = model.standardised_inputs(X[200:400])
    raw = (X[200:400] - model.input_offset_) / model.input_scale_
    assert np.abs(raw).max() > 3  # digits have rare pixels: something to clip
    assert np.abs(Z).max() == 3.0
    np.testing.assert_array_equal(Z, np.clip(raw, -3, 3))
    unclipped = TwoTierClassifier(hidden_layer_sizes=(8,), input_clip=None, random_state=0)
    unclipped.fit(X[:200], y[:200])
    np.testing.assert_array_equal(unclipped.standardised_inputs(X[200:400]), raw)


def test_encoder_bias_and_direct_link_features(digits):
    """Features are ``g(Z E + b)`` with the layer's random bias (``encoder_bias``), then the
    direct inputs ``Z / input_clip`` (bounded by 1), then the bias column."""
    X, y = digits
    params = dict(hidden_layer_sizes=(8,), random_state=0)
    plain = TwoTierClassifier(**params, encoder_bias=False).fit(X[:200], y[:200])
    assert not plain.encoder_biases_[0].any()
    Z = plain.standardised_inputs(X[:50])
    np.testing.assert_array_equal(plain.features(X[:50])[:, :8], np.tanh(Z @ plain.encoders_[0]))
    linked = TwoTierClassifier(**params, direct_link=True).fit(X[:200], y[:200])
    bias = linked.encoder_biases_[0]
    assert bias.shape == (8,) and np.abs(bias).max() <= 1 and bias.any()
    F = linked.features(X[:50])
    assert F.shape == (50, 8 + 64 + 1) and np.abs(F).max() <= 1
    np.testing.assert_array_equal(F[:, :8], np.tanh(Z @ linked.encoders_[0] + bias))
    np.testing.assert_array_equal(F[:, 8:72], Z / 3.0)
    assert (F[:, -1] == 1).all()
    assert linked.coef_.shape == (8 + 64 + 1, 10)


def test_direct_link_gives_the_head_the_inputs(digits):
    """With two hidden units the lower tier alone cannot separate ten digits (well below 0.6);
    the direct link adds a linear model of the 64 pixels to the head (above 0.85): the inputs
    really reach it."""
    X, y = digits
    Xtr, ytr, Xte, yte = X[:800], y[:800], X[800:1200], y[800:1200]
    params = dict(hidden_layer_sizes=(2,), random_state=0)
    narrow = TwoTierClassifier(**params).fit(Xtr, ytr).score(Xte, yte)
    linked = TwoTierClassifier(**params, direct_link=True).fit(Xtr, ytr).score(Xte, yte)
    assert narrow < 0.6 < 0.85 < linked


def test_new_options_are_validated(digits):
    X, y = digits
    with pytest.raises(ValueError, match="direct_link=True needs input_clip"):
        TwoTierClassifier(direct_link=True, input_clip=None).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="input_clip must be positive"):
        TwoTierClassifier(input_clip=0.0).fit(X[:20], y[:20])
    with pytest.raises(TypeError, match="input_clip must be a positive number"):
        TwoTierClassifier(input_clip="3").fit(X[:20], y[:20])
    with pytest.raises(TypeError, match="direct_link must be True or False"):
        TwoTierClassifier(direct_link=1).fit(X[:20], y[:20])
    with pytest.raises(TypeError, match="encoder_bias must be True or False"):
        TwoTierRegressor(encoder_bias="yes").fit(X[:20], y[:20])


def test_training_macs_counts_the_direct_link():
    """The head grows from L + 1 to L + d + 1 inputs; every term recomputed by hand."""
    m, d, L, k = 100, 64, 32, 10
    layer = m * d * L + m * (L * (L + 1) // 2 + L * d) + L**3 // 6 + L**2 * d + m * d * L
    for direct_link, n in ((False, L + 1), (True, L + d + 1)):
        head = 4 * m * (n + n * (n + 1) // 2 + n * k) + n * n * k // 2
        macs = training_macs(m, d, (L,), k, direct_link=direct_link)
        assert macs["layers"] == [layer] and macs["head"] == head
        assert macs["total"] == m * d + layer + head


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["float64", "fixed"])
def test_bad_input_raises(digits, backend):
    X, y = digits
    model = TwoTierClassifier(hidden_layer_sizes=(8,), random_state=0, backend=backend,
                              new_classes="error").fit(X[:100], y[:100] % 3)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:5, :10])
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:5, :10], y[:5] % 3)
    bad = X[:5].copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.partial_fit(bad, y[:5] % 3)
    with pytest.raises(ValueError, match="NaN"):
        TwoTierClassifier(backend=backend).fit(bad, y[:5])
    with pytest.raises(ValueError, match=r"labels \[7\] not seen"):
        model.partial_fit(X[:2], [0, 7])
    with pytest.raises(ValueError, match="not in classes"):
        TwoTierClassifier(backend=backend).partial_fit(X[:3], [0, 1, 2], classes=[0, 1])
    with pytest.raises(ValueError, match="activation"):
        TwoTierClassifier(activation="softsign").fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="forgetting_factor=1"):
        TwoTierClassifier(window=10, forgetting_factor=0.9).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="forgetting_factor"):
        TwoTierClassifier(forgetting_factor=1.5).fit(X[:20], y[:20])


@pytest.mark.parametrize("backend", ["float64", "fixed"])
def test_window_keeps_working_after_a_new_class(backend):
    """The window drops, in one call, rows stored before and after a class was added (their
    target rows differ in width): they come out padded (the call raised ValueError before)."""
    X = np.random.default_rng(0).standard_normal((40, 3))
    model = TwoTierClassifier(hidden_layer_sizes=(4,), window=3, random_state=0,
                              backend=backend).fit(X[:3], [0, 1, 0])
    model.partial_fit(X[3:5], [2, 2])
    model.partial_fit(X[5:7], [0, 1])
    assert model.classes_.tolist() == [0, 1, 2] and len(model.window_rows_) == 3
    reference = TwoTierClassifier(hidden_layer_sizes=(4,), window=3, random_state=0,
                                  backend=backend).fit(X[:3], [0, 1, 0])
    reference.partial_fit(X[3:5], [2, 2])
    reference.fit_head(X[4:7], [2, 0, 1])
    assert np.allclose(model.coef_, reference.coef_, atol=1e-9 if backend == "float64" else 1e-3)


def test_a_refused_partial_fit_leaves_the_estimator_as_it_was():
    """Targets beyond the fixed head's bound, or more rows than its capacity: the call raises
    before the head, the window or the counters change, and the next good call works."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 5))
    y = X @ rng.standard_normal(5)
    for params, first, bad in (({"window": 40}, 40, (X[40:50], 100 * y[40:50])),
                               ({"capacity": 120}, 100, (X[100:150], y[100:150]))):
        model = TwoTierRegressor(hidden_layer_sizes=(8,), backend="fixed", random_state=0,
                                 **params).fit(X[:first], y[:first])
        before = (model.coef_.copy(), model.n_samples_seen_, model.head_.rows,
                  model.head_.model.A.copy(),
                  None if model.window_rows_ is None else len(model.window_rows_))
        with pytest.raises(ValueError, match="exceeds the bound|capacity=120"):
            model.partial_fit(*bad)
        after = (model.coef_, model.n_samples_seen_, model.head_.rows, model.head_.model.A,
                 None if model.window_rows_ is None else len(model.window_rows_))
        assert np.array_equal(before[0], after[0]) and before[1:3] == after[1:3]
        assert np.array_equal(before[3], after[3]) and before[4] == after[4]
        model.partial_fit(X[150:160], y[150:160])
        assert model.n_samples_seen_ == first + 10


def test_a_failed_partial_fit_does_not_keep_a_new_class():
    X = np.random.default_rng(2).standard_normal((60, 3))
    model = TwoTierClassifier(hidden_layer_sizes=(4,), backend="fixed", capacity=25,
                              random_state=0).fit(X[:20], np.arange(20) % 2)
    with pytest.raises(ValueError, match="capacity=25"):
        model.partial_fit(X[20:30], [2] * 10)
    assert model.classes_.tolist() == [0, 1] and model.coef_.shape[1] == 2
    assert model.head_.model.k == 2


def test_small_regression_targets_are_not_lost_in_fixed_point():
    """The fixed head is scaled for twice the first fit's largest target, however small (it
    was at least 1, and targets of 1e-8 came back as an all-zero model)."""
    from sklearn.datasets import make_regression

    X, y = make_regression(200, 5, noise=0.1, random_state=0)
    reference = TwoTierRegressor(hidden_layer_sizes=(16,), random_state=0).fit(X, y)
    for scale in (1.0, 1e-8):
        model = TwoTierRegressor(hidden_layer_sizes=(16,), backend="fixed",
                                 random_state=0).fit(X, y * scale)
        assert np.any(model.coef_)
        assert model.score(X, y * scale) > reference.score(X, y) - 0.03


def test_partial_fit_checks_its_parameters_again_and_warns_on_a_small_first_batch():
    X = np.random.default_rng(3).standard_normal((40, 3))
    with pytest.warns(UserWarning, match="first partial_fit call trains the lower tier"):
        TwoTierClassifier(hidden_layer_sizes=(16,)).partial_fit(X[:2], [0, 1])
    model = TwoTierClassifier(hidden_layer_sizes=(4,)).fit(X[:20], np.arange(20) % 2)
    model.set_params(window=5)
    with pytest.raises(ValueError, match="window changed from None to 5 since fit"):
        model.partial_fit(X[20:22], [0, 1])
    model.set_params(window=None, forgetting_factor=5.0)
    with pytest.raises(ValueError, match="forgetting_factor must be in"):
        model.partial_fit(X[20:22], [0, 1])
    for capacity in (-3, 0, "a", 2.5):
        with pytest.raises(ValueError, match="capacity must be a positive integer"):
            TwoTierClassifier(capacity=capacity).fit(X[:20], np.arange(20) % 2)


def test_feature_scale_does_not_decide_which_features_are_constant(digits):
    """The digits scaled by 1e-12 standardise to the same inputs: only features whose spread
    is at rounding level of the data's own scale keep scale 1 (the threshold was at least
    1e-12 in absolute terms, so small data lost features to it)."""
    X, y = digits
    model = TwoTierClassifier(hidden_layer_sizes=(16,), random_state=0).fit(X[:300], y[:300])
    small = TwoTierClassifier(hidden_layer_sizes=(16,), random_state=0).fit(X[:300] * 1e-12,
                                                                             y[:300])
    constant = model.input_scale_ == 1.0
    assert np.array_equal(small.input_scale_ == 1.0, constant)
    assert np.allclose(small.input_scale_[~constant], model.input_scale_[~constant] * 1e-12)
    assert np.array_equal(small.predict(X[300:] * 1e-12), model.predict(X[300:]))


def test_activation_lipschitz_constants():
    x = np.linspace(-6, 6, 2001)
    for name, (function, lipschitz) in ACTIVATIONS.items():
        slopes = np.abs(np.diff(function(x)) / np.diff(x))
        assert slopes.max() <= lipschitz + 1e-9, name


# -- device backend ------------------------------------------------------------------------------


@pytest.mark.verilator
@pytest.mark.parametrize(("hidden", "direct_link"), [(6, False), (3, True)])
def test_device_backend_equals_fixed_bit_for_bit(verilator, hidden, direct_link):
    """A small TwoTierClassifier trained on a vsim device (Cholesky core for the lower tier,
    incremental-update core for the head, with a sliding window so that rows are downdated)
    equals the same classifier on the FixedBackend with the device's formats: encoders, head
    weights and predictions identical. With the direct link the head has 3 + 4 + 1 = 8
    inputs, the device's n_max."""
    from sklearn.datasets import load_iris
    from tiersolve.host.learn import DeviceBackend
    from updater_state import record_updater_ops

    X, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], y[order]
    url = ("vsim://?n_max=8&k_max=4&lanes=2&format=Q8.16&inverse_format=Q4.20"
           "&cores=cholesky,updater&updater_fold=1")
    backend = DeviceBackend(url)
    ops = record_updater_ops(backend.device, "select")
    try:
        fixed = backend.matching_fixed_backend()
        params = {"hidden_layer_sizes": (hidden,), "random_state": 0, "alpha": 0.5,
                  "window": 40, "direct_link": direct_link}
        on_device = TwoTierClassifier(**params, backend=backend)
        on_model = TwoTierClassifier(**params, backend=fixed)
        for estimator in (on_device, on_model):
            estimator.partial_fit(X[:30], y[:30], classes=np.unique(y))
            for start in range(30, 90, 20):
                estimator.partial_fit(X[start:start + 20], y[start:start + 20])
        for a, b in zip(on_device.encoders_, on_model.encoders_, strict=True):
            assert np.array_equal(a, b)
        assert np.array_equal(on_device.coef_, on_model.coef_)
        assert on_device.coef_.shape == (8 if direct_link else 7, 3)
        assert np.array_equal(on_device.predict(X), on_model.predict(X))
        assert on_device.score(X[90:], y[90:]) > 0.7
        assert backend.device.last_run["cycles"] > 0  # the device did the work
        # the batches went in FOLD commands (rows in flight together), the window's old rows
        # came out in FOLDs of downdates (multiplier rotations), none by one DOWNDATE a row
        from tiersolve.designs import regmap
        kinds = {(op, None if select is None else int(select)) for op, select in ops}
        assert (regmap.UpdaterOp.FOLD, None) in kinds
        assert (regmap.UpdaterOp.FOLD, int(regmap.UpdaterFoldKind.DOWNDATE)) in kinds
        assert not any(op == regmap.UpdaterOp.DOWNDATE for op, _ in kinds)
    finally:
        backend.close()


@pytest.mark.verilator
def test_device_estimator_sizes_and_pickling(verilator):
    """On a device given as a URL: a layer wider than n_max or more right-hand sides than
    k_max is a ValueError naming them (it was a bus timeout or a bad_command); a fitted
    estimator pickles without its device, predicts the same, and says why partial_fit
    needs a fit first."""
    import pickle

    url = "vsim://?n_max=8&k_max=4&lanes=2&format=Q8.16&inverse_format=Q4.20" \
          "&cores=cholesky,updater"
    X = np.random.default_rng(4).standard_normal((60, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.raises(ValueError, match="n = 10 unknowns but the device's n_max is 8"):
        TwoTierClassifier(hidden_layer_sizes=(10,), backend=url).fit(X, y)
    with pytest.raises(ValueError, match="the head has k = 5 outputs but the device's k_max "
                                         "is 4"):
        TwoTierClassifier(hidden_layer_sizes=(4,), backend=url).fit(X, np.arange(60) % 5)
    # six features: the autoencoder's six right-hand sides go in blocks of k_max = 4, on the
    # device as in its matching fixed backend
    X6 = np.random.default_rng(5).standard_normal((60, 6))
    from tiersolve.host.learn import DeviceBackend

    backend = DeviceBackend(url)
    try:
        on_device = TwoTierClassifier(hidden_layer_sizes=(4,), backend=backend,
                                      random_state=0).fit(X6, y)
        on_model = TwoTierClassifier(hidden_layer_sizes=(4,), random_state=0,
                                     backend=backend.matching_fixed_backend()).fit(X6, y)
        assert np.array_equal(on_device.encoders_[0], on_model.encoders_[0])
        assert np.array_equal(on_device.coef_, on_model.coef_)
    finally:
        backend.close()
    model = TwoTierClassifier(hidden_layer_sizes=(3,), backend=url, random_state=0).fit(X, y)
    try:
        copy_ = pickle.loads(pickle.dumps(model))
        assert np.array_equal(copy_.predict(X), model.predict(X))
        with pytest.raises(RuntimeError, match="pickled with its device backend"):
            copy_.partial_fit(X[:5], y[:5])
    finally:
        model._backend_.close()
