"""The simulator served as a futures product: REST answers from the futures stream models, and the
``/private`` route carries the futures user data (PROTOCOL 8)."""

from __future__ import annotations

from typing import Any

import pytest
from picows import WSInvalidStatusError

from binance_ws.sim import Simulator
from binance_ws.sim.futures.product import product_config
from binance_ws.sim.futures_rest import MarkNumbers
from tests.sim._client import TIMEOUT, RawClient, connect


def kinds(client: RawClient) -> list[str]:
    return [m["data"]["e"] if "data" in m else m["e"] for m in client.messages()]


@pytest.mark.parametrize(("product", "symbol", "other"), [("usdm", "BTCUSDT", "coinm"),
                                                         ("coinm", "BTCUSD_PERP", "usdm")])
async def test_rest_depth_and_premium_index_are_the_stream_models(product: str, symbol: str,
                                                                 other: str) -> None:
    async with Simulator(product_config(product, flow_rate=0.0)) as sim:
        for _ in range(30):
            sim.step()
        rest = sim.futures_rest[product]
        now = sim.clock.now_ms()
        # Same id space as the diff-depth streams: the feeds' snapshot, not the engine's update id.
        # Two calls, two wall-clock readings: everything but the event time must agree exactly.
        served, feeds = rest.depth_source(symbol, 10), sim.feeds.depth_snapshot(symbol, 10)
        assert 0 <= feeds.pop("E") - served.pop("E") <= 1000
        assert served == feeds
        mark = sim.feeds.mark_price(symbol, now)
        assert rest.mark_source(symbol, now) == MarkNumbers.from_mark_price(mark)
        row = rest._premium_row(rest.futures.contracts[symbol], now)
        assert (row["markPrice"], row["indexPrice"], row["lastFundingRate"], row["nextFundingTime"]) == \
            (mark["p"], mark["i"], mark["r"], mark["T"])
        # The product not served keeps the book-only model over the same engine.
        assert sim.futures_rest[other].mark_source == sim.futures_rest[other].book_mark


async def _place(sim: Simulator, account: Any) -> dict[str, Any]:
    bid = sim.feeds.depth_snapshot("BTCUSDT", 5)["bids"][0][0]
    return sim.futures["usdm"].place_order(account, {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
        "price": bid})


async def test_private_stream_takes_keys_with_their_events_filters() -> None:
    async with Simulator(product_config("usdm", flow_rate=0.0)) as sim:
        for _ in range(30):
            sim.step()
        alice, bob = sim.accounts.create_account("alice"), sim.accounts.create_account("bob")
        ka, kb = sim.accounts.create_listen_key(alice), sim.accounts.create_listen_key(bob)
        both = await connect(f"{sim.stream_url}/private/stream?listenKey={ka}&events=ORDER_TRADE_UPDATE"
                             f"&listenKey={kb}&events=ACCOUNT_UPDATE")
        single = await connect(f"{sim.stream_url}/private/ws/{ka}")  # Binance's documented path form
        # The server opens a key's stream once its handshake is done: wait for both connections.
        await both.wait_for(lambda: len(sim.accounts.sessions) == 2, TIMEOUT)
        futures = sim.futures["usdm"]
        for account in (alice, bob):
            futures.deposit(account, "USDT", "100000")
        order_a, order_b = await _place(sim, alice), await _place(sim, bob)
        await both.wait_for(lambda: len(both.texts()) >= 2, TIMEOUT)
        await single.wait_for(lambda: "ORDER_TRADE_UPDATE" in kinds(single), TIMEOUT)
        got = [(m["stream"], m["data"]["e"]) for m in both.messages()]
        # alice's key: her order only (her deposit filtered out); bob's key: his deposit only.
        assert sorted(got) == sorted([(ka, "ORDER_TRADE_UPDATE"), (kb, "ACCOUNT_UPDATE")])
        order_event = next(m["data"] for m in both.messages() if m["stream"] == ka)
        assert order_event["o"]["i"] == order_a["orderId"] != order_b["orderId"]
        # The unfiltered /private/ws/<key> gets everything of alice's.
        assert {"ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE"} <= set(kinds(single))
        # A name that is no live key is refused on /private, as is an unknown key on /private/stream.
        for path in ("/private/ws/btcusdt@depth", "/private/stream?streams=btcusdt@depth"):
            with pytest.raises(WSInvalidStatusError):
                await connect(f"{sim.stream_url}{path}")
        closed = await connect(f"{sim.stream_url}/private/stream?listenKey=nope")
        assert await closed.closed() is not None
