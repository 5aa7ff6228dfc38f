"""Simulated accounts: balances, registered API keys, authentication checks, orders and user events.

This is the one place that knows who owns what. REST (``rest_account.py``) and the WebSocket API
(``wsapi.py``) call into it with already-parsed parameters; it authenticates (timestamp window, key,
signature, in Binance's order of checks), places orders on the simulated exchange and turns every order
state change into Binance's user-data events (../shared/PROTOCOL.md 6.4) for that account's subscribers.

Errors are raised as :class:`SimApiError` carrying Binance's code, message and HTTP status
(PROTOCOL 7.3); both front ends render it in their own envelope.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from binance_ws.core.signing import KeyType, Verifier
from binance_ws.sim.exchange import (
    CANCELED,
    EXPIRED,
    FILLED,
    NEW,
    SCALE,
    TRADE,
    ExchangeError,
    Order,
    OrderEvent,
    to_units,
)

if TYPE_CHECKING:
    from binance_ws.sim.clock import SimClock
    from binance_ws.sim.exchange import Exchange

log = logging.getLogger("binance_ws.sim.accounts")

#: The channel of an account's spot events (see :meth:`Accounts.subscribe`).
SPOT_CHANNEL: Final = "spot"

#: Binance error codes the simulator emits: code -> (HTTP status, message). Messages are Binance's own
#: (PROTOCOL 7.3 and 6.3; codes marked [errors.md] are from Binance's errors.md, not repeated there).
ERRORS: Final[dict[int, tuple[int, str]]] = {
    -1021: (400, "Timestamp for this request is outside of the recvWindow."),
    -1022: (400, "Signature for this request is not valid."),
    -1102: (400, "Mandatory parameter '{}' was not sent, was empty/null, or malformed."),
    -1104: (400, "Not all sent parameters were read; read '{}' parameter(s) but was sent '{}'."),
    -1121: (400, "Invalid symbol."),
    -1125: (400, "This listenKey does not exist."),
    -1131: (400, "recvWindow must be less than 60000"),  # [errors.md]
    -1013: (400, "Invalid quantity."),  # [errors.md] filter failure
    -2010: (400, "Account has insufficient balance for requested action."),  # [errors.md]
    -2011: (400, "Unknown order sent."),  # [errors.md] cancel of an unknown order
    -2013: (400, "Order does not exist."),  # [errors.md] query of an unknown order
    -2014: (401, "API-key format invalid."),
    -2021: (409, "Order cancel-replace partially failed."),  # [errors.md] with "data"
    -2022: (400, "Order cancel-replace failed."),  # [errors.md] with "data"
    -2015: (401, "Invalid API-key, IP, or permissions for action."),
    -2035: (400, "User Data Stream subscription already active."),
    -2036: (400, "User Data Stream subscription not active."),
    -2042: (400, "Maximum subscription ID reached for this connection."),
    # session.logon accepts Ed25519 keys only (PROTOCOL 6.1, 2023-12-04) [errors.md wording].
    -4056: (400, "HMAC_SHA256 API key is not supported."),
    -4057: (400, "RSA API key is not supported."),
}

#: The timing rules of PROTOCOL 7.1: default and maximum recvWindow, how far ahead a timestamp may be,
#: and the earliest accepted timestamp (2017-01-01, rule since 2024-12).
DEFAULT_RECV_WINDOW_MS: Final = 5000.0
MAX_RECV_WINDOW_MS: Final = 60000.0
MAX_AHEAD_MS: Final = 1000
EARLIEST_TIMESTAMP_MS: Final = 1_483_228_800_000
#: Timestamps above this are microseconds (PROTOCOL 7.1: "timestamp may be in ms or µs").
_MICROSECOND_THRESHOLD: Final = 10**14
#: Binance API keys are 64 alphanumeric characters; anything else is a format error (-2014).
API_KEY_LENGTH: Final = 64
_KEY_ALPHABET: Final = string.ascii_letters + string.digits
#: A listen key lives 60 minutes after its last keep-alive (PROTOCOL 6.2 and 8) and is 64 characters.
LISTEN_KEY_TTL_MS: Final = 3_600_000
LISTEN_KEY_LENGTH: Final = 64
#: Decimal places of quantities and prices on the wire (PROTOCOL 10: spot prices are 8-decimal strings).
_PLACES: Final = Decimal("0.00000001")

EventCallback = Callable[[dict[str, Any]], None]


class SimApiError(Exception):
    """A Binance error answer: ``status`` (HTTP), ``code`` and ``msg`` as Binance words them."""

    def __init__(self, code: int, *fmt: object, msg: str | None = None, status: int | None = None,
                 data: dict[str, Any] | None = None) -> None:
        table_status, template = ERRORS.get(code, (400, ""))
        self.status = status or table_status
        self.code = code
        self.msg = msg if msg is not None else template.format(*fmt)
        #: Extra detail some errors carry (cancel-replace's two halves).
        self.data = data
        super().__init__(f"{code}: {self.msg}")

    @classmethod
    def from_exchange(cls, exc: ExchangeError) -> SimApiError:
        """The matching engine's refusal (bad symbol, filter, would-take) in the API's error shape."""
        return cls(exc.code, msg=exc.msg, status=exc.status)

    def body(self) -> dict[str, Any]:
        if self.data is not None:
            return {"code": self.code, "msg": self.msg, "data": self.data}
        return {"code": self.code, "msg": self.msg}


def fmt(value: Decimal) -> str:
    """Binance's 8-decimal string form of a quantity or price."""
    return f"{value.quantize(_PLACES):f}"


