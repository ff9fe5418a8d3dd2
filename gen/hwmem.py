"""On-chip memory split into block-RAM-sized chunks, each read through its own register.

A deep :class:`~amaranth.lib.memory.Memory` is mapped by Yosys onto several block RAMs stacked
in depth, with a multiplexer on their outputs selected by the high address bits. On ECP5 a
DP16KD without its output register has a clock-to-output delay of about 6 ns, so a read whose
data passes that multiplexer (and the route from a block RAM at the edge of the array) into a
register is the slowest path of a design once the memory is deeper than one block RAM.

:func:`chunked_memory` builds the memory as chunks of at most ``chunk_depth`` words, registers
each chunk's read data next to its block RAM, and only then selects the chunk (with the high
address bits delayed to match). The data of a read issued in cycle ``t`` is selected from those
registers in cycle ``t + 2``: the same timing as a read port whose data goes straight into a
register, which is what it replaces, and with the multiplexer moved after the registers.

With ``address_register=True`` every chunk also registers its read address before its block
RAM: the logic that computes an address (and the route to the block RAMs, which can be far
apart) then has a cycle of its own, and the data arrives one cycle later (``t + 3``). A
write is seen by every read accessing its word from the next cycle on (on ECP5 through a
registered write and a bypass, below).

On ECP5 (``family="ecp5"``) a chunk of at most :data:`BLOCK_RAM_WORDS` words that Yosys
would put in block RAM is built from DP16KD block RAMs whose own output register is the
chunk's read register (:class:`Ecp5RegisteredRam`). Yosys maps a memory to the block RAM
without that register, and the placer then puts the fabric register near the logic it feeds,
so the block RAM's 5.6-5.8 ns clock-to-output and a route across the die made one path (the
critical path of the 128/8/8 ULX3S builds); from the output register the clock-to-output is a
fraction of that (a one-block-RAM test design: 2.4 ns from the clock to the next register,
against 7.0 ns). A DP16KD does not define a read of a word in the cycle its other port writes
it, so, as Yosys does for the block RAMs it infers, the write is registered beside the block
RAM and a read that meets it takes the written word from a bypass instead: the bypass word and
the hit flag are registered twice, to meet the read data, and the selection is one LUT after
the block RAM's output register. The result is the plain memory's behaviour, cycle for cycle.
Setting :data:`MODEL_ECP5_BLOCK_RAMS` builds that structure around a simulation model of the
block RAM (colliding reads return garbage), so that the cores' simulations test it.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from amaranth.hdl import (
    Cat,
    ClockSignal,
    Const,
    Elaboratable,
    Instance,
    Module,
    Mux,
    Shape,
    Signal,
)
from amaranth.lib import memory

__all__ = ["BLOCK_RAM_WORDS", "Ecp5RegisteredRam", "block_ram_is_cheaper", "chunked_memory"]

#: Words of one ECP5 DP16KD / PDPW16KD at widths 19..36 (the wide words of the solver cores);
#: narrower words fit 1024 or more, so a chunk of 512 words is at most one block RAM deep.
BLOCK_RAM_WORDS = 512


#: Test hook: when true (set it before elaborating), the chunks that :func:`chunked_memory`
#: would build from DP16KD block RAMs on ECP5 are built, for any platform and at any size, with
#: the same registered write and bypass around :class:`BlockRamModel` (a memory whose read of a
#: word in the cycle it is written returns the old word inverted, where the DP16KD is
#: undefined). A core whose bit-exact and cycle-exact simulations pass with this set gets the
#: same results from the ECP5 structure. The environment variable
#: ``TIERSOLVE_MODEL_ECP5_BLOCK_RAMS=1`` sets it for a whole test run.
MODEL_ECP5_BLOCK_RAMS = os.environ.get("TIERSOLVE_MODEL_ECP5_BLOCK_RAMS", "") not in ("", "0")

#: Data bits of one DP16KD in its 36-bit pseudo-dual-port mode (512 words).
PDP_WIDTH = 36


class _BlockRamPorts(Elaboratable):
    """The ports of a one-block-RAM memory with a registered read (see
    :class:`Ecp5RegisteredRam`): ``raddr``, ``rdata``, ``waddr``, ``wdata``, ``wen``."""

    def __init__(self, width: int, depth: int):
        if not 1 <= depth <= BLOCK_RAM_WORDS:
            raise ValueError(f"depth must be 1 .. {BLOCK_RAM_WORDS}, not {depth!r}")
        if width < 1:
            raise ValueError(f"width must be positive, not {width!r}")
        self.width, self.depth = width, depth
        address_bits = max((depth - 1).bit_length(), 1)
        self.raddr = Signal(address_bits)
        self.waddr = Signal(address_bits)
        self.wdata = Signal(width)
        self.wen = Signal()
        self.rdata = Signal(width)


class Ecp5RegisteredRam(_BlockRamPorts):
    """A memory of ``depth`` (at most :data:`BLOCK_RAM_WORDS`) words of ``width`` bits with one
    write port and one read port whose data comes from the block RAM's output register: the
    word at the address driven in cycle ``t`` is on ``rdata`` in cycle ``t + 2``. ECP5 only
    (DP16KD primitives, no simulation model here).

    Each ``36``-bit slice of the word is one DP16KD in its pseudo-dual-port mode, wired as
    Yosys wires the block RAMs it infers for such a memory (port A writes, ``DIA``/``DOA`` the
    low 18 bits, ``DIB``/``DOB`` the high 18, the word address on address bits 5-13, the write
    enable on the four byte enables, ``ADA0``-``ADA3``; a synthesis test compares the two
    netlists pin by pin), except ``REGMODE_A = REGMODE_B = "OUTREG"`` (both halves of the read
    word through the output register) with both output registers enabled every cycle. A read of
    a word in the cycle it is written is undefined (:func:`chunked_memory` bypasses it). Like
    the fabric register it replaces, the output register has no reset: it is replaced every
    cycle.

    Attributes
    ----------
    raddr, rdata, waddr, wdata, wen : Signal
    """

    def elaborate(self, platform):
        m = Module()
        address_bits = 9  # 512 words of 36 bits
        raddr = Cat(self.raddr, Const(0, address_bits - len(self.raddr)))
        waddr = Cat(self.waddr, Const(0, address_bits - len(self.waddr)))
        for piece in range(-(-self.width // PDP_WIDTH)):
            low = piece * PDP_WIDTH
            bits = min(PDP_WIDTH, self.width - low)
            wdata = Cat(self.wdata[low:low + bits], Const(0, PDP_WIDTH - bits))
            rdata = Signal(PDP_WIDTH, name=f"rdata_{piece}")
            ports = {}
            for bit in range(5):  # bits 0-3: byte enables of port A; bit 4 unused at 36 bits
                ports[f"i_ADA{bit}"] = self.wen if bit < 4 else 0
                ports[f"i_ADB{bit}"] = 0
            for bit in range(address_bits):
                ports[f"i_ADA{bit + 5}"] = waddr[bit]
                ports[f"i_ADB{bit + 5}"] = raddr[bit]
            for bit in range(18):
                ports[f"i_DIA{bit}"] = wdata[bit]
                ports[f"i_DIB{bit}"] = wdata[bit + 18]
                ports[f"o_DOA{bit}"] = rdata[bit]
                ports[f"o_DOB{bit}"] = rdata[bit + 18]
            for bit in range(3):
                ports[f"i_CSA{bit}"] = 0
                ports[f"i_CSB{bit}"] = 0
            m.submodules[f"bram_{piece}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=PDP_WIDTH, p_DATA_WIDTH_B=PDP_WIDTH,
                p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="ASYNC", p_ASYNC_RESET_RELEASE="ASYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                i_CLKA=ClockSignal("sync"), i_WEA=1, i_CEA=1, i_OCEA=1, i_RSTA=0,
                i_CLKB=ClockSignal("sync"), i_WEB=0, i_CEB=1, i_OCEB=1, i_RSTB=0,
                **ports)
            m.d.comb += self.rdata[low:low + bits].eq(rdata[:bits])
        return m


class BlockRamModel(_BlockRamPorts):
    """Simulation stand-in for :class:`Ecp5RegisteredRam` (same ports and timing): a memory
    whose read data is registered, and whose read of a word in the cycle it is written returns
    the old word inverted (the block RAM does not define it)."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[])
        write, read = mem.write_port(), mem.read_port()
        collided = Signal()
        m.d.comb += [write.addr.eq(self.waddr), write.data.eq(self.wdata),
                     write.en.eq(self.wen), read.addr.eq(self.raddr)]
        m.d.sync += [collided.eq(self.wen & (self.waddr == self.raddr)),
                     self.rdata.eq(Mux(collided, ~read.data, read.data))]
        return m


