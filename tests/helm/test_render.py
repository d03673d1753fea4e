"""The chart rendered by Helm's own engine: lint, strict Kubernetes schemas, and what a
reviewer would check by hand (probes, securityContext, mounts, secrets, rollout)."""

from __future__ import annotations

import base64
import tarfile

import helm_python as helm
import pytest

from rrdsync import config as rrdsync_config
from tests.helm.chart import (
    CHART,
    KUBE_VERSION,
    MINIMAL,
    RECEIVER,
    by_kind,
    container,
    engine_accepts,
    installed,
    load_values,
    merged,
    notes,
    objects,
    one,
    package_version,
    pod_spec,
    validate,
    values_files,
    walk_strings,
)

pytestmark = pytest.mark.helm

# Lint findings we accept, with the reason. Nothing else may appear (strict lint).
EXPLAINED_LINT = {
    # Info level: the project publishes no icon; an invented URL would be worse.
    (1, "icon is recommended"),
}

VALUE_SETS = {"minimal": MINIMAL, "receiver": RECEIVER} | {
    f"{p.parent.name}/{p.name}": load_values(p) for p in values_files()
}


def test_kubernetes_schemas_are_current():
    major, minor = (int(x) for x in KUBE_VERSION.split(".")[:2])
    assert (major, minor) >= (1, 37), KUBE_VERSION


def test_chart_metadata():
    with helm.Chart.load(str(CHART)) as ch:
        meta = ch.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == package_version(), "appVersion follows pyproject's version"


def test_package_leaves_examples_out(tmp_path):
    """The packaged chart carries ci/ (chart-testing reads it) but not examples/."""
    archive = helm.package(str(CHART), destination=str(tmp_path))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "rrdsync/values.schema.json" in names and "rrdsync/README.md" in names
    assert "rrdsync/ci/minimal-values.yaml" in names
    assert not [n for n in names if n.startswith("rrdsync/examples")]


def test_default_values_alone_are_refused():
    """values.yaml alone has no destination: lint reports the schema error."""
    report = helm.lint(str(CHART), strict=True)
    assert any("/config/dest" in e for e in report["errors"]), report


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_is_clean(name):
    report = helm.lint(str(CHART), VALUE_SETS[name], strict=True, kube_version=f"v{KUBE_VERSION}")
    assert not report["errors"], report
    found = {(m["severity"], m["error"]) for m in report["messages"]}
    assert found <= EXPLAINED_LINT, found - EXPLAINED_LINT


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_object_validates_strictly(name):
    docs = objects(VALUE_SETS[name])
    assert docs
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("name", ["minimal", "receiver", "ci/full-values.yaml"])
def test_oldest_supported_kubernetes(name):
    """Chart.yaml says kubeVersion >=1.25: the objects are valid there too."""
    for doc in objects(VALUE_SETS[name]):
        validate(doc, "1.25.0")


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_engine_accepts_the_rendered_environment(name):
    """The ConfigMap is exactly what rrdsync's own configuration loader accepts: known
    names only, values in its formats (durations, booleans, whole numbers)."""
    values = VALUE_SETS[name]
    cm = next(d for d in objects(values) if d["kind"] == "ConfigMap"
              and d["metadata"]["name"] == "rel-rrdsync")
    env = cm["data"]
    assert all(k.startswith("RRDSYNC_") and isinstance(v, str) for k, v in env.items())
    role = values.get("role", "sidecar")
    engine_accepts(env, role)


def test_every_design_variable_is_reachable():
    names = set()
    for values in (MINIMAL, RECEIVER):
        names |= set(one(objects(values), "ConfigMap")["data"])
    # The two optional ones that are empty by default, set explicitly.
    extra = merged(MINIMAL, {"config": {"exclude": ["*.tmp"], "rrdcached": "localhost:42217",
                                        "rrdcachedRoot": "/opt/opennms/share/rrd"}})
    names |= set(one(objects(extra), "ConfigMap")["data"])
    assert names == rrdsync_config.NAMES


