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
The updater with multiplier rotations and FOLD has a third region, the *spare*: a FOLD of
downdates writes the other half and the spare in turn (row ``r`` the other half when ``r``
and ``m - 1`` have the same parity, so the last row does) and never the current half, so a
refused one leaves ``R``, ``Z`` untouched too.

The generator of pivot ``i + 1`` runs while the array applies pivot ``i``: its operands are
``A[i + 1, i + 1]``, which pivot ``i`` does not touch (it writes the other half of ``A``) and
which is read as pivot ``i``'s rotation is written, and ``x[i + 1]``, taken straight from the
array's output with pivot ``i``'s first group (its second when column ``i + 1`` starts a group)
as it is written back. The new coefficients reach the units, and ``r`` is written, once the
array has written pivot ``i``'s last group back. So a pivot takes the longer of the rotation
chain (the array's latency, then the generator) and the array's groups, plus the array's
drain; an UPDATE takes (:meth:`IncrementalUpdater.update_cycles`, checked exactly against
simulation and Verilator)::

    3 + (n + k) + L + sum_{i<n-1} (D + 2 + max(G + δ_i, groups_i))
      + 1 + groups_{n-1} + D + 1,        L = 5 + S + G

with ``S`` the forgetting scale's latency (updater :attr:`~IncrementalUpdater.scale_latency`,
QR solver 0; ``L`` is the first pivot's read and generation), ``G`` the generator latency
(CORDIC ``iterations + 4``; multiplier ``reciprocal latency + L_sq + L_p + 8``),
``D = 5 + S + unit latency`` the array's read-to-write-back latency (unit: CORDIC
``iterations + 4``, multiplier :attr:`~IncrementalUpdater.multiplier_apply_latency`),
``groups_i`` the groups of ``units`` columns from the pivot's to the last, and ``δ_i = 1``
when column ``i + 1`` starts a group. For the updater in Q6.12: ``S = 3``, ``G = 22``
(CORDIC) or 34 (multiplier), ``D = 30`` (CORDIC) or 12 (multiplier). The latencies dominate:
one row keeps the units 1-58 % busy (rotations ÷ (units × cycles)); before the overlap (a
pivot took ``6 + S + G + groups_i + D``) 1-38 %.

