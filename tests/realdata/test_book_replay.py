"""Real Binance traffic into the books: they must agree with Binance's own bookTicker.

First without sockets: the recordings (tests/data, README there) are fed to the sync
machine in recorded order, the REST snapshots answered when the recording shows them. Then the same
recordings served by the simulator (stream server and REST) into :class:`DepthCacheManager` over loopback.
Every bookTicker whose ``u`` equals the book's update id is compared here, independently of the machine's
own check, with the book's best levels.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from binance_ws.core.book import BookState, DepthCache
from binance_ws.core.booksync import REASON_DEPTH, BookStale, BookSync, FetchSnapshot
from binance_ws.depthcache import DepthCacheManager
from binance_ws.engine import AsyncSocketManager
from binance_ws.markets import SPOT, USDM, SequenceRule
from binance_ws.sim import Simulator
from binance_ws.sim.replay import Replay
from tests.paths import RECORDINGS


@dataclass
class Outcome:
    """What happened to one symbol's book over a replay."""

    sync: BookSync
    ticker_matches: int = 0
    ticker_mismatches: list[tuple[dict[str, Any], Any, Any]] = field(default_factory=list)
    stale_reasons: list[str] = field(default_factory=list)
    requested: int = 0


def _compare(out: Outcome, ticker: dict[str, Any]) -> None:
    cache = out.sync.cache
    bid, ask = cache.best_bid(), cache.best_ask()
    assert bid is not None and ask is not None
    if (bid[0], bid[1], ask[0], ask[1]) == (float(ticker["b"]), float(ticker["B"]), float(ticker["a"]),
                                            float(ticker["A"])):
        out.ticker_matches += 1
    else:
        out.ticker_mismatches.append((ticker, bid, ask))


Messages = Iterator[tuple[str, dict[str, Any]]]


def replay(messages: Messages, rule: SequenceRule, limit: int) -> dict[str, Outcome]:
    """Feed ``(kind, payload)`` messages (kind: depth, ticker, snapshot:<SYMBOL>) to one BookSync a symbol."""
    outcomes: dict[str, Outcome] = {}
    waiting: dict[str, dict[int, dict[str, Any]]] = {}  # tickers ahead of the book, by u

    def book(symbol: str) -> Outcome:
        if symbol not in outcomes:
            outcomes[symbol] = Outcome(BookSync(symbol, rule=rule, limit=limit))
            waiting[symbol] = {}
        return outcomes[symbol]

    def handle(out: Outcome, actions: Any) -> None:
        for action in actions:
            if isinstance(action, FetchSnapshot):
                out.requested += 1
            elif isinstance(action, BookStale):
                out.stale_reasons.append(action.reason)

    for kind, data in messages:
        if kind.startswith("snapshot:"):
            out = book(kind.split(":", 1)[1])
            handle(out, out.sync.on_snapshot(data, 0.0))
        elif kind == "depth":
            out = book(data["s"])
            handle(out, out.sync.on_diff(data, 0.0))
        else:
            out = book(data["s"])
            handle(out, out.sync.on_book_ticker(data, 0.0))
            if out.sync.state is BookState.SYNCED and data["u"] > out.sync.cache.update_id:
                waiting[data["s"]][data["u"]] = data
        sync = out.sync
        if sync.state is BookState.SYNCED:
            ticker = data if kind == "ticker" and data["u"] == sync.cache.update_id else \
                waiting[sync.symbol].pop(sync.cache.update_id, None)
            if ticker is not None:
                _compare(out, ticker)
    return outcomes


def hftbacktest(name: str) -> Messages:
    """``<ns> <json>`` lines; the one bare REST body is the snapshot of the file's only symbol."""
    symbol = ""
    with gzip.open(RECORDINGS / name) as f:
        for line in f:
            msg = orjson.loads(line.split(b" ", 1)[1])
            if "lastUpdateId" in msg:
                yield f"snapshot:{symbol}", msg
                continue
            data = msg["data"]
            symbol = data["s"]
            if "@depth" in msg["stream"]:
                yield "depth", data
            elif msg["stream"].endswith("@bookTicker"):
                yield "ticker", data


