"""An instance scheduler that runs nothing, for `dagster dev` in tests that live on a fake clock.

Dagster starts its scheduler daemon only for a `DagsterDaemonScheduler`; with this one configured
(`scheduler:` in the test instance's dagster.yaml) no schedule can fire, so the pre-flight,
end-of-day and retention schedules, which tick on the wall clock, never launch a run for the real
date in the middle of a test on a simulated day. Sensors still run. It is the soak's
(`stock_pipelines/soak/scheduler.py`).
"""

from __future__ import annotations

from stock_pipelines.soak.scheduler import NoDaemonScheduler as NoScheduler

INSTANCE_YAML = """
scheduler:
  module: stock_pipelines.soak.scheduler
  class: NoDaemonScheduler
"""

__all__ = ["INSTANCE_YAML", "NoScheduler"]
