"""How `./run test` shares the suite between its two pytest-xdist workers (`--dist loadfile`).

Each test file is a unit of work (its module-scoped servers start once), handed to whichever
worker is free, in collection order. The files that start `dagster dev` or a Dagster daemon
(SERVER_FILES) form a single unit, collected first: one worker runs them one after another while
the other runs everything else, the quick soak (LAST_FILES, a unit of its own) last. Those files spend most of their time waiting on sensors, runs and
the simulated exchange's minutes, which leaves a core to the other worker; two of them at once on
two cores make each `dagster dev` start take minutes and time out.

conftest.py registers this module as a pytest plugin. Without xdist (a plain `pytest` run, or
`-p no:xdist`) only the order changes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
SERVER_UNIT = "dagster servers"
# Seconds (setups and calls) in the last serial CI run, longest first; they run in this order.
SERVER_FILES = (
    "sensors/test_self_healing_e2e.py",  # 450: a live day, a killed collector, a herd
    "production/test_backfill_graphql.py",  # 120: a five-day backfill over GraphQL
    "production/test_browser_quality.py",  # 100
    "production/test_browser.py",  # 85
    "demo/test_demo_command.py",  # 65: the demo's daemon and runs
    "sensors/test_orphaned_runs.py",  # 50-90: three runs, two killed workers, a reload
    "foundation/test_definitions.py",  # 25: one `dagster dev` start
)
# A unit of its own, handed out last: the quick soak (3-7 minutes, its own webserver, daemon,
# fleet and exchange at 600x) runs beside the end of the server unit or nothing, not beside the
# live-day end-to-end test that opens it.
LAST_FILES = ("soak/test_soak_quick.py",)


def relative_file(path: Path) -> str:
    return path.relative_to(HERE).as_posix() if path.is_relative_to(HERE) else path.as_posix()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SERVER_FILES)}
    rank.update({name: len(SERVER_FILES) + 1 + i for i, name in enumerate(LAST_FILES)})
    # stable: the order within a file, and among the other files, is kept
    items.sort(key=lambda item: rank.get(relative_file(item.path), len(SERVER_FILES)))


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    root = Path(str(config.rootpath))
    servers = {(HERE / name).relative_to(root).as_posix() for name in SERVER_FILES if (HERE / name).is_relative_to(root)}

    class ServerFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return SERVER_UNIT if file in servers else file

    return ServerFilesTogether(config, log)
