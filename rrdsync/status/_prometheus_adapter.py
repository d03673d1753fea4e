"""Every use of prometheus-client's internals, in one place (written against 0.26.0).

Multiprocess mode is how a worker publishes metrics to a separate status server: each
process writes mmap files in ``PROMETHEUS_MULTIPROC_DIR`` and the server merges them.
rrdsync needs three things the library only offers through internals:

* ``values.ValueClass``: the value class every metric reads when it is constructed. The
  library picks it once, at import, from ``PROMETHEUS_MULTIPROC_DIR``; we replace it with
  ``values.MultiProcessValue(identifier)`` so that the worker's files carry its worker
  key instead of its pid (a restarted worker with a reused pid must never reopen and
  continue its predecessor's files) and so that the order of imports does not matter;
* the file naming ``<type>[_<mode>]_<identifier>.db``: the status server drops the
  ``gauge_live*`` files of workers that are not live, which ``mark_process_dead`` would do
  only if the dead process could still call it;
* ``MultiProcessCollector.merge(files)``: merging an explicit list of files.

``pyproject.toml`` pins the version range this was written against; :func:`check` (run by
``tests/status/test_adapters.py``) raises :class:`LibraryDrift` naming what moved.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .._drift import LibraryDrift

LIBRARY = "prometheus-client"
WRITTEN_FOR = "0.26.0"
ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric


def _drift(name: str) -> LibraryDrift:
    return LibraryDrift(LIBRARY, name, WRITTEN_FOR, __name__)


def use_multiprocess(directory: Path, identifier: Callable[[], str]) -> None:
    """Make metrics constructed from now on write files named by ``identifier()``.

    Call before constructing any metric. The directory goes into the environment because
    the value class reads it there each time it opens a file.
    """
    from prometheus_client import values

    if not hasattr(values, "ValueClass") or not callable(
            getattr(values, "MultiProcessValue", None)):
        raise _drift("prometheus_client.values.ValueClass / MultiProcessValue")
    os.environ[ENV_DIR] = str(directory)
    # the library leaves these untyped: the annotation states what this adapter relies on
    value_class: Callable[[Callable[[], str]], type] = values.MultiProcessValue
    values.ValueClass = value_class(identifier)


def file_kind(filename: str) -> tuple[str, str, str] | None:
    """``gauge_livesum_<id>.db`` -> ("gauge", "livesum", id); ``counter_<id>.db`` ->
    ("counter", "", id); None for names that are not metric files."""
    if not filename.endswith(".db"):
        return None
    stem = filename[:-3]
    typ, sep, rest = stem.partition("_")
    if not sep or not rest:
        return None
    if typ == "gauge":
        mode, sep, ident = rest.partition("_")
        return (typ, mode, ident) if sep and ident else None
    return typ, "", rest


def is_live_gauge(mode: str) -> bool:
    """Files of ``live*`` gauges describe the present: only live processes' count."""
    return mode.startswith("live")


def merge(files: Iterable[str]) -> Iterable[Metric]:
    """Merge the given files into metric families (histograms accumulated)."""
    from prometheus_client.multiprocess import MultiProcessCollector

    merge_files: Callable[..., Iterable[Metric]] = MultiProcessCollector.merge  # untyped there
    return merge_files(list(files), accumulate=True)


def check() -> None:
    """Raise :class:`LibraryDrift` if an internal this adapter uses has moved."""
    from prometheus_client import metrics, values
    from prometheus_client.multiprocess import MultiProcessCollector

    if not hasattr(values, "ValueClass"):
        raise _drift("prometheus_client.values.ValueClass")
    if not callable(getattr(values, "MultiProcessValue", None)):
        raise _drift("prometheus_client.values.MultiProcessValue")
    if "process_identifier" not in inspect.signature(values.MultiProcessValue).parameters:
        raise _drift("prometheus_client.values.MultiProcessValue(process_identifier)")
    try:
        metrics_source = inspect.getsource(metrics)
    except (OSError, TypeError):
        metrics_source = None
    if metrics_source is not None and "values.ValueClass(" not in metrics_source:
        raise _drift("metrics reading values.ValueClass at construction")
    merge_fn = getattr(MultiProcessCollector, "merge", None)
    if not callable(merge_fn) or "accumulate" not in inspect.signature(merge_fn).parameters:
        raise _drift("MultiProcessCollector.merge(files, accumulate)")
    modes = getattr(getattr(metrics, "Gauge", None), "_MULTIPROC_MODES", None)
    if modes is not None and not {"livesum", "livemax", "livemin", "max"} <= set(modes):
        raise _drift("Gauge multiprocess modes livesum/livemax/livemin/max")
