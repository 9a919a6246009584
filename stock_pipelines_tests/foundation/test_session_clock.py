"""`--clock` / STOCK_PIPELINES_TEST_CLOCK: a whole pytest session, and the processes it starts, on
a project clock started at a chosen instant; a test that sets its own clock still wins."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stock_pipelines.ops.clock import ENV_FAKE_NOW
from stock_pipelines_tests.session_clock import ENV_TEST_CLOCK
from stock_pipelines_tests.dagster_dev import REPO_ROOT

PROBE = '''
import os
import subprocess
import sys
from datetime import datetime, timedelta

from stock_pipelines.market import SEOUL
from stock_pipelines.ops import clock

import pytest

START = datetime.fromisoformat(os.environ["PROBE_START"])
CHILD = "from stock_pipelines.ops import clock; print(clock.now().isoformat())"


def test_this_process_and_its_children_start_at_the_session_clock():
    assert START <= clock.now() < START + timedelta(hours=1)
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    assert START <= datetime.fromisoformat(child.stdout.strip()) < START + timedelta(hours=1)


def test_a_test_that_sets_its_own_clock_wins(monkeypatch):
    monkeypatch.setenv("STOCK_PIPELINES_FAKE_NOW", "2026-11-20T10:00:00+09:00")
    assert clock.now() == datetime(2026, 11, 20, 10, tzinfo=SEOUL)


@pytest.mark.clock
def test_a_marked_reader():
    assert clock.now().year >= 2026
'''
UNMARKED = "1 tests read the session's clock without setting it, not marked clock"


def run_probe(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    base = {k: v for k, v in os.environ.items() if k not in (ENV_FAKE_NOW, ENV_TEST_CLOCK)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "stock_pipelines_tests.conftest", "-p", "no:cacheprovider",
         "-o", "addopts=", "--rootdir", str(tmp_path), *args, str(tmp_path / "test_probe.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**base, "PYTHONPATH": str(REPO_ROOT), **env},
    )


@pytest.mark.parametrize(
    "args, env, start",
    [
        (["--clock=2027-01-02T10:00:00+09:00"], {}, "2027-01-02T10:00:00+09:00"),
        (["--clock=2026-12-25T15:45"], {}, "2026-12-25T15:45:00+09:00"),  # no offset: Asia/Seoul
        ([], {ENV_TEST_CLOCK: "2026-12-05T23:30:00+09:00"}, "2026-12-05T23:30:00+09:00"),
        # `./run test` runs the suite on pytest-xdist workers: they share the controller's clock,
        # and the unmarked reader is still named though it ran in a worker
        (["-n", "2", "--clock=2027-01-02T10:00:00+09:00"], {}, "2027-01-02T10:00:00+09:00"),
    ],
)
def test_the_session_clock_reaches_every_test_and_subprocess(tmp_path, args, env, start):
    result = run_probe(tmp_path, *args, env={**env, "PROBE_START": start})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    assert f"project clock: {ENV_FAKE_NOW}={start}@" in result.stdout  # the report header says so
    # the one unmarked test that read the session's clock is named, and only it
    listed = [line for line in result.stdout.split(UNMARKED, 1)[1].splitlines() if "::" in line]
    assert listed == ["test_probe.py::test_this_process_and_its_children_start_at_the_session_clock"]


def test_without_a_session_clock_the_probe_sees_the_real_one(tmp_path):
    result = run_probe(tmp_path, env={"PROBE_START": "2027-01-02T10:00:00+09:00"})
    assert "project clock: the real clock" in result.stdout
    assert "1 failed, 2 passed" in result.stdout  # the real clock is not at 2027-01-02 10:00
    assert UNMARKED in result.stdout  # reading the real clock is noted the same way


def test_a_bad_clock_is_a_usage_error(tmp_path):
    result = run_probe(tmp_path, "--clock=tomorrow", env={"PROBE_START": "2027-01-02T10:00:00+09:00"})
    assert result.returncode == 4
    assert "--clock='tomorrow': want ISO 8601" in result.stderr
