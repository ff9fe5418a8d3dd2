"""Framed register bridge: request frames from a byte stream become register-bus bursts.

:class:`FrameBridge` implements the device side of the wire protocol specified in
:mod:`tiersolve.host.protocol` (COBS framing, CRC-16, sequence numbers, ACK/reject/NACK,
replay of the last reply). :class:`UartFrameBridge` puts it behind the UART PHY of
:mod:`tiersolve.designs.uart`.

:class:`tiersolve.host.protocol.DeviceModel` is the byte-exact model of :class:`FrameBridge`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out, connect
from tiersolve.gen.checks import check_int, silent_if_refused
from tiersolve.host.protocol import (
    FLAG_FIXED_ADDRESS,
    OP_READ,
    OP_WRITE,
    REPLY_OVERHEAD,
    REQUEST_OVERHEAD,
    Status,
    cobs_max_encoded_length,
    nack_frame,
)

from .bus import RegisterBusSignature
from .uart import UartReceiver, UartTransmitter

__all__ = ["FrameBridge", "SinglePortRam", "UartFrameBridge", "crc16_next"]

_CRC_POLYNOMIAL = 0x1021
_CRC_INIT = 0xFFFF


def _crc16_step_reference(crc: int, byte: int) -> int:
    for bit in reversed(range(8)):
        feedback = (crc >> 15) ^ (byte >> bit) & 1
        crc = ((crc << 1) & 0xFFFF) ^ (_CRC_POLYNOMIAL if feedback else 0)
    return crc


def _crc16_taps() -> list[tuple[list[int], list[int]]]:
    """For each output bit, the register bits and byte bits whose XOR gives it (CRC is linear)."""
    taps = []
    for out_bit in range(16):
        crc_bits = [i for i in range(16) if _crc16_step_reference(1 << i, 0) >> out_bit & 1]
        byte_bits = [i for i in range(8) if _crc16_step_reference(0, 1 << i) >> out_bit & 1]
        taps.append((crc_bits, byte_bits))
    return taps


_CRC16_TAPS = _crc16_taps()


def crc16_next(crc: Value, byte: Value) -> Value:
    """CRC-16/CCITT register after shifting in ``byte`` (most significant bit first).

    Combinational (one XOR tree per bit); equal to ``binascii.crc_hqx(bytes([byte]), crc)``.
    """
    crc = Value.cast(crc)
    byte = Value.cast(byte)
    bits = []
    for crc_bits, byte_bits in _CRC16_TAPS:
        terms = [crc[i] for i in crc_bits] + [byte[i] for i in byte_bits]
        bits.append(Cat(*terms).xor())
    return Cat(*bits)


#: Geometry of the iCE40 UltraPlus single-port RAM block (SB_SPRAM256KA): words, data bits.
SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16


class SinglePortRam(wiring.Component):
    """A RAM with one port shared by reads and writes: block RAM, or iCE40 UltraPlus SPRAM.

    A buffer that never reads and writes in the same cycle needs only one address, and then
    fits the iCE40UP5K's four 256-kbit single-port RAMs (SB_SPRAM256KA, 16384 x 16 bits) that
    would otherwise lie unused, leaving the block RAMs to the cores.

    Parameters
    ----------
    width : int
        Data bits, 1..64. With ``spram`` each started 16 bits take one SB_SPRAM256KA.
    depth : int
        Words (at most 16384 with ``spram``).
    spram : bool
        Build SB_SPRAM256KA instances (when elaborated for a platform; the simulator and
        :func:`amaranth.back.verilog.convert` elaborate without one and get the behavioural
        memory instead). False: an :class:`amaranth.lib.memory.Memory` that synthesis maps to
        block RAM or logic.

    Members
    -------
    addr : In(range(depth))
        Word address of the read or the write.
    write_data : In(width)
        Data written.
    write_enable : In(1)
        Write ``write_data`` at ``addr`` at the end of this cycle.
    read_enable : In(1)
        Read ``addr``: the word is on ``read_data`` in the next cycle.
    read_data : Out(width)
        The word last read. It holds while neither enable is high; a write cycle spoils it
        (SB_SPRAM256KA drives undefined data: the behavioural memory shows the word that was
        overwritten), so read again after a write.

    Timing
    ------
    One cycle of read latency; one access (read or write) per cycle.
    """

    @silent_if_refused
    def __init__(self, width: int, depth: int, *, spram: bool = False):
        self._width = check_int("width", width, 1, 64)
        self._depth = check_int("depth", depth, 1)
        if not isinstance(spram, bool):
            raise TypeError(f"spram must be a bool, not {spram!r}")
        if spram and depth > SPRAM_DEPTH:
            raise ValueError(f"depth must be at most {SPRAM_DEPTH} with spram, not {depth}")
        self._spram = spram
        super().__init__({
            "addr": In(range(depth)),
            "write_data": In(width),
            "write_enable": In(1),
            "read_enable": In(1),
            "read_data": Out(width),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def spram_blocks(self) -> int:
        """SB_SPRAM256KA instances this RAM takes with ``spram=True``."""
        return -(-self._width // SPRAM_WIDTH)

    def elaborate(self, platform):
        m = Module()
        if self._spram and platform is not None:
            for block in range(self.spram_blocks):
                low = block * SPRAM_WIDTH
                high = min(low + SPRAM_WIDTH, self._width)
                data_in = Signal(SPRAM_WIDTH, name=f"spram{block}_data_in")
                data_out = Signal(SPRAM_WIDTH, name=f"spram{block}_data_out")
                m.d.comb += [data_in.eq(self.write_data[low:high]),
                             self.read_data[low:high].eq(data_out)]
                m.submodules[f"spram{block}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=self.addr, i_DATAIN=data_in, i_MASKWREN=0b1111,
                    i_WREN=self.write_enable,
                    i_CHIPSELECT=self.write_enable | self.read_enable,
                    i_CLOCK=ClockSignal(), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=data_out)
            return m
        m.submodules.storage = storage = Memory(shape=self._width, depth=self._depth, init=[])
        write = storage.write_port()
        read = storage.read_port()
        m.d.comb += [
            write.addr.eq(self.addr), write.data.eq(self.write_data),
            write.en.eq(self.write_enable),
            read.addr.eq(self.addr), read.en.eq(self.read_enable | self.write_enable),
            self.read_data.eq(read.data),
        ]
        return m


class FrameBridge(wiring.Component):
    """Device side of the framed register protocol: bytes in, bus bursts, bytes out.

    Receives COBS-framed requests on ``rx``, checks them (framing, CRC, replay, command, burst
    length, frame length, address range), carries out burst reads and writes of 32-bit words
    as master of ``bus``, and answers each non-empty frame on ``tx`` exactly as specified in
    :mod:`tiersolve.host.protocol`.

    Parameters
    ----------
    max_burst : int
        Longest burst in words, 1..65535. It sets the two buffers: the request buffer
        (``max_burst`` 32-bit words) and the reply buffer (COBS-encoded bytes of the longest
        reply, ``7 + 4*max_burst`` raw bytes plus one code byte per 254).
    address_width : int
        Width of the bus word address, 1..32.
    bus_timeout : int or None
        Cycles the bridge waits for ``bus.ack`` before it abandons a burst and answers
        ``BUS_TIMEOUT``; ``None`` waits for ever. Default 2**20 (87 ms at 12 MHz).
    spram : bool
        Keep the request buffer in iCE40 UltraPlus SPRAM (two SB_SPRAM256KA, see
        :class:`SinglePortRam`; ``max_burst`` at most 16384) instead of block RAM. The reply
        buffer stays in block RAM.

    Members
    -------
    rx : In(stream.Signature(8))
        Bytes from the host. ``ready`` is high except while a complete frame waits for the
        previous reply to finish, executes, or has its reply written (see Timing).
    tx : Out(stream.Signature(8))
        Bytes to the host: the COBS-encoded replies, each followed by ``0x00``.
    bus : Out(RegisterBusSignature(address_width))
        Register bus master (rules in :mod:`tiersolve.designs.bus`).
    executed, rejected, replayed, nacked : Out(1)
        One-cycle pulses when a frame is carried out (status OK), answered with another status
        (a reject or ``BUS_TIMEOUT``), answered by replaying the previous reply, or NACKed as
        damaged. Useful as link statistics.

    Timing
    ------
    The bridge takes one byte per cycle while receiving. After the delimiter it stops taking
    bytes until the frame's reply is in the reply buffer: it waits for the previous reply to
    leave ``tx``, then needs 2 cycles to decide, ``3 * count`` (write) or ``count`` (read) cycles
    plus bus wait states for the burst, and about ``10`` cycles (plus ``5 * count`` for a read,
    plus one per 254 reply bytes) to write the reply. The reply then streams out at one byte per
    cycle (as fast as ``tx`` takes it) while the next frame is being received. Transport
    NACKs and replays skip the burst and the writing. A stop-and-wait host never sends while
    the bridge is not ready, so behind a UART no byte is lost in normal operation.
    """

    @silent_if_refused
    def __init__(self, *, max_burst: int = 64, address_width: int = 16,
                 bus_timeout: int | None = 1 << 20, spram: bool = False):
        self._max_burst = check_int("max_burst", max_burst, 1, 0xFFFF)
        if not isinstance(spram, bool):
            raise TypeError(f"spram must be a bool, not {spram!r}")
        if spram and max_burst > SPRAM_DEPTH:
            raise ValueError(f"max_burst must be at most {SPRAM_DEPTH} with spram, "
                             f"not {max_burst}")
        self._spram = spram
        self._address_width = check_int("address_width", address_width, 1, 32)
        if bus_timeout is not None:
            check_int("bus_timeout", bus_timeout, 1)
        self._bus_timeout = bus_timeout
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "bus": Out(RegisterBusSignature(address_width)),
            "executed": Out(1),
            "rejected": Out(1),
            "replayed": Out(1),
            "nacked": Out(1),
        })

    @property
    def max_burst(self) -> int:
        return self._max_burst

    @property
    def address_width(self) -> int:
        return self._address_width

    @property
    def bus_timeout(self) -> int | None:
        return self._bus_timeout

    @property
    def reply_buffer_depth(self) -> int:
        """Bytes in the reply buffer: the longest COBS-encoded reply, without the delimiter."""
        return cobs_max_encoded_length(REPLY_OVERHEAD + 4 * self._max_burst)

    def elaborate(self, platform):
        m = Module()
        max_burst = self._max_burst
        reply_depth = self.reply_buffer_depth

        # Both buffers are single-port: the request buffer is written only while a frame is
        # received or a burst reads the bus, and read only while a burst writes the bus or the
        # reply is built; the reply buffer is written only while no reply is being sent.
        m.submodules.request_words = request_words = SinglePortRam(32, max_burst,
                                                                   spram=self._spram)
        m.submodules.reply_bytes = reply_bytes = SinglePortRam(8, reply_depth)

        # --- Received frame: COBS decoder state, parsed fields, CRC --------------------------
        block_left = Signal(8)        # data bytes still expected in the current COBS block
        block_was_full = Signal()     # the current block's code was 0xFF (no implied zero)
        frame_started = Signal()      # a non-delimiter byte arrived since the last delimiter
        cobs_broken = Signal()        # the delimiter cut a block short
        position_limit = REQUEST_OVERHEAD + 4 * max_burst + 1
        position = Signal(range(position_limit + 1))  # decoded bytes so far (saturating)
        crc = Signal(16, init=_CRC_INIT)
        tail = Signal(16)             # last two decoded bytes: the frame's CRC field
        seq = Signal(8)
        command = Signal(8)
        address = Signal(32)
        count = Signal(16)
        word_shift = Signal(24)       # bytes of the data word being assembled

        decoded_valid = Signal()
        decoded = Signal(8)
        receiving = Signal()
        take = Signal()
        m.d.comb += [
            self.rx.ready.eq(receiving),
            take.eq(self.rx.valid & receiving),
        ]
        byte = self.rx.payload
        frame_end = Signal()
        with m.If(take):
            with m.If(byte == 0):
                m.d.comb += frame_end.eq(1)
                m.d.sync += [
                    block_left.eq(0), block_was_full.eq(0), frame_started.eq(0),
                    cobs_broken.eq(block_left != 0),
                ]
            with m.Elif(block_left == 0):  # a code byte
                m.d.sync += [
                    block_left.eq(byte - 1), block_was_full.eq(byte == 0xFF),
                    frame_started.eq(1),
                ]
                with m.If(frame_started & ~block_was_full):
                    m.d.comb += [decoded_valid.eq(1), decoded.eq(0)]
            with m.Else():
                m.d.sync += block_left.eq(block_left - 1)
                m.d.comb += [decoded_valid.eq(1), decoded.eq(byte)]

        word_index = position[2:] - 2  # data word of the byte at `position` (from byte 8 on)
        word_write = Signal()         # a data word is complete: write it (next cycle)
        word_write_index = Signal.like(request_words.addr)
        word_write_data = Signal(32)
        m.d.sync += word_write.eq(0)
        with m.If(decoded_valid):
            m.d.sync += [
                crc.eq(crc16_next(crc, decoded)),
                tail.eq(Cat(decoded, tail[:8])),
                word_shift.eq(Cat(word_shift[8:], decoded)),
            ]
            with m.If(position != position_limit):
                m.d.sync += position.eq(position + 1)
            with m.Switch(position):
                with m.Case(0):
                    m.d.sync += seq.eq(decoded)
                with m.Case(1):
                    m.d.sync += command.eq(decoded)
                for index in range(4):
                    with m.Case(2 + index):
                        m.d.sync += address.word_select(index, 8).eq(decoded)
                for index in range(2):
                    with m.Case(6 + index):
                        m.d.sync += count.word_select(index, 8).eq(decoded)
            with m.If((position >= 8) & (position[:2] == 3) & (word_index < max_burst)):
                m.d.sync += [
                    word_write.eq(1),
                    word_write_index.eq(word_index),
                    word_write_data.eq(Cat(word_shift, decoded)),
                ]
        # A data word is written one cycle after its last byte, from registers: the decoder's
        # logic and the route to the request buffer's block RAM then each have a cycle (the
        # frame's CRC and delimiter follow the last data word, so the write is done long before
        # anything reads the buffer).
        with m.If(word_write):
            m.d.comb += [
                request_words.write_enable.eq(1),
                request_words.addr.eq(word_write_index),
                request_words.write_data.eq(word_write_data),
            ]

        # --- Checks on a received frame (evaluated from the registers in DISPATCH) -----------
        operation = command[:2]
        fixed_address = command[7]
        is_write = operation == OP_WRITE
        bad_framing = cobs_broken | (position < REQUEST_OVERHEAD)
        bad_crc = crc != 0
        reserved_bits = command & ~(FLAG_FIXED_ADDRESS | 0x03) & 0xFF
        bad_command = (reserved_bits != 0) | ((operation != OP_WRITE) & (operation != OP_READ))
        too_long = count > max_burst
        expected_length = REQUEST_OVERHEAD + Mux(is_write, count << 2, 0)
        bad_length = position != expected_length
        last_address = Mux(fixed_address, address,
                           address + Mux(count == 0, 0, count - 1))
        bad_address = (last_address >> self._address_width) != 0
        # The checks are registered (CHECK state) to keep them off DISPATCH's critical path.
        checks = {name: Signal(name=f"check_{name}") for name in (
            "bad_framing", "bad_crc", "replay", "bad_command", "too_long", "bad_length",
            "bad_address")}

        # --- Replay memory ---------------------------------------------------------------------
        replay_valid = Signal()
        replay_seq = Signal(8)
        replay_crc = Signal(16)
        reply_length = Signal(range(reply_depth + 1))  # encoded bytes in the reply buffer

        m.d.sync += [
            checks["bad_framing"].eq(bad_framing),
            checks["bad_crc"].eq(bad_crc),
            checks["replay"].eq(replay_valid & (seq == replay_seq) & (tail == replay_crc)),
            checks["bad_command"].eq(bad_command),
            checks["too_long"].eq(too_long),
            checks["bad_length"].eq(bad_length),
            checks["bad_address"].eq(bad_address),
        ]

        # --- Reply sender ------------------------------------------------------------------
        nack_statuses = (Status.NACK_FRAMING, Status.NACK_CRC)
        nack_bytes = [nack_frame(status)[:-1] for status in nack_statuses]
        sending = Signal()
        send_from_rom = Signal()
        send_nack = Signal(range(len(nack_statuses)))
        send_length = Signal(range(max(reply_depth, *map(len, nack_bytes)) + 1))
        send_index = Signal(range(max(reply_depth, *map(len, nack_bytes)) + 2))
        send_delimiter = Signal()
        rom_byte = Signal(8)
        send_start = Signal()
        start_from_rom = Signal()
        start_nack = Signal.like(send_nack)
        start_length = Signal.like(send_length)

        advance = ~self.tx.valid | self.tx.ready
        m.d.comb += [
            reply_bytes.addr.eq(send_index),
            reply_bytes.read_enable.eq(advance),
            self.tx.payload.eq(Mux(send_delimiter, 0,
                                   Mux(send_from_rom, rom_byte, reply_bytes.read_data))),
        ]
        with m.If(advance):
            with m.If(sending & (send_index <= send_length)):
                m.d.sync += [
                    self.tx.valid.eq(1),
                    send_delimiter.eq(send_index == send_length),
                    send_index.eq(send_index + 1),
                ]
                with m.Switch(Cat(send_index, send_nack)):
                    for which, frame in enumerate(nack_bytes):
                        for index, value in enumerate(frame):
                            with m.Case(index | (which << len(send_index))):
                                m.d.sync += rom_byte.eq(value)
            with m.Else():
                m.d.sync += self.tx.valid.eq(0)
                with m.If(sending):
                    m.d.sync += sending.eq(0)
        with m.If(send_start):
            m.d.sync += [
                sending.eq(1),
                send_index.eq(0),
                send_from_rom.eq(start_from_rom),
                send_nack.eq(start_nack),
                send_length.eq(start_length),
            ]

        # --- Reply writer: raw bytes in, COBS-encoded into the reply buffer ------------------
        code_position = Signal(range(reply_depth))
        write_position = Signal(range(reply_depth + 1))
        code = Signal(8, init=1)
        # The builder below loads raw reply bytes into this register (one pipeline stage keeps
        # the byte selection apart from the COBS and CRC logic); the writer drains it.
        feed_valid = Signal()
        feed_byte = Signal(8)
        feed_zero = Signal()          # feed_byte == 0, registered with it
        code_full = Signal()          # code == 0xFF, registered with it

        def feed(value):
            """Load a raw reply byte into the feed register."""
            return [feed_valid.eq(1), feed_byte.eq(value), feed_zero.eq(value == 0)]

        # every word read from the request buffer goes into this register before any logic:
        # a block RAM's output is slow (about 5.8 ns on ECP5 speed 6) and the buffer may sit
        # far from its users; the register holds the word while the buffer is not accessed
        build_data = Signal(32)
        m.d.sync += build_data.eq(request_words.read_data)
        # The last code byte is written, and the reply's sending starts, in the cycle after the
        # builder's last state (finish_pending, a register), so that no state decode reaches
        # the buffer's address: the writer acts on registers only (feed_valid and code_full are
        # low outside the builder's states, which are left only with both low).
        finish_pending = Signal()
        m.d.sync += finish_pending.eq(0)
        writer_ready = ~code_full
        feed_free = ~feed_valid | writer_ready  # the builder may load a byte this cycle
        reply_crc = Signal(16)
        with m.If(~writer_ready):  # a block of 254 bytes is full: write its code byte
            m.d.comb += [
                reply_bytes.write_enable.eq(1),
                reply_bytes.addr.eq(code_position),
                reply_bytes.write_data.eq(0xFF),
            ]
            m.d.sync += [
                code_position.eq(write_position),
                write_position.eq(write_position + 1),
                code.eq(1), code_full.eq(0),
            ]
        with m.Elif(feed_valid):
            m.d.sync += [feed_valid.eq(0), reply_crc.eq(crc16_next(reply_crc, feed_byte))]
            with m.If(feed_zero):
                m.d.comb += [
                    reply_bytes.write_enable.eq(1),
                    reply_bytes.addr.eq(code_position),
                    reply_bytes.write_data.eq(code),
                ]
                m.d.sync += [
                    code_position.eq(write_position),
                    write_position.eq(write_position + 1),
                    code.eq(1), code_full.eq(0),
                ]
            with m.Else():
                m.d.comb += [
                    reply_bytes.write_enable.eq(1),
                    reply_bytes.addr.eq(write_position),
                    reply_bytes.write_data.eq(feed_byte),
                ]
                m.d.sync += [write_position.eq(write_position + 1), code.eq(code + 1),
                             code_full.eq(code == 0xFE)]
        with m.Elif(finish_pending):
            m.d.comb += [
                reply_bytes.write_enable.eq(1),
                reply_bytes.addr.eq(code_position),
                reply_bytes.write_data.eq(code),
                send_start.eq(1),  # the sender reads the buffer from the next cycle on
                start_length.eq(write_position),
            ]

        # --- Controller --------------------------------------------------------------------
        status = Signal(8)
        done = Signal(16)                      # words transferred
        bus_address = Signal(self._address_width)
        timeout_width = 1 if self._bus_timeout is None else self._bus_timeout
        wait_cycles = Signal(range(timeout_width))
        build_index = Signal(3)                # header / CRC byte, or byte lane of a data word
        build_word = Signal(16)
        words_left = Signal(16)                # bus accesses still to do in the burst
        last_word = Signal(16)                 # index of the last read word in the reply

        def reset_receiver():
            return [position.eq(0), crc.eq(_CRC_INIT)]

        def start_reply_writer():
            return [
                code_position.eq(0), write_position.eq(1), code.eq(1), code_full.eq(0),
                reply_crc.eq(_CRC_INIT), build_index.eq(0), build_word.eq(0), feed_valid.eq(0),
            ]

        bus_timed_out = Signal()
        if self._bus_timeout is not None:
            m.d.comb += bus_timed_out.eq(~self.bus.ack & (wait_cycles == self._bus_timeout - 1))

        m.d.comb += self.bus.addr.eq(bus_address)

        with m.FSM():
            with m.State("RECEIVE"):
                m.d.comb += receiving.eq(1)
                with m.If(frame_end & frame_started):
                    m.next = "CHECK"

            with m.State("CHECK"):  # the registered checks become valid
                m.next = "DISPATCH"

            with m.State("DISPATCH"):
                with m.If(~sending):
                    with m.If(checks["bad_framing"] | checks["bad_crc"]):
                        m.d.comb += [
                            send_start.eq(1),
                            start_from_rom.eq(1),
                            start_nack.eq(Mux(checks["bad_framing"], 0, 1)),
                            start_length.eq(Mux(checks["bad_framing"], len(nack_bytes[0]),
                                                len(nack_bytes[1]))),
                            self.nacked.eq(1),
                        ]
                        m.d.sync += reset_receiver()
                        m.next = "RECEIVE"
                    with m.Elif(checks["replay"]):
                        m.d.comb += [
                            send_start.eq(1),
                            start_length.eq(reply_length),
                            self.replayed.eq(1),
                        ]
                        m.d.sync += reset_receiver()
                        m.next = "RECEIVE"
                    with m.Else():
                        m.d.sync += [
                            done.eq(0),
                            words_left.eq(count),
                            bus_address.eq(address),
                            wait_cycles.eq(0),
                            replay_seq.eq(seq),
                            replay_crc.eq(tail),
                            *start_reply_writer(),
                        ]
                        with m.If(checks["bad_command"]):
                            m.d.sync += status.eq(Status.BAD_COMMAND)
                            m.next = "BUILD_HEADER"
                        with m.Elif(checks["too_long"]):
                            m.d.sync += status.eq(Status.BURST_TOO_LONG)
                            m.next = "BUILD_HEADER"
                        with m.Elif(checks["bad_length"]):
                            m.d.sync += status.eq(Status.BAD_LENGTH)
                            m.next = "BUILD_HEADER"
                        with m.Elif(checks["bad_address"]):
                            m.d.sync += status.eq(Status.BAD_ADDRESS)
                            m.next = "BUILD_HEADER"
                        with m.Else():
                            m.d.sync += status.eq(Status.OK)
                            with m.If(count == 0):
                                m.next = "BUILD_HEADER"
                            with m.Elif(is_write):
                                m.next = "WRITE_FETCH"
                            with m.Else():
                                m.next = "READ"

            def finish_access(next_state):
                m.d.sync += [done.eq(done + 1), wait_cycles.eq(0)]
                with m.If(~fixed_address):
                    m.d.sync += bus_address.eq(bus_address + 1)
                m.d.sync += words_left.eq(words_left - 1)
                with m.If(words_left == 1):
                    m.next = "BUILD_HEADER"
                with m.Else():
                    m.next = next_state

            def count_wait():
                if self._bus_timeout is not None:
                    m.d.sync += wait_cycles.eq(wait_cycles + 1)
                with m.If(bus_timed_out):
                    m.d.sync += status.eq(Status.BUS_TIMEOUT)
                    m.next = "BUILD_HEADER"

            with m.State("WRITE_FETCH"):
                m.d.comb += [request_words.addr.eq(done), request_words.read_enable.eq(1)]
                m.next = "WRITE_LATCH"

            with m.State("WRITE_LATCH"):  # the word reaches build_data
                m.next = "WRITE"

            with m.State("WRITE"):
                m.d.comb += [self.bus.w_stb.eq(1), self.bus.w_data.eq(build_data)]
                with m.If(self.bus.ack):
                    finish_access("WRITE_FETCH")
                with m.Else():
                    count_wait()

            with m.State("READ"):
                m.d.comb += self.bus.r_stb.eq(1)
                with m.If(self.bus.ack):
                    m.d.comb += [
                        request_words.write_enable.eq(1),
                        request_words.addr.eq(done),
                        request_words.write_data.eq(self.bus.r_data),
                    ]
                    finish_access("READ")
                with m.Else():
                    count_wait()

            with m.State("BUILD_HEADER"):
                header = Cat(seq, status, command, done)
                m.d.sync += last_word.eq(done - 1)
                with m.If(feed_free):
                    m.d.sync += feed(header.word_select(build_index, 8))
                    m.d.sync += build_index.eq(build_index + 1)
                    with m.If(build_index == 4):
                        m.d.sync += build_index.eq(0)
                        with m.If((operation == OP_READ) & (done != 0)):
                            m.next = "BUILD_FETCH"
                        with m.Else():
                            m.next = "BUILD_CRC"

            with m.State("BUILD_FETCH"):
                m.d.comb += [
                    request_words.addr.eq(build_word),
                    request_words.read_enable.eq(1),
                ]
                m.next = "BUILD_LATCH"

            with m.State("BUILD_LATCH"):  # the word reaches build_data
                m.next = "BUILD_DATA"

            with m.State("BUILD_DATA"):
                with m.If(feed_free):
                    m.d.sync += feed(build_data.word_select(build_index[:2], 8))
                    m.d.sync += build_index.eq(build_index + 1)
                    with m.If(build_index == 3):
                        m.d.sync += [build_index.eq(0), build_word.eq(build_word + 1)]
                        with m.If(build_word == last_word):
                            m.next = "BUILD_CRC"
                        with m.Else():
                            m.next = "BUILD_FETCH"

            with m.State("BUILD_CRC"):
                crc_saved = Signal(8)  # low CRC byte, kept while the high byte changes reply_crc
                # The CRC is final once the writer has taken the last data byte.
                with m.If((build_index == 0) & ~feed_valid):
                    m.d.sync += [
                        *feed(reply_crc[8:]), build_index.eq(1), crc_saved.eq(reply_crc[:8]),
                    ]
                with m.Elif((build_index == 1) & feed_free):
                    m.d.sync += [*feed(crc_saved), build_index.eq(2)]
                with m.Elif((build_index == 2) & ~feed_valid & writer_ready):
                    m.d.sync += finish_pending.eq(1)  # the last code byte, then the send
                    with m.If(status == Status.OK):
                        m.d.comb += self.executed.eq(1)
                    with m.Else():
                        m.d.comb += self.rejected.eq(1)
                    m.d.sync += [
                        reply_length.eq(write_position),
                        replay_valid.eq(1),
                        *reset_receiver(),
                    ]
                    m.next = "RECEIVE"
        return m


class UartFrameBridge(wiring.Component):
    """:class:`FrameBridge` behind a UART: serial pins in and out, register bus master.

    Parameters
    ----------
    divisor : int
        UART bit period in clock cycles (see :func:`tiersolve.designs.uart.baud_divisor`).
    max_burst, address_width, bus_timeout, spram
        As for :class:`FrameBridge`.

    Members
    -------
    rx : In(1, init=1)
        Serial input from the host.
    tx : Out(1, init=1)
        Serial output to the host.
    bus : Out(RegisterBusSignature(address_width))
        Register bus master.
    framing_error, overrun : Out(1)
        Pulses from the UART receiver (a byte rejected or lost).
    executed, rejected, replayed, nacked : Out(1)
        Pulses from the bridge.
    """

    @silent_if_refused
    def __init__(self, divisor: int, *, max_burst: int = 64, address_width: int = 16,
                 bus_timeout: int | None = 1 << 20, spram: bool = False):
        self._bridge = FrameBridge(max_burst=max_burst, address_width=address_width,
                                   bus_timeout=bus_timeout, spram=spram)
        self._receiver = UartReceiver(divisor)
        self._transmitter = UartTransmitter(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "bus": Out(RegisterBusSignature(address_width)),
            "framing_error": Out(1),
            "overrun": Out(1),
            "executed": Out(1),
            "rejected": Out(1),
            "replayed": Out(1),
            "nacked": Out(1),
        })

    @property
    def bridge(self) -> FrameBridge:
        return self._bridge

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = self._receiver
        m.submodules.bridge = bridge = self._bridge
        m.submodules.transmitter = transmitter = self._transmitter
        connect(m, receiver.data, bridge.rx)
        connect(m, bridge.tx, transmitter.data)
        connect(m, wiring.flipped(self.bus), bridge.bus)
        m.d.comb += [
            receiver.rx.eq(self.rx),
            self.tx.eq(transmitter.tx),
            self.framing_error.eq(receiver.framing_error),
            self.overrun.eq(receiver.overrun),
            self.executed.eq(bridge.executed),
            self.rejected.eq(bridge.rejected),
            self.replayed.eq(bridge.replayed),
            self.nacked.eq(bridge.nacked),
        ]
        return m
