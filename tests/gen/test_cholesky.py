"""The Cholesky solver core equals its NumPy model bit for bit, flags failures and keeps working.

Several jobs run in one simulation each (elaboration is the slow part), which also checks that
the job after a failure works.
"""

from __future__ import annotations

import numpy as np
import pytest
from tiersolve.gen.cholesky_model import (
    Phase,
    check_cholesky_parameters,
    cholesky_model,
    cycle_model,
)
from tiersolve.gen.fixed import FixedFormat

Q6_12 = FixedFormat(6, 12)
Q4_10 = FixedFormat(4, 10)


# -- problem generators ------------------------------------------------------------------------


def spd_direct(rng, fmt, n, k, cond=10.0, scale=4.0):
    """Rows of [A | B] (stored integers): A SPD with eigenvalues in [scale/cond, scale]."""
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eig = scale * np.geomspace(1.0 / cond, 1.0, n)
    a = (q * eig) @ q.T
    b = rng.uniform(-1, 1, (n, k))
    return np.hstack([fmt.quantise(a).values, fmt.quantise(b).values])


def gram_rows(rng, fmt, n, k, m, scale=0.5):
    """Rows of [H | T] (stored integers)."""
    return fmt.quantise(rng.uniform(-scale, scale, (m, n + k))).values


def rounding_ties(rng, fmt, n, k):
    """Rows of [A | B] that make many exact rounding ties: diagonal 4 (so 1/√s_0 = 0.5 exactly)
    and odd stored integers elsewhere, so ``s·inv`` often ends in exactly half an LSB."""
    a = np.diag(np.full(n, fmt.const(4.0)))
    off = np.tril(rng.integers(-200, 200, (n, n)) * 2 + 1, -1)
    b = rng.integers(-1000, 1000, (n, k)) * 2 + 1
    return np.hstack([a + off + off.T, b])


class Job:
    """One command for the core plus the model's answer."""

    def __init__(self, mode, n, k, lam, rows, core):
        self.mode, self.n, self.k, self.lam = mode, n, k, lam
        self.rows = np.asarray(rows, dtype=np.int64)
        self.want = cholesky_model(core.fmt, mode, n, k, lam, self.rows, n_max=core.n_max,
                                   k_max=core.k_max, guard_bits=core.guard_bits,
                                   inverse_format=core.inverse_format)


# -- simulation -------------------------------------------------------------------------------


def simulate(core, jobs, *, check_cycles=False, deadline=5e-3, processes=()):
    """Run ``jobs`` back to back on ``core``; return per-job (x, flags, phase cycle counts).
    ``processes``: background processes run beside the testbench (probes)."""
    from tiersolve.gen.cholesky import MODE_DIRECT, MODE_GRAM
    from tiersolve.gen.sim import run_simulation, stream_put

    results = []

    async def bench(ctx):
        for job in jobs:
            await stream_put(ctx, core.command, {
                "mode": MODE_GRAM if job.mode == "gram" else MODE_DIRECT,
                "n": job.n, "k": job.k, "lam": job.lam})
            if not job.want.bad_command:
                for r, row in enumerate(job.rows):
                    for q, value in enumerate(row):
                        final = r == len(job.rows) - 1 and q == len(row) - 1
                        await stream_put(ctx, core.i, {"value": int(value), "last": int(final)})
            ctx.set(core.o.ready, 1)
            out, phases = [], {}
            async for _, _, valid, payload, done, phase in ctx.tick().sample(
                    core.o.valid, core.o.payload, core.done, core.phase):
                phases[Phase(phase)] = phases.get(Phase(phase), 0) + 1
                if valid:
                    out.append((payload.value, payload.last))
                if done:
                    break
            ctx.set(core.o.ready, 0)
            flags = {name: ctx.get(getattr(core, name)) for name in
                     ("npd", "npd_index", "saturated", "bad_command", "cycles", "busy")}
            results.append((out, flags, phases))

    run_simulation(core, bench, deadline=deadline, processes=processes)
    for job, (out, flags, _) in zip(jobs, results, strict=True):
        want = job.want
        assert flags["busy"] == 0
        assert flags["bad_command"] == want.bad_command
        assert flags["npd"] == want.npd
        if want.npd:
            assert flags["npd_index"] == want.npd_index
        assert flags["saturated"] == want.saturated
        if want.x is None:
            assert out == []
        else:
            values = np.array([v for v, _ in out], dtype=np.int64).reshape(job.n, job.k)
            np.testing.assert_array_equal(values, want.x)
            assert [last for _, last in out] == [0] * (job.n * job.k - 1) + [1]
    return results


