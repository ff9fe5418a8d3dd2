# amaranth: UnusedElaboratable=no
"""Tests of the Verilator cross-simulation harness (:mod:`tiersolve.gen.crosssim`).

First the harness itself, on a small component written here (wide payloads above 64 bits, a
layout payload, an array of ``always_ready`` streams, plain ports, a switch that breaks the
stream rules on purpose); then the arithmetic units' generated Verilog against their bit-exact
NumPy models, with random input gaps and random output backpressure.

Each design is built once per module (module-scoped fixtures) and cached on disk by the
harness, so a second run of this file skips the C++ compilation.
"""

# No "from __future__ import annotations": Struct and Component annotations must be shapes.

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from tiersolve.gen.crosssim import (
    CrossSimulationBuildError,
    CrossSimulationTimeout,
    StreamProtocolError,
    VerilatorSimulation,
    describe_ports,
    pack_payload,
    to_verilog,
    unpack_payload,
)

# -- a component to test the harness with ---------------------------------------------------

VALUE_WIDTH = 70  # wider than 64 bits: Verilator passes it as VlWide
SUM_WIDTH = 72


class RunningSum(wiring.Component):
    """Adds every input value (plus ``offset``) to a running sum and emits the sum.

    Members
    -------
    i : ``In(stream.Signature({"value": signed(70), "tag": unsigned(5)}))``
    o : ``Out(stream.Signature({"sum": signed(72), "tag": unsigned(5), "index": unsigned(16)}))``
        One output per input, one cycle later (93-bit payload); the sum wraps at 72 bits.
    tags : ``Out(stream.Signature(unsigned(5), always_ready=True)).array(2)``
        The tag of each accepted input, on ``tags[tag % 2]``, one cycle later.
    offset : ``In(signed(8), init=3)``
    misbehave : ``In(1)``
        When 1, ``o.valid`` falls after one cycle even if the payload was not taken (a broken
        producer, for the protocol check).
    accepted : ``Out(32)``
        Inputs accepted so far.

    Timing: ``i.ready = ~o.valid | o.ready``; latency 1.
    """

    def __init__(self):
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "value": signed(VALUE_WIDTH), "tag": unsigned(5)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "sum": signed(SUM_WIDTH), "tag": unsigned(5), "index": unsigned(16)}))),
            "tags": Out(stream.Signature(unsigned(5), always_ready=True)).array(2),
            "offset": In(signed(8), init=3),
            "misbehave": In(1),
            "accepted": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        total = Signal(signed(SUM_WIDTH))
        new_total = Signal(signed(SUM_WIDTH))
        m.d.comb += [
            self.i.ready.eq(~self.o.valid | self.o.ready),
            new_total.eq(total + self.i.payload.value + self.offset),
        ]
        take = self.i.valid & self.i.ready
        with m.If(take):
            m.d.sync += [
                total.eq(new_total),
                self.o.valid.eq(1),
                self.o.payload.sum.eq(new_total),
                self.o.payload.tag.eq(self.i.payload.tag),
                self.o.payload.index.eq(self.accepted),
                self.accepted.eq(self.accepted + 1),
            ]
        with m.Elif(self.o.ready | self.misbehave):
            m.d.sync += self.o.valid.eq(0)
        for parity in range(2):
            m.d.sync += [
                self.tags[parity].valid.eq(take & (self.i.payload.tag[0] == parity)),
                self.tags[parity].payload.eq(self.i.payload.tag),
            ]
        return m


def running_sum_reference(values, tags, offset=3):
    """What :class:`RunningSum` emits on ``o`` (as dicts) and on ``tags``."""
    total, outputs = 0, []
    modulus = 1 << SUM_WIDTH
    for index, (value, tag) in enumerate(zip(values, tags, strict=True)):
        total = (total + value + offset) % modulus
        if total >= modulus // 2:
            total -= modulus
        outputs.append({"sum": total, "tag": tag, "index": index % (1 << 16)})
    return outputs, [t for t in tags if t % 2 == 0], [t for t in tags if t % 2 == 1]


