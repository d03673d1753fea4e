"""Host identity (DESIGN guarantee: SSH uses a known_hosts file; accepting an unknown host
key needs an explicit opt-in), against a real sshd."""

from __future__ import annotations

from tests.integration.commands import rrdsync


def _wrong_known_hosts(sshd, path):
    other = sshd.client_key.with_suffix(".pub").read_text().split()[:2]  # not the host's key
    path.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other)}\n")
    return path


def test_accept_new_still_refuses_a_host_listed_with_another_key(sshd, source, worker_env,
                                                                   world_dir, start_worker):
    """RRDSYNC_SSH_HOST_KEY_POLICY=accept-new learns hosts it has never seen, but a host
    that RRDSYNC_KNOWN_HOSTS lists with a different key is refused (it used to be
    accepted: the configured file was only a "global" file ssh did not hold against it)."""
    known = _wrong_known_hosts(sshd, world_dir / "known_hosts_wrong")
    known.chmod(0o644)
    env = {**sshd.worker_env(worker_env), "RRDSYNC_SSH_HOST_KEY_POLICY": "accept-new",
           "RRDSYNC_KNOWN_HOSTS": str(known)}
    r = rrdsync(env, "check", home=world_dir / "home")
    assert r.returncode == 1, r.stdout.decode() + r.stderr.decode()
    assert "host key verification failed" in r.stdout.decode()
    assert not (sshd.dest / ".rrdsync-probe").exists()
    learned = world_dir / "state" / "known_hosts"
    assert not learned.exists() or str(sshd.port) not in learned.read_text()


def test_accept_new_learns_an_unlisted_host(sshd, source, worker_env, world_dir):
    env = {**sshd.worker_env(worker_env), "RRDSYNC_SSH_HOST_KEY_POLICY": "accept-new",
           "RRDSYNC_KNOWN_HOSTS": str(world_dir / "absent")}
    r = rrdsync(env, "check", home=world_dir / "home")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert str(sshd.port) in (world_dir / "state" / "known_hosts").read_text()
