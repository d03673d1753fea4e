"""A stand-in worker for unit tests: a real process that publishes with the real Publisher.

Run as ``python -m tests.status.stub_worker RUN_DIR LIVENESS MAX_LAG SOURCE [DEST...]``
(default one destination, ``dest:/srv/rrd``); it heartbeats every 0.2 s and obeys one
command per line on stdin, so tests can drive states (reconciled, backlog, failing sends,
failing paths) and misbehaviours (a hung sync loop) without the engine. A command may be
prefixed with ``@LABEL`` to address another destination than the first:

    reconciled | pending N AGE | batch RESULT CODE FILES BYTES [ERROR...] | ssh
    failing SOURCE DESTINATION [EXAMPLE...] | activity [TEXT...] | refuse REASON...
    progress SENT CHECKED TOTAL | journal [ERROR...] | overflow | rescan REASON
    hang | beat | exit
Each command is acknowledged with ``ok`` on stdout.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from rrdsync import log
from rrdsync.status.publish import Publisher
from tests.fixtures.status import Dest, Settings


def main() -> None:
    run_dir, liveness, max_lag = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    source = Path(sys.argv[4]) if len(sys.argv) > 4 else Path("/data")
    labels = sys.argv[5:] or ["dest:/srv/rrd"]
    log.setup("INFO", "json", sys.stderr)
    cfg = Settings(run_dir=run_dir, liveness_timeout=liveness, max_lag=max_lag,
                   source_dir=source)
    pub = Publisher(cfg, [Dest(label) for label in labels])
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
        words = line.split()
        label = labels[0]
        if words and words[0].startswith("@"):
            label = words.pop(0)[1:]
        cmd, *args = words
        d = pub.destination(Dest(label))
        if cmd == "reconciled":
            pub.rescan_started("startup")
            d.initial_progress(10, 10, 10)
            d.reconcile_finished("startup", 0.5, True)
        elif cmd == "pending":
            d.set_pending(int(args[0]), float(args[1]))
        elif cmd == "batch":
            result, code, files, nbytes = args[0], int(args[1]), int(args[2]), int(args[3])
            d.batch_finished(kind="events", result=result, exit_code=code, files=files,
                             nbytes=nbytes, duration=0.1, lags=[0.3] * files,
                             error=" ".join(args[4:]) or None)
        elif cmd == "failing":
            d.failing_paths(int(args[0]), int(args[1]), args[2:])
        elif cmd == "activity":
            d.activity(" ".join(args) or None)
        elif cmd == "refuse":
            d.delete_refused(" ".join(args))
        elif cmd == "progress":
            d.initial_progress(int(args[0]), int(args[1]), int(args[2]))
        elif cmd == "journal":
            pub.journal_problem(" ".join(args) or None)
        elif cmd == "rescan":
            pub.rescan_started(args[0])
        elif cmd == "hang":
            beating.clear()
        elif cmd == "beat":
            beating.set()
        elif cmd == "overflow":
            pub.watch_overflow()
        elif cmd == "ssh":
            d.ssh_connected(reconnect=True)
        elif cmd == "exit":
            pub.close()
            print("ok", flush=True)
            return
        print("ok", flush=True)


if __name__ == "__main__":
    main()
