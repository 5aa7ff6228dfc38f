"""Third-party futures clients against the simulator served as USD-M (issue 12, "Done when").

python-binance 1.0.37 (its futures sockets, its futures user socket and ``FuturesDepthCacheManager``) and
ccxt pro 4.5.90 (``binanceusdm``: ``watch_trades``, ``watch_order_book``) are pointed at the simulator by
their base URLs only: python-binance's ``FUTURES_URL`` (class attribute, read by ``create()``) and the
socket manager's ``FSTREAM_URL``; ccxt's ``urls['api']`` table. Nothing of theirs is patched. What they
receive is checked against the simulator's own state (its futures feeds, its REST answers, its engine).

ccxt 4.5.90 routes USD-M streams itself (``get_future_ws_category``: book data and ``@trade`` on
``/public``, the rest on ``/market``), rewriting ``.../ws`` to ``.../<route>/ws``; its ``linear`` URL is
pointed at the simulator's ``/ws`` and it finds the routes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from binance_ws.sim import Simulator
from binance_ws.sim.futures.product import product_config
from tests.interop.support import Stepper

pytestmark = pytest.mark.interop

SYMBOL = "BTCUSDT"
DEADLINE_S = 20.0


@pytest.fixture
async def fsim() -> AsyncIterator[Simulator]:
    """The simulator served as USD-M, its flow driven by the test (a few steps build a book)."""
    async with Simulator(product_config("usdm", flow_rate=0.0)) as s:
        for _ in range(30):
            s.step()
        yield s


async def rest_get(sim: Simulator, path: str, **params: Any) -> Any:
    async with aiohttp.ClientSession() as session, \
            session.get(f"{sim.rest_url}{path}", params=params) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


# =========================================================================================================
# python-binance 1.0.37
# =========================================================================================================
@pytest.fixture
async def pb(fsim: Simulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Any, Any]]:
    binance = pytest.importorskip("binance", reason="python-binance is not installed (scripts/test does)")
    fsim.accounts.create_account("alice", {"USDT": "100000"})
    key, secret = fsim.accounts.register_hmac_key("alice")
    monkeypatch.setattr(binance.AsyncClient, "API_URL", f"{fsim.rest_url}/api")
    monkeypatch.setattr(binance.AsyncClient, "FUTURES_URL", f"{fsim.rest_url}/fapi")
    client = await binance.AsyncClient.create(key, secret)
    bm = binance.BinanceSocketManager(client)
    bm.FSTREAM_URL = f"{fsim.stream_url}/"
    try:
        yield client, bm
    finally:
        await client.close_connection()


async def _first(socket: Any, accept: Any = lambda msg: True) -> Any:
    async with socket as s:
        while True:
            msg = await asyncio.wait_for(s.recv(), DEADLINE_S)
            assert not (isinstance(msg, dict) and msg.get("e") == "error"), msg
            if accept(msg):
                return msg


async def test_python_binance_depth_socket_and_rest_share_the_id_space(
        fsim: Simulator, pb: tuple[Any, Any]) -> None:
    client, bm = pb
    msg = (await _first(bm.futures_depth_socket(SYMBOL)))["data"]  # /public, depth10, combined
    assert (msg["e"], msg["s"]) == ("depthUpdate", SYMBOL) and msg["U"] <= msg["u"]
    # The flow is still: the stream's last update id, the REST snapshot's and the feeds' book agree.
    rest = await client.futures_order_book(symbol=SYMBOL, limit=10)
    book = fsim.feeds.depth_snapshot(SYMBOL, 10)
    assert msg["u"] == rest["lastUpdateId"] == book["lastUpdateId"]
    assert msg["b"] == rest["bids"] == book["bids"] and msg["a"] == rest["asks"] == book["asks"]


async def test_python_binance_mark_price_sockets(fsim: Simulator, pb: tuple[Any, Any]) -> None:
    client, bm = pb
    one = (await _first(bm.symbol_mark_price_socket(SYMBOL)))
    assert one["stream"] == "btcusdt@markPrice@1s"
    assert (one["data"]["e"], one["data"]["s"]) == ("markPriceUpdate", SYMBOL)
    every = (await _first(bm.all_mark_price_socket()))
    assert every["stream"] == "!markPrice@arr@1s"
    assert {m["s"] for m in every["data"]} == set(fsim.exchange.symbols)
    # The REST premium index reports the stream's model (tests/sim/test_futures_served.py: exactly).
    premium = await client.futures_mark_price(symbol=SYMBOL)
    assert premium["nextFundingTime"] == one["data"]["T"]
    assert premium["lastFundingRate"] == one["data"]["r"]


async def test_python_binance_kline_and_multiplex_sockets(fsim: Simulator, pb: tuple[Any, Any]) -> None:
    _, bm = pb
    stepper = Stepper(fsim, 0.02)
    try:
        agg = await _first(bm.futures_multiplex_socket([f"{SYMBOL.lower()}@aggTrade"]))  # /market
        kline = await _first(bm.kline_futures_socket(SYMBOL))  # continuousKline, perpetual
    finally:
        await stepper.stop()
    assert agg["stream"] == "btcusdt@aggTrade" and agg["data"]["e"] == "aggTrade"
    ids = {t.id for t in fsim.exchange.book(SYMBOL).trades}
    assert agg["data"]["f"] in ids and agg["data"]["l"] in ids
    data = kline if "e" in kline else kline["data"]
    assert (data["e"], data["ps"], data["ct"], data["k"]["i"]) == ("continuous_kline", SYMBOL, "PERPETUAL",
                                                                    "1m")


async def test_python_binance_futures_user_socket_gets_the_order(fsim: Simulator,
                                                                 pb: tuple[Any, Any]) -> None:
    client, bm = pb
    async with bm.futures_user_socket() as user:  # /private/ws?listenKey=... from /fapi/v1/listenKey
        bid = (await client.futures_order_book(symbol=SYMBOL, limit=5))["bids"][0][0]
        order = await client.futures_create_order(symbol=SYMBOL, side="BUY", type="LIMIT", timeInForce="GTC",
                                                  quantity="0.01", price=bid)
        event = await asyncio.wait_for(user.recv(), DEADLINE_S)
    assert (event["e"], event["o"]["i"], event["o"]["x"], event["o"]["s"]) == \
        ("ORDER_TRADE_UPDATE", order["orderId"], "NEW", SYMBOL)
    assert event["o"]["p"] == bid  # one wire format for the book and the order events


async def test_python_binance_futures_depth_cache(fsim: Simulator, pb: tuple[Any, Any]) -> None:
    from binance.ws.depthcache import FuturesDepthCacheManager

    client, bm = pb
    async with FuturesDepthCacheManager(client, SYMBOL, bm=bm) as dcm:
        cache = await asyncio.wait_for(dcm.recv(), DEADLINE_S)
    book = fsim.feeds.depth_snapshot(SYMBOL, 10)
    assert cache.get_bids() == [[float(p), float(q)] for p, q in book["bids"]]
    assert cache.get_asks() == [[float(p), float(q)] for p, q in book["asks"]]


# =========================================================================================================
# ccxt pro 4.5.90, binanceusdm
# =========================================================================================================
def _ccxt(sim: Simulator) -> Any:
    ccxtpro = pytest.importorskip("ccxt.pro", reason="ccxt is not installed (scripts/test installs it)")
    exchange = ccxtpro.binanceusdm({"options": {"fetchMarkets": {"types": ["linear"]},
                                                "fetchCurrencies": False}})
    api = exchange.urls["api"]
    for name, url in list(api.items()):
        if isinstance(url, str):
            api[name] = url.replace("https://fapi.binance.com", sim.rest_url)
    api["ws"]["linear"] = api["ws"]["linear"].replace("wss://fstream.binance.com", sim.stream_url)
    return exchange


async def test_ccxt_binanceusdm_watch_trades(fsim: Simulator) -> None:
    exchange = _ccxt(fsim)
    stepper = Stepper(fsim, 0.02)
    seen: dict[str, Any] = {}
    try:
        while len(seen) < 3:
            for trade in await asyncio.wait_for(exchange.watch_trades("BTC/USDT:USDT"), DEADLINE_S):
                seen[trade["id"]] = trade
    finally:
        await stepper.stop()
        await exchange.close()
    # ccxt reads <symbol>@trade on futures: each trade is one of the engine's, by id.
    trades = {t.id: t for t in fsim.exchange.book(SYMBOL).trades}
    assert len(seen) >= 3
    for trade in seen.values():
        engine = trades[int(trade["id"])]
        assert trade["symbol"] == "BTC/USDT:USDT"
        assert Decimal(str(trade["price"])) == Decimal(engine.price) / 10**8
        assert Decimal(str(trade["amount"])) == Decimal(engine.qty) / 10**8
        assert trade["timestamp"] == engine.time
        assert trade["side"] == ("sell" if engine.buyer_is_maker else "buy")


async def test_ccxt_binanceusdm_watch_order_book(fsim: Simulator) -> None:
    exchange = _ccxt(fsim)
    stepper = Stepper(fsim, 0.02)
    try:
        book = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT:USDT"), DEADLINE_S)
        first = book["nonce"]
        while book["nonce"] == first:  # a diff applied on top of the REST snapshot
            book = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT:USDT"), DEADLINE_S)
        await stepper.stop()
        rest = await rest_get(fsim, "/fapi/v1/depth", symbol=SYMBOL, limit=20)
        while book["nonce"] < rest["lastUpdateId"]:
            book = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT:USDT"), DEADLINE_S)
    finally:
        await stepper.stop()
        await exchange.close()
    assert book["nonce"] == rest["lastUpdateId"]
    assert book["bids"][:20] == [[float(p), float(q)] for p, q in rest["bids"]]
    assert book["asks"][:20] == [[float(p), float(q)] for p, q in rest["asks"]]
