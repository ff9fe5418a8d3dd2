"""Tests of the register map declaration and of SolverDesign / SolverRegisters in simulation.

The register-level tests master the bare register bus (``bus="register"``) with a small
bus-functional model written here (strobe held until ``ack``, as :mod:`tiersolve.designs.bus`
requires), so they check the map itself; the byte-stream path (frame bridge + map) is tested
end to end through the Device API in ``tests/host/test_device.py``.
"""

import json

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from tiersolve.designs import regmap
from tiersolve.designs.top import SolverDesign, default_bus_timeout
from tiersolve.gen.checks import silence_unused
from tiersolve.gen.cholesky_model import cholesky_model
from tiersolve.gen.fixed import FixedFormat

FMT = FixedFormat(6, 12)
N_MAX, K_MAX, LANES = 4, 2, 2


# -- the declaration ----------------------------------------------------------------------------


def test_regmap_json_round_trip_and_layout_id():
    data = json.loads(regmap.register_map_json())
    assert data["magic"] == regmap.MAGIC == int.from_bytes(b"TSLV", "little")
    names = [reg["name"] for reg in data["registers"]]
    assert names == [reg.name for reg in regmap.REGISTERS]
    status = next(reg for reg in data["registers"] if reg["name"] == "STATUS")
    assert {f["name"] for f in status["fields"]} >= {"busy", "done", "npd", "saturated"}
    import zlib

    assert regmap.LAYOUT_ID == zlib.crc32(regmap.register_map_json(indent=None).encode())


def test_regmap_fields_encode_decode():
    word = regmap.encode_fields("SIZE", n=7, k=3)
    assert word == 7 | 3 << 16
    assert regmap.decode_fields("SIZE", word) == {"n": 7, "k": 3}
    assert regmap.decode_fields("LAMBDA", regmap.encode_fields("LAMBDA", value=-5)) == \
        {"value": -5}
    with pytest.raises(ValueError, match="does not fit"):
        regmap.encode_fields("SIZE", n=1 << 16)
    with pytest.raises(KeyError, match="no field 'x'"):
        regmap.encode_fields("SIZE", x=1)
    with pytest.raises(KeyError, match="no register"):
        regmap.address("NOPE")


def test_job_setup_registers_are_one_burst():
    """The host writes CONTROL, SIZE, LAMBDA, COMMAND as one burst; STATUS, CYCLES,
    RESULT_COUNT are read as one."""
    start = regmap.address("CONTROL")
    assert [regmap.address(n) for n in ("SIZE", "LAMBDA", "COMMAND")] == \
        [start + 1, start + 2, start + 3]
    start = regmap.address("STATUS")
    assert [regmap.address(n) for n in ("CYCLES", "RESULT_COUNT")] == [start + 1, start + 2]


# -- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, match", [
    ({"bus": "pci"}, ValueError, "bus must be one of"),
    ({"cores": ("lu",)}, ValueError, "unknown core 'lu'"),
    ({"cores": ()}, ValueError, "at least one core"),
    ({"cores": 3}, TypeError, "cores must be"),
    ({"n_max": 1}, ValueError, "n_max"),
    ({"lanes": 3}, ValueError, "lanes"),
    ({"fmt": "Q20.12"}, ValueError, "wider than 24"),
    ({"max_burst": 0}, ValueError, "max_burst"),
    ({"clock_frequency": 0}, ValueError, "clock_frequency"),
    ({"bus": "uart", "clock_frequency": 1_000_000}, ValueError, "divisor"),
])
def test_design_parameters_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        SolverDesign(**kwargs)


@pytest.mark.parametrize("bus", ["bytes", "uart", "axi-lite", "register"])
def test_every_bus_elaborates(bus):
    design = SolverDesign(n_max=N_MAX, k_max=K_MAX, lanes=LANES, bus=bus)
    Fragment.get(design, None)
    members = set(design.signature.members)
    expected = {"bytes": {"rx", "tx"}, "uart": {"rx", "tx"}, "axi-lite": {"axi"},
                "register": {"bus"}}[bus]
    assert members == expected


