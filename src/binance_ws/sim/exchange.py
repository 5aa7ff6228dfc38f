"""The simulated spot exchange: one price-time-priority limit order book per symbol and its matching engine.

Prices and quantities are integers in units of 1e-8 (Binance spot's 8-decimal precision, PROTOCOL 4),
so no float ever drifts; they are formatted as 8-decimal strings only at the edges. Every change of one
price level's total quantity on one side advances that symbol's update id by exactly 1, which is the id
space shared by the diff-depth ``U``/``u``, ``bookTicker.u`` and REST ``lastUpdateId`` (PROTOCOL 4.9, 5.1).

Engine events go synchronously to listeners (:class:`BookListener`, the feeds) and, for orders that have
an ``owner``, to per-owner order listeners (user-data streams hook in there).
"""

from __future__ import annotations

import calendar
import datetime
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any, Protocol

from binance_ws.enums import (
    KLINE_INTERVALS_MS,
    ORDER_TYPE_LIMIT,
    ORDER_TYPE_LIMIT_MAKER,
    ORDER_TYPE_MARKET,
    SIDE_BUY,
    SIDE_SELL,
    TIME_IN_FORCE_FOK,
    TIME_IN_FORCE_GTC,
    TIME_IN_FORCE_IOC,
)
from binance_ws.sim.clock import SimClock
from binance_ws.sim.config import SymbolSpec

#: Spot prices and quantities carry 8 decimals (PROTOCOL 4, [OBS] "0.35280000").
DECIMALS = 8
SCALE = 10**DECIMALS

#: Filter bounds published in exchangeInfo and enforced here (typical spot values: maxPrice 1000000,
#: maxQty 9000000; minPrice/minQty equal one tick/step).
MAX_PRICE_UNITS = 1_000_000 * SCALE
MAX_QTY_UNITS = 9_000_000 * SCALE

#: How many trades / aggregate trades per symbol are kept for REST (/trades, /historicalTrades,
#: /aggTrades, /klines) and for back-filling a kline bar when its first subscriber arrives.
TRADE_HISTORY = 50_000

#: Rolling statistics are kept in one-minute buckets: rolling-window tickers align ``O`` to a minute
#: boundary (PROTOCOL 4.8). 24 h plus slack is the longest window served (1d ticker, 24hr ticker).
STATS_BUCKET_MS = 60_000
STATS_KEEP_MS = 86_400_000 + 2 * STATS_BUCKET_MS

#: Average-price window of /api/v3/avgPrice and ``@avgPrice`` (PROTOCOL 4.10: "i":"5m").
AVG_PRICE_WINDOW_MS = 300_000

#: The symbol status under which orders are accepted (exchangeInfo ``status``).
TRADING_STATUS = "TRADING"

ORDER_TYPES = (ORDER_TYPE_LIMIT, ORDER_TYPE_LIMIT_MAKER, ORDER_TYPE_MARKET)
TIME_IN_FORCES = (TIME_IN_FORCE_GTC, TIME_IN_FORCE_IOC, TIME_IN_FORCE_FOK)

# Order statuses and execution types (PROTOCOL 6.4 enums).
NEW = "NEW"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELED = "CANCELED"
EXPIRED = "EXPIRED"
TRADE = "TRADE"


# -- errors ----------------------------------------------------------------------------------------
class ExchangeError(Exception):
    """A request the exchange refuses; ``code``/``msg`` are Binance's error pair (PROTOCOL 7.3)."""

    status = 400

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class InvalidSymbolError(ExchangeError):
    """The symbol is not listed (-1121)."""

    def __init__(self) -> None:
        super().__init__(-1121, "Invalid symbol.")


class FilterFailureError(ExchangeError):
    """Price, quantity or notional breaks a symbol filter (-1013)."""

    def __init__(self, filter_type: str) -> None:
        super().__init__(-1013, f"Filter failure: {filter_type}")
        self.filter_type = filter_type


