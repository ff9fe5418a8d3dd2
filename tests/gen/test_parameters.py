# amaranth: UnusedElaboratable=no
"""Parameters and inputs of the generators and models that used to pass and give wrong results
(or crash deep inside), found by a user's audit: each is now a clear error at the door."""

from fractions import Fraction

import numpy as np
import pytest
from tiersolve.gen.cholesky import CholeskySolver
from tiersolve.gen.cholesky_model import check_inverse_format, cholesky_model, cycle_model
from tiersolve.gen.cordic import Cordic
from tiersolve.gen.cordic_model import CordicConfig
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.qr import IncrementalUpdater
from tiersolve.gen.qr_model import QRConfig, QRSolverModel

Q6_12 = FixedFormat.parse("Q6.12")


@pytest.mark.parametrize("values, error", [
    (np.array([2**64 - 1], dtype=np.uint64), ValueError),   # wrapped to -1 before
    (np.array([1.7, 2], dtype=object), TypeError),            # truncated to 1 before
    (np.array([Fraction(7, 2)], dtype=object), TypeError),
    (np.array(["12"], dtype=object), TypeError),
    (np.array([True, False]), TypeError),
    (np.array([2**70], dtype=object), ValueError),            # OverflowError before
])
def test_check_ints_refuses_what_is_not_an_integer_of_the_format(values, error):
    with pytest.raises(error):
        Q6_12.check_ints(values)


def test_check_ints_keeps_integers_of_the_format():
    big = np.array([Q6_12.max_int, Q6_12.min_int], dtype=object)
    assert Q6_12.check_ints(big).tolist() == [Q6_12.max_int, Q6_12.min_int]
    assert Q6_12.check_ints(np.array([5], dtype=np.uint8)).dtype == np.int64


def test_format_parse_takes_strings_of_ascii_digits_only():
    with pytest.raises(TypeError, match="not 6.1"):
        FixedFormat.parse(6.10)          # read as Q6.1 before
    with pytest.raises(ValueError, match="cannot parse"):
        FixedFormat.parse("Q\u0666.12")  # an Arabic-Indic six


def test_an_inverse_format_whose_inverses_of_large_pivots_truncate_to_zero_is_refused():
    """Q2.0 pivot inverses gave X = 0 with no flag (model and core alike)."""
    for inverse in ("Q2.0", "Q6.2"):
        with pytest.raises(ValueError, match="would truncate to 0; give it at least 3"):
            check_inverse_format(inverse, Q6_12)
        with pytest.raises(ValueError, match="truncate to 0"):
            CholeskySolver(4, 1, Q6_12, 1, inverse_format=inverse)
    assert check_inverse_format("Q3.3", Q6_12) == FixedFormat(3, 3)


def test_models_and_cycle_counts_refuse_impossible_jobs():
    with pytest.raises(ValueError, match="at least one row"):
        cholesky_model(Q6_12, "gram", 2, 1, 0, np.zeros((0, 3), dtype=np.int64), n_max=2,
                       k_max=1)
    for kwargs, message in (({"lanes": 3}, "power of two"), ({"lanes": 0}, "lanes"),
                            ({"n": 0}, "n must"), ({"k": 0}, "k must"),
                            ({"rsqrt_latency": 0}, "rsqrt_latency"),
                            ({"n_max": 3}, r"n_max must be an integer of at least 4 \(n\)"),
                            ({"k_max": 0}, r"k_max must be an integer of at least 1 \(k\)"),
                            ({"n_max": 4.0}, "n_max must be an integer")):
        arguments = {"n": 4, "k": 1, "lanes": 4, "rsqrt_latency": 19, **kwargs}
        with pytest.raises(ValueError, match=message):
            cycle_model(arguments.pop("n"), arguments.pop("k"), arguments.pop("lanes"),
                        **arguments)
    with pytest.raises(TypeError, match="late_term must be True, False or None"):
        CholeskySolver(4, 1, Q6_12, 2, late_term="false")   # built the late term before
    with pytest.raises(ValueError, match="n must be at least 1, not 0"):
        QRSolverModel(QRConfig(Q6_12, "multiplier"), 0, 1)


def test_a_cordic_whose_rounding_errors_can_overflow_its_registers_is_refused():
    """Q4.0, 17 iterations, no guard bits: a vectoring magnitude came out negative."""
    with pytest.raises(ValueError, match="can overflow the Q4.0 CORDIC's registers"):
        CordicConfig(FixedFormat(4, 0), 17, 0)
    with pytest.raises(ValueError, match="overflow"):
        Cordic(FixedFormat(4, 0), 17, guard_bits=0)
    assert CordicConfig(FixedFormat(4, 0), 17).guard_bits == 7   # the default is safe


def test_generators_take_format_strings_and_numpy_integers():
    assert Cordic("Q6.12").fmt == Q6_12 and CordicConfig("Q6.12").fmt == Q6_12
    core = IncrementalUpdater(np.int64(4), np.int64(1), "Q6.12", units=np.int64(2))
    assert (core.n_max, core.k_max, core.units) == (4, 1, 2)
    assert all(type(v) is int for v in (core.n_max, core.k_max, core.units))
