"""Fixed-point formats: one definition for the gateware, the bit-exact models and the host.

A :class:`FixedFormat` is a signed two's complement format with ``int_bits`` integer bits (the
sign bit included) and ``frac_bits`` fractional bits. The stored integer ``q`` stands for the
real number ``q * 2**-frac_bits``.

This module imports NumPy only. The Amaranth shape of a format is built on demand by
:meth:`FixedFormat.shape`, so the host can quantise without importing Amaranth.

The integer helpers :func:`round_shift` and :func:`saturate` are the primitives every bit-exact
model is written with; the gateware helpers in :mod:`tiersolve.gen.hwfixed` implement the same
operations in hardware.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "MAX_WIDTH",
    "MULTIPLIER_WIDTH",
    "ROUNDING_MODES",
    "FixedFormat",
    "Quantised",
    "multiplier_pieces",
    "product_latency",
    "round_shift",
    "saturate",
]

#: The widest format the NumPy models hold exactly. Values are kept in ``int64``; a product of
#: two 32-bit words needs 63 bits plus sign, which is the most ``int64`` can take. Models whose
#: accumulators need more bits use Python integers (``dtype=object``).
MAX_WIDTH = 32

#: Rounding modes understood by :meth:`FixedFormat.quantise` and :func:`round_shift`.
#:
#: ``"nearest-even"``
#:     round to nearest, ties to even (IEEE default; unbiased).
#: ``"nearest-up"``
#:     round to nearest, ties towards +inf: what "add half an LSB, then drop bits" gives in
#:     hardware.
#: ``"truncate"``
#:     drop the bits, i.e. round towards -inf (an arithmetic right shift in two's complement).
ROUNDING_MODES = ("nearest-even", "nearest-up", "truncate")

_FORMAT_RE = re.compile(r"^\s*[Qq]?\s*([0-9]+)\s*\.\s*([0-9]+)\s*$")


def _check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    return int(value)


def _check_rounding(rounding: str) -> str:
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {ROUNDING_MODES}, not {rounding!r}")
    return rounding


class Quantised(NamedTuple):
    """Result of :meth:`FixedFormat.quantise`.

    Attributes
    ----------
    values : numpy.ndarray of int64
        The stored integers, saturated to the format's range.
    saturated : numpy.ndarray of bool
        True where the input lay outside the format's range and was clipped.
    """

    values: np.ndarray
    saturated: np.ndarray


@dataclass(frozen=True)
class FixedFormat:
    """A signed two's complement fixed-point format.

    Parameters
    ----------
    int_bits : int
        Integer bits, the sign bit included (at least 1).
    frac_bits : int
        Fractional bits (at least 0).

    Attributes
    ----------
    width : int
        Total bits, ``int_bits + frac_bits``; at most :data:`MAX_WIDTH`.
    min_int, max_int : int
        Smallest and largest stored integer.
    min, max : float
        Smallest and largest representable real value.
    resolution : float
        Value of one LSB, ``2**-frac_bits``.

    Raises
    ------
    TypeError
        If a width is not an integer.
    ValueError
        If ``int_bits < 1``, ``frac_bits < 0`` or the width exceeds :data:`MAX_WIDTH`.

    Examples
    --------
    >>> fmt = FixedFormat(6, 12)          # Q6.12: 18 bits, one ECP5 18x18 multiplier
    >>> q = fmt.quantise([0.5, -1.25, 100.0])
    >>> q.values.tolist(), q.saturated.tolist()
    ([2048, -5120, 131071], [False, False, True])
    """

    int_bits: int
    frac_bits: int

    def __post_init__(self):
        int_bits = _check_int("int_bits", self.int_bits)
        frac_bits = _check_int("frac_bits", self.frac_bits)
        if int_bits < 1:
            raise ValueError(f"int_bits must be at least 1 (it includes the sign), not {int_bits}")
        if frac_bits < 0:
            raise ValueError(f"frac_bits must be at least 0, not {frac_bits}")
        if int_bits + frac_bits > MAX_WIDTH:
            raise ValueError(
                f"width int_bits + frac_bits = {int_bits + frac_bits} exceeds {MAX_WIDTH}, "
                f"the widest format the NumPy models hold exactly"
            )
        object.__setattr__(self, "int_bits", int_bits)
        object.__setattr__(self, "frac_bits", frac_bits)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str | FixedFormat) -> FixedFormat:
        """Parse ``"Q6.12"`` or ``"6.12"`` (int_bits.frac_bits, sign included)."""
        if isinstance(text, FixedFormat):
            return text
        if not isinstance(text, str):  # a float 6.10 would read as "6.1"
            raise TypeError(f"a fixed-point format is a string such as 'Q6.12' or a "
                            f"FixedFormat, not {text!r}")
        match = _FORMAT_RE.match(text)
        if match is None:
            raise ValueError(
                f"cannot parse fixed-point format {text!r}; expected 'Q<int_bits>.<frac_bits>', "
                f"e.g. 'Q6.12'"
            )
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"Q{self.int_bits}.{self.frac_bits}"

    # -- properties --------------------------------------------------------------------------

    @property
    def width(self) -> int:
        return self.int_bits + self.frac_bits

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1))

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1

    @property
    def min(self) -> float:
        return self.min_int * self.resolution

    @property
    def max(self) -> float:
        return self.max_int * self.resolution

    @property
    def resolution(self) -> float:
        return 2.0 ** -self.frac_bits

    # -- NumPy side --------------------------------------------------------------------------

    def quantise(self, x, rounding: str = "nearest-even") -> Quantised:
        """Quantise real values to stored integers, saturating at the format's range.

        Parameters
        ----------
        x : array_like of float
            Finite real values.
        rounding : str
            One of :data:`ROUNDING_MODES`.

        Returns
        -------
        Quantised
            ``(values, saturated)``: int64 array of stored integers and a bool mask of the
            elements that were clipped.

        Raises
        ------
        ValueError
            If ``x`` holds NaN or infinity, or ``rounding`` is unknown.
        """
        _check_rounding(rounding)
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            bad = np.argwhere(~np.isfinite(x))[0]
            raise ValueError(
                f"cannot quantise non-finite value {float(x[tuple(bad)])!r} at index "
                f"{tuple(int(i) for i in bad)}"
            )
        scaled = np.ldexp(x, self.frac_bits)  # exact: multiplying by a power of two
        if rounding == "nearest-even":
            rounded = np.rint(scaled)
        elif rounding == "nearest-up":
            # floor, then up where the part dropped is at least one half: both steps exact
            # (floor(scaled + 0.5) rounds the sum first: 0.49999999999999994 went up to 1)
            rounded = np.floor(scaled)
            rounded = rounded + (scaled - rounded >= 0.5)
        else:
            rounded = np.floor(scaled)
        saturated = (rounded < self.min_int) | (rounded > self.max_int)
        values = np.clip(rounded, self.min_int, self.max_int).astype(np.int64)
        return Quantised(values, saturated)

    def dequantise(self, q) -> np.ndarray:
        """Real values (float64, exact) of stored integers.

        Raises
        ------
        ValueError
            If an integer lies outside ``[min_int, max_int]``.
        """
        q = np.asarray(q)
        if q.dtype.kind not in "iuO":
            raise TypeError(f"stored values must be integers, not {q.dtype}")
        q = q.astype(np.int64)
        if q.size and (q.min() < self.min_int or q.max() > self.max_int):
            raise ValueError(
                f"stored integers out of range for {self}: [{q.min()}, {q.max()}] not within "
                f"[{self.min_int}, {self.max_int}]"
            )
        return np.ldexp(q.astype(np.float64), -self.frac_bits)

    def const(self, x: float, rounding: str = "nearest-even") -> int:
        """The stored integer of one real constant; raises if it does not fit."""
        q = self.quantise(x, rounding)
        if q.saturated.any():
            raise ValueError(f"{x!r} is outside the range [{self.min}, {self.max}] of {self}")
        return int(q.values)

    def check_ints(self, q, name: str = "values") -> np.ndarray:
        """Return ``q`` as int64 after checking every element fits the format."""
        q = np.asarray(q)
        if q.dtype.kind == "O":  # Python integers (e.g. beyond int64): each must be one
            for value in q.flat:
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    raise TypeError(f"{name} must be integers, not {type(value).__name__} "
                                    f"({value!r})")
        elif q.dtype.kind not in "iu":
            raise TypeError(f"{name} must be integers, not {q.dtype}")
        # range first, on the values as given: a uint64 or a Python int beyond int64 would
        # wrap in the conversion
        if q.size:
            low, high = ((min(q.flat), max(q.flat)) if q.dtype.kind == "O"
                         else (int(q.min()), int(q.max())))
            if low < self.min_int or high > self.max_int:
                raise ValueError(f"{name} out of range for {self}")
        return q.astype(np.int64)

    # -- Amaranth side -----------------------------------------------------------------------

    def shape(self):
        """The Amaranth shape, ``signed(width)`` (imports Amaranth on first use)."""
        from amaranth.hdl import signed

        return signed(self.width)


def round_shift(x, shift: int, rounding: str = "nearest-even") -> np.ndarray:
    """Divide integers by ``2**shift`` and round, exactly as the gateware does.

    Parameters
    ----------
    x : array_like of int
        Integers (int64, or Python integers in an object array for wide accumulators).
    shift : int
        Bits to drop; 0 returns ``x`` unchanged; a negative shift multiplies by
        ``2**-shift`` (exact).
    rounding : str
        One of :data:`ROUNDING_MODES`. ``"nearest-up"`` adds ``2**(shift-1)`` and then shifts
        right arithmetically; ``"nearest-even"`` does the same but rounds exact ties to the even
        neighbour; ``"truncate"`` is the plain arithmetic right shift.

    Returns
    -------
    numpy.ndarray
        Same dtype as the input (int64 or object).
    """
    _check_rounding(rounding)
    shift = _check_int("shift", shift)
    x = np.asarray(x)
    if x.dtype.kind not in "iuO":
        raise TypeError(f"round_shift needs integers, not {x.dtype}")
    if shift == 0:
        return x.copy()
    if shift < 0:
        factor = 1 << -shift
        if x.dtype.kind != "O" and x.size:
            info = np.iinfo(x.dtype)
            low, high = int(x.min()), int(x.max())
            if low * factor < info.min or high * factor > info.max:
                raise OverflowError(
                    f"round_shift: {x.dtype} values in [{low}, {high}] times 2**{-shift} do "
                    f"not fit {x.dtype}; pass Python integers (an object array)")
        return x * factor
    if x.dtype.kind != "O" and x.size:
        # x + 2**(shift-1) must not wrap, nor a shift reach the width (NumPy masks the count)
        info = np.iinfo(x.dtype)
        if shift >= info.bits - 1 or int(x.max()) > info.max - (1 << (shift - 1)):
            return round_shift(x.astype(object), shift, rounding).astype(x.dtype)
    if rounding == "truncate":
        return x >> shift
    half = 1 << (shift - 1)
    up = (x + half) >> shift
    if rounding == "nearest-up":
        return up
    mask = (1 << shift) - 1
    tie = (x & mask) == half
    return np.where(tie & ((up & 1) == 1), up - 1, up).astype(x.dtype)


def saturate(x, fmt: FixedFormat) -> tuple[np.ndarray, np.ndarray]:
    """Clip integers to ``fmt``'s range.

    Returns
    -------
    (values, saturated) : tuple of numpy.ndarray
        int64 values within range, and a bool mask of the clipped elements.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iuO":
        raise TypeError(f"saturate needs integers, not {x.dtype}")
    low = x < fmt.min_int
    high = x > fmt.max_int
    values = np.where(low, fmt.min_int, np.where(high, fmt.max_int, x)).astype(np.int64)
    return values, np.asarray(low | high, dtype=bool)


