"""The simulator's futures user data through the client's futures user sockets with ``decode="typed"``:
signed ``/fapi/v1/order`` and ``/dapi/v1/order`` requests make ORDER_TRADE_UPDATE, TRADE_LITE (USD-M) and
ACCOUNT_UPDATE events that arrive as the product's models holding what the orders did; a raw connection
on the same listen key receives the same events, and every one of them is its model key for key and type
for type. The key expiring arrives as a FuturesListenKeyExpired and the socket moves to a new key."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

pytest.importorskip("binance_ws.sim.futures_accounts",
                    reason="the simulator's futures accounts (user data on /private) have not landed here")

from binance_ws import models
from binance_ws.client import AsyncClient
from binance_ws.engine.futures import UserSocket
from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.sim import Simulator
from binance_ws.sim.futures.product import product_config
from tests.sim._client import RawClient, connect
from tests.test_futures_user_models import assert_key_for_key
from tests.userdata_support import make_account

DEADLINE_S = 10.0


def signed(secret: str, **params: Any) -> str:
    query = urlencode({**params, "timestamp": int(time.time() * 1000)})
    return f"{query}&signature={hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()}"


class Session:
    """A simulator served as one futures product, alice's typed user socket on it, a raw connection on
    the same listen key, and alice's signed REST."""

    def __init__(self, sim: Simulator, http: aiohttp.ClientSession, user: UserSocket, raw: RawClient,
                 creds: Any) -> None:
        self.sim, self.http, self.user, self.raw, self.creds = sim, http, user, raw, creds
        self.typed: list[Any] = []

    async def order(self, method: str, **params: Any) -> dict[str, Any]:
        prefix = self.sim.market.product.rest_prefix
        url = f"{self.sim.rest_url}{prefix}/order?{signed(self.creds.secret, **params)}"
        async with self.http.request(method, url, headers={"X-MBX-APIKEY": self.creds.api_key}) as r:
            body: dict[str, Any] = await r.json()
            assert r.status == 200, body
            return body

    async def events(self, count: int) -> list[Any]:
        """The next ``count`` typed events (error events, e.g. a reconnect's, are left out)."""
        while len(self.typed) < count:
            msg = await asyncio.wait_for(self.user.recv(), DEADLINE_S)
            if not (isinstance(msg, dict) and msg.get("e") == "error"):
                self.typed.append(msg)
        return self.typed[:count]

    async def assert_raw_is_typed(self) -> None:
        """Every event so far is, key for key and type for type, what the raw connection received."""
        await self.raw.wait_for(lambda: len(self.raw.texts()) >= len(self.typed), DEADLINE_S)
        raw = self.raw.messages()[:len(self.typed)]
        for obj, payload in zip(self.typed, raw, strict=True):
            assert_key_for_key(obj, payload)


async def session(product: str) -> AsyncIterator[Session]:
    async with Simulator(product_config(product, flow_rate=0.0)) as sim, aiohttp.ClientSession() as http:
        alice = make_account(sim, "alice", "HMAC")
        make_account(sim, "mm", "HMAC")
        async with AsyncClient(alice.api_key, alice.secret, market=sim.market, env={}) as client, \
                AsyncSocketManager(client, market=sim.market) as sm:
            socket = sm.futures_user_socket if product == "usdm" else sm.coin_futures_user_socket
            async with socket(decode="typed") as user:
                assert user.stream is not None and user.stream.listen_key is not None
                key = user.stream.listen_key
                path = f"/private/ws?listenKey={key}" if product == "usdm" else f"/ws/{key}"
                raw = await connect(f"{sim.stream_url}{path}")
                yield Session(sim, http, user, raw, alice)


@pytest.fixture
async def usdm() -> AsyncIterator[Session]:
    async for s in session("usdm"):
        yield s


@pytest.fixture
async def coinm() -> AsyncIterator[Session]:
    async for s in session("coinm"):
        yield s


def book_bid(sim: Simulator, symbol: str) -> Decimal:
    return Decimal(sim.feeds.depth_snapshot(symbol, 5)["bids"][0][0])


