"""Everything not yet confirmed at one destination: pending, in flight, failing on its own.

The destination's loop takes batches from here and records what each run meant; the main
thread reads here (under ``lock``) what it publishes and journals. Keeping the three kinds
of unconfirmed change together is what makes "nothing is lost" checkable: a path is always
in exactly one of them until a completed run confirms it.

A destination error that no path can be blamed for halves the batch size (the run's paths
become *suspects*); runs that confirm suspects clear them, and the full size returns once
none is left. A single bad path is thereby isolated in a few runs instead of failing every
batch for ever.
"""

from __future__ import annotations

import threading
import time

from . import log
from .batch import Entry, PendingSet
from .failures import Failures
from .outcome import Outcome

LOG = log.get("backlog")


class Backlog:
    def __init__(self, settle: float, max_delay: float, batch_max: int, label: str) -> None:
        self.pending = PendingSet(settle, max_delay)
        self.failures = Failures()
        self.lock = threading.Lock()  # in_flight and failures, read by the main thread
        self.in_flight: dict[str, Entry] = {}
        self.changed = False  # in flight or failing changed since the journal looked
        self.batch_max = batch_max
        self.limit = batch_max
        self.suspects: set[str] = set()
        self.label = label

    # -- the destination's loop -------------------------------------------------------------

    def take(self, now: float, *, retries: bool) -> dict[str, Entry]:
        """The next event batch: due paths, except quarantined ones (their new changes wait
        with them), plus quarantined paths whose backoff is over (``retries``)."""
        batch = self.pending.take_due(self.limit)
        with self.lock:
            for path in [p for p in batch if self.failures.quarantined(p, now)]:
                self.failures.hold(path, batch.pop(path))
            if retries:
                for path, entry in self.failures.due_retries(now, self.limit).items():
                    old = batch.get(path)
                    batch[path] = entry if old is None or entry.first < old.first else old
        return batch

    def sending(self, batch: dict[str, Entry]) -> None:
        with self.lock:
            self.in_flight = batch
            self.changed = True

    def returned(self, batch: dict[str, Entry]) -> None:
        """A batch goes back untouched (sent again at once, e.g. without its deletions)."""
        with self.lock:
            self.in_flight = {}
            self.changed = True
        self.pending.requeue(batch)

    def record(self, out: Outcome, *, requeue: bool = True) -> bool:
        """Apply a run's outcome; True when the counts of failing paths changed."""
        now = time.monotonic()
        before = self.failures.counts()
        with self.lock:
            self.in_flight = {}
            self.changed = True
            for f in out.failed:
                if self.failures.path_failed(f.path, f.side, f.error, f.entry, now):
                    LOG.warning("path_failing", "a path fails on its own; others keep flowing",
                                destination=self.label, path=f.path, side=f.side,
                                error=f.error)
            for path in out.confirmed:
                if self.failures.path_cleared(path) is not None:
                    LOG.info("path_recovered", destination=self.label, path=path)
                self.suspects.discard(path)
            for path in out.requeue:
                self.failures.release(path, now)  # a retry that did not get through
        if requeue and out.requeue:
            self.pending.requeue(out.requeue)
        if out.unattributed:
            self.suspects = set(out.requeue) & self.suspects or set(out.requeue)
            self.limit = max(1, min(self.limit, len(out.requeue)) // 2)
        elif not self.suspects:
            self.limit = self.batch_max
        return self.failures.counts() != before

    # -- what the main thread reads ---------------------------------------------------------

    def unsent(self) -> tuple[int, float]:
        """(unsent files, age of the oldest unsent change): pending, in flight, and paths
        the destination cannot take (a source path we may not read is not lag)."""
        now = time.monotonic()
        with self.lock:
            held = list(self.in_flight.values()) + self.failures.unsent()
        oldest = self.pending.oldest()
        firsts = [e.first for e in held] + ([oldest.first] if oldest else [])
        return len(self.pending) + len(held), (now - min(firsts) if firsts else 0.0)

    def journal_paths(self) -> list[str] | None:
        """Everything unconfirmed, when it changed since the last call (else None)."""
        changed = self.pending.take_changed()
        with self.lock:
            changed = changed or self.changed
            self.changed = False
            if not changed:
                return None
            held = set(self.in_flight) | set(self.failures.paths)
        return sorted(held.union(self.pending.paths()))

    def retry_journal(self) -> None:
        """Writing the journal failed: write it again next time."""
        with self.lock:
            self.changed = True
