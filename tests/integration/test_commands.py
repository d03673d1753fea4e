"""The one-shot commands against a real sshd: check, verify, once."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.fixtures.rrd import make_tree, wait_identical


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RRDSYNC_")}
    return subprocess.run([sys.executable, "-m", "rrdsync", *args], env={**clean, **env},
                          capture_output=True, timeout=timeout)


def test_check_ok(sshd, source, worker_env):
    r = cli({**worker_env, **sshd.env()}, "check")
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    for what in ("configuration", "destination reachable", "host key verified", "write probe",
                 "probe removed", "destination rsync version"):
        assert what in out
    assert "3." in out  # the destination's rsync version
    assert not (sshd.dest / ".rrdsync-probe").exists()
    assert sshd.connections() == 1


def test_check_write_only_receiver_keeps_probe(rrsync_sshd, source, worker_env):
    rrsync_sshd.write_authorized_keys(f"/usr/bin/rrsync -wo -no-del {rrsync_sshd.dest}")
    r = cli({**worker_env, **rrsync_sshd.env()}, "check")
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "probe left in place" in out and (rrsync_sshd.dest / ".rrdsync-probe").exists()


def test_check_host_key_mismatch(sshd, source, worker_env, world_dir):
    wrong = world_dir / "wrong_known_hosts"
    other = sshd.client_key.with_suffix(".pub").read_text().split()[:2]
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other)}\n")
    r = cli({**worker_env, **sshd.env(), "RRDSYNC_KNOWN_HOSTS": str(wrong)}, "check")
    assert r.returncode == 1
    assert "host key verification failed" in r.stdout.decode()
    assert not (sshd.dest / ".rrdsync-probe").exists()


def test_check_unreachable(sshd, source, worker_env):
    sshd.stop()
    r = cli({**worker_env, **sshd.env(), "RRDSYNC_TIMEOUT": "3s"}, "check")
    assert r.returncode == 1
    assert "connection refused" in r.stdout.decode()


def test_check_accept_new(sshd, source, worker_env, world_dir):
    env = {**worker_env, **sshd.env(), "RRDSYNC_SSH_HOST_KEY_POLICY": "accept-new",
           "RRDSYNC_KNOWN_HOSTS": str(world_dir / "absent")}
    r = cli(env, "check")
    assert r.returncode == 0, r.stdout.decode()
    learned = (world_dir / "state" / "known_hosts").read_text()
    assert str(sshd.port) in learned


def test_once_and_verify(sshd, source, worker_env):
    env = {**worker_env, **sshd.env()}
    make_tree(source, nodes=2, resources=2, files=2)
    r = cli(env, "verify")
    assert r.returncode == 1 and b"snmp/1/if0/ds0.rrd" in r.stdout.splitlines()
    r = cli(env, "once")
    assert r.returncode == 0, r.stderr.decode()
    wait_identical(source, sshd.dest, 1)
    r = cli(env, "verify")
    assert r.returncode == 0 and r.stdout == b"", r.stdout
    # same size, same mtime, different content: verify compares content
    target = sshd.dest / "snmp/2/if1/ds1.rrd"
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    (source / "snmp/1/if0/new\nline.rrd").write_bytes(b"x")
    (sshd.dest / "snmp/1/only-at-dest.rrd").write_bytes(b"x")
    r = cli(env, "verify")
    lines = r.stdout.splitlines()
    assert r.returncode == 1
    assert set(lines) == {b"snmp/2/if1/ds1.rrd", b"snmp/1/if0/new\\#012line.rrd"}
    r = cli({**env, "RRDSYNC_DELETE": "true"}, "verify")
    assert b"snmp/1/only-at-dest.rrd" in r.stdout.splitlines()


def test_once_fails_when_destination_is_down(sshd, source, worker_env):
    make_tree(source, nodes=1, resources=1, files=1)
    sshd.stop()
    r = cli({**worker_env, **sshd.env(), "RRDSYNC_TIMEOUT": "3s"}, "once")
    assert r.returncode == 1
