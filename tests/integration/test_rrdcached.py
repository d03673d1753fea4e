"""Must-have 8: with RRDSYNC_RRDCACHED, each .rrd of a batch is flushed through a real
rrdcached before it is sent, so the destination holds the values the daemon was still
caching (its ``-w`` here is an hour: without the flush the file on disk stays stale).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.rrd import T0, make_tree, wait_for, wait_identical

pytestmark = pytest.mark.slow


@pytest.fixture
def rrdcached(world_dir: Path) -> Iterator[str]:
    """A private rrdcached on a unix socket, holding updates for an hour; its address."""
    d = world_dir / "rrdcached"
    d.mkdir()
    sock = d / "sock"
    logfile = d / "log"
    with open(logfile, "wb") as out:
        # -m 0666: the writer and the sidecar (another UID) share the socket
        proc = subprocess.Popen(["rrdcached", "-g", "-m", "0666", "-l", f"unix:{sock}",
                                 "-w", "3600", "-f", "7200", "-p", str(d / "pid")],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: sock.exists() or proc.poll() is not None, timeout=10,
                 what="the rrdcached socket")
        assert proc.poll() is None, f"rrdcached exited: {logfile.read_text()}"
        yield f"unix:{sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _plain_env() -> dict[str, str]:
    """rrdtool without a daemon: reads the file on disk as it is."""
    return {k: v for k, v in os.environ.items() if k != "RRDCACHED_ADDRESS"}


def _last_update(path: Path) -> int:
    out = subprocess.run(["rrdtool", "lastupdate", str(path)], env=_plain_env(),
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split(":")[0])


def test_rrdcached_flush_before_send(sshd, source, worker_env, start_worker, rrdcached):
    """An update held in rrdcached's cache reaches the destination: the worker FLUSHes the
    file through the daemon's socket before sending it."""
    files = make_tree(source, nodes=1, resources=1, files=2)
    rrd = files[0]
    w = start_worker({**worker_env, **sshd.env(), "RRDSYNC_RRDCACHED": rrdcached})
    wait_for(lambda: any(e.get("event") == "reconcile_finished" and e.get("ok")
                         for e in w.events()), what="the startup reconciliation")
    wait_identical(source, sshd.dest)

    on_disk = rrd.read_bytes()
    stamp = T0 + 600
    subprocess.run(["rrdtool", "update", "--daemon", rrdcached, str(rrd), f"{stamp}:42"],
                   env=_plain_env(), check=True)
    time.sleep(0.5)
    assert rrd.read_bytes() == on_disk, "rrdcached should still hold the update (-w 3600)"
    assert _last_update(rrd) < stamp

    with open(rrd, "r+b"):  # the writer touches the file: a CLOSE_WRITE puts it in a batch
        pass
    wait_for(lambda: (sshd.dest / rrd.relative_to(source)).exists()
             and _last_update(sshd.dest / rrd.relative_to(source)) == stamp,
             timeout=15, what="the flushed update at the destination")
    wait_identical(source, sshd.dest)
    assert _last_update(rrd) == stamp  # the flush wrote it at the source too
    assert not any(e.get("event") == "rrdcached_flush_failed" for e in w.events())
    assert w.stop() == 0
