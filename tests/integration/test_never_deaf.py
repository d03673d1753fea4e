"""The worker never goes deaf while it waits (issue 9, point 5): a destination that accepts
TCP and never answers, a startup walk of a 100k-file tree, an rrdcached that never
answers. ``/healthz`` stays 200 throughout (a waiting worker is alive), ``/readyz`` says
what it waits for, and SIGTERM ends the process within 10 s."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.rrd import make_tree, rrd_update, wait_for
from tests.fixtures.sshd import free_port

pytestmark = pytest.mark.slow

LIVENESS = 3.0


class SilentServer:
    """Accepts TCP connections and never says a word (a hung sshd, a firewall that accepts
    and drops)."""

    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0) if family == socket.AF_INET else host)
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.stopped = True
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    s = SilentServer()
    yield s
    s.close()


def _probe_for(status, seconds: float) -> tuple[list[int], list[dict]]:
    """/healthz codes and /readyz bodies sampled every 0.25 s for ``seconds``."""
    codes, ready = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        codes.append(status.code("/healthz"))
        ready.append(status.get("/readyz")[1])
        time.sleep(0.25)
    return codes, ready


def _sigterm_exit_time(w) -> tuple[int, float]:
    t0 = time.monotonic()
    w.signal(signal.SIGTERM)
    code = w.proc.wait(timeout=15)
    return code, time.monotonic() - t0


def test_silent_destination_keeps_the_worker_live_and_sigterm_honoured(
        sshd, silent, source, worker_env, start_worker, start_status):
    """RRDSYNC_TIMEOUT (30 s) is ten times the liveness timeout: the SSH connect to a
    destination that never answers takes that long, and the worker must stay live all the
    while, say what it waits for, and stop at once on SIGTERM."""
    make_tree(source, nodes=1, resources=1, files=2)
    env = sshd.worker_env(worker_env, RRDSYNC_SSH_PORT=str(silent.port),
                          RRDSYNC_TIMEOUT="30s", RRDSYNC_LIVENESS_TIMEOUT=f"{LIVENESS}s")
    _, status = start_status(env)
    w = start_worker(env)
    status.wait_code("/healthz", 200, timeout=15)
    codes, ready = _probe_for(status, 3 * LIVENESS)
    assert set(codes) == {200}, f"/healthz answered {codes} while the worker waited"
    (d,) = ready[-1]["workers"][0]["destinations"].values()
    assert "connecting to 127.0.0.1" in (d.get("activity") or {}).get("text", ""), d
    assert ready[-1]["status"] != "ok"
    code, took = _sigterm_exit_time(w)
    print(f"/healthz: {len(codes)} probes over {3 * LIVENESS:.0f}s, all 200; "
          f"SIGTERM while connecting: exit {code} after {took:.2f}s")
    assert code == 0 and took < 10


def test_startup_on_a_100k_file_tree_stays_live(sshd, source, worker_env, start_worker,
                                                 start_status):
    """Adding the watches and walking 100k files take seconds; the worker checks in all the
    while, and SIGTERM in the middle of the startup walk is honoured within 10 s."""
    template = source.parent / "t.rrd"
    template.write_bytes(b"\0" * 64)
    for n in range(500):
        d = source / "snmp" / str(n)
        d.mkdir(parents=True)
        for i in range(200):
            (d / f"ds{i}.rrd").write_bytes(b"\0" * 64)
    # the first sync itself is quick since full passes hand rsync whole directories: a
    # bandwidth limit (6.4 MB of content at 300 KiB/s, uncompressed) keeps it going while
    # the probes run and the SIGTERM comes
    env = sshd.worker_env(worker_env, RRDSYNC_LIVENESS_TIMEOUT=f"{LIVENESS}s",
                          RRDSYNC_BWLIMIT="300", RRDSYNC_COMPRESS="false")
    _, status = start_status(env)
    w = start_worker(env)
    status.wait_code("/healthz", 200, timeout=15)
    codes, _ = _probe_for(status, 2 * LIVENESS)
    assert set(codes) == {200}, f"/healthz answered {codes} during the startup"
    assert not w.events("reconcile_finished"), "100k files: still reconciling"
    code, took = _sigterm_exit_time(w)
    print(f"100k-file startup: /healthz {len(codes)}x 200; SIGTERM exit {code} after {took:.2f}s")
    assert code == 0 and took < 10


def test_rrdcached_that_never_answers(sshd, source, worker_env, start_worker, start_status,
                                      world_dir: Path):
    """A flush to an rrdcached that accepts and never answers is bounded (10 s) and the
    worker stays live meanwhile; the file is still sent afterwards."""
    sock_path = world_dir / "rrdcached.sock"
    mute = SilentServer(socket.AF_UNIX, str(sock_path))
    sock_path.chmod(0o666)
    try:
        files = make_tree(source, nodes=1, resources=1, files=1)
        env = sshd.worker_env(worker_env, RRDSYNC_RRDCACHED=f"unix:{sock_path}",
                              RRDSYNC_LIVENESS_TIMEOUT=f"{LIVENESS}s")
        _, status = start_status(env)
        w = start_worker(env)
        w.wait_event("reconcile_finished", pred=lambda e: e.get("ok"))
        rrd_update(files[0])
        codes, _ = _probe_for(status, 2 * LIVENESS)
        assert set(codes) == {200}
        w.wait_event("rrdcached_flush_failed", timeout=15)
        rel = files[0].relative_to(source)
        wait_for(lambda: (sshd.dest / rel).read_bytes() == files[0].read_bytes(),
                 timeout=10, what="the update after the flush gave up")
        assert w.stop() == 0
    finally:
        mute.close()


def test_full_pass_does_not_hold_back_event_batches(sshd, source, worker_env, start_worker):
    """A full pass that takes seconds (a first sync of 20 MiB at 2 MiB/s, sent in runs of
    a few seconds while nothing else flows): an update made during it is sent between two
    of its runs, so it never waits for the whole pass."""
    big = source / "snmp" / "big"
    big.mkdir(parents=True)
    import os

    for i in range(80):
        (big / f"ds{i}.rrd").write_bytes(os.urandom(256 * 1024))
    small = make_tree(source, nodes=1, resources=1, files=1)[0]
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_BWLIMIT="2048",
                                     RRDSYNC_COMPRESS="false"))
    w.wait_event("batch_sent", pred=lambda e: e.get("kind") == "full", timeout=60)
    rrd_update(small)
    t0 = time.monotonic()
    rel = small.relative_to(source)
    wait_for(lambda: (sshd.dest / rel).exists()
             and (sshd.dest / rel).read_bytes() == small.read_bytes(),
             timeout=30, interval=0.05, what="the update made during the full pass")
    lag = time.monotonic() - t0
    assert not w.events("reconcile_finished"), w.output()[-5000:]
    print(f"update during a full pass arrived after {lag:.2f}s")
    assert w.stop() == 0


def test_unwritable_state_dir_makes_the_worker_unready(sshd, source, worker_env, start_worker,
                                                       start_status):
    """A state dir that can no longer be written (full, read-only, permissions) is reported:
    journal_failed in the log and /readyz 503 naming the error, until it is fixed."""
    make_tree(source, nodes=1, resources=1, files=1)
    env = sshd.worker_env(worker_env, RRDSYNC_LIVENESS_TIMEOUT=f"{LIVENESS}s")
    _, status = start_status(env)
    w = start_worker(env)
    status.wait_code("/readyz", 200, timeout=30)
    state = Path(env["RRDSYNC_STATE_DIR"])
    journals = list(state.glob("dest-*"))
    for d in journals:
        d.chmod(0o500)
        for f in d.iterdir():
            f.chmod(0o400)
    try:
        (source / "snmp/new.rrd").write_bytes(b"x")  # something to write into the journal
        w.wait_event("journal_failed", timeout=15)
        status.wait_code("/readyz", 503, timeout=10)
        body = status.get("/readyz")[1]
        assert "journal" in str(body).lower() or "state" in str(body).lower()
        assert status.code("/healthz") == 200
    finally:
        for d in journals:
            d.chmod(0o755)
    w.wait_event("journal_recovered", timeout=15)
    status.wait_code("/readyz", 200, timeout=10)
    assert w.stop() == 0


def test_free_port_is_free():
    assert free_port() > 0
