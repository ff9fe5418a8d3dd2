"""Tests of the pcie transport against a temporary file standing in for a BAR.

The file is reached both ways the transport knows (``mmap`` as for a sysfs resource file,
``pread``/``pwrite`` as for an XDMA user device); what the transport writes is checked by
reading the file's bytes, and what it reads by writing them, so the address arithmetic, the
byte order and the 32-bit width are checked independently of the transport itself.
"""

from __future__ import annotations

import errno
import os
import struct

import pytest
from tiersolve.host import pcie
from tiersolve.host.errors import LinkError
from tiersolve.host.pcie import PcieTransport, sysfs_resource_path, transport_from_url
from tiersolve.host.transport import Transport

BAR_BYTES = 4096


@pytest.fixture
def bar_file(tmp_path):
    """A 4 KiB file whose word ``i`` holds ``0xA0000000 + i`` (little-endian)."""
    path = tmp_path / "resource0"
    path.write_bytes(b"".join(struct.pack("<I", 0xA000_0000 + i) for i in range(BAR_BYTES // 4)))
    return path


def file_word(path, byte_offset):
    return struct.unpack_from("<I", path.read_bytes(), byte_offset)[0]


@pytest.fixture(params=["mmap", "pread"])
def mode(request):
    return request.param


def test_reads_words_at_byte_offsets(bar_file, mode):
    with PcieTransport(bar_file, mode=mode) as bar:
        assert isinstance(bar, Transport)
        assert bar.mode == mode and bar.size == BAR_BYTES
        assert bar.read32(0) == 0xA000_0000
        assert bar.read32(4) == 0xA000_0001
        assert bar.read32(BAR_BYTES - 4) == 0xA000_0000 + BAR_BYTES // 4 - 1
        assert bar.read_burst(8, 3) == [0xA000_0002, 0xA000_0003, 0xA000_0004]
        assert bar.read_burst(8, 3, fixed_address=True) == [0xA000_0002] * 3
        assert bar.read_burst(8, 0) == []


def test_writes_are_32_bit_little_endian(bar_file, mode):
    with PcieTransport(bar_file, mode=mode) as bar:
        bar.write32(12, 0x1234_5678)
        bar.write_burst(64, [1, 0xFFFF_FFFF, 3])
        bar.write_burst(128, [7, 8, 9], fixed_address=True)
        assert bar.read32(12) == 0x1234_5678
    data = bar_file.read_bytes()
    assert data[12:16] == bytes([0x78, 0x56, 0x34, 0x12])
    assert data[8:12] == struct.pack("<I", 0xA000_0002)      # neighbours untouched
    assert data[16:20] == struct.pack("<I", 0xA000_0004)
    assert struct.unpack_from("<3I", data, 64) == (1, 0xFFFF_FFFF, 3)
    assert file_word(bar_file, 128) == 9                         # last write to a data port wins
    assert file_word(bar_file, 132) == 0xA000_0000 + 33


def test_window_offset_and_size(bar_file, mode):
    with PcieTransport(bar_file, mode=mode, offset=0x100, size=0x40) as bar:
        assert bar.size == 0x40
        assert bar.read32(0) == 0xA000_0040
        assert bar.read32(0x3C) == 0xA000_004F
        bar.write32(4, 5)
        with pytest.raises(ValueError, match=r"byte offset 0x40 is outside the register window "
                                             r"of 0x40 bytes"):
            bar.read32(0x40)
    assert file_word(bar_file, 0x104) == 5


def test_word_addresses_of_the_transport_interface(bar_file, mode):
    with PcieTransport(bar_file, mode=mode) as bar:
        assert bar.read(3, 2) == [0xA000_0003, 0xA000_0004]
        assert bar.read(5, 4, fixed_address=True) == [0xA000_0005] * 4
        bar.write(10, [11, 12])
        bar.write(20, [1, 2, 3], fixed_address=True)
        assert bar.statistics == {"requests": 2 + 4 + 2 + 3, "bytes_sent": 20,
                                  "bytes_received": 24, "payload_bytes": 44, "retries": 0}
    assert file_word(bar_file, 40) == 11 and file_word(bar_file, 44) == 12
    assert file_word(bar_file, 80) == 3
    assert file_word(bar_file, 84) == 0xA000_0015


@pytest.mark.parametrize("byte_offset", [1, 2, 3, 6, 0x101])
def test_misaligned_offsets_are_refused(bar_file, mode, byte_offset):
    with PcieTransport(bar_file, mode=mode) as bar:
        with pytest.raises(ValueError, match="not a multiple of 4: only aligned 32-bit"):
            bar.read32(byte_offset)
        with pytest.raises(ValueError, match="not a multiple of 4"):
            bar.write32(byte_offset, 0)
        with pytest.raises(ValueError, match="not a multiple of 4"):
            bar.read_burst(byte_offset, 2)
    assert file_word(bar_file, 0) == 0xA000_0000


def test_out_of_range_accesses_touch_nothing(bar_file, mode):
    before = bar_file.read_bytes()
    with PcieTransport(bar_file, mode=mode) as bar:
        with pytest.raises(ValueError, match="byte offset 0x1000 is outside"):
            bar.read32(BAR_BYTES)
        with pytest.raises(ValueError, match="byte offset 0x1000 is outside"):
            bar.write_burst(BAR_BYTES - 8, [1, 2, 3])          # crosses the end: nothing written
        with pytest.raises(ValueError, match="byte offset 0x1004 is outside"):
            bar.read_burst(BAR_BYTES - 4, 3)
        bar.write_burst(BAR_BYTES - 4, [1, 2, 3], fixed_address=True)  # stays on one word
        with pytest.raises(ValueError, match="negative"):
            bar.read32(-4)
        with pytest.raises(ValueError, match="negative"):
            bar.read(-1, 1)
        with pytest.raises(ValueError, match="count must be >= 0"):
            bar.read_burst(0, -1)
    after = bar_file.read_bytes()
    assert after[:-4] == before[:-4] and after[-4:] == struct.pack("<I", 3)


def test_bad_values_are_refused_before_any_access(bar_file, mode):
    with PcieTransport(bar_file, mode=mode) as bar:
        with pytest.raises(ValueError, match=r"data word 0 = 4294967296 is not an unsigned"):
            bar.write32(0, 1 << 32)
        with pytest.raises(ValueError, match=r"data word 1 = -1"):
            bar.write_burst(0, [5, -1])
        with pytest.raises(TypeError, match="data word 0 must be an integer"):
            bar.write32(0, 1.0)
        with pytest.raises(TypeError, match="byte offset must be an integer"):
            bar.read32(4.0)
        with pytest.raises(TypeError, match="count must be an integer"):
            bar.read_burst(0, 2.0)
    assert file_word(bar_file, 0) == 0xA000_0000


def test_closed_transport_raises(bar_file, mode):
    bar = PcieTransport(bar_file, mode=mode)
    bar.close()
    bar.close()  # twice is harmless
    with pytest.raises(LinkError, match="closed"):
        bar.read32(0)


def test_constructor_validation(bar_file):
    with pytest.raises(ValueError, match="offset must be a non-negative multiple of 4 bytes, "
                                         "not 0x6"):
        PcieTransport(bar_file, offset=6)
    with pytest.raises(ValueError, match="size must be"):
        PcieTransport(bar_file, size=10)
    with pytest.raises(ValueError, match="offset 0x2000 is beyond the end"):
        PcieTransport(bar_file, offset=0x2000)
    with pytest.raises(ValueError, match=r"window 0xf00..0x1100 goes beyond the end"):
        PcieTransport(bar_file, offset=0xF00, size=0x200)
    with pytest.raises(ValueError, match="mode must be one of"):
        PcieTransport(bar_file, mode="dma")
    with pytest.raises(TypeError, match="path must be"):
        PcieTransport(3)


def test_missing_device_file(tmp_path):
    missing = tmp_path / "resource0"
    with pytest.raises(LinkError, match=f"no PCIe device file {missing}: is the FPGA "
                                        "programmed and enumerated"):
        PcieTransport(missing)
    with pytest.raises(LinkError, match="is a folder"):
        PcieTransport(tmp_path)


def test_missing_permission(bar_file, monkeypatch):
    if os.geteuid() == 0:  # root ignores file modes: make the kernel's answer up instead
        def refuse(path, flags, *args):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

        monkeypatch.setattr(os, "open", refuse)
    else:
        bar_file.chmod(0o444)
    with pytest.raises(LinkError, match=f"permission denied opening {bar_file} for reading "
                                        "and writing: run as root"):
        PcieTransport(bar_file)


def test_empty_file_cannot_be_mapped(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(LinkError, match="is empty or its size is unknown"):
        PcieTransport(empty)


def test_character_device_uses_pread():
    """A character device (here /dev/zero) is reached with pread/pwrite and has no size."""
    with PcieTransport("/dev/zero") as device:
        assert device.mode == "pread" and device.size is None
        assert device.read_burst(0x1_0000, 2) == [0, 0]
        device.write32(0x40, 0xDEAD_BEEF)   # discarded by /dev/zero, but accepted
    with PcieTransport("/dev/null") as device, pytest.raises(LinkError, match="returned 0 bytes"):
        device.read32(0)


def test_sysfs_resource_path(tmp_path):
    folder = tmp_path / "0000:01:00.0"
    folder.mkdir()
    (folder / "resource0").write_bytes(b"\0" * 64)
    assert sysfs_resource_path("0000:01:00.0", 0, root=tmp_path) == folder / "resource0"
    assert sysfs_resource_path("01:00.0", root=tmp_path) == folder / "resource0"
    with pytest.raises(LinkError, match="PCI device 0000:01:00.0 has no BAR 2"):
        sysfs_resource_path("0000:01:00.0", 2, root=tmp_path)
    with pytest.raises(LinkError, match=r"no PCI device 0000:02:00.0 .*lspci -D"):
        sysfs_resource_path("0000:02:00.0", root=tmp_path)
    with pytest.raises(ValueError, match="must look like 0000:01:00.0, not '1:0'"):
        sysfs_resource_path("1:0", root=tmp_path)
    with pytest.raises(ValueError, match="bar must be 0..5, not 6"):
        sysfs_resource_path("0000:01:00.0", 6, root=tmp_path)


def test_urls(bar_file, monkeypatch, tmp_path):
    with transport_from_url(f"pcie://{bar_file}?mode=pread&offset=0x10&size=16") as bar:
        assert (bar.mode, bar.size, bar.read32(0)) == ("pread", 16, 0xA000_0004)
    with transport_from_url(f"pcie://{bar_file}") as bar:
        assert bar.mode == "mmap" and bar.size == BAR_BYTES
    # A device address goes through sysfs (pointed at a fake tree here).
    device = tmp_path / "sys" / "0000:03:00.0"
    device.mkdir(parents=True)
    (device / "resource2").write_bytes(bar_file.read_bytes())
    monkeypatch.setattr(pcie, "SYSFS_PCI_DEVICES", tmp_path / "sys")
    with transport_from_url("pcie://0000:03:00.0?bar=2&offset=8") as bar:
        assert bar.read32(0) == 0xA000_0002
    for url, message in [
        ("pcie://", "needs a device address or a path"),
        (f"pcie://{bar_file}?speed=1", "unknown parameter 'speed'"),
        (f"pcie://{bar_file}?offset=4&offset=8", "given twice"),
        (f"pcie://{bar_file}?offset=four", "offset='four' is not an integer"),
        (f"pcie://{bar_file}?bar=1", "bar= needs a device address"),
        ("pcie://0000:03:00.0/x", "not both"),
        ("uart:///dev/ttyUSB0", "not a pcie URL"),
    ]:
        with pytest.raises(ValueError, match=message):
            transport_from_url(url)
    with pytest.raises(LinkError, match="no PCI device 0000:04:00.0"):
        transport_from_url("pcie://0000:04:00.0")


def test_open_reports_a_missing_device(tmp_path):
    """``tiersolve.host.open`` hands pcie URLs to this module; a missing file is a LinkError."""
    from tiersolve.host.device import open as open_device

    with pytest.raises(LinkError, match="no PCIe device file"):
        open_device(f"pcie://{tmp_path}/nothing")
