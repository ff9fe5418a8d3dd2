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
apart) then has a cycle of its own, and the data arrives one cycle later (``t + 3``). Writes
are not delayed.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Signal
from amaranth.lib import memory

__all__ = ["BLOCK_RAM_WORDS", "chunked_memory"]

#: Words of one ECP5 DP16KD / PDPW16KD at widths 19..36 (the wide words of the solver cores);
#: narrower words fit 1024 or more, so a chunk of 512 words is at most one block RAM deep.
BLOCK_RAM_WORDS = 512


def chunked_memory(m, name: str, shape, depth: int, *, read_ports: int,
                   chunk_depth: int = BLOCK_RAM_WORDS, address_register: bool = False):
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
        mem = memory.Memory(shape=shape, depth=words, init=[])
        m.submodules[name if chunks == 1 else f"{name}_c{c}"] = mem
        port = mem.write_port()
        in_chunk = (write.addr >> low_bits) == c if chunks > 1 else 1
        m.d.comb += [port.addr.eq(write.addr[:low_bits]), port.data.eq(write.data),
                     port.en.eq(write.en & in_chunk)]
        for p, read in enumerate(reads):
            port = mem.read_port()
            held = Signal(shape, name=f"{name}_c{c}_rdata{p}")
            if address_register:
                address = Signal(max(low_bits, 1), name=f"{name}_c{c}_raddr{p}")
                m.d.sync += address.eq(read.addr[:low_bits])
                m.d.comb += port.addr.eq(address)
            else:
                m.d.comb += port.addr.eq(read.addr[:low_bits])
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
