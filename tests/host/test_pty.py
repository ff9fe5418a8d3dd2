"""End-to-end tests over a real pseudo-terminal: host library -> pyserial -> pty -> simulated
SolverDesign (``tiersolve sim-serve``'s :class:`SimulatedDeviceServer`, in a thread).

Checks: results equal the Cholesky model bit for bit over ``uart://<pty>``; with frames damaged
in either direction (dropped byte, flipped bit, truncated, duplicated, lost, garbage between
frames) the host recovers by retrying and the device carries out every request exactly once
(the bridge's ``executed`` count equals the host's request count, and the job's result, which
depends on every ROW_DATA word arriving once and in order, still equals the model); a fault
that persists, or a device that stops answering, ends in DeviceTimeout, never in a result.

One server (n_max=4, k_max=2, lanes=2, Q6.12) is shared by the module; each test opens its own
session (a new serial port and RegisterLink) and may set the server's ``faults``.
"""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tiersolve.host
from tiersolve.designs import regmap
from tiersolve.gen.cholesky_model import cholesky_model
from tiersolve.host.errors import DeviceTimeout, LinkError
from tiersolve.host.protocol import OP_READ, RegisterLink, Request
from tiersolve.host.simserve import FAULT_ACTIONS, LinkFaults, SimulatedDeviceServer
from updater_state import device_ints, head_model

pytest.importorskip("serial")

N_MAX, K_MAX = 4, 2


@pytest.fixture(scope="module")
def server():
    with SimulatedDeviceServer(n_max=N_MAX, k_max=K_MAX, lanes=2, fmt="Q6.12").start() as srv:
        yield srv


@pytest.fixture(autouse=True)
def no_faults(server):
    server.faults = None
    server.mute = False
    yield
    server.faults = None
    server.mute = False


def open_device(server, timeout=5.0, retries=5):
    return tiersolve.host.open(f"{server.url}?timeout={timeout}&retries={retries}")


def model_of(device, job):
    info = device.info()
    mode = "direct" if job.op == regmap.Op.CHOLESKY_DIRECT else "gram"
    return cholesky_model(info.fmt, mode, job.n, job.k, job.lam, job.rows, n_max=info.n_max,
                          k_max=info.k_max, guard_bits=info.guard_bits,
                          inverse_format=info.inverse_format).x


def fit_job(device, seed=3, m=10):
    """A Gram job of 10 rows x (3 + 1) values: the ROW_DATA write takes two frames."""
    rng = np.random.default_rng(seed)
    return device.plan_fit(rng.normal(size=(m, 3)), rng.normal(size=m), 0.25)


def test_solve_and_fit_are_bit_exact_over_the_pty(server):
    rng = np.random.default_rng(0)
    executed_before = server.events["executed"]
    with open_device(server) as device:
        info = device.info()
        assert (info.n_max, info.k_max, info.lanes, str(info.fmt)) == (4, 2, 2, "Q6.12")
        h = rng.normal(size=(8, 4))
        A = h.T @ h / 8 + 0.3 * np.eye(4)
        B = rng.normal(size=(4, 2))
        job = device.plan_solve(A, B)
        assert np.array_equal(device.run(job), model_of(device, job))
        job = fit_job(device)
        result = device.run(job)
        assert np.array_equal(result, model_of(device, job))
        statistics = device.transport.statistics
        assert statistics["retries"] == 0 and statistics["discarded_frames"] == 0
        # every request the host made was carried out exactly once
        assert server.events["executed"] - executed_before == statistics["requests"]


