"""The sink pump over a real socket: a slow sink slows reading, never loses or reorders a message."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
import pytest

from binance_ws import AsyncSocketManager
from binance_ws.sim import Simulator
from binance_ws.sinks import Entry, Marker, Pump
from tests.engine._util import until


class SlowSink:
    """Keeps everything; each write takes a while, so the subscription's queue fills and pauses."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.entries: list[Entry] = []
        self.markers: list[Marker] = []
        self.batches = 0
        self.closed = False

    async def write(self, entries: Sequence[Entry]) -> None:
        await asyncio.sleep(self.delay)
        self.entries.extend(entries)
        self.batches += 1

    async def mark(self, marker: Marker) -> None:
        self.markers.append(marker)

    async def close(self) -> None:
        self.closed = True


async def test_slow_sink_gets_every_trade_in_order() -> None:
    async with Simulator(flow_rate=3000.0) as sim, AsyncSocketManager(market=sim.market) as sm:
        sub = await sm.subscribe("btcusdt@trade", decode="raw", overflow="block", queue_size=50)
        sink = SlowSink(0.02)
        pump = Pump(sub, sink)
        task = asyncio.create_task(pump.run())
        await until(lambda: len(sink.entries) >= 600, timeout=30, what="600 trades through a slow sink")
        await sub.close()
        await asyncio.wait_for(task, 10)
    ids = [orjson.loads(e.data)["t"] for e in sink.entries]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "a trade was lost or reordered"
    assert all(e.stream == "btcusdt@trade" for e in sink.entries)
    times = [e.received_ns for e in sink.entries]
    assert times == sorted(times)
    # Batching happened (one write per loop turn's worth, not one per message) and the queue's bound held.
    assert sink.batches < len(sink.entries)
    assert sub.peak <= 50 + 10
    assert pump.written == len(sink.entries) and not sink.markers


async def test_pump_refuses_a_dict_subscription(sim: Simulator) -> None:
    async with AsyncSocketManager(market=sim.market) as sm:
        sub = await sm.subscribe("btcusdt@trade")
        with pytest.raises(ValueError, match="decode='raw'"):
            Pump(sub, SlowSink(0))
        await sub.close()
