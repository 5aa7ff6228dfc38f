"""DepthCacheManager against the simulator over loopback: books equal the engine's, faults resync only the
symbol they hit, continuity across drops, failing and rate-limited snapshots, 500 symbols on one budget.

Most tests run the simulator's order flow by hand (``flow_rate=0``, ``sim.step``) and record the engine's
book after every step, so that any synced book can be compared with the engine's book at the book's own
update id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_ws import errors
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.core.book import BookState, DepthCache
from binance_ws.depthcache import DepthCacheManager, SnapshotService, value_type_for
from binance_ws.engine import AsyncSocketManager
from binance_ws.sim import Simulator
from binance_ws.sim.config import DEFAULT_SYMBOLS, SymbolSpec
from tests.engine._util import until

SYMBOLS = [spec.symbol for spec in DEFAULT_SYMBOLS]  # BTCUSDT ETHUSDT BNBBTC

Levels = list[tuple[float, float]]


class Engine:
    """The simulator driven by hand, with the engine's book recorded at every update id we stop at."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.history: dict[tuple[str, int], tuple[Levels, Levels]] = {}
        #: What check() found wrong (it runs inside the manager's callback, which must not raise).
        self.violations: list[str] = []
        self.record()

    def record(self) -> None:
        for symbol in self.sim.exchange.symbols:
            bids, asks = self.sim.exchange.book_levels(symbol)
            self.history[(symbol, self.update_id(symbol))] = (
                sorted(((float(p), float(q)) for p, q in bids.items()), reverse=True),
                sorted((float(p), float(q)) for p, q in asks.items()))

    def update_id(self, symbol: str) -> int:
        return self.sim.exchange.book(symbol).update_id

    def step(self, actions: int = 3) -> None:
        self.sim.step(actions)
        self.record()

    def check(self, book: DepthCache) -> None:
        """A synced book is the engine's book at the book's update id."""
        if book.state is not BookState.SYNCED:
            return
        truth = self.history.get((book.symbol, book.update_id))
        if truth is None:
            self.violations.append(f"{book.symbol} synced at {book.update_id}, an id the engine never had")
        elif (book.get_bids(), book.get_asks()) != truth:
            self.violations.append(f"{book!r} differs from the engine at its update id")

    async def caught_up(self, dcm: DepthCacheManager, timeout: float = 5.0, *, moving: bool = False) -> None:
        """Wait until every book is synced at the engine's current update id, then compare them.

        ``moving`` keeps the market moving meanwhile (a step every 0.3 s): a book that went stale only
        resyncs from the next event on its stream (PROTOCOL 5.1 step 1).
        """
        def done() -> bool:
            return all(dcm.get_depth_cache(s).state is BookState.SYNCED
                       and dcm.get_depth_cache(s).update_id == self.update_id(s) for s in dcm.symbols)
        deadline = time.monotonic() + timeout
        while moving and not done() and time.monotonic() < deadline:
            self.step()
            with contextlib.suppress(AssertionError):
                await until(done, 0.3)
        await until(done, max(0.0, deadline - time.monotonic()), "books synced at the engine's update id")
        for symbol in dcm.symbols:
            self.check(dcm.get_depth_cache(symbol))
        assert self.violations == []


@pytest.fixture
async def manual() -> AsyncIterator[Simulator]:
    async with Simulator(flow_rate=0.0) as sim:
        yield sim


def _manager(sim: Simulator) -> AsyncSocketManager:
    # The flow runs by hand, so streams fall silent between steps: no no-data watchdog.
    return AsyncSocketManager(market=sim.market, no_data_timeout=0)


async def _checked_manager(sim: Simulator, engine: Engine, **opts: Any) -> DepthCacheManager:
    sm = await _manager(sim).start()
    dcm = DepthCacheManager(sm, SYMBOLS, callback=engine.check, **opts)
    await dcm.start()
    return dcm


async def _close(dcm: DepthCacheManager) -> None:
    await dcm.close()
    await dcm.sm.close()


