"""What earlier recovery runs of the day already fetched from the broker, so a later run (the
sensor launches one per outage, the end of day one more) asks only for what is new.

A fetched window is recorded with the instant it was fetched. Its minutes that had closed by
then are final at the broker (a closed minute's bar never changes), so their bars are reused as
they are: only the closed part `[start, min(end, floor(fetched_at)))` counts as done. A record
from another broker is not reused (its bars would carry the other source).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

import polars as pl

from stock_pipelines.brokers.model import BAR_SCHEMA
from stock_pipelines.market import SEOUL
from stock_pipelines.recovery.plan import FetchWindow, Window

FETCHED_ASSET = "recovery_fetched_windows"
FETCHED_SCHEMA = {
    "symbol": pl.String(),
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),  # the closed part only: bars in [start, end) are final
    "broker": pl.String(),
    "fetched_at": pl.Datetime("us", "UTC"),
}


def fetched_frame(windows: Iterable[FetchWindow], broker: str, fetched_at: datetime) -> pl.DataFrame:
    """The answered windows of this run, cut at the minute that was still open when fetched.
    `fetched_at` must be no later than the first fetch (the run's start): a minute closing during
    the run may have been left out by the client as still forming."""
    closed = fetched_at.astimezone(SEOUL).replace(second=0, microsecond=0)
    rows = [
        (w.symbol, w.start, min(w.end, closed), broker, fetched_at)
        for w in windows
        if w.start < min(w.end, closed)
    ]
    return pl.DataFrame(
        rows,
        schema={
            **FETCHED_SCHEMA,
            "start": pl.Datetime("us", SEOUL.key),
            "end": pl.Datetime("us", SEOUL.key),
            "fetched_at": pl.Datetime("us", SEOUL.key),
        },
        orient="row",
    ).with_columns(pl.col("start", "end", "fetched_at").dt.convert_time_zone("UTC"))


def done_windows(fetched: pl.DataFrame, broker: str) -> dict[str, list[Window]]:
    """Per symbol, the windows (Asia/Seoul) whose bars the broker already gave, for this broker."""
    result: dict[str, list[Window]] = defaultdict(list)
    for symbol, start, end in (
        fetched.filter(pl.col("broker") == broker).select("symbol", "start", "end").iter_rows()
    ):
        result[symbol].append((start.astimezone(SEOUL), end.astimezone(SEOUL)))
    return dict(result)


def reusable_bars(previous: pl.DataFrame, done: dict[str, list[Window]], broker: str) -> pl.DataFrame:
    """The broker's bars of an earlier run that lie inside the done windows."""
    rows = [(symbol, start, end) for symbol, windows in done.items() for start, end in windows]
    if not rows or previous.height == 0:
        return pl.DataFrame(schema=BAR_SCHEMA)
    windows = pl.DataFrame(
        rows,
        schema={
            "symbol": pl.String(),
            "start": pl.Datetime("us", SEOUL.key),
            "end": pl.Datetime("us", SEOUL.key),
        },
        orient="row",
    ).with_columns(pl.col("start", "end").dt.convert_time_zone("UTC"))
    return (
        previous.filter(pl.col("source") == f"rest_{broker}")
        .join(windows, on="symbol")
        .filter((pl.col("minute") >= pl.col("start")) & (pl.col("minute") < pl.col("end")))
        .select(list(BAR_SCHEMA))
        .unique(subset=["symbol", "minute"], keep="first", maintain_order=True)
        .cast(BAR_SCHEMA)
    )
