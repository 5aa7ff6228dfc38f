"""ccxt pro 4.5.90 (``ccxt.pro.binance``) against the simulator (issue 13, interop).

Pointed at the simulator by its URL table only: every ``urls['api']`` entry on ``api.binance.com`` (REST,
public and private), ``stream.binance.com:9443`` (market streams) and ``ws-api.binance.com`` (WebSocket
API, which ccxt uses for the user-data stream) is rewritten to the simulator's address. ccxt's own options
keep ``load_markets`` to what the simulator is, a spot exchange: spot markets only
(``fetchMarkets.types``), no margin pairs (``fetchMargins``) and no wallet currencies
(``fetchCurrencies``, a ``/sapi`` wallet endpoint).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from binance_ws.sim import Simulator
from tests.interop.support import Stepper, rest_get

ccxtpro = pytest.importorskip("ccxt.pro", reason="ccxt is not installed (scripts/test installs it)")

pytestmark = pytest.mark.interop

SYMBOL = "BTCUSDT"
UNIFIED = "BTC/USDT"
DEADLINE_S = 20.0
#: Binance's production hosts in ccxt's URL table, and what each becomes.
HOSTS = ("https://api.binance.com", "wss://stream.binance.com:9443", "wss://ws-api.binance.com:443/ws-api/v3")


def pointed_at(sim: Simulator, table: Any) -> Any:
    """``table`` (ccxt's ``urls['api']``) with Binance's spot hosts replaced by the simulator's."""
    if isinstance(table, dict):
        return {key: pointed_at(sim, value) for key, value in table.items()}
    rest, stream, ws_api = HOSTS
    return table.replace(rest, sim.rest_url).replace(stream, sim.stream_url).replace(ws_api, sim.ws_api_url)


def make_exchange(sim: Simulator, api_key: str | None = None, secret: str | None = None) -> Any:
    config: dict[str, Any] = {"options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False,
                                          "fetchCurrencies": False}}
    if api_key is not None:
        config.update(apiKey=api_key, secret=secret)
    exchange = ccxtpro.binance(config)
    exchange.urls["api"] = pointed_at(sim, exchange.urls["api"])
    return exchange


@pytest.fixture
async def exchange(quiet_sim: Simulator) -> AsyncIterator[Any]:
    ex = make_exchange(quiet_sim)
    try:
        yield ex
    finally:
        await ex.close()


@pytest.fixture
async def trader(quiet_sim: Simulator) -> AsyncIterator[Any]:
    quiet_sim.accounts.create_account("erin", {"USDT": "100000", "BTC": "2"})
    ex = make_exchange(quiet_sim, *quiet_sim.accounts.register_hmac_key("erin"))
    try:
        yield ex
    finally:
        await ex.close()


def levels(rows: list[list[str]]) -> list[list[float]]:
    return [[float(price), float(qty)] for price, qty in rows]


async def test_markets_are_the_simulators(quiet_sim: Simulator, exchange: Any) -> None:
    markets = await exchange.load_markets()
    info = await rest_get(quiet_sim, "/api/v3/exchangeInfo")
    assert sorted(m["id"] for m in markets.values()) == sorted(s["symbol"] for s in info["symbols"])
    assert markets[UNIFIED]["spot"] and markets[UNIFIED]["id"] == SYMBOL


async def test_watch_trades_are_the_simulators(quiet_sim: Simulator, stepper: Stepper,
                                               exchange: Any) -> None:
    seen: dict[str, Any] = {}
    while len(seen) < 5:
        for trade in await asyncio.wait_for(exchange.watch_trades(UNIFIED), DEADLINE_S):
            seen[trade["id"]] = trade
    await stepper.stop()
    history = {str(t["id"]): t for t in await rest_get(quiet_sim, "/api/v3/trades", symbol=SYMBOL,
                                                        limit=1000)}
    for trade_id, trade in seen.items():
        rest = history[trade_id]
        assert trade["symbol"] == UNIFIED
        assert (Decimal(str(trade["price"])), Decimal(str(trade["amount"])), trade["timestamp"]) == \
            (Decimal(rest["price"]), Decimal(rest["qty"]), rest["time"])
        assert trade["side"] == ("sell" if rest["isBuyerMaker"] else "buy")


async def test_watch_order_book_equals_rest_depth_at_the_same_update_id(
        quiet_sim: Simulator, stepper: Stepper, exchange: Any) -> None:
    # ccxt buffers diffs, fetches a snapshot and applies the diffs after it: the book must move meanwhile.
    book = await asyncio.wait_for(exchange.watch_order_book(UNIFIED), DEADLINE_S)
    first = book["nonce"]
    while book["nonce"] == first:
        book = await asyncio.wait_for(exchange.watch_order_book(UNIFIED), DEADLINE_S)
    await stepper.stop()
    rest = await rest_get(quiet_sim, "/api/v3/depth", symbol=SYMBOL, limit=20)
    while book["nonce"] < rest["lastUpdateId"]:
        book = await asyncio.wait_for(exchange.watch_order_book(UNIFIED), DEADLINE_S)
    assert book["nonce"] == rest["lastUpdateId"]
    assert book["bids"][:20] == levels(rest["bids"])
    assert book["asks"][:20] == levels(rest["asks"])