async def test_recv_and_async_for_deliver_synced_books_equal_to_the_engine(manual: Simulator) -> None:
    engine = Engine(manual)
    async with _manager(manual) as sm, DepthCacheManager(sm, "BTCUSDT", value_type="str") as dcm:
        engine.step()
        book = await asyncio.wait_for(dcm.recv(), 5)
        assert book is dcm.get_depth_cache()
        async with asyncio.timeout(5):
            while not (book.state is BookState.SYNCED and book.update_id == engine.update_id("BTCUSDT")):
                engine.step()
                book = await dcm.recv()
            engine.step()
            async for book in dcm:
                if book.update_id == engine.update_id("BTCUSDT"):
                    break
        bids, asks = manual.exchange.book_levels("BTCUSDT")
        # value_type="str": the exchange's own strings, best first.
        assert book.get_bids() == sorted(bids.items(), key=lambda kv: -float(kv[0]))
        assert book.get_asks() == sorted(asks.items(), key=lambda kv: float(kv[0]))
        assert book.best_bid() == book.get_bids(1)[0]
    assert book.state is BookState.FAILED  # closed: still readable, no longer maintained
    with pytest.raises(errors.ConnectionClosedError):
        await dcm.recv()


async def test_callback_style_every_change_is_the_engine_book(manual: Simulator) -> None:
    engine = Engine(manual)
    seen: list[tuple[str, BookState]] = []

    def on_book(book: DepthCache) -> None:
        engine.check(book)
        seen.append((book.symbol, book.state))

    sm = await _manager(manual).start()
    dcm = await DepthCacheManager(sm, SYMBOLS, callback=on_book).start()
    try:
        for _ in range(5):
            engine.step()
            await engine.caught_up(dcm)
        assert {s for s, state in seen if state is BookState.SYNCED} == set(SYMBOLS)
        assert all(dcm.stats(s).resyncs == 0 for s in SYMBOLS)
        assert len(sm.connections) == 1  # the symbols share one connection
    finally:
        await _close(dcm)


@pytest.mark.parametrize("fault", ["skip", "reorder"])
async def test_a_gap_on_one_symbol_resyncs_only_that_symbol(manual: Simulator, fault: str) -> None:
    engine = Engine(manual)
    dcm = await _checked_manager(manual, engine)
    try:
        engine.step()
        await engine.caught_up(dcm)
        getattr(manual.faults, fault)(2, pattern=r"^ethusdt@depth")
        counter = "skipped" if fault == "skip" else "reordered"
        deadline = time.monotonic() + 5
        while manual.faults.counts[counter] < 2 and time.monotonic() < deadline:
            engine.step()
            await asyncio.sleep(0.15)  # let each step's diff flush on its own 100 ms tick
        assert manual.faults.counts[counter] == 2
        await engine.caught_up(dcm, moving=True)
        assert dcm.stats("ETHUSDT").resyncs >= 1
        assert dcm.stats("ETHUSDT").gaps >= 1
        assert dcm.stats("BTCUSDT").resyncs == dcm.stats("BNBBTC").resyncs == 0
        assert dcm.stats("BTCUSDT").snapshots_requested == 1
    finally:
        await _close(dcm)


async def test_duplicates_never_resync(manual: Simulator) -> None:
    engine = Engine(manual)
    dcm = await _checked_manager(manual, engine)
    try:
        engine.step()
        await engine.caught_up(dcm)
        manual.faults.duplicate(3)
        deadline = time.monotonic() + 5
        while manual.faults.counts["duplicated"] < 3 and time.monotonic() < deadline:
            engine.step()
            await engine.caught_up(dcm)
        assert manual.faults.counts["duplicated"] == 3
        assert all(dcm.stats(s).resyncs == 0 for s in SYMBOLS)
    finally:
        await _close(dcm)


