"""The Grafana dashboard and the Prometheus alert rules: they parse, every metric they query
is one that ``rrdsync serve`` exports, replication is shown and alerted per destination, and
every alert links its runbook. (``test_promtool.py`` checks the PromQL with promtool and
``test_prometheus.py`` evaluates every query against a real Prometheus.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from rrdsync.status.metrics import SERVER, WORKER, exported_names

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"

FUNCTIONS_AND_KEYWORDS = {
    # aggregation operators and keywords
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan",
}
PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "delta", "deriv", "exp", "floor", "histogram_quantile", "idelta", "increase", "irate",
    "label_replace", "label_join", "ln", "log2", "log10", "max_over_time", "min_over_time",
    "avg_over_time", "sum_over_time", "count_over_time", "last_over_time", "predict_linear",
    "rate", "resets", "round", "scalar", "sort", "sort_desc", "sqrt", "time", "timestamp",
    "vector",
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (labels, functions, durations stripped)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range/subquery selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)
    e = re.sub(r"\$\{?\w+\}?", "", e)  # Grafana variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        tok = m.group(0)
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue  # part of a number like 1e3
        if tok.lower() in FUNCTIONS_AND_KEYWORDS:
            continue
        if tok in PROMQL_FUNCTIONS and e[m.end():].lstrip().startswith("("):
            continue
        names.add(tok)
    return names


def test_metric_name_extraction_itself():
    expr = ('histogram_quantile(0.9, sum by (le, instance) '
            '(rate(rrdsync_replication_lag_seconds_bucket{instance=~"$instance"}[5m]))) > 1e3 '
            'and on (instance) rrdsync_live == 1 unless absent(up)')
    assert metric_names(expr) == {"rrdsync_replication_lag_seconds_bucket", "rrdsync_live",
                                  "up"}


def test_exported_names_include_the_contracts_metrics():
    names = exported_names()
    for required in ("rrdsync_files_sent_total", "rrdsync_bytes_sent_total",
                     "rrdsync_batches_total", "rrdsync_pending_files",
                     "rrdsync_oldest_pending_seconds", "rrdsync_last_success_timestamp_seconds",
                     "rrdsync_replication_lag_seconds_bucket", "rrdsync_rescans_total",
                     "rrdsync_watch_overflows_total"):
        assert required in names
    assert all(s.name.startswith("rrdsync_") for s in WORKER + SERVER)
    lag = next(s for s in WORKER if s.name == "rrdsync_replication_lag_seconds")
    assert lag.kind == "histogram" and lag.buckets[0] <= 0.25 and 300 in lag.buckets


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["definition"])
            assert m, var["definition"]
            out.append((var["name"], m.group(1)))
    return out


def test_dashboard_parses_and_queries_only_exported_metrics():
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dash["title"] and dash["uid"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("lag", "pending", "files sent", "bytes sent", "exit codes", "failing paths",
                  "destination ready"):
        assert topic in titles
    exprs = dashboard_exprs()
    assert len(exprs) > 15
    exported = exported_names()
    for where, expr in exprs:
        unknown = metric_names(expr) - exported
        assert not unknown, f"panel {where!r} queries unknown metrics {unknown}: {expr}"
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert {"h", "w", "x", "y"} <= set(panel["gridPos"])


def load_rules() -> list[dict]:
    doc = yaml.safe_load((MONITORING / "prometheus-alerts.yaml").read_text())
    assert set(doc) == {"groups"}
    rules = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"]
        rules.extend(group["rules"])
    return rules


DURATION = re.compile(r"^\d+(ms|s|m|h|d|w|y)$")


def test_alert_rules_have_a_valid_structure():
    rules = load_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", r["alert"])
        assert isinstance(r["expr"], str) and r["expr"].strip()
        assert r["expr"].count("(") == r["expr"].count(")")
        if "for" in r:
            assert DURATION.match(r["for"]), r["for"]
        assert r["labels"]["severity"] in ("critical", "warning", "info")
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        for text in r["annotations"].values():
            assert text.count("{{") == text.count("}}")


@pytest.mark.parametrize("alert", ["RrdsyncWorkerDown", "RrdsyncReplicationStalled",
                                   "RrdsyncLagAboveBound", "RrdsyncDestinationRefusingWrites",
                                   "RrdsyncStatusServerDown", "RrdsyncFailingPaths",
                                   "RrdsyncDestinationNotReady"])
def test_the_issues_alerts_exist(alert):
    assert alert in {r["alert"] for r in load_rules()}


def test_alert_rules_query_only_exported_metrics():
    exported = exported_names() | {"up"}  # Prometheus's own per-target series
    for r in load_rules():
        unknown = metric_names(r["expr"]) - exported
        assert not unknown, f"{r['alert']} queries unknown metrics {unknown}"


PER_DESTINATION = {name for spec in WORKER + SERVER if "destination" in spec.labels
                   for name in spec.series()}
RUNBOOK = re.compile(r"^https://github\.com/rrdsync/rrdsync/blob/main/README\.md"
                     r"#troubleshooting-(?P<slug>[a-z0-9-]+)$")


def _aggregations(expr: str) -> list[str]:
    """The label lists of every ``by (...)`` in an expression."""
    return re.findall(r"\bby\s*\(([^)]*)\)", expr)


def test_dashboard_shows_replication_per_destination():
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "instance", "destination"]
    for where, expr in dashboard_exprs():
        if metric_names(expr) & PER_DESTINATION and where not in ("instance", "destination"):
            assert 'destination=~"$destination"' in expr, f"{where}: {expr}"
            for labels in _aggregations(expr):
                assert "destination" in labels, f"{where} aggregates destinations away: {expr}"


def test_replication_alerts_are_per_destination():
    for r in load_rules():
        if metric_names(r["expr"]) & PER_DESTINATION:
            for labels in _aggregations(r["expr"]):
                if "rrdsync_destination_ready" in r["expr"] and r["alert"] == "RrdsyncNotReady":
                    continue  # "is any destination unready": per worker on purpose
                assert "destination" in labels, f"{r['alert']}: {r['expr']}"


def test_every_absent_has_a_job_selector_and_the_server_down_alert_waits():
    rules = {r["alert"]: r for r in load_rules()}
    for r in rules.values():
        for inner in re.findall(r"absent\(([^)]*)\)", r["expr"]):
            assert 'job="rrdsync"' in inner, f"{r['alert']}: {r['expr']}"
    down = rules["RrdsyncStatusServerDown"]
    assert down["expr"].replace(" ", "") == 'up{job="rrdsync"}==0' and down["for"]


def runbook_slugs() -> dict[str, str]:
    out = {}
    for r in load_rules():
        url = r["annotations"].get("runbook_url", "")
        m = RUNBOOK.match(url)
        assert m, f"{r['alert']}: runbook_url {url!r} is not a README troubleshooting anchor"
        out[r["alert"]] = m.group("slug")
    return out


def test_every_alert_links_its_own_runbook():
    slugs = runbook_slugs()
    assert len(set(slugs.values())) == len(slugs)


def _github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_has_the_troubleshooting_entries_the_alerts_link():
    readme = (MONITORING.parent / "README.md").read_text()
    anchors = {_github_anchor(h) for h in re.findall(r"^#+\s+(.+)$", readme, re.M)}
    if "troubleshooting" not in anchors:
        pytest.skip("README has no Troubleshooting section yet: the alerts link "
                    "#troubleshooting-<slug> anchors (headings 'Troubleshooting: <slug words>')")
    missing = sorted(s for s in runbook_slugs().values()
                     if f"troubleshooting-{s}" not in anchors)
    assert not missing, f"README lacks troubleshooting entries for {missing}"
