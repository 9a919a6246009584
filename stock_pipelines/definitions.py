"""The one Dagster entry point (workspace.yaml and `dagster dev -m` load `defs` from here).

`defs` is every definition in the `defs/` folder, found by Dagster's defs-folder loader: the
assets, checks, jobs, schedules and sensors of its modules, and `defs/resources.py`'s
`bindings` (the resources and the in-process executor). The loader finds the folder through
`[tool.dg]` in pyproject.toml, which must sit above this package: a source checkout, an
editable install, or the image's working directory (docker/Dockerfile copies it there).
"""

from pathlib import Path

import dagster as dg

from stock_pipelines import settings

settings.configure_process()  # the Redis and calendar-cache settings of every process loading this
defs = dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)
