"""An unmodified python-binance 1.0.37 talks to the simulator as it would to Binance (issue 2, "Done when").

Only its base URLs change, through the URL attributes it defines for that purpose: ``API_URL`` on
``AsyncClient`` (class attribute, read by ``create()`` before we could touch an instance) and
``STREAM_URL`` on the ``BinanceSocketManager`` instance. None of its logic is patched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from binance_ws.sim import Simulator

binance = pytest.importorskip("binance", reason="python-binance is not installed (scripts/test installs it)")
from binance import AsyncClient, BinanceSocketManager  # noqa: E402
from binance.ws.depthcache import DepthCacheManager  # noqa: E402

pytestmark = pytest.mark.interop

SYMBOL = "BTCUSDT"
#: Long enough for a 2 s kline push (PROTOCOL 4.5) on a loaded machine.
RECV_TIMEOUT_S = 10.0


@pytest.fixture
async def client(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """``AsyncClient.create()`` against the simulator: it pings and reads the server time on the way."""
    monkeypatch.setattr(AsyncClient, "API_URL", f"{sim.rest_url}/api")
    c = await AsyncClient.create()
    try:
        yield c
    finally:
        await c.close_connection()


@pytest.fixture
def bm(client: Any, sim: Simulator) -> Any:
    manager = BinanceSocketManager(client)
    manager.STREAM_URL = f"{sim.stream_url}/"
    return manager


async def _first(socket: Any, accept: Any = lambda msg: True) -> dict[str, Any]:
    """The first message ``accept`` likes; fails on python-binance's own error events."""
    async with socket as s:
        while True:
            msg = await asyncio.wait_for(s.recv(), RECV_TIMEOUT_S)
            assert msg.get("e") != "error", msg
            if accept(msg):
                return msg


async def test_rest_answers_what_python_binance_asks(client: Any) -> None:
    # create() already pinged and derived the clock offset from /api/v3/time
    assert abs(client.timestamp_offset) < 5_000
    book = await client.get_order_book(symbol=SYMBOL, limit=5)
    assert isinstance(book["lastUpdateId"], int)
    assert 0 < len(book["bids"]) <= 5 and 0 < len(book["asks"]) <= 5
    assert float(book["bids"][0][0]) < float(book["asks"][0][0])


async def test_trade_socket(bm: Any) -> None:
    msg = await _first(bm.trade_socket(SYMBOL))
    assert (msg["e"], msg["s"]) == ("trade", SYMBOL)
    assert isinstance(msg["t"], int) and float(msg["p"]) > 0 and float(msg["q"]) > 0


async def test_depth_socket_diff_and_partial(bm: Any) -> None:
    diff = await _first(bm.depth_socket(SYMBOL, interval=100))
    assert (diff["e"], diff["s"]) == ("depthUpdate", SYMBOL)
    assert diff["U"] <= diff["u"]
    partial = await _first(bm.depth_socket(SYMBOL, depth=BinanceSocketManager.WEBSOCKET_DEPTH_5))
    assert set(partial) == {"lastUpdateId", "bids", "asks"}
    assert len(partial["bids"]) <= 5


async def test_kline_socket(bm: Any) -> None:
    msg = await _first(bm.kline_socket(SYMBOL, interval=AsyncClient.KLINE_INTERVAL_1MINUTE))
    assert (msg["e"], msg["s"], msg["k"]["i"], msg["k"]["s"]) == ("kline", SYMBOL, "1m", SYMBOL)
    assert msg["k"]["T"] - msg["k"]["t"] == 60_000 - 1


async def test_multiplex_socket_wraps_each_stream(bm: Any) -> None:
    streams = ["btcusdt@trade", "ethusdt@trade"]
    seen: set[str] = set()

    def both(msg: dict[str, Any]) -> bool:
        seen.add(msg["stream"])
        assert msg["data"]["s"] == msg["stream"].split("@")[0].upper()
        return seen == set(streams)

    await _first(bm.multiplex_socket(streams), both)


async def test_depth_cache_manager_builds_a_consistent_book(client: Any, bm: Any) -> None:
    # Its own snapshot + diff procedure, over our REST and stream servers.
    async with DepthCacheManager(client, SYMBOL, bm=bm, limit=100, ws_interval=100) as dcm:
        cache = await asyncio.wait_for(dcm.recv(), RECV_TIMEOUT_S)
        cache = await asyncio.wait_for(dcm.recv(), RECV_TIMEOUT_S)
    bids, asks = cache.get_bids(), cache.get_asks()
    assert bids and asks
    assert bids[0][0] < asks[0][0]


async def test_signed_account_calls_and_weight_headers(sim: Simulator,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # The signed calls a python-binance user makes in the first hour, and both weight headers
    # (X-MBX-USED-WEIGHT and X-MBX-USED-WEIGHT-1M) on every answer.
    sim.accounts.create_account("carol", {"USDT": "100000"})
    api_key, secret = sim.accounts.register_hmac_key("carol")
    monkeypatch.setattr(AsyncClient, "API_URL", f"{sim.rest_url}/api")
    c = await AsyncClient.create(api_key, secret)
    try:
        def used() -> tuple[str, str]:
            headers = c.response.headers
            return headers["X-MBX-USED-WEIGHT"], headers["X-MBX-USED-WEIGHT-1M"]

        assert await c.get_open_orders(symbol=SYMBOL) == []
        w1 = used()
        assert w1[0] == w1[1]
        bid = float((await c.get_order_book(symbol=SYMBOL, limit=5))["bids"][0][0])
        resting = await c.create_order(symbol=SYMBOL, side="BUY", type="LIMIT", timeInForce="GTC",
                                       quantity="0.01", price=f"{bid * 0.5:.2f}")
        taken = await c.create_order(symbol=SYMBOL, side="BUY", type="MARKET", quantity="0.001")
        assert taken["status"] == "FILLED"
        assert await c.create_test_order(symbol=SYMBOL, side="SELL", type="LIMIT", timeInForce="GTC",
                                         quantity="0.01", price=f"{bid * 2:.2f}") == {}
        opened = await c.get_open_orders(symbol=SYMBOL)
        assert [o["orderId"] for o in opened] == [resting["orderId"]]
        mine = await c.get_my_trades(symbol=SYMBOL)
        assert [t["id"] for t in mine] == [f["tradeId"] for f in taken["fills"]]
        every = await c.get_all_orders(symbol=SYMBOL)
        assert [o["orderId"] for o in every] == [resting["orderId"], taken["orderId"]]
        w2 = used()
        assert w2[0] == w2[1] and int(w2[0]) > int(w1[0])
    finally:
        await c.close_connection()
