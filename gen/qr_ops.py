"""Commands of the QR / incremental-updater cores, shared by the gateware, the register map and
the host (standard library only, so the host needs no Amaranth to name them)."""

import enum

__all__ = ["FoldKind", "Op", "Select", "fold_row_limit"]


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
    #: Fold ``m`` rows ``[h | t]`` (``m`` = ``UPDATER_VALUE``, ``β`` from ``UPDATER_FORGET``)
    #: with the rows in flight together (a skewed wavefront schedule); the same integers as
    #: ``m`` UPDATEs, in fewer cycles from two rows on at every size measured
    #: (``IncrementalUpdater.fold_cycles``; ``Device.fold_is_quicker`` chooses, with the
    #: link's costs). Only in cores built with ``fold=True``. ``select``
    #: (:class:`FoldKind`) ``DOWNDATE`` takes the rows out instead, in the updaters that have
    #: it (multiplier rotations): the integers of ``m`` DOWNDATEs, and if any would be
    #: refused, none is taken out.
    FOLD = 7


class Select(enum.IntEnum):
    """Matrix moved by READ and LOAD (``command.payload.select``; ``select`` field of
    ``UPDATER_COMMAND``)."""

    R = 0
    Z = 1
    W = 2


class FoldKind(enum.IntEnum):
    """What a FOLD does with its rows (``command.payload.select``; ``select`` field of
    ``UPDATER_COMMAND``)."""

    #: Fold them in (UPDATE's rotations, with the command's forgetting constant).
    UPDATE = 0
    #: Take them out (DOWNDATE's hyperbolic rotations, no forgetting): all of them, or, if
    #: one would be refused, none (``refused`` set; ``R``, ``Z`` and the ``saturated`` flag as
    #: before the command). Only in updaters with multiplier rotations and FOLD
    #: (:attr:`~tiersolve.gen.qr.IncrementalUpdater.fold_downdates`); in the others it is a
    #: ``bad_command``.
    DOWNDATE = 1


def fold_row_limit(width: int) -> int:
    """The most rows one FOLD takes: its count is the command's ``value``, a signed field of
    the data format's ``width`` bits."""
    return (1 << (width - 1)) - 1
