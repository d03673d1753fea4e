"""The pending set under a fake clock: coalescing, settle, max delay, batch size."""

from __future__ import annotations

from rrdsync.batch import PendingSet


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(settle=0.5, max_delay=2.0):
    clock = Clock()
    return PendingSet(settle, max_delay, clock=clock, wall=clock), clock


def test_repeated_events_coalesce():
    p, _ = make()
    for _ in range(100):
        p.add("a.rrd")
    assert len(p) == 1


def test_sent_once_quiet_for_settle():
    p, c = make()
    p.add("a.rrd")
    c.t += 0.4
    assert p.take_due(10) == {}
    assert abs(p.next_due_in() - 0.1) < 1e-9
    c.t += 0.1
    assert list(p.take_due(10)) == ["a.rrd"]
    assert len(p) == 0 and p.next_due_in() is None


def test_busy_file_sent_at_max_delay():
    p, c = make()
    p.add("busy.jrb")
    for _ in range(19):  # a change every 0.1 s never lets it settle
        c.t += 0.1
        p.add("busy.jrb")
        assert p.take_due(10) == {}
    c.t += 0.1
    batch = p.take_due(10)
    assert list(batch) == ["busy.jrb"] and batch["busy.jrb"].first == 1000.0


def test_zero_settle_means_at_once():
    p, _ = make(settle=0.0)
    p.add("a.rrd")
    assert list(p.take_due(10)) == ["a.rrd"]


def test_batch_max_limits_and_rest_stays_due():
    p, c = make()
    for i in range(25):
        p.add(f"f{i}.rrd")
    c.t += 1
    assert len(p.take_due(10)) == 10
    assert len(p.take_due(10)) == 10
    assert len(p.take_due(10)) == 5
    assert len(p) == 0


def test_requeue_keeps_first_change_time():
    p, c = make()
    p.add("a.rrd")
    c.t += 1
    batch = p.take_due(10)
    c.t += 5
    p.requeue(batch)
    assert p.oldest_age() == 6
    assert "a.rrd" in p.take_due(10)  # overdue: its max delay passed long ago


def test_requeue_merges_with_a_newer_change():
    p, c = make()
    p.add("a.rrd")
    c.t += 1
    batch = p.take_due(10)
    p.add("a.rrd")  # changed again while being sent
    p.requeue(batch)
    assert len(p) == 1 and p.oldest_age() == 1  # the older first change still counts


def test_journal_replay_is_due_at_once():
    p, _ = make()
    p.add_many(["a", "b"], due_now=True)
    assert set(p.take_due(10)) == {"a", "b"}


def test_changed_flag_for_journal():
    p, c = make()
    assert not p.take_changed()
    p.add("a")
    assert p.take_changed() and not p.take_changed()
    p.add("a")  # same path again: the set did not change
    assert not p.take_changed()
    c.t += 1
    p.take_due(1)
    assert p.take_changed()


def test_large_backlog_is_cheap(monkeypatch):
    """Draining a 200k backlog pops each record once: no stale records, no rescans of
    the whole set per batch (what made it cheap is what this counts, not a timing)."""
    import heapq

    import rrdsync.batch as batch_mod

    pops = 0

    class CountingHeapq:
        heappush = staticmethod(heapq.heappush)
        heapify = staticmethod(heapq.heapify)
        heapreplace = staticmethod(heapq.heapreplace)

        @staticmethod
        def heappop(heap):
            nonlocal pops
            pops += 1
            return heapq.heappop(heap)

    monkeypatch.setattr(batch_mod, "heapq", CountingHeapq)
    p, c = make()
    for i in range(200_000):
        p.add(f"snmp/{i % 1000}/if/ds{i}.rrd")
        p.add(f"snmp/{i % 1000}/if/ds{i}.rrd")  # a second event adds no record
    assert p.records() == 200_000
    c.t += 10
    total = 0
    while batch := p.take_due(5000):
        total += len(batch)
    assert total == 200_000 and pops == 200_000 and p.records() == 0


def test_memory_follows_pending_paths_not_events_during_an_outage():
    """A simulated hour of outage at 20k files, each rewritten every 300 s (about 67
    events per second), while the sender keeps taking batches that fail and are put
    back: heap records stay within 2 x the pending paths (issue: ~182k records per hour
    before)."""
    p, c = make(settle=0.1, max_delay=2.0)
    files = [f"snmp/{i // 50}/if{i % 50}/ds.rrd" for i in range(20_000)]
    step = 300 / len(files)  # one file rewritten every 15 ms: 20k files per 300 s
    worst = 0.0
    next_try = c.t
    for n in range(int(3600 / step)):
        c.t += step
        p.add(files[n % len(files)])
        if c.t >= next_try:  # every 15 s the destination is tried, and fails
            batch = p.take_due(5000)
            c.t += 0.05
            p.requeue(batch)
            next_try = c.t + 15
        if n % 97 == 0:
            worst = max(worst, p.records() / max(1, len(p)))
    assert len(p) == 20_000
    assert p.records() <= 2 * len(p) + 64
    assert worst <= 2 + 64 / 20_000 + 1e-9


def test_requeue_keeps_the_older_first_change_and_sends_it_sooner():
    p, c = make(settle=0.5, max_delay=2.0)
    p.add("a.rrd")
    c.t += 0.5
    batch = p.take_due(10)
    c.t += 1.5
    p.add("a.rrd")  # changed again while the failed batch was in flight
    assert p.next_due_in() == 0.5  # as a fresh change: settle
    p.requeue(batch)
    assert p.oldest_age() == 2.0
    assert p.next_due_in() == 0.0  # its first change is max_delay old: due now
    assert list(p.take_due(10)) == ["a.rrd"]
