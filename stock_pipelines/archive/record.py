"""The archive record, version 1 (docs/archive-format.md is the human-readable contract).

One trade a line, one JSON object a line, keys kept short because a full market day is
tens of millions of lines. Times are integer epoch microseconds in UTC: exact, zone-free and
the fastest thing for a reader to parse.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

SCHEMA_VERSION = 1
SOURCES = ("kis", "kiwoom")
SYMBOL_PATTERN = re.compile(r"^[0-9A-Z]{6}$")  # KRX short codes: 005930, 0088M0 (newer codes carry letters)


@dataclass(frozen=True, slots=True)
class TradeRecord:
    src: str  # "kis" | "kiwoom": the broker feed the trade came from
    sym: str  # 6-character KRX short code
    ts: int  # exchange (execution) time, epoch microseconds UTC
    rx: int  # time the collector received it, epoch microseconds UTC
    px: int  # price in KRW (KRX prices are whole won)
    qty: int  # shares in this trade
    cum: int  # cumulative day volume after this trade (KIS ACML_VOL): the trade's identity
    seq: int  # the writer's own sequence number, 1, 2, 3, ... per writer process
    v: int = SCHEMA_VERSION

    def to_json_line(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":")) + "\n"


def is_valid_symbol(symbol: object) -> bool:
    return isinstance(symbol, str) and SYMBOL_PATTERN.fullmatch(symbol) is not None


@dataclass(frozen=True, slots=True)
class SystemRecord:
    """A line of the system stream: lifecycle events, heartbeats, quarantined tails, errors."""

    event: str  # UP, DOWN, STALLED, HEARTBEAT, DISK_LOW, DISK_OK, TORN_TAIL, ...
    at: int  # epoch microseconds UTC
    collector: str
    detail: dict | None = None
    v: int = SCHEMA_VERSION

    def to_json_line(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False) + "\n"
