"""The register map of a :class:`~tiersolve.designs.top.SolverDesign`, declared once.

The gateware (:mod:`tiersolve.designs.top`) decodes exactly these addresses and fields, and the
host (:mod:`tiersolve.host.device`) reads and writes them through this module, so the two
cannot drift. :func:`register_map_json` exports the same declaration for other tools (a C
driver, documentation); :data:`LAYOUT_ID`, a CRC-32 of that JSON, is readable from the device
(register ``LAYOUT``): a host whose copy of the map differs refuses the device.

This module imports only the standard library (the host imports it without Amaranth).

Addresses are *word* addresses on the register bus (:mod:`tiersolve.designs.bus`); every
register is 32 bits wide. Over AXI4-Lite the byte address is ``4 * address``.

Map
---
=========  ================  ======  ============================================================
address    name              access  contents
=========  ================  ======  ============================================================
0x00       MAGIC             ro      :data:`MAGIC` (``"TSLV"`` in ASCII, little-endian)
0x01       VERSION           ro      :data:`VERSION` of the register map
0x02       LAYOUT            ro      :data:`LAYOUT_ID` (CRC-32 of :func:`register_map_json`)
0x03       CORES             ro      one bit per core built in (:data:`CORE_BITS`)
0x04       N_MAX             ro      largest system size ``n``
0x05       K_MAX             ro      largest number of right-hand sides ``k``
0x06       FORMAT            ro      data format: ``int_bits``, ``frac_bits``, ``guard_bits``
0x07       INVERSE_FORMAT    ro      format of the Cholesky pivot inverses
0x08       LANES             ro      multiply-accumulate lanes of the Cholesky core
0x09       CLOCK_HZ          ro      design clock frequency in Hz
0x0A       MAX_BURST         ro      longest burst of the frame bridge, in words (0: no bridge)
0x0B       UPDATER           ro      incremental-update core: rotation ``units``, ``rotation``
                                     kind (0 CORDIC, 1 multiplier), ``fold`` (FOLD built),
                                     ``fold_downdate`` (FOLD takes rows out too); 0 when it
                                     is not built
0x10       CONTROL           wo      write 1 to bit ``reset_cholesky`` / ``reset_updater``:
                                     return that core to idle (an updater must then be
                                     re-initialised with its RESET or LOAD commands)
0x11       SIZE              rw      runtime sizes ``n`` and ``k`` of the next job
0x12       LAMBDA            rw      λ of the next job, stored integer of the data format
0x13       COMMAND           wo      start a job (:class:`Op`); waits while the core is busy
0x14       STATUS            ro      ``busy``, ``done``, flags, ``phase``, ``npd_index``
0x15       CYCLES            ro      core cycles of the current / last job
0x16       RESULT_COUNT      ro      values captured in the RESULT window since the command
0x20       ROW_DATA          wo      data port: one input value (sign-extended); waits (bus wait
                                     states) while the core cannot take it
0x21       ROW_DATA_LAST     wo      as ROW_DATA, and marks the final value of the final row
0x30       UPDATER_SIZE      rw      runtime sizes ``n`` and ``k`` of the next updater command
0x31       UPDATER_VALUE     rw      ``√λ`` for RESET (stored integer of the data format); the
                                     row count ``m`` for FOLD
0x32       UPDATER_FORGET    rw      ``b = round(√β·2**w)`` for UPDATE and FOLD (``2**w``: no
                                     forgetting)
0x33       UPDATER_COMMAND   wo      start an updater command (:class:`UpdaterOp`, ``select``:
                                     :class:`UpdaterSelect`, or for FOLD
                                     :class:`UpdaterFoldKind`);
                                     waits while the updater is busy
0x34       UPDATER_STATUS    ro      ``busy``, ``done``, ``refused``, ``saturated``,
                                     ``bad_command``
0x35       UPDATER_CYCLES    ro      updater cycles of the current / last command
0x36       UPDATER_COUNT     ro      values captured in UPDATER_RESULT since the command
0x38       UPDATER_DATA      wo      data port of the updater: one row value or LOAD entry
0x40000..  RESULT            ro      window: the job's results in the order the core sends
                                     them (``X`` row major, ``X[i, c]`` at ``i * k + c``),
                                     sign-extended; up to ``n_max * k_max`` words
0x80000..  UPDATER_RESULT    ro      window: the updater's PREDICT / READ output, row major,
                                     sign-extended; up to ``n_max * max(n_max, k_max)`` words
=========  ================  ======  ============================================================

A job: write ``CONTROL`` (reset), ``SIZE``, ``LAMBDA`` and ``COMMAND`` in one burst (they are
consecutive and a burst writes in address order), stream the rows to ``ROW_DATA`` with
fixed-address bursts (the last value to ``ROW_DATA_LAST`` in Gram mode), poll ``STATUS``
(with ``CYCLES`` and ``RESULT_COUNT``, one burst of three), then read the ``RESULT`` window.

An updater command (the incremental-update core, :class:`tiersolve.gen.qr.IncrementalUpdater`,
present when ``CORES.updater`` is set): write ``UPDATER_SIZE``, ``UPDATER_VALUE``,
``UPDATER_FORGET`` and ``UPDATER_COMMAND`` in one burst, stream the command's values to
``UPDATER_DATA`` (``n + k`` for UPDATE / DOWNDATE, ``m·(n + k)`` for FOLD, ``n`` for PREDICT,
the matrix for LOAD),
poll ``UPDATER_STATUS`` (with ``UPDATER_CYCLES``, ``UPDATER_COUNT``), then read
``UPDATER_RESULT``. The updater keeps ``R``, ``Z``, ``W`` between commands (and across
Cholesky jobs): only its RESET command re-initialises them.
"""

