"""The simulator's stream server: Binance's market-stream endpoint over picows, plus the door to the WS API.

Paths (PROTOCOL.md 1.2, 1.3):

* ``/ws/<stream>`` and ``/ws/<s1>/<s2>``: raw payloads; ``/ws`` alone opens an empty raw connection.
* ``/stream?streams=<s1>/<s2>``: payloads wrapped as ``{"stream":..., "data":...}``; ``/stream`` alone is
  an empty combined connection. Names may be URL-encoded (accepted since 2025-12-02).
* ``timeUnit=MICROSECOND|microsecond|MILLISECOND|millisecond`` on either; any other value is refused.
* ``/ws-api/v3``: the WebSocket API, served by the ``ws_api`` listener factory the server is given
  (404 without one). Connection attempts, pings and lifetime apply to it too.
* ``/blast?stream=<sym>@trade&count=N&rate=R&combined=1``: benchmark mode, see :class:`BlastSpec`.
* Futures (PROTOCOL.md 8), when the server is given ``routes`` (USD-M: ``/public``, ``/market``,
  ``/private``): ``/<route>/ws/...`` and ``/<route>/stream?...`` are the paths above on that route, and a
  connection is sent only the streams ``delivers(route, name)`` allows (a name valid elsewhere is
  subscribed and listed but silent, as Binance acknowledges a stream on the wrong route and sends
  nothing); unrouted ``/ws`` and ``/stream`` get the ``/public`` streams only. ``/private/ws?listenKey=``
  is the listen-key stream. ``unsigned_ids_only`` refuses control ids that are not unsigned integers.

Choices where Binance's behaviour is not documented (PROTOCOL.md section 11), so a client is tested
against something definite:

* An unknown stream name in the URL does not refuse the handshake: the connection opens and that name
  never sends anything (nor appears in LIST_SUBSCRIPTIONS); the known names in the same URL are served.
  PROTOCOL.md 11.2 leaves this open; real clients show what Binance does: ccxt pro opens every socket as
  ``/ws/<name of its own>`` and then SUBSCRIBEs, which works against Binance, and python-binance's
  ``!miniTicker@arr@5000ms`` "connects but produces no output" (python-binance #267) where ``@1000ms``
  and ``@3000ms`` stream. So a bad name is only ever refused on SUBSCRIBE (code 2 "invalid stream").
* Handshake refusals answer an HTTP error with a JSON body ``{"code":..,"msg":..}`` and close:
  400 ``code 2 "Invalid request: too many streams"`` for more than ``max_streams_per_connection``
  streams in the URL (unknown names count), 400
  ``code -1194`` for a bad ``timeUnit``, 429 ``code -1003`` (with ``Retry-After``) past
  ``max_connections_per_window`` attempts from one IP. Every handshake counts as an attempt, refused
  ones included, as "attempts" suggests.
* SUBSCRIBE past the stream limit answers ``code 2 "Invalid request: too many streams"`` and subscribes
  nothing; the connection stays open. SUBSCRIBE and UNSUBSCRIBE are all-or-nothing: one invalid name
  fails the whole request. Subscribing twice, or unsubscribing a name not subscribed, succeeds silently.
  Streams given in the URL appear in LIST_SUBSCRIPTIONS, in the order they were added.
* Close codes: more than ``max_incoming_per_second`` incoming text/binary/ping/pong frames within a
  sliding one-second window closes with **1008 "Too many requests"** (observed). The lifetime expiry and
  the end of a ``serverShutdown`` close with **1001** and no reason (1001 is what long-running clients
  report, python-binance #1589). No pong echoing a ping's payload within ``pong_timeout_s`` closes with
  **1008 "Pong timeout"**; unsolicited pongs are accepted and keep nothing alive.
* Slow consumers: stream frames are written once per event-loop iteration; when a connection already
  has more than ``StreamServer.max_send_buffer`` bytes unread, the server stops sending, queues a
  close **1008 "Send buffer full"** behind what is buffered and drops the connection if the client has
  not drained it within ``CLOSE_LINGER_S``. So a connection never holds more than the cap plus one
  iteration's frames (or ``FLUSH_AT_BYTES``), and frames are never silently dropped from a live
  connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from binance_ws.sim.clock import SimClock
from binance_ws.sim.config import SimConfig
from binance_ws.sim.hub import StreamHub

log = logging.getLogger("binance_ws.sim.server")

# -- Binance facts (PROTOCOL.md sections 1.3, 2, 3, 7.3) ------------------------------------------------
#: ``timeUnit`` URL values and whether each selects microseconds (1.3).
TIME_UNITS: dict[str, bool] = {"MICROSECOND": True, "microsecond": True,
                               "MILLISECOND": False, "millisecond": False}
#: The control methods, in the order Binance's "unknown variant" error lists them (3).
CONTROL_METHODS: tuple[str, ...] = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS",
                                    "SET_PROPERTY", "GET_PROPERTY")
#: ``id`` may be a signed 64-bit integer, a string of up to 36 characters, or null (3). PROTOCOL.md says
#: "alphanumeric", but Binance's own connectors (binance-connector-python, binance-sdk-spot) send a UUID4
#: string (hex and ``-``) as the id of every request, which Binance answers; ``_`` is allowed too, as in
#: Binance's other client-chosen ids (``newClientOrderId``: ``^[.A-Z:/a-z0-9_-]{1,36}$``).
ID_INT_MIN, ID_INT_MAX = -(2 ** 63), 2 ** 63 - 1
ID_STR_MAX_LEN = 36
_ID_STR = re.compile(rf"[A-Za-z0-9_-]{{1,{ID_STR_MAX_LEN}}}")
#: The only connection property (3).
PROPERTY_COMBINED = "combined"
#: Observed close for a connection over the incoming message rate (2, OBS).
CLOSE_TOO_MANY_REQUESTS = (WSCloseCode.POLICY_VIOLATION, "Too many requests")
#: Lifetime expiry and server shutdown: 1001 as reported by long-running clients (python-binance #1589).
CLOSE_GOING_AWAY = (WSCloseCode.GOING_AWAY, "")
#: Simulator choices, documented in the module docstring.
CLOSE_PONG_TIMEOUT = (WSCloseCode.POLICY_VIOLATION, "Pong timeout")
CLOSE_SEND_BUFFER_FULL = (WSCloseCode.POLICY_VIOLATION, "Send buffer full")
#: REST-style error bodies for refused handshakes (7.3).
ERR_TOO_MANY_REQUESTS = {"code": -1003, "msg": "Too many connection attempts; retry later."}
#: Binance's generic "try again" (-1001 DISCONNECTED), for 5xx refusals injected by faults.
ERR_UNAVAILABLE = {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
ERR_INVALID_TIME_UNIT = {"code": -1194, "msg": "Invalid time unit."}
ERR_INVALID_STREAM = {"code": 2, "msg": "Invalid request: invalid stream"}
ERR_TOO_MANY_STREAMS = {"code": 2, "msg": "Invalid request: too many streams"}

# -- simulator tuning (not Binance facts) -----------------------------------------------------------------
#: Default cap on bytes buffered for one connection before it is closed as a slow consumer.
DEFAULT_MAX_SEND_BUFFER = 8 * 1024 * 1024
#: Queued stream frames are written at the end of the loop iteration, or sooner past this many bytes
#: (asyncio's default write high-water mark, so backpressure still shows within one burst).
FLUSH_AT_BYTES = 64 * 1024
#: How long a closing connection may take to flush before the TCP connection is aborted.
CLOSE_LINGER_S = 2.0
#: Header carrying the server's id of the connection, so a test can aim a fault at its own connection.
CONNECTION_ID_HEADER = "X-Sim-Connection-Id"


#: Builds the listener that serves one upgraded connection (a listen-key stream, a WS API session).
ListenerFactory = Callable[[WSUpgradeRequest], WSListener]


# =========================================================================================================
# Sans-I/O pieces: limits and the control-message protocol. Pure, fed times and bytes.
# =========================================================================================================
class IncomingLimit:
    """Incoming message budget of one connection: at most ``per_second`` messages in any one-second window.

    A sliding window rather than a token bucket: it never lets a burst exceed the documented figure,
    which is the stricter reading of "5 messages per second".
    """

    __slots__ = ("_times", "limit", "window_s")

    def __init__(self, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        # Below one a second, widen the window so the budget stays a whole number of messages.
        self.window_s = max(1.0, 1.0 / per_second)
        self.limit = max(1, round(per_second * self.window_s))
        self._times: deque[float] = deque(maxlen=self.limit)

    def allow(self, now: float) -> bool:
        """Count one message at ``now`` (seconds, monotonic); False when it breaks the limit."""
        times = self._times
        if len(times) == self.limit and now - times[0] < self.window_s:
            return False
        times.append(now)
        return True


#: The shortest wait a refused attempt is told (see AttemptLimiter.attempt).
_MIN_WAIT_S: Final = 1e-6


class AttemptLimiter:
    """Connection attempts per key (IP) in a sliding window; every attempt counts, refused ones included."""

    __slots__ = ("_attempts", "limit", "window_s")

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._attempts: dict[str, deque[float]] = {}

    def attempt(self, key: str, now: float) -> float:
        """Record an attempt; 0.0 if allowed, else the seconds until the oldest one leaves the window."""
        times = self._attempts.get(key)
        if times is None:
            times = self._attempts[key] = deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        allowed = len(times) < self.limit
        times.append(now)
        # Refused attempts stay counted, but the memory for one key stays bounded.
        while len(times) > self.limit + 1:
            times.popleft()
        # A refusal never answers 0.0 (which reads as "allowed"), even when float rounding puts the
        # oldest attempt's exit at ``now`` itself.
        return 0.0 if allowed else max(_MIN_WAIT_S, times[0] + self.window_s - now)

    def clear(self) -> None:
        self._attempts.clear()


class PingTracker:
    """Server pings awaiting their pong. A pong counts only if it echoes an outstanding payload; it also
    settles every older ping, as a client that answers the newest is evidently alive."""

    __slots__ = ("_out", "timeout_s")

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._out: dict[bytes, float] = {}

    def sent(self, payload: bytes, now: float) -> None:
        self._out[payload] = now

    def pong(self, payload: bytes) -> bool:
        """Settle the ping ``payload`` echoes; False for an unsolicited or unknown pong."""
        if payload not in self._out:
            return False
        for key in list(self._out):
            del self._out[key]
            if key == payload:
                break
        return True

    def deadline(self) -> float | None:
        """When the oldest outstanding ping times out, or None if none is outstanding."""
        for sent_at in self._out.values():
            return sent_at + self.timeout_s
        return None

    def expired(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    @property
    def outstanding(self) -> int:
        return len(self._out)

    def clear(self) -> None:
        self._out.clear()


class ControlResult(NamedTuple):
    """What one control message does: the reply frame and the streams to attach and detach."""

    reply: bytes
    added: list[str]
    removed: list[str]


class _ControlError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


_METHOD_VALUE = re.compile(rb'"method"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _line_col(text: bytes, end: int) -> tuple[int, int]:
    """serde_json's 1-based line and column of the character before ``end``."""
    head = text[:end]
    line = head.count(b"\n") + 1
    return line, end - (head.rfind(b"\n") + 1)


