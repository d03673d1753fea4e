"""Crash-safe persistence in ``RRDSYNC_STATE_DIR``.

Each destination has its own directory (``dest-<key>/``) whose ``pending`` file holds
every path not yet confirmed there (pending, in flight, failing), NUL-separated raw bytes
so any file name survives. It is replaced atomically (write a temporary file, fsync,
rename, fsync the directory), so a kill at any instant leaves either the old or the new
list, never a torn one. Its mtime is touched every few seconds while the worker runs: at
the next start, files changed since shortly before that time are re-sent in full (the
quick check cannot see a same-second change, and an rrsync receiver refuses nanosecond
comparison). The startup full pass is the second safety net.

``source-fs.json`` (at the state dir's root) records which filesystem the source root
was on at the first run, for the delete guard. Releases before several destinations kept
one ``pending`` file at the root: every destination adopts a copy of it at start, its
mtime kept (the old destination gets what it had not confirmed, also when a destination
was added in the same upgrade; a new one gets files it needs anyway), then it is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PENDING = "pending"
SOURCE_FS = "source-fs.json"


def atomic_write(path: Path, data: bytes, *, durable: bool = True,
                 mode: int | None = 0o600) -> None:
    """Replace ``path`` with ``data``: a reader sees the old or the new file, whole. The
    file is private (``mode``, 0600) unless ``mode`` is None (the umask's choice).
    ``durable`` adds the fsyncs that make the new content survive a power cut, not only a
    kill. One writer per path at a time (the temporary file's name is fixed)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # an existing temporary file keeps its mode through O_CREAT
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def nul_list(paths: Iterable[str]) -> bytes:
    """Paths as NUL-terminated raw bytes (rsync's ``--from0`` form, and the journal's)."""
    return b"".join(os.fsencode(p) + b"\0" for p in paths)


def parse_nul_list(data: bytes) -> list[str]:
    """The paths of a :func:`nul_list` (empty names skipped)."""
    return [os.fsdecode(p) for p in data.split(b"\0") if p]


class Journal:
    """One destination's list of unconfirmed paths."""

    def __init__(self, state_dir: Path, key: str, *, adopt_legacy: bool = False) -> None:
        self.dir = state_dir / f"dest-{key}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pending_file = self.dir / PENDING
        legacy = state_dir / PENDING
        if adopt_legacy and legacy.exists() and not self.pending_file.exists():
            st = legacy.stat()
            atomic_write(self.pending_file, legacy.read_bytes())
            os.utime(self.pending_file, ns=(st.st_atime_ns, st.st_mtime_ns))

    def load(self) -> list[str]:
        try:
            raw = self.pending_file.read_bytes()
        except FileNotFoundError:
            return []
        return parse_nul_list(raw)

    def saved_at(self) -> float | None:
        """When the pending list was last written or touched (by a previous run)."""
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

    def save(self, paths: Iterable[str]) -> None:
        atomic_write(self.pending_file, nul_list(paths))


def drop_legacy(state_dir: Path) -> None:
    """Remove the single-destination journal once every destination has adopted a copy."""
    with contextlib.suppress(FileNotFoundError):
        (state_dir / PENDING).unlink()


class SourceMemory:
    """What the delete guard remembers about the source (at the state dir's root)."""

    def __init__(self, state_dir: Path) -> None:
        self.file = state_dir / SOURCE_FS

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def record(self, ident: dict[str, Any]) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.file, json.dumps(ident).encode())
