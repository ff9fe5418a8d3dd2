"""Bit-exact NumPy model of the Cholesky solver core (:mod:`tiersolve.gen.cholesky`).

This module imports NumPy only, so the host can predict, bit for bit, what the core returns.

What the core computes
----------------------
Let ``fmt`` be the data format ``Q a.f`` (``w = a + f`` bits) and ``g`` the guard bits. The core
keeps an *augmented* matrix ``M`` with ``n + k`` rows and ``n`` columns: rows ``0 .. n-1`` hold
the lower triangle of ``A = HᵀH + λI`` (Gram mode) or ``A + λI`` (direct mode), and row
``n + c`` holds column ``c`` of the right-hand side ``B = HᵀT`` (Gram) or ``B`` (direct),
transposed. Before the factorisation every entry of ``M`` is a *wide* integer with ``2f``
fractional bits and ``w + f + g`` bits in all (range ``±2**(a - 1 + g)``):

* Gram mode: ``M`` starts as ``λ·2**f`` on the diagonal and 0 elsewhere. Each row
  ``v = [h | t]`` (``n + k`` integers in ``fmt``) adds ``v_i·v_j`` (exact) to ``M[i, j]`` for
  ``j < n``, ``j <= i``; each sum is clipped to the wide range (flagged ``saturated``).
* Direct mode: row ``i`` of ``[A | B]`` sets ``M[i, j] = (A_ij + [i == j]·λ)·2**f`` for
  ``j <= i`` and ``M[n + c, i] = B_ic·2**f``; entries above the diagonal are ignored (``A`` is
  taken as symmetric).

Factorisation ``A = L Lᵀ``, left-looking, one column ``j`` at a time, for every row
``i = j .. n+k-1`` of the augmented matrix (the rows ``i >= n`` are the forward substitution
``Y = L⁻¹B``, transposed: it comes for free as extra rows of the same loop)::

    s_i   = sat(round((M[i, j] - Σ_{q<j} L[i, q]·L[j, q]) / 2**f))        # fmt
    inv_j = rsqrt_model(s_j, fmt, fmt_inv)    # floor(2**fi / sqrt(s_j)); s_j <= 0: not PD, stop
    L[i, j] = sat(round(s_i · inv_j / 2**fi))    for i > j                 # fmt

Back substitution ``Lᵀ X = Y``, ``i = n-1 .. 0``, for each right-hand side ``c``::

    s     = sat(round((Y[c, i]·2**f - Σ_{q>i} L[q, i]·X[q, c]) / 2**f))
    X[i, c] = sat(round(s · inv_i / 2**fi))

``fmt_inv`` (``fi`` fractional bits) is the format of the pivot inverses ``1/√s_j``: by default
``fmt`` itself; give it more integer bits when pivots can be small (``1/√s`` clips at
``fmt_inv.max``, i.e. pivots below ``fmt_inv.max**-2`` are flagged ``saturated``).

``round`` is :func:`tiersolve.gen.fixed.round_shift` with ``nearest-even`` rounding, ``sat`` is
:func:`tiersolve.gen.fixed.saturate` to ``fmt``; every dot product is summed exactly (the
gateware accumulators are wide enough), so the order of summation does not matter. Any clipping
(wide accumulation, ``s``, ``L``, ``inv`` or ``X``) sets the sticky ``saturated`` flag.

Why ``L Lᵀ`` with a reciprocal square root rather than ``L D Lᵀ``: the core needs only
``1/√s_j`` (never ``√s_j`` or a divide); each off-diagonal entry is one multiply; both
substitutions scale by the same ``inv_i``; and ``L`` stays in ``±√max A_ii``, so one format
holds it. ``L D Lᵀ`` needs a reciprocal *and* an extra multiply per product term (``L_ik d_k``)
or a second stored matrix, for no gain in range.

Scaling (what the host must guarantee): ``A``, ``B``, ``L``, ``Y = L⁻¹B`` and ``X`` all live in
``fmt``; the Gram sums live in the wide words. Scale ``H`` by ``2**e`` and ``T`` by ``2**e'``
(exact; then ``A`` scales by ``2**(2e)``, so λ must too, and ``X`` by ``2**(e' - e)``, which the
host undoes) so that

* ``max_i A_ii < 2**(a-1)`` (then ``|A_ij| <= A_ii`` and ``|L_ij| <= √A_ii`` fit) and, in Gram
  mode, ``m·max|h|² < 2**(a-1+g)`` so that no partial sum clips;
* ``|B|`` and ``|Y| <= ‖B‖₂/√λ_min(A)`` fit, and ``|X| <= ‖B‖₂/λ_min(A)`` fits;
* the pivots (``s_j >= λ_min(A)``) stay above ``fmt_inv.max**-2``, or ``inv`` clips.

Whatever still clips is flagged (sticky ``saturated``), never silently wrapped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .fixed import FixedFormat, product_latency, round_shift, saturate

__all__ = [
    "BANK_CHUNK_WORDS",
    "CholeskyResult",
    "Phase",
    "bank_chunks",
    "check_cholesky_parameters",
    "check_inverse_format",
    "cholesky_model",
    "column_blocks",
    "cycle_model",
    "forward_error_bound",
    "head_is_split",
    "head_rows",
    "head_steps",
    "late_term_default",
    "multiplier_latencies",
    "pipeline_delays",
    "product_latency",
    "wide_bits",
]

class Phase(enum.IntEnum):
    """Values of the core's ``phase`` port."""

    IDLE = 0
    INPUT = 1    # receiving rows (Gram: clearing and accumulating too)
    FACTOR = 2   # factorisation with the forward substitution
    SOLVE = 3    # back substitution
    OUTPUT = 4   # streaming X out
    DONE = 5     # job ended (see the flags); a new command may be given


