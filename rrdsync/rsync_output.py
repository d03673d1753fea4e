"""What rsync prints, read back: the items it transferred and the paths it failed on.

Two kinds of lines matter. Our ``--out-format`` lines (``rrdsync:%i:%b:%n``) name
each file the sender sent or each deletion. Error lines (``rsync: [receiver] mkstemp
"/srv/rrd/snmp/1/.ds0.rrd.Xy12Zw" failed: Permission denied (13)``) name the path a
side could not read or write. A run that ends 23 ("some files were not transferred")
must not fail the whole batch: the paths its errors name failed, every other path
arrived. Sender paths are absolute source paths (we pass the absolute source root);
receiver paths are absolute at the destination, whose root we may not know (rrsync maps
it), so they are matched by their trailing components, temp-file names
(``.<name>.XXXXXX``) mapped back to the file they stand for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

OUT_PREFIX = b"rrdsync:"
OUT_FORMAT = "--out-format=rrdsync:%i:%b:%n"
_ESC = re.compile(rb"\\#([0-7]{3})")
_ERROR = re.compile(r'^rsync: \[(?P<side>sender|receiver|generator)\] (?P<what>.*?)"(?P<path>.*)"'
                    r"(?P<rest>.*)$")
_TEMP = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9]{6}$")
_VERSION = re.compile(r"version\s+v?(\d+\.\d+(?:\.\d+)?\w*)")
_PROTOCOL = re.compile(r"Protocol versions: remote=(\d+)")


def unescape(name: bytes) -> bytes:
    """Undo rsync's ``\\#ooo`` escaping of unprintable bytes in its output."""
    return _ESC.sub(lambda m: bytes([int(m.group(1), 8)]), name)


def rsync_version(text: str) -> str | None:
    """``3.2.7`` from ``rsync --version`` output."""
    m = _VERSION.search(text)
    return m.group(1) if m else None


def version_tuple(version: str) -> tuple[int, ...]:
    """``3.2.7`` -> (3, 2, 7), for comparisons (``3.4.1pre1`` -> (3, 4, 1))."""
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def remote_protocol(text: str) -> int | None:
    """The other end's protocol number from ``--debug=proto`` output
    (``(Client) Protocol versions: remote=32, negotiated=32``): all an rrsync receiver,
    which refuses ``rsync --version``, lets us learn about its rsync."""
    m = _PROTOCOL.search(text)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Item:
    """One ``--out-format`` line: ``kind`` is ``sent`` (a file's content), ``deleted``,
    or ``other`` (directories, links, attribute-only changes)."""

    kind: str
    path: str
    nbytes: int
    raw_name: bytes  # as rsync printed it (escaped), for reports that print it back


def parse_item(line: bytes) -> Item | None:
    if not line.startswith(OUT_PREFIX):
        return None
    try:
        code, nbytes, name = line[len(OUT_PREFIX):].split(b":", 2)
    except ValueError:
        return None
    path = os.fsdecode(unescape(name)).rstrip("/")
    if code.startswith(b"*"):  # "*deleting"
        kind = "deleted"
    elif code[:1] in (b"<", b">") and code[1:2] == b"f":
        kind = "sent"
    else:
        kind = "other"
    try:
        n = int(nbytes or 0)
    except ValueError:
        n = 0
    return Item(kind, path, n, name)


@dataclass(frozen=True)
class PathError:
    """An error rsync reported about one path. ``side`` is ``source`` (the sender could not
    read it) or ``destination`` (the receiver or generator could not write it)."""

    side: str
    path: str  # as printed, unescaped
    line: str


def parse_errors(stderr: str) -> tuple[list[PathError], list[str]]:
    """(errors naming a path, other error lines). Summary lines (``rsync error: ...``) and
    warnings are neither; a vanished file is not an error (there is nothing to send)."""
    errors: list[PathError] = []
    other: list[str] = []
    for line in stderr.splitlines():
        line = line.rstrip()
        m = _ERROR.match(line)
        if m:
            side = "source" if m.group("side") == "sender" else "destination"
            path = os.fsdecode(unescape(os.fsencode(m.group("path"))))
            errors.append(PathError(side, path, line))
        elif line.startswith("rsync: ") or line.startswith("ERROR"):
            other.append(line)
    return errors, other


class Attribution:
    """Maps error paths back to the relative paths of one run."""

    def __init__(self, paths: Iterable[str], source_root: str) -> None:
        self.paths = set(paths)
        self.dirs: dict[str, list[str]] = {}
        for p in self.paths:
            parts = p.split("/")
            for i in range(1, len(parts)):
                self.dirs.setdefault("/".join(parts[:i]), []).append(p)
        self.source_prefix = source_root.rstrip("/") + "/"

    def _match(self, rel_candidates: list[str]) -> list[str]:
        for rel in rel_candidates:  # longest first
            if rel in self.paths:
                return [rel]
            if rel in self.dirs:
                return self.dirs[rel]
        return []

    def paths_for(self, err: PathError) -> list[str]:
        """The run's paths this error is about ([] when it names none of them)."""
        path = err.path
        if err.side == "source":
            if path.startswith(self.source_prefix):
                return self._match([path[len(self.source_prefix):].rstrip("/")])
            if not path.startswith("/"):  # a relative name (rsync prints some that way)
                return self._match([path.rstrip("/")])
            return []
        parts = [p for p in path.rstrip("/").split("/") if p not in ("", ".")]
        if parts:
            m = _TEMP.match(parts[-1])
            if m:
                parts[-1] = m.group("name")
        tails = ["/".join(parts[i:]) for i in range(len(parts))]  # longest first
        return self._match(tails)