def cryptofeed(prefix: str) -> Messages:
    """Stream lines and REST snapshots merged by their recorded receive times."""
    timed: list[tuple[float, int, str, dict[str, Any]]] = []
    for n, line in enumerate((RECORDINGS / f"{prefix}.http.0.0").read_text().splitlines()):
        if line.strip():
            url, rest = line.split(" -> ", 1)
            ts, body = rest.split(": ", 1)
            symbol = re.search(r"symbol=(\w+)", url).group(1)  # type: ignore[union-attr]
            timed.append((float(ts), n, f"snapshot:{symbol}", orjson.loads(body)))
    lines = (RECORDINGS / f"{prefix}.ws.1.0").read_text().splitlines()
    for n, line in enumerate(lines[1:]):
        if line.strip():
            ts, body = line.split(": ", 1)
            msg = orjson.loads(body)
            stream = msg["stream"]
            kind = "depth" if "@depth" in stream else "ticker" if stream.endswith("@bookTicker") else ""
            if kind:
                timed.append((float(ts), n, kind, msg["data"]))
    timed.sort(key=lambda t: (t[0], t[1]))
    for _, _, kind, data in timed:
        yield kind, data


def _diffs_after_snapshot(name: str) -> int:
    """How many of the file's diff events end after its snapshot: all of them apply to a book never lost."""
    last_update_id, count = None, 0
    for kind, data in hftbacktest(name):
        if kind.startswith("snapshot:"):
            last_update_id = data["lastUpdateId"]
        elif kind == "depth" and last_update_id is not None and data["u"] > last_update_id:
            count += 1
    return count


# (file, bookTickers the book must meet at least, diff events it must apply at least) for the starts of the
# captures in tests/data: BTCUSDT 3,092 diffs, ETHUSDT 1,142 (tests/data/README.md).
SPOT_HFT = [("spot_btcusdt_20240808.hftbacktest.gz", 400, 2400),
            ("spot_ethusdt_20240808.hftbacktest.gz", 150, 1100)]


@pytest.mark.parametrize(("name", "min_matches", "min_applied"), SPOT_HFT)
def test_hftbacktest_spot_book_agrees_with_every_book_ticker(name: str, min_matches: int,
                                                            min_applied: int) -> None:
    # The recorded snapshot holds 1000 levels a side: it was taken with limit=1000.
    (out,) = replay(hftbacktest(name), SPOT.sequence_rule, 1000).values()
    stats = out.sync.stats
    assert out.ticker_mismatches == []
    assert out.ticker_matches > min_matches
    assert (stats.gaps, stats.crossed, stats.ticker_mismatches) == (0, 0, 0)
    assert stats.applied > min_applied
    # BTCUSDT fell more than the snapshot's 1000 bid levels cover (about $200) within minutes: the book
    # says so instead of showing bids it cannot know. The recording has no second snapshot to resync with.
    assert set(out.stale_reasons) <= {REASON_DEPTH}
    if not out.stale_reasons:
        assert out.sync.state is BookState.SYNCED
        assert stats.applied == _diffs_after_snapshot(name)


def test_hftbacktest_usdm_book_agrees_with_every_book_ticker() -> None:
    # tests/data holds the first 12,000 lines (901 diff events) of the USD-M capture.
    (out,) = replay(hftbacktest("usdm_btcusdt_20240808.hftbacktest.gz"), USDM.sequence_rule, 1000).values()
    stats = out.sync.stats
    assert out.ticker_mismatches == []
    assert out.ticker_matches > 80
    assert (stats.gaps, stats.crossed, stats.ticker_mismatches) == (0, 0, 0)
    assert set(out.stale_reasons) <= {REASON_DEPTH}


@pytest.mark.parametrize(("prefix", "rule", "symbols"), [
    ("cryptofeed_BINANCE", SPOT.sequence_rule, {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}),
    ("cryptofeed_BINANCE_FUTURES", USDM.sequence_rule, {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}),
])
def test_cryptofeed_recordings_sync_every_symbol_without_a_gap(prefix: str, rule: SequenceRule,
                                                               symbols: set[str]) -> None:
    outcomes = replay(cryptofeed(prefix), rule, 1000)  # the .http URLs ask for limit=1000
    assert set(outcomes) == symbols
    for symbol, out in outcomes.items():
        stats = out.sync.stats
        assert out.sync.state is BookState.SYNCED, symbol
        assert out.stale_reasons == [], symbol
        assert out.requested == 1, symbol  # one snapshot each: never a resync
        assert (stats.gaps, stats.resyncs, stats.crossed, stats.ticker_mismatches) == (0, 0, 0, 0), symbol
        assert out.ticker_mismatches == [], symbol
    assert sum(out.ticker_matches for out in outcomes.values()) > 0


