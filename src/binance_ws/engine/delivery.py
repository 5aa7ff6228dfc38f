"""Delivery: how a decoded (or raw) message reaches one subscriber, and what happens when it is slow.

A :class:`Subscription` is what :meth:`AsyncSocketManager.subscribe` returns. It is either a callback
subscriber (called inline on the event-loop thread: the fastest path) or a queue subscriber read with
``await sub.recv()`` / ``async for msg in sub``. A queue is bounded and has an overflow policy:

- ``"block"``: back-pressure, nothing dropped, and the queue stays within ``queue_size``. When the
  queue is full the connections that feed it are paused, and a pause takes effect at once: the frames
  picows had already read (one read can hold thousands) are held by the connection, not fed
  (``Link.pause_reading``). Reading resumes once the reader has drained the queue to half, held frames
  first. ``peak`` is the most messages the queue ever held.
- ``"drop_oldest"`` / ``"drop_newest"``: discard the oldest queued message, or the incoming one.
- ``"keep_latest"``: conflation. At most one pending message per stream, the newest; ``queue_size``
  bounds the number of streams with something pending (past it the oldest pending stream's message is
  dropped).

Overflow never ends a subscription; it is counted in ``dropped``. Error events (``{'e': 'error', ...}``,
see :mod:`binance_ws.errors`) go through the same path and are never conflated or dropped.

A subscriber may also hear about the socket carrying its streams through an ``on_link(state, streams)``
hook (:data:`LinkHook`), called on the loop thread: ``"down"`` when that socket was lost unplanned
(``streams`` may have missed messages), ``"up"`` once a new socket carries them again. A
make-before-break rotation loses nothing and is not reported. The hook costs nothing per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final, Literal

import msgspec

from binance_ws.errors import ConnectionClosedError

log = logging.getLogger("binance_ws.engine")

OverflowPolicy = Literal["block", "drop_oldest", "drop_newest", "keep_latest"]
OVERFLOW_POLICIES: tuple[OverflowPolicy, ...] = ("block", "drop_oldest", "drop_newest", "keep_latest")

#: What a subscriber asks the router for: the payload dict, raw bytes, or a typed decoder (a callable
#: taking the payload bytes, e.g. ``binance_ws.models.decoder_for(name)``), applied once per frame;
#: ``"typed"`` asks the manager to pick the models' decoder for the streams' kind.
Decoder = Callable[[bytes], Any]
DecodeMode = Literal["dict", "raw", "typed"] | Decoder

#: Default bound of a queue subscriber (python-binance's was 100 and overflow killed the stream).
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_OVERFLOW: OverflowPolicy = "drop_oldest"


class RawMessage(msgspec.Struct, frozen=True, gc=False):
    """A message delivered with ``decode="raw"``: the stream name and the payload's JSON bytes.

    A msgspec Struct rather than a NamedTuple: it is built once per frame on the raw hot path, and a
    Struct costs about a fifth of a NamedTuple's ``__new__``. It still unpacks (``stream, data = msg``)."""

    stream: str
    data: bytes

    def __iter__(self) -> Iterator[Any]:
        yield self.stream
        yield self.data


#: The state of the socket carrying a subscriber's streams, as reported to its :data:`LinkHook`.
LinkState = Literal["down", "up"]
#: ``"down"``: the socket was lost unplanned (dropped, closed by the server, or silent past the ping or
#: no-data deadline); messages may have been missed since. After it, either ``"up"`` or, if reconnecting
#: fails ``max_reconnects`` times, the max-retries error event.
LINK_DOWN: Final[LinkState] = "down"
#: ``"up"``: a new socket is open and the streams are subscribed on it again (live).
LINK_UP: Final[LinkState] = "up"
#: A subscriber's link hook: ``hook(state, streams)`` with the subscriber's streams that the socket
#: carries, called on the loop thread.
LinkHook = Callable[[LinkState, tuple[str, ...]], None]

#: Flow-control hook the manager installs on a "block" subscriber: called with True to pause reading
#: the sockets that feed it, False to resume.
FlowHook = Callable[[bool], None]


