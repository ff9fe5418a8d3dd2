"""Tests of the wire protocol: COBS, CRC, frame encoding and decoding, resync, device model."""

import binascii
import random

import pytest
from tiersolve.host.protocol import (
    FLAG_FIXED_ADDRESS,
    OP_READ,
    OP_WRITE,
    CobsError,
    CrcError,
    DeviceModel,
    FormatError,
    FrameSplitter,
    LinkTimeout,
    RegisterLink,
    Reply,
    Request,
    RequestRejected,
    Status,
    cobs_decode,
    cobs_encode,
    cobs_max_encoded_length,
    crc16,
    nack_frame,
)


def test_crc16_is_ccitt_false():
    # The standard check value of CRC-16/CCITT-FALSE.
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


def test_crc16_residue_of_intact_frame_is_zero():
    rng = random.Random(1)
    for _ in range(100):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        framed = data + crc16(data).to_bytes(2, "big")
        assert crc16(framed) == 0


@pytest.mark.parametrize("data, encoded", [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
])
def test_cobs_known_vectors(data, encoded):
    # Vectors from the COBS paper / Wikipedia, with blocks closed at 254 bytes.
    assert cobs_encode(data) == encoded
    assert cobs_decode(encoded) == data


def test_cobs_round_trip_random():
    rng = random.Random(2)
    for _ in range(300):
        length = rng.choice([rng.randrange(10), rng.randrange(600)])
        zero_rate = rng.random()
        data = bytes(0 if rng.random() < zero_rate else rng.randrange(1, 256)
                     for _ in range(length))
        encoded = cobs_encode(data)
        assert 0 not in encoded
        assert len(encoded) <= cobs_max_encoded_length(length)
        assert cobs_decode(encoded) == data


def test_cobs_decode_rejects_broken_frames():
    with pytest.raises(CobsError):
        cobs_decode(b"\x05\x11\x22")  # block cut short
    with pytest.raises(CobsError):
        cobs_decode(b"\x03\x11\x00")  # zero inside


def test_request_wire_format_byte_by_byte():
    request = Request.write(0x5A, 0x01020304, [0xAABBCCDD], fixed_address=True)
    raw = request.raw()
    assert raw[:12] == bytes([0x5A, OP_WRITE | FLAG_FIXED_ADDRESS, 4, 3, 2, 1, 1, 0,
                              0xDD, 0xCC, 0xBB, 0xAA])
    assert raw[12:] == binascii.crc_hqx(raw[:12], 0xFFFF).to_bytes(2, "big")
    wire = request.encode()
    assert wire[-1] == 0 and 0 not in wire[:-1]
    assert Request.decode_raw(cobs_decode(wire[:-1])) == request


def test_request_reply_round_trip():
    rng = random.Random(3)
    for _ in range(200):
        seq = rng.randrange(256)
        address = rng.randrange(1 << 32)
        if rng.random() < 0.5:
            words = [rng.randrange(1 << 32) for _ in range(rng.randrange(80))]
            request = Request.write(seq, address, words, fixed_address=rng.random() < 0.3)
        else:
            request = Request.read(seq, address, rng.randrange(1 << 16))
        assert Request.decode_raw(cobs_decode(request.encode()[:-1])) == request
        data = tuple(rng.randrange(1 << 32) for _ in range(request.count)) \
            if request.operation == OP_READ and request.count < 100 else ()
        reply = Reply(seq, Status.OK, request.command, len(data) or request.count * 0, data)
        decoded = Reply.decode(reply.encode()[:-1])
        assert decoded == reply
        assert decoded.answers(request)


def test_request_validation():
    with pytest.raises(ValueError, match="seq"):
        Request.read(256, 0, 1)
    with pytest.raises(ValueError, match="count"):
        Request.read(0, 0, 1 << 16)
    with pytest.raises(ValueError, match="data word 1"):
        Request.write(0, 0, [1, 1 << 32])
    with pytest.raises(TypeError, match="data word 0"):
        Request.write(0, 0, [1.5])
    with pytest.raises(ValueError, match="operation"):
        Request(0, 3, 0, 0)


def test_crc_errors_are_detected():
    """Every single-bit error and every burst error of up to 16 bits is caught by the CRC."""
    request = Request.write(7, 0x40, [0x12345678, 0, 0xFFFFFFFF])
    raw = request.raw()
    for bit in range(8 * len(raw)):
        damaged = bytearray(raw)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises((CrcError, FormatError)):
            Request.decode_raw(bytes(damaged))
    rng = random.Random(4)
    for _ in range(300):
        start = rng.randrange(8 * len(raw) - 16)
        pattern = rng.randrange(1 << 15) << 1 | 1 | 1 << 15  # burst of exactly 16 bits
        value = int.from_bytes(raw, "big") ^ (pattern << (8 * len(raw) - 16 - start))
        with pytest.raises(CrcError):
            Request.decode_raw(value.to_bytes(len(raw), "big"))
    reply = Reply(1, Status.OK, OP_READ, 1, (5,))
    damaged = bytearray(reply.raw())
    damaged[5] ^= 0x40
    with pytest.raises(CrcError):
        Reply.decode_raw(bytes(damaged))


