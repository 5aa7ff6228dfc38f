"""The simulator's market streams: names, payload shapes (PROTOCOL 4 and the real recordings), cadences,
diff windows, bookTicker ids, klines, tickers; at the hub and over real sockets."""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import orjson
import pytest

from binance_ws.sim import Simulator
from binance_ws.sim.clock import SimClock
from binance_ws.sim.config import SimConfig
from binance_ws.sim.exchange import Exchange, fmt
from binance_ws.sim.feeds import Feeds
from binance_ws.sim.flow import OrderFlow
from binance_ws.sim.hub import StreamHub
from tests.paths import RECORDINGS
from tests.sim._client import connect

S, I, B, L = str, int, bool, list  # noqa: E741  (JSON string, number, boolean, array)
#: Key sets and JSON types of every spot stream (PROTOCOL 4.1-4.12).
KLINE_BODY = {"t": I, "T": I, "s": S, "i": S, "f": I, "L": I, "o": S, "c": S, "h": S, "l": S, "v": S, "n": I,
              "x": B, "q": S, "V": S, "Q": S, "B": S}
SCHEMAS: dict[str, dict[str, Any]] = {
    "trade": {"e": S, "E": I, "s": S, "t": I, "p": S, "q": S, "T": I, "m": B, "M": B},
    "aggTrade": {"e": S, "E": I, "s": S, "a": I, "p": S, "q": S, "f": I, "l": I, "T": I, "m": B, "M": B},
    "kline": {"e": S, "E": I, "s": S, "k": KLINE_BODY},
    "24hrMiniTicker": {"e": S, "E": I, "s": S, "c": S, "o": S, "h": S, "l": S, "v": S, "q": S},
    "24hrTicker": {"e": S, "E": I, "s": S, "p": S, "P": S, "w": S, "x": S, "c": S, "Q": S, "b": S, "B": S,
                   "a": S, "A": S, "o": S, "h": S, "l": S, "v": S, "q": S, "O": I, "C": I, "F": I, "L": I,
                   "n": I},
    "window": {"e": S, "E": I, "s": S, "p": S, "P": S, "o": S, "h": S, "l": S, "c": S, "w": S, "v": S, "q": S,
               "O": I, "C": I, "F": I, "L": I, "n": I},
    "bookTicker": {"u": I, "s": S, "b": S, "B": S, "a": S, "A": S},
    "avgPrice": {"e": S, "E": I, "s": S, "i": S, "w": S, "T": I},
    "partial": {"lastUpdateId": I, "bids": L, "asks": L},
    "depthUpdate": {"e": S, "E": I, "s": S, "U": I, "u": I, "b": L, "a": L},
}
#: String fields that are not 8-decimal amounts.
NOT_AMOUNTS = {"e", "s", "i", "P", "B_kline"}
AMOUNT = re.compile(r"^-?\d+\.\d{8}$")


def schema_of(payload: dict[str, Any]) -> str:
    if "lastUpdateId" in payload:
        return "partial"
    if "e" not in payload:
        return "bookTicker"
    e = payload["e"]
    return "window" if e in ("1hTicker", "4hTicker", "1dTicker") else e


def check_shape(payload: dict[str, Any]) -> None:
    """Assert ``payload`` has exactly its stream's keys, JSON types and 8-decimal amounts."""
    schema = SCHEMAS[schema_of(payload)]
    assert set(payload) == set(schema), payload
    for key, kind in schema.items():
        value = payload[key]
        if isinstance(kind, dict):
            assert set(value) == set(kind)
            for k2, t2 in kind.items():
                assert type(value[k2]) is t2, (key, k2, value)
                if t2 is str and k2 not in ("s", "i", "B"):
                    assert AMOUNT.match(value[k2]), (k2, value[k2])
            continue
        assert type(value) is kind, (key, value)
        if kind is str and key not in NOT_AMOUNTS:
            assert AMOUNT.match(value), (key, value)
        if kind is list:
            for level in value:
                assert len(level) == 2 and all(AMOUNT.match(x) for x in level), level


class Collector:
    """A hub subscriber that decodes every frame it is sent (raw, milliseconds)."""

    combined = False
    micro = False

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def send(self, frame: bytes) -> None:
        self.messages.append(orjson.loads(frame))

    async def drained(self) -> None:
        return None


class RecordingHub(StreamHub):
    """A hub that remembers which streams were published to, subscribed or not."""

    def __init__(self) -> None:
        super().__init__()
        self.published_to: set[str] = set()

    def publish(self, stream: str, payload: Any) -> None:
        self.published_to.add(stream)
        super().publish(stream, payload)