from __future__ import annotations

import enum
import json
import zlib
from dataclasses import asdict, dataclass

from tiersolve.gen.qr_ops import FoldKind as UpdaterFoldKind
from tiersolve.gen.qr_ops import Op as UpdaterOp
from tiersolve.gen.qr_ops import Select as UpdaterSelect

__all__ = [
    "ADDRESS_WIDTH",
    "CORE_BITS",
    "Field",
    "LAYOUT_ID",
    "MAGIC",
    "Op",
    "REGISTERS",
    "RESULT_WINDOW",
    "RESULT_WINDOW_SIZE",
    "Register",
    "UPDATER_RESULT_WINDOW",
    "UpdaterFoldKind",
    "UpdaterOp",
    "UpdaterSelect",
    "VERSION",
    "address",
    "decode_fields",
    "encode_fields",
    "register",
    "register_map",
    "register_map_json",
]

#: Identity word: the ASCII bytes ``"TSLV"`` read as a little-endian 32-bit word.
MAGIC = int.from_bytes(b"TSLV", "little")
#: Version of the register map; bumped on any incompatible change (2: the updater's FOLD
#: takes the forgetting constant, which version 1 ignored).
VERSION = 2
#: Width of the register bus word address of a :class:`~tiersolve.designs.top.SolverDesign`.
ADDRESS_WIDTH = 20
#: First word of the RESULT window.
RESULT_WINDOW = 0x40000
#: Words the RESULT window can span (``n_max * k_max`` must not exceed it).
RESULT_WINDOW_SIZE = 1 << 18

#: First word of the UPDATER_RESULT window.
UPDATER_RESULT_WINDOW = 0x80000
#: Rotation kinds of the updater, by their code in ``UPDATER.rotation``.
UPDATER_ROTATIONS = ("cordic", "multiplier")

#: Bit of each core in the ``CORES`` register.
CORE_BITS = {"cholesky": 0, "qr": 1, "updater": 2}


class Op(enum.IntEnum):
    """Values of the ``op`` field of ``COMMAND``."""

    #: Cholesky core, Gram mode: rows ``[h | t]`` stream in, ``(HᵀH + λI) X = HᵀT``.
    CHOLESKY_GRAM = 1
    #: Cholesky core, direct mode: ``n`` rows ``[A_i | B_i]`` stream in, ``(A + λI) X = B``.
    CHOLESKY_DIRECT = 2


@dataclass(frozen=True)
class Field:
    """A bit field of a register: bits ``offset .. offset + width - 1``."""

    name: str
    offset: int
    width: int
    doc: str = ""
    signed: bool = False


@dataclass(frozen=True)
class Register:
    """One register (or, with ``size > 1``, a window of ``size`` words).

    ``access`` is ``"ro"`` (read only; writes are ignored), ``"wo"`` (write only; reads give
    0), ``"rw"``, or ``"port"`` (a write-only data port: every write is one transfer).
    """

    name: str
    address: int
    access: str
    doc: str
    fields: tuple[Field, ...] = ()
    size: int = 1


