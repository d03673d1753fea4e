"""The several-destinations benchmark end to end: ``fanout-tiny`` (50 RRDs, 20 updates/s,
6 s; two real sshd, b's killed 3 s in for 2 s; plus the single-destination baseline).

Asserts what must hold on any machine, however loaded: every update delivered to both
destinations, the stopped one included, nothing at a wrong path, both identical after the
drain, the lag split before/during/after the outage reported for both, the stopped one's
catch-up and reconnection measured, the targets printed. Lag figures themselves are not
asserted (bench/README.md is for them).
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


def test_fanout_tiny_outage_split_and_nothing_lost() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="rrdsync-bench-fanout-", dir="/tmp"))
    os.chmod(scratch, 0o755)
    keep = False
    try:
        out = scratch / "out"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
        env["PYTHONPATH"] = str(REPO)
        proc = subprocess.run([sys.executable, "-m", "bench", "fanout-tiny",
                               "--scratch", str(scratch), "--out", str(out)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        doc = json.loads((out / "results.json").read_text())
        runs = {r["case"]: r for r in doc["results"]}
        assert set(runs) == {"single", "fanout"}, proc.stderr[-3000:]
        fan = runs["fanout"]
        assert "failed" not in fan, fan.get("failed")
        assert fan["outage"]["destination"] == "b"
        assert fan["outage"]["length_s"] >= 2
        assert fan["rrdsync_dest"].count("ssh://") == 2
        dests = {d["role"]: d for d in fan["destinations"]}
        assert set(dests) == {"healthy", "stopped"}
        for d in [*dests.values(), *runs["single"]["destinations"]]:
            assert d["initial_sync_s"] is not None, proc.stderr[-3000:]
            assert d["all"]["updates"] == 120
            assert d["undelivered"] == 0, (d["name"], d["role"], proc.stderr[-1500:])
            assert d["unknown_contents"] == 0 and d["regressions"] == 0
            assert d["misplaced"] == 0
            assert d["differ_after_drain"] == 0
        for d in dests.values():  # the outage split, for both destinations
            parts = [d[p]["updates"] for p in ("before", "during", "after")]
            assert all(n > 0 for n in parts) and sum(parts) == 120, parts
        stopped = dests["stopped"]
        assert stopped["catch_up_s"] is not None and stopped["catch_up_s"] < 20
        assert stopped["first_arrival_after_return_s"] is not None
        assert stopped["ssh_connections"] >= 2  # it had to connect again
        assert dests["healthy"]["ssh_connections"] == 1
        assert fan["sender"]["steady_cpu_tree_s"] > 0
        targets = [t["target"] for t in doc["targets"]]
        assert len(targets) == 4 and any("2×" in t for t in targets)
        md = (out / "results.md").read_text()
        assert "| fanout | b (stopped) | during |" in md
        assert "| fanout | a (healthy) | during |" in md
        assert "target" in proc.stderr and "NOT met: stopped destination: nothing lost" \
            not in proc.stderr
    except AssertionError as e:
        keep = True  # the logs of both runs (rrdsync's, sshd's, observers') for a post-mortem
        raise AssertionError(f"{e}\nwork dirs kept in {scratch}") from None
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
