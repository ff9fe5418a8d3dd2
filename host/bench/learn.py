"""``tiersolve bench learn``: accuracy and training cost of the two-tier network.

On scikit-learn's bundled digits, breast cancer and wine (no download; stratified 70/30 split,
seed 0) it compares

- ``two-tier float64`` and ``two-tier fixed``: :class:`~tiersolve.host.learn.TwoTierClassifier`
  (one ELM-autoencoder layer of ``--width``, ridge head);
- ``ELM float64``: one random tanh layer of the same width and a ridge output (Cholesky);
- ``MLP (backprop)``: scikit-learn's ``MLPClassifier`` (one hidden layer of ``--mlp-width``,
  adam, early stopping off, ``max_iter=300``) on standardised inputs.

Training cost is given as multiply-accumulates counted analytically (two-tier:
:func:`~tiersolve.host.learn.training_macs`; ELM: projection + Gram + Cholesky +
substitutions; MLP: ``3·(d·h + h·k)`` per sample per epoch, forward + two backward products,
times the epochs it ran) and as wall time on this machine.

For the two-tier rows it also gives the **FPGA cycles** of training on the device and the time
they take at each core's measured Fmax. The cycles come from the cores' cycle models, which the
generator's tests check against simulation, applied to the solves the estimator really makes
(a :class:`CycleRecordingBackend` records them while it trains):

- every one-step ridge solve ``ridge_solve(H, T, λ)`` (``m`` rows, ``n`` columns of ``H``,
  ``k`` of ``T``) is split into blocks of at most ``k_max`` right-hand sides, as
  :class:`tiersolve.host.demo.ColumnBlockedBackend` does, and each block is one Gram-mode job
  of the Cholesky core: ``m · gram_per_row + factor + solve`` of
  :func:`tiersolve.gen.cholesky_model.cycle_model` (the clear pass and the read-out of ``X``,
  under 1 % here, are not counted);
- every head row folded by ``qr_update`` costs
  :meth:`tiersolve.gen.qr.IncrementalUpdater.update_cycles` ``(n, k)``.

Assumed cores (:data:`CHOLESKY_CORE`, :data:`UPDATER_CORE`): Cholesky core with ``lanes = 4``,
``k_max = 10``, Q8.16 data and Q4.20 pivot inverses, at 105.2 MHz (measured at ``n_max = 16``
on an ECP5-85F); incremental updater with ``units = 4``, multiplier rotations, Q10.18 (the
fixed backend's head format), at 53.0 MHz (measured at ``n_max = 16``). Both need
``n_max`` at least the problem's ``n`` (the width, or width + 1 for the head): those larger cores
were not synthesised, so their Fmax is assumed equal to the measured one (optimistic), and
past ``n_max`` of about 150 the Cholesky core's matrix memory no longer fits an ECP5-85F's block
RAM. The two cores run one after the other, so their times add.

A wider two-tier configuration (``--wide-width``, default 512, float64 backend only) shows
whether the two-tier model reaches the MLP's accuracy and at how many MACs / cycles. Then the
continual-learning curve on digits (fit on 0-4, partial_fit on 5-9,
:func:`tiersolve.host.demo.continual_curve`) for both backends, plotted with ``--plot``.

Results: the table on stdout, ``<out>/learn.json`` and ``<out>/learn.md``.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

__all__ = ["CHOLESKY_CORE", "HELP", "UPDATER_CORE", "CycleRecordingBackend", "add_arguments",
           "elm_macs", "format_table", "fpga_cost", "mlp_macs", "recording_backend", "run",
           "run_datasets", "table_notes", "train_two_tier"]

HELP = "two-tier accuracy and training MACs vs MLP (backprop) and ELM; continual-learning curve"

DATASETS = ("digits", "breast_cancer", "wine")

#: Cholesky core assumed for the lower tier's ridge solves (``n_max`` = what the solve needs).
CHOLESKY_CORE = {"lanes": 4, "k_max": 10, "format": "Q8.16", "inverse_format": "Q4.20",
                 "fmax_mhz": 105.2, "fmax_source": "measured, n_max=16, lanes=4, ECP5-85F"}
#: Incremental updater assumed for the head (``n_max`` = width + 1, ``k_max`` = classes).
UPDATER_CORE = {"units": 4, "rotation": "multiplier", "format": "Q10.18", "fmax_mhz": 53.0,
                "fmax_source": "measured, n_max=16, k_max=2, units=4, multiplier, ECP5-85F"}


def add_arguments(parser):
    parser.add_argument("--width", type=int, default=128,
                        help="two-tier / ELM hidden width (default 128)")
    parser.add_argument("--mlp-width", type=int, default=128,
                        help="MLP hidden width (default 128)")
    parser.add_argument("--wide-width", type=int, default=512,
                        help="width of the extra, wider float64 two-tier row (default 512; "
                             "0: none)")
    parser.add_argument("--no-fixed", action="store_true",
                        help="skip the (slow) fixed-point backend")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="write the continual-learning plot here "
                             "(default <out>/learn_continual.png)")


def _rsqrt_latency(fmt, inverse_format) -> int:
    from tiersolve.host.bench.cholesky import _rsqrt_latency as latency

    return latency(fmt, inverse_format)


class CycleRecordingBackend:
    """Wraps a solver backend and records the solves the estimator makes, for :func:`fpga_cost`.

    Built by :func:`recording_backend` (the class is made a subclass of
    :class:`~tiersolve.host.learn.SolverBackend` there, so that importing this module stays
    cheap).

    Members
    -------
    ridge_jobs : list of (m, n, k)
        One entry per ``ridge_solve``: rows and columns of ``H``, columns of ``T``.
    head_rows : list of (n, k)
        One entry per head row folded by ``qr_update``.
    """


def recording_backend(backend):
    """A :class:`CycleRecordingBackend` around ``backend`` (a name or a SolverBackend)."""
    from tiersolve.host.learn import SolverBackend, get_backend

    class _Recording(CycleRecordingBackend, SolverBackend):
        def __init__(self, inner):
            self.inner = inner
            self.name = getattr(inner, "name", "recording")
            self.ridge_jobs = []
            self.head_rows = []

        def __getattr__(self, name):
            if name == "inner":
                raise AttributeError(name)
            return getattr(self.inner, name)

        def ridge_solve(self, H, T, lam):
            H, T = np.asarray(H), np.asarray(T)
            self.ridge_jobs.append((H.shape[0], H.shape[1], T.shape[1]))
            return self.inner.ridge_solve(H, T, lam)

        def qr_init(self, n, k, lam, capacity=None, feature_bound=None, target_bound=None):
            return self.inner.qr_init(n, k, lam, capacity, feature_bound, target_bound)

        def qr_update(self, state, H, T, beta=1.0, forget_per="sample"):
            H, T = np.atleast_2d(H), np.atleast_2d(T)
            self.head_rows.extend([(H.shape[1], T.shape[1])] * H.shape[0])
            return self.inner.qr_update(state, H, T, beta, forget_per)

        def qr_downdate(self, state, H, T):
            return self.inner.qr_downdate(state, H, T)

        def qr_add_outputs(self, state, count):
            return self.inner.qr_add_outputs(state, count)

        def qr_solve(self, state):
            return self.inner.qr_solve(state)

    return _Recording(get_backend(backend))


def fpga_cost(ridge_jobs, head_rows, cholesky=None, updater=None) -> dict:
    """Device cycles and time of the recorded solves (see the module docstring).

    Parameters
    ----------
    ridge_jobs : iterable of (m, n, k)
        One-step ridge solves; each is split into blocks of at most ``k_max`` columns.
    head_rows : iterable of (n, k)
        Head rows folded by the incremental updater.
    cholesky, updater : dict or None
        Core configurations (default :data:`CHOLESKY_CORE`, :data:`UPDATER_CORE`).

    Returns
    -------
    dict
        ``cholesky_jobs``, ``cholesky_cycles``, ``updater_rows``, ``updater_cycles``,
        ``cholesky_seconds``, ``updater_seconds`` and ``seconds`` (their sum: the cores run
        one after the other), ``n_max_cholesky`` and ``n_max_updater`` (the smallest cores that
        take these problems).
    """
    from tiersolve.gen.cholesky_model import cycle_model

    cholesky = CHOLESKY_CORE if cholesky is None else cholesky
    updater = UPDATER_CORE if updater is None else updater
    ridge_jobs, head_rows = list(ridge_jobs), list(head_rows)
    rsqrt_latency = _rsqrt_latency(cholesky["format"], cholesky["inverse_format"])
    k_max, lanes = cholesky["k_max"], cholesky["lanes"]
    jobs = cholesky_cycles = 0
    for m, n, k in ridge_jobs:
        for begin in range(0, k, k_max):
            block = min(k_max, k - begin)
            c = cycle_model(n, block, lanes, rows=m, rsqrt_latency=rsqrt_latency)
            cholesky_cycles += m * c["gram_per_row"] + c["factor"] + c["solve"]
            jobs += 1
    updater_cycles = 0
    n_max_updater = max([n for n, _ in head_rows], default=0)
    if head_rows:
        from tiersolve.gen.qr import IncrementalUpdater

        core = IncrementalUpdater(max(n_max_updater, 1), max(k for _, k in head_rows),
                                  updater["format"], updater["units"], updater["rotation"])
        memo = {}
        for n, k in head_rows:
            if (n, k) not in memo:
                memo[n, k] = core.update_cycles(n, k)
            updater_cycles += memo[n, k]
    cholesky_seconds = cholesky_cycles / (cholesky["fmax_mhz"] * 1e6)
    updater_seconds = updater_cycles / (updater["fmax_mhz"] * 1e6)
    return {"cholesky_jobs": jobs, "cholesky_cycles": cholesky_cycles,
            "updater_rows": len(head_rows), "updater_cycles": updater_cycles,
            "cycles": cholesky_cycles + updater_cycles,
            "cholesky_seconds": cholesky_seconds, "updater_seconds": updater_seconds,
            "seconds": cholesky_seconds + updater_seconds,
            "n_max_cholesky": max([n for _, n, _ in ridge_jobs], default=0),
            "n_max_updater": n_max_updater}


def train_two_tier(X_train, y_train, width, backend="float64"):
    """Fit a one-layer :class:`~tiersolve.host.learn.TwoTierClassifier` (seed 0); return
    ``(model, wall seconds, fpga_cost(...))``."""
    from tiersolve.host.learn import TwoTierClassifier

    recorder = recording_backend(backend)
    start = time.perf_counter()
    model = TwoTierClassifier(hidden_layer_sizes=(width,), backend=recorder,
                              random_state=0).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    return model, seconds, fpga_cost(recorder.ridge_jobs, recorder.head_rows)


def _load(name):
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


def elm_macs(m, d, width, k) -> int:
    """Random layer ``m·d·L``, Gram ``m·(L(L+1)/2 + L·k)``, Cholesky ``L³/6``, solves
    ``L²·k``."""
    return m * d * width + m * (width * (width + 1) // 2 + width * k) + width**3 // 6 \
        + width**2 * k


def mlp_macs(m, d, width, k, epochs) -> int:
    """``3·(d·h + h·k)`` per sample per epoch (forward, backward to weights and to inputs)."""
    return 3 * (d * width + width * k) * m * epochs


def _elm(X_train, y_train, X_test, width, seed=0):
    from tiersolve.host.learn import Float64Backend

    rng = np.random.default_rng(seed)
    offset, scale = X_train.mean(0), X_train.std(0)
    scale[scale == 0] = 1
    classes = np.unique(y_train)
    projection = rng.standard_normal((X_train.shape[1], width)) / np.sqrt(X_train.shape[1])
    bias = rng.uniform(-1, 1, width)

    def hidden(X):
        H = np.tanh(((X - offset) / scale) @ projection + bias)
        return np.hstack([H, np.ones((len(H), 1))])

    T = (y_train[:, None] == classes[None, :]).astype(float)
    W = Float64Backend().ridge_solve(hidden(X_train), T, 1.0)
    return classes[np.argmax(hidden(X_test) @ W, axis=1)]


def run_datasets(width=128, mlp_width=128, fixed=True, wide_width=512, say=print) -> list[dict]:
    """The accuracy / cost table, one dict per (dataset, method).

    Two-tier rows carry ``fpga_cycles`` and ``fpga_seconds`` (:func:`fpga_cost`, its full
    result under ``fpga``); the others have ``None`` there. ``wide_width`` (0: none) adds a
    float64 two-tier row of that width.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from tiersolve.host.learn import training_macs

    configs = [(width, backend) for backend in (("float64", "fixed") if fixed else ("float64",))]
    if wide_width:
        configs.append((wide_width, "float64"))
    rows = []
    for name in DATASETS:
        X_train, X_test, y_train, y_test = _load(name)
        m, d = X_train.shape
        k = len(np.unique(y_train))
        for layer_width, backend in configs:
            model, seconds, cost = train_two_tier(X_train, y_train, layer_width, backend)
            rows.append({"dataset": name, "method": f"two-tier {backend} L={layer_width}",
                         "width": layer_width,
                         "accuracy": float(model.score(X_test, y_test)),
                         "macs": training_macs(m, d, (layer_width,), k)["total"],
                         "seconds": seconds, "fpga_cycles": cost["cycles"],
                         "fpga_seconds": cost["seconds"], "fpga": cost})
            say(f"  {name}: two-tier {backend} L={layer_width} done")
        start = time.perf_counter()
        predicted = _elm(X_train, y_train, X_test, width)
        rows.append({"dataset": name, "method": f"ELM float64 L={width}", "width": width,
                     "accuracy": float((predicted == y_test).mean()),
                     "macs": elm_macs(m, d, width, k) + m * d * width,
                     "seconds": time.perf_counter() - start, "fpga_cycles": None,
                     "fpga_seconds": None})
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp = make_pipeline(StandardScaler(), MLPClassifier((mlp_width,), max_iter=300,
                                                                random_state=0))
            mlp.fit(X_train, y_train)
        epochs = mlp[-1].n_iter_
        rows.append({"dataset": name, "method": f"MLP backprop h={mlp_width} ({epochs} ep)",
                     "width": mlp_width, "accuracy": float(mlp.score(X_test, y_test)),
                     "macs": mlp_macs(m, d, mlp_width, k, epochs),
                     "seconds": time.perf_counter() - start, "fpga_cycles": None,
                     "fpga_seconds": None})
    return rows