def test_reply_format_errors():
    with pytest.raises(FormatError, match="shorter"):
        Reply.decode_raw(b"\x00\x00\x00")
    bad_status = bytes([0, 0x42, OP_READ, 0, 0])
    with pytest.raises(FormatError, match="status"):
        Reply.decode_raw(bad_status + crc16(bad_status).to_bytes(2, "big"))
    short_data = bytes([0, 0, OP_READ, 2, 0, 1, 2, 3, 4])
    with pytest.raises(FormatError, match="data bytes"):
        Reply.decode_raw(short_data + crc16(short_data).to_bytes(2, "big"))


def test_nack_frames_are_constant_and_decode():
    for status in (Status.NACK_CRC, Status.NACK_FRAMING):
        frame = nack_frame(status)
        reply = Reply.decode(frame[:-1])
        assert reply.status == status and reply.status.is_transport_nack
        assert not reply.answers(Request.read(0, 0, 0))
    with pytest.raises(ValueError):
        nack_frame(Status.OK)


def test_splitter_resynchronises_after_garbage():
    rng = random.Random(5)
    replies = [Reply(i, Status.OK, OP_WRITE, i) for i in range(20)]
    stream = bytearray()
    for reply in replies:
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
        stream += garbage + b"\x00" + reply.encode()
    splitter = FrameSplitter()
    decoded, errors = [], 0
    position = 0
    while position < len(stream):  # feed in random-sized pieces
        step = rng.randrange(1, 9)
        for frame in splitter.feed(stream[position:position + step]):
            try:
                decoded.append(Reply.decode(frame))
            except (CobsError, CrcError, FormatError):
                errors += 1
        position += step
    assert decoded == replies
    # Garbage that contained no zero byte is one broken frame per gap (at most 20).
    assert errors <= 20


def test_splitter_drops_overlong_frames():
    splitter = FrameSplitter(max_length=8)
    assert splitter.feed(b"\x01" * 20) == []
    assert splitter.feed(b"\x01\x00\x02\x05\x00") == [b"\x02\x05"]
    assert splitter.overlong_frames == 1


class ModelBus:
    """Memory of 64 words plus a write counter at address 0x100 (writes there are counted)."""

    def __init__(self):
        self.words = [0] * 64
        self.write_count = 0

    def read(self, address):
        if address == 0x100:
            return self.write_count
        return self.words[address] if address < 64 else 0

    def write(self, address, value):
        if address == 0x100:
            self.write_count += 1
        elif address < 64:
            self.words[address] = value


def make_model(**kwargs):
    bus = ModelBus()
    return DeviceModel(bus.read, bus.write, **kwargs), bus


def exchange(model, request):
    return Reply.decode(model.feed(request.encode())[:-1])


def test_model_write_read_and_replay():
    model, bus = make_model(max_burst=8)
    assert exchange(model, Request.write(1, 4, [10, 11, 12])) == Reply(1, Status.OK, OP_WRITE, 3)
    reply = exchange(model, Request.read(2, 3, 5))
    assert reply.data == (0, 10, 11, 12, 0)
    counted = Request.write(3, 0x100, [0, 0], fixed_address=True)
    first = model.feed(counted.encode())
    assert model.feed(b"\x00" + counted.encode()) == first  # retry: replayed, not executed
    assert bus.write_count == 2
    assert model.events["replayed"] == 1


def test_model_nacks_and_rejects():
    model, _ = make_model(max_burst=4, address_width=8)
    damaged = bytearray(Request.write(1, 0, [1]).raw())
    damaged[9] ^= 0x10
    assert model.feed(cobs_encode(damaged) + b"\x00") == nack_frame(Status.NACK_CRC)
    assert model.feed(b"\x05\x01\x00") == nack_frame(Status.NACK_FRAMING)
    assert model.feed(b"\x00\x00") == b""  # empty frames are ignored
    assert exchange(model, Request.read(2, 0, 5)).status == Status.BURST_TOO_LONG
    assert exchange(model, Request.read(3, 255, 2)).status == Status.BAD_ADDRESS
    assert exchange(model, Request.read(4, 255, 2, fixed_address=True)).status == Status.OK
    raw = bytes([5, 0x06, 0, 0, 0, 0, 0, 0])
    frame = cobs_encode(raw + crc16(raw).to_bytes(2, "big")) + b"\x00"
    assert Reply.decode(model.feed(frame)[:-1]).status == Status.BAD_COMMAND
    raw = bytes([6, OP_READ, 0, 0, 0, 0, 1, 0, 9, 9, 9, 9])  # a read carrying data
    frame = cobs_encode(raw + crc16(raw).to_bytes(2, "big")) + b"\x00"
    assert Reply.decode(model.feed(frame)[:-1]).status == Status.BAD_LENGTH