class HandClock(SimClock):
    """Time that moves only when the test advances it: on a loaded machine a wall-clock tick can come
    late, and a push on the fixed grid then follows it within one period (a flaky pacing check)."""

    __slots__ = ("_base_ns",)

    def __init__(self) -> None:
        super().__init__()
        self._base_ns = time.time_ns()

    def now_ms(self) -> int:
        return self._base_ns // 1_000_000 + self.offset_ms

    def now_us(self) -> int:
        return self._base_ns // 1_000 + self.offset_ms * 1_000


class Market:
    """Engine, flow and feeds on a hub, driven by hand: each step runs actions then a 10 ms tick."""

    def __init__(self, seed: int = 1, **config: Any) -> None:
        self.config = SimConfig(**config)
        self.clock = HandClock()
        self.hub = RecordingHub()
        self.exchange = Exchange(self.config.symbols, self.clock)
        self.flow = OrderFlow(self.exchange, seed)
        self.feeds = Feeds(self.exchange, self.hub, self.clock, self.config)

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


@pytest.mark.parametrize("name", [
    "btcusdt@trade", "btcusdt@aggTrade", "bnbbtc@bookTicker", "ethusdt@depth", "ethusdt@depth@100ms",
    "btcusdt@depth5", "btcusdt@depth10@100ms", "btcusdt@depth20", "btcusdt@kline_1s", "btcusdt@kline_1M",
    "btcusdt@kline_3d@+08:00", "btcusdt@miniTicker", "btcusdt@ticker", "btcusdt@ticker_4h",
    "btcusdt@avgPrice", "!miniTicker@arr", "!ticker_1h@arr", "!ticker_1d@arr",
])
def test_valid_stream_names(name: str) -> None:
    assert Market().feeds.is_valid_stream(name)


@pytest.mark.parametrize("name", [
    "BTCUSDT@trade", "xrpusdt@trade", "btcusdt@kline_2m", "btcusdt@kline_1m@+09:00", "btcusdt@depth7",
    "btcusdt@depth@250ms", "btcusdt@depth5@500ms", "btcusdt@ticker_2h", "btcusdt@trades", "btcusdt",
    "btcusdt@", "@trade", "!ticker@arr", "!bookTicker", "!miniTicker", "!ticker_2h@arr", "",
])
def test_invalid_stream_names(name: str) -> None:
    assert not Market().feeds.is_valid_stream(name)


def test_retired_all_market_streams_only_in_legacy_mode() -> None:
    m = Market(legacy_streams=True)
    assert m.feeds.is_valid_stream("!ticker@arr") and m.feeds.is_valid_stream("!bookTicker")
    c = m.listen("!ticker@arr", "!bookTicker")
    m.run(1500)
    arrays = [x for x in c.messages if isinstance(x, list)]
    books = [x for x in c.messages if isinstance(x, dict)]
    assert arrays and books
    for arr in arrays:
        for item in arr:
            assert item["e"] == "24hrTicker"
            check_shape(item)
    for bt in books:
        check_shape(bt)


ALL_BTC_STREAMS = [
    "btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@depth", "btcusdt@depth@100ms",
    "btcusdt@depth5", "btcusdt@depth10@100ms", "btcusdt@depth20", "btcusdt@kline_1s", "btcusdt@kline_1m",
    "btcusdt@kline_1M@+08:00", "btcusdt@miniTicker", "btcusdt@ticker", "btcusdt@ticker_1h",
    "btcusdt@ticker_4h", "btcusdt@ticker_1d", "btcusdt@avgPrice",
]


def test_every_stream_payload_has_protocol_keys_and_types() -> None:
    m = Market()
    collectors = {s: m.listen(s) for s in [*ALL_BTC_STREAMS, "!miniTicker@arr", "!ticker_4h@arr"]}
    m.run(2500, actions_per_tick=6)
    for stream, c in collectors.items():
        assert c.messages, stream
        for msg in c.messages:
            for payload in msg if isinstance(msg, list) else [msg]:
                check_shape(payload)
                if "s" in payload:
                    assert payload["s"] in m.exchange.symbols
    window_events = {c.messages[0]["e"] for s, c in collectors.items() if "@ticker_" in s}
    assert window_events == {"1hTicker", "4hTicker", "1dTicker"}
    partial_sizes = {len(c.messages[0]["bids"]) for s, c in collectors.items() if re.search(r"depth\d", s)}
    assert partial_sizes == {5, 10, 20}


def _recorded() -> Iterator[dict[str, Any]]:
    """Payloads of the real spot recordings (cryptofeed 2021, hftbacktest 2024)."""
    with open(RECORDINGS / "cryptofeed_BINANCE.ws.1.0", "rb") as f:
        next(f)
        for line in f:
            _, sep, body = line.partition(b": ")
            if sep:
                yield orjson.loads(body)["data"]
    with gzip.open(RECORDINGS / "spot_btcusdt_20240808.hftbacktest.gz", "rb") as g:
        for n, line in enumerate(g):
            if n > 3000:
                break
            body = orjson.loads(line.split(b" ", 1)[1])
            if "data" in body:
                yield body["data"]


