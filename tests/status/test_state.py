"""Worker state files: identity, atomic writes, and readers that survive any file."""

from __future__ import annotations

import json
from pathlib import Path

from rrdsync.status.state import (
    DestinationState,
    WorkerState,
    identity,
    read_all,
    state_path,
    worker_key,
    write_atomic,
)


def test_identity_is_stable_per_tree_and_destinations():
    a = identity(Path("/data"), ["h:/x"])
    assert a == identity(Path("/data"), ["h:/x"])
    assert a != identity(Path("/data2"), ["h:/x"])
    assert a != identity(Path("/data"), ["h:/x", "g:/y"])
    assert identity(Path("/data"), ["g:/y", "h:/x"]) == identity(Path("/data"), ["h:/x", "g:/y"])
    key = worker_key(a, 1700000000.123, 42)
    assert key.endswith("-1700000000123-42") and "_" not in key


def _state(**kw) -> WorkerState:
    d = DestinationState(label="h:/x", pending=3, failing_paths={"source": 1})
    return WorkerState(**{"key": "h-1-2", "identity": "h", "pid": 2, "hostname": "h",
                          "started": 1.0, "written": 2.0, "checkin": 2.0,
                          "destinations": {"h:/x": d}, **kw})


def test_round_trip_and_garbage_is_skipped(tmp_path: Path):
    st = _state()
    write_atomic(state_path(tmp_path, st.key), {"status": True, "rrdsync": st.to_dict()})
    bad_dest = {**st.to_dict(), "key": "y", "destinations": {"h:/x": {"label": "other"}}}
    # things a reader must survive
    (tmp_path / "worker-torn.json").write_text('{"rrdsync": {"key": "to')
    (tmp_path / "worker-wrong.json").write_text(json.dumps({"rrdsync": {"key": 5}}))
    (tmp_path / "worker-list.json").write_text("[1, 2]")
    (tmp_path / "worker-types.json").write_text(json.dumps(
        {"rrdsync": {**st.to_dict(), "key": "x", "pid": "many"}}))
    (tmp_path / "worker-dest.json").write_text(json.dumps({"rrdsync": bad_dest}))
    (tmp_path / "notes.txt").write_text("not json at all")
    (tmp_path / "123-other.json").write_text(json.dumps({"liveness": True}))
    (tmp_path / ".worker-h-1-2.json.99.tmp").write_text("{")
    (tmp_path / "worker-dir.json").mkdir()
    (tmp_path / "worker-big.json").write_text(" " * (2 << 20))
    found = read_all(tmp_path)
    assert [s.key for s in found] == ["h-1-2"]
    (d,) = found[0].destinations.values()
    assert isinstance(d, DestinationState) and d.pending == 3
    assert d.failing_count("source") == 1 and d.failing_count("destination") == 0
    assert read_all(tmp_path / "missing") == []


def test_unknown_fields_from_a_newer_worker_are_ignored(tmp_path: Path):
    st = _state()
    doc = st.to_dict()
    doc["future"] = 1
    doc["destinations"]["h:/x"]["future"] = 2
    write_atomic(state_path(tmp_path, st.key), {"rrdsync": doc})
    assert [s.key for s in read_all(tmp_path)] == ["h-1-2"]


def test_an_older_record_without_destinations_still_reads(tmp_path: Path):
    old = {"key": "h-1-2", "identity": "h", "pid": 2, "hostname": "h", "started": 1.0,
           "written": 2.0, "checkin": 2.0, "pending": 4, "format": 1}
    write_atomic(state_path(tmp_path, "h-1-2"), {"rrdsync": old})
    (st,) = read_all(tmp_path)
    assert st.destinations == {}  # judged "no destination", not hidden