class BadParameterError(ExchangeError):
    """A mandatory parameter is missing or malformed (-1102), or an enum value is unknown."""

    def __init__(self, name: str, code: int = -1102, msg: str | None = None) -> None:
        super().__init__(
            code, msg or f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        self.name = name


class OrderRejectedError(ExchangeError):
    """The order was refused by the matching engine (-2010), e.g. a LIMIT_MAKER that would take."""

    def __init__(self, msg: str) -> None:
        super().__init__(-2010, msg)


class UnknownOrderError(ExchangeError):
    """Cancel of an order that is not open (-2011)."""

    def __init__(self) -> None:
        super().__init__(-2011, "Unknown order sent.")


# -- records ---------------------------------------------------------------------------------------
def fmt(units: int) -> str:
    """An integer amount of 1e-8 units as Binance's 8-decimal string (``"61837.63000000"``)."""
    # Books reuse a small set of prices and sizes: a memo makes formatting a dict lookup on hot paths.
    text = _FMT_MEMO.get(units)
    if text is None:
        if units < 0:
            whole, frac = divmod(-units, SCALE)
            text = f"-{whole}.{frac:08d}"
        else:
            whole, frac = divmod(units, SCALE)
            text = f"{whole}.{frac:08d}"
        if len(_FMT_MEMO) >= _FMT_MEMO_SIZE:
            _FMT_MEMO.clear()
        _FMT_MEMO[units] = text
    return text


_FMT_MEMO: dict[int, str] = {}
_FMT_MEMO_SIZE = 1 << 16


def to_units(value: str | int | float | Decimal, name: str, filter_type: str) -> int:
    """Parse a decimal price/quantity into 1e-8 units.

    Raises :class:`BadParameterError` when it is not a positive number and :class:`FilterFailureError`
    (``filter_type``) when it has more than 8 decimals.
    """
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        raise BadParameterError(name) from None
    if not dec.is_finite() or dec <= 0:
        raise BadParameterError(name)
    scaled = dec * SCALE
    if scaled != scaled.to_integral_value():
        raise FilterFailureError(filter_type)
    return int(scaled)


class Trade:
    """One fill between a taker and a resting maker order."""

    __slots__ = ("agg_id", "buyer_is_maker", "id", "price", "qty", "time")

    def __init__(self, trade_id: int, price: int, qty: int, time: int, buyer_is_maker: bool,
                 agg_id: int) -> None:
        self.id = trade_id
        self.price = price
        self.qty = qty
        self.time = time
        self.buyer_is_maker = buyer_is_maker
        self.agg_id = agg_id

    def rest(self) -> dict[str, Any]:
        """The /api/v3/trades and /historicalTrades element."""
        return {"id": self.id, "price": fmt(self.price), "qty": fmt(self.qty),
                "quoteQty": fmt(self.price * self.qty // SCALE), "time": self.time,
                "isBuyerMaker": self.buyer_is_maker, "isBestMatch": True}


class AggTrade:
    """The fills of one taker order at one price (PROTOCOL 4.1)."""

    __slots__ = ("buyer_is_maker", "first_id", "id", "last_id", "price", "qty", "time")

    def __init__(self, agg_id: int, price: int, qty: int, first_id: int, last_id: int, time: int,
                 buyer_is_maker: bool) -> None:
        self.id = agg_id
        self.price = price
        self.qty = qty
        self.first_id = first_id
        self.last_id = last_id
        self.time = time
        self.buyer_is_maker = buyer_is_maker

    def rest(self) -> dict[str, Any]:
        """The /api/v3/aggTrades element."""
        return {"a": self.id, "p": fmt(self.price), "q": fmt(self.qty), "f": self.first_id,
                "l": self.last_id, "T": self.time, "m": self.buyer_is_maker, "M": True}


class Order:
    """An order as the engine tracks it; amounts in 1e-8 units (``price`` 0 for market orders)."""

    __slots__ = ("client_order_id", "cum_quote_raw", "executed", "is_buy", "order_id", "orig_qty",
                 "orig_quote_qty", "owner", "price", "remaining", "status", "symbol", "time", "time_in_force",
                 "type", "working_time")

    def __init__(self, symbol: str, order_id: int, is_buy: bool, order_type: str, time_in_force: str,
                 price: int, qty: int, time: int, owner: object, client_order_id: str | None) -> None:
        self.symbol = symbol
        self.order_id = order_id
        self.is_buy = is_buy
        self.type = order_type
        self.time_in_force = time_in_force
        self.price = price
        self.orig_qty = qty
        #: A MARKET order's ``quoteOrderQty`` (1e-8 quote units), else 0.
        self.orig_quote_qty = 0
        self.remaining = qty
        self.executed = 0
        #: Sum of price*qty over fills, in 1e-16 units (exact; divided by SCALE when formatted).
        self.cum_quote_raw = 0
        self.status = NEW
        self.time = time
        self.working_time = -1
        self.owner = owner
        self.client_order_id = client_order_id

    @property
    def side(self) -> str:
        return SIDE_BUY if self.is_buy else SIDE_SELL

    def response(self, fills: list[Trade] | None = None, base_asset: str = "", quote_asset: str = "",
                 ) -> dict[str, Any]:
        """Binance's FULL ``POST /api/v3/order`` response shape."""
        body: dict[str, Any] = {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_order_id or f"sim{self.order_id}", "transactTime": self.time,
            "price": fmt(self.price), "origQty": fmt(self.orig_qty), "executedQty": fmt(self.executed),
            "origQuoteOrderQty": fmt(self.orig_quote_qty),
            "cummulativeQuoteQty": fmt(self.cum_quote_raw // SCALE),
            "status": self.status, "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
            "selfTradePreventionMode": "NONE",
        }
        if self.working_time >= 0:
            body["workingTime"] = self.working_time
        if fills is not None:
            # Commission is charged in what the taker receives; accounts (a later issue) set the rate.
            asset = base_asset if self.is_buy else quote_asset
            body["fills"] = [{"price": fmt(t.price), "qty": fmt(t.qty), "commission": fmt(0),
                              "commissionAsset": asset, "tradeId": t.id} for t in fills]
        return body


@dataclass(slots=True)
class OrderEvent:
    """An order state change for an owner's listener (user-data streams).

    ``kind`` is the execution type (NEW, TRADE, CANCELED, EXPIRED); ``trade`` is set for TRADE, with
    ``is_maker`` saying on which side of it this order was.
    """

    kind: str
    order: Order
    time: int
    trade: Trade | None = None
    is_maker: bool = False


OrderListener = Callable[[OrderEvent], None]


class BookListener(Protocol):
    """What the feeds receive from the engine, synchronously, in order."""

    def on_level(self, book: SymbolBook, is_bid: bool, price: int, qty: int) -> None:
        """A price level's total is now ``qty`` (0 = removed); ``book.update_id`` is already advanced."""

    def on_trade(self, book: SymbolBook, trade: Trade) -> None: ...

    def on_agg_trade(self, book: SymbolBook, agg: AggTrade) -> None: ...


class _Level:
    __slots__ = ("orders", "qty")

    def __init__(self) -> None:
        self.orders: deque[Order] = deque()
        self.qty = 0


class WindowStats:
    """Rolling statistics over the trades of a window (tickers, PROTOCOL 4.6-4.8)."""

    __slots__ = ("close", "count", "first_id", "high", "last_id", "last_qty", "low", "open", "open_time",
                 "prev_close", "quote_raw", "volume")

    def __init__(self, open_time: int, prev_close: int) -> None:
        self.open_time = open_time
        self.prev_close = prev_close
        self.open = self.high = self.low = self.close = 0
        self.volume = 0
        self.quote_raw = 0
        self.first_id = self.last_id = -1
        self.count = 0
        self.last_qty = 0

    @property
    def weighted_avg(self) -> int:
        return self.quote_raw // self.volume if self.volume else 0


class _Bucket:
    __slots__ = ("close", "count", "first_id", "high", "last_id", "last_qty", "low", "minute", "open",
                 "quote_raw", "volume")

    def __init__(self, minute: int, trade: Trade) -> None:
        self.minute = minute
        self.open = self.high = self.low = self.close = trade.price
        self.volume = trade.qty
        self.quote_raw = trade.price * trade.qty
        self.first_id = self.last_id = trade.id
        self.count = 1
        self.last_qty = trade.qty


class SymbolBook:
    """One symbol's order book, ids and trade history. Read freely; change only through :class:`Exchange`."""

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        self.symbol = spec.symbol.upper()
        self.tick = to_units(spec.tick_size, "tickSize", "PRICE_FILTER")
        self.step = to_units(spec.step_size, "stepSize", "LOT_SIZE")
        self.min_notional = to_units(spec.min_notional, "minNotional", "NOTIONAL")
        self.bids: dict[int, _Level] = {}
        self.asks: dict[int, _Level] = {}
        #: Bid prices ascending (best last); ask prices negated, ascending (best last, as -price).
        self.bid_keys: list[int] = []
        self.ask_keys: list[int] = []
        self.update_id = 0
        self.next_trade_id = 1
        self.next_agg_id = 1
        self.trades: deque[Trade] = deque(maxlen=TRADE_HISTORY)
        self.aggs: deque[AggTrade] = deque(maxlen=TRADE_HISTORY)
        self.buckets: deque[_Bucket] = deque()
        #: Close of the newest bucket dropped from ``buckets`` (the "previous close" of old windows).
        self.pruned_close = 0
        self.last_price = 0
        self.last_trade_time = -1

    # -- reading -----------------------------------------------------------------------------------
    def best_bid(self) -> tuple[int, int] | None:
        if not self.bid_keys:
            return None
        p = self.bid_keys[-1]
        return p, self.bids[p].qty

    def best_ask(self) -> tuple[int, int] | None:
        if not self.ask_keys:
            return None
        p = -self.ask_keys[-1]
        return p, self.asks[p].qty

    def top(self, n: int) -> tuple[list[list[str]], list[list[str]]]:
        """The best ``n`` levels per side as ``[[price, qty], ...]`` strings, best first."""
        bids = self.bids
        asks = self.asks
        b = [[fmt(p), fmt(bids[p].qty)] for p in reversed(self.bid_keys[-n:])]
        a = [[fmt(-k), fmt(asks[-k].qty)] for k in reversed(self.ask_keys[-n:])]
        return b, a

    def stats(self, window_ms: int, now_ms: int) -> WindowStats:
        """Statistics over the trades since ``now - window`` rounded down to a minute (PROTOCOL 4.8)."""
        start = now_ms - window_ms
        start -= start % STATS_BUCKET_MS
        inside: list[_Bucket] = []
        prev_close = self.pruned_close
        for b in reversed(self.buckets):
            if b.minute < start:
                prev_close = b.close
                break
            inside.append(b)
        st = WindowStats(start, prev_close)
        if not inside:
            st.open = st.high = st.low = st.close = prev_close or self.last_price
            return st
        inside.reverse()
        first = inside[0]
        last = inside[-1]
        st.open = first.open
        st.close = last.close
        st.first_id = first.first_id
        st.last_id = last.last_id
        st.last_qty = last.last_qty
        st.high = max(b.high for b in inside)
        st.low = min(b.low for b in inside)
        st.volume = sum(b.volume for b in inside)
        st.quote_raw = sum(b.quote_raw for b in inside)
        st.count = sum(b.count for b in inside)
        return st

    def avg_price(self, now_ms: int) -> int:
        """Volume-weighted price of the last 5 minutes of trades (the last price when there were none)."""
        st = self.stats(AVG_PRICE_WINDOW_MS, now_ms)
        return st.weighted_avg or self.last_price

    # -- recording (engine only) -------------------------------------------------------------------
    def _record(self, trade: Trade) -> None:
        self.trades.append(trade)
        self.last_price = trade.price
        self.last_trade_time = trade.time
        minute = trade.time - trade.time % STATS_BUCKET_MS
        buckets = self.buckets
        if buckets and buckets[-1].minute >= minute:
            b = buckets[-1]
            p = trade.price
            if p > b.high:
                b.high = p
            elif p < b.low:
                b.low = p
            b.close = p
            b.volume += trade.qty
            b.quote_raw += p * trade.qty
            b.last_id = trade.id
            b.count += 1
            b.last_qty = trade.qty
            return
        buckets.append(_Bucket(minute, trade))
        horizon = minute - STATS_KEEP_MS
        while buckets[0].minute < horizon:
            self.pruned_close = buckets.popleft().close


def bar_open(interval: str, t_ms: int, tz_offset_ms: int = 0) -> int:
    """Open time (UTC epoch ms) of the ``interval`` kline bar holding ``t_ms``.

    Bars follow the calendar shifted by ``tz_offset_ms`` (``@+08:00`` streams, PROTOCOL 4.5): weeks open
    on Monday 00:00, months on the 1st; shorter bars are multiples of their length since the epoch.
    """
    local = t_ms + tz_offset_ms
    if interval == "1M":
        d = datetime.datetime.fromtimestamp(local / 1000, tz=datetime.UTC)
        return calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000 - tz_offset_ms
    length = KLINE_INTERVALS_MS[interval]
    # 1970-01-01 was a Thursday: weekly bars are shifted 4 days so that they open on Mondays.
    shift = _MONDAY_SHIFT_MS if interval == "1w" else 0
    return (local - shift) // length * length + shift - tz_offset_ms


_MONDAY_SHIFT_MS = 4 * 86_400_000


def bar_close(interval: str, open_ms: int, tz_offset_ms: int = 0) -> int:
    """Close time ``T`` of the bar opening at ``open_ms``: the next bar's open − 1 ms (PROTOCOL 4.5)."""
    if interval == "1M":
        d = datetime.datetime.fromtimestamp((open_ms + tz_offset_ms) / 1000, tz=datetime.UTC)
        year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000 - tz_offset_ms - 1
    return open_ms + KLINE_INTERVALS_MS[interval] - 1


class Exchange:
    """Every listed symbol's book and the matching engine.

    ``symbols`` maps an uppercase symbol to its :class:`SymbolBook`. Orders match by price then time;
    a taker order's fills at one price form one aggregate trade.
    """

    def __init__(self, specs: tuple[SymbolSpec, ...], clock: SimClock) -> None:
        self.clock = clock
        self.symbols: dict[str, SymbolBook] = {}
        for spec in specs:
            book = SymbolBook(spec)
            self.symbols[book.symbol] = book
        self.next_order_id = 1
        self._on_level: list[Callable[[SymbolBook, bool, int, int], None]] = []
        self._on_trade: list[Callable[[SymbolBook, Trade], None]] = []
        self._on_agg: list[Callable[[SymbolBook, AggTrade], None]] = []
        self._order_listeners: dict[object, list[OrderListener]] = {}
        #: Open orders by id (any symbol).
        self.orders: dict[int, Order] = {}

    # -- listeners ---------------------------------------------------------------------------------
    def add_listener(self, listener: BookListener) -> None:
        """Receive every level change, trade and aggregate trade, synchronously."""
        self._on_level.append(listener.on_level)
        self._on_trade.append(listener.on_trade)
        self._on_agg.append(listener.on_agg_trade)

    def add_order_listener(self, owner: object, callback: OrderListener) -> None:
        """Receive the :class:`OrderEvent` s of every order placed with ``owner`` (user-data streams)."""
        self._order_listeners.setdefault(owner, []).append(callback)

    def remove_order_listener(self, owner: object, callback: OrderListener) -> None:
        callbacks = self._order_listeners.get(owner)
        if callbacks and callback in callbacks:
            callbacks.remove(callback)
            if not callbacks:
                del self._order_listeners[owner]

    # -- reading -----------------------------------------------------------------------------------
    def seed_history(self, symbol: str, trades: list[tuple[int, int, int, bool]]) -> None:
        """Record past trades ``(price, qty, time_ms, buyer_is_maker)``, oldest first, as the symbol's
        history: ids from the next trade id on, one aggregate trade each, no listener told (nothing
        happened live). Live trades then continue the ids. Only before the first live trade."""
        book = self.book(symbol)
        if book.trades:
            raise ValueError(f"{symbol} already has trades; history comes first")
        for price, qty, time, buyer_is_maker in trades:
            trade = Trade(book.next_trade_id, price, qty, time, buyer_is_maker, book.next_agg_id)
            book._record(trade)
            book.aggs.append(AggTrade(book.next_agg_id, price, qty, trade.id, trade.id, time, buyer_is_maker))
            book.next_trade_id += 1
            book.next_agg_id += 1

    def book(self, symbol: str) -> SymbolBook:
        """The book of ``symbol`` (any case); raises :class:`InvalidSymbolError`."""
        book = self.symbols.get(symbol.upper()) if isinstance(symbol, str) else None
        if book is None:
            raise InvalidSymbolError()
        return book

    def depth_snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        """The REST ``/api/v3/depth`` body: ``lastUpdateId`` and the best ``limit`` levels per side."""
        book = self.book(symbol)
        bids, asks = book.top(limit)
        return {"lastUpdateId": book.update_id, "bids": bids, "asks": asks}

    def book_levels(self, symbol: str) -> tuple[dict[str, str], dict[str, str]]:
        """The whole book as ``({price: qty}, {price: qty})`` strings (tests compare rebuilt books)."""
        book = self.book(symbol)
        return ({fmt(p): fmt(lv.qty) for p, lv in book.bids.items()},
                {fmt(p): fmt(lv.qty) for p, lv in book.asks.items()})

    def trades(self, symbol: str, limit: int, from_id: int | None = None) -> list[dict[str, Any]]:
        """Recent trades (REST shape), oldest first: the last ``limit``, or ``limit`` from ``from_id``."""
        return [t.rest() for t in self.trade_list(symbol, limit, from_id)]

    def trade_list(self, symbol: str, limit: int, from_id: int | None = None) -> list[Trade]:
        """The trades :meth:`trades` shows, as the engine keeps them (a product formats its own rows)."""
        hist = self.book(symbol).trades
        if from_id is None:
            start = max(0, len(hist) - limit)
        else:
            if not hist:
                return []
            start = max(0, from_id - hist[0].id)
        return list(islice(hist, start, start + limit))

    def agg_trades(self, symbol: str, limit: int, from_id: int | None = None, start_time: int | None = None,
                   end_time: int | None = None) -> list[dict[str, Any]]:
        """Aggregate trades (REST shape), oldest first, by ``from_id`` or time range, else the latest."""
        return [a.rest() for a in self.agg_list(symbol, limit, from_id, start_time, end_time)]

    def agg_list(self, symbol: str, limit: int, from_id: int | None = None, start_time: int | None = None,
                 end_time: int | None = None) -> list[AggTrade]:
        """The aggregate trades :meth:`agg_trades` shows, as the engine keeps them."""
        hist = self.book(symbol).aggs
        if not hist:
            return []
        if from_id is not None:
            start = max(0, from_id - hist[0].id)
        elif start_time is not None:
            start = bisect_left(hist, start_time, key=_agg_time)
        elif end_time is not None:
            start = max(0, bisect_right(hist, end_time, key=_agg_time) - limit)
        else:
            start = max(0, len(hist) - limit)
        out: list[AggTrade] = []
        for agg in islice(hist, start, None):
            if len(out) >= limit or (end_time is not None and agg.time > end_time):
                break
            if start_time is not None and agg.time < start_time:
                continue
            out.append(agg)
        return out

    def klines(self, symbol: str, interval: str, limit: int, start_time: int | None = None,
               end_time: int | None = None, tz_offset_ms: int = 0) -> list[list[Any]]:
        """REST ``/api/v3/klines`` rows built from the retained trade history (the last
        :data:`TRADE_HISTORY` trades). Bars without trades between two traded ones are filled in at the
        previous close with zero volume, as Binance does; oldest first, at most ``limit``."""
        book = self.book(symbol)
        rows: list[list[Any]] = []
        for t in book.trades:
            if start_time is not None and t.time < start_time:
                continue
            if end_time is not None and t.time > end_time:
                break
            p = t.price
            if not rows or t.time > rows[-1][6]:
                o = bar_open(interval, t.time, tz_offset_ms)
                if rows:
                    prev_close = rows[-1][4]
                    gap_open = rows[-1][6] + 1
                    while gap_open < o and (start_time is None or len(rows) < limit):
                        gap_close = bar_close(interval, gap_open, tz_offset_ms)
                        rows.append([gap_open, prev_close, prev_close, prev_close, prev_close, 0, gap_close,
                                     0, 0, 0, 0, "0"])
                        gap_open = gap_close + 1
                    if start_time is None and len(rows) > 2 * limit:
                        del rows[:-limit]
                if start_time is not None and len(rows) >= limit:
                    break
                rows.append([o, p, p, p, p, 0, bar_close(interval, o, tz_offset_ms), 0, 0, 0, 0, "0"])
            row = rows[-1]
            if p > row[2]:
                row[2] = p
            elif p < row[3]:
                row[3] = p
            row[4] = p
            row[5] += t.qty
            row[7] += p * t.qty
            row[8] += 1
            if not t.buyer_is_maker:
                row[9] += t.qty
                row[10] += p * t.qty
        rows = rows[:limit] if start_time is not None else rows[-limit:]
        for r in rows:
            r[1], r[2], r[3], r[4], r[5] = fmt(r[1]), fmt(r[2]), fmt(r[3]), fmt(r[4]), fmt(r[5])
            r[7], r[9], r[10] = fmt(r[7] // SCALE), fmt(r[9]), fmt(r[10] // SCALE)
        return rows

    # -- orders ------------------------------------------------------------------------------------
    def place_order(self, symbol: str, side: str, order_type: str,
                    quantity: str | int | float | Decimal | None,
                    price: str | int | float | Decimal | None = None, time_in_force: str = TIME_IN_FORCE_GTC,
                    owner: object = None, client_order_id: str | None = None,
                    quote_order_qty: str | int | float | Decimal | None = None) -> dict[str, Any]:
        """Validate and execute an order; returns Binance's FULL order response (with ``fills``).

        A MARKET order may give ``quote_order_qty`` (Binance's ``quoteOrderQty``) instead of ``quantity``:
        a buy spends at most that much quote, a sell receives at most that much, in whole steps of base
        (:meth:`quantity_for_quote`).

        Raises :class:`InvalidSymbolError`, :class:`BadParameterError` (side/type/timeInForce/price),
        :class:`FilterFailureError` (PRICE_FILTER, LOT_SIZE, NOTIONAL) and :class:`OrderRejectedError`
        (LIMIT_MAKER that would take, or a symbol not TRADING). IOC/FOK/market remainders end
        ``EXPIRED``, as on Binance.
        """
        book = self.book(symbol)
        if book.spec.status != TRADING_STATUS:
            raise OrderRejectedError("Market is closed.")
        if side not in (SIDE_BUY, SIDE_SELL):
            raise BadParameterError("side")
        if order_type not in ORDER_TYPES:
            raise BadParameterError("type", -1116, "Invalid orderType.")
        is_market = order_type == ORDER_TYPE_MARKET
        if not is_market and time_in_force not in TIME_IN_FORCES:
            raise BadParameterError("timeInForce", -1115, "Invalid timeInForce.")
        is_buy = side == SIDE_BUY
        quote_qty = 0
        if quantity is None and quote_order_qty is not None:
            if not is_market:
                raise BadParameterError("quoteOrderQty", -1106,
                                        "Parameter 'quoteOrderQty' sent when not required.")
            quote_qty = to_units(quote_order_qty, "quoteOrderQty", "NOTIONAL")
            if quote_qty < book.min_notional:
                raise FilterFailureError("NOTIONAL")
            qty = self.quantity_for_quote(symbol, is_buy, quote_qty)
            if not qty:
                raise OrderRejectedError(
                    "Order book liquidity is less than LOT_SIZE filter minimum quantity.")
        else:
            if quantity is None:
                raise BadParameterError("quantity")
            qty = to_units(quantity, "quantity", "LOT_SIZE")
        if qty % book.step or qty > MAX_QTY_UNITS:
            raise FilterFailureError("LOT_SIZE")
        if is_market:
            px = 0
            ref = book.best_ask() if is_buy else book.best_bid()
            ref_price = ref[0] if ref is not None else book.last_price
            if not quote_qty and ref_price and ref_price * qty < book.min_notional * SCALE:
                raise FilterFailureError("NOTIONAL")
            tif = TIME_IN_FORCE_GTC
        else:
            if price is None:
                raise BadParameterError("price")
            px = to_units(price, "price", "PRICE_FILTER")
            if px % book.tick or px > MAX_PRICE_UNITS:
                raise FilterFailureError("PRICE_FILTER")
            if px * qty < book.min_notional * SCALE:
                raise FilterFailureError("NOTIONAL")
            tif = TIME_IN_FORCE_GTC if order_type == ORDER_TYPE_LIMIT_MAKER else time_in_force
            if order_type == ORDER_TYPE_LIMIT_MAKER:
                opposite = book.best_ask() if is_buy else book.best_bid()
                if opposite is not None and (px >= opposite[0] if is_buy else px <= opposite[0]):
                    raise OrderRejectedError("Order would immediately match and take.")
        fills: list[Trade] = []
        order = self.submit(book, is_buy, order_type, qty, px, tif, owner, client_order_id, fills, quote_qty)
        return order.response(fills, book.spec.base, book.spec.quote)

    def quantity_for_quote(self, symbol: str, is_buy: bool, quote_qty: int) -> int:
        """The most base, in whole steps, that ``quote_qty`` (1e-8 quote units) buys from the asks or, for a
        sell, that fetches at most that much from the bids, walking the book best first."""
        book = self.book(symbol)
        if is_buy:
            levels = ((-k, book.asks[-k].qty) for k in reversed(book.ask_keys))
        else:
            levels = ((p, book.bids[p].qty) for p in reversed(book.bid_keys))
        budget = quote_qty * SCALE  # price * qty units
        qty = 0
        for price, level_qty in levels:
            afford = budget // price
            take = min(level_qty, afford - afford % book.step)
            qty += take
            budget -= take * price
            if take < level_qty:
                break
        return qty

    def cancel_order(self, symbol: str, order_id: int) -> dict[str, Any]:
        """Cancel an open order; returns Binance's cancel response. Raises :class:`UnknownOrderError`."""
        book = self.book(symbol)
        order = self.orders.get(order_id)
        if order is None or order.symbol != book.symbol:
            raise UnknownOrderError()
        self.cancel(book, order)
        body = order.response()
        body["origClientOrderId"] = body["clientOrderId"]
        return body

    # -- engine (fast paths, also used by the order flow) -------------------------------------------
    def submit(self, book: SymbolBook, is_buy: bool, order_type: str, qty: int, price: int, tif: str,
               owner: object = None, client_order_id: str | None = None,
               fills: list[Trade] | None = None, quote_qty: int = 0) -> Order:
        """Match and (for GTC limits) rest an already validated order; amounts in 1e-8 units.

        ``price`` 0 means a market order (``quote_qty``: the quoteOrderQty it was given, if any). Fills are
        appended to ``fills`` when given.
        """
        now = self.clock.now_ms()
        order = Order(book.symbol, self.next_order_id, is_buy, order_type, tif, price, qty, now, owner,
                      client_order_id)
        order.orig_quote_qty = quote_qty
        self.next_order_id += 1
        notify = self._order_listeners.get(owner) if owner is not None else None
        if notify:
            self._notify(notify, OrderEvent(NEW, order, now))
        limit = price if price else (MAX_PRICE_UNITS * 2 if is_buy else 0)
        if tif == TIME_IN_FORCE_FOK and self._available(book, is_buy, limit) < qty:
            order.status = EXPIRED
            if notify:
                self._notify(notify, OrderEvent(EXPIRED, order, now))
            return order
        if is_buy:
            if book.ask_keys and -book.ask_keys[-1] <= limit:
                self._match(book, order, limit, now, fills)
        elif book.bid_keys and book.bid_keys[-1] >= limit:
            self._match(book, order, limit, now, fills)
        if order.remaining:
            if price and tif == TIME_IN_FORCE_GTC:
                order.working_time = now
                self._rest(book, order)
            else:
                order.status = EXPIRED
                if notify:
                    self._notify(notify, OrderEvent(EXPIRED, order, now))
        return order

    def cancel(self, book: SymbolBook, order: Order) -> bool:
        """Remove a resting order; False when it is no longer open."""
        if self.orders.pop(order.order_id, None) is None:
            return False
        is_bid = order.is_buy
        side = book.bids if is_bid else book.asks
        level = side[order.price]
        level.orders.remove(order)
        level.qty -= order.remaining
        qty = level.qty
        if not qty:
            del side[order.price]
            keys = book.bid_keys if is_bid else book.ask_keys
            key = order.price if is_bid else -order.price
            del keys[bisect_left(keys, key)]
        order.status = CANCELED
        book.update_id += 1
        for cb in self._on_level:
            cb(book, is_bid, order.price, qty)
        if order.owner is not None:
            notify = self._order_listeners.get(order.owner)
            if notify:
                self._notify(notify, OrderEvent(CANCELED, order, self.clock.now_ms()))
        return True

    def _rest(self, book: SymbolBook, order: Order) -> None:
        price = order.price
        is_bid = order.is_buy
        side = book.bids if is_bid else book.asks
        level = side.get(price)
        if level is None:
            level = side[price] = _Level()
            if is_bid:
                insort(book.bid_keys, price)
            else:
                insort(book.ask_keys, -price)
        level.orders.append(order)
        level.qty += order.remaining
        self.orders[order.order_id] = order
        book.update_id += 1
        qty = level.qty
        for cb in self._on_level:
            cb(book, is_bid, price, qty)

    @staticmethod
    def _available(book: SymbolBook, is_buy: bool, limit: int) -> int:
        total = 0
        if is_buy:
            for k in reversed(book.ask_keys):
                if -k > limit:
                    break
                total += book.asks[-k].qty
        else:
            for p in reversed(book.bid_keys):
                if p < limit:
                    break
                total += book.bids[p].qty
        return total

    def _match(self, book: SymbolBook, taker: Order, limit: int, now: int, fills: list[Trade] | None) -> None:
        is_buy = taker.is_buy
        keys = book.ask_keys if is_buy else book.bid_keys
        side = book.asks if is_buy else book.bids
        # The taker buys from asks: the buyer is maker exactly when the taker sells.
        buyer_is_maker = not is_buy
        order_listeners = self._order_listeners
        taker_notify = order_listeners.get(taker.owner) if taker.owner is not None else None
        remaining = taker.remaining
        while remaining and keys:
            price = -keys[-1] if is_buy else keys[-1]
            if (price > limit) if is_buy else (price < limit):
                break
            level = side[price]
            orders = level.orders
            agg_id = book.next_agg_id
            book.next_agg_id += 1
            first_id = book.next_trade_id
            at_price = 0
            while remaining and orders:
                maker = orders[0]
                q = maker.remaining if maker.remaining < remaining else remaining
                trade = Trade(book.next_trade_id, price, q, now, buyer_is_maker, agg_id)
                book.next_trade_id += 1
                remaining -= q
                at_price += q
                maker.remaining -= q
                maker.executed += q
                maker.cum_quote_raw += price * q
                if maker.remaining:
                    maker.status = PARTIALLY_FILLED
                else:
                    maker.status = FILLED
                    orders.popleft()
                    del self.orders[maker.order_id]
                book._record(trade)
                if fills is not None:
                    fills.append(trade)
                for cb_trade in self._on_trade:
                    cb_trade(book, trade)
                if maker.owner is not None:
                    notify = order_listeners.get(maker.owner)
                    if notify:
                        self._notify(notify, OrderEvent(TRADE, maker, now, trade, True))
                if taker_notify:
                    taker.remaining = remaining
                    taker.executed += q
                    taker.cum_quote_raw += price * q
                    taker.status = PARTIALLY_FILLED if remaining else FILLED
                    self._notify(taker_notify, OrderEvent(TRADE, taker, now, trade, False))
            level.qty -= at_price
            if not taker_notify:
                taker.executed += at_price
                taker.cum_quote_raw += price * at_price
            qty = level.qty
            if not qty:
                del side[price]
                keys.pop()
            book.update_id += 1
            for cb in self._on_level:
                cb(book, not is_buy, price, qty)
            agg = AggTrade(agg_id, price, at_price, first_id, book.next_trade_id - 1, now, buyer_is_maker)
            book.aggs.append(agg)
            for cb_agg in self._on_agg:
                cb_agg(book, agg)
        taker.remaining = remaining
        if taker.executed:
            taker.status = PARTIALLY_FILLED if remaining else FILLED

    @staticmethod
    def _notify(callbacks: list[OrderListener], event: OrderEvent) -> None:
        for cb in list(callbacks):
            cb(event)


def _agg_time(agg: AggTrade) -> int:
    return agg.time
