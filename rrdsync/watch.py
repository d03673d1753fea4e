"""Filesystem events → relative paths in the pending set.

What the kernel reports matters: ``rrdtool update`` (and OpenNMS through jrrd2)
writes through mmap, so inotify reports OPEN and CLOSE_WRITE only, never MODIFY;
JRobin writes with write() and may keep the file open (MODIFY, no close). We ask
for close-after-write, modify, create, delete and move, and nothing else.

What the kernel can lose: when its queue overflows, watchdog 7 rebuilds its watches
and logs a warning, but tells the handler nothing. We hook the overflow callback of
watchdog's watch group so the engine can reconcile. When the per-UID watch limit is
reached, part of the tree would go unwatched: we fall back to polling, loudly,
naming the sysctl to raise. Those hooks reach into watchdog's internals, all of them in
``_watchdog_adapter.py``.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from . import _watchdog_adapter, log
from .config import SidecarConfig
from .scan import LOST_FOUND

LOG = log.get("watch")

EVENTS = [FileClosedEvent, FileModifiedEvent, FileCreatedEvent, FileDeletedEvent,
          FileMovedEvent, DirCreatedEvent, DirMovedEvent, DirDeletedEvent]
WATCH_SYSCTL = "fs.inotify.max_user_watches"


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, cfg: SidecarConfig, sink: Callable[[str], None],
                 dir_gone: Callable[[], None] | None = None) -> None:
        self.root = os.fspath(root)
        self.prefix = self.root.rstrip(os.sep) + os.sep
        self.cfg = cfg
        self.sink = sink
        self.dir_gone = dir_gone

    def _rel(self, path: str | bytes) -> str | None:
        p = os.fsdecode(path)
        if p.startswith(self.prefix):  # the usual case, without relpath's cost
            return p[len(self.prefix):] or None
        rel = os.path.relpath(p, self.root)
        if rel.startswith(".." + os.sep) or rel == ".." or rel == ".":
            return None
        return rel

    def file_event(self, path: bytes, deleted: bool) -> None:
        """The fast path from the watch group (see ``_watchdog_adapter._Group.on_event``)."""
        if not deleted or self.cfg.delete:
            self._file(path)

    def _file(self, path: str | bytes) -> None:
        rel = self._rel(path)
        if rel is not None and self.cfg.included(os.path.basename(rel)):
            self.sink(rel)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            # watchdog synthesises created/moved events for a directory's contents, but a
            # directory moved out of the tree arrives as one DirDeletedEvent with no event
            # for its files: only a full pass (with --delete) can mirror that.
            if isinstance(event, DirDeletedEvent) and self.cfg.delete:
                LOG.debug("dir_removed", "directory gone")
                if self.dir_gone is not None:
                    self.dir_gone()
            return
        if isinstance(event, FileMovedEvent):
            if self.cfg.delete:
                self._file(event.src_path)
            self._file(event.dest_path)
        elif isinstance(event, FileDeletedEvent):
            if self.cfg.delete:
                self._file(event.src_path)
        elif isinstance(event, FileClosedEvent | FileModifiedEvent | FileCreatedEvent):
            self._file(event.src_path)


class Watcher:
    """Runs a watchdog observer over the source tree and reports what it sees."""

    def __init__(self, cfg: SidecarConfig, sink: Callable[[str], None],
                 on_overflow: Callable[[], None],
                 on_dir_gone: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.sink = sink
        self.on_overflow = on_overflow
        self.on_dir_gone = on_dir_gone
        self.mode = cfg.watch
        self.observer: BaseObserver | None = None
        self.limit_error: OSError | None = None
        self.handler = _Handler(cfg.source_dir, cfg, sink, on_dir_gone)
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.mode == "inotify":
            try:
                self._start(self._inotify_observer())
            except OSError as e:
                if e.errno not in _watchdog_adapter.LIMIT_ERRNOS:
                    raise
                self.stop()
                self._fallback(e)
            else:
                if self.limit_error is None:
                    self._started()
                    return
                self.stop()
                self._fallback(self.limit_error)
        self._start(self._poll_observer())
        self._started()

    def _started(self) -> None:
        LOG.info("watch_started", mode=self.mode, path=str(self.cfg.source_dir))

    def _poll_observer(self) -> BaseObserver:
        """Polling that never follows a symlink (``lstat``: a link to a directory is not a
        directory) and never enters ``lost+found`` at the root. watchdog's default
        ``PollingObserver`` stats with ``os.stat`` and walks into linked directories:
        ``ext -> /etc`` replicated /etc, and ``loop -> ..`` nested for ever."""
        root = os.fspath(self.cfg.source_dir)

        def listdir(path: str | None) -> Iterator[os.DirEntry[str]]:
            with os.scandir(path) as it:
                entries = [e for e in it if path != root or e.name != LOST_FOUND]
            return iter(entries)

        return PollingObserverVFS(stat=os.lstat, listdir=listdir,
                                  polling_interval=self.cfg.poll_interval)

    def _inotify_observer(self) -> BaseObserver:
        return _watchdog_adapter.Observer(_watchdog_adapter.Hooks(
            overflow=self.on_overflow, limit=self._limit_hit, file=self.handler.file_event))

    def _limit_hit(self, e: OSError) -> None:
        """A sub-directory could not be watched: events there would be lost."""
        self.limit_error = e

    def _start(self, observer: BaseObserver) -> None:
        observer.schedule(self.handler, os.fspath(self.cfg.source_dir), recursive=True,
                          event_filter=EVENTS if self.mode == "inotify" else None)
        try:
            observer.start()
        except OSError:
            if isinstance(observer, _watchdog_adapter.Observer):
                observer.close_reader()
            raise
        with self._lock:
            self.observer = observer

    def _fallback(self, e: OSError) -> None:
        what = "watch limit" if e.errno == errno.ENOSPC else "inotify instance limit"
        sysctl = WATCH_SYSCTL if e.errno == errno.ENOSPC else "fs.inotify.max_user_instances"
        LOG.error("watch_limit",
                  f"inotify {what} reached: falling back to polling every "
                  f"{self.cfg.poll_interval:g}s; raise the host's {sysctl} "
                  "(per host and UID, shared with OpenNMS) to get events back",
                  error=str(e), sysctl=sysctl)
        self.mode = "poll"
        self.limit_error = None

    def problem(self) -> str | None:
        """Why the watcher can no longer be trusted (a thread died, a watch could not be
        added), or None. The engine then switches to polling and reconciles."""
        with self._lock:
            obs = self.observer
        if obs is None or not obs.is_alive():
            return "observer thread died"
        if not all(em.is_alive() for em in obs.emitters):
            return "emitter thread died"
        if isinstance(obs, _watchdog_adapter.Observer) and not obs.reader_alive():
            return "inotify reader thread died"
        if self.limit_error is not None:
            return f"inotify watch limit reached ({self.limit_error}); raise {WATCH_SYSCTL}"
        return None

    def restart_as_poll(self, reason: str) -> None:
        LOG.error("watch_failed",
                  f"watcher unusable ({reason}); switching to polling every "
                  f"{self.cfg.poll_interval:g}s", error=reason, sysctl=WATCH_SYSCTL)
        self.stop()
        self.limit_error = None
        self.mode = "poll"
        self._start(self._poll_observer())
        self._started()

    def stop(self) -> None:
        with self._lock:
            obs, self.observer = self.observer, None
        if obs is not None:
            obs.stop()
            obs.join(timeout=1)