def make_core(n_max, k_max, fmt, lanes, **kwargs):
    from tiersolve.gen.cholesky import CholeskySolver

    return CholeskySolver(n_max, k_max, fmt, lanes, **kwargs)


def core_cycles(core, n, k, rows=0):
    """``cycle_model`` for the configuration of ``core``."""
    return cycle_model(n, k, core.lanes, rows, rsqrt_latency=core.rsqrt_latency, fmt=core.fmt,
                       inverse_format=core.inverse_format, late_term=core.late_term,
                       n_max=core.n_max, k_max=core.k_max)


def check_schedule(core, jobs):
    """Simulate ``jobs`` (integers compared with the model by :func:`simulate`) and check that
    ``cycle_model`` counts the factorisation and back substitution of each solved job exactly
    (jobs the model flags not positive definite are skipped)."""
    results = simulate(core, jobs, deadline=2e-2)
    for job, (_, _, phases) in zip(jobs, results, strict=True):
        if job.want.npd:
            continue
        assert job.want.x is not None and not job.want.saturated
        want = core_cycles(core, job.n, job.k)
        assert phases[Phase.FACTOR] == want["factor"]
        assert phases[Phase.SOLVE] == want["solve"]


# -- bit-exact tests --------------------------------------------------------------------------


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_direct_random_spd(lanes):
    """Random SPD systems of several sizes, n = 1 and n = n_max included."""
    rng = np.random.default_rng(lanes)
    core = make_core(6, 3, Q6_12, lanes)
    jobs = []
    for n, k in [(1, 1), (6, 3), (4, 2), (5, 1)]:
        jobs.append(Job("direct", n, k, Q6_12.const(0.0), spd_direct(rng, Q6_12, n, k), core))
    jobs.append(Job("direct", 6, 2, Q6_12.const(0.25), spd_direct(rng, Q6_12, 6, 2), core))
    simulate(core, jobs)
    assert all(not job.want.saturated and job.want.x is not None for job in jobs)


def test_gram_random_and_other_format():
    """Gram mode in Q4.10 (pivot inverses in Q7.9) with 4 lanes: several row counts, n + k not
    a multiple of lanes."""
    rng = np.random.default_rng(7)
    core = make_core(7, 2, Q4_10, 4, inverse_format="Q7.9")
    jobs = [
        Job("gram", 7, 2, Q4_10.const(0.125), gram_rows(rng, Q4_10, 7, 2, 9), core),
        Job("gram", 3, 1, Q4_10.const(0.5), gram_rows(rng, Q4_10, 3, 1, 1), core),
        Job("gram", 5, 2, Q4_10.const(0.0625), gram_rows(rng, Q4_10, 5, 2, 6), core),
    ]
    simulate(core, jobs)
    assert all(job.want.x is not None and not job.want.saturated for job in jobs)


