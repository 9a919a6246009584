"""A real Prometheus server for one test (Debian's `prometheus` package, installed by .ci/run),
running the repository's docker/prometheus files with the test's targets and short intervals.

    with PrometheusServer(tmp_path, collectors=["127.0.0.1:9101"], exporter="127.0.0.1:9464") as prom:
        prom.wait_for(lambda: prom.alert("CollectorDown", "firing"), 30, "CollectorDown firing")

The config is docker/prometheus/prometheus.yml with its targets replaced (a list, or a targets
file in the file_sd format of docker/prometheus/targets/collectors.yml); the rules are
docker/prometheus/alerts.yml with every `for:` shortened to `rule_for`. The server is SIGKILLed
at the end whatever happened.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Self

import httpx
import yaml

from stock_pipelines_tests.capabilities import require_binary
from stock_pipelines_tests.dagster_dev import free_port
from stock_pipelines_tests.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "docker" / "prometheus" / "prometheus.yml"
RULES = REPO_ROOT / "docker" / "prometheus" / "alerts.yml"


def prometheus_binary(name: str = "prometheus") -> str:
    """The path of `prometheus` or `promtool`; skips (fails in CI) when the package is missing."""
    return require_binary(name, "prometheus")


def rules_for_test(rule_for: str) -> dict:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = rule_for
    return rules


def config_for_test(collectors: list[str] | Path, exporter: str | None) -> dict:
    """`collectors`: the targets, or a file_sd targets file (like docker/prometheus/targets/)."""
    config = yaml.safe_load(CONFIG.read_text())
    # a scrape may take a while on a loaded machine: 2 s to answer, rather than a false "down"
    config["global"].update(scrape_interval="2s", evaluation_interval="1s", scrape_timeout="2s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    if isinstance(collectors, Path):
        jobs["collectors"]["file_sd_configs"] = [{"files": [str(collectors)]}]
    else:
        jobs["collectors"].pop("file_sd_configs")
        jobs["collectors"]["static_configs"] = [{"targets": collectors}]
    jobs["stock_pipelines"]["static_configs"] = [{"targets": [exporter] if exporter else []}]
    return config


class PrometheusServer:
    def __init__(self, directory: Path, collectors: list[str] | Path, exporter: str | None = None,
                 rule_for: str = "3s") -> None:
        self.binary = prometheus_binary()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "alerts.yml").write_text(yaml.safe_dump(rules_for_test(rule_for)))
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config_for_test(collectors, exporter)))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        log = (self.directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_for(self._ready, 30, "Prometheus ready")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.log()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return (self.directory / "prometheus.log").read_text(errors="replace")

    def api(self, path: str, **params: str) -> dict:
        reply = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5)
        reply.raise_for_status()
        body = reply.json()
        assert body["status"] == "success", body
        return body["data"]

    def targets(self) -> dict[str, str]:
        """scrape URL -> health ("up", "down", "unknown")."""
        return {t["scrapeUrl"]: t["health"] for t in self.api("targets")["activeTargets"]}

    def collector_targets(self) -> dict[str, str]:
        """The `collectors` job's targets by their `collector` label -> health."""
        return {t["labels"].get("collector", ""): t["health"] for t in self.api("targets")["activeTargets"]
                if t["labels"].get("job") == "collectors"}

    def alerts(self, name: str, state: str | None = None) -> list[dict]:
        return [a for a in self.api("alerts")["alerts"]
                if a["labels"]["alertname"] == name and (state is None or a["state"] == state)]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def wait_for(self, condition, timeout: float, what: str):
        return wait_until(condition, timeout, what, every=0.25)
