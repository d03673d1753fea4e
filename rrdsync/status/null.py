"""Publishers that publish nothing, for runs no status server watches (``rrdsync once``).

Every method of the protocols is written out as a no-op (no ``__getattr__``), so a
method added to the protocols and forgotten here fails the protocol test instead of
being silently swallowed.
"""

from __future__ import annotations

from .api import DestinationPublisher, Labelled


class NullDestinationPublisher:
    """Publishes nothing about a destination (see :class:`NullPublisher`)."""

    def set_pending(self, count: int, oldest_age: float) -> None:
        pass

    def batch_finished(self, *, kind: str, result: str, exit_code: int, files: int,
                       nbytes: int, duration: float, lags: list[float],
                       error: str | None) -> None:
        pass

    def reconcile_finished(self, reason: str, duration: float, ok: bool) -> None:
        pass

    def initial_progress(self, files_sent: int, files_checked: int, total: int | None) -> None:
        pass

    def ssh_connected(self, reconnect: bool) -> None:
        pass

    def delete_refused(self, reason: str) -> None:
        pass

    def failing_paths(self, source: int, destination: int, examples: list[str]) -> None:
        pass

    def activity(self, text: str | None) -> None:
        pass


class NullPublisher:
    """Publishes nothing: for one-shot runs (``rrdsync once`` as an init container or
    CronJob) where no status server is watching and the run dir may be read-only."""

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def heartbeat(self) -> None:
        pass

    def watch_overflow(self) -> None:
        pass

    def rescan_started(self, reason: str) -> None:
        pass

    def journal_problem(self, error: str | None) -> None:
        pass

    def activity(self, text: str | None) -> None:
        pass

    def destination(self, dest: Labelled) -> DestinationPublisher:
        return NullDestinationPublisher()

