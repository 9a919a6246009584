"""The soak launches each schedule tick's run request as the webserver's dry run renders it: the run
config comes as YAML (`dump_run_config_yaml`), and `launchRun` takes JSON."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
from dagster_shared.yaml_utils import dump_run_config_yaml

from stock_pipelines.defs.schedules import archive_retention_schedule
from stock_pipelines.market import SEOUL
from stock_pipelines.soak.dagster_stack import run_config_data


def test_the_retention_ticks_config_reaches_launch_run_as_the_schedule_wrote_it():
    request = archive_retention_schedule(
        dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 24, 19, 0, tzinfo=SEOUL))
    )
    assert isinstance(request, dg.RunRequest)
    rendered = dump_run_config_yaml(request.run_config)   # what scheduleDryRun answers
    assert run_config_data(rendered) == request.run_config == {
        "ops": {"archive_retention": {"config": {"as_of": "2026-11-24"}}}
    }
    # numbers stay numbers; an empty config is an empty object
    assert run_config_data("ops:\n  a:\n    config:\n      keep_trading_days: 3\n") == {
        "ops": {"a": {"config": {"keep_trading_days": 3}}}
    }
    assert run_config_data("") == {}
