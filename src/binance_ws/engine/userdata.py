"""User data that never silently dies (issue 5): spot over the WebSocket API (:class:`UserDataStream`,
:func:`user_socket`) and futures over listen keys (:class:`ListenKeyStream`).

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
reconnecting is given up. A connection that goes quiet without closing is found by the client's own
pings (``engine/wsapi.py``) and replaced the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal

import msgspec
import orjson

from binance_ws import models
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.core.listenkey import KEEPALIVE_INTERVAL_S, Action, ListenKeySchedule
from binance_ws.core.signing import ws_payload
from binance_ws.engine.rest import TIMESTAMP_OUTSIDE_RECV_WINDOW, AsyncClient, BinanceAPIError
from binance_ws.engine.wsapi import FOREVER, PING_IDLE_S, PING_REPLY_TIMEOUT_S, SERVER_PING_S, WsApiConnection
from binance_ws.errors import (
    ERR_DISCONNECTED,
    ERR_MALFORMED,
    MSG_DISCONNECTED,
    MSG_MALFORMED,
    error_event,
    max_retries_event,
)
from binance_ws.markets import Market

log = logging.getLogger("binance_ws.engine.userdata")

UserCallback = Callable[[Any], None] | Callable[[Any], Awaitable[None]]
Mode = Literal["signature", "logon"]
#: What a listen-key stream's callback receives: the event dicts, or the models of ``binance_ws.models``
#: the product declares for user data (``"typed"``).
UserDecode = Literal["dict", "typed"]

TERMINATED_EVENT: Final = "eventStreamTerminated"
#: Sent shortly before the server closes a connection (PROTOCOL 2, WS API form ``{"event":{...}}``).
SHUTDOWN_EVENT: Final = "serverShutdown"
EXPIRED_EVENT: Final = "listenKeyExpired"
#: USD-M user data host since 2026 (PROTOCOL 8: ``wss://fstream.binance.com/private``).
USDM_PRIVATE_STREAM_URL: Final = "wss://fstream.binance.com/private"
#: Error event of a make-before-break handover that could not be made (shape of :mod:`binance_ws.errors`):
#: the old connection goes on until the server closes it, then reconnects as after any loss.
ERR_HANDOVER: Final = "handover"
MSG_HANDOVER: Final = "Handover to a new connection failed; reconnecting when the old one closes"
#: Deadline of a whole handover's new connection (its start makes up to START_ATTEMPTS attempts).
HANDOVER_TIMEOUT_S: Final = 30.0
#: Deadline of the polite unsubscribe on stop and after a handover.
UNSUBSCRIBE_TIMEOUT_S: Final = 2.0
#: Error events of the listen-key keep-alive (shape of :mod:`binance_ws.errors`).
ERR_KEEPALIVE: Final = "keepalive"
MSG_KEEPALIVE: Final = "Listen key keep-alive failed, retrying"


class _Delivery:
    """Hands events to the user's callback in order: called inline when plain, awaited one at a time by
    a consumer task when ``async``. A failing callback is logged and never stops the stream."""

    def __init__(self, callback: UserCallback) -> None:
        self._callback = callback
        self._queue: asyncio.Queue[Any] | None = None
        self._consumer: asyncio.Task[None] | None = None
        if inspect.iscoroutinefunction(callback):
            self._queue = asyncio.Queue()

    def start(self) -> None:
        if self._queue is not None and self._consumer is None:
            self._consumer = asyncio.create_task(self._consume(), name="binance-ws-userdata-callback")

    async def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None

    def __call__(self, event: Any) -> None:
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


class UserDataStream:
    """One account's spot user-data subscription that survives reconnects.

    ``client`` supplies the API key, the signer and the server-time offset (its REST side is not used).
    Raises :class:`BinanceAPIError` from :meth:`start` when Binance refuses the subscription (wrong key
    -2015, bad signature -1022, stale timestamp -1021, HMAC/RSA key with ``mode="logon"``, ...).

    On ``serverShutdown`` (PROTOCOL 2) the stream hands over make-before-break: a second connection
    subscribes first, events from both are delivered once each while they overlap, then the old one
    closes; no reconnect gap.
    """

    def __init__(self, client: AsyncClient, callback: UserCallback, *, ws_api_url: str | None = None,
                 mode: Mode = "signature", backoff: BackoffPolicy = FOREVER, ping_idle_s: float = PING_IDLE_S,
                 ping_reply_timeout_s: float = PING_REPLY_TIMEOUT_S) -> None:
        if client.signer is None or not client.api_key:
            raise ValueError("a user data stream needs an API key and a signing key")
        if mode not in ("signature", "logon"):
            raise ValueError(f"unknown mode {mode!r}: 'signature' or 'logon'")
        url = ws_api_url or client.market.ws_api_url
        if not url:
            raise ValueError(f"market {client.market.name!r} has no WebSocket API")
        self._url = url
        self._backoff = backoff
        self._pings = (ping_idle_s, ping_reply_timeout_s)
        self._client = client
        self._deliver = _Delivery(callback)
        self.mode: Mode = mode
        #: How many times the subscription was made (1 after start; each recovery adds one).
        self.subscriptions = 0
        #: Completed make-before-break handovers (one per ``serverShutdown``).
        self.handovers = 0
        self._stopping = False
        self._resubscribing: asyncio.Task[None] | None = None
        self._handover: asyncio.Task[None] | None = None
        #: The live subscription id on each connection (None while (re)subscribing).
        self._sub_ids: dict[WsApiConnection, int | None] = {}
        #: While two connections overlap (a handover): the one coming in, the one being retired, and
        #: the events already delivered.
        self._incoming: WsApiConnection | None = None
        self._retiring: WsApiConnection | None = None
        self._seen: set[bytes] = set()
        self._conn = self._connection()

    def _connection(self) -> WsApiConnection:
        conn = WsApiConnection(
            self._url, on_connect=self._subscribe, on_give_up=self._on_give_up, backoff=self._backoff,
            ping_idle_s=self._pings[0], ping_reply_timeout_s=self._pings[1],
            server_ping_interval_s=SERVER_PING_S,
            on_event=lambda sub_id, event: self._on_event(conn, sub_id, event),
            on_disconnect=lambda reason: self._on_disconnect(conn, reason))
        return conn

    @property
    def connection(self) -> WsApiConnection:
        """The current WebSocket API connection (tests cut it to prove recovery)."""
        return self._conn

    @property
    def subscription_id(self) -> int | None:
        """The live subscription's id on the current connection, None while (re)subscribing."""
        return self._sub_ids.get(self._conn)

    async def start(self) -> None:
        """Connect and subscribe; returns once events can flow. Raises :class:`BinanceAPIError`."""
        self._deliver.start()
        try:
            await self._conn.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Unsubscribe (politely, if connected) and close."""
        self._stopping = True
        for task in (self._resubscribing, self._handover):
            if task is not None:
                task.cancel()
        sub_id = self.subscription_id
        if self._conn.connected and sub_id is not None:
            await self._unsubscribe(self._conn, sub_id)
        await self._conn.close()
        for side in (self._incoming, self._retiring):
            if side is not None:
                await side.close()
        await self._deliver.stop()

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
        self._sub_ids[conn] = None
        try:
            await self._subscribe_once(conn)
        except BinanceAPIError as exc:
            if exc.code != TIMESTAMP_OUTSIDE_RECV_WINDOW:
                raise
            await self._sync_time(conn)
            await self._subscribe_once(conn)

    async def _subscribe_once(self, conn: WsApiConnection) -> None:
        if self.mode == "logon":
            await conn.request("session.logon", self._signed_params())
            result = await conn.request("userDataStream.subscribe")
        else:
            result = await conn.request("userDataStream.subscribe.signature", self._signed_params())
        self._sub_ids[conn] = int(result["subscriptionId"])
        self.subscriptions += 1

    async def _unsubscribe(self, conn: WsApiConnection, sub_id: int) -> bool:
        """Politely end subscription ``sub_id`` on ``conn`` (bounded); a failure is logged, not raised:
        the connection is closed next anyway. True if the server confirmed."""
        try:
            await conn.request("userDataStream.unsubscribe", {"subscriptionId": sub_id},
                               timeout=UNSUBSCRIBE_TIMEOUT_S)
        except (BinanceAPIError, OSError, TimeoutError) as exc:
            log.warning("userDataStream.unsubscribe failed (closing the connection anyway): %s", exc)
            return False
        return True

    async def _resubscribe(self) -> None:
        conn = self._conn
        try:
            await self._subscribe(conn)
        except Exception as exc:  # a refusal, no answer in time, an answer we cannot read
            # Same connection failed us: start over on a new one (and tell the user).
            log.warning("user data resubscription failed, reconnecting: %s: %s", type(exc).__name__, exc)
            self._deliver(error_event(ERR_DISCONNECTED, f"{MSG_DISCONNECTED}: {exc}"))
            conn.drop()
        finally:
            self._resubscribing = None

    async def _hand_over(self) -> None:
        """Make-before-break: subscribe on a new connection, then retire the old one. However it ends
        (failure, cancellation), ``_handover`` is cleared, so the next ``serverShutdown`` is acted on,
        and a failure is logged and delivered as an ``ERR_HANDOVER`` error event."""
        old = self._conn
        new = self._incoming = self._connection()
        try:
            try:
                async with asyncio.timeout(HANDOVER_TIMEOUT_S):
                    await new.start()
            except Exception as exc:
                # The old connection closes soon and reconnects as after any loss.
                log.error("user data handover failed, staying on the old connection until it closes: "
                          "%s: %s", type(exc).__name__, exc)
                self._incoming = None
                self._seen.clear()
                await new.close()
                self._deliver(error_event(ERR_HANDOVER, MSG_HANDOVER, reason=f"{type(exc).__name__}: {exc}"))
                return
            except BaseException:
                self._incoming = None
                await new.close()
                raise
            self._retiring, self._conn, self._incoming = old, new, None
            try:
                # The server answers after every event it already sent on the old connection, so once
                # the answer is in, nothing of the old connection is still on the way.
                old_sub = self._sub_ids.get(old)
                if old_sub is not None and old.connected:
                    await self._unsubscribe(old, old_sub)
                await old.close()
            finally:
                self._sub_ids.pop(old, None)
                self._retiring = None
                self._seen.clear()
                self.handovers += 1
        finally:
            self._handover = None

    # -- events ---------------------------------------------------------------------------------------
    def _on_event(self, conn: WsApiConnection, subscription_id: int | None, event: dict[str, Any]) -> None:
        kind = event.get("e")
        if kind == SHUTDOWN_EVENT:
            if conn is self._conn and self._handover is None and not self._stopping:
                self._handover = asyncio.get_running_loop().create_task(self._hand_over())
            return
        if conn is not self._conn and conn is not self._incoming and conn is not self._retiring:
            return  # a connection this stream already left
        expected = self._sub_ids.get(conn)
        if subscription_id is not None and expected is not None and subscription_id != expected:
            return  # a leftover of a subscription this stream already replaced
        if conn is not self._conn and kind == TERMINATED_EVENT:
            return  # a connection being swapped in or out says goodbye: not the user's concern
        if self._incoming is not None or self._retiring is not None:
            # Two connections overlap: deliver each event once, whichever copy comes first.
            key = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
            if key in self._seen:
                return
            self._seen.add(key)
        self._deliver(event)
        if kind == TERMINATED_EVENT and not self._stopping:
            self._sub_ids[conn] = None
            if self._resubscribing is None:
                self._resubscribing = asyncio.get_running_loop().create_task(self._resubscribe())

    def _on_disconnect(self, conn: WsApiConnection, reason: str) -> None:
        if self._stopping or conn is not self._conn:
            return
        self._sub_ids[conn] = None
        self._deliver(error_event(ERR_DISCONNECTED, MSG_DISCONNECTED, reason=reason))

    def _on_give_up(self, reason: str) -> None:
        self._deliver(max_retries_event())


class ListenKeyStream:
    """User data over a listen key (USD-M futures; ``kind="spot"`` keeps the pre-2026 spot flow for
    endpoints that still offer it), kept alive and replaced so that it never silently dies.

    ``decode="typed"`` hands the callback each event as the model its product declares for user data
    (``market``'s, by default the client's ``futures_market`` for futures: :data:`~binance_ws.models.
    UsdmUserEvent` or :data:`~binance_ws.models.CoinmUserEvent`); error events stay the documented dicts,
    an event of a type the models do not know (one Binance added since) arrives as its dict, and one
    that does not match its model is replaced by a ``malformed`` error event (``event``: its type,
    ``detail``: why), never ending the stream.

    A keep-alive runs every ``keepalive_interval_s`` (the seed's ``user_timeout``); a failed one is
    retried soon and reported as an error event, never ending the timer. On ``listenKeyExpired``, on
    -1125 from a keep-alive, or when ``POST`` hands back a different key, a key is created and the stream
    reconnects to it. A dropped stream reconnects to the current key on the shared backoff schedule.
    Raises :class:`BinanceAPIError` from :meth:`start` if no key can be created.
    """

    def __init__(self, client: AsyncClient, callback: UserCallback, *,
                 kind: Literal["futures", "spot"] = "futures", stream_url: str | None = None,
                 keepalive_interval_s: float = KEEPALIVE_INTERVAL_S, backoff: BackoffPolicy = FOREVER,
                 schedule: ListenKeySchedule | None = None, ping_idle_s: float = PING_IDLE_S,
                 ping_reply_timeout_s: float = PING_REPLY_TIMEOUT_S, events: Sequence[str] = (),
                 decode: UserDecode = "dict", market: Market | None = None) -> None:
        if not client.api_key:
            raise ValueError("a listen-key stream needs an API key")
        if decode not in ("dict", "typed"):
            raise ValueError(f"decode must be 'dict' or 'typed', not {decode!r}")
        self.decode: UserDecode = decode
        self._typed: tuple[frozenset[str], Callable[[dict[str, Any]], Any]] | None = None
        if decode == "typed":
            own = client.futures_market if kind == "futures" else client.market
            self._typed = models.user_converter(models.user_event_model(market or own))
        self._client = client
        self._deliver = _Delivery(callback)
        self.kind = kind
        default_url = USDM_PRIVATE_STREAM_URL if kind == "futures" else client.market.stream_url
        self._stream_url = (stream_url or default_url).rstrip("/")
        #: Event types asked for on a routed ``/private`` URL (``&events=A/B``, PROTOCOL 8); none: all.
        self.events = tuple(events)
        self.schedule = schedule or ListenKeySchedule(keepalive_interval_s=keepalive_interval_s)
        self._backoff = backoff
        self._pings = (ping_idle_s, ping_reply_timeout_s)
        self._conn: WsApiConnection | None = None
        self._timer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        #: Keys used so far (1 after start; each replacement that changed the key adds one).
        self.keys_used = 0

    @property
    def listen_key(self) -> str | None:
        return self.schedule.key

    @property
    def connection(self) -> WsApiConnection | None:
        return self._conn

    def url_for(self, key: str) -> str:
        """The stream URL of ``key``: ``/private/ws?listenKey=<key>&events=<a/b>`` on USD-M (PROTOCOL 8),
        else ``/ws/<key>`` (6.2)."""
        if self.kind == "futures" and self._stream_url.endswith("/private"):
            events = f"&events={'/'.join(self.events)}" if self.events else ""
            return f"{self._stream_url}/ws?listenKey={key}{events}"
        return f"{self._stream_url}/ws/{key}"

    async def _create_key(self) -> str:
        if self.kind == "futures":
            return await self._client.futures_stream_get_listen_key()
        return await self._client.stream_get_listen_key()

    async def _keepalive(self, key: str) -> None:
        if self.kind == "futures":
            await self._client.futures_stream_keepalive(key)
        else:
            await self._client.stream_keepalive(key)

    async def start(self) -> None:
        """Create a key, connect to its stream and start the keep-alive timer."""
        self._deliver.start()
        try:
            key = await self._create_key()
            self.schedule.on_key(key, _monotonic())
            self.keys_used = 1
            self._conn = WsApiConnection(self.url_for(key), envelope=False, on_event=self._on_event,
                                         on_disconnect=self._on_disconnect,
                                         on_give_up=lambda reason: self._deliver(max_retries_event()),
                                         backoff=self._backoff, ping_idle_s=self._pings[0],
                                         ping_reply_timeout_s=self._pings[1])
            await self._conn.start()
        except BaseException:
            await self.stop()
            raise
        self._timer = asyncio.create_task(self._run_schedule(), name="binance-ws-listen-key")

    async def stop(self) -> None:
        """Stop the timer, close the stream and delete the key (best effort)."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self._conn is not None:
            await self._conn.close()
        key = self.schedule.key
        if key is not None:
            try:
                if self.kind == "futures":
                    await self._client.futures_stream_close(key)
                else:
                    await self._client.stream_close(key)
            except BinanceAPIError as exc:  # REST errors of every kind arrive as this, with a timeout
                log.warning("closing the listen key failed (it expires by itself within 60 min): %s", exc)
        await self._deliver.stop()

    async def __aenter__(self) -> ListenKeyStream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run_schedule(self) -> None:
        """The keep-alive timer: it survives every failure (that is the point)."""
        while True:
            delay = self.schedule.next_at() - _monotonic()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            try:
                await self._act(self.schedule.due(_monotonic()))
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end keep-alives; the schedule retries
                log.exception("listen-key schedule step failed")
                self.schedule.on_keepalive_failed(_monotonic(), None)

    async def _act(self, action: Action) -> None:
        key = self.schedule.key
        if action is Action.KEEPALIVE and key is not None:
            try:
                await self._keepalive(key)
            except BinanceAPIError as exc:
                self.schedule.on_keepalive_failed(_monotonic(), exc.code)
                self._deliver(error_event(ERR_KEEPALIVE, f"{MSG_KEEPALIVE}: {exc}", code=exc.code))
                return
            self.schedule.on_keepalive_ok(_monotonic())
        elif action is Action.REPLACE:
            try:
                new_key = await self._create_key()
            except BinanceAPIError as exc:
                self.schedule.on_replace_failed(_monotonic())
                self._deliver(error_event(ERR_KEEPALIVE, f"{MSG_KEEPALIVE}: {exc}", code=exc.code))
                return
            if self.schedule.on_key(new_key, _monotonic()) and self._conn is not None:
                self.keys_used += 1
                self._conn.url = self.url_for(new_key)
                self._conn.drop()  # reconnects at once, to the new key

    def _on_event(self, subscription_id: int | None, event: dict[str, Any]) -> None:
        self._deliver(event if self._typed is None else self._model_of(event))
        if event.get("e") == EXPIRED_EVENT and self.schedule.on_expired(event.get("listenKey"), _monotonic()):
            self._wake.set()

    def _model_of(self, event: dict[str, Any]) -> Any:
        """``event`` as its model (typed mode); see the class docstring for what is not converted."""
        assert self._typed is not None
        known, convert = self._typed
        kind = event.get("e")
        if kind not in known:
            return event
        try:
            return convert(event)
        except msgspec.ValidationError as exc:
            log.warning("user-data event %s refused by its model: %s", kind, exc)
            return error_event(ERR_MALFORMED, MSG_MALFORMED, event=kind, detail=str(exc))

    def _on_disconnect(self, reason: str) -> None:
        if not self._stopping:
            self._deliver(error_event(ERR_DISCONNECTED, MSG_DISCONNECTED, reason=reason))


async def user_socket(client: AsyncClient, callback: UserCallback, *, ws_api_url: str | None = None,
                      mode: Mode = "signature", backoff: BackoffPolicy = FOREVER) -> UserDataStream:
    """Start a spot user-data stream for ``client``'s account; ``await stream.stop()`` to end it.

    ``callback`` (plain or ``async``) gets each bare event dict. Raises :class:`BinanceAPIError` if
    Binance refuses the subscription.
    """
    stream = UserDataStream(client, callback, ws_api_url=ws_api_url, mode=mode, backoff=backoff)
    await stream.start()
    return stream


def _monotonic() -> float:
    return time.monotonic()
