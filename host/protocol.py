"""Wire protocol of the framed register bridge (UART link): frames, CRC, sequence numbers, replay.

This module is the single definition of the protocol. The gateware
(:class:`tiersolve.designs.bridge.FrameBridge`) imports its constants, the host encodes and
decodes frames with it, and :class:`DeviceModel` is a byte-exact Python model of the bridge
that the gateware is tested against. It imports only the standard library (no NumPy, no
Amaranth).

Overview
--------
The host is the only initiator. It sends one *request* frame and waits for the device's
*reply* frame (stop and wait). A request carries a burst read or a burst write of 32-bit words
on the device's internal register bus. The device answers every non-empty frame it receives:
an ACK (status ``OK``) with the read data, a *reject* (a well-formed frame it will not carry
out, with a status saying why), or a transport NACK (the frame was damaged).

Framing
-------
Every frame travels COBS-encoded (Consistent Overhead Byte Stuffing) and is terminated by one
``0x00`` byte. COBS removes every zero from the frame, so ``0x00`` never occurs inside a frame
and a receiver resynchronises at the next ``0x00`` whatever came before it. The encoding
splits the raw frame at its zero bytes into blocks; each block is sent as one code byte ``c``
(1..255) followed by ``c - 1`` non-zero bytes. A code ``c < 0xFF`` means "a zero byte
follows, unless this is the last block"; ``c = 0xFF`` means "254 non-zero bytes and no zero".
The encoder closes a block as soon as it holds 254 bytes, so a frame that ends with a run of
254 non-zero bytes ends with the block ``0x01``. Overhead: one byte per 254 plus the
delimiter.

An empty frame (two delimiters in a row, or a delimiter at the start) is ignored and gets no
reply: the host sends an extra ``0x00`` before a retry to flush anything half-received.

Request (raw bytes, before COBS)
--------------------------------
=========  =========  ==========================================================================
offset     size       field
=========  =========  ==========================================================================
0          1          ``seq``: sequence number, 0..255. The host increments it (mod 256) for
                      every new request and keeps it for a retry of the same request.
1          1          ``command``: bits 1..0 operation, ``1`` = write (:data:`OP_WRITE`),
                      ``2`` = read (:data:`OP_READ`); bit 7 :data:`FLAG_FIXED_ADDRESS`: every
                      word of the burst goes to the same address (a FIFO or data port) instead
                      of consecutive addresses. Bits 6..2 are reserved and must be 0.
2          4          ``address``: word address on the register bus, little-endian.
6          2          ``count``: number of 32-bit words, little-endian, 0..``max_burst``. A
                      count of 0 touches nothing and is answered with an ACK (a no-op / ping).
8          4*count    write data (writes only): ``count`` words, each little-endian.
8 + 4*n    2          CRC-16 of bytes ``0 .. 8 + 4*n - 1``, big-endian (``n`` = ``count`` for a
                      write, 0 for a read).
=========  =========  ==========================================================================

Reply (raw bytes, before COBS)
------------------------------
=========  =========  ==========================================================================
offset     size       field
=========  =========  ==========================================================================
0          1          ``seq`` of the request (0 in a transport NACK).
1          1          ``status`` (:class:`Status`).
2          1          ``command`` of the request (0 in a transport NACK).
3          2          ``count``: words actually transferred, little-endian (0 unless ``OK`` or
                      ``BUS_TIMEOUT``).
5          4*count    read data (reads only): ``count`` words, each little-endian.
5 + 4*n    2          CRC-16 of bytes ``0 .. 5 + 4*n - 1``, big-endian.
=========  =========  ==========================================================================

A frame of ``count`` words costs the raw header and CRC (10 bytes for a request, 7 for a
reply) plus at most ``ceil(raw / 254)`` COBS code bytes plus the delimiter. A 64-word write
puts 256 payload bytes in at most 269 wire bytes (efficiency >= 0.952; its read reply 266,
>= 0.962); a 128-word write, 512 in at most 526 (>= 0.973).

CRC
---
CRC-16/CCITT-FALSE: polynomial ``0x1021``, initial value ``0xFFFF``, no reflection, no final
XOR; this is :func:`binascii.crc_hqx` with ``value=0xFFFF``. Because the CRC is appended
most-significant byte first and has no final XOR, the CRC of a whole frame (its CRC included)
is 0 when the frame is intact; the gateware checks exactly that.

What the device does with a frame
---------------------------------
Checked in this order when the delimiter arrives:

1. Empty frame: ignored, no reply.
2. COBS error (the delimiter cut a block short) or fewer than 10 decoded bytes: transport
   NACK ``NACK_FRAMING``.
3. CRC of the decoded frame is not 0: transport NACK ``NACK_CRC``.
4. ``seq`` and the CRC equal those of the last request it carried out (or rejected): the
   device re-sends that request's reply byte for byte and does **not** execute it again
   (a host retry after a lost reply). Transport NACKs do not change this memory.
5. Reserved command bits set or an operation other than read/write: reject ``BAD_COMMAND``.
6. ``count > max_burst``: reject ``BURST_TOO_LONG``.
7. Decoded length is not ``10 + 4*count`` (write) or ``10`` (read): reject ``BAD_LENGTH``.
8. The burst leaves the bus: the last address touched (``address + max(count, 1) - 1``, or
   ``address`` with :data:`FLAG_FIXED_ADDRESS`) is not below ``2**address_width``: reject
   ``BAD_ADDRESS``.
9. Otherwise the burst is executed word by word in address order. If the bus does not
   answer one access within the bridge's timeout, the burst stops there with status
   ``BUS_TIMEOUT`` and ``count`` says how many words were transferred (and, for a read,
   their data follow).

Transport NACKs are constant frames (``seq`` 0) and carry no information about the request:
the host answers any transport NACK by re-sending its outstanding request unchanged (same
``seq``), which is always safe thanks to rule 4. Replies whose ``seq`` is not the outstanding
one are stale (for example the replayed answer to a retry that crossed a late reply) and are
discarded. A reject means a host or configuration error and is not retried.

The device handles one frame at a time. While it executes a frame and builds the reply it
does not accept bytes (on a UART they are lost; the frame they belonged to will be NACKed).
It receives the next frame while the reply is still being transmitted.

A session starts with a no-op (a read of 0 words): should the device's replay memory hold a
frame identical to it, the replayed reply is harmless, and afterwards the device's memory
holds the no-op's ``seq``, so the host's next request (``seq + 1``) is never mistaken for a
retry.
"""

