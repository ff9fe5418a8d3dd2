"""``tiersolve bench learn``: accuracy and training cost of the two-tier network.

On scikit-learn's bundled digits, breast cancer and wine (no download; stratified 70/30 split,
seed 0) it compares

- ``two-tier float64`` and ``two-tier fixed``: :class:`~tiersolve.host.learn.TwoTierClassifier`
  with its default options (inputs standardised and clipped to ±3, one ELM-autoencoder layer
  with the encoder bias, ridge head with ``alpha = 1``, seed 0), at ``--width`` (default 128)
  and ``--wide-width`` (default 256); ``--direct-link`` feeds the inputs to the head too;
- ``ELM float64``: one random tanh layer of the same width and a ridge output (Cholesky);
- ``MLP (backprop)``: scikit-learn's ``MLPClassifier`` (one hidden layer of ``--mlp-width``,
  adam, early stopping off, ``max_iter=300``) on standardised inputs.

Training cost is given as multiply-accumulates counted analytically (two-tier:
:func:`~tiersolve.host.learn.training_macs`: standardisation, projection, Gram, Cholesky,
substitutions, encoding, and the head's Givens rotations generated and applied at 4 MACs
each; ELM: projection + Gram + Cholesky + substitutions; MLP: ``3·(d·h + h·k)`` per sample per
epoch, forward + two backward products, times the epochs it ran) and as wall time on this
machine. The MLP is scikit-learn's defaults apart from the width and ``max_iter``, and is not
tuned or shortened here.

For the two-tier rows it also gives the **FPGA cycles** of training on the device and the time
they take at each core's measured Fmax. The cycles come from the cores' cycle models, which the
generator's tests check against simulation, applied to the solves the estimator really makes
(a :class:`CycleRecordingBackend` records them while it trains):

- every one-step ridge solve ``ridge_solve(H, T, λ)`` (``m`` rows, ``n`` columns of ``H``,
  ``k`` of ``T``) is split into blocks of at most ``k_max`` right-hand sides, as
  a device backend does (``rhs_block = k_max``), and each block is one Gram-mode job
  of the Cholesky core: ``m · gram_per_row + factor + solve`` of
  :func:`tiersolve.gen.cholesky_model.cycle_model` (the clear pass and the read-out of ``X``,
  under 1 % here, are not counted);
- every head row folded by ``qr_update`` costs
  :meth:`tiersolve.gen.qr.IncrementalUpdater.update_cycles` ``(n, k)``.

Assumed cores (:data:`CHOLESKY_CORE`, :data:`UPDATER_CORE`): Cholesky core with ``lanes = 4``,
``k_max = 10``, Q8.16 data and Q4.20 pivot inverses; incremental updater with ``units = 4``,
multiplier rotations, Q10.18 (the fixed backend's head format). The cycles become time at the
Fmax of the most relevant recorded build of the default board (both cores in one design, one
clock; :func:`tiersolve.host.demo.board_fmax` reads ``tiersolve.boards.measured``, and caps the
clock at the bare updater's Fmax when that build has no updater); when no build is
recorded, at each bare core's Fmax (:data:`tiersolve.host.demo.CORE_FMAX_MHZ` and
:data:`~tiersolve.host.demo.UPDATER_FMAX_MHZ`, measured at ``n_max = 16`` on an ECP5-85F),
and the output says "core Fmax, no board build recorded". Both cores need
``n_max`` at least the problem's ``n`` (the width; width + 1, or width + d + 1 with the direct
link, for the head): those larger cores were not built, so their Fmax is assumed equal to the
measured one (optimistic), and past ``n_max`` of about 150 the Cholesky core's matrix memory no
longer fits an ECP5-85F's block RAM. The two cores run one after the other, so their times add.

``--sweep`` trains the float64 model on digits over :data:`SWEEP_WIDTHS`, with and without the
direct link, with ``--seeds`` random projections each, and says which configurations meet the
goal (worst seed within 1 point of the MLP, >= 10x fewer MACs; :func:`sweep_widths`). The
widths of the table were picked from such a sweep on the same held-out split; the sweep's
worst seed shows that the choice does not rest on one lucky projection. Then the
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
from tiersolve.host.demo import CORE_FMAX_MHZ, UPDATER_FMAX_MHZ

__all__ = ["CHOLESKY_CORE", "HELP", "SWEEP_WIDTHS", "UPDATER_CORE", "CycleRecordingBackend",
           "add_arguments", "elm_macs", "format_sweep", "format_table", "fpga_cost", "mlp_macs",
           "plot_sweep", "recording_backend", "run", "run_datasets", "sweep_widths",
           "table_notes", "train_two_tier"]

HELP = "two-tier accuracy and training MACs vs MLP (backprop) and ELM; continual-learning curve"

DATASETS = ("digits", "breast_cancer", "wine")

#: Cholesky core assumed for the lower tier's ridge solves (``n_max`` = what the solve needs).
CHOLESKY_CORE = {"lanes": 4, "k_max": 10, "format": "Q8.16", "inverse_format": "Q4.20",
                 "fmax_mhz": CORE_FMAX_MHZ,
                 "fmax_source": "measured, n_max=16, lanes=4, Q6.12, ECP5-85F"}
#: Incremental updater assumed for the head (``n_max`` = width + 1, ``k_max`` = classes).
UPDATER_CORE = {"units": 4, "rotation": "multiplier", "format": "Q10.18",
                "fmax_mhz": UPDATER_FMAX_MHZ,
                "fmax_source": "measured, n_max=16, k_max=2, units=4, multiplier, Q6.12, "
                               "ECP5-85F"}


def add_arguments(parser):
    parser.add_argument("--width", type=int, default=128,
                        help="two-tier / ELM hidden width (default 128)")
    parser.add_argument("--mlp-width", type=int, default=128,
                        help="MLP hidden width (default 128)")
    parser.add_argument("--wide-width", type=int, default=256,
                        help="width of the wider two-tier rows (default 256; 0: none)")
    parser.add_argument("--direct-link", action="store_true",
                        help="two-tier rows with the direct link (inputs fed to the head too)")
    parser.add_argument("--sweep", action="store_true",
                        help="also sweep widths on digits (float64, with and without the "
                             "direct link, several seeds) and say which meet the goal")
    parser.add_argument("--sweep-widths", default=",".join(map(str, SWEEP_WIDTHS)),
                        help="comma-separated widths of --sweep (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="random projections per --sweep configuration (default 3)")
    parser.add_argument("--sweep-plot", default=None, metavar="PNG",
                        help="write the sweep's plot here (default <out>/learn_sweep.png)")
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
    from tiersolve.host.learn import DelegatingBackend, get_backend

    class _Recording(CycleRecordingBackend, DelegatingBackend):
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

        @property
        def wrapped(self):
            return self.inner

    return _Recording(get_backend(backend))


def fpga_cost(ridge_jobs, head_rows, cholesky=None, updater=None, clock=None) -> dict:
    """Device cycles and time of the recorded solves (see the module docstring).

    Parameters
    ----------
    ridge_jobs : iterable of (m, n, k)
        One-step ridge solves; each is split into blocks of at most ``k_max`` columns.
    head_rows : iterable of (n, k)
        Head rows folded by the incremental updater.
    cholesky, updater : dict or None
        Core configurations (default :data:`CHOLESKY_CORE`, :data:`UPDATER_CORE`); the
        Cholesky core's may give ``n_max`` (its bank depth sets a pipeline stage, see
        :func:`~tiersolve.gen.cholesky_model.read_stage`; default: the largest ``n`` of
        ``ridge_jobs``).
    clock : float or None
        Clock (MHz) of a board design holding both cores (its measured Fmax, see
        :func:`tiersolve.host.demo.board_fmax`): both cores' cycles are converted at it. None:
        each core at its own ``fmax_mhz`` (the bare cores' Fmax).

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
    # one core for every job: the caller's n_max, else the smallest that holds them
    n_max_cholesky = max([n for _, n, _ in ridge_jobs], default=0)
    core_n_max = cholesky.get("n_max") or max(n_max_cholesky, 2)
    if core_n_max < n_max_cholesky:
        raise ValueError(f"a ridge solve of n = {n_max_cholesky} does not fit the Cholesky "
                         f"core's n_max = {core_n_max}")
    jobs = cholesky_cycles = 0
    for m, n, k in ridge_jobs:
        for begin in range(0, k, k_max):
            block = min(k_max, k - begin)
            c = cycle_model(n, block, lanes, rows=m, rsqrt_latency=rsqrt_latency,
                            fmt=cholesky["format"], inverse_format=cholesky["inverse_format"],
                            n_max=core_n_max, k_max=k_max)
            cholesky_cycles += m * c["gram_per_row"] + c["factor"] + c["solve"]
            jobs += 1
    updater_cycles = 0
    n_max_updater = max([n for n, _ in head_rows], default=0)
    if head_rows:
        from tiersolve.host.device import updater_cycle_model

        core = updater_cycle_model(max(n_max_updater, 1), max(k for _, k in head_rows),
                                   str(updater["format"]), updater["units"],
                                   updater["rotation"])
        memo = {}
        for n, k in head_rows:
            if (n, k) not in memo:
                memo[n, k] = core.update_cycles(n, k)
            updater_cycles += memo[n, k]
    if clock is not None and not clock > 0:
        raise ValueError(f"clock must be a positive frequency in MHz or None, not {clock!r}")
    cholesky_mhz = cholesky["fmax_mhz"] if clock is None else clock
    updater_mhz = updater["fmax_mhz"] if clock is None else clock
    cholesky_seconds = cholesky_cycles / (cholesky_mhz * 1e6)
    updater_seconds = updater_cycles / (updater_mhz * 1e6)
    return {"cholesky_jobs": jobs, "cholesky_cycles": cholesky_cycles,
            "updater_rows": len(head_rows), "updater_cycles": updater_cycles,
            "cycles": cholesky_cycles + updater_cycles,
            "cholesky_seconds": cholesky_seconds, "updater_seconds": updater_seconds,
            "seconds": cholesky_seconds + updater_seconds,
            "cholesky_mhz": cholesky_mhz, "updater_mhz": updater_mhz,
            "n_max_cholesky": n_max_cholesky,
            "n_max_updater": n_max_updater}


def train_two_tier(X_train, y_train, width, backend="float64", *, direct_link=False,
                   random_state=0, clock=None):
    """Fit a one-layer :class:`~tiersolve.host.learn.TwoTierClassifier` (default options
    otherwise); return ``(model, wall seconds, fpga_cost(...))``. ``clock`` is passed to
    :func:`fpga_cost`."""
    from tiersolve.host.learn import TwoTierClassifier

    recorder = recording_backend(backend)
    start = time.perf_counter()
    model = TwoTierClassifier(hidden_layer_sizes=(width,), direct_link=direct_link,
                              backend=recorder, random_state=random_state).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    return model, seconds, fpga_cost(recorder.ridge_jobs, recorder.head_rows, clock=clock)


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


def run_datasets(width=128, mlp_width=128, fixed=True, wide_width=256, say=print, *,
                 direct_link=False, clock=None) -> list[dict]:
    """The accuracy / cost table, one dict per (dataset, method).

    Two-tier rows (``width``, and ``wide_width`` unless 0, each with the float64 and, if
    ``fixed``, the fixed backend; ``direct_link`` for all of them) carry ``fpga_cycles`` and
    ``fpga_seconds`` (:func:`fpga_cost` at ``clock``, its full result under ``fpga``); the
    others have ``None`` there.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from tiersolve.host.learn import training_macs

    backends = ("float64", "fixed") if fixed else ("float64",)
    widths = [width] + ([wide_width] if wide_width else [])
    configs = [(layer_width, backend) for layer_width in widths for backend in backends]
    rows = []
    for name in DATASETS:
        X_train, X_test, y_train, y_test = _load(name)
        m, d = X_train.shape
        k = len(np.unique(y_train))
        for layer_width, backend in configs:
            model, seconds, cost = train_two_tier(X_train, y_train, layer_width, backend,
                                                  direct_link=direct_link, clock=clock)
            method = f"two-tier {backend} L={layer_width}" + (" +direct" if direct_link else "")
            rows.append({"dataset": name, "method": method, "width": layer_width,
                         "backend": backend, "direct_link": direct_link,
                         "accuracy": float(model.score(X_test, y_test)),
                         "macs": training_macs(m, d, (layer_width,), k,
                                               direct_link=direct_link)["total"],
                         "seconds": seconds, "fpga_cycles": cost["cycles"],
                         "fpga_seconds": cost["seconds"], "fpga": cost})
            say(f"  {name}: {method} done")
        start = time.perf_counter()
        predicted = _elm(X_train, y_train, X_test, width)
        rows.append({"dataset": name, "method": f"ELM float64 L={width}", "width": width,
                     "backend": "float64", "direct_link": False,
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
                     "width": mlp_width, "backend": "float64", "direct_link": False,
                     "epochs": epochs, "accuracy": float(mlp.score(X_test, y_test)),
                     "macs": mlp_macs(m, d, mlp_width, k, epochs),
                     "seconds": time.perf_counter() - start, "fpga_cycles": None,
                     "fpga_seconds": None})
    return rows


#: Widths of :func:`sweep_widths` (``--sweep``).
SWEEP_WIDTHS = (64, 96, 128, 192, 256, 320, 384)


def sweep_widths(mlp_row, widths=SWEEP_WIDTHS, seeds=3, dataset="digits",
                 say=print) -> list[dict]:
    """Accuracy per MAC of the float64 two-tier model over widths, with and without the
    direct link, on ``dataset``'s held-out split.

    Each configuration is trained with ``seeds`` random projections (``random_state`` 0, 1,
    ...): a width is judged by the worst seed as well as the mean, not by a lucky draw.
    ``mlp_row`` is the MLP's row of :func:`run_datasets` on the same split; a configuration
    ``meets_goal`` when its WORST seed is within 1 percentage point of the MLP's accuracy and
    it needs at most a tenth of the MLP's multiply-accumulates.

    Returns one dict per (width, direct link): ``width``, ``direct_link``, ``accuracies``,
    ``accuracy_mean``, ``accuracy_min``, ``macs``, ``mlp_mac_ratio``, ``meets_goal``.
    """
    from tiersolve.host.learn import TwoTierClassifier, training_macs

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, not {seeds!r}")
    X_train, X_test, y_train, y_test = _load(dataset)
    m, d = X_train.shape
    k = len(np.unique(y_train))
    rows = []
    for width in widths:
        for direct_link in (False, True):
            accuracies = [float(TwoTierClassifier(hidden_layer_sizes=(width,),
                                                  direct_link=direct_link, random_state=seed)
                                .fit(X_train, y_train).score(X_test, y_test))
                          for seed in range(seeds)]
            macs = training_macs(m, d, (width,), k, direct_link=direct_link)["total"]
            ratio = mlp_row["macs"] / macs
            rows.append({"dataset": dataset, "width": width, "direct_link": direct_link,
                         "accuracies": accuracies, "accuracy_mean": float(np.mean(accuracies)),
                         "accuracy_min": min(accuracies), "macs": macs,
                         "mlp_mac_ratio": ratio,
                         "meets_goal": bool(min(accuracies) >= mlp_row["accuracy"] - 0.01
                                            and ratio >= 10)})
            say(f"  sweep {dataset}: L={width} direct_link={direct_link} done")
    return rows


def format_sweep(rows, mlp_row) -> str:
    """The sweep as printed: one line per configuration, the MLP's line last."""
    lines = [f"{'width':>5s} {'direct':>6s} {'acc seed 0':>10s} {'mean':>6s} {'worst':>6s} "
             f"{'train MACs':>10s} {'vs MLP':>7s}  goal"]
    for row in rows:
        lines.append(f"{row['width']:5d} {'yes' if row['direct_link'] else 'no':>6s} "
                     f"{row['accuracies'][0]:10.3f} {row['accuracy_mean']:6.3f} "
                     f"{row['accuracy_min']:6.3f} {row['macs']:10.2e} "
                     f"{row['mlp_mac_ratio']:6.1f}x  {'MET' if row['meets_goal'] else '-'}")
    lines.append(f"{'MLP':>5s} {'':6s} {mlp_row['accuracy']:10.3f} {'':6s} {'':6s} "
                 f"{mlp_row['macs']:10.2e} {1.0:6.1f}x  ({mlp_row['method']})")
    return "\n".join(lines)


def plot_sweep(rows, mlp_row, path) -> Path:
    """Save the sweep as accuracy (mean, with the worst and best seed as an error bar) against
    training MACs, the MLP as a point and the goal region shaded; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for direct_link, marker in ((False, "o"), (True, "s")):
        chosen = [r for r in rows if r["direct_link"] == direct_link]
        if not chosen:
            continue
        macs = [r["macs"] for r in chosen]
        mean = np.array([r["accuracy_mean"] for r in chosen])
        low = mean - np.array([r["accuracy_min"] for r in chosen])
        high = np.array([max(r["accuracies"]) for r in chosen]) - mean
        axis.errorbar(macs, mean, yerr=[low, high], marker=marker, capsize=3,
                      label="two-tier" + (" + direct link" if direct_link else ""))
        for row in chosen:
            axis.annotate(f"{row['width']}", (row["macs"], row["accuracy_mean"]),
                          textcoords="offset points", xytext=(4, 5 if direct_link else -10),
                          fontsize=7)
    axis.plot([mlp_row["macs"]], [mlp_row["accuracy"]], "k*", markersize=12,
              label=f"MLP backprop ({mlp_row['accuracy']:.3f})")
    axis.axvspan(axis.get_xlim()[0], mlp_row["macs"] / 10, ymin=0, ymax=1, color="green",
                 alpha=0.06, label="<= 1/10 of the MLP's MACs")
    axis.axhline(mlp_row["accuracy"] - 0.01, color="green", linestyle=":", linewidth=1,
                 label="MLP - 1 point")
    axis.set_xscale("log")
    axis.set_xlabel("training multiply-accumulates")
    axis.set_ylabel("held-out accuracy (mean; bar: worst to best seed)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    axis.set_title(f"{rows[0]['dataset']}: accuracy per training MAC (labels: width)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


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


def table_notes(rows, clock=None) -> str:
    """What the table assumes, and per dataset how the best two-tier row compares with the MLP.

    ``clock`` is the :func:`tiersolve.host.demo.board_fmax` result the FPGA times used (None:
    the bare cores' Fmax, as :func:`fpga_cost` without a clock).
    """
    if clock is not None and clock.get("board"):
        timing = (f"both cores at {clock['fmax_mhz']:g} MHz, the {clock['source']}: the cores "
                  f"these widths need (n_max = width, width + 1) are larger than that build, so "
                  f"the times are optimistic")
    else:
        timing = (f"Cholesky core at {CHOLESKY_CORE['fmax_mhz']} MHz, updater at "
                  f"{UPDATER_CORE['fmax_mhz']} MHz: core Fmax, no board build recorded "
                  f"(bare cores at n_max = 16; the cores these widths need, n_max = width and "
                  f"width + 1, were not synthesised, so the times are optimistic)")
    lines = [
        "FPGA cycles: Cholesky core (lanes {lanes}, k_max {k_max}, {fmt}/{inv}, ridge solves "
        "split in blocks of k_max columns) + incremental updater (units {units}, {rot}, "
        "{hfmt}, one UPDATE per head row); cycles from the cores' cycle models (checked "
        "against simulation); FPGA ms: {timing}. For n_max above ~150 the Cholesky core's "
        "matrices exceed an ECP5-85F's block RAM.".format(
            lanes=CHOLESKY_CORE["lanes"], k_max=CHOLESKY_CORE["k_max"],
            fmt=CHOLESKY_CORE["format"], inv=CHOLESKY_CORE["inverse_format"],
            units=UPDATER_CORE["units"], rot=UPDATER_CORE["rotation"],
            hfmt=UPDATER_CORE["format"], timing=timing),
        "MACs count arithmetic only (learn.training_macs: standardisation, projections, Gram "
        "sums, Cholesky, substitutions, encoding, and the head's rotations generated and "
        "applied at 4 MACs each); the MLP's are 3·(d·h + h·k) per sample per epoch it ran. "
        "The fixed backend's reruns after a saturation (range analysis, at most a few "
        "per solve) are not in the MACs or the cycles.",
    ]
    slower = [r for r in rows if r["fpga_seconds"] is not None and r["backend"] == "float64"
              and r["fpga_seconds"] > r["seconds"]]
    if slower:
        if clock is not None and clock.get("board"):
            speed = f"{clock['fmax_mhz']:g} MHz"
        else:
            speed = f"{UPDATER_CORE['fmax_mhz']:g}-{CHOLESKY_CORE['fmax_mhz']:g} MHz"
        lines.append(f"The estimated device time is LONGER than this machine's float64 wall time "
                     f"in {len(slower)} of the float64 two-tier rows: at these widths the cores "
                     f"({CHOLESKY_CORE['lanes']} lanes, one updater row at a time, {speed}) do "
                     f"not beat a CPU.")
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


def _mlp_ratios(rows) -> None:
    for row in rows:
        mlp = next(r for r in rows if r["dataset"] == row["dataset"]
                   and r["method"].startswith("MLP"))
        row["mlp_mac_ratio"] = mlp["macs"] / row["macs"]


def _sweep_widths_option(text) -> tuple[int, ...]:
    """``--sweep-widths``: comma-separated positive widths, at least one."""
    from tiersolve.host.bench.checks import fail

    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        fail(f"--sweep-widths {text}: give positive widths separated by commas (e.g. 64,128)")
    return widths


def _check_options(args) -> tuple[int, ...]:
    """The options checked before the minutes of training; returns the sweep's widths."""
    from tiersolve.host.bench.checks import integer_at_least, plot_path

    integer_at_least("--width", args.width, 1, "give a hidden width of at least 1")
    integer_at_least("--mlp-width", args.mlp_width, 1, "give a hidden width of at least 1")
    integer_at_least("--wide-width", args.wide_width, 0,
                     "give a hidden width of at least 1, or 0 for no wider rows")
    integer_at_least("--seeds", args.seeds, 1, "give at least 1 random projection")
    widths = _sweep_widths_option(args.sweep_widths)
    for option, path in (("--plot", args.plot), ("--sweep-plot", args.sweep_plot)):
        if path:
            plot_path(option, path)
    return widths


def run(args) -> int:
    widths = _check_options(args)
    from tiersolve.host.demo import (
        DEFAULT_BOARD,
        board_fmax,
        continual_curve,
        plot_curves,
        split_digits,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = board_fmax(DEFAULT_BOARD, CHOLESKY_CORE["fmax_mhz"],
                       updater_fmax_mhz=UPDATER_CORE["fmax_mhz"], k_max=CHOLESKY_CORE["k_max"],
                       lanes=CHOLESKY_CORE["lanes"], format=CHOLESKY_CORE["format"],
                       cores="cholesky,updater")
    print(f"clock for FPGA time: {clock['fmax_mhz']:g} MHz, {clock['source']}"
          if clock["board"] else
          f"clock for FPGA time: Cholesky core {CHOLESKY_CORE['fmax_mhz']} MHz, updater "
          f"{UPDATER_CORE['fmax_mhz']} MHz ({clock['source']})")
    print("training ...")
    rows = run_datasets(args.width, args.mlp_width, not args.no_fixed, args.wide_width,
                        direct_link=args.direct_link,
                        clock=clock["fmax_mhz"] if clock["board"] else None)
    _mlp_ratios(rows)
    table = format_table(rows)
    notes = table_notes(rows, clock)
    print()
    print(table)
    print()
    print(notes)
    sweep = sweep_text = None
    if args.sweep:
        print(f"\nwidth sweep on digits (float64, {args.seeds} seeds per configuration) ...")
        mlp_row = next(r for r in rows if r["dataset"] == "digits"
                       and r["method"].startswith("MLP"))
        sweep = sweep_widths(mlp_row, widths, args.seeds)
        sweep_text = format_sweep(sweep, mlp_row)
        met = [r for r in sweep if r["meets_goal"]]
        verdict = ("goal (worst seed within 1 point of the MLP, >= 10x fewer MACs) met by "
                   + ", ".join(f"L={r['width']}{' +direct' if r['direct_link'] else ''} "
                               f"({r['mlp_mac_ratio']:.1f}x)" for r in met)
                   if met else "NO configuration meets the goal (worst seed within 1 point of "
                               "the MLP with >= 10x fewer MACs)")
        sweep_text += "\n" + verdict
        print()
        print(sweep_text)
        sweep_plot = plot_sweep(sweep, mlp_row, args.sweep_plot or out / "learn_sweep.png")
        print(f"plot: {sweep_plot}")
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
              "direct_link": args.direct_link, "cholesky_core": CHOLESKY_CORE,
              "updater_core": UPDATER_CORE, "clock": clock,
              "cycles_source": "tiersolve.gen.cholesky_model.cycle_model and "
                               "IncrementalUpdater.update_cycles (checked against simulation)",
              "table": rows, "sweep": sweep, "continual": curves, "plot": str(plot)}
    (out / "learn.json").write_text(json.dumps(result, indent=1, default=_jsonable))
    markdown = f"# tiersolve bench learn\n\n```\n{table}\n```\n\n{notes}\n"
    if sweep_text:
        markdown += f"\n## Width sweep (digits)\n\n```\n{sweep_text}\n```\n"
    (out / "learn.md").write_text(markdown)
    print(f"results: {out / 'learn.json'}, {out / 'learn.md'}")
    return 0