def test_edge_cases():
    """Identity, diagonal, rounding ties (nearest-even must be honoured), singular Gram with
    λ = 0, indefinite A, saturation, bad commands; every failure is followed by a job that must
    work."""
    fmt = Q6_12
    rng = np.random.default_rng(3)
    core = make_core(5, 2, fmt, 2)
    eye = np.hstack([fmt.quantise(np.eye(5)).values, fmt.quantise(rng.uniform(-1, 1, (5, 2)))
                     .values])
    diag = np.hstack([fmt.quantise(np.diag([4.0, 0.25, 2.0, 9.0, 1.0])).values,
                      fmt.quantise(rng.uniform(-1, 1, (5, 2))).values])
    indefinite = np.array([[2, 1, 0, 0], [1, 2, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]], float)
    indefinite[3, 2] = indefinite[2, 3] = 0.5
    indefinite_rows = np.hstack([fmt.quantise(indefinite).values, np.zeros((4, 1), np.int64)])
    big = np.hstack([fmt.quantise(np.diag([30.0, 30.0, 30.0])).values,
                     np.full((3, 1), fmt.max_int)])  # X = 31.99 / 30 fits; B·2**f is fine
    tiny = np.hstack([fmt.quantise(np.diag([1e-3, 1.0])).values,
                      np.full((2, 1), fmt.quantise(8.0).values)])  # 1/sqrt(s) clips: flagged
    good = spd_direct(rng, fmt, 5, 2)
    jobs = [
        Job("direct", 5, 2, 0, eye, core),
        Job("direct", 5, 2, 0, diag, core),
        Job("direct", 5, 2, 0, rounding_ties(rng, fmt, 5, 2), core),
        # 3 rows of width 5: G = HᵀH has rank 3 -> a pivot is (rounded to) <= 0
        Job("gram", 5, 1, 0, gram_rows(rng, fmt, 5, 1, 3), core),
        Job("direct", 5, 2, 0, good, core),
        Job("direct", 4, 1, 0, indefinite_rows, core),
        Job("direct", 3, 1, 0, big, core),
        Job("direct", 2, 1, 0, tiny, core),
        Job("direct", 0, 1, 0, np.zeros((0, 1), np.int64), core),
        Job("direct", 6, 1, 0, np.zeros((6, 7), np.int64), core),
        Job("direct", 2, 3, 0, np.zeros((2, 5), np.int64), core),
        Job("gram", 5, 2, fmt.const(0.5), gram_rows(rng, fmt, 5, 2, 4), core),
    ]
    assert jobs[3].want.npd
    assert jobs[5].want.npd and jobs[5].want.npd_index == 2
    assert jobs[7].want.saturated and not jobs[7].want.npd
    assert [j.want.bad_command for j in jobs[8:11]] == [True] * 3
    simulate(core, jobs)


@pytest.mark.parametrize("n_max, k_max, lanes", [(2, 1, 4), (3, 1, 1)])
def test_tiny_configurations(n_max, k_max, lanes):
    """k_max = 1 (zero-bit RHS addresses) and more lanes than rows still work."""
    rng = np.random.default_rng(n_max * 10 + lanes)
    core = make_core(n_max, k_max, Q6_12, lanes)
    simulate(core, [Job("direct", n_max, 1, 0, spd_direct(rng, Q6_12, n_max, 1), core),
                    Job("gram", 1, 1, Q6_12.const(0.5), gram_rows(rng, Q6_12, 1, 1, 3), core)])


def test_gram_saturation_flagged():
    """Large H values overflow the wide Gram words: the flag is set, bit-exact with the model."""
    fmt = FixedFormat(6, 12)
    rng = np.random.default_rng(11)
    core = make_core(3, 1, fmt, 2, guard_bits=2)
    rows = fmt.quantise(rng.uniform(20, 31, (4, 4))).values
    job = Job("gram", 3, 1, fmt.const(1.0), rows, core)
    assert job.want.saturated
    simulate(core, [job, Job("gram", 3, 1, fmt.const(1.0), gram_rows(rng, fmt, 3, 1, 4), core)])


