"""The demo's last stage: the figures against the exchange's own bars and the planted outages'
lower bound, printed as sentences and as one JSON line, and the demo's exit status."""

from __future__ import annotations

import json
import time
from datetime import date

from stock_pipelines.commands.demo_stage import DemoDay
from stock_pipelines.commands.demo_watch import Watched

CALLS_OVER_BOUND_MAX = 1.1  # the recovery may spend at most 10% more calls than the lower bound


def outage_lower_bound(outages, codes, day: date) -> tuple[int, int]:
    """(calls, symbol-minutes): the fewest broker calls that can return every symbol-minute the
    planted outages removed, and how many those are. From the outages alone, never from the plan:
    every symbol loses the minutes an outage touches; the recovery runs on that day, so the
    endpoint's page is today's."""
    from stock_pipelines.recovery.plan import ceil_minute, floor_minute, lower_bound_calls, missing_slots

    minutes = [(floor_minute(outage.start), ceil_minute(outage.end)) for outage in outages]
    missing = {code: minutes for code in codes}
    return lower_bound_calls(missing, day, today=day), missing_slots(missing, day)


def trade_figures(day: date, sim) -> dict[str, int]:
    """The day's trades: the exchange's, the archive's (raw_ticks) and, after the trade tier, the
    merged day's (`lake.day_trades`) that equal an exchange trade in every field."""
    import polars as pl

    from stock_pipelines import lake

    truth = sim.trades_frame().select(
        symbol="sym", ts=pl.col("ts").cast(pl.Datetime("us", "UTC")), price="px", qty="qty", cum="cum")
    before = lake.read_partition("raw_ticks", day).height if lake.partition_exists("raw_ticks", day) else 0
    merged = lake.day_trades(None, day).select(truth.columns)
    return {"trades_expected": truth.height, "trades_before": before,
            "trades_after": merged.join(truth, on=truth.columns, how="semi").height}


def summarize(demo: DemoDay, watched: Watched, instance, sim, started: float) -> int:
    """Print the summary; 0 when every bar is back, the day certified and the calls within bound."""
    day, runs = demo.day, watched.runs
    truth = sum(len(sim.minute_bars(code)) for code in sim.codes)
    if not watched.recovered_ok:
        states = ", ".join(f"{r.dagster_run.run_id[:8]} {r.dagster_run.status.value}" for r in runs) or "none"
        print(f"the sensor-launched recovery did not succeed (runs: {states}); see `stock-pipelines ui`")
        return 1
    before, after = watched.before, watched.after
    by_source, end_of_day = watched.by_source, watched.end_of_day
    first_launch = runs[0].create_timestamp.timestamp() - watched.daemon_started
    run_ids = {r.dagster_run.run_id for r in runs}
    recovered = _metadata(instance, "recovered_minute_bars", day, run_ids)
    gaps = _metadata(instance, "gap_report", day, run_ids)[-1].get("gaps", 0)
    raw = _metadata(instance, "raw_ticks", day, run_ids)[-1]
    last = recovered[-1]
    bound, missing_minutes = outage_lower_bound(demo.outages, sim.codes, day)
    stats = watched.stats
    exchange_calls = sum(stats["calls"].get(name, 0) for name in ("kis_itemchart", "kis_dailychart"))
    trades = trade_figures(day, sim)
    trade_runs = _metadata(instance, "recovered_trades", day, run_ids)
    summary = {
        "day": day.isoformat(),
        "quarantined_lines": raw.get("quarantined", 0),
        "gaps_found": gaps,
        "bars_expected": truth,
        "completeness_before": round(before / truth, 6),
        "completeness_after": round(after / truth, 6),
        "bars_by_source": by_source,
        **trades,
        "calls_by_tier": {"bars": exchange_calls, "trades": stats["calls"].get("kis_trades", 0)},
        "trade_lower_bound_calls": sum(m.get("lower_bound_calls", 0) for m in trade_runs),
        "symbols_left_at_bar_level": trade_runs[-1].get("symbols_left_at_bar_level", []),
        "broker_calls": sum(m.get("calls", 0) for m in recovered),
        "exchange_minute_bar_calls": exchange_calls,
        "retries": last.get("retries", {}),
        "missing_symbol_minutes": missing_minutes,
        "lower_bound_calls": bound,
        "calls_vs_lower_bound": round(exchange_calls / bound, 3) if bound else None,
        "rate_limit_errors": stats["rate_limited"],
        "windows_unrecovered": last.get("windows_unrecovered", 0),
        "recovery_runs": len(runs),
        "daemon_start_to_first_launch_s": round(first_launch, 1),
        "end_of_day_checks": end_of_day["checks"],
        "certified": end_of_day["certified"],
        "seconds": round(time.monotonic() - started, 1),
    }
    print(
        f"the daemon's sensor launched {len(runs)} recovery run(s), the first {first_launch:.1f} s after the "
        "daemon started; all succeeded"
    )
    print(
        f"completeness: {before:,}/{truth:,} bars before recovery ({before / truth:.2%}), "
        f"{after:,}/{truth:,} after ({after / truth:.2%}); bars by source: "
        + ", ".join(f"{source} {count:,}" for source, count in by_source.items())
    )
    print(
        f"trades: {trades['trades_before']:,}/{trades['trades_expected']:,} archived before recovery, "
        f"{trades['trades_after']:,}/{trades['trades_expected']:,} after the trade tier "
        f"({stats['calls'].get('kis_trades', 0)} calls; the bars took {exchange_calls})"
    )
    within = exchange_calls <= CALLS_OVER_BOUND_MAX * bound
    print(
        f"broker calls: {exchange_calls} over {len(runs)} run(s), lower bound {bound} for the "
        f"{missing_minutes:,} symbol-minutes the outages removed ({summary['calls_vs_lower_bound']}x"
        f"{'' if within else f', over the {CALLS_OVER_BOUND_MAX}x allowed'}), "
        f"rate-limit errors: {summary['rate_limit_errors']}"
    )
    failed = [name for name, passed in end_of_day["checks"].items() if not passed]
    print(
        f"end_of_day_job: {len(end_of_day['checks']) - len(failed)}/{len(end_of_day['checks'])} checks passed"
        + (f" (failed: {', '.join(failed)})" if failed else "")
        + f"; quality report: {'CERTIFIED' if end_of_day['certified'] else 'NOT CERTIFIED'}"
        + (f", {end_of_day['html_path']}" if end_of_day["html_path"] else "")
    )
    print(json.dumps(summary))
    return 0 if after == truth and end_of_day["certified"] and within else 1


def _metadata(instance, asset: str, day: date, run_ids: set[str]) -> list[dict]:
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day.isoformat()]), limit=50
    ).records
    found = [
        {k: v.value for k, v in r.asset_materialization.metadata.items()}
        for r in sorted(records, key=lambda r: r.timestamp)
        if r.run_id in run_ids
    ]
    return found or [{}]
