"""The rules of /healthz and /readyz as pure functions (no files, no processes)."""

from __future__ import annotations

from rrdsync.status.state import WorkerState
from rrdsync.status.verdict import evaluate

NOW = 1_000_000.0
SINCE = NOW - 100


def worker(ident: str = "host-1", started: float = NOW - 50, pid: int = 10,
           **kw) -> WorkerState:
    base = dict(key=f"{ident}-{int(started * 1000)}-{pid}", identity=ident, pid=pid,
                hostname="host", started=started, written=NOW - 0.5, checkin=NOW - 0.5,
                reconciled=True)
    base.update(kw)
    return WorkerState(**base)


def judge(*states: WorkerState, timeout: float = 10, max_lag: float = 60):
    return evaluate(list(states), now=NOW, since=SINCE, liveness_timeout=timeout,
                    max_lag=max_lag)


def test_no_worker_is_neither_live_nor_ready():
    r = judge()
    assert not r.live and not r.ready
    assert "no worker" in r.reason("healthz") and "no worker" in r.reason("readyz")


def test_healthy_worker_is_live_and_ready():
    r = judge(worker())
    assert r.live and r.ready and r.reason("readyz") is None


def test_silent_worker_goes_stale_even_if_it_wrote_recently():
    # The timer thread kept writing, but the sync loop stopped checking in.
    r = judge(worker(checkin=NOW - 11, written=NOW - 0.2))
    assert not r.live and not r.ready
    assert "no check-in for 11.0s" in r.reason("healthz")


def test_a_cleanly_stopped_worker_alone_means_no_worker():
    r = judge(worker(stopped=True))
    assert not r.live and r.workers == []
    assert "stopped cleanly" in r.reason("healthz")


def test_a_finished_once_beside_a_running_worker_leaves_the_worker_in_charge():
    running = worker(started=NOW - 50, pid=10)
    once = worker(started=NOW - 10, pid=11, stopped=True)
    r = judge(running, once)
    assert r.live and [w.state.key for w in r.workers] == [running.key]
    assert [s.key for s in r.stopped] == [once.key]


def test_a_dead_worker_followed_by_a_clean_stop_is_replaced():
    dead = worker(started=NOW - 90, pid=7, checkin=NOW - 60)
    clean = worker(started=NOW - 40, pid=8, stopped=True)
    r = judge(dead, clean)
    assert r.workers == [] and [s.key for s in r.replaced] == [dead.key]
    assert "stopped cleanly" in r.reason("healthz")


def test_not_ready_until_first_reconciliation():
    r = judge(worker(reconciled=False, initial={"files_checked": 5, "total": 9}))
    assert r.live and not r.ready
    assert "first full reconciliation not completed yet (5/9 checked)" in r.reason("readyz")


def test_failing_sends_make_unready_only_after_max_lag():
    err = {"message": "ssh: connect to host 127.0.0.1 port 22: Connection refused"}
    assert judge(worker(failing_since=NOW - 59, last_error=err)).ready
    r = judge(worker(failing_since=NOW - 61, last_error=err))
    assert r.live and not r.ready
    assert "sends failing for 1m01s" in r.reason("readyz")
    assert "Connection refused" in r.reason("readyz")


def test_old_backlog_makes_unready():
    assert judge(worker(pending=3, oldest_pending_since=NOW - 59)).ready
    r = judge(worker(pending=3, oldest_pending_since=NOW - 61))
    assert not r.ready and "oldest unsent change is 1m01s old" in r.reason("readyz")
    # no pending files: an old timestamp means nothing
    assert judge(worker(pending=0, oldest_pending_since=NOW - 600)).ready


def test_restarted_worker_replaces_its_predecessor():
    dead = worker(started=NOW - 90, pid=7, checkin=NOW - 60, written=NOW - 60)
    new = worker(started=NOW - 5, pid=7)
    r = judge(dead, new)
    assert r.live and [w.state.key for w in r.workers] == [new.key]
    assert [s.key for s in r.replaced] == [dead.key]
    # the predecessor's file alone would make it fail: it is not hidden
    assert not judge(dead).live


def test_files_from_before_the_server_started_are_ignored():
    old = worker(written=SINCE - 1, checkin=SINCE - 1)
    assert judge(old).workers == []


def test_every_distinct_worker_must_be_live():
    a = worker("host-aaaa")
    b = worker("host-bbbb", checkin=NOW - 30)
    r = judge(a, b)
    assert not r.live
    assert "host-bbbb" in r.reason("healthz") and "host-aaaa" not in r.reason("healthz")
    assert r.live_keys() == {a.key}
