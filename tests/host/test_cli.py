# amaranth: UnusedElaboratable=no
"""Tests of the ``tiersolve`` command: help, ``generate --list``, Verilog for every registered
unit (accepted by ``verilator --lint-only``), and one-line errors with exit status 2.

Most tests call :func:`tiersolve.host.cli.main` in-process (fast); one runs the installed
console script.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

import pytest
from tiersolve.gen import registry
from tiersolve.host.cli import build_parser, main

UNITS = sorted(registry.units())


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``tiersolve ARGV...`` run in-process."""
    try:
        status = main(list(argv))
    except SystemExit as exit_:  # argparse: --help, usage errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_help_lists_the_commands(capsys):
    status, out, _ = run_cli(capsys, "--help")
    assert status == 0
    assert "generate" in out and "bench" in out
    status, out, _ = run_cli(capsys)  # no command: help, success
    assert status == 0 and "usage: tiersolve" in out
    status, out, _ = run_cli(capsys, "generate", "--help")
    assert status == 0 and "--format" in out and "--param" in out


def _command_paths(parser, prefix=()):
    """Every command path of ``parser`` (``()``, ``("bench",)``, ``("bench", "build")``...)."""
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*prefix, name))


@pytest.mark.parametrize("path", [" ".join(p) for p in _command_paths(build_parser())])
def test_every_command_prints_its_help(capsys, path):
    # argparse %-formats each help line when it prints it: a bare "%" in a command's one-line
    # help (as "bench build" had) crashed the help of the command above it
    status, out, err = run_cli(capsys, *path.split(), "--help")
    assert status == 0, err
    assert out.startswith("usage: tiersolve")


def test_generate_parameters_reach_the_generators():
    """``generate`` sets what the Python constructors take: FOLD off in the QR cores, FOLD on
    in the solver design's updater, the pivot inverses' format and the Gram guard bits."""
    from tiersolve.gen.checks import silence_unused
    from tiersolve.gen.fixed import FixedFormat
    from tiersolve.gen.registry import get_unit
    from tiersolve.host.cli import build_params

    def build(spec, given):  # only inspected, never elaborated
        return silence_unused(spec.build(fmt, **build_params(spec, given)))

    fmt = FixedFormat.parse("Q8.16")
    for name in ("qr", "updater"):
        spec = get_unit(name)
        assert build(spec, {}).folds
        assert not build(spec, {"fold": "0"}).folds
    spec = get_unit("solver")
    design = build(spec, {"cores": "cholesky,updater", "updater_fold": "true",
                          "inverse_format": "Q4.20", "guard_bits": "6"})
    registers = design.registers
    assert registers.updater.folds
    assert registers.inverse_format == FixedFormat.parse("Q4.20")
    assert registers.guard_bits == 6
    plain = build(spec, {"cores": "cholesky,updater"})
    assert not plain.registers.updater.folds
    assert plain.registers.inverse_format == fmt


def test_generate_rejects_a_bad_flag(capsys, tmp_path):
    status, _, err = run_cli(capsys, "generate", "updater", "-p", "fold=maybe",
                             "-o", str(tmp_path / "u.v"))
    assert status == 2 and "fold='maybe'" in err and "0 or 1" in err
    assert not (tmp_path / "u.v").exists()


def test_units_are_registered():
    # The foundation units; later cores add to this list.
    assert {"mac", "recip", "rsqrt", "cordic"} <= set(UNITS)


def test_list_names_every_unit_and_parameter(capsys):
    status, out, _ = run_cli(capsys, "generate", "--list")
    assert status == 0
    catalogue = registry.units()
    for name, spec in catalogue.items():
        assert re.search(rf"^{re.escape(name)}\s+{re.escape(spec.summary)}$", out, re.M)
        for parameter in spec.parameters:
            assert re.search(rf"^\s+{re.escape(parameter.name)}=", out, re.M)


@pytest.mark.verilator
@pytest.mark.parametrize("unit", UNITS)
def test_generate_writes_verilog_that_verilator_accepts(capsys, tmp_path, verilator, unit):
    output = tmp_path / f"{unit}.v"
    status, out, err = run_cli(capsys, "generate", unit, "-o", str(output))
    assert status == 0, err
    assert f"wrote {output}: module tiersolve_{unit}" in out
    text = output.read_text()
    assert re.search(rf"^module tiersolve_{unit}\(", text, re.M)
    lint = verilator.run("--lint-only", "-Wno-fatal", "--top-module", f"tiersolve_{unit}",
                         output, cwd=tmp_path)
    assert lint.returncode == 0, lint.stderr[-3000:]