def format_table(rows) -> str:
    """The table as printed (fixed-width columns)."""
    lines = [f"{'dataset':14s} {'method':32s} {'accuracy':>8s} {'train MACs':>10s} "
             f"{'vs MLP':>7s} {'wall s':>7s} {'FPGA cycles':>11s} {'FPGA ms':>8s}"]
    for row in rows:
        cycles = "-" if row["fpga_cycles"] is None else f"{row['fpga_cycles']:11.3e}"
        fpga_ms = "-" if row["fpga_seconds"] is None else f"{row['fpga_seconds'] * 1e3:8.2f}"
        lines.append(f"{row['dataset']:14s} {row['method']:32s} {row['accuracy']:8.3f} "
                     f"{row['macs']:10.2e} {row['mlp_mac_ratio']:6.1f}x {row['seconds']:7.2f} "
                     f"{cycles:>11s} {fpga_ms:>8s}")
    return "\n".join(lines)


def table_notes(rows) -> str:
    """What the table assumes, and per dataset how the best two-tier row compares with the MLP."""
    lines = [
        "FPGA cycles: Cholesky core (lanes {lanes}, k_max {k_max}, {fmt}/{inv}, ridge solves "
        "split in blocks of k_max columns) at {f1} MHz + incremental updater (units {units}, "
        "{rot}, {hfmt}, one UPDATE per head row) at {f2} MHz; cycles from the cores' cycle "
        "models (checked against simulation). Fmax measured at n_max = 16 only; the cores "
        "these widths need (n_max = width, width + 1) were not synthesised, so the times "
        "are optimistic, and for n_max above ~150 the Cholesky core's matrices exceed an "
        "ECP5-85F's block RAM.".format(
            lanes=CHOLESKY_CORE["lanes"], k_max=CHOLESKY_CORE["k_max"],
            fmt=CHOLESKY_CORE["format"], inv=CHOLESKY_CORE["inverse_format"],
            f1=CHOLESKY_CORE["fmax_mhz"], units=UPDATER_CORE["units"],
            rot=UPDATER_CORE["rotation"], hfmt=UPDATER_CORE["format"],
            f2=UPDATER_CORE["fmax_mhz"]),
        "MACs count arithmetic only; the two-tier MACs are dominated by the Gram sums and the "
        "head's rotations, the MLP's by its epochs.",
    ]
    slower = [r for r in rows if r["fpga_seconds"] is not None and r["method"].endswith(
        f"float64 L={r['width']}") and r["fpga_seconds"] > r["seconds"]]
    if slower:
        lines.append(f"The estimated device time is LONGER than this machine's float64 wall time "
                     f"in {len(slower)} of the float64 two-tier rows: at these widths the cores "
                     f"(4 lanes, one updater row at a time, ~53-105 MHz) do not beat a CPU.")
    for name in dict.fromkeys(row["dataset"] for row in rows):
        mlp = next(r for r in rows if r["dataset"] == name and r["method"].startswith("MLP"))
        two_tier = [r for r in rows if r["dataset"] == name and r["method"].startswith("two")]
        best = max(two_tier, key=lambda r: (r["accuracy"], -r["macs"]))
        gap = best["accuracy"] - mlp["accuracy"]
        verdict = ("matches or beats" if gap >= 0 else
                   f"LOSES to ({-gap * 100:.1f} points below)")
        cost = (f"{mlp['macs'] / best['macs']:.1f}x fewer" if best["macs"] < mlp["macs"]
                else f"{best['macs'] / mlp['macs']:.1f}x MORE")
        lines.append(f"{name}: best two-tier ({best['method']}, {best['accuracy']:.3f}) "
                     f"{verdict} the MLP ({mlp['accuracy']:.3f}) with {cost} MACs "
                     f"({best['macs']:.2e} vs {mlp['macs']:.2e}).")
    return "\n".join(lines)


