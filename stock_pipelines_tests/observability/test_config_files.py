"""docker/prometheus and docker/grafana: promtool accepts the rules and the config, every alert
and dashboard panel reads series the project exports, the compose profile wires them up."""

from __future__ import annotations

import argparse
import json
import subprocess

import pytest
import yaml

from stock_pipelines.cli import build_parser
from stock_pipelines_tests.production.deployment import COMPOSE, compose_config, env_example, resolved_compose

from .prometheus import CONFIG, REPO_ROOT, RULES, prometheus_binary
from .promql import EXPORTED, series_names

GRAFANA = REPO_ROOT / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "stock_pipelines.json"
REQUIRED_ALERTS = {"CollectorDown", "CollectorStalled", "DiskLow", "BreakerOpen", "AutomationDormant",
                   "DayNotCertified"}


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules_and_the_config():
    promtool = prometheus_binary("promtool")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], check=False, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout
    checked = subprocess.run([promtool, "check", "config", str(CONFIG)], check=False, capture_output=True,
                             text=True, timeout=60, cwd=CONFIG.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "is valid prometheus config file syntax" in checked.stdout
    (job,) = [j for j in yaml.safe_load(CONFIG.read_text())["scrape_configs"] if j["job_name"] == "collectors"]
    for sd in job["file_sd_configs"]:
        for name in sd["files"]:
            groups = yaml.safe_load((CONFIG.parent / name).read_text())
            assert isinstance(groups, list), name  # file_sd: a list of {targets, labels}
            assert all(set(group) <= {"targets", "labels"} for group in groups), name


def test_promtool_rejects_a_broken_rule(tmp_path):
    """The check above can fail: a rule reading a misspelt function is refused."""
    broken = tmp_path / "alerts.yml"
    broken.write_text(RULES.read_text().replace("expr: up{job=\"collectors\"} == 0", "expr: upp(up) == 0", 1))
    checked = subprocess.run([prometheus_binary("promtool"), "check", "rules", str(broken)],
                             check=False, capture_output=True, text=True, timeout=60)
    assert checked.returncode != 0
    assert "upp" in checked.stdout + checked.stderr


def test_every_alert_reads_exported_series():
    found = {rule["alert"]: rule for rule in rules()}
    assert REQUIRED_ALERTS <= set(found)
    for name, rule in found.items():
        names = series_names(rule["expr"])
        assert names, name
        assert names <= EXPORTED, (name, names - EXPORTED)
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name


def test_every_dashboard_panel_reads_exported_series():
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090"
    panels = dashboard["panels"]
    assert len(panels) >= 15
    shown: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = series_names(target["expr"])
            assert names, (panel["title"], target["expr"])
            assert names <= EXPORTED, (panel["title"], names - EXPORTED)
            shown |= names
    # what the issue asks an operator to see is on the dashboard
    for wanted in ("stock_pipelines_collector_trades_total", "stock_pipelines_heartbeat_age_seconds",
                   "stock_pipelines_collector_reconnects_total",
                   "stock_pipelines_collector_loss_windows_total",
                   "stock_pipelines_collector_lag_seconds", "stock_pipelines_collector_disk_free_bytes",
                   "stock_pipelines_collector_source_active", "stock_pipelines_breaker_state",
                   "stock_pipelines_dormant", "stock_pipelines_kill_switch_enabled",
                   "stock_pipelines_recovery_runs", "stock_pipelines_last_day_completeness_ratio",
                   "stock_pipelines_last_day_certified"):
        assert wanted in shown, wanted


@pytest.mark.parametrize("expr, names", [
    ('sum by (collector) (rate(stock_pipelines_collector_trades_total{stage="archived"}[1m]))',
     {"stock_pipelines_collector_trades_total"}),
    ("time() > stock_pipelines_day_certification_deadline_seconds and stock_pipelines_day_certified == 0",
     {"stock_pipelines_day_certification_deadline_seconds", "stock_pipelines_day_certified"}),
    ('up{job="collectors"} == 0', {"up"}),
    ("a_total / on(instance) group_left(x) b", {"a_total", "b"}),
])
def test_series_names_of_an_expression(expr, names):
    assert series_names(expr) == names


def test_the_observability_profile_in_compose():
    result = compose_config(COMPOSE, env=env_example(), profiles=("observability",))
    assert result.returncode == 0, result.stderr
    services = resolved_compose(COMPOSE, profiles=("observability",))["services"]
    for name in ("metrics_exporter", "prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"], name
    assert not {"metrics_exporter", "prometheus", "grafana"} & set(resolved_compose(COMPOSE)["services"])
    exporter = services["metrics_exporter"]
    parser = build_parser()
    parser.exit_on_error = False
    try:
        args = parser.parse_args(exporter["command"][1:])
    except (argparse.ArgumentError, SystemExit) as error:
        pytest.fail(f"{exporter['command']}: {error}")
    scraped = yaml.safe_load(CONFIG.read_text())["scrape_configs"]
    (job,) = [j for j in scraped if j["job_name"] == "stock_pipelines"]
    assert job["static_configs"][0]["targets"] == [f"metrics_exporter:{args.port}"]
    mounts = {v["target"]: v.get("source", "") for v in services["prometheus"]["volumes"]}
    assert mounts["/etc/prometheus"].endswith("docker/prometheus")
    grafana = {v["target"]: v.get("source", "") for v in services["grafana"]["volumes"]}
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "stock_pipelines.yml").read_text())
    assert grafana[provider["providers"][0]["options"]["path"]].endswith("docker/grafana/dashboards")
