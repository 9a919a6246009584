"""Collector pipeline throughput: frames a second through receive -> validate -> guard -> enrich ->
sink, against the archive writer alone on the same trades (the baseline, measured in the same run).

    .venv/bin/python benchmarks/collector_pipeline.py [--symbols 40] [--frames 40000] [--batch 1]
        [--rounds 5] [--scrape-interval 1.0]

Frames are real H0STCNT0 frames rendered by the simulator (`--batch` records a frame). Printed:
seconds and trades/s for the pipeline, for parsing alone, and for `ArchiveWriter.write_trades` of
pre-built records; the ratio pipeline / writer shows what the collector's own stages cost on top of
the writer. Goal: the pipeline within 1.5x of the writer alone.

Then the cost of the metrics endpoint: a real `Collector` takes the same frames through its own
pipeline with `/metrics` off, and with it served (collector/metrics.py) while another process scrapes
it every `--scrape-interval` seconds (Prometheus scrapes every 15 s in docker/prometheus),
alternating `--rounds` times; the medians give the overhead on throughput, in the CPU seconds of
the collector's process and in wall seconds. On a loaded machine both carry more noise than the
endpoint costs, so the endpoint is also measured directly: the CPU its threads took during the
runs against the pipeline's own (the process's CPU time less the main thread's), and the cost of
one scrape alone (CPU seconds of the collector's process per scrape) as the share of a core it
takes at Prometheus's 15 s and at `--scrape-interval`. Goal: under 3%.
The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import redis

from stock_pipelines.archive.record import TradeRecord
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


# Scrapes from a process of its own, as Prometheus does: a client in the collector's process would
# bill the collector for the client's work (an httpx.Client costs ~80 ms of CPU to build).
SCRAPER = """import sys, time, urllib.request
url, interval, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
while count:
    urllib.request.urlopen(url, timeout=10).read()
    print("scraped", flush=True)
    count -= 1
    time.sleep(interval)