def _valid_id(value: Any, unsigned_only: bool = False) -> bool:
    if unsigned_only:
        # Futures streams: an unsigned integer, nothing else (PROTOCOL.md 3 and 8).
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2 ** 64 - 1
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return ID_INT_MIN <= value <= ID_INT_MAX
    if isinstance(value, str):
        return _ID_STR.fullmatch(value) is not None
    return False


class StreamControl:
    """The live subscription protocol of one stream connection (PROTOCOL.md section 3), without I/O.

    Holds the connection's subscriptions and ``combined`` property; :meth:`handle` takes one text frame
    and returns the reply and the subscription changes the I/O layer must apply to the hub.
    """

    def __init__(self, *, streams: Iterable[str] = (), combined: bool, max_streams: int,
                 stream_exists: Callable[[str], bool], unsigned_ids_only: bool = False) -> None:
        self.streams: dict[str, None] = dict.fromkeys(streams)
        self.combined = combined
        self.max_streams = max_streams
        self._exists = stream_exists
        self._unsigned = unsigned_ids_only

    def handle(self, data: bytes) -> ControlResult:
        """Answer one client text frame. Never raises: every problem becomes Binance's error reply."""
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            # Observed shape for unparseable input: id first, then the error (unicorn-binance #285).
            return ControlResult(orjson.dumps({"id": None, "error": {"code": 3, "msg": "Invalid json"}}),
                                 [], [])
        request_id = msg.get("id") if isinstance(msg, dict) else None
        echo_id = request_id if _valid_id(request_id, self._unsigned) else None
        try:
            if not isinstance(msg, dict):
                raise _ControlError(2, "Invalid request: expected a JSON object")
            result, added, removed = self._dispatch(msg, data)
        except _ControlError as err:
            body = {"error": {"code": err.code, "msg": err.msg}, "id": echo_id}
            return ControlResult(orjson.dumps(body), [], [])
        return ControlResult(orjson.dumps({"result": result, "id": request_id}), added, removed)

    def _dispatch(self, msg: dict[str, Any], raw: bytes) -> tuple[Any, list[str], list[str]]:
        if "method" not in msg:
            line, col = _line_col(raw, len(raw.rstrip()))
            raise _ControlError(2, f"Invalid request: missing field `method` at line {line} column {col}")
        method = msg["method"]
        if method not in CONTROL_METHODS:
            found = _METHOD_VALUE.search(raw)
            line, col = _line_col(raw, found.end() if found else len(raw.rstrip()))
            expected = ", ".join(f"`{m}`" for m in CONTROL_METHODS)
            raise _ControlError(2, f"Invalid request: unknown variant `{method}`, expected one of "
                                   f"{expected} at line {line} column {col}")
        if "id" not in msg or not _valid_id(msg["id"], self._unsigned):
            # The wording is historical: ids may be signed or strings since 2023-12-04 (PROTOCOL.md 3).
            raise _ControlError(2, "Invalid request: request ID must be an unsigned integer")
        params = msg.get("params", [])
        if not isinstance(params, list):
            raise _ControlError(2, "Invalid request: params must be an array")
        if method == "SUBSCRIBE":
            return None, self._subscribe(params), []
        if method == "UNSUBSCRIBE":
            return None, [], self._unsubscribe(params)
        if method == "LIST_SUBSCRIPTIONS":
            if params:
                raise _ControlError(2, "Invalid request: too many parameters")
            return list(self.streams), [], []
        return self._property(method, params), [], []

    def _check_names(self, params: list[Any]) -> list[str]:
        names = list(dict.fromkeys(params))
        for name in names:
            if not isinstance(name, str) or not self._exists(name):
                raise _ControlError(2, "Invalid request: invalid stream")
        return names

    def _subscribe(self, params: list[Any]) -> list[str]:
        added = [n for n in self._check_names(params) if n not in self.streams]
        if len(self.streams) + len(added) > self.max_streams:
            raise _ControlError(2, "Invalid request: too many streams")
        self.streams.update(dict.fromkeys(added))
        return added

    def _unsubscribe(self, params: list[Any]) -> list[str]:
        removed = [n for n in self._check_names(params) if n in self.streams]
        for name in removed:
            del self.streams[name]
        return removed

    def _property(self, method: str, params: list[Any]) -> Any:
        if not params or not isinstance(params[0], str):
            raise _ControlError(2, "Invalid request: property name must be a string")
        if params[0] != PROPERTY_COMBINED:
            raise _ControlError(0, "Unknown property")
        if method == "GET_PROPERTY":
            if len(params) > 1:
                raise _ControlError(2, "Invalid request: too many parameters")
            return self.combined
        if len(params) < 2 or not isinstance(params[1], bool):
            raise _ControlError(1, "Invalid value type: expected Boolean")
        if len(params) > 2:
            raise _ControlError(2, "Invalid request: too many parameters")
        self.combined = params[1]
        return None


