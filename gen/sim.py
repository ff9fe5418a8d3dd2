"""Simulation helpers shared by the tests, the benchmarks and the simulated device.

Testbenches are ``async`` functions run with :meth:`amaranth.sim.Simulator.add_testbench`.
:func:`stream_put` and :func:`stream_get` move one transfer over a :mod:`amaranth.lib.stream`
interface, honouring valid/ready exactly as a real producer or consumer would.
"""

from __future__ import annotations

from amaranth.sim import Simulator

__all__ = ["run_simulation", "stream_get", "stream_put"]


async def stream_put(ctx, stream, payload) -> None:
    """Offer ``payload`` on ``stream`` and wait until it is taken (valid held until ready)."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Accept one transfer from ``stream`` and return its payload."""
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def run_simulation(dut, *testbenches, processes=(), clock_period=1e-8, vcd=None,
                   deadline=None) -> Simulator:
    """Simulate ``dut`` with a clock on the ``sync`` domain until all testbenches return.

    Parameters
    ----------
    dut : Elaboratable
    *testbenches : async callables taking ``ctx``
    processes : iterable of async callables, run as background processes
    vcd : str or None
        Write a VCD trace to this path.
    deadline : float or None
        Simulated time in seconds after which to stop (guards against a hung design).
    """
    sim = Simulator(dut)
    sim.add_clock(clock_period)
    for bench in testbenches:
        sim.add_testbench(bench)
    for process in processes:
        sim.add_process(process)
    if deadline is not None:
        async def watchdog(ctx):
            await ctx.delay(deadline)
            raise TimeoutError(f"simulation still running after {deadline} s of simulated time")

        sim.add_process(watchdog)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return sim
