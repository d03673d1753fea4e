"""Fault injection against a real sshd, real rsync and real RRD files.

Each test breaks something a production destination or worker really goes through
(destination gone, connection cut mid-transfer, worker killed or stopped, disk full,
filesystem read-only) and then proves that nothing was lost (guarantee 2), that no
torn or partial file was ever visible at the destination (guarantee 3), and that
everything ends byte-identical (guarantee 1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.rrd import (
    RrdsyncProcess,
    differences,
    journal_file,
    make_tree,
    rrd_update,
    wait_for,
    wait_identical,
)
from tests.fixtures.sshd import Sshd, _tree

pytestmark = pytest.mark.slow





def _synced(proc: RrdsyncProcess, src: Path, dst: Path, timeout: float = 30) -> None:
    """Wait for the startup reconciliation to finish, and the trees to be identical."""
    proc.wait_event("reconcile_finished", timeout=timeout, pred=lambda e: e.get("ok"))
    wait_identical(src, dst, timeout=timeout)


def _identical(proc: RrdsyncProcess, src: Path, dst: Path, timeout: float = 30) -> None:
    """wait_identical, with the worker's log in the failure message."""
    try:
        wait_identical(src, dst, timeout=timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- worker log ---\n{proc.output()[-6000:]}") from None


def _snapshot(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[os.path.relpath(p, root)] = p.read_bytes()
    return out


def _assert_never_torn(dst: Path, allowed: dict[str, set[bytes]]) -> None:
    """Guarantee 3: each listed file at the destination is absent or one complete version."""
    for rel, versions in allowed.items():
        p = dst / rel
        if p.exists():
            assert p.read_bytes() in versions, f"torn or partial file visible at {rel}"


def _write_big(src: Path, count: int, size: int, prefix: str = "big") -> list[str]:
    """Incompressible files (the same size as a large RRD) so that transfers take time."""
    rels = []
    for i in range(count):
        rel = f"snmp/9/{prefix}/ds{i}.rrd"
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))
        rels.append(rel)
    return rels


def _rsync_running(proc: RrdsyncProcess, since: int) -> bool:
    return any("--files-from" in " ".join(e.get("argv", []))
               for e in proc.events("rsync_start", since))


def _wait_rsync(proc: RrdsyncProcess, since: int, timeout: float = 10) -> None:
    """Wait until an event batch's rsync has started (after event index ``since``)."""
    try:
        wait_for(lambda: _rsync_running(proc, since), timeout=timeout, what="the batch's rsync")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- worker log ---\n{proc.output()[-6000:]}") from None


def _sigterm_mid_rsync(proc: RrdsyncProcess, since: int, wait: float) -> tuple[int, float]:
    """SIGTERM half a second into the batch's rsync: (exit status, seconds to exit)."""
    _wait_rsync(proc, since)
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.proc is not None
    code = proc.proc.wait(timeout=wait)
    return code, time.monotonic() - t0


# -- destination unreachable ----------------------------------------------------------------


def test_destination_down_then_back(sshd, source, worker_env, start_worker):
    """Guarantee 2: changes made while the destination is unreachable (sshd gone, established
    sessions cut) are all delivered once it is back, new files and in-place updates alike."""
    files = make_tree(source, nodes=2, resources=2, files=2)
    w = start_worker(sshd.worker_env(worker_env))
    _synced(w, source, sshd.dest)

    sshd.stop()
    mark = len(w.events())
    for f in files:
        rrd_update(f)
    make_tree(source / "later", nodes=1, resources=2, files=2)
    w.wait_event("send_failed", since=mark, timeout=20)
    for f in files[:3]:  # more changes while it keeps failing
        rrd_update(f)
    time.sleep(1)
    assert differences(source, sshd.dest), "the destination was down: something must differ"

    sshd.start()
    _identical(w, source, sshd.dest, timeout=30)
    assert w.wait_event("ssh_connected", since=mark, pred=lambda e: e.get("reconnect"))
    assert w.stop() == 0


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_stays_flat_through_an_outage(sshd, source, worker_env, start_worker):
    """Memory follows pending paths, not events: 2,000 files rewritten 40 times each while
    the destination is down (80,000 events) leave the worker's RSS where 2,000 pending paths
    put it; everything is delivered once the destination is back."""
    files = make_tree(source, nodes=20, resources=10, files=10)
    w = start_worker(sshd.worker_env(worker_env))
    _synced(w, source, sshd.dest)
    assert w.proc is not None
    sshd.stop()
    for n in range(40):
        for f in files:  # an in-place write (open, write, close: CLOSE_WRITE), size kept
            with open(f, "r+b") as fh:
                fh.seek(200)
                fh.write(bytes([n]))
        if n == 0:
            time.sleep(2)  # the first failures, and the pending set at its size
            rss_first = _rss_mb(w.proc.pid)
    time.sleep(3)
    rss_after = _rss_mb(w.proc.pid)
    print(f"worker RSS: {rss_first:.1f} MB after the first 2,000 events of the outage, "
          f"{rss_after:.1f} MB after 80,000")
    assert rss_after - rss_first < 8, "memory grew with events"
    sshd.start()
    _identical(w, source, sshd.dest, timeout=60)
    assert w.stop() == 0


