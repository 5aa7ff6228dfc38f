"""Futures market streams at the hub (no sockets): names and routes, payload keys and types against
PROTOCOL.md 8 and the real USD-M captures, ``U``/``u``/``pu`` chains, cadences, mark price, funding and
liquidations, on a hand-driven clock."""

from __future__ import annotations

import gzip
import re
from itertools import pairwise
from typing import Any

import orjson
import pytest

from binance_ws.sim.exchange import Exchange
from binance_ws.sim.flow import OrderFlow
from binance_ws.sim.futures.feeds import FuturesFeeds, fixed
from binance_ws.sim.futures.mark import (
    FUNDING_INTERVAL_MS,
    MarkModel,
    Positions,
    next_funding_time,
)
from binance_ws.sim.futures.product import COINM, COINM_SYMBOLS, USDM, USDM_SYMBOLS, FuturesProduct
from tests.paths import DATA
from tests.sim.test_feeds import Collector, HandClock, RecordingHub

S, I, B, L = str, int, bool, list  # noqa: E741
KLINE_BODY = {"t": I, "T": I, "s": S, "i": S, "f": I, "L": I, "o": S, "c": S, "h": S, "l": S, "v": S, "n": I,
              "x": B, "q": S, "V": S, "Q": S, "B": S}
#: Key sets and JSON types of the USD-M streams (PROTOCOL 8).
USDM_SCHEMAS: dict[str, dict[str, Any]] = {
    "depthUpdate": {"e": S, "E": I, "T": I, "s": S, "U": I, "u": I, "pu": I, "b": L, "a": L},
    "bookTicker": {"e": S, "u": I, "E": I, "T": I, "s": S, "b": S, "B": S, "a": S, "A": S},
    "aggTrade": {"e": S, "E": I, "s": S, "a": I, "p": S, "q": S, "nq": S, "f": I, "l": I, "T": I, "m": B},
    "trade": {"e": S, "E": I, "T": I, "s": S, "t": I, "p": S, "q": S, "X": S, "m": B},
    "markPriceUpdate": {"e": S, "E": I, "s": S, "p": S, "ap": S, "i": S, "P": S, "r": S, "T": I},
    "kline": {"e": S, "E": I, "s": S, "k": KLINE_BODY},
    "continuous_kline": {"e": S, "E": I, "ps": S, "ct": S,
                         "k": {k: v for k, v in KLINE_BODY.items() if k != "s"}},
    "24hrMiniTicker": {"e": S, "E": I, "s": S, "c": S, "o": S, "h": S, "l": S, "v": S, "q": S},
    "24hrTicker": {"e": S, "E": I, "s": S, "p": S, "P": S, "w": S, "c": S, "Q": S, "o": S, "h": S, "l": S,
                   "v": S, "q": S, "O": I, "C": I, "F": I, "L": I, "n": I},
    "forceOrder": {"e": S, "E": I, "o": {"s": S, "S": S, "o": S, "f": S, "q": S, "p": S, "ap": S, "X": S,
                                         "l": S, "z": S, "T": I}},
    "contractInfo": {"e": S, "E": I, "s": S, "ps": S, "ct": S, "dt": I, "ot": I, "cs": S},
    "assetIndexUpdate": {"e": S, "E": I, "s": S, "i": S, "b": S, "a": S, "B": S, "A": S, "q": S, "g": S,
                         "Q": S, "G": S},
    "compositeIndex": {"e": S, "E": I, "s": S, "p": S, "C": S, "c": L},
}
#: BTCUSDT on the wire: 2-decimal prices, 3-decimal quantities (hftbacktest capture).
PRICE = re.compile(r"^-?\d+\.\d{2}$")
QTY = re.compile(r"^\d+\.\d{3}$")
EIGHT = re.compile(r"^-?\d+\.\d{8}$")


def check(payload: dict[str, Any], schemas: dict[str, dict[str, Any]] = USDM_SCHEMAS) -> None:
    schema = schemas[payload["e"]]
    assert set(payload) == set(schema), payload
    for key, kind in schema.items():
        if isinstance(kind, dict):
            assert set(payload[key]) == set(kind), payload
            for k2, t2 in kind.items():
                assert type(payload[key][k2]) is t2, (key, k2, payload)
        else:
            assert type(payload[key]) is kind, (key, payload)


