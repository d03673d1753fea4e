"""What the worker's threads share: a stop request with its drain deadline, and a beat per
thread that says it is still making progress.

A worker that waits is not a dead worker. A destination that accepts TCP and never
answers keeps its thread in the SSH connect for up to ``RRDSYNC_TIMEOUT``; a full pass
or a flush keeps another busy. Each such wait marks its thread's beat while it waits,
and the main thread checks in for the whole process only while every beat is fresh, so
``/healthz`` stays 200 for a worker that waits on the network and turns 503 for one whose
thread is truly stuck. Nothing here calls back into the engine: the beat and the stop
are plain shared state.
"""

from __future__ import annotations

import threading
import time

# Seconds the rsync in flight may take after SIGTERM. Then it gets SIGTERM (SIGKILL 0.5 s
# later) and the journal is written: the process is gone well inside Docker's and
# Kubernetes' default 10 s grace period, with a margin for a loaded machine.
STOP_DRAIN = 7.5


class Stop:
    """A stop request: no new work from the moment it is set; work in flight may finish
    until the drain deadline."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.deadline: float | None = None
        self.signal: str | None = None

    def request(self, drain: float = STOP_DRAIN, signal: str | None = None) -> None:
        if not self.event.is_set():
            self.deadline = time.monotonic() + drain
            self.signal = signal
            self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def over(self) -> bool:
        """The drain deadline has passed: end what is still running."""
        return self.deadline is not None and time.monotonic() >= self.deadline


class Beat:
    """One thread's sign of progress, and what it is doing (for ``/readyz``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.at = time.monotonic()
        self.doing: str | None = None
        self.since = self.at  # when ``doing`` last changed

    def mark(self, doing: str | None = None, *, keep: bool = False) -> None:
        """Still alive. ``doing`` replaces the activity unless ``keep`` is set."""
        now = time.monotonic()
        self.at = now
        if not keep and doing != self.doing:
            self.doing = doing
            self.since = now

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.at