def test_destination_down_at_start(sshd, source, worker_env, start_worker):
    """Guarantee 2: a worker started before its destination (a sidecar whose receiver is not
    up yet) keeps retrying, stays up, and delivers the tree and later changes once it is."""
    files = make_tree(source, nodes=1, resources=2, files=2)
    sshd.stop()
    w = start_worker(sshd.worker_env(worker_env))
    w.wait_event("send_failed", timeout=15)
    for f in files:
        rrd_update(f)
    sshd.start()
    _identical(w, source, sshd.dest, timeout=30)
    assert w.stop() == 0


def _freeze(server: Sshd, sig: int) -> None:
    """SIGSTOP/SIGCONT the whole sshd tree: a destination that hangs (TCP stays open,
    nothing answers), unlike a closed connection."""
    assert server.proc is not None
    for pid in _tree(server.proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def test_destination_hangs(sshd, source, worker_env, start_worker):
    """RRDSYNC_TIMEOUT: when the destination hangs mid-session (no reset, no answer), no
    transfer hangs longer than the timeout; the worker notices, and once a working
    destination is back everything is delivered (guarantee 2)."""
    files = make_tree(source, nodes=1, resources=2, files=2)
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_TIMEOUT="2s"))
    _synced(w, source, sshd.dest)

    _freeze(sshd, signal.SIGSTOP)
    try:
        mark = len(w.events())
        t0 = time.monotonic()
        for f in files:
            rrd_update(f)
        failed = w.wait_event("send_failed", since=mark, timeout=20)
        assert time.monotonic() - t0 < 12, f"a hung destination held the worker: {failed}"
    finally:
        sshd.stop()  # SIGKILL works on stopped processes
    sshd.start()
    _identical(w, source, sshd.dest, timeout=30)
    assert w.stop() == 0


def test_sigterm_while_destination_hangs(sshd, source, worker_env, start_worker):
    """DESIGN `run`: SIGTERM while the rsync in flight is stuck on a hung destination (the
    default 60 s timeout would not fire) still exits 0 within 10 s, and the stuck batch is
    delivered after a restart (journal, guarantee 2)."""
    (source / "snmp").mkdir()
    env = sshd.worker_env(worker_env)
    w = start_worker(env)
    w.wait_event("reconcile_finished", pred=lambda e: e.get("ok"))

    _freeze(sshd, signal.SIGSTOP)
    try:
        mark = len(w.events())
        _write_big(source, 4, 16 * 1024)
        code, took = _sigterm_mid_rsync(w, mark, wait=15)
    finally:
        sshd.stop()
    assert code == 0, w.output()[-3000:]
    assert took < 10, f"stopped after {took:.1f}s\n" + w.output()[-3000:]

    sshd.start()
    mark = 0  # the restarted worker has a log of its own
    w2 = start_worker(env)
    _identical(w2, source, sshd.dest, timeout=30)
    assert w2.events("journal_resumed", since=mark)
    assert w2.stop() == 0


def test_network_cut_mid_transfer(sshd, source, worker_env, start_worker):
    """Guarantees 2 and 3: the connection dies while a large batch is in flight; no file at
    the destination is ever torn (each is the old or the new version), and after the
    destination comes back every file arrives."""
    old = _write_big(source, 12, 64 * 1024)
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_BWLIMIT="256", RRDSYNC_COMPRESS="false"))
    _synced(w, source, sshd.dest)
    before = {rel: (source / rel).read_bytes() for rel in old}

    mark = len(w.events())
    _write_big(source, 12, 64 * 1024)  # ~768 KiB at 256 KiB/s: about 3 s in flight
    _wait_rsync(w, mark)
    time.sleep(1.0)
    sshd.stop()
    after = {rel: (source / rel).read_bytes() for rel in old}
    allowed = {rel: {before[rel], after[rel]} for rel in old}
    _assert_never_torn(sshd.dest, allowed)
    w.wait_event("send_failed", since=mark, timeout=20)
    assert differences(source, sshd.dest), "the cut batch cannot have completed"
    _assert_never_torn(sshd.dest, allowed)

    sshd.start()
    _identical(w, source, sshd.dest, timeout=40)
    assert w.stop() == 0


