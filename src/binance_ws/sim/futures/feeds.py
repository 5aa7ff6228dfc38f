"""Futures market streams built from engine events, in Binance's futures payload shapes (PROTOCOL.md 8).

The same matching engine as spot feeds it (:class:`~binance_ws.sim.exchange.Exchange` listener calls);
what differs is declared by a :class:`~binance_ws.sim.futures.product.FuturesProduct`:

* **Update ids as Binance issues them** (PROTOCOL 5.2 [OBS]): one id space shared by every symbol of the
  product, advancing by a seeded step in :data:`ID_STEPS` per level change (the real ids also count other
  symbols' changes), so ``U`` is never the previous ``u`` + 1 and ``pu`` chains the events of one stream.
  ``bookTicker.u``, the diff and partial depth ids and REST ``lastUpdateId`` (:meth:`FuturesFeeds.
  depth_snapshot`) share it; ``T`` is the time of the last book change, ``E`` the push time.
* Prices and quantities use the symbol's precision (``"61800.20"``, ``"0.006"``; from its tick and step
  sizes), as the captures show; mark, index and funding numbers carry 8 decimals (PROTOCOL 8 example).
* Partial depth is a ``depthUpdate`` with ``U``/``u``/``pu`` and the top N levels (PROTOCOL 8).
* Mark price, funding and liquidations come from :mod:`binance_ws.sim.futures.mark`, observed once a
  second for every symbol (subscribed or not, as funding averages need the history).
* ``@trade`` is not in PROTOCOL 8's route lists, but the hftbacktest USD-M capture subscribes to it;
  it is served on ``/market`` with the capture's keys (``X`` = "MARKET", no ``M``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from itertools import islice
from typing import Any

from binance_ws.sim.clock import SimClock
from binance_ws.sim.exchange import SCALE, AggTrade, Exchange, SymbolBook, Trade, bar_close, bar_open
from binance_ws.sim.feeds import percent
from binance_ws.sim.futures.indexes import (
    DEFAULT_BUFFERS,
    SIM_COMPOSITE,
    SIM_COMPOSITE_WEIGHTS,
    STABLE_ASSETS,
    STABLE_BUFFERS,
    Component,
    asset_index,
    composite_index,
)
from binance_ws.sim.futures.mark import Liquidation, MarkModel, Positions
from binance_ws.sim.futures.product import (
    ALL_BOOK_TICKER_MS,
    ARRAY_MS,
    DEPTH_LEVELS,
    DEPTH_SPEEDS_MS,
    FORCE_ORDER_MS,
    INDEX_MS,
    KLINE_INTERVALS,
    MARKET_WIDE,
    FuturesProduct,
    Route,
    pair_of,
    precision,
    route_of_name,
)
from binance_ws.sim.hub import StreamHub

#: Step of the shared update id per level change, drawn (seeded) from this range: the real ids jump by
#: other symbols' changes (PROTOCOL 5.2 [OBS]: "U == prev u + 1 held for none"), so never by 1 here.
ID_STEPS = (2, 9)
#: First update id: the size of real USD-M BTCUSDT ids in 2024 (hftbacktest capture: 5123107832006).
FIRST_UPDATE_ID = 5_123_107_800_000
#: Size of the table of drawn id steps (a power of two).
_STEP_TABLE = 4096
DAY_MS = 86_400_000
#: How often the mark, funding and liquidation models observe the book.
MARK_SAMPLE_MS = 1000


def fixed(units: int, places: int) -> str:
    """Engine units (1e-8) as a decimal string with ``places`` decimals (truncated, as a tick/step
    multiple always is exact): ``fixed(6180020000000, 2) == "61800.20"``."""
    # Books reuse a small set of prices and sizes: a memo makes formatting a dict lookup (as exchange.fmt).
    memo_key = units * 16 + places
    text = _FIXED_MEMO.get(memo_key)
    if text is None:
        sign = "-" if units < 0 else ""
        q = abs(units) // 10 ** (8 - places)
        if places:
            digits = str(q).rjust(places + 1, "0")
            text = f"{sign}{digits[:-places]}.{digits[-places:]}"
        else:
            text = f"{sign}{q}"
        if len(_FIXED_MEMO) >= _FIXED_MEMO_SIZE:
            _FIXED_MEMO.clear()
        _FIXED_MEMO[memo_key] = text
    return text


_FIXED_MEMO: dict[int, str] = {}
_FIXED_MEMO_SIZE = 1 << 16


def _f8(value: float) -> str:
    return f"{value:.8f}"


class _Bar:
    """One kline bar (``kline_<i>`` or ``continuousKline_<i>``), with trade ids and update ids."""

    __slots__ = ("close", "close_time", "count", "first_id", "first_uid", "high", "interval", "last_id",
                 "last_uid", "low", "open", "open_time", "pending_closed", "quote_raw", "taker_quote_raw",
                 "taker_volume", "volume")

    def __init__(self, interval: str, open_time: int, prev_close: int) -> None:
        self.interval = interval
        self.pending_closed: _Bar | None = None
        self._start(open_time, prev_close)

    def _start(self, open_time: int, prev_close: int) -> None:
        self.open_time = open_time
        self.close_time = bar_close(self.interval, open_time)
        self.open = self.high = self.low = self.close = prev_close
        self.volume = self.quote_raw = self.taker_volume = self.taker_quote_raw = 0
        self.count = 0
        self.first_id = self.last_id = self.first_uid = self.last_uid = -1

    def roll(self, t_ms: int) -> None:
        closed = _Bar.__new__(_Bar)
        for name in _Bar.__slots__:
            setattr(closed, name, getattr(self, name))
        closed.pending_closed = None
        self.pending_closed = closed
        self._start(bar_open(self.interval, t_ms), self.close)

    def add(self, trade: Trade, uid: int) -> None:
        if trade.time > self.close_time:
            self.roll(trade.time)
        p = trade.price
        if self.count == 0:
            self.open = self.high = self.low = p
            self.first_id = trade.id
            self.first_uid = uid
        elif p > self.high:
            self.high = p
        elif p < self.low:
            self.low = p
        self.close = p
        self.last_id = trade.id
        self.last_uid = uid
        self.count += 1
        self.volume += trade.qty
        self.quote_raw += p * trade.qty
        if not trade.buyer_is_maker:
            self.taker_volume += trade.qty
            self.taker_quote_raw += p * trade.qty


class _Sym:
    """Names and state of one futures symbol."""

    def __init__(self, book: SymbolBook, index: int, product: FuturesProduct, now_ms: int, seed: int) -> None:
        self.index = index
        self.book = book
        self.symbol = book.symbol
        self.pair = pair_of(book.symbol)
        self.low = book.symbol.lower()
        self.price_places, self.qty_places = precision(book.spec)
        #: Last update id (shared id space) of a change to this book, and when it happened.
        self.last_uid = 0
        self.last_change_ms = now_ms
        #: Level changes not yet pushed by every depth speed: (key, qty, update id), key = price for bids,
        #: ~price for asks; one append a change, whatever the number of speeds. Per speed: where its open
        #: window starts in the log, and the ``u`` of its previous event (the next one's ``pu``).
        self.log: list[tuple[int, int, int]] = []
        self.cursor: dict[str, int] = dict.fromkeys(DEPTH_SPEEDS_MS, 0)
        self.prev_u: dict[str, int] = dict.fromkeys(DEPTH_SPEEDS_MS, 0)
        self.diff = {s: f"{self.low}@depth{s}" for s in DEPTH_SPEEDS_MS}
        self.partial = {s: {n: f"{self.low}@depth{n}{s}" for n in DEPTH_LEVELS} for s in DEPTH_SPEEDS_MS}
        self.book_ticker = f"{self.low}@bookTicker"
        self.agg = f"{self.low}@aggTrade"
        self.trade = f"{self.low}@trade"
        self.mark_slow = f"{self.low}@markPrice"
        self.mark_fast = f"{self.low}@markPrice@1s"
        self.mini = f"{self.low}@miniTicker"
        self.ticker = f"{self.low}@ticker"
        self.force = f"{self.low}@forceOrder"
        self.klines = {f"{self.low}@kline_{i}": i for i in KLINE_INTERVALS}
        #: Only perpetuals are listed, so only ``<pair>_perpetual`` continuous klines exist.
        self.continuous = {f"{self.pair.lower()}_perpetual@continuousKline_{i}": i for i in KLINE_INTERVALS}
        self.bars: dict[str, _Bar] = {}
        self.last_top: tuple[int, int, int, int] | None = None
        price = book.last_price / SCALE or book.spec.price
        self.mark = MarkModel(price, now_ms)
        self.positions = Positions(book.symbol, price, book.step, seed=seed, window_ms=FORCE_ORDER_MS)

    def names(self) -> Iterable[str]:
        yield from self.diff.values()
        for by_n in self.partial.values():
            yield from by_n.values()
        yield from (self.book_ticker, self.agg, self.trade, self.mark_slow, self.mark_fast, self.mini,
                    self.ticker, self.force)
        yield from self.klines
        yield from self.continuous


class FuturesFeeds:
    """Every futures market stream of the simulated exchange, for one product (USD-M or COIN-M).

    ``route_of(name)`` says which route serves a stream (None: not a stream here); ``tick(now_ms)``
    publishes what is due; ``depth_snapshot`` is the REST ``/fapi/v1/depth`` body in the same id space.
    ``time_scale`` divides every push period (as ``SimConfig.compressed`` does for spot).
    """

    def __init__(self, exchange: Exchange, hub: StreamHub, clock: SimClock, product: FuturesProduct, *,
                 seed: int = 1, time_scale: float = 1.0) -> None:
        self.exchange = exchange
        self.hub = hub
        self.clock = clock
        self.product = product
        now = clock.now_ms()

        rng = random.Random(f"futures-ids-{seed}")
        #: Id steps, drawn once (a draw per level change would cost more than the change itself).
        self._steps = [rng.randint(*ID_STEPS) for _ in range(_STEP_TABLE)]
        self._step_i = 0
        self._uid = FIRST_UPDATE_ID
        self._syms = {s: _Sym(b, i, product, now, seed) for i, (s, b) in enumerate(exchange.symbols.items())}
        for st in self._syms.values():
            # Before its first change a book is at the id space's start (the first event's ``pu``).
            st.last_uid = self._uid
            st.prev_u = dict.fromkeys(st.prev_u, self._uid)
        #: Stream name -> (symbol state, route), for every per-symbol stream.
        self._streams: dict[str, tuple[_Sym, Route]] = {}
        for st in self._syms.values():
            for name in st.names():
                route = route_of_name(name)
                assert route is not None, name
                self._streams[name] = (st, route)
        self._wide: dict[str, Route] = {n: r for n, r in MARKET_WIDE.items()
                                        if (product.all_mark_price or not n.startswith("!markPrice"))
                                        and (product.index_streams or n != "!assetIndex@arr")}
        #: ``<asset>usd@assetIndex`` -> (asset symbol, the perpetual whose index prices it; None: stable),
        #: and the composite index's components (USD-M only; see binance_ws.sim.futures.indexes).
        self._assets: dict[str, tuple[str, _Sym | None]] = {}
        self._composite: list[tuple[str, str, float, _Sym]] = []
        #: COIN-M ``<pair>@markPrice[@1s]``: arrays of the mark prices of a pair's symbols.
        self._pair_marks: dict[str, tuple[bool, list[_Sym]]] = {}
        if not product.all_mark_price:
            for st in self._syms.values():
                for fast, name in ((False, f"{st.pair.lower()}@markPrice"),
                                   (True, f"{st.pair.lower()}@markPrice@1s")):
                    self._pair_marks.setdefault(name, (fast, []))[1].append(st)
            self._wide.update(dict.fromkeys(self._pair_marks, "market"))
        if product.index_streams:
            quotes = {st.book.spec.quote for st in self._syms.values()}
            for st in self._syms.values():
                spec = st.book.spec
                if spec.quote in STABLE_ASSETS:
                    self._assets.setdefault(f"{spec.base.lower()}usd@assetIndex", (f"{spec.base}USD", st))
                    weight = SIM_COMPOSITE_WEIGHTS.get(spec.base)
                    if weight:
                        self._composite.append((spec.base, spec.quote, weight, st))
            for stable in sorted(quotes & STABLE_ASSETS):
                self._assets[f"{stable.lower()}usd@assetIndex"] = (f"{stable}USD", None)
            self._wide.update(dict.fromkeys(self._assets, "market"))
            if self._composite:
                self._wide[f"{SIM_COMPOSITE.lower()}@compositeIndex"] = "market"

        def period(ms: int) -> int:
            return max(1, round(ms / time_scale)) if ms else 0

        self._depth_ms = {s: period(ms) for s, ms in DEPTH_SPEEDS_MS.items()}
        self._periods = {"mark_fast": period(product.mark_price_fast_ms),
                         "mark_slow": period(product.mark_price_ms), "kline": period(product.kline_ms),
                         "mini": period(product.mini_ticker_ms), "ticker": period(product.ticker_ms),
                         "array": period(ARRAY_MS), "all_book": period(ALL_BOOK_TICKER_MS),
                         "force": period(FORCE_ORDER_MS), "sample": period(MARK_SAMPLE_MS),
                         "index": period(INDEX_MS)}
        self._next: dict[str, int | None] = dict.fromkeys([*self._periods, *(f"depth{s}" for s in
                                                                           DEPTH_SPEEDS_MS)])
        #: Symbols with a non-empty change log.
        self._dirty: dict[_Sym, None] = {}
        self._changed: dict[_Sym, None] = {}
        self._watched: list[_Sym] = []
        self._watched_version = -1
        exchange.add_listener(self)

    # -- names ---------------------------------------------------------------------------------------
    def route_of(self, name: str) -> Route | None:
        """The route serving ``name`` ("public" or "market"), or None if it is not a stream here."""
        found = self._streams.get(name)
        if found is not None:
            return found[1]
        return self._wide.get(name)

    def is_valid_stream(self, name: str) -> bool:
        return self.route_of(name) is not None

    # -- engine events --------------------------------------------------------------------------------
    def on_level(self, book: SymbolBook, is_bid: bool, price: int, qty: int) -> None:
        st = self._syms[book.symbol]
        i = self._step_i = (self._step_i + 1) & (_STEP_TABLE - 1)
        uid = self._uid = self._uid + self._steps[i]
        st.last_uid = uid
        st.last_change_ms = self.clock.now_ms()
        st.log.append((price if is_bid else ~price, qty, uid))
        self._dirty[st] = None
        if is_bid:
            if book.bid_keys and price < book.bid_keys[-1]:
                return
        elif book.ask_keys and price > -book.ask_keys[-1]:
            return
        if self.hub.has_subscribers(st.book_ticker):
            payload = self._book_ticker(st)
            if payload is not None:
                self.hub.publish(st.book_ticker, payload)

    def on_trade(self, book: SymbolBook, trade: Trade) -> None:
        st = self._syms[book.symbol]
        self._changed[st] = None
        for bar in st.bars.values():
            bar.add(trade, st.last_uid)
        if self.hub.has_subscribers(st.trade):
            # Keys of the hftbacktest USD-M capture (2024): no ``M``; ``X`` is the order type.
            self.hub.publish(st.trade, {
                "e": "trade", "E": trade.time, "T": trade.time, "s": st.symbol, "t": trade.id,
                "p": fixed(trade.price, st.price_places), "q": fixed(trade.qty, st.qty_places), "X": "MARKET",
                "m": trade.buyer_is_maker})

    def on_agg_trade(self, book: SymbolBook, agg: AggTrade) -> None:
        st = self._syms[book.symbol]
        if self.hub.has_subscribers(st.agg):
            qty = fixed(agg.qty, st.qty_places)
            # ``nq``: quantity without RPI orders; the simulator has none, so it equals ``q``. Key order as
            # in the real capture (cryptofeed 2021: ``a`` before ``s``), ``nq`` after ``q``.
            self.hub.publish(st.agg, {
                "e": "aggTrade", "E": agg.time, "a": agg.id, "s": st.symbol,
                "p": fixed(agg.price, st.price_places), "q": qty, "nq": qty, "f": agg.first_id,
                "l": agg.last_id, "T": agg.time, "m": agg.buyer_is_maker})

    # -- payloads ------------------------------------------------------------------------------------
    def _book_ticker(self, st: _Sym, *, always: bool = False) -> dict[str, Any] | None:
        book = st.book
        bid = book.best_bid() or (0, 0)
        ask = book.best_ask() or (0, 0)
        top = (bid[0], bid[1], ask[0], ask[1])
        if top == st.last_top and not always:
            return None
        st.last_top = top
        pp, qp = st.price_places, st.qty_places
        # Key order of the real captures (2021 and 2024): e u s b B a A T E (PROTOCOL 8 lists E T first).
        payload: dict[str, Any] = {"e": "bookTicker", "u": st.last_uid, "s": st.symbol}
        if self.product.pair_key:
            payload["ps"] = st.pair
        payload.update({"b": fixed(bid[0], pp), "B": fixed(bid[1], qp), "a": fixed(ask[0], pp),
                        "A": fixed(ask[1], qp), "T": st.last_change_ms, "E": self.clock.now_ms()})
        return payload

    def _levels(self, st: _Sym, n: int) -> tuple[list[list[str]], list[list[str]]]:
        book = st.book
        pp, qp = st.price_places, st.qty_places
        b = [[fixed(p, pp), fixed(book.bids[p].qty, qp)] for p in reversed(book.bid_keys[-n:])]
        a = [[fixed(-k, pp), fixed(book.asks[-k].qty, qp)] for k in reversed(book.ask_keys[-n:])]
        return b, a

    def _depth_event(self, st: _Sym, now: int, first: int, last: int, pu: int,
                     bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
        payload: dict[str, Any] = {"e": "depthUpdate", "E": now, "T": st.last_change_ms, "s": st.symbol}
        if self.product.pair_key:
            payload["ps"] = st.pair
        payload.update({"U": first, "u": last, "pu": pu, "b": bids, "a": asks})
        return payload

    def depth_snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        """REST ``GET /fapi/v1/depth`` (``/dapi/v1/depth``) body, in the streams' id space (PROTOCOL 5.2):
        ``lastUpdateId``, ``E``, ``T`` (and ``symbol``/``pair`` on COIN-M), then the levels."""
        st = self._syms[symbol.upper()]
        b, a = self._levels(st, limit)
        body: dict[str, Any] = {"lastUpdateId": st.last_uid, "E": self.clock.now_ms(), "T": st.last_change_ms}
        if self.product.pair_key:
            body.update({"symbol": st.symbol, "pair": st.pair})
        body.update({"bids": b, "asks": a})
        return body

    def mark_price(self, symbol: str, now: int) -> dict[str, Any]:
        """``markPriceUpdate`` (PROTOCOL 8; COIN-M without ``ap``)."""
        st = self._syms[symbol]
        m = st.mark.state(now)
        payload: dict[str, Any] = {"e": "markPriceUpdate", "E": now, "s": symbol, "p": _f8(m.mark)}
        if self.product.mark_ap:
            payload["ap"] = _f8(m.mark_average)
        payload.update({"i": _f8(m.index), "P": _f8(m.settle), "r": _f8(m.funding_rate),
                        "T": m.next_funding_ms})
        return payload

    def force_order(self, st: _Sym, liq: Liquidation, now: int) -> dict[str, Any]:
        """``forceOrder`` (PROTOCOL 8): the liquidation order, filled at once."""
        qty = fixed(liq.qty, st.qty_places)
        tick = st.book.tick or 1
        order: dict[str, Any] = {"s": st.symbol}
        if self.product.pair_key:
            order["ps"] = st.pair
        order.update({
            "S": liq.side, "o": "LIMIT", "f": "IOC", "q": qty,
            "p": fixed(round(liq.price * SCALE / tick) * tick, st.price_places),
            "ap": fixed(round(liq.average_price * SCALE / tick) * tick, st.price_places),
            "X": "FILLED", "l": qty, "z": qty, "T": liq.time_ms})
        return {"e": "forceOrder", "E": now, "o": order}

    def contract_info(self, symbol: str, now: int, brackets: list[dict[str, Any]] | None = None) \
            -> dict[str, Any]:
        """``contractInfo`` (PROTOCOL 8): pushed on listing, settlement or bracket change only, so the
        simulator pushes it when told (:meth:`announce_contract`); ``bks`` only with bracket changes."""
        st = self._syms[symbol]
        payload: dict[str, Any] = {"e": "contractInfo", "E": now, "s": symbol, "ps": st.pair,
                                   "ct": "PERPETUAL", "dt": 4133404800000, "ot": 1569398400000,
                                   "cs": "TRADING"}
        if brackets is not None:
            payload["bks"] = brackets
        return payload

    def announce_contract(self, symbol: str, brackets: list[dict[str, Any]] | None = None) -> None:
        """Push ``!contractInfo`` for ``symbol`` now (a listing or bracket change)."""
        self.hub.publish("!contractInfo", self.contract_info(symbol.upper(), self.clock.now_ms(), brackets))

    def mini_ticker(self, symbol: str, now: int) -> dict[str, Any]:
        """``24hrMiniTicker`` (COIN-M adds ``ps``)."""
        st = self._syms[symbol]
        w = st.book.stats(DAY_MS, now)
        pp, qp = st.price_places, st.qty_places
        payload: dict[str, Any] = {"e": "24hrMiniTicker", "E": now, "s": symbol}
        if self.product.pair_key:
            payload["ps"] = st.pair
        payload.update({"c": fixed(w.close, pp), "o": fixed(w.open, pp), "h": fixed(w.high, pp),
                        "l": fixed(w.low, pp), "v": fixed(w.volume, qp),
                        "q": fixed(w.quote_raw // SCALE, pp)})
        return payload

    def ticker_24h(self, symbol: str, now: int) -> dict[str, Any]:
        """``24hrTicker``: spot's keys without ``x`` and the bid/ask fields (PROTOCOL 8)."""
        st = self._syms[symbol]
        w = st.book.stats(DAY_MS, now)
        pp, qp = st.price_places, st.qty_places
        payload: dict[str, Any] = {"e": "24hrTicker", "E": now, "s": symbol}
        if self.product.pair_key:
            payload["ps"] = st.pair
        payload.update({
            "p": fixed(w.close - w.open, pp), "P": percent(w.close - w.open, w.open),
            "w": fixed(w.weighted_avg, pp), "c": fixed(w.close, pp), "Q": fixed(w.last_qty, qp),
            "o": fixed(w.open, pp), "h": fixed(w.high, pp), "l": fixed(w.low, pp), "v": fixed(w.volume, qp),
            "q": fixed(w.quote_raw // SCALE, pp), "O": w.open_time, "C": now, "F": w.first_id, "L": w.last_id,
            "n": w.count})
        return payload

    def _kline_body(self, st: _Sym, bar: _Bar, closed: bool, continuous: bool) -> dict[str, Any]:
        pp, qp = st.price_places, st.qty_places
        body: dict[str, Any] = {"t": bar.open_time, "T": bar.close_time}
        if not continuous:
            body["s"] = st.symbol
        # Continuous klines count update ids, not trade ids, in f/L (Binance's continuous-kline page).
        body.update({
            "i": bar.interval, "f": bar.first_uid if continuous else bar.first_id,
            "L": bar.last_uid if continuous else bar.last_id, "o": fixed(bar.open, pp),
            "c": fixed(bar.close, pp), "h": fixed(bar.high, pp), "l": fixed(bar.low, pp),
            "v": fixed(bar.volume, qp), "n": bar.count, "x": closed, "q": fixed(bar.quote_raw // SCALE, pp),
            "V": fixed(bar.taker_volume, qp), "Q": fixed(bar.taker_quote_raw // SCALE, pp), "B": "0"})
        return body

    def _kline_event(self, st: _Sym, name: str, bar: _Bar, closed: bool, now: int) -> dict[str, Any]:
        if name in st.continuous:
            return {"e": "continuous_kline", "E": now, "ps": st.pair, "ct": "PERPETUAL",
                    "k": self._kline_body(st, bar, closed, True)}
        return {"e": "kline", "E": now, "s": st.symbol, "k": self._kline_body(st, bar, closed, False)}

    # -- periodic streams ------------------------------------------------------------------------------
    def _due(self, key: str, now: int, period: int) -> bool:
        nxt = self._next[key]
        if nxt is not None and now < nxt:
            return False
        if nxt is None:
            self._next[key] = now + period
        else:
            nxt += period
            self._next[key] = nxt if nxt > now else now + period
        return True

    def tick(self, now_ms: int) -> None:
        """Publish every periodic stream due at ``now_ms`` (call at least every 100 ms)."""
        for speed, period in self._depth_ms.items():
            if self._due(f"depth{speed}", now_ms, period):
                self._flush_depth(speed, now_ms)
        p = self._periods
        if self._due("sample", now_ms, p["sample"]):
            self._observe(now_ms)
        if self._due("force", now_ms, p["force"]):
            self._flush_force(now_ms)
        if self._due("mark_fast", now_ms, p["mark_fast"]):
            self._flush_mark(now_ms, fast=True)
        if self._due("mark_slow", now_ms, p["mark_slow"]):
            self._flush_mark(now_ms, fast=False)
        if self._due("kline", now_ms, p["kline"]):
            self._flush_klines(now_ms)
        if self._due("mini", now_ms, p["mini"]):
            for st in self._serve():
                if self.hub.has_subscribers(st.mini):
                    self.hub.publish(st.mini, self.mini_ticker(st.symbol, now_ms))
        if self._due("ticker", now_ms, p["ticker"]):
            for st in self._serve():
                if self.hub.has_subscribers(st.ticker):
                    self.hub.publish(st.ticker, self.ticker_24h(st.symbol, now_ms))
        if self._due("array", now_ms, p["array"]):
            self._flush_arrays(now_ms)
        if self._due("index", now_ms, p["index"]):
            self._flush_indexes(now_ms)
        if self._due("all_book", now_ms, p["all_book"]) and self.hub.has_subscribers("!bookTicker"):
            for st in self._syms.values():
                payload = self._book_ticker(st, always=True)
                if payload is not None:
                    self.hub.publish("!bookTicker", payload)

    def _serve(self, extra: Iterable[_Sym] = ()) -> list[_Sym]:
        """Symbols with a subscribed per-symbol stream (plus ``extra``), in symbol order."""
        if self.hub.version != self._watched_version:
            self._watched_version = self.hub.version
            streams = self._streams
            self._watched = sorted({streams[n][0] for n in self.hub.subscribed_streams() if n in streams},
                                   key=_index)
        extra = list(extra)
        if not extra:
            return self._watched
        return sorted(set(self._watched).union(extra), key=_index)

    def _flush_depth(self, speed: str, now: int) -> None:
        hub = self.hub
        for st in self._serve(self._dirty):
            log = st.log
            start = st.cursor[speed]
            pu = st.prev_u[speed]
            if len(log) > start:
                first, last = log[start][2], log[-1][2]
                diff = st.diff[speed]
                if hub.has_subscribers(diff):
                    # The latest quantity of each level changed in the window.
                    pending = {key: qty for key, qty, _ in islice(log, start, None)}
                    bids = sorted((k, q) for k, q in pending.items() if k >= 0)
                    asks = sorted((~k, q) for k, q in pending.items() if k < 0)
                    pp, qp = st.price_places, st.qty_places
                    hub.publish(diff, self._depth_event(
                        st, now, first, last, pu, [[fixed(p, pp), fixed(q, qp)] for p, q in reversed(bids)],
                        [[fixed(p, pp), fixed(q, qp)] for p, q in asks]))
                st.cursor[speed] = len(log)
                st.prev_u[speed] = last
                self._trim(st)
            else:
                first = last = st.last_uid
            for n, name in st.partial[speed].items():
                if hub.has_subscribers(name):
                    b, a = self._levels(st, n)
                    hub.publish(name, self._depth_event(st, now, first, last, pu, b, a))

    def _trim(self, st: _Sym) -> None:
        """Drop the log entries every speed has pushed."""
        done = min(st.cursor.values())
        if not done:
            return
        del st.log[:done]
        for speed in st.cursor:
            st.cursor[speed] -= done
        if not st.log:
            self._dirty.pop(st, None)

    def _observe(self, now: int) -> None:
        for st in self._syms.values():
            book = st.book
            bid, ask = book.best_bid(), book.best_ask()
            mid = (bid[0] + ask[0]) / 2 / SCALE if bid and ask else None
            st.mark.observe(now, mid, book.last_price / SCALE if book.last_price else None)
            st.positions.check(st.mark.mark, now)

    def _flush_force(self, now: int) -> None:
        hub = self.hub
        wide = hub.has_subscribers("!forceOrder@arr")
        for st in self._syms.values():
            due = st.positions.due(now)
            if not due or not (wide or hub.has_subscribers(st.force)):
                continue
            for liq in due:
                payload = self.force_order(st, liq, now)
                hub.publish(st.force, payload)
                if wide:
                    hub.publish("!forceOrder@arr", payload)

    def _flush_mark(self, now: int, *, fast: bool) -> None:
        hub = self.hub
        for st in self._serve():
            name = st.mark_fast if fast else st.mark_slow
            if hub.has_subscribers(name):
                hub.publish(name, self.mark_price(st.symbol, now))
        wide = "!markPrice@arr@1s" if fast else "!markPrice@arr"
        if self.product.all_mark_price and hub.has_subscribers(wide):
            hub.publish(wide, [self.mark_price(s, now) for s in self._syms])
        for name, (is_fast, members) in self._pair_marks.items():
            if is_fast == fast and hub.has_subscribers(name):
                hub.publish(name, [self.mark_price(st.symbol, now) for st in members])

    def _flush_klines(self, now: int) -> None:
        hub = self.hub
        for st in self._serve(self._barred()):
            for name, interval in (*st.klines.items(), *st.continuous.items()):
                bar = st.bars.get(name)
                if not hub.has_subscribers(name):
                    if bar is not None:
                        del st.bars[name]
                    continue
                if bar is None:
                    bar = st.bars[name] = self._new_bar(st, interval, now)
                if now > bar.close_time:
                    bar.roll(now)
                closed = bar.pending_closed
                if closed is not None:
                    hub.publish(name, self._kline_event(st, name, closed, True, now))
                    bar.pending_closed = None
                hub.publish(name, self._kline_event(st, name, bar, False, now))

    def _barred(self) -> list[_Sym]:
        return [st for st in self._syms.values() if st.bars]

    @staticmethod
    def _new_bar(st: _Sym, interval: str, now: int) -> _Bar:
        """A bar for a stream's first subscriber, back-filled from the retained trades (their update ids
        are not retained, so back-filled trades count the current one)."""
        open_time = bar_open(interval, now)
        prev_close = st.book.last_price
        backlog: list[Trade] = []
        for trade in reversed(st.book.trades):
            if trade.time < open_time:
                prev_close = trade.price
                break
            backlog.append(trade)
        bar = _Bar(interval, open_time, prev_close)
        for trade in reversed(backlog):
            bar.add(trade, st.last_uid)
        return bar

    def _flush_indexes(self, now: int) -> None:
        hub = self.hub
        wide = hub.has_subscribers("!assetIndex@arr")
        batch = []
        for name, (asset, st) in self._assets.items():
            if not (wide or hub.has_subscribers(name)):
                continue
            payload = asset_index(asset, st.mark.index if st else 1.0, now,
                                  DEFAULT_BUFFERS if st else STABLE_BUFFERS)
            hub.publish(name, payload)
            batch.append(payload)
        if wide and batch:
            hub.publish("!assetIndex@arr", batch)
        composite = f"{SIM_COMPOSITE.lower()}@compositeIndex"
        if self._composite and hub.has_subscribers(composite):
            hub.publish(composite, composite_index(
                SIM_COMPOSITE, [Component(b, q, w, st.mark.index) for b, q, w, st in self._composite], now))

    def _flush_arrays(self, now: int) -> None:
        hub = self.hub
        changed = sorted(self._changed, key=_index)
        self._changed = {}
        if not changed:
            return
        if hub.has_subscribers("!miniTicker@arr"):
            hub.publish("!miniTicker@arr", [self.mini_ticker(st.symbol, now) for st in changed])
        if hub.has_subscribers("!ticker@arr"):
            hub.publish("!ticker@arr", [self.ticker_24h(st.symbol, now) for st in changed])


def _index(st: _Sym) -> int:
    return st.index