def test_deployment_is_one_replica_recreate():
    for values in (MINIMAL, RECEIVER):
        dep = one(objects(values), "Deployment")
        assert dep["spec"]["replicas"] == 1
        assert dep["spec"]["strategy"] == {"type": "Recreate"}


def _port(ctr: dict, name: str) -> int:
    return next(p["containerPort"] for p in ctr["ports"] if p["name"] == name)


@pytest.mark.parametrize("values, port", [(MINIMAL, 8080),
                                          (merged(MINIMAL, {"config": {"httpAddr": "[::]:9100"},
                                                            "service": {"port": 9100}}), 9100)])
def test_sidecar_probes(values, port):
    docs = objects(values)
    ctr = container(docs)
    assert _port(ctr, "rrdsync-http") == port
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        get = ctr[probe]["httpGet"]
        assert (get["path"], _port(ctr, get["port"])) == (path, port), probe
    svc = one(docs, "Service")
    assert svc["spec"]["ports"][0]["targetPort"] == "rrdsync-http"
    # The startup budget covers a slow start; the initial sync is readiness' business.
    startup = ctr["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_receiver_probes_and_service():
    docs = objects(RECEIVER)
    ctr = container(docs)
    assert ctr["args"] == ["receiver"]
    assert _port(ctr, "rrdsync-ssh") == 2222
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert _port(ctr, ctr[probe]["tcpSocket"]["port"]) == 2222
    svc = one(docs, "Service")
    assert svc["spec"]["ports"] == [{"name": "ssh", "port": 2222, "targetPort": "rrdsync-ssh",
                                     "protocol": "TCP"}]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_security_context(name):
    values = VALUE_SETS[name]
    docs = objects(values)
    spec = pod_spec(docs) if by_kind(docs, "Deployment") else None
    if spec is None:
        pytest.skip("no pod of its own (standalone: false)")
    sc = container(docs)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["terminationGracePeriodSeconds"] > 10
    assert spec["enableServiceLinks"] is False
    assert spec["automountServiceAccountToken"] is False
    assert container(docs)["resources"]["requests"]
    if values.get("role") == "receiver":
        assert sc["runAsUser"] == 10001
    mounts = {m["mountPath"]: m for m in container(docs)["volumeMounts"]}
    assert "/tmp" in mounts
    run = next(v for v in spec["volumes"] if v["name"] == "rrdsync-run")
    assert run["emptyDir"]["medium"] == "Memory"


def test_service_account_token_off():
    sa = one(objects(MINIMAL), "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize("source", [{"existingClaim": "opennms-rrd"},
                                    {"existingClaim": "", "hostPath": "/opt/opennms/share/rrd"}])
def test_source_is_mounted_read_only(source):
    docs = objects(merged(MINIMAL, {"source": source}))
    mount = next(m for m in container(docs)["volumeMounts"] if m["name"] == "rrdsync-source")
    assert mount["readOnly"] is True and mount["mountPath"] == "/data"
    vol = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "rrdsync-source")
    if "persistentVolumeClaim" in vol:
        # Read-only at the volume too: the kubelet then never re-owns OpenNMS's files.
        assert vol["persistentVolumeClaim"] == {"claimName": "opennms-rrd", "readOnly": True}
    else:
        assert vol["hostPath"] == {"path": "/opt/opennms/share/rrd", "type": "Directory"}


@pytest.mark.parametrize("values", [MINIMAL, RECEIVER], ids=["sidecar", "receiver"])
def test_no_secret_value_outside_the_secret(values):
    docs = objects(values)
    secret = one(docs, "Secret")
    plain = [base64.b64decode(v).decode().strip() for v in secret["data"].values()]
    assert plain and all(plain)
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        for text in walk_strings(doc):
            for p in plain:
                assert p not in text, f"{doc['kind']} carries a secret value"
    ctr = container(docs)
    assert "env" not in ctr or all("value" not in e or "SENTINEL" not in e["value"]
                                    for e in ctr["env"])
    for ref in ctr["envFrom"]:
        assert "secretRef" not in ref