def _jsonable(value):
    """NumPy arrays and scalars (the continual curves hold some) as JSON values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot save {type(value).__name__} as JSON")


def run(args) -> int:
    from tiersolve.host.demo import continual_curve, plot_curves, split_digits

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("training ...")
    rows = run_datasets(args.width, args.mlp_width, not args.no_fixed, args.wide_width)
    for row in rows:
        mlp = next(r for r in rows if r["dataset"] == row["dataset"]
                   and r["method"].startswith("MLP"))
        row["mlp_mac_ratio"] = mlp["macs"] / row["macs"]
    table = format_table(rows)
    notes = table_notes(rows)
    print()
    print(table)
    print()
    print(notes)
    print("\ncontinual learning on digits (fit 0-4, partial_fit 5-9, batches of 25) ...")
    data = split_digits()
    curves = {}
    for backend in ("float64",) if args.no_fixed else ("float64", "fixed"):
        curves[backend] = continual_curve(backend, data, hidden_layer_sizes=(64,))
        curve = curves[backend]
        print(f"  {backend:8s} after fit {curve['accuracy'][0]:.3f}, final "
              f"{curve['final_accuracy']:.3f} (fit {curve['fit_seconds']:.2f} s, updates "
              f"{curve['update_seconds']:.2f} s)")
    plot = plot_curves(curves, args.plot or out / "learn_continual.png")
    print(f"plot: {plot}")
    result = {"width": args.width, "wide_width": args.wide_width, "mlp_width": args.mlp_width,
              "cholesky_core": CHOLESKY_CORE, "updater_core": UPDATER_CORE,
              "cycles_source": "tiersolve.gen.cholesky_model.cycle_model and "
                               "IncrementalUpdater.update_cycles (checked against simulation)",
              "table": rows, "continual": curves, "plot": str(plot)}
    (out / "learn.json").write_text(json.dumps(result, indent=1, default=_jsonable))
    (out / "learn.md").write_text(f"# tiersolve bench learn\n\n```\n{table}\n```\n\n{notes}\n")
    print(f"results: {out / 'learn.json'}, {out / 'learn.md'}")
    return 0
