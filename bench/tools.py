"""How each contender is started against one private sshd destination."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Target:
    """What a tool needs to reach its destination."""

    src: Path
    user: str
    port: int
    key: Path
    known_hosts: Path
    dest: Path
    workdir: Path  # scratch space for this tool (state, logs, configs)
    addr: str = "127.0.0.1"  # the destination's address (the network model's, over a link)

    @property
    def host(self) -> str:
        return f"{self.user}@{self.addr}"


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    own_python: bool = False  # the tool's own process is a Python process (py-spy-able)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def rrdsync(t: Target, extra: dict[str, str] | None = None) -> Launch:
    state, run = t.workdir / "state", t.workdir / "run"
    state.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    env = _base_env()
    env.update({
        "RRDSYNC_SOURCE_DIR": str(t.src),
        "RRDSYNC_DEST": f"{t.host}:{t.dest}",
        "RRDSYNC_SSH_PORT": str(t.port),
        "RRDSYNC_SSH_KEY": str(t.key),
        "RRDSYNC_KNOWN_HOSTS": str(t.known_hosts),
        "RRDSYNC_STATE_DIR": str(state),
        "RRDSYNC_RUN_DIR": str(run),
        "RRDSYNC_HTTP_ADDR": f"127.0.0.1:{_free_port()}",
    })
    env.update(extra or {})
    return Launch([sys.executable, "-m", "rrdsync", "run"], env, own_python=True)


def _baseline_args(t: Target) -> list[str]:
    return ["--src", str(t.src), "--host", t.host, "--dest", str(t.dest), "--port", str(t.port),
            "--key", str(t.key), "--known-hosts", str(t.known_hosts)]


def perfile(t: Target) -> Launch:
    return Launch([sys.executable, "-m", "bench.baselines.perfile", *_baseline_args(t)],
                  _base_env(), own_python=True)


def rsync_loop(t: Target, interval: float = 10.0) -> Launch:
    return Launch([sys.executable, "-m", "bench.baselines.rsync_loop", *_baseline_args(t),
                   "--interval", str(interval)], _base_env(), own_python=True)


def _lua(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lsyncd(t: Target, delay: float | None, compress: bool = False) -> Launch:
    """lsyncd's ``default.rsyncssh`` as its users write it: source, host, targetdir, the
    ssh settings a non-default port and key need, and nothing else, so rsync runs with
    lsyncd's stock rsync table (``links, times, protect_args``: ``-lts``, no ``-z``; see
    lsyncd's default-rsync.lua). ``delay=None`` keeps lsyncd's default (15 s);
    ``compress=True`` adds ``rsync = { compress = true }`` (lsyncd merges it into the stock
    table: ``-ltsz``). ``-log Exec`` records every command it spawns in lsyncd.log."""
    cfg = t.workdir / "lsyncd.lua"
    delay_line = "" if delay is None else f"  delay = {delay},\n"
    if compress:
        delay_line += "  rsync = { compress = true },\n"
    cfg.write_text(
        "settings {\n"
        "  nodaemon = true,\n"
        f"  logfile = {_lua(str(t.workdir / 'lsyncd.log'))},\n"
        f"  statusFile = {_lua(str(t.workdir / 'lsyncd.status'))},\n"
        "}\n"
        "sync {\n"
        "  default.rsyncssh,\n"
        f"  source = {_lua(str(t.src))},\n"
        f"  host = {_lua(t.host)},\n"
        f"  targetdir = {_lua(str(t.dest))},\n"
        f"{delay_line}"
        "  ssh = {\n"
        f"    port = {t.port},\n"
        f"    identityFile = {_lua(str(t.key))},\n"
        "    options = {\n"
        f"      UserKnownHostsFile = {_lua(str(t.known_hosts))},\n"
        "      StrictHostKeyChecking = \"yes\",\n"
        "      BatchMode = \"yes\",\n"
        "    },\n"
        "  },\n"
        "}\n")
    return Launch(["lsyncd", "-nodaemon", "-log", "Exec", str(cfg)], _base_env())


def variant(name: str) -> Callable[[Target], Launch]:
    """``rrdsync+SETTLE=100ms+MAX_DELAY=1s``: rrdsync with some RRDSYNC_* settings changed
    (values pass through as written: ``rrdsync+COMPRESS=zstd:1``)."""
    if name in TOOLS:
        return TOOLS[name]
    base, *settings = name.split("+")
    if base != "rrdsync" or not settings or not all("=" in x for x in settings):
        raise KeyError(name)
    extra = {f"RRDSYNC_{k}": v for k, v in (x.split("=", 1) for x in settings)}
    return lambda t: rrdsync(t, extra)


# The compression comparison (issue 12): one rrdsync per RRDSYNC_COMPRESS value.
COMPRESSION = ("rrdsync+COMPRESS=false", "rrdsync+COMPRESS=lz4", "rrdsync+COMPRESS=zstd:1",
               "rrdsync+COMPRESS=zlib")

TOOLS = {
    "rrdsync": lambda t: rrdsync(t),
    "lsyncd-delay1": lambda t: lsyncd(t, 1),
    "lsyncd-delay1-compress": lambda t: lsyncd(t, 1, compress=True),
    "lsyncd-default": lambda t: lsyncd(t, None),
    "rsync-loop-10s": lambda t: rsync_loop(t, 10.0),
    "perfile-watchdog": perfile,
}
