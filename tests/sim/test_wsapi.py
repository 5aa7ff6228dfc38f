"""The simulator's WebSocket API over a real picows connection: wire shapes, sessions, subscriptions."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from binance_ws.core.signing import make_signer, ws_payload
from tests.userdata_support import KEY_KINDS, Credentials, accounts_sim, best, make_account

WAIT_S = 5.0


class RawClient(WSListener):
    """A bare WebSocket API client: sends JSON, queues every JSON frame it receives."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.transport: WSTransport | None = None
        self._ids = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.frames.put_nowait(orjson.loads(frame.get_payload_as_bytes()))

    def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        self._ids += 1
        message: dict[str, Any] = {"id": self._ids, "method": method}
        if params is not None:
            message["params"] = params
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, orjson.dumps(message))
        return self._ids

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), WAIT_S)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send and return the response with this id (events met on the way are kept, in order)."""
        req_id = self.send(method, params)
        held: list[dict[str, Any]] = []
        while True:
            frame = await self.next()
            if frame.get("id") == req_id and "status" in frame:
                for f in held:
                    self.frames.put_nowait(f)
                return frame
            held.append(frame)


async def connect(sim: Any, query: str = "") -> RawClient:
    _, client = await ws_connect(RawClient, sim.ws_api_url + query)
    assert isinstance(client, RawClient)
    return client


def signed(creds: Credentials, sim: Any, **extra: Any) -> dict[str, Any]:
    signer = make_signer(secret=creds.secret) if creds.secret else make_signer(private_key=creds.private_key)
    params = {"apiKey": creds.api_key, "timestamp": sim.clock.now_ms(), **extra}
    params["signature"] = signer.sign(ws_payload(params))
    return params


def place(sim: Any, account: str, **params: Any) -> dict[str, Any]:
    return sim.accounts.place_order(sim.accounts.account(account), params)  # type: ignore[no-any-return]


async def test_ping_time_shapes_and_rate_limits() -> None:
    async with accounts_sim() as sim:
        client = await connect(sim)
        pong = await client.call("ping")
        assert pong["status"] == 200 and pong["result"] == {}
        limits = pong["rateLimits"][0]
        assert (limits["rateLimitType"], limits["interval"], limits["intervalNum"]) == \
            ("REQUEST_WEIGHT", "MINUTE", 1)
        later = await client.call("v3/time")
        assert abs(later["result"]["serverTime"] - sim.clock.now_ms()) < 5_000
        assert later["rateLimits"][0]["count"] > limits["count"]
        unknown = await client.call("nope.nothing")
        assert unknown["status"] == 400 and set(unknown["error"]) == {"code", "msg"}
        quiet = await client.call("ping", {"returnRateLimits": False})
        assert "rateLimits" not in quiet
        client.transport.disconnect()  # type: ignore[union-attr]
        silent = await connect(sim, "?returnRateLimits=false")
        assert "rateLimits" not in await silent.call("ping")


@pytest.mark.parametrize("kind", KEY_KINDS)
async def test_subscribe_signature_delivers_events_then_terminates(kind: str) -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", kind)  # type: ignore[arg-type]
        make_account(sim, "mm", "HMAC")
        client = await connect(sim)
        sub = await client.call("userDataStream.subscribe.signature", signed(creds, sim))
        assert sub["status"] == 200 and sub["result"] == {"subscriptionId": 0}
        again = await client.call("userDataStream.subscribe.signature", signed(creds, sim))
        assert (again["status"], again["error"]["code"]) == (400, -2035)

        bid, _ = best(sim)
        price = str(Decimal(bid) + Decimal("0.01"))
        order = place(sim, "alice", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                      quantity="0.01000", price=price)
        place(sim, "mm", symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01000")
        frames = [await client.next() for _ in range(4)]
        assert all(set(f) == {"subscriptionId", "event"} and f["subscriptionId"] == 0 for f in frames)
        events = [f["event"] for f in frames]
        assert [(e["e"], e.get("x"), e.get("X")) for e in events] == [
            ("executionReport", "NEW", "NEW"), ("outboundAccountPosition", None, None),
            ("executionReport", "TRADE", "FILLED"), ("outboundAccountPosition", None, None)]
        assert events[2]["i"] == order["orderId"] and events[2]["L"] == f"{Decimal(price):.8f}"

        listing = await client.call("session.subscriptions")
        assert listing["result"] == [{"subscriptionId": 0}]
        bye = await client.call("userDataStream.unsubscribe", {"subscriptionId": 0})
        assert bye["result"] == {}
        terminated = await client.next()
        assert terminated["subscriptionId"] == 0 and terminated["event"]["e"] == "eventStreamTerminated"
        gone = await client.call("userDataStream.unsubscribe")
        assert gone["error"]["code"] == -2036
        # Nothing more arrives for the account once unsubscribed.
        sim.accounts.deposit(sim.accounts.account("alice"), "USDT", "1")
        assert (await client.call("ping"))["status"] == 200
        assert client.frames.empty()


async def test_signature_failures_name_the_cause() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "ED25519")
        client = await connect(sim)

        async def code(params: dict[str, Any]) -> tuple[int, int]:
            reply = await client.call("userDataStream.subscribe.signature", params)
            return reply["status"], reply["error"]["code"]

        wrong_key = signed(creds, sim)
        wrong_key["apiKey"] = "B" * 64
        assert await code(wrong_key) == (401, -2015)
        bad_sig = signed(creds, sim)
        bad_sig["timestamp"] += 1  # the signature no longer matches the params
        assert await code(bad_sig) == (400, -1022)
        assert await code(signed(creds, sim, recvWindow=1000, timestamp=sim.clock.now_ms() - 5_000)) == \
            (400, -1021)
        assert await code({"apiKey": creds.api_key, "signature": "x"}) == (400, -1102)
        assert await code(signed(creds, sim, apiKey="short")) == (401, -2014)


async def test_logon_flow_subscriptions_and_logout() -> None:
    async with accounts_sim() as sim:
        ed = make_account(sim, "ed", "ED25519")
        hm = make_account(sim, "hm", "HMAC")
        rsa = make_account(sim, "rsa", "RSA")
        client = await connect(sim)
        refused = await client.call("userDataStream.subscribe")
        assert (refused["status"], refused["error"]["code"]) == (401, -1002)
        assert (await client.call("session.logon", signed(hm, sim)))["error"]["code"] == -4056
        assert (await client.call("session.logon", signed(rsa, sim)))["error"]["code"] == -4057

        logon = await client.call("session.logon", signed(ed, sim))
        result = logon["result"]
        assert set(result) == {"apiKey", "authorizedSince", "connectedSince", "returnRateLimits",
                               "serverTime", "userDataStream"}
        assert result["apiKey"] == ed.api_key and result["userDataStream"] is False
        extra = await client.call("userDataStream.subscribe", {"x": 1})
        assert extra["error"]["code"] == -1104
        sub = await client.call("userDataStream.subscribe")
        assert sub["result"] == {"subscriptionId": 0}
        # A second account on the same connection, by signature.
        other = await client.call("userDataStream.subscribe.signature", signed(hm, sim))
        assert other["result"] == {"subscriptionId": 1}
        status = await client.call("session.status")
        assert status["result"]["userDataStream"] is True
        assert (await client.call("session.subscriptions"))["result"] == [{"subscriptionId": 0},
                                                                            {"subscriptionId": 1}]
        sim.accounts.deposit(sim.accounts.account("hm"), "BTC", "0.5")
        sim.accounts.deposit(sim.accounts.account("ed"), "ETH", "2")
        routed = [await client.next() for _ in range(4)]
        assert [(f["subscriptionId"], f["event"]["e"]) for f in routed] == [
            (1, "balanceUpdate"), (1, "outboundAccountPosition"), (0, "balanceUpdate"),
            (0, "outboundAccountPosition")]

        logout = await client.call("session.logout")
        assert logout["result"]["apiKey"] is None
        ended = await client.next()
        assert ended["subscriptionId"] == 0
        assert ended["event"] == {"e": "eventStreamTerminated", "E": ended["event"]["E"]}
        assert (await client.call("session.subscriptions"))["result"] == [{"subscriptionId": 1}]


async def test_order_place_signed_and_after_logon() -> None:
    async with accounts_sim() as sim:
        hm = make_account(sim, "hm", "HMAC")
        ed = make_account(sim, "ed", "ED25519")
        client = await connect(sim)
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.00100"}
        placed = await client.call("order.place", signed(hm, sim, **order))
        assert placed["status"] == 200 and placed["result"]["status"] == "FILLED"
        assert placed["result"]["fills"]
        unsigned = await client.call("order.place", {**order, "timestamp": sim.clock.now_ms()})
        assert unsigned["error"]["code"] in (-2014, -1102)
        await client.call("session.logon", signed(ed, sim))
        after = await client.call("order.place", {**order, "timestamp": sim.clock.now_ms()})
        assert after["result"]["status"] == "FILLED"
        assert sim.accounts.account("ed").balances["BTC"].free == Decimal("5.001")
        refused = await client.call("order.place", {**order, "quantity": "0.000001",
                                                    "timestamp": sim.clock.now_ms()})
        assert refused["status"] == 400 and refused["error"]["code"] == -1013
        # Rest an order, read it back, cancel it, all over the logged-on session.
        bid, _ = best(sim)
        low = str(Decimal(bid) - Decimal(100))
        resting = await client.call("order.place", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                    "timeInForce": "GTC", "quantity": "0.00100", "price": low,
                                                    "timestamp": sim.clock.now_ms()})
        order_id = resting["result"]["orderId"]
        status = await client.call("order.status", {"symbol": "BTCUSDT", "orderId": order_id,
                                                    "timestamp": sim.clock.now_ms()})
        assert status["result"]["status"] == "NEW"
        cancelled = await client.call("order.cancel", {"symbol": "BTCUSDT", "orderId": order_id,
                                                       "timestamp": sim.clock.now_ms()})
        assert cancelled["result"]["status"] == "CANCELED"
        account = await client.call("account.status", signed(hm, sim))
        assert account["result"]["accountType"] == "SPOT" and account["rateLimits"][0]["count"] >= 20


async def test_subscriptions_die_with_the_connection() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        client = await connect(sim)
        await client.call("userDataStream.subscribe.signature", signed(creds, sim))
        assert sim.accounts._subscribers[("spot", "alice")]
        assert sim.accounts.drop_sessions() == 1
        assert client.transport is not None
        await asyncio.wait_for(client.transport.wait_disconnected(), WAIT_S)
        for _ in range(100):
            if not sim.accounts._subscribers[("spot", "alice")]:
                break
            await asyncio.sleep(0.01)
        assert not sim.accounts._subscribers[("spot", "alice")] and not sim.accounts.sessions


async def test_market_data_methods_answer_the_rest_bodies() -> None:
    # web-socket-api.md: the market-data methods' results are the REST bodies, with REST's weights.
    async with accounts_sim() as sim:
        client = await connect(sim)
        rest = sim.rest_url + "/api/v3/"
        async with aiohttp.ClientSession() as http:

            async def via_rest(path: str, **query: str) -> Any:
                async with http.get(rest + path, params=query) as r:
                    return await r.json()

            def count(frame: dict[str, Any]) -> int:
                return int(frame["rateLimits"][0]["count"])

            base = count(await client.call("ping"))
            depth = await client.call("depth", {"symbol": "BTCUSDT", "limit": 5})
            assert depth["status"] == 200 and count(depth) == base + 5
            assert set(depth["result"]) == {"lastUpdateId", "bids", "asks"}
            assert len(depth["result"]["bids"]) == 5
            price = await client.call("ticker.price", {"symbol": "BTCUSDT"})
            assert price["result"] == await via_rest("ticker/price", symbol="BTCUSDT")
            assert count(price) == base + 5 + 2
            prices = await client.call("ticker.price", {"symbols": ["BNBBTC", "ETHUSDT"]})
            assert [p["symbol"] for p in prices["result"]] == ["BNBBTC", "ETHUSDT"]
            everything = await client.call("ticker.price")
            assert {p["symbol"] for p in everything["result"]} == {"BTCUSDT", "ETHUSDT", "BNBBTC", "NEOBTC"}
            info = await client.call("exchangeInfo", {"symbol": "BNBBTC"})
            rest_info = await via_rest("exchangeInfo", symbol="BNBBTC")
            assert info["result"]["symbols"] == rest_info["symbols"]
            assert count(info) == count(everything) + 20
            recent = await client.call("trades.recent", {"symbol": "BTCUSDT", "limit": 3})
            assert set(recent["result"][0]) == {"id", "price", "qty", "quoteQty", "time", "isBuyerMaker",
                                                "isBestMatch"}
            assert count(recent) == count(info) + 25
            klines = await client.call("klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 2})
            assert klines["status"] == 200 and all(len(row) == 12 for row in klines["result"])
            assert count(klines) == count(recent) + 2
            bad = await client.call("klines", {"symbol": "BTCUSDT", "interval": "2m"})
            assert (bad["status"], bad["error"]) == (400, {"code": -1120, "msg": "Invalid interval."})
            nope = await client.call("depth", {"symbol": "NOPE"})
            assert (nope["status"], nope["error"]["code"]) == (400, -1121)


async def test_order_test_checks_without_placing() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        client = await connect(sim)
        bid, _ = best(sim)
        params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                  "quantity": "0.01", "price": bid}
        ok = await client.call("order.test", signed(creds, sim, **params))
        assert (ok["status"], ok["result"]) == (200, {})
        rates = await client.call("order.test", signed(creds, sim, computeCommissionRates=True, **params))
        assert set(rates["result"]) == {"standardCommissionForOrder", "specialCommissionForOrder",
                                        "taxCommissionForOrder", "discount"}
        assert rates["rateLimits"][0]["count"] == ok["rateLimits"][0]["count"] + 20
        no_tif = {k: v for k, v in params.items() if k != "timeInForce"}
        missing = await client.call("order.test", signed(creds, sim, **no_tif))
        assert (missing["status"], missing["error"]["code"]) == (400, -1102)
        assert sim.accounts.account("alice").orders == {}


async def test_account_lists_cancel_all_and_historical_trades_answer_as_rest() -> None:
    # web-socket-api.md: openOrders.status (6 / 80 without symbol), allOrders (20), myTrades (20 / 5 with
    # orderId) are REST's lists, openOrders.cancelAll (1) is DELETE /openOrders; trades.historical (25)
    # is GET /historicalTrades.
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        client = await connect(sim)
        bid, _ = best(sim)
        resting = place(sim, "alice", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                        quantity="0.01", price=str((Decimal(bid) / 2).quantize(Decimal("0.01"))))
        taken = place(sim, "alice", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001")
        fills = [f["tradeId"] for f in taken["fills"]]
        assert fills

        def count(frame: dict[str, Any]) -> int:
            return int(frame["rateLimits"][0]["count"])

        base = count(await client.call("ping"))
        opened = await client.call("openOrders.status", signed(creds, sim, symbol="BTCUSDT"))
        assert [o["orderId"] for o in opened["result"]] == [resting["orderId"]]
        # updateTime is when the order last changed (here: placed), not when it was asked about.
        assert opened["result"][0]["updateTime"] == opened["result"][0]["time"] == resting["transactTime"]
        assert count(opened) == base + 6
        every_symbol = await client.call("openOrders.status", signed(creds, sim))
        assert [o["orderId"] for o in every_symbol["result"]] == [resting["orderId"]]
        assert count(every_symbol) == count(opened) + 80
        orders = await client.call("allOrders", signed(creds, sim, symbol="BTCUSDT"))
        assert [o["orderId"] for o in orders["result"]] == [resting["orderId"], taken["orderId"]]
        assert orders["result"][1]["status"] == "FILLED" and count(orders) == count(every_symbol) + 20
        mine = await client.call("myTrades", signed(creds, sim, symbol="BTCUSDT"))
        assert [t["id"] for t in mine["result"]] == fills and count(mine) == count(orders) + 20
        of_order = await client.call("myTrades", signed(creds, sim, symbol="BTCUSDT",
                                                        orderId=taken["orderId"]))
        assert of_order["result"] == mine["result"] and count(of_order) == count(mine) + 5
        unsigned = await client.call("myTrades", {"symbol": "BTCUSDT"})
        assert unsigned["status"] == 400

        before = count(await client.call("ping"))
        cancelled = await client.call("openOrders.cancelAll", signed(creds, sim, symbol="BTCUSDT"))
        assert [(c["orderId"], c["status"]) for c in cancelled["result"]] == \
            [(resting["orderId"], "CANCELED")]
        assert count(cancelled) == before + 1
        after = await client.call("allOrders", signed(creds, sim, symbol="BTCUSDT"))
        assert after["result"][0]["status"] == "CANCELED"
        assert after["result"][0]["updateTime"] >= after["result"][0]["time"]
        none_left = await client.call("openOrders.cancelAll", signed(creds, sim, symbol="BTCUSDT"))
        assert (none_left["status"], none_left["error"]["code"]) == (400, -2011)

        first = fills[0] - 2
        before = count(await client.call("ping"))
        history = await client.call("trades.historical", {"symbol": "BTCUSDT", "fromId": first, "limit": 3})
        assert [t["id"] for t in history["result"]] == [first, first + 1, first + 2]
        assert count(history) == before + 25
        async with aiohttp.ClientSession() as http, http.get(
                sim.rest_url + "/api/v3/historicalTrades",
                params={"symbol": "BTCUSDT", "fromId": str(first), "limit": "3"}) as r:
            assert history["result"] == await r.json()


async def test_more_market_data_methods_answer_the_rest_bodies() -> None:
    # web-socket-api.md: ticker.book (2 / 4), avgPrice (2), uiKlines (2), trades.aggregate (4) answer
    # REST's bodies; account.rateLimits.orders (40) is GET /rateLimit/order, account.commission (20)
    # GET /account/commission.
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        client = await connect(sim)
        async with aiohttp.ClientSession() as http:

            async def via_rest(path: str, **query: str) -> Any:
                async with http.get(sim.rest_url + "/api/v3/" + path, params=query) as r:
                    return await r.json()

            async def weighed(method: str, params: dict[str, Any] | None = None) -> tuple[Any, int]:
                before = int((await client.call("ping"))["rateLimits"][0]["count"])
                frame = await client.call(method, params)
                assert frame["status"] == 200, frame
                return frame["result"], int(frame["rateLimits"][0]["count"]) - before

            # Nothing trades between a WS answer and the REST one: the simulator only moves when stepped.
            assert await weighed("ticker.book", {"symbol": "BTCUSDT"}) == \
                (await via_rest("ticker/bookTicker", symbol="BTCUSDT"), 2)
            books, weight = await weighed("ticker.book")
            assert [b["symbol"] for b in books] == ["BTCUSDT", "ETHUSDT", "BNBBTC", "NEOBTC"] and weight == 4
            for _ in range(3):  # a trade may leave the 5-minute window between the two answers
                avg = await weighed("avgPrice", {"symbol": "BTCUSDT"})
                if avg == (await via_rest("avgPrice", symbol="BTCUSDT"), 2):
                    break
            else:
                raise AssertionError(f"avgPrice never matched REST: {avg}")
            assert await weighed("uiKlines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 3}) == \
                (await via_rest("uiKlines", symbol="BTCUSDT", interval="1m", limit="3"), 2)
            aggs, weight = await weighed("trades.aggregate", {"symbol": "BTCUSDT", "limit": 4})
            assert aggs == await via_rest("aggTrades", symbol="BTCUSDT", limit="4") and weight == 4
            assert len(aggs) == 4
            limits, weight = await weighed("account.rateLimits.orders", signed(creds, sim))
            assert [(x["rateLimitType"], x["interval"]) for x in limits] == [("ORDERS", "SECOND"),
                                                                             ("ORDERS", "DAY")]
            assert weight == 40
            rates, weight = await weighed("account.commission", signed(creds, sim, symbol="BTCUSDT"))
            assert rates["symbol"] == "BTCUSDT" and weight == 20
            assert set(rates) == {"symbol", "standardCommission", "specialCommission", "taxCommission",
                                  "discount"}


async def test_order_cancel_replace_answers_and_its_error_data() -> None:
    # order.cancelReplace (weight 1) answers as REST; a failed half is status 409 with the halves in
    # error.data, a failed cancel under STOP_ON_FAILURE status 400 (web-socket-api.md).
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        client = await connect(sim)
        bid, _ = best(sim)
        low = str((Decimal(bid) / 2).quantize(Decimal("0.01")))
        old = place(sim, "alice", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                    quantity="0.01", price=low)
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": "0.01", "price": low}
        async def replace(mode: str) -> dict[str, Any]:
            return await client.call("order.cancelReplace", signed(
                creds, sim, cancelReplaceMode=mode, cancelOrderId=old["orderId"], **order))

        ok = await replace("STOP_ON_FAILURE")
        assert ok["status"] == 200, ok
        assert (ok["result"]["cancelResult"], ok["result"]["newOrderResult"]) == ("SUCCESS", "SUCCESS")
        again = await replace("ALLOW_FAILURE")
        assert (again["status"], again["error"]["code"]) == (409, -2021)
        assert again["error"]["data"]["cancelResponse"] == {"code": -2011, "msg": "Unknown order sent."}
        assert again["error"]["data"]["newOrderResult"] == "SUCCESS"
        stop = await replace("STOP_ON_FAILURE")
        assert (stop["status"], stop["error"]["code"]) == (400, -2022)
        assert stop["error"]["data"]["newOrderResult"] == "NOT_ATTEMPTED"
