"""The simulated exchange as one object: engine, feeds, stream server, REST, faults and replay, wired."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from picows import WSUpgradeRequest

from binance_ws.markets import COINM, SPOT, USDM, Market, local_market
from binance_ws.sim import control, rest_account
from binance_ws.sim.accounts import Accounts
from binance_ws.sim.clock import SimClock
from binance_ws.sim.config import SimConfig
from binance_ws.sim.contracts import CONTRACT_MARKETS
from binance_ws.sim.exchange import Exchange
from binance_ws.sim.faults import Faults
from binance_ws.sim.feeds import Feeds
from binance_ws.sim.flow import OrderFlow
from binance_ws.sim.futures.feeds import FuturesFeeds
from binance_ws.sim.futures.product import PRODUCTS, delivered, route_of_name
from binance_ws.sim.futures_accounts import FuturesAccounts
from binance_ws.sim.futures_rest import FuturesRest, MarkNumbers
from binance_ws.sim.hub import StreamHub
from binance_ws.sim.listing import Listing
from binance_ws.sim.replay import Replay
from binance_ws.sim.rest import RestServer
from binance_ws.sim.server import StreamServer
from binance_ws.sim.userstream import ListenKeyListener
from binance_ws.sim.wsapi import WsApiListener

log = logging.getLogger("binance_ws.sim")


class Simulator:
    """A local Binance on loopback.

    ``async with Simulator() as sim:`` starts the stream server and REST on ephemeral ports and a driver
    task that runs the synthetic order flow; ``sim.stream_url`` / ``sim.rest_url`` are what a client
    points at. ``sim.exchange``, ``sim.clock``, ``sim.hub`` and ``sim.faults`` are reachable for tests;
    ``sim.accounts`` holds the accounts and keys, ``sim.futures["usdm"|"coinm"]`` their futures side and
    ``sim.futures_rest[...]`` the ``/fapi/v1`` and ``/dapi/v1`` routes over the same books.
    With ``replay=path`` a recording is served as live traffic instead (see :class:`Replay`).

    This is the one place that wires the parts: each is built with exactly the parts it uses, and
    :class:`Faults` installs its hooks on the parts it affects. No part knows the simulator.
    """

    def __init__(self, config: SimConfig | None = None, *, replay: str | Path | Replay | None = None,
                 **overrides: Any) -> None:
        cfg = config or SimConfig()
        if overrides:
            cfg = dataclasses.replace(cfg, **overrides)
        self.replay: Replay | None = Replay(replay) if isinstance(replay, (str, Path)) else replay
        if self.replay is not None:
            # A replayed symbol comes from the recording alone: engine flow for it would interleave
            # synthetic events with the real ones on the same streams.
            cfg = dataclasses.replace(
                cfg, symbols=tuple(s for s in cfg.symbols if s.symbol not in self.replay.symbols))
        self.config = cfg
        self.clock = SimClock()
        self.hub = StreamHub()
        self.exchange = Exchange(cfg.symbols, self.clock)
        self.accounts = Accounts(self.clock, self.exchange)
        rates = None
        if cfg.activity is not None:
            rates = list(cfg.activity.rates(len(cfg.symbols), cfg.seed))
        self.flow = OrderFlow(self.exchange, seed=cfg.seed, rates=rates)
        self.flow.seed_history(cfg.history_trades, self.clock.now_ms())
        #: The futures product served (``config.product``), or None for spot.
        self.product = PRODUCTS.get(cfg.product)
        if cfg.product != "spot" and self.product is None:
            raise ValueError(f"product must be spot, usdm or coinm, not {cfg.product!r}")
        self.feeds: Feeds | FuturesFeeds
        if self.product is None:
            self.feeds = Feeds(self.exchange, self.hub, self.clock, cfg)
            self.listing = Listing(self.exchange, self.feeds, self.replay)
        else:
            futures = FuturesFeeds(self.exchange, self.hub, self.clock, self.product, seed=cfg.seed,
                                   time_scale=cfg.time_scale)
            self.feeds = futures
            self.listing = Listing(self.exchange, futures, self.replay, book=futures.depth_snapshot)
        self.rest = RestServer(cfg, self.clock, self.exchange, self.listing)
        rest_account.add_routes(self.rest.app, self.accounts)
        #: Per futures product (``usdm``, ``coinm``): the accounts' futures side and the REST routes,
        #: over the same engine (see :mod:`binance_ws.sim.contracts`).
        self.futures: dict[str, FuturesAccounts] = {}
        self.futures_rest: dict[str, FuturesRest] = {}
        for market in CONTRACT_MARKETS:
            self.futures[market.name] = FuturesAccounts(self.clock, self.exchange, self.accounts, market)
            served = isinstance(self.feeds, FuturesFeeds) and market.name == cfg.product
            # Served as this product, REST answers from the stream models: depth in the diff-depth
            # streams' id space, premiumIndex from the @markPrice model (one id space, one mark).
            self.futures_rest[market.name] = FuturesRest(
                market, self.clock, self.exchange, self.accounts, self.futures[market.name],
                depth_source=self.listing.depth_snapshot if served else None,
                mark_source=self._mark_numbers if served else None,
                replayed=self._replayed if served else None)
            self.futures_rest[market.name].add_routes(self.rest.app)
        product = self.product
        # Futures: routed paths, each route's streams only, unsigned ids; no spot WebSocket API.
        self.stream_server = StreamServer(
            cfg, self.hub, self.clock, self.listing.stream_exists, user_stream=self._user_stream,
            is_listen_key=self.accounts.is_listen_key,
            ws_api=self._ws_api if product is None else None,
            routes=product.routes if product is not None else (),
            delivers=self._delivers if product is not None and product.routed else None,
            unsigned_ids_only=product.unsigned_ids_only if product is not None else False)
        self.faults = Faults(self.hub, self.stream_server, self.rest)
        control.add_routes(self.rest.app, self.faults)
        self._driver: asyncio.Task[None] | None = None
        self._replay_task: asyncio.Task[None] | None = None
        self._flow_credit = 0.0
        self.started = False

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> Simulator:
        if self.started:
            return self
        await self.stream_server.start()
        await self.rest.start()
        self.started = True
        self._driver = asyncio.create_task(self._drive(), name="binance-ws-sim-driver")
        if self.replay is not None:
            # A failing replay logs itself at error level (Replay.run) and is raised from stop().
            self._replay_task = asyncio.create_task(self.replay.run(self.hub), name="binance-ws-sim-replay")
        log.info("simulator up: streams %s, REST %s", self.stream_url, self.rest_url)
        return self

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        failure: BaseException | None = None
        for task in (self._driver, self._replay_task):
            if task is not None:
                task.cancel()
                # wait() never raises the task's own CancelledError, only stop()'s (which propagates).
                await asyncio.wait((task,))
                if not task.cancelled() and (exc := task.exception()) is not None:
                    failure = failure or exc  # already logged where it happened (Replay.run, the driver)
        await self.stream_server.stop()
        await self.rest.stop()
        if failure is not None:
            raise failure

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # -- addresses --------------------------------------------------------------------------------
    @property
    def stream_url(self) -> str:
        return f"ws://{self.config.host}:{self.stream_server.port}"

    @property
    def ws_api_url(self) -> str:
        return f"ws://{self.config.host}:{self.stream_server.port}/ws-api/v3"

    @property
    def rest_url(self) -> str:
        return f"http://{self.config.host}:{self.rest.port}"

    @property
    def market(self) -> Market:
        """A market row pointing at this simulator: ``AsyncSocketManager(market=sim.market)``; served as
        USD-M or COIN-M it has that product's rules (and USD-M's ``/public`` stream URL)."""
        if self.config.product == "usdm":
            return local_market(f"{self.stream_url}/public", self.rest_url, "", base=USDM)
        if self.config.product == "coinm":
            return local_market(self.stream_url, self.rest_url, "", base=COINM)
        return local_market(self.stream_url, self.rest_url, self.ws_api_url, base=SPOT)

    # -- what the servers ask ---------------------------------------------------------------------
    def symbols(self) -> list[str]:
        """Uppercase symbols this exchange lists (engine symbols plus replayed ones)."""
        return self.listing.symbols()

    def stream_exists(self, name: str) -> bool:
        """Whether ``name`` is a stream this exchange serves (validated on SUBSCRIBE and in URLs)."""
        return self.listing.stream_exists(name)

    def depth_snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        """The REST ``/depth`` body: a replay's recorded snapshot, else the engine's live book."""
        return self.listing.depth_snapshot(symbol, limit)

    def _replayed(self, symbol: str) -> bool:
        return self.replay is not None and symbol in self.replay.symbols

    def _mark_numbers(self, symbol: str, now: int) -> MarkNumbers:
        """``premiumIndex`` numbers from the futures feeds' mark model (what ``@markPrice`` sends)."""
        assert isinstance(self.feeds, FuturesFeeds)
        return MarkNumbers.from_mark_price(self.feeds.mark_price(symbol, now))

    def _delivers(self, path_route: str | None, name: str) -> bool:
        """Whether a connection on ``path_route`` is sent stream ``name`` (futures routes, PROTOCOL 8);
        replayed names are routed by their form."""
        feeds = self.feeds
        route = feeds.route_of(name) if isinstance(feeds, FuturesFeeds) else None
        return delivered(self.product, path_route, route or route_of_name(name))

    # -- listeners the stream server builds per connection -----------------------------------------
    def _user_stream(self, request: WSUpgradeRequest) -> ListenKeyListener:
        return ListenKeyListener(self.accounts, request)

    def _ws_api(self, request: WSUpgradeRequest) -> WsApiListener:
        return WsApiListener(self.accounts, self.clock, self.exchange, self.listing,
                             self.rest.exchange_info_body, request)

    # -- driving ----------------------------------------------------------------------------------
    def step(self, actions: int = 1) -> None:
        """Run ``actions`` order-flow actions per symbol now and flush every stream that is due."""
        self.flow.step(actions * len(self.exchange.symbols))
        self.feeds.tick(self.clock.now_ms())

    async def _drive(self) -> None:
        cfg = self.config
        last = time.monotonic()
        while True:
            await asyncio.sleep(cfg.tick_s)
            now = time.monotonic()
            rate = self.flow.total_rate if cfg.activity is not None \
                else cfg.flow_rate * len(self.exchange.symbols)
            self._flow_credit += rate * (now - last)
            last = now
            actions = int(self._flow_credit)
            if actions:
                self._flow_credit -= actions
                try:
                    self.flow.step(actions)
                except Exception:  # a bug in the flow must not silently freeze every stream
                    log.exception("order flow step failed")
            try:
                self.feeds.tick(self.clock.now_ms())
            except Exception:
                log.exception("feed tick failed")
