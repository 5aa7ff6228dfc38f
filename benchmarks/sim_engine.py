"""Simulator engine throughput: engine events a second from the synthetic order flow.

An engine event is one book-level change, one trade or one aggregate trade (counted from the books' id
counters, so no listener is added to the path being measured). Three configurations, same process,
same seed, best of ``--rounds``:

* ``engine``: exchange + order flow alone (the baseline);
* ``feeds idle``: plus :class:`Feeds` with nobody subscribed, as a simulator runs before clients come
  (diff windows are still tracked; periodic ticks every 10 ms of simulated time);
* ``feeds busy``: plus a null subscriber on every symbol's ``trade``, ``aggTrade``, ``bookTicker``,
  ``depth@100ms`` and ``depth20@100ms`` streams (payloads built and JSON-encoded);
* ``futures idle`` / ``futures busy``: the same with :class:`FuturesFeeds` (USD-M: shared update ids, four
  depth speeds tracked, mark price and liquidations observed each second); busy adds ``markPrice@1s``.

    python benchmarks/sim_engine.py [--actions 300000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

from binance_ws.sim.clock import SimClock
from binance_ws.sim.config import SimConfig
from binance_ws.sim.exchange import Exchange
from binance_ws.sim.feeds import Feeds
from binance_ws.sim.flow import OrderFlow
from binance_ws.sim.futures.feeds import FuturesFeeds
from binance_ws.sim.futures.product import USDM
from binance_ws.sim.hub import StreamHub

#: Actions between two feed ticks: 10 ms of simulated time at about 3 symbols x 330 actions/s.
ACTIONS_PER_TICK = 10
TICK_MS = 10
BUSY_SUFFIXES = ("trade", "aggTrade", "bookTicker", "depth@100ms", "depth20@100ms")
FUTURES_BUSY_SUFFIXES = (*BUSY_SUFFIXES, "markPrice@1s")


class _Null:
    combined = False
    micro = False

    def send(self, frame: bytes) -> None:
        pass

    async def drained(self) -> None:
        return None


def _events(exchange: Exchange) -> int:
    return sum(b.update_id + b.next_trade_id + b.next_agg_id for b in exchange.symbols.values())


def run(mode: str, actions: int, seed: int = 1) -> tuple[float, int]:
    """Seconds and engine events for ``actions`` flow actions in ``mode``."""
    config = SimConfig()
    clock = SimClock()
    exchange = Exchange(config.symbols, clock)
    flow = OrderFlow(exchange, seed)
    feeds: Feeds | FuturesFeeds | None = None
    if mode != "engine":
        hub = StreamHub()
        futures = mode.startswith("futures")
        feeds = FuturesFeeds(exchange, hub, clock, USDM) if futures else Feeds(exchange, hub, clock, config)
        if mode.endswith("busy"):
            sink = _Null()
            for sym in exchange.symbols:
                for suffix in FUTURES_BUSY_SUFFIXES if futures else BUSY_SUFFIXES:
                    hub.attach(f"{sym.lower()}@{suffix}", sink)
    before = _events(exchange)
    start = time.perf_counter()
    for _ in range(actions // ACTIONS_PER_TICK):
        flow.step(ACTIONS_PER_TICK)
        if feeds is not None:
            clock.advance(TICK_MS)
            feeds.tick(clock.now_ms())
    elapsed = time.perf_counter() - start
    return elapsed, _events(exchange) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes = ("engine", "feeds idle", "feeds busy", "futures idle", "futures busy")
    best = dict.fromkeys(modes, 0.0)
    counts = dict.fromkeys(modes, 0)
    # Rounds interleave the modes so that load from other processes hits them alike.
    for _ in range(args.rounds):
        for mode in modes:
            elapsed, counts[mode] = run(mode, args.actions)
            best[mode] = max(best[mode], counts[mode] / elapsed)
    for mode in modes:
        print(f"{mode:12s} {best[mode]:12,.0f} engine events/s  ({counts[mode]:,} events from "
              f"{args.actions:,} actions)  ratio {best[mode] / best['engine']:.2f}")

if __name__ == "__main__":
    main()
