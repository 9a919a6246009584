"""The day's quality report: its headline, notes and tables (shown as tables in the Dagster UI),
and a self-contained HTML page with inline SVG charts (no script, no network): a gap timeline and
completeness over recent days."""

from __future__ import annotations

import html
from datetime import datetime

import polars as pl

from stock_pipelines.market import SEOUL
from stock_pipelines.quality import trade_level
from stock_pipelines.quality.day import DayQuality

MAX_ROWS = 50
# the minute_bars asset check that reports each verdict of `DayQuality.verdicts()`
CHECK_VERDICTS = {
    "minute_bars_completeness": ("completeness",),
    "minute_bars_session_bounds": ("trading_time", "closing_print"),
    "minute_bars_ohlc_invariants": ("ohlc_invariants",),
    "minute_bars_day_volume": ("day_volume",),
    "minute_bars_match_broker": ("broker_match",),
}
FILL_COLOURS = {
    "ticks": "#9e9e9e",
    "ticks_other_archive": "#26a69a",
    "rest_kis": "#1e88e5",
    "rest_kiwoom": "#5e35b1",
    "no_trades": "#e0e0e0",
    "missing": "#e53935",
}


def percent(share: float) -> str:
    return f"{share * 100:.3f}%"


def _hm(instant: datetime) -> str:
    return instant.astimezone(SEOUL).strftime("%H:%M")


def _fills(row: dict) -> str:
    parts = [f"{k} {row[k]}" for k in FILL_COLOURS if row.get(k)]
    return ", ".join(parts) or "-"


def check_rows(quality: DayQuality) -> list[list[object]]:
    """One row per minute_bars check: check, result (pass, WARN, FAIL, not sampled), severity."""
    verdicts = quality.verdicts()
    config = quality.config
    rows = []
    for check, names in CHECK_VERDICTS.items():
        passed = all(verdicts[name] for name in names)
        rows.append([check, "pass" if passed else "FAIL", "ERROR (blocking)"])
    completeness, broker = rows[0], rows[-1]
    completeness[2] = (
        f"ERROR (blocking) below {percent(config.error_share)}, WARN below {percent(config.warn_share)}"
    )
    if completeness[1] == "pass" and quality.warn:
        completeness[1] = "WARN"
    if not quality.broker.sampled:
        broker[1] = "not sampled"
    return rows


def sections(quality: DayQuality) -> dict[str, tuple[list[str], list[list[object]]]]:
    """Every table of the report: title -> (header, rows); shared by the metadata tables and the HTML."""
    cov = quality.coverage
    checks = check_rows(quality)
    collectors = [
        [r["collector"], r["symbols"], r["expected"], r["present"], r["missing"], percent(r["share"])]
        for r in cov.by_collector.iter_rows(named=True)
    ]
    gaps = [
        [r["kind"], r["collector"], f"{_hm(r['start'])}-{_hm(r['end'])}", r["symbols"], r["slots"], _fills(r)]
        for r in quality.gap_fills().iter_rows(named=True)
    ]
    holes = (
        cov.holes.group_by("symbol", maintain_order=True)
        .agg(
            pl.len().alias("holes"),
            pl.col("minutes").sum(),
            pl.col("start"),
            pl.col("end"),
            pl.col("evidence").first(),
        )
        .sort("minutes", "symbol", descending=[True, False])
    )
    hole_rows = [
        [
            r["symbol"],
            r["holes"],
            r["minutes"],
            ", ".join(f"{_hm(s)}-{_hm(e)}" for s, e in list(zip(r["start"], r["end"], strict=True))[:5]),
            r["evidence"],
        ]
        for r in holes.iter_rows(named=True)
    ]
    volume = [
        [
            r["symbol"],
            r["reported"],
            r["reported_by"],
            r["last_cum"],
            r["bar_volume"],
            r["bars_missing"],
            r["tick_volume"],
            r["ticks_missing"],
        ]
        for r in quality.volume.filter(
            (pl.col("bars_missing") != 0) | (pl.col("ticks_missing") != 0)
        ).iter_rows(named=True)
    ]
    ohlc = [
        [r["symbol"], _hm(r["minute"]), r["source"], r["rule"]]
        for r in quality.invariants.iter_rows(named=True)
    ]
    broker = quality.broker.disagreements
    broker_rows = (
        [
            [r["symbol"], _hm(r["minute"]), r["source"] or "-", r["field"], r["ours"], r["truth"]]
            for r in broker.iter_rows(named=True)
        ]
        if broker.height
        else []
    )
    outside = [
        [r["symbol"], r["minute"].astimezone(SEOUL).strftime("%H:%M:%S"), r["source"]]
        for r in cov.outside_trading_time.iter_rows(named=True)
    ]
    trade_rows = trade_level.rows(quality.trades) if quality.trades is not None else []
    return {
        "Checks": (["check", "result", "severity"], checks),
        "Trade level: symbols left at bar level": (trade_level.HEADER, trade_rows),
        "Completeness by collector universe": (
            ["collector", "symbols", "expected", "present", "missing", "share"],
            collectors,
        ),
        "Gaps and what filled them (slots by source)": (
            ["kind", "collector", "window", "symbols", "slots", "filled by"],
            gaps,
        ),
        "Symbols with remaining holes": (
            ["symbol", "holes", "minutes", "first windows", "evidence"],
            hole_rows,
        ),
        "Day volume against the reported day volume": (
            [
                "symbol",
                "reported",
                "reported by",
                "last cum",
                "bar volume",
                "bars missing",
                "tick volume",
                "ticks missing",
            ],
            volume,
        ),
        "Bars against the broker's REST bars": (
            ["symbol", "minute", "source", "field", "ours", "broker"],
            broker_rows,
        ),
        "OHLC invariant violations": (["symbol", "minute", "source", "rule"], ohlc),
        "Bars outside trading time": (["symbol", "minute", "source"], outside),
    }


