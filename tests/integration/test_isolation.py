"""One bad corner never stalls replication (issue 9, point 1): a root-only lost+found at the
source root, a source file or directory the worker may not read, a destination directory
it may not write, a destination root whose times cannot be set. Each path fails on its
own, is reported once, and every other path keeps flowing with its usual lag."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.fixtures.rrd import (
    RrdsyncProcess,
    differences,
    make_tree,
    rrd_update,
    wait_for,
    wait_identical,
)
from tests.fixtures.sshd import Sshd

pytestmark = pytest.mark.slow


def _reconciled(w: RrdsyncProcess, timeout: float = 30) -> dict:
    return w.wait_event("reconcile_finished", pred=lambda e: e.get("ok"), timeout=timeout)


def _lag_of_healthy_update(w: RrdsyncProcess, src: Path, dst: Path, f: Path) -> float:
    """Seconds from an rrdtool update of ``f`` to its arrival, byte for byte."""
    rrd_update(f)
    t0 = time.monotonic()
    rel = f.relative_to(src)
    wait_for(lambda: (dst / rel).exists() and (dst / rel).read_bytes() == f.read_bytes(),
             timeout=15, interval=0.02, what=f"{rel} at the destination")
    return time.monotonic() - t0


def _only_differ(src: Path, dst: Path, allowed: set[str]) -> None:
    diff = set(differences(src, dst))
    assert diff <= allowed, f"unexpected differences: {sorted(diff - allowed)[:5]}"


def test_unreadable_source_paths_are_reported_and_do_not_stall(sshd: Sshd, source, worker_env,
                                                                start_worker):
    """The worker (UID 10001) cannot read root's lost+found, one RRD (mode 0600 root) and one
    directory (0700 root): the first reconciliation still completes, the unreadable file is
    reported once (side=source, not a readiness failure), and healthy files keep flowing."""
    files = make_tree(source, nodes=2, resources=2, files=2)
    secret = source / "snmp/1/if0/ds0.rrd"
    os.chmod(secret, 0o600)
    closed = source / "snmp/2/if1"
    os.chmod(closed, 0o700)
    (source / "lost+found" / "#1234").write_bytes(b"fsck debris")
    w = start_worker(sshd.worker_env(worker_env))
    done = _reconciled(w)
    assert done["failing_source"] >= 1
    unreadable = {"snmp/1/if0/ds0.rrd"} | {str(p.relative_to(source))
                                          for p in closed.iterdir()}
    _only_differ(source, sshd.dest, unreadable)
    failing = w.wait_event("path_failing", pred=lambda e: e["path"] == "snmp/1/if0/ds0.rrd")
    assert failing["side"] == "source"
    assert not (sshd.dest / "lost+found").exists()

    healthy = [f for f in files if f != secret and closed not in f.parents]
    lags = [_lag_of_healthy_update(w, source, sshd.dest, f) for f in healthy[:4]]
    assert max(lags) < 3, f"healthy files waited {max(lags):.2f}s behind a failing one"
    print(f"lag of healthy updates while one source path fails: {[round(x, 2) for x in lags]}")
    assert len(w.events("path_failing")) == len({e["path"] for e in w.events("path_failing")})

    os.chmod(secret, 0o644)  # fixed by the operator: it arrives on its next change or retry
    rrd_update(secret)
    wait_for(lambda: (sshd.dest / "snmp/1/if0/ds0.rrd").exists(), timeout=15,
             what="the file once readable")
    w.wait_event("path_recovered", pred=lambda e: e["path"] == "snmp/1/if0/ds0.rrd")
    assert w.stop() == 0


def test_unwritable_destination_directory_is_isolated(sshd: Sshd, source, worker_env,
                                                      start_worker):
    """A destination directory the receiver may not write (owned by root, 0755): its files
    fail on their own (side=destination), everything else arrives and keeps arriving;
    once the directory is writable they arrive too."""
    files = make_tree(source, nodes=2, resources=2, files=2)
    blocked = sshd.dest / "snmp/1/if0"
    blocked.mkdir(parents=True)
    os.chown(sshd.dest / "snmp", sshd.user.pw_uid, sshd.user.pw_gid)
    os.chown(sshd.dest / "snmp/1", sshd.user.pw_uid, sshd.user.pw_gid)
    os.chmod(blocked, 0o755)  # root's
    w = start_worker(sshd.worker_env(worker_env))
    _reconciled(w)
    stuck = {str(p.relative_to(source)) for p in (source / "snmp/1/if0").iterdir()}
    _only_differ(source, sshd.dest, stuck)
    failing = w.wait_event("path_failing", pred=lambda e: e["side"] == "destination")
    assert failing["path"] in stuck

    healthy = [f for f in files if "snmp/1/if0" not in str(f)]
    lags = [_lag_of_healthy_update(w, source, sshd.dest, f) for f in healthy[:4]]
    assert max(lags) < 3, f"healthy files waited {max(lags):.2f}s behind a failing one"
    print(f"lag of healthy updates while a destination dir refuses: {[round(x, 2) for x in lags]}")

    os.chown(blocked, sshd.user.pw_uid, sshd.user.pw_gid)
    wait_identical(source, sshd.dest, timeout=40)  # retried with its own backoff (5 s, 10 s..)
    w.wait_event("path_recovered")
    assert w.stop() == 0


def test_destination_root_owned_by_root_with_fsgroup(sshd: Sshd, source, worker_env,
                                                     start_worker):
    """A volume root owned by root with the receiver's group and mode 2775 (fsGroup): rsync
    cannot set its times; that must never fail a run."""
    shutil.rmtree(sshd.dest)
    sshd.dest.mkdir()
    os.chown(sshd.dest, 0, sshd.user.pw_gid)
    os.chmod(sshd.dest, 0o2775)
    files = make_tree(source, nodes=2, resources=1, files=2)
    w = start_worker(sshd.worker_env(worker_env))
    done = _reconciled(w)
    assert done["failing_destination"] == 0
    wait_identical(source, sshd.dest)
    rrd_update(files[0])
    wait_identical(source, sshd.dest, timeout=10)
    assert not w.events("send_failed") and not w.events("path_failing")
    assert w.stop() == 0


def test_delete_on_against_a_receiver_that_refuses_deletes(sshd: Sshd, source, worker_env,
                                                           start_worker):
    """RRDSYNC_DELETE=true against rrsync -wo -no-del: the refusal is reported once, content
    keeps flowing, nothing is deleted."""
    files = make_tree(source, nodes=2, resources=1, files=2)
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_DELETE="true"))
    _reconciled(w)
    wait_identical(source, sshd.dest)
    files[0].unlink()
    rrd_update(files[1])
    w.wait_event("delete_refused_by_destination")
    wait_for(lambda: (sshd.dest / files[1].relative_to(source)).read_bytes()
             == files[1].read_bytes(), timeout=10, what="the update next to the deletion")
    for _ in range(3):
        rrd_update(files[2])
    wait_identical(source, sshd.dest, timeout=10)
    assert (sshd.dest / files[0].relative_to(source)).exists(), "the archive keeps the file"
    assert len(w.events("delete_refused_by_destination")) == 1
    assert w.stop() == 0
