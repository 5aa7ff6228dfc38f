"""Stream fan-out inside the simulator: feeds publish payloads by stream name, connections receive frames.

Each payload is encoded once per variant actually needed (raw or combined, ms or µs), whatever the
number of subscribers. Fault filters (skip, duplicate, reorder) sit here so they apply to every
source: the synthetic feeds and replays alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson

from binance_ws.sim.wire import combined, to_microseconds


class Subscriber(Protocol):
    """A connection as the hub sees it."""

    #: Wrap payloads as ``{"stream":..., "data":...}``.
    combined: bool
    #: Deliver times in microseconds.
    micro: bool

    def send(self, frame: bytes) -> None: ...

    async def drained(self) -> None:
        """Return once the connection's send buffer is below its high-water mark."""


#: ``filter(stream, payload) -> payloads to publish instead`` (empty: skip; two: duplicate; ...).
PublishFilter = Callable[[str, Any], Iterable[Any]]


class StreamHub:
    """Who listens to which stream, and delivery of each published payload to them."""

    def __init__(self) -> None:
        self._subs: dict[str, dict[Subscriber, None]] = {}
        #: Optional fault filter applied to every published payload (set by ``Faults``).
        self.filter: PublishFilter | None = None
        #: Called with a stream name when its first subscriber arrives (feeds may start work for it).
        self.on_first_subscriber: Callable[[str], None] | None = None
        self.published = 0
        #: Bumped whenever a stream gains its first subscriber or loses its last (feeds cache by it).
        self.version = 0

    # -- subscriptions ----------------------------------------------------------------------------
    def attach(self, stream: str, sub: Subscriber) -> None:
        subs = self._subs.get(stream)
        if subs is None:
            subs = self._subs[stream] = {}
            self.version += 1
            if self.on_first_subscriber is not None:
                self.on_first_subscriber(stream)
        subs[sub] = None

    def detach(self, stream: str, sub: Subscriber) -> None:
        subs = self._subs.get(stream)
        if subs is not None:
            subs.pop(sub, None)
            if not subs:
                del self._subs[stream]
                self.version += 1

    def detach_all(self, sub: Subscriber, streams: Iterable[str]) -> None:
        for stream in streams:
            self.detach(stream, sub)

    def has_subscribers(self, stream: str) -> bool:
        return stream in self._subs

    def subscribed_streams(self) -> list[str]:
        return list(self._subs)

    async def drained(self, stream: str | None = None) -> None:
        """Wait until every subscriber (of ``stream``, or of any stream) can take more: replay's pacing
        "as fast as the client reads"."""
        if stream is None:
            subs = {s: None for group in self._subs.values() for s in group}
        else:
            subs = dict(self._subs.get(stream, {}))
        for sub in subs:
            await sub.drained()

    # -- publishing -------------------------------------------------------------------------------
    def publish(self, stream: str, payload: Any) -> None:
        """Send ``payload`` (a dict or list in Binance's format, times in ms) to the stream's subscribers."""
        if stream not in self._subs:
            return
        if self.filter is not None:
            for item in self.filter(stream, payload):
                self._deliver(stream, item, None)
            return
        self._deliver(stream, payload, None)

    def publish_encoded(self, stream: str, encoded: bytes, payload: Any = None) -> None:
        """Send an already-encoded payload (replay).

        ``payload`` is decoded lazily if a µs subscriber or a filter needs it."""
        if stream not in self._subs:
            return
        if self.filter is not None:
            for item in self.filter(stream, payload if payload is not None else orjson.loads(encoded)):
                self._deliver(stream, item, None)
            return
        self._deliver(stream, payload, encoded)

    def _deliver(self, stream: str, payload: Any, encoded: bytes | None) -> None:
        subs = self._subs.get(stream)
        if not subs:
            return
        self.published += 1
        frames: dict[tuple[bool, bool], bytes] = {}
        for sub in list(subs):
            key = (sub.combined, sub.micro)
            frame = frames.get(key)
            if frame is None:
                if sub.micro:
                    if payload is None:
                        payload = orjson.loads(encoded)  # type: ignore[arg-type]
                    body = orjson.dumps(to_microseconds(payload))
                else:
                    if encoded is None:
                        encoded = orjson.dumps(payload)
                    body = encoded
                frame = combined(stream, body) if sub.combined else body
                frames[key] = frame
            sub.send(frame)
