"""Guarantee 4: no deletion at the destination unless RRDSYNC_DELETE=true, and even then never
from a source root that is missing, empty, or on another filesystem than at the first run
(an unmounted volume must not wipe the archive).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.rrd import (
    RrdsyncProcess,
    included_files,
    make_tree,
    rrd_update,
    wait_for,
    wait_identical,
)

pytestmark = pytest.mark.slow





def _started(proc: RrdsyncProcess, src: Path, dst: Path) -> None:
    proc.wait_event("reconcile_finished", pred=lambda e: e.get("ok"))
    wait_identical(src, dst, timeout=20)


def _full_pass_after(proc: RrdsyncProcess, mark: int) -> dict:
    """Wait for a complete reconciliation that started after ``mark`` (an event index)."""
    started = proc.wait_event("reconcile_started", since=mark)
    idx = proc.events().index(started)
    return proc.wait_event("reconcile_finished", since=idx)


def test_deletes_are_off_by_default(sshd, source, worker_env, start_worker):
    """Without RRDSYNC_DELETE a file deleted (or renamed away) at the source stays at the
    destination, through events and through full reconciliations."""
    make_tree(source, nodes=2, resources=2, files=1)
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_RESCAN_INTERVAL="1s"))
    _started(w, source, sshd.dest)
    archive = set(included_files(sshd.dest))

    mark = len(w.events())
    (source / "snmp/1/if0/ds0.rrd").unlink()
    shutil.rmtree(source / "snmp/2/if1")
    (source / "snmp/1/if1/ds0.rrd").rename(source / "snmp/1/if1/renamed.rrd")
    wait_for(lambda: (sshd.dest / "snmp/1/if1/renamed.rrd").exists(), timeout=10,
             what="the renamed file")
    _full_pass_after(w, mark)
    _full_pass_after(w, len(w.events()))
    assert archive <= set(included_files(sshd.dest)), "nothing may be deleted by default"
    assert not w.events("delete_refused")
    assert w.stop() == 0


def test_delete_mirrors_events_and_full_pass(deleting_sshd, source, worker_env, start_worker):
    """With RRDSYNC_DELETE=true deletions are mirrored: from events while running (a file, a
    whole resource directory, a rename), and by the full pass for files deleted while the
    worker was stopped."""
    make_tree(source, nodes=2, resources=2, files=1)
    env = deleting_sshd.worker_env(worker_env, RRDSYNC_DELETE="true")
    w = start_worker(env)
    _started(w, source, deleting_sshd.dest)

    (source / "snmp/1/if0/ds0.rrd").unlink()
    shutil.rmtree(source / "snmp/2/if1")
    (source / "snmp/1/if1/ds0.rrd").rename(source / "snmp/1/if1/renamed.rrd")
    wait_for(lambda: set(included_files(deleting_sshd.dest)) == set(included_files(source)),
             timeout=10, what="deletions mirrored from events")
    assert w.stop() == 0

    (source / "snmp/2/if0/ds0.meta").unlink()  # while the worker is stopped
    mark = 0  # the restarted worker has a log of its own
    w2 = start_worker(env)
    w2.wait_event("reconcile_finished", since=mark, pred=lambda e: e.get("ok"))
    wait_for(lambda: set(included_files(deleting_sshd.dest)) == set(included_files(source)),
             timeout=10, what="deletion mirrored by the startup reconciliation")
    wait_identical(source, deleting_sshd.dest)
    assert not w2.events("delete_refused", since=mark)
    assert w2.stop() == 0


def test_delete_mirrors_a_directory_moved_out_of_the_tree(deleting_sshd, source, worker_env,
                                                         start_worker, world_dir):
    """With RRDSYNC_DELETE=true a resource directory moved out of the tree (archived with
    `mv`: inotify reports the directory alone, no file deletions) disappears at the
    destination too, long before the hourly rescan, while a moved-in one arrives."""
    make_tree(source, nodes=2, resources=2, files=1)
    w = start_worker(deleting_sshd.worker_env(worker_env, RRDSYNC_DELETE="true"))
    _started(w, source, deleting_sshd.dest)

    (source / "snmp/2").rename(world_dir / "archived")
    wait_for(lambda: set(included_files(deleting_sshd.dest)) == set(included_files(source)),
             timeout=15, what="the moved-out directory's files deleted at the destination")
    (world_dir / "archived").rename(source / "snmp/3")
    wait_identical(source, deleting_sshd.dest, timeout=10)
    assert not w.events("delete_refused")
    assert w.stop() == 0


def test_guard_refuses_empty_source_root(deleting_sshd, source, worker_env, start_worker):
    """The source root emptied (what an unmounted volume looks like): the worker logs
    delete_refused and deletes nothing, neither from the deletion events nor at the next
    start's full pass, though RRDSYNC_DELETE=true."""
    make_tree(source, nodes=2, resources=1, files=1)
    env = deleting_sshd.worker_env(worker_env, RRDSYNC_DELETE="true")
    w = start_worker(env)
    _started(w, source, deleting_sshd.dest)
    archive = set(included_files(deleting_sshd.dest))

    for child in source.iterdir():
        shutil.rmtree(child)
    refused = w.wait_event("delete_refused", timeout=10)
    assert "empty" in refused["error"]
    time.sleep(0.5)
    assert set(included_files(deleting_sshd.dest)) == archive
    assert w.stop() == 0

    mark = 0  # the restarted worker has a log of its own
    w2 = start_worker(env)
    refused = w2.wait_event("delete_refused", since=mark, timeout=15)
    assert "empty" in refused["error"]
    w2.wait_event("reconcile_finished", since=mark)
    assert set(included_files(deleting_sshd.dest)) == archive
    assert w2.stop() == 0


