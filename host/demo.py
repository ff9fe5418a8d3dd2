"""The two-tier demo: learn digits 0-4 in one step, then digits 5-9 incrementally.

:func:`run_demo` trains :class:`~tiersolve.host.learn.TwoTierClassifier` on scikit-learn's
bundled digits (no download): ``fit`` on the training samples of classes 0-4 (lower tier and
head, one step each), then ``partial_fit`` on the training samples of classes 5-9 in
mini-batches (the head grows one output column per new class and is updated by the
incremental updater; the lower tier stays as it is). After every step it measures the accuracy
on the held-out samples of all ten classes, of the old classes and of the new ones, prints a
progress line, and at the end saves the learning curve as a PNG. It runs each backend in
turn: ``"float64"``, ``"fixed"`` (the bit-exact models) and ``"device"`` (the cores on a device,
by default the built-in Verilator-simulated one, :data:`DEFAULT_DEVICE_URL`).

With a device, the demo's ``"fixed"`` backend is the device's
:meth:`~tiersolve.host.learn.DeviceBackend.matching_fixed_backend` (same formats), both solve the
lower tier's ridge problems in blocks of ``k_max`` right-hand-side columns (their
``rhs_block``: the autoencoder of a layer has as many right-hand sides as the layer has
inputs, 64 for digits, more than a small core's ``k_max``), and the demo checks that
the two agree bit for bit. The device's core cycles (its ``CYCLES`` counters, summed over every
job and updater command) are converted to time at the Fmax of the last recorded build of the
default board (:data:`DEFAULT_BOARD`, looked up by :func:`board_fmax` in
``tiersolve.boards.measured``); when no board build is recorded, at the bare Cholesky core's
Fmax (:data:`CORE_FMAX_MHZ`), and the demo says so.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tiersolve.host.learn import DelegatingBackend, DeviceBackend, SolverBackend

__all__ = ["CORE_FMAX_MHZ", "DEFAULT_BOARD", "DEFAULT_DEVICE_URL", "DEFAULT_FMAX_MHZ",
           "UPDATER_FMAX_MHZ", "ColumnBlockedBackend", "CycleCountingDeviceBackend",
           "board_fmax", "continual_curve", "plot_curves", "run_demo", "split_digits"]

#: The demo's simulated device: both cores, ``n_max = 64`` (a lower tier of 63 hidden units,
#: and a head of those and the bias: about 0.93 held-out accuracy on all ten digits after the
#: incremental phase, against 0.73 with 15 units), ``k_max = 32`` (the ten classes in the
#: head; the autoencoder's 64 right-hand sides in two Cholesky jobs instead of seven: every
#: job streams all of ``H`` over the link again), Q8.16 data, Q4.20 pivot inverses.
DEFAULT_DEVICE_URL = ("vsim://?n_max=64&k_max=32&lanes=4&format=Q8.16&inverse_format=Q4.20"
                      "&guard_bits=4&cores=cholesky,updater")
#: Board whose recorded build gives the clock at which device cycles become time.
DEFAULT_BOARD = "ulx3s-85f"
#: Fmax (MHz) of the bare Cholesky core at ``n_max = 16`` on an ECP5-85F (measured out of
#: context, 16/4/4 Q6.12, the lowest of seeds 1-3 at a0ad6f0; README): the fallback when no
#: board build is recorded.
CORE_FMAX_MHZ = 124.8
#: Fmax (MHz) of the bare incremental updater (``n_max = 16``, ``k_max = 2``, 4 units,
#: multiplier rotations with FOLD, Q6.12, ECP5-85F, measured out of context: the lowest of
#: seeds 1-3 at 6fa0cef; README): caps the clock when the board build used has no updater.
UPDATER_FMAX_MHZ = 109.8
#: Default ``fmax_mhz`` of :func:`run_demo`: None, i.e. the board build's Fmax (:func:`board_fmax`).
DEFAULT_FMAX_MHZ = None


def board_fmax(board=DEFAULT_BOARD, core_fmax_mhz=CORE_FMAX_MHZ, *,
               updater_fmax_mhz=UPDATER_FMAX_MHZ, **config) -> dict:
    """The clock at which a device's cycles are converted to time, and where it comes from.

    Looks up a recorded build of ``board`` with
    ``tiersolve.boards.measured.measured_build(board, **config)`` (``config``: the device's
    ``n_max``, ``k_max``, ``lanes``, ``format``, ``cores``, ``updater_fold``). When no build
    matches them all, it asks again with ``cores`` only, then with no configuration (the
    board's most relevant build of any kind), and the source names the build it used and says
    it is not the device's configuration; so it does when the build found first is larger
    than the device (``measured_build`` lets the smallest recorded build that holds ``n_max``
    and ``k_max`` stand in). When ``config`` asks for the updater and that build
    has none, the clock is capped at ``updater_fmax_mhz`` (a design is no faster than its
    slowest core), and the source says so. The module is imported defensively: when it is
    missing, or has no build of the board at all, the bare core's Fmax ``core_fmax_mhz`` is
    used instead and the source says so.

    Returns
    -------
    dict
        ``fmax_mhz``; ``board`` (None for the core fallback); ``build`` (the recorded build:
        ``fmax_mhz``, ``clock_mhz``, ``n_max``, ``k_max``, ``lanes``, ``format``, ``cores``,
        ``command``; or None); ``match``: ``"exact"``, ``"stand-in"`` (the same kind of design
        with another ``n_max`` or ``k_max``), ``"cores"``, ``"board"`` (what the build has in
        common with ``config``) or None; ``source``, a phrase naming the board and
        the build, or ``"core Fmax, no board build recorded"``.
    """
    try:
        from tiersolve.boards.measured import config_differences, measured_build
    except ImportError:
        measured_build = None
    build = match = None
    if measured_build is not None:
        attempts = [("exact", config)]
        if "cores" in config and set(config) != {"cores"}:
            attempts.append(("cores", {"cores": config["cores"]}))
        if config:
            attempts.append(("board", {}))
        for level, keys in attempts:
            build, match = measured_build(board, **keys), level
            if build and build.get("fmax_mhz"):
                if level == "exact" and config_differences(build, **config):
                    match = "stand-in"
                break
    if build and build.get("fmax_mhz"):
        shape = "/".join(str(build.get(key, "?")) for key in ("n_max", "k_max", "lanes"))
        details = [f"n_max/k_max/lanes {shape}"]
        for key in ("format", "cores"):
            if build.get(key):
                value = build[key]
                details.append(",".join(value) if isinstance(value, (list, tuple)) else
                               str(value))
        if build.get("clock_mhz"):
            details.append(f"runs at {float(build['clock_mhz']):g} MHz")
        source = f"Fmax of the {board} build ({', '.join(details)})"
        if build.get("command"):
            source += f" recorded by `{build['command']}`"
        if match == "stand-in":
            asked = ", ".join(f"{key} {config[key]}"
                              for key in config_differences(build, **config))
            source += ("; no build of this configuration is recorded, so this build of the same "
                       f"kind stands in for the device's ({asked}; a smaller design is usually "
                       "a little faster)")
        elif match != "exact" and config:
            source += ("; no build of this configuration is recorded, so this is the closest "
                       "recorded one (a larger design is usually a little slower)")
        fmax = float(build["fmax_mhz"])
        wanted = config.get("cores", ())
        wanted = wanted.split(",") if isinstance(wanted, str) else list(wanted)
        built = build.get("cores") or ()
        built = built.split(",") if isinstance(built, str) else list(built)
        if "updater" in wanted and "updater" not in built and updater_fmax_mhz < fmax:
            fmax = float(updater_fmax_mhz)
            source += (f"; that build has no updater, so the clock is capped at the bare "
                       f"updater's {updater_fmax_mhz:g} MHz")
        return {"fmax_mhz": fmax, "board": board, "build": build, "match": match,
                "source": source}
    return {"fmax_mhz": float(core_fmax_mhz), "board": None, "build": None, "match": None,
            "source": "core Fmax, no board build recorded"}


class ColumnBlockedBackend(DelegatingBackend):
    """A backend whose one-step ridge solves take at most ``block`` right-hand sides at a time.

    For backends without their own ``rhs_block`` (:class:`~tiersolve.host.learn.FixedBackend`
    and :class:`~tiersolve.host.learn.DeviceBackend` have it, and the demo uses theirs).

    ``ridge_solve(H, T, lam)`` solves ``T[:, j:j + block]`` one block after another with the
    wrapped backend (each block gets its own input scaling) and joins the solutions; the head
    (``qr_*``) goes to the wrapped backend unchanged. The ridge problem separates by columns,
    so in exact arithmetic nothing changes; in fixed point each block is scaled for its own
    column norms. Wrapping a device backend and its matching fixed backend with the same
    ``block`` keeps the two bit for bit equal. Other attributes (``core_cycles``,
    ``matching_fixed_backend``, ...) are the wrapped backend's.

    Parameters
    ----------
    backend : SolverBackend
        The wrapped backend (its ``name`` becomes this one's).
    block : int
        Largest number of right-hand-side columns per solve (a device's ``k_max``).
    """

    def __init__(self, backend, block):
        if not isinstance(backend, SolverBackend):
            raise TypeError(f"backend must be a SolverBackend, not {backend!r}")
        if isinstance(block, bool) or not isinstance(block, int):
            raise TypeError(f"block must be an integer, not {block!r}")
        if block < 1:
            raise ValueError(f"block must be positive, not {block}")
        self.backend = backend
        self.block = block
        self.name = backend.name

    def __getattr__(self, name):
        if name == "backend":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.backend, name)

    def ridge_solve(self, H, T, lam):
        T = np.asarray(T, dtype=np.float64)
        parts = [self.backend.ridge_solve(H, T[:, begin:begin + self.block], lam)
                 for begin in range(0, T.shape[1], self.block)]
        return np.hstack(parts)

    def qr_init(self, n, k, lam, capacity=None, feature_bound=None, target_bound=None):
        return self.backend.qr_init(n, k, lam, capacity, feature_bound, target_bound)

    def qr_update(self, state, H, T, beta=1.0, forget_per="sample"):
        return self.backend.qr_update(state, H, T, beta, forget_per)

    def qr_downdate(self, state, H, T):
        return self.backend.qr_downdate(state, H, T)

    def qr_add_outputs(self, state, count):
        return self.backend.qr_add_outputs(state, count)

    def qr_solve(self, state):
        return self.backend.qr_solve(state)

    @property
    def wrapped(self):
        return self.backend


class CycleCountingDeviceBackend(DeviceBackend):
    """A :class:`~tiersolve.host.learn.DeviceBackend` that sums the device's cycle counts.

    Parameters
    ----------
    device : tiersolve.host.device.Device or str
        As for :class:`~tiersolve.host.learn.DeviceBackend`.

    Members
    -------
    core_cycles : int
        The cores' ``CYCLES`` counters summed over every Cholesky job and updater command:
        the cycles the cores compute, without the link.
    jobs, commands : int
        Cholesky jobs and updater commands run.
    """

    def __init__(self, device):
        super().__init__(device)
        self.core_cycles = 0
        self.jobs = 0
        self.commands = 0

    def simulated_cycles(self):
        """All clock cycles a simulated device has run, link included (None on hardware)."""
        return getattr(self.device.transport, "cycles", None)

    def _gram_solve(self, n, k, lam_q, rows):
        outcome = super()._gram_solve(n, k, lam_q, rows)
        self.core_cycles += int(self.device.last_run.get("cycles", 0))
        self.jobs += 1
        return outcome

    def _command(self, state, op, **kwargs):
        result = super()._command(state, op, **kwargs)
        self.core_cycles += int(self.device.last_run.get("cycles", 0))
        self.commands += 1
        return result


def split_digits(seed: int = 0, test_size: float = 0.3):
    """Digits as ``(X_train, y_train, X_test, y_test)``, stratified, shuffled by ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size,
                                                        random_state=seed, stratify=y)
    return X_train, y_train, X_test, y_test


def continual_curve(backend, data=None, *, hidden_layer_sizes=(64,), batch_size=25,
                    first_classes=(0, 1, 2, 3, 4), alpha=1.0, random_state=0,
                    progress=None) -> dict:
    """Fit on ``first_classes``, then partial_fit the others batch by batch.

    Returns
    -------
    dict
        ``samples`` (training samples seen after each step), ``accuracy``, ``accuracy_old``,
        ``accuracy_new`` (held-out accuracy over all, old and new classes), ``fit_seconds``,
        ``update_seconds`` (total of the partial_fit calls), ``final_accuracy``, ``classes``,
        ``encoders`` and ``coef`` (the trained lower tier and head). With a backend that
        counts cycles (``core_cycles``, e.g. :class:`CycleCountingDeviceBackend`) also
        ``fit_cycles`` and ``update_cycles``.
    """
    from tiersolve.host.learn import TwoTierClassifier

    X_train, y_train, X_test, y_test = data if data is not None else split_digits()
    first = np.isin(y_train, first_classes)
    old_test = np.isin(y_test, first_classes)
    model = TwoTierClassifier(hidden_layer_sizes=hidden_layer_sizes, alpha=alpha,
                              backend=backend, random_state=random_state)

    def measure(count):
        predicted = model.predict(X_test)
        correct = predicted == y_test
        curve["samples"].append(int(count))
        curve["accuracy"].append(float(correct.mean()))
        curve["accuracy_old"].append(float(correct[old_test].mean()))
        curve["accuracy_new"].append(float(correct[~old_test].mean()))

    def cycles():
        return getattr(backend, "core_cycles", None)

    curve = {"samples": [], "accuracy": [], "accuracy_old": [], "accuracy_new": []}
    start, cycles_before = time.perf_counter(), cycles()
    model.fit(X_train[first], y_train[first])
    curve["fit_seconds"] = time.perf_counter() - start
    if cycles_before is not None:
        curve["fit_cycles"] = cycles() - cycles_before
        cycles_before = cycles()
    seen = int(first.sum())
    measure(seen)
    if progress:
        progress(f"  fit on {seen} samples of classes {list(first_classes)}: "
                 f"accuracy {curve['accuracy'][-1]:.3f} ({curve['fit_seconds']:.1f} s)")
    X_new, y_new = X_train[~first], y_train[~first]
    update_seconds = 0.0
    for begin in range(0, len(y_new), batch_size):
        start = time.perf_counter()
        model.partial_fit(X_new[begin:begin + batch_size], y_new[begin:begin + batch_size])
        update_seconds += time.perf_counter() - start
        seen += len(y_new[begin:begin + batch_size])
        measure(seen)
        if progress:
            progress(f"  partial_fit up to {seen} samples: accuracy {curve['accuracy'][-1]:.3f}"
                     f" (old {curve['accuracy_old'][-1]:.3f}, new "
                     f"{curve['accuracy_new'][-1]:.3f})")
    curve["update_seconds"] = update_seconds
    if cycles_before is not None:
        curve["update_cycles"] = cycles() - cycles_before
    curve["final_accuracy"] = curve["accuracy"][-1]
    curve["classes"] = model.classes_.tolist()
    curve["encoders"] = [encoder.copy() for encoder in model.encoders_]
    curve["coef"] = model.coef_.copy()
    return curve


def plot_curves(curves: dict, path) -> Path:
    """Save the continual-learning curves (``{label: curve}``) as a PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for label, curve in curves.items():
        line, = axis.plot(curve["samples"], curve["accuracy"], label=f"{label}: all classes")
        axis.plot(curve["samples"], curve["accuracy_new"], "--", color=line.get_color(),
                  label=f"{label}: new classes 5-9")
        axis.plot(curve["samples"], curve["accuracy_old"], ":", color=line.get_color(),
                  label=f"{label}: old classes 0-4")
    axis.set_xlabel("training samples seen (fit on 0-4, then partial_fit on 5-9)")
    axis.set_ylabel("held-out accuracy")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    axis.set_title("Two-tier network on digits: new classes learned incrementally")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _same_bits(first: dict, second: dict) -> bool:
    """Whether two curves have the same accuracies and the same trained weights, bit for bit."""
    return (first["accuracy"] == second["accuracy"]
            and len(first["encoders"]) == len(second["encoders"])
            and all(np.array_equal(a, b) for a, b in zip(first["encoders"], second["encoders"],
                                                          strict=True))
            and np.array_equal(first["coef"], second["coef"]))


def run_demo(backends=("float64", "fixed"), *, out="demo-output", hidden_layer_sizes=None,
             batch_size=25, device=DEFAULT_DEVICE_URL, fmax_mhz=DEFAULT_FMAX_MHZ,
             progress=print) -> dict:
    """Run the demo for each backend; print accuracies; save ``<out>/continual.png``.

    Parameters
    ----------
    backends : sequence of str or SolverBackend
        Backends to compare: ``"float64"``, ``"fixed"``, ``"device"`` (the device at
        ``device``) or :class:`~tiersolve.host.learn.SolverBackend` objects.
    out : str or Path
        Folder for the plot.
    hidden_layer_sizes : tuple of int or None
        Lower-tier widths. None: ``(64,)`` without a device; with one, a single layer of
        ``n_max - 1`` units (the head has one more input, the bias), 63 for the default device.
    batch_size : int
        Samples per partial_fit call.
    device : str or tiersolve.host.device.Device
        The device of the ``"device"`` backend (default :data:`DEFAULT_DEVICE_URL`: the
        Verilator-simulated design, compiled on first use, 10-50 s here, then cached).
        It needs both cores (``cores=cholesky,updater``), ``k_max`` of at least 10 (the
        classes) and ``n_max`` above the last hidden width.
    fmax_mhz : float or None
        Clock (MHz) at which the device's core cycles are converted to time. None (default):
        the Fmax of the last recorded build of :data:`DEFAULT_BOARD` (:func:`board_fmax`),
        else the bare core's Fmax with a printed caveat.
    progress : callable or None
        Called with one line of text per step (default ``print``).

    Returns
    -------
    dict
        ``{backend name: curve}`` (see :func:`continual_curve`), ``"plot"``: the PNG path and,
        when both ``"fixed"`` and ``"device"`` ran, ``"bit_exact"``: whether they agree bit
        for bit; with a device, ``"clock"``: ``{"fmax_mhz", "board", "build", "source"}`` (see
        :func:`board_fmax`) of the time conversion.

    Notes
    -----
    With a device, ``"fixed"`` is the device's matching fixed backend (its formats, not the
    :class:`~tiersolve.host.learn.FixedBackend` defaults), and both it and the device solve
    the lower tier's ridge problems in blocks of ``k_max`` columns (their ``rhs_block``).
    """
    if fmax_mhz is not None and not fmax_mhz > 0:
        raise ValueError(f"fmax_mhz must be positive or None, not {fmax_mhz!r}")
    say = progress or (lambda text: None)
    names = [backend if isinstance(backend, str) else getattr(backend, "name", str(backend))
             for backend in backends]
    device_backend = None
    if "device" in backends:  # the name; a SolverBackend object is used as it is
        say(f"opening the device {device if isinstance(device, str) else device!r}"
            + (" (first use compiles it with Verilator: 10-50 s here, then cached)"
               if isinstance(device, str) and device.startswith("vsim://") else ""))
        start = time.perf_counter()
        device_backend = CycleCountingDeviceBackend(device)
        info = device_backend.device.info()
        say(f"  device ready in {time.perf_counter() - start:.1f} s: {'+'.join(info.cores)}, "
            f"n_max={info.n_max}, k_max={info.k_max}, {info.fmt}, inverses "
            f"{info.inverse_format}")
        if hidden_layer_sizes is None:
            hidden_layer_sizes = (info.n_max - 1,)
        if max(hidden_layer_sizes) > info.n_max or hidden_layer_sizes[-1] + 1 > info.n_max:
            device_backend.close()
            raise ValueError(f"hidden_layer_sizes={tuple(hidden_layer_sizes)} do not fit the "
                             f"device's n_max={info.n_max} (the head needs the last width + 1)")
        if info.k_max < 10:
            device_backend.close()
            raise ValueError(f"the device's k_max={info.k_max} is below the 10 digit classes")
    if hidden_layer_sizes is None:
        hidden_layer_sizes = (64,)
    data = split_digits()
    curves = {}
    try:
        for backend, name in zip(backends, names, strict=True):
            if device_backend is not None and backend in ("fixed", "device"):
                # both split the ridge solves' right-hand sides in blocks of k_max themselves
                backend = (device_backend if name == "device"
                           else device_backend.matching_fixed_backend())
            say(f"backend {name}:")
            curves[name] = continual_curve(
                backend, data, hidden_layer_sizes=hidden_layer_sizes, batch_size=batch_size,
                progress=progress)
    finally:
        if device_backend is not None:
            device_backend.close()
    say("")
    say(f"hidden layer {tuple(hidden_layer_sizes)}, head {hidden_layer_sizes[-1] + 1} x 10")
    say(f"{'backend':10s} {'after fit (0-4)':>16s} {'final (0-9)':>12s} {'fit s':>7s} "
        f"{'updates s':>10s}")
    for name, curve in curves.items():
        say(f"{name:10s} {curve['accuracy'][0]:16.3f} {curve['final_accuracy']:12.3f} "
            f"{curve['fit_seconds']:7.2f} {curve['update_seconds']:10.2f}")
    result = {**curves}
    if device_backend is not None and "device" in curves:
        curve = curves["device"]
        if fmax_mhz is None:
            clock = board_fmax(n_max=info.n_max, k_max=info.k_max, lanes=info.lanes,
                               format=str(info.fmt), cores=",".join(info.cores),
                               updater_fold=bool(info.updater_fold))
        else:
            clock = {"fmax_mhz": float(fmax_mhz), "board": None, "build": None, "match": None,
                     "source": "given by the caller (--fmax-mhz)"}
        result["clock"] = clock
        mhz = clock["fmax_mhz"]
        hz = mhz * 1e6
        say(f"clock for device time: {mhz:g} MHz, {clock['source']}")
        say(f"device core cycles: fit {curve['fit_cycles']:,} ({curve['fit_cycles'] / hz * 1e3:.2f}"
            f" ms at {mhz:g} MHz), updates {curve['update_cycles']:,} "
            f"({curve['update_cycles'] / hz * 1e3:.2f} ms); {device_backend.jobs} Cholesky jobs,"
            f" {device_backend.commands} updater commands")
        simulated = device_backend.simulated_cycles()
        if simulated is not None:
            say(f"simulated clock cycles, byte link included: {simulated:,} "
                f"({simulated / hz * 1e3:.1f} ms at {mhz:g} MHz)")
        if "fixed" in curves:
            result["bit_exact"] = _same_bits(curves["fixed"], curve)
            say("fixed and device agree bit for bit (weights and accuracies)"
                if result["bit_exact"] else "fixed and device DIFFER: this is a bug")
    plot = plot_curves(curves, Path(out) / "continual.png")
    say(f"plot saved to {plot}")
    result["plot"] = str(plot)
    return result