def headline(quality: DayQuality) -> str:
    cov = quality.coverage
    status = "CERTIFIED" if quality.certified else "NOT CERTIFIED"
    failed = [name for name, ok in quality.verdicts().items() if not ok]
    return (
        f"{quality.day.isoformat()}: {status}; completeness {percent(cov.share)} "
        f"({cov.present_count}/{cov.expected_count} expected symbol-minutes, {cov.expected_count - cov.present_count} missing; "
        f"ERROR below {percent(quality.config.error_share)}, WARN below {percent(quality.config.warn_share)})"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )


def notes(quality: DayQuality) -> list[str]:
    cov = quality.coverage
    return [
        f"Recovery reported every gap window recovered: {'yes' if quality.recovery_complete else 'no'}"
        + (
            ""
            if quality.recovery_complete
            else " (unanswered gap minutes count as expected: the share is a lower bound)"
        ),
        f"Closing print: {cov.closing_expected - len(cov.closing_missing)}/{cov.closing_expected} symbols present"
        + (f"; missing: {', '.join(cov.closing_missing)}" if cov.closing_missing else ""),
        f"Broker sample: {quality.broker.note}"
        + (f"; failed windows: {'; '.join(quality.broker.failed[:5])}" if quality.broker.failed else ""),
        f"Broker day volumes: {quality.totals.note}"
        + (f"; failed: {'; '.join(quality.totals.failed[:5])}" if quality.totals.failed else ""),
        (
            f"Tick shortfalls (archive lacked shares of the reported day volume): "
            f"{quality.tick_shortfalls.height} symbols"
        ),
        "Bars by source: "
        + ", ".join(
            f"{k} {v}" for k, v in quality.inputs.bars.group_by("source").len().sort("source").iter_rows()
        ),
        *([trade_level.note(quality.trades)] if quality.trades is not None else []),
    ]


# -- HTML ------------------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def timeline_svg(quality: DayQuality, width: int = 960) -> str:
    """Lanes: one per (collector, gap kind), then one per symbol with holes (red); x = session time."""
    session = quality.inputs.session
    left, right, lane_h = 150, 10, 18
    span = (session.close - session.open).total_seconds() + 60

    def x(instant: datetime) -> float:
        offset = (instant - session.open).total_seconds()
        return left + max(0.0, min(1.0, offset / span)) * (width - left - right)

    fills = quality.gap_fills()
    lanes: list[tuple[str, list[str]]] = []
    lane_of: dict[str, int] = {}
    for row in fills.iter_rows(named=True):
        name = f"{row['collector']} {row['kind']}"
        if name not in lane_of:
            lane_of[name] = len(lanes)
            lanes.append((name, []))
        main = max((k for k in FILL_COLOURS if row.get(k)), key=lambda k: row[k], default="no_trades")
        if row.get("missing"):
            main = "missing"
        x0, x1 = x(row["start"]), x(row["end"])
        lanes[lane_of[name]][1].append(
            f'<rect class="gap" data-kind="{_esc(row["kind"])}" data-filled-by="{main}" x="{x0:.1f}" y="{{y}}" '
            f'width="{max(1.5, x1 - x0):.1f}" height="{lane_h - 4}" fill="{FILL_COLOURS[main]}">'
            f"<title>{_esc(name)} {_hm(row['start'])}-{_hm(row['end'])}: {_esc(_fills(row))}</title></rect>"
        )
    holes = quality.coverage.holes
    for symbol in holes["symbol"].unique(maintain_order=True).to_list()[:30]:
        items = []
        for row in holes.filter(pl.col("symbol") == symbol).iter_rows(named=True):
            x0, x1 = x(row["start"]), x(row["end"])
            items.append(
                f'<rect class="hole" x="{x0:.1f}" y="{{y}}" width="{max(1.5, x1 - x0):.1f}" height="{lane_h - 4}" '
                f'fill="{FILL_COLOURS["missing"]}"><title>{_esc(symbol)} hole {_hm(row["start"])}-{_hm(row["end"])} '
                f"({row['minutes']} min)</title></rect>"
            )
        lanes.append((f"hole {symbol}", items))
    top = 24
    height = top + lane_h * max(1, len(lanes)) + 10
    parts = [
        (
            f'<svg class="chart" id="gap-timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="gap timeline">'
        )
    ]
    for hour in range(session.open.hour + (session.open.minute > 0), session.close.hour + 1):
        gx = x(session.open.replace(hour=hour, minute=0))
        parts.append(
            f'<line class="tick" x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" y2="{height - 6}" stroke="#ccc"/>'
            f'<text x="{gx:.1f}" y="{top - 8}" font-size="11" text-anchor="middle">{hour:02d}:00</text>'
        )
    if not lanes:
        parts.append(f'<text x="{left}" y="{top + 13}" font-size="12">no gaps</text>')
    for index, (name, items) in enumerate(lanes):
        y = top + index * lane_h
        parts.append(
            f'<text x="{left - 6}" y="{y + lane_h - 6}" font-size="11" text-anchor="end">{_esc(name)}</text>'
        )
        parts.extend(item.replace("{y}", str(y + 2)) for item in items)
    parts.append("</svg>")
    return "".join(parts)


