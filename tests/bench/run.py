"""Running the benchmark as a user would (``python -m bench PROFILE``), for the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_profile(profile: str, scratch: Path, timeout: float) -> tuple[dict[str, Any], str]:
    """Run ``profile`` with rrdsync only into ``scratch/out``: (results.json, stderr).
    Fails the test if the run fails. No RRDSYNC_* variable of the caller leaks in."""
    out = scratch / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-m", "bench", profile, "--tools", "rrdsync",
                           "--scratch", str(scratch), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), proc.stderr
