"""``tiersolve sim-serve``: the simulated device behind a pseudo-terminal.

:class:`SimulatedDeviceServer` runs a :class:`~tiersolve.designs.top.SolverDesign` (built with
``bus="bytes"``) in Amaranth's simulator and connects the frame bridge's byte streams to the
master side of a pseudo-terminal (:func:`os.openpty`, raw mode). The slave side
(:attr:`SimulatedDeviceServer.path`, e.g. ``/dev/pts/7``) behaves like the serial port of a
board: any serial client can talk to it, in particular the host library through
``tiersolve.host.open("uart:///dev/pts/7")``. This tests the real tty path (pyserial, termios,
timeouts, partial reads) against the same gateware that a board runs.

Timing
------
The simulator runs while there is work: bytes waiting to enter the design, a busy core, or a
bridge that received bytes or sent a reply less than ``linger_cycles`` cycles ago (long enough
to cover the bridge's bus timeout, so every frame is answered). Otherwise the server sleeps in
``select`` until the host sends again, so an idle server costs no CPU. The bytes are exchanged
with the tty every ``poll_cycles`` cycles and at every reply delimiter. Amaranth's simulator
does about 25k cycles/s, so replies take milliseconds to seconds; give the host a generous
``timeout`` (e.g. ``uart:///dev/pts/7?timeout=2``). The line rate (``baud``) of the tty is
irrelevant: a pty moves bytes as fast as both ends go.

Faults
------
:class:`LinkFaults` damages the frames that pass through the server in either direction
(dropped bytes, flipped bits, truncated, duplicated or lost frames, garbage between frames),
by frame number or at random, to test the host's recovery over a real tty.
"""

from __future__ import annotations

import collections
import os
import random
import select
import signal
import sys
import threading
import tty

__all__ = ["COMMAND", "FAULT_ACTIONS", "LinkFaults", "SimulatedDeviceServer"]

#: What :class:`LinkFaults` can do to one frame.
FAULT_ACTIONS = ("drop", "flip", "truncate", "duplicate", "garbage", "lose")

_GARBAGE = bytes([0x55, 0xAA, 0x13, 0x7E, 0xFF, 0x01]) + b"\x00"


class _FrameDamager:
    """One direction of :class:`LinkFaults`: cuts the byte stream into frames at ``0x00``."""

    def __init__(self, schedule, rate, rng, actions):
        self.schedule = dict(schedule)
        self.rate = rate
        self.rng = rng
        self.actions = actions
        self.frames = 0          # non-empty frames seen
        self.damaged = collections.Counter()
        self._pending = bytearray()

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for chunk_index, chunk in enumerate(bytes(data).split(b"\x00")):
            if chunk_index > 0:  # a delimiter closed the pending frame
                out += self._frame(bytes(self._pending))
                self._pending.clear()
            self._pending += chunk
        return bytes(out)

    def _frame(self, frame: bytes) -> bytes:
        if not frame:
            return b"\x00"
        index = self.frames
        self.frames += 1
        action = self.schedule.get(index)
        if action is None and self.rate and self.rng.random() < self.rate:
            action = self.rng.choice(self.actions)
        if action is None:
            return frame + b"\x00"
        self.damaged[action] += 1
        middle = len(frame) // 2
        if action == "drop":        # one byte lost on the line
            return frame[:middle] + frame[middle + 1:] + b"\x00"
        if action == "flip":        # one bit inverted (never into a zero, which would re-frame)
            byte = frame[middle] ^ 0x10 or frame[middle] ^ 0x20
            return frame[:middle] + bytes([byte]) + frame[middle + 1:] + b"\x00"
        if action == "truncate":    # the frame ends early
            return frame[:max(middle, 1)] + b"\x00"
        if action == "duplicate":
            return (frame + b"\x00") * 2
        if action == "garbage":     # line noise, then the intact frame
            return _GARBAGE + frame + b"\x00"
        return b""                  # "lose": the whole frame, delimiter included


class LinkFaults:
    """Damage frames between the tty and the simulated design.

    Frames are counted per direction from 0 (empty frames, i.e. extra delimiters, are passed on
    and not counted). A frame listed in a schedule, or else chosen at random with probability
    ``rate``, gets one of :data:`FAULT_ACTIONS`:

    ``drop``
        The byte in the middle of the frame is removed.
    ``flip``
        One bit of the byte in the middle is inverted (never producing a ``0x00``).
    ``truncate``
        Only the first half of the frame is sent, then the delimiter.
    ``duplicate``
        The frame is sent twice.
    ``garbage``
        Non-zero noise bytes and a delimiter come before the intact frame.
    ``lose``
        The frame and its delimiter vanish.

    Parameters
    ----------
    to_device, to_host : dict of int to str
        Frame number -> action, for requests (host to device) and replies (device to host).
    rate : float
        Probability, 0..1, that an unscheduled frame (either direction) is damaged.
    seed : int
        Seed of the random choices.
    actions : sequence of str
        Actions the random faults choose from (default all).

    Attributes
    ----------
    to_device, to_host
        The two directions; each has ``frames`` (non-empty frames seen) and ``damaged`` (a
        :class:`collections.Counter` of the actions applied).
    """

    def __init__(self, to_device=None, to_host=None, *, rate: float = 0.0, seed: int = 0,
                 actions=FAULT_ACTIONS):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise TypeError(f"rate must be a number, not {rate!r}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, not {rate!r}")
        actions = tuple(actions)
        if not actions:
            raise ValueError("actions must name at least one fault")
        schedules = [dict(to_device or {}), dict(to_host or {})]
        for action in actions + tuple(a for s in schedules for a in s.values()):
            if action not in FAULT_ACTIONS:
                raise ValueError(f"unknown fault {action!r}; known: {', '.join(FAULT_ACTIONS)}")
        for schedule in schedules:
            for index in schedule:
                if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                    raise ValueError(f"frame numbers must be non-negative integers, not "
                                     f"{index!r}")
        rng = random.Random(seed)
        self.to_device = _FrameDamager(schedules[0], rate, rng, actions)
        self.to_host = _FrameDamager(schedules[1], rate, rng, actions)