@pytest.mark.parametrize("direction", ["to_device", "to_host"])
@pytest.mark.parametrize("action", FAULT_ACTIONS)
def test_damaged_frames_are_recovered_and_applied_once(server, direction, action):
    """Frame 2 (the CONTROL..COMMAND setup write) and frame 3 (the first ROW_DATA burst), or
    their replies, are damaged; the job still equals the model and nothing ran twice."""
    before = dict(server.events)
    faults = LinkFaults(**{direction: {2: action, 3: action}})
    server.faults = faults
    with open_device(server, timeout=0.3) as device:
        job = fit_job(device)
        result = device.run(job)
        assert np.array_equal(result, model_of(device, job))
        statistics = device.transport.statistics
        delta = {name: server.events[name] - before[name] for name in before}
    assert getattr(faults, direction).damaged[action] == 2
    assert delta["executed"] == statistics["requests"]
    assert delta["rejected"] == 0
    if action != "duplicate" and not (action == "garbage" and direction == "to_host"):
        assert statistics["retries"] >= 1  # the host noticed and sent again
    if direction == "to_host" and action in ("drop", "flip", "truncate", "lose"):
        assert delta["replayed"] >= 2      # the retries were answered from the replay memory
    if direction == "to_device" and action in ("drop", "flip", "truncate", "garbage"):
        assert delta["nacked"] >= 2


def test_random_faults_both_ways(server):
    before = dict(server.events)
    faults = LinkFaults(rate=0.25, seed=11)
    server.faults = faults
    with open_device(server, timeout=0.5, retries=8) as device:
        job = fit_job(device, seed=4)
        assert np.array_equal(device.run(job), model_of(device, job))
        requests = device.transport.statistics["requests"]
    damaged = sum(faults.to_device.damaged.values()) + sum(faults.to_host.damaged.values())
    assert damaged >= 2
    assert server.events["executed"] - before["executed"] == requests


def test_persistent_fault_raises_device_timeout_and_runs_once(server):
    """Every reply from frame 2 on is lost: the setup write is retried, then DeviceTimeout.
    The device executed it once and replayed it for the retries."""
    before = dict(server.events)
    server.faults = LinkFaults(to_host={index: "lose" for index in range(2, 100)})
    with open_device(server, timeout=0.3, retries=2) as device:
        job = fit_job(device)
        with pytest.raises(DeviceTimeout, match="no intact reply"):
            device.run(job)
    delta = {name: server.events[name] - before[name] for name in before}
    assert delta == {"executed": 3, "rejected": 0, "replayed": 2, "nacked": 0}
    server.faults = None
    with open_device(server) as device:  # the device is consistent and usable again
        job = fit_job(device, seed=5)
        assert np.array_equal(device.run(job), model_of(device, job))


def test_silent_device_raises_device_timeout_never_a_result(server):
    with open_device(server, timeout=0.3, retries=1) as device:
        job = fit_job(device)
        transport = device.transport
        real_read = transport.read

        def read_then_fall_silent(address, count, **options):
            if address == regmap.address("STATUS"):
                server.mute = True   # the job was sent; the device stops answering
            return real_read(address, count, **options)

        transport.read = read_then_fall_silent
        with pytest.raises(DeviceTimeout):
            device.run(job)
    server.mute = False
    with open_device(server, timeout=0.3, retries=1) as device:
        server.mute = True
        with pytest.raises(DeviceTimeout):
            device.solve(np.eye(2), [1.0, 2.0])


def test_reject_surfaces_as_link_error(server):
    """A request the device refuses (a burst longer than its max_burst) is not retried."""
    before = dict(server.events)
    with open_device(server) as device:
        port = device.transport.port
        link = RegisterLink(port, max_burst=200, timeout=5.0)
        link.ping()
        with pytest.raises(Exception, match="BURST_TOO_LONG") as raised:
            link.read(regmap.RESULT_WINDOW, 100)
        assert link.statistics["retries"] == 0
        with pytest.raises(LinkError, match="BAD_ADDRESS"):
            device.transport.read((1 << regmap.ADDRESS_WIDTH) - 1, 2)
        assert device.transport.read(regmap.address("N_MAX"), 2) == [N_MAX, K_MAX]
    assert raised.value.reply.count == 0
    assert server.events["rejected"] - before["rejected"] == 2


