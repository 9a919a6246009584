"""pandera (polars backend) schemas of the archive's Parquet outputs."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from stock_pipelines.archive.record import SOURCES

SYMBOL_REGEX = r"^[0-9A-Z]{6}$"


class RawTicksSchema(pa.DataFrameModel):
    source: str = pa.Field(isin=list(SOURCES))
    symbol: str = pa.Field(str_matches=SYMBOL_REGEX)
    ts: pl.Datetime(time_unit="us", time_zone="UTC")  # type: ignore[valid-type]
    rx: pl.Datetime(time_unit="us", time_zone="UTC")  # type: ignore[valid-type]
    price: pl.Int64 = pa.Field(gt=0)
    qty: pl.Int64 = pa.Field(gt=0)
    cum: pl.Int64 = pa.Field(gt=0)
    seq: pl.Int64
    collector: str
    file: str
    line: pl.Int64 = pa.Field(ge=1)

    class Config:
        strict = True
        ordered = True
        unique = ["symbol", "cum"]  # noqa: RUF012 (pandera reads a list)


class MinuteBarsSchema(pa.DataFrameModel):
    symbol: str = pa.Field(str_matches=SYMBOL_REGEX)
    minute: pl.Datetime(time_unit="us", time_zone="UTC")  # type: ignore[valid-type]
    open: pl.Int64 = pa.Field(gt=0)
    high: pl.Int64 = pa.Field(gt=0)
    low: pl.Int64 = pa.Field(gt=0)
    close: pl.Int64 = pa.Field(gt=0)
    volume: pl.Int64 = pa.Field(gt=0)
    trades: pl.UInt32 = pa.Field(gt=0)
    source: str = pa.Field(isin=["ticks"])

    class Config:
        strict = True
        ordered = True
        unique = ["symbol", "minute"]  # noqa: RUF012 (pandera reads a list)

    @pa.dataframe_check
    @classmethod
    def high_low_bound_open_close(cls, data) -> pl.LazyFrame:
        c = pl.col
        return data.lazyframe.select(
            (c("low") <= pl.min_horizontal("open", "close"))
            & (c("high") >= pl.max_horizontal("open", "close"))
        )
