"""Flushing rrdcached before sending, for writers that go through it.

rrdcached holds updates in memory for up to its ``-w`` interval (300 s by default):
the file on disk lags. ``FLUSH <file>`` moves the file to the head of the queue and
answers only once it is written, so the copy we send holds the latest values.
(OpenNMS's jrrd2 writes files directly and bypasses rrdcached; this is for others.)
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

from . import log

LOG = log.get("rrdcached")


def _connect(address: str, timeout: float) -> socket.socket:
    if address.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(address[5:])
        return s
    host, _, port = address.rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def flush(address: str, root: Path, rel_paths: Iterable[str], timeout: float = 30.0) -> int:
    """FLUSH each ``.rrd`` path (as the daemon sees it: ``root``/rel). Returns how many
    the daemon flushed; files it does not know answer an error and are fine to skip."""
    # The line protocol cannot carry a newline in a name; such a file is still sent.
    names = [str(root / p).encode("utf-8", "surrogateescape") for p in rel_paths
             if p.endswith(".rrd") and "\n" not in p]
    if not names:
        return 0
    flushed = 0
    with _connect(address, timeout) as s, s.makefile("rwb") as f:
        f.write(b"".join(b"FLUSH " + path + b"\n" for path in names))
        f.flush()
        for _ in names:
            status = f.readline()
            if not status:
                break
            code, _, _msg = status.decode(errors="replace").partition(" ")
            n = int(code) if code.lstrip("-").isdigit() else -1
            for _ in range(max(n, 0)):  # a positive status is followed by that many lines
                f.readline()
            if n >= 0:
                flushed += 1
    return flushed
