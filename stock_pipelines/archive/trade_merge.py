"""The archive's trades with trades recovered from a broker, as one day: `(symbol, cum)`
identifies a trade at every broker, so the merge is exact."""

from __future__ import annotations

import polars as pl

from stock_pipelines.archive.ticks import TICKS_SCHEMA


def merge_by_cum(archived: pl.DataFrame, recovered: pl.DataFrame) -> pl.DataFrame:
    """The day's trades (raw_ticks columns): the archive's, plus each recovered trade whose
    (symbol, cum) the archive lacks. Never a duplicate; an archived trade always wins."""
    extra = recovered.select(list(TICKS_SCHEMA)).cast(TICKS_SCHEMA).join(
        archived.select("symbol", "cum"), on=["symbol", "cum"], how="anti")
    return pl.concat([archived.select(list(TICKS_SCHEMA)).cast(TICKS_SCHEMA), extra]).unique(
        subset=["symbol", "cum"], keep="first", maintain_order=True).sort("symbol", "cum")
