"""Top-level solver design: cores, their buffers and the register map behind a transport bridge.

:class:`SolverRegisters` is the register map of :mod:`tiersolve.designs.regmap` in gateware: a
slave on the register bus (:mod:`tiersolve.designs.bus`) that owns the cores and their result
buffer. :class:`SolverDesign` puts it behind a transport: the frame bridge
(:class:`~tiersolve.designs.bridge.FrameBridge`) on a byte stream (``bus="bytes"``, what the
simulated device is fed with), the same behind the UART PHY (``bus="uart"``), an AXI4-Lite slave
(``bus="axi-lite"``, for a PCIe bridge), or the bare register bus (``bus="register"``).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out, connect
from tiersolve.gen.checks import check_int, silent_if_refused
from tiersolve.gen.cholesky_model import check_cholesky_parameters, check_inverse_format
from tiersolve.gen.fixed import FixedFormat

from . import regmap
from .bus import RegisterBusSignature

__all__ = ["BUSES", "RegisterBusStage", "SolverDesign", "SolverRegisters", "StreamRegister",
           "default_bus_timeout"]

#: Transports :class:`SolverDesign` can be built with.
BUSES = ("bytes", "uart", "axi-lite", "register")

#: Cores :class:`SolverDesign` can instantiate today.
AVAILABLE_CORES = ("cholesky", "updater")


def default_bus_timeout(n_max: int, k_max: int, lanes: int) -> int:
    """Bus wait states after which a bridge gives up: well above the longest legitimate wait.

    The longest wait is a ``ROW_DATA`` write while the Cholesky core clears its matrix or folds
    a row in: ``Σ_j ceil((n + k - j) / lanes) + 7`` cycles at most (see
    :func:`tiersolve.gen.cholesky_model.cycle_model`). The timeout is four times that bound
    plus 1024 cycles.
    """
    passes = sum(-(-(n_max + k_max - j) // lanes) for j in range(n_max))
    return 4 * (passes + n_max + k_max + 8) + 1024


class SolverRegisters(wiring.Component):
    """The register map of :mod:`tiersolve.designs.regmap`, with the cores behind it.

    Parameters
    ----------
    n_max, k_max : int
        Largest system size and number of right-hand sides (``n_max * k_max`` at most
        :data:`~tiersolve.designs.regmap.RESULT_WINDOW_SIZE`).
    fmt : FixedFormat or str
        Data format of the cores.
    lanes : int
        Multiply-accumulate lanes of the Cholesky core.
    cores : tuple of str
        Cores to build: ``"cholesky"`` (always), and ``"updater"`` for the incremental-update
        core (:class:`~tiersolve.gen.qr.IncrementalUpdater`, same ``n_max``, ``k_max`` and
        format).
    guard_bits, inverse_format, rsqrt_mode
        Passed to :class:`~tiersolve.gen.cholesky.CholeskySolver`.
    updater_units, updater_rotation
        ``units`` and ``rotation`` of the updater (ignored without it).
    clock_frequency : int
        Reported in ``CLOCK_HZ`` (Hz).
    max_burst : int
        Reported in ``MAX_BURST`` (0 when no frame bridge is in front).
    spram : bool
        Keep the Cholesky core's result buffer in iCE40 UltraPlus SPRAM (SB_SPRAM256KA, one per
        16 data bits) instead of block RAM.

    Members
    -------
    bus : In(RegisterBusSignature(regmap.ADDRESS_WIDTH))
        Register bus slave port.

    Timing
    ------
    Every access first waits one cycle, in which its address is decoded into registers (the
    bus stage holds the address through the access). A write is then answered at once, a
    register read one cycle later (its word is registered) and a read of the ``RESULT`` window
    three cycles later (its offset, the synchronous memory and the memory's output are each
    registered), more while the core's output is being captured (the buffer has a single
    port, and capturing comes first).
    ``COMMAND`` and ``ROW_DATA`` / ``ROW_DATA_LAST`` writes go to the core through a
    :class:`StreamRegister` each: a write is taken when the stage is empty and reaches the core
    a cycle later, so a write waits while the previous one has not been taken (between Gram
    rows, when no job is waiting for rows, or while the core is busy); a command still in its
    stage reads as busy (and not done) in ``STATUS``. A reset
    written to ``CONTROL`` is registered: it resets the core (and clears the result count) at
    the edge after the one that completes the write, and the access after it waits that one
    cycle, so a burst of ``CONTROL``, ``SIZE``, ``LAMBDA``, ``COMMAND`` starts a job on a
    freshly reset core.

    The updater's registers behave alike: ``UPDATER_COMMAND`` and ``UPDATER_DATA`` pass
    through stages of their own, and the ``UPDATER_RESULT`` window reads as ``RESULT``. The
    updater's timing is :meth:`tiersolve.gen.qr.IncrementalUpdater.update_cycles`.
    """

    @silent_if_refused
    def __init__(self, n_max: int = 16, k_max: int = 4, fmt="Q6.12", lanes: int = 4, *,
                 cores=("cholesky",), guard_bits: int = 4, inverse_format=None,
                 rsqrt_mode: str = "iterative", clock_frequency: int = 12_000_000,
                 max_burst: int = 0, updater_units: int = 1,
                 updater_rotation: str = "multiplier", updater_fold: bool = False,
                 spram: bool = False):
        self.fmt = check_cholesky_parameters(n_max, k_max, fmt, lanes, guard_bits)
        if not isinstance(spram, bool):
            raise TypeError(f"spram must be a bool, not {spram!r}")
        self.spram = spram
        self.inverse_format = check_inverse_format(inverse_format, self.fmt)
        self.cores = _check_cores(cores)
        self.updater = None
        if updater_fold and "updater" not in self.cores:
            raise ValueError("updater_fold builds the updater's FOLD command: it needs the "
                             "updater (cores=cholesky,updater)")
        if "updater" in self.cores:
            if n_max * max(n_max, k_max) > regmap.RESULT_WINDOW_SIZE:
                raise ValueError(f"n_max * max(n_max, k_max) = {n_max * max(n_max, k_max)} "
                                 f"exceeds the UPDATER_RESULT window of "
                                 f"{regmap.RESULT_WINDOW_SIZE} words")
            if updater_rotation not in regmap.UPDATER_ROTATIONS:
                raise ValueError(f"updater_rotation must be one of {regmap.UPDATER_ROTATIONS}, "
                                 f"not {updater_rotation!r}")
            from tiersolve.gen.qr import IncrementalUpdater

            self.updater = IncrementalUpdater(n_max, k_max, self.fmt, units=updater_units,
                                              rotation=updater_rotation, fold=updater_fold)
        if n_max * k_max > regmap.RESULT_WINDOW_SIZE:
            raise ValueError(f"n_max * k_max = {n_max * k_max} exceeds the RESULT window of "
                             f"{regmap.RESULT_WINDOW_SIZE} words")
        self.n_max, self.k_max, self.lanes = n_max, k_max, lanes
        self.guard_bits = guard_bits
        self.rsqrt_mode = rsqrt_mode
        self.clock_frequency = check_int("clock_frequency", clock_frequency, 1, (1 << 32) - 1)
        self.max_burst = check_int("max_burst", max_burst, 0, 0xFFFF)
        from tiersolve.gen.cholesky import CholeskySolver

        # built here so that bad parameters raise now
        self.cholesky = CholeskySolver(n_max, k_max, self.fmt, lanes, guard_bits=guard_bits,
                                       inverse_format=self.inverse_format,
                                       rsqrt_mode=rsqrt_mode)
        super().__init__({"bus": In(RegisterBusSignature(regmap.ADDRESS_WIDTH))})

    def identity(self) -> dict[str, int]:
        """Values of the read-only identity registers, by name."""
        return {
            "MAGIC": regmap.MAGIC,
            "VERSION": regmap.VERSION,
            "LAYOUT": regmap.LAYOUT_ID,
            "CORES": sum(1 << regmap.CORE_BITS[name] for name in self.cores),
            "N_MAX": self.n_max,
            "K_MAX": self.k_max,
            "FORMAT": regmap.encode_fields("FORMAT", int_bits=self.fmt.int_bits,
                                           frac_bits=self.fmt.frac_bits,
                                           guard_bits=self.guard_bits),
            "INVERSE_FORMAT": regmap.encode_fields(
                "INVERSE_FORMAT", int_bits=self.inverse_format.int_bits,
                frac_bits=self.inverse_format.frac_bits),
            "LANES": self.lanes,
            "CLOCK_HZ": self.clock_frequency,
            "MAX_BURST": self.max_burst,
            "UPDATER": 0 if self.updater is None else regmap.encode_fields(
                "UPDATER", units=self.updater.units,
                rotation=regmap.UPDATER_ROTATIONS.index(self.updater.rotation),
                fold=int(self.updater.folds),
                fold_downdate=int(self.updater.fold_downdates)),
        }

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        w = self.fmt.width
        a = regmap.address

        # CONTROL's reset bits are decoded from the bus, then registered: the registered copy
        # drives the reset of every flip-flop of a core (a large fan-out) from one flip-flop.
        reset_cholesky = Signal()
        reset_cholesky_pending = Signal()
        reset_updater = Signal()
        reset_updater_pending = Signal()
        m.d.sync += [reset_cholesky_pending.eq(reset_cholesky),
                     reset_updater_pending.eq(reset_updater)]
        m.submodules.cholesky = ResetInserter({"sync": reset_cholesky_pending})(self.cholesky)
        core = self.cholesky

        # The address decode is registered: the bus stage holds an access's address until it
        # is acknowledged, so every "the address is X" flag is valid from the access's second
        # cycle (`settled`), and the acknowledge, which ends the access in the bus stage, is
        # a few gates from flip-flops (the decode and the wide compares were its worst path).
        settled = Signal()  # the strobe was up, unanswered, last cycle
        m.d.sync += settled.eq((bus.w_stb | bus.r_stb) & ~bus.ack)
        decoded = {}

        def at(*names):  # (the flags are registered at the end: no statement here, so
            # that `at` may be called between the branches of an If chain)
            for name in names:
                if name not in decoded:
                    decoded[name] = Signal(name=f"address_is_{name.lower()}")
            flags = [decoded[name] for name in names]
            return flags[0] if len(flags) == 1 else Cat(*flags).any()

        # -- job registers ---------------------------------------------------------------------
        size_n = Signal(16)
        size_k = Signal(16)
        lam = Signal(32)

        # the command and data streams reach the core through register stages
        command = _staged_stream(m, "cholesky_command", core.command, reset_cholesky_pending)
        row_data = _staged_stream(m, "cholesky_data", core.i, reset_cholesky_pending)
        command_pending = core.command.valid  # taken by the stage, not yet by the core

        # -- result buffer: captures the core's output stream -----------------------------------
        depth = self.n_max * self.k_max
        clear_results = Signal()  # a command was taken last cycle: clear result_count
        m.d.sync += clear_results.eq(0)  # (set by the COMMAND write below)
        results, result_count, capturing = _result_buffer(m, "results", core.o, w, depth,
                                                          spram=self.spram)

        # -- command and data ports ---------------------------------------------------------------
        sizes_valid = ((size_n >= 1) & (size_n <= self.n_max)
                       & (size_k >= 1) & (size_k <= self.k_max))
        op = bus.w_data[:4]
        known_op = (op == regmap.Op.CHOLESKY_GRAM) | (op == regmap.Op.CHOLESKY_DIRECT)
        m.d.comb += [
            # out-of-range sizes become n = 0: the core flags bad_command
            command.payload.n.eq(size_n[:len(command.payload.n)]),
            command.payload.k.eq(size_k[:len(command.payload.k)]),
            command.payload.lam.eq(lam[:w]),
            command.payload.mode.eq(op == regmap.Op.CHOLESKY_DIRECT),
            row_data.payload.value.eq(bus.w_data[:w]),
            row_data.payload.last.eq(at("ROW_DATA_LAST")),
        ]
        with m.If(~sizes_valid):
            m.d.comb += command.payload.n.eq(0)

        status_word = Signal(32)
        fields = {f.name: f for f in regmap.register("STATUS").fields}
        # a command still in its stage counts as busy, not done (the previous job's done)
        for name, value in (("busy", core.busy | command_pending),
                            ("done", core.done & ~command_pending), ("npd", core.npd),
                            ("saturated", core.saturated), ("bad_command", core.bad_command),
                            ("phase", core.phase), ("npd_index", core.npd_index)):
            field = fields[name]
            m.d.comb += status_word[field.offset:field.offset + field.width].eq(value)

        # -- bus decoding -------------------------------------------------------------------------
        # a result window's read: 0 = not started, 1 = the offset is in read_offset, 2 = read
        # from its buffer last cycle, 3 = the word is in the buffer's word register (a register
        # read goes from 0 to 3, its word in read_word). The buffer's read address
        # and its output both meet a register first: a memory read with a write port beside it
        # carries address-compare logic in Yosys's ECP5 mapping, and a block RAM's output is
        # slow (5.8 ns on ECP5 speed 6), so neither may share a cycle with the bus decode.
        read_step = Signal(range(4))
        read_offset = Signal(range(max(self.n_max * max(self.n_max, self.k_max), 2)))
        past_end = Signal()  # the offset does not fit read_offset
        window_ok = Signal()  # the offset is below the buffer's count
        read_word = Signal(32)
        register_word = Signal(32)  # the register the bus address selects (0: none)
        in_window = Signal()
        m.d.sync += in_window.eq(bus.addr >= regmap.RESULT_WINDOW)

        def window_reader(name, buffer, buffer_capturing):
            """The register that takes ``buffer``'s output (call outside the bus decode)."""
            # the buffer's output goes straight to a register of its own, every cycle (a block
            # RAM's clock-to-output is 5.8 ns on ECP5 speed 6: no logic after it). A buffer with
            # a read port of its own (buffer_capturing is a constant 0) is read from read_offset
            # in every read_step 1, whichever window the access is in: its address and enable
            # come from registers and one 2-bit compare, not through the bus decode below.
            buffer_word = Signal(32, name=f"{name}_word")
            m.d.sync += buffer_word.eq(buffer.read_data.as_signed())
            if isinstance(buffer_capturing, Const):
                m.d.comb += [buffer.addr.eq(read_offset), buffer.read_enable.eq(read_step == 1)]
            return buffer_word

        def read_window(buffer, buffer_capturing, buffer_word, offset, count):
            # The offset is registered first. The buffer has one port, and capturing a core's
            # output has it first: the read waits for a cycle without a capture, registers the
            # word in the next one and answers in the one after. Offsets past count read 0.
            with m.If(read_step == 0):
                m.d.sync += [read_offset.eq(offset),
                             past_end.eq((offset >> len(read_offset)) != 0),
                             read_step.eq(1)]
            with m.Elif(read_step == 1):
                if isinstance(buffer_capturing, Const):
                    m.d.sync += read_step.eq(2)  # read above, outside the decode
                else:
                    with m.If(~buffer_capturing):
                        m.d.comb += [buffer.addr.eq(read_offset), buffer.read_enable.eq(1)]
                        m.d.sync += read_step.eq(2)
            with m.Elif(read_step == 2):
                m.d.sync += [window_ok.eq(~past_end & (read_offset < count)), read_step.eq(3)]
            with m.Else():
                m.d.comb += [bus.ack.eq(1), bus.r_data.eq(Mux(window_ok, buffer_word, 0))]
                m.d.sync += read_step.eq(0)

        identity = self.identity()
        updater = self.updater
        in_updater_window = Signal()
        if updater is not None:
            updater_state = self._updater_elaborate(m, reset_updater_pending)
            updater_registers = updater_state["registers"]
            updater_word = window_reader("updater_results", updater_state["buffer"],
                                         updater_state["capturing"])
            m.d.sync += in_updater_window.eq(bus.addr >= regmap.UPDATER_RESULT_WINDOW)
            in_window = in_window & ~in_updater_window
        results_word = window_reader("results", results, capturing)
        with m.If(reset_cholesky_pending | reset_updater_pending):
            pass  # a core is being reset: every access waits one cycle (ack stays low)
        with m.Elif(~settled):
            pass  # an access's first cycle: its address is being decoded
        with m.Elif(bus.r_stb & in_updater_window):
            if updater is not None:
                read_window(updater_state["buffer"], updater_state["capturing"], updater_word,
                            bus.addr - regmap.UPDATER_RESULT_WINDOW, updater_state["count"])
            else:
                m.d.comb += bus.ack.eq(1)
        with m.Elif(bus.r_stb):
            with m.If(in_window):
                read_window(results, capturing, results_word, bus.addr - regmap.RESULT_WINDOW,
                            result_count)
            with m.Else():
                # a register read: the decoded word is registered (read_word) and answered
                # the cycle after, so the address decode and the wide read multiplexer do
                # not share a cycle with the route to the bridge (unknown addresses read 0)
                with m.If(read_step == 0):
                    m.d.sync += [read_word.eq(register_word), read_step.eq(3)]
                with m.Else():
                    m.d.comb += [bus.ack.eq(1), bus.r_data.eq(read_word)]
                    m.d.sync += read_step.eq(0)
                # the word is an OR of the readable registers, each gated by its registered
                # "the address is X" flag (at most one is high), not a decode of bus.addr
                readable = dict(identity)
                readable.update({"SIZE": size_n | (size_k << 16), "LAMBDA": lam,
                                 "STATUS": status_word, "CYCLES": core.cycles,
                                 "RESULT_COUNT": result_count})
                if updater is not None:
                    readable.update(updater_registers)
                m.d.comb += register_word.eq(
                    _or_all(Mux(at(name), value, 0) for name, value in readable.items()))
        with m.Elif(bus.w_stb):
            with m.If(at("CONTROL")):
                m.d.comb += [bus.ack.eq(1), reset_cholesky.eq(bus.w_data[0]),
                             reset_updater.eq(bus.w_data[1])]
            if updater is not None:
                self._updater_writes(m, updater, updater_state, at)
            with m.Elif(at("SIZE")):
                m.d.comb += bus.ack.eq(1)
                m.d.sync += [size_n.eq(bus.w_data[:16]), size_k.eq(bus.w_data[16:])]
            with m.Elif(at("LAMBDA")):
                m.d.comb += bus.ack.eq(1)
                m.d.sync += lam.eq(bus.w_data)
            with m.Elif(at("COMMAND")):
                with m.If(known_op):
                    m.d.comb += [command.valid.eq(1), bus.ack.eq(command.ready)]
                    with m.If(command.ready):
                        m.d.sync += clear_results.eq(1)
                with m.Else():  # unknown operations are ignored
                    m.d.comb += bus.ack.eq(1)
            with m.Elif(at("ROW_DATA", "ROW_DATA_LAST")):
                m.d.comb += [row_data.valid.eq(1), bus.ack.eq(row_data.ready)]
            with m.Else():  # read-only and unused addresses ignore writes
                m.d.comb += bus.ack.eq(1)
        # the count is cleared the cycle after its command was taken (the core has not
        # started: its command passes a register stage first), by a register, so that the
        # address decode does not reach the count's adder
        with m.If(reset_cholesky_pending | clear_results):
            m.d.sync += result_count.eq(0)
        for name, flag in decoded.items():
            m.d.sync += flag.eq(bus.addr == a(name))
        return m

    def _updater_elaborate(self, m, reset_updater):
        """The updater, its command registers, status and output buffer (not the bus decode)."""
        updater = self.updater
        w = self.fmt.width
        m.submodules.updater = ResetInserter({"sync": reset_updater})(updater)
        size_n = Signal(16)
        size_k = Signal(16)
        value = Signal(32)
        forgetting = Signal(32)
        started = Signal()   # a command was taken since the last reset
        depth = self.n_max * max(self.n_max, self.k_max)
        results, count, capturing = _result_buffer(m, "updater_results", updater.o, w, depth)
        command = _staged_stream(m, "updater_command", updater.command, reset_updater)
        data = _staged_stream(m, "updater_data", updater.i, reset_updater)
        command_pending = updater.command.valid  # taken by the stage, not yet by the core
        sizes_valid = ((size_n >= 1) & (size_n <= self.n_max)
                       & (size_k >= 1) & (size_k <= self.k_max))
        forgetting_valid = forgetting <= (1 << w)
        payload = command.payload
        m.d.comb += [
            # out-of-range sizes or constants become 0: the updater flags bad_command
            payload.n.eq(size_n[:len(payload.n)]),
            payload.k.eq(size_k[:len(payload.k)]),
            payload.value.eq(value[:w]),
            payload.forgetting.eq(forgetting[:len(payload.forgetting)]),
            data.payload.eq(self.bus.w_data[:w]),
        ]
        with m.If(~sizes_valid):
            m.d.comb += payload.n.eq(0)
        with m.If(~forgetting_valid):
            m.d.comb += payload.forgetting.eq(0)
        status = Signal(32)
        fields = {f.name: f for f in regmap.register("UPDATER_STATUS").fields}
        busy = updater.busy | command_pending  # a command in its stage counts as busy
        for name, flag in (("busy", busy), ("done", started & ~busy),
                           ("refused", updater.refused), ("saturated", updater.saturated),
                           ("bad_command", updater.bad_command)):
            field = fields[name]
            m.d.comb += status[field.offset:field.offset + field.width].eq(flag)
        clear = Signal()  # a command was taken last cycle: clear the count
        m.d.sync += clear.eq(0)
        with m.If(clear):
            m.d.sync += count.eq(0)
        with m.If(reset_updater):
            m.d.sync += [count.eq(0), started.eq(0)]
        return {
            "registers": {"UPDATER_SIZE": size_n | (size_k << 16), "UPDATER_VALUE": value,
                          "UPDATER_FORGET": forgetting, "UPDATER_STATUS": status,
                          "UPDATER_CYCLES": updater.cycles, "UPDATER_COUNT": count},
            "size_n": size_n, "size_k": size_k, "value": value, "forgetting": forgetting,
            "started": started, "count": count, "clear": clear, "buffer": results,
            "capturing": capturing,
            "command": command, "data": data,
        }

    def _updater_writes(self, m, updater, state, at):
        """Branches of the bus write decoder for the updater's registers and data port
        (``at(name)``: the registered "the address is ``name``" flag)."""
        bus = self.bus
        with m.Elif(at("UPDATER_SIZE")):
            m.d.comb += bus.ack.eq(1)
            m.d.sync += [state["size_n"].eq(bus.w_data[:16]), state["size_k"].eq(bus.w_data[16:])]
        with m.Elif(at("UPDATER_VALUE")):
            m.d.comb += bus.ack.eq(1)
            m.d.sync += state["value"].eq(bus.w_data)
        with m.Elif(at("UPDATER_FORGET")):
            m.d.comb += bus.ack.eq(1)
            m.d.sync += state["forgetting"].eq(bus.w_data)
        with m.Elif(at("UPDATER_COMMAND")):
            fields = {f.name: f for f in regmap.register("UPDATER_COMMAND").fields}
            op, select = fields["op"], fields["select"]
            op_value = bus.w_data[op.offset:op.offset + op.width]
            known = op_value <= max(regmap.UpdaterOp)
            command = state["command"]
            m.d.comb += [
                command.payload.op.eq(op_value[:len(command.payload.op)]),
                command.payload.select.eq(bus.w_data[select.offset:select.offset + select.width]),
            ]
            with m.If(known):
                m.d.comb += [command.valid.eq(1), bus.ack.eq(command.ready)]
                with m.If(command.ready):  # the count is cleared next cycle (see elaborate)
                    m.d.sync += [state["clear"].eq(1), state["started"].eq(1)]
            with m.Else():  # unknown operations are ignored
                m.d.comb += bus.ack.eq(1)
        with m.Elif(at("UPDATER_DATA")):
            m.d.comb += [state["data"].valid.eq(1), bus.ack.eq(state["data"].ready)]


