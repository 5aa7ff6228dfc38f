"""A gap in a trade or aggTrade stream is filled from REST, on each product: the simulator's streams
and REST served over loopback, a real redis-server, the real RedisSink and TradeBackfill."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from binance_ws import AsyncSocketManager
from binance_ws.engine.rest import AsyncClient
from binance_ws.fleet.backfill import HISTORY, TradeBackfill, default_weight_per_minute
from binance_ws.sim import Simulator
from binance_ws.sim.futures.product import product_config
from binance_ws.sinks import Entry
from binance_ws.sinks.redis import RedisSink

SYMBOL = {"spot": "btcusdt", "usdm": "btcusdt", "coinm": "btcusd_perp"}


async def _messages(sim: Simulator, names: list[str], each: int) -> dict[str, list[bytes]]:
    """``each`` payloads of every stream, as the simulator sent them."""
    got: dict[str, list[bytes]] = {n: [] for n in names}
    async with AsyncSocketManager(market=sim.market) as manager:
        sub = await manager.subscribe(names, decode="raw")
        async with asyncio.timeout(60):
            while any(len(v) < each for v in got.values()):
                msg = await sub.recv()
                got[msg.stream].append(msg.data)
        await sub.close()
    return {n: v[:each] for n, v in got.items()}


@pytest.mark.parametrize("product", ["spot", "usdm", "coinm"])
async def test_a_gap_is_filled_from_rest_exactly_as_the_stream_sent_it(
        redis_client: Any, product: str) -> None:
    async with Simulator(product_config(product)) as sim:
        sym = SYMBOL[product]
        trade, agg = f"{sym}@trade", f"{sym}@aggTrade"
        sent = await _messages(sim, [trade, agg], 30)
        sim.accounts.create_account("collector")
        key, _ = sim.accounts.register_hmac_key("collector")
        rest = AsyncClient(key, market=sim.market, base_url=sim.rest_url, env={})
        try:
            backfill = TradeBackfill(rest)
            assert backfill.can_fill(trade) and backfill.can_fill(agg)
            sink = RedisSink(redis_client, product, hold_s=0.1, backfill=backfill)
            for name, payloads in sent.items():  # ids 10..19 never reach the sink: a member died
                await sink.write([Entry(i, name, d) for i, d in enumerate(payloads[:10])])
                await sink.write([Entry(i, name, d) for i, d in enumerate(payloads[20:], 20)])
            async with asyncio.timeout(20):
                while sink.held:
                    await asyncio.sleep(0.05)
            await sink.close()
            assert sink.backfilled == 20 and sink.gaps == 0
            history = HISTORY[sim.market.product.name]
            if product == "spot":
                assert backfill.requests == 2 and history.trades_weight == 25
            for name, payloads in sent.items():
                stored = [f[b"d"] for _, f in await redis_client.xrange(f"binance:{product}:{name}")]
                assert len(stored) == 30
                for i, (got, want) in enumerate(zip(stored, payloads, strict=True)):
                    if not 10 <= i < 20:
                        assert got == want, (name, i)  # stored exactly as received
                        continue
                    # Backfilled: REST has no event time (E is the trade time), and no futures aggTrade
                    # nq; the rest is the stream's payload, in its key order.
                    w = orjson.loads(want)
                    w["E"] = w["T"]
                    w.pop("nq", None)
                    assert got == orjson.dumps(w), (name, i, got, want)
        finally:
            await rest.close()


async def test_futures_trades_need_the_api_key_aggtrades_do_not() -> None:
    async with Simulator(product_config("usdm")) as sim:
        rest = AsyncClient(None, market=sim.market, base_url=sim.rest_url, env={})
        try:
            backfill = TradeBackfill(rest)
            assert backfill.trades_unavailable
            assert not backfill.can_fill("btcusdt@trade") and backfill.can_fill("btcusdt@aggTrade")
            assert not backfill.can_fill("!forceOrder@arr")
            # Binance's own answer to a keyless historicalTrades (MARKET_DATA): 401 -2014.
            async with aiohttp.ClientSession() as http, http.get(
                    f"{sim.rest_url}/fapi/v1/historicalTrades", params={"symbol": "BTCUSDT"}) as resp:
                assert resp.status == 401 and (await resp.json())["code"] == -2014
        finally:
            await rest.close()
    assert default_weight_per_minute(sim.market.product) == 960


def test_each_product_declares_its_trade_history() -> None:
    assert set(HISTORY) == {"spot", "usdm", "coinm"}
    assert (HISTORY["spot"].trades_weight, HISTORY["spot"].aggs_weight, HISTORY["spot"].trades_need_key) == (
        25, 4, False)
    assert (HISTORY["usdm"].trades_max, HISTORY["usdm"].aggs_weight, HISTORY["usdm"].trades_need_key) == (
        500, 20, True)
