"""A stand-in worker for unit tests: a real process that publishes with the real Publisher.

Run as ``python -m tests.status.stub_worker RUN_DIR LIVENESS MAX_LAG``; it heartbeats every
0.2 s and obeys one command per line on stdin, so tests can drive states (reconciled,
backlog, failing sends) and misbehaviours (a hung sync loop) without the engine:

    reconciled | pending N AGE | batch RESULT CODE FILES BYTES [ERROR...] | hang | beat
    overflow | ssh | exit
Each command is acknowledged with ``ok`` on stdout.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from rrdsync.config import Destination, SidecarConfig
from rrdsync.status.publish import Publisher


def main() -> None:
    run_dir, liveness, max_lag = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    cfg = SidecarConfig(run_dir=run_dir, liveness_timeout=liveness, max_lag=max_lag,
                        dests=(Destination(path="/dest"),),
                        source_dir=Path(sys.argv[4]) if len(sys.argv) > 4 else Path("/data"))
    pub = Publisher(cfg)
    pub.start()
    beating = threading.Event()
    beating.set()

    def beat() -> None:
        while True:
            if beating.is_set():
                pub.heartbeat()
            time.sleep(0.2)

    threading.Thread(target=beat, daemon=True).start()
    print("ok", pub.key, flush=True)
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "reconciled":
            pub.reconcile_started("startup")
            pub.initial_progress(10, 10, 10)
            pub.reconcile_finished("startup", 0.5, True)
        elif cmd == "pending":
            pub.set_pending(int(args[0]), float(args[1]))
        elif cmd == "batch":
            result, code, files, nbytes = args[0], int(args[1]), int(args[2]), int(args[3])
            pub.batch_finished(kind="events", result=result, exit_code=code, files=files,
                               nbytes=nbytes, duration=0.1, lags=[0.3] * files,
                               error=" ".join(args[4:]) or None)
        elif cmd == "hang":
            beating.clear()
        elif cmd == "beat":
            beating.set()
        elif cmd == "overflow":
            pub.watch_overflow()
        elif cmd == "ssh":
            pub.ssh_connected(reconnect=True)
        elif cmd == "exit":
            pub.close()
            print("ok", flush=True)
            return
        print("ok", flush=True)


if __name__ == "__main__":
    main()
