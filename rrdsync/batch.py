"""The pending set: changed paths waiting to be sent to one destination, and when each
becomes due.

Repeated events for one path coalesce into one entry that remembers its *first*
unsent change (for ``RRDSYNC_MAX_DELAY`` and for the lag metric) and its *last*
change (for ``RRDSYNC_SETTLE``). A path is due once it has been quiet for
``settle`` or its first unsent change is ``max_delay`` old, whichever comes first.

Due times live in a heap. Memory must follow the number of pending *paths*, not the
number of events: during a weekend outage OpenNMS rewrites every file every five
minutes, and a record per event would end in an OOM kill beside it. So an event for a
path that is already pending only moves its ``last`` time (its heap record, now early,
is corrected lazily when it reaches the top), and the heap is rebuilt from the entries
whenever stale records would outnumber them.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# The heap is compacted when it holds more than this many records per pending path.
MAX_RECORDS_PER_PATH = 2
_SLACK = 64  # ...plus this many, so that tiny sets are not rebuilt on every requeue


@dataclass
class Entry:
    first: float  # monotonic time of the first unsent change
    last: float  # monotonic time of the latest change
    wall: float  # wall-clock time of the first unsent change (for lag reporting)
    sched: float = 0.0  # the due time of this entry's live heap record


class PendingSet:
    """Thread-safe: the watcher thread adds, one destination's loop takes."""

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

    def _schedule(self, path: str, e: Entry) -> None:
        e.sched = self._due(e)
        heapq.heappush(self._heap, (e.sched, path))
        if len(self._heap) > MAX_RECORDS_PER_PATH * len(self._entries) + _SLACK:
            self._compact()

    def _compact(self) -> None:
        self._heap = [(e.sched, p) for p, e in self._entries.items()]
        heapq.heapify(self._heap)

    def add(self, path: str) -> None:
        """A change seen now (the watcher's hot path: no heap push for a known path)."""
        now = self._clock()
        with self._cond:
            e = self._entries.get(path)
            if e is not None:
                e.last = now  # due only moves later: the early record is fixed lazily
                return
            was_empty = not self._entries
            e = self._entries[path] = Entry(now, now, self._wall())
            self._changed = True
            self._schedule(path, e)
            # Only a first entry can be due earlier than what the loop already waits for
            # (a later change is due no sooner than every earlier one), so waking it for
            # each event, hundreds of times a second, would only cost CPU.
            if was_empty:
                self._cond.notify()

    def add_many(self, paths: Iterable[str], *, due_now: bool = False) -> None:
        """Bulk add (journal replay, recent-changes scan). ``due_now`` makes them due at once."""
        now = self._clock()
        wall = self._wall()
        first = now - self.max_delay if due_now else now
        with self._cond:
            for path in paths:
                e = self._entries.get(path)
                if e is None:
                    e = self._entries[path] = Entry(first, first, wall)
                    self._schedule(path, e)
                elif due_now and e.first > first:
                    e.first = first
                    self._schedule(path, e)
            self._changed = True
            self._cond.notify()

    def requeue(self, entries: dict[str, Entry]) -> None:
        """Put back paths that were not confirmed, keeping their original first change."""
        with self._cond:
            for path, old in entries.items():
                e = self._entries.get(path)
                if e is None:
                    e = self._entries[path] = Entry(old.first, old.last, old.wall)
                    self._schedule(path, e)
                elif old.first < e.first:  # changed again meanwhile: the older change counts
                    e.first = old.first
                    e.wall = min(e.wall, old.wall)
                    if self._due(e) < e.sched:
                        self._schedule(path, e)  # the old record goes stale
            self._changed = True
            self._cond.notify()

    # -- the consumer -----------------------------------------------------------------

    def _settle_top(self) -> tuple[float, str] | None:
        """Drop stale records and reschedule late ones until the top is authoritative."""
        heap = self._heap
        while heap:
            due, path = heap[0]
            e = self._entries.get(path)
            if e is None or due != e.sched:
                heapq.heappop(heap)
                continue
            actual = self._due(e)
            if actual > due:
                e.sched = actual
                heapq.heapreplace(heap, (actual, path))
                continue
            return due, path
        return None

    def take_due(self, limit: int) -> dict[str, Entry]:
        """Remove and return up to ``limit`` paths that are due now."""
        now = self._clock()
        out: dict[str, Entry] = {}
        with self._cond:
            while len(out) < limit:
                top = self._settle_top()
                if top is None or top[0] > now:
                    break
                heapq.heappop(self._heap)
                out[top[1]] = self._entries.pop(top[1])
            if out:
                self._changed = True
        return out

    def next_due_in(self) -> float | None:
        """Seconds until the earliest path is due (<= 0: now); None when nothing is pending."""
        with self._cond:
            top = self._settle_top()
            return None if top is None else top[0] - self._clock()

    def wait(self, timeout: float) -> None:
        """Sleep until a first path arrives, :meth:`wake` is called, or ``timeout`` passes."""
        with self._cond:
            self._cond.wait(max(0.0, timeout))

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- observation ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def records(self) -> int:
        """Heap records held (bounded by ``MAX_RECORDS_PER_PATH`` per path, plus slack)."""
        return len(self._heap)

    def oldest(self) -> Entry | None:
        """The entry with the oldest unsent change (None when nothing is pending)."""
        with self._cond:
            if not self._entries:
                return None
            return min(self._entries.values(), key=lambda e: e.first)

    def oldest_age(self) -> float:
        """Age in seconds of the oldest unsent change (0 when nothing is pending)."""
        e = self.oldest()
        return 0.0 if e is None else max(0.0, self._clock() - e.first)

    def paths(self) -> list[str]:
        with self._cond:
            return list(self._entries)

    def take_changed(self) -> bool:
        """Whether the set changed since the last call (for the journal)."""
        with self._cond:
            changed, self._changed = self._changed, False
            return changed
