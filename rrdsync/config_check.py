"""Start-up checks of the worker's files: what can be seen without connecting.

A missing source dir, key or known_hosts file, a state dir this user cannot create or
write, or a missing rrdcached socket would only show up later as a failing loop; they are
configuration errors (exit 2) instead, each naming its variable. Nothing is created here:
``rrdsync config`` and ``check`` must not change the filesystem.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from .config_parse import ConfigError

if TYPE_CHECKING:
    from .config import SidecarConfig


def check_sidecar_paths(cfg: SidecarConfig) -> None:
    src = cfg.source_dir
    if not src.is_dir():
        raise ConfigError("RRDSYNC_SOURCE_DIR", str(src), "must be an existing directory")
    if not os.access(src, os.R_OK | os.X_OK):
        raise ConfigError("RRDSYNC_SOURCE_DIR", str(src), "must be readable by this user"
                          f" (uid {os.geteuid()})")
    if any(d.is_remote for d in cfg.dests):
        _readable_file("RRDSYNC_SSH_KEY", cfg.ssh_key, "must be a readable private key file")
        if cfg.ssh_host_key_policy == "strict":
            _readable_file("RRDSYNC_KNOWN_HOSTS", cfg.known_hosts,
                           "must be a readable known_hosts file "
                           "(or set RRDSYNC_SSH_HOST_KEY_POLICY=accept-new)")
    _writable_dir("RRDSYNC_STATE_DIR", cfg.state_dir)
    if cfg.rrdcached.startswith("unix:"):
        sock = Path(cfg.rrdcached[5:])
        try:
            is_socket = stat.S_ISSOCK(sock.stat().st_mode)
        except OSError:
            raise ConfigError("RRDSYNC_RRDCACHED", cfg.rrdcached,
                              "the socket does not exist (is rrdcached running?)") from None
        if not is_socket:
            raise ConfigError("RRDSYNC_RRDCACHED", cfg.rrdcached, "is not a unix socket")


def _readable_file(name: str, path: Path, accepted: str) -> None:
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(name, str(path), accepted)


def _writable_dir(name: str, path: Path) -> None:
    """``path`` is a directory this user can write, or could be created by this user."""
    accepted = (f"must be a directory this user (uid {os.geteuid()}) can write, or one it"
                " can create (mount a volume there)")
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # a dangling symlink: mkdir would fail
            raise ConfigError(name, str(path), accepted)
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(name, str(path), accepted)
