"""Every Prometheus metric rrdsync exports, defined once.

The worker creates the ``WORKER`` metrics in prometheus-client's multiprocess mode (one
set of mmap files per worker incarnation in ``RRDSYNC_RUN_DIR/metrics``); the status
server merges those files and adds the ``SERVER`` metrics it computes from health state.
:func:`exported_names` derives every series name (with ``_total``, ``_bucket``, ``_sum``,
``_count``) from these tables; the dashboard and alert-rule tests check every PromQL
expression against it, so a renamed metric cannot silently break a panel or an alert.

Metrics of things that happen per destination carry the label ``destination``
(``Destination.label``: the entry of ``RRDSYNC_DEST`` as written, minus any ``user@``).
No gauge name ends in ``_total`` (``promtool check metrics`` reserves it for counters).

Gauges that describe the present (pending files, oldest pending age, failing paths,
initial progress) use the ``live*`` multiprocess modes: the status server drops the files
of workers that are not live (see ``collector.py``), so a dead worker's last backlog never lingers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import _prometheus_adapter

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
# the gauge multiprocess modes used below (prometheus-client accepts these and others)
GaugeMode = Literal["all", "max", "livesum", "livemax", "livemin"]


@dataclass(frozen=True)
class Spec:
    """One metric. ``name`` is the family name (counters get ``_total`` on export)."""

    name: str
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()
    mode: GaugeMode | None = None  # gauge multiprocess mode
    buckets: tuple[float, ...] | None = None

    def series(self) -> tuple[str, ...]:
        """Names of the samples this metric exports."""
        if self.kind == "counter":
            return (self.name + "_total",)
        if self.kind == "histogram":
            return tuple(self.name + s for s in ("_bucket", "_sum", "_count"))
        return (self.name,)


D = ("destination",)  # Destination.label: the entry of RRDSYNC_DEST as written minus user@

# Worker metrics, one series per destination where the thing happens per destination.
WORKER: tuple[Spec, ...] = (
    Spec("rrdsync_files_sent", "counter", "Files transferred to the destination.", D),
    Spec("rrdsync_bytes_sent", "counter",
         "Bytes of file data sent to the destination (rsync's total size sent).", D),
    Spec("rrdsync_batches", "counter", "rsync runs by result (ok, partial, failed).",
         (*D, "result")),
    Spec("rrdsync_rsync_exit_codes", "counter", "rsync runs by exit code (0 = success).",
         (*D, "code")),
    Spec("rrdsync_batch_duration_seconds", "histogram", "Wall time of one rsync run.", D,
         buckets=BATCH_DURATION_BUCKETS),
    Spec("rrdsync_pending_files", "gauge",
         "Changed files not yet at the destination (pending, in flight, or refused by the "
         "destination).", D, mode="livesum"),
    Spec("rrdsync_oldest_pending_seconds", "gauge",
         "Age of the oldest change not yet at the destination (0 when none).", D,
         mode="livemax"),
    Spec("rrdsync_last_success_timestamp_seconds", "gauge",
         "Unix time of the last rsync run to the destination that succeeded.", D, mode="max"),
    Spec("rrdsync_sends_failing_seconds", "gauge",
         "How long rsync runs to the destination have been failing without a success in "
         "between (0 when not).", D, mode="livemax"),
    Spec("rrdsync_replication_lag_seconds", "histogram",
         "Per file: change seen by the worker until the change is at the destination.", D,
         buckets=LAG_BUCKETS),
    Spec("rrdsync_failing_files", "gauge",
         "Paths failing on their own: unreadable at the source (side=source, reported, "
         "not retried into readiness) or unwritable at the destination (side=destination, "
         "counted as unsent).", (*D, "side"), mode="livesum"),
    Spec("rrdsync_ssh_connects", "counter", "SSH master connections established.", D),
    Spec("rrdsync_ssh_reconnects", "counter",
         "SSH master connections re-established after the first one.", D),
    Spec("rrdsync_delete_refusals", "counter",
         "Times the delete guard refused to mirror deletions.", D),
    Spec("rrdsync_rescan_failures", "counter",
         "Full reconciliations to the destination that did not complete.", (*D, "reason")),
    Spec("rrdsync_rescan_duration_seconds", "histogram",
         "Duration of full reconciliations to the destination.", (*D, "reason"),
         buckets=RESCAN_DURATION_BUCKETS),
    Spec("rrdsync_initial_sync_files_expected", "gauge",
         "Files the first full reconciliation has to check (0 until known).", D,
         mode="livesum"),
    Spec("rrdsync_initial_sync_files_checked", "gauge",
         "Files the first full reconciliation has checked so far.", D, mode="livesum"),
    Spec("rrdsync_initial_sync_files_sent", "gauge",
         "Files the first full reconciliation has sent so far.", D, mode="livesum"),
    Spec("rrdsync_initial_sync_completed", "gauge",
         "1 once the first full reconciliation to the destination completed (min over live "
         "workers).", D, mode="livemin"),
    # worker level
    Spec("rrdsync_rescans", "counter", "Walks of the whole source tree started, by reason.",
         ("reason",)),
    Spec("rrdsync_watch_overflows", "counter",
         "Times the kernel dropped file-change events (inotify queue overflow)."),
    Spec("rrdsync_worker_start_time_seconds", "gauge",
         "Unix time the newest worker started.", mode="max"),
)

# Computed by the status server at each scrape from the workers' published state.
SERVER: tuple[Spec, ...] = (
    Spec("rrdsync_live", "gauge", "1 while /healthz answers 200."),
    Spec("rrdsync_ready", "gauge", "1 while /readyz answers 200."),
    Spec("rrdsync_destination_ready", "gauge",
         "1 while the destination is ready (as /readyz judges it) in every live worker.", D),
    Spec("rrdsync_workers", "gauge",
         "Workers the status server knows, by state (live, not_live, replaced, stopped).",
         ("state",)),
    Spec("rrdsync_build_info", "gauge",
         "Always 1; the version of rrdsync that the status server and each live worker run.",
         ("version",)),
)

FAILING_SIDES = ("source", "destination")


def exported_names() -> set[str]:
    """Every sample name ``/metrics`` can contain, for validating dashboards and alerts."""
    return {s for spec in WORKER + SERVER for s in spec.series()}


def spec(name: str) -> Spec:
    return next(s for s in WORKER + SERVER if s.name == name)


class WorkerMetrics:
    """The worker's metric objects, created in multiprocess mode for one incarnation.

    The process identifier (part of every file name) is the worker key, so a restarted
    worker never reopens and continues its predecessor's files even when it gets the same
    pid (see ``_prometheus_adapter.py``). ``prometheus_client`` is imported lazily, after
    the multiprocess value class is in place.
    """

    def __init__(self, directory: Path, process_identifier: Callable[[], str]) -> None:
        _prometheus_adapter.use_multiprocess(directory, process_identifier)
        from prometheus_client import Counter, Gauge, Histogram

        self.m: dict[str, Any] = {}
        for s in WORKER:
            metric: Counter | Gauge | Histogram
            if s.kind == "counter":
                metric = Counter(s.name, s.help, s.labels, registry=None)
            elif s.kind == "gauge":
                metric = Gauge(s.name, s.help, s.labels, registry=None,
                               multiprocess_mode=s.mode or "all")
            else:
                metric = Histogram(s.name, s.help, s.labels, registry=None,
                                   buckets=s.buckets or Histogram.DEFAULT_BUCKETS)
            self.m[s.name] = metric
        # Label values known in advance exist from the start (0), so rate() and alerts
        # see a series before the first event.
        for reason in RESCAN_REASONS:
            self.m["rrdsync_rescans"].labels(reason=reason)

    def __getitem__(self, name: str) -> Any:
        return self.m[name]

    def destination(self, label: str) -> DestinationMetrics:
        return DestinationMetrics(self, label)


class DestinationMetrics:
    """One destination's children of the worker metrics (label values bound once)."""

    def __init__(self, worker: WorkerMetrics, label: str) -> None:
        self.label = label
        self._worker = worker
        self.c: dict[str, Any] = {}
        for s in WORKER:
            if s.labels == D:
                self.c[s.name] = worker[s.name].labels(label)
        for result in BATCH_RESULTS:
            self.labelled("rrdsync_batches", result=result)
        self.labelled("rrdsync_rsync_exit_codes", code="0")
        for side in FAILING_SIDES:
            self.labelled("rrdsync_failing_files", side=side).set(0)
        for reason in RESCAN_REASONS:
            self.labelled("rrdsync_rescan_failures", reason=reason)
        self.c["rrdsync_initial_sync_completed"].set(0)

    def __getitem__(self, name: str) -> Any:
        return self.c[name]

    def labelled(self, name: str, **labels: str) -> Any:
        return self._worker[name].labels(destination=self.label, **labels)
