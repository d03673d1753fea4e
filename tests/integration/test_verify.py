"""``rrdsync verify`` and ``verify --repair`` against a real sshd, run as the image's user
(UID 10001) from a source with a root-only ``lost+found``, into the recommended receiver
(``rrsync -wo -no-del``); a deleting rrsync (``rrsync -wo``) is the explicit case for
files that exist only at the destination."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.rrd import included_files, make_tree, wait_identical
from tests.fixtures.sshd import Sshd, make_sshd
from tests.integration.commands import (
    receiver_busy,
    rrdsync,
    second_destination,
)

DRIFTED = "snmp/2/if1/ds1.rrd"
NOT_CHECKED = b"extra files at the destination not checked: the receiver refuses deletes"


@pytest.fixture
def cli(world_dir):
    def run(env: dict[str, str], *args: str, **kw) -> subprocess.CompletedProcess:
        return rrdsync(env, *args, home=world_dir / "home", **kw)

    return run


@pytest.fixture
def env(worker_env, sshd) -> dict[str, str]:
    """The recommended receiver, logs at the default level (one-shot commands: quiet)."""
    return {**sshd.worker_env(worker_env), "RRDSYNC_LOG_LEVEL": "INFO"}


def in_sync(cli, env: dict[str, str], source: Path, dest: Path) -> None:
    make_tree(source, nodes=2, resources=2, files=2)
    r = cli(env, "once")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    wait_identical(source, dest, 1)


def same_bytes(a: Path, b: Path) -> bool:
    """Byte comparison (not filecmp.cmp: it caches results by size and mtime, which is
    exactly what the drift here keeps)."""
    return a.read_bytes() == b.read_bytes()


def drift_in_place(path: Path) -> None:
    """Different bytes, same size, same mtime to the nanosecond: rsync's quick check
    (size + mtime) calls the file up to date."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_verify_lists_missing_files_then_is_silent_when_identical(env, source, sshd, cli):
    make_tree(source, nodes=2, resources=2, files=2)
    lf = (source / "lost+found").stat()
    assert lf.st_uid == 0 and stat.S_IMODE(lf.st_mode) == 0o700  # never entered
    r = cli(env, "verify")
    assert r.returncode == 1
    listed = r.stdout.decode().splitlines()
    assert sorted(listed) == included_files(source) and len(listed) == 26
    assert b"drift: 26 files missing or different at the destination" in r.stderr
    assert b"unreachable" not in r.stderr and b"failed" not in r.stderr
    r = cli(env, "once")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    r = cli(env, "verify")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


def test_verify_sees_content_drift_the_quick_check_misses(env, source, sshd, cli):
    """Same size, same mtime, different bytes: `once` (quick check) leaves the file as it
    is, verify (checksums) lists exactly that path."""
    in_sync(cli, env, source, sshd.dest)
    drift_in_place(sshd.dest / DRIFTED)
    r = cli(env, "once")
    assert r.returncode == 0
    assert not same_bytes(source / DRIFTED, sshd.dest / DRIFTED)
    r = cli(env, "verify")
    assert r.returncode == 1
    assert r.stdout == f"{DRIFTED}\n".encode()
    assert r.stderr.endswith(b"drift: 1 file missing or different at the destination\n")


def test_verify_repair_fixes_content_drift(env, source, sshd, cli):
    in_sync(cli, env, source, sshd.dest)
    drift_in_place(sshd.dest / DRIFTED)
    r = cli(env, "verify", "--repair")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == f"{DRIFTED}\n# repaired 1 file\n{DRIFTED}\n".encode()
    assert same_bytes(source / DRIFTED, sshd.dest / DRIFTED)
    assert (sshd.dest / DRIFTED).stat().st_mtime_ns // 10**9 == \
        (source / DRIFTED).stat().st_mtime_ns // 10**9
    r = cli(env, "verify")
    assert (r.returncode, r.stdout) == (0, b"")


def test_verify_escapes_odd_names_and_repair_sends_them(env, source, sshd, cli):
    """A newline and a leading `-` in a name, a byte that is not UTF-8: listed the way
    rsync escapes them (\\#ooo), one per line; repair delivers them under their names."""
    in_sync(cli, env, source, sshd.dest)
    odd = [b"snmp/1/if0/-new\nline.rrd", b"snmp/1/-dash/caf\xe9.rrd"]
    for name in odd:
        p = source / os.fsdecode(name)
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"odd")
    r = cli(env, "verify")
    assert r.returncode == 1
    assert sorted(r.stdout.splitlines()) == [b"snmp/1/-dash/caf\\#351.rrd",
                                             b"snmp/1/if0/-new\\#012line.rrd"]
    r = cli(env, "verify", "--repair")
    assert r.returncode == 0, r.stderr.decode()
    for name in odd:
        assert (sshd.dest / os.fsdecode(name)).read_bytes() == b"odd"
    wait_identical(source, sshd.dest, 1)


