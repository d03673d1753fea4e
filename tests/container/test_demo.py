"""The README's first command: ./run-demo brings the compose stack up, RRD files written by
opennms-sim arrive at the receiver, and every line every container of the stack writes is
one JSON log line (one log stream: supervisord, sshd, the entrypoint, rrdsync, the demo's
own containers). And where container names cannot resolve, run-demo stops before it builds
anything, saying why and how to fix it."""

from __future__ import annotations

import os
import socket
import stat
import struct
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.containers import (
    REPO,
    Engine,
    compose_containers,
    free_port,
    http_get,
    log_objects,
    not_log_lines,
)


@dataclass
class Demo:
    engine: Engine
    project: str
    port: int

    def container(self, service: str) -> str:
        ids = compose_containers(self.engine, self.project, service)
        assert ids, f"no container of service {service} in project {self.project}"
        return ids[0]


@pytest.fixture(scope="module")
def demo(container_engine: Engine, base_image: str, rrdsync_image: str) -> Iterator[Demo]:
    """The stack as ./run-demo brings it up (the README's command), removed afterwards."""
    project = f"rrdt-demo-{os.getpid()}"
    port = free_port()
    env = {**os.environ, **container_engine.env, "ENGINE": container_engine.name,
           "BASE_IMAGE": base_image, "DEMO_PROJECT": project, "DEMO_HTTP_PORT": str(port)}
    try:
        t0 = time.monotonic()
        up = subprocess.run([str(REPO / "run-demo")], env=env, capture_output=True,
                            text=True, timeout=600)
        assert up.returncode == 0, (up.stdout[-3000:], up.stderr[-3000:])
        print(f"run-demo until /readyz 200: {time.monotonic() - t0:.1f} s")
        yield Demo(container_engine, project, port)
    finally:
        subprocess.run([str(REPO / "run-demo"), "down"], env=env, capture_output=True,
                       timeout=180, check=False)


def test_run_demo_brings_up_the_stack(demo: Demo):
    assert http_get(f"http://127.0.0.1:{demo.port}/readyz")[0] == 200
    receiver = demo.container("receiver")

    def arrived() -> list[str]:
        proc = demo.engine("exec", receiver, "find", "/data/snmp", "-name", "*.rrd",
                           "-newermt", "-10 seconds", check=False)
        return proc.stdout.split()

    deadline = time.monotonic() + 60
    while not arrived() and time.monotonic() < deadline:
        time.sleep(1)
    assert arrived(), "no freshly updated RRD file at the receiver"


def _hang_up_mid_request(port: int) -> None:
    """Clients that go away in the middle: half a request line; a full request closed
    with a reset before the answer is read; a connection closed at once."""
    linger_reset = struct.pack("ii", 1, 0)
    for path in ("/metrics", "/readyz", "/healthz"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET {path} HT".encode())
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_reset)
        s.close()
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


@dataclass
class ContainerLog:
    name: str
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def demo_logs(demo: Demo) -> list[ContainerLog]:
    """The logs of every container of the stack after a while of things that make each
    program log: clients hanging up on the status server mid-request, a refused SSH login
    at the receiver, a worker restarted through supervisord."""
    sidecar = demo.container("rrdsync")
    for _ in range(5):
        _hang_up_mid_request(demo.port)
        time.sleep(0.2)
    login = demo.engine("exec", sidecar, "ssh", "-p", "2222", "-o", "BatchMode=yes",
                        "-o", "UserKnownHostsFile=/run/secrets/known_hosts",
                        "-o", "ConnectTimeout=5", "nobody@receiver", "true", check=False)
    assert login.returncode == 255, login.stderr
    restart = demo.engine("exec", sidecar, "bash", "-c",
                          "for d in /run/rrdsync /tmp/rrdsync; do [ -S $d/supervisor.sock ] &&"
                          " exec env RRDSYNC_RUN_DIR=$d supervisorctl"
                          " -c /etc/rrdsync/supervisord.conf restart rrdsync:worker; done;"
                          " exit 1", check=False)
    assert restart.returncode == 0, (restart.stdout, restart.stderr)
    time.sleep(20)  # a few rounds of opennms-sim (5 s) replicated by the restarted worker
    _hang_up_mid_request(demo.port)
    assert http_get(f"http://127.0.0.1:{demo.port}/readyz")[0] == 200
    logs = []
    for cid in compose_containers(demo.engine, demo.project):
        name = demo.engine("inspect", "-f", "{{.Name}}", cid).stdout.strip().lstrip("/")
        proc = demo.engine("logs", cid, check=False)
        logs.append(ContainerLog(name, proc.stdout, proc.stderr))
    return logs


