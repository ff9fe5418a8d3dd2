"""Which updater command the host sends for several rows: one FOLD (rows in flight together)
or one UPDATE per row. Both give the same integers; ``Device.fold_is_quicker`` picks the one
that ends sooner from the cores' exact cycle formulas and the link's cost per byte and per
command. Since a FOLD's periods last only as long as their own tasks need while the schedule
fills and drains, one FOLD ends sooner from two rows on at every size checked here (before,
its ``s·(n - 1)`` periods of fill and drain lasted a full period each, and a few rows of a
large ``n`` went quicker one at a time); a single row goes in a FOLD too where that is the
quicker, at some sizes."""

from types import SimpleNamespace

import numpy as np
import pytest
import tiersolve.host
from tiersolve.designs import regmap
from tiersolve.gen.fixed import FixedFormat
from tiersolve.host.device import (
    Device,
    DeviceInfo,
    fold_beats_updates,
    updater_cycle_model,
)
from tiersolve.host.transport import (
    COMMAND_EXCHANGE_BYTES,
    FramedTransport,
    Transport,
    UartTransport,
)
from updater_state import device_ints, head_model, record_updater_ops

#: The demo's device: n_max 64, k_max 32, Q8.16, one multiplier unit, with FOLD.
DEMO_INFO = DeviceInfo(version=regmap.VERSION, layout=regmap.LAYOUT_ID,
                       cores=("cholesky", "updater"), n_max=64, k_max=32,
                       fmt=FixedFormat(8, 16), inverse_format=FixedFormat(4, 20), guard_bits=4,
                       lanes=4, clock_frequency=90_000_000, max_burst=64, updater_units=1,
                       updater_rotation="multiplier", updater_fold=True,
                       updater_fold_downdate=True)


class CostedLink(Transport):
    """A transport that only tells its cost: ``byte`` cycles a byte."""

    def __init__(self, byte):
        self.byte = byte

    def byte_cycles(self, clock_hz):
        return self.byte


def device_with(info, byte):
    """A Device object with ``info`` and a link of ``byte`` cycles a byte, without a device
    behind it (``fold_is_quicker`` reads nothing from the device)."""
    device = Device.__new__(Device)
    device._info, device.transport = info, CostedLink(byte)
    return device


def expected_choice(info, byte, n, k, rows, forgetting=None):
    """The rule, written out from the formulas: FOLD when its cycles, with the periods that
    wait for rows arriving slower than one a period, are fewer than the UPDATEs' with each
    row's wait and each further command's exchange."""
    model = updater_cycle_model(info.n_max, info.k_max, str(info.fmt), info.updater_units,
                                info.updater_rotation)
    forgets = forgetting is not None and forgetting
    value = max(1, 4 * byte)     # cycles a value; the formulas take one a cycle
    fold = model.fold_cycles(n, k, rows, forgets, value)
    updates = (rows * (model.update_cycles(n, k) + (n + k - 1) * (value - 1))
               + (rows - 1) * COMMAND_EXCHANGE_BYTES * byte)
    return fold < updates


def test_the_demos_batches_go_in_one_fold():
    model = updater_cycle_model(64, 32, "Q8.16", 1, "multiplier")
    # the demo's batches: 25 rows at n = 63, k = 10 (230,328 cycles in one FOLD before its
    # fill and drain were shortened, more than as 25 UPDATEs)
    assert model.fold_cycles(63, 10, 25) < 25 * model.update_cycles(63, 10)
    for byte in (0, 1, 300):   # a memory-mapped bus, a simulated link, a 3 Mbaud UART
        device = device_with(DEMO_INFO, byte)
        choices = [device.fold_is_quicker(63, 10, rows) for rows in range(1, 400, 7)]
        assert choices == [expected_choice(DEMO_INFO, byte, 63, 10, rows)
                           for rows in range(1, 400, 7)]
        # a single row at n = 63 goes quicker as an UPDATE; from two rows on, one FOLD
        assert choices == [rows > 1 for rows in range(1, 400, 7)]


def test_every_size_folds_from_two_rows():
    """By the formulas alone (a link that costs nothing), two or three rows end sooner in one
    FOLD than as UPDATEs for every n, k (1, 4, 10, 32), units and both rotation kinds, with and
    without forgetting: the shortened fill and drain leave no size where UPDATEs win."""
    for rotation in ("multiplier", "cordic"):
        for units in (1, 4, 64):
            model = updater_cycle_model(64, 32, "Q6.12", units, rotation)
            for n in range(1, 65, 7):
                for k in (1, 4, 10, 32):
                    for forgetting in (None, (1 << 18) - 100):
                        update = model.update_cycles(n, k)
                        for rows in (2, 3):
                            assert fold_beats_updates(model, n, k, rows, forgetting), \
                                (rotation, units, n, k, forgetting, rows)
                            assert model.fold_cycles(n, k, rows, forgetting is not None) \
                                < rows * update


