"""Commands of the QR / incremental-updater cores, shared by the gateware, the register map and
the host (standard library only, so the host needs no Amaranth to name them)."""

import enum

__all__ = ["Op", "Select", "fold_row_limit"]


class Op(enum.IntEnum):
    """Commands of the cores: ``command.payload.op`` in the gateware, the ``op`` field of
    ``UPDATER_COMMAND`` in the register map."""

    #: ``R = √λ·I`` (``UPDATER_VALUE``), ``Z = 0``, ``W = 0``; clears the flags.
    RESET = 0
    #: Fold the row ``[h | t]`` in after scaling ``[R | Z]`` by ``√β`` (``UPDATER_FORGET``).
    UPDATE = 1
    #: Take the row ``[h | t]`` out (hyperbolic rotations); refused if it would lose
    #: positive definiteness, and then ``R``, ``Z`` are unchanged.
    DOWNDATE = 2
    #: ``W = R⁻¹Z``.
    SOLVE = 3
    #: ``k`` values ``hᵀW`` into UPDATER_RESULT.
    PREDICT = 4
    #: ``R``, ``Z`` or ``W`` (``select``) into UPDATER_RESULT.
    READ = 5
    #: Write ``R``, ``Z`` or ``W`` (``select``) from ``UPDATER_DATA``.
    LOAD = 6
    #: Fold ``m`` rows ``[h | t]`` (``m`` = ``UPDATER_VALUE``, ``β = 1``) with the rows in
    #: flight together (a skewed wavefront schedule); the same integers as ``m`` UPDATEs with
    #: ``β = 1``, in far fewer cycles. Only in cores built with ``fold=True``.
    FOLD = 7


class Select(enum.IntEnum):
    """Matrix moved by READ and LOAD (``command.payload.select``; ``select`` field of
    ``UPDATER_COMMAND``)."""

    R = 0
    Z = 1
    W = 2


def fold_row_limit(width: int) -> int:
    """The most rows one FOLD takes: its count is the command's ``value``, a signed field of
    the data format's ``width`` bits."""
    return (1 << (width - 1)) - 1
