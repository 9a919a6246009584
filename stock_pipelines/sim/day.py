"""A deterministic synthetic KRX trading day: every trade of the session, as numpy columns.

Each symbol's trades come from its own random stream, seeded by (seed, date, symbol code), and
its activity depends only on its rank in the universe, so a 40-symbol day is exactly the first
40 symbols of the 2,700-symbol day with the same seed and date, and a single symbol of a past
day can be generated on its own (the REST history endpoints do that). Prices start from the
previous trading day's close and end on the day's close, both from `daily_anchor`, so days chain.

Session rules (docs/architecture.md "Domain facts"; `market.calendar`):
- one opening print at the session open (the pre-open call auction's single price);
- continuous trades in [open, closing auction start), at whole seconds (KIS sends HHMMSS);
- no trade during the closing auction, then one closing print at the close;
- prices on the KRX tick-size grid (2023 rules) within the daily +-30 % limit.
"""

from __future__ import annotations

import functools
import threading
import zlib
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from stock_pipelines.market import Session
from stock_pipelines.market.segments import US, to_us
from stock_pipelines.sim.daily_anchor import day_closes
from stock_pipelines.sim.sessions import trading_session
from stock_pipelines.sim.tick_grid import price_limits, tick_round, tick_size, to_tick_grid  # noqa: F401 (re-exported)

DEFAULT_SYMBOLS = 40
MAX_SYMBOLS = 9_999

# The most active symbols are real KRX codes (approximate reference prices, for realism only).
REAL_SYMBOLS: tuple[tuple[str, str, int], ...] = (
    ("005930", "삼성전자", 70_000),
    ("000660", "SK하이닉스", 200_000),
    ("373220", "LG에너지솔루션", 350_000),
    ("207940", "삼성바이오로직스", 900_000),
    ("005380", "현대차", 210_000),
    ("000270", "기아", 95_000),
    ("068270", "셀트리온", 180_000),
    ("005490", "POSCO홀딩스", 300_000),
    ("035420", "NAVER", 200_000),
    ("105560", "KB금융", 80_000),
    ("055550", "신한지주", 50_000),
    ("012330", "현대모비스", 250_000),
    ("035720", "카카오", 40_000),
    ("051910", "LG화학", 300_000),
    ("006400", "삼성SDI", 250_000),
    ("028260", "삼성물산", 130_000),
    ("066570", "LG전자", 90_000),
    ("086790", "하나금융지주", 60_000),
    ("032830", "삼성생명", 90_000),
    ("015760", "한국전력", 25_000),
    ("017670", "SK텔레콤", 55_000),
    ("034730", "SK", 150_000),
    ("096770", "SK이노베이션", 110_000),
    ("003550", "LG", 75_000),
    ("033780", "KT&G", 100_000),
    ("323410", "카카오뱅크", 22_000),
    ("247540", "에코프로비엠", 150_000),
    ("086520", "에코프로", 80_000),
    ("011200", "HMM", 18_000),
    ("010130", "고려아연", 500_000),
)


def universe(size: int = DEFAULT_SYMBOLS) -> list[tuple[str, str]]:
    """(code, name) of the first `size` symbols, most active first."""
    if not 1 <= size <= MAX_SYMBOLS:
        raise ValueError(f"universe size must be 1..{MAX_SYMBOLS}, not {size}")
    real = [(code, name) for code, name, _ in REAL_SYMBOLS[:size]]
    synthetic = [(f"9{i:04d}0", f"SIM{i:04d}") for i in range(size - len(real))]
    return real + synthetic


def _reference_price(code: str) -> int | None:
    return next((price for c, _, price in REAL_SYMBOLS if c == code), None)


@dataclass(frozen=True)
class SymbolTrades:
    """One symbol's trades of one day, in time order."""

    code: str
    prev_close: int
    ts: np.ndarray  # int64 epoch microseconds
    px: np.ndarray  # int64 KRW
    qty: np.ndarray  # int64 shares
    cum: np.ndarray  # int64 cumulative volume after the trade
    side: np.ndarray  # int8: 1 buyer-initiated, 5 seller-initiated (KIS CCLD_DVSN)


