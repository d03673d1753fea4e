"""``rrdsync check``: what a first deployment needs proven, for a human at a terminal.

For every destination in ``RRDSYNC_DEST`` (a ``# <label>`` header before each when there
are several): it answers (the SSH master comes up), its host key is the one we trust, we
can write there (a probe file ``.rrdsync-probe`` at its root, sent the way the worker
sends: ``--files-from``, NUL-separated), the probe is removed again where the
destination allows deletes (a write-only ``rrsync -no-del`` receiver keeps it: a
warning, not a failure), and which rsync it runs. Exit 0 when every destination passed,
1 when any is unreachable or not writable.

``Session`` is one destination opened for a one-shot command (``check``, ``verify``):
its SSH master, an ``Rsync`` for it, and the one retry policy those commands share. An
rrsync receiver lets one rsync at a time into a directory ("Another instance of rrsync
is already accessing this directory"): a worker sending to the same destination makes
a one-shot run meet that, so it is tried again a few times after a short wait, and the
user is told.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .config import Destination, SidecarConfig
from .rsync_output import remote_protocol, rsync_version, version_tuple
from .ssh import SshError, SshMaster, classify_ssh_error
from .threads import Beat, Stop
from .transfer import Result, Rsync, write_list

PROBE = ".rrdsync-probe"
NS_MTIME_MIN = (3, 1, 3)
BUSY_WAITS = (0.5, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0)  # seconds; 12.5 s in all, then give up


class Session:
    """One destination opened for a one-shot command. ``connect`` raises ``SshError``."""

    def __init__(self, cfg: SidecarConfig, dest: Destination, say: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.dest = dest
        self.say = say  # how this command tells the user about a retry
        self.stop = Stop()  # never requested: Ctrl-C ends a one-shot command
        self.beat = Beat(dest.label)
        self.ssh: SshMaster | None = None
        self.rsync: Rsync | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="rrdsync-cmd-"))

    def connect(self) -> None:
        if self.dest.is_remote:
            self.ssh = SshMaster(self.cfg, self.dest)
            self.ssh.ensure(self.stop, self.beat)
        self.rsync = Rsync(self.cfg, self.dest, self.ssh, self._workdir / "rsync")

    def run(self, attempt: Callable[[], Result]) -> Result:
        """``attempt()``, again while the receiver is busy with another rsync."""
        res = attempt()
        for n, wait in enumerate(BUSY_WAITS, 1):
            if not res.busy:
                break
            self.say(f"the receiver is busy with another rsync (a worker sending to it?); "
                     f"retry {n} of {len(BUSY_WAITS)} in {wait:g}s")
            time.sleep(wait)
            res = attempt()
        return res

    def scratch(self, name: str) -> Path:
        """A private directory for this command's own files (a probe, an empty source)."""
        d = self._workdir / name
        d.mkdir(exist_ok=True)
        return d

    def close(self) -> None:
        if self.ssh is not None:
            self.ssh.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Report:
    """``[ok  ]``/``[FAIL]``/``[warn]`` lines; any FAIL makes the command exit 1."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = False

    def line(self, ok: bool | None, what: str, detail: str = "") -> None:
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[ok]
        self.out.write(f"[{mark}] {what}" + (f": {detail}" if detail else "") + "\n")
        self.out.flush()
        if ok is False:
            self.failed = True


def check(cfg: SidecarConfig, out: TextIO = sys.stdout) -> int:
    rep = Report(out)
    where = ", ".join(d.label for d in cfg.dests)
    rep.line(True, "configuration", f"source {cfg.source_dir}, "
             f"destination{'s' if len(cfg.dests) > 1 else ''} {where}")
    for dest in cfg.dests:
        if len(cfg.dests) > 1:
            out.write(f"# {dest.label}\n")
        with Session(cfg, dest, lambda text: rep.line(None, "receiver busy", text)) as s:
            _check_one(s, rep)
    return 1 if rep.failed else 0


def _check_one(s: Session, rep: Report) -> None:
    cfg, dest = s.cfg, s.dest
    started = time.monotonic()
    try:
        s.connect()
    except SshError as e:
        rep.line(False, "destination reachable", classify_ssh_error(str(e)))
        return
    assert s.rsync is not None
    if s.ssh is not None:
        rep.line(True, "destination reachable", f"{dest.ssh_host()} port {s.ssh.port} "
                 f"({time.monotonic() - started:.2f}s)")
        rep.line(True, "host key verified",
                 "matches RRDSYNC_KNOWN_HOSTS" if cfg.ssh_host_key_policy == "strict" else
                 f"accepted (RRDSYNC_SSH_HOST_KEY_POLICY=accept-new; learned keys in "
                 f"{cfg.state_dir / 'known_hosts'})")
        version = _run_version([*s.ssh.ssh_argv(), dest.ssh_host(), "rsync", "--version"],
                               cfg.timeout + 5)
    else:
        if not Path(dest.path).is_dir():
            rep.line(False, "destination reachable", f"{dest.path} is not a directory")
            return
        rep.line(True, "destination reachable", f"local directory {dest.path}")
        version = _run_version(["rsync", "--version"], 30)
    _version_line(rep, version, _probe(s, rep))


def _run_version(argv: list[str], timeout: float) -> str | None:
    """``rsync --version`` there; None where refused (an rrsync key runs nothing else)."""
    try:
        r = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL,
                           timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return rsync_version(r.stdout.decode(errors="replace")) if r.returncode == 0 else None


def _probe(s: Session, rep: Report) -> int | None:
    """Write the probe, remove it where allowed; the protocol the receiver spoke."""
    assert s.rsync is not None
    rsync = s.rsync
    src = s.scratch("probe")
    (src / PROBE).write_text(f"rrdsync write probe {time.time():.0f}\n")
    listing = s.scratch("lists") / "probe"
    write_list(listing, [PROBE])
    files = ["--from0", f"--files-from={listing}"]
    # --debug=proto names the receiver's protocol; --msgs2stderr puts that line (and the
    # itemized ones, not needed here) on stderr, where Result keeps it
    res = s.run(lambda: rsync.run([*rsync.base_argv(), "--debug=proto", "--msgs2stderr",
                                   *files, f"{src}/", rsync.target()], s.stop, s.beat))
    protocol = remote_protocol(res.stderr)
    if res.exit_code != 0:
        why = "the receiver stayed busy with another rsync" if res.busy else res.error
        rep.line(False, "write probe", str(why))
        return protocol
    rep.line(True, "write probe", f"{PROBE} written at the destination root")
    empty = s.scratch("empty")
    rm = s.run(lambda: rsync.run([*rsync.base_argv(), *files, "--delete-missing-args",
                                  f"{empty}/", rsync.target()], s.stop, s.beat))
    if rm.refused:
        rep.line(None, "probe left in place", "write-only receiver refuses deletes "
                 "(rrsync -no-del: expected; RRDSYNC_DELETE=true would not mirror deletions)")
    elif rm.exit_code == 0 and PROBE in rm.deleted:
        rep.line(True, "probe removed")
    else:
        rep.line(None, "probe left in place", str(rm.error or "rsync did not delete it"))
    return protocol


def _version_line(rep: Report, version: str | None, protocol: int | None) -> None:
    what = "destination rsync version"
    if version is not None:
        if version_tuple(version) >= NS_MTIME_MIN:
            rep.line(True, what, version)
        else:
            rep.line(None, what, f"{version}: older than 3.1.3, nanosecond mtime "
                     "comparison is unavailable")
    elif protocol is not None and protocol >= 32:
        rep.line(True, what, f"3.2.0 or newer (protocol {protocol}; the receiver refuses "
                 "`rsync --version`)")
    elif protocol == 31:
        rep.line(None, what, "3.1.x (protocol 31): nanosecond mtime comparison needs 3.1.3+")
    elif protocol is not None:
        rep.line(None, what, f"protocol {protocol}: older than 3.1, nanosecond mtime "
                 "comparison is unavailable")
    else:
        rep.line(None, what, "unknown")
