"""No symlink is ever followed out of the source, in any mode (issue 9, point 2): inotify,
polling (also the fallback at the watch limit), full passes and event batches, including a
directory replaced by a link after its files' events were queued."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.fixtures.rrd import make_tree, rrd_update, wait_identical

pytestmark = pytest.mark.slow


def _outside(world_dir: Path) -> Path:
    out = world_dir / "outside"
    out.mkdir()
    (out / "secret.rrd").write_text("SECRET")
    (out / "deep").mkdir()
    (out / "deep" / "secret.properties").write_text("SECRET")
    return out


def _no_secret_at(dest: Path) -> None:
    for p in dest.rglob("*"):
        assert not p.is_symlink(), f"a link was recreated at {p}"
        if p.is_file():
            assert "SECRET" not in p.read_text(errors="replace"), f"followed a link: {p}"


@pytest.mark.parametrize("watch", ["inotify", "poll"])
def test_links_are_never_followed_in_any_mode(watch, sshd, source, worker_env, start_worker,
                                              world_dir):
    """A link to a directory outside (``ext -> /outside``), a loop (``loop -> ..``) and a
    link to a file outside: nothing outside arrives, nothing nests, in either watch mode
    and through the startup full pass and a later one."""
    outside = _outside(world_dir)
    files = make_tree(source, nodes=1, resources=1, files=2)
    (source / "snmp" / "ext").symlink_to(outside)
    (source / "snmp" / "1" / "loop").symlink_to("..")
    (source / "snmp" / "1" / "if0" / "evil.rrd").symlink_to(outside / "secret.rrd")
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_WATCH=watch,
                                     RRDSYNC_POLL_INTERVAL="500ms",
                                     RRDSYNC_RESCAN_INTERVAL="2s"))
    w.wait_event("reconcile_finished", pred=lambda e: e.get("ok"))
    wait_identical(source, sshd.dest)
    (outside / "secret.rrd").write_text("SECRET2")  # events outside the tree
    (outside / "deep" / "new.rrd").write_text("SECRET3")
    rrd_update(files[0])
    time.sleep(2.5)  # a poll cycle or two, and a second full pass
    w.wait_event("reconcile_finished", pred=lambda e: e.get("reason") == "interval")
    wait_identical(source, sshd.dest, timeout=10)
    _no_secret_at(sshd.dest)
    assert not (sshd.dest / "snmp" / "ext").exists()
    assert not (sshd.dest / "snmp" / "1" / "loop").exists()
    assert w.stop() == 0


def test_a_directory_replaced_by_a_link_after_its_events_is_not_followed(
        sshd, source, worker_env, start_worker, world_dir):
    """The events of ``snmp/9/ds.rrd`` are queued (settle 1.5 s); meanwhile ``snmp/9``
    becomes a link to a directory outside holding a ``ds.rrd`` of its own. The batch must
    not send the outside file under the old name."""
    outside = world_dir / "outside9"
    outside.mkdir()
    (outside / "ds.rrd").write_text("SECRET")
    make_tree(source, nodes=1, resources=1, files=1)
    d = source / "snmp" / "9"
    d.mkdir()
    w = start_worker(sshd.worker_env(worker_env, RRDSYNC_SETTLE="1500ms",
                                     RRDSYNC_MAX_DELAY="3s"))
    w.wait_event("reconcile_finished", pred=lambda e: e.get("ok"))
    (d / "ds.rrd").write_text("real")
    time.sleep(0.3)  # the event is queued, not yet due
    os.rename(d, source / "snmp" / "9.real")
    (source / "snmp" / "9").symlink_to(outside)
    time.sleep(4)  # past max delay: the batch with snmp/9/ds.rrd has run
    _no_secret_at(sshd.dest)
    assert (sshd.dest / "snmp" / "9.real" / "ds.rrd").read_text() == "real"
    assert w.stop() == 0
