"""The receiver's authorized_keys: plain keys, optional dir=NAME, nothing else."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rrdsync import receiver
from rrdsync.config import ConfigError, ReceiverConfig

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA a"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB b"
KEY_C = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= c@host"


@pytest.fixture
def cfg(tmp_path: Path) -> ReceiverConfig:
    recv = tmp_path / "recv dir"  # a space: the forced command quotes it
    recv.mkdir()
    keys = tmp_path / "authorized_keys"
    return ReceiverConfig(receive_dir=recv, authorized_keys=keys, run_dir=tmp_path / "run",
                          host_key_dir=tmp_path / "hostkeys")


def forced(line: str) -> list[str]:
    """The rrsync argv sshd will run for one rendered line."""
    assert line.startswith('command="') and '",restrict ' in line
    command = line[len('command="'):line.index('",restrict ')]
    return shlex.split(command.replace('\\"', '"'))


def test_plain_and_dir_keys(cfg):
    text = f"# comment\n\n{KEY_A}\ndir=site-1.x_y {KEY_B}\n  dir=b   {KEY_C}\n"
    keys = receiver.parse_authorized_keys(cfg, text)
    assert [(k.line, k.dir) for k in keys] == [(3, None), (4, "site-1.x_y"), (5, "b")]
    lines = receiver.render_keys(cfg, keys).splitlines()
    assert len(lines) == 3
    recv = str(cfg.receive_dir)
    assert forced(lines[0]) == [receiver.RRSYNC, "-wo", "-no-del", recv]
    assert forced(lines[1]) == [receiver.RRSYNC, "-wo", "-no-del", f"{recv}/site-1.x_y"]
    assert forced(lines[2])[-1] == f"{recv}/b"
    assert lines[0].endswith(f",restrict {KEY_A}") and lines[1].endswith(f",restrict {KEY_B}")


def test_allow_delete_drops_no_del(cfg):
    cfg = ReceiverConfig(receive_dir=cfg.receive_dir, receiver_allow_delete=True)
    keys = receiver.parse_authorized_keys(cfg, f"dir=a {KEY_A}\n")
    (line,) = receiver.render_keys(cfg, keys).splitlines()
    assert forced(line) == [receiver.RRSYNC, "-wo", f"{cfg.receive_dir}/a"]


@pytest.mark.parametrize("line", [
    f"dir=.. {KEY_A}", f"dir=. {KEY_A}", f"dir=a/b {KEY_A}", f"dir= {KEY_A}",
    f'dir="a" {KEY_A}', f"dir=a,restrict {KEY_A}", f"dir=a b {KEY_A}", f"dir=ä {KEY_A}",
    f'command="/bin/sh" {KEY_A}', f"restrict {KEY_A}", f"no-pty,{KEY_A}",
    f'dir=a command="x" {KEY_A}', f"dir=a dir=b {KEY_A}", "dir=a", "ssh-ed25519",
    "ssh-ed25519 not*base64", f"from=\"10.0.0.1\" {KEY_A}", f"DIR=a {KEY_A}",
])
def test_bad_lines_name_the_file_and_line(cfg, line):
    with pytest.raises(ConfigError) as e:
        receiver.parse_authorized_keys(cfg, f"{KEY_B}\n# ok\n{line}\n")
    assert e.value.name == "RRDSYNC_AUTHORIZED_KEYS" and "line 3:" in str(e.value)
    assert "\n" not in str(e.value)


def test_the_same_key_twice_is_refused(cfg):
    with pytest.raises(ConfigError, match="line 2: the same key as line 1"):
        receiver.parse_authorized_keys(cfg, f"dir=a {KEY_A}\ndir=b {KEY_A} other comment\n")


def test_no_key_at_all(cfg):
    with pytest.raises(ConfigError, match="no public key"):
        receiver.parse_authorized_keys(cfg, "# nothing\n\n")


def test_key_dirs_are_created_by_this_user(cfg):
    keys = receiver.parse_authorized_keys(cfg, f"dir=a {KEY_A}\ndir=b {KEY_B}\n{KEY_C}\n")
    (cfg.receive_dir / "b").mkdir()  # already there: kept
    made = receiver.make_key_dirs(cfg, keys)
    assert made == [cfg.receive_dir / "a", cfg.receive_dir / "b"]
    assert all(p.is_dir() and p.stat().st_uid == os.getuid() for p in made)


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_key_dir_must_be_a_real_directory(cfg, tmp_path, kind):
    outside = tmp_path / "outside"
    outside.mkdir()
    if kind == "symlink":
        (cfg.receive_dir / "a").symlink_to(outside)
    else:
        (cfg.receive_dir / "a").write_text("")
    keys = receiver.parse_authorized_keys(cfg, f"dir=a {KEY_A}\n")
    with pytest.raises(ConfigError, match=r"RRDSYNC_RECEIVE_DIR.*not a directory"):
        receiver.make_key_dirs(cfg, keys)


def test_prepare_writes_keys_and_dirs(cfg):
    cfg.authorized_keys.write_text(f"dir=a {KEY_A}\n{KEY_B}\n")
    argv = receiver.prepare(cfg)
    private = cfg.run_dir / "receiver"
    auth = private / "authorized_keys"
    assert f"AuthorizedKeysFile={auth}" in argv
    assert (auth.stat().st_mode & 0o777) == 0o600
    first = auth.read_text().splitlines()[0]
    assert forced(first)[-1] == f"{cfg.receive_dir}/a" and (cfg.receive_dir / "a").is_dir()
    assert list(cfg.host_key_dir.glob("ssh_host_*_key"))  # generated on first start


def test_main_bad_key_line_is_one_line_exit_2(cfg, tmp_path):
    cfg.authorized_keys.write_text(f"{KEY_A}\ndir=../x {KEY_B}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
    env.update(RRDSYNC_RECEIVE_DIR=str(cfg.receive_dir),
               RRDSYNC_AUTHORIZED_KEYS=str(cfg.authorized_keys),
               RRDSYNC_RUN_DIR=str(cfg.run_dir), RRDSYNC_HOST_KEY_DIR=str(cfg.host_key_dir))
    r = subprocess.run([sys.executable, "-m", "rrdsync.receiver"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    (line,) = r.stderr.splitlines()
    assert "RRDSYNC_AUTHORIZED_KEYS" in line and "line 2:" in line
