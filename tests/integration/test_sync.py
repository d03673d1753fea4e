"""The happy path, for real: rrdtool writes, rsync over a real sshd, byte-identical results."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rrdsync.config import load_sidecar
from rrdsync.status import layout
from rrdsync.status.state import WorkerState, read_all
from rrdsync.status.verdict import judge_worker
from tests.fixtures.rrd import (
    differences,
    make_tree,
    rrd_update,
    wait_for,
    wait_identical,
)
from tests.fixtures.sshd import give_to_worker


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_nested_tree_arrives_at_the_same_relative_paths(sshd, source, worker_env, start_worker):
    """Guarantee 1: OpenNMS layouts (nodeId and foreignSource) land where they belong."""
    make_tree(source, nodes=3, resources=2, files=2)
    make_tree(source, nodes=2, resources=2, files=1, foreign_source=True)
    (source / "snmp" / "1" / "notes.txt").write_text("not an RRD: not replicated\n")
    w = start_worker({**worker_env, **sshd.env()})
    wait_identical(source, sshd.dest, 30)
    assert (sshd.dest / "snmp/fs/Servers/node1/if1/ds0.rrd").is_file()
    assert (sshd.dest / "snmp/1/if0/ds.properties").is_file()
    assert not (sshd.dest / "snmp/1/notes.txt").exists()
    assert not (sshd.dest / "if0").exists() and not (sshd.dest / "ds0.rrd").exists()
    # a live update deep in the tree lands in place, not flattened
    rrd_update(source / "snmp/fs/Servers/node0/if1/ds0.rrd")
    wait_identical(source, sshd.dest, 10)
    assert w.stop() == 0


def test_full_pass_hands_rsync_whole_directories_and_nothing_more(
        sshd, source, worker_env, start_worker, world_dir):
    """Full passes list a directory as ``dir/.`` (``--dirs``) where every regular file in
    it is included: through the write-only rrsync receiver, links, a fifo, an excluded
    file, a subdirectory's contents and the root's lost+found stay where they belong."""
    make_tree(source, nodes=2, resources=2, files=3)
    outside = world_dir / "outside"
    outside.mkdir()
    (outside / "secret.rrd").write_bytes(b"s")
    node = source / "snmp" / "1"
    os.symlink(outside, node / "if0" / "ext")
    os.symlink(node / "if0" / "ds0.rrd", node / "if1" / "link.rrd")
    os.mkfifo(node / "if1" / "pipe.rrd")
    (source / "snmp" / "2" / "if0" / "ds9.tmp.rrd").write_bytes(b"t")
    w = start_worker({**worker_env, **sshd.env(), "RRDSYNC_EXCLUDE": "*.tmp.rrd"})
    w.wait_event("reconcile_finished", timeout=30)
    sent = {str(p.relative_to(sshd.dest)) for p in sshd.dest.rglob("*")
            if p.is_file() or p.is_symlink()}
    expected = {str(p.relative_to(source)) for p in source.rglob("*")
                if p.is_file() and not p.is_symlink() and "lost+found" not in p.parts
                and p.name != "ds9.tmp.rrd"}
    assert sent == expected
    assert not (sshd.dest / "lost+found").exists()
    assert w.stop() == 0


def test_rrdtool_update_and_two_updates_in_one_second(sshd, source, worker_env, start_worker):
    """mmap writes (no MODIFY event) are seen; a second same-second update is not lost."""
    files = make_tree(source, nodes=1, resources=1, files=1)
    rrd = files[0]
    w = start_worker({**worker_env, **sshd.env(), "RRDSYNC_SETTLE": "0"})
    wait_identical(source, sshd.dest, 30)
    for _ in range(5):
        sec = int(time.time())
        rrd_update(rrd)
        wait_identical(source, sshd.dest, 10)
        rrd_update(rrd)  # same size; likely the same second and mtime tick
        if int(time.time()) == sec and os.stat(rrd).st_mtime_ns // 10**9 == sec:
            break
    wait_identical(source, sshd.dest, 10)
    assert w.stop() == 0


def test_hostile_file_names(sshd, source, worker_env, start_worker, world_dir):
    """Guarantee 5: no shell ever sees a path; odd names arrive intact."""
    markers = [Path("rrdsync-pwned"), Path("/var/lib/rrdsync-t/rrdsync-pwned"),
               world_dir / "rrdsync-pwned", Path("/tmp/rrdsync-pwned")]
    names = [b"with space.rrd", b"quote'single.rrd", b'quote"double.rrd', b"new\nline.rrd",
             b"-leading-dash.rrd", b"--delete.rrd", b"latin1-\xe9\xff.rrd",
             b"$(touch rrdsync-pwned).rrd", b"`touch x`;rm -rf.rrd",
             b"back\\slash.rrd", b"star*glob?[x].rrd", b"colon:name.rrd"]
    d = os.fsencode(source / "snmp" / "1" / "odd dir")
    os.makedirs(d)
    for n in names:
        with open(os.path.join(d, n), "wb") as f:
            f.write(b"rrd" + n)
    w = start_worker({**worker_env, **sshd.env()})
    wait_identical(source, sshd.dest, 30)
    for n in names:  # and again through the event path
        with open(os.path.join(d, n), "ab") as f:
            f.write(b"+update")
    wait_identical(source, sshd.dest, 15)
    got = set(os.listdir(os.fsencode(sshd.dest / "snmp" / "1" / "odd dir")))
    assert got == set(names)
    assert not any(m.exists() for m in markers)
    assert w.stop() == 0


def test_symlinks_are_never_followed_out_of_the_source(sshd, source, worker_env, start_worker,
                                                       world_dir):
    """Guarantee 5: a link pointing outside the tree never sends its target."""
    outside = world_dir / "outside"
    outside.mkdir()
    (outside / "secret.rrd").write_text("SECRET")
    make_tree(source, nodes=1, resources=1, files=1)
    (source / "snmp" / "1" / "evil.rrd").symlink_to(outside / "secret.rrd")
    (source / "snmp" / "linkdir").symlink_to(outside)
    w = start_worker({**worker_env, **sshd.env()})
    wait_identical(source, sshd.dest, 30)
    (outside / "secret.rrd").write_text("SECRET2")  # an event outside the tree
    os.utime(source / "snmp" / "1" / "evil.rrd", follow_symlinks=False)
    time.sleep(2)
    for p in sshd.dest.rglob("*"):
        assert not (p.is_file() and "SECRET" in p.read_text(errors="replace")), p
    assert not (sshd.dest / "snmp" / "linkdir").exists()
    assert w.stop() == 0


def test_local_destination(source, worker_env, start_worker, world_dir):
    """RRDSYNC_DEST=/abs/path (a local disk or NFS mount) works the same way."""
    dest = world_dir / "local-dest"
    dest.mkdir()
    give_to_worker(dest)  # a mount the worker's user may write to
    files = make_tree(source, nodes=2, resources=1, files=2)
    w = start_worker({**worker_env, "RRDSYNC_DEST": str(dest)})
    wait_identical(source, dest, 30)
    rrd_update(files[1])
    wait_identical(source, dest, 10)
    assert w.stop() == 0


def test_permissive_receiver_and_root_worker(permissive_sshd, source, worker_env,
                                            start_worker):
    """The convenient case still works: plain rsync over ssh, the worker as root (the
    default tests use rrsync -wo -no-del and UID 10001, as deployed)."""
    files = make_tree(source, nodes=2, resources=2, files=1)
    w = start_worker({**worker_env, **permissive_sshd.env()}, as_root=True)
    wait_identical(source, permissive_sshd.dest, 30)
    rrd_update(files[0])
    (source / "snmp" / "7" / "new").mkdir(parents=True)
    (source / "snmp" / "7" / "new" / "x.rrd").write_bytes(files[0].read_bytes())
    wait_identical(source, permissive_sshd.dest, 15)
    assert "exit 1:" not in w.output()
    assert w.stop() == 0


def test_one_connection_and_idle_cpu(sshd, source, worker_env, start_worker):
    """Many batches share one SSH connection; an idle worker uses ~0% CPU (no busy loop)."""
    files = make_tree(source, nodes=4, resources=2, files=2)
    w = start_worker({**worker_env, **sshd.env()})
    wait_identical(source, sshd.dest, 30)
    for round_ in range(10):
        for f in files[round_::5]:
            rrd_update(f)
        time.sleep(0.3)
    wait_identical(source, sshd.dest, 15)
    assert sshd.connections() == 1, sshd.log.read_text()[-2000:]
    assert w.proc is not None
    time.sleep(2)  # let the last batch and heartbeat settle
    before = proc_cpu_seconds(w.proc.pid)
    time.sleep(10)
    used = proc_cpu_seconds(w.proc.pid) - before
    assert used / 10 < 0.01, f"idle worker used {used / 10:.1%} of a core"
    assert w.stop() == 0


def test_sigterm_exits_zero_quickly(sshd, source, worker_env, start_worker):
    make_tree(source, nodes=1, resources=1, files=1)
    w = start_worker({**worker_env, **sshd.env()})
    wait_identical(source, sshd.dest, 30)
    t = time.monotonic()
    assert w.stop(timeout=12) == 0
    assert time.monotonic() - t < 10
    assert any(e.get("event") == "stopped" for e in w.events())


def test_changes_during_initial_sync_are_not_lost(sshd, source, worker_env, start_worker):
    files = make_tree(source, nodes=10, resources=5, files=4)
    w = start_worker({**worker_env, **sshd.env()})
    for f in files[::7]:
        rrd_update(f)
    wait_for(lambda: any(e.get("event") == "reconcile_finished" for e in w.events()), 30,
             what="initial reconcile")
    wait_identical(source, sshd.dest, 15)
    assert not differences(source, sshd.dest)
    assert w.stop() == 0


def test_status_published_for_the_server(sshd, source, worker_env, start_worker):
    """The worker publishes its state where the status server reads it, in a form the
    server's own reader and verdict accept: one record per worker, this worker's pid,
    naming this destination, reconciled with nothing pending, rewritten while the worker
    runs, and judged live and ready."""
    env = {**worker_env, **sshd.env()}
    cfg = load_sidecar(env, require_paths=False)
    (label,) = [d.label for d in cfg.dests]
    make_tree(source, nodes=1, resources=1, files=1)
    w = start_worker(env)
    wait_identical(source, sshd.dest, 30)
    health = layout.dirs(cfg.run_dir).health

    def reconciled() -> WorkerState | None:
        states = read_all(health)
        ds = states[0].destinations.get(label) if len(states) == 1 else None
        return states[0] if ds is not None and ds.reconciled and ds.pending == 0 else None

    wait_for(lambda: reconciled() is not None, 15, what="a reconciled state record")
    first = reconciled()
    assert first is not None and w.proc is not None
    assert first.pid == w.proc.pid and list(first.destinations) == [label]
    assert first.destinations[label].last_success is not None
    wait_for(lambda: (read_all(health) or [first])[0].written > first.written, 10,
             what="the record rewritten")
    (st,) = read_all(health)
    now = time.time()
    assert now - st.checkin < cfg.liveness_timeout, f"checkin {now - st.checkin:.1f}s old"
    verdict = judge_worker(st, now, cfg.liveness_timeout, cfg.max_lag)
    assert verdict.live and verdict.ready, verdict.reasons
    assert verdict.destinations[label].ready
    assert w.stop() == 0


def test_file_changed_while_being_sent_is_sent_again(sshd, source, worker_env, start_worker,
                                                     world_dir):
    """Guarantee 3: a copy that raced a write (no event: an mmap writer that keeps the file
    open) is detected by stat before/after and sent again; rrdsync never locks the file."""
    import mmap

    w = start_worker({**worker_env, **sshd.env(), "RRDSYNC_BWLIMIT": "1000",
                      "RRDSYNC_COMPRESS": "false", "RRDSYNC_SETTLE": "0"})
    wait_for(lambda: any(e.get("event") == "reconcile_finished" for e in w.events()), 30,
             what="initial reconcile")
    big = source / "snmp" / "big.rrd"
    big.parent.mkdir(parents=True, exist_ok=True)
    staged = world_dir / "big.rrd"
    staged.write_bytes(os.urandom(4 * 1024 * 1024))
    os.rename(staged, big)  # exactly one event; the send takes ~4 s at 1000 KiB/s
    wait_for(lambda: any(p.name.startswith(".big.rrd.") for p in (sshd.dest / "snmp").glob(
        ".big.rrd.*")) if (sshd.dest / "snmp").exists() else False, 15, interval=0.05,
        what="the transfer to start")
    time.sleep(0.5)
    fd = os.open(big, os.O_RDWR)
    try:
        with mmap.mmap(fd, 0) as m:  # an mmap write: inotify reports nothing
            m[0:4096] = b"\xab" * 4096
            m.flush()
        wait_identical(source, sshd.dest, 30)
    finally:
        os.close(fd)
    assert w.stop() == 0
