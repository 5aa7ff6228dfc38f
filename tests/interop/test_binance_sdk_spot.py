"""Binance's own connector, binance-sdk-spot 13.3.0, against the simulator (issue 13, interop).

Its three clients are pointed at the simulator by the URL each configuration takes and nothing else:
``ConfigurationRestAPI(base_path=...)``, ``ConfigurationWebSocketStreams(stream_url=...)`` and
``ConfigurationWebSocketAPI(stream_url=...)``. REST is blocking (``requests``), so it is called off the
event loop the simulator runs on; both WebSocket clients are asyncio (aiohttp) and run on it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from binance_ws.sim import Simulator
from tests.interop.support import rest_get

pytest.importorskip("binance_sdk_spot", reason="binance-sdk-spot is not installed (scripts/test installs it)")
from binance_common.configuration import (
    ConfigurationRestAPI,
    ConfigurationWebSocketAPI,
    ConfigurationWebSocketStreams,
)
from binance_sdk_spot.spot import Spot

pytestmark = [
    pytest.mark.interop,
    # The connector's own aiohttp call (ws_connect(timeout=float)), not ours.
    pytest.mark.filterwarnings("ignore:parameter 'timeout' of type 'float' is deprecated"),
]

SYMBOL = "BTCUSDT"
DEADLINE_S = 20.0


async def until(what: str, check: Callable[[], Any], deadline_s: float = DEADLINE_S) -> Any:
    end = time.monotonic() + deadline_s
    while not (value := check()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value


@pytest.fixture
def keys(sim: Simulator) -> tuple[str, str]:
    sim.accounts.create_account("dora", {"USDT": "100000", "BTC": "2"})
    return sim.accounts.register_hmac_key("dora")


@pytest.fixture
def spot(sim: Simulator, keys: tuple[str, str]) -> Spot:
    api_key, secret = keys
    return Spot(
        config_rest_api=ConfigurationRestAPI(api_key=api_key, api_secret=secret, base_path=sim.rest_url),
        config_ws_api=ConfigurationWebSocketAPI(api_key=api_key, api_secret=secret,
                                                stream_url=sim.ws_api_url),
        config_ws_streams=ConfigurationWebSocketStreams(stream_url=sim.stream_url),
    )


def data(response: Any) -> Any:
    """A response's payload as Binance's JSON (the SDK wraps it in pydantic models; ``to_dict`` gives
    back the wire names)."""
    value = response.data()
    if isinstance(value, list):
        return [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
    return value.to_dict() if hasattr(value, "to_dict") else value


def result(response: Any) -> Any:
    """A WebSocket API answer's ``result``."""
    return data(response)["result"]


async def test_streams_trades_are_the_simulators(sim: Simulator, spot: Spot) -> None:
    connection = await spot.websocket_streams.create_connection()
    received: list[Any] = []
    try:
        stream = await connection.trade(symbol=SYMBOL.lower())
        stream.on("message", received.append)
        await until("three trades", lambda: len(received) >= 3)
    finally:
        await connection.close_connection(close_session=True)
    history = {t["id"]: t for t in await asyncio.to_thread(
        lambda: data(spot.rest_api.get_trades(symbol=SYMBOL, limit=1000)))}
    for msg in received[:3]:
        trade = msg.to_dict() if hasattr(msg, "to_dict") else msg
        assert trade["s"] == SYMBOL
        assert Decimal(trade["p"]) == Decimal(history[trade["t"]]["price"])


async def test_streams_diff_depth_follows_the_update_ids(spot: Spot) -> None:
    connection = await spot.websocket_streams.create_connection()
    received: list[Any] = []
    try:
        stream = await connection.diff_book_depth(symbol=SYMBOL.lower(), update_speed="100ms")
        stream.on("message", received.append)
        await until("three diffs", lambda: len(received) >= 3)
    finally:
        await connection.close_connection(close_session=True)
    diffs = [m.to_dict() if hasattr(m, "to_dict") else m for m in received]
    for prev, cur in itertools.pairwise(diffs):
        assert cur["U"] == prev["u"] + 1


