"""Givens QR least-squares core and incremental-update core (gateware).

:class:`IncrementalUpdater` keeps ``A = [R | Z]`` (``R`` upper triangular ``n x n``,
``Z = QᵀT`` ``n x k``) and the solution ``W`` in :class:`~amaranth.lib.memory.Memory` and takes
commands: reset to ``R = √λ·I``, fold a row in (update, with forgetting), take a row out
(downdate), back-substitute, predict, read and load ``R``, ``Z``, ``W``. :class:`QRSolver` is the
same datapath without the incremental operations (no forgetting multipliers, no hyperbolic
rotations, no predict, no load): rows stream in, ``W`` comes out.

What the cores compute, integer for integer, is :mod:`tiersolve.gen.qr_model`; the formats,
the rotation step and the scaling the host must apply are documented there.

Datapath
--------
One *generator* makes the rotation of pivot ``i`` from ``(A[i, i], x[i])``: CORDIC vectoring
(:class:`~tiersolve.gen.cordic.Cordic`) or ``p = a² ± b²``, a normaliser (leading-one detector
and even barrel shift), the reciprocal square root
(:class:`~tiersolve.gen.recip.ReciprocalUnit`, iterative) and three multiplies for ``c``, ``s``
and ``r``. ``units`` *rotation units* (a linear array) then apply it to ``units`` column pairs
``(A[i, j], x[j])`` per cycle: CORDIC units in rotation mode replaying the directions, or
four-multiplier units. ``A`` and the work row ``x`` are split over ``units`` memory banks by
column (column ``j`` in bank ``j mod units``), so every unit reads and writes its own bank.
``A`` has two halves (ping-pong): a fold reads the current half and writes the other, and only
a completed fold switches halves, which is how a refused downdate leaves ``R``, ``Z`` untouched.

The generator of pivot ``i + 1`` waits until the array has written pivot ``i`` back (pivots
do not overlap, and rows do not interleave), so an UPDATE takes
(:meth:`IncrementalUpdater.update_cycles`, checked exactly against simulation and Verilator)::

    2 + (n + k) + sum_{i<n} (6 + G + groups_i + D)

with ``G`` the generator latency (CORDIC ``iterations + 3``; multiplier
``reciprocal latency + 9``), ``D`` the array's read-to-write-back latency (CORDIC
``iterations + 6``, multiplier units 6) and ``groups_i`` the groups of ``units`` columns from
the pivot's to the last. The latencies dominate: utilisation (rotations ÷ (units × cycles)) is
far below what a row-interleaved (systolic) schedule would reach; see ``tiersolve bench qr``.

Command port
------------
``command`` payload: ``op`` (:class:`Op`), ``select`` (:class:`Select`: which matrix READ and
LOAD move), ``n``, ``k`` (runtime sizes, ``1 <= n <= n_max``, ``1 <= k <= k_max``, else
``bad_command``), ``value`` (``√λ`` for RESET, stored integer of ``fmt``), ``forgetting``
(``b = round(√β·2**w)``, ``1 .. 2**w``, for UPDATE; ``2**w`` means ``β = 1``; another value
is a ``bad_command`` of the IncrementalUpdater, and ignored by the QRSolver).

=========  ===========================  =================================================
op         ``i`` stream (``signed(w)``)  effect / ``o`` stream (``value``, ``last``)
=========  ===========================  =================================================
RESET      —                            ``R = value·I``, ``Z = 0``, ``W = 0``; clears flags
UPDATE     ``n + k`` values ``[h | t]``   fold in after scaling ``[R | Z]`` by ``√β``
DOWNDATE   ``n + k`` values ``[h | t]``   hyperbolic fold; if refused, ``refused`` is set and
                                        ``R``, ``Z`` are unchanged
SOLVE      —                            ``W = R⁻¹Z`` into the ``W`` memory
PREDICT    ``n`` values ``h``             ``k`` values ``hᵀW`` on ``o``
READ       —                            ``R`` (``n x n``, row major, zeros below the
                                        diagonal), ``Z`` or ``W`` (``n x k``) on ``o``
LOAD       the same entries as READ     write them (``R``: entries below the diagonal are
                                        ignored)
=========  ===========================  =================================================
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import hwfixed, registry
from .cordic import Cordic
from .fixed import FixedFormat
from .qr_model import QRConfig
from .qr_ops import Op, Select
from .recip import ReciprocalUnit

__all__ = ["Op", "Select", "IncrementalUpdater", "QRSolver", "command_layout"]


def command_layout(n_max: int, k_max: int, fmt: FixedFormat) -> data.StructLayout:
    """Payload of the ``command`` stream."""
    return data.StructLayout({
        "op": 3,
        "select": 2,
        "n": range(n_max + 1),
        "k": range(k_max + 1),
        "value": signed(fmt.width),
        "forgetting": unsigned(fmt.width + 1),
    })


def _round_variable(value, shift):
    """``round_nearest_up(value, shift)`` for an unsigned Value ``shift``: for ``shift >= 1``,
    ``((value >> (shift - 1)) + 1) >> 1`` equals ``(value + 2**(shift-1)) >> shift``."""
    minus_one = (shift - 1)[: len(shift)]
    rounded = ((value >> minus_one) + 1) >> 1
    return Mux(shift == 0, value, rounded)


class IncrementalUpdater(wiring.Component):
    """Givens QR least-squares core with update, downdate, predict, solve, read and load.

    Parameters
    ----------
    n_max, k_max : int
        Largest ``n`` (columns of ``H``) and ``k`` (columns of ``T``), at least 1.
    fmt : FixedFormat or str
        Data format (8 to 28 bits; see :mod:`tiersolve.gen.qr_model`).
    units : int
        Rotation units in the linear array: a power of two, 1 to 64.
    rotation : str
        ``"cordic"`` or ``"multiplier"``. Downdates always use multiplier units (hyperbolic).

    Members
    -------
    command : ``In(stream.Signature(command_layout(n_max, k_max, fmt)))``
        One command per transfer; taken only while idle.
    i : ``In(stream.Signature(signed(w)))``
        Row values of UPDATE, DOWNDATE, PREDICT and the entries of LOAD.
    o : ``Out(stream.Signature(StructLayout({"value": signed(w), "last": 1})))``
        PREDICT results and READ entries; ``last`` marks the final one.
    busy : ``Out(1)``
        A command is running.
    refused : ``Out(1)``
        The last DOWNDATE was refused (would lose positive definiteness).
    saturated : ``Out(1)``
        Sticky since RESET: a value was clipped.
    bad_command : ``Out(1)``
        The last command had ``n`` or ``k`` out of range, or an op this core lacks.
    cycles : ``Out(32)``
        Cycles the last command took (from its transfer to idle).

    Attributes
    ----------
    config : QRConfig
    apply_latency : int
        Latency of a rotation unit: CORDIC ``iterations + 3``, multiplier unit 3.

    Timing
    ------
    Commands are taken only while idle (``busy`` low). An UPDATE takes
    :meth:`update_cycles` cycles; ``cycles`` reports what each command took.
    """

    incremental = True

    def __init__(self, n_max: int, k_max: int, fmt, units: int = 1, rotation: str = "cordic"):
        for name, value in (("n_max", n_max), ("k_max", k_max), ("units", units)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
        if n_max < 1 or k_max < 1:
            raise ValueError(f"n_max and k_max must be at least 1, not {n_max}, {k_max}")
        if units < 1 or units > 64 or units & (units - 1):
            raise ValueError(f"units must be a power of two from 1 to 64, not {units}")
        self.config = QRConfig(fmt, rotation)
        self.fmt = self.config.fmt
        self.n_max, self.k_max, self.units, self.rotation = n_max, k_max, units, rotation
        w = self.fmt.width
        # ReciprocalUnit's latency: output width + 1 (the unit is built in elaborate)
        self.reciprocal_latency = self.config.rsqrt_format.width + 1
        self.multiplier_apply_latency = 3
        self.apply_latency = (self.config.cordic.iterations + 3 if rotation == "cordic"
                              else self.multiplier_apply_latency)
        super().__init__({
            "command": In(stream.Signature(command_layout(n_max, k_max, self.fmt))),
            "i": In(stream.Signature(signed(w))),
            "o": Out(stream.Signature(data.StructLayout({"value": signed(w), "last": 1}))),
            "busy": Out(1),
            "refused": Out(1),
            "saturated": Out(1),
            "bad_command": Out(1),
            "cycles": Out(32),
        })

    # -- cycle model ---------------------------------------------------------------------------

    def generator_cycles(self, hyperbolic: bool = False) -> int:
        """Cycles the sequencer waits for a rotation: the CORDIC vectoring latency, or the
        reciprocal square root's latency plus 9 (square, sum, normalise, shift, hand-over,
        products, their sum, rounding, coefficients)."""
        if self.rotation == "cordic" and not hyperbolic:
            return self.config.cordic.iterations + 3
        return self.reciprocal_latency + 9

    def array_cycles(self, hyperbolic: bool = False) -> int:
        """Cycles from a group's read address to its write-back: read, forgetting product,
        rounding, then the unit (CORDIC ``iterations + 3``, multiplier unit 3)."""
        if self.rotation == "cordic" and not hyperbolic:
            return 3 + self.config.cordic.iterations + 3
        return 3 + self.multiplier_apply_latency

    def update_cycles(self, n: int, k: int, hyperbolic: bool = False) -> int:
        """Cycles of one UPDATE (or DOWNDATE that is not refused), as :attr:`cycles` counts
        them, when the row arrives at one value per cycle::

            1 + (n + k) + sum_{i<n} (6 + G + groups_i + D) + 1

        ``G`` = :meth:`generator_cycles`, ``D`` = :meth:`array_cycles`,
        ``groups_i = floor((n+k-1)/U) - floor(i/U) + 1`` (groups of ``U`` columns from the
        pivot's to the last). Checked against simulation in ``tests/gen/test_qr.py``.
        """
        total = n + k
        generate, drain = self.generator_cycles(hyperbolic), self.array_cycles(hyperbolic)
        cycles = 2 + total
        for i in range(n):
            groups = (total - 1) // self.units - i // self.units + 1
            cycles += 6 + generate + groups + drain
        return cycles

    @staticmethod
    def rotations_per_row(n: int, k: int) -> int:
        """Rotations one row fold does: ``n(n+1)/2 + nk`` (pivot pairs included)."""
        return n * (n + 1) // 2 + n * k

    # -- elaboration -------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        config, fmt = self.config, self.fmt
        w, f = fmt.width, fmt.frac_bits
        units, n_max, k_max = self.units, self.n_max, self.k_max
        shift = units.bit_length() - 1
        columns = n_max + k_max
        slots = -(-columns // units)
        incremental = self.incremental
        cordic_kind = self.rotation == "cordic"
        coefficient = config.coefficient_format
        mantissa_bits = config.mantissa_bits
        one = 1 << config.coefficient_frac_bits

        # -- storage ------------------------------------------------------------------------
        def make(name, depth):
            mem = memory.Memory(shape=signed(w), depth=depth, init=[])
            m.submodules[name] = mem
            return mem

        a_mem = [make(f"matrix{u}", 2 * n_max * slots) for u in range(units)]
        a_rd = [mem.read_port() for mem in a_mem]
        a_wr = [mem.write_port() for mem in a_mem]
        x_mem = [make(f"row{u}", slots) for u in range(units)]
        x_rd = [mem.read_port() for mem in x_mem]
        x_wr = [mem.write_port() for mem in x_mem]
        w_mem = make("solution", n_max * k_max)
        w_rd, w_wr = w_mem.read_port(), w_mem.write_port()

        def bank_of(index):
            return index[:shift] if shift else Const(0, 1)

        def slot_of(index):
            return index >> shift

        def a_address(half, row, slot):
            return (half * n_max + row) * slots + slot

        # -- command registers ------------------------------------------------------------
        op = Signal(3)
        select = Signal(2)
        n = Signal(range(n_max + 1))
        k = Signal(range(k_max + 1))
        total = Signal(range(columns + 1))
        lam = Signal(signed(w))
        forgetting = Signal(unsigned(w + 1))
        hyperbolic = Signal()
        half = Signal()        # current half of A
        saturated = Signal()
        refused = Signal()
        bad = Signal()
        cycles = Signal(32)
        m.d.comb += [
            self.saturated.eq(saturated),
            self.refused.eq(refused),
            self.bad_command.eq(bad),
        ]
        with m.If(self.busy):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += self.cycles.eq(cycles)

        # loop counters
        row = Signal(range(max(n_max, columns) + 1))
        col = Signal(range(columns + 1))
        rhs = Signal(range(k_max + 1))
        group = Signal(range(slots + 1))
        drain_count = Signal(range(2 * self.apply_latency + 8))
        last_group = Signal(range(slots + 1))

        # -- generator ----------------------------------------------------------------------
        pivot = Signal(signed(w))       # a (scaled)
        lower = Signal(signed(w))       # b
        inverse_mode = Signal()         # p = a*a only (back substitution)
        gen_start = Signal()
        gen_done = Signal()
        rot_r = Signal(signed(w))
        rot_c = Signal(signed(coefficient.width))
        rot_s = Signal(signed(coefficient.width))
        rot_g = Signal(signed(config.rsqrt_format.width))
        rot_shift = Signal(range(2 * w + mantissa_bits + 2))
        rot_refused = Signal()
        rot_saturated = Signal()
        use_cordic = Signal()           # this fold's rotations are CORDIC ones

        reciprocal = ReciprocalUnit(config.mantissa_format, config.rsqrt_format, "rsqrt",
                                    "iterative")
        assert reciprocal.latency == self.reciprocal_latency
        m.submodules.reciprocal = reciprocal
        m.d.comb += reciprocal.o.ready.eq(1)
        p = Signal(signed(2 * w + 2))
        q = Signal(signed(mantissa_bits + 1))
        leading = Signal(signed(8))
        m.d.comb += leading.eq(0)
        for bit in range(2 * w + 1):
            with m.If(p[bit]):
                m.d.comb += leading.eq(bit + 1)
        exponent = Signal(signed(8))  # e = ceil((L - M) / 2)
        m.d.comb += exponent.eq((leading - mantissa_bits + 1) >> 1)
        half_m = (mantissa_bits - 2) // 2
        g_width = config.rsqrt_format.width
        c_product = Signal(signed(w + g_width))
        s_product = Signal(signed(w + g_width))
        r_product = Signal(signed(2 * w + 2 + g_width))
        square = Signal(signed(2 * w))
        split = w + 1
        r_low = Signal(signed(split + g_width + 1))
        r_high = Signal(signed(2 * w + 2 - split + g_width))
        other = Signal(signed(2 * w))
        c_rounded = Signal(signed(w + g_width + 1))
        s_rounded = Signal(signed(w + g_width + 1))
        r_rounded = Signal(signed(2 * w + 3 + g_width))

        if cordic_kind:
            m.submodules.vectoring = vectoring = Cordic(fmt, mode="vectoring")
            m.d.comb += vectoring.o.ready.eq(1)
            directions = Signal(vectoring.directions_layout)

        with m.FSM(name="generator"):
            with m.State("IDLE"):
                with m.If(gen_start):
                    if cordic_kind:
                        with m.If(use_cordic & ~inverse_mode):
                            m.d.comb += [
                                vectoring.i.valid.eq(1),
                                vectoring.i.payload.x.eq(pivot),
                                vectoring.i.payload.y.eq(lower),
                            ]
                            m.next = "CORDIC"
                        with m.Else():
                            m.next = "SQUARE"
                    else:
                        m.next = "SQUARE"
            if cordic_kind:
                with m.State("CORDIC"):
                    with m.If(vectoring.o.valid):
                        m.d.sync += [
                            rot_r.eq(vectoring.o.payload.magnitude),
                            directions.eq(vectoring.o.payload.directions),
                            rot_refused.eq(0),
                            rot_saturated.eq(vectoring.o.payload.saturated),
                        ]
                        m.d.comb += gen_done.eq(1)
                        m.next = "IDLE"
            with m.State("SQUARE"):
                m.d.sync += [square.eq(pivot * pivot), other.eq(lower * lower)]
                m.next = "SUM"
            with m.State("SUM"):
                m.d.sync += p.eq(Mux(inverse_mode, square,
                                     Mux(hyperbolic, square - other, square + other)))
                m.next = "NORMALISE"
            with m.State("NORMALISE"):
                with m.If(p <= 0):
                    m.d.sync += [
                        rot_r.eq(Mux(hyperbolic, pivot, 0)),
                        rot_c.eq(one),
                        rot_s.eq(0),
                        rot_g.eq(0),
                        rot_shift.eq(0),
                        rot_refused.eq(hyperbolic & ~inverse_mode),
                        rot_saturated.eq(0),
                    ]
                    m.d.comb += gen_done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += rot_shift.eq(exponent + half_m)
                    m.next = "SHIFT"
            with m.State("SHIFT"):
                m.d.sync += q.eq(((p << (mantissa_bits - 2)) >> (rot_shift << 1))[
                    : mantissa_bits + 1])
                m.next = "RECIPROCAL"
            with m.State("RECIPROCAL"):
                m.d.comb += [reciprocal.i.valid.eq(1), reciprocal.i.payload.eq(q)]
                with m.If(reciprocal.i.ready):
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(reciprocal.o.valid):
                    m.d.sync += rot_g.eq(reciprocal.o.payload.value)
                    m.next = "PRODUCTS"
            with m.State("PRODUCTS"):
                m.d.sync += [
                    c_product.eq(pivot * rot_g),
                    s_product.eq(lower * rot_g),
                    r_low.eq(p[:split] * rot_g),
                    r_high.eq(p[split:].as_signed() * rot_g),
                ]
                m.next = "PRODUCT_SUM"
            with m.State("PRODUCT_SUM"):
                # p·g in two halves (p is 2w+2 bits wide), summed in their own cycle
                m.d.sync += r_product.eq((r_high << split) + r_low)
                m.next = "ROUND"
            with m.State("ROUND"):
                m.d.sync += [
                    c_rounded.eq(_round_variable(c_product, rot_shift)),
                    s_rounded.eq(_round_variable(s_product, rot_shift)),
                    r_rounded.eq(_round_variable(r_product, rot_shift + w)),
                ]
                m.next = "COEFFICIENTS"
            with m.State("COEFFICIENTS"):
                c_value, c_clip = hwfixed.saturate(c_rounded, coefficient)
                s_value, s_clip = hwfixed.saturate(s_rounded, coefficient)
                r_value, r_clip = hwfixed.saturate(r_rounded, fmt)
                m.d.sync += [
                    rot_c.eq(c_value),
                    rot_s.eq(s_value),
                    rot_r.eq(r_value),
                    rot_refused.eq(hyperbolic & ~inverse_mode & (c_clip | s_clip)),
                    rot_saturated.eq(~inverse_mode & (c_clip | s_clip | r_clip)),
                ]
                m.d.comb += gen_done.eq(1)
                m.next = "IDLE"

        # -- rotation array -----------------------------------------------------------------
        issue_valid = Signal()
        issue_group = Signal(range(slots + 1))
        issue_row = Signal(range(n_max + 1))
        # stage 1: memory data; stage 2: scaled operands; then the units
        stage1_valid = Signal()
        stage1_group = Signal(range(slots + 1))
        product_stage_valid = Signal()
        product_stage_group = Signal(range(slots + 1))
        stage2_valid = Signal()
        stage2_group = Signal(range(slots + 1))
        m.d.sync += [
            stage1_valid.eq(issue_valid),
            stage1_group.eq(issue_group),
            product_stage_valid.eq(stage1_valid),
            product_stage_group.eq(stage1_group),
            stage2_valid.eq(product_stage_valid),
            stage2_group.eq(product_stage_group),
        ]
        upper_scaled = [Signal(signed(w), name=f"upper_scaled_{u}") for u in range(units)]
        lower_in = [Signal(signed(w), name=f"lower_in_{u}") for u in range(units)]
        for u in range(units):
            # stage 1: memory data; product stage: A·b registered; stage 2: rounded
            lower_delayed = Signal(signed(w), name=f"lower_delayed_{u}")
            m.d.sync += [lower_delayed.eq(x_rd[u].data), lower_in[u].eq(lower_delayed)]
            if incremental:
                upper_product = Signal(signed(2 * w + 2), name=f"upper_product_{u}")
                m.d.sync += upper_product.eq(a_rd[u].data * forgetting)
                scaled = hwfixed.round_shift(upper_product, w, "nearest-up")
                m.d.sync += upper_scaled[u].eq(scaled[:w])
            else:
                upper_delayed = Signal(signed(w), name=f"upper_delayed_{u}")
                m.d.sync += [upper_delayed.eq(a_rd[u].data), upper_scaled[u].eq(upper_delayed)]

        def delay(signal, cycles_, name):
            for index in range(cycles_):
                delayed = Signal.like(signal, name=f"{name}_{index}")
                m.d.sync += delayed.eq(signal)
                signal = delayed
            return signal

        multiplier_latency = self.multiplier_apply_latency
        out_upper = [Signal(signed(w), name=f"out_upper_{u}") for u in range(units)]
        out_lower = [Signal(signed(w), name=f"out_lower_{u}") for u in range(units)]
        out_saturated = Signal(units)
        multiplier_results = []
        need_multipliers = not cordic_kind or incremental
        for u in range(units if need_multipliers else 0):
            # four-multiplier unit: products registered, then sum, round, saturate registered
            products = [Signal(signed(coefficient.width + w + 1), name=f"product_{u}_{p_}")
                        for p_ in range(4)]
            m.d.sync += [
                products[0].eq(rot_c * upper_scaled[u]),
                products[1].eq(rot_s * lower_in[u]),
                products[2].eq(rot_c * lower_in[u]),
                products[3].eq(rot_s * upper_scaled[u]),
            ]
            new_upper = Signal(signed(coefficient.width + w + 2), name=f"sum_upper_{u}")
            new_lower = Signal(signed(coefficient.width + w + 2), name=f"sum_lower_{u}")
            m.d.sync += [
                new_upper.eq(Mux(hyperbolic, products[0] - products[1],
                                 products[0] + products[1])),
                new_lower.eq(products[2] - products[3]),
            ]
            up_value, up_clip = hwfixed.saturate(
                hwfixed.round_shift(new_upper, config.coefficient_frac_bits, "nearest-up"), fmt)
            low_value, low_clip = hwfixed.saturate(
                hwfixed.round_shift(new_lower, config.coefficient_frac_bits, "nearest-up"), fmt)
            result_upper = Signal(signed(w), name=f"mul_upper_{u}")
            result_lower = Signal(signed(w), name=f"mul_lower_{u}")
            result_clip = Signal(name=f"mul_saturated_{u}")
            m.d.sync += [result_upper.eq(up_value), result_lower.eq(low_value),
                         result_clip.eq(up_clip | low_clip)]
            multiplier_results.append((result_upper, result_lower, result_clip))

        if cordic_kind:
            cordic_latency = self.apply_latency
            for u in range(units):
                unit = Cordic(fmt, mode="rotation")
                m.submodules[f"rotator{u}"] = unit
                m.d.comb += [
                    unit.o.ready.eq(1),
                    unit.i.valid.eq(stage2_valid & use_cordic),
                    unit.i.payload.x.eq(upper_scaled[u]),
                    unit.i.payload.y.eq(lower_in[u]),
                    unit.i.payload.directions.eq(directions),
                ]
                m.d.comb += [
                    out_upper[u].eq(unit.o.payload.x),
                    out_lower[u].eq(unit.o.payload.y),
                    out_saturated[u].eq(unit.o.payload.saturated),
                ]
                if need_multipliers:
                    mul_upper, mul_lower, mul_clip = multiplier_results[u]
                    with m.If(~use_cordic):
                        m.d.comb += [out_upper[u].eq(mul_upper), out_lower[u].eq(mul_lower),
                                     out_saturated[u].eq(mul_clip)]
            out_valid = delay(stage2_valid, cordic_latency, "cordic_valid")
            out_group = delay(stage2_group, cordic_latency, "cordic_group")
            if need_multipliers:
                out_valid = Mux(use_cordic, out_valid,
                                delay(stage2_valid, multiplier_latency, "mul_valid"))
                out_group = Mux(use_cordic, out_group,
                                delay(stage2_group, multiplier_latency, "mul_group"))
        else:
            for u in range(units):
                mul_upper, mul_lower, mul_clip = multiplier_results[u]
                m.d.comb += [out_upper[u].eq(mul_upper), out_lower[u].eq(mul_lower),
                             out_saturated[u].eq(mul_clip)]
            out_valid = delay(stage2_valid, multiplier_latency, "mul_valid")
            out_group = delay(stage2_group, multiplier_latency, "mul_group")

        # write-back of the array (columns pivot < j < n + k)
        writeback = Signal()
        m.d.comb += writeback.eq(out_valid)
        out_column = [Signal(range(slots * units + 1), name=f"out_column_{u}")
                      for u in range(units)]
        for u in range(units):
            m.d.comb += out_column[u].eq((out_group << shift) | u)

        # -- main sequencer ------------------------------------------------------------------
        acc_bits = 2 * w + max(n_max, 2).bit_length() + 2
        acc = Signal(signed(acc_bits))
        solve_product = Signal(signed(acc_bits + config.rsqrt_format.width + 1))
        solve_rounded = Signal(signed(acc_bits + config.rsqrt_format.width + 2))
        acc_split = acc_bits // 2
        signed_g = Signal(signed(config.rsqrt_format.width + 1))
        solve_low = Signal(signed(acc_split + config.rsqrt_format.width + 2))
        solve_high = Signal(signed(acc_bits - acc_split + config.rsqrt_format.width + 1))
        mac_product = Signal(signed(2 * w))
        product_valid = Signal()
        mac_valid = Signal()
        mac_bank = Signal(range(units))
        read_value = Signal(signed(w))
        read_zero = Signal()
        read_bank = Signal(range(units))
        read_from_w = Signal()

        a_read_data = Signal(signed(w))
        with m.Switch(read_bank):
            for u in range(units):
                with m.Case(u):
                    m.d.comb += a_read_data.eq(a_rd[u].data)
        x_read_data = Signal(signed(w))
        with m.Switch(mac_bank):
            for u in range(units):
                with m.Case(u):
                    m.d.comb += x_read_data.eq(x_rd[u].data)

        # default read addresses: the array's issue
        for u in range(units):
            m.d.comb += [
                a_rd[u].addr.eq(a_address(half, issue_row, issue_group)),
                x_rd[u].addr.eq(issue_group),
            ]
        # default writes: the array's write-back into the other half and the work row
        for u in range(units):
            in_range = (out_column[u] > row) & (out_column[u] < total)
            m.d.comb += [
                a_wr[u].addr.eq(a_address(~half, row, out_group)),
                a_wr[u].data.eq(out_upper[u]),
                a_wr[u].en.eq(writeback & in_range),
                x_wr[u].addr.eq(out_group),
                x_wr[u].data.eq(out_lower[u]),
                x_wr[u].en.eq(writeback & in_range),
            ]
        with m.If(writeback & (out_saturated != 0)):
            m.d.sync += saturated.eq(1)

        def w_address(index_row, index_rhs):
            return index_row * k_max + index_rhs

        ops_available = {Op.RESET, Op.UPDATE, Op.SOLVE, Op.READ}
        if incremental:
            ops_available |= {Op.DOWNDATE, Op.PREDICT, Op.LOAD}

        command = self.command.payload
        with m.FSM(name="sequencer"):
            with m.State("IDLE"):
                m.d.comb += self.command.ready.eq(1)
                with m.If(self.command.valid):
                    size_ok = ((command.n >= 1) & (command.n <= n_max) & (command.k >= 1)
                               & (command.k <= k_max))
                    op_ok = Const(0, 1)
                    for available in ops_available:
                        op_ok = op_ok | (command.op == available)
                    if incremental:
                        # b = round(sqrt(beta)·2**w) must lie in 1 .. 2**w
                        forgetting_ok = ((command.forgetting >= 1)
                                         & (command.forgetting <= (1 << w)))
                        op_ok = op_ok & ((command.op != Op.UPDATE) | forgetting_ok)
                    m.d.sync += [
                        op.eq(command.op),
                        select.eq(command.select),
                        n.eq(command.n),
                        k.eq(command.k),
                        total.eq(command.n + command.k),
                        lam.eq(command.value),
                        forgetting.eq(Mux(command.op == Op.UPDATE, command.forgetting,
                                          1 << w)),
                        hyperbolic.eq(command.op == Op.DOWNDATE),
                        use_cordic.eq(command.op != Op.DOWNDATE),
                        bad.eq(~(size_ok & op_ok)),
                        refused.eq(Mux(command.op == Op.DOWNDATE, 0, refused)),
                        cycles.eq(1),
                        row.eq(0),
                        col.eq(0),
                        rhs.eq(0),
                        group.eq(0),
                    ]
                    with m.If(size_ok & op_ok):
                        m.d.sync += self.busy.eq(1)
                        with m.Switch(command.op):
                            with m.Case(Op.RESET):
                                m.d.sync += [saturated.eq(0), refused.eq(0)]
                                m.next = "RESET"
                            with m.Case(Op.UPDATE, Op.DOWNDATE, Op.PREDICT):
                                m.next = "ROW_IN"
                            with m.Case(Op.SOLVE):
                                m.d.sync += row.eq(command.n - 1)
                                m.next = "SOLVE_PIVOT"
                            with m.Case(Op.READ):
                                m.next = "READ_ADDRESS"
                            if incremental:
                                with m.Case(Op.LOAD):
                                    m.next = "LOAD"

            # RESET: A = lam·I in the current half, W = 0
            with m.State("RESET"):
                for u in range(units):
                    column = (group << shift) | u
                    m.d.comb += [
                        a_wr[u].addr.eq(a_address(half, row, group)),
                        a_wr[u].data.eq(Mux(column == row, lam, 0)),
                        a_wr[u].en.eq(group <= slot_of(total - 1)),
                    ]
                with m.If(rhs < k):
                    m.d.comb += [w_wr.addr.eq(w_address(row, rhs)), w_wr.data.eq(0),
                                 w_wr.en.eq(1)]
                m.d.sync += [group.eq(group + 1), rhs.eq(rhs + 1)]
                last_slot = Mux(slot_of(total - 1) > k - 1, slot_of(total - 1), k - 1)
                with m.If(group == last_slot):
                    m.d.sync += [group.eq(0), rhs.eq(0), row.eq(row + 1)]
                    with m.If(row == n - 1):
                        m.next = "FINISH"

            # a row [h | t] (or h) into the work row
            with m.State("ROW_IN"):
                m.d.comb += self.i.ready.eq(1)
                for u in range(units):
                    m.d.comb += [x_wr[u].addr.eq(slot_of(col)), x_wr[u].data.eq(self.i.payload),
                                 x_wr[u].en.eq(self.i.valid & (bank_of(col) == u))]
                with m.If(self.i.valid):
                    m.d.sync += col.eq(col + 1)
                    with m.If(col == Mux(op == Op.PREDICT, n, total) - 1):
                        m.d.sync += [col.eq(0), row.eq(0)]
                        m.next = "PIVOT_READ"
                        if incremental:
                            with m.If(op == Op.PREDICT):
                                m.next = "PREDICT"

            # fold: pivot i = row
            with m.State("PIVOT_READ"):
                m.d.comb += issue_row.eq(row)
                m.d.comb += issue_group.eq(slot_of(row))
                m.d.sync += read_bank.eq(bank_of(row))
                m.next = "PIVOT_DATA"
            with m.State("PIVOT_DATA"):
                m.d.comb += issue_row.eq(row)
                m.d.comb += issue_group.eq(slot_of(row))
                m.next = "PIVOT_PRODUCT"
            with m.State("PIVOT_PRODUCT"):
                # the product stage, then "upper_scaled" registers the scaled pivot
                m.next = "PIVOT_SCALED"
            with m.State("PIVOT_SCALED"):
                scaled_pivot = Signal(signed(w))
                lower_pivot = Signal(signed(w))
                with m.Switch(read_bank):
                    for u in range(units):
                        with m.Case(u):
                            m.d.comb += [scaled_pivot.eq(upper_scaled[u]),
                                         lower_pivot.eq(lower_in[u])]
                m.d.sync += [pivot.eq(scaled_pivot), lower.eq(lower_pivot), inverse_mode.eq(0)]
                m.next = "GENERATE"
            with m.State("GENERATE"):
                m.d.comb += gen_start.eq(1)
                m.next = "GENERATE_WAIT"
            with m.State("GENERATE_WAIT"):
                with m.If(gen_done):
                    m.next = "PIVOT_WRITE"
            with m.State("PIVOT_WRITE"):
                with m.If(rot_refused):
                    m.d.sync += refused.eq(1)
                    m.next = "FINISH"
                with m.Else():
                    with m.If(rot_saturated):
                        m.d.sync += saturated.eq(1)
                    for u in range(units):
                        m.d.comb += [
                            a_wr[u].addr.eq(a_address(~half, row, slot_of(row))),
                            a_wr[u].data.eq(rot_r),
                            a_wr[u].en.eq(bank_of(row) == u),
                        ]
                    m.d.sync += [group.eq(slot_of(row)), last_group.eq(slot_of(total - 1))]
                    m.next = "APPLY"
            with m.State("APPLY"):
                m.d.comb += [issue_valid.eq(1), issue_row.eq(row), issue_group.eq(group)]
                m.d.sync += group.eq(group + 1)
                with m.If(group == last_group):
                    m.d.sync += drain_count.eq(0)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                # wait until the array has written its last group back
                m.d.sync += drain_count.eq(drain_count + 1)
                drain = 3 + multiplier_latency
                if cordic_kind:
                    drain = Mux(use_cordic, 3 + self.apply_latency, drain)
                with m.If(drain_count == drain - 1):
                    with m.If(row == n - 1):
                        m.d.sync += half.eq(~half)
                        m.next = "FINISH"
                    with m.Else():
                        m.d.sync += row.eq(row + 1)
                        m.next = "PIVOT_READ"

            # back substitution: row = i from n - 1 down to 0
            with m.State("SOLVE_PIVOT"):
                m.d.comb += [issue_row.eq(row), issue_group.eq(slot_of(row))]
                m.d.sync += read_bank.eq(bank_of(row))
                m.next = "SOLVE_PIVOT_DATA"
            with m.State("SOLVE_PIVOT_DATA"):
                m.d.sync += [pivot.eq(a_read_data), lower.eq(0), inverse_mode.eq(1)]
                m.next = "SOLVE_GENERATE"
            with m.State("SOLVE_GENERATE"):
                m.d.comb += gen_start.eq(1)
                m.next = "SOLVE_GENERATE_WAIT"
            with m.State("SOLVE_GENERATE_WAIT"):
                with m.If(gen_done):
                    m.d.sync += rhs.eq(0)
                    m.next = "SOLVE_Z"
            with m.State("SOLVE_Z"):
                z_column = n + rhs
                m.d.comb += [issue_row.eq(row), issue_group.eq(slot_of(z_column))]
                m.d.sync += [read_bank.eq(bank_of(z_column)), col.eq(row + 1)]
                m.next = "SOLVE_Z_DATA"
            with m.State("SOLVE_Z_DATA"):
                m.d.sync += acc.eq(a_read_data << f)
                m.d.sync += [mac_valid.eq(0), product_valid.eq(0),
                             signed_g.eq(Mux(pivot < 0, -rot_g, rot_g))]
                m.next = "SOLVE_MAC"
            with m.State("SOLVE_MAC"):
                # issue R[i, col] and W[col, rhs]; accumulate the previous issue
                issuing = col < n
                m.d.comb += [
                    issue_row.eq(row),
                    issue_group.eq(slot_of(col)),
                    w_rd.addr.eq(w_address(col, rhs)),
                ]
                m.d.sync += [mac_valid.eq(issuing), read_bank.eq(bank_of(col)),
                             product_valid.eq(mac_valid),
                             mac_product.eq(a_read_data * w_rd.data)]
                with m.If(issuing):
                    m.d.sync += col.eq(col + 1)
                with m.If(product_valid):
                    m.d.sync += acc.eq(acc - mac_product)
                with m.If(~issuing & ~mac_valid & ~product_valid):
                    m.next = "SOLVE_PRODUCT"
            with m.State("SOLVE_PRODUCT"):
                m.d.sync += [
                    solve_low.eq(acc[:acc_split] * signed_g),
                    solve_high.eq(acc[acc_split:].as_signed() * signed_g),
                ]
                m.next = "SOLVE_SUM"
            with m.State("SOLVE_SUM"):
                m.d.sync += solve_product.eq((solve_high << acc_split) + solve_low)
                m.next = "SOLVE_ROUND"
            with m.State("SOLVE_ROUND"):
                m.d.sync += solve_rounded.eq(_round_variable(solve_product, rot_shift + w))
                m.next = "SOLVE_WRITE"
            with m.State("SOLVE_WRITE"):
                value, clip = hwfixed.saturate(solve_rounded, fmt)
                zero_pivot = pivot == 0
                m.d.comb += [w_wr.addr.eq(w_address(row, rhs)),
                             w_wr.data.eq(Mux(zero_pivot, 0, value)), w_wr.en.eq(1)]
                with m.If(clip | zero_pivot):
                    m.d.sync += saturated.eq(1)
                m.d.sync += rhs.eq(rhs + 1)
                with m.If(rhs == k - 1):
                    with m.If(row == 0):
                        m.next = "FINISH"
                    with m.Else():
                        m.d.sync += row.eq(row - 1)
                        m.next = "SOLVE_PIVOT"
                with m.Else():
                    m.next = "SOLVE_Z"

            if incremental:
                # predict: y[rhs] = sum_j x[j] W[j, rhs]
                with m.State("PREDICT"):
                    m.d.sync += [acc.eq(0), col.eq(0), mac_valid.eq(0), product_valid.eq(0)]
                    m.next = "PREDICT_MAC"
                with m.State("PREDICT_MAC"):
                    issuing = col < n
                    m.d.comb += [issue_group.eq(slot_of(col)),
                                 w_rd.addr.eq(w_address(col, rhs))]
                    m.d.sync += [mac_valid.eq(issuing), mac_bank.eq(bank_of(col)),
                                 product_valid.eq(mac_valid),
                                 mac_product.eq(x_read_data * w_rd.data)]
                    with m.If(issuing):
                        m.d.sync += col.eq(col + 1)
                    with m.If(product_valid):
                        m.d.sync += acc.eq(acc + mac_product)
                    with m.If(~issuing & ~mac_valid & ~product_valid):
                        m.next = "PREDICT_OUT"
                with m.State("PREDICT_OUT"):
                    value, clip = hwfixed.saturate(hwfixed.round_shift(acc, f, "nearest-up"),
                                                   fmt)
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.value.eq(value),
                                 self.o.payload.last.eq(rhs == k - 1)]
                    with m.If(self.o.ready):
                        with m.If(clip):
                            m.d.sync += saturated.eq(1)
                        m.d.sync += [rhs.eq(rhs + 1), acc.eq(0), col.eq(0)]
                        with m.If(rhs == k - 1):
                            m.next = "FINISH"
                        with m.Else():
                            m.next = "PREDICT_MAC"

            # READ / LOAD walk: row over n, col over n (R) or k (Z, W)
            walk_cols = Mux(select == Select.R, n, k)
            a_column = Mux(select == Select.R, col, n + col)
            walk_last = (row == n - 1) & (col == walk_cols - 1)

            def walk_next():
                with m.If(col == walk_cols - 1):
                    m.d.sync += [col.eq(0), row.eq(row + 1)]
                with m.Else():
                    m.d.sync += col.eq(col + 1)

            with m.State("READ_ADDRESS"):
                m.d.comb += [issue_row.eq(row), issue_group.eq(slot_of(a_column)),
                             w_rd.addr.eq(w_address(row, col))]
                m.d.sync += [read_bank.eq(bank_of(a_column)), read_from_w.eq(select == Select.W),
                             read_zero.eq((select == Select.R) & (col < row))]
                m.next = "READ_DATA"
            with m.State("READ_DATA"):
                m.d.sync += read_value.eq(Mux(read_zero, 0,
                                              Mux(read_from_w, w_rd.data, a_read_data)))
                m.next = "READ_OUT"
            with m.State("READ_OUT"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.value.eq(read_value),
                             self.o.payload.last.eq(walk_last)]
                with m.If(self.o.ready):
                    walk_next()
                    with m.If(walk_last):
                        m.next = "FINISH"
                    with m.Else():
                        m.next = "READ_ADDRESS"

            if incremental:
                with m.State("LOAD"):
                    m.d.comb += self.i.ready.eq(1)
                    with m.If(self.i.valid):
                        to_w = select == Select.W
                        keep = ~((select == Select.R) & (col < row))
                        m.d.comb += [w_wr.addr.eq(w_address(row, col)),
                                     w_wr.data.eq(self.i.payload),
                                     w_wr.en.eq(to_w)]
                        for u in range(units):
                            m.d.comb += [
                                a_wr[u].addr.eq(a_address(half, row, slot_of(a_column))),
                                a_wr[u].data.eq(self.i.payload),
                                a_wr[u].en.eq(~to_w & keep & (bank_of(a_column) == u)),
                            ]
                        walk_next()
                        with m.If(walk_last):
                            m.next = "FINISH"

            with m.State("FINISH"):
                m.d.sync += self.busy.eq(0)
                m.next = "IDLE"
        return m


class QRSolver(IncrementalUpdater):
    """Givens QR least-squares core: RESET to ``R = √λ·I``, stream rows in with UPDATE (``β``
    is ignored: no forgetting hardware), SOLVE, READ ``W`` (or ``R``, ``Z``).

    The same datapath as :class:`IncrementalUpdater` without forgetting multipliers,
    hyperbolic rotations (DOWNDATE), PREDICT and LOAD (those ops set ``bad_command``).
    Parameters, members and timing are those of :class:`IncrementalUpdater`.
    """

    incremental = False


def _build_updater(fmt, n_max=8, k_max=2, units=2, rotation="cordic"):
    return IncrementalUpdater(n_max, k_max, fmt, units=units, rotation=rotation)


def _build_qr(fmt, n_max=8, k_max=2, units=2, rotation="cordic"):
    return QRSolver(n_max, k_max, fmt, units=units, rotation=rotation)


_PARAMETERS = (
    registry.Parameter("n_max", int, 8, "largest n (columns of H)"),
    registry.Parameter("k_max", int, 2, "largest k (columns of T)"),
    registry.Parameter("units", int, 2, "rotation units (power of two)"),
    registry.Parameter("rotation", str, "cordic", "rotation kind", choices=("cordic",
                                                                             "multiplier")),
)

registry.register(registry.UnitSpec(
    name="qr",
    summary="Givens QR least-squares core (R, Z on chip, back substitution), ridge via √λ·I",
    build=_build_qr,
    parameters=_PARAMETERS,
))

registry.register(registry.UnitSpec(
    name="updater",
    summary="incremental QR: update with forgetting, downdate (refusal), predict, load/read",
    build=_build_updater,
    parameters=_PARAMETERS,
))

