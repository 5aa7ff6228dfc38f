"""Stream-server throughput: messages a second that one raw picows client receives over loopback.

Two server paths, measured in the same run against the same client:

* ``hub``: the ordinary path, one ``StreamHub.publish`` per trade (orjson-encoded, one WebSocket frame
  send each), pacing on the connection's drain, as the feeds and replay do. This is the baseline.
* ``blast``: ``/blast?stream=btcusdt@trade`` (pre-generated framed trades, written in chunks).

The client runs in another process, pinned to another core when the machine has two or more; it
counts text frames, times first to last, and checks the last trade id so nothing was lost.

    python benchmarks/sim_server.py                 # 2 000 000 blast messages, 300 000 via the hub
    python benchmarks/sim_server.py --count 5000000 --combined
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time
from multiprocessing.connection import Connection
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from binance_ws.sim import Simulator

STREAM = "btcusdt@trade"


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})


def _client(url: str, count: int, pipe: Connection) -> None:
    """Receive ``count`` text frames from ``url``; send back (first, last, last payload), times from
    ``time.monotonic`` (CLOCK_MONOTONIC: one clock for every process on Linux)."""
    _pin(1)

    text = WSMsgType.TEXT

    class Counter(WSListener):
        def __init__(self) -> None:
            self.n = 0
            self.first = 0.0
            self.last = b""
            self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is not text:
                return
            n = self.n = self.n + 1
            if n == count:
                self.last = frame.get_payload_as_bytes()
                self.done.set_result(time.monotonic())
            elif n == 1:
                self.first = time.monotonic()

    async def run() -> None:
        transport, listener = await ws_connect(Counter, url, max_frame_size=1 << 20,
                                               read_buffer_init_size=1 << 20)
        assert isinstance(listener, Counter)
        pipe.send("connected")
        last = await asyncio.wait_for(listener.done, 300)
        pipe.send((listener.first, last, listener.last))
        transport.disconnect()

    asyncio.run(run())


async def _receive(pipe: Connection, proc: mp.process.BaseProcess) -> Any:
    """The client's next message; fails instead of hanging if the client process died."""
    while not pipe.poll():
        if not proc.is_alive():
            raise RuntimeError(f"benchmark client exited with code {proc.exitcode}")
        await asyncio.sleep(0.005)
    return pipe.recv()


async def _measure(url: str, count: int, produce: Any = None) -> tuple[float, bytes]:
    """Seconds from the start (the producer's, else the first frame's) to the client's last frame."""
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_client, args=(url, count, child), daemon=True)
    proc.start()
    assert await _receive(parent, proc) == "connected"
    started = time.monotonic()
    producer = asyncio.create_task(produce()) if produce is not None else None
    first, last, payload = await _receive(parent, proc)
    if producer is not None:
        await producer
    proc.join(10)
    return last - (started if produce is not None else first), payload


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2_000_000, help="blast messages")
    parser.add_argument("--hub-count", type=int, default=300_000, help="messages through the hub path")
    parser.add_argument("--combined", action="store_true", help="combined wrapper on both paths")
    args = parser.parse_args()
    _pin(0)

    async with Simulator(flow_rate=0.0) as sim:
        base = sim.stream_url
        hub_url = (f"{base}/stream?streams={STREAM}" if args.combined else f"{base}/ws/{STREAM}")

        async def produce() -> None:
            while not sim.hub.has_subscribers(STREAM):
                await asyncio.sleep(0.001)
            t0 = 3_735_680_000
            for i in range(args.hub_count):
                sim.hub.publish(STREAM, {"e": "trade", "E": 1723161255343, "s": "BTCUSDT", "t": t0 + i,
                                         "p": "61837.63000000", "q": "0.02000000", "T": 1723161255342,
                                         "m": True, "M": True})
                if i % 256 == 255:
                    await sim.hub.drained(STREAM)

        hub_s, hub_last = await _measure(hub_url, args.hub_count, produce)
        blast_url = f"{base}/blast?stream={STREAM}&count={args.count}&combined={int(args.combined)}"
        blast_s, blast_last = await _measure(blast_url, args.count)

    for name, last, n in (("hub", hub_last, args.hub_count), ("blast", blast_last, args.count)):
        body = orjson.loads(last)
        trade = body["data"] if args.combined else body
        assert trade["t"] == 3_735_680_000 + n - 1, f"{name}: last id {trade['t']}, messages were lost"
    hub_rate, blast_rate = args.hub_count / hub_s, args.count / blast_s
    wrapper = "combined" if args.combined else "raw"
    print(f"hub   ({wrapper}): {args.hub_count:>9,} msgs in {hub_s:6.3f} s = {hub_rate:>12,.0f} msg/s")
    print(f"blast ({wrapper}): {args.count:>9,} msgs in {blast_s:6.3f} s = {blast_rate:>12,.0f} msg/s")
    print(f"blast / hub = {blast_rate / hub_rate:.1f}x  (cores: {os.cpu_count()}, client pinned apart)")


if __name__ == "__main__":
    asyncio.run(main())
