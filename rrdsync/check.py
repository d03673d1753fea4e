"""``rrdsync check`` and ``rrdsync verify``: answers for a human at a terminal.

``check`` proves, step by step, what a first deployment needs: the configuration is
valid, the destination answers, its host key is the one in known_hosts, and we can
write there (a probe file, removed again where the destination allows deletes).
``verify`` compares source and destination by content (rsync --checksum, dry run)
and lists what differs, one path per line, escaped the way rsync escapes names.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from .config import SidecarConfig
from .rsync_output import OUT_PREFIX
from .ssh import SshError, SshMaster, classify_ssh_error
from .transfer import Rsync

SENT_PREFIX = OUT_PREFIX.decode()

PROBE = ".rrdsync-probe"
NS_MTIME_MIN = (3, 1, 3)


class Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = False

    def line(self, ok: bool | None, what: str, detail: str = "") -> None:
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[ok]
        self.out.write(f"[{mark}] {what}" + (f": {detail}" if detail else "") + "\n")
        self.out.flush()
        if ok is False:
            self.failed = True


def _remote_rsync_version(ssh: SshMaster, host: str) -> str | None:
    """Ask the destination's rsync for its version; an rrsync-restricted key refuses
    arbitrary commands, so fall back to the protocol version seen in a handshake."""
    r = subprocess.run([*ssh.ssh_argv(), host, "rsync", "--version"], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=30)
    m = re.search(rb"rsync\s+version\s+v?([0-9][0-9.]*\w*)", r.stdout)
    return m.group(1).decode() if m else None


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def check(cfg: SidecarConfig, out: TextIO = sys.stdout) -> int:
    rep = Report(out)
    assert cfg.dest is not None
    rep.line(True, "configuration", f"source {cfg.source_dir}, destination {cfg.dest}")
    ssh = None
    rsync = None
    try:
        if cfg.dest.is_remote:
            try:
                ssh = SshMaster(cfg, cfg.dests[0])
                started = time.monotonic()
                ssh.ensure()
            except SshError as e:
                rep.line(False, "destination reachable", classify_ssh_error(str(e)))
                return 1
            rep.line(True, "destination reachable",
                     f"{cfg.dest.ssh_host()} port {cfg.ssh_port} "
                     f"({time.monotonic() - started:.2f}s)")
            policy = ("matches RRDSYNC_KNOWN_HOSTS" if cfg.ssh_host_key_policy == "strict"
                      else "accepted (RRDSYNC_SSH_HOST_KEY_POLICY=accept-new)")
            rep.line(True, "host key verified", policy)
            version = _remote_rsync_version(ssh, cfg.dest.ssh_host())
        else:
            version = _local_rsync_version()
        rsync = Rsync(cfg, cfg.dests[0], ssh, Path(tempfile.mkdtemp(prefix="rrdsync-check-")))
        _probe(cfg, rsync, rep, version)
        return 1 if rep.failed else 0
    finally:
        if rsync is not None:
            rsync.close()
        if ssh is not None:
            ssh.close()


def _local_rsync_version() -> str | None:
    r = subprocess.run(["rsync", "--version"], capture_output=True, text=True)
    m = re.search(r"version\s+v?([0-9][0-9.]*\w*)", r.stdout)
    return m.group(1) if m else None


def _probe(cfg: SidecarConfig, rsync: Rsync, rep: Report, version: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="rrdsync-probe-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / PROBE).write_text(f"rrdsync write probe {time.time():.0f}\n")
        listing = Path(tmp) / "list"
        listing.write_bytes(PROBE.encode() + b"\0")
        base = [a for a in rsync.base_argv() if not a.startswith("--out-format")]
        vv = [*base, "-vv", "--from0", f"--files-from={listing}", f"{src}/",
              cfg.dest.rsync_target()]
        res = subprocess.run(vv, capture_output=True, timeout=cfg.timeout + 30)
        if version is None:
            m = re.search(rb"remote=(\d+)", res.stdout + res.stderr)
            if m:
                proto = int(m.group(1))
                version = {31: "3.1.x (protocol 31)", 32: "3.2.0+ (protocol 32)"}.get(
                    proto, f"protocol {proto}")
        if res.returncode != 0:
            tail = (res.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
            rep.line(False, "write probe", f"rsync exit {res.returncode}: {tail}")
            return
        rep.line(True, "write probe", f"{PROBE} written at the destination root")
        empty = Path(tmp) / "empty"
        empty.mkdir()
        rm = subprocess.run([*base, "--from0", f"--files-from={listing}",
                             "--delete-missing-args", f"{empty}/", cfg.dest.rsync_target()],
                            capture_output=True, timeout=cfg.timeout + 30)
        if rm.returncode == 0:
            rep.line(True, "probe removed")
        else:
            rep.line(None, "probe left in place",
                     "the destination refuses deletes (e.g. rrsync -no-del); "
                     "expected for a write-only receiver")
    if version is None:
        rep.line(None, "destination rsync version", "unknown")
    elif "protocol" in version or _version_tuple(version) >= NS_MTIME_MIN:
        note = "" if "protocol 31" not in version else " (nanosecond mtimes need 3.1.3+)"
        rep.line(True if not note else None, "destination rsync version", version + note)
    else:
        rep.line(None, "destination rsync version",
                 f"{version}: older than 3.1.3, nanosecond mtime comparison is unavailable")


def verify(cfg: SidecarConfig, out: TextIO = sys.stdout) -> int:
    """0 identical, 1 drift (listed). Files only at the destination count only with delete."""
    ssh = SshMaster(cfg, cfg.dests[0]) if cfg.dests[0].is_remote else None
    rsync = Rsync(cfg, cfg.dests[0], ssh, Path(tempfile.mkdtemp(prefix="rrdsync-check-")))
    try:
        if ssh is not None:
            try:
                ssh.ensure()
            except SshError as e:
                sys.stderr.write(f"rrdsync verify: {classify_ssh_error(str(e))}\n")
                return 1
        argv = [*rsync.base_argv(), "--dry-run", "--recursive", "--checksum",
                *rsync.filter_args(), "--delete", rsync.source_arg(),
                cfg.dest.rsync_target()]
        proc = subprocess.run(argv, capture_output=True, timeout=None)
        drift = 0
        for line in proc.stdout.split(b"\n"):
            if not line.startswith(SENT_PREFIX.encode()):
                continue
            item, _n, name = line[len(SENT_PREFIX):].split(b":", 2)
            is_delete = item.startswith(b"*")
            if name.endswith(b"/") or (item[1:2] not in (b"f",) and not is_delete):
                continue
            if is_delete and not cfg.delete:
                continue
            drift += 1
            # rsync already escaped unprintable bytes as \#ooo: print the name as is
            out.buffer.write(name + b"\n") if hasattr(out, "buffer") else out.write(
                name.decode(errors="replace") + "\n")
        out.flush()
        if proc.returncode not in (0, 24):
            tail = (proc.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
            sys.stderr.write(f"rrdsync verify: rsync exit {proc.returncode}: {tail}\n")
            return 1
        return 1 if drift else 0
    finally:
        rsync.close()
        if ssh is not None:
            ssh.close()
