"""The asyncio socket manager: subscriptions on shared, self-healing combined connections.

``AsyncSocketManager`` is the engine's public face. Subscribing validates the stream names (nothing
invalid reaches a socket), attaches a :class:`Subscription` to each stream's :class:`Route`, and asks the
:class:`~binance_ws.core.plan.SubscriptionPlan` where new streams go: onto a live connection with room
(live ``SUBSCRIBE``) or a new connection (sharding past ``max_streams_per_connection``). Every
connection heals itself (see :mod:`binance_ws.engine.connection`); when one gives up, each affected
subscriber gets exactly :func:`binance_ws.errors.max_retries_event` and those streams stop. A subscriber
that passes ``on_link`` hears when the socket carrying its streams drops and when they are live again.

Per-socket helpers mirror python-binance's socket factories::

    async with AsyncSocketManager(market=sim.market) as sm:
        async with sm.trade_socket("BNBBTC") as s:
            msg = await s.recv()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from binance_ws import errors, models, streams
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.core.lifecycle import PING_AFTER_SERVER_CADENCES
from binance_ws.core.plan import Action, Close, Open, Subscribe, SubscriptionPlan, Unsubscribe
from binance_ws.core.sequence import SequenceTracker
from binance_ws.engine.connection import (
    DEFAULT_HANDOVER_GRACE_S,
    DEFAULT_PING_TIMEOUT_S,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_STABLE_AFTER_S,
    Connection,
    EngineSettings,
)
from binance_ws.engine.delivery import (
    DEFAULT_OVERFLOW,
    DEFAULT_QUEUE_SIZE,
    DecodeMode,
    LinkHook,
    LinkState,
    OverflowPolicy,
    Subscription,
)
from binance_ws.engine.futures import FuturesSockets, futures_market_for
from binance_ws.engine.router import Route
from binance_ws.enums import KLINE_INTERVAL_1MINUTE, FuturesType
from binance_ws.markets import Market, default_market
from binance_ws.products import MARKET, PUBLIC

log = logging.getLogger("binance_ws.engine")

#: The retired ``!ticker@arr`` pushed every 1000 ms (PROTOCOL 4.7); ticker_socket batches at that pace.
TICKER_ARR_INTERVAL_S: Final = 1.0
#: ``!miniTicker@arr`` pushes every 1000 ms (PROTOCOL 4.6): slower update times are conflated here.
MINI_TICKER_ARR_INTERVAL_MS: Final = 1000
#: A symbol is streamable when exchangeInfo lists it with this status (PROTOCOL 4.7 replacement advice).
TRADING_STATUS: Final = "TRADING"
#: How often :meth:`AsyncSocketManager.wait_ready` looks again while a subscribe is in progress or a
#: socket was replaced under it (waiting on the sockets themselves needs no polling).
READY_POLL_S: Final = 0.01
#: REST timeout for the exchangeInfo call behind ticker_socket.
EXCHANGE_INFO_TIMEOUT_S: Final = 10.0


#: USD-M routes market streams by path since 2026 (PROTOCOL 8): book data on ``/public``, everything
#: else on ``/market`` (a stream on the wrong path is acknowledged but delivers nothing). Which kind
#: lives where is declared per product (``Kind.route``).
PUBLIC_PATH: Final = "/public"
MARKET_PATH: Final = "/market"
_PATHS: Final = {PUBLIC: PUBLIC_PATH, MARKET: MARKET_PATH}


class RoutedPlan:
    """The subscription plan, one :class:`SubscriptionPlan` per stream path.

    On a market with ``routed_paths`` each stream goes to the path that serves it, and its connection
    to that path's URL; elsewhere there is one plan at ``market.stream_url``. Same interface as
    :class:`SubscriptionPlan` (connection ids stay unique across paths), plus :meth:`base_url`.
    """

    def __init__(self, market: Market, max_streams_per_connection: int) -> None:
        self.market = market
        self.max_streams_per_connection = max_streams_per_connection
        paths = (PUBLIC_PATH, MARKET_PATH) if market.routed_paths else ("",)
        self._plans = {path: SubscriptionPlan(max_streams_per_connection,
                                              connection_prefix=f"{path.strip('/') or 'c'}-")
                       for path in paths}
        root = market.stream_url
        if market.routed_paths:
            parts = urlsplit(root)
            root = parts._replace(path=parts.path.rsplit("/", 1)[0]).geturl()
        self._root = root

    def path_of(self, stream: str) -> str:
        """The path serving ``stream`` ("" on markets without routing)."""
        if not self.market.routed_paths:
            return ""
        info = streams.parse_stream(stream, self.market)
        declared = self.market.product.kind(info.kind)
        return _PATHS[declared.route] if declared is not None else MARKET_PATH

    def base_url(self, conn_id: str) -> str:
        """The stream URL a connection of this plan opens (``.../stream`` is appended)."""
        for path, plan in self._plans.items():
            if conn_id.startswith(plan.connection_prefix):
                return self._root + path
        raise KeyError(conn_id)

    def _grouped(self, names: Iterable[str]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name in names:
            groups.setdefault(self.path_of(name), []).append(name)
        return groups

    def add(self, names: Iterable[str]) -> list[Action]:
        return [a for path, group in self._grouped(names).items() for a in self._plans[path].add(group)]

    def remove(self, names: Iterable[str]) -> list[Action]:
        return [a for path, group in self._grouped(names).items() for a in self._plans[path].remove(group)]

    def connection_of(self, stream: str) -> str | None:
        return self._plans[self.path_of(stream)].connection_of(stream)

    def streams_of(self, conn_id: str) -> tuple[str, ...]:
        for plan in self._plans.values():
            if conn_id.startswith(plan.connection_prefix):
                return plan.streams_of(conn_id)
        return ()


class AsyncSocketManager(FuturesSockets):
    """Binance market streams over asyncio.

    ``client`` is optional: a client with an async ``get_exchange_info()`` is used for the symbol list
    behind :meth:`ticker_socket`; otherwise the manager asks ``market.rest_url`` itself. ``market`` is a
    row of :mod:`binance_ws.markets` (``sim.market`` for the simulator); none given: the client's, else
    :func:`binance_ws.markets.default_market` (``BINANCE_WS_MARKET``, else spot). ``max_reconnects`` failed
    reconnects in a row end a connection (None: retry forever); ``backoff`` overrides the whole schedule.
    ``max_streams_per_connection`` defaults to the market's limit. Health and rotation settings:
    ``ping_interval`` (our ping after this much silence; default 1.5 times the market's server ping cadence),
    ``ping_timeout``, ``no_data_timeout`` (None or 0: off; seconds: a stream silent that long gets one
    ``quiet`` event per silence, and the connection is left alone),
    ``rotate_after`` (None: a margin before ``market.connection_lifetime_s``; 0: never),
    ``handover_grace``, ``request_timeout``, ``stable_after`` (a socket that dies sooner after opening is
    a flap: the backoff keeps escalating).

    python-binance's futures factories (``symbol_mark_price_socket``, ``futures_depth_socket``, ...,
    ``futures_type=FuturesType.USD_M|COIN_M``) reach the futures market of the same environment
    (:func:`~binance_ws.engine.futures.futures_market_for`), or ``futures_market`` /
    ``coin_futures_market`` when given (required for a local endpoint such as the simulator).
    """

    def __init__(self, client: Any = None, *, market: Market | None = None, max_reconnects: int | None = 5,
                 backoff: BackoffPolicy | None = None, max_streams_per_connection: int | None = None,
                 ping_interval: float | None = None, ping_timeout: float = DEFAULT_PING_TIMEOUT_S,
                 no_data_timeout: float | None = None, rotate_after: float | None = None,
                 handover_grace: float = DEFAULT_HANDOVER_GRACE_S,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
                 stable_after: float = DEFAULT_STABLE_AFTER_S, futures_market: Market | None = None,
                 coin_futures_market: Market | None = None) -> None:
        self.client = client
        market = market or getattr(client, "market", None) or default_market()
        self.market = market
        self.futures_markets = (futures_market, coin_futures_market)
        # What a sibling manager on a futures market is made with (everything but the market's own limit).
        self._options: dict[str, Any] = dict(
            max_reconnects=max_reconnects, backoff=backoff, ping_interval=ping_interval,
            ping_timeout=ping_timeout, no_data_timeout=no_data_timeout, rotate_after=rotate_after,
            handover_grace=handover_grace, request_timeout=request_timeout, stable_after=stable_after)
        self._siblings: dict[str, AsyncSocketManager] = {}
        policy = backoff if backoff is not None else BackoffPolicy(max_retries=max_reconnects)
        self.settings = EngineSettings(
            market=market, backoff=policy,
            ping_interval_s=(ping_interval if ping_interval is not None
                             else market.server_ping_interval_s * PING_AFTER_SERVER_CADENCES),
            ping_timeout_s=ping_timeout, no_data_timeout_s=no_data_timeout, rotate_after_s=rotate_after,
            handover_grace_s=handover_grace, request_timeout_s=request_timeout, stable_after_s=stable_after)
        limit = max_streams_per_connection or market.max_streams_per_connection
        self._plan = RoutedPlan(market, min(limit, market.max_streams_per_connection))
        self._routes: dict[str, Route] = {}
        self._conns: dict[str, Connection] = {}
        self._subs: dict[Subscription, None] = {}
        self._pausers: dict[str, set[Subscription]] = {}
        self._refused: dict[str, errors.SubscriptionError] = {}
        self._opening: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._lock: asyncio.Lock | None = None
        self._tap: Callable[[bytes], None] | None = None
        self.started = False

    def __repr__(self) -> str:
        return (f"<AsyncSocketManager {self.market.name} streams={len(self._routes)} "
                f"connections={len(self._conns)}>")

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> AsyncSocketManager:
        """Make the manager usable (idempotent; subscribing starts it too)."""
        if not self.started:
            self._lock = asyncio.Lock()
            self.started = True
        return self

    async def close(self) -> None:
        """Close every connection and end every subscription; nothing keeps running afterwards."""
        siblings, self._siblings = list(self._siblings.values()), {}
        await asyncio.gather(*(s.close() for s in siblings), return_exceptions=True)
        if not self.started:
            return
        self.started = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        conns, self._conns = list(self._conns.values()), {}
        await asyncio.gather(*(c.close() for c in conns), *self._closing, return_exceptions=True)
        for sub in list(self._subs):
            sub._finish()
        self._subs.clear()
        self._routes.clear()
        self._plan = RoutedPlan(self.market, self._plan.max_streams_per_connection)
        self._pausers.clear()

    async def __aenter__(self) -> AsyncSocketManager:
        return await self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def futures_manager(self, futures_type: Any = FuturesType.USD_M) -> AsyncSocketManager:
        """The manager carrying ``futures_type``'s streams: this one when it is on that market, else a
        sibling on it, made on first use with this one's settings and closed with it. Raises
        ``ValueError`` for a local market without ``futures_market``/``coin_futures_market``."""
        usdm, coinm = self.futures_markets
        market = futures_market_for(self.market, futures_type, usdm=usdm, coinm=coinm)
        if market == self.market:
            return self
        sibling = self._siblings.get(market.name)
        if sibling is None or sibling.market != market:
            sibling = self._siblings[market.name] = AsyncSocketManager(self.client, market=market,
                                                                       **self._options)
        return sibling

    # -- introspection ----------------------------------------------------------------------------
    @property
    def connections(self) -> list[Connection]:
        """The live connections (shards), oldest first."""
        return list(self._conns.values())

    @property
    def streams(self) -> list[str]:
        """Every stream some subscriber currently receives."""
        return list(self._routes)

    @property
    def subscriptions(self) -> list[Subscription]:
        """The open subscriptions (their counters: ``delivered``, ``dropped``, ``pending``, ``peak``)."""
        return list(self._subs)

    def route(self, stream: str) -> Route | None:
        """The route of ``stream`` (its counters: ``gaps``, ``resets``, ``quiet_events``), or None."""
        return self._routes.get(stream)

    def set_tap(self, tap: Callable[[bytes], None] | None) -> None:
        """Show every frame received, on every connection present and future, to ``tap(frame_bytes)`` on
        the loop thread as it arrives (None: stop). Metrics use it; unset, it costs nothing per frame."""
        self._tap = tap
        for conn in self._conns.values():
            conn.set_tap(tap)

    def _carrying(self, names: Iterable[str] | None) -> list[Connection]:
        """The connections carrying ``names`` (every connection when None)."""
        if names is None:
            return list(self._conns.values())
        ids = {self._plan.connection_of(n) for n in names}
        return [conn for conn_id, conn in self._conns.items() if conn_id in ids]

    async def wait_ready(self, timeout: float | None = None,
                         subscription: Subscription | Iterable[str] | None = None) -> bool:
        """Wait until streams are live: every connection (or only those carrying ``subscription``, a
        :class:`Subscription` or stream names) has its socket open with all its streams subscribed, and
        no subscribe is still in progress. A :meth:`subscribe` that returned is live already; this is for
        the times after, e.g. while a socket reconnects (a socket that dropped is not ready until its
        streams are subscribed again on the new one). True once ready; False after ``timeout`` seconds
        (None: no limit), or if a connection gave up meanwhile (its streams have stopped). A subscription
        made through a futures call is waited for on the sibling manager carrying it."""
        if isinstance(subscription, Subscription) and subscription not in self._subs:
            for sibling in self._siblings.values():
                if subscription in sibling._subs:
                    return await sibling.wait_ready(timeout, subscription)
        names = subscription.streams if isinstance(subscription, Subscription) else (
            None if subscription is None else list(streams.stream_list(subscription)))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    conns = self._carrying(names)
                    if not all(await asyncio.gather(*(c.wait_ready() for c in conns))):
                        return False
                    opening = self._opening if names is None else [n for n in names if n in self._opening]
                    if not opening and all(c.link is not None and not c.link.lost.done()
                                           for c in self._carrying(names)):
                        return True
                    await asyncio.sleep(READY_POLL_S)
        except TimeoutError:
            return False

    # -- subscribing ------------------------------------------------------------------------------
    def _validate(self, names: str | Iterable[str]) -> list[str]:
        checked = [streams.validate_stream(n, self.market) for n in streams.stream_list(names)]
        if not checked:
            raise errors.InvalidStreamError("no stream given; pass names such as 'bnbbtc@trade'")
        return list(dict.fromkeys(checked))

    async def subscribe(self, names: str | Iterable[str], callback: Callable[[Any], Any] | None = None, *,
                        wrap: bool = False, decode: DecodeMode = "dict",
                        queue_size: int = DEFAULT_QUEUE_SIZE,
                        overflow: OverflowPolicy = DEFAULT_OVERFLOW,
                        on_link: LinkHook | None = None) -> Subscription:
        """Receive ``names`` (stream names) through ``callback`` (inline on the loop thread) or, without
        one, through the returned subscription's ``recv()`` / ``async for``.

        ``wrap`` delivers ``{'stream', 'data'}`` dicts; ``decode="raw"`` delivers
        :class:`~binance_ws.engine.delivery.RawMessage` (no JSON decode); a callable decodes the payload
        bytes itself (a typed decoder); ``decode="typed"`` uses :func:`binance_ws.models.decoder_for`
        (streams of one kind per subscription). ``queue_size`` and ``overflow`` bound a queue subscriber.
        ``on_link(state, streams)`` is called on the loop thread with ``"down"`` when the socket carrying
        some of ``names`` is lost unplanned (those ``streams`` may have missed messages) and ``"up"`` once
        they are subscribed on a new socket; never for a make-before-break rotation (nothing is lost).
        Raises :class:`~binance_ws.errors.InvalidStreamError` before connecting for a bad name, and
        :class:`~binance_ws.errors.SubscriptionError` if the server refuses every stream asked for. When
        it refuses only some, the others are delivered as usual: the subscription's ``streams`` drop the
        refused ones and it receives, for each, ``{'e': 'error', 'type': 'subscription', 'm':
        'Subscription refused', 'stream': s, 'code': c, 'msg': m}``. If the connection cannot be opened
        at all, the subscriber gets the max-retries error event instead. On return every stream of the
        subscription is live (see :meth:`wait_ready` for later reconnects).
        """
        checked = self._validate(names)
        if decode == "typed":
            decoders = {models.decoder_for(name, self.market) for name in checked}
            if len(decoders) > 1:
                raise errors.InvalidStreamError(
                    "decode='typed' takes streams of one kind per subscription; subscribe each kind apart")
            decode = decoders.pop()
        sub = Subscription(checked, callback, wrap=wrap, decode=decode, queue_size=queue_size,
                           overflow=overflow, on_close=self._remove, on_link=on_link)
        await self.start()
        if overflow == "block" and callback is None:
            sub.set_flow_hook(lambda paused: self._flow(sub, paused))
        assert self._lock is not None
        # The lock covers changes to routes and plan, never a network wait: concurrent subscribes are
        # merged into as few SUBSCRIBE messages as the rate allows, and a stalled server cannot hold up
        # anyone else's subscribe or unsubscribe.
        async with self._lock:
            new = []
            for name in checked:
                route = self._routes.get(name)
                if route is None:
                    route = self._routes[name] = Route(name, SequenceTracker.for_stream(name, self.market),
                                                               watched=bool(self.settings.no_data_timeout_s))
                    new.append(name)
                route.add(sub)
            self._subs[sub] = None
            for name in new:
                self._opening[name] = self._opening.get(name, 0) + 1
            waits = self._start(self._plan.add(new))
        done = False
        try:
            if waits:
                await asyncio.gather(*waits)
            done = True
        finally:
            for name in new:
                self._opening[name] -= 1
                if not self._opening[name]:
                    del self._opening[name]
            if not done:
                # Cancelled, or failed (a timeout naming refused streams, a connection error): undo what
                # this call registered, at once and without waiting on the network, then let the
                # exception go on. The UNSUBSCRIBE/close that follows runs in the background, bounded.
                for name in new:
                    self._refused.pop(name, None)
                self._background(self._settle(self._forget(sub, checked), "undoing a failed subscribe"),
                                 "binance-ws-undo-subscribe")
                sub._finish()
        refused = {n: self._refused.pop(n) for n in new if n in self._refused}
        if refused:
            # Only the refused streams stop. If that is every stream asked for, there is nothing to
            # deliver and the call raises; otherwise the subscription goes on with the streams the
            # server accepted, and each refused one is reported to it as a subscription error event.
            everything = len(refused) == len(checked)
            async with self._lock:
                for name, exc in refused.items():
                    self._drop_refused(name, exc, sub)
                waits = self._start(self._plan.remove(refused))
                if everything:
                    waits += self._forget(sub, checked)
                    sub._finish()
                else:
                    sub.streams = tuple(n for n in sub.streams if n not in refused)
                    for name, exc in refused.items():
                        sub.push_event(_refused_event(name, exc))
            await self._settle(waits, "dropping refused streams")
            if everything:
                raise StreamsRefused(refused)
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """End ``sub``; streams no other subscriber needs are unsubscribed live (idempotent). Returns
        within about ``request_timeout`` even if the server never answers the UNSUBSCRIBE."""
        await sub.close()

    async def _remove(self, sub: Subscription) -> None:
        if self._lock is None or sub not in self._subs:
            return
        async with self._lock:
            waits = self._forget(sub, sub.streams)
        await self._settle(waits, "unsubscribing")

    def _forget(self, sub: Subscription, names: Iterable[str]) -> list[Awaitable[Any]]:
        """Take ``sub`` off ``names`` (and the manager) now; returns the network waits that remain (the
        UNSUBSCRIBEs and closes of streams nobody needs any more), to be awaited with :meth:`_settle`."""
        self._subs.pop(sub, None)
        gone = []
        for name in names:
            route = self._routes.get(name)
            if route is None:
                continue
            route.remove(sub)
            if not route.subscribers:
                del self._routes[name]
                gone.append(name)
        for paused in self._pausers.values():
            paused.discard(sub)
        return self._start(self._plan.remove(gone))

    async def _settle(self, waits: list[Awaitable[Any]], what: str) -> None:
        """Await ``waits`` (never under the manager lock); a failure is logged, not raised: the local
        state is already right, only the server's side is left behind."""
        if not waits:
            return
        results = await asyncio.gather(*waits, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.warning("%s: %s", what, result if str(result) else type(result).__name__)

    def _background(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def _network_deadline_s(self) -> float:
        """How long an UNSUBSCRIBE may take before the manager goes on without its answer."""
        return self.settings.request_timeout_s + 1.0

    async def _unsubscribe_on(self, conn: Connection, names: list[str]) -> None:
        try:
            async with asyncio.timeout(self._network_deadline_s):
                await conn.unsubscribe(names)
        except TimeoutError:
            log.warning("%s: no answer to UNSUBSCRIBE %s within %.1f s; those streams are already "
                        "detached here", conn.conn_id, names[:5], self._network_deadline_s)
        except errors.ConnectionClosedError:
            return  # the socket is gone: nothing left to unsubscribe there

    def _start(self, actions: list[Action]) -> list[Awaitable[Any]]:
        """Apply the plan's actions to the connection table now; returns what remains to wait for."""
        waits: list[Awaitable[Any]] = []
        for action in actions:
            if isinstance(action, Open):
                conn = Connection(action.conn_id, action.streams, self.settings, self._routes,
                                  on_refused=self._on_refused, on_give_up=self._on_give_up,
                                  on_link=self._on_link,
                                  base_url=self._plan.base_url(action.conn_id))
                conn.tap = self._tap
                self._conns[action.conn_id] = conn
                conn.start()
                waits.append(conn.wait_ready())
            elif isinstance(action, Subscribe):
                waits.append(self._subscribe_on(self._conns[action.conn_id], list(action.streams)))
            elif isinstance(action, Unsubscribe):
                conn_u = self._conns.get(action.conn_id)
                if conn_u is not None:
                    waits.append(self._unsubscribe_on(conn_u, list(action.streams)))
            elif isinstance(action, Close):
                conn_c = self._conns.pop(action.conn_id, None)
                self._pausers.pop(action.conn_id, None)
                if conn_c is not None:
                    # Started now and shielded: a connection out of the table is closed even if whoever
                    # waits for it is cancelled (close() of the manager waits for these).
                    closing = asyncio.create_task(conn_c.close(), name=f"binance-ws-close-{conn_c.conn_id}")
                    self._closing.add(closing)
                    closing.add_done_callback(self._closing.discard)
                    waits.append(asyncio.shield(closing))
        return waits

    async def _subscribe_on(self, conn: Connection, names: list[str]) -> None:
        try:
            refused = await conn.subscribe(names)
        except errors.ConnectionClosedError:
            return  # the connection gave up: its subscribers already have the max-retries event
        self._on_refused(conn, refused)

    def _on_refused(self, conn: Connection, refused: dict[str, errors.SubscriptionError]) -> None:
        """Streams the server refused: a subscribe() in progress raises; otherwise (a reconnect) their
        subscribers get a subscription error event and the streams stop."""
        later = False
        for name, exc in refused.items():
            if name in self._opening:
                self._refused[name] = exc
            else:
                self._drop_refused(name, exc)
                later = True
        if later:
            waits = self._start(self._plan.remove(refused))
            self._background(self._settle(waits, "dropping refused streams"), "binance-ws-refused")

    def _drop_refused(self, name: str, exc: errors.SubscriptionError,
                      caller: Subscription | None = None) -> None:
        """Stop a refused stream: every subscriber but ``caller`` (who gets the exception) is told with
        a subscription error event."""
        route = self._routes.pop(name, None)
        if route is None:
            return
        event = _refused_event(name, exc)
        for sub in route.subscribers:
            if sub is not caller:
                sub.push_event(event)
                self._finish_if_orphaned(sub)

    def _on_give_up(self, conn: Connection) -> None:
        """``conn`` failed ``max_reconnects`` times in a row: tell each affected subscriber once, stop
        its streams there."""
        if self._conns.get(conn.conn_id) is conn:
            del self._conns[conn.conn_id]
        names = list(self._plan.streams_of(conn.conn_id)) or list(conn.streams)
        self._plan.remove(names)
        self._pausers.pop(conn.conn_id, None)
        affected: dict[Subscription, None] = {}
        for name in names:
            route = self._routes.pop(name, None)
            if route is not None:
                affected.update(dict.fromkeys(route.subscribers))
        for sub in affected:
            sub.push_event(errors.max_retries_event())
            self._finish_if_orphaned(sub)

    def _on_link(self, conn: Connection, state: LinkState) -> None:
        """``conn``'s socket went down or came back: tell each subscriber with a link hook, once, about
        its streams there (a rare event, so the routes are walked here rather than kept indexed)."""
        affected: dict[Subscription, list[str]] = {}
        for name in conn.streams:
            route = self._routes.get(name)
            if route is None:
                continue
            for sub in route.subscribers:
                if sub.on_link is not None:
                    affected.setdefault(sub, []).append(name)
        for sub, names in affected.items():
            sub.link_changed(state, tuple(names))

    def _finish_if_orphaned(self, sub: Subscription) -> None:
        """End a subscription none of whose streams is carried any more."""
        if not any(sub in route.subscribers for name in sub.streams
                   if (route := self._routes.get(name)) is not None):
            self._subs.pop(sub, None)
            sub._finish()

    def _flow(self, sub: Subscription, paused: bool) -> None:
        """Back-pressure from a "block" subscriber: pause or resume the connections that feed it."""
        conns: dict[str, Connection] = {}
        for name in sub.streams:
            conn_id = self._plan.connection_of(name)
            conn = self._conns.get(conn_id) if conn_id is not None else None
            if conn_id is not None and conn is not None:
                conns[conn_id] = conn
        for conn_id in conns:
            pausers = self._pausers.setdefault(conn_id, set())
            if paused:
                pausers.add(sub)
            else:
                pausers.discard(sub)
        # Once per connection, after the bookkeeping: resuming one feeds it the frames it held, which may
        # pause the subscriber again (re-entering here); a connection is then never resumed twice.
        for conn_id, conn in conns.items():
            conn.set_paused(bool(self._pausers.get(conn_id)))

    # -- conflated subscriptions (all-market tickers) ---------------------------------------------
    async def subscribe_conflated(self, names: str | Iterable[str], interval_s: float,
                                  callback: Callable[[Any], Any] | None = None, *,
                                  queue_size: int = DEFAULT_QUEUE_SIZE,
                                  overflow: OverflowPolicy = DEFAULT_OVERFLOW) -> Subscription:
        """Receive, every ``interval_s`` seconds, a list of the newest payload per symbol (``s``) among
        those that changed since the last delivery. Payloads that are arrays (``!miniTicker@arr``) are
        merged element by element. Error events pass through at once. Raises like :meth:`subscribe`."""
        if not interval_s > 0:
            raise ValueError(f"interval must be positive, got {interval_s!r}")
        latest: dict[str, Any] = {}
        out = Subscription((), callback, queue_size=queue_size, overflow=overflow)

        def collect(msg: Any) -> None:
            if isinstance(msg, list):
                for item in msg:
                    latest[item.get("s", "")] = item
            elif isinstance(msg, dict) and msg.get("e") == "error":
                out.push_event(msg)
            else:
                latest[msg.get("s", "")] = msg

        inner = await self.subscribe(names, collect)

        async def flush() -> None:
            try:
                while not inner.closed:
                    await asyncio.sleep(interval_s)
                    if latest:
                        batch = list(latest.values())
                        latest.clear()
                        out.push("", batch)
            finally:
                # Closed, given up, or the manager closing: a reader drains and stops.
                out._finish()

        task = asyncio.create_task(flush(), name="binance-ws-conflate")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

        async def close_both(_: Subscription) -> None:
            task.cancel()
            await inner.close()

        out._on_close = close_both
        out.streams = inner.streams
        return out

    async def trading_symbols(self) -> list[str]:
        """Every symbol exchangeInfo lists as TRADING (from ``client.get_exchange_info()`` if the client
        has it, else ``GET {market.rest_url}{rest_prefix}/exchangeInfo``). Raises aiohttp errors on a
        failed request."""
        getter = getattr(self.client, "get_exchange_info", None)
        if getter is not None and asyncio.iscoroutinefunction(getter):
            info = await getter()
        else:
            url = f"{self.market.rest_url}{self.market.rest_prefix}/exchangeInfo"
            timeout = aiohttp.ClientTimeout(total=EXCHANGE_INFO_TIMEOUT_S)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
                resp.raise_for_status()
                info = await resp.json()
        return [s["symbol"] for s in info.get("symbols", []) if s.get("status") == TRADING_STATUS]

    # -- per-socket helpers (python-binance's socket factories) -----------------------------------
    def socket(self, names: str | Iterable[str], *, wrap: bool = False, decode: DecodeMode = "dict",
               queue_size: int = DEFAULT_QUEUE_SIZE,
               overflow: OverflowPolicy = DEFAULT_OVERFLOW) -> StreamSocket:
        """A socket over ``names``, opened by ``async with``; names are validated here, before
        connecting (raises :class:`~binance_ws.errors.InvalidStreamError`)."""
        checked = self._validate(names)
        return StreamSocket(lambda: self.subscribe(checked, wrap=wrap, decode=decode, queue_size=queue_size,
                                                   overflow=overflow))

    def trade_socket(self, symbol: str, **opts: Any) -> StreamSocket:
        """``<symbol>@trade``: every trade. ``opts`` are :meth:`socket`'s."""
        return self.socket(streams.trade(symbol), **opts)

    def agg_trade_socket(self, symbol: str, **opts: Any) -> StreamSocket:
        """``<symbol>@aggTrade``: trades aggregated per taker order and price."""
        return self.socket(streams.agg_trade(symbol), **opts)

    def kline_socket(self, symbol: str, interval: str = KLINE_INTERVAL_1MINUTE, **opts: Any) -> StreamSocket:
        """``<symbol>@kline_<interval>``: the current bar, pushed as it changes."""
        return self.socket(streams.kline(symbol, interval), **opts)

    def depth_socket(self, symbol: str, depth: int | str | None = None, interval: int | None = None,
                     **opts: Any) -> StreamSocket:
        """Diff depth by default; ``depth`` 5/10/20 for the partial book; ``interval=100`` for @100ms."""
        return self.socket(streams.depth(symbol, depth, interval), **opts)

    def symbol_ticker_socket(self, symbol: str, **opts: Any) -> StreamSocket:
        """``<symbol>@ticker``: the symbol's 24 h rolling ticker, every second."""
        return self.socket(streams.ticker(symbol), **opts)

    def book_ticker_socket(self, symbol: str, **opts: Any) -> StreamSocket:
        """``<symbol>@bookTicker``: best bid and ask, real-time."""
        return self.socket(streams.book_ticker(symbol), **opts)

    def multiplex_socket(self, names: Iterable[str], **opts: Any) -> StreamSocket:
        """Messages are ``{'stream': ..., 'data': ...}``; a user data stream is refused."""
        return self.socket(streams.stream_list(names), wrap=True, **opts)

    def miniticker_socket(self, update_time: int = MINI_TICKER_ARR_INTERVAL_MS, **opts: Any) -> StreamSocket:
        """``!miniTicker@arr``; above 1000 ms the arrays are conflated here and delivered every
        ``update_time`` ms (newest per symbol)."""
        if not isinstance(update_time, int) or update_time < MINI_TICKER_ARR_INTERVAL_MS:
            raise errors.InvalidStreamError(
                f"update_time must be an integer number of ms >= {MINI_TICKER_ARR_INTERVAL_MS}, "
                f"got {update_time!r}")
        name = streams.mini_ticker()
        if update_time == MINI_TICKER_ARR_INTERVAL_MS:
            return self.socket(name, **opts)
        return StreamSocket(lambda: self.subscribe_conflated(name, update_time / 1000, **opts))

    def ticker_socket(self, **opts: Any) -> StreamSocket:
        """Every TRADING symbol's 24 h ticker, delivered about once a second as a list of the tickers
        that changed (what the retired ``!ticker@arr`` delivered)."""
        async def open_() -> Subscription:
            names = [streams.ticker(s) for s in await self.trading_symbols()]
            return await self.subscribe_conflated(names, TICKER_ARR_INTERVAL_S, **opts)

        return StreamSocket(open_)


class StreamsRefused(errors.SubscriptionError):
    """Every stream of a :meth:`AsyncSocketManager.subscribe` call was refused; ``refused`` maps each
    to its error (``code`` and ``msg`` are the first one's)."""

    def __init__(self, refused: dict[str, errors.SubscriptionError]) -> None:
        first = next(iter(refused.values()))
        super().__init__(first.code, first.msg, first.request_id)
        self.refused = dict(refused)


def _refused_event(name: str, exc: errors.SubscriptionError) -> dict[str, Any]:
    """The event telling a subscriber that the server refused ``name``."""
    return errors.error_event(errors.ERR_SUBSCRIPTION, errors.MSG_SUBSCRIPTION, stream=name,
                              code=exc.code, msg=exc.msg)


class StreamSocket:
    """One socket of the per-stream API: ``async with`` subscribes and unsubscribes; inside, ``await
    s.recv()`` or ``async for msg in s``."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener = opener
        self.subscription: Subscription | None = None

    async def __aenter__(self) -> StreamSocket:
        self.subscription = await self._opener()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.subscription is not None:
            await self.subscription.close()

    def _sub(self) -> Subscription:
        if self.subscription is None:
            raise RuntimeError("open the socket first: 'async with sm.trade_socket(...) as s'")
        return self.subscription

    async def recv(self) -> Any:
        """The next message; raises :class:`~binance_ws.errors.ConnectionClosedError` once the socket
        has stopped and nothing is left."""
        return await self._sub().recv()

    def __aiter__(self) -> StreamSocket:
        return self

    async def __anext__(self) -> Any:
        return await self._sub().__anext__()


