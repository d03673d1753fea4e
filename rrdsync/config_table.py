"""The table of every ``RRDSYNC_*`` variable: the one place a setting is declared.

A row gives the variable's parser, its default as the README shows it (parsed by the same
parser, so the documented default is the real one), the roles that use it, whether its
value is secret, and its meaning (README text). ``config.py`` builds the per-role
dataclasses and loaders from it, ``rrdsync config`` prints it (secrets redacted), and
``config_doc.py`` generates README.md's variable tables from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import config_parse as p
from .config_parse import PREFIX
from .destination import DEST_HELP, parse_destinations

SIDECAR, SERVE, RECEIVER = "sidecar", "serve", "receiver"
ROLES = (SIDECAR, SERVE, RECEIVER)
REDACTED = "<redacted>"


@dataclass(frozen=True)
class Var:
    """One row of the table."""

    name: str                             # RRDSYNC_...
    parse: Callable[[str, str], Any]      # (name, raw) -> value; raises ConfigError
    default: str | None                   # text, parsed by ``parse``; None: required/unset
    roles: tuple[str, ...]
    meaning: str                          # README text (Markdown)
    shown: str | None = None              # README default column, when not `default`
    required: str = ""                    # set: the error when unset (no default)
    secret: bool = False                  # redacted in ``rrdsync config``
    fields: tuple[str, ...] = ()          # dataclass fields it fills (default: its name)
    show: Callable[[Any], str] | None = None  # config -> text ``parse`` reads back

    def __post_init__(self) -> None:
        if not self.fields:
            object.__setattr__(self, "fields", (self.name.removeprefix(PREFIX).lower(),))

    def assign(self, value: Any) -> dict[str, Any]:
        """Field name -> value (a row filling several fields parses to a tuple)."""
        if len(self.fields) == 1:
            return {self.fields[0]: value}
        return dict(zip(self.fields, value, strict=True))


_ALL, _WORKER, _STATUS = ROLES, (SIDECAR,), (SIDECAR, SERVE)

TABLE: tuple[Var, ...] = (
    Var("RRDSYNC_SOURCE_DIR", p.abspath, "/data", _WORKER,
        "tree to replicate; must exist and be readable"),
    Var("RRDSYNC_DEST", parse_destinations, None, _WORKER,
        "one destination or several, comma-separated, each replicated on its own (see"
        " below): `[user@]host:/abs/path` or `[user@][v6addr]:/abs/path` (SSH, port from"
        " `RRDSYNC_SSH_PORT`), `ssh://[user@]host[:port]/abs/path` (SSH with its own port),"
        " or `/abs/path` (local or NFS mount)",
        shown="required", required="required; " + DEST_HELP, fields=("dests",),
        show=lambda c: ",".join(d.raw for d in c.dests)),
    Var("RRDSYNC_SSH_PORT", p.port, "22", _WORKER,
        "SSH port of the destinations that do not name one"),
    Var("RRDSYNC_SSH_KEY", p.abspath, "/etc/rrdsync/ssh/id", _WORKER,
        "private key file; any file mode is accepted (a private 0600 copy is used)"),
    Var("RRDSYNC_KNOWN_HOSTS", p.abspath, "/etc/rrdsync/ssh/known_hosts", _WORKER,
        "required for SSH unless `RRDSYNC_SSH_HOST_KEY_POLICY=accept-new`"),
    Var("RRDSYNC_SSH_HOST_KEY_POLICY", p.choice("strict", "accept-new"), "strict", _WORKER,
        "`strict`, or `accept-new` (a host not yet known is learned into"
        " `RRDSYNC_STATE_DIR/known_hosts`; a known host whose key differs is always refused)"),
    Var("RRDSYNC_INCLUDE", p.parse_include, "*.rrd,*.jrb,*.meta,*.properties", _WORKER,
        "comma-separated globs on the file's base name"),
    Var("RRDSYNC_EXCLUDE", p.parse_globs, "", _WORKER,
        "comma-separated globs; wins over include. `lost+found` at the source root is never"
        " replicated nor descended into"),
    Var("RRDSYNC_SETTLE", p.duration(zero_ok=True), "100ms", _WORKER,
        "a file is sent once it has been quiet this long (`0`: at once)..."),
    Var("RRDSYNC_MAX_DELAY", p.duration(zero_ok=False), "2s", _WORKER,
        "...or once its first unsent change is this old, whichever comes first; not shorter"
        " than `RRDSYNC_SETTLE`"),
    Var("RRDSYNC_BATCH_MAX", p.integer(1, 1_000_000), "5000", _WORKER,
        "most files in one rsync run"),
    Var("RRDSYNC_DELETE", p.parse_bool, "false", _WORKER,
        "mirror deletions (guarded: never when the source root is missing, empty, or on"
        " another filesystem than at the first run)"),
    Var("RRDSYNC_RESCAN_INTERVAL", p.duration(zero_ok=True), "1h", _WORKER,
        "full reconciliation period; `0` turns it off"),
    Var("RRDSYNC_WATCH", p.choice("inotify", "poll"), "inotify", _WORKER,
        "`inotify` or `poll` (network filesystems)"),
    Var("RRDSYNC_POLL_INTERVAL", p.duration(zero_ok=False), "30s", _WORKER,
        "for `poll` (and the fallback when the inotify watch limit is reached)"),
    # rsync forwards --bwlimit to the receiving side as a C int: 2147483648 arrives as
    # --bwlimit=-2147483648 and is refused there, 4294967296 silently becomes unlimited.
    Var("RRDSYNC_BWLIMIT", p.integer(0, 2**31 - 1), "0", _WORKER,
        "KiB/s, `0` = unlimited; at most 2147483647 (what rsync can pass to the other end)"),
    Var("RRDSYNC_COMPRESS", p.parse_compress, "true", _WORKER,
        "rsync compression over SSH: `true` (the algorithm both ends prefer, at level 1),"
        " `false`, or one"
        " of `zstd`, `lz4`, `zlibx`, `zlib` with an optional level: `zstd:3` (zstd 1 to 22"
        " or -1 to -131071, zlib and zlibx 1 to 9, lz4 none)",
        fields=("compress", "compress_level"),
        show=lambda c: p.show_compress(c.compress, c.compress_level)),
    Var("RRDSYNC_TIMEOUT", p.parse_timeout, "60s", _WORKER,
        "I/O timeout for rsync (whole seconds) and for SSH connects and keep-alives; no"
        " transfer hangs longer"),
    Var("RRDSYNC_HTTP_ADDR", p.parse_http_addr, "0.0.0.0:8080", _STATUS,
        "status server address (`host:port`, `[v6addr]:port`)",
        show=lambda c: p.show_host_port(*c.http_addr)),
    Var("RRDSYNC_LIVENESS_TIMEOUT", p.duration(zero_ok=False), "60s", _STATUS,
        "a worker silent this long is not live"),
    Var("RRDSYNC_MAX_LAG", p.duration(zero_ok=False), "5m", _STATUS,
        "not ready while a destination's oldest unsent change is older"),
    Var("RRDSYNC_STATE_DIR", p.abspath, "/var/lib/rrdsync", _WORKER,
        "pending-change journal (a volume keeps it across restarts); created if missing,"
        " must be writable"),
    Var("RRDSYNC_RUN_DIR", p.abspath, "/run/rrdsync", _ALL,
        "runtime files shared by the worker and the status server; keep the path short (it"
        " holds the SSH control sockets)"),
    Var("RRDSYNC_LOG_LEVEL", p.choice("debug", "info", "warning", "error", "critical",
                                      upper=True), "INFO", _ALL,
        "`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`"),
    Var("RRDSYNC_LOG_FORMAT", p.choice("json", "text"), "json", _ALL, "`json` or `text`"),
    Var("RRDSYNC_RRDCACHED", p.parse_rrdcached, "", _WORKER,
        "`unix:/path` or `host:port` of an rrdcached to flush before sending (for writers"
        " that go through rrdcached; OpenNMS's jrrd2 writes files directly)"),
    Var("RRDSYNC_RRDCACHED_ROOT", p.optional_abspath, None, _WORKER,
        "the source tree's path as the writer and rrdcached see it (e.g."
        " `/opt/opennms/share/rrd` while the sidecar mounts it at `/data`)",
        shown="`RRDSYNC_SOURCE_DIR`", show=lambda c: str(c.rrdcached_path_root)),
    Var("RRDSYNC_RECEIVE_DIR", p.abspath, "/data", (RECEIVER,),
        "where pushed files land (rrsync write-only root)"),
    Var("RRDSYNC_AUTHORIZED_KEYS", p.abspath, "/etc/rrdsync/receiver/authorized_keys",
        (RECEIVER,),
        "public keys allowed to push, one per line, plain (the receiver adds the forced"
        " rrsync command). A line may start with `dir=NAME ` (NAME: letters, digits, `._-`):"
        " that key is confined to `RRDSYNC_RECEIVE_DIR/NAME` (created at start) and cannot"
        " see or touch anything else: one receiver, many OpenNMS instances"),
    Var("RRDSYNC_LISTEN_PORT", p.port, "2222", (RECEIVER,), "sshd port (unprivileged)"),
    Var("RRDSYNC_HOST_KEY_DIR", p.abspath, "/var/lib/rrdsync/hostkeys", (RECEIVER,),
        "sshd host keys: used if present (a Secret or volume), generated on first start if"
        " absent; the receiver logs its `known_hosts` line at every start"),
    Var("RRDSYNC_RECEIVER_ALLOW_DELETE", p.parse_bool, "false", (RECEIVER,),
        "without it the forced command is `rrsync -wo -no-del`: a stolen sidecar key can add"
        " and replace files but never delete the archive"),
)

BY_NAME: dict[str, Var] = {v.name: v for v in TABLE}
NAMES: frozenset[str] = frozenset(BY_NAME)


def _parsed_defaults() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var in TABLE:
        value = None if var.default is None else var.parse(var.name, var.default)
        out.update(var.assign(value))
    return out


DEFAULTS: dict[str, Any] = _parsed_defaults()


def rows(role: str) -> tuple[Var, ...]:
    """The rows a role validates, in table order."""
    return tuple(v for v in TABLE if role in v.roles)
