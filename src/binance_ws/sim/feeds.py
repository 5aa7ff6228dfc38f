"""Spot market streams built from engine events, in Binance's exact payload shapes (PROTOCOL.md section 4).

Real-time streams (``trade``, ``aggTrade``, ``bookTicker``) are published from the engine's listener
calls; periodic ones (depth, tickers, klines, avgPrice) from :meth:`Feeds.tick`, which the simulator's
driver calls every ~10 ms, each on its cadence (``SimConfig.depth_fast_s`` etc.). A payload is only built
for a stream that has subscribers, except the diff-depth windows: their pending changes are always tracked
(two dict writes per level change) so that a new subscriber's first diff starts right after the previous
window, i.e. right after a snapshot-able id.

A diff is pushed only for a window in which the book changed: like Binance (PROTOCOL 4.12, "intervals
with no change produce no event"), a quiet symbol's ``@depth`` sends nothing. Partial depth and tickers
are snapshots and keep their cadence. A tick touches only the symbols whose book changed and those with a
subscriber, so thousands of listed symbols cost nothing while nobody watches them.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from binance_ws.enums import DEPTH_LEVELS, KLINE_INTERVALS_MS, TICKER_WINDOWS
from binance_ws.sim.clock import SimClock
from binance_ws.sim.config import SimConfig
from binance_ws.sim.exchange import (
    SCALE,
    AggTrade,
    Exchange,
    SymbolBook,
    Trade,
    WindowStats,
    bar_close,
    bar_open,
    fmt,
)
from binance_ws.sim.hub import StreamHub

# Push cadences (PROTOCOL 4.5, 4.6-4.8, 4.10-4.12): Binance's, the defaults of SimConfig's *_s periods.
DEPTH_FAST_MS = 100
PERIODIC_MS = 1000
KLINE_PUSH_MS: dict[str, int] = {interval: 2000 for interval in KLINE_INTERVALS_MS} | {"1s": 1000}
#: Kline stream time-zone suffixes and their offsets (PROTOCOL 4.5: ``@+08:00`` since 2024-05-30).
KLINE_ZONES: dict[str, int] = {"": 0, "@+08:00": 8 * 3_600_000}
#: Rolling-window ticker sizes (PROTOCOL 4.8) and the 24 h ticker window (PROTOCOL 4.6/4.7).
TICKER_WINDOWS_MS: dict[str, int] = {"1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
DAY_MS = 86_400_000
#: Averaging interval of ``@avgPrice`` (PROTOCOL 4.10).
AVG_PRICE_INTERVAL = "5m"

#: Undocumented speed forms of ``!miniTicker@arr`` and their cadence in ticker pushes. python-binance's
#: ``miniticker_socket()`` asks ``!miniTicker@arr@<n>ms``; on Binance ``@1000ms`` and ``@3000ms`` stream
#: while ``@5000ms`` connects and stays silent (python-binance #267), so these two are served.
MINI_ARR_SPEEDS: dict[str, int] = {"!miniTicker@arr@1000ms": 1, "!miniTicker@arr@3000ms": 3}
#: Per-symbol stream suffixes served today (PROTOCOL 4.1-4.12, minus blockTrade/referencePrice).
_SYMBOL_SUFFIXES: frozenset[str] = frozenset(
    ["trade", "aggTrade", "bookTicker", "miniTicker", "ticker", "avgPrice", "depth", "depth@100ms"]
    + [f"depth{n}" for n in DEPTH_LEVELS] + [f"depth{n}@100ms" for n in DEPTH_LEVELS]
    + [f"ticker_{w}" for w in TICKER_WINDOWS]
    + [f"kline_{i}{z}" for i in KLINE_INTERVALS_MS for z in KLINE_ZONES]
)
#: All-market streams (PROTOCOL 4.6, 4.8); the retired ones (4.13) only with ``legacy_streams``.
_MARKET_STREAMS: frozenset[str] = frozenset(
    ["!miniTicker@arr", *MINI_ARR_SPEEDS] + [f"!ticker_{w}@arr" for w in TICKER_WINDOWS])
LEGACY_TICKER_ARR = "!ticker@arr"
LEGACY_BOOK_TICKER = "!bookTicker"


class _Bar:
    """One kline bar being built for a subscribed ``kline_<i>[@+08:00]`` stream."""

    __slots__ = ("close", "close_time", "count", "first_id", "high", "interval", "last_id", "low", "name",
                 "open", "open_time", "pending_closed", "quote_raw", "taker_quote_raw", "taker_volume", "tz",
                 "volume")

    def __init__(self, name: str, interval: str, tz: int, open_time: int, prev_close: int) -> None:
        self.name = name
        self.interval = interval
        self.tz = tz
        #: The bar that closed and still owes its ``x: true`` push.
        self.pending_closed: dict[str, Any] | None = None
        self._start(open_time, prev_close)

    def _start(self, open_time: int, prev_close: int) -> None:
        self.open_time = open_time
        self.close_time = bar_close(self.interval, open_time, self.tz)
        self.open = self.high = self.low = self.close = prev_close
        self.volume = self.quote_raw = self.taker_volume = self.taker_quote_raw = 0
        self.count = 0
        self.first_id = self.last_id = -1

    def roll(self, t_ms: int) -> None:
        """Close this bar (keeping its final body for the closing push) and open the one holding ``t_ms``."""
        self.pending_closed = self.body(True)
        self._start(bar_open(self.interval, t_ms, self.tz), self.close)

    def add(self, trade: Trade) -> None:
        if trade.time > self.close_time:
            self.roll(trade.time)
        p = trade.price
        if self.count == 0:
            self.open = self.high = self.low = p
            self.first_id = trade.id
        elif p > self.high:
            self.high = p
        elif p < self.low:
            self.low = p
        self.close = p
        self.last_id = trade.id
        self.count += 1
        self.volume += trade.qty
        self.quote_raw += p * trade.qty
        if not trade.buyer_is_maker:
            self.taker_volume += trade.qty
            self.taker_quote_raw += p * trade.qty

    def body(self, closed: bool) -> dict[str, Any]:
        return {"t": self.open_time, "T": self.close_time, "s": "", "i": self.interval, "f": self.first_id,
                "L": self.last_id, "o": fmt(self.open), "c": fmt(self.close), "h": fmt(self.high),
                "l": fmt(self.low), "v": fmt(self.volume), "n": self.count, "x": closed,
                "q": fmt(self.quote_raw // SCALE), "V": fmt(self.taker_volume),
                "Q": fmt(self.taker_quote_raw // SCALE), "B": "0"}


class _SymbolFeed:
    """Stream names and window state of one symbol."""

    def __init__(self, book: SymbolBook, index: int) -> None:
        #: Position in the exchange's symbol list (ticks serve symbols in this order).
        self.index = index
        self.book = book
        self.symbol = book.symbol
        low = book.symbol.lower()
        self.trade = f"{low}@trade"
        self.agg = f"{low}@aggTrade"
        self.book_ticker = f"{low}@bookTicker"
        self.depth_slow = f"{low}@depth"
        self.depth_fast = f"{low}@depth@100ms"
        self.partial_slow = {n: f"{low}@depth{n}" for n in DEPTH_LEVELS}
        self.partial_fast = {n: f"{low}@depth{n}@100ms" for n in DEPTH_LEVELS}
        self.mini = f"{low}@miniTicker"
        self.ticker = f"{low}@ticker"
        self.windows = {w: f"{low}@ticker_{w}" for w in TICKER_WINDOWS}
        self.avg = f"{low}@avgPrice"
        self.klines = [(f"{low}@kline_{i}{z}", i, tz)
                       for i in KLINE_INTERVALS_MS for z, tz in KLINE_ZONES.items()]
        #: Pending diff-depth changes per cadence: key = price for bids, ~price (negative) for asks.
        self.pending_fast: dict[int, int] = {}
        self.pending_slow: dict[int, int] = {}
        #: First update id of each open diff window (``U``).
        self.first_fast = 0
        self.first_slow = 0
        self.last_top: tuple[int, int, int, int] | None = None
        #: A trade happened since the last 1000 ms push (the ``@arr`` streams carry only changed symbols).
        self.changed = False
        self.bars: dict[str, _Bar] = {}


class Feeds:
    """Every spot market stream of the simulated exchange.

    ``is_valid_stream(name)`` says whether a name is served; ``tick(now_ms)`` publishes what is due.
    """

    def __init__(self, exchange: Exchange, hub: StreamHub, clock: SimClock, config: SimConfig) -> None:
        self.exchange = exchange
        self.hub = hub
        self.clock = clock
        self.config = config
        self._feeds = {sym: _SymbolFeed(book, i) for i, (sym, book) in enumerate(exchange.symbols.items())}
        self._by_lower = {sym.lower(): sym for sym in exchange.symbols}
        self._feed_by_lower = {sym.lower(): feed for sym, feed in self._feeds.items()}
        #: Cadences in ms (SimConfig; at least 1 ms).
        self.depth_fast_ms = _ms(config.depth_fast_s)
        self.depth_ms = _ms(config.depth_s)
        self.ticker_ms = _ms(config.ticker_s)
        self.kline_ms = _ms(config.kline_s)
        self._next_fast: int | None = None
        self._next_slow: int | None = None
        self._next_ticker: int | None = None
        self._next_kline: int | None = None
        #: Symbols whose book changed in the open fast / slow diff window.
        self._dirty_fast: dict[_SymbolFeed, None] = {}
        self._dirty_slow: dict[_SymbolFeed, None] = {}
        #: Symbols that traded since the last ticker push (the ``@arr`` streams carry only those).
        self._changed: dict[_SymbolFeed, None] = {}
        #: Per speed form of ``!miniTicker@arr``: ticker pushes since its last push, and the symbols that
        #: traded in them.
        self._mini_arr: dict[str, tuple[int, dict[_SymbolFeed, None]]] = {n: (0, {}) for n in MINI_ARR_SPEEDS}
        #: Symbols holding kline bars (bars follow trades until their stream's last subscriber leaves).
        self._barred: dict[_SymbolFeed, None] = {}
        #: Symbols with a subscribed stream, in symbol order, as of hub version ``_watched_version``.
        self._watched: list[_SymbolFeed] = []
        self._watched_version = -1
        exchange.add_listener(self)

    # -- names ---------------------------------------------------------------------------------------
    def is_valid_stream(self, name: str) -> bool:
        """Whether ``name`` is a market stream served here (lowercase symbol, known suffix)."""
        if name.startswith("!"):
            if name in _MARKET_STREAMS:
                return True
            return self.config.legacy_streams and name in (LEGACY_TICKER_ARR, LEGACY_BOOK_TICKER)
        sym, sep, suffix = name.partition("@")
        return bool(sep) and sym in self._by_lower and suffix in _SYMBOL_SUFFIXES

    # -- engine events ------------------------------------------------------------------------------
    def on_level(self, book: SymbolBook, is_bid: bool, price: int, qty: int) -> None:
        st = self._feeds[book.symbol]
        key = price if is_bid else ~price
        fast = st.pending_fast
        if not fast:
            st.first_fast = book.update_id
            self._dirty_fast[st] = None
        fast[key] = qty
        slow = st.pending_slow
        if not slow:
            st.first_slow = book.update_id
            self._dirty_slow[st] = None
        slow[key] = qty
        # A change behind the best price of its side cannot move the top of book.
        if is_bid:
            if book.bid_keys and price < book.bid_keys[-1]:
                return
        elif book.ask_keys and price > -book.ask_keys[-1]:
            return
        hub = self.hub
        if hub.has_subscribers(st.book_ticker) or (
                self.config.legacy_streams and hub.has_subscribers(LEGACY_BOOK_TICKER)):
            self._book_ticker(st)

    def on_trade(self, book: SymbolBook, trade: Trade) -> None:
        st = self._feeds[book.symbol]
        st.changed = True
        self._changed[st] = None
        for bar in st.bars.values():
            bar.add(trade)
        if self.hub.has_subscribers(st.trade):
            self.hub.publish(st.trade, {
                "e": "trade", "E": trade.time, "s": st.symbol, "t": trade.id, "p": fmt(trade.price),
                "q": fmt(trade.qty), "T": trade.time, "m": trade.buyer_is_maker, "M": True})

    def on_agg_trade(self, book: SymbolBook, agg: AggTrade) -> None:
        st = self._feeds[book.symbol]
        if self.hub.has_subscribers(st.agg):
            self.hub.publish(st.agg, {
                "e": "aggTrade", "E": agg.time, "s": st.symbol, "a": agg.id, "p": fmt(agg.price),
                "q": fmt(agg.qty), "f": agg.first_id, "l": agg.last_id, "T": agg.time,
                "m": agg.buyer_is_maker, "M": True})

    def _book_ticker(self, st: _SymbolFeed) -> None:
        book = st.book
        bid = book.best_bid() or (0, 0)
        ask = book.best_ask() or (0, 0)
        top = (bid[0], bid[1], ask[0], ask[1])
        if top == st.last_top:
            return
        st.last_top = top
        payload = {"u": book.update_id, "s": st.symbol, "b": fmt(bid[0]), "B": fmt(bid[1]), "a": fmt(ask[0]),
                   "A": fmt(ask[1])}
        self.hub.publish(st.book_ticker, payload)
        if self.config.legacy_streams:
            self.hub.publish(LEGACY_BOOK_TICKER, payload)

    # -- periodic streams -----------------------------------------------------------------------------
    def tick(self, now_ms: int) -> None:
        """Publish every periodic stream that is due at ``now_ms`` (call at least every 100 ms)."""
        if self._next_fast is None or now_ms >= self._next_fast:
            self._next_fast = _next(self._next_fast, now_ms, self.depth_fast_ms)
            dirty = self._dirty_fast
            self._dirty_fast = {}
            for st in self._serve(dirty):
                self._flush_depth(st, now_ms, st.pending_fast, st.first_fast, st.depth_fast, st.partial_fast)
                if st in dirty:
                    st.pending_fast = {}
        if self._next_slow is None or now_ms >= self._next_slow:
            self._next_slow = _next(self._next_slow, now_ms, self.depth_ms)
            dirty = self._dirty_slow
            self._dirty_slow = {}
            for st in self._serve(dirty):
                self._flush_depth(st, now_ms, st.pending_slow, st.first_slow, st.depth_slow, st.partial_slow)
                if st in dirty:
                    st.pending_slow = {}
        ticker_due = self._next_ticker is None or now_ms >= self._next_ticker
        if ticker_due:
            self._next_ticker = _next(self._next_ticker, now_ms, self.ticker_ms)
        kline_due = self._next_kline is None or now_ms >= self._next_kline
        if kline_due:
            self._next_kline = _next(self._next_kline, now_ms, self.kline_ms)
        if ticker_due or kline_due:
            for st in self._serve(self._barred):
                if ticker_due:
                    self._flush_tickers(st, now_ms)
                self._flush_klines(st, now_ms, ticker_due, kline_due)
        if ticker_due:
            self._flush_arrays(now_ms)
            for st in self._changed:
                st.changed = False
            self._changed = {}

    def _serve(self, extra: dict[_SymbolFeed, None]) -> list[_SymbolFeed]:
        """The symbols with a subscribed stream, plus ``extra``, in symbol order."""
        if self.hub.version != self._watched_version:
            self._watched_version = self.hub.version
            feeds = self._feed_by_lower
            watched = {feeds[name.partition("@")[0]] for name in self.hub.subscribed_streams()
                       if name.partition("@")[0] in feeds}
            self._watched = sorted(watched, key=_index)
        if not extra:
            return self._watched
        if not self._watched:
            return sorted(extra, key=_index)
        return sorted(set(self._watched).union(extra), key=_index)

    def _flush_depth(self, st: _SymbolFeed, now: int, pending: dict[int, int], first: int, diff_name: str,
                     partial_names: dict[int, str]) -> None:
        hub = self.hub
        if pending and hub.has_subscribers(diff_name):
            bids = sorted((k, q) for k, q in pending.items() if k >= 0)
            asks = sorted((~k, q) for k, q in pending.items() if k < 0)
            hub.publish(diff_name, {
                "e": "depthUpdate", "E": now, "s": st.symbol, "U": first, "u": st.book.update_id,
                "b": [[fmt(p), fmt(q)] for p, q in reversed(bids)], "a": [[fmt(p), fmt(q)] for p, q in asks]})
        for n, name in partial_names.items():
            if hub.has_subscribers(name):
                b, a = st.book.top(n)
                hub.publish(name, {"lastUpdateId": st.book.update_id, "bids": b, "asks": a})

    def _flush_tickers(self, st: _SymbolFeed, now: int) -> None:
        hub = self.hub
        if hub.has_subscribers(st.mini):
            hub.publish(st.mini, self.mini_ticker(st.symbol, now))
        if hub.has_subscribers(st.ticker):
            hub.publish(st.ticker, self.ticker_24h(st.symbol, now))
        for w, name in st.windows.items():
            if hub.has_subscribers(name):
                hub.publish(name, self.window_ticker(st.symbol, w, now))
        if hub.has_subscribers(st.avg):
            book = st.book
            hub.publish(st.avg, {"e": "avgPrice", "E": now, "s": st.symbol, "i": AVG_PRICE_INTERVAL,
                                 "w": fmt(book.avg_price(now)), "T": book.last_trade_time})

    def _flush_klines(self, st: _SymbolFeed, now: int, one_second_due: bool, others_due: bool) -> None:
        hub = self.hub
        for name, interval, tz in st.klines:
            if not (one_second_due if interval == "1s" else others_due):
                continue
            bar = st.bars.get(name)
            if not hub.has_subscribers(name):
                if bar is not None:
                    del st.bars[name]
                    if not st.bars:
                        self._barred.pop(st, None)
                continue
            if bar is None:
                bar = st.bars[name] = self._new_bar(st.book, name, interval, tz, now)
                self._barred[st] = None
            if now > bar.close_time:
                bar.roll(now)
            if bar.pending_closed is not None:
                hub.publish(name, self._kline_event(st.symbol, now, bar.pending_closed))
                bar.pending_closed = None
            hub.publish(name, self._kline_event(st.symbol, now, bar.body(False)))

    @staticmethod
    def _kline_event(symbol: str, now: int, body: dict[str, Any]) -> dict[str, Any]:
        body["s"] = symbol
        return {"e": "kline", "E": now, "s": symbol, "k": body}

    @staticmethod
    def _new_bar(book: SymbolBook, name: str, interval: str, tz: int, now: int) -> _Bar:
        """A bar for a stream's first subscriber, back-filled from the retained trade history."""
        open_time = bar_open(interval, now, tz)
        prev_close = book.last_price
        backlog: list[Trade] = []
        for trade in reversed(book.trades):
            if trade.time < open_time:
                prev_close = trade.price
                break
            backlog.append(trade)
        bar = _Bar(name, interval, tz, open_time, prev_close)
        for trade in reversed(backlog):
            bar.add(trade)
        return bar

    def _flush_arrays(self, now: int) -> None:
        hub = self.hub
        changed = [st.symbol for st in sorted(self._changed, key=_index)]
        if hub.has_subscribers("!miniTicker@arr") and changed:
            hub.publish("!miniTicker@arr", [self.mini_ticker(s, now) for s in changed])
        for name, every in MINI_ARR_SPEEDS.items():
            if not hub.has_subscribers(name):
                self._mini_arr[name] = (0, {})
                continue
            ticks, seen = self._mini_arr[name]
            seen.update(self._changed)
            ticks += 1
            if ticks < every:
                self._mini_arr[name] = (ticks, seen)
                continue
            self._mini_arr[name] = (0, {})
            if seen:
                hub.publish(name, [self.mini_ticker(st.symbol, now) for st in sorted(seen, key=_index)])
        for w in TICKER_WINDOWS:
            name = f"!ticker_{w}@arr"
            if hub.has_subscribers(name) and changed:
                hub.publish(name, [self.window_ticker(s, w, now) for s in changed])
        if self.config.legacy_streams and hub.has_subscribers(LEGACY_TICKER_ARR) and changed:
            hub.publish(LEGACY_TICKER_ARR, [self.ticker_24h(s, now) for s in changed])

    # -- ticker payloads (also used by REST) ------------------------------------------------------------
    def mini_ticker(self, symbol: str, now: int) -> dict[str, Any]:
        """``24hrMiniTicker`` (PROTOCOL 4.6)."""
        st = self.exchange.symbols[symbol].stats(DAY_MS, now)
        return {"e": "24hrMiniTicker", "E": now, "s": symbol, "c": fmt(st.close), "o": fmt(st.open),
                "h": fmt(st.high), "l": fmt(st.low), "v": fmt(st.volume), "q": fmt(st.quote_raw // SCALE)}

    def ticker_24h(self, symbol: str, now: int) -> dict[str, Any]:
        """``24hrTicker`` (PROTOCOL 4.7)."""
        book = self.exchange.symbols[symbol]
        st = book.stats(DAY_MS, now)
        bid = book.best_bid() or (0, 0)
        ask = book.best_ask() or (0, 0)
        return {"e": "24hrTicker", "E": now, "s": symbol, "p": fmt(st.close - st.open),
                "P": percent(st.close - st.open, st.open), "w": fmt(st.weighted_avg),
                "x": fmt(st.prev_close), "c": fmt(st.close), "Q": fmt(st.last_qty), "b": fmt(bid[0]),
                "B": fmt(bid[1]), "a": fmt(ask[0]), "A": fmt(ask[1]), "o": fmt(st.open), "h": fmt(st.high),
                "l": fmt(st.low), "v": fmt(st.volume), "q": fmt(st.quote_raw // SCALE), "O": st.open_time,
                "C": now, "F": st.first_id, "L": st.last_id, "n": st.count}

    def window_ticker(self, symbol: str, window: str, now: int) -> dict[str, Any]:
        """``1hTicker``/``4hTicker``/``1dTicker`` (PROTOCOL 4.8)."""
        st = self.exchange.symbols[symbol].stats(TICKER_WINDOWS_MS[window], now)
        return {"e": f"{window}Ticker", "E": now, "s": symbol, "p": fmt(st.close - st.open),
                "P": percent(st.close - st.open, st.open), "o": fmt(st.open), "h": fmt(st.high),
                "l": fmt(st.low), "c": fmt(st.close), "w": fmt(st.weighted_avg), "v": fmt(st.volume),
                "q": fmt(st.quote_raw // SCALE), "O": st.open_time, "C": now, "F": st.first_id,
                "L": st.last_id, "n": st.count}


def percent(change: int, base: int) -> str:
    """A price change in percent with 3 decimals, as Binance's tickers show it (``"-1.284"``)."""
    if not base:
        return "0.000"
    value = (Decimal(change) * 100 / Decimal(base)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    return f"{value:.3f}" if value else "0.000"


def window_stats_fields(st: WindowStats) -> dict[str, str]:
    """Common REST ticker fields of a window (shared by /ticker/24hr and /ticker)."""
    return {"priceChange": fmt(st.close - st.open),
            "priceChangePercent": percent(st.close - st.open, st.open),
            "weightedAvgPrice": fmt(st.weighted_avg), "openPrice": fmt(st.open), "highPrice": fmt(st.high),
            "lowPrice": fmt(st.low), "lastPrice": fmt(st.close), "volume": fmt(st.volume),
            "quoteVolume": fmt(st.quote_raw // SCALE)}


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _index(st: _SymbolFeed) -> int:
    return st.index


def _next(previous: int | None, now: int, cadence: int) -> int:
    """The next push time on a fixed grid; a late tick re-anchors instead of bursting to catch up."""
    if previous is None:
        return now + cadence
    nxt = previous + cadence
    return nxt if nxt > now else now + cadence