def test_secret_is_mounted_as_files():
    docs = objects(MINIMAL)
    ctr = container(docs)
    mount = next(m for m in ctr["volumeMounts"] if m["name"] == "rrdsync-ssh")
    assert mount == {"name": "rrdsync-ssh", "mountPath": "/etc/rrdsync/ssh", "readOnly": True}
    vol = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "rrdsync-ssh")
    assert vol["secret"]["secretName"] == one(docs, "Secret")["metadata"]["name"]
    assert {i["path"] for i in vol["secret"]["items"]} == {"id", "known_hosts"}
    assert vol["secret"]["defaultMode"] == 0o440


def test_key_and_known_hosts_in_different_directories():
    docs = objects(merged(MINIMAL, {"config": {"sshKey": "/etc/rrdsync/key/id",
                                               "knownHosts": "/etc/rrdsync/hosts/kh"}}))
    mounts = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert mounts["rrdsync-ssh"] == "/etc/rrdsync/key"
    assert mounts["rrdsync-known-hosts"] == "/etc/rrdsync/hosts"
    for doc in docs:
        validate(doc)


def _annotations(values: dict) -> dict:
    return one(objects(values), "Deployment")["spec"]["template"]["metadata"]["annotations"]


def test_checksums_roll_the_pod():
    base = _annotations(MINIMAL)
    new_key = _annotations(merged(MINIMAL, {"ssh": {"privateKey": "ANOTHER-KEY"}}))
    new_hosts = _annotations(merged(MINIMAL, {"ssh": {"knownHosts": "[x]:2222 ssh-ed25519 B"}}))
    new_config = _annotations(merged(MINIMAL, {"config": {"settle": "1s"}}))
    unrelated = _annotations(merged(MINIMAL, {"podLabels": {"a": "b"}}))
    assert new_key["checksum/secret"] != base["checksum/secret"]
    assert new_hosts["checksum/secret"] != base["checksum/secret"]
    assert new_key["checksum/config"] == base["checksum/config"]
    assert new_config["checksum/config"] != base["checksum/config"]
    assert new_config["checksum/secret"] == base["checksum/secret"]
    assert unrelated == base
    recv = _annotations(RECEIVER)
    recv2 = _annotations(merged(RECEIVER, {"receiver": {"authorizedKeys": ["ssh-ed25519 OTHER"]}}))
    assert recv["checksum/secret"] != recv2["checksum/secret"]


def test_existing_secret_is_used_and_not_created():
    values = merged(MINIMAL, {"ssh": {"existingSecret": "my-ssh", "privateKey": "",
                                      "knownHosts": ""}})
    docs = objects(values)
    assert not by_kind(docs, "Secret")
    vol = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "rrdsync-ssh")
    assert vol["secret"]["secretName"] == "my-ssh"


def test_receiver_objects():
    docs = objects(RECEIVER)
    env = one(docs, "ConfigMap")["data"]
    assert "RRDSYNC_DEST" not in env and env["RRDSYNC_RECEIVER_ALLOW_DELETE"] == "false"
    claims = {c["metadata"]["name"]: c for c in by_kind(docs, "PersistentVolumeClaim")}
    assert set(claims) == {"rel-rrdsync-data", "rel-rrdsync-state"}
    for c in claims.values():
        assert c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    mounts = {m["name"]: m for m in container(docs)["volumeMounts"]}
    assert mounts["rrdsync-data"]["mountPath"] == "/data"
    assert mounts["rrdsync-state"]["mountPath"] == "/var/lib/rrdsync"  # host keys live here
    assert mounts["rrdsync-authorized-keys"]["readOnly"] is True
    secret = one(docs, "Secret")
    assert base64.b64decode(secret["data"]["authorized_keys"]).decode() == (
        "ssh-ed25519 AUTHORIZED-KEY-SENTINEL sidecar\n")
    text = notes(RECEIVER)
    assert "logs deployment/rel-rrdsync | grep known_hosts" in text
    assert "[rel-rrdsync.rrd.svc]:2222" in text


