"""Tests of ``tiersolve bench link``: wire efficiency, frames per job, time split, outputs.

Byte counts are checked against values derived by hand from the wire format of
:mod:`tiersolve.host.protocol` (COBS plus delimiter around the raw frame), on the protocol's
bridge model and on the gateware in Amaranth's simulator (a tiny design, a few seconds).
"""

import json

import pytest
import tiersolve.host
from tiersolve.host.bench import link
from tiersolve.host.cli import main
from tiersolve.host.protocol import RegisterLink

TINY = "n_max=3&k_max=1&lanes=2&format=Q6.12&max_burst=8"


@pytest.fixture(scope="module")
def tiny_device():
    with tiersolve.host.open(f"sim://?{TINY}") as device:
        yield device


def model_link(max_burst):
    return RegisterLink(link.ModelBytePort(max_burst), max_burst=max_burst)


def test_full_burst_efficiency_equals_the_wire_format():
    """A full 64-word burst of zero-free words, derived from the frame layout:

    - write request: 10 raw bytes of header and CRC + 256 data = 266 raw bytes. The header's
      zero bytes (address and count high bytes) become COBS code bytes; the zero-free run from
      after the count's high byte to the end (256 data + 2 CRC bytes, >= 254) needs one extra
      code byte; plus the leading code byte and the delimiter: 266 + 3 = 269 wire bytes.
    - its reply: 7 raw bytes + code byte + delimiter = 9.
    - read request: 10 + 2 = 12; read reply: 7 + 256 = 263 raw, + 3 = 266 (the same one
      extra code byte after the count's zero high byte).
    """
    records = link.burst_efficiency(model_link(64), 64)
    assert [r["words"] for r in records] == list(range(1, 65))
    full = records[-1]
    assert (full["write_request_bytes"], full["write_reply_bytes"]) == (269, 9)
    assert (full["read_request_bytes"], full["read_reply_bytes"]) == (12, 266)
    assert full["write_data_direction"] == 256 / 269
    assert full["read_data_direction"] == 256 / 266
    assert full["write_round_trip"] == 256 / 278
    assert full["read_round_trip"] == 256 / 278
    assert min(full["write_data_direction"], full["read_data_direction"]) >= 0.95


def test_short_bursts_are_exact_and_long_ones_within_the_bound():
    """Frames of at most 253 raw bytes cost exactly raw + 2 wire bytes; longer ones at most
    the COBS bound."""
    for record in link.burst_efficiency(model_link(64), 64):
        words = record["words"]
        assert record["write_request_bytes"] <= record["write_request_bound"]
        assert record["read_reply_bytes"] <= record["read_reply_bound"]
        if 10 + 4 * words <= 253:
            assert record["write_request_bytes"] == 10 + 4 * words + 2
        if 7 + 4 * words <= 253:
            assert record["read_reply_bytes"] == 7 + 4 * words + 2
        assert record["write_reply_bytes"] == 9
        assert record["read_request_bytes"] == 12


def test_gateware_bridge_sends_the_same_bytes_as_the_model(tiny_device):
    on_device = link.burst_efficiency(tiny_device.transport.link, 8)
    on_model = link.burst_efficiency(model_link(8), 8)
    assert on_device == on_model


def test_burst_efficiency_rejects_bursts_beyond_the_link():
    with pytest.raises(ValueError, match="max_burst = 9"):
        link.burst_efficiency(model_link(8), 9)
    with pytest.raises(TypeError, match="max_burst"):
        link.burst_efficiency(model_link(8), 2.0)


@pytest.mark.parametrize("kind, n, k, m", [("solve", 3, 1, 0), ("fit", 3, 1, 5)])
def test_job_frames_match_the_protocol(tiny_device, kind, n, k, m):
    """With one poll, the measured requests and bytes of a job equal the frames the wire format
    gives (all frames here are short, so the bound is exact); extra polls cost 12 + 21 bytes."""
    record = link.job_link_profile(tiny_device, kind, n, k, m, seed=1)
    bound = record["bound"]
    assert record["requests_one_poll"] == bound["requests"]
    assert record["bytes_sent_one_poll"] == bound["bytes_sent"]
    assert record["bytes_received_one_poll"] == bound["bytes_received"]
    assert record["payload_bytes_one_poll"] == bound["payload_bytes"]
    assert record["bytes_sent"] - record["bytes_sent_one_poll"] == 12 * (record["polls"] - 1)
    assert record["bytes_received"] - record["bytes_received_one_poll"] == \
        21 * (record["polls"] - 1)
    assert 0 < record["tail_cycles"] < record["core_cycles"]
    # a solve of n=3, k=1 with bursts of 8: setup (4 words), 12 row words in bursts of 8 and
    # 4, one poll, the 3 results
    if kind == "solve":
        assert bound["requests"] == 5
        assert bound["payload_bytes"] == 4 * (4 + 12 + 3 + 3)