def trend_svg(
    history: list[tuple[str, float | None]], error_share: float, warn_share: float, width: int = 960
) -> str:
    """Completeness of recent trading days (oldest first, this day last); None = no report that day."""
    left, bottom, top, height = 60, 40, 14, 220
    shares = [s for _, s in history if s is not None]
    lowest = min([error_share, *shares])
    floor = max(0.0, lowest - max(1 - lowest, 0.001) * 0.3)  # the worst day still shows a visible bar
    inner = height - top - bottom
    step = (width - left - 10) / max(1, len(history))

    def y(share: float) -> float:
        return top + (1 - (share - floor) / (1 - floor)) * inner if 1 > floor else top

    parts = [
        (
            f'<svg class="chart" id="completeness-trend" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="completeness over recent trading days">'
        )
    ]
    for share, label in ((1.0, "100%"), (floor, percent(floor))):
        parts.append(
            f'<text x="{left - 4}" y="{y(share) + 4:.1f}" font-size="10" text-anchor="end">{label}</text>'
        )
    for index, (day, share) in enumerate(history):
        bx = left + index * step + 2
        label = f'<text x="{bx + step / 2 - 2:.1f}" y="{height - bottom + 14}" font-size="9" text-anchor="middle">{_esc(day[5:])}</text>'
        if share is None:
            parts.append(
                f'<rect class="day missing-report" data-day="{_esc(day)}" x="{bx:.1f}" y="{top}" width="{step - 4:.1f}" '
                f'height="{inner}" fill="none" stroke="#bbb" stroke-dasharray="3 3"><title>{_esc(day)}: no report</title></rect>'
            )
        else:
            colour = "#e53935" if share < error_share else "#fb8c00" if share < warn_share else "#43a047"
            by = y(max(share, floor))
            parts.append(
                f'<rect class="day" data-day="{_esc(day)}" data-share="{share:.6f}" x="{bx:.1f}" y="{by:.1f}" '
                f'width="{step - 4:.1f}" height="{max(1.0, top + inner - by):.1f}" fill="{colour}">'
                f"<title>{_esc(day)}: {percent(share)}</title></rect>"
            )
        parts.append(label)
    for share, name, colour in ((error_share, "error", "#e53935"), (warn_share, "warn", "#fb8c00")):
        if share >= floor:
            parts.append(
                f'<line class="threshold" data-threshold="{name}" x1="{left}" x2="{width - 10}" y1="{y(share):.1f}" '
                f'y2="{y(share):.1f}" stroke="{colour}" stroke-dasharray="6 3"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def html_page(quality: DayQuality, history: list[tuple[str, float | None]]) -> str:
    status = "certified" if quality.certified else "not-certified"
    body = [
        f"<h1>Quality report {quality.day.isoformat()}</h1>",
        f'<p class="status {status}">{_esc(headline(quality))}</p>',
        "<ul>" + "".join(f"<li>{_esc(line)}</li>" for line in notes(quality)) + "</ul>",
        "<h2>Gap timeline</h2>",
        timeline_svg(quality),
        '<p class="legend">'
        + " ".join(
            f'<span style="background:{c}">&nbsp;&nbsp;&nbsp;</span> {k}' for k, c in FILL_COLOURS.items()
        )
        + "</p>",
        f"<h2>Completeness, last {len(history)} trading days</h2>",
        trend_svg(history, quality.config.error_share, quality.config.warn_share),
    ]
    for title, (header, rows) in sections(quality).items():
        body.append(f"<h2>{_esc(title)}</h2>")
        if not rows:
            body.append("<p>none</p>")
            continue
        body.append(
            "<table><tr>"
            + "".join(f"<th>{_esc(h)}</th>" for h in header)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>" for row in rows[:500])
            + "</table>"
            + (f"<p>… and {len(rows) - 500} more</p>" if len(rows) > 500 else "")
        )
    style = (
        "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}.certified{color:#2e7d32;font-weight:bold}"
        ".not-certified{color:#c62828;font-weight:bold}.legend span{display:inline-block;margin-left:10px}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Quality {quality.day.isoformat()}</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