def test_default_bus_timeout_covers_a_gram_pass():
    passes = sum(-(-(16 + 4 - j) // 4) for j in range(16))
    assert default_bus_timeout(16, 4, 4) > 4 * passes


# -- register-level simulation -------------------------------------------------------------------


async def bus_read(ctx, bus, address):
    ctx.set(bus.addr, address)
    ctx.set(bus.r_stb, 1)
    (data,) = await ctx.tick().sample(bus.r_data).until(bus.ack)
    ctx.set(bus.r_stb, 0)
    return int(data)


async def bus_write(ctx, bus, address, value, limit=5000):
    ctx.set(bus.addr, address)
    ctx.set(bus.w_data, value & 0xFFFFFFFF)
    ctx.set(bus.w_stb, 1)
    for _ in range(limit):
        _, _, ack = await ctx.tick().sample(bus.ack)
        if ack:
            break
    else:
        raise AssertionError(f"write to {address:#x} not acknowledged in {limit} cycles")
    ctx.set(bus.w_stb, 0)


def simulate(design, bench):
    sim = Simulator(design)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def to_signed(word):
    return word - (1 << 32) if word >> 31 else word


def test_identity_registers_and_scratch_registers():
    design = SolverDesign(n_max=N_MAX, k_max=K_MAX, lanes=LANES, bus="register",
                          clock_frequency=25_000_000)
    expected = design.identity()
    seen = {}

    async def bench(ctx):
        for name in expected:
            seen[name] = await bus_read(ctx, design.bus, regmap.address(name))
        await bus_write(ctx, design.bus, regmap.address("SIZE"), 3 | 2 << 16)
        await bus_write(ctx, design.bus, regmap.address("LAMBDA"), -7)
        seen["SIZE"] = await bus_read(ctx, design.bus, regmap.address("SIZE"))
        seen["LAMBDA"] = await bus_read(ctx, design.bus, regmap.address("LAMBDA"))
        seen["unused"] = await bus_read(ctx, design.bus, 0x3FF)
        await bus_write(ctx, design.bus, regmap.address("MAGIC"), 0)  # ignored
        seen["MAGIC again"] = await bus_read(ctx, design.bus, regmap.address("MAGIC"))
        seen["STATUS"] = await bus_read(ctx, design.bus, regmap.address("STATUS"))

    simulate(design, bench)
    for name, value in expected.items():
        assert seen[name] == value, name
    assert seen["MAGIC"] == regmap.MAGIC and seen["LAYOUT"] == regmap.LAYOUT_ID
    assert seen["CLOCK_HZ"] == 25_000_000
    assert regmap.decode_fields("FORMAT", seen["FORMAT"]) == \
        {"int_bits": 6, "frac_bits": 12, "guard_bits": 4}
    assert seen["SIZE"] == 3 | 2 << 16 and to_signed(seen["LAMBDA"]) == -7
    assert seen["unused"] == 0 and seen["MAGIC again"] == regmap.MAGIC
    assert regmap.decode_fields("STATUS", seen["STATUS"])["busy"] == 0


def test_updater_registers_read_back_what_was_written():
    # every readable register of a two-core design, including the updater's, answers its own
    # word (the read multiplexer is an OR of words gated by the registered address flags)
    design = SolverDesign(n_max=N_MAX, k_max=K_MAX, lanes=LANES, bus="register",
                          cores=("cholesky", "updater"))
    written = {"SIZE": 3 | 2 << 16, "LAMBDA": 0x1234, "UPDATER_SIZE": 2 | 1 << 16,
               "UPDATER_VALUE": -5 & 0xFFFFFFFF, "UPDATER_FORGET": 4000}
    seen = {}

    async def bench(ctx):
        for name, word in written.items():
            await bus_write(ctx, design.bus, regmap.address(name), word)
        for name in [*written, "UPDATER_COUNT", "UPDATER_CYCLES", "RESULT_COUNT", "MAGIC"]:
            seen[name] = await bus_read(ctx, design.bus, regmap.address(name))
        seen["unused"] = await bus_read(ctx, design.bus, 0x3FE)

    simulate(design, bench)
    for name, word in written.items():
        assert seen[name] == word, name
    assert seen["UPDATER_COUNT"] == 0 and seen["UPDATER_CYCLES"] == 0
    assert seen["RESULT_COUNT"] == 0 and seen["MAGIC"] == regmap.MAGIC
    assert seen["unused"] == 0


def run_register_job(design, op, n, k, lam, rows, *, reset_midway=False):
    """Drive one job over the register bus; return (status fields, results)."""
    out = {}

    async def bench(ctx):
        bus = design.bus
        await bus_write(ctx, bus, regmap.address("CONTROL"), 1)
        await bus_write(ctx, bus, regmap.address("SIZE"), n | k << 16)
        await bus_write(ctx, bus, regmap.address("LAMBDA"), lam)
        await bus_write(ctx, bus, regmap.address("COMMAND"), int(op))
        values = [int(v) for v in np.asarray(rows).ravel()]
        for index, value in enumerate(values):
            last = index == len(values) - 1 and op == regmap.Op.CHOLESKY_GRAM
            await bus_write(ctx, bus, regmap.address("ROW_DATA_LAST" if last else "ROW_DATA"),
                            value)
        if reset_midway:
            await bus_write(ctx, bus, regmap.address("CONTROL"), 1)
        for _ in range(2000):
            status = regmap.decode_fields(
                "STATUS", await bus_read(ctx, bus, regmap.address("STATUS")))
            if status["done"] or reset_midway:
                break
        out["status"] = status
        out["count"] = await bus_read(ctx, bus, regmap.address("RESULT_COUNT"))
        out["cycles"] = await bus_read(ctx, bus, regmap.address("CYCLES"))
        out["results"] = [to_signed(await bus_read(ctx, bus, regmap.RESULT_WINDOW + i))
                          for i in range(n * k)]

    simulate(design, bench)
    return out


def test_direct_job_over_register_bus_matches_model():
    rng = np.random.default_rng(3)
    n, k = 3, 2
    h = rng.normal(size=(6, n))
    a = FMT.quantise(h.T @ h / 4 + 0.5 * np.eye(n)).values
    b = FMT.quantise(rng.normal(size=(n, k))).values
    rows = np.concatenate([a, b], axis=1)
    design = SolverDesign(n_max=N_MAX, k_max=K_MAX, lanes=LANES, bus="register")
    out = run_register_job(design, regmap.Op.CHOLESKY_DIRECT, n, k, 0, rows)
    model = cholesky_model(FMT, "direct", n, k, 0, rows, n_max=N_MAX, k_max=K_MAX)
    assert out["status"]["done"] == 1 and out["status"]["npd"] == 0
    assert out["count"] == n * k and out["cycles"] > 0
    assert np.array_equal(np.array(out["results"]).reshape(n, k), model.x)


def test_gram_job_over_register_bus_matches_model_and_flags_npd():
    rng = np.random.default_rng(4)
    n, k = 2, 1
    rows = FMT.quantise(rng.normal(size=(3, n + k))).values
    lam = FMT.const(0.25)
    design = SolverDesign(n_max=N_MAX, k_max=K_MAX, lanes=LANES, bus="register")
    out = run_register_job(design, regmap.Op.CHOLESKY_GRAM, n, k, lam, rows)
    model = cholesky_model(FMT, "gram", n, k, lam, rows, n_max=N_MAX, k_max=K_MAX)
    assert np.array_equal(np.array(out["results"]).reshape(n, k), model.x)

    indefinite = FMT.quantise([[1.0, 0.0, 1.0], [0.0, -1.0, 1.0]]).values
    out = run_register_job(design, regmap.Op.CHOLESKY_DIRECT, 2, 1, 0, indefinite)
    assert out["status"]["npd"] == 1 and out["status"]["npd_index"] == 1
    assert out["count"] == 0 and out["results"] == [0, 0]  # nothing captured


def test_back_to_back_jobs_without_reset_restart_the_result_count():
    """A COMMAND restarts RESULT_COUNT and the result window (no CONTROL reset between jobs):
    the second job's count is its own n·k and its results are the model's."""
    rng = np.random.default_rng(5)
    design = SolverDesign(n_max=N_MAX, k_max=K_MAX, lanes=LANES, bus="register")
    jobs = []
    for n, k in ((3, 2), (2, 1)):
        h = rng.normal(size=(6, n))
        a = FMT.quantise(h.T @ h / 4 + 0.5 * np.eye(n)).values
        b = FMT.quantise(rng.normal(size=(n, k))).values
        jobs.append((n, k, np.concatenate([a, b], axis=1)))
    seen = []

    async def bench(ctx):
        bus = design.bus
        for n, k, rows in jobs:
            await bus_write(ctx, bus, regmap.address("SIZE"), n | k << 16)
            await bus_write(ctx, bus, regmap.address("LAMBDA"), 0)
            await bus_write(ctx, bus, regmap.address("COMMAND"), int(regmap.Op.CHOLESKY_DIRECT))
            for value in np.asarray(rows).ravel():
                await bus_write(ctx, bus, regmap.address("ROW_DATA"), int(value))
            for _ in range(2000):
                status = regmap.decode_fields(
                    "STATUS", await bus_read(ctx, bus, regmap.address("STATUS")))
                if status["done"]:
                    break
            count = await bus_read(ctx, bus, regmap.address("RESULT_COUNT"))
            results = [to_signed(await bus_read(ctx, bus, regmap.RESULT_WINDOW + i))
                       for i in range(n * k)]
            seen.append((count, results))

    simulate(design, bench)
    for (n, k, rows), (count, results) in zip(jobs, seen, strict=True):
        model = cholesky_model(FMT, "direct", n, k, 0, rows, n_max=N_MAX, k_max=K_MAX)
        assert count == n * k
        assert np.array_equal(np.array(results).reshape(n, k), model.x)


def test_bad_sizes_flag_bad_command():
    design = SolverDesign(n_max=N_MAX, k_max=K_MAX, lanes=LANES, bus="register")
    out = run_register_job(design, regmap.Op.CHOLESKY_DIRECT, N_MAX + 1, 1, 0, [])
    assert out["status"]["bad_command"] == 1 and out["status"]["done"] == 1
    assert out["count"] == 0


def test_control_reset_aborts_a_job():
    """A job left waiting for rows is aborted by CONTROL.reset_cholesky: the core is idle."""
    design = SolverDesign(n_max=N_MAX, k_max=K_MAX, lanes=LANES, bus="register")
    rows = FMT.quantise(np.ones((1, 3))).values  # one row of a 2x1 direct job: incomplete
    out = run_register_job(design, regmap.Op.CHOLESKY_DIRECT, 2, 1, 0, rows,
                           reset_midway=True)
    assert out["status"]["busy"] == 0 and out["status"]["done"] == 0
    assert out["count"] == 0



# -- the incremental-update core behind the register map ----------------------------------------


def test_updater_ops_match_the_gateware_ops():
    from tiersolve.gen.qr import Op, Select

    assert {op.name: int(op) for op in regmap.UpdaterOp} == {op.name: int(op) for op in Op}
    assert {s.name: int(s) for s in regmap.UpdaterSelect} == {s.name: int(s) for s in Select}


def test_updater_parameters_are_checked():
    with pytest.raises(ValueError, match="updater_rotation"):
        SolverDesign(cores=("cholesky", "updater"), updater_rotation="systolic")
    with pytest.raises(ValueError, match="units"):
        SolverDesign(cores=("cholesky", "updater"), updater_units=3)
    with pytest.raises(ValueError, match="not yet integrated"):
        SolverDesign(cores=("cholesky", "qr"))


async def updater_command(ctx, bus, op, n, k, *, value=0, forgetting=0, select=0, data=(),
                          outputs=0):
    """One updater command over the register bus: returns (status fields, outputs)."""
    for name, word in (("UPDATER_SIZE", n | k << 16), ("UPDATER_VALUE", value),
                       ("UPDATER_FORGET", forgetting),
                       ("UPDATER_COMMAND", regmap.encode_fields("UPDATER_COMMAND", op=int(op),
                                                                select=int(select)))):
        await bus_write(ctx, bus, regmap.address(name), word)
    for item in data:
        await bus_write(ctx, bus, regmap.address("UPDATER_DATA"), int(item))
    for _ in range(5000):
        status = regmap.decode_fields(
            "UPDATER_STATUS", await bus_read(ctx, bus, regmap.address("UPDATER_STATUS")))
        if status["done"] or status["bad_command"]:
            break
    else:
        raise AssertionError("updater command did not finish")
    count = await bus_read(ctx, bus, regmap.address("UPDATER_COUNT"))
    assert count == outputs
    values = [to_signed(await bus_read(ctx, bus, regmap.UPDATER_RESULT_WINDOW + i))
              for i in range(outputs)]
    return status, np.array(values, dtype=np.int64)


def test_updater_over_register_bus_is_bit_exact():
    """RESET, UPDATE (with and without forgetting), a refused and an accepted DOWNDATE, SOLVE,
    PREDICT, READ and LOAD of R, Z, W: every integer equals IncrementalUpdaterModel's."""
    from tiersolve.gen.qr_model import IncrementalUpdaterModel, QRConfig

    design = SolverDesign(cores=("cholesky", "updater"), n_max=N_MAX, k_max=K_MAX, lanes=LANES,
                          bus="register")
    assert regmap.decode_fields("UPDATER", design.identity()["UPDATER"]) == \
        {"units": 1, "rotation": 1, "fold": 0, "fold_downdate": 0}
    folding = SolverDesign(cores=("cholesky", "updater"), n_max=N_MAX, k_max=K_MAX,
                           lanes=LANES, bus="register", updater_fold=True)
    assert regmap.decode_fields("UPDATER", folding.identity()["UPDATER"])["fold"] == 1
    assert folding.registers.updater.folds and not design.registers.updater.folds
    silence_unused(folding)  # only its identity is asked for
    config = QRConfig(FMT, "multiplier")
    n, k = 3, 2
    rng = np.random.default_rng(11)
    rows = FMT.quantise(rng.uniform(-1, 1, size=(5, n + k))).values
    lam_sqrt = FMT.const(0.5)
    model = IncrementalUpdaterModel(config, n, k, lam_sqrt=lam_sqrt)
    Op, Select = regmap.UpdaterOp, regmap.UpdaterSelect
    b = config.forgetting_constant(0.9)
    one = 1 << FMT.width
    seen = {}

    async def bench(ctx):
        bus = design.bus
        status, _ = await updater_command(ctx, bus, Op.RESET, n, k, value=lam_sqrt)
        assert status["done"] and not status["bad_command"]
        for index, row in enumerate(rows[:4]):
            status, _ = await updater_command(ctx, bus, Op.UPDATE, n, k, data=row,
                                              forgetting=b if index == 2 else one)
        seen["R"] = (await updater_command(ctx, bus, Op.READ, n, k, select=Select.R,
                                           outputs=n * n))[1]
        seen["Z"] = (await updater_command(ctx, bus, Op.READ, n, k, select=Select.Z,
                                           outputs=n * k))[1]
        big = FMT.quantise(np.full(n + k, 7.5)).values  # never folded in: refused
        seen["refused"], _ = await updater_command(ctx, bus, Op.DOWNDATE, n, k, data=big)
        seen["R after refusal"] = (await updater_command(ctx, bus, Op.READ, n, k,
                                                         select=Select.R, outputs=n * n))[1]
        seen["downdate"], _ = await updater_command(ctx, bus, Op.DOWNDATE, n, k, data=rows[3])
        await updater_command(ctx, bus, Op.SOLVE, n, k)
        seen["W"] = (await updater_command(ctx, bus, Op.READ, n, k, select=Select.W,
                                           outputs=n * k))[1]
        seen["y"] = (await updater_command(ctx, bus, Op.PREDICT, n, k, data=rows[4][:n],
                                           outputs=k))[1]
        seen["bad"], _ = await updater_command(ctx, bus, Op.UPDATE, n, k, forgetting=one + 1)
        await updater_command(ctx, bus, Op.LOAD, n, k, select=Select.Z,
                              data=rows[:n, :k].ravel())
        seen["Z loaded"] = (await updater_command(ctx, bus, Op.READ, n, k, select=Select.Z,
                                                  outputs=n * k))[1]
        seen["status"] = regmap.decode_fields(
            "UPDATER_STATUS", await bus_read(ctx, bus, regmap.address("UPDATER_STATUS")))

    simulate(design, bench)
    for index, row in enumerate(rows[:4]):
        model.update(row[:n], row[n:], beta=0.9 if index == 2 else 1.0)
    assert np.array_equal(seen["R"].reshape(n, n), model.R)
    assert np.array_equal(seen["Z"].reshape(n, k), model.Z)
    assert seen["refused"]["refused"] == 1
    assert model.downdate(np.full(n, FMT.const(7.5)), np.full(k, FMT.const(7.5))).refused
    assert np.array_equal(seen["R after refusal"].reshape(n, n), model.R)
    assert seen["downdate"]["refused"] == 0
    assert not model.downdate(rows[3][:n], rows[3][n:]).refused
    W = model.solve()
    assert np.array_equal(seen["W"].reshape(n, k), W)
    assert np.array_equal(seen["y"], model.predict(rows[4][:n]))
    assert seen["bad"]["bad_command"] == 1
    assert np.array_equal(seen["Z loaded"].reshape(n, k), rows[:n, :k])
    assert seen["status"]["saturated"] == int(model.saturated)


# -- timing registers and single-port buffers of the top level --------------------------------


def test_bus_stage_passes_accesses_with_two_cycles_more():
    """Accesses through RegisterBusStage reach a slave with wait states unchanged, once each.

    The slave below acknowledges a write at once and a read after two wait states, and counts
    the writes it takes; the stage must deliver every access exactly once and return the read
    data, three cycles after the strobe for the zero-wait write, five for the read.
    """
    from amaranth.hdl import Module, Signal
    from tiersolve.designs.top import RegisterBusStage

    stage = RegisterBusStage(8)
    m = Module()
    m.submodules.stage = stage
    registers = [Signal(32, name=f"register{i}") for i in range(4)]
    writes = Signal(8)
    waited = Signal(2)
    down = stage.downstream
    with m.If(down.w_stb):
        m.d.comb += down.ack.eq(1)
        m.d.sync += writes.eq(writes + 1)
        with m.Switch(down.addr[:2]):
            for index, register in enumerate(registers):
                with m.Case(index):
                    m.d.sync += register.eq(down.w_data)
    with m.Elif(down.r_stb):
        m.d.sync += waited.eq(waited + 1)
        with m.If(waited == 2):
            m.d.comb += down.ack.eq(1)
            m.d.sync += waited.eq(0)
        with m.Switch(down.addr[:2]):
            for index, register in enumerate(registers):
                with m.Case(index):
                    m.d.comb += down.r_data.eq(register ^ 0xFFFF)
    up = stage.upstream
    seen = {}

    async def bench(ctx):
        ctx.set(up.addr, 2)
        ctx.set(up.w_data, 0x1234)
        ctx.set(up.w_stb, 1)
        cycles = 0
        while True:
            cycles += 1
            _, _, ack = await ctx.tick().sample(up.ack)
            if ack:
                break
        seen["write cycles"] = cycles
        ctx.set(up.w_stb, 0)
        ctx.set(up.r_stb, 1)          # back to back: the next access right after the ack
        cycles = 0
        while True:
            cycles += 1
            _, _, ack, data = await ctx.tick().sample(up.ack, up.r_data)
            if ack:
                break
        seen["read cycles"], seen["read"] = cycles, data
        ctx.set(up.r_stb, 0)
        await ctx.tick().repeat(4)
        seen["writes"] = ctx.get(writes)
        seen["register"] = ctx.get(registers[2])

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"write cycles": 3, "read cycles": 5, "read": 0x1234 ^ 0xFFFF, "writes": 1,
                    "register": 0x1234}


def test_single_port_ram_behaviour_and_spram_instances():
    """SinglePortRam: one-cycle reads that hold, writes, and SB_SPRAM256KA per 16 bits."""
    from amaranth.hdl import Instance
    from tiersolve.designs.bridge import SinglePortRam

    ram = SinglePortRam(18, 64)
    seen = []

    async def bench(ctx):
        for address, value in ((3, 0x2ABCD), (4, 0x00011)):
            ctx.set(ram.addr, address)
            ctx.set(ram.write_data, value)
            ctx.set(ram.write_enable, 1)
            await ctx.tick()
        ctx.set(ram.write_enable, 0)
        ctx.set(ram.addr, 3)
        ctx.set(ram.read_enable, 1)
        await ctx.tick()
        ctx.set(ram.read_enable, 0)
        ctx.set(ram.addr, 4)
        seen.append(ctx.get(ram.read_data))
        await ctx.tick().repeat(2)        # no enable: the word read is held
        seen.append(ctx.get(ram.read_data))

    sim = Simulator(ram)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0x2ABCD, 0x2ABCD]

    class FakePlatform:
        pass

    for width, blocks in ((8, 1), (16, 1), (18, 2), (32, 2)):
        fragment = Fragment.get(SinglePortRam(width, 1024, spram=True), FakePlatform())
        instances = [sub for sub, _, _ in fragment.subfragments if isinstance(sub, Instance)]
        assert len(instances) == blocks
        assert all(instance.type == "SB_SPRAM256KA" for instance in instances)
    assert silence_unused(SinglePortRam(18, 64, spram=True)).spram_blocks == 2
    with pytest.raises(ValueError, match="depth must be at most 16384"):
        SinglePortRam(16, 16385, spram=True)
    with pytest.raises(TypeError, match="spram must be a bool"):
        SinglePortRam(16, 64, spram=1)


