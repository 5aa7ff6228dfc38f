"""python-binance 1.0.37 (its own venv): the asyncio BinanceSocketManager, pointed at the local server
through its ``STREAM_URL`` attribute. One stream: ``trade_socket`` (``/ws/<stream>``); several:
``multiplex_socket`` (``/stream?streams=``). Its queue bound is raised from 100 to 10 000 (binance-ws's
default), since at benchmark rates the default overflows at once."""

from __future__ import annotations

import asyncio
from typing import Any

from binance import AsyncClient, BinanceSocketManager
from probe import Probe, run_guarded

QUEUE_SIZE = 10_000


def main(probe: Probe) -> None:
    job = probe.job
    on = probe.hook()
    error = probe.error
    streams = job["streams"]

    async def run() -> None:
        client = AsyncClient()  # no request is made: the constructor does no I/O
        bm = BinanceSocketManager(client, max_queue_size=QUEUE_SIZE)
        bm.STREAM_URL = job["url"] + "/"
        single = len(streams) == 1
        socket = (bm.trade_socket(streams[0].split("@")[0].upper()) if single
                  else bm.multiplex_socket(streams))
        async with socket as s:
            async def consume() -> None:
                while True:
                    msg: Any = await s.recv()
                    payload = msg if single else msg.get("data")
                    if payload is None or "E" not in payload:
                        error(msg)
                    else:
                        on(payload["E"])

            reader = asyncio.create_task(consume())
            probe.ready()
            await probe.wait_async()
            reader.cancel()
        await client.close_connection()

    asyncio.run(run())


if __name__ == "__main__":
    run_guarded(main)
