"""Failure state: destination backoff, per-path quarantine, what counts as unsent."""

from __future__ import annotations

import random

from rrdsync.batch import Entry
from rrdsync.failures import DEST_BACKOFF_CAP, PATH_BACKOFF_CAP, Failures


def make() -> Failures:
    return Failures(rng=random.Random(1))


def test_destination_backoff_doubles_and_is_capped():
    f = make()
    delays = [f.run_failed("down", 0.0) for _ in range(10)]
    assert delays[1] > delays[0] and max(delays) <= DEST_BACKOFF_CAP
    assert f.failing_since == 0.0 and f.consecutive == 10
    assert f.run_succeeded() and f.retry_at == 0 and f.failing_since is None
    assert not f.run_succeeded()


def test_a_failing_path_is_quarantined_with_its_own_backoff():
    f = make()
    e = Entry(10.0, 10.0, 1000.0)
    assert f.path_failed("a.rrd", "destination", "mkstemp failed", e, now=20.0)  # starts
    assert not f.path_failed("a.rrd", "destination", "mkstemp failed", e, now=30.0)  # again
    assert f.quarantined("a.rrd", 30.0) and not f.quarantined("b.rrd", 30.0)
    assert f.paths["a.rrd"].attempts == 2
    assert f.due_retries(30.0, 10) == {}
    retry_at = f.paths["a.rrd"].retry_at
    assert 30.0 < retry_at <= 30.0 + PATH_BACKOFF_CAP
    assert f.next_retry() == retry_at
    assert list(f.due_retries(retry_at, 10)) == ["a.rrd"]
    assert f.quarantined("a.rrd", retry_at)  # in flight: not taken twice
    f.release("a.rrd", retry_at + 1)  # its run did not complete: retried with the batch
    assert not f.quarantined("a.rrd", retry_at + 1)
    assert f.path_cleared("a.rrd") is not None and f.path_cleared("a.rrd") is None


def test_a_new_change_waits_with_the_quarantined_path_keeping_the_oldest():
    f = make()
    f.path_failed("a.rrd", "destination", "x", Entry(10.0, 10.0, 1000.0), now=20.0)
    f.hold("a.rrd", Entry(25.0, 25.0, 1015.0))
    assert f.paths["a.rrd"].entry.first == 10.0


def test_only_destination_side_failures_are_unsent():
    """A source path we may not read is reported, not the destination's lag."""
    f = make()
    f.path_failed("src.rrd", "source", "Permission denied", Entry(1.0, 1.0, 1.0), now=2.0)
    f.path_failed("dst.rrd", "destination", "mkstemp", Entry(3.0, 3.0, 3.0), now=4.0)
    assert f.counts() == (1, 1)
    assert [e.first for e in f.unsent()] == [3.0]
    assert f.examples() == ["dst.rrd", "src.rrd"]