class FuturesMarket:
    """Engine, flow and futures feeds on a hub, driven by hand (10 ms ticks)."""

    def __init__(self, product: FuturesProduct = USDM, seed: int = 1) -> None:
        self.clock = HandClock()
        self.hub = RecordingHub()
        symbols = USDM_SYMBOLS if product is USDM else COINM_SYMBOLS
        self.exchange = Exchange(symbols, self.clock)
        self.flow = OrderFlow(self.exchange, seed)
        self.flow.seed_history(50, self.clock.now_ms())
        self.feeds = FuturesFeeds(self.exchange, self.hub, self.clock, product, seed=seed)

    def listen(self, *streams: str) -> Collector:
        c = Collector()
        for s in streams:
            self.hub.attach(s, c)
        return c

    def run(self, ms: int, actions_per_tick: int = 5) -> None:
        for _ in range(ms // 10):
            if actions_per_tick:
                self.flow.step(actions_per_tick)
            self.clock.advance(10)
            self.feeds.tick(self.clock.now_ms())


# -- names and routes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "route"), [
    ("btcusdt@bookTicker", "public"), ("!bookTicker", "public"), ("btcusdt@depth", "public"),
    ("btcusdt@depth@500ms", "public"), ("btcusdt@depth@100ms", "public"), ("btcusdt@depth@0ms", "public"),
    ("btcusdt@depth5", "public"), ("btcusdt@depth10@500ms", "public"), ("btcusdt@depth20@100ms", "public"),
    ("btcusdt@aggTrade", "market"), ("btcusdt@trade", "public"), ("btcusdt@markPrice", "market"),
    ("btcusdt@markPrice@1s", "market"), ("!markPrice@arr", "market"), ("!markPrice@arr@1s", "market"),
    ("btcusdt@kline_1m", "market"), ("btcusdt@kline_1M", "market"),
    ("btcusdt_perpetual@continuousKline_1m", "market"), ("btcusdt@miniTicker", "market"),
    ("!miniTicker@arr", "market"), ("btcusdt@ticker", "market"), ("!ticker@arr", "market"),
    ("btcusdt@forceOrder", "market"), ("!forceOrder@arr", "market"), ("!contractInfo", "market"),
    ("!assetIndex@arr", "market"), ("btcusd@assetIndex", "market"), ("usdtusd@assetIndex", "market"),
    ("simindexusdt@compositeIndex", "market"),
])
def test_usdm_routes(name: str, route: str) -> None:
    assert FuturesMarket().feeds.route_of(name) == route


@pytest.mark.parametrize("name", [
    "btcusdt@kline_1s", "btcusdt@depth@250ms", "btcusdt@depth7", "btcusdt@ticker_1h", "btcusdt@avgPrice",
    "BTCUSDT@aggTrade", "xrpusdt@aggTrade", "btcusdt_current_quarter@continuousKline_1m",
    "btcusdt@continuousKline_1m", "!ticker_1h@arr", "btcusdt", "", "btcusdt@assetIndex",
    "xrpusd@assetIndex", "btcusdt@compositeIndex",
])
def test_usdm_unknown_names(name: str) -> None:
    assert FuturesMarket().feeds.route_of(name) is None


def test_coinm_names() -> None:
    feeds = FuturesMarket(COINM).feeds
    assert feeds.route_of("btcusd_perp@depth@100ms") == "public"
    assert feeds.route_of("btcusd_perpetual@continuousKline_1m") == "market"
    assert feeds.route_of("btcusd_perp@markPrice") == "market"
    assert feeds.route_of("btcusd@markPrice") == feeds.route_of("btcusd@markPrice@1s") == "market"
    # COIN-M has per-pair mark price arrays, not !markPrice@arr; no Multi-Assets mode indexes.
    assert feeds.route_of("!markPrice@arr") is None
    assert feeds.route_of("!assetIndex@arr") is None