from __future__ import annotations

import binascii
import enum
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "OP_WRITE",
    "OP_READ",
    "FLAG_FIXED_ADDRESS",
    "REQUEST_OVERHEAD",
    "REPLY_OVERHEAD",
    "Status",
    "FrameError",
    "CobsError",
    "CrcError",
    "FormatError",
    "crc16",
    "cobs_encode",
    "cobs_decode",
    "cobs_max_encoded_length",
    "Request",
    "Reply",
    "FrameSplitter",
    "nack_frame",
    "DeviceModel",
    "LinkTimeout",
    "RequestRejected",
    "RegisterLink",
]

#: Operation field of the command byte: burst write.
OP_WRITE = 0x01
#: Operation field of the command byte: burst read.
OP_READ = 0x02
#: Command flag: all words of the burst use the same address (no increment).
FLAG_FIXED_ADDRESS = 0x80
_OP_MASK = 0x03
_RESERVED_MASK = 0x7C

#: Raw bytes of a request besides its data: seq, command, address (4), count (2), CRC (2).
REQUEST_OVERHEAD = 10
#: Raw bytes of a reply besides its data: seq, status, command, count (2), CRC (2).
REPLY_OVERHEAD = 7

_CRC_INIT = 0xFFFF
_COBS_BLOCK = 254  # non-zero bytes in a full COBS block


class Status(enum.IntEnum):
    """Reply status byte.

    Values below 0x80 answer a frame that arrived intact (and are remembered for replay);
    values from 0x80 are transport NACKs for damaged frames (retry the request).
    """

    OK = 0x00
    BAD_COMMAND = 0x01
    BURST_TOO_LONG = 0x02
    BAD_LENGTH = 0x03
    BAD_ADDRESS = 0x04
    BUS_TIMEOUT = 0x05
    NACK_CRC = 0x80
    NACK_FRAMING = 0x81

    @property
    def is_transport_nack(self) -> bool:
        """True for a NACK of a damaged frame (the host should retry)."""
        return self >= 0x80


