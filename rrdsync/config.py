"""The one typed, validated configuration object, built once from the environment.

Nothing else in rrdsync reads ``os.environ``: every module receives a ``Config``.
A bad value raises ``ConfigError`` naming the variable, the value and what would be
accepted; the CLI turns it into one line on stderr and exit status 2. Unknown
``RRDSYNC_*`` names are errors too, because a misspelt variable silently falling
back to its default is how archives get lost.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "RRDSYNC_"


class ConfigError(Exception):
    """A configuration mistake; ``str()`` is the single line the operator sees."""

    def __init__(self, name: str, value: str | None, accepted: str) -> None:
        self.name = name
        self.value = value
        self.accepted = accepted
        shown = "(unset)" if value is None else repr(value)
        super().__init__(f"{name}={shown}: {accepted}")


# --- value parsers -----------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DURATION_HELP = "a duration like 500ms, 1.5s, 5m, 1h or a bare number of seconds"


def parse_duration(name: str, raw: str, *, zero_ok: bool) -> float:
    """Parse ``500ms``/``1.5s``/``5m``/``1h``/``0.5``; no compound forms."""
    m = _DURATION.match(raw.strip())
    if not m:
        raise ConfigError(name, raw, f"expected {DURATION_HELP}")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds == 0 and not zero_ok:
        raise ConfigError(name, raw, f"must be greater than 0 ({DURATION_HELP})")
    return seconds


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(name, raw, "expected true/false/1/0/yes/no")


def parse_int(name: str, raw: str, *, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(name, raw, f"expected a whole number {bound}")
    return value


def parse_globs(name: str, raw: str) -> tuple[str, ...]:
    globs = tuple(g.strip() for g in raw.split(",") if g.strip())
    for g in globs:
        if "/" in g:
            raise ConfigError(name, raw, "globs match a file's base name; '/' is not allowed")
    return globs


def parse_choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    low = raw.strip().lower()
    if low not in choices:
        raise ConfigError(name, raw, "expected one of " + ", ".join(choices))
    return low


@dataclass(frozen=True)
class Destination:
    """Where files go: ``[user@]host:/abs/path`` over SSH, or a local ``/abs/path``."""

    path: str
    host: str | None = None
    user: str | None = None

    @property
    def is_remote(self) -> bool:
        return self.host is not None

    def rsync_target(self) -> str:
        """The rsync destination argument, always with a trailing slash (the tree root)."""
        base = self.path if self.path.endswith("/") else self.path + "/"
        if not self.is_remote:
            return base
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.host}:{base}"

    @property
    def label(self) -> str:
        """The entry minus ``user@``: the metric label ``destination`` (stand-in until the
        multi-destination config, whose Destination stores the entry as written)."""
        if self.host is None:
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.path}"

    def ssh_host(self) -> str:
        assert self.host is not None
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return self.rsync_target().rstrip("/") or "/"


_REMOTE = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<path>/.*)$"
)
DEST_HELP = "expected [user@]host:/absolute/path (SSH) or /absolute/path (local)"


def parse_destination(name: str, raw: str) -> Destination:
    value = raw.strip()
    if value.startswith("/"):
        return Destination(path=value)
    m = _REMOTE.match(value)
    if not m or m.group("host").startswith("-"):
        raise ConfigError(name, raw, DEST_HELP)
    host = m.group("host").strip("[]")
    return Destination(path=m.group("path"), host=host, user=m.group("user"))


def parse_http_addr(name: str, raw: str) -> tuple[str, int]:
    host, sep, port = raw.strip().rpartition(":")
    if not sep:
        raise ConfigError(name, raw, "expected host:port, e.g. 0.0.0.0:8080")
    p = parse_int(name, port, minimum=0, maximum=65535) if port.isdigit() else None
    if p is None:
        raise ConfigError(name, raw, "expected host:port with a port between 0 and 65535")
    return host.strip("[]") or "0.0.0.0", p


def parse_rrdcached(name: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    if value.startswith("unix:"):
        if not value[5:].startswith("/"):
            raise ConfigError(name, raw, "expected unix:/absolute/socket or host:port")
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(name, raw, "expected unix:/absolute/socket or host:port")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# --- the object -----------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Effective configuration. Field names mirror the variables (``RRDSYNC_`` dropped)."""

    source_dir: Path = Path("/data")
    dest: Destination | None = None
    ssh_port: int = 22
    ssh_key: Path = Path("/etc/rrdsync/ssh/id")
    known_hosts: Path = Path("/etc/rrdsync/ssh/known_hosts")
    ssh_host_key_policy: str = "strict"
    include: tuple[str, ...] = ("*.rrd", "*.jrb", "*.meta", "*.properties")
    exclude: tuple[str, ...] = ()
    settle: float = 0.1
    max_delay: float = 2.0
    batch_max: int = 5000
    delete: bool = False
    rescan_interval: float = 3600.0
    watch: str = "inotify"
    poll_interval: float = 30.0
    bwlimit: int = 0
    compress: bool = True
    timeout: float = 60.0
    http_addr: tuple[str, int] = ("0.0.0.0", 8080)
    liveness_timeout: float = 60.0
    max_lag: float = 300.0
    state_dir: Path = Path("/var/lib/rrdsync")
    run_dir: Path = Path("/run/rrdsync")
    log_level: str = "INFO"
    log_format: str = "json"
    rrdcached: str = ""
    rrdcached_root: Path | None = None
    # receiver role
    receive_dir: Path = Path("/data")
    authorized_keys: Path = Path("/etc/rrdsync/receiver/authorized_keys")
    listen_port: int = 2222
    host_key_dir: Path = Path("/var/lib/rrdsync/hostkeys")
    receiver_allow_delete: bool = False
    # not variables: what loading noticed (logged once logging is up)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def included(self, name: str) -> bool:
        """Whether a base name is replicated (exclude wins over include)."""
        if any(fnmatch.fnmatchcase(name, g) for g in self.exclude):
            return False
        return any(fnmatch.fnmatchcase(name, g) for g in self.include)

    @property
    def rrdcached_path_root(self) -> Path:
        return self.rrdcached_root or self.source_dir

    def public_items(self) -> list[tuple[str, str]]:
        """(variable, value) pairs for ``rrdsync config``; secrets are files, shown as paths."""
        out = []
        for f in dataclasses.fields(self):
            if f.name == "warnings":
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple) and f.name in ("include", "exclude"):
                text = ",".join(value)
            elif f.name == "http_addr":
                text = f"{value[0]}:{value[1]}"
            elif isinstance(value, bool):
                text = "true" if value else "false"
            elif value is None:
                text = ""
            else:
                text = str(value)
            if f.name == "rrdcached_root" and value is None:
                text = str(self.source_dir)
            out.append((PREFIX + f.name.upper(), text))
        return out