def random_inputs(seed, count):
    rng = np.random.default_rng(seed)
    low, high = -(1 << (VALUE_WIDTH - 1)), (1 << (VALUE_WIDTH - 1)) - 1
    values = [int(v) << 40 | int(w) for v, w in
              zip(rng.integers(low >> 40, (high >> 40) + 1, count), rng.integers(0, 1 << 40, count),
                  strict=True)]
    edges = [low, high, -1, 0][:count]  # extremes: the sum wraps at 72 bits soon
    values[:len(edges)] = edges
    tags = [int(t) for t in rng.integers(0, 32, count)]
    return values, tags


def as_payloads(values, tags):
    return [{"value": v, "tag": t} for v, t in zip(values, tags, strict=True)]


# -- payload packing (no Verilator) ----------------------------------------------------------


class Pair(data.Struct):
    low: unsigned(3)
    high: signed(5)


def test_pack_unpack_plain_shapes():
    assert pack_payload(signed(8), -1) == 0xFF
    assert pack_payload(signed(8), 127) == 127
    assert pack_payload(unsigned(8), 255) == 255
    assert pack_payload(signed(100), -(1 << 99)) == 1 << 99
    assert unpack_payload(signed(8), 0xFF) == -1
    assert unpack_payload(unsigned(8), 0xFF) == 255
    assert unpack_payload(signed(100), 1 << 99) == -(1 << 99)
    assert pack_payload(signed(8), np.int64(-2)) == 0xFE
    with pytest.raises(ValueError, match=r"does not fit in 8 bits .*: expected -128 \.\. 127"):
        pack_payload(signed(8), 128)
    with pytest.raises(ValueError, match=r"does not fit in 8 bits .*: expected 0 \.\. 255"):
        pack_payload(unsigned(8), -1)
    with pytest.raises(TypeError, match="give an integer"):
        pack_payload(signed(8), {"x": 1})


def test_pack_unpack_layouts():
    layout = data.StructLayout({"a": signed(4), "pair": Pair, "flags": data.ArrayLayout(1, 3)})
    value = {"a": -3, "pair": {"low": 5, "high": -16}, "flags": [1, 0, 1]}
    bits = pack_payload(layout, value)
    # a at bits 0-3, pair.low at 4-6, pair.high at 7-11, flags at 12-14.
    assert bits == (0b1101 | 5 << 4 | 0b10000 << 7 | 0b101 << 12)
    assert unpack_payload(layout, bits) == value
    assert unpack_payload(Pair, pack_payload(Pair, {"high": -1})) == {"low": 0, "high": -1}
    assert pack_payload(layout, layout.const(value)) == bits  # a data.Const passes through
    with pytest.raises(ValueError, match="field 'b' is not part of the layout"):
        pack_payload(layout, {"b": 1})
    with pytest.raises(ValueError, match="does not fit in 4 bits"):
        pack_payload(layout, {"a": 8})
    # A nested layout field also takes its bit pattern as an integer.
    assert pack_payload(layout, {"a": -3, "pair": 5 | 0b10000 << 3, "flags": 0b101}) == bits


# -- port discovery (no Verilator) -----------------------------------------------------------


def test_describe_ports_follows_the_signature():
    ports = describe_ports(RunningSum())
    assert [(s.name, s.width, s.direction) for s in ports.input_streams] == [
        ("i", VALUE_WIDTH + 5, "in")]
    assert [(s.name, s.width, s.always_ready) for s in ports.output_streams] == [
        ("o", SUM_WIDTH + 21, False), ("tags__0", 5, True), ("tags__1", 5, True)]
    assert [(p.name, p.width, p.init) for p in ports.inputs] == [
        ("offset", 8, 3), ("misbehave", 1, 0)]
    assert [p.name for p in ports.outputs] == ["accepted"]
    assert "tags__0__ready" not in ports.verilog_ports  # a constant, not a port


