"""nox sessions: tests, lint and the benchmarks. ``nox -l`` lists them."""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.default_venv_backend = "venv"


@nox.session(python="3.11")
def tests(session):
    """The CI test suite (everything but the tests marked slow)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def slow(session):
    """Only the long tests: big simulations, long fuzzing, formal checks."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "-m", "slow", *session.posargs)


@nox.session(python="3.11")
def lint(session):
    """ruff over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session(python="3.11")
def bench(session):
    """Arithmetic-unit benchmark with synthesis (figures in bench-results/)."""
    session.install("-e", ".[dev]")
    session.run("tiersolve", "bench", "arith", *session.posargs)


@nox.session(python="3.11")
def build(session):
    """Board build matrix: LUT/DSP/BRAM %, Fmax and fit time per board and n_max (build.md)."""
    session.install("-e", ".[dev]")
    session.run("tiersolve", "bench", "build", *session.posargs)
