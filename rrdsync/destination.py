"""The entries of ``RRDSYNC_DEST``: where files go, each replicated on its own.

Forms (comma-separated, any number):

- ``[user@]host:/abs/path`` and ``[user@][v6addr]:/abs/path``: SSH, port from
  ``RRDSYNC_SSH_PORT``;
- ``ssh://[user@]host[:port]/abs/path`` and ``ssh://[user@][v6addr][:port]/abs/path``:
  SSH with its own port;
- ``/abs/path``: a local directory (or an NFS mount).

An IPv6 address must be in brackets: rsync reads ``host::x`` as its daemon syntax, and it
strips the brackets itself before calling ssh (``user@[::1]:/p/`` runs ``ssh -l user ::1``;
checked with an ``-e`` script that prints its argv).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import posixpath
import re
from dataclasses import dataclass, field

from .config_parse import ConfigError

DEST_HELP = ("each entry is [user@]host:/abs/path, [user@][ipv6]:/abs/path,"
             " ssh://[user@]host[:port]/abs/path or /abs/path; entries are comma-separated")

_USER = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_SCP = re.compile(rf"^(?:(?P<user>{_USER})@)?(?P<host>\[[^\]]*\]|[^:@/\[\]]+):(?P<path>.*)$")
_URL_AUTH = re.compile(
    rf"^(?:(?P<user>{_USER})@)?(?P<host>\[[^\]]*\]|[^:@/\[\]]+)(?::(?P<port>[^/]*))?$")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


@dataclass(frozen=True)
class Destination:
    """One destination. ``label`` (the entry minus any ``user@``) names it in metrics and
    logs; ``key`` names its files (journal, control socket) and is unique per entry."""

    raw: str = ""             # the entry as written in RRDSYNC_DEST (built from the parts if "")
    path: str = "/"           # absolute path at the destination
    host: str | None = None   # None: local path; an IPv6 literal WITHOUT brackets
    user: str | None = None
    port: int | None = None   # resolved: ssh://host:PORT, else RRDSYNC_SSH_PORT; None if local
    label: str = field(init=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        if not self.raw:
            object.__setattr__(self, "raw", self.rsync_target().rstrip("/") or "/")
        label = self.raw
        if self.user:
            scheme = "ssh://" if label.startswith("ssh://") else ""
            label = scheme + label[len(scheme):].removeprefix(f"{self.user}@")
        object.__setattr__(self, "label", label)
        safe = _KEY_UNSAFE.sub("_", label).strip("._-")[:40] or "dest"
        digest = hashlib.sha256(label.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        object.__setattr__(self, "key", f"{safe}-{digest}")

    @property
    def is_remote(self) -> bool:
        return self.host is not None

    def rsync_target(self) -> str:
        """rsync's destination argument, always with a trailing slash (the tree root)."""
        base = self.path if self.path.endswith("/") else self.path + "/"
        if self.host is None:
            return base
        who = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{who}{host}:{base}"

    def ssh_host(self) -> str:
        """ssh's destination argument (no brackets, no port: the port comes from the
        ssh config written for this destination)."""
        if self.host is None:
            raise ValueError(f"{self.label} is a local destination")
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return self.label


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _host(text: str) -> str:
    """A host name or bracketed IPv6 literal; returns the host without brackets."""
    if text.startswith("["):
        if not _is_ipv6(text[1:-1]):
            raise ValueError(f"{text} is not an IPv6 address in brackets")
        return text[1:-1]
    if not _HOST.match(text):
        raise ValueError(f"{text!r} is not a host name or address")
    return text


def _parse_entry(entry: str) -> Destination:
    """One entry, or ValueError with what is wrong with it."""
    if not entry:
        raise ValueError("empty entry (two commas in a row, or a comma at an end?)")
    if any(ord(c) < 32 or ord(c) == 127 for c in entry):
        raise ValueError("contains a control character")
    if entry.startswith("/"):
        return Destination(raw=entry, path=entry)
    if entry.lower().startswith("ssh://"):
        authority, slash, rest = entry[6:].partition("/")
        m = _URL_AUTH.match(authority)
        if not m:
            raise ValueError("expected ssh://[user@]host[:port]/abs/path"
                             " (an IPv6 address in brackets)")
        port = None
        if m["port"] is not None:
            if not re.fullmatch(r"[0-9]{1,5}", m["port"]) or not 0 < int(m["port"]) < 65536:
                raise ValueError(f"bad port {m['port']!r} (expected 1 to 65535)")
            port = int(m["port"])
        if not slash:
            raise ValueError("no path: expected ssh://[user@]host[:port]/abs/path")
        return Destination(raw=entry, path="/" + rest, host=_host(m["host"]), user=m["user"],
                           port=port)
    if "://" in entry:
        raise ValueError("only ssh:// URLs are supported (not rsync daemons)")
    if "[" not in entry and _is_ipv6(entry.split(":/", 1)[0].rpartition("@")[2]):
        raise ValueError("an IPv6 address needs brackets: [user@][fd00::5]:/abs/path"
                         " (rsync reads host::x as its daemon syntax)")
    m = _SCP.match(entry)
    if not m:
        if ":" not in entry:
            raise ValueError("a local path must be absolute")
        raise ValueError("not a destination")
    if m["path"].startswith(":"):
        raise ValueError("host::module is rsync daemon syntax, not supported")
    if not m["path"].startswith("/"):
        raise ValueError("the path must be absolute")
    return Destination(raw=entry, path=m["path"], host=_host(m["host"]), user=m["user"])


def parse_destinations(name: str, raw: str) -> tuple[Destination, ...]:
    """Every entry of ``raw`` (ports not yet resolved; see :func:`resolve_ports`)."""
    entries = [e.strip() for e in raw.split(",")]
    out = []
    for number, entry in enumerate(entries, 1):
        try:
            out.append(_parse_entry(entry))
        except ValueError as e:
            where = "" if len(entries) == 1 else f"entry {number} {entry!r}: "
            raise ConfigError(name, raw, f"{where}{e}; {DEST_HELP}") from None
    return tuple(out)


def _identity(d: Destination) -> tuple[str | None, int | None, str]:
    host = d.host
    if host is not None:
        host = str(ipaddress.IPv6Address(host)) if ":" in host else host.lower()
    path = posixpath.normpath(d.path)
    return host, d.port, path


def resolve_ports(name: str, raw: str, dests: tuple[Destination, ...],
                  ssh_port: int) -> tuple[Destination, ...]:
    """Give each SSH destination without its own port ``RRDSYNC_SSH_PORT``, then refuse
    two entries that are one destination (same host, port and path, whatever the user):
    two workers would race on the same files."""
    resolved = tuple(dataclasses.replace(d, port=ssh_port)
                     if d.is_remote and d.port is None else d for d in dests)
    seen: dict[tuple[str | None, int | None, str], int] = {}
    for number, d in enumerate(resolved, 1):
        first = seen.setdefault(_identity(d), number)
        if first != number:
            raise ConfigError(name, raw, f"entry {number} {d.raw!r} is the same destination as"
                              f" entry {first} {resolved[first - 1].raw!r} (same host, port"
                              " and path)")
    return resolved