async def test_rest_market_data_and_signed_order(sim: Simulator, spot: Spot) -> None:
    def calls() -> dict[str, Any]:
        rest = spot.rest_api
        out: dict[str, Any] = {}
        out["time"] = data(rest.time())
        out["info"] = data(rest.exchange_info(symbol=SYMBOL))
        out["depth"] = data(rest.depth(symbol=SYMBOL, limit=5))
        bid = Decimal(out["depth"]["bids"][0][0])
        out["placed"] = data(rest.new_order(symbol=SYMBOL, side="BUY", type="LIMIT",
                                            time_in_force="GTC", quantity=0.01,
                                            price=float((bid / 2).quantize(Decimal("0.01")))))
        out["open"] = data(rest.get_open_orders(symbol=SYMBOL))
        out["account"] = data(rest.get_account())
        return out

    got = await asyncio.to_thread(calls)
    assert abs(got["time"]["serverTime"] - sim.clock.now_ms()) < 10_000
    assert [s["symbol"] for s in got["info"]["symbols"]] == [SYMBOL]
    assert 0 < len(got["depth"]["bids"]) <= 5
    placed = got["placed"]
    assert placed["symbol"] == SYMBOL and placed["status"] == "NEW"
    assert [o["orderId"] for o in got["open"]] == [placed["orderId"]]
    usdt = next(b for b in got["account"]["balances"] if b["asset"] == "USDT")
    assert Decimal(usdt["locked"]) > 0


async def test_websocket_api_market_data_and_signed_order(sim: Simulator, spot: Spot) -> None:
    connection = await spot.websocket_api.create_connection()
    try:
        answer = await connection.depth(symbol=SYMBOL, limit=5)
        weights = answer.rate_limits
        depth = result(answer)
        trades = result(await connection.trades_recent(symbol=SYMBOL, limit=5))
        price = result(await connection.ticker_price(symbol=SYMBOL))
        bid = Decimal(depth["bids"][0][0])
        placed = result(await connection.order_place(
            symbol=SYMBOL, side="BUY", type="LIMIT", time_in_force="GTC", quantity=0.01,
            price=float((bid / 2).quantize(Decimal("0.01")))))
        status = result(await connection.order_status(symbol=SYMBOL, order_id=placed["orderId"]))
    finally:
        await connection.close_connection(close_session=True)
    assert [(w.rateLimitType, w.interval) for w in weights] == [("REQUEST_WEIGHT", "MINUTE")]
    assert [(w.rateLimitType, w.interval) for w in weights] == [("REQUEST_WEIGHT", "MINUTE")]
    assert 0 < len(depth["bids"]) <= 5 and len(trades) == 5
    assert price["symbol"] == SYMBOL and Decimal(price["price"]) > 0
    assert placed["symbol"] == SYMBOL and placed["status"] == "NEW"
    assert status["orderId"] == placed["orderId"] and status["status"] == "NEW"


async def test_websocket_api_user_data_stream_pushes_the_order(sim: Simulator, spot: Spot) -> None:
    # userDataStream.subscribe.signature (any key type), then the account's order shows up as an
    # executionReport on that subscription.
    connection = await spot.websocket_api.create_connection()
    events: list[Any] = []
    try:
        subscribed = await connection.user_data_stream_subscribe_signature()
        subscribed.stream.on("message", events.append)
        bid = Decimal((await rest_get(sim, "/api/v3/depth", symbol=SYMBOL, limit=5))["bids"][0][0])
        placed = result(await connection.order_place(
            symbol=SYMBOL, side="BUY", type="LIMIT", time_in_force="GTC", quantity=0.01,
            price=float((bid / 2).quantize(Decimal("0.01")))))

        def report() -> Any:
            # Each event is parsed into its model (the oneOf's actual_instance), keyed by ``e``.
            for event in events:
                if type(event.actual_instance).__name__ == "ExecutionReport":
                    body = event.to_dict()
                    if body["i"] == placed["orderId"]:
                        return body
            return None

        pushed = await until("the order's executionReport", report)
    finally:
        await connection.close_connection(close_session=True)
    assert (pushed["s"], pushed["S"], pushed["X"], pushed["x"]) == (SYMBOL, "BUY", "NEW", "NEW")
    assert pushed["c"] == placed["clientOrderId"]
