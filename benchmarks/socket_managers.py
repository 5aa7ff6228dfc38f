"""Messages a second into a callback: the threaded and asyncio socket managers against raw picows + orjson.

Same run, same simulator, same frames; each client in turn, best of ``--rounds``:

* ``raw``: a bare picows listener that ``orjson.loads`` each combined frame and calls the callback with
  its ``data``: the floor any Python client pays, and the baseline (1.00).
* ``asyncio``: ``AsyncSocketManager.subscribe(names, callback)``.
* ``threaded``: ``BinanceSocketManager.start_trade_socket`` per stream, the seed API (callbacks on its
  engine thread).

Cases:

* ``1 stream``: ``btcusdt@trade`` from the simulator's blast mode (pre-framed trades written in
  chunks), so the server is never the limit. The managers reach it through their normal
  ``/stream?streams=`` URL: the market's stream base points at ``/blast`` and the rest of the URL rides
  in an ignored query parameter.
* ``10 streams``: ten trade streams on one combined connection, round robin; the simulator writes
  pre-built frames in chunks to the client's connection once every stream is subscribed (as blast
  does for one stream). The last line shows the simulator's own time: when it is close to a client's
  time, that client was waiting for the server and its rate is a lower bound.

The simulator runs in another process pinned to core 0; this process is pinned to core 1 (when there
are two). Every client checks it got every message with contiguous trade ids per stream.

    python benchmarks/socket_managers.py                       # 300 000 / 200 000 messages, 3 rounds
    python benchmarks/socket_managers.py --count 1000000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from binance_ws import AsyncSocketManager, BinanceSocketManager
from binance_ws.markets import local_market
from binance_ws.sim import Simulator
from binance_ws.sim.config import SymbolSpec

SYMBOLS = [SymbolSpec(f"COIN{i}USDT", f"COIN{i}", "USDT", 100.0 + i) for i in range(10)]
STREAMS = [f"{s.symbol.lower()}@trade" for s in SYMBOLS]
BLAST_STREAM = "btcusdt@trade"
#: The blast server numbers trades from this id (binance_ws.sim.server).
BLAST_FIRST_ID = 3_735_680_000


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})


# -- the simulator process --------------------------------------------------------------------------

def _frame(body: bytes) -> bytes:
    """An unmasked final text frame (RFC 6455 5.2), as a server sends it."""
    size = len(body)
    if size < 126:
        return bytes((0x81, size)) + body
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + body
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + body


def _frames(count: int, next_id: dict[str, int], per_chunk: int = 256) -> list[bytes]:
    """``count`` combined trade frames, round robin over STREAMS, pre-built in chunks: the publishing
    loop then costs the server almost nothing, so the client is what is measured."""
    chunks = []
    parts = []
    for i in range(count):
        stream = STREAMS[i % len(STREAMS)]
        tid = next_id[stream]
        next_id[stream] = tid + 1
        body = orjson.dumps({"e": "trade", "E": 1723161255343, "s": stream[:-6].upper(), "t": tid,
                             "p": "61837.63000000", "q": "0.02000000", "T": 1723161255342, "m": True,
                             "M": True})
        parts.append(_frame(b'{"stream":"' + stream.encode() + b'","data":' + body + b"}"))
        if len(parts) == per_chunk:
            chunks.append(b"".join(parts))
            parts = []
    if parts:
        chunks.append(b"".join(parts))
    return chunks


def _server(pipe: Connection) -> None:
    _pin(0)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        symbols = (*SYMBOLS, SymbolSpec("BTCUSDT", "BTC", "USDT", 61_800.0))
        async with Simulator(flow_rate=0.0, symbols=symbols) as sim:
            pipe.send(sim.stream_url)
            next_id = dict.fromkeys(STREAMS, 1)
            while True:
                cmd, count = await loop.run_in_executor(None, pipe.recv)
                if cmd == "stop":
                    return
                if cmd == "idle":
                    # The previous client is gone: the next one's subscriptions are its own.
                    while sim.hub.subscribed_streams():
                        await asyncio.sleep(0.001)
                    pipe.send("idle")
                    continue
                while not all(sim.hub.has_subscribers(s) for s in STREAMS):
                    await asyncio.sleep(0.001)
                conns = [c for c in sim.stream_server.connections.values() if c.kind == "stream"]
                assert len(conns) == 1, "one combined connection expected"
                conn = conns[0]
                chunks = _frames(count, next_id)
                write = conn.transport.underlying_transport.write
                t0 = time.perf_counter()
                for chunk in chunks:
                    write(chunk)
                    await conn.drained()
                pipe.send(time.perf_counter() - t0)

    asyncio.run(run())


# -- clients ----------------------------------------------------------------------------------------

class Meter:
    """The callback every client calls: counts, times first to last, checks ids per symbol."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.first = 0.0
        self.elapsed = 0.0
        self.done = threading.Event()
        self.ids: dict[str, list[int]] = {}

    def __call__(self, msg: dict[str, Any]) -> None:
        count = self.count = self.count + 1
        ids = self.ids.get(msg["s"])
        if ids is None:
            ids = self.ids[msg["s"]] = [msg["t"], msg["t"]]
        elif msg["t"] != ids[1] + 1:
            raise AssertionError(f"{msg['s']}: id {msg['t']} after {ids[1]}")
        ids[1] = msg["t"]
        if count == 1:
            self.first = time.perf_counter()
        elif count == self.n:
            self.elapsed = time.perf_counter() - self.first
            self.done.set()

    async def wait(self) -> float:
        if not await asyncio.to_thread(self.done.wait, 300):
            raise AssertionError(f"only {self.count} of {self.n} messages arrived")
        return self.elapsed


