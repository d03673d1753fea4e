"""A receiver container on a private network, and a way to start sidecars against it.

The receiver's /data is a host directory, so tests compare what arrived with plain file
reads. Every test module gets its own network and receiver (module scope); sidecars push
into a sub-directory named after the test so tests never see each other's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.containers import (
    HARDENED,
    RUN_USER,
    Containers,
    SshMaterial,
    free_port,
    owned_dir,
)


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.container)


@dataclass
class Receiver:
    name: str  # container name, also its DNS name on the network
    network: str
    data: Path  # the host directory mounted at RRDSYNC_RECEIVE_DIR
    ssh_port: int  # published on 127.0.0.1 for tests that connect from the host


@pytest.fixture(scope="module")
def receiver(containers: Containers, rrdsync_image: str, ssh_material: SshMaterial,
             tmp_path_factory) -> Receiver:
    net = containers.network("net")
    data = owned_dir(tmp_path_factory.mktemp("received") / "data")
    port = free_port()
    name = containers.name("receiver")
    containers.run("receiver", rrdsync_image, "receiver", options=[
        *HARDENED, "--network", net, "-p", f"127.0.0.1:{port}:2222",
        "-v", f"{data}:/data",
        "-v", f"{ssh_material.authorized_keys}:/etc/rrdsync/receiver/authorized_keys:ro",
        # host keys as a Secret would provide them (0644, owned by root)
        "-v", f"{ssh_material.host_key_dir}:/etc/rrdsync/receiver/hostkeys:ro",
        "-e", "RRDSYNC_HOST_KEY_DIR=/etc/rrdsync/receiver/hostkeys",
    ])
    from tests.fixtures.rrd import wait_for

    wait_for(lambda: "Server listening" in containers.logs(name), timeout=30,
             what="receiver sshd listening")
    return Receiver(name, net, data, port)


@dataclass
class Sidecar:
    name: str
    port: int
    source: Path
    dest: Path  # where its files land on the receiver (host path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


# Fast enough for tests, still the engine's real paths.
FAST = {"RRDSYNC_SETTLE": "200ms", "RRDSYNC_MAX_DELAY": "1s", "RRDSYNC_LOG_LEVEL": "INFO"}


@pytest.fixture(scope="module")
def start_sidecar(containers: Containers, rrdsync_image: str, receiver: Receiver,
                  ssh_material: SshMaterial, tmp_path_factory):
    """start_sidecar(what, key=..., user=..., env=..., hardened=True) -> Sidecar."""

    def start(what: str, *, key: Path | None = None, user: str = RUN_USER,
              env: dict[str, str] | None = None, hardened: bool = True,
              source: Path | None = None) -> Sidecar:
        if source is None:
            source = tmp_path_factory.mktemp(f"src-{what}") / "data"
            source.mkdir()
        source.chmod(0o755)
        key = key or ssh_material.key_copy(f"id-{what}", 0o644)
        known = ssh_material.known_hosts(receiver.name, 2222)
        port = free_port()
        variables = {**FAST, "RRDSYNC_DEST": f"rrdsync@{receiver.name}:/{what}/",
                     "RRDSYNC_SSH_PORT": "2222", **(env or {})}
        options = [*(HARDENED if hardened else []), "--user", user,
                   "--network", receiver.network, "-p", f"127.0.0.1:{port}:8080",
                   "-v", f"{source}:/data:ro",
                   "-v", f"{key}:/etc/rrdsync/ssh/id:ro",
                   "-v", f"{known}:/etc/rrdsync/ssh/known_hosts:ro"]
        for k, v in variables.items():
            options += ["-e", f"{k}={v}"]
        containers.run(what, rrdsync_image, options=options)
        return Sidecar(containers.name(what), port, source, receiver.data / what)

    return start



@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _logs_on_failure(request, containers: Containers):
    """A failed container test shows the last lines of every container it involved."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for name in containers.containers:
            print(f"----- logs of {name} -----\n{containers.logs(name)[-4000:]}")
