"""The KRX calendar for the simulator, loaded fast.

`KrxCalendar()` builds from exchange_calendars (XKRX) in about 3 s, and the exchange must start
in under 2 s. The built calendar is pickled to a cache file keyed by everything it is built
from (the override table, the calendar module's source and the exchange_calendars version), so
a changed input can never serve a stale calendar; a missing or unreadable cache is rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import pickle
import tempfile
from datetime import date
from pathlib import Path

from stock_pipelines.market import KrxCalendar, Session
from stock_pipelines.market import calendar as calendar_module


class NotATradingDay(ValueError):
    """The simulator was asked for a day KRX does not trade."""


def _cache_dir() -> Path:
    configured = os.environ.get("STOCK_PIPELINES_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stock_pipelines"


def _cache_key() -> str:
    digest = hashlib.sha256()
    digest.update(Path(calendar_module.__file__).read_bytes())
    digest.update(calendar_module.OVERRIDES_PATH.read_bytes())
    digest.update(importlib.metadata.version("exchange_calendars").encode())
    return digest.hexdigest()[:16]


@functools.cache
def sim_calendar() -> KrxCalendar:
    if calendar_module.krx_calendar.cache_info().currsize:  # already built in this process
        return calendar_module.krx_calendar()
    path = _cache_dir() / f"krx_calendar-{_cache_key()}.pickle"
    try:
        with path.open("rb") as handle:
            calendar = pickle.load(handle)
        if isinstance(calendar, KrxCalendar):
            return calendar
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        pass
    calendar = calendar_module.krx_calendar()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as handle:
            pickle.dump(calendar, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(handle.name, path)
    except OSError:
        pass  # a read-only home only costs the next start its 3 s
    return calendar


def trading_session(day: date) -> Session:
    """The day's session, or NotATradingDay naming the date and why."""
    info = sim_calendar().day(day)
    if info.session is None:
        raise NotATradingDay(f"{day.isoformat()} is not a KRX trading day ({info.closed_reason})")
    return info.session
