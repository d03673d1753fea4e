"""``rrdsync check`` and ``rrdsync once`` against a real sshd, run as the image's user
(UID 10001) against the receiver the README recommends (``rrsync -wo -no-del``); a
deleting rrsync and a permissive receiver are explicit cases. ``verify`` has its own
file (test_verify.py)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.fixtures.rrd import make_tree, wait_identical
from tests.fixtures.sshd import give_to_worker, make_sshd
from tests.integration.commands import (
    receiver_busy,
    rrdsync,
    second_destination,
)


@pytest.fixture
def cli(world_dir):
    def run(env: dict[str, str], *args: str, **kw) -> subprocess.CompletedProcess:
        return rrdsync(env, *args, home=world_dir / "home", **kw)

    return run


def lines(r: subprocess.CompletedProcess) -> list[str]:
    return r.stdout.decode().splitlines()


def line(r: subprocess.CompletedProcess, what: str) -> str:
    """The report line about ``what`` (exactly one)."""
    found = [x for x in lines(r) if re.match(rf"^\[[a-zA-Z ]{{4}}\] {re.escape(what)}\b", x)]
    assert len(found) == 1, f"{what!r} in {lines(r)}"
    return found[0]


def test_check_write_only_receiver_keeps_probe(sshd, source, worker_env, cli):
    """The recommended receiver: reachable, writable, the probe stays (a warning, exit
    0), and the version comes from the protocol (rrsync refuses `rsync --version`)."""
    r = cli({**worker_env, **sshd.env(), "RRDSYNC_LOG_LEVEL": "INFO"}, "check")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    for what in ("configuration", "destination reachable", "host key verified",
                 "write probe"):
        assert line(r, what).startswith("[ok  ]")
    left = line(r, "probe left in place")
    assert left.startswith("[warn]") and "write-only receiver refuses deletes" in left
    assert "protocol 32" in line(r, "destination rsync version")
    assert (sshd.dest / ".rrdsync-probe").read_text().startswith("rrdsync write probe")
    assert not [x for x in lines(r) if x.startswith("[FAIL]")]
    assert sshd.connections() == 1  # one SSH master for every step
    assert r.stderr == b""  # quiet at the default log level


def test_check_deleting_receiver_removes_probe(deleting_sshd, source, worker_env, cli):
    r = cli({**worker_env, **deleting_sshd.env()}, "check")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert line(r, "probe removed").startswith("[ok  ]")
    assert not (deleting_sshd.dest / ".rrdsync-probe").exists()
    assert not [x for x in lines(r) if x.startswith("[warn]")]


def test_check_permissive_receiver_reports_exact_version(permissive_sshd, source,
                                                         worker_env, cli):
    """Explicit exception: a receiver that runs any command answers `rsync --version`."""
    ours = subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout
    version = re.search(r"version\s+(\S+)", ours).group(1)
    r = cli({**worker_env, **permissive_sshd.env()}, "check")
    assert r.returncode == 0, r.stdout.decode()
    assert line(r, "destination rsync version") == f"[ok  ] destination rsync version: {version}"
    assert not (permissive_sshd.dest / ".rrdsync-probe").exists()


def test_check_read_only_receiver_is_not_writable(world_dir, source, worker_env, cli):
    """A destination that takes no writes (rrsync -ro): reachable, but the probe fails: 1."""
    ro = make_sshd(world_dir, "ro", receiver="rrsync-ro")
    try:
        r = cli({**worker_env, **ro.env()}, "check")
    finally:
        ro.stop()
    assert r.returncode == 1
    assert line(r, "destination reachable").startswith("[ok  ]")
    probe = line(r, "write probe")
    assert probe.startswith("[FAIL]") and "read-only" in probe
    assert not (ro.dest / ".rrdsync-probe").exists()


def test_check_local_destination(world_dir, source, worker_env, cli):
    """A local path (an NFS mount): no SSH, the probe written and removed, our rsync."""
    dest = world_dir / "local-dest"
    dest.mkdir()
    give_to_worker(dest)
    r = cli({**worker_env, "RRDSYNC_DEST": str(dest)}, "check")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert line(r, "destination reachable") == \
        f"[ok  ] destination reachable: local directory {dest}"
    assert line(r, "probe removed").startswith("[ok  ]")
    assert "host key" not in r.stdout.decode() and not (dest / ".rrdsync-probe").exists()
    r = cli({**worker_env, "RRDSYNC_DEST": str(world_dir / "absent")}, "check")
    assert r.returncode == 1 and line(r, "destination reachable").startswith("[FAIL]")


def test_check_host_key_mismatch(sshd, source, worker_env, world_dir, cli):
    wrong = world_dir / "wrong_known_hosts"
    other = sshd.client_key.with_suffix(".pub").read_text().split()[:2]
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other)}\n")
    r = cli({**worker_env, **sshd.env(), "RRDSYNC_KNOWN_HOSTS": str(wrong)}, "check")
    assert r.returncode == 1
    assert "host key verification failed" in line(r, "destination reachable")
    assert line(r, "destination reachable").startswith("[FAIL]")
    assert not (sshd.dest / ".rrdsync-probe").exists()


def test_check_unreachable(sshd, source, worker_env, cli):
    sshd.stop()
    r = cli({**worker_env, **sshd.env(), "RRDSYNC_TIMEOUT": "3s"}, "check")
    assert r.returncode == 1
    assert line(r, "destination reachable") == "[FAIL] destination reachable: connection refused"


def test_check_accept_new(sshd, source, worker_env, world_dir, cli):
    env = {**worker_env, **sshd.env(), "RRDSYNC_SSH_HOST_KEY_POLICY": "accept-new",
           "RRDSYNC_KNOWN_HOSTS": str(world_dir / "absent")}
    r = cli(env, "check")
    assert r.returncode == 0, r.stdout.decode()
    learned = (world_dir / "state" / "known_hosts").read_text()
    assert str(sshd.port) in learned


def test_check_waits_for_a_busy_receiver(sshd, source, worker_env, cli):
    """rrsync lets one rsync into a directory at a time: a worker sending meanwhile makes
    the probe meet "Another instance of rrsync is already accessing this directory".
    check says so, tries again shortly, and passes once the receiver is free."""
    with receiver_busy(sshd, 1.5):
        r = cli({**worker_env, **sshd.env()}, "check")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    busy = [x for x in lines(r) if x.startswith("[warn] receiver busy")]
    assert busy and "retry 1 of" in busy[0]
    assert line(r, "write probe").startswith("[ok  ]")


def test_check_two_destinations(sshd, source, worker_env, world_dir, cli):
    """Each destination gets its own header and report; one down makes the whole check 1."""
    other = make_sshd(world_dir, "2", receiver="rrsync-delete")
    try:
        env = second_destination(sshd, other, worker_env, world_dir / "known_hosts_both")
        r = cli(env, "check")
        out = lines(r)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        headers = [i for i, x in enumerate(out) if x.startswith("# ")]
        assert len(headers) == 2 and str(sshd.port) in out[headers[0]] \
            and str(other.port) in out[headers[1]]
        first, second = out[headers[0]:headers[1]], out[headers[1]:]
        assert any(x.startswith("[warn] probe left in place") for x in first)
        assert any(x.startswith("[ok  ] probe removed") for x in second)
        other.stop()
        r = cli({**env, "RRDSYNC_TIMEOUT": "3s"}, "check")
        assert r.returncode == 1
        out = lines(r)
        second = out[[i for i, x in enumerate(out) if x.startswith("# ")][1]:]
        assert "[FAIL] destination reachable: connection refused" in second
        assert "[ok  ] write probe: .rrdsync-probe written at the destination root" in out
    finally:
        other.stop()


def test_once_replicates_to_write_only_receiver(sshd, source, worker_env, cli):
    """`once` as UID 10001 from a source with a root-only lost+found into rrsync -wo
    -no-del: exit 0 and every file byte-identical."""
    make_tree(source, nodes=2, resources=2, files=2)
    r = cli({**worker_env, **sshd.env()}, "once")
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    wait_identical(source, sshd.dest, 1)
    assert not (sshd.dest / "lost+found").exists()


def test_once_fails_when_destination_is_down(sshd, source, worker_env, cli):
    make_tree(source, nodes=1, resources=1, files=1)
    sshd.stop()
    r = cli({**worker_env, **sshd.env(), "RRDSYNC_TIMEOUT": "3s"}, "once", timeout=60)
    assert r.returncode == 1