def test_job_wire_bound_counts_frames():
    # fit n=2, k=1, m=3: 9 row words -> 8 to ROW_DATA (one burst of 8) + 1 to ROW_DATA_LAST
    bound = link.job_wire_bound("fit", 2, 1, 3, max_burst=8)
    assert bound["requests"] == 1 + 1 + 1 + 1 + 1
    assert bound["bytes_sent"] == (10 + 16 + 2) + (10 + 32 + 2) + (10 + 4 + 2) + 12 + 12
    assert bound["bytes_received"] == 9 * 3 + (7 + 12 + 2) + (7 + 8 + 2)
    with pytest.raises(ValueError, match="'update'"):
        link.job_wire_bound("update", 2, 1)


def test_uart_projection_splits_link_and_core():
    job = {"kind": "solve", "n": 64, "k": 4, "m": 64, "requests_one_poll": 74,
           "bytes_sent_one_poll": 18_000, "bytes_received_one_poll": 2_000,
           "payload_bytes_one_poll": 18_000, "core_cycles": 48_000, "tail_cycles": 12_000}
    records = link.uart_projection([job], clock_hz=12e6)
    solve = [r for r in records if r["kind"] == "solve"]
    assert [(r["baud"], r["clock_hz"], r["source"]) for r in solve] == [
        (3e6, 12e6, "measured"), (12e6, 48e6, "measured")]
    assert solve[0]["link_seconds"] == pytest.approx(20_000 * 10 / 3e6)
    assert solve[0]["core_seconds"] == pytest.approx(48_000 / 12e6)
    assert solve[1]["total_lower_seconds"] == pytest.approx(20_000 * 10 / 12e6 + 12_000 / 48e6)
    fit = [r for r in records if r["kind"] == "fit"]
    assert all(r["source"] == "protocol + cycle formula" for r in fit)
    assert fit[0]["wire_bytes"] == sum(
        link.job_wire_bound("fit", 64, 4, 128)[key] for key in ("bytes_sent", "bytes_received"))


def test_uart_projection_sends_the_row_as_the_host_would():
    """On a design whose updater has FOLD, the projected row goes as the command the host
    would pick at that rate: n = 16 with 4 multiplier units, a FOLD of one row (705 cycles
    against the UPDATE's 804), with one unit at n = 64 its UPDATE; a downdate goes in a FOLD
    only where the design's FOLD takes rows out."""
    from tiersolve.host.device import updater_cycle_model

    def rows(n, units, **fold):
        return {(r["kind"], r["baud"]): r for r in link.uart_projection(
                    [], n=n, k=4, clock_hz=90e6, updater_units=units, **fold)
                if r["kind"] in ("update", "downdate")}

    model = updater_cycle_model(16, 4, "Q6.12", 4, "multiplier")
    folds = rows(16, 4, updater_fold=True)
    for baud in link.UART_BAUDS:
        update, downdate = folds["update", baud], folds["downdate", baud]
        assert (update["command"], update["core_cycles"]) == ("FOLD", 705)
        assert update["core_cycles"] == model.fold_cycles(16, 4, 1)
        assert update["tail_cycles"] == 705 - 2 - 20
        assert (downdate["command"], downdate["core_cycles"]) == ("DOWNDATE", 804)
        assert downdate["core_cycles"] == model.update_cycles(16, 4, hyperbolic=True)
        assert rows(16, 4, updater_fold=True, updater_fold_downdate=True)[
            "downdate", baud]["command"] == "FOLD"
        assert rows(16, 4)["update", baud]["command"] == "UPDATE"     # no FOLD on the design
        assert rows(64, 1, updater_fold=True)["update", baud]["command"] == "UPDATE"
    projection = link.uart_projection([], n=16, k=4, clock_hz=90e6, updater_units=4,
                                      updater_fold=True)
    table = link.markdown_tables([], [], projection, baud=3e6, clock_hz=90e6,
                                 round_trip_us=0.0, efficiency_source="", notes=[])
    assert "| update (FOLD) |" in table and "| downdate |" in table


def test_uart_projection_models_the_devices_core():
    """Projected jobs are counted on the device's Cholesky core (n = 16 on a 64/4/4 core: its
    banks are three block RAMs deep, one more pipeline stage), or on one sized for a job it
    does not hold."""
    def solve_tail(**sizes):
        (record, *_) = [r for r in link.uart_projection([], n=16, k=4, **sizes)
                        if r["kind"] == "solve"]
        return record["tail_cycles"]

    own = link.core_cycles_from_formula("solve", 16, 4, 16, 4, "Q6.12", n_max=64, k_max=4)
    sized = link.core_cycles_from_formula("solve", 16, 4, 16, 4, "Q6.12")
    assert own["tail"] > sized["tail"]
    assert solve_tail(n_max=64, k_max=4) == own["tail"]
    assert solve_tail() == solve_tail(n_max=8, k_max=4) == sized["tail"]


