"""The heartbeat sensor's rules with a fixed clock: every rule, one evaluation at a time."""

import json
from datetime import date, datetime, timedelta

from stock_pipelines.market import SEOUL
from stock_pipelines.ops.heartbeat_cursor import CursorState
from stock_pipelines.ops.heartbeat_rules import Beat, Governance, Restart, RulesConfig, Switches, evaluate
from stock_pipelines.ops.recovery_window import Window, through_the_minute

DAY = date(2026, 11, 20)  # a Friday session, 09:00-15:30
PREV = date(2026, 11, 19)  # Thursday: the CSAT day, 10:00-16:30


def at(hhmmss: str, day: date = DAY) -> datetime:
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return datetime(day.year, day.month, day.day, h, m, s, tzinfo=SEOUL)


def run(
    now,
    beats=(),
    restarts=(),
    cursor=None,
    switches=None,
    governance=None,
    retries=(),
    stream="1-0",
):
    return evaluate(
        now,
        list(beats),
        list(restarts),
        stream,
        switches or Switches(),
        governance or Governance(),
        cursor,
        list(retries),
        RulesConfig(),
    )


def recovery_keys(evaluation):
    return [launch.run_key for launch in evaluation.launches if launch.kind == "recovery"]


def test_healthy_collectors_launch_nothing():
    result = run(at("10:00:00"), [Beat("c1", at("09:59:58")), Beat("c2", at("09:59:57"))])
    assert result.launches == []
    assert result.skip_reason == "all collectors healthy"


def test_stale_collector_in_session_launches_the_closed_part_at_once_then_every_four_minutes():
    beat = Beat("c1", at("10:00:00"), interval_s=5)
    first = run(at("10:00:14"), [beat])  # 14 s < 3 beats: not yet
    assert first.launches == []
    second = run(at("10:00:20"), [beat], cursor=first.cursor)
    assert recovery_keys(second) == ["recovery:c1:20261120:100000-100020:a1"]
    window = second.launches[0].window
    assert (window.day, window.start, window.end) == (DAY, at("10:00:00"), at("10:00:20"))
    # still down 10 s later: nothing new (the closed part is on its way)
    third = run(at("10:00:30"), [beat], cursor=second.cursor)
    assert third.launches == []
    assert third.skip_reason == "still down, recovery handed over up to the last launch: c1 since 10:00:00"
    # four minutes on: the next closed part, so every lost minute is recovered within 5 minutes
    fourth = run(at("10:04:20"), [beat], cursor=third.cursor)
    assert recovery_keys(fourth) == ["recovery:c1:20261120:100020-100420:a1"]


def test_the_rest_is_recovered_when_the_collector_is_back():
    beat = Beat("c1", at("10:00:00"))
    down = run(at("10:00:20"), [beat])
    back = Restart("5-0", "c1", at("10:02:00"), previous_activity=at("10:00:00"))
    result = run(at("10:02:05"), [Beat("c1", at("10:02:04"))], [back], cursor=down.cursor, stream="5-0")
    assert recovery_keys(result) == ["recovery:c1:20261120:100020-100200:a1"]
    assert CursorState.loads(result.cursor).collectors["c1"].down_since is None
    assert CursorState.loads(result.cursor).stream == "5-0"


def test_a_restart_of_a_collector_known_down_recovers_from_the_handed_over_point_whatever_the_history_says():
    # a "previous activity" later than the outage (the new process's own back-dated beat) must not
    # shrink the hole: the part not yet handed over is lost up to the restart
    down = run(at("10:00:20"), [Beat("c1", at("10:00:00"))])
    back = Restart("5-0", "c1", at("10:02:30"), previous_activity=at("10:02:29"))
    result = run(at("10:02:35"), [Beat("c1", at("10:02:34"))], [back], cursor=down.cursor, stream="5-0")
    assert recovery_keys(result) == []  # 10:02 is still forming: its bar is final once it closes
    result = run(at("10:03:05"), [Beat("c1", at("10:03:04"))], cursor=result.cursor, stream="5-0")
    assert recovery_keys(result) == ["recovery:c1:20261120:100020-100300:a1"]


def test_a_quick_restart_between_evaluations_is_found_from_the_last_activity_before_it():
    restart = Restart("7-0", "c1", at("11:00:30"), previous_activity=at("11:00:02"))
    result = run(at("11:00:35"), [Beat("c1", at("11:00:34"))], [restart])
    assert recovery_keys(result) == []
    assert "waiting" in result.skip_reason
    result = run(at("11:01:04"), [Beat("c1", at("11:01:04"))], cursor=result.cursor, stream="7-0")
    assert recovery_keys(result) == []  # the minute closed 4 s ago: not yet settled
    result = run(at("11:01:06"), [Beat("c1", at("11:01:05"))], cursor=result.cursor, stream="7-0")
    assert recovery_keys(result) == ["recovery:c1:20261120:110002-110100:a1"]
    assert result.launches[0].reason.startswith("restart after downtime")


