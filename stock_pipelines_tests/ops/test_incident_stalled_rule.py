"""The collector_stalled rule: a STALLED beat opens the incident only while the collector is
connected; one idle outside the trading window (its status hash says so) has no feed to stall,
and the incident it had resolves."""

from __future__ import annotations

from datetime import datetime, timedelta

from stock_pipelines.market import SEOUL
from stock_pipelines.ops.incidents import COLLECTOR_STALLED, CollectorView, collector_observations, transitions

NIGHT = datetime(2026, 11, 19, 0, 39, tzinfo=SEOUL)


def stalled_subjects(*views: CollectorView) -> dict[str, str]:
    [observation] = [o for o in collector_observations(NIGHT, views) if o.kind == COLLECTOR_STALLED]
    return dict(observation.active)


def beat(collector: str, state: str | None, status: str = "stalled") -> CollectorView:
    return CollectorView(collector, NIGHT - timedelta(seconds=1), 5.0, status, None, state)


def test_a_stalled_beat_is_an_incident_only_while_connected():
    active = stalled_subjects(beat("kw-1", "idle"), beat("kis-1", "connected"), beat("kis-2", None),
                              beat("kis-3", "connected", "ok"))
    assert sorted(active) == ["kis-1", "kis-2"]   # a collector not reporting its state is judged by its beat
    assert active["kis-1"] == "collector kis-1: connected but its feed went quiet (STALLED)"


def test_the_incident_of_a_collector_gone_idle_resolves():
    change = transitions({(COLLECTOR_STALLED, "kw-1")}, collector_observations(NIGHT, [beat("kw-1", "idle")]))
    assert change.to_resolve == [(COLLECTOR_STALLED, "kw-1")] and change.to_open == []