def _check_cores(cores) -> tuple[str, ...]:
    if isinstance(cores, str):  # "cholesky,updater" from the command line
        cores = tuple(name.strip() for name in cores.split(",") if name.strip())
    try:
        cores = tuple(cores)
    except TypeError:
        raise TypeError(f"cores must be a tuple of core names, not {cores!r}") from None
    if not cores:
        raise ValueError("cores must name at least one core")
    for name in cores:
        if name not in regmap.CORE_BITS:
            raise ValueError(f"unknown core {name!r}; known: {', '.join(regmap.CORE_BITS)}")
        if name not in AVAILABLE_CORES:
            raise ValueError(f"core {name!r} is not yet integrated in SolverDesign; "
                             f"available: {', '.join(AVAILABLE_CORES)}")
    if "cholesky" not in cores:
        raise ValueError("SolverDesign needs the 'cholesky' core")
    return tuple(dict.fromkeys(cores))


class SolverDesign(wiring.Component):
    """A complete solver: the chosen cores and the register map behind a transport bridge.

    Parameters
    ----------
    cores : tuple of str
        Cores to build: ``("cholesky",)`` or ``("cholesky", "updater")`` (the incremental
        update core, :class:`~tiersolve.gen.qr.IncrementalUpdater`).
    n_max, k_max : int
        Largest system size ``n`` and number of right-hand sides ``k``.
    fmt : FixedFormat or str
        Data format (e.g. ``"Q6.12"``).
    lanes : int
        Multiply-accumulate lanes of the Cholesky core (power of two).
    bus : str
        ``"bytes"``: :class:`~tiersolve.designs.bridge.FrameBridge` on byte streams (the
        simulated device); ``"uart"``: the same behind the UART PHY; ``"axi-lite"``:
        :class:`~tiersolve.designs.axil.AxiLiteBridge`; ``"register"``: the bare register bus.
    clock_frequency : int
        Design clock in Hz (reported in ``CLOCK_HZ``; sets the UART divisor).
    baud_rate : int
        UART rate for ``bus="uart"`` (default 3 Mbaud).
    max_burst : int
        Longest burst of the frame bridge, in words.
    bus_timeout : int or None
        Bridge bus timeout in cycles (default :func:`default_bus_timeout`).
    guard_bits, inverse_format, rsqrt_mode
        Passed to :class:`~tiersolve.gen.cholesky.CholeskySolver`.
    updater_units, updater_rotation : int, str
        ``units`` (power of two) and ``rotation`` (``"multiplier"`` or ``"cordic"``) of the
        updater.
    updater_fold : bool
        Build the updater's FOLD command (rows in flight together; off by default: its
        generator pipeline, register files and row slots cost area, at n_max = 64 in Q8.16
        more than the ULX3S design routes). The host uses it when the design reports it.
    spram : bool
        iCE40 UltraPlus only: keep the Cholesky result buffer and the frame bridge's request
        buffer in SPRAM (SB_SPRAM256KA; four blocks for a 17..32-bit format), leaving the block
        RAMs to the cores. Takes effect when elaborated for a platform; the simulator gets
        behavioural memories.

    Members
    -------
    rx, tx : ``In(stream.Signature(8))``, ``Out(stream.Signature(8))`` (``bus="bytes"``)
        Request bytes in, reply bytes out (see :class:`~tiersolve.designs.bridge.FrameBridge`).
    rx, tx : ``In(1, init=1)``, ``Out(1, init=1)`` (``bus="uart"``)
        Serial lines.
    axi : ``In(AxiLiteSignature(regmap.ADDRESS_WIDTH + 2))`` (``bus="axi-lite"``)
        AXI4-Lite slave port (byte addresses).
    bus : ``In(RegisterBusSignature(regmap.ADDRESS_WIDTH))`` (``bus="register"``)
        Register bus slave port.

    Timing
    ------
    Behind a bridge (``bytes``, ``uart``, ``axi-lite``) the register bus passes through a
    :class:`RegisterBusStage`, so that no path runs from a bridge's buffers into a core in one
    cycle: every access takes two cycles more than :class:`SolverRegisters` alone needs.
    """

    @silent_if_refused
    def __init__(self, cores=("cholesky",), n_max: int = 16, k_max: int = 4, fmt="Q6.12",
                 lanes: int = 4, *, bus: str = "bytes", clock_frequency: int = 12_000_000,
                 baud_rate: int = 3_000_000, max_burst: int = 64,
                 bus_timeout: int | None = None, guard_bits: int = 4, inverse_format=None,
                 rsqrt_mode: str = "iterative", updater_units: int = 1,
                 updater_rotation: str = "multiplier", updater_fold: bool = False,
                 spram: bool = False):
        if bus not in BUSES:
            raise ValueError(f"bus must be one of {BUSES}, not {bus!r}")
        self.bus_kind = bus
        check_int("max_burst", max_burst, 1, 0xFFFF)
        self.registers = SolverRegisters(
            n_max, k_max, fmt, lanes, cores=cores, guard_bits=guard_bits,
            inverse_format=inverse_format, rsqrt_mode=rsqrt_mode,
            clock_frequency=clock_frequency,
            max_burst=max_burst if bus in ("bytes", "uart") else 0,
            updater_units=updater_units, updater_rotation=updater_rotation,
            updater_fold=updater_fold, spram=spram)
        self._build_bridge(bus, n_max, k_max, lanes, clock_frequency, baud_rate, max_burst,
                           bus_timeout)

    def _build_bridge(self, bus, n_max, k_max, lanes, clock_frequency, baud_rate, max_burst,
                      bus_timeout):
        if bus_timeout is None:
            bus_timeout = default_bus_timeout(n_max, k_max, lanes)
        else:
            check_int("bus_timeout", bus_timeout, 1)
        self.bus_timeout = bus_timeout
        self.max_burst = max_burst
        self.divisor = None
        if bus == "bytes":
            from .bridge import FrameBridge

            self.bridge = FrameBridge(max_burst=max_burst, address_width=regmap.ADDRESS_WIDTH,
                                      bus_timeout=bus_timeout, spram=self.registers.spram)
            members = {"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8))}
        elif bus == "uart":
            from .bridge import UartFrameBridge
            from .uart import baud_divisor

            self.divisor = baud_divisor(clock_frequency, baud_rate)
            self.bridge = UartFrameBridge(self.divisor, max_burst=max_burst,
                                          address_width=regmap.ADDRESS_WIDTH,
                                          bus_timeout=bus_timeout,
                                          spram=self.registers.spram)
            members = {"rx": In(1, init=1), "tx": Out(1, init=1)}
        elif bus == "axi-lite":
            from .axil import AxiLiteBridge, AxiLiteSignature

            self.bridge = AxiLiteBridge(address_width=regmap.ADDRESS_WIDTH,
                                        bus_timeout=bus_timeout)
            members = {"axi": In(AxiLiteSignature(regmap.ADDRESS_WIDTH + 2))}
        else:
            self.bridge = None
            members = {"bus": In(RegisterBusSignature(regmap.ADDRESS_WIDTH))}
        wiring.Component.__init__(self, members)

    @property
    def fmt(self) -> FixedFormat:
        return self.registers.fmt

    def identity(self) -> dict[str, int]:
        """Values of the identity registers (see :meth:`SolverRegisters.identity`)."""
        return self.registers.identity()

    def elaborate(self, platform):
        m = Module()
        m.submodules.registers = registers = self.registers
        if self.bridge is None:
            connect(m, wiring.flipped(self.bus), registers.bus)
            return m
        m.submodules.bridge = bridge = self.bridge
        m.submodules.bus_stage = bus_stage = RegisterBusStage(regmap.ADDRESS_WIDTH)
        connect(m, bridge.bus, bus_stage.upstream)
        connect(m, bus_stage.downstream, registers.bus)
        if self.bus_kind == "bytes":
            connect(m, wiring.flipped(self.rx), bridge.rx)
            connect(m, bridge.tx, wiring.flipped(self.tx))
        elif self.bus_kind == "uart":
            m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx)]
        else:
            connect(m, wiring.flipped(self.axi), bridge.axi)
        return m