def type_map(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: type_map(v) if isinstance(v, dict) else type(v).__name__ for k, v in payload.items()}


def test_payloads_match_real_recordings_key_for_key() -> None:
    real: dict[str, dict[str, Any]] = {}
    for payload in _recorded():
        real.setdefault(schema_of(payload), type_map(payload))
    assert set(real) >= {"depthUpdate", "bookTicker", "kline", "aggTrade", "trade"}
    m = Market()
    c = m.listen("btcusdt@depth@100ms", "btcusdt@bookTicker", "btcusdt@kline_1m", "btcusdt@aggTrade",
                 "btcusdt@trade")
    m.run(2100, actions_per_tick=6)
    ours = {}
    for payload in c.messages:
        ours.setdefault(schema_of(payload), type_map(payload))
    for kind in ("depthUpdate", "bookTicker", "kline", "aggTrade", "trade"):
        assert ours[kind] == real[kind], kind


def test_payloads_are_built_only_for_subscribed_streams() -> None:
    m = Market(legacy_streams=True)
    m.run(2100)
    assert m.hub.published_to == set()
    m.listen("btcusdt@depth5")
    m.run(2100)
    assert m.hub.published_to == {"btcusdt@depth5"}


def test_diff_depth_windows_are_contiguous_conflated_and_paced() -> None:
    m = Market()
    fast = m.listen("ethusdt@depth@100ms")
    slow = m.listen("ethusdt@depth")
    m.run(3000, actions_per_tick=4)
    for events, cadence in ((fast.messages, 100), (slow.messages, 1000)):
        assert len(events) >= 2
        for prev, cur in pairwise(events):
            assert cur["U"] == prev["u"] + 1
            # On a fixed grid: a push may come one driver tick late, never two in one period.
            assert cur["E"] - prev["E"] > cadence // 2
        for ev in events:
            # Conflated: one entry per changed level, however many updates the window held.
            assert len(ev["b"]) + len(ev["a"]) <= ev["u"] - ev["U"] + 1
            assert len({p for p, _ in ev["b"]}) == len(ev["b"])
    covered = sum(e["u"] - e["U"] + 1 for e in slow.messages[1:])
    assert covered == slow.messages[-1]["u"] - slow.messages[0]["u"]
    m.run(100, actions_per_tick=0)  # flushes the last window
    count = len(fast.messages)
    m.run(500, actions_per_tick=0)  # nothing changes: no event
    assert len(fast.messages) == count


def test_first_diff_starts_right_after_a_snapshot_id() -> None:
    m = Market()
    m.run(1000)
    snapshot = m.exchange.depth_snapshot("BTCUSDT", 5000)
    c = m.listen("btcusdt@depth@100ms")
    m.run(500)
    assert c.messages[0]["U"] <= snapshot["lastUpdateId"] + 1
    kept = [e for e in c.messages if e["u"] > snapshot["lastUpdateId"]]  # PROTOCOL 5.1 step 4
    assert kept[0]["U"] <= snapshot["lastUpdateId"] + 1 <= kept[0]["u"]


def test_book_ticker_is_the_top_of_book_at_its_update_id() -> None:
    m = Market()
    book = m.exchange.symbols["BNBBTC"]
    seen: list[tuple[dict[str, Any], int, Any, Any]] = []

    class TopCheck(Collector):
        def send(self, frame: bytes) -> None:
            seen.append((orjson.loads(frame), book.update_id, book.best_bid(), book.best_ask()))

    m.hub.attach("bnbbtc@bookTicker", TopCheck())
    m.run(1000)
    assert len(seen) > 10
    for payload, update_id, bid, ask in seen:
        assert payload["u"] == update_id
        assert (payload["b"], payload["B"], payload["a"], payload["A"]) == (
            fmt(bid[0]), fmt(bid[1]), fmt(ask[0]), fmt(ask[1]))
    tops = [(p["b"], p["B"], p["a"], p["A"]) for p, *_ in seen]
    assert all(a != b for a, b in pairwise(tops))  # only on a change of the top


