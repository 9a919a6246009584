"""Day-level gap detection from the archive's evidence."""

from collections import Counter
from datetime import date, datetime, time

import polars as pl

from stock_pipelines.archive.record import SystemRecord
from stock_pipelines.gaps.model import GapKind
from stock_pipelines.heartbeat.model import UpInterval
from stock_pipelines.market import SEOUL
from stock_pipelines.recovery.detect import CollectorDay, detect_gaps

DAY = date(2026, 11, 20)


def at(hhmm: str) -> datetime:
    return datetime.combine(DAY, time.fromisoformat(hhmm), SEOUL)


def us(instant: datetime) -> int:
    return int(instant.timestamp() * 1_000_000)


def test_loss_windows_the_collector_reported_become_gaps_for_their_shard(tmp_path):
    system = tmp_path / "kis-1" / "system" / "20261120.jsonl"
    system.parent.mkdir(parents=True)
    lines = [
        SystemRecord("UP", us(at("08:55")), "kis-1").to_json_line(),
        SystemRecord("LOSS_WINDOW", us(at("11:02")), "kis-1", {
            "reason": "reconnect", "from_us": us(at("10:58")), "to_us": us(at("11:01")),
            "symbol_list": ["005930", "000660"], "symbols": 2}).to_json_line(),
        '{"v":1,"event":"LOSS_WINDOW","at":1,"collector":"kis-1","detail":{"from_us":"x"}}\n',  # unreadable
    ]
    system.write_text("".join(lines), encoding="utf-8")
    # heartbeats went on through the reconnect: no downtime rule can see this loss
    collector = CollectorDay("kis-1", (UpInterval(at("08:55"), at("15:40")),), "redis", ("005930", "000660", "035420"))
    problems: Counter[str] = Counter()
    ticks = pl.DataFrame(schema={"collector": pl.String, "symbol": pl.String, "ts": pl.Datetime("us", "UTC"),
                                 "qty": pl.Int64, "cum": pl.Int64})
    gaps = detect_gaps(DAY, ticks, [collector], archive_root=tmp_path, problems=problems)
    loss = [g for g in gaps if "feed loss" in g.reason]
    assert [(g.kind, g.start, g.end, g.symbols) for g in loss] == [
        (GapKind.DOWNTIME, at("10:58"), at("11:01"), ("005930", "000660"))
    ]
    assert problems == {"unreadable_loss_window_lines": 1}


def test_disk_floor_refusals_while_beating_become_gaps_until_space_returns(tmp_path):
    system = tmp_path / "kis-1" / "system" / "20261120.jsonl"
    system.parent.mkdir(parents=True)
    system.write_text("".join([
        SystemRecord("DISK_LOW", us(at("10:10")), "kis-1", {"reason": "free space below floor"}).to_json_line(),
        SystemRecord("DISK_OK", us(at("10:20")), "kis-1", {}).to_json_line(),
        SystemRecord("DISK_LOW", us(at("15:00")), "kis-1", {}).to_json_line(),  # never came back
    ]), encoding="utf-8")
    collector = CollectorDay("kis-1", (UpInterval(at("08:55"), at("15:40")),), "redis", ("005930",))
    ticks = pl.DataFrame(schema={"collector": pl.String, "symbol": pl.String, "ts": pl.Datetime("us", "UTC"),
                                 "qty": pl.Int64, "cum": pl.Int64})
    gaps = [g for g in detect_gaps(DAY, ticks, [collector], archive_root=tmp_path) if "disk-space" in g.reason]
    assert [(g.start, g.end, g.symbols) for g in gaps] == [
        (at("10:10"), at("10:20"), ("005930",)),
        (at("15:00"), at("15:30"), ("005930",)),
    ]


def test_disk_floor_gaps_start_at_the_oldest_refused_trade(tmp_path):
    # the writer refuses trades that executed before its DISK_LOW line (they reach it late)
    system = tmp_path / "kis-1" / "system" / "20261120.jsonl"
    system.parent.mkdir(parents=True)
    system.write_text("".join([
        SystemRecord("DISK_LOW", us(at("10:10")), "kis-1", {"from_us": us(at("10:09:20"))}).to_json_line(),
        SystemRecord("DISK_OK", us(at("10:20")), "kis-1", {"refused_from_us": us(at("10:09:05"))}).to_json_line(),
        SystemRecord("DISK_LOW", us(at("15:00")), "kis-1", {"from_us": us(at("14:59:30"))}).to_json_line(),
    ]), encoding="utf-8")
    collector = CollectorDay("kis-1", (UpInterval(at("08:55"), at("15:40")),), "redis", ("005930",))
    ticks = pl.DataFrame(schema={"collector": pl.String, "symbol": pl.String, "ts": pl.Datetime("us", "UTC"),
                                 "qty": pl.Int64, "cum": pl.Int64})
    gaps = [g for g in detect_gaps(DAY, ticks, [collector], archive_root=tmp_path) if "disk-space" in g.reason]
    assert [(g.start, g.end) for g in gaps] == [(at("10:09:05"), at("10:20")), (at("14:59:30"), at("15:30"))]