@pytest.mark.verilator
def test_generate_with_format_parameters_and_name(capsys, tmp_path, verilator):
    output = tmp_path / "dot.v"
    status, out, err = run_cli(capsys, "generate", "mac", "--format", "Q4.10", "-p",
                               "fmt_out=Q8.8", "--param", "guard-bits=3", "-p",
                               "rounding=truncate", "--name", "dot_product", "-o", str(output))
    assert status == 0, err
    assert "Q4.10" in out and "fmt_out=Q8.8" in out and "guard_bits=3" in out
    text = output.read_text()
    assert re.search(r"^module dot_product\(", text, re.M)
    # Operands: 2 x 14 bits plus the first/last markers; result: 16 bits plus saturated.
    assert re.search(r"input \[29:0\] i__payload;", text)
    assert re.search(r"output \[16:0\] o__payload;", text)
    lint = verilator.run("--lint-only", "-Wno-fatal", output, cwd=tmp_path)
    assert lint.returncode == 0, lint.stderr[-3000:]


def test_generate_writes_to_unit_name_by_default(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(capsys, "generate", "mac")
    assert status == 0, err
    assert (tmp_path / "mac.v").read_text().count("module tiersolve_mac(") == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["nosuch"], r"unknown unit 'nosuch'; known units: .*mac"),
    (["mac", "--format", "Q6"], r"cannot parse fixed-point format 'Q6'"),
    (["mac", "--format", "Q30.10"], r"width .* = 40 exceeds 32"),
    (["mac", "-p", "colour=red"], r"unknown parameter\(s\) colour for mac; known: .*guard_bits"),
    (["mac", "-p", "guard_bits=many"], r"parameter guard_bits='many' is not a valid"),
    (["mac", "-p", "rounding=up"], r"parameter rounding='up' must be one of"),
    (["mac", "-p", "fmt_out=Q6"], r"parameter fmt_out='Q6' is not a valid .*cannot parse"),
    (["mac", "--name", "no spaces"], r"--name 'no spaces' is not a plain Verilog identifier"),
    (["mac", "-o", "/nonexistent-folder/mac.v"], r"cannot write /nonexistent-folder/mac.v"),
], ids=["unit", "format", "wide-format", "parameter", "value", "choice", "format-value", "name",
        "output"])
def test_generate_errors_are_one_line_with_status_2(capsys, tmp_path, monkeypatch, argv,
                                                    message):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(capsys, "generate", *argv)
    assert status == 2
    assert err.startswith("tiersolve generate: error: ")
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_generator_parameter_checks_become_cli_errors(capsys, monkeypatch):
    def build(fmt, lanes=1):
        raise ValueError(f"lanes must be a power of two, not {lanes}")

    spec = registry.UnitSpec("fake", "a unit that rejects its parameters", build,
                             (registry.Parameter("lanes", int, 1, "lanes"),))
    monkeypatch.setitem(registry._UNITS, "fake", spec)
    status, _, err = run_cli(capsys, "generate", "fake", "-p", "lanes=3")
    assert status == 2
    assert err.strip() == "tiersolve generate: error: fake: lanes must be a power of two, not 3"


def test_malformed_param_is_a_usage_error(capsys):
    status, _, err = run_cli(capsys, "generate", "mac", "-p", "guard_bits")
    assert status == 2
    assert "expected NAME=VALUE, got 'guard_bits'" in err


def test_installed_console_script(tmp_path):
    script = shutil.which("tiersolve", path=os.path.dirname(sys.executable))
    script = script or shutil.which("tiersolve")
    assert script, "the tiersolve console script is not installed (pip install -e .)"
    done = subprocess.run([script, "generate", "mac", "-o", str(tmp_path / "mac.v")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "module tiersolve_mac(" in (tmp_path / "mac.v").read_text()
    failed = subprocess.run([script, "generate", "nosuch"], capture_output=True, text=True)
    assert failed.returncode == 2
    assert "unknown unit 'nosuch'" in failed.stderr
