"""One worker's published state: its identity, the record it writes, and reading them back.

Each worker process writes one file, ``health/worker-<key>.json``, replacing it
atomically (write a temporary file, then rename), so a reader never sees half a file.
The key is the worker's *identity* (host and what it replicates), its start time and
its pid: a restarted worker writes a new file instead of inheriting its predecessor's,
and the predecessor's file stays where it is, so the status server can tell "the old one
died" from "a new one took over" without anyone deleting evidence.

The file is healthcheck-python's per-process document (``name``, ``status``,
``liveness``, ``timestamp``, ``timeout``, ``results``) with our record under
``"rrdsync"``: the worker's own fields plus one :class:`DestinationState` per
destination, keyed by its label. Readers only look at names matching :data:`FILE_RE`
and skip anything that does not parse, so a stray or damaged file can never take the
status server down.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from .. import log
from ..journal import atomic_write

FORMAT = 2
FILE_RE = re.compile(r"^worker-(?P<key>[A-Za-z0-9.-]{1,200})\.json$")
MAX_FILE_BYTES = 1 << 20

LOG = log.get("status")


def _safe(text: str) -> str:
    """Restrict to characters that are safe in file names and metric file names (no ``_``)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:63].strip("-.") or "worker"


def identity(source_dir: Path, labels: Iterable[str]) -> str:
    """What a worker *is*, stable across restarts: host name plus a digest of the source
    and the destination labels.

    Two workers replicating different trees into one run dir are different workers; the
    same worker restarted (same host, same source and destinations) replaces itself.
    """
    what = "\0".join([str(source_dir), *sorted(labels)])
    digest = hashlib.sha256(what.encode(errors="surrogateescape")).hexdigest()[:8]
    return f"{_safe(socket.gethostname())}-{digest}"


def worker_key(ident: str, started: float, pid: int) -> str:
    """One incarnation of a worker: identity, start time in milliseconds and pid."""
    return f"{ident}-{int(started * 1000)}-{pid}"


def state_path(health_dir: Path, key: str) -> Path:
    return health_dir / f"worker-{key}.json"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional_number(value: Any) -> bool:
    return value is None or _number(value)


_T = TypeVar("_T", bound="DataclassInstance")


def _decode(cls: type[_T], data: Any) -> _T | None:
    """``cls(**data)`` keeping known fields only; None if that does not fit."""
    if not isinstance(data, dict):
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError:
        return None


@dataclass
class DestinationState:
    """What one worker publishes about one destination. Times are Unix epoch seconds."""

    label: str
    pending: int = 0
    oldest_pending_since: float | None = None
    reconciled: bool = False
    initial: dict[str, Any] = field(default_factory=dict)
    last_reconcile: dict[str, Any] | None = None
    last_success: float | None = None
    failing_since: float | None = None
    last_error: dict[str, Any] | None = None
    last_batch: dict[str, Any] | None = None
    ssh: dict[str, Any] = field(default_factory=dict)
    delete_refused: dict[str, Any] | None = None
    # {"source": n, "destination": n, "examples": [...], "since": t} while any fails
    failing_paths: dict[str, Any] = field(default_factory=dict)
    activity: dict[str, Any] | None = None  # {"text": ..., "since": t}

    @classmethod
    def from_dict(cls, data: Any) -> DestinationState | None:
        ds = _decode(cls, data)
        if ds is None or not isinstance(ds.label, str) or not isinstance(ds.pending, int):
            return None
        if not all(_optional_number(x) for x in (ds.oldest_pending_since, ds.last_success,
                                                   ds.failing_since)):
            return None
        for name in ("initial", "ssh", "failing_paths"):
            if not isinstance(getattr(ds, name), dict):
                return None
        return ds

    def failing_count(self, side: str) -> int:
        value = self.failing_paths.get(side, 0)
        return value if isinstance(value, int) else 0


@dataclass
class WorkerState:
    """What one worker incarnation publishes. Times are Unix epoch seconds."""

    key: str
    identity: str
    pid: int
    hostname: str
    started: float
    version: str = ""
    written: float = 0.0
    checkin: float = 0.0
    stopped: bool = False
    destinations: dict[str, DestinationState] = field(default_factory=dict)
    journal_problem: dict[str, Any] | None = None  # {"error": ..., "since": t}
    activity: dict[str, Any] | None = None
    last_rescan: dict[str, Any] | None = None  # {"time": t, "reason": ...}
    watch_overflows: int = 0
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def copy(self) -> WorkerState:
        decoded = WorkerState.from_dict(json.loads(json.dumps(self.to_dict())))
        assert decoded is not None
        return decoded

    @classmethod
    def from_dict(cls, data: Any) -> WorkerState | None:
        """Tolerant decoding: unknown fields are ignored, wrong types make it unreadable.

        A record without destinations (an older worker's format) decodes with none, which
        the verdict reports as not ready rather than hiding the worker.
        """
        st = _decode(cls, data)
        if st is None:
            return None
        if not isinstance(st.key, str) or not isinstance(st.identity, str):
            return None
        if not all(_number(x) for x in (st.started, st.written, st.checkin)):
            return None
        if not isinstance(st.pid, int) or not isinstance(st.destinations, dict):
            return None
        decoded: dict[str, DestinationState] = {}
        for label, raw in st.destinations.items():
            ds = DestinationState.from_dict(raw)
            if ds is None or ds.label != label:
                return None
            decoded[label] = ds
        st.destinations = decoded
        return st


def write_atomic(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` with ``document`` so that readers see the old or the new file, whole
    (not durable: a worker's state is rewritten every second and means nothing after a
    power cut)."""
    atomic_write(path, json.dumps(document, separators=(",", ":")).encode(), durable=False,
                 mode=None)


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
        LOG.debug("worker_state_unreadable", "skipping an unreadable worker state file",
                  path=str(path), error=str(exc))
        return None
    return WorkerState.from_dict(doc.get("rrdsync") if isinstance(doc, dict) else None)
