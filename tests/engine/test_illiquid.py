"""An illiquid symbol of a market shaped like Binance's, for 10 simulated minutes (time compressed 60
times: cadences, server pings and pong deadline): the server answers every ping, the book hardly
changes, and nothing reconnects or refetches. Before the connection protocol (core/lifecycle.py) the
same subscription drew 41 reconnects in 30 s and a depth cache refetched its snapshot 11 times in 8 s."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from binance_ws.depthcache import BookState, DepthCacheManager, SnapshotService
from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.sim import Simulator
from binance_ws.sim.config import Activity, SimConfig

COMPRESSION = 60.0
SIMULATED_S = 600.0


async def test_an_illiquid_symbol_for_ten_simulated_minutes_never_reconnects() -> None:
    cfg = SimConfig.market(40, seed=3, activity=Activity(median_rate=0.02)).compressed(COMPRESSION)
    # Server pings compressed less (every 2 s, 6 s to answer): our pongs share one slot of the message
    # budget a second with our pings, so a pong deadline of one second is not a market Binance runs.
    cfg = dataclasses.replace(cfg, ping_interval_s=2.0, pong_timeout_s=6.0)
    rates = cfg.symbol_rates()
    quiet = min(rates, key=rates.__getitem__)
    assert rates[quiet] < 0.01  # well under one book change a minute of wall time
    symbol = quiet.lower()
    got: list[dict[str, Any]] = []
    async with Simulator(cfg) as sim:
        # Our side knows the server's (compressed) ping cadence, as it knows Binance's 20 s.
        market = dataclasses.replace(sim.market, server_ping_interval_s=cfg.ping_interval_s)
        snapshots = SnapshotService(market)
        async with AsyncSocketManager(market=market, ping_timeout=1.0) as sm:
            await sm.subscribe([f"{symbol}@trade", f"{symbol}@depth@100ms", f"{symbol}@bookTicker"],
                               got.append)
            async with DepthCacheManager(sm, quiet, snapshots=snapshots) as dcm:
                await asyncio.sleep(SIMULATED_S / COMPRESSION)
                book = dcm.get_depth_cache(quiet)
                assert book.state is BookState.SYNCED
            conns = sm.connections
            assert conns
            for conn in conns:
                assert (conn.connects, conn.drops) == (1, 0), conn
            assert snapshots.fetched == 1 and snapshots.failed == 0
    assert not [m for m in got if m.get("e") == "error"]
