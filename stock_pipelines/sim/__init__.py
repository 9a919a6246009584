"""The simulated KRX exchange: deterministic synthetic days and a KIS/Kiwoom-compatible server.

- `day.SimDay`: every trade of one session (columnar numpy), ground-truth minute bars; days chain
  through `daily_anchor` (each previous close is the close before) on the `tick_grid`.
- `clock.SimClock`: simulated time across sessions, nights run or skipped; `day_cache.DayCache`:
  the days held, generated on first use, least recently used evicted.
- `server.Exchange`: the Starlette app, an API a module (`kis_rest`, `kis_websocket`, `kiwoom_rest`,
  `admin_api`) over one `exchange_state.ExchangeState`; `exchange_config.ExchangeConfig` sets it up.
- `runner.run_exchange` / `run_exchange_process`: serve it on 127.0.0.1 for tests and the demo.
- `archive_day.write_day_archive`: a day as a collector would have archived it (`sim day`).

Protocol notes and what was verified: docs/simulator.md. No Dagster imports here.
"""
