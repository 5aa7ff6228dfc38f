"""Prometheus metrics of a running client: what the engine already counts, read when scraped.

::

    from binance_ws import metrics

    async with AsyncSocketManager(market=sim.market) as sm:
        m = metrics.expose(sm, port=9108)          # http://127.0.0.1:9108/metrics
        ...
        m.close()

Almost everything is read from the engine's own state on each scrape (connections and their connect,
drop and rotation counters, per-stream gap and reset counters, subscription queues, the process-wide
connection-attempt windows, the depth-snapshot weight budget, order books' sync state): nothing is added
to the per-message path for them. Two figures need every message, the count per stream and the lag
(local receive time minus the payload's event time ``E``); they come from a frame tap
(:meth:`AsyncSocketManager.set_tap`) installed only while metrics watch a manager, which reads the stream
name and ``E`` from the frame's bytes without decoding it.

Scrapes come on the HTTP server's thread; the engine's state is read on its event loop's thread
(handed over with ``call_soon_threadsafe``), so a scrape never sees a table being changed.

Other parts of a process (the recorder, the Redis sink, a collector fleet) add their figures through
:class:`Sinks` (``metrics.sinks``): write latencies, entries written, files, shards owned.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from binance_ws.engine.attempts import attempts_used

if TYPE_CHECKING:
    from binance_ws.depthcache import DepthCacheManager
    from binance_ws.engine.manager import AsyncSocketManager
    from binance_ws.websockets import BinanceSocketManager

#: Prefix of every metric name.
PREFIX: Final = "binance_ws"
#: Upper bounds (seconds) of the lag histogram's buckets: a local simulator answers within a
#: millisecond, a far region's Binance within tens, a stalled consumer in seconds.
LAG_BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Buckets (seconds) of sink write latencies (a pipelined Redis write, a file flush).
WRITE_BUCKETS_S: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                          1.0)
#: How long a scrape waits for the event loop to hand over the engine's state.
SNAPSHOT_TIMEOUT_S: Final = 5.0

#: What separates a combined frame's stream name from its payload (the engine splits on the same bytes).
_SEPARATOR: Final = b'","data":'
#: What comes before the stream name.
_NAME_START: Final = len(b'{"stream":"')
#: ``E`` is the payload's second key (``{"e":"<type>","E":...``): searched for this far only, so a payload
#: without it (a partial book) costs no scan.
_E_WINDOW: Final = 64
#: An ``E`` above this is in microseconds (``timeUnit=MICROSECOND``), not milliseconds.
_MICROSECOND_E: Final = 100_000_000_000_000
#: The lag is observed on one frame in this many per stream (the first, then every 8th): the figure is a
#: distribution, which a sample of it shows, and reading ``E`` from every frame would cost more than the
#: engine's whole per-frame work. Must be a power of two (a mask picks the frames).
LAG_SAMPLE_EVERY: Final = 8


class _StreamCounts:
    """Per stream: frames received, and the lag histogram (per-bucket counts, not cumulative)."""

    __slots__ = ("buckets", "frames", "lag_count", "lag_sum", "last_lag")

    def __init__(self) -> None:
        self.frames = 0
        self.buckets = [0] * (len(LAG_BUCKETS_S) + 1)
        self.lag_sum = 0.0
        self.lag_count = 0
        self.last_lag: float | None = None


class FrameTap:
    """The per-frame observer: counts every frame per stream, and files ``now - E`` of one frame in
    :data:`LAG_SAMPLE_EVERY` in the stream's lag histogram.

    :attr:`feed` is what the connections call with each frame's bytes, on the loop thread (a plain
    closure: the cheapest call). Frames that are not a combined stream's data (control answers, pings, a
    fragment's continuation) are ignored. A frame counted here is one received, so a rotation's overlap
    (both sockets carry the stream for a moment) counts twice.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.streams: dict[bytes, _StreamCounts] = {}
        self.feed = self._make_feed(self.streams, clock)

    @staticmethod
    def _make_feed(streams: dict[bytes, _StreamCounts],
                   clock: Callable[[], float]) -> Callable[[bytes], None]:
        mask = LAG_SAMPLE_EVERY - 1
        bounds = LAG_BUCKETS_S
        find = bisect.bisect_left

        def feed(frame: bytes) -> None:
            head, sep, tail = frame.partition(_SEPARATOR)
            counts = streams.get(head)
            if counts is None:
                if not sep or not head.startswith(b'{"stream":"'):
                    return
                counts = streams[head] = _StreamCounts()
            counts.frames += 1
            if counts.frames & mask != 1 & mask:
                return
            at = tail.find(b'"E":', 0, _E_WINDOW)
            if at < 0:
                return
            stop = tail.find(b",", at)
            try:
                event = int(tail[at + 4:stop if stop > 0 else tail.find(b"}", at)])
            except ValueError:
                return
            lag = clock() - (event / 1_000_000 if event > _MICROSECOND_E else event / 1000)
            counts.buckets[find(bounds, lag)] += 1
            counts.lag_sum += lag
            counts.lag_count += 1
            counts.last_lag = lag

        return feed


