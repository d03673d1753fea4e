"""What the engine and the CLI see of rrdsync.status: protocols only, no imports of weight.

The engine talks to a :class:`WorkerPublisher` (one per ``rrdsync run`` process) and,
for each destination, to the :class:`DestinationPublisher` it hands out. ``Publisher``
(``publish.py``) writes into ``RRDSYNC_RUN_DIR`` for the status server; ``NullPublisher``
does nothing (``rrdsync once``). Both satisfy these protocols, so the engine is written
against the protocols and never cares which one it got.

The settings protocols name the few configuration fields the status code reads, so it
works with whichever config object the CLI built (``SidecarConfig``/``ServeConfig``, or
a test's small dataclass) without importing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


class Labelled(Protocol):
    """A destination as the status code knows it: by its label (``Destination.label``)."""

    @property
    def label(self) -> str: ...


class StatusSettings(Protocol):
    """What the worker's publisher and the status server both read: where the state is,
    and the two limits that judge it."""

    @property
    def run_dir(self) -> Path: ...

    @property
    def liveness_timeout(self) -> float: ...

    @property
    def max_lag(self) -> float: ...


class WorkerSettings(StatusSettings, Protocol):
    """The configuration a worker's publisher reads."""

    @property
    def source_dir(self) -> Path: ...


class ServerSettings(StatusSettings, Protocol):
    """The configuration the status server reads."""

    @property
    def http_addr(self) -> tuple[str, int]: ...


@runtime_checkable
class DestinationPublisher(Protocol):
    """One destination's state and metrics (label ``destination`` = ``Destination.label``)."""

    def set_pending(self, count: int, oldest_age: float) -> None:
        """Unsent files (pending + in flight + destination-side failing paths) and the age
        in seconds of the oldest unsent change; called about once a second."""

    def batch_finished(self, *, kind: str, result: str, exit_code: int, files: int,
                       nbytes: int, duration: float, lags: list[float],
                       error: str | None) -> None:
        """One rsync run ended. kind: events|full|repair; result: ok|partial|failed."""

    def reconcile_finished(self, reason: str, duration: float, ok: bool) -> None:
        """This destination finished (ok) or gave up on (not ok) a full pass."""

    def initial_progress(self, files_sent: int, files_checked: int, total: int | None) -> None:
        """Progress of this destination's first full pass."""

    def ssh_connected(self, reconnect: bool) -> None:
        """The SSH master connection came up (reconnect=True after the first)."""

    def delete_refused(self, reason: str) -> None:
        """The delete guard refused to mirror deletions to this destination."""

    def failing_paths(self, source: int, destination: int, examples: list[str]) -> None:
        """Paths failing on their own: unreadable at the source / unwritable at the
        destination; up to 5 relative paths as examples. Called when the counts change."""

    def activity(self, text: str | None) -> None:
        """What this destination's loop does or waits for; None when idle."""


@runtime_checkable
class WorkerPublisher(Protocol):
    """One worker process: liveness, the source side, and its destinations."""

    def start(self) -> None: ...

    def close(self) -> None: ...

    def heartbeat(self) -> None:
        """Main loop, at least once a second, only while every thread is fresh."""

    def watch_overflow(self) -> None: ...

    def rescan_started(self, reason: str) -> None:
        """One walk of the source: startup|overflow|interval|watch_fallback|dir_removed|once."""

    def journal_problem(self, error: str | None) -> None:
        """The state dir is unwritable or full (not ready while set); None once it is not."""

    def activity(self, text: str | None) -> None:
        """Worker-level activity ("adding watches", "scanning recent changes"); None: idle."""

    def destination(self, dest: Labelled) -> DestinationPublisher: ...
