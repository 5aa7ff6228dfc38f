"""Futures REST and user data of the simulator over loopback: USD-M ``/fapi/v1`` and COIN-M ``/dapi/v1``
served from the spot engine's books, key for key and type for type with Binance's pages (PROTOCOL.md 8;
the key lists below are those of Binance's USD-M / COIN-M REST and user-data pages)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from binance_ws.client import AsyncClient
from binance_ws.sim import Simulator
from binance_ws.sim.contracts import FUNDING_PERIOD_MS
from tests.sim._client import connect
from tests.userdata_support import best, make_account

EXCHANGE_INFO_USDM = ["exchangeFilters", "rateLimits", "serverTime", "assets", "symbols", "timezone"]
EXCHANGE_INFO_COINM = ["exchangeFilters", "rateLimits", "serverTime", "symbols", "timezone"]
SYMBOL_USDM = {"symbol", "pair", "contractType", "deliveryDate", "onboardDate", "status",
               "maintMarginPercent", "requiredMarginPercent", "baseAsset", "quoteAsset", "marginAsset",
               "pricePrecision", "quantityPrecision", "baseAssetPrecision", "quotePrecision",
               "underlyingType", "underlyingSubType", "settlePlan", "triggerProtect", "filters",
               "orderTypes", "timeInForce", "liquidationFee", "marketTakeBound"}
SYMBOL_COINM = {"filters", "orderTypes", "timeInForce", "liquidationFee", "marketTakeBound", "symbol", "pair",
                "contractType", "deliveryDate", "onboardDate", "contractStatus", "contractSize", "quoteAsset",
                "baseAsset", "marginAsset", "pricePrecision", "quantityPrecision", "baseAssetPrecision",
                "quotePrecision", "equalQtyPrecision", "triggerProtect", "maintMarginPercent",
                "requiredMarginPercent", "underlyingType", "underlyingSubType"}
PREMIUM_USDM = ["symbol", "markPrice", "indexPrice", "estimatedSettlePrice", "lastFundingRate",
                "interestRate", "nextFundingTime", "time"]
ORDER_RESPONSE = {"clientOrderId", "cumQty", "cumQuote", "executedQty", "orderId", "avgPrice", "origQty",
                  "price", "reduceOnly", "side", "positionSide", "status", "stopPrice", "closePosition",
                  "symbol", "timeInForce", "type", "origType", "updateTime", "workingType", "priceProtect",
                  "priceMatch", "selfTradePreventionMode", "goodTillDate"}
#: ORDER_TRADE_UPDATE ``o`` on USD-M, without commission (``N n``: not pushed) and without the keys of
#: amendments (``M``) and trailing stops (``AP cr``).
ORDER_O_USDM = ["s", "c", "S", "o", "f", "q", "p", "ap", "sp", "x", "X", "i", "l", "z", "L", "T", "t", "b",
                "a", "m", "R", "wt", "ot", "ps", "cp", "pP", "si", "ss", "rp", "V", "pm", "gtd", "er"]
TRADE_LITE = ["e", "E", "T", "s", "q", "p", "m", "c", "S", "L", "l", "t", "i"]
POSITION = ["s", "pa", "ep", "bep", "cr", "up", "mt", "iw", "ps"]
STRINGS_O = {"s", "c", "S", "o", "f", "q", "p", "ap", "sp", "x", "X", "l", "z", "L", "b", "a", "wt", "ot",
             "ps", "rp", "V", "pm", "er"}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(flow_rate=0.0) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, sim: Simulator, path: str, **params: Any) -> tuple[int, Any, Any]:
    async with http.get(f"{sim.rest_url}{path}", params=params) as r:
        return r.status, await r.json(), r.headers


async def test_exchange_info_lists_each_book_as_a_usdm_and_a_coinm_perpetual(
        sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, usdm, headers = await get(http, sim, "/fapi/v1/exchangeInfo")
    assert status == 200 and list(usdm) == EXCHANGE_INFO_USDM and headers["X-MBX-USED-WEIGHT-1M"] == "1"
    btc = next(s for s in usdm["symbols"] if s["symbol"] == "BTCUSDT")
    assert set(btc) == SYMBOL_USDM
    assert (btc["pair"], btc["contractType"], btc["marginAsset"], btc["status"]) == \
        ("BTCUSDT", "PERPETUAL", "USDT", "TRADING")
    assert {f["filterType"] for f in btc["filters"]} >= {"PRICE_FILTER", "LOT_SIZE", "MIN_NOTIONAL"}
    assert isinstance(btc["deliveryDate"], int) and isinstance(btc["pricePrecision"], int)
    assert usdm["assets"][0] == {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}
    assert usdm["rateLimits"][0]["limit"] == 2400
    # BNBBTC has no USD(T) quote: it is spot only.
    assert {s["symbol"] for s in usdm["symbols"]} == {"BTCUSDT", "ETHUSDT"}

    status, coinm, _ = await get(http, sim, "/dapi/v1/exchangeInfo")
    assert status == 200 and list(coinm) == EXCHANGE_INFO_COINM
    perp = next(s for s in coinm["symbols"] if s["symbol"] == "BTCUSD_PERP")
    assert set(perp) == SYMBOL_COINM
    assert (perp["pair"], perp["contractSize"], perp["marginAsset"], perp["contractStatus"],
            perp["quoteAsset"]) == ("BTCUSD", 100, "BTC", "TRADING", "USD")
    eth = next(s for s in coinm["symbols"] if s["symbol"] == "ETHUSD_PERP")
    assert eth["contractSize"] == 10


async def test_depth_has_the_futures_shape_and_weights(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body, headers = await get(http, sim, "/fapi/v1/depth", symbol="BTCUSDT", limit=7)
    assert status == 200 and list(body) == ["lastUpdateId", "E", "T", "bids", "asks"]
    assert len(body["bids"]) == 10 and headers["X-MBX-USED-WEIGHT-1M"] == "2"  # 7 -> the next valid, 10
    spot = sim.exchange.depth_snapshot("BTCUSDT", 1)
    assert float(body["bids"][0][0]) == float(spot["bids"][0][0])
    assert body["bids"][0][1] == spot["bids"][0][1].rstrip("0")[: len(body["bids"][0][1])]
    assert body["lastUpdateId"] == spot["lastUpdateId"] and isinstance(body["E"], int)
    _, _, headers = await get(http, sim, "/fapi/v1/depth", symbol="BTCUSDT", limit=1000)
    assert headers["X-MBX-USED-WEIGHT-1M"] == str(2 + 20)

    status, coin, _ = await get(http, sim, "/dapi/v1/depth", symbol="btcusd_perp", limit=5)
    assert status == 200 and list(coin) == ["lastUpdateId", "symbol", "pair", "E", "T", "bids", "asks"]
    assert (coin["symbol"], coin["pair"]) == ("BTCUSD_PERP", "BTCUSD")
    price, contracts = coin["bids"][0]
    base_qty = float(spot["bids"][0][1])
    assert int(contracts) == max(1, round(base_qty * float(price) / 100))  # 100 USD contracts

    status, err, _ = await get(http, sim, "/fapi/v1/depth", symbol="BNBBTC")
    assert (status, err) == (400, {"code": -1121, "msg": "Invalid symbol."})


async def test_trades_klines_and_premium_index(sim: Simulator, http: aiohttp.ClientSession) -> None:
    creds = make_account(sim, "mm", "HMAC")
    assert creds.api_key
    bid, _ = best(sim)
    futures = sim.futures["usdm"]
    futures.place_order(sim.accounts.account("mm"), {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                     "quantity": "0.01000"})
    status, trades, headers = await get(http, sim, "/fapi/v1/trades", symbol="BTCUSDT", limit=1)
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "5"
    assert list(trades[0]) == ["id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isRPITrade"]
    last = sim.exchange.trades("BTCUSDT", 1)[0]
    assert float(trades[0]["price"]) == float(last["price"]) <= float(bid)
    assert trades[0]["id"] == last["id"] and trades[0]["isBuyerMaker"] is True
    _, coin_trades, _ = await get(http, sim, "/dapi/v1/trades", symbol="BTCUSD_PERP", limit=1)
    assert list(coin_trades[0]) == ["id", "price", "qty", "baseQty", "time", "isBuyerMaker"]
    assert coin_trades[0]["baseQty"] == last["qty"]

    status, bars, _ = await get(http, sim, "/fapi/v1/klines", symbol="BTCUSDT", interval="1m", limit=2)
    assert status == 200 and len(bars[-1]) == 12
    status, err, _ = await get(http, sim, "/fapi/v1/klines", symbol="BTCUSDT", interval="1s")
    assert (status, err["code"]) == (400, -1120)  # futures have no 1s bars

    status, premium, headers = await get(http, sim, "/fapi/v1/premiumIndex", symbol="BTCUSDT")
    # trades 5, klines 1 (limit 2) and 5 (default limit 500; refused ones count too), premiumIndex 1
    assert status == 200 and list(premium) == PREMIUM_USDM and headers["X-MBX-USED-WEIGHT-1M"] == "12"
    now = sim.clock.now_ms()
    assert 0 < premium["nextFundingTime"] - now <= FUNDING_PERIOD_MS
    assert premium["nextFundingTime"] % FUNDING_PERIOD_MS == 0
    snap = sim.exchange.depth_snapshot("BTCUSDT", 1)
    mid = (float(snap["bids"][0][0]) + float(snap["asks"][0][0])) / 2
    assert float(premium["indexPrice"]) == pytest.approx(mid)
    assert float(snap["bids"][0][0]) <= float(premium["markPrice"]) <= float(snap["asks"][0][0])
    assert premium["interestRate"] == "0.00010000" and abs(float(premium["lastFundingRate"])) < 0.01
    _, every, headers = await get(http, sim, "/fapi/v1/premiumIndex")
    assert [p["symbol"] for p in every] == ["BTCUSDT", "ETHUSDT"]
    assert headers["X-MBX-USED-WEIGHT-1M"] == str(12 + 10)  # without a symbol: 10
    _, coin_premium, _ = await get(http, sim, "/dapi/v1/premiumIndex", symbol="BTCUSD_PERP")
    assert list(coin_premium) == ["symbol", "pair", *PREMIUM_USDM[1:]]


async def test_weight_limit_answers_429(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.futures_rest["usdm"].weights.limit = 3
    statuses = [(await get(http, sim, "/fapi/v1/ping"))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    status, body, headers = await get(http, sim, "/fapi/v1/ping")
    assert (status, body["code"]) == (429, -1003) and int(headers["Retry-After"]) >= 1
    assert (await get(http, sim, "/dapi/v1/ping"))[0] == 200  # each product has its own budget


def signed_params(secret: str, **params: Any) -> str:
    query = urlencode({**params, "timestamp": int(time.time() * 1000)})
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


async def test_signed_order_makes_futures_events_on_the_listen_key(
        sim: Simulator, http: aiohttp.ClientSession) -> None:
    alice = make_account(sim, "alice", "HMAC")
    make_account(sim, "mm", "HMAC")
    assert alice.secret is not None
    # The listen key through the repo's client (futures_base_url: the simulator's REST).
    async with AsyncClient(alice.api_key, alice.secret, market=sim.market, futures_base_url=sim.rest_url,
                           env={}) as client:
        key = await client.futures_stream_get_listen_key()
        assert await client.futures_stream_get_listen_key() == key  # POST extends the live key
        assert await client.futures_stream_keepalive(key) == {"listenKey": key}
    stream = await connect(f"{sim.stream_url}/private/ws?listenKey={key}")
    sim.accounts.deposit(sim.accounts.account("alice"), "USDT", "5")  # spot: not on a futures key
    bid, _ = best(sim)
    price = f"{float(bid) + 0.01:.2f}"
    query = signed_params(alice.secret, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                          quantity="0.01000", price=price, newClientOrderId="mine-1")
    async with http.post(f"{sim.rest_url}/fapi/v1/order?{query}",
                         headers={"X-MBX-APIKEY": alice.api_key}) as r:
        assert r.status == 200, await r.text()
        answer = await r.json()
        assert r.headers["X-MBX-USED-WEIGHT-1M"] == "3"  # the 3 listen-key calls; an order weighs 0
    assert set(answer) == ORDER_RESPONSE and answer["status"] == "NEW" and answer["symbol"] == "BTCUSDT"
    assert (answer["clientOrderId"], answer["positionSide"], answer["price"]) == ("mine-1", "BOTH", price)
    sim.futures["usdm"].place_order(sim.accounts.account("mm"), {
        "symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01000"})
    await stream.wait_for(lambda: len(stream.texts()) >= 4)
    new, fill, lite, update = stream.messages()[:4]

    assert list(new) == ["e", "E", "T", "o"] and new["e"] == "ORDER_TRADE_UPDATE"
    assert list(new["o"]) == ORDER_O_USDM
    assert (new["o"]["x"], new["o"]["X"], new["o"]["c"], new["o"]["i"]) == \
        ("NEW", "NEW", "mine-1", answer["orderId"])
    for event in (new, fill):
        o = event["o"]
        assert all(isinstance(o[k], str) for k in STRINGS_O), o
        assert all(isinstance(o[k], bool) for k in ("m", "R", "cp", "pP"))
        assert all(isinstance(o[k], int) for k in ("i", "T", "t", "si", "ss", "gtd"))
    assert float(new["o"]["b"]) == pytest.approx(0.01 * float(price))  # its own open bid notional
    assert (fill["o"]["x"], fill["o"]["X"], fill["o"]["l"], fill["o"]["L"], fill["o"]["m"]) == \
        ("TRADE", "FILLED", "0.01000", price, True)
    assert (new["o"]["q"], new["o"]["z"], fill["o"]["z"]) == ("0.01000", "0.00000", "0.01000")

    assert list(lite) == TRADE_LITE and lite["e"] == "TRADE_LITE"
    assert (lite["s"], lite["S"], lite["l"], lite["L"], lite["t"], lite["i"], lite["m"]) == \
        ("BTCUSDT", "BUY", "0.01000", price, fill["o"]["t"], answer["orderId"], True)

    assert list(update) == ["e", "E", "T", "a"] and update["e"] == "ACCOUNT_UPDATE"
    assert list(update["a"]) == ["m", "B", "P"] and update["a"]["m"] == "ORDER"
    assert list(update["a"]["B"][0]) == ["a", "wb", "cw", "bc"] and update["a"]["B"][0]["a"] == "USDT"
    position = update["a"]["P"][0]
    assert list(position) == POSITION
    assert (position["s"], position["pa"], float(position["ep"]), position["ps"]) == \
        ("BTCUSDT", "0.01", float(price), "BOTH")
    assert not [m for m in stream.messages() if m["e"] in ("executionReport", "outboundAccountPosition",
                                                            "balanceUpdate")]

    # Closing realizes (exit - entry) x size into the wallet.
    query = signed_params(alice.secret, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01000",
                          newOrderRespType="RESULT")
    async with http.post(f"{sim.rest_url}/fapi/v1/order?{query}",
                         headers={"X-MBX-APIKEY": alice.api_key}) as r:
        result = await r.json()
    assert (result["status"], result["executedQty"], result["type"]) == ("FILLED", "0.01000", "MARKET")
    await stream.wait_for(lambda: any(m["e"] == "ACCOUNT_UPDATE" and m["a"]["P"][0]["pa"] == "0"
                                      for m in stream.messages()))
    closing = [m for m in stream.messages() if m["e"] == "ACCOUNT_UPDATE"][-1]
    realized = 0.01 * (float(result["avgPrice"]) - float(price))
    assert float(closing["a"]["B"][0]["wb"]) == pytest.approx(realized)
    assert float(closing["a"]["P"][0]["cr"]) == pytest.approx(realized)
    assert closing["a"]["P"][0]["ep"] == "0"


async def test_coinm_key_carries_coinm_events_only(sim: Simulator, http: aiohttp.ClientSession) -> None:
    alice = make_account(sim, "alice", "HMAC")
    headers = {"X-MBX-APIKEY": alice.api_key}
    async with http.post(f"{sim.rest_url}/dapi/v1/listenKey", headers=headers) as r:
        coin_key = (await r.json())["listenKey"]
    async with http.post(f"{sim.rest_url}/fapi/v1/listenKey", headers=headers) as r:
        usdm_key = (await r.json())["listenKey"]
    assert coin_key != usdm_key  # one key per product
    coin = await connect(f"{sim.stream_url}/ws/{coin_key}")
    usdm = await connect(f"{sim.stream_url}/private/ws?listenKey={usdm_key}")
    account = sim.accounts.account("alice")
    sim.futures["coinm"].deposit(account, "BTC", "0.5")
    sim.futures["usdm"].deposit(account, "USDT", "7")
    await coin.wait_for(lambda: bool(coin.texts()))
    await usdm.wait_for(lambda: bool(usdm.texts()))
    (event,) = coin.messages()
    assert list(event) == ["e", "E", "T", "i", "a"] and event["i"] == "sim1"
    assert event["a"] == {"m": "DEPOSIT", "B": [{"a": "BTC", "wb": "0.5", "cw": "0.5", "bc": "0.5"}], "P": []}
    assert [m["a"]["B"][0]["a"] for m in usdm.messages()] == ["USDT"]
    # The listen-key routes of one product do not reach the other's key.
    async with http.put(f"{sim.rest_url}/fapi/v1/listenKey", params={"listenKey": coin_key},
                        headers=headers) as r:
        assert (r.status, (await r.json())["code"]) == (400, -1125)
    async with http.delete(f"{sim.rest_url}/dapi/v1/listenKey", params={"listenKey": coin_key},
                           headers=headers) as r:
        assert r.status == 200 and await r.json() == {}
    async with http.post(f"{sim.rest_url}/fapi/v1/listenKey") as r:
        assert (r.status, (await r.json())["code"]) == (400, -2014) or r.status == 401


async def test_events_filter_cancel_and_expiry(sim: Simulator, http: aiohttp.ClientSession) -> None:
    alice = make_account(sim, "alice", "HMAC")
    assert alice.secret is not None
    headers = {"X-MBX-APIKEY": alice.api_key}
    async with http.post(f"{sim.rest_url}/fapi/v1/listenKey", headers=headers) as r:
        key = (await r.json())["listenKey"]
    stream = await connect(f"{sim.stream_url}/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE")
    bid, _ = best(sim)
    far = f"{float(bid) - 100:.2f}"
    query = signed_params(alice.secret, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                          quantity="0.01000", price=far)
    async with http.post(f"{sim.rest_url}/fapi/v1/order?{query}", headers=headers) as r:
        order_id = (await r.json())["orderId"]
    sim.futures["usdm"].deposit(sim.accounts.account("alice"), "USDT", "1")  # ACCOUNT_UPDATE: filtered out
    query = signed_params(alice.secret, symbol="BTCUSDT", orderId=order_id)
    async with http.delete(f"{sim.rest_url}/fapi/v1/order?{query}", headers=headers) as r:
        cancelled = await r.json()
        assert r.status == 200 and cancelled["status"] == "CANCELED" and cancelled["orderId"] == order_id
    async with http.delete(f"{sim.rest_url}/fapi/v1/order?{query}", headers=headers) as r:
        assert (r.status, (await r.json())["code"]) == (400, -2011)
    await stream.wait_for(lambda: len(stream.texts()) >= 2)
    assert [(m["e"], m["o"]["x"]) for m in stream.messages()] == \
        [("ORDER_TRADE_UPDATE", "NEW"), ("ORDER_TRADE_UPDATE", "CANCELED")]
    sim.clock.advance(60 * 60_000 + 1)  # nobody kept the key alive
    await stream.wait_for(lambda: len(stream.texts()) >= 3)
    assert stream.messages()[2] == {"e": "listenKeyExpired", "E": stream.messages()[2]["E"], "listenKey": key}


def test_contract_listing_rules_and_units() -> None:
    from binance_ws.sim.config import SymbolSpec
    from binance_ws.sim.contracts import COINM, USDM

    btc = SymbolSpec("BTCUSDT", "BTC", "USDT", 61_800.0, tick_size="0.10000000", step_size="0.00100000")
    usdm, coinm = USDM.listing(btc), COINM.listing(btc)
    assert usdm is not None and coinm is not None
    # Prices in the futures streams' precision (2 decimals on 0.10 ticks, as the USD-M capture prints).
    assert (usdm.symbol, usdm.margin_asset, usdm.price(6180020000000), usdm.quantity(600000, 1)) == \
        ("BTCUSDT", "USDT", "61800.20", "0.006")
    assert (coinm.symbol, coinm.pair, coinm.margin_asset, coinm.contract_size) == \
        ("BTCUSD_PERP", "BTCUSD", "BTC", 100)
    price = 6_180_000_000_000  # 61,800 USD
    assert coinm.quantity(100_000_000, price) == "618"  # 1 BTC = 618 contracts of 100 USD
    assert coinm.quantity(1_000, price) == "1"  # a non-empty level never shows 0 contracts
    assert coinm.quantity(0, price) == "0"
    assert USDM.listing(SymbolSpec("BNBBTC", "BNB", "BTC", 0.0085)) is None
    # A book in contract form (a simulator run as COIN-M) trades in contracts already.
    perp = COINM.listing(SymbolSpec("ETHUSD_PERP", "ETH", "USD", 2_450.0, step_size="1.00000000"))
    assert perp is not None and (perp.symbol, perp.contract_size) == ("ETHUSD_PERP", 10)
    assert perp.quantity(3 * 100_000_000, 245_000_000_000) == "3"
    assert perp.base_quantity(3 * 100_000_000, 245_000_000_000) == pytest.approx(30 / 2450)
    assert USDM.listing(perp.spec) is None


async def test_rest_faults_reach_futures_routes(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.faults.rest(fail_status=503, fail_count=1)
    status, body, _ = await get(http, sim, "/fapi/v1/time")
    assert (status, body["code"]) == (503, -1001)
    assert (await get(http, sim, "/dapi/v1/time"))[0] == 200


async def test_premium_index_and_depth_sources_can_be_the_stream_models(
        sim: Simulator, http: aiohttp.ClientSession) -> None:
    from binance_ws.sim.futures_rest import MarkNumbers

    payload = {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "11794.15000000", "ap": "11794.15000000",
               "i": "11784.62659091", "P": "11784.25641265", "r": "0.00038167", "T": 1562306400000}
    rest = sim.futures_rest["usdm"]
    rest.mark_source = lambda symbol, now: MarkNumbers.from_mark_price(payload)
    rest.depth_source = lambda symbol, limit: {"lastUpdateId": 7, "E": 1, "T": 1, "bids": [], "asks": []}
    _, premium, _ = await get(http, sim, "/fapi/v1/premiumIndex", symbol="BTCUSDT")
    assert (premium["markPrice"], premium["indexPrice"], premium["lastFundingRate"],
            premium["nextFundingTime"]) == ("11794.15000000", "11784.62659091", "0.00038167", 1562306400000)
    _, depth, _ = await get(http, sim, "/fapi/v1/depth", symbol="BTCUSDT")
    assert depth["lastUpdateId"] == 7


#: ORDER_TRADE_UPDATE ``o`` on COIN-M (Binance's COIN-M page), without ``M N n AP cr`` as on USD-M.
ORDER_O_COINM = ["s", "c", "S", "o", "f", "q", "p", "ap", "sp", "x", "X", "i", "l", "z", "L", "ma", "T", "t",
                 "rp", "b", "a", "m", "R", "wt", "ot", "ps", "cp", "pP", "V", "pm", "er"]
ORDER_RESPONSE_COINM = ORDER_RESPONSE - {"cumQuote", "goodTillDate"} | {"cumBase", "pair"}


async def test_coinm_orders_on_a_contract_form_book(http: aiohttp.ClientSession) -> None:
    from binance_ws.sim.config import SymbolSpec

    perp = SymbolSpec("BTCUSD_PERP", "BTC", "USD", 61_800.0, tick_size="0.10000000", step_size="1.00000000",
                      min_notional="1.00000000")
    async with Simulator(flow_rate=0.0, symbols=(perp,)) as sim:
        alice = make_account(sim, "alice", "HMAC")
        make_account(sim, "mm", "HMAC")
        assert alice.secret is not None
        headers = {"X-MBX-APIKEY": alice.api_key}
        async with http.post(f"{sim.rest_url}/dapi/v1/listenKey", headers=headers) as r:
            key = (await r.json())["listenKey"]
        stream = await connect(f"{sim.stream_url}/ws/{key}")
        _, depth, _ = await get(http, sim, "/dapi/v1/depth", symbol="BTCUSD_PERP", limit=5)
        price = f"{float(depth['bids'][0][0]) + 0.1:.1f}"
        query = signed_params(alice.secret, symbol="BTCUSD_PERP", side="BUY", type="LIMIT", timeInForce="GTC",
                              quantity="3", price=price)
        async with http.post(f"{sim.rest_url}/dapi/v1/order?{query}", headers=headers) as r:
            answer = await r.json()
            assert r.status == 200, answer
        assert set(answer) == ORDER_RESPONSE_COINM and (answer["pair"], answer["origQty"]) == ("BTCUSD", "3")
        sim.futures["coinm"].place_order(sim.accounts.account("mm"), {
            "symbol": "BTCUSD_PERP", "side": "SELL", "type": "MARKET", "quantity": "3"})
        await stream.wait_for(lambda: len(stream.texts()) >= 3)
        new, fill, update = stream.messages()[:3]
        assert list(new) == ["e", "E", "T", "i", "o"] and list(new["o"]) == ORDER_O_COINM
        assert (fill["o"]["x"], fill["o"]["X"], fill["o"]["l"], fill["o"]["ma"]) == \
            ("TRADE", "FILLED", "3", "BTC")
        assert list(update) == ["e", "E", "T", "i", "a"] and update["a"]["B"][0]["a"] == "BTC"
        assert (update["a"]["P"][0]["s"], update["a"]["P"][0]["pa"]) == ("BTCUSD_PERP", "3")
        assert not [m for m in stream.messages() if m["e"] == "TRADE_LITE"]  # USD-M only
        # Closing 3 contracts of 100 USD: profit 300 x (1/entry - 1/exit) BTC.
        query = signed_params(alice.secret, symbol="BTCUSD_PERP", side="SELL", type="MARKET", quantity="3",
                              newOrderRespType="RESULT")
        async with http.post(f"{sim.rest_url}/dapi/v1/order?{query}", headers=headers) as r:
            result = await r.json()
        await stream.wait_for(lambda: any(m["e"] == "ACCOUNT_UPDATE" and m["a"]["P"][0]["pa"] == "0"
                                          for m in stream.messages()))
        closing = [m for m in stream.messages() if m["e"] == "ACCOUNT_UPDATE"][-1]
        expected = 300 * (1 / float(price) - 1 / float(result["avgPrice"]))
        assert float(closing["a"]["P"][0]["cr"]) == pytest.approx(expected)
        assert float(result["cumBase"]) == pytest.approx(300 / float(result["avgPrice"]))
        # A spot-named book shown in contracts takes no COIN-M orders (module docstring).
    async with Simulator(flow_rate=0.0) as spot_sim:
        bob = make_account(spot_sim, "bob", "HMAC")
        assert bob.secret is not None
        query = signed_params(bob.secret, symbol="BTCUSD_PERP", side="BUY", type="MARKET", quantity="1")
        async with http.post(f"{spot_sim.rest_url}/dapi/v1/order?{query}",
                             headers={"X-MBX-APIKEY": bob.api_key}) as r:
            assert (r.status, (await r.json())["code"]) == (400, -1000)
