"""Bit-exact models of the reciprocal and reciprocal-square-root unit (NumPy only).

These functions define what :class:`tiersolve.gen.recip.ReciprocalUnit` computes, integer for
integer. Write ``fi = fmt_in.frac_bits`` and ``fo = fmt_out.frac_bits``. A stored input ``x``
stands for ``x * 2**-fi``; the result ``y`` stands for ``y * 2**-fo``. Both results are exact
truncations of the real value:

``rsqrt``
    for ``x > 0``, ``y = floor(sqrt(2**(2*fo + fi) / x))``, the largest ``y`` with
    ``y*y*x <= 2**(2*fo + fi)``; ``x <= 0`` is invalid.
``recip``
    for ``x != 0``, ``y = sign(x) * floor(2**(fo + fi) / |x|)`` (truncation towards zero);
    ``x == 0`` is invalid.

A result above ``fmt_out.max_int`` (or below ``fmt_out.min_int``) is clipped to that limit and
flagged ``saturated``. An invalid input gives ``y = fmt_out.max_int``, ``invalid = True`` and
``saturated = False``.

Error bound
-----------
Wherever the result is valid and not saturated, ``0 <= f(x) - y * 2**-fo < 2**-fo`` for
``f(x) = 1/sqrt(x * 2**-fi)``, and ``0 <= |f(x)| - |y| * 2**-fo < 2**-fo`` for
``f(x) = 1/(x * 2**-fi)``: the error is below one ULP of ``fmt_out`` and never increases the
magnitude.

The integers are evaluated with Python's exact integers (``2*fo + fi`` can reach 93 bits), so
these models are exact for every pair of formats :class:`~tiersolve.gen.fixed.FixedFormat`
allows. They cost about a microsecond per element.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .fixed import FixedFormat

__all__ = ["ReciprocalResult", "reciprocal_model", "rsqrt_model", "rsqrt_dividend",
           "reciprocal_dividend"]


class ReciprocalResult(NamedTuple):
    """Result of :func:`reciprocal_model` and :func:`rsqrt_model` (a plain 3-tuple).

    Attributes
    ----------
    y : numpy.ndarray of int64
        Stored integers in ``fmt_out``, same shape as the input.
    invalid : numpy.ndarray of bool
        True where the input was outside the function's domain.
    saturated : numpy.ndarray of bool
        True where the exact truncation did not fit ``fmt_out`` and was clipped.
    """

    y: np.ndarray
    invalid: np.ndarray
    saturated: np.ndarray


def rsqrt_dividend(fmt_in: FixedFormat, fmt_out: FixedFormat) -> int:
    """``2**(2*fo + fi)``: the ``N`` of ``y = floor(sqrt(N / x))`` for reciprocal square root."""
    return 1 << (2 * fmt_out.frac_bits + fmt_in.frac_bits)


def reciprocal_dividend(fmt_in: FixedFormat, fmt_out: FixedFormat) -> int:
    """``2**(fo + fi)``: the ``M`` of ``y = floor(M / |x|)`` for the reciprocal."""
    return 1 << (fmt_out.frac_bits + fmt_in.frac_bits)


def _check_formats(fmt_in, fmt_out) -> None:
    for name, fmt in (("fmt_in", fmt_in), ("fmt_out", fmt_out)):
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"{name} must be a FixedFormat, not {fmt!r}")


def _evaluate(x, fmt_in, fmt_out, exact) -> ReciprocalResult:
    x = fmt_in.check_ints(x, "x")
    y = np.empty(x.shape, dtype=np.int64)
    invalid = np.zeros(x.shape, dtype=bool)
    saturated = np.zeros(x.shape, dtype=bool)
    for index, value in np.ndenumerate(x):
        result = exact(int(value))
        if result is None:
            y[index] = fmt_out.max_int
            invalid[index] = True
        elif result > fmt_out.max_int:
            y[index] = fmt_out.max_int
            saturated[index] = True
        elif result < fmt_out.min_int:
            y[index] = fmt_out.min_int
            saturated[index] = True
        else:
            y[index] = result
    return ReciprocalResult(y, invalid, saturated)


def rsqrt_model(x, fmt_in: FixedFormat, fmt_out: FixedFormat) -> ReciprocalResult:
    """Reciprocal square root of stored integers, exactly as the gateware computes it.

    Parameters
    ----------
    x : array_like of int
        Stored integers in ``fmt_in``.
    fmt_in, fmt_out : FixedFormat
        Formats of the input and of the result.

    Returns
    -------
    ReciprocalResult
        ``(y, invalid, saturated)``: ``y = floor(sqrt(2**(2*fo + fi) / x))`` clipped to
        ``fmt_out`` (flagged ``saturated`` when clipped); ``x <= 0`` gives ``fmt_out.max_int``
        flagged ``invalid``. See the module docstring for the error bound.

    Raises
    ------
    TypeError
        If a format is not a :class:`FixedFormat` or ``x`` is not integer.
    ValueError
        If an element of ``x`` lies outside ``fmt_in``'s range.

    Examples
    --------
    >>> q = FixedFormat(6, 12)
    >>> rsqrt_model([4 << 12, 0, 1], q, q)    # 1/sqrt(4) = 0.5; invalid; saturates
    ReciprocalResult(y=array([  2048, 131071, 131071]), invalid=array([False,  True, False]), \
saturated=array([False, False,  True]))
    """
    _check_formats(fmt_in, fmt_out)
    dividend = rsqrt_dividend(fmt_in, fmt_out)

    def exact(value: int):
        if value <= 0:
            return None
        return math.isqrt(dividend // value)  # y*y <= N/x  <=>  y*y <= floor(N/x)

    return _evaluate(x, fmt_in, fmt_out, exact)


def reciprocal_model(x, fmt_in: FixedFormat, fmt_out: FixedFormat) -> ReciprocalResult:
    """Reciprocal of stored integers, truncated towards zero, exactly as the gateware does.

    Parameters
    ----------
    x : array_like of int
        Stored integers in ``fmt_in``.
    fmt_in, fmt_out : FixedFormat
        Formats of the input and of the result.

    Returns
    -------
    ReciprocalResult
        ``(y, invalid, saturated)``: ``y = sign(x) * floor(2**(fo + fi) / |x|)`` clipped to
        ``fmt_out`` (flagged ``saturated`` when clipped); ``x == 0`` gives ``fmt_out.max_int``
        flagged ``invalid``. See the module docstring for the error bound.

    Raises
    ------
    TypeError
        If a format is not a :class:`FixedFormat` or ``x`` is not integer.
    ValueError
        If an element of ``x`` lies outside ``fmt_in``'s range.

    Examples
    --------
    >>> q = FixedFormat(6, 12)
    >>> reciprocal_model([3 << 12, -(1 << 12), 0], q, q)   # 1/3, -1, invalid
    ReciprocalResult(y=array([  1365,  -4096, 131071]), invalid=array([False, False,  True]), \
saturated=array([False, False, False]))
    """
    _check_formats(fmt_in, fmt_out)
    dividend = reciprocal_dividend(fmt_in, fmt_out)

    def exact(value: int):
        if value == 0:
            return None
        magnitude = dividend // abs(value)
        return magnitude if value > 0 else -magnitude

    return _evaluate(x, fmt_in, fmt_out, exact)
