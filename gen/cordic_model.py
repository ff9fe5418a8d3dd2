"""Bit-exact NumPy model of the CORDIC unit in :mod:`tiersolve.gen.cordic`, and its error bounds.

The CORDIC (COordinate Rotation DIgital Computer) rotates a vector by a sequence of
micro-rotations by ``±atan(2**-i)``, each of which needs only shifts and adds. The unit has two
modes that together make a multiplier-free Givens rotation:

``vectoring``
    ``(x, y) -> (magnitude, directions, angle)``: rotates ``(x, y)`` onto the +x axis, choosing
    each micro-rotation's sign from the sign of the current ``y``. ``magnitude`` is
    ``hypot(x, y)``, ``angle`` is ``atan2(y, x)`` and ``directions`` records every choice.
``rotation``
    ``(x, y, directions) -> (x', y')``: replays exactly the rotation that ``directions`` encode.
    Given the directions that vectoring ``(a, b)`` produced, it applies to ``(x, y)`` the same
    rotation that took ``(a, b)`` to the +x axis; replayed on ``(a, b)`` itself it reproduces
    ``magnitude`` bit for bit and a residual ``y'`` close to zero.

Arithmetic, step by step (``n`` iterations, ``G`` guard bits, input format ``Q<I>.<F>``)
---------------------------------------------------------------------------------------------
1. Pre-rotation by 180 degrees when the ``prerotate`` direction bit is set (vectoring sets it
   when ``x < 0``): ``(x, y) -> (-x, -y)``, exact. Then shift left by ``G`` into the internal
   format ``Q<I+2>.<F+G>``: two more integer bits hold the growth ``sqrt(2) * K < 2.33`` of the
   largest input vector, ``G`` fractional guard bits absorb the truncation of the shifts.
2. Iteration ``i = 0 .. n-1``; direction bit ``counterclockwise[i]`` (vectoring: ``y_i < 0``)::

       ccw: x' = x - (y >> i),  y' = y + (x >> i),  z' = z + atan(2**-i)
       cw:  x' = x + (y >> i),  y' = y - (x >> i),  z' = z - atan(2**-i)

   ``>>`` is the arithmetic shift (rounds towards -inf). ``z`` (vectoring only) accumulates
   rounded constants ``round(atan(2**-i) * 2**Fz)`` in ``Q3.<Fz>``, ``Fz = Fa + Gz``.
3. Gain: the iterations scale the vector by ``K = prod(sqrt(1 + 4**-i))`` (about 1.6468).
   With ``compensate_gain`` the result is multiplied by the constant
   ``c = round(2**C / K)``, ``C = width + 3``, written in canonical signed digits (so the
   hardware needs only shifts and adds); the product is exact and rounded ONCE. Without it the
   outputs carry the gain ``K``.
4. Output: round to nearest (ties to even) into the input format and saturate, with a
   ``saturated`` flag. The angle is ``-z`` (plus ``pi`` if pre-rotated, with the sign that keeps
   it in ``[-pi, pi]``) rounded to the angle format ``Q3.<width-3>`` (same width as the input
   format, radians).

Error bounds (derived in :class:`CordicConfig`; ``u = 2**-(F+G)`` is the internal LSB)
---------------------------------------------------------------------------------------
Each truncating shift at iterations ``i >= 1`` adds an error vector no longer than
``sqrt(2) * (1 - 2**-i) * u``, which later micro-rotations stretch by ``sqrt(1 + 4**-j)``;
the computed vector therefore differs from the exact ``K * R(theta) * v`` by at most
``E * u``, ``E = sum_i sqrt(2) (1 - 2**-i) prod_{j>i} sqrt(1 + 4**-j)``
(:attr:`CordicConfig.propagated_error`). In vectoring mode the sign-steered iterations leave a
residual ``|y_n| <= x_n * 2**-(n-1) + n * u`` (the usual convergence argument applied to the
computed, truncated steps). From these two facts follow the bounds of
:meth:`CordicConfig.magnitude_error_bound`, :meth:`CordicConfig.angle_error_bound`,
:meth:`CordicConfig.rotation_error_bound` and :meth:`CordicConfig.residual_bound`.

This module imports NumPy only (no Amaranth), so the host can use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from .fixed import FixedFormat, round_shift, saturate

__all__ = [
    "MAX_ITERATIONS",
    "CordicConfig",
    "MicroRotationResult",
    "RotationResult",
    "VectoringResult",
    "canonical_signed_digits",
    "directions_for_angle",
    "micro_rotations",
    "rotation",
    "vectoring",
]

#: Most iterations supported: the directions (one bit per iteration plus the pre-rotation bit)
#: must fit the model's int64.
MAX_ITERATIONS = 62

#: Fewest iterations supported (the error bounds assume at least 3).
MIN_ITERATIONS = 4

#: Integer bits of the angle format and of the internal angle accumulator: ``[-4, 4)`` radians.
ANGLE_INT_BITS = 3

#: Every rounding to the output formats is round-to-nearest, ties to even.
OUTPUT_ROUNDING = "nearest-even"


def canonical_signed_digits(value: int) -> tuple[tuple[int, int], ...]:
    """Canonical signed-digit form of a positive integer.

    Returns ``((shift, sign), ...)`` with ``sign`` in ``{+1, -1}`` such that
    ``value == sum(sign << shift)``, no two digits adjacent: the fewest adders for a constant
    multiply by shifts and adds.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"value must be a positive integer, not {value!r}")
    digits = []
    shift = 0
    while value:
        if value & 1:
            sign = 2 - (value & 3)  # +1 if ...01, -1 if ...11
            digits.append((shift, sign))
            value -= sign
        value >>= 1
        shift += 1
    return tuple(digits)