REGISTERS: tuple[Register, ...] = (
    Register("MAGIC", 0x00, "ro", "identity word, 'TSLV' little-endian"),
    Register("VERSION", 0x01, "ro", "version of the register map"),
    Register("LAYOUT", 0x02, "ro", "CRC-32 of the register map's JSON declaration"),
    Register("CORES", 0x03, "ro", "cores built into the design", tuple(
        Field(name, bit, 1, f"the {name} core is present") for name, bit in CORE_BITS.items())),
    Register("N_MAX", 0x04, "ro", "largest system size n"),
    Register("K_MAX", 0x05, "ro", "largest number of right-hand sides k"),
    Register("FORMAT", 0x06, "ro", "data format", (
        Field("int_bits", 0, 8, "integer bits, sign included"),
        Field("frac_bits", 8, 8, "fractional bits"),
        Field("guard_bits", 16, 8, "extra integer bits of the Cholesky Gram words"))),
    Register("INVERSE_FORMAT", 0x07, "ro", "format of the Cholesky pivot inverses", (
        Field("int_bits", 0, 8, "integer bits, sign included"),
        Field("frac_bits", 8, 8, "fractional bits"))),
    Register("LANES", 0x08, "ro", "multiply-accumulate lanes of the Cholesky core"),
    Register("CLOCK_HZ", 0x09, "ro", "design clock frequency in Hz"),
    Register("MAX_BURST", 0x0A, "ro", "longest burst of the frame bridge in words (0: none)"),
    Register("UPDATER", 0x0B, "ro", "incremental-update core parameters (0: not built)", (
        Field("units", 0, 8, "rotation units of the linear array"),
        Field("rotation", 8, 1, "rotation kind: 0 CORDIC, 1 multiplier"),
        Field("fold", 9, 1, "the FOLD command is built (rows in flight together)"),
        Field("fold_downdate", 10, 1, "FOLD takes rows out too (select DOWNDATE of "
              "UpdaterFoldKind: all or none)"))),
    Register("CONTROL", 0x10, "wo", "write-one actions", (
        Field("reset_cholesky", 0, 1, "return the Cholesky core to idle (aborts a job)"),
        Field("reset_updater", 1, 1, "return the updater to idle (aborts a command; its "
              "state must then be re-initialised by RESET or LOAD)"))),
    Register("SIZE", 0x11, "rw", "runtime sizes of the next job", (
        Field("n", 0, 16, "system size, 1..n_max"),
        Field("k", 16, 16, "right-hand sides, 1..k_max"))),
    Register("LAMBDA", 0x12, "rw", "lambda of the next job, stored integer of the data format",
             (Field("value", 0, 32, "sign-extended stored integer", signed=True),)),
    Register("COMMAND", 0x13, "wo", "start a job; the write waits while the core is busy", (
        Field("op", 0, 4, "operation, see Op"),)),
    Register("STATUS", 0x14, "ro", "state and flags of the current / last job", (
        Field("busy", 0, 1, "a job is running"),
        Field("done", 1, 1, "the last job has ended (see the flags)"),
        Field("npd", 2, 1, "a pivot was not positive: not positive definite"),
        Field("saturated", 3, 1, "a value was clipped during the job (sticky)"),
        Field("bad_command", 4, 1, "n or k was 0 or too large"),
        Field("phase", 8, 3, "core phase (tiersolve.gen.cholesky_model.Phase)"),
        Field("npd_index", 16, 16, "column of the failing pivot"))),
    Register("CYCLES", 0x15, "ro", "core clock cycles of the current / last job"),
    Register("RESULT_COUNT", 0x16, "ro", "values captured in RESULT since the last command"),
    Register("ROW_DATA", 0x20, "port", "one input value, sign-extended stored integer"),
    Register("ROW_DATA_LAST", 0x21, "port", "one input value, the final one of a Gram job"),
    Register("UPDATER_SIZE", 0x30, "rw", "runtime sizes of the next updater command", (
        Field("n", 0, 16, "columns of H, 1..n_max"),
        Field("k", 16, 16, "columns of T, 1..k_max"))),
    Register("UPDATER_VALUE", 0x31, "rw",
             "sqrt(lambda) for RESET (stored integer), the row count for FOLD", (
        Field("value", 0, 32, "sign-extended stored integer", signed=True),)),
    Register("UPDATER_FORGET", 0x32, "rw", "forgetting constant b = round(sqrt(beta) 2**w) "
             "of UPDATE and FOLD", (
        Field("value", 0, 32, "1..2**w; 2**w means beta = 1 (a FOLD of downdates takes only "
              "2**w)"),)),
    Register("UPDATER_COMMAND", 0x33, "wo", "start an updater command; the write waits while "
             "the updater is busy", (
                 Field("op", 0, 4, "operation, see UpdaterOp"),
                 Field("select", 4, 2, "matrix of READ / LOAD (UpdaterSelect); what FOLD does "
                       "with its rows (UpdaterFoldKind)"))),
    Register("UPDATER_STATUS", 0x34, "ro", "state and flags of the updater", (
        Field("busy", 0, 1, "a command is running"),
        Field("done", 1, 1, "the last command has ended"),
        Field("refused", 2, 1, "the last DOWNDATE, or FOLD of downdates, was refused (R, Z "
              "unchanged)"),
        Field("saturated", 3, 1, "a value was clipped since RESET (sticky)"),
        Field("bad_command", 4, 1, "n, k, op, forgetting constant, FOLD's row count or "
              "select out of range"))),
    Register("UPDATER_CYCLES", 0x35, "ro", "updater cycles of the current / last command"),
    Register("UPDATER_COUNT", 0x36, "ro", "values captured in UPDATER_RESULT since the "
             "last command"),
    Register("UPDATER_DATA", 0x38, "port", "one updater input value, sign-extended stored "
             "integer"),
    Register("RESULT", RESULT_WINDOW, "ro", "results in the order the core sends them, "
             "sign-extended stored integers", size=RESULT_WINDOW_SIZE),
    Register("UPDATER_RESULT", UPDATER_RESULT_WINDOW, "ro", "updater PREDICT / READ output, "
             "sign-extended stored integers", size=RESULT_WINDOW_SIZE),
)

