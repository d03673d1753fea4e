"""The typed, validated configuration of each role, built once from the environment.

Everything comes from one declarative table (``TABLE``, in ``config_table.py``): a row per
variable with its parser, default, roles, secrecy and meaning. The table drives loading
and validation, ``rrdsync config`` (secrets redacted), the README's variable tables
(``python -m rrdsync.config_doc``), the list of known names and the defaults of the
per-role dataclasses below (checked against the table at import). The entry points
(``cli.py``, ``receiver.py``) hand ``os.environ`` to the loaders here; nothing else in
rrdsync reads it.

A bad value raises ``ConfigError`` naming the variable, the value and what would be
accepted; the CLI turns it into one line on stderr and exit status 2. Every ``RRDSYNC_*``
name is known in every role and each role validates only its own; an unknown name is an
error (a misspelt variable silently falling back to its default is how archives get lost),
while Kubernetes service-link variables are recognised by form and ignored with a warning.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config_parse as p
from .config_check import check_sidecar_paths
from .config_parse import PREFIX, ConfigError
from .config_table import (
    BY_NAME,
    DEFAULTS,
    NAMES,
    RECEIVER,
    REDACTED,
    ROLES,
    SERVE,
    SIDECAR,
    TABLE,
    Var,
    rows,
)
from .destination import Destination, resolve_ports

__all__ = ["NAMES", "PREFIX", "RECEIVER", "ROLES", "SERVE", "SIDECAR", "TABLE",
           "ConfigError", "Destination", "ReceiverConfig", "ServeConfig", "SidecarConfig",
           "Var", "load_receiver", "load_serve", "load_sidecar", "public_items"]

# --- one dataclass per role (defaults come from the table) ----------------------------


@dataclass(frozen=True, kw_only=True)
class SidecarConfig:
    """``run``, ``once``, ``check``, ``verify``, ``config``."""

    source_dir: Path = DEFAULTS["source_dir"]
    dests: tuple[Destination, ...]        # never empty
    ssh_port: int = DEFAULTS["ssh_port"]
    ssh_key: Path = DEFAULTS["ssh_key"]
    known_hosts: Path = DEFAULTS["known_hosts"]
    ssh_host_key_policy: str = DEFAULTS["ssh_host_key_policy"]
    include: tuple[str, ...] = DEFAULTS["include"]
    exclude: tuple[str, ...] = DEFAULTS["exclude"]
    settle: float = DEFAULTS["settle"]
    max_delay: float = DEFAULTS["max_delay"]
    batch_max: int = DEFAULTS["batch_max"]
    delete: bool = DEFAULTS["delete"]
    rescan_interval: float = DEFAULTS["rescan_interval"]
    watch: str = DEFAULTS["watch"]
    poll_interval: float = DEFAULTS["poll_interval"]
    bwlimit: int = DEFAULTS["bwlimit"]
    compress: str = DEFAULTS["compress"]  # "auto", "none", "zstd", "lz4", "zlibx", "zlib"
    compress_level: int | None = DEFAULTS["compress_level"]
    timeout: float = DEFAULTS["timeout"]
    http_addr: tuple[str, int] = DEFAULTS["http_addr"]
    liveness_timeout: float = DEFAULTS["liveness_timeout"]
    max_lag: float = DEFAULTS["max_lag"]
    state_dir: Path = DEFAULTS["state_dir"]
    run_dir: Path = DEFAULTS["run_dir"]
    log_level: str = DEFAULTS["log_level"]
    log_format: str = DEFAULTS["log_format"]
    rrdcached: str = DEFAULTS["rrdcached"]
    rrdcached_root: Path | None = DEFAULTS["rrdcached_root"]
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.dests:
            raise ValueError("SidecarConfig needs at least one destination")

    def included(self, name: str) -> bool:
        """Whether a base name is replicated (exclude wins over include)."""
        if any(fnmatch.fnmatchcase(name, g) for g in self.exclude):
            return False
        return any(fnmatch.fnmatchcase(name, g) for g in self.include)

    @property
    def rrdcached_path_root(self) -> Path:
        return self.rrdcached_root or self.source_dir


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """``serve``: the status server."""

    http_addr: tuple[str, int] = DEFAULTS["http_addr"]
    run_dir: Path = DEFAULTS["run_dir"]
    liveness_timeout: float = DEFAULTS["liveness_timeout"]
    max_lag: float = DEFAULTS["max_lag"]
    log_level: str = DEFAULTS["log_level"]
    log_format: str = DEFAULTS["log_format"]
    warnings: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, kw_only=True)
class ReceiverConfig:
    """The image's ``receiver`` role (run dir: its private sshd files)."""

    receive_dir: Path = DEFAULTS["receive_dir"]
    authorized_keys: Path = DEFAULTS["authorized_keys"]
    listen_port: int = DEFAULTS["listen_port"]
    host_key_dir: Path = DEFAULTS["host_key_dir"]
    receiver_allow_delete: bool = DEFAULTS["receiver_allow_delete"]
    run_dir: Path = DEFAULTS["run_dir"]
    log_level: str = DEFAULTS["log_level"]
    log_format: str = DEFAULTS["log_format"]
    warnings: tuple[str, ...] = field(default=(), compare=False)


