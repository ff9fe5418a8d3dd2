"""Amaranth generators and their bit-exact NumPy models.

Importing :mod:`tiersolve.gen` itself (and :mod:`tiersolve.gen.fixed`) does not import Amaranth,
so the host can quantise with the same code that defines what the hardware computes.
"""

from .fixed import MAX_WIDTH, ROUNDING_MODES, FixedFormat, Quantised, round_shift, saturate

__all__ = ["MAX_WIDTH", "ROUNDING_MODES", "FixedFormat", "Quantised", "round_shift", "saturate"]
