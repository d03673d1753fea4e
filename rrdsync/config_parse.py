"""Value parsers for the configuration table in ``config.py``.

Each parser takes the variable's name and its raw text and returns the typed value or
raises ``ConfigError`` naming the variable, the value and what would be accepted. Bounds
that rsync, ssh or Python would enforce later (or silently clamp) are enforced here, at
start, so a bad value is one line on stderr and exit 2 instead of a failing loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
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


# --- durations -------------------------------------------------------------------

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DURATION_HELP = "a duration like 500ms, 1.5s, 5m, 1h or a bare number of seconds"
# poll(2), and Python's selectors and subprocess timeouts on top of it, take a C int of
# milliseconds: a longer wait raises OverflowError ("timeout is too large") at run time.
DURATION_MAX = 24 * 86400.0
# rsync's --timeout takes whole seconds; it refuses more than 2147483647 ("number too
# large"), so DURATION_MAX is the tighter bound. 0 would mean "no timeout" to rsync.
TIMEOUT_MIN = 1.0


def parse_duration(name: str, raw: str, *, zero_ok: bool) -> float:
    """``500ms``/``1.5s``/``5m``/``1h``/``0.5``; no compound forms; at most 24 days."""
    m = _DURATION.match(raw.strip())
    if not m:
        raise ConfigError(name, raw, f"expected {DURATION_HELP}")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds == 0 and not zero_ok:
        raise ConfigError(name, raw, f"must be greater than 0 ({DURATION_HELP})")
    if seconds > DURATION_MAX:
        raise ConfigError(name, raw, "must be at most 576h (24 days: longer waits overflow"
                          " the millisecond timeouts of poll())")
    return seconds


def duration(*, zero_ok: bool) -> Callable[[str, str], float]:
    return lambda name, raw: parse_duration(name, raw, zero_ok=zero_ok)


def parse_timeout(name: str, raw: str) -> float:
    """rsync's ``--timeout`` is whole seconds, and 0 turns it off: neither is allowed."""
    seconds = parse_duration(name, raw, zero_ok=False)
    if seconds < TIMEOUT_MIN or seconds != int(seconds):
        raise ConfigError(name, raw, "expected whole seconds, at least 1s (rsync's --timeout"
                          " counts whole seconds)")
    return seconds


def show_duration(seconds: float) -> str:
    """``100ms``, ``30s``, ``5m``, ``1h``: the largest whole unit, a form
    ``parse_duration`` reads back."""
    if seconds == 0:
        return "0"
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return format((Decimal(repr(seconds)) * 1000).normalize(), "f") + "ms"


# --- simple values ----------------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
BOOL_HELP = "expected true/false/1/0/yes/no"


def parse_bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(name, raw, BOOL_HELP)


def parse_int(name: str, raw: str, *, minimum: int, maximum: int) -> int:
    text = raw.strip()
    value = int(text) if re.fullmatch(r"[0-9]{1,30}", text) else None
    if value is None or not minimum <= value <= maximum:
        raise ConfigError(name, raw, f"expected a whole number from {minimum} to {maximum}")
    return value


def integer(minimum: int, maximum: int) -> Callable[[str, str], int]:
    return lambda name, raw: parse_int(name, raw, minimum=minimum, maximum=maximum)


def port(name: str, raw: str) -> int:
    return parse_int(name, raw, minimum=1, maximum=65535)


def parse_globs(name: str, raw: str) -> tuple[str, ...]:
    globs = tuple(g.strip() for g in raw.split(",") if g.strip())
    if any("/" in g for g in globs):
        raise ConfigError(name, raw, "globs match a file's base name; '/' is not allowed")
    return globs


def parse_include(name: str, raw: str) -> tuple[str, ...]:
    globs = parse_globs(name, raw)
    if not globs:
        raise ConfigError(name, raw, "at least one glob is needed (comma-separated)")
    return globs


def choice(*choices: str, upper: bool = False) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        low = raw.strip().lower()
        if low not in choices:
            shown = [c.upper() if upper else c for c in choices]
            raise ConfigError(name, raw, "expected one of " + ", ".join(shown))
        return low.upper() if upper else low
    return parse


def abspath(name: str, raw: str) -> Path:
    text = raw.strip()
    if not text.startswith("/"):
        raise ConfigError(name, raw, "expected an absolute path")
    return Path(text)


def optional_abspath(name: str, raw: str) -> Path | None:
    return abspath(name, raw) if raw.strip() else None


V6_NEEDS_BRACKETS = "an IPv6 address needs brackets: [::]:8080"


def split_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6addr]:port`` -> (host without brackets, port); the host may be
    empty. ValueError (with the reason) for anything else, a bare IPv6 address included."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port_text) \
            or not 0 < int(port_text) < 65536:
        raise ValueError("no port from 1 to 65535")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError("unbalanced brackets")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(V6_NEEDS_BRACKETS)
    return host, int(port_text)


