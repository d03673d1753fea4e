"""Every use of healthcheck-python's private names, in one place (written against 1.2.2).

rrdsync uses the library's timer thread (``HealthCheck``, a ``threading.Timer`` that
calls the registered checks every period) and its document format, but four things it
only offers through private attributes:

* ``_check_health``: the method ``run()`` calls each period; we override it to write our
  own file atomically instead of the library's non-atomic, pid-named one;
* ``_dump_dir``: ``run()`` only ticks while it is set; the library takes it from
  ``PY_HEALTH_MULTIPROC_DIR`` at construction, we set it from the config;
* ``_latest_checkin``: the time of the last ``healthy()`` call;
* ``_checks`` and ``_liveness``: the registered checks and the ``live()`` flag, needed to
  build the document the way ``_check_health`` would.

``pyproject.toml`` pins the version range this was written against. If an upgrade moves
one of these names, :func:`check` (run by ``tests/status/test_adapters.py`` and at every
timer construction) raises :class:`LibraryDrift` naming it, instead of the worker
silently publishing nothing.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from healthcheck_python.health import HealthCheck, json_output_handler

from .._drift import LibraryDrift

LIBRARY = "healthcheck-python"
WRITTEN_FOR = "1.2.2"
# instance attributes HealthCheck.__init__ must create
INSTANCE_ATTRIBUTES = ("_latest_checkin", "_checks", "_liveness", "_dump_dir")
# the per-period hook that HealthCheck.run must call while _dump_dir is set
TICK_HOOK = "_check_health"
PUBLIC = ("run_check", "check_periodic_checkin", "healthy", "live", "add_check", "stop",
          "start")


def _drift(name: str) -> LibraryDrift:
    return LibraryDrift(LIBRARY, name, WRITTEN_FOR, __name__)


def _require_instance(timer: HealthCheck) -> None:
    for name in INSTANCE_ATTRIBUTES:
        if not hasattr(timer, name):
            raise _drift(f"HealthCheck.{name}")


def check() -> None:
    """Raise :class:`LibraryDrift` if an internal this adapter uses has moved."""
    for name in (*PUBLIC, TICK_HOOK):
        if not callable(getattr(HealthCheck, name, None)):
            raise _drift(f"HealthCheck.{name}")
    try:
        run_source = inspect.getsource(HealthCheck.run)
    except (OSError, TypeError):
        run_source = None  # installed without sources: the other checks still apply
    for name in (f"self.{TICK_HOOK}(", "self._dump_dir", "self.interval"):
        if run_source is not None and name not in run_source:
            raise _drift(f"HealthCheck.run calling {name.rstrip('(')}")
    params = inspect.signature(json_output_handler).parameters
    for name in ("prefix", "results", "passed", "liveness", "timeout"):
        if name not in params:
            raise _drift(f"json_output_handler({name}=...)")
    _require_instance(HealthCheck(prefix="rrdsync-adapter-check", interval=1.0))


class PeriodicTimer(HealthCheck):
    """healthcheck-python's timer with its private parts behind names of ours.

    Subclasses override :meth:`tick`, which the library's ``run()`` calls every
    ``interval`` seconds until :meth:`stop`.
    """

    def __init__(self, *, prefix: str, interval: float, timeout: float,
                 directory: Path) -> None:
        super().__init__(prefix=prefix, interval=interval, timeout=timeout)
        _require_instance(self)
        self._dump_dir = str(directory)  # run() ticks only while this is set

    @property
    def last_checkin(self) -> float:
        """Unix time of the last :meth:`healthy` call (0 before the first)."""
        return float(self._latest_checkin)

    def results(self) -> list[dict[str, Any]]:
        """Run the registered checks (and the check-in check), as ``_check_health`` does."""
        out = [self.run_check(check) for check in self._checks]
        if self.timeout > 0:
            out.append(self.check_periodic_checkin())
        return out

    def document(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        """The library's per-process document for these results."""
        passed = all(bool(r.get("passed")) for r in results)
        return json_output_handler(prefix=self.prefix, results=results, passed=passed,
                                   liveness=self._liveness, timeout=self.timeout)

    def _check_health(self) -> None:  # the library's per-period hook
        self.tick()

    def tick(self) -> None:
        """Called every period on the timer thread."""