async def test_a_dropped_connection_keeps_the_old_books_readable_and_stale(manual: Simulator) -> None:
    engine = Engine(manual)
    stale: list[tuple[str, float | None, Levels]] = []

    def on_book(book: DepthCache) -> None:
        engine.check(book)
        if book.state is BookState.STALE:
            stale.append((book.symbol, book.stale_since, book.get_bids()))

    sm = await _manager(manual).start()
    dcm = await DepthCacheManager(sm, SYMBOLS, callback=on_book).start()
    try:
        engine.step()
        await engine.caught_up(dcm)
        before = {s: dcm.get_depth_cache(s).get_bids() for s in SYMBOLS}
        assert manual.faults.drop() == 1
        await until(lambda: {s for s, _, _ in stale} == set(SYMBOLS), 5, "every book marked stale")
        for symbol, since, bids in stale:
            assert since is not None
            assert bids == before[symbol]  # the last good book, untouched
            assert dcm.stats(symbol).disconnects >= 1
        await engine.caught_up(dcm, moving=True)
    finally:
        await _close(dcm)


async def test_failing_snapshots_are_retried(manual: Simulator) -> None:
    engine = Engine(manual)
    manual.faults.rest(fail_status=500, fail_count=4)
    dcm = await _checked_manager(manual, engine)
    try:
        engine.step()
        await engine.caught_up(dcm, timeout=8)
        assert sum(dcm.stats(s).snapshot_errors for s in SYMBOLS) == 4
        assert dcm.snapshots.scheduler.failed == 4
    finally:
        await _close(dcm)


async def test_a_429_pauses_every_snapshot_for_its_retry_after(manual: Simulator) -> None:
    engine = Engine(manual)
    manual.faults.rest(fail_status=429, fail_count=1)  # answered with Retry-After: 1
    dcm = await _checked_manager(manual, engine)
    try:
        engine.step()
        await engine.caught_up(dcm, timeout=8)
        assert dcm.snapshots.scheduler.rate_limited == 1
    finally:
        await _close(dcm)


async def test_an_engine_that_gives_up_fails_every_book_and_ends_the_reader(manual: Simulator) -> None:
    engine = Engine(manual)
    fast = BackoffPolicy(initial_s=0.02, factor=2.0, max_s=0.1, jitter=0.1, max_retries=2)
    async with AsyncSocketManager(market=manual.market, no_data_timeout=0, backoff=fast) as sm, \
            DepthCacheManager(sm, SYMBOLS) as dcm:
        await engine.caught_up(dcm, moving=True)
        manual.faults.refuse(503)
        manual.faults.drop()
        books = []
        async with asyncio.timeout(5):
            async for book in dcm:
                books.append(book)
        assert {b.symbol for b in books if b.state is BookState.FAILED} == set(SYMBOLS)
        assert all(dcm.get_depth_cache(s).get_bids() for s in SYMBOLS)  # the last books stay readable


async def test_managers_on_one_socket_manager_share_connections_and_the_snapshot_budget(
        manual: Simulator) -> None:
    engine = Engine(manual)
    async with _manager(manual) as sm:
        first = await DepthCacheManager(sm, "BTCUSDT", callback=engine.check).start()
        second = await DepthCacheManager(sm, ["ETHUSDT", "BNBBTC"], callback=engine.check).start()
        assert first.snapshots is second.snapshots
        assert len(sm.connections) == 1
        await engine.caught_up(first)
        await engine.caught_up(second)
        await first.close()
        await engine.caught_up(second, moving=True)  # the shared service outlives the first manager
        assert second.snapshots.fetched == 3
        await second.close()


async def test_unknown_symbol_fails_that_book_only(manual: Simulator) -> None:
    sm = await _manager(manual).start()
    reported: list[dict[str, Any]] = []
    dcm = await DepthCacheManager(sm, ["BTCUSDT", "NOPEUSDT"], on_error=reported.append).start()
    assert dcm.get_depth_cache("NOPEUSDT").state is BookState.FAILED
    assert {(e["type"], e["stream"]) for e in reported} == {
        ("subscription", "nopeusdt@depth@100ms"), ("subscription", "nopeusdt@bookTicker")}
    await until(lambda: dcm.get_depth_cache("BTCUSDT").state is BookState.SYNCED, what="BTCUSDT synced")
    await dcm.close()
    with pytest.raises(errors.SubscriptionError):
        await DepthCacheManager(sm, "NOPEUSDT").start()
    with pytest.raises(errors.InvalidStreamError):
        await DepthCacheManager(sm, "BTC/USDT").start()
    with pytest.raises(ValueError):
        DepthCacheManager(sm, "BTCUSDT", limit=6000)
    await sm.close()


