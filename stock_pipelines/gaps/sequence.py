"""Sequence gaps: within one symbol, ``previous cum + qty != cum`` (trades were missed).

Cumulative day volume (KIS ACML_VOL) is monotonic per symbol and day and the same at every
broker (docs/architecture.md, "Domain facts"), so rows are ordered by (symbol, cum), not by ts: two prints
in the same microsecond still come in the right order. The first trade of a symbol is checked
against a previous cum of 0 and the session open (shares traded before the first archived print
were missed). A repeated cum is the same trade seen twice, not a gap (raw_ticks dedupes; a
leftover duplicate must not raise an alarm).

The gap's window is (previous trade's ts, this trade's ts], clipped to the session's [open,
close]; one vectorised polars query, no Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import polars as pl

from stock_pipelines.gaps.model import Gap, GapKind
from stock_pipelines.market import KrxCalendar, krx_calendar

SEOUL_TZ = "Asia/Seoul"
GAP_COLUMNS = ["collector", "symbol", "start", "end", "prev_cum", "qty", "cum", "missing"]


def sequence_gap_frame(
    ticks: pl.DataFrame | pl.LazyFrame,
    day: date,
    *,
    collector: str = "archive",
    per_collector: bool = False,
    assume_sorted: bool = False,
    calendar: KrxCalendar | None = None,
) -> pl.DataFrame:
    """One row per sequence gap: collector, symbol, start, end (Asia/Seoul), prev_cum, qty, cum, missing.

    `ticks` needs symbol, ts (tz-aware Datetime), qty, cum; with `per_collector` also collector
    (each collector's own stream is checked; otherwise the archive as a whole, labelled
    `collector`). `assume_sorted` skips the sort when rows already come ordered by
    ([collector,] symbol, cum). `missing` is the number of shares unaccounted for; negative
    means the quantities overlap (inconsistent data rather than missed trades).
    """
    session = (calendar or krx_calendar()).session(day)
    if session is None:
        return pl.DataFrame(schema=_schema())
    keys = ["collector", "symbol"] if per_collector else ["symbol"]
    columns = [*keys, "ts", "qty", "cum"]
    data = ticks.select(columns).collect() if isinstance(ticks, pl.LazyFrame) else ticks.select(columns)
    if data.height == 0:
        return pl.DataFrame(schema=_schema())
    starts = None if assume_sorted else _run_starts_if_in_cum_order(data, keys)
    if starts is None:
        if not assume_sorted:
            data = _sorted(data, keys)
        starts = _run_starts(_group(data, keys))
    # Row i continues row i-1's stream unless a new (collector,) symbol run starts at i.
    same_values = np.ones(data.height, dtype=bool)
    same_values[starts] = False
    lf = data.lazy().with_columns(_same=pl.Series(same_values))
    same = pl.col("_same")
    open_ = pl.lit(session.open).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    close = pl.lit(session.close).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    ts = pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    frame = (
        lf.with_columns(
            prev_cum=pl.when(same).then(pl.col("cum").shift(1)).otherwise(0),
            prev_ts=pl.when(same).then(ts.shift(1)).otherwise(open_),
            ts=ts,
        )
        .filter((pl.col("prev_cum") + pl.col("qty") != pl.col("cum")) & (pl.col("cum") != pl.col("prev_cum")))
        .with_columns(
            start=pl.max_horizontal(pl.col("prev_ts"), open_),
            end=pl.min_horizontal(pl.col("ts"), close),
        )
        # (prev_ts, ts] must touch [open, close]; a zero-length window is a point, kept when inside
        .filter(
            (pl.col("start") <= pl.col("end"))
            & (pl.col("ts") >= open_)
            & ((pl.col("prev_ts") < close) | (pl.col("prev_ts") == pl.col("ts")))
        )
        .select(
            (pl.col("collector") if per_collector else pl.lit(collector)).alias("collector"),
            "symbol",
            pl.col("start").dt.convert_time_zone(SEOUL_TZ),
            pl.col("end").dt.convert_time_zone(SEOUL_TZ),
            pl.col("prev_cum").cast(pl.Int64),
            pl.col("qty").cast(pl.Int64),
            pl.col("cum").cast(pl.Int64),
            (pl.col("cum") - pl.col("qty") - pl.col("prev_cum")).cast(pl.Int64).alias("missing"),
        )
    )
    return frame.collect()


def sequence_gaps(
    ticks: pl.DataFrame | pl.LazyFrame,
    day: date,
    *,
    collector: str = "archive",
    per_collector: bool = False,
    assume_sorted: bool = False,
    calendar: KrxCalendar | None = None,
) -> list[Gap]:
    frame = sequence_gap_frame(
        ticks, day, collector=collector, per_collector=per_collector, assume_sorted=assume_sorted,
        calendar=calendar,
    )
    return [
        Gap(GapKind.SEQUENCE, row_collector, start, end, (symbol,), _reason(prev_cum, qty, cum, missing))
        for row_collector, symbol, start, end, prev_cum, qty, cum, missing in frame.iter_rows()
    ]


def _group(data: pl.DataFrame, keys: list[str]) -> pl.Series:
    if keys == ["symbol"]:
        return data.get_column("symbol")
    # NUL sorts before every other character, so this string sorts like the (collector, symbol) pair
    return data.select(pl.concat_str(keys, separator="\x00")).to_series()


def _run_starts(group: pl.Series) -> np.ndarray:
    lengths = group.rle().struct.field("len").to_numpy()
    return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)


def _run_starts_if_in_cum_order(data: pl.DataFrame, keys: list[str]) -> np.ndarray | None:
    """The run starts if rows are already ordered by ([collector,] symbol, cum), else None.

    raw_ticks is, so this is the usual path: one native sortedness pass over the strings, then
    integer work only."""
    group = _group(data, keys)
    if not group.is_sorted():
        return None
    starts = _run_starts(group)
    decreasing = np.flatnonzero(np.diff(data.get_column("cum").to_numpy()) < 0) + 1
    return starts if np.isin(decreasing, starts).all() else None


def _sorted(data: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Sort by ([collector,] symbol, cum). Only the grouping and the cum order matter, so the
    symbol is keyed by the integer value of its base-36 code: two integer keys sort several
    times faster than a string and an integer."""
    symbol_key = data.get_column("symbol").str.to_integer(base=36, dtype=pl.Int64, strict=False)
    if symbol_key.null_count():
        bad = data.filter(symbol_key.is_null()).get_column("symbol").unique().head(5).to_list()
        raise ValueError(f"symbol values that are not 6-character KRX codes ([0-9A-Z]{{6}}): {bad!r}")
    return data.with_columns(_symbol_key=symbol_key).sort(*keys[:-1], "_symbol_key", "cum")


