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
times the epochs it ran) and as wall time on this machine. FPGA cycles are not reported yet
(the device backend does not exist). Then the continual-learning curve on digits (fit on 0-4,
partial_fit on 5-9, :func:`tiersolve.host.demo.continual_curve`) for both backends, plotted
with ``--plot``.

Results: the table on stdout and ``<out>/learn.json``.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

__all__ = ["HELP", "add_arguments", "elm_macs", "mlp_macs", "run", "run_datasets"]

HELP = "two-tier accuracy and training MACs vs MLP (backprop) and ELM; continual-learning curve"

DATASETS = ("digits", "breast_cancer", "wine")


def add_arguments(parser):
    parser.add_argument("--width", type=int, default=128,
                        help="two-tier / ELM hidden width (default 128)")
    parser.add_argument("--mlp-width", type=int, default=128,
                        help="MLP hidden width (default 128)")
    parser.add_argument("--no-fixed", action="store_true",
                        help="skip the (slow) fixed-point backend")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="write the continual-learning plot here "
                             "(default <out>/learn_continual.png)")


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


def run_datasets(width=128, mlp_width=128, fixed=True, say=print) -> list[dict]:
    """The accuracy / cost table, one dict per (dataset, method)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from tiersolve.host.learn import TwoTierClassifier, training_macs

    rows = []
    for name in DATASETS:
        X_train, X_test, y_train, y_test = _load(name)
        m, d = X_train.shape
        k = len(np.unique(y_train))
        for backend in ("float64", "fixed") if fixed else ("float64",):
            start = time.perf_counter()
            model = TwoTierClassifier(hidden_layer_sizes=(width,), backend=backend,
                                      random_state=0).fit(X_train, y_train)
            seconds = time.perf_counter() - start
            rows.append({"dataset": name, "method": f"two-tier {backend}",
                         "accuracy": float(model.score(X_test, y_test)),
                         "macs": training_macs(m, d, (width,), k)["total"],
                         "seconds": seconds})
            say(f"  {name}: two-tier {backend} done")
        start = time.perf_counter()
        predicted = _elm(X_train, y_train, X_test, width)
        rows.append({"dataset": name, "method": "ELM float64",
                     "accuracy": float((predicted == y_test).mean()),
                     "macs": elm_macs(m, d, width, k) + m * d * width,
                     "seconds": time.perf_counter() - start})
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp = make_pipeline(StandardScaler(), MLPClassifier((mlp_width,), max_iter=300,
                                                                random_state=0))
            mlp.fit(X_train, y_train)
        epochs = mlp[-1].n_iter_
        rows.append({"dataset": name, "method": f"MLP backprop ({epochs} epochs)",
                     "accuracy": float(mlp.score(X_test, y_test)),
                     "macs": mlp_macs(m, d, mlp_width, k, epochs),
                     "seconds": time.perf_counter() - start})
    return rows


def run(args) -> int:
    from tiersolve.host.demo import continual_curve, plot_curves, split_digits

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("training ...")
    rows = run_datasets(args.width, args.mlp_width, not args.no_fixed)
    print()
    print(f"{'dataset':14s} {'method':28s} {'accuracy':>8s} {'train MACs':>12s} "
          f"{'vs MLP':>7s} {'wall s':>7s}")
    for row in rows:
        mlp = next(r for r in rows if r["dataset"] == row["dataset"]
                   and r["method"].startswith("MLP"))
        row["mlp_mac_ratio"] = mlp["macs"] / row["macs"]
        print(f"{row['dataset']:14s} {row['method']:28s} {row['accuracy']:8.3f} "
              f"{row['macs']:12.3e} {row['mlp_mac_ratio']:6.1f}x {row['seconds']:7.2f}")
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
    result = {"width": args.width, "mlp_width": args.mlp_width, "table": rows,
              "continual": curves, "plot": str(plot)}
    (out / "learn.json").write_text(json.dumps(result, indent=1))
    print(f"results: {out / 'learn.json'}")
    return 0
