"""The simulator's REST API over loopback: shapes, weights, 429/418 with Retry-After, 410, faults, and an
unmodified python-binance AsyncClient."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from binance import AsyncClient

from binance_ws.sim import Simulator

#: A weight window long enough that no test crosses its boundary.
STABLE = {"rest_weight_window_s": 3600.0}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, sim: Simulator, path: str, **params: Any,
              ) -> tuple[int, Any, dict[str, str]]:
    async with http.get(f"{sim.rest_url}/api/v3/{path}", params=params) as r:
        body = await r.json(content_type=None) if r.content_type == "application/json" else await r.text()
        return r.status, body, dict(r.headers)


def used(headers: dict[str, str]) -> int:
    return int(headers["X-MBX-USED-WEIGHT-1M"])


async def test_ping_time_and_exchange_info(http: aiohttp.ClientSession) -> None:
    async with Simulator(**STABLE) as sim:
        assert (await get(http, sim, "ping"))[:2] == (200, {})
        _, body, _ = await get(http, sim, "time")
        assert abs(body["serverTime"] - sim.clock.now_ms()) < 60_000
        status, info, headers = await get(http, sim, "exchangeInfo")
        assert status == 200 and used(headers) == 1 + 1 + 20
        assert {s["symbol"] for s in info["symbols"]} == {"BTCUSDT", "ETHUSDT", "BNBBTC", "NEOBTC"}
        assert info["rateLimits"][0] == {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                         "intervalNum": 60, "limit": 6000}
        btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
        assert (btc["status"], btc["baseAsset"], btc["quoteAsset"]) == ("TRADING", "BTC", "USDT")
        filters = {f["filterType"]: f for f in btc["filters"]}
        assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
        assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
        assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
        _, one, _ = await get(http, sim, "exchangeInfo", symbol="BNBBTC")
        assert [s["symbol"] for s in one["symbols"]] == ["BNBBTC"]
        _, two, _ = await get(http, sim, "exchangeInfo", symbols='["BNBBTC","ETHUSDT"]')
        assert [s["symbol"] for s in two["symbols"]] == ["BNBBTC", "ETHUSDT"]
        assert (await get(http, sim, "exchangeInfo", symbol="NOPE"))[:2] == (
            400, {"code": -1121, "msg": "Invalid symbol."})


async def test_depth_limits_weights_and_ids(http: aiohttp.ClientSession) -> None:
    async with Simulator(**STABLE) as sim:
        previous = 0
        last_id = 0
        for limit, weight, most in ((None, 5, 100), ("5", 5, 5), ("500", 25, 500), ("1000", 50, 1000),
                                    ("6000", 250, 5000)):
            params = {"symbol": "BTCUSDT"} | ({"limit": limit} if limit else {})
            status, body, headers = await get(http, sim, "depth", **params)
            assert status == 200 and set(body) == {"lastUpdateId", "bids", "asks"}
            assert used(headers) - previous == weight
            previous = used(headers)
            assert 0 < len(body["bids"]) <= most and 0 < len(body["asks"]) <= most
            bids = [float(p) for p, _ in body["bids"]]
            asks = [float(p) for p, _ in body["asks"]]
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
            assert body["lastUpdateId"] >= last_id
            last_id = body["lastUpdateId"]
        assert last_id <= sim.exchange.symbols["BTCUSDT"].update_id
        # The default book (flow seeded) holds more than 5 levels: limit really trims.
        assert len((await get(http, sim, "depth", symbol="BTCUSDT", limit="5"))[1]["bids"]) == 5
        assert (await get(http, sim, "depth", symbol="BTCUSDT", symbolStatus="TRADING"))[0] == 200


async def test_trades_klines_and_tickers(http: aiohttp.ClientSession) -> None:
    async with Simulator(flow_rate=400.0, **STABLE) as sim:
        book = sim.exchange.symbols["ETHUSDT"]
        deadline = time.monotonic() + 5
        while book.next_trade_id < 30:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        _, trades, h = await get(http, sim, "trades", symbol="ETHUSDT", limit="10")
        assert len(trades) == 10
        assert set(trades[0]) == {"id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"}
        assert [t["id"] for t in trades] == list(range(trades[0]["id"], trades[0]["id"] + 10))
        _, hist, _ = await get(http, sim, "historicalTrades", symbol="ETHUSDT", fromId="3", limit="4")
        assert [t["id"] for t in hist] == [3, 4, 5, 6]
        _, aggs, _ = await get(http, sim, "aggTrades", symbol="ETHUSDT", fromId="2", limit="3")
        assert [a["a"] for a in aggs] == [2, 3, 4]
        assert set(aggs[0]) == {"a", "p", "q", "f", "l", "T", "m", "M"}
        _, window, _ = await get(http, sim, "aggTrades", symbol="ETHUSDT", startTime=str(aggs[0]["T"]),
                                 endTime=str(aggs[-1]["T"]), limit="1000")
        assert all(aggs[0]["T"] <= a["T"] <= aggs[-1]["T"] for a in window) and aggs[0] in window
        _, klines, _ = await get(http, sim, "klines", symbol="ETHUSDT", interval="1m")
        row = klines[-1]
        assert len(row) == 12 and isinstance(row[0], int) and isinstance(row[8], int)
        assert all(isinstance(row[i], str) for i in (1, 2, 3, 4, 5, 7, 9, 10, 11))
        assert float(row[3]) <= float(row[1]) <= float(row[2]) and row[6] == row[0] + 59_999
        _, ticker, h2 = await get(http, sim, "ticker/24hr", symbol="ETHUSDT")
        assert used(h2) - used(h) == 25 + 4 + 4 + 2 + 2
        assert set(ticker) == {
            "symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "prevClosePrice", "lastPrice",
            "lastQty", "bidPrice", "bidQty", "askPrice", "askQty", "openPrice", "highPrice", "lowPrice",
            "volume", "quoteVolume", "openTime", "closeTime", "firstId", "lastId", "count"}
        assert ticker["count"] == ticker["lastId"] - ticker["firstId"] + 1
        _, all_tickers, h3 = await get(http, sim, "ticker/24hr")
        assert len(all_tickers) == 4 and used(h3) - used(h2) == 80
        _, mini, _ = await get(http, sim, "ticker/24hr", symbols='["ETHUSDT","BNBBTC"]', type="MINI")
        assert [m["symbol"] for m in mini] == ["ETHUSDT", "BNBBTC"] and "bidPrice" not in mini[0]
        _, rolling, _ = await get(http, sim, "ticker", symbol="ETHUSDT", windowSize="1h")
        assert rolling["openTime"] % 60_000 == 0 and "prevClosePrice" not in rolling
        _, price, _ = await get(http, sim, "ticker/price", symbol="ETHUSDT")
        assert set(price) == {"symbol", "price"} and float(price["price"]) > 0
        _, prices, _ = await get(http, sim, "ticker/price")
        assert {p["symbol"] for p in prices} == {"BTCUSDT", "ETHUSDT", "BNBBTC", "NEOBTC"}
        _, top, _ = await get(http, sim, "ticker/bookTicker", symbol="ETHUSDT")
        assert float(top["bidPrice"]) < float(top["askPrice"])
        _, avg, _ = await get(http, sim, "avgPrice", symbol="ETHUSDT")
        assert avg["mins"] == 5 and float(avg["price"]) > 0 and isinstance(avg["closeTime"], int)


@pytest.mark.parametrize(("path", "params", "code"), [
    ("depth", {}, -1102),
    ("depth", {"symbol": "XRPUSDT"}, -1121),
    ("depth", {"symbol": "BTCUSDT", "limit": "ten"}, -1100),
    ("trades", {"symbol": "BTCUSDT", "limit": "0"}, -1100),
    ("klines", {"symbol": "BTCUSDT"}, -1102),
    ("klines", {"symbol": "BTCUSDT", "interval": "2m"}, -1120),
    ("klines", {"symbol": "BTCUSDT", "interval": "1h", "timeZone": "+15:00"}, -1100),
    ("ticker/24hr", {"symbols": "BTCUSDT"}, -1100),
    ("ticker/24hr", {"symbols": '["BTCUSDT","NOPE"]'}, -1121),
    ("aggTrades", {"symbol": "BTCUSDT", "fromId": "-1"}, -1100),
    ("depth", {"symbol": "BTCUSDT", "symbolStatus": "HALT"}, -1220),
])
async def test_errors_are_binance_code_and_msg(http: aiohttp.ClientSession, path: str, params: dict[str, str],
                                               code: int) -> None:
    async with Simulator(**STABLE) as sim:
        status, body, _ = await get(http, sim, path, **params)
        assert status == 400 and set(body) == {"code", "msg"} and body["code"] == code


async def test_weight_limit_answers_429_then_bans_with_418(http: aiohttp.ClientSession) -> None:
    async with Simulator(rest_weight_limit=10, rest_ban_after_429s=2, rest_ban_s=60.0, **STABLE) as sim:
        for n in range(1, 11):
            status, _, headers = await get(http, sim, "ping")
            assert status == 200 and used(headers) == n
        statuses = []
        for _ in range(4):
            status, body, headers = await get(http, sim, "ping")
            statuses.append(status)
            assert body["code"] == -1003 and int(headers["Retry-After"]) > 0
        assert statuses == [429, 429, 429, 418]
        status, body, headers = await get(http, sim, "time")
        assert status == 418 and "banned until" in body["msg"] and 50 <= int(headers["Retry-After"]) <= 60


async def test_user_data_stream_is_gone(http: aiohttp.ClientSession) -> None:
    async with Simulator() as sim:
        for method in ("POST", "PUT", "DELETE"):
            async with http.request(method, f"{sim.rest_url}/api/v3/userDataStream",
                                    headers={"X-MBX-APIKEY": "k"}) as r:
                assert r.status == 410 and r.content_type == "text/html"
                text = await r.text()
                assert "<title>410 Gone</title>" in text and "nginx" in text


async def test_legacy_listen_keys(http: aiohttp.ClientSession) -> None:
    async with Simulator(legacy_listen_keys=True) as sim:
        url = f"{sim.rest_url}/api/v3/userDataStream"
        async with http.post(url) as r:
            assert r.status == 401 and (await r.json())["code"] == -2014
        async with http.post(url, headers={"X-MBX-APIKEY": "key-1"}) as r:
            key = (await r.json())["listenKey"]
            assert len(key) == 64
        async with http.post(url, headers={"X-MBX-APIKEY": "key-1"}) as r:
            assert (await r.json())["listenKey"] == key
        async with http.put(url, params={"listenKey": key}, headers={"X-MBX-APIKEY": "key-1"}) as r:
            assert r.status == 200 and await r.json() == {}
        async with http.delete(url, params={"listenKey": key}, headers={"X-MBX-APIKEY": "key-1"}) as r:
            assert r.status == 200
        async with http.put(url, params={"listenKey": key}, headers={"X-MBX-APIKEY": "key-1"}) as r:
            assert (r.status, (await r.json())["code"]) == (400, -1125)
        assert "key-1" not in repr(sim.rest.listen_keys)


async def test_rest_fault_knobs(http: aiohttp.ClientSession) -> None:
    async with Simulator(**STABLE) as sim:
        sim.faults.rest_fail_status = 503
        sim.faults.rest_fail_count = 2
        assert [(await get(http, sim, "ping"))[0] for _ in range(3)] == [503, 503, 200]
        sim.faults.rest_fail_status = 429
        sim.faults.rest_fail_count = -1
        for _ in range(3):
            status, body, headers = await get(http, sim, "ping")
            assert (status, body["code"], headers["Retry-After"]) == (429, -1003, "1")
        sim.faults.rest_fail_status = None
        sim.faults.rest_delay_s = 0.3
        start = time.monotonic()
        assert (await get(http, sim, "ping"))[0] == 200
        assert time.monotonic() - start >= 0.3


async def test_unmodified_python_binance_async_client(sim: Simulator) -> None:
    class LocalClient(AsyncClient):
        API_URL = f"{sim.rest_url}/api"

    client = await LocalClient.create()  # pings and reads the server time
    try:
        book = await client.get_order_book(symbol="BTCUSDT", limit=10)
        assert len(book["bids"]) == 10 and book["lastUpdateId"] > 0
        info = await client.get_symbol_info("BNBBTC")
        assert info is not None and info["quoteAsset"] == "BTC"
        assert (await client.get_avg_price(symbol="BTCUSDT"))["mins"] == 5
        assert isinstance(await client.get_recent_trades(symbol="BTCUSDT"), list)
        assert isinstance(await client.get_klines(symbol="BTCUSDT", interval="1m"), list)
        assert (await client.get_ticker(symbol="BTCUSDT"))["symbol"] == "BTCUSDT"
    finally:
        await client.close_connection()
