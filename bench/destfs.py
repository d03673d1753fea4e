"""The destinations' own filesystem: a fresh ext4 with a journal on a loop device.

Why not the scratch directory: on this machine the root filesystem is ext4 *without* a
journal, and there ext4 refuses to reuse an inode freed less than 60 s ago (360 s while its
inode-table block is dirty): every file creation scans past them (``perf``: ext4_create ->
find_inode_bit -> recently_deleted, half of the receiver's CPU). The benchmark deletes
each tool's destination tree (48,400 files at 20k) right before the next tool's initial
sync creates one, so whichever tool ran second paid several times the first one's
destination CPU for the same copy: 2,000 RRDs measured 3.6 s of system time after a
deletion against 0.5 s on a journaled ext4. A standby server's disk has a journal (Debian's
``mkfs.ext4`` default), so that is what the destination gets here: a sparse image file
under the scratch directory, ``mkfs.ext4`` with its defaults, loop-mounted for the run.

Names carry the owning process id (``rrdbench-dest-<pid>.img``); ``cleanup_stale``
unmounts and removes those of runs whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

PREFIX = "rrdbench-dest-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mounts() -> list[tuple[str, str]]:
    """(source, mount point) of every loop mount whose backing file is one of ours."""
    out = subprocess.run(["losetup", "--list", "--noheadings", "--output",
                          "NAME,BACK-FILE"], capture_output=True, text=True).stdout
    ours = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and Path(parts[1].strip()).name.startswith(PREFIX):
            ours[parts[0]] = parts[1].strip()
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            src, mnt = line.split()[:2]
            if src in ours:
                found.append((ours[src], mnt.replace("\\040", " ")))
    return found


def cleanup_stale() -> list[str]:
    """Unmount and delete the destination filesystems of benchmark runs that are gone."""
    removed = []
    for image, mnt in _mounts():
        pid = Path(image).stem[len(PREFIX):]
        if pid.isdigit() and not _alive(int(pid)):
            subprocess.run(["umount", "--lazy", mnt], capture_output=True)
            with contextlib.suppress(OSError):
                os.unlink(image)
            removed.append(mnt)
    return removed


class DestFs:
    """``with DestFs(parent, size) as root:`` a journaled ext4 mounted at ``parent/destfs``."""

    def __init__(self, parent: Path, size_bytes: int) -> None:
        self.image = parent / f"{PREFIX}{os.getpid()}.img"
        self.mount = parent / "destfs"
        self.size = size_bytes
        self.mounted = False

    def __enter__(self) -> Path:
        cleanup_stale()
        self.mount.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(self.size)  # sparse: only what the tools write takes space
        try:
            # inode tables and journal written now: left to ext4lazyinit they are written in
            # the background while the first tool runs, which then pays for them
            subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,"
                            "lazy_journal_init=0", "-L", "rrdbench-dest", str(self.image)],
                           check=True, capture_output=True)
            subprocess.run(["mount", "-o", "loop", str(self.image), str(self.mount)],
                           check=True, capture_output=True)
            self.mounted = True
            os.chmod(self.mount, 0o755)
        except BaseException:
            self.__exit__()
            raise
        return self.mount

    def __exit__(self, *exc: object) -> None:
        if self.mounted:
            if subprocess.run(["umount", str(self.mount)], capture_output=True).returncode:
                # still in use (an interrupted run's sshd or rsync): detach now, the kernel
                # finishes when the last of them is gone
                subprocess.run(["umount", "--lazy", str(self.mount)], capture_output=True)
            self.mounted = False
        with contextlib.suppress(OSError):
            self.image.unlink()
        with contextlib.suppress(OSError):
            self.mount.rmdir()

    @staticmethod
    def describe(mount: Path) -> str:
        out = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,OPTIONS", str(mount)],
                             capture_output=True, text=True).stdout.strip()
        return out or "?"