def test_every_line_of_every_demo_container_is_a_json_log_line(demo_logs: list[ContainerLog]):
    """Every stdout and stderr line of every container of the project (keygen and
    opennms-sim included) is one JSON object with time (RFC 3339 UTC, milliseconds),
    level, logger, message and event."""
    checked = 0
    bad: list[str] = []
    loggers: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for c in demo_logs:
        for stream, text in (("stdout", c.stdout), ("stderr", c.stderr)):
            n, wrong = not_log_lines(text)
            checked += n
            bad += [f"{c.name} {stream}: {line}" for line in wrong]
            print(f"{c.name} {stream}: {n} lines, {len(wrong)} not JSON log lines")
            for obj in log_objects(text):
                loggers[obj.get("logger", "?")] += 1
                events[obj.get("event", "?")] += 1
    print(f"{len(demo_logs)} containers, {checked} lines checked, {len(bad)} not JSON log lines")
    print("loggers:", dict(loggers))
    print("events:", dict(events.most_common(40)))
    assert len(demo_logs) == 5, demo_logs  # keygen, opennms-sim, receiver, archive, rrdsync
    assert not bad, "\n".join(bad[:30])
    # every kind of writer was there, so each was checked
    for logger in ("rrdsync.entrypoint", "supervisord", "sshd", "opennms-sim", "make-keys"):
        assert loggers[logger], f"no line from {logger}"
    assert any(name.startswith("rrdsync.") and name != "rrdsync.entrypoint"
               for name in loggers), loggers
    for event in ("container_start", "program_spawned", "sshd_listening",
                  "ssh_login_accepted", "ssh_login_failed", "program_stopped"):
        assert events[event], f"no {event} line"


def test_demo_programs_write_nothing_but_log_lines(demo_logs: list[ContainerLog]):
    """The filter turns a program's stray output (a bare traceback, a print) into log lines
    (program_output, program_traceback); none should be needed: a client hanging up is
    no error worth a traceback."""
    stray = [(c.name, o) for c in demo_logs for o in log_objects(c.stdout + c.stderr)
             if o.get("event") in ("program_output", "program_traceback")]
    print(f"{len(stray)} lines of stray program output")
    assert not stray, "\n".join(f"{name}: {o['message']}" for name, o in stray[:8])


def test_run_demo_stops_before_building_when_names_do_not_resolve(
        container_engine: Engine, base_image: str, tmp_path: Path):
    """A host where Podman settled on its old CNI backend (issue 10): names on a compose
    network never resolve. run-demo must say so, and how to fix it, before it builds or
    starts anything. Simulated with a podman that reports CNI and whose name lookups
    fail; everything else goes to the real one."""
    if container_engine.name != "podman":
        pytest.skip("simulates Podman's CNI backend")
    shim = tmp_path / "bin" / "podman"
    shim.parent.mkdir()
    real = subprocess.run(["which", "podman"], capture_output=True, text=True).stdout.strip()
    shim.write_text("#!/bin/bash\n"
                    'case "$*" in\n'
                    '  *"getent hosts"*) exit 2 ;;\n'
                    '  "info --format {{.Host.NetworkBackend}}") echo cni; exit 0 ;;\n'
                    "esac\n"
                    f'exec {real} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    project = f"rrdt-nodns-{os.getpid()}"
    env = {**os.environ, **container_engine.env, "ENGINE": "podman", "BASE_IMAGE": base_image,
           "DEMO_PROJECT": project, "PATH": f"{shim.parent}:{os.environ['PATH']}"}
    t0 = time.monotonic()
    proc = subprocess.run([str(REPO / "run-demo")], env=env, capture_output=True, text=True,
                          timeout=300)
    took = time.monotonic() - t0
    print(proc.stderr)
    assert proc.returncode == 1
    assert "CNI" in proc.stderr
    for fix in ("network_backend", "podman system reset", "ip link del cni-podman0"):
        assert fix in proc.stderr
    assert "building" not in proc.stdout and "starting the stack" not in proc.stdout
    assert not compose_containers(container_engine, project)
    assert not container_engine.exists("network", f"{project}-dnscheck")
    print(f"run-demo stopped after {took:.1f} s")
