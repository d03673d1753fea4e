"""Running a one-shot ``rrdsync`` command the way an operator does in the container: as the
image's user (UID 10001, group 0), with a clean RRDSYNC_* environment, stdout and stderr
kept apart (the report, and what went wrong)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.fixtures.sshd import WORKER_GID, WORKER_UID, Sshd, give_to_worker


def rrdsync(env: dict[str, str], *args: str, home: Path, timeout: float = 120,
            as_root: bool = False) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
    user: dict[str, object] = {}
    if not as_root and os.geteuid() == 0:
        home.mkdir(exist_ok=True)
        give_to_worker(home)
        clean["HOME"] = str(home)
        user = {"user": WORKER_UID, "group": WORKER_GID, "extra_groups": []}
    return subprocess.run([sys.executable, "-m", "rrdsync", *args], env={**clean, **env},
                          capture_output=True, timeout=timeout, **user)  # type: ignore[call-overload]


@contextlib.contextmanager
def receiver_busy(server: Sshd, seconds: float) -> Iterator[None]:
    """Hold rrsync's one-run-per-directory lock on the server's directory for a while,
    as an rsync from a running worker does."""
    fd = os.open(server.dest, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    timer = threading.Timer(seconds, lambda: fcntl.flock(fd, fcntl.LOCK_UN))
    timer.start()
    try:
        yield
    finally:
        timer.join()
        os.close(fd)


def second_destination(first: Sshd, second: Sshd, env: dict[str, str],
                       known_hosts: Path) -> dict[str, str]:
    """``env`` replicating to both servers (``ssh://`` entries: each has its own port),
    with one client key and one known_hosts file for both."""
    second.client_key = first.client_key
    second.write_authorized_keys()
    known_hosts.write_text(first.known_hosts.read_text() + second.known_hosts.read_text())
    dests = ",".join(f"ssh://{s.destination.split(':', 1)[0]}:{s.port}/"
                     for s in (first, second))
    return {**env, **first.env(), "RRDSYNC_DEST": dests,
            "RRDSYNC_KNOWN_HOSTS": str(known_hosts)}
