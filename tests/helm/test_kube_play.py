"""End to end with the rendered manifests: `podman kube play` runs the chart's receiver
and sidecar (the real image, the real engine) until the sidecar's /readyz answers 200
and a file written to the source arrives at the receiver; then the chart's `helm test`
pod (`rrdsync check`) runs against the receiver and must succeed.

Podman 4.3 is not Kubernetes. Where it falls short, only the test's copy of the
rendered objects is changed, in ``adapt_for_podman`` below and nowhere else; the
objects are first validated unchanged against the Kubernetes schemas.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import time
from pathlib import Path

import pytest
import yaml

from tests.fixtures.containers import Engine, free_port, http_get, keygen, wait_http
from tests.helm.chart import by_kind, hook_pod, installed, merged, objects, validate

pytestmark = [pytest.mark.helm, pytest.mark.container, pytest.mark.slow]


def adapt_for_podman(docs: list[dict], secrets_dir: Path) -> list[dict]:
    """The only changes made to the rendered objects, each a podman 4.3 gap.

    1. Secret volumes: `podman kube play` panics on a Secret volume without
       `optional: false`, and with it writes each value still base64-encoded (it also
       refuses plain text in `data:`, and leaves `stringData:` volumes empty). So each
       Secret volume becomes a hostPath directory holding the decoded items, with the
       Secret's defaultMode, and the Secret objects are left out.
    2. emptyDir volumes: podman makes each one a named volume called like the pod's
       volume (`rrdsync-run`), shared by every pod that uses the name, here the receiver
       and the sidecar (whose entrypoints both write the run dir). Each is renamed
       `<deployment>-<volume>` so every pod gets its own, as in Kubernetes.
    3. Container ports: podman 4.3 publishes a containerPort without a hostPort on the
       host at the same number (8080, 2222), where it collides with whatever holds it (the
       demo `./run-demo` leaves running on 8080). Each gets a free host port instead; the
       test reaches the pods by IP on its network anyway.
    Probes stay as rendered, but podman does not run them: it ignores readiness probes,
    and turns liveness/startup probes into healthchecks that only systemd would schedule
    (absent here; an httpGet one would also need curl, which the image does not carry).
    The test therefore asks /readyz and /healthz itself, as the kubelet would.
    Everything else (Deployment, ConfigMap via envFrom, PVCs as podman volumes,
    emptyDirs, the hostPath source, securityContext with a read-only root) runs as
    rendered. The same two changes apply to a bare Pod (the `helm test` pod).
    """
    docs = copy.deepcopy(docs)
    stored = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind(docs, "Secret")}
    out = []
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        if doc["kind"] in ("Deployment", "Pod"):
            spec = (doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment"
                    else doc["spec"])
            for vol in spec["volumes"]:
                if "secret" not in vol:
                    continue
                src = vol.pop("secret")
                data = stored[src["secretName"]]
                target = secrets_dir / doc["metadata"]["name"] / vol["name"]
                target.mkdir(parents=True)
                target.chmod(0o755)
                for item in src.get("items") or [{"key": k, "path": k} for k in data]:
                    f = target / item["path"]
                    f.write_bytes(base64.b64decode(data[item["key"]]))
                    f.chmod(src.get("defaultMode", 0o644))
                vol["hostPath"] = {"path": str(target), "type": "Directory"}
            renamed = {v["name"]: f"{doc['metadata']['name']}-{v['name']}"
                       for v in spec["volumes"] if "emptyDir" in v}
            for vol in spec["volumes"]:
                vol["name"] = renamed.get(vol["name"], vol["name"])
            for ctr in spec["containers"]:
                for mount in ctr["volumeMounts"]:
                    mount["name"] = renamed.get(mount["name"], mount["name"])
                for port in ctr.get("ports", []):
                    port.setdefault("hostPort", free_port())
        out.append(doc)
    return out


class KubePlay:
    """Plays manifests on one podman network and removes everything it made, by name."""

    def __init__(self, engine: Engine, root: Path, network: str) -> None:
        self.engine, self.root, self.network = engine, root, network
        self.files: list[Path] = []
        self.volumes: list[str] = []

    def play(self, name: str, docs: list[dict]) -> None:
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        self.files.append(path)
        self.volumes += [c["metadata"]["name"] for c in by_kind(docs, "PersistentVolumeClaim")]
        for doc in docs:  # emptyDirs are named volumes in podman
            if doc["kind"] in ("Deployment", "Pod"):
                spec = (doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment"
                        else doc["spec"])
                self.volumes += [v["name"] for v in spec["volumes"] if "emptyDir" in v]
        self.engine("kube", "play", "--network", self.network, str(path), timeout=180)

    def replay(self, name: str) -> None:
        """A new pod for an earlier play, as after a reschedule: the pods go, the PVCs'
        volumes stay (and are not declared again: podman would refuse existing ones)."""
        path = self.root / f"{name}.yaml"
        self.engine("kube", "down", str(path), timeout=120)
        docs = [d for d in yaml.safe_load_all(path.read_text())
                if d["kind"] != "PersistentVolumeClaim"]
        again = self.root / f"{name}-again.yaml"
        again.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        self.files.append(again)
        self.engine("kube", "play", "--network", self.network, str(again), timeout=180)

    def pod(self, deployment: str) -> str:
        pods = json.loads(self.engine("pod", "ps", "--format", "json").stdout)
        names = [p["Name"] for p in pods if p["Name"].startswith(f"{deployment}-pod")]
        assert len(names) == 1, names
        return names[0]

    def container(self, deployment: str, name: str = "rrdsync") -> str:
        return f"{self.pod(deployment)}-{name}"

    def ip(self, deployment: str) -> str:
        infra = json.loads(self.engine("pod", "inspect", self.pod(deployment)).stdout)
        infra = infra[0] if isinstance(infra, list) else infra
        nets = json.loads(self.engine("inspect", infra["InfraContainerID"], "--format",
                                      "{{json .NetworkSettings.Networks}}").stdout)
        return nets[self.network]["IPAddress"]

    def logs(self, deployment: str) -> str:
        proc = self.engine("logs", self.container(deployment), check=False)
        return proc.stdout + proc.stderr

    def volume_path(self, name: str) -> Path:
        return Path(self.engine("volume", "inspect", name, "--format",
                                "{{.Mountpoint}}").stdout.strip())

    def cleanup(self) -> None:
        for path in reversed(self.files):
            self.engine("kube", "down", str(path), check=False, timeout=120)
        for name in self.volumes:
            self.engine("volume", "rm", "-f", name, check=False)


@pytest.fixture
def kube(container_engine: Engine, tmp_path: Path):
    if container_engine.name != "podman":
        pytest.skip("kube play needs podman")
    network = f"rrdsync-kube-{secrets.token_hex(3)}"
    container_engine("network", "create", network)
    k = KubePlay(container_engine, tmp_path, network)
    try:
        yield k
    finally:
        k.cleanup()
        container_engine("network", "rm", "-f", network, check=False)


def _wait_for(what: str, check, timeout: float, logs=lambda: "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout} s; logs:\n{logs()[-4000:]}")


def _host_key_line(logs: str) -> str | None:
    for line in logs.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("known_hosts"):
            return record["known_hosts"]
    return None


# The image fixture may bootstrap the base image and build on a fresh machine.
@pytest.mark.timeout(900)
def test_receiver_and_sidecar_under_kube_play(kube: KubePlay, rrdsync_image: str,
                                              tmp_path: Path):
    started = time.monotonic()
    repo, tag = rrdsync_image.rsplit(":", 1)
    image = {"image": {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"}}
    tag_ = secrets.token_hex(2)
    key = tmp_path / "keys" / "id"
    keygen(key, "rrdsync-kube-play")

    # The receiver, as rendered for `role: receiver` (PVCs for data and host keys).
    recv_release = f"rrdsync-{tag_}-recv"
    recv_values = merged(image, {"role": "receiver", "receiver": {
        "authorizedKeys": [key.with_suffix(".pub").read_text().strip()],
        "persistence": {"size": "1Gi"}}})
    recv_docs = installed(recv_values, name=recv_release)
    for doc in recv_docs:
        validate(doc)
    kube.play("receiver", adapt_for_podman(recv_docs, tmp_path / "secrets"))
    line = _wait_for("the receiver logs its known_hosts line",
                     lambda: _host_key_line(kube.logs(recv_release)), 60,
                     lambda: kube.logs(recv_release))
    recv_ip = kube.ip(recv_release)
    host_key = " ".join(line.split()[1:3])

    # The source tree: a host directory (hostPath), as OpenNMS's RRD directory would be.
    src = tmp_path / "rrd"
    (src / "snmp" / "fs" / "NODES" / "n1").mkdir(parents=True)
    for d in [src, *src.rglob("*")]:
        d.chmod(0o755)
    first = src / "snmp" / "fs" / "NODES" / "n1" / "mib2-interfaces.rrd"
    first.write_bytes(os.urandom(38232))
    first.chmod(0o644)

    side_release = f"rrdsync-{tag_}-side"
    side_values = merged(image, {
        "config": {"dest": f"rrdsync@{recv_ip}:/", "sshPort": 2222, "settle": "200ms",
                   "maxDelay": "1s", "logLevel": "DEBUG"},
        "ssh": {"privateKey": key.read_text(),
                "knownHosts": f"[{recv_ip}]:2222 {host_key}"},
        "source": {"hostPath": str(src)},
    })
    side_docs = installed(side_values, name=side_release)
    for doc in side_docs:
        validate(doc)
    kube.play("sidecar", adapt_for_podman(side_docs, tmp_path / "secrets"))
    side_ip = kube.ip(side_release)

    try:
        ready_after = wait_http(f"http://{side_ip}:8080/readyz", 200, timeout=120)
    except AssertionError as e:
        raise AssertionError(f"{e}\nsidecar logs:\n{kube.logs(side_release)[-4000:]}"
                             f"\nreceiver logs:\n{kube.logs(recv_release)[-2000:]}") from None
    status, body = http_get(f"http://{side_ip}:8080/healthz")
    assert status == 200, body

    data = kube.volume_path(f"{recv_release}-data")
    landed = data / first.relative_to(src)
    _wait_for("the initial reconciliation delivers the existing file",
              lambda: landed.is_file() and landed.read_bytes() == first.read_bytes(), 30,
              lambda: kube.logs(side_release))

    # A file written now arrives through the watch (not the initial reconciliation).
    new = src / "snmp" / "fs" / "NODES" / "n1" / "tcp.rrd"
    new.write_bytes(os.urandom(4096))
    new.chmod(0o644)
    written = time.monotonic()
    arrived = data / new.relative_to(src)
    _wait_for("a file written to the source arrives at the receiver",
              lambda: arrived.is_file() and arrived.read_bytes() == new.read_bytes(), 60,
              lambda: kube.logs(side_release))
    lag = time.monotonic() - written

    # The pod runs as the chart says: UID 10001, nothing writable outside the volumes.
    side = kube.container(side_release)
    assert kube.engine("exec", side, "id", "-u").stdout.strip() == "10001"
    assert kube.engine("exec", side, "touch", "/etc/x", check=False).returncode != 0

    # `helm test`: the hook pod runs `rrdsync check` with the release's ConfigMap and
    # Secret (read-only root, an empty source, its own state dir) and exits 0 only when
    # it wrote its probe at the receiver.
    hook = hook_pod(objects(side_values, name=side_release))
    validate(hook)
    # (podman reads a ConfigMap only from the file it plays: the release's goes along.)
    kube.play("check", adapt_for_podman(
        [*by_kind(side_docs, "Secret"), *by_kind(side_docs, "ConfigMap"), hook],
        tmp_path / "secrets"))
    check_ctr = f"{hook['metadata']['name']}-rrdsync-check"
    code = kube.engine("wait", check_ctr, timeout=120).stdout.strip()
    report = kube.engine("logs", check_ctr, check=False)
    assert code == "0", f"helm test pod exited {code}:\n{report.stdout}\n{report.stderr}"
    assert "write probe" in report.stdout, report.stdout

    # A new receiver pod (as after a reschedule) keeps its host key: it lives on the
    # state PVC, so the sidecar's strict known_hosts stays valid.
    kube.replay("receiver")
    again = _wait_for("the restarted receiver logs its known_hosts line",
                      lambda: _host_key_line(kube.logs(recv_release)), 60,
                      lambda: kube.logs(recv_release))
    assert " ".join(again.split()[1:3]) == host_key
    print(f"kube play: sidecar ready after {ready_after:.1f} s, new file arrived after "
          f"{lag:.1f} s, whole test {time.monotonic() - started:.1f} s")
