"""The ``pcie`` transport: 32-bit register accesses to a PCIe BAR.

A design built with ``bus="axi-lite"`` sits behind a vendor PCIe bridge (AMD XDMA / QDMA
AXI-Lite BAR, LitePCIe, ...): every 32-bit memory read or write of the BAR becomes one
AXI4-Lite transaction on :class:`~tiersolve.designs.axil.AxiLiteBridge`, i.e. one access to the
register map. :class:`PcieTransport` reaches the BAR in one of two ways:

``mmap``
    The BAR's sysfs resource file, ``/sys/bus/pci/devices/<domain:bus:dev.fn>/resource<N>``,
    mapped into the process. Needs read/write access to that file (root, or a udev rule) and
    a memory BAR that the kernel has enabled (``echo 1 > .../enable`` if no driver has). Never
    use ``resource<N>_wc``: write combining merges and reorders register writes.
``pread``
    A character device that turns ``pread``/``pwrite`` of 4 bytes at an offset into one
    32-bit access, such as the XDMA driver's ``/dev/xdma0_user``.

Either way each word is moved by its own aligned 32-bit load or store (a burst is a loop of
them), because the bridge has no byte enables and a read of a data port has side effects: a
wider or byte-wise access would be refused (``SLVERR``) or repeat the side effect. Bursts with
``fixed_address`` access the same register ``count`` times (a data port).

Addresses: :meth:`PcieTransport.read32` and friends take *byte offsets* from the start of the
register map (the BAR plus ``offset``); the :class:`~tiersolve.host.transport.Transport`
methods :meth:`~PcieTransport.read` / :meth:`~PcieTransport.write` take the register map's
*word addresses* (byte offset = 4 × word address), like the other transports.

URLs (:func:`transport_from_url`, used by ``tiersolve.host.open``)::

    pcie://0000:01:00.0                    BAR 0 of that device, mmap
    pcie://0000:01:00.0?bar=2&offset=0x10000
    pcie:///sys/bus/pci/devices/0000:01:00.0/resource0
    pcie:///dev/xdma0_user                 a character device: pread/pwrite
    pcie:///tmp/file?mode=mmap&size=4096   any file (tests)

Parameters: ``bar`` (with a device address), ``offset`` and ``size`` (bytes, decimal or
``0x`` hex; the window of the register map inside the file), ``mode`` (``mmap`` or ``pread``;
by default ``pread`` for a character device, ``mmap`` otherwise).

Limits: PCIe reports a device that does not answer (or a bridge that got ``SLVERR``) by reads
returning all ones, not by an error the host can catch here; the Device layer's identity and
status checks catch that. Values are sent in little-endian order (PCIe's), whatever the host.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
import stat
import struct
import sys
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from .errors import LinkError
from .transport import Transport

__all__ = ["PcieTransport", "sysfs_resource_path", "transport_from_url"]

#: Where Linux lists PCI devices.
SYSFS_PCI_DEVICES = Path("/sys/bus/pci/devices")

_DEVICE_ADDRESS = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_MODES = ("mmap", "pread")
_WORD = struct.Struct("<I")


def sysfs_resource_path(device: str, bar: int = 0, *, root: Path | None = None) -> Path:
    """The sysfs resource file of memory BAR ``bar`` of PCI device ``device``.

    Parameters
    ----------
    device : str
        ``domain:bus:device.function`` as ``lspci -D`` prints it (``0000:01:00.0``); the
        domain ``0000:`` may be left out.
    bar : int
        BAR number, 0..5.
    root : Path or None
        Folder of the PCI devices; ``None`` means :data:`SYSFS_PCI_DEVICES`.

    Raises
    ------
    ValueError
        ``device`` is not a PCI address, or ``bar`` is not 0..5.
    LinkError
        No such device, or it has no such BAR.
    """
    if not isinstance(device, str) or not _DEVICE_ADDRESS.match(device):
        raise ValueError(f"PCI device address must look like 0000:01:00.0, not {device!r}")
    if isinstance(bar, bool) or not isinstance(bar, int):
        raise TypeError(f"bar must be an integer, not {bar!r}")
    if not 0 <= bar <= 5:
        raise ValueError(f"bar must be 0..5, not {bar}")
    if device.count(":") == 1:
        device = "0000:" + device
    device = device.lower()
    folder = (SYSFS_PCI_DEVICES if root is None else Path(root)) / device
    if not folder.is_dir():
        raise LinkError(f"no PCI device {device} ({folder} does not exist); `lspci -D` lists "
                        "the devices, and the FPGA may need a rescan or a reboot after "
                        "programming")
    path = folder / f"resource{bar}"
    if not path.exists():
        raise LinkError(f"PCI device {device} has no BAR {bar} ({path} does not exist)")
    return path


def _parse_size(name: str, text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError(f"parameter {name}={text!r} is not an integer (decimal or 0x hex)") \
            from None
    return value


def transport_from_url(url: str) -> PcieTransport:
    """Open the ``pcie://`` URL ``url`` (forms in the module documentation).

    Raises
    ------
    ValueError
        A malformed URL or parameter.
    LinkError
        The device or file cannot be opened (missing, no permission, not mappable).
    """
    if not isinstance(url, str):
        raise TypeError(f"device URL must be a string, not {url!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "pcie" or "://" not in url:
        raise ValueError(f"not a pcie URL: {url!r}")
    try:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True,
                                       strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(f"malformed query in device URL {url!r}") from None
    parameters: dict[str, str] = {}
    for key, text in pairs:
        if key not in ("bar", "offset", "size", "mode"):
            raise ValueError(f"unknown parameter {key!r} in pcie URL {url!r}; known: bar, "
                             "offset, size, mode")
        if key in parameters:
            raise ValueError(f"parameter {key!r} given twice in {url!r}")
        parameters[key] = text
    options = {}
    for key in ("offset", "size"):
        if key in parameters:
            options[key] = _parse_size(key, parameters[key])
    if "mode" in parameters:
        options["mode"] = parameters["mode"]
    if parts.netloc and parts.path:
        raise ValueError(f"a pcie URL has a device address (pcie://0000:01:00.0) or a path "
                         f"(pcie:///dev/xdma0_user), not both: {url!r}")
    if parts.netloc:
        bar = _parse_size("bar", parameters.get("bar", "0"))
        path = sysfs_resource_path(parts.netloc, bar)
    elif parts.path:
        if "bar" in parameters:
            raise ValueError(f"bar= needs a device address (pcie://0000:01:00.0?bar=N), not a "
                             f"path: {url!r}")
        path = Path(urllib.parse.unquote(parts.path))
    else:
        raise ValueError(f"a pcie URL needs a device address or a path, e.g. "
                         f"pcie://0000:01:00.0 or pcie:///dev/xdma0_user; got {url!r}")
    return PcieTransport(path, **options)


class PcieTransport(Transport):
    """32-bit aligned register accesses to a PCIe BAR (sysfs mmap) or an XDMA user device.

    Parameters
    ----------
    path : str or os.PathLike
        The BAR's sysfs ``resource<N>`` file, a character device such as
        ``/dev/xdma0_user``, or (for tests) any regular file.
    offset : int
        Byte offset of the register map inside the file; a multiple of 4.
    size : int or None
        Bytes of the register map window from ``offset``; a multiple of 4. ``None``: up to the
        end of the file (``mmap``), or unchecked (``pread`` on a character device, whose size
        the kernel does not report; the driver then checks).
    mode : {"mmap", "pread"} or None
        How to reach the file; ``None`` picks ``pread`` for a character device and ``mmap``
        for anything else.

    Attributes
    ----------
    path : Path
    mode : str
    size : int or None
        The window size in bytes (``None`` if unknown).
    max_burst : int
        Words per :meth:`read` / :meth:`write` call the Device layer may send at once. PCIe
        has no frame limit, so this is large; each word is still its own access.
    statistics : dict
        ``requests`` (32-bit accesses), ``bytes_sent`` and ``payload_bytes`` (4 per word
        written), ``bytes_received`` (4 per word read; TLP headers are not counted) and
        ``retries`` (always 0).

    Raises
    ------
    TypeError, ValueError
        Bad parameters (not a multiple of 4, negative, a window beyond the end of the file).
    LinkError
        The file is missing, permission is denied, or it cannot be mapped.
    """

    max_burst = 1 << 16
    poll_interval = 50e-6  # a job's status is read at most every 50 µs: no core held

    def __init__(self, path, *, offset: int = 0, size: int | None = None,
                 mode: str | None = None):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a string or a path, not {path!r}")
        self.path = Path(path)
        for name, value in (("offset", offset), ("size", size)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 0 or value % 4:
                raise ValueError(f"{name} must be a non-negative multiple of 4 bytes, not "
                                 f"{value:#x}")
        if mode is not None and mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES} or None, not {mode!r}")
        self._offset = offset
        self.mode = mode
        self.size = size
        self._map = None
        self._words = None
        self._fd = None
        self._counters = dict.fromkeys(("requests", "bytes_sent", "bytes_received",
                                        "payload_bytes", "retries"), 0)
        self._swap = sys.byteorder != "little"

        self._fd = self._open()
        try:
            status = os.fstat(self._fd)
            if mode is None:
                mode = "pread" if stat.S_ISCHR(status.st_mode) else "mmap"
            self.mode = mode
            file_size = status.st_size if stat.S_ISREG(status.st_mode) else None
            if file_size is not None and offset > file_size:
                raise ValueError(f"offset {offset:#x} is beyond the end of {self.path} "
                                 f"({file_size:#x} bytes)")
            if size is None and file_size is not None:
                size = (file_size - offset) & ~3
            if size is not None and file_size is not None and offset + size > file_size:
                raise ValueError(f"window {offset:#x}..{offset + size:#x} goes beyond the end "
                                 f"of {self.path} ({file_size:#x} bytes)")
            if mode == "mmap":
                self._map_file(offset + size if size is not None else None)
            self.size = size
        except BaseException:
            self.close()
            raise

    # --- Opening --------------------------------------------------------------------------

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise LinkError(f"no PCIe device file {self.path}: is the FPGA programmed and "
                            "enumerated (`lspci -D`), and its driver loaded?") from None
        except PermissionError:
            raise LinkError(f"permission denied opening {self.path} for reading and writing: "
                            "run as root, or give your user access to it (a udev rule, or "
                            f"`sudo chmod o+rw {self.path}`)") from None
        except IsADirectoryError:
            raise LinkError(f"{self.path} is a folder, not a BAR resource file or a device; "
                            "for a PCI device use pcie://0000:01:00.0?bar=N") from None
        except OSError as error:
            raise LinkError(f"cannot open {self.path}: {error.strerror}") from None

    def _map_file(self, length: int | None) -> None:
        if not length:
            raise LinkError(f"{self.path} is empty or its size is unknown: cannot map it "
                            "(give size=, or use mode=pread)")
        try:
            self._map = mmap.mmap(self._fd, length, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as error:
            hint = ""
            if error.errno in (errno.EINVAL, errno.ENODEV, errno.ENXIO):
                hint = (" (an I/O-port BAR or a disabled device cannot be mapped; enable it "
                        "with `echo 1 > .../enable`)")
            raise LinkError(f"cannot map {self.path}: {error.strerror}{hint}") from None
        # One aligned 32-bit load or store per element: a memoryview of native unsigned ints.
        self._words = memoryview(self._map)[:length & ~3].cast("I")

    # --- Address checks -------------------------------------------------------------------

    def _check_span(self, byte_offset: int, count: int, fixed_address: bool) -> int:
        """Check an access of ``count`` words from ``byte_offset``; return its file offset."""
        if isinstance(byte_offset, bool) or not isinstance(byte_offset, int):
            raise TypeError(f"byte offset must be an integer, not {byte_offset!r}")
        if byte_offset < 0:
            raise ValueError(f"byte offset {byte_offset} is negative")
        if byte_offset % 4:
            raise ValueError(f"byte offset {byte_offset:#x} is not a multiple of 4: only "
                             "aligned 32-bit accesses are possible")
        if self._fd is None:
            raise LinkError(f"the pcie transport to {self.path} is closed")
        end = byte_offset + 4 * (1 if fixed_address else max(count, 1))
        if self.size is not None and end > self.size:
            last = end - 4
            raise ValueError(f"byte offset {last:#x} is outside the register window of "
                             f"{self.size:#x} bytes ({self.path}, offset {self._offset:#x})")
        return self._offset + byte_offset

    @staticmethod
    def _check_count(count) -> int:
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"count must be an integer, not {count!r}")
        if count < 0:
            raise ValueError(f"count must be >= 0, not {count}")
        return count

    @staticmethod
    def _check_words(words: Iterable[int]) -> list[int]:
        checked = []
        for index, word in enumerate(words):
            if isinstance(word, bool) or not hasattr(word, "__index__"):
                raise TypeError(f"data word {index} must be an integer, not {word!r}")
            word = word.__index__()
            if not 0 <= word < 1 << 32:
                raise ValueError(f"data word {index} = {word} is not an unsigned 32-bit value")
            checked.append(word)
        return checked

    # --- Single accesses ------------------------------------------------------------------

    def _load(self, position: int) -> int:
        if self._words is not None:
            value = self._words[position >> 2]
            return int.from_bytes(value.to_bytes(4, sys.byteorder), "little") \
                if self._swap else value
        try:
            data = os.pread(self._fd, 4, position)
        except OSError as error:
            raise LinkError(f"read of {self.path} at {position:#x} failed: {error.strerror}") \
                from None
        if len(data) != 4:
            raise LinkError(f"read of {self.path} at {position:#x} returned {len(data)} bytes, "
                            "not 4 (beyond the BAR?)")
        return _WORD.unpack(data)[0]

    def _store(self, position: int, value: int) -> None:
        if self._words is not None:
            if self._swap:
                value = int.from_bytes(value.to_bytes(4, "little"), sys.byteorder)
            self._words[position >> 2] = value
            return
        try:
            written = os.pwrite(self._fd, _WORD.pack(value), position)
        except OSError as error:
            raise LinkError(f"write of {self.path} at {position:#x} failed: {error.strerror}") \
                from None
        if written != 4:
            raise LinkError(f"write of {self.path} at {position:#x} stored {written} bytes, "
                            "not 4 (beyond the BAR?)")

    def read32(self, byte_offset: int) -> int:
        """Read the 32-bit register at ``byte_offset`` (a multiple of 4) of the window."""
        position = self._check_span(byte_offset, 1, False)
        value = self._load(position)
        self._count(reads=1)
        return value

    def write32(self, byte_offset: int, value: int) -> None:
        """Write ``value`` (0 .. 2**32 - 1) to the 32-bit register at ``byte_offset``."""
        (value,) = self._check_words([value])
        position = self._check_span(byte_offset, 1, False)
        self._store(position, value)
        self._count(writes=1)

    # --- Bursts ---------------------------------------------------------------------------

    def read_burst(self, byte_offset: int, count: int, *, fixed_address: bool = False
                   ) -> list[int]:
        """Read ``count`` words from consecutive registers (or ``count`` times from one).

        The whole span is checked before the first access.
        """
        count = self._check_count(count)
        position = self._check_span(byte_offset, count, fixed_address)
        step = 0 if fixed_address else 4
        words = [self._load(position + step * index) for index in range(count)]
        self._count(reads=count)
        return words

    def write_burst(self, byte_offset: int, words: Iterable[int], *,
                    fixed_address: bool = False) -> None:
        """Write ``words`` to consecutive registers (or all to one, in order).

        The words and the whole span are checked before the first access.
        """
        words = self._check_words(words)
        position = self._check_span(byte_offset, len(words), fixed_address)
        step = 0 if fixed_address else 4
        for index, word in enumerate(words):
            self._store(position + step * index, word)
        self._count(writes=len(words))

    # --- Transport interface (word addresses) ---------------------------------------------

    @staticmethod
    def _word_address(address) -> int:
        if isinstance(address, bool) or not isinstance(address, int):
            raise TypeError(f"word address must be an integer, not {address!r}")
        if address < 0:
            raise ValueError(f"word address {address} is negative")
        return 4 * address

    def read(self, address: int, count: int, *, fixed_address: bool = False) -> list[int]:
        """Read ``count`` words from register-map word ``address`` (see :meth:`read_burst`)."""
        return self.read_burst(self._word_address(address), count, fixed_address=fixed_address)

    def write(self, address: int, words: Iterable[int], *, fixed_address: bool = False) -> None:
        """Write ``words`` from register-map word ``address`` (see :meth:`write_burst`)."""
        self.write_burst(self._word_address(address), words, fixed_address=fixed_address)

    def _count(self, *, reads: int = 0, writes: int = 0) -> None:
        counters = self._counters
        counters["requests"] += reads + writes
        counters["bytes_received"] += 4 * reads
        counters["bytes_sent"] += 4 * writes
        counters["payload_bytes"] += 4 * (reads + writes)

    @property
    def statistics(self) -> dict:
        return dict(self._counters)

    def close(self) -> None:
        """Unmap and close the file; further accesses raise :class:`LinkError`."""
        if self._words is not None:
            self._words.release()
            self._words = None
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __repr__(self):
        return f"PcieTransport({str(self.path)!r}, offset={self._offset:#x}, mode={self.mode!r})"
