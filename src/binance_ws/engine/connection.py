"""Combined-stream connections: one picows socket (:class:`Link`) and the self-healing slot around it
(:class:`Connection`).

A :class:`Link` is one WebSocket. Its frame callback is the hot path: read the stream name from the
frame prefix, look it up in the link's table and hand the payload bytes on (see
:mod:`binance_ws.engine.router`). Everything it sends counts against the market's incoming-message
limit: control JSON goes through a :class:`~binance_ws.core.plan.ControlScheduler`, pings and pongs
through the slots it keeps free, so a connection never sends more than the limit.

A :class:`Connection` is one shard of the subscription plan: the set of streams that should be on one
socket, kept there through drops (reconnect with backoff, then give up with the documented error), dead
peers (our own ping deadline and a no-data watchdog sized to the streams' cadence), 429/418 at handshake
(``Retry-After``), the 24 h cut and ``serverShutdown`` (make-before-break rotation). It reports an
unplanned loss ("down") and the recovery ("up") through ``on_link``; a rotation is not reported, since
nothing is lost in it. These are rare events: nothing on the per-frame path knows about them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSHandshakeError,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from binance_ws import errors
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.core.budget import SlidingWindow
from binance_ws.core.lifecycle import (
    DEFAULT_PING_TIMEOUT_S,
    DEFAULT_STABLE_AFTER_S,
    PING,
    ROTATE,
    GiveUp,
    Lifecycle,
    Liveness,
    LivenessPolicy,
    Wait,
)
from binance_ws.core.plan import CONTROL_RESERVE, CONTROL_WINDOW_S, ControlMessage, ControlScheduler
from binance_ws.engine.attempts import acquire_connection_slot, attempt_budget, sendable_close_code
from binance_ws.engine.delivery import LINK_DOWN, LINK_UP, LinkState, RawMessage
from binance_ws.engine.router import (
    COMBINED_PREFIX,
    DATA_KEY,
    DATA_SEPARATOR,
    RAW_SPLIT,
    STREAM_KEY,
    WHOLE_DICT,
    Handover,
    Route,
    RouteTable,
    route_key,
)
from binance_ws.markets import Market

log = logging.getLogger("binance_ws.engine")

#: The payload within a combined frame's tail (what follows ``"data":``): all but the closing brace. A
#: constant, so the hot path does not build a slice object per frame.
_PAYLOAD: Final = slice(None, -1)
#: picows logs every connect and disconnect at INFO; keep it under our namespace.
_PICOWS_LOG = logging.getLogger("binance_ws.engine.picows")

#: Binance refuses handshake URLs longer than 8004 characters (unicorn-binance-websocket-api #17, [OBS]);
#: streams beyond that are subscribed once the socket is up.
MAX_URL_CHARS: Final = 8004
#: A control frame larger than 4096 bytes is silently ignored by the server (binance-connector-rust #27,
#: [OBS]: 4088 bytes of payload pass, 4106 do not).
MAX_CONTROL_FRAME_BYTES: Final = 4088
#: Longest stream name we send: a 20-character symbol plus ``@kline_<i>@+08:00`` (streams.py tables).
_LONGEST_STREAM_NAME: Final = 36
#: Streams per SUBSCRIBE so that a frame of the longest names stays under MAX_CONTROL_FRAME_BYTES
#: (each name costs its quotes and a comma; 64 bytes cover the method, id and brackets).
PARAMS_PER_MESSAGE: Final = (MAX_CONTROL_FRAME_BYTES - 64) // (_LONGEST_STREAM_NAME + 3)

#: Our own liveness check (core/lifecycle.py): after ``ping_interval`` of silence (default: the server's
#: ping cadence, 20 s on spot, PROTOCOL 2) we ping, and only a connection that sends nothing within
#: ``DEFAULT_PING_TIMEOUT_S`` of our ping (or stops pinging us) is dropped and reopened. Silence alone
#: never is: a quiet symbol's book sends nothing when it does not change (PROTOCOL 4.12).
#: The largest message reassembled from fragments (RFC 6455 continuation frames); Binance's largest
#: pushes (all-market arrays) are well under a megabyte.
MAX_MESSAGE_BYTES: Final = 16 << 20
#: Rotate this fraction of the lifetime before the server's cut, at most ROTATION_LEAD_MAX_S before it.
ROTATION_LEAD_FRACTION: Final = 0.1
ROTATION_LEAD_MAX_S: Final = 600.0
#: How long a rotation waits for a silent stream to prove the overlap before switching it anyway:
#: anything published before the new socket subscribed has reached us on the old one by then.
DEFAULT_HANDOVER_GRACE_S: Final = 2.0
#: How many more grace periods a handover waits for a lagging old socket to catch up with the new one.
HANDOVER_CATCH_UP_GRACES: Final = 4
DEFAULT_HANDSHAKE_TIMEOUT_S: Final = 10.0
DEFAULT_REQUEST_TIMEOUT_S: Final = 10.0
#: How long a retiring socket may take to finish its close handshake before it is aborted.
CLOSE_TIMEOUT_S: Final = 2.0
#: The HTTP statuses at handshake that mean "slow down" and carry ``Retry-After`` (PROTOCOL 7).
RATE_LIMIT_STATUSES: Final = frozenset({418, 429})
#: The handshake status for a URL the server refuses, e.g. an unknown stream in it (sim/server.py; the
#: real server's answer is not documented, PROTOCOL 11.2).
BAD_REQUEST: Final = 400
#: Control frames received from the server that end a connection early (PROTOCOL 2, 11).
SHUTDOWN_STREAM: Final = route_key("!serverShutdown")

_TEXT = WSMsgType.TEXT
_CONTINUATION = WSMsgType.CONTINUATION
_PING = WSMsgType.PING
_PONG = WSMsgType.PONG
_CLOSE = WSMsgType.CLOSE


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Everything a connection needs to know, resolved once by the manager from its arguments and market.

    ``no_data_timeout_s``: a stream silent this long is reported to its subscribers (a ``quiet`` event,
    once per silence, and a counter); None or 0: no expectation. It never reconnects: only the protocol
    (pings) says a connection is dead. ``rotate_after_s`` None derives it from
    ``market.connection_lifetime_s``; 0 never rotates on age. ``server_ping_interval_s`` None: the
    market's cadence. ``stable_after_s``: how long a socket must live for its opening to reset the
    backoff (a shorter life is a flap, see core/lifecycle.py).
    """

    market: Market
    backoff: BackoffPolicy
    ping_interval_s: float
    ping_timeout_s: float = DEFAULT_PING_TIMEOUT_S
    no_data_timeout_s: float | None = None
    rotate_after_s: float | None = None
    handover_grace_s: float = DEFAULT_HANDOVER_GRACE_S
    handshake_timeout_s: float = DEFAULT_HANDSHAKE_TIMEOUT_S
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    server_ping_interval_s: float | None = None
    stable_after_s: float = DEFAULT_STABLE_AFTER_S

    @property
    def liveness(self) -> LivenessPolicy:
        """How each socket's health is judged (core/lifecycle.py)."""
        return LivenessPolicy(self.ping_interval_s, self.ping_timeout_s,
                              self.server_ping_interval_s or self.market.server_ping_interval_s,
                              rotate_after_s=self.rotation_age_s)

    @property
    def rotation_age_s(self) -> float:
        """Seconds after which a socket is replaced (infinite: never)."""
        if self.rotate_after_s is not None:
            return self.rotate_after_s or math.inf
        life = self.market.connection_lifetime_s
        return life - min(ROTATION_LEAD_MAX_S, life * ROTATION_LEAD_FRACTION)


