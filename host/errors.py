"""Exceptions of the host library: device flags and link failures become these.

All derive from :class:`DeviceError`. Bad arguments (wrong shapes, NaN, sizes above the device's
limits, malformed URLs) raise the ordinary :class:`ValueError` / :class:`TypeError` before
anything is sent.
"""

from __future__ import annotations

__all__ = [
    "DeviceError",
    "DeviceTimeout",
    "DowndateRefused",
    "IncompatibleDevice",
    "LinkError",
    "NotPositiveDefinite",
    "Saturated",
]


class DeviceError(Exception):
    """Base class of the errors a device or its link reports."""


class NotPositiveDefinite(DeviceError, ArithmeticError):
    """A pivot of the factorisation was not positive.

    The matrix is not positive definite, or λ is too small for the precision of the format.

    Attributes
    ----------
    index : int or None
        Column of the failing pivot (``None`` when unknown).
    """

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


class Saturated(DeviceError, ArithmeticError):
    """A value was clipped on the device, or would be even after power-of-two scaling.

    Raised before anything is sent when the host's range analysis shows that the problem does
    not fit the device's format, and after a job when the device's sticky ``saturated`` flag is
    set (the result is then not returned: it may be wrong).
    """


class DowndateRefused(DeviceError, ArithmeticError):
    """The updater refused to take a row out: the result would not be positive definite (the
    row was never folded in, or too much of it was forgotten), or too close to singular for the
    format. The updater's state is exactly what it was before the refused row: rows before it
    in the same call were taken out (the message says which)."""


class LinkError(DeviceError, OSError):
    """The link to the device failed: a rejected request, a broken port, a protocol error."""


class DeviceTimeout(LinkError, TimeoutError):
    """The device did not answer in time (after the retries), or a job did not finish in time.

    No result is returned: nothing is ever filled in with zeros.
    """


class IncompatibleDevice(DeviceError):
    """The device is not a tiersolve solver, or its register map or cores do not match."""