#: Rounding used everywhere in the core.
ROUNDING = "nearest-even"


def check_cholesky_parameters(n_max, k_max, fmt, lanes, guard_bits) -> FixedFormat:
    """Validate generator parameters; return ``fmt`` as a :class:`FixedFormat`.

    Raises
    ------
    TypeError
        If a size is not an integer or ``fmt`` is not a format.
    ValueError
        If ``n_max < 2``, ``k_max < 1``, ``lanes`` is not a power of two in 1..64, ``fmt`` is
        wider than 24 bits or ``guard_bits`` is outside 2..8.
    """
    for name, value in (("n_max", n_max), ("k_max", k_max), ("lanes", lanes),
                        ("guard_bits", guard_bits)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, not {value!r}")
    if isinstance(fmt, str):
        fmt = FixedFormat.parse(fmt)
    if not isinstance(fmt, FixedFormat):
        raise TypeError(f"fmt must be a FixedFormat or a string like 'Q6.12', not {fmt!r}")
    if not 2 <= n_max <= 1024:
        raise ValueError(f"n_max must be in 2..1024, not {n_max}")
    if not 1 <= k_max <= 256:
        raise ValueError(f"k_max must be in 1..256, not {k_max}")
    if not (1 <= lanes <= 64 and lanes & (lanes - 1) == 0):
        raise ValueError(f"lanes must be a power of two in 1..64, not {lanes}")
    if fmt.width > 24:
        raise ValueError(f"fmt {fmt} is wider than 24 bits, the widest the core supports")
    if fmt.frac_bits < 1:
        raise ValueError(f"fmt {fmt} needs at least one fractional bit")
    if not 2 <= guard_bits <= 8:
        raise ValueError(f"guard_bits must be in 2..8, not {guard_bits}")
    return fmt


def check_inverse_format(inverse_format, fmt: FixedFormat) -> FixedFormat:
    """Validate the pivot-inverse format (None means ``fmt``); return it as a FixedFormat."""
    if inverse_format is None:
        return fmt
    if isinstance(inverse_format, str):
        inverse_format = FixedFormat.parse(inverse_format)
    if not isinstance(inverse_format, FixedFormat):
        raise TypeError(f"inverse_format must be a FixedFormat, a string or None, "
                        f"not {inverse_format!r}")
    if inverse_format.width > 24 or inverse_format.width < 2:
        raise ValueError(f"inverse_format {inverse_format} must be 2..24 bits wide")
    # 1/sqrt(s) of the largest pivot fmt can hold must not truncate to zero: with fewer
    # fraction bits every L of such a column, and X with it, would come out 0 with no flag
    needed = -(-(fmt.int_bits - 1) // 2)
    if inverse_format.frac_bits < needed:
        raise ValueError(f"inverse_format {inverse_format} has {inverse_format.frac_bits} "
                         f"fraction bits: 1/sqrt of a pivot near {fmt}'s largest value "
                         f"(2**{fmt.int_bits - 1}) would truncate to 0; give it at least "
                         f"{needed}")
    return inverse_format


def wide_bits(fmt: FixedFormat, guard_bits: int) -> int:
    """Width of the wide (``2f`` fractional bits) storage words: ``w + f + guard_bits``."""
    return fmt.width + fmt.frac_bits + guard_bits


@dataclass
class CholeskyResult:
    """What one job of the core returns.

    Attributes
    ----------
    x : numpy.ndarray of int64, shape (n, k), or None
        The solution in ``fmt``; None when the matrix was not positive definite or the command
        was bad.
    npd : bool
        A pivot ``s_j <= 0`` was met (not positive definite, or λ too small for the precision).
    npd_index : int
        Index ``j`` of the failing pivot (0 when ``npd`` is False).
    saturated : bool
        Some value was clipped (sticky over the job).
    bad_command : bool
        ``n`` or ``k`` was 0 or above ``n_max`` / ``k_max``.
    """

    x: np.ndarray | None
    npd: bool = False
    npd_index: int = 0
    saturated: bool = False
    bad_command: bool = False


def multiplier_latencies(fmt, inverse_format=None) -> tuple[int, int]:
    """``(dot_product, scaling)`` product latencies of a core in ``fmt`` whose pivot inverses
    are in ``inverse_format`` (None: ``fmt``): :func:`product_latency` of ``w × w`` and of
    ``w × inverse_format.width``. Both are 1 for formats of at most 18 bits, 3 for Q8.16."""
    fmt = FixedFormat.parse(fmt) if isinstance(fmt, str) else fmt
    fmt_inv = check_inverse_format(inverse_format, fmt)
    return (product_latency(fmt.width, fmt.width),
            product_latency(fmt.width, fmt_inv.width))


def _rsqrt(value: int, fmt: FixedFormat, fmt_inv: FixedFormat):
    from .recip_model import rsqrt_model

    result = rsqrt_model(np.array([value], dtype=np.int64), fmt, fmt_inv)
    return int(result.y[0]), bool(result.invalid[0]), bool(result.saturated[0])


def cholesky_model(fmt, mode: str, n: int, k: int, lam: int, rows, *, n_max: int, k_max: int,
                   guard_bits: int = 4, inverse_format=None) -> CholeskyResult:
    """Compute, bit for bit, what :class:`~tiersolve.gen.cholesky.CholeskySolver` returns.

    Parameters
    ----------
    fmt : FixedFormat or str
        Data format of the core.
    mode : {"gram", "direct"}
        Gram mode: ``rows`` are the rows ``[h | t]`` of ``[H | T]`` (any number ≥ 1).
        Direct mode: ``rows`` are the ``n`` rows of ``[A | B]``.
    n, k : int
        Runtime sizes (``1 <= n <= n_max``, ``1 <= k <= k_max``; otherwise ``bad_command``).
    lam : int
        λ as a stored integer of ``fmt``.
    rows : array_like of int, shape (m, n + k)
        Stored integers of ``fmt``.
    n_max, k_max, guard_bits : int
        Generator parameters of the core.
    inverse_format : FixedFormat or str or None
        Format of the pivot inverses (generator parameter; None: ``fmt``).

    Returns
    -------
    CholeskyResult
    """
    fmt = check_cholesky_parameters(n_max, k_max, fmt, 1, guard_bits)
    fmt_inv = check_inverse_format(inverse_format, fmt)
    if mode not in ("gram", "direct"):
        raise ValueError(f"mode must be 'gram' or 'direct', not {mode!r}")
    if not (1 <= n <= n_max and 1 <= k <= k_max):
        return CholeskyResult(None, bad_command=True)
    f = fmt.frac_bits
    wide = wide_bits(fmt, guard_bits)
    wide_min, wide_max = -(1 << (wide - 1)), (1 << (wide - 1)) - 1
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != n + k:
        raise ValueError(f"rows must have shape (m, n + k) = (m, {n + k}), not {rows.shape}")
    rows = fmt.check_ints(rows, "rows")
    if mode == "gram" and not len(rows):
        raise ValueError("Gram mode needs at least one row (the core cannot take none)")
    lam = int(fmt.check_ints(np.array(lam), "lam"))
    saturated = False
    total = n + k
    lower = np.tril(np.ones((total, n), dtype=bool))  # j <= i, j < n
    M = np.zeros((total, n), dtype=np.int64)
    if mode == "gram":
        M[np.arange(n), np.arange(n)] = lam << f
        for v in rows:
            update = np.where(lower, M + np.outer(v, v[:n]), M)
            clipped = (update < wide_min) | (update > wide_max)
            saturated |= bool(clipped.any())
            M = np.clip(update, wide_min, wide_max)
    else:
        if rows.shape[0] != n:
            raise ValueError(f"direct mode needs n = {n} rows, not {rows.shape[0]}")
        A = rows[:, :n] + lam * np.eye(n, dtype=np.int64)
        M[:n] = np.where(lower[:n], A << f, 0)
        M[n:] = rows[:, n:].T << f

    def rounded(x, shift=f):
        nonlocal saturated
        values, clipped = saturate(round_shift(x, shift, ROUNDING), fmt)
        saturated |= bool(np.any(clipped))
        return values

    L = np.zeros((total, n), dtype=np.int64)
    inv = np.zeros(n, dtype=np.int64)
    for j in range(n):
        acc = L[j:, :j] @ L[j, :j]
        s = rounded(M[j:, j] - acc)
        y, invalid, clipped = _rsqrt(int(s[0]), fmt, fmt_inv)
        if invalid:
            return CholeskyResult(None, npd=True, npd_index=j, saturated=saturated)
        saturated |= clipped
        inv[j] = y
        L[j + 1:, j] = rounded(s[1:] * y, fmt_inv.frac_bits)
    X = np.zeros((n, k), dtype=np.int64)
    for i in range(n - 1, -1, -1):
        acc = L[i + 1:n, i] @ X[i + 1:n]
        s = rounded((L[n:, i] << f) - acc)
        X[i] = rounded(s * inv[i], fmt_inv.frac_bits)
    return CholeskyResult(X, saturated=saturated)


def head_rows(n: int, k: int, lanes: int, col: int) -> int:
    """Rows of column ``col``'s first block (the *head*): ``(n + k - col - 1) mod lanes + 1``.

    Column ``col`` has ``n + k - col`` rows: a head of 1..``lanes`` rows (it holds the pivot row
    ``col``), then whole blocks of ``lanes`` rows.
    """
    return (n + k - col - 1) % lanes + 1


def head_is_split(n: int, k: int, lanes: int, col: int) -> bool:
    """Whether column ``col``'s head block splits its dot products over paired lanes.

    When the head fills at most half the lanes (and ``col >= 3``, where splitting saves a
    cycle), lane ``b`` and its partner ``b XOR lanes/2`` share the row of lane ``b``: the
    lane sums ``q = col - h .. col - 1`` and the partner ``q = 0 .. col - h - 1``, with
    ``h = col // 2 + 1``, so the head takes ``h + 1`` steps instead of ``col + 1``.
    """
    return lanes >= 2 and col >= 3 and head_rows(n, k, lanes, col) <= lanes // 2


def head_steps(n: int, k: int, lanes: int, col: int) -> int:
    """Issue steps of column ``col``'s head block (its last step reads ``M[i, col]``)."""
    return col // 2 + 2 if head_is_split(n, k, lanes, col) else col + 1


def column_blocks(n: int, k: int, lanes: int, col: int) -> int:
    """Blocks of column ``col`` (its head and the whole blocks after it):
    ``ceil((n + k - col) / lanes)``."""
    return -(-(n + k - col) // lanes)


def _factor_schedule(n: int, k: int, lanes: int, rsqrt_latency: int, delays: dict) -> dict:
    """Replay, cycle by cycle, the factorisation's issue schedule (the FACTOR states).

    Blocks are numbered in issue order over all columns (column ``j`` has
    :func:`column_blocks` of them: its head, see :func:`head_steps`, then whole blocks of
    ``j + 1`` steps). Every cycle may issue one *scaling block* (its own pipeline: the rows of
    one dot-product block, ``L = s·inv``), in the same order, when its block's ``s`` values
    are stored (``s_stored`` cycles after the block's last step) and its column's pivot
    inverse is held. The pivot inverse of column ``j`` comes ``pivot + rsqrt_latency`` cycles
    after the head's last step, and is taken (and held for the scaling blocks) no earlier than
    the cycle after column ``j - 1``'s last scaling block. Every cycle also issues the next
    dot-product step, unless it reads the previous column (the step just before its block's
    last) before the scaling block of that column holding the block's rows (and so the pivot
    row) is readable, ``l_readable`` cycles after its issue: then no step is issued (a stall).
    A column's blocks line up with the previous column's (the same rows, or the previous
    column's head is its pivot row alone), so block ``g`` (in issue order) of column ``j``
    needs the scaling blocks ``0 .. g - column_blocks(j)``. After the last column only the
    scaling blocks run, then the pipeline drains (``factor_drain``). The delays are those of
    :func:`pipeline_delays`.
    """
    s_stored, l_readable = delays["s_stored"], delays["l_readable"]
    inverse_after = delays["pivot"] + rsqrt_latency
    sizes = [column_blocks(n, k, lanes, j) for j in range(n)]
    cycle = col = step = block = 0       # dot products: column, step, block (issue order)
    block_in_col = 0
    stored_at = []                       # per block: first cycle its scaling block may go
    scale_block = scale_col = scale_in_col = 0
    scale_issued = []                    # per scaling block: its issue cycle
    inverse_at = None                    # cycle the next inverse may be taken (head done)
    held = None                          # first cycle the held inverse may be used
    previous_pass_done = 0               # cycle after the previous column's last scaling block
    stalls = 0
    tail = False
    while True:
        if held is None and inverse_at is not None:
            held = max(inverse_at, previous_pass_done + 1)
            inverse_at = None
        if (held is not None and cycle >= held and scale_block < len(stored_at)
                and cycle >= stored_at[scale_block]):
            scale_issued.append(cycle)
            scale_block += 1
            scale_in_col += 1
            if scale_in_col == sizes[scale_col]:  # the column's pass is done
                if scale_col == n - 1:            # FACTOR_DRAIN: until the last L is written
                    return {"factor": cycle + 1 + delays["factor_drain"], "stalls": stalls,
                            "scale": scale_block, "drain": delays["factor_drain"]}
                scale_col, scale_in_col, held = scale_col + 1, 0, None
                previous_pass_done = cycle + 1
        last_step = head_steps(n, k, lanes, col) - 1 if block_in_col == 0 else col
        if not tail and step + 1 == last_step:
            needed = block - sizes[col]  # the previous column's scaling block it reads
            if len(scale_issued) <= needed or cycle < scale_issued[needed] + l_readable:
                stalls += 1
                cycle += 1
                continue
        if tail:
            stalls += 1
        elif step == last_step:
            if block_in_col == 0:
                inverse_at = cycle + inverse_after
            stored_at.append(cycle + s_stored)
            step, block, block_in_col = 0, block + 1, block_in_col + 1
            if block_in_col == sizes[col]:
                if col == n - 1:
                    tail = True
                else:
                    col, block_in_col = col + 1, 0
        else:
            step += 1
        cycle += 1


#: Lanes from which the core registers the fetched words and the broadcast once more before
#: they fan out to the lanes' operand registers (:func:`broadcast_stage`).
BROADCAST_STAGE_LANES = 8


def broadcast_stage(lanes: int) -> int:
    """1 when a core of ``lanes`` lanes has the extra broadcast register stage, else 0."""
    return int(lanes >= BROADCAST_STAGE_LANES)


#: Lanes from which the core registers every memory's read word once more, before the bank
#: multiplexers, whatever the depth of its banks (:func:`read_stage`; cores of 2 or more lanes
#: whose banks are deeper than one block RAM have the stage too).
READ_STAGE_LANES = 8


#: Words of one matrix bank chunk (one ECP5 block RAM at the banks' widths; the core's chunks
#: are :data:`tiersolve.gen.hwmem.BLOCK_RAM_WORDS` deep, which a test checks is this).
BANK_CHUNK_WORDS = 512


def _check_at_least(where: str, name: str, value, least: int, bound: str = "") -> None:
    """ValueError (naming ``where``, ``name`` and the ``bound`` least comes from) unless
    ``value`` is an integer (not a bool) of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{where}: {name} must be an integer of at least {least}{bound}, "
                         f"not {value!r}")


def bank_chunks(n_max: int, k_max: int, lanes: int) -> int:
    """Chunks of :data:`BANK_CHUNK_WORDS` words in each matrix bank of an ``n_max`` /
    ``k_max`` / ``lanes`` core: a bank holds ``ceil((n_max + k_max) / lanes)`` rows of
    ``2**ceil(log2 n_max)`` words."""
    for name, value in (("n_max", n_max), ("k_max", k_max), ("lanes", lanes)):
        _check_at_least("bank_chunks", name, value, 1)
    rows = -(-(n_max + k_max) // lanes)
    return -(-(rows << (n_max - 1).bit_length()) // BANK_CHUNK_WORDS)


def read_stage(lanes: int, chunks: int = 1) -> int:
    """1 when a core of ``lanes`` lanes whose matrix banks are ``chunks`` block RAMs deep
    (:func:`bank_chunks`) registers the read words once more before the bank multiplexers,
    else 0: from :data:`READ_STAGE_LANES` lanes, and from 2 lanes when the banks are deeper
    than one block RAM. On ECP5 the read register is the block RAM's own output register
    (gen/hwmem.py), at the block RAM's place; in a wide core the banks' block RAMs spread over
    the die, and the route from them, the chunk and bank multiplexers made one path (the
    critical path of a 128/8/8 ULX3S build); with 4 lanes and banks of 3 chunks (n_max = 64)
    the chunk multiplexer, the bank multiplexer and the operand selection made the critical
    path of the core (64/10/4 Q6.12, out of context: 106.8 / 113.0 / 108.5 MHz with seeds
    1 / 2 / 3 without the stage, 119.5 / 112.3 / 112.4 with it). One lane has no bank
    multiplexer. The extra stage costs a cycle on every path through the dot products (0.1 %
    of factor + solve at n = 128 with 8 lanes, 1.3 % with 64; 3 cycles of 22,144 at 64/10/4,
    where the pivot chain hides behind the other blocks)."""
    return int(lanes >= READ_STAGE_LANES or (lanes >= 2 and chunks > 1))


def late_term_default(lanes: int, late_term=None) -> bool:
    """Whether a core of ``lanes`` lanes adds the back substitution's late term: ``late_term``
    if it is given, else the default (:class:`~tiersolve.gen.cholesky.CholeskySolver`'s
    ``late_term=None``): from 2 lanes. It costs one more ``w × w`` multiplier (on an
    iCE40UP5K, whose 16 × 16 DSPs a Q6.12 one-lane core already uses 6 of 8, four more) and
    saves least with one lane (one step per right-hand side and row, about 2 % of factor +
    solve at n = 32)."""
    if late_term is not None and not isinstance(late_term, (bool, np.bool_)):
        raise TypeError(f"late_term must be True, False or None, not {late_term!r}")
    return lanes >= 2 if late_term is None else bool(late_term)


def pipeline_delays(lanes: int, fmt=None, inverse_format=None, late_term=None,
                    chunks: int = 1) -> dict:
    """Pipeline delays of the core (cycles) that the schedule depends on.

    Parameters
    ----------
    lanes : int
        Lanes of the core (the back substitution's adder tree has ``log2(lanes)`` levels).
    fmt, inverse_format : FixedFormat or str or None
        Data format and pivot-inverse format; they set the product latencies
        ``P_d, P_s`` (:func:`multiplier_latencies`; None: formats of at most 18 bits, 1 and 1).
        From :data:`BROADCAST_STAGE_LANES` lanes, ``P_d`` below counts one more cycle: the
        broadcast register stage before the operand registers; with the read stage before the
        bank multiplexers (:func:`read_stage`) one more.
    late_term : bool or None
        The core's ``late_term`` (None: :func:`late_term_default`).
    chunks : int
        Block RAM chunks per matrix bank (:func:`bank_chunks`; they decide the read stage).

    Returns
    -------
    dict
        ``gram_drain`` (``7 + P_d``): cycles after a Gram or clear pass's last issue until the
        pipeline is empty; ``s_stored`` (``7 + P_d``): cycles after a factor block's last step
        until its ``s`` values are readable by its scaling block; ``pivot`` (``8 + P_d``): its
        column's pivot inverse is known ``pivot + rsqrt_latency`` cycles after the head block's last
        step; ``l_readable`` (``6 + P_s``): cycles after a scaling block is issued until its
        ``L`` is readable by a dot-product step; ``factor_drain`` (``7 + P_s``): cycles after
        the last scaling block until the pipeline is empty; ``back``
        (``10 + log2(lanes) + P_d + P_s``): cycles from the last step of a back substitution
        row's first right-hand side until ``X[i, 0]`` is readable by a step's dot product
        (the row two below's first step); ``back_late`` (``10 + P_m + P_s``, ``P_m`` the
        bare ``w × w`` product latency, without the read and broadcast stages): the same
        distance to the last step of the next row's first right-hand side, whose late term
        ``L[i, i-1]·X[i, 0]`` reads it; ``back_drain`` (``back + 1``): the final drain after
        the last row.

        ``late_term`` (None: :func:`late_term_default`): without it ``back`` counts to the
        next row's first step, which reads ``X[i, 0]``, and there is no ``back_late``.

        Every read address is registered before its memory, so a read happens one cycle
        after its step is issued; a write happens when its pipeline stage drives it. The
        distances from a write to a read of the same word (``s_stored``, ``l_readable``,
        ``back``) count from issue to issue and are the same as without the address
        registers; the paths that end elsewhere (the pivot to the rsqrt unit, the drains) are
        one cycle longer.
    """
    _check_at_least("pipeline_delays", "chunks", chunks, 1)
    dot, scaling = (1, 1) if fmt is None else multiplier_latencies(fmt, inverse_format)
    # the late term's product is read from two small memories (3 cycles) and multiplied
    # (P_m) just in time for the subtraction from Y: 10 + P_m + P_s whatever the lanes
    back_late = 10 + dot + scaling
    # the stages lengthen every path through the dot products
    dot += broadcast_stage(lanes) + read_stage(lanes, chunks)
    tree_depth = lanes.bit_length() - 1
    back = 10 + tree_depth + dot + scaling
    delays = {"gram_drain": 7 + dot, "s_stored": 7 + dot, "pivot": 8 + dot,
              "l_readable": 6 + scaling, "factor_drain": 7 + scaling,
              "back": back, "back_drain": back + 1}
    if late_term_default(lanes, late_term):
        delays["back_late"] = back_late
    return delays


def cycle_model(n: int, k: int, lanes: int, rows: int = 0, *, rsqrt_latency: int,
                fmt=None, inverse_format=None, late_term=None, n_max=None,
                k_max=None) -> dict:
    """Cycle counts of one job of the core, phase by phase (checked against simulation).

    Parameters
    ----------
    n, k, lanes : int
        Runtime sizes and the core's lane count.
    rows : int
        Rows ``m`` streamed in Gram mode (0: direct mode, not counted here).
    rsqrt_latency : int
        ``latency`` of the reciprocal-square-root unit the core was built with.
    fmt, inverse_format : FixedFormat or str or None
        The core's data and pivot-inverse formats: operands wider than 18 bits make the
        products longer (:func:`pipeline_delays`). None: formats of at most 18 bits.
    late_term : bool or None
        The core's ``late_term`` (None: :func:`late_term_default`).
    n_max, k_max : int or None
        The core's sizes (None: ``n`` and ``k``, a core built for this problem): they set the
        depth of the matrix banks, and so the read stage (:func:`bank_chunks`,
        :func:`read_stage`).

    Returns
    -------
    dict
        ``gram_per_row`` (input + accumulation of one row, the stream never stalling),
        ``clear``, ``factor`` (factorisation with the forward substitution folded in),
        ``solve`` (back substitution), ``output`` (2 cycles per element with ``o.ready`` high),
        and where the factorisation's cycles go: ``factor_busy_lane_cycles`` (cycles issuing
        dot-product steps, partly idle lanes included), ``factor_scale`` (scaling blocks, one
        per block of rows; they run in parallel with the dot products and cost no cycle of
        their own), ``factor_pivot_wait`` (cycles that issue no dot-product step: a column's
        step ``q = j - 1`` waiting for the previous column's scaling block of its rows, or
        the scaling blocks still to go after the last column's last step) and
        ``factor_drain`` (the final drain, ``factor_drain`` of :func:`pipeline_delays`).
    """
    n_max = n if n_max is None else n_max
    k_max = k if k_max is None else k_max
    for name, value, least in (("n", n, 1), ("k", k, 1), ("lanes", lanes, 1),
                               ("rows", rows, 0), ("rsqrt_latency", rsqrt_latency, 1),
                               ("n_max", n_max, n), ("k_max", k_max, k)):
        _check_at_least("cycle_model", name, value, least,
                        {"n_max": " (n)", "k_max": " (k)"}.get(name, ""))
    if lanes & (lanes - 1):
        raise ValueError(f"cycle_model: lanes must be a power of two, not {lanes}")
    delays = pipeline_delays(lanes, fmt, inverse_format, late_term,
                             bank_chunks(n_max, k_max, lanes))
    late = "back_late" in delays
    total = n + k

    def blocks(first, end):  # blocks of `lanes` consecutive rows covering first .. end-1
        return -(-(end - first) // lanes)

    # each Gram / clear pass: per column j, one issue per block of rows j .. n+k-1
    passes = sum(column_blocks(n, k, lanes, j) for j in range(n))
    schedule = _factor_schedule(n, k, lanes, rsqrt_latency, delays)
    # back substitution: row i issues k dot products of one step per block of rows
    # i+2 .. n-1 (at least one); the term of row i+1 is added late (L[i+1, i]·X[i+1, c],
    # from X as it is written). The next row follows at once, except that its first step
    # (which reads X[i+2, 0]) waits until that is written, delays["back"] cycles after the
    # last step of row i+2's first right-hand side, and the last step of its first
    # right-hand side (whose late term reads X[i+1, 0]) delays["back_late"] cycles after
    # row i+1's; the final drain lasts delays["back_drain"]. Without the late term the
    # blocks cover rows i+1 .. n-1 and the first step reads X[i+1, 0].
    solve = 0
    written = []      # per row so far: the last step of its first right-hand side
    reads = 2 if late else 1      # the row below whose X[., 0] a row's first step reads
    for i in range(n - 1, -1, -1):
        row_blocks = max(blocks(i + reads, n), 1)
        first = solve
        if len(written) >= reads:
            first = max(first, written[-reads] + delays["back"])
        last = first + row_blocks - 1
        if late and written:
            last = max(last, written[-1] + delays["back_late"])
        written.append(last)
        solve = last + 1 + (k - 1) * row_blocks
    solve += delays["back_drain"]
    return {
        "gram_per_row": total + passes + delays["gram_drain"],
        "clear": passes + delays["gram_drain"],
        "factor": schedule["factor"],
        "factor_pivot_wait": schedule["stalls"],
        "factor_drain": schedule["drain"],
        "factor_scale": schedule["scale"],
        "factor_busy_lane_cycles": sum(head_steps(n, k, lanes, j)
                                       + (column_blocks(n, k, lanes, j) - 1) * (j + 1)
                                       for j in range(n)),
        "solve": solve,
        "output": 2 * n * k,
    }


def forward_error_bound(a, x, fmt, inverse_format=None) -> float:
    """Bound on the relative forward error ``‖X̂ - X‖_F / ‖X‖_F`` of the core, or ``inf``.

    ``a`` is the real matrix the core factorises (``A + λI`` or ``HᵀH + λI``, exactly as the
    stored integers say), ``x`` the exact solution (float64), ``fmt`` the core's format; the
    bound holds when nothing saturated. ``inverse_format`` as for :func:`cholesky_model`.

    Derivation (``u = 2**-f``, ``a_max = max_i a_ii``, ``d_j = 1/inv_j`` the *effective*
    diagonal of ``L``, ``v = 2**-fi`` the resolution of the inverses): dot products are exact,
    so the only errors are the rounding of ``s`` (``|r1| <= u/2``), the truncation of
    ``inv_j = 1/√s_j - δ`` (``0 <= δ < v``) and the
    rounding of ``s·inv`` (``|r2| <= u/2``). With ``L̃`` = the computed ``L`` with diagonal
    ``d_j``, every off-diagonal relation is exact up to ``r1 + r2·d_j``, and
    ``d_j² = s_j / (1 - δ√s_j)² <= s_j + 2.5·v·s_j^{3/2}`` (for ``v√s_j <= 0.1``), so

    * ``L̃ L̃ᵀ = A + E``, ``E`` symmetric, with ``|E_ij| <= e_off = u(½ + ½√a_max)`` off the
      diagonal and ``|E_jj| <= e_diag = u/2 + 2.5·v·a_max^{3/2}``, hence
      ``‖E‖₂ <= ‖E‖_F <= √(n·e_diag² + n(n-1)·e_off²)``;
    * the forward substitution gives ``L̃ Y = B + e1`` and the back substitution
      ``L̃ᵀ X̂ = Y + e2`` with ``|e1|, |e2| <= e_s = u·(½ + ½√a_max)`` per entry;
    * so ``(A + E) X̂ = B + e1 + L̃ e2`` and, with ``‖L̃‖₂ = √‖A + E‖₂``,

      ``‖X̂ - X‖_F <= (‖E‖₂‖X‖_F + √(nk)·e_s·(1 + √(‖A‖₂ + ‖E‖₂))) / (λ_min(A) - ‖E‖₂)``.

    This is ``O(cond(A)·u)`` with constants from ``n``, ``k`` and ``a_max``. When
    ``λ_min(A) <= ‖E‖₂`` (``cond(A)`` too large for the format) no bound is given (``inf``):
    the factorisation may then meet a non-positive pivot, which the core flags.
    """
    a = np.asarray(a, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64).reshape(a.shape[0], -1)
    fmt = FixedFormat.parse(fmt) if isinstance(fmt, str) else fmt
    fmt_inv = check_inverse_format(inverse_format, fmt)
    n, k = x.shape
    u, v = fmt.resolution, fmt_inv.resolution
    a_max = float(np.max(np.diag(a)))
    if v * np.sqrt(a_max) > 0.1:
        return float("inf")
    e_off = u * (0.5 + 0.5 * np.sqrt(a_max))
    e_diag = u / 2 + 2.5 * v * a_max ** 1.5
    e_norm = np.sqrt(n * e_diag**2 + n * (n - 1) * e_off**2)
    e_solve = u * (0.5 + 0.5 * np.sqrt(a_max))
    eig = np.linalg.eigvalsh(a)
    margin = eig[0] - e_norm
    x_norm = np.linalg.norm(x)
    if margin <= 0 or x_norm == 0:
        return float("inf")
    numerator = e_norm * x_norm + np.sqrt(n * k) * e_solve * (1 + np.sqrt(eig[-1] + e_norm))
    return float(numerator / (margin * x_norm))