async def test_watch_ticker_shows_the_simulators_last_trade_and_book_top(
        quiet_sim: Simulator, stepper: Stepper, exchange: Any) -> None:
    mini = await asyncio.wait_for(exchange.watch_ticker(UNIFIED), DEADLINE_S)  # ccxt's default stream
    assert mini["symbol"] == UNIFIED and mini["last"] > 0
    await stepper.stop()
    top = await rest_get(quiet_sim, "/api/v3/ticker/bookTicker", symbol=SYMBOL)
    last = (await rest_get(quiet_sim, "/api/v3/trades", symbol=SYMBOL, limit=1))[0]
    want = (float(last["price"]), float(top["bidPrice"]), float(top["askPrice"]))

    async def settled() -> dict[str, Any]:
        # The full 24h ticker (1000 ms) carries the book top too; the first push may predate the stop.
        while True:
            ticker = await exchange.watch_ticker(UNIFIED, {"name": "ticker"})
            if (ticker["last"], ticker["bid"], ticker["ask"]) == want:
                return ticker

    ticker = await asyncio.wait_for(settled(), DEADLINE_S)
    assert ticker["timestamp"] is not None
    stats = await rest_get(quiet_sim, "/api/v3/ticker/24hr", symbol=SYMBOL)
    assert ticker["info"]["n"] == stats["count"]
    assert Decimal(str(ticker["baseVolume"])) == Decimal(stats["volume"])


async def test_watch_ohlcv_equals_rest_klines(quiet_sim: Simulator, stepper: Stepper,
                                             exchange: Any) -> None:
    candles = await asyncio.wait_for(exchange.watch_ohlcv(UNIFIED, "1m"), DEADLINE_S)
    assert candles and candles[-1][1] > 0
    await stepper.stop()

    async def settled() -> tuple[list[Any], list[Any]]:
        # The kline stream pushes every 2 s (PROTOCOL 4.5); the first may predate the stop, and a
        # minute may turn meanwhile, so each push is compared with REST's latest candle at that moment.
        while True:
            last = (await exchange.watch_ohlcv(UNIFIED, "1m"))[-1]
            row = (await rest_get(quiet_sim, "/api/v3/klines", symbol=SYMBOL, interval="1m", limit=1))[0]
            want = [row[0], *(float(v) for v in row[1:6])]
            if last == want:
                return last, want

    last, want = await asyncio.wait_for(settled(), DEADLINE_S)
    assert last == want


async def test_signed_orders_my_trades_and_the_user_data_stream(quiet_sim: Simulator,
                                                             trader: Any) -> None:
    await trader.load_markets()
    bid = float((await rest_get(quiet_sim, "/api/v3/depth", symbol=SYMBOL, limit=5))["bids"][0][0])
    price = round(bid * 0.5, 2)
    # watch_orders subscribes to the user-data stream over the WebSocket API; orders placed before the
    # subscription is live are not pushed, so place resting orders until one comes back.
    watching = asyncio.create_task(trader.watch_orders(UNIFIED))
    placed: dict[str, Any] = {}
    for _ in range(int(DEADLINE_S)):
        order = await trader.create_order(UNIFIED, "limit", "buy", 0.01, price)
        assert (order["status"], order["symbol"], order["amount"]) == ("open", UNIFIED, 0.01)
        placed[order["id"]] = order
        done, _ = await asyncio.wait({watching}, timeout=1.0)
        if done:
            break
    else:
        watching.cancel()
        raise AssertionError("no order update on the user-data stream")
    pushed = watching.result()
    assert pushed and all(o["id"] in placed for o in pushed)
    for o in pushed:
        assert (o["symbol"], o["side"], o["price"], o["amount"], o["status"]) == \
            (UNIFIED, "buy", price, 0.01, "open")

    opened = await trader.fetch_open_orders(UNIFIED)
    assert sorted(o["id"] for o in opened) == sorted(placed)
    first = next(iter(placed))
    cancelled = await trader.cancel_order(first, UNIFIED)
    assert (cancelled["id"], cancelled["status"]) == (first, "canceled")
    assert (await trader.fetch_order(first, UNIFIED))["status"] == "canceled"
    assert first not in [o["id"] for o in await trader.fetch_open_orders(UNIFIED)]

    # The user-data stream is live now: a market order's fills are pushed as my trades.
    watching_mine = asyncio.create_task(trader.watch_my_trades(UNIFIED))
    taken = await trader.create_order(UNIFIED, "market", "buy", 0.001)
    assert taken["status"] == "closed" and taken["filled"] == 0.001
    fills = [str(f["tradeId"]) for f in taken["info"]["fills"]]
    mine = await trader.fetch_my_trades(UNIFIED)
    assert [t["id"] for t in mine] == fills
    assert all(t["order"] == taken["id"] and t["side"] == "buy" for t in mine)
    pushed_mine = await asyncio.wait_for(watching_mine, DEADLINE_S)
    assert pushed_mine and {t["id"] for t in pushed_mine} <= set(fills)
    assert all(t["order"] == taken["id"] for t in pushed_mine)