def test_kline_bars_push_on_cadence_and_close_with_x_true() -> None:
    m = Market()
    one_s = m.listen("btcusdt@kline_1s")
    day8 = m.listen("btcusdt@kline_1d@+08:00")
    m.run(3500, actions_per_tick=6)
    closed = [k["k"] for k in one_s.messages if k["k"]["x"]]
    assert len(closed) >= 2
    for bar in closed:
        assert bar["T"] == bar["t"] + 999 and bar["t"] % 1000 == 0
        rest = m.exchange.klines("BTCUSDT", "1s", 1, start_time=bar["t"], end_time=bar["T"])
        if bar["n"]:
            assert rest[0][1:6] == [bar["o"], bar["h"], bar["l"], bar["c"], bar["v"]]
            assert bar["L"] - bar["f"] + 1 == bar["n"]
    opens = [k["k"]["t"] for k in one_s.messages]
    assert opens == sorted(opens)
    pushes = [k["E"] for k in one_s.messages if not k["k"]["x"]]
    assert all(b - a > 500 for a, b in pairwise(pushes))
    d = day8.messages[-1]["k"]
    assert (d["t"] + 8 * 3_600_000) % 86_400_000 == 0 and d["T"] == d["t"] + 86_400_000 - 1
    assert d["n"] >= closed[0]["n"] and not d["x"]
    pushes8 = [k["E"] for k in day8.messages]
    assert all(b - a > 1000 for a, b in pairwise(pushes8))


def test_a_bar_without_trades_opens_at_the_previous_close() -> None:
    m = Market()
    c = m.listen("ethusdt@kline_1s")
    m.run(1200)
    m.run(2200, actions_per_tick=0)
    last = c.messages[-1]["k"]
    assert last["n"] == 0 and last["v"] == "0.00000000" and (last["f"], last["L"]) == (-1, -1)
    assert last["o"] == last["c"] == fmt(m.exchange.symbols["ETHUSDT"].last_price)


def test_tickers_report_window_statistics() -> None:
    m = Market(flow_rate=0.0)
    c = m.listen("bnbbtc@ticker", "bnbbtc@miniTicker", "!miniTicker@arr", "bnbbtc@avgPrice")
    m.run(1100, actions_per_tick=0)
    book = m.exchange.symbols["BNBBTC"]
    bid = book.best_bid()
    assert bid is not None
    m.exchange.place_order("BNBBTC", "SELL", "MARKET", "0.5")
    m.run(1100, actions_per_tick=0)
    ticker = [x for x in c.messages if isinstance(x, dict) and x["e"] == "24hrTicker"][-1]
    trades = m.exchange.trades("BNBBTC", 1000)
    assert ticker["c"] == trades[-1]["price"] and ticker["Q"] == trades[-1]["qty"]
    assert (ticker["F"], ticker["L"], ticker["n"]) == (trades[0]["id"], trades[-1]["id"], len(trades))
    assert ticker["v"] == fmt(sum(round(float(t["qty"]) * 1e8) for t in trades))
    assert ticker["h"] == max(t["price"] for t in trades) and ticker["l"] == min(t["price"] for t in trades)
    assert ticker["o"] == trades[0]["price"]
    arrays = [x for x in c.messages if isinstance(x, list)]
    # Only the symbol that traded is in the array, and only in the second after it traded.
    assert len(arrays) == 1 and [x["s"] for x in arrays[0]] == ["BNBBTC"]
    avg = [x for x in c.messages if isinstance(x, dict) and x["e"] == "avgPrice"][-1]
    assert avg["i"] == "5m" and avg["T"] == trades[-1]["time"]
    low, high = float(ticker["l"]), float(ticker["h"])
    assert low <= float(avg["w"]) <= high


async def test_streams_over_real_sockets(sim: Simulator) -> None:
    raw = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    combined = await connect(f"{sim.stream_url}/stream?streams=ethusdt@depth@100ms/ethusdt@bookTicker"
                             "/ethusdt@kline_1s&timeUnit=MICROSECOND")
    try:
        await raw.wait_for(lambda: len(raw.messages()) >= 3)

        def kinds() -> set[str]:
            return {m["stream"] for m in combined.messages()}

        await combined.wait_for(lambda: len(kinds()) == 3)
        for msg in raw.messages():
            check_shape(msg)
            assert msg["s"] == "BTCUSDT"
        for msg in combined.messages():
            data = msg["data"]
            check_shape(data)
            if "E" in data:
                assert data["E"] > 10**15  # microseconds
        depth = [m["data"] for m in combined.messages() if m["stream"] == "ethusdt@depth@100ms"]
        for prev, cur in pairwise(depth):
            assert cur["U"] == prev["u"] + 1
    finally:
        raw.close()
        combined.close()


async def test_server_refuses_what_feeds_do_not_serve() -> None:
    for legacy in (False, True):
        async with Simulator(legacy_streams=legacy) as sim:
            client = await connect(f"{sim.stream_url}/ws")
            try:
                ok = await client.request({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1d@+08:00"],
                                           "id": 1})
                assert ok == {"result": None, "id": 1}
                retired = await client.request({"method": "SUBSCRIBE", "params": ["!ticker@arr"], "id": 2})
                bad = await client.request({"method": "SUBSCRIBE", "params": ["btcusdt@depth7"], "id": 3})
                assert "error" in bad
                assert ("error" in retired) is not legacy
            finally:
                client.close()