@pytest.mark.parametrize("lanes", [1, 4])
def test_cycle_model_matches_simulation(lanes):
    """The cycle formula used by ``tiersolve bench cholesky`` counts what the gateware does."""
    rng = np.random.default_rng(5)
    core = make_core(9, 3, Q6_12, lanes)
    jobs = [Job("direct", 9, 3, 0, spd_direct(rng, Q6_12, 9, 3), core),
            Job("direct", 4, 2, 0, spd_direct(rng, Q6_12, 4, 2), core)]
    results = simulate(core, jobs)
    for job, (_, _, phases) in zip(jobs, results, strict=True):
        want = core_cycles(core, job.n, job.k)
        assert phases[Phase.FACTOR] == want["factor"]
        assert phases[Phase.SOLVE] == want["solve"]
        assert phases[Phase.OUTPUT] == want["output"]
    m = 3
    job = Job("gram", 5, 2, Q6_12.const(0.5), gram_rows(rng, Q6_12, 5, 2, m), core)
    (_, flags, phases), = simulate(core, [job])
    want = core_cycles(core, 5, 2, rows=m)
    # input phase = clear + m rows, the rows streaming without a gap
    assert flags["cycles"] == (want["clear"] + m * want["gram_per_row"] + want["factor"]
                               + want["solve"] + want["output"])


@pytest.mark.parametrize("n_max, k_max, lanes, jobs_nk", [
    (20, 3, 2, [(20, 3), (11, 1)]),   # long columns: scaling blocks trail the dot products
    (12, 2, 8, [(12, 2), (7, 2)]),    # short columns: steps q = j - 1 stall for the scaling
    # columns j >= 34 with a partial head and a block after it: the head's scaling block
    # comes after the next block's M read only while j is small, so a scaling block that
    # wrote past its head's rows would overwrite M there
    (40, 3, 4, [(40, 3), (39, 1)]),
])
def test_interleaved_schedule(n_max, k_max, lanes, jobs_nk):
    """The factorisation interleaves column j's scaling blocks with its own and column
    j + 1's dot products, and the back substitution overlaps rows: both schedules still give
    the model's integers, and ``cycle_model`` counts their cycles exactly."""
    rng = np.random.default_rng(n_max + lanes)
    core = make_core(n_max, k_max, Q6_12, lanes)
    jobs = [Job("direct", n, k, Q6_12.const(0.125), spd_direct(rng, Q6_12, n, k, cond=50.0),
                core) for n, k in jobs_nk]
    check_schedule(core, jobs)
    schedule = core_cycles(core, *jobs_nk[0])
    assert schedule["factor_pivot_wait"] > 0  # the stall path is exercised


@pytest.mark.parametrize("lanes, late_term", [(1, True), (2, None), (4, False), (4, True)])
def test_back_substitution_late_term(lanes, late_term):
    """The back substitution adds row i + 1's term late, from the subdiagonal and last-row
    buffers (by default from 2 lanes): same integers with it and without it, one-block rows
    wait for X[i + 1, 0] less (k = 1 and 2 make that wait bind), and ``cycle_model`` counts
    both schedules exactly."""
    from tiersolve.gen.cholesky_model import late_term_default

    rng = np.random.default_rng(40 + lanes)
    core = make_core(14, 2, Q6_12, lanes, late_term=late_term)
    assert core.late_term == (lanes >= 2 if late_term is None else late_term)
    assert late_term_default(lanes, late_term) == core.late_term
    jobs = [Job("direct", n, k, Q6_12.const(0.125), spd_direct(rng, Q6_12, n, k, cond=40.0),
                core) for n, k in ((14, 1), (9, 2), (2, 1))]
    jobs.append(Job("gram", 13, 2, Q6_12.const(0.5), gram_rows(rng, Q6_12, 13, 2, 5), core))
    check_schedule(core, jobs)
    kinds = [cycle_model(14, 1, lanes, rsqrt_latency=core.rsqrt_latency, late_term=late)
             for late in (False, True)]
    assert kinds[1]["solve"] < kinds[0]["solve"]