# -- payload shapes --------------------------------------------------------------------------------------
ALL_STREAMS = [
    "btcusdt@depth", "btcusdt@depth@500ms", "btcusdt@depth@100ms", "btcusdt@depth@0ms", "btcusdt@depth5",
    "btcusdt@depth10@100ms", "btcusdt@depth20@500ms", "btcusdt@bookTicker", "btcusdt@aggTrade",
    "btcusdt@trade", "btcusdt@markPrice", "btcusdt@markPrice@1s", "btcusdt@kline_1m",
    "btcusdt_perpetual@continuousKline_1m", "btcusdt@miniTicker", "btcusdt@ticker",
]


def test_every_usdm_payload_has_protocol_keys_types_and_precision() -> None:
    m = FuturesMarket()
    collectors = {s: m.listen(s) for s in [*ALL_STREAMS, "!markPrice@arr", "!miniTicker@arr", "!ticker@arr",
                                           "!bookTicker"]}
    m.run(5500, actions_per_tick=6)
    for stream, c in collectors.items():
        assert c.messages, stream
        for msg in c.messages:
            for p in msg if isinstance(msg, list) else [msg]:
                check(p)
                if p["e"] in ("bookTicker",):
                    assert PRICE.match(p["b"]) and QTY.match(p["B"]), p
                if p["e"] == "depthUpdate":
                    for level in p["b"] + p["a"]:
                        assert PRICE.match(level[0]) and QTY.match(level[1]), level
                if p["e"] == "aggTrade":
                    assert PRICE.match(p["p"]) and QTY.match(p["q"]) and p["nq"] == p["q"]
                if p["e"] == "markPriceUpdate":
                    assert all(EIGHT.match(p[k]) for k in ("p", "ap", "i", "P", "r")), p
                    assert p["T"] == next_funding_time(p["E"])


def _capture_keys() -> dict[str, dict[str, Any]]:
    """The first payload of each event type in the real USD-M captures (cryptofeed 2021, hftbacktest
    2024); the 2021 and 2024 key sets and orders agree where both have a type."""
    keys: dict[str, dict[str, Any]] = {}
    for line in (DATA / "cryptofeed_BINANCE_FUTURES.ws.1.0").read_text().splitlines()[1:]:
        data = orjson.loads(line.split(": ", 1)[1])["data"]
        keys.setdefault(data["e"], data)
        if "k" in data:
            keys.setdefault("k", data["k"])
    with gzip.open(DATA / "usdm_btcusdt_20240808.hftbacktest.gz", "rb") as f:
        for raw in f:
            doc = orjson.loads(raw.split(b" ", 1)[1])
            data = doc.get("data", doc)
            kind = data.get("e", "snapshot")
            if kind in keys:
                assert list(data) == list(keys[kind]), kind
            keys.setdefault(kind, data)
    return keys


def test_payload_keys_match_the_real_usdm_captures() -> None:
    captured = _capture_keys()
    m = FuturesMarket()
    c = m.listen("btcusdt@depth@100ms", "btcusdt@bookTicker", "btcusdt@aggTrade", "btcusdt@trade",
                 "btcusdt@kline_1m")
    m.run(1500)
    ours: dict[str, dict[str, Any]] = {}
    for p in c.messages:
        ours.setdefault(p["e"], p)
        if "k" in p:
            ours.setdefault("k", p["k"])
    for event in ("depthUpdate", "bookTicker", "trade", "kline", "k"):
        assert list(ours[event]) == list(captured[event]), event  # the same keys in the same order
    # The 2021 capture predates ``nq`` (PROTOCOL 8); otherwise the same keys, in the same order.
    assert [k for k in ours["aggTrade"] if k != "nq"] == list(captured["aggTrade"])
    assert list(m.feeds.depth_snapshot("BTCUSDT", 5)) == list(captured["snapshot"])