def test_model_bus_timeout_reports_words_done():
    done = []

    def write(address, value):
        if address == 2:
            raise TimeoutError
        done.append(address)

    model = DeviceModel(lambda address: address, write, max_burst=8)
    reply = exchange(model, Request.write(1, 0, [7, 7, 7, 7]))
    assert (reply.status, reply.count, done) == (Status.BUS_TIMEOUT, 2, [0, 1])


class FaultyPort:
    """A byte port in front of a DeviceModel that damages traffic in both directions.

    Each frame written, and each reply frame, is independently dropped, truncated, given a
    flipped bit, duplicated or preceded by garbage with probability ``fault_rate``.
    """

    def __init__(self, model, rng, fault_rate):
        self.model = model
        self.rng = rng
        self.fault_rate = fault_rate
        self.buffer = bytearray()
        self.faults = 0

    def _damage(self, data):
        if self.rng.random() >= self.fault_rate:
            return data
        self.faults += 1
        kind = self.rng.randrange(5)
        data = bytearray(data)
        if kind == 0:
            return b""
        if kind == 1:
            return bytes(data[:self.rng.randrange(len(data))])
        if kind == 2:
            data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
            return bytes(data)
        if kind == 3:
            return bytes(data + data)
        return bytes(self.rng.randrange(256) for _ in range(5)) + bytes(data)

    def write(self, data):
        reply = self.model.feed(self._damage(data))
        for frame in reply.split(b"\x00")[:-1]:
            self.buffer += self._damage(frame + b"\x00")

    @property
    def in_waiting(self):
        return len(self.buffer)

    def read(self, size):
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


def test_register_link_round_trip_and_splitting():
    model, bus = make_model(max_burst=4)
    link = RegisterLink(FaultyPort(model, random.Random(0), 0.0), max_burst=4, timeout=0.05)
    link.write(2, range(10, 20))  # three bursts
    assert link.read(0, 12) == [0, 0] + list(range(10, 20))
    link.write(0x100, [0] * 6, fixed_address=True)
    assert link.read(0x100, 1) == [6]
    assert link.statistics["retries"] == 0
    assert link.statistics["payload_bytes"] == 4 * (10 + 12 + 6 + 1)
    with pytest.raises(RequestRejected, match="BAD_ADDRESS"):
        link.read(0xFFFF, 2)


def test_register_link_survives_a_faulty_line():
    """Nothing is applied twice or lost: the write counter counts each write call once."""
    rng = random.Random(9)
    model, bus = make_model(max_burst=8)
    port = FaultyPort(model, rng, fault_rate=0.2)
    link = RegisterLink(port, max_burst=8, timeout=0.002, retries=20)
    expected = [0] * 64
    counter_writes = 0
    for step in range(300):
        if rng.random() < 0.5:
            link.write(0x100, [step])
            counter_writes += 1
            assert link.read(0x100, 1) == [counter_writes]
        else:
            address = rng.randrange(56)
            words = [rng.randrange(1 << 32) for _ in range(rng.randrange(1, 9))]
            link.write(address, words)
            expected[address:address + len(words)] = words
    assert bus.write_count == counter_writes
    assert bus.words == expected
    assert link.read(0, 64) == expected
    assert port.faults > 100 and link.statistics["retries"] > 50
    assert model.events["replayed"] > 10  # the retries really did hit the replay path


def test_register_link_times_out_on_a_dead_device():
    class DeadPort:
        def write(self, data):
            pass

        def read(self, size):
            return b""

    link = RegisterLink(DeadPort(), timeout=0.001, retries=2)
    with pytest.raises(LinkTimeout, match="3 attempts"):
        link.ping()


def test_a_port_that_fails_is_a_link_error():
    """A serial port that fails under the transport (a board unplugged, the pty of a server
    that died: pyserial raises SerialException, an OSError) is a LinkError of the host API,
    not the port's own exception; a dead device is still a DeviceTimeout."""
    import errno

    from tiersolve.host.errors import DeviceTimeout, LinkError
    from tiersolve.host.transport import FramedTransport

    class UnpluggedPort:
        def __init__(self, fail_on):
            self.fail_on = fail_on

        def write(self, data):
            if self.fail_on == "write":
                raise OSError(errno.EIO, "Input/output error")

        def read(self, size):
            if self.fail_on == "read":
                raise OSError("device reports readiness to read but returned no data")
            return b""

    for fail_on, message in (("write", "Input/output error"), ("read", "returned no data")):
        transport = FramedTransport(UnpluggedPort(fail_on), timeout=0.001, retries=1)
        with pytest.raises(LinkError, match=f"the link failed: .*{message}"):
            transport.read(0, 1)
        with pytest.raises(LinkError, match=message):
            transport.write(0, [1])
    with pytest.raises(DeviceTimeout, match="2 attempts"):
        FramedTransport(UnpluggedPort(None), timeout=0.001, retries=1).read(0, 1)
