"""Pure logic of the collector: frame parsing, the pipeline's stages and counters, sharding,
settings, the market window, the stall watchdog and the failover state machine."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from stock_pipelines.archive.writer import ArchiveWriter, WriterPolicy
from stock_pipelines.collector import frames
from stock_pipelines.collector.config import CollectorSettings, ConfigError, parse_symbols, shard, sources_from_env
from stock_pipelines.collector.pipeline import Pipeline
from stock_pipelines.collector.policy import MarketWindow, SourceSelector, StallWatchdog
from stock_pipelines.market import SEOUL, krx_calendar
from stock_pipelines.sim import kis_protocol
from stock_pipelines.sim.day import SimDay

DAY = date(2026, 11, 20)


def at(hour: int, minute: int, second: int = 0, day: date = DAY) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SEOUL).timestamp()


@pytest.fixture(scope="module")
def sim_records():
    """Real H0STCNT0 records as the simulator renders them: (TickContext, trades) of one symbol."""
    sim = SimDay(DAY, seed=5, symbols=3)
    context = kis_protocol.TickContext.build(sim.trades(sim.codes[0]), "20261120")
    return context


def test_a_frame_with_several_records_gives_every_trade(sim_records):
    frame = kis_protocol.data_frame([sim_records.record(i, False) for i in range(3)])
    trades = frames.parse_frame(frame)
    t = sim_records.trades
    assert [(x.sym, x.ts, x.px, x.qty, x.cum) for x in trades] == [
        (t.code, int(t.ts[i]) // 1_000_000 * 1_000_000, int(t.px[i]), int(t.qty[i]), int(t.cum[i]))
        for i in range(3)]


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda f: f.replace("0|H0STCNT0|", "1|H0STCNT0|", 1), frames.ENCRYPTED),
    (lambda f: f.replace("|H0STCNT0|", "|H0STASP0|", 1), frames.OTHER_TR_ID),
    (lambda f: f.replace("|002|", "|003|", 1), frames.FIELD_COUNT),
    (lambda f: f.replace("|002|", "|0x2|", 1), frames.BAD_COUNT),
    (lambda f: f.rsplit("^", 1)[0], frames.FIELD_COUNT),
    (lambda f: "garbage", frames.NOT_A_FRAME),
])
def test_bad_frames_are_rejected_whole_with_a_reason(sim_records, mutate, reason):
    frame = kis_protocol.data_frame([sim_records.record(i, False) for i in range(2)])
    with pytest.raises(frames.FrameError) as caught:
        frames.parse_frame(mutate(frame))
    assert caught.value.reason == reason


def _record(fields: dict[int, str], base: str) -> str:
    parts = base.split("^")
    for index, value in fields.items():
        parts[index] = value
    return "^".join(parts)


@pytest.mark.parametrize(("fields", "reason"), [
    ({frames.SYMBOL: "00593"}, frames.BAD_SYMBOL),
    ({frames.PRICE: "12a"}, frames.BAD_NUMBER),
    ({frames.VOLUME: "0"}, frames.NONPOSITIVE),
    ({frames.CUM_VOLUME: "0"}, frames.BAD_CUM),
    ({frames.TIME: "256000"}, frames.BAD_TIME),
    ({frames.BUSINESS_DATE: "2026112"}, frames.BAD_TIME),
])
def test_bad_records_reject_their_frame(sim_records, fields, reason):
    good = sim_records.record(0, False)
    frame = kis_protocol.data_frame([good, _record(fields, sim_records.record(1, False))])
    with pytest.raises(frames.FrameError) as caught:
        frames.parse_frame(frame)
    assert caught.value.reason == reason


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_pipeline_counts_every_stage_and_reports_bad_frames(tmp_path, sim_records):
    clock = FakeClock(at(9, 5))
    writer = ArchiveWriter(tmp_path, "unit", WriterPolicy(min_free_bytes=1), clock=clock)
    pipeline = Pipeline(writer, "kis", lambda: int(clock() * 1_000_000))
    records = [sim_records.record(i, False) for i in range(6)]
    assert len(pipeline.receive(kis_protocol.data_frame(records[:3]))) == 3
    assert pipeline.receive(kis_protocol.data_frame(records[1:3])) == []  # an overlap: duplicates
    assert pipeline.receive("0|H0STCNT0|001|short") == []  # bad frame
    assert len(pipeline.receive(kis_protocol.data_frame(records[4:6]))) == 2  # record 3 missed: a cum gap
    writer.close()
    c = pipeline.counters
    stages = (c.frames_in, c.records_in, c.frames_bad, c.duplicates, c.enriched, c.archived)
    assert stages == (4, 7, 1, 2, 5, 5)
    assert c.bad_by_reason == {frames.FIELD_COUNT: 1}
    assert c.cum_gaps == 1 and c.cum_gap_volume == int(sim_records.trades.qty[3])
    lines = [json.loads(x) for x in (tmp_path / "unit/trades/20261120/09_00.jsonl").read_text().splitlines()]
    assert [x["seq"] for x in lines] == [1, 2, 3, 4, 5]
    assert [x["cum"] for x in lines] == [int(v) for v in sim_records.trades.cum[[0, 1, 2, 4, 5]]]
    assert {x["rx"] for x in lines} == {int(at(9, 5) * 1_000_000)}
    system = [json.loads(x) for x in (tmp_path / "unit/system/20261120.jsonl").read_text().splitlines()]
    bad = [x for x in system if x["event"] == "BAD_FRAME"]
    assert len(bad) == 1 and bad[0]["detail"]["reason"] == frames.FIELD_COUNT
    assert bad[0]["detail"]["count"] == 1 and bad[0]["detail"]["raw"] == "0|H0STCNT0|001|short"


def test_symbols_from_a_list_or_a_file(tmp_path):
    assert parse_symbols("005930, 000660,005930") == ["005930", "000660"]
    listing = tmp_path / "universe.txt"
    listing.write_text("# top names\n005930\n000660,373220  # comment\n")
    assert parse_symbols(str(listing)) == ["005930", "000660", "373220"]
    with pytest.raises(ConfigError, match="00593X0"):
        parse_symbols("005930,00593X0")
    with pytest.raises(ConfigError, match="no such file"):
        parse_symbols("missing.txt")
    many = [f"{i:06d}" for i in range(60)]  # a list longer than a file name may be
    assert parse_symbols(",".join(many)) == many


def test_sharding_keeps_every_session_within_the_limit():
    codes = [f"{i:06d}" for i in range(95)]
    shards = shard(codes, 40)
    assert [len(s) for s in shards] == [32, 32, 31]
    assert [c for s in shards for c in s] == codes
    assert len(shard(codes[:40], 40)) == 1 and len(shard(codes[:41], 40)) == 2


def test_sources_from_env_name_what_is_missing_without_secrets():
    sources, problems = sources_from_env({"KIS_APP_KEY": "k"})
    assert sources == [] and problems == [
        "KIS_BASE_URL is not set: the KIS REST endpoint (approval key) is unknown",
        "KIS_APP_SECRET not set in the environment"]
    env = {"KIS_BASE_URL": "http://127.0.0.1:9", "KIS_APP_KEY": "k1", "KIS_APP_SECRET": "very-secret",
           "KIS_APP_KEY_2": "k2", "KIS_APP_SECRET_2": "s2", "KIS_SECONDARY_APP_KEY": "k3",
           "KIS_SECONDARY_APP_SECRET": "s3", "KIS_SECONDARY_BASE_URL": "http://127.0.0.1:10"}
    sources, problems = sources_from_env(env)
    assert problems == []
    assert [(s.name, s.ws_url, len(s.keys)) for s in sources] == [
        ("primary", "ws://127.0.0.1:9/tryitout/H0STCNT0", 2),
        ("secondary", "ws://127.0.0.1:10/tryitout/H0STCNT0", 1)]
    assert "very-secret" not in repr(sources)


def test_market_window_primes_from_0855_and_idles_at_night():
    window = MarketWindow(krx_calendar(), timedelta(minutes=5), timedelta(minutes=5))
    assert not window.should_connect(at(8, 54, 59))
    assert window.should_connect(at(8, 55)) and window.should_connect(at(15, 34))
    assert not window.should_connect(at(15, 35)) and not window.should_connect(at(23, 0))
    assert not window.should_connect(at(10, 0, day=date(2026, 11, 21)))  # Saturday
    assert window.next_connect(at(20, 0)) == datetime(2026, 11, 23, 8, 55, tzinfo=SEOUL)  # Monday
    # CSAT day (2026-11-19): the session opens at 10:00, so priming starts at 09:55
    assert not window.should_connect(at(9, 50, day=date(2026, 11, 19)))
    assert window.should_connect(at(9, 55, day=date(2026, 11, 19)))


def test_watchdog_counts_only_continuous_trading_silence():
    window = MarketWindow(krx_calendar(), timedelta(minutes=5), timedelta(minutes=5))
    dog = StallWatchdog(window, limit_s=300)
    dog.reset(at(8, 55))
    for minute in range(56, 60):  # pre-open: silence does not count
        assert dog.check(at(8, minute)) is None
    assert dog.check(at(9, 4, 59)) is None
    assert dog.check(at(9, 5)) == pytest.approx(300)  # 5 minutes of continuous trading
    assert dog.check(at(9, 6)) is None  # the watch restarted
    dog.reset(at(15, 16))
    assert dog.check(at(15, 29)) is None  # 4 of the 13 minutes are continuous; the auction is not
    dog.reset(at(15, 15))
    assert dog.check(at(15, 29)) == pytest.approx(300)
    dog.reset(at(9, 30))
    assert dog.check(at(9, 34)) is None
    dog.reset(at(9, 34))  # data came: silence starts again
    assert dog.check(at(9, 38)) is None


def test_failover_after_repeated_failures_and_failback_on_a_good_probe():
    selector = SourceSelector(["primary", "secondary"], failover_after=3)
    assert selector.failure(1.0, "dropped") is None and selector.failure(2.0, "dropped") is None
    selector.success()  # data between failures: they were not consecutive
    assert selector.failure(3.0, "dropped") is None and selector.failure(4.0, "connect") is None
    switch = selector.failure(5.0, "stalled")
    assert switch is not None and (switch.from_source, switch.to_source) == ("primary", "secondary")
    assert selector.name == "secondary"
    assert all(selector.failure(6.0 + i, "dropped") is None for i in range(5))  # no flapping on the secondary
    back = selector.probe_succeeded(20.0)
    assert back is not None and back.to_source == "primary" and selector.name == "primary"
    assert [s.to_source for s in selector.switches] == ["secondary", "primary"]
    single = SourceSelector(["primary"], failover_after=1)
    assert single.failure(1.0, "dropped") is None and single.name == "primary"


def test_lines_refused_at_the_disk_floor_are_counted_and_leave_a_seq_hole(tmp_path, sim_records):
    clock = FakeClock(at(9, 5))
    writer = ArchiveWriter(tmp_path, "floor", WriterPolicy(min_free_bytes=1), clock=clock)
    pipeline = Pipeline(writer, "kis", lambda: int(clock() * 1_000_000))
    assert len(pipeline.receive(kis_protocol.data_frame([sim_records.record(0, False)]))) == 1
    writer.min_free_bytes = 10**18  # the disk "fills"
    clock.now += 2
    assert pipeline.receive(kis_protocol.data_frame([sim_records.record(1, False)])) == []
    writer.min_free_bytes = 1
    clock.now += 2
    assert len(pipeline.receive(kis_protocol.data_frame([sim_records.record(2, False)]))) == 1
    writer.close()
    c = pipeline.counters
    assert (c.records_in, c.archived, c.refused) == (3, 2, 1)
    lines = [json.loads(x) for x in (tmp_path / "floor/trades/20261120/09_00.jsonl").read_text().splitlines()]
    assert [x["seq"] for x in lines] == [1, 3]  # the refused line's seq is missing: a sequence gap
    system = (tmp_path / "floor/system/20261120.jsonl").read_text().splitlines()
    events = [json.loads(x)["event"] for x in system]
    assert events == ["DISK_LOW", "DISK_OK"]


def test_sources_for_kiwoom_and_a_fallback_broker():
    env = {"KIS_BASE_URL": "http://127.0.0.1:9", "KIS_APP_KEY": "k1", "KIS_APP_SECRET": "s1",
           "KIWOOM_BASE_URL": "https://127.0.0.1:11", "KIWOOM_APP_KEY": "w1", "KIWOOM_SECRET_KEY": "ws1",
           "KIS_SECONDARY_APP_KEY": "k3", "KIS_SECONDARY_APP_SECRET": "s3"}
    sources, problems = sources_from_env(env, "kis", "kiwoom")
    assert problems == []  # the Kiwoom feed replaces the second KIS key as the secondary
    assert [(s.name, s.broker, s.ws_url) for s in sources] == [
        ("primary", "kis", "ws://127.0.0.1:9/tryitout/H0STCNT0"),
        ("secondary", "kiwoom", "wss://127.0.0.1:11/api/dostk/websocket")]
    real = "wss://api.kiwoom.com:10000/api/dostk/websocket"
    sources, problems = sources_from_env({**env, "KIWOOM_WS_URL": real}, "kiwoom")
    assert [(s.name, s.broker, s.ws_url, s.keys[0].app_key) for s in sources] == [
        ("primary", "kiwoom", real, "w1")]
    sources, problems = sources_from_env({"KIWOOM_APP_KEY": "w1"}, "kiwoom")
    assert sources == [] and problems == [
        "KIWOOM_BASE_URL is not set: the Kiwoom REST endpoint (access token) is unknown",
        "KIWOOM_SECRET_KEY not set in the environment"]
    with pytest.raises(ConfigError, match="--fallback kis is the --source itself"):
        sources_from_env(env, "kis", "kis")


def test_the_standby_mode_is_hot_by_default_and_checked():
    assert CollectorSettings().standby == "hot"
    assert CollectorSettings.from_env({"STOCK_PIPELINES_COLLECTOR_STANDBY": "cold"}).standby == "cold"
    with pytest.raises(ConfigError, match="standby 'warm': use one of hot, cold"):
        CollectorSettings.from_env({"STOCK_PIPELINES_COLLECTOR_STANDBY": "warm"})
