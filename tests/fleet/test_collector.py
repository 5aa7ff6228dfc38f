"""Fleet members in one process against a real redis-server and the simulator: a late member gets its
share by handover (the Want / Release path), and a member that stops hands its shards back, both without
a gap (no backfill here: every trade id in Redis follows the one before)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from typing import Any

import orjson

from binance_ws import AsyncSocketManager
from binance_ws.fleet.collector import Collector, fleet_prefix
from binance_ws.sim import Simulator

TTL_S = 1.0
SHARDS = 4


async def _leases(client: Any) -> Counter[str]:
    values = await client.mget([f"{fleet_prefix('spot')}lease:{s}:0" for s in range(SHARDS)])
    return Counter(v.decode() for v in values if v is not None)


async def _until(pred: Any, deadline_s: float = 30) -> None:
    async with asyncio.timeout(deadline_s):
        while not await pred():
            await asyncio.sleep(0.05)


async def test_a_late_member_takes_its_share_and_a_leaving_one_hands_back_without_a_gap(
        redis_client: Any) -> None:
    async with Simulator(flow_rate=300.0) as sim, AsyncSocketManager(market=sim.market) as m1, \
            AsyncSocketManager(market=sim.market) as m2:
        names = [f"{s.lower()}@trade" for s in sim.symbols()] + [f"{s.lower()}@depth@100ms"
                                                                   for s in sim.symbols()]
        a = Collector(redis_client, m1, "spot", names, name="a", shards=SHARDS, lease_ttl_s=TTL_S)
        b = Collector(redis_client, m2, "spot", names, name="b", shards=SHARDS, lease_ttl_s=TTL_S)
        run_a = asyncio.create_task(a.run())
        run_b: asyncio.Task[None] | None = None
        try:
            async def a_has_all() -> bool:
                return await _leases(redis_client) == {"a": SHARDS}

            await _until(a_has_all)
            run_b = asyncio.create_task(b.run())

            async def balanced() -> bool:
                return await _leases(redis_client) == {"a": SHARDS // 2, "b": SHARDS // 2}

            await _until(balanced)
            assert a.released == SHARDS // 2 and b.claimed == SHARDS // 2
            await asyncio.sleep(1.0)  # trades after the handover land too
            run_b.cancel()  # as SIGTERM does: the member stops stepping, then leaves
            with contextlib.suppress(asyncio.CancelledError):
                await run_b
            await b.stop()

            async def a_has_all_again() -> bool:
                return await _leases(redis_client) == {"a": SHARDS}

            await _until(a_has_all_again)  # b handed its shards over as it left
            await asyncio.sleep(1.0)
        finally:
            for task in (run_a, run_b):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await a.stop()
            await b.stop()
    checked = 0
    for name in names:
        rows = await redis_client.xrange(f"binance:spot:{name}")
        if name.endswith("@trade"):
            ids = [orjson.loads(f[b"d"])["t"] for _, f in rows]
            assert ids == list(range(ids[0], ids[0] + len(ids))), name  # no gap, no duplicate
            checked += len(ids)
        else:
            us = [(orjson.loads(f[b"d"])["U"], orjson.loads(f[b"d"])["u"]) for _, f in rows]
            assert all(u2 == u1 + 1 for (_, u1), (u2, _) in itertools.pairwise(us)), name
    assert checked > 100