@dataclass(frozen=True)
class CordicConfig:
    """Every number that defines the CORDIC's arithmetic, shared by the model and the gateware.

    Parameters
    ----------
    fmt : FixedFormat
        Format of the inputs ``x, y`` and of the outputs (magnitude, rotated ``x, y``).
    iterations : int or None
        Micro-rotations ``n``, from :data:`MIN_ITERATIONS` to :data:`MAX_ITERATIONS`. Default
        ``fmt.width``: the angle then resolves to ``atan(2**-(n-1))``, a quarter of an LSB of
        the angle format, and the replay residual ``|y'|`` stays below 1.6 LSB at full scale
        (each extra iteration halves its ``r * 2**-(n-1)`` part).
    guard_bits : int or None
        Fractional guard bits ``G`` of the internal datapath (0 to 16). Default
        ``floor(log2(n)) + 3`` (``n.bit_length() + 2``): the truncation errors, about
        ``(E + 2n) u / K < 2.2 n u``, then stay below 0.3 output LSB, and every bound below is
        under one output LSB at full scale.
    compensate_gain : bool
        Multiply by ``1/K`` (shifts and adds, rounded once) so outputs are true magnitudes and
        rotations; otherwise outputs carry the CORDIC gain ``K`` (:attr:`gain`).

    Attributes
    ----------
    internal_int_bits, internal_frac_bits, internal_width : int
        The x/y datapath, ``Q<I+2>.<F+G>``; ``internal_lsb`` is ``u = 2**-(F+G)``.
    output_shift, product_width : int
        Bits dropped by the single output rounding, and width of the unrounded product.
    angle_format : FixedFormat
        ``Q3.<width-3>``, radians, range ``[-4, 4)``.
    angle_frac_bits : int
        ``Fz``, fractional bits of the internal angle accumulator (``Q3.<Fz>``).
    angle_constants : tuple of int
        ``round(atan(2**-i) * 2**Fz)`` for each iteration.
    pi_constant : int
        ``round(pi * 2**Fz)``.
    gain : float
        ``K = prod_{i<n} sqrt(1 + 4**-i)``.
    gain_constant_bits : int
        ``C``: the compensation constant is ``gain_constant / 2**C``.
    gain_constant : int
        ``round(2**C / K)``.
    gain_digits : tuple of (shift, sign)
        Canonical signed digits of ``gain_constant``.
    """

    fmt: FixedFormat
    iterations: int | None = None
    guard_bits: int | None = None
    compensate_gain: bool = True

    def __post_init__(self):
        if isinstance(self.fmt, str):
            object.__setattr__(self, "fmt", FixedFormat.parse(self.fmt))
        if not isinstance(self.fmt, FixedFormat):
            raise TypeError(f"fmt must be a FixedFormat or a string such as 'Q6.12', not "
                            f"{self.fmt!r}")
        if self.fmt.width < ANGLE_INT_BITS + 1:
            raise ValueError(f"fmt {self.fmt} is too narrow: the CORDIC needs at least 4 bits")
        iterations = self.fmt.width if self.iterations is None else self.iterations
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)):
            raise TypeError(f"iterations must be an integer, not {iterations!r}")
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise ValueError(
                f"iterations must be from {MIN_ITERATIONS} to {MAX_ITERATIONS}, not {iterations}"
            )
        iterations = int(iterations)
        guard_bits = iterations.bit_length() + 2 if self.guard_bits is None else self.guard_bits
        if isinstance(guard_bits, bool) or not isinstance(guard_bits, (int, np.integer)):
            raise TypeError(f"guard_bits must be an integer, not {guard_bits!r}")
        if not 0 <= guard_bits <= 16:
            raise ValueError(f"guard_bits must be from 0 to 16, not {guard_bits}")
        if not isinstance(self.compensate_gain, (bool, np.bool_)):
            raise TypeError(f"compensate_gain must be a bool, not {self.compensate_gain!r}")
        object.__setattr__(self, "iterations", iterations)
        object.__setattr__(self, "guard_bits", int(guard_bits))
        object.__setattr__(self, "compensate_gain", bool(self.compensate_gain))
        # The x/y registers have two integer bits above the input's: room for the gain
        # (|x|, |y| <= K·√2·2**(a-1), K < 1.65) plus the truncation error the shifted adds
        # collect (at most about one internal LSB per register and iteration). Too few guard
        # bits for many iterations overflow it (a magnitude that comes out negative).
        lsb = 2.0 ** -self.internal_frac_bits
        headroom = 2.0 ** (self.fmt.int_bits + 1) - math.sqrt(2) * self.gain * \
            2.0 ** (self.fmt.int_bits - 1)
        if 2 * iterations * lsb > headroom:
            raise ValueError(f"{iterations} iterations with {guard_bits} guard bits can "
                             f"overflow the {self.fmt} CORDIC's registers (rounding errors of "
                             f"up to {2 * iterations * lsb:.3g} against {headroom:.3g} of "
                             "headroom): give more guard bits (the default is "
                             f"{iterations.bit_length() + 2}) or fewer iterations")

    # -- x/y datapath ------------------------------------------------------------------------

    @property
    def internal_int_bits(self) -> int:
        return self.fmt.int_bits + 2

    @property
    def internal_frac_bits(self) -> int:
        return self.fmt.frac_bits + self.guard_bits

    @property
    def internal_width(self) -> int:
        return self.internal_int_bits + self.internal_frac_bits

    @property
    def internal_lsb(self) -> float:
        """``u``, the value of one internal LSB."""
        return 2.0 ** -self.internal_frac_bits

    @cached_property
    def gain(self) -> float:
        return math.prod(math.sqrt(1.0 + 4.0**-i) for i in range(self.iterations))

    @property
    def gain_constant_bits(self) -> int:
        return self.fmt.width + 3

    @cached_property
    def gain_constant(self) -> int:
        return round(2**self.gain_constant_bits / self.gain)

    @cached_property
    def gain_digits(self) -> tuple[tuple[int, int], ...]:
        return canonical_signed_digits(self.gain_constant)

    @property
    def output_shift(self) -> int:
        """Bits dropped by the final rounding (internal, times the constant if compensated)."""
        return self.guard_bits + (self.gain_constant_bits if self.compensate_gain else 0)

    @property
    def product_width(self) -> int:
        """Width of the exact (unrounded) compensated product."""
        if not self.compensate_gain:
            return self.internal_width
        return self.internal_width + self.gain_constant.bit_length()

    # -- angle datapath ----------------------------------------------------------------------

    @property
    def angle_format(self) -> FixedFormat:
        return FixedFormat(ANGLE_INT_BITS, self.fmt.width - ANGLE_INT_BITS)

    @property
    def angle_guard_bits(self) -> int:
        return math.ceil(math.log2(self.iterations + 1)) + 1

    @property
    def angle_frac_bits(self) -> int:
        return self.angle_format.frac_bits + self.angle_guard_bits

    @property
    def angle_width(self) -> int:
        """Width of the internal angle accumulator, ``Q3.<Fz>`` (holds partial sums < 1.75)."""
        return ANGLE_INT_BITS + self.angle_frac_bits

    @cached_property
    def angle_constants(self) -> tuple[int, ...]:
        scale = 2**self.angle_frac_bits
        return tuple(round(math.atan(2.0**-i) * scale) for i in range(self.iterations))

    @cached_property
    def pi_constant(self) -> int:
        return round(math.pi * 2**self.angle_frac_bits)

    @property
    def directions_width(self) -> int:
        """Bits of a packed directions word: bit 0 pre-rotation, bit ``i+1`` iteration ``i``."""
        return self.iterations + 1

    # -- error analysis ----------------------------------------------------------------------

    @cached_property
    def propagated_error(self) -> float:
        """``E``: bound on ``|computed - exact|`` of the final vector, in internal LSBs.

        ``E = sum_{i=1}^{n-1} sqrt(2) (1 - 2**-i) prod_{j=i+1}^{n-1} sqrt(1 + 4**-j)``: the
        truncation of ``x >> i`` and ``y >> i`` loses less than ``1 - 2**-i`` LSB on each
        coordinate (iteration 0 shifts by nothing and is exact), and every later micro-rotation
        stretches an error vector by ``sqrt(1 + 4**-j)``.
        """
        n = self.iterations
        total = 0.0
        for i in range(1, n):
            stretch = math.prod(math.sqrt(1.0 + 4.0**-j) for j in range(i + 1, n))
            total += math.sqrt(2.0) * (1.0 - 2.0**-i) * stretch
        return total

    @cached_property
    def gain_constant_error(self) -> float:
        """``|c / 2**C - 1/K|`` (0 when the gain is not compensated)."""
        if not self.compensate_gain:
            return 0.0
        return abs(self.gain_constant / 2**self.gain_constant_bits - 1.0 / self.gain)

    @cached_property
    def angle_constant_error(self) -> float:
        """Sum of the rounding errors of the ``atan(2**-i)`` constants and of ``pi``, radians."""
        scale = 2.0**-self.angle_frac_bits
        total = abs(self.pi_constant * scale - math.pi)
        for i, constant in enumerate(self.angle_constants):
            total += abs(constant * scale - math.atan(2.0**-i))
        return total

    def _scale(self) -> float:
        """Factor from the internal vector to the output: ``c/2**C`` or 1."""
        if self.compensate_gain:
            return self.gain_constant / 2**self.gain_constant_bits
        return 1.0

    def magnitude_error_bound(self, radius):
        """Bound on ``|magnitude - g * hypot(x, y)|`` in real units (vectoring, unsaturated).

        ``g`` is 1 with gain compensation, else :attr:`gain`. With ``r = hypot(x, y)``,
        ``n`` iterations and ``u`` the internal LSB::

            |x_n - K r| <= E u + (|v_n| - x_n),   |v_n| - x_n <= x_n 2**-(2n-1) + 2 n u

        (the second from ``|y_n| <= x_n 2**-(n-1) + n u``), ``x_n <= K r + E u``, so the
        bound is ``LSB/2 + (K r + E u) |c - 1/K| + (E u + (K r + E u) 2**-(2n-1) + 2 n u) s``
        with ``s = c`` (compensated; ``c ~ 1/K``) or ``s = 1`` and ``|c - 1/K| = 0``.
        """
        radius = np.asarray(radius, dtype=np.float64)
        n, u, gain = self.iterations, self.internal_lsb, self.gain
        error_units = self.propagated_error * u
        x_max = gain * radius + error_units
        vector = error_units + x_max * 2.0 ** -(2 * n - 1) + 2 * n * u
        return (0.5 * self.fmt.resolution + x_max * self.gain_constant_error
                + vector * self._scale())

    def rotation_error_bound(self, radius):
        """Bound on each output coordinate's error in rotation mode (unsaturated), real units.

        Compared with ``g * R(theta) @ (x, y)`` where ``theta`` is the angle the directions
        encode (:meth:`directions_to_angle`) and ``g`` is 1 or :attr:`gain`; ``radius`` is
        ``hypot(x, y)``: ``LSB/2 + (K r + E u) |c - 1/K| + E u s``.
        """
        radius = np.asarray(radius, dtype=np.float64)
        error_units = self.propagated_error * self.internal_lsb
        x_max = self.gain * radius + error_units
        return (0.5 * self.fmt.resolution + x_max * self.gain_constant_error
                + error_units * self._scale())

    def residual_bound(self, radius):
        """Bound on ``|y'|`` when rotation replays the directions vectoring found for the same
        ``(x, y)`` (real units): ``LSB/2 + s ((K r + E u) 2**-(n-1) + n u)``."""
        radius = np.asarray(radius, dtype=np.float64)
        n, u = self.iterations, self.internal_lsb
        x_max = self.gain * radius + self.propagated_error * u
        return 0.5 * self.fmt.resolution + self._scale() * (x_max * 2.0 ** -(n - 1) + n * u)

    def angle_min_radius(self) -> float:
        """Smallest ``hypot(x, y)`` for which :meth:`angle_error_bound` holds: ``(E + 6n) u / K``.
        Below it the angle of a vector a few LSBs long is not defined by the data."""
        return (self.propagated_error + 6 * self.iterations) * self.internal_lsb / self.gain

    def angle_error_bound(self, radius):
        """Bound on ``|angle - atan2(y, x)|`` (modulo ``2 pi``), radians.

        For ``r = hypot(x, y) >= angle_min_radius()``: the computed final vector is at least
        half as long along x as it is long, so its angle is at most
        ``atan(2**-(n-1)) + 2 n u / (K r - E u)``; it is within ``asin(E u / K r) <=
        (pi/2) E u / (K r)`` of the exactly rotated vector's angle; the constants add
        :attr:`angle_constant_error` and the output rounding half an angle LSB. Returns
        ``inf`` below the minimum radius.
        """
        radius = np.asarray(radius, dtype=np.float64)
        n, u, gain = self.iterations, self.internal_lsb, self.gain
        error_units = self.propagated_error * u
        valid = radius >= self.angle_min_radius()
        safe = np.where(valid, radius, 1.0)
        bound = (math.atan(2.0 ** -(n - 1)) + 2 * n * u / (gain * safe - error_units)
                 + (math.pi / 2) * error_units / (gain * safe)
                 + self.angle_constant_error + 0.5 * self.angle_format.resolution)
        return np.where(valid, bound, np.inf)

    # -- helpers -----------------------------------------------------------------------------

    def directions_to_angle(self, directions) -> np.ndarray:
        """The rotation (radians, float64) that packed directions encode.

        ``pi * prerotate + sum_i (+atan(2**-i) if counterclockwise[i] else -atan(2**-i))``.
        """
        directions = _check_directions(self, directions)
        total = np.where(directions & 1, math.pi, 0.0)
        for i in range(self.iterations):
            bit = (directions >> (i + 1)) & 1
            total = total + np.where(bit == 1, 1.0, -1.0) * math.atan(2.0**-i)
        return total


