"""The on-disk calendar cache: same answers as a fresh build, rebuilt when unreadable or stale."""

from datetime import date
from pathlib import Path

from stock_pipelines.market import KrxCalendar
from stock_pipelines.market import cache
from stock_pipelines.market.cache import cached


def test_a_cached_calendar_answers_exactly_as_a_fresh_build(tmp_path):
    built = cached("krx_calendar", "k1", KrxCalendar, KrxCalendar, tmp_path)
    rebuild = lambda: (_ for _ in ()).throw(AssertionError("rebuilt"))  # noqa: E731
    loaded = cached("krx_calendar", "k1", rebuild, KrxCalendar, tmp_path)
    assert loaded is not built
    assert loaded._days == built._days
    assert loaded.session(date(2026, 11, 19)) == built.session(date(2026, 11, 19))


def test_an_unreadable_cache_file_is_rebuilt_not_trusted(tmp_path):
    cache.use_cache_dir(tmp_path)  # the process's directory (conftest restores it)
    (tmp_path / "thing-k2.pickle").write_bytes(b"not a pickle")
    assert cached("thing", "k2", lambda: {"fresh": 1}, dict) == {"fresh": 1}
    assert cached("thing", "k2", lambda: {"other": 2}, dict) == {"fresh": 1}  # and now cached


def test_a_different_input_key_never_reads_the_old_file(tmp_path):
    cached("thing", "old", lambda: {"v": "old"}, dict, tmp_path)
    assert cached("thing", "new", lambda: {"v": "new"}, dict, tmp_path) == {"v": "new"}


def test_an_unwritable_cache_directory_still_returns_the_value(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    assert cached("thing", "k", lambda: {"v": 1}, dict, blocked / "sub") == {"v": 1}


def test_the_cache_directory_from_the_documented_variables(tmp_path):
    home = Path.home()
    assert cache.cache_dir_from({}) == home / ".cache" / "stock_pipelines"
    assert cache.cache_dir_from({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "stock_pipelines"
    given = {"XDG_CACHE_HOME": "/elsewhere", "STOCK_PIPELINES_CACHE_DIR": str(tmp_path / "c")}
    assert cache.cache_dir_from(given) == tmp_path / "c"
