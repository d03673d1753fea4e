"""Full-tree ``rsync -a`` every N seconds (a cron job or a ``while sleep`` loop)."""

from __future__ import annotations

import subprocess
import time

from bench.baselines.common import parser, rsh


def main() -> None:
    ap = parser("rsync_loop")
    ap.add_argument("--interval", type=float, default=10.0)
    a = ap.parse_args()
    while True:
        subprocess.run(["rsync", "-a", "-e", rsh(a), a.src.rstrip("/") + "/",
                        f"{a.host}:{a.dest.rstrip('/')}/"], check=False)
        time.sleep(a.interval)


if __name__ == "__main__":
    main()