def test_verify_delete_against_write_only_receiver(env, source, sshd, cli):
    """RRDSYNC_DELETE=true with rrsync -no-del: --delete is refused, content is verified
    anyway (exit reflects content), a warning says extra files were not checked, and
    repair never deletes."""
    in_sync(cli, env, source, sshd.dest)
    extra = sshd.dest / "snmp/1/only-at-dest.rrd"
    extra.write_bytes(b"x")
    deleting = {**env, "RRDSYNC_DELETE": "true"}
    r = cli(deleting, "verify")
    assert (r.returncode, r.stdout) == (0, b"")
    assert r.stderr.count(NOT_CHECKED) == 1
    drift_in_place(sshd.dest / DRIFTED)
    r = cli(deleting, "verify")
    assert (r.returncode, r.stdout) == (1, f"{DRIFTED}\n".encode())
    assert NOT_CHECKED in r.stderr
    r = cli(deleting, "verify", "--repair")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr.count(NOT_CHECKED) == 1  # said once per destination
    assert same_bytes(source / DRIFTED, sshd.dest / DRIFTED)
    assert extra.exists()


def test_verify_extra_files_count_only_with_delete(deleting_sshd, worker_env, source, cli):
    """rrsync -wo allows deletes: a file only at the destination is drift only with
    RRDSYNC_DELETE=true, and only then does repair delete it."""
    env = {**deleting_sshd.worker_env(worker_env), "RRDSYNC_LOG_LEVEL": "INFO"}
    in_sync(cli, env, source, deleting_sshd.dest)
    extra = deleting_sshd.dest / "snmp/1/only-at-dest.rrd"
    extra.write_bytes(b"x")
    (deleting_sshd.dest / "snmp/1/notes.txt").write_bytes(b"not replicated: not ours")
    assert cli(env, "verify").returncode == 0
    r = cli(env, "verify", "--repair")
    assert (r.returncode, r.stdout) == (0, b"") and extra.exists()
    deleting = {**env, "RRDSYNC_DELETE": "true"}
    r = cli(deleting, "verify")
    assert (r.returncode, r.stdout) == (1, b"snmp/1/only-at-dest.rrd\n")
    assert b"1 file only at the destination" in r.stderr and NOT_CHECKED not in r.stderr
    r = cli(deleting, "verify", "--repair")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.endswith(b"# repaired 1 file\nsnmp/1/only-at-dest.rrd\n")
    assert not extra.exists() and (deleting_sshd.dest / "snmp/1/notes.txt").exists()


def test_verify_unreachable_is_not_drift(env, source, sshd, cli):
    make_tree(source, nodes=1, resources=1, files=1)
    sshd.stop()
    r = cli({**env, "RRDSYNC_TIMEOUT": "3s"}, "verify")
    assert (r.returncode, r.stdout) == (1, b"")
    assert b": unreachable: connection refused\n" in r.stderr
    assert r.stderr.startswith(b"rrdsync verify: ") and b"drift" not in r.stderr


def test_verify_waits_for_a_busy_receiver(env, source, sshd, cli):
    """A worker's rsync holds rrsync's per-directory lock: verify says so, tries again
    shortly, and then answers (here: identical)."""
    in_sync(cli, env, source, sshd.dest)
    with receiver_busy(sshd, 1.5):
        r = cli(env, "verify")
    assert (r.returncode, r.stdout) == (0, b""), r.stderr.decode()
    assert b"the receiver is busy with another rsync" in r.stderr
    assert b"retry 1 of" in r.stderr


def test_verify_and_repair_two_destinations(sshd, source, worker_env, world_dir, cli):
    """A `# <destination>` line before each destination's list; drift at one makes the
    whole verify 1; repair fixes it; a destination down fails the run, the other is still
    verified."""
    other: Sshd = make_sshd(world_dir, "2", receiver="rrsync-delete")
    try:
        env = second_destination(sshd, other, worker_env, world_dir / "known_hosts_both")
        env["RRDSYNC_LOG_LEVEL"] = "INFO"
        in_sync(cli, env, source, sshd.dest)
        wait_identical(source, other.dest, 1)
        r = cli(env, "verify")
        assert r.returncode == 0, r.stderr.decode()
        first, second = r.stdout.splitlines()
        assert first.startswith(b"# ") and str(sshd.port).encode() in first
        assert second.startswith(b"# ") and str(other.port).encode() in second
        drift_in_place(other.dest / DRIFTED)
        r = cli(env, "verify")
        assert r.returncode == 1
        assert r.stdout == first + b"\n" + second + b"\n" + DRIFTED.encode() + b"\n"
        r = cli(env, "verify", "--repair")
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout.endswith(second + f"\n{DRIFTED}\n# repaired 1 file\n{DRIFTED}\n"
                                 .encode())
        assert same_bytes(source / DRIFTED, other.dest / DRIFTED)
        sshd.stop()
        drift_in_place(other.dest / DRIFTED)
        r = cli({**env, "RRDSYNC_TIMEOUT": "3s"}, "verify")
        assert r.returncode == 1
        assert r.stdout == first + b"\n" + second + b"\n" + DRIFTED.encode() + b"\n"
        assert b"unreachable: connection refused" in r.stderr
    finally:
        other.stop()