def test_to_verilog_accepts_constant_stream_members():
    # Amaranth's own convert rejects the constant ready of an always_ready stream ...
    with pytest.raises(TypeError, match="Only signals"):
        verilog.convert(RunningSum(), name="running_sum")
    # ... to_verilog leaves it out and names the rest as Amaranth does.
    text = to_verilog(RunningSum(), "running_sum")
    header = text[text.index("module running_sum("):].split(";")[0]
    for port in ("i__payload", "i__valid", "i__ready", "o__payload", "tags__0__valid",
                 "tags__1__payload", "offset", "accepted", "clk", "rst"):
        assert port in header
    assert "tags__0__ready" not in header


def test_describe_ports_rejects_a_plain_elaboratable():
    with pytest.raises(TypeError, match="wiring.Component"):
        describe_ports(Module())


# -- the harness on RunningSum ---------------------------------------------------------------


@pytest.fixture(scope="module")
def running_sum(verilator):
    return VerilatorSimulation(RunningSum(), top="running_sum")


@pytest.mark.verilator
def test_outputs_and_latency_with_ready_always_high(running_sum):
    values, tags = random_inputs(1, 300)
    result = running_sum.run({"i": as_payloads(values, tags)}, {"o": 300})
    expected, even, odd = running_sum_reference(values, tags)
    assert result.values("o") == expected
    assert result.values("tags__0") == even
    assert result.values("tags__1") == odd
    assert result.latencies("i", "o") == [1] * 300
    assert result.input_cycles["i"] == list(range(300))  # no stall: one input per cycle
    assert result.cycles == 301
    assert result.port_value("accepted") == 300
    assert result.accepted == {"i": 300}


@pytest.mark.verilator
def test_outputs_under_random_backpressure_and_input_gaps(running_sum):
    values, tags = random_inputs(2, 500)
    expected, _, _ = running_sum_reference(values, tags)
    runs = [running_sum.run({"i": as_payloads(values, tags)}, {"o": 500}, ready_seed=seed,
                            ready_probability=0.4, valid_seed=seed + 100, valid_probability=0.6)
            for seed in (11, 11, 12)]
    for result in runs:
        assert result.values("o") == expected
        assert result.protocol_violations == {}
        latencies = result.latencies("i", "o")
        assert min(latencies) == 1 and max(latencies) > 1  # some outputs had to wait
        assert result.cycles > 500 / 0.4 * 0.8  # ready is high only 40 % of the cycles
    assert runs[0].output_cycles == runs[1].output_cycles  # same seeds, same pattern
    assert runs[0].output_cycles != runs[2].output_cycles


@pytest.mark.verilator
def test_plain_ports_and_extra_cycles(running_sum):
    values, tags = random_inputs(3, 50)
    result = running_sum.run({"i": as_payloads(values, tags)}, {"o": 50}, ports={"offset": -7},
                             extra_cycles=20)
    expected, _, _ = running_sum_reference(values, tags, offset=-7)
    assert result.values("o") == expected  # nothing more came out in the extra cycles
    assert result.cycles == 51 + 20
    assert result.ports_out == {"accepted": 50}


@pytest.mark.verilator
def test_without_expect_the_run_drains_the_inputs(running_sum):
    values, tags = random_inputs(4, 40)
    result = running_sum.run({"i": as_payloads(values, tags)}, ready_seed=5)
    assert result.accepted == {"i": 40}
    assert result.port_value("accepted") == 40


@pytest.mark.verilator
def test_timeout_names_the_stream_that_fell_short(running_sum):
    values, tags = random_inputs(5, 3)
    with pytest.raises(CrossSimulationTimeout, match="o delivered 3 of 5") as caught:
        running_sum.run({"i": as_payloads(values, tags)}, {"o": 5}, max_cycles=100)
    assert len(caught.value.result.outputs["o"]) == 3
    assert caught.value.result.cycles == 100
    with pytest.raises(CrossSimulationTimeout, match="i has 7 of 10 payloads not accepted"):
        values, tags = random_inputs(6, 10)
        running_sum.run({"i": as_payloads(values, tags)}, {"o": 10}, max_cycles=3)