def block_ram_is_cheaper(width: int, words: int) -> bool:
    """Whether Yosys maps a ``words`` x ``width`` memory with a synchronous read port to ECP5
    block RAM rather than to distributed RAM, by the costs its memory library gives them (a
    block RAM 128, a 16 x 4 bit TRELLIS_DPR16X4 4): the small per-lane buffers of the cores
    stay in LUTs, as Yosys would put them."""
    block_rams = -(-width // PDP_WIDTH)
    distributed = -(-words // 16) * -(-width // 4)
    return 4 * distributed > 128 * block_rams


def chunked_memory(m, name: str, shape, depth: int, *, read_ports: int,
                   chunk_depth: int = BLOCK_RAM_WORDS, address_register: bool = False,
                   family: str | None = None):
    """A ``depth``-word memory as chunks of ``chunk_depth`` words with registered reads.

    Parameters
    ----------
    m : Module
        Module to add the chunk memories and the read registers to.
    name : str
        Base name of the chunk memories (``name``, or ``name_c0``, ``name_c1``, ...).
    shape : shape-like
        Word shape.
    depth : int
        Words.
    read_ports : int
        Read ports (every chunk gets that many).
    chunk_depth : int
        Words per chunk, a power of two (default :data:`BLOCK_RAM_WORDS`).
    address_register : bool
        Register each chunk's read address beside it (reads take one more cycle).
    family : str or None
        ``platform.family`` of the platform being elaborated for: ``"ecp5"`` builds each chunk
        of at most :data:`BLOCK_RAM_WORDS` words that Yosys would put in block RAM
        (:func:`block_ram_is_cheaper`) as an :class:`Ecp5RegisteredRam` per read port behind a
        registered write with a bypass (same behaviour and timing; see the module docstring);
        anything else (simulation, Verilator, iCE40, small chunks) a
        :class:`~amaranth.lib.memory.Memory` and fabric registers.

    Returns
    -------
    reads : list of SimpleNamespace
        One per read port: ``addr`` (drive it; ``range(depth)``) and ``data``, the word at the
        address driven two cycles earlier (three with ``address_register``), from registers
        (do not register it again). The memory is accessed when the address is driven (one cycle
        later with ``address_register``): a read accessing a word in the cycle it is written
        gets the old word.
    write : SimpleNamespace
        The write port: ``addr``, ``data``, ``en`` (drive them).

    With one chunk this is one memory whose read data goes into a register, as before.
    """
    if chunk_depth <= 0 or chunk_depth & (chunk_depth - 1):
        raise ValueError(f"chunk_depth must be a power of two, not {chunk_depth!r}")
    chunks = -(-depth // chunk_depth)
    low_bits = (min(depth, chunk_depth) - 1).bit_length()
    write = SimpleNamespace(addr=Signal(range(max(depth, 2)), name=f"{name}_waddr"),
                            data=Signal(shape, name=f"{name}_wdata"),
                            en=Signal(name=f"{name}_wen"))
    reads = [SimpleNamespace(addr=Signal(range(max(depth, 2)), name=f"{name}_raddr{p}"),
                             data=Signal(shape, name=f"{name}_rdata{p}"))
             for p in range(read_ports)]
    parts = [[] for _ in range(read_ports)]  # parts[p][c]: chunk c's registered read data
    for c in range(chunks):
        words = min(chunk_depth, depth - c * chunk_depth)
        chunk_name = name if chunks == 1 else f"{name}_c{c}"
        in_chunk = (write.addr >> low_bits) == c if chunks > 1 else 1
        waddr, wdata, wen = write.addr[:low_bits], write.data, write.en & in_chunk
        addresses = []
        for p, read in enumerate(reads):
            if address_register:
                address = Signal(max(low_bits, 1), name=f"{name}_c{c}_raddr{p}")
                m.d.sync += address.eq(read.addr[:low_bits])
                addresses.append(address)
            else:
                addresses.append(read.addr[:low_bits])
        width = Shape.cast(shape).width
        block_ram = None
        if MODEL_ECP5_BLOCK_RAMS and words <= BLOCK_RAM_WORDS:
            block_ram = BlockRamModel
        elif (family == "ecp5" and words <= BLOCK_RAM_WORDS
              and block_ram_is_cheaper(width, words)):
            block_ram = Ecp5RegisteredRam
        if block_ram is not None:
            for p, held in enumerate(_bypassed_block_rams(
                    m, f"{name}_c{c}", block_ram, shape, words, waddr, wdata, wen, addresses)):
                parts[p].append(held)
            continue
        mem = memory.Memory(shape=shape, depth=words, init=[])
        m.submodules[chunk_name] = mem
        wport = mem.write_port()
        m.d.comb += [wport.addr.eq(waddr), wport.data.eq(wdata), wport.en.eq(wen)]
        for p, address in enumerate(addresses):
            port = mem.read_port()
            held = Signal(shape, name=f"{name}_c{c}_rdata{p}")
            m.d.comb += port.addr.eq(address)
            m.d.sync += held.eq(port.data)
            parts[p].append(held)
    for p, read in enumerate(reads):
        if chunks == 1:
            m.d.comb += read.data.eq(parts[p][0])
            continue
        # the chunk number, delayed to meet the registered data
        held = read.addr >> low_bits
        for stage in range(3 if address_register else 2):
            delayed = Signal(range(chunks), name=f"{name}_chunk{p}_stage{stage}")
            m.d.sync += delayed.eq(held)
            held = delayed
        with m.Switch(held):
            for c, part in enumerate(parts[p]):
                with m.Case(c):
                    m.d.comb += read.data.eq(part)
    return reads, write


def _bypassed_block_rams(m, prefix: str, block_ram, shape, words: int, waddr, wdata, wen,
                         addresses) -> list:
    """One ``block_ram`` (:class:`Ecp5RegisteredRam` or :class:`BlockRamModel`) per read
    address in ``addresses``, all written through one registered write port; a read that
    accesses the word being written (in the cycle the registered write reaches the block RAM)
    takes the written word from a bypass. Returns each port's read data (the word at the
    address accessed two cycles earlier, as the plain memory and its read register give)."""
    address_bits = max((words - 1).bit_length(), 1)
    write_addr = Signal(address_bits, name=f"{prefix}_write_addr")
    write_data = Signal(shape, name=f"{prefix}_write_data")
    write_en = Signal(name=f"{prefix}_write_en")
    m.d.sync += [write_addr.eq(waddr), write_data.eq(wdata), write_en.eq(wen)]
    # the written word, delayed to meet the read data (two cycles after the access)
    bypass = write_data
    for stage in range(2):
        delayed = Signal(shape, name=f"{prefix}_bypass{stage + 1}")
        m.d.sync += delayed.eq(bypass)
        bypass = delayed
    found = []
    for p, address in enumerate(addresses):
        ram = block_ram(Shape.cast(shape).width, words)
        m.submodules[f"{prefix}_r{p}"] = ram
        m.d.comb += [ram.waddr.eq(write_addr), ram.wdata.eq(write_data), ram.wen.eq(write_en),
                     ram.raddr.eq(address)]
        hit = Signal(name=f"{prefix}_hit{p}")
        hit_late = Signal(name=f"{prefix}_hit{p}_late")
        m.d.sync += [hit.eq(write_en & (write_addr == address)), hit_late.eq(hit)]
        data = Signal(shape, name=f"{prefix}_rdata{p}")
        m.d.comb += data.eq(Mux(hit_late, bypass, ram.rdata))
        found.append(data)
    return found
