"""archive.symbol_range: a symbol cut into ranges is judged as if it were whole."""

from __future__ import annotations

import polars as pl

from stock_pipelines.archive.symbol_range import drop_decreasing


def one_symbol_in_cum_order() -> pl.DataFrame:
    # two sources; cum 5 (kis) and cum 9 (kiwoom) are stamped before earlier trades of their source
    ts = [10, 20, 30, 40, 15, 60, 70, 80, 90, 65, 100]
    src = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    return pl.DataFrame(
        {
            "sym_key": pl.Series([7] * len(ts), dtype=pl.UInt32),
            "src_rank": pl.Series(src, dtype=pl.UInt8),
            "ts": ts,
            "cum": list(range(1, len(ts) + 1)),
            "file_id": pl.Series([0] * len(ts), dtype=pl.UInt32),
            "line": pl.Series(list(range(1, len(ts) + 1)), dtype=pl.UInt32),
        }
    )


def test_decreasing_cum_is_found_across_every_cut_of_a_symbol():
    rows = one_symbol_in_cum_order()
    kept, rejected, _ = drop_decreasing(rows, 0)
    assert rejected["line"].to_list() == [5, 10]
    for cut in range(1, rows.height):
        first_kept, first_rejected, carry = drop_decreasing(rows.head(cut), 0)
        rest_kept, rest_rejected, _ = drop_decreasing(rows.slice(cut), 0, carry)
        assert pl.concat([first_rejected, rest_rejected])["line"].to_list() == [5, 10], cut
        assert pl.concat([first_kept, rest_kept]).equals(kept), cut


def test_a_carry_of_another_symbol_changes_nothing():
    rows = one_symbol_in_cum_order()
    other = pl.DataFrame(
        {"sym_key": [3], "src_rank": [0], "ts": [10**9]}, schema={"sym_key": pl.UInt32, "src_rank": pl.UInt8, "ts": pl.Int64}
    )
    _, rejected, carry = drop_decreasing(rows, 0, other)
    assert rejected["line"].to_list() == [5, 10]
    assert carry.rows() == [(7, 0, 100), (7, 1, 80)]


def test_a_symbol_one_source_never_traded_does_not_hide_the_next_symbols_decreasing_row():
    # symbol 1: both sources; symbol 2: kis only; symbol 3: kiwoom goes back in time at cum 2
    frame = pl.DataFrame(
        {
            "sym_key": [1, 1, 2, 3, 3],
            "src_rank": [0, 1, 0, 1, 1],
            "ts": [10, 10, 10, 50, 40],
            "cum": [1, 1, 1, 1, 2],
            "file_id": [0] * 5,
            "line": [1, 2, 3, 4, 5],
        },
        schema_overrides={"sym_key": pl.UInt32, "src_rank": pl.UInt8, "file_id": pl.UInt32, "line": pl.UInt32},
    )
    _, rejected, _ = drop_decreasing(frame, 0)
    assert rejected["line"].to_list() == [5]
