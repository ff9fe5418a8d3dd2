"""``tiersolve bench link``: wire efficiency, round trips and end-to-end time of the host link.

What is measured, all from frames that really travel (byte counts of
:class:`~tiersolve.host.protocol.RegisterLink`, whose ``statistics`` count every byte written
to and read from the port):

- **wire efficiency** of one burst of ``1 .. max_burst`` words, written (fixed address, to
  ``LAMBDA``) and read (fixed address, from ``MAGIC``): payload bytes (4 per word) divided by
  the wire bytes of the frame that carries them (*data direction*), and by the wire bytes of
  the whole round trip, request and reply (*round trip*). The written words have no zero byte
  and ``MAGIC`` reads ``"TSLV"``, so COBS meets its worst case: the numbers are lower bounds
  for any data. The sweep runs on the device's own link when it has one (``sim``, ``vsim``,
  ``uart``), otherwise against :class:`~tiersolve.host.protocol.DeviceModel`, the byte-exact
  model of the bridge.
- **round trips per job**: requests, polls, bytes sent and received for ``Device.solve`` and
  ``Device.fit`` at a few ``n``, ``k``, ``m``. The number of ``STATUS`` polls depends on how
  fast the host polls compared with the core, so the table also gives the counts with exactly
  one poll (the one that sees ``done``), which is what a host that waits for the core's time
  before polling sends; the time model below uses those.
- **end-to-end time** of each job, split into *link* (wire bytes with one poll, 10 bits per
  byte for 8N1, at the baud rate) and *core* (the core's ``CYCLES`` register, counted from the
  command to the end of the job, divided by the clock). Their sum is an upper bound: the core
  accumulates Gram rows (or stores direct-mode rows) while later rows are still on the wire.
  The lower bound is the link plus the core's cycles after the last input value
  (:func:`core_cycles_from_formula`, ``tail``), which nothing hides. Not included: the device's
  turnaround (a few cycles per request) and the host's own latency per round trip (a USB-UART
  adapter adds its latency timer, often 1 ms, to every request: ``--round-trip-us``).
- **n = 64 over a UART**: the same split at 3 Mbaud and 12 Mbaud, from the measured byte
  counts and core cycles of the ``n = 64`` jobs when the device has ``n_max >= 64`` (the
  default ``vsim://`` device does), otherwise from the protocol's frame sizes and the core's
  cycle formula (:func:`tiersolve.gen.cholesky_model.cycle_model`), marked as such. The core
  clock is the device's, raised where needed to the lowest clock the UART PHY can divide down
  to the baud rate (4 cycles per bit: 12 Mbaud needs 48 MHz).

- **incremental update and downdate** (devices with ``cores=cholesky,updater``): requests,
  polls and bytes of one ``Device.update`` row (with forgetting) and one ``Device.downdate``
  row after ``Device.reset(lam)`` and a few rows, at a few ``n``, ``k``
  (:func:`updater_link_profile`); each is four command registers, the ``n + k`` row values to
  ``UPDATER_DATA`` and the ``UPDATER_STATUS`` polls (:func:`updater_wire_bound`). They join the
  jobs table (``m`` = 1 row) and the UART split at ``n = 64``, ``k = 4``, where the core's
  share is the ``CYCLES`` register of the updater (or
  :meth:`tiersolve.gen.qr.IncrementalUpdater.update_cycles`); the part after the last row
  value, which no link hides, is the formula minus the ``1 + n + k`` input cycles.

Results: the tables on stdout and in ``<out>/link.md``, everything in ``<out>/link.json``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from tiersolve.designs import regmap
from tiersolve.host.protocol import (
    REPLY_OVERHEAD,
    REQUEST_OVERHEAD,
    DeviceModel,
    RegisterLink,
    cobs_max_encoded_length,
)

__all__ = [
    "BITS_PER_BYTE",
    "HELP",
    "UART_BAUDS",
    "WORST_CASE_WORD",
    "ModelBytePort",
    "add_arguments",
    "burst_efficiency",
    "core_cycles_from_formula",
    "frame_wire_bound",
    "job_link_profile",
    "job_wire_bound",
    "markdown_tables",
    "run",
    "uart_projection",
    "updater_cycles_from_formula",
    "updater_link_profile",
    "updater_wire_bound",
]

HELP = "wire efficiency, round trips per job and end-to-end time (link + core) of the host link"

#: Bits on the line per byte for 8N1 framing (start bit, 8 data bits, stop bit).
BITS_PER_BYTE = 10

#: UART rates of the n = 64 projection.
UART_BAUDS = (3_000_000, 12_000_000)

#: A data word without zero bytes: COBS cannot shorten a frame of them (worst case).
WORST_CASE_WORD = 0x5A5A5A5A

#: Smallest UART bit period in clock cycles (:data:`tiersolve.designs.uart.MIN_DIVISOR`).
_MIN_DIVISOR = 4

_DEFAULT_DEVICE = "vsim://?n_max=64&k_max=4&lanes=4&format=Q6.12&cores=cholesky,updater"
_DEFAULT_SIM_DEVICE = "sim://?n_max=3&k_max=1&lanes=2&format=Q6.12&cores=cholesky,updater"

#: Kinds of the updater's per-row operations.
UPDATER_KINDS = ("update", "downdate")


class ModelBytePort:
    """A byte port whose far end is :class:`~tiersolve.host.protocol.DeviceModel` over a memory.

    The model answers each frame as soon as its delimiter is written, byte for byte as the
    gateware bridge does; reads return the queued answer.

    Parameters
    ----------
    max_burst : int
        The modelled bridge's ``max_burst``.

    Attributes
    ----------
    memory : dict
        Word address -> value of the modelled bus (unwritten addresses read 0). ``MAGIC``
        holds :data:`~tiersolve.designs.regmap.MAGIC`, as on a device.
    """

    def __init__(self, max_burst: int = 64):
        self.memory: dict[int, int] = {regmap.address("MAGIC"): regmap.MAGIC}
        self.model = DeviceModel(lambda address: self.memory.get(address, 0),
                                 self.memory.__setitem__, max_burst=max_burst,
                                 address_width=regmap.ADDRESS_WIDTH)
        self._from_device = bytearray()

    def write(self, data: bytes) -> int:
        self._from_device += self.model.feed(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        data = bytes(self._from_device[:size])
        del self._from_device[:size]
        return data

    @property
    def in_waiting(self) -> int:
        return len(self._from_device)


# -- frame sizes from the wire format ---------------------------------------------------------


def frame_wire_bound(raw_length: int) -> int:
    """Wire bytes of a frame of ``raw_length`` raw bytes, at most: COBS plus the delimiter.

    Exact for ``raw_length <= 253`` (COBS then adds exactly one code byte) and for frames whose
    zero-free runs are all shorter than 254 bytes; an upper bound otherwise.
    """
    return cobs_max_encoded_length(raw_length) + 1


def _burst_bound(count: int, write: bool) -> tuple[int, int]:
    """(request, reply) wire-byte bounds of one burst of ``count`` words."""
    data = 4 * count
    return (frame_wire_bound(REQUEST_OVERHEAD + (data if write else 0)),
            frame_wire_bound(REPLY_OVERHEAD + (0 if write else data)))


def _bursts(words: int, max_burst: int) -> list[int]:
    return [min(max_burst, words - start) for start in range(0, words, max_burst)]


def job_wire_bound(kind: str, n: int, k: int, m: int = 0, *, max_burst: int = 64,
                   polls: int = 1) -> dict:
    """Requests and wire bytes of one ``Device.solve`` / ``Device.fit``, from the wire format.

    The frames of :meth:`tiersolve.host.device.Device.run`: one burst of the four setup
    registers, the rows to ``ROW_DATA`` (``n`` rows of ``n + k`` words for a solve; ``m`` rows
    for a fit, whose last word goes to ``ROW_DATA_LAST`` in its own request), ``polls`` reads
    of ``STATUS``, ``CYCLES``, ``RESULT_COUNT`` and the ``n * k`` results.

    Returns
    -------
    dict
        ``requests``, ``bytes_sent``, ``bytes_received`` (upper bounds, exact for frames of at
        most 253 raw bytes) and ``payload_bytes``.
    """
    if kind not in ("solve", "fit"):
        raise ValueError(f"kind must be 'solve' or 'fit', not {kind!r}")
    row_words = (n if kind == "solve" else m) * (n + k)
    writes = [4]
    if kind == "solve":
        writes += _bursts(row_words, max_burst)
    else:
        writes += _bursts(row_words - 1, max_burst) + [1]
    reads = [3] * polls + _bursts(n * k, max_burst)
    return _wire_totals(writes, reads)


def _wire_totals(writes: list[int], reads: list[int]) -> dict:
    """Requests, wire bytes and payload bytes of write and read bursts (word counts)."""
    sent = received = 0
    for count, write in [(c, True) for c in writes] + [(c, False) for c in reads]:
        request, reply = _burst_bound(count, write)
        sent += request
        received += reply
    return {"requests": len(writes) + len(reads), "bytes_sent": sent,
            "bytes_received": received, "payload_bytes": 4 * (sum(writes) + sum(reads))}


def updater_wire_bound(n: int, k: int, *, max_burst: int = 64, polls: int = 1) -> dict:
    """Requests and wire bytes of one ``Device.update`` or ``Device.downdate`` row.

    The frames of :meth:`tiersolve.host.device.Device.updater_command`: one burst of the four
    registers ``UPDATER_SIZE`` .. ``UPDATER_COMMAND``, the ``n + k`` row values to
    ``UPDATER_DATA`` (bursts of at most ``max_burst``), ``polls`` reads of ``UPDATER_STATUS``,
    ``UPDATER_CYCLES``, ``UPDATER_COUNT``. Nothing is read back (the state stays on the device).

    Returns
    -------
    dict
        As :func:`job_wire_bound`.
    """
    writes = [4] + _bursts(n + k, max_burst)
    reads = [3] * polls
    return _wire_totals(writes, reads)


def updater_cycles_from_formula(kind: str, n: int, k: int, fmt, *, units: int = 1,
                                rotation: str = "multiplier", fold: bool = False,
                                forgetting=False) -> dict:
    """Updater cycles of one row from :meth:`~tiersolve.gen.qr.IncrementalUpdater.update_cycles`,
    or with ``fold`` (a row the host sent as a FOLD of one row, where that is the quicker)
    from :meth:`~tiersolve.gen.qr.IncrementalUpdater.fold_cycles` (``forgetting`` as there,
    for an update).

    Returns
    -------
    dict
        ``total``: the row with its values arriving one per cycle; ``tail``: the cycles after
        the last value (``total - 2 - (n + k)``: the command's cycle and its check come before
        the row), which no link can hide.
    """
    from tiersolve.gen.fixed import FixedFormat
    from tiersolve.host.device import updater_cycle_model

    if kind not in UPDATER_KINDS:
        raise ValueError(f"kind must be one of {UPDATER_KINDS}, not {kind!r}")
    fmt = FixedFormat.parse(fmt) if isinstance(fmt, str) else fmt
    updater = updater_cycle_model(n, k, str(fmt), units, rotation)
    if fold:    # a FOLD of downdates takes the cycles of one without forgetting
        total = updater.fold_cycles(n, k, 1, forgetting if kind == "update" else False)
    else:
        total = updater.update_cycles(n, k, hyperbolic=kind == "downdate")
    return {"total": total, "tail": total - 2 - (n + k)}


# -- measurements -----------------------------------------------------------------------------


def _delta(after: dict, before: dict) -> dict:
    return {key: after[key] - before.get(key, 0) for key in after}


def burst_efficiency(link: RegisterLink, max_burst: int, *,
                     write_address: int | None = None, read_address: int | None = None,
                     word: int = WORST_CASE_WORD) -> list[dict]:
    """Measure the wire bytes of one write and one read burst of each length ``1..max_burst``.

    Parameters
    ----------
    link : RegisterLink
        The link to measure (its ``statistics`` are read before and after each burst).
    max_burst : int
        Longest burst (at most the link's ``max_burst``, so that each burst is one request).
    write_address, read_address : int or None
        Fixed addresses of the bursts (default ``LAMBDA`` and ``MAGIC``).
    word : int
        The word written (default :data:`WORST_CASE_WORD`, no zero byte).

    Returns
    -------
    list of dict
        Per length ``words``: the wire bytes of the write request and its reply, of the read
        request and its reply, ``payload_bytes``, the efficiencies ``write_data_direction``
        (payload / write request), ``read_data_direction`` (payload / read reply),
        ``write_round_trip`` and ``read_round_trip`` (payload / request + reply), and the
        wire-format bounds ``write_request_bound`` and ``read_reply_bound``.
    """
    if isinstance(max_burst, bool) or not isinstance(max_burst, int):
        raise TypeError(f"max_burst must be an integer, not {max_burst!r}")
    if not 1 <= max_burst <= link.max_burst:
        raise ValueError(f"max_burst = {max_burst} must be 1..{link.max_burst} (the link's)")
    write_address = regmap.address("LAMBDA") if write_address is None else write_address
    read_address = regmap.address("MAGIC") if read_address is None else read_address
    link.ping()  # the session's first no-op must not be counted in a burst
    records = []
    for count in range(1, max_burst + 1):
        before = dict(link.statistics)
        link.write(write_address, [word] * count, fixed_address=True)
        written = _delta(link.statistics, before)
        before = dict(link.statistics)
        link.read(read_address, count, fixed_address=True)
        read = _delta(link.statistics, before)
        if written["requests"] != 1 or read["requests"] != 1 or written["retries"] or \
                read["retries"]:
            raise RuntimeError(f"a burst of {count} words took more than one attempt "
                               f"(write {written}, read {read})")
        payload = 4 * count
        write_bound, _ = _burst_bound(count, True)
        _, read_bound = _burst_bound(count, False)
        records.append({
            "words": count,
            "payload_bytes": payload,
            "write_request_bytes": written["bytes_sent"],
            "write_reply_bytes": written["bytes_received"],
            "read_request_bytes": read["bytes_sent"],
            "read_reply_bytes": read["bytes_received"],
            "write_request_bound": write_bound,
            "read_reply_bound": read_bound,
            "write_data_direction": payload / written["bytes_sent"],
            "read_data_direction": payload / read["bytes_received"],
            "write_round_trip": payload / (written["bytes_sent"] + written["bytes_received"]),
            "read_round_trip": payload / (read["bytes_sent"] + read["bytes_received"]),
        })
    return records


def _problem(kind: str, n: int, k: int, m: int, seed: int):
    """A well-conditioned random problem (inputs of ``solve`` or ``fit``) and its float64
    solution."""
    rng = np.random.default_rng(seed)
    if kind == "solve":
        h = rng.standard_normal((2 * n, n))
        a = h.T @ h / (2 * n) + 0.5 * np.eye(n)
        b = rng.uniform(-1, 1, (n, k))
        return (a, b), {}, np.linalg.solve(a, b)
    h = rng.uniform(-1, 1, (m, n))
    t = rng.uniform(-1, 1, (m, k))
    lam = 0.1 * m
    return (h, t), {"lam": lam}, np.linalg.solve(h.T @ h + lam * np.eye(n), h.T @ t)


def job_link_profile(device, kind: str, n: int, k: int, m: int = 0, *, seed: int = 0) -> dict:
    """Run one ``solve`` (``n`` by ``n``, ``k`` right-hand sides) or ``fit`` (``m`` rows) on
    ``device`` and return its link and core figures.

    Returns
    -------
    dict
        ``kind``, ``n``, ``k``, ``m``; measured ``requests``, ``polls``, ``bytes_sent``,
        ``bytes_received``, ``payload_bytes``, ``retries``, ``core_cycles`` (the ``CYCLES``
        register), ``sim_cycles`` (simulated transports: clock cycles of the whole job with
        the link moving one byte per cycle), ``wall_seconds``; the same counts with one poll
        (``requests_one_poll``, ``bytes_sent_one_poll``, ``bytes_received_one_poll``); the
        wire-format bounds (``bound``); ``efficiency`` (payload / all wire bytes, one poll);
        and ``max_error`` (largest deviation from float64, for the record).
    """
    args, options, exact = _problem(kind, n, k, m, seed)
    result = getattr(device, kind)(*args, **options)
    run = dict(device.last_run)
    max_burst = device.info().max_burst or getattr(device.transport, "max_burst", 64)
    extra_polls = run["polls"] - 1
    poll_request, poll_reply = _burst_bound(3, False)  # exact: frames of 10 and 19 raw bytes
    record = {
        "kind": kind, "n": n, "k": k, "m": m if kind == "fit" else n,
        "requests": run["requests"], "polls": run["polls"], "retries": run["retries"],
        "bytes_sent": run["bytes_sent"], "bytes_received": run["bytes_received"],
        "payload_bytes": run["payload_bytes"], "core_cycles": run["cycles"],
        "sim_cycles": run.get("sim_cycles"), "wall_seconds": run["seconds"],
        "requests_one_poll": run["requests"] - extra_polls,
        "bytes_sent_one_poll": run["bytes_sent"] - extra_polls * poll_request,
        "bytes_received_one_poll": run["bytes_received"] - extra_polls * poll_reply,
        "payload_bytes_one_poll": run["payload_bytes"] - extra_polls * 12,
        "bound": job_wire_bound(kind, n, k, m, max_burst=max_burst),
        "max_error": float(np.max(np.abs(np.reshape(result, exact.shape) - exact))),
    }
    info = device.info()
    record["tail_cycles"] = core_cycles_from_formula(kind, n, k, m, info.lanes, info.fmt,
                                                     info.inverse_format, info.n_max,
                                                     info.k_max)["tail"]
    wire = record["bytes_sent_one_poll"] + record["bytes_received_one_poll"]
    record["efficiency"] = record["payload_bytes_one_poll"] / wire
    return record


def updater_link_profile(device, n: int, k: int, *, rows: int = 4, forget: float = 0.95,
                         seed: int = 0) -> list[dict]:
    """Measure one ``update`` and one ``downdate`` row of ``n`` features, ``k`` targets.

    ``device.reset(lam=0.25, n, k)``, ``rows - 1`` updates, then the measured downdate (of the
    first row, folded in at full weight, so the rest stays positive definite) and the measured
    update (of the last row, with ``forget``).

    Returns
    -------
    list of dict
        One record per operation, with the keys of :func:`job_link_profile` (``m`` = 1; the
        bound from :func:`updater_wire_bound`; ``core_cycles`` the updater's ``CYCLES``
        register, ``tail_cycles`` from :func:`updater_cycles_from_formula`) but no
        ``max_error``.
    """
    if rows < 2:
        raise ValueError(f"rows must be at least 2 (the downdate removes one), not {rows}")
    rng = np.random.default_rng(seed)
    H = rng.uniform(-1, 1, (rows, n))
    T = rng.uniform(-1, 1, (rows, k))
    device.reset(0.25, n=n, k=k, feature_bound=1.0, target_bound=1.0, capacity=rows)
    device.update(H[:-1], T[:-1])
    info = device.info()
    max_burst = info.max_burst or getattr(device.transport, "max_burst", 64)
    poll_request, poll_reply = _burst_bound(3, False)
    transport = device.transport
    records = []
    for kind, call in (("downdate", lambda: device.downdate(H[0], T[0])),
                       ("update", lambda: device.update(H[-1], T[-1], forget=forget))):
        before = dict(transport.statistics)
        sim_before = getattr(transport, "cycles", None)
        call()
        run = dict(device.last_run)
        stats = _delta(transport.statistics, before)
        extra_polls = run["polls"] - 1
        record = {
            "kind": kind, "n": n, "k": k, "m": 1,
            "requests": stats["requests"], "polls": run["polls"], "retries": stats["retries"],
            "bytes_sent": stats["bytes_sent"], "bytes_received": stats["bytes_received"],
            "payload_bytes": stats["payload_bytes"], "core_cycles": run["cycles"],
            "sim_cycles": None if sim_before is None else transport.cycles - sim_before,
            "wall_seconds": run["seconds"],
            "requests_one_poll": stats["requests"] - extra_polls,
            "bytes_sent_one_poll": stats["bytes_sent"] - extra_polls * poll_request,
            "bytes_received_one_poll": stats["bytes_received"] - extra_polls * poll_reply,
            "payload_bytes_one_poll": stats["payload_bytes"] - extra_polls * 12,
            "bound": updater_wire_bound(n, k, max_burst=max_burst),
            "command": run["op"],
            "tail_cycles": updater_cycles_from_formula(
                kind, n, k, info.fmt, units=info.updater_units or 1,
                rotation=info.updater_rotation or "multiplier", fold=run["op"] == "FOLD",
                forgetting=device.head.config.forgetting_constant(forget))["tail"],
        }
        wire = record["bytes_sent_one_poll"] + record["bytes_received_one_poll"]
        record["efficiency"] = record["payload_bytes_one_poll"] / wire
        records.append(record)
    return records


def _link_seconds(wire_bytes: int, baud: float) -> float:
    return wire_bytes * BITS_PER_BYTE / baud


def _uart_clock(clock_hz: float, baud: float) -> float:
    """The design clock, raised to the lowest one the UART PHY can divide down to ``baud``."""
    return max(clock_hz, _MIN_DIVISOR * baud)


def _timing(record: dict, baud: float, clock_hz: float, round_trip_us: float) -> dict:
    wire = record["bytes_sent_one_poll"] + record["bytes_received_one_poll"]
    link = _link_seconds(wire, baud) + record["requests_one_poll"] * round_trip_us * 1e-6
    core = record["core_cycles"] / clock_hz
    tail = record["tail_cycles"] / clock_hz
    return {"baud": baud, "clock_hz": clock_hz, "link_seconds": link, "core_seconds": core,
            "tail_seconds": tail, "total_seconds": link + core,
            "total_lower_seconds": link + tail}


def core_cycles_from_formula(kind: str, n: int, k: int, m: int, lanes: int, fmt,
                             inverse_format=None, n_max=None, k_max=None) -> dict:
    """Core cycles of one job from :func:`tiersolve.gen.cholesky_model.cycle_model`
    (``n_max``, ``k_max``: the core's sizes, None for a core sized for the job).

    Returns
    -------
    dict
        ``tail``: cycles after the last input value has arrived (the last Gram row's
        accumulation for a fit, then factorisation, back substitution and output), which no
        link can hide; ``total``: an estimate of the whole job when the input is not held up
        by the link (Gram: clear pass plus ``m`` rows; direct: one input value per cycle).
    """
    from tiersolve.gen.cholesky_model import cycle_model
    from tiersolve.gen.fixed import FixedFormat
    from tiersolve.host.bench.cholesky import _rsqrt_latency

    fmt = FixedFormat.parse(fmt) if isinstance(fmt, str) else fmt
    inverse_format = fmt if inverse_format is None else inverse_format
    if isinstance(inverse_format, str):
        inverse_format = FixedFormat.parse(inverse_format)
    cycles = cycle_model(n, k, lanes, rows=m if kind == "fit" else 0,
                         rsqrt_latency=_rsqrt_latency(fmt, inverse_format), fmt=fmt,
                         inverse_format=inverse_format, n_max=n_max, k_max=k_max)
    tail = cycles["factor"] + cycles["solve"] + cycles["output"]
    if kind == "fit":
        return {"tail": cycles["gram_per_row"] + tail,
                "total": cycles["clear"] + m * cycles["gram_per_row"] + tail}
    return {"tail": tail, "total": n * (n + k) + tail}


def uart_projection(jobs: list[dict], *, n: int = 64, k: int = 4, m: int = 128,
                    bauds=UART_BAUDS, clock_hz: float = 12e6, round_trip_us: float = 0.0,
                    max_burst: int = 64, lanes: int = 4, fmt: str = "Q6.12",
                    updater_units: int = 1, updater_rotation: str = "multiplier",
                    updater_fold: bool = False, updater_fold_downdate: bool = False,
                    n_max: int | None = None, k_max: int | None = None) -> list[dict]:
    """End-to-end time of a solve and a fit of size ``n``, and of one update and one downdate
    row, over a UART at each of ``bauds``.

    Uses the measured job of that size from ``jobs`` when there is one (``source`` =
    ``"measured"``), else the wire-format bounds of :func:`job_wire_bound` (or
    :func:`updater_wire_bound`) and the core's cycle formula for ``lanes`` (or
    ``updater_units``, ``updater_rotation``) and ``fmt`` (``source`` =
    ``"protocol + cycle formula"``), on a Cholesky core of ``n_max`` and ``k_max`` (the
    device's; None, or a job larger than they are: a core sized for the job). On a design
    whose updater has FOLD (``updater_fold``; ``updater_fold_downdate``: its FOLD takes rows
    out too) the row goes as the command the host would send at that rate
    (:func:`~tiersolve.host.device.fold_beats_updates` with the UART's cycles a byte: a FOLD
    of one row where that ends sooner), named in ``command``.
    """
    records = []
    for kind, rows in (("solve", n), ("fit", m), ("update", 1), ("downdate", 1)):
        measured = [job for job in jobs if job["kind"] == kind and job["n"] == n
                    and job["k"] == k and job["m"] == rows]
        if measured:
            records += [_projected(measured[0], "measured", kind, n, k, rows, baud, clock_hz,
                                   round_trip_us) for baud in bauds]
            continue
        for baud in bauds:
            command = None
            if kind in UPDATER_KINDS:
                fold = (updater_fold if kind == "update" else updater_fold_downdate) and (
                    _fold_is_quicker(n, k, fmt, updater_units, updater_rotation,
                                     _uart_clock(clock_hz, baud), baud))
                command = "FOLD" if fold else kind.upper()
                bound = updater_wire_bound(n, k, max_burst=max_burst)
                core = updater_cycles_from_formula(kind, n, k, fmt, units=updater_units,
                                                   rotation=updater_rotation, fold=fold)
            else:
                bound = job_wire_bound(kind, n, k, rows, max_burst=max_burst)
                holds = n_max is not None and k_max is not None and n <= n_max and k <= k_max
                core = core_cycles_from_formula(kind, n, k, rows, lanes, fmt,
                                                n_max=n_max if holds else None,
                                                k_max=k_max if holds else None)
            basis = {"requests_one_poll": bound["requests"],
                     "bytes_sent_one_poll": bound["bytes_sent"],
                     "bytes_received_one_poll": bound["bytes_received"],
                     "payload_bytes_one_poll": bound["payload_bytes"],
                     "core_cycles": core["total"], "tail_cycles": core["tail"]}
            if command is not None:
                basis["command"] = command
            records.append(_projected(basis, "protocol + cycle formula", kind, n, k, rows,
                                      baud, clock_hz, round_trip_us))
    return records


def _fold_is_quicker(n: int, k: int, fmt, units: int, rotation: str, clock_hz: float,
                     baud: float) -> bool:
    """Whether the host sends a single row as a FOLD of one row at ``baud`` (the rule of
    :meth:`~tiersolve.host.device.Device.fold_is_quicker`, a UART byte being
    :data:`BITS_PER_BYTE` bits)."""
    from tiersolve.host.device import fold_beats_updates, updater_cycle_model

    core = updater_cycle_model(n, k, str(fmt), units, rotation)
    return fold_beats_updates(core, n, k, 1, byte_cycles=BITS_PER_BYTE * clock_hz / baud)


def _projected(basis: dict, source: str, kind: str, n: int, k: int, rows: int, baud: float,
               clock_hz: float, round_trip_us: float) -> dict:
    """One record of :func:`uart_projection`: ``basis`` (a measured job, or the wire bound and
    the cycle formula) at ``baud``."""
    timing = _timing(basis, baud, _uart_clock(clock_hz, baud), round_trip_us)
    record = {"kind": kind, "n": n, "k": k, "m": rows, "source": source,
              "requests": basis["requests_one_poll"],
              "wire_bytes": basis["bytes_sent_one_poll"] + basis["bytes_received_one_poll"],
              "core_cycles": basis["core_cycles"], "tail_cycles": basis["tail_cycles"],
              **timing, "jobs_per_second": 1 / timing["total_seconds"],
              "jobs_per_second_upper": 1 / timing["total_lower_seconds"]}
    if "command" in basis:
        record["command"] = basis["command"]
    return record


# -- output -----------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list], numeric_from: int = 1) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(" --- " if i < numeric_from else " ---: "
                            for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.2f}"


def markdown_tables(efficiency: list[dict], jobs: list[dict], projection: list[dict], *,
                    baud: float, clock_hz: float, round_trip_us: float = 0.0,
                    efficiency_source: str = "", notes: list[str] = ()) -> str:
    """The benchmark's markdown: efficiency, jobs and the UART projection, with notes."""
    lines = ["### Wire efficiency of one burst (payload / wire bytes)", ""]
    max_burst = efficiency[-1]["words"] if efficiency else 0
    shown = sorted({c for c in (1, 2, 4, 8, 16, 32, 64, 128, 256) if c <= max_burst}
                   | ({max_burst} if max_burst else set()))
    rows = []
    for record in efficiency:
        if record["words"] not in shown:
            continue
        rows.append([record["words"], record["payload_bytes"],
                     f"{record['write_request_bytes']} + {record['write_reply_bytes']}",
                     f"{record['read_request_bytes']} + {record['read_reply_bytes']}",
                     f"{record['write_data_direction']:.3f}",
                     f"{record['read_data_direction']:.3f}",
                     f"{record['write_round_trip']:.3f}", f"{record['read_round_trip']:.3f}"])
    lines += _table(["words", "payload bytes", "write: request + reply bytes",
                     "read: request + reply bytes", "write, data direction",
                     "read, data direction", "write, round trip", "read, round trip"], rows)
    if efficiency:
        full = efficiency[-1]
        goal = min(full["write_data_direction"], full["read_data_direction"])
        lines += ["", f"Measured {efficiency_source}; worst-case data (no zero bytes). Full "
                  f"burst ({max_burst} words): data-direction efficiency "
                  f"{goal:.3f} ({'meets' if goal >= 0.95 else 'misses'} the 0.95 goal); "
                  f"counting the reply of a write and the request of a read too: "
                  f"{full['write_round_trip']:.3f} / {full['read_round_trip']:.3f}."]

    lines += ["", "### Round trips and time per job", ""]
    rows = []
    for job in jobs:
        timing = _timing(job, baud, clock_hz, round_trip_us)
        rows.append([job["transport"], job["kind"], job["n"], job["k"], job["m"],
                     f"{job['requests']} ({job['polls']})", job["requests_one_poll"],
                     job["bytes_sent_one_poll"], job["bytes_received_one_poll"],
                     f"{job['efficiency']:.3f}", job["core_cycles"],
                     "—" if job["sim_cycles"] is None else job["sim_cycles"],
                     _ms(timing["link_seconds"]), _ms(timing["core_seconds"]),
                     _ms(timing["tail_seconds"]),
                     f"{_ms(timing['total_lower_seconds'])} – {_ms(timing['total_seconds'])}"])
    lines += _table(["device", "job", "n", "k", "m", "requests (polls)", "requests, 1 poll",
                     "bytes sent, 1 poll", "bytes received, 1 poll", "efficiency",
                     "core cycles", "sim cycles", f"link ms @ {baud / 1e6:g} Mbaud",
                     f"core ms @ {clock_hz / 1e6:g} MHz", "core after last row ms",
                     "total ms"], rows, numeric_from=2)
    lines += ["", "Bytes and efficiency with one STATUS poll (the measured polls depend on "
              "how fast the simulated host polls). `core cycles`: the CYCLES register (command "
              "to end of job; in simulation the link moves one byte per cycle, so it includes "
              "some waiting for input). `sim cycles`: the whole job in simulation. Link time = "
              f"wire bytes × {BITS_PER_BYTE} bits / baud"
              + (f" + {round_trip_us:g} µs per request" if round_trip_us else "")
              + ". Total: from link + core after the last row (the core's cycle formula; "
              "everything else hides behind the wire) to link + core (nothing hidden)."]

    if projection:
        p = projection[0]
        lines += ["", f"### n = {p['n']} over a UART (k = {p['k']}, fit with m = "
                  f"{[r['m'] for r in projection if r['kind'] == 'fit'][0]} rows; update "
                  "and downdate: one row)", ""]
        rows = [[r["kind"] + (" (FOLD)" if r.get("command") == "FOLD" else ""),
                 f"{r['baud'] / 1e6:g}", f"{r['clock_hz'] / 1e6:g}", r["requests"],
                 r["wire_bytes"], r["core_cycles"], r["tail_cycles"], _ms(r["link_seconds"]),
                 _ms(r["core_seconds"]), _ms(r["tail_seconds"]),
                 f"{_ms(r['total_lower_seconds'])} – {_ms(r['total_seconds'])}",
                 f"{r['jobs_per_second']:.1f} – {r['jobs_per_second_upper']:.1f}",
                 r["source"]] for r in projection]
        lines += _table(["job", "Mbaud", "clock MHz", "requests", "wire bytes", "core cycles",
                         "core cycles after last row", "link ms", "core ms",
                         "core after last row ms", "total ms", "jobs/s", "from"], rows)
        lines += ["", "The clock is the device's, raised to 4 × baud where the UART needs it "
                  "(12 Mbaud: 48 MHz)."]
    if any(job["kind"] in UPDATER_KINDS for job in jobs):
        lines += ["", "update / downdate: one row each (m = 1; the update with forgetting), "
                  "after Device.reset(lam) and a few rows; core cycles are the updater's "
                  "CYCLES register, core after last row its cycle formula minus the 1 + n + k "
                  "input cycles."]
    lines += [f"{note}" for note in notes]
    return "\n".join(lines) + "\n"


# -- the command ------------------------------------------------------------------------------


def _sizes(text: str, parts: int) -> tuple[int, ...]:
    from tiersolve.host.cli import CliError

    try:
        values = tuple(int(item) for item in text.split(","))
    except ValueError:
        values = ()
    if len(values) != parts or min(values) < 1:
        raise CliError(f"size {text!r} must be {parts} positive integers separated by commas")
    return values


#: Defaults of the options that name the device and the sizes (None in the parser, so that
#: ``run`` knows what the user gave: a size the user gave that the device cannot take is an
#: error, a default one is skipped with a note).
DEFAULTS = {"device": _DEFAULT_DEVICE, "sim_device": _DEFAULT_SIM_DEVICE,
            "solve": ["8,1", "16,4", "32,4", "64,4"],
            "fit": ["8,1,16", "16,4,32", "32,4,64", "64,4,128"],
            "update": ["8,1", "16,4", "32,4", "64,4"],
            "sim_solve": "3,1", "sim_fit": "3,1,4", "sim_update": "3,1"}


def add_arguments(parser) -> None:
    """Add the benchmark's options to its ``argparse`` sub-parser (``--out`` is added by
    :mod:`tiersolve.host.bench`)."""
    parser.add_argument("--device", default=None,
                        help=f"device URL for the jobs and the efficiency sweep (default "
                             f"{_DEFAULT_DEVICE}; the first use compiles it, 10-50 s here; if "
                             f"the default cannot be used, the figures come from the protocol, "
                             f"a device named here must work)")
    parser.add_argument("--sim-device", default=None,
                        help=f"Amaranth-simulated device for the tiny case (default "
                             f"{_DEFAULT_SIM_DEVICE})")
    parser.add_argument("--no-sim", action="store_true",
                        help="skip the tiny case on the Amaranth-simulated device")
    parser.add_argument("--solve", nargs="*", default=None,
                        metavar="N,K", help="solve sizes (default: 8,1 16,4 32,4 64,4; "
                                            "defaults beyond the device are skipped, sizes "
                                            "given beyond it are an error)")
    parser.add_argument("--fit", nargs="*", default=None,
                        metavar="N,K,M", help="fit sizes (default: 8,1,16 16,4,32 32,4,64 "
                                              "64,4,128)")
    parser.add_argument("--update", nargs="*", default=None,
                        metavar="N,K", help="update/downdate sizes, on devices with the updater "
                                            "(default: 8,1 16,4 32,4 64,4)")
    parser.add_argument("--sim-solve", default=None, metavar="N,K",
                        help="solve size of the tiny case (default 3,1)")
    parser.add_argument("--sim-fit", default=None, metavar="N,K,M",
                        help="fit size of the tiny case (default 3,1,4)")
    parser.add_argument("--sim-update", default=None, metavar="N,K",
                        help="update/downdate size of the tiny case (default 3,1)")
    parser.add_argument("--baud", type=float, default=3e6,
                        help="line rate of the per-job time split (default 3000000)")
    parser.add_argument("--round-trip-us", type=float, default=0.0,
                        help="host latency added per request, µs (default 0; a USB-UART "
                             "adapter's latency timer is often 1000)")
    parser.add_argument("--max-burst", type=int, default=None,
                        help="longest burst of the efficiency sweep (default: the device's)")
    parser.add_argument("--seed", type=int, default=0, help="random problems' seed")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_jobs(url: str, solves, fits, seed: int, label: str,
              sweep_burst: int | None = None, updates=(),
              given: dict | None = None) -> tuple[list[dict], dict]:
    """Open ``url`` and run the jobs that fit it, and for each ``(n, k)`` of ``updates`` one
    update and one downdate row if it has the updater; returns (records, device facts).

    With ``sweep_burst``, the facts also hold ``efficiency``: :func:`burst_efficiency` up to
    that length (at most the device's ``max_burst``) on the device's link, if it has one.

    ``given`` maps the kinds whose sizes the user gave (``"solve"``, ``"fit"``, ``"update"``)
    to their option: such a size beyond the device's ``n_max`` or ``k_max`` raises ValueError
    before any job runs (the sizes of other kinds are skipped, and listed in the facts); with
    ``"max_burst"`` in it, a ``sweep_burst`` beyond the device's ``max_burst`` does too.
    """
    import tiersolve.host

    given = given or {}
    records = []
    with tiersolve.host.open(url) as device:
        info = device.info()
        if "max_burst" in given and sweep_burst is not None and sweep_burst > info.max_burst:
            raise ValueError(f"{given['max_burst']} {sweep_burst} is beyond this device's "
                             f"max_burst = {info.max_burst}")
        if "update" in given and updates and "updater" not in info.cores:
            raise ValueError(f"{given['update']}: this device has no updater (cores: "
                             f"{', '.join(info.cores)})")
        for kind, sizes in (("solve", solves), ("fit", fits), ("update", updates)):
            for size in sizes if kind in given else ():
                if size[0] > info.n_max or size[1] > info.k_max:
                    raise ValueError(
                        f"{given[kind]} {','.join(map(str, size))} is beyond this device "
                        f"(n_max = {info.n_max}, k_max = {info.k_max})")
        facts = {"url": url, "n_max": info.n_max, "k_max": info.k_max, "lanes": info.lanes,
                 "format": str(info.fmt), "clock_hz": info.clock_frequency,
                 "max_burst": info.max_burst, "cores": list(info.cores),
                 "updater_units": info.updater_units,
                 "updater_rotation": info.updater_rotation,
                 "updater_fold": info.updater_fold,
                 "updater_fold_downdate": info.updater_fold_downdate, "skipped": []}
        for kind, sizes in (("solve", solves), ("fit", fits)):
            for size in sizes:
                n, k = size[0], size[1]
                m = size[2] if kind == "fit" else 0
                if n > info.n_max or k > info.k_max:
                    facts["skipped"].append(f"{kind} {size}")
                    continue
                started = time.monotonic()
                record = job_link_profile(device, kind, n, k, m, seed=seed)
                record["transport"] = label
                records.append(record)
                _progress(f"{label} {kind} n={n} k={k}{f' m={m}' if m else ''}: "
                          f"{record['requests']} requests, {record['core_cycles']} core cycles "
                          f"({time.monotonic() - started:.1f} s)")
        for n, k in updates:
            if "updater" not in info.cores:
                facts["skipped"].append(f"update {(n, k)} (no updater)")
                continue
            if n > info.n_max or k > info.k_max:
                facts["skipped"].append(f"update {(n, k)}")
                continue
            started = time.monotonic()
            for record in updater_link_profile(device, n, k, seed=seed):
                record["transport"] = label
                records.append(record)
                _progress(f"{label} {record['kind']} n={n} k={k}: {record['requests']} "
                          f"requests, {record['core_cycles']} core cycles")
            _progress(f"  ({time.monotonic() - started:.1f} s)")
        link = getattr(device.transport, "link", None)
        if sweep_burst is not None and link is not None and info.max_burst:
            facts["efficiency"] = burst_efficiency(link, min(sweep_burst, info.max_burst))
    return records, facts


def run(args) -> int:
    """Run the benchmark for the parsed ``args``; print the tables and save the results."""
    from tiersolve.host.bench.arith import write_results
    from tiersolve.host.bench.checks import finite_number, integer_at_least
    from tiersolve.host.cli import CliError
    from tiersolve.host.errors import DeviceError

    def option(name):  # (value, given by the user)
        value = getattr(args, name, None)
        return (DEFAULTS[name], False) if value is None else (value, True)

    device_url, device_named = option("device")
    sim_device, _ = option("sim_device")
    given, sim_given = {}, {}
    sizes = {}
    for kind, parts in (("solve", 2), ("fit", 3), ("update", 2)):
        texts, user = option(kind)
        sizes[kind] = [_sizes(text, parts) for text in texts]
        if user:
            given[kind] = f"--{kind}"
        text, user = option(f"sim_{kind}")
        sizes[f"sim_{kind}"] = _sizes(text, parts)
        if user:
            sim_given[kind] = f"--sim-{kind}"
    solves, fits, updates = sizes["solve"], sizes["fit"], sizes["update"]
    finite_number("--baud", args.baud)  # (above 0 and finite)
    finite_number("--round-trip-us", args.round_trip_us, positive=False)
    if args.max_burst is not None:
        integer_at_least("--max-burst", args.max_burst, 1, "give a burst of at least 1 word")
        given["max_burst"] = "--max-burst"
    notes = []
    jobs: list[dict] = []
    devices = []
    efficiency: list[dict] = []
    efficiency_source = ""

    try:
        records, facts = _run_jobs(device_url, solves, fits, args.seed,
                                   device_url.split(":")[0],
                                   sweep_burst=args.max_burst or 1 << 16, updates=updates,
                                   given=given)
    except (ValueError, TypeError) as error:
        raise CliError(f"{device_url}: {error}") from None
    except (DeviceError, OSError, RuntimeError) as error:
        if device_named:  # the user's own device: no figures from elsewhere in its place
            raise CliError(f"{device_url} could not be used ({type(error).__name__}: "
                           f"{error})") from None
        records, facts = [], None
        notes.append(f"{device_url} could not be used ({type(error).__name__}: {error}); "
                     "n = 64 figures come from the protocol and the cycle formula.")
        _progress(notes[-1])
    jobs += records
    max_burst = args.max_burst or 64
    if facts is not None:
        efficiency = facts.pop("efficiency", [])
        devices.append(facts)
        if facts["skipped"]:
            notes.append(f"Skipped on {device_url} (beyond n_max = {facts['n_max']}, "
                         f"k_max = {facts['k_max']}): {', '.join(facts['skipped'])}.")
        max_burst = args.max_burst or facts["max_burst"] or max_burst
        efficiency_source = f"on {device_url} (the gateware frame bridge)"
    if not efficiency:
        efficiency = burst_efficiency(RegisterLink(ModelBytePort(max_burst),
                                                   max_burst=max_burst), max_burst)
        efficiency_source = "against the protocol's byte-exact bridge model"
    _progress(f"efficiency sweep 1..{len(efficiency)} words done")

    if not args.no_sim:
        try:
            records, facts = _run_jobs(sim_device, [sizes["sim_solve"]], [sizes["sim_fit"]],
                                       args.seed, "sim", updates=[sizes["sim_update"]],
                                       given=sim_given)
        except (ValueError, TypeError) as error:
            raise CliError(f"{sim_device}: {error}") from None
        except (DeviceError, OSError, RuntimeError) as error:
            raise CliError(f"{sim_device} could not be used ({type(error).__name__}: "
                           f"{error})") from None
        jobs += records
        devices.append(facts)

    main = devices[0] if devices else {"clock_hz": 12_000_000, "max_burst": max_burst,
                                       "lanes": 4, "format": "Q6.12"}
    clock_hz = main["clock_hz"]
    projection = uart_projection(jobs, clock_hz=clock_hz, round_trip_us=args.round_trip_us,
                                 max_burst=main["max_burst"] or max_burst,
                                 lanes=main["lanes"], fmt=main["format"],
                                 updater_units=main.get("updater_units") or 1,
                                 updater_rotation=main.get("updater_rotation") or "multiplier",
                                 updater_fold=bool(main.get("updater_fold")),
                                 updater_fold_downdate=bool(main.get("updater_fold_downdate")),
                                 n_max=main.get("n_max"), k_max=main.get("k_max"))
    table = markdown_tables(efficiency, jobs, projection, baud=args.baud, clock_hz=clock_hz,
                            round_trip_us=args.round_trip_us,
                            efficiency_source=efficiency_source, notes=notes)
    print(table)
    results = {"efficiency": efficiency, "jobs": jobs, "uart_projection": projection}
    meta = {"devices": devices, "baud": args.baud, "bits_per_byte": BITS_PER_BYTE,
            "round_trip_us": args.round_trip_us, "efficiency_source": efficiency_source,
            "notes": notes}
    paths = write_results(args.out, "link", results, table, meta)
    print(f"saved {', '.join(str(path) for path in paths)}")
    return 0
