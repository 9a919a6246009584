"""Expected minute bars for the tests: `stock_pipelines.sim.truth` (built from the simulator's
trade list alone, sharing no code with the project's bar building), and the minutes an outage
cuts through."""

from __future__ import annotations

from datetime import UTC, datetime

from stock_pipelines.sim.truth import COLUMNS, SCHEMA, expected_bars, sim_trades, truth_bars

__all__ = ["COLUMNS", "SCHEMA", "expected_bars", "outage_edge_minutes", "sim_trades", "truth_bars"]


def outage_edge_minutes(start: datetime, end: datetime) -> list[datetime]:
    """The minutes an outage [start, end) cuts through: the minute it starts in and the minute it
    ends in, when the boundary is not on a minute (those minutes are partly lost), in UTC."""
    edges = []
    for at in (start, end):
        at = at.astimezone(UTC)
        floor = at.replace(second=0, microsecond=0)
        if floor != at:
            edges.append(floor)
    return edges
