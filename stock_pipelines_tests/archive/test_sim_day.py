"""raw_ticks on a `sim day` archive: every archived trade kept, every corrupted line quarantined."""

from __future__ import annotations

import json

import polars as pl

from stock_pipelines.archive.ticks import ingest_day
from stock_pipelines.market import krx_calendar
from stock_pipelines.sim.archive_day import Outage, write_day_archive

from .conftest import DAY

# sim day's corruption kinds -> the reason raw_ticks gives (a torn tail nobody reopened is unterminated)
EXPECTED_REASON = {
    "torn_tail": "unterminated_line",
    "bad_json": "invalid_json",
    "wrong_type": "wrong_type",
    "bad_symbol": "bad_symbol",
    "out_of_session": "out_of_session",
}


def test_sim_day_archive_is_read_loss_free(tmp_path):
    root = tmp_path / "archive"
    truth_path = tmp_path / "truth.parquet"
    result = write_day_archive(
        root, DAY, symbols=8, outages=[Outage.parse("10:00-10:20", DAY)], corrupt=10, truth=truth_path
    )
    ingested = ingest_day([(root, "")], DAY, krx_calendar().session(DAY))
    stats = ingested.stats
    assert stats.rows_kept == result.trades_written and stats.duplicates == 0
    assert stats.quarantined_by_reason == {
        EXPECTED_REASON[k]: n for k, n in result.summary()["corrupt"].items()
    }
    truth = pl.read_parquet(truth_path).filter(pl.col("archived"))
    expected = set(zip(truth["sym"].cast(pl.String), truth["cum"], strict=True))
    assert set(zip(ingested.ticks["symbol"], ingested.ticks["cum"], strict=True)) == expected
    manifest = json.loads(truth_path.with_suffix(".manifest.json").read_text())
    where = {(c["file"].removeprefix(str(root) + "/"), c["line"]) for c in manifest["corrupt_lines"]}
    assert set(zip(ingested.quarantine["file"], ingested.quarantine["line"], strict=True)) == where
