"""``tiersolve bench arith``: latency, throughput, area and Fmax of the arithmetic units.

For each unit (multiply-accumulate; reciprocal and reciprocal square root, iterative and
pipelined; CORDIC vectoring and rotation, pipelined and iterative) and each fixed-point format:

- **measured in Amaranth simulation**: a burst of inputs is streamed in back to back with
  ``o.ready`` held high; the latency is the number of cycles from the first input transfer to
  its result, the throughput the number of results per cycle in the steady state of the burst.
  Both are compared with the unit's declared ``latency`` and ``initiation_interval``.
- **after synthesis and place-and-route** (:func:`tiersolve.boards.synth.synthesize`, ECP5-85F
  speed grade 6 out of context by default): LUTs, flip-flops, DSP multipliers and Fmax.

The table is printed as markdown and saved as ``<out>/arith.md``; everything, including the
full synthesis reports, as ``<out>/arith.json``. One progress line per unit goes to stderr.

:func:`measure_stream_timing` and :func:`random_payloads` measure any component with stream
ports ``i`` and ``o``; later core benchmarks reuse them, and :func:`write_results` for saving.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

__all__ = [
    "CASES",
    "DEFAULT_FORMATS",
    "HELP",
    "BenchCase",
    "StreamTiming",
    "add_arguments",
    "markdown_table",
    "measure_stream_timing",
    "random_payloads",
    "run",
    "select_cases",
    "write_results",
]

HELP = "latency, throughput, LUTs/FFs/DSPs and Fmax of the arithmetic units"

#: Formats measured by default: Q6.12 (18 bits, one ECP5 18x18 multiplier per product),
#: Q8.16 (24 bits), Q16.16 (32 bits).
DEFAULT_FORMATS = ("Q6.12", "Q8.16", "Q16.16")


@dataclass(frozen=True)
class BenchCase:
    """One unit configuration of the benchmark.

    Attributes
    ----------
    name : str
        Name in the table and for ``--units``.
    unit : str
        Registry name (:func:`tiersolve.gen.registry.get_unit`).
    params : dict
        Generator parameters other than the format.
    """

    name: str
    unit: str
    params: dict = field(default_factory=dict)

    def build(self, fmt):
        from tiersolve.gen.registry import get_unit

        return get_unit(self.unit).build(fmt, **self.params)


#: The units measured, in table order.
CASES = (
    BenchCase("mac", "mac"),
    BenchCase("recip-iterative", "recip", {"mode": "iterative"}),
    BenchCase("recip-pipelined", "recip", {"mode": "pipelined"}),
    BenchCase("rsqrt-iterative", "rsqrt", {"mode": "iterative"}),
    BenchCase("rsqrt-pipelined", "rsqrt", {"mode": "pipelined"}),
    BenchCase("cordic-vectoring-pipelined", "cordic", {"mode": "vectoring", "pipelined": True}),
    BenchCase("cordic-vectoring-iterative", "cordic", {"mode": "vectoring", "pipelined": False}),
    BenchCase("cordic-rotation-pipelined", "cordic", {"mode": "rotation", "pipelined": True}),
    BenchCase("cordic-rotation-iterative", "cordic", {"mode": "rotation", "pipelined": False}),
)


def select_cases(selection) -> list[BenchCase]:
    """Cases named by ``selection`` (names or prefixes: ``"cordic"`` selects all four CORDICs).

    Raises
    ------
    ValueError
        If a name matches no case.
    """
    if not selection:
        return list(CASES)
    chosen = []
    for wanted in selection:
        matches = [case for case in CASES
                   if case.name == wanted or case.name.startswith(wanted + "-")]
        if not matches:
            raise ValueError(f"unknown unit {wanted!r}; choose from "
                             f"{', '.join(case.name for case in CASES)} (or a prefix: mac, "
                             f"recip, rsqrt, cordic, cordic-vectoring, ...)")
        chosen += [case for case in matches if case not in chosen]
    return chosen


# -- measuring in simulation -----------------------------------------------------------------


@dataclass
class StreamTiming:
    """Timing of one burst through a streaming component.

    Attributes
    ----------
    latency : int
        Cycles from the first input transfer to the first output transfer: an input taken in
        cycle ``t`` has its result on ``o`` in cycle ``t + latency``.
    max_latency : int
        Largest such distance over the burst (input ``k`` to output ``k``; equal to
        ``latency`` for a unit that never stalls itself).
    initiation_interval : float
        Average cycles between consecutive results in the burst.
    results_per_cycle : float
        ``1 / initiation_interval``.
    inputs : int
        Transfers in the burst.
    cycles : int
        Cycles simulated until the last result.
    input_cycles, output_cycles : list of int
        Cycle of every input and output transfer.
    outputs : list
        The output payloads as sampled (``int`` or :class:`amaranth.lib.data.Const`).
    """

    latency: int
    max_latency: int
    initiation_interval: float
    results_per_cycle: float
    inputs: int
    cycles: int
    input_cycles: list[int]
    output_cycles: list[int]
    outputs: list = field(repr=False)

    def to_dict(self) -> dict:
        """The scalar measurements (no cycle lists, no payloads)."""
        return {"latency": self.latency, "max_latency": self.max_latency,
                "initiation_interval": self.initiation_interval,
                "results_per_cycle": self.results_per_cycle, "inputs": self.inputs,
                "cycles": self.cycles}


def random_payloads(shape, count: int, seed: int = 0) -> list:
    """``count`` random payloads of ``shape`` that every unit accepts as ordinary work.

    Signed fields get values in ``[0, max/2]`` (positive, so reciprocals and square roots are
    defined, and small enough that a CORDIC's magnitude cannot overflow); fields named
    ``first`` and ``last`` are 1 (every MAC transfer is a one-product sum with a result); other
    unsigned fields get random bits. Struct layouts give nested dicts.
    """
    from amaranth.hdl import Shape
    from amaranth.lib import data

    rng = np.random.default_rng(seed)

    def value(shape, name):
        if isinstance(shape, data.StructLayout):
            return {field_name: value(member.shape, field_name) for field_name, member in shape}
        if isinstance(shape, data.Layout):
            raise TypeError(f"random_payloads supports struct layouts only, not {shape!r}")
        shape = Shape.cast(shape)
        if name in ("first", "last"):
            return 1
        if shape.signed:
            return int(rng.integers(0, (1 << (shape.width - 2)) + 1)) if shape.width >= 2 else 0
        return int(rng.integers(0, 1 << shape.width)) if shape.width else 0

    return [value(shape, "") for _ in range(count)]


def measure_stream_timing(component, payloads=None, *, count: int = 12, seed: int = 0,
                          max_cycles: int | None = None, input_name: str = "i",
                          output_name: str = "o") -> StreamTiming:
    """Measure latency and throughput of ``component`` in the Amaranth simulator.

    The inputs are offered back to back (``valid`` high from cycle 0 until the last one is
    taken) while the output's ``ready`` is held high; the cycle of every transfer on both
    streams is recorded until as many results as inputs have come out.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        Has stream ports ``input_name`` (In) and ``output_name`` (Out), one result per input.
    payloads : list or None
        Input payloads (anything ``ctx.set`` accepts for the payload); default
        ``random_payloads(shape, count, seed)``.
    count : int
        Burst length when ``payloads`` is None (at least 2, to see the throughput).
    max_cycles : int or None
        Give up after this many cycles (default: 64 cycles per input plus 1000).

    Returns
    -------
    StreamTiming

    Raises
    ------
    TimeoutError
        If the results do not all arrive within ``max_cycles``.
    """
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    input_stream = getattr(component, input_name)
    output_stream = getattr(component, output_name)
    if payloads is None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 2:
            raise ValueError(f"count must be an integer of at least 2, not {count!r}")
        payloads = random_payloads(input_stream.payload.shape(), count, seed)
    payloads = list(payloads)
    if len(payloads) < 2:
        raise ValueError(f"a burst needs at least 2 payloads, not {len(payloads)}")
    total = len(payloads)
    limit = max_cycles if max_cycles is not None else 64 * total + 1000
    input_cycles: list[int] = []
    output_cycles: list[int] = []
    outputs: list = []

    async def testbench(ctx):
        ctx.set(output_stream.ready, 1)
        ctx.set(input_stream.payload, payloads[0])
        ctx.set(input_stream.valid, 1)
        cycle = 0
        while len(output_cycles) < total:
            if cycle >= limit:
                raise TimeoutError(
                    f"{len(output_cycles)} of {total} results after {cycle} cycles "
                    f"({len(input_cycles)} inputs taken)")
            _, _, in_valid, in_ready, out_valid, out_payload = await ctx.tick().sample(
                input_stream.valid, input_stream.ready, output_stream.valid,
                output_stream.payload)
            if in_valid and in_ready:
                input_cycles.append(cycle)
            if out_valid:
                output_cycles.append(cycle)
                outputs.append(out_payload)
            cycle += 1
            if len(input_cycles) < total:
                ctx.set(input_stream.payload, payloads[len(input_cycles)])
            else:
                ctx.set(input_stream.valid, 0)

    # A toggling register in the harness makes sure a `sync` domain exists even for a purely
    # combinational component.
    harness = Module()
    harness.submodules.component = component
    heartbeat = Signal()
    harness.d.sync += heartbeat.eq(~heartbeat)
    simulator = Simulator(harness)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()

    latencies = [out - inp for inp, out in zip(input_cycles, output_cycles, strict=True)]
    span = output_cycles[-1] - output_cycles[0]
    interval = span / (total - 1)
    return StreamTiming(
        latency=latencies[0],
        max_latency=max(latencies),
        initiation_interval=interval,
        results_per_cycle=1.0 / interval if interval else float("inf"),
        inputs=total,
        cycles=output_cycles[-1] + 1,
        input_cycles=input_cycles,
        output_cycles=output_cycles,
        outputs=outputs,
    )


# -- the benchmark ---------------------------------------------------------------------------


def add_arguments(parser) -> None:
    """Add the benchmark's options to its ``argparse`` sub-parser (``--out`` is added by
    :mod:`tiersolve.host.bench`)."""
    names = ", ".join(case.name for case in CASES)
    parser.add_argument("--units", nargs="+", default=None, metavar="UNIT",
                        help=f"units to measure, by name or prefix (default: all): {names}")
    parser.add_argument("--formats", nargs="+", default=None, metavar="FORMAT",
                        help=f"fixed-point formats (default: {' '.join(DEFAULT_FORMATS)})")
    parser.add_argument("--no-synth", action="store_true",
                        help="simulation only: skip synthesis and place-and-route")
    parser.add_argument("--target", default="ecp5-85f",
                        help="synthesis target: ecp5-85f (default) or ice40-up5k")
    parser.add_argument("--io-harness", action="store_true",
                        help="place each unit inside the serial I/O harness (always on iCE40); "
                             "on ECP5 this also times paths through the unit's ports")
    parser.add_argument("--clock-mhz", type=float, default=100.0,
                        help="clock constraint for place-and-route in MHz (default 100)")
    parser.add_argument("--burst", type=int, default=12,
                        help="inputs per simulated burst (default 12)")
    parser.add_argument("--keep-builds", action="store_true",
                        help="keep each unit's synthesis folder under <out>/arith-builds/")


def _split(values) -> list[str]:
    """Accept both ``--units a b`` and ``--units a,b``."""
    return [item for value in values or () for item in value.split(",") if item]


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args) -> int:
    """Run the benchmark for the parsed ``args``; print the table and save the results.

    Returns 0, or 1 when some unit failed to build, simulate or synthesise (the failures are in
    the table's notes and the JSON). Bad options raise :class:`tiersolve.host.cli.CliError`.
    """
    from tiersolve.boards.synth import TARGETS, SynthesisError, find_tool
    from tiersolve.gen.fixed import FixedFormat
    from tiersolve.host.cli import CliError

    try:
        cases = select_cases(_split(args.units))
        formats = [FixedFormat.parse(text) for text in (_split(args.formats) or DEFAULT_FORMATS)]
    except ValueError as error:
        raise CliError(str(error)) from None
    if args.burst < 2:
        raise CliError(f"--burst must be at least 2, not {args.burst}")
    synth = not args.no_synth
    if synth:
        if args.target not in TARGETS:
            raise CliError(f"unknown target {args.target!r}; known targets: {', '.join(TARGETS)}")
        try:
            find_tool("yosys")
            find_tool(TARGETS[args.target].nextpnr)
        except SynthesisError as error:
            raise CliError(f"{error} (or run with --no-synth)") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    harness = args.io_harness or not args.target.startswith("ecp5")
    meta = {"target": args.target if synth else None, "clock_mhz": args.clock_mhz,
            "io_harness": harness if synth else None, "burst": args.burst}
    records = []
    jobs = [(case, fmt) for case in cases for fmt in formats]
    for index, (case, fmt) in enumerate(jobs, 1):
        start = time.monotonic()
        record, line = _measure_case(case, fmt, args, out, synth)
        record["seconds"] = round(time.monotonic() - start, 2)
        records.append(record)
        _progress(f"[{index}/{len(jobs)}] {case.name} {fmt}: {line} ({record['seconds']:.1f} s)")
        # Save as we go: a long run that is interrupted keeps the units it finished.
        write_results(out, "arith", records, markdown_table(
            records, synth=synth, target=args.target, clock_mhz=args.clock_mhz,
            io_harness=harness), meta)

    table = markdown_table(records, synth=synth, target=args.target, clock_mhz=args.clock_mhz,
                           io_harness=harness)
    print(table)
    paths = write_results(out, "arith", records, table, meta)
    print(f"saved {', '.join(str(path) for path in paths)}")
    return 1 if any(record["error"] for record in records) else 0


def _measure_case(case: BenchCase, fmt, args, out: Path, synth: bool) -> tuple[dict, str]:
    """Simulate (and synthesise) one unit; return its record and a progress line.

    A unit that fails to build, simulate or synthesise gets its error recorded instead of
    stopping the benchmark.
    """
    from tiersolve.boards.synth import SynthesisError, synthesize

    record = {"unit": case.name, "registry_unit": case.unit, "params": case.params,
              "format": str(fmt), "width": fmt.width, "error": None, "simulation": None,
              "synthesis": None}
    try:
        component = case.build(fmt)
        record["declared_latency"] = component.latency
        record["declared_initiation_interval"] = component.initiation_interval
        timing = measure_stream_timing(component, count=args.burst)
    except Exception as error:  # one broken unit must not stop the others
        record["error"] = f"simulation failed: {type(error).__name__}: {error}"
        return record, record["error"]
    record["simulation"] = timing.to_dict()
    line = (f"latency {timing.latency}, {_rate_text(timing.initiation_interval)} "
            f"results/cycle")
    if not synth:
        return record, line
    workdir = out / "arith-builds" / f"{case.name}-{fmt}" if args.keep_builds else None
    try:
        report = synthesize(case.build(fmt), target=args.target,
                            top=f"tiersolve_{case.name.replace('-', '_')}", workdir=workdir,
                            clock_mhz=args.clock_mhz, io_harness=args.io_harness or None)
    except SynthesisError as error:
        record["error"] = f"synthesis failed: {str(error).splitlines()[0]}"
        return record, f"{line}; {record['error']}"
    record["synthesis"] = report.to_dict()
    fmax = "no clock" if report.fmax_mhz is None else f"Fmax {report.fmax_mhz:.1f} MHz"
    return record, (f"{line}; {report.luts.used} LUTs, {report.ffs.used} FFs, "
                    f"{report.dsps.used} DSPs, {fmax}")


def markdown_table(records, *, synth: bool = True, target: str = "ecp5-85f",
                   clock_mhz: float = 100.0, io_harness: bool = False) -> str:
    """The benchmark's markdown table (one row per unit and format)."""
    header = ["unit", "format", "latency (cycles)", "results/cycle"]
    if synth:
        header += ["LUTs", "FFs", "DSPs", "Fmax (MHz)", "Mresults/s"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(" --- " if i < 2 else " ---: " for i in range(len(header))) + "|"]
    mismatches = False
    for record in records:
        row = [record["unit"], record["format"]]
        simulation = record.get("simulation")
        if simulation is None:
            row += ["—"] * (len(header) - 2)
            lines.append("| " + " | ".join(row) + " |")
            continue
        latency = str(simulation["latency"])
        if simulation["latency"] != record["declared_latency"] or \
                simulation["max_latency"] != simulation["latency"]:
            latency += f" (declared {record['declared_latency']})†"
            mismatches = True
        rate = _rate_text(simulation["initiation_interval"])
        if abs(simulation["initiation_interval"] - record["declared_initiation_interval"]) > 1e-9:
            rate += f" (declared 1/{record['declared_initiation_interval']})†"
            mismatches = True
        row += [latency, rate]
        if synth:
            report = record.get("synthesis")
            if report is None:
                row += ["failed"] + [""] * 4
            else:
                fmax = report["fmax_mhz"]
                row += [str(report["luts"]["used"]), str(report["ffs"]["used"]),
                        str(report["dsps"]["used"]),
                        "—" if fmax is None else f"{fmax:.1f}",
                        "—" if fmax is None else f"{fmax * simulation['results_per_cycle']:.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    notes = ["", "Latency and results/cycle measured in Amaranth simulation (burst of inputs, "
             "output always ready)."]
    if synth:
        notes.append(f"Area and Fmax after place-and-route on {target} "
                     f"({'in an I/O harness' if io_harness else 'out of context'}"
                     f", constraint {clock_mhz:g} MHz); Mresults/s = Fmax × results/cycle.")
        if target.startswith("ice40"):
            notes.append("LUTs are iCE40 logic cells (LUT4 + carry + flip-flop).")
        if io_harness:
            notes.append("FFs include the I/O harness's flip-flops, one per port bit "
                         "(io_harness_ffs in the JSON).")
    if mismatches:
        notes.append("† the measurement differs from the unit's declared latency / "
                     "initiation interval.")
    failures = [record for record in records if record.get("error")]
    for record in failures:
        notes.append(f"{record['unit']} {record['format']}: {record['error']}")
    return "\n".join(lines + notes) + "\n"


def _rate_text(interval: float) -> str:
    """``"1"``, ``"1/18"`` for whole initiation intervals, else a decimal."""
    if abs(interval - round(interval)) < 1e-9 and round(interval) >= 1:
        return "1" if round(interval) == 1 else f"1/{round(interval)}"
    return f"{1 / interval:.3g}"


def write_results(out, name: str, records, table: str | None = None, meta=None) -> list[Path]:
    """Save ``<out>/<name>.json`` (records plus environment) and ``<out>/<name>.md`` (table)."""
    from importlib.metadata import PackageNotFoundError, version

    def package_version(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "tiersolve": package_version("tiersolve"),
            "amaranth": package_version("amaranth"),
        },
        **(meta or {}),
        "results": records,
    }
    json_path = out / f"{name}.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    paths = [json_path]
    if table is not None:
        md_path = out / f"{name}.md"
        md_path.write_text(table)
        paths.append(md_path)
    return paths
