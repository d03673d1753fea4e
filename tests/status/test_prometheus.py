"""A real Prometheus (Debian's 2.42) scraping ``rrdsync serve`` while a real worker syncs to
a real sshd: every Grafana panel query and every alert expression is evaluated through
Prometheus's HTTP API and must return series.

Alert expressions are normally empty (nothing is wrong). For those, each metric selector
inside the expression is evaluated instead (``name{matchers}``); where the matchers pick
label values a healthy run never has (``code=~"11|23"``), the bare metric must return
series that carry every label the matchers name. Every rule must also evaluate without
error inside Prometheus (``/api/v1/rules`` health ``ok``), which catches vector-matching
mistakes that only show at evaluation time.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from tests.fixtures.rrd import make_tree, rrd_update, wait_for, wait_identical

from .test_monitoring import MONITORING, dashboard_exprs
from .test_promtool import promtool

pytestmark = pytest.mark.slow

RULES = MONITORING / "prometheus-alerts.yaml"
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*", "$destination": ".*"}
SELECTOR = re.compile(r"\b(?P<name>(?:rrdsync_[a-z_]+|up))\b(?P<matchers>\{[^}]*\})?")


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def label_names(matchers: str) -> set[str]:
    return set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers or ""))


@pytest.fixture
def env(worker_env, sshd):
    return {**worker_env, **sshd.env(), "RRDSYNC_LIVENESS_TIMEOUT": "5s",
            "RRDSYNC_MAX_LAG": "60s"}


def test_prometheus_evaluates_every_panel_and_alert_query(env, source, sshd, start_worker,
                                                           start_status, prometheus):
    started = time.monotonic()
    files = make_tree(source, nodes=2, resources=2, files=2)
    _, status = start_status(env)
    worker = start_worker(env)
    prom = prometheus([f"127.0.0.1:{status.port}"], [RULES])
    status.wait_code("/readyz", 200, timeout=30)
    wait_identical(source, sshd.dest)
    for f in files[:4]:
        rrd_update(f)
    # an outage, so that a non-zero rsync exit code and an SSH reconnect exist
    sshd.stop()
    deadline = time.monotonic() + 30
    while not any(k.startswith("rrdsync_rsync_exit_codes_total") and 'code="0"' not in k
                  and v > 0 for k, v in status.metrics().items()):
        assert time.monotonic() < deadline, (
            "no failed rsync run while sshd was down; worker log:\n" + worker.output()[-4000:])
        rrd_update(files[0])  # keep changes coming until a send has failed
        time.sleep(0.5)
    sshd.start()
    wait_identical(source, sshd.dest, timeout=30)
    wait_for(lambda: any(k.startswith("rrdsync_ssh_reconnects_total") and v > 0
                         for k, v in status.metrics().items()),
             timeout=20, what="the SSH reconnect")

    # the exposition of a real worker also passes promtool's lint
    text = status.get("/metrics")[1]
    lint = promtool("check", "metrics", stdin=text)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # enough samples for rate()/increase() windows and a few rule evaluations
    wait_for(lambda: prom.query('count_over_time(rrdsync_live{job="rrdsync"}[1m]) >= 5'),
             timeout=30, what="five scrapes of rrdsync serve")
    assert prom.query('up{job="rrdsync"} == 1'), "Prometheus cannot scrape rrdsync serve"

    empty_panels = []
    for where, expr in dashboard_exprs():
        if not prom.query(grafana_to_promql(expr)):
            empty_panels.append(f"{where}: {expr}")
    assert not empty_panels, "dashboard queries without series:\n" + "\n".join(empty_panels)

    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    evaluated_inner = {}
    for r in rules:
        if prom.query(r["expr"]):
            continue  # firing or pending-worthy right now: it returns series
        selectors = list(SELECTOR.finditer(r["expr"]))
        assert selectors, r["expr"]
        for m in selectors:
            selector = m.group(0)
            if prom.query(selector):
                evaluated_inner[selector] = "series"
                continue
            bare = prom.query(m.group("name"))
            assert bare, f"{r['alert']}: {m.group('name')} has no series at all"
            missing = label_names(m.group("matchers")) - set(bare[0]["metric"])
            assert not missing, f"{r['alert']}: {m.group('name')} has no label {missing}"
            evaluated_inner[selector] = "metric and labels exist, no such value now"

    def rules_evaluated() -> list[dict] | None:
        groups = prom.api("rules")["groups"]
        found = [rule for g in groups for rule in g["rules"]]
        ok = len(found) == len(rules) and all(rule.get("lastEvaluation", "").startswith("2")
                                              and not rule["lastEvaluation"].startswith("0001")
                                              for rule in found)
        return found if ok else None

    evaluated = wait_for(rules_evaluated, timeout=10, what="every rule evaluated")
    bad = [(rule["name"], rule.get("lastError")) for rule in evaluated
           if rule["health"] != "ok"]
    assert not bad, bad
    assert worker.stop() == 0
    print(json.dumps({"panel_queries": len(dashboard_exprs()), "alerts": len(rules),
                      "inner_selectors": evaluated_inner}, indent=1))
    assert time.monotonic() - started < 60
