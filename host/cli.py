"""The ``tiersolve`` command.

Each subcommand is a ``(setup(parser), run(args) -> int, help)`` triple: the built-in ones are in
:data:`BUILTIN`, others come from their feature modules (see :func:`_extra_commands`).
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib.metadata import PackageNotFoundError, version

__all__ = ["main", "CliError", "build_params"]


class CliError(Exception):
    """An error the command reports in one line, with exit status 2."""


def _version() -> str:
    try:
        return version("tiersolve")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "unknown"


def _parse_param(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip().replace("-", "_"), value.strip()


# -- generate --------------------------------------------------------------------------------


def _setup_generate(parser):
    parser.add_argument("unit", nargs="?", help="unit or core to generate (see --list)")
    parser.add_argument("--list", action="store_true", help="list the units and their parameters")
    parser.add_argument("--format", default="Q6.12", help="fixed-point format (default Q6.12)")
    parser.add_argument("--param", "-p", action="append", default=[], type=_parse_param,
                        metavar="NAME=VALUE", help="generator parameter (repeatable)")
    parser.add_argument("--output", "-o", default=None,
                        help="Verilog file to write (default: <unit>.v)")
    parser.add_argument("--name", default=None, help="Verilog module name (default: the unit's)")
    parser.add_argument("--bus", default=None, choices=["bytes", "uart", "axi-lite", "register"],
                        help="for the 'solver' design: the transport in front of the register "
                             "map (same as -p bus=...)")
    parser.add_argument("--board", default=None,
                        help="write the solver's complete top level and constraints for this "
                             "board into the --output folder (see `tiersolve boards`)")
    parser.add_argument("--clock-mhz", type=float, default=None, metavar="MHZ",
                        help="with --board: design clock of a board with a PLL (default: the "
                             "catalogue's): the PLL's output and the timing constraint; a UART "
                             "board needs a clock within 1 %% of a whole number of cycles per "
                             "bit")


def _run_generate(args) -> int:
    from tiersolve.gen.fixed import FixedFormat
    from tiersolve.gen.registry import get_unit, units

    if args.board:
        from tiersolve.boards.build import run_generate_command

        return run_generate_command(args)
    if args.clock_mhz is not None:
        raise CliError("--clock-mhz applies with --board only (a unit's clock is a "
                       "generator parameter in Hz: -p clock_frequency=...)")
    if args.list or not args.unit:
        for spec in units().values():
            print(f"{spec.name:12s} {spec.summary}")
            for p in spec.parameters:
                choices = f" {{{', '.join(map(str, p.choices))}}}" if p.choices else ""
                print(f"    {p.name}={p.default!s:<10}{choices}  {p.help}")
        return 0
    if args.bus:
        if args.unit != "solver":
            raise CliError("--bus applies to the 'solver' design only")
        args.param.append(("bus", args.bus))
    try:
        spec = get_unit(args.unit)
        fmt = FixedFormat.parse(args.format)
        params = build_params(spec, dict(args.param))
    except ValueError as error:
        raise CliError(str(error)) from None
    name = args.name or f"tiersolve_{spec.name}"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name):
        raise CliError(f"--name {name!r} is not a plain Verilog identifier")
    # Like amaranth.back.verilog.convert, but also for always_valid/always_ready streams.
    from tiersolve.gen.crosssim import to_verilog

    try:
        component = spec.build(fmt, **params)
    except (TypeError, ValueError) as error:  # the generator's own parameter checks
        raise CliError(f"{spec.name}: {error}") from None
    text = to_verilog(component, name)
    output = args.output or f"{spec.name}.v"
    try:
        with open(output, "w") as file:
            file.write(text)
    except OSError as error:
        raise CliError(f"cannot write {output}: {error.strerror}") from None
    print(f"wrote {output}: module {name} ({spec.name}, {fmt}, "
          + ", ".join(f"{k}={v}" for k, v in params.items()) + ")")
    return 0


def build_params(spec, given: dict[str, str]) -> dict:
    """Convert ``NAME=VALUE`` strings to the unit's parameter types, filling defaults."""
    known = {p.name: p for p in spec.parameters}
    unknown = set(given) - set(known)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(sorted(unknown))} for {spec.name}; "
            f"known: {', '.join(known) or '(none)'}"
        )
    params = {}
    for name, p in known.items():
        if name in given:
            try:
                value = p.type(given[name])
            except (TypeError, ValueError) as error:
                raise ValueError(f"parameter {name}={given[name]!r} is not a valid "
                                 f"{getattr(p.type, '__name__', p.type)}: {error}") from None
            if p.choices and value not in p.choices:
                raise ValueError(f"parameter {name}={value!r} must be one of {p.choices}")
            params[name] = value
        else:
            params[name] = p.default
    return params


