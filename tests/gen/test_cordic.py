"""Tests of the CORDIC unit (:mod:`tiersolve.gen.cordic`) and its model
(:mod:`tiersolve.gen.cordic_model`).

Two kinds of check:

* bit-exact: the simulated gateware (pipelined and iterative, both modes, with and without gain
  compensation) returns the model's integers, with random backpressure on both streams;
* accuracy: the model against float64 ``hypot``, ``atan2`` and the rotation the directions
  encode, within the bounds derived in :class:`~tiersolve.gen.cordic_model.CordicConfig`
  (``u = 2**-(F+G)``, ``E`` = :attr:`~CordicConfig.propagated_error`, ``K`` the gain, ``n``
  iterations, ``c`` the gain constant, ``s = c`` compensated or 1)::

      magnitude   LSB/2 + (K r + E u) |c - 1/K| + s (E u + (K r + E u) 2**-(2n-1) + 2 n u)
      angle       atan(2**-(n-1)) + 2 n u / (K r - E u) + (pi/2) E u / (K r)
                  + (constant rounding) + angle LSB/2,          for r >= (E + 6 n) u / K
      rotation    LSB/2 + (K r + E u) |c - 1/K| + s E u         (each coordinate)
      replay y'   LSB/2 + s ((K r + E u) 2**-(n-1) + n u)

  The only slack added is for float64 evaluation of the reference: a relative 1e-9 of the
  bound. Many values go through the model, fewer through the (slow) simulator; since the
  simulation is bit-exact with the model, the model's accuracy is the gateware's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiersolve.gen import cordic_model
from tiersolve.gen.cordic import Cordic
from tiersolve.gen.cordic_model import (
    CordicConfig,
    canonical_signed_digits,
    directions_for_angle,
    micro_rotations,
    rotation,
    vectoring,
)
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.sim import run_simulation

FORMATS = [FixedFormat(6, 12), FixedFormat(2, 16), FixedFormat(8, 8)]
FLOAT_SLACK = 1e-9


def _within(error, bound):
    return np.all(error <= bound * (1 + FLOAT_SLACK))


def _wrap(angle):
    """Angle difference folded into [-pi, pi)."""
    return np.remainder(angle + np.pi, 2 * np.pi) - np.pi


def edge_values(fmt: FixedFormat):
    """Adversarial ``(x, y)`` pairs: zero, axes, signs, extremes, near saturation."""
    lo, hi = fmt.min_int, fmt.max_int
    diagonal = int(hi / math.sqrt(2))
    pairs = [
        (0, 0), (1, 0), (0, 1), (-1, 0), (0, -1), (-1, -1), (1, -1), (-1, 1),
        (hi, 0), (lo, 0), (0, hi), (0, lo), (lo, lo), (hi, hi), (lo, hi), (hi, lo),
        (lo, 1), (lo, -1), (1, lo), (-1, lo), (lo, 0 + 1), (-hi, 0),
        (diagonal, diagonal), (diagonal + 1, diagonal + 1), (-diagonal, diagonal),
        (hi, 1), (hi, -1), (hi - 1, hi // 64), (-hi, -hi // 64),
    ]
    x, y = np.array(pairs, dtype=np.int64).T
    return x, y


def random_values(fmt: FixedFormat, count: int, rng):
    """Uniform full-scale values, and as many scaled down by random powers of two."""
    x = rng.integers(fmt.min_int, fmt.max_int + 1, count)
    y = rng.integers(fmt.min_int, fmt.max_int + 1, count)
    half = count // 2
    x[:half] >>= rng.integers(0, fmt.width, half)
    y[:half] >>= rng.integers(0, fmt.width, half)
    return x, y


def test_inputs(fmt, count, seed):
    rng = np.random.default_rng(seed)
    ex, ey = edge_values(fmt)
    rx, ry = random_values(fmt, count, rng)
    return np.concatenate([ex, rx]), np.concatenate([ey, ry])


test_inputs.__test__ = False  # a helper, not a test


# -- parameters ------------------------------------------------------------------------------


def test_config_defaults():
    config = CordicConfig(FixedFormat(6, 12))
    assert config.iterations == 18
    assert config.guard_bits == math.floor(math.log2(18)) + 3
    assert config.angle_format == FixedFormat(3, 15)
    assert config.internal_width == 18 + 2 + config.guard_bits
    assert abs(config.gain - 1.646760258) < 1e-9
    assert sum(sign << shift for shift, sign in config.gain_digits) == config.gain_constant


@pytest.mark.parametrize("kwargs, error", [
    (dict(fmt=6.12), TypeError),  # a string such as "Q6.12" is parsed, as the other units do
    (dict(fmt=FixedFormat(2, 1)), ValueError),
    (dict(fmt=FixedFormat(6, 12), iterations=3), ValueError),
    (dict(fmt=FixedFormat(6, 12), iterations=63), ValueError),
    (dict(fmt=FixedFormat(6, 12), iterations=12.0), TypeError),
    (dict(fmt=FixedFormat(6, 12), guard_bits=-1), ValueError),
    (dict(fmt=FixedFormat(6, 12), guard_bits=17), ValueError),
    (dict(fmt=FixedFormat(6, 12), compensate_gain=1), TypeError),
])
def test_config_rejects_bad_parameters(kwargs, error):
    with pytest.raises(error):
        CordicConfig(**kwargs)


def test_cordic_rejects_bad_parameters():
    fmt = FixedFormat(6, 12)
    with pytest.raises(ValueError, match="mode"):
        Cordic(fmt, mode="hyperbolic")
    with pytest.raises(TypeError, match="pipelined"):
        Cordic(fmt, pipelined="yes")
    with pytest.raises(TypeError, match="fmt"):
        Cordic(6.12)
    with pytest.raises(ValueError, match="iterations"):
        Cordic(fmt, iterations=100)


def test_canonical_signed_digits():
    rng = np.random.default_rng(0)
    for value in [1, 2, 3, 7, 0b1011011, *map(int, rng.integers(1, 2**40, 200))]:
        digits = canonical_signed_digits(value)
        assert sum(sign << shift for shift, sign in digits) == value
        shifts = [shift for shift, _ in digits]
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:], strict=False))
    with pytest.raises(ValueError):
        canonical_signed_digits(0)


def test_bounds_are_below_one_lsb_at_full_scale():
    """The defaults resolve magnitude, rotation and angle to better than one output LSB."""
    for fmt in FORMATS:
        config = CordicConfig(fmt)
        radius = fmt.max
        assert config.magnitude_error_bound(radius) < fmt.resolution
        assert config.rotation_error_bound(radius) < fmt.resolution
        assert config.angle_error_bound(radius) < config.angle_format.resolution


# -- model accuracy --------------------------------------------------------------------------


@pytest.mark.parametrize("compensate_gain", [True, False])
@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_model_vectoring_accuracy(fmt, compensate_gain):
    """Magnitude and angle against float64 hypot/atan2 within the derived bounds."""
    config = CordicConfig(fmt, compensate_gain=compensate_gain)
    x, y = test_inputs(fmt, 60000, seed=1)
    result = vectoring(config, x, y)
    xf, yf = fmt.dequantise(x), fmt.dequantise(y)
    radius = np.hypot(xf, yf)
    scale = 1.0 if compensate_gain else config.gain

    magnitude = fmt.dequantise(result.magnitude)
    assert np.all(result.magnitude >= 0)
    bound = config.magnitude_error_bound(radius)
    fits = ~result.saturated
    assert _within(np.abs(magnitude - scale * radius)[fits], bound[fits])
    # a clipped magnitude really was out of range, and was clipped to the maximum
    assert np.all(scale * radius[result.saturated] + bound[result.saturated] > fmt.max)
    assert np.all(result.magnitude[result.saturated] == fmt.max_int)

    angle = config.angle_format.dequantise(result.angle)
    assert np.all(np.abs(result.angle) <= round(math.pi * 2**config.angle_format.frac_bits))
    angle_error = np.abs(_wrap(angle - np.arctan2(yf, xf)))
    defined = radius >= config.angle_min_radius()
    assert defined.mean() > 0.9
    assert _within(angle_error[defined], config.angle_error_bound(radius[defined]))


@pytest.mark.parametrize("compensate_gain", [True, False])
@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_model_rotation_accuracy(fmt, compensate_gain):
    """Rotation by random directions against float64 rotation by the angle they encode."""
    config = CordicConfig(fmt, compensate_gain=compensate_gain)
    x, y = test_inputs(fmt, 60000, seed=2)
    rng = np.random.default_rng(3)
    directions = rng.integers(0, 1 << config.directions_width, x.size)
    result = rotation(config, x, y, directions)
    theta = config.directions_to_angle(directions)
    xf, yf = fmt.dequantise(x), fmt.dequantise(y)
    scale = 1.0 if compensate_gain else config.gain
    expected_x = scale * (np.cos(theta) * xf - np.sin(theta) * yf)
    expected_y = scale * (np.sin(theta) * xf + np.cos(theta) * yf)
    bound = config.rotation_error_bound(np.hypot(xf, yf))
    fits = ~result.saturated
    assert fits.mean() > 0.5
    assert _within(np.abs(fmt.dequantise(result.x) - expected_x)[fits], bound[fits])
    assert _within(np.abs(fmt.dequantise(result.y) - expected_y)[fits], bound[fits])


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_model_replay_zeroes_y(fmt):
    """Rotating (x, y) by the directions vectoring (x, y) found gives (magnitude, ~0)."""
    config = CordicConfig(fmt)
    x, y = test_inputs(fmt, 60000, seed=4)
    found = vectoring(config, x, y)
    replay = rotation(config, x, y, found.directions)
    assert np.array_equal(replay.x, found.magnitude)  # same arithmetic, bit for bit
    radius = np.hypot(fmt.dequantise(x), fmt.dequantise(y))
    assert _within(np.abs(fmt.dequantise(replay.y)), config.residual_bound(radius))


def test_model_givens_pair():
    """The QR use: directions from the leading pair rotate another pair like float64 Givens."""
    fmt = FixedFormat(6, 12)
    config = CordicConfig(fmt)
    rng = np.random.default_rng(5)
    lead_x, lead_y = rng.integers(-2**15, 2**15, (2, 5000))
    other_x, other_y = rng.integers(-2**15, 2**15, (2, 5000))
    found = vectoring(config, lead_x, lead_y)
    rotated = rotation(config, other_x, other_y, found.directions)
    theta = -np.arctan2(fmt.dequantise(lead_y), fmt.dequantise(lead_x))
    ox, oy = fmt.dequantise(other_x), fmt.dequantise(other_y)
    radius = np.hypot(ox, oy)
    # the encoded rotation is within the angle bound of the exact Givens angle
    angle_bound = config.angle_error_bound(np.hypot(fmt.dequantise(lead_x),
                                                    fmt.dequantise(lead_y)))
    bound = config.rotation_error_bound(radius) + radius * angle_bound
    assert _within(np.abs(fmt.dequantise(rotated.x) - (np.cos(theta) * ox - np.sin(theta) * oy)),
                   bound)
    assert _within(np.abs(fmt.dequantise(rotated.y) - (np.sin(theta) * ox + np.cos(theta) * oy)),
                   bound)


def test_directions_for_angle():
    """Host-side steering: the encoded rotation is within atan(2**-(n-1)) of the angle."""
    config = CordicConfig(FixedFormat(2, 16))
    angles = np.random.default_rng(6).uniform(-10, 10, 20000)
    angles = np.concatenate([angles, [0.0, np.pi / 2, -np.pi / 2, np.pi, -np.pi, 3.0]])
    encoded = config.directions_to_angle(directions_for_angle(config, angles))
    error = np.abs(_wrap(encoded - angles))
    assert _within(error, math.atan(2.0 ** -(config.iterations - 1)))


def test_model_rejects_bad_inputs():
    config = CordicConfig(FixedFormat(8, 8))
    with pytest.raises(ValueError):
        vectoring(config, [2**15], [0])
    with pytest.raises(TypeError):
        vectoring(config, [0.5], [0])
    with pytest.raises(ValueError):
        rotation(config, [0], [0], [1 << config.directions_width])


def test_model_wide_format_uses_exact_products():
    """Q16.16: the compensated product needs more than 62 bits; still within the bound."""
    fmt = FixedFormat(16, 16)
    config = CordicConfig(fmt)
    assert config.product_width > 62
    x, y = test_inputs(fmt, 5000, seed=7)
    result = vectoring(config, x, y)
    radius = np.hypot(fmt.dequantise(x), fmt.dequantise(y))
    fits = ~result.saturated
    error = np.abs(fmt.dequantise(result.magnitude) - radius)
    assert _within(error[fits], config.magnitude_error_bound(radius)[fits])


# -- simulation ------------------------------------------------------------------------------


def _payload(dut, x, y, directions=None):
    payload = {"x": int(x), "y": int(y)}
    if directions is not None:
        directions = int(directions)
        payload["directions"] = {"prerotate": directions & 1,
                                 "counterclockwise": directions >> 1}
    return payload


def _unpack(dut, payload):
    if dut.mode == "vectoring":
        return (int(payload.magnitude), int(payload.directions.as_value().value),
                int(payload.angle), int(payload.saturated))
    return int(payload.x), int(payload.y), int(payload.saturated)


def simulate(dut, x, y, directions=None, *, valid_probability=1.0, ready_probability=1.0,
             seed=0):
    """Drive ``dut`` cycle by cycle; return the outputs and the cycles of every transfer.

    The producer holds ``valid`` (and the payload) until its transfer; both the producer's
    offers and the consumer's ``ready`` are random with the given probabilities. Checks that
    ``o.payload`` is stable while ``o.valid`` waits for ``o.ready``.
    """
    rng = np.random.default_rng(seed)
    count = len(x)
    outputs, input_cycles, output_cycles = [], [], []

    async def bench(ctx):
        sent, cycle, offering, waiting = 0, 0, False, None
        while len(outputs) < count:
            if not offering and sent < count and rng.random() < valid_probability:
                offering = True
                d = None if directions is None else directions[sent]
                ctx.set(dut.i.payload, _payload(dut, x[sent], y[sent], d))
            ctx.set(dut.i.valid, offering)
            ready = bool(rng.random() < ready_probability)
            ctx.set(dut.o.ready, ready)
            if ctx.get(dut.o.valid):
                current = _unpack(dut, ctx.get(dut.o.payload))
                assert waiting is None or current == waiting, "o.payload changed while stalled"
                if ready:
                    outputs.append(current)
                    output_cycles.append(cycle)
                    waiting = None
                else:
                    waiting = current
            if offering and ctx.get(dut.i.ready):
                input_cycles.append(cycle)
                sent += 1
                offering = False
            await ctx.tick()
            cycle += 1
            assert cycle < 100 * (count + 1) * dut.latency, "the unit hung"

    run_simulation(dut, bench)
    return outputs, input_cycles, output_cycles


def model_outputs(dut, x, y, directions=None):
    config = dut.config
    if dut.mode == "vectoring":
        result = vectoring(config, x, y)
        return list(zip(result.magnitude.tolist(), result.directions.tolist(),
                        result.angle.tolist(), result.saturated.astype(int).tolist(),
                        strict=True))
    result = rotation(config, x, y, directions)
    return list(zip(result.x.tolist(), result.y.tolist(), result.saturated.astype(int).tolist(),
                    strict=True))


def _sim_inputs(dut, count, seed):
    fmt = dut.fmt
    x, y = test_inputs(fmt, count, seed)
    directions = None
    if dut.mode == "rotation":
        rng = np.random.default_rng(seed + 100)
        # half random directions, half those vectoring found (the replay of a Givens pair)
        directions = rng.integers(0, 1 << dut.config.directions_width, x.size)
        found = vectoring(dut.config, x, y).directions
        directions[::2] = found[::2]
    return x, y, directions


SIM_CASES = [
    # fmt, mode, pipelined, compensate_gain, random inputs
    (FixedFormat(6, 12), "vectoring", True, True, 40),
    (FixedFormat(6, 12), "rotation", True, True, 40),
    (FixedFormat(6, 12), "vectoring", False, True, 6),
    (FixedFormat(6, 12), "rotation", False, True, 6),
    (FixedFormat(2, 16), "vectoring", True, False, 30),
    (FixedFormat(2, 16), "rotation", False, False, 4),
    (FixedFormat(8, 8), "vectoring", False, False, 4),
    (FixedFormat(8, 8), "rotation", True, True, 30),
]


@pytest.mark.parametrize("fmt, mode, pipelined, compensate_gain, count", SIM_CASES,
                         ids=lambda value: str(value))
def test_simulation_matches_model(fmt, mode, pipelined, compensate_gain, count):
    """Bit-exact against the model on edge and random inputs, with random backpressure."""
    dut = Cordic(fmt, mode=mode, pipelined=pipelined, compensate_gain=compensate_gain)
    x, y, directions = _sim_inputs(dut, count, seed=10)
    outputs, _, _ = simulate(dut, x, y, directions, valid_probability=0.7,
                             ready_probability=0.6, seed=11)
    assert outputs == model_outputs(dut, x, y, directions)


def _tie_inputs(config, mode, count=6, seed=20):
    """Inputs whose final rounding (output or angle) is an exact tie, found with the model."""
    fmt = config.fmt
    x, y = random_values(fmt, 20000, np.random.default_rng(seed))
    directions = None
    if mode == "rotation":
        directions = np.random.default_rng(seed + 1).integers(0, 1 << config.directions_width,
                                                               x.size)
    state = micro_rotations(config, x, y, directions)
    half = 1 << (config.output_shift - 1)
    mask = (1 << config.output_shift) - 1
    # ties where rounding half up would give an odd result, so only ties-to-even passes
    ties = ((state.x & mask) == half) & (((state.x >> config.output_shift) & 1) == 0)
    if mode == "rotation":
        ties |= ((state.y & mask) == half) & (((state.y >> config.output_shift) & 1) == 0)
    chosen = list(np.flatnonzero(ties)[:count])
    if mode == "vectoring":
        pi_term = np.where(state.z >= 0, config.pi_constant, -config.pi_constant)
        angle = np.where(state.directions & 1, pi_term, 0) - state.z
        shift = config.angle_guard_bits
        angle_ties = (((angle & ((1 << shift) - 1)) == 1 << (shift - 1))
                      & (((angle >> shift) & 1) == 0))
        chosen += list(np.flatnonzero(angle_ties)[:count])
    assert len(chosen) >= (2 if mode == "vectoring" else 1) * count
    chosen = np.array(chosen)
    return x[chosen], y[chosen], None if directions is None else directions[chosen]


@pytest.mark.parametrize("mode", ["vectoring", "rotation"])
@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "iterative"])
def test_simulation_rounding_ties(mode, pipelined):
    """Exact ties in the output and angle rounding are rounded to even, as in the model."""
    dut = Cordic(FixedFormat(8, 8), iterations=12, mode=mode, pipelined=pipelined,
                 compensate_gain=False)
    x, y, directions = _tie_inputs(dut.config, mode)
    outputs, _, _ = simulate(dut, x, y, directions)
    assert outputs == model_outputs(dut, x, y, directions)


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "iterative"])
@pytest.mark.parametrize("compensate_gain", [True, False], ids=["compensated", "raw"])
def test_latency_and_throughput(pipelined, compensate_gain):
    """With no backpressure: first result after ``latency`` cycles, inputs taken every
    ``initiation_interval`` cycles, results as often."""
    fmt = FixedFormat(4, 4)
    dut = Cordic(fmt, iterations=6, mode="vectoring", pipelined=pipelined,
                 compensate_gain=compensate_gain)
    assert dut.latency == 6 + (4 if compensate_gain else 3)
    assert dut.latency == Cordic.latency_of(dut.config)
    assert dut.initiation_interval == (1 if pipelined else dut.latency - 1)
    x, y = random_values(fmt, 5, np.random.default_rng(12))
    outputs, input_cycles, output_cycles = simulate(dut, x, y)
    assert outputs == model_outputs(dut, x, y)
    assert np.all(np.diff(input_cycles) == dut.initiation_interval)
    assert np.all(np.array(output_cycles) - np.array(input_cycles) == dut.latency)


@pytest.mark.slow
@pytest.mark.parametrize("compensate_gain", [True, False], ids=["compensated", "raw"])
@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "iterative"])
@pytest.mark.parametrize("mode", ["vectoring", "rotation"])
@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_simulation_matches_model_long(fmt, mode, pipelined, compensate_gain):
    """Every combination, a few hundred inputs each, random backpressure."""
    dut = Cordic(fmt, mode=mode, pipelined=pipelined, compensate_gain=compensate_gain)
    x, y, directions = _sim_inputs(dut, 300 if pipelined else 60, seed=30)
    outputs, _, _ = simulate(dut, x, y, directions, valid_probability=0.8,
                             ready_probability=0.7, seed=31)
    assert outputs == model_outputs(dut, x, y, directions)


def test_simulation_replay_chain():
    """Vectoring unit -> rotation unit (both simulated): the replay returns (magnitude, ~0)."""
    fmt = FixedFormat(8, 8)
    vector_unit = Cordic(fmt, iterations=12, mode="vectoring")
    rotate_unit = Cordic(fmt, iterations=12, mode="rotation", pipelined=False)
    x, y = test_inputs(fmt, 6, seed=13)
    found, _, _ = simulate(vector_unit, x, y, ready_probability=0.5, seed=14)
    directions = np.array([d for _, d, _, _ in found])
    replay, _, _ = simulate(rotate_unit, x, y, directions, valid_probability=0.5, seed=15)
    config = vector_unit.config
    radius = np.hypot(fmt.dequantise(x), fmt.dequantise(y))
    for (magnitude, _, _, _), (x_out, y_out, _), r in zip(found, replay, radius, strict=True):
        assert x_out == magnitude
        assert abs(y_out) * fmt.resolution <= config.residual_bound(r) * (1 + FLOAT_SLACK)


def test_registry_builds_and_converts():
    from amaranth.back import verilog
    from tiersolve.gen.registry import get_unit
    from tiersolve.host.cli import build_params

    spec = get_unit("cordic")
    params = build_params(spec, {"mode": "rotation", "pipelined": "false", "iterations": "8"})
    assert params == {"iterations": 8, "mode": "rotation", "pipelined": False,
                      "compensate_gain": True, "guard_bits": None}
    dut = spec.build(FixedFormat(4, 8), **params)
    assert isinstance(dut, Cordic) and not dut.pipelined
    text = verilog.convert(dut, name="cordic_test")
    assert "module cordic_test" in text
    with pytest.raises(ValueError):
        build_params(spec, {"pipelined": "maybe"})


def test_model_module_does_not_import_amaranth():
    import subprocess
    import sys

    code = ("import sys, tiersolve.gen.cordic_model; "
            "sys.exit(1 if any(m.startswith('amaranth') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert cordic_model.MAX_ITERATIONS == 62
