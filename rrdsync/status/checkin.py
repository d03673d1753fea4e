"""The worker's health file, written by healthcheck-python's per-process timer.

healthcheck-python does two things well that we use as they are: a timer thread that
periodically runs registered check functions (``add_check``/``run_check``) and a timed
check-in (``healthy()`` sets the time, ``check_periodic_checkin`` judges it). What we do
not inherit from it (measured on 1.2.2):

* its file write is not atomic and is named by pid only: we write ``worker-<key>.json``
  through a rename, so a reader never sees a torn file and a restarted worker with a
  reused pid never overwrites its predecessor's evidence;
* one exception in its timer ends the thread for good (the worker would look dead while
  working): we catch, log once per kind of failure, and keep going;
* its settings come from ``os.environ`` and ``PY_HEALTH_RUN_PERIOD`` from the environment
  crashes the timer (a string reaches ``Event.wait``): the period, the check-in timeout
  and the directory come from the ``Config`` as arguments;
* its ``live()`` flag never goes stale: the status server ignores it and judges the
  check-in time against ``RRDSYNC_LIVENESS_TIMEOUT`` itself (``verdict.py``);
* its failed checks log at ERROR on every period: our publisher logs transitions instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from healthcheck_python.health import HealthCheck, json_output_handler

from .state import write_atomic

log = logging.getLogger("rrdsync.status")

# Failed checks would log at ERROR every period from the library's own logger.
logging.getLogger("healthcheck_python").setLevel(logging.CRITICAL)


class CheckIn(HealthCheck):
    """healthcheck-python's timer, publishing our record into our file, atomically."""

    def __init__(self, *, prefix: str, path: Path, interval: float, timeout: float,
                 snapshot: Callable[[float], dict[str, Any]]) -> None:
        super().__init__(prefix=prefix, interval=interval, timeout=timeout)
        self.name = "rrdsync-status"
        self._dump_dir = str(path.parent)  # from the config, whatever the environment says
        self._path = path
        self._snapshot = snapshot
        self._write_lock = threading.Lock()
        self._failed_with: str | None = None

    @property
    def last_checkin(self) -> float:
        return self._latest_checkin

    def _check_health(self) -> None:
        """The timer's tick: publish, and never let an exception end the timer."""
        try:
            self.publish()
        except Exception as exc:  # the timer must survive anything
            kind = type(exc).__name__
            if self._failed_with != kind:
                self._failed_with = kind
                log.error("cannot publish worker state to %s: %s", self._path, exc,
                          extra={"event": "status.publish_failed", "error": str(exc)})
        else:
            if self._failed_with is not None:
                log.info("publishing worker state again", extra={"event": "status.publish_ok"})
                self._failed_with = None

    def publish(self) -> dict[str, Any]:
        """Run the checks, then write the document; callable from any thread."""
        with self._write_lock:
            results = [self.run_check(check) for check in self._checks]
            if self.timeout > 0:
                results.append(self.check_periodic_checkin())
            passed = all(bool(r.get("passed")) for r in results)
            doc = json_output_handler(prefix=self.prefix, results=results, passed=passed,
                                      liveness=self._liveness, timeout=self.timeout)
            doc["rrdsync"] = self._snapshot(doc["timestamp"])
            write_atomic(self._path, doc)
            return doc
