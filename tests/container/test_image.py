"""The image itself: what it contains, how it refuses bad configuration, and what the
receiver lets a sidecar's key do (write, and nothing else)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.fixtures.containers import (
    HARDENED,
    REPO,
    Containers,
    Engine,
    SshMaterial,
    not_log_lines,
)
from tests.fixtures.rrd import wait_for


def test_image_metadata(container_engine: Engine, rrdsync_image: str):
    info = json.loads(container_engine("image", "inspect", rrdsync_image).stdout)[0]
    cfg = info.get("Config") or info["config"]
    assert cfg["User"] == "10001:0"
    assert cfg["Entrypoint"] == ["/usr/local/bin/rrdsync-entrypoint"]
    assert cfg["Labels"]["org.opencontainers.image.title"] == "rrdsync"
    health = cfg.get("Healthcheck") or info.get("Healthcheck")  # podman: top level
    assert "/usr/local/lib/rrdsync/healthcheck" in json.dumps(health)
    size_mb = int(info["Size"]) / 1e6
    assert size_mb < 200, f"image is {size_mb:.0f} MB"
    # no compilers or build tools in the runtime image
    out = container_engine("run", "--rm", rrdsync_image, "bash", "-c",
                           "command -v gcc cc make pip pip3 apt-get; id -u; id -g").stdout
    assert out.split() == ["/usr/bin/apt-get", "10001", "0"]
    # the license the label names is the one shipped (and the repository's LICENSE)
    assert cfg["Labels"]["org.opencontainers.image.licenses"] == "Apache-2.0"
    shipped = container_engine("run", "--rm", rrdsync_image, "cat",
                               "/usr/share/doc/rrdsync/LICENSE").stdout
    assert "Apache License" in shipped and "Version 2.0" in shipped
    assert shipped == (REPO / "LICENSE").read_text()


DEST = {"RRDSYNC_DEST": "rrdsync@host:/x"}
WRITABLE_DATA = ["--tmpfs", "/data:mode=1777"]


@pytest.mark.parametrize(("role", "env", "options", "variable"), [
    ("sidecar", {**DEST, "RRDSYNC_SETTLE": "soon"}, [], "RRDSYNC_SETTLE"),
    ("sidecar", {**DEST, "RRDSYNC_SETLE": "1s"}, [], "RRDSYNC_SETLE"),
    ("sidecar", {}, [], "RRDSYNC_DEST"),
    ("sidecar", DEST, [], "RRDSYNC_SSH_KEY"),  # no key mounted
    ("receiver", {"RRDSYNC_LISTEN_PORT": "ssh"}, [], "RRDSYNC_LISTEN_PORT"),
    ("receiver", {}, [], "RRDSYNC_RECEIVE_DIR"),  # read-only root and no volume on /data
    ("receiver", {}, WRITABLE_DATA, "RRDSYNC_AUTHORIZED_KEYS"),  # no keys mounted
])
def test_bad_config_exits_2_with_one_line(container_engine: Engine, rrdsync_image: str,
                                          role: str, env: dict, options: list, variable: str):
    args = ["run", "--rm", *HARDENED, *options]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    proc = container_engine(*args, rrdsync_image, role, check=False, timeout=60)
    # podman adds its own systemd-healthcheck complaints on this machine: keep ours
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("time=")]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and variable in lines[0], lines
    assert proc.stdout == ""
    # one log line like every other line of the container (one log stream)
    assert not_log_lines(lines[0])[1] == [], lines
    assert json.loads(lines[0])["event"] == "config_error"


def _ssh(material: SshMaterial, port: int, *args: str) -> list[str]:
    known = material.known_hosts("127.0.0.1", port)
    key = material.key_copy("id-host", 0o600)
    return ["ssh", "-F", "/dev/null", "-p", str(port), "-i", str(key),
            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", *args]


def test_receiver_accepts_writes_only(receiver, ssh_material: SshMaterial, tmp_path):
    ssh = _ssh(ssh_material, receiver.ssh_port)
    src = tmp_path / "src"
    (src / "pushed").mkdir(parents=True)
    (src / "pushed" / "a.rrd").write_bytes(b"x" * 1000)
    rsh = subprocess.list2cmdline(ssh)
    target = "rrdsync@127.0.0.1:/"
    push = subprocess.run(["rsync", "-a", "-e", rsh, f"{src}/", target],
                          capture_output=True, text=True)
    assert push.returncode == 0, push.stderr
    assert (receiver.data / "pushed" / "a.rrd").read_bytes() == b"x" * 1000

    pull = subprocess.run(["rsync", "-a", "-e", rsh, target, str(tmp_path / "pulled")],
                          capture_output=True, text=True)
    assert pull.returncode != 0 and "write-only" in pull.stderr

    (src / "pushed" / "a.rrd").unlink()
    delete = subprocess.run(["rsync", "-a", "--delete", "-e", rsh, f"{src}/", target],
                            capture_output=True, text=True)
    assert delete.returncode != 0
    assert (receiver.data / "pushed" / "a.rrd").exists()

    shell = subprocess.run([*ssh, "rrdsync@127.0.0.1", "id; touch /data/owned"],
                           capture_output=True, text=True)
    assert shell.returncode != 0 and "rrsync" in shell.stderr
    assert not (receiver.data / "owned").exists()
    forward = subprocess.run([*ssh, "-N", "-o", "ExitOnForwardFailure=yes",
                              "-L", "127.0.0.1:0:127.0.0.1:2222", "rrdsync@127.0.0.1"],
                             capture_output=True, text=True, timeout=30)
    assert forward.returncode != 0


def test_receiver_logs_known_hosts_line(containers: Containers, receiver,
                                        ssh_material: SshMaterial):
    pub = (ssh_material.host_key_dir / "ssh_host_ed25519_key.pub").read_text().split()[1]
    logs = containers.logs(receiver.name)
    lines = [json.loads(ln) for ln in logs.splitlines() if ln.startswith("{")]
    known = [ln["known_hosts"] for ln in lines if ln.get("event") == "receiver_host_key"]
    assert known and known[0].startswith("[") and known[0].endswith(pub)


def test_receiver_generates_host_key_once_and_logs_it_at_every_start(
        containers: Containers, rrdsync_image: str, ssh_material: SshMaterial, tmp_path):
    """No host key given: one is generated into the host-key volume on first start, kept
    across restarts, and its known_hosts line logged each time."""
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 10001, 0)
    state = containers.volume("hostkeys")
    name = containers.name("fresh-receiver")
    containers.run("fresh-receiver", rrdsync_image, "receiver", options=[
        *HARDENED, "-v", f"{state}:/var/lib/rrdsync", "-v", f"{data}:/data",
        "-v", f"{ssh_material.authorized_keys}:/etc/rrdsync/receiver/authorized_keys:ro"])

    def known_lines() -> list[str]:
        out = []
        for ln in containers.logs(name).splitlines():
            if ln.startswith("{") and "receiver_host_key" in ln:
                out.append(json.loads(ln)["known_hosts"].split(" ", 1)[1])
        return out

    wait_for(lambda: len(known_lines()) == 1, timeout=30, what="first known_hosts line")
    assert "host_key_generated" in containers.logs(name)
    containers.engine("restart", "-t", "5", name)
    wait_for(lambda: len(known_lines()) == 2, timeout=30, what="second known_hosts line")
    first, second = known_lines()
    assert first == second and first.startswith("ssh-ed25519 ")
    assert containers.logs(name).count('"event": "host_key_generated"') == 1
