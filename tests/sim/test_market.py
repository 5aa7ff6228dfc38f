"""A market shaped like Binance's (SimConfig.market, ``binance-ws sim --symbols N``): generated symbols,
heavy-tailed activity, quiet books that push no diffs (PROTOCOL 4.12) while partial depth keeps its
cadence (4.11), over real sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import statistics
import subprocess
import sys
import time
from itertools import pairwise
from typing import Any

import aiohttp
import orjson
import pytest
from picows import WSFrame, WSMsgType, WSTransport, ws_connect

from binance_ws.sim import Simulator
from binance_ws.sim.config import (
    DEFAULT_SYMBOLS,
    MAX_SYMBOLS,
    Activity,
    SimConfig,
    generate_symbols,
    named_symbols,
)
from binance_ws.sim.exchange import SCALE, fmt
from tests.sim._client import RawClient
from tests.sim.test_feeds import Market
from tests.sim_process import printed_lines

#: Binance's symbol pattern (spot exchangeInfo / error -1100 text).
SYMBOL = re.compile(r"^[A-Z0-9\-_.]{1,20}$")


class TimedClient(RawClient):
    """Also notes when each text frame arrived (partial depth carries no event time)."""

    def __init__(self) -> None:
        super().__init__()
        self.timed: list[tuple[float, dict[str, Any]]] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            self.timed.append((time.monotonic(), orjson.loads(frame.get_payload_as_bytes())))
        super().on_ws_frame(transport, frame)

    def on(self, stream: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m["data"]) for t, m in self.timed if m.get("stream") == stream]


# -- the generated market, without sockets -----------------------------------------------------------------
def test_activity_is_heavy_tailed_and_deterministic_by_seed() -> None:
    rates = Activity().rates(MAX_SYMBOLS, seed=1)
    ranked = sorted(rates, reverse=True)
    # The busiest few act every few milliseconds ...
    assert ranked[2] > 100.0 and ranked[0] <= Activity().max_rate
    # ... most a few times a minute ...
    assert 1 / 60 < statistics.median(rates) < 10 / 60
    # ... and some stay silent for minutes: under one action in 5 minutes on average.
    assert sum(r < 1 / 300 for r in rates) > MAX_SYMBOLS // 20
    assert sum(r < 1 / 3600 for r in rates) > 0
    assert Activity().rates(MAX_SYMBOLS, seed=1) == rates
    assert Activity().rates(MAX_SYMBOLS, seed=2) != rates


def test_generated_symbols_are_valid_binance_symbols_with_workable_filters() -> None:
    specs = generate_symbols(MAX_SYMBOLS, seed=3)
    names = [s.symbol for s in specs]
    assert names[0] == "SYM0001USDT" and names[-1] == "SYM2000USDT"
    assert len(set(names)) == MAX_SYMBOLS and all(SYMBOL.match(n) for n in names)
    for s in specs:
        tick, step = float(s.tick_size), float(s.step_size)
        assert s.symbol == s.base + s.quote and s.quote == "USDT"
        assert 1e-8 <= tick <= s.price / 1000  # at least 1,000 ticks to the price
        assert round(s.price / tick, 6).is_integer()
        # The minimum notional (5 USDT) is a handful of steps or more, never a fraction of one.
        assert step * s.price < float(s.min_notional)
    assert generate_symbols(MAX_SYMBOLS, seed=3) == specs
    assert [s.price for s in generate_symbols(10, seed=4)] != [s.price for s in specs[:10]]


@pytest.mark.parametrize("count", [0, -1, MAX_SYMBOLS + 1])
def test_market_refuses_a_symbol_count_out_of_range(count: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 2000"):
        SimConfig.market(count)


def test_compressed_divides_every_market_period_and_keeps_client_limits() -> None:
    base = SimConfig.market(10)
    fast = base.compressed(1000)
    assert fast.time_scale == 1000
    for name in ("depth_fast_s", "depth_s", "ticker_s", "kline_s", "ping_interval_s", "pong_timeout_s",
                 "connection_lifetime_s"):
        assert getattr(fast, name) == pytest.approx(getattr(base, name) / 1000), name
    assert fast.connection_lifetime_s == pytest.approx(86.4)  # a week of daily disconnects in ~10 min
    for name in ("max_incoming_per_second", "max_connections_per_window", "connection_window_s",
                 "rest_weight_limit", "rest_weight_window_s", "flow_rate", "activity", "symbols"):
        assert getattr(fast, name) == getattr(base, name), name
    assert fast.compressed(2).time_scale == 2000
    with pytest.raises(ValueError):
        base.compressed(0)


def test_compressed_cadences_are_the_ones_the_feeds_push_at() -> None:
    # 10 simulated seconds at 4x: partial depth every 250 ms, tickers every 250 ms, 1m klines every 500 ms.
    cfg = SimConfig().compressed(4)
    m = Market(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)})
    c = {s: m.listen(s) for s in ("btcusdt@depth5", "btcusdt@depth5@100ms", "btcusdt@ticker",
                                  "btcusdt@kline_1m", "btcusdt@kline_1s")}
    m.run(10_000, actions_per_tick=0)
    # (A kline bar that closes also gets its x: true push, on the real 1 s / 1 min boundary: not counted.)
    counts = {s: sum(not m.get("k", {}).get("x") for m in col.messages) for s, col in c.items()}
    expected = {"btcusdt@depth5": 40, "btcusdt@depth5@100ms": 400, "btcusdt@ticker": 40,
                "btcusdt@kline_1m": 20, "btcusdt@kline_1s": 40}
    # The clock is wall time plus the steps, so the run lasts a little over 10 s: one more push may fit.
    assert all(expected[s] <= n <= expected[s] + 1 for s, n in counts.items()), counts


# -- over real sockets ---------------------------------------------------------------------------------------
async def timed_connect(sim: Simulator, streams: list[str]) -> TimedClient:
    _, client = await ws_connect(TimedClient, f"{sim.stream_url}/stream?streams=" + "/".join(streams),
                                 enable_auto_pong=False)
    assert isinstance(client, TimedClient)
    return client


def gaps(timed: list[tuple[float, Any]]) -> list[float]:
    return [t2 - t1 for (t1, _), (t2, _) in pairwise(timed)]


async def test_quiet_symbol_pushes_no_diff_while_its_partial_depth_keeps_cadence() -> None:
    cfg = SimConfig.market(200, seed=1)
    rates = cfg.symbol_rates()
    quiet = min(rates, key=rates.__getitem__)
    busy = max(rates, key=rates.__getitem__)
    assert rates[quiet] < 1e-3 and rates[busy] > 10  # ~17 min between actions vs several a second
    q, b = quiet.lower(), busy.lower()
    streams = [f"{q}@depth@100ms", f"{q}@depth", f"{q}@depth5@100ms", f"{q}@depth10", f"{b}@depth@100ms"]
    async with Simulator(cfg) as sim:
        book = sim.exchange.symbols[quiet]
        before = book.update_id
        client = await timed_connect(sim, streams)
        await asyncio.sleep(2.5)
        assert book.update_id == before, "the flow touched the quiet book: pick a quieter symbol"
        # Then change the quiet book by hand: both diff streams must say so, and only that.
        price = book.bid_keys[-1] - 5 * book.tick  # in units, five ticks under the best bid
        qty = book.step * -(-6 * SCALE * SCALE // (price * book.step))  # over the 5 USDT minimum
        sim.exchange.place_order(quiet, "BUY", "LIMIT", fmt(qty), fmt(price))
        level = [fmt(price), fmt(book.bids[price].qty)]
        await client.wait_for(lambda: bool(client.on(f"{q}@depth")), 3.0)
        client.close()
    for stream in (f"{q}@depth@100ms", f"{q}@depth"):
        diffs = [m for _, m in client.on(stream)]
        assert len(diffs) == 1, (stream, diffs)
        assert (diffs[0]["U"], diffs[0]["u"]) == (before + 1, before + 1)
        assert diffs[0]["b"] == [level] and diffs[0]["a"] == []
    # The busy symbol on the same connection did push meanwhile: the flow was running.
    assert len(client.on(f"{b}@depth@100ms")) >= 10
    # Partial depth is a snapshot on a cadence (PROTOCOL 4.11): every 100 ms / 1000 ms, book changed or not.
    fast = [(t, m) for t, m in client.on(f"{q}@depth5@100ms") if m["lastUpdateId"] == before]
    slow = [(t, m) for t, m in client.on(f"{q}@depth10") if m["lastUpdateId"] == before]
    assert len(fast) >= 18 and len(slow) >= 2
    assert 0.08 < statistics.median(gaps(fast)) < 0.13
    assert all(0.7 < g < 1.4 for g in gaps(slow))  # a push may come a driver tick late
    assert all(len(m["bids"]) == len(m["asks"]) == 5 for _, m in fast)


async def test_activity_over_sockets_is_heavy_tailed() -> None:
    # Arrange: every symbol's diff depth on one connection (1,000 streams, under the 1,024 limit)
    cfg = SimConfig.market(1000, seed=1)
    rates = cfg.symbol_rates()
    async with Simulator(cfg) as sim:
        client = await timed_connect(sim, [])
        reply = await client.request({"method": "SUBSCRIBE", "id": 1,
                                      "params": [f"{s.lower()}@depth@100ms" for s in rates]})
        assert reply == {"result": None, "id": 1}
        # Act: a 5 s window of the market
        start = len(client.timed)
        await asyncio.sleep(5.0)
        window = client.timed[start:]
        client.close()
    # Assert: book updates per symbol, counted from the diffs' ids (not capped by the 100 ms cadence)
    updates = dict.fromkeys(rates, 0)
    for _, msg in window:
        data = msg["data"]
        updates[data["s"]] += data["u"] - data["U"] + 1
    ranked = sorted(updates.values(), reverse=True)
    total = sum(ranked)
    assert total > 0
    # Some symbols many events: the busiest act hundreds of times in 5 s, and the top 1% (10 symbols)
    # make most of the market, where a uniform flow would give them 1%.
    assert ranked[0] > 500 and sum(ranked[:10]) > total // 2
    # Many symbols few: one to ten updates.
    assert sum(1 <= n <= 10 for n in ranked) > 100
    # Some none at all in the window.
    assert sum(n == 0 for n in ranked) > 300
    # And who is busy follows the configured rates.
    busiest = max(updates, key=updates.__getitem__)
    assert busiest in sorted(rates, key=rates.__getitem__)[-5:]


async def test_exchange_info_lists_every_symbol_and_rest_depth_serves_a_generated_one() -> None:
    cfg = SimConfig.market(MAX_SYMBOLS, seed=5)
    rates = cfg.symbol_rates()
    quiet, busy = min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)
    async with Simulator(cfg) as sim, aiohttp.ClientSession() as http:
        async with http.get(f"{sim.rest_url}/api/v3/exchangeInfo") as resp:
            assert resp.status == 200
            info = await resp.json()
        depth = {}
        for symbol in (quiet, busy):
            async with http.get(f"{sim.rest_url}/api/v3/depth?symbol={symbol}&limit=20") as resp:
                assert resp.status == 200
                depth[symbol] = await resp.json()
        ids = {s: sim.exchange.symbols[s].update_id for s in (quiet, busy)}
    listed = {s["symbol"]: s for s in info["symbols"]}
    assert len(info["symbols"]) == len(listed) == MAX_SYMBOLS
    assert list(listed) == [s.symbol for s in cfg.symbols]
    for spec in cfg.symbols:
        entry = listed[spec.symbol]
        assert (entry["status"], entry["baseAsset"], entry["quoteAsset"]) == ("TRADING", spec.base, "USDT")
        filters = {f["filterType"]: f for f in entry["filters"]}
        assert filters["PRICE_FILTER"]["tickSize"] == spec.tick_size
        assert filters["LOT_SIZE"]["stepSize"] == spec.step_size
        assert filters["NOTIONAL"]["minNotional"] == spec.min_notional
    for symbol, book in depth.items():
        assert 0 < book["lastUpdateId"] <= ids[symbol]
        assert len(book["bids"]) == len(book["asks"]) == 20
        bids = [float(p) for p, _ in book["bids"]]
        asks = [float(p) for p, _ in book["asks"]]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
        tick = float(listed[symbol]["filters"][0]["tickSize"])
        assert all(round(p / tick, 4).is_integer() for p in bids + asks)
    # The quiet book is still the one the simulator seeded; the busy one has moved on.
    assert depth[quiet]["lastUpdateId"] == ids[quiet] and ids[busy] > ids[quiet]


# -- binance-ws sim --symbols ------------------------------------------------------------------------------
_SIM = [sys.executable, "-m", "binance_ws.cli", "sim", "--stream-port", "0", "--rest-port", "0"]


@pytest.mark.parametrize(("args", "message"), [
    (["--symbols", "0"], "error: --symbols must be between 1 and 2000, not 0"),
    (["--symbols", "5000"], "error: --symbols must be between 1 and 2000, not 5000"),
    (["--symbols", "10", "--time-scale", "0"], "error: --time-scale must be > 0, not 0.0"),
    (["--symbols", "BTCUSDT,XRP-USDT"], "error: --symbols: cannot list 'XRP-USDT': a symbol is a base asset "
                                        "followed by one of FDUSD, USDT, USDC, BTC, ETH, BNB (e.g. XRPUSDT)"),
])
def test_sim_command_refuses_bad_input_in_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run([*_SIM, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [message]
    assert proc.stdout == ""


async def test_sim_command_serves_2000_symbols() -> None:
    proc = await asyncio.create_subprocess_exec(*_SIM, "--symbols", "2000", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        lines = await printed_lines(proc.stdout)
        assert lines["symbols"] == "2000: SYM0001USDT SYM0002USDT SYM0003USDT ... SYM2000USDT"
        rest_url = lines["REST"].split()[0]
        stream_url = lines["streams"].split()[0].removesuffix("/ws/<stream>")
        async with aiohttp.ClientSession() as http, http.get(rest_url) as resp:
            assert resp.status == 200
            assert len((await resp.json())["symbols"]) == 2000
        _, client = await ws_connect(TimedClient, f"{stream_url}/stream?streams=sym1999usdt@depth5@100ms",
                                     enable_auto_pong=False)
        assert isinstance(client, TimedClient)
        await client.wait_for(lambda: len(client.timed) >= 3)
        client.close()
        assert all(len(m["data"]["bids"]) == 5 for _, m in client.timed)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


# -- binance-ws sim --symbols NAME,NAME ---------------------------------------------------------------------
def test_named_symbols_keep_the_defaults_and_fit_filters_to_their_quote() -> None:
    specs = named_symbols(["neobtc", "XRPUSDT", "ADABTC"], seed=3)
    assert [s.symbol for s in specs] == ["NEOBTC", "XRPUSDT", "ADABTC"]
    assert specs[0] == next(d for d in DEFAULT_SYMBOLS if d.symbol == "NEOBTC")
    xrp, ada = specs[1:]
    assert (xrp.base, xrp.quote, ada.base, ada.quote) == ("XRP", "USDT", "ADA", "BTC")
    assert named_symbols(["XRPUSDT"], seed=3) == (xrp,)  # deterministic by seed and name
    for spec, min_notional in ((xrp, 5.0), (ada, 5.0 / 61_800)):
        price, tick, step = spec.price, float(spec.tick_size), float(spec.step_size)
        assert round(price / tick, 6).is_integer() and 1_000 <= price / tick < 100_000
        assert float(spec.min_notional) == pytest.approx(min_notional, abs=1e-8)
        assert 1 < min_notional / (price * step) <= 1000  # the minimum order is a handful of steps
    with pytest.raises(ValueError, match="named twice"):
        named_symbols(["XRPUSDT", "xrpusdt"])


async def test_sim_command_serves_named_symbols() -> None:
    proc = await asyncio.create_subprocess_exec(
        *_SIM, "--symbols", "BTCUSDT,XRPUSDT", "--no-demo-account", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        lines = await printed_lines(proc.stdout, "try")
        assert lines["symbols"] == "BTCUSDT XRPUSDT"
        stream_url = lines["streams"].split()[0].removesuffix("/ws/<stream>")
        _, client = await ws_connect(TimedClient, f"{stream_url}/stream?streams=xrpusdt@trade",
                                     enable_auto_pong=False)
        assert isinstance(client, TimedClient)
        await client.wait_for(lambda: len(client.timed) >= 2)
        client.close()
        assert {m["data"]["s"] for _, m in client.timed} == {"XRPUSDT"}
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
