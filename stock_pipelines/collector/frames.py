"""KIS H0STCNT0 frames -> trades: the validate stage, pure functions.

Data frames are `E|TR_ID|NNN|f1^f2^...`: E is 0 (clear) or 1 (AES, not used for H0STCNT0),
NNN records of 46 '^'-separated fields each (field order from koreainvestment/open-trading-api
examples_llm/domestic_stock/ccnl_krx). Control messages (subscribe replies, PINGPONG) are JSON.
A frame is accepted or rejected whole, with a reason, so a count of bad frames is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stock_pipelines.archive.record import is_valid_symbol
from stock_pipelines.market import SEOUL

TR_TRADES = "H0STCNT0"
FIELDS_PER_RECORD = 46
# Positions in the 46-field record that a trade line needs.
SYMBOL, TIME, PRICE, VOLUME, CUM_VOLUME, BUSINESS_DATE = 0, 1, 2, 12, 13, 33

# Reasons a frame is rejected (the counters and the system stream use these names).
NOT_A_FRAME = "not_a_frame"
ENCRYPTED = "encrypted"
OTHER_TR_ID = "other_tr_id"
BAD_COUNT = "bad_count"
FIELD_COUNT = "field_count"
BAD_SYMBOL = "bad_symbol"
BAD_NUMBER = "bad_number"
BAD_TIME = "bad_time"
NONPOSITIVE = "nonpositive"
BAD_CUM = "bad_cum"


@dataclass(frozen=True, slots=True)
class Trade:
    sym: str
    ts: int  # execution time, epoch µs UTC
    px: int
    qty: int
    cum: int


class FrameError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def is_data(message: str) -> bool:
    return message[:1] in ("0", "1") and message[1:2] == "|"


_times: dict[tuple[str, str], int] = {}  # (YYYYMMDD, HHMMSS) -> epoch µs; one entry a second of the day


def _epoch_us(day: str, hhmmss: str) -> int:
    key = (day, hhmmss)
    value = _times.get(key)
    if value is None:
        if len(day) != 8 or len(hhmmss) != 6 or not (day + hhmmss).isdigit():
            raise FrameError(BAD_TIME, f"{day} {hhmmss}")
        try:
            moment = datetime(int(day[:4]), int(day[4:6]), int(day[6:]), int(hhmmss[:2]), int(hhmmss[2:4]),
                              int(hhmmss[4:]), tzinfo=SEOUL)
        except ValueError:
            raise FrameError(BAD_TIME, f"{day} {hhmmss}") from None
        value = int(moment.timestamp()) * 1_000_000
        if len(_times) > 200_000:
            _times.clear()
        _times[key] = value
    return value


def parse_frame(message: str) -> list[Trade]:
    """Every trade of one data frame, or FrameError for the whole frame."""
    parts = message.split("|", 3)
    if len(parts) != 4:
        raise FrameError(NOT_A_FRAME, "expected 4 '|'-separated parts")
    flag, tr_id, count_text, payload = parts
    if flag == "1":
        raise FrameError(ENCRYPTED, f"{tr_id} frame is encrypted")
    if flag != "0":
        raise FrameError(NOT_A_FRAME, f"flag {flag!r}")
    if tr_id != TR_TRADES:
        raise FrameError(OTHER_TR_ID, tr_id)
    if not count_text.isdigit() or int(count_text) < 1:
        raise FrameError(BAD_COUNT, repr(count_text))
    count = int(count_text)
    fields = payload.split("^")
    if len(fields) != count * FIELDS_PER_RECORD:
        raise FrameError(FIELD_COUNT, f"{len(fields)} fields for {count} record(s) of {FIELDS_PER_RECORD}")
    trades = []
    for i in range(count):
        record = fields[i * FIELDS_PER_RECORD:(i + 1) * FIELDS_PER_RECORD]
        sym = record[SYMBOL]
        if not is_valid_symbol(sym):
            raise FrameError(BAD_SYMBOL, repr(sym[:20]))
        try:
            px, qty, cum = int(record[PRICE]), int(record[VOLUME]), int(record[CUM_VOLUME])
        except ValueError:
            raise FrameError(BAD_NUMBER, f"{sym} price/volume/cum not integers") from None
        if px <= 0 or qty <= 0:
            raise FrameError(NONPOSITIVE, f"{sym} price {px} qty {qty}")
        if cum < qty:
            raise FrameError(BAD_CUM, f"{sym} cum {cum} < qty {qty}")
        trades.append(Trade(sym, _epoch_us(record[BUSINESS_DATE], record[TIME]), px, qty, cum))
    return trades
