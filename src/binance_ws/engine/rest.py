"""The REST transport: :class:`AsyncClient` (aiohttp) and the one exception type of every REST and
WebSocket API call, :class:`BinanceAPIError`.

Keys come from arguments or the environment (``BINANCE_API_KEY`` with ``BINANCE_API_SECRET`` for HMAC,
or ``BINANCE_PRIVATE_KEY`` / ``BINANCE_PRIVATE_KEY_PATH`` for RSA and Ed25519). Signing follows
../shared/PROTOCOL.md section 7.1 exactly: the percent-encoded query string and body are what is signed
and what is sent. Every failure, from Binance or from the network, is raised as :class:`BinanceAPIError`.
TLS verification is always on; nothing here can turn it off. Method names follow python-binance so seed
code ports unchanged; :mod:`binance_ws.client` re-exports all of this next to the synchronous ``Client``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

import aiohttp
import orjson
from yarl import URL

from binance_ws.core.signing import Signer, encode_params, make_signer, rest_payload
from binance_ws.errors import BinanceWSError
from binance_ws.markets import USDM, Market, default_market

# Environment variables read when keys are not passed explicitly.
ENV_API_KEY: Final = "BINANCE_API_KEY"
ENV_API_SECRET: Final = "BINANCE_API_SECRET"
ENV_PRIVATE_KEY: Final = "BINANCE_PRIVATE_KEY"
ENV_PRIVATE_KEY_PATH: Final = "BINANCE_PRIVATE_KEY_PATH"
ENV_PRIVATE_KEY_PASSWORD: Final = "BINANCE_PRIVATE_KEY_PASSWORD"

#: Default and maximum ``recvWindow`` in ms (PROTOCOL 7.1).
DEFAULT_RECV_WINDOW_MS: Final = 5000
MAX_RECV_WINDOW_MS: Final = 60000
#: The header that carries the API key (PROTOCOL 7.1).
API_KEY_HEADER: Final = "X-MBX-APIKEY"
#: "Timestamp for this request is outside of the recvWindow." (PROTOCOL 7.3).
TIMESTAMP_OUTSIDE_RECV_WINDOW: Final = -1021
#: Statuses that mean "slow down" and come with a Retry-After header (PROTOCOL 7.3).
RATE_LIMIT_STATUSES: Final = frozenset({418, 429})


class BinanceAPIError(BinanceWSError):
    """Any failed REST call: Binance's answer (``status`` HTTP code, ``code`` and ``msg``) or a transport
    failure (``status`` 0, ``code`` None). ``retry_after`` (seconds) is set for 429 / 418.

    The message names the cause in Binance's own words, e.g. ``-1021`` for a stale timestamp, ``-1022``
    for a bad signature, ``-2015`` for an unknown key. It never contains keys or signatures.
    """

    def __init__(self, status: int, code: int | None, msg: str, *, retry_after: float | None = None,
                 method: str = "", path: str = "") -> None:
        where = f" on {method} {path}" if method else ""
        head = f"Binance API error {code}" if code is not None else "Binance API request failed"
        super().__init__(f"{head} (HTTP {status}){where}: {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.retry_after = retry_after

    @property
    def is_rate_limited(self) -> bool:
        return self.status in RATE_LIMIT_STATUSES


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value else None


class AsyncClient:
    """Binance REST over aiohttp, signed with HMAC, RSA or Ed25519.

    ``market`` picks the environment (``binance_ws.markets``; the simulator offers ``sim.market``; none
    given: ``BINANCE_WS_MARKET``'s, else spot, see :func:`binance_ws.markets.default_market`);
    ``base_url`` overrides its REST host. ``futures_market`` is used for the futures calls
    (listen keys, depth): by default ``market`` itself when it is a futures market, else USD-M.
    The server-time offset is measured by :meth:`sync_time` (called automatically before the first
    signed request when ``auto_time_sync`` is on) and added to every ``timestamp``.
    """

    def __init__(self, api_key: str | None = None, api_secret: str | None = None, *,
                 private_key: str | bytes | os.PathLike[str] | None = None,
                 private_key_password: str | None = None,
                 market: Market | None = None, base_url: str | None = None,
                 futures_market: Market | None = None, futures_base_url: str | None = None,
                 recv_window: float = DEFAULT_RECV_WINDOW_MS, timeout_s: float = 10.0,
                 auto_time_sync: bool = True, env: Mapping[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        self.api_key = api_key or _env(environ, ENV_API_KEY)
        if api_secret is None and private_key is None:
            api_secret = _env(environ, ENV_API_SECRET)
            private_key = _env(environ, ENV_PRIVATE_KEY) or _env(environ, ENV_PRIVATE_KEY_PATH)
            private_key_password = private_key_password or _env(environ, ENV_PRIVATE_KEY_PASSWORD)
            if api_secret is not None and private_key is not None:
                private_key = None  # an explicit HMAC secret wins; both set is a leftover environment
        self._signer: Signer | None = None
        if api_secret is not None or private_key is not None:
            self._signer = make_signer(secret=api_secret, private_key=private_key,
                                       private_key_password=private_key_password)
        if not 0 < recv_window <= MAX_RECV_WINDOW_MS:
            raise ValueError(f"recv_window must be in (0, {MAX_RECV_WINDOW_MS}] ms")
        market = market or default_market(environ)
        self.market = market
        self.base_url = (base_url or market.rest_url).rstrip("/")
        if futures_market is None:  # a client made for a futures market makes its futures calls there
            futures_market = market if market.product.name in ("usdm", "coinm") else USDM
        self.futures_market = futures_market
        self.futures_base_url = (futures_base_url or futures_market.rest_url).rstrip("/")
        self.recv_window = recv_window
        self.timeout_s = timeout_s
        self.auto_time_sync = auto_time_sync
        #: Server time minus local time, in ms; added to every request timestamp.
        self.time_offset_ms = 0
        self._time_synced = False
        #: One HTTP session per event loop: the threaded facade and the sync ``Client`` may drive the
        #: same client from different loops, and an aiohttp session belongs to the loop that made it.
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    # -- identity ---------------------------------------------------------------------------------
    @property
    def key_type(self) -> str | None:
        """``"HMAC"``, ``"RSA"``, ``"ED25519"``, or None without a signing key."""
        return self._signer.key_type if self._signer is not None else None

    @property
    def signer(self) -> Signer | None:
        """The signer, for the WebSocket API client (user data) that signs with the same key."""
        return self._signer

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(base_url={self.base_url!r}, key_type={self.key_type}, "
                f"api_key={'<set>' if self.api_key else None})")

    def timestamp_ms(self) -> int:
        """Local time corrected by the measured server-time offset."""
        return time.time_ns() // 1_000_000 + self.time_offset_ms

    # -- lifecycle --------------------------------------------------------------------------------
    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # Default connector: certificate verification stays on for every https endpoint.
            session = self._sessions[loop] = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                json_serialize=lambda o: orjson.dumps(o).decode())
        return session

    async def close(self) -> None:
        """Close the HTTP sessions: this loop's here, other live loops' on their own loop."""
        here = asyncio.get_running_loop()
        sessions, self._sessions = self._sessions, {}
        for loop, session in sessions.items():
            if loop is here:
                await session.close()
            elif loop.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(session.close(), loop))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- transport --------------------------------------------------------------------------------
    async def _request(self, method: str, path: str, params: Mapping[str, Any] | None = None, *,
                       signed: bool = False, api_key: bool = False, base: str | None = None) -> Any:
        """Send one request and return its decoded JSON, or raise :class:`BinanceAPIError`.

        With ``auto_time_sync``, a signed request refused with -1021 (the local clock drifted since the
        last measurement) re-measures the server-time offset and is sent once more: the refused request
        was not executed, so repeating it is safe.
        """
        try:
            return await self._send(method, path, params, signed=signed, api_key=api_key, base=base)
        except BinanceAPIError as exc:
            if not (signed and self.auto_time_sync and exc.code == TIMESTAMP_OUTSIDE_RECV_WINDOW):
                raise
        await self.sync_time()
        return await self._send(method, path, params, signed=signed, api_key=api_key, base=base)

    async def _send(self, method: str, path: str, params: Mapping[str, Any] | None, *,
                    signed: bool, api_key: bool, base: str | None) -> Any:
        """One HTTP exchange of :meth:`_request`.

        GET/DELETE carry parameters in the query string; POST/PUT in a form body. For signed calls the
        percent-encoded query and body are signed exactly as sent (PROTOCOL 7.1).
        """
        items = dict(params or {})
        headers: dict[str, str] = {}
        if signed or api_key:
            if not self.api_key:
                raise BinanceAPIError(0, None, "this call needs an API key (pass api_key or set "
                                      f"{ENV_API_KEY})", method=method, path=path)
            headers[API_KEY_HEADER] = self.api_key
        if signed:
            if self._signer is None:
                raise BinanceAPIError(0, None, "this call needs a signing key (api_secret or private_key)",
                                      method=method, path=path)
            if self.auto_time_sync and not self._time_synced:
                await self.sync_time()
            items.setdefault("recvWindow", self.recv_window)
            items["timestamp"] = self.timestamp_ms()
        encoded = encode_params(items)
        in_body = method in ("POST", "PUT")
        query, body = ("", encoded) if in_body else (encoded, "")
        if signed:
            assert self._signer is not None
            signature = encode_params({"signature": self._signer.sign(rest_payload(query, body))})
            if in_body:
                body = f"{body}&{signature}" if body else signature
            else:
                query = f"{query}&{signature}" if query else signature
        url = f"{base or self.base_url}{path}" + (f"?{query}" if query else "")
        data: bytes | None = None
        if in_body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = body.encode()
        try:
            async with self._http().request(method, URL(url, encoded=True), data=data,
                                            headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Some aiohttp errors quote the URL, and a signed call's query carries the signature.
            text = str(exc).replace(query, "<params>") if query else str(exc)
            raise BinanceAPIError(0, None, f"{type(exc).__name__}: {text}".rstrip(": "),
                                  method=method, path=path) from None
        if status >= 400:
            raise self._error(status, raw, retry_after, method, path)
        try:
            return orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise BinanceAPIError(status, None, "response is not JSON", method=method, path=path) from None

    @staticmethod
    def _error(status: int, raw: bytes, retry_after: str | None, method: str, path: str) -> BinanceAPIError:
        code: int | None = None
        msg = raw[:200].decode(errors="replace").strip() or f"HTTP {status}"
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and "code" in body:
            code = int(body["code"])
            msg = str(body.get("msg", ""))
        wait: float | None = None
        if retry_after is not None:
            try:
                wait = float(retry_after)
            except ValueError:
                wait = None
        return BinanceAPIError(status, code, msg, retry_after=wait, method=method, path=path)

    def _api(self, endpoint: str) -> str:
        return f"{self.market.rest_prefix}/{endpoint}"

    # -- general ------------------------------------------------------------------------------------
    async def ping(self) -> dict[str, Any]:
        """``GET /api/v3/ping``: ``{}`` when the server is reachable."""
        result: dict[str, Any] = await self._request("GET", self._api("ping"))
        return result

    async def get_server_time(self) -> dict[str, Any]:
        """``GET /api/v3/time``: ``{"serverTime": ms}``."""
        result: dict[str, Any] = await self._request("GET", self._api("time"))
        return result

    async def sync_time(self) -> int:
        """Measure the server-time offset (server minus local, midpoint of the round trip); returns it."""
        before = time.time_ns() // 1_000_000
        server = (await self.get_server_time())["serverTime"]
        after = time.time_ns() // 1_000_000
        self.time_offset_ms = int(server) - (before + after) // 2
        self._time_synced = True
        return self.time_offset_ms

    async def get_exchange_info(self, symbol: str | None = None) -> dict[str, Any]:
        """``GET /api/v3/exchangeInfo`` (optionally for one symbol)."""
        result: dict[str, Any] = await self._request("GET", self._api("exchangeInfo"),
                                                     {"symbol": symbol} if symbol else None)
        return result

    # -- market data --------------------------------------------------------------------------------
    async def get_order_book(self, symbol: str, limit: int = 100) -> dict[str, Any]:
        """``GET /api/v3/depth``: ``{"lastUpdateId", "bids", "asks"}``."""
        result: dict[str, Any] = await self._request("GET", self._api("depth"),
                                                     {"symbol": symbol, "limit": limit})
        return result

    async def get_recent_trades(self, symbol: str, limit: int = 500) -> list[dict[str, Any]]:
        """``GET /api/v3/trades``."""
        result: list[dict[str, Any]] = await self._request("GET", self._api("trades"),
                                                           {"symbol": symbol, "limit": limit})
        return result

    async def get_aggregate_trades(self, symbol: str, **params: Any) -> list[dict[str, Any]]:
        """``GET /api/v3/aggTrades`` (``fromId``, ``startTime``, ``endTime``, ``limit`` as keywords)."""
        result: list[dict[str, Any]] = await self._request("GET", self._api("aggTrades"),
                                                           {"symbol": symbol, **params})
        return result

    async def get_klines(self, **params: Any) -> list[list[Any]]:
        """``GET /api/v3/klines`` (python-binance's call): ``symbol``, ``interval`` (a
        ``KLINE_INTERVAL_*``), and optionally ``limit``, ``startTime``, ``endTime``, ``timeZone``."""
        result: list[list[Any]] = await self._request("GET", self._api("klines"), params)
        return result

    async def get_symbol_ticker(self, **params: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """``GET /api/v3/ticker/price``: ``{"symbol", "price"}`` for ``symbol=``; every symbol's, as a
        list, without it."""
        result: dict[str, Any] | list[dict[str, Any]] = await self._request(
            "GET", self._api("ticker/price"), params)
        return result

    # -- orders (signed) ----------------------------------------------------------------------------
    async def create_test_order(self, **params: Any) -> dict[str, Any]:
        """``POST /api/v3/order/test`` (python-binance's call): validates an order like
        :meth:`create_order` (same keywords: ``symbol``, ``side``, ``type``, ...) without placing it;
        ``computeCommissionRates=True`` asks for the commission rates."""
        result: dict[str, Any] = await self._request("POST", self._api("order/test"), params, signed=True)
        return result

    async def get_open_orders(self, **params: Any) -> list[dict[str, Any]]:
        """``GET /api/v3/openOrders``: the open orders of ``symbol=``, or of every symbol without it."""
        result: list[dict[str, Any]] = await self._request("GET", self._api("openOrders"), params,
                                                           signed=True)
        return result

    async def get_my_trades(self, **params: Any) -> list[dict[str, Any]]:
        """``GET /api/v3/myTrades``: the account's trades of ``symbol=`` (``orderId``, ``startTime``,
        ``endTime``, ``fromId``, ``limit`` as keywords)."""
        result: list[dict[str, Any]] = await self._request("GET", self._api("myTrades"), params, signed=True)
        return result

    async def create_order(self, symbol: str, side: str, type: str, **params: Any) -> dict[str, Any]:
        """``POST /api/v3/order``: ``quantity``, ``price``, ``timeInForce``, ``newClientOrderId``, ...
        as keywords, named as Binance names them."""
        result: dict[str, Any] = await self._request(
            "POST", self._api("order"), {"symbol": symbol, "side": side, "type": type, **params}, signed=True)
        return result

    async def cancel_order(self, symbol: str, **params: Any) -> dict[str, Any]:
        """``DELETE /api/v3/order`` by ``orderId`` or ``origClientOrderId``."""
        result: dict[str, Any] = await self._request("DELETE", self._api("order"),
                                                     {"symbol": symbol, **params}, signed=True)
        return result

    async def get_order(self, symbol: str, **params: Any) -> dict[str, Any]:
        """``GET /api/v3/order`` by ``orderId`` or ``origClientOrderId``."""
        result: dict[str, Any] = await self._request("GET", self._api("order"),
                                                     {"symbol": symbol, **params}, signed=True)
        return result

    async def get_account(self, **params: Any) -> dict[str, Any]:
        """``GET /api/v3/account``: balances and permissions."""
        result: dict[str, Any] = await self._request("GET", self._api("account"), params, signed=True)
        return result

    # -- listen keys (USER_STREAM: API key, no signature; PROTOCOL 6.2 and 8) ------------------------
    async def stream_get_listen_key(self) -> str:
        """Legacy spot ``POST /api/v3/userDataStream``; Binance answers 410 since 2026-02-20."""
        result = await self._request("POST", self._api("userDataStream"), api_key=True)
        return str(result["listenKey"])

    # ``listenKey`` keeps python-binance's keyword name so seed calls port unchanged.
    async def stream_keepalive(self, listenKey: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("PUT", self._api("userDataStream"),
                                                     {"listenKey": listenKey}, api_key=True)
        return result

    async def stream_close(self, listenKey: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("DELETE", self._api("userDataStream"),
                                                     {"listenKey": listenKey}, api_key=True)
        return result

    def _fapi(self, endpoint: str) -> str:
        return f"{self.futures_market.rest_prefix}/{endpoint}"

    async def futures_order_book(self, symbol: str, limit: int = 500) -> dict[str, Any]:
        """``GET /fapi/v1/depth`` (``/dapi/v1/depth`` with a COIN-M ``futures_market``): ``{"lastUpdateId",
        "E", "T", "bids", "asks"}`` (COIN-M adds ``symbol``, ``pair``). ``limit`` is one of 5, 10, 20, 50,
        100, 500, 1000 (PROTOCOL 5.2; ``ValueError`` otherwise, before any request)."""
        self.futures_market.sequence_rule.validate_limit(limit)
        result: dict[str, Any] = await self._request("GET", self._fapi("depth"),
                                                     {"symbol": symbol, "limit": limit},
                                                     base=self.futures_base_url)
        return result

    async def futures_stream_get_listen_key(self) -> str:
        """``POST /fapi/v1/listenKey``: a new key, or the live one extended (60 min validity)."""
        result = await self._request("POST", self._fapi("listenKey"), api_key=True,
                                     base=self.futures_base_url)
        return str(result["listenKey"])

    async def futures_stream_keepalive(self, listenKey: str) -> dict[str, Any]:
        """``PUT /fapi/v1/listenKey``; -1125 if the key is gone."""
        result: dict[str, Any] = await self._request("PUT", self._fapi("listenKey"), {"listenKey": listenKey},
                                                     api_key=True, base=self.futures_base_url)
        return result

    async def futures_stream_close(self, listenKey: str) -> dict[str, Any]:
        """``DELETE /fapi/v1/listenKey``."""
        result: dict[str, Any] = await self._request("DELETE", self._fapi("listenKey"),
                                                     {"listenKey": listenKey}, api_key=True,
                                                     base=self.futures_base_url)
        return result
