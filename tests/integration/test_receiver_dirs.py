"""A receiver key with ``dir=NAME``, against a real sshd and rsync through rrsync: it lands in
RECEIVE_DIR/NAME and can neither escape it, read, nor delete; a plain key keeps the root."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rrdsync import receiver
from rrdsync.config import ReceiverConfig
from tests.fixtures.sshd import TEST_USER, Sshd, keygen


def _as_user(uid: int, gid: int, fn) -> None:
    """Run ``fn`` in a child as another user (the receiver runs as its own user)."""
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            fn()
            ok = True
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


class Receiver:
    def __init__(self, sshd: Sshd, keys: dict[str, Path]) -> None:
        self.sshd = sshd
        self.keys = keys

    def rsync(self, key: str, *args: str) -> subprocess.CompletedProcess:
        ssh = (f"ssh -F /dev/null -i {self.keys[key]} -p {self.sshd.port} -o BatchMode=yes"
               f" -o IdentitiesOnly=yes -o UserKnownHostsFile={self.sshd.known_hosts}"
               " -o StrictHostKeyChecking=yes")
        return subprocess.run(["rsync", "-e", ssh, *args], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)

    def push(self, key: str, src: Path, target: str = "/", *extra: str):
        return self.rsync(key, "-r", *extra, f"{src}/", f"{TEST_USER}@127.0.0.1:{target}")


@pytest.fixture
def recv(world_dir: Path) -> Iterator[Receiver]:
    server = Sshd(workdir=world_dir / "sshd", dest=world_dir / "recv")
    keys = {}
    for name in ("a", "b", "plain"):
        keys[name] = server.workdir / f"id_{name}"
        keygen(keys[name], name)
    pub = {n: k.with_suffix(".pub").read_text().strip() for n, k in keys.items()}
    cfg = ReceiverConfig(receive_dir=server.dest, authorized_keys=world_dir / "keys")
    text = f"dir=a {pub['a']}\ndir=b {pub['b']}\n{pub['plain']}\n"
    parsed = receiver.parse_authorized_keys(cfg, text)
    # created at receiver start, by the receiver's user (the one sshd logs in here)
    _as_user(server.user.pw_uid, server.user.pw_gid, lambda: receiver.make_key_dirs(cfg, parsed))
    assert (server.dest / "a").stat().st_uid == server.user.pw_uid
    (server.workdir / "authorized_keys").write_text(receiver.render_keys(cfg, parsed))
    server.start()
    yield Receiver(server, keys)
    server.stop()


@pytest.fixture
def src(world_dir: Path) -> Path:
    d = world_dir / "src"
    (d / "node1").mkdir(parents=True)
    (d / "node1" / "x.rrd").write_bytes(b"rrd" * 100)
    return d


def test_dir_key_lands_in_its_directory(recv, src):
    r = recv.push("a", src)
    assert r.returncode == 0, r.stderr
    dest = recv.sshd.dest
    assert (dest / "a" / "node1" / "x.rrd").read_bytes() == b"rrd" * 100
    assert not (dest / "node1").exists() and not (dest / "b" / "node1").exists()
    r = recv.push("a", src, "/sub/")  # "/" is its own root
    assert r.returncode == 0, r.stderr
    assert (dest / "a" / "sub" / "node1" / "x.rrd").exists()


@pytest.mark.parametrize("target", ["../b/", "/../b/", "../", "sub/../../b/"])
def test_dir_key_cannot_write_outside(recv, src, target):
    r = recv.push("a", src, target)
    assert r.returncode != 0 and "do not use .. in arg" in r.stderr
    dest = recv.sshd.dest
    assert not (dest / "b" / "node1").exists() and not (dest / "node1").exists()


def test_dir_key_cannot_read(recv, world_dir):
    (recv.sshd.dest / "a" / "secret.rrd").write_text("s")
    out = world_dir / "pulled"
    out.mkdir()
    r = recv.rsync("a", "-r", f"{TEST_USER}@127.0.0.1:/", f"{out}/")
    assert r.returncode != 0 and "write-only" in r.stderr
    assert not list(out.iterdir())


def test_dir_key_cannot_delete(recv, src, world_dir):
    assert recv.push("a", src).returncode == 0
    kept = recv.sshd.dest / "a" / "node1" / "x.rrd"
    empty = world_dir / "empty"
    (empty / "node1").mkdir(parents=True)
    r = recv.push("a", empty, "/", "--delete")
    assert r.returncode != 0 and "--delete has been disabled" in r.stderr and kept.exists()
    listing = world_dir / "list"
    listing.write_bytes(b"node1/x.rrd\0")
    r = recv.rsync("a", "--from0", f"--files-from={listing}", "--delete-missing-args",
                   f"{empty}/", f"{TEST_USER}@127.0.0.1:/")
    assert r.returncode != 0 and kept.exists()


def test_plain_key_keeps_the_receive_dir(recv, src):
    r = recv.push("plain", src)
    assert r.returncode == 0, r.stderr
    assert (recv.sshd.dest / "node1" / "x.rrd").exists()
    assert not (recv.sshd.dest / "a" / "node1").exists()


def test_dir_key_cannot_escape_through_a_symlink(recv, src, world_dir):
    """A symlink the confined key pushed (rrsync allows -l) must not lead a later push out:
    rrsync refuses an argument that resolves outside, rsync replaces the link by a real
    directory when a tree goes through it, and -K (follow dir links) is disabled."""
    links = world_dir / "links"
    links.mkdir()
    (links / "esc").symlink_to("../b")
    assert recv.push("a", links, "/", "-l").returncode == 0
    assert (recv.sshd.dest / "a" / "esc").is_symlink()
    r = recv.push("a", src, "/esc/")
    assert r.returncode != 0 and "unsafe arg" in r.stderr
    tree = world_dir / "tree"
    (tree / "esc" / "node1").mkdir(parents=True)
    (tree / "esc" / "node1" / "y.rrd").write_text("y")
    r = recv.push("a", tree, "/", "--keep-dirlinks")
    assert r.returncode != 0 and "-K has been disabled" in r.stderr
    assert recv.push("a", tree, "/").returncode == 0
    landed = recv.sshd.dest / "a" / "esc"
    assert not landed.is_symlink() and (landed / "node1" / "y.rrd").exists()
    assert not list((recv.sshd.dest / "b").iterdir())
