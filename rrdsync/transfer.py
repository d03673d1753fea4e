"""Running rsync: the argument lists, the child process, and what its exit code means.

Rules that keep the destination trustworthy:
- paths travel NUL-separated through ``--files-from`` (never on a command line, never
  through a shell), so rsync creates missing directories at the right relative place;
- no ``-s``/``--secluded-args``, so an ``rrsync``-restricted receiver accepts us;
- files land by temp-file-and-rename: no ``--inplace``, and no ``--partial`` (which
  would rename a half-sent file into place when a transfer is cut);
- event-listed files go with ``--ignore-times``: RRD files keep their size and a second
  update in the same second (or the same coarse kernel timestamp tick) would pass
  rsync's quick check;
- the full pass compares mtimes to the nanosecond (``--modify-window=-1``).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import log
from .config import SidecarConfig as Config  # transitional: the engine moves to cfg.dests
from .ssh import SshMaster, spawn

LOG = log.get("transfer")

# Exit codes after lsyncd's table (FIELD-NOTES §1) and rsync(1) EXIT VALUES.
OK = frozenset({0, 24})  # 24: a listed file vanished before it was sent: nothing to send
PARTIAL = frozenset({23})  # some files failed: retry those
MEANING = {
    1: "syntax or usage error (the receiver may have refused an option)",
    2: "protocol incompatibility",
    3: "errors selecting input/output files",
    4: "requested action not supported",
    5: "error starting client-server protocol",
    10: "error in socket I/O",
    11: "error in file I/O (destination disk full or read-only?)",
    12: "error in rsync protocol data stream (connection cut, or the receiver refused)",
    13: "errors with program diagnostics",
    14: "error in IPC code",
    20: "received SIGUSR1 or SIGINT",
    21: "some error returned by waitpid()",
    22: "error allocating core memory buffers",
    23: "partial transfer due to error",
    24: "partial transfer due to vanished source files",
    25: "the --max-delete limit stopped deletions",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
    255: "ssh failed (destination unreachable, or authentication / host key refused)",
}
SENT_PREFIX = "rrdsync:"
REFUSED = "invalid rsync-command syntax or options"  # rrsync's word for a refused option
_ESC = re.compile(rb"\\#([0-7]{3})")
_PROGRESS = re.compile(r"xfr#(\d+), (?:ir|to)-chk=(\d+)/(\d+)")


def unescape(name: bytes) -> bytes:
    """Undo rsync's ``\\#ooo`` escaping of unprintable bytes in its log lines."""
    return _ESC.sub(lambda m: bytes([int(m.group(1), 8)]), name)


@dataclass
class Result:
    exit_code: int
    duration: float
    sent: list[str] = field(default_factory=list)  # files whose new content was written
    deleted: list[str] = field(default_factory=list)
    nbytes: int = 0
    stderr: str = ""
    interrupted: bool = False
    stderr_cut: bool = False  # the start of stderr was dropped (too long to keep)

    @property
    def sent_confirmed(self) -> bool:
        """Whether ``sent`` means "now at the destination".

        rsync lists a file on the sender's side once it has sent it, before the receiver
        has renamed it into place. A cut connection loses the file being finished; a
        receiver that cannot write (read-only, full) fails every file with code 23 while
        the sender lists them all. Only a clean run, or a partial one whose every error
        is the sender's own (a source file it could not read, which it does not list),
        confirms what was listed.
        """
        if self.interrupted:
            return False
        if self.exit_code in OK:
            return True
        if self.exit_code not in PARTIAL or self.stderr_cut:
            return False
        errors = [ln for ln in self.stderr.splitlines() if ln.startswith("rsync: ")]
        return bool(errors) and all(ln.startswith("rsync: [sender] ") for ln in errors)

    @property
    def result(self) -> str:
        if self.exit_code in OK:
            return "ok"
        if self.exit_code in PARTIAL:
            return "partial"
        return "failed"

    @property
    def error(self) -> str | None:
        if self.exit_code in OK:
            return None
        meaning = MEANING.get(self.exit_code, "unknown rsync exit code")
        detail = self.stderr.strip().splitlines()[-3:] if self.stderr.strip() else []
        return f"rsync exit {self.exit_code}: {meaning}" + (
            ": " + " | ".join(detail) if detail else "")


