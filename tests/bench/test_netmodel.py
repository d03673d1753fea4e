"""The benchmark's network model and source tree (bench/netmodel.py, bench/relay.py,
bench/workload.py).

- every RRD of the tree has its own rows and stays a valid RRD rrdtool can update;
- a crashed run's namespace, link and destination filesystem are removed by the next
  run, a live run's are not;
- the ``wan-tiny`` profile end to end over the real model (namespace, veth, tbf, relay):
  the measured RTT and rate are the link's, a few files replicate with nothing lost, bytes
  on the wire are counted, and the namespace is gone afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.bench.run import run_profile

needs_rrdtool = pytest.mark.skipif(shutil.which("rrdtool") is None, reason="needs rrdtool")


@pytest.fixture
def scratch():
    d = Path(tempfile.mkdtemp(prefix="rrdsync-bench-net-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_rrdtool
def test_every_rrd_has_its_own_rows_and_stays_valid(scratch: Path) -> None:
    from bench.workload import build_tree, row_area

    facts = build_tree(scratch / "src", 50)
    files = sorted((scratch / "src").rglob("*.rrd"))
    assert len(files) == 50
    datas = [f.read_bytes() for f in files]
    off, n = row_area(datas[0])
    assert (off, n) == (1416, 4602)  # OpenNMS's RRAs: 4,602 rows after a 1,416-byte header
    assert len({d[:off] for d in datas}) == 1, "headers alike"
    assert len({d[off:] for d in datas}) == 50, "rows differ"
    assert 0.3 < facts["zlib6_ratio"] < 0.9  # neither empty (0.7 %) nor random (100 %)
    info = subprocess.run(["rrdtool", "info", str(files[0])], capture_output=True, text=True,
                          check=True).stdout
    assert "rra[4].cf = \"MIN\"" in info
    subprocess.run(["rrdtool", "update", str(files[0]), "1700000300:42"], check=True)
    last = subprocess.run(["rrdtool", "lastupdate", str(files[0])], capture_output=True,
                          text=True, check=True).stdout
    assert "1700000300: 42" in last


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")
@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2")
def test_stale_namespace_and_link_are_removed_live_ones_kept() -> None:
    from bench import netmodel

    dead, live = _dead_pid(), os.getpid()
    made = []
    try:
        for pid in (dead, live):
            ns, link = f"{netmodel.PREFIX}{pid}", f"{netmodel.LINK_PREFIX}{pid}h"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name",
                            f"{netmodel.LINK_PREFIX}{pid}n", "netns", ns], check=True)
            made.append((ns, link))
        removed = netmodel.cleanup_stale()
        assert f"{netmodel.PREFIX}{dead}" in removed
        assert f"{netmodel.PREFIX}{dead}" not in _namespaces()
        assert f"{netmodel.PREFIX}{live}" in _namespaces()
        assert not Path(f"/sys/class/net/{netmodel.LINK_PREFIX}{dead}h").exists()
        assert Path(f"/sys/class/net/{netmodel.LINK_PREFIX}{live}h").exists()
    finally:
        for ns, link in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            subprocess.run(["ip", "link", "del", link], capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mount needs root")
@pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="needs e2fsprogs")
def test_stale_destination_filesystem_is_removed(scratch: Path) -> None:
    from bench import destfs

    dead = _dead_pid()
    image, mnt = scratch / f"{destfs.PREFIX}{dead}.img", scratch / "destfs"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mnt.mkdir()
    if subprocess.run(["mount", "-o", "loop", str(image), str(mnt)]).returncode:
        pytest.skip("no loop devices here")
    try:
        assert str(mnt) in destfs.cleanup_stale()
        assert not os.path.ismount(mnt)
        assert not image.exists()
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    with destfs.DestFs(scratch, 32 << 20) as root:  # a live one: journaled ext4, ours
        assert os.path.ismount(root)
        assert "ext4" in destfs.DestFs.describe(root)
        assert str(root) not in destfs.cleanup_stale()
    assert not os.path.ismount(root)


@pytest.mark.slow
@needs_rrdtool
@pytest.mark.skipif(shutil.which("rsync") is None or not Path("/usr/sbin/sshd").exists(),
                    reason="needs rsync and sshd")
@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces, tc and the private sshd need root")
@pytest.mark.skipif(shutil.which("tc") is None, reason="needs iproute2 (ip, tc)")
def test_wan_tiny_over_the_network_model(scratch: Path) -> None:
    doc, stderr = run_profile("wan-tiny", scratch, timeout=180)
    (r,) = doc["results"]
    net = r["network"]
    # 40 ms RTT: the relay is calibrated to it; a busy machine adds a few ms
    assert 34 <= net["rtt_ms"] <= 60, net
    # 20 Mbit/s of frames is ~19.1 Mbit/s of TCP payload
    assert 15 <= net["up_mbit"] <= 20.5, net
    assert 15 <= net["down_mbit"] <= 20.5, net
    # a new SSH connection needs several round trips
    assert net["ssh_true_s"] >= 0.2, net
    assert r["initial_sync_s"] is not None, stderr[-3000:]
    assert r["updates"] == 50
    assert r["undelivered"] == 0
    assert r["unknown_contents"] == 0
    assert r["misplaced"] == 0
    assert r["differ_after_drain"] == 0
    assert 1 <= r["ssh_connections"] <= 2
    # 50 RRDs of ~38 KB with their own rows: most of 1.9 MB crossed the wire
    assert r["wire_initial_up_bytes"] > 0.5e6
    assert r["wire_steady_up_bytes"] > 0 and r["wire_up_per_update"] > 0
    assert r["cpu_relay_s"] > 0
    # the lag includes at least one round trip
    assert r["lag_p50_s"] >= 0.04
    assert doc["network"]["namespace"] not in _namespaces()
    assert not Path(f"/sys/class/net/{doc['network']['host_if']}").exists()