"""
PROMETHEUS_INTERVAL_S = 15.0  # docker/prometheus/prometheus.yml


def start_scraper(port: int, interval: float, count: int = -1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCRAPER, f"http://127.0.0.1:{port}/metrics", str(interval),
                             str(count)], stdout=subprocess.PIPE, text=True)


def scrape_cpu_s(collector: Collector, scrapes: int = 200) -> float:
    """CPU seconds one scrape costs the collector's process (the HTTP server's thread rendering the
    series), measured while nothing else runs in it: `scrapes` back to back from another process."""
    server = metrics.serve(collector, "127.0.0.1", 0)
    scraper = start_scraper(server.port, 0.0, scrapes)
    scraper.stdout.readline()  # the first one answered: the client's start-up is behind us
    cpu = time.process_time()
    done = sum(1 for _ in scraper.stdout)
    cpu = time.process_time() - cpu
    scraper.wait()
    server.close()
    return cpu / done


def collector_seconds(frames: list[str], root: Path, scrape_interval: float | None) -> dict[str, float]:
    """Wall and CPU seconds (this process: the pipeline and the metrics server's thread) for a fresh
    collector's pipeline to take `frames`, with /metrics served and scraped every `scrape_interval`
    s (None: off); the scrapes made and the trades archived. Nothing connects: the frames go
    straight into the pipeline, and the Redis client is never used."""
    source = FeedSource("primary", "kis", "http://127.0.0.1:1", "ws://127.0.0.1:1", (AppKey("k", "s"),))
    collector = Collector("bench", ["005930"], [source], root, redis.Redis(host="127.0.0.1", port=1),
                          min_free_bytes=1)
    server = scraper = None
    if scrape_interval is not None:
        server = metrics.serve(collector, "127.0.0.1", 0)
        scraper = start_scraper(server.port, scrape_interval)
        scraper.stdout.readline()  # the first scrape answered: the endpoint is being scraped
    wall, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
    for frame in frames:
        collector.pipeline.receive(frame)
    collector.writer.close()
    wall, cpu, own = time.perf_counter() - wall, time.process_time() - cpu, time.thread_time() - own
    scrapes = 0
    if scraper is not None and server is not None:
        scraper.terminate()
        scrapes = sum(1 for _ in scraper.stdout)
        scraper.wait()
        server.close()
    # cpu - own: what the process's other threads (the metrics server's) took during the run
    return {"wall_s": wall, "cpu_s": cpu, "endpoint_share": (cpu - own) / own, "scrapes": scrapes,
            "archived": collector.pipeline.counters.archived,
            "scrape_cpu_s": scrape_cpu_s(collector) if scrape_interval is not None else 0.0}


def metrics_overhead(frames: list[str], rounds: int, scrape_interval: float) -> dict[str, float]:
    """Alternating runs without and with the endpoint (the machine's load hits both alike); the
    overhead on throughput from the medians, in CPU seconds of the collector's process (what the
    endpoint takes from it, whatever else the machine runs) and in wall seconds."""
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            # alternate which goes first: the previous run's writes still being flushed by the
            # kernel must not always fall on the same side
            for served in ((False, True) if i % 2 == 0 else (True, False)):
                runs[served].append(collector_seconds(frames, Path(tmp) / f"{served}{i}",
                                                      scrape_interval if served else None))
    archived = {run["archived"] for both in runs.values() for run in both}
    assert len(archived) == 1, f"runs archived different trade counts: {archived}"
    figures: dict[str, float] = {"archived": archived.pop(), "scrapes": sum(r["scrapes"] for r in runs[True]),
                                 "scrape_cpu_s": statistics.median(r["scrape_cpu_s"] for r in runs[True]),
                                 "endpoint_share": statistics.median(r["endpoint_share"] for r in runs[True])}
    for measure in ("cpu_s", "wall_s"):
        off = statistics.median(r[measure] for r in runs[False])
        on = statistics.median(r[measure] for r in runs[True])
        figures |= {f"off_{measure}": off, f"on_{measure}": on, f"overhead_{measure}": on / off - 1}
    return figures


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
    for served in ("off", "on"):
        print(f"collector, /metrics {served + ':':4} "
              f"{n / overhead[f'{served}_cpu_s']:10,.0f} trades per CPU s, "
              f"{n / overhead[f'{served}_wall_s']:10,.0f} trades/s wall (median of {args.rounds})")
    print(f"({overhead['scrapes']} scrapes, one every {args.scrape_interval} s, from another process)")
    print(f"metrics overhead on throughput, off vs on: {overhead['overhead_cpu_s']:+.2%} CPU, "
          f"{overhead['overhead_wall_s']:+.2%} wall (on a loaded machine both are mostly noise)")
    print(f"CPU the endpoint's threads took during the runs: {overhead['endpoint_share']:.3%} of the "
          "pipeline's (median; goal < 3%)")
    scrape_ms = overhead["scrape_cpu_s"] * 1000
    print(f"one scrape costs the collector {scrape_ms:.2f} ms of CPU: "
          f"{overhead['scrape_cpu_s'] / PROMETHEUS_INTERVAL_S:.4%} of a core at one scrape every "
          f"{PROMETHEUS_INTERVAL_S:g} s, {overhead['scrape_cpu_s'] / args.scrape_interval:.3%} every "
          f"{args.scrape_interval:g} s (the most the endpoint can take from the pipeline)")
    print(json.dumps({"frames": len(frames), "trades": n, "batch": args.batch,
                      "pipeline_trades_per_s": round(n / pipeline_s),
                      "writer_trades_per_s": round(n / writer_s), "parse_trades_per_s": round(n / parse_s),
                      "ratio_pipeline_to_writer": round(pipeline_s / writer_s, 3),
                      "metrics_off_trades_per_cpu_s": round(n / overhead["off_cpu_s"]),
                      "metrics_on_trades_per_cpu_s": round(n / overhead["on_cpu_s"]),
                      "metrics_scrapes": overhead["scrapes"],
                      "metrics_overhead_cpu": round(overhead["overhead_cpu_s"], 4),
                      "metrics_overhead_wall": round(overhead["overhead_wall_s"], 4),
                      "metrics_scrape_cpu_ms": round(scrape_ms, 3),
                      "metrics_endpoint_cpu_share": round(overhead["endpoint_share"], 5),
                      "metrics_share_at_15s": round(overhead["scrape_cpu_s"] / PROMETHEUS_INTERVAL_S, 6)}))


if __name__ == "__main__":
    main()
