"""A collector fleet over the simulator: N ``binance-ws collect`` processes, one Redis, one SIGKILL.

The simulator runs in this process with an extra exchange listener that records every trade id it
*produces* (the ground truth, not any client's view). The collectors are real subprocesses
(``python -m binance_ws.cli collect ... --endpoint <sim> --redis <url>``) sharing ``symbols`` x (trade,
depth@100ms). Once every stream is live in Redis, one member is killed with SIGKILL; the run goes on past
the lease TTL, then a consumer group reads every Redis stream back and the trade ids are compared with
the simulator's over the whole window:

* missing: produced, never in Redis (redundancy 1: the takeover's gap; redundancy 2: must be 0);
* duplicated: in Redis more than once (must be 0);
* takeover: from the kill until every slot the dead member held has a live owner again (lease TTL bound);
* resumed: from the kill until the dead member's shards' depth@100ms streams (10 a second) have data
  received by a live member again (redundancy 2: the other owner never stopped);
* gap: the longest run of missing trades of one stream, in seconds of production time;
* backfilled: trades the successor fetched over REST to close the gap (redundancy 1), in how many fills;
* depth breaks: diff-depth messages whose ``U`` does not follow the previous ``u`` in Redis (diff depth
  has no history to fetch: with redundancy 1 the takeover leaves a break a book resync must bridge).

    python -m benchmarks.fleet                          # 200 symbols, redundancy 1 then 2
    python -m benchmarks.fleet --symbols 20 --redundancy 2 --lease-ttl 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from binance_ws.fleet.collector import fleet_prefix
from binance_ws.fleet.dedup import key_of
from binance_ws.sinks.redis import dedup_key_of

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FleetReport:
    symbols: int
    members: int
    redundancy: int
    lease_ttl_s: float
    shards: int
    trades_checked: int = 0
    missing: int = 0
    duplicated: int = 0
    streams_with_missing: int = 0
    longest_gap_s: float = 0.0
    takeover_s: float = 0.0
    resumed_s: float = 0.0
    victim_slots: int = 0
    victim_trade_streams: int = 0
    backfilled: int = 0
    backfills: int = 0
    depth_messages: int = 0
    depth_breaks: int = 0
    redis_entries: int = 0
    run_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    missing_sample: list[str] = field(default_factory=list)


async def _spawn(names: list[str], stream_url: str, rest_url: str, redis_url: str, member: str, *,
                 redundancy: int,
                 ttl: float, shards: int) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "binance_ws.cli", "collect", *names, "--endpoint", stream_url,
        "--redis", redis_url, "--lease-ttl", str(ttl), "--shards", str(shards),
        "--redundancy", str(redundancy), "--name", member, "--rest", rest_url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env=env)


async def _leases(client: Any, shards: int, redundancy: int) -> dict[tuple[int, int], str]:
    keys = [f"{fleet_prefix('spot')}lease:{s}:{k}" for s in range(shards) for k in range(redundancy)]
    values = await client.mget(keys)
    return {(s, k): v.decode() for (s, k), v in zip(
        [(s, k) for s in range(shards) for k in range(redundancy)], values, strict=True) if v is not None}


async def _until(pred: Any, deadline_s: float, what: str, step: float = 0.05) -> float:
    start = time.monotonic()
    while True:
        if await pred():
            return time.monotonic() - start
        if time.monotonic() - start > deadline_s:
            raise TimeoutError(f"{what}: not within {deadline_s:g} s")
        await asyncio.sleep(step)


async def run_fleet(redis_url: str, *, symbols: int = 200, members: int = 3, redundancy: int = 1,
                    ttl: float = 3.0, shards: int = 16, rate: float = 30.0, before_s: float = 3.0,
                    after_s: float | None = None, seed: int = 1) -> FleetReport:
    import redis.asyncio as aioredis

    from binance_ws.sim import Simulator
    from binance_ws.sim.config import Activity, SimConfig
    from binance_ws.sim.exchange import AggTrade, SymbolBook, Trade
    from binance_ws.sinks.redis import RedisReader

    report = FleetReport(symbols, members, redundancy, ttl, shards)
    cfg = SimConfig.market(symbols, seed=seed, activity=Activity(median_rate=rate, sigma=0.3))
    sim = Simulator(cfg)
    lower = {s.symbol: s.symbol.lower() for s in cfg.symbols}
    #: stream -> [(trade id, production time monotonic)]
    produced: dict[str, list[tuple[int, float]]] = {f"{x}@trade": [] for x in lower.values()}

    class Truth:
        def on_level(self, book: SymbolBook, is_bid: bool, price: int, qty: int) -> None:
            return None

        def on_trade(self, book: SymbolBook, trade: Trade) -> None:
            produced[f"{lower[book.symbol]}@trade"].append((trade.id, time.monotonic()))

        def on_agg_trade(self, book: SymbolBook, agg: AggTrade) -> None:
            return None

    sim.exchange.add_listener(Truth())
    trades = list(produced)
    depths = [f"{x}@depth@100ms" for x in lower.values()]
    names = [n for pair in zip(trades, depths, strict=True) for n in pair]
    client = aioredis.Redis.from_url(redis_url)
    procs: list[asyncio.subprocess.Process] = []
    started = time.monotonic()
    try:
        async with sim:
            for i in range(members):
                procs.append(await _spawn(names, sim.stream_url, sim.rest_url, redis_url, f"c{i}",
                                          redundancy=redundancy, ttl=ttl, shards=shards))
            slots = shards * min(redundancy, members)

            async def all_owned() -> bool:
                for p in procs:
                    if p.returncode is not None:
                        err = (await p.stderr.read()).decode() if p.stderr else ""
                        raise RuntimeError(f"a collector exited {p.returncode}: {err.strip()}")
                return len(await _leases(client, shards, redundancy)) == slots

            await _until(all_owned, 30 + 4 * ttl, "every slot owned")
            owned_at = {s: (ids[-1][0] if ids else -1) for s, ids in produced.items()}

            async def all_live() -> bool:
                """Every trade stream has stored an id produced after the slots were all owned."""
                pipe = client.pipeline(transaction=False)
                for s in trades:
                    pipe.hget(dedup_key_of(key_of("spot", s)), "l")
                stored = await pipe.execute()
                # Every symbol trades every second or so: wait for each to trade, and that trade to land.
                return all(v is not None and int(v) > owned_at[s]
                           for s, v in zip(trades, stored, strict=True))

            await _until(all_live, 60, "every stream live in Redis")
            await asyncio.sleep(0.5)
            start_mark = {s: (ids[-1][0] if ids else -1) for s, ids in produced.items()}
            await asyncio.sleep(before_s)
            before = await _leases(client, shards, redundancy)
            victim = "c1"
            victim_slots = [slot for slot, owner in before.items() if owner == victim]
            report.victim_slots = len(victim_slots)
            procs[1].send_signal(signal.SIGKILL)
            killed_ns = time.time_ns()
            killed = time.monotonic()

            async def taken_over() -> bool:
                now = await _leases(client, shards, redundancy)
                return all(now.get(slot) not in (None, victim) for slot in victim_slots)

            report.takeover_s = round(await _until(taken_over, 10 * ttl, "takeover", 0.02), 3)
            await asyncio.sleep(after_s if after_s is not None else ttl + 2.0)
            end_mark = {s: (ids[-1][0] if ids else -1) for s, ids in produced.items()}

            async def caught_up() -> bool:
                pipe = client.pipeline(transaction=False)
                for s in trades:
                    pipe.hget(dedup_key_of(key_of("spot", s)), "l")
                stored = await pipe.execute()
                return all(end_mark[s] <= start_mark[s] or (v is not None and int(v) >= end_mark[s])
                           for s, v in zip(trades, stored, strict=True))

            try:
                await _until(caught_up, 30, "Redis caught up with the simulator")
            except TimeoutError as exc:
                report.notes.append(str(exc))
            for i, p in enumerate(procs):
                if i != 1 and p.returncode is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    await asyncio.wait_for(p.wait(), 20)
                except TimeoutError:
                    p.kill()
                    await p.wait()
        # Read every stream back through a consumer group, as a user of the data would.
        reader = RedisReader(client, names, group="fleet-check", consumer="checker", count=2000,
                             block_ms=200)
        seen: dict[str, list[int]] = {}
        last_u: dict[str, int] = {}
        first_after: dict[str, int] = {}
        first = True
        while True:
            try:  # the first read sets the group up on every stream: give it time on a loaded machine
                msg = await asyncio.wait_for(reader.recv(), 60 if first else 5)
            except TimeoutError:
                break
            first = False
            report.redis_entries += 1
            stream, _, received = reader.entry if reader.entry else ("", "", 0)
            if received > killed_ns and stream not in first_after:
                first_after[stream] = received
            if msg.get("e") == "trade":
                seen.setdefault(stream, []).append(msg["t"])
            elif msg.get("e") == "depthUpdate":
                report.depth_messages += 1
                prev = last_u.get(stream)
                if prev is not None and msg["U"] != prev + 1:
                    report.depth_breaks += 1
                last_u[stream] = msg["u"]
        await reader.ack()
        from binance_ws.fleet.lease import shard_of

        victim_shards = {shard for shard, _ in victim_slots}
        resumed = [first_after.get(n, killed_ns) - killed_ns for n in names
                   if shard_of(n, shards) in victim_shards and n.endswith("@depth@100ms")]
        report.resumed_s = round(max(resumed, default=0) / 1e9, 3)
        report.victim_trade_streams = sum(shard_of(s, shards) in victim_shards for s in trades)
        for _, fields in await client.xrange("binance:spot:events"):
            if fields[b"k"] == b"backfill":
                report.backfills += 1
                report.backfilled += orjson.loads(fields[b"d"])["filled"]
        for s in trades:
            window = [(t, at) for t, at in produced[s] if start_mark[s] < t <= end_mark[s]]
            got = [t for t in seen.get(s, []) if start_mark[s] < t <= end_mark[s]]
            report.trades_checked += len(window)
            report.duplicated += len(got) - len(set(got))
            have = set(got)
            missing = [(t, at) for t, at in window if t not in have]
            report.missing += len(missing)
            if missing:
                if len(report.missing_sample) < 8:
                    (lo, t0), (hi, t1) = missing[0], missing[-1]
                    report.missing_sample.append(
                        f"{s} shard {shard_of(s, shards)}: ids {lo}..{hi} ({len(missing)}) produced "
                        f"{t0 - killed:+.2f}..{t1 - killed:+.2f} s from the kill")
                report.streams_with_missing += 1
                report.longest_gap_s = max(report.longest_gap_s, round(missing[-1][1] - missing[0][1], 3))
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await client.aclose()
    report.run_s = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--redundancy", type=int, action="append",
                        help="repeat for several runs (default: 1 then 2)")
    parser.add_argument("--lease-ttl", type=float, default=3.0)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--rate", type=float, default=30.0, help="order-flow actions/s per symbol (median)")
    parser.add_argument("--json", type=Path, default=None, help="also write the reports here")
    args = parser.parse_args(argv)
    from tests.redis_server import RedisServer

    reports = []
    for redundancy in args.redundancy or [1, 2]:
        with tempfile.TemporaryDirectory() as tmp:
            server = RedisServer(Path(tmp))
            try:
                report = asyncio.run(run_fleet(server.url, symbols=args.symbols, members=args.members,
                                               redundancy=redundancy, ttl=args.lease_ttl,
                                               shards=args.shards, rate=args.rate))
            finally:
                server.stop()
        reports.append(asdict(report))
        print(json.dumps(asdict(report)), flush=True)
    if args.json:
        args.json.write_bytes(orjson.dumps(reports, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
