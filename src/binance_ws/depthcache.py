"""Depth caches: local order books kept right over the engine, with REST snapshots on a shared budget.

The logic lives in :mod:`binance_ws.core.booksync` (sequencing, resyncs, integrity checks) and
:mod:`binance_ws.core.book` (the book); this module binds it to I/O:

* streams: one callback subscription on the :class:`~binance_ws.engine.AsyncSocketManager` per manager,
  for every symbol's diff depth (and bookTicker, for the integrity check), so many symbols share the
  engine's connections;
* snapshots: ``GET <rest_url><rest_prefix>/depth`` over aiohttp, started by a :class:`SnapshotService`
  shared by every depth-cache manager of the same socket manager, which runs one
  :class:`~binance_ws.core.booksync.SnapshotScheduler` (one weight budget, limited concurrency, backoff,
  429/418 ``Retry-After``);
* disconnects: the subscription's ``on_link`` hook reports a connection that dropped, whose books are
  marked ``STALE`` at once, and its return, when their resync starts;
* errors: malformed diffs, snapshots and bookTickers (:class:`~binance_ws.core.booksync.BookMalformed`)
  and the engine's error events go to ``on_error`` as error events of the documented shape
  (:mod:`binance_ws.errors`), or to the log without it. Nothing a payload holds raises into the engine or
  leaves a book stuck; every network wait has a deadline.

Asyncio use::

    async with AsyncSocketManager(market=sim.market) as sm:
        async with DepthCacheManager(sm, "BNBBTC") as dcm:
            book = await dcm.recv()          # the DepthCache, after its next change
            async for book in dcm:           # or every change, as it comes
                print(book.symbol, book.state, book.get_bids(5))

Seed style: ``DepthCacheManager(sm, symbol, callback=fn)`` calls ``fn(depth_cache)`` on the loop thread
after every change (``start()`` / ``close()`` instead of ``async with``); the threaded facade's
``start_depth_cache`` is built on it (:func:`value_type_for` maps python-binance's ``conv_type``;
``DepthCache.copy()`` gives another thread a book that does not change under it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Final

import aiohttp
import orjson

from binance_ws import errors, streams
from binance_ws.core.book import BookState, DepthCache, ValueType
from binance_ws.core.booksync import (
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_WEIGHT_SHARE,
    Action,
    BookMalformed,
    BookReady,
    BookSync,
    FetchSnapshot,
    SnapshotScheduler,
    SyncStats,
    depth_weight,
)
from binance_ws.engine.delivery import LINK_DOWN, LinkState, Subscription
from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.enums import FuturesType
from binance_ws.markets import Market

log = logging.getLogger("binance_ws.depthcache")

#: Default snapshot size: 1000 levels a side costs 50 weight on spot and 20 on futures (PROTOCOL 5.1 / 5.2)
#: and covers a busy book's moves for minutes; 5000 (250 weight) is allowed on spot.
DEFAULT_LIMIT: Final = 1000
#: Default diff-depth speed: ``@100ms`` (PROTOCOL 4.12, and a futures speed too, 8); None subscribes the
#: product's default stream (spot 1000 ms, futures 250 ms).
DEFAULT_WS_INTERVAL_MS: Final = 100
#: REST timeout of one snapshot.
SNAPSHOT_TIMEOUT_S: Final = 10.0
#: Binance's "Invalid symbol." error code (PROTOCOL 7.3): the only snapshot failure that is final.
INVALID_SYMBOL_CODE: Final = -1121
#: Deadline of closing the snapshot service's HTTP session.
SESSION_CLOSE_TIMEOUT_S: Final = 5.0


class SnapshotService:
    """Fetches depth snapshots for every depth cache of one socket manager, on one REST weight budget.

    ``weight_limit`` per ``window_s`` defaults to ``market.rest_weight_per_minute`` per 60 s; ``share`` of it
    is used at most (see :class:`~binance_ws.core.booksync.SnapshotScheduler`). :func:`snapshot_service`
    returns the one shared by a socket manager; construct one yourself only to change these settings, and
    pass it to each :class:`DepthCacheManager`.
    """

    def __init__(self, market: Market, *, weight_limit: int | None = None, window_s: float = 60.0,
                 share: float = DEFAULT_WEIGHT_SHARE, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                 timeout_s: float = SNAPSHOT_TIMEOUT_S) -> None:
        self.market = market
        self.scheduler = SnapshotScheduler(
            weight_limit=weight_limit if weight_limit is not None else market.rest_weight_per_minute,
            window_s=window_s, share=share, max_concurrency=max_concurrency)
        self.url = f"{market.rest_url}{market.rest_prefix}/depth"
        self.timeout_s = timeout_s
        #: Snapshots answered 200, and answered otherwise (including no answer).
        self.fetched = 0
        self.failed = 0
        #: The IP's weight used in the current minute as the server last reported it
        #: (``X-MBX-USED-WEIGHT-1M`` on every REST answer), or None before any answer carried it.
        self.reported_weight: int | None = None
        self._waiting: dict[str, tuple[str, int, Callable[[int, Any], None]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._fetches: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._users = 0

    def request(self, key: str, symbol: str, limit: int, deliver: Callable[[int, Any], None], *,
                retry: bool = False) -> None:
        """Queue a snapshot of ``symbol``; ``deliver(status, body)`` gets the answer (status 0: none).

        ``key`` names the requester (one book); a key already waiting is not queued twice. ``retry``: the
        last answer was of no use, back off first (see :class:`~binance_ws.core.booksync.FetchSnapshot`).
        """
        self._waiting[key] = (symbol, limit, deliver)
        self.scheduler.submit(key, depth_weight(self.market.sequence_rule, limit), time.monotonic(),
                              retry=retry)
        self._wake.set()

    def succeeded(self, key: str) -> None:
        """``key``'s book synced: reset its backoff."""
        self.scheduler.succeeded(key)

    def cancel(self, key: str) -> None:
        """Forget ``key``'s queued request; an answer already on its way is dropped."""
        self.scheduler.cancel(key)
        self._waiting.pop(key, None)

    def acquire(self) -> None:
        """One more depth-cache manager uses the service (starts it on first use)."""
        self._users += 1
        if self._pump_task is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
            self._pump_task = asyncio.create_task(self._pump(), name="binance-ws-snapshots")

    async def release(self) -> None:
        """A manager is done with the service; the last one stops it (tasks and HTTP session)."""
        self._users -= 1
        if self._users > 0:
            return
        tasks = [t for t in (self._pump_task, *self._fetches) if t is not None]
        self._pump_task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            session, self._session = self._session, None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SESSION_CLOSE_TIMEOUT_S):
                    await session.close()

    async def _pump(self) -> None:
        scheduler = self.scheduler
        while True:
            self._wake.clear()
            now = time.monotonic()
            for key in scheduler.ready(now):
                task = asyncio.create_task(self._fetch(key))
                self._fetches.add(task)
                task.add_done_callback(self._fetches.discard)
            wake = scheduler.next_wakeup(now)
            timeout = None if wake is None else max(0.0, wake - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _fetch(self, key: str) -> None:
        entry = self._waiting.get(key)
        if entry is None:
            self.scheduler.finish(key, time.monotonic())
            return
        symbol, limit, _ = entry
        status, body, retry_after = 0, None, None
        session = self._session
        try:
            if session is None:
                raise RuntimeError("the snapshot service is stopped")
            # One deadline over the whole exchange, on top of the session's own (a stalled body included).
            async with asyncio.timeout(self.timeout_s):
                async with session.get(self.url, params={"symbol": symbol, "limit": str(limit)}) as resp:
                    status = resp.status
                    retry_after = _seconds(resp.headers.get("Retry-After"))
                    used = resp.headers.get("X-MBX-USED-WEIGHT-1M", "")
                    if used.isdigit():
                        self.reported_weight = int(used)
                    raw = await resp.read()
            body = orjson.loads(raw) if raw else None
        except Exception as exc:
            # Whatever went wrong, the scheduler must hear the end of this fetch and the book its answer:
            # an exception escaping here would leave both waiting for ever.
            log.warning("depth snapshot of %s failed: %r", symbol, exc)
            if status == 200:
                status = 0  # an answer that cannot be read counts as no answer
        self.scheduler.finish(key, time.monotonic(), status=status, retry_after=retry_after)
        if status == 200:
            self.fetched += 1
        else:
            self.failed += 1
            log.warning("depth snapshot of %s answered %s %s", symbol, status, body)
        entry = self._waiting.pop(key, None)
        self._wake.set()
        if entry is not None:
            try:
                entry[2](status, body)
            except Exception:
                log.exception("depth snapshot of %s: delivering the answer raised", symbol)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def value_type_for(conv_type: Callable[[str], Any]) -> ValueType:
    """The value type matching python-binance's ``conv_type`` argument (``float``, ``Decimal`` or ``str``).

    Raises ``ValueError`` for any other converter: the book must order prices numerically whatever it
    returns, so it supports exactly these three.
    """
    for value_type, conv in (("float", float), ("decimal", Decimal), ("str", str)):
        if conv_type is conv:
            return value_type  # type: ignore[return-value]
    raise ValueError(f"conv_type must be float, Decimal or str, not {conv_type!r}")


_services: weakref.WeakKeyDictionary[AsyncSocketManager, SnapshotService] = weakref.WeakKeyDictionary()


def depth_stream(symbol: str, ws_interval: int | None, market: Market) -> str:
    """The diff-depth stream a book of ``symbol`` follows on ``market`` at ``ws_interval`` ms: None (and 0
    where the product has no real-time speed: python-binance's spot value for the default) is the
    product's default speed. Raises :class:`~binance_ws.errors.InvalidStreamError` for a bad symbol or a
    speed the product does not serve."""
    speeds = market.product.depth_speeds_ms
    speed = None if ws_interval is None or (ws_interval == 0 and 0 not in speeds) else ws_interval
    return streams.depth(symbol, None, speed, market)


def snapshot_service(sm: AsyncSocketManager) -> SnapshotService:
    """The snapshot service every depth cache on ``sm`` shares (created on first use)."""
    service = _services.get(sm)
    if service is None:
        service = _services[sm] = SnapshotService(sm.market)
    return service


_serials = itertools.count(1)


class DepthCacheManager:
    """Local order books for one or more symbols, in sync with Binance (issue 4).

    ``symbols`` is one symbol or several. ``limit`` is the snapshot size (up to ``market.max_depth_limit``;
    the futures sizes of PROTOCOL 5.2), ``value_type`` the type of prices and quantities (``"float"``,
    ``"decimal"`` or ``"str"``), ``ws_interval`` the diff-depth speed in ms (None: 1000 ms), ``max_depth``
    keeps only that many levels a side, ``max_buffer`` bounds the events held while a snapshot is
    awaited, ``check_tickers`` also subscribes bookTicker to cross-check the book. ``callback`` switches
    to seed style (called with the :class:`DepthCache` after each change, on the loop thread); without
    it, read changes with :meth:`recv` or ``async for``. ``on_error`` is called, on the loop thread, with
    each error event: a refused payload (``{'e': 'error', 'type': 'malformed', 'm': ..., 'symbol',
    'stream', 'source', 'detail', 'resync'}``, see :class:`~binance_ws.core.booksync.BookMalformed`) and
    the engine's own error events; without it they are logged. ``snapshots`` overrides the shared
    :class:`SnapshotService`. Raises ``ValueError`` for a limit the market does not serve and
    :class:`~binance_ws.errors.InvalidStreamError` for a bad symbol, before connecting.
    """

    def __init__(self, sm: AsyncSocketManager, symbols: str | Iterable[str], *,
                 callback: Callable[[DepthCache], Any] | None = None, limit: int = DEFAULT_LIMIT,
                 value_type: ValueType = "float", ws_interval: int | None = DEFAULT_WS_INTERVAL_MS,
                 max_depth: int | None = None, max_buffer: int = DEFAULT_MAX_BUFFER,
                 check_tickers: bool = True, snapshots: SnapshotService | None = None,
                 on_error: Callable[[dict[str, Any]], Any] | None = None) -> None:
        names = [symbols] if isinstance(symbols, str) else list(symbols)
        if not names:
            raise ValueError("no symbol given")
        market = sm.market
        for name in names:
            depth_stream(name, ws_interval, market)  # a bad symbol or speed raises here, before connecting
        if limit > market.max_depth_limit:
            raise ValueError(f"limit {limit} is above {market.name}'s largest snapshot "
                             f"({market.max_depth_limit})")
        self.sm = sm
        self.market = market
        self.callback = callback
        self.on_error = on_error
        self.limit = limit
        self.ws_interval = ws_interval
        self.check_tickers = check_tickers
        self.snapshots = snapshots or snapshot_service(sm)
        self._syncs: dict[str, BookSync] = {}
        for name in dict.fromkeys(s.upper() for s in names):
            self._syncs[name] = BookSync(name, rule=market.sequence_rule, limit=limit, max_buffer=max_buffer,
                                         max_depth=max_depth, value_type=value_type,
                                         check_tickers=check_tickers)
        self._serial = next(_serials)
        self._stream_symbol: dict[str, str] = {}
        for symbol in self._syncs:
            for stream in self._streams_of(symbol):
                self._stream_symbol[stream] = symbol
        self._sub: Subscription | None = None
        self._pending: dict[str, None] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._started = False
        self.closed = False

    def __repr__(self) -> str:
        states = [s.state.value for s in self._syncs.values()]
        return (f"<DepthCacheManager {len(self._syncs)} symbol(s) "
                f"{ {v: states.count(v) for v in dict.fromkeys(states)} }>")

    # -- public reading -------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return list(self._syncs)

    def get_depth_cache(self, symbol: str | None = None) -> DepthCache:
        """The book of ``symbol`` (the only one if omitted). Raises ``KeyError`` for a symbol not managed."""
        if symbol is None:
            if len(self._syncs) != 1:
                raise KeyError("several symbols are managed: name one")
            return next(iter(self._syncs.values())).cache
        return self._syncs[symbol.upper()].cache

    def stats(self, symbol: str | None = None) -> SyncStats:
        """Sync counters (resyncs, gaps, integrity failures...) of ``symbol`` (the only one if omitted)."""
        return self._syncs[self.get_depth_cache(symbol).symbol].stats

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> DepthCacheManager:
        """Subscribe the streams and start syncing (idempotent)."""
        if self._started:
            return self
        self._started = True
        self.snapshots.acquire()
        try:
            self._sub = await self.sm.subscribe(list(self._stream_symbol), self._on_message,
                                                on_link=self._on_link)
        except BaseException:
            await self.snapshots.release()
            raise
        now = time.time()
        for sync in self._syncs.values():
            self._act(sync, sync.on_resumed(now))  # subscribed: buffering has begun (PROTOCOL 5.1 step 1)
        return self

    async def close(self) -> None:
        """Stop: unsubscribe, drop queued snapshots; the books stay readable, marked ``FAILED``."""
        if self.closed:
            return
        self.closed = True
        now = time.time()
        for sync in self._syncs.values():
            self.snapshots.cancel(self._key(sync.symbol))
            sync.close(now)
        if self._sub is not None:
            await self.sm.unsubscribe(self._sub)
        if self._started:
            await self.snapshots.release()
        self._wake_reader()

    async def __aenter__(self) -> DepthCacheManager:
        return await self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- the asyncio reader ---------------------------------------------------------------------
    async def recv(self) -> DepthCache:
        """The next book that changed (synced, updated, went stale or failed); changes of the same book
        not read yet are merged. Raises :class:`~binance_ws.errors.ConnectionClosedError` once closed, or
        once every book has failed (the engine gave up its connection) and the last change was read."""
        while not self._pending:
            if self.closed or all(s.state is BookState.FAILED for s in self._syncs.values()):
                raise errors.ConnectionClosedError("depth cache manager closed")
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        symbol = next(iter(self._pending))
        del self._pending[symbol]
        return self._syncs[symbol].cache

    def __aiter__(self) -> AsyncIterator[DepthCache]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[DepthCache]:
        while True:
            try:
                yield await self.recv()
            except errors.ConnectionClosedError:
                return

    # -- stream side ----------------------------------------------------------------------------
    def _streams_of(self, symbol: str) -> list[str]:
        depth = depth_stream(symbol, self.ws_interval, self.market)
        return [depth, streams.book_ticker(symbol)] if self.check_tickers else [depth]

    def _key(self, symbol: str) -> str:
        return f"{self._serial}:{symbol}"

    def _on_message(self, msg: Any) -> None:
        """The engine's callback, on the loop thread: one payload (or error event) of our streams."""
        if not isinstance(msg, dict):
            self._report(errors.error_event(errors.ERR_MALFORMED, errors.MSG_MALFORMED,
                                            detail=f"a payload of type {type(msg).__name__}, not an object"))
            return
        kind = msg.get("e")
        if kind == "error":
            self._on_error(msg)
            return
        symbol = msg.get("s")
        sync = self._syncs.get(symbol) if isinstance(symbol, str) else None
        if sync is None:
            # Not one of ours, or no symbol to tell: it cannot be placed. A diff that mattered shows as a
            # gap in its book's next event.
            self._report(errors.error_event(errors.ERR_MALFORMED, errors.MSG_MALFORMED,
                                            detail=f"{kind or 'bookTicker'} of unknown symbol {symbol!r}"))
        elif kind == "depthUpdate":
            self._act(sync, sync.on_diff(msg, time.time()))
        else:  # bookTicker: no "e" on spot, "bookTicker" on futures (PROTOCOL 4.9, 8)
            self._act(sync, sync.on_book_ticker(msg, time.time()))

    def _on_error(self, event: dict[str, Any]) -> None:
        # A gap the engine saw shows in the next event's ids as well, and the sync acts on those; what is
        # left are the ends: a refused stream fails its book, a connection given up fails them all.
        self._report(event)
        kind = event.get("type")
        if kind == errors.ERR_SUBSCRIPTION:
            symbol = self._stream_symbol.get(event.get("stream", ""))
            affected = [symbol] if symbol is not None else []
        elif event.get("m") == errors.MSG_MAX_RETRIES:
            affected = list(self._syncs)
        else:
            return
        now = time.time()
        for symbol in affected:
            sync = self._syncs[symbol]
            self.snapshots.cancel(self._key(symbol))
            self._act(sync, sync.close(now))

    def _act(self, sync: BookSync, actions: Sequence[Action]) -> None:
        for action in actions:
            if isinstance(action, FetchSnapshot):
                if not self.closed:
                    self.snapshots.request(self._key(action.symbol), action.symbol, action.limit,
                                           functools.partial(self._on_snapshot, sync), retry=action.retry)
                continue
            if isinstance(action, BookMalformed):
                stream = self._streams_of(action.symbol)[0 if action.event["source"] != "bookTicker" else -1]
                self._report({**action.event, "stream": stream})
                continue
            if isinstance(action, BookReady):
                self.snapshots.succeeded(self._key(action.symbol))
            self._notify(sync.cache)

    def _report(self, event: dict[str, Any]) -> None:
        """Hand an error event to ``on_error`` (or the log)."""
        if self.on_error is None:
            if event.get("type") == errors.ERR_MALFORMED:
                log.warning("depth cache: %s: %s", event.get("symbol") or event.get("stream"),
                            event.get("detail"))
            return
        try:
            self.on_error(event)
        except Exception:
            log.exception("depth cache on_error %r raised", self.on_error)

    def _on_snapshot(self, sync: BookSync, status: int, body: Any) -> None:
        now = time.time()
        if status == 200 and isinstance(body, dict) and "code" not in body:
            # The sync reads the body defensively: a malformed one is refused there and fetched again.
            self._act(sync, sync.on_snapshot(body, now))
            return
        code = body.get("code") if isinstance(body, dict) else None
        reason = f"snapshot answered {status}" + (f" {code} {body.get('msg')}" if code is not None else "")
        self._act(sync, sync.on_snapshot_error(now, reason, fatal=code == INVALID_SYMBOL_CODE))

    def _notify(self, cache: DepthCache) -> None:
        if self.callback is not None:
            try:
                self.callback(cache)
            except Exception:
                # A caller's bug must not stop the book it was reading.
                log.exception("depth cache callback %r raised", self.callback)
            return
        self._pending[cache.symbol] = None
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_link(self, state: LinkState, streams: tuple[str, ...]) -> None:
        """The engine's link hook, on the loop thread: a connection carrying ``streams`` dropped (their
        books go ``STALE`` now, not when the next event shows a gap) or carries them again (the resync
        starts at once)."""
        now = time.time()
        for sync in self._depth_syncs_on(streams):
            self._act(sync, sync.on_disconnect(now) if state == LINK_DOWN else sync.on_resumed(now))

    def _depth_syncs_on(self, streams: Iterable[str]) -> list[BookSync]:
        syncs = []
        for stream in streams:
            symbol = self._stream_symbol.get(stream)
            if symbol is not None and "@depth" in stream:
                syncs.append(self._syncs[symbol])
        return syncs


class FuturesDepthCacheManager(DepthCacheManager):
    """:class:`DepthCacheManager` on a futures market (python-binance's name): ``sm``'s own market if it
    is a futures one, else the futures market of its environment (``futures_type``, default USD-M; see
    :meth:`AsyncSocketManager.futures_manager`). Books sync by PROTOCOL 5.2 (``pu`` chains, snapshots
    from ``/fapi/v1/depth`` or ``/dapi/v1/depth``); diff depth and bookTicker ride USD-M's ``/public``."""

    def __init__(self, sm: AsyncSocketManager, symbols: str | Iterable[str], *,
                 futures_type: Any = FuturesType.USD_M, **options: Any) -> None:
        super().__init__(sm.futures_manager(futures_type), symbols, **options)
