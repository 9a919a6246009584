"""The chaos suite's figures as the table in docs/reliability.md.

    .venv/bin/python benchmarks/chaos_report.py [--doc docs/reliability.md] [--no-write] [-k EXPR]

Runs `pytest stock_pipelines_tests/chaos -q` with STOCK_PIPELINES_CHAOS_RESULTS pointing at a
temporary file (each scenario appends one JSON line of figures, naming its test) and a JUnit XML
report (each test's result), then rewrites the table between the markers in the doc. The
`result` column is pytest's verdict on the scenario's test: passed, FAILED, xfailed or skipped
with the reason; a test skipped or failed before it recorded figures still gets a row. Figures
are wall-clock on whatever machine runs it. Last line: JSON (the pytest exit code, scenarios
recorded, results by kind and the suite's wall time).
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
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START, END = "<!-- chaos-table:start -->", "<!-- chaos-table:end -->"
COLUMNS = [
    ("scenario", "scenario"), ("result", "result"), ("outcome", "outcome"), ("bars_lost", "bars lost"), ("calls", "calls"),
    ("lower_bound_calls", "call lower bound"), ("rate_limited", "rate-limit errors"), ("retries", "retries"),
    ("time_to_detect_s", "time to detect (s)"), ("time_to_recover_s", "time to recover (s)"),
]


def run_suite(results: Path, junit: Path, select: str | None) -> tuple[int, float]:
    env = {**os.environ, "STOCK_PIPELINES_CHAOS_RESULTS": str(results)}
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "stock_pipelines_tests/chaos", "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}", *(["-k", select] if select else [])]
    done = subprocess.run(command, cwd=REPO, env=env, check=False)
    return done.returncode, time.monotonic() - started


def test_results(junit: Path) -> dict[str, str]:
    """Node id -> "passed", "FAILED: ...", "xfailed: reason" or "skipped: reason", from the JUnit XML."""
    results: dict[str, str] = {}
    if not junit.exists():
        return results
    for case in ET.parse(junit).getroot().iter("testcase"):
        node = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        skipped = case.find("skipped")
        failed = case.find("failure") if case.find("failure") is not None else case.find("error")
        if failed is not None:
            results[node] = f"FAILED: {(failed.get('message') or '').splitlines()[0][:160]}"
        elif skipped is not None:
            kind = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
            reason = (skipped.get("message") or "").removeprefix("xfail").strip(": ")
            results[node] = f"{kind}: {reason}"
        else:
            results[node] = "passed"
    return results


def with_results(rows: list[dict], results: dict[str, str]) -> list[dict]:
    """Each recorded row with its test's result, plus a row for every test that recorded nothing."""
    recorded = {row.get("test") for row in rows}
    out = [{**row, "result": results.get(row.get("test", ""), "not run")} for row in rows]
    for node, result in sorted(results.items()):
        if node not in recorded:
            out.append({"scenario": node.split("::", 1)[1], "test": node, "result": result,
                        "outcome": "no figures recorded"})
    return out


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
    parser.add_argument("-k", dest="select", help="only the scenarios pytest -k selects (implies --no-write)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results, junit = Path(scratch) / "chaos.jsonl", Path(scratch) / "junit.xml"
        exit_code, seconds = run_suite(results, junit, args.select)
        rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
        verdicts = test_results(junit)
    rows = with_results(rows, verdicts)
    text = table(rows, exit_code, seconds)
    print(text)
    if not args.no_write and not args.select:
        doc = args.doc.read_text(encoding="utf-8")
        if START not in doc or END not in doc:
            raise SystemExit(f"{args.doc}: the markers {START} / {END} are missing")
        head, rest = doc.split(START, 1)
        _, tail = rest.split(END, 1)
        temporary = args.doc.with_suffix(".md.tmp")
        temporary.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")
        temporary.replace(args.doc)
    kinds = Counter(result.split(":", 1)[0] for result in verdicts.values())
    print(json.dumps({"exit_code": exit_code, "scenarios": len(rows), "suite_s": round(seconds, 1),
                      "tests": dict(sorted(kinds.items())),
                      "bars_lost_total": sum(int(r.get("bars_lost") or 0) for r in rows
                                             if "partial" not in str(r.get("outcome")))}))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