class VectoringResult(NamedTuple):
    """Result of :func:`vectoring` (arrays of the inputs' shape).

    Attributes
    ----------
    magnitude : numpy.ndarray of int64
        ``hypot(x, y)`` (times the gain if not compensated) in the input format.
    directions : numpy.ndarray of int64
        Packed directions: bit 0 pre-rotation, bit ``i+1`` counterclockwise at iteration ``i``.
    angle : numpy.ndarray of int64
        ``atan2(y, x)`` in :attr:`CordicConfig.angle_format`, within ``[-pi, pi]``.
    saturated : numpy.ndarray of bool
        The magnitude was clipped to the format's range.
    """

    magnitude: np.ndarray
    directions: np.ndarray
    angle: np.ndarray
    saturated: np.ndarray


class RotationResult(NamedTuple):
    """Result of :func:`rotation`: rotated ``x, y`` in the input format and the clip flag."""

    x: np.ndarray
    y: np.ndarray
    saturated: np.ndarray


def _check_directions(config: CordicConfig, directions) -> np.ndarray:
    directions = np.asarray(directions)
    if directions.dtype.kind not in "iu":
        raise TypeError(f"directions must be integers, not {directions.dtype}")
    directions = directions.astype(np.int64)
    limit = 1 << config.directions_width
    if directions.size and (directions.min() < 0 or directions.max() >= limit):
        raise ValueError(f"directions must be in [0, 2**{config.directions_width})")
    return directions


