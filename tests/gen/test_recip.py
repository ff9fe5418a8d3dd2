# amaranth: UnusedElaboratable=no
"""Tests of the reciprocal / reciprocal-square-root unit and its bit-exact models.

The models are checked against the definition with exact integers (``y*y*x <= N < (y+1)**2*x``
and ``y*|x| <= M < (y+1)*|x|``) and against float64 with the bound the models document:
``0 <= f(x) - y*2**-fo < 2**-fo`` (magnitudes for the reciprocal) wherever the result is valid
and not saturated. The float64 side is allowed only its own rounding, 4 units of 2**-53
relative to ``|f(x)|`` (one rounding each for the scaling, the square root and the division).
The gateware is checked bit for bit against the models, with random backpressure.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.recip import ReciprocalUnit
from tiersolve.gen.recip_model import reciprocal_model, rsqrt_model
from tiersolve.gen.sim import run_simulation

Q = FixedFormat.parse

MODELS = {"rsqrt": rsqrt_model, "recip": reciprocal_model}

#: (fmt_in, fmt_out) pairs the gateware is simulated with.
SIM_FORMATS = [
    (Q("Q6.12"), Q("Q6.12")),
    (Q("Q2.16"), Q("Q8.10")),
    (Q("Q16.16"), Q("Q16.16")),
]

#: Format pairs the models are checked on (wide, narrow, lopsided).
MODEL_FORMATS = SIM_FORMATS + [
    (Q("Q8.10"), Q("Q2.16")),
    (Q("Q2.30"), Q("Q2.30")),
    (Q("Q32.0"), Q("Q1.31")),
    (Q("Q1.31"), Q("Q32.0")),
    (Q("Q4.4"), Q("Q3.2")),
]

FLOAT_ROUNDING = 4 * 2.0**-53


# -- inputs ----------------------------------------------------------------------------------


def log_uniform_inputs(fmt: FixedFormat, count: int, rng: np.random.Generator,
                       negative_fraction: float) -> np.ndarray:
    """Stored integers whose magnitudes are log-uniform over 1 .. 2**(width-1)."""
    exponent = rng.uniform(0, fmt.width - 1, size=count)
    magnitude = np.floor(np.exp2(exponent)).astype(np.int64)
    magnitude = np.clip(magnitude, 1, fmt.max_int)
    sign = np.where(rng.random(count) < negative_fraction, -1, 1)
    return magnitude * sign


def edge_inputs(fmt_in: FixedFormat, fmt_out: FixedFormat, function: str) -> list[int]:
    """1 LSB, the extremes, 0, -1, powers of two, exact squares, and the saturation limits."""
    fi, fo, top = fmt_in.frac_bits, fmt_out.frac_bits, fmt_out.width - 1
    values = {1, 2, 3, fmt_in.max_int, fmt_in.max_int - 1, fmt_in.min_int, fmt_in.min_int + 1,
              0, -1, -2}
    values |= {1 << k for k in range(fmt_in.width - 1)}
    values |= {-(1 << k) for k in range(fmt_in.width - 1)}
    root_limit = 1 << ((fmt_in.width - 1) // 2)  # exact squares up to max_int
    values |= {k * k for k in np.geomspace(1, root_limit - 1, 24).astype(int).tolist()}
    if function == "rsqrt":
        threshold = (1 << (2 * fo + fi)) >> (2 * top)  # largest x that saturates
    else:
        threshold = (1 << (fo + fi)) >> top
        negative_threshold = (1 << (fo + fi)) // ((1 << top) + 1)
        values |= {-negative_threshold, -negative_threshold - 1, -threshold, -threshold - 1}
    values |= {threshold - 1, threshold, threshold + 1, -threshold}
    return sorted(v for v in values if fmt_in.min_int <= v <= fmt_in.max_int)


def mixed_inputs(fmt_in, fmt_out, function, count, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    negative_fraction = 0.1 if function == "rsqrt" else 0.5
    random_part = log_uniform_inputs(fmt_in, count, rng, negative_fraction)
    return np.concatenate([np.array(edge_inputs(fmt_in, fmt_out, function), dtype=np.int64),
                           random_part])


# -- model: definition ----------------------------------------------------------------------


@pytest.mark.parametrize(("fmt_in", "fmt_out"), MODEL_FORMATS, ids=str)
def test_rsqrt_model_is_exact_truncation(fmt_in, fmt_out):
    """Largest y with y*y*x <= 2**(2fo+fi); clipped and flagged when above max_int."""
    x = mixed_inputs(fmt_in, fmt_out, "rsqrt", 3000, seed=1)
    y, invalid, saturated = rsqrt_model(x, fmt_in, fmt_out)
    assert y.dtype == np.int64 and invalid.dtype == bool and saturated.dtype == bool
    dividend = 1 << (2 * fmt_out.frac_bits + fmt_in.frac_bits)
    for value, result, bad, clipped in zip(x.tolist(), y.tolist(), invalid, saturated,
                                           strict=True):
        if value <= 0:
            assert bad and not clipped and result == fmt_out.max_int
            continue
        assert not bad
        if clipped:
            assert result == fmt_out.max_int
            assert (result + 1) ** 2 * value <= dividend  # the true result is larger
        else:
            assert result * result * value <= dividend < (result + 1) ** 2 * value


@pytest.mark.parametrize(("fmt_in", "fmt_out"), MODEL_FORMATS, ids=str)
def test_reciprocal_model_is_exact_truncation(fmt_in, fmt_out):
    """sign(x) * largest q with q*|x| <= 2**(fo+fi); clipped and flagged when out of range."""
    x = mixed_inputs(fmt_in, fmt_out, "recip", 3000, seed=2)
    y, invalid, saturated = reciprocal_model(x, fmt_in, fmt_out)
    dividend = 1 << (fmt_out.frac_bits + fmt_in.frac_bits)
    for value, result, bad, clipped in zip(x.tolist(), y.tolist(), invalid, saturated,
                                           strict=True):
        if value == 0:
            assert bad and not clipped and result == fmt_out.max_int
            continue
        assert not bad
        magnitude = abs(result)
        assert (result > 0) == (value > 0) or result == 0
        if clipped:
            assert result == (fmt_out.max_int if value > 0 else fmt_out.min_int)
            assert (magnitude + 1) * abs(value) <= dividend
        else:
            assert magnitude * abs(value) <= dividend < (magnitude + 1) * abs(value)


def test_models_exhaustive_small_formats():
    """Every input of a 6-bit format, against the definition computed by search."""
    fmt_in, fmt_out = Q("Q3.3"), Q("Q4.2")
    x = np.arange(fmt_in.min_int, fmt_in.max_int + 1)
    y, invalid, saturated = rsqrt_model(x, fmt_in, fmt_out)
    for value, result, clipped in zip(x[x > 0], y[x > 0], saturated[x > 0], strict=True):
        best = max(k for k in range(1 << 12) if k * k * value <= 1 << (2 * 2 + 3))
        assert result == min(best, fmt_out.max_int) and clipped == (best > fmt_out.max_int)
    assert invalid.tolist() == (x <= 0).tolist()
    y, invalid, saturated = reciprocal_model(x, fmt_in, fmt_out)
    for value, result in zip(x[x != 0], y[x != 0], strict=True):
        best = max(k for k in range(1 << 12) if k * abs(value) <= 1 << (2 + 3))
        best = best if value > 0 else -best
        assert result == min(max(best, fmt_out.min_int), fmt_out.max_int)
    assert invalid.tolist() == (x == 0).tolist()


def test_model_special_values():
    q = Q("Q6.12")
    one = 1 << 12
    y, invalid, saturated = rsqrt_model([one, 4 * one, one // 4, 0, -one, 1], q, q)
    assert y.tolist() == [one, one // 2, 2 * one, q.max_int, q.max_int, q.max_int]
    assert invalid.tolist() == [False, False, False, True, True, False]
    assert saturated.tolist() == [False, False, False, False, False, True]
    y, invalid, saturated = reciprocal_model([one, -one, 2 * one, -(one // 4), 0, 1, -1], q, q)
    assert y.tolist() == [one, -one, one // 2, -4 * one, q.max_int, q.max_int, q.min_int]
    assert invalid.tolist() == [False] * 4 + [True, False, False]
    assert saturated.tolist() == [False] * 4 + [False, True, True]
    # A negative result of exactly min_int is in range: -1/(x) = -32 in Q6.12.
    y, _, saturated = reciprocal_model([-(one // 32)], q, q)
    assert y.tolist() == [q.min_int] and not saturated.any()
    # Shape is kept, scalars work.
    y, invalid, saturated = rsqrt_model(np.full((2, 3), one), q, q)
    assert y.shape == invalid.shape == saturated.shape == (2, 3)
    assert rsqrt_model(one, q, q).y.shape == ()


def test_model_argument_errors():
    q = Q("Q6.12")
    with pytest.raises(ValueError, match="out of range"):
        rsqrt_model([q.max_int + 1], q, q)
    with pytest.raises(TypeError, match="integers"):
        reciprocal_model([0.5], q, q)
    with pytest.raises(TypeError, match="fmt_out"):
        reciprocal_model([1], q, "Q6.12")


# -- model: accuracy against float64 ---------------------------------------------------------


def _check_float_bound(function, x, fmt_in, fmt_out, y, invalid, saturated):
    """0 <= |f(x)| - |y| * 2**-fo < 2**-fo wherever valid and not saturated."""
    ok = ~invalid & ~saturated
    real_x = np.ldexp(x[ok].astype(np.float64), -fmt_in.frac_bits)
    if function == "rsqrt":
        exact = 1.0 / np.sqrt(real_x)
    else:
        exact = np.abs(1.0 / real_x)
    result = np.ldexp(np.abs(y[ok]).astype(np.float64), -fmt_out.frac_bits)
    error = exact - result
    tolerance = FLOAT_ROUNDING * exact
    ulp = fmt_out.resolution
    assert np.all(error >= -tolerance), error.min()
    assert np.all(error < ulp + tolerance), (error.max(), ulp)
    return int(ok.sum())


@pytest.mark.parametrize("function", ["rsqrt", "recip"])
@pytest.mark.parametrize(("fmt_in", "fmt_out"), MODEL_FORMATS, ids=str)
def test_model_accuracy_against_float64(function, fmt_in, fmt_out):
    """Error below one ULP of fmt_out, never away from zero, on 20000 values per pair."""
    x = mixed_inputs(fmt_in, fmt_out, function, 20000, seed=3)
    y, invalid, saturated = MODELS[function](x, fmt_in, fmt_out)
    checked = _check_float_bound(function, x, fmt_in, fmt_out, y, invalid, saturated)
    assert checked > 1000  # the bound was exercised, not skipped by saturation


def test_model_error_reaches_most_of_an_ulp():
    """The truncation really costs up to (not more than) one ULP: the bound is tight."""
    q = Q("Q6.12")
    x = np.arange(1 << 12, 1 << 16)
    y, _, _ = reciprocal_model(x, q, q)
    error = 1.0 / np.ldexp(x.astype(np.float64), -12) - np.ldexp(y.astype(np.float64), -12)
    assert error.max() > 0.99 * q.resolution


# -- gateware --------------------------------------------------------------------------------

def emulate_recurrence(unit: ReciprocalUnit, x: int):
    """The unit's digit recurrence in Python integers, for an input that does not saturate.

    Returns the magnitude of the result and, per step, the remainder and (rsqrt) ``P = Y*x``
    the step starts from.
    """
    digits = 2 if unit.function == "rsqrt" else 1
    dividend = 1 << ((digits * unit.fmt_out.frac_bits) + unit.fmt_in.frac_bits)
    magnitude = abs(x)
    remainder = dividend >> (digits * (unit.steps - 1))
    partial = result = 0
    trace = []
    for step in range(unit.steps):
        bit = unit.steps - 1 - step
        trace.append((remainder, partial))
        trial = 4 * partial + magnitude if digits == 2 else magnitude
        keep = remainder >= trial
        remainder -= trial if keep else 0
        partial = 2 * partial + (magnitude if keep else 0)
        result = 2 * result + keep
        if bit >= 1:
            fed = (dividend >> (digits * (bit - 1))) & ((1 << digits) - 1)
            remainder = (remainder << digits) | fed
    return result, trace


def stressing_inputs(fmt_in, fmt_out, function) -> list[int]:
    """Inputs that push the remainders to their bounds: x near its largest value, and x whose
    results are all ones in their top bits (just below saturation or a power of two)."""
    digits = 2 if function == "rsqrt" else 1
    dividend = 1 << ((digits * fmt_out.frac_bits) + fmt_in.frac_bits)
    values = set(range(max(1, fmt_in.max_int - 2000), fmt_in.max_int + 1))
    for length in range(1, fmt_out.width):
        y = (1 << length) - 1
        if digits == 2:
            x = dividend // ((y + 1) ** 2) + 1  # smallest x whose result is at most y
        else:
            x = dividend // (y + 1) + 1
        values |= {x + k for k in range(-3, 4)}
    values |= set(edge_inputs(fmt_in, fmt_out, function))
    return sorted(v for v in values if 0 < v <= fmt_in.max_int)


@pytest.mark.parametrize("function", ["rsqrt", "recip"])
@pytest.mark.parametrize(("fmt_in", "fmt_out"),
                         MODEL_FORMATS + [(Q("Q3.3"), Q("Q3.3")), (Q("Q2.5"), Q("Q5.2")),
                                          (Q("Q6.1"), Q("Q1.6")), (Q("Q8.8"), Q("Q2.14"))],
                         ids=str)
def test_recurrence_fits_its_registers(fmt_in, fmt_out, function):
    """The recurrence gives the model's result and its state fits the widths the unit derives
    (every input for formats up to 16 bits, stressing and random inputs otherwise)."""
    unit = ReciprocalUnit(fmt_in, fmt_out, function)
    if fmt_in.width <= 16:
        inputs = list(range(1, fmt_in.max_int + 1))
    else:
        inputs = stressing_inputs(fmt_in, fmt_out, function)
        inputs += np.abs(log_uniform_inputs(fmt_in, 3000, np.random.default_rng(8), 0)).tolist()
    if function == "recip":  # negative inputs reach |min_int|, one more than max_int
        inputs += [-x for x in inputs] + [fmt_in.min_int]
    model = MODELS[function](np.asarray(inputs), fmt_in, fmt_out)
    widest = [[0, 0] for _ in range(unit.steps)]
    for x, expected, saturated in zip(inputs, model.y.tolist(), model.saturated.tolist(),
                                      strict=True):
        if saturated or abs(expected) > fmt_out.max_int:  # limits replace these results
            continue
        result, trace = emulate_recurrence(unit, x)
        assert result == abs(expected), x
        for step, (remainder, partial) in enumerate(trace):
            widest[step][0] = max(widest[step][0], remainder.bit_length())
            widest[step][1] = max(widest[step][1], partial.bit_length())
    for step, (remainder_bits, partial_bits) in enumerate(widest):
        assert remainder_bits <= unit._remainder_width(step), step
        if function == "rsqrt":
            assert partial_bits <= unit._partial_width(step), step
    # The derived widths are tight: every step uses its top bit or the one below it.
    for step, (remainder_bits, partial_bits) in enumerate(widest):
        assert remainder_bits >= unit._remainder_width(step) - 1, step
        if function == "rsqrt":
            assert partial_bits >= unit._partial_width(step) - 1, step


def simulate(unit: ReciprocalUnit, inputs, *, ready_probability=1.0, valid_probability=1.0,
             seed=0):
    """Stream ``inputs`` through ``unit``; return results and transfer cycles.

    The consumer drives ``o.ready`` randomly and checks the stream rules: once ``o.valid`` is
    high it stays high with the same payload until the transfer.

    Returns
    -------
    results : list of (value, invalid, saturated)
    input_cycles, output_cycles : list of int
        Cycle numbers of the input and output transfers.
    """
    inputs = [int(v) for v in inputs]
    rng = random.Random(seed)
    results, input_cycles, output_cycles = [], [], []

    async def producer(ctx):
        cycle = 0
        for value in inputs:
            while rng.random() >= valid_probability:
                await ctx.tick()
                cycle += 1
            ctx.set(unit.i.valid, 1)
            ctx.set(unit.i.payload, value)
            while True:
                _, _, ready = await ctx.tick().sample(unit.i.ready)
                cycle += 1
                if ready:
                    break
            input_cycles.append(cycle - 1)
            ctx.set(unit.i.valid, 0)

    async def consumer(ctx):
        cycle = 0
        pending = None  # (payload) offered but not taken last cycle
        while len(results) < len(inputs):
            ctx.set(unit.o.ready, rng.random() < ready_probability)
            _, _, valid, ready, payload = await ctx.tick().sample(
                unit.o.valid, unit.o.ready, unit.o.payload)
            cycle += 1
            current = (payload.value, payload.invalid, payload.saturated) if valid else None
            if pending is not None:
                assert current == pending, "output changed or dropped before it was taken"
            if valid and ready:
                results.append(current)
                output_cycles.append(cycle - 1)
                pending = None
            else:
                pending = current

    timeout = 1e-8 * (len(inputs) + 10) * (unit.initiation_interval + unit.latency) * 20
    run_simulation(unit, producer, consumer, deadline=timeout)
    return results, input_cycles, output_cycles


def check_against_model(unit, inputs, **kwargs):
    results, _, _ = simulate(unit, inputs, **kwargs)
    model = MODELS[unit.function](np.asarray(inputs), unit.fmt_in, unit.fmt_out)
    expected = list(zip(model.y.tolist(), model.invalid.tolist(), model.saturated.tolist(),
                        strict=True))
    got = [(int(v), bool(i), bool(s)) for v, i, s in results]
    mismatches = [(x, g, e) for x, g, e in zip(inputs, got, expected, strict=True) if g != e]
    assert not mismatches, f"{len(mismatches)} mismatches, first: (x, got, expected) = " \
                           f"{mismatches[:3]}"
    return np.array([g[0] for g in got]), model


@pytest.mark.parametrize("mode", ["pipelined", "iterative"])
@pytest.mark.parametrize("function", ["rsqrt", "recip"])
@pytest.mark.parametrize(("fmt_in", "fmt_out"), SIM_FORMATS, ids=str)
def test_unit_matches_model(fmt_in, fmt_out, function, mode):
    """Edge and log-uniform random inputs, random backpressure; also the float64 bound."""
    unit = ReciprocalUnit(fmt_in, fmt_out, function, mode)
    count = 300 if mode == "pipelined" else 60
    inputs = mixed_inputs(fmt_in, fmt_out, function, count, seed=4).tolist()
    values, model = check_against_model(unit, inputs, ready_probability=0.6,
                                        valid_probability=0.8, seed=5)
    _check_float_bound(function, np.asarray(inputs), fmt_in, fmt_out, values,
                       model.invalid, model.saturated)


@pytest.mark.parametrize("mode", ["pipelined", "iterative"])
@pytest.mark.parametrize("function", ["rsqrt", "recip"])
@pytest.mark.parametrize(("fmt_in", "fmt_out"),
                         [(Q("Q3.3"), Q("Q3.3")), (Q("Q2.5"), Q("Q5.2")), (Q("Q6.1"), Q("Q1.6"))],
                         ids=str)
def test_unit_exhaustive_small_formats(fmt_in, fmt_out, function, mode):
    """Every input of 6- and 7-bit formats (catches a datapath that is one bit too narrow)."""
    unit = ReciprocalUnit(fmt_in, fmt_out, function, mode)
    inputs = list(range(fmt_in.min_int, fmt_in.max_int + 1))
    check_against_model(unit, inputs, ready_probability=0.7, seed=6)


@pytest.mark.parametrize("function", ["rsqrt", "recip"])
@pytest.mark.parametrize("mode", ["pipelined", "iterative"])
def test_latency_and_initiation_interval(mode, function):
    """With o.ready high and inputs always offered, 18-bit formats: latency 19, II 1 or 18."""
    fmt = Q("Q6.12")
    unit = ReciprocalUnit(fmt, fmt, function, mode)
    assert unit.latency == 19
    assert unit.initiation_interval == (1 if mode == "pipelined" else 18)
    inputs = [4096, 3, 77777, -5, 12345, 1]
    _, input_cycles, output_cycles = simulate(unit, inputs)
    assert [b - a for a, b in zip(input_cycles, output_cycles, strict=True)] \
        == [unit.latency] * len(inputs)
    assert np.diff(input_cycles).tolist() == [unit.initiation_interval] * (len(inputs) - 1)


@pytest.mark.parametrize("mode", ["pipelined", "iterative"])
def test_unit_slow_consumer_keeps_every_result(mode):
    """A consumer much slower than the unit: nothing is lost or overwritten, order is kept.

    In iterative mode a finished result must wait in the recurrence while the previous one is
    still in the output register, and no new input may be accepted meanwhile.
    """
    fmt = Q("Q3.3")
    unit = ReciprocalUnit(fmt, fmt, "recip", mode)
    inputs = list(range(fmt.min_int, fmt.max_int + 1, 3))
    check_against_model(unit, inputs, ready_probability=0.05, seed=7)


def test_unit_parameter_errors():
    q = Q("Q6.12")
    with pytest.raises(ValueError, match="'sqrt'"):
        ReciprocalUnit(q, q, "sqrt")
    with pytest.raises(ValueError, match="'fast'"):
        ReciprocalUnit(q, q, "rsqrt", "fast")
    with pytest.raises(TypeError, match="fmt_out"):
        ReciprocalUnit(q, 18)
    with pytest.raises(ValueError, match="fmt_in Q1.0"):
        ReciprocalUnit(Q("Q1.0"), q)
    unit = ReciprocalUnit("Q2.16", "Q8.10", "recip", "pipelined")
    assert unit.fmt_in == Q("Q2.16") and unit.fmt_out == Q("Q8.10")
    assert len(unit.i.payload) == 18 and unit.i.payload.shape().signed
    assert unit.o.payload.shape().size == 18 + 2


def test_registry_and_generate(tmp_path):
    """`tiersolve generate rsqrt -p mode=pipelined` writes Verilog."""
    from tiersolve.gen.registry import get_unit
    from tiersolve.host.cli import build_params, main

    for name in ("recip", "rsqrt"):
        spec = get_unit(name)
        params = build_params(spec, {"mode": "pipelined", "fmt_out": "Q8.10"})
        unit = spec.build(Q("Q2.16"), **params)
        Fragment.get(unit, None)  # elaborates
        assert unit.function == name and unit.mode == "pipelined"
        assert unit.fmt_out == Q("Q8.10")
    with pytest.raises(ValueError, match="mode"):
        build_params(get_unit("rsqrt"), {"mode": "fast"})
    output = tmp_path / "rsqrt.v"
    assert main(["generate", "rsqrt", "--format", "Q3.5", "-p", "mode=pipelined",
                 "-o", str(output)]) == 0
    assert "module tiersolve_rsqrt" in output.read_text()


def test_square_root_identity_in_simulation():
    """rsqrt of exact powers of four is exact in simulation (zero error, not just < 1 ULP)."""
    fmt_in, fmt_out = Q("Q16.16"), Q("Q16.16")
    unit = ReciprocalUnit(fmt_in, fmt_out, "rsqrt", "pipelined")
    inputs = [1 << (2 * k) for k in range(16)]  # x = 4**k * 2**-16
    values, model = check_against_model(unit, inputs)
    for k, value in enumerate(values.tolist()):
        exact = 2.0 ** (8 - k) * 2**16
        if exact <= fmt_out.max_int:
            assert value == exact
    assert values[8] == 1 << 16  # x = 1.0 -> 1.0


@pytest.mark.parametrize(("fmt_in", "fmt_out"),
                         [(Q("Q3.3"), Q("Q3.3")), (Q("Q2.5"), Q("Q5.2")), (Q("Q8.8"), Q("Q2.14"))],
                         ids=str)
def test_iterative_rsqrt_trial_fits_its_register(fmt_in, fmt_out):
    """The iterative rsqrt keeps the trial ``T = 4*P + x`` in a register of
    ``_trial_width()`` bits: every trial of every valid input fits it (every input)."""
    unit = ReciprocalUnit(fmt_in, fmt_out, "rsqrt", "iterative")
    widest = 0
    for x in range(1, fmt_in.max_int + 1):
        _, trace = emulate_recurrence(unit, x)
        widest = max(widest, max((4 * partial + x).bit_length() for _, partial in trace))
    assert widest <= unit._trial_width()
