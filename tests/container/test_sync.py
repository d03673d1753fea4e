"""The sidecar in its container, pushing to the receiver container: the guarantees that
only show with the real image (supervisord, hardened flags, signals, restarts, networks)."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.fixtures.containers import (
    Containers,
    SshMaterial,
    http_get,
    log_objects,
    not_log_lines,
    wait_http,
)
from tests.fixtures.rrd import differences, make_tree, rrd_update, wait_identical


def _updates(files, rounds: int = 1) -> None:
    for _ in range(rounds):
        for f in files:
            rrd_update(f)


def test_hardened_random_uid_initial_sync_live_updates_and_health(
        containers: Containers, start_sidecar, ssh_material: SshMaterial):
    """read-only root, tmpfs, cap-drop ALL, no-new-privileges, a UID with no passwd
    entry, and a key mounted 0644 owned by that UID (ssh itself would refuse it)."""
    uid = 54321
    key = ssh_material.key_copy("id-loose", 0o644, uid=uid, gid=0)
    t0 = time.monotonic()
    side = start_sidecar("hardened", key=key, user=f"{uid}:0")
    files = make_tree(side.source, nodes=2, resources=3, files=3, foreign_source=True)

    took = wait_http(side.url("/readyz"), 200, timeout=90)
    print(f"run -> /readyz 200 in {time.monotonic() - t0:.1f} s (poll {took:.1f} s)")
    wait_identical(side.source, side.dest, timeout=30)
    status, body = http_get(side.url("/healthz"))
    assert status == 200, body
    assert json.loads(body)  # per-worker detail as JSON

    _updates(files, rounds=3)
    wait_identical(side.source, side.dest, timeout=30)
    metrics = http_get(side.url("/metrics"))[1]
    assert "rrdsync_files_sent_total" in metrics
    # nothing written outside the allowed places, and it ran as the random UID
    ps = containers.exec(side.name, "bash", "-c", "id -u; getent passwd $(id -u)").stdout
    assert ps.split()[0] == str(uid)


@pytest.mark.parametrize(("megabytes", "finishes"), [(8, True), (40, False)],
                         ids=["batch-finishes-in-drain", "drain-runs-out"])
def test_sigterm_exits_0_within_10s_and_nothing_is_lost(
        containers: Containers, start_sidecar, ssh_material: SshMaterial,
        megabytes: int, finishes: bool):
    """SIGTERM with a transfer in flight (a 2 MB/s limit makes it last): a batch that can
    finish within the worker's 8 s drain arrives before the container exits; one that
    cannot is ended and sent after the restart. Either way: exit 0 within 10 s.
    The key is mounted like a Kubernetes Secret with fsGroup (0440, root:0)."""
    key = ssh_material.key_copy(f"id-group-{megabytes}", 0o440, uid=0, gid=0)
    side = start_sidecar(f"sigterm{megabytes}", key=key, env={"RRDSYNC_BWLIMIT": "2000"})
    files = make_tree(side.source, nodes=1, resources=2, files=2)
    wait_http(side.url("/readyz"), 200, timeout=90)
    wait_identical(side.source, side.dest, timeout=30)

    big = side.source / "snmp" / "big.rrd"
    big.write_bytes(os.urandom(megabytes * 1_000_000))
    time.sleep(1.5)  # settle (200 ms) + the batch starts
    _updates(files)
    # `podman stop -t 10` is `docker stop`: SIGTERM, and SIGKILL (exit 137) if the
    # container is still there after 10 s. So exit status 0 means "within 10 s".
    t = time.monotonic()
    containers.engine("stop", "-t", "10", side.name, timeout=60)
    rc = containers.wait_exit(side.name, 10)
    took = time.monotonic() - t
    timeline = [ln[:160] for ln in containers.logs(side.name).splitlines()
                if "stop" in ln or "SIGTERM" in ln]
    print(f"{megabytes} MB in flight: exit {rc}, podman stop returned after {took:.1f} s")
    print("\n".join(timeline[-6:]))
    assert rc == 0, "\n".join(timeline)
    assert took < 12, f"podman stop took {took:.1f} s"  # its own cleanup included
    arrived = not differences(side.source, side.dest, ["big.rrd"])
    assert arrived == finishes

    # Restarted, with the same state volume: what was pending is delivered.
    containers.engine("start", side.name)
    wait_identical(side.source, side.dest, timeout=60)


def test_killed_worker_is_restarted_and_nothing_is_lost(
        containers: Containers, start_sidecar, ssh_material: SshMaterial):
    key = ssh_material.key_copy("id-own", 0o400, uid=10001, gid=0)
    side = start_sidecar("kill", key=key)
    files = make_tree(side.source, nodes=2, resources=2, files=2)
    wait_http(side.url("/readyz"), 200, timeout=90)
    wait_identical(side.source, side.dest, timeout=30)

    # supervisord.conf takes its paths from RRDSYNC_RUN_DIR (the entrypoint exports it; a
    # `podman exec` does not inherit it). Default user on a podman tmpfs: /run/rrdsync.
    ctl = ["env", "RRDSYNC_RUN_DIR=/run/rrdsync",
           "supervisorctl", "-c", "/etc/rrdsync/supervisord.conf"]
    pid = containers.exec(side.name, *ctl, "pid", "rrdsync:worker").stdout.strip()
    assert pid.isdigit(), pid
    containers.exec(side.name, "kill", "-KILL", pid)
    _updates(files, rounds=2)  # changes made while the worker is dead
    deadline = time.monotonic() + 30
    new = pid
    while time.monotonic() < deadline and new in (pid, "0", ""):
        time.sleep(0.5)
        new = containers.exec(side.name, *ctl, "pid", "rrdsync:worker",
                              check=False).stdout.strip()
    assert new.isdigit() and new != pid, new
    wait_identical(side.source, side.dest, timeout=60)
    assert containers.state(side.name)["Running"]


def test_worker_that_cannot_start_ends_the_container(containers: Containers, start_sidecar):
    """The status server cannot listen (an address this host does not have: a port clash
    does the same): it fails at every start; supervisord gives up (FATAL) and the container
    must exit non-zero, not loop. (A state dir on the read-only root no longer gets this
    far: it is a configuration error, exit 2, before anything starts.)"""
    side = start_sidecar("fatal", env={"RRDSYNC_HTTP_ADDR": "192.0.2.1:8080"})
    rc = containers.wait_exit(side.name, 90)
    logs = containers.logs(side.name)
    assert rc != 0, logs[-3000:]
    assert "FATAL" in logs or "exited unexpectedly" in logs
    # The way out is logged like everything else: supervisord giving up, the listener
    # stopping the container, the entrypoint's exit status, all JSON log lines.
    out, err = containers.log_streams(side.name)
    checked, bad = not_log_lines(out + err)
    print(f"{checked} lines, {len(bad)} not JSON log lines")
    assert not bad, bad[:10]
    events = {o["event"] for o in log_objects(out)}
    assert {"container_stopping", "container_exit"} <= events, events


def test_receiver_unreachable_then_recovery(containers: Containers, receiver,
                                            start_sidecar):
    side = start_sidecar("netcut", env={"RRDSYNC_MAX_LAG": "5s", "RRDSYNC_TIMEOUT": "5s"})
    files = make_tree(side.source, nodes=1, resources=2, files=2)
    wait_http(side.url("/readyz"), 200, timeout=90)
    wait_identical(side.source, side.dest, timeout=30)

    containers.engine("network", "disconnect", receiver.network, receiver.name)
    try:
        start = time.monotonic()
        while time.monotonic() - start < 20:
            _updates(files)
            time.sleep(1)
        status, body = http_get(side.url("/readyz"))
        assert status == 503, body
        assert differences(side.source, side.dest)  # really not delivered yet
    finally:
        containers.engine("network", "connect", receiver.network, receiver.name)
    wait_http(side.url("/readyz"), 200, timeout=90)
    wait_identical(side.source, side.dest, timeout=60)