@dataclass(frozen=True)
class MinuteBars:
    """Minute bars, oldest first, start-labelled (Session.minute_bar_starts convention)."""

    start: np.ndarray  # int64 epoch microseconds of the bar's first second
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    value: np.ndarray  # KRW traded in the bar
    cum: np.ndarray  # cumulative day volume at the bar's last trade

    def __len__(self) -> int:
        return len(self.start)


@functools.lru_cache(maxsize=64)
def _session_shape(open_: datetime, auction: datetime, close: datetime):
    """(open µs, continuous seconds, close offset s, minute start offsets, minute weights)."""
    continuous_s = int((auction - open_).total_seconds())
    minutes = continuous_s // 60
    m = np.arange(minutes)
    profile = 1.0 + 2.5 * np.exp(-m / 20.0) + 1.5 * np.exp(-(minutes - 1 - m) / 25.0)
    profile /= profile.sum()
    return to_us(open_), continuous_s, int((close - open_).total_seconds()), m * 60, profile


def generate_symbol(
    day: date, seed: int, code: str, rank: int, session: Session | None = None, activity: float = 1.0
) -> SymbolTrades:
    """One symbol's day; depends only on (day, seed, code, rank, activity)."""
    session = session or trading_session(day)
    if not 0 < activity <= 1_000:
        raise ValueError(f"activity must be in (0, 1000], not {activity}")
    rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, day.toordinal(), zlib.crc32(code.encode())]))

    real_reference = _reference_price(code)
    reference = real_reference
    if reference is None:
        reference = float(np.clip(rng.lognormal(np.log(20_000), 1.1), 1_100, 900_000))
    # Order sizes scale with this day-drawn level (as before days were chained, so trade times,
    # quantities and cumulative volumes are unchanged); prices follow the chained closes.
    size_reference = tick_round(reference * np.exp(rng.normal(0, 0.03)))
    prev_close, close = day_closes(seed, code, day, real_reference)
    open_us, continuous_s, close_s, minute_starts, profile = _session_shape(
        session.open, session.closing_auction_start, session.close
    )

    # Heavy-tailed activity: a Zipf-like rate by rank, jittered per symbol and day, on a U-shaped
    # intraday profile (busy after the open and before the close).
    rate = activity * 3.0 * (rank + 1) ** -0.9 * rng.lognormal(0.0, 0.25)  # trades per second
    count = int(rng.poisson(rate * continuous_s))
    per_minute = rng.multinomial(count, profile)
    offsets = np.repeat(minute_starts, per_minute) + rng.integers(0, 60, size=count)
    offsets.sort(kind="stable")  # sorted minute runs: only each minute's seconds need ordering
    seconds = np.concatenate(([0], offsets, [close_s])).astype(np.int64)

    n = len(seconds)
    day_vol = rng.uniform(0.008, 0.03)
    steps = rng.standard_normal(n) * (day_vol / np.sqrt(n))
    steps[0] = rng.normal(0, 0.01)  # the opening gap
    walk = np.cumsum(steps)
    # Bend the walk (a Brownian bridge) so the closing print lands on the day's close.
    walk += (np.log(close / prev_close) - walk[-1]) * (np.arange(1, n + 1) / n)
    low, high = price_limits(prev_close)
    px = np.clip(to_tick_grid(prev_close * np.exp(walk)), low, high)
    px[-1] = close

    typical = max(1.0, 3_000_000 / size_reference)  # shares in a few-million-won order
    qty = np.maximum(1, np.rint(rng.lognormal(np.log(typical), 1.0, size=n))).astype(np.int64)
    # Auction prints are large: minutes of continuous volume at once (the close more than the open).
    minute_volume = typical * np.exp(0.5) * max(rate, 1 / 60) * 60
    qty[0] = max(1, int(minute_volume * rng.uniform(1, 4)))
    qty[-1] = max(1, int(minute_volume * rng.uniform(3, 10)))
    side = np.where(rng.random(n) < 0.5, 1, 5).astype(np.int8)

    return SymbolTrades(
        code=code,
        prev_close=prev_close,
        ts=open_us + seconds * US,
        px=px,
        qty=qty,
        cum=np.cumsum(qty),
        side=side,
    )


