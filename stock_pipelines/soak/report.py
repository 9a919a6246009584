"""Run a soak and print its figures: `soak.figures` (the table, then one JSON line last) when
present; the harness's own outcome line before it either way."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from stock_pipelines.soak.harness import Soak, outcome_json
from stock_pipelines.soak.options import SoakOptions

FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def run_and_report(quick: bool, overrides: dict, run_dir: Path, env: dict[str, str], out: TextIO) -> int:
    options = SoakOptions.quick_run(**overrides) if quick else SoakOptions.full_run(**overrides)
    outcome = Soak(options, run_dir, env).run_soak()
    print("SOAK-HARNESS " + outcome_json(outcome), file=out, flush=True)
    busy = {status: n for status, n in outcome.runs_by_status.items() if status not in FINISHED}
    harness_ok = not outcome.fault_problems and not outcome.schedule_errors and not busy \
        and outcome.faults_injected == outcome.faults_planned == outcome.faults_cleared
    try:
        from stock_pipelines.soak.figures import measure
    except ImportError:  # the figures module is built beside the harness; until then, the harness's verdict
        print("soak.figures is not available: the harness outcome above is all there is", file=out, flush=True)
        return 0 if harness_ok else 1
    figures = measure(run_dir)
    print(figures.render_table(), file=out)
    print(figures.json_line(), file=out, flush=True)
    return 0 if harness_ok and figures.passed() else 1
