"""receive -> validate -> guard -> enrich -> sink, with a counter at every stage.

One instance per collector process; called from the event loop only (counters are read from
the heartbeat thread, which only ever reads ints). Nothing is dropped silently:
- validate rejects a whole frame (KIS) or one record of a message (Kiwoom) with a reason
  (frames.FrameError): counted by reason and written to the system stream as a BAD_FRAME line
  with the running count and the message's head;
- guard drops a trade seen before (same symbol and cum: the other feed of a hot standby, or the
  overlap of two connections during a fail-over or fail-back) and counts it (`dedupe.SymbolGuard`);
  a jump in a symbol's cum (cum != previous cum + qty) means trades were skipped: counted with the
  skipped volume when it opens; a skipped trade the other feed delivers later is kept and counted
  as out of order;
- enrich stamps the receive time and the collector's own sequence number;
- sink writes through the archive writer; lines refused for disk space are counted (the writer
  emits DISK_LOW) and left to the gap machinery, which recovers the minutes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from stock_pipelines.archive.record import TradeRecord
from stock_pipelines.archive.writer import ArchiveWriteError, ArchiveWriter, DiskSpaceLow
from stock_pipelines.collector.dedupe import SymbolGuard
from stock_pipelines.collector.frames import FrameError, Trade, parse_frame

Decoder = Callable[[str], list[Trade | FrameError]]

BAD_FRAME = "BAD_FRAME"
RAW_HEAD = 300  # characters of a bad frame kept in its system line


@dataclass
class StageCounters:
    frames_in: int = 0  # receive: data frames
    records_in: int = 0  # validate: trades parsed out of good frames
    frames_bad: int = 0
    bad_by_reason: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0  # guard
    out_of_order: int = 0  # arrived after a later trade of its symbol (fills a skipped stretch)
    unverified: int = 0  # kept though the guard had forgotten whether it was seen (dedupe.MAX_HOLES)
    cum_gaps: int = 0  # a symbol's cum jumped: trades missed
    cum_gap_volume: int = 0
    enriched: int = 0  # enrich
    archived: int = 0  # sink
    archived_by_src: Counter[str] = field(default_factory=Counter)  # which feed delivered each first
    refused: int = 0  # sink: disk floor
    control_in: int = 0  # JSON control messages (replies, PINGPONG)
    pingpong: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "receive": {"frames": self.frames_in, "control": self.control_in, "pingpong": self.pingpong},
            "validate": {"records": self.records_in, "bad_frames": self.frames_bad,
                         "bad_by_reason": dict(self.bad_by_reason)},
            "guard": {"duplicates": self.duplicates, "out_of_order": self.out_of_order,
                      "unverified": self.unverified,
                      "cum_gaps": self.cum_gaps, "cum_gap_volume": self.cum_gap_volume},
            "enrich": {"records": self.enriched},
            "sink": {"archived": self.archived, "refused": self.refused,
                     "by_broker": dict(self.archived_by_src)},
        }


class Pipeline:
    def __init__(self, writer: ArchiveWriter, src: str, now_us: Callable[[], int]) -> None:
        self.writer, self.src, self.now_us = writer, src, now_us
        self.counters = StageCounters()
        self.seq = 0
        self.last_trade_ts: int | None = None  # newest execution time archived, µs
        self._symbols: dict[str, SymbolGuard] = {}
        self._day: int | None = None

    def receive(self, message: str, decode: Decoder | None = None,
                src: str | None = None) -> list[TradeRecord]:
        """One data message through every stage; returns the records archived (empty if none).

        `decode` turns the message into trades and rejected records (default: a KIS H0STCNT0
        frame, accepted or rejected whole); `src` is the broker written on each line."""
        self.counters.frames_in += 1
        trades = self.validate(message, decode or kis_frame)
        if not trades:
            return []
        trades = self.guard(trades)
        records = self.enrich(trades, src or self.src)
        return self.sink(records)

    def validate(self, message: str, decode: Decoder) -> list[Trade]:
        try:
            parsed = decode(message)
        except FrameError as error:
            self._reject(error, message)
            return []
        trades = []
        for item in parsed:
            if isinstance(item, FrameError):
                self._reject(item, message)
            else:
                trades.append(item)
        self.counters.records_in += len(trades)
        return trades

    def _reject(self, error: FrameError, message: str) -> None:
        self.counters.frames_bad += 1
        self.counters.bad_by_reason[error.reason] += 1
        self.writer.write_system(BAD_FRAME, {
            "reason": error.reason, "error": str(error),
            "count": self.counters.bad_by_reason[error.reason],
            "bad_frames": self.counters.frames_bad, "raw": message[:RAW_HEAD], "chars": len(message),
        })

    def guard(self, trades: list[Trade]) -> list[Trade]:
        day = trades[0].ts // 86_400_000_000
        if day != self._day:  # cum restarts every trading day
            self._symbols.clear()
            self._day = day
        kept = []
        for trade in trades:
            state = self._symbols.get(trade.sym)
            if state is None:
                state = self._symbols[trade.sym] = SymbolGuard()
            verdict = state.take(trade.cum, trade.qty)
            if not verdict.new:
                self.counters.duplicates += 1
                continue
            if verdict.late:
                self.counters.out_of_order += 1
                self.counters.unverified += verdict.unverified
            elif verdict.gap_volume:
                self.counters.cum_gaps += 1
                self.counters.cum_gap_volume += verdict.gap_volume
            kept.append(trade)
        return kept

    def enrich(self, trades: list[Trade], src: str) -> list[TradeRecord]:
        rx = self.now_us()
        records = []
        for trade in trades:
            self.seq += 1
            records.append(
                TradeRecord(src, trade.sym, trade.ts, rx, trade.px, trade.qty, trade.cum, self.seq))
        self.counters.enriched += len(records)
        return records

    def sink(self, records: list[TradeRecord]) -> list[TradeRecord]:
        if not records:
            return []
        refused_before = self.writer.lines_refused
        try:
            self.writer.write_trades(records)
        except DiskSpaceLow:
            if self.writer.lines_refused > refused_before:  # refused at the floor, not kept for a retry
                self.counters.refused += len(records)
                return []
        except ArchiveWriteError:
            raise
        except OSError as error:  # e.g. a path that is not a file: never mistaken for a network error
            raise ArchiveWriteError(f"archive write failed: {error}") from error
        self.counters.archived += len(records)
        self.counters.archived_by_src[records[0].src] += len(records)
        newest = max(r.ts for r in records)
        if self.last_trade_ts is None or newest > self.last_trade_ts:
            self.last_trade_ts = newest
        return records


def kis_frame(message: str) -> list[Trade | FrameError]:
    return list(parse_frame(message))
