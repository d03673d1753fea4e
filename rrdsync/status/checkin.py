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
  and the directory come from the config as arguments;
* its ``live()`` flag never goes stale: the status server ignores it and judges the
  check-in time against ``RRDSYNC_LIVENESS_TIMEOUT`` itself (``verdict.py``);
* its failed checks log at ERROR on every period: our publisher logs transitions instead.

The library's private names are used only through ``_healthcheck_adapter.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import log
from ._healthcheck_adapter import PeriodicTimer
from .state import write_atomic

LOG = log.get("status")

# Failed checks would log at ERROR every period from the library's own logger.
logging.getLogger("healthcheck_python").setLevel(logging.CRITICAL)


class CheckIn(PeriodicTimer):
    """healthcheck-python's timer, publishing our record into our file, atomically."""

    def __init__(self, *, prefix: str, path: Path, interval: float, timeout: float,
                 snapshot: Callable[[float], dict[str, Any]]) -> None:
        super().__init__(prefix=prefix, interval=interval, timeout=timeout,
                         directory=path.parent)
        self.name = "rrdsync-status"
        self._path = path
        self._snapshot = snapshot
        self._write_lock = threading.Lock()
        self._failed_with: str | None = None

    def tick(self) -> None:
        """The timer's tick: publish, and never let an exception end the timer."""
        try:
            self.publish()
        except Exception as exc:  # the timer must survive anything
            kind = type(exc).__name__
            if self._failed_with != kind:
                self._failed_with = kind
                LOG.error("publish_failed", "cannot publish the worker's state",
                          path=str(self._path), error=f"{kind}: {exc}")
        else:
            if self._failed_with is not None:
                LOG.info("publish_recovered", "publishing the worker's state again",
                         path=str(self._path))
                self._failed_with = None

    def publish(self) -> None:
        """Run the checks, then write the document; callable from any thread."""
        with self._write_lock:
            doc = self.document(self.results())
            doc["rrdsync"] = self._snapshot(doc["timestamp"])
            write_atomic(self._path, doc)
