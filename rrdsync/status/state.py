"""One worker's published state: its identity, the record it writes, and reading them back.

Each worker process writes one file, ``health/worker-<key>.json``, replacing it
atomically (write a temporary file, then rename), so a reader never sees half a file.
The key is the worker's *identity* (host and what it replicates), its start time and
its pid: a restarted worker writes a new file instead of inheriting its predecessor's,
and the predecessor's file stays where it is, so the status server can tell "the old one
died" from "a new one took over" without anyone deleting evidence.

The file is healthcheck-python's per-process document (``name``, ``status``,
``liveness``, ``timestamp``, ``timeout``, ``results``) with our record under
``"rrdsync"``. Readers only look at names matching :data:`FILE_RE` and skip anything that
does not parse, so a stray or damaged file can never take the status server down.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import SidecarConfig as Config  # transitional

FORMAT = 1
FILE_RE = re.compile(r"^worker-(?P<key>[A-Za-z0-9.-]{1,200})\.json$")
MAX_FILE_BYTES = 1 << 20

log = logging.getLogger("rrdsync.status")


def _safe(text: str) -> str:
    """Restrict to characters that are safe in file names and metric file names (no ``_``)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:63].strip("-.") or "worker"


def identity(config: Config) -> str:
    """What a worker *is*, stable across restarts: host name plus a digest of source and dest.

    Two workers replicating different trees into one run dir are different workers; the
    same worker restarted (same host, same source and destination) replaces itself.
    """
    digest = hashlib.sha256(
        f"{config.source_dir}\0{config.dest or ''}".encode(errors="surrogateescape")
    ).hexdigest()[:8]
    return f"{_safe(socket.gethostname())}-{digest}"


def worker_key(ident: str, started: float, pid: int) -> str:
    """One incarnation of a worker: identity, start time in milliseconds and pid."""
    return f"{ident}-{int(started * 1000)}-{pid}"


def state_path(health_dir: Path, key: str) -> Path:
    return health_dir / f"worker-{key}.json"


@dataclass
class WorkerState:
    """What one worker incarnation publishes. Times are Unix epoch seconds."""

    key: str
    identity: str
    pid: int
    hostname: str
    started: float
    written: float = 0.0
    checkin: float = 0.0
    stopped: bool = False
    pending: int = 0
    oldest_pending_since: float | None = None
    reconciled: bool = False
    reconciling: str | None = None
    initial: dict[str, Any] = field(default_factory=dict)
    last_reconcile: dict[str, Any] | None = None
    last_success: float | None = None
    failing_since: float | None = None
    last_error: dict[str, Any] | None = None
    last_batch: dict[str, Any] | None = None
    ssh: dict[str, Any] = field(default_factory=dict)
    watch_overflows: int = 0
    delete_refused: dict[str, Any] | None = None
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> WorkerState | None:
        """Tolerant decoding: unknown fields are ignored, wrong types make it unreadable."""
        if not isinstance(data, dict):
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            st = cls(**{k: v for k, v in data.items() if k in names})
        except TypeError:
            return None
        numeric = (st.started, st.written, st.checkin)
        if not isinstance(st.key, str) or not all(isinstance(x, int | float) for x in numeric):
            return None
        if not isinstance(st.pending, int) or not isinstance(st.identity, str):
            return None
        for opt in (st.oldest_pending_since, st.last_success, st.failing_since):
            if opt is not None and not isinstance(opt, int | float):
                return None
        return st


def write_atomic(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` with ``document`` so that readers see the old or the new file, whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, separators=(",", ":"))
    os.replace(tmp, path)


def read_all(health_dir: Path) -> list[WorkerState]:
    """Every readable worker record in the directory; anything else is skipped."""
    try:
        names = os.listdir(health_dir)
    except OSError:
        return []
    out = []
    for name in names:
        if not FILE_RE.match(name):
            continue
        st = read_one(health_dir / name)
        if st is not None:
            out.append(st)
    return out


def read_one(path: Path) -> WorkerState | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ValueError("file too large")
        doc = json.loads(raw)
    except (OSError, ValueError) as exc:
        log.debug("skipping unreadable worker state %s: %s", path, exc)
        return None
    return WorkerState.from_dict(doc.get("rrdsync") if isinstance(doc, dict) else None)
