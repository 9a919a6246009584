"""The series a PromQL expression reads, and the series the project exports: what the dashboard
and the alert rules may name."""

from __future__ import annotations

import re

from stock_pipelines.collector.metrics import SERIES as COLLECTOR_SERIES
from stock_pipelines.ops.metrics_export import SERIES as EXPORTER_SERIES

# `up` is Prometheus's own, per scrape target
EXPORTED = frozenset(COLLECTOR_SERIES) | frozenset(EXPORTER_SERIES) | {"up"}

KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                      "bool", "offset"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def series_names(expr: str) -> set[str]:
    """Metric names in `expr`: identifiers left once strings, label matchers, ranges and label
    lists are removed, that are neither functions (followed by a parenthesis) nor keywords."""
    text = _LABEL_LIST.sub(" ", _RANGE.sub(" ", _MATCHERS.sub(" ", _STRING.sub('""', expr))))
    names = set()
    for match in _NAME.finditer(text):
        if text[match.end():].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue
        names.add(match.group())
    return names
