"""The quick variant of `benchmarks/sim_exchange.py --served-days`: a `sim exchange` process asked
for every symbol of 4 trading days holds at most its day cache (2), and the first day, evicted by
then, comes back over REST with identical bars."""

from __future__ import annotations

import pytest

from .served_days import serve_days

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_served_days_stay_at_the_cache_cap_and_an_evicted_day_comes_back_identical():
    result = serve_days(days=4, symbols=6, day_cache=2)
    served = result["served"]
    assert served == ["2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]
    # least recently used first: 11-17, evicted and asked for again, then the clock's own day, which
    # every quotation reads (its summary) and so stays the most recently used
    assert result["days_held"] == ["2026-11-17", "2026-11-20"]
    assert result["days_generated"] == 5
    assert result["first_day_identical"] is True
