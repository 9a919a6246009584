"""The daily broker sample for the consistency check: which symbol-windows to fetch within a call
budget (every recovered window first, then the most active symbols), fetching them, and what the
broker answered (`BrokerSample`, stored by the quality_broker_sample asset and judged by the
check against the day's final bars)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import polars as pl

from stock_pipelines.brokers.model import BAR_SCHEMA, BrokerAuthError, BrokerError, MinuteBarSource
from stock_pipelines.market import SEOUL, Session
from stock_pipelines.recovery.plan import page_size

ONE_MINUTE = timedelta(minutes=1)
WINDOW_SCHEMA = {
    "symbol": pl.String(),
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),
    "reason": pl.String(),
}


@dataclass(frozen=True)
class SampleWindow:
    symbol: str
    start: datetime  # Asia/Seoul, a bar slot
    end: datetime  # exclusive
    calls: int
    reason: str  # "recovered" | "active"


@dataclass
class SampleResult:
    windows: list[SampleWindow]  # answered by the broker
    bars: pl.DataFrame  # the broker's bars (BAR_SCHEMA)
    calls: int = 0
    failed: list[tuple[SampleWindow, str]] = field(default_factory=list)

    def windows_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            [(w.symbol, w.start, w.end, w.reason) for w in self.windows],
            schema={
                "symbol": pl.String(),
                "start": pl.Datetime("us", "Asia/Seoul"),
                "end": pl.Datetime("us", "Asia/Seoul"),
                "reason": pl.String(),
            },
            orient="row",
        ).with_columns(pl.col("start", "end").dt.convert_time_zone("UTC"))


def _runs(symbol_minutes: pl.DataFrame, slots: list[datetime]) -> list[tuple[str, datetime, datetime, int]]:
    """(symbol, start, end, slots) for each run of consecutive bar slots."""
    index = {s: i for i, s in enumerate(slots)}
    result = []
    for symbol, minutes in (
        symbol_minutes.group_by("symbol", maintain_order=True).agg(pl.col("minute").sort()).iter_rows()
    ):
        positions = sorted(index[m.astimezone(SEOUL)] for m in minutes if m.astimezone(SEOUL) in index)
        run_start = prev = None
        for p in positions + [None]:
            if p is not None and prev is not None and p == prev + 1:
                prev = p
                continue
            if run_start is not None:
                result.append((symbol, slots[run_start], slots[prev] + ONE_MINUTE, prev - run_start + 1))
            run_start = prev = p
    return result


def choose_sample(
    day: date, session: Session, recovered: pl.DataFrame, activity: dict[str, int], budget: int, today: date
) -> list[SampleWindow]:
    """Windows to fetch, at most `budget` calls: every recovered window (cheapest first when the
    budget cannot hold them all), then one page-sized window of each symbol by traded volume, the
    page rotating with the day so that, over days, every part of the session gets sampled."""
    if budget <= 0:
        return []
    slots = session.minute_bar_starts()
    page = page_size(day, today)
    chosen: list[SampleWindow] = []
    spent = 0
    runs = _runs(recovered.select("symbol", "minute"), slots) if recovered.height else []
    for symbol, start, end, count in sorted(runs, key=lambda r: (math.ceil(r[3] / page), r[0], r[1])):
        calls = math.ceil(count / page)
        if spent + calls <= budget:
            chosen.append(SampleWindow(symbol, start, end, calls, "recovered"))
            spent += calls
    pages = math.ceil(len(slots) / page)
    ranking = sorted(activity, key=lambda s: (-activity[s], s))
    for rank, symbol in enumerate(ranking):
        if spent >= budget:
            break
        k = (day.toordinal() + rank) % pages
        members = slots[k * page : (k + 1) * page]
        chosen.append(SampleWindow(symbol, members[0], members[-1] + ONE_MINUTE, 1, "active"))
        spent += 1
    return chosen


def fetch_sample(source: MinuteBarSource, day: date, windows: list[SampleWindow]) -> SampleResult:
    """Fetch each window; a failed window is listed, not fatal, but refused credentials stop the
    sample (retrying cannot help)."""
    result = SampleResult(windows=[], bars=pl.DataFrame(schema=BAR_SCHEMA))
    frames = []
    for window in windows:
        try:
            fetched = source.minute_bars(window.symbol, day, window.start, window.end)
        except BrokerAuthError as error:
            result.failed.append((window, f"{type(error).__name__}: {error}"))
            break
        except (BrokerError, TimeoutError, OSError) as error:
            result.failed.append((window, f"{type(error).__name__}: {error}"))
            continue
        result.calls += fetched.calls
        result.windows.append(window)
        frames.append(fetched.bars)
    if frames:
        result.bars = pl.concat([f.select(list(BAR_SCHEMA)).cast(BAR_SCHEMA) for f in frames])
    return result


@dataclass
class BrokerSample:
    """What the broker answered for the day's sample: the windows it answered (UTC, WINDOW_SCHEMA)
    and its bars (BAR_SCHEMA); when not sampled, `note` says why."""

    sampled: bool
    note: str  # why not sampled, or what was
    calls: int = 0
    windows: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=WINDOW_SCHEMA))
    bars: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=BAR_SCHEMA))
    failed: list[str] = field(default_factory=list)


def take_sample(
    day: date,
    session: Session,
    ticks: pl.DataFrame,
    recovered: pl.DataFrame,
    bars: pl.DataFrame,
    source: MinuteBarSource | None,
    budget: int,
    now: datetime,
    unavailable: str = "",
) -> BrokerSample:
    """Choose the day's windows (`recovered`: the recovery's bars; activity: the archived trades'
    volume, else `bars`' volume) and ask the broker for them; `source` None: `unavailable` says why."""
    if budget <= 0:
        return BrokerSample(False, "off (STOCK_PIPELINES_QUALITY_REST_CALLS=0)")
    if source is None:
        return BrokerSample(False, f"broker unavailable: {unavailable}")
    activity = (
        dict(ticks.group_by("symbol").agg(pl.col("qty").sum()).iter_rows())
        if ticks.height
        else dict(bars.group_by("symbol").agg(pl.col("volume").sum()).iter_rows())
    )
    now = now.astimezone(SEOUL)
    windows = choose_sample(day, session, recovered, activity, budget, now.date())
    if day == now.date():
        # during the session the newest minute is still forming on both sides: compare closed minutes only
        closed = now.replace(second=0, microsecond=0)
        windows = [replace(w, end=min(w.end, closed)) for w in windows if w.start < closed]
    result = fetch_sample(source, day, windows)
    answered = result.windows_frame()
    failed = [f"{w.symbol} {w.start:%H:%M}-{w.end:%H:%M}: {why}" for w, why in result.failed]
    recovered_windows = sum(answered["reason"] == "recovered")
    note = f"{len(result.windows)} windows ({recovered_windows} recovered), {result.calls} calls"
    return BrokerSample(True, note, result.calls, answered, result.bars, failed)
