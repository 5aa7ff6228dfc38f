"""binance-ws asyncio client: AsyncSocketManager with a callback, ``mode`` dict, typed or raw delivery."""

from __future__ import annotations

import asyncio
from typing import Any

from probe import Probe, run_guarded

from binance_ws.engine.delivery import RawMessage
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

        if job["latency"]:
            def callback(msg: Any) -> None:
                try:
                    data = msg.data
                except AttributeError:
                    error(msg)
                    return
                # Latency needs the send stamp: read one field without a JSON decode.
                start = data.index(E_KEY) + 4
                on(int(data[start:data.index(b",", start)]))
        else:
            # Throughput: what a raw consumer (recorder, sink) does, take the bytes on; the ceiling
            # it is compared with ("picows, no decode") likewise reads no field.
            def callback(msg: Any) -> None:
                if type(msg) is RawMessage:
                    on(0)
                else:
                    error(msg)
    else:
        decode = "dict"

        def callback(msg: Any) -> None:
            try:
                on(msg["E"])
            except KeyError:  # an error event (documented shape, no "E")
                error(msg)

    async def run() -> None:
        market = local_market(job["url"], "http://127.0.0.1:9")
        async with AsyncSocketManager(market=market) as sm:
            await sm.subscribe(job["streams"], callback, decode=decode)
            probe.ready()
            await probe.wait_async()

    asyncio.run(run())


if __name__ == "__main__":
    run_guarded(main)
