"""rrdsync inside another application's pod: the OpenNMS parent-chart example renders
with the rrdsync.sidecar.* templates, validates, and has no readiness probe."""

from __future__ import annotations

import helm_python as helm
import pytest
import yaml

from tests.helm.chart import (
    KUBE_VERSION,
    PARENT_EXAMPLE,
    is_hook,
    objects,
    one,
    parent_chart,
    validate,
)

pytestmark = pytest.mark.helm


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    return parent_chart(tmp_path_factory.mktemp("parent"))


def _pod(docs):
    dep = one(docs, "Deployment")
    assert dep["metadata"]["name"] == "onms-opennms"
    return dep["spec"]["template"]


def test_opennms_example_renders_and_validates(parent):
    docs = objects({}, chart=parent, name="onms")
    for doc in docs:
        validate(doc)
    pod = _pod(docs)
    spec = pod["spec"]
    assert spec["enableServiceLinks"] is False
    names = [c["name"] for c in spec["containers"]]
    assert names == ["opennms", "rrdsync"]
    ports = [p["name"] for c in spec["containers"] for p in c.get("ports", [])]
    assert len(ports) == len(set(ports)), "port names must be unique in a pod"
    rrd = spec["containers"][1]
    # Liveness and startup only: a backlog must never make OpenNMS NotReady.
    assert "readinessProbe" not in rrd
    assert rrd["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert rrd["startupProbe"]["httpGet"]["path"] == "/healthz"
    # The pod's own RRD volume, read-only; no second source volume.
    src = next(m for m in rrd["volumeMounts"] if m["mountPath"] == "/data")
    assert src == {"name": "rrd", "mountPath": "/data", "readOnly": True}
    vols = [v["name"] for v in spec["volumes"]]
    assert "rrdsync-source" not in vols and "rrd" in vols
    assert len(vols) == len(set(vols))
    assert set(pod["metadata"]["annotations"]) == {"checksum/config", "checksum/secret"}
    # The subchart renders no pod, Service or ServiceAccount of its own (only the
    # `helm test` hook pod, which `helm install` does not create).
    kinds = sorted(d["kind"] for d in docs if not is_hook(d))
    assert kinds == ["ConfigMap", "Deployment"]


def test_readiness_can_be_asked_for(parent):
    values = yaml.safe_load((PARENT_EXAMPLE / "values.yaml").read_text())
    values["rrdsync"]["sidecar"] = {"readinessProbe": True}
    docs = objects(values, chart=parent, name="onms")
    rrd = _pod(docs)["spec"]["containers"][1]
    assert rrd["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_opennms_example_lints_clean(parent):
    report = helm.lint(str(parent), strict=True, with_subcharts=True,
                       kube_version=f"v{KUBE_VERSION}")
    assert not report["errors"], report
    found = {(m["severity"], m["error"]) for m in report["messages"]}
    assert found <= {(1, "icon is recommended")}, found
