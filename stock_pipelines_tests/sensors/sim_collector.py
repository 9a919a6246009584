"""A simulated collector for the end-to-end test: replays a `SimDay` into the archive at the
(fake) exchange clock and heartbeats through `HeartbeatPublisher`, until it is killed.

    python -m stock_pipelines_tests.sensors.sim_collector --archive DIR --date D --seed S \
        --symbols N --collector ID [--history]

`--history`: first write the day's trades and heartbeats from the open up to now, as if it had
been running since before the open. Uses STOCK_PIPELINES_FAKE_NOW and REDIS_URL.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from stock_pipelines.archive.layout import trades_path
from stock_pipelines.heartbeat import Heartbeat, HeartbeatPublisher, HeartbeatStore, Snapshot
from stock_pipelines.heartbeat.model import from_us, to_us
from stock_pipelines.ops import clock
from stock_pipelines.redis_conn import redis_client
from stock_pipelines.sim.archive_day import trade_line
from stock_pipelines.sim.day import SimDay


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--date", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--collector", default="sim-kis-1")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--history", action="store_true")
    args = parser.parse_args()

    sim = SimDay(date.fromisoformat(args.date), seed=args.seed, symbols=args.symbols)
    order = sim.time_order
    ts, sym = sim.ts[order], sim.sym[order]
    px, qty, cum = sim.px[order], sim.qty[order], sim.cum[order]
    store = HeartbeatStore(redis_client(), clock=clock.now)
    seq = 0
    last_trade = [None]

    def write_until(first: int, now_us: int) -> int:
        nonlocal seq
        last = int(np.searchsorted(ts, now_us, side="left"))
        by_file: dict[Path, list[str]] = {}
        for i in range(first, last):
            seq += 1
            at = from_us(int(ts[i]))
            by_file.setdefault(trades_path(args.archive, args.collector, at), []).append(
                trade_line(
                    "kis",
                    sim.codes[sym[i]],
                    int(ts[i]),
                    int(ts[i]) + 5_000,
                    int(px[i]),
                    int(qty[i]),
                    int(cum[i]),
                    seq,
                )
            )
            last_trade[0] = at
        for path, lines in by_file.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write("".join(lines))
        return last

    now = clock.now()
    position = int(np.searchsorted(ts, to_us(now), side="left"))
    if args.history:
        position = write_until(0, to_us(now))
        beat_at = sim.session.open - timedelta(minutes=5)
        while beat_at < now:
            store.beat(
                Heartbeat(
                    args.collector,
                    "sim",
                    0,
                    sim.session.open - timedelta(minutes=5),
                    beat_at,
                    tuple(sim.codes),
                    last_trade[0],
                    interval_s=5.0,
                )
            )
            beat_at += timedelta(seconds=5)
        store.beat(
            Heartbeat(
                args.collector,
                "sim",
                0,
                sim.session.open - timedelta(minutes=5),
                now,
                tuple(sim.codes),
                last_trade[0],
                interval_s=5.0,
            )
        )
    publisher = HeartbeatPublisher(
        store,
        args.collector,
        lambda: Snapshot(tuple(sim.codes), last_trade[0]),
        interval_s=args.interval,
        clock=clock.now,
    )
    publisher.start()
    print(f"ready {clock.now().isoformat()}", flush=True)
    while True:
        position = write_until(position, to_us(clock.now()))
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
