"""What a worker tells the status server: health state and metrics in ``RRDSYNC_RUN_DIR``.

The CLI constructs ``Publisher(config, destinations)``; the engine calls
:meth:`Publisher.start` once, :meth:`Publisher.heartbeat` at least once a second (also
during long rsync runs), gets one :class:`DestinationPublisher` per destination from
:meth:`Publisher.destination`, and calls the other methods as things happen (see
``api.py`` for the protocols). Every method is cheap (a lock, a few assignments, an mmap
write for metrics) and never raises into the engine: a broken status directory must not
stop replication, it only makes the worker look unhealthy, which is the truth.

File writes happen on healthcheck-python's timer thread (``checkin.py``) every
``min(1 s, RRDSYNC_LIVENESS_TIMEOUT / 4)``, plus once at start, once when a destination
completes its first reconciliation, and once at close. The check-in time the status
server judges is the one :meth:`Publisher.heartbeat` sets, so a sync loop that hangs goes
stale even while the timer thread keeps writing.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .. import __version__, log
from . import layout, verdict
from .api import DestinationPublisher, Labelled, WorkerSettings
from .null import NullDestinationPublisher, NullPublisher
from .state import DestinationState, WorkerState, identity, state_path, worker_key

LOG = log.get("status")
__all__ = ["NullDestinationPublisher", "NullPublisher", "Publisher"]

F = TypeVar("F", bound=Callable[..., Any])
MAX_EXAMPLES = 5


def _never_raises(method: F) -> F:
    """Log (once per method) instead of raising into the engine."""
    failed: set[str] = set()

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # publishing must never stop replication
            if method.__qualname__ not in failed:
                failed.add(method.__qualname__)
                LOG.log(logging.WARNING, "publish_failed",
                        f"status publishing failed in {method.__name__}", exc_info=True,
                        error=f"{type(exc).__name__}: {exc}")
            return None

    return wrapper  # type: ignore[return-value]


def _clip(text: str | None, limit: int = 500) -> str | None:
    if text is None:
        return None
    text = str(text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Publisher:
    """Publishes one worker's health and metrics into ``RRDSYNC_RUN_DIR``.

    ``destinations`` are the worker's destinations as the config lists them (anything
    with a ``label``); they are part of the worker's identity and have state (not ready
    until reconciled) from the first file on. :meth:`destination` hands out their
    publishers, and also accepts a destination not listed here.
    """

    def __init__(self, config: WorkerSettings, destinations: Iterable[Labelled] = ()) -> None:
        self.config = config
        self._lock = threading.Lock()
        labels = list(dict.fromkeys(d.label for d in destinations))
        now = time.time()
        ident = identity(config.source_dir, labels)
        self._started = now
        self.key = worker_key(ident, now, os.getpid())
        self._state = WorkerState(
            key=self.key, identity=ident, pid=os.getpid(), hostname=socket.gethostname(),
            started=now, checkin=now, version=__version__,
            destinations={label: DestinationState(label) for label in labels})
        self._dests: dict[str, _Destination] = {label: _Destination(self, label)
                                                for label in labels}
        self._metrics: Any = None
        self._checkin: Any = None
        self._was_ready: bool | None = None
        self._dest_was_ready: dict[str, bool] = {}

    # --- lifecycle ---------------------------------------------------------------------

    @_never_raises
    def start(self) -> None:
        """Called once before the first reconciliation: files exist from here on."""
        from .checkin import CheckIn
        from .metrics import WorkerMetrics

        dirs = layout.prepare(self.config.run_dir)
        key = self.key
        metrics = WorkerMetrics(dirs.metrics, lambda: key)
        metrics["rrdsync_worker_start_time_seconds"].set(self._started)
        with self._lock:
            self._metrics = metrics
            for dest in self._dests.values():
                dest.bind(metrics.destination(dest.label))
        interval = max(0.05, min(1.0, self.config.liveness_timeout / 4))
        checkin = CheckIn(prefix=f"rrdsync-{self.key}",
                          path=state_path(dirs.health, self.key), interval=interval,
                          timeout=self.config.liveness_timeout, snapshot=self._snapshot)
        checkin.add_check(self._check_journal)
        checkin.add_check(self._check_destinations)
        checkin.healthy()
        checkin.live()
        checkin.publish()
        checkin.start()
        self._checkin = checkin
        LOG.info("publishing_started", "publishing the worker's status", worker=self.key,
                 run_dir=str(self.config.run_dir), destinations=list(self._dests))

    @_never_raises
    def close(self) -> None:
        """The worker is stopping cleanly: say so (not live from now on) and stop the timer."""
        with self._lock:
            self._state.stopped = True
        if self._checkin is not None:
            self._checkin.stop()
            self._checkin.publish()

    # --- worker-level calls ----------------------------------------------------------------

    @_never_raises
    def heartbeat(self) -> None:
        """The worker is alive; called at least once a second by the main loop."""
        if self._checkin is not None:
            self._checkin.healthy()

    @_never_raises
    def watch_overflow(self) -> None:
        """The kernel dropped watch events (inotify queue overflow)."""
        with self._lock:
            self._state.watch_overflows += 1
        if self._metrics is not None:
            self._metrics["rrdsync_watch_overflows"].inc()

    @_never_raises
    def rescan_started(self, reason: str) -> None:
        """One walk of the source began (startup|overflow|interval|watch_fallback|...)."""
        with self._lock:
            self._state.last_rescan = {"time": time.time(), "reason": reason}
        if self._metrics is not None:
            self._metrics["rrdsync_rescans"].labels(reason=reason).inc()

    @_never_raises
    def journal_problem(self, error: str | None) -> None:
        """The pending-change journal cannot be written (None: it can again)."""
        with self._lock:
            st = self._state
            if error is None:
                st.journal_problem = None
            else:
                since = (st.journal_problem or {}).get("since") or time.time()
                st.journal_problem = {"error": _clip(error), "since": since}

    @_never_raises
    def activity(self, text: str | None) -> None:
        """What the worker as a whole is doing ("adding watches"); None when idle."""
        with self._lock:
            self._state.activity = _activity(self._state.activity, text)

    def destination(self, dest: Labelled) -> DestinationPublisher:
        """The publisher for one destination (the same object on every call)."""
        label = dest.label
        with self._lock:
            found = self._dests.get(label)
            if found is None:
                found = self._dests[label] = _Destination(self, label)
                self._state.destinations[label] = DestinationState(label)
                if self._metrics is not None:
                    try:
                        found.bind(self._metrics.destination(label))
                    except Exception as exc:  # never raise into the engine
                        LOG.warning("publish_failed", "cannot create destination metrics",
                                    destination=label, error=str(exc))
            return found

    # --- the timer's side ------------------------------------------------------------------

    def _snapshot(self, now: float) -> dict[str, Any]:
        """The record to write (timer thread); also refreshes the time-based gauges."""
        with self._lock:
            st = self._state
            st.written = now
            if self._checkin is not None:
                st.checkin = self._checkin.last_checkin
            data = st.to_dict()
            ages = {label: (verdict.oldest_pending_age(ds, now),
                            now - ds.failing_since if ds.failing_since is not None else 0.0)
                    for label, ds in st.destinations.items()}
            dests = dict(self._dests)
        for label, (oldest, failing) in ages.items():
            m = dests[label].metrics
            if m is not None:
                m["rrdsync_oldest_pending_seconds"].set(oldest)
                m["rrdsync_sends_failing_seconds"].set(failing)
        return data

    def _copy(self) -> WorkerState:
        with self._lock:
            return self._state.copy()

    def _check_journal(self) -> tuple[bool, str]:
        problem = verdict.journal_problem(self._copy())
        return problem is None, problem or "journal writable"

    def _check_destinations(self) -> tuple[bool, str]:
        st = self._copy()
        now = time.time()
        problems = verdict.readiness_problems(st, now, self.config.max_lag)
        self._log_transitions(st, now, problems)
        return not problems, "; ".join(problems) or "every destination ready"

    def _log_transitions(self, st: WorkerState, now: float, problems: list[str]) -> None:
        """Log when this worker's own view of readiness changes (not every tick)."""
        for label, ds in st.destinations.items():
            reasons = verdict.destination_problems(ds, now, self.config.max_lag)
            ready = not reasons
            before = self._dest_was_ready.get(label)
            if ready != before:
                self._dest_was_ready[label] = ready
                if ready:
                    LOG.info("destination_ready", destination=label)
                elif ds.reconciled:  # before the first reconciliation, expected
                    LOG.warning("destination_not_ready", "; ".join(reasons),
                                destination=label, reason="; ".join(reasons))
        ready = not problems
        if ready == self._was_ready:
            return
        self._was_ready = ready
        if ready:
            LOG.info("worker_ready", "every destination ready and the journal writable",
                     worker=st.key)
        elif all(ds.reconciled for ds in st.destinations.values()):
            LOG.warning("worker_not_ready", "; ".join(problems), worker=st.key,
                        reason="; ".join(problems))

    def _publish_now(self) -> None:
        if self._checkin is not None:
            self._checkin.publish()