# -- ids ---------------------------------------------------------------------------------------------------
def test_diff_depth_ids_chain_by_pu_and_jump_like_binance() -> None:
    m = FuturesMarket()
    fast, slow, book_ticker = m.listen("btcusdt@depth@100ms"), m.listen("btcusdt@depth"), \
        m.listen("btcusdt@bookTicker")
    m.run(4000)
    for c in (fast, slow):
        events = c.messages
        assert len(events) > 5
        for prev, ev in pairwise(events):
            assert ev["pu"] == prev["u"]
            assert ev["U"] > prev["u"] + 1  # ids shared across symbols: never contiguous
            assert ev["U"] <= ev["u"]
    # bookTicker ids live in the same space as the depth ids: each is the id of a book change.
    changes = {ev["U"] for ev in fast.messages} | {ev["u"] for ev in fast.messages}
    ticker_ids = [bt["u"] for bt in book_ticker.messages]
    assert ticker_ids == sorted(ticker_ids)
    assert fast.messages[0]["U"] - 100 < ticker_ids[0] <= m.feeds.depth_snapshot("BTCUSDT", 5)["lastUpdateId"]
    assert changes & set(ticker_ids)


def test_cadences_default_250ms_and_variants() -> None:
    m = FuturesMarket()
    cs = {s: m.listen(f"btcusdt@depth5{s}") for s in ("", "@500ms", "@100ms")}
    mark_slow, mark_fast = m.listen("btcusdt@markPrice"), m.listen("btcusdt@markPrice@1s")
    kline = m.listen("btcusdt@kline_1m")
    m.run(6000)
    gaps = {s: {b["E"] - a["E"] for a, b in pairwise(c.messages)} for s, c in cs.items()}
    assert gaps == {"": {250}, "@500ms": {500}, "@100ms": {100}}
    assert {b["E"] - a["E"] for a, b in pairwise(mark_slow.messages)} == {3000}
    assert {b["E"] - a["E"] for a, b in pairwise(mark_fast.messages)} == {1000}
    assert {b["E"] - a["E"] for a, b in pairwise(kline.messages) if b["E"] != a["E"]} == {250}


def test_book_rebuilt_from_snapshot_and_diffs_with_the_futures_rule() -> None:
    """PROTOCOL 5.2: buffer, snapshot, drop u < lastUpdateId, first U <= id <= u, then pu == prev u."""
    m = FuturesMarket()
    c = m.listen("ethusdt@depth@100ms")
    m.run(300)
    snap = m.feeds.depth_snapshot("ETHUSDT", 1000)
    m.run(3000)
    m.feeds.tick(m.clock.now_ms() + 100)  # flush the open window: the streamed book is the engine's
    book: dict[str, dict[str, str]] = {"b": dict(map(tuple, snap["bids"])),
                                       "a": dict(map(tuple, snap["asks"]))}
    last = snap["lastUpdateId"]
    applied = 0
    for ev in c.messages:
        if ev["u"] < snap["lastUpdateId"]:
            continue
        if applied == 0:
            assert ev["U"] <= snap["lastUpdateId"] <= ev["u"]
        else:
            assert ev["pu"] == last
        for side in ("b", "a"):
            for price, qty in ev[side]:
                if float(qty) == 0:
                    book[side].pop(price, None)
                else:
                    book[side][price] = qty
        last = ev["u"]
        applied += 1
    assert applied > 10
    truth = m.feeds.depth_snapshot("ETHUSDT", 1000)
    assert book["b"] == dict(map(tuple, truth["bids"])) and book["a"] == dict(map(tuple, truth["asks"]))


# -- mark price, funding, liquidations ----------------------------------------------------------------
def test_mark_price_is_median_and_index_lags_the_book() -> None:
    t = 1_700_000_000_000
    model = MarkModel(100.0, t)
    for i in range(1, 31):
        model.observe(t + i * 1000, 110.0, 110.0)
    state = model.state(t + 30_000)
    assert 100.0 < state.index < 110.0
    assert state.index > 109.0  # 30 s is six index time constants
    assert min(state.index, 110.0) <= state.mark <= 110.0
    # The book above the index is a positive premium: longs pay.
    assert state.funding_rate > 0.0001
    assert state.next_funding_ms == next_funding_time(t + 30_000)
    assert state.next_funding_ms % FUNDING_INTERVAL_MS == 0


