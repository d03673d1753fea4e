"""Filesystem events → relative paths in the pending set.

What the kernel reports matters: ``rrdtool update`` (and OpenNMS through jrrd2)
writes through mmap, so inotify reports OPEN and CLOSE_WRITE only, never MODIFY;
JRobin writes with write() and may keep the file open (MODIFY, no close). We ask
for close-after-write, modify, create, delete and move, and nothing else.

What the kernel can lose: when its queue overflows, watchdog 7 rebuilds its watches
and logs a warning, but tells the handler nothing. We hook the overflow callback of
watchdog's watch group so the engine can reconcile. When the per-UID watch limit is
reached, part of the tree would go unwatched: we fall back to polling, loudly,
naming the sysctl to raise.
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
from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.inotify import InotifyEmitter, InotifyObserver, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyEvent, InotifyFD
from watchdog.observers.polling import PollingObserverVFS

from . import log
from .config import SidecarConfig
from .scan import LOST_FOUND

LOG = log.get("watch")

EVENTS = [FileClosedEvent, FileModifiedEvent, FileCreatedEvent, FileDeletedEvent,
          FileMovedEvent, DirCreatedEvent, DirMovedEvent, DirDeletedEvent]
WATCH_SYSCTL = "fs.inotify.max_user_watches"


class _Hooks:
    """Where a watch group reports what watchdog would otherwise swallow."""

    def __init__(self, overflow: Callable[[], None], limit: Callable[[OSError], None],
                 file: Callable[[bytes, bool], None]) -> None:
        self.overflow = overflow
        self.limit = limit
        self.file = file


class _Group(InotifyWatchGroup):
    """watchdog's watch group, reporting overflows and failed sub-directory watches.

    watchdog 7 rebuilds watches after IN_Q_OVERFLOW but tells no handler, and it
    silently skips a sub-directory whose watch cannot be added (ENOSPC at the
    per-UID watch limit): that directory's changes would never be seen.
    """

    hooks: _Hooks  # set on a per-watcher subclass

    def _add_callback(self, path: bytes) -> None:
        try:
            wd = self._inotify_fd.add_callback(path, self.event_mask, self._callback, self._id)
        except OSError as e:
            if path == self.path:
                raise
            if e.errno in (errno.ENOSPC, errno.EMFILE, errno.ENOMEM):
                self.hooks.limit(e)
            return  # a vanished or unreadable sub-directory: like watchdog
        self._active_callbacks_by_path[path] = wd
        self._active_callbacks_by_watch[wd] = path

    def on_queue_overflow(self) -> None:
        super().on_queue_overflow()
        self.hooks.overflow()

    def on_event(self, event: InotifyEvent) -> None:
        """A plain file event (written, modified, created, deleted; not a move, not a
        directory) needs neither move pairing nor watch bookkeeping, so it goes straight to
        our handler from the inotify reader thread instead of through watchdog's emitter
        and dispatcher threads: per-event dispatch was most of the worker's own CPU at
        OpenNMS rates (bench/README.md, "What limits rrdsync"; ``python -m bench.threads
        PID`` shows it per thread during a ``python -m bench opennms-20k`` run). Everything
        else takes watchdog's usual path."""
        if (event.is_directory or event.is_moved_from or event.is_moved_to
                or not (event.is_close_write or event.is_modify or event.is_create
                        or event.is_delete or event.is_attrib)):
            super().on_event(event)
            return
        with self._lock:
            if not self.is_active:
                return
            path = self._build_event_source_path(event)
        if path is not None:
            self.hooks.file(path, event.is_delete)


class _Emitter(InotifyEmitter):
    group_class: type[_Group]

    def on_thread_start(self) -> None:
        self._inotify = self.group_class(
            self._inotify_fd,
            os.fsencode(self.watch.path),
            is_recursive=self.watch.is_recursive,
            event_mask=self.get_event_mask_from_filter(),
            follow_symlink=self.watch.follow_symlink,
        )


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
        """The fast path from the watch group (see ``_Group.on_event``)."""
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
                if e.errno not in (errno.ENOSPC, errno.EMFILE, errno.ENOMEM):
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
        hooks = _Hooks(self.on_overflow, self._limit_hit, self.handler.file_event)
        group = type("Group", (_Group,), {"hooks": hooks})
        return _Observer(type("Emitter", (_Emitter,), {"group_class": group}))

    def _limit_hit(self, e: OSError) -> None:
        """A sub-directory could not be watched: events there would be lost."""
        self.limit_error = e

    def _start(self, observer: BaseObserver) -> None:
        handler = self.handler
        kwargs = {"event_filter": EVENTS} if self.mode == "inotify" else {}
        observer.schedule(handler, os.fspath(self.cfg.source_dir), recursive=True, **kwargs)
        try:
            observer.start()
        except OSError:
            fd = getattr(observer, "_inotify_fd", None)
            if fd is not None:
                fd.stop()
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
        fd = getattr(obs, "_inotify_fd", None)
        if fd is not None and not fd.is_alive():
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


class _Observer(InotifyObserver):
    """InotifyObserver whose emitter class we choose (to get the hooks above)."""

    def __init__(self, emitter_class: type[InotifyEmitter]) -> None:
        self._inotify_fd = InotifyFD()
        self._inotify_fd.start()
        BaseObserver.__init__(self, emitter_class, timeout=DEFAULT_OBSERVER_TIMEOUT,
                              inotify_fd=self._inotify_fd)
