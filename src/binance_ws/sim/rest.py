"""The simulator's REST API: the public market-data endpoints of api.binance.com on loopback (aiohttp).

Shapes follow Binance's spot REST API so that an unmodified python-binance ``AsyncClient`` works once its
base URL points here. Request weights are counted per IP in fixed windows and reported in
``X-MBX-USED-WEIGHT-1M`` and ``X-MBX-USED-WEIGHT`` (Binance sends both on every answer); going over
answers 429 with ``Retry-After`` and -1003, and an IP that keeps going during a 429 period is banned
with 418 (PROTOCOL 7.3). ``POST /api/v3/userDataStream`` answers 410 Gone as today's Binance does
(PROTOCOL 6.1), unless the legacy listen-key flow is switched on. An unknown path or method answers
404 / 405 with a JSON ``{"code","msg"}`` body, never aiohttp's text/plain page.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from binance_ws.enums import KLINE_INTERVALS_MS
from binance_ws.sim.exchange import (
    MAX_PRICE_UNITS,
    MAX_QTY_UNITS,
    ORDER_TYPES,
    SCALE,
    BadParameterError,
    ExchangeError,
    InvalidSymbolError,
    fmt,
)
from binance_ws.sim.feeds import AVG_PRICE_INTERVAL, DAY_MS, TICKER_WINDOWS_MS, window_stats_fields

if TYPE_CHECKING:
    from binance_ws.sim.clock import SimClock
    from binance_ws.sim.config import SimConfig
    from binance_ws.sim.exchange import Exchange, SymbolBook
    from binance_ws.sim.listing import Listing

PREFIX = "/api/v3"
#: Other API prefixes the REST fault hooks apply to (the futures products', PROTOCOL 8), and the weight
#: limit a forced 429 names for them.
FAULTED_PREFIXES = ("/fapi/", "/dapi/")
FUTURES_WEIGHT_LIMIT = 2400

#: Depth weight by limit (PROTOCOL 5.1): upper bound of each limit band -> weight.
DEPTH_WEIGHTS: tuple[tuple[int, int], ...] = ((100, 5), (500, 25), (1000, 50), (5000, 250))
DEPTH_DEFAULT_LIMIT = 100
DEPTH_MAX_LIMIT = 5000

#: Fixed request weights (Binance spot rest-api.md, market-data endpoints).
WEIGHTS: dict[str, int] = {
    "ping": 1, "time": 1, "exchangeInfo": 20, "trades": 25, "historicalTrades": 25, "aggTrades": 4,
    "klines": 2, "uiKlines": 2, "avgPrice": 2, "userDataStream": 2,
    # Signed (TRADE / USER_DATA) endpoints, rest-api.md; openOrders, myTrades and order/test vary, below.
    "account": 20, "allOrders": 20, "account/commission": 20, "rateLimit/order": 40,
}
#: ``GET /order`` weighs 4; placing and cancelling weigh 1 (rest-api.md).
ORDER_QUERY_WEIGHT = 4
#: ``GET /openOrders``: 6 for one symbol, 80 for every symbol (``DELETE /openOrders`` weighs 1).
OPEN_ORDERS_WEIGHTS = (6, 80)
#: ``GET /myTrades``: 20, or 5 with ``orderId``.
MY_TRADES_WEIGHTS = (20, 5)
#: ``POST /order/test``: 1, or 20 with ``computeCommissionRates=true``.
ORDER_TEST_WEIGHTS = (1, 20)
#: An unknown path or method. Binance's body for it is not in PROTOCOL.md; a client can only rely on
#: Binance's error shape (7.3), so the simulator answers 404 with JSON ``{"code","msg"}``: -1000
#: (UNKNOWN, errors.md's catch-all) and a message naming what was asked.
MSG_NOT_FOUND = "Path {path}, Method {method} is invalid"
#: Ticker weights (rest-api.md): one symbol, a list by size band, or every symbol.
TICKER_24H_WEIGHTS: tuple[tuple[int, int], ...] = ((20, 2), (100, 40))
TICKER_24H_ALL_WEIGHT = 80
TICKER_SIMPLE_ONE_WEIGHT = 2  # ticker/price and ticker/bookTicker
TICKER_SIMPLE_MANY_WEIGHT = 4
TICKER_WINDOW_WEIGHT_PER_SYMBOL = 4  # /ticker: 4 per symbol, at most 200
TICKER_WINDOW_MAX_WEIGHT = 200

#: Default and largest ``limit`` of list endpoints (rest-api.md).
LIST_DEFAULT_LIMIT = 500
LIST_MAX_LIMIT = 1000

#: Advertised in exchangeInfo (spot production values).
RATE_LIMITS_EXTRA: tuple[dict[str, Any], ...] = (
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
)

#: Binance's error messages (errors.md).
MSG_TOO_MANY = ("Too much request weight used; current limit is {limit} request weight per {window}. "
                "Please use WebSocket Streams for live updates to avoid polling the API.")
MSG_BANNED = ("Way too much request weight used; IP banned until {until}. "
              "Please use WebSocket Streams for live updates to avoid bans.")
MSG_UNKNOWN = "An unknown error occurred while processing the request."
MSG_INTERNAL = "Internal error; unable to process your request. Please try again."

#: What nginx answers for a retired route (PROTOCOL 6.1 [OBS]: gocryptotrader #2190 and others).
GONE_BODY = ("<html>\r\n<head><title>410 Gone</title></head>\r\n<body>\r\n"
             "<center><h1>410 Gone</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")

#: Legacy listen keys: 64 characters, valid 60 minutes without a keepalive (PROTOCOL 6.2).
LISTEN_KEY_LENGTH = 64
LISTEN_KEY_TTL_S = 3600.0

#: ``timeZone`` parameter of /klines: hours[:minutes], within -12:00..+14:00 (rest-api.md).
MIN_TZ_MINUTES = -12 * 60
MAX_TZ_MINUTES = 14 * 60

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(ExchangeError):
    """An error answered with a specific HTTP status (401, 404, ...)."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(code, msg)
        self.status = status