class RegisterBusStage(wiring.Component):
    """A register stage on the register bus, in both directions (a bus pipeline register).

    The transport bridges drive the bus from their buffers and state machines, and the register
    map answers from the cores' handshakes; without a stage the two form one combinational path
    from a bridge memory through the address decoder into a core. This stage cuts it: the
    access reaches ``downstream`` from flip-flops, and ``ack`` and ``r_data`` return to
    ``upstream`` from flip-flops. Both sides follow the rules of :mod:`tiersolve.designs.bus`.

    Parameters
    ----------
    address_width : int
        Width of the word address.
    data_width : int
        Width of a data word (default 32).

    Members
    -------
    upstream : In(RegisterBusSignature(address_width, data_width))
        Slave port, for the bridge.
    downstream : Out(RegisterBusSignature(address_width, data_width))
        Master port, for the register map.

    Timing
    ------
    Two cycles are added to every access: the access is registered onto ``downstream`` one
    cycle after the strobe rises upstream, and ``ack`` (with ``r_data``) reaches ``upstream``
    one cycle after the downstream slave acknowledges. A zero-wait-state register takes three
    cycles instead of one.
    """

    def __init__(self, address_width: int, data_width: int = 32):
        signature = RegisterBusSignature(address_width, data_width)
        super().__init__({"upstream": In(signature), "downstream": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        upstream, downstream = self.upstream, self.downstream
        answered = Signal()  # upstream's ack: the downstream access completed last cycle
        read_data = Signal.like(upstream.r_data)
        m.d.comb += [upstream.ack.eq(answered), upstream.r_data.eq(read_data)]
        m.d.sync += answered.eq(0)
        with m.If(downstream.w_stb | downstream.r_stb):
            with m.If(downstream.ack):
                m.d.sync += [downstream.w_stb.eq(0), downstream.r_stb.eq(0), answered.eq(1),
                             read_data.eq(downstream.r_data)]
        with m.Elif((upstream.w_stb | upstream.r_stb) & ~answered):
            m.d.sync += [downstream.addr.eq(upstream.addr),
                         downstream.w_data.eq(upstream.w_data),
                         downstream.w_stb.eq(upstream.w_stb),
                         downstream.r_stb.eq(upstream.r_stb)]
        return m


class StreamRegister(wiring.Component):
    """One register stage on a stream: ``valid``, ``payload`` and ``ready`` are all registered.

    The register map drives the cores' command and data streams from its address decoder;
    without a stage, the decoder, a core's ``ready`` and the core's job-start logic form one
    combinational path (the worst one of a whole board build). Here the sink side's ``ready``
    is "the stage is empty" and the source side's ``valid`` and ``payload`` come from
    flip-flops, so neither handshake passes through combinationally.

    Parameters
    ----------
    payload_shape : shape-like
        Shape of the stream's payload.

    Members
    -------
    i : In(stream.Signature(payload_shape))
        Sink.
    o : Out(stream.Signature(payload_shape))
        Source.

    Timing
    ------
    A payload taken in cycle ``t`` is offered on ``o`` from cycle ``t + 1``. The stage holds one
    payload and takes the next only once it is empty, so it passes at most one payload every
    two cycles (a register access takes at least three).
    """

    def __init__(self, payload_shape):
        super().__init__({"i": In(stream.Signature(payload_shape)),
                          "o": Out(stream.Signature(payload_shape))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid)
        with m.If(self.o.valid):
            with m.If(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
        with m.Elif(self.i.valid):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(self.i.payload)]
        return m


def _staged_stream(m, name: str, core_stream, reset):
    """A :class:`StreamRegister` in front of ``core_stream`` (a core's input stream), reset
    with the core; returns the stage's sink for the register map to drive."""
    stage = StreamRegister(core_stream.signature.members["payload"].shape)
    m.submodules[name] = ResetInserter({"sync": reset})(stage)
    connect(m, stage.o, core_stream)
    return stage.i


def _or_all(values):
    """The OR of ``values`` (Amaranth values), as a balanced tree."""
    values = [Value.cast(value) for value in values]
    while len(values) > 1:
        values = [values[i] | values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def _result_buffer(m, name: str, stream, width: int, depth: int, *, spram: bool = False):
    """Capture a core's output stream (always ready) into a ``depth``-word memory.

    Returns ``(reader, count, capturing)``: ``reader`` has ``addr``, ``read_enable`` and
    ``read_data`` (one cycle of latency) for the bus; ``count`` is the number of values
    written (values past ``depth`` are dropped: the register map reports ``count``, so the
    host sees it); ``capturing`` is high in a cycle where a value is written.

    Without ``spram`` the buffer is a memory with separate write and read ports, so a read
    never waits and ``capturing`` need not gate it (it is returned as a constant 0: the bus
    address does not meet the core's output handshake in one path). With ``spram`` it is a
    :class:`~tiersolve.designs.bridge.SinglePortRam` in SB_SPRAM256KA: the port's address is
    ``count`` unless the reader drives it in a cycle where ``capturing`` is low.
    """
    from .bridge import SinglePortRam

    count = Signal(range(depth + 1), name=f"{name}_count")
    writing = Signal(name=f"{name}_writing")
    m.d.comb += [stream.ready.eq(1), writing.eq(stream.valid & (count < depth))]
    with m.If(writing):
        m.d.sync += count.eq(count + 1)
    if spram:
        m.submodules[name] = ram = SinglePortRam(width, depth, spram=True)
        m.d.comb += [
            ram.addr.eq(count),
            ram.write_data.eq(stream.payload.value),
            ram.write_enable.eq(writing),
        ]
        return ram, count, writing
    m.submodules[name] = storage = memory.Memory(shape=width, depth=depth, init=[])
    write = storage.write_port()
    read = storage.read_port()
    m.d.comb += [
        write.addr.eq(count),
        write.data.eq(stream.payload.value),
        write.en.eq(writing),
        read.en.eq(0),  # the bus reader enables it
    ]
    reader = SimpleNamespace(addr=read.addr, read_enable=read.en, read_data=read.data)
    return reader, count, Const(0)


def _register_solver_unit():
    from tiersolve.gen.registry import Parameter, UnitSpec, flag, register

    register(UnitSpec(
        "solver",
        "complete solver design (cores + register map) behind a transport bridge",
        build=lambda fmt, inverse_format="", **params: SolverDesign(
            fmt=fmt, inverse_format=inverse_format or None, **params),
        parameters=(
            Parameter("bus", str, "axi-lite", "transport to the register map", BUSES),
            Parameter("n_max", int, 16, "largest n"),
            Parameter("k_max", int, 4, "largest k (right-hand sides)"),
            Parameter("lanes", int, 4, "multiply-accumulate lanes"),
            Parameter("cores", str, "cholesky", "cores to build, comma separated "
                      "(cholesky, or cholesky,updater)"),
            Parameter("updater_units", int, 1, "rotation units of the updater"),
            Parameter("updater_rotation", str, "multiplier", "rotation kind of the updater",
                      ("multiplier", "cordic")),
            Parameter("updater_fold", flag, False,
                      "the updater's FOLD command (rows in flight together; area)"),
            Parameter("inverse_format", str, "",
                      "format of the Cholesky pivot inverses, e.g. Q4.20 (default: --format)"),
            Parameter("guard_bits", int, 4, "extra integer bits of the Gram words"),
            Parameter("clock_frequency", int, 12_000_000, "board clock in Hz"),
            Parameter("baud_rate", int, 3_000_000, "UART baud rate (bus=uart)"),
        ),
    ))


_register_solver_unit()
