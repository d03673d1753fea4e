"""Every use of watchdog's private names, in one place (written against 7.1.0).

rrdsync runs watchdog's own inotify observer, emitter and watch group, with three things
watchdog does not offer publicly:

* an overflow hook: after ``IN_Q_OVERFLOW`` watchdog 7 rebuilds its watches and logs a
  warning but tells no handler, so :class:`_Group` overrides ``on_queue_overflow``;
* a failed sub-directory watch: ``InotifyWatchGroup._add_callback`` silently skips a
  directory it cannot watch (ENOSPC at the per-UID watch limit), so we override it (it
  fills ``_active_callbacks_by_path``/``_by_watch`` with what ``_inotify_fd.add_callback``
  returned for ``_callback``/``_id``, as watchdog's does) and report the error;
* a fast path for plain file events: ``on_event`` resolves the path with
  ``_build_event_source_path`` under ``_lock`` and calls us from the inotify reader thread
  (no emitter and dispatcher hops: per-event dispatch was most of the worker's own CPU at
  OpenNMS rates; bench/README.md, "What limits rrdsync", and ``python -m bench.threads
  PID`` during a ``python -m bench opennms-20k`` run show it per thread);

and to plug our group in, :class:`Observer` builds ``InotifyObserver``'s parts itself
(its ``_inotify_fd`` reader thread, ``BaseObserver.__init__`` with our emitter class) and
:class:`_Emitter` sets the emitter's ``_inotify`` group from its ``_inotify_fd``.

``pyproject.toml`` pins the version range this was written against. If an upgrade moves
one of these names, :func:`check` (run by ``tests/unit/test_watchdog_adapter.py``)
raises :class:`LibraryDrift` naming it, instead of the worker silently losing events.
"""

from __future__ import annotations

import dataclasses
import errno
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchdog.observers.api import (
    DEFAULT_OBSERVER_TIMEOUT,
    BaseObserver,
    EventQueue,
    ObservedWatch,
)
from watchdog.observers.inotify import InotifyEmitter, InotifyObserver, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyEvent, InotifyFD

from ._drift import LibraryDrift

LIBRARY = "watchdog"
WRITTEN_FOR = "7.1.0"
# errors of inotify_add_watch(2) that mean a kernel limit, not a vanished directory
LIMIT_ERRNOS = (errno.ENOSPC, errno.EMFILE, errno.ENOMEM)
GROUP_FIELDS = ("_inotify_fd", "_lock", "_id", "_active_callbacks_by_path",
                "_active_callbacks_by_watch")
GROUP_METHODS = ("_add_callback", "_add_all_callbacks", "_build_event_source_path",
                 "on_queue_overflow", "on_event")


@dataclass(frozen=True)
class Hooks:
    """Where a watch group reports what watchdog would otherwise swallow."""

    overflow: Callable[[], None]  # the kernel dropped events (IN_Q_OVERFLOW)
    limit: Callable[[OSError], None]  # a sub-directory could not be watched
    file: Callable[[bytes, bool], None]  # a plain file event: (path, deleted)


@dataclass
class _Group(InotifyWatchGroup):
    """watchdog's watch group, reporting overflows, failed sub-directory watches and plain
    file events (see the module docstring)."""

    hooks: Hooks = dataclasses.field(kw_only=True)

    def _add_callback(self, path: bytes) -> None:
        try:
            wd = self._inotify_fd.add_callback(path, self.event_mask, self._callback, self._id)
        except OSError as e:
            if path == self.path:
                raise
            if e.errno in LIMIT_ERRNOS:
                self.hooks.limit(e)
            return  # a vanished or unreadable sub-directory: like watchdog
        self._active_callbacks_by_path[path] = wd
        self._active_callbacks_by_watch[wd] = path

    def on_queue_overflow(self) -> None:
        super().on_queue_overflow()
        self.hooks.overflow()

    def on_event(self, event: InotifyEvent) -> None:
        """A plain file event (written, modified, created, deleted; not a move, not a
        directory) needs neither move pairing nor watch bookkeeping: straight to the hook.
        Everything else takes watchdog's usual path."""
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
    """watchdog's inotify emitter, watching through a :class:`_Group`."""

    def __init__(self, event_queue: EventQueue, watch: ObservedWatch, *, hooks: Hooks,
                 **kwargs: Any) -> None:
        super().__init__(event_queue, watch, **kwargs)
        self.hooks = hooks

    def on_thread_start(self) -> None:
        self._inotify = _Group(
            self._inotify_fd,
            os.fsencode(self.watch.path),
            is_recursive=self.watch.is_recursive,
            event_mask=self.get_event_mask_from_filter(),
            follow_symlink=self.watch.follow_symlink,
            hooks=self.hooks,
        )


