"""FixedFormat, round_shift and saturate: the primitives every model is written with."""

import subprocess
import sys

import numpy as np
import pytest
from tiersolve.gen.fixed import MAX_WIDTH, FixedFormat, round_shift, saturate


def test_properties():
    fmt = FixedFormat(6, 12)
    assert fmt.width == 18
    assert (fmt.min_int, fmt.max_int) == (-(2**17), 2**17 - 1)
    assert fmt.min == -32.0
    assert fmt.max == 32.0 - 2.0**-12
    assert fmt.resolution == 2.0**-12
    assert str(fmt) == "Q6.12"
    assert FixedFormat.parse("Q6.12") == fmt
    assert FixedFormat.parse(" 6.12 ") == fmt
    assert FixedFormat.parse(fmt) is fmt


@pytest.mark.parametrize(
    "args, error, text",
    [
        ((0, 8), ValueError, "int_bits must be at least 1"),
        ((-3, 8), ValueError, "-3"),
        ((4, -1), ValueError, "frac_bits must be at least 0"),
        ((20, 13), ValueError, "exceeds 32"),
        ((1.5, 3), TypeError, "int_bits"),
        ((True, 3), TypeError, "int_bits"),
        ((4, "3"), TypeError, "frac_bits"),
    ],
)
def test_bad_formats(args, error, text):
    with pytest.raises(error, match=text):
        FixedFormat(*args)


@pytest.mark.parametrize("text", ["Q6", "six.twelve", "", "Q6.12.1", "Q-1.4"])
def test_bad_format_strings(text):
    with pytest.raises(ValueError, match="cannot parse"):
        FixedFormat.parse(text)


def test_widest_format_is_exact():
    fmt = FixedFormat(1, MAX_WIDTH - 1)
    q = np.array([fmt.min_int, -1, 0, 1, fmt.max_int], dtype=np.int64)
    assert np.array_equal(fmt.quantise(fmt.dequantise(q)).values, q)


@pytest.mark.parametrize("fmt", [FixedFormat(1, 15), FixedFormat(6, 12), FixedFormat(16, 16)])
def test_quantise_round_trip_and_error(fmt):
    rng = np.random.default_rng(1)
    x = rng.uniform(fmt.min, fmt.max, 5000)
    for rounding, bound in [("nearest-even", 0.5), ("nearest-up", 0.5), ("truncate", 1.0)]:
        q = fmt.quantise(x, rounding)
        assert q.values.dtype == np.int64
        assert not q.saturated.any()
        error = (x - fmt.dequantise(q.values)) / fmt.resolution
        assert np.all(np.abs(error) <= bound)
        if rounding == "truncate":
            assert np.all(error >= 0)


def test_rounding_ties():
    fmt = FixedFormat(4, 1)  # LSB = 0.5; ties sit at odd multiples of 0.25
    x = np.array([0.25, 0.75, -0.25, -0.75, 1.25, -1.25])
    assert fmt.quantise(x, "nearest-even").values.tolist() == [0, 2, 0, -2, 2, -2]
    assert fmt.quantise(x, "nearest-up").values.tolist() == [1, 2, 0, -1, 3, -2]
    assert fmt.quantise(x, "truncate").values.tolist() == [0, 1, -1, -2, 2, -3]


def test_nearest_up_is_exact_beside_ties():
    # floor(x + 0.5) in floating point rounded the sum first: the largest double below a tie
    # went up; the reference is exact rational rounding of the double
    from fractions import Fraction

    fmt = FixedFormat(20, 0)
    below = [np.nextafter(v + 0.5, -np.inf) for v in (0.0, 1.0, 2.0, -1.0, 1000.0)]
    ties = [0.5, 1.5, -0.5, -1.5, -2.5]
    above = [np.nextafter(v, np.inf) for v in ties]
    x = np.array(below + ties + above)
    want = [int(np.floor(Fraction(float(v)) + Fraction(1, 2))) for v in x]
    assert fmt.quantise(x, "nearest-up").values.tolist() == want
    assert want[:5] == [0, 1, 2, -1, 1000]


