"""What a worker tells the status server: health state and metrics in ``RRDSYNC_RUN_DIR``.

The engine constructs ``Publisher(config)``, calls :meth:`Publisher.start` once, then
:meth:`Publisher.heartbeat` at least once a second (also during long rsync runs) and the
other methods as things happen. Every method is cheap (a lock, a few assignments, an
mmap write for metrics) and never raises into the engine: a broken status directory must
not stop replication, it only makes the worker look unhealthy, which is the truth.

File writes happen on healthcheck-python's timer thread (``checkin.py``) every
``min(1 s, RRDSYNC_LIVENESS_TIMEOUT / 4)``, plus once at start and once at close. The
check-in time the status server judges is the one :meth:`heartbeat` sets, so a sync
loop that hangs goes stale even while the timer thread keeps writing.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..config import SidecarConfig as Config  # transitional
from . import layout, verdict
from .state import WorkerState, identity, state_path, worker_key

log = logging.getLogger("rrdsync.status")

F = TypeVar("F", bound=Callable[..., Any])


def _never_raises(method: F) -> F:
    """Log (once per method) instead of raising into the engine."""
    failed: set[str] = set()

    @functools.wraps(method)
    def wrapper(self: Publisher, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # publishing must never stop replication
            if method.__name__ not in failed:
                failed.add(method.__name__)
                log.warning("status publishing failed in %s: %s", method.__name__, exc,
                          extra={"event": "status.publish_failed", "error": str(exc)},
                          exc_info=True)
            return None

    return wrapper  # type: ignore[return-value]


def _clip(text: str | None, limit: int = 500) -> str | None:
    if text is None:
        return None
    text = str(text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Publisher:
    """Publishes one worker's health and metrics into ``RRDSYNC_RUN_DIR``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        now = time.time()
        ident = identity(config)
        self._started = now
        self.key = worker_key(ident, now, os.getpid())
        self._state = WorkerState(key=self.key, identity=ident, pid=os.getpid(),
                                  hostname=socket.gethostname(), started=now, checkin=now)
        self._metrics: Any = None
        self._checkin: Any = None
        self._was_ready: bool | None = None

    # --- lifecycle ---------------------------------------------------------------------

    @_never_raises
    def start(self) -> None:
        """Called once before the first reconciliation: files exist from here on."""
        from .checkin import CheckIn
        from .metrics import WorkerMetrics

        dirs = layout.prepare(self.config)
        ident, started = self._state.identity, self._started
        self._metrics = WorkerMetrics(lambda: worker_key(ident, started, os.getpid()))
        self._metrics["rrdsync_worker_start_time_seconds"].set(started)
        interval = max(0.05, min(1.0, self.config.liveness_timeout / 4))
        checkin = CheckIn(prefix=f"rrdsync-{self.key}",
                          path=state_path(dirs.health, self.key), interval=interval,
                          timeout=self.config.liveness_timeout, snapshot=self._snapshot)
        checkin.add_check(self._check_reconciled)
        checkin.add_check(self._check_sending)
        checkin.add_check(self._check_backlog)
        checkin.healthy()
        checkin.live()
        checkin.publish()
        checkin.start()
        self._checkin = checkin
        log.info("publishing worker status", extra={
            "event": "status.publishing", "worker": self.key, "run_dir": str(self.config.run_dir)})

    @_never_raises
    def close(self) -> None:
        """The worker is stopping cleanly: say so (not live from now on) and stop the timer."""
        with self._lock:
            self._state.stopped = True
        if self._checkin is not None:
            self._checkin.stop()
            self._checkin.publish()

    # --- the sync loop's calls -------------------------------------------------------------

    @_never_raises
    def heartbeat(self) -> None:
        """The worker is alive; called at least once a second by the sync loop."""
        if self._checkin is not None:
            self._checkin.healthy()

    @_never_raises
    def set_pending(self, count: int, oldest_age: float) -> None:
        """Pending (unsent) files and the age in seconds of the oldest unsent change."""
        now = time.time()
        count = max(0, int(count))
        with self._lock:
            self._state.pending = count
            self._state.oldest_pending_since = now - max(0.0, oldest_age) if count else None
        if self._metrics is not None:
            self._metrics["rrdsync_pending_files"].set(count)
            self._metrics["rrdsync_oldest_pending_seconds"].set(oldest_age if count else 0.0)

    @_never_raises
    def batch_finished(self, *, kind: str, result: str, exit_code: int, files: int,
                       nbytes: int, duration: float, lags: list[float],
                       error: str | None) -> None:
        """One rsync run ended. kind: events|full; result: ok|partial|failed.

        ``files``/``nbytes`` are what reached the destination; ``lags`` one value per
        file that reached it (change seen -> at destination). Only ``ok`` counts as a
        success: a ``partial`` run leaves files behind, so it starts (or continues) the
        "sends failing" clock just like ``failed``.
        """
        now = time.time()
        with self._lock:
            st = self._state
            st.last_batch = {"time": now, "kind": kind, "result": result,
                             "exit_code": exit_code, "files": files, "bytes": nbytes,
                             "duration_s": round(duration, 3)}
            if result == "ok":
                st.last_success = now
                st.failing_since = None
            else:
                if st.failing_since is None:
                    st.failing_since = now
                st.last_error = {"time": now, "message": _clip(error) or f"rsync {result}",
                                 "exit_code": exit_code, "kind": kind, "result": result}
        m = self._metrics
        if m is None:
            return
        m["rrdsync_batches"].labels(result=result).inc()
        m["rrdsync_rsync_exit_codes"].labels(code=str(exit_code)).inc()
        m["rrdsync_batch_duration_seconds"].observe(max(0.0, duration))
        if files > 0:
            m["rrdsync_files_sent"].inc(files)
        if nbytes > 0:
            m["rrdsync_bytes_sent"].inc(nbytes)
        hist = m["rrdsync_replication_lag_seconds"]
        for lag in lags:
            hist.observe(max(0.0, lag))
        if result == "ok":
            m["rrdsync_last_success_timestamp_seconds"].set(now)
            m["rrdsync_sends_failing_seconds"].set(0.0)

    @_never_raises
    def reconcile_started(self, reason: str) -> None:
        """A full pass began. reason: startup|overflow|interval|watch_fallback|dir_removed."""
        with self._lock:
            self._state.reconciling = reason
        if self._metrics is not None:
            self._metrics["rrdsync_rescans"].labels(reason=reason).inc()

    @_never_raises
    def reconcile_finished(self, reason: str, duration: float, ok: bool) -> None:
        """A full pass ended; the first ok one makes the worker eligible for readiness."""
        now = time.time()
        with self._lock:
            st = self._state
            st.reconciling = None
            st.last_reconcile = {"time": now, "reason": reason, "ok": ok,
                                 "duration_s": round(duration, 3)}
            first = ok and not st.reconciled
            if ok:
                st.reconciled = True
        m = self._metrics
        if m is not None:
            m["rrdsync_rescan_duration_seconds"].labels(reason=reason).observe(max(0.0, duration))
            if not ok:
                m["rrdsync_rescan_failures"].labels(reason=reason).inc()
            if ok:
                m["rrdsync_initial_sync_completed"].set(1)
        if first and self._checkin is not None:
            self._checkin.publish()  # readiness should not wait for the next tick

    @_never_raises
    def initial_progress(self, files_done: int, files_checked: int, total: int | None) -> None:
        """Progress of the first full pass (files sent, files checked, total if known)."""
        with self._lock:
            self._state.initial = {"files_sent": files_done, "files_checked": files_checked,
                                   "total": total}
        m = self._metrics
        if m is not None:
            m["rrdsync_initial_sync_files_sent"].set(files_done)
            m["rrdsync_initial_sync_files_checked"].set(files_checked)
            m["rrdsync_initial_sync_files_total"].set(total or 0)

    @_never_raises
    def ssh_connected(self, reconnect: bool) -> None:
        """The SSH master connection came up (reconnect=True after the first)."""
        now = time.time()
        with self._lock:
            ssh = self._state.ssh
            ssh["connected_at"] = now
            ssh["connects"] = int(ssh.get("connects", 0)) + 1
            if reconnect:
                ssh["reconnects"] = int(ssh.get("reconnects", 0)) + 1
        m = self._metrics
        if m is not None:
            m["rrdsync_ssh_connects"].inc()
            if reconnect:
                m["rrdsync_ssh_reconnects"].inc()

    @_never_raises
    def watch_overflow(self) -> None:
        """The kernel dropped watch events (inotify queue overflow)."""
        with self._lock:
            self._state.watch_overflows += 1
        if self._metrics is not None:
            self._metrics["rrdsync_watch_overflows"].inc()

    @_never_raises
    def delete_refused(self, reason: str) -> None:
        """The delete guard refused to mirror deletions."""
        with self._lock:
            self._state.delete_refused = {"time": time.time(), "reason": _clip(reason)}
        if self._metrics is not None:
            self._metrics["rrdsync_delete_refusals"].inc()

    # --- the timer's side ------------------------------------------------------------------

    def _snapshot(self, now: float) -> dict[str, Any]:
        """The record to write (timer thread); also refreshes the time-based gauges."""
        with self._lock:
            st = self._state
            st.written = now
            if self._checkin is not None:
                st.checkin = self._checkin.last_checkin
            data = st.to_dict()
            oldest = verdict.oldest_pending_age(st, now)
            failing = now - st.failing_since if st.failing_since is not None else 0.0
        m = self._metrics
        if m is not None:
            m["rrdsync_oldest_pending_seconds"].set(oldest)
            m["rrdsync_sends_failing_seconds"].set(failing)
        return data

    def _copy(self) -> WorkerState:
        with self._lock:
            return WorkerState(**self._state.to_dict())

    def _check_reconciled(self) -> tuple[bool, str]:
        problem = verdict.reconcile_problem(self._copy())
        return problem is None, problem or "first full reconciliation completed"

    def _check_sending(self) -> tuple[bool, str]:
        problem = verdict.failing_problem(self._copy(), time.time(), self.config.max_lag)
        self._log_transition()
        return problem is None, problem or "sends not failing"

    def _check_backlog(self) -> tuple[bool, str]:
        problem = verdict.backlog_problem(self._copy(), time.time(), self.config.max_lag)
        return problem is None, problem or "backlog within max lag"

    def _log_transition(self) -> None:
        """Log when this worker's own view of its readiness changes (not every tick)."""
        st = self._copy()
        problems = verdict.readiness_problems(st, time.time(), self.config.max_lag)
        ready = not problems
        if ready == self._was_ready:
            return
        if ready:
            log.info("worker ready", extra={"event": "status.ready"})
        elif st.reconciled:  # before the first reconciliation, not ready is expected
            log.warning("worker not ready: %s", "; ".join(problems),
                        extra={"event": "status.not_ready", "reason": "; ".join(problems)})
        self._was_ready = ready


class _OneDestination:
    """Transitional: the single-destination publisher behind the per-destination
    interface (replaced when the per-destination status lands)."""

    def __init__(self, pub: Any) -> None:
        self._pub = pub

    def __getattr__(self, name: str) -> Any:
        if name in ("failing_paths", "activity"):
            return lambda *a, **k: None
        return getattr(self._pub, name)


def _destination(self: Any, dest: Any) -> Any:
    return _OneDestination(self)


Publisher.destination = _destination  # type: ignore[attr-defined]
Publisher.rescan_started = Publisher.reconcile_started  # type: ignore[attr-defined]
Publisher.journal_problem = lambda self, error: None  # type: ignore[attr-defined]
Publisher.activity = lambda self, text: None  # type: ignore[attr-defined]
DestinationPublisher = Any


class NullPublisher:
    """Publishes nothing: for one-shot runs (``rrdsync once`` as an init container or
    CronJob) where no status server is watching and the run dir may be read-only."""

    def destination(self, dest: Any) -> Any:
        return self

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name in ("failing_paths", "activity", "rescan_started", "journal_problem"):
            return lambda *args, **kwargs: None
        if name.startswith("_") or not hasattr(Publisher, name):
            raise AttributeError(name)
        return lambda *args, **kwargs: None
