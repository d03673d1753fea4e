"""A real publishing process (the real Publisher in a stub worker) and the real server.

The stub heartbeats like the engine; tests kill it, stop it, hang its loop and restart it,
and read what /healthz, /readyz and /metrics say about it. LIVENESS is 1 s, MAX_LAG 2 s.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from rrdsync.status.api import DestinationPublisher, WorkerPublisher
from rrdsync.status.publish import NullDestinationPublisher, NullPublisher, Publisher
from tests.fixtures.status import Dest, Settings, StatusClient

from .conftest import LIVENESS, MAX_LAG

PUBLISH = 1.0  # a state change reaches the file within one timer period (<= 1 s)
DEST = "dest:/srv/rrd"  # the stub's default destination
D = f'destination="{DEST}"'


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
    assert body["destinations"][DEST]["ready"] is False
    w.send("reconciled")
    code, body = client.get("/readyz")
    assert code == 200, body
    assert body["reason"] is None
    assert body["workers"][0]["destinations"][DEST]["initial_reconciliation"]["completed"]
    assert body["destinations"] == {DEST: {"ready": True, "reason": None}}


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
    assert "oldest unsent change" in body["destinations"][DEST]["reason"]
    assert client.code("/healthz") == 200
    w.send("pending 0 0")
    client.wait_code("/readyz", 200, timeout=PUBLISH)
    w.send("batch failed 255 0 0 ssh: connect to host 127.0.0.1 port 9: Connection refused")
    time.sleep(PUBLISH)
    code, body = client.get("/readyz")
    assert code == 200  # failing, but not for longer than MAX_LAG yet
    d = body["workers"][0]["destinations"][DEST]
    assert d["last_error"]["exit_code"] == 255 and d["sends_failing_for_s"] > 0
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
    a.send("failing 1 2 x.rrd")
    m = client.metrics()
    assert m[f"rrdsync_pending_files{{{D}}}"] == 7
    assert m[f"rrdsync_files_sent_total{{{D}}}"] == 3
    assert m[f'rrdsync_batches_total{{{D},result="ok"}}'] == 1
    assert m[f'rrdsync_failing_files{{{D},side="destination"}}'] == 2
    assert m["rrdsync_live"] == 1
    a.kill()
    client.wait_code("/healthz", 503, timeout=LIVENESS + 2)
    m = client.metrics()
    assert f"rrdsync_pending_files{{{D}}}" not in m  # nobody live: no stale backlog
    assert f'rrdsync_failing_files{{{D},side="destination"}}' not in m
    assert m[f"rrdsync_files_sent_total{{{D}}}"] == 3  # history stays
    assert m["rrdsync_live"] == 0 and m['rrdsync_workers{state="not_live"}'] == 1
    assert m[f"rrdsync_destination_ready{{{D}}}"] == 0
    b = stub()
    b.send("pending 2 0.1")
    b.send("batch ok 0 4 400")
    b.send("batch partial 23 1 10 some files failed")
    m = client.metrics()
    assert m[f"rrdsync_pending_files{{{D}}}"] == 2
    assert m[f"rrdsync_files_sent_total{{{D}}}"] == 8
    assert m[f"rrdsync_bytes_sent_total{{{D}}}"] == 710
    assert m[f'rrdsync_rsync_exit_codes_total{{code="23",{D}}}'] == 1
    assert m[f'rrdsync_batches_total{{{D},result="partial"}}'] == 1
    assert m[f"rrdsync_replication_lag_seconds_count{{{D}}}"] == 8
    assert m['rrdsync_workers{state="replaced"}'] == 1


def test_a_sigstopped_workers_gauges_return_when_it_resumes(client, stub):
    w = stub()
    w.send("pending 5 0.1")
    w.signal(signal.SIGSTOP)
    client.wait_code("/healthz", 503, timeout=LIVENESS + 2)
    assert f"rrdsync_pending_files{{{D}}}" not in client.metrics()
    w.signal(signal.SIGCONT)
    client.wait_code("/healthz", 200, timeout=5)
    assert client.metrics()[f"rrdsync_pending_files{{{D}}}"] == 5


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


def test_one_failing_destination_makes_only_itself_unready(client, stub):
    a, b = "a.example:/srv/rrd", "b.example:/srv/rrd"
    w = stub(dests=(a, b))
    w.send(f"@{a} reconciled")
    code, body = client.get("/readyz")
    assert code == 503 and f"{b}: first full reconciliation" in body["reason"]
    assert body["destinations"][a] == {"ready": True, "reason": None}
    w.send(f"@{b} reconciled")
    client.wait_code("/readyz", 200, timeout=PUBLISH)
    w.send(f"@{b} batch failed 12 0 0 rsync: connection unexpectedly closed")
    w.send(f"@{b} pending 3 0.5")
    w.send(f"@{b} activity backoff 8s after: rsync exit 12")
    w.send(f"@{a} batch ok 0 2 20")
    deadline = time.monotonic() + MAX_LAG + 3
    while "sends failing" not in (client.get("/readyz")[1]["reason"] or ""):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    code, body = client.get("/readyz")
    assert code == 503
    assert body["destinations"][a]["ready"] is True
    assert not body["destinations"][b]["ready"]
    assert "connection unexpectedly closed" in body["destinations"][b]["reason"]
    assert a not in body["reason"] and b in body["reason"]
    dest_b = body["workers"][0]["destinations"][b]
    assert dest_b["activity"]["text"] == "backoff 8s after: rsync exit 12"
    m = client.metrics()
    assert m[f'rrdsync_destination_ready{{destination="{a}"}}'] == 1
    assert m[f'rrdsync_destination_ready{{destination="{b}"}}'] == 0
    assert m[f'rrdsync_files_sent_total{{destination="{a}"}}'] == 2
    assert m[f'rrdsync_files_sent_total{{destination="{b}"}}'] == 0
    assert m[f'rrdsync_sends_failing_seconds{{destination="{b}"}}'] > 0
    assert m[f'rrdsync_sends_failing_seconds{{destination="{a}"}}'] == 0
    assert m[f'rrdsync_pending_files{{destination="{b}"}}'] == 3


def test_failing_paths_are_shown_and_source_ones_never_block_readiness(client, stub):
    w = stub()
    w.send("reconciled")
    w.send("failing 3 0 snmp/1/a.rrd snmp/1/b.rrd snmp/2/c.rrd")
    time.sleep(PUBLISH)
    code, body = client.get("/readyz")
    assert code == 200
    shown = body["workers"][0]["destinations"][DEST]["failing_paths"]
    assert shown["source"] == 3 and shown["destination"] == 0
    assert shown["examples"] == ["snmp/1/a.rrd", "snmp/1/b.rrd", "snmp/2/c.rrd"]
    m = client.metrics()
    assert m[f'rrdsync_failing_files{{{D},side="source"}}'] == 3
    assert m[f'rrdsync_failing_files{{{D},side="destination"}}'] == 0
    w.send("failing 0 0")
    time.sleep(PUBLISH)
    shown = client.get("/readyz")[1]["workers"][0]["destinations"][DEST]["failing_paths"]
    assert shown == {"source": 0, "destination": 0, "examples": [], "since": None}


def test_a_journal_problem_makes_the_worker_unready_until_cleared(client, stub):
    w = stub()
    w.send("reconciled")
    client.wait_code("/readyz", 200, timeout=PUBLISH)
    w.send("journal [Errno 28] No space left on device")
    client.wait_code("/readyz", 503, timeout=PUBLISH + 0.5)
    _, body = client.get("/readyz")
    assert "journal not writable: [Errno 28] No space left on device" in body["reason"]
    assert body["destinations"][DEST]["ready"] is True
    assert client.code("/healthz") == 200
    w.send("journal")
    client.wait_code("/readyz", 200, timeout=PUBLISH + 0.5)


def test_publisher_never_raises_even_without_a_usable_run_dir(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    pub = Publisher(Settings(run_dir=blocker / "run"), [Dest("h:/x")])
    pub.start()
    pub.heartbeat()
    d = pub.destination(Dest("h:/x"))
    d.set_pending(3, 1.0)
    d.batch_finished(kind="events", result="ok", exit_code=0, files=1, nbytes=1,
                     duration=0.1, lags=[0.1], error=None)
    pub.rescan_started("startup")
    d.reconcile_finished("startup", 1.0, True)
    d.initial_progress(1, 1, None)
    d.ssh_connected(True)
    d.failing_paths(1, 1, ["a"])
    d.activity("sending 3 files")
    pub.watch_overflow()
    pub.journal_problem("disk full")
    pub.activity("adding watches")
    d.delete_refused("source root is empty")
    pub.close()


def test_methods_before_start_are_harmless():
    pub = Publisher(Settings(run_dir=Path("/nonexistent/run")), [Dest("h:/x")])
    pub.heartbeat()
    pub.destination(Dest("h:/x")).set_pending(1, 0.5)
    assert pub.destination(Dest("h:/x")) is pub.destination(Dest("h:/x"))
    pub.close()


def test_both_publishers_satisfy_the_protocols_with_explicit_methods():
    real = Publisher(Settings(run_dir=Path("/nonexistent/run")), [Dest("h:/x")])
    null = NullPublisher()
    assert isinstance(real, WorkerPublisher) and isinstance(null, WorkerPublisher)
    assert isinstance(real.destination(Dest("h:/x")), DestinationPublisher)
    assert isinstance(null.destination(Dest("h:/x")), NullDestinationPublisher)
    assert isinstance(null.destination(Dest("h:/x")), DestinationPublisher)
    real_dest = type(real.destination(Dest("h:/x")))
    for protocol, classes in ((WorkerPublisher, (Publisher, NullPublisher)),
                              (DestinationPublisher, (real_dest, NullDestinationPublisher))):
        methods = [n for n, v in vars(protocol).items()
                   if callable(v) and not n.startswith("_")]
        assert len(methods) >= 8
        for cls in classes:
            assert "__getattr__" not in vars(cls)
            for name in methods:
                assert name in vars(cls), f"{cls.__name__} lacks {name}"
