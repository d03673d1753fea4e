"""What an event batch will carry, decided from the source just before it is sent.

A path in a batch is a name an event gave us some time ago; what is there now decides
what to do with it. A regular file is sent, with its signature taken now so that a copy
that raced a write can be detected afterwards (we never lock a source file: rrdtool fails
its own update when it cannot take its lock). A name that is gone is a deletion (mirrored
only where that is allowed). A symlink, a special file, or a file now reached through a
directory that became a symlink is never sent and never followed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sig:
    """What we compare before and after a send to detect a copy that raced a write."""

    mtime_ns: int
    size: int
    ino: int


def signature(path: str) -> Sig | None:
    """The file's signature, or None if it is not a regular file (never followed)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Sig(st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass
class Prepared:
    before: dict[str, Sig] = field(default_factory=dict)  # regular files: send these
    missing: list[str] = field(default_factory=list)  # gone from the source
    nothing: list[str] = field(default_factory=list)  # never sent: links, specials


def parents_safe(root: str, rel: str, cache: dict[str, bool]) -> bool:
    """No directory between ``root`` and ``rel`` is a symlink (``cache`` holds the
    directories already looked at, shared by the paths of one batch)."""
    parent = os.path.dirname(rel)
    while parent:
        known = cache.get(parent)
        if known is None:
            known = not os.path.islink(os.path.join(root, parent))
            cache[parent] = known
        if not known:
            return False
        parent = os.path.dirname(parent)
    return True


def prepare(root: str, paths: Iterable[str]) -> Prepared:
    out = Prepared()
    safe: dict[str, bool] = {}
    for rel in paths:
        full = os.path.join(root, rel)
        if not parents_safe(root, rel, safe):
            out.nothing.append(rel)
            continue
        sig = signature(full)
        if sig is not None:
            out.before[rel] = sig
        elif not os.path.lexists(full):
            out.missing.append(rel)
        else:
            out.nothing.append(rel)
    return out
