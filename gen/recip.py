"""Reciprocal and reciprocal-square-root unit: exact truncating digit recurrences.

The bit-exact models are :func:`tiersolve.gen.recip_model.rsqrt_model` and
:func:`tiersolve.gen.recip_model.reciprocal_model`; their module docstring defines what the unit
computes and the error bound (below one ULP of the output format, never away from zero).

How it works
------------
With ``fi``/``fo`` the fractional bits of the input/output formats and ``Wo`` the output width,
both functions look for the largest non-negative integer ``y`` with

- ``y * y * x <= N`` where ``N = 2**(2*fo + fi)`` (reciprocal square root), or
- ``y * |x| <= M`` where ``M = 2**(fo + fi)`` (reciprocal).

First a comparison of ``x`` with a constant tells whether the answer needs ``Wo`` or more bits:
then the result saturates (or, for a negative reciprocal of exactly ``2**(Wo-1)``, is
``min_int`` exactly) and the recurrence's result is not used. Otherwise ``y < 2**(Wo-1)`` and
the unit decides its ``Wo - 1`` bits one per step, from the top, as a restoring recurrence:

- reciprocal: restoring division. The partial remainder ``R`` (at most ``Wi`` bits) gives
  ``d = R >= |x|``; ``R <- 2*(R - d*|x|) + (next bit of M)``.
- reciprocal square root: with ``Y`` the bits found so far and ``P = Y * x`` kept beside it, the
  scaled remainder ``S = floor(N / 4**b) - 4 * Y*Y * x`` gives ``d = S >= 4*P + x``;
  ``S <- 4*(S - d*(4*P + x)) + (next two bits of N)``, ``P <- 2*P + d*x``. No multiplier.

Because ``N`` and ``M`` are powers of two the "next bits" are constants per step. Each step
is exact, so the result is the exact truncation with no correction step. Every register is as
wide as the largest value it can hold for an input that does not saturate (derived per step in
:meth:`ReciprocalUnit._remainder_width` and :meth:`ReciprocalUnit._partial_width`, checked
exhaustively in the tests); for the reciprocal square root the last remainder has about
``Wo + Wi/2 + 2`` bits rather than ``Wo + Wi + 1``.

Why not smolarith
-----------------
``smolarith.div.MulticycleDiv`` (Amaranth 0.5, ``lib.stream``) is a correct truncating divider
but does not fit here: it divides two operands of the *same* width, so the dividend
``2**(fo + fi)`` (``fo + fi + 1`` bits) forces the divisor, remainder and loop count to that
width (25 steps plus 3 cycles of sign conversion for Q6.12, against 17 steps here) and still
needs a saturation check on a quotient wider than the output; it has no pipelined variant; and
the reciprocal square root would need a separate square-root recurrence after the division. The
recurrences above take one narrow subtractor per output bit, handle the power-of-two dividend as
constants, and give the reciprocal square root in a single recurrence.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import registry
from .checks import silent_if_refused
from .fixed import FixedFormat
from .recip_model import reciprocal_dividend, rsqrt_dividend

__all__ = ["FUNCTIONS", "MODES", "ReciprocalUnit", "result_layout"]

#: Functions the unit computes.
FUNCTIONS = ("rsqrt", "recip")

#: Implementation styles: one recurrence step per cycle, or one registered stage per step.
MODES = ("iterative", "pipelined")


def result_layout(fmt_out: FixedFormat) -> data.StructLayout:
    """Payload layout of :attr:`ReciprocalUnit.o`: ``value``, ``invalid``, ``saturated``."""
    return data.StructLayout({
        "value": signed(fmt_out.width),
        "invalid": 1,
        "saturated": 1,
    })


def _check_format(name: str, fmt) -> FixedFormat:
    if isinstance(fmt, str):
        fmt = FixedFormat.parse(fmt)
    if not isinstance(fmt, FixedFormat):
        raise TypeError(f"{name} must be a FixedFormat (or a string such as 'Q6.12'), "
                        f"not {fmt!r}")
    if fmt.width < 2:
        raise ValueError(f"{name} {fmt} must be at least 2 bits wide")
    return fmt


class ReciprocalUnit(wiring.Component):
    """Reciprocal (``1/x``) or reciprocal square root (``1/sqrt(x)``) of fixed-point values.

    Each input transfer is one stored integer ``x`` in ``fmt_in``; each output transfer is the
    result for one input, in input order: the exact truncation of the real result to
    ``fmt_out`` (error below one ULP of ``fmt_out``, never away from zero), clipped and flagged
    ``saturated`` if it does not fit, or ``fmt_out.max_int`` flagged ``invalid`` for ``x <= 0``
    (``rsqrt``) or ``x == 0`` (``recip``). :func:`tiersolve.gen.recip_model.rsqrt_model` and
    :func:`tiersolve.gen.recip_model.reciprocal_model` compute the same integers bit for bit.

    Parameters
    ----------
    fmt_in : FixedFormat or str
        Format of the input ``x`` (at least 2 bits).
    fmt_out : FixedFormat or str
        Format of the result (at least 2 bits).
    function : str
        ``"rsqrt"`` (default) or ``"recip"``.
    mode : str
        ``"iterative"`` (default): one recurrence step per cycle, one result every
        ``fmt_out.width`` cycles, small. ``"pipelined"``: one registered stage per step, one
        result per cycle.

    Members
    -------
    i : ``In(stream.Signature(signed(fmt_in.width)))``
        Inputs; the payload is ``x`` itself. In iterative mode ``i.ready`` is low while a
        result is being computed.
    o : ``Out(stream.Signature(result_layout(fmt_out)))``
        Results: ``value`` (``signed(fmt_out.width)``), ``invalid``, ``saturated``.

    Attributes
    ----------
    fmt_in, fmt_out : FixedFormat
    function, mode : str
    steps : int
        Recurrence steps per result, ``fmt_out.width - 1`` (one per magnitude bit).
    latency : int
        ``fmt_out.width + 1`` in both modes: with ``o.ready`` high, an input transferred in
        cycle ``t`` has its result valid on ``o`` in cycle ``t + latency``. One cycle to
        register the input (and classify it), ``steps`` cycles of recurrence, one cycle to
        register the output (sign, saturation). 19 for an 18-bit output.
    initiation_interval : int
        Cycles between accepted inputs at full rate: 1 when pipelined; ``fmt_out.width``
        when iterative (the next input is accepted in the cycle the result moves to the output
        register). 18 for an 18-bit output.

    Timing
    ------
    ``o.valid`` never depends on ``o.ready``; ``i.ready`` does (combinationally, through the
    stall logic), as :mod:`amaranth.lib.stream` allows.

    Pipelined mode stalls as a whole while ``o`` holds a result that is not accepted
    (``i.ready = ~o.valid | o.ready``). Iterative mode accepts a new input whenever its
    recurrence is idle; a finished result waits in the recurrence until the output register is
    free.

    The longest path of a step is, for ``recip``, one ``Wi + 1``-bit subtraction and a
    multiplexer; for ``rsqrt``, pipelined, an addition ``4*P + x`` then a subtraction (up to
    about ``Wo + Wi/2 + 3`` bits), then a multiplexer; for ``rsqrt``, iterative, the trial
    ``4*P + x`` is a register of its own (with ``3*x`` beside ``x``), so a step is one
    subtraction and multiplexers. The input stage has a negation (``recip``), ``3*x``
    (iterative ``rsqrt``) and comparisons with constants; the output stage a negation
    (``recip``) and multiplexers.

    Cost
    ----
    Per step (``Wi = fmt_in.width``, ``Wo = fmt_out.width``): ``recip`` needs one subtractor
    of at most ``Wi + 1`` bits and a multiplexer of the remainder; ``rsqrt`` three
    adders/subtractors (pipelined: ``4*P + x``, ``S - (4*P + x)``, ``2*P + d*x``; iterative:
    ``S - T``, ``2*T + 3*x``, ``2*T - x``) and multiplexers, about ``Wo + Wi/2`` bits wide at
    the last step and narrower before. Iterative mode builds one step at the widest widths plus
    a step counter (and, for ``rsqrt``, ``3*x`` when an input is taken); pipelined mode builds
    all ``Wo - 1`` steps with their registers (remainder, ``P``, the result bits so far, ``|x|``
    and four flags).

    Measured for Q6.12 in and out on ECP5 (``synth_ecp5``, ``nextpnr-ecp5 --25k``):

    ========================  ======  =====  =====  ========
    unit                      LUT4    CCU2C  FF     fmax
    ========================  ======  =====  =====  ========
    ``recip`` iterative       97      36     84
    ``recip`` pipelined       320     193    806    207 MHz
    ``rsqrt`` iterative       138     31     116    119 MHz
    ``rsqrt`` pipelined       1153    336    1075   110 MHz
    ========================  ======  =====  =====  ========

    Pipelined ``rsqrt`` is limited by its two chained carry chains per step (``4*P + x`` then
    the comparison with ``S``); iterative ``rsqrt`` has one (``S - T``). The iterative row of
    the table predates the trial register; the unit the QR cores use (Q3.18 in, Q2.18 out,
    iterative), out of context on ECP5-85F speed 6 (``--seed 1``), went from 148 MHz (288
    LUT4, 144 FF) with ``4*P + x`` formed in the step to 164 MHz (309 LUT4, 168 FF) with the
    trial register (``bench-results/h4/synth_rsqrt.py``).

    Raises
    ------
    TypeError
        If a format is not a :class:`FixedFormat` or a string.
    ValueError
        If a format is narrower than 2 bits, or ``function`` or ``mode`` is unknown.
    """

    @silent_if_refused
    def __init__(self, fmt_in, fmt_out, function: str = "rsqrt", mode: str = "iterative"):
        self.fmt_in = _check_format("fmt_in", fmt_in)
        self.fmt_out = _check_format("fmt_out", fmt_out)
        if function not in FUNCTIONS:
            raise ValueError(f"function must be one of {FUNCTIONS}, not {function!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.function = function
        self.mode = mode
        self.steps = self.fmt_out.width - 1
        self.latency = self.steps + 2
        self.initiation_interval = 1 if mode == "pipelined" else self.steps + 1
        super().__init__({
            "i": In(stream.Signature(signed(self.fmt_in.width))),
            "o": Out(stream.Signature(result_layout(self.fmt_out))),
        })

    # -- constants of the recurrence ---------------------------------------------------------

    @property
    def _is_rsqrt(self) -> bool:
        return self.function == "rsqrt"

    @property
    def _dividend(self) -> int:
        """``N`` (rsqrt) or ``M`` (recip): the power of two being divided."""
        if self._is_rsqrt:
            return rsqrt_dividend(self.fmt_in, self.fmt_out)
        return reciprocal_dividend(self.fmt_in, self.fmt_out)

    @property
    def _digit_bits(self) -> int:
        """Bits of the dividend consumed per result bit: 2 for rsqrt, 1 for recip."""
        return 2 if self._is_rsqrt else 1

    @property
    def _magnitude_width(self) -> int:
        """Bits of ``|x|`` for valid inputs: ``x > 0`` for rsqrt; up to ``2**(Wi-1)`` for recip."""
        return self.fmt_in.width - 1 if self._is_rsqrt else self.fmt_in.width

    def _prefix_times_x_bound(self, shift: int, step: int, odd: bool) -> int:
        """Largest ``f(Y) * x`` over valid rsqrt inputs, ``Y = y >> shift``, ``Y < 2**step``.

        ``f(Y)`` is ``2*Y + 1`` (``odd``) or ``Y``. The largest ``x`` whose result has prefix
        ``Y >= v`` is ``x_v = floor(N / (v * 2**shift)**2)`` (``xmax`` for ``v = 0``), so the
        bound is the largest ``f(v) * min(xmax, x_v)``. That product grows with ``v`` while
        ``x_v >= xmax`` and shrinks once ``x_v < xmax`` (``f(v) / v**2`` decreases), so only
        the last ``v`` of the first kind and the next one need to be tried; the second is
        bounded by the real ``N / (v * 2**shift)**2``, hence the ``+ 1``.
        """
        dividend, largest_x = self._dividend, self.fmt_in.max_int
        cap = (1 << step) - 1
        last_full = min(math.isqrt(dividend // largest_x) >> shift, cap)

        def factor(v):
            return 2 * v + 1 if odd else v

        bound = factor(last_full) * largest_x
        if last_full < cap:
            v = last_full + 1
            bound = max(bound, factor(v) * (dividend // ((v * v) << (2 * shift)) + 1))
        return bound

    def _remainder_width(self, step: int) -> int:
        """Bits of the partial remainder before step ``step`` (0 is the first).

        Only inputs whose result neither saturates nor is invalid matter (the others' results
        are replaced), so ``y < 2**(Wo-1)`` and, for rsqrt, ``0 < x <= xmax = 2**(Wi-1) - 1``.

        Both remainders are also at most the dividend bits fed so far, ``floor(M / 2**b)`` or
        ``floor(N / 4**b)`` for the bit ``b`` that step ``step`` decides (they start there and
        only decrease by subtraction); this is what limits the first steps.

        recip: ``R <= 2*|x| - 1 <= 2**Wi - 1``.

        rsqrt: let ``b`` be the bit decided by step ``step - 1`` and ``Y' = y >> b`` the
        ``step`` bits known after it. Since ``Y'`` is a prefix of the final ``y``,
        ``floor(N/4**b) < (Y'+1)**2 * x``, so the remainder left is below ``(2*Y'+1)*x`` and
        ``S = 4*remainder + (two bits of N) < 4*(2*Y'+1)*x``, bounded by
        :meth:`_prefix_times_x_bound`. Before step 0, ``S = floor(N / 4**(Wo-2)) < 4*x`` (else
        the result would saturate).
        """
        fed_so_far = self._dividend >> (self._digit_bits * (self.steps - 1 - step))
        if not self._is_rsqrt:
            bound = (1 << self.fmt_in.width) - 1
        elif step == 0:
            bound = 4 * self.fmt_in.max_int - 1
        else:
            bound = 4 * self._prefix_times_x_bound(self.steps - step, step, odd=True) - 1
        return max(1, min(bound, fed_so_far).bit_length())

    def _partial_width(self, step: int) -> int:
        """Bits of ``P = Y*x`` (rsqrt) before step ``step``, ``Y = y >> (b+1)`` for the bit
        ``b`` that step decides (see :meth:`_prefix_times_x_bound`)."""
        return max(1, self._prefix_times_x_bound(self.steps - step, step, odd=False)
                   .bit_length())

    def _trial_width(self) -> int:
        """Bits of the trial ``T = 4*P + x`` (rsqrt, iterative mode) over every step, from
        :meth:`_partial_width` and the largest valid ``x``."""
        largest_x = (1 << self._magnitude_width) - 1
        return max((4 * ((1 << self._partial_width(step)) - 1) + largest_x).bit_length()
                   for step in range(self.steps))

    def _initial_remainder(self) -> int:
        """``floor(dividend / base**b_top)``, clipped to the first remainder's width.

        When the result does not saturate it is below ``4*x`` (``2*|x|`` for recip) and fits;
        when it saturates the recurrence's result is discarded, so clipping is harmless.
        """
        top_bit = self.steps - 1
        value = self._dividend >> (self._digit_bits * top_bit)
        return min(value, (1 << self._remainder_width(0)) - 1)

    def _fed_bits(self, bit):
        """Dividend bits shifted into the remainder after deciding result bit ``bit``.

        ``bit`` is a Python int (pipelined) or the step counter (iterative). These are bits
        ``digit_bits*(bit-1) ..`` of the dividend; the dividend has a single 1 bit.
        """
        digits = self._digit_bits
        one_at = self._dividend.bit_length() - 1
        if isinstance(bit, int):
            if bit < 1:
                return Const(0, digits)
            return Const((self._dividend >> (digits * (bit - 1))) & ((1 << digits) - 1), digits)
        fed_after = one_at // digits + 1
        if fed_after > self.steps - 1:  # already inside the initial remainder
            return Const(0, digits)
        return Mux(bit == fed_after, Const(1 << (one_at % digits), digits), Const(0, digits))

    # -- building blocks ---------------------------------------------------------------------

    def _classify(self, x):
        """Combinational front end: ``(magnitude, invalid, big, saturated, negative)``.

        ``big`` means the exact result needs ``Wo`` bits or more, so the recurrence's result is
        replaced by a limit; ``saturated`` says whether that limit is a clip (it is not for a
        negative reciprocal of exactly ``2**(Wo-1)``, which is ``min_int``).
        """
        fmt_in, fmt_out = self.fmt_in, self.fmt_out
        top = fmt_out.width - 1
        if self._is_rsqrt:
            invalid = x <= 0
            # y >= 2**top  <=>  4**top * x <= N  <=>  x <= floor(N / 4**top)
            threshold = min(self._dividend >> (2 * top), fmt_in.max_int)
            big = ~invalid & (x <= threshold)
            return x[:self._magnitude_width], invalid, big, big, Const(0, 1)
        invalid = x == 0
        negative = x < 0
        magnitude = Mux(negative, -x, x)[:self._magnitude_width]
        limit = -fmt_in.min_int
        # q = floor(M/|x|) >= 2**top  <=>  |x| <= floor(M / 2**top)
        big_threshold = min(self._dividend >> top, limit)
        # q >= 2**top + 1  <=>  |x| <= floor(M / (2**top + 1))
        negative_threshold = min(self._dividend // ((1 << top) + 1), limit)
        big = ~invalid & (magnitude <= big_threshold)
        saturated = ~invalid & Mux(negative, magnitude <= negative_threshold, big)
        return magnitude, invalid, big, saturated, negative

    def _step(self, state: dict, magnitude, fed, three_magnitude=None) -> dict:
        """Next recurrence state (combinational) from ``state`` and the fed dividend bits.

        rsqrt keeps either ``P`` (``state["partial"]``; pipelined mode) and forms the trial
        ``4*P + x`` in the step, or the trial ``T = 4*P + x`` itself (``state["trial"]``;
        iterative mode, which then passes ``three_magnitude = 3*x`` from a register): the
        step is then one subtraction ``S - T`` and multiplexers, with the next trial
        ``4*(2*P + d*x) + x``, that is ``2*T + 3*x`` or ``2*T - x``, formed beside it.
        """
        if self._is_rsqrt:
            iterative_form = "trial" in state
            trial = state["trial"] if iterative_form else (state["partial"] << 2) + magnitude
            difference = state["remainder"] - trial
            keep = difference >= 0
            kept = Mux(keep, difference, state["remainder"])
            following = {
                "remainder": Cat(fed, kept),  # 4*kept + fed, fed < 4
                "result": Cat(keep, state["result"]),
            }
            # both candidates are formed beside the trial subtraction and `keep` only selects
            # one: no adder waits for the subtraction's sign
            if iterative_form:
                following["trial"] = Mux(keep, (trial << 1) + three_magnitude,
                                         (trial << 1) - magnitude)
            else:
                following["partial"] = Mux(keep, (state["partial"] << 1) + magnitude,
                                           state["partial"] << 1)
            return following
        difference = state["remainder"] - magnitude
        keep = difference >= 0
        kept = Mux(keep, difference, state["remainder"])
        return {
            "remainder": Cat(fed, kept),  # 2*kept + fed, fed < 2
            "result": Cat(keep, state["result"]),
        }

    def _state_signals(self, step: int, name: str) -> dict:
        """Registers that hold the recurrence state before step ``step``."""
        state = {
            "remainder": Signal(self._remainder_width(step), name=f"{name}_remainder"),
            "result": Signal(step, name=f"{name}_result"),
        }
        if self._is_rsqrt:
            state["partial"] = Signal(self._partial_width(step), name=f"{name}_partial")
        return state

    def _initial_state(self) -> dict:
        state = {
            "remainder": Const(self._initial_remainder(), self._remainder_width(0)),
            "result": Const(0, 0),
        }
        if self._is_rsqrt:
            state["partial"] = Const(0, self._partial_width(0))
        return state

    def _output_value(self, result, invalid, big, negative):
        fmt_out = self.fmt_out
        if self._is_rsqrt:
            return Mux(invalid | big, fmt_out.max_int, result)
        signed_result = Mux(negative, -result, result)
        limit = Mux(negative, fmt_out.min_int, fmt_out.max_int)
        return Mux(invalid, fmt_out.max_int, Mux(big, limit, signed_result))

    # -- elaboration -------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        if self.mode == "pipelined":
            self._elaborate_pipelined(m)
        else:
            self._elaborate_iterative(m)
        return m

    def _elaborate_pipelined(self, m):
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]

        def flag_signals(name):
            return {
                "valid": Signal(name=f"{name}_valid"),
                "magnitude": Signal(self._magnitude_width, name=f"{name}_magnitude"),
                "invalid": Signal(name=f"{name}_invalid"),
                "big": Signal(name=f"{name}_big"),
                "saturated": Signal(name=f"{name}_saturated"),
                "negative": Signal(name=f"{name}_negative"),
            }

        # Input register: x classified.
        magnitude, invalid, big, saturated, negative = self._classify(self.i.payload)
        flags = flag_signals("input")
        with m.If(advance):
            m.d.sync += [
                flags["valid"].eq(self.i.valid),
                flags["magnitude"].eq(magnitude),
                flags["invalid"].eq(invalid),
                flags["big"].eq(big),
                flags["saturated"].eq(saturated),
                flags["negative"].eq(negative),
            ]

        # One registered stage per result bit, from the top bit down.
        state = self._initial_state()
        for step in range(self.steps):
            bit = self.steps - 1 - step
            following = self._step(state, flags["magnitude"], self._fed_bits(bit))
            next_flags = flag_signals(f"stage{step + 1}")
            if step == self.steps - 1:  # only the result is needed after the last step
                next_state = {"result": Signal(self.steps, name="final_result")}
            else:
                next_state = self._state_signals(step + 1, f"stage{step + 1}")
            with m.If(advance):
                m.d.sync += [next_flags[key].eq(flags[key]) for key in flags]
                m.d.sync += [next_state[key].eq(following[key]) for key in next_state]
            flags, state = next_flags, next_state

        # Output register.
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(flags["valid"]),
                self.o.payload.value.eq(self._output_value(
                    state["result"], flags["invalid"], flags["big"], flags["negative"])),
                self.o.payload.invalid.eq(flags["invalid"]),
                self.o.payload.saturated.eq(flags["saturated"]),
            ]

    def _elaborate_iterative(self, m):
        last = self.steps - 1
        # One set of registers serves every step: as wide as the widest step needs.
        state = {
            "remainder": Signal(max(map(self._remainder_width, range(self.steps))),
                                name="state_remainder"),
            "result": Signal(self.steps, name="state_result"),
        }
        if self._is_rsqrt:
            # the trial 4*P + x is kept instead of P: one carry chain per step (see _step)
            state["trial"] = Signal(self._trial_width(), name="state_trial")
        magnitude = Signal(self._magnitude_width)
        three_magnitude = Signal(self._magnitude_width + 2) if self._is_rsqrt else None
        invalid = Signal()
        big = Signal()
        saturated = Signal()
        negative = Signal()
        bit = Signal(range(self.steps), name="bit")  # result bit decided by the next step
        stepping = Signal()  # the recurrence is running
        finished = Signal()  # the recurrence holds a result for the output register

        output_free = Signal()
        move_out = Signal()
        m.d.comb += [
            output_free.eq(~self.o.valid | self.o.ready),
            move_out.eq(finished & output_free),
            self.i.ready.eq(~stepping & (~finished | output_free)),
        ]

        # Output register (the result leaves the recurrence in the cycle it is moved out).
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(move_out):
            m.d.sync += [
                finished.eq(0),
                self.o.valid.eq(1),
                self.o.payload.value.eq(self._output_value(
                    state["result"], invalid, big, negative)),
                self.o.payload.invalid.eq(invalid),
                self.o.payload.saturated.eq(saturated),
            ]

        # One recurrence step per cycle.
        with m.If(stepping):
            following = self._step(state, magnitude, self._fed_bits(bit), three_magnitude)
            m.d.sync += [state[key].eq(following[key]) for key in state]
            m.d.sync += bit.eq(bit - 1)
            with m.If(bit == 0):
                m.d.sync += [stepping.eq(0), finished.eq(1)]

        # Accept an input: classify it and load the initial state.
        with m.If(self.i.valid & self.i.ready):
            in_magnitude, in_invalid, in_big, in_saturated, in_negative = \
                self._classify(self.i.payload)
            # The result register is not cleared: it shifts in one decided bit a step and is
            # exactly `steps` bits wide, so the last step has replaced every bit of the
            # previous result (no reset fans out from the accept into its flip-flops).
            initial = {"remainder": self._initial_state()["remainder"]}
            if self._is_rsqrt:
                initial["trial"] = in_magnitude  # 4*0 + x
                m.d.sync += three_magnitude.eq((in_magnitude << 1) + in_magnitude)
            m.d.sync += [state[key].eq(initial[key]) for key in initial]
            m.d.sync += [
                magnitude.eq(in_magnitude),
                invalid.eq(in_invalid),
                big.eq(in_big),
                saturated.eq(in_saturated),
                negative.eq(in_negative),
                bit.eq(last),
                stepping.eq(1),
                finished.eq(0),
            ]


def _unit_builder(function: str):
    def build(fmt, fmt_out=None, mode="iterative"):
        return ReciprocalUnit(fmt, fmt if fmt_out is None else fmt_out, function, mode)

    return build


for _function, _summary in (
    ("recip", "reciprocal 1/x, exact truncation, iterative or pipelined"),
    ("rsqrt", "reciprocal square root 1/sqrt(x), exact truncation, iterative or pipelined"),
):
    registry.register(registry.UnitSpec(
        name=_function,
        summary=_summary,
        build=_unit_builder(_function),
        parameters=(
            registry.Parameter("fmt_out", FixedFormat.parse, None,
                               "format of the results (default: --format)"),
            registry.Parameter("mode", str, "iterative",
                               "one step per cycle, or one result per cycle", choices=MODES),
        ),
    ))
