"""Tests of ``tiersolve bench arith`` and its reusable measuring functions."""

import json

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.registry import get_unit
from tiersolve.host.bench import arith
from tiersolve.host.cli import main


class DelayLine(wiring.Component):
    """Stream of 8-bit values delayed by ``depth`` registers; takes an input every ``interval``
    cycles (an idle counter blocks ``i.ready`` in between). Output is never back-pressured in
    these tests, so ``o.ready`` is ignored."""

    def __init__(self, depth, interval=1):
        self.depth = depth
        self.interval = interval
        super().__init__({"i": In(stream.Signature(signed(8))),
                          "o": Out(stream.Signature(signed(8)))})

    def elaborate(self, platform):
        m = Module()
        wait = Signal(range(self.interval + 1))
        m.d.comb += self.i.ready.eq(wait == 0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += wait.eq(self.interval - 1)
        with m.Elif(wait != 0):
            m.d.sync += wait.eq(wait - 1)
        valid, payload = self.i.valid & self.i.ready, self.i.payload
        for stage in range(self.depth):
            next_valid = Signal(name=f"valid{stage}")
            next_payload = Signal(signed(8), name=f"payload{stage}")
            m.d.sync += [next_valid.eq(valid), next_payload.eq(payload)]
            valid, payload = next_valid, next_payload
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.eq(payload)]
        return m


@pytest.mark.parametrize("depth, interval", [(1, 1), (3, 1), (2, 5)])
def test_measure_stream_timing(depth, interval):
    payloads = [5, -3, 7, 0, 1]
    timing = arith.measure_stream_timing(DelayLine(depth, interval), payloads)
    assert timing.latency == depth
    assert timing.max_latency == depth
    assert timing.initiation_interval == interval
    assert timing.results_per_cycle == pytest.approx(1 / interval)
    assert timing.outputs == payloads
    assert timing.input_cycles == [interval * k for k in range(len(payloads))]


def test_measure_stream_timing_gives_up():
    class Sink(wiring.Component):
        i: In(stream.Signature(8))
        o: Out(stream.Signature(8))

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.i.ready.eq(1)
            return m

    with pytest.raises(TimeoutError, match="0 of 3 results after 50 cycles"):
        arith.measure_stream_timing(Sink(), [1, 2, 3], max_cycles=50)


def test_measure_combinational_component():
    class Increment(wiring.Component):
        i: In(stream.Signature(8))
        o: Out(stream.Signature(8))

        def elaborate(self, platform):
            m = Module()
            m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready),
                         self.o.payload.eq(self.i.payload + 1)]
            return m

    timing = arith.measure_stream_timing(Increment(), [1, 2, 3])
    assert (timing.latency, timing.initiation_interval) == (0, 1)
    assert timing.outputs == [2, 3, 4]


def test_random_payloads_fill_struct_layouts():
    layout = data.StructLayout({"a": signed(10), "flags": 3, "first": 1, "last": 1,
                                "inner": data.StructLayout({"b": signed(4)})})
    payloads = arith.random_payloads(layout, 50, seed=1)
    assert len(payloads) == 50
    for payload in payloads:
        assert 0 <= payload["a"] <= 2 ** 8 and 0 <= payload["flags"] < 8
        assert payload["first"] == payload["last"] == 1
        assert 0 <= payload["inner"]["b"] <= 4
    assert len({payload["a"] for payload in payloads}) > 10


def test_select_cases():
    assert [case.name for case in arith.select_cases(["mac"])] == ["mac"]
    assert len(arith.select_cases(["cordic"])) == 4
    assert [case.name for case in arith.select_cases(["recip", "recip-pipelined"])] == [
        "recip-iterative", "recip-pipelined"]
    assert arith.select_cases(None) == list(arith.CASES)
    with pytest.raises(ValueError, match="unknown unit 'divider'"):
        arith.select_cases(["divider"])


def test_cases_build_registered_units():
    fmt = FixedFormat(6, 12)
    for case in arith.CASES:
        component = case.build(fmt)
        component._MustUse__silence = True  # built for its attributes only
        assert component.latency >= 1 and component.initiation_interval >= 1, case.name


def test_bench_arith_mac_without_synthesis(tmp_path, capsys):
    out = tmp_path / "results"
    status = main(["bench", "arith", "--no-synth", "--units", "mac", "--formats", "Q6.12",
                   "--out", str(out)])
    assert status == 0
    document = json.loads((out / "arith.json").read_text())
    assert document["benchmark"] == "arith"
    (record,) = document["results"]
    unit = get_unit("mac").build(FixedFormat(6, 12))
    unit._MustUse__silence = True
    assert record["unit"] == "mac" and record["format"] == "Q6.12"
    assert record["simulation"]["latency"] == unit.latency
    assert record["declared_latency"] == unit.latency
    assert record["simulation"]["initiation_interval"] == unit.initiation_interval
    assert record["synthesis"] is None and record["error"] is None
    table = (out / "arith.md").read_text()
    assert "| mac | Q6.12 | 4 | 1 |" in table
    captured = capsys.readouterr()
    assert "| mac | Q6.12 |" in captured.out
    assert "[1/1] mac Q6.12: latency 4" in captured.err


def test_bench_arith_rejects_bad_options(tmp_path, capsys):
    assert main(["bench", "arith", "--no-synth", "--units", "fft", "--out", str(tmp_path)]) == 2
    assert "unknown unit 'fft'" in capsys.readouterr().err
    assert main(["bench", "arith", "--units", "mac", "--target", "xc7a35t",
                 "--out", str(tmp_path)]) == 2
    assert "unknown target 'xc7a35t'" in capsys.readouterr().err


def test_bench_arith_records_a_broken_unit_and_goes_on(tmp_path, monkeypatch):
    measure = arith.measure_stream_timing

    def broken_for_rsqrt(component, *args, **kwargs):
        if type(component).__name__ == "ReciprocalUnit" and component.function == "rsqrt":
            component._MustUse__silence = True
            raise RuntimeError("stuck")
        return measure(component, *args, **kwargs)

    monkeypatch.setattr(arith, "measure_stream_timing", broken_for_rsqrt)
    status = main(["bench", "arith", "--no-synth", "--units", "rsqrt-iterative", "mac",
                   "--formats", "Q6.12", "--out", str(tmp_path)])
    assert status == 1
    document = json.loads((tmp_path / "arith.json").read_text())
    broken, mac = document["results"]
    assert broken["error"] == "simulation failed: RuntimeError: stuck"
    assert broken["simulation"] is None
    assert mac["error"] is None and mac["simulation"]["latency"] == 4
    assert "rsqrt-iterative Q6.12: simulation failed" in (tmp_path / "arith.md").read_text()