def test_a_slow_link_prefers_one_fold():
    """On a 3 Mbaud UART at 90 MHz a byte is 300 cycles and a command's own exchange 21,000:
    the rule counts both, and the rows go in one FOLD."""
    uart = SimpleNamespace(baud_rate=3_000_000)
    byte = UartTransport.byte_cycles(uart, DEMO_INFO.clock_frequency)
    assert byte == 300
    device = device_with(DEMO_INFO, byte)
    assert device.transport.command_cycles(DEMO_INFO.clock_frequency) \
        == COMMAND_EXCHANGE_BYTES * 300
    for rows in (2, 25):
        assert device.fold_is_quicker(63, 10, rows)
        assert expected_choice(DEMO_INFO, byte, 63, 10, rows)


def test_small_problems_fold_and_single_rows_as_their_formulas_say():
    device = device_with(DEMO_INFO, 1)
    assert device.fold_is_quicker(8, 1, 2)          # a short schedule: FOLD from two rows
    assert not device.fold_is_quicker(8, 1, 1)      # one row: its UPDATE is the quicker
    assert device.fold_is_quicker(1, 1, 1)          # one row of a 1 x 1 problem: its FOLD
    assert not device.fold_is_quicker(8, 1, 0)      # no rows, no FOLD
    for n in (1, 8, 16, 40, 63):
        assert device.fold_is_quicker(n, 1, 1) == expected_choice(DEMO_INFO, 1, n, 1, 1)
    b = 1 << 24   # forgetting constant other than 2**w: the FOLD with forgetting's period
    forgetting = b - 100
    assert device.fold_is_quicker(16, 2, 40, forgetting) == expected_choice(
        DEMO_INFO, 1, 16, 2, 40, forgetting)
    without = device_with(DeviceInfo(**{**DEMO_INFO.__dict__, "updater_fold": False}), 1)
    assert not without.fold_is_quicker(8, 1, 100)  # no FOLD on the design


def test_a_single_row_on_a_slow_link_is_weighed_on_one_timetable():
    """On a link of 10 cycles a byte (40 a value), the simulated 4/2 updater with 2 multiplier
    units and FOLD takes one row of n = 3, k = 1 in 262 cycles as its UPDATE and 290 as a FOLD
    of one row (tests/gen/test_qr.py, ``test_update_cycles_with_a_row_on_a_timetable``): the
    rule sends the UPDATE. (Until 2026-11-27 it charged the UPDATE a value's wait too many,
    301 cycles, and sent the FOLD.)"""
    info = DeviceInfo(**{**DEMO_INFO.__dict__, "n_max": 4, "k_max": 2, "fmt": FixedFormat(4, 12),
                         "updater_units": 2})
    model = updater_cycle_model(4, 2, "Q4.12", 2, "multiplier")
    assert model.update_cycles(3, 1) + 3 * 39 == 262
    assert model.fold_cycles(3, 1, 1, value_cycles=40) == 290
    assert not device_with(info, 10).fold_is_quicker(3, 1, 1)


def test_a_command_exchange_is_the_bytes_counted():
    """COMMAND_EXCHANGE_BYTES is what a command that ends at its first poll moves over the
    simulated link: the write of its four registers and one read of its status, with the
    replies."""
    with tiersolve.host.open("sim://?n_max=4&k_max=2&lanes=1&cores=cholesky,updater") as device:
        assert isinstance(device.transport, FramedTransport)
        before = dict(device.transport.statistics)
        device.updater_command(regmap.UpdaterOp.RESET, 3, 2, value=1 << 12)
        after = device.transport.statistics
        assert device.last_run["polls"] == 1
        moved = (after["bytes_sent"] - before["bytes_sent"]
                 + after["bytes_received"] - before["bytes_received"])
        assert moved == COMMAND_EXCHANGE_BYTES
        assert device.transport.command_cycles(10 ** 6) == COMMAND_EXCHANGE_BYTES