def test_network_cut_during_initial_reconciliation(sshd, source, worker_env, start_worker):
    """Guarantee 2: the first full pass (a new destination) is cut by the destination going
    away; the chunk in flight is retried (with backoff) until the destination is back, the
    pass then completes, and the whole tree is there."""
    _write_big(source, 8, 64 * 1024)  # 512 KiB at 256 KiB/s: about 2 s
    make_tree(source, nodes=1, resources=2, files=1)
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_BWLIMIT="256", RRDSYNC_COMPRESS="false"))
    w.wait_event("reconcile_started")
    wait_for(lambda: any(sshd.dest.rglob("*.rrd")), timeout=10, what="the first files")
    sshd.stop()
    w.wait_event("send_failed", pred=lambda e: e.get("kind") == "full", timeout=20)
    assert differences(source, sshd.dest)
    assert not w.events("reconcile_finished")
    sshd.start()
    w.wait_event("reconcile_finished", pred=lambda e: e.get("ok"), timeout=30)
    _identical(w, source, sshd.dest, timeout=10)
    assert w.stop() == 0


# -- the worker dies or is stopped --------------------------------------------------------------


def test_sigkill_then_restart(sshd, source, worker_env, start_worker):
    """Guarantee 2: a worker killed with SIGKILL (no chance to save anything) loses nothing:
    changes it had seen but not sent, and changes made while it was down (including a
    same-size in-place rrdtool update), are delivered after a restart."""
    files = make_tree(source, nodes=2, resources=2, files=2)
    env = sshd.worker_env(worker_env, RRDSYNC_SETTLE="2s", RRDSYNC_MAX_DELAY="5s")
    w = start_worker(env)
    _synced(w, source, sshd.dest)

    for f in files[:4]:  # seen by the worker, not yet sent (settle 2 s)
        rrd_update(f)
    time.sleep(1.2)  # long enough for the journal (written once a second) to hold them
    w.kill()
    for f in files[2:]:  # while it is down
        rrd_update(f)
    make_tree(source / "while-down", nodes=1, resources=1, files=2)
    assert differences(source, sshd.dest)

    mark = 0  # the restarted worker has a log of its own
    w2 = start_worker({**env, "RRDSYNC_SETTLE": "100ms", "RRDSYNC_MAX_DELAY": "1s"})
    _identical(w2, source, sshd.dest, timeout=30)
    resumed = w2.events("journal_resumed", since=mark)
    assert resumed and resumed[0]["files"] >= 4, "the journal should have held the seen changes"
    assert w2.stop() == 0


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (e.g. a worker's run dir)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie holds nothing
        except OSError:
            continue
        if text in cmd:
            found.append(cmd)
    return found


def test_sigkill_with_rsync_in_flight(sshd, source, worker_env, start_worker, world_dir):
    """Guarantees 2 and 3: SIGKILL while a batch is being sent: its rsync and the SSH master
    die with the worker (nothing outlives it), no partial file is visible, and the batch
    (in the journal as in flight) is delivered after a restart."""
    (source / "snmp").mkdir()
    env = sshd.worker_env(worker_env, RRDSYNC_BWLIMIT="128", RRDSYNC_COMPRESS="false")
    w = start_worker(env)
    w.wait_event("reconcile_finished", pred=lambda e: e.get("ok"))

    mark = len(w.events())
    rels = _write_big(source, 1, 512 * 1024)  # 4 s at 128 KiB/s
    _wait_rsync(w, mark)
    time.sleep(1.5)  # the journal (written once a second) holds the batch in flight
    run_dir = env["RRDSYNC_RUN_DIR"]
    assert _processes_mentioning(run_dir), "rsync and the ssh master run with the worker"
    w.kill()
    wait_for(lambda: not _processes_mentioning(run_dir), timeout=5,
             what="rsync and ssh to die with the worker")
    _assert_never_torn(sshd.dest, {rel: {(source / rel).read_bytes()} for rel in rels})
    assert differences(source, sshd.dest)

    mark = 0  # the restarted worker has a log of its own
    w2 = start_worker({k: v for k, v in env.items() if k != "RRDSYNC_BWLIMIT"})
    _identical(w2, source, sshd.dest, timeout=30)
    assert w2.events("journal_resumed", since=mark)
    assert w2.stop() == 0


def test_sigterm_with_rsync_in_flight(sshd, source, worker_env, start_worker):
    """DESIGN `run`: on SIGTERM with a slow rsync in flight the worker exits 0 within 10 s
    (Docker's and Kubernetes' default grace); the files of the cut batch stay in the journal
    and are delivered after a restart (guarantee 2), never torn meanwhile (guarantee 3)."""
    (source / "snmp").mkdir()
    env = sshd.worker_env(worker_env, RRDSYNC_BWLIMIT="64", RRDSYNC_COMPRESS="false")
    w = start_worker(env)
    w.wait_event("reconcile_finished", pred=lambda e: e.get("ok"))

    mark = len(w.events())
    # a large RRD (1 MiB at 64 KiB/s: 16 s, longer than the 8 s drain), then small ones
    rels = _write_big(source, 1, 1024 * 1024) + _write_big(source, 8, 8192, prefix="more")
    code, took = _sigterm_mid_rsync(w, mark, wait=12)
    assert code == 0, w.output()[-3000:]
    assert took < 10, f"stopped after {took:.1f}s"
    assert took > 5, f"stopped after {took:.1f}s: was the rsync really in flight?"
    assert w.events("stopping")[0]["in_flight"] >= 1
    _assert_never_torn(sshd.dest, {rel: {(source / rel).read_bytes()} for rel in rels})
    assert differences(source, sshd.dest), "a 16 s transfer cannot have finished"

    journal = journal_file(Path(env["RRDSYNC_STATE_DIR"])).read_bytes().split(b"\0")
    unsent = {os.fsencode(rel) for rel in differences(source, sshd.dest)}
    assert unsent <= set(journal), "what was in flight must be in the journal"

    mark = 0  # the restarted worker has a log of its own
    w2 = start_worker({k: v for k, v in env.items() if k != "RRDSYNC_BWLIMIT"})
    _identical(w2, source, sshd.dest, timeout=30)
    assert w2.events("journal_resumed", since=mark)
    assert w2.stop() == 0


# -- the destination's filesystem misbehaves ------------------------------------------------------


@pytest.fixture
def tmpfs_dest(sshd: Sshd) -> Iterator[Path]:
    """A small tmpfs mounted as the destination directory (so it can fill up or go read-only)."""
    uid, gid = sshd.user.pw_uid, sshd.user.pw_gid
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=4m,mode=0755,uid={uid},gid={gid}",
                    "rrdsync-test", str(sshd.dest)], check=True)
    try:
        yield sshd.dest
    finally:
        subprocess.run(["umount", "-l", str(sshd.dest)], check=False)


