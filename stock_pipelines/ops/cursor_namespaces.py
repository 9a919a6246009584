"""One sensor cursor per Redis key prefix (`STOCK_PIPELINES_REDIS_PREFIX`).

A sensor reading Redis keeps its position in what it read (the event stream, each collector's
outage state). Two installations may share one Dagster instance but not one Redis namespace:
`stock-pipelines demo` runs the sensors under its own prefix, then `./run ui` runs them under
the real one. The stored cursor therefore holds one entry per prefix, and each evaluation reads
and writes only its own: the demo's simulated collector, its stream position and its fake
clock never reach the real namespace's entry, and the demo resets only its own.

Stored form: ``{"by_prefix": {"sp": "<cursor>", "sp-demo": "<cursor>"}}``. A cursor stored
before this (one bare cursor) belongs to the default prefix.
"""

from __future__ import annotations

import json

from stock_pipelines.redis_conn import DEFAULT_PREFIX


def _entries(stored: str | None) -> dict[str, str]:
    if not stored:
        return {}
    try:
        data = json.loads(stored)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("by_prefix"), dict):
        return dict(data["by_prefix"])
    return {DEFAULT_PREFIX: stored}


def cursor_for(stored: str | None, prefix: str) -> str | None:
    """The cursor of `prefix` in the stored cursor (None: this namespace was never evaluated)."""
    return _entries(stored).get(prefix)


def with_cursor(stored: str | None, prefix: str, cursor: str | None) -> str:
    """The stored cursor with `prefix`'s entry replaced (None removes it), the others kept."""
    entries = _entries(stored)
    if cursor is None:
        entries.pop(prefix, None)
    else:
        entries[prefix] = cursor
    return json.dumps({"by_prefix": dict(sorted(entries.items()))}, separators=(",", ":"))
