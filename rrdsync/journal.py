"""Crash-safe persistence in ``RRDSYNC_STATE_DIR``.

``pending`` holds every path not yet confirmed at the destination (pending plus
in flight), NUL-separated raw bytes so any file name survives. It is replaced
atomically (write a temporary file, fsync, rename, fsync the directory), so a
kill at any instant leaves either the old or the new list, never a torn one.
The startup reconciliation is the second safety net for the changes that happened
between the last write and a kill.

``source-fs`` records which filesystem the source root was on at the first run,
for the delete guard.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

PENDING = "pending"
SOURCE_FS = "source-fs.json"


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pending_file = self.dir / PENDING

    def load(self) -> list[str]:
        try:
            raw = self.pending_file.read_bytes()
        except FileNotFoundError:
            return []
        return [os.fsdecode(p) for p in raw.split(b"\0") if p]

    def saved_at(self) -> float | None:
        """When the pending list was last written (by a previous run, at startup)."""
        try:
            return self.pending_file.stat().st_mtime
        except FileNotFoundError:
            return None

    def touch(self) -> None:
        """Mark that this run was alive now (``saved_at`` bounds what a restart re-sends)."""
        try:
            os.utime(self.pending_file)
        except FileNotFoundError:
            self.save([])

    def save(self, paths: Iterable[str]) -> int:
        data = b"".join(os.fsencode(p) + b"\0" for p in paths)
        atomic_write(self.pending_file, data)
        return data.count(b"\0")

    # -- delete guard's memory ------------------------------------------------------

    def source_fs(self) -> dict | None:
        try:
            return json.loads((self.dir / SOURCE_FS).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def record_source_fs(self, ident: dict) -> None:
        atomic_write(self.dir / SOURCE_FS, json.dumps(ident).encode())