def bars_from_trades(ts: np.ndarray, px: np.ndarray, qty: np.ndarray, cum: np.ndarray, open_us: int) -> MinuteBars:
    """Aggregate time-ordered trades into start-labelled minute bars (empty minutes have no bar)."""
    if len(ts) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return MinuteBars(empty, empty, empty, empty, empty, empty, empty, empty)
    minute = (ts - open_us) // (60 * US)
    first = np.flatnonzero(np.concatenate(([True], minute[1:] != minute[:-1])))
    last = np.concatenate((first[1:] - 1, [len(ts) - 1]))
    return MinuteBars(
        start=open_us + minute[first] * 60 * US,
        open=px[first],
        high=np.maximum.reduceat(px, first),
        low=np.minimum.reduceat(px, first),
        close=px[last],
        volume=np.add.reduceat(qty, first),
        value=np.add.reduceat(px * qty, first),
        cum=cum[last],
    )


def _release_free_memory() -> None:
    """Hand freed heap back to the OS (glibc keeps a worker thread's arena otherwise)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class SimDay:
    """Every trade of one session for a universe, columnar, symbol-major, plus a time index.

    With `eager=False` only the universe is set up: a symbol's trades are generated when first
    asked for, and the whole-universe columns (`sym`, `ts`, ..., `time_order`) by `build()`,
    which the exchange runs on a background thread so it answers REST calls at once.
    """

    def __init__(
        self, day: date, seed: int = 0, symbols: int = DEFAULT_SYMBOLS, activity: float = 1.0, eager: bool = True
    ) -> None:
        self.day = day
        self.seed = seed
        self.activity = activity
        self.session = trading_session(day)
        self.open_us = to_us(self.session.open)
        self.close_us = to_us(self.session.close)
        members = universe(symbols)
        self.codes = [code for code, _ in members]
        self.names = [name for _, name in members]
        self._index = {code: i for i, code in enumerate(self.codes)}
        self._bars_cache: dict[str, MinuteBars] = {}
        self._symbols: dict[int, SymbolTrades] = {}  # generated ahead of build()
        self._build_lock = threading.Lock()
        self._built = threading.Event()
        self._building = False
        self._building_lock = threading.Lock()  # not _build_lock: a build in progress must not block callers
        if eager:
            self.build()

    @property
    def ready(self) -> bool:
        return self._built.is_set()

    def _generate(self, rank: int) -> SymbolTrades:
        return generate_symbol(self.day, self.seed, self.codes[rank], rank, self.session, self.activity)

    def build_in_background(self) -> None:
        """Start `build()` on a daemon thread, once."""
        with self._building_lock:
            if self._building or self._built.is_set():
                return
            self._building = True
        threading.Thread(target=self.build, name=f"sim-day-build-{self.day}", daemon=True).start()

    def build(self) -> SimDay:
        """Build the whole-universe columns (idempotent, thread-safe)."""
        with self._build_lock:
            if self._built.is_set():
                return self
            parts: list[SymbolTrades | None] = [
                self._symbols.get(rank) or self._generate(rank) for rank in range(len(self.codes))
            ]
            self.prev_close = np.array([p.prev_close for p in parts], dtype=np.int64)
            sizes = np.array([len(p.ts) for p in parts], dtype=np.int64)
            self.offsets = np.concatenate(([0], np.cumsum(sizes)))
            total = int(self.offsets[-1])
            index_type = np.int16 if len(self.codes) < 2**15 else np.int32
            self.sym = np.repeat(np.arange(len(self.codes), dtype=index_type), sizes)
            self.ts = np.empty(total, np.int64)
            self.px = np.empty(total, np.int32)  # < 2**31 won
            self.qty = np.empty(total, np.int32)
            self.cum = np.empty(total, np.int64)
            self.side = np.empty(total, np.int8)
            for rank in range(len(parts)):  # fill in place, freeing each part: a lower peak
                part, lo, hi = parts[rank], self.offsets[rank], self.offsets[rank + 1]
                self.ts[lo:hi], self.px[lo:hi], self.qty[lo:hi] = part.ts, part.px, part.qty
                self.cum[lo:hi], self.side[lo:hi] = part.cum, part.side
                parts[rank] = None
            del parts
            # Global time order; ties (same second) keep symbol order, then trade order. Seconds
            # since the open fit in 16 bits (a session is < 9 h): numpy's stable sort is then a radix sort.
            span_fits = self.close_us - self.open_us < 32_000 * US
            seconds = ((self.ts - self.open_us) // US).astype(np.int16 if span_fits else np.int64)
            self.time_order = np.argsort(seconds, kind="stable").astype(np.int32 if len(self.ts) < 2**31 else np.int64)
            self.ts_sorted = self.ts[self.time_order]
            self._built.set()
            self._symbols.clear()
        _release_free_memory()
        return self

    def __len__(self) -> int:
        return len(self.build().ts)

    def symbol_index(self, code: str) -> int:
        try:
            return self._index[code]
        except KeyError:
            raise KeyError(f"symbol {code!r} is not in the simulated universe") from None

    def has_symbol(self, code: str) -> bool:
        return code in self._index

    def name(self, code: str) -> str:
        return self.names[self.symbol_index(code)]

    def trades(self, code: str, until_us: int | None = None) -> SymbolTrades:
        """The symbol's trades in time order, those with ts <= until_us when given."""
        i = self.symbol_index(code)
        if not self._built.is_set():
            trades = self._symbols.get(i)
            if trades is None:
                trades = self._symbols[i] = self._generate(i)
            if until_us is None:
                return trades
            hi = int(np.searchsorted(trades.ts, until_us, side="right"))
            return SymbolTrades(code, trades.prev_close, trades.ts[:hi], trades.px[:hi], trades.qty[:hi],
                                trades.cum[:hi], trades.side[:hi])
        lo, hi = self.offsets[i], self.offsets[i + 1]
        if until_us is not None:
            hi = lo + int(np.searchsorted(self.ts[lo:hi], until_us, side="right"))
        return SymbolTrades(
            code=code,
            prev_close=int(self.prev_close[i]),
            ts=self.ts[lo:hi],
            px=self.px[lo:hi].astype(np.int64),
            qty=self.qty[lo:hi].astype(np.int64),
            cum=self.cum[lo:hi],
            side=self.side[lo:hi],
        )

    def minute_bars(self, code: str, until_us: int | None = None) -> MinuteBars:
        """Ground-truth bars from the trades (as of until_us: the newest bar may still be forming)."""
        if until_us is None or until_us >= self.close_us:
            return self._full_bars(code)
        t = self.trades(code, until_us)
        return bars_from_trades(t.ts, t.px, t.qty, t.cum, self.open_us)

    def _full_bars(self, code: str) -> MinuteBars:
        bars = self._bars_cache.get(code)
        if bars is None:
            t = self.trades(code)
            bars = self._bars_cache[code] = bars_from_trades(t.ts, t.px, t.qty, t.cum, self.open_us)
        return bars

    def indices_between(self, after_us: int, until_us: int) -> np.ndarray:
        """Symbol-major indices of trades with after_us < ts <= until_us, in time order."""
        self.build()
        lo = np.searchsorted(self.ts_sorted, after_us, side="right")
        hi = np.searchsorted(self.ts_sorted, until_us, side="right")
        return self.time_order[lo:hi]

    def trades_frame(self):
        """All trades as a polars DataFrame (sym, ts, px, qty, cum), time order."""
        import polars as pl

        order = self.build().time_order
        return pl.DataFrame(
            {
                "sym": pl.Series(np.array(self.codes)[self.sym[order]]),
                "ts": self.ts[order],
                "px": self.px[order].astype(np.int64),
                "qty": self.qty[order].astype(np.int64),
                "cum": self.cum[order],
            }
        )

    def nbytes(self) -> int:
        self.build()
        arrays = (self.sym, self.ts, self.px, self.qty, self.cum, self.side, self.time_order, self.ts_sorted)
        return sum(a.nbytes for a in arrays)


@functools.lru_cache(maxsize=256)
def symbol_history_day(day: date, seed: int, code: str, rank: int, activity: float = 1.0) -> SymbolTrades:
    """A past (or any) day's trades for one symbol, identical to that day's SimDay slice."""
    return generate_symbol(day, seed, code, rank, trading_session(day), activity)