def test_receiver_host_keys_from_secret():
    docs = objects(merged(RECEIVER, {"receiver": {"hostKeys": {"existingSecret": "hk"}}}))
    mount = next(m for m in container(docs)["volumeMounts"] if m["name"] == "rrdsync-host-keys")
    assert mount == {"name": "rrdsync-host-keys", "mountPath": "/var/lib/rrdsync/hostkeys",
                     "readOnly": True}
    state = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "rrdsync-state")
    assert "emptyDir" in state  # nothing to keep: the keys come from the Secret
    assert [c["metadata"]["name"] for c in by_kind(docs, "PersistentVolumeClaim")] == [
        "rel-rrdsync-data"]


def test_receiver_allows_deletes_only_when_asked():
    env = one(objects(merged(RECEIVER, {"config": {"receiverAllowDelete": True}})), "ConfigMap")
    assert env["data"]["RRDSYNC_RECEIVER_ALLOW_DELETE"] == "true"


def test_sidecar_notes_tell_how_to_check_readiness():
    text = notes(MINIMAL)
    assert "rollout status deployment/rel-rrdsync" in text
    assert "/readyz" in text


def test_full_values_render_every_option():
    docs = installed(load_values(CHART / "ci" / "full-values.yaml"))
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ConfigMap", "ConfigMap", "Deployment", "NetworkPolicy",
                            "PersistentVolumeClaim", "PrometheusRule", "Service",
                            "ServiceAccount", "ServiceMonitor"])
    ctr = container(docs)
    assert ctr["image"] == ("registry.example.com/ops/rrdsync@sha256:"
                            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    assert ctr["envFrom"][1] == {"configMapRef": {"name": "proxy-settings"}}
    spec = pod_spec(docs)
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-source"]
    assert [c["name"] for c in spec["containers"]] == ["rrdsync", "log-shipper"]
    assert _port(ctr, "rrdsync-http") == 9100
    np = one(docs, "NetworkPolicy")["spec"]
    assert np["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = [p["port"] for rule in np["egress"] for p in rule["ports"]]
    assert sorted(egress_ports) == [22, 53, 53, 2200]  # each destination's SSH port
    dest_rule = next(r for r in np["egress"] if r["ports"][0]["port"] == 22)
    assert [p["port"] for p in dest_rule["ports"]] == [22, 2200]
    assert dest_rule["to"] == [{"ipBlock": {"cidr": "192.0.2.10/32"}},
                               {"ipBlock": {"cidr": "192.0.2.11/32"}}]
    assert np["ingress"][0]["ports"] == [{"port": 9100, "protocol": "TCP"}]
    sm = one(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == one(docs, "Service")["spec"]["ports"][0]["name"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_receiver_network_policy_allows_only_ssh_in_and_dns_out():
    docs = objects(merged(RECEIVER, {"networkPolicy": {"enabled": True}}))
    np = one(docs, "NetworkPolicy")["spec"]
    assert np["ingress"] == [{"ports": [{"port": 2222, "protocol": "TCP"}]}]
    assert [p["port"] for rule in np["egress"] for p in rule["ports"]] == [53, 53]


def test_local_destination_mounts_its_volume_and_needs_no_ssh():
    docs = objects(load_values(CHART / "examples" / "sidecar-nfs-destination-values.yaml"))
    assert not by_kind(docs, "Secret")
    mounts = {m["name"]: m for m in container(docs)["volumeMounts"]}
    assert "rrdsync-ssh" not in mounts
    assert mounts["rrdsync-dest"]["mountPath"] == "/replica"
    assert "readOnly" not in mounts["rrdsync-dest"]


def test_accept_new_without_known_hosts_mounts_only_the_key():
    values = merged(MINIMAL, {"config": {"sshHostKeyPolicy": "accept-new"},
                              "ssh": {"knownHosts": ""}})
    docs = objects(values)
    vol = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "rrdsync-ssh")
    assert [i["path"] for i in vol["secret"]["items"]] == ["id"]
    assert "trusts the destination's host key on first" in notes(values)
