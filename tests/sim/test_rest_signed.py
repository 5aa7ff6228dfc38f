"""Signed account endpoints third-party clients call (issue "The first hour", item 6), the weight headers
Binance sends on every answer, and the JSON 404 for unknown paths: over real HTTP, signed by hand."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from binance_ws.sim import Simulator
from tests.userdata_support import best

STABLE = {"rest_weight_window_s": 3600.0}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(**STABLE) as s:
        yield s


class Signed:
    """HMAC-signed requests (PROTOCOL 7.1: signature over the query string, key in X-MBX-APIKEY)."""

    def __init__(self, http: aiohttp.ClientSession, sim: Simulator, account: str, **balances: str) -> None:
        sim.accounts.create_account(account, balances)
        self.api_key, self.secret = sim.accounts.register_hmac_key(account)
        self.http, self.base = http, f"{sim.rest_url}/api/v3/"

    async def __call__(self, method: str, path: str, **params: Any) -> tuple[int, Any, dict[str, str]]:
        query = urlencode({**params, "timestamp": int(time.time() * 1000)})
        sig = hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        async with self.http.request(method, f"{self.base}{path}?{query}&signature={sig}",
                                     headers={"X-MBX-APIKEY": self.api_key}) as r:
            return r.status, await r.json(content_type=None), dict(r.headers)


def weights(headers: dict[str, str]) -> tuple[int, int]:
    return int(headers["X-MBX-USED-WEIGHT"]), int(headers["X-MBX-USED-WEIGHT-1M"])


async def test_both_weight_headers_on_every_answer_and_json_404(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.rest_url}/api/v3/ping") as r:
            assert r.status == 200 and weights(dict(r.headers)) == (1, 1)
        async with http.get(f"{sim.rest_url}/api/v3/depth", params={"symbol": "NOPE"}) as r:
            assert r.status == 400 and weights(dict(r.headers)) == (6, 6)
        for method, path in (("GET", "/api/v3/nosuch"), ("GET", "/sapi/v1/capital/config/getall"),
                             ("DELETE", "/api/v3/ping")):
            async with http.request(method, f"{sim.rest_url}{path}") as r:
                assert r.status in (404, 405) and r.content_type == "application/json", (path, r.status)
                body = await r.json()
                assert body == {"code": -1000, "msg": f"Path {path}, Method {method} is invalid"}


async def test_signed_account_endpoints(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        call = Signed(http, sim, "alice", USDT="100000")
        bid, ask = best(sim)
        low = f"{float(bid) * 0.5:.2f}"
        status, resting, _ = await call("POST", "order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                        timeInForce="GTC", quantity="0.01", price=low)
        assert status == 200, resting
        status, taken, _ = await call("POST", "order", symbol="BTCUSDT", side="BUY", type="MARKET",
                                      quantity="0.001")
        assert status == 200 and taken["status"] == "FILLED", taken

        status, open_, h = await call("GET", "openOrders", symbol="BTCUSDT")
        assert status == 200 and [o["orderId"] for o in open_] == [resting["orderId"]]
        assert open_[0]["status"] == "NEW" and open_[0]["price"] == f"{float(low):.8f}"
        assert {"isWorking", "time", "updateTime", "origQty"} <= set(open_[0])
        before = weights(h)[0]
        _, everywhere, h = await call("GET", "openOrders")
        assert [o["orderId"] for o in everywhere] == [resting["orderId"]]
        assert weights(h)[0] == before + 80

        _, every, h = await call("GET", "allOrders", symbol="BTCUSDT")
        assert [o["orderId"] for o in every] == [resting["orderId"], taken["orderId"]]
        assert [o["status"] for o in every] == ["NEW", "FILLED"]
        assert weights(h)[0] == before + 80 + 20

        _, fills, h = await call("GET", "myTrades", symbol="BTCUSDT")
        assert [f["id"] for f in fills] == [f["tradeId"] for f in taken["fills"]]
        assert all(f["orderId"] == taken["orderId"] and f["isBuyer"] and not f["isMaker"] for f in fills)
        assert set(fills[0]) == {"symbol", "id", "orderId", "orderListId", "price", "qty", "quoteQty",
                                 "commission", "commissionAsset", "time", "isBuyer", "isMaker",
                                 "isBestMatch"}
        assert weights(h)[0] == before + 80 + 20 + 20
        _, mine, h = await call("GET", "myTrades", symbol="BTCUSDT", orderId=resting["orderId"])
        assert mine == [] and weights(h)[0] == before + 80 + 20 + 20 + 5

        status, tested, h = await call("POST", "order/test", symbol="BTCUSDT", side="SELL", type="LIMIT",
                                       timeInForce="GTC", quantity="1", price=ask)
        assert (status, tested) == (200, {}) and weights(h)[0] == before + 80 + 20 + 20 + 5 + 1
        _, rates, _ = await call("POST", "order/test", symbol="BTCUSDT", side="BUY", type="MARKET",
                                 quantity="1", computeCommissionRates="true")
        assert rates["standardCommissionForOrder"] == {"maker": "0.00000000", "taker": "0.00000000"}
        assert (await call("POST", "order/test", symbol="NOPE", side="BUY", type="MARKET",
                           quantity="1"))[:2] == (400, {"code": -1121, "msg": "Invalid symbol."})
        status, missing, _ = await call("POST", "order/test", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                        quantity="1", price=bid)
        assert (status, missing["code"]) == (400, -1102)
        _, again, _ = await call("GET", "openOrders", symbol="BTCUSDT")
        assert [o["orderId"] for o in again] == [resting["orderId"]]  # a test order places nothing

        _, commission, h = await call("GET", "account/commission", symbol="BTCUSDT")
        assert commission["symbol"] == "BTCUSDT"
        assert set(commission) == {"symbol", "standardCommission", "specialCommission", "taxCommission",
                                   "discount"}
        assert set(commission["standardCommission"]) == {"maker", "taker", "buyer", "seller"}

        before = weights(h)[0]
        _, limits, h = await call("GET", "rateLimit/order")
        assert weights(h)[0] == before + 40
        assert [(x["interval"], x["intervalNum"], x["count"]) for x in limits] == [("SECOND", 10, 2),
                                                                                   ("DAY", 1, 2)]
        assert all(x["rateLimitType"] == "ORDERS" for x in limits)


async def test_cancel_all_open_orders_of_a_symbol(sim: Simulator) -> None:
    # DELETE /api/v3/openOrders (weight 1): every working order of the symbol cancelled, each cancel's body;
    # with none left, Binance answers -2011 "Unknown order sent." (binance-connector-python #185).
    async with aiohttp.ClientSession() as http:
        call = Signed(http, sim, "alice", USDT="100000")
        bid, _ = best(sim)
        ids = []
        for factor in (0.5, 0.6):
            _, order, _ = await call("POST", "order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                     timeInForce="GTC", quantity="0.01", price=f"{float(bid) * factor:.2f}")
            ids.append(order["orderId"])
        _, _, h = await call("GET", "ping")
        status, cancelled, h2 = await call("DELETE", "openOrders", symbol="BTCUSDT")
        assert status == 200, cancelled
        assert [(c["orderId"], c["status"]) for c in cancelled] == [(i, "CANCELED") for i in ids]
        assert all({"origClientOrderId", "clientOrderId", "executedQty"} <= set(c) for c in cancelled)
        assert weights(h2)[0] == weights(h)[0] + 1
        assert (await call("GET", "openOrders", symbol="BTCUSDT"))[1] == []
        assert (await call("DELETE", "openOrders", symbol="BTCUSDT"))[:2] == \
            (400, {"code": -2011, "msg": "Unknown order sent."})
        status, missing, _ = await call("DELETE", "openOrders")
        assert (status, missing["code"]) == (400, -1102)


async def test_market_order_by_quote_order_qty(sim: Simulator) -> None:
    # rest-api.md: a MARKET order may give quoteOrderQty instead of quantity; a buy spends at most that
    # much quote, in whole steps of base (origQty = executedQty), and reports origQuoteOrderQty.
    async with aiohttp.ClientSession() as http:
        call = Signed(http, sim, "alice", USDT="100000", BTC="1")
        status, bought, _ = await call("POST", "order", symbol="BTCUSDT", side="BUY", type="MARKET",
                                       quoteOrderQty="100")
        assert status == 200, bought
        assert (bought["status"], bought["origQuoteOrderQty"]) == ("FILLED", "100.00000000")
        assert bought["origQty"] == bought["executedQty"]
        spent = Decimal(bought["cummulativeQuoteQty"])
        last = Decimal(bought["fills"][-1]["price"])
        assert spent <= 100 < spent + last * Decimal("0.00001")  # one more step would overspend
        assert sum(Decimal(f["qty"]) for f in bought["fills"]) == Decimal(bought["executedQty"])
        _, account, _ = await call("GET", "account")
        balances = {b["asset"]: b for b in account["balances"]}
        assert Decimal(balances["USDT"]["free"]) == 100000 - spent
        assert Decimal(balances["BTC"]["free"]) == 1 + Decimal(bought["executedQty"])
        _, order, _ = await call("GET", "order", symbol="BTCUSDT", orderId=bought["orderId"])
        assert order["origQuoteOrderQty"] == "100.00000000"

        status, sold, _ = await call("POST", "order", symbol="BTCUSDT", side="SELL", type="MARKET",
                                     quoteOrderQty="50")
        assert status == 200 and Decimal(sold["cummulativeQuoteQty"]) <= 50, sold
        tiny = await call("POST", "order", symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="1")
        assert tiny[:2] == (400, {"code": -1013, "msg": "Filter failure: NOTIONAL"})
        status, limit, _ = await call("POST", "order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                      timeInForce="GTC", price="1000", quoteOrderQty="100")
        assert (status, limit["code"]) == (400, -1106)
        assert (await call("POST", "order", symbol="BTCUSDT", side="BUY", type="MARKET"))[:2] == \
            (400, {"code": -1102,
                   "msg": "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"})


async def test_cancel_replace(sim: Simulator) -> None:
    # POST /api/v3/order/cancelReplace (weight 1): both halves' answers; one half failing is 409 -2021,
    # the cancel failing under STOP_ON_FAILURE (new order NOT_ATTEMPTED) or both failing is 400 -2022,
    # each carrying the halves as "data" (rest-api.md).
    async with aiohttp.ClientSession() as http:
        call = Signed(http, sim, "alice", USDT="1000")
        bid, _ = best(sim)
        low = f"{float(bid) * 0.5:.2f}"
        _, old, _ = await call("POST", "order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                               timeInForce="GTC", quantity="0.01", price=low)
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": "0.01", "price": low}
        _, _, h = await call("GET", "ping")
        status, both, h2 = await call("POST", "order/cancelReplace", cancelReplaceMode="STOP_ON_FAILURE",
                                      cancelOrderId=old["orderId"], **order)
        assert status == 200, both
        assert (both["cancelResult"], both["newOrderResult"]) == ("SUCCESS", "SUCCESS")
        assert (both["cancelResponse"]["orderId"], both["cancelResponse"]["status"]) == \
            (old["orderId"], "CANCELED")
        new = both["newOrderResponse"]
        assert new["status"] == "NEW" and new["orderId"] > old["orderId"]
        assert weights(h2)[0] == weights(h)[0] + 1
        assert [o["orderId"] for o in (await call("GET", "openOrders", symbol="BTCUSDT"))[1]] == \
            [new["orderId"]]

        status, stopped, _ = await call("POST", "order/cancelReplace", cancelReplaceMode="STOP_ON_FAILURE",
                                        cancelOrderId=old["orderId"], **order)
        assert (status, stopped["code"], stopped["msg"]) == (400, -2022, "Order cancel-replace failed.")
        assert stopped["data"] == {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                                   "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                                   "newOrderResponse": None}
        status, allowed, _ = await call("POST", "order/cancelReplace", cancelReplaceMode="ALLOW_FAILURE",
                                        cancelOrderId=old["orderId"], **order)
        assert (status, allowed["code"]) == (409, -2021)
        assert (allowed["data"]["cancelResult"], allowed["data"]["newOrderResult"]) == ("FAILURE", "SUCCESS")
        placed = allowed["data"]["newOrderResponse"]["orderId"]

        # 1000 USDT cannot pay for 1 BTC: the cancel goes through, the new order does not.
        status, half, _ = await call("POST", "order/cancelReplace", cancelReplaceMode="STOP_ON_FAILURE",
                                     cancelOrderId=placed, **{**order, "quantity": "1"})
        assert (status, half["code"], half["msg"]) == (409, -2021, "Order cancel-replace partially failed.")
        assert half["data"]["cancelResponse"]["orderId"] == placed
        assert half["data"]["newOrderResponse"]["code"] == -2010
        assert [o["orderId"] for o in (await call("GET", "openOrders", symbol="BTCUSDT"))[1]] == \
            [new["orderId"]]
        status, missing, _ = await call("POST", "order/cancelReplace", cancelReplaceMode="STOP_ON_FAILURE",
                                        **order)
        assert (status, missing["code"]) == (400, -1102)