def _fill(fs: Path) -> Path:
    filler = fs / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\1" * 65536)
        except OSError:
            pass
    return filler


def test_destination_disk_full_then_freed(sshd, tmpfs_dest, source, worker_env, start_worker):
    """Guarantees 2 and 3: while the destination's disk is full, sends fail (and are
    retried), existing files stay whole; once space is freed nothing is missing."""
    files = make_tree(source, nodes=1, resources=2, files=2)
    w = start_worker(sshd.worker_env(worker_env))
    _synced(w, source, tmpfs_dest)
    before = {str(f.relative_to(source)): f.read_bytes() for f in files}

    filler = _fill(tmpfs_dest)
    mark = len(w.events())
    for f in files:
        rrd_update(f)
    _write_big(source, 4, 128 * 1024, prefix="new")
    failed = w.wait_event("send_failed", since=mark, timeout=20)
    assert failed["exit_code"] not in (0, 24)
    allowed = {rel: {before[rel], (source / rel).read_bytes()} for rel in before}
    _assert_never_torn(tmpfs_dest, allowed)
    assert differences(source, tmpfs_dest)

    filler.unlink()
    _identical(w, source, tmpfs_dest, timeout=30)
    assert w.stop() == 0


def test_destination_read_only_then_writable(sshd, tmpfs_dest, source, worker_env,
                                             start_worker):
    """Guarantee 2: a destination filesystem that goes read-only (EROFS) makes sends fail
    without losing them; once it is writable again everything arrives."""
    files = make_tree(source, nodes=1, resources=2, files=2)
    w = start_worker(sshd.worker_env(worker_env))
    _synced(w, source, tmpfs_dest)
    before = _snapshot(tmpfs_dest)

    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs_dest)], check=True)
    mark = len(w.events())
    for f in files:
        rrd_update(f)
    make_tree(source / "new", nodes=1, resources=1, files=1)
    w.wait_event("send_failed", since=mark, timeout=20)
    assert _snapshot(tmpfs_dest) == before

    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs_dest)], check=True)
    _identical(w, source, tmpfs_dest, timeout=30)
    assert w.stop() == 0
