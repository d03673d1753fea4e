"""The watchdog adapter: the internals it uses are where it expects them, its hooks fire
through watchdog's real inotify code, and a moved internal fails with its name.

If one of these fails after a watchdog upgrade, the message names the internal that
moved: update ``rrdsync/_watchdog_adapter.py`` (or keep the pin in pyproject.toml) before
shipping. The watcher's behaviour against real writers is in
``tests/integration/test_watch.py``.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.events import FileSystemEventHandler
from watchdog.observers.inotify import InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyFD

from rrdsync import _watchdog_adapter as wd
from rrdsync._drift import LibraryDrift
from rrdsync.watch import EVENTS


class Recorder:
    """Hooks that remember what they were told."""

    def __init__(self) -> None:
        self.files: list[tuple[bytes, bool]] = []
        self.limits: list[OSError] = []
        self.overflows = 0
        self.seen = threading.Event()

    def hooks(self) -> wd.Hooks:
        return wd.Hooks(overflow=self._overflow, limit=self.limits.append, file=self._file)

    def _overflow(self) -> None:
        self.overflows += 1

    def _file(self, path: bytes, deleted: bool) -> None:
        self.files.append((path, deleted))
        self.seen.set()


@pytest.fixture
def observe(tmp_path: Path) -> Iterator[tuple[Recorder, wd.Observer]]:
    rec = Recorder()
    obs = wd.Observer(rec.hooks())
    yield rec, obs
    if obs.is_alive():
        obs.stop()
        obs.join(timeout=5)
    else:
        obs.close_reader()


def _start(obs: wd.Observer, root: Path) -> None:
    obs.schedule(FileSystemEventHandler(), os.fspath(root), recursive=True,
                 event_filter=EVENTS)
    obs.start()


def test_watchdog_internals_are_where_the_adapter_expects_them():
    wd.check()


def test_plain_file_events_reach_the_hook_through_the_inotify_reader(observe, tmp_path):
    rec, obs = observe
    (tmp_path / "sub").mkdir()
    _start(obs, tmp_path)
    assert obs.reader_alive()
    (tmp_path / "sub" / "a.rrd").write_bytes(b"x")
    assert rec.seen.wait(5), "no file event reached Hooks.file"
    assert (os.fsencode(tmp_path / "sub" / "a.rrd"), False) in rec.files
    rec.seen.clear()
    (tmp_path / "sub" / "a.rrd").unlink()
    assert rec.seen.wait(5)
    assert rec.files[-1] == (os.fsencode(tmp_path / "sub" / "a.rrd"), True)


def test_an_overflow_reaches_the_hook_after_watchdog_rebuilds(observe, tmp_path):
    rec, obs = observe
    _start(obs, tmp_path)
    (emitter,) = obs.emitters
    group = emitter._inotify  # the adapter's _Group (tests may look at what it built)
    assert isinstance(group, InotifyWatchGroup)
    group.on_queue_overflow()  # what the reader thread calls on IN_Q_OVERFLOW
    assert rec.overflows == 1


def test_a_sub_directory_over_the_watch_limit_reaches_the_hook(observe, tmp_path,
                                                               monkeypatch):
    rec, obs = observe
    (tmp_path / "full").mkdir()
    original = InotifyFD.add_callback

    def add_callback(self, path, *args):
        if path.endswith(b"/full"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, path, *args)

    monkeypatch.setattr(InotifyFD, "add_callback", add_callback)
    _start(obs, tmp_path)
    assert [e.errno for e in rec.limits] == [errno.ENOSPC]


def test_a_moved_watchdog_internal_is_named(monkeypatch):
    monkeypatch.delattr(InotifyWatchGroup, "_build_event_source_path")
    with pytest.raises(LibraryDrift, match=r"watchdog: internal 'InotifyWatchGroup\._build_"
                                           r"event_source_path' moved.*rrdsync/_watchdog_"
                                           r"adapter\.py"):
        wd.check()
    monkeypatch.undo()

    def add_callback(self, path: bytes) -> None:  # a release that stopped filling the maps
        self._inotify_fd.add_callback(path, self.event_mask, self._callback, self._id)

    monkeypatch.setattr(InotifyWatchGroup, "_add_callback", add_callback)
    with pytest.raises(LibraryDrift, match=r"'InotifyWatchGroup\._add_callback using "
                                           r"self\._active_callbacks_by_path"):
        wd.check()