def test_funding_rate_is_interest_when_there_is_no_premium_and_is_capped() -> None:
    t = 1_700_000_000_000
    flat = MarkModel(100.0, t)
    for i in range(60):
        flat.observe(t + i * 1000, 100.0, 100.0)
    assert flat.funding_rate() == pytest.approx(0.0001)
    wild = MarkModel(100.0, t)
    for i in range(60):
        wild.observe(t + i * 1000, 200.0, 200.0)
    assert wild.funding_rate() == pytest.approx(0.0075)


def test_positions_liquidate_on_mark_and_keep_the_largest_per_second() -> None:
    t = 1_700_000_000_000
    pos = Positions("BTCUSDT", 100.0, 100_000, count=40, seed=3)
    pos.check(100.0, t)
    assert pos.due(t + 5000) == []
    pos.check(90.0, t + 10)  # -10%: every long above 10x is liquidated
    pos.check(90.0, t + 20)
    assert pos.liquidated > 0
    assert pos.due(t + 999 - t % 1000) == []  # its window has not closed yet
    out = pos.due(t + 5000)
    assert len(out) == 1 and out[0].side == "SELL"
    assert out[0].price < 100.0


def test_force_orders_stream_from_a_falling_book() -> None:
    m = FuturesMarket()
    force, wide = m.listen("btcusdt@forceOrder"), m.listen("!forceOrder@arr")
    m.run(1000)
    before = len(force.messages)
    # A crash: one bid 10% down, a sell through every bid to it; the index and mark follow.
    m.exchange.place_order("BTCUSDT", "BUY", "LIMIT", "20", "55620.00")
    m.exchange.place_order("BTCUSDT", "SELL", "MARKET", "10")
    m.run(40_000, actions_per_tick=0)
    assert force.messages == wide.messages
    times = [p["E"] for p in force.messages]
    assert len(times) == len(set(times))  # one per symbol per second at most
    crash = force.messages[before:]
    # Longs are liquidated (each second's largest reported) as the mark follows the book down; the
    # positions opened since at the lower mark (shorts among them) may go as it settles.
    sides = [p["o"]["S"] for p in crash]
    assert len(crash) >= 5 and sides[0] == "SELL" and sides.count("SELL") > sides.count("BUY")
    for p in force.messages:
        check(p)
        assert p["o"]["X"] == "FILLED" and p["o"]["q"] == p["o"]["z"] == p["o"]["l"]


def test_asset_and_composite_indexes_follow_the_index_prices() -> None:
    m = FuturesMarket()
    wide, btc, comp = m.listen("!assetIndex@arr"), m.listen("btcusd@assetIndex"), \
        m.listen("simindexusdt@compositeIndex")
    m.run(3000)
    assert len(btc.messages) >= 2 and len(comp.messages) >= 2
    for arr in wide.messages:
        assert [p["s"] for p in arr] == ["BTCUSD", "ETHUSD", "USDTUSD"]
        for p in arr:
            check(p)
            assert all(EIGHT.match(p[k]) for k in "ibaBAqgQG")
            assert float(p["B"]) < float(p["i"]) < float(p["A"])
        assert arr[-1]["i"] == "1.00000000"
    btc_index = m.feeds._syms["BTCUSDT"].mark.index
    assert float(btc.messages[-1]["i"]) == pytest.approx(btc_index, rel=1e-3)
    last = comp.messages[-1]
    check(last)
    assert [c["b"] for c in last["c"]] == ["BTC", "ETH"]
    assert float(last["p"]) == pytest.approx(sum(float(c["w"]) * float(c["i"]) for c in last["c"]), rel=1e-6)
    assert sum(float(c["W"]) for c in last["c"]) == pytest.approx(1.0, rel=1e-6)


def test_contract_info_pushed_when_announced() -> None:
    m = FuturesMarket()
    c = m.listen("!contractInfo")
    m.run(2000)
    assert c.messages == []
    m.feeds.announce_contract("btcusdt", [{"bs": 1, "bnf": 0, "bnc": 5000, "mmr": 0.01, "cf": 0, "mi": 21,
                                            "ma": 50}])
    (p,) = c.messages
    check({k: v for k, v in p.items() if k != "bks"})
    assert p["bks"][0]["mmr"] == 0.01


