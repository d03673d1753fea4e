"""Many OpenNMS instances into one receiver (issue 11, fan-in): two sidecars with their own
keys push into ONE real sshd whose authorized_keys is rendered by ``rrdsync.receiver`` with
``dir=a`` and ``dir=b`` lines. Each tree lands in its own subdirectory only, even where
both trees hold the same relative paths, and a sidecar with key ``a`` aiming at ``../b``
is refused by rrsync, with real rsync runs from ``rrdsync once`` and ``rrdsync check``.
The single-key confinement cases (reads, deletes, symlinks) are in test_receiver_dirs.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rrdsync import receiver
from rrdsync.config import ReceiverConfig
from tests.fixtures.rrd import (
    RrdsyncProcess,
    differences,
    included_files,
    make_source,
    make_tree,
    rrd_update,
)
from tests.fixtures.sshd import TEST_USER, Sshd, give_to_worker, keygen
from tests.integration.commands import rrdsync
from tests.integration.test_receiver_dirs import _as_user

pytestmark = pytest.mark.slow


@dataclass
class FanIn:
    server: Sshd
    keys: dict[str, Path]

    def env(self, world: Path, name: str, key: str, dest_path: str = "/") -> dict[str, str]:
        """A sidecar ``name`` (own source, state and run dirs) pushing with ``key``."""
        src = world / f"src-{name}"
        if not src.exists():
            make_source(src)
        dirs = {}
        for kind in ("state", "run"):
            d = world / f"{kind}-{name}"
            d.mkdir(exist_ok=True)
            give_to_worker(d)
            dirs[kind] = str(d)
        return {
            "RRDSYNC_SOURCE_DIR": str(src),
            "RRDSYNC_STATE_DIR": dirs["state"],
            "RRDSYNC_RUN_DIR": dirs["run"],
            "RRDSYNC_SETTLE": "100ms",
            "RRDSYNC_MAX_DELAY": "1s",
            "RRDSYNC_TIMEOUT": "10s",
            "RRDSYNC_LOG_LEVEL": "DEBUG",
            "RRDSYNC_DEST": f"{TEST_USER}@127.0.0.1:{dest_path}",
            "RRDSYNC_SSH_PORT": str(self.server.port),
            "RRDSYNC_SSH_KEY": str(self.keys[key]),
            "RRDSYNC_KNOWN_HOSTS": str(self.server.known_hosts),
        }


@pytest.fixture
def fan_in(world_dir: Path) -> Iterator[FanIn]:
    """One receiver, keys ``a`` and ``b`` confined to RECEIVE_DIR/a and RECEIVE_DIR/b, its
    authorized_keys and directories made by the receiver role's own code."""
    server = Sshd(workdir=world_dir / "sshd", dest=world_dir / "recv")
    keys = {}
    for name in ("a", "b"):
        keys[name] = server.workdir / f"id_{name}"
        keygen(keys[name], f"sidecar-{name}")
        give_to_worker(keys[name])
    pub = {n: k.with_suffix(".pub").read_text().strip() for n, k in keys.items()}
    cfg = ReceiverConfig(receive_dir=server.dest, authorized_keys=world_dir / "keys")
    parsed = receiver.parse_authorized_keys(cfg, f"dir=a {pub['a']}\ndir=b {pub['b']}\n")
    _as_user(server.user.pw_uid, server.user.pw_gid, lambda: receiver.make_key_dirs(cfg, parsed))
    (server.workdir / "authorized_keys").write_text(receiver.render_keys(cfg, parsed))
    server.start()
    yield FanIn(server, keys)
    server.stop()


def _identical(w: RrdsyncProcess, src: Path, dst: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    diff = differences(src, dst)
    while diff and time.monotonic() < deadline:
        time.sleep(0.2)
        diff = differences(src, dst)
    assert not diff, f"{len(diff)} differ at {dst}, e.g. {diff[:5]}\n{w.output()[-4000:]}"


def test_two_sidecars_into_one_receiver(fan_in: FanIn, world_dir, start_worker):
    """Two workers, same relative paths, different contents: each tree arrives, and stays
    up to date, under its own directory only; one SSH connection per sidecar."""
    recv = fan_in.server.dest
    envs = {n: fan_in.env(world_dir, n, n) for n in ("a", "b")}
    srcs = {n: Path(e["RRDSYNC_SOURCE_DIR"]) for n, e in envs.items()}
    files = {"a": make_tree(srcs["a"], nodes=2, resources=2, files=2),
             "b": make_tree(srcs["b"], nodes=2, resources=1, files=2)}
    files["b"] += make_tree(srcs["b"], nodes=1, resources=1, files=1, foreign_source=True)
    for f in files["b"]:
        rrd_update(f, value=999)  # same paths as a's, other bytes
    workers = {n: start_worker(e) for n, e in envs.items()}
    for n, w in workers.items():
        w.wait_event("reconcile_finished", pred=lambda e: e.get("ok"))
        _identical(w, srcs[n], recv / n)
    for _ in range(3):
        for n in ("a", "b"):
            for f in files[n]:
                rrd_update(f, value=1 if n == "a" else 999)
    for n, w in workers.items():
        _identical(w, srcs[n], recv / n)
        assert w.stop() == 0

    assert sorted(os.listdir(recv)) == ["a", "b"]
    for n in ("a", "b"):
        # nothing but its own tree in each directory (same relative paths, own bytes)
        assert included_files(recv / n) == included_files(srcs[n])
    same = os.path.relpath(files["a"][0], srcs["a"])
    assert (recv / "a" / same).read_bytes() != (recv / "b" / same).read_bytes()
    assert fan_in.server.connections() == 2


@pytest.mark.parametrize("dest_path", ["/../b", "/sub/../../b"])
def test_key_a_aiming_at_b_is_refused(fan_in: FanIn, world_dir, dest_path):
    """A sidecar holding key ``a`` configured with b's directory: ``check`` and ``once``
    fail (exit 1) on rrsync's refusal, and b's tree is untouched."""
    recv = fan_in.server.dest
    env_b = fan_in.env(world_dir, "b", "b")
    make_tree(Path(env_b["RRDSYNC_SOURCE_DIR"]), nodes=1, resources=1, files=2)
    r = rrdsync(env_b, "once", home=world_dir / "home")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    before = {p: (recv / "b" / p).read_bytes() for p in included_files(recv / "b")}
    assert before

    env = fan_in.env(world_dir, "intruder", "a", dest_path)
    src = Path(env["RRDSYNC_SOURCE_DIR"])
    make_tree(src, nodes=1, resources=1, files=2)
    for f in src.rglob("*.rrd"):
        rrd_update(f, value=13)  # other bytes at b's paths
    for command in ("check", "once"):
        r = rrdsync(env, command, home=world_dir / "home")
        out = (r.stdout + r.stderr).decode(errors="replace")
        assert r.returncode == 1, (command, out[-3000:])
        assert "do not use .. in arg" in out, (command, out[-3000:])
    assert {p: (recv / "b" / p).read_bytes() for p in included_files(recv / "b")} == before
    assert not (recv / "b" / ".rrdsync-probe").exists()
    assert not list((recv / "a").iterdir()), "nothing reached a's own directory either"
