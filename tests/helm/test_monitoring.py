"""Kubernetes monitoring for both modes: a ServiceMonitor for the chart's own pod, a
PodMonitor for the sidecar inside the OpenNMS pod, a PrometheusRule made of the shipped
alerts and the Grafana dashboard as a ConfigMap for Grafana's sidecar. Each is off by
default; on, each renders an object valid for Kubernetes 1.25 and the newest release
(the Operator's kinds against the Operator's own types)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil

import helm_python as helm
import pytest
import yaml

from tests.helm.chart import (
    CHART,
    KUBE_VERSION,
    MINIMAL,
    PARENT_EXAMPLE,
    RECEIVER,
    ROOT,
    by_kind,
    installed,
    merged,
    objects,
    one,
    parent_chart,
    pod_spec,
    promtool_check_rules,
    validate,
)

pytestmark = pytest.mark.helm

MONITORING = ROOT / "monitoring"
ALL_ON = {"metrics": {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                      "grafanaDashboard": {"enabled": True}}}
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def _tool():
    spec = importlib.util.spec_from_file_location(
        "monitoring_files", ROOT / "helm" / "tools" / "monitoring_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dashboards(docs: list[dict]) -> list[dict]:
    return [d for d in by_kind(docs, "ConfigMap") if "rrdsync.json" in d.get("data", {})]


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    return parent_chart(tmp_path_factory.mktemp("parent"))


def _parent_values(**rrdsync) -> dict:
    values = yaml.safe_load((PARENT_EXAMPLE / "values.yaml").read_text())
    values["rrdsync"] = merged(values["rrdsync"], rrdsync)
    return values


def test_chart_copies_equal_monitoring_files():
    """The chart reads files/; monitoring/ is what people edit. Refresh with
    `python3 helm/tools/monitoring_files.py --write`."""
    assert _tool().stale() == [], "run: python3 helm/tools/monitoring_files.py --write"


def test_copy_tool_check_and_write(tmp_path, monkeypatch):
    tool = _tool()
    monkeypatch.setattr(tool, "COPIES", tmp_path / "files")
    assert tool.main(["--check"]) == 1
    assert sorted(tool.write()) == sorted(tool.FILES)
    assert tool.main(["--check"]) == 0
    (tmp_path / "files" / "grafana-dashboard.json").write_text("{}")
    assert tool.stale() == ["grafana-dashboard.json"]
    assert tool.main([]) == 2


@pytest.mark.parametrize("values", [MINIMAL, RECEIVER], ids=["sidecar", "receiver"])
def test_monitoring_is_off_by_default(values):
    docs = objects(values)
    assert not [d for d in docs if d["kind"] in MONITORING_KINDS]
    assert not _dashboards(docs)


def test_off_by_default_in_the_opennms_pod(parent):
    docs = objects({}, chart=parent, name="onms")
    assert not [d for d in docs if d["kind"] in MONITORING_KINDS]
    assert not _dashboards(docs)


@pytest.mark.parametrize("kube", ["1.25.0", KUBE_VERSION])
def test_every_monitoring_object_validates(kube):
    docs = objects(merged(MINIMAL, ALL_ON))
    assert {"PodMonitor", "PrometheusRule"} <= {d["kind"] for d in docs}
    assert len(_dashboards(docs)) == 1
    for doc in docs:
        validate(doc, kube)
    sm = objects(merged(MINIMAL, {"metrics": {"serviceMonitor": {"enabled": True}}}))
    validate(one(sm, "ServiceMonitor"), kube)


@pytest.mark.parametrize("values", [merged(MINIMAL, ALL_ON),
                                    merged(MINIMAL, {"metrics": {"serviceMonitor":
                                                                 {"enabled": True}}})],
                         ids=["pod-monitor-rule-dashboard", "service-monitor"])
def test_lint_is_clean_with_monitoring(values):
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert not report["errors"], report
    assert {(m["severity"], m["error"]) for m in report["messages"]} <= {
        (1, "icon is recommended")}


def test_pod_monitor_scrapes_the_sidecar_in_the_opennms_pod(parent):
    docs = objects(_parent_values(metrics={"podMonitor": {"enabled": True}}), chart=parent,
                   name="onms")
    for doc in docs:
        validate(doc)
    pm = one(docs, "PodMonitor")
    pod = one(docs, "Deployment")["spec"]["template"]
    # Its selector matches the OpenNMS pod's labels...
    selector = pm["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/instance": "onms"}
    assert selector.items() <= pod["metadata"]["labels"].items()
    # ...and it scrapes the rrdsync container's port, which only that pod has.
    endpoint = pm["spec"]["podMetricsEndpoints"][0]
    ports = [p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])]
    assert endpoint["port"] == "rrdsync-http" and "rrdsync-http" in ports
    assert endpoint["path"] == "/metrics"
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["rrd"]}
    assert {"action": "replace", "targetLabel": "job", "replacement": "rrdsync"} in \
        endpoint["relabelings"]


def test_pod_monitor_in_standalone_mode_selects_the_chart_pod():
    docs = objects(merged(MINIMAL, {"metrics": {"podMonitor": {
        "enabled": True, "interval": "15s", "labels": {"release": "kps"},
        "relabelings": [{"action": "labeldrop", "regex": "pod_template_hash"}],
        "metricRelabelings": [{"action": "drop", "sourceLabels": ["__name__"],
                               "regex": "rrdsync_replication_lag_seconds_bucket"}]}}}))
    pm = one(docs, "PodMonitor")
    dep = one(docs, "Deployment")
    assert pm["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert pm["metadata"]["labels"]["release"] == "kps"
    endpoint = pm["spec"]["podMetricsEndpoints"][0]
    assert endpoint["interval"] == "15s"
    # The job relabeling first, the user's after it.
    assert [r.get("targetLabel") for r in endpoint["relabelings"]] == ["job", None]
    assert endpoint["metricRelabelings"][0]["action"] == "drop"
    validate(pm)


def test_pod_monitor_selector_can_be_set():
    docs = objects(merged(MINIMAL, {"metrics": {"podMonitor": {
        "enabled": True, "selector": {"app": "opennms"}}}}))
    assert one(docs, "PodMonitor")["spec"]["selector"]["matchLabels"] == {"app": "opennms"}


def test_service_monitor_sets_the_same_job():
    docs = objects(merged(MINIMAL, {"metrics": {"job": "rrd-replication",
                                                "serviceMonitor": {"enabled": True}}}))
    relabel = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["relabelings"]
    assert relabel == [{"action": "replace", "targetLabel": "job",
                        "replacement": "rrd-replication"}]


def test_prometheus_rule_is_the_shipped_alerts(tmp_path):
    docs = objects(merged(MINIMAL, {"metrics": {"prometheusRule": {
        "enabled": True, "labels": {"release": "kps"}}}}))
    rule = one(docs, "PrometheusRule")
    shipped = yaml.safe_load((MONITORING / "prometheus-alerts.yaml").read_text())
    # Exactly the file's groups, with Prometheus' own templates untouched by Helm.
    assert rule["spec"]["groups"] == shipped["groups"]
    assert "{{ $labels.instance }}" in json.dumps(rule["spec"])
    assert rule["metadata"]["labels"]["release"] == "kps"
    validate(rule)
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed (Debian package prometheus)")
    assert "SUCCESS" in promtool_check_rules(rule, tmp_path)


def test_alert_job_selectors_match_the_chart_job():
    """The rules' job selectors (e.g. `absent(up{job="rrdsync"})`) must name the job the
    ServiceMonitor/PodMonitor give the targets, or they never match in Kubernetes."""
    text = (CHART / "files" / "prometheus-alerts.yaml").read_text()
    jobs = set(re.findall(r'job\s*=~?\s*"([^"]*)"', text))
    default_job = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["job"]
    assert jobs <= {default_job}, f"alerts select {jobs}, the chart sets job={default_job!r}"


def test_grafana_dashboard_configmap():
    docs = objects(merged(MINIMAL, {"metrics": {"grafanaDashboard": {"enabled": True}}}))
    (cm,) = _dashboards(docs)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "rrd"
    assert cm["metadata"]["name"] == "rel-rrdsync-dashboard"
    shipped = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert json.loads(cm["data"]["rrdsync.json"]) == shipped
    # The release's own ConfigMap (RRDSYNC_*) is still there, unchanged.
    assert "RRDSYNC_DEST" in next(d for d in by_kind(docs, "ConfigMap")
                                  if d["metadata"]["name"] == "rel-rrdsync")["data"]


def test_grafana_dashboard_label_namespace_annotations_configurable():
    docs = objects(merged(MINIMAL, {"metrics": {"grafanaDashboard": {
        "enabled": True, "labelKey": "grafana.example.com/dashboard", "labelValue": "yes",
        "namespace": "monitoring", "labels": {"team": "noc"},
        "annotations": {"grafana_folder": "OpenNMS"}}}}))
    (cm,) = _dashboards(docs)
    meta = cm["metadata"]
    assert meta["labels"]["grafana.example.com/dashboard"] == "yes"
    assert "grafana_dashboard" not in meta["labels"]
    assert meta["labels"]["team"] == "noc"
    assert meta["namespace"] == "monitoring"
    assert meta["annotations"] == {"grafana_folder": "OpenNMS"}
    validate(cm)


def test_dashboard_and_rule_in_the_opennms_pod_mode(parent):
    docs = objects(_parent_values(metrics={"prometheusRule": {"enabled": True},
                                           "grafanaDashboard": {"enabled": True}}),
                   chart=parent, name="onms")
    assert one(docs, "PrometheusRule")["spec"]["groups"]
    assert len(_dashboards(docs)) == 1
    assert not by_kind(installed({}, chart=parent, name="onms"), "PrometheusRule")


@pytest.mark.parametrize("metrics", [{"serviceMonitor": {"enabled": True}},
                                     {"podMonitor": {"enabled": True}},
                                     {"prometheusRule": {"enabled": True}},
                                     {"grafanaDashboard": {"enabled": True}}])
def test_receiver_refuses_monitoring(metrics):
    with pytest.raises(helm.HelmRenderError, match="exports no metrics"):
        objects(merged(RECEIVER, {"metrics": metrics}))


def test_service_monitor_needs_the_chart_service(parent):
    with pytest.raises(helm.HelmRenderError, match=r"use metrics\.podMonitor"):
        objects(_parent_values(metrics={"serviceMonitor": {"enabled": True}}), chart=parent,
                name="onms")
    with pytest.raises(helm.HelmRenderError, match=r"service\.enabled"):
        objects(merged(MINIMAL, {"service": {"enabled": False},
                                 "metrics": {"serviceMonitor": {"enabled": True}}}))


def test_service_and_pod_monitor_together_refused():
    with pytest.raises(helm.HelmRenderError, match="twice"):
        objects(merged(MINIMAL, {"metrics": {"serviceMonitor": {"enabled": True},
                                             "podMonitor": {"enabled": True}}}))


@pytest.mark.parametrize("override, where", [
    ({"podMonitor": {"interval": 30}}, "/metrics/podMonitor/interval"),
    ({"podMonitor": {"selector": {"app": 1}}}, "/metrics/podMonitor/selector"),
    ({"podMonitor": {"enabld": True}}, "enabld"),
    ({"prometheusRule": {"rules": []}}, "rules"),
    ({"grafanaDashboard": {"labelValue": 1}}, "/metrics/grafanaDashboard/labelValue"),
    ({"grafanaDashboard": {"labelKey": "bad key"}}, "/metrics/grafanaDashboard/labelKey"),
    ({"job": ""}, "/metrics/job"),
])
def test_schema_refuses_bad_monitoring_values(override, where):
    with pytest.raises(helm.HelmValuesError) as exc:
        objects(merged(MINIMAL, {"metrics": override}))
    assert where in str(exc.value)


def test_sidecar_pod_has_the_port_the_monitors_scrape():
    docs = objects(merged(MINIMAL, ALL_ON))
    ports = [p["name"] for c in pod_spec(docs)["containers"] for p in c.get("ports", [])]
    assert "rrdsync-http" in ports
