"""What people expect of a well-kept chart: commonLabels/commonAnnotations on every
object, the standard app.kubernetes.io labels on the pod template, image.registry with
global.imageRegistry, extraEnvFrom, init and extra containers, and Chart.yaml's
home/sources/maintainers."""

from __future__ import annotations

import helm_python as helm
import pytest

from tests.helm.chart import (
    CHART,
    MINIMAL,
    RECEIVER,
    container,
    merged,
    objects,
    one,
    pod_spec,
    validate,
)

pytestmark = pytest.mark.helm

COMMON = {"commonLabels": {"example.com/team": "noc", "app.kubernetes.io/name": "hijack"},
          "commonAnnotations": {"example.com/contact": "noc@example.com"}}
# Every kind the chart can render, sidecar side (receiver separately below).
EVERYTHING = merged(MINIMAL, {
    **COMMON,
    "networkPolicy": {"enabled": True},
    "state": {"persistence": {"enabled": True}},
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                "grafanaDashboard": {"enabled": True}},
})
STANDARD = ("app.kubernetes.io/name", "app.kubernetes.io/instance",
            "app.kubernetes.io/component", "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by", "helm.sh/chart")


@pytest.mark.parametrize("values", [EVERYTHING, merged(RECEIVER, COMMON),
                                    merged(EVERYTHING, {"metrics": {
                                        "serviceMonitor": {"enabled": False},
                                        "podMonitor": {"enabled": True}}})],
                         ids=["sidecar", "receiver", "pod-monitor"])
def test_common_labels_and_annotations_on_every_object(values):
    docs = objects(values)
    kinds = {d["kind"] for d in docs}
    for doc in docs:
        meta = doc["metadata"]
        assert meta["labels"]["example.com/team"] == "noc", doc["kind"]
        # A common label never replaces a standard one (selectors rely on them).
        assert meta["labels"]["app.kubernetes.io/name"] == "rrdsync", doc["kind"]
        assert set(STANDARD) <= set(meta["labels"]), doc["kind"]
        assert meta["annotations"]["example.com/contact"] == "noc@example.com", doc["kind"]
        validate(doc)
    if values is EVERYTHING:
        assert {"ConfigMap", "Secret", "Deployment", "Service", "ServiceAccount",
                "NetworkPolicy", "PersistentVolumeClaim", "ServiceMonitor", "PrometheusRule",
                "Pod"} <= kinds


def test_object_annotations_win_over_common_ones():
    values = merged(RECEIVER, {
        "commonAnnotations": {"helm.sh/resource-policy": "delete", "a": "common"},
        "receiver": {"service": {"annotations": {"a": "service"}}}})
    docs = objects(values)
    for pvc in [d for d in docs if d["kind"] == "PersistentVolumeClaim"]:
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert one(docs, "Service")["metadata"]["annotations"]["a"] == "service"
    assert one(docs, "ConfigMap")["metadata"]["annotations"]["a"] == "common"


def test_no_annotations_block_without_annotations():
    for doc in objects(MINIMAL):
        if doc["kind"] != "Pod":  # the test hook carries its hook annotations
            assert "annotations" not in doc["metadata"], doc["kind"]


