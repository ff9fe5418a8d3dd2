"""Gateware counterparts of :func:`tiersolve.gen.fixed.round_shift` and
:func:`tiersolve.gen.fixed.saturate`.

These are combinational helpers that return Amaranth values; put registers around them where the
timing needs it. Each one computes exactly what its NumPy twin computes, so a model written with
the NumPy helpers is bit-exact against gateware written with these.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Mux, Value

from .fixed import FixedFormat, _check_rounding

__all__ = ["round_shift", "saturate"]


def round_shift(value: Value, shift: int, rounding: str = "nearest-even") -> Value:
    """``value / 2**shift`` rounded as :func:`tiersolve.gen.fixed.round_shift` does.

    ``value`` must be signed. The result is signed and one bit wider than ``value`` minus
    ``shift`` (room for the carry of rounding up).
    """
    _check_rounding(rounding)
    value = Value.cast(value)
    if not value.shape().signed:
        raise TypeError("round_shift expects a signed value")
    if shift < 0:
        return (value << -shift).as_signed()
    if shift == 0:
        return value
    width = len(value) - shift + 1
    if rounding == "truncate":
        return (value >> shift).as_signed()
    half = 1 << (shift - 1)
    up = (value + half) >> shift  # signed, exactly `width` bits
    if rounding == "nearest-up":
        return up
    low = value[:shift]
    tie = low == half
    return Mux(tie & up[0], up - 1, up)[:width].as_signed()


def saturate(value: Value, fmt: FixedFormat) -> tuple[Value, Value]:
    """Clip a signed value to ``fmt``'s range.

    Returns
    -------
    (result, overflow)
        ``result`` has shape ``fmt.shape()``; ``overflow`` is 1 when clipping happened.
    """
    value = Value.cast(value)
    if not value.shape().signed:
        value = Cat(value, 0).as_signed()
    width = fmt.width
    if len(value) <= width:
        return value.as_signed(), Value.cast(0)
    high = value > fmt.max_int
    low = value < fmt.min_int
    result = Mux(high, fmt.max_int, Mux(low, fmt.min_int, value[:width].as_signed()))
    return result[:width].as_signed(), high | low
