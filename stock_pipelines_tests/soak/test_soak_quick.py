"""`stock-pipelines soak --quick` as a person runs it: the real command, its real processes (the
exchange across two days, the fleet of both brokers, the Dagster webserver and daemon, Redis, the
alert receiver) and the seeded fault schedule; the outcome read from its run directory."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import psutil
import pytest

from stock_pipelines.soak.fleet_file import COLLECTORS
from stock_pipelines.soak.manifest import RunDirectory
from stock_pipelines.soak.options import QUICK_START, trading_days
from stock_pipelines.soak.schedule import plan

# The quick soak's budget on a loaded 2-core machine; past it the soak is stopped (SIGTERM: it
# stops every process it started) and the test fails saying so, with the soak's last progress.
BUDGET_S = 480
pytestmark = [pytest.mark.integration, pytest.mark.soak, pytest.mark.timeout(BUDGET_S + 120)]
SEED = 7


def _run_quick_soak(run_dir) -> tuple[subprocess.CompletedProcess, float]:
    command = [sys.executable, "-m", "stock_pipelines.cli", "soak", "--quick", "--seed", str(SEED),
               "--run-dir", str(run_dir)]
    started = time.monotonic()
    soak = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = soak.communicate(timeout=BUDGET_S)
    except subprocess.TimeoutExpired:
        soak.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = soak.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            soak.kill()
            stdout, stderr = soak.communicate()
        pytest.fail(f"soak --quick still running after {BUDGET_S} s: stopped it (exit {soak.returncode}); "
                    f"its progress:\n{stderr[-4000:]}")
    return subprocess.CompletedProcess(command, soak.returncode, stdout, stderr), time.monotonic() - started


def test_a_quick_soak_survives_its_faults_and_leaves_the_run_directory_the_figures_read(tmp_path):
    run_dir = tmp_path / "run"
    done, wall = _run_quick_soak(run_dir)
    print(f"\nsoak --quick: exit {done.returncode} in {wall:.0f} s\n{done.stdout[-3000:]}")
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
    # progress reached a person on stderr: each day's exchange time, each fault
    assert "exchange released at 2026-11-19" in done.stderr and "fault f01-" in done.stderr

    run = RunDirectory(run_dir)
    manifest = run.manifest()
    days = trading_days(QUICK_START, 2)
    assert manifest.days == [d.isoformat() for d in days] == ["2026-11-19", "2026-11-20"]
    assert manifest.quick and manifest.seed == SEED and manifest.wall_s > 0
    # the night between the days ran at its own speed, and each phase's wall time is on record
    assert manifest.exchange.night_speed > manifest.exchange.speed
    assert set(manifest.phases) == {"startup", "days", "drain"} and all(s >= 0 for s in manifest.phases.values())

    # the fault log is the seed's schedule, every fault cleared (a SIGKILLed collector: restarted)
    expected = plan(SEED, days, [cid for cid, _ in COLLECTORS], quick=True)
    logged = sorted(run.faults(), key=lambda f: f.id)   # logged as they took effect
    assert [(f.id, f.kind, f.subject, f.day) for f in logged] == \
        sorted((f.id, f.kind, f.subject, f.day.isoformat()) for f in expected)
    assert all(f.cleared_wall is not None and f.cleared_wall >= f.injected_wall for f in logged), logged

    # one firing and one resolved alert per incident (at 600x the short faults may open none)
    events = Counter((a["body"].get("incident_id"), a["body"].get("event")) for a in run.alerts())
    incidents = {incident for incident, _ in events}
    assert all(events[(i, "firing")] == 1 and events[(i, "resolved")] == 1 for i in incidents), events

    # each day's end-of-day run was launched on the exchange's clock and succeeded
    runs = json.loads((run_dir / "runs.json").read_text())
    end_of_day = {_tag(r, "dagster/partition"): r["status"] for r in runs if r["jobName"] == "end_of_day_job"
                  and _tag(r, "stock_pipelines/soak")}
    assert end_of_day == {d.isoformat(): "SUCCESS" for d in days}, end_of_day

    peaks = json.loads((run_dir / "memory.json").read_text())
    assert {"exchange", "collector", "dagster_daemon", "webserver", "redis", "harness"} <= set(peaks)
    assert json.loads((run_dir / "calls.json").read_text())["calls"], "the exchange's stats are missing"

    # the figures' JSON line, last: every day certified, no bar lost, the calls between the bounds
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["days_certified"] == last["days"] == 2 and last["bars_lost"] == 0, last
    first_attempts = last["calls"] - last["calls_retried"]
    assert last["calls_lower_bound"] <= first_attempts <= 1.2 * last["calls_lower_bound"], last
    assert last["passed"] is True and last["reasons"] == [], last

    # nothing it started outlives it
    leftovers = [p.info for p in psutil.process_iter(["pid", "cmdline"])
                 if str(run_dir) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


def _tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)