def test_pod_template_has_the_standard_labels():
    docs = objects(merged(MINIMAL, {**COMMON, "podLabels": {"example.com/tier": "rrd"}}))
    dep = one(docs, "Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert set(STANDARD) <= set(labels)
    assert labels["app.kubernetes.io/version"] == "0.1.0"
    assert labels["example.com/tier"] == "rrd" and labels["example.com/team"] == "noc"
    # The selector (immutable) stays the three selector labels.
    assert dep["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "rrdsync", "app.kubernetes.io/instance": "rel",
        "app.kubernetes.io/component": "sidecar"}
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # Common annotations stay off the pod template: changing one must not roll the pod.
    assert "example.com/contact" not in dep["spec"]["template"]["metadata"]["annotations"]


def test_pod_labels_cannot_break_the_selector():
    docs = objects(merged(MINIMAL, {"podLabels": {"app.kubernetes.io/component": "x"}}))
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "sidecar"


@pytest.mark.parametrize("image, global_, expected", [
    ({}, {}, "rrdsync:0.1.0"),
    ({"registry": "registry.example.com"}, {}, "registry.example.com/rrdsync:0.1.0"),
    ({"registry": "registry.example.com:5000/"}, {}, "registry.example.com:5000/rrdsync:0.1.0"),
    ({"registry": "registry.example.com"}, {"imageRegistry": "mirror.example.com"},
     "mirror.example.com/rrdsync:0.1.0"),
    ({}, {"imageRegistry": "mirror.example.com"}, "mirror.example.com/rrdsync:0.1.0"),
    ({"registry": "r.example", "repository": "ops/rrdsync", "tag": "1.2"}, {},
     "r.example/ops/rrdsync:1.2"),
    ({"registry": "r.example", "digest": "sha256:" + "a" * 64}, {},
     "r.example/rrdsync@sha256:" + "a" * 64),
])
def test_image_registry(image, global_, expected):
    docs = objects(merged(MINIMAL, {"image": image, "global": global_}))
    assert container(docs)["image"] == expected
    hook = next(d for d in docs if d["kind"] == "Pod")
    assert hook["spec"]["containers"][0]["image"] == expected


def test_extra_env_from_follows_the_chart_config_map():
    extra = [{"secretRef": {"name": "proxy"}}, {"configMapRef": {"name": "tz"}}]
    docs = objects(merged(MINIMAL, {"extraEnvFrom": extra}))
    env_from = container(docs)["envFrom"]
    assert env_from == [{"configMapRef": {"name": "rel-rrdsync"}}, *extra]
    for doc in docs:
        validate(doc)


def test_init_and_extra_containers():
    init = [{"name": "wait", "image": "busybox:1.36", "command": ["true"]}]
    extra = [{"name": "shipper", "image": "fluent-bit:3.0"}]
    docs = objects(merged(MINIMAL, {"initContainers": init, "extraContainers": extra}))
    spec = pod_spec(docs)
    assert spec["initContainers"] == init
    assert [c["name"] for c in spec["containers"]] == ["rrdsync", "shipper"]
    for doc in docs:
        validate(doc)


def test_no_init_containers_by_default():
    assert "initContainers" not in pod_spec(objects(MINIMAL))


@pytest.mark.parametrize("override, where", [
    ({"image": {"registry": "https://registry.example.com"}}, "/image/registry"),
    ({"image": {"registry": "bad registry"}}, "/image/registry"),
    ({"initContainers": [{"image": "busybox"}]}, "/initContainers/0"),
    ({"extraContainers": [{"image": "busybox"}]}, "/extraContainers/0"),
    ({"extraEnvFrom": ["proxy"]}, "/extraEnvFrom/0"),
    ({"commonLabels": {"a": 1}}, "/commonLabels/a"),
    ({"commonAnnotations": []}, "/commonAnnotations"),
    ({"global": {"imageRegistry": 5}}, "/global/imageRegistry"),
])
def test_schema_refuses(override, where):
    with pytest.raises(helm.HelmValuesError) as exc:
        objects(merged(MINIMAL, override))
    assert where in str(exc.value)


def test_parent_globals_are_accepted():
    """A parent chart's other global values reach this chart too: allowed."""
    objects(merged(MINIMAL, {"global": {"storageClass": "fast", "imageRegistry": ""}}))


def test_chart_yaml_home_sources_maintainers():
    with helm.Chart.load(str(CHART)) as ch:
        meta = ch.metadata
    assert meta["home"].startswith("https://")
    assert meta["sources"] and all(s.startswith("https://") for s in meta["sources"])
    assert meta["maintainers"] and all(m["name"] and m["url"].startswith("https://")
                                       for m in meta["maintainers"])