def test_wide_core_broadcast_stage():
    """From 8 lanes the read words pass one more register stage before the bank multiplexers,
    and the fetched words and the broadcast one more before the operand registers: integers
    unchanged, and ``cycle_model`` (whose dot-product delays count both stages) still counts
    the factorisation and the back substitution exactly."""
    from tiersolve.gen.cholesky_model import broadcast_stage, read_stage

    assert broadcast_stage(8) == 1 and broadcast_stage(4) == 0
    assert read_stage(8) == 1 and read_stage(4) == 0 and read_stage(4, 2) == 1
    rng = np.random.default_rng(16)
    core = make_core(20, 3, Q6_12, 16)
    jobs = [Job("direct", 20, 3, Q6_12.const(0.125), spd_direct(rng, Q6_12, 20, 3, cond=30.0),
                core),
            Job("direct", 9, 2, Q6_12.const(0.0), spd_direct(rng, Q6_12, 9, 2), core),
            Job("gram", 20, 3, Q6_12.const(0.25), gram_rows(rng, Q6_12, 20, 3, 3), core)]
    check_schedule(core, jobs)


def test_bank_deeper_than_a_block_ram():
    """A lane's bank deeper than one block RAM is built as chunks whose reads are registered
    one by one (gen/hwmem.py): 26 slots x 32 columns = 832 words, two chunks of 512; the
    results and cycle counts are unchanged."""
    from tiersolve.gen.hwmem import BLOCK_RAM_WORDS

    rng = np.random.default_rng(77)
    core = make_core(24, 2, Q6_12, 1)
    assert -(-(24 + 2) // 1) * 32 > BLOCK_RAM_WORDS
    jobs = [Job("direct", 24, 2, Q6_12.const(0.125), spd_direct(rng, Q6_12, 24, 2, cond=20.0),
                core),
            Job("gram", 21, 2, Q6_12.const(0.25), gram_rows(rng, Q6_12, 21, 2, 4), core)]
    check_schedule(core, jobs)


def test_deep_banks_take_the_read_stage():
    """Banks deeper than one block RAM put the read stage between the chunk and the bank
    multiplexers from 2 lanes (one lane has no bank multiplexer; from 8 lanes every core has
    it): 18 slots x 64 columns = 1,152 words, three chunks; integers unchanged, and
    ``cycle_model`` given the core's n_max and k_max counts the longer dot-product path
    exactly (it differs from the count for a core sized for the job)."""
    from tiersolve.gen.cholesky_model import (
        BANK_CHUNK_WORDS,
        bank_chunks,
        pipeline_delays,
        read_stage,
    )
    from tiersolve.gen.hwmem import BLOCK_RAM_WORDS

    assert BANK_CHUNK_WORDS == BLOCK_RAM_WORDS
    assert [bank_chunks(*c) for c in ((33, 2, 2), (64, 10, 4), (16, 4, 4), (24, 2, 1),
                                      (128, 8, 8))] == [3, 3, 1, 2, 5]
    assert (read_stage(2, 3), read_stage(4, 1), read_stage(1, 3), read_stage(8, 1)) == (
        1, 0, 0, 1)
    at_least_1 = "must be an integer of at least 1, not 0"
    with pytest.raises(ValueError, match=f"bank_chunks: lanes {at_least_1}"):
        bank_chunks(16, 4, 0)
    with pytest.raises(ValueError, match=f"pipeline_delays: chunks {at_least_1}"):
        pipeline_delays(4, chunks=0)
    rng = np.random.default_rng(78)
    core = make_core(33, 2, Q6_12, 2)
    jobs = [Job("direct", 12, 2, Q6_12.const(0.125), spd_direct(rng, Q6_12, 12, 2, cond=20.0),
                core),
            Job("gram", 10, 1, Q6_12.const(0.25), gram_rows(rng, Q6_12, 10, 1, 3), core)]
    assert core_cycles(core, 12, 2) != cycle_model(12, 2, 2, rsqrt_latency=core.rsqrt_latency)
    check_schedule(core, jobs)


@pytest.mark.parametrize("n_max, k_max, lanes", [(20, 3, 2), (12, 2, 8), (24, 2, 1), (33, 2, 2)])
def test_ecp5_block_ram_structure_gives_the_same_results(monkeypatch, n_max, k_max, lanes):
    """On ECP5 the block RAMs of the banks, X, the Gram row and the column buffers are DP16KD
    instances behind a registered write with a bypass (gen/hwmem.py), not simulable here.
    The same structure around a block RAM model (whose read of a word being written returns
    garbage) gives the model's integers and cycle counts."""
    from tiersolve.gen import hwmem

    monkeypatch.setattr(hwmem, "MODEL_ECP5_BLOCK_RAMS", True)
    rng = np.random.default_rng(n_max * lanes)
    core = make_core(n_max, k_max, Q6_12, lanes)
    jobs = [Job("direct", n_max, k_max, Q6_12.const(0.125),
                spd_direct(rng, Q6_12, n_max, k_max, cond=30.0), core),
            Job("gram", n_max - 3, k_max, Q6_12.const(0.25),
                gram_rows(rng, Q6_12, n_max - 3, k_max, 4), core),
            Job("direct", 5, 1, Q6_12.const(0.0), spd_direct(rng, Q6_12, 5, 1), core)]
    check_schedule(core, jobs)


@pytest.mark.parametrize("lanes, jobs_nk", [
    (8, [(13, 3), (9, 2)]),   # heads of 1..4 rows split over lane pairs b, b ^ 4
    (2, [(9, 2), (7, 2)]),    # one-row heads split over lanes 0 and 1
])
def test_split_head_schedule(lanes, jobs_nk):
    """A column's head block (the pivot row and the rows before the whole blocks) that fills
    at most half the lanes splits each row's dot product over a lane and its partner; the
    results stay the model's integers and ``cycle_model`` counts the shorter heads exactly."""
    from tiersolve.gen.cholesky_model import head_is_split, head_steps

    rng = np.random.default_rng(lanes + 40)
    n_max, k_max = max(n for n, _ in jobs_nk), max(k for _, k in jobs_nk)
    core = make_core(n_max, k_max, Q6_12, lanes)
    jobs = [Job("direct", n, k, Q6_12.const(0.125), spd_direct(rng, Q6_12, n, k, cond=30.0),
                core) for n, k in jobs_nk]
    jobs.append(Job("gram", n_max, k_max, Q6_12.const(0.25),
                    gram_rows(rng, Q6_12, n_max, k_max, 3), core))
    for job in jobs:
        split = [j for j in range(job.n) if head_is_split(job.n, job.k, lanes, j)]
        assert len(split) >= 2  # the split path is exercised, with partner steps
        assert any(head_steps(job.n, job.k, lanes, j) < j + 1 for j in split)
    # a pivot that fails in a split head (column 6) is flagged with its index
    n, k = jobs_nk[0]
    failing = spd_direct(rng, Q6_12, n, k)
    failing[6, 6] = -failing[6, 6]
    assert head_is_split(n, k, lanes, 6)
    jobs.insert(1, Job("direct", n, k, 0, failing, core))
    assert jobs[1].want.npd and jobs[1].want.npd_index == 6
    check_schedule(core, jobs)


@pytest.mark.parametrize("fmt, inverse_format, lanes, latencies", [
    (FixedFormat(8, 16), None, 2, (3, 3)),       # the demo's format: both products split
    (FixedFormat(8, 16), "Q8.10", 4, (3, 2)),    # 24 x 18 scaling: two partial products
    (FixedFormat(6, 14), "Q4.20", 1, (3, 3)),    # 20-bit data, 24-bit inverses
])
def test_wide_formats_split_products(fmt, inverse_format, lanes, latencies):
    """Formats wider than one 18x18 multiplier: the dot products and the scaling products are
    cut into registered partial products (longer pipelines); the results stay the model's
    integers (Gram and direct mode, a split head, a failing pivot, a saturating job) and
    ``cycle_model`` still counts every phase exactly."""
    from tiersolve.gen.cholesky_model import multiplier_latencies

    assert multiplier_latencies(fmt, inverse_format) == latencies
    rng = np.random.default_rng(fmt.width + lanes)
    core = make_core(8, 2, fmt, lanes, inverse_format=inverse_format)
    failing = spd_direct(rng, fmt, 6, 1)
    failing[4, 4] = -failing[4, 4]
    tiny = np.hstack([fmt.quantise(np.diag([2 * fmt.resolution, 1.0])).values,  # inv clips
                      np.full((2, 1), fmt.quantise(8.0).values)])
    jobs = [
        Job("direct", 8, 2, fmt.const(0.125), spd_direct(rng, fmt, 8, 2, cond=30.0), core),
        Job("direct", 6, 1, 0, failing, core),
        Job("gram", 7, 2, fmt.const(0.25), gram_rows(rng, fmt, 7, 2, 4), core),
        Job("direct", 2, 1, 0, tiny, core),
        Job("direct", 5, 1, 0, rounding_ties(rng, fmt, 5, 1), core),
    ]
    assert jobs[1].want.npd and jobs[1].want.npd_index == 4
    assert jobs[3].want.saturated
    results = simulate(core, jobs, deadline=2e-2)
    for job, (_, flags, phases) in zip(jobs, results, strict=True):
        if job.want.x is None:
            continue
        want = core_cycles(core, job.n, job.k, rows=len(job.rows) if job.mode == "gram" else 0)
        assert phases[Phase.FACTOR] == want["factor"]
        assert phases[Phase.SOLVE] == want["solve"]
        if job.mode == "gram":
            assert flags["cycles"] == (want["clear"] + len(job.rows) * want["gram_per_row"]
                                       + want["factor"] + want["solve"] + want["output"])


@pytest.mark.parametrize("fmt, lanes", [(Q6_12, 4), (FixedFormat(8, 16), 2), (Q4_10, 1)])
def test_drain_countdown_ends_when_the_pipeline_is_empty(fmt, lanes):
    """The drain states end on a countdown of pipeline_delays' drain lengths: in every cycle
    of a drain its flag must equal "no stage holds a valid step" (Gram, clear, factor and
    back-substitution drains; a failing job between)."""
    rng = np.random.default_rng(lanes)
    core = make_core(6, 2, fmt, lanes)
    failing = spd_direct(rng, fmt, 5, 1)
    failing[3, 3] = -failing[3, 3]
    jobs = [Job("gram", 6, 2, fmt.const(0.25), gram_rows(rng, fmt, 6, 2, 3), core),
            Job("direct", 5, 1, 0, failing, core),
            Job("direct", 4, 2, fmt.const(0.125), spd_direct(rng, fmt, 4, 2), core)]
    assert jobs[1].want.npd
    draining, drain_done, pipeline_empty = core._drain_probe
    seen = []

    async def probe(ctx):
        async for _, _, in_drain, done, empty in ctx.tick().sample(draining, drain_done,
                                                                   pipeline_empty):
            if in_drain:
                seen.append((done, empty))

    simulate(core, jobs, deadline=2e-2, processes=[probe])
    assert sum(done for done, _ in seen) >= 3 + 3 + 2  # drains that ended, one per pass
    assert all(done == empty for done, empty in seen), \
        [index for index, (done, empty) in enumerate(seen) if done != empty][:5]


def test_failed_pivot_flags_its_whole_column():
    """A pivot found not positive while its column is still being issued: the job ends only
    after the column's last s values (here one clips) are computed, as in the model, and the
    next job works."""
    fmt = Q6_12
    n, k = 14, 2
    core = make_core(n, k, fmt, 1)
    a = np.eye(n)
    a[0, 0], a[1, 1], a[1, 0] = 1 / 64, 0.5, 0.125  # L_10 = 1, s_1 = 0.5 - 1 < 0
    a[0, 1] = a[1, 0]
    b = np.zeros((n, k))
    b[0, 1], b[1, 1] = 3.9, -20.0  # the last row's s in column 1 is -20 - 31.2: clips
    failing = Job("direct", n, k, 0, np.hstack([fmt.quantise(a).values,
                                                fmt.quantise(b).values]), core)
    assert failing.want.npd and failing.want.npd_index == 1 and failing.want.saturated
    rng = np.random.default_rng(2)
    simulate(core, [failing, Job("direct", 5, 1, 0, spd_direct(rng, fmt, 5, 1), core)])


# -- parameters and generation ----------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error", [
    ({"n_max": 1}, ValueError), ({"k_max": 0}, ValueError), ({"lanes": 3}, ValueError),
    ({"lanes": 2.0}, TypeError), ({"fmt": FixedFormat(12, 14)}, ValueError),
    ({"fmt": 5}, TypeError), ({"guard_bits": 1}, ValueError), ({"fmt": "Q8.0"}, ValueError),
])
def test_parameters_are_validated(kwargs, error):
    params = {"n_max": 4, "k_max": 2, "fmt": Q6_12, "lanes": 2, "guard_bits": 4, **kwargs}
    with pytest.raises(error):
        check_cholesky_parameters(**params)
    with pytest.raises(error):
        make_core(params["n_max"], params["k_max"], params["fmt"], params["lanes"],
                  guard_bits=params["guard_bits"])


