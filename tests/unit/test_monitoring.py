"""ops/monitoring: promtool checks and unit-tests the alert rules; rules and dashboard use real names.

promtool comes from Debian's `prometheus` package (.ci/run installs it). Under CI a missing
promtool fails these tests; elsewhere they skip and say how to install it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.platform.relay import RelayStats
from services.platform.telemetry.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "ops" / "monitoring"
RULES = MONITORING / "alerts.yml"
RULE_TESTS = MONITORING / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
OPERATIONS = ROOT / "docs" / "operations.md"

PROMETHEUS_SERIES = {"up"}
"""Series Prometheus writes itself for every target."""
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}
"""Names a family of each type exposes (the `_created` samples are left out: nothing uses them)."""
DATASOURCE = "${DS_PROMETHEUS}"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME = re.compile(r"(?<![\w:$])[A-Za-z_:][\w:]*")


# --- promtool --------------------------------------------------------------------------------


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: CI must install Debian's prometheus package")
        pytest.skip("promtool is missing: `apt-get install prometheus` (CI installs it)")
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    result = _promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    """As docker-compose.yml mounts it: next to alerts.yml and the admin token file."""
    for path in (PROMETHEUS_CONFIG, RULES):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "admin-token").write_text("a token")
    result = _promtool("check", "config", tmp_path / PROMETHEUS_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout, result.stdout


def test_the_unit_tests_fail_when_a_threshold_moves(tmp_path: Path) -> None:
    """The unit tests are live: an outbox limit of 200 s misses the stall they expect at 5m."""
    rules = RULES.read_text()
    threshold = "(checkout_outbox_oldest_unsent_age_seconds) > 60"
    assert rules.count(threshold) == 1
    (tmp_path / RULES.name).write_text(rules.replace(threshold, threshold[:-2] + "200"))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = _promtool("test", "rules", tmp_path / RULE_TESTS.name)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "CheckoutOutboxStalled" in result.stdout + result.stderr


# --- the rules' shape ------------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def test_every_alert_waits_has_a_severity_and_tells_what_to_do() -> None:
    headings = set(re.findall(r"^### (\w+)$", OPERATIONS.read_text(), flags=re.MULTILINE))
    alerts = _alerts()
    assert len(alerts) >= 5
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"\d+[smh]", alert.get("for", "")), name
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        notes = alert["annotations"]
        assert notes["summary"], name
        assert notes["description"], name
        # The runbook is a section of docs/operations.md, linked by its anchor.
        assert notes["runbook"] == f"docs/operations.md#{name.lower()}", name
        assert name in headings, f"docs/operations.md has no '### {name}'"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for alert in _alerts():
        mine = [case for case in cases if case["alertname"] == alert["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{alert['alert']} never fires"
        assert any(not case["exp_alerts"] for case in mine), f"{alert['alert']} never stays quiet"


# --- names: rules and dashboard against the product's registry -------------------------------


def exported_names() -> set[str]:
    """Every series name the product's registry can expose, relay counters included."""
    metrics = Metrics()
    metrics.relays.add(lambda: dataclasses.asdict(RelayStats()))
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in SUFFIXES[family.type]
    }


def metric_names(expr: str) -> set[str]:
    """Names in a PromQL expression that are series: the product's and recorded ones."""
    bare = _STRING.sub(" ", expr)
    tokens = set(_NAME.findall(bare))
    return {t for t in tokens if t.startswith("checkout_") or ":" in t or t in PROMETHEUS_SERIES}


def unknown_names(expr: str, known: set[str]) -> set[str]:
    """Names in expr that no registry metric, recording rule or Prometheus itself provides."""
    return metric_names(expr) - known


def _known() -> set[str]:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    return exported_names() | recorded | PROMETHEUS_SERIES


def test_the_name_check_catches_a_misspelt_metric() -> None:
    known = _known()
    good = 'sum by (service) (rate(checkout_messages_total{outcome="dead_lettered"}[5m]))'
    assert unknown_names(good, known) == set()
    assert unknown_names("rate(checkout_mesages_total[5m])", known) == {"checkout_mesages_total"}
    assert unknown_names("checkout:nothing:rate5m > 0", known) == {"checkout:nothing:rate5m"}
    # Label values, subqueries and Grafana variables are not names.
    assert metric_names('max_over_time(up{job="checkout_x"}[5m:1m]) > $threshold') == {"up"}


def test_rules_use_only_metrics_the_product_exports() -> None:
    known = _known()
    for rule in _rules():
        name = rule.get("alert") or rule["record"]
        assert unknown_names(rule["expr"], known) == set(), name


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _charts() -> list[dict[str, Any]]:
    return [p for p in _panels(_dashboard()["panels"]) if p["type"] != "row"]


def test_dashboard_queries_use_only_metrics_the_product_exports() -> None:
    known = _known()
    for panel in _charts():
        for target in panel["targets"]:
            assert unknown_names(target["expr"], known) == set(), panel["title"]


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses them as recording rules, Grafana's `$__rate_interval` read as 5m."""
    rules = [
        {"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": expr}
        for panel in _charts()
        for target in panel["targets"]
        for expr in [target["expr"].replace("$__rate_interval", "5m")]
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_charts_every_metric_of_the_product() -> None:
    charted = {name for p in _charts() for t in p["targets"] for name in metric_names(t["expr"])}
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in charted}
    missing = {
        name
        for name in exported_names()
        if name not in charted and re.sub(r"_(bucket|sum|count)$", "", name) not in families
    }
    assert missing == set(), "add a panel for these"


def test_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables["DS_PROMETHEUS"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    panels = list(_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] < grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == DATASOURCE, panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in targets:
            assert target["datasource"]["uid"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
