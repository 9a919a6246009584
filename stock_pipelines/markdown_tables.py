"""Markdown tables, as the report and the assets' metadata show them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A header line, the separator line, then one line a row (cells as `str()` gives them)."""
    head = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    return head + "\n".join("| " + " | ".join(str(v) for v in row) + " |" for row in rows)


def more(total: int, shown: int) -> str:
    """The line under a table cut to `shown` rows of `total` (after an empty line); "" when none was cut."""
    return f"\n\n… and {total - shown} more" if total > shown else ""