@pytest.mark.parametrize("fold", [False, True])
def test_update_sends_the_command_chosen_with_the_same_integers(fold):
    """With the choice forced each way, ``update`` of several rows sends one FOLD or one
    UPDATE per row, and the updater then holds the model's integers either way."""
    n, k, rows = 3, 2, 5
    rng = np.random.default_rng(31)
    H, T = rng.uniform(-1, 1, (rows, n)), rng.uniform(-2, 2, (rows, k))
    url = "sim://?n_max=4&k_max=2&lanes=1&cores=cholesky,updater&updater_units=2&updater_fold=1"
    with tiersolve.host.open(url) as device:
        device.fold_is_quicker = lambda *args, **kwargs: fold
        ops = record_updater_ops(device)
        device.reset(0.5, n=n, k=k, feature_bound=1.0, target_bound=2.0, capacity=50)
        device.update(H, T)
        sent = list(ops)
        R = device_ints(device, regmap.UpdaterSelect.R, n)
        Z = device_ints(device, regmap.UpdaterSelect.Z, k)
        model = head_model(device)
        h_int, t_int = device.head.quantise_rows(H, T)
    for h, t in zip(h_int, t_int, strict=True):
        model.update(h, t)
    assert np.array_equal(R, model.R) and np.array_equal(Z, model.Z)
    expected = [regmap.UpdaterOp.FOLD] if fold else [regmap.UpdaterOp.UPDATE] * rows
    assert sent == [regmap.UpdaterOp.RESET, *expected]


@pytest.mark.parametrize("fold", [False, True])
def test_the_learning_backend_sends_the_command_chosen(fold):
    """The device backend of ``host/learn.py`` takes the same choice for its runs of rows,
    and its head equals the fixed backend's either way."""
    from tiersolve.host.learn import DeviceBackend

    n, k, rows = 3, 2, 6
    rng = np.random.default_rng(37)
    H, T = rng.uniform(-1, 1, (rows, n)), rng.uniform(-1, 1, (rows, k))
    url = ("sim://?n_max=4&k_max=2&lanes=1&format=Q8.16&inverse_format=Q4.20"
           "&cores=cholesky,updater&updater_units=2&updater_fold=1")
    backend = DeviceBackend(url)
    try:
        backend.device.fold_is_quicker = lambda *args, **kwargs: fold
        ops = record_updater_ops(backend.device)
        fixed = backend.matching_fixed_backend()
        heads = []
        for each in (backend, fixed):
            state = each.qr_init(n, k, 0.5, capacity=rows)
            state = each.qr_update(state, H, T)
            heads.append(each.qr_solve(state))
        assert np.array_equal(heads[0], heads[1])
        updates = [op for op in ops if op in (regmap.UpdaterOp.FOLD, regmap.UpdaterOp.UPDATE)]
        assert updates == ([regmap.UpdaterOp.FOLD] if fold else [regmap.UpdaterOp.UPDATE] * rows)
    finally:
        backend.close()


@pytest.mark.parametrize("n, units, rotation", [(16, 1, "multiplier"), (32, 2, "cordic"),
                                                (64, 4, "multiplier"), (8, 8, "cordic")])
def test_bench_update_gives_the_crossover(n, units, rotation):
    """``tiersolve bench update``'s "FOLD quicker than UPDATEs from (rows)": the fewest rows
    one FOLD takes fewer cycles for than one UPDATE a row, by the formulas, and from there on
    FOLD stays quicker; on a link that costs nothing, ``fold_is_quicker`` turns there."""
    from tiersolve.host.bench.qr import _core, fold_quicker_from

    k = 1
    core = _core("update", n, k, "Q6.12", units, rotation)
    core._MustUse__silence = True
    rows = fold_quicker_from(core, n, k)
    update = core.update_cycles(n, k)
    quicker = [core.fold_cycles(n, k, m) < m * update for m in range(2, rows + 40)]
    assert quicker == [m >= rows for m in range(2, rows + 40)]
    info = DeviceInfo(**{**DEMO_INFO.__dict__, "n_max": n, "k_max": k,
                         "fmt": FixedFormat(6, 12), "updater_units": units,
                         "updater_rotation": rotation})
    device = device_with(info, 0)
    assert device.fold_is_quicker(n, k, rows)
    assert rows == 2 or not device.fold_is_quicker(n, k, rows - 1)


@pytest.mark.parametrize("n, rows, as_updates, as_fold", [
    (31, 1, 2_052, 1_890), (31, 2, 4_104, 2_210), (31, 8, 16_416, 4_238),
    (12, 1, 890, 1_133), (12, 2, 1_780, 1_263)])