def test_value_type_for_python_binance_conv_types() -> None:
    assert [value_type_for(c) for c in (float, Decimal, str)] == ["float", "decimal", "str"]
    with pytest.raises(ValueError):
        value_type_for(int)


@pytest.mark.slow
async def test_500_symbols_start_on_one_weight_budget_without_429() -> None:
    specs = tuple(SymbolSpec(f"S{i:03d}USDT", f"S{i:03d}", "USDT", 10.0 + i) for i in range(500))
    # A compressed minute: 1000 weight a second. 500 snapshots of 100 levels cost 2500 weight: three
    # windows' worth, so the budget (not luck) decides that the server never answers 429.
    config = dataclasses.replace(Simulator().config, symbols=specs, flow_rate=0.0, rest_weight_limit=1000,
                                 rest_weight_window_s=1.0)
    async with Simulator(config) as sim, _manager(sim) as sm:
        service = SnapshotService(sm.market, weight_limit=1000, window_s=1.0)
        dcm = DepthCacheManager(sm, [s.symbol for s in specs], limit=100, check_tickers=False,
                                snapshots=service)
        async with dcm:
            # No order flow at all: quiet symbols sync from their snapshot alone.
            await until(lambda: all(dcm.get_depth_cache(s.symbol).state is BookState.SYNCED for s in specs),
                        30, "500 books synced")
        assert service.scheduler.rate_limited == 0
        assert service.fetched == 500
        assert service.failed == 0


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faults=st.lists(st.sampled_from(["skip", "duplicate", "reorder", "drop", "rest_fail", "none"]),
                       min_size=2, max_size=4),
       target=st.sampled_from(SYMBOLS))
def test_whenever_synced_the_book_is_the_engine_book(faults: list[str], target: str) -> None:
    """Random fault sequences over real sockets: every synced state any book shows equals the engine."""
    asyncio.run(_fault_scenario(faults, target))


async def _fault_scenario(faults: list[str], target: str) -> None:
    async with Simulator(flow_rate=0.0) as sim:
        engine = Engine(sim)
        dcm = await _checked_manager(sim, engine)
        try:
            engine.step()
            await engine.caught_up(dcm)
            pattern = rf"^{target.lower()}@depth"
            for fault in faults:
                if fault == "skip":
                    sim.faults.skip(1, pattern=pattern)
                elif fault == "duplicate":
                    sim.faults.duplicate(1, pattern=pattern)
                elif fault == "reorder":
                    sim.faults.reorder(2, pattern=pattern)
                elif fault == "drop":
                    sim.faults.drop()
                elif fault == "rest_fail":
                    sim.faults.rest(fail_status=503, fail_count=1)
                for _ in range(2):
                    engine.step()
                    await asyncio.sleep(0.12)
            sim.faults.clear()
            await engine.caught_up(dcm, timeout=8, moving=True)
            if "drop" not in faults:
                untouched = [s for s in SYMBOLS if s != target]
                assert all(dcm.stats(s).resyncs == 0 for s in untouched)
        finally:
            await _close(dcm)


# -- malformed payloads over the socket: an error event and a resync, never a wrong or stuck book -------
def _spoil_next(sim: Simulator, stream_prefix: str, spoil: Any) -> list[dict[str, Any]]:
    """Publish the next payload of a stream starting with ``stream_prefix`` spoiled by ``spoil(copy)``;
    returns the list the original lands in once it was replaced (through the simulator's publish filter,
    so it goes out over the real socket like any frame)."""
    replaced: list[dict[str, Any]] = []

    def publish_filter(stream: str, payload: Any) -> list[Any]:
        if not replaced and stream.startswith(stream_prefix) and payload.get("b"):
            replaced.append(payload)
            return [spoil(dict(payload))]
        return [payload]

    sim.hub.filter = publish_filter
    return replaced