def _prepare(config: CordicConfig, x, y, prerotate):
    """Pre-rotate and widen to the internal format (step 1)."""
    x = np.where(prerotate, -x, x) << config.guard_bits
    y = np.where(prerotate, -y, y) << config.guard_bits
    return x, y


def _micro_rotate(config: CordicConfig, x, y, i, counterclockwise):
    """One micro-rotation (step 2); checks the range analysis."""
    x_shifted = x >> i
    y_shifted = y >> i
    x_next = np.where(counterclockwise, x - y_shifted, x + y_shifted)
    y_next = np.where(counterclockwise, y + x_shifted, y - x_shifted)
    limit = 1 << (config.internal_width - 1)
    if x_next.size and max(np.abs(x_next).max(), np.abs(y_next).max()) >= limit:
        raise AssertionError("CORDIC internal overflow: the range analysis is wrong")
    return x_next, y_next


def _finish(config: CordicConfig, value):
    """Gain compensation and output rounding (steps 3, 4) of one internal coordinate."""
    if config.compensate_gain:
        if config.product_width > 62:
            value = value.astype(object)
        value = value * config.gain_constant
    rounded = round_shift(value, config.output_shift, OUTPUT_ROUNDING)
    return saturate(rounded, config.fmt)


def _check_inputs(config: CordicConfig, x, y):
    x = config.fmt.check_ints(x, "x")
    y = config.fmt.check_ints(y, "y")
    x, y = np.broadcast_arrays(x, y)
    return x.astype(np.int64), y.astype(np.int64)