def test_the_choice_is_the_quicker_one_on_the_simulated_link(n, rows, as_updates, as_fold):
    """Measured end to end on the simulated device (the link's bytes included), with 4 units:
    at n = 31 one row ends sooner in a FOLD (1,890 cycles here against 2,052 as its UPDATE)
    and so do two rows (2,210 against 4,104; 5,288 before the FOLD's fill and drain were
    shortened, when the UPDATEs won) and eight (4,238 against 16,416; 7,316 before); at
    n = 12 one row ends sooner as its UPDATE (890 against 1,133), two in one FOLD (1,263
    against 1,780). ``fold_is_quicker`` says so in each case (the README quotes these
    counts)."""
    url = ("sim://?n_max=32&k_max=1&lanes=1&format=Q6.12&cores=cholesky,updater"
           "&updater_units=4&updater_fold=1")
    k = 1
    rng = np.random.default_rng(3)
    H, T = rng.uniform(-1, 1, (rows, n)), rng.uniform(-1, 1, (rows, k))
    with tiersolve.host.open(url) as device:
        measured = {}
        for fold in (False, True):
            device.reset(0.5, n=n, k=k, feature_bound=1.0, target_bound=1.0, capacity=64)
            device.fold_is_quicker = lambda *args, fold=fold, **kwargs: fold
            before = device.transport.cycles
            device.update(H, T)
            measured[fold] = device.transport.cycles - before
        del device.fold_is_quicker
        choice = device.fold_is_quicker(n, k, rows)
    assert measured == {False: as_updates, True: as_fold}
    assert choice == (as_fold < as_updates)


def test_a_transport_with_only_read_and_write_costs_as_a_mapped_bus():
    """A transport of the user's making (``read`` and ``write`` only) gets the costs of a
    memory-mapped bus: the formulas alone decide."""
    device = device_with(DEMO_INFO, 0)
    device.transport = SimpleNamespace(read=None, write=None)
    mapped = device_with(DEMO_INFO, 0)
    for rows in (2, 25, 100, 630):
        assert device.fold_is_quicker(63, 10, rows) == mapped.fold_is_quicker(63, 10, rows)


def test_a_single_downdate_goes_as_the_quicker_command():
    """On a design whose FOLD takes rows out, a single row to take out goes as a FOLD of one
    downdate where that ends sooner (n = 15 with 4 units) with the integers of its DOWNDATE,
    and a row that must be refused leaves the state as it was and says so; at n = 8 the
    DOWNDATE is the quicker and goes."""
    from tiersolve.host.errors import DowndateRefused

    url = ("sim://?n_max=16&k_max=1&lanes=1&format=Q6.12&cores=cholesky,updater"
           "&updater_units=4&updater_fold=1")
    rng = np.random.default_rng(41)
    fold = (regmap.UpdaterOp.FOLD, regmap.UpdaterFoldKind.DOWNDATE)
    with tiersolve.host.open(url) as device:
        assert device.info().updater_fold_downdate
        for n, expected in ((15, fold), (8, (regmap.UpdaterOp.DOWNDATE, None))):
            H, T = rng.uniform(-1, 1, (3, n)), rng.uniform(-1, 1, (3, 1))
            device.reset(0.5, n=n, k=1, feature_bound=1.0, target_bound=1.0, capacity=8)
            device.update(H, T)
            calls = record_updater_ops(device, "select")
            device.downdate(H[0], T[0])
            del device.updater_command
            assert calls == [expected], n
            assert device.fold_is_quicker(n, 1, 1) == (expected == fold)
            model = head_model(device)
            h_int, t_int = device.head.quantise_rows(H, T)
            for h, t in zip(h_int, t_int, strict=True):
                model.update(h, t)
            assert not model.downdate(h_int[0], t_int[0]).refused
            assert np.array_equal(device_ints(device, regmap.UpdaterSelect.R, n), model.R)
            assert np.array_equal(device_ints(device, regmap.UpdaterSelect.Z, 1), model.Z)
        # a row that was never folded in and would leave R indefinite: refused, state kept
        device.reset(0.5, n=15, k=1, feature_bound=1.0, target_bound=1.0, capacity=8)
        device.update(rng.uniform(-1, 1, (2, 15)), rng.uniform(-1, 1, (2, 1)))
        before = device.read_state()
        big = np.zeros(15)
        big[-1] = 1.0
        calls = record_updater_ops(device, "select")
        with pytest.raises(DowndateRefused, match="refused to remove the row: .*the state is "
                                                  "unchanged"):
            device.downdate(big, [1.0])
        del device.updater_command
        assert calls == [fold]
        for got, kept in zip(device.read_state(), before, strict=True):
            assert np.array_equal(got, kept)
