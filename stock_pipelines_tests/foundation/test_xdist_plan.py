"""`./run test`'s two xdist workers: the files that start Dagster's servers are one unit of work,
collected first; every other file is a unit of its own, the quick soak's collected last (`xdist_plan.py`)."""

import re
import subprocess
import sys

from xdist.remote import Producer

from stock_pipelines_tests import xdist_plan
from stock_pipelines_tests.dagster_dev import REPO_ROOT
from stock_pipelines_tests.xdist_plan import HERE, SERVER_FILES, SERVER_UNIT

# `dagster dev` (dagster_dev.py, the live day of sensors/), or the demo command's daemon
STARTS_SERVERS = re.compile(r"\b(dagster_dev|live_day|herd_restart)\(|cli\), \"demo\"")


def test_every_file_that_starts_dagster_is_in_the_server_unit():
    starting = {path.relative_to(HERE).as_posix() for path in HERE.rglob("test_*.py")
                if STARTS_SERVERS.search(path.read_text())}
    starting.discard("foundation/test_xdist_plan.py")  # this file names them
    assert starting, "no test file starts dagster dev: the pattern is stale"
    assert starting - set(SERVER_FILES) == set()


def test_the_server_files_are_one_unit_and_the_others_one_each(request, monkeypatch):
    monkeypatch.setattr(request.config.option, "dist", "loadfile", raising=False)  # absent with -p no:xdist
    monkeypatch.setattr(request.config.option, "tx", ["2*popen"], raising=False)
    scheduler = xdist_plan.pytest_xdist_make_scheduler(request.config, Producer("test", enabled=False))
    scope = scheduler._split_scope
    assert scope("stock_pipelines_tests/sensors/test_self_healing_e2e.py::test_a") == SERVER_UNIT
    assert scope("stock_pipelines_tests/demo/test_demo_command.py::test_b[x]") == SERVER_UNIT
    assert scope("stock_pipelines_tests/heartbeat/test_store.py::test_c") == "stock_pipelines_tests/heartbeat/test_store.py"
    soak = "stock_pipelines_tests/soak/test_soak_quick.py"
    assert scope(f"{soak}::test_d") == soak
    monkeypatch.setattr(request.config.option, "dist", "load")
    assert xdist_plan.pytest_xdist_make_scheduler(request.config, Producer("test", enabled=False)) is None


def test_the_server_files_are_collected_first_and_the_quick_soak_last():
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "soak or not soak",
         "stock_pipelines_tests/soak/test_soak_quick.py", "stock_pipelines_tests/heartbeat/test_store.py",
         "stock_pipelines_tests/demo/test_demo_command.py"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    files = [line.split("::")[0] for line in listed.splitlines() if "::" in line]
    assert files[0] == "stock_pipelines_tests/demo/test_demo_command.py"
    assert files[-1] == "stock_pipelines_tests/soak/test_soak_quick.py"   # when selected (-m soak)
    assert "stock_pipelines_tests/heartbeat/test_store.py" in files