def test_control_reset_is_registered_and_holds_the_next_access():
    """A CONTROL reset is applied one edge after its write; the next access waits for it (one
    cycle, the one in which every access's address is decoded into registers), then, as
    every register read, one cycle for its registered word."""
    design = SolverDesign(n_max=N_MAX, k_max=K_MAX, lanes=LANES, bus="register")
    seen = {}

    async def bench(ctx):
        bus = design.bus
        await bus_write(ctx, bus, regmap.address("SIZE"), 2 | 1 << 16)
        await bus_write(ctx, bus, regmap.address("COMMAND"), int(regmap.Op.CHOLESKY_DIRECT))
        seen["busy before"] = regmap.decode_fields(
            "STATUS", await bus_read(ctx, bus, regmap.address("STATUS")))["busy"]
        await bus_write(ctx, bus, regmap.address("CONTROL"), 1)
        ctx.set(bus.addr, regmap.address("STATUS"))   # back to back after the reset
        ctx.set(bus.r_stb, 1)
        waits = 0
        while True:
            _, _, ack, data = await ctx.tick().sample(bus.ack, bus.r_data)
            if ack:
                break
            waits += 1
        ctx.set(bus.r_stb, 0)
        seen["waits"] = waits
        seen["busy after"] = regmap.decode_fields("STATUS", int(data))["busy"]

    simulate(design, bench)
    assert seen == {"busy before": 1, "waits": 2, "busy after": 0}


