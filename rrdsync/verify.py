"""``rrdsync verify`` and ``rrdsync verify --repair``: is the destination a true copy?

The comparison is by content: a dry run of ``rsync --recursive --checksum`` with the
engine's own filters (includes, excludes, never entering ``lost+found``), so it sees
the drift rsync's quick check cannot (same size and mtime, different bytes). Output, on
stdout, one relative path per line as rsync prints it (unprintable bytes escaped
``\\#ooo``): files missing or different at the destination, and — only with
``RRDSYNC_DELETE=true`` — files found only there. With several destinations each list
follows a ``# <label>`` line. ``--repair`` then re-sends exactly those files with
``--ignore-times`` (deletes the extra ones only where deleting is allowed and safe),
compares again, and prints ``# repaired N files`` followed by the paths it repaired and,
if any are left, ``# still different after repair: N files`` followed by those.

Everything else goes to stderr as ``rrdsync verify: <label>: ...``: a destination that
could not be compared (``unreachable: ...``, ``failed: ...``) is never mistaken for
drift (``drift: ...``). Exit 0 when every destination is identical (after repair, with
``--repair``), else 1.

``--delete`` is passed only with ``RRDSYNC_DELETE=true``: a write-only receiver
(``rrsync -no-del``) refuses it, and then content is verified without it and a warning
says the extra files were not checked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from . import guard
from .check import Session
from .config import Destination, SidecarConfig
from .journal import SourceMemory
from .rsync_output import Item
from .ssh import SshError, classify_ssh_error
from .transfer import PARTIAL

NOT_CHECKED = "extra files at the destination not checked: the receiver refuses deletes"


@dataclass
class Comparison:
    drift: list[Item] = field(default_factory=list)  # kind "sent" (missing/different) or "deleted"
    error: str | None = None  # the comparison failed, or could not cover every path
    extra_checked: bool = False  # files only at the destination were looked for


def verify(cfg: SidecarConfig, out: BinaryIO | None = None, err: TextIO = sys.stderr, *,
           repair: bool = False) -> int:
    out = out if out is not None else sys.stdout.buffer
    failed = False
    for dest in cfg.dests:
        if len(cfg.dests) > 1:
            out.write(b"# " + os.fsencode(dest.label) + b"\n")
        with Session(cfg, dest, _teller(err, dest)) as s:
            ok = _verify_one(s, out, repair)
        out.flush()
        failed = failed or not ok
    return 1 if failed else 0


def _teller(err: TextIO, dest: Destination) -> Callable[[str], None]:
    def say(text: str) -> None:
        err.write(f"rrdsync verify: {dest.label}: {text}\n")
        err.flush()

    return say


def _verify_one(s: Session, out: BinaryIO, repair: bool) -> bool:
    """True when this destination is identical (after repair, with ``repair``)."""
    try:
        s.connect()
    except SshError as e:
        s.say(f"unreachable: {classify_ssh_error(str(e))}")
        return False
    found = compare(s, extra=s.cfg.delete)
    _write(out, found.drift)
    if found.drift:
        s.say(f"drift: {_describe(found.drift)}")
    if found.error:
        s.say(f"failed: {found.error}")
    if not found.drift:
        return found.error is None
    return repair and _repair(s, found, out)


def compare(s: Session, *, extra: bool) -> Comparison:
    """What differs at ``s``'s destination; files only there count when ``extra``."""
    rsync = s.rsync
    assert rsync is not None
    base = [*rsync.base_argv(), "--dry-run", "--recursive", "--checksum",
            *rsync.filter_args()]
    ends = [rsync.source_arg(), rsync.target()]
    res = s.run(lambda: rsync.run([*base, *(["--delete"] if extra else []), *ends],
                                  s.stop, s.beat))
    if extra and res.refused:
        s.say(f"warning: {NOT_CHECKED}")
        extra = False
        res = s.run(lambda: rsync.run([*base, *ends], s.stop, s.beat))
    if not res.completed:
        busy = "the receiver stayed busy with another rsync" if res.busy else ""
        return Comparison(error=busy or res.error or "rsync failed", extra_checked=extra)
    drift = [i for i in res.items if i.kind == "sent" or (
        extra and i.kind == "deleted" and not i.raw_name.endswith(b"/"))]
    error = None
    if res.exit_code == PARTIAL:  # some paths could not be read on one side
        errors, other = res.path_errors()
        shown = [e.line for e in errors] + other
        error = (f"{len(errors) or 'some'} path(s) could not be compared: "
                 + " | ".join(shown[:3]))
    return Comparison(drift, error, extra)


def _repair(s: Session, found: Comparison, out: BinaryIO) -> bool:
    """Re-send the drifted files in full, delete the extra ones where allowed, compare
    again; True when nothing is left."""
    rsync = s.rsync
    assert rsync is not None
    send = [i.path for i in found.drift if i.kind == "sent"]
    extra = [i.path for i in found.drift if i.kind == "deleted"]
    if send:
        res = s.run(lambda: rsync.send_list(send, s.stop, s.beat, ignore_times=True))
        if not res.completed or res.exit_code == PARTIAL:
            s.say(f"repair: {res.error}")
    if extra:  # only listed with RRDSYNC_DELETE=true and a receiver that allows deletes
        refusal = _delete_refusal(s.cfg)
        gone = [p for p in extra if not os.path.lexists(os.path.join(s.cfg.source_dir, p))]
        if refusal:
            s.say(f"extra files not deleted: {refusal}")
        elif gone:
            res = s.run(lambda: rsync.delete_paths(gone, s.stop, s.beat))
            if not res.completed:
                s.say(f"repair: deleting extra files: {res.error}")
    after = compare(s, extra=found.extra_checked)
    still = {i.raw_name for i in after.drift}
    repaired = [i for i in found.drift if i.raw_name not in still]
    out.write(f"# repaired {_files(len(repaired))}\n".encode())
    _write(out, repaired)
    if after.drift:
        out.write(f"# still different after repair: {_files(len(after.drift))}\n".encode())
        _write(out, after.drift)
        s.say(f"drift remains after repair: {_describe(after.drift)}")
    else:
        s.say(f"repaired {_files(len(repaired))}")
    if after.error:
        s.say(f"failed: {after.error}")
    return not after.drift and after.error is None


def _delete_refusal(cfg: SidecarConfig) -> str | None:
    """The delete guard's answer (the worker's own): never from a missing, empty or
    remounted source."""
    try:
        return guard.delete_refusal(cfg.source_dir, SourceMemory(cfg.state_dir),
                                    cfg.included)
    except OSError as e:
        return f"cannot check the source filesystem against {cfg.state_dir}: {e.strerror or e}"


def _write(out: BinaryIO, items: list[Item]) -> None:
    for i in items:
        out.write(i.raw_name + b"\n")  # rsync already escaped what is unprintable


def _files(n: int) -> str:
    return f"{n} file" + ("" if n == 1 else "s")


def _describe(drift: list[Item]) -> str:
    diff = sum(1 for i in drift if i.kind == "sent")
    extra = len(drift) - diff
    parts = [f"{_files(diff)} missing or different at the destination"] if diff else []
    if extra:
        parts.append(f"{_files(extra)} only at the destination")
    return ", ".join(parts)
