"""binance-ws asyncio client: AsyncSocketManager with a callback, ``mode`` dict, typed or raw delivery."""

from __future__ import annotations

import asyncio
from typing import Any

from probe import Probe, run_guarded

from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.markets import local_market
from binance_ws.models import decoder_for

E_KEY = b'"E":'


def main(probe: Probe) -> None:
    job = probe.job
    on = probe.hook()
    error = probe.error
    mode = job["mode"]

    if mode == "typed":
        decode: Any = decoder_for(job["streams"][0])

        def callback(msg: Any) -> None:
            try:
                on(msg.event_time)
            except AttributeError:  # an error event (a dict)
                error(msg)
    elif mode == "raw":
        decode = "raw"

        def callback(msg: Any) -> None:
            try:
                data = msg.data
            except AttributeError:
                error(msg)
                return
            # What a raw consumer does to use one field without a JSON decode.
            start = data.index(E_KEY) + 4
            on(int(data[start:data.index(b",", start)]))
    else:
        decode = "dict"

        def callback(msg: Any) -> None:
            sent = msg.get("E")
            if sent is None:
                error(msg)
            else:
                on(sent)

    async def run() -> None:
        market = local_market(job["url"], "http://127.0.0.1:9")
        async with AsyncSocketManager(market=market) as sm:
            await sm.subscribe(job["streams"], callback, decode=decode)
            probe.ready()
            await probe.wait_async()

    asyncio.run(run())


if __name__ == "__main__":
    run_guarded(main)
