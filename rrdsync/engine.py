"""The worker: one watcher and one walker for the source, one replica per destination,
and a main thread that keeps them honest.

Data flows one way: filesystem events → each destination's pending set → batches →
rsync → results → metrics and health. The main thread never sends anything itself:
every half second it publishes gauges, writes each destination's journal when it changed
(at most once a second; every 5 s above 20,000 paths; touched every 5 s otherwise), asks
for full passes (at start, after an inotify overflow, every ``RRDSYNC_RESCAN_INTERVAL``),
restarts a
watcher that failed, and checks in for the process only while every destination's
thread shows progress. On SIGTERM it stops new work, lets each rsync in flight drain
until the deadline, writes the journals, and returns.
"""

from __future__ import annotations

import os
import threading
import time

from . import guard, log
from .config import SidecarConfig
from .journal import SourceMemory, drop_legacy
from .replica import Replica
from .scan import Passes
from .status.api import WorkerPublisher
from .threads import STOP_DRAIN, Stop
from .watch import Watcher

LOG = log.get("engine")

TICK = 0.5
SUMMARY_EVERY = 60.0  # INFO summary of what was sent, instead of a line per batch
ALIVE_EVERY = 5.0  # how often an unchanged journal is touched to mark "still alive"
# a restart re-sends in full what changed since this long before the journal's last touch
RECENT_MARGIN = ALIVE_EVERY + 2.0
WATCH_RETRY = 5.0  # seconds between attempts to watch a source root that is gone
PASS_RETRY = 5.0  # seconds before a pass that could not walk the source is tried again
BIG_JOURNAL = 20_000  # above this many paths a journal is rewritten at most every 5 s