class Subscription:
    """One subscriber of one or more streams: its delivery mode, counters and (for queues) its reader.

    Counters (queue subscribers): ``delivered`` counts messages returned by ``recv``; ``dropped`` counts
    messages discarded by the overflow policy. A callback subscriber has no queue, so nothing to count.
    Use it as an async context manager to unsubscribe on exit.
    """

    def __init__(
        self,
        streams: Iterable[str],
        callback: Callable[[Any], Any] | None = None,
        *,
        wrap: bool = False,
        decode: DecodeMode = "dict",
        queue_size: int = DEFAULT_QUEUE_SIZE,
        overflow: OverflowPolicy = DEFAULT_OVERFLOW,
        on_close: Callable[[Subscription], Awaitable[None]] | None = None,
        on_link: LinkHook | None = None,
    ) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if wrap and decode != "dict":
            raise ValueError("wrap=True delivers {'stream', 'data'} dicts; it needs decode='dict'")
        self.streams: tuple[str, ...] = tuple(dict.fromkeys(streams))
        self.callback = callback
        self.wrap = wrap
        self.decode: DecodeMode = decode
        self.queue_size = queue_size
        self.overflow: OverflowPolicy = overflow
        #: Told when the socket carrying these streams goes down or comes back (see :data:`LinkHook`).
        self.on_link = on_link
        self.delivered = 0
        self.dropped = 0
        #: Set once the subscription ends (unsubscribed, manager closed, or every stream given up).
        self.closed = False
        self._on_close = on_close
        self._flow: FlowHook | None = None
        self._paused = False
        #: Under "block": the most messages the queue ever held (0 under the other policies).
        self.peak = 0
        self._queue: deque[Any] = deque()
        self._latest: OrderedDict[object, Any] = OrderedDict()
        self._waiter: asyncio.Future[None] | None = None
        self._error_seq = 0
        # The router calls ``push(stream, msg)``; pick the implementation once instead of branching
        # per message.
        self.push: Callable[[str, Any], None]
        if callback is not None:
            self.push = self._push_callback
        elif overflow == "keep_latest":
            self.push = self._push_latest
        else:
            self.push = self._push_queue

    def __repr__(self) -> str:
        mode = "callback" if self.callback is not None else f"queue({self.queue_size}, {self.overflow})"
        return (f"<Subscription {len(self.streams)} stream(s) {mode} delivered={self.delivered} "
                f"dropped={self.dropped}{' closed' if self.closed else ''}>")

    # -- what the router calls --------------------------------------------------------------------
    def _push_callback(self, stream: str, msg: Any) -> None:
        try:
            self.callback(msg)  # type: ignore[misc]
        except Exception:
            # A subscriber's bug must not end its stream nor other subscribers' delivery.
            log.exception("callback %r raised on a message of %s", self.callback, stream)

    def _push_queue(self, stream: str, msg: Any) -> None:
        queue = self._queue
        if len(queue) >= self.queue_size:
            policy = self.overflow
            if policy == "drop_oldest":
                queue.popleft()
                self.dropped += 1
            elif policy == "drop_newest":
                self.dropped += 1
                return
            # "block" never drops: only an error event can arrive once the queue is full and paused.
        queue.append(msg)
        if self.overflow == "block":
            self._block()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _block(self) -> None:
        """Under "block": track the peak, and pause the feeding sockets once the queue is full (the pause
        is immediate, so nothing more is fed until the reader has made room)."""
        n = len(self._queue)
        if n > self.peak:
            self.peak = n
        if n >= self.queue_size and not self._paused and self._flow is not None:
            self._paused = True
            self._flow(True)

    def _push_latest(self, stream: str, msg: Any) -> None:
        latest = self._latest
        if stream in latest:
            self.dropped += 1
            latest[stream] = msg
        else:
            if len(latest) >= self.queue_size:
                latest.popitem(last=False)
                self.dropped += 1
            latest[stream] = msg
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push_event(self, event: dict[str, Any]) -> None:
        """Deliver an error event: never conflated, never dropped by the overflow policy."""
        if self.callback is not None:
            self._push_callback("", event)
            return
        if self.overflow == "keep_latest":
            self._error_seq += 1
            self._latest[("error", self._error_seq)] = event
        else:
            self._queue.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def link_changed(self, state: LinkState, streams: tuple[str, ...]) -> None:
        """Call the ``on_link`` hook (if any) with ``state`` and the affected ``streams``."""
        hook = self.on_link
        if hook is None:
            return
        try:
            hook(state, streams)
        except Exception:
            # A subscriber's bug must not stop the connection that reports to it.
            log.exception("link hook %r raised on %s", hook, state)

    def set_flow_hook(self, hook: FlowHook | None) -> None:
        """Install the manager's pause/resume hook (used by the "block" policy)."""
        self._flow = hook

    def _finish(self) -> None:
        """Mark the subscription ended and wake a pending reader (it drains, then stops)."""
        self.closed = True
        if self._paused and self._flow is not None:
            self._resume()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the reader side --------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Messages waiting in the queue."""
        return len(self._queue) + len(self._latest)

    def _take(self) -> Any:
        if self._latest:
            return self._latest.popitem(last=False)[1]
        msg = self._queue.popleft()
        if self._paused and len(self._queue) <= self.queue_size // 2:
            self._resume()
        return msg

    def _resume(self) -> None:
        """Resume reading (the held frames come first, and may pause it again)."""
        self._paused = False
        if self._flow is not None:
            self._flow(False)

    async def recv(self) -> Any:
        """The next message (payload, ``{'stream','data'}`` wrapper, :class:`RawMessage`, or error event).

        Raises :class:`ConnectionClosedError` once the subscription has ended and its queue is empty,
        and ``TypeError`` on a callback subscription (it has no queue).
        """
        if self.callback is not None:
            raise TypeError("a callback subscription has no queue to read")
        while not (self._queue or self._latest):
            if self.closed:
                raise ConnectionClosedError("subscription closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.delivered += 1
        return self._take()

    def recv_nowait(self) -> Any:
        """The next queued message, or raise ``asyncio.QueueEmpty``."""
        if not (self._queue or self._latest):
            raise asyncio.QueueEmpty
        self.delivered += 1
        return self._take()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.recv()
        except ConnectionClosedError:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        """Unsubscribe (idempotent): the streams no other subscriber needs are unsubscribed live."""
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            await on_close(self)
        self._finish()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
