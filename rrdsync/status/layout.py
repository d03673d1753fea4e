"""Where the worker and the status server meet: the run dir's layout, and library settings.

The worker (``rrdsync run``) and the status server (``rrdsync serve``) are separate
processes that share only ``RRDSYNC_RUN_DIR``. Health state and Prometheus metrics each
get their own subdirectory, so neither library ever reads the other's files.

healthcheck-python and prometheus-client take their settings from ``os.environ``; the
project rule is that only ``config.py`` reads the environment. :func:`prepare` is the one
place that turns the ``Config`` into those library variables, and it runs before either
library creates anything.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import ServeConfig as Config  # transitional

HEALTH_SUBDIR = "health"
METRICS_SUBDIR = "metrics"


@dataclass(frozen=True)
class RunDirs:
    """The two subdirectories of the run dir (created by :func:`prepare`)."""

    health: Path
    metrics: Path


def dirs(config: Config) -> RunDirs:
    """The layout for a config, without touching the filesystem."""
    return RunDirs(health=config.run_dir / HEALTH_SUBDIR,
                   metrics=config.run_dir / METRICS_SUBDIR)


def prepare(config: Config) -> RunDirs:
    """Create the run dir's subdirectories and point the libraries at them.

    Group-writable (the image's user has primary group 0 and may run under any UID on
    OpenShift, while another UID may run the other process).

    ``PY_HEALTH_RUN_PERIOD`` is deliberately never set: healthcheck-python reads it as a
    string at import time and its timer then crashes; the period is passed as an
    argument instead (see ``checkin.py``).
    """
    d = dirs(config)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    for path in (d.health, d.metrics):
        path.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):  # not ours (a mounted volume): writable suffices
            os.chmod(path, 0o2775)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(d.metrics)
    os.environ["PY_HEALTH_MULTIPROC_DIR"] = str(d.health)
    return d
