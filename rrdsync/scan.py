"""Full passes: the source tree walked once, in chunks every destination sends at its pace.

A full reconciliation is the backstop for what events can miss (an overflowed inotify
queue, a stopped worker, a watch limit). Running it as one recursive rsync per
destination would scan the source once per destination and hold back every event batch
for as long as it runs (it grows with the tree: 62 s at 100k files in the last
`bench opennms-100k` run). Instead one walker thread lists the
tree into chunks of relative paths (NUL-separated, ready for ``--files-from``); each
destination sends the next chunk between its event batches, with rsync's quick check
deciding what actually moves.

The walk never follows a symlink, never enters ``lost+found`` at the source root (a
volume root's, usually root-only), and reports a directory it cannot read instead of
failing the pass: one unreadable corner must not stop the reconciliation of the rest.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from . import log
from .journal import nul_list

LOG = log.get("scan")
LOST_FOUND = "lost+found"
# The walker's unit: a chunk ends at whichever comes first. Each destination sends one or
# several consecutive chunks per rsync run, as many as its last runs say it can send in the
# run's target time (replica.CHUNK_TARGET_S, shorter while changes flow), so a fast
# destination makes few runs and a slow link never holds event batches back longer than
# about one small chunk (2 MiB is 0.8 s on a 20 Mbit/s link, before compression).
CHUNK_FILES = 500
CHUNK_BYTES = 2 << 20


@dataclass
class Dir:
    """One directory as the walker listed it. ``whole``: every regular file in it is
    included, so rsync may be handed the directory itself (see :meth:`Passes._walk`)."""

    rel: str  # "" for the root
    files: list[tuple[str, os.DirEntry[str]]]  # (relative path, entry), in name order
    whole: bool


def walk_dirs(root: str, included: Callable[[str], bool],
              unreadable: Callable[[str, OSError], None] | None = None) -> Iterator[Dir]:
    """The directories under ``root`` with their included regular files, depth first in
    name order (rsync works best on sorted lists). Symlinks are never followed."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        path = os.path.join(root, rel_dir) if rel_dir else root
        try:
            it = os.scandir(path)
        except OSError as e:
            if not rel_dir:
                raise  # the root itself: the caller decides
            if unreadable is not None:
                unreadable(rel_dir, e)
            continue
        dirs: list[str] = []
        files: list[tuple[str, os.DirEntry[str]]] = []
        whole = True
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if rel_dir or entry.name != LOST_FOUND:
                            dirs.append(entry.name)
                    elif entry.is_file(follow_symlinks=False):
                        if included(entry.name):
                            files.append((entry.name, entry))
                        else:
                            whole = False
                except OSError:
                    whole = False  # vanished while listed
        prefix = rel_dir + "/" if rel_dir else ""
        files.sort(key=lambda f: f[0])
        yield Dir(rel_dir, [(prefix + name, entry) for name, entry in files], whole)
        stack.extend(prefix + d for d in sorted(dirs, reverse=True))


