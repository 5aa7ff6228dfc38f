"""The simulator's futures REST API: USD-M under ``/fapi/v1`` and COIN-M under ``/dapi/v1``, served from the
same matching engine as spot (:mod:`binance_ws.sim.contracts` says how each book is listed).

Per product (``ContractMarket``): ``ping``, ``time``, ``exchangeInfo`` (futures shape: ``contractType``,
``pair``, ``marginAsset``, futures filters; COIN-M ``contractStatus`` and ``contractSize``), ``depth``
(``lastUpdateId E T bids asks``; COIN-M adds ``symbol pair``, quantities in contracts), ``trades`` (USD-M
``quoteQty isRPITrade``; COIN-M ``baseQty``), ``historicalTrades`` (the same rows; MARKET_DATA: the API key
header) and ``aggTrades`` (``a p q f l T m``, public), ``klines`` (no ``1s``), ``premiumIndex`` (mark and
index price, ``lastFundingRate``, ``interestRate``, ``nextFundingTime``), the listen-key routes
``POST/PUT/DELETE listenKey`` (USER_STREAM security: the API key alone) and the signed ``POST/DELETE order``
that makes the futures user-data events happen (USD-M; COIN-M on books in contract form).

Request weights are Binance's futures weights (depth 2/5/10/20 by limit, trades 5, klines 1/2/5/10 by limit,
historicalTrades and aggTrades 20, premiumIndex 1 or 10), counted per IP per minute against
``ContractMarket.weight_limit`` (2400) and reported in ``X-MBX-USED-WEIGHT-1M``; over it answers 429 -1003
with ``Retry-After``. Order endpoints weigh 0 (they count toward order limits, which the simulator does not
enforce). The REST fault hooks (``sim.faults.rest``: delay, forced failures) apply here as on spot: the REST
server installs them on every ``/fapi/`` and ``/dapi/`` request.

Mark and index price: the simulator has no spot index, so by default the index is the book's mid
price, the mark is the last price clamped between the best bid and ask, and the funding rate is the
premium clamped around the 0.01 % interest rate (Binance's method, on one sample). ``mark_source`` and
``depth_source`` replace these with the futures market-stream models when those are wired, so REST and
streams agree (the futures diff-depth ids must be ``lastUpdateId``'s id space).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from binance_ws.enums import KLINE_INTERVALS_MS
from binance_ws.sim.accounts import Accounts, SimApiError
from binance_ws.sim.clock import SimClock
from binance_ws.sim.contracts import (
    FUNDING_CLAMP,
    INTEREST_RATE,
    ONBOARD_DATE,
    ORDER_TYPES,
    PERPETUAL_DELIVERY,
    Contract,
    ContractMarket,
    band,
    next_funding_time,
)
from binance_ws.sim.exchange import SCALE, Exchange, ExchangeError
from binance_ws.sim.futures_accounts import FuturesAccounts
from binance_ws.sim.rest_account import API_KEY_HEADER, signed

#: ``(futures symbol, limit) -> depth body`` and ``(futures symbol, now) -> premiumIndex numbers``.
DepthSource = Callable[[str, int], dict[str, Any]]
MarkSource = Callable[[str, int], "MarkNumbers"]
Handler = Callable[[web.Request], Awaitable[web.Response]]

#: Error for an unknown symbol (7.3).
ERR_INVALID_SYMBOL: Final = (-1121, "Invalid symbol.")
WINDOW_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class MarkNumbers:
    """What ``premiumIndex`` reports for one symbol at one time."""

    mark: float
    index: float
    funding_rate: float
    next_funding_ms: int

    @classmethod
    def from_mark_price(cls, payload: dict[str, Any]) -> MarkNumbers:
        """From a ``markPriceUpdate`` payload (``p i r T``), so ``premiumIndex`` can report exactly what
        the ``@markPrice`` stream does: ``mark_source=lambda s, now: MarkNumbers.from_mark_price(
        feeds.mark_price(s, now))``."""
        return cls(float(payload["p"]), float(payload["i"]), float(payload["r"]), int(payload["T"]))


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                        headers=headers)


def _f8(value: float) -> str:
    return f"{value:.8f}"


class _Weights:
    """Per-IP request weight in fixed one-minute windows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used: dict[str, tuple[int, int]] = {}

    def add(self, ip: str, weight: int, now: float) -> tuple[int, float]:
        """Count ``weight``; returns the window's total and the seconds left in the window."""
        window = int(now // WINDOW_S)
        start, used = self._used.get(ip, (window, 0))
        if start != window:
            used = 0
        used += weight
        self._used[ip] = (window, used)
        return used, (window + 1) * WINDOW_S - now


class FuturesRest:
    """One futures product's REST routes (see the module docstring); ``add_routes(app)`` mounts them."""

    def __init__(self, market: ContractMarket, clock: SimClock, exchange: Exchange, accounts: Accounts,
                 futures: FuturesAccounts, *, depth_source: DepthSource | None = None,
                 mark_source: MarkSource | None = None,
                 replayed: Callable[[str], bool] | None = None) -> None:
        self.market = market
        self.clock = clock
        self.exchange = exchange
        self.accounts = accounts
        self.futures = futures
        self.depth_source = depth_source or self.engine_depth
        self.mark_source = mark_source or self.book_mark
        self.weights = _Weights(market.weight_limit)
        #: Symbols a replay lists beyond the engine's contracts: ``depth`` answers them from
        #: ``depth_source`` (the recording's snapshot), the rest of the API does not know them.
        self.replayed = replayed or (lambda symbol: False)

    # -- routes -----------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        p = self.market.prefix
        r = app.router
        for path, handler, weight in (
            ("ping", self._ping, lambda q: 1), ("time", self._time, lambda q: 1),
            ("exchangeInfo", self._exchange_info, lambda q: 1),
            ("depth", self._depth, lambda q: band(self.market.depth_weights, self._depth_limit(q))),
            ("trades", self._trades, lambda q: 5),
            ("historicalTrades", self._historical_trades, lambda q: self.market.history_weight),
            ("aggTrades", self._agg_trades, lambda q: self.market.history_weight),
            ("klines", self._klines, lambda q: band(self.market.klines_weights, self._klines_limit(q))),
            ("premiumIndex", self._premium_index,
             lambda q: self.market.premium_weights[0 if q.get("symbol") else 1]),
        ):
            r.add_get(f"{p}/{path}", self._metered(handler, weight))
        listen_key = self._metered(self._listen_key, lambda q: 1)
        for method in ("POST", "PUT", "DELETE"):
            r.add_route(method, f"{p}/listenKey", listen_key)
        # Orders: USD-M, and COIN-M books in contract form (futures_accounts docstring).
        r.add_post(f"{p}/order", self._metered(self._order(self.futures.place_order), lambda q: 0))
        r.add_delete(f"{p}/order", self._metered(self._order(self.futures.cancel_order), lambda q: 0))

    def _metered(self, handler: Handler, weight: Callable[[Any], int]) -> Handler:
        async def metered(request: web.Request) -> web.Response:
            try:
                used, left = self.weights.add(request.remote or "", weight(request.query), time.time())
            except ExchangeError as exc:
                return _json({"code": exc.code, "msg": exc.msg}, exc.status)
            headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
            if used > self.weights.limit:
                headers["Retry-After"] = str(max(1, math.ceil(left)))
                msg = (f"Too many requests; current limit of IP is {self.weights.limit} requests per "
                       "minute. Please use the websocket for live updates to avoid polling the API.")
                return _json({"code": -1003, "msg": msg}, 429, headers)
            try:
                response = await handler(request)
            except ExchangeError as exc:
                return _json({"code": exc.code, "msg": exc.msg}, exc.status, headers)
            except SimApiError as exc:
                return _json(exc.body(), exc.status, headers)
            response.headers.update(headers)
            return response
        return metered

    # -- parameters ---------------------------------------------------------------------------------------
    def _contract(self, request: web.Request) -> Contract:
        raw = request.query.get("symbol")
        if not raw:
            raise ExchangeError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or "
                                       "malformed.")
        contract = self.futures.contracts.get(raw.upper())
        if contract is None:
            raise ExchangeError(*ERR_INVALID_SYMBOL)
        return contract

    @staticmethod
    def _int(query: Any, name: str, default: int) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit() or len(raw) > 20:
            raise ExchangeError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                       "'^[0-9]{1,20}$'.")
        return int(raw)

    def _depth_limit(self, query: Any) -> int:
        """The asked limit rounded up to a valid one (5, 10, 20, 50, 100, 500, 1000)."""
        asked = self._int(query, "limit", self.market.depth_default)
        return next((v for v in self.market.depth_limits if v >= asked), self.market.depth_limits[-1])

    def _klines_limit(self, query: Any) -> int:
        return max(1, min(self._int(query, "limit", self.market.klines_default), self.market.klines_max))

    # -- market data --------------------------------------------------------------------------------------
    async def _ping(self, request: web.Request) -> web.Response:
        return _json({})

    async def _time(self, request: web.Request) -> web.Response:
        return _json({"serverTime": self.clock.now_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return _json(self.exchange_info_body())

    def exchange_info_body(self) -> dict[str, Any]:
        """The futures ``exchangeInfo`` body (USD-M lists margin ``assets``; COIN-M does not)."""
        body: dict[str, Any] = {"exchangeFilters": [], "rateLimits": self.market.rate_limits(),
                                "serverTime": self.clock.now_ms()}
        if self.market.lists_assets:
            margins = dict.fromkeys(c.margin_asset for c in self.futures.contracts.values())
            body["assets"] = [{"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"}
                              for a in margins]
        body["symbols"] = [self._symbol_info(c) for c in self.futures.contracts.values()]
        body["timezone"] = "UTC"
        return body

    def _symbol_info(self, c: Contract) -> dict[str, Any]:
        spec = c.spec
        tick, step = spec.tick_size, spec.step_size
        if c.contract_size:
            step_text, min_qty, max_qty = "1", "1", "1000000"
        else:
            step_text, min_qty, max_qty = step.rstrip("0").rstrip("."), step.rstrip("0").rstrip("."), "1000"
        tick_text = tick.rstrip("0").rstrip(".")
        filters: list[dict[str, Any]] = [
            {"filterType": "PRICE_FILTER", "maxPrice": "4529764", "minPrice": tick_text,
             "tickSize": tick_text},
            {"filterType": "LOT_SIZE", "maxQty": max_qty, "minQty": min_qty, "stepSize": step_text},
            {"filterType": "MARKET_LOT_SIZE", "maxQty": max_qty, "minQty": min_qty, "stepSize": step_text},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
        ]
        if not c.contract_size:
            notional = spec.min_notional.rstrip("0").rstrip(".")
            filters.append({"filterType": "MIN_NOTIONAL", "notional": notional})
        filters.append({"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                        "multiplierDecimal": "4"})
        common = {"filters": filters, "orderTypes": list(ORDER_TYPES),
                  "timeInForce": list(self.market.time_in_force), "liquidationFee": "0.012500",
                  "marketTakeBound": "0.05"}
        if c.contract_size:  # COIN-M key order (Binance's COIN-M page)
            return {**common, "symbol": c.symbol, "pair": c.pair, "contractType": "PERPETUAL",
                    "deliveryDate": PERPETUAL_DELIVERY, "onboardDate": ONBOARD_DATE,
                    "contractStatus": spec.status, "contractSize": c.contract_size, "quoteAsset": c.quote,
                    "baseAsset": c.base, "marginAsset": c.margin_asset, "pricePrecision": c.price_places,
                    "quantityPrecision": 0, "baseAssetPrecision": 8, "quotePrecision": 8,
                    "equalQtyPrecision": 4, "triggerProtect": "0.0500", "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000", "underlyingType": "COIN", "underlyingSubType": []}
        return {"symbol": c.symbol, "pair": c.pair, "contractType": "PERPETUAL",
                "deliveryDate": PERPETUAL_DELIVERY, "onboardDate": ONBOARD_DATE, "status": spec.status,
                "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000", "baseAsset": c.base,
                "quoteAsset": c.quote, "marginAsset": c.margin_asset, "pricePrecision": c.price_places,
                "quantityPrecision": c.qty_places, "baseAssetPrecision": 8, "quotePrecision": 8,
                "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0,
                "triggerProtect": "0.0500", **common}

    async def _depth(self, request: web.Request) -> web.Response:
        raw = (request.query.get("symbol") or "").upper()
        if raw and raw not in self.futures.contracts and self.replayed(raw):
            return _json(self.depth_source(raw, self._depth_limit(request.query)))
        contract = self._contract(request)
        return _json(self.depth_source(contract.symbol, self._depth_limit(request.query)))

    def engine_depth(self, symbol: str, limit: int) -> dict[str, Any]:
        """The futures depth body from the engine's book (ids: the book's update id)."""
        c = self.futures.contracts[symbol]
        book = self.exchange.book(c.engine_symbol)
        now = self.clock.now_ms()
        bids = [[c.price(p), c.quantity(book.bids[p].qty, p)] for p in reversed(book.bid_keys[-limit:])]
        asks = [[c.price(-k), c.quantity(book.asks[-k].qty, -k)] for k in reversed(book.ask_keys[-limit:])]
        body: dict[str, Any] = {"lastUpdateId": book.update_id}
        if self.market.pair_keys:
            body.update({"symbol": c.symbol, "pair": c.pair})
        body.update({"E": now, "T": now, "bids": bids, "asks": asks})
        return body

    async def _trades(self, request: web.Request) -> web.Response:
        c = self._contract(request)
        asked = self._int(request.query, "limit", self.market.trades_default)
        limit = max(1, min(asked, self.market.trades_max))
        return _json([self._trade_row(c, t) for t in self.exchange.trade_list(c.engine_symbol, limit)])

    async def _historical_trades(self, request: web.Request) -> web.Response:
        """``historicalTrades``: MARKET_DATA, so the API key header is required (-2014 / -2015 without a
        valid one); ``fromId`` or the latest, at most ``historical_max``."""
        self.accounts.lookup_key(request.headers.get(API_KEY_HEADER))
        c = self._contract(request)
        asked = self._int(request.query, "limit", self.market.historical_default)
        limit = max(1, min(asked, self.market.historical_max))
        from_id = request.query.get("fromId")
        rows = self.exchange.trade_list(c.engine_symbol, limit,
                                        None if from_id is None else self._int(request.query, "fromId", 0))
        return _json([self._trade_row(c, t) for t in rows])

    async def _agg_trades(self, request: web.Request) -> web.Response:
        """``aggTrades`` (public): by ``fromId``, or ``startTime``/``endTime``, else the latest."""
        c = self._contract(request)
        q = request.query
        asked = self._int(q, "limit", self.market.agg_default)
        limit = max(1, min(asked, self.market.agg_max))

        def opt(name: str) -> int | None:
            return None if q.get(name) in (None, "") else self._int(q, name, 0)

        aggs = self.exchange.agg_list(c.engine_symbol, limit, opt("fromId"), opt("startTime"), opt("endTime"))
        return _json([{"a": a.id, "p": c.price(a.price), "q": c.quantity(a.qty, a.price), "f": a.first_id,
                       "l": a.last_id, "T": a.time, "m": a.buyer_is_maker} for a in aggs])

    @staticmethod
    def _trade_row(c: Contract, t: Any) -> dict[str, Any]:
        """A ``trades`` / ``historicalTrades`` row: USD-M ``quoteQty isRPITrade``, COIN-M ``baseQty``."""
        row: dict[str, Any] = {"id": t.id, "price": c.price(t.price), "qty": c.quantity(t.qty, t.price)}
        if c.contract_size:
            row["baseQty"] = f"{c.base_quantity(t.qty, t.price):.8f}"
        else:
            row["quoteQty"] = f"{t.price * t.qty / SCALE / SCALE:.8f}".rstrip("0").rstrip(".")
        row.update({"time": t.time, "isBuyerMaker": t.buyer_is_maker})
        if not c.contract_size:
            row["isRPITrade"] = False
        return row

    async def _klines(self, request: web.Request) -> web.Response:
        c = self._contract(request)
        interval = request.query.get("interval")
        if not interval:
            raise ExchangeError(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or "
                                       "malformed.")
        if interval not in KLINE_INTERVALS_MS or interval == "1s":  # futures have no 1s bars (8)
            raise ExchangeError(-1120, "Invalid interval.")
        start = request.query.get("startTime")
        end = request.query.get("endTime")
        return _json(self.exchange.klines(
            c.engine_symbol, interval, self._klines_limit(request.query),
            self._int(request.query, "startTime", 0) if start else None,
            self._int(request.query, "endTime", 0) if end else None))

    async def _premium_index(self, request: web.Request) -> web.Response:
        now = self.clock.now_ms()
        if request.query.get("symbol"):
            return _json(self._premium_row(self._contract(request), now))
        return _json([self._premium_row(c, now) for c in self.futures.contracts.values()])

    def _premium_row(self, c: Contract, now: int) -> dict[str, Any]:
        m = self.mark_source(c.symbol, now)
        row: dict[str, Any] = {"symbol": c.symbol}
        if self.market.pair_keys:
            row["pair"] = c.pair
        row.update({"markPrice": _f8(m.mark), "indexPrice": _f8(m.index),
                    "estimatedSettlePrice": _f8(m.index),
                    "lastFundingRate": _f8(m.funding_rate), "interestRate": _f8(INTEREST_RATE),
                    "nextFundingTime": m.next_funding_ms, "time": now})
        return row

    def book_mark(self, symbol: str, now: int) -> MarkNumbers:
        """Mark, index and funding from the book alone (see the module docstring)."""
        book = self.exchange.book(self.futures.contracts[symbol].engine_symbol)
        bid, ask = book.best_bid(), book.best_ask()
        last = book.last_price / SCALE or book.spec.price
        if bid and ask:
            index = (bid[0] + ask[0]) / 2 / SCALE
            mark = min(max(last, bid[0] / SCALE), ask[0] / SCALE)
        else:
            index = mark = last
        premium = (mark - index) / index if index else 0.0
        rate = premium + min(max(INTEREST_RATE - premium, -FUNDING_CLAMP), FUNDING_CLAMP)
        return MarkNumbers(mark, index, rate, next_funding_time(now))

    # -- user data ----------------------------------------------------------------------------------------
    async def _listen_key(self, request: web.Request) -> web.Response:
        """``listenKey``: USER_STREAM security, the API key only (PROTOCOL 8); one key per account and
        product, whose stream carries this product's events."""
        account = self.accounts.lookup_key(request.headers.get(API_KEY_HEADER)).account
        params = dict(request.query)
        if request.can_read_body:
            params.update(parse_qsl(await request.text(), keep_blank_values=True))
        key = params.get("listenKey") or None
        channel = self.market.name
        if request.method == "POST":
            self.futures.of(account)
            return _json({"listenKey": self.accounts.create_listen_key(account, channel)})
        if request.method == "PUT":
            return _json({"listenKey": self.accounts.keepalive_listen_key(account, key, channel)})
        self.accounts.close_listen_key(account, key, channel)
        return _json({})

    def _order(self, action: Callable[[Any, dict[str, str]], dict[str, Any]]) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            account, params = await signed(request, self.accounts)
            return _json(action(account, params))
        return handle