def show_host_port(host: str, port_: int) -> str:
    """What :func:`split_host_port` reads back (IPv6 addresses in brackets)."""
    return f"[{host}]:{port_}" if ":" in host else f"{host}:{port_}"


def parse_http_addr(name: str, raw: str) -> tuple[str, int]:
    try:
        host, port_ = split_host_port(raw)
    except ValueError as e:
        raise ConfigError(name, raw, V6_NEEDS_BRACKETS if str(e) == V6_NEEDS_BRACKETS else
                          "expected host:port with a port from 1 to 65535 (e.g. 0.0.0.0:8080,"
                          " [::]:8080)") from None
    return host or "0.0.0.0", port_


def parse_rrdcached(name: str, raw: str) -> str:
    value = raw.strip()
    accepted = "expected unix:/absolute/socket, host:port or [v6addr]:port"
    if not value:
        return ""
    if value.startswith("unix:"):
        if not value[5:].startswith("/"):
            raise ConfigError(name, raw, accepted)
        return value
    try:
        host, _port = split_host_port(value)
    except ValueError:
        raise ConfigError(name, raw, accepted) from None
    if not host:
        raise ConfigError(name, raw, accepted)
    return value


# --- compression ------------------------------------------------------------------

# Levels rsync 3.5 really uses, found by sending compressible data with every level:
# rsync takes any integer and silently clamps it (zstd to -131072..22, zlib/zlibx to
# 1..9), treats 0 as "default" for zstd but as "no compression" for zlib, sends zstd's
# -131072 uncompressed, and ignores levels for lz4. Only levels used as written are
# accepted here.
COMPRESS_LEVELS: dict[str, tuple[int, int] | None] = {
    "zstd": (-131071, 22), "lz4": None, "zlibx": (1, 9), "zlib": (1, 9)}
COMPRESS_HELP = ("expected true/false/yes/no/1/0, or an algorithm zstd, lz4, zlibx or zlib"
                 " with an optional :LEVEL (zstd 1 to 22 or -1 to -131071, zlib/zlibx 1 to 9,"
                 " lz4 none), e.g. zstd:3")


# ``true``: the algorithm both ends prefer, at level 1. Measured at opennms-20k
# (bench/README.md, "Compression"): zstd at level 1 sends the same bytes as rsync's
# default level 3 (492.5 MB first sync over the WAN, 485.8 against 485.5 MB on the LAN)
# and as few per update, for a quarter less sender CPU (11.8 against 15.5 s on the LAN);
# zlib (an rsync before 3.2 at one end) at level 1 keeps its CPU from doubling the lag.
AUTO_LEVEL = 1


def parse_compress(name: str, raw: str) -> tuple[str, int | None]:
    """``(compress, level)``: "auto" (rsync negotiates the algorithm; level 1), "none",
    or an algorithm with rsync's default level unless one is given."""
    low = raw.strip().lower()
    if low in _TRUE:
        return "auto", AUTO_LEVEL
    if low in _FALSE:
        return "none", None
    algorithm, sep, level_text = low.partition(":")
    if algorithm not in COMPRESS_LEVELS:
        raise ConfigError(name, raw, COMPRESS_HELP)
    if not sep:
        return algorithm, None
    bounds = COMPRESS_LEVELS[algorithm]
    if bounds is None or not re.fullmatch(r"-?[0-9]{1,7}", level_text):
        raise ConfigError(name, raw, COMPRESS_HELP)
    level = int(level_text)
    if level == 0 or not bounds[0] <= level <= bounds[1]:
        raise ConfigError(name, raw, COMPRESS_HELP)
    return algorithm, level


def show_compress(compress: str, level: int | None) -> str:
    if compress in ("auto", "none"):
        return "true" if compress == "auto" else "false"
    return compress if level is None else f"{compress}:{level}"


# --- Kubernetes service links -------------------------------------------------------

_SERVICE_LINK = re.compile(
    r"^RRDSYNC_(?:[A-Z0-9_]+_)?"
    r"(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT_[0-9]+_(?:TCP|UDP|SCTP)(?:_[A-Z0-9_]+)?)$"
)
_LINK_PORT = re.compile(r"^RRDSYNC_(?:[A-Z0-9_]+_)?PORT$")
_LINK_VALUE = re.compile(r"^(?:tcp|udp|sctp)://", re.IGNORECASE)


def is_service_link(name: str, value: str) -> bool:
    """Kubernetes service-link variables (any Service, ``rrdsync`` itself included)."""
    if _SERVICE_LINK.match(name):
        return True
    return bool(_LINK_PORT.match(name)) and bool(_LINK_VALUE.match(value))