def test_the_window_of_a_restart_runs_to_the_end_of_its_minute_and_waits_for_it_to_close():
    [window] = through_the_minute(
        [Window("c1", DAY, at("10:00:20"), at("10:02:30"))], timedelta(seconds=5)
    )
    assert (window.end, window.not_before) == (at("10:03:00"), at("10:03:05"))
    [on_the_minute] = through_the_minute([Window("c1", DAY, at("10:00:20"), at("10:03:00"))], timedelta(0))
    assert on_the_minute.end == at("10:03:00")


def test_weekend_and_holiday_outages_launch_nothing_and_lose_nothing():
    saturday = date(2026, 11, 21)
    result = run(at("11:00:00", saturday), [Beat("c1", at("10:00:00", saturday))])
    assert result.launches == []
    assert "outside trading time" in result.skip_reason or "stale" in result.skip_reason
    assert CursorState.loads(result.cursor).pending == []  # no trading time was lost
    christmas = date(2026, 12, 25)
    restart = Restart("1-0", "c1", at("12:00:00", christmas), previous_activity=at("10:00:00", christmas))
    result = run(at("12:00:01", christmas), [Beat("c1", at("12:00:01", christmas))], [restart])
    assert result.launches == [] and CursorState.loads(result.cursor).pending == []
    assert "no trading time lost" in result.skip_reason


def test_restart_across_a_night_in_the_pre_open_window_only_runs_the_preflight_then_recovers_at_the_open():
    # down Thursday (CSAT day, close 16:30) at 16:00, back Friday 08:50
    restart = Restart("9-0", "c1", at("08:50:00"), previous_activity=at("16:00:00", PREV))
    pre_open = run(at("08:50:05"), [Beat("c1", at("08:50:04"))], [restart])
    assert [(launch.kind, launch.run_key) for launch in pre_open.launches] == [
        ("preflight", "preflight:c1:restart:20261120T085000")
    ]
    pending = CursorState.loads(pre_open.cursor).pending
    assert [(w.day, w.start, w.end) for w in pending] == [(PREV, at("16:00:00", PREV), at("16:30:00", PREV))]
    # 08:59: still pre-open, nothing; 09:00:10: yesterday's window goes (to yesterday's partition)
    assert run(at("08:59:00"), [Beat("c1", at("08:58:59"))], cursor=pre_open.cursor).launches == []
    opened = run(at("09:00:10"), [Beat("c1", at("09:00:09"))], cursor=pre_open.cursor)
    assert recovery_keys(opened) == ["recovery:c1:20261119:160000-163000:a1"]


def test_stale_in_the_pre_open_window_asks_for_a_preflight_and_recovers_from_the_open():
    beat = Beat("c1", at("08:40:00"))
    pre_open = run(at("08:40:30"), [beat])
    assert [launch.kind for launch in pre_open.launches] == ["preflight"]
    opened = run(at("09:00:30"), [beat], cursor=pre_open.cursor)
    assert recovery_keys(opened) == ["recovery:c1:20261120:090000-090030:a1"]


def test_preflight_switched_off_is_said_not_launched():
    restart = Restart("1-0", "c1", at("08:45:00"), previous_activity=at("08:44:00"))
    result = run(at("08:45:01"), [Beat("c1", at("08:45:01"))], [restart], switches=Switches(preflight=False))
    assert result.launches == []
    assert "pre-flight is switched off" in result.skip_reason


def test_an_outage_after_the_close_is_not_lost_time():
    result = run(at("16:00:00"), [Beat("c1", at("15:40:00"))])
    assert result.launches == [] and CursorState.loads(result.cursor).pending == []


def test_the_same_window_never_launches_twice_and_a_retry_always_can():
    beat = Beat("c1", at("10:00:00"))
    first = run(at("10:00:20"), [beat])
    key = recovery_keys(first)[0]
    # the same restart event handed over again (e.g. re-read after a crash before the cursor was saved)
    window = first.launches[0].window
    again = run(at("10:00:30"), [beat], retries=[window], cursor=first.cursor)
    assert again.launches == []
    retry = Window(**{**window.__dict__, "attempt": 2, "not_before": at("10:00:40")})
    early = run(at("10:00:35"), [beat], retries=[retry], cursor=again.cursor)
    assert early.launches == []  # backoff not over
    due = run(at("10:00:41"), [beat], cursor=early.cursor)
    assert recovery_keys(due) == [key.replace(":a1", ":a2")]


def test_a_daemon_restart_resumes_from_the_cursor_without_repeating_anything():
    beat = Beat("c1", at("10:00:00"))
    first = run(at("10:00:20"), [beat], stream="3-0")
    saved = json.loads(first.cursor)
    assert saved["stream"] == "3-0" and saved["collectors"]["c1"]["down_since"]
    # a new daemon process only has the saved cursor string
    resumed = run(at("10:01:00"), [beat], cursor=first.cursor, stream="3-0")
    assert resumed.launches == []


