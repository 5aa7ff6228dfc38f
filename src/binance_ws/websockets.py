"""The seed's threaded ``BinanceSocketManager``: python-binance's API, on the asyncio stream engine.

Code written for python-binance's threaded socket manager runs unchanged::

    bm = BinanceSocketManager(client)
    conn_key = bm.start_trade_socket("BNBBTC", process_message)
    bm.start()
    ...
    bm.stop_socket(conn_key)
    bm.close()

One daemon thread runs an event loop with one :class:`~binance_ws.engine.manager.AsyncSocketManager`, so
every socket shares the engine's combined connections, reconnects, rotation and gap reports. Callbacks
run on that thread and receive Binance's dicts; the only other thing they can receive is an error event
``{'e': 'error', 'm': ..., ...}`` (see :mod:`binance_ws.errors`), e.g. exactly
``{'e': 'error', 'm': 'Max reconnect retries reached'}`` after the last failed reconnect, after which
that socket is stopped. A callback that raises is logged and its stream goes on. After :meth:`close`
no thread of ours is left and the program exits by itself; :meth:`start` makes the manager usable again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from binance_ws import enums, errors
from binance_ws import streams as stream_names
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.depthcache import DEFAULT_LIMIT as DEPTH_CACHE_LIMIT
from binance_ws.depthcache import DepthCacheManager, depth_stream, value_type_for
from binance_ws.engine.delivery import Subscription
from binance_ws.engine.futures import (
    check_listen_key_client,
    contract_type_of,
    futures_market_for,
    futures_type_of,
    start_futures_user_stream,
)
from binance_ws.engine.manager import (
    MINI_TICKER_ARR_INTERVAL_MS,
    READY_POLL_S,
    TICKER_ARR_INTERVAL_S,
    AsyncSocketManager,
    StreamsRefused,
)
from binance_ws.engine.userdata import ListenKeyStream, UserDataStream, UserDecode
from binance_ws.enums import ContractType, FuturesType
from binance_ws.markets import Market, default_market

log = logging.getLogger("binance_ws.websockets")

Callback = Callable[[Any], Any]

#: The seed's listen-key keep-alive period (python-binance ``DEFAULT_USER_TIMEOUT``).
DEFAULT_USER_TIMEOUT: Final = 30 * 60
#: The conn_key of the user data socket: there is one per manager (the WebSocket API has no listen key
#: to name it by, PROTOCOL 6.3).
USER_SOCKET_KEY: Final = "userData"
#: conn_key suffix of a depth cache (a book is not a Binance stream, so it gets a name of its own).
DEPTH_CACHE_SUFFIX: Final = "@depthcache"
#: conn_keys of the USD-M and COIN-M listen-key user sockets.
FUTURES_USER_SOCKET_KEY: Final = "futuresUserData"
COIN_FUTURES_USER_SOCKET_KEY: Final = "coinFuturesUserData"
#: The conn_key of :meth:`BinanceSocketManager.start_ticker_socket`: the stream the seed opened.
TICKER_SOCKET_KEY: Final = "!ticker@arr"
#: The conn_key of :meth:`BinanceSocketManager.start_book_ticker_socket`: the stream the seed opened.
BOOK_TICKER_SOCKET_KEY: Final = "!bookTicker"
#: How long a stop or close called from another thread waits for the engine to finish it. Past this the
#: call returns anyway (the socket is already forgotten and no longer delivers once the engine gets to it).
STOP_TIMEOUT_S: Final = 10.0
#: How long stopping a socket that is still opening (e.g. in its reconnect backoff) waits for the
#: cancelled open to undo itself; the undo does not wait on the network, so this is ample.
STOP_OPENING_GRACE_S: Final = 1.0


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


Opener = Callable[[AsyncSocketManager], Awaitable[Any]]


@dataclass(eq=False)
class _Socket:
    """One started socket: how to open it on the engine, and what it became."""

    key: str
    callback: Callback
    opener: Opener
    #: A :class:`Subscription` or a user data stream once open.
    handle: Any = None
    task: concurrent.futures.Future[None] | None = field(default=None, repr=False)
    #: The engine task running the open, while it runs (stop cancels it rather than wait for it).
    opening: asyncio.Task[Any] | None = field(default=None, repr=False)
    #: Set when the engine gave the socket up (a user data stream has no ``closed`` flag to read).
    ended: bool = False

    def alive(self) -> bool:
        """Opening, or open and not ended by the engine (a socket given up after max retries is not)."""
        return not (self.ended or bool(getattr(self.handle, "closed", False)))


class BinanceSocketManager:
    """python-binance's threaded socket manager, seed-compatible.

    ``client`` is a :class:`binance_ws.client.Client` (or None for market data only): its ``market``
    says where to connect unless ``market`` is given (``sim.market`` for the simulator; with neither,
    ``BINANCE_WS_MARKET``'s market, else spot: :func:`binance_ws.markets.default_market`), and its keys
    serve :meth:`start_user_socket`. ``user_timeout`` is the seed's listen-key keep-alive period; the
    WebSocket API user stream that replaced listen keys needs none, so it is kept for compatibility
    only. ``max_reconnects`` failed reconnects in a row stop a socket (None: retry forever); any other
    keyword (``backoff``, ``ping_interval``, ``no_data_timeout``, ``rotate_after``, ...) is passed to
    :class:`~binance_ws.engine.manager.AsyncSocketManager`.

    Every ``start_*`` validates its arguments at once (raising
    :class:`~binance_ws.errors.InvalidStreamError` with the fix) and returns the socket's conn_key, or
    False if that socket is already started. Sockets may be started before or after :meth:`start`;
    nothing connects before it. ``start_*`` and ``stop_*`` may be called from any thread, callbacks
    included.
    """

    WEBSOCKET_DEPTH_5: Final = enums.WEBSOCKET_DEPTH_5
    WEBSOCKET_DEPTH_10: Final = enums.WEBSOCKET_DEPTH_10
    WEBSOCKET_DEPTH_20: Final = enums.WEBSOCKET_DEPTH_20
    DEFAULT_USER_TIMEOUT: Final = DEFAULT_USER_TIMEOUT

    def __init__(self, client: Any = None, user_timeout: float = DEFAULT_USER_TIMEOUT, *,
                 market: Market | None = None, max_reconnects: int | None = 5,
                 **engine_options: Any) -> None:
        self._client = client
        self.user_timeout = user_timeout
        self.market: Market = market or getattr(client, "market", None) or default_market()
        self.max_reconnects = max_reconnects
        self._engine_options = engine_options
        self._lock = threading.RLock()
        self._sockets: dict[str, _Socket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        #: The latest engine thread, kept after close() so join() can wait for it to end.
        self._last_thread: threading.Thread | None = None
        self._manager: AsyncSocketManager | None = None

    def __repr__(self) -> str:
        state = "running" if self._loop is not None else "stopped"
        return f"<BinanceSocketManager {self.market.name} {state} sockets={len(self._sockets)}>"

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the engine thread and open every socket started so far (idempotent)."""
        with self._lock:
            if self._loop is not None:
                return
            loop = asyncio.new_event_loop()
            # The manager is built here, not on the loop: it only stores settings until first used.
            self._manager = AsyncSocketManager(None, market=self.market, max_reconnects=self.max_reconnects,
                                               **self._engine_options)
            thread = threading.Thread(target=self._run_loop, args=(loop,), name="binance-ws-sockets",
                                      daemon=True)
            self._loop, self._thread = loop, thread
            self._last_thread = thread
            thread.start()
            for sock in self._sockets.values():
                self._schedule_open(sock)

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Whatever close() did not finish (an open still retrying) ends here, so the loop closes clean.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self) -> None:
        """Stop every socket and the engine thread; start sockets and call :meth:`start` to use it again.

        From another thread this returns once the thread has ended; from a callback it only schedules
        the shutdown (a thread cannot wait for itself).
        """
        with self._lock:
            loop, thread, manager = self._loop, self._thread, self._manager
            self._loop = self._thread = self._manager = None
            socks = list(self._sockets.values())
            self._sockets.clear()
        if loop is None or thread is None or manager is None:
            return

        async def shutdown() -> None:
            for sock in socks:
                if sock.task is not None:
                    sock.task.cancel()  # an open still in progress is abandoned, not awaited
            # Market subscriptions end with the manager; user data streams are separate connections.
            await asyncio.gather(*(_close_handle(s.handle) for s in socks
                                   if s.handle is not None and not isinstance(s.handle, Subscription)),
                                 return_exceptions=True)
            await manager.close()

        future = asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if _on_loop_thread(loop):
            future.add_done_callback(lambda _: loop.stop())
            return
        try:
            future.result(timeout=STOP_TIMEOUT_S)
        except Exception:
            log.exception("socket manager did not close cleanly")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT_S)

    def wait_ready(self, conn_key: str | None = None, timeout: float | None = 10.0) -> bool:
        """Block until the socket ``conn_key`` (every socket started so far when None) is live: its
        streams subscribed and confirmed by the server (for the user data socket: its WebSocket API
        subscription confirmed, so an order placed now has its ``executionReport`` delivered; for a
        depth cache: its streams subscribed). A socket reconnecting is not live until it is subscribed
        again. True once live; False after ``timeout`` seconds (None: no limit), if the manager is not
        started, if ``conn_key`` is not a started socket, or if a socket could not start or gave up.
        Not from a callback: callbacks run on the thread this waits on (RuntimeError)."""
        with self._lock:
            loop, manager = self._loop, self._manager
            if conn_key is None:
                socks = list(self._sockets.values())
            else:
                one = self._sockets.get(conn_key)
                socks = [one] if one is not None else []
        if loop is None or manager is None or (conn_key is not None and not socks):
            return False
        if _on_loop_thread(loop):
            raise RuntimeError("wait_ready() blocks until the engine thread has opened the sockets; "
                               "call it from another thread, not from a callback")
        future = asyncio.run_coroutine_threadsafe(_wait_ready(socks, manager), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return False
        except concurrent.futures.CancelledError:
            return False  # the manager closed meanwhile

    def join(self, timeout: float | None = None) -> None:
        """Wait for the engine thread to end (after :meth:`close`), like the seed's ``Thread.join``."""
        thread = self._last_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> BinanceSocketManager:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the engine side --------------------------------------------------------------------------
    def _start_socket(self, key: str, callback: Callback, opener: Opener) -> str | bool:
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        with self._lock:
            current = self._sockets.get(key)
            if current is not None and current.alive():
                return False
            sock = self._sockets[key] = _Socket(key, callback, opener)
            if self._loop is not None:
                self._schedule_open(sock)
        return key

    def _schedule_open(self, sock: _Socket) -> None:
        assert self._loop is not None and self._manager is not None
        sock.task = asyncio.run_coroutine_threadsafe(self._open(sock, self._manager), self._loop)

    async def _open(self, sock: _Socket, manager: AsyncSocketManager) -> None:
        sock.opening = asyncio.current_task()
        try:
            handle = await sock.opener(manager)
        except Exception as exc:
            with self._lock:
                if self._sockets.get(sock.key) is sock:
                    del self._sockets[sock.key]
            log.warning("socket %s could not start: %s", sock.key, exc)
            if isinstance(exc, StreamsRefused):
                for name, refusal in exc.refused.items():  # one event per stream, named
                    _deliver(sock.callback, _start_error(name, refusal))
            else:
                _deliver(sock.callback, _start_error(sock.key, exc))
            return
        with self._lock:
            sock.handle = handle
            stopped = self._sockets.get(sock.key) is not sock
        if stopped:
            await _close_handle(handle)

    async def _stop(self, sock: _Socket) -> None:
        task, opening = sock.task, sock.opening
        if task is not None and not task.done():
            if sock.handle is not None or opening is None:
                # Opened and closing itself (_open saw the socket gone), or not started yet.
                if opening is None:
                    task.cancel()
                await asyncio.wait({asyncio.wrap_future(task)}, timeout=STOP_OPENING_GRACE_S)
                return
            # Still opening, which may mean waiting out a reconnect backoff: cancel it; a cancelled
            # subscribe or user-data start undoes what it registered at once.
            opening.cancel()
            done, _ = await asyncio.wait({opening}, timeout=STOP_OPENING_GRACE_S)
            if not done:
                log.warning("socket %s: its open did not end %.1f s after being cancelled", sock.key,
                            STOP_OPENING_GRACE_S)
        elif sock.handle is not None:
            await _close_handle(sock.handle)

    def stop_socket(self, conn_key: str) -> None:
        """Stop the socket ``conn_key`` (a value a ``start_*`` returned); unknown keys are ignored."""
        with self._lock:
            sock = self._sockets.pop(conn_key, None)
            loop = self._loop
        if sock is None or loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._stop(sock), loop)
        if not _on_loop_thread(loop):
            with contextlib.suppress(concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                future.result(timeout=STOP_TIMEOUT_S)

    def _stop_where(self, match: Callable[[str], bool]) -> None:
        with self._lock:
            keys = [k for k in self._sockets if match(k)]
        for key in keys:
            self.stop_socket(key)

    # -- market sockets ---------------------------------------------------------------------------
    def _start_streams(self, names: list[str], callback: Callback, key: str,
                       wrap: bool = False) -> str | bool:
        # Validated here, in the caller's thread, so a bad name raises before anything opens.
        checked = [stream_names.validate_stream(n, self.market) for n in names]
        return self._start_socket(key, callback, lambda m: m.subscribe(checked, callback, wrap=wrap))

    def _start_stream(self, name: str, callback: Callback) -> str | bool:
        return self._start_streams([name], callback, name)

    def start_depth_socket(self, symbol: str, callback: Callback, depth: int | str | None = None,
                           interval: int | None = None) -> str | bool:
        """Diff depth of ``symbol`` by default; ``depth`` ``WEBSOCKET_DEPTH_5/10/20`` for the partial
        book; ``interval=100`` for the 100 ms stream. conn_key e.g. ``bnbbtc@depth5``."""
        return self._start_stream(stream_names.depth(symbol, depth, interval), callback)

    def start_kline_socket(self, symbol: str, callback: Callback,
                           interval: str = enums.KLINE_INTERVAL_1MINUTE) -> str | bool:
        """Klines of ``symbol`` at ``interval`` (a ``KLINE_INTERVAL_*``); conn_key ``bnbbtc@kline_1m``."""
        return self._start_stream(stream_names.kline(symbol, interval), callback)

    def start_trade_socket(self, symbol: str, callback: Callback) -> str | bool:
        """Every trade of ``symbol``; conn_key ``bnbbtc@trade``."""
        return self._start_stream(stream_names.trade(symbol), callback)

    def start_aggtrade_socket(self, symbol: str, callback: Callback) -> str | bool:
        """Aggregate trades of ``symbol``; conn_key ``bnbbtc@aggTrade``."""
        return self._start_stream(stream_names.agg_trade(symbol), callback)

    def start_symbol_ticker_socket(self, symbol: str, callback: Callback) -> str | bool:
        """The 24 h ticker of ``symbol``, every second; conn_key ``bnbbtc@ticker``."""
        return self._start_stream(stream_names.ticker(symbol), callback)

    def start_symbol_book_ticker_socket(self, symbol: str, callback: Callback) -> str | bool:
        """Best bid and ask of ``symbol``, real-time; conn_key ``bnbbtc@bookTicker``."""
        return self._start_stream(stream_names.book_ticker(symbol), callback)

    def start_multiplex_socket(self, streams: Iterable[str], callback: Callback) -> str | bool:
        """Several streams by name (lowercase symbols) on one socket; messages are
        ``{'stream': ..., 'data': ...}``. A user data stream is refused. conn_key ``streams=a/b``."""
        names = stream_names.stream_list(streams)
        if not names:
            raise errors.InvalidStreamError("no stream given; pass names such as ['bnbbtc@trade']")
        # Validated before the names make the conn_key, so a bad one raises InvalidStreamError.
        checked = [stream_names.validate_stream(n, self.market) for n in names]
        return self._start_streams(checked, callback, "streams=" + "/".join(checked), wrap=True)

    def start_miniticker_socket(self, callback: Callback, update_time: int = MINI_TICKER_ARR_INTERVAL_MS
                                ) -> str | bool:
        """Mini tickers of every symbol that changed, as a list: Binance pushes every 1000 ms; a larger
        ``update_time`` (ms) conflates them here (newest per symbol). conn_key
        ``!miniTicker@arr@<update_time>ms`` as in the seed."""
        if isinstance(update_time, bool) or not isinstance(update_time, int) \
                or update_time < MINI_TICKER_ARR_INTERVAL_MS:
            raise errors.InvalidStreamError(
                f"update_time must be an integer number of ms >= {MINI_TICKER_ARR_INTERVAL_MS} (Binance "
                f"pushes every {MINI_TICKER_ARR_INTERVAL_MS} ms), got {update_time!r}")
        name = stream_names.mini_ticker()
        key = f"{name}@{update_time}ms"
        if update_time == MINI_TICKER_ARR_INTERVAL_MS:
            return self._start_socket(key, callback, lambda m: m.subscribe(name, callback))
        return self._start_socket(key, callback,
                                  lambda m: m.subscribe_conflated(name, update_time / 1000, callback))

    def start_ticker_socket(self, callback: Callback) -> str | bool:
        """24 h tickers of every trading symbol that changed, as a list, about once a second: what the
        seed's ``!ticker@arr`` delivered. That stream was retired on 2026-03-26, so this subscribes to
        each symbol's ``@ticker`` (symbols from exchangeInfo) and batches them. conn_key ``!ticker@arr``."""
        async def open_(m: AsyncSocketManager) -> Subscription:
            names = [stream_names.ticker(s) for s in await m.trading_symbols()]
            return await m.subscribe_conflated(names, TICKER_ARR_INTERVAL_S, callback)

        return self._start_socket(TICKER_SOCKET_KEY, callback, open_)

    def start_book_ticker_socket(self, callback: Callback) -> str | bool:
        """Best bid and ask of every trading symbol, each update as it happens: what the seed's
        ``!bookTicker`` delivered. Binance removed that stream on 2022-12-07, so this subscribes to each
        symbol's ``@bookTicker`` (symbols from exchangeInfo), sharded over as many connections as
        needed. conn_key ``!bookTicker``."""
        async def open_(m: AsyncSocketManager) -> Subscription:
            names = [stream_names.book_ticker(s) for s in await m.trading_symbols()]
            return await m.subscribe(names, callback)

        return self._start_socket(BOOK_TICKER_SOCKET_KEY, callback, open_)

    # -- order books --------------------------------------------------------------------------------
    def start_depth_cache(self, callback: Callback, symbol: str, *, limit: int = DEPTH_CACHE_LIMIT,
                          conv_type: Callable[[str], Any] = float, ws_interval: int | None = 100,
                          max_depth: int | None = None) -> str | bool:
        """A local order book of ``symbol`` kept in sync by Binance's procedure (PROTOCOL 5), sharing the
        manager's connections. ``callback(depth_cache)`` runs on the loop thread after every change (hand
        other threads ``depth_cache.copy()``); ``depth_cache.state`` says SYNCING, SYNCED, STALE or FAILED.
        ``conv_type`` is float, Decimal or str (python-binance's argument). conn_key
        ``bnbbtc@depthcache``."""
        name = stream_names.validate_symbol(symbol)
        value_type = value_type_for(conv_type)

        async def open_(m: AsyncSocketManager) -> DepthCacheManager:
            dcm = DepthCacheManager(m, name, callback=callback, limit=limit, value_type=value_type,
                                    ws_interval=ws_interval, max_depth=max_depth)
            await dcm.start()
            return dcm

        return self._start_socket(f"{name.lower()}{DEPTH_CACHE_SUFFIX}", callback, open_)

    def stop_depth_cache(self, symbol: str) -> None:
        """Stop the depth cache ``start_depth_cache`` opened for ``symbol``."""
        self.stop_socket(f"{symbol.lower()}{DEPTH_CACHE_SUFFIX}")

    # -- user data --------------------------------------------------------------------------------
    def start_user_socket(self, callback: Callback) -> str | bool:
        """The account's user data events (``executionReport``, ``outboundAccountPosition``, ...) over
        the WebSocket API, resubscribed after every reconnect; on a market whose product delivers user
        data over a listen key (futures), that listen-key stream (:meth:`start_futures_user_socket`).
        Needs a client with an API key and a signing key (ValueError otherwise). conn_key ``userData``."""
        if self.market.product.user_data == "listen-key":
            return self._start_listen_key_socket(callback, futures_type_of(self.market.product.name))
        client = getattr(self._client, "async_client", self._client)
        if client is None or getattr(client, "signer", None) is None or not getattr(client, "api_key", None):
            raise ValueError("start_user_socket needs BinanceSocketManager(client) with an API key and "
                             "secret (or private key)")

        socks: list[_Socket] = []

        def deliver(msg: Any) -> None:
            # User events are few: checking each for the final error costs nothing that matters.
            if isinstance(msg, dict) and msg.get("e") == "error" and msg.get("m") == errors.MSG_MAX_RETRIES:
                for sock in socks:
                    sock.ended = True
            callback(msg)

        # The same reconnect schedule as the market sockets (an explicit ``backoff`` option wins).
        backoff = self._engine_options.get("backoff") or BackoffPolicy(max_retries=self.max_reconnects)

        async def open_(m: AsyncSocketManager) -> UserDataStream:
            stream = UserDataStream(client, deliver, ws_api_url=self.market.ws_api_url or None,
                                    backoff=backoff)
            await stream.start()
            return stream

        key = self._start_socket(USER_SOCKET_KEY, callback, open_)
        if key:
            with self._lock:
                sock = self._sockets.get(USER_SOCKET_KEY)
                if sock is not None:
                    socks.append(sock)
        return key

    # -- futures (python-binance 1.0.37's ThreadedWebsocketManager names and arguments) ------------
    def _futures_market(self, futures_type: Any) -> Market:
        return futures_market_for(self.market, futures_type, usdm=self._engine_options.get("futures_market"),
                                  coinm=self._engine_options.get("coin_futures_market"))

    def _start_futures(self, names: list[str], callback: Callback, futures_type: Any,
                       key: str | None = None, wrap: bool = False) -> str | bool:
        """Start ``names`` on the futures market of ``futures_type``. conn_key: the stream name
        (``streams=a/b`` for several) on a manager whose own market that is, else prefixed
        ``<market>:``."""
        market = self._futures_market(futures_type)
        checked = [stream_names.validate_stream(n, market) for n in names]
        key = key or (checked[0] if len(checked) == 1 else "streams=" + "/".join(checked))
        if market != self.market:
            key = f"{market.name}:{key}"
        kind = futures_type_of(futures_type)
        return self._start_socket(key, callback,
                                  lambda m: m.futures_manager(kind).subscribe(checked, callback, wrap=wrap))

    def start_aggtrade_futures_socket(self, callback: Any, symbol: Any,
                                      futures_type: Any = FuturesType.USD_M) -> str | bool:
        """``<symbol>@aggTrade`` on futures. Arguments in python-binance's order (callback, symbol) or the
        seed's (symbol, callback)."""
        symbol, callback = _seed_order(symbol, callback)
        return self._start_futures([stream_names.agg_trade(symbol)], callback, futures_type)

    def start_kline_futures_socket(self, callback: Any, symbol: Any,
                                   interval: str = enums.KLINE_INTERVAL_1MINUTE,
                                   futures_type: Any = FuturesType.USD_M,
                                   contract_type: Any = ContractType.PERPETUAL) -> str | bool:
        """``<pair>_<contractType>@continuousKline_<interval>`` (python-binance's stream for this call)."""
        symbol, callback = _seed_order(symbol, callback)
        market = self._futures_market(futures_type)
        name = stream_names.continuous_kline(symbol, contract_type_of(contract_type), interval, market)
        return self._start_futures([name], callback, futures_type)

    def start_symbol_mark_price_socket(self, callback: Any, symbol: Any, fast: bool = True,
                                       futures_type: Any = FuturesType.USD_M) -> str | bool:
        """``<symbol>@markPrice@1s`` (``fast``, python-binance's default) or ``@markPrice``."""
        symbol, callback = _seed_order(symbol, callback)
        return self._start_futures([stream_names.mark_price(symbol, fast)], callback, futures_type)

    def start_all_mark_price_socket(self, callback: Callback, fast: bool = True,
                                    futures_type: Any = FuturesType.USD_M) -> str | bool:
        """``!markPrice@arr@1s`` (``fast``) or ``!markPrice@arr``."""
        return self._start_futures([stream_names.all_mark_price(fast)], callback, futures_type)

    def start_index_price_socket(self, callback: Any, symbol: Any, fast: bool = True) -> str | bool:
        """``<pair>@indexPrice@1s`` (``fast``) or ``@indexPrice`` on COIN-M."""
        symbol, callback = _seed_order(symbol, callback)
        return self._start_futures([stream_names.index_price(symbol, fast)], callback, FuturesType.COIN_M)

    def start_symbol_ticker_futures_socket(self, callback: Any, symbol: Any,
                                           futures_type: Any = FuturesType.USD_M) -> str | bool:
        """``<symbol>@bookTicker`` on futures (python-binance's stream for this name)."""
        symbol, callback = _seed_order(symbol, callback)
        return self._start_futures([stream_names.book_ticker(symbol)], callback, futures_type)

    def start_individual_symbol_ticker_futures_socket(self, callback: Any, symbol: Any,
                                                      futures_type: Any = FuturesType.USD_M) -> str | bool:
        """``<symbol>@ticker`` on futures."""
        symbol, callback = _seed_order(symbol, callback)
        return self._start_futures([stream_names.ticker(symbol)], callback, futures_type)

    def start_all_ticker_futures_socket(self, callback: Callback,
                                        futures_type: Any = FuturesType.USD_M) -> str | bool:
        """``!bookTicker`` on futures (python-binance's channel for this call)."""
        return self._start_futures([stream_names.all_book_ticker()], callback, futures_type)

    def start_futures_multiplex_socket(self, callback: Any, streams: Any,
                                       futures_type: Any = FuturesType.USD_M) -> str | bool:
        """Several futures streams, messages ``{'stream', 'data'}``; each rides the route its product
        declares (USD-M ``/public`` or ``/market``)."""
        streams, callback = _seed_order(streams, callback)
        return self._start_futures(stream_names.stream_list(streams), callback, futures_type, wrap=True)

    def start_futures_depth_socket(self, callback: Any, symbol: Any, depth: str | int | None = "10",
                                   futures_type: Any = FuturesType.USD_M,
                                   interval: int | None = None) -> str | bool:
        """``<symbol>@depth<depth>`` (10 levels by default, as python-binance); ``depth=None`` for the
        diff stream, ``interval`` 0/100/500 for the other speeds."""
        symbol, callback = _seed_order(symbol, callback)
        market = self._futures_market(futures_type)
        return self._start_futures([stream_names.depth(symbol, depth, interval, market)], callback,
                                   futures_type)

    def start_futures_user_socket(self, callback: Callback, decode: UserDecode = "dict") -> str | bool:
        """USD-M user data over a listen key (``/private`` on the routed market), kept alive every
        ``user_timeout`` and replaced on expiry; needs ``BinanceSocketManager(client)`` with an API key
        (ValueError otherwise). ``decode="typed"``: the callback gets :data:`binance_ws.models.UsdmUserEvent`
        models (error events stay dicts). conn_key ``futuresUserData``."""
        return self._start_listen_key_socket(callback, FuturesType.USD_M, decode)

    def start_coin_futures_user_socket(self, callback: Callback, decode: UserDecode = "dict") -> str | bool:
        """COIN-M user data over a listen key (``/ws/<key>`` on the COIN-M host); the client's listen-key
        calls must reach COIN-M: ``Client(..., futures_market=COINM)``. ``decode="typed"``:
        :data:`binance_ws.models.CoinmUserEvent` models. conn_key ``coinFuturesUserData``."""
        return self._start_listen_key_socket(callback, FuturesType.COIN_M, decode)

    start_coin_futures_socket = start_coin_futures_user_socket

    def _start_listen_key_socket(self, callback: Callback, futures_type: FuturesType,
                                 decode: UserDecode = "dict") -> str | bool:
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        if decode not in ("dict", "typed"):
            raise ValueError(f"decode must be 'dict' or 'typed', not {decode!r}")
        client = getattr(self._client, "async_client", self._client)
        if client is None or not getattr(client, "api_key", None):
            raise ValueError("a futures user socket needs BinanceSocketManager(client) with an API key")
        check_listen_key_client(client, self._futures_market(futures_type))  # raises here, not later
        backoff = self._engine_options.get("backoff") or BackoffPolicy(max_retries=self.max_reconnects)

        async def open_(m: AsyncSocketManager) -> Any:
            return await start_futures_user_stream(m, futures_type, client, callback, backoff=backoff,
                                                   keepalive_interval_s=self.user_timeout, decode=decode)

        key = FUTURES_USER_SOCKET_KEY if futures_type is FuturesType.USD_M else COIN_FUTURES_USER_SOCKET_KEY
        return self._start_socket(key, callback, open_)

    start_futures_socket = start_futures_user_socket

    def start_futures_depth_cache(self, callback: Callback, symbol: str, *, limit: int = DEPTH_CACHE_LIMIT,
                                  conv_type: Callable[[str], Any] = float, ws_interval: int | None = 100,
                                  max_depth: int | None = None,
                                  futures_type: Any = FuturesType.USD_M) -> str | bool:
        """:meth:`start_depth_cache` on the futures market of ``futures_type`` (PROTOCOL 5.2 sync).
        conn_key ``<market>:<symbol>@depthcache`` (no prefix on a futures manager's own market)."""
        market = self._futures_market(futures_type)
        name = stream_names.validate_symbol(symbol)
        depth_stream(name, ws_interval, market)
        value_type = value_type_for(conv_type)
        kind = futures_type_of(futures_type)
        key = f"{name.lower()}{DEPTH_CACHE_SUFFIX}"
        if market != self.market:
            key = f"{market.name}:{key}"

        async def open_(m: AsyncSocketManager) -> DepthCacheManager:
            dcm = DepthCacheManager(m.futures_manager(kind), name, callback=callback, limit=limit,
                                    value_type=value_type, ws_interval=ws_interval, max_depth=max_depth)
            await dcm.start()
            return dcm

        return self._start_socket(key, callback, open_)

    # -- the seed's older per-kind stops ----------------------------------------------------------
    def stop_depth_socket(self, symbol: str) -> None:
        """Stop every depth socket (diff or partial, any speed) of ``symbol``."""
        self._stop_kind(symbol, ("depth", "depthN"))

    def stop_kline_socket(self, symbol: str) -> None:
        """Stop every kline socket of ``symbol``."""
        self._stop_kind(symbol, ("kline",))

    def stop_trade_socket(self, symbol: str) -> None:
        self._stop_kind(symbol, ("trade",))

    def stop_aggtrade_socket(self, symbol: str) -> None:
        self._stop_kind(symbol, ("aggTrade",))

    def stop_symbol_ticker_socket(self, symbol: str) -> None:
        self._stop_kind(symbol, ("ticker",))

    def stop_ticker_socket(self) -> None:
        self.stop_socket(TICKER_SOCKET_KEY)

    def stop_book_ticker_socket(self) -> None:
        self.stop_socket(BOOK_TICKER_SOCKET_KEY)

    def stop_miniticker_socket(self) -> None:
        """Stop the all-market mini ticker socket, whatever its update time."""
        prefix = stream_names.mini_ticker() + "@"
        self._stop_where(lambda key: key.startswith(prefix))

    def stop_user_socket(self) -> None:
        self.stop_socket(USER_SOCKET_KEY)

    def _stop_kind(self, symbol: str, kinds: tuple[str, ...]) -> None:
        upper = stream_names.validate_symbol(symbol)

        def match(key: str) -> bool:
            if key.startswith(("!", "streams=")) or key == USER_SOCKET_KEY:
                return False
            try:
                info = stream_names.parse_stream(key, self.market)
            except errors.InvalidStreamError:
                return False  # not one of this market's stream sockets (a depth cache, a futures socket)
            return info.symbol == upper and info.kind in kinds

        self._stop_where(match)


async def _wait_ready(socks: list[_Socket], manager: AsyncSocketManager) -> bool:
    """Wait until every one of ``socks`` is open and live (see :meth:`BinanceSocketManager.wait_ready`)."""
    for sock in socks:
        if sock.task is not None:
            await asyncio.wait({asyncio.wrap_future(sock.task)})
        handle = sock.handle
        if handle is None or not sock.alive():
            return False  # could not start (its callback got the error event), or stopped
        if isinstance(handle, UserDataStream):
            while handle.subscription_id is None:  # resubscribing after a reconnect
                if not sock.alive():
                    return False
                await asyncio.sleep(READY_POLL_S)
            continue
        if isinstance(handle, ListenKeyStream):
            while handle.connection is None or not handle.connection.connected:  # (re)connecting
                if not sock.alive():
                    return False
                await asyncio.sleep(READY_POLL_S)
            continue
        if isinstance(handle, DepthCacheManager):
            owner = handle.sm
            handle = getattr(handle, "_sub", None)  # the book's streams (depthcache.py names it so)
            if handle is None or not await owner.wait_ready(None, handle):
                return False
            continue
        if not await manager.wait_ready(None, handle):
            return False
    return True


def _seed_order(first: Any, second: Any) -> tuple[Any, Any]:
    """(symbol or streams, callback) from a futures call made in python-binance's order (callback first)
    or the seed's (symbol first)."""
    if callable(second) or not callable(first):
        return first, second
    return second, first


def _start_error(key: str, exc: Exception) -> dict[str, Any]:
    if isinstance(exc, errors.SubscriptionError):
        return errors.error_event(errors.ERR_SUBSCRIPTION, errors.MSG_SUBSCRIPTION, stream=key,
                                  code=exc.code, msg=exc.msg)
    return errors.error_event(errors.ERR_SUBSCRIPTION, f"{errors.MSG_SUBSCRIPTION}: {exc}", stream=key)


def _deliver(callback: Callback, event: dict[str, Any]) -> None:
    try:
        callback(event)
    except Exception:
        log.exception("callback %r raised on an error event", callback)


async def _close_handle(handle: Any) -> None:
    if isinstance(handle, (Subscription, DepthCacheManager)):
        await handle.close()
    else:
        await handle.stop()