# -- the same recordings served by the simulator, into DepthCacheManager over loopback ---------------------
class TickerWatch:
    """Compares every bookTicker with the book when their update ids meet, outside the sync machine."""

    def __init__(self, dcm: DepthCacheManager) -> None:
        self.dcm = dcm
        self.waiting: dict[tuple[str, int], dict[str, Any]] = {}
        self.matches = 0
        self.mismatches: list[tuple[dict[str, Any], Any, Any]] = []

    def _compare(self, cache: DepthCache, ticker: dict[str, Any]) -> None:
        bid, ask = cache.best_bid(), cache.best_ask()
        got = (bid[0], bid[1], ask[0], ask[1]) if bid is not None and ask is not None else None
        if got == (float(ticker["b"]), float(ticker["B"]), float(ticker["a"]), float(ticker["A"])):
            self.matches += 1
        else:
            self.mismatches.append((ticker, bid, ask))

    def on_ticker(self, ticker: dict[str, Any]) -> None:
        if ticker.get("e") == "error":
            return
        cache = self.dcm.get_depth_cache(ticker["s"])
        if cache.state is BookState.SYNCED and ticker["u"] == cache.update_id:
            self._compare(cache, ticker)
        elif ticker["u"] > cache.update_id:
            self.waiting[(ticker["s"], ticker["u"])] = ticker

    def on_book(self, cache: DepthCache) -> None:
        ticker = self.waiting.pop((cache.symbol, cache.update_id), None)
        if ticker is not None and cache.state is BookState.SYNCED:
            self._compare(cache, ticker)


async def _replay_through_simulator(path: Path, symbols: list[str], *, futures: bool = False,
                                    speed: float = 0.0) -> tuple[DepthCacheManager, TickerWatch]:
    # The pass starts with the first subscriber (the depth cache's diff streams); at speed 0 a short
    # capture could be over before the book tickers are subscribed, so short ones play at a pace.
    replay = Replay(path, speed=speed)
    async with Simulator(replay=replay, flow_rate=0.0) as sim:
        market = sim.market
        if futures:
            # The simulator serves its REST on spot paths only: keep them, but sequence by PROTOCOL 5.2
            # (pu chains) with the futures snapshot sizes, as a USD-M client does.
            market = dataclasses.replace(market, name="usdm-rules-local", sequence_rule=USDM.sequence_rule,
                                         max_depth_limit=USDM.max_depth_limit)
        async with AsyncSocketManager(market=market, no_data_timeout=0) as sm:
            return await _run_books(replay, sm, symbols)


async def _run_books(replay: Replay, sm: AsyncSocketManager, symbols: list[str]
                     ) -> tuple[DepthCacheManager, TickerWatch]:
    holder: list[TickerWatch] = []
    # Real-time streams at full speed: a buffer large enough to hold them while the snapshot comes.
    dcm = DepthCacheManager(sm, symbols, limit=1000, max_buffer=5000,
                            callback=lambda cache: holder[0].on_book(cache))
    watch = TickerWatch(dcm)
    holder.append(watch)
    async with dcm:
        await sm.subscribe([f"{s.lower()}@bookTicker" for s in symbols], watch.on_ticker)
        await asyncio.wait_for(replay.done.wait(), 60)
        await asyncio.sleep(0.2)  # the last frames are in flight
    return dcm, watch


@pytest.mark.parametrize(("name", "min_matches", "min_applied"), SPOT_HFT)
async def test_hftbacktest_spot_replayed_by_the_simulator_agrees_with_every_book_ticker(
        name: str, min_matches: int, min_applied: int) -> None:
    symbol = name.split("_")[1].upper()
    dcm, watch = await _replay_through_simulator(RECORDINGS / name, [symbol])
    stats = dcm.stats(symbol)
    assert watch.mismatches == []
    assert watch.matches > min_matches * 3 // 4
    assert (stats.gaps, stats.crossed, stats.ticker_mismatches, stats.overflows) == (0, 0, 0, 0)
    # As in the pure replay: BTCUSDT outruns its 1000-level snapshot and says so (the recording's only
    # snapshot is too old to resync with); ETHUSDT stays synced throughout.
    assert stats.resyncs == stats.depth_exhausted <= 1
    assert stats.applied > min_applied


@pytest.mark.parametrize(("name", "symbols", "futures"), [
    ("cryptofeed_BINANCE.ws.1.0", ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"], False),
    ("cryptofeed_BINANCE_FUTURES.ws.1.0", ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"], True),
])
async def test_cryptofeed_replayed_by_the_simulator_syncs_every_symbol_without_a_gap(
        name: str, symbols: list[str], futures: bool) -> None:
    dcm, watch = await _replay_through_simulator(RECORDINGS / name, symbols, futures=futures, speed=20.0)
    assert watch.mismatches == []
    if futures:
        assert watch.matches > 20
    for symbol in symbols:
        stats = dcm.stats(symbol)
        assert stats.snapshots_requested == 1, symbol
        assert (stats.gaps, stats.resyncs, stats.ticker_mismatches) == (0, 0, 0), symbol
        assert stats.applied >= 1, symbol
