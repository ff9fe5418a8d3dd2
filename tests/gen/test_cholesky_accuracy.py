"""Accuracy of the Cholesky core (through its bit-exact model) against float64.

The reference is ``numpy.linalg.solve`` on exactly the system the core sees (the quantised
integers as real numbers), so only the core's own arithmetic is measured. The bound is
:func:`tiersolve.gen.cholesky_model.forward_error_bound`: with ``u = 2**-f`` and
``v = 2**-fi`` (pivot inverses), ``‖X̂ - X‖_F / ‖X‖_F <= (‖E‖₂‖X‖ + √(nk)·e_s·(1 + √(‖A‖ +
‖E‖))) / ((λ_min(A) - ‖E‖₂)·‖X‖)``, ``‖E‖₂ <= √(n·e_diag² + n(n-1)·e_off²)``, ``e_off = e_s =
u(½ + ½√a_max)``, ``e_diag = u/2 + 2.5·v·a_max^{3/2}``: of order ``cond(A)·(u + v)``. Where
``λ_min(A) <= ‖E‖₂`` the format cannot resolve ``cond(A)`` and no bound is claimed.
"""

from __future__ import annotations

import numpy as np
import pytest
from tiersolve.gen.cholesky_model import cholesky_model, forward_error_bound
from tiersolve.gen.fixed import FixedFormat

#: (data format, pivot-inverse format) pairs the sweep covers.
FORMATS = [(FixedFormat(6, 12), None), (FixedFormat(4, 20), FixedFormat(8, 16))]


def direct_problem(rng, fmt, n, k, cond, scale=4.0):
    """A symmetric A (eigenvalues in [scale/cond, scale] before quantising) and B = A·X_true,
    X_true uniform in [-1, 1], as stored integers."""
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = fmt.quantise((q * (scale * np.geomspace(1.0 / cond, 1.0, n))) @ q.T).values
    a = np.tril(a) + np.tril(a, -1).T
    b = fmt.quantise(fmt.dequantise(a) @ rng.uniform(-1, 1, (n, k))).values
    return a, b


def solve_and_compare(fmt, inverse_format, mode, n, k, lam, rows, a_real):
    """Run the model; return (error, bound, result). ``a_real`` is the matrix factorised."""
    result = cholesky_model(fmt, mode, n, k, lam, rows, n_max=n, k_max=k,
                            inverse_format=inverse_format)
    if mode == "direct":
        b_real = fmt.dequantise(rows[:, n:])
    else:
        h = fmt.dequantise(rows)
        b_real = h[:, :n].T @ h[:, n:]
    x = np.linalg.solve(a_real, b_real)
    bound = forward_error_bound(a_real, x, fmt, inverse_format)
    if result.x is None:
        return np.nan, bound, result
    error = np.linalg.norm(fmt.dequantise(result.x) - x) / np.linalg.norm(x)
    return error, bound, result


@pytest.mark.parametrize("fmt, inverse_format", FORMATS, ids=["Q6.12", "Q4.20-inv-Q8.16"])
def test_direct_sweep_over_condition_number(fmt, inverse_format):
    """cond(A) from 1 to 1e6: wherever the bound exists the core succeeds, does not saturate,
    and stays within it; the bound exists at least up to cond 100 (Q6.12) / 1e4 (Q4.20)."""
    rng = np.random.default_rng(2024)
    n, k = 12, 2
    bounded_conds = []
    for cond in np.geomspace(1.0, 1e6, 13):
        for _ in range(3):
            a, b = direct_problem(rng, fmt, n, k, cond)
            a_real = fmt.dequantise(a)
            error, bound, result = solve_and_compare(fmt, inverse_format, "direct", n, k, 0,
                                                     np.hstack([a, b]), a_real)
            if np.isfinite(bound):
                assert not result.npd and not result.saturated, (cond, result)
                assert error <= bound, (cond, error, bound)
                bounded_conds.append(np.linalg.cond(a_real))
            elif result.x is not None and not result.saturated:
                assert np.isfinite(error)
    assert max(bounded_conds) >= (1e4 if fmt.frac_bits >= 20 else 50)


def test_bound_is_not_vacuous():
    """The bound follows cond(A)·u: within 1000x of the measured error at small cond, and it
    shrinks with more fractional bits (so a wrong core would fail it)."""
    rng = np.random.default_rng(9)
    ratios = []
    for fmt, inverse_format in FORMATS:
        a, b = direct_problem(rng, fmt, 8, 1, 10.0)
        error, bound, _ = solve_and_compare(fmt, inverse_format, "direct", 8, 1, 0,
                                            np.hstack([a, b]), fmt.dequantise(a))
        assert 0 < error <= bound < 1000 * error
        ratios.append(bound)
    assert ratios[1] < ratios[0] / 10


@pytest.mark.parametrize("fmt, inverse_format", FORMATS, ids=["Q6.12", "Q4.20-inv-Q8.16"])
def test_gram_mode_ridge(fmt, inverse_format):
    """Gram mode: G = HᵀH + λI is accumulated exactly, so the same bound holds for the ridge
    solution, for several λ (cond(G) falls as λ grows)."""
    rng = np.random.default_rng(4)
    n, k, m = 10, 2, 40
    h = fmt.quantise(rng.uniform(-0.3, 0.3, (m, n + k))).values
    hr = fmt.dequantise(h)
    for lam_real in (1e-2, 0.1, 1.0):
        lam = fmt.const(lam_real)
        a_real = hr[:, :n].T @ hr[:, :n] + fmt.dequantise(lam) * np.eye(n)
        error, bound, result = solve_and_compare(fmt, inverse_format, "gram", n, k, lam, h,
                                                 a_real)
        assert np.isfinite(bound)
        assert not result.saturated and not result.npd
        assert error <= bound, (lam_real, error, bound)