def _raw_param(params: Mapping[str, Any], name: str, required: bool) -> str | None:
    """The parameter's text, None when absent and optional; -1102 naming it when absent and required."""
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise SimApiError(-1102, name)
        return None
    return str(raw)


def parse_decimal(params: Mapping[str, Any], name: str, *, required: bool = True) -> Decimal | None:
    """A positive decimal parameter, or -1102 naming it."""
    raw = _raw_param(params, name, required)
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise SimApiError(-1102, name) from None
    if not value.is_finite() or value <= 0:
        raise SimApiError(-1102, name)
    return value


def parse_int(params: Mapping[str, Any], name: str, *, required: bool = True) -> int | None:
    """An integer parameter, or -1102 naming it."""
    raw = _raw_param(params, name, required)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise SimApiError(-1102, name) from None


def parse_limit(params: Mapping[str, Any], default: int, maximum: int) -> int:
    """The ``limit`` parameter: ``default`` when absent, capped at ``maximum``; -1102 below 1."""
    limit = parse_int(params, "limit", required=False)
    if limit is None:
        return default
    if limit < 1:
        raise SimApiError(-1102, "limit")
    return min(limit, maximum)


@dataclass
class Balance:
    free: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)


@dataclass
class Account:
    """One simulated user: balances and the orders it placed."""

    name: str
    #: Binance's numeric account id (``uid`` in ``GET /api/v3/account``), in creation order.
    uid: int = 0
    balances: dict[str, Balance] = field(default_factory=dict)
    update_time: int = 0
    #: Every order this account placed, by order id (the exchange keeps only open ones).
    orders: dict[int, Held] = field(default_factory=dict)
    #: The account's fills, oldest first, in ``GET /api/v3/myTrades`` shape.
    fills: list[dict[str, Any]] = field(default_factory=list)

    def balance(self, asset: str) -> Balance:
        bal = self.balances.get(asset)
        if bal is None:
            bal = self.balances[asset] = Balance()
        return bal


@dataclass(repr=False)
class ApiKey:
    """A registered key: the public API key string, its owner and how to verify its signatures."""

    api_key: str
    account: Account
    verifier: Verifier

    @property
    def key_type(self) -> KeyType:
        return self.verifier.key_type

    def __repr__(self) -> str:
        return f"ApiKey({self.api_key[:6]}..., {self.key_type}, account={self.account.name!r})"


@dataclass
class Held:
    """An account's order and the funds it still holds locked (in ``lock_asset``)."""

    order: Order
    account: Account
    lock_asset: str
    locked: Decimal
    base: str
    quote: str
    #: When the order last changed (placed, filled, cancelled, expired): ``updateTime`` in queries.
    update_time: int = 0


@dataclass
class _ListenKey:
    account: Account
    expires_ms: int
    #: Which of the account's event channels the key carries (``usdm``, ``coinm``; see :class:`Accounts`).
    channel: str = "usdm"
    #: Stream connections reading this key: callback -> its token in the account's subscribers.
    streams: dict[EventCallback, int] = field(default_factory=dict)


def units(value: int) -> Decimal:
    """The exchange's integer 1e-8 units as a Decimal."""
    return Decimal(value).scaleb(-8)


#: Length of the client order id Binance generates when the caller gives none.
_CLIENT_ID_LENGTH: Final = 22
#: Default and largest ``limit`` of the account list endpoints (allOrders, myTrades; rest-api.md).
LIST_DEFAULT_LIMIT: Final = 500
LIST_MAX_LIMIT: Final = 1000
#: The unfilled-order limits ``GET /api/v3/rateLimit/order`` reports (spot production values, the same
#: as exchangeInfo's ORDERS entries).
ORDER_RATE_LIMITS: Final = (("SECOND", 10, 100, 10_000), ("DAY", 1, 200_000, 86_400_000))
_ZERO: Final = "0.00000000"
#: Commission rates: the simulator charges none (``account_info`` says the same).
_NO_COMMISSION: Final = {"maker": _ZERO, "taker": _ZERO, "buyer": _ZERO, "seller": _ZERO}
_OPEN_STATUSES: Final = frozenset({NEW, "PARTIALLY_FILLED"})


