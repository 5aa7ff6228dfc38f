"""Bounded queues and their overflow policies; back-pressure pauses the socket over real loopback."""

from __future__ import annotations

import asyncio

import pytest

from binance_ws import errors
from binance_ws.engine import AsyncSocketManager
from binance_ws.engine.delivery import Subscription
from binance_ws.sim import Simulator
from tests.engine._util import trade_ids, until


def _drain(sub: Subscription) -> list[object]:
    out = []
    while True:
        try:
            out.append(sub.recv_nowait())
        except asyncio.QueueEmpty:
            return out


def test_drop_oldest_and_drop_newest_keep_the_bound_and_count() -> None:
    oldest = Subscription(["s"], queue_size=3, overflow="drop_oldest")
    newest = Subscription(["s"], queue_size=3, overflow="drop_newest")
    for i in range(10):
        oldest.push("s", i)
        newest.push("s", i)
    oldest.push_event(errors.max_retries_event())  # error events are never dropped
    assert _drain(oldest) == [7, 8, 9, errors.max_retries_event()]
    assert _drain(newest) == [0, 1, 2]
    assert (oldest.dropped, oldest.delivered) == (7, 4)
    assert (newest.dropped, newest.delivered) == (7, 3)


def test_keep_latest_conflates_per_stream() -> None:
    sub = Subscription(["a", "b"], queue_size=10, overflow="keep_latest")
    for i in range(5):
        sub.push("a", ("a", i))
        sub.push("b", ("b", i))
    sub.push_event(errors.max_retries_event())
    assert _drain(sub) == [("a", 4), ("b", 4), errors.max_retries_event()]
    assert sub.dropped == 8


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError):
        Subscription(["s"], overflow="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Subscription(["s"], queue_size=0)
    with pytest.raises(ValueError):
        Subscription(["s"], wrap=True, decode="raw")


async def test_block_pauses_the_socket_and_loses_nothing() -> None:
    async with Simulator(flow_rate=1000.0) as sim, AsyncSocketManager(market=sim.market) as sm:
        sub = await sm.subscribe("btcusdt@trade", queue_size=20, overflow="block")
        conn = sm.connections[0]
        await until(lambda: conn._paused, what="reading paused")
        await asyncio.sleep(0.2)
        # Paused at the socket: the kernel buffers the flow, nothing piles up in the process.
        assert conn.link is not None and conn.link.transport is not None
        assert not conn.link.transport.underlying_transport.is_reading()
        got = [await asyncio.wait_for(sub.recv(), 5) for _ in range(300)]
        assert sub.dropped == 0
        ids = trade_ids(got)
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert conn.drops == 0


async def test_slow_queue_subscriber_with_drop_oldest_never_stops(sim: Simulator) -> None:
    async with AsyncSocketManager(market=sim.market) as sm:
        sub = await sm.subscribe("btcusdt@trade", queue_size=5, overflow="drop_oldest")
        await until(lambda: sub.dropped > 20, what="overflow")
        assert sub.pending == 5 and not sub.closed
        msg = await asyncio.wait_for(sub.recv(), 5)
        assert msg["e"] == "trade"


@pytest.mark.parametrize("limit", [10_000, 300])
async def test_block_keeps_the_queue_within_its_limit_over_a_real_socket(limit: int) -> None:
    """A fast feed and a slow reader: the frames of a read already in progress when the socket is paused
    (thousands, in one picows read) are held by the connection, so the queue never passes its limit,
    however small, and nothing may be lost."""
    streams = ["btcusdt@trade", "ethusdt@trade", "btcusdt@bookTicker", "ethusdt@bookTicker",
               "bnbbtc@bookTicker", "bnbbtc@trade"]
    async with Simulator(flow_rate=50_000.0) as sim, AsyncSocketManager(market=sim.market) as sm:
        sub = await sm.subscribe(streams, queue_size=limit, overflow="block")
        conn = sm.connections[0]
        seen_max = 0
        got: list[dict[str, object]] = []
        pauses = 0
        was_paused = False
        deadline = asyncio.get_running_loop().time() + 6.0
        while asyncio.get_running_loop().time() < deadline:
            # Between two reads by this reader the queue only grows: its length here is its maximum.
            seen_max = max(seen_max, sub.pending)
            got.append(await asyncio.wait_for(sub.recv(), 5))
            if conn._paused and not was_paused:
                pauses += 1
            was_paused = conn._paused
            if len(got) % 50 == 0:
                await asyncio.sleep(0.01)  # the slow reader
        assert pauses >= 1, "the reader never fell behind: the test proves nothing"
        assert seen_max <= limit and sub.peak <= limit, (seen_max, sub.peak)
        assert sub.peak >= limit // 4  # the queue was really used
        assert sub.dropped == 0
        for symbol in ("BTCUSDT", "ETHUSDT", "BNBBTC"):
            ids = [m["t"] for m in got if m.get("e") == "trade" and m["s"] == symbol]
            assert ids == list(range(ids[0], ids[0] + len(ids))), f"{symbol} trades lost or reordered"
