"""The sink and a fleet member on a real three-node Redis Cluster: every script call's keys share one hash
slot (else the cluster refuses it: CROSSSLOT, or a key of another slot touched from inside a script), the
stream keys keep the names the issue fixes, and redundant writers still store each message once."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
from typing import Any

import orjson

from binance_ws import AsyncSocketManager
from binance_ws.fleet.collector import Collector, fleet_prefix
from binance_ws.fleet.dedup import key_of
from binance_ws.sim import Simulator
from binance_ws.sinks import Entry
from binance_ws.sinks.redis import RedisSink, dedup_key_of


def _trade(sym: str, t: int) -> bytes:
    return orjson.dumps({"e": "trade", "E": 1_700_000_000_000 + t, "s": sym, "t": t, "p": "1", "q": "1",
                         "T": 1, "m": False, "M": True})


def _depth(sym: str, u: int) -> bytes:
    return orjson.dumps({"e": "depthUpdate", "E": 1_700_000_000_000 + u, "s": sym, "U": 2 * u - 1, "u": 2 * u,
                         "b": [], "a": []})


def _kline(e: int) -> bytes:
    return orjson.dumps({"e": "kline", "E": e, "s": "X", "k": {"c": str(e % 3)}})


async def test_redundant_sinks_store_each_message_once_across_the_cluster(redis_cluster: Any) -> None:
    from redis.crc import key_slot

    symbols = [f"S{i:02d}USDT" for i in range(24)]
    streams: dict[str, list[bytes]] = {}
    for sym in symbols:
        streams[f"{sym.lower()}@trade"] = [_trade(sym, t) for t in range(1, 61)]
        streams[f"{sym.lower()}@depth@100ms"] = [_depth(sym, u) for u in range(1, 61)]
    streams["!ticker_1m@arr"] = [_kline(e) for e in range(1, 61)]
    nodes = {redis_cluster.get_node_from_key(key_of("spot", s)).port for s in streams}
    assert len(nodes) == 3  # the streams live on every node: one call across slots would be refused
    assert all(key_slot(dedup_key_of(key_of("spot", s)).encode()) == key_slot(key_of("spot", s).encode())
               for s in streams)
    rng = random.Random(5)
    sinks = [RedisSink(redis_cluster, "spot", hold_s=5.0), RedisSink(redis_cluster, "spot", hold_s=5.0)]

    async def feed(sink: RedisSink) -> None:
        i = 0
        while i < 60:
            n = rng.randint(1, 12)
            await sink.write([Entry(1, s, data) for s, datas in streams.items() for data in datas[i:i + n]])
            i += n
            await asyncio.sleep(0)

    await asyncio.gather(*(feed(s) for s in sinks))
    for sink in sinks:
        await sink.close()
    assert sum(s.added for s in sinks) == 60 * len(streams)
    assert sum(s.held for s in sinks) == 0
    for stream, datas in streams.items():
        rows = await redis_cluster.xrange(key_of("spot", stream))
        assert [f[b"d"] for _, f in rows] == datas, stream  # each once, in order, under its own name


async def test_a_fleet_member_collects_into_the_cluster(redis_cluster: Any) -> None:
    shards = 4
    async with Simulator(flow_rate=300.0) as sim, AsyncSocketManager(market=sim.market) as manager:
        names = [f"{s.lower()}@trade" for s in sim.symbols()]
        member = Collector(redis_cluster, manager, "spot", names, name="a", shards=shards, lease_ttl_s=1.0)
        task = asyncio.create_task(member.run())
        try:
            async def collecting() -> bool:
                leases = [f"{fleet_prefix('spot')}lease:{s}:0" for s in range(shards)]
                if await redis_cluster.mget(leases) != [b"a"] * shards:
                    return False
                lengths = [await redis_cluster.xlen(key_of("spot", n)) for n in names]
                return all(n >= 3 for n in lengths)

            async with asyncio.timeout(30):
                while not await collecting():
                    if task.done():
                        task.result()  # a script the cluster refused ends the member: say why
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await member.stop()
    assert await redis_cluster.mget([f"{fleet_prefix('spot')}lease:{s}:0" for s in range(shards)]) == \
        [None] * shards  # released on stop
    for name in names:
        ids = [orjson.loads(f[b"d"])["t"] for _, f in await redis_cluster.xrange(key_of("spot", name))]
        assert ids == list(range(ids[0], ids[0] + len(ids))), name


async def test_collect_cluster_runs_against_a_cluster_and_leaves_on_sigterm(redis_cluster: Any) -> None:
    """``binance-ws collect --cluster`` as a user runs it: a subprocess, the simulator, the cluster."""
    port = redis_cluster.get_default_node().port
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "binance_ws.cli", "collect", "btcusdt@trade", "ethusdt@trade", "--sim",
        "--cluster", "--redis", f"redis://127.0.0.1:{port}/0", "--shards", "2", "--lease-ttl", "2",
        stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(40):
            while not (await redis_cluster.xlen(key_of("spot", "btcusdt@trade")) >= 3
                       and await redis_cluster.xlen(key_of("spot", "ethusdt@trade")) >= 3):
                assert proc.returncode is None, await proc.stderr.read() if proc.stderr else b""
                await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0, await proc.stderr.read() if proc.stderr else b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert await redis_cluster.mget([f"{fleet_prefix('spot')}lease:{s}:0" for s in range(2)]) == [None, None]
