"""The alert rules' logic with their real `for:` durations, in `promtool test rules` (Prometheus's
own rule evaluator on synthetic series): each alert fires when its condition has held long enough,
and not before, and not for the healthy twin beside it."""

from __future__ import annotations

import re
import subprocess

import yaml

from .prometheus import RULES, prometheus_binary

COLLECTOR = {"job": "collectors", "instance": "c1:9101", "collector": "kis-1"}
HEALTHY = {"job": "collectors", "instance": "c2:9101", "collector": "kis-2"}
EXPORTER = {"job": "stock_pipelines", "instance": "exporter:9464"}


def series(name: str, labels: dict[str, str], values: str) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


def expected(alert: str, labels: dict[str, str]) -> dict:
    """The alert as Prometheus renders it: the rule's labels and annotations, templates filled."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == alert]

    def render(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)

    return {"exp_labels": {**labels, **rule["labels"]},
            "exp_annotations": {k: render(v) for k, v in rule["annotations"].items()}}


def check(name: str, at: str, firing: list[dict]) -> dict:
    return {"eval_time": at, "alertname": name, "exp_alerts": firing}


def test_each_alert_fires_once_its_condition_held_for_its_duration(tmp_path):
    deadline = 300  # promtool's clock starts at the epoch: the deadline passes at 5m
    inputs = [
        series("up", {"job": "collectors", "instance": COLLECTOR["instance"]}, "1 1 0 0 0 0"),
        series("up", {"job": "collectors", "instance": HEALTHY["instance"]}, "1x6"),
        series("stock_pipelines_collector_status", {**COLLECTOR, "status": "stalled"}, "0 1 1 1 1 1"),
        series("stock_pipelines_collector_status", {**HEALTHY, "status": "stalled"}, "0x6"),
        series("stock_pipelines_collector_disk_free_bytes", COLLECTOR, "100x8"),
        series("stock_pipelines_collector_disk_floor_bytes", COLLECTOR, "60x8"),
        series("stock_pipelines_collector_disk_free_bytes", HEALTHY, "500x8"),
        series("stock_pipelines_collector_disk_floor_bytes", HEALTHY, "60x8"),
        series("stock_pipelines_breaker_state", {**EXPORTER, "broker": "kis", "state": "OPEN"}, "1x8"),
        series("stock_pipelines_breaker_state", {**EXPORTER, "broker": "kiwoom", "state": "PERMANENT_OPEN"},
               "0 1 1"),
        series("stock_pipelines_dormant", EXPORTER, "0 0 1 1"),
        series("stock_pipelines_day_certification_deadline_seconds", EXPORTER, f"{deadline}x8"),
        series("stock_pipelines_day_certified", EXPORTER, "0x8"),
    ]
    pod = {"job": "collectors", "instance": COLLECTOR["instance"]}
    checks = [
        check("CollectorDown", "2m", []),  # down for less than its 1m
        check("CollectorDown", "3m", [expected("CollectorDown", pod)]),
        check("CollectorStalled", "2m", []),
        check("CollectorStalled", "3m", [expected("CollectorStalled", {**COLLECTOR, "status": "stalled"})]),
        check("DiskLow", "4m", []),
        check("DiskLow", "5m", [expected("DiskLow", COLLECTOR)]),
        check("BreakerOpen", "4m", []),
        check("BreakerOpen", "5m", [expected("BreakerOpen", {**EXPORTER, "broker": "kis", "state": "OPEN"})]),
        check("BreakerPermanentOpen", "0m", []),
        check("BreakerPermanentOpen", "1m", [expected("BreakerPermanentOpen", {
            **EXPORTER, "broker": "kiwoom", "state": "PERMANENT_OPEN"})]),
        check("AutomationDormant", "1m", []),
        check("AutomationDormant", "2m", [expected("AutomationDormant", EXPORTER)]),
        check("DayNotCertified", "4m", []),
        check("DayNotCertified", "6m", [expected("DayNotCertified", EXPORTER)]),
    ]
    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": inputs, "alert_rule_test": checks}]}
    path = tmp_path / "rules_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run([prometheus_binary("promtool"), "test", "rules", str(path)], check=False,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