def test_command_writes_json_and_markdown(tmp_path, capsys):
    """Also the updater: one update and one downdate row of n=3, k=1 cost exactly the frames
    of the wire format with one poll (4 command words, 4 row values, one status poll)."""
    code = main(["bench", "link", "--out", str(tmp_path), "--device",
                 f"sim://?{TINY}&cores=cholesky,updater", "--solve", "3,1",
                 "--fit", "3,1,4", "--update", "3,1", "--no-sim", "--max-burst", "4"])
    assert code == 0
    document = json.loads((tmp_path / "link.json").read_text())
    assert document["benchmark"] == "link"
    results = document["results"]
    assert [r["words"] for r in results["efficiency"]] == [1, 2, 3, 4]
    assert [(r["kind"], r["n"]) for r in results["jobs"]] == [
        ("solve", 3), ("fit", 3), ("downdate", 3), ("update", 3)]
    for record in results["jobs"][2:]:
        bound = record["bound"]
        assert bound == link.updater_wire_bound(3, 1, max_burst=8)
        assert (record["requests_one_poll"], record["bytes_sent_one_poll"],
                record["bytes_received_one_poll"], record["payload_bytes_one_poll"]) == (
            bound["requests"], bound["bytes_sent"], bound["bytes_received"],
            bound["payload_bytes"])
        assert bound["requests"] == 3 and bound["payload_bytes"] == 4 * (4 + 4 + 3)
        assert 0 < record["tail_cycles"] < record["core_cycles"]
    assert {r["source"] for r in results["uart_projection"]} == {"protocol + cycle formula"}
    assert [r["kind"] for r in results["uart_projection"]] == [
        "solve", "solve", "fit", "fit", "update", "update", "downdate", "downdate"]
    markdown = (tmp_path / "link.md").read_text()
    assert "not integrated" not in markdown and "| update | 3 | 1 | 1 |" in markdown
    assert markdown in capsys.readouterr().out


def test_command_skips_default_sizes_beyond_the_device_with_a_note(tmp_path):
    """Sizes the user did not give (here the default update sizes, n = 8 .. 64) are skipped on
    a device too small for them, and the notes say so; sizes the user gave are errors (next
    test)."""
    code = main(["bench", "link", "--out", str(tmp_path), "--device",
                 f"sim://?{TINY}&cores=cholesky,updater", "--solve", "3,1", "--fit",
                 "--no-sim", "--max-burst", "2"])
    assert code == 0
    document = json.loads((tmp_path / "link.json").read_text())
    assert [(r["kind"], r["n"]) for r in document["results"]["jobs"]] == [("solve", 3)]
    assert any("update (8, 1)" in note and "update (64, 4)" in note and "n_max = 3" in note
               for note in document["notes"])


@pytest.mark.parametrize("option, size", [("--solve", "20,1"), ("--fit", "3,2,4"),
                                          ("--update", "4,1")])
def test_command_rejects_a_size_beyond_the_device(tmp_path, capsys, option, size):
    """A size the user gave that the device cannot take is an error before any job, naming
    the device's n_max and k_max (it used to be skipped with a note)."""
    sizes = {"--solve": ["3,1"], "--fit": [], "--update": []}
    sizes[option] = [size]
    code = main(["bench", "link", "--out", str(tmp_path / "out"), "--device",
                 f"sim://?{TINY}&cores=cholesky,updater", "--no-sim",
                 *[item for name, values in sizes.items() for item in (name, *values)]])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f": {option} {size} is beyond this device (n_max = 3, k_max = 1)")
    assert err.startswith("tiersolve bench: error: sim://?") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_command_rejects_update_sizes_for_a_device_without_the_updater(tmp_path, capsys):
    code = main(["bench", "link", "--out", str(tmp_path / "out"), "--device",
                 f"sim://?{TINY}", "--no-sim", "--solve", "3,1", "--fit", "--update", "3,1"])
    assert code == 2
    assert capsys.readouterr().err.strip().endswith(
        "--update: this device has no updater (cores: cholesky)")
    assert not (tmp_path / "out").exists()


def test_command_rejects_a_max_burst_beyond_the_device(tmp_path, capsys):
    """--max-burst above the device's own limit is an error (it was lowered silently)."""
    code = main(["bench", "link", "--out", str(tmp_path / "out"), "--device",
                 f"sim://?{TINY}", "--no-sim", "--solve", "3,1", "--fit", "--update",
                 "--max-burst", "9"])
    assert code == 2
    assert capsys.readouterr().err.strip().endswith(
        "--max-burst 9 is beyond this device's max_burst = 8")


