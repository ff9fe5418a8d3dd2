"""Two-tier learning: a network trained by equation solving, with a scikit-learn API.

The network
-----------
*Inputs*: standardised with the per-feature mean and standard deviation of the data given to
:meth:`~TwoTierClassifier.fit` (stored, and used unchanged by ``predict`` and ``partial_fit``),
then clipped to ``±input_clip`` (default 3: a pixel that is almost always 0 no longer becomes
a ±30 outlier when it is not; ``None``: no clipping).

*Lower tier*: one or more ELM-autoencoder layers. Layer ``l`` draws a random projection ``P``
(``d × width``, orthonormalised Gaussian columns) and bias ``b``, computes
``H = g(X P + b)`` and solves, in ONE ridge step, the weights ``B`` (``width × d``) that
reconstruct the layer's input from ``H``: ``B = (HᵀH + λ_ae I)⁻¹ HᵀX``. The layer's output is
``g(X Bᵀ + b)``, so the learned ``Bᵀ`` is the encoder (Kasun et al.'s multilayer ELM); the
random bias ``b`` is kept (``encoder_bias=True``, default) because without it the ``width``
outputs are odd functions of one rank-``d`` linear map and, for ``width > d``, carry little
more than the inputs did (on digits the bias is worth 1-2 points of accuracy).

*Direct link* (``direct_link=True``, random-vector-functional-link style): the head sees the
lower tier's output AND the clipped standardised inputs divided by ``input_clip`` (so bounded
by 1, like a tanh output), ``L + d + 1`` features in all. The head then contains a linear
model of the raw inputs and the lower tier only has to add what that misses.

*Upper tier*: a ridge head ``W`` on the last layer's output (and the direct inputs) with a
constant column appended (the bias). It is kept in square-root form: ``R`` (upper
triangular, starts as ``√λ I``) and ``Z = QᵀT``, so that ``W = R⁻¹Z`` is the ridge solution
over the rows folded in so far.
:meth:`TwoTierClassifier.fit` folds all rows in at once (β = 1, one step, no iteration);
:meth:`~TwoTierClassifier.partial_fit` keeps folding rows in, one sample after the other, with
a forgetting factor β applied before each sample (or once per call, ``forget_per="batch"``),
or keeps a sliding window of the last ``window`` samples by downdating the oldest one
(hyperbolic rotations). Forgetting and a window are alternatives (a window needs β = 1).

Only the solves go to a backend; the forward pass (projections, activations, ``H W``) runs on
the host in float64 for every backend.

Backends
--------
A backend does the four things the hardware does (see :class:`SolverBackend`):
``ridge_solve(H, T, lam)`` (the Cholesky core, Gram mode) for the lower tier, and
``qr_init / qr_update / qr_downdate / qr_solve`` (the incremental updater) for the head.

``"float64"`` (:class:`Float64Backend`)
    NumPy / SciPy: Cholesky of ``HᵀH + λI`` for the one-step solves, and the head in QR form
    (the same algorithm as the hardware: Householder QR of the stacked ``[√β R, √β Z; H, T]``
    for updates, which equals a sequence of Givens rotations up to rounding, and hyperbolic
    rotations for downdates).
``"fixed"`` (:class:`FixedBackend`)
    The bit-exact models of the cores: :func:`tiersolve.gen.cholesky_model.cholesky_model` for
    the one-step solves and :mod:`tiersolve.gen.qr_model` for the head. The inputs are scaled
    by powers of two chosen by range analysis (see :class:`FixedBackend`).
A Device (later) implements the same interface on a real or simulated FPGA.

Classes and new classes
-----------------------
Targets of the classifier are one-hot columns of 0 and 1. A label never seen before may arrive
in :meth:`~TwoTierClassifier.partial_fit` (``new_classes="grow"``, the default): the head grows
one output column per new class, started at ``Z = 0``. That is *exact*: every sample folded in
before had target 0 in the new column, and ``Qᵀ0 = 0``. So "fit on classes 0-4, then
partial_fit on 5-9" gives the same head as folding all the samples in with all ten columns.
``classes=`` may be given on the first ``partial_fit`` call as scikit-learn does (all columns
exist from the start); with ``new_classes="error"`` a label outside the known classes raises
``ValueError``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.qr_ops import fold_row_limit

__all__ = [
    "ACTIVATIONS",
    "DelegatingBackend",
    "DeviceBackend",
    "DowndateRefused",
    "FixedBackend",
    "Float64Backend",
    "RidgeReport",
    "SolverBackend",
    "TwoTierClassifier",
    "TwoTierRegressor",
    "get_backend",
    "ridge_perturbation_bound",
    "training_macs",
]


def _tanh(x):
    return np.tanh(x)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _relu(x):
    return np.maximum(x, 0.0)


def _identity(x):
    return x


#: name -> (function, Lipschitz constant). The constant is what the error bounds use.
ACTIVATIONS = {
    "tanh": (_tanh, 1.0),
    "sigmoid": (_sigmoid, 0.25),
    "relu": (_relu, 1.0),
    "identity": (_identity, 1.0),
}


class DowndateRefused(ArithmeticError):
    """A downdate would make ``R`` lose positive definiteness; ``R`` was left unchanged."""


# -- backends ---------------------------------------------------------------------------------


class SolverBackend:
    """What a backend must do: the operations of the cores, on host arrays.

    ``ridge_solve(H, T, lam)``
        ``W = (HᵀH + λI)⁻¹ HᵀT`` for float arrays ``H`` (m × n), ``T`` (m × k); one step.
    ``qr_init(n, k, lam, capacity, feature_bound, target_bound)``
        A new head state ``R = √λ I``, ``Z = 0``. ``capacity`` is the largest number of
        (forgetting-weighted) samples the state must hold and ``feature_bound``,
        ``target_bound`` bound ``|h|`` and ``|t|`` of every row: a fixed-point backend sizes
        its scaling by them (and refuses rows outside them); float64 ignores them.
    ``qr_update(state, H, T, beta, forget_per)``
        Fold rows in order; ``β`` multiplies ``R, Z`` by ``√β`` before each row
        (``forget_per="sample"``) or once before the batch (``"batch"``).
    ``qr_downdate(state, H, T)``
        Remove rows folded in before; raises :class:`DowndateRefused` (state unchanged) when
        one would lose positive definiteness.
    ``qr_add_outputs(state, count)``
        Append ``count`` zero columns to ``Z`` (new classes; a read and a load on a device).
    ``qr_solve(state)``
        ``W = R⁻¹ Z`` (back substitution) as a float array.

    A state is an opaque object owned by the backend (on a device: a handle to the on-chip
    ``R`` and ``Z``).
    """

    name = "abstract"

    def ridge_solve(self, H, T, lam):  # pragma: no cover - interface
        raise NotImplementedError

    def qr_init(self, n, k, lam, capacity, feature_bound, target_bound):  # pragma: no cover
        raise NotImplementedError

    def qr_update(self, state, H, T, beta=1.0, forget_per="sample"):  # pragma: no cover
        raise NotImplementedError

    def qr_downdate(self, state, H, T):  # pragma: no cover - interface
        raise NotImplementedError

    def qr_add_outputs(self, state, count):  # pragma: no cover - interface
        raise NotImplementedError

    def qr_solve(self, state):  # pragma: no cover - interface
        raise NotImplementedError

    # Optional: what lets an estimator leave its head as it was when a call fails.

    def qr_check(self, state, H, T, beta=1.0, forget_per="sample", removed=None):
        """Raise, changing nothing, what :meth:`qr_update` of ``(H, T)`` after
        :meth:`qr_downdate` of ``removed = (H_old, T_old)`` would refuse for its inputs
        (bounds, capacity); a refusal that depends on the arithmetic can still come later."""

    def qr_snapshot(self, state):
        """A copy of ``state`` for :meth:`qr_restore`, or None where a copy would cost a
        transfer (a device): a failed call then leaves such a head as the failure left it."""
        import copy

        return copy.deepcopy(state)

    def qr_restore(self, state, snapshot):
        """The state to use instead of ``state`` after a failure (``snapshot`` from
        :meth:`qr_snapshot`)."""
        return snapshot


class DelegatingBackend(SolverBackend):
    """Base of a backend that wraps another one (``wrapped``, a property of the subclass) and
    changes some of its operations: the head's hooks (:meth:`~SolverBackend.qr_check`,
    ``qr_snapshot``, ``qr_restore``) go to the wrapped backend, whose state it is."""

    @property
    def wrapped(self) -> SolverBackend:  # pragma: no cover - interface
        raise NotImplementedError

    def qr_check(self, state, H, T, beta=1.0, forget_per="sample", removed=None):
        return self.wrapped.qr_check(state, H, T, beta, forget_per, removed)

    def qr_snapshot(self, state):
        return self.wrapped.qr_snapshot(state)

    def qr_restore(self, state, snapshot):
        return self.wrapped.qr_restore(state, snapshot)


@dataclass
class _FloatHeadState:
    R: np.ndarray
    Z: np.ndarray
    lam: float


def _row_weights(count: int, beta: float, forget_per: str):
    """Scale of the old state and of each new row when ``count`` rows are folded in."""
    if forget_per == "sample":
        state_scale = math.sqrt(beta) ** count
        row_scale = np.sqrt(beta) ** np.arange(count - 1, -1, -1, dtype=np.float64)
    else:
        state_scale = math.sqrt(beta)
        row_scale = np.ones(count)
    return state_scale, row_scale


class Float64Backend(SolverBackend):
    """float64 reference: Cholesky for one-step solves, square-root (QR) form for the head.

    ``qr_update`` takes the R factor of the stacked matrix ``[s·R, s·Z; D H, D T]`` (``s`` and
    the diagonal ``D`` carry the forgetting weights) with positive diagonal, which is what a
    sequence of Givens rotations computes. ``qr_downdate`` applies one hyperbolic rotation per
    column and refuses (state unchanged) when a pivot ``R_ii² - x_i²`` is not positive.
    """

    name = "float64"

    def ridge_solve(self, H, T, lam):
        from scipy.linalg import cho_factor, cho_solve

        H, T = _as_2d_float(H, "H"), _as_2d_float(T, "T")
        _check_rows(H, T)
        lam = _check_lambda(lam)
        A = H.T @ H
        A[np.diag_indices_from(A)] += lam
        return cho_solve(cho_factor(A, lower=True), H.T @ T)

    def qr_init(self, n, k, lam, capacity=None, feature_bound=None, target_bound=None):
        lam = _check_lambda(lam)
        return _FloatHeadState(math.sqrt(lam) * np.eye(n), np.zeros((n, k)), lam)

    def qr_update(self, state, H, T, beta=1.0, forget_per="sample"):
        H, T = _as_2d_float(H, "H"), _as_2d_float(T, "T")
        _check_rows(H, T)
        n, k = state.Z.shape
        if H.shape[1] != n or T.shape[1] != k:
            raise ValueError(f"rows must have {n} + {k} columns, not {H.shape[1]} + {T.shape[1]}")
        if len(H) == 0:
            return state
        state_scale, row_scale = _row_weights(len(H), beta, forget_per)
        stacked = np.block([[state_scale * state.R, state_scale * state.Z],
                            [row_scale[:, None] * H, row_scale[:, None] * T]])
        factor = np.linalg.qr(stacked, mode="r")[:n]
        signs = np.where(np.diag(factor) < 0, -1.0, 1.0)
        factor *= signs[:, None]
        state.R = np.triu(factor[:, :n])
        state.Z = factor[:, n:]
        return state

    def qr_downdate(self, state, H, T):
        H, T = _as_2d_float(H, "H"), _as_2d_float(T, "T")
        _check_rows(H, T)
        n = state.R.shape[0]
        R, Z = state.R.copy(), state.Z.copy()
        for h, t in zip(H, T, strict=True):
            x, y = h.copy(), t.copy()
            for i in range(n):
                pivot = R[i, i] ** 2 - x[i] ** 2
                if not pivot > 0:
                    raise DowndateRefused(f"downdate would make pivot {i} non-positive "
                                          f"({pivot:.3g}); R left unchanged")
                rho = math.sqrt(pivot)
                c, s = rho / R[i, i], x[i] / R[i, i]
                R[i, i:] = (R[i, i:] - s * x[i:]) / c
                x[i:] = c * x[i:] - s * R[i, i:]
                Z[i] = (Z[i] - s * y) / c
                y = c * y - s * Z[i]
        state.R, state.Z = R, Z
        return state

    def qr_add_outputs(self, state, count):
        state.Z = np.hstack([state.Z, np.zeros((state.Z.shape[0], count))])
        return state

    def qr_solve(self, state):
        from scipy.linalg import solve_triangular

        return solve_triangular(state.R, state.Z, lower=False)


@dataclass
class RidgeReport:
    """What :meth:`FixedBackend.ridge_report` found about one one-step solve.

    Attributes
    ----------
    W : numpy.ndarray
        The solution, dequantised and unscaled (float64 view of the core's integers).
    h_shift, t_shift : int
        ``H`` was multiplied by ``2**-h_shift`` and ``T`` by ``2**-t_shift`` before quantising;
        the core's ``X`` is ``W·2**(h_shift - t_shift)``.
    lam_effective : float
        The λ the core really used (its stored integer, unscaled).
    core_bound : float
        Bound on ``‖W - W_q‖_F`` where ``W_q`` is the exact ridge solution of the quantised
        inputs (from :func:`tiersolve.gen.cholesky_model.forward_error_bound`).
    h_error, t_error : float
        ``‖H_q - H‖_F`` and ``‖T_q - T‖_F`` (quantisation of the inputs, unscaled).
    h_difference, t_difference : numpy.ndarray
        ``H_q - H`` and ``T_q - T`` themselves.
    """

    W: np.ndarray
    h_shift: int
    t_shift: int
    lam_effective: float
    core_bound: float
    h_error: float
    t_error: float

    h_difference: np.ndarray | None = None
    t_difference: np.ndarray | None = None

    def bound(self, H, T, lam, W_reference) -> float:
        """Bound on ``‖W - W_reference‖_F`` for the float64 ridge solution ``W_reference``
        of ``(H, T, lam)``.

        Three parts: the core's error (:attr:`core_bound`); changing ``λ`` to the quantised
        ``λ_q`` moves ``W`` by ``δ_λ <= |λ_q - λ|·‖W‖_F/λ_q``; quantising ``H`` and ``T``
        (``E = H_q - H``, ``F = T_q - T``, both known exactly) moves it by at most
        ``‖EᵀR_q‖_F/λ_q + ‖F - E W_q‖_F/(2√λ_q)`` (the identity of
        :func:`ridge_perturbation_bound`, with the products evaluated instead of bounded by
        norms), where ``W_q = W(H, T, λ_q)`` and ``R_q = T - H W_q`` are within ``δ_λ`` and
        ``‖H‖₂·δ_λ`` of the reference's, which the bound adds.
        """
        H = np.asarray(H, dtype=np.float64)
        T = np.asarray(T, dtype=np.float64)
        lam_q = self.lam_effective
        w_norm = float(np.linalg.norm(W_reference))
        lam_term = abs(lam_q - float(lam)) * w_norm / lam_q
        E, F = self.h_difference, self.t_difference
        residual = T - H @ W_reference
        e_norm = float(np.linalg.norm(E, 2))
        first = float(np.linalg.norm(E.T @ residual)) + e_norm * np.linalg.norm(H, 2) * lam_term
        second = float(np.linalg.norm(F - E @ W_reference)) + e_norm * lam_term
        return float(self.core_bound + lam_term + first / lam_q
                     + second / (2 * math.sqrt(lam_q)))


def ridge_perturbation_bound(residual_norm, w_norm, lam, h_error, t_error) -> float:
    """Bound on how far the ridge solution moves when its inputs move.

    For ``W = (HᵀH + λI)⁻¹HᵀT`` and perturbed ``H̃ = H + E``, ``T̃ = T + F``
    (``‖E‖₂ <= ‖E‖_F = h_error``, ``‖F‖_F = t_error``), using ``HᵀT = (HᵀH + λI)W``:
    ``W̃ - W = Ã⁻¹(Eᵀ(T - HW) + H̃ᵀ(F - EW))`` with ``‖Ã⁻¹‖₂ <= 1/λ`` and
    ``‖Ã⁻¹H̃ᵀ‖₂ <= 1/(2√λ)``, so

    ``‖W̃ - W‖_F <= h_error·‖T - HW‖_F / λ + (t_error + h_error·‖W‖_F) / (2√λ)``.

    Parameters are the norms of the *unperturbed* problem: ``residual_norm = ‖T - HW‖_F``,
    ``w_norm = ‖W‖_F``.
    """
    return float(h_error * residual_norm / lam
                 + (t_error + h_error * w_norm) / (2 * math.sqrt(lam)))


def _largest_shift_below(value: float, limit: float) -> int:
    """Smallest integer ``e`` with ``value·2**-e < limit`` (``value >= 0``)."""
    if value <= 0:
        return -64
    e = math.floor(math.log2(value / limit))
    while value * 2.0**-e >= limit:
        e += 1
    while value * 2.0 ** -(e - 1) < limit:
        e -= 1
    return e


class FixedBackend(SolverBackend):
    """The bit-exact models of the cores: what the hardware computes, integer for integer.

    Parameters
    ----------
    fmt : FixedFormat or str
        Data format of the Cholesky core (default ``Q8.16``, 24 bits: the widest it supports).
    inverse_format : FixedFormat or str
        Format of the core's pivot inverses ``1/√s`` (default ``Q4.20``: pivots down to
        ``1/64`` after scaling; more fraction bits than ``Q8.16`` make the core's error ~10x
        smaller, see :func:`~tiersolve.gen.cholesky_model.forward_error_bound`).
    guard_bits : int
        Guard bits of the core's wide accumulators (default 4).
    head_format : FixedFormat or str
        Data format of the incremental-updater model that holds the head (default ``Q10.18``,
        28 bits: the widest :mod:`tiersolve.gen.qr_model` supports).
    head_rotation : {"multiplier", "cordic"}
        Rotation kind of the head's model (downdates always use the multiplier kind).
    exact_reference : bool
        Fold rows with :func:`tiersolve.gen.qr_model.fold_row` itself instead of this module's
        vectorised twin of its multiplier rotation (same integers, ~10x slower). CORDIC
        rotations always use ``fold_row``.
    rhs_block : int or None
        Solve at most this many right-hand sides (columns of ``T``) per one-step job, block
        after block, each scaled for its own columns (None: all at once). A device's
        ``k_max`` (:class:`DeviceBackend` sets it; its :meth:`~DeviceBackend.
        matching_fixed_backend` has the same). The ridge problem separates by columns, so
        only the rounding differs.

    One-step solves (range analysis)
    --------------------------------
    Write ``a = fmt.int_bits``, ``f = fmt.frac_bits``, ``top = 2**(a-1)`` (the format's range)
    and ``A = HᵀH + λI``. The backend scales ``H`` by ``2**-e_h`` and ``T`` by ``2**-e_t``
    (``λ`` by ``2**-2e_h``), exact powers of two, so that with a margin of one eighth
    (``limit = top·7/8``, which absorbs the rounding of the inputs):

    * ``e_h`` is the smallest shift with ``max_j A_jj·2**-2e_h < limit``; every ``A_ij``,
      every entry of ``L`` (``|L_ij| <= √A_ii``) and every partial Gram sum then fits;
    * ``e_t``: with ``τ = max_c ‖t_c‖``, ``|B_jc| <= √A_jj·‖t_c‖`` and ``|Y_jc| <= ‖t_c‖``
      always fit from ``e_t,first`` on; ``X`` (``‖x_c‖ <= 2**(e_h - e_t)·‖t_c‖/(2√λ)``, ridge)
      and the back-substitution sums (``|L_ii X_i| <= √max A_jj·|X|``) fit for sure from
      ``e_t,safe`` on. That worst case (``t`` along the singular vector of ``σ = √λ``) wastes
      bits on most data, so the solve is first run with ``e_t,first`` and, while the model's
      sticky saturation flag is raised, again with one more bit of shift, up to
      ``e_t,safe`` (at most ``e_t,safe - e_t,first`` repeats; a device does the same with its
      saturation flag). Nothing clipped is ever returned;
    * pivots are at least ``λ·2**-2e_h`` (``λ_min(A) >= λ``); if that is below
      ``inverse_format.max**-2`` the inverse would clip and the solve raises ``ValueError``
      (λ too small for the data's range in this format).

    A saturation or a non-positive pivot reported by the model raises ``ArithmeticError``:
    with the shifts above neither can happen, so either means a bug, never silent garbage.
    """

    name = "fixed"

    def __init__(self, fmt="Q8.16", inverse_format="Q4.20", guard_bits=4, *,
                 head_format="Q10.18", head_rotation="multiplier", exact_reference=False,
                 rhs_block=None):
        self.fmt = FixedFormat.parse(fmt)
        self.inverse_format = FixedFormat.parse(inverse_format)
        if not isinstance(guard_bits, int) or isinstance(guard_bits, bool):
            raise TypeError(f"guard_bits must be an integer, not {guard_bits!r}")
        self.guard_bits = guard_bits
        self.head_format = FixedFormat.parse(head_format)
        if head_rotation not in ("multiplier", "cordic"):
            raise ValueError(f"head_rotation must be 'multiplier' or 'cordic', "
                             f"not {head_rotation!r}")
        self.head_rotation = head_rotation
        self.exact_reference = bool(exact_reference)
        if rhs_block is not None and (isinstance(rhs_block, bool)
                                      or not isinstance(rhs_block, int) or rhs_block < 1):
            raise ValueError(f"rhs_block must be a positive integer or None, not {rhs_block!r}")
        self.rhs_block = rhs_block
        self.last_report: RidgeReport | None = None

    # -- one-step solves (Cholesky core model) --------------------------------------------

    def ridge_solve(self, H, T, lam):
        T = _as_2d_float(T, "T")
        block = self.rhs_block
        if block is None or T.shape[1] <= block:
            return self.ridge_report(H, T, lam).W
        return np.hstack([self.ridge_report(H, T[:, begin:begin + block], lam).W
                          for begin in range(0, T.shape[1], block)])

    def _gram_solve(self, n, k, lam_q, rows):
        """The Cholesky core's Gram-mode job on stored integers (``.x``, ``.npd``,
        ``.npd_index``, ``.saturated``): its model here, the device in :class:`DeviceBackend`."""
        from tiersolve.gen.cholesky_model import cholesky_model

        return cholesky_model(self.fmt, "gram", n, k, lam_q, rows, n_max=max(n, 2), k_max=k,
                              guard_bits=self.guard_bits, inverse_format=self.inverse_format)

    def ridge_report(self, H, T, lam) -> RidgeReport:
        """Solve like :meth:`ridge_solve` (all of ``T``'s columns in one job, whatever
        ``rhs_block``); return the solution with its shifts and bounds."""
        from tiersolve.gen.cholesky_model import forward_error_bound

        H, T = _as_2d_float(H, "H"), _as_2d_float(T, "T")
        _check_rows(H, T)
        lam = _check_lambda(lam)
        m, n = H.shape
        k = T.shape[1]
        fmt = self.fmt
        top = 2.0 ** (fmt.int_bits - 1)
        limit = top * 7 / 8
        diag = np.einsum("ij,ij->j", H, H) + lam
        a_max = float(diag.max())
        h_shift = _largest_shift_below(a_max, limit) // 2
        while a_max * 4.0**-h_shift >= limit:
            h_shift += 1
        lam_scaled = lam * 4.0**-h_shift
        lam_q = fmt.const(lam_scaled) if lam_scaled <= fmt.max else None
        if lam_q is None or lam_q <= 0:
            raise ValueError(f"lam={lam} is too small for the data's range in {fmt}: it rounds "
                             f"to 0 after scaling by 2**{-2 * h_shift}")
        if lam_q * fmt.resolution < self.inverse_format.max ** -2:
            raise ValueError(
                f"lam={lam} is too small for the data's range in {fmt}: after scaling, pivots "
                f"can be as small as {lam_q * fmt.resolution:.3g}, below "
                f"{self.inverse_format.max ** -2:.3g} where the pivot inverse in "
                f"{self.inverse_format} clips; raise lam or widen inverse_format")
        lam_scaled_q = lam_q * fmt.resolution
        tau = float(np.sqrt(np.einsum("ij,ij->j", T, T)).max())
        a_scaled = a_max * 4.0**-h_shift
        root = max(math.sqrt(a_scaled), 1.0)
        if tau == 0:
            t_first = t_safe = 0
        else:
            # certain: |B|, |Y| (the right-hand side and the forward substitution)
            t_first = _largest_shift_below(tau * root, limit)
            # worst case of X and of the back substitution, |L_ii X_i| <= √a_max·|X|
            x_bound = 2.0**h_shift * tau / (2 * math.sqrt(lam * 4.0**-h_shift)) * root
            t_safe = max(t_first, _largest_shift_below(x_bound, limit))
        Hq = fmt.quantise(np.ldexp(H, -h_shift)).values
        for t_shift in range(t_first, t_safe + 1):
            Tq = fmt.quantise(np.ldexp(T, -t_shift)).values
            result = self._gram_solve(n, k, lam_q, np.hstack([Hq, Tq]))
            if result.npd or not result.saturated:
                break
        if result.npd:
            raise ArithmeticError(f"the Cholesky model met a non-positive pivot at column "
                                  f"{result.npd_index} (n={n}, lam={lam}): a range-analysis bug")
        if result.saturated:
            raise ArithmeticError(f"the Cholesky model saturated (n={n}, k={k}, m={m}, "
                                  f"shifts {h_shift}, {t_shift}): a range-analysis bug")
        W = np.ldexp(fmt.dequantise(result.x), t_shift - h_shift)
        # error bound of the core against the exact solution of the quantised problem
        Hd, Td = fmt.dequantise(Hq), fmt.dequantise(Tq)
        A_q = Hd.T @ Hd + lam_scaled_q * np.eye(n)
        X_q = np.linalg.solve(A_q, Hd.T @ Td)
        relative = forward_error_bound(A_q, X_q, fmt, self.inverse_format)
        core_bound = relative * np.linalg.norm(X_q) * 2.0 ** (t_shift - h_shift)
        report = RidgeReport(
            W=W, h_shift=h_shift, t_shift=t_shift,
            lam_effective=lam_scaled_q * 4.0**h_shift, core_bound=float(core_bound),
            h_error=float(np.linalg.norm(np.ldexp(Hd, h_shift) - H)),
            t_error=float(np.linalg.norm(np.ldexp(Td, t_shift) - T)),
            h_difference=np.ldexp(Hd, h_shift) - H, t_difference=np.ldexp(Td, t_shift) - T)
        self.last_report = report
        return report

    # -- head (QR / incremental-updater model) --------------------------------------------

    def qr_init(self, n, k, lam, capacity=None, feature_bound=1.0, target_bound=1.0):
        """A head state on the incremental-updater model, with its input shifts.

        Range analysis (``top = 2**(a-1)`` of ``head_format``, ``limit = top·7/8``): every
        column norm of ``[H; √λ I]`` is at most ``√(capacity·feature_bound² + λ)`` (rows have
        ``|h| <= feature_bound``, at most ``capacity`` forgetting-weighted samples are held),
        which bounds ``|R|``; ``H`` is scaled by ``2**-e_h`` with the smallest ``e_h`` that puts
        this below ``limit``. ``|Z| <= √capacity·target_bound`` and, without forgetting,
        ``|W| <= ‖z_c‖/σ_min(R) <= √capacity·target_bound/√λ``: ``T`` is scaled by ``2**-e_t``
        with the smallest ``e_t`` that puts both (in scaled units) below ``limit``. With
        forgetting (β < 1) the prior ``√λ I`` decays, ``σ_min(R) >= √λ`` no longer holds and
        ``W`` is not bounded a priori: the model's sticky saturation flag is checked after
        every operation and raises ``ArithmeticError`` instead of returning clipped values.
        """
        from tiersolve.gen.qr_model import IncrementalUpdaterModel, QRConfig

        lam = _check_lambda(lam)
        capacity = float(1 << 16 if capacity is None else capacity)
        config = QRConfig(FixedFormat.parse(self.head_format), self.head_rotation)
        fmt = config.fmt
        limit = 2.0 ** (fmt.int_bits - 1) * 7 / 8
        h_shift = _largest_shift_below(math.sqrt(capacity * feature_bound**2 + lam), limit)
        lam_scaled = lam * 4.0**-h_shift
        lam_sqrt = fmt.quantise(math.sqrt(lam_scaled)).values.item()
        if lam_sqrt < 1:
            raise ValueError(f"lam={lam} rounds to 0 in {fmt} after scaling the features by "
                             f"2**{-h_shift} for capacity={capacity:g}; raise lam or lower "
                             f"capacity")
        lam_scaled = (lam_sqrt * fmt.resolution) ** 2
        z_max = math.sqrt(capacity) * target_bound
        t_shift = _largest_shift_below(max(z_max, z_max / math.sqrt(lam_scaled)
                                           * 2.0 ** h_shift), limit)
        model = IncrementalUpdaterModel(config, n, k, lam_sqrt=lam_sqrt)
        return _FixedHeadState(model=model, h_shift=h_shift, t_shift=t_shift,
                               feature_bound=feature_bound, target_bound=target_bound,
                               capacity=capacity, lam=lam_scaled * 4.0**h_shift)

    def _quantise_rows(self, state, H, T):
        H, T = _as_2d_float(H, "H"), _as_2d_float(T, "T")
        _check_rows(H, T)
        n, k = state.model.n, state.model.k
        if H.shape[1] != n or T.shape[1] != k:
            raise ValueError(f"rows must have {n} + {k} columns, not {H.shape[1]} + {T.shape[1]}")
        if len(H) and np.abs(H).max() > state.feature_bound:
            raise ValueError(f"a feature of magnitude {np.abs(H).max():.4g} exceeds the bound "
                             f"{state.feature_bound:.4g} the fixed head was scaled for")
        if len(T) and np.abs(T).max() > state.target_bound:
            raise ValueError(f"a target of magnitude {np.abs(T).max():.4g} exceeds the bound "
                             f"{state.target_bound:.4g} the fixed head was scaled for")
        fmt = state.model.config.fmt
        return (fmt.quantise(np.ldexp(H, -state.h_shift)).values,
                fmt.quantise(np.ldexp(T, -state.t_shift)).values)

    def _fold(self, state, rows, forgetting, hyperbolic):
        model = state.model
        if self.exact_reference or model.config.rotation != "multiplier":
            from tiersolve.gen.qr_model import fold_row

            result = fold_row(model.config, model.A, rows, forgetting, hyperbolic)
            return result.A, result.refused, result.saturated
        return _fold_row_multiplier(model.config, model.A, rows, forgetting, hyperbolic)

    def _schedule(self, state, count, beta, forget_per, weight):
        """Forgetting constant and head weight of each of ``count`` new rows, starting from
        ``weight``; ValueError (nothing folded) if the weight would pass the capacity."""
        constant = None if beta == 1 else state.model.config.forgetting_constant(beta)
        forgettings, weights = [], []
        for index in range(count):
            forgetting = constant if (forget_per == "sample" or index == 0) else None
            weight = (beta if forgetting is not None else 1.0) * weight + 1.0
            if weight > state.capacity * (1 + 1e-12):
                raise ValueError(f"the fixed head holds at most capacity={state.capacity:g} "
                                 f"(forgetting-weighted) samples and would reach {weight:.6g} "
                                 f"with these {count} rows; give a larger capacity (nothing "
                                 "was folded in)")
            forgettings.append(forgetting)
            weights.append(weight)
        return forgettings, weights

    def qr_check(self, state, H, T, beta=1.0, forget_per="sample", removed=None):
        weight = state.weight
        if removed is not None:
            self._quantise_rows(state, *removed)
            weight -= len(removed[0])
        self._quantise_rows(state, H, T)
        self._schedule(state, len(_as_2d_float(H, "H")), beta, forget_per, weight)

    def qr_update(self, state, H, T, beta=1.0, forget_per="sample"):
        Hq, Tq = self._quantise_rows(state, H, T)
        rows = np.hstack([Hq, Tq])
        forgettings, weights = self._schedule(state, len(rows), beta, forget_per, state.weight)
        self._update_rows(state, rows, forgettings, weights)
        return state

    def _update_rows(self, state, rows, forgettings, weights) -> None:
        """Fold ``rows`` in order, row ``i`` after forgetting ``forgettings[i]`` (None: none);
        ``weights[i]`` is the head's weight once row ``i`` is in. If a row saturates, the
        model is put back as it was before the first row."""
        saved = (state.model.A.copy(), state.weight, state.rows)
        try:
            self._update_rows_in_order(state, rows, forgettings, weights)
        except ArithmeticError:
            state.model.A, state.weight, state.rows = saved
            raise

    def _update_rows_in_order(self, state, rows, forgettings, weights) -> None:
        for row, forgetting, weight in zip(rows, forgettings, weights, strict=True):
            self._update_row(state, row, forgetting)
            state.weight = weight
            state.rows += 1

    def _update_row(self, state, row, forgetting) -> None:
        """Fold one quantised row in (after forgetting, if ``forgetting`` is not None)."""
        A, _, saturated = self._fold(state, row, forgetting, False)
        if saturated:
            raise ArithmeticError("the incremental-updater model saturated during an "
                                  "update (see FixedBackend.qr_init)")
        state.model.A = A

    def qr_downdate(self, state, H, T):
        Hq, Tq = self._quantise_rows(state, H, T)
        model = state.model
        saved = model.A.copy()
        rows = np.hstack([Hq, Tq])
        for row in rows:
            A, refused, saturated = self._fold(state, row, None, True)
            if refused or saturated:
                model.A = saved
                raise DowndateRefused("the incremental-updater model refused a downdate "
                                      "(it would lose positive definiteness); R left unchanged")
            model.A = A
        state.weight -= float(len(rows))    # (after the last: a refusal leaves it as it was)
        return state

    def qr_add_outputs(self, state, count):
        from tiersolve.gen.qr_model import IncrementalUpdaterModel

        old = state.model
        model = IncrementalUpdaterModel(old.config, old.n, old.k + count, lam_sqrt=0)
        pad = np.zeros((old.n, count), dtype=np.int64)
        model.load(R=old.R, Z=np.hstack([old.Z, pad]), W=np.hstack([old.W, pad]))
        state.model = model
        return state

    def qr_solve(self, state):
        model = state.model
        before = model.saturated
        model.saturated = False
        W = model.solve()
        saturated, model.saturated = model.saturated, before
        if saturated:
            raise ArithmeticError("the incremental-updater model saturated in the back "
                                  "substitution (W out of range; see FixedBackend.qr_init)")
        return np.ldexp(model.config.fmt.dequantise(W), state.t_shift - state.h_shift)


class DeviceBackend(FixedBackend):
    """The cores on a device: the :class:`FixedBackend`'s integers, computed by the gateware.

    The device must have the Cholesky core and the incremental-update core
    (``cores=cholesky,updater``). The backend takes the device's formats (data format for both
    cores, pivot-inverse format, guard bits, rotation kind), plans every job exactly as a
    :class:`FixedBackend` with those formats does (same shifts, same stored integers, same
    retries on saturation), and has the device compute it: so ``FixedBackend(fmt=f,
    inverse_format=i, guard_bits=g, head_format=f, head_rotation=r)`` and this backend give
    the same results bit for bit (:meth:`matching_fixed_backend`).

    Parameters
    ----------
    device : tiersolve.host.device.Device or str
        An open device, or a device URL (opened here, closed by :meth:`close`).

    Notes
    -----
    The device holds one head: a second :meth:`qr_init` replaces the first state (using the
    first afterwards raises ``ValueError``). A refused or saturating downdate is undone with a
    RESET and a LOAD of the saved ``R``, ``Z``, ``W`` (the device's flags are sticky until a
    RESET).
    """

    name = "device"

    def __init__(self, device):
        from tiersolve.host.device import Device
        from tiersolve.host.device import open as open_device

        self._owned = not isinstance(device, Device)
        self.device = open_device(device) if self._owned else device
        info = self.device.info()
        if "updater" not in info.cores:
            if self._owned:
                self.device.close()
            raise ValueError(f"the device needs the incremental-update core (cores: "
                             f"{', '.join(info.cores)}); build it with cores=cholesky,updater")
        super().__init__(info.fmt, info.inverse_format, info.guard_bits, head_format=info.fmt,
                         head_rotation=info.updater_rotation, rhs_block=info.k_max)
        self._current = None

    def qr_snapshot(self, state):
        return None  # reading R, Z, W back for every call would cost a transfer each time

    def __getstate__(self):
        raise TypeError("a DeviceBackend holds an open device and cannot be pickled (an "
                        "estimator fitted on a device pickles without it: see "
                        "TwoTierClassifier)")

    def _check_sizes(self, what, n, k, columns="outputs"):
        info = self.device.info()
        if n > info.n_max:
            raise ValueError(f"{what} has n = {n} unknowns but the device's n_max is "
                             f"{info.n_max} (use a narrower layer, or a larger device)")
        if k > info.k_max:  # (ridge_solve sends its right-hand sides in blocks of k_max)
            raise ValueError(f"{what} has k = {k} {columns} but the device's k_max is "
                             f"{info.k_max} (fewer {columns}, or a larger device)")

    def matching_fixed_backend(self) -> FixedBackend:
        """The :class:`FixedBackend` this device agrees with bit for bit."""
        return FixedBackend(self.fmt, self.inverse_format, self.guard_bits,
                            head_format=self.head_format, head_rotation=self.head_rotation,
                            rhs_block=self.rhs_block)

    def close(self) -> None:
        """Close the device if this backend opened it."""
        if self._owned:
            self.device.close()

    # -- one-step solves ----------------------------------------------------------------------

    def _gram_solve(self, n, k, lam_q, rows):
        from types import SimpleNamespace

        from tiersolve.designs import regmap
        from tiersolve.host.device import Job
        from tiersolve.host.errors import NotPositiveDefinite, Saturated

        self._check_sizes("the one-step solve", n, k, "right-hand sides")
        job = Job(regmap.Op.CHOLESKY_GRAM, n, k, int(lam_q), np.asarray(rows, dtype=np.int64),
                  0)
        outcome = SimpleNamespace(x=None, npd=False, npd_index=0, saturated=False)
        try:
            outcome.x = self.device.run(job)
        except NotPositiveDefinite as error:
            outcome.npd, outcome.npd_index = True, error.index
        except Saturated:
            outcome.saturated = True
        return outcome

    # -- head -----------------------------------------------------------------------------------

    def _command(self, state, op, *, new_saturation="raise", **kwargs):
        from tiersolve.designs import regmap

        if state is not self._current:
            raise ValueError("this head state is no longer on the device (a later qr_init "
                             "replaced it)")
        if state.broken:
            raise ValueError("this head state is no longer consistent: an update failed "
                             "part-way on the device (its updater saturated); start a new "
                             "one (qr_init, or the estimator's fit)")
        model = state.model
        status, values = self.device.updater_command(regmap.UpdaterOp(op), model.n, model.k,
                                                     **kwargs)
        if status["saturated"] and new_saturation == "raise":
            raise ArithmeticError(f"the device's updater saturated during "
                                  f"{regmap.UpdaterOp(op).name} (see FixedBackend.qr_init)")
        return status, values

    def _read(self, state, select, columns):
        from tiersolve.designs import regmap

        _, values = self._command(state, regmap.UpdaterOp.READ, select=select,
                                  outputs=state.model.n * columns, new_saturation="ignore")
        return values.reshape(state.model.n, columns)

    def _restore(self, state, R, Z, W):
        from tiersolve.designs import regmap

        self._command(state, regmap.UpdaterOp.RESET, value=0)
        for select, matrix in ((regmap.UpdaterSelect.R, R), (regmap.UpdaterSelect.Z, Z),
                               (regmap.UpdaterSelect.W, W)):
            self._command(state, regmap.UpdaterOp.LOAD, select=select, data=matrix)

    def qr_init(self, n, k, lam, capacity=None, feature_bound=1.0, target_bound=1.0):
        from tiersolve.designs import regmap

        self._check_sizes("the head", n, k)
        state = super().qr_init(n, k, lam, capacity, feature_bound, target_bound)
        self._current = state
        self._command(state, regmap.UpdaterOp.RESET, value=state.model.lam_sqrt)
        return state

    def _update_row(self, state, row, forgetting) -> None:
        from tiersolve.designs import regmap

        self._command(state, regmap.UpdaterOp.UPDATE, forgetting=forgetting, data=row)

    def _update_rows(self, state, rows, forgettings, weights) -> None:
        """As the base class, but on a design built with FOLD (``info().updater_fold``) each
        run of rows with the same forgetting constant (or none) goes in FOLD commands (the
        rows in flight together on the device: the same integers as one UPDATE per row) when
        that ends sooner (:meth:`~tiersolve.host.device.Device.fold_is_quicker`)."""
        try:
            self._device_update_rows(state, rows, forgettings, weights)
        except BaseException:
            # the rows before the failure are in the device's R, Z: no longer the state the
            # host's counters describe, and reading it back before every call would cost a
            # transfer each time
            state.broken = True
            raise

    def _device_update_rows(self, state, rows, forgettings, weights) -> None:
        from tiersolve.designs import regmap

        if not self.device.info().updater_fold:
            self._update_rows_in_order(state, rows, forgettings, weights)
            return
        most = fold_row_limit(state.model.config.fmt.width)
        start = 0
        while start < len(rows):
            end = start
            while (end < len(rows) and forgettings[end] == forgettings[start]
                   and end - start < most):
                end += 1
            if self.device.fold_is_quicker(state.model.n, state.model.k, end - start,
                                           forgettings[start]):
                self._command(state, regmap.UpdaterOp.FOLD, value=end - start,
                              forgetting=forgettings[start], data=rows[start:end])
                state.weight = weights[end - 1]
                state.rows += end - start
            else:
                for index in range(start, end):
                    self._update_row(state, rows[index], forgettings[index])
                    state.weight = weights[index]
                    state.rows += 1
            start = end

    def qr_downdate(self, state, H, T):
        from tiersolve.designs import regmap

        Hq, Tq = self._quantise_rows(state, H, T)
        saved = [self._read(state, select, columns) for select, columns in (
            (regmap.UpdaterSelect.R, state.model.n), (regmap.UpdaterSelect.Z, state.model.k),
            (regmap.UpdaterSelect.W, state.model.k))]
        rows = np.hstack([Hq, Tq])
        fold = self.device.downdates_in_fold(state.model.n, state.model.k, len(rows))
        if fold:
            # FOLDs of downdates: the integers of one DOWNDATE per row, rows in flight
            # together (a refused FOLD leaves R, Z as they were; a saturating one is undone
            # below, as a saturating DOWNDATE is)
            most = fold_row_limit(state.model.config.fmt.width)
            batches = [rows[start:start + most] for start in range(0, len(rows), most)]
        else:
            batches = [row[np.newaxis] for row in rows]
        for batch in batches:
            if fold:
                status, _ = self._command(state, regmap.UpdaterOp.FOLD, value=len(batch),
                                          select=regmap.UpdaterFoldKind.DOWNDATE, data=batch,
                                          new_saturation="ignore")
            else:
                status, _ = self._command(state, regmap.UpdaterOp.DOWNDATE, data=batch[0],
                                          new_saturation="ignore")
            if status["refused"] or status["saturated"]:
                self._restore(state, *saved)    # (the batches before it are undone too)
                raise DowndateRefused("the device's updater refused a downdate (it would lose "
                                      "positive definiteness); R left unchanged")
        state.weight -= float(len(rows))
        return state

    def qr_add_outputs(self, state, count):
        from tiersolve.designs import regmap
        from tiersolve.gen.qr_model import IncrementalUpdaterModel

        old = state.model
        if old.k + count > self.device.info().k_max:
            raise ValueError(f"{old.k + count} outputs exceed the device's k_max = "
                             f"{self.device.info().k_max}")
        R = self._read(state, regmap.UpdaterSelect.R, old.n)
        pad = np.zeros((old.n, count), dtype=np.int64)
        Z = np.hstack([self._read(state, regmap.UpdaterSelect.Z, old.k), pad])
        W = np.hstack([self._read(state, regmap.UpdaterSelect.W, old.k), pad])
        state.model = IncrementalUpdaterModel(old.config, old.n, old.k + count, lam_sqrt=0)
        self._restore(state, R, Z, W)
        return state

    def qr_solve(self, state):
        from tiersolve.designs import regmap

        self._command(state, regmap.UpdaterOp.SOLVE)
        W = self._read(state, regmap.UpdaterSelect.W, state.model.k)
        return np.ldexp(state.model.config.fmt.dequantise(W), state.t_shift - state.h_shift)


@dataclass
class _FixedHeadState:
    model: object
    h_shift: int
    t_shift: int
    feature_bound: float
    target_bound: float
    capacity: float
    lam: float
    weight: float = 0.0
    rows: int = 0
    broken: bool = False


def _fold_row_multiplier(config, A, row, forgetting, hyperbolic):
    """:func:`tiersolve.gen.qr_model.fold_row` for the multiplier rotation, vectorised.

    The same integer arithmetic (one pivot at a time, the pair updates in int64: ``|c| < 2**
    (w+3)`` and ``|x| < 2**(w-1)`` keep every sum below ``2**60`` for ``w <= 28``);
    ``tests/host/test_learn.py`` checks it equals ``fold_row`` bit for bit. Returns
    ``(A, refused, saturated)``.
    """
    fmt = config.fmt
    w = config.coefficient_frac_bits
    lo, hi = fmt.min_int, fmt.max_int
    coefficient = config.coefficient_format
    c_lo, c_hi = coefficient.min_int, coefficient.max_int
    mantissa_bits = config.mantissa_bits
    dividend = 1 << (2 * config.rsqrt_format.frac_bits + config.mantissa_format.frac_bits)
    g_max = config.rsqrt_format.max_int
    frac = config.forgetting_frac_bits
    half = 1 << (w - 1)
    sign = -1 if hyperbolic else 1
    A = np.asarray(A, dtype=np.int64)
    n = A.shape[0]
    out = A.copy()
    work = np.asarray(row, dtype=np.int64).copy()
    saturated = False
    for i in range(n):
        pivot_row = A[i, i:]
        if forgetting is not None:
            pivot_row = (pivot_row * forgetting + (1 << (frac - 1))) >> frac
        a, b = int(pivot_row[0]), int(work[i])
        p = a * a - b * b if hyperbolic else a * a + b * b
        if p <= 0:
            if hyperbolic:
                return A.copy(), True, saturated
            r, c, s = 0, 1 << w, 0
        else:
            e = -((mantissa_bits - p.bit_length()) // 2)
            q = p >> (2 * e) if e >= 0 else p << (-2 * e)
            g = min(math.isqrt(dividend // q), g_max)
            shift = (mantissa_bits - 2) // 2 + e
            c, s = _round_up(a * g, shift), _round_up(b * g, shift)
            r = _round_up(p * g, w + shift)
            c_clip, s_clip, r_clip = not c_lo <= c <= c_hi, not c_lo <= s <= c_hi, r > hi
            if hyperbolic and (c_clip or s_clip):
                return A.copy(), True, saturated
            c, s, r = min(max(c, c_lo), c_hi), min(max(s, c_lo), c_hi), min(max(r, lo), hi)
            saturated |= c_clip or s_clip or r_clip
        x, y = pivot_row[1:], work[i + 1:]
        upper = (c * x + sign * s * y + half) >> w
        lower = (c * y - s * x + half) >> w
        if upper.size and (upper.min() < lo or upper.max() > hi or lower.min() < lo
                           or lower.max() > hi):
            saturated = True
            upper, lower = np.clip(upper, lo, hi), np.clip(lower, lo, hi)
        out[i, i] = r
        out[i, i + 1:] = upper
        work[i + 1:] = lower
        work[i] = 0
    return out, False, saturated


def _round_up(value: int, shift: int) -> int:
    if shift <= 0:
        return value << -shift
    return (value + (1 << (shift - 1))) >> shift


@contextlib.contextmanager
def _closing_on_failure(backend, given):
    """``backend``; closed if the block raises and it was opened here (from a URL in
    ``given``), so that a failed ``fit`` does not leave a device open until collected."""
    try:
        yield backend
    except BaseException:
        if backend is not given and hasattr(backend, "close"):
            backend.close()
        raise


class _DetachedBackend(SolverBackend):
    """Stands for a device backend in an unpickled estimator: every solve raises."""

    def __init__(self, name):
        self.name = name

    def _detached(self, *args, **kwargs):
        raise RuntimeError(f"this estimator was pickled with its {self.name} backend, whose "
                           "head (R, Z) lives on the device and did not travel with it: "
                           "predict works, fit() opens the device again, partial_fit needs "
                           "a fit first")

    ridge_solve = qr_init = qr_update = qr_downdate = qr_add_outputs = qr_solve = _detached
    qr_check = qr_snapshot = qr_restore = _detached


def get_backend(backend) -> SolverBackend:
    """A backend from its name (``"float64"``, ``"fixed"``) or a :class:`SolverBackend`."""
    if isinstance(backend, SolverBackend):
        return backend
    if backend == "float64":
        return Float64Backend()
    if backend == "fixed":
        return FixedBackend()
    if isinstance(backend, str) and backend.split("://")[0] in ("sim", "vsim", "uart", "pcie"):
        return DeviceBackend(backend)
    raise ValueError(f"backend must be 'float64', 'fixed', a device URL or a SolverBackend, "
                     f"not {backend!r}")


# -- helpers -----------------------------------------------------------------------------------


def _as_2d_float(a, name):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, not {a.ndim}-D")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or infinity")
    return a


def _check_rows(H, T):
    if H.shape[0] != T.shape[0]:
        raise ValueError(f"H has {H.shape[0]} rows but T has {T.shape[0]}")


def _check_lambda(lam):
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)):
        raise TypeError(f"lam must be a real number, not {lam!r}")
    lam = float(lam)
    if not (lam > 0 and math.isfinite(lam)):
        raise ValueError(f"lam must be positive and finite, not {lam}")
    return lam


def training_macs(n_samples, n_features, hidden_layer_sizes, n_outputs, *, head="qr",
                  direct_link=False) -> dict:
    """Multiply-accumulates of one :meth:`TwoTierClassifier.fit`, counted analytically.

    Inputs (``m`` samples, ``d₀`` features): standardisation ``m·d₀`` (one multiply each).
    Per ELM-autoencoder layer (input width ``d``, width ``L``): random projection ``m·d·L``;
    Gram accumulation of ``[H | X]`` (lower triangle, NUMERICS.md) ``m·(L(L+1)/2 + L·d)``;
    Cholesky ``L³/6``; substitutions ``L²·d``; encoding ``m·d·L``.
    Head (``n = L_last + 1`` features with the bias, ``n = L_last + d₀ + 1`` with
    ``direct_link``; ``k`` outputs): Givens QR, per row ``n`` rotations generated (``a² + b²``
    and three multiplies by the reciprocal square root: 4 MACs each) and
    ``n(n+1)/2 + n·k`` rotations applied (4 multiplies each, counted as 4 MACs), then the back
    substitution ``n²·k/2``. With ``head="gram"`` a Cholesky head is counted instead.

    Returns
    -------
    dict
        ``inputs`` (standardisation), ``layers`` (one count per layer), ``head`` and
        ``total``.
    """
    layers = []
    d = n_features
    inputs = n_samples * n_features
    total = inputs
    for width in hidden_layer_sizes:
        macs = (n_samples * d * width + n_samples * (width * (width + 1) // 2 + width * d)
                + width**3 // 6 + width**2 * d + n_samples * d * width)
        layers.append(macs)
        total += macs
        d = width
    n = d + 1 + (n_features if direct_link else 0)
    if head == "qr":
        head_macs = (4 * n_samples * (n + n * (n + 1) // 2 + n * n_outputs)
                     + n * n * n_outputs // 2)
    else:
        head_macs = (n_samples * (n * (n + 1) // 2 + n * n_outputs) + n**3 // 6
                     + n * n * n_outputs)
    total += head_macs
    return {"inputs": inputs, "layers": layers, "head": head_macs, "total": total}


# -- estimators --------------------------------------------------------------------------------


class _TwoTierBase(BaseEstimator):
    """Shared machinery of :class:`TwoTierClassifier` and :class:`TwoTierRegressor`."""

    _multi_output = False

    def __init__(self, hidden_layer_sizes=(128,), activation="tanh", alpha=1.0, ae_alpha=1.0,
                 input_clip=3.0, encoder_bias=True, direct_link=False,
                 forgetting_factor=1.0, forget_per="sample", window=None, backend="float64",
                 capacity=None, random_state=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.ae_alpha = ae_alpha
        self.input_clip = input_clip
        self.encoder_bias = encoder_bias
        self.direct_link = direct_link
        self.forgetting_factor = forgetting_factor
        self.forget_per = forget_per
        self.window = window
        self.backend = backend
        self.capacity = capacity
        self.random_state = random_state

    # -- pickling ---------------------------------------------------------------------------

    def __getstate__(self):
        """A fitted estimator whose backend is a device pickles without the device: the copy
        predicts (the head's weights are on the host), ``fit`` opens the device again from
        ``backend`` (a URL), and ``partial_fit`` raises until then (the head's ``R`` and
        ``Z`` stayed on the device)."""
        state = dict(super().__getstate__())  # a copy: Python's is the instance's __dict__
        backend = state.get("_backend_")
        if backend is not None and getattr(backend, "device", None) is not None:
            state["_backend_"] = _DetachedBackend(getattr(backend, "name", "device"))
        return state

    # -- parameter checks ------------------------------------------------------------------

    def _validate_params(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (int, np.integer)):
            sizes = (int(sizes),)
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise TypeError(f"hidden_layer_sizes must be a sequence of integers, "
                            f"not {self.hidden_layer_sizes!r}") from None
        for width in sizes:
            if isinstance(width, bool) or not isinstance(width, (int, np.integer)):
                raise TypeError(f"hidden_layer_sizes must hold integers, not {width!r}")
            if width < 1:
                raise ValueError(f"hidden_layer_sizes must be positive, not {width}")
        activations = ([self.activation] * len(sizes) if isinstance(self.activation, str)
                       else list(self.activation))
        if len(activations) != len(sizes):
            raise ValueError(f"activation has {len(activations)} entries for {len(sizes)} layers")
        for name in activations:
            if name not in ACTIVATIONS:
                raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {name!r}")
        for name in ("alpha", "ae_alpha"):
            _check_lambda(getattr(self, name))
        clip = self.input_clip
        if clip is not None:
            if isinstance(clip, bool) or not isinstance(clip, (int, float, np.number)):
                raise TypeError(f"input_clip must be a positive number or None, not {clip!r}")
            if not (clip > 0 and math.isfinite(clip)):
                raise ValueError(f"input_clip must be positive and finite or None, not {clip!r}")
        for name in ("encoder_bias", "direct_link"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.direct_link and clip is None:
            raise ValueError("direct_link=True needs input_clip (the direct inputs are the "
                             "standardised inputs divided by input_clip, so bounded by 1)")
        beta = self.forgetting_factor
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.number)) \
                or not 0 < beta <= 1:
            raise ValueError(f"forgetting_factor must be in (0, 1], not {beta!r}")
        if self.forget_per not in ("sample", "batch"):
            raise ValueError(f"forget_per must be 'sample' or 'batch', not {self.forget_per!r}")
        if self.window is not None:
            if isinstance(self.window, bool) or not isinstance(self.window, (int, np.integer)) \
                    or self.window < 1:
                raise ValueError(f"window must be a positive integer or None, not {self.window!r}")
            if beta != 1:
                raise ValueError(f"a sliding window needs forgetting_factor=1, not {beta}: "
                                 f"they are alternatives")
        capacity = self.capacity
        if capacity is not None and (isinstance(capacity, bool)
                                     or not isinstance(capacity, (int, np.integer))
                                     or capacity < 1):
            raise ValueError(f"capacity must be a positive integer or None, not {capacity!r}")
        return sizes, activations

    # -- lower tier ------------------------------------------------------------------------

    def _fit_lower_tier(self, X, backend):
        sizes, activations = self._validate_params()
        rng = check_random_state(self.random_state)
        self.input_offset_ = X.mean(axis=0)
        spread = X.std(axis=0)
        # constant features (spread at rounding level of the data's own scale) keep scale 1
        self.input_scale_ = np.where(spread > 1e-12 * float(np.abs(X).max()), spread, 1.0)
        Z = self.standardised_inputs(X)
        self.encoders_ = []
        self.encoder_biases_ = []
        self.activations_ = activations
        for width, name in zip(sizes, activations, strict=True):
            g = ACTIVATIONS[name][0]
            d = Z.shape[1]
            projection = rng.standard_normal((d, width))
            if width <= d:
                projection = np.linalg.qr(projection)[0]
            else:
                projection = np.linalg.qr(projection.T)[0].T
            projection *= math.sqrt(max(width, d) / d)
            bias = rng.uniform(-1, 1, width)
            H = g(Z @ projection + bias)
            B = backend.ridge_solve(H, Z, self.ae_alpha)  # width x d: reconstructs Z from H
            encoder = B.T  # d x width
            encoder_bias = bias if self.encoder_bias else np.zeros(width)
            self.encoders_.append(encoder)
            self.encoder_biases_.append(encoder_bias)
            Z = g(Z @ encoder + encoder_bias)
        return Z

    def standardised_inputs(self, X):
        """The lower tier's input: ``X`` standardised with the statistics of :meth:`fit`
        (per-feature mean and standard deviation) and clipped to ``±input_clip``."""
        Z = (X - self.input_offset_) / self.input_scale_
        if self.input_clip is not None:
            Z = np.clip(Z, -self.input_clip, self.input_clip)
        return Z

    def _transform(self, X):
        inputs = Z = self.standardised_inputs(X)
        for encoder, encoder_bias, name in zip(self.encoders_, self.encoder_biases_,
                                               self.activations_, strict=True):
            Z = ACTIVATIONS[name][0](Z @ encoder + encoder_bias)
        parts = [Z, inputs / self.input_clip] if self.direct_link else [Z]
        return np.hstack([*parts, np.ones((len(Z), 1))])

    def features(self, X):
        """Features the head sees: the last layer's output, with ``direct_link`` the
        standardised inputs divided by ``input_clip``, and the bias column."""
        check_is_fitted(self, "encoders_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self._transform(X)

    # -- upper tier ------------------------------------------------------------------------

    def _head_start(self, F, T, backend):
        capacity = self.capacity
        if capacity is None:
            capacity = self.window if self.window is not None else 1 << 16
        if self.activations_ and self.activations_[-1] in ("tanh", "sigmoid"):
            feature_bound = 1.0  # the activation's range, the bias column, the direct inputs
        else:
            feature_bound = 2.0 * max(1.0, float(np.abs(F).max()))
        self.head_ = backend.qr_init(F.shape[1], T.shape[1], self.alpha, capacity,
                                     feature_bound, self._target_bound(T))
        self.window_rows_ = deque() if self.window is not None else None
        self._fitted_window = self.window
        self._head_touched = False
        self.n_samples_seen_ = 0

    def _head_fold(self, F, T, backend, beta):
        """Fold ``(F, T)`` into the head (and, with a window, take the rows that fall out of
        it out first). Everything the backend can refuse from the inputs alone (bounds,
        capacity) is checked before anything changes; the window's bookkeeping changes only
        once the head has taken the rows."""
        removed, overflow = None, 0
        if self.window is not None:
            if len(F) > self.window:  # only the last `window` rows can be in the window
                F, T = F[-self.window:], T[-self.window:]
            overflow = max(0, len(self.window_rows_) + len(F) - self.window)
            if overflow:
                old = list(itertools.islice(self.window_rows_, overflow))
                # rows stored before a class was added have fewer target columns
                removed = (np.array([row[0] for row in old]),
                           np.vstack([self._pad_targets(np.atleast_2d(row[1]))
                                      for row in old]))
        if removed is not None:
            # the update must not be refused after the downdate went in (a device's head is
            # not snapshot); without one, qr_update checks its rows before folding any
            backend.qr_check(self.head_, F, T, beta, self.forget_per, removed)
            touched = self._head_touched
            self._head_touched = True
            try:
                backend.qr_downdate(self.head_, *removed)
            except DowndateRefused:
                self._head_touched = touched  # the backend put the head back as it was
                raise
        self._head_touched = True
        backend.qr_update(self.head_, F, T, beta, self.forget_per)
        coef = backend.qr_solve(self.head_)
        if self.window is not None:
            for _ in range(overflow):
                self.window_rows_.popleft()
            self.window_rows_.extend(zip(F, T, strict=True))
        self.n_samples_seen_ += len(F)
        self.coef_ = coef

    def _head_snapshot(self):
        """What :meth:`_head_restore` needs to undo a failed :meth:`partial_fit`."""
        return {
            "classes_": getattr(self, "classes_", None),
            "head": self._backend_.qr_snapshot(self.head_),
            "window_rows_": None if self.window_rows_ is None else deque(self.window_rows_),
            "n_samples_seen_": self.n_samples_seen_,
            "coef_": self.coef_,
        }

    def _head_restore(self, saved):
        if saved["classes_"] is not None:
            self.classes_ = saved["classes_"]
        if saved["head"] is not None:
            self.head_ = self._backend_.qr_restore(self.head_, saved["head"])
        elif self._head_touched and hasattr(self.head_, "broken"):
            # a device's head changed before the failure and was not read back: refuse to
            # go on with it rather than use a state the host no longer describes
            self.head_.broken = True
        self.window_rows_ = saved["window_rows_"]
        self.n_samples_seen_ = saved["n_samples_seen_"]
        self.coef_ = saved["coef_"]

    def _pad_targets(self, T):
        return T

    def _target_bound(self, T):
        # twice the largest target of the first fit (not at least 1: small targets would
        # then use a few of the format's bits, or none)
        largest = float(np.abs(T).max()) if T.size else 0.0
        return 2.0 * largest if largest > 0 else 1.0

    def fit_head(self, X, y):
        """Fit the head in one step on ``(X, y)``, keeping the lower tier as it is.

        This is what :meth:`fit` does after training the lower tier; it is public so that a
        head trained by :meth:`partial_fit` can be compared with one fitted on all the data.
        """
        check_is_fitted(self, "encoders_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        T = self._targets(y, reset=False)
        backend = self._backend_
        F = self._transform(X)
        self._head_start(F, T, backend)
        self._head_fold(F, T, backend, 1.0)
        return self

    def _fit(self, X, y):
        self._validate_params()
        X, y = validate_data(self, X, y, reset=True, dtype=np.float64,
                             multi_output=self._multi_output,
                             y_numeric=not isinstance(self, ClassifierMixin))
        with _closing_on_failure(get_backend(self.backend), self.backend) as backend:
            self._backend_ = backend
            T = self._targets(y, reset=True)
            self._fit_lower_tier(X, backend)
            F = self._transform(X)
            self._head_start(F, T, backend)
            self._head_fold(F, T, backend, 1.0)
        return self

    def _partial_fit(self, X, y, classes=None):
        first = not hasattr(self, "encoders_")
        sizes, _ = self._validate_params()  # again: set_params may have changed them
        X, y = validate_data(self, X, y, reset=first, dtype=np.float64,
                             multi_output=self._multi_output,
                             y_numeric=not isinstance(self, ClassifierMixin))
        if first:
            with _closing_on_failure(get_backend(self.backend), self.backend) as backend:
                self._backend_ = backend
                T = self._targets(y, reset=True, classes=classes)
                self._fit_lower_tier(X, backend)
                F = self._transform(X)
                self._head_start(F, T, backend)
                self._head_fold(F, T, backend, self.forgetting_factor)
            if len(X) < max(sizes[0], X.shape[1]):
                warnings.warn(
                    f"the first partial_fit call trains the lower tier and the input "
                    f"standardisation on its {len(X)} samples alone (fewer than the "
                    f"{sizes[0]} hidden units or the {X.shape[1]} features): later calls only "
                    "update the head, so the model stays as weak as this first batch; call "
                    "fit (or a first partial_fit) on a representative batch",
                    UserWarning, stacklevel=3)
            return self
        if (self.window is None) != (self.window_rows_ is None):
            raise ValueError(f"window changed from {self._fitted_window!r} to "
                             f"{self.window!r} since fit: call fit again")
        backend = self._backend_
        saved = self._head_snapshot()
        self._head_touched = False
        try:
            T = self._targets(y, reset=False, classes=classes)
            self._head_fold(self._transform(X), T, backend, self.forgetting_factor)
        except BaseException:
            self._head_restore(saved)
            raise
        return self

    def _decision(self, X):
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self._transform(X) @ self.coef_


class TwoTierClassifier(ClassifierMixin, _TwoTierBase):
    """Two-tier classifier: ELM-autoencoder lower tier, incrementally updated ridge head.

    Parameters
    ----------
    hidden_layer_sizes : sequence of int
        Widths of the ELM-autoencoder layers (default ``(128,)``).
    activation : str or sequence of str
        ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"identity"``, one for all layers or one per
        layer.
    alpha : float
        Ridge λ of the head (``R`` starts as ``√alpha·I``).
    ae_alpha : float
        Ridge λ of the autoencoder solves.
    input_clip : float or None
        Standardised inputs are clipped to ``±input_clip`` (default 3.0; None: not clipped).
    encoder_bias : bool
        Add the layer's random bias to the encoder's pre-activation (default True; False: the
        plain multilayer-ELM encoder ``g(X Bᵀ)``).
    direct_link : bool
        Feed the standardised inputs (divided by ``input_clip``) to the head beside the last
        layer's output (default False; needs ``input_clip``). The head then has
        ``width + n_features + 1`` inputs, which a device's ``n_max`` must hold.
    forgetting_factor : float in (0, 1]
        β of :meth:`partial_fit` (``fit`` always weighs its samples equally).
    forget_per : {"sample", "batch"}
        Apply β before every sample (default) or once per :meth:`partial_fit` call.
    window : int or None
        Keep only the last ``window`` samples in the head (downdates; needs β = 1).
    new_classes : {"grow", "error"}
        What :meth:`partial_fit` does with a label it has not seen: add an output column
        (exact, see the module docstring) or raise ``ValueError``.
    backend : {"float64", "fixed"}, a device URL or SolverBackend
        Who solves (see the module docstring). A device URL (``"vsim://?..."``,
        ``"uart:///dev/ttyUSB1"``) is opened by ``fit``; its ``n_max`` must hold the widest
        layer and the head, its ``k_max`` the classes (the autoencoders' right-hand sides, one
        per feature, go in blocks of ``k_max``).
    capacity : int or None
        Samples the fixed head must hold without overflow (default: ``window``, else 65536).

    random_state : int, RandomState or None
        Seed of the random projections.

    Attributes
    ----------
    classes_ : numpy.ndarray
        Known labels, in the order of the output columns (grows with ``new_classes="grow"``).
    encoders_ : list of numpy.ndarray
        The lower tier's encoder matrices (``d × width``).
    encoder_biases_ : list of numpy.ndarray
        The bias added to each encoder's pre-activation (zeros with ``encoder_bias=False``).
    input_offset_, input_scale_ : numpy.ndarray
        Per-feature mean and standard deviation of the data of :meth:`fit`.
    coef_ : numpy.ndarray, shape (width + 1, n_classes) or (width + n_features + 1, n_classes)
        The head's weights (last row: bias; with ``direct_link`` the ``n_features`` rows
        before it weigh the direct inputs).
    n_samples_seen_ : int
        Samples folded into the head since the last :meth:`fit`.

    Notes
    -----
    A :meth:`partial_fit` that raises leaves the estimator as it was (head, window, classes,
    counters), except on a device when the device's updater failed part-way: the head is
    then marked inconsistent and the next call says so (``fit`` starts again). A fitted
    estimator pickles; with a device backend the copy predicts, and ``partial_fit`` needs a
    ``fit`` first (the head's ``R`` and ``Z`` stay on the device).
    """

    def __init__(self, hidden_layer_sizes=(128,), activation="tanh", alpha=1.0, ae_alpha=1.0,
                 input_clip=3.0, encoder_bias=True, direct_link=False,
                 forgetting_factor=1.0, forget_per="sample", window=None, new_classes="grow",
                 backend="float64", capacity=None, random_state=None):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation,
                         alpha=alpha, ae_alpha=ae_alpha, input_clip=input_clip,
                         encoder_bias=encoder_bias, direct_link=direct_link,
                         forgetting_factor=forgetting_factor,
                         forget_per=forget_per, window=window, backend=backend,
                         capacity=capacity, random_state=random_state)
        self.new_classes = new_classes

    def _targets(self, y, reset, classes=None):
        if self.new_classes not in ("grow", "error"):
            raise ValueError(f"new_classes must be 'grow' or 'error', not {self.new_classes!r}")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D labels, not shape {y.shape}")
        target_type = type_of_target(y)
        if target_type not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: {target_type!r}; TwoTierClassifier needs "
                             f"class labels")
        if reset:
            known = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if classes is not None and not np.isin(y, known).all():
                raise ValueError(f"y holds labels {np.setdiff1d(y, known)} not in classes")
            self.classes_ = known
        else:
            if classes is not None and not np.isin(np.asarray(classes), self.classes_).all() \
                    and self.new_classes == "error":
                raise ValueError("classes differ from the classes given before")
            unseen = np.setdiff1d(y, self.classes_)
            if unseen.size:
                if self.new_classes == "error":
                    raise ValueError(f"y holds labels {unseen.tolist()} not seen before "
                                     f"(new_classes='error'); known: {self.classes_.tolist()}")
                self.classes_ = np.concatenate([self.classes_, np.sort(unseen)])
                self._head_touched = True
                self._backend_.qr_add_outputs(self.head_, unseen.size)
        columns = {label: index for index, label in enumerate(self.classes_.tolist())}
        T = np.zeros((len(y), len(self.classes_)))
        T[np.arange(len(y)), [columns[label] for label in y.tolist()]] = 1.0
        return T

    def _target_bound(self, T):
        return 1.0  # one-hot targets

    def _pad_targets(self, T):
        width = len(self.classes_)
        if T.shape[1] < width:
            T = np.hstack([T, np.zeros((len(T), width - T.shape[1]))])
        return T

    def fit(self, X, y):
        """Train the lower tier and the head in one step each (no iteration)."""
        return self._fit(X, y)

    def partial_fit(self, X, y, classes=None):
        """Fold ``(X, y)`` into the head (the first call also trains the lower tier).

        Parameters
        ----------
        X : array_like, shape (m, n_features)
        y : array_like, shape (m,)
        classes : array_like or None
            All labels, as scikit-learn's ``partial_fit``; only used on the first call (later
            new labels grow the head unless ``new_classes="error"``).
        """
        return self._partial_fit(X, y, classes)

    def decision_function(self, X):
        """Head outputs (one column per class; for two classes, column 1 minus column 0)."""
        scores = self._decision(X)
        if len(self.classes_) == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict(self, X):
        scores = self._decision(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def predict_proba(self, X):
        """Softmax of the head outputs: sums to one, same argmax as :meth:`predict`,
        NOT calibrated probabilities."""
        scores = self._decision(X)
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)


class TwoTierRegressor(RegressorMixin, _TwoTierBase):
    """Two-tier regressor: the same network as :class:`TwoTierClassifier`, real targets.

    Parameters are those of :class:`TwoTierClassifier` without ``new_classes``. ``y`` may be
    1-D or 2-D (several outputs); the number of outputs is fixed by the first fit. With the
    fixed backend the head is scaled for targets up to twice the largest ``|y|`` of the first
    fit (later targets beyond that raise ``ValueError``).
    """

    _multi_output = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y, reset, classes=None):
        y = np.asarray(y, dtype=np.float64)
        if reset:
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
            self._y_1d = y.ndim == 1
        T = y.reshape(len(y), -1)
        if T.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {T.shape[1]} outputs, expected {self.n_outputs_}")
        return T

    def fit(self, X, y):
        """Train the lower tier and the head in one step each (no iteration)."""
        return self._fit(X, y)

    def partial_fit(self, X, y):
        """Fold ``(X, y)`` into the head (the first call also trains the lower tier)."""
        return self._partial_fit(X, y)

    def predict(self, X):
        out = self._decision(X)
        return out.ravel() if self._y_1d else out
