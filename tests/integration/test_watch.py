"""What the watcher sees, and what happens when the kernel does not tell it everything.

Real writers against a real inotify: rrdtool's mmap update (OPEN and CLOSE_WRITE only,
never MODIFY), a JRobin-style writer that keeps its file open, an inotify queue
overflow forced by a tiny ``fs.inotify.max_queued_events``, and the per-UID watch limit
(``fs.inotify.max_user_watches``) set below the tree's directory count. Each must end
with every change at the destination (guarantees 1 and 2).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.rrd import (
    RrdsyncProcess,
    make_tree,
    rrd_update,
    wait_identical,
)
from tests.fixtures.sshd import WORKER_UID

pytestmark = pytest.mark.slow

INOTIFY = Path("/proc/sys/fs/inotify")





def _identical(proc: RrdsyncProcess, src: Path, dst: Path, timeout: float = 30) -> None:
    """wait_identical, with the worker's log in the failure message."""
    try:
        wait_identical(src, dst, timeout=timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- worker log ---\n{proc.output()[-6000:]}") from None


def _started(proc: RrdsyncProcess, src: Path, dst: Path) -> None:
    """The startup reconciliation is done and the trees are identical."""
    proc.wait_event("reconcile_finished", pred=lambda e: e.get("ok"))
    _identical(proc, src, dst)


def _rescans(proc: RrdsyncProcess) -> list[str]:
    return [e["reason"] for e in proc.events("reconcile_started")]


@pytest.fixture
def inotify_sysctl() -> Iterator[Callable[[str, int], None]]:
    """Set ``fs.inotify.<name>`` for the test; every value is restored afterwards, whatever
    happens (they are per host, shared with everything else running here)."""
    saved: dict[str, str] = {}

    def set_(name: str, value: int) -> None:
        path = INOTIFY / name
        saved.setdefault(name, path.read_text().strip())
        path.write_text(f"{value}\n")

    try:
        yield set_
    finally:
        for name, value in saved.items():
            (INOTIFY / name).write_text(f"{value}\n")


def _restore(name: str, saved: str) -> None:
    (INOTIFY / name).write_text(f"{saved}\n")


def _watches_of_uid(uid: int) -> int:
    """Inotify watches held right now by processes of ``uid`` (what the limit counts)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    total += sum(1 for line in f if line.startswith("inotify wd:"))
            except OSError:
                continue
    return total


# -- what writers do ------------------------------------------------------------------------


def test_rrdtool_mmap_update_reaches_destination(sshd, source, worker_env, start_worker):
    """Guarantee 1: `rrdtool update` writes through mmap (inotify reports no MODIFY, only
    CLOSE_WRITE); the change still arrives through the watcher, with no rescan."""
    files = make_tree(source, nodes=1, resources=2, files=2)
    w = start_worker(sshd.worker_env(worker_env))
    _started(w, source, sshd.dest)

    for f in files:
        rrd_update(f)
    _identical(w, source, sshd.dest, timeout=10)
    assert _rescans(w) == ["startup"], "delivered by events, not by a reconciliation"
    assert w.stop() == 0


def test_jrobin_write_without_close(sshd, source, worker_env, start_worker):
    """Guarantee 1: a JRobin-style writer rewrites its .jrb in place with write() and keeps
    the file open (MODIFY, never CLOSE_WRITE); each rewrite still arrives while it is open."""
    w = start_worker(sshd.worker_env(worker_env))
    w.wait_event("reconcile_finished", pred=lambda e: e.get("ok"))
    jrb = source / "snmp" / "1" / "if0" / "ifInOctets.jrb"
    jrb.parent.mkdir(parents=True)
    jrb.write_bytes(b"\0" * 8192)
    _identical(w, source, sshd.dest, timeout=10)

    fd = os.open(jrb, os.O_RDWR)
    try:
        for i in range(3):
            os.pwrite(fd, os.urandom(512), 1024 * i)  # same size, new bytes, file stays open
            _identical(w, source, sshd.dest, timeout=10)
    finally:
        os.close(fd)
    assert _rescans(w) == ["startup"]
    assert w.stop() == 0


def test_directories_created_later_are_watched(sshd, source, worker_env, start_worker):
    """Guarantee 1: new nodes and resources (new directories, files made right after
    `mkdir -p`) are watched too, and later updates in them arrive."""
    make_tree(source, nodes=1, resources=1, files=1)
    w = start_worker(sshd.worker_env(worker_env))
    _started(w, source, sshd.dest)

    files = make_tree(source / "snmp" / "fs" / "NewSource", nodes=2, resources=2, files=1)
    _identical(w, source, sshd.dest, timeout=10)
    for f in files:
        rrd_update(f)
    _identical(w, source, sshd.dest, timeout=10)
    assert _rescans(w) == ["startup"]
    assert w.stop() == 0


def test_poll_mode(sshd, source, worker_env, start_worker):
    """RRDSYNC_WATCH=poll (network filesystems, no inotify): in-place updates, new files and
    new directories arrive within a poll interval."""
    files = make_tree(source, nodes=1, resources=2, files=1)
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_WATCH="poll",
                          RRDSYNC_POLL_INTERVAL="500ms"))
    _started(w, source, sshd.dest)
    assert w.wait_event("watch_started")["mode"] == "poll"

    for f in files:
        rrd_update(f)
    make_tree(source / "snmp" / "2", nodes=1, resources=1, files=1)
    _identical(w, source, sshd.dest, timeout=10)
    assert _rescans(w) == ["startup"]
    assert w.stop() == 0


# -- when the kernel drops events -------------------------------------------------------------


def test_inotify_queue_overflow_is_detected_and_reconciled(sshd, source, worker_env,
                                                          start_worker, inotify_sysctl):
    """Guarantee 2: when the kernel's inotify queue overflows (events lost), the worker notices
    (event watch_overflow), reconciles the whole tree (reason "overflow"), and every change of
    the burst arrives."""
    make_tree(source, nodes=1, resources=1, files=1)
    saved = (INOTIFY / "max_queued_events").read_text().strip()
    inotify_sysctl("max_queued_events", 16)  # read once, when the worker creates its instance
    w = start_worker(sshd.worker_env(worker_env))
    w.wait_event("watch_started")
    _restore("max_queued_events", saved)  # the worker's queue keeps its 16 slots
    _started(w, source, sshd.dest)

    burst = source / "snmp" / "burst"
    burst.mkdir(parents=True)
    for attempt in range(5):  # one burst is enough in practice; never rely on luck
        for i in range(400):
            (burst / f"ds{attempt}-{i}.rrd").write_bytes(b"x" * 64)
        if wait_for_overflow(w, timeout=3):
            break
    overflow = w.wait_event("watch_overflow", timeout=1)
    assert overflow["sysctl"] == "fs.inotify.max_queued_events"
    w.wait_event("reconcile_started", pred=lambda e: e.get("reason") == "overflow")
    _identical(w, source, sshd.dest, timeout=20)
    assert w.stop() == 0


def wait_for_overflow(w: RrdsyncProcess, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if w.events("watch_overflow"):
            return True
        time.sleep(0.1)
    return False


def test_watch_limit_falls_back_to_polling(sshd, source, worker_env, start_worker,
                                           inotify_sysctl):
    """Guarantee 2: with fs.inotify.max_user_watches below the tree's directory count, part of
    the tree cannot be watched; the worker says so (event watch_limit naming the sysctl) and
    polls instead, so changes in every directory still arrive, new directories included."""
    files = make_tree(source, nodes=5, resources=5, files=1)  # 1 + 1 + 5 + 25 directories
    saved = (INOTIFY / "max_user_watches").read_text().strip()
    # room for 2 of the 32 directories (other processes of this UID count too: leave margin
    # for watches they might drop meanwhile)
    inotify_sysctl("max_user_watches", _watches_of_uid(WORKER_UID) + 2)
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_POLL_INTERVAL="1s"))
    limit = w.wait_event("watch_limit", timeout=15)
    _restore("max_user_watches", saved)  # as soon as possible: the limit is host-wide
    assert limit["sysctl"] == "fs.inotify.max_user_watches"
    assert "fs.inotify.max_user_watches" in limit["message"]
    assert w.wait_event("watch_started")["mode"] == "poll"
    _started(w, source, sshd.dest)

    for f in files:  # one update in every resource directory
        rrd_update(f)
    make_tree(source / "snmp" / "fs" / "Later", nodes=1, resources=2, files=1)
    _identical(w, source, sshd.dest, timeout=15)
    assert w.stop() == 0


def test_watch_limit_reached_later_switches_to_polling(sshd, source, worker_env,
                                                       start_worker, inotify_sysctl):
    """Guarantee 2: the limit is often hit at run time, when OpenNMS adds nodes (new
    directories). A directory that cannot be watched must not go silently unwatched: the
    worker switches to polling, reconciles, and changes in the new directories arrive."""
    make_tree(source, nodes=1, resources=1, files=1)
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_POLL_INTERVAL="1s"))
    _started(w, source, sshd.dest)
    assert w.events("watch_started")[0]["mode"] == "inotify"

    saved = (INOTIFY / "max_user_watches").read_text().strip()
    inotify_sysctl("max_user_watches", _watches_of_uid(WORKER_UID) + 2)
    try:
        files = make_tree(source / "snmp" / "fs" / "New", nodes=3, resources=3, files=1)
        failed = w.wait_event("watch_failed", timeout=10)
    finally:
        _restore("max_user_watches", saved)
    assert failed["sysctl"] == "fs.inotify.max_user_watches"
    w.wait_event("reconcile_started", pred=lambda e: e.get("reason") == "watch_fallback")
    _identical(w, source, sshd.dest, timeout=15)
    for f in files:
        rrd_update(f)
    _identical(w, source, sshd.dest, timeout=15)
    assert w.stop() == 0
