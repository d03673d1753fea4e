"""Running rsync for one destination: the argument lists, the child, what its exit means.

Rules that keep the destination trustworthy:
- paths travel NUL-separated through ``--files-from`` (never on a command line, never
  through a shell), so rsync creates missing directories at the right relative place;
- no ``-s``/``--secluded-args``, so an ``rrsync``-restricted receiver accepts us;
- files land by temp-file-and-rename: no ``--inplace``, and no ``--partial`` (which
  would rename a half-sent file into place when a transfer is cut);
- event-listed files go with ``--ignore-times``: RRD files keep their size and a second
  update in the same second (or the same coarse kernel timestamp tick) would pass
  rsync's quick check;
- chunks of a full pass use the quick check, to the nanosecond (``--modify-window=-1``)
  where the receiver allows it (an rrsync receiver refuses ``-@-1``);
- directory times are never set (``--omit-dir-times``) and permissions are not mirrored:
  a destination root owned by root with ``fsGroup`` (mode 2775) refuses both, and RRD
  readers need neither. New files get the source's mode under the receiver's umask;
- listed paths do not carry their parent directories (``--no-implied-dirs``: a missing
  parent is still created, with default attributes): a full path per file is cheaper for
  both ends than a directory entry per path component (a local copy of 48,400 files:
  12.6 s instead of 16.2 s);
- a full pass hands over a directory whose regular files are all ours as ``dir/.`` with
  ``--dirs`` (its files, not its subdirectories' contents): rsync reads a ``--files-from``
  list one byte per read()+poll(), 2 million system calls for 48,400 paths.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import log, rsync_output
from .config import Destination, SidecarConfig
from .journal import nul_list
from .rsync_output import Item, PathError
from .ssh import SshMaster, spawn
from .threads import Beat, Stop

LOG = log.get("transfer")

OK = frozenset({0, 24})  # 24: a listed file vanished before it was sent: nothing to send
PARTIAL = 23  # some paths failed (named in stderr); the others arrived
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
REFUSED = "invalid rsync-command syntax or options"  # rrsync's word for a refused option
DISABLED = "has been disabled on this server"  # rrsync -no-del: "option --delete has been ..."
BUSY = "Another instance of rrsync is already accessing"  # rrsync's one-run-per-dir lock
_PROGRESS = re.compile(rb"xfr#(\d+), (?:ir|to)-chk=(\d+)/(\d+)")


def write_list(path: Path, paths: list[str] | bytes) -> None:
    """A NUL-separated ``--files-from`` list (any byte in a name survives); ``bytes`` are
    such a list already (a chunk of a full pass)."""
    path.write_bytes(paths if isinstance(paths, bytes) else nul_list(sorted(paths)))


@dataclass
class Result:
    exit_code: int
    duration: float
    items: list[Item] = field(default_factory=list)
    stderr: str = ""
    interrupted: bool = False  # ended by us at the stop deadline

    @property
    def sent(self) -> list[str]:
        return [i.path for i in self.items if i.kind == "sent"]

    @property
    def deleted(self) -> list[str]:
        return [i.path for i in self.items if i.kind == "deleted"]

    @property
    def nbytes(self) -> int:
        return sum(i.nbytes for i in self.items if i.kind == "sent")

    @property
    def completed(self) -> bool:
        """The run went through to the end: every path it does not name in an error
        arrived (0, 23, 24). Anything else (a cut connection, a refusal, a timeout)
        confirms nothing: rsync lists a file once the sender has sent it, before the
        receiver renames it into place."""
        return not self.interrupted and (self.exit_code in OK or self.exit_code == PARTIAL)

    @property
    def refused(self) -> bool:
        """An rrsync receiver refused an option (e.g. a delete option under -no-del)."""
        return self.exit_code in (1, 12) and (REFUSED in self.stderr or DISABLED in self.stderr)

    @property
    def busy(self) -> bool:
        """An rrsync receiver was busy with another rsync into the same directory (it
        allows one at a time): nothing ran, the same run may be tried again shortly."""
        return self.exit_code in (1, 12) and BUSY in self.stderr

    def path_errors(self) -> tuple[list[PathError], list[str]]:
        return rsync_output.parse_errors(self.stderr)

    @property
    def result(self) -> str:
        if self.interrupted:
            return "failed"
        if self.exit_code in OK:
            return "ok"
        return "partial" if self.exit_code == PARTIAL else "failed"

    @property
    def error(self) -> str | None:
        if self.exit_code in OK and not self.interrupted:
            return None
        if self.interrupted:
            return "rsync ended at the stop deadline"
        meaning = MEANING.get(self.exit_code, "unknown rsync exit code")
        detail = self.stderr.strip().splitlines()[-3:] if self.stderr.strip() else []
        return f"rsync exit {self.exit_code}: {meaning}" + (
            ": " + " | ".join(detail) if detail else "")


class Rsync:
    """Builds and runs rsync for one destination (one run at a time: rrsync locks per dir)."""

    def __init__(self, cfg: SidecarConfig, dest: Destination, ssh: SshMaster | None,
                 workdir: Path) -> None:
        self.cfg = cfg
        self.dest = dest
        self.ssh = ssh
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        # rrsync's option filter refuses "-@-1" (how rsync forwards a negative
        # --modify-window), so nanosecond comparison is dropped for such a receiver;
        # the startup scan of recently changed files covers that case.
        self.ns_mtime = True

    def base_argv(self) -> list[str]:
        cfg = self.cfg
        argv = ["rsync", "--times", "--omit-dir-times",
                f"--timeout={max(1, round(cfg.timeout))}", rsync_output.OUT_FORMAT]
        if self.dest.is_remote:
            assert self.ssh is not None
            argv += ["--rsh", self.ssh.rsh()]
            argv += compress_args(cfg)
        if cfg.bwlimit:
            argv.append(f"--bwlimit={cfg.bwlimit}")
        return argv

    def source_arg(self) -> str:
        return str(self.cfg.source_dir).rstrip("/") + "/"

    def target(self) -> str:
        return self.dest.rsync_target()

    # -- the runs the engine makes ------------------------------------------------------

    def send_list(self, paths: list[str] | bytes, stop: Stop, beat: Beat, *,
                  ignore_times: bool, delete_missing: bool = False,
                  dirs: bool = False) -> Result:
        """Send exactly these relative paths: an event batch (``ignore_times``) or a chunk
        of a full pass (quick check). With ``dirs`` an entry ``dir/.`` sends the regular
        files directly in ``dir`` (``--dirs``: its subdirectories are created, not entered;
        links and special files are skipped, as everywhere)."""
        listing = self.workdir / "files"
        write_list(listing, paths)
        argv = [*self.base_argv(), "--from0", f"--files-from={listing}", "--no-implied-dirs",
                "--delete-missing-args" if delete_missing else "--ignore-missing-args"]
        if dirs:
            argv.append("--dirs")
        if ignore_times:
            argv.append("--ignore-times")
        elif self.ns_mtime:
            argv.append("--modify-window=-1")
        argv += [self.source_arg(), self.target()]
        res = self.run(argv, stop, beat)
        if not ignore_times and self.ns_mtime and res.refused and not delete_missing:
            self.ns_mtime = False
            LOG.info("ns_mtime_refused",
                        "the destination refuses nanosecond mtime comparison (rrsync); "
                        "comparing whole seconds, with files changed around the last stop "
                        "sent in full at startup", destination=self.dest.label,
                        error=res.error)
            return self.send_list(paths, stop, beat, ignore_times=False, dirs=dirs)
        return res

    def filter_args(self) -> list[str]:
        """Directories are traversed; excludes win over includes; ``lost+found`` at the
        root is never entered; everything else is skipped."""
        args = ["--exclude=/lost+found", "--include=*/"]
        args += [f"--exclude={g}" for g in self.cfg.exclude]
        args += [f"--include={g}" for g in self.cfg.include]
        args.append("--exclude=*")
        return args

    def planned_deletions(self, stop: Stop, beat: Beat) -> Result:
        """What a mirroring pass would delete at the destination, without deleting it (a
        dry run that transfers nothing: ``--existing --ignore-existing``). Its ``deleted``
        list is checked against the source before anything is removed."""
        argv = [*self.base_argv(), "--dry-run", "--recursive", "--existing",
                "--ignore-existing", "--delete", *self.filter_args(), self.source_arg(),
                self.target()]
        return self.run(argv, stop, beat)

    def delete_paths(self, paths: list[str], stop: Stop, beat: Beat) -> Result:
        """Delete exactly these relative paths at the destination (each missing at the
        source): nothing else can be removed, whatever happens to the source meanwhile."""
        listing = self.workdir / "deletions"
        write_list(listing, paths)
        argv = [*self.base_argv(), "--from0", f"--files-from={listing}",
                "--delete-missing-args", "--force", self.source_arg(), self.target()]
        return self.run(argv, stop, beat)

    # -- the child ----------------------------------------------------------------------

    def run(self, argv: list[str], stop: Stop, beat: Beat) -> Result:
        """Run rsync to its end, or until the stop deadline (then SIGTERM, SIGKILL 0.5 s
        later). Marks ``beat`` while it runs: a long run is a busy worker, not a dead one."""
        LOG.debug("rsync_start", argv=argv, destination=self.dest.label)
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
                fd = key.fd
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == "err":
                    err += chunk
                    if len(err) > 262144:  # keep the end: the summary and last errors
                        del err[:-131072]
                    continue
                buf += chunk
                *lines, buf = re.split(rb"[\r\n]", buf)
                for line in lines:
                    item = rsync_output.parse_item(line)
                    if item is not None:
                        res.items.append(item)
            beat.mark(keep=True)
            if stop.over() and proc.poll() is None:
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
            item = rsync_output.parse_item(buf)
            if item is not None:
                res.items.append(item)
        proc.wait()
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
        res.exit_code = proc.returncode if proc.returncode >= 0 else 20
        res.duration = time.monotonic() - started
        res.stderr = err.decode(errors="surrogateescape")
        return res

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def compress_args(cfg: SidecarConfig) -> list[str]:
    """``RRDSYNC_COMPRESS``: ``auto`` lets both ends negotiate, an algorithm pins it."""
    if cfg.compress == "none":
        return []
    args = ["--compress"]
    if cfg.compress != "auto":
        args.append(f"--compress-choice={cfg.compress}")
    if cfg.compress_level is not None:
        args.append(f"--compress-level={cfg.compress_level}")
    return args
