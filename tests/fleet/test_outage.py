"""A collector rides through Redis going away (a restart, a failover) and gives up, in one line, only
after ``--redis-outage``: the rule with a fake clock, then a real ``binance-ws collect`` against a real
redis-server that is SIGKILLed and started again, the simulator's own trades as the truth."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from binance_ws.fleet.outage import Outage
from tests.paths import REPO
from tests.redis_server import SKIP_REASON, RedisServer, serve


def test_an_outage_backs_off_then_gives_up_at_its_limit() -> None:
    o = Outage(10.0)
    assert not o.down and o.ok(0.0) is None
    delays = [o.failed(100.0 + i * 0.01) for i in range(8)]
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert o.down and o.since == 100.0 and o.outages == 1
    assert o.failed(109.5) == 0.5  # never waits past the limit
    assert o.failed(110.0) is None  # the limit is counted from the first failure, not the last
    assert o.ok(110.2) == pytest.approx(10.2)
    assert not o.down
    assert o.failed(200.0) == 0.05  # a new outage starts from the first delay again
    assert o.outages == 2


def test_an_outage_limit_of_zero_gives_up_at_once_and_a_negative_one_is_refused() -> None:
    assert Outage(0.0).failed(5.0) is None
    with pytest.raises(ValueError):
        Outage(-1.0)


class _Truth:
    """The simulator's trades as they happen: stream -> trade ids."""

    def __init__(self, lower: dict[str, str]) -> None:
        self.lower = lower
        self.ids: dict[str, list[int]] = {f"{x}@trade": [] for x in lower.values()}

    def on_level(self, book: Any, is_bid: bool, price: int, qty: int) -> None:
        return None

    def on_trade(self, book: Any, trade: Any) -> None:
        self.ids[f"{self.lower[book.symbol]}@trade"].append(trade.id)

    def on_agg_trade(self, book: Any, agg: Any) -> None:
        return None

    def last(self) -> dict[str, int]:
        return {s: (ids[-1] if ids else -1) for s, ids in self.ids.items()}


async def _spawn(names: list[str], stream_url: str, redis_url: str, *extra: str,
                 name: str = "m") -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # No --rest: nothing is backfilled, so a message lost in the outage would show as a missing id.
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "binance_ws.cli", "collect", *names, "--endpoint", stream_url,
        "--redis", redis_url, "--lease-ttl", "2", "--shards", "4", "--name", name, *extra,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env=env)


async def _stored_last(client: Any, trades: list[str]) -> dict[str, int]:
    from binance_ws.fleet.dedup import key_of
    from binance_ws.sinks.redis import dedup_key_of

    pipe = client.pipeline(transaction=False)
    for s in trades:
        pipe.hget(dedup_key_of(key_of("spot", s)), "l")
    return {s: (int(v) if v is not None else -1) for s, v in zip(trades, await pipe.execute(), strict=True)}


