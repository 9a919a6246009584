"""raw_ticks: one trading day of validated trades (the archive issue fills in the body)."""


from datetime import date

import dagster as dg

from stock_pipelines.defs.partitions import trading_day_partitions
from stock_pipelines.market import krx_calendar


@dg.asset(
    partitions_def=trading_day_partitions,
    group_name="ticks",
    description="One KRX trading day of trades from every collector's JSONL archive.",
)
def raw_ticks(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    session = krx_calendar().session(day)
    if session is None:  # the partitions definition excludes closed days; a stale key is an error
        raise dg.Failure(f"{day} is not a KRX trading day; no raw_ticks partition exists for it")
    return dg.MaterializeResult(
        metadata={
            "session_open": session.open.isoformat(),
            "session_close": session.close.isoformat(),
            "special_session": session.special_reason or "",
            "rows": 0,
        }
    )
