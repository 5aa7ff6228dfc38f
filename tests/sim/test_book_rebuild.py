"""A book rebuilt from the diff stream plus a snapshot by PROTOCOL 5.1 always equals the engine's book,
and agrees with bookTicker whenever their update ids meet: with and without skipped events."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_ws.sim import Simulator
from binance_ws.sim.clock import SimClock
from binance_ws.sim.config import SimConfig
from binance_ws.sim.exchange import Exchange
from binance_ws.sim.feeds import Feeds
from binance_ws.sim.flow import OrderFlow
from binance_ws.sim.hub import StreamHub
from tests.sim._client import connect

Top = tuple[str, str, str, str]


class LocalBook:
    """PROTOCOL 5.1 as a client does it: buffer, snapshot, drop stale, apply, resync on a gap."""

    def __init__(self, fetch: Callable[[], dict[str, Any]]) -> None:
        self.fetch = fetch
        self.buffer: list[dict[str, Any]] = []
        self.synced = False
        self.update_id = 0
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.resyncs = 0
        self.on_applied: Callable[[LocalBook], None] | None = None

    def on_event(self, ev: dict[str, Any]) -> None:
        if self.synced:
            self._apply(ev)
        else:
            self.buffer.append(ev)

    def sync(self) -> None:
        """Steps 2-6 with the buffered events (called once the stream has been buffering)."""
        if self.synced or not self.buffer:
            return
        snap = self.fetch()
        if snap["lastUpdateId"] < self.buffer[0]["U"]:
            return  # step 3: the snapshot is older than the buffer; fetch again later
        self.bids = dict(map(tuple, snap["bids"]))  # type: ignore[arg-type]
        self.asks = dict(map(tuple, snap["asks"]))  # type: ignore[arg-type]
        self.update_id = snap["lastUpdateId"]
        self.synced = True
        buffered, self.buffer = self.buffer, []
        for ev in buffered:
            if self.synced:
                self._apply(ev)
            else:
                self.buffer.append(ev)

    def _apply(self, ev: dict[str, Any]) -> None:
        if ev["u"] <= self.update_id:
            return
        if ev["U"] > self.update_id + 1:
            self.synced = False
            self.resyncs += 1
            self.buffer = [ev]
            return
        for levels, book in ((ev["b"], self.bids), (ev["a"], self.asks)):
            for price, qty in levels:
                if float(qty) == 0.0:
                    book.pop(price, None)
                else:
                    book[price] = qty
        self.update_id = ev["u"]
        if self.on_applied is not None:
            self.on_applied(self)

    def top(self) -> Top:
        bid = max(self.bids, key=float)
        ask = min(self.asks, key=float)
        return bid, self.bids[bid], ask, self.asks[ask]


class Feed:
    combined = False
    micro = False

    def __init__(self, handle: Callable[[dict[str, Any]], None]) -> None:
        self.handle = handle

    def send(self, frame: bytes) -> None:
        self.handle(orjson.loads(frame))

    async def drained(self) -> None:
        return None


def check_against_book_ticker(tickers: dict[int, Top], matches: list[int]) -> Callable[[LocalBook], None]:
    def check(book: LocalBook) -> None:
        seen = tickers.get(book.update_id)
        if seen is not None:
            assert book.top() == seen
            matches.append(book.update_id)
    return check


def rebuild(seed: int, stream: str, buffer_ticks: int, skip_rate: float, ticks: int) -> tuple[int, int]:
    """Run the engine with a rebuilding client; returns (bookTicker matches, resyncs)."""
    clock = SimClock()
    hub = StreamHub()
    exchange = Exchange(SimConfig().symbols, clock)
    flow = OrderFlow(exchange, seed)
    feeds = Feeds(exchange, hub, clock, SimConfig())
    local = LocalBook(lambda: exchange.depth_snapshot("ETHUSDT", 5000))
    tickers: dict[int, Top] = {}
    matches: list[int] = []
    local.on_applied = check_against_book_ticker(tickers, matches)

    def on_ticker(p: dict[str, Any]) -> None:
        tickers[p["u"]] = (p["b"], p["B"], p["a"], p["A"])

    hub.attach(f"ethusdt@{stream}", Feed(local.on_event))
    hub.attach("ethusdt@bookTicker", Feed(on_ticker))
    rng = random.Random(seed)
    if skip_rate:
        hub.filter = lambda name, payload: [] if "@depth" in name and rng.random() < skip_rate else [payload]
    for i in range(ticks):
        flow.step(6)
        clock.advance(10)
        feeds.tick(clock.now_ms())
        if i >= buffer_ticks:
            local.sync()
    # Make sure a last event arrives (a skipped tail would otherwise leave the client unaware).
    hub.filter = None
    exchange.place_order("ETHUSDT", "BUY", "LIMIT", "0.01", "2000.00")
    for _ in range(110):
        clock.advance(10)
        feeds.tick(clock.now_ms())
        local.sync()
    assert local.synced
    assert local.update_id == exchange.symbols["ETHUSDT"].update_id
    assert (local.bids, local.asks) == exchange.book_levels("ETHUSDT")
    return len(matches), local.resyncs


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), stream=st.sampled_from(["depth@100ms", "depth"]),
       buffer_ticks=st.integers(0, 150))
def test_rebuilt_book_equals_engine_book(seed: int, stream: str, buffer_ticks: int) -> None:
    rebuild(seed, stream, buffer_ticks, 0.0, 300)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), stream=st.sampled_from(["depth@100ms", "depth"]),
       skip_rate=st.floats(0.05, 0.5))
def test_rebuilt_book_survives_skipped_events(seed: int, stream: str, skip_rate: float) -> None:
    rebuild(seed, stream, 5, skip_rate, 400)


def test_book_ticker_and_diffs_meet_and_gaps_resync() -> None:
    matches, resyncs = rebuild(3, "depth@100ms", 10, 0.0, 1000)
    assert matches >= 5 and resyncs == 0
    _, resyncs = rebuild(3, "depth@100ms", 10, 0.3, 500)
    assert resyncs > 0


async def test_rebuild_over_real_sockets_with_injected_skips() -> None:
    """The same procedure through the stream server and REST /depth, with skips from ``sim.faults``."""
    async with Simulator(flow_rate=300.0) as sim, aiohttp.ClientSession() as http:
        snapshots: list[dict[str, Any]] = []

        async def fetch() -> None:
            params = {"symbol": "BTCUSDT", "limit": "5000"}
            async with http.get(f"{sim.rest_url}/api/v3/depth", params=params) as r:
                snapshots.append(await r.json())

        local = LocalBook(lambda: snapshots.pop())
        tickers: dict[int, Top] = {}
        matches: list[int] = []
        local.on_applied = check_against_book_ticker(tickers, matches)
        depth = await connect(f"{sim.stream_url}/ws/btcusdt@depth@100ms")
        ticker = await connect(f"{sim.stream_url}/ws/btcusdt@bookTicker")
        try:
            done = 0
            deadline = time.monotonic() + 10

            async def pump(until: Callable[[], bool]) -> None:
                nonlocal done
                while not until():
                    assert time.monotonic() < deadline, "rebuild did not converge"
                    for t in ticker.messages():
                        tickers[t["u"]] = (t["b"], t["B"], t["a"], t["A"])
                    msgs = depth.messages()
                    for ev in msgs[done:]:
                        local.on_event(ev)
                    done = len(msgs)
                    if not local.synced and local.buffer:
                        await fetch()
                        local.sync()
                    await asyncio.sleep(0.02)

            await pump(lambda: local.synced and done > 3)
            sim.faults.skip(3)
            await pump(lambda: local.resyncs >= 1 and local.synced)
            sim.config.flow_rate = 0.0  # freeze the book, let the last window arrive
            book = sim.exchange.symbols["BTCUSDT"]
            await pump(lambda: local.synced and local.update_id == book.update_id)
            assert (local.bids, local.asks) == sim.exchange.book_levels("BTCUSDT")
        finally:
            depth.close()
            ticker.close()
