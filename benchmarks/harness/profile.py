"""cProfile of binance-ws's receive path: where a message's CPU goes, by function.

The load server runs in its own process (core 0) as in the suite; the client runs here, in-process under
cProfile (core 1), so the profile holds only the client's work: picows' frame callback, the router, the
decode, the delivery and the callback.

    python -m benchmarks.harness.profile --mode typed --streams 10 --count 300000
    python -m benchmarks.harness.profile --threaded --streams 10      # the seed facade's multiplex path

cProfile adds a fixed cost to every Python-level call, so the absolute times are inflated; the shares
and call counts are what it is for.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing as mp
import pstats
import threading
import time
from typing import Any

from benchmarks.harness.loadserver import Scenario, pin, serve
from benchmarks.harness.runner import CLIENT_CORE
from benchmarks.harness.suite import SINGLE_STREAM, TEN_STREAMS
from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.markets import local_market
from binance_ws.models import decoder_for
from binance_ws.websockets import BinanceSocketManager


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("dict", "typed", "raw"), default="dict")
    parser.add_argument("--streams", type=int, choices=(1, 10), default=1)
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--threaded", action="store_true", help="BinanceSocketManager (dict only)")
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    names = SINGLE_STREAM if args.streams == 1 else TEN_STREAMS
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(Scenario(names, args.count, 0), child), daemon=True)
    server.start()
    _, port = parent.recv()
    pin(CLIENT_CORE)
    market = local_market(f"ws://127.0.0.1:{port}", "http://127.0.0.1:9")
    done = threading.Event()
    count = [0]

    def on(_: Any) -> None:
        n = count[0] = count[0] + 1
        if n == args.count:
            done.set()

    profiler = cProfile.Profile()
    if args.threaded:
        bm = BinanceSocketManager(market=market)
        bm.start()
        if args.streams == 1:
            bm.start_trade_socket("BTCUSDT", on)
        else:
            bm.start_multiplex_socket(list(names), on)
        time.sleep(1.0)  # let the socket open before the server starts
        # The callbacks run on the facade's loop thread: profile that thread.
        assert bm._loop is not None
        bm._loop.call_soon_threadsafe(profiler.enable)
        started = time.perf_counter()
        parent.send("go")
        done.wait(120)
        elapsed = time.perf_counter() - started
        bm._loop.call_soon_threadsafe(profiler.disable)
        time.sleep(0.2)
        bm.close()
    else:
        decode: Any = decoder_for(names[0]) if args.mode == "typed" else args.mode

        async def run() -> float:
            async with AsyncSocketManager(market=market) as sm:
                await sm.subscribe(list(names), on, decode=decode)
                loop = asyncio.get_running_loop()
                profiler.enable()
                started = time.perf_counter()
                parent.send("go")
                await loop.run_in_executor(None, done.wait, 120)
                elapsed = time.perf_counter() - started
                profiler.disable()
                return elapsed

        elapsed = asyncio.run(run())
    parent.send("stop")
    server.join(5)
    kind = "threaded" if args.threaded else args.mode
    print(f"{kind}, {args.streams} stream(s): {count[0]:,} messages in {elapsed:.2f} s under cProfile")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
