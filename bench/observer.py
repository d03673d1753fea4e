"""Watches a destination tree and logs when each file's new bytes appear there.

Runs as its own process (``python -m bench.observer DEST LOG``), at raised priority so
its timestamps stay close to the kernel's events even when the tools load both cores.
It puts an inotify watch on every directory of the destination (adding watches as
directories appear and scanning each new directory once, so nothing created before the
watch is missed) and reacts to IN_MOVED_TO (rsync renames its temp file into place) and
IN_CLOSE_WRITE (a tool writing in place). Temp names (leading dot) are ignored.

Log lines, tab-separated: ``<monotonic time> <relative path> <digest>``. In the first mode
(arrivals, used during the initial sync) the digest is ``-``: the observer only notes that
the path appeared, which keeps it cheap while tens of thousands of files land. After
SIGUSR1 it reads every arriving file and logs an 8-byte BLAKE2b digest of its content, which
the analysis matches against the digests the workload generator logged after each update:
an update counts as delivered when the destination first holds that version or a later
one. Two timestamps bracket a line: the kernel's event is no later than the time logged.
Overflows of the kernel queue are logged as ``<t> !overflow -``, followed by a rescan; a
directory that cannot be watched (the per-UID watch limit) as ``<t> !watch_failed <error>``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import select
import signal
import struct
import sys
import time

IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
IN_ONLYDIR = 0x1000000
MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
HEADER = struct.Struct("iIII")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def digest(path: bytes) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "?"
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class Observer:
    def __init__(self, root: bytes, log_path: str) -> None:
        self.root = root.rstrip(b"/")
        self.fd = _libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wd: dict[int, bytes] = {}
        self.hashing = False
        self.want_hashing = False
        self.stopping = False
        self.log = open(log_path, "a", buffering=1 << 16)  # noqa: SIM115 - lives with the process

    def rel(self, path: bytes) -> str:
        return os.fsdecode(os.path.relpath(path, self.root))

    def note(self, t: float, path: bytes) -> None:
        name = os.path.basename(path)
        if name.startswith(b"."):
            return
        d = digest(path) if self.hashing else "-"
        self.log.write(f"{t:.6f}\t{self.rel(path)}\t{d}\n")

    def watch(self, directory: bytes) -> None:
        """Watch a directory, then report what it already holds (files created before)."""
        wd = _libc.inotify_add_watch(self.fd, directory, MASK | IN_ONLYDIR)
        if wd < 0:
            # e.g. ENOSPC: the per-UID watch limit, shared with every tool running as root
            err = os.strerror(ctypes.get_errno())
            self.log.write(f"{time.monotonic():.6f}\t!watch_failed\t{err}\n")
            return
        self.wd[wd] = directory
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        t = time.monotonic()
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                self.watch(e.path)
            elif e.is_file(follow_symlinks=False):
                self.note(t, e.path)

    def run(self) -> None:
        self.watch(self.root)
        self.log.write(f"{time.monotonic():.6f}\t!ready\t-\n")
        self.log.flush()
        while not self.stopping:
            if self.want_hashing and not self.hashing:
                self.hashing = True
                self.log.write(f"{time.monotonic():.6f}\t!hashing\t-\n")
                self.log.flush()
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            buf = os.read(self.fd, 1 << 20)
            t = time.monotonic()
            off = 0
            while off < len(buf):
                wd, mask, _cookie, length = HEADER.unpack_from(buf, off)
                name = buf[off + 16: off + 16 + length].rstrip(b"\0")
                off += 16 + length
                if mask & IN_Q_OVERFLOW:
                    self.log.write(f"{t:.6f}\t!overflow\t-\n")
                    self.watch(self.root)
                    continue
                if mask & IN_IGNORED:
                    self.wd.pop(wd, None)
                    continue
                base = self.wd.get(wd)
                if base is None or not name:
                    continue
                path = base + b"/" + name
                if mask & IN_ISDIR:
                    if mask & (IN_CREATE | IN_MOVED_TO):
                        self.watch(path)
                elif mask & (IN_MOVED_TO | IN_CLOSE_WRITE):
                    self.note(t, path)
            self.log.flush()
        self.log.flush()


def main() -> None:
    dest, log_path = sys.argv[1], sys.argv[2]
    obs = Observer(os.fsencode(dest), log_path)

    def to_hashing(_sig: int, _frame: object) -> None:
        obs.want_hashing = True

    def stop(_sig: int, _frame: object) -> None:
        obs.stopping = True

    signal.signal(signal.SIGUSR1, to_hashing)
    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(OSError):
        os.nice(-10)
    obs.run()


if __name__ == "__main__":
    main()
