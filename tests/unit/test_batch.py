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


def test_large_backlog_is_cheap():
    p, c = make()
    for i in range(200_000):
        p.add(f"snmp/{i % 1000}/if/ds{i}.rrd")
    c.t += 10
    total = 0
    while True:
        batch = p.take_due(5000)
        if not batch:
            break
        total += len(batch)
    assert total == 200_000