def test_command_rejects_a_named_device_it_cannot_open(tmp_path, capsys):
    """The user's own device: no protocol figures in its place, but the reason, exit 2."""
    code = main(["bench", "link", "--out", str(tmp_path / "out"), "--device",
                 "uart:///dev/doesnotexist", "--no-sim"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tiersolve bench: error: uart:///dev/doesnotexist could not be used")
    assert "/dev/doesnotexist" in err.split("could not be used", 1)[1] and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_command_falls_back_when_the_default_device_cannot_be_used(monkeypatch, tmp_path):
    """Without --device, a default device that cannot be used (no Verilator, say) leaves the
    figures to the protocol and the cycle formula, with a note."""
    from tiersolve.host.errors import DeviceError

    def cannot_open(url, *args, **kwargs):
        raise DeviceError(f"{url}: not here")

    monkeypatch.setattr(tiersolve.host, "open", cannot_open)
    code = main(["bench", "link", "--out", str(tmp_path), "--no-sim", "--solve", "--fit",
                 "--update", "--max-burst", "2"])
    assert code == 0
    document = json.loads((tmp_path / "link.json").read_text())
    assert any("could not be used (DeviceError" in note for note in document["notes"])


@pytest.mark.parametrize("options, message", [
    (["--max-burst", "0"], "--max-burst 0: give a burst of at least 1 word"),
    (["--max-burst", "-3"], "--max-burst -3: give a burst of at least 1 word"),
    (["--round-trip-us", "-100"], "--round-trip-us -100: give a finite number of at least 0"),
    (["--round-trip-us", "nan"], "--round-trip-us nan: give a finite number of at least 0"),
    (["--baud", "inf"], "--baud inf: give a finite number above 0"),
])
def test_command_rejects_bad_numbers(monkeypatch, tmp_path, capsys, options, message):
    def no_device(*args, **kwargs):
        raise AssertionError("the options should have been rejected before opening a device")

    monkeypatch.setattr(tiersolve.host, "open", no_device)
    code = main(["bench", "link", "--out", str(tmp_path), "--no-sim", *options])
    assert code == 2
    assert f"tiersolve bench: error: {message}" in capsys.readouterr().err


def test_command_rejects_a_bad_size(tmp_path, capsys):
    code = main(["bench", "link", "--out", str(tmp_path), "--device", f"sim://?{TINY}",
                 "--solve", "3", "--no-sim"])
    assert code == 2
    assert "'3' must be 2 positive integers" in capsys.readouterr().err


@pytest.mark.verilator
def test_full_bursts_on_verilated_gateware_match_the_model(verilator):
    """All burst lengths up to 64 words, through the gateware bridge in Verilator (the
    configuration of ``tests/host/test_verilated.py``, so its build is shared)."""
    with tiersolve.host.open("vsim://?n_max=8&k_max=2&lanes=2&format=Q6.12") as device:
        on_device = link.burst_efficiency(device.transport.link, 64)
    assert on_device == link.burst_efficiency(model_link(64), 64)
    assert on_device[-1]["write_request_bytes"] == 269


@pytest.mark.parametrize("n, commands", [(31, ("FOLD", "FOLD")), (12, ("DOWNDATE", "UPDATE"))])
def test_a_single_row_is_profiled_as_the_command_the_host_sent(n, commands):
    """On a design with FOLD the host sends a single row, to take out or to fold in, as a FOLD
    where that is the quicker (n = 31 with 4 units) and as a DOWNDATE or UPDATE otherwise
    (n = 12): the profile says which, and its tail is that command's formula (the core's
    CYCLES hold the tail, the command's first cycles and the row's values, which arrive
    slower over the simulated link than one a cycle)."""
    url = ("sim://?n_max=32&k_max=1&lanes=1&format=Q6.12&cores=cholesky,updater"
           "&updater_units=4&updater_fold=1")
    with tiersolve.host.open(url) as device:
        records = link.updater_link_profile(device, n, 1, forget=0.95)
        forgetting = device.head.config.forgetting_constant(0.95)
    assert tuple(record["command"] for record in records) == commands
    for record in records:
        kind = record["kind"]
        formula = {fold: link.updater_cycles_from_formula(
            kind, n, 1, "Q6.12", units=4, fold=fold, forgetting=forgetting)["tail"]
            for fold in (False, True)}
        assert formula[True] != formula[False]
        assert record["tail_cycles"] == formula[record["command"] == "FOLD"], kind
        assert record["core_cycles"] > record["tail_cycles"] + 2 + n + 1
