"""binance-sdk-spot 13.3.0 (its own venv): ``Spot(config_ws_streams=...)`` with ``stream_url`` pointed at
the local server; one ``connection.trade(symbol=...)`` per stream and ``stream.on("message", ...)``, the
documented usage. Messages arrive as its pydantic ``TradeResponse`` models."""

from __future__ import annotations

import asyncio
from typing import Any

from binance_sdk_spot.spot import ConfigurationWebSocketStreams, Spot
from probe import Probe, run_guarded


def main(probe: Probe) -> None:
    job = probe.job
    on = probe.hook()
    error = probe.error

    def callback(msg: Any) -> None:
        sent = getattr(msg, "E", None)
        if sent is None:
            error(msg)
        else:
            on(sent)

    async def run() -> None:
        client = Spot(config_ws_streams=ConfigurationWebSocketStreams(stream_url=job["url"]))
        connection = await client.websocket_streams.create_connection()
        try:
            for name in job["streams"]:
                stream = await connection.trade(symbol=name.split("@")[0])
                stream.on("message", callback)
            probe.ready()
            await probe.wait_async()
        finally:
            await connection.close_connection(close_session=True)

    asyncio.run(run())


if __name__ == "__main__":
    run_guarded(main)
