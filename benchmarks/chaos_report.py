"""The chaos suite's figures as the table in docs/reliability.md.

    .venv/bin/python benchmarks/chaos_report.py [--doc docs/reliability.md] [--no-write]

Runs `pytest stock_pipelines_tests/chaos -q` with STOCK_PIPELINES_CHAOS_RESULTS pointing at a
temporary file (each scenario appends one JSON line of figures), then rewrites the table between
the markers in the doc. Figures are wall-clock on whatever machine runs it. Last line: JSON
(the pytest exit code, scenarios recorded and the suite's wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START, END = "<!-- chaos-table:start -->", "<!-- chaos-table:end -->"
COLUMNS = [
    ("scenario", "scenario"), ("outcome", "outcome"), ("bars_lost", "bars lost"), ("calls", "calls"),
    ("lower_bound_calls", "call lower bound"), ("rate_limited", "rate-limit errors"), ("retries", "retries"),
    ("time_to_detect_s", "time to detect (s)"), ("time_to_recover_s", "time to recover (s)"),
]


def run_suite(results: Path) -> tuple[int, float]:
    env = {**os.environ, "STOCK_PIPELINES_CHAOS_RESULTS": str(results)}
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "stock_pipelines_tests/chaos", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=REPO, env=env, check=False)
    return done.returncode, time.monotonic() - started


def cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "0"
    return str(value).replace("|", "/")


def table(rows: list[dict], exit_code: int, seconds: float) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row.get(key)) for key, _ in COLUMNS) + " |" for row in rows]
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    lines += [
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine} (a shared machine: timings "
        f"vary run to run), by `.venv/bin/python benchmarks/chaos_report.py`; pytest exit code {exit_code}, "
        f"suite wall time {seconds:.0f} s. Scenario-specific figures (faults injected, quarantine by reason, "
        "detection in exchange seconds, ...) are in the JSON lines each test prints (`CHAOS {...}`).",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "reliability.md")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave the doc alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = Path(scratch) / "chaos.jsonl"
        exit_code, seconds = run_suite(results)
        rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    text = table(rows, exit_code, seconds)
    print(text)
    if not args.no_write:
        doc = args.doc.read_text(encoding="utf-8")
        if START not in doc or END not in doc:
            raise SystemExit(f"{args.doc}: the markers {START} / {END} are missing")
        head, rest = doc.split(START, 1)
        _, tail = rest.split(END, 1)
        temporary = args.doc.with_suffix(".md.tmp")
        temporary.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")
        temporary.replace(args.doc)
    print(json.dumps({"exit_code": exit_code, "scenarios": len(rows), "suite_s": round(seconds, 1),
                      "bars_lost_total": sum(int(r.get("bars_lost") or 0) for r in rows
                                             if "partial" not in str(r.get("outcome")))}))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