@pytest.mark.verilator
def test_protocol_check_catches_a_producer_that_drops_valid(running_sum):
    values, tags = random_inputs(7, 100)
    stimulus = {"i": as_payloads(values, tags)}
    # Always ready: dropping valid after one cycle is harmless.
    running_sum.run(stimulus, {"o": 100}, ports={"misbehave": 1})
    with pytest.raises(StreamProtocolError, match="dropped valid or changed its payload"):
        running_sum.run(stimulus, ports={"misbehave": 1}, ready_seed=1)
    result = running_sum.run(stimulus, ports={"misbehave": 1}, ready_seed=1,
                             check_protocol=False)
    count, first_cycle = result.protocol_violations["o"]
    assert count > 0 and first_cycle >= 1
    assert len(result.outputs["o"]) < 100  # the dropped payloads are lost


@pytest.mark.verilator
def test_run_rejects_bad_arguments(running_sum):
    with pytest.raises(ValueError, match="unknown input stream.* x; known: i"):
        running_sum.run({"x": [1]})
    with pytest.raises(ValueError, match="unknown output stream"):
        running_sum.run(expect={"i": 1})
    with pytest.raises(ValueError, match="unknown input port"):
        running_sum.run(ports={"accepted": 1})
    with pytest.raises(ValueError, match="stream i: .*does not fit in 75 bits"):
        running_sum.run({"i": [1 << 75]})
    with pytest.raises(ValueError, match="ready_probability"):
        running_sum.run(ready_seed=1, ready_probability=0)
    with pytest.raises(ValueError, match="trace=True"):
        running_sum.run(vcd="x.vcd")


@pytest.mark.verilator
def test_second_simulation_of_the_same_design_reuses_the_build(running_sum):
    again = VerilatorSimulation(RunningSum(), top="running_sum", log=None)
    assert again.build_dir == running_sum.build_dir
    assert again.build_seconds is None


def test_constructor_rejects_bad_parameters():
    with pytest.raises(ValueError, match="top must be a plain Verilog identifier"):
        VerilatorSimulation(RunningSum(), top="no spaces")
    with pytest.raises(ValueError, match="build_jobs"):
        VerilatorSimulation(RunningSum(), top="t", build_jobs=0)


class Swap(wiring.Component):
    """A purely combinational stream (no clock): swaps the halves of a 128-bit payload."""

    i: In(stream.Signature(128))
    o: Out(stream.Signature(128))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.i.ready.eq(self.o.ready),
            self.o.payload.eq(self.i.payload.rotate_left(64)),
        ]
        return m


@pytest.mark.verilator
@pytest.mark.slow  # one more build for a rare case; RunningSum covers the rest
def test_combinational_design_without_clock(verilator):
    sim = VerilatorSimulation(Swap(), top="swap")
    payloads = [(1 << 127) | 5, (1 << 64) - 1, 3 << 63]
    result = sim.run({"i": payloads}, {"o": 3}, ready_seed=3, valid_seed=4)
    swapped = [((p << 64) | (p >> 64)) & ((1 << 128) - 1) for p in payloads]
    assert result.outputs["o"] == swapped
    assert result.latencies("i", "o") == [0, 0, 0]


# -- multiply-accumulate against its model ---------------------------------------------------

MAC_CONFIGS = {
    # The registry's default: Q6.12 operands and result, 8 guard bits, round to nearest even.
    "q6.12": dict(fmt_a="Q6.12", fmt_b=None, fmt_out=None, guard_bits=8,
                  rounding="nearest-even"),
    # Mixed formats, a narrow result and no guard bits: the accumulator and the output clip.
    "mixed-clipping": dict(fmt_a="Q4.10", fmt_b="Q9.7", fmt_out="Q3.5", guard_bits=0,
                           rounding="nearest-up"),
}


@pytest.fixture(scope="module", params=list(MAC_CONFIGS))
def mac(request, verilator):
    """``(unit, parameters, simulation)`` for one of :data:`MAC_CONFIGS`."""
    mac_module = pytest.importorskip("tiersolve.gen.mac")
    from tiersolve.gen.mac_model import check_mac_parameters

    config = MAC_CONFIGS[request.param]
    unit = mac_module.MultiplyAccumulate(**config)
    return unit, check_mac_parameters(**config), VerilatorSimulation(unit, top="mac")