class Engine:
    def __init__(self, cfg: SidecarConfig, publisher: WorkerPublisher, *,
                 once: bool = False) -> None:
        self.cfg = cfg
        self.pub = publisher
        self.once = once
        self.stop = Stop()
        self.memory = SourceMemory(cfg.state_dir)
        keys = [d.key for d in cfg.dests]
        self.passes = Passes(os.fspath(cfg.source_dir), cfg.included, keys, self._wake,
                             started=publisher.rescan_started)
        self.replicas = [Replica(cfg, d, publisher.destination(d), self.passes, self.stop,
                                 self.memory, adopt_legacy=True, once=once)
                         for d in cfg.dests]
        drop_legacy(cfg.state_dir)  # each destination has its copy
        self.watcher = Watcher(cfg, self._changed, self._overflowed, self._dir_gone)
        self._watch_thread: threading.Thread | None = None
        self._watching = False
        self._watch_retry_at = 0.0
        self._overflow = threading.Event()
        self._dir_removed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_rescan: float | None = None
        self._journal_at = 0.0
        self._touched_at = 0.0
        self._journal_error: str | None = None
        self._summary_at = time.monotonic()
        self._activity: dict[str, str | None] = {}

    # -- what other threads call ---------------------------------------------------------

    def _changed(self, path: str) -> None:
        """The watcher's hot path: one change, every destination's pending set."""
        for r in self.replicas:
            r.pending.add(path)

    def _wake(self) -> None:
        for r in self.replicas:
            r.pending.wake()

    def _overflowed(self) -> None:
        self._overflow.set()

    def _dir_gone(self) -> None:
        self._dir_removed.set()

    def request_stop(self, signum: int | None = None, _frame: object = None) -> None:
        import signal

        name = signal.Signals(signum).name if signum else None
        if not self.stop.requested:
            LOG.info("stopping", signal=name,
                     in_flight=sum(len(r.backlog.in_flight) for r in self.replicas))
        self.stop.request(STOP_DRAIN, name)
        self._wake()

    # -- the main thread -----------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; 0 after a stop request, 1 if a thread died."""
        self.pub.start()
        guard.remember_source_fs(self.cfg.source_dir, self.memory)
        seen = [t for t in (r.journal.saved_at() for r in self.replicas) if t is not None]
        for r in self.replicas:
            n = r.resume()
            if n:
                LOG.info("journal_resumed", destination=r.dest.label, files=n)
        since = min(seen) - RECENT_MARGIN if seen else None
        self._spawn("walker", self.passes.run, self.stop.event)
        if self.once:
            self.passes.request("once")
        else:
            self._start_watching(since)
        for r in self.replicas:
            r.start()
        LOG.info("started", source=str(self.cfg.source_dir),
                 destinations=[d.label for d in self.cfg.dests], once=self.once)
        failed = False
        try:
            while not self.stop.requested:
                if not self._supervise():
                    failed = True
                    break
                if self.once and all(r.once_done() for r in self.replicas):
                    break
                self.stop.event.wait(TICK)
        finally:
            self._shutdown()
        if self.once:
            return 0 if all(r.once_ok() for r in self.replicas) else 1
        return 1 if failed else 0

    def _spawn(self, name: str, target: object, *args: object) -> threading.Thread:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)
        return t

    def _start_watching(self, recent_since: float | None, reason: str = "startup") -> None:
        """Add the watches (a walk of every directory, whose time grows with the tree and
        the filesystem's latency) on a thread of its own, then ask for the startup pass:
        watches first, so no change can fall between the walk and the watch."""

        def start() -> None:
            self.pub.activity("adding watches")
            try:
                self.watcher.start()
            except OSError as e:
                # The source root itself is gone (an unmounted or removed volume): stay up,
                # let the delete guard refuse, and try again later.
                self._watch_retry_at = time.monotonic() + WATCH_RETRY
                LOG.error("watch_unavailable",
                          f"cannot watch the source root; retrying in {WATCH_RETRY:g}s",
                          error=str(e), path=str(self.cfg.source_dir))
            else:
                self._watching = True
                self.passes.request(reason, recent_since=recent_since,
                                    on_recent=self._recent)
            self.pub.activity(None)

        self._watch_thread = self._spawn("watch-start", start)

    def _recent(self, paths: list[str]) -> None:
        """Files changed around the previous run's stop: sent in full to every destination."""
        for r in self.replicas:
            r.pending.add_many(paths, due_now=True)
        LOG.info("recent_changes_found", files=len(paths))

    def _supervise(self) -> bool:
        """One tick of the main thread; False when a destination's thread died."""
        now = time.monotonic()
        if not self.once:
            self._watch_health(now)
        self._rescans(now)
        for r in self.replicas:
            if r.crashed:
                LOG.error("thread_died", "a destination's loop died; exiting so that the "
                          "worker is restarted", destination=r.dest.label)
                return False
        self._journals(now)
        fresh = self.cfg.liveness_timeout / 2
        for r in self.replicas:
            count, age = r.backlog.unsent()
            r.pub.set_pending(count, age)
            doing = r.beat.doing
            if self._activity.get(r.key, "") != doing:
                self._activity[r.key] = doing
                r.pub.activity(doing)
        if all(r.beat.age(now) < fresh for r in self.replicas):
            self.pub.heartbeat()
        if now - self._summary_at >= SUMMARY_EVERY:
            self._summary_at = now
            for r in self.replicas:
                s = r.take_summary()
                if s["batches"]:
                    LOG.info("sync_summary", destination=r.dest.label, batches=s["batches"],
                             files=s["files"], bytes=s["bytes"], max_lag_s=s["max_lag_s"],
                             pending=len(r.pending), duration_s=SUMMARY_EVERY)
        return True

    def _watch_health(self, now: float) -> None:
        if self._overflow.is_set():
            self._overflow.clear()
            self.pub.watch_overflow()
            LOG.warning("watch_overflow", "the kernel dropped watch events (inotify queue "
                        "overflow); reconciling the whole tree",
                        sysctl="fs.inotify.max_queued_events")
            self.passes.request("overflow")
        if self._dir_removed.is_set():
            # a directory left the tree (deleted, or moved out: no per-file events), and
            # RRDSYNC_DELETE is on: a full pass ends with the (guarded) deletions
            self._dir_removed.clear()
            self.passes.request("dir_removed")
        starting = self._watch_thread is not None and self._watch_thread.is_alive()
        if starting:
            return
        if not self._watching:
            if now >= self._watch_retry_at:
                self._start_watching(None)
            return
        problem = self.watcher.problem()
        if problem:
            self._watching = False

            def fallback() -> None:
                try:
                    self.watcher.restart_as_poll(problem)
                except OSError as e:
                    self._watch_retry_at = time.monotonic() + WATCH_RETRY
                    LOG.error("watch_unavailable", error=str(e),
                              path=str(self.cfg.source_dir))
                    return
                self._watching = True
                self.passes.request("watch_fallback")

            self._watch_thread = self._spawn("watch-fallback", fallback)

    def _rescans(self, now: float) -> None:
        newest = self.passes.newest()
        if newest is None:
            return
        if newest.done and newest.error and newest.error != "stopped" \
                and self.passes.pending_request() is None \
                and now - newest.started >= PASS_RETRY:
            self.passes.request(newest.reason)
        if self.once or not self.cfg.rescan_interval:
            return
        if self._next_rescan is None or newest.started > self._next_rescan \
                - self.cfg.rescan_interval:
            self._next_rescan = newest.started + self.cfg.rescan_interval
        if now >= self._next_rescan and self.passes.pending_request() is None:
            self._next_rescan = now + self.cfg.rescan_interval
            self.passes.request("interval")

    def _journals(self, now: float, *, final: bool = False) -> None:
        """Write each destination's journal when it changed (at most once a second, every
        5 s for a large backlog), and touch it every few seconds otherwise."""
        if not final and now - self._journal_at < 1.0:
            return
        touch = final or now - self._touched_at >= ALIVE_EVERY
        error = None
        for r in self.replicas:
            if not final and len(r.pending) >= BIG_JOURNAL and now - r.saved_at < 5.0:
                continue
            try:
                paths = r.backlog.journal_paths()
                if paths is not None:
                    r.journal.save(paths)
                    r.saved_at = now
                elif touch:
                    r.journal.touch()
            except OSError as e:
                error = f"{r.journal.dir}: {e.strerror or e}"
                r.backlog.retry_journal()
        self._journal_at = now
        if touch:
            self._touched_at = now
        if error != self._journal_error:
            if error:
                LOG.error("journal_failed", "cannot write the state dir: a restart would "
                          "resend from the full pass only", error=error)
            else:
                LOG.info("journal_recovered")
            self._journal_error = error
            self.pub.journal_problem(error)

    def _shutdown(self) -> None:
        self.stop.request(STOP_DRAIN, self.stop.signal)
        self._wake()
        deadline = time.monotonic() + STOP_DRAIN + 1.0
        for r in self.replicas:
            if r.thread is not None:
                r.thread.join(max(0.0, deadline - time.monotonic()))
        self._journals(time.monotonic(), final=True)  # what makes a restart lose nothing
        self.watcher.stop()
        for r in self.replicas:
            r.close()
        self.pub.close()
        lingering = [t.name for t in threading.enumerate()
                     if t is not threading.current_thread() and t.is_alive() and not t.daemon]
        LOG.info("stopped", pending=sum(len(r.pending) for r in self.replicas),
                 lingering_threads=lingering or None)
