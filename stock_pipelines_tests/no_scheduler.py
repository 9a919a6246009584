"""An instance scheduler that runs nothing, for `dagster dev` in tests that live on a fake clock.

Dagster starts its scheduler daemon only for a `DagsterDaemonScheduler`; with this one configured
(`scheduler:` in the test instance's dagster.yaml) no schedule can fire, so the pre-flight,
end-of-day and retention schedules, which tick on the wall clock, never launch a run for the real
date in the middle of a test on a simulated day. Sensors still run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster._core.scheduler.scheduler import Scheduler
from dagster._serdes import ConfigurableClass, ConfigurableClassData

INSTANCE_YAML = """
scheduler:
  module: stock_pipelines_tests.no_scheduler
  class: NoScheduler
"""


class NoScheduler(Scheduler, ConfigurableClass):
    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> NoScheduler:
        return cls(inst_data=inst_data)

    def debug_info(self) -> str:
        return "no scheduler: schedules never fire in this instance"

    def get_logs_path(self, instance, schedule_origin_id: str) -> str:
        return os.path.join(instance.schedules_directory(), "logs", schedule_origin_id, "scheduler.log")
