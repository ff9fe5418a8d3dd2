"""Several QR cores on one stream of rows: partial factors, merged when the whole is needed.

One core's rows cannot follow each other faster than its ``P_min`` (each row's pivot ``i``
needs ``r_i`` from the previous row's, through the generator: 30-35 cycles in Q6.12) nor than
the ``n + k`` cycles a row takes to come in at one value a cycle, and a task holds the whole
linear array for a cycle; so ``units = n`` in one core keeps at most about half of its units
busy (``tiersolve bench qr``). :class:`QREngines` spends the same units as ``engines`` cores of
``units`` each instead, every core folding its own share of the rows into a factor of its
own, the way a tall-skinny QR splits the rows into blocks:

* a FOLD of ``m >= 2`` rows: engine ``e`` takes rows ``r = e, e + engines, ...`` (``m_e`` of
  them); engine 0 folds them into ``[R | Z]``, every other engine into a factor of its own,
  which it RESETs to zero first unless it still holds rows of an earlier FOLD; rows come on
  two streams, the even rows on ``i`` and the odd rows on ``i_odd``, so that the engines
  together can take more than one value a cycle (stream ``s`` feeds engines ``s, s + 2,
  ...``, a row each in turn). The FOLD ends when every engine has folded its rows: the
  factors stay apart, and the next FOLD of the same sizes goes on folding into them;
* the merge, when the whole factor is next needed (any other command but RESET, which drops
  the other engines' rows): every other engine that holds rows READs its ``Z_e``, then its
  ``R_e``, into a buffer of its own (all at once), and engine 0 folds their rows in, in one
  FOLD of ``n`` rows per engine, row ``i`` of each engine's factor in turn (``e = 1, 2,
  ...``), then row ``i + 1``, each row as soon as it is in its buffer; then the command
  runs on engine 0. The result is the QR factor of all the rows (the stacked factors have
  the same Gram matrix as the rows they came from), with other integers than one fold a
  row: :class:`tiersolve.gen.qr_model.QREnginesModel` computes them.

Every other command (RESET, UPDATE, SOLVE, READ, a FOLD of fewer than two rows, of other
sizes than the rows the engines hold, or one that is a bad command) goes to engine 0 as it
is (after the merge, if one is due), its input on ``i`` and its output on ``o``: the wrapper
then behaves as engine 0 does. ``cycles`` is engine 0's count for such a command without a
merge, and the wrapper's own (command to end, the merge included) for a spread FOLD and for
a command that merged first.

In steady state every engine runs its own FOLD schedule, one row every ``P`` cycles (its
:meth:`~tiersolve.gen.qr.IncrementalUpdater.fold_plan` period), so the engines together
take ``engines`` rows every ``P`` cycles and keep their units as busy as one engine keeps
its own; the merge costs ``n`` rows on engine 0 for each other engine that holds rows, once
per solve, not per FOLD.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In

from .checks import silent_if_refused
from .qr import IncrementalUpdater, QRSolver, port_members
from .qr_ops import FoldKind, Op, Select

__all__ = ["QREngines"]


class QREngines(wiring.Component):
    """``engines`` :class:`~tiersolve.gen.qr.QRSolver` cores (``core="qr"``) or
    :class:`~tiersolve.gen.qr.IncrementalUpdater` cores (``core="updater"``; ``n_max``,
    ``k_max``, ``fmt``, ``units`` and ``rotation`` each) behind one command port (module
    docstring). Of the updaters' commands only a FOLD of two or more rows without
    forgetting is spread; UPDATE, DOWNDATE, a FOLD with forgetting or of downdates, PREDICT
    and LOAD run on engine 0 after the merge, as SOLVE and READ do
    (:class:`~tiersolve.gen.qr_model.UpdaterEnginesModel`).

    Ports: those of the cores (``command``, ``i``, ``o``, ``busy``, ``refused``,
    ``saturated``, ``bad_command``, ``cycles``) and ``i_odd``, the odd rows of a FOLD spread
    over the engines (the even rows, and every other command's input, on ``i``).
    """

    @silent_if_refused
    def __init__(self, n_max: int, k_max: int, fmt, engines: int = 2, units: int = 1,
                 rotation: str = "cordic", core: str = "qr"):
        if isinstance(engines, bool) or not isinstance(engines, int):
            raise TypeError(f"engines must be an integer, not {engines!r}")
        if engines < 2 or engines > 64 or engines & (engines - 1):
            raise ValueError(f"engines must be a power of two from 2 to 64, not {engines}")
        if core not in ("qr", "updater"):
            raise ValueError(f"core must be 'qr' (QRSolver) or 'updater' "
                             f"(IncrementalUpdater), not {core!r}")
        cls = QRSolver if core == "qr" else IncrementalUpdater
        self.core = core
        self.cores = [cls(n_max, k_max, fmt, units=units, rotation=rotation)
                      for _ in range(engines)]
        core = self.cores[0]
        self.fmt, self.n_max, self.k_max = core.fmt, core.n_max, core.k_max
        self.engines, self.units, self.rotation = engines, units, rotation
        super().__init__({**port_members(n_max, k_max, self.fmt),
                          "i_odd": In(stream.Signature(signed(self.fmt.width)))})

    def elaborate(self, platform):
        m = Module()
        g, w = self.engines, self.fmt.width
        cores = self.cores
        for index, core in enumerate(cores):
            m.submodules[f"engine{index}"] = core
        n_max, k_max = self.n_max, self.k_max
        stride_bits = (n_max + k_max - 1).bit_length()
        row_bits = max(1, (n_max - 1).bit_length())
        # engine e's [R_e | Z_e] (e >= 1), read out for the merge: row i at i << stride_bits
        writes, reads = [None], [None]
        for index in range(1, g):
            buffer = memory.Memory(shape=signed(w), depth=(1 << row_bits) << stride_bits,
                                   init=[])
            m.submodules[f"buffer{index}"] = buffer
            writes.append(buffer.write_port())
            reads.append(buffer.read_port())

        holds = Signal(g)                              # engines (>= 1) holding rows
        payload = self.command.payload
        command = Signal.like(payload)                 # the FOLD being spread
        spread = Signal()                              # `cycles` is the wrapper's own count
        own_cycles = Signal(32)
        sticky = Signal()                              # an engine other than 0 clipped
        counting = Signal()
        with m.If(counting):
            m.d.sync += own_cycles.eq(own_cycles + 1)

        all_idle = Signal()
        m.d.comb += all_idle.eq(~Cat(*(c.busy for c in cores)).any())
        is_spread = Signal()

        # the engines' command ports: what the wrapper sends them (per state below)
        sends = [Signal(name=f"send{index}") for index in range(g)]
        # (``forgetting`` = 2**w, none, is set with each command's op below: a constant
        # assigned in a comb statement of its own becomes an `always @*` block without
        # inputs in the Verilog, which Verilator never runs: the updaters then saw 0)
        for index, core in enumerate(cores):
            m.d.comb += [core.command.payload.n.eq(command.n),
                         core.command.payload.k.eq(command.k),
                         core.command.valid.eq(sends[index])]
        taken = Signal(g)                              # which engines took the command

        # engine e's rows in a FOLD of `command.value` rows (two or more)
        shift = (g - 1).bit_length()
        rows = command.value.as_unsigned()

        def share(index):
            return (rows >> shift) + (index < (rows & (g - 1)))

        # input streams: stream s feeds engines s, s + 2, ... a row each in turn
        streams = [self.i, self.i_odd]
        # (one-hot: the engine a stream feeds now; registered flags for PASS and ROWS, so
        # that no decode of the state sits in front of the engines' input handshakes)
        turn = [Signal(len(range(s, g, 2)), init=1, name=f"turn{s}") for s in range(2)]
        passing, routing = Signal(), Signal()
        column = [Signal(range(n_max + k_max), name=f"column{s}") for s in range(2)]
        width = Signal(range(n_max + k_max + 1))
        m.d.comb += width.eq(command.n + command.k)

        # the merge: every engine e >= 1 with rows reads Z_e, then R_e, into its buffer
        # (phase: 0 READ Z to send, 1 Z coming, 2 READ R to send, 3 R coming, 4 done), while
        # engine 0 folds their rows in, in one FOLD, each row once it is in its buffer
        phases = [None] + [Signal(3, name=f"phase{index}") for index in range(1, g)]
        out_row = [None] + [Signal(range(n_max + 1), name=f"out_row{i}") for i in range(1, g)]
        out_col = [None] + [Signal(range(n_max + k_max + 1), name=f"out_col{i}")
                            for i in range(1, g)]
        merge_rows = Signal(range((g - 1) * n_max + 1))
        feed_engine = Signal(range(g))
        feed_row = Signal(range(n_max + 1))
        feed_col = Signal(range(n_max + k_max + 1))
        feed_from = Signal(range(g))                   # the engine read.data came from
        feed_valid = Signal()                          # read.data holds a value to send
        sent_valid = Signal()                          # `sent` holds a value for engine 0
        sent = Signal(signed(w))
        feed_over = Signal()                           # every address has been read

        m.d.comb += [self.refused.eq(cores[0].refused),
                     self.bad_command.eq(cores[0].bad_command),
                     # (an engine's flag is sticky since the RESET its rows started from)
                     self.saturated.eq(cores[0].saturated | sticky
                                       | (Cat(*(c.saturated for c in cores[1:]))
                                          & holds[1:]).any()),
                     self.cycles.eq(Mux(spread, own_cycles, cores[0].cycles))]

        held = Signal.like(payload)                    # a command waiting for the merge
        # a FOLD of two or more rows of good sizes is spread (after a merge if the rows the
        # engines hold are of other sizes)
        m.d.comb += is_spread.eq(
            (payload.op == Op.FOLD) & (payload.select == FoldKind.UPDATE)
            & (payload.value >= 2) & (payload.n >= 1) & (payload.n <= n_max)
            & (payload.k >= 1) & (payload.k <= k_max)
            & (~holds.any() | ((payload.n == command.n) & (payload.k == command.k)))
            # (the updater's: without forgetting; the QR solver ignores the field)
            & ((payload.forgetting == 1 << w) if self.core == "updater" else 1))

        with m.If(passing):
            m.d.comb += [cores[0].i.valid.eq(self.i.valid),
                         cores[0].i.payload.eq(self.i.payload),
                         self.i.ready.eq(cores[0].i.ready),
                         self.o.valid.eq(cores[0].o.valid),
                         self.o.payload.eq(cores[0].o.payload),
                         cores[0].o.ready.eq(self.o.ready)]
        with m.If(routing):
            self._route_rows(m, streams, turn, column, width)

        with m.FSM(name="engines"):
            with m.State("IDLE"):
                with m.If(is_spread):
                    m.d.comb += self.command.ready.eq(all_idle)
                    with m.If(self.command.valid & all_idle):
                        m.d.sync += [command.eq(payload), spread.eq(1), own_cycles.eq(1),
                                     counting.eq(1), taken.eq(holds | 1)]
                        m.next = "RESET"
                with m.Elif(holds.any() & (payload.op != Op.RESET)):
                    # the whole factor is needed: merge first, then the command
                    m.d.comb += self.command.ready.eq(all_idle)
                    with m.If(self.command.valid & all_idle):
                        # (`command` keeps the sizes of the FOLD that left the rows)
                        m.d.sync += [held.eq(payload), spread.eq(1),
                                     own_cycles.eq(1), counting.eq(1), taken.eq(0),
                                     merge_rows.eq(sum(holds[e] for e in range(1, g))
                                                   * command.n),
                                     feed_engine.eq(1), feed_row.eq(0), feed_col.eq(0),
                                     feed_valid.eq(0), sent_valid.eq(0), feed_over.eq(0)]
                        for index in range(1, g):
                            m.d.sync += [phases[index].eq(Mux(holds[index], 0, 4)),
                                         out_row[index].eq(0), out_col[index].eq(0)]
                        m.next = "MERGE"
                with m.Else():
                    # anything else is engine 0's, as it is (a RESET drops the other rows)
                    m.d.comb += [cores[0].command.valid.eq(self.command.valid),
                                 self.command.ready.eq(cores[0].command.ready),
                                 cores[0].command.payload.eq(payload)]
                    with m.If(self.command.valid & cores[0].command.ready):
                        m.d.sync += [spread.eq(0), holds.eq(0)]
                        with m.If(payload.op == Op.RESET):
                            m.d.sync += sticky.eq(0)
                        m.d.sync += passing.eq(1)
                        m.next = "PASS"
            with m.State("ISSUE"):
                m.d.comb += [self.busy.eq(1), cores[0].command.valid.eq(1),
                             cores[0].command.payload.eq(held)]
                with m.If(cores[0].command.ready):
                    m.d.sync += passing.eq(1)
                    m.next = "PASS"
            with m.State("PASS"):
                m.d.comb += self.busy.eq(1)
                with m.If(~cores[0].busy & cores[0].command.ready):
                    m.d.sync += [counting.eq(0), passing.eq(0)]
                    m.next = "IDLE"
            with m.State("RESET"):
                # the engines (>= 1) that hold no rows start from R = 0, Z = 0
                m.d.comb += self.busy.eq(1)
                for index in range(1, g):
                    m.d.comb += [cores[index].command.payload.op.eq(Op.RESET),
                                 cores[index].command.payload.forgetting.eq(1 << w),
                                 cores[index].command.payload.value.eq(0),
                                 sends[index].eq(~taken[index])]
                    with m.If(cores[index].command.ready & ~taken[index]):
                        m.d.sync += taken[index].eq(1)
                with m.If(taken.all()):
                    m.d.sync += taken.eq(0)
                    m.next = "RESET_WAIT"
            with m.State("RESET_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(all_idle):
                    m.d.sync += [turn[0].eq(1), turn[1].eq(1), column[0].eq(0),
                                 column[1].eq(0)]
                    m.next = "FOLD"
            with m.State("FOLD"):
                # every engine's FOLD of its share; the rows go to them as they come
                m.d.comb += self.busy.eq(1)
                for index in range(g):
                    m.d.comb += [cores[index].command.payload.op.eq(Op.FOLD),
                                 cores[index].command.payload.forgetting.eq(1 << w),
                                 cores[index].command.payload.select.eq(FoldKind.UPDATE),
                                 cores[index].command.payload.value.eq(share(index)),
                                 sends[index].eq(~taken[index] & (share(index) != 0))]
                    with m.If((cores[index].command.ready & sends[index])
                              | (share(index) == 0)):
                        m.d.sync += taken[index].eq(1)
                with m.If(taken.all()):
                    # engines 1 .. g-1 that took rows now hold them (engine 0 never "holds")
                    m.d.sync += [taken.eq(0), routing.eq(1),
                                 holds.eq(Cat(Const(0, 1), *(holds[index] | (share(index) != 0)
                                                             for index in range(1, g))))]
                    m.next = "ROWS"
            with m.State("ROWS"):
                m.d.comb += self.busy.eq(1)
                with m.If(all_idle):
                    m.d.sync += [counting.eq(0), routing.eq(0)]
                    m.next = "IDLE"
            with m.State("MERGE"):
                m.d.comb += self.busy.eq(1)
                for index in range(1, g):
                    self._read_out(m, cores[index], writes[index], phases[index],
                                   out_row[index], out_col[index], sends[index], command,
                                   stride_bits)
                # engine 0: one FOLD of the other engines' rows, fed from their buffers
                m.d.comb += [cores[0].command.payload.op.eq(Op.FOLD),
                             cores[0].command.payload.forgetting.eq(1 << w),
                             cores[0].command.payload.select.eq(FoldKind.UPDATE),
                             cores[0].command.payload.value.eq(merge_rows),
                             sends[0].eq(~taken[0])]
                with m.If(cores[0].command.ready & ~taken[0]):
                    m.d.sync += taken[0].eq(1)
                # a row of engine e is in once Z_e is (phase >= 2) and R_e's rows past it;
                # an engine that holds no rows is passed over
                row_in = Signal()
                skip = Signal()
                for index in range(1, g):
                    with m.If(feed_engine == index):
                        m.d.comb += [row_in.eq((phases[index] >= 2)
                                               & ((phases[index] == 4)
                                                  | (out_row[index] > feed_row))),
                                     skip.eq(~holds[index])]
                # two stages: the buffers' read data (feed_valid), then a register that
                # engine 0 takes its values from (sent_valid, sent), so that no block-RAM
                # output runs into engine 0's input buffer in the same cycle
                consume = sent_valid & cores[0].i.ready
                advance = ~sent_valid | consume
                issue = advance & ~feed_over & row_in & ~skip
                data_out = Signal(signed(w))
                for index in range(1, g):
                    m.d.comb += [reads[index].addr.eq((feed_row << stride_bits) | feed_col),
                                 reads[index].en.eq(advance)]
                    with m.If(feed_from == index):
                        m.d.comb += data_out.eq(reads[index].data)
                m.d.comb += [cores[0].i.valid.eq(sent_valid),
                             cores[0].i.payload.eq(sent)]
                with m.If(advance):
                    m.d.sync += [feed_valid.eq(issue), feed_from.eq(feed_engine),
                                 sent_valid.eq(feed_valid), sent.eq(data_out)]
                with m.If((issue & (feed_col == width - 1)) | (advance & ~feed_over & skip)):
                    # row i of every engine's factor in turn, then row i + 1
                    m.d.sync += feed_col.eq(0)
                    with m.If(feed_engine == g - 1):
                        m.d.sync += feed_engine.eq(1)
                        with m.If(feed_row == command.n - 1):
                            m.d.sync += feed_over.eq(1)
                        with m.Else():
                            m.d.sync += feed_row.eq(feed_row + 1)
                    with m.Else():
                        m.d.sync += feed_engine.eq(feed_engine + 1)
                with m.Elif(issue):
                    m.d.sync += feed_col.eq(feed_col + 1)
                with m.If(taken[0] & feed_over & ~feed_valid & ~sent_valid & ~cores[0].busy
                          & cores[0].command.ready):
                    m.d.sync += [taken.eq(0), holds.eq(0)]
                    with m.If(Cat(*(c.saturated for c in cores[1:])).any()):
                        m.d.sync += sticky.eq(1)
                    m.next = "ISSUE"
        return m

    @staticmethod
    def _read_out(m, core, write, phase, row, col, send, command, stride_bits):
        """Engine ``core``'s READ of ``Z`` (phase 0, 1), then of ``R`` (2, 3), into its
        buffer: ``Z[i, c]`` at ``(i, n + c)``, ``R[i, c]`` at ``(i, c)``; ``row`` counts the
        rows of ``R`` that are in."""
        with m.If((phase == 0) | (phase == 2)):
            m.d.comb += [core.command.payload.op.eq(Op.READ),
                         core.command.payload.forgetting.eq(1 << core.fmt.width),
                         core.command.payload.select.eq(Mux(phase == 0, Select.Z, Select.R)),
                         send.eq(1)]
            with m.If(core.command.ready):
                m.d.sync += phase.eq(phase + 1)
        with m.If((phase == 1) | (phase == 3)):
            limit = Mux(phase == 1, command.k, command.n)
            offset = Mux(phase == 1, command.n, 0)
            m.d.comb += core.o.ready.eq(1)
            with m.If(core.o.valid):
                m.d.comb += [write.en.eq(1),
                             write.addr.eq((row << stride_bits) | (col + offset)),
                             write.data.eq(core.o.payload.value)]
                with m.If(col == limit - 1):
                    m.d.sync += [col.eq(0), row.eq(row + 1)]
                with m.Else():
                    m.d.sync += col.eq(col + 1)
                with m.If(core.o.payload.last):
                    m.d.sync += [phase.eq(phase + 1), row.eq(0), col.eq(0)]

    def _route_rows(self, m, streams, turn, column, width):
        """Stream ``s`` feeds engine ``s + 2·p`` where bit ``p`` of ``turn_s`` is set, a row
        at a time."""
        g, cores = self.engines, self.cores
        for s, source in enumerate(streams):
            targets = list(range(s, g, 2))
            for position, index in enumerate(targets):
                with m.If(turn[s][position]):
                    m.d.comb += [cores[index].i.valid.eq(source.valid),
                                 cores[index].i.payload.eq(source.payload),
                                 source.ready.eq(cores[index].i.ready)]
            with m.If(source.valid & source.ready):
                with m.If(column[s] == width - 1):
                    m.d.sync += column[s].eq(0)
                    if len(targets) > 1:
                        m.d.sync += turn[s].eq(turn[s].rotate_left(1))
                with m.Else():
                    m.d.sync += column[s].eq(column[s] + 1)
