"""The Device API: NumPy in, NumPy out, over any transport.

``tiersolve.host.open(url)`` connects to a device and returns a :class:`Device`::

    import numpy as np
    import tiersolve.host

    with tiersolve.host.open("sim://?n_max=8&k_max=2&lanes=2&format=Q6.12") as device:
        print(device.info())
        x = device.solve(A, b)            # (A) x = b, A symmetric positive definite
        w = device.fit(H, T, lam=1e-2)    # (HᵀH + λI) W = HᵀT

URLs
----
``sim://?key=value&...``
    The simulated device (:class:`~tiersolve.host.transport.SimTransport`): the same
    :class:`~tiersolve.designs.top.SolverDesign` in Amaranth's simulator. Keys (all optional):
    ``n_max`` (16), ``k_max`` (4), ``lanes`` (4), ``format`` (``Q6.12``), ``guard_bits`` (4),
    ``inverse_format`` (the format), ``max_burst`` (64), ``clock_hz`` (12000000),
    ``cores`` (``cholesky``; ``cholesky,updater`` adds the incremental-update core),
    ``updater_units`` (1), ``updater_rotation`` (``multiplier``), ``updater_fold`` (0; 1 builds
    the updater's FOLD command).
``vsim://?key=value&...``
    The same design's generated Verilog in Verilator
    (:class:`~tiersolve.host.verilated.VerilatorTransport`), same keys as ``sim://``; the
    first open of a configuration compiles it (about a minute), later ones reuse the build.
``uart:///dev/ttyUSB1?baud=3000000&timeout=0.5&retries=5``
    A serial port (a board, or ``tiersolve sim-serve``).

What happens to the numbers
---------------------------
The device computes in the fixed-point format it reports (``info().fmt``, ``Q a.f``). Before
sending, the host scales the inputs by powers of two (exact) so that, by a range analysis
done in float64 on the host, every quantity the core holds stays within half the format's
range ``2**(a-2)``: ``A`` (or ``HᵀH + λI``, whose diagonal bounds every entry and every Gram
partial sum), ``B = HᵀT`` (by Cauchy–Schwarz on column norms, which bounds the partial sums
too), ``Y = L⁻¹B`` and ``X``. It then rounds to the format (nearest, ties to even), streams
the stored integers, and undoes the scaling on the result. Problems that cannot fit even after
scaling raise :class:`~tiersolve.host.errors.Saturated` before anything is sent: a pivot of
the factorisation below ``inverse_format.max**-2`` (the matrix is too ill-conditioned for the
format), or a right-hand side that would round to zero everywhere once ``X`` fits.

Device flags become exceptions: a non-positive pivot
:class:`~tiersolve.host.errors.NotPositiveDefinite`, the sticky saturation flag
:class:`~tiersolve.host.errors.Saturated`. Link failures are
:class:`~tiersolve.host.errors.LinkError` and :class:`~tiersolve.host.errors.DeviceTimeout`;
no result is ever returned after one of them. Every job starts by resetting the core, so the
device is usable after any error.

Bit-exactness: :meth:`Device.plan_solve` / :meth:`Device.plan_fit` return the quantised
:class:`Job` (stored integers, λ, exponents) and :meth:`Device.run` its integer result, which
equals :func:`tiersolve.gen.cholesky_model.cholesky_model` on the same integers.

Incremental ridge (the updater)
-------------------------------
A device built with ``cores=cholesky,updater`` also holds an incremental-update core
(:class:`tiersolve.gen.qr.IncrementalUpdater`, same format) whose ``R``, ``Z``, ``W`` stay on
chip between calls::

    device.reset(lam=0.1, n=8, k=2, feature_bound=1.0, target_bound=4.0, capacity=1000)
    device.update(H, T, forget=0.99)   # fold rows in (R, Z scaled by √forget before each)
    device.update(H, T)                # rows in flight together (FOLD) where that is quicker
    device.downdate(H_old, T_old)      # take rows out (one FOLD, all or none, where the design
                                       # has it); DowndateRefused says which rows are out
    W = device.weights()               # W = R⁻¹Z (refreshed on the device)
    y = device.predict(h)              # hᵀW on the device

``reset(lam=...)`` fixes the scaling (:class:`HeadState`) from the bounds and the capacity;
rows outside the bounds raise ValueError; the updater's sticky ``saturated`` flag raises
:class:`~tiersolve.host.errors.Saturated` on every call until the next reset. Bit-exactness:
:meth:`HeadState.quantise_rows` gives the integers sent, and
:class:`~tiersolve.gen.qr_model.IncrementalUpdaterModel` fed the same integers holds the same
``R``, ``Z``, ``W`` (:meth:`Device.updater_command` moves raw integers). ``tiersolve update``
is the command-line face of it.
"""

from __future__ import annotations

import functools
import math
import time
import urllib.parse
from dataclasses import dataclass, field

import numpy as np
from tiersolve.designs import regmap
from tiersolve.gen.fixed import FixedFormat
from tiersolve.gen.qr_ops import fold_row_limit
from tiersolve.gen.registry import flag

from .errors import (
    DeviceError,
    DeviceTimeout,
    DowndateRefused,
    IncompatibleDevice,
    LinkError,
    NotPositiveDefinite,
    Saturated,
)
from .transport import Transport

__all__ = ["Device", "DeviceInfo", "HeadState", "Job", "open", "parse_url"]


