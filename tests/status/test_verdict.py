"""The rules of /healthz and /readyz as pure functions (no files, no processes)."""

from __future__ import annotations

from typing import Any

from rrdsync.status.state import DestinationState, WorkerState
from rrdsync.status.verdict import evaluate

NOW = 1_000_000.0
SINCE = NOW - 100
A, B = "a.example:/srv/rrd", "[fd00::5]:/srv/rrd"


def dest(label: str = A, **kw: Any) -> DestinationState:
    return DestinationState(**{"label": label, "reconciled": True, **kw})


def worker(ident: str = "host-1", started: float = NOW - 50, pid: int = 10,
           dests: list[DestinationState] | None = None, **kw: Any) -> WorkerState:
    base: dict[str, Any] = dict(
        key=f"{ident}-{int(started * 1000)}-{pid}", identity=ident, pid=pid, hostname="host",
        started=started, written=NOW - 0.5, checkin=NOW - 0.5)
    base.update(kw)
    chosen = [dest()] if dests is None else dests
    return WorkerState(**base, destinations={d.label: d for d in chosen})


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
    assert r.destinations()[A].ready


def test_silent_worker_goes_stale_even_if_it_wrote_recently():
    # The timer thread kept writing, but the sync loop stopped checking in.
    r = judge(worker(checkin=NOW - 11, written=NOW - 0.2))
    assert not r.live and not r.ready
    assert "no check-in for 11.0s" in r.reason("healthz")
    assert not r.destinations()[A].ready


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
    r = judge(worker(dests=[dest(reconciled=False, initial={"files_checked": 5, "total": 9})]))
    assert r.live and not r.ready
    assert (f"{A}: first full reconciliation not completed yet (5/9 checked)"
            in r.reason("readyz"))


def test_failing_sends_make_unready_only_after_max_lag():
    err = {"message": "ssh: connect to host 127.0.0.1 port 22: Connection refused"}
    assert judge(worker(dests=[dest(failing_since=NOW - 59, last_error=err)])).ready
    r = judge(worker(dests=[dest(failing_since=NOW - 61, last_error=err)]))
    assert r.live and not r.ready
    assert "sends failing for 1m01s" in r.reason("readyz")
    assert "Connection refused" in r.reason("readyz")


def test_old_backlog_makes_unready():
    assert judge(worker(dests=[dest(pending=3, oldest_pending_since=NOW - 59)])).ready
    r = judge(worker(dests=[dest(pending=3, oldest_pending_since=NOW - 61)]))
    assert not r.ready and "oldest unsent change is 1m01s old" in r.reason("readyz")
    # no pending files: an old timestamp means nothing
    assert judge(worker(dests=[dest(pending=0, oldest_pending_since=NOW - 600)])).ready


def test_each_destination_is_judged_on_its_own():
    err = {"message": "rsync: connection unexpectedly closed"}
    r = judge(worker(dests=[dest(A), dest(B, failing_since=NOW - 61, last_error=err,
                                         pending=2, oldest_pending_since=NOW - 61)]))
    assert r.live and not r.ready
    per = r.destinations()
    assert per[A].ready and per[A].reasons == []
    assert not per[B].ready and len(per[B].reasons) == 2
    reason = r.reason("readyz")
    assert f"{B}: sends failing" in reason and A not in reason
    detail = r.workers[0].detail(NOW)
    assert detail["destinations"][A]["ready"] is True
    assert detail["destinations"][B]["reason"].startswith("sends failing for 1m01s")
    assert detail["pending_files"] == 2 and detail["last_error"]["destination"] == B


def test_source_side_failing_paths_never_make_unready():
    failing = {"source": 12, "destination": 0, "examples": ["snmp/1/a.rrd"], "since": NOW}
    r = judge(worker(dests=[dest(failing_paths=failing)]))
    assert r.ready
    shown = r.workers[0].detail(NOW)["destinations"][A]["failing_paths"]
    assert shown["source"] == 12 and shown["examples"] == ["snmp/1/a.rrd"]


def test_destination_side_failing_paths_count_through_the_backlog():
    failing = {"source": 0, "destination": 2, "examples": ["x.rrd", "y.rrd"], "since": NOW}
    # the engine counts them as unsent: pending and the age of the oldest unsent change
    young = dest(failing_paths=failing, pending=2, oldest_pending_since=NOW - 30)
    assert judge(worker(dests=[young])).ready
    old = dest(failing_paths=failing, pending=2, oldest_pending_since=NOW - 61)
    r = judge(worker(dests=[old]))
    assert not r.ready
    assert "2 files pending (2 of them unwritable at the destination)" in r.reason("readyz")


def test_a_journal_problem_makes_the_worker_unready_with_the_error():
    problem = {"error": "[Errno 28] No space left on device", "since": NOW - 5}
    r = judge(worker(journal_problem=problem))
    assert r.live and not r.ready
    assert "journal not writable: [Errno 28] No space left on device" in r.reason("readyz")
    assert r.destinations()[A].ready  # the destination itself is fine


def test_a_worker_without_destinations_is_not_ready():
    r = judge(worker(dests=[]))
    assert r.live and not r.ready and "no destination" in r.reason("readyz")


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
