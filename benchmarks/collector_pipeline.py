"""Collector pipeline throughput: frames a second through receive -> validate -> guard -> enrich ->
sink, against the archive writer alone on the same trades (the baseline, measured in the same run).

    .venv/bin/python benchmarks/collector_pipeline.py [--symbols 40] [--frames 40000] [--batch 1]

Frames are real H0STCNT0 frames rendered by the simulator (`--batch` records a frame). Printed:
seconds and trades/s for the pipeline, for parsing alone, and for `ArchiveWriter.write_trades` of
pre-built records; the ratio pipeline / writer shows what the collector's own stages cost on top of
the writer. The last line is a JSON object. Goal: the pipeline within 1.5x of the writer alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

from stock_pipelines.archive.record import TradeRecord
from stock_pipelines.archive.writer import ArchiveWriter, WriterPolicy
from stock_pipelines.collector.frames import parse_frame
from stock_pipelines.collector.pipeline import Pipeline
from stock_pipelines.sim import kis_protocol
from stock_pipelines.sim.day import SimDay


def build_frames(symbols: int, count: int, batch: int) -> list[str]:
    sim = SimDay(date(2026, 11, 20), seed=1, symbols=symbols)
    per_symbol = -(-count // symbols)
    frames = []
    for code in sim.codes:
        context = kis_protocol.TickContext.build(sim.trades(code), "20261120")
        n = min(per_symbol * batch, len(context.trades.px))
        records = [context.record(i, False) for i in range(n)]
        frames += [kis_protocol.data_frame(records[i:i + batch]) for i in range(0, n, batch)]
    return frames[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=40)
    parser.add_argument("--frames", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    frames = build_frames(args.symbols, args.frames, args.batch)
    policy = WriterPolicy(min_free_bytes=1)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        parsed = [parse_frame(f) for f in frames]
        parse_s = time.perf_counter() - started
        trades = [t for batch in parsed for t in batch]

        writer = ArchiveWriter(Path(tmp) / "pipe", "bench", policy)
        pipeline = Pipeline(writer, "kis", lambda: int(time.time() * 1_000_000))
        started = time.perf_counter()
        for frame in frames:
            pipeline.receive(frame)
        writer.close()
        pipeline_s = time.perf_counter() - started

        records = [[TradeRecord("kis", t.sym, t.ts, t.ts, t.px, t.qty, t.cum, 0) for t in batch]
                   for batch in parsed]
        writer = ArchiveWriter(Path(tmp) / "base", "bench", policy)
        started = time.perf_counter()
        for batch in records:
            writer.write_trades(batch)
        writer.close()
        writer_s = time.perf_counter() - started

    n = len(trades)
    assert pipeline.counters.archived == n, (pipeline.counters.archived, n)
    print(f"{len(frames):,} frames, {n:,} trades ({args.batch} a frame, {args.symbols} symbols)")
    print(f"parse only:   {parse_s:6.2f} s  {n / parse_s:10,.0f} trades/s")
    print(f"pipeline:     {pipeline_s:6.2f} s  {n / pipeline_s:10,.0f} trades/s")
    print(f"writer alone: {writer_s:6.2f} s  {n / writer_s:10,.0f} trades/s (baseline)")
    print(f"pipeline / writer time: {pipeline_s / writer_s:.2f}x")
    print(json.dumps({"frames": len(frames), "trades": n, "batch": args.batch,
                      "pipeline_trades_per_s": round(n / pipeline_s),
                      "writer_trades_per_s": round(n / writer_s), "parse_trades_per_s": round(n / parse_s),
                      "ratio_pipeline_to_writer": round(pipeline_s / writer_s, 3)}))


if __name__ == "__main__":
    main()
