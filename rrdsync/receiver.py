"""The image's ``receiver`` role: an unprivileged sshd that only accepts rrsync writes.

Started by the container entrypoint (``python -m rrdsync.receiver``). It validates the
receiver variables (exit 2 with one line on stderr, like every configuration error),
then:

1. host keys: uses the ``ssh_host_*_key`` files in ``RRDSYNC_HOST_KEY_DIR`` (a Secret or
   a volume), or generates an ed25519 key there on first start; copies them to a private
   0600 file in the run dir (a secret mounted 0644 or 0400 by another owner still works)
   and logs the ``known_hosts`` line at every start;
2. authorized_keys: renders each plain key of ``RRDSYNC_AUTHORIZED_KEYS`` as
   ``command="rrsync -wo -no-del <RECEIVE_DIR>",restrict <key>`` (``-no-del`` dropped only
   with ``RRDSYNC_RECEIVER_ALLOW_DELETE=true``): no shell, no pty, no forwarding. A line
   ``dir=NAME <key>`` confines that key to ``<RECEIVE_DIR>/NAME`` instead (rrsync makes it
   the root of every path the client names), created here if missing: one receiver for
   several sidecars that cannot see or touch each other's trees;
3. runs sshd in the foreground, its log (``-e``: stderr) turned into rrdsync log lines
   (:mod:`rrdsync.logwrap`), so the container writes one log stream.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import log, logwrap
from .config import ConfigError, ReceiverConfig, load_receiver
from .journal import atomic_write

SSHD = "/usr/sbin/sshd"
SSHD_CONFIG = "/etc/rrdsync/sshd_config"
RRSYNC = "/usr/bin/rrsync"
SSH_KEYGEN = "ssh-keygen"
KEY_TYPES = ("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-sha2-")
KEYS_VAR = "RRDSYNC_AUTHORIZED_KEYS"
_DIR_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")

LOG = log.get("receiver")


@dataclass(frozen=True)
class AuthorizedKey:
    """One key of RRDSYNC_AUTHORIZED_KEYS: ``dir`` None pushes into RECEIVE_DIR itself."""

    line: int
    key: str  # "ssh-ed25519 AAAA... [comment]"
    dir: str | None = None


def _key_error(cfg: ReceiverConfig, number: int, problem: str) -> ConfigError:
    return ConfigError(KEYS_VAR, str(cfg.authorized_keys), f"line {number}: {problem}")


def parse_authorized_keys(cfg: ReceiverConfig, text: str) -> list[AuthorizedKey]:
    """Plain keys, each optionally preceded by ``dir=NAME``. Any other option is refused: a
    key must never carry a command or permission the receiver did not put there."""
    keys: list[AuthorizedKey] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        directory = None
        if line.startswith("dir="):
            option, _, line = line.partition(" ")
            directory, line = option[4:], line.strip()
            if not _DIR_NAME.match(directory) or directory in (".", ".."):
                raise _key_error(cfg, number, f"dir={directory}: NAME is letters, digits,"
                                 " '.', '_' and '-' (not . or ..), then a space and the key")
        fields = line.split()
        if not line.startswith(KEY_TYPES) or len(fields) < 2 or not _BASE64.match(fields[1]):
            raise _key_error(cfg, number, "expected a plain public key (ssh-ed25519 AAAA..."
                             " [comment]), optionally after dir=NAME; no other options: the"
                             " receiver adds the forced rrsync command itself")
        if fields[1] in seen:
            raise _key_error(cfg, number, f"the same key as line {seen[fields[1]]} (sshd"
                             " would only ever use the first)")
        seen[fields[1]] = number
        keys.append(AuthorizedKey(line=number, key=line, dir=directory))
    if not keys:
        raise ConfigError(KEYS_VAR, str(cfg.authorized_keys), "contains no public key")
    return keys


def key_root(cfg: ReceiverConfig, key: AuthorizedKey) -> Path:
    """The directory rrsync confines this key to."""
    return cfg.receive_dir / key.dir if key.dir else cfg.receive_dir


def forced_command(cfg: ReceiverConfig, root: Path | None = None) -> str:
    """The rrsync command a key is forced through (``root``: RECEIVE_DIR by default)."""
    args = [RRSYNC, "-wo"]
    if not cfg.receiver_allow_delete:
        args.append("-no-del")
    args.append(str(root or cfg.receive_dir))
    return shlex.join(args)


def render_keys(cfg: ReceiverConfig, keys: list[AuthorizedKey]) -> str:
    out = []
    for key in keys:
        command = forced_command(cfg, key_root(cfg, key))
        command = command.replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'command="{command}",restrict {key.key}\n')
    return "".join(out)


def make_key_dirs(cfg: ReceiverConfig, keys: list[AuthorizedKey]) -> list[Path]:
    """Create RECEIVE_DIR/NAME for each ``dir=NAME`` key (owned by this process's user).
    A symlink there is refused: it would lead the confined key out of RECEIVE_DIR."""
    made = []
    for name in sorted({k.dir for k in keys if k.dir}):
        path = cfg.receive_dir / name
        try:
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise ConfigError("RRDSYNC_RECEIVE_DIR", str(cfg.receive_dir),
                                  f"{name} (for a dir={name} key) exists and is not a"
                                  " directory")
            path.mkdir(exist_ok=True)
        except OSError as e:
            raise ConfigError("RRDSYNC_RECEIVE_DIR", str(cfg.receive_dir),
                              f"cannot create {name} for a dir={name} key ({e.strerror})"
                              ) from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError("RRDSYNC_RECEIVE_DIR", str(cfg.receive_dir),
                              f"{name} (for a dir={name} key) is not writable by this user")
        made.append(path)
    return made


def _check_dirs(cfg: ReceiverConfig) -> None:
    receive = cfg.receive_dir
    if not receive.is_dir() or not os.access(receive, os.W_OK | os.X_OK):
        raise ConfigError("RRDSYNC_RECEIVE_DIR", str(receive),
                          "must be an existing directory writable by this user")
    keys = cfg.authorized_keys
    if not keys.is_file() or not os.access(keys, os.R_OK):
        raise ConfigError(KEYS_VAR, str(keys), "must be a readable file")


def host_key_sources(cfg: ReceiverConfig) -> list[Path]:
    """The host keys to use, generating an ed25519 key on first start if there is none."""
    directory = cfg.host_key_dir
    found = sorted(p for p in directory.glob("ssh_host_*_key") if p.is_file()) \
        if directory.is_dir() else []
    if found:
        return found
    try:
        directory.mkdir(parents=True, exist_ok=True)
        key = directory / "ssh_host_ed25519_key"
        subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "rrdsync-receiver",
                        "-f", str(key)], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as e:
        raise ConfigError("RRDSYNC_HOST_KEY_DIR", str(directory),
                          "holds no ssh_host_*_key and is not writable to generate one"
                          f" ({e.__class__.__name__})") from None
    LOG.info("host_key_generated", path=str(key))
    return [key]


def private_copies(sources: list[Path], private: Path) -> list[Path]:
    """Copy host keys to 0600 files we own: sshd refuses keys others can read."""
    copies = []
    for src in sources:
        dst = private / src.name
        try:
            data = src.read_bytes()
        except OSError as e:
            raise ConfigError("RRDSYNC_HOST_KEY_DIR", str(src),
                              f"host key not readable by this user ({e.strerror})") from None
        atomic_write(dst, data, durable=False)
        copies.append(dst)
    return copies


def public_key(private_key: Path) -> str:
    out = subprocess.run([SSH_KEYGEN, "-y", "-f", str(private_key)], check=True,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return " ".join(out.stdout.split()[:2])


def known_hosts_line(port: int, key: str, host: str | None = None) -> str:
    host = host or socket.gethostname()
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key}"


def prepare(cfg: ReceiverConfig) -> list[str]:
    """Everything before sshd; returns sshd's argument list."""
    _check_dirs(cfg)
    keys = parse_authorized_keys(cfg, cfg.authorized_keys.read_text())
    dirs = make_key_dirs(cfg, keys)
    private = cfg.run_dir / "receiver"
    private.mkdir(mode=0o700, parents=True, exist_ok=True)
    host_keys = private_copies(host_key_sources(cfg), private)
    for key in host_keys:
        line = known_hosts_line(cfg.listen_port, public_key(key))
        LOG.info("receiver_host_key",
                  "known_hosts line for this receiver (use the name clients connect to)",
                  known_hosts=line)

    auth = private / "authorized_keys"
    atomic_write(auth, render_keys(cfg, keys).encode(), durable=False)
    LOG.info("receiver_start", "accepting rsync writes",
              receive_dir=str(cfg.receive_dir), port=cfg.listen_port,
              keys=len(keys), key_dirs=[str(d) for d in dirs],
              delete_allowed=cfg.receiver_allow_delete)

    argv = [SSHD, "-D", "-e", "-f", SSHD_CONFIG,
            "-o", f"Port={cfg.listen_port}",
            "-o", f"AuthorizedKeysFile={auth}",
            "-o", f"PidFile={private / 'sshd.pid'}"]
    for key in host_keys:
        argv += ["-o", f"HostKey={key}"]
    return argv


def _error(event: str, message: str, fmt: str = "json") -> None:
    """One log line on stderr (a configuration error is one line there, and nothing else)."""
    sys.stderr.write(logwrap.render(fmt, LOG.logger.name, logging.ERROR, event, message) + "\n")


def main() -> int:
    fmt = "json"
    try:
        cfg = load_receiver(os.environ)
        fmt = cfg.log_format
        log.setup(cfg.log_level, cfg.log_format)
        for warning in cfg.warnings:
            LOG.warning("config_warning", warning)
        sshd = prepare(cfg)
    except ConfigError as e:
        _error("config_error", f"rrdsync: configuration error: {e}", fmt)
        return 2
    sys.stdout.flush()
    if shutil.which(SSHD) is None:
        _error("sshd_missing", f"rrdsync: {SSHD} is not installed", fmt)
        return 1
    return logwrap.run(sshd, logwrap.parse_sshd, fmt)


if __name__ == "__main__":
    sys.exit(main())
