"""The sync loop: pending set → batches → rsync → results → journal, metrics, health.

One thread runs this loop; the watcher thread only adds paths to the pending set.
One rsync runs at a time (rrsync locks per directory, and ordering stays simple).
A batch that fails goes back to the pending set with its original first-change
time; nothing is ever dropped. A file that changed while it was being sent (its
stat differs before and after the run) is sent again. We never lock source files:
rrdtool fails its own update when it cannot take its lock.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import guard, log, rrdcached
from .batch import Entry, PendingSet
from .config import Config
from .journal import Journal
from .ssh import SshError, SshMaster, classify_ssh_error
from .status.api import WorkerPublisher
from .transfer import Result, Rsync
from .watch import Watcher

LOG = log.get("engine")
INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR

# Seconds the rsync in flight may take after SIGTERM. Then it gets SIGTERM (SIGKILL 0.5 s
# later) and the journal is written: the process is gone well inside Docker's and
# Kubernetes' default 10 s grace period, with a margin for a loaded machine.
STOP_DRAIN = 7.5
BACKOFF_CAP = 15.0  # longest wait between retries while the destination is failing
SUMMARY_EVERY = 60.0  # INFO summary of what was sent, instead of a line per batch
PROGRESS_EVERY = 10.0
WATCH_RETRY = 5.0  # seconds between attempts to watch a source root that is gone
# Batching adapts to load: every file due when a run starts goes in that run, and runs
# start at most this often. A quiet system sends a change as soon as it settles; under
# load the rate of runs stays bounded (each costs a fixed ~14 ms of CPU here and ~11 ms
# at the receiver, measured over the multiplexed connection) while batches grow.
MIN_INTERVAL = 0.25
ALIVE_EVERY = 5.0  # how often an unchanged journal is touched to mark "still alive"
# a restart re-sends in full what changed since this long before the journal's last touch
RECENT_MARGIN = ALIVE_EVERY + 2.0


@dataclass
class Sig:
    """What we compare before and after a send to detect a copy that raced a write."""

    mtime_ns: int
    size: int
    ino: int


def signature(path: Path) -> Sig | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Sig(st.st_mtime_ns, st.st_size, st.st_ino)


class Engine:
    def __init__(self, cfg: Config, publisher: WorkerPublisher) -> None:
        assert cfg.dest is not None
        self.cfg = cfg
        self.pub = publisher
        self.dpub = publisher.destination(cfg.dest)
        self.pending = PendingSet(cfg.settle, cfg.max_delay)
        self.journal = Journal(cfg.state_dir)
        self.ssh = SshMaster(cfg) if cfg.dest.is_remote else None
        self.rsync = Rsync(cfg, self.ssh, tick=self.tick, abort=self._drain_over)
        self.watcher = Watcher(cfg, self.pending.add, self._overflowed,
                               on_dir_gone=self._dir_gone)
        self._overflow = threading.Event()
        self._dir_removed = threading.Event()
        self._stop_at: float | None = None
        self.in_flight: dict[str, Entry] = {}
        self.rescan_reason: str | None = "startup"
        self.initial_done = False
        self.next_rescan: float | None = None
        self.failures = 0
        self.retry_at = 0.0
        self.pace_until = 0.0
        self._watch_retry_at = 0.0
        self._last_beat = 0.0
        self._ssh_seen = 0
        self._last_journal = 0.0
        self._journal_dirty = False
        self._summary = {"batches": 0, "files": 0, "bytes": 0, "max_lag_s": 0.0}
        self._summary_at = time.monotonic()

    # -- signals ----------------------------------------------------------------------

    def request_stop(self, signum: int | None = None, _frame=None) -> None:
        if self._stop_at is None:
            self._stop_at = time.monotonic()
            LOG.info("stopping", signal=signal.Signals(signum).name if signum else None,
                      in_flight=len(self.in_flight))
            self.pending.wake()

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    def _drain_over(self) -> bool:
        return self._stop_at is not None and time.monotonic() - self._stop_at > STOP_DRAIN

    def _dir_gone(self) -> None:
        self._dir_removed.set()
        self.pending.wake()

    def _overflowed(self) -> None:
        self._overflow.set()
        self.pending.wake()

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        self.pub.start()
        guard.remember_source_fs(self.cfg.source_dir, self.journal)
        resumed = self.journal.load()
        last_seen = self.journal.saved_at()
        if resumed:
            self.pending.add_many(resumed, due_now=True)
            LOG.info("journal_resumed", files=len(resumed))
        self.watcher.start()
        if last_seen is not None:
            self.scan_recent(last_seen - RECENT_MARGIN)
        LOG.info("started", source=str(self.cfg.source_dir),
                  destination=str(self.cfg.dest), watch=self.watcher.mode)
        try:
            while not self.stopping:
                self.step()
        finally:
            self.shutdown()
        return 0

    def step(self) -> None:
        """One turn of the loop: at most one rsync run, or a wait."""
        self.tick()
        if self._overflow.is_set():
            self._overflow.clear()
            self.pub.watch_overflow()
            LOG.warning("watch_overflow",
                      "the kernel dropped watch events (inotify queue overflow); "
                      "reconciling the whole tree", sysctl="fs.inotify.max_queued_events")
            self.rescan_reason = self.rescan_reason or "overflow"
        if self._dir_removed.is_set():
            # a directory left the tree (deleted, or moved out: no per-file events), and
            # RRDSYNC_DELETE is on: a full pass with --delete mirrors it (guarded as ever)
            self._dir_removed.clear()
            self.rescan_reason = self.rescan_reason or "dir_removed"
        problem = self.watcher.problem()
        if problem and time.monotonic() >= self._watch_retry_at:
            try:
                self.watcher.restart_as_poll(problem)
            except OSError as e:
                # The source root itself is gone (an unmounted or removed volume): no
                # watcher can start. Stay up, let the delete guard refuse, and try again
                # later, instead of dying on a traceback and crash-looping on exit 2.
                self._watch_retry_at = time.monotonic() + WATCH_RETRY
                LOG.error("watch_unavailable",
                          f"cannot watch the source root; retrying in {WATCH_RETRY:g}s",
                          error=str(e), path=str(self.cfg.source_dir))
            else:
                self.rescan_reason = self.rescan_reason or "watch_fallback"
        now = time.monotonic()
        if now < self.retry_at:
            self.pending.wait(min(self.retry_at - now, 1.0))
            return
        if self.rescan_reason is None and self.next_rescan is not None and now >= self.next_rescan:
            self.rescan_reason = "interval"
        if self.rescan_reason is not None:
            self.reconcile(self.rescan_reason)
            return
        if now < self.pace_until:
            self.pending.wait(min(self.pace_until - now, 1.0))
            return
        batch = self.pending.take_due(self.cfg.batch_max)
        if batch:
            self.send(batch)
            return
        wait = 1.0
        due = self.pending.next_due_in()
        if due is not None:
            wait = min(wait, max(due, 0.005))
        if self.next_rescan is not None:
            wait = min(wait, max(self.next_rescan - now, 0.005))
        self.pending.wait(wait)

    def scan_recent(self, since: float) -> None:
        """Send in full every file changed since shortly before the previous run stopped.

        A change made in the same second as that file's last transfer keeps the same
        size and whole-second mtime, so a quick check can miss it (and an rrsync
        receiver refuses nanosecond comparison). Such changes can only have happened
        around or after the last journal write, so those files go with --ignore-times.
        """
        started = time.monotonic()
        found: list[str] = []
        root = os.fspath(self.cfg.source_dir)
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                if not self.cfg.included(name):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_mtime >= since:
                    found.append(os.path.relpath(full, root))
        if found:
            self.pending.add_many(found, due_now=True)
        LOG.info("recent_changes_scanned", files=len(found),
                  duration_s=time.monotonic() - started)

    def tick(self) -> None:
        """Heartbeat, pending gauges and journal; cheap, called often, acts once a second."""
        now = time.monotonic()
        if now - self._last_beat < 1.0:
            return
        self._last_beat = now
        self.pub.heartbeat()
        self.dpub.set_pending(len(self.pending) + len(self.in_flight), self.oldest_age())
        if self.pending.take_changed():
            self._journal_dirty = True
        interval = 1.0 if len(self.pending) < 20000 else 5.0
        if self._journal_dirty and now - self._last_journal >= interval:
            self.save_journal()
        elif now - self._last_journal >= ALIVE_EVERY:
            try:
                self.journal.touch()
                self._last_journal = now
                self.pub.journal_problem(None)
            except OSError as e:
                self.pub.journal_problem(str(e))
                LOG.error("journal_failed", error=str(e), path=str(self.journal.dir))
        if now - self._summary_at >= SUMMARY_EVERY:
            self._log_summary(now)

    def oldest_age(self) -> float:
        age = self.pending.oldest_age()
        if self.in_flight:
            now = time.monotonic()
            age = max(age, now - min(e.first for e in self.in_flight.values()))
        return age

    def save_journal(self) -> None:
        paths = set(self.pending.paths())
        paths.update(self.in_flight)
        try:
            self.journal.save(sorted(paths))
            self._journal_dirty = False
            self._last_journal = time.monotonic()
            self.pub.journal_problem(None)
        except OSError as e:
            self.pub.journal_problem(str(e))
            LOG.error("journal_failed", error=str(e), path=str(self.journal.dir))

    def _log_summary(self, now: float) -> None:
        s = self._summary
        if s["batches"]:
            LOG.info("sync_summary", batches=s["batches"], files=s["files"],
                      bytes=s["bytes"], max_lag_s=s["max_lag_s"], pending=len(self.pending),
                      duration_s=now - self._summary_at)
        self._summary = {"batches": 0, "files": 0, "bytes": 0, "max_lag_s": 0.0}
        self._summary_at = now

    # -- failures -----------------------------------------------------------------------

    def _failed(self, kind: str, error: str, exit_code: int, duration: float) -> None:
        self.failures += 1
        delay = min(BACKOFF_CAP, 0.5 * 2 ** min(self.failures, 6)) * random.uniform(0.8, 1.0)
        self.retry_at = time.monotonic() + delay
        LOG.log(ERROR if self.failures > 1 else WARNING, "send_failed", error=error,
                  kind=kind, exit_code=exit_code, attempt=self.failures, retry_in_s=delay,
                  pending=len(self.pending), duration_s=duration)

    def _connect(self) -> str | None:
        """Bring up the SSH master; the error text when it cannot."""
        if self.ssh is None:
            return None
        try:
            self.ssh.ensure(abort=lambda: self.stopping)
        except SshError as e:
            return "ssh: " + classify_ssh_error(str(e))
        if self.ssh.connects > self._ssh_seen:
            self._ssh_seen = self.ssh.connects
            self.dpub.ssh_connected(reconnect=self._ssh_seen > 1)
        return None

    # -- event batches --------------------------------------------------------------------

    def send(self, batch: dict[str, Entry]) -> None:
        root = self.cfg.source_dir
        if self.cfg.rrdcached:
            try:
                rrdcached.flush(self.cfg.rrdcached, self.cfg.rrdcached_path_root, list(batch))
            except OSError as e:
                LOG.warning("rrdcached_flush_failed", error=str(e),
                          files=len(batch))
        before: dict[str, Sig] = {}
        missing: list[str] = []
        for rel in batch:
            sig = signature(root / rel)
            if sig is not None:
                before[rel] = sig
            elif not os.path.lexists(root / rel):
                missing.append(rel)
            # else: a symlink or special file: never sent, never followed
        delete = False
        if missing and self.cfg.delete:
            refusal = guard.delete_refusal(root, self.journal, self.cfg.included)
            if refusal:
                self.dpub.delete_refused(refusal)
                LOG.error("delete_refused", refusal, files=len(missing),
                          error=refusal)
            else:
                delete = True
        paths = list(before) + (missing if delete else [])
        if not paths:
            return
        self.in_flight = batch
        error = self._connect()
        if error:
            self.pending.requeue(batch)
            self.in_flight = {}
            self._failed("events", error, 255, 0.0)
            self.dpub.batch_finished(kind="events", result="failed", exit_code=255, files=0,
                                    nbytes=0, duration=0.0, lags=[], error=error)
            return
        started = time.monotonic()
        self.pace_until = started + MIN_INTERVAL
        res = self.rsync.send_list(paths, delete_missing=delete)
        self._settle_batch(batch, before, res)
        self.in_flight = {}
        self._journal_dirty = True
        LOG.debug("batch_sent", files=len(res.sent), bytes=res.nbytes,
                  duration_s=time.monotonic() - started, exit_code=res.exit_code)

    def _settle_batch(self, batch: dict[str, Entry], before: dict[str, Sig],
                      res: Result) -> None:
        """Decide, per file, whether it is done or goes back to the pending set."""
        root = self.cfg.source_dir
        sent = set(res.sent)
        done_wall = time.time()
        retry: dict[str, Entry] = {}
        lags: list[float] = []
        raced = 0
        # "sent" is the sender's word, not the receiver's: see Result.sent_confirmed
        confirmed = res.sent_confirmed
        for rel, entry in batch.items():
            if rel in sent and confirmed:
                if signature(root / rel) != before.get(rel):
                    retry[rel] = entry  # changed while being sent: send again
                    raced += 1
                else:
                    lags.append(max(0.0, done_wall - entry.wall))
            elif res.exit_code in (0, 24) and not res.interrupted:
                continue  # deleted, vanished (24) or not a regular file: nothing to send
            elif rel in before:
                retry[rel] = entry
            elif res.exit_code not in (0, 24):
                retry[rel] = entry  # a deletion that may not have happened
        if retry:
            self.pending.requeue(retry)
        if raced:
            LOG.debug("send_raced", files=raced)
        result = res.result if not res.interrupted else "failed"
        s = self._summary
        s["batches"] += 1
        s["files"] += len(lags)
        s["bytes"] += res.nbytes
        if lags:
            s["max_lag_s"] = max(s["max_lag_s"], max(lags))
        self.dpub.batch_finished(kind="events", result=result, exit_code=res.exit_code,
                                files=len(res.sent), nbytes=res.nbytes, duration=res.duration,
                                lags=lags, error=res.error)
        if res.interrupted:
            return
        if result == "failed" or result == "partial":
            self._failed("events", res.error or "rsync failed", res.exit_code, res.duration)
        else:
            self.failures = 0

    # -- full reconciliation ----------------------------------------------------------------

    def reconcile(self, reason: str) -> bool:
        """One rsync over the whole included tree; True when it completed."""
        self.pub.rescan_started(reason)
        LOG.info("reconcile_started", reason=reason)
        error = self._connect()
        if error:
            self._failed("full", error, 255, 0.0)
            self.dpub.batch_finished(kind="full", result="failed", exit_code=255, files=0,
                                    nbytes=0, duration=0.0, lags=[], error=error)
            self.dpub.reconcile_finished(reason, 0.0, ok=False)
            return False
        delete = False
        if self.cfg.delete:
            refusal = guard.delete_refusal(self.cfg.source_dir, self.journal,
                                           self.cfg.included)
            if refusal:
                self.dpub.delete_refused(refusal)
                LOG.error("delete_refused", refusal, error=refusal)
            else:
                delete = True
        progress = self._progress_logger() if not self.initial_done else None
        self.rescan_reason = None
        res = self.rsync.full_pass(delete=False, progress=progress)
        ok = res.result == "ok" and not res.interrupted
        if ok and delete:
            deletion = self._mirror_deletions()
            if deletion is not None and deletion.result != "ok":
                res = deletion
                ok = False
        if progress is not None and ok:
            total = progress.total or len(res.sent)  # type: ignore[attr-defined]
            self.dpub.initial_progress(len(res.sent), total, total)
        self.dpub.batch_finished(kind="full", result=res.result if not res.interrupted
                                else "failed", exit_code=res.exit_code, files=len(res.sent),
                                nbytes=res.nbytes, duration=res.duration, lags=[],
                                error=res.error)
        self.dpub.reconcile_finished(reason, res.duration, ok=ok)
        LOG.log(INFO if ok else WARNING, "reconcile_finished", reason=reason, ok=ok,
                  files=len(res.sent), deleted=len(res.deleted), bytes=res.nbytes,
                  duration_s=res.duration, exit_code=res.exit_code, error=res.error)
        if res.interrupted:
            self.rescan_reason = reason
            return False
        if not ok:
            self.rescan_reason = reason
            self._failed("full", res.error or "rsync failed", res.exit_code, res.duration)
            return False
        self.failures = 0
        self.initial_done = True
        if self.cfg.rescan_interval:
            self.next_rescan = time.monotonic() + self.cfg.rescan_interval
        return True

    def _mirror_deletions(self) -> Result | None:
        """Delete at the destination what is gone from the source, in two steps so that a
        source emptied meanwhile (an unmount, an rm -rf in progress) cannot take the
        archive with it: list what a mirror would delete (dry run), check the guard again
        and each path's absence at the source, then delete exactly those paths."""
        plan = self.rsync.planned_deletions()
        if plan.result != "ok":
            return plan
        if not plan.deleted:
            return None
        refusal = guard.delete_refusal(self.cfg.source_dir, self.journal, self.cfg.included)
        if refusal:
            self.dpub.delete_refused(refusal)
            LOG.error("delete_refused", refusal, files=len(plan.deleted),
                      error=refusal)
            return None
        root = self.cfg.source_dir
        gone = [p for p in plan.deleted if not os.path.lexists(root / p)]
        if not gone:
            return None
        res = self.rsync.delete_paths(gone)
        LOG.log(INFO if res.result == "ok" else WARNING, "deletions_mirrored",
                  files=len(res.deleted), duration_s=res.duration, exit_code=res.exit_code,
                  error=res.error)
        return res

    def _progress_logger(self):
        state = {"at": time.monotonic(), "start": time.monotonic()}

        def progress(done: int, checked: int, total: int) -> None:
            progress.total = total  # type: ignore[attr-defined]
            now = time.monotonic()
            if now - state["at"] < PROGRESS_EVERY:
                return
            state["at"] = now
            elapsed = now - state["start"]
            rate = checked / elapsed if elapsed > 0 else 0.0
            eta = (total - checked) / rate if rate > 0 else None
            self.dpub.initial_progress(done, checked, total)
            LOG.info("reconcile_progress", files=done, checked=checked,
                      total=total, rate_per_s=rate, eta_s=eta, duration_s=elapsed)

        progress.total = 0  # type: ignore[attr-defined]
        return progress

    # -- shutdown --------------------------------------------------------------------------

    def shutdown(self) -> None:
        self.save_journal()  # first: it is what makes a restart lose nothing
        self.watcher.stop()
        if self.ssh is not None:
            self.ssh.close()
        self.rsync.close()
        self.pub.close()
        LOG.info("stopped", pending=len(self.pending))


def run_once(cfg: Config, publisher: WorkerPublisher) -> int:
    """One full reconciliation (plus whatever the journal says was pending), then exit."""
    engine = Engine(cfg, publisher)
    resumed = engine.journal.load()
    try:
        if resumed:
            engine.pending.add_many(resumed, due_now=True)
            batch = engine.pending.take_due(len(resumed))
            engine.send(batch)
            if len(engine.pending):
                return 1
        ok = engine.reconcile("once")
        if ok:
            engine.journal.save([])
        return 0 if ok else 1
    finally:
        if engine.ssh is not None:
            engine.ssh.close()
        engine.rsync.close()