def mac_stimulus(rng, params, count):
    """Random transfers: well-formed vectors, then markers at random (running sums, sums that
    continue past ``last``, transfers before any ``first``), operands of mixed magnitudes."""
    fmt_a, fmt_b = params.fmt_a, params.fmt_b
    a = rng.integers(fmt_a.min_int, fmt_a.max_int + 1, count)
    b = rng.integers(fmt_b.min_int, fmt_b.max_int + 1, count)
    small = rng.random(count) < 0.3
    a[small] >>= fmt_a.width // 2
    extremes = rng.random(count) < 0.1
    a[extremes] = rng.choice([fmt_a.min_int, fmt_a.max_int], int(extremes.sum()))
    b[extremes] = rng.choice([fmt_b.min_int, fmt_b.max_int], int(extremes.sum()))
    first = np.zeros(count, dtype=bool)
    last = np.zeros(count, dtype=bool)
    position = 0
    while position < count // 2:
        length = int(rng.integers(1, 24))
        first[position] = True
        last[min(position + length, count // 2) - 1] = True
        position += length
    first[count // 2:] = rng.random(count - count // 2) < 0.2
    last[count // 2:] = rng.random(count - count // 2) < 0.3
    first[0] = False  # the very first sum starts from the reset value, zero
    last[-1] = True
    return a, b, first, last


def mac_payloads(a, b, first, last):
    return [{"a": int(x), "b": int(y), "first": int(f), "last": int(e)}
            for x, y, f, e in zip(a, b, first, last, strict=True)]


@pytest.mark.verilator
def test_mac_matches_model_under_backpressure(mac):
    from tiersolve.gen.mac_model import mac_model

    unit, params, sim = mac
    rng = np.random.default_rng(2024)
    a, b, first, last = mac_stimulus(rng, params, 4000)
    model = mac_model(a, b, first, last, *params)
    results = int(last.sum())
    for seed in (1, 2):
        result = sim.run({"i": mac_payloads(a, b, first, last)}, {"o": results},
                         ready_seed=seed, ready_probability=0.7, valid_seed=seed,
                         valid_probability=0.8)
        got = result.values("o")
        assert [g["value"] for g in got] == model.values.tolist()
        assert [bool(g["saturated"]) for g in got] == model.saturated.tolist()
        assert result.port_value("saturated_sticky") == int(model.saturated.any())
    assert model.saturated.any() and not model.saturated.all()  # both paths were exercised


@pytest.mark.verilator
def test_mac_latency_and_throughput(mac):
    from tiersolve.gen.mac_model import mac_model

    unit, params, sim = mac
    rng = np.random.default_rng(7)
    a, b, first, last = mac_stimulus(rng, params, 600)
    model = mac_model(a, b, first, last, *params)
    result = sim.run({"i": mac_payloads(a, b, first, last)}, {"o": int(last.sum())},
                     ports={"clear": 1}, extra_cycles=2)
    assert [g["value"] for g in result.values("o")] == model.values.tolist()
    last_cycles = [c for c, is_last in zip(result.input_cycles["i"], last, strict=True)
                   if is_last]
    latencies = [o - i for i, o in zip(last_cycles, result.output_cycles["o"], strict=True)]
    assert latencies == [unit.latency] * len(latencies)
    assert result.input_cycles["i"] == list(range(600))  # initiation interval 1
    assert result.port_value("saturated_sticky") == 0  # clear held high


# -- reciprocal and reciprocal square root against their models ------------------------------

RECIP_CONFIGS = {
    "rsqrt-iterative-q6.12": dict(fmt_in="Q6.12", fmt_out="Q6.12", function="rsqrt",
                                  mode="iterative"),
    "recip-pipelined-q8.8-to-q4.14": dict(fmt_in="Q8.8", fmt_out="Q4.14", function="recip",
                                          mode="pipelined"),
}


@pytest.fixture(scope="module", params=[
    "rsqrt-iterative-q6.12",
    pytest.param("recip-pipelined-q8.8-to-q4.14", marks=pytest.mark.slow),  # a longer build
])
def recip(request, verilator):
    """``(unit, model function, simulation)`` for one of :data:`RECIP_CONFIGS`."""
    recip_module = pytest.importorskip("tiersolve.gen.recip")
    from tiersolve.gen import recip_model

    unit = recip_module.ReciprocalUnit(**RECIP_CONFIGS[request.param])
    model = recip_model.rsqrt_model if unit.function == "rsqrt" else recip_model.reciprocal_model
    return unit, model, VerilatorSimulation(unit, top="recip")


def spread_integers(rng, fmt, count):
    """Stored integers of ``fmt`` with log-uniform magnitudes and both signs, plus the edges
    (zero, +-1, the extremes, powers of two)."""
    magnitudes = np.exp2(rng.uniform(0, fmt.width - 1, count)).astype(np.int64)
    values = np.clip(magnitudes * rng.choice([-1, 1], count), fmt.min_int, fmt.max_int)
    edges = [0, 1, -1, fmt.min_int, fmt.max_int, fmt.max_int - 1]
    edges += [1 << k for k in range(fmt.width - 1)]
    return np.concatenate([edges, values]).astype(np.int64)


@pytest.mark.verilator
def test_recip_matches_model_under_backpressure(recip):
    unit, model, sim = recip
    x = spread_integers(np.random.default_rng(31), unit.fmt_in, 1500)
    expected = model(x, unit.fmt_in, unit.fmt_out)
    result = sim.run({"i": x.tolist()}, {"o": len(x)}, ready_seed=8, ready_probability=0.6,
                     valid_seed=9, valid_probability=0.7)
    got = result.values("o")
    assert [g["value"] for g in got] == expected.y.tolist()
    assert [bool(g["invalid"]) for g in got] == expected.invalid.tolist()
    assert [bool(g["saturated"]) for g in got] == expected.saturated.tolist()
    assert expected.invalid.any() and expected.saturated.any()


@pytest.mark.verilator
def test_recip_latency_and_initiation_interval(recip):
    unit, model, sim = recip
    x = spread_integers(np.random.default_rng(32), unit.fmt_in, 50)
    result = sim.run({"i": x.tolist()}, {"o": len(x)})
    expected = model(x, unit.fmt_in, unit.fmt_out)
    assert [g["value"] for g in result.values("o")] == expected.y.tolist()
    assert result.latencies("i", "o") == [unit.latency] * len(x)
    spacing = np.diff(result.input_cycles["i"])
    assert spacing.tolist() == [unit.initiation_interval] * (len(x) - 1)


# -- CORDIC against its model ----------------------------------------------------------------

CORDIC_CONFIGS = {
    "vectoring-pipelined-q6.12": dict(fmt="Q6.12", mode="vectoring", pipelined=True),
    "rotation-iterative-q4.12-raw": dict(fmt="Q4.12", iterations=12, mode="rotation",
                                         pipelined=False, compensate_gain=False),
}


@pytest.fixture(scope="module", params=[
    "vectoring-pipelined-q6.12",
    pytest.param("rotation-iterative-q4.12-raw", marks=pytest.mark.slow),  # a longer build
])
def cordic(request, verilator):
    """``(unit, simulation)`` for one of :data:`CORDIC_CONFIGS`."""
    cordic_module = pytest.importorskip("tiersolve.gen.cordic")
    from tiersolve.gen.fixed import FixedFormat

    config = dict(CORDIC_CONFIGS[request.param])
    config["fmt"] = FixedFormat.parse(config["fmt"])
    unit = cordic_module.Cordic(**config)
    return unit, VerilatorSimulation(unit, top="cordic")


def cordic_stimulus(rng, unit, count):
    """Payloads and the model's expected outputs (as the output layout's dicts)."""
    from tiersolve.gen import cordic_model

    fmt, config = unit.fmt, unit.config
    x = spread_integers(rng, fmt, count)
    y = rng.permutation(spread_integers(rng, fmt, count))
    if unit.mode == "vectoring":
        expected = cordic_model.vectoring(config, x, y)
        payloads = [{"x": int(a), "y": int(b)} for a, b in zip(x, y, strict=True)]
        outputs = [{"magnitude": int(m), "angle": int(t), "directions": int(d),
                    "saturated": int(s)}
                   for m, t, d, s in zip(expected.magnitude, expected.angle,
                                         expected.directions, expected.saturated, strict=True)]
    else:
        directions = rng.integers(0, 1 << config.directions_width, len(x))
        expected = cordic_model.rotation(config, x, y, directions)
        payloads = [{"x": int(a), "y": int(b), "directions": int(d)}
                    for a, b, d in zip(x, y, directions, strict=True)]
        outputs = [{"x": int(a), "y": int(b), "saturated": int(s)}
                   for a, b, s in zip(expected.x, expected.y, expected.saturated, strict=True)]
    return payloads, outputs


def flatten_directions(output):
    """An output dict with ``directions`` as its packed integer (as the model gives it)."""
    if "directions" in output:
        d = output["directions"]
        output = dict(output, directions=d["prerotate"] | d["counterclockwise"] << 1)
    return output


@pytest.mark.verilator
def test_cordic_matches_model_under_backpressure(cordic):
    unit, sim = cordic
    payloads, expected = cordic_stimulus(np.random.default_rng(41), unit, 1500)
    result = sim.run({"i": payloads}, {"o": len(payloads)}, ready_seed=4, ready_probability=0.6,
                     valid_seed=5, valid_probability=0.7)
    assert [flatten_directions(o) for o in result.values("o")] == expected
    assert any(o["saturated"] for o in expected)


@pytest.mark.verilator
def test_cordic_latency_and_initiation_interval(cordic):
    unit, sim = cordic
    payloads, expected = cordic_stimulus(np.random.default_rng(42), unit, 40)
    result = sim.run({"i": payloads}, {"o": len(payloads)})
    assert [flatten_directions(o) for o in result.values("o")] == expected
    assert result.latencies("i", "o") == [unit.latency] * len(payloads)
    spacing = np.diff(result.input_cycles["i"])
    assert spacing.tolist() == [unit.initiation_interval] * (len(payloads) - 1)


@pytest.mark.verilator
@pytest.mark.slow  # a second build of RunningSum, with tracing
def test_vcd_trace(verilator, tmp_path):
    sim = VerilatorSimulation(RunningSum(), top="running_sum", trace=True)
    values, tags = random_inputs(8, 5)
    result = sim.run({"i": as_payloads(values, tags)}, {"o": 5}, vcd=tmp_path / "trace.vcd")
    assert result.values("o") == running_sum_reference(values, tags)[0]
    text = (tmp_path / "trace.vcd").read_text()
    assert "$enddefinitions" in text
    assert "i__valid" in text and "o__payload" in text  # the design's own signal names


class ConstantSlice(wiring.Component):
    """``o[7:4]`` is a constant assigned alone: Amaranth's Verilog gives it an ``always @*``
    that reads nothing, which Verilator never runs (``o[7:4]`` would stay 0, not 5)."""

    a: In(4)
    o: Out(8)

    def elaborate(self, platform):
        m = Module()
        r = Signal(4)
        m.d.sync += r.eq(self.a)
        m.d.comb += self.o[4:8].eq(5)
        m.d.comb += self.o[3].eq(r[1])
        with m.If(r[0]):
            m.d.comb += self.o[0:3].eq(r)
        return m


@pytest.mark.verilator
def test_an_always_block_that_never_runs_is_refused(verilator, tmp_path):
    """The harness refuses a build whose Verilog Verilator would not simulate as the design
    (the `always @*` of a constant alone in its process), naming the cause."""
    with pytest.raises(CrossSimulationBuildError, match="never run 1 `always @[*]`"):
        VerilatorSimulation(ConstantSlice(), top="constant_slice", workdir=tmp_path, log=None)
