"""Several QR solver cores on one stream of rows: partial factors merged at the end.

One core's rows cannot follow each other faster than its ``P_min`` (each row's pivot ``i``
needs ``r_i`` from the previous row's, through the generator: 30-35 cycles in Q6.12) nor than
the ``n + k`` cycles a row takes to come in at one value a cycle, and a task holds the whole
linear array for a cycle; so ``units = n`` in one core keeps at most about half of its units
busy (``tiersolve bench qr``). :class:`QREngines` spends the same units as ``engines`` cores of
``units`` each instead, every core folding its own share of the rows into a factor of its
own, the way a tall-skinny QR splits the rows into blocks:

* a FOLD of ``m >= 2`` rows: engine ``e`` takes rows ``r = e, e + engines, ...`` (``m_e`` of
  them); engine 0 folds them into the current ``[R | Z]``, every other engine into a factor
  it RESETs to zero first; rows come on two streams, the even rows on ``i`` and the odd rows
  on ``i_odd``, so that the engines together can take more than one value a cycle (stream
  ``s`` feeds engines ``s, s + 2, ...``);
* then the factors are merged into engine 0's: for ``e = 1, 2, ...`` that took a row, the
  wrapper READs ``R_e`` and ``Z_e`` into a buffer and feeds their ``n`` rows to engine 0 in
  one FOLD. The result is the QR factor of all the rows (the stacked factors have the same
  Gram matrix as the rows they came from), with other integers than one fold a row:
  :meth:`tiersolve.gen.qr_model.QRSolverModel.fold_rows_in_engines` computes them.

Every other command (RESET, UPDATE, SOLVE, READ, a FOLD of fewer than two rows or one that
is a bad command) goes to engine 0 as it is, its input on ``i`` and its output on ``o``:
the wrapper then behaves as engine 0 does. ``cycles`` is engine 0's count for those, and
the wrapper's own (command to the end of the merge) for a FOLD spread over the engines.

In steady state every engine runs its own FOLD schedule, one row every ``P`` cycles (its
:meth:`~tiersolve.gen.qr.IncrementalUpdater.fold_plan` period), so the engines together
take ``engines`` rows every ``P`` cycles and keep their units as busy as one engine keeps
its own (86-96 % with 4 units at ``n = 16 .. 64``); the merge costs ``n`` rows on engine 0
for each other engine, once per FOLD, so the rows of one FOLD must be many for the whole
FOLD to come near the steady state.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import silent_if_refused
from .qr import QRSolver, command_layout
from .qr_ops import FoldKind, Op, Select

__all__ = ["QREngines"]


class QREngines(wiring.Component):
    """``engines`` :class:`~tiersolve.gen.qr.QRSolver` cores (``n_max``, ``k_max``, ``fmt``,
    ``units`` and ``rotation`` each) behind one command port (module docstring).

    Ports: those of :class:`~tiersolve.gen.qr.QRSolver` (``command``, ``i``, ``o``, ``busy``,
    ``refused``, ``saturated``, ``bad_command``, ``cycles``) and ``i_odd``, the odd rows of
    a FOLD spread over the engines (the even rows, and every other command's input, on
    ``i``).
    """

    @silent_if_refused
    def __init__(self, n_max: int, k_max: int, fmt, engines: int = 2, units: int = 1,
                 rotation: str = "cordic"):
        if isinstance(engines, bool) or not isinstance(engines, int):
            raise TypeError(f"engines must be an integer, not {engines!r}")
        if engines < 2 or engines > 64 or engines & (engines - 1):
            raise ValueError(f"engines must be a power of two from 2 to 64, not {engines}")
        self.cores = [QRSolver(n_max, k_max, fmt, units=units, rotation=rotation)
                      for _ in range(engines)]
        core = self.cores[0]
        self.fmt, self.n_max, self.k_max = core.fmt, core.n_max, core.k_max
        self.engines, self.units, self.rotation = engines, units, rotation
        w = self.fmt.width
        super().__init__({
            "command": In(stream.Signature(command_layout(n_max, k_max, self.fmt))),
            "i": In(stream.Signature(signed(w))),
            "i_odd": In(stream.Signature(signed(w))),
            "o": Out(stream.Signature(data.StructLayout({"value": signed(w), "last": 1}))),
            "busy": Out(1),
            "refused": Out(1),
            "saturated": Out(1),
            "bad_command": Out(1),
            "cycles": Out(32),
        })

    def rows_of(self, engine: int, rows: int) -> int:
        """How many of a FOLD's ``rows`` rows engine ``engine`` takes (all on engine 0 when
        ``rows < 2``: such a FOLD is engine 0's alone)."""
        if rows < 2:
            return rows if engine == 0 else 0
        return len(range(engine, rows, self.engines))

    def steady_period(self, n: int, k: int) -> float:
        """Cycles per row in steady state: one engine's FOLD period over the engines."""
        return self.cores[0].fold_plan(n, k)["period"] / self.engines

    def elaborate(self, platform):
        m = Module()
        g, w = self.engines, self.fmt.width
        cores = self.cores
        for index, core in enumerate(cores):
            m.submodules[f"engine{index}"] = core
        n_max, k_max = self.n_max, self.k_max
        stride_bits = (n_max + k_max - 1).bit_length()
        row_bits = max(1, (n_max - 1).bit_length())
        buffer = memory.Memory(shape=signed(w), depth=(1 << row_bits) << stride_bits, init=[])
        m.submodules.buffer = buffer
        write = buffer.write_port()
        read = buffer.read_port()

        payload = self.command.payload
        command = Signal.like(payload)                 # the FOLD being spread
        rows = Signal(w)
        spread = Signal()                              # the last command was spread
        own_cycles = Signal(32)
        sticky = Signal()                              # an engine other than 0 clipped
        counting = Signal()
        with m.If(counting):
            m.d.sync += own_cycles.eq(own_cycles + 1)

        idle = ~self.busy
        all_idle = Signal()
        m.d.comb += all_idle.eq(~Cat(*(c.busy for c in cores)).any())
        is_spread = ((payload.op == Op.FOLD) & (payload.select == FoldKind.UPDATE)
                     & (payload.value >= 2) & (payload.n >= 1) & (payload.n <= n_max)
                     & (payload.k >= 1) & (payload.k <= k_max))

        # the engines' command ports: what the wrapper sends them
        sends = [Signal(name=f"send{index}") for index in range(g)]
        op = Signal(3)
        select = Signal(2)
        value = Signal(signed(w))
        for index, core in enumerate(cores):
            m.d.comb += [core.command.payload.n.eq(command.n),
                         core.command.payload.k.eq(command.k),
                         core.command.payload.op.eq(op),
                         core.command.payload.select.eq(select),
                         core.command.payload.forgetting.eq(1 << w),
                         core.command.valid.eq(sends[index])]
            if index:
                m.d.comb += core.command.payload.value.eq(value)
        taken = Signal(g)                              # which engines took the command

        # engine e's rows in a FOLD of `rows` rows
        shift = (g - 1).bit_length()
        def share(index):
            return (rows >> shift) + (index < (rows & (g - 1)))

        # input streams: stream s feeds engines s, s + 2, ... a row each in turn
        streams = [self.i, self.i_odd]
        turn = [Signal(range(max(2, g // 2)), name=f"turn{s}") for s in range(2)]
        column = [Signal(range(n_max + k_max), name=f"column{s}") for s in range(2)]
        width = Signal(range(n_max + k_max + 1))
        m.d.comb += width.eq(command.n + command.k)

        merge = Signal(range(g))                       # the engine being merged
        row = Signal(range(n_max + 1))
        col = Signal(range(n_max + k_max + 1))
        # feeding engine 0 from the buffer: address counters and the read port's data
        feed_row = Signal(range(n_max + 1))
        feed_col = Signal(range(n_max + k_max + 1))
        feed_valid = Signal()                          # read.data holds a value to send
        feed_over = Signal()                           # every address has been read

        m.d.comb += [self.refused.eq(cores[0].refused),
                     self.bad_command.eq(cores[0].bad_command),
                     self.saturated.eq(cores[0].saturated | sticky),
                     self.cycles.eq(Mux(spread, own_cycles, cores[0].cycles))]

        with m.FSM(name="engines"):
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(is_spread):
                    m.d.comb += self.command.ready.eq(all_idle)
                    with m.If(self.command.valid & all_idle):
                        m.d.sync += [command.eq(payload), rows.eq(payload.value), spread.eq(1),
                                     own_cycles.eq(1), counting.eq(1), taken.eq(1),
                                     sticky.eq(0)]
                        m.next = "RESET"
                with m.Else():
                    # anything else is engine 0's, as it is
                    m.d.comb += [cores[0].command.valid.eq(self.command.valid),
                                 self.command.ready.eq(cores[0].command.ready),
                                 cores[0].command.payload.eq(payload)]
                    with m.If(self.command.valid & cores[0].command.ready):
                        m.d.sync += spread.eq(0)
                        with m.If(payload.op == Op.RESET):
                            m.d.sync += sticky.eq(0)
                        m.next = "PASS"
            with m.State("PASS"):
                m.d.comb += [self.busy.eq(1),
                             cores[0].i.valid.eq(self.i.valid),
                             cores[0].i.payload.eq(self.i.payload),
                             self.i.ready.eq(cores[0].i.ready)]
                m.d.comb += [self.o.valid.eq(cores[0].o.valid),
                             self.o.payload.eq(cores[0].o.payload),
                             cores[0].o.ready.eq(self.o.ready)]
                with m.If(~cores[0].busy & cores[0].command.ready):
                    m.next = "IDLE"
            with m.State("RESET"):
                # engines 1 .. g-1 start from R = 0, Z = 0
                m.d.comb += [self.busy.eq(1), op.eq(Op.RESET), value.eq(0)]
                for index in range(1, g):
                    m.d.comb += sends[index].eq(~taken[index])
                    with m.If(cores[index].command.ready & ~taken[index]):
                        m.d.sync += taken[index].eq(1)
                with m.If(taken.all()):
                    m.d.sync += taken.eq(0)
                    m.next = "RESET_WAIT"
            with m.State("RESET_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(all_idle):
                    m.d.sync += [turn[0].eq(0), turn[1].eq(0), column[0].eq(0),
                                 column[1].eq(0)]
                    m.next = "FOLD"
            with m.State("FOLD"):
                # every engine's FOLD of its share; the rows go to them as they come
                m.d.comb += [self.busy.eq(1), op.eq(Op.FOLD), select.eq(FoldKind.UPDATE)]
                for index in range(g):
                    m.d.comb += [sends[index].eq(~taken[index] & (share(index) != 0)),
                                 cores[index].command.payload.value.eq(share(index))]
                    with m.If(cores[index].command.ready & sends[index]):
                        m.d.sync += taken[index].eq(1)
                    with m.If(share(index) == 0):
                        m.d.sync += taken[index].eq(1)
                with m.If(taken.all()):
                    m.d.sync += taken.eq(0)
                    m.next = "ROWS"
            with m.State("ROWS"):
                m.d.comb += self.busy.eq(1)
                self._route_rows(m, streams, turn, column, width)
                with m.If(all_idle):
                    m.d.sync += merge.eq(1)
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += self.busy.eq(1)
                with m.If((merge == 0) | (merge >= rows)):
                    m.d.sync += counting.eq(0)
                    with m.If(Cat(*(c.saturated for c in cores[1:])).any()):
                        m.d.sync += sticky.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [row.eq(0), col.eq(0)]
                    m.next = "READ_R"
            for name, chosen, limit, offset, after in (
                    ("READ_R", Select.R, command.n, 0, "READ_Z"),
                    ("READ_Z", Select.Z, command.k, command.n, "MERGE")):
                with m.State(name):
                    # engine `merge` reads R (then Z) out; the values go into the buffer
                    m.d.comb += [self.busy.eq(1), op.eq(Op.READ), select.eq(chosen)]
                    for index in range(1, g):
                        with m.If(merge == index):
                            m.d.comb += sends[index].eq(~taken[0])
                            with m.If(cores[index].command.ready & ~taken[0]):
                                m.d.sync += taken[0].eq(1)
                            m.d.comb += cores[index].o.ready.eq(1)
                            with m.If(cores[index].o.valid):
                                m.d.comb += [write.en.eq(1),
                                             write.addr.eq((row << stride_bits) | (col + offset)),
                                             write.data.eq(cores[index].o.payload.value)]
                                with m.If(col == limit - 1):
                                    m.d.sync += [col.eq(0), row.eq(row + 1)]
                                with m.Else():
                                    m.d.sync += col.eq(col + 1)
                                with m.If(cores[index].o.payload.last):
                                    m.d.sync += [taken[0].eq(0), row.eq(0), col.eq(0)]
                                    m.next = after
                                    if after == "MERGE":
                                        m.d.sync += [feed_row.eq(0), feed_col.eq(0),
                                                     feed_valid.eq(0), feed_over.eq(0)]
            with m.State("MERGE"):
                # engine 0 folds the n rows of [R_e | Z_e] in, fed from the buffer
                m.d.comb += [self.busy.eq(1), op.eq(Op.FOLD), select.eq(FoldKind.UPDATE),
                             cores[0].command.payload.value.eq(command.n),
                             sends[0].eq(~taken[0])]
                with m.If(cores[0].command.ready & ~taken[0]):
                    m.d.sync += taken[0].eq(1)
                consume = feed_valid & cores[0].i.ready
                m.d.comb += [cores[0].i.valid.eq(feed_valid),
                             cores[0].i.payload.eq(read.data),
                             read.addr.eq((feed_row << stride_bits) | feed_col),
                             read.en.eq(~feed_valid | consume)]
                with m.If(read.en):
                    m.d.sync += feed_valid.eq(~feed_over)
                    with m.If(~feed_over):
                        with m.If(feed_col == width - 1):
                            m.d.sync += [feed_col.eq(0), feed_row.eq(feed_row + 1)]
                            with m.If(feed_row == command.n - 1):
                                m.d.sync += feed_over.eq(1)
                        with m.Else():
                            m.d.sync += feed_col.eq(feed_col + 1)
                with m.If(taken[0] & feed_over & ~feed_valid & ~cores[0].busy
                          & cores[0].command.ready):
                    m.d.sync += [taken[0].eq(0), merge.eq(merge + 1)]
                    m.next = "NEXT"
        return m

    def _route_rows(self, m, streams, turn, column, width):
        """Stream ``s`` feeds engine ``s + 2·turn_s``, a row at a time."""
        g, cores = self.engines, self.cores
        for s, source in enumerate(streams):
            targets = list(range(s, g, 2))
            for position, index in enumerate(targets):
                chosen = turn[s] == position
                with m.If(chosen):
                    m.d.comb += [cores[index].i.valid.eq(source.valid),
                                 cores[index].i.payload.eq(source.payload),
                                 source.ready.eq(cores[index].i.ready)]
            with m.If(source.valid & source.ready):
                with m.If(column[s] == width - 1):
                    m.d.sync += column[s].eq(0)
                    if len(targets) > 1:
                        m.d.sync += turn[s].eq(Mux(turn[s] == len(targets) - 1, 0,
                                                   turn[s] + 1))
                with m.Else():
                    m.d.sync += column[s].eq(column[s] + 1)
