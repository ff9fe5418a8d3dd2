"""Bit-exact NumPy models of the Givens QR core and of the incremental-update core.

:class:`~tiersolve.gen.qr.QRSolver` and :class:`~tiersolve.gen.qr.IncrementalUpdater` keep an
upper triangular ``R`` (``n x n``) and ``Z = QᵀT`` (``n x k``) on chip. Rows ``[h | t]`` are
folded in by Givens rotations, so that ``R⁻¹Z`` is at every moment the ridge solution over the
rows seen so far; ``HᵀH`` is never formed, so the solve sees ``cond([H; √λ I])``, not its
square. This module defines, integer for integer, what the gateware computes. It imports NumPy
only (the host uses it).

Formats
-------
``fmt = Q a.f`` (``w = a + f`` bits, ``w <= 28``: :data:`MAX_DATA_WIDTH`) holds ``R``, ``Z``,
the rows ``h``, ``t``, the solution ``W`` and predictions. Derived formats (:class:`QRConfig`):

* rotation coefficients ``c, s``: ``Q4.w`` (``|c|, |s| < 8``; a circular rotation has
  ``|c|, |s| <= 1``, a hyperbolic one is refused if ``c`` or ``s`` does not fit);
* the reciprocal-square-root mantissa ``Q3.(M-2)`` with ``M = 2·ceil((w + 2)/2)`` bits, and
  its result ``Q2.w``;
* ``sqrt(beta)`` for the forgetting factor: an unsigned integer ``b`` with ``w`` fractional
  bits, ``b = round(sqrt(beta)·2**w)``, ``1 <= b <= 2**w``;

Every rounding is round-to-nearest, ties up (``(v + 2**(s-1)) >> s``, "nearest-up" of
:func:`~tiersolve.gen.fixed.round_shift`); every result stored in ``fmt`` is saturated and a
sticky ``saturated`` flag raised.

One rotation step (shared by both cores)
---------------------------------------
Folding a work row ``x = [h | t]`` (``n + k`` integers) into ``A = [R | Z]`` runs, for each
pivot ``i = 0 .. n-1``:

1. forgetting (updates only): ``A[i, j] <- round(A[i, j]·b / 2**w)`` for ``j >= i``
   (exactly the identity when ``beta = 1``);
2. generate the rotation from the pivot pair ``(a, b) = (A[i, i], x[i])``
   (:func:`generate_rotation`), giving the new ``A[i, i] = r >= 0``; ``x[i]`` becomes 0;
3. apply it to every other pair ``(A[i, j], x[j])``, ``j = i+1 .. n+k-1``
   (:func:`apply_rotation`).

Rotation kinds:

``"multiplier"``
    ``p = a² + b²`` (hyperbolic: ``a² - b²``) exactly; normalised by an even shift ``2e`` so
    that ``q = p >> 2e`` (``p << -2e`` if ``e < 0``; truncated) has ``M-1`` or ``M`` bits;
    ``g = rsqrt_model(q, Q3.(M-2), Q2.w)`` (the :class:`~tiersolve.gen.recip.ReciprocalUnit`),
    so ``1/r ≈ g·2**-(w + (M-2)/2 + e - f)``; then with ``S = (M-2)/2 + e`` (always ``>= 0``)::

        c = round(a·g / 2**S),   s = round(b·g / 2**S),   r = sat(round(p·g / 2**(w + S)))
        circular:    A' = round((c·A + s·x) / 2**w),  x' = round((c·x - s·A) / 2**w)
        hyperbolic:  A' = round((c·A - s·x) / 2**w),  x' = round((c·x - s·A) / 2**w)

    ``p = 0`` (circular) gives ``c = 1, s = 0, r = 0``.
``"cordic"``
    :func:`~tiersolve.gen.cordic_model.vectoring` on ``(a, b)`` gives ``r`` (the magnitude) and
    the directions; :func:`~tiersolve.gen.cordic_model.rotation` replays them on every other
    pair (``CordicConfig(fmt)`` defaults, gain compensated). Hyperbolic rotations (downdates)
    always use the multiplier kind: the circular CORDIC cannot do them.

Downdate (hyperbolic rotations) is refused, and ``R``, ``Z`` left exactly as they were, if at
some pivot ``a² - b² <= 0`` (the result would not be positive definite) or ``c``/``s`` would not
fit ``Q4.w`` (``r < a/8``: the downdate is too close to singular to be done in this format).
The hardware writes every fold into the other half of a ping-pong memory and commits only at
the end, which is why a refused downdate costs nothing.

Back substitution and prediction
--------------------------------
``(g_i, S_i)`` from the same normalised reciprocal square root, of ``R_ii²`` (so
``g_i·2**-(w + S_i - f)`` is ``1/R_ii`` to ``w`` significant bits); for ``i = n-1 .. 0``::

    acc = Z[i, c]·2**f - Σ_{j>i} R[i, j]·W[j, c]          (exact)
    W[i, c] = sat(round(acc·g_i / 2**(w + S_i)))

``predict(h) = sat(round(Σ_j h_j W[j, c] / 2**f))``.

Scaling (what the host guarantees)
----------------------------------
``|R_ij|`` is bounded by the norm of column ``j`` of ``[H; √λ I]``: ``√(m·max|h|² + λ)``,
with forgetting ``≈ √(1/(1-beta))·max|h|``; ``|Z|`` likewise by the column norms of ``T``.
``σ_min(R) >= √λ`` (without forgetting) bounds ``|W| <= ‖Z‖/√λ``. The host scales ``H`` and
``T`` by powers of two so these fit ``fmt`` (and ``λ`` by the square of ``H``'s scale); what
still clips is flagged.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .cordic_model import CordicConfig, rotation, vectoring
from .fixed import FixedFormat
from .recip_model import rsqrt_model

__all__ = [
    "ROTATIONS",
    "QRConfig",
    "Rotation",
    "QRSolverModel",
    "QREnginesModel",
    "IncrementalUpdaterModel",
    "UpdaterEnginesModel",
    "apply_rotation",
    "fold_row",
    "generate_rotation",
    "ridge_error_bound",
    "round_nearest_up",
]

#: Rotation kinds: CORDIC vectoring + replay, or c, s from the reciprocal square root.
ROTATIONS = ("cordic", "multiplier")

#: Widest data format the cores support (the reciprocal square root's mantissa is ``w + 2``
#: bits and must fit a :class:`FixedFormat`).
MAX_DATA_WIDTH = 28

#: Integer bits of the rotation coefficient format (sign included): ``|c|, |s| < 8``.
COEFFICIENT_INT_BITS = 4


def round_nearest_up(value: int, shift: int) -> int:
    """``value / 2**shift`` rounded to nearest, ties up (``shift >= 0``; Python integers)."""
    if shift <= 0:
        return value << -shift
    return (value + (1 << (shift - 1))) >> shift


def _ints(fmt: FixedFormat, values, name: str, ndim: int) -> np.ndarray:
    """``values`` as int64 after checking they are integers of ``fmt`` in ``ndim`` dimensions
    (the public helpers below take what the cores hold; a float would be truncated)."""
    values = fmt.check_ints(values, name)
    if values.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension{'s' if ndim != 1 else ''}, "
                         f"not shape {values.shape}")
    return values


def _clip(value: int, fmt: FixedFormat) -> tuple[int, bool]:
    if value > fmt.max_int:
        return fmt.max_int, True
    if value < fmt.min_int:
        return fmt.min_int, True
    return value, False


@dataclass(frozen=True)
class QRConfig:
    """The arithmetic of a Givens core: data format, rotation kind and derived formats.

    Parameters
    ----------
    fmt : FixedFormat or str
        Data format of ``R``, ``Z``, rows, ``W`` (at most :data:`MAX_DATA_WIDTH` bits, at
        least 8).
    rotation : str
        ``"cordic"`` or ``"multiplier"`` (:data:`ROTATIONS`).

    Attributes
    ----------
    coefficient_format : FixedFormat
        ``Q4.w`` of ``c`` and ``s``.
    mantissa_bits : int
        ``M``, even, ``>= w + 2``.
    mantissa_format, rsqrt_format : FixedFormat
        ``Q3.(M-2)`` (values in ``[1, 4)``) and ``Q2.w``: input and output of the reciprocal
        square root.
    forgetting_frac_bits : int
        ``w``: fractional bits of ``sqrt(beta)``.
    cordic : CordicConfig
        ``CordicConfig(fmt)`` (defaults, gain compensated).
    """

    fmt: FixedFormat
    rotation: str = "cordic"

    def __post_init__(self):
        fmt = self.fmt
        if isinstance(fmt, str):
            fmt = FixedFormat.parse(fmt)
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"fmt must be a FixedFormat or a string such as 'Q6.12', not {fmt!r}")
        if not 8 <= fmt.width <= MAX_DATA_WIDTH:
            raise ValueError(f"fmt {fmt} must be 8 to {MAX_DATA_WIDTH} bits wide")
        if fmt.frac_bits > 28:
            raise ValueError(f"fmt {fmt} has more than 28 fractional bits")
        if self.rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, not {self.rotation!r}")
        object.__setattr__(self, "fmt", fmt)

    @property
    def width(self) -> int:
        return self.fmt.width

    @property
    def coefficient_frac_bits(self) -> int:
        return self.fmt.width

    @property
    def coefficient_format(self) -> FixedFormat:
        return FixedFormat(COEFFICIENT_INT_BITS, self.coefficient_frac_bits)

    @property
    def mantissa_bits(self) -> int:
        return 2 * math.ceil((self.fmt.width + 2) / 2)

    @property
    def mantissa_format(self) -> FixedFormat:
        return FixedFormat(3, self.mantissa_bits - 2)

    @property
    def rsqrt_format(self) -> FixedFormat:
        return FixedFormat(2, self.fmt.width)

    @property
    def forgetting_frac_bits(self) -> int:
        return self.fmt.width

    @cached_property
    def cordic(self) -> CordicConfig:
        return CordicConfig(self.fmt)

    def forgetting_constant(self, beta: float) -> int:
        """``b = round(sqrt(beta)·2**w)`` for ``beta`` in ``(0, 1]`` (``2**w`` for ``beta = 1``).

        Raises
        ------
        TypeError
            If ``beta`` is not a real number.
        ValueError
            If ``beta`` is not in ``(0, 1]`` or rounds to 0.
        """
        if isinstance(beta, (bool, str, bytes)) or not isinstance(beta, numbers.Real):
            raise TypeError(f"beta (the forgetting factor) must be a real number, not {beta!r}")
        beta = float(beta)
        if not (0.0 < beta <= 1.0):
            raise ValueError(f"beta (the forgetting factor) must be in (0, 1], not {beta!r}")
        constant = round(math.sqrt(beta) * 2**self.forgetting_frac_bits)
        if constant < 1:
            raise ValueError(f"beta (the forgetting factor) {beta!r} is too small for "
                             f"{self.forgetting_frac_bits} bits")
        return constant

    # -- error bounds ------------------------------------------------------------------------

    @property
    def coefficient_relative_error(self) -> float:
        """Bound on the relative error of ``g`` against ``1/r``: truncating ``q`` loses less than
        ``2**-(M-2)`` relative, i.e. ``2**-(M-1)`` in ``1/sqrt``; the truncated ``rsqrt`` of a
        value in ``(0.5, 1]`` loses less than one LSB, ``2**-(w-1)`` relative."""
        return 2.0 ** -(self.mantissa_bits - 1) + 2.0 ** -(self.fmt.width - 1)

    def rotation_error_bound(self, radius) -> np.ndarray:
        """Bound on each coordinate's error of an applied circular rotation, in real units.

        Against the exact rotation that zeroes the pivot pair, applied to the same ``(x, y)``
        of length ``radius``. Multiplier: ``(ε_g + 2**-(w+0.5))·radius + LSB/2`` (``ε_g`` from
        :attr:`coefficient_relative_error`, the ``c, s`` roundings ``<= 2**-(w+1)`` each, and
        ``|c x| + |s y| <= radius``). CORDIC: its rotation bound plus the angle error of the
        vectoring times ``radius`` is not needed, because the replayed rotation is itself an
        exact rotation (by the encoded angle); the pivot's dropped residual is covered by
        :meth:`pivot_error_bound`.
        """
        radius = np.asarray(radius, dtype=np.float64)
        if self.rotation == "cordic":
            return self.cordic.rotation_error_bound(radius)
        return ((self.coefficient_relative_error + 2.0 ** -(self.fmt.width + 0.5)) * radius
                + 0.5 * self.fmt.resolution)

    def pivot_error_bound(self, radius) -> np.ndarray:
        """Bound on ``|(r, 0) - exact rotation of (a, b)|`` for a pivot pair of length
        ``radius`` (real units): the error of ``r`` plus the zeroed coordinate's residual."""
        radius = np.asarray(radius, dtype=np.float64)
        if self.rotation == "cordic":
            return (self.cordic.magnitude_error_bound(radius)
                    + self.cordic.residual_bound(radius))
        return self.coefficient_relative_error * radius + 0.5 * self.fmt.resolution


