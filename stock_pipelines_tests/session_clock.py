"""The session clock: `--clock=ISO` (or env STOCK_PIPELINES_TEST_CLOCK) runs the whole pytest session,
and every process it starts, on the project clock (`stock_pipelines.ops.clock`) started at that
instant and running at real speed (STOCK_PIPELINES_FAKE_NOW). A test that sets its own clock wins.

Tests marked `clock` read the clock without setting it: CI runs them at several positions. The
session lists, at its end, any test that read the session's clock in this process (directly or
through the code it calls) without setting it and is not marked: a test that may depend on the
date it runs. Reads in subprocesses, and clocks captured as default arguments, are not seen.
Under pytest-xdist the controller starts the clock (the workers inherit it) and each read reaches
it on the test's report (`user_properties`), so the list covers every worker.

conftest.py registers this module as a pytest plugin.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

import pytest

from stock_pipelines.market import SEOUL
from stock_pipelines.ops import clock
from stock_pipelines.ops.clock import ENV_FAKE_NOW, fake_now_value

ENV_TEST_CLOCK = "STOCK_PIPELINES_TEST_CLOCK"

_session: dict[str, object] = {"value": None, "test": None}
_readers: dict[str, bool] = {}  # test id -> marked `clock`, from the reports of every worker
READ_PROPERTY = "reads_session_clock"  # a user property of a test that read it: (READ_PROPERTY, marked)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock", metavar="ISO", default=os.environ.get(ENV_TEST_CLOCK) or None,
        help="start the project clock at this instant for the whole session (ISO 8601; without an "
        f"offset, Asia/Seoul) and let it run; default: ${ENV_TEST_CLOCK}, else the real clock",
    )


def session_clock_value(text: str, wall: float) -> str:
    """The STOCK_PIPELINES_FAKE_NOW value for a clock starting at `text` when the wall clock reads `wall`."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise pytest.UsageError(f"--clock={text!r}: want ISO 8601, e.g. 2026-12-01T12:20:00+09:00") from None
    return fake_now_value(at if at.tzinfo else at.replace(tzinfo=SEOUL), wall)


def _noting_readers(now):
    def now_noted():
        item = _session["test"]
        if item is not None and os.environ.get(ENV_FAKE_NOW) == _session["value"]:
            if not any(name == READ_PROPERTY for name, _ in item.user_properties):
                item.user_properties.append((READ_PROPERTY, item.get_closest_marker("clock") is not None))
        return now()

    return now_noted


def pytest_configure(config: pytest.Config) -> None:
    start = config.getoption("--clock")
    if start and not hasattr(config, "workerinput"):  # an xdist worker inherits the controller's
        os.environ[ENV_FAKE_NOW] = session_clock_value(start, time.time())
    _session["value"] = os.environ.get(ENV_FAKE_NOW)
    clock.now = _noting_readers(clock.now)


def pytest_report_header(config: pytest.Config) -> str:
    value = os.environ.get(ENV_FAKE_NOW)
    return f"project clock: {ENV_FAKE_NOW}={value}" if value else "project clock: the real clock"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    _session["test"] = item
    yield
    _session["test"] = None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, marked in report.user_properties:
        if name == READ_PROPERTY:
            _readers.setdefault(report.nodeid, marked)


def pytest_terminal_summary(terminalreporter) -> None:
    unmarked = sorted(test for test, marked in _readers.items() if not marked)
    if unmarked:
        terminalreporter.write_sep(
            "-", f"{len(unmarked)} tests read the session's clock without setting it, not marked clock"
        )
        for test in unmarked:
            terminalreporter.write_line(test)
