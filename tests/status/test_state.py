"""Worker state files: identity, atomic writes, and readers that survive any file."""

from __future__ import annotations

import json
from pathlib import Path

from rrdsync.config import Destination, SidecarConfig
from rrdsync.status.state import (
    WorkerState,
    identity,
    read_all,
    state_path,
    worker_key,
    write_atomic,
)


def test_identity_is_stable_per_tree_and_distinct_between_trees():
    a = SidecarConfig(source_dir=Path("/data"), dests=(Destination(path="/x", host="h"),))
    b = SidecarConfig(source_dir=Path("/data2"), dests=(Destination(path="/x", host="h"),))
    assert identity(a) == identity(a)
    assert identity(a) != identity(b)
    key = worker_key(identity(a), 1700000000.123, 42)
    assert key.endswith("-1700000000123-42") and "_" not in key


def test_round_trip_and_garbage_is_skipped(tmp_path: Path):
    st = WorkerState(key="h-1-2", identity="h", pid=2, hostname="h", started=1.0,
                     written=2.0, checkin=2.0, pending=3)
    write_atomic(state_path(tmp_path, st.key), {"status": True, "rrdsync": st.to_dict()})
    # things a reader must survive
    (tmp_path / "worker-torn.json").write_text('{"rrdsync": {"key": "to')
    (tmp_path / "worker-wrong.json").write_text(json.dumps({"rrdsync": {"key": 5}}))
    (tmp_path / "worker-list.json").write_text("[1, 2]")
    (tmp_path / "worker-types.json").write_text(json.dumps(
        {"rrdsync": {**st.to_dict(), "key": "x", "pending": "many"}}))
    (tmp_path / "notes.txt").write_text("not json at all")
    (tmp_path / "123-other.json").write_text(json.dumps({"liveness": True}))
    (tmp_path / ".worker-h-1-2.json.99.tmp").write_text("{")
    (tmp_path / "worker-dir.json").mkdir()
    (tmp_path / "worker-big.json").write_text(" " * (2 << 20))
    found = read_all(tmp_path)
    assert [s.key for s in found] == ["h-1-2"]
    assert found[0].pending == 3
    assert read_all(tmp_path / "missing") == []


def test_unknown_fields_from_a_newer_worker_are_ignored(tmp_path: Path):
    st = WorkerState(key="h-1-2", identity="h", pid=2, hostname="h", started=1.0)
    write_atomic(state_path(tmp_path, st.key), {"rrdsync": {**st.to_dict(), "future": 1}})
    assert [s.key for s in read_all(tmp_path)] == ["h-1-2"]
