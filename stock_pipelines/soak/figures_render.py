"""The soak's figures as text: one row per day and a total, the faults, incidents, runs,
retention, memory and wall time, then the verdict with its reasons."""

from __future__ import annotations


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    cells = [header, *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]


RETENTION_SHOWN = 60  # characters of the retention log's reason in the day table; the JSON has it whole


def _short(text: str) -> str:
    return text if len(text) <= RETENTION_SHOWN else text[: RETENTION_SHOWN - 3] + "..."


def _yes(value: bool | None) -> str:
    return "no report" if value is None else "yes" if value else "NO"


def _ratio(calls: int, retries: int, bound: int) -> str:
    """First attempts + retries / the lower bound, and the first attempts' ratio to it."""
    attempts = calls - retries
    return f"{attempts}+{retries}/{bound}" + (f" ({attempts / bound:.2f}x)" if bound else "")


def render(figures) -> str:
    totals = figures.totals()
    day_rows = []
    for d in figures.days:
        t = d.truth
        day_rows.append([
            d.day, _yes(d.certified), f"{t.bars_expected}/{t.bars_lost}", t.bars_wrong + t.bars_extra,
            f"{t.trades_expected}/{t.trades_archived}", _ratio(d.calls, d.retries, t.calls_lower_bound),
            d.rate_limited, _short(d.retention) or "-",
        ])
    day_rows.append([
        "total", f"{totals['days_certified']}/{totals['days']}",
        f"{totals['bars_expected']}/{totals['bars_lost']}", totals["bars_wrong"],
        f"{totals['trades_expected']}/{totals['trades_archived']}",
        _ratio(totals["calls"], totals["calls_retried"], totals["calls_lower_bound"]), totals["recovery_rate_limited"],
        f"{len(totals['retention_deleted'])} deleted",
    ])
    header = ["day", "certified", "bars exp/lost", "wrong", "trades exp/archived", "calls+retries/bound", "429s",
              "retention"]
    lines = _table(header, day_rows)
    if figures.faults:
        fault_rows = [[f.id, f.kind, f.subject, f.day, f.detect_s, f.recover_s, f.detected_by]
                      for f in figures.faults]
        lines += ["", *_table(
            ["fault", "kind", "subject", "day", "detect s", "recover s", "detected by"], fault_rows
        )]
    lines += [
        "",
        f"incidents {totals['incidents']}, alerts {totals['alerts']}, resolutions {totals['resolutions']}, "
        f"notices {totals['notices']}",
        "runs " + (", ".join(f"{status.lower()} {n}" for status, n in totals["runs"].items()) or "none"),
        f"exchange data calls {totals['exchange_calls']}, rate-limited {totals['rate_limited']}",
        "retention deleted " + (", ".join(totals["retention_deleted"]) or "nothing")
        + "; kept " + (", ".join(totals["retention_kept"]) or "nothing"),
        "peak memory "
        + (", ".join(f"{k} {v} MB" for k, v in totals["peak_rss_mb"].items()) or "not recorded"),
        f"wall {totals['wall_s']} s",
        "PASSED" if figures.passed() else "FAILED",
        *(f"  - {reason}" for reason in figures.reasons()),
    ]
    return "\n".join(lines)
