"""The simulator's WebSocket API (``/ws-api/v3``): sessions, user-data subscriptions, orders (with
``order.cancelReplace`` and ``openOrders.cancelAll``), the account lists (``openOrders.status``,
``allOrders``, ``myTrades``) and the market-data methods (``depth``, ``ticker.price``, ``ticker.book``,
``avgPrice``, ``exchangeInfo``, ``klines``, ``uiKlines``, ``trades.recent``, ``trades.historical``,
``trades.aggregate``), whose results are the REST bodies; ``account.status``, ``account.commission`` and
``account.rateLimits.orders`` too.

One :class:`WsApiListener` serves one connection (the stream server routes ``/ws-api/v3`` here). It speaks
../shared/PROTOCOL.md 6.3: requests ``{"id","method","params"}``; responses ``{"id","status","result",
"rateLimits"}`` or ``{"id","status","error":{"code","msg"},"rateLimits"}``; user events as
``{"subscriptionId":N,"event":{...}}``, ending with ``eventStreamTerminated`` when a subscription closes.
Authentication and orders go through :class:`binance_ws.sim.accounts.Accounts` (``sim.accounts``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest

from binance_ws.core.signing import ws_payload
from binance_ws.enums import KLINE_INTERVALS_MS
from binance_ws.sim.accounts import Account, Accounts, ApiKey, SimApiError, parse_int, parse_limit
from binance_ws.sim.exchange import ExchangeError
from binance_ws.sim.exchange import fmt as exchange_fmt
from binance_ws.sim.rest import (
    MY_TRADES_WEIGHTS,
    OPEN_ORDERS_WEIGHTS,
    avg_price_body,
    book_ticker_body,
    depth_weight,
    tz_offset_ms,
)

if TYPE_CHECKING:
    from binance_ws.sim.clock import SimClock
    from binance_ws.sim.exchange import Exchange
    from binance_ws.sim.listing import Listing

log = logging.getLogger("binance_ws.sim.wsapi")

#: Request weight per method (PROTOCOL 6.3: logon, subscribe and subscribe.signature weigh 2; the
#: others follow Binance's web-socket-api.md). order.cancel / order.status / account.status are served
#: too, beyond issue 5's list, so a WS API client can manage its orders end to end.
WEIGHTS: Final[dict[str, int]] = {
    "session.logon": 2, "session.status": 2, "session.logout": 2, "session.subscriptions": 2,
    "userDataStream.subscribe": 2, "userDataStream.subscribe.signature": 2, "userDataStream.unsubscribe": 2,
    "order.place": 1, "order.cancel": 1, "order.cancelReplace": 1, "order.status": 4, "account.status": 20,
    "ping": 1, "time": 1,
    # Market data (web-socket-api.md: the REST weights); depth, ticker.price and order.test vary, below.
    "exchangeInfo": 20, "klines": 2, "uiKlines": 2, "trades.recent": 25, "trades.historical": 25,
    "trades.aggregate": 4, "avgPrice": 2, "account.rateLimits.orders": 40, "account.commission": 20,
    # Account lists and cancel-all (web-socket-api.md, as REST); openOrders.status and myTrades vary (REST's
    # OPEN_ORDERS_WEIGHTS, MY_TRADES_WEIGHTS).
    "allOrders": 20, "openOrders.cancelAll": 1,
}
#: ``ticker.price`` and ``ticker.book``: 2 for one symbol, 4 for several or all (as REST).
TICKER_PRICE_WEIGHTS: Final = (2, 4)
#: ``order.test``: 1, or 20 with ``computeCommissionRates``.
ORDER_TEST_WEIGHTS: Final = (1, 20)
#: ``depth`` limit default and cap, ``klines`` / ``trades.recent`` limit default and cap (as REST).
DEPTH_DEFAULT_LIMIT: Final = 100
DEPTH_MAX_LIMIT: Final = 5000
LIST_DEFAULT_LIMIT: Final = 500
LIST_MAX_LIMIT: Final = 1000
#: The REQUEST_WEIGHT limit reported in ``rateLimits`` (spot: 6000 a minute).
WEIGHT_LIMIT: Final = 6000
WEIGHT_WINDOW_MS: Final = 60_000
#: Subscription limits per session (PROTOCOL 6.3).
MAX_ACTIVE_SUBSCRIPTIONS: Final = 1000
MAX_SUBSCRIPTION_IDS: Final = 65_535

# Request-shape errors (Binance's web-socket-api.md wording; not in PROTOCOL.md).
_UNKNOWN_METHOD: Final = (-1020, "This operation is not supported.")
_NOT_AUTHORIZED: Final = (-1002, "You are not authorized to execute this request.", 401)
_MALFORMED: Final = (-1102, "Invalid JSON request.")


#: Request params that authenticate rather than describe the order.
_AUTH_PARAMS: Final = frozenset({"apiKey", "signature", "timestamp", "recvWindow", "returnRateLimits"})


@dataclass
class _Subscription:
    account: Account
    token: int
    via_logon: bool


class WsApiListener(WSListener):
    """One WebSocket API connection: ``WsApiListener(accounts, clock, exchange, listing, exchange_info,
    request)``, where ``exchange_info(names)`` builds the ``exchangeInfo`` body (the REST server's)."""

    def __init__(self, accounts: Accounts, clock: SimClock, exchange: Exchange, listing: Listing,
                 exchange_info: Callable[[list[str]], dict[str, Any]],
                 request: WSUpgradeRequest | None = None) -> None:
        self._accounts = accounts
        self._clock = clock
        self._exchange = exchange
        self._listing = listing
        self._exchange_info_body = exchange_info
        self._transport: WSTransport | None = None
        self._logon: ApiKey | None = None
        self._authorized_since: int | None = None
        self._connected_since = clock.now_ms()
        self._subs: dict[int, _Subscription] = {}
        self._next_sub_id = 0
        self._weight = 0
        self._weight_minute = 0
        self._return_rate_limits = True
        if request is not None:
            query = parse_qs(urlsplit(request.path.decode()).query)
            if query.get("returnRateLimits", [""])[0].lower() == "false":
                self._return_rate_limits = False
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "session.logon": self._session_logon,
            "session.status": lambda p: self._session_result(),
            "session.logout": self._session_logout,
            "session.subscriptions": self._session_subscriptions,
            "userDataStream.subscribe": self._subscribe_logon,
            "userDataStream.subscribe.signature": self._subscribe_signature,
            "userDataStream.unsubscribe": self._unsubscribe,
            "order.place": self._order_place,
            "order.cancelReplace": lambda p: self._accounts.cancel_replace(self._trader(p),
                                                                            self._order_params(p)),
            "order.cancel": lambda p: self._accounts.cancel_order(self._trader(p), self._order_params(p)),
            "order.status": lambda p: self._accounts.query_order(self._trader(p), self._order_params(p)),
            "account.status": lambda p: self._accounts.account_info(self._trader(p)),
            "account.rateLimits.orders": lambda p: self._accounts.order_rate_limits(self._trader(p)),
            "account.commission": lambda p: self._accounts.commission(self._trader(p), self._order_params(p)),
            "openOrders.status": lambda p: self._accounts.open_orders(self._trader(p), self._order_params(p)),
            "openOrders.cancelAll": lambda p: self._accounts.cancel_open_orders(self._trader(p),
                                                                                self._order_params(p)),
            "allOrders": lambda p: self._accounts.all_orders(self._trader(p), self._order_params(p)),
            "myTrades": lambda p: self._accounts.my_trades(self._trader(p), self._order_params(p)),
            "depth": self._depth,
            "ticker.price": self._ticker_price,
            "ticker.book": self._ticker_book,
            "avgPrice": self._avg_price,
            "exchangeInfo": self._exchange_info,
            "klines": self._klines,
            "uiKlines": self._klines,
            "trades.recent": self._trades_recent,
            "trades.historical": self._trades_historical,
            "trades.aggregate": self._trades_aggregate,
            "order.test": lambda p: self._accounts.test_order(self._trader(p), self._order_params(p)),
            "ping": lambda p: {},
            "time": lambda p: {"serverTime": self._clock.now_ms()},
        }

    # -- picows -------------------------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        self._accounts.sessions.add(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._accounts.sessions.discard(self)
        for sub in self._subs.values():
            self._accounts.unsubscribe(sub.account, sub.token)
        self._subs.clear()
        self._transport = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        try:
            request = orjson.loads(frame.get_payload_as_bytes())
        except orjson.JSONDecodeError:
            self._send({"id": None, "status": 400, "error": {"code": _MALFORMED[0], "msg": _MALFORMED[1]}})
            return
        if not isinstance(request, dict):
            self._send({"id": None, "status": 400, "error": {"code": _MALFORMED[0], "msg": _MALFORMED[1]}})
            return
        self._handle(request)

    def close(self, code: WSCloseCode = WSCloseCode.GOING_AWAY) -> None:
        """Drop the connection from the server side (faults, tests)."""
        if self._transport is not None:
            self._transport.send_close(code)
            self._transport.disconnect()

    def drop(self) -> None:
        """Cut the TCP connection with no close frame, as a network failure would."""
        if self._transport is not None:
            self._transport.disconnect(graceful=False)

    def terminate_subscriptions(self) -> int:
        """End every subscription from the server side (``eventStreamTerminated`` each), as Binance does
        when a session's authorisation ends; returns how many ended."""
        ids = list(self._subs)
        for sub_id in ids:
            self._terminate(sub_id)
        return len(ids)

    # -- dispatch -------------------------------------------------------------------------------------
    def _handle(self, request: dict[str, Any]) -> None:
        req_id = request.get("id")
        method = request.get("method")
        params = request.get("params") or {}
        if not isinstance(method, str) or not isinstance(params, dict):
            self._reply_error(req_id, SimApiError(-1102, "method"), 0)
            return
        if method.startswith("v3/"):
            method = method[3:]
        handler = self._methods.get(method)
        weight = _weight(method, params)
        return_limits = self._return_rate_limits
        if "returnRateLimits" in params:
            return_limits = str(params["returnRateLimits"]).lower() != "false"
        if handler is None:
            self._reply_error(req_id, SimApiError(_UNKNOWN_METHOD[0], msg=_UNKNOWN_METHOD[1]), weight,
                              return_limits)
            return
        try:
            try:
                result = handler(params)
            except ExchangeError as exc:
                raise SimApiError.from_exchange(exc) from None
        except SimApiError as exc:
            self._reply_error(req_id, exc, weight, return_limits)
            return
        response: dict[str, Any] = {"id": req_id, "status": 200, "result": result}
        if return_limits:
            response["rateLimits"] = self._rate_limits(weight)
        self._send(response)

    def _rate_limits(self, weight: int) -> list[dict[str, Any]]:
        minute = self._clock.now_ms() // WEIGHT_WINDOW_MS
        if minute != self._weight_minute:
            self._weight_minute, self._weight = minute, 0
        self._weight += weight
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": WEIGHT_LIMIT, "count": self._weight}]

    def _reply_error(self, req_id: Any, exc: SimApiError, weight: int, return_limits: bool = True) -> None:
        response: dict[str, Any] = {"id": req_id, "status": exc.status, "error": exc.body()}
        if return_limits:
            response["rateLimits"] = self._rate_limits(weight)
        self._send(response)

    def _send(self, message: dict[str, Any]) -> None:
        if self._transport is not None and not self._transport.is_disconnected:
            self._transport.send(WSMsgType.TEXT, orjson.dumps(message))

    # -- authentication -------------------------------------------------------------------------------
    def _signed(self, params: dict[str, Any]) -> ApiKey:
        """Authenticate a request that carries ``apiKey``/``timestamp``/``signature`` (PROTOCOL 7.2)."""
        self._accounts.authenticate(params.get("apiKey"), params, ws_payload(params), params.get("signature"))
        return self._accounts.lookup_key(params.get("apiKey"))

    def _session_result(self) -> dict[str, Any]:
        now = self._clock.now_ms()
        return {
            "apiKey": self._logon.api_key if self._logon else None,
            "authorizedSince": self._authorized_since, "connectedSince": self._connected_since,
            "returnRateLimits": self._return_rate_limits, "serverTime": now,
            "userDataStream": bool(self._subs),
        }

    def _session_logon(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._signed(params)
        if record.key_type == "HMAC":
            raise SimApiError(-4056)
        if record.key_type == "RSA":
            raise SimApiError(-4057)
        self._logon = record
        self._authorized_since = self._clock.now_ms()
        return self._session_result()

    def _session_logout(self, params: dict[str, Any]) -> dict[str, Any]:
        for sub_id, sub in list(self._subs.items()):
            if sub.via_logon:
                self._terminate(sub_id)
        self._logon = None
        self._authorized_since = None
        return self._session_result()

    # -- user data subscriptions ----------------------------------------------------------------------
    def _session_subscriptions(self, params: dict[str, Any]) -> list[dict[str, int]]:
        return [{"subscriptionId": sub_id} for sub_id in self._subs]

    def _subscribe_logon(self, params: dict[str, Any]) -> dict[str, int]:
        if params:
            raise SimApiError(-1104, 0, len(params))
        if self._logon is None:
            code, msg, status = _NOT_AUTHORIZED
            raise SimApiError(code, msg=msg, status=status)
        return self._open(self._logon.account, via_logon=True)

    def _subscribe_signature(self, params: dict[str, Any]) -> dict[str, int]:
        return self._open(self._signed(params).account, via_logon=False)

    def _open(self, account: Account, *, via_logon: bool) -> dict[str, int]:
        if any(sub.account is account for sub in self._subs.values()):
            raise SimApiError(-2035)
        if self._next_sub_id >= MAX_SUBSCRIPTION_IDS or len(self._subs) >= MAX_ACTIVE_SUBSCRIPTIONS:
            raise SimApiError(-2042)
        sub_id = self._next_sub_id
        self._next_sub_id += 1

        def deliver(event: dict[str, Any]) -> None:
            self._send({"subscriptionId": sub_id, "event": event})

        self._subs[sub_id] = _Subscription(account, self._accounts.subscribe(account, deliver), via_logon)
        return {"subscriptionId": sub_id}

    def _unsubscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        if "subscriptionId" in params:
            try:
                sub_id = int(params["subscriptionId"])
            except (TypeError, ValueError):
                raise SimApiError(-1102, "subscriptionId") from None
            if sub_id not in self._subs:
                raise SimApiError(-2036)
            self._terminate(sub_id)
            return {}
        if not self.terminate_subscriptions():
            raise SimApiError(-2036)
        return {}

    def _terminate(self, sub_id: int) -> None:
        sub = self._subs.pop(sub_id)
        self._accounts.unsubscribe(sub.account, sub.token)
        self._send({"subscriptionId": sub_id,
                    "event": {"e": "eventStreamTerminated", "E": self._clock.now_ms()}})

    # -- trading ----------------------------------------------------------------------------------------
    def _trader(self, params: dict[str, Any]) -> Account:
        """The account a signed request acts for: its own signature, or the session's logon."""
        if "apiKey" in params or self._logon is None:
            return self._signed(params).account
        # After logon, requests omit apiKey/signature but still carry a timestamp (PROTOCOL 7.2).
        if params.get("timestamp") in (None, ""):
            raise SimApiError(-1102, "timestamp")
        self._accounts.check_timestamp(params)
        return self._logon.account

    @staticmethod
    def _order_params(params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k not in _AUTH_PARAMS}

    def _order_place(self, params: dict[str, Any]) -> dict[str, Any]:
        account = self._trader(params)
        return self._accounts.place_order(account, self._order_params(params))

    # -- market data (the REST bodies, PROTOCOL 6.3: result = what REST answers) ------------------------
    def _symbol(self, params: dict[str, Any]) -> str:
        raw = params.get("symbol")
        if not raw or not isinstance(raw, str):
            raise SimApiError(-1102, "symbol")
        symbol = raw.upper()
        if symbol not in self._exchange.symbols:
            raise SimApiError(-1121)
        return symbol

    def _selected(self, params: dict[str, Any]) -> tuple[list[str], bool]:
        """Symbols chosen by ``symbol`` or ``symbols`` (a JSON array here), else all; and whether one."""
        if "symbol" in params:
            return [self._symbol(params)], True
        if "symbols" in params:
            names = params["symbols"]
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                raise SimApiError(-1102, "symbols")
            return [self._symbol({"symbol": n}) for n in names], False
        return list(self._exchange.symbols), False

    def _depth(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = self._symbol(params)
        return self._listing.depth_snapshot(symbol, parse_limit(params, DEPTH_DEFAULT_LIMIT, DEPTH_MAX_LIMIT))

    def _ticker_price(self, params: dict[str, Any]) -> Any:
        names, single = self._selected(params)
        books = self._exchange.symbols
        out = [{"symbol": s, "price": exchange_fmt(books[s].last_price)} for s in names]
        return out[0] if single else out

    def _ticker_book(self, params: dict[str, Any]) -> Any:
        names, single = self._selected(params)
        out = [book_ticker_body(self._exchange.symbols[s]) for s in names]
        return out[0] if single else out

    def _avg_price(self, params: dict[str, Any]) -> dict[str, Any]:
        return avg_price_body(self._exchange.symbols[self._symbol(params)], self._clock.now_ms())

    def _exchange_info(self, params: dict[str, Any]) -> dict[str, Any]:
        names, _ = self._selected(params)
        return self._exchange_info_body(names)

    def _klines(self, params: dict[str, Any]) -> list[list[Any]]:
        symbol = self._symbol(params)
        interval = params.get("interval")
        if not interval:
            raise SimApiError(-1102, "interval")
        if interval not in KLINE_INTERVALS_MS:
            raise SimApiError(-1120, msg="Invalid interval.")
        tz = params.get("timeZone")
        return self._exchange.klines(
            symbol, interval, parse_limit(params, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT),
            parse_int(params, "startTime", required=False), parse_int(params, "endTime", required=False),
            tz_offset_ms(str(tz)) if tz not in (None, "") else 0)

    def _trades_recent(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        symbol = self._symbol(params)
        return self._exchange.trades(symbol, parse_limit(params, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT))

    def _trades_historical(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        symbol = self._symbol(params)
        return self._exchange.trades(symbol, parse_limit(params, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT),
                                     parse_int(params, "fromId", required=False))

    def _trades_aggregate(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        symbol = self._symbol(params)
        return self._exchange.agg_trades(
            symbol, parse_limit(params, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT),
            parse_int(params, "fromId", required=False), parse_int(params, "startTime", required=False),
            parse_int(params, "endTime", required=False))


def _weight(method: str, params: dict[str, Any]) -> int:
    """A request's weight; the variable ones as web-socket-api.md gives them (the REST figures)."""
    if method == "depth":
        try:
            limit = int(params.get("limit") or DEPTH_DEFAULT_LIMIT)
        except (TypeError, ValueError):
            limit = DEPTH_DEFAULT_LIMIT
        return depth_weight(min(max(limit, 1), DEPTH_MAX_LIMIT))
    if method in ("ticker.price", "ticker.book"):
        return TICKER_PRICE_WEIGHTS[0 if "symbol" in params else 1]
    if method == "openOrders.status":
        return OPEN_ORDERS_WEIGHTS[0 if "symbol" in params else 1]
    if method == "myTrades":
        return MY_TRADES_WEIGHTS[1 if "orderId" in params else 0]
    if method == "order.test":
        return ORDER_TEST_WEIGHTS[1 if str(params.get("computeCommissionRates", "")).lower() == "true" else 0]
    return WEIGHTS.get(method, 1)
