"""Gateware counterparts of :func:`tiersolve.gen.fixed.round_shift` and
:func:`tiersolve.gen.fixed.saturate`, and the pipelined wide multiplier whose latency
:func:`tiersolve.gen.fixed.product_latency` gives.

``round_shift`` and ``saturate`` are combinational helpers that return Amaranth values; put
registers around them where the timing needs it. Each one computes exactly what its NumPy
twin computes, so a model written with the NumPy helpers is bit-exact against gateware written
with these.
"""

from __future__ import annotations

from amaranth.hdl import (
    Cat,
    ClockSignal,
    Const,
    Elaboratable,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
    signed,
)

from .checks import silent_if_refused
from .fixed import MULTIPLIER_WIDTH, FixedFormat, _check_rounding

__all__ = ["RegisteredProduct", "clip_flagged", "clip_width", "delay_line",
           "one_hot_state", "pipelined_product", "registered_product", "round_even",
           "round_shift", "saturate", "split_operand"]


def round_shift(value: Value, shift: int, rounding: str = "nearest-even") -> Value:
    """``value / 2**shift`` rounded as :func:`tiersolve.gen.fixed.round_shift` does.

    ``value`` must be signed. The result is signed and one bit wider than ``value`` minus
    ``shift`` (room for the carry of rounding up).
    """
    _check_rounding(rounding)
    value = Value.cast(value)
    if not value.shape().signed:
        raise TypeError("round_shift expects a signed value")
    if shift < 0:
        return (value << -shift).as_signed()
    if shift == 0:
        return value
    width = len(value) - shift + 1
    if rounding == "truncate":
        return (value >> shift).as_signed()
    half = 1 << (shift - 1)
    up = (value + half) >> shift  # signed, exactly `width` bits
    if rounding == "nearest-up":
        return up
    low = value[:shift]
    tie = low == half
    return Mux(tie & up[0], up - 1, up)[:width].as_signed()


def saturate(value: Value, fmt: FixedFormat) -> tuple[Value, Value]:
    """Clip a signed value to ``fmt``'s range.

    Returns
    -------
    (result, overflow)
        ``result`` has shape ``fmt.shape()``; ``overflow`` is 1 when clipping happened.
    """
    value = Value.cast(value)
    if not value.shape().signed:
        value = Cat(value, 0).as_signed()
    width = fmt.width
    if len(value) <= width:
        return value.as_signed(), Value.cast(0)
    high = value > fmt.max_int
    low = value < fmt.min_int
    result = Mux(high, fmt.max_int, Mux(low, fmt.min_int, value[:width].as_signed()))
    return result[:width].as_signed(), high | low


def clip_width(value, width: int):
    """Clip a signed value to ``width`` bits: ``(result, clipped)``.

    Same result as :func:`saturate`, but the overflow test looks at the
    bits above the sign (all equal: it fits) instead of comparing with the limits, so no carry
    chain follows the one that produced ``value``.
    """
    value = Value.cast(value)
    if len(value) <= width:
        return value.as_signed(), Const(0, 1)
    high = value[width - 1:]
    clipped = ~(high.all() | ~high.any())
    return clip_flagged(value, width, clipped), clipped


def clip_flagged(value, width: int, clipped):
    """:func:`clip_width`'s result with its overflow flag given (e.g. tested a cycle earlier
    and registered): the limit of ``value``'s sign where ``clipped``, else ``value``'s low
    ``width`` bits."""
    value = Value.cast(value)
    limit = Mux(value[-1], -(1 << (width - 1)), (1 << (width - 1)) - 1)
    return Mux(clipped, limit, value[:width].as_signed())[:width].as_signed()


def round_even(value, shift: int):
    """``round_shift(value, shift, "nearest-even")`` with one adder (exact, no clipping).

    Ties to even as ``floor((value + 2**(shift-1) - 1 + kept_lsb) / 2**shift)``, where
    ``kept_lsb`` is bit ``shift`` of ``value``: below half rounds down, above half up, and an
    exact half goes up only when the kept part is odd.
    """
    value = Value.cast(value)
    if not shift:
        return value.as_signed()
    half = 1 << (shift - 1)
    bias = Mux(value[shift], half, half - 1)
    return ((value + bias) >> shift).as_signed()


def split_operand(value) -> list:
    """``[(piece, shift)]`` with ``value = sum(piece << shift)``: unsigned low pieces of
    ``MULTIPLIER_WIDTH - 1`` bits (zero-extended to signed) and a signed top piece of at most
    ``MULTIPLIER_WIDTH`` bits, so that the product of two pieces fits one hardware multiplier.
    An unsigned ``value`` is zero-extended by one bit first."""
    value = Value.cast(value)
    if not value.shape().signed:
        value = Cat(value, Const(0, 1)).as_signed()
    pieces, low = [], 0
    while len(value) - low > MULTIPLIER_WIDTH:
        piece = Cat(value[low:low + MULTIPLIER_WIDTH - 1], Const(0, 1)).as_signed()
        pieces.append((piece, low))
        low += MULTIPLIER_WIDTH - 1
    pieces.append((value[low:].as_signed(), low))
    return pieces


