"""``/metrics``: the workers' multiprocess files, filtered by liveness, plus server gauges.

prometheus-client's ``live*`` gauge modes only work if someone deletes a dead process's
files (``mark_process_dead``, which a SIGKILLed or SIGSTOPped worker never calls, and
deleting a stopped worker's mmap files would lose its writes when it resumes). Instead,
at every scrape the status server leaves out the ``gauge_live*`` files of every worker
that is not live *now*, by the same verdict as ``/healthz``. Counters and histograms of
dead workers stay in the sum, so totals never go backwards when a worker restarts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .metrics import SERVER
from .verdict import Report

log = logging.getLogger("rrdsync.status")


def _live_gauge_key(filename: str) -> str | None:
    """``gauge_livesum_<key>.db`` -> ``<key>``; None for files that are always kept."""
    parts = filename[:-3].split("_", 2)
    if len(parts) == 3 and parts[0] == "gauge" and parts[1].startswith("live"):
        return parts[2]
    return None


def worker_files(metrics_dir: Path, live_keys: set[str]) -> list[str]:
    """The ``.db`` files to merge: everything but live-mode gauges of non-live workers."""
    try:
        names = sorted(os.listdir(metrics_dir))
    except OSError:
        return []
    keep = []
    for name in names:
        if not name.endswith(".db"):
            continue
        key = _live_gauge_key(name)
        if key is None or key in live_keys:
            keep.append(str(metrics_dir / name))
    return keep


class WorkerFilesCollector:
    """Merges the kept files with prometheus-client's own multiprocess merge."""

    def __init__(self, metrics_dir: Path, live_keys: set[str]) -> None:
        self.metrics_dir = metrics_dir
        self.live_keys = live_keys

    def collect(self) -> Iterable[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = worker_files(self.metrics_dir, self.live_keys)
        try:
            return MultiProcessCollector.merge(files, accumulate=True)
        except Exception:  # one bad file must not blank the whole page
            good = []
            for f in files:
                try:
                    MultiProcessCollector.merge([f], accumulate=True)
                    good.append(f)
                except Exception as exc:
                    log.warning("skipping unreadable metrics file %s: %s", f, exc,
                                extra={"event": "status.bad_metrics_file"})
            return MultiProcessCollector.merge(good, accumulate=True)


class StatusCollector:
    """``rrdsync_live``, ``rrdsync_ready`` and ``rrdsync_workers{state}`` from one report."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        helps = {s.name: s.help for s in SERVER}
        r = self.report
        yield GaugeMetricFamily("rrdsync_live", helps["rrdsync_live"], value=int(r.live))
        yield GaugeMetricFamily("rrdsync_ready", helps["rrdsync_ready"], value=int(r.ready))
        workers = GaugeMetricFamily("rrdsync_workers", helps["rrdsync_workers"],
                                    labels=["state"])
        live = sum(1 for w in r.workers if w.live)
        workers.add_metric(["live"], live)
        workers.add_metric(["not_live"], len(r.workers) - live)
        workers.add_metric(["replaced"], len(r.replaced))
        workers.add_metric(["stopped"], len(r.stopped))
        yield workers


def render(metrics_dir: Path, report: Report, accept: str | None) -> tuple[bytes, str]:
    """The ``/metrics`` body and content type (OpenMetrics if the scraper asks for it)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerFilesCollector(metrics_dir, report.live_keys()))
    registry.register(StatusCollector(report))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
