"""The delete guard's memory of the source filesystem, NFS included (f_fsid 0)."""

from __future__ import annotations

import os
from collections import namedtuple

from rrdsync import guard
from rrdsync.journal import SourceMemory

MOUNTINFO = """\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 22 0:45 / /opt/opennms/share/rrd rw,relatime shared:20 - nfs4 10.0.0.5:/exports/rrd rw,vers=4.2
41 22 0:46 / /mnt/other\\040disk rw - nfs4 10.0.0.6:/x rw
"""


def test_mount_of_picks_the_longest_mount_point():
    m = guard.mount_of("/opt/opennms/share/rrd/snmp", MOUNTINFO)  # type: ignore[arg-type]
    assert m == {"fstype": "nfs4", "source": "10.0.0.5:/exports/rrd", "root": "/"}
    assert guard.mount_of("/mnt/other disk/a", MOUNTINFO)["source"] == "10.0.0.6:/x"  # type: ignore[arg-type,index]
    assert guard.mount_of("/etc", MOUNTINFO)["fstype"] == "ext4"  # type: ignore[arg-type,index]


def test_nfs_is_recognised_across_remounts_by_its_mount_source(tmp_path, monkeypatch):
    """NFS reports f_fsid 0 and a new device number at every mount: without a stable
    identity every restart looked like another filesystem and deletes stayed refused."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.rrd").write_text("x")
    real_stat = os.stat
    dev = {"n": 45}
    Vfs = namedtuple("Vfs", "f_fsid")

    def fake_stat(path, *a, **k):
        st = real_stat(path, *a, **k)
        if str(path) == str(src):
            return os.stat_result((st.st_mode, st.st_ino, dev["n"], *tuple(st)[3:10]))
        return st

    monkeypatch.setattr(guard.os, "stat", fake_stat)
    monkeypatch.setattr(guard.os, "statvfs", lambda p: Vfs(0))
    info = f"40 22 0:45 / {src} rw - nfs4 10.0.0.5:/exports/rrd rw\n"
    monkeypatch.setattr(guard, "mount_of",
                        lambda path, mi=None, _o=guard.mount_of: _o(path, info))
    memory = SourceMemory(tmp_path / "state")
    assert guard.delete_refusal(src, memory, lambda n: True) is None  # recorded now
    dev["n"] = 77  # remounted: another device number, same export
    assert guard.delete_refusal(src, memory, lambda n: True) is None
    info = f"40 22 0:45 / {src} rw - ext4 /dev/sdb1 rw\n"  # something else mounted there
    refusal = guard.delete_refusal(src, memory, lambda n: True)
    assert refusal and "different filesystem" in refusal


def test_an_empty_or_missing_root_is_refused(tmp_path):
    memory = SourceMemory(tmp_path / "state")
    src = tmp_path / "src"
    assert "missing" in (guard.delete_refusal(src, memory) or "")
    (src / "empty-dir").mkdir(parents=True)
    assert "empty" in (guard.delete_refusal(src, memory) or "")
