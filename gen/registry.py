"""Catalogue of generators that ``tiersolve generate`` and the benchmarks can build by name.

Each unit or core module registers itself with :func:`register` when it is imported;
:func:`units` imports the known modules and returns the catalogue. Importing this module does
not import Amaranth.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Parameter", "UnitSpec", "flag", "register", "units", "get_unit"]

#: Modules that register units; imported lazily by :func:`units`.
_MODULES = [
    "tiersolve.gen.mac",
    "tiersolve.gen.recip",
    "tiersolve.gen.cordic",
    "tiersolve.gen.cholesky",
    "tiersolve.gen.qr",
    "tiersolve.designs.top",
]

_UNITS: dict[str, UnitSpec] = {}


def flag(text) -> bool:
    """An on/off option (``tiersolve generate -p``, the ``updater_fold`` URL key): ``1``/``0``,
    ``true``/``false``, ``yes``/``no``, ``on``/``off``, in any case."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 0 or 1 (or true / false, yes / no, on / off), not {text!r}")


@dataclass(frozen=True)
class Parameter:
    """One generator parameter as the command line sees it."""

    name: str
    type: Callable
    default: object
    help: str
    choices: tuple | None = None


@dataclass(frozen=True)
class UnitSpec:
    """A named generator.

    Attributes
    ----------
    name : str
        Name on the command line (``tiersolve generate NAME``).
    summary : str
        One line for ``tiersolve generate --list``.
    build : callable
        ``build(fmt, **params)`` returns an Amaranth ``wiring.Component``.
    parameters : tuple of Parameter
        Parameters other than the format.
    """

    name: str
    summary: str
    build: Callable
    parameters: tuple[Parameter, ...] = field(default_factory=tuple)


def register(spec: UnitSpec) -> UnitSpec:
    if spec.name in _UNITS and _UNITS[spec.name] is not spec:
        raise ValueError(f"unit {spec.name!r} is registered twice")
    _UNITS[spec.name] = spec
    return spec


def units() -> dict[str, UnitSpec]:
    """All registered units, importing the modules that define them."""
    for module in _MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
    return dict(sorted(_UNITS.items()))


def get_unit(name: str) -> UnitSpec:
    catalogue = units()
    if name not in catalogue:
        known = ", ".join(catalogue) or "(none)"
        raise ValueError(f"unknown unit {name!r}; known units: {known}")
    return catalogue[name]