async def test_usdm_orders_arrive_as_models_holding_what_the_orders_did(usdm: Session) -> None:
    sim, futures = usdm.sim, usdm.sim.futures["usdm"]
    alice = sim.accounts.account("alice")
    futures.deposit(alice, "USDT", "1000")
    (deposit,) = await usdm.events(1)
    assert isinstance(deposit, models.AccountUpdate) and deposit.data.reason == "DEPOSIT"
    assert (deposit.data.balances[0].asset, Decimal(deposit.data.balances[0].balance_change)) == \
        ("USDT", Decimal(1000))

    price = book_bid(sim, "BTCUSDT") + Decimal("0.1")
    answer = await usdm.order("POST", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                              quantity="0.010", price=str(price), newClientOrderId="typed-1")
    futures.place_order(sim.accounts.account("mm"), {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                     "quantity": "0.010"})
    _, new, fill, lite, update = await usdm.events(5)
    for event in (new, fill):
        assert isinstance(event, models.OrderTradeUpdate)
        o = event.order
        assert (o.symbol, o.client_order_id, o.order_id, o.side, o.order_type, o.time_in_force) == \
            ("BTCUSDT", "typed-1", answer["orderId"], "BUY", "LIMIT", "GTC")
        assert (o.price, o.quantity, o.position_side) == (answer["price"], answer["origQty"], "BOTH")
        assert o.good_till_date == 0 and o.margin_asset is None and event.account_alias is None  # USD-M
    n = new.order
    assert (n.execution_type, n.order_status, Decimal(n.filled_accumulated_quantity)) == ("NEW", "NEW", 0)
    f = fill.order
    assert (f.execution_type, f.order_status, f.is_maker) == ("TRADE", "FILLED", True)
    assert Decimal(f.last_filled_quantity) == Decimal(f.filled_accumulated_quantity) == Decimal("0.010")
    assert Decimal(f.last_filled_price) == Decimal(f.average_price) == price

    assert isinstance(lite, models.TradeLite)
    assert (lite.symbol, lite.order_id, lite.client_order_id, lite.side, lite.trade_id, lite.is_maker) == \
        ("BTCUSDT", answer["orderId"], "typed-1", "BUY", f.trade_id, True)
    assert (Decimal(lite.last_filled_price), Decimal(lite.last_filled_quantity)) == (price, Decimal("0.010"))

    assert isinstance(update, models.AccountUpdate) and update.data.reason == "ORDER"
    assert update.data.positions is not None
    (position,) = update.data.positions
    assert (position.symbol, Decimal(position.position_amount), Decimal(position.entry_price)) == \
        ("BTCUSDT", Decimal("0.010"), price)

    # A resting order cancelled over REST: CANCELED, with nothing filled.
    far = book_bid(sim, "BTCUSDT") - 100
    resting = await usdm.order("POST", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                               quantity="0.020", price=str(far))
    await usdm.order("DELETE", symbol="BTCUSDT", orderId=resting["orderId"])
    placed, cancelled = (await usdm.events(7))[5:]
    states = [(e.order.order_id, e.order.execution_type, e.order.order_status) for e in (placed, cancelled)]
    assert states == [(resting["orderId"], "NEW", "NEW"), (resting["orderId"], "CANCELED", "CANCELED")]
    assert Decimal(cancelled.order.filled_accumulated_quantity) == 0

    # Nobody kept the key alive in simulated time: listenKeyExpired, then the socket takes a new key.
    assert usdm.user.stream is not None
    key = usdm.user.stream.listen_key
    sim.clock.advance(60 * 60_000 + 1)
    expired = (await usdm.events(8))[7]
    assert isinstance(expired, models.FuturesListenKeyExpired) and expired.listen_key == key
    await usdm.assert_raw_is_typed()
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while usdm.user.stream.keys_used < 2:
        assert asyncio.get_running_loop().time() < deadline, "no new listen key"
        await asyncio.sleep(0.05)
    assert usdm.user.stream.listen_key != key


async def test_coinm_orders_arrive_as_coinm_models(coinm: Session) -> None:
    sim, futures = coinm.sim, coinm.sim.futures["coinm"]
    symbol = next(s for s in futures.contracts if s.endswith("_PERP"))
    price = book_bid(sim, symbol) + Decimal("0.1")
    answer = await coinm.order("POST", symbol=symbol, side="BUY", type="LIMIT", timeInForce="GTC",
                               quantity="3", price=str(price))
    futures.place_order(sim.accounts.account("mm"), {"symbol": symbol, "side": "SELL", "type": "MARKET",
                                                     "quantity": "3"})
    new, fill, update = await coinm.events(3)  # COIN-M has no TRADE_LITE
    for event in (new, fill):
        assert isinstance(event, models.OrderTradeUpdate)
        assert (event.order.symbol, event.order.order_id, event.order.price, event.order.quantity) == \
            (symbol, answer["orderId"], answer["price"], "3")
        assert event.order.margin_asset == symbol[:3] and event.account_alias  # COIN-M keys
        assert event.order.good_till_date is None  # USD-M only
    assert (fill.order.execution_type, fill.order.order_status, fill.order.last_filled_quantity) == \
        ("TRADE", "FILLED", "3")
    assert isinstance(update, models.AccountUpdate) and update.account_alias == new.account_alias
    assert update.data.positions is not None
    assert (update.data.balances[0].asset, update.data.positions[0].symbol,
            update.data.positions[0].position_amount) == (symbol[:3], symbol, "3")
    await coinm.assert_raw_is_typed()
