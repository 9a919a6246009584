"""The shipped Prometheus targets of the collectors are the compose fleet's: one `fleet:<metrics_port>`
a collector of docker/fleet.yaml, labelled with its id, bound where another container reaches it,
on a network Prometheus shares with the `fleet` service."""

from __future__ import annotations

from pathlib import Path

import yaml

from stock_pipelines.fleet.config import load_fleet_config
from stock_pipelines_tests.production.deployment import COMPOSE, resolved_compose

from .prometheus import CONFIG, REPO_ROOT

FLEET_FILE = REPO_ROOT / "docker" / "fleet.yaml"


def _collector_target_files() -> list[Path]:
    (job,) = [j for j in yaml.safe_load(CONFIG.read_text())["scrape_configs"] if j["job_name"] == "collectors"]
    return [CONFIG.parent / name for sd in job["file_sd_configs"] for name in sd["files"]]


def test_the_targets_file_lists_every_fleet_collector_by_its_id_and_metrics_port():
    fleet = load_fleet_config(FLEET_FILE, Path("/data/lake"))
    assert fleet.spec.metrics_host == "0.0.0.0"  # Prometheus is another container
    expected = {c.id: f"fleet:{c.metrics_port}" for c in fleet.collectors}
    assert None not in {c.metrics_port for c in fleet.collectors}, "a fleet collector without a metrics port"
    (targets_file,) = _collector_target_files()
    listed = {}
    for group in yaml.safe_load(targets_file.read_text()):
        (target,) = group["targets"]
        listed[group["labels"]["collector"]] = target
    assert listed == expected


def test_prometheus_shares_a_network_with_the_fleet():
    services = resolved_compose(COMPOSE, profiles=("observability",))["services"]
    assert set(services["prometheus"]["networks"]) & set(services["fleet"]["networks"])
