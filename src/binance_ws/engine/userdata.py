"""Spot user data over the WebSocket API, resubscribed after every reconnect (issue 5).

Binance switched spot listen keys off on 2026-02-20 (../shared/PROTOCOL.md 6.1); user data now comes
from the WebSocket API (6.3) in one of two ways, both supported here:

* ``mode="signature"`` (any key type): ``userDataStream.subscribe.signature`` with ``apiKey``,
  ``timestamp`` and a signature over the sorted params (7.2);
* ``mode="logon"`` (Ed25519 keys only): ``session.logon``, then ``userDataStream.subscribe``.

The subscription is redone on every new connection and whenever the server ends it
(``eventStreamTerminated`` the caller did not ask for), so it never silently dies. The callback receives
the bare event dicts (``executionReport``, ``outboundAccountPosition``, ``balanceUpdate``, ``listStatus``,
``externalLockUpdate``, ``eventStreamTerminated``) and, in the shape of :mod:`binance_ws.errors`, an
error event when the connection is lost (events may have been missed: reconcile over REST) or when
reconnecting is given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

from binance_ws.client import AsyncClient, BinanceAPIError
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.core.signing import ws_payload
from binance_ws.engine.wsapi import FOREVER, WsApiConnection
from binance_ws.errors import ERR_DISCONNECTED, MSG_DISCONNECTED, error_event, max_retries_event

log = logging.getLogger("binance_ws.engine.userdata")

UserCallback = Callable[[dict[str, Any]], None] | Callable[[dict[str, Any]], Awaitable[None]]
Mode = Literal["signature", "logon"]

#: -1021: the timestamp was outside recvWindow (PROTOCOL 7.3); re-measure the clock and try once more.
_TIMESTAMP_REJECTED: Final = -1021
TERMINATED_EVENT: Final = "eventStreamTerminated"


class UserDataStream:
    """One account's spot user-data subscription that survives reconnects.

    ``client`` supplies the API key, the signer and the server-time offset (its REST side is not used).
    Raises :class:`BinanceAPIError` from :meth:`start` when Binance refuses the subscription (wrong key
    -2015, bad signature -1022, stale timestamp -1021, HMAC/RSA key with ``mode="logon"``, ...).
    """

    def __init__(self, client: AsyncClient, callback: UserCallback, *, ws_api_url: str | None = None,
                 mode: Mode = "signature", backoff: BackoffPolicy = FOREVER) -> None:
        if client.signer is None or not client.api_key:
            raise ValueError("a user data stream needs an API key and a signing key")
        if mode not in ("signature", "logon"):
            raise ValueError(f"unknown mode {mode!r}: 'signature' or 'logon'")
        url = ws_api_url or client.market.ws_api_url
        if not url:
            raise ValueError(f"market {client.market.name!r} has no WebSocket API")
        self._client = client
        self._callback = callback
        self._is_async = inspect.iscoroutinefunction(callback)
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self.mode: Mode = mode
        #: The live subscription's id, None while (re)subscribing.
        self.subscription_id: int | None = None
        #: How many times the subscription was made (1 after start; each recovery adds one).
        self.subscriptions = 0
        self._stopping = False
        self._resubscribing: asyncio.Task[None] | None = None
        self._conn = WsApiConnection(url, on_event=self._on_event, on_connect=self._subscribe,
                                     on_disconnect=self._on_disconnect, on_give_up=self._on_give_up,
                                     backoff=backoff)

    @property
    def connection(self) -> WsApiConnection:
        """The underlying WebSocket API connection (tests cut it to prove recovery)."""
        return self._conn

    async def start(self) -> None:
        """Connect and subscribe; returns once events can flow. Raises :class:`BinanceAPIError`."""
        if self._is_async:
            self._queue = asyncio.Queue()
            self._consumer = asyncio.create_task(self._consume(), name="binance-ws-userdata-callback")
        try:
            await self._conn.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Unsubscribe (politely, if connected) and close."""
        self._stopping = True
        if self._resubscribing is not None:
            self._resubscribing.cancel()
        if self._conn.connected and self.subscription_id is not None:
            with contextlib.suppress(BinanceAPIError):
                await self._conn.request("userDataStream.unsubscribe",
                                         {"subscriptionId": self.subscription_id}, timeout=2.0)
        await self._conn.close()
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer

    async def __aenter__(self) -> UserDataStream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- subscribing ----------------------------------------------------------------------------------
    def _signed_params(self) -> dict[str, Any]:
        client = self._client
        assert client.signer is not None
        params: dict[str, Any] = {"apiKey": client.api_key, "timestamp": client.timestamp_ms(),
                                  "recvWindow": client.recv_window}
        params["signature"] = client.signer.sign(ws_payload(params))
        return params

    async def _sync_time(self, conn: WsApiConnection) -> None:
        before = self._client.timestamp_ms() - self._client.time_offset_ms
        server = (await conn.request("time"))["serverTime"]
        after = self._client.timestamp_ms() - self._client.time_offset_ms
        self._client.time_offset_ms = int(server) - (before + after) // 2

    async def _subscribe(self, conn: WsApiConnection) -> None:
        """Authenticate and subscribe on a fresh connection (the on_connect hook)."""
        self.subscription_id = None
        try:
            await self._subscribe_once(conn)
        except BinanceAPIError as exc:
            if exc.code != _TIMESTAMP_REJECTED:
                raise
            await self._sync_time(conn)
            await self._subscribe_once(conn)

    async def _subscribe_once(self, conn: WsApiConnection) -> None:
        if self.mode == "logon":
            await conn.request("session.logon", self._signed_params())
            result = await conn.request("userDataStream.subscribe")
        else:
            result = await conn.request("userDataStream.subscribe.signature", self._signed_params())
        self.subscription_id = int(result["subscriptionId"])
        self.subscriptions += 1

    async def _resubscribe(self) -> None:
        try:
            await self._subscribe(self._conn)
        except BinanceAPIError as exc:
            # Same connection refused us: start over on a new one (and tell the user).
            self._deliver(error_event(ERR_DISCONNECTED, f"{MSG_DISCONNECTED}: {exc}"))
            self._conn.drop()
        finally:
            self._resubscribing = None

    # -- events ---------------------------------------------------------------------------------------
    def _on_event(self, subscription_id: int | None, event: dict[str, Any]) -> None:
        if subscription_id is not None and self.subscription_id is not None \
                and subscription_id != self.subscription_id:
            return  # a leftover of a subscription this stream already replaced
        self._deliver(event)
        if event.get("e") == TERMINATED_EVENT and not self._stopping:
            self.subscription_id = None
            if self._resubscribing is None:
                self._resubscribing = asyncio.get_running_loop().create_task(self._resubscribe())

    def _on_disconnect(self, reason: str) -> None:
        if self._stopping:
            return
        self.subscription_id = None
        self._deliver(error_event(ERR_DISCONNECTED, MSG_DISCONNECTED, reason=reason))

    def _on_give_up(self, reason: str) -> None:
        self._deliver(max_retries_event())

    def _deliver(self, event: dict[str, Any]) -> None:
        if self._queue is not None:
            self._queue.put_nowait(event)
            return
        try:
            self._callback(event)
        except Exception:
            log.exception("user data callback failed")

    async def _consume(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self._callback(event)  # type: ignore[misc]
            except Exception:
                log.exception("user data callback failed")


async def user_socket(client: AsyncClient, callback: UserCallback, *, ws_api_url: str | None = None,
                      mode: Mode = "signature", backoff: BackoffPolicy = FOREVER) -> UserDataStream:
    """Start a spot user-data stream for ``client``'s account; ``await stream.stop()`` to end it.

    ``callback`` (plain or ``async``) gets each bare event dict. Raises :class:`BinanceAPIError` if
    Binance refuses the subscription.
    """
    stream = UserDataStream(client, callback, ws_api_url=ws_api_url, mode=mode, backoff=backoff)
    await stream.start()
    return stream
