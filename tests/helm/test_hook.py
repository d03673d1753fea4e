"""The `helm test` hook: a pod that runs `rrdsync check` with the release's ConfigMap,
SSH key and known_hosts, non-root on a read-only root filesystem, and succeeds only when
every destination is reachable and writable (`check` exits 1 otherwise). Running it for
real is tests/helm/test_kube_play.py's last step; here: what it is made of."""

from __future__ import annotations

import pytest
import yaml

from tests.helm.chart import (
    KUBE_VERSION,
    MINIMAL,
    PARENT_EXAMPLE,
    RECEIVER,
    by_kind,
    container,
    hook_pod,
    installed,
    merged,
    notes,
    objects,
    one,
    parent_chart,
    pod_spec,
    validate,
)

pytestmark = pytest.mark.helm


def _vols(pod: dict) -> dict[str, dict]:
    return {v["name"]: v for v in pod["spec"]["volumes"]}


def _mounts(ctr: dict) -> dict[str, dict]:
    return {m["name"]: m for m in ctr["volumeMounts"]}


@pytest.mark.parametrize("kube", ["1.25.0", KUBE_VERSION])
def test_hook_pod_is_valid(kube):
    validate(hook_pod(objects(MINIMAL)), kube)


def test_hook_pod_runs_check_with_the_release_configuration():
    docs = objects(MINIMAL)
    pod = hook_pod(docs)
    meta = pod["metadata"]
    assert meta["annotations"] == {"helm.sh/hook": "test",
                                   "helm.sh/hook-delete-policy": "before-hook-creation"}
    assert meta["name"] == "rel-rrdsync-check"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["enableServiceLinks"] is False
    assert spec["automountServiceAccountToken"] is False
    (ctr,) = spec["containers"]
    assert ctr["args"] == ["check"]
    assert ctr["image"] == container(docs)["image"]
    # The release's configuration: the same ConfigMap (and so the same RRDSYNC_DEST)...
    assert ctr["envFrom"] == container(docs)["envFrom"]
    assert ctr["envFrom"][0]["configMapRef"]["name"] == one(installed(MINIMAL),
                                                            "ConfigMap")["metadata"]["name"]
    # ...and the same key and known_hosts, from the same Secret at the same paths.
    assert _vols(pod)["rrdsync-ssh"] == next(v for v in pod_spec(docs)["volumes"]
                                             if v["name"] == "rrdsync-ssh")
    assert _mounts(ctr)["rrdsync-ssh"] == _mounts(container(docs))["rrdsync-ssh"]
    # No ports, no probes: it runs once and exits.
    assert not {"ports", "livenessProbe", "readinessProbe", "startupProbe"} & set(ctr)


def test_hook_pod_is_non_root_with_a_read_only_root():
    for values in (MINIMAL, merged(MINIMAL, {"securityContext": {
            "readOnlyRootFilesystem": False, "runAsNonRoot": False}})):
        pod = hook_pod(objects(values))
        sc = pod["spec"]["containers"][0]["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # Everything it writes has a volume: /tmp, the run dir, the state dir.
    mounts = {m["mountPath"] for m in hook_pod(objects(MINIMAL))["spec"]["containers"][0][
        "volumeMounts"]}
    assert {"/tmp", "/run/rrdsync", "/var/lib/rrdsync"} <= mounts


def test_hook_pod_never_touches_the_running_pod_volumes():
    """The source may be a ReadWriteOnce volume in use (or another pod's); the state PVC
    is the running pod's: the test pod gets empty directories for both."""
    values = merged(MINIMAL, {"state": {"persistence": {"enabled": True}},
                              "source": {"subPath": "rrd"}})
    pod = hook_pod(objects(values))
    vols = _vols(pod)
    assert "emptyDir" in vols["rrdsync-source"] and "emptyDir" in vols["rrdsync-state"]
    src = _mounts(pod["spec"]["containers"][0])["rrdsync-source"]
    assert src == {"name": "rrdsync-source", "mountPath": "/data", "readOnly": True}
    assert not [v for v in vols.values() if "persistentVolumeClaim" in v]


def test_hook_pod_uses_an_existing_secret():
    values = merged(MINIMAL, {"ssh": {"existingSecret": "my-ssh", "privateKey": "",
                                      "knownHosts": ""}})
    pod = hook_pod(objects(values))
    assert _vols(pod)["rrdsync-ssh"]["secret"]["secretName"] == "my-ssh"


def test_hook_pod_is_not_behind_the_service_but_under_the_network_policy():
    docs = objects(merged(MINIMAL, {"networkPolicy": {"enabled": True}}))
    labels = hook_pod(docs)["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "test"
    selector = one(docs, "Service")["spec"]["selector"]
    assert not selector.items() <= labels.items()
    np_selector = one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"]
    assert np_selector.items() <= labels.items()
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert np_selector.items() <= pod_labels.items()


def test_hook_pod_keeps_scheduling_and_pull_secrets():
    values = merged(MINIMAL, {"imagePullSecrets": [{"name": "regcred"}],
                              "nodeSelector": {"kubernetes.io/os": "linux"},
                              "tolerations": [{"key": "dedicated", "operator": "Exists"}]})
    spec = hook_pod(objects(values))["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert spec["serviceAccountName"] == "rel-rrdsync"


def test_hook_pod_not_installed_and_can_be_turned_off():
    assert not [d for d in installed(MINIMAL) if d["kind"] == "Pod"]
    off = objects(merged(MINIMAL, {"tests": {"enabled": False}}))
    assert not by_kind(off, "Pod")
    assert "helm test" not in notes(merged(MINIMAL, {"tests": {"enabled": False}}))
    assert "helm test rel -n rrd --logs" in notes(MINIMAL)


def test_no_hook_pod_for_the_receiver():
    assert not by_kind(objects(RECEIVER), "Pod")


def test_hook_pod_for_the_sidecar_in_the_opennms_pod(tmp_path):
    parent = parent_chart(tmp_path)
    values = yaml.safe_load((PARENT_EXAMPLE / "values.yaml").read_text())
    pod = hook_pod(objects(values, chart=parent, name="onms"))
    validate(pod)
    vols = _vols(pod)
    # The OpenNMS pod's RRD volume is not this pod's: an empty directory of that name.
    assert "emptyDir" in vols["rrd"]
    assert vols["rrdsync-ssh"]["secret"]["secretName"] == "rrdsync-ssh"
    # No ServiceAccount of its own in this mode: the namespace default, without a token.
    assert "serviceAccountName" not in pod["spec"]
    assert pod["spec"]["automountServiceAccountToken"] is False