# =========================================================================================================
# URL routing
# =========================================================================================================
class Route(NamedTuple):
    """A parsed handshake path."""

    kind: str  # "stream", "user" (listen-key stream), "ws-api" or "blast"
    streams: list[str]
    combined: bool
    micro: bool
    query: dict[str, list[str]]
    #: The routed path prefix it came in on, without its "/" ("public", "market", "private"; futures,
    #: PROTOCOL.md 8), or None for an unrouted path.
    path_route: str | None = None


class RouteError(Exception):
    """A handshake to refuse with ``status`` and a JSON ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("msg", ""))
        self.status = status
        self.body = body


def _split_names(joined: str) -> list[str]:
    # Unquote before splitting: an encoded "/" (%2F) separates names like a plain one.
    return list(dict.fromkeys(n for n in unquote(joined).split("/") if n))


def parse_path(raw_path: bytes, routes: tuple[str, ...] = ()) -> Route | None:
    """Route a handshake path; None for a path this server does not serve (404).

    ``routes`` are the routed path prefixes of a futures product (``("/public", "/market", "/private")``
    on USD-M): ``/public/ws/...`` is ``/ws/...`` on route "public"; ``/private`` serves only listen-key
    streams. Raises :class:`RouteError` for a bad ``timeUnit``.
    """
    parts = urlsplit(raw_path.decode("utf-8", "replace"))
    query = parse_qs(parts.query, keep_blank_values=True)
    unit = query.get("timeUnit", ["MILLISECOND"])[-1]
    if unit not in TIME_UNITS:
        raise RouteError(400, ERR_INVALID_TIME_UNIT)
    micro = TIME_UNITS[unit]
    path = parts.path
    path_route: str | None = None
    for prefix in routes:
        if path == prefix or path.startswith(prefix + "/"):
            path_route, path = prefix[1:], path[len(prefix):] or "/"
            break
    if path_route == "private":
        # /ws?listenKey=k[&events=...], /ws/<k> and /stream?listenKey=k1&events=...&listenKey=k2...
        if path.rstrip("/") in ("/ws", "/stream") and "listenKey" in query:
            return Route("user", [], path.startswith("/stream"), micro, query, path_route)
        if path.startswith("/ws/") and path.count("/") == 2 and len(path) > 4:
            # A listen-key stream if the name is a live key, else refused (see StreamServer._listener).
            return Route("stream", [path[4:]], False, micro, query, path_route)
        return None
    if path_route is None and path in ("/ws", "/private/ws") and "listenKey" in query:
        return Route("user", [], False, micro, query)
    if path == "/ws" or path.startswith("/ws/"):
        return Route("stream", _split_names(path[3:]), False, micro, query, path_route)
    if path in ("/stream", "/stream/"):
        # Raw values, not parse_qs's: its "+" -> " " would turn the documented ``@+08:00`` kline suffix
        # into an unknown name (silently ignored since URL names are no longer refused).
        raw_values = [v for k, _, v in (p.partition("=") for p in parts.query.split("&")) if k == "streams"]
        names = [n for value in raw_values for n in _split_names(value)]
        return Route("stream", list(dict.fromkeys(names)), True, micro, query, path_route)
    if path_route is not None:
        return None
    if path == "/ws-api/v3":
        return Route("ws-api", [], False, micro, query)
    if path == "/blast":
        return Route("blast", [], query.get("combined", ["0"])[-1] in ("1", "true"), micro, query)
    return None


def _refusal(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) \
        -> WSUpgradeResponseWithListener:
    extra = {"Content-Type": "application/json", **(headers or {})}
    response = WSUpgradeResponse.create_error_response(status, orjson.dumps(body), extra)
    return WSUpgradeResponseWithListener(response, None)


# =========================================================================================================
# Connections
# =========================================================================================================
class _Connection(WSListener):
    """What every server-side connection shares: timers, ping/pong, close handling, faults, flow control."""

    kind = "stream"

    def __init__(self, server: StreamServer, conn_id: int, peer: str, path: str) -> None:
        self.server = server
        self.id = conn_id
        self.peer = peer
        self.path = path
        self.transport: WSTransport | None = None
        self.opened_at = time.monotonic()
        self.stalled = False
        self.paused = False
        self.closing = False
        self.pings = PingTracker(server.config.pong_timeout_s)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._drain: asyncio.Future[None] | None = None
        self._ping_seq = 0

    # -- lifecycle --------------------------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.server.connections[self.id] = self
        cfg = self.server.config
        self._later("ping", cfg.ping_interval_s, self._ping_tick)
        self._later("lifetime", cfg.connection_lifetime_s, self._expire)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closing = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.server.connections.pop(self.id, None)
        self._wake_drain()

    def _later(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        self._timers[name] = asyncio.get_running_loop().call_later(delay, callback)

    # -- frames -----------------------------------------------------------------------------------------
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.stalled or self.closing:
            return
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            # Echo the client's code, as RFC 6455 5.5.1 asks, then end the TCP connection.
            code = frame.get_close_code()
            transport.send_close(WSCloseCode.OK if code is WSCloseCode.NO_INFO else code)
            self._finish()
            return
        if not self._admit():
            self.close(*CLOSE_TOO_MANY_REQUESTS)
            return
        if kind is WSMsgType.PING:
            if self.server.answer_pings:
                self.flush()
                transport.send_pong(frame.get_payload_as_bytes())
        elif kind is WSMsgType.PONG:
            self.pings.pong(frame.get_payload_as_bytes())
        else:
            self.on_data(transport, frame)

    def _admit(self) -> bool:
        """Whether an incoming frame fits the connection's message budget."""
        return True

    def on_data(self, transport: WSTransport, frame: WSFrame) -> None:
        """A text, binary or continuation frame from the client."""

    def flush(self) -> None:
        """Write frames queued for the end of this loop iteration; called before any frame that picows
        sends directly, so frames keep their order."""

    # -- server pings -----------------------------------------------------------------------------------
    def _ping_tick(self) -> None:
        cfg = self.server.config
        self._later("ping", cfg.ping_interval_s, self._ping_tick)
        if self.stalled or self.closing or self.transport is None:
            return
        self._ping_seq += 1
        payload = b"%d" % self._ping_seq
        now = time.monotonic()
        self.pings.sent(payload, now)
        self.flush()
        self.transport.send_ping(payload)
        if "pong" not in self._timers:
            self._later("pong", cfg.pong_timeout_s, self._pong_check)

    def _pong_check(self) -> None:
        self._timers.pop("pong", None)
        if self.stalled or self.closing:
            return
        now = time.monotonic()
        if self.pings.expired(now):
            self.close(*CLOSE_PONG_TIMEOUT)
            return
        deadline = self.pings.deadline()
        if deadline is not None:
            self._later("pong", deadline - now, self._pong_check)

    def _expire(self) -> None:
        self._timers.pop("lifetime", None)
        self.close(*CLOSE_GOING_AWAY)

    # -- closing ----------------------------------------------------------------------------------------
    def close(self, code: WSCloseCode | int, reason: str = "") -> None:
        """Send a close frame (behind anything already buffered) and end the connection."""
        if self.closing or self.transport is None:
            return
        self.flush()
        self.closing = True
        self.on_closing()
        self.transport.send_close(WSCloseCode(code), reason.encode())
        self._finish()

    def _finish(self) -> None:
        """Close TCP once buffered data is flushed; abort if the client does not read it in time."""
        self.closing = True
        self.on_closing()
        if self.transport is None:
            return
        self.transport.disconnect(graceful=True)
        self._later("linger", CLOSE_LINGER_S, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection at once, with no close frame (a network failure as the client sees it)."""
        self.closing = True
        self.on_closing()
        if self.transport is not None:
            self.transport.disconnect(graceful=False)

    def on_closing(self) -> None:
        """Stop producing frames (subclasses detach from the hub)."""

    # -- faults -----------------------------------------------------------------------------------------
    def stall(self) -> None:
        """Keep TCP open but send nothing and answer nothing until :meth:`unstall` (the lifetime still
        runs: a stalled connection that reaches it is closed)."""
        self.stalled = True
        self.pings.clear()
        handle = self._timers.pop("pong", None)
        if handle is not None:
            handle.cancel()

    def unstall(self) -> None:
        self.stalled = False

    def send_raw(self, frame: bytes, msg_type: WSMsgType = WSMsgType.TEXT) -> None:
        """Send one frame as-is (fault injection bypasses stalls and wrappers)."""
        if self.transport is not None and not self.closing:
            self.flush()
            self.transport.send(msg_type, frame)

    def shutdown_notice(self) -> bytes:
        """The ``serverShutdown`` frame for this kind of connection (PROTOCOL.md 2)."""
        event = {"e": "serverShutdown", "E": self.server.clock.now_ms()}
        return orjson.dumps(event)

    # -- flow control -----------------------------------------------------------------------------------
    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    async def drained(self) -> None:
        """Return once the send buffer is below its high-water mark (or the connection is gone)."""
        while self.paused and not self.closing:
            if self._drain is None:
                self._drain = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drain)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for the control endpoint."""
        return {"id": self.id, "kind": self.kind, "peer": self.peer, "path": self.path,
                "stalled": self.stalled, "age_s": round(time.monotonic() - self.opened_at, 3)}


class _StreamConnection(_Connection):
    """A market-stream connection: a hub subscriber that also speaks the control protocol."""

    def __init__(self, server: StreamServer, conn_id: int, peer: str, path: str, route: Route) -> None:
        super().__init__(server, conn_id, peer, path)
        cfg = server.config
        self.control = StreamControl(streams=route.streams, combined=route.combined,
                                     max_streams=cfg.max_streams_per_connection,
                                     stream_exists=server.stream_exists,
                                     unsigned_ids_only=server.unsigned_ids_only)
        #: The routed path it connected on (futures): only streams that route serves are attached.
        self.path_route = route.path_route
        #: Read by the hub for every frame, so kept as plain attributes.
        self.combined = route.combined
        self.micro = route.micro
        self.incoming = IncomingLimit(cfg.max_incoming_per_second)
        self._fragments: list[bytes] | None = None
        #: Frames (header, payload, header, ...) published during this loop iteration.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._call_soon = asyncio.get_running_loop().call_soon
        self.send: Callable[[bytes], None] = self._drop

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        self.send = self._queue
        delivers = self.server.delivers
        for stream in self.control.streams:
            if delivers(self.path_route, stream):
                self.server.hub.attach(stream, self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.on_closing()
        super().on_ws_disconnected(transport)

    def on_closing(self) -> None:
        self.send = self._drop
        self._pending.clear()
        self._pending_size = 0
        self.server.hub.detach_all(self, self.control.streams)

    def _admit(self) -> bool:
        return self.incoming.allow(time.monotonic())

    def on_data(self, transport: WSTransport, frame: WSFrame) -> None:
        data = frame.get_payload_as_bytes()
        if not frame.fin or self._fragments is not None:
            # Fragmented message: collect until the final continuation frame.
            self._fragments = [*(self._fragments or []), data]
            if not frame.fin:
                return
            data, self._fragments = b"".join(self._fragments), None
        result = self.control.handle(data)
        hub = self.server.hub
        for stream in result.removed:
            hub.detach(stream, self)
        delivers = self.server.delivers
        for stream in result.added:
            # A stream the connection's route does not serve is subscribed (listed) but silent.
            if delivers(self.path_route, stream):
                hub.attach(stream, self)
        self.combined = self.control.combined
        self.flush()
        transport.send(WSMsgType.TEXT, result.reply)

    # -- sending (the hub calls ``send``; it is swapped rather than branched on the hot path) -----------
    def _queue(self, frame: bytes) -> None:
        """Frame a payload and queue it: one write (one syscall) per loop iteration, not per message."""
        size = len(frame)
        header = _HEADERS.get(size)
        if header is None:
            header = _frame_header(size)
            if size < 1 << 16:
                _HEADERS[size] = header
        pending = self._pending
        if not pending:
            self._call_soon(self.flush)
        pending += (header, frame)
        self._pending_size += size
        if self._pending_size > FLUSH_AT_BYTES:
            # A publisher that does not yield must still meet backpressure (pause_writing, drained()).
            self.flush()

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        data = b"".join(pending)
        pending.clear()
        self._pending_size = 0
        transport = self.transport
        if transport is None or self.closing or transport.is_close_frame_sent:
            return
        raw = transport.underlying_transport
        # Judge the client by what it has not read yet, not by the size of this burst.
        if raw.get_write_buffer_size() > self.server.max_send_buffer:
            self.close(*CLOSE_SEND_BUFFER_FULL)
            return
        raw.write(data)

    def _drop(self, frame: bytes) -> None:
        """Sending while stalled or closed: the frame is lost, as on a hung server."""

    def stall(self) -> None:
        super().stall()
        self.send = self._drop
        self._pending.clear()
        self._pending_size = 0

    def unstall(self) -> None:
        super().unstall()
        if not self.closing and self.transport is not None:
            self.send = self._queue

    def shutdown_notice(self) -> bytes:
        body = super().shutdown_notice()
        if self.combined:
            return b'{"stream":"!serverShutdown","data":' + body + b"}"
        return body

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "streams": list(self.control.streams), "combined": self.combined,
                "micro": self.micro}


class _WsApiConnection(_Connection):
    """The WebSocket API: the server keeps pings, lifetime and faults; ``inner`` answers the requests."""

    kind = "ws-api"

    def __init__(self, server: StreamServer, conn_id: int, peer: str, path: str, inner: Any) -> None:
        super().__init__(server, conn_id, peer, path)
        self.inner = inner

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        self.inner.on_ws_connected(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        super().on_ws_disconnected(transport)
        self.inner.on_ws_disconnected(transport)

    def on_data(self, transport: WSTransport, frame: WSFrame) -> None:
        self.inner.on_ws_frame(transport, frame)

    def pause_writing(self) -> None:
        super().pause_writing()
        with contextlib.suppress(Exception):
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        super().resume_writing()
        with contextlib.suppress(Exception):
            self.inner.resume_writing()

    def shutdown_notice(self) -> bytes:
        return b'{"event":' + super().shutdown_notice() + b"}"


class _UserStreamConnection(_WsApiConnection):
    """A listen-key user stream (futures, legacy spot): events are bare, so is the shutdown notice."""

    kind = "user"

    def shutdown_notice(self) -> bytes:
        return _Connection.shutdown_notice(self)


# =========================================================================================================
# Blast mode: pre-generated trade frames as fast as the socket takes them (benchmarks)
# =========================================================================================================
#: Messages per pre-generated chunk; ids in a chunk share their leading digits, so a new chunk is one
#: ``bytes.replace`` of a placeholder, not per-message work.
BLAST_CHUNK = 10_000
_ID_SUFFIX_DIGITS = 4  # log10(BLAST_CHUNK)
_ID_PREFIX_DIGITS = 6
#: First trade id prefix: ids start at 3_735_680_000, the size of real BTCUSDT ids (PROTOCOL.md 4.2).
_ID_PREFIX_START = 373_568
_ID_PLACEHOLDER = b"^" * _ID_PREFIX_DIGITS
_TIME_PLACEHOLDER_MS = b"~" * 13
_TIME_PLACEHOLDER_US = b"~" * 16
#: Pacing granularity of a fixed-rate blast.
_BLAST_TICK_S = 0.001


@dataclass(slots=True, frozen=True)
class BlastSpec:
    """``/blast`` query: ``stream=<symbol>@trade`` (required), ``count`` messages (default 1 000 000),
    ``rate`` messages a second (0: as fast as the socket takes them), ``combined=1`` to wrap,
    ``timeUnit`` as on stream paths. The connection stays open afterwards until the client closes it."""

    stream: str
    count: int
    rate: float
    combined: bool
    micro: bool

    @classmethod
    def from_route(cls, route: Route) -> BlastSpec:
        """Raises :class:`RouteError` (400) for a missing or non-trade stream or a bad number."""
        q = route.query
        stream = q.get("stream", [""])[-1]
        if not stream.endswith("@trade") or len(stream) <= len("@trade"):
            raise RouteError(400, ERR_INVALID_STREAM)
        try:
            count = int(q.get("count", ["1000000"])[-1])
            rate = float(q.get("rate", ["0"])[-1])
        except ValueError:
            raise RouteError(400, {"code": -1102, "msg": "count and rate must be numbers."}) from None
        capacity = (10 ** _ID_PREFIX_DIGITS - _ID_PREFIX_START) * BLAST_CHUNK
        if not 0 < count <= capacity or rate < 0:
            raise RouteError(400, {"code": -1102, "msg": f"count must be 1..{capacity}, rate >= 0."})
        return cls(stream, count, rate, route.combined, route.micro)


#: Frame headers by payload size, for sizes under 64 KiB (a bounded cache: at most 65 536 entries).
_HEADERS: dict[int, bytes] = {}


def _frame_header(size: int) -> bytes:
    """RFC 6455 header of an unmasked, final text frame of ``size`` bytes (server to client)."""
    if size < 126:
        return bytes((0x81, size))
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big")
    return bytes((0x81, 127)) + size.to_bytes(8, "big")


def blast_template(spec: BlastSpec) -> tuple[bytes, list[int]]:
    """One chunk of ``BLAST_CHUNK`` framed trade messages with placeholders, and each frame's offset
    (plus the end). Prices wander and quantities vary by position, like a busy book."""
    symbol = spec.stream.split("@", 1)[0].upper().encode()
    time_ph = _TIME_PLACEHOLDER_US if spec.micro else _TIME_PLACEHOLDER_MS
    parts: list[bytes] = []
    offsets = [0]
    size = 0
    for i in range(BLAST_CHUNK):
        price = 61_800 + ((i * 7919) % 2000 - 1000) / 100
        qty = ((i * 104_729) % 100_000 + 1) / 100_000
        body = (b'{"e":"trade","E":%s,"s":"%s","t":%s%0*d,"p":"%.8f","q":"%.8f","T":%s,"m":%s,"M":true}'
                % (time_ph, symbol, _ID_PLACEHOLDER, _ID_SUFFIX_DIGITS, i, price, qty, time_ph,
                   b"true" if i % 3 else b"false"))
        if spec.combined:
            body = b'{"stream":"%s","data":%s}' % (spec.stream.encode(), body)
        frame = _frame_header(len(body)) + body
        parts.append(frame)
        size += len(frame)
        offsets.append(size)
    return b"".join(parts), offsets


class _BlastConnection(_Connection):
    """Sends ``spec.count`` pre-generated trade frames, ignoring the hub; ping, lifetime and faults apply."""

    kind = "blast"

    def __init__(self, server: StreamServer, conn_id: int, peer: str, path: str, spec: BlastSpec) -> None:
        super().__init__(server, conn_id, peer, path)
        self.spec = spec
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"sim-blast-{self.id}")

    def on_closing(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _run(self) -> None:
        spec = self.spec
        template, offsets = blast_template(spec)
        transport = self.transport
        assert transport is not None
        write = transport.underlying_transport.write
        clock = self.server.clock
        prefix = _ID_PREFIX_START
        chunk = b""
        pos = BLAST_CHUNK  # position in the current chunk; BLAST_CHUNK means "make a new one"
        started = time.monotonic()
        while self.sent < spec.count:
            if self.closing or transport.is_close_frame_sent or transport.is_disconnected:
                return
            if self.stalled or self.paused:
                await (asyncio.sleep(_BLAST_TICK_S) if self.stalled else self.drained())
                continue
            want = spec.count - self.sent
            if spec.rate:
                due = int((time.monotonic() - started) * spec.rate) - self.sent
                if due <= 0:
                    await asyncio.sleep(_BLAST_TICK_S)
                    continue
                want = min(want, due)
            if pos == BLAST_CHUNK:
                now = b"%d" % (clock.now_us() if spec.micro else clock.now_ms())
                chunk = template.replace(_ID_PLACEHOLDER, b"%d" % prefix).replace(
                    _TIME_PLACEHOLDER_US if spec.micro else _TIME_PLACEHOLDER_MS, now)
                prefix += 1
                pos = 0
            n = min(want, BLAST_CHUNK - pos)
            write(chunk[offsets[pos]:offsets[pos + n]])
            pos += n
            self.sent += n
            # Let the loop read client frames (pings, close) between chunks.
            await asyncio.sleep(0)


# =========================================================================================================
# The server
# =========================================================================================================
class _PeerProtocol(WSProtocol):
    """picows' server protocol, remembering the peer address: the listener factory sees only the request,
    and the connection-attempt limit is per IP."""

    peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if peername else ""
        super().connection_made(transport)


class StreamServer:
    """Binance's stream endpoint for a simulator: ``await start()``, then clients connect to ``port``.

    ``connections`` maps connection ids to live connections (faults act on them); ``attempts`` is the
    per-IP connection-attempt limiter; ``max_send_buffer`` caps what a slow consumer can make the server
    buffer (see the module docstring).
    """

    def __init__(self, config: SimConfig, hub: StreamHub, clock: SimClock,
                 stream_exists: Callable[[str], bool], *, user_stream: ListenerFactory | None = None,
                 is_listen_key: Callable[[str], bool] | None = None,
                 ws_api: ListenerFactory | None = None, routes: tuple[str, ...] = (),
                 delivers: Callable[[str | None, str], bool] | None = None,
                 unsigned_ids_only: bool = False) -> None:
        self.config = config
        self.hub = hub
        self.clock = clock
        self.stream_exists = stream_exists
        #: Futures (PROTOCOL.md 8): the routed path prefixes (``/public``, ``/market``, ``/private``),
        #: whether a connection on a route (None: unrouted) is sent a stream, and whether control ids
        #: must be unsigned integers. Spot: no routes, everything delivered, any valid id.
        self.routes = routes
        self.delivers: Callable[[str | None, str], bool] = delivers or (lambda route, name: True)
        self.unsigned_ids_only = unsigned_ids_only
        #: Listen-key streams (``/private/...``, ``/ws/<listenKey>``): built by ``user_stream``, a single
        #: ``/ws/<name>`` is one when ``is_listen_key(name)``. None: the server has no user streams.
        self.user_stream = user_stream
        self.is_listen_key = is_listen_key or (lambda name: False)
        #: ``/ws-api/v3`` sessions (None: 404).
        self.ws_api = ws_api
        #: Fault hooks (installed by :class:`~binance_ws.sim.faults.Faults`): whether client pings are
        #: answered, and a callable giving the HTTP status to refuse the next handshake with (or None).
        self.answer_pings = True
        self.refusal: Callable[[], int | None] | None = None
        self.port = 0
        self.connections: dict[int, _Connection] = {}
        cfg = self.config
        self.attempts = AttemptLimiter(cfg.max_connections_per_window, cfg.connection_window_s)
        self.max_send_buffer = DEFAULT_MAX_SEND_BUFFER
        self._server: asyncio.Server | None = None
        self._next_id = 0

    async def start(self) -> None:
        """Listen on ``config.host``:``config.stream_port`` (0: an ephemeral port, then read ``port``)."""
        loop = asyncio.get_running_loop()
        logger = logging.getLogger("binance_ws.sim.picows")
        if logger.level == logging.NOTSET:
            # picows logs every accepted connection at INFO: noise for a simulator that sees thousands.
            logger.setLevel(logging.WARNING)
        cfg = self.config

        def protocol_factory() -> WSProtocol:
            # Positional arguments of picows 2.3's WSProtocol, as ws_create_server passes them; our own
            # pings (payload-checked) and pong handling replace picows' automatic ones.
            proto: _PeerProtocol
            proto = _PeerProtocol(None, None, False, lambda request: self._route(request, proto.peer),
                                  logger, True, 5.0, False, cfg.ping_interval_s, cfg.ping_interval_s,
                                  WSAutoPingStrategy.PING_WHEN_IDLE, False, cfg.max_frame_size, None,
                                  16 * 1024)
            return proto

        self._server = await loop.create_server(protocol_factory, cfg.host, cfg.stream_port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and abort every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections.values()):
            conn.abort()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    # -- handshake --------------------------------------------------------------------------------------
    def _route(self, request: WSUpgradeRequest, peer: str) -> Any:
        path = request.path.decode("utf-8", "replace")
        retry = self.attempts.attempt(peer, time.monotonic())
        if retry:
            return _refusal(429, ERR_TOO_MANY_REQUESTS, {"Retry-After": str(max(1, round(retry)))})
        refused = self.refusal() if self.refusal is not None else None
        if refused is not None:
            return _refusal(refused, ERR_TOO_MANY_REQUESTS if refused == 429 else ERR_UNAVAILABLE)
        try:
            route = parse_path(request.path, self.routes)
            if route is None:
                return None
            listener = self._listener(route, peer, path, request)
        except RouteError as err:
            return _refusal(err.status, err.body)
        if listener is None:
            return None
        response = WSUpgradeResponse.create_101_response({CONNECTION_ID_HEADER: str(listener.id)})
        return WSUpgradeResponseWithListener(response, listener)

    def _listener(self, route: Route, peer: str, path: str, request: WSUpgradeRequest) -> _Connection | None:
        self._next_id += 1
        conn_id = self._next_id
        if self.user_stream is not None and (route.kind == "user" or (
                route.kind == "stream" and len(route.streams) == 1
                and self.is_listen_key(route.streams[0]))):
            return _UserStreamConnection(self, conn_id, peer, path, self.user_stream(request))
        if route.path_route == "private":  # /private serves listen-key streams only
            return None
        if route.kind == "stream":
            if len(route.streams) > self.config.max_streams_per_connection:
                raise RouteError(400, ERR_TOO_MANY_STREAMS)
            # Unknown names are accepted and stay silent (module docstring): only the known ones attach.
            known = [s for s in route.streams if self.stream_exists(s)]
            return _StreamConnection(self, conn_id, peer, path, route._replace(streams=known))
        if route.kind == "blast":
            return _BlastConnection(self, conn_id, peer, path, BlastSpec.from_route(route))
        if self.ws_api is None:
            return None
        try:
            inner = self.ws_api(request)
        except Exception:
            # A bug in the WS API must show in the log, not as an exception text sent to the client.
            log.exception("WS API listener failed to start")
            raise RouteError(500, ERR_UNAVAILABLE) from None
        return _WsApiConnection(self, conn_id, peer, path, inner)
