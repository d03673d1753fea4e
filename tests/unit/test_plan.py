"""The decision table of one destination's loop (a pure function of state and time)."""

from __future__ import annotations

import pytest

from rrdsync.plan import CHUNK, CLOSE_PASS, DELETIONS, EVENTS, MAX_WAIT, STOP, View, decide

NOW = 100.0

CASES = [
    # what the state is                                             -> what happens
    ("stop wins over everything", View(NOW, stopping=True, next_event=NOW, chunk_ready=True,
                                       pass_complete=True), STOP),
    ("a finished pass is closed first", View(NOW, pass_complete=True, retry_at=NOW + 5),
     CLOSE_PASS),
    ("due events are sent", View(NOW, next_event=NOW - 0.01), EVENTS),
    ("a quarantined path's retry counts as events", View(NOW, next_retry=NOW), EVENTS),
    ("a full-pass chunk is sent when nothing else is due", View(NOW, chunk_ready=True), CHUNK),
    ("events and chunks alternate: after events, a chunk",
     View(NOW, next_event=NOW, chunk_ready=True, last_run="events"), CHUNK),
    ("events and chunks alternate: after a chunk, events",
     View(NOW, next_event=NOW, chunk_ready=True, last_run="chunk"), EVENTS),
    ("deletions wait until nothing else is due", View(NOW, deletions_due=True), DELETIONS),
    ("deletions after a chunk", View(NOW, deletions_due=True, chunk_ready=True), CHUNK),
]


@pytest.mark.parametrize(("what", "view", "action"), CASES, ids=[c[0] for c in CASES])
def test_decision_table(what, view, action):
    assert decide(view) == action


def test_backoff_waits_even_with_work_due():
    a = decide(View(NOW, retry_at=NOW + 0.3, next_event=NOW, chunk_ready=True))
    assert a.kind == "wait" and a.wait == pytest.approx(0.3)


def test_backoff_wait_is_capped_so_the_loop_beats():
    assert decide(View(NOW, retry_at=NOW + 12)).wait == MAX_WAIT


def test_pacing_bounds_the_rate_of_event_batches():
    a = decide(View(NOW, pace_until=NOW + 0.2, next_event=NOW))
    assert a.kind == "wait" and a.wait == pytest.approx(0.2)
    a = decide(View(NOW, pace_until=NOW + 0.2, next_event=NOW + 0.05))
    assert a.kind == "wait" and a.wait == pytest.approx(0.2)


def test_chunks_fill_the_time_between_two_event_batches():
    """Chunk runs are not paced: while the next batch may not start yet, a chunk runs; once
    it may, the batch goes next (a pass never takes a batch's turn)."""
    assert decide(View(NOW, pace_until=NOW + 0.2, next_event=NOW, chunk_ready=True,
                       last_run="events")) == CHUNK
    assert decide(View(NOW, pace_until=NOW + 0.2, next_event=NOW, chunk_ready=True,
                       last_run="chunk")) == CHUNK
    assert decide(View(NOW, pace_until=NOW - 0.01, next_event=NOW, chunk_ready=True,
                       last_run="chunk")) == EVENTS


def test_deletions_are_paced_like_batches():
    a = decide(View(NOW, pace_until=NOW + 0.1, deletions_due=True))
    assert a.kind == "wait" and a.wait == pytest.approx(0.1)


def test_idle_waits_until_the_next_due_time():
    assert decide(View(NOW, next_event=NOW + 0.05)).wait == pytest.approx(0.05)
    assert decide(View(NOW, next_event=NOW + 3, next_retry=NOW + 0.4)).wait == pytest.approx(0.4)
    assert decide(View(NOW)).wait == MAX_WAIT
