#!/usr/bin/env python3
"""Keep the chart's copies of the monitoring files equal to monitoring/.

Helm templates can read only files inside the chart, so the PrometheusRule and the
Grafana dashboard ConfigMap are built from copies under helm/rrdsync/files/. The
originals in monitoring/ stay the ones people edit and import by hand; this tool
refreshes the copies, and a test fails when they differ.

    python3 helm/tools/monitoring_files.py --write   copy monitoring/* into the chart
    python3 helm/tools/monitoring_files.py --check   exit 1, naming the files, if they differ
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "monitoring"
COPIES = ROOT / "helm" / "rrdsync" / "files"
# The files the chart's templates read (templates/prometheusrule.yaml, dashboard.yaml).
FILES = ("prometheus-alerts.yaml", "grafana-dashboard.json")


def stale() -> list[str]:
    """Names of the copies that are missing or differ from monitoring/."""
    out = []
    for name in FILES:
        copy = COPIES / name
        if not copy.is_file() or copy.read_bytes() != (SOURCE / name).read_bytes():
            out.append(name)
    return out


def write() -> list[str]:
    changed = stale()
    COPIES.mkdir(parents=True, exist_ok=True)
    for name in changed:
        (COPIES / name).write_bytes((SOURCE / name).read_bytes())
    return changed


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        names = stale()
        if names:
            print(f"helm/rrdsync/files/ differs from monitoring/ ({', '.join(names)}): "
                  "run python3 helm/tools/monitoring_files.py --write", file=sys.stderr)
            return 1
        return 0
    if argv == ["--write"]:
        for name in write():
            print(f"updated helm/rrdsync/files/{name}")
        return 0
    print("usage: monitoring_files.py --write | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