def _retry_after(exc: WSHandshakeError) -> float | None:
    response = exc.response
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# -- one socket -----------------------------------------------------------------------------------

class _Shutdown:
    """Table entry for the combined ``!serverShutdown`` notice."""

    __slots__ = ("_link",)
    #: Too rare to stop the connection decoding whole frames (see :class:`RouteTable`).
    rare = True

    def __init__(self, link: Link) -> None:
        self._link = link

    def feed(self, data: bytes) -> None:
        self._link.notice_shutdown()


class _HandedOver:
    """Table entry of the old socket for a stream a rotation has switched to the new one: its frames there
    are the overlap, already delivered (or about to be) by the new socket, so they are dropped quietly."""

    __slots__ = ()
    #: Only during a handover: does not stop the connection decoding whole frames.
    rare = True

    def feed(self, data: bytes) -> None:
        pass


_HANDED_OVER: Final = _HandedOver()


class _Side:
    """Table entry that sends one connection's frames of a stream into a :class:`Handover`."""

    __slots__ = ("feed",)

    def __init__(self, feed: Callable[[bytes], None]) -> None:
        self.feed = feed


class Link(WSListener):
    """One WebSocket to a combined-stream endpoint.

    ``table`` maps stream names (bytes) to objects with a ``feed(payload_bytes)`` method: a
    :class:`Route`, or one side of a :class:`Handover` during a rotation. When all its routes take one
    whole-frame decoding (:class:`RouteTable`), frames are decoded first and routed by name.
    """

    __slots__ = (
        "_alone",
        "_beat_timer",
        "_fragments",
        "_fragments_size",
        "_heartbeat",
        "_held",
        "_inflight",
        "_inner",
        "_loop",
        "_next_send_at",
        "_outbox",
        "_ping_due",
        "_pong_due",
        "_queued",
        "_reader",
        "_scheduler",
        "_spacing",
        "_tap",
        "_timer",
        "_waiters",
        "by_name",
        "close_code",
        "close_reason",
        "entries",
        "heard",
        "liveness",
        "lost",
        "on_ws_frame",
        "owner",
        "retiring",
        "shutdown_notice",
        "table",
        "transport",
        "whole",
    )

    #: The frame callback picows calls: one of the ``_*_frame`` methods, picked by :meth:`use_frames`.
    on_ws_frame: Callable[[WSTransport, WSFrame], None]  # type: ignore[assignment]

    def __init__(self, owner: Connection, table: RouteTable) -> None:
        super().__init__()
        self.owner = owner
        self.table = table
        #: The table's dict, read per frame; ``whole`` and ``by_name`` are set by the table through
        #: :meth:`use_frames` (see :class:`RouteTable`): None while frames must be split by their bytes.
        self.entries = table.entries
        self.whole: Callable[[bytes], Any] | None = None
        self.by_name: dict[Any, Any] = {}
        self.on_ws_frame = self._split_frame
        #: The reader the table picked (``on_ws_frame`` unless frames are being held, see
        #: :meth:`pause_reading`), and the held frames: (payload, fin, text-not-continuation).
        self._reader: Callable[[WSTransport, WSFrame], None] = self._split_frame
        #: An observer of every frame as it arrives (metrics), or None: see :meth:`set_tap`.
        self._tap: Callable[[bytes], None] | None = owner.tap
        #: What ``on_ws_frame`` runs behind the tap: the reader, or the hold while paused.
        self._inner: Callable[[WSTransport, WSFrame], None] = self._split_frame
        self._held: deque[tuple[bytes, bool, bool]] | None = None
        self._slot(self._reader)
        table[SHUTDOWN_STREAM] = _Shutdown(self)
        table.attach(self)
        self.transport: WSTransport | None = None
        #: Set on every data frame, cleared by the health monitor when it samples it: a constant store is
        #: the cheapest proof of life on the hot path (a counter allocates an int per frame past 256).
        self.heard = False
        #: Health (core/lifecycle.py): control frames feed it directly (rare); data frames through
        #: ``heard``, which the connection's monitor samples.
        self.liveness = Liveness(owner.settings.liveness, time.monotonic())
        #: A fragmented message being reassembled (RFC 6455 5.4), and its size so far.
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0
        self.shutdown_notice = False
        #: We are closing it on purpose (rotation done, unsubscribed, manager closing).
        self.retiring = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        market = owner.settings.market
        self._scheduler = ControlScheduler(market.max_incoming_per_second,
                                           max_params_per_message=PARAMS_PER_MESSAGE)
        self._queued: dict[str, str] = {}
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._inflight: dict[int, tuple[ControlMessage, list[asyncio.Future[None]]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._outbox: deque[ControlMessage] = deque()
        self._alone: deque[tuple[tuple[str, ...], asyncio.Future[None]]] = deque()
        self._next_send_at = 0.0
        self._spacing = CONTROL_WINDOW_S / (math.floor(market.max_incoming_per_second) - CONTROL_RESERVE)
        self._heartbeat = SlidingWindow(CONTROL_RESERVE, CONTROL_WINDOW_S)
        self._pong_due: bytes | None = None
        self._ping_due = False
        self._beat_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Link {self.owner.conn_id} streams={len(self.table) - 1}>"

    # -- picows callbacks -------------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        # picows ends the socket on a protocol error (an oversized frame, say) by setting it on the future
        # wait_disconnected awaits: wait on it, so the error is logged here and not as "never retrieved"
        # at garbage collection.
        self._loop.create_task(transport.wait_disconnected()).add_done_callback(self._protocol_error)

    def _protocol_error(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: connection ended by a protocol error: %r", self.owner.conn_id, task.exception())

    # -- the hot path ----------------------------------------------------------------------------
    # picows calls ``on_ws_frame``, an instance slot holding one of the four methods below: the table
    # picks it (use_frames), so no frame pays for a branch on the mode.

    def use_frames(self, whole: Callable[[bytes], Any] | None, by_name: dict[Any, Any]) -> None:
        """Called by the table: decode frames whole with ``whole`` and hand each to ``by_name``'s feed
        for its ``stream``; with :data:`RAW_SPLIT`, split them and call ``by_name``'s raw callbacks
        directly; with None, split them and feed the routes."""
        self.whole, self.by_name = whole, by_name
        if whole is None:
            self._reader = self._split_frame
        elif whole is RAW_SPLIT:
            self._reader = self._raw_frame
        elif whole is WHOLE_DICT:
            self._reader = self._whole_dict_frame
        else:
            self._reader = self._whole_typed_frame
        if self._held is None:
            self._slot(self._reader)

    def _slot(self, reader: Callable[[WSTransport, WSFrame], None]) -> None:
        """Put ``reader`` in picows's slot, behind the tap when one is set."""
        self._inner = reader
        self.on_ws_frame = reader if self._tap is None else self._tapped_frame

    def set_tap(self, tap: Callable[[bytes], None] | None) -> None:
        """Call ``tap(payload)`` with every frame's payload as it arrives, before it is read (held frames
        included, at their arrival), or stop with None. For metrics: it costs nothing while unset."""
        self._tap = tap
        self._slot(self._inner)

    def _tapped_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        try:
            self._tap(frame.get_payload_as_bytes())  # type: ignore[misc]
        except Exception:
            log.exception("%s: frame tap %r raised", self.owner.conn_id, self._tap)
        self._inner(transport, frame)

    def _split_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # Data frames first, without asking picows for the frame type (a costly property): only a
        # combined data frame splits into a key this table holds.
        head, _, tail = frame.get_payload_as_bytes().partition(DATA_SEPARATOR)
        target = self.entries.get(head)
        if target is not None and frame.fin:
            self.heard = True
            feed = target.feed  # an attribute read, then a call: cheaper than a method call on a slot
            try:
                feed(tail[_PAYLOAD])
            except orjson.JSONDecodeError:
                # A broken payload is skipped (raising here would make picows drop the socket), and its
                # subscribers are told in the documented error shape: data was lost, not silently.
                self.owner.malformed(head, len(tail))
            except Exception:
                # Anything else a route raises, likewise: skip the frame, keep the stream.
                log.exception("%s: frame of %r skipped", self.owner.conn_id, head)
            return
        self._other_frame(transport, frame)

    def _raw_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # Every route here has one raw callback: split as _split_frame does, check the sequence from the
        # bytes (RawTarget), call it without a feed.
        head, _, tail = frame.get_payload_as_bytes().partition(DATA_SEPARATOR)
        target = self.by_name.get(head)
        if target is None or not frame.fin:
            self._split_frame(transport, frame)  # the shutdown notice, control answers, fragments
            return
        self.heard = True
        callback, name, read, tracker, admit = target
        data = tail[_PAYLOAD]
        if read is not None:
            # An id stream: the tracker's in-order case inlined, as in Route's raw feed; the first event,
            # a gap, a reset, a duplicate or unreadable ids go through the route (which reports them).
            try:
                n = read(data).n
                in_order = n == tracker.last + 1
            except Exception:
                in_order = False
            if in_order:
                tracker.last = n
            elif not admit(data):
                return
        elif admit is not None and not admit(data):
            return
        try:
            callback(RawMessage(name, data))
        except Exception:
            log.exception("callback %r raised on a message of %s", callback, name)

    def _whole_typed_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # Every route here takes one typed envelope: decode the frame once, route by its ``stream``.
        decode = self.whole  # a local: calling the slot as a method would take the slow lookup
        try:
            msg = decode(frame.get_payload_as_bytes())  # type: ignore[misc]
            feed = self.by_name[msg.stream]
        except Exception:
            # Not a data frame of this shape (a control answer, a broken payload): the byte path
            # handles it as it handles any frame, errors included.
            self._split_frame(transport, frame)
            return
        self.heard = True
        try:
            feed(msg)
        except Exception:
            log.exception("%s: frame of %r skipped", self.owner.conn_id, msg.stream)

    def _whole_dict_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # Every route here wants dicts for one callback: decode the frame once (it is the
        # {'stream', 'data'} dict a wrapped callback gets), route by ``stream``, check the sequence,
        # call, all in this one Python frame.
        try:
            msg = WHOLE_DICT(frame.get_payload_as_bytes())
            callback, tracker, key, admit, wrap = self.by_name[msg[STREAM_KEY]]
        except Exception:
            self._split_frame(transport, frame)  # as in _whole_typed_frame
            return
        self.heard = True
        try:
            data = msg[DATA_KEY]
            if key is not None:
                # The tracker's in-order case inlined, as in Route's dict feed (PROTOCOL 4.1, 4.2);
                # the first event, a gap or a duplicate go through the route. A missing id is let through.
                try:
                    n = data[key]
                except KeyError:
                    pass
                else:
                    last = tracker.last
                    if last is not None and n == last + 1:
                        tracker.last = n
                    elif not admit(msg):
                        return
            elif tracker is not None and not admit(msg):
                return
        except Exception:
            # A payload the check cannot read (not an object, an id that is not a number): skip it.
            log.exception("%s: frame of %r skipped", self.owner.conn_id, msg[STREAM_KEY])
            return
        try:
            callback(msg if wrap else data)
        except Exception:
            log.exception("callback %r raised on a message of %s", callback, msg[STREAM_KEY])

    def _other_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is _TEXT or msg_type is _CONTINUATION:
            self.heard = True
            self._text(frame.get_payload_as_bytes(), frame.fin, msg_type is _TEXT)
            return
        now = time.monotonic()
        if msg_type is _PING:
            self.liveness.server_ping(now)
            self._send_control(_PONG, frame.get_payload_as_bytes())
            return
        self.liveness.heard(now)
        self.owner.wake()  # a pong: the monitor's next question is due from now
        if msg_type is _CLOSE:
            code = frame.get_close_code()
            self.close_code = code.value
            self.close_reason = frame.get_close_reason() or ""
            if not transport.is_close_frame_sent:
                # An empty close frame reads as code 0 (1005 "no status"): neither may go on the wire.
                transport.send_close(code if sendable_close_code(self.close_code) else WSCloseCode.OK)
            transport.disconnect()

    def _text(self, payload: bytes, fin: bool, first: bool) -> None:
        """A text frame (``first``) or continuation frame off the fast path, or replayed from the hold."""
        if first:
            if fin:
                self._message(payload)
                return
            self._fragments, self._fragments_size = [], 0
        elif self._fragments is None:
            log.warning("%s: continuation frame without a message skipped", self.owner.conn_id)
            return
        self._fragment(payload, fin)

    def _hold_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """The reader while a "block" subscriber has paused the connection: frames picows already read
        are kept here, not fed, so the subscriber's queue holds its bound; control frames go on."""
        msg_type = frame.msg_type
        if msg_type is _TEXT or msg_type is _CONTINUATION:
            self.heard = True
            self._held.append((frame.get_payload_as_bytes(), frame.fin, msg_type is _TEXT))  # type: ignore[union-attr]
        else:
            self._other_frame(transport, frame)

    def _fragment(self, payload: bytes, fin: bool) -> None:
        """One frame of a fragmented message (RFC 6455 5.4): keep it, and route the whole message once its
        last frame is in. A message past MAX_MESSAGE_BYTES is dropped (and its stream told, if known)."""
        parts = self._fragments
        assert parts is not None
        if self._fragments_size >= 0:
            self._fragments_size += len(payload)
            if self._fragments_size > MAX_MESSAGE_BYTES:
                head = (parts[0] if parts else payload).partition(DATA_SEPARATOR)[0]
                log.warning("%s: fragmented message over %d bytes dropped", self.owner.conn_id,
                            MAX_MESSAGE_BYTES)
                if head in self.entries:
                    self.owner.malformed(head, self._fragments_size)
                parts.clear()
                self._fragments_size = -1  # drop the rest of this message
            else:
                parts.append(payload)
        if not fin:
            return
        self._fragments = None
        if self._fragments_size >= 0:
            self._message(b"".join(parts))

    def _message(self, buf: bytes) -> None:
        """A whole text message that did not come as one data frame of this table (reassembled from
        fragments, or serialised otherwise than the ``{"stream":...,"data":...}`` prefix expects)."""
        head, _, tail = buf.partition(DATA_SEPARATOR)
        target = self.entries.get(head)
        if target is None:
            self._other_text(buf)
        else:
            self._feed(head, target, tail[_PAYLOAD])

    def _feed(self, head: bytes, target: Any, payload: bytes) -> None:
        """Feed one payload to its table entry off the hot path, with the hot path's error handling."""
        try:
            target.feed(payload)
        except orjson.JSONDecodeError:
            self.owner.malformed(head, len(payload))
        except Exception:
            log.exception("%s: message of %r skipped", self.owner.conn_id, head)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for timer in (self._timer, self._beat_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._beat_timer = None
        closed = errors.ConnectionClosedError(f"connection closed (code {self.close_code})")
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(closed)
        for _, futures in self._inflight.values():
            for fut in futures:
                if not fut.done():
                    fut.set_exception(closed)
        for _, fut in self._alone:
            if not fut.done():
                fut.set_exception(closed)
        self._alone.clear()
        self._waiters.clear()
        self._inflight.clear()
        if not self.lost.done():
            self.lost.set_result(None)
        self.owner.forget(self)

    # -- frames other than stream data ------------------------------------------------------------
    def _other_text(self, buf: bytes) -> None:
        try:
            msg = orjson.loads(buf)
        except orjson.JSONDecodeError:
            log.warning("%s: malformed frame skipped (%d bytes)", self.owner.conn_id, len(buf))
            return
        if not isinstance(msg, dict):
            log.warning("%s: frame that is not an object skipped (%d bytes)", self.owner.conn_id, len(buf))
            return
        if "id" in msg and ("result" in msg or "error" in msg):
            self._answer(msg)
        elif msg.get("e") == "serverShutdown":
            self.notice_shutdown()
        elif isinstance(msg.get("stream"), str) and "data" in msg:
            # A combined frame serialised otherwise than the byte split expects (other whitespace or
            # key order: Binance may change it at any time): re-serialise it to the canonical form and
            # route it, rather than losing it.
            head = route_key(msg["stream"])
            target = self.entries.get(head)
            if target is not None:
                self._feed(head, target, orjson.dumps(msg["data"]))
            else:
                log.warning("%s: frame of unknown stream %r skipped", self.owner.conn_id, msg["stream"])
        else:
            log.warning("%s: unexpected frame skipped: %.200r", self.owner.conn_id, buf)

    def _answer(self, msg: dict[str, Any]) -> None:
        entry = self._inflight.pop(msg["id"], None) if isinstance(msg["id"], int) else None
        if entry is None:
            log.warning("%s: answer to an unknown request: %r", self.owner.conn_id, msg)
            return
        request, futures = entry
        error = msg.get("error")
        exc: errors.SubscriptionError | None = None
        if error is not None:
            code = error.get("code", -1) if isinstance(error, dict) else -1
            text = error.get("msg", str(error)) if isinstance(error, dict) else str(error)
            exc = errors.SubscriptionError(code, text, request.id)
        for fut in futures:
            if fut.done():
                continue
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    def notice_shutdown(self) -> None:
        self.shutdown_notice = True
        self.owner.wake()

    # -- sending ----------------------------------------------------------------------------------
    def _send_control(self, kind: WSMsgType, payload: bytes = b"") -> None:
        """Queue a pong (echoing ``payload``) or our own ping; see :meth:`_beat`."""
        if kind is _PONG:
            self._pong_due = payload
        else:
            self._ping_due = True
        if self._beat_timer is None:
            self._beat()

    def _beat(self) -> None:
        """Send the due pong and ping within their own slice of the message budget.

        Control messages use all but ``CONTROL_RESERVE`` slots of each window (the scheduler), pings and
        pongs the rest, so together they never pass the limit. A pong that has to wait answers the
        newest ping only: it settles the older ones too (PROTOCOL 2: the pong echoes the payload).
        """
        self._beat_timer = None
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        while self._pong_due is not None or self._ping_due:
            wait = self._heartbeat.acquire(time.monotonic())
            if wait:
                self._beat_timer = self._loop.call_later(wait, self._beat)
                return
            if self._pong_due is not None:
                transport.send_pong(self._pong_due)
                self._pong_due = None
            else:
                transport.send_ping(b"")
                self._ping_due = False
                self.liveness.ping_sent(time.monotonic())
                self.owner.wake()  # the monitor times the answer from now

    def ping(self) -> None:
        """Send our own ping (the health monitor expects an answer within its deadline)."""
        self._send_control(_PING)

    def request(self, method: str, streams: Iterable[str]) -> list[asyncio.Future[None]]:
        """Queue ``SUBSCRIBE`` or ``UNSUBSCRIBE`` of ``streams``; one future per stream resolves with the
        server's answer (:class:`~binance_ws.errors.SubscriptionError` on an error reply,
        :class:`~binance_ws.errors.ConnectionClosedError` if the socket closes first). Requests queued in
        the same window are merged; a subscribe and unsubscribe of one stream both still queued cancel
        out and resolve at once."""
        sched = self._scheduler
        streams = list(streams)
        if method == "SUBSCRIBE":
            sched.subscribe(streams)
        else:
            sched.unsubscribe(streams)
        futures: list[asyncio.Future[None]] = []
        for s in streams:
            queued = self._queued.get(s)
            if queued is None:
                self._queued[s] = method
                fut = self._waiters[s] = self._loop.create_future()
            elif queued == method:
                fut = self._waiters[s]
            else:
                del self._queued[s]
                self._waiters.pop(s).set_result(None)
                fut = self._loop.create_future()
                fut.set_result(None)
            futures.append(fut)
        if self._timer is None:
            self._pump()
        return futures

    def request_alone(self, method: str, streams: list[str]) -> asyncio.Future[None]:
        """Queue ``method`` of ``streams`` as a message of its own, never merged with other requests
        (to tell which stream a refusal was about); the future resolves with the answer."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self._scheduler.request(method, streams)
        self._alone.append((tuple(streams), fut))
        if self._timer is None:
            self._pump()
        return fut

    def _pump(self) -> None:
        """Release control messages: the scheduler decides how many a window allows, and they leave
        evenly spaced rather than in a burst, so that jitter between us and the server's clock cannot
        bunch two bursts into one of its one-second windows."""
        self._timer = None
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        now = time.monotonic()
        messages, delay = self._scheduler.poll(now)
        for msg in messages:
            futures = []
            if self._alone and self._alone[0][0] == msg.params:
                futures.append(self._alone.popleft()[1])
            else:
                for s in msg.params:
                    if self._queued.pop(s, None) is not None:
                        futures.append(self._waiters.pop(s))
            self._inflight[msg.id] = (msg, futures)
            self._outbox.append(msg)
        if self._outbox and now >= self._next_send_at:
            transport.send(_TEXT, self._outbox.popleft().encode())
            self._next_send_at = now + self._spacing
        waits = [self._next_send_at - now] if self._outbox else []
        if delay is not None:
            waits.append(delay)
        if waits:
            self._timer = self._loop.call_later(max(0.0, min(waits)), self._pump)

    def pause_reading(self, paused: bool) -> None:
        """Stop or resume reading the socket (back-pressure from a "block" subscriber).

        Pausing takes effect at once: the frames picows has already read (one read can hold thousands)
        are held, not fed, until resumed; resuming feeds them first, in order, and stops again if they
        pause the connection anew."""
        transport = self.transport
        live = transport is not None and not transport.is_disconnected
        if paused:
            if self._held is None:
                self._held = deque()
                self._slot(self._hold_frame)
            if live:
                transport.underlying_transport.pause_reading()  # type: ignore[union-attr]
            return
        held, self._held = self._held, None
        self._slot(self._reader)
        while held:
            if self._held is not None:
                # Paused again by what the held frames delivered: keep the rest, in order.
                self._held.extendleft(reversed(held))
                return
            self._text(*held.popleft())
        if live:
            transport.underlying_transport.resume_reading()  # type: ignore[union-attr]

    async def retire(self) -> None:
        """Close on purpose (1000) and wait for the socket to go, aborting it after CLOSE_TIMEOUT_S."""
        self.retiring = True
        transport = self.transport
        if transport is None:
            return
        if not transport.is_disconnected:
            with contextlib.suppress(Exception):
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        try:
            await asyncio.wait_for(asyncio.shield(self.lost), CLOSE_TIMEOUT_S)
        except TimeoutError:
            transport.disconnect(graceful=False)


# -- one shard ------------------------------------------------------------------------------------

class Connection:
    """One planned connection: keeps its streams on one live socket until closed or given up.

    ``routes`` is the manager's stream -> :class:`Route` table (shared, read at (re)subscription time).
    ``on_refused(conn, {stream: error})`` reports streams the server refused while (re)connecting;
    ``on_give_up(conn)`` is called once reconnecting has failed ``backoff.max_retries`` times in a row.
    ``on_link(conn, state)`` is called with ``"down"`` when the socket is lost unplanned and ``"up"``
    when a new one carries the streams again (never for a rotation). ``base_url`` overrides the market's
    stream URL (a routed path).
    """

    def __init__(self, conn_id: str, streams: Iterable[str], settings: EngineSettings,
                 routes: Mapping[str, Route], *,
                 on_refused: Callable[[Connection, dict[str, errors.SubscriptionError]], None],
                 on_give_up: Callable[[Connection], None],
                 on_link: Callable[[Connection, LinkState], None] | None = None,
                 base_url: str | None = None) -> None:
        self.conn_id = conn_id
        self.settings = settings
        #: Where this connection's sockets go (``/stream`` is appended): the market's stream URL, or
        #: one of its routed paths.
        self.base_url = base_url or settings.market.stream_url
        self.streams: dict[str, None] = dict.fromkeys(streams)
        self._routes = routes
        self._on_refused = on_refused
        self._on_give_up = on_give_up
        self._on_link = on_link
        #: Decisions across sockets (core/lifecycle.py): backoff with flap damping, the attempt budget.
        self.life = Lifecycle(settings.backoff, attempt_budget(settings.market, self.base_url),
                              stable_after_s=settings.stable_after_s)
        self.link: Link | None = None
        self.gave_up = False
        self.closing = False
        #: Counters for tests and metrics.
        self.connects = 0
        self.rotations = 0
        self.drops = 0
        #: Shown every frame of every socket of this connection (see :meth:`Link.set_tap`), or None.
        self.tap: Callable[[bytes], None] | None = None
        self._paused = False
        #: Whether a socket has carried this connection's streams yet (see _connect).
        self._confirmed = False
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._links: set[Link] = set()

    def __repr__(self) -> str:
        return f"<Connection {self.conn_id} streams={len(self.streams)} link={self.link!r}>"

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"binance-ws-{self.conn_id}")

    def wake(self) -> None:
        self._wake.set()

    def malformed(self, key: bytes, size: int) -> None:
        """A frame of the stream whose table key is ``key`` did not decode: skip it and tell that stream's
        subscribers (``errors.ERR_MALFORMED``), so a lost message is never silent."""
        stream = key[len(COMBINED_PREFIX):].decode("utf-8", "replace")
        log.warning("%s: malformed frame of %s skipped (%d bytes)", self.conn_id, stream, size)
        route = self._routes.get(stream)
        if route is not None:
            route.broadcast(errors.error_event(errors.ERR_MALFORMED, errors.MSG_MALFORMED,
                                               stream=stream, size=size))

    def set_tap(self, tap: Callable[[bytes], None] | None) -> None:
        """Show every frame of this connection's sockets, present and future, to ``tap`` (None: stop)."""
        self.tap = tap
        for link in list(self._links):
            link.set_tap(tap)

    def forget(self, link: Link) -> None:
        """A socket of this connection is gone."""
        self._links.discard(link)
        self._wake.set()

    async def wait_ready(self) -> bool:
        """Wait for the first socket with every stream subscribed; False if the connection gave up."""
        await self._ready.wait()
        return not self.gave_up

    async def close(self) -> None:
        """Stop for good: close every socket, end the supervisor task (idempotent)."""
        self.closing = True
        task = self._task
        # Cancel until it ends: a cancellation swallowed by asyncio.wait_for (Python 3.11) would
        # otherwise leave this waiting on a supervisor that reconnects for ever; ``closing`` ends its
        # loops at their next turn in any case.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("%s: supervisor ended with %r", self.conn_id, task.exception())
        self.link = None
        # Every socket this connection opened, including a replacement caught mid-rotation.
        await asyncio.gather(*(link.retire() for link in list(self._links)), return_exceptions=True)
        for retiring in list(self._retiring):
            with contextlib.suppress(asyncio.CancelledError):
                await retiring
        self._ready.set()

    # -- live changes -----------------------------------------------------------------------------
    async def subscribe(self, streams: list[str]) -> dict[str, errors.SubscriptionError]:
        """Add ``streams`` to this connection; returns those the server refused (they are dropped).

        Only queuing the request holds the connection's lock, not waiting for the answer, so that
        concurrent calls are merged into as few SUBSCRIBE messages as the rate allows. Raises
        :class:`~binance_ws.errors.ConnectionClosedError` if the connection gave up or closed.
        """
        for s in streams:
            self.streams[s] = None
        while True:
            await self._ready.wait()
            async with self._lock:
                link = self.link
                if self.gave_up or self.closing or link is None:
                    raise errors.ConnectionClosedError(f"connection {self.conn_id} is closed")
                if link.lost.done():
                    self._ready.clear()
                    continue
                futures = self._request_on(link, streams)
            try:
                refused = await self._answers(link, streams, futures)
                if refused:
                    refused = await self._isolate(link, list(refused))
            except errors.ConnectionClosedError:
                # Dropped or replaced meanwhile: the new socket carries the streams; confirm there.
                continue
            for s in refused:
                link.table.pop(route_key(s), None)
                self.streams.pop(s, None)
            return refused

    async def unsubscribe(self, streams: list[str]) -> None:
        """Remove ``streams`` from this connection (UNSUBSCRIBE on the live socket, if any)."""
        for s in streams:
            self.streams.pop(s, None)
        async with self._lock:
            link = self.link
            if link is None or link.lost.done():
                return
            # Streams the server refused were never subscribed there: nothing to undo.
            streams = [s for s in streams if route_key(s) in link.table]
            if not streams:
                return
            futures = link.request("UNSUBSCRIBE", streams)
            try:
                async with asyncio.timeout(self.settings.request_timeout_s):
                    results = await asyncio.gather(*futures, return_exceptions=True)
            except TimeoutError:
                # The server did not answer: the streams are ours to forget all the same (frames still
                # arriving for them are not routed once out of the table); a stalled socket is found
                # by the ping deadline.
                log.warning("%s: no answer to UNSUBSCRIBE of %d stream(s)", self.conn_id, len(streams))
                results = []
            for s in streams:
                if s not in self.streams:
                    link.table.pop(route_key(s), None)
            for r in results:
                if isinstance(r, errors.SubscriptionError):
                    log.warning("%s: UNSUBSCRIBE refused: %s", self.conn_id, r)

    def set_paused(self, paused: bool) -> None:
        """Pause or resume reading every socket of this connection (back-pressure)."""
        self._paused = paused
        if self.link is not None:
            self.link.pause_reading(paused)

    def route_changed(self, stream: str) -> None:
        """Point the live socket's table at the manager's current route for ``stream``."""
        link = self.link
        route = self._routes.get(stream)
        if link is not None and route is not None:
            key = route_key(stream)
            if isinstance(link.table.get(key), Route):
                link.table[key] = route

    # -- supervisor -------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._supervise()
        except Exception:
            # A bug must not stop the streams silently: subscribers get the documented error instead.
            log.exception("%s: supervisor failed", self.conn_id)
            link, self.link = self.link, None
            if link is not None:
                await link.retire()
        if self.closing:
            return  # closed on purpose (see close), not given up: subscribers get no error
        self.gave_up = True
        self.link = None
        self._ready.set()
        self._on_give_up(self)

    async def _supervise(self) -> None:
        """Keep a live socket until reconnecting fails ``max_retries`` times in a row."""
        link = await self._connect()
        recovering = False
        # ``closing`` is checked as well as the task being cancelled: on Python 3.11 asyncio.wait_for can
        # swallow a cancellation that lands as its awaitable completes, and this loop must still end.
        while link is not None and not self.closing:
            self.link = link
            self._ready.set()
            if recovering:
                recovering = False
                self._report(LINK_UP)
            reason = await self._monitor(link)
            if reason == "closing":
                return
            if reason == ROTATE:
                async with self._lock:
                    new = await self._rotate(link)
                if new is not None:
                    link = new
                    continue
                if not link.lost.done():
                    continue
            self.drops += 1
            self._ready.clear()
            if link.transport is not None and not link.transport.is_disconnected:
                link.transport.disconnect(graceful=False)  # declared dead by the protocol
            log.warning("%s: connection lost (%s, close code %s %s); reconnecting", self.conn_id, reason,
                        link.close_code, link.close_reason)
            self.link = None
            recovering = True
            self._report(LINK_DOWN)
            decision = self.life.lost(time.monotonic())
            if isinstance(decision, GiveUp):
                break
            if link.liveness.opened_at + self.life.stable_after_s > time.monotonic():
                log.warning("%s: the socket died %.1f s after opening; next attempt in %.1f s", self.conn_id,
                            time.monotonic() - link.liveness.opened_at, decision.delay_s)
            link = await self._connect()
        if self.closing:
            return
        log.error("%s: giving up after %d failed reconnects", self.conn_id, self.life.failures)

    def _report(self, state: LinkState) -> None:
        """Tell the owner the socket went down or came back (see ``on_link``)."""
        if self._on_link is not None:
            self._on_link(self, state)

    async def _connect(self) -> Link | None:
        """Open a socket with every stream when the lifecycle allows (backoff, attempt budget), retrying;
        None once the retries are spent."""
        life = self.life
        while not self.closing:
            decision = life.attempt(time.monotonic())
            if isinstance(decision, Wait):
                if decision.reason != "backoff":
                    log.warning("%s: %s exhausted; waiting %.1f s", self.conn_id, decision.reason,
                                decision.delay_s)
                await self._pause(decision.delay_s)
                continue
            try:
                # The first socket SUBSCRIBEs its streams after connecting, so that the server's answer
                # names any it refuses (a name in the handshake URL that it does not know is accepted and
                # stays silent, as on Binance); later sockets carry the confirmed names in the URL.
                link = await self._open(list(self.streams), RouteTable(), counted=True,
                                        in_url=self._confirmed)
            except errors.RateLimitError as exc:
                log.warning("%s: %s", self.conn_id, exc)
                outcome = life.failed(time.monotonic(), exc.retry_after)
            except (TimeoutError, OSError, WSError, errors.ConnectionClosedError) as exc:
                log.warning("%s: connect failed: %s", self.conn_id, exc or type(exc).__name__)
                outcome = life.failed(time.monotonic())
            else:
                life.opened(time.monotonic())
                self._confirmed = True
                return link
            if isinstance(outcome, GiveUp):
                return None
        return None

    async def _pause(self, delay_s: float) -> None:
        """Sleep ``delay_s``, or less if the connection is closed meanwhile."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay_s)

    def _url(self, streams: list[str]) -> tuple[str, list[str]]:
        """The handshake URL holding as many of ``streams`` as fit, and the rest (to SUBSCRIBE)."""
        base = f"{self.base_url}/stream"
        budget = MAX_URL_CHARS - len(base) - len("?streams=")
        in_url: list[str] = []
        for s in streams:
            cost = len(s) + 1
            if cost > budget:
                break
            budget -= cost
            in_url.append(s)
        rest = streams[len(in_url):]
        if not in_url:
            return base, rest
        return f"{base}?streams={'/'.join(in_url)}", rest

    async def _open(self, streams: list[str], table: RouteTable,
                    target: Callable[[str], Any] | None = None, *, in_url: bool = True,
                    counted: bool = False) -> Link:
        """Connect and subscribe ``streams``; ``target(stream)`` gives each table entry (default: its
        route). Streams ride in the handshake URL when ``in_url``; if the server refuses the URL (400:
        one of them is unknown), they are subscribed after connecting instead, so that the refused ones
        are named. Raises RateLimitError on 429/418, OSError/WSError/TimeoutError on failure. ``counted``:
        the attempt was already counted against the attempt budget (by the lifecycle)."""
        settings = self.settings
        if not counted:
            await acquire_connection_slot(settings.market, self.base_url)
        self.connects += 1
        pick = target or self._routes.get
        for s in streams:
            entry = pick(s)
            if entry is not None:
                table[route_key(s)] = entry
        link = Link(self, table)
        self._links.add(link)
        url, rest = self._url(streams if in_url else [])
        if not in_url:
            rest = streams
        try:
            await asyncio.wait_for(
                ws_connect(lambda: link, url, enable_auto_pong=False,
                           websocket_handshake_timeout=settings.handshake_timeout_s,
                           logger_name=_PICOWS_LOG),
                settings.handshake_timeout_s)
        except BaseException as exc:
            self._links.discard(link)
            if link.transport is not None:
                link.transport.disconnect(graceful=False)
            if not isinstance(exc, WSHandshakeError):
                raise
            status = exc.response.status if exc.response is not None else None
            if status is not None and int(status) in RATE_LIMIT_STATUSES:
                raise errors.RateLimitError(f"handshake answered HTTP {int(status)}", status=int(status),
                                            retry_after=_retry_after(exc)) from None
            if status is not None and int(status) == BAD_REQUEST and in_url and len(rest) < len(streams):
                return await self._open(streams, table, target, in_url=False)  # a new attempt, counted
            raise
        if self._paused:
            link.pause_reading(True)
        if rest:
            try:
                refused = await self._subscribe_on(link, rest)
            except BaseException:
                await link.retire()
                raise
            if refused:
                for s in refused:
                    self.streams.pop(s, None)
                self._on_refused(self, refused)
        return link

    def _request_on(self, link: Link, streams: list[str]) -> list[asyncio.Future[None]]:
        """Route ``streams`` on ``link`` (frames may arrive before the answer) and queue the SUBSCRIBE."""
        for s in streams:
            key = route_key(s)
            if key not in link.table:
                route = self._routes.get(s)
                if route is not None:
                    link.table[key] = route
        return link.request("SUBSCRIBE", streams)

    async def _answers(self, link: Link, streams: list[str],
                       futures: list[asyncio.Future[None]]) -> dict[str, errors.SubscriptionError]:
        """Wait for the answers to a SUBSCRIBE; returns the refused streams. Raises ConnectionClosedError
        if the socket closes first or (after dropping it) does not answer in time."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 a wait_for cancelled with its task leaves the
            # gather's CancelledError unretrieved, and asyncio logs it on stderr at exit.
            async with asyncio.timeout(self.settings.request_timeout_s + len(futures) / 4):
                results = await asyncio.gather(*futures, return_exceptions=True)
        except TimeoutError:
            log.warning("%s: no answer to SUBSCRIBE; dropping the socket", self.conn_id)
            if link.transport is not None:
                link.transport.disconnect(graceful=False)
            raise errors.ConnectionClosedError("no answer to SUBSCRIBE") from None
        refused: dict[str, errors.SubscriptionError] = {}
        for s, r in zip(streams, results, strict=True):
            if isinstance(r, errors.SubscriptionError):
                refused[s] = r
            elif isinstance(r, BaseException):
                raise errors.ConnectionClosedError(str(r)) from r
        return refused

    async def _isolate(self, link: Link, streams: list[str]) -> dict[str, errors.SubscriptionError]:
        """Name the culprits among refused ``streams``: a SUBSCRIBE is all-or-nothing (one unknown name
        fails the whole message, which may have merged several callers' streams), so halves are retried
        as messages of their own until each refusal is about one stream; the valid ones end up
        subscribed. Raises ConnectionClosedError if the socket closes meanwhile."""
        half = len(streams) // 2
        refused: dict[str, errors.SubscriptionError] = {}
        for part in ((streams[:half], streams[half:]) if half else (streams,)):
            try:
                async with asyncio.timeout(self.settings.request_timeout_s):  # not wait_for: see _answers
                    results = await asyncio.gather(link.request_alone("SUBSCRIBE", part),
                                                   return_exceptions=True)
            except TimeoutError:
                # As in _answers: a server that stopped answering is dropped, and the caller retries on
                # the next socket.
                log.warning("%s: no answer to SUBSCRIBE; dropping the socket", self.conn_id)
                if link.transport is not None:
                    link.transport.disconnect(graceful=False)
                raise errors.ConnectionClosedError("no answer to SUBSCRIBE") from None
            outcome = results[0]
            if isinstance(outcome, errors.SubscriptionError):
                if len(part) == 1:
                    refused[part[0]] = outcome
                else:
                    refused.update(await self._isolate(link, part))
            elif isinstance(outcome, BaseException):
                raise errors.ConnectionClosedError(str(outcome)) from outcome
        return refused

    async def _subscribe_on(self, link: Link, streams: list[str]) -> dict[str, errors.SubscriptionError]:
        """SUBSCRIBE ``streams`` on ``link`` and wait for the answers; returns the refused ones (removed
        from the link's table). Raises ConnectionClosedError like :meth:`_answers`."""
        refused = await self._answers(link, streams, self._request_on(link, streams))
        if refused:
            refused = await self._isolate(link, list(refused))
        for s in refused:
            link.table.pop(route_key(s), None)
        return refused

    async def _monitor(self, link: Link) -> str:
        """Watch ``link`` until it is lost ("lost"), dead by the protocol (no pong, or the server stopped
        pinging), due for replacement (ROTATE: age or serverShutdown) or the connection is closing
        ("closing"). Silence alone only makes it ping (core/lifecycle.py)."""
        live = link.liveness
        life = self.life
        while True:
            if self.closing:
                return "closing"
            if link.lost.done():
                return "lost"
            if link.shutdown_notice:
                return ROTATE
            now = time.monotonic()
            if link.heard or self._paused:
                # Data since the last look (a paused socket cannot be heard: not its fault).
                link.heard = False
                live.heard(now)
            life.settle(now)
            action = live.poll(now)
            if action is PING:
                link.ping()
            elif action is not None:
                if action != ROTATE:
                    log.warning("%s: %s; dropping the socket", self.conn_id, action)
                return action
            wake_at = live.next_check(now)
            quiet_after = self.settings.no_data_timeout_s
            if quiet_after:
                wake_at = min(wake_at, self._watch_silence(now, quiet_after))
            if life.open_at is not None and life.failures:
                wake_at = min(wake_at, life.open_at + life.stable_after_s)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wake_at - now, 0.001))

    def _watch_silence(self, now: float, quiet_after: float) -> float:
        """Report each stream silent for ``quiet_after`` seconds to its subscribers, once per silence
        (``errors.ERR_QUIET``); returns when to look again. The connection is not touched."""
        next_look = now + quiet_after / 4
        for stream in self.streams:
            route = self._routes.get(stream)
            if route is None or not route.watched:
                continue
            if route.heard or route.heard_at is None:
                route.heard, route.heard_at, route.quiet = False, now, False
            elif not route.quiet and now - route.heard_at >= quiet_after:
                route.quiet = True
                route.quiet_events += 1
                route.broadcast(errors.error_event(errors.ERR_QUIET, errors.MSG_QUIET, stream=stream,
                                                   silent_s=round(now - route.heard_at, 3)))
        return next_look

    async def _rotate(self, old: Link) -> Link | None:
        """Make-before-break: open a replacement with the same streams, hand each stream over without
        loss or duplicates, retire ``old``. Returns the new link, or None if the replacement failed
        (``old`` is kept if it is still up)."""
        reason = "serverShutdown" if old.shutdown_notice else "age"
        streams = [s for s in self.streams if route_key(s) in old.table]
        table = RouteTable()
        handovers: dict[str, Handover] = {}
        remaining = 0
        all_switched = asyncio.Event()

        def switched(stream: str) -> None:
            nonlocal remaining
            key = route_key(stream)
            route = self._routes.get(stream)
            if route is not None:
                table[key] = route
            else:
                table.pop(key, None)
            old.table[key] = _HANDED_OVER
            remaining -= 1
            if remaining <= 0:
                all_switched.set()

        for s in streams:
            route = self._routes.get(s)
            if route is None:
                continue
            handover = handovers[s] = Handover(route, functools.partial(switched, s))
            old.table[route_key(s)] = _Side(handover.from_old)
        remaining = len(handovers)
        if not handovers:
            all_switched.set()
        try:
            new = await self._open(streams, table, self._handover_target(handovers))
        except (TimeoutError, OSError, WSError, errors.ConnectionClosedError, errors.RateLimitError) as exc:
            retry_after = exc.retry_after if isinstance(exc, errors.RateLimitError) else None
            delay = self.life.deferred(time.monotonic(), retry_after or 0.0)
            log.warning("%s: replacement socket failed (%s); keeping the old one, next try in %.1f s",
                        self.conn_id, exc, delay)
            for s in handovers:
                route = self._routes.get(s)
                if route is not None:
                    old.table[route_key(s)] = route
            old.shutdown_notice = False
            old.liveness.postpone_rotation(time.monotonic(), delay)
            return None
        self.rotations += 1
        log.info("%s: rotating (%s): replacement up, handing %d stream(s) over", self.conn_id, reason,
                 len(streams))
        # The old socket's death ends the wait. After the grace period, streams the new socket has
        # said nothing on are switched (anything published before it subscribed has reached us on the
        # old one by then); streams where it is ahead wait for the old one to catch up, a while longer.
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(all_switched.wait()),
                                            asyncio.ensure_future(asyncio.shield(old.lost))]
        try:
            for grace in (self.settings.handover_grace_s,
                          self.settings.handover_grace_s * HANDOVER_CATCH_UP_GRACES):
                done, _ = await asyncio.wait(waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
                if done:
                    break
                for handover in handovers.values():
                    if not handover.holding:
                        handover.force()
                if not any(handover.holding for handover in handovers.values()):
                    break
        finally:
            for waiting in waits:
                waiting.cancel()
        for handover in handovers.values():
            handover.force()
        all_switched.set()
        self.link = new
        self._retire_later(old)
        return new

    def _handover_target(self, handovers: dict[str, Handover]) -> Callable[[str], Any]:
        """Table entries for a replacement socket: the new side of each stream's handover."""
        def target(stream: str) -> Any:
            handover = handovers.get(stream)
            return _Side(handover.from_new) if handover is not None else self._routes.get(stream)
        return target

    def _retire_later(self, link: Link) -> None:
        task = asyncio.create_task(link.retire(), name=f"binance-ws-{self.conn_id}-retire")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
