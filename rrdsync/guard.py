"""The delete guard: never mirror deletions from a source that is not there.

An unmounted volume looks like an empty directory on another filesystem; mirroring
that would wipe years of archive at the destination. Deletions are allowed only
when ``RRDSYNC_DELETE=true`` *and* the source root exists, still holds a file to
replicate, and is on the filesystem recorded in the state directory at the first run.

A filesystem is recognised by its ``f_fsid``. NFS reports 0 there, and its device
number changes at every mount, so for it the mount's source (``server:/export``) and
type from ``/proc/self/mountinfo`` stand in: stable across remounts and restarts, and
different for a volume that is not the one recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .journal import SourceMemory
from .scan import walk

MOUNTINFO = "/proc/self/mountinfo"


def _unescape_mount(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_of(path: Path, mountinfo: str | None = None) -> dict[str, str] | None:
    """The mount holding ``path``: its type, source and the root inside it."""
    real = os.path.realpath(path)
    if mountinfo is None:
        try:
            with open(MOUNTINFO) as f:
                mountinfo = f.read()
        except OSError:
            return None
    best: tuple[int, dict[str, str]] | None = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        point = _unescape_mount(fields[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), {"fstype": tail[0], "source": _unescape_mount(tail[1]),
                                 "root": _unescape_mount(fields[3])})
    return best[1] if best else None


def fs_identity(path: Path, mountinfo: str | None = None) -> dict[str, Any]:
    st = os.stat(path)
    fsid = os.statvfs(path).f_fsid
    ident: dict[str, Any] = {"fsid": fsid, "dev": st.st_dev}
    if not fsid:
        mount = mount_of(path, mountinfo)
        if mount is not None:
            ident["mount"] = mount
    return ident


def same_fs(recorded: dict[str, Any], now: dict[str, Any]) -> bool:
    if recorded.get("fsid") and now.get("fsid"):
        return bool(recorded["fsid"] == now["fsid"])
    if recorded.get("mount") and now.get("mount"):
        return bool(recorded["mount"] == now["mount"])
    return bool(recorded.get("dev") == now.get("dev"))


def _holds_a_file(source: Path, included: Callable[[str], bool]) -> bool:
    """Whether any replicated file is left (stops at the first one found). A root that
    holds only empty directories is as empty as an unmounted volume: mirroring it would
    delete the whole archive."""
    return next(walk(os.fspath(source), included), None) is not None


def delete_refusal(source: Path, memory: SourceMemory,
                   included: Callable[[str], bool] = lambda name: True) -> str | None:
    """None when deleting is safe now, else the reason it is refused."""
    try:
        if not source.is_dir():
            return f"source root {source} is missing"
        if not _holds_a_file(source, included):
            return f"source root {source} is empty (no file to replicate is left)"
        now = fs_identity(source)
    except OSError as e:
        return f"source root {source} is unreadable: {e.strerror}"
    recorded = memory.load()
    if recorded is None:
        memory.record(now)
        return None
    if not same_fs(recorded, now):
        return (f"source root {source} is on a different filesystem than at the first run "
                f"(recorded {recorded}, now {now}); is the volume mounted?")
    return None


def remember_source_fs(source: Path, memory: SourceMemory) -> None:
    """Record the source filesystem at the first run, whatever the delete setting."""
    if memory.load() is None and source.is_dir():
        try:
            with os.scandir(source) as it:
                if next(it, None) is None:
                    return  # an empty root may be an unmounted volume: don't trust it yet
            memory.record(fs_identity(source))
        except OSError:
            pass