class Accounts:
    """Every simulated account, its keys and its user-data subscribers; the sim's authority on auth.

    Built as ``Accounts(clock, exchange)``: ``clock`` gives server time, ``exchange`` matches the orders.
    """

    def __init__(self, clock: SimClock, exchange: Exchange) -> None:
        self._clock = clock
        self._exchange = exchange
        self._accounts: dict[str, Account] = {}
        self._keys: dict[str, ApiKey] = {}
        #: (channel, account name) -> token -> callback.
        self._subscribers: dict[tuple[str, str], dict[int, EventCallback]] = {}
        self._sub_ids = itertools.count(1)
        self._execution_ids = itertools.count(1)
        #: Funds to lock for the order being placed right now (its NEW event arrives inside place_order).
        self._pending: tuple[Account, str, Decimal] | None = None
        #: While a request runs, position updates are collected and sent once at its end, as Binance
        #: sends one outboundAccountPosition after an order's execution reports.
        self._deferred: dict[str, tuple[Account, list[str]]] | None = None
        #: Cancel requests' own client order ids, reported as ``c`` on the CANCELED report.
        self._cancel_ids: dict[int, str] = {}
        #: Live user-data connections (``wsapi.WsApiListener``, ``userstream.ListenKeyListener``), so
        #: tests and faults can cut them.
        self.sessions: set[Any] = set()
        #: Listen keys (futures, and legacy spot): key -> [account, expiry in server ms].
        self._listen_keys: dict[str, _ListenKey] = {}

    # -- accounts and keys ------------------------------------------------------------------------
    def create_account(self, name: str,
                       balances: Mapping[str, str | Decimal | float] | None = None) -> Account:
        """A new account with free ``balances`` (asset -> amount)."""
        if name in self._accounts:
            raise ValueError(f"account {name!r} exists")
        account = Account(name, uid=len(self._accounts) + 1, update_time=self._clock.now_ms())
        for asset, amount in (balances or {}).items():
            account.balance(asset).free = Decimal(str(amount))
        self._accounts[name] = account
        self._exchange.add_order_listener(self._owner(account), self._listener(account))
        return account

    def _listener(self, account: Account) -> Callable[[OrderEvent], None]:
        def on_event(ev: OrderEvent) -> None:
            self._on_order_event(account, ev)
        return on_event

    @staticmethod
    def _owner(account: Account) -> str:
        """The exchange-side owner tag of an account's orders."""
        return f"account:{account.name}"

    def account(self, name: str) -> Account:
        return self._accounts[name]

    @staticmethod
    def new_api_key() -> str:
        return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(API_KEY_LENGTH))

    def register_hmac_key(self, account: str, secret: str | None = None,
                          api_key: str | None = None) -> tuple[str, str]:
        """Register an HMAC key pair for ``account``; returns ``(api_key, secret)``."""
        secret = secret or "".join(secrets.choice(_KEY_ALPHABET) for _ in range(API_KEY_LENGTH))
        key = api_key or self.new_api_key()
        self._keys[key] = ApiKey(key, self._accounts[account], Verifier.hmac(secret))
        return key, secret

    def register_public_key(self, account: str, public_key_pem: str | bytes,
                            api_key: str | None = None) -> str:
        """Register an RSA or Ed25519 public key (PEM) for ``account``; returns the API key."""
        key = api_key or self.new_api_key()
        self._keys[key] = ApiKey(key, self._accounts[account], Verifier.from_public_key(public_key_pem))
        return key

    # -- authentication -----------------------------------------------------------------------------
    def lookup_key(self, api_key: str | None) -> ApiKey:
        """The registered key, or -2014 (missing/malformed) / -2015 (unknown)."""
        if not api_key or len(api_key) != API_KEY_LENGTH or not api_key.isalnum():
            raise SimApiError(-2014)
        record = self._keys.get(api_key)
        if record is None:
            raise SimApiError(-2015)
        return record

    def check_timestamp(self, params: Mapping[str, Any]) -> None:
        """Apply PROTOCOL 7.1's timing rules to ``timestamp`` / ``recvWindow``; raises -1102/-1131/-1021."""
        raw_ts = params.get("timestamp")
        try:
            ts = float(str(raw_ts))
        except ValueError:
            raise SimApiError(-1102, "timestamp") from None
        if ts > _MICROSECOND_THRESHOLD:
            ts /= 1000.0
        raw_window = params.get("recvWindow")
        window = DEFAULT_RECV_WINDOW_MS
        if raw_window is not None and raw_window != "":
            try:
                window = float(str(raw_window))
            except ValueError:
                raise SimApiError(-1102, "recvWindow") from None
            if window > MAX_RECV_WINDOW_MS or window <= 0:
                raise SimApiError(-1131)
        now = self._clock.now_ms()
        if ts >= now + MAX_AHEAD_MS:
            raise SimApiError(-1021, msg="Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > window or ts < EARLIEST_TIMESTAMP_MS:
            raise SimApiError(-1021)

    def authenticate(self, api_key: str | None, params: Mapping[str, Any], payload: str,
                     signature: str | None) -> Account:
        """Check a signed request in Binance's order: mandatory params, key, timestamp, signature.

        ``payload`` is exactly what the client should have signed (REST: query+body without the
        signature; WS API: the sorted params). Raises :class:`SimApiError` naming the first failure.
        """
        if params.get("timestamp") in (None, ""):
            raise SimApiError(-1102, "timestamp")
        if not signature:
            raise SimApiError(-1102, "signature")
        record = self.lookup_key(api_key)
        self.check_timestamp(params)
        if not record.verifier.verify(payload, signature):
            raise SimApiError(-1022)
        return record.account

    def drop_sessions(self, graceful: bool = False) -> int:
        """Cut every user-data connection (a close frame if ``graceful``, else a dead TCP link);
        returns how many were cut. Subscriptions die with them, as on Binance."""
        sessions = list(self.sessions)
        for session in sessions:
            if graceful:
                session.close()
            else:
                session.drop()
        return len(sessions)

    # -- user-data subscribers --------------------------------------------------------------------
    # An account's events travel on channels: ``spot`` (executionReport, outboundAccountPosition,
    # balanceUpdate: the WS API subscriptions) and one per futures product (``usdm``, ``coinm``: what
    # that product's listen keys carry, emitted by :class:`~binance_ws.sim.futures_accounts.
    # FuturesAccounts`).
    def subscribe(self, account: Account, callback: EventCallback, channel: str = SPOT_CHANNEL) -> int:
        """Deliver ``account``'s ``channel`` events to ``callback``; returns a token to unsubscribe."""
        token = next(self._sub_ids)
        self._subscribers.setdefault((channel, account.name), {})[token] = callback
        return token

    def unsubscribe(self, account: Account, token: int, channel: str = SPOT_CHANNEL) -> None:
        self._subscribers.get((channel, account.name), {}).pop(token, None)

    def emit(self, account: Account, event: dict[str, Any], channel: str = SPOT_CHANNEL) -> None:
        """Send one user event to every ``channel`` subscriber of ``account``; a failing one is logged."""
        for callback in list(self._subscribers.get((channel, account.name), {}).values()):
            try:
                callback(event)
            except Exception:
                log.exception("user-data subscriber failed")

    def _position(self, account: Account, assets: list[str]) -> None:
        now = self._clock.now_ms()
        account.update_time = now
        balances = [{"a": a, "f": fmt(account.balance(a).free), "l": fmt(account.balance(a).locked)}
                    for a in dict.fromkeys(assets)]
        self.emit(account, {"e": "outboundAccountPosition", "E": now, "u": now, "B": balances})

    def deposit(self, account: Account, asset: str, amount: Decimal | str) -> None:
        """Credit (or with a negative amount, debit) ``asset``: a ``balanceUpdate`` then the new position."""
        delta = Decimal(str(amount))
        account.balance(asset).free += delta
        now = self._clock.now_ms()
        self.emit(account, {"e": "balanceUpdate", "E": now, "a": asset, "d": fmt(delta), "T": now})
        self._position(account, [asset])

    def account_info(self, account: Account) -> dict[str, Any]:
        """The ``GET /api/v3/account`` body."""
        return {
            "makerCommission": 0, "takerCommission": 0, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": "0.00000000", "taker": "0.00000000", "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": account.update_time,
            "accountType": "SPOT", "uid": account.uid,
            "balances": [{"asset": a, "free": fmt(b.free), "locked": fmt(b.locked)}
                         for a, b in account.balances.items()],
            "permissions": ["SPOT"],
        }

    # -- listen keys (USER_STREAM security: API key, no signature; PROTOCOL 6.2 and 8) --------------
    def create_listen_key(self, account: Account, channel: str = "usdm") -> str:
        """The account's live key for ``channel`` (a futures product) extended by 60 minutes, or a new
        key if it has none (one key per account and product, as on Binance)."""
        self.expire_listen_keys()
        expires = self._clock.now_ms() + LISTEN_KEY_TTL_MS
        for key, lk in self._listen_keys.items():
            if lk.account is account and lk.channel == channel:
                lk.expires_ms = expires
                return key
        key = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(LISTEN_KEY_LENGTH))
        self._listen_keys[key] = _ListenKey(account, expires, channel)
        return key

    def _own_key(self, account: Account, key: str | None, channel: str | None = None) -> str:
        """``key`` (or, when not given, the account's key) if it is live and the account's; else -1125."""
        self.expire_listen_keys()
        if key is None:
            key = next((k for k, lk in self._listen_keys.items()
                        if lk.account is account and channel in (None, lk.channel)), None)
        lk = self._listen_keys.get(key) if key else None
        if key is None or lk is None or lk.account is not account or channel not in (None, lk.channel):
            raise SimApiError(-1125)
        return key

    def keepalive_listen_key(self, account: Account, key: str | None = None,
                             channel: str | None = None) -> str:
        """Extend the key by 60 minutes; raises -1125 if it does not exist (any more)."""
        key = self._own_key(account, key, channel)
        self._listen_keys[key].expires_ms = self._clock.now_ms() + LISTEN_KEY_TTL_MS
        return key

    def close_listen_key(self, account: Account, key: str | None = None, channel: str | None = None) -> None:
        """Delete the key; its streams stay open but receive nothing more (no ``listenKeyExpired``)."""
        lk = self._listen_keys.pop(self._own_key(account, key, channel))
        for token in lk.streams.values():
            self.unsubscribe(lk.account, token, lk.channel)

    def is_listen_key(self, name: str) -> bool:
        """Whether ``name`` is a live listen key (the stream server routes ``/ws/<name>`` here then)."""
        self.expire_listen_keys()
        return name in self._listen_keys

    def open_listen_key_stream(self, key: str, callback: EventCallback) -> bool:
        """Deliver the key's account events to ``callback``; False if the key is not live."""
        self.expire_listen_keys()
        lk = self._listen_keys.get(key)
        if lk is None:
            return False
        lk.streams[callback] = self.subscribe(lk.account, callback, lk.channel)
        return True

    def close_listen_key_stream(self, key: str, callback: EventCallback) -> None:
        lk = self._listen_keys.get(key)
        if lk is not None and callback in lk.streams:
            self.unsubscribe(lk.account, lk.streams.pop(callback), lk.channel)

    def expire_listen_keys(self) -> list[str]:
        """Drop keys past their expiry; each of their streams gets ``listenKeyExpired`` and then nothing
        more (PROTOCOL 6.2). Returns the expired keys."""
        now = self._clock.now_ms()
        expired = [k for k, lk in self._listen_keys.items() if lk.expires_ms <= now]
        for key in expired:
            lk = self._listen_keys.pop(key)
            for callback, token in lk.streams.items():
                self.unsubscribe(lk.account, token, lk.channel)
                try:
                    callback({"e": "listenKeyExpired", "E": now, "listenKey": key})
                except Exception:
                    log.exception("listen-key stream failed")
        return expired

    # -- orders -------------------------------------------------------------------------------------
    def place_order(self, account: Account, params: Mapping[str, Any]) -> dict[str, Any]:
        """Place an order from Binance's parameters (``symbol side type quantity price timeInForce
        newClientOrderId``, or ``quoteOrderQty`` instead of ``quantity`` for MARKET); returns the FULL
        response. Raises :class:`SimApiError` (-1102, -1121, -1013, -2010 and the engine's codes)."""
        for name in ("symbol", "side", "type"):
            if not params.get(name):
                raise SimApiError(-1102, name)
        symbol = str(params["symbol"]).upper()
        side, order_type = str(params["side"]), str(params["type"])
        quote_qty = None if params.get("quantity") not in (None, "") else \
            parse_decimal(params, "quoteOrderQty", required=False)
        if order_type == "MARKET" and quote_qty is None and params.get("quantity") in (None, ""):
            raise SimApiError(-1102, msg="Param 'quantity' or 'quoteOrderQty' must be sent, but both were "
                                         "empty/null!")
        qty = None if quote_qty is not None else parse_decimal(params, "quantity")
        price = parse_decimal(params, "price", required=order_type != "MARKET")
        tif = str(params.get("timeInForce") or ("GTC" if order_type in ("LIMIT_MAKER", "MARKET") else ""))
        if order_type == "LIMIT" and not tif:
            raise SimApiError(-1102, "timeInForce")
        client_id = str(params.get("newClientOrderId") or self._client_id())
        try:
            book = self._exchange.book(symbol)
        except ExchangeError as exc:
            raise SimApiError.from_exchange(exc) from None
        base, quote = book.spec.base, book.spec.quote
        if quote_qty is not None and order_type == "MARKET" and side in ("BUY", "SELL"):
            # The engine sizes it the same way against the same book a moment later.
            try:
                qty = units(self._exchange.quantity_for_quote(symbol, side == "BUY",
                                                              to_units(quote_qty, "quoteOrderQty",
                                                                       "NOTIONAL")))
            except ExchangeError as exc:
                raise SimApiError.from_exchange(exc) from None
        if not qty:  # quoteOrderQty off a MARKET order, or nothing to buy: the engine names it
            need: Decimal | None = Decimal(0)
            lock_asset = quote if side == "BUY" else base
        elif side == "BUY":
            lock_asset = quote
            need = qty * price if price is not None else self._market_cost(symbol, qty)
        else:
            lock_asset, need = base, qty
        if need is None or account.balance(lock_asset).free < need:
            raise SimApiError(-2010)
        self._pending = (account, lock_asset, need)
        outer = self._deferred is None
        if outer:
            self._deferred = {}
        try:
            return self._exchange.place_order(symbol, side, order_type, None if quote_qty else qty, price,
                                                  tif, owner=self._owner(account), client_order_id=client_id,
                                                  quote_order_qty=quote_qty)
        except ExchangeError as exc:
            raise SimApiError.from_exchange(exc) from None
        finally:
            self._pending = None
            if outer:
                self._flush_positions()

    def _market_cost(self, symbol: str, qty: Decimal) -> Decimal | None:
        """What buying ``qty`` at market costs against the current asks (None: not enough liquidity
        to price it, which Binance answers like a balance shortfall for a buyer who cannot cover it)."""
        cost = Decimal(0)
        left = qty
        _, asks = self._exchange.book(symbol).top(len(self._exchange.book(symbol).asks))
        for px, q in asks:
            take = min(left, Decimal(q))
            cost += take * Decimal(px)
            left -= take
            if not left:
                return cost
        return cost if cost else None

    def cancel_order(self, account: Account, params: Mapping[str, Any]) -> dict[str, Any]:
        """Cancel by ``orderId`` or ``origClientOrderId``; raises -1102 / -2011."""
        held = self._find(account, params, unknown=-2011)
        cancel_id = str(params.get("newClientOrderId") or self._client_id())
        self._cancel_ids[held.order.order_id] = cancel_id
        outer = self._deferred is None
        if outer:
            self._deferred = {}
        try:
            body = self._exchange.cancel_order(held.order.symbol, held.order.order_id)
        except ExchangeError as exc:
            raise SimApiError.from_exchange(exc) from None
        finally:
            self._cancel_ids.pop(held.order.order_id, None)
            if outer:
                self._flush_positions()
        body["origClientOrderId"] = held.order.client_order_id
        body["clientOrderId"] = cancel_id
        return body

    def cancel_replace(self, account: Account, params: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v3/order/cancelReplace`` (WS API ``order.cancelReplace``): cancel ``cancelOrderId``
        / ``cancelOrigClientOrderId`` and place the order the other parameters describe.

        ``STOP_ON_FAILURE`` does not attempt the new order when the cancel fails; ``ALLOW_FAILURE`` does.
        Both halves succeeding answers ``{cancelResult, newOrderResult, cancelResponse, newOrderResponse}``;
        one failing is -2021 (409), both (or the cancel, stopping) -2022 (400), each with that as ``data``.
        """
        mode = params.get("cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise SimApiError(-1102, "cancelReplaceMode")
        if params.get("cancelOrderId") in (None, "") and params.get("cancelOrigClientOrderId") in (None, ""):
            raise SimApiError(-1102, msg="Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, "
                                         "but both were empty/null!")
        cancel = {"symbol": params.get("symbol")}
        for name, as_cancel in (("cancelOrderId", "orderId"),
                                ("cancelOrigClientOrderId", "origClientOrderId"),
                                ("cancelNewClientOrderId", "newClientOrderId")):
            if params.get(name) not in (None, ""):
                cancel[as_cancel] = params[name]
        new = {k: v for k, v in params.items() if not k.startswith("cancel")}
        data: dict[str, Any] = {"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
                                "cancelResponse": None, "newOrderResponse": None}
        try:
            data["cancelResponse"] = self.cancel_order(account, cancel)
        except SimApiError as exc:
            data["cancelResult"], data["cancelResponse"] = "FAILURE", exc.body()
            if mode == "STOP_ON_FAILURE":
                data["newOrderResult"] = "NOT_ATTEMPTED"
                raise SimApiError(-2022, data=data) from None
        try:
            data["newOrderResponse"] = self.place_order(account, new)
        except SimApiError as exc:
            data["newOrderResult"], data["newOrderResponse"] = "FAILURE", exc.body()
        failed = [data["cancelResult"], data["newOrderResult"]].count("FAILURE")
        if failed:
            raise SimApiError(-2022 if failed == 2 else -2021, data=data)
        return data

    def cancel_open_orders(self, account: Account, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``DELETE /api/v3/openOrders`` (WS API ``openOrders.cancelAll``): cancel every working order of
        ``symbol``, oldest first, answering each cancel's body; -2011 when there is none (Binance does)."""
        symbol = self._symbol_param(params)
        working = [h.order.order_id for h in sorted(account.orders.values(), key=lambda h: h.order.order_id)
                   if h.order.symbol == symbol and h.order.status in _OPEN_STATUSES]
        if not working:
            raise SimApiError(-2011)
        return [self.cancel_order(account, {"symbol": symbol, "orderId": order_id}) for order_id in working]

    def query_order(self, account: Account, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /api/v3/order`` by ``orderId`` or ``origClientOrderId``; raises -1102 / -2013."""
        held = self._find(account, params, unknown=-2013)
        order = held.order
        body = order.response()
        body.pop("transactTime", None)
        body.update({"stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": order.time,
                     "updateTime": held.update_time or order.time, "isWorking": order.working_time >= 0,
                     "workingTime": order.working_time})
        return body

    def _symbol_param(self, params: Mapping[str, Any], *, required: bool = True) -> str | None:
        """``symbol`` upper-cased and checked against the exchange (-1102 missing, -1121 unknown)."""
        raw = params.get("symbol")
        if not raw:
            if required:
                raise SimApiError(-1102, "symbol")
            return None
        symbol = str(raw).upper()
        if symbol not in self._exchange.symbols:
            raise SimApiError(-1121)
        return symbol

    def open_orders(self, account: Account, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``GET /api/v3/openOrders``: the account's working orders, of one symbol or all, oldest first."""
        symbol = self._symbol_param(params, required=False)
        return [self.query_order(account, {"symbol": h.order.symbol, "orderId": h.order.order_id})
                for h in account.orders.values()
                if h.order.status in _OPEN_STATUSES and symbol in (None, h.order.symbol)]

    def all_orders(self, account: Account, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``GET /api/v3/allOrders``: every order of ``symbol``, from ``orderId`` on or within
        ``startTime``..``endTime``, oldest first, at most ``limit`` (the latest ones without a start)."""
        symbol = self._symbol_param(params)
        from_id = parse_int(params, "orderId", required=False)
        start = parse_int(params, "startTime", required=False)
        end = parse_int(params, "endTime", required=False)
        limit = parse_limit(params, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)
        orders = [h.order for h in sorted(account.orders.values(), key=lambda h: h.order.order_id)
                  if h.order.symbol == symbol and (from_id is None or h.order.order_id >= from_id)
                  and (start is None or h.order.time >= start) and (end is None or h.order.time <= end)]
        chosen = orders[:limit] if from_id is not None or start is not None else orders[-limit:]
        return [self.query_order(account, {"symbol": o.symbol, "orderId": o.order_id}) for o in chosen]

    def my_trades(self, account: Account, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``GET /api/v3/myTrades``: the account's fills in ``symbol``, optionally of one ``orderId``,
        from trade id ``fromId`` or within ``startTime``..``endTime``, oldest first, at most ``limit``."""
        symbol = self._symbol_param(params)
        order_id = parse_int(params, "orderId", required=False)
        from_id = parse_int(params, "fromId", required=False)
        start = parse_int(params, "startTime", required=False)
        end = parse_int(params, "endTime", required=False)
        limit = parse_limit(params, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT)
        fills = [f for f in account.fills
                 if f["symbol"] == symbol and order_id in (None, f["orderId"])
                 and (from_id is None or f["id"] >= from_id)
                 and (start is None or f["time"] >= start) and (end is None or f["time"] <= end)]
        return fills[:limit] if from_id is not None or start is not None else fills[-limit:]

    def test_order(self, account: Account, params: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v3/order/test``: checks an order as ``place_order`` would, places nothing; ``{}``,
        or the commission rates with ``computeCommissionRates=true``."""
        for name in ("symbol", "side", "type"):
            if not params.get(name):
                raise SimApiError(-1102, name)
        symbol = self._symbol_param(params)
        assert symbol is not None
        if str(params["side"]) not in ("BUY", "SELL"):
            raise SimApiError(-1102, "side")
        order_type = str(params["type"])
        parse_decimal(params, "quantity")
        parse_decimal(params, "price", required=order_type != "MARKET")
        if order_type == "LIMIT" and not params.get("timeInForce"):
            raise SimApiError(-1102, "timeInForce")
        if str(params.get("computeCommissionRates", "")).lower() != "true":
            return {}
        return {"standardCommissionForOrder": {"maker": _ZERO, "taker": _ZERO},
                "specialCommissionForOrder": {"maker": _ZERO, "taker": _ZERO},
                "taxCommissionForOrder": {"maker": _ZERO, "taker": _ZERO},
                "discount": {"enabledForAccount": False, "enabledForSymbol": False,
                             "discountAsset": "BNB", "discount": _ZERO}}

    def commission(self, account: Account, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /api/v3/account/commission``: the account's rates for ``symbol`` (all zero here)."""
        symbol = self._symbol_param(params)
        return {"symbol": symbol, "standardCommission": dict(_NO_COMMISSION),
                "specialCommission": dict(_NO_COMMISSION), "taxCommission": dict(_NO_COMMISSION),
                "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB",
                             "discount": _ZERO}}

    def order_rate_limits(self, account: Account) -> list[dict[str, Any]]:
        """``GET /api/v3/rateLimit/order``: the account's order counts in each ORDERS window."""
        now = self._clock.now_ms()
        out = []
        for interval, num, limit, span_ms in ORDER_RATE_LIMITS:
            window_start = now - now % span_ms if interval == "DAY" else now - span_ms
            count = sum(1 for h in account.orders.values() if h.order.time > window_start)
            out.append({"rateLimitType": "ORDERS", "interval": interval, "intervalNum": num,
                        "limit": limit, "count": count})
        return out

    def _find(self, account: Account, params: Mapping[str, Any], *, unknown: int) -> Held:
        if not params.get("symbol"):
            raise SimApiError(-1102, "symbol")
        order_id = parse_int(params, "orderId", required=False)
        client_id = params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise SimApiError(-1102, "orderId", msg="Param 'origClientOrderId' or 'orderId' must be sent, "
                                                     "but both were empty/null!")
        symbol = str(params["symbol"]).upper()
        if order_id is not None:
            held = account.orders.get(order_id)
        else:
            held = next((h for h in account.orders.values() if h.order.client_order_id == client_id), None)
        if held is None or held.order.symbol != symbol:
            raise SimApiError(unknown)
        return held

    @staticmethod
    def _client_id() -> str:
        return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(_CLIENT_ID_LENGTH))

    # -- engine events -> balances and user events ----------------------------------------------------
    def _on_order_event(self, account: Account, ev: OrderEvent) -> None:
        order = ev.order
        held = account.orders.get(order.order_id)
        if ev.kind == NEW:
            if held is None:
                held = self._hold(account, order)
            held.account.update_time = ev.time
        if held is None:
            return
        held.update_time = ev.time
        bal = account.balance(held.lock_asset)
        if ev.kind == TRADE and ev.trade is not None:
            qty, px = units(ev.trade.qty), units(ev.trade.price)
            base, quote = account.balance(held.base), account.balance(held.quote)
            if order.is_buy:
                # A limit buy reserved its own price; filling lower hands the difference back.
                release = qty * (units(order.price) if order.price else px)
                release = min(release, held.locked)
                held.locked -= release
                quote.locked -= release
                quote.free += release - qty * px
                base.free += qty
            else:
                held.locked -= qty
                base.locked -= qty
                quote.free += qty * px
            account.fills.append({
                "symbol": order.symbol, "id": ev.trade.id, "orderId": order.order_id, "orderListId": -1,
                "price": fmt(px), "qty": fmt(qty), "quoteQty": fmt(qty * px), "commission": _ZERO,
                "commissionAsset": held.base if order.is_buy else held.quote, "time": ev.trade.time,
                "isBuyer": order.is_buy, "isMaker": ev.is_maker, "isBestMatch": True})
        if order.status in (FILLED, CANCELED, EXPIRED) and held.locked:
            bal.locked -= held.locked
            bal.free += held.locked
            held.locked = Decimal(0)
        self.emit(account, self._execution_report(order, ev))
        self._position_later(account, [held.base, held.quote])

    def _hold(self, account: Account, order: Order) -> Held:
        book = self._exchange.book(order.symbol)
        pending = self._pending
        if pending is not None and pending[0] is account:
            _, asset, amount = pending
            self._pending = None
        else:
            # Placed straight on the exchange with this account as owner (tests, flow): lock nothing.
            asset, amount = (book.spec.quote if order.is_buy else book.spec.base), Decimal(0)
        bal = account.balance(asset)
        bal.free -= amount
        bal.locked += amount
        held = Held(order, account, asset, amount, book.spec.base, book.spec.quote)
        account.orders[order.order_id] = held
        return held

    def _position_later(self, account: Account, assets: list[str]) -> None:
        if self._deferred is None:
            self._position(account, assets)
            return
        entry = self._deferred.setdefault(account.name, (account, []))
        entry[1].extend(a for a in assets if a not in entry[1])

    def _flush_positions(self) -> None:
        deferred, self._deferred = self._deferred, None
        for account, assets in (deferred or {}).values():
            self._position(account, assets)

    def _execution_report(self, order: Order, ev: OrderEvent) -> dict[str, Any]:
        """Binance's ``executionReport`` for one engine event (PROTOCOL 6.4)."""
        trade = ev.trade
        zero = "0.00000000"
        cancel_id = self._cancel_ids.get(order.order_id) if ev.kind == CANCELED else None
        report: dict[str, Any] = {
            "e": "executionReport", "E": ev.time, "s": order.symbol,
            "c": cancel_id or order.client_order_id or f"sim{order.order_id}",
            "S": order.side, "o": order.type, "f": order.time_in_force,
            "q": fmt(units(order.orig_qty)), "p": fmt(units(order.price)), "P": zero, "F": zero, "g": -1,
            "C": (order.client_order_id or "") if cancel_id else "",
            "x": ev.kind, "X": order.status, "r": "NONE", "i": order.order_id,
            "l": fmt(units(trade.qty)) if trade else zero, "z": fmt(units(order.executed)),
            "L": fmt(units(trade.price)) if trade else zero, "n": "0", "N": None, "T": ev.time,
            "t": trade.id if trade else -1, "I": next(self._execution_ids),
            "w": order.status in (NEW, "PARTIALLY_FILLED") and order.type != "MARKET",
            "m": ev.is_maker, "M": False, "O": order.time,
            "Z": fmt(units(order.cum_quote_raw // SCALE)),
            "Y": fmt(units(trade.qty) * units(trade.price)) if trade else zero,
            "Q": fmt(units(order.orig_quote_qty)), "V": "NONE",
        }
        if order.type != "MARKET":
            report["W"] = order.working_time if order.working_time >= 0 else order.time
        return report
