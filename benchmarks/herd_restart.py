"""Herd restart benchmark: real collectors SIGKILLed together, restarted after a fixed outage, under
`dagster dev`; how long after the restart every closed minute of the outage is back in minute_bars.

    .venv/bin/python benchmarks/herd_restart.py [--collectors 10] [--outage-s 150] [--baseline]

One timeline at 1x (the project clock cannot run faster): the exchange's clock and
STOCK_PIPELINES_FAKE_NOW start at the open of a simulated session day; 10 `stock-pipelines
collector run` processes (4 symbols each) stream `sim exchange`'s WebSocket and heartbeat to a
real Redis; all are SIGKILLed at once and restarted `--outage-s` seconds (project clock) later.
The scenario (`stock_pipelines_tests/sensors/herd.py`) fails unless every minute of the outage,
edge minutes included, equals the bars aggregated from the simulator's trade list within 5
minutes (project clock) of the restart, with no end-of-day run.

Printed: restart -> every closed minute back (project clock and wall seconds) against the
5-minute target (ratio), and the recovery runs before and after the restart. `--baseline` runs
the same scenario first with a single collector in the same invocation and prints the herd's
time as a ratio of it. Takes about 6-8 minutes a scenario on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stock_pipelines_tests.conftest import RedisServer  # noqa: E402
from stock_pipelines_tests.sensors.herd import RECOVERY_DEADLINE, herd_restart  # noqa: E402


def scenario(collectors: int, outage_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="herd-restart-") as scratch:
        tmp = Path(scratch)
        (tmp / "redis").mkdir()
        redis = RedisServer(tmp / "redis")
        redis.start()
        try:
            result = herd_restart(tmp, redis, collectors=collectors, per_collector=4,
                                  outage=timedelta(seconds=outage_s))
        finally:
            redis.stop()
    print(result.summary(), flush=True)
    return {
        "collectors": result.collectors,
        "outage_s": outage_s,
        "restart_to_recovered_s": round(result.restart_to_recovered_s, 1),
        "restart_to_recovered_wall_s": round(result.restart_to_recovered_wall_s, 1),
        "target_s": RECOVERY_DEADLINE.total_seconds(),
        "ratio_to_target": round(result.restart_to_recovered_s / RECOVERY_DEADLINE.total_seconds(), 2),
        "bars_checked": result.bars_checked,
        "runs_before_restart": result.runs_before_restart,
        "runs_after_restart": result.runs_after_restart,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collectors", type=int, default=10)
    parser.add_argument("--outage-s", type=float, default=150.0)
    parser.add_argument("--baseline", action="store_true", help="first the same outage with one collector")
    args = parser.parse_args()
    figures = {}
    if args.baseline:
        figures["baseline"] = scenario(1, args.outage_s)
    figures["herd"] = scenario(args.collectors, args.outage_s)
    if args.baseline:
        figures["herd_vs_baseline"] = round(
            figures["herd"]["restart_to_recovered_s"] / max(figures["baseline"]["restart_to_recovered_s"], 1.0), 2)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
