"""A real publishing process (the real Publisher in a stub worker) and the real server.

The stub heartbeats like the engine; tests kill it, stop it, hang its loop and restart it,
and read what /healthz, /readyz and /metrics say about it. LIVENESS is 1 s, MAX_LAG 2 s.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from rrdsync.config import Destination, SidecarConfig
from rrdsync.status.publish import Publisher
from tests.fixtures.status import StatusClient

from .conftest import LIVENESS, MAX_LAG

PUBLISH = 1.0  # a state change reaches the file within one timer period (<= 1 s)


def test_no_worker_means_503_on_both_probes_with_json(client: StatusClient):
    for path in ("/healthz", "/readyz"):
        code, body = client.get(path)
        assert code == 503
        assert body["status"] == "fail" and body["workers"] == []
        assert "no worker" in body["reason"]


def test_lifecycle_live_then_ready_after_first_reconciliation(client: StatusClient, stub):
    w = stub()
    assert client.code("/healthz") == 200
    code, body = client.get("/readyz")
    assert code == 503
    assert "first full reconciliation not completed" in body["reason"]
    (detail,) = body["workers"]
    assert detail["pid"] == w.proc.pid and detail["live"] and not detail["ready"]
    w.send("reconciled")
    code, body = client.get("/readyz")
    assert code == 200, body
    assert body["reason"] is None and body["workers"][0]["initial_reconciliation"][
        "completed"]


def test_sigkill_goes_stale_within_timeout_and_a_restart_replaces_it(client, stub, run_dir):
    old = stub()
    old.send("reconciled")
    client.wait_code("/healthz", 200, timeout=5)
    old.kill()
    took = client.wait_code("/healthz", 503, timeout=LIVENESS + 2)
    assert took <= LIVENESS + 2
    code, body = client.get("/healthz")
    assert "no check-in" in body["reason"]
    new = stub()
    code, body = client.get("/healthz")
    assert code == 200, body
    assert [w["pid"] for w in body["workers"]] == [new.proc.pid]
    assert [r["key"] for r in body["replaced_workers"]] == [old.key]
    # the predecessor's file is still there: nothing was deleted to get here
    assert (run_dir / "health" / f"worker-{old.key}.json").exists()


def test_sigstopped_worker_is_not_live_until_continued(client, stub):
    w = stub()
    w.send("reconciled")
    w.signal(signal.SIGSTOP)
    client.wait_code("/healthz", 503, timeout=LIVENESS + 2)
    assert client.code("/readyz") == 503
    w.signal(signal.SIGCONT)
    client.wait_code("/healthz", 200, timeout=5)
    client.wait_code("/readyz", 200, timeout=5)


def test_hung_sync_loop_is_not_live_although_the_timer_still_writes(client, stub, run_dir):
    w = stub()
    path = run_dir / "health" / f"worker-{w.key}.json"
    w.send("hang")
    client.wait_code("/healthz", 503, timeout=LIVENESS + 2)
    before = path.stat().st_mtime
    time.sleep(0.6)
    assert path.stat().st_mtime > before  # the timer thread is alive; the loop is not
    w.send("beat")
    client.wait_code("/healthz", 200, timeout=5)


def test_old_backlog_and_long_failing_sends_make_unready(client, stub):
    w = stub()
    w.send("reconciled")
    client.wait_code("/readyz", 200, timeout=5)
    w.send("pending 4 3.5")
    client.wait_code("/readyz", 503, timeout=PUBLISH)  # state reaches the file each tick
    code, body = client.get("/readyz")
    assert "oldest unsent change" in body["reason"]
    assert body["workers"][0]["pending_files"] == 4
    assert body["workers"][0]["oldest_pending_age_s"] >= 3.5
    assert client.code("/healthz") == 200
    w.send("pending 0 0")
    client.wait_code("/readyz", 200, timeout=PUBLISH)
    w.send("batch failed 255 0 0 ssh: connect to host 127.0.0.1 port 9: Connection refused")
    time.sleep(PUBLISH)
    code, body = client.get("/readyz")
    assert code == 200  # failing, but not for longer than MAX_LAG yet
    assert body["workers"][0]["last_error"]["exit_code"] == 255
    assert body["workers"][0]["sends_failing_for_s"] > 0
    client.wait_code("/readyz", 503, timeout=MAX_LAG + 2)
    code, body = client.get("/readyz")
    assert "sends failing" in body["reason"] and "Connection refused" in body["reason"]
    w.send("batch ok 0 2 100")
    client.wait_code("/readyz", 200, timeout=PUBLISH)
    code, body = client.get("/readyz")
    assert body["workers"][0]["last_success"] is not None


def test_gauges_of_a_dead_worker_vanish_and_counters_survive_restarts(client, stub):
    a = stub()
    a.send("pending 7 0.5")
    a.send("batch ok 0 3 300")
    m = client.metrics()
    assert m["rrdsync_pending_files"] == 7
    assert m["rrdsync_files_sent_total"] == 3
    assert m['rrdsync_batches_total{result="ok"}'] == 1
    assert m["rrdsync_live"] == 1
    a.kill()
    client.wait_code("/healthz", 503, timeout=LIVENESS + 2)
    m = client.metrics()
    assert "rrdsync_pending_files" not in m  # nobody live: no stale backlog
    assert m["rrdsync_files_sent_total"] == 3  # history stays
    assert m["rrdsync_live"] == 0 and m['rrdsync_workers{state="not_live"}'] == 1
    b = stub()
    b.send("pending 2 0.1")
    b.send("batch ok 0 4 400")
    b.send("batch partial 23 1 10 some files failed")
    m = client.metrics()
    assert m["rrdsync_pending_files"] == 2
    assert m["rrdsync_files_sent_total"] == 8
    assert m["rrdsync_bytes_sent_total"] == 710
    assert m['rrdsync_rsync_exit_codes_total{code="23"}'] == 1
    assert m['rrdsync_batches_total{result="partial"}'] == 1
    assert m["rrdsync_replication_lag_seconds_count"] == 8
    assert m['rrdsync_workers{state="replaced"}'] == 1


def test_a_sigstopped_workers_gauges_return_when_it_resumes(client, stub):
    w = stub()
    w.send("pending 5 0.1")
    w.signal(signal.SIGSTOP)
    client.wait_code("/healthz", 503, timeout=LIVENESS + 2)
    assert "rrdsync_pending_files" not in client.metrics()
    w.signal(signal.SIGCONT)
    client.wait_code("/healthz", 200, timeout=5)
    assert client.metrics()["rrdsync_pending_files"] == 5


def test_two_workers_on_different_trees_are_both_required(client, stub):
    a = stub(source="/data-a")
    b = stub(source="/data-b")
    code, body = client.get("/healthz")
    assert code == 200 and len(body["workers"]) == 2
    b.kill()
    client.wait_code("/healthz", 503, timeout=LIVENESS + 2)
    code, body = client.get("/healthz")
    assert str(b.proc.pid) in body["reason"] and str(a.proc.pid) not in body["reason"]


def test_clean_close_marks_the_worker_stopped(client, stub):
    w = stub()
    w.send("exit")
    w.proc.wait(timeout=5)
    code, body = client.get("/healthz")
    assert code == 503 and "stopped" in body["reason"]


def test_health_period_variable_from_the_environment_does_not_break_publishing(client, stub):
    w = stub(env={"PY_HEALTH_RUN_PERIOD": "5"})
    time.sleep(LIVENESS + 0.5)
    assert client.code("/healthz") == 200
    assert w.proc.poll() is None


def test_publisher_never_raises_even_without_a_usable_run_dir(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    pub = Publisher(SidecarConfig(run_dir=blocker / "run", dests=(Destination(path="/d"),)))
    pub.start()
    pub.heartbeat()
    pub.set_pending(3, 1.0)
    pub.batch_finished(kind="events", result="ok", exit_code=0, files=1, nbytes=1,
                       duration=0.1, lags=[0.1], error=None)
    pub.reconcile_started("startup")
    pub.reconcile_finished("startup", 1.0, True)
    pub.initial_progress(1, 1, None)
    pub.ssh_connected(True)
    pub.watch_overflow()
    pub.delete_refused("source root is empty")
    pub.close()


def test_methods_before_start_are_harmless():
    pub = Publisher(SidecarConfig(run_dir=Path("/nonexistent/run"),
                                  dests=(Destination(path="/d"),)))
    pub.heartbeat()
    pub.set_pending(1, 0.5)
    pub.close()
