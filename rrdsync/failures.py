"""Failure state of one destination, in one place: the destination's own (connection
refused, rsync cut, receiver gone) and each path's (unreadable at the source, unwritable
at the destination).

The two are kept apart because they need opposite treatment. A destination failure says
nothing about any file: the whole batch goes back, the destination backs off (capped, so
it is retried within seconds of returning). A path failure says everything about one
file and nothing about the rest: the path is quarantined with a backoff of its own while
every other path keeps flowing, and a full pass completes around it. Operators see one
log event when a path starts failing and one when it clears, never one per retry.

All times are monotonic seconds passed in by the caller (tests use a fake clock).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .batch import Entry

DEST_BACKOFF_FIRST = 0.5
DEST_BACKOFF_CAP = 15.0  # a destination that returns is retried within this
PATH_BACKOFF_FIRST = 5.0
PATH_BACKOFF_CAP = 300.0  # one OpenNMS collection step
EXAMPLES = 5


def backoff(first: float, cap: float, attempt: int, jitter: float) -> float:
    """``first`` doubling per attempt, capped, scaled by ``jitter`` in [0.8, 1.0] so that
    several destinations (or workers) do not retry in lockstep."""
    return min(cap, first * 2.0 ** max(0, min(attempt - 1, 20))) * jitter


@dataclass
class PathFailure:
    side: str  # "source" (cannot read) | "destination" (cannot write)
    error: str
    entry: Entry  # the unsent change (its first time counts for lag while it fails)
    attempts: int = 1
    retry_at: float = 0.0


@dataclass
class Failures:
    """One destination's failures. Not thread-safe: owned by that destination's loop;
    others read the published summary."""

    rng: random.Random = field(default_factory=random.Random)
    paths: dict[str, PathFailure] = field(default_factory=dict)
    consecutive: int = 0  # destination-level failures in a row
    retry_at: float = 0.0
    failing_since: float | None = None
    last_error: str | None = None

    # -- the destination -----------------------------------------------------------

    def run_failed(self, error: str, now: float) -> float:
        """A run failed as a whole; returns the delay before the next attempt."""
        self.consecutive += 1
        self.last_error = error
        if self.failing_since is None:
            self.failing_since = now
        delay = backoff(DEST_BACKOFF_FIRST, DEST_BACKOFF_CAP, self.consecutive,
                        self.rng.uniform(0.8, 1.0))
        self.retry_at = now + delay
        return delay

    def run_succeeded(self) -> bool:
        """A run reached the destination; True when that ends a failing streak."""
        was = self.consecutive > 0
        self.consecutive = 0
        self.retry_at = 0.0
        self.failing_since = None
        return was

    # -- single paths ----------------------------------------------------------------

    def path_failed(self, path: str, side: str, error: str, entry: Entry, now: float) -> bool:
        """Quarantine ``path``; True when it was not failing before (log it once)."""
        old = self.paths.get(path)
        attempts = 1 if old is None else old.attempts + 1
        if old is not None and old.entry.first < entry.first:
            entry = old.entry
        delay = backoff(PATH_BACKOFF_FIRST, PATH_BACKOFF_CAP, attempts,
                        self.rng.uniform(0.8, 1.0))
        self.paths[path] = PathFailure(side, error, entry, attempts, now + delay)
        return old is None

    def path_cleared(self, path: str) -> PathFailure | None:
        """The path arrived (or no longer needs sending); its record when it was failing."""
        return self.paths.pop(path, None)

    def quarantined(self, path: str, now: float) -> bool:
        f = self.paths.get(path)
        return f is not None and f.retry_at > now

    def hold(self, path: str, entry: Entry) -> None:
        """A new change for a quarantined path waits with it (the older change counts)."""
        f = self.paths[path]
        if entry.first < f.entry.first:
            f.entry = entry

    def due_retries(self, now: float, limit: int) -> dict[str, Entry]:
        """Quarantined paths whose backoff is over, marked as being retried."""
        out: dict[str, Entry] = {}
        for path, f in self.paths.items():
            if len(out) >= limit:
                break
            if f.retry_at <= now:
                out[path] = f.entry
                f.retry_at = float("inf")  # in flight: the result decides
        return out

    def release(self, path: str, now: float) -> None:
        """A retry's run did not complete (the destination failed): the path goes back
        with its batch and may be retried as soon as the destination takes runs again."""
        f = self.paths.get(path)
        if f is not None and f.retry_at == float("inf"):
            f.retry_at = now

    def next_retry(self) -> float | None:
        times = [f.retry_at for f in self.paths.values() if f.retry_at != float("inf")]
        return min(times) if times else None

    # -- what is reported -------------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """(failing at the source, failing at the destination)."""
        src = sum(1 for f in self.paths.values() if f.side == "source")
        return src, len(self.paths) - src

    def examples(self) -> list[str]:
        return sorted(self.paths)[:EXAMPLES]

    def unsent(self) -> list[Entry]:
        """Changes that count as not delivered: paths the destination cannot take. A
        source path we may not read is reported, but it is not the destination's lag."""
        return [f.entry for f in self.paths.values() if f.side == "destination"]