def core_list(text: str) -> tuple[str, ...]:
    """``"cholesky,updater"`` -> ``("cholesky", "updater")`` (the ``cores`` URL key)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise ValueError(f"no core named in {text!r}")
    return names


_SIM_KEYS = {
    "n_max": ("n_max", int), "k_max": ("k_max", int), "lanes": ("lanes", int),
    "format": ("fmt", str), "guard_bits": ("guard_bits", int),
    "inverse_format": ("inverse_format", str), "max_burst": ("max_burst", int),
    "clock_hz": ("clock_frequency", int), "cores": ("cores", core_list),
    "updater_units": ("updater_units", int), "updater_rotation": ("updater_rotation", str),
    "updater_fold": ("updater_fold", flag),
}
_UART_KEYS = {"baud": ("baud_rate", int), "timeout": ("timeout", float),
              "retries": ("retries", int), "max_burst": ("max_burst", int)}


def parse_url(url: str) -> tuple[str, str, dict]:
    """Split a device URL into ``(scheme, path, parameters)`` with typed parameters.

    Raises
    ------
    ValueError
        For an unknown scheme, an unknown or repeated key, a value of the wrong type, or a
        path where none belongs (or none where one is needed).
    """
    if not isinstance(url, str):
        raise TypeError(f"device URL must be a string, not {url!r}")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme
    if scheme not in ("sim", "vsim", "uart", "pcie") or "://" not in url:
        raise ValueError(f"malformed device URL {url!r}: expected sim://?..., "
                         f"uart:///dev/ttyX?... or pcie://...")
    if parts.fragment:
        raise ValueError(f"malformed device URL {url!r}: unexpected fragment")
    try:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True,
                                       strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(f"malformed query in device URL {url!r}") from None
    keys = {"sim": _SIM_KEYS, "vsim": _SIM_KEYS, "uart": _UART_KEYS}.get(scheme, {})
    parameters = {}
    for key, text in pairs:
        if scheme == "pcie":
            parameters[key] = text
            continue
        if key not in keys:
            raise ValueError(f"unknown parameter {key!r} in {scheme} URL {url!r}; known: "
                             f"{', '.join(keys)}")
        name, kind = keys[key]
        if name in parameters:
            raise ValueError(f"parameter {key!r} given twice in {url!r}")
        try:
            parameters[name] = kind(text)
        except ValueError as error:
            # the converters of this module say what they expected; int() and float() do not
            detail = "" if isinstance(kind, type) else f" ({error})"
            raise ValueError(f"parameter {key}={text!r} in {url!r} is not a valid "
                             f"{kind.__name__}{detail}") from None
    path = parts.netloc + parts.path
    if scheme in ("sim", "vsim") and path not in ("", "/"):
        raise ValueError(f"a sim URL takes no path, got {path!r} in {url!r}")
    if scheme == "uart" and not parts.path:
        raise ValueError(f"a uart URL needs the serial device path, e.g. uart:///dev/ttyUSB1; "
                         f"got {url!r}")
    return scheme, path, parameters


def open(url: str = "sim://", **options) -> Device:  # noqa: A001 - the public name
    """Connect to the device at ``url`` and return a :class:`Device`.

    ``options`` are passed to :class:`Device` (``job_timeout``).

    Raises
    ------
    ValueError
        A malformed URL or bad design parameters (nothing is built or opened).
    LinkError, DeviceTimeout
        The device cannot be reached.
    IncompatibleDevice
        The device does not identify as a tiersolve solver with this register map.
    """
    scheme, path, parameters = parse_url(url)
    if scheme == "sim":
        from .transport import SimTransport

        transport = SimTransport(**parameters)
    elif scheme == "vsim":
        from .verilated import VerilatorTransport

        transport = VerilatorTransport(**parameters)
    elif scheme == "uart":
        from .transport import UartTransport

        transport = UartTransport(path, **parameters)
    else:
        try:
            from . import pcie
        except ImportError:
            raise ValueError("the pcie transport is not available in this installation") \
                from None
        factory = getattr(pcie, "transport_from_url", None)
        if factory is None:
            raise ValueError("the pcie transport does not offer transport_from_url(url)")
        transport = factory(url)
    try:
        return Device(transport, **options)
    except BaseException:
        transport.close()
        raise


@dataclass(frozen=True)
class DeviceInfo:
    """What a device reports about itself (its identity registers).

    Attributes
    ----------
    version, layout : int
        Register map version and layout id (CRC-32 of the map's JSON).
    cores : tuple of str
        Cores built in.
    n_max, k_max : int
        Largest ``n`` and ``k``.
    fmt, inverse_format : FixedFormat
        Data format and the format of the Cholesky pivot inverses.
    guard_bits, lanes : int
        Cholesky core parameters.
    clock_frequency : int
        Design clock in Hz.
    max_burst : int
        Longest bridge burst in words (0: no frame bridge).
    updater_units : int
        Rotation units of the incremental-update core (0: not built).
    updater_rotation : str or None
        ``"multiplier"`` or ``"cordic"`` (None: no updater).
    updater_fold : bool
        The updater has the FOLD command (rows in flight together).
    updater_fold_downdate : bool
        Its FOLD takes rows out too (all or none; the updater with multiplier rotations).
    """

    version: int
    layout: int
    cores: tuple[str, ...]
    n_max: int
    k_max: int
    fmt: FixedFormat
    inverse_format: FixedFormat
    guard_bits: int
    lanes: int
    clock_frequency: int
    max_burst: int
    updater_units: int = 0
    updater_rotation: str | None = None
    updater_fold: bool = False
    updater_fold_downdate: bool = False


@dataclass
class Job:
    """A quantised job, ready to send (what :meth:`Device.plan_solve` / ``plan_fit`` return).

    Attributes
    ----------
    op : regmap.Op
        ``CHOLESKY_DIRECT`` (solve) or ``CHOLESKY_GRAM`` (fit).
    n, k : int
        Sizes.
    lam : int
        λ as a stored integer of the format.
    rows : numpy.ndarray of int64, shape (m, n + k)
        Stored integers streamed to the core: ``[A | B]`` (direct) or ``[H | T]`` (Gram).
    result_exponent : int
        The real result is ``X_int * 2**(result_exponent - frac_bits)``.
    vector : bool
        The right-hand side was one-dimensional (the result is returned as such).
    exponents : dict
        The scale exponents applied to the inputs (for the record).
    expected_magnitude : numpy.ndarray or None
        Per column of ``X``, the largest ``|X|`` of the float64 solution in stored units (None
        where float64 found no Cholesky factor): a column that comes back all zero although
        this says it holds a unit or more has underflowed, and is raised as
        :class:`Saturated` instead of returned.
    """

    op: regmap.Op
    n: int
    k: int
    lam: int
    rows: np.ndarray
    result_exponent: int
    vector: bool = False
    exponents: dict = field(default_factory=dict)
    expected_magnitude: np.ndarray | None = None


@dataclass
class HeadState:
    """The scaling of the updater's problem, fixed by :meth:`Device.reset` (``lam`` given).

    The updater holds ``R``, ``Z`` of the scaled problem ``[2**e_h H | 2**e_t T]`` with
    ``R₀ = round(√λ·2**e_h)·I``; every row sent is quantised the same way.

    Attributes
    ----------
    n, k : int
        Sizes.
    lam : float
        λ as asked for (real units).
    lam_sqrt : int
        ``√λ·2**e_h`` as the stored integer sent with RESET.
    h_exponent, t_exponent : int
        ``e_h`` and ``e_t``.
    feature_bound, target_bound : float
        Largest ``|h|`` and ``|t|`` accepted (real units).
    capacity : int
        Rows the range analysis allows for (see :meth:`Device.reset`).
    config : tiersolve.gen.qr_model.QRConfig
        The updater's arithmetic (for :class:`~tiersolve.gen.qr_model.IncrementalUpdaterModel`).
    rows : int
        Rows folded in minus rows taken out since the reset.
    stale : bool
        ``W`` on the device is older than ``R``, ``Z`` (refreshed before a predict).
    """

    n: int
    k: int
    lam: float
    lam_sqrt: int
    h_exponent: int
    t_exponent: int
    feature_bound: float
    target_bound: float
    capacity: int
    config: object
    rows: int = 0
    stale: bool = False

    def quantise_rows(self, H, T=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Check ``H`` (``(n,)`` or ``(m, n)``) and ``T`` (``(k,)`` / ``(m, k)``, or a scalar
        per row when ``k = 1``) against the bounds, scale and round them: stored integers
        ``(m, n)`` and ``(m, k)`` (None without ``T``)."""
        fmt = self.config.fmt
        H = _as_real_array("h", H, (1, 2))
        H2 = H[None, :] if H.ndim == 1 else H
        if H2.shape[1] != self.n:
            raise ValueError(f"h must have n = {self.n} columns, not shape {H.shape}")
        if np.max(np.abs(H2)) > self.feature_bound:
            raise ValueError(f"|h| = {np.max(np.abs(H2)):.6g} exceeds the feature_bound "
                             f"{self.feature_bound:.6g} given to reset()")
        h_int = fmt.quantise(np.ldexp(H2, self.h_exponent)).values
        if T is None:
            return h_int, None
        T = _as_real_array("t", T, (0, 1, 2))
        T2 = _as_rows("t", T, H2.shape[0], self.k, single=H2.shape[0] == 1)
        if np.max(np.abs(T2)) > self.target_bound:
            raise ValueError(f"|t| = {np.max(np.abs(T2)):.6g} exceeds the target_bound "
                             f"{self.target_bound:.6g} given to reset()")
        return h_int, fmt.quantise(np.ldexp(T2, self.t_exponent)).values


@functools.lru_cache(maxsize=8)
def updater_cycle_model(n_max: int, k_max: int, fmt: str, units: int, rotation: str):
    """The :class:`~tiersolve.gen.qr.IncrementalUpdater` (with FOLD) of a device's updater,
    built only for its exact cycle formulas (``update_cycles``, ``fold_cycles``) and never
    elaborated; cached, since building one takes a moment. The benches that need an updater's
    cycles (``bench build``, ``bench learn``, ``bench link``) take it from here too; ``fmt``
    is the format's name (``"Q6.12"``), the cache's key."""
    from tiersolve.gen.checks import silence_unused
    from tiersolve.gen.qr import IncrementalUpdater

    # a model of the device's timing, not hardware to build
    return silence_unused(IncrementalUpdater(n_max, k_max, fmt, units=units, rotation=rotation,
                                             fold=True))


def fold_beats_updates(core, n: int, k: int, rows: int, forgetting=None,
                       byte_cycles: float = 0.0, command_cycles: float = 0.0) -> bool:
    """Whether one FOLD of ``rows`` rows ends sooner than ``rows`` UPDATEs on the updater
    ``core`` (with FOLD; sizes ``n``, ``k``; ``forgetting`` the command's constant, None:
    none), over a link of ``byte_cycles`` cycles a byte and ``command_cycles`` a command's
    own exchange (the rule of :meth:`Device.fold_is_quicker`; 0 and 0: the cycle formulas
    alone, as ``tiersolve bench update`` counts)."""
    forgetting = False if forgetting is None else forgetting
    value_cycles = max(1, 4 * byte_cycles)
    fold = core.fold_cycles(n, k, rows, forgetting, value_cycles=value_cycles)
    # each UPDATE's row on the FOLD's timetable (value v at cycle 2 + v·value_cycles of its
    # command): every value after the first comes value_cycles - 1 later than the formula's
    one_by_one = (rows * (core.update_cycles(n, k) + (n + k - 1) * (value_cycles - 1))
                  + (rows - 1) * command_cycles)
    return fold < one_by_one


def _as_real_array(name: str, value, ndims: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001 - report any conversion failure the same way
        raise TypeError(f"{name} must be array-like, not {type(value).__name__}") from error
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, not {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim not in ndims:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimension(s), "
                         f"not shape {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    if not np.all(np.isfinite(array)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(f"{name} holds a non-finite value {float(array[index])!r} at index "
                         f"{index}")
    return array


def _as_rows(name: str, T: np.ndarray, m: int, k: int, single: bool = False) -> np.ndarray:
    """``T`` as ``(m, k)``: given as ``(m, k)``, as ``(m,)`` when ``k = 1``, or (``single``: one
    row) as ``(k,)`` or a scalar. Any other shape is an error, not a reshape: a transposed
    ``(k, m)`` array holds the right number of values in the wrong places."""
    if T.shape == (m, k):
        return T
    if T.shape == (m,) and k == 1:
        return T[:, None]
    if single and m == 1 and T.shape in ((k,), ()) and (T.ndim == 1 or k == 1):
        return T.reshape(1, k)
    shapes = [f"({m}, {k})"] + ([f"({m},)"] if k == 1 else []) + \
        ([f"({k},)"] if single and m == 1 and k > 1 else [])
    raise ValueError(f"{name} must have {m} row(s) of k = {k} value(s), shape "
                     f"{' or '.join(shapes)}, not shape {T.shape}")


def _exponent(magnitude: float, limit: float) -> int | None:
    """Largest integer ``e`` with ``magnitude * 2**e <= limit`` (None for a zero magnitude)."""
    if magnitude == 0:
        return None
    # from the binary exponents, not log2(limit / magnitude): that ratio overflows for a
    # subnormal magnitude
    e = math.frexp(limit)[1] - math.frexp(magnitude)[1]
    while math.ldexp(magnitude, e) > limit:
        e -= 1
    while math.ldexp(magnitude, e + 1) <= limit:
        e += 1
    return e


def _min_exponent(*candidates) -> int:
    values = [c for c in candidates if c is not None]
    return min(values) if values else 0


class Device:
    """A tiersolve solver device behind a :class:`~tiersolve.host.transport.Transport`.

    Parameters
    ----------
    transport : Transport
    job_timeout : float
        Seconds (wall clock) a job may take before :class:`DeviceTimeout` (default 60).

    Attributes
    ----------
    last_run : dict
        Of the last job: ``cycles`` (core), ``requests``, ``bytes_sent``, ``bytes_received``,
        ``payload_bytes``, ``polls``, ``seconds``, and ``sim_cycles`` on the sim transport;
        of the last updater command: ``cycles``, ``polls``, ``seconds`` and ``op`` (its
        :class:`~tiersolve.designs.regmap.UpdaterOp` name).
    """

    def __init__(self, transport, *, job_timeout: float = 60.0):
        if not job_timeout > 0:
            raise ValueError(f"job_timeout must be positive, not {job_timeout!r}")
        self.transport = transport
        self.job_timeout = job_timeout
        self.last_run: dict = {}
        #: Scaling of the updater's problem (None until ``reset(lam=...)``).
        self.head: HeadState | None = None
        self._info = self._read_info()

    # -- identity -----------------------------------------------------------------------------

    def _read_info(self) -> DeviceInfo:
        names = ("MAGIC", "VERSION", "LAYOUT", "CORES", "N_MAX", "K_MAX", "FORMAT",
                 "INVERSE_FORMAT", "LANES", "CLOCK_HZ", "MAX_BURST", "UPDATER")
        first = regmap.address(names[0])
        if [regmap.address(name) - first for name in names] != list(range(len(names))):
            raise AssertionError("identity registers are not consecutive")
        words = dict(zip(names, self.transport.read(first, len(names)), strict=True))
        if words["MAGIC"] != regmap.MAGIC:
            silent = ("; every bit reads as 1, which is what a PCIe device that does not "
                      "answer returns (card powered? bitstream loaded? the right BAR?)"
                      if words["MAGIC"] == 0xFFFFFFFF else "")
            raise IncompatibleDevice(f"not a tiersolve device: magic {words['MAGIC']:#010x}, "
                                     f"expected {regmap.MAGIC:#010x}{silent}")
        if words["VERSION"] != regmap.VERSION or words["LAYOUT"] != regmap.LAYOUT_ID:
            raise IncompatibleDevice(
                f"register map version {words['VERSION']} / layout {words['LAYOUT']:#010x} "
                f"differs from the host's {regmap.VERSION} / {regmap.LAYOUT_ID:#010x}")
        cores = tuple(name for name, bit in regmap.CORE_BITS.items()
                      if words["CORES"] >> bit & 1)
        if "cholesky" not in cores:
            raise IncompatibleDevice(f"device has no Cholesky core (cores: {cores})")
        fmt = regmap.decode_fields("FORMAT", words["FORMAT"])
        inverse = regmap.decode_fields("INVERSE_FORMAT", words["INVERSE_FORMAT"])
        updater = regmap.decode_fields("UPDATER", words["UPDATER"])
        has_updater = "updater" in cores
        try:
            return DeviceInfo(
                version=words["VERSION"], layout=words["LAYOUT"], cores=cores,
                n_max=words["N_MAX"], k_max=words["K_MAX"],
                fmt=FixedFormat(fmt["int_bits"], fmt["frac_bits"]),
                inverse_format=FixedFormat(inverse["int_bits"], inverse["frac_bits"]),
                guard_bits=fmt["guard_bits"], lanes=words["LANES"],
                clock_frequency=words["CLOCK_HZ"], max_burst=words["MAX_BURST"],
                updater_units=updater["units"] if has_updater else 0,
                updater_rotation=(regmap.UPDATER_ROTATIONS[updater["rotation"]]
                                  if has_updater else None),
                updater_fold=bool(updater["fold"]) and has_updater,
                updater_fold_downdate=bool(updater["fold_downdate"]) and has_updater)
        except (TypeError, ValueError) as error:
            raise IncompatibleDevice(f"device reports an unusable format: {error}") from None

    def info(self) -> DeviceInfo:
        """The device's identity (read once when connecting)."""
        return self._info

    # -- planning: checks, scaling, quantisation ----------------------------------------------

    @property
    def _limit(self) -> float:
        """Half the format's range: the bound every scaled quantity is kept under."""
        return math.ldexp(1.0, self._info.fmt.int_bits - 2)

    def _check_sizes(self, n: int, k: int) -> None:
        if n > self._info.n_max:
            raise ValueError(f"n = {n} exceeds the device's n_max = {self._info.n_max}")
        if k > self._info.k_max:
            raise ValueError(f"k = {k} right-hand sides exceed the device's k_max = "
                             f"{self._info.k_max}")

    def _quantise(self, name: str, values: np.ndarray, exponent: int) -> np.ndarray:
        quantised = self._info.fmt.quantise(np.ldexp(values, exponent))
        if quantised.saturated.any():  # excluded by the range analysis; kept as a guard
            raise Saturated(f"{name} does not fit {self._info.fmt} after scaling by "
                            f"2**{exponent}")
        return quantised.values

    def _check_pivots(self, pivots: np.ndarray) -> None:
        smallest = math.ldexp(1.0, 0) / self._info.inverse_format.max ** 2
        if pivots.min() < 2 * smallest:
            raise Saturated(
                f"the scaled matrix's smallest pivot {pivots.min():.3g} is below "
                f"{2 * smallest:.3g}: 1/sqrt(pivot) would clip in the device's inverse format "
                f"{self._info.inverse_format} (the matrix is too ill-conditioned for the "
                "format; add regularisation)")

    def _check_not_vanishing(self, name: str, values: np.ndarray, exponent: int,
                             why: str = "so that the solution fits") -> None:
        """Raise :class:`Saturated` if ``values`` (or one of its columns) is not zero but every
        value rounds to zero once scaled by ``2**exponent``: the device would work on zeros."""
        columns = values[:, None] if values.ndim == 1 else values
        half = self._info.fmt.resolution / 2
        for j in range(columns.shape[1]):
            column = columns[:, j]
            if np.any(column) and np.max(np.abs(np.ldexp(column, exponent))) < half:
                which = name if columns.shape[1] == 1 else f"column {j} of {name}"
                raise Saturated(
                    f"{which} (largest |value| {np.max(np.abs(column)):.3g}) would round to "
                    f"zero once scaled by 2**{exponent} {why} in {self._info.fmt}: the "
                    "problem's range exceeds the format")

    def _check_result(self, job: Job, result: np.ndarray) -> None:
        """Raise :class:`Saturated` for a result column that underflowed to all zeros."""
        if job.expected_magnitude is None:
            return
        for j, expected in enumerate(job.expected_magnitude):
            if expected >= 1 and not np.any(result[:, j]):
                raise Saturated(
                    f"column {j} of the solution came back all zero where float64 gives "
                    f"values of {expected:.3g} units of {self._info.fmt}: it underflowed "
                    "(its range is far below the other columns' or the inputs'); solve it "
                    "on its own or rescale it")

    def plan_solve(self, A, B) -> Job:
        """Check, scale and quantise the system ``A X = B`` (direct mode, λ = 0).

        ``A`` is ``(n, n)`` and symmetric (only its lower triangle is sent), ``B`` is ``(n,)``
        or ``(n, k)``. ``A`` is scaled by ``2**p`` so that ``max|A| <= 2**(a-2)``; ``B`` by
        ``2**q`` with ``q`` the largest exponent keeping ``|B|``, ``|L⁻¹B|`` and ``|X|`` (from a
        float64 analysis) within ``2**(a-2)``.
        """
        A = _as_real_array("A", A, (2,))
        B = _as_real_array("B", B, (1, 2))
        n = A.shape[0]
        if A.shape != (n, n):
            raise ValueError(f"A must be square, not shape {A.shape}")
        vector = B.ndim == 1
        B2 = B[:, None] if vector else B
        if B2.shape[0] != n:
            raise ValueError(f"B has {B2.shape[0]} rows, A has {n}")
        k = B2.shape[1]
        self._check_sizes(n, k)
        scale = np.max(np.abs(A))
        if np.max(np.abs(A - A.T)) > 1e-10 * scale:
            raise ValueError("A must be symmetric (the device reads its lower triangle)")
        limit = self._limit
        p = _exponent(scale, limit)
        if p is None:
            raise NotPositiveDefinite("A is zero", 0)
        candidates = [_exponent(np.max(np.abs(B2)), limit)]
        try:
            L = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            L = None  # not positive definite in float64: let the device report where
        if L is not None:
            Y = np.linalg.solve(L, B2)
            X = np.linalg.solve(A, B2)
            y_max, x_max = np.max(np.abs(Y)), np.max(np.abs(X))
            if y_max:
                candidates.append(math.floor(math.log2(limit / y_max) + p / 2))
            e_x = _exponent(x_max, limit)
            candidates.append(None if e_x is None else e_x + p)
            self._check_pivots(math.ldexp(1.0, p) * np.diag(L) ** 2)
        q = _min_exponent(*candidates)
        self._check_not_vanishing("B", B2, q)
        A_int = np.tril(self._quantise("A", A, p))
        B_int = self._quantise("B", B2, q)
        rows = np.concatenate([A_int, B_int], axis=1)
        expected = None if L is None else self._stored_magnitude(X, q - p)
        return Job(regmap.Op.CHOLESKY_DIRECT, n, k, 0, rows, p - q, vector,
                   {"A": p, "B": q}, expected)

    def _stored_magnitude(self, X: np.ndarray, exponent: int) -> np.ndarray:
        """Per column, the largest ``|X|`` scaled by ``2**exponent``, in stored units."""
        return np.ldexp(np.max(np.abs(X), axis=0), exponent + self._info.fmt.frac_bits)

    def plan_fit(self, H, T, lam) -> Job:
        """Check, scale and quantise the ridge problem ``(HᵀH + λI) W = HᵀT`` (Gram mode).

        ``H`` is ``(m, n)``, ``T`` is ``(m,)`` or ``(m, k)``, ``lam >= 0``. ``H`` is scaled by
        ``2**e`` (and λ by ``2**(2e)``) so that the largest column norm² of ``H`` plus λ, which
        bounds every entry and partial sum of ``HᵀH + λI``, stays within ``2**(a-2)``; ``T`` by
        ``2**e'`` with ``e'`` the largest exponent keeping ``|T|``, the column-norm product
        bound of ``HᵀT``, ``|L⁻¹HᵀT|`` and ``|W|`` within ``2**(a-2)``.
        """
        H = _as_real_array("H", H, (2,))
        T = _as_real_array("T", T, (1, 2))
        m, n = H.shape
        vector = T.ndim == 1
        T2 = T[:, None] if vector else T
        if T2.shape[0] != m:
            raise ValueError(f"T has {T2.shape[0]} rows, H has {m}")
        k = T2.shape[1]
        self._check_sizes(n, k)
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)):
            raise TypeError(f"lam must be a real number, not {lam!r}")
        lam = float(lam)
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lam must be finite and >= 0, not {lam!r}")
        limit = self._limit
        h_norms = np.sqrt(np.sum(H * H, axis=0))
        t_norms = np.sqrt(np.sum(T2 * T2, axis=0))
        diagonal_bound = float(np.max(h_norms) ** 2 + lam)
        if diagonal_bound == 0:
            raise NotPositiveDefinite("H is zero and lam is 0", 0)
        e = math.floor(0.5 * math.log2(limit / diagonal_bound))
        while math.ldexp(diagonal_bound, 2 * e) > limit:
            e -= 1
        e = min(e, _min_exponent(_exponent(np.max(np.abs(H)), limit)) if np.any(H) else e)
        gram = H.T @ H + lam * np.eye(n)
        B = H.T @ T2
        candidates = [_exponent(np.max(np.abs(T2)), limit)]
        cross = float(np.max(h_norms) * np.max(t_norms))
        if cross:
            candidates.append(_exponent(cross, limit) - e)
        try:
            L = np.linalg.cholesky(gram)
        except np.linalg.LinAlgError:
            L = None
        if L is not None:
            Y = np.linalg.solve(L, B)
            W = np.linalg.solve(gram, B)
            candidates.append(_exponent(np.max(np.abs(Y)), limit))
            e_w = _exponent(np.max(np.abs(W)), limit)
            candidates.append(None if e_w is None else e_w + e)
            self._check_pivots(math.ldexp(1.0, 2 * e) * np.diag(L) ** 2)
        e_t = _min_exponent(*candidates)
        self._check_not_vanishing("H", H, e, f"to keep HᵀH + λI (λ = {lam:g}) in range")
        self._check_not_vanishing("T", T2, e_t)
        lam_int = int(self._quantise("lam", np.array(lam), 2 * e))
        rows = np.concatenate([self._quantise("H", H, e), self._quantise("T", T2, e_t)], axis=1)
        expected = None if L is None else self._stored_magnitude(W, e_t - e)
        return Job(regmap.Op.CHOLESKY_GRAM, n, k, lam_int, rows, e - e_t, vector,
                   {"H": e, "T": e_t, "lam": 2 * e}, expected)

    # -- running ------------------------------------------------------------------------------

    def reset(self, lam: float | None = None, *, n: int | None = None, k: int | None = None,
              feature_bound: float = 1.0, target_bound: float = 1.0,
              capacity: int = 1024) -> None:
        """Return the cores to idle; with ``lam``, also start the updater at ``R = √λ·I``.

        Without ``lam``: abort whatever runs (the updater's state is lost with it). With
        ``lam > 0``: initialise the incremental-update core for rows of ``n`` features and
        ``k`` targets, ``|h| <= feature_bound``, ``|t| <= target_bound``, and fix its scaling
        (:class:`HeadState`): ``H`` by ``2**e_h`` (λ by ``2**(2 e_h)``) with ``e_h`` the
        largest exponent keeping the column norm bound of ``[H; √λ I]``,
        ``√(capacity·feature_bound² + λ)``, within half the format's range; ``T`` by
        ``2**e_t`` keeping ``√capacity·target_bound`` (bound of ``|Z|``), the bound of ``|W|``
        ``√capacity·target_bound/√λ`` (``σ_min(R) >= √λ``) and of a prediction
        (``√n·feature_bound`` times that) within the same range. ``capacity`` is the number of
        rows the state may hold (with forgetting ``β``, about ``1/(1-β)``); past it, or when
        forgetting has worn ``σ_min(R)`` below ``√λ``, the bounds no longer hold and the
        device's sticky ``saturated`` flag (raised as :class:`Saturated`) is the guard.

        Raises
        ------
        Saturated
            ``√λ`` or the bounds would round to zero at that scaling.
        DeviceError
            The device has no updater.
        """
        control = {"reset_cholesky": 1}
        if "updater" in self._info.cores:
            control["reset_updater"] = 1
        self.transport.write(regmap.address("CONTROL"),
                             [regmap.encode_fields("CONTROL", **control)])
        self.head = None
        if lam is not None:
            if n is None or k is None:
                raise TypeError("reset(lam=...) needs n and k, the updater's problem sizes")
            self._start_head(lam, n, k, feature_bound, target_bound, capacity)

    def run(self, job: Job) -> np.ndarray:
        """Send ``job``, wait for it, and return the stored integers of ``X`` (``(n, k)``).

        Raises
        ------
        NotPositiveDefinite, Saturated
            From the device's flags.
        DeviceTimeout
            The job did not end within ``job_timeout`` (the core is reset).
        LinkError
            A link failure or an inconsistent device answer.
        """
        self._check_sizes(job.n, job.k)
        rows_shape = np.shape(job.rows)
        expected_shape = ((job.n, job.n + job.k) if job.op == regmap.Op.CHOLESKY_DIRECT
                          else (rows_shape[0] if rows_shape else 0, job.n + job.k))
        if len(rows_shape) != 2 or rows_shape != expected_shape:
            raise ValueError(f"job rows must have shape {expected_shape} for n = {job.n}, "
                             f"k = {job.k}, not {rows_shape}")
        transport = self.transport
        stats_before = dict(transport.statistics)
        sim_before = getattr(transport, "cycles", None)
        start = time.monotonic()
        fmt = self._info.fmt
        rows = fmt.check_ints(job.rows, "job rows")
        words = [int(v) & 0xFFFFFFFF for v in rows.ravel()]
        setup = [
            regmap.encode_fields("CONTROL", reset_cholesky=1),
            regmap.encode_fields("SIZE", n=job.n, k=job.k),
            regmap.encode_fields("LAMBDA", value=job.lam),
            regmap.encode_fields("COMMAND", op=int(job.op)),
        ]
        if [regmap.address(name) for name in ("CONTROL", "SIZE", "LAMBDA", "COMMAND")] != \
                list(range(regmap.address("CONTROL"), regmap.address("CONTROL") + 4)):
            raise AssertionError("job setup registers are not consecutive")
        transport.write(regmap.address("CONTROL"), setup)
        if job.op == regmap.Op.CHOLESKY_GRAM:
            if len(words) > 1:
                transport.write(regmap.address("ROW_DATA"), words[:-1], fixed_address=True)
            transport.write(regmap.address("ROW_DATA_LAST"), words[-1:], fixed_address=True)
        else:
            transport.write(regmap.address("ROW_DATA"), words, fixed_address=True)
        polls = 0
        while True:
            status_word, cycles, result_count = transport.read(regmap.address("STATUS"), 3)
            polls += 1
            status = regmap.decode_fields("STATUS", status_word)
            if status["done"] and not status["busy"]:
                break
            if time.monotonic() - start > self.job_timeout:
                self.reset()
                raise DeviceTimeout(f"job did not finish within {self.job_timeout} s "
                                    f"(phase {status['phase']}, {cycles} cycles); core reset")
            if transport.poll_interval:
                time.sleep(transport.poll_interval)
        if status["bad_command"]:
            raise DeviceError(f"device rejected n={job.n}, k={job.k} (bad_command)")
        if status["npd"]:
            raise NotPositiveDefinite(
                f"pivot {status['npd_index']} was not positive: the matrix is not positive "
                f"definite (or lam is too small for {fmt})", status["npd_index"])
        if status["saturated"]:
            raise Saturated("the device clipped a value during the job (sticky saturated "
                            "flag); the result is not returned")
        expected = job.n * job.k
        if result_count != expected:
            raise LinkError(f"device produced {result_count} results, expected {expected}")
        raw = transport.read(regmap.RESULT_WINDOW, expected)
        values = np.array(raw, dtype=np.int64)
        values = np.where(values >= 1 << 31, values - (1 << 32), values)
        result = fmt.check_ints(values, "device results").reshape(job.n, job.k)
        stats_after = transport.statistics
        self.last_run = {
            "cycles": int(cycles),
            "polls": polls,
            "seconds": time.monotonic() - start,
            **{key: stats_after.get(key, 0) - stats_before.get(key, 0)
               for key in ("requests", "retries", "bytes_sent", "bytes_received",
                           "payload_bytes")},
        }
        if sim_before is not None:
            self.last_run["sim_cycles"] = transport.cycles - sim_before
        return result

    def _finish(self, job: Job, result: np.ndarray) -> np.ndarray:
        real = np.ldexp(result.astype(np.float64),
                        job.result_exponent - self._info.fmt.frac_bits)
        return real[:, 0] if job.vector else real

    def solve(self, A, B) -> np.ndarray:
        """Solve ``A X = B`` for a symmetric positive definite ``A`` on the device.

        Parameters
        ----------
        A : array_like, shape (n, n)
        B : array_like, shape (n,) or (n, k)

        Returns
        -------
        numpy.ndarray of float64, the shape of ``B``
        """
        job = self.plan_solve(A, B)
        result = self.run(job)
        self._check_result(job, result)
        return self._finish(job, result)

    def fit(self, H, T, lam: float = 0.0) -> np.ndarray:
        """Ridge regression on the device: ``W = (HᵀH + λI)⁻¹ HᵀT``.

        Parameters
        ----------
        H : array_like, shape (m, n)
        T : array_like, shape (m,) or (m, k)
        lam : float
            λ >= 0.

        Returns
        -------
        numpy.ndarray of float64, shape (n,) or (n, k)
        """
        job = self.plan_fit(H, T, lam)
        result = self.run(job)
        self._check_result(job, result)
        return self._finish(job, result)

    # -- the incremental-update core ----------------------------------------------------------

    def _require_updater(self) -> None:
        if "updater" not in self._info.cores:
            raise DeviceError(f"the device has no incremental-update core (cores: "
                              f"{', '.join(self._info.cores)}); build it with cores=cholesky,"
                              "updater")

    def _require_head(self) -> HeadState:
        self._require_updater()
        if self.head is None:
            raise DeviceError("the updater is not initialised: call reset(lam=..., n=..., k=...) "
                              "first")
        return self.head

    def updater_config(self):
        """The updater's :class:`~tiersolve.gen.qr_model.QRConfig` (format, rotation kind)."""
        from tiersolve.gen.qr_model import QRConfig

        self._require_updater()
        return QRConfig(self._info.fmt, self._info.updater_rotation)

    def updater_command(self, op, n: int, k: int, *, value: int = 0,
                        forgetting: int | None = None, select=regmap.UpdaterSelect.R,
                        data=(), outputs: int = 0) -> tuple[dict, np.ndarray]:
        """Run one updater command on stored integers (what the high-level calls are made of).

        Parameters
        ----------
        op : regmap.UpdaterOp
        n, k : int
            Runtime sizes.
        value : int
            ``√λ`` (stored integer) for RESET, the row count for FOLD.
        forgetting : int or None
            ``b = round(√β·2**w)`` for UPDATE and FOLD (None: ``2**w``, no forgetting).
        select : regmap.UpdaterSelect or regmap.UpdaterFoldKind
            Matrix of READ / LOAD; for FOLD, what it does with its rows (UPDATE: fold them
            in; DOWNDATE: take them out, on a design with ``info().updater_fold_downdate``).
        data : sequence of int
            Values for ``UPDATER_DATA`` (stored integers of the format).
        outputs : int
            Values the command produces (PREDICT ``k``, READ ``n·n`` or ``n·k``).

        Returns
        -------
        (status, values) : (dict, numpy.ndarray of int64)
            The ``UPDATER_STATUS`` fields after the command and its output integers. Flags are
            not turned into exceptions here, except ``bad_command``.

        Raises
        ------
        DeviceError
            ``bad_command`` (sizes or constants out of range).
        DeviceTimeout, LinkError
            As :meth:`run`.
        """
        self._require_updater()
        fmt = self._info.fmt
        transport = self.transport
        start = time.monotonic()
        data = fmt.check_ints(np.asarray(data, dtype=np.int64).ravel(), "updater data")
        if forgetting is None:
            forgetting = 1 << fmt.width
        names = ("UPDATER_SIZE", "UPDATER_VALUE", "UPDATER_FORGET", "UPDATER_COMMAND")
        first = regmap.address(names[0])
        if [regmap.address(name) - first for name in names] != list(range(len(names))):
            raise AssertionError("updater command registers are not consecutive")
        transport.write(first, [
            regmap.encode_fields("UPDATER_SIZE", n=n, k=k),
            regmap.encode_fields("UPDATER_VALUE", value=int(value)),
            regmap.encode_fields("UPDATER_FORGET", value=int(forgetting)),
            regmap.encode_fields("UPDATER_COMMAND", op=int(op), select=int(select)),
        ])
        if len(data):
            transport.write(regmap.address("UPDATER_DATA"),
                            [int(v) & 0xFFFFFFFF for v in data], fixed_address=True)
        polls = 0
        while True:
            status_word, cycles, count = transport.read(regmap.address("UPDATER_STATUS"), 3)
            polls += 1
            status = regmap.decode_fields("UPDATER_STATUS", status_word)
            if status["bad_command"] or (status["done"] and not status["busy"]):
                break
            if time.monotonic() - start > self.job_timeout:
                self.reset()
                raise DeviceTimeout(f"updater command {regmap.UpdaterOp(op).name} did not "
                                    f"finish within {self.job_timeout} s; cores reset")
            if transport.poll_interval:
                time.sleep(transport.poll_interval)
        if status["bad_command"]:
            raise DeviceError(f"updater rejected {regmap.UpdaterOp(op).name} with n={n}, "
                              f"k={k}, forgetting={forgetting} (bad_command)")
        values = np.zeros(0, dtype=np.int64)
        if outputs:
            if count != outputs:
                raise LinkError(f"updater produced {count} values, expected {outputs}")
            raw = np.array(transport.read(regmap.UPDATER_RESULT_WINDOW, outputs),
                           dtype=np.int64)
            values = fmt.check_ints(np.where(raw >= 1 << 31, raw - (1 << 32), raw),
                                    "updater results")
        self.last_run = {"cycles": int(cycles), "polls": polls,
                         "seconds": time.monotonic() - start, "op": regmap.UpdaterOp(op).name}
        return status, values

    def _head_command(self, op, *, raise_saturated=True, **kwargs):
        head = self.head
        status, values = self.updater_command(op, head.n, head.k, **kwargs)
        if raise_saturated:
            self._raise_if_saturated(status)
        return status, values

    @staticmethod
    def _raise_if_saturated(status) -> None:
        if status["saturated"]:
            raise Saturated("the updater clipped a value since its reset (sticky saturated "
                            "flag): its state is not trustworthy; reset it with a larger "
                            "capacity or bounds")

    def _start_head(self, lam, n, k, feature_bound, target_bound, capacity) -> None:
        self._require_updater()
        for name, value in (("n", n), ("k", k), ("capacity", capacity)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self._check_sizes(n, k)
        values = {}
        for name, value in (("lam", lam), ("feature_bound", feature_bound),
                            ("target_bound", target_bound)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                                 np.floating)):
                raise TypeError(f"{name} must be a real number, not {value!r}")
            value = float(value)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, not {value!r}")
            values[name] = value
        lam, h_max, t_max = values["lam"], values["feature_bound"], values["target_bound"]
        config = self.updater_config()
        fmt, limit = config.fmt, self._limit
        e_h = _exponent(math.sqrt(capacity * h_max ** 2 + lam), limit)
        z_bound = math.sqrt(capacity) * t_max
        e_t = _min_exponent(
            _exponent(z_bound, limit),
            _exponent(z_bound / math.sqrt(lam), limit) + e_h,
            _exponent(z_bound * math.sqrt(n) * h_max / math.sqrt(lam), limit))
        lam_sqrt = int(fmt.quantise(np.array(math.ldexp(math.sqrt(lam), e_h))).values)
        if lam_sqrt < 1:
            raise Saturated(f"sqrt(lam) = {math.sqrt(lam):.3g} rounds to zero in {fmt} once "
                            f"scaled by 2**{e_h} for {capacity} rows of |h| <= {h_max:.3g}: "
                            "raise lam or lower the capacity")
        for name, bound, exponent in (("features", h_max, e_h), ("targets", t_max, e_t)):
            if math.ldexp(bound, exponent) < fmt.resolution:
                raise Saturated(f"{name} of magnitude {bound:.3g} would round to zero in {fmt} "
                                f"once scaled by 2**{exponent} (the capacity or the solution "
                                "range is too large for the format)")
        self.head = HeadState(n, k, lam, lam_sqrt, e_h, e_t, h_max, t_max, int(capacity),
                              config)
        self._head_command(regmap.UpdaterOp.RESET, value=lam_sqrt)

    def fold_is_quicker(self, n: int, k: int, rows: int, forgetting: int | None = None) -> bool:
        """Whether one FOLD of ``rows`` rows (sizes ``n``, ``k``; ``forgetting`` the command's
        constant, None: none) ends sooner on this device and link than ``rows`` UPDATE
        commands, which give the same integers. False on a design without FOLD.

        A FOLD keeps rows in flight together; its schedule's fill and drain (the periods
        before all of a row's pivots run and after the last row enters) last only as long as
        their own tasks need, so by the cores' formulas one FOLD of two or more rows ends
        sooner than UPDATEs at every size: 25 rows at ``n = 63``, ``k = 10`` on the demo's
        design (one multiplier unit, Q8.16) take 66,350 cycles in one FOLD
        (:meth:`~tiersolve.gen.qr.IncrementalUpdater.fold_cycles`) and 25 x 4,277 in UPDATEs
        (:meth:`~tiersolve.gen.qr.IncrementalUpdater.update_cycles`). The rule still weighs
        both, so that a design whose figures differ is served by what they say. Both
        formulas take the rows at a value a cycle; the link adds, in cycles of the design's
        clock (``info().clock_frequency``) and with ``b`` its
        :meth:`~tiersolve.host.transport.Transport.byte_cycles`:

        - to every UPDATE, the wait for its row, a value every ``4·b`` cycles from its
          command on (the host sends a row once the command before has ended):
          ``(n + k - 1)·(4·b - 1)`` cycles more than the formula's value a cycle (exact in
          simulation), and, to all but the first, the exchange of a command
          (:meth:`~tiersolve.host.transport.Transport.command_cycles`);
        - to the FOLD, the waits of its schedule for rows that arrive a value every
          ``4·b`` cycles on the same timetable (the formula's ``value_cycles``): a period
          starts once its row is in, while the rows in flight go on; with rows slower than
          one a period, the FOLD takes about the rows' arrival and the schedule's drain
          after the last.

        A single row is weighed too: by the formulas a FOLD of one row ends up to 23 %
        sooner than its UPDATE at some sizes (e.g. ``n = 64``, ``k = 1`` with 64 multiplier
        units: 2,633 cycles against 3,150, the row's pivots following one another every
        39 cycles, the FOLD's shortest period, against about 49 in the UPDATE) and up to
        45 % later at others (small ``n`` with several units: ``n = 4``, ``k = 1`` on a
        16/4/4 design, 266 against 210)."""
        info = self._info
        if not info.updater_fold or rows < 1:
            return False
        model = updater_cycle_model(info.n_max, info.k_max, str(info.fmt), info.updater_units,
                                    info.updater_rotation)
        clock = info.clock_frequency
        # a transport of its own making may have only read and write: costs as a mapped bus
        link = self.transport if hasattr(self.transport, "command_cycles") else Transport()
        return fold_beats_updates(model, n, k, rows, forgetting, link.byte_cycles(clock),
                                  link.command_cycles(clock))

    def downdates_in_fold(self, n: int, k: int, rows: int) -> bool:
        """Whether ``rows`` rows to take out (sizes ``n``, ``k``) go in FOLDs of downdates
        rather than one DOWNDATE a row: on a design whose FOLD takes rows out
        (``info().updater_fold_downdate``), always for several rows (all or none per
        command), and for a single row where :meth:`fold_is_quicker` says so (with multiplier
        rotations a DOWNDATE takes the cycles of an UPDATE, a FOLD of downdates those of a
        FOLD without forgetting). :meth:`downdate` and the learning backend decide by it."""
        return self._info.updater_fold_downdate and (
            rows > 1 or self.fold_is_quicker(n, k, rows))

    def update(self, h, t, forget: float = 1.0) -> None:
        """Fold rows ``[h | t]`` into the updater, each after forgetting: ``R``, ``Z`` are
        scaled by ``√forget`` first (``0 < forget <= 1``; 1: remember everything).

        ``h`` is ``(n,)`` or ``(m, n)``, ``t`` ``(k,)`` or ``(m, k)`` (a scalar per row when
        ``k = 1``). On a design built with the FOLD command (``info().updater_fold``),
        several rows go in one FOLD command, with or without forgetting (the rows in flight
        together: the same integers as one UPDATE per row), when that ends sooner
        (:meth:`fold_is_quicker`: many rows, a small ``n``, or a slow link); otherwise one
        UPDATE command per row, in order.

        Raises
        ------
        ValueError
            A value above the bounds given to :meth:`reset`, or bad shapes.
        Saturated
            The updater's sticky flag is set (a value was clipped since the reset).
        """
        head = self._require_head()
        forgetting = head.config.forgetting_constant(forget)
        h_int, t_int = head.quantise_rows(h, t)
        fmt = head.config.fmt
        rows = np.concatenate([h_int, t_int], axis=1)
        most = fold_row_limit(fmt.width)
        for start in range(0, len(rows), most):
            chunk = rows[start:start + most]
            if self.fold_is_quicker(head.n, head.k, len(chunk), forgetting):
                head.stale = True
                self._head_command(regmap.UpdaterOp.FOLD, value=len(chunk),
                                   forgetting=forgetting, data=chunk)
                head.rows += len(chunk)
                continue
            for row in chunk:
                head.stale = True
                head.rows += 1
                self._head_command(regmap.UpdaterOp.UPDATE, forgetting=forgetting, data=row)

    def downdate(self, h, t) -> None:
        """Take rows ``[h | t]`` out of the updater (shapes as :meth:`update`).

        On a design whose FOLD takes rows out (``info().updater_fold_downdate``), several
        rows go in one FOLD of downdates (the integers of one DOWNDATE per row, rows in
        flight together; all or none: if one row would be refused, none of the command's
        rows is taken out), and so does a single row where that ends sooner
        (:meth:`downdates_in_fold`); otherwise one DOWNDATE command per row, in order.

        Raises
        ------
        DowndateRefused
            The updater refused a row (the result would not be positive definite). One
            DOWNDATE per row: the rows before it are out, the refused one and those after it
            were not sent, and ``R``, ``Z`` are exactly as they were before the refused row.
            FOLD: none of the rows of the refused command is out (a call sends at most
            ``2**(w-1) - 1`` rows per command: the commands before it stay done), and ``R``,
            ``Z`` are exactly as they were before that command.
        Saturated, ValueError
            As :meth:`update`.
        """
        head = self._require_head()
        h_int, t_int = head.quantise_rows(h, t)
        if self.downdates_in_fold(head.n, head.k, len(h_int)):
            rows = np.concatenate([h_int, t_int], axis=1)
            most = fold_row_limit(head.config.fmt.width)
            for start in range(0, len(rows), most):
                chunk = rows[start:start + most]
                status, _ = self._head_command(regmap.UpdaterOp.FOLD, value=len(chunk),
                                               select=regmap.UpdaterFoldKind.DOWNDATE,
                                               data=chunk, raise_saturated=False)
                if status["refused"]:
                    end = start + len(chunk) - 1
                    before = ("" if start == 0 else
                              f"; rows 0-{start - 1} of this call were taken out before "
                              "it, by earlier commands")
                    if len(rows) == 1:
                        raise DowndateRefused(
                            "the updater refused to remove the row: the result would not be "
                            f"positive definite in {head.config.fmt}; the state is unchanged "
                            "(one FOLD command of one row)")
                    raise DowndateRefused(
                        f"the updater refused to remove rows {start}-{end}: one of them "
                        f"would leave a result that is not positive definite in "
                        f"{head.config.fmt}; none of rows {start}-{end} was taken out (one "
                        f"FOLD command, all or none), and the state is as it was before "
                        f"them{before}" + ("" if end == len(rows) - 1 else
                                           f"; rows {end + 1}- were not sent"))
                # the rows are out, saturated or not: the bookkeeping first, then the flag
                head.stale = True
                head.rows -= len(chunk)
                self._raise_if_saturated(status)
            return
        for index, (h_row, t_row) in enumerate(zip(h_int, t_int, strict=True)):
            status, _ = self._head_command(regmap.UpdaterOp.DOWNDATE,
                                           data=np.concatenate([h_row, t_row]),
                                           raise_saturated=False)
            if status["refused"]:
                before = ("the state is unchanged" if index == 0 else
                          "row 0 of this call was taken out, and the state is as it was "
                          "after it" if index == 1 else
                          f"rows 0-{index - 1} of this call were taken out, and the state is "
                          "as it was after them")
                raise DowndateRefused(f"the updater refused to remove row {index}: the result "
                                      "would not be positive definite in "
                                      f"{head.config.fmt}; {before} (row {index} and the rows "
                                      "after it were not taken out)")
            head.stale = True
            head.rows -= 1
            self._raise_if_saturated(status)

    def _refresh(self) -> HeadState:
        head = self._require_head()
        if head.stale:
            self._head_command(regmap.UpdaterOp.SOLVE)
            head.stale = False
        return head

    def weights(self) -> np.ndarray:
        """The updater's current solution ``W = R⁻¹Z`` (``(n, k)``, real units): the ridge
        solution over the rows folded in (with forgetting), refreshed on the device first."""
        head = self._refresh()
        _, values = self._head_command(regmap.UpdaterOp.READ, select=regmap.UpdaterSelect.W,
                                       outputs=head.n * head.k)
        exponent = head.h_exponent - head.t_exponent - head.config.fmt.frac_bits
        return np.ldexp(values.reshape(head.n, head.k).astype(np.float64), exponent)

    def predict(self, h) -> np.ndarray:
        """``hᵀW`` on the device for ``h`` ``(n,)`` or ``(m, n)``: ``(k,)`` or ``(m, k)``.
        ``W`` is refreshed first if rows came in or out since the last solve."""
        head = self._refresh()
        h_int, _ = head.quantise_rows(h)
        out = []
        for row in h_int:
            _, values = self._head_command(regmap.UpdaterOp.PREDICT, data=row, outputs=head.k)
            out.append(values)
        result = np.ldexp(np.array(out, dtype=np.float64),
                          -head.t_exponent - head.config.fmt.frac_bits)
        return result[0] if np.ndim(h) == 1 else result

    def read_state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(R, Z)`` of the updater in real units (``R`` upper triangular ``(n, n)``)."""
        head = self._require_head()
        f = head.config.fmt.frac_bits
        _, r = self._head_command(regmap.UpdaterOp.READ, select=regmap.UpdaterSelect.R,
                                  outputs=head.n * head.n, raise_saturated=False)
        _, z = self._head_command(regmap.UpdaterOp.READ, select=regmap.UpdaterSelect.Z,
                                  outputs=head.n * head.k, raise_saturated=False)
        return (np.ldexp(r.reshape(head.n, head.n).astype(np.float64), -f - head.h_exponent),
                np.ldexp(z.reshape(head.n, head.k).astype(np.float64), -f - head.t_exponent))

    def load_state(self, R, Z) -> None:
        """Load ``R`` (its upper triangle) and ``Z`` (real units, the scaling of the last
        :meth:`reset`), e.g. saved by :meth:`read_state`.

        Raises
        ------
        Saturated
            A value does not fit the format at that scaling.
        """
        head = self._require_head()
        R = _as_real_array("R", R, (2,))
        if R.shape != (head.n, head.n):
            raise ValueError(f"R must be {head.n} x {head.n}, not shape {R.shape}")
        Z = _as_rows("Z", _as_real_array("Z", Z, (1, 2)), head.n, head.k)
        for name, matrix, exponent, select in (
                ("R", np.triu(R), head.h_exponent, regmap.UpdaterSelect.R),
                ("Z", Z, head.t_exponent, regmap.UpdaterSelect.Z)):
            self._head_command(regmap.UpdaterOp.LOAD, select=select,
                               data=self._quantise(name, matrix, exponent))
        head.stale = True

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        info = self._info
        return (f"<Device {'+'.join(info.cores)} n_max={info.n_max} k_max={info.k_max} "
                f"{info.fmt} lanes={info.lanes}>")


# -- command line: tiersolve info | solve | fit --device URL ------------------------------------


def _load_array(path: str) -> np.ndarray:
    from .cli import CliError

    try:
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        if path.endswith(".csv"):
            return np.loadtxt(path, delimiter=",", ndmin=1)
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read {path}: {error}") from None
    raise CliError(f"{path}: expected a .npy or .csv file")


def _check_output(path: str | None) -> None:
    """Refuse an output file :func:`_save_array` cannot write, before the job runs."""
    from .cli import CliError

    if path is not None and not path.endswith((".npy", ".csv")):
        raise CliError(f"{path}: the output must be a .npy or .csv file")


def _save_array(path: str | None, array: np.ndarray) -> None:
    from .cli import CliError

    if path is None:
        with np.printoptions(precision=8, suppress=True):
            print(array)
        return
    try:
        if path.endswith(".npy"):
            np.save(path, array)
        elif path.endswith(".csv"):
            np.savetxt(path, np.atleast_1d(array), delimiter=",", fmt="%.17g")
        else:
            raise CliError(f"{path}: the output must be a .npy or .csv file")
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror}") from None
    print(f"wrote {path} {array.shape}")


def _add_device_argument(parser) -> None:
    parser.add_argument("--device", default="sim://",
                        help="device URL, e.g. sim://?n_max=16&k_max=4 or uart:///dev/ttyUSB1 "
                             "(default: sim://)")


def _open_for_cli(url: str) -> Device:
    from .cli import CliError

    try:
        return open(url)
    except (ValueError, TypeError, DeviceError) as error:
        raise CliError(f"{url}: {error}") from None


def _setup_info(parser):
    _add_device_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--regmap", action="store_true",
                        help="print the register map (JSON) instead of the device identity")


def _run_info(args) -> int:
    import json

    if args.regmap:
        print(regmap.register_map_json())
        return 0
    with _open_for_cli(args.device) as device:
        info = device.info()
    fields = {name: (str(value) if isinstance(value, FixedFormat) else value)
              for name, value in info.__dict__.items()}
    if args.json:
        print(json.dumps(fields, indent=2))
    else:
        width = max(map(len, fields))
        for name, value in fields.items():
            print(f"{name:{width}s} {value}")
    return 0


def _run_job(args, method: str, inputs: list[str], **extra) -> int:
    from .cli import CliError

    try:
        parse_url(args.device)  # a malformed URL is reported before any file is read
    except (ValueError, TypeError) as error:
        raise CliError(str(error)) from None
    _check_output(args.output)
    arrays = [_load_array(path) for path in inputs]
    with _open_for_cli(args.device) as device:
        try:
            result = getattr(device, method)(*arrays, **extra)
        except (ValueError, TypeError, DeviceError) as error:
            raise CliError(f"{type(error).__name__}: {error}") from None
        report = device.last_run
    _save_array(args.output, result)
    if args.verbose:
        print(", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                        for key, value in report.items()))
    return 0


def _setup_solve(parser):
    _add_device_argument(parser)
    parser.add_argument("A", help="symmetric positive definite matrix (.npy or .csv)")
    parser.add_argument("B", help="right-hand side(s), (n,) or (n, k) (.npy or .csv)")
    parser.add_argument("--output", "-o", help="result file (.npy or .csv); default: print")
    parser.add_argument("--verbose", "-v", action="store_true", help="print link statistics")


def _run_solve(args) -> int:
    return _run_job(args, "solve", [args.A, args.B])


def _setup_fit(parser):
    _add_device_argument(parser)
    parser.add_argument("H", help="features, (m, n) (.npy or .csv)")
    parser.add_argument("T", help="targets, (m,) or (m, k) (.npy or .csv)")
    parser.add_argument("--lam", type=float, default=0.0, help="ridge λ >= 0 (default 0)")
    parser.add_argument("--output", "-o", help="weights file (.npy or .csv); default: print")
    parser.add_argument("--verbose", "-v", action="store_true", help="print link statistics")


def _run_fit(args) -> int:
    return _run_job(args, "fit", [args.H, args.T], lam=args.lam)


def _setup_update(parser):
    _add_device_argument(parser)
    parser.add_argument("H", help="rows to fold in, (m, n) (.npy or .csv)")
    parser.add_argument("T", help="their targets, (m,) or (m, k) (.npy or .csv)")
    parser.add_argument("--lam", type=float, default=1.0, help="ridge λ > 0 (default 1)")
    parser.add_argument("--forget", type=float, default=1.0,
                        help="forgetting factor β in (0, 1] applied before each row (default 1)")
    parser.add_argument("--downdate", nargs=2, metavar=("HD", "TD"),
                        help="rows to take out afterwards (.npy or .csv)")
    parser.add_argument("--capacity", type=int,
                        help="rows the range analysis allows for (default: the rows of H)")
    parser.add_argument("--feature-bound", type=float,
                        help="largest |h| (default: that of H)")
    parser.add_argument("--target-bound", type=float,
                        help="largest |t| (default: that of T)")
    parser.add_argument("--predict", metavar="X",
                        help="output predictions for these rows (.npy or .csv) instead of W")
    parser.add_argument("--output", "-o", help="result file (.npy or .csv); default: print")
    parser.add_argument("--verbose", "-v", action="store_true", help="print the scaling")


def _run_update(args) -> int:
    """Start the updater at √λ·I, fold the rows of H, T in (with forgetting), take the
    --downdate rows out, and print or save W (or the predictions for --predict)."""
    from .cli import CliError

    try:
        parse_url(args.device)
    except (ValueError, TypeError) as error:
        raise CliError(str(error)) from None
    _check_output(args.output)
    try:
        H = np.atleast_2d(_as_real_array("H", _load_array(args.H), (1, 2)))
        T = _as_real_array("T", _load_array(args.T), (1, 2))
        k = T.shape[1] if T.ndim == 2 else T.size if len(H) == 1 else 1
        T2 = _as_rows("T", T, len(H), k, single=len(H) == 1)
        removed = None
        if args.downdate:
            hd = np.atleast_2d(_as_real_array("HD", _load_array(args.downdate[0]), (1, 2)))
            td = _as_real_array("TD", _load_array(args.downdate[1]), (1, 2))
            removed = (hd, _as_rows("TD", td, len(hd), k, single=len(hd) == 1))
    except (ValueError, TypeError) as error:
        raise CliError(str(error)) from None
    X = _load_array(args.predict) if args.predict else None
    feature_bound = args.feature_bound
    target_bound = args.target_bound
    if feature_bound is None:
        feature_bound = float(np.max(np.abs(H))) or 1.0
    if target_bound is None:
        target_bound = float(np.max(np.abs(T2))) or 1.0
    with _open_for_cli(args.device) as device:
        try:
            device.reset(args.lam, n=H.shape[1], k=T2.shape[1], feature_bound=feature_bound,
                         target_bound=target_bound,
                         capacity=len(H) if args.capacity is None else args.capacity)
            device.update(H, T2, forget=args.forget)
            if removed is not None:
                device.downdate(*removed)
            result = device.predict(X) if X is not None else device.weights()
        except (ValueError, TypeError, DeviceError) as error:
            raise CliError(f"{type(error).__name__}: {error}") from None
        head = device.head
    if T.ndim == 1 and result.ndim == 2:
        result = result[:, 0]
    elif T.ndim == 1 and X is not None and np.ndim(X) == 1:
        result = result[0]
    _save_array(args.output, result)
    if args.verbose:
        print(f"rows={head.rows} h_exponent={head.h_exponent} t_exponent={head.t_exponent} "
              f"lam_sqrt={head.lam_sqrt}")
    return 0


#: Subcommands for :mod:`tiersolve.host.cli`: name -> (setup, run, help).
COMMANDS = {
    "info": (_setup_info, _run_info, "show a device's identity (or the register map)"),
    "solve": (_setup_solve, _run_solve, "solve A X = B on a device"),
    "fit": (_setup_fit, _run_fit, "ridge regression W = (HᵀH + λI)⁻¹HᵀT on a device"),
    "update": (_setup_update, _run_update,
               "incremental ridge on a device's updater: fold rows in (forgetting), take rows "
               "out, print W or predictions"),
}
