"""One destination's replication: its pending set, failures, journal, SSH master and the
one rsync at a time it runs, on a thread of its own.

Destinations never wait for each other: each has its own loop, so one that is down, slow
or refusing writes delays nothing else. The loop asks :func:`plan.decide` what to do,
does it, and records what the run meant (:func:`outcome.settle`) in its
:class:`~rrdsync.failures.Failures`. The main thread reads :meth:`unsent` and
:meth:`journal_paths` (under ``lock``) to publish gauges and write the journal.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from . import guard, log, plan, rrdcached
from .batch import Entry, PendingSet
from .config import Destination, SidecarConfig
from .failures import Failures
from .journal import Journal, SourceMemory, parse_nul_list
from .outcome import Outcome, settle, signature
from .scan import Passes
from .ssh import SshError, SshMaster, classify_ssh_error
from .status.api import DestinationPublisher
from .threads import Beat, Stop
from .transfer import Result, Rsync

LOG = log.get("replica")
RRDCACHED_TIMEOUT = 10.0
BUSY_RETRY = 1.0


class Replica:
    def __init__(self, cfg: SidecarConfig, dest: Destination, pub: DestinationPublisher,
                 passes: Passes, stop: Stop, memory: SourceMemory, *,
                 adopt_legacy: bool = False, once: bool = False) -> None:
        self.cfg = cfg
        self.dest = dest
        self.key = dest.key
        self.pub = pub
        self.passes = passes
        self.stop = stop
        self.memory = memory
        self.once = once
        self.root = os.fspath(cfg.source_dir)
        self.pending = PendingSet(cfg.settle, cfg.max_delay)
        self.failures = Failures()
        self.journal = Journal(cfg.state_dir, dest.key, adopt_legacy=adopt_legacy)
        self.ssh = SshMaster(cfg, dest) if dest.is_remote else None
        self.rsync = Rsync(cfg, dest, self.ssh,
                           Path(tempfile.mkdtemp(prefix=f"rrdsync-{dest.key[:20]}-")))
        self.beat = Beat(dest.label)
        self.lock = threading.Lock()  # in_flight and failures, read by the main thread
        self.in_flight: dict[str, Entry] = {}
        self.held_changed = False
        self.saved_at = 0.0  # when the main thread last wrote the journal
        self.pace_until = 0.0
        self.last_run = ""
        self.limit = cfg.batch_max
        self.suspects: set[str] = set()
        self.deletes_refused = False
        self.deletions_due = False
        self.reconciled = False
        self.gave_up: str | None = None  # once: why this destination could not finish
        self.ssh_seen = 0
        self.thread: threading.Thread | None = None
        self.crashed = False  # the loop ended on an exception (a bug): the worker exits 1
        self.summary = {"batches": 0, "files": 0, "bytes": 0, "max_lag_s": 0.0}

    # -- lifecycle ----------------------------------------------------------------------

    def resume(self) -> int:
        """Queue what the journal says was not confirmed (due at once)."""
        paths = self.journal.load()
        if paths:
            self.pending.add_many(paths, due_now=True)
        return len(paths)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"dest-{self.key[:12]}",
                                       daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _run(self) -> None:
        try:
            while True:
                self.beat.mark(keep=True)
                action = plan.decide(self.view())
                if action.kind == "stop" or (self.once and self.once_done()):
                    return
                if action.kind == "wait":
                    self.beat.mark(self._waiting_for())
                    self.pending.wait(action.wait)
                else:
                    getattr(self, "_" + action.kind)()
        except Exception:
            self.crashed = True
            LOG.exception("destination_loop_died", destination=self.dest.label)

    def view(self) -> plan.View:
        now = time.monotonic()
        due_in = self.pending.next_due_in()
        return plan.View(
            now=now, stopping=self.stop.requested, retry_at=self.failures.retry_at,
            pace_until=self.pace_until,
            next_event=None if due_in is None else now + due_in,
            next_retry=None if self.once else self.failures.next_retry(),
            chunk_ready=self.passes.next_chunk(self.key) is not None,
            pass_complete=self.passes.complete(self.key),
            deletions_due=self.deletions_due, last_run=self.last_run)

    def _waiting_for(self) -> str | None:
        now = time.monotonic()
        if self.failures.retry_at > now:
            return (f"backoff {self.failures.retry_at - now:.1f}s after: "
                    f"{self.failures.last_error}")
        return None

    def once_done(self) -> bool:
        """``rrdsync once``: done when the pass is closed and nothing is pending (failing
        paths are not retried), or when the destination failed."""
        if self.gave_up is not None:
            return True
        return self.reconciled and len(self.pending) == 0 and not self.deletions_due

    def once_ok(self) -> bool:
        """``rrdsync once`` succeeded for this destination: in sync, nothing failing."""
        return (self.gave_up is None and self.reconciled and len(self.pending) == 0
                and not self.failures.paths)

    # -- what the main thread reads -------------------------------------------------------

    def unsent(self) -> tuple[int, float]:
        """(unsent files, age of the oldest unsent change): pending, in flight, and paths
        the destination cannot take."""
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
            changed = changed or self.held_changed
            self.held_changed = False
            if not changed:
                return None
            held = set(self.in_flight) | set(self.failures.paths)
        return sorted(held.union(self.pending.paths()))

    # -- the actions ----------------------------------------------------------------------

    def _connect(self, kind: str) -> bool:
        if self.ssh is None:
            return True
        try:
            self.ssh.ensure(self.stop, self.beat)
        except SshError as e:
            if not self.stop.requested:
                self._run_failed(kind, "ssh: " + classify_ssh_error(str(e)), 255, 0.0)
            return False
        if self.ssh.connects > self.ssh_seen:
            self.ssh_seen = self.ssh.connects
            self.pub.ssh_connected(reconnect=self.ssh_seen > 1)
        return True

    def _events(self) -> None:
        if not self._connect("events"):
            return
        now = time.monotonic()
        batch = self.pending.take_due(self.limit)
        with self.lock:
            for path in [p for p in batch if self.failures.quarantined(p, now)]:
                self.failures.hold(path, batch.pop(path))
            if not self.once:
                for path, entry in self.failures.due_retries(now, self.limit).items():
                    old = batch.get(path)
                    batch[path] = entry if old is None or entry.first < old.first else old
        if batch:
            self._send_events(batch)

    def _send_events(self, batch: dict[str, Entry]) -> None:
        if self.cfg.rrdcached:
            self.beat.mark(f"flushing rrdcached for {len(batch)} files")
            try:
                rrdcached.flush(self.cfg.rrdcached, self.cfg.rrdcached_path_root, list(batch),
                                timeout=RRDCACHED_TIMEOUT, beat=self.beat, stop=self.stop)
            except OSError as e:
                LOG.warning("rrdcached_flush_failed", error=str(e), files=len(batch),
                            destination=self.dest.label)
        before, missing, nothing = {}, [], []
        safe: dict[str, bool] = {}
        for rel in batch:
            full = os.path.join(self.root, rel)
            if not self._parents_safe(rel, safe):
                nothing.append(rel)  # reached through a symlink now: never followed
                continue
            sig = signature(full)
            if sig is not None:
                before[rel] = sig
            elif not os.path.lexists(full):
                missing.append(rel)
            else:
                nothing.append(rel)  # a symlink or special file: never sent, never followed
        delete = bool(missing) and self._may_delete(len(missing))
        paths = list(before) + (missing if delete else [])
        settled = Outcome(confirmed={p: batch[p] for p in batch if p not in paths})
        if not paths:
            self._apply(settled, "events", None)
            return
        sending = {p: batch[p] for p in paths}
        with self.lock:
            self.in_flight = sending
            self.held_changed = True
        self.pace_until = time.monotonic() + plan.MIN_INTERVAL
        self.last_run = "events"
        self.beat.mark(f"sending {len(paths)} files")
        res = self.rsync.send_list(paths, self.stop, self.beat, ignore_times=True,
                                   delete_missing=delete)
        if delete and res.refused:
            self._receiver_refuses_deletes(res)
            with self.lock:
                self.in_flight = {}
            self.pending.requeue(sending)  # again, without the deletions
            return
        out = settle(sending, res, self.root, before,
                     lambda p: signature(os.path.join(self.root, p)), time.time())
        out.confirmed.update(settled.confirmed)
        self._apply(out, "events", res)

    def _parents_safe(self, rel: str, cache: dict[str, bool]) -> bool:
        """No directory between the source root and ``rel`` is a symlink (a directory
        replaced by a link after its event must not be followed out of the tree)."""
        parent = os.path.dirname(rel)
        while parent:
            known = cache.get(parent)
            if known is None:
                known = not os.path.islink(os.path.join(self.root, parent))
                cache[parent] = known
            if not known:
                return False
            parent = os.path.dirname(parent)
        return True

    def _chunk(self) -> None:
        nxt = self.passes.next_chunk(self.key)
        if nxt is None or not self._connect("full"):
            return
        _pass, _index, data = nxt
        paths = parse_nul_list(data)
        now, wall = time.monotonic(), time.time()
        batch = {p: Entry(now, now, wall) for p in paths}
        self.pace_until = time.monotonic() + plan.MIN_INTERVAL
        self.last_run = "chunk"
        self.beat.mark(f"full pass: sending a chunk of {len(paths)} files")
        res = self.rsync.send_list(data, self.stop, self.beat, ignore_times=False)
        if res.interrupted:
            return
        out = settle(batch, res, self.root, {}, lambda p: None, wall)
        if out.unattributed:  # blame it on single paths through event batches
            self.pending.add_many(out.requeue, due_now=True)
            out.requeue, out.dest_error = {}, None
        if out.dest_error:
            self._apply(out, "full", res, requeue=False)
            return  # the same chunk again after the backoff
        out.lags = []
        self._apply(out, "full", res)
        self.passes.advance(self.key)
        if not self.reconciled:
            checked, total = self.passes.progress(self.key)
            self.pub.initial_progress(len(res.sent), checked, total)

    def _close_pass(self) -> None:
        p = self.passes.finished(self.key)
        if p is None:
            return
        ok = p.error is None
        duration = time.monotonic() - p.started
        self.pub.reconcile_finished(p.reason, duration, ok)
        src, dst = self.failures.counts()
        LOG.log(logging.INFO if ok else logging.WARNING, "reconcile_finished",
                destination=self.dest.label, reason=p.reason, ok=ok, files=p.total,
                failing_source=src, failing_destination=dst, duration_s=duration, error=p.error)
        if ok:
            self.reconciled = True
            self.pub.initial_progress(0, p.total, p.total)
            if self.cfg.delete and not self.deletes_refused:
                self.deletions_due = True
        elif self.once:
            self.gave_up = p.error

    def _deletions(self) -> None:
        self.deletions_due = False
        if not self._may_delete(None) or not self._connect("full"):
            return
        self.beat.mark("planning deletions")
        planned = self.rsync.planned_deletions(self.stop, self.beat)
        if planned.refused:
            self._receiver_refuses_deletes(planned)
            return
        if not planned.completed:
            self._run_failed("full", planned.error or "rsync failed", planned.exit_code,
                             planned.duration)
            self.deletions_due = True
            return
        gone = [p for p in planned.deleted
                if not os.path.lexists(os.path.join(self.root, p))]
        if not gone or not self._may_delete(len(gone)):
            return
        res = self.rsync.delete_paths(gone, self.stop, self.beat)
        LOG.log(logging.INFO if res.result == "ok" else logging.WARNING, "deletions_mirrored",
                destination=self.dest.label, files=len(res.deleted), duration_s=res.duration,
                exit_code=res.exit_code, error=res.error)
        if not res.completed:
            self.deletions_due = True

    # -- results --------------------------------------------------------------------------

    def _may_delete(self, files: int | None) -> bool:
        if not self.cfg.delete or self.deletes_refused:
            return False
        refusal = guard.delete_refusal(self.cfg.source_dir, self.memory, self.cfg.included)
        if refusal:
            self.pub.delete_refused(refusal)
            LOG.error("delete_refused", refusal, destination=self.dest.label, files=files,
                      error=refusal)
            return False
        return True

    def _receiver_refuses_deletes(self, res: Result) -> None:
        self.deletes_refused = True
        reason = ("the destination refuses deletes (an rrsync -no-del receiver?): content "
                  "keeps flowing, deletions are not mirrored")
        self.pub.delete_refused(reason)
        LOG.warning("delete_refused_by_destination", reason, destination=self.dest.label,
                    error=res.error)

    def _run_failed(self, kind: str, error: str, exit_code: int, duration: float,
                    busy: bool = False) -> None:
        now = time.monotonic()
        delay = self.failures.run_failed(error, now)
        if busy:  # rrsync's one-run-per-directory lock (a verify, another worker): soon
            delay = BUSY_RETRY
            self.failures.retry_at = now + delay
            LOG.info("destination_busy", "another rsync holds the receiver's lock; "
                     f"retrying in {delay:g}s", destination=self.dest.label, kind=kind)
            if self.failures.consecutive * delay < self.cfg.max_lag:
                return

        LOG.log(logging.ERROR if self.failures.consecutive > 1 else logging.WARNING, "send_failed",
                destination=self.dest.label, kind=kind, error=error, exit_code=exit_code,
                attempt=self.failures.consecutive, retry_in_s=delay,
                pending=len(self.pending), duration_s=duration)
        self.pub.batch_finished(kind=kind, result="failed", exit_code=exit_code, files=0,
                                nbytes=0, duration=duration, lags=[], error=error)
        if self.once:
            self.gave_up = error

    def _apply(self, out: Outcome, kind: str, res: Result | None, *,
               requeue: bool = True) -> None:
        now = time.monotonic()
        before = self.failures.counts()
        with self.lock:
            self.in_flight = {}
            self.held_changed = True
            for f in out.failed:
                if self.failures.path_failed(f.path, f.side, f.error, f.entry, now):
                    LOG.warning("path_failing", "a path fails on its own; others keep flowing",
                                destination=self.dest.label, path=f.path, side=f.side,
                                error=f.error)
            for path in out.confirmed:
                if self.failures.path_cleared(path) is not None:
                    LOG.info("path_recovered", destination=self.dest.label, path=path)
                self.suspects.discard(path)
            for path in out.requeue:
                self.failures.release(path, now)  # a retry that did not get through
        if requeue and out.requeue:
            self.pending.requeue(out.requeue)
        if out.unattributed:
            self.suspects = set(out.requeue) & self.suspects or set(out.requeue)
            self.limit = max(1, min(self.limit, len(out.requeue)) // 2)
        elif not self.suspects:
            self.limit = self.cfg.batch_max
        if self.failures.counts() != before:
            src, dst = self.failures.counts()
            self.pub.failing_paths(src, dst, self.failures.examples())
        if res is None:
            return
        if out.dest_error:
            self._run_failed(kind, out.dest_error, res.exit_code, res.duration, busy=res.busy)
            return
        if self.failures.run_succeeded():
            LOG.info("destination_recovered", destination=self.dest.label)
        s = self.summary
        s["batches"] += 1
        s["files"] += len(res.sent)
        s["bytes"] += res.nbytes
        if out.lags:
            s["max_lag_s"] = max(s["max_lag_s"], max(out.lags))
        self.pub.batch_finished(kind=kind, result=res.result, exit_code=res.exit_code,
                                files=len(res.sent), nbytes=res.nbytes, duration=res.duration,
                                lags=out.lags, error=res.error)
        LOG.debug("batch_sent", destination=self.dest.label, kind=kind, files=len(res.sent),
                  bytes=res.nbytes, duration_s=res.duration, exit_code=res.exit_code,
                  raced=out.raced, failed=len(out.failed))

    def take_summary(self) -> dict[str, float]:
        s, self.summary = self.summary, {"batches": 0, "files": 0, "bytes": 0,
                                         "max_lag_s": 0.0}
        return s

    def close(self) -> None:
        if self.ssh is not None:
            self.ssh.close()
        self.rsync.close()
