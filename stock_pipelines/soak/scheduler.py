"""An instance scheduler that runs nothing: for instances on a fake clock (the soak's; the tests'
`dagster dev`).

Dagster's daemon runs its scheduler only when the instance's scheduler is a
`DagsterDaemonScheduler`; with this one configured (`scheduler:` in dagster.yaml) no schedule
fires on the wall clock (which no project clock moves), from the daemon's first second, so the
soak's daemon can start beside the webserver before anything could stop the schedules. Sensors
still run. The soak ticks the schedules on the exchange's clock (`dagster_stack.ScheduleTicker`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster._core.scheduler.scheduler import Scheduler
from dagster._serdes import ConfigurableClass, ConfigurableClassData

INSTANCE_CONFIG = {"module": "stock_pipelines.soak.scheduler", "class": "NoDaemonScheduler"}


class NoDaemonScheduler(Scheduler, ConfigurableClass):
    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data)

    def debug_info(self) -> str:
        return "no daemon scheduler: schedules never fire on the wall clock in this instance"

    def get_logs_path(self, instance, schedule_origin_id: str) -> str:
        return os.path.join(instance.schedules_directory(), "logs", schedule_origin_id, "scheduler.log")