def test_a_window_the_sensor_saw_is_downtime_unless_already_found():
    from datetime import datetime

    from stock_pipelines.gaps.model import Gap, GapKind
    from stock_pipelines.market import SEOUL
    from stock_pipelines.recovery.detect import CollectorDay, requested_gaps

    def t(hhmmss: str) -> datetime:
        return datetime(2026, 11, 20, *map(int, hhmmss.split(":")), tzinfo=SEOUL)

    collectors = [CollectorDay("kis-1", (), "redis", ("005930", "000660"))]
    window = f"{t('10:32:42').isoformat()}/{t('10:32:54').isoformat()}"
    (gap,) = requested_gaps([window], "collector_heartbeat_sensor:kis-1", [], collectors)
    assert (gap.kind, gap.collector, gap.start, gap.end, gap.symbols) == (
        GapKind.DOWNTIME, "kis-1", t("10:32:42"), t("10:32:54"), ("005930", "000660"))
    assert "collector_heartbeat_sensor:kis-1 saw no heartbeat" in gap.reason
    found = [Gap(GapKind.DOWNTIME, "kis-1", t("10:32:40"), t("10:33:00"), ("005930",), "hb")]
    assert requested_gaps([window], "collector_heartbeat_sensor:kis-1", found, collectors) == []
    assert requested_gaps([window], "collector_heartbeat_sensor:other", [], collectors) == []
    # a window wider than what was found adds only its uncovered parts, never the whole window
    wide = f"{t('10:00:00').isoformat()}/{t('13:52:00').isoformat()}"
    found = [Gap(GapKind.DOWNTIME, "kis-1", t("10:00:00"), t("10:25:00"), ("005930",), "hb"),
             Gap(GapKind.SILENCE, "kis-1", t("10:30:00"), t("10:40:00"), ("005930",), "silent"),
             Gap(GapKind.DOWNTIME, "other", t("11:00:00"), t("12:00:00"), ("005930",), "hb"),
             Gap(GapKind.DOWNTIME, "kis-1", t("13:30:00"), t("13:45:00"), ("005930",), "hb"),
             Gap(GapKind.DOWNTIME, "kis-1", t("13:40:00"), t("13:52:00"), ("005930",), "hb")]
    assert [(g.start, g.end) for g in requested_gaps([wide], "collector_heartbeat_sensor:kis-1", found, collectors)] \
        == [(t("10:25:00"), t("13:30:00"))]
    two = [f"{t('10:00:00').isoformat()}/{t('10:25:00').isoformat()}",
           f"{t('13:40:00').isoformat()}/{t('13:52:00').isoformat()}"]
    assert requested_gaps(two, "collector_heartbeat_sensor:kis-1", found, collectors) == []
    young = [Gap(GapKind.DOWNTIME, "kis-1", t("10:00:00"), t("10:10:00"), ("005930",), "hb")]
    assert [(g.start, g.end) for g in requested_gaps(two, "collector_heartbeat_sensor:kis-1", young, collectors)] \
        == [(t("10:10:00"), t("10:25:00")), (t("13:40:00"), t("13:52:00"))]
    assert requested_gaps(["not a window"], "collector_heartbeat_sensor:kis-1", [], collectors) == []


def test_downtime_is_judged_by_the_collectors_own_beat_interval():
    """At 600x a collector beats every 600 project seconds: the 14 minutes since its last beat are
    no outage (the heartbeat sensor calls it down only after 3 beats), 31 minutes are."""
    ticks = pl.DataFrame(schema={"collector": pl.String, "symbol": pl.String, "ts": pl.Datetime("us", "UTC"),
                                 "qty": pl.Int64, "cum": pl.Int64})

    def downtime(beat_interval_s: float, now: str) -> list[tuple[datetime, datetime]]:
        collector = CollectorDay("kis-1", (UpInterval(at("08:55"), at("14:41")),), "redis", ("005930",),
                                 beat_interval_s)
        return [(g.start, g.end) for g in detect_gaps(DAY, ticks, [collector], now=at(now))
                if g.kind == GapKind.DOWNTIME]

    assert downtime(600.0, "14:55") == []
    assert downtime(600.0, "15:12") == [(at("14:41"), at("15:12"))]
    # on the real clock's 5 s beat the same 14 minutes are an outage
    assert downtime(5.0, "14:55") == [(at("14:41"), at("14:55"))]


def test_the_sensors_window_stops_where_the_heartbeat_history_shows_the_collector_up():
    from stock_pipelines.recovery.detect import requested_gaps

    def t(hhmmss: str) -> datetime:
        return datetime.combine(DAY, time.fromisoformat(hhmmss), SEOUL)

    # beats were in the history all along: the sensor saw a stale beat, then a fresh one 35 min later
    up = (UpInterval(t("09:53:34"), t("10:44:19")), UpInterval(t("11:21:10"), t("14:47:47")))
    collectors = [CollectorDay("kis-1", up, "redis", ("005930",), 600.0)]
    sensor = "collector_heartbeat_sensor:kis-1"
    assert requested_gaps([f"{t('10:00:00').isoformat()}/{t('10:35:00').isoformat()}"], sensor, [], collectors) == []
    # a real outage keeps the part the history has no beat in, and only that
    (gap,) = requested_gaps([f"{t('10:44:19').isoformat()}/{t('11:27:00').isoformat()}"], sensor, [], collectors)
    assert (gap.start, gap.end) == (t("10:44:19"), t("11:21:10"))
    # the closed part of an outage still going on: past the history's last beat
    (gap,) = requested_gaps([f"{t('14:47:47').isoformat()}/{t('15:00:00').isoformat()}"], sensor, [], collectors)
    assert (gap.start, gap.end) == (t("14:47:47"), t("15:00:00"))
    # the archive's system stream stamps each beat when its line was written, after what it
    # vouches for: its history does not cut the sensor's window
    from_archive = [CollectorDay("kis-1", up, "archive", ("005930",), 600.0)]
    (gap,) = requested_gaps([f"{t('10:00:00').isoformat()}/{t('10:35:00').isoformat()}"], sensor, [], from_archive)
    assert (gap.start, gap.end) == (t("10:00:00"), t("10:35:00"))
