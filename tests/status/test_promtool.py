"""The alert rules and /metrics checked by Prometheus's own tool (Debian's promtool 2.42).

- ``promtool check rules``: the rules parse and their PromQL is valid;
- ``promtool test rules``: one unit test file per alert in ``monitoring/tests/``, each with
  a time at which the alert fires (labels and rendered annotations exact) and a time or
  series for which it stays quiet;
- ``promtool check metrics``: the exposition of a running ``rrdsync serve`` fed by a
  publishing worker passes Prometheus's metric lint (no gauge ending in ``_total``, units,
  help texts...).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.fixtures.rrd import wait_for

from .conftest import StubWorker

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "prometheus-alerts.yaml"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool not found: install Debian's prometheus package (./run-tests does)"
    return subprocess.run([tool, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def alerts() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [r["alert"] for g in doc["groups"] for r in g["rules"]]


def unit_test_files() -> list[Path]:
    return sorted((MONITORING / "tests").glob("*.test.yaml"))


def test_promtool_check_rules():
    res = promtool("check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in res.stdout


def test_every_alert_has_a_unit_test_that_fires_and_one_that_stays_quiet():
    covered: dict[str, Path] = {}
    for path in unit_test_files():
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../prometheus-alerts.yaml"], path
        checks = [c for t in doc["tests"] for c in t["alert_rule_test"]]
        names = {c["alertname"] for c in checks}
        assert len(names) == 1, f"{path.name}: one alert per file, got {names}"
        (name,) = names
        assert name not in covered, f"{name} tested in {covered[name].name} and {path.name}"
        covered[name] = path
        assert any(c["exp_alerts"] for c in checks), f"{path.name}: never expects a firing"
        assert any(not c["exp_alerts"] for c in checks), f"{path.name}: never expects quiet"
        for c in checks:
            for exp in c["exp_alerts"]:
                assert exp.get("exp_annotations"), f"{path.name}: annotations unchecked"
    assert sorted(covered) == sorted(alerts())


def test_promtool_test_rules_every_alert():
    files = unit_test_files()
    res = promtool("test", "rules", *(str(f) for f in files))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("SUCCESS") == len(files), res.stdout


def test_promtool_check_metrics_on_rrdsync_serve_output(worker_env, start_status):
    _, status = start_status(worker_env)
    run_dir = Path(worker_env["RRDSYNC_RUN_DIR"])
    w = StubWorker(run_dir, 5.0, 300.0, dests=("a.example:/srv/rrd", "[fd00::5]:/srv/rrd"))
    try:
        for command in ("reconciled", "batch ok 0 12 4096", "batch partial 23 3 100 failed",
                        "batch failed 255 0 0 ssh: connection refused", "ssh",
                        "failing 2 1 a.rrd b.rrd", "progress 5 10 20", "pending 3 1.5",
                        "refuse source root is empty", "overflow", "rescan interval",
                        "@[fd00::5]:/srv/rrd reconciled", "@[fd00::5]:/srv/rrd batch ok 0 1 9"):
            w.send(command)

        def scraped() -> str | None:
            text = status.get("/metrics")[1]
            return text if "\nrrdsync_live 1" in text else None

        text = wait_for(scraped, timeout=10, what="a live worker on /metrics")
    finally:
        w.kill()
    for family in ("rrdsync_files_sent_total", "rrdsync_failing_files",
                   "rrdsync_initial_sync_files_expected", "rrdsync_build_info",
                   "rrdsync_destination_ready", "rrdsync_replication_lag_seconds_bucket"):
        assert family in text
    res = promtool("check", "metrics", stdin=text)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), \
        res.stdout + res.stderr
