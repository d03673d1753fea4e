"""The benchmark runs end to end: tiny profile (200 RRDs, 20 updates/s, 10 s), rrdsync only.

Asserts what must hold on any machine, however loaded: every update delivered, nothing at a
wrong path, the destination identical after the drain, one SSH connection, and a report
written. Lag figures are not asserted here (they are what bench/README.md is for).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.bench.run import run_profile

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the private sshd needs root to log in a user"),
    pytest.mark.skipif(shutil.which("rsync") is None or not Path("/usr/sbin/sshd").exists(),
                       reason="needs rsync and sshd"),
    pytest.mark.skipif(importlib.util.find_spec("rrdtool") is None,
                       reason="needs the python rrdtool binding"),
]


def test_tiny_profile_end_to_end() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="rrdsync-bench-smoke-", dir="/tmp"))
    os.chmod(scratch, 0o755)
    try:
        doc, stderr = run_profile("tiny", scratch, timeout=120)
        (r,) = doc["results"]
        assert r["initial_sync_s"] is not None, stderr[-3000:]
        assert r["updates"] == 200
        assert r["undelivered"] == 0
        assert r["unknown_contents"] == 0
        assert r["misplaced"] == 0
        assert r["differ_after_drain"] == 0
        assert 1 <= r["ssh_connections"] <= 2
        assert "| rrdsync |" in (scratch / "out" / "results.md").read_text()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
