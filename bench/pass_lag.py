"""Lag of the updates made while rrdsync ran a full pass, from a kept run directory.

``python -m bench.pass_lag /tmp/rrdsync-bench/<profile>/runs/<stamp>/<tool>``: for each
full pass in the tool's log (``reconcile_started`` to the destination's
``reconcile_finished``), the lag percentiles of the updates made meanwhile, and of those
made outside every pass. The update and arrival logs carry ``time.monotonic()``; the tool
logs wall time, converted with this machine's current wall-minus-monotonic offset, so run
it on the machine that ran the benchmark, before a reboot.
"""

from __future__ import annotations

import json
import math
import sys
import time
from datetime import datetime
from pathlib import Path

from .analyze import Lags, deliveries, read_genlog, read_obslog


def passes(tool_log: Path) -> list[tuple[str, float, float]]:
    """(reason, start, end) of every full pass, in monotonic seconds."""
    offset = time.time() - time.monotonic()
    started: dict[str, float] = {}
    out = []
    for line in tool_log.read_text(errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") not in ("reconcile_started", "reconcile_finished"):
            continue
        t = datetime.fromisoformat(ev["time"].replace("Z", "+00:00")).timestamp() - offset
        if ev["event"] == "reconcile_started":
            started[ev["reason"]] = t
        elif ev["reason"] in started:
            out.append((ev["reason"], started.pop(ev["reason"]), t))
    return out


def describe(name: str, lags: Lags) -> str:
    if not lags.total:
        return f"{name}: no updates"
    q = [lags.percentile(p) for p in (0.5, 0.99, 0.999)]
    mx = lags.lags[-1] if lags.lags else math.nan
    return (f"{name}: {lags.total} updates, p50 {q[0]:.2f} p99 {q[1]:.2f} "
            f"p99.9 {q[2]:.2f} max {mx:.2f} s, undelivered {lags.undelivered}")


def main(argv: list[str] | None = None) -> int:
    tool = Path((argv or sys.argv[1:])[0])
    d = deliveries(read_genlog(tool / "updates.log"), read_obslog(tool / "observer.log")[0])
    spans = passes(tool / "tool.log")
    for reason, t0, t1 in spans:
        print(describe(f"{reason} pass ({t1 - t0:.1f} s)", d.window(t0, t1)))
    inside = {i for i, (t, _) in enumerate(d.records)
              if any(t0 <= t < t1 for _, t0, t1 in spans)}
    rest = sorted(lag for i, (_, lag) in enumerate(d.records)
                  if i not in inside and not math.isinf(lag))
    undelivered = sum(1 for i, (_, lag) in enumerate(d.records)
                      if i not in inside and math.isinf(lag))
    print(describe("outside every pass", Lags(rest, undelivered, 0, 0,
                                               len(rest) + undelivered)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
