"""The delete guard (guarantee 4): never mirror deletions from a source that is not there.

An unmounted volume looks like an empty directory on another filesystem; mirroring
that would wipe years of archive at the destination. Deletions are allowed only
when ``RRDSYNC_DELETE=true`` *and* the source root exists, is not empty, and is on
the filesystem recorded in the state directory at the first run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .journal import Journal


def fs_identity(path: Path) -> dict:
    """What identifies the filesystem under ``path``: its fsid (stable across reboots
    for most filesystems) and, as a fallback, the device number."""
    st = os.stat(path)
    fsid = os.statvfs(path).f_fsid
    return {"fsid": fsid, "dev": st.st_dev}


def _same_fs(recorded: dict, now: dict) -> bool:
    if recorded.get("fsid") and now.get("fsid"):
        return recorded["fsid"] == now["fsid"]
    return recorded.get("dev") == now.get("dev")


def _holds_a_file(source: Path, included: Callable[[str], bool]) -> bool:
    """Whether any replicated file is left (stops at the first one found). A root that
    holds only empty directories is as empty as an unmounted volume: mirroring it would
    delete the whole archive."""
    return any(any(map(included, names)) for _dirpath, _dirs, names in os.walk(source))


def delete_refusal(source: Path, journal: Journal,
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
    recorded = journal.source_fs()
    if recorded is None:
        journal.record_source_fs(now)
        return None
    if not _same_fs(recorded, now):
        return (f"source root {source} is on a different filesystem than at the first run "
                f"(recorded {recorded}, now {now}); is the volume mounted?")
    return None


def remember_source_fs(source: Path, journal: Journal) -> None:
    """Record the source filesystem at the first run, whatever the delete setting."""
    if journal.source_fs() is None and source.is_dir():
        try:
            with os.scandir(source) as it:
                if next(it, None) is None:
                    return  # an empty root may be an unmounted volume: don't trust it yet
            journal.record_source_fs(fs_identity(source))
        except OSError:
            pass