class SimulatedDeviceServer:
    """A simulated :class:`~tiersolve.designs.top.SolverDesign` served on a pseudo-terminal.

    Parameters
    ----------
    faults : LinkFaults or None
        Damage applied to the frames in both directions (may be replaced at any time through
        the attribute of the same name).
    poll_cycles : int
        Simulated cycles between two exchanges of bytes with the tty.
    linger_cycles : int or None
        Cycles the simulator keeps running after the last byte moved while the core is idle
        (default: the bridge's bus timeout plus the time to move the longest frames).
    **design_parameters
        Passed to :class:`~tiersolve.designs.top.SolverDesign` (``n_max``, ``k_max``, ``fmt``,
        ``lanes``, ``cores``, ...); ``bus`` is ``"bytes"``.

    Attributes
    ----------
    design : SolverDesign
    path : str
        The slave side of the pty: the serial device clients open.
    cycles : int
        Clock cycles simulated so far.
    events : dict
        Frames the bridge ``executed``, ``rejected``, ``replayed`` and ``nacked`` (its pulses).
    mute : bool
        While true, the device does not answer: bytes from the host are read and discarded.

    Use :meth:`start` (a background thread) and :meth:`close`, or :meth:`serve_forever`.
    """

    def __init__(self, *, faults: LinkFaults | None = None, poll_cycles: int = 64,
                 linger_cycles: int | None = None, **design_parameters):
        from amaranth.sim import Simulator
        from tiersolve.designs.top import SolverDesign

        if faults is not None and not isinstance(faults, LinkFaults):
            raise TypeError(f"faults must be a LinkFaults or None, not {faults!r}")
        for name, value in (("poll_cycles", poll_cycles), ("linger_cycles", linger_cycles)):
            if value is None and name == "linger_cycles":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be positive, not {value}")
        design_parameters.setdefault("bus", "bytes")
        if design_parameters["bus"] != "bytes":
            raise ValueError(f"sim-serve feeds the design bytes; bus="
                             f"{design_parameters['bus']!r}")
        self.design = SolverDesign(**design_parameters)
        if linger_cycles is None:
            linger_cycles = self.design.bus_timeout + 16 * self.design.max_burst + 1024
        self.faults = faults
        self.poll_cycles = poll_cycles
        self.linger_cycles = linger_cycles
        self.cycles = 0
        self.events = dict.fromkeys(("executed", "rejected", "replayed", "nacked"), 0)
        self.mute = False
        self._stop = threading.Event()
        self._thread = None
        self._error = None
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._simulator = Simulator(self.design)
        self._simulator.add_clock(1 / self.design.registers.clock_frequency)
        # the byte pump is added when the server first runs: a server closed before that
        # (a failed --link, say) leaves no coroutine that was never awaited
        self._pump_added = False

    # -- the byte pump ----------------------------------------------------------------------

    def _receive(self, timeout: float) -> bytes:
        """Bytes the host sent (after the faults), waiting at most ``timeout`` seconds."""
        readable, _, _ = select.select([self._master], [], [], timeout)
        if not readable:
            return b""
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):  # EIO: no client has the slave open (we do, though)
            return b""
        if self.mute:
            return b""
        return self.faults.to_device.feed(data) if self.faults else data

    def _send(self, data: bytes) -> None:
        if self.faults:
            data = self.faults.to_host.feed(data)
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                select.select([], [self._master], [], 0.05)
                continue
            view = view[written:]

    async def _serve(self, ctx):
        design = self.design
        rx, tx, bridge = design.rx, design.tx, design.bridge
        registers = design.registers
        busy_flags = [registers.cholesky.busy]
        if registers.updater is not None:   # an update keeps the simulator running too
            busy_flags.append(registers.updater.busy)
        to_device = collections.deque()
        from_device = bytearray()
        ctx.set(tx.ready, 1)
        offered = False
        quiet = 0               # cycles since the last byte moved, while the core is idle
        pulses = ("executed", "rejected", "replayed", "nacked")
        samples = ctx.tick().sample(rx.ready, tx.valid, tx.payload, *busy_flags,
                                    *(getattr(bridge, name) for name in pulses))
        async for _clock, _reset, rx_ready, tx_valid, tx_byte, *values in samples:
            busy, pulse_values = any(values[:len(busy_flags)]), values[len(busy_flags):]
            self.cycles += 1
            quiet += 1
            if offered and rx_ready:
                to_device.popleft()
                quiet = 0
            if tx_valid:
                from_device.append(tx_byte)
                quiet = 0
            if busy:
                quiet = 0
            for name, value in zip(pulses, pulse_values, strict=True):
                self.events[name] += value
            if self.cycles % self.poll_cycles == 0 or (tx_valid and tx_byte == 0):
                if from_device:
                    if not self.mute:
                        self._send(bytes(from_device))
                    from_device.clear()
                idle = not to_device and quiet >= self.linger_cycles
                while True:
                    if self._stop.is_set():
                        return
                    data = self._receive(0.05 if idle else 0)
                    if data:
                        to_device.extend(data)
                        quiet = 0
                    if data or not idle:
                        break
            offered = bool(to_device)
            if offered:
                ctx.set(rx.payload, to_device[0])
            ctx.set(rx.valid, offered)

    # -- lifetime ---------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Run the simulated device in this thread until :meth:`close` (or an exception)."""
        if not self._pump_added:
            self._simulator.add_testbench(self._serve)
            self._pump_added = True
        try:
            self._simulator.run()
        except BaseException as error:
            self._error = error
            raise

    def start(self) -> SimulatedDeviceServer:
        """Run the simulated device in a background (daemon) thread; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")

        def run():
            try:
                self.serve_forever()
            except BaseException:  # noqa: BLE001 - kept in self._error, raised by close()
                pass

        self._thread = threading.Thread(target=run, name=f"sim-serve {self.path}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the simulator, close the pty, and raise what the server thread raised, if any."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = -1
        error, self._error = self._error, None
        if error is not None and not isinstance(error, KeyboardInterrupt):
            raise RuntimeError("the simulated device failed") from error

    @property
    def url(self) -> str:
        """The device URL for :func:`tiersolve.host.open`."""
        return f"uart://{self.path}"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# -- command line: tiersolve sim-serve ------------------------------------------------------------


def _setup_sim_serve(parser):
    parser.add_argument("--n-max", type=int, default=16, help="largest n (default 16)")
    parser.add_argument("--k-max", type=int, default=4, help="largest k (default 4)")
    parser.add_argument("--lanes", type=int, default=4, help="MAC lanes (default 4)")
    parser.add_argument("--format", default="Q6.12", help="data format (default Q6.12)")
    parser.add_argument("--max-burst", type=int, default=64,
                        help="longest bridge burst in words (default 64)")
    parser.add_argument("--cores", default="cholesky",
                        help="comma-separated cores to build, e.g. cholesky,updater "
                             "(default cholesky)")
    parser.add_argument("--link", metavar="PATH",
                        help="also make PATH a symbolic link to the pty (replaced if it is one)")
    parser.add_argument("--fault-rate", type=float, default=0.0,
                        help="probability that a frame is damaged, either way (default 0)")
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the faults")


def _run_sim_serve(args) -> int:
    from .cli import CliError
    from .device import core_list

    try:
        faults = (LinkFaults(rate=args.fault_rate, seed=args.fault_seed)
                  if args.fault_rate else None)
        server = SimulatedDeviceServer(n_max=args.n_max, k_max=args.k_max, lanes=args.lanes,
                                       fmt=args.format, max_burst=args.max_burst,
                                       cores=core_list(args.cores), faults=faults)
    except (TypeError, ValueError) as error:
        raise CliError(str(error)) from None
    with server:
        if args.link:
            try:
                if os.path.islink(args.link):
                    os.unlink(args.link)
                os.symlink(server.path, args.link)
            except OSError as error:
                raise CliError(f"cannot link {args.link} to {server.path}: "
                               f"{error.strerror}") from None
        print(f"serving a simulated {server.design.identity()['N_MAX']}x"
              f"{server.design.identity()['K_MAX']} {server.design.fmt} solver on {server.path}",
              flush=True)
        print(f"connect with: --device '{server.url}?timeout=2'  (Ctrl-C stops)", flush=True)
        # Ctrl-C asks the serving loop to stop at its next poll (within about 50 ms when
        # idle) instead of raising KeyboardInterrupt wherever the simulator happens to be.
        interrupted = threading.Event()

        def stop_serving(_signum, _frame):
            interrupted.set()
            server._stop.set()

        previous = signal.signal(signal.SIGINT, stop_serving)
        try:
            server.serve_forever()
        finally:
            signal.signal(signal.SIGINT, previous)
            if args.link and os.path.islink(args.link):
                os.unlink(args.link)
    if interrupted.is_set():
        print("interrupted", file=sys.stderr)
        return 130
    return 0


#: The ``sim-serve`` subcommand for :mod:`tiersolve.host.cli`: (setup, run, help).
COMMAND = (_setup_sim_serve, _run_sim_serve,
           "serve a simulated solver on a pseudo-terminal (a serial port for any client)")

if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["sim-serve", *sys.argv[1:]]))
