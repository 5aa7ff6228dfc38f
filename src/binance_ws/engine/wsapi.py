"""A WebSocket API client connection (``/ws-api/v3``): request/response by id, events, reconnect.

The same self-healing connection reads listen-key streams (``envelope=False``: bare events).

../shared/PROTOCOL.md 6.3: requests ``{"id","method","params"}`` are answered by ``{"id","status",
"result"|"error"}``; user-data events arrive as ``{"subscriptionId":N,"event":{...}}`` (the id may be
absent). One :class:`WsApiConnection` keeps one picows connection alive: when it drops, every pending
request fails with :class:`~binance_ws.engine.rest.BinanceAPIError` (status 0), the connection is reopened on
the shared backoff schedule and the ``on_connect`` hook runs again, which is where the user-data layer
re-authenticates and resubscribes. Errors are never swallowed: a refused request raises, a lost
connection is reported to ``on_disconnect`` and giving up to ``on_give_up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from binance_ws.core.backoff import BACKOFF_MAX_RETRIES, BackoffPolicy
from binance_ws.core.lifecycle import (
    DEFAULT_STABLE_AFTER_S,
    PING,
    GiveUp,
    Lifecycle,
    Liveness,
    LivenessPolicy,
    Wait,
)
from binance_ws.engine.attempts import attempt_budget, sendable_close_code
from binance_ws.engine.rest import RATE_LIMIT_STATUSES, BinanceAPIError

log = logging.getLogger("binance_ws.engine.wsapi")

#: How long a request waits for its response before failing (the server answers in milliseconds; a
#: silent server is a dead connection).
REQUEST_TIMEOUT_S: Final = 10.0
#: Handshake timeout for each connection attempt.
HANDSHAKE_TIMEOUT_S: Final = 10.0
#: Deadline of a whole connection attempt, TCP connect included (picows bounds the handshake alone).
CONNECT_TIMEOUT_S: Final = HANDSHAKE_TIMEOUT_S + 5.0
#: Deadline of the ``on_connect`` hook (authenticate and subscribe: a few requests, each bounded).
SETUP_TIMEOUT_S: Final = 3 * REQUEST_TIMEOUT_S
#: How long :meth:`WsApiConnection.close` waits for the supervisor to end once cancelled.
CLOSE_TIMEOUT_S: Final = 5.0
#: Failures that are the network's, not the caller's: a connection that meets one is dropped and made
#: again, even on the first start (then start() raises only after START_ATTEMPTS of them).
TRANSIENT_ERRORS: Final = (TimeoutError, OSError, WSError)
#: User data must not die: retry forever unless the caller asks for a limit.
FOREVER: Final = BackoffPolicy(max_retries=None)
#: Dead-connection detection, by the protocol only (core/lifecycle.py, the same object as market streams
#: use): after this long without any incoming frame the client pings, and a frame must come back within
#: the reply timeout or the connection is dropped and reopened. The server pings every 20 s (PROTOCOL 2,
#: 6.3), so a healthy idle connection never reaches the client's own ping.
PING_IDLE_S: Final = 30.0
PING_REPLY_TIMEOUT_S: Final = 10.0
#: The spot WebSocket API's own ping cadence (PROTOCOL 6.3: the 20 s rule of section 2 applies).
SERVER_PING_S: Final = 20.0
#: Connection attempts :meth:`WsApiConnection.start` makes before it raises (the seed's reconnect count);
#: once a connection has been up, reconnecting follows the backoff policy alone.
START_ATTEMPTS: Final = BACKOFF_MAX_RETRIES

EventHandler = Callable[[int | None, dict[str, Any]], None]
ConnectHook = Callable[["WsApiConnection"], Awaitable[None]]


_LISTEN_KEY_IN_QUERY = re.compile(r"(listenKey=)[^&]+")
_LISTEN_KEY_IN_PATH = re.compile(r"(/ws/)[A-Za-z0-9]{32,}")


def redact_url(url: str) -> str:
    """``url`` without its listen key: a listen key reads the account's data, so it is a credential and
    never goes into logs, task names or exceptions."""
    return _LISTEN_KEY_IN_PATH.sub(r"\1<redacted>", _LISTEN_KEY_IN_QUERY.sub(r"\1<redacted>", url))


class _Listener(WSListener):
    def __init__(self, owner: WsApiConnection) -> None:
        self._owner = owner

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        owner = self._owner
        now = time.monotonic()
        if kind is WSMsgType.PING:
            owner.liveness.server_ping(now)
            transport.send_pong(frame.get_payload_as_bytes())
            return
        owner.liveness.heard(now)
        if kind is WSMsgType.TEXT:
            owner._on_message(frame.get_payload_as_bytes())
        elif kind is WSMsgType.CLOSE:
            code = frame.get_close_code()
            # An empty close frame reads as 0 (1005): neither may be sent back (RFC 6455 7.4.1).
            transport.send_close(code if sendable_close_code(code.value) else WSCloseCode.OK)
            transport.disconnect()
        elif kind is WSMsgType.PONG:
            owner.wake()


class WsApiConnection:
    """One self-healing WebSocket API connection.

    ``on_event(subscription_id, event)`` receives every pushed event; ``on_connect(conn)`` runs after
    each (re)connection before the connection counts as up (authenticate and subscribe there; an
    exception from it drops the connection and retries, except on the first start, where it is raised
    from :meth:`start`). ``on_disconnect(reason)`` and ``on_give_up(reason)`` report trouble.
    """

    def __init__(self, url: str, *, on_event: EventHandler | None = None,
                 on_connect: ConnectHook | None = None,
                 on_disconnect: Callable[[str], None] | None = None,
                 on_give_up: Callable[[str], None] | None = None,
                 backoff: BackoffPolicy = FOREVER, request_timeout_s: float = REQUEST_TIMEOUT_S,
                 ssl_context: ssl.SSLContext | None = None, envelope: bool = True,
                 ping_idle_s: float = PING_IDLE_S,
                 ping_reply_timeout_s: float = PING_REPLY_TIMEOUT_S,
                 server_ping_interval_s: float | None = None,
                 stable_after_s: float = DEFAULT_STABLE_AFTER_S) -> None:
        #: Where the next (re)connection goes; the listen-key stream points it at a new key.
        self.url = url
        #: False for listen-key streams, whose events are bare dicts rather than ``{"event": ...}``.
        self._envelope = envelope
        self._on_event = on_event
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._on_give_up = on_give_up
        #: Decisions across sockets (core/lifecycle.py): backoff with flap damping, and the process-wide
        #: attempt budget of the host (300 per 5 minutes per IP, PROTOCOL 6.3).
        self.life = Lifecycle(backoff, attempt_budget(url=url), stable_after_s=stable_after_s)
        self._request_timeout_s = request_timeout_s
        if not 0 < ping_reply_timeout_s <= ping_idle_s:
            raise ValueError("ping reply timeout must be positive and not longer than the idle time")
        #: How each socket's health is judged; ``server_ping_interval_s`` None: the server's pings are
        #: not relied on (a futures listen-key stream pings every 3 minutes, the WS API every 20 s).
        self._health = LivenessPolicy(ping_idle_s, ping_reply_timeout_s, server_ping_interval_s)
        self.liveness = Liveness(self._health, time.monotonic())
        self._wake = asyncio.Event()
        # wss URLs get a default (verifying) context from picows; a caller may pass its own CA bundle.
        self._ssl_context = ssl_context
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._transport: WSTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event = asyncio.Event()
        self._first: asyncio.Future[None] | None = None
        self._closing = False
        #: Successful connections so far (1 after start; each reconnect adds one).
        self.connections = 0
        self._last_failure = ""

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        """Connect and run ``on_connect``. Raises :class:`BinanceAPIError`: the server's refusal from
        ``on_connect``, or status 0 when :data:`START_ATTEMPTS` connection attempts in a row fail."""
        if self._task is not None:
            return
        self._first = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name=f"binance-ws-api {redact_url(self.url)}")
        await self._first

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def close(self) -> None:
        """Close the connection for good and fail pending requests."""
        self._closing = True
        self._ready.clear()
        transport = self._transport
        if transport is not None:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
            if not done:
                log.error("WebSocket API %s: supervisor still running %.0f s after close",
                          redact_url(self.url), CLOSE_TIMEOUT_S)
        self._fail_pending("connection closed by the caller")

    def drop(self) -> None:
        """Cut the current connection (tests, health checks); it is reopened as after any failure."""
        self._ready.clear()  # not "connected" from this moment, not only once the socket is gone
        if self._transport is not None:
            self._transport.disconnect(graceful=False)

    async def request(self, method: str, params: dict[str, Any] | None = None, *,
                      timeout: float | None = None) -> Any:
        """Send one request and return its ``result``; raises :class:`BinanceAPIError` for an error
        response (Binance's status/code/msg), a lost connection or a timeout (status 0)."""
        transport = self._transport
        if transport is None or transport.is_disconnected:
            raise BinanceAPIError(0, None, "WebSocket API not connected", method="WS", path=method)
        req_id = next(self._ids)
        message: dict[str, Any] = {"id": req_id, "method": method}
        if params:
            message["params"] = params
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            transport.send(WSMsgType.TEXT, orjson.dumps(message))
            async with asyncio.timeout(timeout or self._request_timeout_s):
                return await future
        except TimeoutError:
            raise BinanceAPIError(0, None, "no response in time", method="WS", path=method) from None
        except (OSError, WSError) as exc:
            raise BinanceAPIError(0, None, f"send failed: {type(exc).__name__}: {exc}", method="WS",
                                  path=method) from exc
        finally:
            self._pending.pop(req_id, None)

    # -- frames ---------------------------------------------------------------------------------------
    def _on_message(self, raw: bytes) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("WebSocket API sent a frame that is not JSON (%d bytes)", len(raw))
            return
        if not isinstance(message, dict):
            return
        event = message.get("event") if self._envelope else (message if "e" in message else None)
        if isinstance(event, dict) and "status" not in message:
            if self._on_event is not None:
                try:
                    self._on_event(message.get("subscriptionId"), event)
                except Exception:
                    log.exception("user event callback failed")
            return
        req_id = message.get("id")
        future = self._pending.get(req_id) if isinstance(req_id, int) else None
        if future is None or future.done():
            return
        status = message.get("status", 200)
        if status == 200:
            future.set_result(message.get("result"))
            return
        error = message.get("error") or {}
        retry_after = None
        data = error.get("data") if isinstance(error, dict) else None
        if status in RATE_LIMIT_STATUSES and isinstance(data, dict) and "retryAfter" in data:
            # WS API 418/429 carry an absolute retryAfter time in ms (PROTOCOL 6.3).
            server_time = data.get("serverTime") or 0
            retry_after = max(0.0, (int(data["retryAfter"]) - int(server_time)) / 1000.0)
        future.set_exception(BinanceAPIError(int(status), error.get("code"), str(error.get("msg", "")),
                                             retry_after=retry_after, method="WS", path="request"))

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(BinanceAPIError(0, None, reason, method="WS", path="request"))

    # -- supervision ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        first = self._first
        assert first is not None
        try:
            await self._supervise(first)
        except Exception as exc:
            # A bug must not leave start() waiting for ever or the stream silently dead.
            log.exception("WebSocket API %s: supervisor failed", redact_url(self.url))
            reason = f"supervisor failed: {type(exc).__name__}: {exc}"
            if not first.done():
                first.set_exception(BinanceAPIError(0, None, reason, method="WS", path="connect"))
            elif self._on_give_up is not None:
                self._on_give_up(reason)

    async def _supervise(self, first: asyncio.Future[None]) -> None:
        life = self.life
        while not self._closing:
            decision = life.attempt(time.monotonic())
            if isinstance(decision, Wait):
                if decision.reason != "backoff":
                    log.warning("WebSocket API %s: %s exhausted; waiting %.1f s", redact_url(self.url),
                                decision.reason, decision.delay_s)
                await self._pause(decision.delay_s)
                continue
            failure, opened = await self._connect_once(first)
            if self._closing:
                break
            if failure is not None and not first.done():
                # The very first attempt was refused by the server: the caller must hear why.
                first.set_exception(failure)
                return
            if not first.done() and life.failures + 1 >= START_ATTEMPTS:
                # Never up at all: an unreachable URL is the caller's error, not a reason to wait forever.
                first.set_exception(BinanceAPIError(0, None, f"cannot connect to {redact_url(self.url)}: "
                                                    f"{self._last_failure}", method="WS", path="connect"))
                return
            now = time.monotonic()
            outcome = life.lost(now) if opened else life.failed(now)
            if isinstance(outcome, GiveUp):
                reason = f"gave up reconnecting to {redact_url(self.url)}"
                if not first.done():
                    first.set_exception(BinanceAPIError(0, None, reason, method="WS", path="connect"))
                if self._on_give_up is not None:
                    self._on_give_up(reason)
                return

    def wake(self) -> None:
        self._wake.set()

    async def _pause(self, delay_s: float) -> None:
        """Sleep ``delay_s``, or less if woken (closing)."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay_s)

    async def _watch(self, transport: WSTransport) -> None:
        """Ping on silence and drop the socket when the protocol says it is dead (core/lifecycle.py)."""
        live, life = self.liveness, self.life
        while not transport.is_disconnected and not self._closing:
            now = time.monotonic()
            life.settle(now)
            action = live.poll(now)
            if action is PING:
                transport.send_ping(b"")
                live.ping_sent(now)
            elif action is not None:
                self._report(action)
                transport.disconnect(graceful=False)
                return
            wake_at = live.next_check(now)
            if life.open_at is not None and life.failures:
                wake_at = min(wake_at, life.open_at + life.stable_after_s)
            await self._pause(max(wake_at - now, 0.001))

    async def _connect_once(self, first: asyncio.Future[None]) -> tuple[BinanceAPIError | None, bool]:
        """One connection's life; returns the on_connect refusal if there was one (a Binance error, or on
        the first start whatever non-transient error the hook raised, as a BinanceAPIError), and whether
        the connection was up (set up) before it ended."""
        self.liveness = Liveness(self._health, time.monotonic())
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                transport, _ = await ws_connect(
                    lambda: _Listener(self), self.url, ssl_context=self._ssl_context,
                    websocket_handshake_timeout=HANDSHAKE_TIMEOUT_S, enable_auto_pong=False)
        except Exception as exc:  # OSError, timeouts and picows' own WSError family alike
            self._last_failure = f"{type(exc).__name__}: {exc}"
            self._report(f"connect failed: {type(exc).__name__}")
            return None, False
        self._transport = transport
        watch = asyncio.create_task(self._watch(transport), name="binance-ws-api-watch")
        opened = False
        refusal: BinanceAPIError | None = None
        try:
            if self._on_connect is not None:
                async with asyncio.timeout(SETUP_TIMEOUT_S):
                    await self._on_connect(self)
        except Exception as exc:
            if isinstance(exc, BinanceAPIError):
                refusal = exc if exc.code is not None else None
            elif not isinstance(exc, TRANSIENT_ERRORS):
                # Not the network's fault (an answer we cannot use, a bug in the hook): retrying will
                # not help a first start, so start() raises it; later it is reported and retried.
                refusal = BinanceAPIError(0, None, f"setup failed: {type(exc).__name__}: {exc}",
                                          method="WS", path="connect")
                refusal.__cause__ = exc
                log.warning("WebSocket API %s: setup failed", redact_url(self.url), exc_info=exc)
            if first.done() or refusal is None:
                # A refusal on the first start is raised from start() instead.
                self._report(f"setup failed: {type(exc).__name__}: {exc}")
            transport.disconnect()
        else:
            self.connections += 1
            opened = True
            self.life.opened(time.monotonic())
            self._ready.set()
            if not first.done():
                first.set_result(None)
        try:
            await transport.wait_disconnected()
        finally:
            watch.cancel()
        self._ready.clear()
        self._transport = None
        self._fail_pending("WebSocket API connection lost")
        if refusal is None and not self._closing:
            self._report("connection lost")
        return refusal, opened

    def _report(self, reason: str) -> None:
        log.warning("WebSocket API %s: %s", redact_url(self.url), reason)
        if self._on_disconnect is not None and not self._closing:
            try:
                self._on_disconnect(reason)
            except Exception:
                log.exception("on_disconnect callback failed")
