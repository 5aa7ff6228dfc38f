"""Throughput of the Redis sink: messages a second one collector writes into a local Redis, beside
``redis-benchmark``'s pipelined XADD against the same server in the same run.

The collector side is :class:`~binance_ws.sinks.redis.RedisSink` as ``binance-ws collect`` drives it:
``--pumps`` concurrent writers (one a shard), each handing over batches of entries (trade and diff-depth
payloads of the simulator's shape over ``--streams`` streams, ids consecutive per stream) and awaiting
each before the next, every message through the dedup script and ``XADD MAXLEN ~``. The baseline is
``redis-benchmark -P 16`` running ``XADD <key> MAXLEN ~ 1000000 * d <payload> r <ns>`` over as many keys
(``-r``: half of them given a trade payload, half a depth one, the sink's own payloads, each run for half
the messages: its rate is the messages over the two runs' time), with one connection (``-c 1``, as one
collector's sink mostly has) and with its default 50. Everything runs against one fresh redis-server,
sink and baselines interleaved round by round; the figures are medians over the rounds.

    python -m benchmarks.redis_sink                 # 300,000 messages, 3 rounds
    python -m benchmarks.redis_sink --messages 100000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import orjson

from binance_ws.sinks import Entry
from binance_ws.sinks.redis import RedisSink


def payloads(streams: int, messages: int) -> list[Entry]:
    """``messages`` entries round-robin over ``streams`` streams (half trade, half depth@100ms)."""
    out: list[Entry] = []
    ids = [1_000_000] * streams
    now = time.time_ns()
    for i in range(messages):
        s = i % streams
        ids[s] += 1
        t = ids[s]
        sym = f"SYM{s:04d}USDT"
        if s % 2 == 0:
            data = orjson.dumps({"e": "trade", "E": 1_764_900_000_000 + i, "s": sym, "t": t,
                                 "p": "61800.03000000", "q": "0.00120000", "T": 1_764_900_000_000 + i,
                                 "m": bool(i & 1), "M": True})
            out.append(Entry(now + i, f"{sym.lower()}@trade", data))
        else:
            data = orjson.dumps({"e": "depthUpdate", "E": 1_764_900_000_000 + i, "s": sym, "U": t * 3 - 2,
                                 "u": t * 3, "b": [["61800.01000000", "0.50000000"]],
                                 "a": [["61800.05000000", "0.00000000"], ["61800.07000000", "1.20000000"]]})
            out.append(Entry(now + i, f"{sym.lower()}@depth@100ms", data))
    # A depth update's ids follow on from the previous one of its stream: U = previous u + 1.
    return out


async def sink_rate(url: str, entries: list[Entry], batch: int, pumps: int) -> tuple[float, int, float]:
    """Messages a second through one sink fed by ``pumps`` concurrent writers (a collector's shards),
    each owning a share of the streams and writing batches of up to ``batch``."""
    import redis.asyncio as aioredis

    from binance_ws.fleet.lease import shard_of

    client = aioredis.Redis.from_url(url)
    await client.flushall()
    sink = RedisSink(client, "spot")
    shares: list[list[Entry]] = [[] for _ in range(pumps)]
    for e in entries:
        shares[shard_of(e.stream, pumps)].append(e)

    async def pump(share: list[Entry]) -> None:
        for i in range(0, len(share), batch):
            await sink.write(share[i:i + batch])

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(pump(share) for share in shares))
    await sink.close()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    stored = sink.added
    await client.aclose()
    return len(entries) / elapsed, stored, cpu


def server_cpu_s(port: int) -> float:
    """CPU seconds the redis-server on ``port`` has used."""
    import redis

    with redis.Redis(port=port) as c:
        cpu = c.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def bench_rate(port: int, clients: int, messages: int, streams: int, payload: bytes, kind: str) -> float:
    """``redis-benchmark -P 16``'s XADD rate over ``streams`` keys of ``payload``."""
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-P", "16",
         "-n", str(messages), "-r", str(streams), "--csv", "XADD", f"bench:__rand_int__@{kind}", "MAXLEN",
         "~", "1000000", "*", "d", payload.decode(), "r", str(time.time_ns())],
        check=True, capture_output=True, text=True).stdout
    rows = list(csv.reader(io.StringIO(out)))
    return float(rows[-1][-7])  # the command (first column) quotes JSON badly: count from the end


def bench_mix(port: int, clients: int, messages: int, streams: int, trade: bytes, depth: bytes) -> float:
    """The rate of half the messages as trades over half the keys, then half as depth over the rest."""
    half = messages // 2
    seconds = sum(half / bench_rate(port, clients, half, max(1, streams // 2), payload, kind)
                  for payload, kind in ((trade, "trade"), (depth, "depth")))
    return 2 * half / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_sink", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--batch", type=int, default=4096, help="entries a write (a pump's batch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pumps", type=int, default=16, help="concurrent writers (a collector's shards)")
    args = parser.parse_args(argv)
    if shutil.which("redis-benchmark") is None:
        raise SystemExit("redis-benchmark is not installed (apt-get install redis-server)")
    from tests.redis_server import RedisServer

    entries = payloads(args.streams, args.messages)
    trade, depth = entries[0].data, entries[1].data
    results: dict[str, list[float]] = {"sink": [], "bench_c1": [], "bench_c50": [], "sink_client_us": [],
                                       "sink_server_us": [], "bench_server_us": []}
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        try:
            n = args.messages
            for _ in range(args.rounds):  # interleaved, so drift hits both alike
                cpu = server_cpu_s(server.port)
                rate, stored, client_cpu = asyncio.run(sink_rate(server.url, entries, args.batch, args.pumps))
                results["sink_client_us"].append(client_cpu / n * 1e6)
                results["sink_server_us"].append((server_cpu_s(server.port) - cpu) / n * 1e6)
                if stored != len(entries):
                    raise SystemExit(f"the sink stored {stored} of {len(entries)}")
                results["sink"].append(rate)
                cpu = server_cpu_s(server.port)
                results["bench_c1"].append(bench_mix(server.port, 1, n, args.streams, trade, depth))
                results["bench_server_us"].append((server_cpu_s(server.port) - cpu) / n * 1e6)
                results["bench_c50"].append(bench_mix(server.port, 50, n, args.streams, trade, depth))
        finally:
            server.stop()
    med = {k: statistics.median(v) for k, v in results.items()}
    summary = {"messages": args.messages, "streams": args.streams,
               "payload_bytes": [len(trade), len(depth)], "batch": args.batch, "pumps": args.pumps,
               "rounds": args.rounds, "sink_msgs_per_s": round(med["sink"]),
               "redis_benchmark_P16_c1": round(med["bench_c1"]),
               "redis_benchmark_P16_c50": round(med["bench_c50"]),
               "sink_client_cpu_us_per_msg": round(med["sink_client_us"], 2),
               "sink_server_cpu_us_per_msg": round(med["sink_server_us"], 2),
               "redis_benchmark_c1_server_cpu_us_per_msg": round(med["bench_server_us"], 2),
               "ratio_vs_c1": round(med["sink"] / med["bench_c1"], 3),
               "ratio_vs_c50": round(med["sink"] / med["bench_c50"], 3)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
