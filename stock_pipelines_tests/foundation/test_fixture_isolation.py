"""The suite's guards keep one test module's process settings out of the next: a module-scoped
fixture that configures the process's Redis (as a materialization through `RedisResource`
does) must not leave its prefix to the modules after it in the same process."""

import os
import subprocess
import sys

from stock_pipelines_tests.dagster_dev import REPO_ROOT

CONFIGURING_MODULE = '''
import pytest
from stock_pipelines import redis_conn

@pytest.fixture(scope="module")
def materialized():
    redis_conn.configure(redis_conn.RedisSettings(prefix="leaked"))

def test_the_module_sees_its_own_settings(materialized):
    assert redis_conn.key_prefix() == "leaked"
'''

LATER_MODULE = '''
from stock_pipelines import redis_conn

def test_a_later_module_sees_the_settings_the_process_started_with():
    assert redis_conn.key_prefix() == "sp"
'''


def test_a_module_scoped_fixture_does_not_configure_the_next_modules_redis(tmp_path):
    (tmp_path / "test_a_configuring.py").write_text(CONFIGURING_MODULE)
    (tmp_path / "test_b_later.py").write_text(LATER_MODULE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCK_PIPELINES_", "REDIS_URL"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    # the suite's conftest as a plugin, on two modules of its own, in that order, in one process
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-p", "stock_pipelines_tests.conftest", "--rootdir", str(tmp_path),
         "test_a_configuring.py", "test_b_later.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
