"""The one trading-day partitions definition every daily asset shares.

It lives in the Dagster layer (not in `market/`, which stays free of Dagster imports) and is
generated from the KRX calendar: weekends excluded by cron, every weekday without a session
(holidays, election days, Dec 31) excluded by date.
"""


from datetime import datetime, time, timedelta

import dagster as dg

from stock_pipelines.market import SEOUL, SUPPORTED_LAST_DAY, krx_calendar

PARTITIONS_START = "2020-01-02"  # the first KRX session of the supported range


def build_trading_day_partitions() -> dg.DailyPartitionsDefinition:
    calendar = krx_calendar()
    holidays = [datetime.combine(day, time(0, 0), SEOUL) for day in calendar.closed_weekdays()]
    return dg.DailyPartitionsDefinition(
        start_date=PARTITIONS_START,
        end_date=(SUPPORTED_LAST_DAY + timedelta(days=1)).isoformat(),
        timezone="Asia/Seoul",
        # end_offset=1: today's partition exists while today's session runs, so recovery of
        # today's outages has a partition to write to.
        end_offset=1,
        exclusions=["0 0 * * 6", "0 0 * * 0", *holidays],
    )


trading_day_partitions = build_trading_day_partitions()