async def test_websocket_api_orders_lists_and_trades(quiet_sim: Simulator, trader: Any) -> None:
    # ccxt's *_ws methods speak the WebSocket API (order.place, openOrders.status, openOrders.cancelAll,
    # myTrades, trades.historical, account.status, klines).
    await trader.load_markets()
    bid = float((await rest_get(quiet_sim, "/api/v3/depth", symbol=SYMBOL, limit=5))["bids"][0][0])
    price = round(bid * 0.5, 2)
    resting = await trader.create_order_ws(UNIFIED, "limit", "buy", 0.01, price)
    assert (resting["status"], resting["price"], resting["amount"]) == ("open", price, 0.01)
    assert [o["id"] for o in await trader.fetch_open_orders_ws(UNIFIED)] == [resting["id"]]
    taken = await trader.create_order_ws(UNIFIED, "market", "buy", 0.001)
    assert taken["status"] == "closed"
    fills = [str(f["tradeId"]) for f in taken["info"]["fills"]]
    assert [t["id"] for t in await trader.fetch_my_trades_ws(UNIFIED)] == fills
    assert [o["id"] for o in await trader.fetch_orders_ws(UNIFIED)] == [resting["id"], taken["id"]]
    cancelled = await trader.cancel_all_orders_ws(UNIFIED)
    assert [(o["id"], o["status"]) for o in cancelled] == [(resting["id"], "canceled")]
    assert await trader.fetch_open_orders_ws(UNIFIED) == []
    # ccxt 4.5.90 parses account.status without the market type, so its unified fields stay empty on
    # Binance too; the raw answer is Binance's, and REST fetch_balance parses the same account.
    raw = {b["asset"]: b for b in (await trader.fetch_balance_ws())["info"]["balances"]}
    assert (raw["BTC"]["free"], raw["BTC"]["locked"]) == ("2.00100000", "0.00000000")
    balance = await trader.fetch_balance()
    assert balance["BTC"]["free"] == 2.001  # the 2 it was given and the 0.001 bought
    assert balance["USDT"]["used"] == 0.0  # the resting order's lock went with its cancel

    history = await trader.fetch_trades_ws(UNIFIED, limit=5)
    rest = await rest_get(quiet_sim, "/api/v3/trades", symbol=SYMBOL, limit=5)
    assert [t["id"] for t in history] == [str(t["id"]) for t in rest]
    candles = await trader.fetch_ohlcv_ws(UNIFIED, "1m", limit=3)
    rows = await rest_get(quiet_sim, "/api/v3/klines", symbol=SYMBOL, interval="1m", limit=3)
    assert candles == [[r[0], *(float(v) for v in r[1:6])] for r in rows]


async def test_market_buy_by_cost(quiet_sim: Simulator, trader: Any) -> None:
    # create_market_buy_order_with_cost sends quoteOrderQty: spend at most 100 USDT, in whole steps.
    await trader.load_markets()
    order = await trader.create_market_buy_order_with_cost(UNIFIED, 100)
    assert (order["status"], order["side"], order["type"]) == ("closed", "buy", "market")
    assert order["info"]["origQuoteOrderQty"] == "100.00000000"
    assert 0 < order["cost"] <= 100 and order["filled"] > 0
    balance = await trader.fetch_balance()
    assert balance["BTC"]["total"] == pytest.approx(2 + order["filled"])
    assert balance["USDT"]["total"] == pytest.approx(100000 - order["cost"])


async def test_edit_order_is_a_cancel_replace(quiet_sim: Simulator, trader: Any) -> None:
    # edit_order on spot is POST /api/v3/order/cancelReplace; edit_order_ws is order.cancelReplace.
    await trader.load_markets()
    bid = float((await rest_get(quiet_sim, "/api/v3/depth", symbol=SYMBOL, limit=5))["bids"][0][0])
    first = await trader.create_order(UNIFIED, "limit", "buy", 0.01, round(bid * 0.5, 2))
    edited = await trader.edit_order(first["id"], UNIFIED, "limit", "buy", 0.02, round(bid * 0.4, 2))
    assert edited["id"] != first["id"]
    assert (edited["status"], edited["amount"], edited["price"]) == ("open", 0.02, round(bid * 0.4, 2))
    again = await trader.edit_order_ws(edited["id"], UNIFIED, "limit", "buy", 0.03, round(bid * 0.3, 2))
    assert (again["status"], again["amount"]) == ("open", 0.03)
    assert [o["id"] for o in await trader.fetch_open_orders(UNIFIED)] == [again["id"]]
    assert (await trader.fetch_order(first["id"], UNIFIED))["status"] == "canceled"