@dataclass
class Rotation:
    """A generated rotation (result of :func:`generate_rotation`).

    Attributes
    ----------
    r : int
        New pivot ``A[i, i]`` in ``fmt``.
    c, s : int
        Coefficients in ``Q4.w`` (multiplier kind and hyperbolic rotations).
    directions : int or None
        Packed CORDIC directions (CORDIC kind, circular rotations); None otherwise.
    hyperbolic : bool
    refused : bool
        A hyperbolic rotation that would lose positive definiteness or not fit ``Q4.w``.
    saturated : bool
        ``r`` was clipped.
    """

    r: int
    c: int = 0
    s: int = 0
    directions: int | None = None
    hyperbolic: bool = False
    refused: bool = False
    saturated: bool = False


def normalise(p: int, mantissa_bits: int) -> tuple[int, int]:
    """``(q, e)``: ``q = p >> 2e`` (or ``p << -2e``) with ``M-1`` or ``M`` bits, for ``p >= 1``.

    ``e = ceil((bit_length(p) - M) / 2)``.
    """
    e = -((mantissa_bits - p.bit_length()) // 2)
    q = p >> (2 * e) if e >= 0 else p << (-2 * e)
    return q, e


def inverse_square_root(config: QRConfig, p: int) -> tuple[int, int]:
    """``(g, S)`` with ``g·2**-(w + S)`` approximating ``1/sqrt(p)`` for an integer ``p >= 1``
    with ``2f`` fractional bits (so ``g·2**-(w + S - f)`` is ``1/r`` for ``r = sqrt(p)`` in
    ``fmt``): normalise, then the reciprocal square root of the mantissa. ``S >= 0``."""
    q, e = normalise(p, config.mantissa_bits)
    g = int(rsqrt_model(q, config.mantissa_format, config.rsqrt_format).y)
    return g, (config.mantissa_bits - 2) // 2 + e


def generate_rotation(config: QRConfig, a: int, b: int, hyperbolic: bool = False) -> Rotation:
    """Rotation that zeroes ``b`` against the pivot ``a`` (stored integers of ``config.fmt``).

    See the module docstring for the arithmetic of each kind.

    Raises
    ------
    TypeError, ValueError
        ``a`` or ``b`` is not an integer of ``config.fmt``.
    """
    a, b = (int(v) for v in _ints(config.fmt, [a, b], "a and b", 1))
    return _generate_rotation(config, a, b, bool(hyperbolic))


def _generate_rotation(config: QRConfig, a: int, b: int, hyperbolic: bool) -> Rotation:
    if config.rotation == "cordic" and not hyperbolic:
        result = vectoring(config.cordic, a, b)
        return Rotation(r=int(result.magnitude), directions=int(result.directions),
                        saturated=bool(result.saturated))
    fmt, w = config.fmt, config.fmt.width
    one = 1 << config.coefficient_frac_bits
    p = a * a - b * b if hyperbolic else a * a + b * b
    if p <= 0:
        if hyperbolic:
            return Rotation(r=a, c=one, s=0, hyperbolic=True, refused=True)
        return Rotation(r=0, c=one, s=0)
    g, shift = inverse_square_root(config, p)
    coefficient = config.coefficient_format
    c, c_clipped = _clip(round_nearest_up(a * g, shift), coefficient)
    s, s_clipped = _clip(round_nearest_up(b * g, shift), coefficient)
    r, r_clipped = _clip(round_nearest_up(p * g, w + shift), fmt)
    refused = hyperbolic and (c_clipped or s_clipped)
    return Rotation(r=r, c=c, s=s, hyperbolic=hyperbolic, refused=refused,
                    saturated=r_clipped or c_clipped or s_clipped)


def apply_rotation(config: QRConfig, rot: Rotation, upper, lower):
    """Apply ``rot`` to the pairs ``(upper[j], lower[j])`` (``upper`` from ``A``'s pivot row,
    ``lower`` from the work row).

    Returns
    -------
    (upper, lower, saturated) : (list of int, list of int, bool)

    Raises
    ------
    TypeError, ValueError
        ``upper`` or ``lower`` holds something other than integers of ``config.fmt``, or their
        lengths differ.
    """
    upper = [int(v) for v in _ints(config.fmt, np.atleast_1d(upper), "upper", 1)]
    lower = [int(v) for v in _ints(config.fmt, np.atleast_1d(lower), "lower", 1)]
    if len(upper) != len(lower):
        raise ValueError(f"upper and lower have {len(upper)} and {len(lower)} entries")
    return _apply_rotation(config, rot, upper, lower)


def _apply_rotation(config: QRConfig, rot: Rotation, upper: list[int], lower: list[int]):
    if not upper:
        return upper, lower, False
    fmt = config.fmt
    if rot.directions is not None:
        result = rotation(config.cordic, np.array(upper), np.array(lower), rot.directions)
        return ([int(v) for v in result.x], [int(v) for v in result.y],
                bool(result.saturated.any()))
    w = config.coefficient_frac_bits
    c, s = rot.c, rot.s
    sign = -1 if rot.hyperbolic else 1
    saturated = False
    new_upper, new_lower = [], []
    for x, y in zip(upper, lower, strict=True):
        u, u_clip = _clip(round_nearest_up(c * x + sign * s * y, w), fmt)
        v, v_clip = _clip(round_nearest_up(c * y - s * x, w), fmt)
        new_upper.append(u)
        new_lower.append(v)
        saturated |= u_clip or v_clip
    return new_upper, new_lower, saturated


def scale_row(values, forgetting: int, frac_bits: int) -> list[int]:
    """Forgetting: ``round(v·b / 2**frac_bits)`` of each value (identity for ``b = 2**w``)."""
    forgetting = _check_integer("forgetting", forgetting)
    frac_bits = _check_integer("frac_bits", frac_bits)
    values = np.atleast_1d(np.asarray(values))
    if values.dtype.kind not in "iuO":
        raise TypeError(f"values must be integers, not {values.dtype}")
    return _scale_row([_check_integer("a value", v) for v in values.flat], forgetting, frac_bits)


def _scale_row(values: list[int], forgetting: int, frac_bits: int) -> list[int]:
    return [round_nearest_up(v * forgetting, frac_bits) for v in values]


def _check_integer(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    return int(value)


@dataclass
class FoldResult:
    """Result of :func:`fold_row`.

    Attributes
    ----------
    A : numpy.ndarray of int64, shape (n, n + k)
        ``[R | Z]`` after the fold (the input ``A`` if refused).
    refused : bool
        A hyperbolic fold was refused (``refused_index`` is the pivot; for
        :meth:`IncrementalUpdaterModel.fold_downdate`, ``refused_row`` the row).
    saturated : bool
        Something was clipped.
    rotations : int
        Rotations applied (pivot pairs included), for the utilisation figures.
    """

    A: np.ndarray
    refused: bool = False
    refused_index: int = 0
    saturated: bool = False
    rotations: int = 0
    refused_row: int = 0


def fold_row(config: QRConfig, A, row, forgetting: int | None = None,
             hyperbolic: bool = False) -> FoldResult:
    """Fold one work row ``[h | t]`` into ``A = [R | Z]`` (``n x (n + k)`` stored integers).

    ``forgetting`` is ``b`` of :meth:`QRConfig.forgetting_constant` (None: ``beta = 1``).

    Raises
    ------
    TypeError, ValueError
        ``A`` or ``row`` holds something other than integers of ``config.fmt``, ``A`` is not
        ``n x (n + k)`` with ``k >= 0``, ``row`` does not have ``n + k`` entries, or
        ``forgetting`` is not an integer from 1 to ``2**w``.
    """
    A = _ints(config.fmt, A, "A", 2)
    n, width = A.shape
    if width < n:
        raise ValueError(f"A = [R | Z] must have at least n = {n} columns, not {width}")
    work = [int(v) for v in _ints(config.fmt, np.atleast_1d(row), "row", 1)]
    if len(work) != width:
        raise ValueError(f"row has {len(work)} entries, expected n + k = {width}")
    if forgetting is not None:
        forgetting = _check_integer("forgetting", forgetting)
        if not 1 <= forgetting <= 1 << config.forgetting_frac_bits:
            raise ValueError(f"forgetting constant must be from 1 to "
                             f"2**{config.forgetting_frac_bits}, not {forgetting}")
    out = A.copy()
    saturated = False
    rotations = 0
    frac = config.forgetting_frac_bits
    for i in range(n):
        pivot_row = [int(v) for v in A[i, i:]]
        if forgetting is not None:
            pivot_row = _scale_row(pivot_row, forgetting, frac)
        rot = _generate_rotation(config, pivot_row[0], work[i], bool(hyperbolic))
        if rot.refused:
            return FoldResult(A.copy(), refused=True, refused_index=i, saturated=saturated,
                              rotations=rotations)
        upper, lower, clipped = _apply_rotation(config, rot, pivot_row[1:], work[i + 1:])
        out[i, i] = rot.r
        out[i, i + 1:] = upper
        work[i + 1:] = lower
        work[i] = 0
        saturated |= clipped or rot.saturated
        rotations += width - i
    return FoldResult(out, saturated=saturated, rotations=rotations)


def back_substitution(config: QRConfig, R, Z) -> tuple[np.ndarray, bool]:
    """``W = R⁻¹Z`` as the core computes it; returns ``(W, saturated)``.

    ``1/R_ii`` comes from :func:`inverse_square_root` of ``R_ii²`` (the same normaliser and
    reciprocal square root as the rotations), so it keeps ``w`` significant bits whatever the
    size of ``R_ii``. A zero ``R_ii`` (singular ``R``) gives ``W[i] = 0`` and the
    ``saturated`` flag.

    Raises
    ------
    TypeError, ValueError
        ``R`` (``n x n``) or ``Z`` (``n x k``) holds something other than integers of
        ``config.fmt``, or their shapes do not match.
    """
    fmt = config.fmt
    f, w = fmt.frac_bits, fmt.width
    R = _ints(fmt, R, "R", 2)
    Z = _ints(fmt, Z, "Z", 2)
    n, k = Z.shape
    if R.shape != (n, n):
        raise ValueError(f"R must be {n} x {n} for Z of shape {Z.shape}, not {R.shape}")
    saturated = False
    W = [[0] * k for _ in range(n)]
    for i in range(n - 1, -1, -1):
        pivot = int(R[i, i])
        if pivot == 0:
            saturated = True
            continue
        g, shift = inverse_square_root(config, pivot * pivot)
        if pivot < 0:
            g = -g
        for c in range(k):
            acc = int(Z[i, c]) << f
            for j in range(i + 1, n):
                acc -= int(R[i, j]) * W[j][c]
            value, clipped = _clip(round_nearest_up(acc * g, w + shift), fmt)
            W[i][c] = value
            saturated |= clipped
    return np.array(W, dtype=np.int64).reshape(n, k), saturated


def predict(config: QRConfig, W, h) -> tuple[np.ndarray, bool]:
    """``y = hᵀW`` (``k`` values in ``fmt``) as the core computes it; ``(y, saturated)``.

    Raises
    ------
    TypeError, ValueError
        ``W`` (``n x k``) or ``h`` (``n``) holds something other than integers of
        ``config.fmt``, or their sizes do not match.
    """
    fmt = config.fmt
    W = _ints(fmt, W, "W", 2)
    h = [int(v) for v in _ints(fmt, np.atleast_1d(h), "h", 1)]
    if len(h) != W.shape[0]:
        raise ValueError(f"h has {len(h)} entries, W has {W.shape[0]} rows")
    out, saturated = [], False
    for c in range(W.shape[1]):
        acc = sum(h[j] * int(W[j, c]) for j in range(W.shape[0]))
        value, clipped = _clip(round_nearest_up(acc, fmt.frac_bits), fmt)
        out.append(value)
        saturated |= clipped
    return np.array(out, dtype=np.int64), saturated


def _check_size(name: str, value, maximum=None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1 or (maximum is not None and value > maximum):
        allowed = "at least 1" if maximum is None else f"from 1 to {maximum}"
        raise ValueError(f"{name} must be {allowed}, not {value}")
    return int(value)


@dataclass
class QRSolverModel:
    """Model of one :class:`~tiersolve.gen.qr.QRSolver` job: start from ``R = √λ·I``,
    ``Z = 0``, fold rows, back-substitute.

    Parameters
    ----------
    config : QRConfig
    n, k : int
        Runtime sizes.
    lam_sqrt : int
        ``√λ`` as a stored integer of ``fmt`` (the host quantises it; ``>= 0``).

    Attributes
    ----------
    R : numpy.ndarray (n, n), Z : numpy.ndarray (n, k)
        Current state (stored integers).
    saturated : bool
        Sticky clip flag.
    rotations : int
        Rotations applied so far.
    """

    config: QRConfig
    n: int
    k: int
    lam_sqrt: int = 0
    saturated: bool = False
    rotations: int = 0
    A: np.ndarray = field(init=False)

    def __post_init__(self):
        if not isinstance(self.config, QRConfig):
            raise TypeError(f"config must be a QRConfig, not {self.config!r}")
        self.n = _check_size("n", self.n)
        self.k = _check_size("k", self.k)
        lam_sqrt = int(self.config.fmt.check_ints(np.array(self.lam_sqrt), "lam_sqrt"))
        if lam_sqrt < 0:
            raise ValueError(f"lam_sqrt must not be negative, not {lam_sqrt}")
        self.A = np.zeros((self.n, self.n + self.k), dtype=np.int64)
        self.A[np.arange(self.n), np.arange(self.n)] = lam_sqrt

    @property
    def R(self) -> np.ndarray:
        return self.A[:, : self.n].copy()

    @property
    def Z(self) -> np.ndarray:
        return self.A[:, self.n :].copy()

    def _row(self, h, t) -> list[int]:
        fmt = self.config.fmt
        h = fmt.check_ints(np.atleast_1d(h), "h")
        t = fmt.check_ints(np.atleast_1d(t), "t")
        if h.shape != (self.n,) or t.shape != (self.k,):
            raise ValueError(f"h and t must have n = {self.n} and k = {self.k} entries, "
                             f"not {h.shape} and {t.shape}")
        return [int(v) for v in h] + [int(v) for v in t]

    def fold(self, h, t, forgetting: int | None = None) -> FoldResult:
        """Fold one row ``[h | t]`` in (``forgetting`` is ``b``, None for ``beta = 1``)."""
        result = fold_row(self.config, self.A, self._row(h, t), forgetting)
        self.A = result.A
        self.saturated |= result.saturated
        self.rotations += result.rotations
        return result

    def fold_rows(self, H, T) -> None:
        """Fold every row of ``H`` (``m x n``) and ``T`` (``m x k``)."""
        H, T = np.atleast_2d(H), np.atleast_2d(T)
        if H.shape[0] != T.shape[0]:
            raise ValueError(f"H and T have {H.shape[0]} and {T.shape[0]} rows")
        for h, t in zip(H, T, strict=True):
            self.fold(h, t)

    def solve(self) -> np.ndarray:
        """``W = R⁻¹Z`` (``n x k`` stored integers)."""
        W, saturated = back_substitution(self.config, self.R, self.Z)
        self.saturated |= saturated
        return W


@dataclass
class QREnginesModel(QRSolverModel):
    """Model of :class:`~tiersolve.gen.qr_engines.QREngines`: ``engines`` QR solver cores
    whose FOLDs of two or more rows are spread over them and whose factors are merged only
    when the whole factor is needed.

    A FOLD of ``m >= 2`` rows (:meth:`fold_rows`): row ``r`` goes to engine ``r mod
    engines``; engine 0 folds its rows into ``A``, engine ``e > 0`` into a factor of its own
    (``partials[e]``), which starts at zero (``R = 0``, ``Z = 0``) unless it still holds rows
    of an earlier FOLD; each engine folds its rows in order. The merge (:meth:`merge`): the
    rows of the engines' factors that hold rows are folded into ``A``, row 0 of each engine
    in turn (``e = 1, 2, ...``), then row 1 of each, and so on: a QR of the stacked factors,
    the same least-squares problem as one fold a row, with other integers. Everything else
    (:meth:`fold` of one row, :meth:`solve`, reading ``R`` or ``Z``) merges first; a
    :meth:`reset` drops the other engines' rows. ``rotations`` counts the merge's too.
    """

    engines: int = 2
    partials: list = field(init=False)
    holds: list = field(init=False)
    #: whether a single row's forgetting constant is applied (the updater's engines)
    forgets = False

    def __post_init__(self):
        super().__post_init__()
        engines = self.engines
        if isinstance(engines, bool) or not isinstance(engines, int) or engines < 2:
            raise ValueError(f"engines must be an integer of at least 2, not {engines!r}")
        self.partials = [None] + [np.zeros_like(self.A) for _ in range(1, engines)]
        self.holds = [False] * engines

    def reset(self, lam_sqrt: int) -> None:
        """``R = √λ·I``, ``Z = 0`` (the core's RESET); the other engines' rows are dropped."""
        self.lam_sqrt = lam_sqrt
        self.saturated, self.rotations = False, 0
        self.__post_init__()

    @property
    def R(self) -> np.ndarray:
        self.merge()
        return self.A[:, : self.n].copy()

    @property
    def Z(self) -> np.ndarray:
        self.merge()
        return self.A[:, self.n :].copy()

    def _fold_into(self, engine: int, row: list[int]) -> None:
        if engine == 0:
            result = fold_row(self.config, self.A, row)
            self.A = result.A
        else:
            if not self.holds[engine]:
                self.partials[engine] = np.zeros_like(self.A)
            result = fold_row(self.config, self.partials[engine], row)
            self.partials[engine] = result.A
            self.holds[engine] = True
        self.saturated |= result.saturated
        self.rotations += result.rotations

    def fold(self, h, t, forgetting: int | None = None) -> FoldResult:
        """One row, on engine 0, after the merge (``forgetting`` is ignored, as by the QR
        solver core; :class:`UpdaterEnginesModel` applies it)."""
        self.merge()
        return super().fold(h, t, forgetting if self.forgets else None)

    def fold_rows(self, H, T) -> None:
        """One FOLD of the rows of ``H``, ``T``: spread over the engines from two rows on,
        else one row on engine 0 (after the merge)."""
        H, T = np.atleast_2d(H), np.atleast_2d(T)
        if H.shape[0] != T.shape[0]:
            raise ValueError(f"H and T have {H.shape[0]} and {T.shape[0]} rows")
        rows = [self._row(h, t) for h, t in zip(H, T, strict=True)]
        if len(rows) < 2:
            for h, t in zip(H, T, strict=True):
                self.fold(h, t)
            return
        for index, row in enumerate(rows):
            self._fold_into(index % self.engines, row)

    def merge(self) -> None:
        """Fold the rows of the other engines' factors into ``A`` (module docstring)."""
        holding = [e for e in range(1, self.engines) if self.holds[e]]
        for index in range(self.n):
            for engine in holding:
                self._fold_into(0, [int(v) for v in self.partials[engine][index]])
        for engine in holding:
            self.holds[engine] = False

    def solve(self) -> np.ndarray:
        """``W = R⁻¹Z`` after the merge."""
        self.merge()
        return super().solve()


class IncrementalUpdaterModel(QRSolverModel):
    """Model of the :class:`~tiersolve.gen.qr.IncrementalUpdater`: a :class:`QRSolverModel`
    that also forgets, downdates, predicts, and loads ``R``, ``Z`` from the host.

    ``W`` is held (as the core holds it) and refreshed by :meth:`solve`; :meth:`predict` uses
    the held ``W`` (zeros until the first solve or load).
    """

    def __post_init__(self):
        super().__post_init__()
        self.W = np.zeros((self.n, self.k), dtype=np.int64)

    def update(self, h, t, beta: float = 1.0) -> FoldResult:
        """Fold ``[h | t]`` in after scaling ``R``, ``Z`` by ``sqrt(beta)``."""
        forgetting = None if beta == 1.0 else self.config.forgetting_constant(beta)
        return self.fold(h, t, forgetting)

    def update_with_constant(self, h, t, forgetting: int) -> FoldResult:
        """:meth:`update` with ``b`` given as the integer the core's register holds
        (``1 <= b <= 2**w``; the core rejects other values as a bad command)."""
        forgetting = _check_integer("forgetting", forgetting)
        if not 1 <= forgetting <= 1 << self.config.forgetting_frac_bits:
            raise ValueError(f"forgetting constant must be from 1 to "
                             f"2**{self.config.forgetting_frac_bits}, not {forgetting}")
        return self.fold(h, t, forgetting)

    def downdate(self, h, t) -> FoldResult:
        """Remove ``[h | t]`` by hyperbolic rotations; refused (state untouched) if it would
        lose positive definiteness. Check ``result.refused``."""
        result = fold_row(self.config, self.A, self._row(h, t), hyperbolic=True)
        self.A = result.A
        self.saturated |= result.saturated
        if not result.refused:
            self.rotations += result.rotations
        return result

    def fold_downdate(self, H, T) -> FoldResult:
        """Take every row of ``H`` (``m x n``) and ``T`` (``m x k``) out, as a FOLD of
        downdates (:attr:`~tiersolve.gen.qr_ops.FoldKind.DOWNDATE`) does: the integers of
        ``m`` :meth:`downdate` calls in order, all or nothing. If one would be refused,
        ``R``, ``Z`` and the ``saturated`` flag stay as they were before the call, and the
        result is ``refused`` with ``refused_row`` (the first row that would be refused) and
        ``refused_index`` (its pivot); else ``rotations`` counts every row's."""
        H, T = np.atleast_2d(H), np.atleast_2d(T)
        if H.shape[0] != T.shape[0]:
            raise ValueError(f"H and T have {H.shape[0]} and {T.shape[0]} rows")
        rows = [self._row(h, t) for h, t in zip(H, T, strict=True)]
        A, saturated = self.A.copy(), self.saturated
        total = FoldResult(A)
        for index, row in enumerate(rows):
            result = fold_row(self.config, A, row, hyperbolic=True)
            if result.refused:
                return FoldResult(self.A.copy(), refused=True, refused_index=result.refused_index,
                                  refused_row=index, saturated=self.saturated)
            A = result.A
            saturated |= result.saturated
            total.rotations += result.rotations
        self.A, self.saturated = A, saturated
        self.rotations += total.rotations
        total.A, total.saturated = A.copy(), saturated
        return total

    def solve(self) -> np.ndarray:
        self.W = super().solve()
        return self.W.copy()

    def predict(self, h) -> np.ndarray:
        h = self.config.fmt.check_ints(np.atleast_1d(h), "h")
        if h.shape != (self.n,):
            raise ValueError(f"h must have n = {self.n} entries, not {h.shape}")
        y, saturated = predict(self.config, self.W, h)
        self.saturated |= saturated
        return y

    def load(self, R=None, Z=None, W=None) -> None:
        """Load ``R`` (upper triangle used), ``Z`` and/or ``W`` (stored integers)."""
        fmt = self.config.fmt
        if R is not None:
            R = fmt.check_ints(R, "R")
            if R.shape != (self.n, self.n):
                raise ValueError(f"R must be {self.n} x {self.n}, not {R.shape}")
            self.A[:, : self.n] = np.triu(R)
        if Z is not None:
            Z = fmt.check_ints(Z, "Z")
            if Z.shape != (self.n, self.k):
                raise ValueError(f"Z must be {self.n} x {self.k}, not {Z.shape}")
            self.A[:, self.n :] = Z
        if W is not None:
            W = fmt.check_ints(W, "W")
            if W.shape != (self.n, self.k):
                raise ValueError(f"W must be {self.n} x {self.k}, not {W.shape}")
            self.W = W.copy()


@dataclass
class UpdaterEnginesModel(QREnginesModel, IncrementalUpdaterModel):
    """Model of :class:`~tiersolve.gen.qr_engines.QREngines` made of incremental updaters:
    a FOLD of two or more rows without forgetting is spread over the engines (as
    :class:`QREnginesModel`); every other command (UPDATE with or without forgetting,
    DOWNDATE, a FOLD of downdates, SOLVE, PREDICT, LOAD, reading ``R`` or ``Z``) merges first
    and then runs on engine 0, which keeps ``W``."""

    forgets = True

    def downdate(self, h, t) -> FoldResult:
        self.merge()
        return super().downdate(h, t)

    def fold_downdate(self, H, T) -> FoldResult:
        self.merge()
        return super().fold_downdate(H, T)

    def predict(self, h) -> np.ndarray:
        self.merge()
        return super().predict(h)

    def load(self, R=None, Z=None, W=None) -> None:
        self.merge()
        super().load(R, Z, W)


def ridge_error_bound(config: QRConfig, H, T, lam: float, R, W, rows: int | None = None,
                      beta: float = 1.0) -> float:
    """Bound on ``‖W_computed - W_ridge‖₂`` (Frobenius over the ``k`` columns), real units.

    Derivation. Every applied rotation is, up to an error of at most
    :meth:`QRConfig.rotation_error_bound` per coordinate (pivot pairs:
    :meth:`QRConfig.pivot_error_bound`), an exact orthogonal rotation; the pair's length is at
    most the largest column norm ``ρ`` of ``[H; √λ I | T]`` (plus the quantisation of the
    inputs, half an LSB per entry). Errors do not grow under the later orthogonal rotations, so
    the computed ``[R | Z]`` is the exact triangular factor of ``[A + E | B + e]`` with
    ``‖[E | e]‖_F <= δ = √(N_r·2)·ε_rot + √(N_p)·ε_piv + ε_q`` (``N_r`` applied rotations,
    ``N_p`` pivots, ``ε_q`` the input quantisation). A perturbation of a least-squares problem
    moves its solution by at most ``(δ‖W‖ + δ)/(σ - δ) + δ‖res‖/(σ - δ)²`` with ``σ`` the
    smallest singular value of ``A = [H; √λ I]`` and ``res`` the ridge residual. The back
    substitution's residual ``|R_ii|·(LSB/2 + |acc_i|·ε_g)`` per entry (``1/R_ii``'s
    relative error :attr:`QRConfig.coefficient_relative_error` and the output rounding) adds
    its norm over ``σ_min(R_computed)``.

    Parameters
    ----------
    config : QRConfig
    H, T : array_like of float
        The real (already scaled) data, as quantised for the core.
    lam : float
        The ridge parameter the core was started with (``(lam_sqrt·LSB)²``).
    R, W : array_like of float
        The core's ``R`` and ``W`` in real units.
    rows : int or None
        Rows folded (default ``len(H)``).
    """
    H = np.asarray(H, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64).reshape(len(H), -1)
    m, n = H.shape
    k = T.shape[1]
    rows = m if rows is None else rows
    lsb = config.fmt.resolution
    A = np.vstack([H, math.sqrt(lam) * np.eye(n)])
    B = np.vstack([T, np.zeros((n, k))])
    rho = float(np.sqrt((np.vstack([A.T, B.T]) ** 2).sum(axis=1)).max()) + lsb * math.sqrt(m)
    applied = rows * (n * (n - 1) // 2 + n * k)
    pivots = rows * n
    delta = (math.sqrt(2 * applied) * float(config.rotation_error_bound(rho))
             + math.sqrt(pivots) * float(config.pivot_error_bound(rho))
             + 0.5 * lsb * math.sqrt(m * (n + k) + n))
    sigma = float(np.linalg.svd(A, compute_uv=False).min())
    W_exact = np.linalg.lstsq(A, B, rcond=None)[0]
    residual = float(np.linalg.norm(A @ W_exact - B))
    if sigma <= delta:
        return math.inf
    bound = (delta * float(np.linalg.norm(W_exact)) + delta) / (sigma - delta)
    bound += delta * residual / (sigma - delta) ** 2
    # back substitution
    R = np.asarray(R, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    diagonal = np.abs(np.diag(R))[:, None]
    acc = diagonal * (np.abs(W) + lsb)  # |acc_i| <= |R_ii|·(|W_i| + LSB)
    row_bound = diagonal * (0.5 * lsb + acc * config.coefficient_relative_error)
    sigma_r = float(np.linalg.svd(R, compute_uv=False).min())
    if sigma_r <= 0:
        return math.inf
    bound += float(np.linalg.norm(row_bound)) / sigma_r
    return bound