# -- hardware multipliers ----------------------------------------------------------------------

#: Signed operand width of one hardware multiplier (ECP5 ``MULT18X18D``). The cores cut wider
#: operands into pieces of at most this width, register every partial product and sum them one
#: registered level per cycle (:func:`tiersolve.gen.hwfixed.pipelined_product`), so that no
#: carry chain follows a multiplier in the same cycle.
MULTIPLIER_WIDTH = 18


def multiplier_pieces(width: int) -> int:
    """Pieces a signed ``width``-bit operand is cut into: unsigned low pieces of
    ``MULTIPLIER_WIDTH - 1`` bits and a signed top piece of at most ``MULTIPLIER_WIDTH``."""
    if width <= MULTIPLIER_WIDTH:
        return 1
    return 1 + -(-(width - MULTIPLIER_WIDTH) // (MULTIPLIER_WIDTH - 1))


def product_latency(width_a: int, width_b: int) -> int:
    """Cycles from registered operands to the registered exact product ``a·b`` of
    :func:`tiersolve.gen.hwfixed.pipelined_product` for signed operands of these widths: 1 for
    the partial products (one hardware multiplier each), plus one per level of their pairwise
    sum. Operands of at most 18 bits: 1."""
    terms = multiplier_pieces(width_a) * multiplier_pieces(width_b)
    return 1 + (terms - 1).bit_length()
