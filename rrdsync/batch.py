"""The pending set: changed paths waiting to be sent, and when each becomes due.

Repeated events for one path coalesce into one entry that remembers its *first*
unsent change (for ``RRDSYNC_MAX_DELAY`` and for the lag metric) and its *last*
change (for ``RRDSYNC_SETTLE``). A path is due once it has been quiet for
``settle`` or its first unsent change is ``max_delay`` old, whichever comes first.

Due times live in a heap with lazy invalidation, so taking a batch costs
O(k log n) however large the backlog grows while a destination is down.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass
class Entry:
    first: float  # monotonic time of the first unsent change
    last: float  # monotonic time of the latest change
    wall: float  # wall-clock time of the first unsent change (for lag reporting)


class PendingSet:
    """Thread-safe: the watcher thread adds, the sync loop takes."""

    def __init__(self, settle: float, max_delay: float,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.settle = settle
        self.max_delay = max_delay
        self._clock = clock
        self._wall = wall
        self._entries: dict[str, Entry] = {}
        self._heap: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._changed = False  # since the journal last looked

    # -- producers ------------------------------------------------------------------

    def _due(self, e: Entry) -> float:
        return min(e.last + self.settle, e.first + self.max_delay)

    def add(self, path: str) -> None:
        now = self._clock()
        with self._cond:
            e = self._entries.get(path)
            was_empty = not self._entries
            if e is None:
                e = self._entries[path] = Entry(now, now, self._wall())
                self._changed = True
            else:
                e.last = now
            heapq.heappush(self._heap, (self._due(e), path))
            # Only a first entry can be due earlier than what the sync loop already waits
            # for (a later change is due no sooner than every earlier one), so waking it
            # for each event, hundreds of times a second, would only cost CPU.
            if was_empty:
                self._cond.notify()

    def add_many(self, paths: Iterable[str], *, due_now: bool = False) -> None:
        """Bulk add (journal replay, requeue). ``due_now`` makes them due at once."""
        now = self._clock()
        wall = self._wall()
        with self._cond:
            for path in paths:
                e = self._entries.get(path)
                if e is None:
                    first = now - self.max_delay if due_now else now
                    e = self._entries[path] = Entry(first, first, wall)
                    self._changed = True
                heapq.heappush(self._heap, (self._due(e), path))
            self._cond.notify()

    def requeue(self, entries: dict[str, Entry]) -> None:
        """Put back paths from a failed or raced batch, keeping their original first time."""
        with self._cond:
            for path, old in entries.items():
                e = self._entries.get(path)
                if e is None:
                    e = self._entries[path] = Entry(old.first, old.last, old.wall)
                else:  # changed again meanwhile: the older first change still counts
                    e.first = min(e.first, old.first)
                    e.wall = min(e.wall, old.wall)
                heapq.heappush(self._heap, (self._due(e), path))
            self._changed = True
            self._cond.notify()

    # -- the consumer -----------------------------------------------------------------

    def take_due(self, limit: int) -> dict[str, Entry]:
        """Remove and return up to ``limit`` paths that are due now."""
        now = self._clock()
        out: dict[str, Entry] = {}
        with self._cond:
            heap = self._heap
            while heap and len(out) < limit and heap[0][0] <= now:
                due, path = heapq.heappop(heap)
                e = self._entries.get(path)
                if e is None or path in out or self._due(e) != due:
                    continue  # stale heap record
                out[path] = self._entries.pop(path)
            if out:
                self._changed = True
        return out

    def next_due_in(self) -> float | None:
        """Seconds until the earliest path is due (<= 0: now); None when nothing is pending."""
        with self._cond:
            self._drop_stale_top()
            if not self._heap:
                return None
            return self._heap[0][0] - self._clock()

    def _drop_stale_top(self) -> None:
        heap = self._heap
        while heap:
            due, path = heap[0]
            e = self._entries.get(path)
            if e is not None and self._due(e) == due:
                return
            heapq.heappop(heap)

    def wait(self, timeout: float) -> None:
        """Sleep until something is added or ``timeout`` passes (no busy loop)."""
        with self._cond:
            self._cond.wait(timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- observation ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def oldest_age(self) -> float:
        """Age in seconds of the oldest unsent change (0 when nothing is pending)."""
        with self._cond:
            if not self._entries:
                return 0.0
            now = self._clock()
            return max(0.0, now - min(e.first for e in self._entries.values()))

    def paths(self) -> list[str]:
        with self._cond:
            return list(self._entries)

    def take_changed(self) -> bool:
        """Whether the set changed since the last call (for the journal)."""
        with self._cond:
            changed, self._changed = self._changed, False
            return changed
