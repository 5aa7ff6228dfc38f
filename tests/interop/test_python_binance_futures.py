"""An unmodified python-binance 1.0.37 uses the simulator's futures REST as it would Binance's USD-M and
COIN-M APIs: market data, a signed order and the futures listen key. Only its base URLs change, through
its ``FUTURES_URL`` / ``FUTURES_COIN_URL`` attributes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from binance_ws.sim import Simulator
from tests.sim._client import connect
from tests.userdata_support import make_account

binance = pytest.importorskip("binance")
from binance import AsyncClient  # noqa: E402

pytestmark = pytest.mark.interop


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(flow_rate=0.0) as s:
        yield s


@pytest.fixture
async def client(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    creds = make_account(sim, "alice", "HMAC", {"USDT": "1000"})
    make_account(sim, "mm", "HMAC")
    monkeypatch.setattr(AsyncClient, "API_URL", f"{sim.rest_url}/api")
    monkeypatch.setattr(AsyncClient, "FUTURES_URL", f"{sim.rest_url}/fapi")
    monkeypatch.setattr(AsyncClient, "FUTURES_COIN_URL", f"{sim.rest_url}/dapi")
    c = await AsyncClient.create(creds.api_key, creds.secret)
    try:
        yield c
    finally:
        await c.close_connection()


async def test_market_data(client: Any) -> None:
    info = await client.futures_exchange_info()
    assert {s["symbol"] for s in info["symbols"]} == {"BTCUSDT", "ETHUSDT"}
    book = await client.futures_order_book(symbol="BTCUSDT", limit=10)
    assert len(book["bids"]) == 10 and {"E", "T", "lastUpdateId"} <= set(book)
    mark = await client.futures_mark_price(symbol="BTCUSDT")
    assert float(mark["markPrice"]) > 0 and mark["nextFundingTime"] > 0
    assert isinstance(await client.futures_recent_trades(symbol="BTCUSDT"), list)
    assert isinstance(await client.futures_klines(symbol="BTCUSDT", interval="1m"), list)
    coin = await client.futures_coin_order_book(symbol="BTCUSD_PERP", limit=5)
    assert coin["pair"] == "BTCUSD"
    coin_info = await client.futures_coin_exchange_info()
    assert {s["contractSize"] for s in coin_info["symbols"]} == {100, 10}


async def test_signed_order_reaches_the_listen_key(client: Any, sim: Simulator) -> None:
    key = await client.futures_stream_get_listen_key()
    stream = await connect(f"{sim.stream_url}/private/ws?listenKey={key}")
    bid = (await client.futures_order_book(symbol="BTCUSDT", limit=5))["bids"][0][0]
    order = await client.futures_create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                              quantity="0.01", price=bid)
    assert order["status"] == "NEW" and order["symbol"] == "BTCUSDT"
    await stream.wait_for(lambda: bool(stream.texts()))
    event = stream.messages()[0]
    assert (event["e"], event["o"]["i"], event["o"]["x"]) == ("ORDER_TRADE_UPDATE", order["orderId"], "NEW")
    cancelled = await client.futures_cancel_order(symbol="BTCUSDT", orderId=order["orderId"])
    assert cancelled["status"] == "CANCELED"
    await client.futures_stream_keepalive(listenKey=key)
    await client.futures_stream_close(listenKey=key)