async def test_a_bad_number_in_a_live_diff_is_reported_and_only_that_book_resyncs(manual: Simulator) -> None:
    engine = Engine(manual)
    reports: list[dict[str, Any]] = []
    stale: list[str | None] = []

    def on_book(book: DepthCache) -> None:
        engine.check(book)
        if book.state is BookState.STALE:
            stale.append(book.stale_reason)

    sm = await _manager(manual).start()
    dcm = await DepthCacheManager(sm, SYMBOLS, callback=on_book, on_error=reports.append).start()
    try:
        engine.step()
        await engine.caught_up(dcm, moving=True)
        replaced = _spoil_next(manual, "ethusdt@depth", lambda p: {**p, "b": [["nan", "1.0"], *p["b"]]})
        deadline = time.monotonic() + 5
        while not replaced and time.monotonic() < deadline:
            engine.step()
            await asyncio.sleep(0.15)
        assert replaced, "no ETHUSDT diff with bids came"
        await until(lambda: reports, 5, "the malformed event")
        [report] = reports
        assert (report["e"], report["type"], report["m"]) == ("error", errors.ERR_MALFORMED,
                                                              errors.MSG_MALFORMED)
        assert report["symbol"] == "ETHUSDT" and report["stream"] == "ethusdt@depth@100ms"
        assert "'nan'" in report["detail"] and report["resync"] is True
        assert stale == ["malformed"]
        await engine.caught_up(dcm, moving=True)  # resynced from a fresh snapshot: equal to the engine
        assert dcm.stats("ETHUSDT").malformed == 1 and dcm.stats("ETHUSDT").resyncs == 1
        assert dcm.stats("BTCUSDT").resyncs == dcm.stats("BNBBTC").resyncs == 0
    finally:
        await _close(dcm)


async def test_a_buffered_diff_without_U_is_skipped_and_the_book_still_syncs(manual: Simulator) -> None:
    """The snapshot answer is slow, so diffs are buffered meanwhile; one of them lacks ``U``."""
    engine = Engine(manual)
    reports: list[dict[str, Any]] = []
    manual.faults.rest(delay_s=0.6)
    replaced = _spoil_next(manual, "btcusdt@depth", lambda p: {k: v for k, v in p.items() if k != "U"})
    sm = await _manager(manual).start()
    dcm = await DepthCacheManager(sm, "BTCUSDT", callback=engine.check, on_error=reports.append).start()
    try:
        deadline = time.monotonic() + 5
        while not replaced and time.monotonic() < deadline:
            engine.step()
            await asyncio.sleep(0.15)
        assert replaced, "no BTCUSDT diff with bids came"
        assert dcm.get_depth_cache().state is BookState.SYNCING  # it was buffered, not applied
        await until(lambda: reports, 5, "the malformed event")
        assert "'U'" in reports[0]["detail"] and reports[0]["type"] == errors.ERR_MALFORMED
        await engine.caught_up(dcm, timeout=10, moving=True)
        assert dcm.stats().malformed == 1
    finally:
        await _close(dcm)


async def test_a_snapshot_answer_that_raises_cannot_leave_a_book_waiting(manual: Simulator) -> None:
    """A body that is a 200 JSON object of the wrong shape is refused and fetched again."""
    engine = Engine(manual)
    reports: list[dict[str, Any]] = []
    sm = await _manager(manual).start()
    dcm = DepthCacheManager(sm, "BTCUSDT", callback=engine.check, on_error=reports.append)
    real = dcm._on_snapshot
    answers = [0]

    def first_answer_mangled(sync: Any, status: int, body: Any) -> None:
        answers[0] += 1
        if answers[0] == 1:
            body = {**body, "bids": [["inf", "1"]]}
        real(sync, status, body)

    dcm._on_snapshot = first_answer_mangled  # type: ignore[method-assign]
    await dcm.start()
    try:
        await engine.caught_up(dcm, timeout=10, moving=True)
        assert answers[0] >= 2
        assert [r["source"] for r in reports] == ["snapshot"] and "'inf'" in reports[0]["detail"]
    finally:
        await _close(dcm)