def test_guard_refuses_missing_source_root(deleting_sshd, source, worker_env, start_worker,
                                           world_dir):
    """The source root removed while running (RRDSYNC_DELETE=true): the deletion events and
    the full passes are refused with delete_refused, the archive stays whole, and the worker
    stays up: when the root is back, changes flow again."""
    make_tree(source, nodes=2, resources=1, files=1)
    w = start_worker(deleting_sshd.worker_env(worker_env, RRDSYNC_DELETE="true",
                          RRDSYNC_RESCAN_INTERVAL="1s", RRDSYNC_POLL_INTERVAL="500ms"))
    _started(w, source, deleting_sshd.dest)
    archive = set(included_files(deleting_sshd.dest))
    saved = world_dir / "saved"
    shutil.copytree(source, saved)

    mark = len(w.events())
    shutil.rmtree(source)
    # the deletion events may see the root still there but emptied; the full passes
    # (every second here) find it missing
    w.wait_event("delete_refused", since=mark, timeout=10,
                pred=lambda e: "missing" in e["error"])
    time.sleep(1.5)
    assert set(included_files(deleting_sshd.dest)) == archive

    shutil.copytree(saved, source)  # the volume is back
    rrd_update(source / "snmp/1/if0/ds0.rrd")
    wait_identical(source, deleting_sshd.dest, timeout=20)
    assert set(included_files(deleting_sshd.dest)) == archive
    assert w.stop() == 0


@pytest.fixture
def mount_over(world_dir: Path) -> Iterator[Callable[[Path], None]]:
    """Mount a fresh tmpfs over a directory (in world_dir); unmounted after the test,
    whatever happens, and before world_dir is removed."""
    mounted: list[Path] = []

    def mount(path: Path) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "rrdsync-test",
                        str(path)], check=True)
        mounted.append(path)

    try:
        yield mount
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], check=False)


def test_guard_refuses_source_on_another_filesystem(sshd, source, worker_env, start_worker,
                                                    mount_over):
    """The first run records the source's filesystem; when another filesystem is mounted
    over the source root later (a different volume, not empty), deletions are refused
    (delete_refused) while new files are still copied."""
    make_tree(source, nodes=2, resources=2, files=1)
    env = sshd.worker_env(worker_env, RRDSYNC_DELETE="true")
    w = start_worker(env)
    _started(w, source, sshd.dest)
    assert w.stop() == 0
    archive = set(included_files(sshd.dest))

    mount_over(source)
    make_tree(source / "other", nodes=1, resources=1, files=1)
    rrd_update(source / "other/snmp/1/if0/ds0.rrd")
    mark = 0  # the restarted worker has a log of its own
    w2 = start_worker(env)
    refused = w2.wait_event("delete_refused", since=mark, timeout=15)
    assert "different filesystem" in refused["error"]
    w2.wait_event("reconcile_finished", since=mark)
    wait_identical(source, sshd.dest, timeout=10)  # copying still works
    assert archive <= set(included_files(sshd.dest))

    mark = len(w2.events())
    (source / "other/snmp/1/if0/ds0.rrd").unlink()  # a deletion event: refused too
    w2.wait_event("delete_refused", since=mark, timeout=10)
    assert (sshd.dest / "other/snmp/1/if0/ds0.rrd").exists()
    assert w2.stop() == 0
