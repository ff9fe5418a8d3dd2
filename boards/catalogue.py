"""Catalogue of the development boards tiersolve can generate, build and program.

Each :class:`Board` names an amaranth-boards platform and says how the solver design sits on it:
the design clock (the oscillator, or an on-chip PLL where the design runs at another
frequency), the UART pins of the host link, the status LEDs, the programmer, and the solver
configurations measured on it.

The catalogue module imports neither Amaranth nor amaranth-boards: the host lists boards
(``tiersolve boards``) without them. :meth:`Board.platform` imports the platform class on
demand.

Boards
------
``icebreaker``
    1BitSquared iCEBreaker, iCE40UP5K-SG48. 12 MHz oscillator, SB_PLL40_PAD to 24 MHz (an
    exact 8-cycle bit at 3 Mbaud). The Cholesky
    result buffer and the bridge's request buffer sit in SPRAM, the block RAMs hold the core.
    UART over the FTDI chip's second channel.
``ulx3s-85f``
    Radiona ULX3S with the LFE5U-85F. 25 MHz oscillator, EHXPLLL to 90 MHz (an exact 30-cycle
    bit at 3 Mbaud). UART over the FTDI chip.
``ecpix5-85f``
    LambdaConcept ECPIX-5 with the LFE5UM5G-85F (speed grade 8). 100 MHz oscillator, EHXPLLL
    to 105 MHz (an exact 35-cycle bit at 3 Mbaud; 100 MHz would be 1 % off). UART over the
    FT2232's second channel.
``arty-a7-35``
    Digilent Arty A7-35T (XC7A35T), generate only (Vivado is not open source). 100 MHz
    oscillator used directly; UART over the FTDI chip.
``nitefury``
    RHS Research Nitefury II (XC7A200T, M.2 PCIe), generate only. The AXI4-Lite design is
    written for a vendor PCIe-to-AXI bridge (Xilinx XDMA / AXI Bridge for PCI Express) in a
    Vivado block design; it runs on the bridge's AXI clock.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

__all__ = ["BOARDS", "Board", "Fit", "LedPin", "UnknownBoardError", "get_board"]


class UnknownBoardError(ValueError):
    """The board name is not in the catalogue; the message lists the known boards."""


@dataclass(frozen=True)
class LedPin:
    """One LED of a board: an amaranth-boards resource (and, for RGB LEDs, its colour).

    Attributes
    ----------
    resource : str
        Resource name (``"led"``, ``"led_g"``, ``"rgb_led"``).
    number : int
        Resource number.
    colour : str or None
        Subsignal of an RGB LED resource (``"r"``, ``"g"``, ``"b"``); None for a plain LED.
    """

    resource: str
    number: int = 0
    colour: str | None = None

    def __str__(self) -> str:
        colour = f".{self.colour}" if self.colour else ""
        return f"{self.resource}#{self.number}{colour}"


#: ``Fit.measured`` of a configuration whose build is in ``boards/measured_builds.json``: the
#: figures live there only (``tiersolve boards`` lists them), so they cannot go stale here.
RECORDED = "built, see its recorded build"


@dataclass(frozen=True)
class Fit:
    """A solver configuration on a board and what measured it.

    Attributes
    ----------
    n_max, k_max, lanes : int
        Solver configuration.
    format : str
        Data format (``tiersolve build --format``).
    measured : str
        How it is known to fit: :data:`RECORDED` (its figures are in the recorded builds,
        :mod:`tiersolve.boards.measured`) or ``"not measured"``.
    """

    n_max: int
    k_max: int
    lanes: int
    measured: str = "not measured"
    format: str = "Q6.12"

    def __str__(self) -> str:
        return (f"n_max={self.n_max} k_max={self.k_max} lanes={self.lanes} {self.format} "
                f"({self.measured})")


@dataclass(frozen=True)
class Board:
    """A development board and how the solver design is built for it.

    Attributes
    ----------
    name : str
        Catalogue name (``tiersolve build --board NAME``).
    description : str
        Board and device, for listings.
    platform_class : str
        ``"module:Class"`` of the amaranth-boards platform.
    platform_extras : tuple of str
        Attributes of the platform holding optional resources to add (the iCEBreaker's
        ``break_off_pmod``).
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"xilinx7"``.
    buildable : bool
        True when the open toolchain from PyPI (YoWASP) can make the bitstream; False for
        generate-only boards (vendor toolchain).
    oscillator_hz : int
        Frequency of the board clock the design starts from.
    clock_hz : int
        Design clock. Equal to ``oscillator_hz`` when a UART board uses no PLL; on an
        ``axi-lite`` board, the clock of the PCIe bridge's AXI side.
    pll : str or None
        ``"ecp5"`` (EHXPLLL) or ``"ice40"`` (SB_PLL40_PAD) when ``clock_hz`` differs from the
        oscillator, else None.
    bus : str
        Transport of the design: ``"uart"`` (host over a serial port) or ``"axi-lite"`` (behind
        a vendor PCIe bridge).
    uart : str or None
        amaranth-boards resource of the host UART (``"uart"``, number 0); None for ``axi-lite``.
    baud_rate : int
        UART rate the design is built for (the host must open the port at the same rate).
    leds : dict of str to LedPin
        ``"busy"``, ``"done"``, ``"error"`` -> the LED showing that flag (a missing key: the
        board has no LED to spare for it).
    programmer : tuple of str
        Command that loads a bitstream into the FPGA; ``{bitstream}`` stands for its path.
        Empty for boards programmed from the vendor tool.
    programmer_package : str
        Debian package providing the programmer.
    bitstream_suffix : str
        File ending of the bitstream the programmer takes (``.bin``, ``.bit``).
    synth_options : str
        Extra options of the Yosys ``synth_*`` command.
    spram : bool
        iCE40 UltraPlus: the design keeps its single-port buffers (the Cholesky result buffer,
        the frame bridge's request buffer) in SPRAM (``SolverDesign(spram=True)``).
    default : Fit
        Configuration built when none is given.
    largest : Fit or None
        Largest configuration measured to fit and meet timing (larger ones may fit too where
        the ``measured`` text leaves room); None when not measured.
    notes : tuple of str
        What a user should know (clocking choices, limits).
    """

    name: str
    description: str
    platform_class: str
    family: str
    buildable: bool
    oscillator_hz: int
    clock_hz: int
    pll: str | None
    bus: str
    uart: str | None
    leds: dict[str, LedPin]
    programmer: tuple[str, ...]
    programmer_package: str
    bitstream_suffix: str
    synth_options: str = ""
    spram: bool = False
    baud_rate: int = 3_000_000
    default: Fit = field(default_factory=lambda: Fit(8, 2, 1))
    largest: Fit | None = None
    notes: tuple[str, ...] = ()
    platform_extras: tuple[str, ...] = ()

    def platform(self):
        """A new instance of the board's amaranth-boards platform (with its extras added)."""
        module_name, class_name = self.platform_class.split(":")
        platform = getattr(importlib.import_module(module_name), class_name)()
        for extra in self.platform_extras:
            platform.add_resources(getattr(platform, extra))
        return platform

    @property
    def clock_mhz(self) -> float:
        return self.clock_hz / 1e6


BOARDS: dict[str, Board] = {board.name: board for board in (
    Board(
        name="icebreaker",
        description="1BitSquared iCEBreaker (iCE40UP5K-SG48)",
        platform_class="amaranth_boards.icebreaker:ICEBreakerPlatform",
        platform_extras=("break_off_pmod",),
        family="ice40",
        buildable=True,
        oscillator_hz=12_000_000,
        clock_hz=24_000_000,
        pll="ice40",
        bus="uart",
        uart="uart",
        # The main board has a red and a green LED; busy uses the snap-off PMOD's first LED.
        leds={"busy": LedPin("led_g", 1), "done": LedPin("led_g", 0),
              "error": LedPin("led_r", 0)},
        programmer=("iceprog", "{bitstream}"),
        programmer_package="fpga-icestorm",
        bitstream_suffix=".bin",
        synth_options="-dsp",
        spram=True,
        default=Fit(24, 4, 1, RECORDED),
        largest=Fit(32, 8, 1, RECORDED + "; in Q6.12 n_max=32 does not fit", format="Q4.12"),
        notes=("SB_PLL40_PAD 12 -> 24 MHz (3 Mbaud = 8 clocks per bit); Fmax is limited inside "
               "the Cholesky core",
               "SPRAM holds the Cholesky result buffer and the bridge's request buffer (4 "
               "SB_SPRAM256KA with an 18-bit format, 3 with 16 bits); block RAM holds the "
               "core's memories and limits n_max",
               "n_max = 32 needs a 16-bit format (Q4.12: 21/30 block RAMs at k_max = 8): in "
               "Q6.12 the core's memories alone take 31 block RAMs at 32/4/1 (the matrix, "
               "34-bit words stored twice for its two read ports, takes 21)"),
    ),
    Board(
        name="ulx3s-85f",
        description="Radiona ULX3S 85F (LFE5U-85F-6BG381C)",
        platform_class="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        family="ecp5",
        buildable=True,
        oscillator_hz=25_000_000,
        clock_hz=90_000_000,
        pll="ecp5",
        bus="uart",
        uart="uart",
        leds={"busy": LedPin("led", 0), "done": LedPin("led", 1), "error": LedPin("led", 2)},
        programmer=("openFPGALoader", "-b", "ulx3s", "{bitstream}"),
        programmer_package="openfpgaloader",
        bitstream_suffix=".bit",
        default=Fit(16, 4, 4, RECORDED),
        largest=Fit(128, 8, 8, RECORDED),
        notes=("EHXPLLL 25 -> 90 MHz (3 Mbaud = 30 clocks per bit; 100 MHz would make the "
               "bit 1.01 % off, the next exact clocks are 105 and 110 MHz: --clock-mhz)",),
    ),
    Board(
        name="ecpix5-85f",
        description="LambdaConcept ECPIX-5 85F (LFE5UM5G-85F-8BG554)",
        platform_class="amaranth_boards.ecpix5:ECPIX585Platform",
        family="ecp5",
        buildable=True,
        oscillator_hz=100_000_000,
        clock_hz=105_000_000,
        pll="ecp5",
        bus="uart",
        uart="uart",
        leds={"busy": LedPin("rgb_led", 0, "b"), "done": LedPin("rgb_led", 0, "g"),
              "error": LedPin("rgb_led", 0, "r")},
        programmer=("openFPGALoader", "-c", "ft2232", "{bitstream}"),
        programmer_package="openfpgaloader",
        bitstream_suffix=".bit",
        default=Fit(16, 4, 4, RECORDED),
        largest=None,
        notes=("EHXPLLL 100 -> 105 MHz (3 Mbaud = 35 clocks per bit; 100 MHz would make "
               "3 Mbaud 1 % off)",),
    ),
    Board(
        name="arty-a7-35",
        description="Digilent Arty A7-35T (XC7A35T-1LCSG324), generate only",
        platform_class="amaranth_boards.arty_a7:ArtyA7_35Platform",
        family="xilinx7",
        buildable=False,
        oscillator_hz=100_000_000,
        clock_hz=100_000_000,
        pll=None,
        bus="uart",
        uart="uart",
        leds={"busy": LedPin("led", 0), "done": LedPin("led", 1), "error": LedPin("led", 2)},
        programmer=("openFPGALoader", "-b", "arty", "{bitstream}"),
        programmer_package="openfpgaloader",
        bitstream_suffix=".bit",
        baud_rate=2_000_000,
        default=Fit(16, 4, 4),
        largest=None,
        notes=("generate only: run build_top.sh with Vivado on PATH",
               "100 MHz oscillator used directly: not timed here",
               "UART at 2 Mbaud (3 Mbaud is 1 % off at 100 MHz): open the port at 2000000"),
    ),
    Board(
        name="nitefury",
        description="RHS Research Nitefury II (XC7A200T, M.2 PCIe x4), generate only",
        platform_class="amaranth_boards.nitefury:NitefuryIIPlatform",
        family="xilinx7",
        buildable=False,
        oscillator_hz=200_000_000,
        clock_hz=125_000_000,
        pll=None,
        bus="axi-lite",
        uart=None,
        leds={},
        programmer=(),
        programmer_package="",
        bitstream_suffix=".bit",
        default=Fit(32, 8, 8),
        largest=None,
        notes=("generate only: an AXI4-Lite slave module for a Vivado block design with the "
               "XDMA / AXI Bridge for PCI Express IP; clocked by the bridge's axi_aclk "
               "(125 MHz assumed in the .xdc)",
               "program with Vivado's hardware manager or the board's flash tooling"),
    ),
)}


def get_board(name: str) -> Board:
    """The catalogue entry called ``name``.

    Raises
    ------
    UnknownBoardError
        If there is no such board; the message lists the known ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"board name must be a str, not {name!r}")
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoardError(f"unknown board {name!r}; known boards: "
                                f"{', '.join(BOARDS)}") from None
