"""One destination's replication: its pending set, failures, journal, SSH master and the
one rsync at a time it runs, on a thread of its own.

Destinations never wait for each other: each has its own loop, so one that is down, slow
or refusing writes delays nothing else. The loop asks :func:`plan.decide` what to do,
does it, and records what the run meant (:func:`outcome.settle`) in its
:class:`~rrdsync.backlog.Backlog`, which the main thread reads to publish gauges and
write the journal.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import log, plan, rrdcached
from .backlog import Backlog
from .batch import Entry
from .config import Destination, SidecarConfig
from .journal import Journal, SourceMemory, parse_nul_list
from .mirror import Mirror
from .outcome import Outcome, settle
from .prepare import prepare, signature
from .scan import CHUNK_BYTES, CHUNK_FILES, Passes
from .ssh import SshError, SshMaster, classify_ssh_error
from .status.api import DestinationPublisher
from .threads import Beat, Stop
from .transfer import Result, Rsync

LOG = log.get("replica")
RRDCACHED_TIMEOUT = 10.0
# Full-pass runs aim at about this long: three seconds while no changes flow (a first sync,
# a quiet hour: each run's fixed cost — an SSH channel, both rsyncs, a few round trips, half
# a second over a 40 ms WAN — is then small beside what it carries), a tenth of a second
# while changes flow (the pass alternates with event batches, so a change waits for at most
# one such run besides its own batch: at opennms-100k a quarter second made the p99 of
# updates made during a pass 0.82 s against 0.49 s outside it); and at most this many files
# (one file list in memory on both ends).
CHUNK_TARGET_S = 3.0
CHUNK_TARGET_BUSY_S = 0.1
BUSY_WINDOW_S = 2.0
CHUNK_MAX_FILES = 20_000
CHUNK_MAX_BYTES = 1 << 30
BUSY_RETRY = 1.0


@dataclass(frozen=True)
class RunRate:
    """How fast the last full-pass run went: files checked per second, and bytes of listed
    files per second when it sent any (a quick check of unchanged files costs per file,
    not per byte, so then only the file count bounds the next run)."""

    files_per_s: float
    bytes_per_s: float | None

    @classmethod
    def measured(cls, files: int, size: int, sent_any: bool, duration: float) -> RunRate:
        d = max(duration, 0.01)
        return cls(files / d, size / d if sent_any else None)


def run_limits(rate: RunRate | None, target: float) -> tuple[int, int]:
    """The most files, and bytes of listed files, the next full-pass run may carry to last
    about ``target`` seconds at the last run's rate. Sized when the run starts, so a run
    that follows quiet ones is cut to the short target as soon as changes flow. The bytes
    are the listed files' (the rule that scaled the bytes a run *sent* held runs during
    updates, which send a changed file or two, at about one 2 MiB chunk: an interval pass
    at opennms-100k took 102 s instead of 10)."""
    if rate is None:
        return CHUNK_FILES, CHUNK_BYTES
    nfiles = int(min(CHUNK_MAX_FILES, max(CHUNK_FILES, rate.files_per_s * target)))
    if rate.bytes_per_s is None:
        return nfiles, CHUNK_MAX_BYTES
    return nfiles, int(min(CHUNK_MAX_BYTES, max(CHUNK_BYTES, rate.bytes_per_s * target)))


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
        self.once = once
        self.root = os.fspath(cfg.source_dir)
        self.backlog = Backlog(cfg.settle, cfg.max_delay, cfg.batch_max, dest.label)
        self.pending = self.backlog.pending  # the watcher's fan-out adds here
        self.failures = self.backlog.failures
        self.journal = Journal(cfg.state_dir, dest.key, adopt_legacy=adopt_legacy)
        self.ssh = SshMaster(cfg, dest) if dest.is_remote else None
        self.rsync = Rsync(cfg, dest, self.ssh,
                           Path(tempfile.mkdtemp(prefix=f"rrdsync-{dest.key[:20]}-")))
        self.beat = Beat(dest.label)
        self.saved_at = 0.0  # when the main thread last wrote the journal
        self.pace_until = 0.0
        self.last_run = ""
        self.mirror = Mirror(cfg, memory, pub, dest.label)
        self.reconciled = False
        self.gave_up: str | None = None  # once: why this destination could not finish
        self.ssh_seen = 0
        # how fast this destination took the last full-pass run: the next one is sized
        # from it when it starts (run_limits)
        self.rate: RunRate | None = None
        self.events_at = 0.0  # when the last event batch was sent
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
            chunk_ready=self.passes.chunk_ready(self.key),
            pass_complete=self.passes.complete(self.key),
            deletions_due=self.mirror.due, last_run=self.last_run)

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
        return self.reconciled and len(self.pending) == 0 and not self.mirror.due

    def once_ok(self) -> bool:
        """``rrdsync once`` succeeded for this destination: in sync, nothing failing."""
        return (self.gave_up is None and self.reconciled and len(self.pending) == 0
                and not self.failures.paths)

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
        batch = self.backlog.take(time.monotonic(), retries=not self.once)
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
        found = prepare(self.root, batch)
        before, missing = found.before, found.missing
        delete = bool(missing) and self.mirror.allowed(len(missing))
        paths = list(before) + (missing if delete else [])
        settled = Outcome(confirmed={p: batch[p] for p in batch if p not in paths})
        if not paths:
            self._apply(settled, "events", None)
            return
        sending = {p: batch[p] for p in paths}
        self.backlog.sending(sending)
        self.pace_until = time.monotonic() + plan.MIN_INTERVAL
        self.last_run = "events"
        self.events_at = time.monotonic()
        self.beat.mark(f"sending {len(paths)} files")
        res = self.rsync.send_list(paths, self.stop, self.beat, ignore_times=True,
                                   delete_missing=delete)
        if delete and res.refused:
            self.mirror.receiver_refuses(res)
            self.backlog.returned(sending)  # again, without the deletions
            return
        out = settle(sending, res, self.root, before,
                     lambda p: signature(os.path.join(self.root, p)), time.time())
        out.confirmed.update(settled.confirmed)
        self._apply(out, "events", res)

    def _chunk(self) -> None:
        busy = time.monotonic() - self.events_at < BUSY_WINDOW_S
        files, nbytes = run_limits(self.rate, CHUNK_TARGET_BUSY_S if busy else CHUNK_TARGET_S)
        nxt = self.passes.next_chunk(self.key, files, nbytes)
        if nxt is None or not self._connect("full"):
            return
        paths = parse_nul_list(nxt.data)
        now, wall = time.monotonic(), time.time()
        batch = {p: Entry(now, now, wall) for p in paths}
        self.last_run = "chunk"
        self.beat.mark(f"full pass: sending a chunk of {len(paths)} files")
        res = self.rsync.send_list(nxt.send, self.stop, self.beat, ignore_times=False,
                                   dirs=True)
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
        self.passes.advance(self.key, nxt.chunks)
        self.rate = RunRate.measured(nxt.files, nxt.size, bool(res.sent), res.duration)
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
            self.mirror.pass_completed()
        elif self.once:
            self.gave_up = p.error

    def _deletions(self) -> None:
        if not self._connect("full"):
            return
        failed = self.mirror.run(self.rsync, self.stop, self.beat)
        if failed is not None:
            self._run_failed("full", failed.error or "rsync failed", failed.exit_code,
                             failed.duration)

    # -- results --------------------------------------------------------------------------

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
        if self.backlog.record(out, requeue=requeue):
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