def test_saturation_reports_elements():
    fmt = FixedFormat(2, 2)  # range [-2, 1.75]
    q = fmt.quantise([[1.75, 1.8, 1.9], [-2.0, -2.1, -2.2]])
    assert q.values.tolist() == [[7, 7, 7], [-8, -8, -8]]
    # 1.8 rounds to 1.75 (in range); 1.9 rounds to 2.0 (clipped); -2.1 rounds to -2.0
    assert q.saturated.tolist() == [[False, False, True], [False, False, True]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_raises(bad):
    with pytest.raises(ValueError, match=rf"non-finite value {bad!r} at index \(1,\)"):
        FixedFormat(6, 12).quantise([1.0, bad])


def test_dequantise_checks_range_and_type():
    fmt = FixedFormat(2, 2)
    with pytest.raises(ValueError, match="out of range"):
        fmt.dequantise([8])
    with pytest.raises(TypeError):
        fmt.dequantise([0.5])
    assert fmt.const(1.5) == 6
    with pytest.raises(ValueError, match="outside the range"):
        fmt.const(2.0)


def _reference_round_shift(x: int, shift: int, rounding: str) -> int:
    """Exact rational rounding with Python integers."""
    import math
    from fractions import Fraction

    value = Fraction(x, 2**shift)
    if rounding == "truncate":
        return math.floor(value)
    if rounding == "nearest-up":
        return math.floor(value + Fraction(1, 2))
    return round(value)  # Fraction rounds half to even


@pytest.mark.parametrize("rounding", ["nearest-even", "nearest-up", "truncate"])
@pytest.mark.parametrize("shift", [1, 2, 5, 13])
def test_round_shift_matches_exact_rounding(rounding, shift):
    rng = np.random.default_rng(shift)
    x = np.concatenate([rng.integers(-(2**40), 2**40, 2000), np.arange(-70, 70)])
    got = round_shift(x, shift, rounding)
    want = [_reference_round_shift(int(v), shift, rounding) for v in x]
    assert got.tolist() == want


def test_round_shift_object_arrays_and_negative_shift():
    big = np.array([2**80 + 2**9, -(2**80) - 3 * 2**9], dtype=object)
    assert round_shift(big, 10).tolist() == [2**70, -(2**70) - 2]
    assert round_shift(np.array([3, -3]), -2).tolist() == [12, -12]
    assert round_shift(np.array([3, -3]), 0).tolist() == [3, -3]


def test_round_shift_int64_never_wraps():
    # a negative shift that leaves int64 raises (it wrapped silently); roundings whose
    # x + 2**(shift-1) passes the int64 maximum, or whose shift reaches 64 bits, still give
    # the exact result
    with pytest.raises(OverflowError, match="do not fit int64"):
        round_shift(np.array([1, 2**60]), -4)
    with pytest.raises(OverflowError):
        round_shift(np.array([-(2**62)]), -2)
    assert round_shift(np.array([2**60], dtype=object), -4).tolist() == [2**64]
    edge = np.array([2**63 - 1, -(2**63), 2**62 + 2**61, -5, 5], dtype=np.int64)
    for shift in (1, 2, 40, 62, 63, 64, 100):
        for rounding in ("nearest-even", "nearest-up", "truncate"):
            want = [_reference_round_shift(int(v), shift, rounding) for v in edge]
            got = round_shift(edge, shift, rounding)
            assert got.dtype == np.int64 and got.tolist() == want, (shift, rounding)


def test_saturate():
    fmt = FixedFormat(2, 2)
    values, mask = saturate(np.array([-9, -8, 0, 7, 8]), fmt)
    assert values.tolist() == [-8, -8, 0, 7, 7]
    assert mask.tolist() == [True, False, False, False, True]


def test_fixed_does_not_import_amaranth():
    code = (
        "import sys; import tiersolve.gen.fixed, tiersolve.gen; "
        "assert 'amaranth' not in sys.modules, 'amaranth imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_amaranth_shape():
    from amaranth.hdl import signed

    assert FixedFormat(6, 12).shape() == signed(18)
