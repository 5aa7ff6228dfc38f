"""USD-M and COIN-M through the real client stack over loopback, against a scripted futures exchange
(``_futures_server``: routes, control messages and REST by PROTOCOL 8, independent of our tables).

What is proved here: each stream rides the route Binance serves it on (a stream on the wrong route would
stay silent), control ids are unsigned integers, payloads decode to the futures models in typed mode,
``pu`` chains are sequence-checked, python-binance's futures calls work on the asyncio and threaded
managers, the futures listen-key user socket, and the futures depth cache syncs by PROTOCOL 5.2 from
``/fapi/v1/depth``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from binance_ws import models
from binance_ws.client import Client
from binance_ws.depthcache import FuturesDepthCacheManager
from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.enums import ContractType, FuturesType
from binance_ws.markets import SPOT, USDM, local_market
from binance_ws.models import decoder_for
from binance_ws.websockets import BinanceSocketManager
from tests.engine._futures_server import FuturesServer, futures_server, until
from tests.futures_payloads import (
    AGG_TRADE,
    BOOK_TICKER,
    COINM_EXAMPLES,
    CONTINUOUS_KLINE,
    DEPTH,
    INDEX_PRICE,
    MARK_PRICE,
    USDM_EXAMPLES,
)

#: A spot market at an address nothing listens on: futures calls must never touch it.
NOWHERE_SPOT = local_market("ws://127.0.0.1:1", "http://127.0.0.1:1", base=SPOT)


async def _push_until(server: FuturesServer, stream: str, payload: Any, got: list[Any],
                      count: int = 1) -> None:
    """Push ``payload`` on ``stream`` until ``got`` holds ``count`` messages (a push before the server saw
    the subscription reaches nobody)."""
    deadline = asyncio.get_running_loop().time() + 10
    while len(got) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{stream}: nothing arrived"
        server.push(stream, payload)
        await asyncio.sleep(0.02)


async def test_every_usdm_stream_rides_its_route_and_decodes_typed() -> None:
    async with futures_server("usdm") as server, AsyncSocketManager(market=server.market) as sm:
        names = list(dict.fromkeys(name for name, _, _ in USDM_EXAMPLES))
        typed: dict[str, list[Any]] = {name: [] for name in names}
        dicts: dict[str, list[Any]] = {name: [] for name in names}
        for name in names:
            await sm.subscribe(name, typed[name].append, decode=decoder_for(name, server.market))
            await sm.subscribe(name, dicts[name].append)
        for name, payload, model in USDM_EXAMPLES:
            typed[name].clear()
            dicts[name].clear()
            await _push_until(server, name, payload, typed[name])
            await until(lambda n=name: dicts[n], what=name)  # type: ignore[misc]
            assert type(typed[name][0]).__name__ == model, name
            assert dicts[name][0] == payload, name
        # Book data on /public, the rest on /market (PROTOCOL 8); nothing ever opened an unrouted URL.
        for name in names:
            expected = "public" if name == "!bookTicker" or "@bookTicker" in name or "@depth" in name \
                else "market"
            assert set(server.routes_of(name)) == {expected}, name
        assert {route for route, _ in server.connects} == {"public", "market"}
        # Futures control ids are unsigned integers (the server refuses anything else).
        assert all(isinstance(rid, int) and rid >= 0 for _, _, _, rid in server.requests)


async def test_coinm_streams_decode_on_the_unrouted_host() -> None:
    async with futures_server("coinm") as server, AsyncSocketManager(market=server.market) as sm:
        for name, payload, model in COINM_EXAMPLES:
            got: list[Any] = []
            sub = await sm.subscribe(name, got.append, decode=decoder_for(name, server.market))
            await _push_until(server, name, payload, got)
            assert type(got[0]).__name__ == model, name
            await sub.close()
        assert {route for route, _ in server.connects} == {""}


async def test_a_broken_pu_chain_is_reported_as_a_gap_with_futures_ids() -> None:
    async with futures_server("usdm") as server, AsyncSocketManager(market=server.market) as sm:
        got: list[Any] = []
        await sm.subscribe("btcusdt@depth@0ms", got.append)
        first = {**DEPTH, "U": 100, "u": 110, "pu": 90}
        await _push_until(server, "btcusdt@depth@0ms", first, got)
        # U is not previous u + 1 on futures (ids are shared across symbols): only pu links.
        server.push("btcusdt@depth@0ms", {**DEPTH, "U": 150, "u": 160, "pu": 110})
        server.push("btcusdt@depth@0ms", {**DEPTH, "U": 200, "u": 210, "pu": 180})  # 160 < pu: lost
        await until(lambda: len(got) >= 4, what="gap and events")
        assert [m.get("e") for m in got[-3:]] == ["depthUpdate", "error", "depthUpdate"]
        gap = got[-2]
        assert (gap["type"], gap["first"], gap["last"]) == ("gap", 161, 180)


async def test_python_binance_futures_factories_on_the_asyncio_manager() -> None:
    async with futures_server("usdm") as usdm, futures_server("coinm") as coinm, \
            AsyncSocketManager(market=NOWHERE_SPOT, futures_market=usdm.market,
                               coin_futures_market=coinm.market) as sm:
        cases: list[tuple[Any, FuturesServer, str, Any]] = [
            (sm.symbol_mark_price_socket("BTCUSDT"), usdm, "btcusdt@markPrice@1s", MARK_PRICE),
            (sm.all_mark_price_socket(fast=False), usdm, "!markPrice@arr", [MARK_PRICE]),
            (sm.aggtrade_futures_socket("BTCUSDT"), usdm, "btcusdt@aggTrade", AGG_TRADE),
            (sm.kline_futures_socket("BTCUSDT", "1m", FuturesType.USD_M, ContractType.PERPETUAL), usdm,
             "btcusdt_perpetual@continuousKline_1m", CONTINUOUS_KLINE),
            (sm.futures_depth_socket("BTCUSDT"), usdm, "btcusdt@depth10", DEPTH),
            (sm.symbol_ticker_futures_socket("BNBUSDT"), usdm, "bnbusdt@bookTicker", BOOK_TICKER),
            (sm.all_ticker_futures_socket(), usdm, "!bookTicker", BOOK_TICKER),
            (sm.index_price_socket("BTCUSD"), coinm, "btcusd@indexPrice@1s", INDEX_PRICE),
            (sm.symbol_mark_price_socket("BTCUSD_PERP", fast=False, futures_type=FuturesType.COIN_M), coinm,
             "btcusd_perp@markPrice", MARK_PRICE),
        ]
        for socket, server, stream, payload in cases:
            async with socket as s:
                await until(lambda srv=server, n=stream: srv.subscribed(n), what=stream)  # type: ignore[misc]
                server.push(stream, payload)
                assert await asyncio.wait_for(s.recv(), 10) == payload, stream
        got: list[Any] = []
        async with sm.futures_multiplex_socket(["btcusdt@aggTrade", "btcusdt@bookTicker"]) as s:
            for name, payload in (("btcusdt@aggTrade", AGG_TRADE), ("btcusdt@bookTicker", BOOK_TICKER)):
                await until(lambda n=name: usdm.subscribed(n), what=name)  # type: ignore[misc]
                usdm.push(name, payload)
                got.append(await asyncio.wait_for(s.recv(), 10))
            # Each on its route: the multiplex socket spans /market and /public.
            assert set(usdm.routes_of("btcusdt@aggTrade")) == {"market"}
            assert set(usdm.routes_of("btcusdt@bookTicker")) == {"public"}
        assert got == [{"stream": "btcusdt@aggTrade", "data": AGG_TRADE},
                       {"stream": "btcusdt@bookTicker", "data": BOOK_TICKER}]
        assert sm.connections == []  # the spot side was never opened


async def test_a_local_spot_manager_names_the_missing_futures_market() -> None:
    async with AsyncSocketManager(market=NOWHERE_SPOT) as sm:
        with pytest.raises(ValueError, match="futures_market=local_market"):
            sm.symbol_mark_price_socket("BTCUSDT")


async def test_threaded_manager_takes_python_binance_futures_calls_in_either_order() -> None:
    async with futures_server("usdm") as server:
        bm = BinanceSocketManager(None, market=NOWHERE_SPOT, futures_market=server.market)
        got: dict[str, list[Any]] = {}

        def keep(name: str) -> Any:
            return got.setdefault(name, []).append

        keys = [
            bm.start_symbol_mark_price_socket(keep("mark"), "BTCUSDT"),  # python-binance: callback first
            bm.start_aggtrade_futures_socket("BTCUSDT", keep("agg")),  # seed: symbol first
            bm.start_all_mark_price_socket(keep("all"), fast=False),
            bm.start_futures_multiplex_socket(keep("multi"), ["ethusdt@aggTrade", "ethusdt@bookTicker"]),
            bm.start_kline_futures_socket(keep("kline"), "BTCUSDT", interval="1m"),
            bm.start_futures_depth_socket(keep("depth"), "BTCUSDT", depth="5"),
        ]
        assert keys == ["usdm-local:btcusdt@markPrice@1s", "usdm-local:btcusdt@aggTrade",
                        "usdm-local:!markPrice@arr", "usdm-local:streams=ethusdt@aggTrade/ethusdt@bookTicker",
                        "usdm-local:btcusdt_perpetual@continuousKline_1m", "usdm-local:btcusdt@depth5"]
        assert bm.start_symbol_mark_price_socket(keep("mark"), "BTCUSDT") is False  # already open
        bm.start()
        try:
            assert await asyncio.to_thread(bm.wait_ready, None, 10)
            pushes = [("btcusdt@markPrice@1s", MARK_PRICE, "mark"), ("btcusdt@aggTrade", AGG_TRADE, "agg"),
                      ("!markPrice@arr", [MARK_PRICE], "all"), ("ethusdt@bookTicker", BOOK_TICKER, "multi"),
                      ("btcusdt_perpetual@continuousKline_1m", CONTINUOUS_KLINE, "kline"),
                      ("btcusdt@depth5", DEPTH, "depth")]
            for stream, payload, name in pushes:
                server.push(stream, payload)
                await until(lambda n=name: got.get(n), what=name)  # type: ignore[misc]
            assert got["mark"] == [MARK_PRICE] and got["all"] == [[MARK_PRICE]]
            assert got["multi"] == [{"stream": "ethusdt@bookTicker", "data": BOOK_TICKER}]
            await asyncio.to_thread(bm.stop_socket, keys[0])  # it waits for the server, on this loop
            await until(lambda: not server.subscribed("btcusdt@markPrice@1s"), what="unsubscribe")
        finally:
            await asyncio.to_thread(bm.close)


async def test_futures_user_socket_over_a_listen_key_on_private() -> None:
    async with futures_server("usdm") as server:
        client = Client("k" * 64, "s3cr3t", market=NOWHERE_SPOT, futures_market=server.market, env={})
        bm = BinanceSocketManager(client, market=NOWHERE_SPOT, futures_market=server.market)
        events: list[Any] = []
        assert bm.start_futures_user_socket(events.append) == "futuresUserData"
        bm.start()
        try:
            assert await asyncio.to_thread(bm.wait_ready, "futuresUserData", 10)
            await until(lambda: server.listen_keys and any(p.route == "private" for p in server.peers),
                        what="listen-key stream")
            event = {"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 1, "o": {"s": "BTCUSDT", "X": "NEW"}}
            server.push_user(event)
            await until(lambda: events, what="user event")
            assert events == [event]
            assert ("POST", "/fapi/v1/listenKey", {}) in server.rest_calls
            # /private?listenKey=...&events=...: every USD-M user event asked for (PROTOCOL 8).
            asked = set(server.private_events[0])
            assert {"ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "listenKeyExpired"} <= asked
        finally:
            await asyncio.to_thread(bm.close)
            await asyncio.to_thread(client.close)
        assert any(method == "DELETE" for method, _, _ in server.rest_calls)  # the key is given back


async def test_futures_depth_cache_syncs_by_pu_from_the_futures_rest_prefix() -> None:
    async with futures_server("usdm") as server, \
            AsyncSocketManager(market=NOWHERE_SPOT, futures_market=server.market) as sm:
        asked = asyncio.Event()

        async def snapshot(params: dict[str, str]) -> Any:
            asked.set()
            return {"lastUpdateId": 105, "E": 1, "T": 1, "bids": [["100.0", "1"], ["99.0", "2"]],
                    "asks": [["101.0", "1"], ["102.0", "2"]]}

        server.depth = snapshot
        books: list[Any] = []
        async with FuturesDepthCacheManager(sm, "BTCUSDT", limit=100, ws_interval=0, check_tickers=False,
                                            callback=books.append) as dcm:
            def diff(first: int, final: int, prev: int, bids: Any = (), asks: Any = ()) -> dict[str, Any]:
                return {"e": "depthUpdate", "E": final, "T": final, "s": "BTCUSDT", "U": first, "u": final,
                        "pu": prev, "b": list(bids), "a": list(asks)}

            await until(lambda: server.subscribed("btcusdt@depth@0ms"), what="subscription")
            server.push("btcusdt@depth@0ms", diff(90, 100, 80))  # u < lastUpdateId: dropped (5.2 step 3)
            server.push("btcusdt@depth@0ms", diff(101, 108, 100, bids=[["100.0", "5"]]))  # U <= 105 <= u
            await asyncio.wait_for(asked.wait(), 10)
            server.push("btcusdt@depth@0ms", diff(140, 150, 108, asks=[["101.0", "0"]]))  # pu == prev u
            await until(lambda: dcm.get_depth_cache().update_id == 150, what="synced book")
            book = dcm.get_depth_cache()
            assert book.state.value == "SYNCED"
            assert book.best_bid() == (100.0, 5.0) and book.best_ask() == (102.0, 2.0)
            assert dcm.stats().gaps == 0
            server.push("btcusdt@depth@0ms", diff(200, 210, 170))  # pu != 150: a gap, resync
            await until(lambda: dcm.stats().gaps == 1, what="gap")
        calls = [c for c in server.rest_calls if c[1] == "/fapi/v1/depth"]
        assert calls and calls[0][2] == {"symbol": "BTCUSDT", "limit": "100"}
        assert dataclasses.replace(sm.futures_manager().market) == server.market


def test_models_module_has_a_model_for_every_declared_futures_kind() -> None:
    from binance_ws.products import COINM_PRODUCT, USDM_PRODUCT
    for product in (USDM_PRODUCT, COINM_PRODUCT):
        missing = [k for k, v in product.kinds.items() if v.model is None]
        assert missing == [], product.name
    assert models.FuturesDepthUpdate in {v.model for v in USDM_PRODUCT.kinds.values()}


async def test_coinm_user_data_over_a_listen_key_and_start_user_socket_on_a_futures_market() -> None:
    async with futures_server("coinm") as server:
        client = Client("k" * 64, "s3cr3t", market=NOWHERE_SPOT, futures_market=server.market, env={})
        # On a COIN-M market the seed's start_user_socket is that product's transport: a listen key.
        bm = BinanceSocketManager(client, market=server.market)
        events: list[Any] = []
        assert bm.start_user_socket(events.append) == "coinFuturesUserData"
        bm.start()
        try:
            assert await asyncio.to_thread(bm.wait_ready, "coinFuturesUserData", 10)
            event = {"e": "ACCOUNT_UPDATE", "E": 2, "T": 2, "a": {"m": "ORDER", "B": [], "P": []}}
            await until(lambda: server.push_user(event) and events, what="user event")
            assert events[0] == event
            assert server.rest_calls[0][:2] == ("POST", "/dapi/v1/listenKey")
        finally:
            await asyncio.to_thread(bm.close)
            await asyncio.to_thread(client.close)
        # A client whose listen keys come from another product is refused before anything opens.
        usdm_client = Client("k" * 64, "s3cr3t", env={})
        try:
            with pytest.raises(ValueError, match="futures_market=COINM"):
                BinanceSocketManager(usdm_client, market=server.market).start_coin_futures_user_socket(print)
        finally:
            usdm_client.close()


def test_the_seeds_per_kind_stops_leave_futures_sockets_and_depth_caches_alone() -> None:
    bm = BinanceSocketManager(None, market=NOWHERE_SPOT,
                              futures_market=local_market("ws://127.0.0.1:1/public", "http://127.0.0.1:1",
                                                          base=USDM))
    futures_key = bm.start_aggtrade_futures_socket(print, "BTCUSDT")
    spot_key = bm.start_aggtrade_socket("BTCUSDT", print)
    cache_key = bm.start_depth_cache(print, "BTCUSDT")
    bm.stop_aggtrade_socket("BTCUSDT")  # nothing started yet: only the bookkeeping changes
    assert set(bm._sockets) == {futures_key, cache_key} and spot_key not in bm._sockets


async def test_futures_order_book_reads_the_futures_rest_prefix() -> None:
    book = {"lastUpdateId": 7, "E": 1, "T": 1, "bids": [["1.0", "2"]], "asks": [["2.0", "1"]]}
    for product, path in (("usdm", "/fapi/v1/depth"), ("coinm", "/dapi/v1/depth")):
        async with futures_server(product) as server:
            async def answer(params: dict[str, str]) -> Any:
                return book

            server.depth = answer
            client = Client(futures_market=server.market, env={})
            try:
                assert await asyncio.to_thread(client.futures_order_book, "BTCUSDT", 100) == book
                with pytest.raises(ValueError, match="futures depth limit must be one of"):
                    client.futures_order_book("BTCUSDT", 200)
            finally:
                await asyncio.to_thread(client.close)
            assert server.rest_calls == [("GET", path, {"symbol": "BTCUSDT", "limit": "100"})]


@pytest.mark.parametrize("mode", ["typed", "raw"])
async def test_pu_gaps_reach_typed_and_raw_subscribers(mode: str) -> None:
    async with futures_server("usdm") as server, AsyncSocketManager(market=server.market) as sm:
        got: list[Any] = []
        decode: Any = decoder_for("btcusdt@depth@0ms", server.market) if mode == "typed" else "raw"
        await sm.subscribe("btcusdt@depth@0ms", got.append, decode=decode)
        await _push_until(server, "btcusdt@depth@0ms", {**DEPTH, "U": 100, "u": 110, "pu": 90}, got)
        server.push("btcusdt@depth@0ms", {**DEPTH, "U": 150, "u": 160, "pu": 110})
        server.push("btcusdt@depth@0ms", {**DEPTH, "U": 200, "u": 210, "pu": 180})
        await until(lambda: len(got) >= 4, what="gap and events")
        gap = got[-2]
        assert (gap["type"], gap["first"], gap["last"]) == ("gap", 161, 180)
        if mode == "typed":
            assert isinstance(got[-1], models.FuturesDepthUpdate) and got[-1].prev_final_update_id == 180
        else:
            assert got[-1].stream == "btcusdt@depth@0ms" and b'"pu":180' in bytes(got[-1].data)


def test_usdm_shards_each_route_on_its_own() -> None:
    from binance_ws.core.plan import Open
    from binance_ws.engine.manager import RoutedPlan
    plan = RoutedPlan(USDM, 2)
    names = ["a@depth", "b@depth", "c@depth", "a@aggTrade", "b@aggTrade", "a@bookTicker"]
    opened = [(plan.base_url(a.conn_id), a.streams) for a in plan.add(names) if isinstance(a, Open)]
    by_route: dict[str, list[Any]] = {}
    for url, streams in opened:
        by_route.setdefault(url.rsplit("/", 1)[1], []).append(sorted(streams))
    # Two streams a connection: /public holds four (two shards), /market two (one).
    assert sorted(by_route["public"]) == [["a@bookTicker", "c@depth"], ["a@depth", "b@depth"]]
    assert by_route["market"] == [["a@aggTrade", "b@aggTrade"]]