class FrameError(ValueError):
    """A received frame could not be decoded."""


class CobsError(FrameError):
    """The COBS encoding of a frame is broken (a block cut short or a zero inside)."""


class CrcError(FrameError):
    """The CRC of a frame does not match its contents."""


class FormatError(FrameError):
    """A frame decoded and passed its CRC but its fields are inconsistent."""


def crc16(data: bytes, value: int = _CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF, no reflection, no XOR out)."""
    return binascii.crc_hqx(bytes(data), value)


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (without the delimiter). The result contains no zero byte.

    Blocks are closed as soon as they hold 254 non-zero bytes, which is what the gateware
    encoder does, so the two produce the same bytes.
    """
    out = bytearray(b"\x00")
    code_position = 0
    code = 1
    for byte in bytes(data):
        if byte == 0:
            out[code_position] = code
            code_position = len(out)
            out.append(0)
            code = 1
        else:
            out.append(byte)
            code += 1
            if code == 0xFF:
                out[code_position] = code
                code_position = len(out)
                out.append(0)
                code = 1
    out[code_position] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Decode one COBS-encoded frame (without its delimiter).

    Raises
    ------
    CobsError
        If ``data`` contains a zero byte or its last block is cut short.
    """
    data = bytes(data)
    out = bytearray()
    index = 0
    while index < len(data):
        code = data[index]
        if code == 0:
            raise CobsError(f"zero byte at offset {index} inside a COBS frame")
        end = index + code
        if end > len(data):
            raise CobsError(f"COBS block at offset {index} needs {code - 1} bytes, "
                            f"only {len(data) - index - 1} left")
        block = data[index + 1:end]
        if 0 in block:
            raise CobsError(f"zero byte inside the COBS block at offset {index}")
        out += block
        index = end
        if code != 0xFF and index < len(data):
            out.append(0)
    return bytes(out)


def cobs_max_encoded_length(raw_length: int) -> int:
    """Upper bound of ``len(cobs_encode(x))`` for ``len(x) == raw_length``."""
    return raw_length + raw_length // _COBS_BLOCK + 1


def _with_crc(raw: bytes) -> bytes:
    return raw + crc16(raw).to_bytes(2, "big")


def _check_words(words: Iterable[int]) -> tuple[int, ...]:
    words = tuple(words)
    for index, word in enumerate(words):
        if isinstance(word, bool) or not isinstance(word, int) and not hasattr(word, "__index__"):
            raise TypeError(f"data word {index} must be an integer, not {word!r}")
        if not 0 <= int(word) < 1 << 32:
            raise ValueError(f"data word {index} = {int(word)} is not an unsigned 32-bit value")
    return tuple(int(word) for word in words)


def _words_to_bytes(words: Sequence[int]) -> bytes:
    return b"".join(word.to_bytes(4, "little") for word in words)


def _bytes_to_words(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4))


def _check_crc(raw: bytes, minimum: int, what: str) -> None:
    if len(raw) < minimum:
        raise FormatError(f"{what} of {len(raw)} bytes is shorter than the {minimum}-byte "
                          "minimum")
    if crc16(raw) != 0:
        expected = crc16(raw[:-2])
        raise CrcError(f"{what} CRC is {int.from_bytes(raw[-2:], 'big'):#06x}, "
                       f"contents give {expected:#06x}")


@dataclass(frozen=True)
class Request:
    """One request frame.

    Parameters
    ----------
    seq : int
        Sequence number, 0..255.
    operation : int
        :data:`OP_WRITE` or :data:`OP_READ`.
    address : int
        Word address of the first word, 0..2**32-1.
    count : int
        Number of words, 0..65535 (the device accepts at most its ``max_burst``).
    data : tuple of int
        Write data (``count`` unsigned 32-bit words); empty for a read.
    fixed_address : bool
        Send every word to ``address`` (a data port) instead of consecutive addresses.
    """

    seq: int
    operation: int
    address: int
    count: int
    data: tuple[int, ...] = ()
    fixed_address: bool = False

    def __post_init__(self):
        for name, limit in (("seq", 1 << 8), ("address", 1 << 32), ("count", 1 << 16)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if not 0 <= value < limit:
                raise ValueError(f"{name} = {value} is outside 0..{limit - 1}")
        if self.operation not in (OP_WRITE, OP_READ):
            raise ValueError(f"operation must be OP_WRITE (1) or OP_READ (2), not "
                             f"{self.operation!r}")
        object.__setattr__(self, "data", _check_words(self.data))
        if self.operation == OP_WRITE and len(self.data) != self.count:
            raise ValueError(f"a write of count={self.count} needs {self.count} data words, "
                             f"got {len(self.data)}")
        if self.operation == OP_READ and self.data:
            raise ValueError("a read request carries no data")

    @classmethod
    def write(cls, seq: int, address: int, words: Iterable[int], *,
              fixed_address: bool = False) -> Request:
        """A burst write of ``words`` starting at ``address``."""
        words = _check_words(words)
        return cls(seq, OP_WRITE, address, len(words), words, fixed_address)

    @classmethod
    def read(cls, seq: int, address: int, count: int, *, fixed_address: bool = False) -> Request:
        """A burst read of ``count`` words starting at ``address``."""
        return cls(seq, OP_READ, address, count, (), fixed_address)

    @property
    def command(self) -> int:
        """The command byte."""
        return self.operation | (FLAG_FIXED_ADDRESS if self.fixed_address else 0)

    def raw(self) -> bytes:
        """The raw frame (CRC included, before COBS)."""
        header = bytes([self.seq, self.command]) + self.address.to_bytes(4, "little") \
            + self.count.to_bytes(2, "little")
        return _with_crc(header + _words_to_bytes(self.data))

    def encode(self) -> bytes:
        """The frame as sent on the wire: COBS-encoded and followed by the ``0x00`` delimiter."""
        return cobs_encode(self.raw()) + b"\x00"

    @classmethod
    def decode_raw(cls, raw: bytes) -> Request:
        """Parse a raw (COBS-decoded) request; raises :class:`FrameError` subclasses."""
        raw = bytes(raw)
        _check_crc(raw, REQUEST_OVERHEAD, "request")
        seq, command = raw[0], raw[1]
        operation = command & _OP_MASK
        if command & _RESERVED_MASK or operation not in (OP_WRITE, OP_READ):
            raise FormatError(f"command byte {command:#04x} is not a read or a write")
        address = int.from_bytes(raw[2:6], "little")
        count = int.from_bytes(raw[6:8], "little")
        data_length = 4 * count if operation == OP_WRITE else 0
        if len(raw) != REQUEST_OVERHEAD + data_length:
            raise FormatError(f"request of {len(raw)} bytes, count={count} needs "
                              f"{REQUEST_OVERHEAD + data_length}")
        return cls(seq, operation, address, count, _bytes_to_words(raw[8:8 + data_length]),
                   bool(command & FLAG_FIXED_ADDRESS))


@dataclass(frozen=True)
class Reply:
    """One reply frame.

    Parameters
    ----------
    seq : int
        Sequence number of the request answered (0 in a transport NACK).
    status : Status
    command : int
        Command byte of the request answered (0 in a transport NACK).
    count : int
        Words transferred.
    data : tuple of int
        Read data (``count`` words) for a read; empty otherwise.
    """

    seq: int
    status: Status
    command: int
    count: int
    data: tuple[int, ...] = ()

    def raw(self) -> bytes:
        """The raw frame (CRC included, before COBS)."""
        header = bytes([self.seq, int(self.status), self.command]) \
            + self.count.to_bytes(2, "little")
        return _with_crc(header + _words_to_bytes(self.data))

    def encode(self) -> bytes:
        """The frame as sent on the wire: COBS-encoded and followed by the ``0x00`` delimiter."""
        return cobs_encode(self.raw()) + b"\x00"

    @classmethod
    def decode_raw(cls, raw: bytes) -> Reply:
        """Parse a raw (COBS-decoded) reply; raises :class:`FrameError` subclasses."""
        raw = bytes(raw)
        _check_crc(raw, REPLY_OVERHEAD, "reply")
        seq, status_byte, command = raw[0], raw[1], raw[2]
        try:
            status = Status(status_byte)
        except ValueError:
            raise FormatError(f"unknown status byte {status_byte:#04x}") from None
        count = int.from_bytes(raw[3:5], "little")
        data = raw[5:-2]
        is_read = command & _OP_MASK == OP_READ
        expected = 4 * count if is_read and status in (Status.OK, Status.BUS_TIMEOUT) else 0
        if len(data) != expected:
            raise FormatError(f"reply with count={count} carries {len(data)} data bytes, "
                              f"expected {expected}")
        return cls(seq, status, command, count, _bytes_to_words(data))

    @classmethod
    def decode(cls, frame: bytes) -> Reply:
        """Parse one COBS-encoded reply (without its delimiter)."""
        return cls.decode_raw(cobs_decode(frame))

    def answers(self, request: Request) -> bool:
        """True if this is an intact reply (ACK or reject) to ``request``."""
        return (not self.status.is_transport_nack and self.seq == request.seq
                and self.command == request.command)


def nack_frame(status: Status) -> bytes:
    """The constant wire bytes (delimiter included) of a transport NACK."""
    status = Status(status)
    if not status.is_transport_nack:
        raise ValueError(f"{status!r} is not a transport NACK")
    return Reply(0, status, 0, 0).encode()


class FrameSplitter:
    """Cut a byte stream into frames at ``0x00`` delimiters, resynchronising after garbage.

    Feed it bytes as they arrive; it returns the complete frames (COBS-encoded, without the
    delimiter). Empty frames are dropped. Bytes after the last delimiter are kept for the next
    call. A frame that grows beyond ``max_length`` bytes is discarded up to the next delimiter.
    """

    def __init__(self, max_length: int = 1 << 20):
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise TypeError(f"max_length must be an integer, not {max_length!r}")
        if max_length < 1:
            raise ValueError(f"max_length must be positive, not {max_length}")
        self.max_length = max_length
        self._pending = bytearray()
        self._discarding = False
        #: Frames dropped for exceeding ``max_length``.
        self.overlong_frames = 0

    def feed(self, data: bytes) -> list[bytes]:
        frames = []
        for chunk_index, chunk in enumerate(bytes(data).split(b"\x00")):
            if chunk_index > 0:  # a delimiter preceded this chunk: close the pending frame
                if self._pending and not self._discarding:
                    frames.append(bytes(self._pending))
                self._pending.clear()
                self._discarding = False
            if self._discarding:
                continue
            self._pending += chunk
            if len(self._pending) > self.max_length:
                self._pending.clear()
                self._discarding = True
                self.overlong_frames += 1
        return frames

    def reset(self) -> None:
        """Forget any partial frame."""
        self._pending.clear()
        self._discarding = False


class DeviceModel:
    """Byte-exact model of :class:`tiersolve.designs.bridge.FrameBridge` and its bus.

    Feed it the bytes the host sends (:meth:`feed`); it returns the bytes the device sends
    back, following the rules in this module's docstring. The register bus is two callables.

    Parameters
    ----------
    read_word : callable(address) -> int
        Bus read. Raise :class:`TimeoutError` to model a slave that does not answer.
    write_word : callable(address, value)
        Bus write. Raise :class:`TimeoutError` to model a slave that does not answer.
    max_burst : int
        Longest burst the bridge accepts, in words.
    address_width : int
        Width of the bus address, 1..32.
    """

    def __init__(self, read_word: Callable[[int], int], write_word: Callable[[int, int], None],
                 *, max_burst: int = 64, address_width: int = 16):
        for name, value, low, high in (("max_burst", max_burst, 1, 0xFFFF),
                                       ("address_width", address_width, 1, 32)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{name} = {value} is outside {low}..{high}")
        self.read_word = read_word
        self.write_word = write_word
        self.max_burst = max_burst
        self.address_width = address_width
        self._splitter = FrameSplitter()
        self._last: tuple[int, bytes] | None = None  # (seq, CRC bytes) of the last frame done
        self._last_reply = b""
        #: Counts of what happened, by kind: executed, rejected, replayed, nacked.
        self.events = {"executed": 0, "rejected": 0, "replayed": 0, "nacked": 0}

    def feed(self, data: bytes) -> bytes:
        """Process bytes from the host; return the bytes the device answers with."""
        return b"".join(self._frame(frame) for frame in self._splitter.feed(data))

    def _frame(self, frame: bytes) -> bytes:
        try:
            raw = cobs_decode(frame)
        except CobsError:
            raw = None
        if raw is None or len(raw) < REQUEST_OVERHEAD:
            self.events["nacked"] += 1
            return nack_frame(Status.NACK_FRAMING)
        if crc16(raw) != 0:
            self.events["nacked"] += 1
            return nack_frame(Status.NACK_CRC)
        key = (raw[0], raw[-2:])
        if key == self._last:
            self.events["replayed"] += 1
            return self._last_reply
        reply = self._execute(raw)
        self._last = key
        self._last_reply = reply.encode()
        self.events["executed" if reply.status == Status.OK else "rejected"] += 1
        return self._last_reply

    def _execute(self, raw: bytes) -> Reply:
        seq, command = raw[0], raw[1]
        address = int.from_bytes(raw[2:6], "little")
        count = int.from_bytes(raw[6:8], "little")
        operation = command & _OP_MASK
        fixed = bool(command & FLAG_FIXED_ADDRESS)

        def reject(status):
            return Reply(seq, status, command, 0)

        if command & _RESERVED_MASK or operation not in (OP_WRITE, OP_READ):
            return reject(Status.BAD_COMMAND)
        if count > self.max_burst:
            return reject(Status.BURST_TOO_LONG)
        data_length = 4 * count if operation == OP_WRITE else 0
        if len(raw) != REQUEST_OVERHEAD + data_length:
            return reject(Status.BAD_LENGTH)
        last = address if fixed else address + max(count, 1) - 1
        if last >= 1 << self.address_width:
            return reject(Status.BAD_ADDRESS)
        words = _bytes_to_words(raw[8:8 + data_length])
        done = []
        status = Status.OK
        for index in range(count):
            word_address = address if fixed else address + index
            try:
                if operation == OP_WRITE:
                    self.write_word(word_address, words[index])
                    done.append(None)
                else:
                    done.append(int(self.read_word(word_address)) & 0xFFFFFFFF)
            except TimeoutError:
                status = Status.BUS_TIMEOUT
                break
        data = tuple(done) if operation == OP_READ else ()
        return Reply(seq, status, command, len(done), data)


class LinkTimeout(TimeoutError):
    """The device did not answer a request intact within the retries allowed."""


class RequestRejected(Exception):
    """The device answered a request with a status other than OK.

    Attributes
    ----------
    reply : Reply
        The device's answer (``reply.count`` words were transferred before a ``BUS_TIMEOUT``).
    """

    def __init__(self, request: Request, reply: Reply):
        self.request = request
        self.reply = reply
        super().__init__(f"device answered {reply.status.name} to a "
                         f"{'write' if request.operation == OP_WRITE else 'read'} of "
                         f"{request.count} word(s) at {request.address:#x} "
                         f"({reply.count} transferred)")


class RegisterLink:
    """Host side of the protocol: burst reads and writes with sequence numbers and retries.

    Stop and wait: one request is outstanding at a time. A request whose reply does not arrive
    intact within ``timeout`` seconds, or that is NACKed, is sent again, unchanged and preceded
    by a ``0x00`` (to flush a half-received frame), up to ``retries`` times; the device replays
    its reply instead of executing twice. Replies to other sequence numbers are discarded.
    Bursts longer than ``max_burst`` are split. The first request of a session is preceded by
    a no-op (see the module docstring).

    Parameters
    ----------
    port : object
        A byte port in the style of :class:`serial.Serial`: ``write(data)``, and ``read(size)``
        that returns at most ``size`` bytes, waiting at most its own (short) timeout; if the
        port has ``in_waiting``, the bytes already buffered are read in one call.
    max_burst : int
        The device's ``max_burst``.
    timeout : float
        Seconds to wait for the reply to one attempt.
    retries : int
        Attempts after the first.

    Attributes
    ----------
    statistics : dict
        ``requests``, ``retries``, ``bytes_sent``, ``bytes_received``, ``payload_bytes`` (data
        words carried, times 4) and ``discarded_frames`` (damaged or stale replies).
    """

    def __init__(self, port, *, max_burst: int = 64, timeout: float = 0.5, retries: int = 5):
        if isinstance(max_burst, bool) or not isinstance(max_burst, int):
            raise TypeError(f"max_burst must be an integer, not {max_burst!r}")
        if not 1 <= max_burst <= 0xFFFF:
            raise ValueError(f"max_burst must be 1..65535, not {max_burst}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
        self.port = port
        self.max_burst = max_burst
        self.timeout = timeout
        self.retries = retries
        self._seq = 0
        self._synchronised = False
        self._splitter = FrameSplitter()
        self.statistics = dict.fromkeys(("requests", "retries", "bytes_sent", "bytes_received",
                                         "payload_bytes", "discarded_frames"), 0)

    def read(self, address: int, count: int, *, fixed_address: bool = False) -> list[int]:
        """Read ``count`` words from ``address`` (consecutive, or all from it if fixed)."""
        words = []
        for offset in range(0, count, self.max_burst):
            length = min(self.max_burst, count - offset)
            start = address if fixed_address else address + offset
            reply = self.transact(Request.read(self._next_seq(), start, length,
                                               fixed_address=fixed_address))
            words.extend(reply.data)
        return words

    def write(self, address: int, words: Iterable[int], *, fixed_address: bool = False) -> None:
        """Write ``words`` from ``address`` (consecutive, or all to it if fixed)."""
        words = _check_words(words)
        for offset in range(0, len(words), self.max_burst):
            chunk = words[offset:offset + self.max_burst]
            start = address if fixed_address else address + offset
            self.transact(Request.write(self._next_seq(), start, chunk,
                                        fixed_address=fixed_address))

    def ping(self) -> None:
        """A no-op round trip (a read of 0 words)."""
        self.transact(Request.read(self._next_seq(), 0, 0))

    def _next_seq(self) -> int:
        if not self._synchronised:
            self._synchronised = True
            self.transact(Request.read(self._seq, 0, 0))
            self._seq = (self._seq + 1) & 0xFF
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFF
        return seq

    def transact(self, request: Request) -> Reply:
        """Send ``request`` until an intact answer arrives; return it if its status is OK.

        Raises
        ------
        RequestRejected
            The device answered with another status.
        LinkTimeout
            No intact answer after ``retries`` retries.
        """
        wire = request.encode()
        self.statistics["requests"] += 1
        for attempt in range(self.retries + 1):
            if attempt:
                self.statistics["retries"] += 1
                wire_bytes = b"\x00" + wire
            else:
                wire_bytes = wire
            self.port.write(wire_bytes)
            self.statistics["bytes_sent"] += len(wire_bytes)
            reply = self._await_reply(request)
            if reply is None:
                continue
            if reply.status != Status.OK:
                raise RequestRejected(request, reply)
            self.statistics["payload_bytes"] += 4 * request.count
            return reply
        raise LinkTimeout(f"no intact reply to request seq={request.seq} after "
                          f"{self.retries + 1} attempts of {self.timeout} s")

    def _await_reply(self, request: Request) -> Reply | None:
        """The reply to ``request``, or None on a timeout or a transport NACK (retry)."""
        deadline = time.monotonic() + self.timeout
        while True:  # read at least once, however late this thread runs
            data = self.port.read(1)
            waiting = getattr(self.port, "in_waiting", 0)
            if data and waiting:
                data += self.port.read(waiting)
            self.statistics["bytes_received"] += len(data)
            nacked = False
            for frame in self._splitter.feed(data):
                try:
                    reply = Reply.decode(frame)
                except FrameError:
                    self.statistics["discarded_frames"] += 1
                    continue
                if reply.answers(request):
                    return reply
                nacked |= reply.status.is_transport_nack
                self.statistics["discarded_frames"] += 1
            if nacked or time.monotonic() >= deadline:
                return None
