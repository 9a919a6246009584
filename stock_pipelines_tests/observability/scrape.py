"""Read a /metrics or /health endpoint the way Prometheus and a healthcheck do."""

from __future__ import annotations

import re

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    @classmethod
    def of(cls, collector) -> Scrape:
        """What a scrape of a registry holding only `collector` would read."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        return cls(generate_latest(registry).decode())

    def families(self) -> set[str]:
        """Every series announced (a TYPE line), samples or not; counters by their `_total` name."""
        return {name if kind != "counter" or name.endswith("_total") else f"{name}_total"
                for name, kind in _TYPE_LINE.findall(self.text)}

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample of `name` whose labels include `labels`; None if there is none."""
        found = [s.value for s in self.samples
                 if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else None


def scrape(port: int) -> Scrape:
    reply = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    reply.raise_for_status()
    assert reply.headers["content-type"].startswith("text/plain")
    return Scrape(reply.text)


def health(port: int) -> tuple[int, str]:
    reply = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
    return reply.status_code, reply.text