class MicroRotationResult(NamedTuple):
    """Internal state after the pre-rotation and the ``n`` micro-rotations (steps 1-2).

    Attributes
    ----------
    x, y : numpy.ndarray of int64
        The rotated vector in the internal format ``Q<I+2>.<F+G>``, still carrying the gain.
    z : numpy.ndarray of int64
        Sum of the signed angle constants (``Q3.<Fz>``); zeros in rotation mode.
    directions : numpy.ndarray of int64
        Packed directions used (found, in vectoring mode).
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    directions: np.ndarray


def micro_rotations(config: CordicConfig, x, y, directions=None) -> MicroRotationResult:
    """Steps 1-2 on stored integers: vectoring steering if ``directions`` is None, else replay.

    Useful to chain rotations at internal precision, and to find inputs that hit rounding
    ties. :func:`vectoring` and :func:`rotation` finish from here.
    """
    x, y = _check_inputs(config, x, y)
    steer = directions is None
    if steer:
        directions = (x < 0).astype(np.int64)
    else:
        directions = _check_directions(config, directions)
        x, y, directions = np.broadcast_arrays(x, y, directions)
    x, y = _prepare(config, x, y, (directions & 1) == 1)
    z = np.zeros(x.shape, dtype=np.int64)
    for i in range(config.iterations):
        if steer:
            counterclockwise = y < 0
            directions = directions | (counterclockwise.astype(np.int64) << (i + 1))
            z = z + np.where(counterclockwise, 1, -1) * config.angle_constants[i]
        else:
            counterclockwise = ((directions >> (i + 1)) & 1) == 1
        x, y = _micro_rotate(config, x, y, i, counterclockwise)
    return MicroRotationResult(x, y, z, directions)


def vectoring(config: CordicConfig, x, y) -> VectoringResult:
    """Vectoring mode: magnitude, directions and angle of ``(x, y)``, bit-exact.

    Parameters
    ----------
    config : CordicConfig
    x, y : array_like of int
        Stored integers in ``config.fmt`` (broadcast together).

    Returns
    -------
    VectoringResult
    """
    state = micro_rotations(config, x, y)
    magnitude, saturated = _finish(config, state.x)
    z = state.z
    pi_term = np.where(z >= 0, config.pi_constant, -config.pi_constant)
    angle_internal = np.where((state.directions & 1) == 1, pi_term, 0) - z
    angle, angle_clipped = saturate(
        round_shift(angle_internal, config.angle_guard_bits, OUTPUT_ROUNDING),
        config.angle_format,
    )
    assert not angle_clipped.any(), "the angle is within [-pi, pi] by construction"
    return VectoringResult(magnitude, state.directions, angle, saturated)


def rotation(config: CordicConfig, x, y, directions) -> RotationResult:
    """Rotation mode: rotate ``(x, y)`` by the rotation packed ``directions`` encode, bit-exact.

    Parameters
    ----------
    config : CordicConfig
    x, y : array_like of int
        Stored integers in ``config.fmt``.
    directions : array_like of int
        Packed directions (see :class:`VectoringResult`), broadcast with ``x`` and ``y``.

    Returns
    -------
    RotationResult
        ``saturated`` is set where either coordinate was clipped.
    """
    state = micro_rotations(config, x, y, directions)
    x_out, x_saturated = _finish(config, state.x)
    y_out, y_saturated = _finish(config, state.y)
    return RotationResult(x_out, y_out, x_saturated | y_saturated)


def directions_for_angle(config: CordicConfig, angle) -> np.ndarray:
    """Packed directions that rotate by ``angle`` radians (float64, any real value).

    The classic rotation-mode steering done on the host: pre-rotate by ``pi`` if the angle
    (wrapped to ``(-pi, pi]``) is beyond ``+-pi/2``, then pick each micro-rotation's sign to
    drive the remaining angle to zero. The encoded rotation is then within
    ``atan(2**-(n-1))`` of ``angle`` (modulo ``2 pi``).
    """
    angle = np.asarray(angle, dtype=np.float64)
    if not np.all(np.isfinite(angle)):
        raise ValueError("angle must be finite")
    remaining = np.remainder(angle + math.pi, 2 * math.pi) - math.pi
    prerotate = np.abs(remaining) > math.pi / 2
    remaining = np.where(prerotate, remaining - np.copysign(math.pi, remaining), remaining)
    directions = prerotate.astype(np.int64)
    for i in range(config.iterations):
        counterclockwise = remaining >= 0
        remaining = remaining - np.where(counterclockwise, 1.0, -1.0) * math.atan(2.0**-i)
        directions = directions | (counterclockwise.astype(np.int64) << (i + 1))
    return directions
