"""Where the worker and the status server meet: the run dir's layout.

The worker (``rrdsync run``) and the status server (``rrdsync serve``) are separate
processes that share only ``RRDSYNC_RUN_DIR``. Health state and Prometheus metrics each
get their own subdirectory, so neither library ever reads the other's files. The
libraries' own environment variables are not used for this: the directories are passed
to them explicitly (see the two ``_*_adapter.py`` modules).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

HEALTH_SUBDIR = "health"
METRICS_SUBDIR = "metrics"


@dataclass(frozen=True)
class RunDirs:
    """The two subdirectories of the run dir (created by :func:`prepare`)."""

    health: Path
    metrics: Path


def dirs(run_dir: Path) -> RunDirs:
    """The layout for a run dir, without touching the filesystem."""
    return RunDirs(health=run_dir / HEALTH_SUBDIR, metrics=run_dir / METRICS_SUBDIR)


def prepare(run_dir: Path) -> RunDirs:
    """Create the run dir's subdirectories.

    Group-writable (the image's user has primary group 0 and may run under any UID on
    OpenShift, while another UID may run the other process).
    """
    d = dirs(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for path in (d.health, d.metrics):
        path.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):  # not ours (a mounted volume): writable suffices
            os.chmod(path, 0o2775)
    return d