def test_single_port_result_buffer_serves_reads_during_the_output():
    """With ``spram`` the result buffer has one port: reads issued while the core writes its
    output wait for a free cycle and still return the model's values, bit for bit."""
    rng = np.random.default_rng(5)
    n, k = 4, 2
    h = rng.normal(size=(8, n))
    a = FMT.quantise(h.T @ h / 4 + 0.5 * np.eye(n)).values
    b = FMT.quantise(rng.normal(size=(n, k))).values
    rows = np.concatenate([a, b], axis=1)
    design = SolverDesign(n_max=N_MAX, k_max=K_MAX, lanes=LANES, bus="register", spram=True)
    model = cholesky_model(FMT, "direct", n, k, 0, rows, n_max=N_MAX, k_max=K_MAX)
    seen = {"during": []}

    async def bench(ctx):
        bus = design.bus
        await bus_write(ctx, bus, regmap.address("SIZE"), n | k << 16)
        await bus_write(ctx, bus, regmap.address("COMMAND"), int(regmap.Op.CHOLESKY_DIRECT))
        for value in rows.ravel():
            await bus_write(ctx, bus, regmap.address("ROW_DATA"), int(value))
        for _ in range(3000):  # read the first results over and over while they arrive
            count = await bus_read(ctx, bus, regmap.address("RESULT_COUNT"))
            if count:
                index = count - 1
                value = to_signed(await bus_read(ctx, bus, regmap.RESULT_WINDOW + index))
                seen["during"].append((index, value))
            status = regmap.decode_fields(
                "STATUS", await bus_read(ctx, bus, regmap.address("STATUS")))
            if status["done"]:
                break
        seen["results"] = [to_signed(await bus_read(ctx, bus, regmap.RESULT_WINDOW + i))
                           for i in range(n * k)]

    simulate(design, bench)
    expected = model.x.ravel()
    assert np.array_equal(seen["results"], expected)
    assert seen["during"], "no read happened while the results arrived"
    for index, value in seen["during"]:
        assert value == expected[index]