class Observer(InotifyObserver):
    """watchdog's inotify observer whose watch groups report to ``hooks``."""

    def __init__(self, hooks: Hooks) -> None:
        # InotifyObserver.__init__ without its choice of emitter class; BaseObserver passes
        # its extra keyword arguments on to every emitter it creates.
        self._inotify_fd = InotifyFD()
        self._inotify_fd.start()
        BaseObserver.__init__(self, _Emitter, timeout=DEFAULT_OBSERVER_TIMEOUT,
                              inotify_fd=self._inotify_fd, hooks=hooks)

    def reader_alive(self) -> bool:
        """The thread that reads the inotify descriptor (and runs the hooks) is running."""
        return self._inotify_fd.is_alive()

    def close_reader(self) -> None:
        """Stop the reader thread of an observer that failed to start."""
        self._inotify_fd.stop()


def _drift(name: str) -> LibraryDrift:
    return LibraryDrift(LIBRARY, name, WRITTEN_FOR, __name__)


def _source(obj: Callable[..., Any]) -> str | None:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return None  # installed without sources: the other checks still apply


def _require_source(obj: Callable[..., Any], where: str, *needles: str) -> None:
    text = _source(obj)
    for needle in needles:
        if text is not None and needle not in text:
            raise _drift(f"{where} using {needle}")


def check() -> None:
    """Raise :class:`LibraryDrift` if an internal this adapter uses has moved."""
    fields = {f.name for f in dataclasses.fields(InotifyWatchGroup)}
    for name in GROUP_FIELDS:
        if name not in fields:
            raise _drift(f"InotifyWatchGroup.{name}")
    for name in (*GROUP_METHODS, "_callback"):
        if not hasattr(InotifyWatchGroup, name):
            raise _drift(f"InotifyWatchGroup.{name}")
    _require_source(InotifyWatchGroup._add_all_callbacks, "InotifyWatchGroup._add_all_callbacks",
                    "self._add_callback(")
    _require_source(InotifyWatchGroup._add_callback, "InotifyWatchGroup._add_callback",
                    "self._inotify_fd.add_callback(path, self.event_mask, self._callback, "
                    "self._id)", "self._active_callbacks_by_path[path] = wd",
                    "self._active_callbacks_by_watch[wd] = path")
    _require_source(InotifyEmitter.__init__, "InotifyEmitter.__init__",
                    "self._inotify_fd", "self._inotify")
    _require_source(InotifyEmitter.on_thread_start, "InotifyEmitter.on_thread_start",
                    "self._inotify = InotifyWatchGroup(")
    _require_source(InotifyObserver.__init__, "InotifyObserver.__init__",
                    "self._inotify_fd = InotifyFD()", "inotify_fd=self._inotify_fd")
    _require_source(InotifyObserver.on_thread_stop, "InotifyObserver.on_thread_stop",
                    "self._inotify_fd.stop()")
    params = inspect.signature(BaseObserver.__init__).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        raise _drift("BaseObserver.__init__(**emitter_kwargs)")
    if "inotify_fd" not in inspect.signature(InotifyEmitter.__init__).parameters:
        raise _drift("InotifyEmitter.__init__(inotify_fd=...)")
    if list(inspect.signature(InotifyFD.add_callback).parameters)[1:] != [
            "path", "mask", "callback", "id_"]:
        raise _drift("InotifyFD.add_callback(path, mask, callback, id_)")
