"""How a destination sizes its next full-pass run: the last run's rate, today's target."""

from __future__ import annotations

from rrdsync.replica import (
    CHUNK_BYTES,
    CHUNK_FILES,
    CHUNK_MAX_BYTES,
    CHUNK_MAX_FILES,
    RunRate,
    run_limits,
)


def test_the_first_run_is_one_walker_chunk():
    assert run_limits(None, 3.0) == (CHUNK_FILES, CHUNK_BYTES)


def test_a_first_sync_grows_runs_towards_the_target():
    # 133 files (2 MiB) sent in 0.08 s, aiming at 3 s: ~37x more of both
    files, size = run_limits(RunRate.measured(133, 2 << 20, True, 0.08), 3.0)
    assert 4900 <= files <= 5000 and 70 << 20 <= size <= 80 << 20


def test_a_few_changed_files_do_not_pin_the_run_at_one_chunk():
    """A pass during updates: most files unchanged, one or two sent per run. The listed
    bytes scale like the files (they were bounded by the few sent bytes before)."""
    files, size = run_limits(RunRate.measured(500, 8 << 20, True, 0.05), 0.25)
    assert files == 2500 and size == 40 << 20


def test_runs_shrink_as_soon_as_changes_flow():
    """The same rate, measured while quiet, sizes a run for the quarter-second target once
    changes flow: a pass that started quiet does not hold back the first batches."""
    rate = RunRate.measured(20_000, 700 << 20, True, 2.5)
    quiet, busy = run_limits(rate, 3.0), run_limits(rate, 0.25)
    assert quiet[0] == CHUNK_MAX_FILES and busy[0] == 2000 and busy[1] == 70 << 20


def test_unchanged_files_are_bounded_by_count_only():
    assert run_limits(RunRate.measured(500, 8 << 20, False, 0.05), 3.0)[1] == CHUNK_MAX_BYTES


def test_bounds_hold_both_ways():
    assert run_limits(RunRate.measured(20_000, 1 << 30, True, 0.01), 3.0) == (
        CHUNK_MAX_FILES, CHUNK_MAX_BYTES)
    assert run_limits(RunRate.measured(500, 2 << 20, True, 30.0), 0.25) == (
        CHUNK_FILES, CHUNK_BYTES)
