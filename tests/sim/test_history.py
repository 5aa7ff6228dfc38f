"""A just-started simulator has a trade history (issue "The first hour", item 6), over real HTTP."""

from __future__ import annotations

import aiohttp

from binance_ws.sim import Simulator
from tests.sim._client import connect


async def _trades(sim: Simulator, http: aiohttp.ClientSession, limit: int) -> list[dict]:
    async with http.get(f"{sim.rest_url}/api/v3/trades", params={"symbol": "ETHUSDT", "limit": limit}) as r:
        assert r.status == 200
        return await r.json()  # type: ignore[no-any-return]


async def test_started_simulator_has_history_and_live_ids_continue_it() -> None:
    async with Simulator(flow_rate=0.0, seed=5) as sim, aiohttp.ClientSession() as http:
        history = await _trades(sim, http, 1000)
        assert len(history) == sim.config.history_trades
        assert [t["id"] for t in history] == list(range(1, len(history) + 1))
        times = [t["time"] for t in history]
        assert times == sorted(times) and times[-1] < sim.clock.now_ms()
        assert len(await _trades(sim, http, 5)) == 5
        async with http.get(f"{sim.rest_url}/api/v3/klines",
                            params={"symbol": "ETHUSDT", "interval": "1m", "limit": 5}) as r:
            assert len(await r.json()) == 5
        async with http.get(f"{sim.rest_url}/api/v3/ticker/24hr", params={"symbol": "ETHUSDT"}) as r:
            day = await r.json()
            assert (day["firstId"], day["lastId"], day["count"]) == (1, len(history), len(history))
        # The newest historical trade sits at the book's mid, between the best bid and ask.
        book = sim.exchange.symbols["ETHUSDT"]
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is not None and ask is not None and bid[0] < book.last_price < ask[0]
        client = await connect(f"{sim.stream_url}/ws/ethusdt@trade")
        sim.exchange.place_order("ETHUSDT", "BUY", "MARKET", "0.5")
        live = await client.next_text()
        assert live["t"] == len(history) + 1


async def test_history_is_deterministic_by_seed() -> None:
    def prices(seed: int) -> list[tuple[str, str]]:
        sim = Simulator(flow_rate=0.0, seed=seed)
        return [(t["price"], t["qty"]) for t in sim.exchange.trades("BTCUSDT", 1000)]

    assert prices(4) == prices(4)
    assert prices(4) != prices(5)


async def test_history_can_be_switched_off() -> None:
    assert Simulator(flow_rate=0.0, history_trades=0).exchange.trades("BTCUSDT", 10) == []