@dataclass
class _Watched:
    manager: AsyncSocketManager
    loop: asyncio.AbstractEventLoop
    tap: FrameTap
    #: The value of its series' ``market`` label.
    name: str
    books: list[weakref.ref[DepthCacheManager]] = field(default_factory=list)


class Sinks:
    """Figures that the recorder, sinks and a collector fleet report themselves (thread-safe).

    ``observe_write_latency(seconds, sink="redis")`` once per write (a pipelined batch, a flush);
    ``written(n, sink=...)`` entries written; ``file_opened()`` per file started; ``set_shards(owned)``
    with the shards this process owns now (replaces the previous set).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.write_seconds = Histogram(f"{PREFIX}_sink_write_seconds", "Latency of one sink write "
                                       "(a pipelined Redis batch, a file flush)", ["sink"],
                                       buckets=WRITE_BUCKETS_S, registry=registry)
        self.entries = Counter(f"{PREFIX}_sink_entries", "Entries written by a sink", ["sink"],
                               registry=registry)
        self.files = Counter(f"{PREFIX}_files", "Recording files started", registry=registry)
        self.shards = Gauge(f"{PREFIX}_shards_owned", "Shards this process owns now", registry=registry)
        self.shard = Gauge(f"{PREFIX}_shard_owned", "1 for each shard this process owns", ["shard"],
                           registry=registry)
        self._owned: set[str] = set()
        self._lock = threading.Lock()

    def observe_write_latency(self, seconds: float, sink: str = "redis") -> None:
        self.write_seconds.labels(sink).observe(seconds)

    def written(self, n: int = 1, sink: str = "redis") -> None:
        self.entries.labels(sink).inc(n)

    def file_opened(self) -> None:
        self.files.inc()

    def set_shards(self, owned: Iterable[object]) -> None:
        now = {str(s) for s in owned}
        with self._lock:
            for gone in self._owned - now:
                with contextlib.suppress(KeyError):
                    self.shard.remove(gone)
            for shard in now:
                self.shard.labels(shard).set(1)
            self._owned = now
            self.shards.set(len(now))


class Metrics(Collector):
    """The metrics of the managers and order books it watches, as a prometheus-client collector.

    ``registry``: where to register (default: a registry of its own; pass
    ``prometheus_client.REGISTRY`` to serve them beside your process's other metrics).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._watched: list[_Watched] = []
        self._sub_ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._serials = itertools.count(1)
        self._timeouts = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.registry.register(self)
        self.sinks = Sinks(self.registry)

    # -- what is watched --------------------------------------------------------------------------
    def watch(self, manager: AsyncSocketManager, loop: asyncio.AbstractEventLoop | None = None, *,
              name: str | None = None) -> FrameTap:
        """Watch ``manager``: install its frame tap. Call on its event loop's thread, or pass ``loop``
        (the tap is then installed there). Its series carry ``market=name`` (default: its market's name);
        two managers on one market need names of their own (raises ValueError otherwise)."""
        name = name or manager.market.name
        if any(w.name == name for w in self._watched):
            raise ValueError(f"a manager named {name!r} is watched already: pass name= to tell them apart")
        if loop is None:
            loop = asyncio.get_running_loop()
        tap = FrameTap()
        self._watched.append(_Watched(manager, loop, tap, name))
        self._on_loop(loop, lambda: manager.set_tap(tap.feed))
        return tap

    def watch_books(self, books: DepthCacheManager) -> None:
        """Add the order books of ``books`` (sync state, staleness, resyncs, gaps) under its manager."""
        for watched in self._watched:
            if watched.manager is books.sm:
                watched.books.append(weakref.ref(books))
                return
        raise ValueError("watch the books' socket manager first: metrics.watch(books.sm)")

    def close(self) -> None:
        """Stop serving and remove the taps (idempotent)."""
        self.stop_serving()
        watched, self._watched = self._watched, []
        for w in watched:
            if not w.loop.is_closed():
                with contextlib.suppress(Exception):
                    self._on_loop(w.loop, lambda m=w.manager: m.set_tap(None))  # type: ignore[misc]
        with contextlib.suppress(KeyError):
            self.registry.unregister(self)

    # -- serving ----------------------------------------------------------------------------------
    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` over HTTP on ``addr:port`` (0: a free port) from a thread of its own;
        returns the port. Raises OSError if the port cannot be bound."""
        if self._server is not None:
            raise RuntimeError(f"already serving on port {self.port}")
        self._server, self._thread = start_http_server(port, addr, registry=self.registry)
        self.port = int(self._server.server_port)
        return self.port

    def stop_serving(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=SNAPSHOT_TIMEOUT_S)
            self._thread = None

    # -- collecting -------------------------------------------------------------------------------
    def _on_loop(self, loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on ``loop``'s thread and return its result (directly when already there)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or not loop.is_running():
            return fn()
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return done.result(SNAPSHOT_TIMEOUT_S)

    def describe(self) -> Iterable[Metric]:
        return []  # the families vary with what is watched; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        f = _Families()
        for host, used, limit, _window in attempts_used():
            f.gauge("connection_attempts_window", "Connection attempts to a host within Binance's "
                    "5-minute window (process-wide)", used, host=host)
            f.gauge("connection_attempts_limit", "The attempt limit of that window", limit, host=host)
        for watched in list(self._watched):
            if watched.loop.is_closed():
                continue
            # Read into families of its own, on its loop: one that answers too late writes into
            # nothing this scrape still uses.
            mine = _Families()
            try:
                self._on_loop(watched.loop, lambda w=watched, into=mine: self._read(w, into))  # type: ignore[misc]
            except concurrent.futures.TimeoutError:
                self._timeouts += 1
            else:
                f.merge(mine)
        if self._timeouts:
            f.counter("scrape_timeouts", "Scrapes whose event loop did not answer in time", self._timeouts)
        yield from f.families()

    def _read(self, w: _Watched, f: _Families) -> None:
        """Read one manager's state into ``f`` (on its loop's thread)."""
        manager = w.manager
        market = w.name
        for key, counts in list(w.tap.streams.items()):
            stream = key[_NAME_START:].decode("utf-8", "replace")
            f.counter("messages", "Frames received per stream", counts.frames, market=market, stream=stream)
            if counts.lag_count:
                f.histogram("lag_seconds", "Local receive time minus the payload's event time E",
                            counts.buckets, counts.lag_sum, market=market, stream=stream)
        for name in manager.streams:
            route = manager.route(name)
            if route is None:
                continue
            f.counter("gaps", "Gap events (ids missing) per stream", route.gaps, market=market, stream=name)
            f.counter("resets", "Sequence resets per stream", route.resets, market=market, stream=name)
        for conn in manager.connections:
            labels = {"market": market, "connection": conn.conn_id}
            live = conn.link is not None and not conn.link.lost.done()
            f.gauge("connection_up", "1 while the connection's socket is open", int(live), **labels)
            f.gauge("connection_streams", "Streams the connection carries", len(conn.streams), **labels)
            f.counter("connects", "Sockets opened (first connect, reconnects, rotations)", conn.connects,
                      **labels)
            f.counter("reconnects", "Unplanned socket losses (each followed by a reconnect attempt)",
                      conn.drops, **labels)
            f.counter("rotations", "Planned make-before-break rotations", conn.rotations, **labels)
        for sub in manager.subscriptions:
            if sub.callback is not None:
                continue  # delivered inline: no queue to measure
            ident = self._sub_ids.get(sub)
            if ident is None:
                ident = self._sub_ids[sub] = next(self._serials)
            first = sub.streams[0] if sub.streams else ""
            shown = first if len(sub.streams) <= 1 else f"{first} +{len(sub.streams) - 1}"
            labels = {"market": market, "subscription": str(ident), "streams": shown}
            f.gauge("queue_depth", "Messages waiting in a subscription's queue", sub.pending, **labels)
            f.gauge("queue_peak", "The most a 'block' subscription's queue held", sub.peak, **labels)
            f.counter("delivered", "Messages a queue subscription handed to its reader", sub.delivered,
                      **labels)
            f.counter("dropped", "Messages a subscription's overflow policy discarded", sub.dropped, **labels)
        self._read_rest(w, f, market)
        for ref in w.books:
            books = ref()
            if books is not None:
                self._read_books(books, f, market)

    @staticmethod
    def _read_rest(w: _Watched, f: _Families, market: str) -> None:
        """The depth-snapshot services of the manager and of its watched books (usually one, shared)."""
        from binance_ws.depthcache import SnapshotService, _services

        services: dict[int, SnapshotService] = {}
        if (shared := _services.get(w.manager)) is not None:
            services[id(shared)] = shared
        for ref in w.books:
            if (books := ref()) is not None:
                services[id(books.snapshots)] = books.snapshots
        if not services:
            return
        now = time.monotonic()
        f.gauge("rest_weight_used", "REST weight this client spent within the budget's window (1 minute)",
                sum(s.scheduler.budget.used(now) for s in services.values()), market=market)
        reported = [s.reported_weight for s in services.values() if s.reported_weight is not None]
        if reported:
            f.gauge("rest_weight_reported", "The IP's weight used this minute, as the server last said "
                    "(X-MBX-USED-WEIGHT-1M)", max(reported), market=market)
        f.counter("snapshots", "Depth snapshots fetched", sum(s.fetched for s in services.values()),
                  market=market, outcome="ok")
        f.counter("snapshots", "Depth snapshots fetched", sum(s.failed for s in services.values()),
                  market=market, outcome="failed")

    @staticmethod
    def _read_books(books: DepthCacheManager, f: _Families, market: str) -> None:
        from binance_ws.core.book import BookState

        now = time.time()
        for symbol in books.symbols:
            cache = books.get_depth_cache(symbol)
            stats = books.stats(symbol)
            labels = {"market": market, "symbol": symbol}
            for state in BookState:
                f.gauge("book_state", "1 for the book's sync state", int(cache.state is state),
                        state=state.value, **labels)
            stale = 0.0 if cache.stale_since is None else max(0.0, now - cache.stale_since)
            f.gauge("book_stale_seconds", "How long the book has been STALE (0 when not)", stale, **labels)
            f.counter("book_resyncs", "Book resyncs (a gap, a crossed book, a reconnect)", stats.resyncs,
                      **labels)
            f.counter("book_gaps", "Gaps in a book's diff stream", stats.gaps, **labels)
            f.counter("book_updates", "Diffs applied to a book", stats.applied, **labels)


class _Families:
    """Metric families built label set by label set during one collect."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def _family(self, kind: type[Any], name: str, doc: str, labels: Iterable[str]) -> Any:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = kind(f"{PREFIX}_{name}", doc, labels=list(labels))
        return family

    def gauge(self, name: str, doc: str, value: float, **labels: str) -> None:
        self._family(GaugeMetricFamily, name, doc, labels).add_metric(list(labels.values()), value)

    def counter(self, name: str, doc: str, value: float, **labels: str) -> None:
        self._family(CounterMetricFamily, name, doc, labels).add_metric(list(labels.values()), value)

    def histogram(self, name: str, doc: str, buckets: list[int], total: float, **labels: str) -> None:
        cumulative = list(itertools.accumulate(buckets))
        bounds = [*(repr(b) for b in LAG_BUCKETS_S), "+Inf"]
        self._family(HistogramMetricFamily, name, doc, labels).add_metric(
            list(labels.values()), list(zip(bounds, cumulative, strict=True)), total)

    def merge(self, other: _Families) -> None:
        for name, family in other._families.items():
            mine = self._families.get(name)
            if mine is None:
                self._families[name] = family
            else:
                mine.samples.extend(family.samples)

    def families(self) -> Iterator[Metric]:
        yield from self._families.values()


def expose(manager: AsyncSocketManager | BinanceSocketManager | None = None, port: int | None = None, *,
           addr: str = "127.0.0.1", registry: CollectorRegistry | None = None) -> Metrics:
    """Metrics of ``manager`` (if given), served on ``addr:port`` when ``port`` is given (0: a free one,
    see ``.port``). An :class:`AsyncSocketManager`: call on its event loop. A threaded
    :class:`~binance_ws.BinanceSocketManager`: call after its ``start()``, from any thread (a ``close()``
    and a new ``start()`` make a new engine: expose again). Returns the :class:`Metrics`: ``watch()`` more
    managers, ``watch_books()`` order books, report sink figures through ``.sinks``, ``close()`` to stop.
    Raises OSError if the port cannot be bound, RuntimeError for a threaded manager not started."""
    from binance_ws.websockets import BinanceSocketManager

    metrics = Metrics(registry)
    if isinstance(manager, BinanceSocketManager):
        engine, loop = manager._manager, manager._loop
        if engine is None or loop is None:
            raise RuntimeError("start() the BinanceSocketManager before exposing its metrics")
        metrics.watch(engine, loop)
    elif manager is not None:
        metrics.watch(manager)
    if port is not None:
        try:
            metrics.serve(port, addr)
        except BaseException:
            metrics.close()
            raise
    return metrics
