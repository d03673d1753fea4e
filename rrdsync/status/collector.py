"""``/metrics``: the workers' multiprocess files, filtered by liveness, plus server gauges.

prometheus-client's ``live*`` gauge modes only work if someone deletes a dead process's
files (``mark_process_dead``, which a SIGKILLed or SIGSTOPped worker never calls, and
deleting a stopped worker's mmap files would lose its writes when it resumes). Instead,
at every scrape the status server leaves out the ``gauge_live*`` files of every worker
that is not live *now*, by the same verdict as ``/healthz``. Counters and histograms of
dead workers stay in the sum, so totals never go backwards when a worker restarts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import __version__, log
from . import _prometheus_adapter as prom
from .metrics import SERVER
from .verdict import Report

LOG = log.get("status")


def worker_files(metrics_dir: Path, live_keys: set[str]) -> list[str]:
    """The ``.db`` files to merge: everything but live-mode gauges of non-live workers."""
    try:
        names = sorted(os.listdir(metrics_dir))
    except OSError:
        return []
    keep = []
    for name in names:
        kind = prom.file_kind(name)
        if kind is None:
            continue
        typ, mode, ident = kind
        if typ == "gauge" and prom.is_live_gauge(mode) and ident not in live_keys:
            continue
        keep.append(str(metrics_dir / name))
    return keep


class WorkerFilesCollector:
    """Merges the kept files with prometheus-client's own multiprocess merge."""

    def __init__(self, metrics_dir: Path, live_keys: set[str]) -> None:
        self.metrics_dir = metrics_dir
        self.live_keys = live_keys

    def collect(self) -> Iterable[Any]:
        files = worker_files(self.metrics_dir, self.live_keys)
        try:
            return prom.merge(files)
        except Exception:  # one bad file must not blank the whole page
            good = []
            for f in files:
                try:
                    prom.merge([f])
                    good.append(f)
                except Exception as exc:
                    LOG.warning("metrics_file_unreadable", "skipping an unreadable metrics file",
                                path=f, error=f"{type(exc).__name__}: {exc}")
            return prom.merge(good)


class StatusCollector:
    """The ``SERVER`` metrics (``metrics.py``), computed from one report."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        helps = {s.name: s.help for s in SERVER}
        r = self.report
        yield GaugeMetricFamily("rrdsync_live", helps["rrdsync_live"], value=int(r.live))
        yield GaugeMetricFamily("rrdsync_ready", helps["rrdsync_ready"], value=int(r.ready))
        dest = GaugeMetricFamily("rrdsync_destination_ready",
                                 helps["rrdsync_destination_ready"], labels=["destination"])
        for label, v in sorted(r.destinations().items()):
            dest.add_metric([label], int(v.ready))
        yield dest
        workers = GaugeMetricFamily("rrdsync_workers", helps["rrdsync_workers"],
                                    labels=["state"])
        live = sum(1 for w in r.workers if w.live)
        workers.add_metric(["live"], live)
        workers.add_metric(["not_live"], len(r.workers) - live)
        workers.add_metric(["replaced"], len(r.replaced))
        workers.add_metric(["stopped"], len(r.stopped))
        yield workers
        build = GaugeMetricFamily("rrdsync_build_info", helps["rrdsync_build_info"],
                                  labels=["version"])
        versions = {__version__} | {w.state.version for w in r.workers
                                    if w.live and w.state.version}
        for version in sorted(versions):
            build.add_metric([version], 1)
        yield build


def render(metrics_dir: Path, report: Report, accept: str | None) -> tuple[bytes, str]:
    """The ``/metrics`` body and content type (OpenMetrics if the scraper asks for it)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerFilesCollector(metrics_dir, report.live_keys()))
    registry.register(StatusCollector(report))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