AnyConfig = SidecarConfig | ServeConfig | ReceiverConfig
ROLE_CLASS: dict[str, type] = {SIDECAR: SidecarConfig, SERVE: ServeConfig,
                               RECEIVER: ReceiverConfig}


def _check_table() -> None:
    """The dataclasses and the table must agree; fail at import, not in production."""
    for role, cls in ROLE_CLASS.items():
        have = {f.name for f in dataclasses.fields(cls)} - {"warnings"}
        want = {name for v in rows(role) for name in v.fields}
        if have != want:
            raise RuntimeError(f"{cls.__name__} fields and the {role} rows differ: "
                               f"{sorted(have ^ want)}")


_check_table()


# --- loading --------------------------------------------------------------------------


def _environment(environ: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """The ``RRDSYNC_*`` variables that are settings, and one warning per service link."""
    env: dict[str, str] = {}
    warnings: list[str] = []
    for name in sorted(n for n in environ if n.startswith(PREFIX)):
        value = environ[name]
        if p.is_service_link(name, value):
            warnings.append(f"ignoring {name}: a Kubernetes service-link variable, not a"
                            " setting (set enableServiceLinks: false on the pod)")
        elif name in BY_NAME:
            env[name] = value
        else:
            close = difflib.get_close_matches(name, sorted(NAMES), n=1)
            hint = f"did you mean {close[0]}?" if close else \
                "known: " + ", ".join(sorted(NAMES))
            raise ConfigError(name, value, f"unknown variable (misspelt?); {hint}")
    return env, tuple(warnings)


def _values(role: str, env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var in rows(role):
        raw = env.get(var.name)
        if raw is None and var.required:
            raise ConfigError(var.name, None, var.required)
        if raw is None:
            out.update((f, DEFAULTS[f]) for f in var.fields)
            continue
        out.update(var.assign(var.parse(var.name, raw)))
    return out


def load_sidecar(environ: Mapping[str, str], *, require_paths: bool = True) -> SidecarConfig:
    """The worker's configuration. ``require_paths`` also checks what can be checked without
    connecting (source dir, key, known_hosts, state dir, rrdcached socket): those are
    configuration errors too."""
    env, warnings = _environment(environ)
    values = _values(SIDECAR, env)
    dest_raw = env["RRDSYNC_DEST"]
    values["dests"] = resolve_ports("RRDSYNC_DEST", dest_raw, values["dests"],
                                    values["ssh_port"])
    if values["settle"] > values["max_delay"]:
        max_delay = env.get("RRDSYNC_MAX_DELAY", BY_NAME["RRDSYNC_MAX_DELAY"].default)
        raise ConfigError("RRDSYNC_SETTLE", env.get("RRDSYNC_SETTLE"),
                          f"must not exceed RRDSYNC_MAX_DELAY ({max_delay})")
    cfg = SidecarConfig(**values, warnings=warnings)
    if require_paths:
        check_sidecar_paths(cfg)
    return cfg


def load_serve(environ: Mapping[str, str]) -> ServeConfig:
    env, warnings = _environment(environ)
    return ServeConfig(**_values(SERVE, env), warnings=warnings)


def load_receiver(environ: Mapping[str, str]) -> ReceiverConfig:
    """The receiver's variables (its files are checked when it starts: ``receiver.py``)."""
    env, warnings = _environment(environ)
    return ReceiverConfig(**_values(RECEIVER, env), warnings=warnings)


LOADERS: dict[str, Callable[[Mapping[str, str]], AnyConfig]] = {
    SIDECAR: load_sidecar, SERVE: load_serve, RECEIVER: load_receiver}


# --- showing ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return p.show_duration(value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def role_of(cfg: AnyConfig) -> str:
    return next(role for role, cls in ROLE_CLASS.items() if isinstance(cfg, cls))


def public_items(cfg: AnyConfig) -> list[tuple[str, str]]:
    """(variable, value) for ``rrdsync config``: every variable of the config's role, in
    table order, in a form the loader reads back; secret values redacted."""
    out = []
    for var in rows(role_of(cfg)):
        if var.secret:
            text = REDACTED
        elif var.show is not None:
            text = var.show(cfg)
        else:
            text = _text(getattr(cfg, var.fields[0]))
        out.append((var.name, text))
    return out
