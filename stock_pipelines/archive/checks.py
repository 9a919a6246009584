"""The measurements behind raw_ticks' asset checks, as plain functions over a partition."""

from __future__ import annotations

from datetime import timedelta

import pandera.errors
import polars as pl

from stock_pipelines.archive.schema import RawTicksSchema
from stock_pipelines.archive.ticks import DEFAULT_TOLERANCE, in_session_expr
from stock_pipelines.market import Session


def schema_errors(ticks: pl.DataFrame) -> tuple[int, str]:
    """(number of failure cases, message); (0, "") when RawTicksSchema holds."""
    try:
        RawTicksSchema.validate(ticks, lazy=True)
    except pandera.errors.SchemaErrors as error:
        cases = error.failure_cases
        return (cases.height if isinstance(cases, pl.DataFrame) else 1), str(error)[:2000]
    except pandera.errors.SchemaError as error:
        return 1, str(error)[:2000]
    return 0, ""


def duplicate_trades(ticks: pl.LazyFrame | pl.DataFrame) -> int:
    counts = ticks.lazy().select(rows=pl.len(), distinct=pl.struct("symbol", "cum").n_unique()).collect()
    rows, distinct = counts.row(0)
    return rows - distinct if rows else 0


def outside_session(
    ticks: pl.LazyFrame | pl.DataFrame, session: Session, tolerance: timedelta = DEFAULT_TOLERANCE
) -> int:
    return (
        ticks.lazy()
        .select(ts=pl.col("ts").dt.epoch("us"))
        .filter(~in_session_expr(session, tolerance))
        .select(pl.len())
        .collect()
        .item()
    )