_BY_NAME = {reg.name: reg for reg in REGISTERS}


def register(name: str) -> Register:
    """The register called ``name``; raises KeyError naming the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no register {name!r}; known: {', '.join(_BY_NAME)}") from None


def address(name: str) -> int:
    """Word address of the register called ``name``."""
    return register(name).address


def encode_fields(name: str, **values: int) -> int:
    """The 32-bit word of register ``name`` with the given fields (others 0).

    Raises
    ------
    KeyError
        If a field is not one of the register's.
    ValueError
        If a value does not fit its field.
    """
    fields = {f.name: f for f in register(name).fields}
    word = 0
    for field_name, value in values.items():
        if field_name not in fields:
            raise KeyError(f"register {name} has no field {field_name!r}; known: "
                           f"{', '.join(fields)}")
        field = fields[field_name]
        value = int(value)
        low = -(1 << (field.width - 1)) if field.signed else 0
        high = (1 << (field.width - 1)) - 1 if field.signed else (1 << field.width) - 1
        if not low <= value <= high:
            raise ValueError(f"{name}.{field_name} = {value} does not fit {field.width} bits")
        word |= (value & ((1 << field.width) - 1)) << field.offset
    return word


def decode_fields(name: str, word: int) -> dict[str, int]:
    """The fields of register ``name`` in the 32-bit ``word``, by name."""
    result = {}
    for field in register(name).fields:
        value = (int(word) >> field.offset) & ((1 << field.width) - 1)
        if field.signed and value >> (field.width - 1):
            value -= 1 << field.width
        result[field.name] = value
    return result


def register_map() -> dict:
    """The register map as plain data (what :func:`register_map_json` serialises)."""
    return {
        "magic": MAGIC,
        "version": VERSION,
        "address_width": ADDRESS_WIDTH,
        "word_bits": 32,
        "ops": {op.name: int(op) for op in Op},
        "updater_ops": {op.name: int(op) for op in UpdaterOp},
        "updater_selects": {select.name: int(select) for select in UpdaterSelect},
        "updater_fold_kinds": {kind.name: int(kind) for kind in UpdaterFoldKind},
        "registers": [
            {**asdict(reg), "fields": [asdict(f) for f in reg.fields]} for reg in REGISTERS
        ],
    }


def register_map_json(indent: int | None = 2) -> str:
    """The register map as JSON (stable: keys sorted)."""
    return json.dumps(register_map(), indent=indent, sort_keys=True, ensure_ascii=False)


#: CRC-32 of the compact JSON of the map: the value of the ``LAYOUT`` register.
LAYOUT_ID = zlib.crc32(register_map_json(indent=None).encode())


def _check_map() -> None:
    taken = {}
    for reg in REGISTERS:
        if reg.access not in ("ro", "wo", "rw", "port"):
            raise AssertionError(f"{reg.name}: unknown access {reg.access!r}")
        for word in (reg.address, reg.address + reg.size - 1):
            if not 0 <= word < 1 << ADDRESS_WIDTH:
                raise AssertionError(f"{reg.name} lies outside the bus")
        if reg.size == 1:
            if reg.address in taken:
                raise AssertionError(f"{reg.name} overlaps {taken[reg.address]}")
            taken[reg.address] = reg.name
        bits = 0
        for field in reg.fields:
            mask = ((1 << field.width) - 1) << field.offset
            if mask >> 32 or bits & mask:
                raise AssertionError(f"{reg.name}.{field.name} overlaps or exceeds 32 bits")
            bits |= mask


_check_map()
