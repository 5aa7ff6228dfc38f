"""User-data latency over loopback: an order placed over the WebSocket API until its ``executionReport``
reaches the user callback, against a bare WS API ``ping`` round trip in the same process (baseline).

Run: ``python benchmarks/userdata.py [rounds]`` (default 300; a few seconds).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

from binance_ws.core.signing import generate_private_key, private_key_signer, public_key_pem, ws_payload
from binance_ws.engine.rest import AsyncClient
from binance_ws.engine.userdata import UserDataStream
from binance_ws.engine.wsapi import WsApiConnection
from binance_ws.sim import Simulator
from binance_ws.sim.accounts import Accounts


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1e3:.3f} ms  p99 {p99 * 1e3:.3f} ms"


async def main(rounds: int) -> None:
    sim = Simulator(flow_rate=0.0)
    async with sim:
        accounts: Accounts = sim.accounts
        accounts.create_account("bench", {"USDT": "100000000"})
        pem = generate_private_key("ED25519")
        api_key = accounts.register_public_key("bench", public_key_pem(private_key_signer(pem)))
        client = AsyncClient(api_key, private_key=pem, market=sim.market, env={})
        arrived: asyncio.Queue[float] = asyncio.Queue()

        def on_event(event: dict[str, Any]) -> None:
            if event.get("e") == "executionReport" and event.get("x") == "NEW":
                arrived.put_nowait(time.perf_counter())

        stream = UserDataStream(client, on_event)
        await stream.start()
        orders = WsApiConnection(sim.ws_api_url)
        await orders.start()
        bid = sim.exchange.depth_snapshot("BTCUSDT", 1)["bids"][0][0]
        low = f"{float(bid) - 1000:.2f}"
        signer = client.signer
        assert signer is not None

        pings: list[float] = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await orders.request("ping")
            pings.append(time.perf_counter() - t0)

        latencies: list[float] = []
        for i in range(rounds):
            params: dict[str, Any] = {
                "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                "quantity": "0.00100", "price": low, "newClientOrderId": f"b{i}", "apiKey": api_key,
                "timestamp": client.timestamp_ms()}
            params["signature"] = signer.sign(ws_payload(params))
            t0 = time.perf_counter()
            await orders.request("order.place", params)
            latencies.append(await asyncio.wait_for(arrived.get(), 5) - t0)

        print(f"WS API ping round trip (baseline)         {percentiles(pings)}")
        print(f"order.place -> executionReport callback   {percentiles(latencies)}")
        print(f"ratio of medians: {statistics.median(latencies) / statistics.median(pings):.2f}x")
        await orders.close()
        await stream.stop()
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
