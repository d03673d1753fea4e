"""Every Prometheus metric rrdsync exports, defined once.

The worker creates the ``WORKER`` metrics in prometheus-client's multiprocess mode (one
set of mmap files per worker incarnation in ``RRDSYNC_RUN_DIR/metrics``); the status
server merges those files and adds the ``SERVER`` metrics it computes from health state.
:func:`exported_names` derives every series name (with ``_total``, ``_bucket``, ``_sum``,
``_count``) from these tables; the dashboard and alert-rule tests check every PromQL
expression against it, so a renamed metric cannot silently break a panel or an alert.

Gauges that describe the present (pending files, oldest pending age, initial progress)
use the ``live*`` multiprocess modes: the status server drops the files of workers that
are not live (see ``collector.py``), so a dead worker's last backlog never lingers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Seconds-scale replication lag: the floor is settle + one rsync round trip (~0.1-0.6 s
# with default settings), a healthy worker stays under max delay + transfer (a few s),
# and the default RRDSYNC_MAX_LAG is 5 min; the top buckets show outages.
LAG_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0,
               120.0, 300.0, 600.0, 1800.0, 3600.0)
BATCH_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
RESCAN_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
                           3600.0, 7200.0)

BATCH_RESULTS = ("ok", "partial", "failed")
RESCAN_REASONS = ("startup", "overflow", "interval", "watch_fallback", "dir_removed")


@dataclass(frozen=True)
class Spec:
    """One metric. ``name`` is the family name (counters get ``_total`` on export)."""

    name: str
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()
    mode: str | None = None  # gauge multiprocess mode
    buckets: tuple[float, ...] | None = None

    def series(self) -> tuple[str, ...]:
        """Names of the samples this metric exports."""
        if self.kind == "counter":
            return (self.name + "_total",)
        if self.kind == "histogram":
            return tuple(self.name + s for s in ("_bucket", "_sum", "_count"))
        return (self.name,)


WORKER: tuple[Spec, ...] = (
    Spec("rrdsync_files_sent", "counter", "Files transferred to the destination."),
    Spec("rrdsync_bytes_sent", "counter", "Bytes of file data sent (rsync's total size sent)."),
    Spec("rrdsync_batches", "counter", "rsync runs by result (ok, partial, failed).",
         ("result",)),
    Spec("rrdsync_rsync_exit_codes", "counter", "rsync runs by exit code (0 = success).",
         ("code",)),
    Spec("rrdsync_batch_duration_seconds", "histogram", "Wall time of one rsync run.",
         buckets=BATCH_DURATION_BUCKETS),
    Spec("rrdsync_pending_files", "gauge", "Changed files not yet at the destination.",
         mode="livesum"),
    Spec("rrdsync_oldest_pending_seconds", "gauge",
         "Age of the oldest change not yet at the destination (0 when none).", mode="livemax"),
    Spec("rrdsync_last_success_timestamp_seconds", "gauge",
         "Unix time of the last rsync run that succeeded.", mode="max"),
    Spec("rrdsync_sends_failing_seconds", "gauge",
         "How long rsync runs have been failing without a success in between (0 when not).",
         mode="livemax"),
    Spec("rrdsync_replication_lag_seconds", "histogram",
         "Per file: change seen by the worker until the change is at the destination.",
         buckets=LAG_BUCKETS),
    Spec("rrdsync_rescans", "counter", "Full reconciliations started, by reason.",
         ("reason",)),
    Spec("rrdsync_rescan_failures", "counter", "Full reconciliations that did not complete.",
         ("reason",)),
    Spec("rrdsync_rescan_duration_seconds", "histogram", "Duration of full reconciliations.",
         ("reason",), buckets=RESCAN_DURATION_BUCKETS),
    Spec("rrdsync_watch_overflows", "counter",
         "Times the kernel dropped file-change events (inotify queue overflow)."),
    Spec("rrdsync_ssh_connects", "counter", "SSH master connections established."),
    Spec("rrdsync_ssh_reconnects", "counter",
         "SSH master connections re-established after the first one."),
    Spec("rrdsync_delete_refusals", "counter",
         "Times the delete guard refused to mirror deletions."),
    Spec("rrdsync_initial_sync_files_total", "gauge",
         "Files the first full reconciliation has to check (0 until known).", mode="livesum"),
    Spec("rrdsync_initial_sync_files_checked", "gauge",
         "Files the first full reconciliation has checked so far.", mode="livesum"),
    Spec("rrdsync_initial_sync_files_sent", "gauge",
         "Files the first full reconciliation has sent so far.", mode="livesum"),
    Spec("rrdsync_initial_sync_completed", "gauge",
         "1 once the first full reconciliation completed (min over live workers).",
         mode="livemin"),
    Spec("rrdsync_worker_start_time_seconds", "gauge",
         "Unix time the newest worker started.", mode="max"),
)

SERVER: tuple[Spec, ...] = (
    Spec("rrdsync_live", "gauge", "1 while /healthz answers 200."),
    Spec("rrdsync_ready", "gauge", "1 while /readyz answers 200."),
    Spec("rrdsync_workers", "gauge",
         "Workers the status server knows, by state (live, not_live, replaced, stopped).",
         ("state",)),
)


def exported_names() -> set[str]:
    """Every sample name ``/metrics`` can contain, for validating dashboards and alerts."""
    return {s for spec in WORKER + SERVER for s in spec.series()}


class WorkerMetrics:
    """The worker's metric objects, created in multiprocess mode for one incarnation.

    ``prometheus_client`` is imported here, lazily, after ``layout.prepare`` has set
    ``PROMETHEUS_MULTIPROC_DIR``; the value class is also set explicitly so it does not
    matter whether something imported the library earlier. The process identifier (part
    of every file name) is the worker key, so a restarted worker never reopens and
    continues its predecessor's files even when it gets the same pid.
    """

    def __init__(self, process_identifier: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram, values

        values.ValueClass = values.MultiProcessValue(process_identifier)
        self.m: dict[str, Any] = {}
        for spec in WORKER:
            if spec.kind == "counter":
                metric = Counter(spec.name, spec.help, spec.labels, registry=None)
            elif spec.kind == "gauge":
                metric = Gauge(spec.name, spec.help, spec.labels, registry=None,
                               multiprocess_mode=spec.mode or "all")
            else:
                metric = Histogram(spec.name, spec.help, spec.labels, registry=None,
                                   buckets=spec.buckets or Histogram.DEFAULT_BUCKETS)
            self.m[spec.name] = metric
        # Label values known in advance exist from the start (0), so rate() and alerts
        # see a series before the first event.
        for result in BATCH_RESULTS:
            self.m["rrdsync_batches"].labels(result=result)
        self.m["rrdsync_rsync_exit_codes"].labels(code="0")
        for reason in RESCAN_REASONS:
            self.m["rrdsync_rescans"].labels(reason=reason)
            self.m["rrdsync_rescan_failures"].labels(reason=reason)

    def __getitem__(self, name: str) -> Any:
        return self.m[name]
