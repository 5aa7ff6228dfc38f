"""What each delivery mode costs in the router (no sockets).

Feeds the same payload bytes to :class:`binance_ws.engine.router.Route` as the connection does, with one
callback subscriber in each mode: dict, typed (msgspec model), raw and wrapped (``{'stream','data'}``,
the threaded facade's multiplex socket). Each gets the router's dedicated single-callback feed.

    python -m benchmarks.harness.feed_variants            # 200 000 payloads, best of 5

Ratios are against the dict feed measured in the same process.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from binance_ws.core.sequence import SequenceTracker
from binance_ws.engine.delivery import DecodeMode, Subscription
from binance_ws.engine.router import Route
from binance_ws.models import decoder_for

STREAM = "btcusdt@trade"


def payloads(n: int) -> list[bytes]:
    """Trade payloads with consecutive ids (the in-order case every feed is built for)."""
    return [b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":%d,"p":"61837.63000000",'
            b'"q":"0.02000000","T":1723161255342,"m":true,"M":true}' % (3_735_680_000 + i) for i in range(n)]


def route_feed(decode: DecodeMode, wrap: bool, sink: Callable[[Any], None]) -> Callable[[bytes], None]:
    route = Route(STREAM, SequenceTracker.for_stream(STREAM))
    route.add(Subscription([STREAM], sink, wrap=wrap, decode=decode))
    return route.feed


def best_of(feed: Callable[[bytes], None], data: list[bytes], rounds: int) -> float:
    """Best ns a payload over ``rounds`` passes."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for item in data:
            feed(item)
        best = min(best, (time.perf_counter_ns() - started) / len(data))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = payloads(args.count)
    # The sink counts and drops, as a consumer does: keeping every message alive would make the GC,
    # not the feed, the cost of the dict modes.
    delivered = [0]

    def sink(_: Any) -> None:
        delivered[0] += 1
    variants: dict[str, Callable[[], Callable[[bytes], None]]] = {
        "dict": lambda: route_feed("dict", False, sink),
        "typed": lambda: route_feed(decoder_for(STREAM), False, sink),
        "raw": lambda: route_feed("raw", False, sink),
        "wrap": lambda: route_feed("dict", True, sink),
    }
    results = {}
    for name, make in variants.items():
        # A fresh route (and tracker) each round would restart the sequence; feeding the same ids
        # again would look like duplicates, so every round gets a fresh feed.
        best = float("inf")
        for _ in range(args.rounds):
            delivered[0] = 0
            best = min(best, best_of(make(), data, 1))
            assert delivered[0] == len(data), f"{name}: {delivered[0]} of {len(data)} delivered"
        results[name] = best
    base = results["dict"]
    for name, ns in results.items():
        print(f"{name:<18} {ns:7.0f} ns/payload  {ns / base:5.2f}x dict")


if __name__ == "__main__":
    main()