FOLD: the rows in flight together
---------------------------------
FOLD takes ``m`` rows (the command's ``value``) and folds them in a static skewed schedule
(:meth:`IncrementalUpdater.fold_plan`), in the updater with the command's forgetting constant
(``b = 2**w``: none). Pivot ``i`` of a row is a *task* of
``groups_i = ceil((n + k - i) / units)`` cycles on the array: unit ``v`` takes column
``i + v`` (then ``+ units`` per group), so the banks are seen rotated by ``i mod units`` and
no unit idles in a task's first group. Period ``p`` runs the tasks of rows ``p - s·i`` back
to back, for the pivots ``i`` whose row exists (all ``n`` once the first rows are deep enough
and until the last row is in: ``P = max(W, P_min)`` cycles a period, ``W = sum_i groups_i``;
while the schedule fills and drains, fewer: see the periods' lengths below). The generator
runs the same task sequence
:attr:`~IncrementalUpdater.fold_lead` cycles ahead of the array and must take a pair every
cycle: the CORDIC vectoring unit is pipelined; for multiplier rotations a pipeline of its own
(squares, sum, leading one, normaliser, pipelined reciprocal square root, ``a·g``, ``b·g``,
``p·g``, roundings and clips) computes what the sequencer's generator computes. Its operands
are ``r_i`` (a register file of the pivots, loaded from ``A`` when FOLD starts, written by
every task's rotation) and the row's ``x[i]`` (a register file per row slot, captured from the
write-back of the row's task ``i - 1``; pivot 0 reads the input buffer). Each task's
directions, or ``c`` and ``s``, reach the units with the task's first group and hold through
its groups. The dependencies set the constants: a row's task ``i`` comes ``s`` periods after
its task ``i - 1`` (``s·P >=`` lead + array latency - 1: ``x[i]`` is captured by then), and
one period after the previous row's task ``i`` (``P >= D``: ``A[i, :]`` is written back;
``P >= G + 2``: ``r_i`` too). A row lives in one of
:attr:`~IncrementalUpdater.fold_row_slots` slots of the work-row memory from its task 0 to its
task ``n - 1``; rows arrive through a two-row input buffer, and a period waits for its row.
Each task reads the half of ``A`` the previous row's task wrote, so after ``m`` rows the
current half has flipped ``m`` times (a FOLD of downdates: once, or not at all if refused; see
:attr:`IncrementalUpdater.fold_downdates`). The integers are those of ``m`` UPDATEs with the same
forgetting constant: every ``A[i, :]`` sees the rows in order and every row sees the pivots
in order. Forgetting needs nothing new in the array: UPDATE already scales ``A[i, i:]`` by
``√β`` as pivot ``i`` reads it, and since row ``i`` of ``A`` changes only at pivot ``i``,
scaling it when the next row reaches pivot ``i`` is scaling all of ``A`` before that row.
The generator's ``r_i`` must be scaled the same way, so with forgetting the register file
of the pivots takes ``round(r·b / 2**w)`` (:attr:`~IncrementalUpdater.scale_latency` cycles
later, the array's rounding): ``P >= G + 2 + S``
(:attr:`~IncrementalUpdater.fold_min_period_forgetting`; it binds only where the multiplier
generator's loop sets the period, 38 cycles instead of 35 in Q6.12), and the schedule starts
``S`` cycles later.

The periods' lengths follow from these dependencies alone, so a period is no longer than they
and its own tasks need: a period runs its tasks ``lo .. hi`` (the pivots whose rows exist)
and lasts ``max(its groups, P_min' + δ)``, where ``P_min' = max(P_min, ceil(X / s))`` keeps
pivot ``i`` of a row ``P_min`` after the previous row's and ``s`` periods long enough for the
skew ``X``, and ``δ`` is the first task's groups when the next period starts one pivot later
(its tasks then begin that much earlier against this period's); the last period lasts its
groups. In the steady state that is ``P``; a FOLD of few rows no longer pays ``s·(n - 1)``
full periods of fill and drain (before 2026-11-27 every period lasted ``P``, its missing
tasks bubbles): 10 rows at n = 64, one unit, 21,712 cycles instead of 156,623 (multiplier
rotations, Q6.12), and a FOLD takes fewer cycles than one UPDATE a row from 1 or 2 rows at
every size of ``bench update`` (it was from up to 89 rows).
:meth:`IncrementalUpdater.fold_cycles` counts the cycles exactly (checked against simulation
and Verilator). Steady state: ``P`` cycles per row, utilisation ``rotations / (units · P)``,
100 % with one unit, 86-98 % with 2 or 4 units for ``n >= 16``; with ``units = n`` a task is
one or two groups and ``P`` is bound by ``P_min`` or by the row's ``n + k`` values, which
come in at one a cycle (``P >= n + k`` at any size: with ``units = n`` at most
``(n(n+1)/2 + nk) / (n(n + k))``, about 50-59 %), 27-53 % at n = 16-64.

Timing (ECP5 at 100 MHz)
------------------------
Every memory read is registered before any logic (block RAM clock-to-out is about 6 ns on
ECP5-85F speed 6); every product wider than ``MULTIPLIER_WIDTH`` x ``MULTIPLIER_WIDTH``
bits is split into registered partial products that fit one DSP and summed pairwise, one
registered level per cycle (:func:`product_latency`); variable-shift roundings take two cycles
(shift, then add); the read addresses and the writes into ``A`` are registered once
(ECP5 block RAM ports have no collision guarantee, so Yosys adds bypass logic that must start
from flip-flops); addresses are bit fields (the
memories are padded to powers of two: ``2 · 2**ceil(log2 n_max) · 2**ceil(log2 slots)`` words
per bank, three times that with the FOLD of downdates' spare region, ``slots = ceil((n_max +
k_max) / units)``), so no adder or multiplier sits in front
of a memory port. The CORDIC vectoring unit takes its operands from registers of its own and its
start from a registered pulse, both loaded in the cycle before the generator starts (no cycle
added), so that no decode of the sequencer's state reaches the unit's pre-rotation (a negation).
A command's fields, and its checks as one bit, are registered as it is taken; the next cycle
(``CHECK``, one cycle per command) acts on them, so neither a range comparison nor the
decision's fan-out sits between the command port and the sequencer.

No wide state decode sits on a long path (the sequencer has about 40 states, which Yosys
encodes one-hot: :func:`~tiersolve.gen.hwfixed.one_hot_state`; ``CHECK`` picks the next state
with an ``If`` chain, because Yosys turns a ``Switch`` that assigns a constant state for every
op into a ROM, and its fsm pass cannot follow a ROM: the sequencer of the updater with FOLD,
whose switch covered all eight ops, stayed binary until d33c17e):

* the two state machines hand over through flip-flops only (the generator's start is a pulse
  the sequencer registers a cycle early; its "done" is the OR of a "last cycle next" flag the
  generator registers a cycle early and the CORDIC unit's registered valid);
* the command registers, and those derived from them in ``CHECK`` (the forgetting constant,
  the rotation kind, the loop bounds), load under enables that are flip-flops (``~busy`` is
  IDLE, the registered transfer is CHECK), not under a decode of the state;
* every rotation unit gets its own copy of the coefficients ``c``, ``s`` (or the CORDIC
  directions) and of the forgetting constant, loaded as a chain of registers so that Yosys
  does not merge the copies back into one register that fans out across the chip; the copies
  settle before the first operands (at least a cycle to spare); during a FOLD with multiplier
  rotations every copy loads FOLD's ``c``, ``s`` from the generator instead;
* the generator's products (``a²``, ``b²``, ``a·g``, ``b·g``, ``p·g``) and the back
  substitution's ``acc·g`` take their operands other than ``g`` through registers of their
  own beside the multipliers, in cycles the schedule already waited;
* the clip tests of ``r`` and of the back substitution's result (values about ``2w + 20``
  bits wide) are bit tests of the shifted value, made beside the rounding's adder and
  registered with it, so the saturating cycle after it is a multiplexer only.

None of this adds a cycle: the cycle counts below, and :mod:`tiersolve.gen.qr_model`'s, are
unchanged. Out of context on ECP5-85F speed 6 (``synthesize(IncrementalUpdater(16, 2, "Q6.12",
units=4, rotation=R), target="ecp5-85f", seed=S)``, with FOLD, after its shortened fill and
drain): CORDIC rotations 106.8 / 103.4 / 102.5 MHz with seeds 1 / 2 / 3 (worst path a rotation
unit's gain compensation); multiplier rotations 108.1 / 112.9 / 109.3 MHz (a work-row or input
buffer read into its data register). Before (0ea5c26, 6fa0cef): 105.2 / 103.4 / 105.1 and
113.4 / 109.8 / 115.6 MHz. With the
sequencer binary (36bbc4e) the CORDIC core ran at 86.6-97.5 MHz, its worst paths the state
decode into the memories' registered addresses and enables. The README's synthesis table
has the history.

Command port
------------
``command`` payload: ``op`` (:class:`Op`), ``select`` (:class:`Select`: which matrix READ and
LOAD move), ``n``, ``k`` (runtime sizes, ``1 <= n <= n_max``, ``1 <= k <= k_max``, else
``bad_command``), ``value`` (``√λ`` for RESET, stored integer of ``fmt``), ``forgetting``
(``b = round(√β·2**w)``, ``1 .. 2**w``, for UPDATE and FOLD; ``2**w`` means ``β = 1``;
another value is a ``bad_command`` of the IncrementalUpdater, and ignored by the QRSolver).

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
FOLD       ``m`` rows ``[h | t]``       fold ``m = value`` rows in, each after scaling by
                                        ``√β`` as UPDATE (updater; the QR solver ignores
                                        ``forgetting``), rows in flight together (see
                                        above); ``value < 1``, a forgetting constant out of
                                        range, or a core built with ``fold=False``:
                                        ``bad_command``. ``select`` =
                                        ``FoldKind.DOWNDATE`` (updater, multiplier
                                        rotations): take the ``m`` rows out, all or none
                                        (``refused``; ``R``, ``Z`` unchanged)
=========  ===========================  =================================================
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import hwfixed, registry
from .checks import silent_if_refused
from .cordic import Cordic
from .fixed import FixedFormat, product_latency
from .hwfixed import clip_width
from .qr_model import QRConfig
from .qr_ops import FoldKind, Op, Select
from .recip import ReciprocalUnit

__all__ = ["MAX_K", "MAX_N", "FoldKind", "Op", "Select", "IncrementalUpdater", "QRSolver",
           "command_layout"]

#: Largest ``n_max`` and ``k_max`` of the QR cores (those of the Cholesky core).
MAX_N, MAX_K = 1024, 256


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


def port_members(n_max: int, k_max: int, fmt: FixedFormat) -> dict:
    """The ports of the QR cores: ``command``, ``i``, ``o``, ``busy``, ``refused``,
    ``saturated``, ``bad_command``, ``cycles``."""
    w = fmt.width
    return {
        "command": In(stream.Signature(command_layout(n_max, k_max, fmt))),
        "i": In(stream.Signature(signed(w))),
        "o": Out(stream.Signature(data.StructLayout({"value": signed(w), "last": 1}))),
        "busy": Out(1),
        "refused": Out(1),
        "saturated": Out(1),
        "bad_command": Out(1),
        "cycles": Out(32),
    }


def _round_shift_first(value, shift_minus_one):
    """First cycle of ``round_nearest_up(value, shift)`` for a variable ``shift``, given the
    registered ``shift - 1``: ``value >> (shift - 1)`` (meaningless for ``shift = 0``; see
    :func:`_round_shift_second`)."""
    return value >> shift_minus_one


def _round_shift_second(value, shifted, shift_is_zero=None):
    """Second cycle: for ``shift >= 1``, ``(shifted + 1) >> 1`` equals
    ``(value + 2**(shift-1)) >> shift``; ``shift = 0`` (``shift_is_zero``; None where the shift
    is never 0) keeps ``value``."""
    rounded = (shifted + 1) >> 1
    return rounded if shift_is_zero is None else Mux(shift_is_zero, value, rounded)


def _round_shift_clips(value, shifted, width: int, shift_is_zero):
    """Whether :func:`_round_shift_second`'s result (``value`` itself where ``shift_is_zero``)
    does not fit ``width`` signed bits, formed beside it from the same operands
    (:func:`_rounded_clips`, or the kept value's bit test)."""
    return Mux(shift_is_zero, clip_width(value, width)[1], _rounded_clips(shifted, width))


def _leading_one(m, p, name: str) -> Signal:
    """The normaliser's ``L`` for ``p`` (signed, ``2w + 2`` bits): one more than the index of
    the highest set bit below the sign, 0 when there is none (combinational).

    That is the index of the highest set bit of ``Cat(1, p[:-1])``, found by a balanced tree
    without adders: a range of bits splits into a lower part of ``2**k`` bits and an upper
    part of at most as many; the index is ``Cat(upper index, 1)`` when the upper part has a
    set bit, else ``Cat(lower index, 0)``. About ``log2(2w + 2)`` multiplexer levels where a
    priority chain over the bits was one level per bit (it was on a worst path)."""
    bits = [Const(1, 1)] + [p[bit] for bit in range(len(p) - 1)]

    def encode(part):
        # (any bit set, index of the highest set bit: ceil(log2(len(part))) bits)
        if len(part) == 1:
            return part[0], None
        size = 1 << ((len(part) - 1).bit_length() - 1)      # the lower part: 2**k bits
        any_low, index_low = encode(part[:size])
        any_high, index_high = encode(part[size:])
        k = size.bit_length() - 1
        low = Const(0, k) if index_low is None else index_low
        high = Const(0, k) if index_high is None else index_high.as_unsigned()
        high = Cat(high, Const(0, k - len(high)))
        return any_low | any_high, Mux(any_high, Cat(high, 1), Cat(low, 0))

    _, index = encode(bits)
    leading_one = Signal(signed(8), name=name)
    m.d.comb += leading_one.eq(index)
    return leading_one


def _normaliser_exponent(leading, mantissa_bits: int):
    """The exponent ``e = ceil((L - M) / 2) = (L - M + 1) >> 1`` of the normaliser's ``L``
    (one adder: the constants are summed here, not in the netlist)."""
    return (leading + (1 - mantissa_bits)) >> 1


def _normaliser_shifts(exponent, mantissa_bits: int, w: int) -> tuple:
    """``(S, S - 1, S + w - 1)`` for the exponent ``e`` (see
    :func:`~tiersolve.gen.qr_model.inverse_square_root`: ``S = e + (M - 2) / 2``): the shift,
    and the offsets the two-cycle roundings of ``c``, ``s`` and of ``r`` take. Each is one
    adder of ``e`` and a constant (Yosys does not merge chained constant additions: written
    as ``e + M/2 - 1 + w - 1`` they were up to three carry chains after ``e``'s, a worst path
    of the multiplier updater)."""
    half_m = (mantissa_bits - 2) // 2
    return exponent + half_m, exponent + (half_m - 1), exponent + (half_m + w - 1)


def _mantissa(p, shift, mantissa_bits: int):
    """``q = p >> 2e`` with ``M - 1`` or ``M`` bits, from ``S`` (:func:`_normaliser_shifts`)."""
    return ((p << (mantissa_bits - 2)) >> (shift << 1))[: mantissa_bits + 1]


def _spread_copies(m, source, count: int, max_depth: int, name: str, hold=None) -> list:
    """``count`` registered copies of ``source``, one per far-apart consumer (a rotation unit's
    multipliers), loaded as a chain: copy 0 from ``source``, copy ``u`` from copy ``u - 1``.
    Yosys merges flip-flops that have the same input into one ("keep" on the signal or not),
    so copies loaded side by side from one register would end up as one register fanning out
    across the chip; copies loaded from one another stay apart, each placed beside its
    consumer.

    Copy ``u`` follows ``source`` ``1 + min(u, max_depth)`` cycles later: copies past
    ``max_depth`` all load from copy ``max_depth - 1`` (so Yosys merges them into one), and no
    copy lags ``source`` by more than ``1 + max_depth`` cycles.

    ``hold = (mode, load, value)``: while ``mode`` is high every copy leaves the chain and
    loads ``value`` when ``load`` is high (all copies at once, holding it otherwise); they
    still differ in what they load otherwise, so Yosys keeps them apart. When ``mode`` falls
    the chain refills from ``source`` within ``1 + max_depth`` cycles.
    """
    copies = []
    for u in range(count):
        parent = min(u, max_depth) - 1     # -1: from the source
        copy = Signal.like(source, name=f"{name}_{u}")
        follow = copy.eq(source if parent < 0 else copies[parent])
        if hold is None:
            m.d.sync += follow
        else:
            mode, load, value = hold
            with m.If(~mode):
                m.d.sync += follow
            with m.Elif(load):
                m.d.sync += copy.eq(value)
        copies.append(copy)
    return copies


def _scale_by_forgetting(m, value, forgetting, scaled, name: str) -> None:
    """``scaled`` (``w`` bits) takes ``round(value·b / 2**w)`` (half up; ``b`` =
    ``forgetting`` <= ``2**w``, so it fits), registered
    :attr:`~IncrementalUpdater.scale_latency` cycles after ``value``: the forgetting scale,
    rounded as the model's :func:`~tiersolve.gen.qr_model.scale_row` rounds it (the array's
    reads of ``A`` and FOLD's pivots must round alike)."""
    w = len(scaled)
    product = hwfixed.pipelined_product(m, value, forgetting, name)
    m.d.sync += scaled.eq(((product + (1 << (w - 1))) >> w)[:w])


def _rounded_clips(shifted, width: int):
    """Whether :func:`_round_shift_second`'s ``(shifted + 1) >> 1`` does *not* fit ``width``
    signed bits, from ``shifted`` alone (bit tests, formed beside the rounding's adder and
    registered with it, so that no wide reduction follows the rounded value's register).

    The rounded value fits when ``floor((shifted + 1) / 2**width)`` is 0 or -1. That is
    ``H + carry`` with ``H = shifted >> width`` and ``carry`` = the low ``width`` bits all ones:
    without the carry ``H`` must be 0 or -1 (its bits all equal), with it -1 or -2 (its bits
    above the lowest all ones). Same flag as :func:`~tiersolve.gen.hwfixed.clip_width` on the
    rounded value.
    """
    shifted = Value.cast(shifted)
    assert len(shifted) >= width + 2
    high = shifted[width:]
    carry = shifted[:width].all()
    fits = Mux(carry, shifted[width + 1:].all(), high.all() | ~high.any())
    return ~fits


class IncrementalUpdater(wiring.Component):
    """Givens QR least-squares core with update, downdate, predict, solve, read and load.

    Parameters
    ----------
    n_max, k_max : int
        Largest ``n`` (columns of ``H``, 1..1024: :data:`MAX_N`) and ``k`` (columns of ``T``,
        1..256: :data:`MAX_K`).
    fmt : FixedFormat or str
        Data format (8 to 28 bits; see :mod:`tiersolve.gen.qr_model`).
    units : int
        Rotation units in the linear array: a power of two, 1 to 64.
    rotation : str
        ``"cordic"`` or ``"multiplier"``. Downdates always use multiplier units (hyperbolic).
    fold : bool
        Build the FOLD command (rows in flight together; default). False leaves out its
        generator pipeline (multiplier rotations), register files, input buffer and work-row
        slots, for a smaller core; FOLD is then a ``bad_command``.

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
        The last DOWNDATE, or FOLD of downdates, was refused (would lose positive
        definiteness).
    saturated : ``Out(1)``
        Sticky since RESET: a value was clipped.
    bad_command : ``Out(1)``
        The last command had ``n`` or ``k`` out of range, an op this core lacks, (updater,
        UPDATE, FOLD) a forgetting constant outside ``1 .. 2**w``, a FOLD of fewer than one
        row, a FOLD with a ``select`` (:class:`~tiersolve.gen.qr_ops.FoldKind`) the core lacks,
        or a FOLD of downdates with a forgetting constant other than ``2**w``. Decided in the
        cycle after the transfer: low, with ``busy`` high, in that cycle; final when ``busy``
        falls (a refused command keeps ``busy`` high for that one cycle only).
    cycles : ``Out(32)``
        Cycles the last command took (from its transfer to idle).

    Attributes
    ----------
    config : QRConfig
    apply_latency : int
        Latency of a rotation unit: CORDIC ``iterations + 4``
        (:meth:`Cordic.latency_of <tiersolve.gen.cordic.Cordic.latency_of>`), else
        :attr:`multiplier_apply_latency`.
    multiplier_apply_latency : int
        Latency of a four-multiplier unit: :func:`product_latency` ``(w + 4, w)`` (partial
        products and their sum) + 2 (pair sums with the rounding half; shift and saturation).
    scale_latency : int
        Cycles of the forgetting scale after the registered memory data (updater:
        :func:`product_latency` ``(w, w + 2)`` + 1 for the rounding; QR solver: 0).
    square_latency, coefficient_product_latency : int
        Latencies of the generator's products ``a²``, ``b²`` and ``a·g``, ``b·g``, ``p·g``.
    folds : bool
        The FOLD command is built (``fold``).
    fold_downdates : bool
        FOLD takes rows out too (``select`` = :attr:`FoldKind.DOWNDATE
        <tiersolve.gen.qr_ops.FoldKind.DOWNDATE>`): the updater with multiplier rotations and
        FOLD. The integers of one DOWNDATE per row, all or nothing: if a row would be refused,
        ``refused`` is set and ``R``, ``Z``, ``W`` and ``saturated`` are as before the command
        (``A`` has a third region, the spare, which the FOLD writes in turn with the other
        half, never the current one). It takes :meth:`fold_cycles` (without forgetting),
        refused or not. (A CORDIC updater's FOLD, whose generator is the circular vectoring
        unit, and the QR solver's take ``select`` = UPDATE only: another is a
        ``bad_command``.)

    Timing
    ------
    Commands are taken only while idle (``busy`` low). The command's checks (sizes, op,
    forgetting constant) are registered into one bit as it is taken; the next cycle acts on
    that bit: the command runs, or the core returns to idle with ``bad_command`` set
    (``cycles`` = 2). An UPDATE takes :meth:`update_cycles` cycles; ``cycles`` reports what
    each command took.
    """

    incremental = True

    @silent_if_refused
    def __init__(self, n_max: int, k_max: int, fmt, units: int = 1, rotation: str = "cordic",
                 fold: bool = True):
        for name, value in (("n_max", n_max), ("k_max", k_max), ("units", units)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, not {value!r}")
        n_max, k_max, units = int(n_max), int(k_max), int(units)
        if not (1 <= n_max <= MAX_N and 1 <= k_max <= MAX_K):
            raise ValueError(f"n_max must be from 1 to {MAX_N} and k_max from 1 to {MAX_K} "
                             f"(the Cholesky core's limits), not {n_max}, {k_max}")
        if units < 1 or units > 64 or units & (units - 1):
            raise ValueError(f"units must be a power of two from 1 to 64, not {units}")
        self.config = QRConfig(fmt, rotation)
        self.fmt = self.config.fmt
        self.n_max, self.k_max, self.units, self.rotation = n_max, k_max, units, rotation
        w = self.fmt.width
        # ReciprocalUnit's latency: output width + 1 (the unit is built in elaborate)
        self.reciprocal_latency = self.config.rsqrt_format.width + 1
        coefficient_width = self.config.coefficient_format.width
        g_width = self.config.rsqrt_format.width
        # forgetting: A·b (b unsigned, w + 1 bits) in partial products, then the rounding
        self.scale_latency = product_latency(w, w + 2) + 1 if self.incremental else 0
        # multiplier unit: c·A, s·x, c·x, s·A, then the pair sums (rounding half included),
        # then the shift and saturation
        self.multiplier_apply_latency = product_latency(coefficient_width, w) + 2
        self.apply_latency = (Cordic.latency_of(self.config.cordic) if rotation == "cordic"
                              else self.multiplier_apply_latency)
        self.square_latency = product_latency(w, w)
        self.coefficient_product_latency = max(product_latency(w, g_width),
                                               product_latency(2 * w + 2, g_width))
        if not isinstance(fold, bool):
            raise TypeError(f"fold must be a bool, not {fold!r}")
        # FOLD (rows in flight together) needs a pipelined generator: the CORDIC vectoring
        # unit, or (multiplier rotations) a pipeline of its own (elaborate)
        self.folds = fold
        #: FOLD takes rows out too (``select`` = FoldKind.DOWNDATE): the updater with
        #: multiplier rotations, whose FOLD generator can make hyperbolic rotations (the
        #: CORDIC updater's FOLD generator is its circular vectoring unit)
        self.fold_downdates = fold and self.incremental and rotation == "multiplier"
        if self.folds:
            operand_delay = 4 + self.scale_latency
            #: cycles from the generator's registered operands to its registered rotation
            self.fold_generator_latency = (
                self.generator_cycles() if rotation == "cordic"
                else self.square_latency + self.reciprocal_latency
                + self.coefficient_product_latency + 7)
            generate, drain = self.fold_generator_latency, self.array_cycles()
            #: cycles from a task's generator start to its first group's issue
            self.fold_lead = 2 + generate - operand_delay
            #: shortest period: A's row read again after its write-back, r fed back
            self.fold_min_period = max(drain, generate + 2)
            #: shortest period of a FOLD with forgetting: r_i is scaled by sqrt(beta) on its
            #: way into the pivots' register file (scale_latency more cycles in r's loop)
            self.fold_min_period_forgetting = max(drain, generate + 2 + self.scale_latency)
            #: skew: s·P must cover a task's lead, its array latency and the capture
            self.fold_skew_cycles = self.fold_lead + drain - 1
            #: rows that can be in flight at once (x memory row slots): the most over every
            #: (n, k), which k = 1 gives for each n (a larger k only lengthens the period,
            #: which can only shorten the skew)
            self.fold_row_slots = max(
                self.fold_plan(n, 1)["skew"] * (n - 1) + 1 for n in range(1, n_max + 1))
        super().__init__(port_members(n_max, k_max, self.fmt))

    # -- cycle model ---------------------------------------------------------------------------

    def generator_cycles(self, hyperbolic: bool = False) -> int:
        """Cycles the sequencer waits for a rotation: the CORDIC vectoring latency, or (with
        ``L_sq`` = :attr:`square_latency`, ``L_p`` = :attr:`coefficient_product_latency`)
        ``reciprocal latency + L_sq + L_p + 8``: squares, sum, leading one, normalise, shift,
        hand-over, reciprocal square root, the products for ``c``, ``s``, ``r``, the two
        rounding cycles and the saturation."""
        if self.rotation == "cordic" and not hyperbolic:
            return Cordic.latency_of(self.config.cordic)
        return self.reciprocal_latency + self.square_latency + self.coefficient_product_latency + 8

    def array_cycles(self, hyperbolic: bool = False) -> int:
        """Cycles from a group's issue to its write-back: the address register, the memory read,
        the read register, the forgetting scale (:attr:`scale_latency`; updater only), the
        units' operand register (where FOLD's rotation of the banks is selected), the unit
        (:attr:`apply_latency`: CORDIC ``iterations + 4``, multiplier unit
        :attr:`multiplier_apply_latency`), then the registered write port."""
        if self.rotation == "cordic" and not hyperbolic:
            return 5 + self.scale_latency + self.apply_latency
        return 5 + self.scale_latency + self.multiplier_apply_latency

    def update_cycles(self, n: int, k: int, hyperbolic: bool = False) -> int:
        """Cycles of one UPDATE (or DOWNDATE that is not refused), as :attr:`cycles` counts
        them, when the row arrives at one value per cycle.

        The array applies pivot ``i`` while pivot ``i + 1``'s rotation is generated: its
        ``a = A[i + 1, i + 1]`` is read when pivot ``i``'s rotation is written, its
        ``b = x[i + 1]`` comes straight from the array's output with pivot ``i``'s first group
        (its second when column ``i + 1`` starts a group: ``δ_i = 1`` if ``(i + 1) mod U = 0``).
        From one pivot's write (``PIVOT_WRITE``) to the next::

            P_i = D + 2 + max(G + δ_i, groups_i)

        with ``G`` = :meth:`generator_cycles`, ``D`` = :meth:`array_cycles` (the array's
        latency; also its drain before the next pivot's write) and
        ``groups_i = floor((n+k-1)/U) - floor(i/U) + 1`` (groups of ``U`` columns from the
        pivot's to the last). In all::

            3 + (n + k) + L + sum_{i<n-1} P_i + 1 + groups_{n-1} + D + 1

        with ``L = 5 + S + G`` (the first pivot's read, forgetting scale ``S`` =
        :attr:`scale_latency` and generation): the transfer, the check and the row; the first
        pivot; the pivots; the last pivot's groups and drain; the return to idle. With few
        groups per pivot the rotation chain sets the pace (``D + G + 2`` a pivot), with many
        the array does (``groups_i + D + 2``); before the overlap a pivot took
        ``6 + S + G + groups_i + D``. Checked against simulation in ``tests/gen/test_qr.py``
        and Verilator.
        """
        total = n + k
        generate, drain = self.generator_cycles(hyperbolic), self.array_cycles(hyperbolic)

        def groups(i):
            return (total - 1) // self.units - i // self.units + 1

        cycles = 3 + total + 5 + self.scale_latency + generate
        for i in range(n - 1):
            late = int((i + 1) % self.units == 0)
            cycles += drain + 2 + max(generate + late, groups(i))
        return cycles + 1 + groups(n - 1) + drain + 1

    def fold_plan(self, n: int, k: int, forgetting: bool = False) -> dict:
        """The FOLD schedule for runtime sizes ``n``, ``k``: ``work`` cycles of array work per
        row (``W = sum_i groups_i``), the ``period`` ``P = max(W, P_min)`` with ``P_min`` =
        :attr:`fold_min_period` (:attr:`fold_min_period_forgetting` for a FOLD with
        forgetting, ``forgetting=True``: the updater with a constant other than ``2**w``),
        and the ``skew`` ``s = ceil(X / P)`` with ``X`` =
        :attr:`fold_skew_cycles`: in period ``p`` the array runs pivot ``i`` of row
        ``p - s·i`` for ``i = 0 .. n-1`` in turn (``groups_i`` cycles each), so pivot ``i``
        of a row comes ``s`` periods after its pivot ``i - 1`` (its ``x[i]`` is written back
        by then) and one period after the previous row's pivot ``i`` (``A[i, :]`` and ``r_i``
        are written back by then). Also ``groups`` (``groups_i`` for each pivot) and
        ``shortest``, ``P_min' = max(P_min, ceil(X / s))``: the fewest cycles from one period's
        tasks to the next's while the schedule fills or drains (periods with fewer than
        ``n`` tasks; :meth:`fold_cycles`)."""
        if not self.folds:
            raise ValueError("this core was built without FOLD (fold=False)")
        forgetting = self._fold_forgets(forgetting)
        groups = [(n + k - 1 - i) // self.units + 1 for i in range(n)]
        work = sum(groups)
        least = self.fold_min_period_forgetting if forgetting else self.fold_min_period
        period = max(work, least)
        skew = -(-self.fold_skew_cycles // period)
        shortest = max(least, -(-self.fold_skew_cycles // skew))
        return {"work": work, "period": period, "skew": skew, "shortest": shortest,
                "groups": groups}

    def _fold_forgets(self, forgetting) -> bool:
        """Whether a FOLD forgets: ``forgetting`` is a bool, or the command's constant ``b``
        (forgetting when it is not ``2**w``). The QR solver ignores the constant."""
        if not isinstance(forgetting, bool):
            forgetting = int(forgetting) != 1 << self.fmt.width
        return forgetting and self.incremental

    def fold_cycles(self, n: int, k: int, rows: int, forgetting: bool = False,
                    value_cycles: float = 1) -> int:
        """Cycles of one FOLD of ``rows`` rows, as :attr:`cycles` counts them, when the rows
        arrive at one value per cycle whenever the core takes them; ``forgetting`` as
        :meth:`fold_plan` (a bool, or the command's constant ``b``). With ``value_cycles``
        above 1, rows from a slower source: the command's ``v``-th value (counted from 0 over
        all rows) is offered from cycle ``2 + v·value_cycles`` on (exact for such a source,
        checked in simulation; the host's estimate for a link; a float when it is).

        The transfer and the check (2), ``n`` cycles that read the pivots ``A[i, i]``, three
        cycles for the period and skew (with forgetting :attr:`scale_latency` more: the
        pivots are scaled on their way into the register file), then ``rows + s·(n - 1)``
        periods (:meth:`fold_plan`): period ``p`` runs pivots ``lo .. hi``, those whose rows
        ``p - s·i`` exist, for ``max(W_p, P_min' + δ_p)`` cycles (``W_p`` their groups,
        ``P_min'`` = ``fold_plan``'s ``shortest``, ``δ_p`` = ``groups_lo`` when period
        ``p + 1`` starts at ``lo + 1``, else 0; the last period: ``W_p``), starting late if
        its row has not fully arrived (the rows go through a two-row input buffer: a row is
        written while the array reads the previous one), then the drain (the lead
        :attr:`fold_lead`, the array latency :meth:`array_cycles`, one) and the return to
        idle. Checked exactly against simulation in ``tests/gen/test_qr.py``.
        """
        if not value_cycles >= 1:
            raise ValueError(f"value_cycles must be at least 1, not {value_cycles!r}")
        forgetting = self._fold_forgets(forgetting)
        plan = self.fold_plan(n, k, forgetting)
        skew, shortest, groups = plan["skew"], plan["shortest"], plan["groups"]
        columns = n + k
        # first cycle of the schedule
        run_start = n + 5 + (self.scale_latency if forgetting else 0)
        free = [2, 2]                          # first cycle each input half may be written
        written = 2                            # first cycle the next value may be taken
        periods = rows + skew * (n - 1)
        tasks = [self._fold_tasks(p, rows, skew, n) for p in range(periods + 1)]
        start = run_start
        for p in range(periods):
            if p < rows:
                begin = max(written, free[p & 1])
                # its last value is taken here (not before it is there)
                end = max(begin + columns - 1, 2 + ((p + 1) * columns - 1) * value_cycles)
                written = end + 1
                start = max(start, end + 1)    # the period waits for its row
                # the half is free again once the array has issued the row's pivot-0 groups
                free[p & 1] = start + self.fold_lead + groups[0]
            first, last = tasks[p]
            work = sum(groups[first:last + 1])
            if p == periods - 1:
                length = work
            else:
                steps = tasks[p + 1][0] > first        # the next period starts a pivot later
                length = max(work, shortest + (groups[first] if steps else 0))
            start += length
        return start + self.fold_lead + self.array_cycles() + 1 + 1

    @staticmethod
    def _fold_tasks(period: int, rows: int, skew: int, n: int) -> tuple:
        """The tasks period ``p`` of a FOLD of ``rows`` rows runs: pivots ``lo .. hi``, those
        whose rows ``p - s·i`` exist (``0 <= p - s·i < rows``)."""
        return max(0, -(-(period - rows + 1) // skew)), min(n - 1, period // skew)

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

        # addresses are bit fields (half, row, slot), padded to powers of two, so that no
        # address needs an adder or multiplier in front of the memory
        slot_bits = (slots - 1).bit_length()
        row_bits = (n_max - 1).bit_length()
        rhs_bits = (k_max - 1).bit_length()
        # two halves of A (ping-pong), and with FOLD's downdates a third region, the spare
        # (address bit above the half's, set only with the half's bit clear: region 2, so the
        # memory holds three regions, not four): a FOLD of downdates never writes the current
        # half, so a refused one leaves it as it was
        fold_downdates = self.fold_downdates
        regions = 3 if fold_downdates else 2
        a_mem = [make(f"matrix{u}", regions << (row_bits + slot_bits)) for u in range(units)]
        a_rd = [mem.read_port() for mem in a_mem]
        a_wr = [mem.write_port() for mem in a_mem]
        # the writes into A are registered once (a_write_* -> a_wr): the block RAM's write port
        # then starts from flip-flops, off the sequencer's decode path
        a_write_addr = [Signal.like(port.addr, name=f"a_write_addr_{u}")
                        for u, port in enumerate(a_wr)]
        a_write_data = [Signal.like(port.data, name=f"a_write_data_{u}")
                        for u, port in enumerate(a_wr)]
        a_write_en = [Signal.like(port.en, name=f"a_write_en_{u}") for u, port in enumerate(a_wr)]
        for u in range(units):
            m.d.sync += [a_wr[u].addr.eq(a_write_addr[u]), a_wr[u].data.eq(a_write_data[u]),
                         a_wr[u].en.eq(a_write_en[u])]
        # the work rows: one row slot for the one-row ops, fold_row_slots for FOLD (a row's
        # slot is its index modulo the slot count; the address is (row slot, group))
        folds = self.folds
        row_slots = self.fold_row_slots if folds else 1
        row_slot_bits = (row_slots - 1).bit_length()
        x_mem = [make(f"row{u}", slots if not folds else 1 << (slot_bits + row_slot_bits))
                 for u in range(units)]
        x_rd = [mem.read_port() for mem in x_mem]
        x_wr = [mem.write_port() for mem in x_mem]
        if folds:
            # FOLD's input rows: two halves (a row is written while the array reads the other)
            in_mem = [make(f"input{u}", 2 << slot_bits) for u in range(units)]
            in_rd = [mem.read_port() for mem in in_mem]
            in_wr = [mem.write_port() for mem in in_mem]
            # the generator's operands: r_i (the pivot A[i, i] as the last task left it) and
            # each row's next x[i] (captured from the write-back of its previous pivot)
            fold_r = make("fold_pivots", n_max)
            fold_r_rd, fold_r_wr = fold_r.read_port(domain="comb"), fold_r.write_port()
            fold_x = make("fold_next", row_slots)
            fold_x_rd, fold_x_wr = fold_x.read_port(domain="comb"), fold_x.write_port()
            # the fold generator's operands (registered when a task starts) and its rotation
            # (valid fold_generator_latency cycles later): r, and the directions (CORDIC,
            # fold_directions) or c, s (multiplier, fold_gen_c / fold_gen_s)
            fold_a = Signal(signed(w), name="fold_a")
            fold_b = Signal(signed(w), name="fold_b")
            fold_start = Signal()
            m.d.sync += fold_start.eq(0)
            fold_gen_valid = Signal()
            fold_gen_r = Signal(signed(w))
            fold_gen_saturated = Signal()
        w_mem = make("solution", 1 << (row_bits + rhs_bits))
        w_rd, w_wr = w_mem.read_port(), w_mem.write_port()

        def bank_of(index):
            return index[:shift] if shift else Const(0, 1)

        def slot_of(index):
            return index >> shift

        def a_address(half, row, slot, spare=0):
            address = Cat(Value.cast(slot)[:slot_bits], Value.cast(row)[:row_bits], half)
            return Cat(address, spare) if fold_downdates else address

        # -- command registers ------------------------------------------------------------
        op = Signal(3)
        select = Signal(2)
        n = Signal(range(n_max + 1))
        k = Signal(range(k_max + 1))
        total = Signal(range(columns + 1))
        # derived from the command when it is taken, so that no adder sits in the loops' tests
        n_last = Signal(range(n_max))                   # n - 1
        k_last = Signal(range(k_max))                   # k - 1
        last_slot = Signal(range(slots))                # slot of column n + k - 1
        reset_last_slot = Signal(range(max(slots, k_max)))  # RESET: last group or W column
        row_in_last = Signal(range(columns))            # values of the row, minus one
        walk_last_column = Signal(range(max(n_max, k_max)))  # READ / LOAD: columns minus one
        lam = Signal(signed(w))
        forgetting = Signal(unsigned(w + 1))
        hyperbolic = Signal()
        half = Signal()        # current half of A
        folding = Signal()     # a FOLD runs (its write-back addressing, directions, capture)
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
        col_in_range = Signal()  # SOLVE_MAC / PREDICT_MAC: col < n
        rhs = Signal(range(k_max + 1))
        group = Signal(range(slots + 1))
        drain_count = Signal(8)         # wait counter of the pivot read, drain and solve
        # UPDATE / DOWNDATE: the array applies pivot i (the issuer, below the sequencer) while
        # the generator makes pivot i + 1's rotation
        applying = Signal()             # the issuer issues pivot apply_row's groups
        apply_row = Signal(range(max(n_max, columns) + 1))
        apply_group = Signal(range(slots + 1))
        apply_last = Signal(range(slots + 1))
        apply_drain = Signal(8)         # cycles left until the last group is written back
        array_busy = Signal()           # applying, or a group not yet written back
        m.d.comb += array_busy.eq(applying | (apply_drain != 0))
        next_pivot_read = Signal()      # PIVOT_WRITE issued the read of A[i + 1, i + 1] (a pulse)
        m.d.sync += next_pivot_read.eq(0)   # (set in PIVOT_WRITE, below)

        # -- generator ----------------------------------------------------------------------
        pivot = Signal(signed(w))       # a (scaled)
        lower = Signal(signed(w))       # b
        inverse_mode = Signal()         # p = a*a only (back substitution)
        # The two state machines talk through registers only: gen_start is a pulse registered
        # by the sequencer in the cycle before GENERATE (SOLVE_GENERATE), gen_done is the OR of
        # flip-flops (the generator's "last state next" flag and the vectoring unit's
        # registered valid), so neither machine's state decode reaches the other's next state.
        gen_start = Signal()            # high in GENERATE / SOLVE_GENERATE
        gen_finishing = Signal()        # high in the generator's last cycle (not CORDIC)
        gen_done = Signal()
        m.d.sync += [gen_start.eq(0), gen_finishing.eq(0)]     # pulses, set below
        rot_r = Signal(signed(w))
        # the units' coefficients (rot_c, rot_s; CORDIC: directions) are loaded from the
        # generator's (gen_c, gen_s; gen_directions) in PIVOT_WRITE: the next pivot's rotation
        # is generated while the array still applies this one's
        rot_c = Signal(signed(coefficient.width))
        rot_s = Signal(signed(coefficient.width))
        gen_c = Signal(signed(coefficient.width))
        gen_s = Signal(signed(coefficient.width))
        rot_g = Signal(signed(config.rsqrt_format.width))
        rot_shift = Signal(range(2 * w + mantissa_bits + 2))
        shift_minus_one = Signal.like(rot_shift)        # rot_shift - 1 (wraps at 0: unused)
        wide_shift_minus_one = Signal(range(3 * w + mantissa_bits + 2))  # rot_shift + w - 1
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
        leading_one = _leading_one(m, p, "leading_one")
        leading = Signal(signed(8))     # registered in LEADING
        nonpositive = Signal()          # p <= 0, registered in LEADING
        exponent = Signal(signed(8))  # e = ceil((L - M) / 2)
        m.d.comb += exponent.eq(_normaliser_exponent(leading, mantissa_bits))
        # free-running pipelined products; the generator's states wait for their latency.
        # The squares take their operands through registers of their own, beside the
        # multipliers (pivot also feeds a·g and the refusal's r): pivot and lower are loaded
        # in PIVOT_SCALED / SOLVE_PIVOT_DATA (cycle t), the copies hold them from t + 2, and
        # SUM reads the squares in t + 2 + square_latency (GENERATE in t + 1, then
        # square_latency cycles of SQUARE), when the copies' squares arrive. No cycle is added.
        square_operand = Signal.like(pivot, name="square_operand")
        other_operand = Signal.like(lower, name="other_operand")
        m.d.sync += [square_operand.eq(pivot), other_operand.eq(lower)]
        square = hwfixed.pipelined_product(m, square_operand, square_operand, "square")
        other = hwfixed.pipelined_product(m, other_operand, other_operand, "other")
        # a·g, b·g and p·g take a, b, p through registers of their own too (a, b from the
        # squares' copies, so that Yosys keeps the two apart): a, b hold from t + 1 and p
        # from SUM + 1 on, many cycles before PRODUCTS (the reciprocal square root lies between)
        c_operand = Signal.like(pivot, name="c_operand")
        s_operand = Signal.like(lower, name="s_operand")
        r_operand = Signal.like(p, name="r_operand")
        m.d.sync += [c_operand.eq(square_operand), s_operand.eq(other_operand), r_operand.eq(p)]
        c_product = hwfixed.pipelined_product(m, c_operand, rot_g, "c_product")
        s_product = hwfixed.pipelined_product(m, s_operand, rot_g, "s_product")
        r_product = hwfixed.pipelined_product(m, r_operand, rot_g, "r_product")
        c_shifted = Signal.like(c_product)
        s_shifted = Signal.like(s_product)
        r_shifted = Signal.like(r_product)
        c_rounded = Signal(signed(len(c_product) + 1))
        s_rounded = Signal(signed(len(s_product) + 1))
        r_rounded = Signal(signed(len(r_product) + 1))
        r_clips = Signal()              # r_rounded does not fit w bits (set with it)
        c_clips = Signal()              # c_rounded, s_rounded do not fit the coefficients
        s_clips = Signal()
        wait_count = Signal(range(max(self.square_latency, self.coefficient_product_latency) + 1))

        def wait_then(latency, next_state):
            """Stay in this state ``latency`` cycles (a pipelined product), then go on."""
            m.d.sync += wait_count.eq(wait_count + 1)
            with m.If(wait_count == latency - 1):
                m.d.sync += wait_count.eq(0)
                m.next = next_state

        if cordic_kind:
            m.submodules.vectoring = vectoring = Cordic(fmt, mode="vectoring")
            assert vectoring.latency == self.generator_cycles()
            m.d.comb += vectoring.o.ready.eq(1)
            directions = Signal(vectoring.directions_layout)
            gen_directions = Signal(vectoring.directions_layout)
            # The vectoring unit's inputs come from registers of their own, loaded with the
            # pivot pair in PIVOT_SCALED (the cycle before GENERATE), and its valid is a
            # registered start pulse: no decode of the sequencer's state sits in front of the
            # unit's pre-rotation (a negation, a carry chain). No cycle is added.
            vectoring_x = Signal(signed(w))
            vectoring_y = Signal(signed(w))
            vectoring_start = Signal()
            m.d.sync += vectoring_start.eq(0)   # a one-cycle pulse (set in PIVOT_SCALED)
            m.d.comb += [
                vectoring.i.valid.eq(vectoring_start),
                vectoring.i.payload.x.eq(vectoring_x),
                vectoring.i.payload.y.eq(vectoring_y),
            ]
            # the unit's registered valid ends a CORDIC rotation (only one is ever in flight)
            m.d.comb += gen_done.eq(gen_finishing | vectoring.o.valid)
        else:
            m.d.comb += gen_done.eq(gen_finishing)

        with m.FSM(name="generator"):
            with m.State("IDLE"):
                with m.If(gen_start):
                    if cordic_kind:
                        # vectoring_start is high with gen_start exactly when this fold's
                        # rotations are CORDIC ones (never in back substitution)
                        with m.If(vectoring_start):
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
                            gen_directions.eq(vectoring.o.payload.directions),
                            rot_refused.eq(0),
                            rot_saturated.eq(vectoring.o.payload.saturated),
                        ]
                        m.next = "IDLE"
            with m.State("SQUARE"):
                wait_then(self.square_latency, "SUM")  # square = pivot², other = lower²
            with m.State("SUM"):
                m.d.sync += p.eq(Mux(inverse_mode, square,
                                     Mux(hyperbolic, square - other, square + other)))
                m.next = "LEADING"
            with m.State("LEADING"):
                m.d.sync += [leading.eq(leading_one), nonpositive.eq(p <= 0),
                             gen_finishing.eq(p <= 0)]    # NORMALISE ends the rotation
                m.next = "NORMALISE"
            with m.State("NORMALISE"):
                with m.If(nonpositive):
                    m.d.sync += [
                        rot_r.eq(Mux(hyperbolic, pivot, 0)),
                        gen_c.eq(one),
                        gen_s.eq(0),
                        rot_g.eq(0),
                        rot_shift.eq(0),
                        rot_refused.eq(hyperbolic & ~inverse_mode),
                        rot_saturated.eq(0),
                    ]
                    m.next = "IDLE"
                with m.Else():
                    shifts = _normaliser_shifts(exponent, mantissa_bits, w)
                    m.d.sync += [rot_shift.eq(shifts[0]), shift_minus_one.eq(shifts[1]),
                                 wide_shift_minus_one.eq(shifts[2])]
                    m.next = "SHIFT"
            with m.State("SHIFT"):
                m.d.sync += q.eq(_mantissa(p, rot_shift, mantissa_bits))
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
                wait_then(self.coefficient_product_latency, "ROUND_SHIFT")  # a·g, b·g, p·g
            with m.State("ROUND_SHIFT"):
                m.d.sync += [
                    c_shifted.eq(_round_shift_first(c_product, shift_minus_one)),
                    s_shifted.eq(_round_shift_first(s_product, shift_minus_one)),
                    r_shifted.eq(_round_shift_first(r_product, wide_shift_minus_one)),
                ]
                m.next = "ROUND"
            with m.State("ROUND"):
                m.d.sync += gen_finishing.eq(1)     # COEFFICIENTS is the last cycle
                m.d.sync += [
                    c_rounded.eq(_round_shift_second(c_product, c_shifted, rot_shift == 0)),
                    s_rounded.eq(_round_shift_second(s_product, s_shifted, rot_shift == 0)),
                    r_rounded.eq(_round_shift_second(r_product, r_shifted)),
                    r_clips.eq(_rounded_clips(r_shifted, fmt.width)),
                ]
                # c's and s's clip tests too (a shift of 0 keeps the product itself)
                for clips, product, shifted in ((c_clips, c_product, c_shifted),
                                                (s_clips, s_product, s_shifted)):
                    m.d.sync += clips.eq(_round_shift_clips(product, shifted, coefficient.width,
                                                            rot_shift == 0))
                m.next = "COEFFICIENTS"
            with m.State("COEFFICIENTS"):
                # every clip in this core tests the bits above the sign (no carry chain after
                # the register); the wide rounded values' (r: about 2w + 20 bits; c, s) were
                # tested in ROUND, beside their rounding (c's wide test into the refusal and
                # the coefficients was the worst path of the demo's device)
                c_value = hwfixed.clip_flagged(c_rounded, coefficient.width, c_clips)
                s_value = hwfixed.clip_flagged(s_rounded, coefficient.width, s_clips)
                r_value = hwfixed.clip_flagged(r_rounded, fmt.width, r_clips)
                m.d.sync += [
                    gen_c.eq(c_value),
                    gen_s.eq(s_value),
                    rot_r.eq(r_value),
                    rot_refused.eq(hyperbolic & ~inverse_mode & (c_clips | s_clips)),
                    rot_saturated.eq(~inverse_mode & (c_clips | s_clips | r_clips)),
                ]
                m.next = "IDLE"

        # -- rotation array -----------------------------------------------------------------
        issue_valid = Signal()
        issue_group = Signal(range(slots + 1))
        issue_row = Signal(range(n_max + 1))
        issue_mask = Signal(units)      # columns of the group inside pivot < j < n + k (cycle 1)
        # the lane holding column pivot + 1 (cycle 1): its rotated x is the next pivot's b,
        # taken from the array's output (UPDATE / DOWNDATE: into the generator; FOLD: into the
        # row's x register file)
        issue_next_x = Signal(units)
        # FOLD's issues (defaults: the one-row ops'): the half of A to read (the other is
        # written), the work row's slot, whether x comes from the input buffer (pivot 0) and
        # which half of it, and "this is a FOLD group" (the pivot column is written too: a
        # CORDIC unit replays the vectoring, so A[i, i] becomes r bit for bit; multiplier
        # units' pivot column takes the generator's r instead)
        issue_half = Signal()
        issue_xslot = Signal(max(row_slot_bits, 1))
        issue_inbuf = Signal()
        issue_parity = Signal()
        issue_fold = Signal()
        # FOLD: unit v works on column pivot + v (+ units per group), which lives in bank
        # (pivot + v) mod units: the units see the banks rotated by issue_rot = pivot mod
        # units (0 for the other ops), and bank b's slot is the group's + (b < issue_rot)
        issue_rot = Signal(range(units))
        issue_first = Signal()          # FOLD: the task's first group (its pivot column)
        m.d.comb += issue_half.eq(half)
        if fold_downdates:
            # the region read (half, or the spare) and the region written (FOLD of updates:
            # the other half; FOLD of downdates: the other half or the spare, never `half`)
            issue_spare = Signal()
            issue_write_half = Signal()
            issue_write_spare = Signal()
            m.d.comb += issue_write_half.eq(~half)

        def delay(signal, cycles_, name):
            return hwfixed.delay_line(m, signal, cycles_, name)

        # memory data (cycle 2 after the issue) registered straight away (cycle 3), then the
        # forgetting scale (scale_latency cycles), then the units' operand registers: the
        # units see their operands in cycle 4 + scale_latency (the read address is registered
        # too: cycle 1)
        scale_latency = self.scale_latency
        a_data = [Signal(signed(w), name=f"a_data_{u}") for u in range(units)]
        x_data = [Signal(signed(w), name=f"x_data_{u}") for u in range(units)]
        # (FOLD: pivot 0 reads its x from the input buffer; the flag follows the address
        # register and the memory)
        from_input = delay(issue_inbuf, 2, "from_input") if folds else None
        for u in range(units):
            m.d.sync += [a_data[u].eq(a_rd[u].data),
                         x_data[u].eq(Mux(from_input, in_rd[u].data, x_rd[u].data)
                                      if folds else x_rd[u].data)]
        upper_scaled = [Signal(signed(w), name=f"upper_scaled_{u}") for u in range(units)]
        lower_in = [delay(x_data[u], scale_latency, f"lower_in_{u}") for u in range(units)]
        if incremental:
            # a copy of the forgetting constant per unit (see _spread_copies). It changes only
            # in CHECK (visible from CHECK + 1); a fold's first read reaches the multipliers in
            # PIVOT_READ + 3 >= CHECK + 6 (the row takes n + k >= 2 cycles), and copy u
            # follows in CHECK + 2 + min(u, 3): a cycle to spare
            unit_forgetting = _spread_copies(m, forgetting, units, 3, "unit_forgetting")
        for u in range(units):
            if incremental:
                # round(A·b / 2**w): b <= 2**w, so the result fits w bits
                _scale_by_forgetting(m, a_data[u], unit_forgetting[u], upper_scaled[u],
                                     f"forget_{u}")
            else:
                m.d.comb += upper_scaled[u].eq(a_data[u])
        operand_delay = 4 + scale_latency
        stage2_valid = delay(issue_valid, operand_delay, "operand_valid")
        stage2_group = delay(issue_group, operand_delay, "operand_group")
        # the group's pivot: the row of A it writes back
        stage2_row = delay(issue_row, operand_delay, "operand_row")
        # the mask is computed from the registered issue (off the sequencer's decode path)
        stage2_mask = delay(issue_mask, operand_delay - 1, "operand_mask")
        stage2_next_x = delay(issue_next_x, operand_delay - 1, "operand_next_x")

        multiplier_latency = self.multiplier_apply_latency
        out_upper = [Signal(signed(w), name=f"out_upper_{u}") for u in range(units)]
        out_lower = [Signal(signed(w), name=f"out_lower_{u}") for u in range(units)]
        out_saturated = Signal(units)
        multiplier_results = []
        need_multipliers = not cordic_kind or incremental
        rounding_half = 1 << (config.coefficient_frac_bits - 1)
        # A rotation's coefficients (rot_c, rot_s, directions) are loaded in PIVOT_WRITE
        # (cycle t) and hold from t + 1 on; the units get their first operands in cycle
        # t + 1 + operand_delay. Copy u per unit (_spread_copies) holds them from
        # t + 2 + min(u, copy_depth): copy_depth = operand_delay - 2 leaves a cycle to spare.
        # The previous pivot's last group has passed the units by t (PIVOT_WRITE waits for
        # the array to drain).
        copy_depth = operand_delay - 2
        # the units' operand registers: bank (rot + u) mod units feeds unit u (FOLD; rot = 0
        # otherwise), selected into a register (the selection's fan-out and the route to the
        # multipliers were one path)
        rotation_in = delay(issue_rot, operand_delay - 1, "rotation_in")
        unit_upper = [Signal(signed(w), name=f"unit_upper_{u}") for u in range(units)]
        unit_lower = [Signal(signed(w), name=f"unit_lower_{u}") for u in range(units)]
        for u in range(units):
            m.d.sync += [unit_upper[u].eq(upper_scaled[u]), unit_lower[u].eq(lower_in[u])]
            if folds and units > 1:
                with m.Switch(rotation_in):
                    for rot in range(1, units):
                        with m.Case(rot):
                            bank = (rot + u) % units
                            m.d.sync += [unit_upper[u].eq(upper_scaled[bank]),
                                         unit_lower[u].eq(lower_in[bank])]
        fold_multipliers = folds and not cordic_kind
        if fold_multipliers:
            # FOLD: each task's c, s, the fold generator's registered results; the units'
            # copies load them with its valid pulse, one cycle before the task's first group
            # reaches the units, and hold them through its groups
            fold_gen_c = Signal(signed(coefficient.width), name="fold_gen_c")
            fold_gen_s = Signal(signed(coefficient.width), name="fold_gen_s")
            # each unit's copy takes FOLD's c, s while folding and otherwise follows the
            # chain: the multipliers read a register of their own in both modes (a
            # multiplexer of one shared FOLD register and the copy, routed across the die
            # into the DSPs, was a worst path)
            unit_cs = _spread_copies(m, rot_c, units, copy_depth, "unit_c",
                                     hold=(folding, fold_gen_valid, fold_gen_c))
            unit_ss = _spread_copies(m, rot_s, units, copy_depth, "unit_s",
                                     hold=(folding, fold_gen_valid, fold_gen_s))
        elif need_multipliers:
            unit_cs = _spread_copies(m, rot_c, units, copy_depth, "unit_c")
            unit_ss = _spread_copies(m, rot_s, units, copy_depth, "unit_s")
        for u in range(units if need_multipliers else 0):
            # four-multiplier unit: partial products registered and summed (product_latency),
            # then the pair sums with the rounding half, then shift and saturate, registered
            unit_c, unit_s = unit_cs[u], unit_ss[u]
            c_upper = hwfixed.pipelined_product(m, unit_c, unit_upper[u], f"c_upper_{u}")
            s_lower = hwfixed.pipelined_product(m, unit_s, unit_lower[u], f"s_lower_{u}")
            c_lower = hwfixed.pipelined_product(m, unit_c, unit_lower[u], f"c_lower_{u}")
            s_upper = hwfixed.pipelined_product(m, unit_s, unit_upper[u], f"s_upper_{u}")
            new_upper = Signal(signed(coefficient.width + w + 2), name=f"sum_upper_{u}")
            new_lower = Signal(signed(coefficient.width + w + 2), name=f"sum_lower_{u}")
            m.d.sync += [
                new_upper.eq(Mux(hyperbolic, c_upper - s_lower, c_upper + s_lower)
                             + rounding_half),
                new_lower.eq(c_lower - s_upper + rounding_half),
            ]
            up_value, up_clip = clip_width(new_upper >> config.coefficient_frac_bits, w)
            low_value, low_clip = clip_width(new_lower >> config.coefficient_frac_bits, w)
            result_upper = Signal(signed(w), name=f"mul_upper_{u}")
            result_lower = Signal(signed(w), name=f"mul_lower_{u}")
            result_clip = Signal(name=f"mul_saturated_{u}")
            m.d.sync += [result_upper.eq(up_value), result_lower.eq(low_value),
                         result_clip.eq(up_clip | low_clip)]
            multiplier_results.append((result_upper, result_lower, result_clip))

        if cordic_kind:
            cordic_latency = self.apply_latency
            # FOLD: each task's directions, from the vectoring unit's output register one
            # cycle before the task's first group reaches the units (fold_lead is chosen so),
            # held through the task's groups
            fold_directions = Signal.like(directions, name="fold_directions")
            with m.If(folding & vectoring.o.valid):
                m.d.sync += fold_directions.eq(vectoring.o.payload.directions)
            unit_directions_copies = _spread_copies(m, directions, units, copy_depth,
                                                    "unit_directions")
            for u in range(units):
                unit = Cordic(fmt, mode="rotation")
                assert unit.latency == cordic_latency
                m.submodules[f"rotator{u}"] = unit
                # a registered copy of the directions per unit, beside it, so that the
                # pre-rotation bit does not fan out across the chip into every unit's negation
                unit_directions = unit_directions_copies[u]
                if folds:
                    unit_directions = Mux(folding, fold_directions, unit_directions)
                m.d.comb += [
                    unit.o.ready.eq(1),
                    unit.i.valid.eq(stage2_valid & use_cordic),
                    unit.i.payload.x.eq(unit_upper[u]),
                    unit.i.payload.y.eq(unit_lower[u]),
                    unit.i.payload.directions.eq(unit_directions),
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
            # (with both kinds of unit, each valid line carries only its own op's groups: a
            # DOWNDATE's groups, still in the longer CORDIC line when its drain ends, would
            # otherwise come out as write-backs of the UPDATE that follows it)
            cordic_issued = stage2_valid & use_cordic if need_multipliers else stage2_valid
            out_valid = delay(cordic_issued, cordic_latency, "cordic_valid")
            out_group = delay(stage2_group, cordic_latency, "cordic_group")
            out_mask = delay(stage2_mask, cordic_latency, "cordic_mask")
            out_next_x = delay(stage2_next_x, cordic_latency, "cordic_next_x")
            out_row = delay(stage2_row, cordic_latency, "cordic_row")
            if need_multipliers:
                out_valid = Mux(use_cordic, out_valid,
                                delay(stage2_valid & ~use_cordic, multiplier_latency,
                                      "mul_valid"))
                out_group = Mux(use_cordic, out_group,
                                delay(stage2_group, multiplier_latency, "mul_group"))
                out_mask = Mux(use_cordic, out_mask,
                               delay(stage2_mask, multiplier_latency, "mul_mask"))
                out_next_x = Mux(use_cordic, out_next_x,
                                 delay(stage2_next_x, multiplier_latency, "mul_next_x"))
                out_row = Mux(use_cordic, out_row,
                              delay(stage2_row, multiplier_latency, "mul_row"))
        else:
            for u in range(units):
                mul_upper, mul_lower, mul_clip = multiplier_results[u]
                m.d.comb += [out_upper[u].eq(mul_upper), out_lower[u].eq(mul_lower),
                             out_saturated[u].eq(mul_clip)]
            if fold_multipliers:
                # FOLD: the pivot column (unit 0 of a task's first group) takes the fold
                # generator's r, as UPDATE writes it (the four-multiplier rotation of (a, b)
                # is not r bit for bit); r's clip flag went to `saturated` with the rotation
                out_first = delay(issue_first, operand_delay + multiplier_latency, "fold_first")
                fold_r_late = delay(fold_gen_r, 1 + multiplier_latency, "fold_r_late")
                with m.If(folding & out_first):
                    m.d.comb += [out_upper[0].eq(fold_r_late), out_saturated[0].eq(0)]
            out_valid = delay(stage2_valid, multiplier_latency, "mul_valid")
            out_group = delay(stage2_group, multiplier_latency, "mul_group")
            out_mask = delay(stage2_mask, multiplier_latency, "mul_mask")
            out_next_x = delay(stage2_next_x, multiplier_latency, "mul_next_x")
            out_row = delay(stage2_row, multiplier_latency, "mul_row")

        # write-back of the array (columns pivot < j < n + k, as masked at the issue)
        writeback = Signal()
        m.d.comb += writeback.eq(out_valid)
        issued_group = Signal.like(issue_group)
        issued_row = Signal.like(issue_row)
        issued_fold = Signal()
        issued_rot = Signal.like(issue_rot)
        m.d.sync += [issued_group.eq(issue_group), issued_row.eq(issue_row),
                     issued_fold.eq(issue_fold), issued_rot.eq(issue_rot)]
        for u in range(units):
            # unit u's column (FOLD: rotated, see issue_rot)
            column = (issued_group << shift) + issued_rot + u
            m.d.comb += issue_mask[u].eq(((column > issued_row)
                                          | (issued_fold & (column == issued_row)))
                                         & (column < total))
            m.d.comb += issue_next_x[u].eq(column == issued_row + 1)
        if folds:
            # FOLD's tags from the issue to the write-back (the array's latency minus one)
            fold_delay = operand_delay + self.apply_latency
            if fold_downdates:
                out_fold_half = delay(issue_write_half, fold_delay, "fold_out_half")
                out_fold_spare = delay(issue_write_spare, fold_delay, "fold_out_spare")
            else:
                out_fold_half = delay(~issue_half, fold_delay, "fold_out_half")
            out_fold_xslot = delay(issue_xslot, fold_delay, "fold_out_xslot")
            out_rot = delay(issue_rot, fold_delay, "fold_out_rot")

        # -- main sequencer ------------------------------------------------------------------
        acc_bits = 2 * w + max(n_max, 2).bit_length() + 2
        acc = Signal(signed(acc_bits))
        signed_g = Signal(signed(config.rsqrt_format.width + 1))
        # acc·g takes acc through a register of its own, beside the multipliers: acc is final
        # in SOLVE_MAC's last cycle t (no product in flight), the copy holds it from t + 1,
        # and SOLVE_SHIFT reads the product in t + 1 + solve_latency, when the copy's product
        # arrives. No cycle is added.
        solve_operand = Signal.like(acc, name="solve_operand")
        m.d.sync += solve_operand.eq(acc)
        solve_product = hwfixed.pipelined_product(m, solve_operand, signed_g, "solve_product")
        solve_latency = product_latency(acc_bits, config.rsqrt_format.width + 1)
        solve_shifted = Signal.like(solve_product)
        solve_rounded = Signal(signed(len(solve_product) + 1))
        solve_clips = Signal()          # solve_rounded does not fit w bits (set with it)
        read_value = Signal(signed(w))
        read_zero = Signal()
        z_column = Signal(range(columns + 1))  # n + rhs during SOLVE
        result_clip = Signal()          # the value in read_value was clipped (SOLVE, PREDICT)
        predict_rounded = Signal(signed(acc_bits - f + 1))
        read_bank = Signal(range(units))        # bank of the address issued last cycle
        read_from_w = Signal()
        # bank of the data in a_data / x_data (registered memory data)
        data_bank = Signal(range(units))
        m.d.sync += data_bank.eq(delay(read_bank, 1, "address_bank"))
        w_read_addr = Signal.like(w_rd.addr)
        m.d.sync += w_rd.addr.eq(w_read_addr)
        w_data = Signal(signed(w))
        m.d.sync += w_data.eq(w_rd.data)

        a_read_data = Signal(signed(w))
        x_read_data = Signal(signed(w))
        with m.Switch(data_bank):
            for u in range(units):
                with m.Case(u):
                    m.d.comb += [a_read_data.eq(a_data[u]), x_read_data.eq(x_data[u])]

        # multiply-accumulate pipeline of SOLVE and PREDICT: issue (cycle 0), address (1),
        # memory (2), registered data (3), selected operands (4), product mac_latency later
        mac_issue = Signal()
        mac_from_x = Signal()
        mac_left = Signal(signed(w))
        mac_right = Signal(signed(w))
        m.d.sync += [mac_left.eq(Mux(mac_from_x, x_read_data, a_read_data)),
                     mac_right.eq(w_data)]
        mac_product = hwfixed.pipelined_product(m, mac_left, mac_right, "mac_product")
        mac_latency = product_latency(w, w)
        mac_in_flight = Signal(4 + mac_latency)
        m.d.sync += mac_in_flight.eq(Cat(mac_issue, mac_in_flight[:-1]))
        product_valid = mac_in_flight[-1]

        # read addresses: the issue, registered
        for u in range(units):
            # (FOLD: bank u's slot is one further when u < issue_rot)
            slot_u = issue_group + (u < issue_rot) if folds and units > 1 else issue_group
            m.d.sync += [
                a_rd[u].addr.eq(a_address(issue_half, issue_row, slot_u,
                                          issue_spare if fold_downdates else 0)),
                x_rd[u].addr.eq(Cat(Value.cast(slot_u)[:slot_bits], issue_xslot)
                                if folds else issue_group),
            ]
            if folds:
                m.d.sync += in_rd[u].addr.eq(Cat(Value.cast(slot_u)[:slot_bits],
                                                 issue_parity))
        # default writes: the array's write-back into the other half and the work row
        write_spare = 0
        if folds:
            write_half = Mux(folding, out_fold_half, ~half)
            if fold_downdates:
                write_spare = folding & out_fold_spare
            write_x = Cat(Value.cast(out_group)[:slot_bits], Mux(folding, out_fold_xslot, 0))
            with m.If(folding & writeback & out_next_x.any()):
                m.d.comb += [fold_x_wr.addr.eq(out_fold_xslot), fold_x_wr.en.eq(1)]
                for u in range(units):
                    with m.If(out_next_x[u]):
                        m.d.comb += fold_x_wr.data.eq(out_lower[u])
        else:
            write_half, write_x = ~half, out_group
        write_row = out_row             # (FOLD: the task's pivot, carried the same way)

        def write_back(bank, source, slot, x_address):
            """Bank ``bank`` takes unit ``source``'s results, at ``slot`` of the A row."""
            m.d.comb += [
                a_write_addr[bank].eq(a_address(write_half, write_row, slot, write_spare)),
                a_write_data[bank].eq(out_upper[source]),
                a_write_en[bank].eq(writeback & out_mask[source]),
                x_wr[bank].addr.eq(x_address),
                x_wr[bank].data.eq(out_lower[source]),
                x_wr[bank].en.eq(writeback & out_mask[source]),
            ]

        for u in range(units):
            write_back(u, u, out_group, write_x)
            if folds and units > 1:
                # bank u takes unit (u - rot) mod units's results, one slot further when
                # u < rot (rot = 0 outside FOLD)
                with m.Switch(out_rot):
                    for rot in range(1, units):
                        with m.Case(rot):
                            slot_u = out_group + int(u < rot)
                            write_back(u, (u - rot) % units, slot_u,
                                       Cat(Value.cast(slot_u)[:slot_bits], out_fold_xslot))
        with m.If(writeback & ((out_saturated & out_mask) != 0)):
            m.d.sync += saturated.eq(1)

        def w_address(index_row, index_rhs):
            return Cat(Value.cast(index_rhs)[:rhs_bits], Value.cast(index_row)[:row_bits])

        ops_available = {Op.RESET, Op.UPDATE, Op.SOLVE, Op.READ}
        if incremental:
            ops_available |= {Op.DOWNDATE, Op.PREDICT, Op.LOAD}
        if folds:
            ops_available.add(Op.FOLD)

        command = self.command.payload
        # The command's checks are registered from the port every cycle, into one flip-flop and
        # nothing else; CHECK, the cycle after a transfer, acts on that bit (which then holds
        # the checks of the command taken). So neither the range comparisons nor the decision
        # sits between the command port and the sequencer in the cycle the command is taken.
        size_ok = ((command.n >= 1) & (command.n <= n_max) & (command.k >= 1)
                   & (command.k <= k_max))
        op_ok = Const(0, 1)
        for available in ops_available:
            op_ok = op_ok | (command.op == available)
        if incremental:
            # b = round(sqrt(beta)·2**w) must lie in 1 .. 2**w: not zero, and below 2**w
            # unless it is 2**w itself (bit tests, no carry chain)
            forgetting_ok = (command.forgetting.any()
                             & (~command.forgetting[w] | ~command.forgetting[:w].any()))
            forgets = command.op == Op.UPDATE
            if folds:
                forgets = forgets | (command.op == Op.FOLD)
            op_ok = op_ok & (~forgets | forgetting_ok)
        if folds:
            # FOLD's row count (value) must be at least 1: sign bit clear, some bit set
            rows_ok = ~command.value[w - 1] & command.value.any()
            if fold_downdates:
                # select: FoldKind UPDATE or DOWNDATE; downdates take no forgetting (2**w)
                no_forgetting = command.forgetting[w] & ~command.forgetting[:w].any()
                rows_ok = rows_ok & ~command.select[1] & (~command.select[0] | no_forgetting)
            else:
                # FoldKind.UPDATE only: a FOLD of downdates this core cannot make must not
                # fold the rows in instead
                rows_ok = rows_ok & ~command.select.any()
            op_ok = op_ok & ((command.op != Op.FOLD) | rows_ok)
        command_ok = Signal()
        m.d.sync += command_ok.eq(size_ok & op_ok)
        command_forgetting = Signal.like(forgetting)    # the field, taken with the command
        # The command is taken, and its derived registers loaded, under enables that come
        # from flip-flops, not from a decode of the sequencer's state: ``busy`` is low exactly
        # in IDLE, and ``checking`` (the transfer, registered) is high exactly in CHECK. These
        # registers feed the whole core (the array's forgetting scale and rotation kind among
        # them), and their enables no longer share logic with the sequencer's next state.
        checking = Signal()
        taken = self.command.valid & ~self.busy
        m.d.comb += self.command.ready.eq(~self.busy)
        m.d.sync += checking.eq(taken)
        with m.If(taken):
            m.d.sync += [
                op.eq(command.op),
                select.eq(command.select),
                n.eq(command.n),
                k.eq(command.k),
                lam.eq(command.value),
                command_forgetting.eq(command.forgetting),
                bad.eq(0),
                self.busy.eq(1),
                cycles.eq(1),
                row.eq(0),
                col.eq(0),
                rhs.eq(0),
                group.eq(0),
            ]
        # the decision's registers, one cycle after the transfer (the sequencer's CHECK
        # state overrides row, saturated and refused where the op needs it)
        # the ops that scale by the command's forgetting constant (UPDATE; the updater's FOLD)
        takes_forgetting = op == Op.UPDATE
        if folds and incremental:
            takes_forgetting = takes_forgetting | (op == Op.FOLD)
        # the ops that take rows out (hyperbolic rotations): DOWNDATE, a FOLD of downdates
        takes_out = op == Op.DOWNDATE
        if fold_downdates:
            takes_out = takes_out | ((op == Op.FOLD) & (select == FoldKind.DOWNDATE))
            # a FOLD of downdates that is refused puts the sticky flag back as it was
            saturated_before = Signal(name="fold_saturated_before")
            with m.If(checking):
                m.d.sync += saturated_before.eq(saturated)
        with m.If(checking):
            m.d.sync += [
                total.eq(n + k),
                n_last.eq(n - 1),
                k_last.eq(k - 1),
                last_slot.eq(slot_of(n + k - 1)),
                reset_last_slot.eq(Mux(slot_of(n + k - 1) > k - 1, slot_of(n + k - 1),
                                       k - 1)),
                row_in_last.eq(Mux(op == Op.PREDICT, n, n + k) - 1),
                walk_last_column.eq(Mux(select == Select.R, n, k) - 1),
                forgetting.eq(Mux(takes_forgetting, command_forgetting, 1 << w)),
                hyperbolic.eq(takes_out),
                use_cordic.eq(op != Op.DOWNDATE),
                bad.eq(~command_ok),
                refused.eq(Mux(takes_out, 0, refused)),
            ]
        if folds:
            # -- FOLD: registers of the input writer and of the schedule -------------------
            G = self.fold_generator_latency
            lead, latency = self.fold_lead, self.array_cycles()
            assert lead + latency + 1 < 2 ** len(drain_count)
            max_skew = -(-self.fold_skew_cycles // self.fold_min_period)
            max_work = n_max * slots
            rows = lam                                  # FOLD's row count (value field)
            fold_input = Signal()                       # the input writer takes values
            in_col = Signal(range(columns))
            in_half = Signal()
            rows_in = Signal(w)
            in_col_first = Signal()                     # in_col == 0
            in_col_last = Signal()                      # in_col == n + k - 1
            in_last_row = Signal()                      # rows_in == m - 1
            full = Signal(2)                            # an input half holds a whole row
            first_value = [Signal(signed(w), name=f"fold_first_value_{h}") for h in range(2)]
            fold_work = Signal(range(max_work + 1))     # W = sum of groups_i
            period_length = Signal(range(max(max_work, self.fold_min_period_forgetting) + 1))
            # a FOLD with forgetting (the updater; b < 2**w, so bit w is clear): r_i is scaled
            # on its way into fold_pivots, a longer loop (fold_min_period_forgetting) and
            # scale_latency more cycles before the schedule starts
            fold_forgets = ~forgetting[w] if incremental else Const(0, 1)
            settle_left = Signal(range(scale_latency + 1))
            # a period lasts max(its tasks' groups, P_min' + (its first task's groups when
            # the next period starts one task later)); the last one only its groups
            short_last = Signal.like(period_length)     # P_min' - 1 (see fold_plan)
            skew = Signal(range(max_skew + 1))
            period = Signal(w + 8)                      # the schedule's period p
            period_final = Signal(w + 8)                # m - 1 + s·(n - 1)
            period_has_row = Signal()                   # p < m
            period_slot = Signal(range(row_slots))      # p mod row_slots
            cycle_in_period = Signal.like(period_length)
            starting = Signal()                         # the period's first cycle is pending
            tasks_on = Signal()                         # tasks are left in this period
            task = Signal(range(n_max))                 # pivot i of the current task
            task_group = Signal(range(slots + 1))      # slot of the group's first column
            task_group_last = Signal(range(slots + 1))
            task_row = Signal(signed(w + 9))            # its row p - s·i
            task_slot = Signal(range(row_slots))        # its row slot
            task_first = task_group == slot_of(task)
            # the period's first task: lo (its row p - s·lo, the last row m - 1 at most, and
            # that row's slot); whether the next period starts at lo + 1 (`steps`: counted by
            # to_step, the periods until then); whether the walk is in its first task; the
            # periods left after this one and whether this is the last
            lo = Signal(range(n_max))
            lo_row = Signal(signed(w + 9))
            lo_slot = Signal(range(row_slots))
            to_step = Signal(w + 8)
            steps = Signal()
            in_first_task = Signal()
            periods_left = Signal(w + 8)
            final_period = Signal()
            # the walk is in its last task: the last pivot, or the next task's row is before
            # row 0 (registered with each task)
            last_task = Signal()
            task_valid = (task_row >= 0) & (task_row < rows)
            at_group_last = Signal()                    # task_group == task_group_last
            reached = Signal()                          # the count has reached P_min' - 1
            emit = Signal()                             # the schedule gives a group now
            scheduling = Signal()                       # the schedule runs
            draining = Signal()                         # its last period is over
            drain_left = Signal(range(lead + latency + 1))
            fold_done = Signal()                        # the array's last write is in
            row_ready = Mux(period[0], full[1], full[0])
            advance = ~starting | ~period_has_row | row_ready
            # the generator's operands: r_i, and x[i] of the task's row (pivot 0: the input
            # buffer's first value of the row)
            m.d.comb += [fold_r_rd.addr.eq(task), fold_x_rd.addr.eq(task_slot)]
            fold_b_value = Mux(task == 0, Mux(task_row[0], first_value[1], first_value[0]),
                               fold_x_rd.data)
            setup_issue = Signal()
            if fold_downdates:
                # a FOLD of downdates: some task's rotation was refused (sticky over the
                # command); the rows' parity of the last row m - 1 (which picks the regions)
                fold_refused = Signal()
                fold_last_odd = Signal()
        with m.FSM(name="sequencer") as sequencer:
            with m.State("IDLE"):
                # command.ready is ~busy: high exactly in this state
                with m.If(self.command.valid):
                    m.next = "CHECK"

            # the decision, one cycle after the transfer (busy is high, bad_command low)
            with m.State("CHECK"):
                with m.If(command_ok):
                    # (an If chain, not a Switch on op: Yosys turns a switch that assigns
                    # constants for every op into a ROM, and a ROM in the next-state logic
                    # stops its fsm pass from encoding the sequencer one-hot)
                    with m.If(op == Op.RESET):
                        m.d.sync += [saturated.eq(0), refused.eq(0)]
                        m.next = "RESET"
                    with m.Elif((op == Op.UPDATE) | (op == Op.DOWNDATE) | (op == Op.PREDICT)):
                        m.next = "ROW_IN"
                    with m.Elif(op == Op.SOLVE):
                        m.d.sync += row.eq(n - 1)
                        m.next = "SOLVE_PIVOT"
                    with m.Elif(op == Op.READ):
                        m.next = "READ_ADDRESS"
                    if incremental:
                        with m.Elif(op == Op.LOAD):
                            m.next = "LOAD"
                    if folds:
                        with m.Elif(op == Op.FOLD):
                            m.d.sync += [folding.eq(1), fold_input.eq(1), in_col.eq(0),
                                         in_col_first.eq(1), in_col_last.eq(0),
                                         in_half.eq(0), rows_in.eq(0), full.eq(0),
                                         in_last_row.eq(rows == 1),
                                         fold_work.eq(0), task.eq(0)]
                            if fold_downdates:
                                m.d.sync += [fold_refused.eq(0), fold_last_odd.eq(~rows[0])]
                            m.next = "FOLD_SETUP"
                with m.Else():
                    m.d.sync += self.busy.eq(0)
                    m.next = "IDLE"

            # RESET: A = lam·I in the current half, W = 0
            with m.State("RESET"):
                for u in range(units):
                    column = (group << shift) | u
                    m.d.comb += [
                        a_write_addr[u].eq(a_address(half, row, group)),
                        a_write_data[u].eq(Mux(column == row, lam, 0)),
                        a_write_en[u].eq(group <= last_slot),
                    ]
                with m.If(rhs < k):
                    m.d.comb += [w_wr.addr.eq(w_address(row, rhs)), w_wr.data.eq(0),
                                 w_wr.en.eq(1)]
                m.d.sync += [group.eq(group + 1), rhs.eq(rhs + 1)]
                with m.If(group == reset_last_slot):
                    m.d.sync += [group.eq(0), rhs.eq(0), row.eq(row + 1)]
                    with m.If(row == n_last):
                        m.next = "FINISH"

            # a row [h | t] (or h) into the work row
            with m.State("ROW_IN"):
                m.d.comb += self.i.ready.eq(1)
                for u in range(units):
                    m.d.comb += [x_wr[u].addr.eq(slot_of(col)), x_wr[u].data.eq(self.i.payload),
                                 x_wr[u].en.eq(self.i.valid & (bank_of(col) == u))]
                with m.If(self.i.valid):
                    m.d.sync += col.eq(col + 1)
                    with m.If(col == row_in_last):
                        m.d.sync += col.eq(0)   # row is 0 since the command was taken
                        m.next = "PIVOT_READ"
                        if incremental:
                            with m.If(op == Op.PREDICT):
                                m.next = "PREDICT"

            # fold: pivot i = row (PIVOT_READ .. PIVOT_SCALED for pivot 0; the next pivots'
            # operands come as PIVOT_WRITE and X_WAIT say)
            with m.State("PIVOT_READ"):
                m.d.comb += issue_row.eq(row)
                m.d.comb += issue_group.eq(slot_of(row))
                m.d.sync += [read_bank.eq(bank_of(row)), drain_count.eq(0)]
                m.next = "PIVOT_WAIT"
            with m.State("PIVOT_WAIT"):
                # address register, memory, read register, forgetting scale: upper_scaled
                # holds the pivot's group in cycle 3 + scale_latency after PIVOT_READ
                m.d.sync += drain_count.eq(drain_count + 1)
                with m.If(drain_count == scale_latency + 1):
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
                if cordic_kind:
                    m.d.sync += [vectoring_x.eq(scaled_pivot), vectoring_y.eq(lower_pivot),
                                 vectoring_start.eq(use_cordic)]
                m.d.sync += gen_start.eq(1)
                m.next = "GENERATE"
            with m.State("GENERATE"):
                # gen_start is high (registered in PIVOT_SCALED)
                m.next = "GENERATE_WAIT"
            with m.State("GENERATE_WAIT"):
                with m.If(gen_done):
                    with m.If(array_busy):
                        m.next = "ARRAY_WAIT"
                    with m.Else():
                        m.next = "PIVOT_WRITE"
            with m.State("ARRAY_WAIT"):
                # the previous pivot's groups are still issued or on their way back
                with m.If(~array_busy):
                    m.next = "PIVOT_WRITE"
            with m.State("PIVOT_WRITE"):
                # the array has written the previous pivot's groups back (array_busy is low).
                # Only the refusal's own flags, the issuer's start and the next state depend
                # on rot_refused: the pivot's write, the coefficients, the next row and the
                # read of its a happen either way (a refused fold never switches halves, so
                # they touch only the half it abandons; row is set again by the next
                # command). rot_refused is formed beside the generator, and its fan-out into
                # the sequencer's row and the banks' read addresses, routed across the die,
                # was the worst path of the out-of-context CORDIC core.
                for u in range(units):
                    m.d.comb += [
                        a_write_addr[u].eq(a_address(~half, row, slot_of(row))),
                        a_write_data[u].eq(rot_r),
                        a_write_en[u].eq(bank_of(row) == u),
                    ]
                # the units' coefficients, the issuer's row
                m.d.sync += [apply_row.eq(row), apply_group.eq(slot_of(row)),
                             apply_last.eq(last_slot), rot_c.eq(gen_c), rot_s.eq(gen_s)]
                if cordic_kind:
                    m.d.sync += directions.eq(gen_directions)
                # the next pivot's a = A[i + 1, i + 1] (scaled) is read now (the array's first
                # issue is next cycle), its b = x[i + 1] comes out of the array with the group
                # that holds column i + 1
                m.d.comb += [issue_row.eq(row + 1), issue_group.eq(slot_of(row + 1))]
                m.d.sync += [row.eq(row + 1), read_bank.eq(bank_of(row + 1))]
                with m.If(rot_refused):
                    m.d.sync += refused.eq(1)
                    m.next = "FINISH"
                with m.Else():
                    with m.If(rot_saturated):
                        m.d.sync += saturated.eq(1)
                    m.d.sync += applying.eq(1)      # the array applies this pivot
                    with m.If(row == n_last):
                        m.next = "LAST_DRAIN"
                    with m.Else():
                        m.d.sync += next_pivot_read.eq(1)
                        m.next = "X_WAIT"
            with m.State("X_WAIT"):
                # the write-back of column i + 1 loads the generator as PIVOT_SCALED does
                with m.If(writeback & (out_next_x != 0)):
                    next_x = Signal(signed(w))
                    for u in range(units):
                        with m.If(out_next_x[u]):
                            m.d.comb += next_x.eq(out_lower[u])
                    m.d.sync += [lower.eq(next_x), inverse_mode.eq(0), gen_start.eq(1)]
                    if cordic_kind:
                        m.d.sync += [vectoring_x.eq(pivot), vectoring_y.eq(next_x),
                                     vectoring_start.eq(use_cordic)]
                    m.next = "GENERATE"
            with m.State("LAST_DRAIN"):
                # wait until the array has written the last pivot's groups back
                with m.If(~array_busy):
                    m.d.sync += half.eq(~half)
                    m.next = "FINISH"
            # back substitution: row = i from n - 1 down to 0
            with m.State("SOLVE_PIVOT"):
                m.d.comb += [issue_row.eq(row), issue_group.eq(slot_of(row))]
                m.d.sync += read_bank.eq(bank_of(row))
                m.next = "SOLVE_PIVOT_WAIT"
            with m.State("SOLVE_PIVOT_WAIT"):
                m.next = "SOLVE_PIVOT_MEMORY"
            with m.State("SOLVE_PIVOT_MEMORY"):
                m.next = "SOLVE_PIVOT_DATA"
            with m.State("SOLVE_PIVOT_DATA"):
                m.d.sync += [pivot.eq(a_read_data), lower.eq(0), inverse_mode.eq(1),
                             gen_start.eq(1)]
                m.next = "SOLVE_GENERATE"
            with m.State("SOLVE_GENERATE"):
                # gen_start is high (registered in SOLVE_PIVOT_DATA)
                m.next = "SOLVE_GENERATE_WAIT"
            with m.State("SOLVE_GENERATE_WAIT"):
                with m.If(gen_done):
                    m.d.sync += [rhs.eq(0), z_column.eq(n)]
                    m.next = "SOLVE_Z"
            with m.State("SOLVE_Z"):
                m.d.comb += [issue_row.eq(row), issue_group.eq(slot_of(z_column))]
                m.d.sync += [read_bank.eq(bank_of(z_column)), col.eq(row + 1),
                             col_in_range.eq(row != n_last)]
                m.next = "SOLVE_Z_WAIT"
            with m.State("SOLVE_Z_WAIT"):
                m.next = "SOLVE_Z_MEMORY"
            with m.State("SOLVE_Z_MEMORY"):
                m.next = "SOLVE_Z_DATA"
            with m.State("SOLVE_Z_DATA"):
                m.d.sync += acc.eq(a_read_data << f)
                m.d.sync += signed_g.eq(Mux(pivot < 0, -rot_g, rot_g))
                m.next = "SOLVE_MAC"
            with m.State("SOLVE_MAC"):
                # issue R[i, col] and W[col, rhs]; accumulate the products as they arrive
                issuing = col_in_range  # col < n, registered with col
                m.d.comb += [
                    issue_row.eq(row),
                    issue_group.eq(slot_of(col)),
                    w_read_addr.eq(w_address(col, rhs)),
                    mac_issue.eq(issuing),
                    mac_from_x.eq(0),
                ]
                m.d.sync += read_bank.eq(bank_of(col))
                with m.If(issuing):
                    m.d.sync += [col.eq(col + 1), col_in_range.eq(col != n_last)]
                with m.If(product_valid):
                    m.d.sync += acc.eq(acc - mac_product)
                with m.If(~issuing & (mac_in_flight == 0)):
                    m.d.sync += drain_count.eq(0)
                    m.next = "SOLVE_PRODUCT"
            with m.State("SOLVE_PRODUCT"):
                # wait for acc·g
                m.d.sync += drain_count.eq(drain_count + 1)
                with m.If(drain_count == solve_latency - 1):
                    m.next = "SOLVE_SHIFT"
            with m.State("SOLVE_SHIFT"):
                m.d.sync += solve_shifted.eq(_round_shift_first(solve_product,
                                                                wide_shift_minus_one))
                m.next = "SOLVE_ROUND"
            with m.State("SOLVE_ROUND"):
                m.d.sync += [solve_rounded.eq(_round_shift_second(solve_product, solve_shifted)),
                             solve_clips.eq(_rounded_clips(solve_shifted, w))]
                m.next = "SOLVE_SATURATE"
            with m.State("SOLVE_SATURATE"):
                # the clip test was made in SOLVE_ROUND, beside the rounding
                value, clip = hwfixed.clip_flagged(solve_rounded, w, solve_clips), solve_clips
                zero_pivot = pivot == 0
                m.d.sync += [read_value.eq(Mux(zero_pivot, 0, value)),
                             result_clip.eq(clip | zero_pivot)]
                m.next = "SOLVE_WRITE"
            with m.State("SOLVE_WRITE"):
                m.d.comb += [w_wr.addr.eq(w_address(row, rhs)), w_wr.data.eq(read_value),
                             w_wr.en.eq(1)]
                with m.If(result_clip):
                    m.d.sync += saturated.eq(1)
                m.d.sync += [rhs.eq(rhs + 1), z_column.eq(z_column + 1)]
                with m.If(rhs == k_last):
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
                    m.d.sync += [acc.eq(0), col.eq(0), col_in_range.eq(1)]
                    m.next = "PREDICT_MAC"
                with m.State("PREDICT_MAC"):
                    issuing = col_in_range  # col < n, registered with col
                    m.d.comb += [issue_group.eq(slot_of(col)),
                                 w_read_addr.eq(w_address(col, rhs)),
                                 mac_issue.eq(issuing),
                                 mac_from_x.eq(1)]
                    m.d.sync += read_bank.eq(bank_of(col))
                    with m.If(issuing):
                        m.d.sync += [col.eq(col + 1), col_in_range.eq(col != n_last)]
                    with m.If(product_valid):
                        m.d.sync += acc.eq(acc + mac_product)
                    with m.If(~issuing & (mac_in_flight == 0)):
                        m.next = "PREDICT_ROUND"
                with m.State("PREDICT_ROUND"):
                    m.d.sync += predict_rounded.eq(hwfixed.round_shift(acc, f, "nearest-up"))
                    m.next = "PREDICT_SATURATE"
                with m.State("PREDICT_SATURATE"):
                    value, clip = clip_width(predict_rounded, w)
                    m.d.sync += [read_value.eq(value), result_clip.eq(clip)]
                    m.next = "PREDICT_OUT"
                with m.State("PREDICT_OUT"):
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.value.eq(read_value),
                                 self.o.payload.last.eq(rhs == k_last)]
                    with m.If(self.o.ready):
                        with m.If(result_clip):
                            m.d.sync += saturated.eq(1)
                        m.d.sync += [rhs.eq(rhs + 1), acc.eq(0), col.eq(0),
                                     col_in_range.eq(1)]
                        with m.If(rhs == k_last):
                            m.next = "FINISH"
                        with m.Else():
                            m.next = "PREDICT_MAC"

            # READ / LOAD walk: row over n, col over n (R) or k (Z, W)
            a_column = Mux(select == Select.R, col, n + col)
            walk_last = (row == n_last) & (col == walk_last_column)

            def walk_next():
                with m.If(col == walk_last_column):
                    m.d.sync += [col.eq(0), row.eq(row + 1)]
                with m.Else():
                    m.d.sync += col.eq(col + 1)

            with m.State("READ_ADDRESS"):
                m.d.comb += [issue_row.eq(row), issue_group.eq(slot_of(a_column)),
                             w_read_addr.eq(w_address(row, col))]
                m.d.sync += [read_bank.eq(bank_of(a_column)), read_from_w.eq(select == Select.W),
                             read_zero.eq((select == Select.R) & (col < row))]
                m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                m.next = "READ_MEMORY"
            with m.State("READ_MEMORY"):
                m.next = "READ_DATA"
            with m.State("READ_DATA"):
                m.d.sync += read_value.eq(Mux(read_zero, 0,
                                              Mux(read_from_w, w_data, a_read_data)))
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
                                a_write_addr[u].eq(a_address(half, row, slot_of(a_column))),
                                a_write_data[u].eq(self.i.payload),
                                a_write_en[u].eq(~to_w & keep & (bank_of(a_column) == u)),
                            ]
                        walk_next()
                        with m.If(walk_last):
                            m.next = "FINISH"

            if folds:
                # FOLD: read r_i = A[i, i] (n cycles, i counted in `task`), then the period
                # and skew, then the schedule; the array follows it fold_lead cycles later
                # (below the FSM)
                with m.State("FOLD_SETUP"):
                    m.d.comb += [issue_row.eq(task), issue_group.eq(slot_of(task)),
                                 setup_issue.eq(1)]
                    m.d.sync += [fold_work.eq(fold_work + ((total - 1 - task) >> shift) + 1),
                                 task.eq(task + 1)]
                    with m.If(task == n_last):
                        m.next = "FOLD_SIZES"
                with m.State("FOLD_SIZES"):
                    shortest = Mux(fold_forgets, self.fold_min_period_forgetting,
                                   self.fold_min_period)
                    m.d.sync += [
                        period_length.eq(Mux(fold_work > shortest, fold_work, shortest)),
                        settle_left.eq(Mux(fold_forgets, scale_latency, 0)),
                    ]
                    m.next = "FOLD_SKEW"
                with m.State("FOLD_SKEW"):
                    chosen = Const(max_skew, len(skew))
                    for j in range(max_skew - 1, 0, -1):
                        chosen = Mux(period_length * j >= self.fold_skew_cycles, j, chosen)
                    # P_min' = max(P_min, ceil(X / s)): s periods cover the skew cycles X
                    shortest_of = {j: Mux(fold_forgets,
                                          max(self.fold_min_period_forgetting,
                                              -(-self.fold_skew_cycles // j)),
                                          max(self.fold_min_period,
                                              -(-self.fold_skew_cycles // j))) - 1
                                   for j in range(1, max_skew + 1)}
                    short = shortest_of[max_skew]
                    for j in range(max_skew - 1, 0, -1):
                        short = Mux(period_length * j >= self.fold_skew_cycles, shortest_of[j],
                                    short)
                    m.d.sync += [
                        skew.eq(chosen), short_last.eq(short),
                        period.eq(0), period_slot.eq(0), period_has_row.eq(1),
                        cycle_in_period.eq(0), starting.eq(1), tasks_on.eq(1),
                        task.eq(0), task_group.eq(0), task_row.eq(0), task_slot.eq(0),
                        task_group_last.eq(last_slot), at_group_last.eq(last_slot == 0),
                        lo.eq(0), lo_row.eq(0), lo_slot.eq(0), in_first_task.eq(1),
                        last_task.eq(1), reached.eq(0),
                        to_step.eq(rows - 1), steps.eq(rows == 1),
                        final_period.eq((rows == 1) & (n_last == 0)),
                    ]
                    m.next = "FOLD_SETTLE"
                with m.State("FOLD_SETTLE"):
                    # the last r_i read in FOLD_SETUP is written to fold_pivots by now (with
                    # forgetting, after settle_left more cycles); the schedule's last period
                    # m - 1 + s·(n - 1), from the registered skew (its first use is the first
                    # period's end)
                    spread = n_last * max_skew
                    for j in range(max_skew - 1, 0, -1):
                        spread = Mux(skew == j, n_last * j, spread)
                    m.d.sync += [settle_left.eq(settle_left - 1),
                                 period_final.eq(rows - 1 + spread),
                                 periods_left.eq(rows - 1 + spread)]
                    with m.If(settle_left == 0):
                        m.d.sync += scheduling.eq(1)
                        m.next = "FOLD_RUN"
                with m.State("FOLD_RUN"):
                    # the schedule runs on its own (below the FSM) and, once its last period
                    # is over, counts down the array's lag and latency; then this state ends
                    with m.If(fold_done):
                        if fold_downdates:
                            with m.If(hyperbolic):
                                # the rows went into the other half and the spare in turn,
                                # the last into the other half; a refusal leaves `half`
                                with m.If(fold_refused):
                                    m.d.sync += [refused.eq(1),
                                                 saturated.eq(saturated_before)]
                                with m.Else():
                                    m.d.sync += half.eq(~half)
                            with m.Else():
                                m.d.sync += half.eq(half ^ rows[0])
                        else:
                            m.d.sync += half.eq(half ^ rows[0])
                        m.next = "FINISH"

            with m.State("FINISH"):
                m.d.sync += self.busy.eq(0)
                if folds:
                    m.d.sync += [folding.eq(0), fold_input.eq(0)]
                m.next = "IDLE"
        hwfixed.one_hot_state(sequencer)  # (its next-state decode was a worst path)

        # -- UPDATE / DOWNDATE: the next pivot's a, read in PIVOT_WRITE -----------------------
        with m.If(delay(next_pivot_read, scale_latency + 2, "next_pivot_data")):
            with m.Switch(read_bank):
                for u in range(units):
                    with m.Case(u):
                        m.d.sync += pivot.eq(upper_scaled[u])

        # -- UPDATE / DOWNDATE: the issuer of a pivot's groups -------------------------------
        # Started by PIVOT_WRITE (which issues the read of the next pivot's A[i + 1, i + 1] in
        # its own cycle); after its last group it counts the array's latency down, so that
        # array_busy falls once every group is written back.
        drain_cycles = self.array_cycles(hyperbolic=True)     # multiplier units
        if cordic_kind:
            drain_cycles = Mux(use_cordic, self.array_cycles(), drain_cycles)
        with m.If(applying):
            m.d.comb += [issue_valid.eq(1), issue_row.eq(apply_row),
                         issue_group.eq(apply_group)]
            m.d.sync += apply_group.eq(apply_group + 1)
            with m.If(apply_group == apply_last):
                m.d.sync += [applying.eq(0), apply_drain.eq(drain_cycles)]
        with m.Elif(apply_drain != 0):
            m.d.sync += apply_drain.eq(apply_drain - 1)

        if folds:
            # -- FOLD: the schedule (generator side) ----------------------------------------
            # It runs while `scheduling` (set in FOLD_SETTLE), outside the sequencer, so that
            # its registers' enables are flip-flops and not decodes of the sequencer's state.
            # When its last period ends, a countdown covers the array's lag (fold_lead) and
            # latency; `fold_done` then ends FOLD_RUN.
            # A period walks its tasks lo .. hi (those whose rows exist), then lasts until
            # the next period's tasks are far enough from this period's (fold_plan): its
            # cycle count stops while the first task runs if the next period starts a task
            # later (steps), and the period ends once the walk is over and the count has
            # reached P_min' - 1; the last period ends with its walk.
            # The next period's values are made from this period's registers in every cycle
            # (`next_*`; a period other than the last lasts at least P_min' cycles, so they are
            # ready when it ends), and the period's end is decided from flip-flops: the walk's
            # last group (`last_task`: registered with each task), `reached` (the count has
            # reached P_min' - 1) and `final_period`.
            next_lo = Signal.like(lo)
            next_lo_row = Signal.like(lo_row)
            next_lo_slot = Signal.like(lo_slot)
            next_group = Signal.like(task_group)
            next_group_last = Signal.like(task_group_last)
            next_last_task = Signal()
            next_at_group_last = Signal()
            next_to_step = Signal.like(to_step)
            next_steps = Signal()
            next_final = Signal()
            counting = ~(steps & in_first_task & tasks_on)
            with m.If(steps):
                m.d.sync += [
                    next_lo.eq(lo + 1), next_lo_row.eq(lo_row + 1 - skew),
                    next_lo_slot.eq(Mux(lo_slot + 1 < skew, lo_slot + 1 + row_slots - skew,
                                        lo_slot + 1 - skew)),
                    next_group.eq(slot_of(lo + 1)),
                    next_group_last.eq(slot_of(lo + 1) + ((total - 2 - lo) >> shift)),
                    next_at_group_last.eq(((total - 2 - lo) >> shift) == 0),
                    next_last_task.eq((lo + 1 == n_last) | (lo_row + 1 < 2 * skew)),
                ]
            with m.Else():
                m.d.sync += [
                    next_lo.eq(lo), next_lo_row.eq(lo_row + 1),
                    next_lo_slot.eq(Mux(lo_slot == row_slots - 1, 0, lo_slot + 1)),
                    next_group.eq(slot_of(lo)),
                    next_group_last.eq(slot_of(lo) + ((total - 1 - lo) >> shift)),
                    next_at_group_last.eq(((total - 1 - lo) >> shift) == 0),
                    next_last_task.eq((lo == n_last) | (lo_row + 1 < skew)),
                ]
            m.d.sync += [
                next_to_step.eq(Mux(to_step == 0, skew - 1, to_step - 1)),
                next_steps.eq(Mux(to_step == 0, skew == 1, to_step == 1)),
                next_final.eq(periods_left == 1),
            ]
            walk_over = ~tasks_on | (at_group_last & last_task)
            with m.If(scheduling & advance):
                m.d.sync += starting.eq(0)
                with m.If(counting):
                    m.d.sync += cycle_in_period.eq(cycle_in_period + 1)
                m.d.sync += reached.eq(cycle_in_period + counting >= short_last)
                # (every task walked exists, except in a period that has none, lo > hi: with
                # fewer rows than s, between the last row's pivot i and the first row's pivot
                # i + 1; such a period walks its first task as a bubble)
                m.d.comb += emit.eq(tasks_on & task_valid)
                with m.If(tasks_on):
                    with m.If(at_group_last):
                        m.d.sync += in_first_task.eq(0)
                        with m.If(last_task):
                            m.d.sync += tasks_on.eq(0)
                        with m.Else():
                            m.d.sync += [
                                task.eq(task + 1),
                                task_group.eq(slot_of(task + 1)),
                                task_group_last.eq(slot_of(task + 1)
                                                   + ((total - 2 - task) >> shift)),
                                at_group_last.eq(((total - 2 - task) >> shift) == 0),
                                task_row.eq(task_row - skew),
                                task_slot.eq(Mux(task_slot < skew,
                                                 task_slot + row_slots - skew,
                                                 task_slot - skew)),
                                last_task.eq((task + 1 == n_last) | (task_row < 2 * skew)),
                            ]
                    with m.Else():
                        m.d.sync += [task_group.eq(task_group + 1),
                                     at_group_last.eq(task_group + 1 == task_group_last)]
                with m.If(walk_over & (final_period | reached)):
                    next_slot = Mux(period_slot == row_slots - 1, 0, period_slot + 1)
                    m.d.sync += [
                        period.eq(period + 1), period_slot.eq(next_slot),
                        period_has_row.eq(period + 1 < rows),
                        cycle_in_period.eq(0), reached.eq(0), starting.eq(1), tasks_on.eq(1),
                        in_first_task.eq(1),
                        to_step.eq(next_to_step), steps.eq(next_steps),
                        periods_left.eq(periods_left - 1), final_period.eq(next_final),
                        lo.eq(next_lo), task.eq(next_lo),
                        task_group.eq(next_group), task_group_last.eq(next_group_last),
                        at_group_last.eq(next_at_group_last),
                        lo_row.eq(next_lo_row), task_row.eq(next_lo_row),
                        lo_slot.eq(next_lo_slot), task_slot.eq(next_lo_slot),
                        last_task.eq(next_last_task),
                    ]
                    with m.If(period == period_final):
                        m.d.sync += [scheduling.eq(0), draining.eq(1),
                                     drain_left.eq(lead + latency - 1)]
            with m.If(emit & task_first):
                m.d.sync += [fold_a.eq(fold_r_rd.data), fold_b.eq(fold_b_value),
                             fold_start.eq(1)]
                if cordic_kind:
                    m.d.sync += vectoring_start.eq(1)
            if cordic_kind:
                # the vectoring unit's operands follow the current task in every cycle of a
                # FOLD (the pipelined unit takes them only with its start pulse), so that the
                # schedule's stall test (the input buffer's full flags) does not reach their
                # enables: that was the CORDIC core's worst path (10.0 ns, 99.9 MHz, seed 1)
                with m.If(folding):
                    m.d.sync += [vectoring_x.eq(fold_r_rd.data), vectoring_y.eq(fold_b_value)]
            m.d.sync += fold_done.eq(0)
            with m.If(draining):
                m.d.sync += drain_left.eq(drain_left - 1)
                with m.If(drain_left == 0):
                    m.d.sync += [draining.eq(0), fold_done.eq(1)]

            # -- FOLD: input writer ---------------------------------------------------------
            # (fold_input is high until the last row is in; the column and row tests are
            # flags registered with the counters, so that `i.ready` is two flip-flops deep)
            half_full = Mux(in_half, full[1], full[0])
            with m.If(fold_input & ~half_full):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    for u in range(units):
                        m.d.comb += [
                            in_wr[u].addr.eq(Cat(slot_of(in_col)[:slot_bits], in_half)),
                            in_wr[u].data.eq(self.i.payload),
                            in_wr[u].en.eq(bank_of(in_col) == u),
                        ]
                    with m.If(in_col_first):
                        with m.If(in_half):
                            m.d.sync += first_value[1].eq(self.i.payload)
                        with m.Else():
                            m.d.sync += first_value[0].eq(self.i.payload)
                    m.d.sync += [in_col.eq(in_col + 1), in_col_first.eq(0),
                                 in_col_last.eq(in_col + 1 == row_in_last)]
                    with m.If(in_col_last):
                        m.d.sync += [in_col.eq(0), in_col_first.eq(1), in_col_last.eq(0),
                                     in_half.eq(~in_half), rows_in.eq(rows_in + 1),
                                     in_last_row.eq(rows_in + 2 == rows)]
                        with m.If(in_last_row):
                            m.d.sync += fold_input.eq(0)
                        with m.If(in_half):
                            m.d.sync += full[1].eq(1)
                        with m.Else():
                            m.d.sync += full[0].eq(1)

            # -- FOLD: the generator's results ------------------------------------------------
            # r_i into fold_pivots: from A in FOLD_SETUP (the read's data three cycles after
            # its issue), then from each task's rotation
            if cordic_kind:
                m.d.comb += [fold_gen_valid.eq(folding & vectoring.o.valid),
                             fold_gen_r.eq(vectoring.o.payload.magnitude),
                             fold_gen_saturated.eq(vectoring.o.payload.saturated)]
            else:
                fold_gen_refuses = Signal() if fold_downdates else None
                self._fold_multiplier_generator(m, fold_a, fold_b, fold_start, fold_gen_valid,
                                                fold_gen_r, fold_gen_saturated, fold_gen_c,
                                                fold_gen_s,
                                                hyperbolic if fold_downdates else None,
                                                fold_gen_refuses)
                if fold_downdates:
                    with m.If(fold_gen_valid & fold_gen_refuses):
                        m.d.sync += fold_refused.eq(1)
            setup_write = delay(setup_issue, 3, "fold_setup_write")
            setup_row = delay(task, 3, "fold_setup_row")
            setup_bank = delay(bank_of(task), 3, "fold_setup_bank")
            task_done = delay(task, 1 + G, "fold_task_done")

            def write_pivot(port, setup, row, bank, values, generated, generated_row, value,
                            generated_saturated=None):
                # fold_pivots' write: r_i from A in FOLD_SETUP (the value of its bank), else
                # a task's generated r (and its clip into the sticky flag). (The port is an
                # argument, not a closure: Amaranth names its signals after elaborate's
                # local variable, which a closure would hide.)
                with m.If(setup):
                    m.d.comb += [port.addr.eq(row), port.en.eq(1)]
                    with m.Switch(bank):
                        for u in range(units):
                            with m.Case(u):
                                m.d.comb += port.data.eq(values[u])
                with m.Elif(generated):
                    m.d.comb += [port.addr.eq(generated_row), port.en.eq(1),
                                 port.data.eq(value)]
                    if generated_saturated is not None:
                        with m.If(generated_saturated):
                            m.d.sync += saturated.eq(1)

            write_pivot(fold_r_wr, setup_write, setup_row, setup_bank, a_data, fold_gen_valid,
                        task_done, fold_gen_r, fold_gen_saturated)
            if incremental:
                # FOLD with forgetting: the next row's task i must see sqrt(beta)·r_i, as the
                # array's read scales A[i, :] (the model scales the pivot's row as the row
                # reaches it: R's row i changes only at pivot i, so scaling it there is
                # scaling R before the row). The register file then holds r_i scaled, rounded
                # as the array rounds (round(r·b / 2**w)), written scale_latency cycles later:
                # in FOLD_SETUP the array's own scaled read of A[i, i] (upper_scaled, that
                # many cycles after a_data), afterwards the generator's r (a register) times
                # b. (A multiplexer of the two in front of one multiplier was a worst path.)
                r_forgetting = _spread_copies(m, forgetting, 1, 1, "fold_forgetting")[0]
                r_scaled = Signal(signed(w), name="fold_r_scaled")
                _scale_by_forgetting(m, fold_gen_r, r_forgetting, r_scaled, "fold_forget")
                setup_scaled = delay(setup_write, scale_latency, "fold_setup_scaled")
                setup_scaled_row = delay(setup_row, scale_latency, "fold_setup_scaled_row")
                setup_scaled_bank = delay(setup_bank, scale_latency, "fold_setup_scaled_bank")
                gen_scaled = delay(fold_gen_valid, scale_latency, "fold_gen_scaled")
                gen_scaled_row = delay(task_done, scale_latency, "fold_gen_scaled_row")
                with m.If(fold_forgets):
                    m.d.comb += fold_r_wr.en.eq(0)
                    write_pivot(fold_r_wr, setup_scaled, setup_scaled_row, setup_scaled_bank,
                                upper_scaled, gen_scaled, gen_scaled_row, r_scaled)

            # -- FOLD: the array follows the schedule fold_lead cycles later ------------------
            issue_tags = [emit, task, task_group, task_slot, task_row[0], task == 0,
                          at_group_last, bank_of(task), task_first]
            if fold_downdates:
                issue_tags.append(task_row == 0)
            late_tags = [delay(tag, lead, f"fold_late_{index}")
                         for index, tag in enumerate(issue_tags)]
            (late_emit, late_task, late_group, late_slot, late_parity, late_inbuf,
             late_last, late_rot, late_first, *late_fold_downdate) = late_tags
            with m.If(late_emit):
                m.d.comb += [issue_valid.eq(1), issue_row.eq(late_task),
                             issue_group.eq(late_group), issue_half.eq(half ^ late_parity),
                             issue_xslot.eq(late_slot), issue_inbuf.eq(late_inbuf),
                             issue_parity.eq(late_parity), issue_fold.eq(1),
                             issue_first.eq(late_first)]
                if units > 1:
                    m.d.comb += issue_rot.eq(late_rot)
                if fold_downdates:
                    # updates: row r reads the half row r - 1 wrote and writes the other.
                    # Downdates: row r writes the other half when r and m - 1 have the same
                    # parity (so the last row does), else the spare, and reads what row r - 1
                    # wrote (row 0: the current half); `half` is never written, so a refused
                    # FOLD leaves it as it was
                    late_first_row, = late_fold_downdate
                    same = ~(late_parity ^ fold_last_odd)
                    with m.If(hyperbolic):
                        m.d.comb += [
                            issue_half.eq(Mux(late_first_row, half, Mux(same, 0, ~half))),
                            issue_spare.eq(~late_first_row & same),
                            issue_write_half.eq(Mux(same, ~half, 0)),
                            issue_write_spare.eq(~same),
                        ]
                    with m.Else():
                        m.d.comb += issue_write_half.eq(~(half ^ late_parity))
                # the row's input half is free once its pivot-0 groups are issued
                with m.If(late_inbuf & late_last):
                    with m.If(late_parity):
                        m.d.sync += full[1].eq(0)
                    with m.Else():
                        m.d.sync += full[0].eq(0)
        return m

    def _fold_multiplier_generator(self, m, a, b, start, valid, r, saturated, c_reg, s_reg,
                                   hyperbolic=None, refuses=None):
        """FOLD's rotation generator for multiplier rotations: the arithmetic of the
        sequencer's generator (:func:`~tiersolve.gen.qr_model.generate_rotation`) as a
        pipeline that takes a pair ``(a, b)`` every cycle, with a pipelined reciprocal square
        root. ``a``, ``b`` hold from the cycle after ``start``'s; ``r``, ``saturated`` and the
        ``valid`` pulse come :attr:`fold_generator_latency` cycles later (``square_latency``
        + 4 + reciprocal latency + ``coefficient_product_latency`` + 3); ``c_reg``, ``s_reg``
        hold the rotation in the cycle of ``valid`` (registers that change with every pair,
        so the units' copies load them on ``valid``). With ``hyperbolic`` (a signal that holds
        through the FOLD; None: circular rotations only) it makes hyperbolic rotations while
        that is high, ``p = a² - b²``, and ``refuses`` (registered beside ``r``) tells that
        the model would refuse the rotation: ``p <= 0``, or ``c`` or ``s`` clips."""
        config, w = self.config, self.fmt.width
        mantissa_bits = config.mantissa_bits
        coefficient = config.coefficient_format
        one = 1 << config.coefficient_frac_bits

        def delay(signal, cycles, name):
            return hwfixed.delay_line(m, signal, cycles, f"fold_gen_{name}")

        # squares (square_latency), then p = a² + b²
        a_square = hwfixed.pipelined_product(m, a, a, "fold_gen_a_square")
        b_square = hwfixed.pipelined_product(m, b, b, "fold_gen_b_square")
        ahead = self.square_latency                     # cycles after the operands
        p = Signal(signed(2 * w + 2), name="fold_gen_p")
        if hyperbolic is None:
            m.d.sync += p.eq(a_square + b_square)
        else:
            # a register of its own beside the squares (the command's flag, held through
            # the FOLD), so that no decode reaches the adder
            subtract = Signal(name="fold_gen_hyperbolic")
            m.d.sync += [subtract.eq(hyperbolic),
                         p.eq(Mux(subtract, a_square - b_square, a_square + b_square))]
        ahead += 1
        # leading one and p <= 0
        leading_one = _leading_one(m, p, "fold_gen_leading_one")
        leading = Signal(signed(8), name="fold_gen_leading")
        nonpositive = Signal(name="fold_gen_nonpositive")
        m.d.sync += [leading.eq(leading_one), nonpositive.eq(p <= 0)]
        ahead += 1
        # the normaliser's shift S = e + (M - 2) / 2 and its two rounding offsets
        exponent = _normaliser_exponent(leading, mantissa_bits)
        shift = Signal(range(2 * w + mantissa_bits + 2), name="fold_gen_shift")
        shift_minus_one = Signal.like(shift, name="fold_gen_shift_minus_one")
        wide_shift_minus_one = Signal(range(3 * w + mantissa_bits + 2),
                                      name="fold_gen_wide_shift_minus_one")
        shifts = _normaliser_shifts(exponent, mantissa_bits, w)
        m.d.sync += [shift.eq(shifts[0]), shift_minus_one.eq(shifts[1]),
                     wide_shift_minus_one.eq(shifts[2])]
        ahead += 1
        # the mantissa q, then its reciprocal square root g
        p_now = delay(p, 2, "p_normalised")
        q = Signal(signed(mantissa_bits + 1), name="fold_gen_q")
        m.d.sync += q.eq(_mantissa(p_now, shift, mantissa_bits))
        ahead += 1
        reciprocal = ReciprocalUnit(config.mantissa_format, config.rsqrt_format, "rsqrt",
                                    "pipelined")
        assert reciprocal.latency == self.reciprocal_latency
        m.submodules.fold_reciprocal = reciprocal
        m.d.comb += [reciprocal.i.valid.eq(1), reciprocal.i.payload.eq(q),
                     reciprocal.o.ready.eq(1)]
        ahead += reciprocal.latency
        g = reciprocal.o.payload.value
        # a·g, b·g, p·g (aligned on the slowest), then the two rounding cycles, then the clips
        g_width = config.rsqrt_format.width
        c_product = hwfixed.pipelined_product(m, delay(a, ahead, "a"), g, "fold_gen_c_product")
        s_product = hwfixed.pipelined_product(m, delay(b, ahead, "b"), g, "fold_gen_s_product")
        r_product = hwfixed.pipelined_product(m, delay(p, ahead - 1 - self.square_latency,
                                                       "p"), g, "fold_gen_r_product")
        slowest = self.coefficient_product_latency
        short = slowest - product_latency(w, g_width)
        c_product = delay(c_product, short, "c_aligned")
        s_product = delay(s_product, short, "s_aligned")
        r_product = delay(r_product, slowest - product_latency(2 * w + 2, g_width),
                          "r_aligned")
        ahead += slowest
        behind = ahead - (self.square_latency + 3)       # since shift was registered
        shift_now = delay(shift, behind, "shift")
        shift_minus_one_now = delay(shift_minus_one, behind, "shift_minus_one")
        wide_now = delay(wide_shift_minus_one, behind, "wide_shift_minus_one")
        c_shifted = Signal.like(c_product, name="fold_gen_c_shifted")
        s_shifted = Signal.like(s_product, name="fold_gen_s_shifted")
        r_shifted = Signal.like(r_product, name="fold_gen_r_shifted")
        m.d.sync += [c_shifted.eq(_round_shift_first(c_product, shift_minus_one_now)),
                     s_shifted.eq(_round_shift_first(s_product, shift_minus_one_now)),
                     r_shifted.eq(_round_shift_first(r_product, wide_now))]
        c_rounded = Signal(signed(len(c_product) + 1), name="fold_gen_c_rounded")
        s_rounded = Signal(signed(len(s_product) + 1), name="fold_gen_s_rounded")
        r_rounded = Signal(signed(len(r_product) + 1), name="fold_gen_r_rounded")
        r_clips = Signal(name="fold_gen_r_clips")
        c_clip = Signal(name="fold_gen_c_clips")
        s_clip = Signal(name="fold_gen_s_clips")
        shift_is_zero = delay(shift_now == 0, 1, "shift_is_zero")
        c_late = delay(c_product, 1, "c_product")
        s_late = delay(s_product, 1, "s_product")
        m.d.sync += [
            c_rounded.eq(_round_shift_second(c_late, c_shifted, shift_is_zero)),
            s_rounded.eq(_round_shift_second(s_late, s_shifted, shift_is_zero)),
            r_rounded.eq(_round_shift_second(delay(r_product, 1, "r_product"), r_shifted)),
            r_clips.eq(_rounded_clips(r_shifted, w)),
        ]
        # every clip test beside its rounding, as in the one-row generator (a shift of 0
        # keeps the product itself). Circular rotations have |c|, |s| <= 1 plus a rounding
        # against a Q4 coefficient format, so these two fire only for hyperbolic ones (and
        # then the model refuses the rotation)
        for clips, late, shifted in ((c_clip, c_late, c_shifted), (s_clip, s_late, s_shifted)):
            m.d.sync += clips.eq(_round_shift_clips(late, shifted, coefficient.width,
                                                    shift_is_zero))
        c_value = hwfixed.clip_flagged(c_rounded, coefficient.width, c_clip)
        s_value = hwfixed.clip_flagged(s_rounded, coefficient.width, s_clip)
        r_value = hwfixed.clip_flagged(r_rounded, w, r_clips)
        vanished = delay(nonpositive, ahead + 2 - (self.square_latency + 2), "nonpositive")
        m.d.sync += [
            c_reg.eq(Mux(vanished, one, c_value)),
            s_reg.eq(Mux(vanished, 0, s_value)),
            r.eq(Mux(vanished, 0, r_value)),
            saturated.eq(~vanished & (c_clip | s_clip | r_clips)),
        ]
        if hyperbolic is not None:
            m.d.sync += refuses.eq(delay(subtract, ahead + 2 - (self.square_latency + 1),
                                         "hyperbolic") & (vanished | c_clip | s_clip))
        ahead += 3
        assert ahead == self.fold_generator_latency, (ahead, self.fold_generator_latency)
        m.d.comb += valid.eq(delay(start, ahead, "valid"))


class QRSolver(IncrementalUpdater):
    """Givens QR least-squares core: RESET to ``R = √λ·I``, stream rows in with UPDATE (``β``
    is ignored: no forgetting hardware), SOLVE, READ ``W`` (or ``R``, ``Z``).

    The same datapath as :class:`IncrementalUpdater` without forgetting multipliers,
    hyperbolic rotations (DOWNDATE), PREDICT and LOAD (those ops set ``bad_command``).
    Parameters, members and timing are those of :class:`IncrementalUpdater`.
    """

    incremental = False


def _build_updater(fmt, n_max=8, k_max=2, units=2, rotation="cordic", fold=True):
    return IncrementalUpdater(n_max, k_max, fmt, units=units, rotation=rotation, fold=fold)


def _build_qr(fmt, n_max=8, k_max=2, units=2, rotation="cordic", fold=True):
    return QRSolver(n_max, k_max, fmt, units=units, rotation=rotation, fold=fold)


_PARAMETERS = (
    registry.Parameter("n_max", int, 8, "largest n (columns of H)"),
    registry.Parameter("k_max", int, 2, "largest k (columns of T)"),
    registry.Parameter("units", int, 2, "rotation units (power of two)"),
    registry.Parameter("rotation", str, "cordic", "rotation kind", choices=("cordic",
                                                                             "multiplier")),
    registry.Parameter("fold", registry.flag, True,
                       "the FOLD command (rows in flight together); 0 leaves it out"),
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

