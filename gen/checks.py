"""Parameter checks shared by the generators, designs and host (no Amaranth, no NumPy at
import time)."""

from __future__ import annotations

import functools

__all__ = ["check_int", "silence_unused", "silent_if_refused"]


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


def silence_unused(component):
    """Say that an Amaranth component will never be elaborated (built only to be inspected,
    or refused by its constructor), and so are the components it has built (its attributes,
    at any depth): Amaranth does not warn that they were "created but never used".
    Returns ``component``."""
    from amaranth.hdl import Elaboratable

    parts = [component]
    while parts:
        part = parts.pop()
        part._MustUse__silence = True
        parts.extend(value for value in vars(part).values()
                     if isinstance(value, Elaboratable) and not value._MustUse__silence)
    return component


def silent_if_refused(init):
    """Decorate a component's ``__init__``: a component whose constructor raises (its
    parameters refused) is not an unused one, so it and what it had built are silenced
    (:func:`silence_unused`) before the error goes on."""

    @functools.wraps(init)
    def checked_init(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except BaseException:
            silence_unused(self)
            raise

    return checked_init
