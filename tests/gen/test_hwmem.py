"""gen/hwmem.py: a chunked memory reads back what was written, two cycles after the address
(three with the address registered)."""

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from tiersolve.gen.hwmem import chunked_memory
from tiersolve.gen.sim import run_simulation


@pytest.mark.parametrize("address_register", [False, True])
@pytest.mark.parametrize(("depth", "chunk_depth"), [(13, 4), (16, 4), (5, 8), (40, 16)])
def test_chunked_memory_reads_what_was_written(depth, chunk_depth, address_register):
    m = Module()
    reads, write = chunked_memory(m, "mem", signed(12), depth, read_ports=2,
                                  chunk_depth=chunk_depth, address_register=address_register)
    latency = 3 if address_register else 2
    rng = np.random.default_rng(depth * 31 + chunk_depth)
    words = rng.integers(-2048, 2048, depth)
    # port 0 reads in address order, port 1 in a random order, one address a cycle
    orders = [np.arange(depth), rng.permutation(depth)]
    seen = [[], []]

    async def bench(ctx):
        for address, word in enumerate(words):
            ctx.set(write.addr, address)
            ctx.set(write.data, int(word))
            ctx.set(write.en, 1)
            await ctx.tick()
        ctx.set(write.en, 0)
        for cycle in range(depth + latency):
            for port in range(2):
                if cycle >= latency:  # the word of the address driven `latency` cycles ago
                    seen[port].append(ctx.get(reads[port].data))
                if cycle < depth:
                    ctx.set(reads[port].addr, int(orders[port][cycle]))
            await ctx.tick()

    run_simulation(m, bench)
    for port in range(2):
        assert seen[port] == [int(words[a]) for a in orders[port]]


def test_chunk_depth_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        chunked_memory(Module(), "mem", 8, 10, read_ports=1, chunk_depth=6)