def test_raw_tty_bytes_from_any_client(server):
    """A client that is not the host library: raw bytes on the tty get the protocol's reply."""
    import serial

    with serial.Serial(server.path, 115200, timeout=5.0) as port:
        port.write(b"\x00" + Request(7, OP_READ, regmap.address("MAGIC"), 1).encode())
        reply = port.read_until(b"\x00")
    from tiersolve.host.protocol import Reply

    decoded = Reply.decode(reply[:-1])
    assert (decoded.seq, decoded.data) == (7, (regmap.MAGIC,))


def test_link_faults_parameters():
    with pytest.raises(ValueError, match="unknown fault 'melt'"):
        LinkFaults(to_device={0: "melt"})
    with pytest.raises(ValueError, match="rate"):
        LinkFaults(rate=1.5)
    with pytest.raises(TypeError, match="rate"):
        LinkFaults(rate="often")
    with pytest.raises(ValueError, match="frame numbers"):
        LinkFaults(to_host={-1: "lose"})
    faults = LinkFaults(to_device={0: "truncate", 2: "garbage"})
    wire = b"\x00\x03ab\x00\x03cd\x00\x03ef\x00"
    assert faults.to_device.feed(wire[:5]) + faults.to_device.feed(wire[5:]) == \
        b"\x00\x03\x00\x03cd\x00" + bytes([0x55, 0xAA, 0x13, 0x7E, 0xFF, 0x01, 0]) + b"\x03ef\x00"


