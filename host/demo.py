"""The two-tier demo: learn digits 0-4 in one step, then digits 5-9 incrementally.

:func:`run_demo` trains :class:`~tiersolve.host.learn.TwoTierClassifier` on scikit-learn's
bundled digits (no download): ``fit`` on the training samples of classes 0-4 (lower tier and
head, one step each), then ``partial_fit`` on the training samples of classes 5-9 in
mini-batches (the head grows one output column per new class and is updated by the
incremental updater; the lower tier stays as it is). After every step it measures the accuracy
on the held-out samples of all ten classes, of the old classes and of the new ones, prints a
progress line, and at the end saves the learning curve as a PNG. It runs each backend in
turn (``"float64"``, ``"fixed"``; a device backend plugs in the same way).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["continual_curve", "plot_curves", "run_demo", "split_digits"]


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
        ``update_seconds`` (total of the partial_fit calls), ``final_accuracy``.
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

    curve = {"samples": [], "accuracy": [], "accuracy_old": [], "accuracy_new": []}
    start = time.perf_counter()
    model.fit(X_train[first], y_train[first])
    curve["fit_seconds"] = time.perf_counter() - start
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
    curve["final_accuracy"] = curve["accuracy"][-1]
    curve["classes"] = model.classes_.tolist()
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


def run_demo(backends=("float64", "fixed"), *, out="demo-output", hidden_layer_sizes=(64,),
             batch_size=25, progress=print) -> dict:
    """Run the demo for each backend; print accuracies; save ``<out>/continual.png``.

    Parameters
    ----------
    backends : sequence of str or SolverBackend
        Backends to compare (names as :func:`tiersolve.host.learn.get_backend` takes).
    out : str or Path
        Folder for the plot.
    hidden_layer_sizes : tuple of int
        Lower-tier widths (default ``(64,)``: the fixed head is then 65 x 10).
    batch_size : int
        Samples per partial_fit call.
    progress : callable or None
        Called with one line of text per step (default ``print``).

    Returns
    -------
    dict
        ``{backend name: curve}`` (see :func:`continual_curve`) and ``"plot"``: the PNG path.
    """
    data = split_digits()
    say = progress or (lambda text: None)
    curves = {}
    for backend in backends:
        name = backend if isinstance(backend, str) else getattr(backend, "name", str(backend))
        say(f"backend {name}:")
        curves[name] = continual_curve(backend, data, hidden_layer_sizes=hidden_layer_sizes,
                                       batch_size=batch_size, progress=progress)
    say("")
    say(f"{'backend':10s} {'after fit (0-4)':>16s} {'final (0-9)':>12s} {'fit s':>7s} "
        f"{'updates s':>10s}")
    for name, curve in curves.items():
        say(f"{name:10s} {curve['accuracy'][0]:16.3f} {curve['final_accuracy']:12.3f} "
            f"{curve['fit_seconds']:7.2f} {curve['update_seconds']:10.2f}")
    plot = plot_curves(curves, Path(out) / "continual.png")
    say(f"plot saved to {plot}")
    return {**curves, "plot": str(plot)}
