"""The engine's per-frame cost, without sockets: the hot path against a bare picows + orjson listener.

Both listeners get the same picows ``WSFrame`` objects (combined trade frames built with picows' own
test helper) and call the same callback:

* ``raw``: ``orjson.loads(frame.get_payload_as_memoryview())["data"]`` then the callback: the floor.
* ``engine``: :class:`binance_ws.engine.connection.Link` ``on_ws_frame``: read the stream name from the
  prefix, look it up, decode the payload slice, check the trade id sequence, call the callback.
* ``metrics``: ``engine`` with :mod:`binance_ws.metrics` watching (its frame tap counts each frame per
  stream and files the lag of one in ``LAG_SAMPLE_EVERY``): the cost of ``--metrics-port``, as a
  ratio to ``engine``.

The end-to-end figures over loopback, with the simulator in another process, are in
``benchmarks/socket_managers.py``; this one isolates what the engine adds per frame, so a regression
shows up without the noise of a shared machine.

    python benchmarks/engine_throughput.py             # 1 and 10 streams, 200 000 frames, best of 5
    python benchmarks/engine_throughput.py --count 1000000 --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport
from picows.picows import _make_test_ws_frame  # type: ignore[attr-defined]

from binance_ws.core.backoff import BackoffPolicy
from binance_ws.core.sequence import SequenceTracker
from binance_ws.engine.connection import Connection, EngineSettings, Link
from binance_ws.engine.delivery import Subscription
from binance_ws.engine.router import Route, RouteTable, route_key
from binance_ws.markets import local_market
from binance_ws.metrics import LAG_SAMPLE_EVERY, FrameTap


def frames(count: int, streams: list[str]) -> list[WSFrame]:
    """``count`` combined trade frames, round robin over ``streams``, ids counting up per stream."""
    out = []
    for i in range(count):
        stream = streams[i % len(streams)]
        body = orjson.dumps({"e": "trade", "E": 1723161255343, "s": stream.split("@")[0].upper(),
                             "t": 1 + i // len(streams), "p": "61837.63000000", "q": "0.02000000",
                             "T": 1723161255342, "m": True, "M": True})
        payload = b'{"stream":"' + stream.encode() + b'","data":' + body + b"}"
        out.append(_make_test_ws_frame(WSMsgType.TEXT, payload, True, False))
    return out


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, msg: dict[str, Any]) -> None:
        self.n += 1


class RawListener(WSListener):  # type: ignore[misc]
    def __init__(self, callback: Counter) -> None:
        super().__init__()
        self.callback = callback

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            self.callback(orjson.loads(frame.get_payload_as_memoryview())["data"])


def engine_listener(streams: list[str], callback: Counter, tap: FrameTap | None = None) -> Link:
    market = local_market("ws://127.0.0.1:1", "http://127.0.0.1:1")
    settings = EngineSettings(market=market, backoff=BackoffPolicy(), ping_interval_s=20.0)
    routes = {}
    for name in streams:
        route = routes[name] = Route(name, SequenceTracker.for_stream(name, market))
        route.add(Subscription([name], callback))
    conn = Connection("bench", streams, settings, routes, on_refused=lambda *a: None,
                      on_give_up=lambda c: None)
    table = RouteTable()
    for name in streams:
        table[route_key(name)] = routes[name]
    link = Link(conn, table)
    table.refresh()  # what the event loop would do before the first frame
    link.set_tap(None if tap is None else tap.feed)
    return link


def run(listener: WSListener, batch: list[WSFrame]) -> float:
    on_frame = listener.on_ws_frame
    t0 = time.perf_counter()
    for frame in batch:
        on_frame(None, frame)
    return time.perf_counter() - t0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for n_streams in (1, 10):
        streams = [f"coin{i}usdt@trade" for i in range(n_streams)]
        batch = frames(args.count, streams)
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name in ("raw", "engine", "metrics"):
                counter = Counter()
                tap = FrameTap() if name == "metrics" else None
                listener = RawListener(counter) if name == "raw" else engine_listener(streams, counter, tap)
                elapsed = run(listener, batch)
                assert counter.n == args.count, (name, counter.n)
                if tap is not None:
                    assert sum(c.frames for c in tap.streams.values()) == args.count
                    assert sum(c.lag_count for c in tap.streams.values()) >= args.count // LAG_SAMPLE_EVERY
                best[name] = min(best.get(name, float("inf")), elapsed)
        for name in ("raw", "engine", "metrics"):
            rate = args.count / best[name]
            per_msg_ns = best[name] / args.count * 1e9
            print(f"{n_streams:>2} stream(s) {name:<7} {rate:>12,.0f} msg/s  {per_msg_ns:6.0f} ns/msg  "
                  f"{best['raw'] / best[name]:.2f} x raw")
        ratio = best["engine"] / best["metrics"]
        print(f"{n_streams:>2} stream(s) metrics on: {ratio:.2f} x the rate without")


if __name__ == "__main__":
    asyncio.run(main())
