"""Cholesky solver core: one-step ridge solve ``(HᵀH + λI) W = HᵀT`` in fixed point.

The arithmetic (formats, rounding, flags) is defined by the bit-exact model
:func:`tiersolve.gen.cholesky_model.cholesky_model`; read its module docstring first.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import registry
from .checks import silent_if_refused
from .cholesky_model import (
    Phase,
    bank_chunks,
    broadcast_stage,
    check_cholesky_parameters,
    check_inverse_format,
    late_term_default,
    multiplier_latencies,
    pipeline_delays,
    read_stage,
    wide_bits,
)
from .hwfixed import clip_width, delay_line, one_hot_state, pipelined_product, round_even
from .hwmem import BLOCK_RAM_WORDS, chunked_memory

__all__ = ["CholeskySolver", "MODE_DIRECT", "MODE_GRAM"]

#: ``command.mode`` values.
MODE_GRAM = 0
MODE_DIRECT = 1

# which loop feeds the shared pipeline (held until the pipeline has drained)
_KIND_CLEAR, _KIND_GRAM, _KIND_FACTOR, _KIND_BACK = range(4)


def _ceil_log2(value: int) -> int:
    return (value - 1).bit_length()


class CholeskySolver(wiring.Component):
    """Fixed-point Cholesky solver for ``(A + λI) X = B``, with ``A = HᵀH``, ``B = HᵀT``
    accumulated on chip (Gram mode) or written directly (direct mode).

    The core computes exactly what :func:`tiersolve.gen.cholesky_model.cholesky_model`
    computes: ``A = L Lᵀ`` with ``1/L_jj`` from a reciprocal-square-root unit
    (:class:`tiersolve.gen.recip.ReciprocalUnit`), so every entry of ``L`` is one multiply and
    no divider or square root is built; the forward substitution ``Y = L⁻¹B`` runs as ``k``
    extra rows of the factorisation; the back substitution ``Lᵀ X = Y`` follows; ``X`` streams
    out. One bitstream serves every ``n <= n_max``, ``k <= k_max`` and λ.

    Architecture
    ------------
    Storage is an *augmented* matrix of ``n + k`` rows and ``n`` columns (lower triangle of
    ``A``, then ``Bᵀ``) in ``lanes`` banks of :class:`~amaranth.lib.memory.Memory`: row ``i``
    lives in bank ``i mod lanes``. Every bank has two read ports: port A gives each lane its own
    row, port B (the same address in every bank, one bank selected) broadcasts the pivot row.
    Words are ``w + f + guard_bits`` bits: entries not yet factorised hold ``2f`` fractional
    bits, factorised ones hold ``L`` (sign-extended ``fmt``).

    * Gram mode: the memory is cleared to ``λ·I`` (``lanes`` words a cycle), then each row
      ``[h | t]`` is received (one value a cycle) into a small row buffer and added in:
      for each column ``j``, the lanes update rows ``j .. n+k-1`` of column ``j``, ``lanes``
      multiply-adds per cycle.
    * Factorisation, left-looking, column ``j``: the rows ``j .. n+k-1`` are taken in blocks of
      consecutive rows (the rows of a block always sit in different banks, so a block may start
      in any bank): first the *head*, rows ``j .. j+t-1`` with
      ``t = (n + k - j - 1) mod lanes + 1`` (it holds the pivot row), then whole blocks of
      ``lanes`` rows. For each block the lanes form ``Σ_{q<j} L_iq·L_jq`` in ``j`` cycles (one
      product per lane per cycle, exact accumulators), read ``M_ij`` in one more, round ``s_i``
      and store it in a small per-lane buffer; the pivot ``s_j`` goes to the rsqrt unit while
      the other blocks are issued. A head of at most ``lanes/2`` rows (and ``j >= 3``) is
      *split*: lane ``b`` sums ``q = j - h .. j - 1`` (``h = j // 2 + 1``) with the pivot row
      read by port A of the pivot's bank, its partner lane ``b XOR lanes/2`` sums
      ``q = 0 .. j - h - 1`` from port B of bank ``b`` with the pivot row from port B, and the
      partner's sum is subtracted from ``M_ij`` at the operand stage (it is complete one cycle
      before), so the head takes ``h + 1`` cycles instead of ``j + 1`` and otherwise idle lanes
      work (:func:`~tiersolve.gen.cholesky_model.head_is_split`). Each block's *scaling block*
      (one a cycle, in its own pipeline) then writes ``L_ij = s_i·(1/√s_j)`` for its rows into
      the matrix, reading the ``s`` values back from the buffer, as soon as they are stored and
      the column's pivot inverse is known: the scaling trails the dot products block by block,
      while they go on with the column's later blocks and the next column, and costs them no
      issue cycle. A column's blocks cover the same rows as the previous column's (or its head
      is the previous head's rows minus the pivot row), so only a block's step ``q = j`` (which
      reads column ``j``, its own rows and the pivot row) waits, if the scaling block of those
      rows is not yet readable. So the pipeline never drains between columns, and the pivot
      chain (``≈ 17 + rsqrt latency`` cycles from a head's last step to the next column's step
      that reads it) costs cycles only while the rest of the column, ``(B_j - 1)·(j + 1)``
      steps, is shorter. In the factorisation only the scaling blocks write the matrix, so its
      write ports are never contended; the next inverse is taken from the unit only after the
      last scaling block of the previous column (with these latencies it never has to wait).
    * Back substitution, ``i = n-1 .. 0``, each right-hand side ``c``: the lanes read column
      ``i`` of ``L`` (rows ``> i + 1``, ``lanes`` at a time, all banks in parallel) and ``X``
      (banked the same way), an adder tree of ``log2(lanes)`` registered levels sums the
      products, then the sum and the *late term* ``L[i+1, i]·X[i+1, c]`` are subtracted from
      ``Y_ci``, rounded and scaled by ``1/L_ii`` (read from the pivot-inverse buffer as the
      value travels, so rows overlap in the pipeline). The late term's operands come from two small
      buffers, the subdiagonal of ``L`` (written by the factorisation's scaling blocks) and
      the last row's ``X`` (written as ``X`` is), read at the stage that puts their product
      (one more multiplier) just before the subtraction, so a row needs the value of the row
      below it ``10 + P_d + P_s`` cycles after that row's step (see Timing), not after the
      whole trip through the reads and the adder tree. Row ``i - 1`` follows row ``i``
      without a drain; only the last step of its first right-hand side (whose late term
      reads ``X[i, 0]``) and its first step (which reads ``X[i + 1, 0]``) wait until those
      values are written.

    Pipelining (out of context on ECP5-85F speed 6: 124.8 MHz for ``n_max=16, k_max=4,
    lanes=4`` and 112.3 MHz for ``64, 10, 4``, from ``tiersolve bench cholesky --synth
    --synth-config 16,4,4 64,10,4``; placement moves these by several per cent; wide cores
    are slower: a 64-lane core fills 84 % of the LUTs): every memory read address (beside
    each block RAM chunk of a matrix bank), memory output, multiplier operand and product is
    registered; a matrix bank deeper than one block RAM is built in block-RAM-sized chunks,
    each read into a register before the chunk is selected
    (:func:`~tiersolve.gen.hwmem.chunked_memory`; on ECP5 that register is the block RAM's own
    output register, for the banks, ``X``, the Gram row and the column buffers alike); from 8
    lanes, and from 2 when the banks are deeper than one block RAM, the read words pass one
    more register before the bank multiplexers
    (:func:`~tiersolve.gen.cholesky_model.read_stage`); from 8 lanes the fetched words and
    the pivot-row broadcast one more before they fan out to the lanes
    (:func:`~tiersolve.gen.cholesky_model.broadcast_stage`); the issued block's lane masks are
    decoded a stage after the issue; a product whose operands are wider than one 18x18
    hardware multiplier is cut into partial products that each fit one
    (``MULTIPLIER_WIDTH``), every partial product is registered and they are summed pairwise
    one registered level per cycle
    (:func:`~tiersolve.gen.cholesky_model.product_latency`: 3 cycles for 24 × 24, so Q8.16
    cores pay a few cycles of latency, see Timing); the write ports' source is selected by
    registers (the direct-input state, the pipeline kind), never by a comparator; every
    round-and-clip (``s``, ``L``, the back-substitution sum, ``X``) takes two cycles, the
    rounding adder and the clip each with its own register, and the back-substitution value
    has a third register before lane 0's operand multiplexer; every clip detector feeds a
    registered event, ORed into the sticky ``saturated`` flag one cycle later; the issue
    stage decodes the current block and the scaling block in parallel, each into its
    own pipeline (no late selection).

    Multipliers: ``2·lanes + 1`` products (one dot-product multiplier ``w × w`` and one
    scaling multiplier ``w × inverse_format.width`` per lane, and the back substitution's
    late term ``w × w``; each is one hardware multiplier up to 18 × 18 bits, four for 24 ×
    24), fed straight from registers. Block RAM: the
    matrix memory, ``ceil((n_max + k_max)/lanes)·2**ceil(log2 n_max)`` words of
    ``w + f + guard_bits`` bits per bank, read by two ports (Yosys duplicates each chunk), plus
    small buffers (solution ``X``, banked for the lanes, and an unbanked copy of it,
    ``n_max·2**ceil(log2 k_max)`` words, that only the output reads; one Gram row; the pivot
    inverses; the subdiagonal of ``L`` and the last row of ``X`` for the late term; and per
    lane one column's ``s`` values, ``ceil((n_max + k_max)/lanes)`` words).

    Parameters
    ----------
    n_max : int
        Largest ``n`` (2..1024).
    k_max : int
        Largest number of right-hand sides ``k`` (1..256).
    fmt : FixedFormat or str
        Data format of ``H``, ``T``, ``A``, ``B``, λ, ``L``, ``1/L_jj`` and ``X`` (at most 24
        bits, at least one fractional bit).
    lanes : int
        Parallel multiply-accumulate lanes, a power of two (1..64).
    guard_bits : int
        Extra integer bits of the wide (Gram) words (2..8, default 4).
    inverse_format : FixedFormat or str or None
        Format of the pivot inverses ``1/√s_j`` (default: ``fmt``). Pivots below
        ``inverse_format.max**-2`` clip (flagged); give it more integer bits for
        ill-conditioned systems. The scaling multipliers are ``w × inverse_format.width``.
    rsqrt_mode : str
        ``mode`` of the :class:`~tiersolve.gen.recip.ReciprocalUnit` (default ``"iterative"``:
        one pivot per column does not need a pipelined unit).
    late_term : bool or None
        Add the back substitution's late term (one more ``w × w`` multiplier and two small
        buffers; see Architecture). None (default): from 2 lanes
        (:func:`~tiersolve.gen.cholesky_model.late_term_default`); the one-lane cores of an
        iCE40UP5K have no multiplier to spare.

    Members
    -------
    command : ``In(stream.Signature(StructLayout({"mode": 1, "n", "k", "lam": signed(w)})))``
        Starts a job: ``mode`` (:data:`MODE_GRAM` or :data:`MODE_DIRECT`), sizes ``n`` and
        ``k`` and λ (stored integer of ``fmt``). Accepted only when idle or done.
    i : ``In(stream.Signature(StructLayout({"value": signed(w), "last": 1})))``
        Gram mode: rows ``[h | t]`` of ``n + k`` values; ``last`` on the final value of the
        final row ends the accumulation (``last`` elsewhere is ignored). Direct mode: exactly
        ``n`` rows ``[A_i | B_i]`` of ``n + k`` values (``last`` ignored; entries above the
        diagonal of ``A`` are ignored).
    o : ``Out(stream.Signature(StructLayout({"value": signed(w), "last": 1})))``
        ``X`` in row-major order (``X[0, 0], X[0, 1], ...``), ``last`` on the final value.
        Nothing is sent when the job fails (not positive definite or bad command).
    busy, done : ``Out(1)``
        ``busy`` from the cycle after the command's transfer to the end of the job; ``done``
        after it until the next command.
    phase : ``Out(3)``
        :class:`tiersolve.gen.cholesky_model.Phase` of the job.
    cycles : ``Out(32)``
        Cycles of the job (stops when it ends): from the cycle after the command's check (the
        transfer's cycle and the check's are not counted).
    npd, npd_index : ``Out(1)``, ``Out(range(n_max))``
        A pivot was not positive; its column index. The job then ends without output.
    saturated : ``Out(1)``
        Sticky: a value was clipped during the job.
    bad_command : ``Out(1)``
        ``n`` or ``k`` was 0 or too large; the job ended in the check (the cycle after the
        transfer, with ``busy`` high), and ``cycles`` is 0.

    Timing
    ------
    Cycle counts per phase are given exactly by
    :func:`tiersolve.gen.cholesky_model.cycle_model` (a test checks them against simulation),
    with ``B_j = ceil((n + k - j)/lanes)`` blocks in column ``j`` and the product latencies
    ``P_d`` (``w × w``) and ``P_s`` (``w × inverse_format.width``), 1 up to 18 bits and 3 for
    24 × 24 (:func:`~tiersolve.gen.cholesky_model.pipeline_delays` collects the delays below).
    Gram mode, per row: ``n + k`` input cycles, ``Σ_j B_j`` update cycles and ``7 + P_d``
    cycles of drain (the clear pass is the same without the input). Factorisation: one
    dot-product step a cycle (per column the head's ``h + 1`` or ``j + 1`` steps and
    ``(B_j - 1)·(j + 1)`` for the whole blocks; the scaling blocks go in parallel) plus the
    cycles a step ``q = j - 1`` waits for column ``j - 1``'s scaling block of its rows (the
    pivot inverse is known ``8 + P_d + rsqrt_latency`` cycles after the head's last step, a
    block's scaling block may be issued ``7 + P_d`` cycles after the block's last step, one
    scaling block a cycle, and its ``L`` is readable ``6 + P_s`` cycles after it), then the
    scaling blocks still to go after the last column's last step and ``7 + P_s`` cycles of
    drain after them; ``cycle_model`` replays this schedule. Back substitution, per row ``i``:
    ``k·max(1, ceil((n - 2 - i)/lanes))`` issue cycles; the last step of the next row's first
    right-hand side issued no earlier than ``10 + P_d + P_s`` cycles after this row's, and
    the first step of the row after next no earlier than ``B = 10 + log2(lanes) + P_d + P_s``
    (+ 1 with the read stage, + 1 from 8 lanes: the broadcast stage) after it; ``B + 1``
    cycles of drain after the last row. Without the late term (``late_term=False``):
    ``k·max(1, ceil((n - 1 - i)/lanes))`` issue cycles, the next row's first step no earlier
    than ``B`` after the last step of this row's first right-hand side. Output: 2 cycles per
    element.
    The command is accepted in the cycle after the previous job ends; its fields and range
    check are registered as it is taken and acted on in the next cycle (``CHECK``), one cycle
    before the job's first counted cycle.
    """

    @silent_if_refused  # a rejected design is not an unused one
    def __init__(self, n_max: int, k_max: int, fmt, lanes: int = 1, *, guard_bits: int = 4,
                 inverse_format=None, rsqrt_mode: str = "iterative", late_term=None):
        from .recip import ReciprocalUnit

        self.fmt = check_cholesky_parameters(n_max, k_max, fmt, lanes, guard_bits)
        self.inverse_format = check_inverse_format(inverse_format, self.fmt)
        # built here (it validates rsqrt_mode and tells its latency), used by elaborate
        self._rsqrt = ReciprocalUnit(self.fmt, self.inverse_format, "rsqrt", rsqrt_mode)
        self.n_max = int(n_max)
        self.k_max = int(k_max)
        self.lanes = int(lanes)
        self.guard_bits = int(guard_bits)
        self.rsqrt_mode = rsqrt_mode
        self.rsqrt_latency = self._rsqrt.latency
        self.late_term = late_term_default(self.lanes, late_term)
        w = self.fmt.width
        super().__init__({
            "command": In(stream.Signature(data.StructLayout({
                "mode": 1, "n": range(self.n_max + 1), "k": range(self.k_max + 1),
                "lam": signed(w)}))),
            "i": In(stream.Signature(data.StructLayout({"value": signed(w), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"value": signed(w), "last": 1}))),
            "busy": Out(1),
            "done": Out(1),
            "phase": Out(3),
            "cycles": Out(32),
            "npd": Out(1),
            "npd_index": Out(range(self.n_max)),
            "saturated": Out(1),
            "bad_command": Out(1),
        })
        # (in a drain state, its countdown flag, no valid step in any stage) for the tests;
        # nothing reads them in hardware
        self._drain_probe = (Signal(name="probe_draining"), Signal(name="probe_drain_done"),
                             Signal(name="probe_pipeline_empty"))

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        w, f = fmt.width, fmt.frac_bits
        w_inv, f_inv = self.inverse_format.width, self.inverse_format.frac_bits
        lanes = self.lanes
        shift = lanes.bit_length() - 1
        n_max, k_max = self.n_max, self.k_max
        rows_max = n_max + k_max
        wide = wide_bits(fmt, self.guard_bits)
        col_bits = _ceil_log2(n_max)
        rhs_bits = _ceil_log2(k_max)
        slots = -(-rows_max // lanes)
        x_slots = -(-n_max // lanes)
        acc_bits = 2 * w + n_max.bit_length() + 1
        tree_depth = shift
        dot_latency, scale_latency = multiplier_latencies(fmt, self.inverse_format)
        has_late = self.late_term
        chunks = bank_chunks(n_max, k_max, lanes)
        delays = pipeline_delays(lanes, fmt, self.inverse_format, has_late, chunks)

        m.submodules.rsqrt = rsqrt = self._rsqrt

        # -- storage ----------------------------------------------------------------------
        def make(name, shape, depth):
            mem = memory.Memory(shape=shape, depth=depth, init=[])
            m.submodules[name] = mem
            return mem

        # the banks can be deeper than a block RAM: chunked, each chunk's reads registered
        # beside it (the data below is the registered word, two cycles after the address)
        # every read address is registered before the memory (beside each chunk of a bank), so
        # the issue logic and the route to the block RAMs each have a cycle: the word read at
        # an address decided in cycle t is in a register in cycle t + 3
        # (on ECP5 that register is the block RAM's own output register, gen/hwmem.py)
        family = getattr(platform, "family", None)
        assert -(-(slots << col_bits) // BLOCK_RAM_WORDS) == chunks
        banks = [chunked_memory(m, f"matrix{b}", signed(wide), slots << col_bits, read_ports=2,
                                address_register=True, family=family)
                 for b in range(lanes)]
        mat_a = [reads[0] for reads, _ in banks]
        mat_b = [reads[1] for reads, _ in banks]
        mat_w = [write for _, write in banks]

        def registered_memory(name, shape, depth):  # one read port, built like the banks
            (read,), write = chunked_memory(m, name, shape, depth, read_ports=1,
                                            address_register=True, family=family)
            return read, write

        x_rd, x_wr = zip(*(registered_memory(f"solution{b}", signed(w), x_slots << rhs_bits)
                           for b in range(lanes)), strict=True)
        # X once more, unbanked (row i at n_max-aligned rows of 2**rhs_bits words), for the
        # output alone: its block RAM can sit by the output logic, away from the lanes, and
        # the output needs no bank multiplexer
        out_mem = make("solution_out", signed(w), n_max << rhs_bits)
        out_rd, out_wr = out_mem.read_port(), out_mem.write_port()
        v_rd, v_wr = zip(*(registered_memory(f"row{b}", signed(w), slots)
                           for b in range(lanes)), strict=True)
        vf_rd, vf_wr = registered_memory("row_broadcast", signed(w), rows_max)
        invmem = make("pivot_inverse", signed(w_inv), n_max)
        inv_rd, inv_wr = invmem.read_port(), invmem.write_port()
        # the back substitution's late term L[i+1, i]·X[i+1, c]: the subdiagonal of L (word i
        # holds L[i+1, i], written by the factorisation's scaling blocks) and the last row's
        # X (word c holds X[i+1, c] while row i is solved)
        if has_late:
            sub_rd, sub_wr = registered_memory("subdiagonal", signed(w), n_max)
            xl_rd, xl_wr = registered_memory("solution_last", signed(w), 1 << rhs_bits)

        def lane_of(index):
            return index[:shift] if shift else Const(0, 1)

        def slot_of(index):
            return index >> shift

        def select(target, index, values):
            if lanes == 1:
                m.d.comb += target.eq(values[0])
                return
            with m.Switch(index):
                # (an index narrower than the lane number, in a core whose rows are fewer
                # than its lanes, cannot reach the last lanes: no case for them)
                for b, value in enumerate(values[:1 << len(index)]):
                    with m.Case(b):
                        m.d.comb += target.eq(value)

        def bank_slot(bank, base_slot, first_bank):
            # a block of `lanes` consecutive rows starting in bank `first_bank`: banks before
            # it hold the block's rows of the next slot
            if not shift:
                return base_slot
            return base_slot + (bank < first_bank)

        def matrix_address(slot, col):
            return Cat(col[:col_bits], slot)

        # -- job registers ----------------------------------------------------------------
        n = Signal(range(n_max + 1))
        k = Signal(range(k_max + 1))
        total = Signal(range(rows_max + 1))  # n + k
        # job constants derived from n and k when the command is taken, so that the control
        # compares registers with registers (no adder in front of a compare)
        last_row = Signal(range(-1, rows_max))              # n + k - 1
        last_col = Signal(range(-1, n_max))                 # n - 1
        last_rhs = Signal(range(-1, k_max))                 # k - 1
        total_less_lanes = Signal(range(-lanes - 1, rows_max + 1))  # n + k - lanes
        total_less_lanes_1 = Signal(range(-lanes - 2, rows_max + 1))  # n + k - lanes - 1
        n_less_lanes = Signal(range(-lanes, n_max + 1))     # n - lanes
        n_less_lanes_1 = Signal(range(-lanes - 1, n_max + 1))  # n - lanes - 1
        n_less_lanes_2 = Signal(range(-lanes - 2, n_max + 1))  # n - lanes - 2
        total_less_2lanes = Signal(range(-2 * lanes - 1, rows_max + 1))  # n + k - 2 lanes
        n_less_2lanes = Signal(range(-2 * lanes, n_max + 1))  # n - 2 lanes
        # the "last block" tests of the Gram pass, the scaling blocks and the back substitution
        # (block_row >= total - lanes, scale_end >= total - lanes, block_row >= n - lanes) are
        # flags registered with the row they test, so that no compare feeds the state machine
        gram_final = Signal()
        scale_final = Signal()
        back_final = Signal()
        lam = Signal(signed(w))
        mode = Signal()
        kind = Signal(4)  # one-hot, bit _KIND_*: a register per pipeline multiplexer select
        # kind_at(d): kind d cycles ago, for a stage d or more cycles after its step's issue.
        # kind changes only while the pipeline is empty (IDLE, DIRECT_END and the drain
        # states), so every step in flight sees the kind it was issued with, at any such
        # stage; each stage's selects then load their own register, not one register fanned
        # out over the whole core.
        kind_copies = [kind]

        def kind_at(depth):
            while len(kind_copies) <= depth:
                copy = Signal(4, name=f"kind_{len(kind_copies)}")
                m.d.sync += copy.eq(kind_copies[-1])
                kind_copies.append(copy)
            return kind_copies[depth]
        col = Signal(range(rows_max + 1))    # j (clear/gram/factor), i (back)
        block_row = Signal(range(rows_max + lanes + 1))  # first row of the current block
        slot = Signal(range(slots + 1))      # slot of the issued block's first row
        start = Signal(range(lanes))         # bank of the issued block's first row
        step = Signal(range(n_max + 1))      # q (factor)
        rhs = Signal(range(k_max + 1))       # c (back)
        in_row = Signal(range(rows_max + 1))
        in_col = Signal(range(rows_max + 1))
        # direct input: registered so that the write-port multiplexers are selected early
        direct_input = Signal()  # in the DIRECT_IN state
        in_lower = Signal()      # in_col < n: the value belongs to A (else to B)
        row_last = Signal()
        saturated = Signal()
        inv_reg = Signal(signed(w_inv))
        next_block = Signal(range(rows_max + 2 * lanes + 1))
        # factor: the scaling blocks (L = s·inv, one dot-product block's rows each, in the
        # dot products' block order) are interleaved with the dot products (see FACTOR)
        scale_col = Signal(range(rows_max + 1))           # column of the next scaling block
        scale_col_last = Signal()                         # scale_col == n - 1
        scale_row = Signal(range(rows_max + lanes + 1))   # its first row
        scale_end = Signal(range(rows_max + 2 * lanes + 1))  # the row after it
        scale_limit = Signal(range(rows_max + 2 * lanes + 1))  # head: scale_end, else n + k
        scale_in_head = Signal()                          # it is its column's head
        scale_head = Signal(range(lanes + 1))             # rows of scale_col's head
        scale_issue = Signal()                            # this cycle issues a scaling block
        # dot-product blocks whose s values are stored and whose scaling block is not issued
        stored = Signal(range(2 * rows_max + 2))
        stored_any = Signal()                             # stored != 0
        # credit = (scaling blocks readable) - (the current dot-product block's index in issue
        # order) + (blocks of its column) - 1: its step reading the previous column may go
        # when credit >= 0 (the previous column's scaling block of its rows is readable)
        credit = Signal(range(-2 * rows_max - 4, rows_max + 2))
        dot_ahead = Signal()  # the dot products are past scale_col (its blocks all issued)
        dot_block_end = Signal()  # FACTOR issues a block's last step this cycle
        issue_col = Signal(range(rows_max + 1))           # column of the issued step
        # factor: each column starts with its head block (1..lanes rows, the pivot row first),
        # then whole blocks; a head of at most lanes/2 rows is split over paired lanes
        head = Signal(range(lanes + 1))          # rows of the current column's head block
        block_end = Signal(range(rows_max + lanes + 1))  # first row after the current block
        column_last = Signal()  # block_end >= total: the current block ends its column
        in_head = Signal()                       # the current block is the head
        head_is_one = Signal()                   # head == 1 (the next column has a block less)
        split = Signal()                         # ... and it is split over paired lanes
        last_step = Signal(range(n_max + 1))     # step index of the block's M read
        # the issue decision reads flags, not compares: step == last_step, step + 1 ==
        # last_step (the step reads the previous column), col == n - 1, credit < 0
        at_last_step = Signal()
        before_last_step = Signal()
        col_is_last = Signal()
        # more flags kept beside the counters they test, so that the state machine reads
        # registers: in_col == n + k - 1 (the input's last value of a row), and in BACK "a
        # row's first step" (step == 0 and rhs == 0) and "X[i + 1, 0] is written" (x_wait == 0)
        in_col_last = Signal()
        # (every assignment of in_col goes through these two, or sets the flag beside it)
        in_col_next = [in_col.eq(in_col + 1), in_col_last.eq(in_col + 1 == last_row)]
        in_col_restart = [in_col.eq(0), in_col_last.eq(last_row == 0)]
        back_row_first = Signal()
        x_ready = Signal()
        late_ready = Signal()    # X[i + 1, 0] is readable by the late term (late_wait == 0)
        rhs_is_first = Signal()  # BACK: rhs == 0
        back_late_row = Signal()  # BACK: row i has a late term (i < n - 1)
        # and in BACK "rhs == k - 1" and "col == 0" (the row's last right-hand side, the last
        # row), kept beside rhs and col: their compares fed the state's exit and the enables
        # of the output address registers (the worst path of the demo's device)
        rhs_is_last = Signal()
        col_is_first = Signal()
        a_col = Signal(range(n_max + 1))         # column port A reads at this step
        partner_steps = Signal(range(n_max + 1))  # split: steps of the partner lanes
        # every clip raises an event; the events are registered and only then ORed into the
        # sticky flag, so no clip detector shares a cycle with the adder that feeds it and the
        # wide OR
        saturation_events = []

        def saturation_event():
            event = Signal(name=f"saturation_event{len(saturation_events)}")
            saturation_events.append(event)
            return event

        m.d.comb += [
            head_is_one.eq(head == 1),
            self.saturated.eq(saturated),
            issue_col.eq(col),
            next_block.eq(block_row + lanes),
        ]

        def start_column(column, head_rows, short):
            """Assignments that start factor column ``column`` with a head of ``head_rows``;
            ``short``: the column has at most ``lanes`` rows (the head is the whole column)."""
            split_now = (column >= 3) & (head_rows <= lanes // 2) if lanes > 1 else Const(0)
            half = (column >> 1) + 1  # h: steps of the lane half of a split head
            last_value = Mux(split_now, half, column)
            return [col.eq(column), col_is_last.eq(column == last_col),
                    block_row.eq(column), step.eq(0), head.eq(head_rows),
                    block_end.eq(column + head_rows),
                    column_last.eq(short),
                    in_head.eq(1), split.eq(split_now),
                    last_step.eq(last_value), at_last_step.eq(last_value == 0),
                    before_last_step.eq(last_value == 1),
                    a_col.eq(Mux(split_now, column - half, 0)),
                    partner_steps.eq(Mux(split_now, column - half, 0))]

        # column 0's head and whether it is the whole column (job constants, see _start)
        first_head = Signal(range(lanes + 1))
        first_short = Signal()
        first_column = start_column(0, first_head, first_short)

        # -- pipeline tags ------------------------------------------------------------------
        def tags(name):
            return {
                "valid": Signal(name=f"{name}_valid"),
                "first": Signal(name=f"{name}_first"),
                "last": Signal(name=f"{name}_last"),
                "slot": Signal(range(slots + 1), name=f"{name}_slot"),
                "start": Signal(range(lanes), name=f"{name}_start"),
                "col": Signal(range(rows_max + 1), name=f"{name}_col"),
                "rhs": Signal(range(k_max + 1), name=f"{name}_rhs"),
                "diag": Signal(name=f"{name}_diag"),
                "bsel": Signal(range(lanes), name=f"{name}_bsel"),
                "mask": Signal(lanes, name=f"{name}_mask"),
                "scale": Signal(name=f"{name}_scale"),
                "split": Signal(name=f"{name}_split"),
                "partner": Signal(name=f"{name}_partner"),
            }

        def load_stage(src, fields, hold):
            """Load ``fields`` every cycle, or (``hold``) only while ``src`` is valid."""
            if hold:
                with m.If(src["valid"]):
                    m.d.sync += fields
            else:
                m.d.sync += fields

        def follow(dst, src, *, hold=False):
            m.d.sync += dst["valid"].eq(src["valid"])
            load_stage(src, [dst[key].eq(src[key]) for key in dst if key != "valid"], hold)

        def bank_slots_beside(src, name, *, hold=False):
            """Every bank's slot of ``src``'s block (:func:`bank_slot`), registered as ``src``'s
            tags move into the next stage's (``hold`` as for :func:`follow`), so that a write
            address of that stage comes from registers and not through the slot adders."""
            slots_b = [Signal(range(slots + 1), name=f"{name}_bank_slot_{b}")
                       for b in range(lanes)]
            load_stage(src, [slots_b[b].eq(bank_slot(b, src["slot"], src["start"]))
                             for b in range(lanes)], hold)
            return slots_b

        def tag_chain(src, stages, name):
            """``stages`` tag registers after ``src`` (``name1`` ...), each in ``in_flight``;
            returns the last (``src`` when ``stages`` is 0)."""
            for depth in range(stages):
                delayed = tags(f"{name}{depth + 1}")
                follow(delayed, src)
                in_flight.append(delayed["valid"])
                src = delayed
            return src

        t0 = tags("issue")
        ta, t1, tr = tags("address"), tags("read"), tags("fetched")
        t2, t3 = tags("operand"), tags("product")
        follow(ta, t0)
        follow(t1, ta)
        follow(tr, t1)
        in_flight = [ta["valid"], t1["valid"], tr["valid"], t2["valid"]]
        # wide cores and cores with deep banks: the read words are registered once more,
        # after the chunk multiplexers and before the bank multiplexers (read_stage); wide
        # cores: one more register stage carries the fetched words and the broadcast (a
        # lanes-to-1 multiplexer) before they fan out to every lane's operand registers
        # (broadcast_stage)
        t_read = tag_chain(tr, read_stage(lanes, chunks), "read_stage")
        t_op = tag_chain(t_read, broadcast_stage(lanes), "broadcast")
        # stage depths after the issue (for kind_at): operands of the products, products (t3);
        # the scaling blocks count from their own issue (sc0); the matrix write ports serve
        # stage t4 (Gram and clear, depth d_t3 + 1) and t7 (6 + scale_latency after sc0); the
        # s values (t5, depth d_t3 + 2) go only to the column buffers
        d_op = 3 + read_stage(lanes, chunks) + broadcast_stage(lanes)
        d_t3 = d_op + 1 + dot_latency
        d_write = min(d_t3 + 1, 6 + scale_latency)
        # back substitution: X is written at stage d_write_back (t7), the rounded and scaled
        # value of the adder tree's sum
        d_write_back = d_t3 + tree_depth + 6 + scale_latency
        assert d_write_back == delays["back"]
        follow(t2, t_op)
        # wide operands: the product takes dot_latency cycles; t2_last is the stage one cycle
        # before the product is ready (t2 itself when it takes one)
        t2_last = tag_chain(t2, dot_latency - 1, "multiplying")
        follow(t3, t2_last)
        in_flight.append(t3["valid"])

        # the issued block (block_row, col) and the scaling block (scale_row, scale_col)
        # are decoded from registers in parallel; they go down separate pipelines
        def decode_block(row, column, limit, name):
            """Slot, first bank, per-bank slots and rows of the block from ``row``; and its lane
            mask (rows in ``column .. limit - 1``), None without a ``limit``."""
            row_slot, row_start = row >> shift, (row[:shift] if shift else Const(0, 1))
            slots_b = [Signal(range(slots + 1), name=f"{name}_slot_{b}") for b in range(lanes)]
            m.d.comb += [slots_b[b].eq(bank_slot(b, row_slot, row_start))
                         for b in range(lanes)]
            rows_b = [Cat(Const(b, shift), slots_b[b]) if shift else slots_b[b]
                      for b in range(lanes)]
            if limit is None:
                return row_slot, row_start, slots_b, rows_b, None
            mask = Signal(lanes, name=f"{name}_mask")
            m.d.comb += [mask[b].eq((rows_b[b] >= column) & (rows_b[b] < limit))
                         for b in range(lanes)]
            return row_slot, row_start, slots_b, rows_b, mask

        dot_limit = Signal(range(rows_max + 1))
        m.d.comb += dot_limit.eq(Mux(in_head, block_end, total))
        # (the issued block's mask is decoded a stage later, below)
        dot_slot, dot_start, dot_slots, _, _ = decode_block(block_row, col, None, "dot")
        scale_slot, scale_start, scale_slots, _, scale_mask = decode_block(scale_row, scale_col,
                                                                           scale_limit, "scale")
        lane_slot = dot_slots
        m.d.comb += [slot.eq(dot_slot), start.eq(dot_start)]

        # the issued block's lane masks are decoded one stage after the issue (nothing reads
        # them before the operand stage), from registered copies of the issue's block row,
        # column, limit and kind: the issue cycle only computes the read addresses (the
        # masks' slot adders and two compares per lane were a worst path of a 128/8/8 build)
        late = {"row": Signal.like(block_row, name="mask_row"),
                "col": Signal.like(col, name="mask_col"),
                "limit": Signal.like(dot_limit, name="mask_limit"),
                "back": Signal(name="mask_back")}
        m.d.sync += [late["row"].eq(block_row), late["col"].eq(col),
                     late["limit"].eq(dot_limit), late["back"].eq(kind[_KIND_BACK])]
        _, _, _, late_rows, late_dot_mask = decode_block(late["row"], late["col"],
                                                         late["limit"], "late")
        back_mask = Cat(*[(late_rows[b] > late["col"]) & (late_rows[b] < n)
                          for b in range(lanes)])
        issued_mask = Mux(late["back"], back_mask, late_dot_mask)
        m.d.sync += t1["mask"].eq(issued_mask)  # (overrides the copy of ta's, unused)
        m.d.comb += [t0["slot"].eq(slot), t0["start"].eq(start), t0["col"].eq(issue_col),
                     t0["rhs"].eq(rhs),
                     t0["diag"].eq(block_row == col), t0["split"].eq(split),
                     t0["partner"].eq(step < partner_steps)]

        # read addresses (every port reads every cycle; only issued steps matter)
        back_row = Signal(range(rows_max + 1))
        m.d.comb += back_row.eq(n + rhs)
        for b in range(lanes):
            with m.If(kind[_KIND_FACTOR]):
                # split head: port B reads the lane's own row for its partner lane
                b_slot = Mux(split, dot_slots[b], slot_of(col))
                m.d.comb += [mat_a[b].addr.eq(matrix_address(lane_slot[b], a_col)),
                             mat_b[b].addr.eq(matrix_address(b_slot, step))]
            with m.Elif(kind[_KIND_BACK]):
                m.d.comb += [mat_a[b].addr.eq(matrix_address(lane_slot[b], col)),
                             mat_b[b].addr.eq(matrix_address(slot_of(back_row), col))]
            with m.Else():
                m.d.comb += mat_a[b].addr.eq(matrix_address(lane_slot[b], col))
            m.d.comb += [x_rd[b].addr.eq(Cat(rhs[:rhs_bits], lane_slot[b])),
                         v_rd[b].addr.eq(lane_slot[b])]
        m.d.comb += vf_rd.addr.eq(col)
        m.d.comb += [t0["bsel"].eq(Mux(kind[_KIND_BACK], lane_of(back_row), lane_of(col)))]

        # every memory output is registered first (block RAM clock-to-output is slow); the
        # matrix banks register theirs per chunk (gen/hwmem.py)
        fetched_a = [bank.data for bank in mat_a]
        fetched_b = [bank.data[:w].as_signed() for bank in mat_b]
        fetched_x = [read.data for read in x_rd]
        fetched_v = [read.data for read in v_rd]
        fetched_vf = vf_rd.data
        if t_read is not tr:  # the read stage
            fetched_vf = delay_line(m, fetched_vf, 1, "read_vf")
            fetched_a, fetched_b, fetched_x, fetched_v = (
                [delay_line(m, value, 1, f"{name}{b}") for b, value in enumerate(values)]
                for name, values in (("read_a", fetched_a), ("read_b", fetched_b),
                                     ("read_x", fetched_x), ("read_v", fetched_v)))

        # stage 1 -> 2: operand registers (the multipliers take their operands straight from
        # registers; masked-off lanes multiply zero)
        a1 = [Signal(signed(wide), name=f"a1_{b}") for b in range(lanes)]
        left1 = [Signal(signed(w), name=f"left1_{b}") for b in range(lanes)]
        right1 = [Signal(signed(w), name=f"right1_{b}") for b in range(lanes)]
        p1 = Signal(signed(w))
        broadcast = Signal(signed(w))
        select(broadcast, t_read["bsel"], fetched_b)
        # split head: lane b sums its row's q = col - h + step with the pivot row read by port
        # A of the pivot's bank; its partner lane b ^ lanes/2 sums q = step from port B of
        # bank b with the pivot row from port B (the usual broadcast)
        broadcast_a = Signal(signed(w))
        select(broadcast_a, t_read["bsel"], [value[:w].as_signed() for value in fetched_a])
        if t_op is not t_read:
            broadcast = delay_line(m, broadcast, 1, "broadcast")
            broadcast_a = delay_line(m, broadcast_a, 1, "broadcast_a")
            fetched_vf = delay_line(m, fetched_vf, 1, "fetched_vf")
            fetched_a, fetched_b, fetched_x, fetched_v = (
                [delay_line(m, value, 1, f"{name}{b}") for b, value in enumerate(values)]
                for name, values in (("fetched_a", fetched_a), ("fetched_b", fetched_b),
                                     ("fetched_x", fetched_x), ("fetched_v", fetched_v)))
        pivot_row = Mux(kind_at(d_op)[_KIND_GRAM], fetched_vf, broadcast[:w].as_signed())
        m.d.sync += p1.eq(pivot_row)
        for b in range(lanes):
            own = Mux(kind_at(d_op)[_KIND_GRAM], fetched_v[b], fetched_a[b][:w].as_signed())
            mate = b ^ (lanes >> 1)
            if lanes > 1:
                partner = t_op["split"] & t_op["partner"] & t_op["mask"][mate]
                left = Mux(t_op["mask"][b], own, Mux(partner, fetched_b[mate], 0))
                right = Mux(t_op["split"] & t_op["mask"][b], broadcast_a, pivot_row)
            else:
                left, right = Mux(t_op["mask"][b], own, 0), pivot_row
            m.d.sync += [a1[b].eq(fetched_a[b]),
                         left1[b].eq(left),
                         right1[b].eq(Mux(kind_at(d_op)[_KIND_BACK], fetched_x[b], right))]

        # stage 2 -> 3: products
        acc = [Signal(signed(acc_bits), name=f"acc_{b}") for b in range(lanes)]
        prod2 = [Signal(signed(2 * w), name=f"prod2_{b}") for b in range(lanes)]
        # split head: the partner's sum is taken from M at its last step's operand stage (the
        # partner's last product was accumulated at least one cycle before)
        a2 = [Signal(signed(max(wide, acc_bits) + 1), name=f"a2_{b}") for b in range(lanes)]
        for b in range(lanes):
            partner_sum = acc[b ^ (lanes >> 1)] if lanes > 1 else 0
            a1_last = delay_line(m, a1[b], dot_latency - 1, f"a1_{b}")
            m.d.sync += a2[b].eq(a1_last - Mux(t2_last["split"], partner_sum, 0))
            m.d.comb += prod2[b].eq(pipelined_product(m, left1[b], right1[b],
                                                       f"dot_product{b}"))

        # -- Gram / clear: stage 3 adds, stage 4 writes -------------------------------------
        t4 = tags("accumulated")
        follow(t4, t3)
        t4_slots = bank_slots_beside(t3, "accumulated")
        m.d.sync += t4["valid"].eq(t3["valid"] & t3["last"])  # one result per block
        in_flight.append(t4["valid"])
        # the sum is registered unclipped (the product arrives from a DSP block, often far
        # away: no clip logic after its adder); the write stage t4 clips it
        g3 = [Signal(signed(max(wide, 2 * w) + 1), name=f"g3_{b}") for b in range(lanes)]
        g4 = []
        for b in range(lanes):
            is_diag = t3["diag"] & (lane_of(t3["col"]) == b)
            with m.If(kind_at(d_t3)[_KIND_CLEAR]):
                m.d.sync += g3[b].eq(Mux(is_diag, lam << f, 0))
            with m.Else():
                m.d.sync += g3[b].eq(a2[b] + prod2[b])
            clipped_total, clipped = clip_width(g3[b], wide)
            g4.append(clipped_total)
            with m.If(t4["valid"] & t4["mask"][b] & clipped
                      & (kind_at(d_t3 + 1)[_KIND_GRAM])):
                m.d.comb += saturation_event().eq(1)

        # -- factor: stage 3 accumulates, 4 rounds, 5 scales, 6 rounds, 7 writes ---------------
        # s = M - (lane sum) - (partner sum) fits in max(wide, acc_bits) + 1 bits (the partial
        # sums are parts of one exact dot product), so the wider a2 wraps back exactly here
        s3 = [Signal(signed(max(wide, acc_bits) + 1), name=f"s3_{b}") for b in range(lanes)]
        for b in range(lanes):
            running = Mux(t3["first"], 0, acc[b])
            with m.If(t3["valid"] & (kind_at(d_t3)[_KIND_FACTOR])):
                with m.If(t3["last"]):
                    m.d.sync += s3[b].eq(a2[b] - running)
                with m.Else():
                    m.d.sync += acc[b].eq(running + prod2[b])
        # rounding (stage t4) and clipping (stage t4r) in separate cycles
        t4r, t5 = tags("rounded"), tags("clipped")
        follow(t4r, t4, hold=True)
        follow(t5, t4r, hold=True)
        t5_slots = bank_slots_beside(t4r, "clipped", hold=True)
        m.d.sync += t5["valid"].eq(t4r["valid"] & (kind_at(d_t3 + 2)[_KIND_FACTOR]))
        in_flight += [t4r["valid"], t5["valid"]]
        s_rounded = [Signal(round_even(s3[b], f).shape(), name=f"s_rounded_{b}")
                     for b in range(lanes)]
        s4 = [Signal(signed(w), name=f"s4_{b}") for b in range(lanes)]
        # The pivot (the lane of the block's column) gets its own copy of the rounding and the
        # clip: its lane is picked from s3 before its rounding (stage t4), then it is clipped
        # beside s4 (stage t4r), so that the rsqrt unit's front end (two compares) starts from
        # a register, and neither a lanes-wide multiplexer nor a clip sits in front of it.
        pivot_s3 = Signal.like(s3[0], name="pivot_s3")
        select(pivot_s3, lane_of(t4["col"]), s3)
        pivot_rounded = Signal(round_even(pivot_s3, f).shape(), name="pivot_rounded")
        pivot = Signal(signed(w))
        with m.If(t4["valid"] & (kind_at(d_t3 + 1)[_KIND_FACTOR])):
            m.d.sync += [s_rounded[b].eq(round_even(s3[b], f)) for b in range(lanes)]
            m.d.sync += pivot_rounded.eq(round_even(pivot_s3, f))
        with m.If(t4r["valid"] & (kind_at(d_t3 + 2)[_KIND_FACTOR])):
            m.d.sync += pivot.eq(clip_width(pivot_rounded, w)[0])
            for b in range(lanes):
                value, clipped = clip_width(s_rounded[b], w)
                m.d.sync += s4[b].eq(value)
                with m.If(clipped & t4r["mask"][b]):
                    m.d.comb += saturation_event().eq(1)

        # pivot -> rsqrt unit (factor, diagonal block); the result is kept for the column's
        # scaling blocks (the other blocks are issued meanwhile). `send` is a register: it is
        # set as the diagonal block's tags move from t4r into t5 (that is, it equals "t5 holds
        # the diagonal block of a factor step") and held until the unit takes the pivot, so
        # the unit's input valid is one flip-flop and no gate sits in front of its fan-out.
        send = Signal()
        pivot_col = Signal(range(n_max))
        m.d.sync += send.eq((t4r["valid"] & t4r["diag"] & (kind_at(d_t3 + 2)[_KIND_FACTOR]))
                            | (send & ~rsqrt.i.ready))
        with m.If(send):
            m.d.sync += pivot_col.eq(t5["col"])
        m.d.comb += [rsqrt.i.valid.eq(send), rsqrt.i.payload.eq(pivot)]
        in_flight.append(send)
        pivot_ready = Signal()
        pivot_invalid = Signal()
        # an inverse is taken when the previous one is no longer needed (its column's last
        # scaling block is issued); until then the unit holds it
        m.d.comb += [rsqrt.o.ready.eq(~pivot_ready), inv_wr.addr.eq(pivot_col),
                     inv_wr.data.eq(rsqrt.o.payload.value)]
        with m.If(rsqrt.o.valid & ~pivot_ready):
            m.d.comb += inv_wr.en.eq(~rsqrt.o.payload.invalid)
            m.d.sync += [inv_reg.eq(rsqrt.o.payload.value), pivot_ready.eq(1),
                         pivot_invalid.eq(rsqrt.o.payload.invalid)]
            with m.If(rsqrt.o.payload.saturated):
                m.d.comb += saturation_event().eq(1)

        # -- back substitution: adder tree, accumulate, round --------------------------------
        level = [Signal(signed(acc_bits), name=f"tree0_{b}") for b in range(lanes)]
        m.d.comb += [level[b].eq(prod2[b]) for b in range(lanes)]
        back_tags = t3
        for depth in range(tree_depth):
            nxt = [Signal(signed(acc_bits), name=f"tree{depth + 1}_{b}")
                   for b in range(len(level) // 2)]
            m.d.sync += [nxt[b].eq(level[2 * b] + level[2 * b + 1]) for b in range(len(nxt))]
            level = nxt
            delayed = tags(f"tree{depth + 1}")
            follow(delayed, back_tags)
            if depth == 0:  # only back substitution uses the tree
                m.d.sync += delayed["valid"].eq(back_tags["valid"]
                                                & (kind_at(d_t3)[_KIND_BACK]))
            in_flight.append(delayed["valid"])
            back_tags = delayed
        tree_sum = level[0]
        # Y_ci (the broadcast word, p1) meets the tree's sum at stage d_t3 + tree_depth, less
        # the late term L[i+1, i]·X[i+1, c]: its two operands are read from the subdiagonal
        # and last-row buffers (3 cycles) at stage late_read and multiplied just in time for
        # the register before that stage, so X[i+1, c] may be written only back_late cycles
        # before the step (its last step) that needs it
        late_stage = d_t3 + tree_depth - 1
        if has_late:
            late_read = late_stage - dot_latency - 3
            assert late_read >= 0
            assert delays["back_late"] == d_write_back - late_read, (delays, d_write_back)
            m.d.comb += [sub_rd.addr.eq(delay_line(m, t0["col"], late_read, "late_col")),
                         xl_rd.addr.eq(delay_line(m, t0["rhs"], late_read, "late_rhs"))]
            late_product = pipelined_product(m, sub_rd.data, xl_rd.data, "late_product")
            late_term = Mux(delay_line(m, back_late_row, late_stage, "late_row"),
                            late_product, 0)
        else:
            late_term = 0
        y_minus_late = Signal(signed(max(w + f, 2 * w) + 2))
        m.d.sync += y_minus_late.eq((delay_line(m, p1, late_stage - d_op - 1, "y") << f)
                                    - late_term)
        back_acc = Signal(signed(acc_bits))
        back_s = Signal(signed(acc_bits + 1))
        tb1 = tags("back_sum")
        m.d.sync += [tb1["valid"].eq(back_tags["valid"] & back_tags["last"]
                                     & (kind_at(d_t3 + tree_depth)[_KIND_BACK])),
                     tb1["rhs"].eq(back_tags["rhs"]), tb1["col"].eq(back_tags["col"])]
        back_sum = Signal(signed(acc_bits))
        m.d.comb += back_sum.eq(Mux(back_tags["first"], 0, back_acc) + tree_sum)
        with m.If(back_tags["valid"] & (kind_at(d_t3 + tree_depth)[_KIND_BACK])):
            with m.If(back_tags["last"]):  # Y_ci is read by every step of (i, c)
                m.d.sync += back_s.eq(y_minus_late - back_sum)
            with m.Else():
                m.d.sync += back_acc.eq(back_sum)
        tb2, tbc, tb3 = tags("back_rounded"), tags("back_clipped"), tags("back_operand")
        follow(tb2, tb1)
        follow(tbc, tb2)
        follow(tb3, tbc)
        in_flight += [tb1["valid"], tb2["valid"], tbc["valid"], tb3["valid"]]
        # the back-substitution value is rounded (stage tb1), clipped (tb2) and selected as
        # lane 0's scaling operand (tbc) in three cycles, each with its own register
        back_round = Signal(round_even(back_s, f).shape())
        m.d.sync += back_round.eq(round_even(back_s, f))
        back_rounded = Signal(signed(w))
        clipped_value, clipped = clip_width(back_round, w)
        m.d.sync += back_rounded.eq(clipped_value)
        # 1/L_ii of the row at stage tb2 is read now and sits in inv_reg when that row's value
        # is multiplied (stage tb3), so consecutive rows may overlap in the pipeline
        m.d.comb += inv_rd.addr.eq(tb2["col"])
        with m.If(kind_at(d_t3 + tree_depth + 2)[_KIND_BACK]):
            m.d.sync += inv_reg.eq(inv_rd.data)
        with m.If(tb2["valid"] & clipped):
            m.d.comb += saturation_event().eq(1)
        # the scaling blocks have their own pipeline, parallel to the dot products: the s
        # values go to a small buffer per lane (one word per slot), read back by the scaling
        # block with the same latency as a matrix read; in the factorisation only the scaling
        # blocks write the matrix (L; nothing reads s from the matrix), so the write ports are
        # never contended. A row's buffer word is written again only by the next column's
        # block of that row, which waits for this column's scaling block of the row.
        sc0, sca, sc1 = tags("scale_issue"), tags("scale_address"), tags("scale_read")
        scr, sc2 = tags("scale_fetched"), tags("scale_operand")
        m.d.comb += [sc0["valid"].eq(scale_issue), sc0["slot"].eq(scale_slot),
                     sc0["start"].eq(scale_start), sc0["col"].eq(scale_col),
                     sc0["mask"].eq(scale_mask), sc0["diag"].eq(scale_in_head),
                     sc0["scale"].eq(1)]
        follow(sca, sc0)
        follow(sc1, sca)
        follow(scr, sc1)
        follow(sc2, scr)
        in_flight += [sca["valid"], sc1["valid"], scr["valid"], sc2["valid"]]
        scale_operand = []
        for b in range(lanes):
            s_rd, s_wr = registered_memory(f"column_s{b}", signed(w), slots)
            m.d.comb += s_rd.addr.eq(scale_slots[b])
            m.d.comb += [s_wr.addr.eq(t5_slots[b]),
                         s_wr.data.eq(s4[b]),
                         s_wr.en.eq(t5["valid"] & t5["mask"][b]
                                    & (kind_at(d_t3 + 3)[_KIND_FACTOR]))]
            fetched_s = s_rd.data
            operand_s = Signal(signed(w), name=f"operand_s{b}")
            m.d.sync += operand_s.eq(fetched_s)
            scale_operand.append((fetched_s, operand_s))
        # lane 0's scaling operand: the rounded back-substitution value, or (factor) the
        # stored s value like the other lanes
        scale0 = Signal(signed(w))
        m.d.sync += scale0.eq(Mux(kind_at(3)[_KIND_BACK], back_rounded, scale_operand[0][0]))

        # -- shared scaling: stage 5 multiplies by 1/L_jj, stage 6 rounds, then write --------
        # stages: operand (tb3 | sc2), product ready (t6, scale_latency cycles later: wide
        # operands are cut into registered partial products), rounded (t6r), clipped (t7)
        t6_first = tags("scaling1")
        with m.If(kind_at(4)[_KIND_BACK]):
            follow(t6_first, tb3)
        with m.Else():
            follow(t6_first, sc2)
            m.d.sync += t6_first["valid"].eq(sc2["valid"] & (kind_at(4)[_KIND_FACTOR]))
        in_flight.append(t6_first["valid"])
        t6 = tag_chain(t6_first, scale_latency - 1, "scaling_product")
        t6r, t7 = tags("scaled_rounded"), tags("result")
        follow(t6r, t6)
        follow(t7, t6r)
        t7_slots = bank_slots_beside(t6r, "result")
        in_flight += [t6r["valid"], t7["valid"]]
        prod5 = [Signal(signed(w + w_inv), name=f"prod5_{b}") for b in range(lanes)]
        for b in range(lanes):
            scaled = scale_operand[b][1] if b else scale0
            m.d.comb += prod5[b].eq(pipelined_product(m, scaled, inv_reg,
                                                       f"scale_product{b}"))
        out_rounded = [Signal(round_even(prod5[b], f_inv).shape(), name=f"out_rounded_{b}")
                       for b in range(lanes)]
        out6 = [Signal(signed(w), name=f"out6_{b}") for b in range(lanes)]
        for b in range(lanes):
            m.d.sync += out_rounded[b].eq(round_even(prod5[b], f_inv))
            value, clipped = clip_width(out_rounded[b], w)
            m.d.sync += out6[b].eq(value)
            write_lane = t6r["mask"][b] & ~(t6r["diag"] & (lane_of(t6r["col"]) == b))
            if b == 0:
                write_lane = Mux(kind_at(5 + scale_latency)[_KIND_BACK], 1, write_lane)
            with m.If(t6r["valid"] & clipped & write_lane):
                m.d.comb += saturation_event().eq(1)

        events = Signal(len(saturation_events))
        m.d.sync += events.eq(Cat(*saturation_events))
        with m.If(events.any()):
            m.d.sync += saturated.eq(1)

        # -- write ports ------------------------------------------------------------------
        # direct input: the word, its place and λ's addition are registered before the write
        # (the DIRECT_END state gives the last write its cycle before FACTOR reads)
        direct_write = Signal()
        direct_row = Signal(range(rows_max + 1))
        direct_col = Signal(range(rows_max + 1))
        direct_value = Signal(signed(wide))
        written = {"en": Signal(name="direct_written"),
                   "addr": Signal.like(mat_w[0].addr, name="direct_written_addr"),
                   "lane": Signal(range(lanes), name="direct_written_lane"),
                   "value": Signal(signed(wide), name="direct_written_value")}
        m.d.sync += [written["en"].eq(direct_write),
                     written["addr"].eq(matrix_address(slot_of(direct_row), direct_col)),
                     written["lane"].eq(lane_of(direct_row)),
                     written["value"].eq(direct_value)]
        for b in range(lanes):
            with m.If(written["en"]):
                m.d.comb += [
                    mat_w[b].addr.eq(written["addr"]),
                    mat_w[b].data.eq(written["value"]),
                    mat_w[b].en.eq(written["lane"] == b),
                ]
            with m.Elif((kind_at(d_write)[_KIND_GRAM]) | (kind_at(d_write)[_KIND_CLEAR])):
                m.d.comb += [
                    mat_w[b].addr.eq(matrix_address(t4_slots[b], t4["col"])),
                    mat_w[b].data.eq(g4[b]),
                    mat_w[b].en.eq(t4["valid"] & t4["mask"][b]),
                ]
            with m.Elif(kind_at(d_write)[_KIND_FACTOR]):  # L (scaling blocks)
                is_pivot = t7["diag"] & (lane_of(t7["col"]) == b)
                m.d.comb += [
                    mat_w[b].addr.eq(matrix_address(t7_slots[b], t7["col"])),
                    mat_w[b].data.eq(out6[b]),
                    mat_w[b].en.eq(t7["valid"] & t7["mask"][b] & ~is_pivot),
                ]
            m.d.comb += [
                x_wr[b].addr.eq(Cat(t7["rhs"][:rhs_bits], slot_of(t7["col"]))),
                x_wr[b].data.eq(out6[0]),
                x_wr[b].en.eq(t7["valid"] & (kind_at(d_write)[_KIND_BACK])
                              & (lane_of(t7["col"]) == b)),
            ]
        m.d.comb += [out_wr.addr.eq(Cat(t7["rhs"][:rhs_bits], t7["col"][:col_bits])),
                     out_wr.data.eq(out6[0]),
                     out_wr.en.eq(t7["valid"] & (kind_at(d_write)[_KIND_BACK]))]
        if has_late:
            # the late term's buffers: X as it is written (word c), and the subdiagonal
            # L[j+1, j] of each factorised column (word j)
            m.d.comb += [xl_wr.addr.eq(t7["rhs"][:rhs_bits]),
                         xl_wr.data.eq(out6[0]),
                         xl_wr.en.eq(t7["valid"] & (kind_at(d_write)[_KIND_BACK]))]
            # L[j+1, j] comes from the lane of row j + 1 in column j's scaling blocks (found
            # at stage t6r, from registers), taken at t7 and written a cycle later
            sub_hit = Signal(lanes)
            sub_col = Signal.like(t6r["col"])
            sub_next = t6r["col"] + 1
            sub_lane = sub_next[:shift] if shift else Const(0, 1)
            for b in range(lanes):
                row_slot = bank_slot(b, t6r["slot"], t6r["start"])
                m.d.sync += sub_hit[b].eq(t6r["valid"] & t6r["mask"][b] & (sub_lane == b)
                                          & (row_slot == (sub_next >> shift))
                                          & (kind_at(5 + scale_latency)[_KIND_FACTOR]))
            m.d.sync += sub_col.eq(t6r["col"])
            sub_value = Const(0, signed(w))     # the hit lane's L (one lane at most hits)
            for b in range(lanes):
                sub_value = sub_value | Mux(sub_hit[b], out6[b], 0)
            sub_written = Signal()
            sub_address = Signal.like(sub_col)
            sub_data = Signal(signed(w))
            m.d.sync += [sub_written.eq(sub_hit.any()), sub_address.eq(sub_col),
                         sub_data.eq(sub_value)]
            m.d.comb += [sub_wr.en.eq(sub_written), sub_wr.addr.eq(sub_address),
                         sub_wr.data.eq(sub_data)]

        # -- control ----------------------------------------------------------------------
        busy = Signal()
        checking = Signal()      # in CHECK: busy to the outside, not yet counting cycles
        command_bad = Signal()   # the command taken last cycle has n or k out of range
        m.d.comb += [self.busy.eq(busy | checking), self.o.payload.last.eq(0)]
        with m.If(busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        # The drains (GRAM_DRAIN, FACTOR_DRAIN, BACK_DRAIN) last a fixed number of cycles,
        # pipeline_delays' gram_drain, factor_drain and back_drain: a countdown loaded as the
        # state is entered ends them through one flag register, not through the OR of every
        # stage's valid bit spread over the core. drain_done equals pipeline_empty in every
        # cycle of a drain (a test checks it). A failing factorisation (FACTOR_FAIL, which
        # issues nothing) waits for the OR a cycle late, with the issues of that cycle in it.
        pipeline_empty = ~Cat(*in_flight).any()
        was_empty = Signal()
        m.d.sync += was_empty.eq(pipeline_empty & ~t0["valid"] & ~scale_issue)
        drain_max = max(delays["gram_drain"], delays["factor_drain"], delays["back_drain"])
        drain_left = Signal(range(drain_max))
        drain_done = Signal()
        draining = Signal()  # in a drain state (for the test)
        m.d.comb += [probe.eq(value) for probe, value in
                     zip(self._drain_probe, (draining, drain_done, pipeline_empty), strict=True)]

        def start_drain(name):
            cycles = delays[name]
            return [drain_left.eq(cycles - 1), drain_done.eq(cycles == 1)]

        with m.If(draining & ~drain_done):
            m.d.sync += [drain_left.eq(drain_left - 1), drain_done.eq(drain_left == 1)]

        # output: the output copy of X is read at the element's address a cycle ahead (the
        # element after the one being sent, or X[0, 0] while the back substitution drains),
        # from registers, and its word is registered in OUT_READ
        out_row = Signal(range(n_max + 1))
        out_rhs = Signal(range(k_max + 1))
        out_read_row = Signal(range(n_max + 1))  # the address the copy reads, registered
        out_read_rhs = Signal(range(k_max + 1))
        out_value = Signal(signed(w))
        m.d.comb += out_rd.addr.eq(Cat(out_read_rhs[:rhs_bits], out_read_row[:col_bits]))

        # the scaling blocks: one a cycle, in the dot products' block order, once its block's s
        # values are stored (delays["s_stored"] cycles after the block's last step: a delayed
        # copy of that pulse counts it in `stored`) and its column's pivot inverse is held
        scale_ready = Signal()
        pivot_failed = Signal()
        m.d.comb += [
            scale_ready.eq(stored_any & pivot_ready & ~pivot_invalid),
            pivot_failed.eq(pivot_ready & pivot_invalid),
        ]
        m.d.comb += scale_issue.eq(scale_ready & kind[_KIND_FACTOR])
        block_stored = delay_line(m, dot_block_end, delays["s_stored"] - 1, "block_stored")
        m.d.sync += stored.eq(stored + block_stored - scale_issue)
        # stored_any follows without the adder and a compare after scale_issue (that loop was
        # the worst path of the demo's device): the compare reads the counter register
        stored_two = Signal()
        m.d.comb += stored_two.eq(stored >= 2)
        with m.If(block_stored & ~scale_issue):
            m.d.sync += stored_any.eq(1)
        with m.Elif(scale_issue & ~block_stored):
            m.d.sync += stored_any.eq(stored_two)
        # a scaling block's L is readable by a step issued delays["l_readable"] cycles after it
        block_readable = delay_line(m, scale_issue, delays["l_readable"] - 1, "block_readable")
        # a column's last block: the next column has one block fewer when this one's head is
        # its pivot row alone
        column_shrinks = Signal()
        m.d.sync += credit.eq(credit + block_readable - dot_block_end - column_shrinks)
        with m.If(scale_issue):
            with m.If(scale_final):  # the column's last: the next column's head is next
                next_head = Mux(scale_head == 1, lanes, scale_head - 1)
                m.d.sync += [scale_col.eq(scale_col + 1),
                             scale_col_last.eq(scale_col + 1 == last_col),
                             scale_row.eq(scale_col + 1),
                             scale_end.eq(scale_col + 1 + next_head),
                             scale_limit.eq(scale_col + 1 + next_head),
                             scale_in_head.eq(1), scale_head.eq(next_head),
                             scale_final.eq(scale_col >= total_less_lanes_1),
                             pivot_ready.eq(0), dot_ahead.eq(0)]
            with m.Else():
                m.d.sync += [scale_row.eq(scale_end), scale_end.eq(scale_end + lanes),
                             scale_limit.eq(total), scale_in_head.eq(0),
                             scale_final.eq(scale_end >= total_less_lanes)]
        # the factorisation's first column, dot products and scaling blocks
        factor_start = [kind.eq(1 << _KIND_FACTOR), *first_column,
                        scale_col.eq(0), scale_col_last.eq(last_col == 0), scale_row.eq(0),
                        scale_end.eq(first_head), scale_limit.eq(first_head),
                        scale_in_head.eq(1), scale_head.eq(first_head),
                        scale_final.eq(first_short), stored.eq(0), stored_any.eq(0),
                        credit.eq(last_row >> shift), dot_ahead.eq(0)]

        # back substitution: countdowns loaded as the last step of a row's first right-hand
        # side is issued (x_wait_load): late_wait until its X[i, 0] is readable by the next
        # row's late term (back_late), x_wait until it is readable by a dot-product step
        # (back), which the row after next reads first (without the late term, the next
        # row); x_wait_next is that countdown for the row just started, x_wait the one before
        late_wait = Signal(range(delays.get("back_late", 1)))
        x_wait = Signal(range(delays["back"]))
        x_wait_next = Signal(range(delays["back"]))
        x_wait_load = Signal()
        with m.If(x_wait_load):
            if has_late:
                m.d.sync += [late_wait.eq(delays["back_late"] - 1),
                             x_wait.eq(Mux(x_wait_next != 0, x_wait_next - 1, 0)),
                             x_wait_next.eq(delays["back"] - 1)]
            else:
                m.d.sync += x_wait.eq(delays["back"] - 1)
        with m.Else():
            with m.If(late_wait != 0):
                m.d.sync += late_wait.eq(late_wait - 1)
            with m.If(x_wait != 0):
                m.d.sync += x_wait.eq(x_wait - 1)
            with m.If(x_wait_next != 0):
                m.d.sync += x_wait_next.eq(x_wait_next - 1)
        if has_late:
            m.d.sync += [x_ready.eq(Mux(x_wait_load, x_wait_next <= 1, x_wait <= 1)),
                         late_ready.eq(Mux(x_wait_load, delays["back_late"] == 1,
                                           late_wait <= 1))]
        else:
            m.d.sync += [x_ready.eq(Mux(x_wait_load, delays["back"] == 1, x_wait <= 1)),
                         late_ready.eq(1)]
        # a row's first block starts at row i + reads (i + 2, or i + 1 without the late term);
        # whether it is also its last, tested on col: for the next row (col is the row
        # before: col + reads - 1 + lanes >= n) and for the next right-hand side (col +
        # reads + lanes >= n)
        reads = 2 if has_late else 1
        row_first_final = n_less_lanes_1 if has_late else n_less_lanes
        rhs_first_final = n_less_lanes_2 if has_late else n_less_lanes_1

        with m.FSM(name="control") as control:
            with m.State("IDLE"):  # also "done": accepts the next command
                m.d.comb += [self.command.ready.eq(1),
                             self.phase.eq(Mux(self.done, Phase.DONE, Phase.IDLE))]
                with m.If(self.command.valid):
                    m.d.sync += self._start(self.command.payload, n, k, total, lam, mode,
                                            (last_row, last_col, last_rhs, total_less_lanes,
                                             total_less_lanes_1, n_less_lanes,
                                             n_less_lanes_1, n_less_lanes_2,
                                             total_less_2lanes, n_less_2lanes, first_head,
                                             first_short),
                                            saturated)
                    m.d.sync += [in_head.eq(0), split.eq(0), checking.eq(1)]
                    cmd = self.command.payload
                    m.d.sync += command_bad.eq((cmd.n == 0) | (cmd.n > n_max) | (cmd.k == 0)
                                               | (cmd.k > k_max))
                    m.next = "CHECK"

            # The command's fields and its check (one bit) were registered as it was taken;
            # this cycle acts on them, so that neither the range compares nor the decision's
            # fan-out share a cycle with the command port. busy is high here (checking), but
            # the job's cycles count from the next cycle on, as before.
            with m.State("CHECK"):
                m.d.comb += self.phase.eq(Phase.INPUT)
                m.d.sync += checking.eq(0)
                with m.If(command_bad):
                    m.d.sync += [self.bad_command.eq(1), self.done.eq(1)]
                    m.next = "IDLE"
                with m.Elif(mode == MODE_DIRECT):
                    m.d.sync += [busy.eq(1), in_row.eq(0), in_col.eq(0),
                                 in_col_last.eq(last_row == 0),
                                 direct_input.eq(1), in_lower.eq(1)]
                    m.next = "DIRECT_IN"
                with m.Else():
                    m.d.sync += [busy.eq(1), kind.eq(1 << _KIND_CLEAR), col.eq(0),
                                 col_is_last.eq(last_col == 0),
                                 block_row.eq(0), gram_final.eq(first_short)]
                    m.next = "GRAM_PASS"

            with m.State("DIRECT_IN"):
                m.d.comb += [self.i.ready.eq(1), self.phase.eq(Phase.INPUT)]
                in_a = in_lower
                m.d.comb += [
                    direct_row.eq(Mux(in_a, in_row, in_col)),
                    direct_col.eq(Mux(in_a, in_col, in_row)),
                    direct_value.eq((self.i.payload.value
                                     + Mux(in_col == in_row, lam, 0)) << f),
                    direct_write.eq(self.i.valid & (~in_a | (in_col <= in_row))),
                ]
                with m.If(self.i.valid):
                    with m.If(in_col_last):
                        m.d.sync += [*in_col_restart, in_row.eq(in_row + 1), in_lower.eq(1)]
                        with m.If(in_row == last_col):
                            m.d.sync += direct_input.eq(0)
                            m.next = "DIRECT_END"
                    with m.Else():
                        m.d.sync += [*in_col_next, in_lower.eq(in_col + 1 < n)]

            with m.State("DIRECT_END"):  # the last value's (registered) write
                m.d.comb += self.phase.eq(Phase.INPUT)
                m.d.sync += factor_start
                m.next = "FACTOR"

            with m.State("GRAM_PASS"):  # clear (kind CLEAR) or accumulate one row (kind GRAM)
                m.d.comb += [t0["valid"].eq(1), t0["first"].eq(1), t0["last"].eq(1),
                             self.phase.eq(Phase.INPUT)]
                with m.If(gram_final):  # next_block >= total
                    with m.If(col_is_last):
                        m.d.sync += start_drain("gram_drain")
                        m.next = "GRAM_DRAIN"
                    with m.Else():
                        m.d.sync += [col.eq(col + 1), col_is_last.eq(col + 1 == last_col),
                                     block_row.eq(col + 1),
                                     gram_final.eq(col >= total_less_lanes_1)]
                with m.Else():
                    m.d.sync += [block_row.eq(next_block),
                                 gram_final.eq(block_row >= total_less_2lanes)]

            with m.State("GRAM_DRAIN"):
                m.d.comb += [self.phase.eq(Phase.INPUT), draining.eq(1)]
                with m.If(drain_done):
                    with m.If((kind[_KIND_GRAM]) & row_last):
                        m.d.sync += factor_start
                        m.next = "FACTOR"
                    with m.Else():
                        m.d.sync += [kind.eq(1 << _KIND_GRAM), *in_col_restart]
                        m.next = "ROW_IN"

            with m.State("ROW_IN"):
                m.d.comb += [self.i.ready.eq(1), self.phase.eq(Phase.INPUT)]
                for b in range(lanes):
                    m.d.comb += [v_wr[b].addr.eq(slot_of(in_col)),
                                 v_wr[b].data.eq(self.i.payload.value),
                                 v_wr[b].en.eq(self.i.valid & (lane_of(in_col) == b))]
                m.d.comb += [vf_wr.addr.eq(in_col), vf_wr.data.eq(self.i.payload.value),
                             vf_wr.en.eq(self.i.valid)]
                with m.If(self.i.valid):
                    m.d.sync += in_col_next
                    with m.If(in_col_last):
                        m.d.sync += [row_last.eq(self.i.payload.last), col.eq(0),
                                     col_is_last.eq(last_col == 0),
                                     block_row.eq(0), gram_final.eq(first_short)]
                        m.next = "GRAM_PASS"

            with m.State("FACTOR"):
                # each cycle: a scaling block when it may go, and the next dot-product step of
                # column col, unless that step reads column col - 1 before the scaling block of
                # its rows is readable (then no step is issued)
                m.d.comb += self.phase.eq(Phase.FACTOR)
                needs_previous = before_last_step
                # a failed pivot ends the job once its column's s values are all issued (so
                # the saturation flag covers the whole column, as in the model)
                failing = pivot_failed & dot_ahead
                # a block's last step never reads the previous column, so whether it is issued
                # does not depend on the credit (and the credit's update not on itself)
                m.d.comb += [dot_block_end.eq(at_last_step & ~failing),
                             column_shrinks.eq(at_last_step & ~failing & column_last
                                               & head_is_one)]
                with m.If(failing):
                    m.next = "FACTOR_FAIL"
                with m.Elif(needs_previous & credit[-1]):  # credit < 0
                    pass
                with m.Else():
                    m.d.comb += [t0["valid"].eq(1), t0["first"].eq(step == 0),
                                 t0["last"].eq(at_last_step)]
                    with m.If(at_last_step):
                        m.d.sync += [step.eq(0), block_row.eq(block_end),
                                     block_end.eq(block_end + lanes),
                                     column_last.eq(block_end >= total_less_lanes),
                                     in_head.eq(0),
                                     split.eq(0), last_step.eq(col), a_col.eq(0),
                                     at_last_step.eq(col == 0), before_last_step.eq(col == 1)]
                        with m.If(column_last):  # column done
                            m.d.sync += dot_ahead.eq(1)
                            with m.If(col_is_last):
                                m.next = "FACTOR_TAIL"
                            with m.Else():
                                m.d.sync += start_column(col + 1,
                                                         Mux(head == 1, lanes, head - 1),
                                                         col >= total_less_lanes_1)
                    with m.Else():
                        m.d.sync += [step.eq(step + 1), a_col.eq(a_col + 1),
                                     at_last_step.eq(before_last_step),
                                     before_last_step.eq(step + 2 == last_step)]

            with m.State("FACTOR_TAIL"):  # the scaling blocks still to go
                m.d.comb += self.phase.eq(Phase.FACTOR)
                with m.If(pivot_failed):
                    m.next = "FACTOR_FAIL"
                with m.Elif(scale_ready & scale_final & scale_col_last):
                    m.d.sync += start_drain("factor_drain")
                    m.next = "FACTOR_DRAIN"

            with m.State("FACTOR_FAIL"):  # not positive definite: drain, then end the job
                m.d.comb += self.phase.eq(Phase.FACTOR)
                with m.If(was_empty):
                    m.d.sync += [self.npd.eq(1), self.npd_index.eq(pivot_col), busy.eq(0),
                                 self.done.eq(1), kind.eq(1 << _KIND_CLEAR), pivot_ready.eq(0)]
                    m.next = "IDLE"

            with m.State("FACTOR_DRAIN"):
                m.d.comb += [self.phase.eq(Phase.FACTOR), draining.eq(1)]
                with m.If(drain_done):
                    m.d.sync += [kind.eq(1 << _KIND_BACK), col.eq(n - 1),
                                 block_row.eq(n + reads - 1), back_final.eq(1),
                                 rhs.eq(0), rhs_is_first.eq(1), rhs_is_last.eq(last_rhs == 0),
                                 col_is_first.eq(n == 1), step.eq(0), back_late_row.eq(0),
                                 x_wait.eq(0), x_wait_next.eq(0), late_wait.eq(0),
                                 x_ready.eq(1), late_ready.eq(1), back_row_first.eq(1)]
                    m.next = "BACK"

            with m.State("BACK"):
                # one step per block of rows i+2 .. n-1 (at least one: it also reads Y_ci; the
                # term of row i+1 is added late); a row's first step reads X[i + 2, 0] and the
                # last step of its first right-hand side X[i + 1, 0]: each waits until it is
                # written
                m.d.comb += self.phase.eq(Phase.SOLVE)
                final_block = back_final  # next_block >= n
                with m.If((~back_row_first | x_ready)
                          & ~(rhs_is_first & final_block & ~late_ready)):
                    m.d.comb += [t0["valid"].eq(1), t0["first"].eq(step == 0),
                                 t0["last"].eq(final_block)]
                    m.d.sync += [step.eq(step + 1), back_row_first.eq(0)]
                    with m.If(~final_block):
                        m.d.sync += [block_row.eq(next_block),
                                     back_final.eq(block_row >= n_less_2lanes)]
                    with m.Else():
                        m.d.sync += [block_row.eq(col + reads), step.eq(0), rhs.eq(rhs + 1),
                                     rhs_is_first.eq(0), rhs_is_last.eq(rhs + 1 == last_rhs),
                                     back_final.eq(col >= rhs_first_final)]
                        with m.If(rhs == 0):  # X[i, 0] is readable delays["back"] later
                            m.d.comb += x_wait_load.eq(1)
                        with m.If(rhs_is_last):
                            with m.If(col_is_first):
                                m.d.sync += [out_read_row.eq(0), out_read_rhs.eq(0),
                                             *start_drain("back_drain")]
                                m.next = "BACK_DRAIN"
                            with m.Else():
                                m.d.sync += [col.eq(col - 1), col_is_first.eq(col == 1),
                                             block_row.eq(col + reads - 1), rhs.eq(0),
                                             rhs_is_first.eq(1),
                                             rhs_is_last.eq(last_rhs == 0),
                                             back_row_first.eq(1), back_late_row.eq(1),
                                             back_final.eq(col >= row_first_final)]

            with m.State("BACK_DRAIN"):
                m.d.comb += [self.phase.eq(Phase.SOLVE), draining.eq(1)]
                with m.If(drain_done):
                    m.d.sync += [out_row.eq(0), out_rhs.eq(0)]
                    m.next = "OUT_READ"

            with m.State("OUT_READ"):
                m.d.comb += self.phase.eq(Phase.OUTPUT)
                m.d.sync += out_value.eq(out_rd.data)
                with m.If(out_rhs == last_rhs):  # the next element's address, read during OUT_SEND
                    m.d.sync += [out_read_row.eq(out_row + 1), out_read_rhs.eq(0)]
                with m.Else():
                    m.d.sync += [out_read_row.eq(out_row), out_read_rhs.eq(out_rhs + 1)]
                m.next = "OUT_SEND"

            with m.State("OUT_SEND"):
                final = (out_row == last_col) & (out_rhs == last_rhs)
                m.d.comb += [self.phase.eq(Phase.OUTPUT), self.o.valid.eq(1),
                             self.o.payload.value.eq(out_value),
                             self.o.payload.last.eq(final)]
                with m.If(self.o.ready):
                    with m.If(final):
                        m.d.sync += [busy.eq(0), self.done.eq(1), kind.eq(1 << _KIND_CLEAR)]
                        m.next = "IDLE"
                    with m.Else():
                        with m.If(out_rhs == last_rhs):
                            m.d.sync += [out_rhs.eq(0), out_row.eq(out_row + 1)]
                        with m.Else():
                            m.d.sync += out_rhs.eq(out_rhs + 1)
                        m.next = "OUT_READ"
        one_hot_state(control)  # (its binary state decode was a worst path)
        return m

    def _start(self, cmd, n, k, total, lam, mode, derived, saturated):
        """The job registers loaded from a command, with the constants derived from it (so
        that the control compares registers with registers)."""
        (last_row, last_col, last_rhs, total_less_lanes, total_less_lanes_1, n_less_lanes,
         n_less_lanes_1, n_less_lanes_2, total_less_2lanes, n_less_2lanes, first_head,
         first_short) = derived
        lanes = self.lanes
        shift = lanes.bit_length() - 1  # as in elaborate (lanes is a power of two)
        cmd_total = cmd.n + cmd.k
        return [n.eq(cmd.n), k.eq(cmd.k), total.eq(cmd_total), lam.eq(cmd.lam),
                last_row.eq(cmd_total - 1), last_col.eq(cmd.n - 1), last_rhs.eq(cmd.k - 1),
                total_less_lanes.eq(cmd_total - lanes),
                total_less_lanes_1.eq(cmd_total - lanes - 1),
                n_less_lanes.eq(cmd.n - lanes),
                n_less_lanes_1.eq(cmd.n - lanes - 1),
                n_less_lanes_2.eq(cmd.n - lanes - 2),
                total_less_2lanes.eq(cmd_total - 2 * lanes),
                n_less_2lanes.eq(cmd.n - 2 * lanes),
                # column 0's head: (n + k - 1) mod lanes + 1 rows, the whole column if short
                first_head.eq(((cmd_total - 1)[:shift] if shift else 0) + 1),
                first_short.eq(cmd_total <= lanes),
                mode.eq(cmd.mode), saturated.eq(0), self.cycles.eq(0), self.done.eq(0),
                self.npd.eq(0), self.npd_index.eq(0), self.bad_command.eq(0)]


def _build(fmt, n_max=16, k_max=4, lanes=4, guard_bits=4, inverse_format="",
           rsqrt_mode="iterative"):
    return CholeskySolver(n_max, k_max, fmt, lanes, guard_bits=guard_bits,
                          inverse_format=inverse_format or None, rsqrt_mode=rsqrt_mode)


registry.register(registry.UnitSpec(
    name="cholesky",
    summary="Cholesky ridge solver core: (HᵀH + λI) X = HᵀT, Gram or direct input",
    build=_build,
    parameters=(
        registry.Parameter("n_max", int, 16, "largest system size n"),
        registry.Parameter("k_max", int, 4, "largest number of right-hand sides k"),
        registry.Parameter("lanes", int, 4, "parallel multiply-accumulate lanes (power of two)"),
        registry.Parameter("guard_bits", int, 4, "extra integer bits of the Gram words"),
        registry.Parameter("inverse_format", str, "",
                           "format of the pivot inverses 1/sqrt(s), e.g. Q8.10 (default: fmt)"),
        registry.Parameter("rsqrt_mode", str, "iterative", "reciprocal square root unit mode",
                           choices=("iterative", "pipelined")),
    ),
))
