"""CORDIC unit: multiplier-free vectoring and rotation, the building block of Givens rotations.

A vectoring unit on the leading pair of two rows finds the rotation that zeroes the second
element (and the magnitude that replaces the first); rotation units given the same
``directions`` apply exactly that rotation to the other column pairs. The arithmetic, formats
and error bounds are defined once in :mod:`tiersolve.gen.cordic_model`, whose functions
:func:`~tiersolve.gen.cordic_model.vectoring` and :func:`~tiersolve.gen.cordic_model.rotation`
are the bit-exact models of this gateware.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import registry
from .checks import silent_if_refused
from .cordic_model import OUTPUT_ROUNDING, CordicConfig
from .fixed import FixedFormat
from .hwfixed import clip_width, round_even

__all__ = ["MODES", "Cordic", "directions_layout"]

# The gateware rounds with the Cholesky core's one-adder ties-to-even rounding (and clips with
# its carry-free saturation); the model must round the same way.
assert OUTPUT_ROUNDING == "nearest-even", OUTPUT_ROUNDING

#: Operating modes of :class:`Cordic`.
MODES = ("vectoring", "rotation")


def directions_layout(iterations: int) -> data.StructLayout:
    """Layout of a directions word: ``prerotate`` (bit 0), then ``counterclockwise`` (one bit
    per iteration, iteration ``i`` at bit ``i + 1`` of the whole word). Its integer value is the
    packed directions of the model."""
    return data.StructLayout({"prerotate": 1, "counterclockwise": unsigned(iterations)})


class Cordic(wiring.Component):
    """Fixed-point CORDIC in vectoring or rotation mode, pipelined or iterative.

    Vectoring rotates ``(x, y)`` onto the +x axis: first by 180 degrees if ``x < 0`` (direction
    bit ``prerotate``), then by ``+-atan(2**-i)`` for ``i = 0 .. n-1``, counterclockwise when
    the current ``y`` is negative (bit ``counterclockwise[i]``). Rotation applies the
    micro-rotations its ``directions`` name, so it replays, bit for bit, the arithmetic of the
    vectoring that produced them. The internal datapath is ``Q<I+2>.<F+G>``; outputs are
    rounded once (to nearest, ties to even) and, a cycle later, saturated. What is computed,
    exactly, is :mod:`tiersolve.gen.cordic_model`; its error bounds at full scale with the
    defaults are below 0.81 LSB (magnitude), 0.64 LSB (each rotated coordinate) and 0.89 LSB of
    the angle format (angle), and the replay residual ``|y'|`` is below 1.6 LSB.

    Parameters
    ----------
    fmt : FixedFormat
        Format of ``x``, ``y`` and of the magnitude / rotated outputs (at least 4 bits wide).
    iterations : int or None
        Micro-rotations ``n`` (4 to 62). Default ``fmt.width``.
    mode : str
        ``"vectoring"`` or ``"rotation"`` (see :data:`MODES`).
    pipelined : bool
        True: one register stage per iteration, one result per cycle. False: one iteration per
        cycle on a single datapath (a barrel shifter per coordinate instead of ``n`` adders).
    compensate_gain : bool
        True: outputs are multiplied by ``1/K`` with shifts and adds (canonical signed digits,
        rounded once), so the magnitude is ``hypot(x, y)``. False: outputs carry the CORDIC
        gain ``K`` (:attr:`config.gain <tiersolve.gen.cordic_model.CordicConfig.gain>`, about
        1.6468): keep ``hypot(x, y) * K`` within the format or the output saturates.
    guard_bits : int or None
        Fractional guard bits of the internal datapath. Default ``floor(log2(n)) + 3``.

    Members
    -------
    i : ``In(stream.Signature(input_layout))``
        vectoring: ``x``, ``y`` (``fmt``). rotation: ``x``, ``y``, ``directions``
        (:func:`directions_layout`).
    o : ``Out(stream.Signature(output_layout))``
        vectoring: ``magnitude`` (``fmt``, never negative), ``angle`` (``angle_format``,
        radians, within ``[-pi, pi]``), ``directions``, ``saturated``. rotation: ``x``, ``y``
        (``fmt``) and ``saturated`` (either coordinate clipped).

    Attributes
    ----------
    config : CordicConfig
        Formats, constants and the derived error bounds
        (:meth:`~tiersolve.gen.cordic_model.CordicConfig.magnitude_error_bound` etc.).
    angle_format : FixedFormat
        ``Q3.<width-3>``.
    directions_layout : StructLayout
        Layout of the ``directions`` field (:func:`directions_layout`), for the units that pass
        directions from a vectoring unit to rotation units.
    latency : int
        ``n + 4`` with gain compensation, else ``n + 3``, in both pipelined and iterative
        form (:meth:`latency_of`): with ``o.ready`` high, an input transferred in cycle ``t``
        has its result valid in cycle ``t + latency``. Cycles: input/pre-rotation register,
        ``n`` iterations, the gain multiply (if compensated), the rounding (and, vectoring, the
        angle's ``+-pi`` term), then the saturation (and the angle's rounding) into the output
        register.
    initiation_interval : int
        Pipelined: 1. Iterative: ``latency - 1`` (the next input is taken in the cycle the
        result is written to the output register).

    Timing
    ------
    Pipelined: the whole pipeline advances in a cycle where ``o.valid`` is low or ``o.ready`` is
    high, so ``i.ready = ~o.valid | o.ready`` (combinational from ``o.ready``). Iterative:
    ``i.ready`` is high while idle, and in the cycle the finished result moves into a free
    output register. In both, ``o.payload`` is stable while ``o.valid`` waits for ``o.ready``.
    """

    @silent_if_refused
    def __init__(self, fmt, iterations=None, mode="vectoring", pipelined=True,
                 compensate_gain=True, guard_bits=None):
        if isinstance(fmt, str):
            fmt = FixedFormat.parse(fmt)
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"fmt must be a FixedFormat or a string such as 'Q6.12', not "
                            f"{fmt!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if not isinstance(pipelined, bool):
            raise TypeError(f"pipelined must be a bool, not {pipelined!r}")
        self.config = CordicConfig(fmt, iterations, guard_bits, compensate_gain)
        self.fmt = fmt
        self.mode = mode
        self.pipelined = pipelined
        self.angle_format = self.config.angle_format
        n = self.config.iterations
        self.latency = self.latency_of(self.config)
        self.initiation_interval = 1 if pipelined else self.latency - 1

        directions = directions_layout(n)
        self.directions_layout = directions
        if mode == "vectoring":
            input_layout = data.StructLayout({"x": fmt.shape(), "y": fmt.shape()})
            output_layout = data.StructLayout({
                "magnitude": fmt.shape(),
                "angle": self.angle_format.shape(),
                "directions": directions,
                "saturated": 1,
            })
        else:
            input_layout = data.StructLayout(
                {"x": fmt.shape(), "y": fmt.shape(), "directions": directions})
            output_layout = data.StructLayout(
                {"x": fmt.shape(), "y": fmt.shape(), "saturated": 1})
        super().__init__({
            "i": In(stream.Signature(input_layout)),
            "o": Out(stream.Signature(output_layout)),
        })

    @staticmethod
    def latency_of(config: CordicConfig) -> int:
        """:attr:`latency` of a unit built with ``config`` (either mode, either form), for the
        cores that schedule around a unit: ``iterations + 4`` compensated, else
        ``iterations + 3``."""
        if not isinstance(config, CordicConfig):
            raise TypeError(f"config must be a CordicConfig, not {config!r}")
        return config.iterations + (4 if config.compensate_gain else 3)

    # -- datapath pieces shared by both forms ------------------------------------------------

    @property
    def _vectoring(self) -> bool:
        return self.mode == "vectoring"

    def _internal(self, name):
        return Signal(signed(self.config.internal_width), name=name)

    def _product(self, name):
        return Signal(signed(self.config.product_width), name=name)

    def _angle(self, name):
        return Signal(signed(self.config.angle_width), name=name)

    def _load(self, payload):
        """Pre-rotation bit and pre-rotated, widened ``(x, y)`` of an input payload."""
        if self._vectoring:
            prerotate = payload.x < 0
        else:
            prerotate = payload.directions.prerotate
        guard = self.config.guard_bits
        x = Mux(prerotate, -payload.x, payload.x).shift_left(guard)
        y = Mux(prerotate, -payload.y, payload.y).shift_left(guard)
        return prerotate, x, y

    @staticmethod
    def _micro_rotation(x, y, shift, counterclockwise):
        """``(x', y')`` of one micro-rotation; ``shift`` is an int or an unsigned Value."""
        if isinstance(shift, int):
            x_shifted, y_shifted = x.shift_right(shift), y.shift_right(shift)
        else:
            x_shifted, y_shifted = x >> shift, y >> shift
        # One adder/subtractor per coordinate: a - b = a + ~b + 1, with the operand inverted
        # by XOR and the +1 as the carry in, rather than two adders and a multiplexer.
        subtract_y = Cat(*[counterclockwise] * len(y_shifted)).as_signed()
        subtract_x = Cat(*[~counterclockwise] * len(x_shifted)).as_signed()
        x_next = x + (y_shifted ^ subtract_y) + counterclockwise
        y_next = y + (x_shifted ^ subtract_x) + ~counterclockwise
        return x_next, y_next

    def _compensate(self, value):
        """``value * gain_constant`` exactly, as a balanced tree of shifted adds/subtracts."""
        terms = [value.shift_left(shift) if sign > 0 else -value.shift_left(shift)
                 for shift, sign in self.config.gain_digits]
        while len(terms) > 1:
            pairs = [terms[k] + terms[k + 1] for k in range(0, len(terms) - 1, 2)]
            terms = pairs + ([terms[-1]] if len(terms) % 2 else [])
        return terms[0]

    def _rounded(self, value):
        """Output rounding (once) of a gain stage value; :meth:`_output_statements` saturates it
        a cycle later (a register between the two carry chains)."""
        return round_even(value, self.config.output_shift)

    def _angle_sum(self, z, prerotate):
        """``-z`` plus ``+-pi`` when pre-rotated: the angle before its rounding, in the internal
        angle format."""
        pi = Const(self.config.pi_constant, signed(self.config.angle_width + 1))
        pi_term = Mux(z >= 0, pi, -pi)
        return Mux(prerotate, pi_term, 0) - z

    def _round_stage(self, x, y, z, prerotate):
        """The round stage from the gain stage values: ``(stage, statements)``, with ``stage``
        the registers ``(x, y, angle)`` between the rounding and the saturation (``y``
        rotation only, ``angle`` vectoring only, else None) and ``statements`` their
        assignments, for the caller to put in ``sync`` where the stage advances."""
        values = [self._rounded(x), self._rounded(y) if not self._vectoring else None,
                  self._angle_sum(z, prerotate) if self._vectoring else None]
        stage, statements = [], []
        for name, value in zip(("round_x", "round_y", "round_angle"), values, strict=True):
            if value is None:
                stage.append(None)
                continue
            register = Signal(value.shape(), name=name)
            stage.append(register)
            statements.append(register.eq(value))
        return tuple(stage), statements

    def _output_statements(self, payload, stage, prerotate, counterclockwise):
        """Assignments of the output payload from the round stage registers: saturation, and
        the angle's rounding into ``angle_format`` (it never clips: ``|angle| <= pi``)."""
        round_x, round_y, round_angle = stage
        x_value, x_saturated = clip_width(round_x, self.fmt.width)
        if self._vectoring:
            angle_rounded = round_even(round_angle, self.config.angle_guard_bits)
            angle, _ = clip_width(angle_rounded, self.angle_format.width)
            return [
                payload.magnitude.eq(x_value),
                payload.angle.eq(angle),
                payload.directions.prerotate.eq(prerotate),
                payload.directions.counterclockwise.eq(counterclockwise),
                payload.saturated.eq(x_saturated),
            ]
        y_value, y_saturated = clip_width(round_y, self.fmt.width)
        return [
            payload.x.eq(x_value),
            payload.y.eq(y_value),
            payload.saturated.eq(x_saturated | y_saturated),
        ]

    # -- elaboration -------------------------------------------------------------------------

    def elaborate(self, platform):
        if self.pipelined:
            return self._elaborate_pipelined()
        return self._elaborate_iterative()

    def _elaborate_pipelined(self):
        m = Module()
        config = self.config
        n = config.iterations
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]

        # Stage k = 0 holds the pre-rotated input; stage k >= 1 the result of iteration k - 1.
        valid = [Signal(name=f"valid_{k}") for k in range(n + 1)]
        xs = [self._internal(f"x_{k}") for k in range(n + 1)]
        ys = [self._internal(f"y_{k}") for k in range(n + 1)]
        prerotates = [Signal(name=f"prerotate_{k}") for k in range(n + 1)]
        # Vectoring fills in the bits stage by stage; rotation carries the bits still to be
        # used (synthesis drops the register bits nothing reads).
        ccws = [Signal(n, name=f"counterclockwise_{k}") for k in range(n + 1)]
        zs = [self._angle(f"z_{k}") for k in range(n + 1)] if self._vectoring else None

        prerotate_in, x_in, y_in = self._load(self.i.payload)
        with m.If(advance):
            m.d.sync += [
                valid[0].eq(self.i.valid),
                xs[0].eq(x_in),
                ys[0].eq(y_in),
                prerotates[0].eq(prerotate_in),
            ]
            if self._vectoring:
                m.d.sync += [zs[0].eq(0), ccws[0].eq(0)]
            else:
                m.d.sync += ccws[0].eq(self.i.payload.directions.counterclockwise)
            for i in range(n):
                counterclockwise = ys[i] < 0 if self._vectoring else ccws[i][i]
                x_next, y_next = self._micro_rotation(xs[i], ys[i], i, counterclockwise)
                m.d.sync += [
                    valid[i + 1].eq(valid[i]),
                    xs[i + 1].eq(x_next),
                    ys[i + 1].eq(y_next),
                    prerotates[i + 1].eq(prerotates[i]),
                ]
                if self._vectoring:
                    alpha = config.angle_constants[i]
                    m.d.sync += [
                        zs[i + 1].eq(Mux(counterclockwise, zs[i] + alpha, zs[i] - alpha)),
                        ccws[i + 1].eq(ccws[i] | (counterclockwise << i)),
                    ]
                else:
                    m.d.sync += ccws[i + 1].eq(ccws[i])

        last_valid, last_x, last_y = valid[n], xs[n], ys[n]
        last_z = zs[n] if self._vectoring else None
        last_prerotate, last_ccw = prerotates[n], ccws[n]
        if config.compensate_gain:
            gain_valid = Signal()
            gain_x, gain_y = self._product("gain_x"), self._product("gain_y")
            gain_prerotate, gain_ccw = Signal(), Signal(n)
            with m.If(advance):
                m.d.sync += [
                    gain_valid.eq(last_valid),
                    gain_x.eq(self._compensate(last_x)),
                    gain_prerotate.eq(last_prerotate),
                    gain_ccw.eq(last_ccw),
                ]
                if self._vectoring:
                    gain_z = self._angle("gain_z")
                    m.d.sync += gain_z.eq(last_z)
                    last_z = gain_z
                else:
                    m.d.sync += gain_y.eq(self._compensate(last_y))
            last_valid, last_x, last_y = gain_valid, gain_x, gain_y
            last_prerotate, last_ccw = gain_prerotate, gain_ccw

        round_valid, round_prerotate, round_ccw = Signal(), Signal(), Signal(n)
        stage, round_statements = self._round_stage(last_x, last_y, last_z, last_prerotate)
        with m.If(advance):
            m.d.sync += [
                round_valid.eq(last_valid),
                round_prerotate.eq(last_prerotate),
                round_ccw.eq(last_ccw),
            ]
            m.d.sync += round_statements
            m.d.sync += self.o.valid.eq(round_valid)
            m.d.sync += self._output_statements(self.o.payload, stage, round_prerotate,
                                                round_ccw)
        return m

    def _elaborate_iterative(self):
        m = Module()
        config = self.config
        n = config.iterations
        compensate = config.compensate_gain

        x, y = self._internal("x"), self._internal("y")
        z = self._angle("z") if self._vectoring else None
        prerotate = Signal()
        ccw = Signal(n, name="counterclockwise")
        count = Signal(range(n))
        # The gain stage (or, uncompensated, the working registers themselves) feeds the output.
        if compensate:
            gain_x, gain_y = self._product("gain_x"), self._product("gain_y")
        else:
            gain_x, gain_y = x, y

        stage, round_statements = self._round_stage(gain_x, gain_y, z, prerotate)

        output_free = Signal()
        m.d.comb += output_free.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        prerotate_in, x_in, y_in = self._load(self.i.payload)
        load = [x.eq(x_in), y.eq(y_in), prerotate.eq(prerotate_in), count.eq(0)]
        if self._vectoring:
            load += [z.eq(0), ccw.eq(0)]
        else:
            load += [ccw.eq(self.i.payload.directions.counterclockwise)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += load
                    m.next = "RUN"
            with m.State("RUN"):
                counterclockwise = y < 0 if self._vectoring else ccw.bit_select(count, 1)
                x_next, y_next = self._micro_rotation(x, y, count, counterclockwise)
                m.d.sync += [x.eq(x_next), y.eq(y_next), count.eq(count + 1)]
                if self._vectoring:
                    alphas = Array(Const(alpha, signed(config.angle_width))
                                   for alpha in config.angle_constants)
                    alpha = alphas[count]
                    m.d.sync += [
                        z.eq(Mux(counterclockwise, z + alpha, z - alpha)),
                        ccw.bit_select(count, 1).eq(counterclockwise),
                    ]
                with m.If(count == n - 1):
                    m.next = "GAIN" if compensate else "ROUND"
            if compensate:
                with m.State("GAIN"):
                    m.d.sync += gain_x.eq(self._compensate(x))
                    if not self._vectoring:
                        m.d.sync += gain_y.eq(self._compensate(y))
                    m.next = "ROUND"
            with m.State("ROUND"):
                m.d.sync += round_statements
                m.next = "FINISH"
            with m.State("FINISH"):
                with m.If(output_free):
                    m.d.sync += self.o.valid.eq(1)
                    m.d.sync += self._output_statements(self.o.payload, stage, prerotate, ccw)
                    m.d.comb += self.i.ready.eq(1)
                    with m.If(self.i.valid):
                        m.d.sync += load
                        m.next = "RUN"
                    with m.Else():
                        m.next = "IDLE"
        return m


def _build(fmt, iterations=None, mode="vectoring", pipelined=True, compensate_gain=True,
           guard_bits=None):
    return Cordic(fmt, iterations=iterations, mode=mode, pipelined=pipelined,
                  compensate_gain=compensate_gain, guard_bits=guard_bits)


registry.register(registry.UnitSpec(
    name="cordic",
    summary="CORDIC vectoring/rotation (multiplier-free Givens), latency iterations+4 (+3 raw)",
    build=_build,
    parameters=(
        registry.Parameter("iterations", int, None,
                           "micro-rotations (default: the format's width)"),
        registry.Parameter("mode", str, "vectoring", "vectoring: (x, y) -> magnitude, "
                           "directions, angle; rotation: replay directions", choices=MODES),
        registry.Parameter("pipelined", registry.flag, True,
                           "one stage per iteration (true) or one iteration per cycle (false)"),
        registry.Parameter("compensate_gain", registry.flag, True,
                           "multiply by 1/K with shifts and adds (false: outputs carry K)"),
        registry.Parameter("guard_bits", int, None,
                           "fractional guard bits (default: floor(log2(iterations)) + 3)"),
    ),
))