def _setup_demo(parser):
    parser.add_argument("--backends", default="float64,fixed,device",
                        help="comma-separated backends to compare: float64, fixed, device "
                             "(default: all three)")
    parser.add_argument("--out", default="demo-output",
                        help="folder for the plots (default: demo-output)")
    parser.add_argument("--hidden", type=int, default=None,
                        help="lower-tier width (default: 64; with the device backend, the "
                             "device's n_max - 1, 63 for the default device)")
    parser.add_argument("--batch-size", type=int, default=25,
                        help="samples per partial_fit call (default: 25)")
    parser.add_argument("--device", default=None, metavar="URL",
                        help="device of the 'device' backend (default: a Verilator-simulated "
                             "design sized for the demo, compiled on first use: "
                             "vsim://?n_max=64&k_max=32&format=Q8.16&...)")
    parser.add_argument("--fmax-mhz", type=float, default=None,
                        help="clock for converting the device's cycles to time (default: the "
                             "Fmax of the last recorded ulx3s-85f build, else the bare "
                             "Cholesky core's 124.8 MHz)")


def _run_demo(args) -> int:
    try:
        from tiersolve.host.demo import DEFAULT_DEVICE_URL, DEFAULT_FMAX_MHZ, run_demo
        from tiersolve.host.errors import DeviceError
    except ModuleNotFoundError as error:  # scikit-learn / matplotlib missing
        raise CliError(f"the demo needs {error.name}: pip install -e '.[learn]'") from None
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends:
        raise CliError("--backends names no backend")
    unknown = sorted(set(backends) - {"float64", "fixed", "device"})
    if unknown:
        raise CliError(f"unknown backend(s) {', '.join(unknown)}; known: float64, fixed, device")
    if (args.hidden is not None and args.hidden < 1) or args.batch_size < 1:
        raise CliError("--hidden and --batch-size must be positive")
    if args.fmax_mhz is not None and not args.fmax_mhz > 0:
        raise CliError(f"--fmax-mhz must be positive, not {args.fmax_mhz}")
    if args.device is not None and "device" not in backends:
        raise CliError("--device needs 'device' in --backends")
    try:
        run_demo(backends, out=args.out,
                 hidden_layer_sizes=None if args.hidden is None else (args.hidden,),
                 batch_size=args.batch_size, device=args.device or DEFAULT_DEVICE_URL,
                 fmax_mhz=args.fmax_mhz or DEFAULT_FMAX_MHZ)
    except ValueError as error:  # a device too small for the demo, a malformed URL
        raise CliError(str(error)) from None
    except DeviceError as error:  # a port that does not open, a device that does not answer
        raise CliError(f"{args.device or DEFAULT_DEVICE_URL}: {type(error).__name__}: "
                       f"{error}") from None
    return 0


BUILTIN = {
    "generate": (_setup_generate, _run_generate, "write Verilog for a unit or core"),
    "demo": (_setup_demo, _run_demo,
             "train a two-tier network on digits: classes 0-4 in one step, 5-9 incrementally"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiersolve",
        description="Generate, simulate, build and drive tiersolve's FPGA least-squares cores.",
    )
    parser.add_argument("--version", action="version", version=f"tiersolve {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (setup, run, help_text) in {**BUILTIN, **_extra_commands()}.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        setup(p)
        p.set_defaults(_run=run)
    return parser


def _extra_commands() -> dict:
    """Subcommands defined in other modules (imported here so --help lists them)."""
    extra = {}
    from tiersolve.host.bench import COMMAND as bench_command

    extra["bench"] = bench_command
    from tiersolve.host.device import COMMANDS as device_commands

    extra.update(device_commands)
    from tiersolve.host.simserve import COMMAND as sim_serve_command

    extra["sim-serve"] = sim_serve_command
    from tiersolve.boards.build import COMMANDS as board_commands

    extra.update(board_commands)
    return extra


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return args._run(args) or 0
    except CliError as error:
        print(f"tiersolve {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tiersolve boards | head`
        sys.stdout = None
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