@dataclass(slots=True)
class _IpWeight:
    window: int = -1
    used: int = 0
    #: Requests answered 429 in this window after the first one.
    strikes: int = 0
    over: bool = False
    banned_until: float = 0.0


@dataclass(slots=True)
class _ListenKey:
    api_key_hash: str
    expires: float


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                        headers=headers)


def _error(code: int, msg: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"code": code, "msg": msg}, status, headers)


def _int_param(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 20:
        raise _illegal(name, " legal range is '^[0-9]{1,20}$'.")
    return int(raw)


def _limit(request: web.Request, default: int, maximum: int) -> int:
    value = _int_param(request, "limit", default)
    if value is None or value < 1:
        raise _illegal("limit")
    return min(value, maximum)


def _illegal(name: str, detail: str = "") -> ApiError:
    tail = f";{detail}" if detail else "."
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'{tail}")


def depth_weight(limit: int) -> int:
    for bound, weight in DEPTH_WEIGHTS:
        if limit <= bound:
            return weight
    return DEPTH_WEIGHTS[-1][1]


def _symbols_param(raw: str) -> list[str]:
    """Parse ``symbols=["BTCUSDT","BNBBTC"]`` (a JSON array in the query string)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _illegal("symbols") from None
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        raise BadParameterError("symbols")
    return value


def tz_offset_ms(raw: str | None) -> int:
    """``timeZone`` of /klines ("8", "+08:00", "-5:30") as an offset in ms; raises -1100 if malformed."""
    if not raw:
        return 0
    sign = -1 if raw.startswith("-") else 1
    hours, _, minutes = raw.lstrip("+-").partition(":")
    if not hours.isdigit() or (minutes and not minutes.isdigit()):
        raise _illegal("timeZone")
    total = sign * (int(hours) * 60 + int(minutes or 0))
    if not MIN_TZ_MINUTES <= total <= MAX_TZ_MINUTES:
        raise _illegal("timeZone")
    return total * 60_000


def book_ticker_body(book: SymbolBook) -> dict[str, Any]:
    """One symbol's ``/ticker/bookTicker`` body (also the WS API's ``ticker.book``)."""
    bid = book.best_bid() or (0, 0)
    ask = book.best_ask() or (0, 0)
    return {"symbol": book.symbol, "bidPrice": fmt(bid[0]), "bidQty": fmt(bid[1]), "askPrice": fmt(ask[0]),
            "askQty": fmt(ask[1])}


def avg_price_body(book: SymbolBook, now: int) -> dict[str, Any]:
    """The ``/avgPrice`` body (also the WS API's ``avgPrice``)."""
    return {"mins": int(AVG_PRICE_INTERVAL.rstrip("m")), "price": fmt(book.avg_price(now)),
            "closeTime": book.last_trade_time}


class RestServer:
    """REST endpoints of the simulated exchange: ``app`` is the aiohttp application, ``port`` its port."""

    def __init__(self, config: SimConfig, clock: SimClock, exchange: Exchange, listing: Listing) -> None:
        self.config = config
        self.clock = clock
        self.exchange = exchange
        self.listing = listing
        self.port = 0
        #: Fault hooks (installed by :class:`~binance_ws.sim.faults.Faults`): a delay before every answer,
        #: and a callable giving the HTTP status to fail the next request with (or None to answer it).
        self.delay_s = 0.0
        self.injected_failure: Callable[[], int | None] | None = None
        self._ips: dict[str, _IpWeight] = {}
        #: Active legacy listen keys (only with ``config.legacy_listen_keys``).
        self.listen_keys: dict[str, _ListenKey] = {}
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._middleware])
        r = self.app.router
        for path, handler in (
            ("ping", self._ping), ("time", self._time), ("exchangeInfo", self._exchange_info),
            ("depth", self._depth), ("trades", self._trades), ("historicalTrades", self._historical_trades),
            ("aggTrades", self._agg_trades), ("klines", self._klines), ("uiKlines", self._klines),
            ("ticker/24hr", self._ticker_24h), ("ticker/price", self._ticker_price),
            ("ticker/bookTicker", self._book_ticker), ("ticker", self._ticker_window),
            ("avgPrice", self._avg_price),
        ):
            r.add_get(f"{PREFIX}/{path}", handler)
        r.add_route("*", f"{PREFIX}/userDataStream", self._user_data_stream)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind ``config.host``/``config.rest_port`` (0: ephemeral) and set ``port``."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.rest_port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- middleware: faults, weights, bans, error mapping -----------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await self._metered(request, handler)
        except web.HTTPNotFound:
            return _error(-1000, MSG_NOT_FOUND.format(path=request.path, method=request.method), 404)
        except web.HTTPMethodNotAllowed:
            return _error(-1000, MSG_NOT_FOUND.format(path=request.path, method=request.method), 405)

    async def _metered(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(PREFIX):
            if request.path.startswith(FAULTED_PREFIXES):
                # Futures routes meter their own weight (futures_rest); the fault hooks cover them too.
                if self.delay_s > 0:
                    await asyncio.sleep(self.delay_s)
                failed = self._injected_failure(FUTURES_WEIGHT_LIMIT)
                if failed is not None:
                    return failed
            return await handler(request)
        ip = request.remote or ""
        now = time.time()
        state = self._ips.setdefault(ip, _IpWeight())
        cfg = self.config
        if state.banned_until > now:
            return self._banned(state, now)
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        failed = self._injected_failure(cfg.rest_weight_limit)
        if failed is not None:
            return failed
        window = int(now // cfg.rest_weight_window_s)
        if window != state.window:
            state.window, state.used, state.strikes, state.over = window, 0, 0, False
        retry_after = str(max(1, math.ceil((window + 1) * cfg.rest_weight_window_s - now)))
        if state.over:
            state.strikes += 1
            if state.strikes > cfg.rest_ban_after_429s:
                state.banned_until = now + cfg.rest_ban_s
                return self._banned(state, now)
        else:
            try:
                state.used += self._weight(request)
            except ExchangeError as exc:
                return _error(exc.code, exc.msg, exc.status)
            state.over = state.used > cfg.rest_weight_limit
        headers = {"X-MBX-USED-WEIGHT": str(state.used), "X-MBX-USED-WEIGHT-1M": str(state.used)}
        if state.over:
            headers["Retry-After"] = retry_after
            window_s = cfg.rest_weight_window_s
            window_name = "1 MINUTE" if window_s == 60 else f"{window_s:g} SECOND"
            return _error(-1003, MSG_TOO_MANY.format(limit=cfg.rest_weight_limit, window=window_name), 429,
                          headers)
        try:
            response = await handler(request)
        except ExchangeError as exc:
            return _error(exc.code, exc.msg, exc.status, headers)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            # Counted like any request, and the weight headers go with the JSON 404 / 405.
            body = {"code": -1000, "msg": MSG_NOT_FOUND.format(path=request.path, method=request.method)}
            return _json(body, exc.status, headers)
        response.headers.update(headers)
        return response

    def _banned(self, state: _IpWeight, now: float) -> web.Response:
        until_ms = int(state.banned_until * 1000)
        return _error(-1003, MSG_BANNED.format(until=until_ms), 418,
                      {"Retry-After": str(max(1, math.ceil(state.banned_until - now)))})

    def _injected_failure(self, limit: int) -> web.Response | None:
        """The answer forced by the ``injected_failure`` hook, if one is installed and fails this request."""
        status = self.injected_failure() if self.injected_failure is not None else None
        if not status:
            return None
        if status in (418, 429):
            body = MSG_TOO_MANY.format(limit=limit, window="1 MINUTE")
            return _error(-1003, body, status, {"Retry-After": "1"})
        if status >= 500:
            return _error(-1001, MSG_INTERNAL, status)
        return _error(-1000, MSG_UNKNOWN, status)

    def _weight(self, request: web.Request) -> int:
        path = request.path[len(PREFIX) + 1:]
        q = request.query
        if path == "depth":
            limit = _int_param(request, "limit", DEPTH_DEFAULT_LIMIT) or DEPTH_DEFAULT_LIMIT
            return depth_weight(min(limit, DEPTH_MAX_LIMIT))
        if path == "ticker/24hr":
            if "symbol" in q:
                return TICKER_24H_WEIGHTS[0][1]
            if "symbols" in q:
                n = len(_symbols_param(q["symbols"]))
                return next((w for bound, w in TICKER_24H_WEIGHTS if n <= bound), TICKER_24H_ALL_WEIGHT)
            return TICKER_24H_ALL_WEIGHT
        if path in ("ticker/price", "ticker/bookTicker"):
            return TICKER_SIMPLE_ONE_WEIGHT if "symbol" in q else TICKER_SIMPLE_MANY_WEIGHT
        if path == "ticker":
            n = len(_symbols_param(q["symbols"])) if "symbols" in q else 1
            return min(TICKER_WINDOW_WEIGHT_PER_SYMBOL * n, TICKER_WINDOW_MAX_WEIGHT)
        if path == "order":
            return ORDER_QUERY_WEIGHT if request.method == "GET" else 1
        if path == "openOrders":
            if request.method == "DELETE":
                return 1
            return OPEN_ORDERS_WEIGHTS[0 if q.get("symbol") else 1]
        if path == "myTrades":
            return MY_TRADES_WEIGHTS[1 if q.get("orderId") else 0]
        if path == "order/test":
            # The flag may also travel in the form body, which is not read here; the query is the norm.
            return ORDER_TEST_WEIGHTS[1 if q.get("computeCommissionRates") == "true" else 0]
        return WEIGHTS.get(path, 1)

    # -- parameters ---------------------------------------------------------------------------------
    def _symbol(self, request: web.Request, engine_only: bool = True) -> str:
        raw = request.query.get("symbol")
        if not raw:
            raise BadParameterError("symbol")
        symbol = raw.upper()
        listed = self.exchange.symbols if engine_only else self.listing.symbols()
        if symbol not in listed:
            raise InvalidSymbolError()
        return symbol

    def _selected(self, request: web.Request) -> tuple[list[str], bool]:
        """Symbols chosen by ``symbol`` or ``symbols`` (else all), and whether one object is expected."""
        q = request.query
        if "symbol" in q:
            return [self._symbol(request)], True
        if "symbols" in q:
            names = [s.upper() for s in _symbols_param(q["symbols"])]
            for s in names:
                if s not in self.exchange.symbols:
                    raise InvalidSymbolError()
            return names, False
        return list(self.exchange.symbols), False

    # -- endpoints ----------------------------------------------------------------------------------
    async def _ping(self, request: web.Request) -> web.Response:
        return _json({})

    async def _time(self, request: web.Request) -> web.Response:
        return _json({"serverTime": self.clock.now_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        names, _ = self._selected(request)
        return _json(self.exchange_info_body(names))

    def exchange_info_body(self, names: list[str]) -> dict[str, Any]:
        """The ``/api/v3/exchangeInfo`` body for ``names`` (also the WS API's ``exchangeInfo`` result)."""
        cfg = self.config
        window_s = cfg.rest_weight_window_s
        interval, num = ("MINUTE", int(window_s // 60)) if window_s % 60 == 0 else ("SECOND", int(window_s))
        rate_limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": interval, "intervalNum": num,
                        "limit": cfg.rest_weight_limit}, *RATE_LIMITS_EXTRA]
        return {"timezone": "UTC", "serverTime": self.clock.now_ms(), "rateLimits": rate_limits,
                "exchangeFilters": [], "symbols": [self._symbol_info(s) for s in names]}

    def _symbol_info(self, symbol: str) -> dict[str, Any]:
        book = self.exchange.symbols[symbol]
        spec = book.spec
        return {
            "symbol": symbol, "status": spec.status, "baseAsset": spec.base, "baseAssetPrecision": 8,
            "quoteAsset": spec.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8, "orderTypes": list(ORDER_TYPES),
            "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": False, "allowTrailingStop": False, "cancelReplaceAllowed": False,
            "amendAllowed": False, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": fmt(book.tick), "maxPrice": fmt(MAX_PRICE_UNITS),
                 "tickSize": fmt(book.tick)},
                {"filterType": "LOT_SIZE", "minQty": fmt(book.step), "maxQty": fmt(MAX_QTY_UNITS),
                 "stepSize": fmt(book.step)},
                {"filterType": "NOTIONAL", "minNotional": fmt(book.min_notional), "applyMinToMarket": True,
                 "maxNotional": fmt(9_000_000 * SCALE), "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE"],
        }

    async def _depth(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request, engine_only=False)
        limit = _limit(request, DEPTH_DEFAULT_LIMIT, DEPTH_MAX_LIMIT)
        wanted = request.query.get("symbolStatus")
        book = self.exchange.symbols.get(symbol)
        # PROTOCOL 5.1: an optional symbolStatus that does not match answers -1220.
        if wanted and book is not None and book.spec.status != wanted:
            raise ApiError(-1220, "The symbol's status does not match the requested symbolStatus.")
        return _json(self.listing.depth_snapshot(symbol, limit))

    async def _trades(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request)
        return _json(self.exchange.trades(symbol, _limit(request, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)))

    async def _historical_trades(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request)
        limit = _limit(request, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)
        return _json(self.exchange.trades(symbol, limit, _int_param(request, "fromId")))

    async def _agg_trades(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request)
        limit = _limit(request, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)
        return _json(self.exchange.agg_trades(
            symbol, limit, _int_param(request, "fromId"), _int_param(request, "startTime"),
            _int_param(request, "endTime")))

    async def _klines(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request)
        interval = request.query.get("interval")
        if not interval:
            raise BadParameterError("interval")
        if interval not in KLINE_INTERVALS_MS:
            raise ApiError(-1120, "Invalid interval.")
        limit = _limit(request, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)
        return _json(self.exchange.klines(
            symbol, interval, limit, _int_param(request, "startTime"), _int_param(request, "endTime"),
            tz_offset_ms(request.query.get("timeZone"))))

    async def _ticker_24h(self, request: web.Request) -> web.Response:
        names, single = self._selected(request)
        mini = request.query.get("type", "FULL") == "MINI"
        now = self.clock.now_ms()
        out = [self._ticker_body(s, DAY_MS, now, full=not mini, day=True) for s in names]
        return _json(out[0] if single else out)

    async def _ticker_window(self, request: web.Request) -> web.Response:
        names, single = self._selected(request)
        size = request.query.get("windowSize", "1d")
        if size not in TICKER_WINDOWS_MS:
            raise _illegal("windowSize")
        mini = request.query.get("type", "FULL") == "MINI"
        now = self.clock.now_ms()
        out = [self._ticker_body(s, TICKER_WINDOWS_MS[size], now, full=not mini, day=False) for s in names]
        return _json(out[0] if single else out)

    def _ticker_body(self, symbol: str, window_ms: int, now: int, *, full: bool, day: bool) -> dict[str, Any]:
        book = self.exchange.symbols[symbol]
        st = book.stats(window_ms, now)
        fields = window_stats_fields(st)
        body: dict[str, Any] = {"symbol": symbol}
        if full:
            body.update(priceChange=fields["priceChange"], priceChangePercent=fields["priceChangePercent"],
                        weightedAvgPrice=fields["weightedAvgPrice"])
            if day:
                bid = book.best_bid() or (0, 0)
                ask = book.best_ask() or (0, 0)
                body.update(prevClosePrice=fmt(st.prev_close), lastPrice=fields["lastPrice"],
                            lastQty=fmt(st.last_qty), bidPrice=fmt(bid[0]), bidQty=fmt(bid[1]),
                            askPrice=fmt(ask[0]), askQty=fmt(ask[1]))
        body.update(openPrice=fields["openPrice"], highPrice=fields["highPrice"], lowPrice=fields["lowPrice"],
                    lastPrice=fields["lastPrice"], volume=fields["volume"], quoteVolume=fields["quoteVolume"],
                    openTime=st.open_time, closeTime=now, firstId=st.first_id, lastId=st.last_id,
                    count=st.count)
        return body

    async def _ticker_price(self, request: web.Request) -> web.Response:
        names, single = self._selected(request)
        out = [{"symbol": s, "price": fmt(self.exchange.symbols[s].last_price)} for s in names]
        return _json(out[0] if single else out)

    async def _book_ticker(self, request: web.Request) -> web.Response:
        names, single = self._selected(request)
        out = [book_ticker_body(self.exchange.symbols[s]) for s in names]
        return _json(out[0] if single else out)

    async def _avg_price(self, request: web.Request) -> web.Response:
        return _json(avg_price_body(self.exchange.symbols[self._symbol(request)], self.clock.now_ms()))

    # -- user data stream (retired on spot, PROTOCOL 6.1) -------------------------------------------
    async def _user_data_stream(self, request: web.Request) -> web.Response:
        if not self.config.legacy_listen_keys:
            return web.Response(status=410, text=GONE_BODY, content_type="text/html")
        api_key = request.headers.get("X-MBX-APIKEY", "")
        if not api_key:
            raise ApiError(-2014, "API-key format invalid.", 401)
        key_hash = hashlib.sha256(api_key.encode()).hexdigest()
        now = time.monotonic()
        self._expire_listen_keys(now)
        if request.method == "POST":
            for key, existing in self.listen_keys.items():
                if existing.api_key_hash == key_hash:
                    existing.expires = now + LISTEN_KEY_TTL_S
                    return _json({"listenKey": key})
            alphabet = string.ascii_letters + string.digits
            key = "".join(secrets.choice(alphabet) for _ in range(LISTEN_KEY_LENGTH))
            self.listen_keys[key] = _ListenKey(key_hash, now + LISTEN_KEY_TTL_S)
            return _json({"listenKey": key})
        if request.method not in ("PUT", "DELETE"):
            raise web.HTTPMethodNotAllowed(request.method, ["POST", "PUT", "DELETE"])
        params = dict(request.query)
        if request.can_read_body:
            params.update({k: str(v) for k, v in (await request.post()).items()})
        key = params.get("listenKey", "")
        if not key:
            raise BadParameterError("listenKey")
        lk = self.listen_keys.get(key)
        if lk is None or lk.api_key_hash != key_hash:
            raise ApiError(-1125, "This listenKey does not exist.")
        if request.method == "PUT":
            lk.expires = now + LISTEN_KEY_TTL_S
        else:
            del self.listen_keys[key]
        return _json({})

    def _expire_listen_keys(self, now: float) -> None:
        for key in [k for k, lk in self.listen_keys.items() if lk.expires <= now]:
            del self.listen_keys[key]
