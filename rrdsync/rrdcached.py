"""Flushing rrdcached before sending, for writers that go through it.

rrdcached holds updates in memory for up to its ``-w`` interval (300 s by default):
the file on disk lags. ``FLUSH <file>`` moves the file to the head of the queue and
answers only once it is written, so the copy we send holds the latest values.
(OpenNMS's jrrd2 writes files directly and bypasses rrdcached; this is for others.)

A daemon that accepts and never answers must not make the worker look dead: the wait
is cut in half-second slices that mark the caller's beat, and bounded by ``timeout``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from pathlib import Path

from .config_parse import split_host_port
from .threads import Beat, Stop

SLICE = 0.5


def _connect(address: str, timeout: float) -> socket.socket:
    if address.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(address[5:])
        return s
    return socket.create_connection(split_host_port(address), timeout=timeout)


class _Lines:
    """Reads answer lines, marking ``beat`` while it waits; TimeoutError past the deadline."""

    def __init__(self, sock: socket.socket, deadline: float, beat: Beat | None,
                 stop: Stop | None) -> None:
        self.sock = sock
        self.deadline = deadline
        self.beat = beat
        self.stop = stop
        self.buf = b""

    def readline(self) -> bytes:
        while b"\n" not in self.buf:
            if time.monotonic() >= self.deadline or (self.stop is not None and self.stop.over()):
                raise TimeoutError("rrdcached did not answer in time")
            if self.beat is not None:
                self.beat.mark(keep=True)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"


def flush(address: str, root: Path, rel_paths: Iterable[str], timeout: float = 10.0,
          beat: Beat | None = None, stop: Stop | None = None) -> None:
    """FLUSH each ``.rrd`` path (as the daemon sees it: ``root``/rel); files the daemon
    does not know answer an error and are fine to skip."""
    # The line protocol cannot carry a newline in a name; such a file is still sent.
    names = [str(root / p).encode("utf-8", "surrogateescape") for p in rel_paths
             if p.endswith(".rrd") and "\n" not in p]
    if not names:
        return
    deadline = time.monotonic() + timeout
    with _connect(address, min(timeout, SLICE * 4)) as s:
        s.settimeout(SLICE)
        s.sendall(b"".join(b"FLUSH " + path + b"\n" for path in names))
        lines = _Lines(s, deadline, beat, stop)
        for _ in names:
            status = lines.readline()
            if not status:
                break
            code, _, _msg = status.decode(errors="replace").partition(" ")
            n = int(code) if code.lstrip("-").isdigit() else -1
            for _ in range(max(n, 0)):  # a positive status is followed by that many lines
                lines.readline()
