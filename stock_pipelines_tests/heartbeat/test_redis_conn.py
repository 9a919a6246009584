"""The embedded default: REDIS_URL unset starts one server that a second process finds."""

import subprocess
import sys

import pytest

from stock_pipelines import redis_conn


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path))
    yield tmp_path
    redis_conn.stop_embedded_redis(tmp_path)


def test_embedded_server_is_shared_with_a_second_process_and_keeps_data_across_restarts(embedded):
    client = redis_conn.redis_client()
    client.set(redis_conn.key("probe"), "from-parent")
    assert redis_conn.redis_client() is client  # one client a process
    child = subprocess.run(
        [sys.executable, "-c",
         "from stock_pipelines import redis_conn as r; c = r.redis_client(); "
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


def test_key_prefix_is_configurable_and_validated(monkeypatch):
    assert redis_conn.key("hb", "kis-1", "latest") == "sp:hb:kis-1:latest"
    monkeypatch.setenv("STOCK_PIPELINES_REDIS_PREFIX", "staging")
    assert redis_conn.key("x") == "staging:x"
    with pytest.raises(ValueError, match="invalid Redis key part"):
        redis_conn.key("a b")
    monkeypatch.setenv("STOCK_PIPELINES_REDIS_PREFIX", "bad:prefix")
    with pytest.raises(ValueError, match="not a valid key prefix"):
        redis_conn.key("x")


def test_redis_url_wins_over_the_embedded_server(redis_server, monkeypatch, tmp_path):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("STOCK_PIPELINES_DATA_DIR", str(tmp_path))
    redis_conn.redis_client().set("marker", "1")
    assert redis_server.client().get("marker") == "1"
    assert not (tmp_path / "redis").exists()
