"""Timing the `disk_floor` fault: its own `disk_low` incidents only, detected at the first of
them, recovered when the last writer accepts trades again (the last resolution)."""

from __future__ import annotations

from stock_pipelines.soak.figures_alerts import AlertFigures, IncidentAlerts
from stock_pipelines.soak.figures_dagster import RunRow
from stock_pipelines.soak.figures_faults import time_faults

DAY = "2026-11-18"
FLOOR = {"id": "f17-disk_floor", "kind": "disk_floor", "subject": "archive", "day": DAY,
         "injected_wall": 1_000.0, "cleared_wall": 1_060.0}


def incident(kind: str, subject: str, fired: float, resolved: float | None, day: str = DAY) -> IncidentAlerts:
    return IncidentAlerts(f"{kind}:{subject}:{fired}", kind, subject, opened_at=f"{day}T11:00:00+09:00",
                          firing_walls=[fired], resolved_walls=[] if resolved is None else [resolved])


def sensor_run(created: float) -> RunRow:
    return RunRow(run_id="r1", job="recovery_job", status="SUCCESS", partition=DAY, launched_by="sensor x",
                  created_wall=created, ended_wall=created + 5)


def timed(*incidents: IncidentAlerts, runs=()) -> tuple:
    [row] = time_faults([FLOOR], AlertFigures(list(incidents), 0, 0), list(runs))
    return row.detect_s, row.recover_s, row.detected_by


def test_the_floor_is_detected_by_the_first_disk_low_and_recovered_at_the_last_resolution():
    assert timed(
        incident("collector_down", "kis-1", 1_001.0, 1_003.0),          # another fault of the group
        incident("disk_low", "kis-2", 1_004.0, 1_070.0),
        incident("disk_low", "kiwoom-1", 1_002.5, 1_066.0),
        incident("disk_low", "kis-1", 990.0, 995.0),                    # before the injection
        incident("disk_low", "kis-1", 1_010.0, 1_080.0, day="2026-11-19"),  # another day's
        runs=[sensor_run(1_001.5)],
    ) == (2.5, 70.0, "incident disk_low kis-2, kiwoom-1")


def test_a_writer_still_refusing_leaves_the_floor_unrecovered_and_nothing_else_detects_it():
    still_refusing = incident("disk_low", "kis-2", 1_003.0, None)
    assert timed(incident("disk_low", "kis-1", 1_003.0, 1_050.0), still_refusing)[1] is None
    assert timed(incident("collector_down", "kis-1", 1_001.0, 1_003.0), runs=[sensor_run(1_001.5)]) == (
        None, None, "not detected")
