"""What one destination does next: a pure function of its state and the time.

The destination loop takes a :class:`View` (a snapshot of its pending set, failures,
pass cursor and pacing) and acts on the :class:`Action` returned; everything that can be
decided without touching rsync or the filesystem is decided here, and tested as a table.

Order of precedence:
1. a stop request ends the loop (the run in flight was already allowed to drain);
2. a pass whose last chunk is done is closed (bookkeeping, no rsync);
3. a destination that failed as a whole waits out its backoff;
4. event batches are paced: one starts at most every ``MIN_INTERVAL`` (each run has a
   fixed CPU cost on both ends, ~18 ms sending and ~12 ms receiving over one multiplexed
   SSH connection in ``python -m bench.rsync_cost``, bench/results/rsync-cost.txt; so
   under load batches grow instead of runs multiplying);
5. event batches and full-pass chunks alternate when both may run, so a full pass never
   holds back replication and replication never starves a full pass. Chunk runs are not
   paced (they are sized to a short target instead): they fill the time between two
   batches, so a pass costs a batch at most one short chunk run of waiting — pacing every
   run had the pass take every other batch slot (at opennms-100k: p50 0.45 s for updates
   made during a pass, 0.28 s outside);
6. deletions planned after a completed pass (``RRDSYNC_DELETE=true`` only);
7. otherwise wait until the next thing is due (at most a second: the loop beats).
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_INTERVAL = 0.25
MAX_WAIT = 1.0


@dataclass(frozen=True)
class View:
    now: float
    stopping: bool = False
    retry_at: float = 0.0  # destination backoff
    pace_until: float = 0.0  # the next event batch may start then
    next_event: float | None = None  # when the earliest pending path is due
    next_retry: float | None = None  # when the earliest quarantined path may be retried
    chunk_ready: bool = False
    pass_complete: bool = False
    deletions_due: bool = False
    last_run: str = ""  # "events" | "chunk" | "deletions" | ""


@dataclass(frozen=True)
class Action:
    kind: str  # stop | close_pass | wait | events | chunk | deletions
    wait: float = 0.0


STOP = Action("stop")
CLOSE_PASS = Action("close_pass")
EVENTS = Action("events")
CHUNK = Action("chunk")
DELETIONS = Action("deletions")


def decide(v: View) -> Action:
    if v.stopping:
        return STOP
    if v.pass_complete:
        return CLOSE_PASS
    if v.now < v.retry_at:
        return Action("wait", min(MAX_WAIT, v.retry_at - v.now))
    due = (v.next_event is not None and v.next_event <= v.now) or (
        v.next_retry is not None and v.next_retry <= v.now)
    events = due and v.now >= v.pace_until
    if events and v.chunk_ready:
        return CHUNK if v.last_run == "events" else EVENTS
    if events:
        return EVENTS
    if v.chunk_ready:
        return CHUNK
    if v.deletions_due and v.now >= v.pace_until:
        return DELETIONS
    wait = MAX_WAIT
    for t in (v.next_event, v.next_retry):
        if t is not None:
            wait = min(wait, max(t, v.pace_until) - v.now)
    if v.deletions_due:
        wait = min(wait, v.pace_until - v.now)
    return Action("wait", max(0.005, wait))
