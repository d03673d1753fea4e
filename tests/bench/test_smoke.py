"""The benchmark runs end to end: tiny profile (200 RRDs, 20 updates/s, 10 s), rrdsync only.

Asserts what must hold on any machine, however loaded: every update delivered, nothing at a
wrong path, the destination identical after the drain, one SSH connection, and a report
written. Lag figures are not asserted here (they are what bench/README.md is for).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

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
        out = scratch / "out"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
        env["PYTHONPATH"] = str(REPO)
        proc = subprocess.run([sys.executable, "-m", "bench", "tiny", "--tools", "rrdsync",
                               "--scratch", str(scratch), "--out", str(out)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        doc = json.loads((out / "results.json").read_text())
        (r,) = doc["results"]
        assert r["initial_sync_s"] is not None, proc.stderr[-3000:]
        assert r["updates"] == 200
        assert r["undelivered"] == 0
        assert r["unknown_contents"] == 0
        assert r["misplaced"] == 0
        assert r["differ_after_drain"] == 0
        assert 1 <= r["ssh_connections"] <= 2
        assert "| rrdsync |" in (out / "results.md").read_text()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