class Rsync:
    """Builds and runs rsync for one destination (one run at a time: rrsync locks per dir)."""

    def __init__(self, cfg: Config, ssh: SshMaster | None, tick: Callable[[], None],
                 abort: Callable[[], bool]) -> None:
        assert cfg.dest is not None
        self.cfg = cfg
        self.ssh = ssh
        self.tick = tick  # heartbeat while rsync runs (a full pass may take hours)
        self.abort = abort  # True once the stop deadline has passed
        self.workdir = Path(tempfile.mkdtemp(prefix="rrdsync-lists-"))
        # rrsync's option filter refuses "-@-1" (how rsync forwards a negative
        # --modify-window), so nanosecond comparison is dropped for such a receiver;
        # the engine's startup scan of recently changed files covers that case.
        self.ns_mtime = True

    def base_argv(self) -> list[str]:
        cfg = self.cfg
        argv = ["rsync", "--times", "--perms", f"--timeout={max(1, round(cfg.timeout))}",
                f"--out-format={SENT_PREFIX}%i:%b:%n"]
        if cfg.dest.is_remote:
            assert self.ssh is not None
            argv += ["--rsh", self.ssh.rsh()]
            if cfg.compress != "none":
                argv.append("--compress")
            if cfg.compress not in ("auto", "none"):
                argv.append(f"--compress-choice={cfg.compress}")
            if cfg.compress_level is not None:
                argv.append(f"--compress-level={cfg.compress_level}")
        if cfg.bwlimit:
            argv.append(f"--bwlimit={cfg.bwlimit}")
        return argv

    def source_arg(self) -> str:
        return str(self.cfg.source_dir).rstrip("/") + "/"

    def send_list(self, paths: list[str], *, delete_missing: bool) -> Result:
        """Send exactly these relative paths (event batch)."""
        listing = self.workdir / "files"
        data = b"".join(os.fsencode(p) + b"\0" for p in sorted(paths))
        listing.write_bytes(data)
        argv = [*self.base_argv(), "--ignore-times", "--from0", f"--files-from={listing}",
                "--delete-missing-args" if delete_missing else "--ignore-missing-args",
                self.source_arg(), self.cfg.dest.rsync_target()]
        return self.run(argv)

    def filter_args(self) -> list[str]:
        """Directories are traversed; excludes win over includes; everything else is skipped."""
        args = ["--include=*/"]
        args += [f"--exclude={g}" for g in self.cfg.exclude]
        args += [f"--include={g}" for g in self.cfg.include]
        args.append("--exclude=*")
        return args

    def full_pass(self, *, delete: bool,
                  progress: Callable[[int, int, int], None] | None = None) -> Result:
        """Reconcile the whole included tree (quick check to the nanosecond)."""
        argv = [*self.base_argv(), "--recursive", "--prune-empty-dirs", *self.filter_args()]
        if self.ns_mtime:
            argv.append("--modify-window=-1")
        if delete:
            argv.append("--delete")
        if progress is not None:
            argv.append("--info=progress2")
        argv += [self.source_arg(), self.cfg.dest.rsync_target()]
        res = self.run(argv, progress=progress)
        if self.ns_mtime and res.exit_code in (1, 12) and REFUSED in res.stderr:
            self.ns_mtime = False
            LOG.warning("ns_mtime_refused",
                      "the destination refuses nanosecond mtime comparison (rrsync); "
                      "comparing whole seconds, with files changed around the last stop "
                      "sent in full at startup", error=res.error)
            return self.full_pass(delete=delete, progress=progress)
        return res

    def planned_deletions(self) -> Result:
        """What a mirroring pass would delete at the destination, without deleting it (a
        dry run that transfers nothing: ``--existing --ignore-existing``). Its ``deleted``
        list is checked against the source before anything is removed."""
        argv = [*self.base_argv(), "--dry-run", "--recursive", "--existing",
                "--ignore-existing", "--delete", *self.filter_args(), self.source_arg(),
                self.cfg.dest.rsync_target()]
        return self.run(argv)

    def delete_paths(self, paths: list[str]) -> Result:
        """Delete exactly these relative paths at the destination (each missing at the
        source): nothing else can be removed, whatever happens to the source meanwhile."""
        listing = self.workdir / "deletions"
        listing.write_bytes(b"".join(os.fsencode(p) + b"\0" for p in sorted(paths)))
        argv = [*self.base_argv(), "--from0", f"--files-from={listing}",
                "--delete-missing-args", "--force", self.source_arg(),
                self.cfg.dest.rsync_target()]
        return self.run(argv)

    def run(self, argv: list[str], progress: Callable[[int, int, int], None] | None = None,
            ) -> Result:
        LOG.debug("rsync_start", argv=argv)
        started = time.monotonic()
        proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
        res = Result(exit_code=-1, duration=0.0)
        err = bytearray()
        buf = b""
        sel = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        open_streams = 2
        terminated_at: float | None = None
        exited_at: float | None = None
        while open_streams:
            for key, _ in sel.select(timeout=0.2):
                chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == "err":
                    err += chunk
                    if len(err) > 65536:
                        del err[:-32768]
                        res.stderr_cut = True
                    continue
                buf += chunk
                *lines, buf = re.split(rb"[\r\n]", buf)
                for line in lines:
                    self._parse(line, res, progress)
            self.tick()
            if self.abort() and proc.poll() is None:
                now = time.monotonic()
                if terminated_at is None:
                    res.interrupted = True
                    terminated_at = now
                    proc.send_signal(signal.SIGTERM)
                elif now - terminated_at > 0.5:
                    proc.kill()
            if proc.poll() is not None:
                # rsync has exited, but its ssh child inherited our stderr and may hold it
                # open for as long as a hung destination keeps it alive (until keep-alives
                # give up, or for ever): read what rsync left, then stop waiting; at once
                # when stopping, so that the stop deadline holds.
                exited_at = exited_at or time.monotonic()
                if terminated_at is not None or time.monotonic() - exited_at > 1.0:
                    break
        if buf:
            self._parse(buf, res, progress)
        proc.wait()
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
        res.exit_code = proc.returncode if proc.returncode >= 0 else 20
        res.duration = time.monotonic() - started
        res.stderr = err.decode(errors="replace")
        return res

    @staticmethod
    def _parse(line: bytes, res: Result,
               progress: Callable[[int, int, int], None] | None) -> None:
        if line.startswith(SENT_PREFIX.encode()):
            try:
                item, nbytes, name = line[len(SENT_PREFIX):].split(b":", 2)
            except ValueError:
                return
            path = os.fsdecode(unescape(name))
            if item.startswith(b"*"):  # "*deleting"
                res.deleted.append(path.rstrip("/"))
            elif item[:1] in (b"<", b">") and item[1:2] == b"f":
                res.sent.append(path)
                res.nbytes += int(nbytes or 0)
            return
        if progress is not None:
            m = _PROGRESS.search(line.decode(errors="replace"))
            if m:
                xfr, remaining, total = (int(g) for g in m.groups())
                progress(xfr, total - remaining, total)

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)