async def raw_client(url: str, meter: Meter, start: Callable[[], None]) -> float:
    loads = orjson.loads
    text = WSMsgType.TEXT

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is text:
                meter(loads(frame.get_payload_as_memoryview())["data"])

    transport, _ = await ws_connect(Listener, url, max_frame_size=1 << 20)
    start()
    try:
        return await meter.wait()
    finally:
        transport.disconnect()


async def async_client(stream_url: str, names: list[str], meter: Meter, start: Callable[[], None]) -> float:
    market = local_market(stream_url, "http://127.0.0.1:1")
    async with AsyncSocketManager(market=market) as sm:
        await sm.subscribe(names, meter)
        start()
        return await meter.wait()


async def threaded_client(stream_url: str, names: list[str], meter: Meter,
                          start: Callable[[], None]) -> float:
    bm = BinanceSocketManager(None, market=local_market(stream_url, "http://127.0.0.1:1"))
    for name in names:
        bm.start_trade_socket(name.split("@")[0], meter)
    bm.start()
    # start_* returns before the engine subscribed; the server waits for every subscriber itself.
    start()
    try:
        return await meter.wait()
    finally:
        await asyncio.to_thread(bm.close)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300_000, help="messages on the one-stream case")
    parser.add_argument("--hub-count", type=int, default=200_000, help="messages on the 10-stream case")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _pin(1)
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_server, args=(child,), daemon=True)
    proc.start()
    base = await asyncio.to_thread(parent.recv)
    best: dict[tuple[str, str], float] = {}
    server_s: list[float] = []

    def hub_start() -> None:
        parent.send(("publish", args.hub_count))

    async def idle() -> None:
        parent.send(("idle", 0))
        assert await asyncio.to_thread(parent.recv) == "idle"

    try:
        n1, n10 = args.count, args.hub_count
        blast = f"{base}/blast?stream={BLAST_STREAM}&count={n1}&combined=1"
        # The managers append "/stream?streams=..." to the base: it lands in an ignored parameter.
        via = f"{blast}&via="
        combined = f"{base}/stream?streams={'/'.join(STREAMS)}"
        no_start: Callable[[], None] = lambda: None  # noqa: E731 - blast starts on connect
        cases: list[tuple[str, str, Any, tuple[Any, ...], int]] = [
            ("1 stream", "raw", raw_client, (blast,), n1),
            ("1 stream", "asyncio", async_client, (via, [BLAST_STREAM]), n1),
            ("1 stream", "threaded", threaded_client, (via, [BLAST_STREAM]), n1),
            ("10 streams", "raw", raw_client, (combined,), n10),
            ("10 streams", "asyncio", async_client, (base, STREAMS), n10),
            ("10 streams", "threaded", threaded_client, (base, STREAMS), n10),
        ]
        for _ in range(args.rounds):
            for case, impl, client, client_args, n in cases:
                await idle()
                meter = Meter(n)
                elapsed = await client(*client_args, meter, no_start if case == "1 stream" else hub_start)
                if case == "1 stream":
                    assert meter.ids["BTCUSDT"] == [BLAST_FIRST_ID, BLAST_FIRST_ID + n - 1], meter.ids
                else:
                    server_s.append(await asyncio.to_thread(parent.recv))
                    assert sum(hi - lo + 1 for lo, hi in meter.ids.values()) == n
                best[(case, impl)] = max(best.get((case, impl), 0.0), n / elapsed)
    finally:
        parent.send(("stop", 0))
        proc.join(10)

    print(f"cores: {os.cpu_count()}, simulator pinned to core 0, clients to core 1; best of {args.rounds}")
    for case in ("1 stream", "10 streams"):
        base_rate = best[(case, "raw")]
        for impl in ("raw", "asyncio", "threaded"):
            rate = best[(case, impl)]
            print(f"{case:<10} {impl:<9} {rate:>12,.0f} msg/s  {rate / base_rate:5.2f} x raw")
    print(f"10 streams: simulator publish time per run, fastest {min(server_s):.3f} s "
          f"for {args.hub_count:,} messages ({args.hub_count / min(server_s):,.0f} msg/s)")


if __name__ == "__main__":
    asyncio.run(main())