def test_generate_command(tmp_path):
    """``tiersolve generate cholesky -p n_max=16 -p k_max=4 -p lanes=4`` writes Verilog."""
    from tiersolve.host.cli import main

    output = tmp_path / "cholesky.v"
    assert main(["generate", "cholesky", "-p", "n_max=16", "-p", "k_max=4", "-p", "lanes=4",
                 "-o", str(output)]) == 0
    assert "module tiersolve_cholesky" in output.read_text()


# -- Verilator cross-simulation -------------------------------------------------------------


@pytest.mark.verilator
@pytest.mark.parametrize("fmt, k_max", [(Q6_12, 4), (FixedFormat(8, 16), 10)])
def test_verilator_matches_model(fmt, k_max):
    """The generated Verilog of the ``tiersolve generate`` configuration (n_max=16, k_max=4,
    lanes=4, Q6.12) and of the demo's (k_max=10, Q8.16: split multipliers), run in Verilator
    with random stalls on every stream, gives the model's integers for a sequence of jobs:
    Gram, direct, a not-positive-definite one, and more."""
    from tiersolve.gen.cholesky import MODE_DIRECT, MODE_GRAM
    from tiersolve.gen.crosssim import VerilatorSimulation

    core = make_core(16, k_max, fmt, 4)
    rng = np.random.default_rng(21)
    indefinite = spd_direct(rng, fmt, 6, 1)
    indefinite[3, 3] = -indefinite[3, 3]
    jobs = [
        Job("gram", 16, 4, fmt.const(0.25), gram_rows(rng, fmt, 16, 4, 24), core),
        Job("direct", 13, 3, fmt.const(0.0), spd_direct(rng, fmt, 13, 3, cond=100.0), core),
        Job("direct", 6, 1, 0, indefinite, core),
        Job("gram", 9, 2, fmt.const(0.5), gram_rows(rng, fmt, 9, 2, 5), core),
        Job("direct", 16, k_max, fmt.const(0.125), spd_direct(rng, fmt, 16, k_max), core),
    ]
    assert jobs[2].want.npd
    commands, inputs, expected = [], [], []
    for job in jobs:
        commands.append({"mode": MODE_GRAM if job.mode == "gram" else MODE_DIRECT,
                         "n": job.n, "k": job.k, "lam": job.lam})
        flat = job.rows.reshape(-1)
        inputs += [{"value": int(v), "last": int(q == flat.size - 1)} for q, v in enumerate(flat)]
        if job.want.x is not None:
            expected += job.want.x.reshape(-1).tolist()
    simulation = VerilatorSimulation(core, top="tiersolve_cholesky", log=None)
    result = simulation.run({"command": commands, "i": inputs}, expect={"o": len(expected)},
                            ready_seed=1, valid_seed=2, max_cycles=2_000_000, extra_cycles=50)
    values = [payload["value"] for payload in result.values("o")]
    assert values == expected
    assert result.port_value("done") == 1
    assert result.port_value("saturated") == jobs[-1].want.saturated