def _reason(prev_cum: int, qty: int, cum: int, missing: int) -> str:
    if missing > 0:
        return f"cum jumped from {prev_cum} to {cum} with a trade of {qty}: {missing} shares missed"
    return f"cum {prev_cum} + qty {qty} != cum {cum}: quantities overlap by {-missing} shares (inconsistent)"


def _schema() -> dict[str, pl.DataType]:
    seoul = pl.Datetime("us", SEOUL_TZ)
    return {
        "collector": pl.String(), "symbol": pl.String(), "start": seoul, "end": seoul,
        "prev_cum": pl.Int64(), "qty": pl.Int64(), "cum": pl.Int64(), "missing": pl.Int64(),
    }


def tail_gaps(
    ticks: pl.DataFrame,
    day: date,
    reported: Mapping[str, int],
    *,
    collector: str = "archive",
    calendar: KrxCalendar | None = None,
) -> list[Gap]:
    """Trades after a symbol's last archived trade, which no later `cum` can reveal: where the
    broker's reported day volume (`reported`, symbol -> shares) exceeds the last `cum` archived,
    a sequence gap from that trade to the close (the whole session for a symbol never archived).
    Its window reaches the closing print (`recovery.plan.minute_window`). A symbol whose closing
    print is archived has no tail: the broker's excess is after-hours volume."""
    session = (calendar or krx_calendar()).session(day)
    if session is None or not reported:
        return []
    last = (
        {
            symbol: (int(cum), ts)
            for symbol, cum, ts in ticks.filter(pl.col("symbol").is_in(list(reported)))
            .group_by("symbol")
            .agg(pl.col("cum").max(), pl.col("ts").sort_by("cum").last())
            .iter_rows()
        }
        if ticks.height
        else {}
    )
    gaps = []
    for symbol in sorted(reported):
        cum, ts = last.get(symbol, (0, None))
        missing = int(reported[symbol]) - cum
        if missing <= 0:
            continue
        if ts is not None and ts >= session.closing_auction_start:
            continue  # its closing print is archived: no regular trade follows it (the rest is after-hours)
        start = max(session.open, ts.astimezone(session.open.tzinfo)) if ts is not None else session.open
        reason = (
            f"tail: broker day volume {reported[symbol]} > last cum {cum}: "
            f"{missing} shares after the last archived trade"
        )
        gaps.append(Gap(GapKind.SEQUENCE, collector, min(start, session.close), session.close, (symbol,), reason))
    return gaps