async def _until(pred: Any, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not await pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {deadline_s:g} s")
        await asyncio.sleep(0.05)


@pytest.fixture
def aof_redis(tmp_path: Path) -> Any:
    """A redis-server that writes every change to its append-only file before answering, so one
    SIGKILLed and started again has everything it acknowledged (a restart, as in production)."""
    yield from serve(tmp_path, "--appendonly", "yes", "--appendfsync", "always")


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("members", "down_s"), [(1, 3.0), (2, 5.0)])
async def test_collectors_ride_through_a_redis_restart_losing_and_doubling_nothing(
        aof_redis: RedisServer, members: int, down_s: float) -> None:
    """One member and a 3 s outage; two members and 5 s, past the 2 s lease TTL: the leases lapse
    while Redis is away, and the members claim the slots again when it is back."""
    import orjson
    import redis.asyncio as aioredis

    from binance_ws.sim import Simulator
    from binance_ws.sim.config import Activity, SimConfig

    cfg = SimConfig.market(4, seed=3, activity=Activity(median_rate=30.0, sigma=0.2))
    truth = _Truth({s.symbol: s.symbol.lower() for s in cfg.symbols})
    trades = list(truth.ids)
    names = [n for t in trades for n in (t, t.replace("@trade", "@depth@100ms"))]
    client = aioredis.Redis.from_url(aof_redis.url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with Simulator(cfg) as sim:
            sim.exchange.add_listener(truth)
            for i in range(members):
                procs.append(await _spawn(names, sim.stream_url, aof_redis.url, name=f"m{i}"))

            async def live_after(mark: dict[str, int]) -> bool:
                assert all(p.returncode is None for p in procs), "a collector exited"
                stored = await _stored_last(client, trades)
                return all(stored[s] > mark[s] for s in trades)

            await _until(lambda: live_after({s: -1 for s in trades}), 60, "every trade stream in Redis")
            start = truth.last()
            await _until(lambda: live_after(start), 30, "trades after the start mark stored")
            aof_redis.kill()
            down_ids = truth.last()
            await asyncio.sleep(down_s)  # Redis is away; the market goes on
            assert all(p.returncode is None for p in procs), f"a collector gave up on a {down_s:g} s outage"
            assert truth.last() != down_ids, "the simulator traded nothing while Redis was away"
            await asyncio.to_thread(aof_redis.start)
            await asyncio.sleep(1.0)
            end = truth.last()
            await _until(lambda: live_after({s: end[s] - 1 for s in trades}), 30,
                         "Redis caught up with the simulator after the restart")
            errs = []
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                assert await asyncio.wait_for(p.wait(), 30) == 0
                assert p.stderr is not None
                errs.append((await p.stderr.read()).decode())
        assert any("Redis does not answer the sink" in e for e in errs), errs
        assert any("Redis answers the sink again after" in e for e in errs), errs
        for s in trades:
            got = [orjson.loads(f[b"d"])["t"] for _, f in await client.xrange(f"binance:spot:{s}")]
            window = [t for t in got if start[s] < t <= end[s]]
            expected = [t for t in truth.ids[s] if start[s] < t <= end[s]]
            assert window == expected, f"{s}: {len(expected)} traded, {len(window)} stored"
            assert len(got) == len(set(got)), f"{s}: an id stored twice"
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await client.aclose()


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_collector_gives_up_in_one_line_once_redis_is_away_past_the_limit(
        aof_redis: RedisServer) -> None:
    from binance_ws.sim import Simulator
    from binance_ws.sim.config import Activity, SimConfig

    cfg = SimConfig.market(2, seed=4, activity=Activity(median_rate=30.0, sigma=0.2))
    names = [f"{s.symbol.lower()}@trade" for s in cfg.symbols]
    async with Simulator(cfg) as sim:
        proc = await _spawn(names, sim.stream_url, aof_redis.url, "--redis-outage", "1.5")
        try:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(aof_redis.url)
            try:
                async def stored() -> bool:
                    assert proc.returncode is None, "the collector exited"
                    return all(v >= 0 for v in (await _stored_last(client, names)).values())

                await _until(stored, 60, "every trade stream in Redis")
            finally:
                await client.aclose()
            aof_redis.kill()
            killed = time.monotonic()
            code = await asyncio.wait_for(proc.wait(), 30)
            # It gives up at the limit and leaves without waiting for Redis again (no handover, no
            # final flush): a few seconds for the process to wind down on a loaded machine.
            assert time.monotonic() - killed < 1.5 + 8
            assert proc.stderr is not None
            err = (await proc.stderr.read()).decode().splitlines()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert code == 1
    last = err[-1]
    assert last.startswith("error: Redis did not answer") and "for 1.5 s" in last, "\n".join(err)
    assert "Traceback" not in "\n".join(err)


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_a_collector_rides_through_a_redis_cluster_node_restart(tmp_path: Path) -> None:
    """``collect --cluster``: one of three primaries (AOF) SIGKILLed for 3 s and started again; the
    cluster is down meanwhile (CLUSTERDOWN, refused connections), then every trade is stored once."""
    import orjson
    from redis.asyncio.cluster import RedisCluster

    from binance_ws.fleet.dedup import key_of
    from binance_ws.sim import Simulator
    from binance_ws.sim.config import Activity, SimConfig
    from binance_ws.sinks.redis import dedup_key_of
    from tests.redis_server import RedisClusterServers

    if shutil.which("redis-server") is None:
        pytest.skip(SKIP_REASON)
    servers = RedisClusterServers(tmp_path, 3, "--appendonly", "yes", "--appendfsync", "always")
    client = RedisCluster(host="127.0.0.1", port=servers.port)
    cfg = SimConfig.market(6, seed=5, activity=Activity(median_rate=30.0, sigma=0.2))
    truth = _Truth({s.symbol: s.symbol.lower() for s in cfg.symbols})
    trades = list(truth.ids)
    proc = None
    try:
        await client.initialize()
        async def stored_last() -> dict[str, int]:
            out = {}
            for s in trades:
                v = await client.hget(dedup_key_of(key_of("spot", s)), "l")
                out[s] = int(v) if v is not None else -1
            return out

        async def live_after(mark: dict[str, int]) -> bool:
            assert proc is not None and proc.returncode is None, "the collector exited"
            stored = await stored_last()
            return all(stored[s] > mark[s] for s in trades)

        async with Simulator(cfg) as sim:
            sim.exchange.add_listener(truth)
            proc = await _spawn(trades, sim.stream_url, f"redis://127.0.0.1:{servers.port}/0", "--cluster")
            await _until(lambda: live_after({s: -1 for s in trades}), 60, "every trade stream in Redis")
            start = truth.last()
            await _until(lambda: live_after(start), 30, "trades after the start mark stored")
            slots = {s: await client.cluster_keyslot(key_of("spot", s)) for s in trades}
            victim = servers.nodes[1]  # a third of the slots: some of the streams live there
            victim.kill()
            await asyncio.sleep(3.0)
            assert proc.returncode is None, "the collector gave up on a 3 s node outage"
            await asyncio.to_thread(victim.start)
            await asyncio.sleep(1.0)
            end = truth.last()
            await client.aclose()
            client = RedisCluster(host="127.0.0.1", port=servers.port)  # a fresh view of the cluster
            await client.initialize()
            await _until(lambda: live_after({s: end[s] - 1 for s in trades}), 60,
                         "Redis caught up with the simulator after the node came back")
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            assert proc.stderr is not None
            err = (await proc.stderr.read()).decode()
        assert "Traceback" not in err and "never retrieved" not in err, err
        # Some of the streams lived on the node that went away (it holds the middle third of the slots).
        assert any(16384 // 3 <= slot < 2 * 16384 // 3 for slot in slots.values()), slots
        # The cluster refused writes while a primary was away (CLUSTERDOWN): the sink waited them out.
        assert "Redis does not answer the sink" in err and "Redis answers the sink again" in err, err
        for s in trades:
            got = [orjson.loads(f[b"d"])["t"] for _, f in await client.xrange(key_of("spot", s))]
            window = [t for t in got if start[s] < t <= end[s]]
            expected = [t for t in truth.ids[s] if start[s] < t <= end[s]]
            assert window == expected, f"{s}: {len(expected)} traded, {len(window)} stored"
            assert len(got) == len(set(got)), f"{s}: an id stored twice"
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await client.aclose()
        servers.stop()
