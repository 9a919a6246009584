"""Run the simulated exchange for tests, the demo and scripts: in-process or as a subprocess.

    with run_exchange(symbols=40, speed=60) as url:        # background thread, free port
        httpx.get(f"{url}/admin/info")
        url.exchange.day.minute_bars("005930")              # the ground truth, in-process only

    with run_exchange_process(["--speed", "60"]) as url:   # `stock-pipelines sim exchange`
        ...

Both yield an `ExchangeURL`: the base URL (a str, e.g. "http://127.0.0.1:41234") with
`.ws_url` (the KIS WebSocket endpoint), `.kiwoom_ws_url` (the Kiwoom one) and, in-process, `.exchange`.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from stock_pipelines.sim.exchange_config import ExchangeConfig, config_with
from stock_pipelines.sim.kis_protocol import WS_PATH
from stock_pipelines.sim.kiwoom_protocol import WS_PATH as KIWOOM_WS_PATH
from stock_pipelines.sim.server import Exchange


class ExchangeURL(str):
    exchange: Exchange | None = None
    pid: int | None = None

    @property
    def ws_url(self) -> str:
        return "ws" + self.removeprefix("http") + WS_PATH

    @property
    def kiwoom_ws_url(self) -> str:
        return "ws" + self.removeprefix("http") + KIWOOM_WS_PATH


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(exchange: Exchange, log_level: str = "warning"):
    import uvicorn

    config = uvicorn.Config(
        exchange.app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        # h11 writes header names as the app spells them (httptools lowercases them): the KIS
        # gateway's `Content-Type` casing is part of the protocol for the official sample (kis_rest).
        http="h11",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=1,
    )
    return uvicorn.Server(config)


@contextmanager
def run_exchange(config: ExchangeConfig | None = None, startup_timeout: float = 20.0, **overrides) -> Iterator[ExchangeURL]:
    """Serve an Exchange on 127.0.0.1 and a free port from a background thread."""
    exchange = Exchange(config_with(config, **overrides))
    sock = bind_socket()
    server = make_server(exchange)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="sim-exchange", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the simulated exchange did not start")
        time.sleep(0.01)
    url = ExchangeURL(f"http://127.0.0.1:{sock.getsockname()[1]}")
    url.exchange = exchange
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def run_exchange_process(args: list[str] | None = None, startup_timeout: float = 30.0) -> Iterator[ExchangeURL]:
    """`stock-pipelines sim exchange --port 0 ARGS` as a child process; stopped with SIGTERM."""
    command = [sys.executable, "-m", "stock_pipelines.cli", "sim", "exchange", "--port", "0", *(args or [])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # the environment is inherited
    try:
        line = _read_line(process, startup_timeout)
        url = ExchangeURL(json.loads(line)["url"])
        url.pid = process.pid
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout:
            process.stdout.close()


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not result or not result[0].strip():
        process.kill()
        raise RuntimeError(f"sim exchange did not report its address within {timeout} s (exit {process.poll()})")
    return result[0]