# Variables that only the receiver role uses; known everywhere (never "unknown").
RECEIVER_VARS = frozenset(
    {"RECEIVE_DIR", "AUTHORIZED_KEYS", "LISTEN_PORT", "HOST_KEY_DIR", "RECEIVER_ALLOW_DELETE"}
)
KNOWN = frozenset(f.name.upper() for f in dataclasses.fields(Config) if f.name != "warnings")

_SERVICE_LINK = re.compile(
    r"^RRDSYNC_.+_(SERVICE_HOST|SERVICE_PORT(_.+)?|PORT_\d+_(TCP|UDP|SCTP)(_.+)?)$"
)
_LINK_VALUE = re.compile(r"^(tcp|udp|sctp)://", re.IGNORECASE)


def _is_service_link(name: str, value: str) -> bool:
    """Kubernetes service-link variables look like ours; recognise them by form."""
    if _SERVICE_LINK.match(name):
        return True
    return name.endswith("PORT") and bool(_LINK_VALUE.match(value))


def load(environ: Mapping[str, str], *, role: str = "sidecar",
         require_paths: bool = True) -> Config:
    """Build and validate the configuration.

    ``role`` is ``sidecar`` (needs a destination), ``receiver`` or ``serve`` (neither).
    ``require_paths`` checks what can be checked without connecting (source readable, key and
    known_hosts present); those are configuration errors too.
    """
    warnings: list[str] = []
    env: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(PREFIX):
            continue
        if _is_service_link(name, value):
            warnings.append(f"ignoring {name}: looks like a Kubernetes service-link variable")
            continue
        key = name[len(PREFIX):]
        if key not in KNOWN:
            raise ConfigError(name, value, "unknown variable (misspelt?); known: " + ", ".join(
                sorted(PREFIX + k for k in KNOWN)))
        env[key] = value

    def get(key: str) -> str | None:
        return env.get(key)

    kw: dict[str, object] = {}

    def opt(key: str, parse) -> None:
        raw = get(key)
        if raw is not None:
            kw[key.lower()] = parse(PREFIX + key, raw)

    def abspath(name: str, raw: str) -> Path:
        if not raw.strip().startswith("/"):
            raise ConfigError(name, raw, "expected an absolute path")
        return Path(raw.strip())

    def duration(zero_ok: bool):
        return lambda n, r: parse_duration(n, r, zero_ok=zero_ok)

    opt("SOURCE_DIR", abspath)
    opt("DEST", parse_destination)
    opt("SSH_PORT", lambda n, r: parse_int(n, r, minimum=1, maximum=65535))
    opt("SSH_KEY", abspath)
    opt("KNOWN_HOSTS", abspath)
    opt("SSH_HOST_KEY_POLICY", lambda n, r: parse_choice(n, r, ("strict", "accept-new")))
    opt("INCLUDE", parse_globs)
    opt("EXCLUDE", parse_globs)
    opt("SETTLE", duration(True))
    opt("MAX_DELAY", duration(True))
    opt("BATCH_MAX", lambda n, r: parse_int(n, r, minimum=1, maximum=1_000_000))
    opt("DELETE", parse_bool)
    opt("RESCAN_INTERVAL", duration(True))
    opt("WATCH", lambda n, r: parse_choice(n, r, ("inotify", "poll")))
    opt("POLL_INTERVAL", duration(False))
    opt("BWLIMIT", lambda n, r: parse_int(n, r, minimum=0))
    opt("COMPRESS", parse_bool)
    opt("TIMEOUT", duration(False))
    opt("HTTP_ADDR", parse_http_addr)
    opt("LIVENESS_TIMEOUT", duration(False))
    opt("MAX_LAG", duration(False))
    opt("STATE_DIR", abspath)
    opt("RUN_DIR", abspath)
    opt("LOG_LEVEL", lambda n, r: parse_choice(n, r, tuple(x.lower() for x in LOG_LEVELS)).upper())
    opt("LOG_FORMAT", lambda n, r: parse_choice(n, r, ("json", "text")))
    opt("RRDCACHED", parse_rrdcached)
    opt("RRDCACHED_ROOT", abspath)
    opt("RECEIVE_DIR", abspath)
    opt("AUTHORIZED_KEYS", abspath)
    opt("LISTEN_PORT", lambda n, r: parse_int(n, r, minimum=1, maximum=65535))
    opt("HOST_KEY_DIR", abspath)
    opt("RECEIVER_ALLOW_DELETE", parse_bool)

    if not kw.get("include", True):
        raise ConfigError(PREFIX + "INCLUDE", get("INCLUDE"), "at least one glob is needed")

    cfg = Config(**kw, warnings=tuple(warnings))  # type: ignore[arg-type]

    if cfg.max_delay and cfg.settle > cfg.max_delay:
        raise ConfigError(PREFIX + "SETTLE", get("SETTLE"),
                          f"must not exceed RRDSYNC_MAX_DELAY ({get('MAX_DELAY') or '2s'})")
    if role in ("receiver", "serve"):
        return cfg
    if cfg.dest is None:
        raise ConfigError(PREFIX + "DEST", None, "required: " + DEST_HELP)
    if require_paths:
        _check_paths(cfg)
    return cfg


def _check_paths(cfg: Config) -> None:
    """Problems visible without connecting are configuration errors (exit 2)."""
    src = cfg.source_dir
    if not src.is_dir():
        raise ConfigError(PREFIX + "SOURCE_DIR", str(src), "must be an existing directory")
    if not os.access(src, os.R_OK | os.X_OK):
        raise ConfigError(PREFIX + "SOURCE_DIR", str(src), "must be readable by this user")
    assert cfg.dest is not None
    if cfg.dest.is_remote:
        _readable_file(PREFIX + "SSH_KEY", cfg.ssh_key)
        if cfg.ssh_host_key_policy == "strict":
            _readable_file(PREFIX + "KNOWN_HOSTS", cfg.known_hosts,
                           "must be a readable known_hosts file "
                           "(or set RRDSYNC_SSH_HOST_KEY_POLICY=accept-new)")
    if cfg.rrdcached.startswith("unix:") and not Path(cfg.rrdcached[5:]).exists():
        raise ConfigError(PREFIX + "RRDCACHED", cfg.rrdcached, "the socket does not exist")


def _readable_file(name: str, path: Path, accepted: str = "must be a readable file") -> None:
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(name, str(path), accepted)
