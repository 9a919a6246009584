"""The soak's `disk_floor` fault against a real `stock-pipelines collector run` process: while it
is active the collector refuses trades (counted, nothing more archived) and its status hash says
`disk_low`, which the incident evaluation turns into one `disk_low` alert; cleared, the writer
accepts trades again by itself and the incident resolves once. The floor file is all the fault
writes: the real disk is never filled."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime

import pytest

from stock_pipelines.archive.disk_floor import OPERATOR_FLOOR_FILE
from stock_pipelines.collector.status import read_status
from stock_pipelines.ops.alerts import WebhookSender
from stock_pipelines.ops.incident_tick import incident_tick
from stock_pipelines.sim.runner import run_exchange
from stock_pipelines.soak.faults import Injector
from stock_pipelines.soak.schedule import PlannedFault
from stock_pipelines_tests.collector.conftest import DAY, admin, seoul
from stock_pipelines_tests.collector.test_process import collector_env, start_collector, stop, wait_streaming
from stock_pipelines_tests.ops.webhook_receiver import Receiver
from stock_pipelines_tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

COLLECTOR = "floor-1"
FAULT = PlannedFault(id="f01-disk_floor", kind="disk_floor", subject="archive", day=date(2026, 11, 20),
                     minute=10 * 60 + 30, duration_min=5)


def not_used(*_args):
    raise AssertionError("the disk_floor fault reaches only the archive")


def sink(client) -> dict:
    return read_status(client, COLLECTOR)[COLLECTOR]["counters"]["sink"]


def disk_low(client) -> bool:
    return read_status(client, COLLECTOR)[COLLECTOR]["disk_low"]


def system_events(archive) -> list[str]:
    path = archive / COLLECTOR / "system" / f"{DAY:%Y%m%d}.jsonl"
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_the_disk_floor_fault_stops_the_writer_and_clearing_resumes_it(tmp_path, redis_server):
    receiver = Receiver()
    client = redis_server.client()
    sender = WebhookSender(receiver.url)
    process = None
    archive = tmp_path / "archive"
    try:
        with run_exchange(day=DAY, symbols=6, activity=4.0, start=seoul(10, 0), speed=2) as url:
            # beats far enough apart that a loaded machine never makes the collector look down
            env = collector_env(tmp_path, url, redis_server.url,
                                STOCK_PIPELINES_COLLECTOR_HEARTBEAT_WALL_S="2.0")
            injector = Injector(str(url), not_used, not_used, not_used, not_used, not_used, [], env)
            now = lambda: datetime.fromisoformat(admin(url, "/admin/clock")["now"])  # noqa: E731
            process = start_collector(env, ",".join(url.exchange.day.codes), COLLECTOR)
            wait_streaming(process, client, COLLECTOR)
            wait_until(lambda: sink(client)["archived"] > 0, 30, "trades archived before the fault")
            incident_tick(client, sender, now())
            assert receiver.bodies == []  # streaming above the floor: nothing wrong

            token = injector.inject(FAULT)
            assert token is None  # no operator's floor file to put back afterwards
            assert int((archive / OPERATOR_FLOOR_FILE).read_text()) > 0
            wait_until(lambda: disk_low(client), 20, "disk_low in the status hash")
            low = sink(client)
            wait_until(lambda: sink(client)["refused"] > low["refused"] + 5, 20, "trades refused")
            assert sink(client)["archived"] == low["archived"], "trades archived below the floor"
            incident_tick(client, sender, now())
            assert receiver.events() == [("firing", "disk_low", COLLECTOR)]
            assert process.poll() is None, "the collector stopped instead of refusing"

            assert injector.clear(FAULT, token) is None
            assert not (archive / OPERATOR_FLOOR_FILE).exists()
            wait_until(lambda: not disk_low(client), 20, "disk_low dropped")
            resumed = sink(client)
            wait_until(lambda: sink(client)["archived"] > resumed["archived"] + 5, 20, "archiving again")
            for _ in range(2):  # evaluated again: still one resolution
                incident_tick(client, sender, now())
            assert receiver.events() == [("firing", "disk_low", COLLECTOR),
                                         ("resolved", "disk_low", COLLECTOR)]
            events = [e for e in system_events(archive) if e.startswith("DISK")]
            assert events == ["DISK_FLOOR_SET", "DISK_LOW", "DISK_FLOOR_SET", "DISK_OK"]
    finally:
        if process is not None:
            stop(process)
        receiver.close()


def test_clearing_puts_back_an_operators_own_floor_file(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / OPERATOR_FLOOR_FILE).write_text("536870912\n")
    injector = Injector("http://127.0.0.1:9", not_used, not_used, not_used, not_used, not_used, [],
                        {"STOCK_PIPELINES_ARCHIVE_DIR": str(archive)})
    token = injector.inject(FAULT)
    assert int((archive / OPERATOR_FLOOR_FILE).read_text()) > shutil.disk_usage(archive).total
    injector.clear(FAULT, token)
    assert (archive / OPERATOR_FLOOR_FILE).read_text() == "536870912\n"
    assert sorted(p.name for p in archive.iterdir()) == [OPERATOR_FLOOR_FILE]  # no temporary file left
