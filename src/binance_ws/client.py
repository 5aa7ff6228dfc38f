"""Signed REST clients: :class:`AsyncClient` (asyncio, aiohttp) and :class:`Client` (sync, thread-safe).

``Client`` is what the seed passes to ``BinanceSocketManager(client)``; method names follow python-binance
so seed code ports unchanged. Keys come from arguments or the environment (``BINANCE_API_KEY`` with
``BINANCE_API_SECRET`` for HMAC, or ``BINANCE_PRIVATE_KEY`` / ``BINANCE_PRIVATE_KEY_PATH`` for RSA and
Ed25519). Every failure is raised as :class:`BinanceAPIError` (HTTP status, Binance code and message).
The asyncio client and the error type live in the engine layer (:mod:`binance_ws.engine.rest`) and are
re-exported here; this module adds the blocking binding.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import weakref
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from binance_ws.engine.rest import (
    API_KEY_HEADER,
    DEFAULT_RECV_WINDOW_MS,
    ENV_API_KEY,
    ENV_API_SECRET,
    ENV_PRIVATE_KEY,
    ENV_PRIVATE_KEY_PASSWORD,
    ENV_PRIVATE_KEY_PATH,
    MAX_RECV_WINDOW_MS,
    AsyncClient,
    BinanceAPIError,
)

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_RECV_WINDOW_MS",
    "ENV_API_KEY",
    "ENV_API_SECRET",
    "ENV_PRIVATE_KEY",
    "ENV_PRIVATE_KEY_PASSWORD",
    "ENV_PRIVATE_KEY_PATH",
    "MAX_RECV_WINDOW_MS",
    "AsyncClient",
    "BinanceAPIError",
    "Client",
]

T = TypeVar("T")

#: How long closing waits for the HTTP session to close and the loop thread to end.
CLOSE_TIMEOUT_S = 5.0
_MISSING = object()


class _Runner:
    """The private event loop of a :class:`Client`, on a daemon thread started on first use.

    Kept apart from the client so that a finalizer can close it without keeping the client alive: a
    client nobody closed is cleaned up when it is collected or, at the latest, at interpreter exit (no
    "Unclosed client session" warning from aiohttp)."""

    def __init__(self, inner: AsyncClient) -> None:
        self.inner = inner
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self.lock:
            if self.loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="binance-ws-client", daemon=True)
                thread.start()
                self.loop, self.thread = loop, thread
            loop = self.loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def close(self) -> None:
        with self.lock:
            loop, thread = self.loop, self.thread
            self.loop = self.thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            # Collected on its own loop thread: it cannot wait for itself; close there and stop.
            task = loop.create_task(self.inner.close())
            task.add_done_callback(lambda _: loop.stop())
            return
        try:
            asyncio.run_coroutine_threadsafe(self.inner.close(), loop).result(CLOSE_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CLOSE_TIMEOUT_S)
            if not thread.is_alive():
                loop.close()


class Client:
    """The synchronous client: :class:`AsyncClient`'s calls, blocking, callable from any thread.

    It owns a private event loop on a daemon thread (started lazily), so it works the same from a plain
    script, from worker threads and next to someone else's running loop. :meth:`close` (or ``with``)
    releases it at once; a client never closed is cleaned up when collected or at interpreter exit.
    """

    def __init__(self, api_key: str | None = None, api_secret: str | None = None, **kwargs: Any) -> None:
        self._async = AsyncClient(api_key, api_secret, **kwargs)
        self._runner = _Runner(self._async)
        self._finalizer = weakref.finalize(self, self._runner.close)

    @property
    def async_client(self) -> AsyncClient:
        """The underlying :class:`AsyncClient` (same keys, market and time offset)."""
        return self._async

    def __getattr__(self, name: str) -> Any:
        # Plain attributes (api_key, market, time_offset_ms, ...) read through to the async client; its
        # coroutine methods do not (a coroutine is not what a sync caller can use).
        inner = self.__dict__.get("_async")
        value = getattr(inner, name, _MISSING) if inner is not None and not name.startswith("__") \
            else _MISSING
        if value is _MISSING or inspect.iscoroutinefunction(value):
            raise AttributeError(f"'Client' object has no attribute {name!r}")
        return value

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncClient(", "Client(", 1)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def close(self) -> None:
        """Close the HTTP session and stop the private loop (a later call starts them again)."""
        self._runner.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # Each call below mirrors the AsyncClient method of the same name.
    def ping(self) -> dict[str, Any]:
        return self._run(self._async.ping())

    def get_server_time(self) -> dict[str, Any]:
        return self._run(self._async.get_server_time())

    def sync_time(self) -> int:
        return self._run(self._async.sync_time())

    def get_exchange_info(self, symbol: str | None = None) -> dict[str, Any]:
        return self._run(self._async.get_exchange_info(symbol))

    def get_order_book(self, symbol: str, limit: int = 100) -> dict[str, Any]:
        return self._run(self._async.get_order_book(symbol, limit))

    def futures_order_book(self, symbol: str, limit: int = 500) -> dict[str, Any]:
        """The futures depth snapshot (``GET /fapi/v1/depth``; ``/dapi/v1/depth`` with a COIN-M
        ``futures_market``)."""
        return self._run(self._async.futures_order_book(symbol, limit))

    def get_recent_trades(self, symbol: str, limit: int = 500) -> list[dict[str, Any]]:
        return self._run(self._async.get_recent_trades(symbol, limit))

    def get_aggregate_trades(self, symbol: str, **params: Any) -> list[dict[str, Any]]:
        return self._run(self._async.get_aggregate_trades(symbol, **params))

    def get_klines(self, **params: Any) -> list[list[Any]]:
        return self._run(self._async.get_klines(**params))

    def get_symbol_ticker(self, **params: Any) -> dict[str, Any] | list[dict[str, Any]]:
        return self._run(self._async.get_symbol_ticker(**params))

    def create_order(self, symbol: str, side: str, type: str, **params: Any) -> dict[str, Any]:
        return self._run(self._async.create_order(symbol, side, type, **params))

    def create_test_order(self, **params: Any) -> dict[str, Any]:
        return self._run(self._async.create_test_order(**params))

    def get_open_orders(self, **params: Any) -> list[dict[str, Any]]:
        return self._run(self._async.get_open_orders(**params))

    def get_my_trades(self, **params: Any) -> list[dict[str, Any]]:
        return self._run(self._async.get_my_trades(**params))

    def cancel_order(self, symbol: str, **params: Any) -> dict[str, Any]:
        return self._run(self._async.cancel_order(symbol, **params))

    def get_order(self, symbol: str, **params: Any) -> dict[str, Any]:
        return self._run(self._async.get_order(symbol, **params))

    def get_account(self, **params: Any) -> dict[str, Any]:
        return self._run(self._async.get_account(**params))

    def stream_get_listen_key(self) -> str:
        return self._run(self._async.stream_get_listen_key())

    def stream_keepalive(self, listenKey: str) -> dict[str, Any]:
        return self._run(self._async.stream_keepalive(listenKey))

    def stream_close(self, listenKey: str) -> dict[str, Any]:
        return self._run(self._async.stream_close(listenKey))

    def futures_stream_get_listen_key(self) -> str:
        return self._run(self._async.futures_stream_get_listen_key())

    def futures_stream_keepalive(self, listenKey: str) -> dict[str, Any]:
        return self._run(self._async.futures_stream_keepalive(listenKey))

    def futures_stream_close(self, listenKey: str) -> dict[str, Any]:
        return self._run(self._async.futures_stream_close(listenKey))
