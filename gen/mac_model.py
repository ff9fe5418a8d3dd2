"""Bit-exact NumPy model of the streaming multiply-accumulate unit (:mod:`tiersolve.gen.mac`).

The unit computes dot products of fixed-point vectors. Each transfer carries one pair of
operands ``(a, b)`` and two markers:

``first``
    start a new sum with ``a * b`` (the accumulator and its saturation flag are reset);
``last``
    after adding ``a * b``, round the full-precision sum once to the output format, saturate it,
    and emit it.

Without ``first`` a transfer adds ``a * b`` to whatever the accumulator holds, also after a
``last``: ``last`` emits the sum but does not end it. Setting ``last`` on every transfer thus
emits running sums. After reset the accumulator holds zero.

The product of ``a`` (``fa`` fractional bits) and ``b`` (``fb`` fractional bits) is exact, with
``fa + fb`` fractional bits. The accumulator is ``width_a + width_b + guard_bits`` bits wide and
clips at its own range when a sum would overflow it. The emitted value is
``saturate(round_shift(sum, fa + fb - fo), fmt_out)`` with ``fo = fmt_out.frac_bits`` (the
primitives of :mod:`tiersolve.gen.fixed`); its ``saturated`` flag is set when the accumulator
clipped since the sum started or the final value was clipped.

This module imports NumPy only, so the host can use it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .fixed import FixedFormat, _check_rounding, round_shift, saturate

__all__ = ["MacParameters", "MacResult", "check_mac_parameters", "mac_model"]


class MacParameters(NamedTuple):
    """Checked parameters of a multiply-accumulate unit (see :func:`check_mac_parameters`).

    Attributes
    ----------
    fmt_a, fmt_b, fmt_out : FixedFormat
        Formats of the operands and of the emitted result.
    guard_bits : int
        Accumulator bits beyond the full product width.
    rounding : str
        One of :data:`tiersolve.gen.fixed.ROUNDING_MODES`.
    """

    fmt_a: FixedFormat
    fmt_b: FixedFormat
    fmt_out: FixedFormat
    guard_bits: int
    rounding: str

    @property
    def product_width(self) -> int:
        """Bits of the exact product ``a * b``: ``width_a + width_b``."""
        return self.fmt_a.width + self.fmt_b.width

    @property
    def product_frac_bits(self) -> int:
        """Fractional bits of the product and of the accumulator: ``fa + fb``."""
        return self.fmt_a.frac_bits + self.fmt_b.frac_bits

    @property
    def accumulator_width(self) -> int:
        """Bits of the accumulator: ``width_a + width_b + guard_bits``."""
        return self.product_width + self.guard_bits

    @property
    def accumulator_min(self) -> int:
        return -(1 << (self.accumulator_width - 1))

    @property
    def accumulator_max(self) -> int:
        return (1 << (self.accumulator_width - 1)) - 1

    @property
    def output_shift(self) -> int:
        """Bits dropped by the final rounding, ``fa + fb - fo`` (negative: shifted left)."""
        return self.product_frac_bits - self.fmt_out.frac_bits


def _check_format(name: str, value) -> FixedFormat:
    if isinstance(value, FixedFormat):
        return value
    if isinstance(value, str):
        return FixedFormat.parse(value)
    raise TypeError(f"{name} must be a FixedFormat or a string like 'Q6.12', not {value!r}")


def check_mac_parameters(fmt_a, fmt_b=None, fmt_out=None, guard_bits=8,
                         rounding="nearest-even") -> MacParameters:
    """Validate and normalise the parameters of a multiply-accumulate unit.

    Parameters
    ----------
    fmt_a : FixedFormat or str
        Format of the ``a`` operands (``"Q6.12"`` strings are parsed).
    fmt_b, fmt_out : FixedFormat or str or None
        Formats of the ``b`` operands and of the result; ``None`` means ``fmt_a``.
    guard_bits : int
        Accumulator bits beyond the product width, at least 0. ``g`` guard bits guarantee that
        any ``2**(g + 1) - 1`` products sum without clipping the accumulator (a product's
        magnitude is at most ``2**(width_a + width_b - 2)``).
    rounding : str
        One of :data:`tiersolve.gen.fixed.ROUNDING_MODES`.

    Returns
    -------
    MacParameters

    Raises
    ------
    TypeError
        If a format is neither a FixedFormat nor a string, or ``guard_bits`` is not an integer.
    ValueError
        If a format string does not parse, ``guard_bits < 0`` or ``rounding`` is unknown.
    """
    fmt_a = _check_format("fmt_a", fmt_a)
    fmt_b = fmt_a if fmt_b is None else _check_format("fmt_b", fmt_b)
    fmt_out = fmt_a if fmt_out is None else _check_format("fmt_out", fmt_out)
    if isinstance(guard_bits, bool) or not isinstance(guard_bits, (int, np.integer)):
        raise TypeError(f"guard_bits must be an integer, not {guard_bits!r}")
    guard_bits = int(guard_bits)
    if guard_bits < 0:
        raise ValueError(f"guard_bits must be at least 0, not {guard_bits}")
    if not isinstance(rounding, str):
        raise TypeError(f"rounding must be a string, not {rounding!r}")
    _check_rounding(rounding)
    return MacParameters(fmt_a, fmt_b, fmt_out, guard_bits, rounding)


class MacResult(NamedTuple):
    """Sequence of results emitted by :func:`mac_model`, one per transfer with ``last`` set.

    Attributes
    ----------
    values : numpy.ndarray of int64
        Stored integers of the results in ``fmt_out``.
    saturated : numpy.ndarray of bool
        True where the accumulator clipped during that sum or the final value was clipped.
    """

    values: np.ndarray
    saturated: np.ndarray


def _check_flags(name: str, flags, length: int) -> np.ndarray:
    flags = np.asarray(flags)
    if flags.size == 0:
        flags = flags.astype(bool)
    if flags.ndim != 1 or flags.shape[0] != length:
        raise ValueError(f"{name} must be a 1-D array of length {length}, not shape {flags.shape}")
    if flags.dtype.kind not in "biu":
        raise TypeError(f"{name} must hold booleans or 0/1 integers, not {flags.dtype}")
    if flags.size and not np.all((flags == 0) | (flags == 1)):
        raise ValueError(f"{name} must hold only 0 and 1")
    return flags.astype(bool)


def _check_operands(name: str, values, fmt: FixedFormat) -> np.ndarray:
    values = np.asarray(values)
    if values.size == 0:
        values = values.astype(np.int64)  # an empty list arrives as float64
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, not shape {values.shape}")
    return fmt.check_ints(values, name)


def mac_model(a, b, first, last, fmt_a, fmt_b=None, fmt_out=None, guard_bits=8,
              rounding="nearest-even") -> MacResult:
    """Results the multiply-accumulate unit emits for a sequence of input transfers.

    Parameters
    ----------
    a, b : array_like of int, shape (n,)
        Stored integers of the operands, in ``fmt_a`` and ``fmt_b``.
    first, last : array_like of bool, shape (n,)
        Markers of each transfer (see the module docstring).
    fmt_a, fmt_b, fmt_out, guard_bits, rounding
        As for :func:`check_mac_parameters`.

    Returns
    -------
    MacResult
        ``(values, saturated)``, one entry per transfer with ``last`` set, in order.

    Raises
    ------
    TypeError, ValueError
        If a parameter is invalid, an array has the wrong shape or type, or an operand lies
        outside its format.
    """
    params = check_mac_parameters(fmt_a, fmt_b, fmt_out, guard_bits, rounding)
    a = _check_operands("a", a, params.fmt_a)
    b = _check_operands("b", b, params.fmt_b)
    if b.shape != a.shape:
        raise ValueError(f"a and b must have the same length, not {a.shape[0]} and {b.shape[0]}")
    first = _check_flags("first", first, a.shape[0])
    last = _check_flags("last", last, a.shape[0])

    low, high = params.accumulator_min, params.accumulator_max
    accumulator = 0
    clipped = False
    sums = []
    sum_clipped = []
    for a_value, b_value, is_first, is_last in zip(a.tolist(), b.tolist(), first, last,
                                                    strict=True):
        product = a_value * b_value  # Python int: exact at any width
        if is_first:
            accumulator, clipped = product, False  # a product always fits the accumulator
        else:
            total = accumulator + product
            accumulator = min(max(total, low), high)
            clipped = clipped or accumulator != total
        if is_last:
            sums.append(accumulator)
            sum_clipped.append(clipped)

    sums = np.array(sums, dtype=object)
    rounded = round_shift(sums, params.output_shift, params.rounding)
    values, out_clipped = saturate(rounded, params.fmt_out)
    return MacResult(values.astype(np.int64),
                     np.asarray(sum_clipped, dtype=bool) | out_clipped)
