"""Streaming multiply-accumulate unit: fixed-point dot products, one product per cycle.

The bit-exact model is :func:`tiersolve.gen.mac_model.mac_model`; its module docstring defines
what the unit computes.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import hwfixed, registry
from .checks import silent_if_refused
from .fixed import ROUNDING_MODES, FixedFormat
from .mac_model import check_mac_parameters

__all__ = ["MultiplyAccumulate"]


class MultiplyAccumulate(wiring.Component):
    """Streaming fixed-point dot-product unit.

    Each input transfer carries operands ``a`` and ``b`` and the markers ``first`` and
    ``last``. A transfer with ``first`` starts a new sum with ``a * b``; any other transfer adds
    ``a * b`` to the running sum. A transfer with ``last`` (``first`` may be set too: a single
    product) makes the unit round the full-precision sum once, from ``fa + fb`` to
    ``fmt_out.frac_bits`` fractional bits (:func:`tiersolve.gen.fixed.round_shift` semantics),
    saturate it to ``fmt_out`` and emit it. ``last`` does not end the sum: a following transfer
    without ``first`` keeps adding to it (``last`` on every transfer emits running sums). After
    reset the sum is zero.

    The accumulator is ``width_a + width_b + guard_bits`` bits wide and clips at its own range
    when a sum would overflow it. A result's ``saturated`` bit is set when the accumulator
    clipped since its sum started, or when the final value was clipped to ``fmt_out``.
    :func:`tiersolve.gen.mac_model.mac_model` computes the same results bit for bit.

    Parameters
    ----------
    fmt_a : FixedFormat or str
        Format of ``a``.
    fmt_b : FixedFormat or str or None
        Format of ``b``; ``None`` (default) means ``fmt_a``.
    fmt_out : FixedFormat or str or None
        Format of the results; ``None`` (default) means ``fmt_a``.
    guard_bits : int
        Accumulator bits beyond the product width (default 8): any ``2**(guard_bits + 1) - 1``
        products sum without clipping the accumulator.
    rounding : str
        One of :data:`tiersolve.gen.fixed.ROUNDING_MODES` (default ``"nearest-even"``).

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"a": ..., "b": ..., "first": 1, "last": 1})))``
        Operand pairs: ``a`` is ``signed(fmt_a.width)``, ``b`` is ``signed(fmt_b.width)``.
    o : ``Out(stream.Signature(StructLayout({"value": ..., "saturated": 1})))``
        One result per input transfer with ``last`` set; ``value`` is
        ``signed(fmt_out.width)``.
    saturated_sticky : ``Out(1)``
        Set when a result with ``saturated`` is produced; stays set until ``clear``.
    clear : ``In(1)``
        Clears ``saturated_sticky`` at the end of the cycle. A saturated result produced in the
        same cycle wins: the flag then stays set.

    Attributes
    ----------
    fmt_a, fmt_b, fmt_out : FixedFormat
    guard_bits : int
    rounding : str
    accumulator_width : int
        ``width_a + width_b + guard_bits``.
    latency : int
        4: with ``o.ready`` high, if the last input transfer of a sum happens in cycle ``t``,
        ``o.valid`` is high with its result in cycle ``t + 4``. One cycle for each register:
        operands, product, accumulator, output.
    initiation_interval : int
        1: one input transfer per cycle while the output is accepted.

    Notes
    -----
    Timing. Four pipeline registers: operands, product (a plain ``*`` between two registers, so
    synthesis maps it onto DSP multipliers, splitting products wider than one DSP over several),
    accumulator (add and clip), and output (round and saturate). The whole pipeline advances in
    a cycle where ``o.valid`` is low or ``o.ready`` is high, and stands still otherwise:
    ``i.ready`` is ``~o.valid | o.ready`` (combinational from ``o.ready``). Nothing is lost or
    duplicated under backpressure; ``o.payload`` stays stable while ``o.valid`` waits for
    ``o.ready``.

    Range. Every product lies within ``[-2**(wa + wb - 2), 2**(wa + wb - 2)]`` (only
    ``min_a * min_b`` reaches the top), so with ``guard_bits = g`` any ``2**(g + 1) - 1``
    products sum without clipping the accumulator; ``2**(g + 1)`` copies of ``min_a * min_b``
    clip it by one LSB. Longer sums clip only if a partial sum leaves the accumulator's range,
    and then the result says so in ``saturated``.
    """

    @silent_if_refused
    def __init__(self, fmt_a, fmt_b=None, fmt_out=None, guard_bits=8, rounding="nearest-even"):
        params = check_mac_parameters(fmt_a, fmt_b, fmt_out, guard_bits, rounding)
        self._params = params
        self.fmt_a = params.fmt_a
        self.fmt_b = params.fmt_b
        self.fmt_out = params.fmt_out
        self.guard_bits = params.guard_bits
        self.rounding = params.rounding
        self.accumulator_width = params.accumulator_width
        self.latency = 4
        self.initiation_interval = 1
        input_layout = data.StructLayout({
            "a": signed(self.fmt_a.width),
            "b": signed(self.fmt_b.width),
            "first": 1,
            "last": 1,
        })
        output_layout = data.StructLayout({
            "value": signed(self.fmt_out.width),
            "saturated": 1,
        })
        super().__init__({
            "i": In(stream.Signature(input_layout)),
            "o": Out(stream.Signature(output_layout)),
            "saturated_sticky": Out(1),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        params = self._params

        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]

        # Stage 1: operand registers.
        operand_valid = Signal()
        operand_first = Signal()
        operand_last = Signal()
        operand_a = Signal(signed(self.fmt_a.width))
        operand_b = Signal(signed(self.fmt_b.width))
        with m.If(advance):
            m.d.sync += [
                operand_valid.eq(self.i.valid),
                operand_first.eq(self.i.payload.first),
                operand_last.eq(self.i.payload.last),
                operand_a.eq(self.i.payload.a),
                operand_b.eq(self.i.payload.b),
            ]

        # Stage 2: product register; the multiply stays a bare `*` for DSP inference.
        product_valid = Signal()
        product_first = Signal()
        product_last = Signal()
        product = Signal(signed(params.product_width))
        with m.If(advance):
            m.d.sync += [
                product_valid.eq(operand_valid),
                product_first.eq(operand_first),
                product_last.eq(operand_last),
                product.eq(operand_a * operand_b),
            ]

        # Stage 3: accumulator, clipping at its own range.
        width = params.accumulator_width
        accumulator = Signal(signed(width))
        accumulator_clipped = Signal()
        sum_done = Signal()  # the accumulator holds a finished sum, to be rounded next
        total = Signal(signed(width + 1))
        total_overflow = Signal()
        m.d.comb += [
            total.eq(accumulator + product),
            total_overflow.eq(total[width] != total[width - 1]),
        ]
        with m.If(advance):
            m.d.sync += sum_done.eq(product_valid & product_last)
            with m.If(product_valid):
                with m.If(product_first):
                    # A product always fits: |min_a * min_b| < 2**(width_a + width_b - 1).
                    m.d.sync += [
                        accumulator.eq(product),
                        accumulator_clipped.eq(0),
                    ]
                with m.Else():
                    clipped_total = Mux(total[width],
                                        params.accumulator_min, params.accumulator_max)
                    m.d.sync += [
                        accumulator.eq(Mux(total_overflow, clipped_total, total[:width])),
                        accumulator_clipped.eq(accumulator_clipped | total_overflow),
                    ]

        # Stage 4: round once, saturate, output register.
        rounded = hwfixed.round_shift(accumulator, params.output_shift, params.rounding)
        result, result_clipped = hwfixed.saturate(rounded, self.fmt_out)
        result_saturated = Signal()
        m.d.comb += result_saturated.eq(accumulator_clipped | result_clipped)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(sum_done)
            with m.If(sum_done):
                m.d.sync += [
                    self.o.payload.value.eq(result),
                    self.o.payload.saturated.eq(result_saturated),
                ]

        with m.If(self.clear):
            m.d.sync += self.saturated_sticky.eq(0)
        with m.If(advance & sum_done & result_saturated):
            m.d.sync += self.saturated_sticky.eq(1)

        return m


def non_negative_int(text) -> int:
    """Parse a command-line integer that must be at least 0."""
    value = int(text)
    if value < 0:
        raise ValueError(f"expected an integer >= 0, not {value}")
    return value


def _build(fmt, fmt_b=None, fmt_out=None, guard_bits=8, rounding="nearest-even"):
    return MultiplyAccumulate(fmt, fmt_b=fmt_b, fmt_out=fmt_out, guard_bits=guard_bits,
                              rounding=rounding)


registry.register(registry.UnitSpec(
    name="mac",
    summary="streaming multiply-accumulate (dot products), one product per cycle, latency 4",
    build=_build,
    parameters=(
        registry.Parameter("fmt_b", FixedFormat.parse, None,
                           "format of the b operands (default: --format)"),
        registry.Parameter("fmt_out", FixedFormat.parse, None,
                           "format of the results (default: --format)"),
        registry.Parameter("guard_bits", non_negative_int, 8,
                           "accumulator bits beyond the product width"),
        registry.Parameter("rounding", str, "nearest-even",
                           "rounding of the final sum", choices=ROUNDING_MODES),
    ),
))