def test_coinm_payloads_carry_the_pair_and_contract_quantities() -> None:
    m = FuturesMarket(COINM)
    c = m.listen("btcusd_perp@depth@100ms", "btcusd_perp@bookTicker", "btcusd_perp@markPrice@1s",
                 "btcusd_perp@miniTicker")
    m.run(2500)
    pair = m.listen("btcusd@markPrice@1s")
    m.run(2500)
    assert pair.messages and all([p["s"] for p in arr] == ["BTCUSD_PERP"] for arr in pair.messages)
    kinds = {p["e"]: p for p in c.messages}
    assert kinds["depthUpdate"]["ps"] == "BTCUSD" and kinds["bookTicker"]["ps"] == "BTCUSD"
    assert kinds["24hrMiniTicker"]["ps"] == "BTCUSD"
    assert "ap" not in kinds["markPriceUpdate"]
    assert re.fullmatch(r"\d+", kinds["bookTicker"]["B"])  # contracts are whole numbers
    assert set(m.feeds.depth_snapshot("BTCUSD_PERP", 5)) == {"lastUpdateId", "E", "T", "symbol", "pair",
                                                              "bids", "asks"}


def test_fixed_formats_engine_units() -> None:
    assert fixed(6_180_020_000_000, 2) == "61800.20"
    assert fixed(600_000, 3) == "0.006"
    assert fixed(-150_000_000, 1) == "-1.5"
    assert fixed(700_000_000, 0) == "7"


# -- routing rules -------------------------------------------------------------------------------------
def test_routed_paths_and_delivery_rule() -> None:
    from binance_ws.sim.futures.product import delivered, route_of_name
    from binance_ws.sim.server import parse_path

    def route(path: str, routes: tuple[str, ...] = USDM.routes) -> tuple[str, list[str], str | None] | None:
        r = parse_path(path.encode(), routes)
        return None if r is None else (r.kind, r.streams, r.path_route)

    assert route("/public/ws/btcusdt@depth") == ("stream", ["btcusdt@depth"], "public")
    assert route("/market/stream?streams=btcusdt@aggTrade") == ("stream", ["btcusdt@aggTrade"], "market")
    assert route("/private/ws?listenKey=k") == ("user", [], "private")
    assert route("/private/stream?listenKey=k&events=ACCOUNT_UPDATE") == ("user", [], "private")
    # /private/ws/<name> is a listen-key stream when the name is a live key, else refused (the server).
    assert route("/private/ws/btcusdt@depth") == ("stream", ["btcusdt@depth"], "private")
    assert route("/private/stream?streams=btcusdt@depth") is None and route("/public/ws-api/v3") is None
    assert route("/publicity/ws") is None
    assert route("/ws/x") == ("stream", ["x"], None)
    assert route("/public/ws", COINM.routes) is None  # COIN-M is unrouted
    # Replayed streams are routed by their names' form.
    assert route_of_name("btcusdt@depth@0ms") == "public"
    assert route_of_name("btcusdt@trade") == "public"
    assert route_of_name("btcusdt_perpetual@continuousKline_1m") == "market"
    assert route_of_name("btcusdt@nonsense") is None
    # Each route its own; legacy gets public only; unrouted products get everything.
    assert delivered(USDM, "public", "public") and not delivered(USDM, "public", "market")
    assert delivered(USDM, "market", "market") and not delivered(USDM, "market", "public")
    assert delivered(USDM, None, "public") and not delivered(USDM, None, "market")
    assert delivered(COINM, None, "market") and delivered(None, None, "market")


def test_ordinary_flow_liquidates_now_and_then() -> None:
    """Some positions always sit near liquidation, so a wandering book liquidates a few without a crash."""
    m = FuturesMarket()
    wide = m.listen("!forceOrder@arr")
    m.run(120_000, actions_per_tick=3)
    assert wide.messages
    for p in wide.messages:
        check(p)