def test_sim_serve_command_in_a_subprocess(tmp_path):
    """``tiersolve sim-serve --cores cholesky,updater`` prints its tty, serves a host through a
    symbolic link, and stops cleanly on SIGINT (Ctrl-C), removing the link."""
    link = tmp_path / "solver-tty"
    process = subprocess.Popen(
        [sys.executable, "-m", "tiersolve.host.cli", "sim-serve", "--n-max", "3", "--k-max", "1",
         "--lanes", "1", "--cores", "cholesky,updater", "--link", str(link)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_line = process.stdout.readline()
        assert "serving a simulated 3x1 Q6.12 solver on /dev/" in first_line, \
            first_line + process.stderr.read()
        assert os.path.islink(link)
        with tiersolve.host.open(f"uart://{link}?timeout=5") as device:
            info = device.info()
            assert (info.n_max, info.k_max, info.cores) == (3, 1, ("cholesky", "updater"))
            x = device.solve(np.diag([2.0, 4.0, 8.0]), [1.0, 1.0, 1.0])
        assert x == pytest.approx([0.5, 0.25, 0.125], abs=1e-3)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 130
        assert not os.path.lexists(link)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_server_parameters():
    with pytest.raises(ValueError, match="bus="):
        SimulatedDeviceServer(bus="uart", n_max=2, k_max=1, lanes=1)
    with pytest.raises(TypeError, match="faults"):
        SimulatedDeviceServer(faults="drop", n_max=2, k_max=1, lanes=1)
    with pytest.raises(ValueError, match="poll_cycles"):
        SimulatedDeviceServer(poll_cycles=0, n_max=2, k_max=1, lanes=1)


class UartLinePort:
    """A byte port whose far end is a SolverDesign built with ``bus="uart"``, in simulation:
    the port serialises request bytes to 8N1 bits on ``rx`` and decodes the bits on ``tx``
    (sampling each bit in its middle). Time advances only in :meth:`read`, until a reply
    delimiter has been decoded or ``wait_cycles`` have passed."""

    def __init__(self, design, wait_cycles=200_000):
        from amaranth.sim import Simulator

        self.design = design
        self.divisor = design.divisor
        self.wait_cycles = wait_cycles
        self.cycles = 0
        self.bits = []            # line levels still to drive, one per bit period
        self.received = bytearray()
        self.delimiters = 0
        self.simulator = Simulator(design)
        self.simulator.add_clock(1 / design.registers.clock_frequency)
        self.simulator.add_testbench(self._line)

    async def _line(self, ctx):
        divisor = self.divisor
        phase = 0                 # cycles into the current rx bit
        receiving = None          # (cycles into the tx frame, bits so far) while decoding
        async for _clock, _reset, tx in ctx.tick().sample(self.design.tx):
            self.cycles += 1
            if self.bits:
                ctx.set(self.design.rx, self.bits[0])
                phase += 1
                if phase == divisor:
                    phase = 0
                    self.bits.pop(0)
            else:
                ctx.set(self.design.rx, 1)
            if receiving is None:
                if not tx:
                    receiving = (1, [])
                continue
            elapsed, bits = receiving
            elapsed += 1
            if elapsed % divisor == divisor // 2 and elapsed > divisor:
                bits.append(tx)
            if len(bits) == 9:    # 8 data bits and the stop bit
                assert bits[8] == 1, "framing error on tx"
                byte = sum(bit << index for index, bit in enumerate(bits[:8]))
                self.received.append(byte)
                self.delimiters += byte == 0
                receiving = None
            else:
                receiving = (elapsed, bits)

    def write(self, data):
        for byte in bytes(data):
            self.bits += [0] + [byte >> index & 1 for index in range(8)] + [1]
        return len(data)

    def read(self, size=1):
        start = self.cycles
        while self.delimiters == 0 and self.cycles - start < self.wait_cycles:
            self.simulator.advance()
        data = bytes(self.received[:size])
        del self.received[:size]
        self.delimiters -= data.count(0)
        return data

    @property
    def in_waiting(self):
        return len(self.received)


@pytest.mark.slow
def test_bit_level_uart_phy_in_the_loop():
    """SolverDesign(bus="uart") with the UART PHY, 4 clock cycles per bit: identity and a solve
    bit-exact with the model, every byte serialised to and from line levels (about 7 s)."""
    from tiersolve.designs.top import SolverDesign
    from tiersolve.host.device import Device
    from tiersolve.host.transport import FramedTransport

    design = SolverDesign(n_max=2, k_max=1, lanes=1, bus="uart", clock_frequency=12_000_000,
                          baud_rate=3_000_000)
    assert design.divisor == 4
    port = UartLinePort(design)
    device = Device(FramedTransport(port, timeout=1e-6, retries=1))
    assert (device.info().n_max, device.info().max_burst) == (2, 64)
    job = device.plan_solve(np.array([[3.0, 1.0], [1.0, 2.0]]), [1.0, -1.0])
    assert np.array_equal(device.run(job), model_of(device, job))
    assert device.transport.statistics["retries"] == 0
    assert port.cycles > 10 * 4 * device.transport.statistics["bytes_received"]


# -- the incremental-update core over the pty (cores=cholesky,updater) ---------------------------


@pytest.fixture(scope="module")
def updater_server():
    with SimulatedDeviceServer(n_max=N_MAX, k_max=K_MAX, lanes=1, fmt="Q6.12",
                               cores=("cholesky", "updater")).start() as srv:
        yield srv


def updater_rows(seed, rows=5, n=3, k=2):
    rng = np.random.default_rng(seed)
    H = rng.uniform(-1, 1, size=(rows, n))
    T = H @ rng.uniform(-1, 1, size=(n, k)) + 0.05 * rng.normal(size=(rows, k))
    return H, T


def test_updater_session_is_bit_exact_over_the_pty(updater_server):
    """reset(lam), updates (the last with forget=0.9), a downdate, weights and predict over
    uart://<pty>: R, Z, W and the predictions equal the model fed the same integers."""
    H, T = updater_rows(31)
    executed_before = updater_server.events["executed"]
    with open_device(updater_server) as device:
        assert device.info().cores == ("cholesky", "updater")
        device.reset(0.25, n=3, k=2, feature_bound=1.0, target_bound=float(np.max(np.abs(T))),
                     capacity=len(H))
        model = head_model(device)
        head = device.head
        h_int, t_int = head.quantise_rows(H, T)
        device.update(H[:-1], T[:-1])
        device.update(H[-1], T[-1], forget=0.9)
        for index, (h, t) in enumerate(zip(h_int, t_int, strict=True)):
            model.update(h, t, beta=0.9 if index == len(H) - 1 else 1.0)
        device.downdate(H[1], T[1])
        assert not model.downdate(h_int[1], t_int[1]).refused
        assert np.array_equal(device_ints(device, regmap.UpdaterSelect.R, 3), model.R)
        assert np.array_equal(device_ints(device, regmap.UpdaterSelect.Z, 2), model.Z)
        f = head.config.fmt.frac_bits
        assert np.array_equal(device.weights(), np.ldexp(model.solve().astype(float),
                                                         head.h_exponent - head.t_exponent - f))
        y = device.predict(H[:2])
        for row, h in enumerate(h_int[:2]):
            assert np.array_equal(y[row], np.ldexp(model.predict(h).astype(float),
                                                   -head.t_exponent - f))
        assert not model.saturated
        statistics = device.transport.statistics
        assert statistics["retries"] == 0 and statistics["discarded_frames"] == 0
        assert updater_server.events["executed"] - executed_before == statistics["requests"]


def test_damaged_update_requests_are_applied_once(updater_server):
    """During updates: the first update's command write has a bit flipped (NACKed, resent)
    and its UPDATER_DATA write arrives twice (the copy is dropped as a duplicate); the second
    update's UPDATER_DATA reply is lost (the retry is answered from the replay memory). Had any
    row word been taken twice, R and Z would differ from the model's."""
    H, T = updater_rows(32, rows=3)
    before = dict(updater_server.events)
    with open_device(updater_server, timeout=0.3) as device:
        device.reset(0.25, n=3, k=2, feature_bound=1.0, target_bound=float(np.max(np.abs(T))),
                     capacity=len(H))
        model = head_model(device)
        h_int, t_int = device.head.quantise_rows(H, T)
        # frames counted from here: 0 = command write, 1 = UPDATER_DATA write, 2.. = polls
        first = LinkFaults(to_device={0: "flip", 1: "duplicate"})
        updater_server.faults = first
        device.update(H[0], T[0], forget=0.95)
        second = LinkFaults(to_host={1: "lose"})
        updater_server.faults = second
        device.update(H[1], T[1])
        updater_server.faults = None
        device.update(H[2], T[2])
        model.update(h_int[0], t_int[0], beta=0.95)
        model.update(h_int[1], t_int[1])
        model.update(h_int[2], t_int[2])
        assert np.array_equal(device_ints(device, regmap.UpdaterSelect.R, 3), model.R)
        assert np.array_equal(device_ints(device, regmap.UpdaterSelect.Z, 2), model.Z)
        statistics = device.transport.statistics
        delta = {name: updater_server.events[name] - before[name] for name in before}
    assert first.to_device.damaged == {"flip": 1, "duplicate": 1}
    assert second.to_host.damaged == {"lose": 1}
    assert statistics["retries"] >= 2
    assert delta["executed"] == statistics["requests"]
    assert delta["nacked"] >= 1 and delta["replayed"] >= 1 and delta["rejected"] == 0


def test_sim_serve_with_a_bad_link_fails_cleanly(tmp_path, capsys):
    """A --link that cannot be made is a one-line error, and the server it abandons leaves no
    coroutine that was never awaited (Python warned about one when the process ended)."""
    import gc
    import warnings

    from tiersolve.host.cli import main

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["sim-serve", "--n-max", "4", "--k-max", "1", "--lanes", "1",
                     "--link", str(tmp_path / "missing" / "tty")]) == 2
        gc.collect()
    assert "cannot link" in capsys.readouterr().err
    assert not [w for w in caught if "never awaited" in str(w.message)]
