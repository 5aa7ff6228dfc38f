"""Unmodified UNICORN Binance Suite clients against the simulator (issue 13, interop).

unicorn-binance-websocket-api 2.16.1 and unicorn-binance-local-depth-cache 2.14.0 (with its
unicorn-binance-rest-api) are pointed at the simulator by URL only:

- ``BinanceWebSocketApiManager(websocket_base_uri=...)``, the override the manager documents;
- the local depth cache builds its own websocket manager, whose ``websocket_base_uri`` attribute is set
  before the first cache is created (nothing connects earlier);
- ``BinanceRestApiManager`` formats its class-level ``API_URL`` template with ``tld`` when one is given,
  so the template becomes the simulator's address (its ``exchange=`` presets are hard-coded hosts).

``warn_on_update=False`` keeps them from asking GitHub for a newer release. Their calls are blocking and
threaded, so they are made off the event loop the simulator runs on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from binance_ws.sim import Simulator
from tests.interop.support import Stepper, rest_get, until

pytest.importorskip("unicorn_binance_local_depth_cache",
                    reason="unicorn-binance-local-depth-cache is not installed (scripts/test installs it)")
from unicorn_binance_local_depth_cache import BinanceLocalDepthCacheManager
from unicorn_binance_rest_api import BinanceRestApiManager
from unicorn_binance_websocket_api import BinanceWebSocketApiManager

pytestmark = pytest.mark.interop

SYMBOL = "BTCUSDT"
#: Generous: the depth cache waits 5 s for its socket before it subscribes (its own pacing), and the
#: machine may be loaded.
DEADLINE_S = 40.0


@pytest.fixture
def rest_template(quiet_sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(BinanceRestApiManager, "API_URL", f"{quiet_sim.rest_url}/api")
    yield


def as_levels(rows: list[list[str]]) -> list[list[float]]:
    return [[float(p), float(q)] for p, q in rows]


async def test_local_depth_cache_equals_rest_depth_at_the_same_update_id(
        quiet_sim: Simulator, stepper: Stepper, rest_template: None) -> None:
    sim = quiet_sim

    def make() -> BinanceLocalDepthCacheManager:
        ubra = BinanceRestApiManager(tld="com", warn_on_update=False, disable_colorama=True)
        ldc = BinanceLocalDepthCacheManager(exchange="binance.com", ubra_manager=ubra,
                                            warn_on_update=False, disable_colorama=True)
        ldc.get_ubwa_manager().websocket_base_uri = f"{sim.stream_url}/"
        ldc.create_depthcache(markets=[SYMBOL])
        return ldc

    ldc = await asyncio.to_thread(make)
    market = SYMBOL.lower()
    try:
        # It snapshots over REST and applies diffs that arrive while the book keeps moving.
        await until("the depth cache to synchronise", lambda: ldc.is_depth_cache_synchronized(SYMBOL),
                    DEADLINE_S)

        def update_id() -> int:
            # None while it (re)synchronises: a gap makes it start over, which is its own business.
            value = ldc.depth_caches[market]["last_update_id"]
            return int(value) if value is not None and ldc.is_depth_cache_synchronized(SYMBOL) else 0

        first_id = update_id()
        await until("diffs applied after the snapshot", lambda: update_id() > first_id, DEADLINE_S)
        # Hold the book still; the next diff brings the cache to the book's final update id.
        await stepper.stop()
        rest = await rest_get(sim, "/api/v3/depth", symbol=SYMBOL, limit=5000)
        await until(f"the cache to reach update id {rest['lastUpdateId']}",
                    lambda: update_id() == rest["lastUpdateId"], DEADLINE_S)
        assert ldc.get_bids(SYMBOL) == as_levels(rest["bids"])
        assert ldc.get_asks(SYMBOL) == as_levels(rest["asks"])
        assert len(rest["bids"]) > 10 and len(rest["asks"]) > 10
    finally:
        await asyncio.to_thread(ldc.stop_manager)


async def test_websocket_manager_trades_are_the_simulators(quiet_sim: Simulator,
                                                           stepper: Stepper) -> None:
    sim = quiet_sim

    def make() -> BinanceWebSocketApiManager:
        ubwa = BinanceWebSocketApiManager(exchange="binance.com", websocket_base_uri=f"{sim.stream_url}/",
                                          warn_on_update=False, disable_colorama=True)
        ubwa.create_stream(["trade"], [SYMBOL.lower()])
        return ubwa

    ubwa = await asyncio.to_thread(make)
    received: list[dict[str, Any]] = []

    def drain() -> bool:
        while raw := ubwa.pop_stream_data_from_stream_buffer():  # False or None when empty
            msg = json.loads(raw) if isinstance(raw, str) else raw
            data = msg.get("data", msg)
            if data.get("e") == "trade":
                received.append(data)
        return len(received) >= 5

    try:
        await until("five trades on the websocket manager's buffer", drain)
        await stepper.stop()
        history = await rest_get(sim, "/api/v3/trades", symbol=SYMBOL, limit=1000)
        by_id = {t["id"]: t for t in history}
        for trade in received:
            assert trade["s"] == SYMBOL
            rest = by_id[trade["t"]]
            assert (trade["p"], trade["q"], trade["T"], trade["m"]) == \
                (rest["price"], rest["qty"], rest["time"], rest["isBuyerMaker"])
        ids = [t["t"] for t in received]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    finally:
        await asyncio.to_thread(ubwa.stop_manager)


async def test_websocket_manager_api_stream_answers_as_the_simulator(quiet_sim: Simulator) -> None:
    # Its WebSocket API client (create_stream(api=True)) at websocket_api_base_uri: market data equal to
    # REST's (the book is still), and a signed order placed, listed and cancelled.
    sim = quiet_sim
    sim.accounts.create_account("finn", {"USDT": "100000", "BTC": "2"})
    api_key, secret = sim.accounts.register_hmac_key("finn")
    # REST's answers first: the session's own order moves the book (and its update id) later.
    depth = await rest_get(sim, "/api/v3/depth", symbol=SYMBOL, limit=20)
    trades = await rest_get(sim, "/api/v3/trades", symbol=SYMBOL, limit=5)
    aggs = await rest_get(sim, "/api/v3/aggTrades", symbol=SYMBOL, limit=5)
    price = round(float(depth["bids"][0][0]) * 0.5, 2)

    def session() -> dict[str, Any]:
        ubwa = BinanceWebSocketApiManager(exchange="binance.com", websocket_api_base_uri=sim.ws_api_url,
                                          warn_on_update=False, disable_colorama=True,
                                          output_default="dict")
        try:
            sid = ubwa.create_stream(api=True, api_key=api_key, api_secret=secret)
            spot = ubwa.api.spot
            out: dict[str, Any] = {}
            out["depth"] = spot.get_order_book(symbol=SYMBOL, limit=20, stream_id=sid, return_response=True)
            out["trades"] = spot.get_recent_trades(symbol=SYMBOL, limit=5, stream_id=sid,
                                                   return_response=True)
            out["aggs"] = spot.get_aggregate_trades(symbol=SYMBOL, limit=5, stream_id=sid,
                                                    return_response=True)
            out["placed"] = spot.create_order(symbol=SYMBOL, side="BUY", order_type="LIMIT",
                                              time_in_force="GTC", quantity=0.01, price=price,
                                              stream_id=sid, return_response=True)
            out["open"] = spot.get_open_orders(symbol=SYMBOL, stream_id=sid, return_response=True)
            out["cancelled"] = spot.cancel_open_orders(symbol=SYMBOL, stream_id=sid, return_response=True)
            out["account"] = spot.get_account_status(stream_id=sid, return_response=True)
            return out
        finally:
            ubwa.stop_manager()

    got = await asyncio.to_thread(session)
    _, placed_frame = got.pop("placed")  # create_order answers (its newClientOrderId, the frame)
    for name, frame in [*got.items(), ("placed", placed_frame)]:
        assert frame["status"] == 200, (name, frame)
    assert (got["depth"]["result"], got["trades"]["result"], got["aggs"]["result"]) == (depth, trades, aggs)
    placed = placed_frame["result"]
    assert (placed["symbol"], placed["status"], placed["price"]) == (SYMBOL, "NEW", f"{price:.8f}")
    assert [o["orderId"] for o in got["open"]["result"]] == [placed["orderId"]]
    assert [(o["orderId"], o["status"]) for o in got["cancelled"]["result"]] == \
        [(placed["orderId"], "CANCELED")]
    balances = {b["asset"]: b for b in got["account"]["result"]["balances"]}
    assert balances["USDT"] == {"asset": "USDT", "free": "100000.00000000", "locked": "0.00000000"}
