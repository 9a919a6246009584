"""Chaos: torn and malformed archive lines (torn tails at each crash, bad JSON, wrong types, bad
symbols, out-of-session times, and a torn tail appended to the newest file as a writer killed
mid-line leaves it). Each bad line is counted in raw_ticks_quarantine with its reason, none
is silently dropped, and the day's bars are still recovered exactly."""

import pytest

from stock_pipelines import lake
from stock_pipelines.sim.archive_day import Outage, write_day_archive
from stock_pipelines_tests.chaos.figures import bars_lost, exchange_stats, record, run_pipeline
from stock_pipelines_tests.recovery.test_pipeline_on_simulator import (  # noqa: F401 (fixture)
    DAY,
    SEED,
    SYMBOLS,
    pipeline_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
CORRUPT = 12


def test_torn_and_malformed_lines_are_quarantined_and_the_rest_recovered(pipeline_env):
    url, tmp_path, res = pipeline_env
    archived = write_day_archive(tmp_path / "archive", DAY, seed=SEED, symbols=SYMBOLS, corrupt=CORRUPT,
                                 outages=[Outage.parse("11:00-11:20", DAY)])
    newest = sorted(archived.files)[-1]
    with open(newest, "ab") as tail:  # a writer SIGKILLed in the middle of a line
        tail.write(b'{"src":"kis","sym":"00')
    bad_lines = len(archived.corrupt) + 1

    run = run_pipeline(bound=res)

    raw = next(e.materialization.metadata for e in run.result.get_asset_materialization_events()
               if e.asset_key.path == ["raw_ticks"])
    quarantined = raw["quarantined"].value
    by_reason = raw["quarantined_by_reason"].value
    quarantine = lake.read_partition("raw_ticks_quarantine", DAY)
    stats = exchange_stats(url)
    lost = bars_lost(url)
    record("torn + malformed lines", f"{quarantined} of {bad_lines} bad lines quarantined; bars recovered"
           if lost == 0 else "FAILED", bars_lost=lost, calls=run.calls,
           lower_bound_calls=run.metadata.get("lower_bound_calls"), rate_limited=stats["rate_limited"],
           time_to_recover_s=run.seconds, quarantined_by_reason=by_reason,
           corrupt_kinds=archived.summary()["corrupt"])
    assert run.result.success
    assert quarantined == bad_lines == quarantine.height
    assert raw["lines_in"].value == raw["rows_kept"].value + raw["duplicates"].value + quarantined
    assert lost == 0
