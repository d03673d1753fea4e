"""What a worker tells the status server (interface; the status issue fills it in).

The engine calls these methods; they must be cheap (they run on the sync loop) and
must never raise into the engine.
"""

from __future__ import annotations

from ..config import Config


class Publisher:
    """Publishes one worker's health and metrics into ``RRDSYNC_RUN_DIR``."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def start(self) -> None:
        """Called once before the first reconciliation."""

    def heartbeat(self) -> None:
        """The worker is alive; called at least once a second by the sync loop."""

    def set_pending(self, count: int, oldest_age: float) -> None:
        """Pending (unsent) files and the age in seconds of the oldest unsent change."""

    def batch_finished(self, *, kind: str, result: str, exit_code: int, files: int,
                       nbytes: int, duration: float, lags: list[float],
                       error: str | None) -> None:
        """One rsync run ended. kind: events|full; result: ok|partial|failed."""

    def reconcile_started(self, reason: str) -> None:
        """A full pass began. reason: startup|overflow|interval|watch_fallback."""

    def reconcile_finished(self, reason: str, duration: float, ok: bool) -> None:
        """A full pass ended; the first ok one makes the worker eligible for readiness."""

    def initial_progress(self, files_done: int, files_checked: int, total: int | None) -> None:
        """Progress of the first full pass."""

    def ssh_connected(self, reconnect: bool) -> None:
        """The SSH master connection came up (reconnect=True after the first)."""

    def watch_overflow(self) -> None:
        """The kernel dropped watch events (inotify queue overflow)."""

    def delete_refused(self, reason: str) -> None:
        """The delete guard refused to mirror deletions."""

    def close(self) -> None:
        """The worker is stopping cleanly."""
