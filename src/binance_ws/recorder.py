"""The recorder: streams into a sink, with REST depth snapshots beside the diff streams and markers for
what went wrong. What ``binance-ws record`` runs; usable on its own in a program.

``Recorder(manager, names, sink)`` subscribes ``names`` (raw bytes, ``overflow="block"``: a slow disk
slows reading, nothing is dropped) and pumps them into ``sink`` (:class:`~binance_ws.sinks.base.Pump`).
Besides the messages it files:

- a REST depth snapshot (a ``snapshot`` marker) of each symbol with a diff depth stream whenever the sink
  opens a file for it (:class:`~binance_ws.sinks.files.FileSink`'s ``on_open``), every
  ``snapshot_interval_s``, and after each gap or reconnect of that symbol's streams, so any one file
  rebuilds its book from its own lines; snapshots share one REST weight budget
  (:class:`~binance_ws.depthcache.SnapshotService`), never more than its share of the market's limit,
  and periodic ones wait while a new file's or a resync's snapshot is queued (on spot, 1000 levels cost
  50 weight: about 100 snapshots a minute; ``snapshot_limit=100`` costs 5);
- ``link_down`` / ``link_up`` markers when the socket carrying some streams is lost and when they are
  back, in order with the messages, beside the engine's own ``gap`` / ``reset`` error events.

A snapshot is filed as its body re-serialised compactly (the JSON Binance sends is compact already).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import orjson

from binance_ws import errors
from binance_ws import streams as _streams
from binance_ws.depthcache import SnapshotService
from binance_ws.engine.delivery import Subscription
from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.sinks.base import Entry, Marker, Pump, Sink
from binance_ws.sinks.files import GAP_KINDS, LINK_DOWN, LINK_UP, SNAPSHOT, FileSink

#: Default snapshot size and period: 1000 levels a side (weight 50 spot / 20 futures), every 10 minutes
#: (200 symbols: 1000 weight a minute on spot, a sixth of the limit).
DEFAULT_SNAPSHOT_LIMIT: Final = 1000
DEFAULT_SNAPSHOT_INTERVAL_S: Final = 600.0
#: How often the recorder ticks its sink (flushes, midnight closes) and checks for due snapshots.
TICK_S: Final = 0.25
#: Queue bound of the recorder's subscription (``overflow="block"`` pauses the sockets past it).
QUEUE_SIZE: Final = 50_000


class RecorderGaveUp(errors.BinanceWSError):
    """The engine gave up reconnecting: the streams have stopped (the marker is filed first)."""


def depth_symbols(names: Iterable[str], market: Any) -> set[str]:
    """Uppercase symbols of the diff depth streams among ``names`` (those a book is rebuilt from)."""
    out = set()
    for name in names:
        info = _streams.parse_stream(name, market)
        if info.kind == "depth" and info.symbol:
            out.add(info.symbol.upper())
    return out


class Recorder:
    """Records ``names`` from ``manager`` into ``sink``; :meth:`run` until the subscription ends or the
    task is cancelled, then the sink is closed.

    A :class:`~binance_ws.sinks.files.FileSink` without an ``on_open`` hook gets :meth:`file_opened`, so
    each new file starts with a snapshot. ``snapshot_interval_s`` (0: only on new files, gaps and
    reconnects) and ``snapshot_limit`` set the depth snapshots; ``snapshots`` overrides the REST
    snapshot service (its budget and concurrency).
    ``on_tick(recorder)`` is called every :data:`TICK_S` (a status line); more such hooks (metrics) may
    be appended to ``tick_hooks``. ``clock`` stamps receive times (ns since the epoch).
    """

    def __init__(self, manager: AsyncSocketManager, names: Iterable[str], sink: Sink, *,
                 snapshot_interval_s: float = DEFAULT_SNAPSHOT_INTERVAL_S,
                 snapshot_limit: int = DEFAULT_SNAPSHOT_LIMIT, snapshots: SnapshotService | None = None,
                 on_tick: Callable[[Recorder], None] | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.manager = manager
        self.names = list(names)
        self.sink = sink
        self.snapshot_interval_s = snapshot_interval_s
        self.snapshot_limit = snapshot_limit
        self.depth_symbols = depth_symbols(self.names, manager.market)
        self.snapshots = snapshots or SnapshotService(manager.market)
        #: Called with the recorder every :data:`TICK_S`, in order.
        self.tick_hooks: list[Callable[[Recorder], None]] = [on_tick] if on_tick is not None else []
        self.clock = clock
        self.subscription: Subscription | None = None
        self.pump: Pump | None = None
        #: Snapshots filed, and those that failed (answered other than 200, or not at all).
        self.snapshots_taken = 0
        self.snapshots_failed = 0
        self._last_snapshot: dict[str, float] = {}
        self._pending: list[Marker] = []
        if isinstance(sink, FileSink) and sink.on_open is None:
            sink.on_open = self.file_opened

    # -- what the sink and the engine call ---------------------------------------------------------
    def file_opened(self, group: str, symbol: str | None) -> None:
        """The sink opened a file for ``group``: snapshot its book if it has one (FileSink's ``on_open``)."""
        if symbol is not None and symbol in self.depth_symbols:
            self.request_snapshot(symbol)

    def request_snapshot(self, symbol: str) -> None:
        """Queue a REST depth snapshot of ``symbol`` (not doubled while one is queued)."""
        self._last_snapshot[symbol] = time.monotonic()
        self.snapshots.request(symbol, symbol, self.snapshot_limit,
                               lambda status, body: self._snapshot(symbol, status, body))

    def _snapshot(self, symbol: str, status: int, body: Any) -> None:
        if status != 200 or not isinstance(body, dict):
            self.snapshots_failed += 1
            return
        self.snapshots_taken += 1
        self.snapshots.succeeded(symbol)
        self._pending.append(Marker(self.clock(), SNAPSHOT, {"symbol": symbol, "data": orjson.dumps(body)}))

    def _link(self, state: str, names: tuple[str, ...]) -> None:
        sub = self.subscription
        if sub is None:
            return
        kind = LINK_DOWN if state == "down" else LINK_UP
        # Through the subscription's queue: the marker lands in order with the messages around it.
        sub.push_event({"e": "error", "type": kind, "m": f"link {state}", "streams": list(names)})
        if kind == LINK_UP:
            for symbol in self._symbols_of(names):
                self.request_snapshot(symbol)

    def _symbols_of(self, names: Iterable[str]) -> set[str]:
        out = set()
        for name in names:
            head = name.partition("@")[0].upper()
            if head in self.depth_symbols:
                out.add(head)
        return out

    async def _on_batch(self, _batch: Any) -> None:
        await self._drain_pending()

    async def _drain_pending(self) -> None:
        while self._pending:
            marker = self._pending.pop(0)
            await self.sink.mark(marker)

    # -- running ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Subscribe, record until the subscription ends (or the task is cancelled), close the sink.

        Raises what subscribing raises (:class:`~binance_ws.errors.SubscriptionError`...), what the
        sink raises (a full disk: ``OSError``), and :class:`RecorderGaveUp` when reconnecting gave up."""
        self.snapshots.acquire()
        ticker: asyncio.Task[None] | None = None
        try:
            self.subscription = await self.manager.subscribe(self.names, decode="raw", overflow="block",
                                                             queue_size=QUEUE_SIZE, on_link=self._link)
            self.pump = Pump(self.subscription, _MarkerWatch(self.sink, self), clock=self.clock,
                             on_batch=self._on_batch)
            ticker = asyncio.create_task(self._tick(), name="binance-ws-recorder-tick")
            await self.pump.run()
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            await self.snapshots.release()
            try:
                await self._drain_pending()  # snapshots that arrived after the last batch
            finally:
                await self.sink.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            await self._drain_pending()
            tick = getattr(self.sink, "tick", None)
            if tick is not None:
                tick()
            # Periodic snapshots only once nothing else waits for the budget: a new file's first snapshot
            # (what makes it rebuild its book alone) and a resync after a gap go first.
            if self.snapshot_interval_s > 0 and not self.snapshots.scheduler.queued:
                now = time.monotonic()
                for symbol in sorted(self.depth_symbols):
                    last = self._last_snapshot.get(symbol)
                    if last is not None and now - last >= self.snapshot_interval_s:
                        self.request_snapshot(symbol)
            for hook in self.tick_hooks:
                hook(self)


class _MarkerWatch:
    """The sink as the pump sees it: markers of gaps also ask for a fresh snapshot of their symbol."""

    def __init__(self, sink: Sink, recorder: Recorder) -> None:
        self._sink = sink
        self._recorder = recorder

    async def write(self, entries: Sequence[Entry]) -> None:
        await self._sink.write(entries)

    async def close(self) -> None:
        await self._sink.close()

    async def mark(self, marker: Marker) -> None:
        await self._sink.mark(marker)
        if marker.detail.get("m") == errors.MSG_MAX_RETRIES:
            raise RecorderGaveUp(errors.MSG_MAX_RETRIES)
        if marker.kind in GAP_KINDS:
            stream = marker.detail.get("stream")
            if isinstance(stream, str):
                for symbol in self._recorder._symbols_of([stream]):
                    self._recorder.request_snapshot(symbol)