def _activity(current: dict[str, Any] | None, text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    text = _clip(text, 300) or ""
    if current is not None and current.get("text") == text:
        return current
    return {"text": text, "since": time.time()}


class _Destination:
    """The real :class:`~rrdsync.status.api.DestinationPublisher` for one label."""

    def __init__(self, worker: Publisher, label: str) -> None:
        self.worker = worker
        self.label = label
        self.metrics: Any = None  # DestinationMetrics once the worker has started

    def bind(self, metrics: Any) -> None:
        self.metrics = metrics

    def _state(self) -> DestinationState:
        """This destination's record; call with the worker's lock held."""
        return self.worker._state.destinations[self.label]

    @_never_raises
    def set_pending(self, count: int, oldest_age: float) -> None:
        now = time.time()
        count = max(0, int(count))
        oldest_age = max(0.0, float(oldest_age))
        with self.worker._lock:
            ds = self._state()
            ds.pending = count
            ds.oldest_pending_since = now - oldest_age if count else None
        m = self.metrics
        if m is not None:
            m["rrdsync_pending_files"].set(count)
            m["rrdsync_oldest_pending_seconds"].set(oldest_age if count else 0.0)

    @_never_raises
    def batch_finished(self, *, kind: str, result: str, exit_code: int, files: int,
                       nbytes: int, duration: float, lags: list[float],
                       error: str | None) -> None:
        """One rsync run ended. Only ``ok`` counts as a success: a ``partial`` run leaves
        files behind, so it starts (or continues) the "sends failing" clock like
        ``failed``. ``files``/``nbytes`` reached the destination; ``lags`` has one value
        per file that reached it (change seen -> at destination)."""
        now = time.time()
        with self.worker._lock:
            ds = self._state()
            ds.last_batch = {"time": now, "kind": kind, "result": result,
                             "exit_code": exit_code, "files": files, "bytes": nbytes,
                             "duration_s": round(duration, 3)}
            if result == "ok":
                ds.last_success = now
                ds.failing_since = None
            else:
                if ds.failing_since is None:
                    ds.failing_since = now
                ds.last_error = {"time": now, "message": _clip(error) or f"rsync {result}",
                                 "exit_code": exit_code, "kind": kind, "result": result}
        m = self.metrics
        if m is None:
            return
        m.labelled("rrdsync_batches", result=result).inc()
        m.labelled("rrdsync_rsync_exit_codes", code=str(exit_code)).inc()
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
    def reconcile_finished(self, reason: str, duration: float, ok: bool) -> None:
        """A full pass ended; the first ok one makes the destination eligible for
        readiness (published at once, not at the next tick)."""
        now = time.time()
        with self.worker._lock:
            ds = self._state()
            ds.last_reconcile = {"time": now, "reason": reason, "ok": ok,
                                 "duration_s": round(duration, 3)}
            first = ok and not ds.reconciled
            if ok:
                ds.reconciled = True
        m = self.metrics
        if m is not None:
            m.labelled("rrdsync_rescan_duration_seconds", reason=reason).observe(
                max(0.0, duration))
            if ok:
                m["rrdsync_initial_sync_completed"].set(1)
            else:
                m.labelled("rrdsync_rescan_failures", reason=reason).inc()
        if first:
            self.worker._publish_now()

    @_never_raises
    def initial_progress(self, files_sent: int, files_checked: int, total: int | None) -> None:
        with self.worker._lock:
            self._state().initial = {"files_sent": files_sent, "files_checked": files_checked,
                                     "total": total}
        m = self.metrics
        if m is not None:
            m["rrdsync_initial_sync_files_sent"].set(files_sent)
            m["rrdsync_initial_sync_files_checked"].set(files_checked)
            m["rrdsync_initial_sync_files_expected"].set(total or 0)

    @_never_raises
    def ssh_connected(self, reconnect: bool) -> None:
        now = time.time()
        with self.worker._lock:
            ssh = self._state().ssh
            ssh["connected_at"] = now
            ssh["connects"] = int(ssh.get("connects", 0)) + 1
            if reconnect:
                ssh["reconnects"] = int(ssh.get("reconnects", 0)) + 1
        m = self.metrics
        if m is not None:
            m["rrdsync_ssh_connects"].inc()
            if reconnect:
                m["rrdsync_ssh_reconnects"].inc()

    @_never_raises
    def delete_refused(self, reason: str) -> None:
        with self.worker._lock:
            self._state().delete_refused = {"time": time.time(), "reason": _clip(reason)}
        if self.metrics is not None:
            self.metrics["rrdsync_delete_refusals"].inc()

    @_never_raises
    def failing_paths(self, source: int, destination: int, examples: list[str]) -> None:
        source, destination = max(0, int(source)), max(0, int(destination))
        with self.worker._lock:
            ds = self._state()
            if not source and not destination:
                ds.failing_paths = {}
            else:
                since = ds.failing_paths.get("since") or time.time()
                ds.failing_paths = {
                    "source": source, "destination": destination, "since": since,
                    "examples": [_clip(e, 300) for e in list(examples)[:MAX_EXAMPLES]]}
        m = self.metrics
        if m is not None:
            m.labelled("rrdsync_failing_files", side="source").set(source)
            m.labelled("rrdsync_failing_files", side="destination").set(destination)

    @_never_raises
    def activity(self, text: str | None) -> None:
        with self.worker._lock:
            ds = self._state()
            ds.activity = _activity(ds.activity, text)