def walk(root: str, included: Callable[[str], bool],
         unreadable: Callable[[str, OSError], None] | None = None,
         ) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Included regular files under ``root`` as (relative path, entry), in the order of
    :func:`walk_dirs`."""
    for d in walk_dirs(root, included, unreadable):
        yield from d.files


def lstat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


@dataclass
class Pass:
    """One walk of the tree. ``chunks[i]`` is None once every destination has sent it."""

    id: int
    reason: str
    started: float
    chunks: list[bytes | None] = field(default_factory=list)  # the files, NUL-separated
    sends: list[bytes | None] = field(default_factory=list)  # what rsync is handed for them
    counts: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # bytes of the files in each chunk
    done: bool = False
    error: str | None = None  # the walk could not run (root missing): the pass failed
    unreadable: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Take:
    """Consecutive chunks of one pass, joined for one rsync run."""

    pass_: Pass
    chunks: int
    data: bytes  # NUL-separated relative paths of the files
    send: bytes  # the --files-from list for them: files, and whole directories as "dir/."
    files: int
    size: int  # bytes of those files when they were listed


@dataclass
class Cursor:
    pass_id: int = 0
    index: int = 0
    finished: bool = True  # finished (or never started) its pass


class Passes:
    """The walker and the passes it produced, shared by every destination.

    Destinations call :meth:`next_chunk` / :meth:`advance` from their own threads; the
    walker runs in :meth:`run` on its own thread. A destination finishes the pass it is
    in before it moves to the newest one (intermediate passes are skipped: the newest
    covers them), so even with passes requested faster than a slow destination sends,
    every destination completes passes.
    """

    def __init__(self, root: str, included: Callable[[str], bool], consumers: list[str],
                 wake: Callable[[], None], chunk_files: int = CHUNK_FILES,
                 chunk_bytes: int = CHUNK_BYTES,
                 started: Callable[[str], None] = lambda reason: None) -> None:
        self.root = root
        self.included = included
        self.chunk_files = chunk_files
        self.chunk_bytes = chunk_bytes
        self.wake = wake
        self.started = started  # told the reason of each walk (for the rescan metric)
        self._lock = threading.Condition()
        self._passes: dict[int, Pass] = {}
        self._cursors = {c: Cursor() for c in consumers}
        self._requested: str | None = None
        self._next_id = 1
        self._recent: tuple[float, Callable[[list[str]], None]] | None = None

    # -- requests ----------------------------------------------------------------------

    def request(self, reason: str, *, recent_since: float | None = None,
                on_recent: Callable[[list[str]], None] | None = None) -> None:
        """Ask for a pass. Requests made while one is being walked start one more walk
        after it (that walk may have passed the places where events were lost)."""
        with self._lock:
            if self._requested is None:
                self._requested = reason
            if recent_since is not None and on_recent is not None:
                self._recent = (recent_since, on_recent)
            self._lock.notify_all()

    def pending_request(self) -> str | None:
        with self._lock:
            return self._requested

    # -- the walker --------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """The walker thread: one walk per request, until ``stop``."""
        while not stop.is_set():
            with self._lock:
                if self._requested is None:
                    self._lock.wait(0.5)
                    continue
                reason, self._requested = self._requested, None
                recent, self._recent = self._recent, None
                p = Pass(self._next_id, reason, time.monotonic())
                self._next_id += 1
                self._passes[p.id] = p
            LOG.info("reconcile_started", reason=reason, pass_id=p.id)
            self.started(reason)
            self._walk(p, recent, stop)
            with self._lock:
                p.done = True
                self._release()
            self.wake()

    def _walk(self, p: Pass, recent: tuple[float, Callable[[list[str]], None]] | None,
              stop: threading.Event) -> None:
        buf: list[str] = []  # the chunk's files
        send: list[str] = []  # what rsync is handed for them
        size = 0
        found: list[str] = []

        def unreadable(rel: str, e: OSError) -> None:
            p.unreadable += 1
            LOG.warning("directory_unreadable", "cannot list a source directory; its files "
                        "are not reconciled until it is readable", path=rel, error=str(e))

        def flush() -> None:
            nonlocal size
            chunk_size, size = size, 0
            data, listing = nul_list(buf), nul_list(send)
            with self._lock:
                p.chunks.append(data)
                p.sends.append(listing)
                p.counts.append(len(buf))
                p.sizes.append(chunk_size)
            buf.clear()
            send.clear()
            self.wake()

        try:
            for d in walk_dirs(self.root, self.included, unreadable):
                if stop.is_set():
                    p.error = "stopped"
                    break
                if buf and len(buf) + len(d.files) > self.chunk_files:
                    flush()  # start the directory in a chunk of its own
                first, whole = len(send), d.whole and bool(d.rel) and len(d.files) > 1
                for rel, entry in d.files:
                    st = lstat(entry)
                    if st is None:
                        whole = False
                        continue  # vanished, or no longer a regular file
                    buf.append(rel)
                    send.append(rel)
                    size += st.st_size
                    if recent is not None and st.st_mtime >= recent[0]:
                        found.append(rel)
                    if len(buf) >= self.chunk_files or size >= self.chunk_bytes:
                        flush()
                        first, whole = 0, False  # split across chunks: listed file by file
                if whole and len(send) > first:
                    # every file rsync would find there is one of ours: one entry instead
                    # of one per file (rsync reads a --files-from list a byte per system
                    # call: at 48,400 files that cost a second of the first sync)
                    del send[first:]
                    send.append(d.rel + "/.")
        except OSError as e:
            p.error = f"cannot list the source root: {e}"
        if buf or not p.chunks:
            flush()  # an empty tree still gets one (empty) chunk: the pass reaches the
            # destination, so "reconciled" never means "never connected"
        if recent is not None and found:
            recent[1](found)
        LOG.info("source_walked", reason=p.reason, files=p.total, chunks=len(p.chunks),
                 unreadable_dirs=p.unreadable, recent=len(found) if recent else None,
                 duration_s=time.monotonic() - p.started, error=p.error)

    # -- consumers ---------------------------------------------------------------------

    def next_chunk(self, consumer: str, max_files: int = 0, max_bytes: int = 0,
                   ) -> Take | None:
        """What this destination should send next: its next chunk, joined with the chunks
        after it that are ready while the totals stay within ``max_files`` and
        ``max_bytes``; None when nothing is ready."""
        with self._lock:
            cur = self._cursors[consumer]
            if cur.finished:
                newest = max(self._passes) if self._passes else None
                if newest is None or newest == cur.pass_id:
                    return None
                cur.pass_id, cur.index, cur.finished = newest, 0, False
            p = self._passes[cur.pass_id]
            if cur.index >= len(p.chunks):
                return None
            parts: list[bytes] = []
            sends: list[bytes] = []
            files, size, i = 0, 0, cur.index
            while i < len(p.chunks) and (not parts or (files + p.counts[i] <= max_files
                                                       and size + p.sizes[i] <= max_bytes)):
                data = p.chunks[i]
                assert data is not None, "released while a destination still needed it"
                parts.append(data)
                sends.append(p.sends[i] or b"")
                files += p.counts[i]
                size += p.sizes[i]
                i += 1
            return Take(p, len(parts), b"".join(parts), b"".join(sends), files, size)

    def chunk_ready(self, consumer: str) -> bool:
        """Whether :meth:`next_chunk` would return something (cheap: no copy)."""
        with self._lock:
            cur = self._cursors[consumer]
            if cur.finished:
                return bool(self._passes) and max(self._passes) != cur.pass_id
            p = self._passes.get(cur.pass_id)
            return p is not None and cur.index < len(p.chunks)

    def advance(self, consumer: str, chunks: int = 1) -> None:
        """The chunks from :meth:`next_chunk` are done (sent, or their failures recorded)."""
        with self._lock:
            self._cursors[consumer].index += chunks
            self._release()

    def finished(self, consumer: str) -> Pass | None:
        """The pass this destination has just completed (every chunk sent, walk done), once."""
        with self._lock:
            cur = self._cursors[consumer]
            if cur.finished or cur.pass_id not in self._passes:
                return None
            p = self._passes[cur.pass_id]
            if not p.done or cur.index < len(p.chunks):
                return None
            cur.finished = True
            self._release()
            return p

    def complete(self, consumer: str) -> bool:
        """Whether this destination has sent every chunk of a pass whose walk is done."""
        with self._lock:
            cur = self._cursors[consumer]
            p = self._passes.get(cur.pass_id)
            return (not cur.finished and p is not None and p.done
                    and cur.index >= len(p.chunks))

    def progress(self, consumer: str) -> tuple[int, int | None]:
        """(files checked by this destination in its pass, total if the walk is done)."""
        with self._lock:
            cur = self._cursors[consumer]
            p = self._passes.get(cur.pass_id)
            if p is None:
                return 0, None
            checked = sum(p.counts[:cur.index])
            return checked, (p.total if p.done else None)

    def _release(self) -> None:
        """Free chunks no destination will read again, and passes nobody is in. A
        destination still in an older pass will start the newest one from its first chunk
        (or one that has finished nothing yet), so the newest pass is kept whole for it."""
        newest = max(self._passes, default=None)
        for pid, p in list(self._passes.items()):
            inside = [c.index for c in self._cursors.values()
                      if c.pass_id == pid and not c.finished]
            if pid != newest:
                if not inside:
                    del self._passes[pid]
                    continue
                low = min(inside)
            else:
                if any(c.pass_id < pid for c in self._cursors.values()):
                    continue
                low = min(inside, default=len(p.chunks))
            for i in range(low):
                p.chunks[i] = p.sends[i] = None

    def newest(self) -> Pass | None:
        with self._lock:
            return self._passes[max(self._passes)] if self._passes else None
