"""The day's quality report as Dagster metadata: its headline, notes and one table per section
of the report (`quality.render.sections`), each a `MetadataValue.table` with a schema."""

import re

import dagster as dg

from stock_pipelines.defs.tables import rows_table
from stock_pipelines.quality.build import BuiltReport
from stock_pipelines.quality.render import MAX_ROWS, headline, notes, sections

# metadata keys of the report's sections, by the sections' titles
SECTION_KEYS = {
    "Checks": "checks",
    "Trade level: symbols left at bar level": "trade_level",
    "Completeness by collector universe": "by_collector",
    "Gaps and what filled them (slots by source)": "gaps",
    "Symbols with remaining holes": "holes",
    "Day volume against the reported day volume": "day_volume",
    "Bars against the broker's REST bars": "broker_disagreements",
    "OHLC invariant violations": "ohlc_violations",
    "Bars outside trading time": "outside_trading_time",
}


def _kind(values: list[object]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def column_name(header: str) -> str:
    return re.sub(r"\W+", "_", header.strip().lower()).strip("_")


def section_table(header: list[str], rows: list[list[object]]) -> dg.TableMetadataValue:
    """The first MAX_ROWS rows; a column's type is int, float or bool when every value is one."""
    shown = rows[:MAX_ROWS]
    names = [column_name(h) for h in header]
    columns = [(name, _kind([row[i] for row in shown])) for i, name in enumerate(names)]
    return rows_table(columns, [dict(zip(names, row, strict=True)) for row in shown])


def report_metadata(built: BuiltReport) -> dict[str, object]:
    quality = built.quality
    metadata: dict[str, object] = {
        "verdict": headline(quality),
        "notes": dg.MetadataValue.json(notes(quality)),
    }
    for title, (header, rows) in sections(quality).items():
        key = SECTION_KEYS[title]
        metadata[key] = section_table(header, rows)
        if len(rows) > MAX_ROWS:
            metadata[f"{key}_truncated"] = f"first {MAX_ROWS} of {len(rows)} rows"
    return metadata