def test_ten_collectors_killed_at_once_are_spread_out_and_all_launched_within_a_minute():
    beats = [Beat(f"c{i:02d}", at("10:00:00")) for i in range(10)]
    cursor, launched, times = None, [], []
    now = at("10:00:20")
    while now <= at("10:01:20"):
        result = run(now, beats, cursor=cursor)
        cursor = result.cursor
        assert len(result.launches) <= RulesConfig().max_launches
        launched += recovery_keys(result)
        times += [now] * len(result.launches)
        now += timedelta(seconds=10)
    assert len(launched) == len(set(launched)) == 10
    assert {key.split(":")[1] for key in launched} == {b.collector for b in beats}
    assert len(set(times)) >= 3  # spread over several evaluations, not one burst
    assert max(times) - at("10:00:00") <= timedelta(seconds=60)


def test_kill_switches_stop_everything_and_say_so():
    beat = Beat("c1", at("10:00:00"))
    off = run(
        at("10:00:20"),
        [beat],
        switches=Switches(monitoring=False, detail="FEATURE_HEARTBEAT_MONITORING_ENABLED off via env"),
        cursor=None,
        stream="8-0",
    )
    assert off.launches == []
    assert "heartbeat monitoring is off" in off.skip_reason and "via env" in off.skip_reason
    assert CursorState.loads(off.cursor).stream == "0-0"  # events are read again once it is back on
    held = run(
        at("10:00:20"),
        [beat],
        switches=Switches(auto_recovery=False, detail="FEATURE_AUTO_RECOVERY_ENABLED off via redis"),
    )
    assert held.launches == []
    assert (
        held.skip_reason.startswith("automatic recovery is off")
        and "1 recovery window(s) held" in held.skip_reason
    )
    back_on = run(at("10:00:30"), [beat], cursor=held.cursor)
    assert recovery_keys(back_on) == ["recovery:c1:20261120:100000-100020:a1"]


def test_governance_holds_runs_dormant_open_breaker_and_allows_one_trial_half_open():
    beats = [Beat("c1", at("10:00:00")), Beat("c2", at("10:00:00"))]
    dormant = run(
        at("10:00:20"), beats, governance=Governance(allowed=False, reason="dormant since epoch 1: x")
    )
    assert dormant.launches == [] and dormant.skip_reason.startswith("dormant since")
    opened = run(at("10:00:30"), beats, cursor=dormant.cursor, governance=Governance(breaker_state="OPEN"))
    assert opened.launches == [] and "circuit breaker OPEN" in opened.skip_reason
    half = run(at("10:00:40"), beats, cursor=opened.cursor, governance=Governance(breaker_state="HALF_OPEN"))
    assert len(half.launches) == 1
    closed = run(at("10:00:50"), beats, cursor=half.cursor)
    assert len(closed.launches) == 1  # the other one
    assert set(recovery_keys(half) + recovery_keys(closed)) == {
        "recovery:c1:20261120:100000-100020:a1",
        "recovery:c2:20261120:100000-100020:a1",
    }


def test_a_collector_retired_days_ago_is_forgotten_not_recovered():
    result = run(at("10:00:00"), [Beat("old", at("10:00:00", date(2026, 11, 10)))])
    assert result.launches == [] and CursorState.loads(result.cursor).collectors == {}


def test_a_restart_within_the_heartbeat_tolerance_is_no_outage():
    restart = Restart("2-0", "c1", at("11:00:05"), previous_activity=at("11:00:00"))
    assert run(at("11:00:06"), [Beat("c1", at("11:00:06"))], [restart]).launches == []


def test_windows_of_one_collector_and_day_waiting_together_become_one_run():
    restarts = [
        Restart("1-0", "c1", at("10:25:00"), previous_activity=at("10:00:00")),
        Restart("2-0", "c1", at("13:52:00"), previous_activity=at("13:40:00")),
    ]
    result = run(at("15:00:00"), [Beat("c1", at("14:59:59"))], restarts)
    assert recovery_keys(result) == ["recovery:c1:20261120:100000-135200:a1"]
    assert result.launches[0].reason.startswith("restart after downtime")
    # the run carries the two outages, not their hull: 10:25-13:40 was up and costs no call
    (launch,) = result.launches
    assert launch.window.pieces == ((at("10:00:00"), at("10:25:00")), (at("13:40:00"), at("13:52:00")))
    assert "10:00:00-10:25:00, 13:40:00-13:52:00" in launch.reason
    # and keeps them through the cursor and the run's window tag (a retry asks for the same spans)
    assert Window.from_json(json.loads(json.dumps(launch.window.to_json()))) == launch.window


def test_adjacent_windows_of_an_ongoing_outage_merge_into_one_span():
    first = run(at("10:00:20"), [Beat("c1", at("10:00:00"))])
    waiting = Window("c1", DAY, at("10:00:00"), at("10:00:20"), not_before=at("10:05:00"))
    state = CursorState.loads(first.cursor)
    state.launched, state.pending = [], [waiting]
    restart = Restart("2-0", "c1", at("10:03:00"), previous_activity=at("10:00:00"))
    result = run(at("10:06:00"), [Beat("c1", at("10:06:00"))], [restart], cursor=state.dumps())
    (launch,) = [launch for launch in result.launches if launch.kind == "recovery"]
    assert launch.window.pieces == ((at("10:00:00"), at("10:03:00")),)
