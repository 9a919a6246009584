"""A built KrxCalendar, cached on disk so a process starts in milliseconds instead of ~3 s.

Building from exchange_calendars (XKRX) computes lunar holidays for the whole range and costs
about 3 s of CPU plus the pandas import: too slow for the simulator's 2-second start and paid
again by every Dagster run worker. The cache file is keyed by everything the calendar is built
from (the calendar module's source, the override table, the exchange_calendars version), so a
changed input can never serve a stale calendar; an unreadable file is rebuilt, and an
unwritable cache directory only costs the next process its build.

The cache directory is STOCK_PIPELINES_CACHE_DIR, else $XDG_CACHE_HOME/stock_pipelines, else
~/.cache/stock_pipelines (`cache_dir_from`; the entry points configure the process's directory
with `use_cache_dir`). It is the user's own directory: the pickle is read only from there.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from stock_pipelines.atomic_files import replacing

T = TypeVar("T")
CACHE_DIR_VAR = "STOCK_PIPELINES_CACHE_DIR"

_directory: Path | None = None  # None: ~/.cache/stock_pipelines


def cache_dir_from(environ: Mapping[str, str]) -> Path:
    configured = environ.get(CACHE_DIR_VAR)
    if configured:
        return Path(configured)
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stock_pipelines"


def use_cache_dir(directory: Path | None) -> Path | None:
    """The process's cache directory from now on (None: the default); returns the previous one."""
    global _directory
    previous, _directory = _directory, directory
    return previous


def cache_dir() -> Path:
    return _directory if _directory is not None else cache_dir_from({})


def input_key(*files: Path, packages: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    for package in packages:
        digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
    return digest.hexdigest()[:16]


def cached(name: str, key: str, build: Callable[[], T], kind: type, directory: Path | None = None) -> T:
    """`build()`'s value, from `directory` (None: the process's cache directory) when stored there."""
    path = (directory or cache_dir()) / f"{name}-{key}.pickle"
    try:
        with path.open("rb") as handle:
            value = pickle.load(handle)
        if isinstance(value, kind):
            return value
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        pass
    value = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path, "wb", durable=False) as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError:
        pass
    return value
