"""The one interface every sink (files, Redis) implements, and the pump that feeds it.

A sink receives batches of :class:`Entry` (local receive time, stream name, payload bytes exactly as
received) and :class:`Marker` lines (gaps, resets, reconnects, snapshots, anything that is not a
payload). The pump reads one raw subscription with ``overflow="block"`` (so a slow sink slows the
socket's reading, never loses a message), drains everything queued in one event-loop turn into one
batch, and awaits the sink's ``write`` before taking the next batch: one batch in flight per pump.

Receive times are stamped when the pump takes a batch off the subscription's queue: under load that is
at most one batch later than the frame's arrival, and never out of order within a stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from binance_ws.engine.delivery import RawMessage, Subscription
from binance_ws.errors import ConnectionClosedError

#: Most messages one batch takes off the subscription (a bound on a sink's write size).
MAX_BATCH = 4096


class Entry(NamedTuple):
    """One payload: local receive time (ns since the epoch), its stream name, its bytes as received."""

    received_ns: int
    stream: str
    data: bytes


class Marker(NamedTuple):
    """Something that is not a payload: ``kind`` is the error event's ``type`` (``gap``, ``reset``,
    ``quiet``, ``subscription``...), ``"error"`` for one without a type, or a sink-level kind
    (``link_down``, ``link_up``, ``snapshot``); ``detail`` is the event itself."""

    received_ns: int
    kind: str
    detail: Mapping[str, Any]


class Sink(Protocol):
    """Where collected messages go. Every method is called from the event loop's thread."""

    async def write(self, entries: Sequence[Entry]) -> None:
        """Store ``entries`` (in arrival order). Raise to stop the pump: nothing is dropped silently."""

    async def mark(self, marker: Marker) -> None:
        """Store a marker in order with the entries (a sink with nowhere to put it may ignore it)."""

    async def close(self) -> None:
        """Flush and release everything; called once, after the last write."""


class Pump:
    """Feeds ``sink`` from ``subscription`` (subscribed with ``decode="raw"``, ``overflow="block"``).

    ``run()`` returns when the subscription ends; ``written`` and ``marked`` count what reached the sink.
    """

    def __init__(self, subscription: Subscription, sink: Sink, *,
                 clock: Callable[[], int] = time.time_ns, max_batch: int = MAX_BATCH,
                 on_batch: Callable[[Sequence[Entry]], Awaitable[None] | None] | None = None) -> None:
        if subscription.decode != "raw" or subscription.callback is not None:
            raise ValueError("a pump reads a queue subscription with decode='raw'")
        self.subscription = subscription
        self.sink = sink
        self.clock = clock
        self.max_batch = max_batch
        self.on_batch = on_batch
        self.written = 0
        self.marked = 0

    async def run(self) -> None:
        sub = self.subscription
        while True:
            try:
                first = await sub.recv()
            except ConnectionClosedError:
                return
            now = self.clock()
            batch: list[Entry] = []
            msg: Any = first
            while True:
                if isinstance(msg, RawMessage):
                    batch.append(Entry(now, msg.stream, msg.data))
                else:
                    if batch:
                        await self._write(batch)
                        batch = []
                    await self.sink.mark(Marker(now, str(msg.get("type", "error")), msg))
                    self.marked += 1
                if len(batch) >= self.max_batch:
                    break
                try:
                    msg = sub.recv_nowait()
                except asyncio.QueueEmpty:
                    break
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[Entry]) -> None:
        await self.sink.write(batch)
        self.written += len(batch)
        if self.on_batch is not None:
            result = self.on_batch(batch)
            if result is not None:
                await result