class RegisteredProduct(Elaboratable):
    """``p = a * b`` one cycle later (``sync`` domain), for signed operands of at most
    ``MULTIPLIER_WIDTH`` bits each: one hardware multiplier with a register after it.

    Elaborated for an ECP5 platform (``platform.family == "ecp5"``: a board build, or an
    out-of-context synthesis for ECP5) it is a MULT18X18D whose own output register is the
    register, so the product leaves the DSP block from a flip-flop. Yosys maps a product to a
    MULT18X18D without its registers, which leaves a fabric register after the block: the
    route from the block to that register then adds to the multiplier's 3.9 ns. Anywhere else
    (simulation, Verilator, iCE40) it is ``p.eq(a * b)`` in ``sync``: the same values in the
    same cycles. The output register is reset by the domain's own reset (``RESETMODE="SYNC"``);
    a reset added around a core by a ``ResetInserter`` does not reach it, which changes no
    result: the product is replaced every cycle and nothing is issued in the cycle after a
    reset.
    """

    @silent_if_refused
    def __init__(self, a_width: int, b_width: int):
        for width in (a_width, b_width):
            if not 1 <= width <= MULTIPLIER_WIDTH:
                raise ValueError(f"operand widths must be 1 .. {MULTIPLIER_WIDTH}, "
                                 f"not {a_width} x {b_width}")
        self.a = Signal(signed(a_width))
        self.b = Signal(signed(b_width))
        self.p = Signal(signed(a_width + b_width))

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) != "ecp5":
            m.d.sync += self.p.eq(self.a * self.b)
            return m
        full = 2 * MULTIPLIER_WIDTH
        a = Cat(self.a, self.a[-1].replicate(MULTIPLIER_WIDTH - len(self.a)))
        b = Cat(self.b, self.b[-1].replicate(MULTIPLIER_WIDTH - len(self.b)))
        product = Signal(full)
        ports = {}
        for bit in range(MULTIPLIER_WIDTH):
            ports[f"i_A{bit}"] = a[bit]
            ports[f"i_B{bit}"] = b[bit]
            ports[f"i_C{bit}"] = 0
        for bit in range(full):
            ports[f"o_P{bit}"] = product[bit]
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="NONE", p_REG_INPUTB_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_REG_OUTPUT_CLK="CLK0", p_GSR="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal("sync"), i_CE0=1, i_RST0=ResetSignal("sync"),
            **ports)
        m.d.comb += self.p.eq(product[:len(self.p)])
        return m


def registered_product(m, a, b, name: str) -> Value:
    """``a * b`` registered (one cycle), through a :class:`RegisteredProduct` added to ``m``
    as submodule ``name``; both operands signed, at most ``MULTIPLIER_WIDTH`` bits each."""
    a, b = Value.cast(a), Value.cast(b)
    if not (a.shape().signed and b.shape().signed):
        raise TypeError("registered_product expects signed operands")
    if isinstance(a, Const) or isinstance(b, Const):  # left to Yosys (shifts and adds)
        return _plain_registered_product(m, a, b, name)
    multiplier = RegisteredProduct(len(a), len(b))
    m.submodules[name] = multiplier
    m.d.comb += [multiplier.a.eq(a), multiplier.b.eq(b)]
    return multiplier.p


def _plain_registered_product(m, a, b, name: str) -> Value:
    product = Signal(signed(len(a) + len(b)), name=name)
    m.d.sync += product.eq(a * b)
    return product


def pipelined_product(m, a, b, name: str) -> Value:
    """The exact product ``a * b``, registered, after
    :func:`~tiersolve.gen.fixed.product_latency` cycles (free running: a new pair every cycle).

    Operands of at most ``MULTIPLIER_WIDTH`` bits give one registered product. Wider ones are
    cut (:func:`split_operand`); every partial product is registered (one hardware multiplier
    each, a :class:`RegisteredProduct`, no adder after it in that cycle), then the partial
    products are summed pairwise, one registered level per cycle. ``m`` is the module that
    gets the registers (``sync`` domain), ``name`` prefixes their names. A constant operand
    leaves the products to Yosys.
    """
    constant = isinstance(Value.cast(a), Const) or isinstance(Value.cast(b), Const)
    product_of = _plain_registered_product if constant else registered_product
    terms = []
    for piece_a, shift_a in split_operand(a):
        for piece_b, shift_b in split_operand(b):
            partial = product_of(m, piece_a, piece_b, f"{name}_partial{len(terms)}")
            terms.append((partial, shift_a + shift_b))
    level = 0
    while len(terms) > 1:
        merged = []
        for index in range(0, len(terms), 2):
            pair = sorted(terms[index:index + 2], key=lambda term: term[1])
            if len(pair) == 1:  # an odd term out is registered too, to stay aligned
                (expression, low_shift), = pair
            else:
                (low, low_shift), (high, high_shift) = pair
                expression = (high << (high_shift - low_shift)) + low
            partial_sum = Signal(expression.shape(), name=f"{name}_sum{level}_{index // 2}")
            m.d.sync += partial_sum.eq(expression)
            merged.append((partial_sum, low_shift))
        terms = merged
        level += 1
    (product, shift), = terms
    return product << shift if shift else product


def delay_line(m, value, cycles: int, name: str) -> Value:
    """``value`` delayed by ``cycles`` registers in ``m``'s ``sync`` domain (``cycles = 0``:
    ``value`` itself); the registers are named ``{name}_delay1`` ... ``{name}_delay{cycles}``."""
    for index in range(cycles):
        delayed = Signal.like(value, name=f"{name}_delay{index + 1}")
        m.d.sync += delayed.eq(value)
        value = delayed
    return value


def one_hot_state(fsm) -> None:
    """Ask Yosys to encode ``fsm`` (the object of ``with m.FSM() as fsm:``) one-hot.

    Amaranth numbers the states in binary, and Yosys keeps that (its heuristics decline a state
    register with an initial value), so every state test and the next-state logic decode
    several bits: in the Cholesky core that decode, spread over the state registers' enables,
    was the worst path of several builds. With the ``fsm_encoding`` attribute Yosys re-encodes
    the register one flip-flop per state. Simulation is unchanged; the generated Verilog and
    RTLIL carry the attribute on the state register, and only Yosys's ``fsm`` pass acts on it.
    """
    fsm.state.attrs["fsm_encoding"] = "one-hot"
