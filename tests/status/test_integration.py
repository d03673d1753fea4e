"""Real worker (``rrdsync run``) + real status server (``rrdsync serve``) + real sshd.

These check the contract from the outside, as an orchestrator and Prometheus would: the
probes while syncing, while the destination is down, after SIGKILL, SIGSTOP and restart,
and that the counters agree with what the worker reports it sent.
"""

from __future__ import annotations

import signal
import time

import pytest

from rrdsync.status.metrics import exported_names
from tests.fixtures.rrd import make_tree, rrd_update, wait_for, wait_identical

pytestmark = pytest.mark.slow

LIVENESS = 3.0
MAX_LAG = 3.0


@pytest.fixture
def env(worker_env, sshd):
    return {**worker_env, **sshd.env(), "RRDSYNC_LIVENESS_TIMEOUT": f"{LIVENESS}s",
            "RRDSYNC_MAX_LAG": f"{MAX_LAG}s"}


def total(m: dict[str, float], name: str) -> float | None:
    """A metric summed over its series (every destination); None when absent."""
    values = [v for k, v in m.items() if k == name or k.startswith(name + "{")]
    return sum(values) if values else None


def sent_by_worker(events: list[dict]) -> tuple[int, int]:
    """Files and bytes the worker's own log says reached the destination."""
    files = nbytes = 0
    for e in events:
        if e.get("event") == "batch_sent":  # every rsync run: event batches and full-pass chunks
            files += int(e.get("files", 0))
            nbytes += int(e.get("bytes", 0))
    return files, nbytes


def test_live_and_ready_while_syncing_and_counters_match(env, source, sshd, start_worker,
                                                         start_status):
    files = make_tree(source, nodes=2, resources=2, files=2)
    _, status = start_status(env)
    worker = start_worker(env)
    status.wait_code("/readyz", 200, timeout=30)
    wait_identical(source, sshd.dest)
    for _ in range(3):
        for f in files[:4]:
            rrd_update(f)
        time.sleep(0.3)
        assert status.code("/healthz") == 200
        assert status.code("/readyz") == 200
    wait_identical(source, sshd.dest)
    code, body = status.get("/readyz")
    assert code == 200 and body["status"] == "ok" and body["reason"] is None
    (w,) = body["workers"]
    assert w["pid"] == worker.proc.pid and w["last_success"] is not None
    (d,) = w["destinations"].values()
    assert d["initial_reconciliation"]["completed"] is True
    assert w["last_error"] is None and d["ready"] is True
    (label,) = w["destinations"]
    assert "@" not in label and label == sshd.destination.split("@", 1)[1]
    dl = f'destination="{label}"'

    def counted() -> dict[str, float] | None:
        m = status.metrics()
        want = sent_by_worker(worker.events())
        got = (total(m, "rrdsync_files_sent_total"), total(m, "rrdsync_bytes_sent_total"))
        return m if got == want and total(m, "rrdsync_pending_files") == 0 else None

    m = wait_for(counted, timeout=10, what="metrics to match the worker's log")
    assert m[f"rrdsync_files_sent_total{{{dl}}}"] >= len(files) + 4
    assert m[f'rrdsync_batches_total{{{dl},result="ok"}}'] >= 2
    assert m[f'rrdsync_batches_total{{{dl},result="failed"}}'] == 0
    assert m['rrdsync_rescans_total{reason="startup"}'] == 1
    assert m[f"rrdsync_replication_lag_seconds_count{{{dl}}}"] >= 4
    assert m[f"rrdsync_last_success_timestamp_seconds{{{dl}}}"] > time.time() - 60
    assert m["rrdsync_live"] == 1 and m["rrdsync_ready"] == 1
    assert m[f"rrdsync_initial_sync_completed{{{dl}}}"] == 1
    assert m[f"rrdsync_destination_ready{{{dl}}}"] == 1
    # what the dashboard and alert tests validate against is what a real worker exports
    scraped = {key.split("{")[0] for key in m}
    assert exported_names() <= scraped, exported_names() - scraped


def test_readyz_503_while_destination_down_longer_than_max_lag(env, source, sshd,
                                                               start_worker, start_status):
    files = make_tree(source, nodes=1, resources=1, files=2)
    _, status = start_status(env)
    start_worker(env)
    status.wait_code("/readyz", 200, timeout=30)
    sshd.stop()
    rrd_update(files[0])
    status.wait_code("/readyz", 503, timeout=MAX_LAG + 15)
    _, body = status.get("/readyz")
    assert body["reason"] and ("sends failing" in body["reason"]
                               or "oldest unsent change" in body["reason"])
    (w,) = body["workers"]
    assert w["pending_files"] >= 1 and w["last_error"] is not None
    assert status.code("/healthz") == 200  # alive, just behind
    assert status.metrics()["rrdsync_ready"] == 0
    (d,) = body["destinations"].values()
    assert d["ready"] is False
    sshd.start()
    status.wait_code("/readyz", 200, timeout=60)
    wait_identical(source, sshd.dest)


def test_healthz_503_after_sigkill_and_200_after_restart(env, source, sshd, start_worker,
                                                         start_status):
    make_tree(source, nodes=1, resources=1, files=1)
    _, status = start_status(env)
    worker = start_worker(env)
    status.wait_code("/healthz", 200, timeout=20)
    worker.signal(signal.SIGKILL)
    killed = time.monotonic()
    status.wait_code("/healthz", 503, timeout=LIVENESS + 5)
    assert time.monotonic() - killed <= LIVENESS + 2
    assert status.code("/readyz") == 503
    restarted = start_worker(env)
    status.wait_code("/healthz", 200, timeout=20)
    _, body = status.get("/healthz")
    assert [w["pid"] for w in body["workers"]] == [restarted.proc.pid]
    assert len(body["replaced_workers"]) == 1
    status.wait_code("/readyz", 200, timeout=30)


def test_sigstopped_worker_is_reported_not_live(env, source, sshd, start_worker, start_status):
    make_tree(source, nodes=1, resources=1, files=1)
    _, status = start_status(env)
    worker = start_worker(env)
    status.wait_code("/readyz", 200, timeout=30)
    worker.signal(signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        status.wait_code("/healthz", 503, timeout=LIVENESS + 5)
        assert time.monotonic() - stopped <= LIVENESS + 2
        _, body = status.get("/healthz")
        assert "no check-in" in body["reason"]
        assert total(status.metrics(), "rrdsync_pending_files") is None
    finally:
        worker.signal(signal.SIGCONT)
    status.wait_code("/healthz", 200, timeout=10)


def test_no_worker_both_probes_503(worker_env, start_status):
    _, status = start_status(worker_env)
    assert status.code("/healthz") == 503
    assert status.code("/readyz") == 503
    assert status.metrics()["rrdsync_live"] == 0
