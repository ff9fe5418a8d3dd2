"""Parameter checks shared by the generators, designs and host (no Amaranth, no NumPy)."""

from __future__ import annotations

__all__ = ["check_int"]


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an integer in ``low..high`` (``high=None``: no upper limit).

    Raises
    ------
    TypeError
        If ``value`` is not an ``int`` (``bool`` is refused too).
    ValueError
        If it lies outside the range; the message names the parameter and the value.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        limit = f"in {low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {limit}, not {value}")
    return value
