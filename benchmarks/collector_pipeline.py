"""Collector pipeline throughput: frames a second through receive -> validate -> guard -> enrich ->
sink, against the archive writer alone on the same trades (the baseline, measured in the same run).

    .venv/bin/python benchmarks/collector_pipeline.py [--symbols 40] [--frames 40000] [--batch 1]
        [--rounds 5] [--scrape-interval 1.0]

Frames are real H0STCNT0 frames rendered by the simulator (`--batch` records a frame). Printed:
seconds and trades/s for the pipeline, for parsing alone, and for `ArchiveWriter.write_trades` of
pre-built records; the ratio pipeline / writer shows what the collector's own stages cost on top of
the writer. Goal: the pipeline within 1.5x of the writer alone.

Then the cost of the metrics endpoint: a real `Collector` takes the same frames through its own
pipeline with `/metrics` off, and with it served (collector/metrics.py) while a client scrapes it
every `--scrape-interval` seconds (Prometheus scrapes every 15 s in docker/prometheus), alternating
`--rounds` times; the medians give the overhead on throughput. Goal: under 3%.
The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from stock_pipelines.archive.record import TradeRecord
import httpx
import redis

from stock_pipelines.archive.writer import ArchiveWriter, WriterPolicy
from stock_pipelines.collector import metrics
from stock_pipelines.collector.config import AppKey, FeedSource
from stock_pipelines.collector.frames import parse_frame
from stock_pipelines.collector.pipeline import Pipeline
from stock_pipelines.collector.runner import Collector
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


def collector_seconds(frames: list[str], root: Path, scrape_interval: float | None) -> tuple[float, int, int]:
    """Seconds for a fresh collector's pipeline to take `frames`, with /metrics served and scraped
    every `scrape_interval` s (None: off); the scrapes made and the trades archived. Nothing connects: the frames go
    straight into the pipeline, and the Redis client is never used."""
    source = FeedSource("primary", "kis", "http://127.0.0.1:1", "ws://127.0.0.1:1", (AppKey("k", "s"),))
    collector = Collector("bench", ["005930"], [source], root, redis.Redis(host="127.0.0.1", port=1),
                          min_free_bytes=1)
    server, scrapes, done = None, [0], threading.Event()

    def scrape_loop() -> None:
        while not done.wait(scrape_interval):
            httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10).raise_for_status()
            scrapes[0] += 1

    if scrape_interval is not None:
        server = metrics.serve(collector, "127.0.0.1", 0)
        scraper = threading.Thread(target=scrape_loop, daemon=True)
        scraper.start()
    started = time.perf_counter()
    for frame in frames:
        collector.pipeline.receive(frame)
    collector.writer.close()
    seconds = time.perf_counter() - started
    done.set()
    if server is not None:
        scraper.join()
        server.close()
    return seconds, scrapes[0], collector.pipeline.counters.archived


def metrics_overhead(frames: list[str], rounds: int, scrape_interval: float) -> dict[str, float]:
    """Alternating runs without and with the endpoint (the machine's load hits both alike)."""
    off, on, scrapes, archived = [], [], 0, set()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            seconds, _, trades = collector_seconds(frames, Path(tmp) / f"off{i}", None)
            off.append(seconds)
            archived.add(trades)
            seconds, made, trades = collector_seconds(frames, Path(tmp) / f"on{i}", scrape_interval)
            on.append(seconds)
            scrapes += made
            archived.add(trades)
    assert len(archived) == 1, f"runs archived different trade counts: {archived}"
    off_s, on_s = statistics.median(off), statistics.median(on)
    return {"off_s": off_s, "on_s": on_s, "overhead": on_s / off_s - 1, "scrapes": scrapes,
            "archived": archived.pop()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=40)
    parser.add_argument("--frames", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="runs each with /metrics off and on")
    parser.add_argument("--scrape-interval", type=float, default=1.0, help="seconds between scrapes")
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
    overhead = metrics_overhead(frames, args.rounds, args.scrape_interval)
    print(f"collector, /metrics off: {overhead['off_s']:6.2f} s  {n / overhead['off_s']:10,.0f} trades/s "
          f"(median of {args.rounds})")
    print(f"collector, /metrics on:  {overhead['on_s']:6.2f} s  {n / overhead['on_s']:10,.0f} trades/s "
          f"({overhead['scrapes']} scrapes, one every {args.scrape_interval} s)")
    print(f"metrics overhead on throughput: {overhead['overhead']:+.2%} (goal < 3%)")
    print(json.dumps({"frames": len(frames), "trades": n, "batch": args.batch,
                      "pipeline_trades_per_s": round(n / pipeline_s),
                      "writer_trades_per_s": round(n / writer_s), "parse_trades_per_s": round(n / parse_s),
                      "ratio_pipeline_to_writer": round(pipeline_s / writer_s, 3),
                      "metrics_off_trades_per_s": round(n / overhead["off_s"]),
                      "metrics_on_trades_per_s": round(n / overhead["on_s"]),
                      "metrics_scrapes": overhead["scrapes"],
                      "metrics_overhead": round(overhead["overhead"], 4)}))


if __name__ == "__main__":
    main()
