"""The book sync state machine (PROTOCOL 5.1 spot, 5.2 futures) and the shared snapshot scheduler."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_ws import errors
from binance_ws.core.book import BookState
from binance_ws.core.booksync import (
    REASON_CROSSED,
    REASON_DISCONNECTED,
    REASON_GAP,
    REASON_MALFORMED,
    REASON_TICKER,
    BookFailed,
    BookMalformed,
    BookReady,
    BookStale,
    BookSync,
    BookUpdated,
    FetchSnapshot,
    SnapshotScheduler,
    depth_weight,
)
from binance_ws.markets import COINM, SPOT, USDM


def diff(first: int, last: int, bids: list[list[str]] | None = None, asks: list[list[str]] | None = None,
         pu: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"e": "depthUpdate", "E": last * 10, "s": "BTCUSDT", "U": first, "u": last,
                             "b": bids or [], "a": asks or []}
    if pu is not None:
        event["pu"] = pu
    return event


def snapshot(last_id: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    return {"lastUpdateId": last_id, "bids": bids, "asks": asks}


BIDS = [["100.0", "1"], ["99.0", "2"]]
ASKS = [["101.0", "1"], ["102.0", "2"]]


def synced_spot(last_id: int = 10) -> BookSync:
    sync = BookSync("btcusdt", limit=100)
    assert sync.on_diff(diff(last_id - 2, last_id + 1), 0.0) == (FetchSnapshot("BTCUSDT", 100),)
    actions = sync.on_snapshot(snapshot(last_id, BIDS, ASKS), 1.0)
    assert actions == (BookReady("BTCUSDT", last_id + 1),)
    assert sync.state is BookState.SYNCED
    return sync


# -- spot (PROTOCOL 5.1) --------------------------------------------------------------------------------
def test_spot_buffers_from_the_first_diff_then_asks_for_one_snapshot() -> None:
    sync = BookSync("BTCUSDT", limit=100)
    assert sync.state is BookState.SYNCING
    assert sync.on_diff(diff(5, 7), 0.0) == (FetchSnapshot("BTCUSDT", 100),)
    assert sync.on_diff(diff(8, 9), 0.0) == ()  # buffered, no second request
    assert sync.snapshot_in_flight
    assert sync.stats.snapshots_requested == 1


def test_spot_snapshot_older_than_the_buffer_is_fetched_again() -> None:
    sync = BookSync("BTCUSDT", limit=100)
    sync.on_diff(diff(20, 25), 0.0)
    assert sync.on_snapshot(snapshot(18, BIDS, ASKS), 0.0) == (FetchSnapshot("BTCUSDT", 100, retry=True),)
    assert sync.stats.snapshots_too_old == 1
    assert sync.state is BookState.SYNCING
    # lastUpdateId == U - 1 leaves no hole: the first event is applied as is.
    assert sync.on_snapshot(snapshot(19, BIDS, ASKS), 0.0) == (BookReady("BTCUSDT", 25),)


def test_spot_drops_stale_events_and_applies_the_one_straddling_the_snapshot() -> None:
    sync = BookSync("BTCUSDT", limit=100)
    sync.on_diff(diff(5, 7, bids=[["50.0", "9"]]), 0.0)  # u <= lastUpdateId: dropped
    sync.on_diff(diff(8, 12, bids=[["100.0", "5"]]), 0.0)  # U <= 11 <= u: first applied
    sync.on_diff(diff(13, 13, asks=[["101.0", "0"]]), 0.0)
    assert sync.on_snapshot(snapshot(10, BIDS, ASKS), 2.0) == (BookReady("BTCUSDT", 13),)
    book = sync.cache
    assert book.get_bids() == [(100.0, 5.0), (99.0, 2.0)]
    assert book.get_asks() == [(102.0, 2.0)]
    assert book.update_id == 13
    assert book.update_time == 130
    assert sync.stats.dropped == 1
    # Live now: U == previous u + 1 applies, a replay of an old event is dropped.
    assert sync.on_diff(diff(14, 15, bids=[["99.0", "0"]]), 3.0) == (BookUpdated("BTCUSDT"),)
    assert sync.on_diff(diff(14, 15, bids=[["99.0", "7"]]), 3.0) == ()
    assert book.get_bids() == [(100.0, 5.0)]


def test_spot_first_event_after_the_snapshot_must_cover_last_id_plus_one() -> None:
    sync = BookSync("BTCUSDT", limit=100)
    sync.on_diff(diff(5, 7), 0.0)
    assert sync.on_snapshot(snapshot(8, BIDS, ASKS), 0.0) == (BookReady("BTCUSDT", 8),)
    # The snapshot is ahead of the buffer: the next live event must start at or before 9.
    actions = sync.on_diff(diff(11, 12), 1.0)
    assert BookStale("BTCUSDT", REASON_GAP, 1.0) in actions
    assert FetchSnapshot("BTCUSDT", 100) in actions


def test_gap_marks_the_old_book_stale_but_readable_until_the_new_one_is_synced() -> None:
    sync = synced_spot()
    before = sync.cache.get_bids()
    actions = sync.on_diff(diff(13, 14, bids=[["100.0", "42"]]), 5.0)  # expected U == 12
    assert actions == (BookStale("BTCUSDT", REASON_GAP, 5.0), FetchSnapshot("BTCUSDT", 100))
    cache = sync.cache
    assert cache.state is BookState.STALE
    assert (cache.stale_since, cache.stale_reason) == (5.0, REASON_GAP)
    assert cache.get_bids() == before  # frozen at the last good state, not half-updated
    assert sync.on_diff(diff(15, 15), 6.0) == ()  # buffered behind the gap event
    assert sync.on_snapshot(snapshot(14, [["100.0", "42"]], ASKS), 7.0) == (BookReady("BTCUSDT", 15),)
    assert cache.state is BookState.SYNCED
    assert cache.stale_since is None
    assert cache.get_bids() == [(100.0, 42.0)]
    assert (sync.stats.gaps, sync.stats.resyncs) == (1, 1)


def test_a_gap_inside_the_buffer_restarts_the_buffer_after_the_hole() -> None:
    sync = BookSync("BTCUSDT", limit=100)
    sync.on_diff(diff(5, 7), 0.0)
    sync.on_diff(diff(10, 12), 0.0)  # 8..9 never came
    assert sync.on_snapshot(snapshot(6, BIDS, ASKS), 0.0) == (FetchSnapshot("BTCUSDT", 100),)
    assert sync.state is BookState.SYNCING
    assert sync.on_snapshot(snapshot(11, BIDS, ASKS), 0.0) == (BookReady("BTCUSDT", 12),)


def test_buffer_overflow_is_a_clean_restart() -> None:
    sync = BookSync("BTCUSDT", limit=100, max_buffer=3)
    for i in range(10):
        sync.on_diff(diff(10 + i, 10 + i), 0.0)
    assert sync.stats.overflows == 3
    assert sync.stats.snapshots_requested == 1  # the one in flight is judged against the new buffer
    # The answer predates the (restarted) buffer, so it is fetched again rather than leaving a hole.
    assert sync.on_snapshot(snapshot(12, BIDS, ASKS), 0.0) == (FetchSnapshot("BTCUSDT", 100, retry=True),)
    assert sync.on_snapshot(snapshot(19, BIDS, ASKS), 0.0) == (BookReady("BTCUSDT", 19),)


def test_crossed_book_resyncs_and_is_counted() -> None:
    sync = synced_spot()
    actions = sync.on_diff(diff(12, 12, bids=[["101.5", "1"]]), 3.0)
    assert actions[0] == BookStale("BTCUSDT", REASON_CROSSED, 3.0)
    assert sync.stats.crossed == 1


def test_book_ticker_at_the_same_update_id_is_checked() -> None:
    sync = synced_spot()  # at update id 11
    good = {"u": 11, "s": "BTCUSDT", "b": "100.00000000", "B": "1.00000000", "a": "101.0", "A": "1"}
    assert sync.on_book_ticker(good, 1.0) == ()
    assert sync.on_book_ticker({**good, "u": 3, "B": "9"}, 1.0) == ()  # older than the book: ignored
    # A ticker ahead of the book waits for the diff that brings the book to its id.
    assert sync.on_book_ticker({**good, "u": 13, "B": "5"}, 1.0) == ()
    assert sync.on_diff(diff(12, 13, bids=[["100.0", "5"]]), 2.0) == (BookUpdated("BTCUSDT"),)
    assert sync.stats.ticker_checks == 2
    bad = {**good, "u": 13, "a": "101.5"}
    assert sync.on_book_ticker(bad, 3.0) == (BookStale("BTCUSDT", REASON_TICKER, 3.0),)
    assert sync.stats.ticker_mismatches == 1
    assert sync.state is BookState.STALE


def test_disconnect_goes_stale_and_the_next_diff_starts_over() -> None:
    sync = synced_spot()
    assert sync.on_disconnect(4.0) == (BookStale("BTCUSDT", REASON_DISCONNECTED, 4.0),)
    assert sync.cache.get_asks() == [(101.0, 1.0), (102.0, 2.0)]
    assert sync.on_diff(diff(30, 31), 5.0) == (FetchSnapshot("BTCUSDT", 100),)
    assert sync.on_snapshot(snapshot(30, BIDS, ASKS), 6.0) == (BookReady("BTCUSDT", 31),)


def test_snapshot_errors_retry_and_a_fatal_one_fails_the_book() -> None:
    sync = BookSync("BTCUSDT", limit=100)
    sync.on_diff(diff(1, 2), 0.0)
    assert sync.on_snapshot_error(1.0) == (FetchSnapshot("BTCUSDT", 100, retry=True),)
    failed = sync.on_snapshot_error(2.0, "Invalid symbol.", fatal=True)
    assert failed == (BookFailed("BTCUSDT", "Invalid symbol."),)
    assert sync.state is BookState.FAILED
    assert sync.on_diff(diff(3, 4), 3.0) == ()
    assert sync.close(4.0) == ()


def test_resumed_stream_fetches_at_once_and_the_first_event_proves_continuity() -> None:
    sync = BookSync("BTCUSDT", limit=100)
    assert sync.on_resumed(0.0) == (FetchSnapshot("BTCUSDT", 100),)
    assert sync.on_resumed(0.0) == ()  # already asked
    # A quiet symbol: the snapshot comes before any event, and the book is that snapshot.
    assert sync.on_snapshot(snapshot(10, BIDS, ASKS), 1.0) == (BookReady("BTCUSDT", 10),)
    assert sync.on_diff(diff(11, 12, bids=[["100.0", "4"]]), 2.0) == (BookUpdated("BTCUSDT"),)
    assert sync.cache.best_bid() == (100.0, 4.0)
    # After a disconnect the resumed stream's first event must follow the new snapshot.
    sync.on_disconnect(3.0)
    assert sync.on_resumed(3.5) == (FetchSnapshot("BTCUSDT", 100),)
    assert sync.on_snapshot(snapshot(20, BIDS, ASKS), 4.0) == (BookReady("BTCUSDT", 20),)
    actions = sync.on_diff(diff(25, 26), 5.0)  # 21..24 were lost before the subscription was back
    assert actions == (BookStale("BTCUSDT", REASON_GAP, 5.0), FetchSnapshot("BTCUSDT", 100))
    assert sync.on_resumed(6.0) == ()  # syncing already


def test_late_snapshot_after_disconnect_is_ignored() -> None:
    sync = BookSync("BTCUSDT", limit=100)
    sync.on_diff(diff(1, 2), 0.0)
    sync.on_disconnect(1.0)
    assert sync.on_snapshot(snapshot(2, BIDS, ASKS), 2.0) == ()
    assert sync.state is BookState.SYNCING


def test_depth_exhausted_resyncs() -> None:
    sync = BookSync("BTCUSDT", limit=4)  # resyncs once fewer than 2 known levels remain
    sync.on_diff(diff(1, 1), 0.0)
    sync.on_snapshot(snapshot(1, [[str(100 - i), "1"] for i in range(4)], ASKS), 0.0)
    assert sync.on_diff(diff(2, 2, bids=[["100", "0"], ["99", "0"]]), 1.0) == (BookUpdated("BTCUSDT"),)
    actions = sync.on_diff(diff(3, 3, bids=[["98", "0"]]), 1.0)
    assert actions[0] == BookStale("BTCUSDT", "depth_exhausted", 1.0)


def test_max_depth_trims_by_price() -> None:
    sync = BookSync("BTCUSDT", limit=100, max_depth=1)
    sync.on_diff(diff(1, 1), 0.0)
    sync.on_snapshot(snapshot(1, [["9", "1"], ["10", "1"]], [["11", "1"], ["100", "1"]]), 0.0)
    assert (sync.cache.get_bids(), sync.cache.get_asks()) == ([(10.0, 1.0)], [(11.0, 1.0)])


# -- futures (PROTOCOL 5.2) -----------------------------------------------------------------------------
def test_futures_pu_chain_with_non_contiguous_ids() -> None:
    sync = BookSync("BTCUSDT", rule="futures", limit=1000)
    sync.on_diff(diff(100, 120, pu=90, bids=[["1.0", "1"]]), 0.0)  # u < lastUpdateId: dropped
    sync.on_diff(diff(130, 150, pu=120, bids=[["100.0", "3"]]), 0.0)  # U <= 140 <= u: first
    sync.on_diff(diff(171, 190, pu=150), 0.0)  # ids jump: fine, pu chains
    assert sync.on_snapshot(snapshot(140, BIDS, ASKS), 0.0) == (BookReady("BTCUSDT", 190),)
    assert sync.cache.get_bids() == [(100.0, 3.0), (99.0, 2.0)]
    assert sync.on_diff(diff(200, 210, pu=190), 1.0) == (BookUpdated("BTCUSDT"),)
    assert sync.on_diff(diff(200, 210, pu=190), 1.0) == ()  # duplicate
    actions = sync.on_diff(diff(230, 240, pu=220), 2.0)  # pu != previous u
    assert actions == (BookStale("BTCUSDT", REASON_GAP, 2.0), FetchSnapshot("BTCUSDT", 1000))


def test_futures_snapshot_equal_to_an_event_u_applies_that_event() -> None:
    sync = BookSync("BTCUSDT", rule="futures", limit=1000)
    sync.on_diff(diff(100, 120, pu=90, bids=[["100.0", "8"]]), 0.0)
    assert sync.on_snapshot(snapshot(120, BIDS, ASKS), 0.0) == (BookReady("BTCUSDT", 120),)
    assert sync.cache.best_bid() == (100.0, 8.0)
    assert sync.on_snapshot(snapshot(99, BIDS, ASKS), 0.0) == ()  # stray late answer


def test_futures_snapshot_before_the_first_buffered_u_is_refetched() -> None:
    sync = BookSync("BTCUSDT", rule="futures", limit=500)
    sync.on_diff(diff(100, 120, pu=90), 0.0)
    assert sync.on_snapshot(snapshot(99, BIDS, ASKS), 0.0) == (FetchSnapshot("BTCUSDT", 500, retry=True),)


# -- limits and weights -----------------------------------------------------------------------------
def test_depth_weights_and_limits_follow_the_tables() -> None:
    assert [depth_weight(SPOT.sequence_rule, n) for n in (1, 100, 101, 500, 501, 1000, 1001, 5000)] == \
        [5, 5, 25, 25, 50, 50, 250, 250]
    assert [depth_weight(USDM.sequence_rule, n) for n in (5, 50, 100, 500, 1000)] == [2, 2, 5, 10, 20]
    assert depth_weight(COINM.sequence_rule, 1000) == 20
    for rule, bad in (("spot", 0), ("spot", 5001), ("futures", 200), ("futures", 5000)):
        with pytest.raises(ValueError):
            depth_weight(rule, bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            BookSync("X", rule=rule, limit=bad)  # type: ignore[arg-type]


# -- the property: whenever SYNCED, the book is the exchange's book ---------------------------------------
class Exchange:
    """A ground-truth book with an update-id history, cut into diff events as Binance does."""

    def __init__(self, rng: random.Random, futures: bool, n_updates: int, limit: int) -> None:
        self.futures = futures
        self.limit = limit
        bids = {p: rng.choice((1, 2, 3)) for p in rng.sample(range(1, 50), 12)}
        asks = {p: rng.choice((1, 2, 3)) for p in rng.sample(range(51, 100), 12)}
        self.states: dict[int, tuple[dict[int, int], dict[int, int]]] = {0: (dict(bids), dict(asks))}
        self.events: list[dict[str, Any]] = []
        uid, prev_u = 0, 0
        while n_updates > 0:
            size = min(n_updates, rng.randint(1, 4))
            n_updates -= size
            b_levels: dict[int, int] = {}
            a_levels: dict[int, int] = {}
            first = uid + 1
            for _ in range(size):
                uid += rng.randint(1, 3) if futures else 1  # futures ids are shared across symbols
                side, levels = (bids, b_levels) if rng.random() < 0.5 else (asks, a_levels)
                price = rng.randrange(1, 50) if side is bids else rng.randrange(51, 100)
                qty = rng.choice((0, 0, 1, 2, 5))
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
                levels[price] = qty
                first = min(first, uid)
            event = diff(first, uid, [[f"{p}.00000000", f"{q}.00000000"] for p, q in b_levels.items()],
                         [[f"{p}.00000000", f"{q}.00000000"] for p, q in a_levels.items()],
                         pu=prev_u if futures else None)
            self.events.append(event)
            self.states[uid] = (dict(bids), dict(asks))
            prev_u = uid

    def snapshot_at(self, index: int) -> dict[str, Any]:
        """The REST answer as of event ``index`` (-1: before any event)."""
        last_id = self.events[index]["u"] if index >= 0 else 0
        bids, asks = self.states[last_id]
        top_b = sorted(bids.items(), reverse=True)[: self.limit]
        top_a = sorted(asks.items())[: self.limit]
        return snapshot(last_id, [[str(p), str(q)] for p, q in top_b], [[str(p), str(q)] for p, q in top_a])

    def ticker_at(self, index: int) -> dict[str, Any]:
        u = self.events[index]["u"]
        bids, asks = self.states[u]
        bb = max(bids, default=0)
        ba = min(asks, default=0)
        return {"u": u, "s": "BTCUSDT", "b": str(bb), "B": str(bids.get(bb, 0)), "a": str(ba),
                "A": str(asks.get(ba, 0))}


def assert_book_is_truth(sync: BookSync, exchange: Exchange) -> None:
    """Within the range the book knows, it holds exactly the exchange's levels at its update id."""
    bids, asks = exchange.states[sync.cache.update_id]
    low_bid, high_ask = sync.cache.bounds()
    want_b = sorted(((float(p), float(q)) for p, q in bids.items() if low_bid is None or p >= low_bid),
                    reverse=True)
    want_a = sorted((float(p), float(q)) for p, q in asks.items() if high_ask is None or p <= high_ask)
    assert sync.cache.get_bids() == want_b
    assert sync.cache.get_asks() == want_a


@settings(max_examples=250, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), futures=st.booleans(), limit=st.sampled_from([5, 10, 100, 500]),
       n_updates=st.integers(10, 120), faults=st.floats(0.0, 0.3))
def test_whenever_synced_the_book_equals_the_exchange(seed: int, futures: bool, limit: int, n_updates: int,
                                                     faults: float) -> None:
    """Random streams with gaps, duplicates, reorders, disconnects, late, early and failing snapshots."""
    rng = random.Random(seed)
    exchange = Exchange(rng, futures, n_updates, limit)
    events = exchange.events
    sync = BookSync("BTCUSDT", rule="futures" if futures else "spot", limit=limit, max_buffer=8)
    pending_at: int | None = None  # delivery index at which the outstanding snapshot is answered
    clean_from = max(0, len(events) - 3)
    delivered = -1  # index of the newest event the exchange has sent so far

    def handle(actions: Any) -> None:
        nonlocal pending_at
        for action in actions:
            if isinstance(action, FetchSnapshot):
                assert pending_at is None, "a second snapshot request while one is in flight"
                pending_at = delivered + rng.randint(0, 3)

    if rng.random() < 0.5:
        handle(sync.on_resumed(-1.0))  # subscribed: the binding asks for the snapshot before any event
    i = 0
    while i < len(events):
        clean = i >= clean_from
        event, step = events[i], 1
        roll = rng.random()
        if not clean and roll < faults / 3:
            step = 1  # lost: a gap
            event = None  # type: ignore[assignment]
        elif not clean and roll < 2 * faults / 3 and i + 1 < len(events):
            handle(sync.on_diff(events[i + 1], float(i)))  # reordered pair
            step = 2
        elif not clean and roll < faults and i > 0:
            handle(sync.on_diff(events[i - 1], float(i)))  # duplicate of the previous one
        if not clean and rng.random() < faults / 10:
            handle(sync.on_disconnect(float(i)))
            if rng.random() < 0.5:  # the binding saw the connection come back before the next event
                handle(sync.on_resumed(float(i)))
        delivered = i + step - 1
        if event is not None:
            handle(sync.on_diff(event, float(i)))
        if step == 2:
            handle(sync.on_diff(events[i], float(i)))
        if rng.random() < 0.3:
            handle(sync.on_book_ticker(exchange.ticker_at(delivered), float(i)))
        if pending_at is not None and (delivered >= pending_at or clean):
            pending_at = None
            if not clean and rng.random() < faults:
                handle(sync.on_snapshot_error(float(i)))
            else:
                # A REST node may lag the stream by an event or two, or be ahead of it.
                lag = 0 if clean else rng.randint(-2, 1)
                index = max(-1, min(len(events) - 1, delivered + lag))
                handle(sync.on_snapshot(exchange.snapshot_at(index), float(i)))
        if sync.state is BookState.SYNCED:
            assert_book_is_truth(sync, exchange)
        i += step
    # Truthful tickers never fail the check.
    assert sync.stats.ticker_mismatches == 0
    assert sync.stats.crossed == 0
    # After a clean tail, the book is synced and current, unless it went stale on the very last event
    # and is waiting for its snapshot.
    if pending_at is not None:
        pending_at = None
        handle(sync.on_snapshot(exchange.snapshot_at(len(events) - 1), 0.0))
    assert sync.state is BookState.SYNCED
    assert_book_is_truth(sync, exchange)


# -- malformed input: never an exception, never a corrupted book ---------------------------------------
def malformed(actions: Any) -> list[dict[str, Any]]:
    """The error events among ``actions``, checked to have the documented shape."""
    events = [a.event for a in actions if isinstance(a, BookMalformed)]
    for event in events:
        assert event["e"] == "error"
        assert (event["type"], event["m"]) == (errors.ERR_MALFORMED, errors.MSG_MALFORMED)
        assert event["symbol"] == "BTCUSDT" and event["detail"]
    return events


def without(event: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != key}


@pytest.mark.parametrize("key", ["U", "u"])
def test_a_buffered_diff_without_ids_is_skipped_and_the_sync_goes_on(key: str) -> None:
    sync = BookSync("BTCUSDT", limit=100)
    actions = sync.on_diff(without(diff(5, 7), key), 0.0)
    [event] = malformed(actions)
    assert repr(key) in event["detail"] and event["source"] == "diff" and event["resync"] is False
    assert sync.on_diff(diff(8, 9), 0.0) == (FetchSnapshot("BTCUSDT", 100),)
    assert sync.on_diff(diff(10, 11, bids=[["100.0", "5"]]), 0.0) == ()
    assert sync.on_snapshot(snapshot(8, BIDS, ASKS), 1.0) == (BookReady("BTCUSDT", 11),)
    assert sync.cache.get_bids() == [(100.0, 5.0), (99.0, 2.0)]
    assert sync.stats.malformed == 1


def test_a_buffered_futures_diff_without_pu_is_skipped() -> None:
    sync = BookSync("BTCUSDT", rule="futures", limit=100)
    assert malformed(sync.on_diff(diff(5, 7), 0.0))  # no pu
    sync.on_diff(diff(8, 10, pu=7), 0.0)
    assert sync.on_snapshot(snapshot(9, BIDS, ASKS), 1.0) == (BookReady("BTCUSDT", 10),)


@pytest.mark.parametrize("bad", [{"b": None}, {"b": [["nan", "1"]]}, {"a": [["101.0", "inf"]]}, {"a": "x"},
                                 {"b": [["abc", "1"]]}, {"b": [["99.5"]]}, {"drop": "b"}, {"drop": "a"}])
def test_a_live_diff_with_bad_levels_resyncs_and_the_new_book_is_clean(bad: dict[str, Any]) -> None:
    sync = synced_spot()  # at 11
    event = diff(12, 12, bids=[["100.0", "7"]])
    event = without(event, bad["drop"]) if "drop" in bad else {**event, **bad}
    actions = sync.on_diff(event, 5.0)
    [report] = malformed(actions)
    assert report["resync"] is True
    assert BookStale("BTCUSDT", REASON_MALFORMED, 5.0) in actions
    assert FetchSnapshot("BTCUSDT", 100) in actions  # at once, not at the next event
    assert sync.cache.state is BookState.STALE and sync.cache.stale_reason == REASON_MALFORMED
    assert all(p == p for p, _ in sync.cache.get_bids() + sync.cache.get_asks())  # no NaN in the keys
    assert sync.on_diff(diff(13, 13, asks=[["101.0", "3"]]), 6.0) == ()
    assert sync.on_snapshot(snapshot(12, [["100.0", "7"]], ASKS), 7.0) == (BookReady("BTCUSDT", 13),)
    assert sync.cache.get_bids() == [(100.0, 7.0)]
    assert sync.cache.get_asks() == [(101.0, 3.0), (102.0, 2.0)]
    assert sync.stats.resyncs == 1


@pytest.mark.parametrize("key", ["U", "u"])
def test_a_live_diff_without_ids_is_skipped_and_a_needed_one_shows_as_a_gap(key: str) -> None:
    sync = synced_spot()  # at 11
    assert malformed(sync.on_diff(without(diff(12, 12, bids=[["100.0", "9"]]), key), 2.0))
    assert sync.state is BookState.SYNCED  # nothing to resync for yet: it may have been a duplicate
    actions = sync.on_diff(diff(13, 13), 3.0)  # 12 was needed after all
    assert BookStale("BTCUSDT", REASON_GAP, 3.0) in actions


def test_a_live_diff_with_ids_that_are_not_integers_is_skipped_not_buffered() -> None:
    sync = synced_spot()
    assert malformed(sync.on_diff({**diff(12, 12), "U": "12"}, 2.0))
    assert malformed(sync.on_diff({**diff(12, 12), "u": 12.5}, 2.0))
    assert malformed(sync.on_diff(["not", "a", "dict"], 2.0))  # type: ignore[arg-type]
    assert sync.on_diff(diff(12, 12), 3.0) == (BookUpdated("BTCUSDT"),)


@pytest.mark.parametrize("bad", [{"bids": [["nan", "1"]]}, {"asks": None}, {"lastUpdateId": "8"},
                                 {"drop": "lastUpdateId"}, {"drop": "bids"}, {"asks": [["101", "-1"]]}])
def test_a_malformed_snapshot_is_fetched_again_and_the_old_book_stays(bad: dict[str, Any]) -> None:
    sync = synced_spot()
    sync.on_diff(diff(13, 13), 1.0)  # a gap: stale, a snapshot is asked for
    before = sync.cache.get_bids()
    good = snapshot(13, BIDS, ASKS)
    answer = without(good, bad["drop"]) if "drop" in bad else {**good, **bad}
    actions = sync.on_snapshot(answer, 2.0)
    [report] = malformed(actions)
    assert report["source"] == "snapshot"
    assert FetchSnapshot("BTCUSDT", 100, retry=True) in actions
    assert sync.cache.state is BookState.STALE and sync.cache.get_bids() == before
    assert sync.on_snapshot(good, 3.0) == (BookReady("BTCUSDT", 13),)


def test_a_buffered_diff_with_a_bad_level_restarts_the_buffer_after_it() -> None:
    sync = BookSync("BTCUSDT", limit=100)
    sync.on_diff(diff(5, 7), 0.0)
    sync.on_diff(diff(8, 9, bids=[["nan", "1"]]), 0.0)
    sync.on_diff(diff(10, 10), 0.0)
    actions = sync.on_snapshot(snapshot(6, BIDS, ASKS), 1.0)
    assert malformed(actions) and FetchSnapshot("BTCUSDT", 100) in actions
    assert sync.state is BookState.SYNCING
    # Only a snapshot from past the bad event can be used now.
    assert sync.on_snapshot(snapshot(9, BIDS, ASKS), 2.0) == (BookReady("BTCUSDT", 10),)


def test_a_malformed_book_ticker_is_reported_not_checked() -> None:
    sync = synced_spot()
    for bad in ({"u": 11, "b": "nan", "B": "1", "a": "101.0", "A": "1"}, {"u": "11"}, {"b": "1"},
                {"u": 11, "b": "100.0", "B": "1", "a": "101.0"}, None):
        assert malformed(sync.on_book_ticker(bad, 1.0))  # type: ignore[arg-type]
    assert sync.stats.malformed == 5
    # One that waits for its diff is read when they meet: not checked, counted, and no resync.
    assert sync.on_book_ticker({"u": 12, "b": "100.0", "B": "inf", "a": "101.0", "A": "1"}, 1.0) == ()
    assert sync.on_diff(diff(12, 12), 2.0) == (BookUpdated("BTCUSDT"),)
    assert sync.stats.malformed == 6
    assert sync.state is BookState.SYNCED and sync.stats.ticker_mismatches == 0


#: Values no field may hold (a wrong but well-formed value, "12" for a price or [] for a side, cannot be
#: told apart from a right one).
_JUNK: list[Any] = [None, "nan", "inf", "-1", "abc", [[]], "1.5.2"]


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), futures=st.booleans(), n_updates=st.integers(10, 80),
       corrupt=st.floats(0.05, 0.4))
def test_malformed_events_and_snapshots_never_raise_and_never_show_a_wrong_book(
        seed: int, futures: bool, n_updates: int, corrupt: float) -> None:
    """Events, snapshots and tickers with keys missing or values replaced by junk, at random."""
    rng = random.Random(seed)
    exchange = Exchange(rng, futures, n_updates, 500)
    events = exchange.events
    sync = BookSync("BTCUSDT", rule="futures" if futures else "spot", limit=500, max_buffer=8)
    wanted = False

    def spoil(payload: dict[str, Any]) -> dict[str, Any]:
        out = dict(payload)
        key = rng.choice(sorted(out))
        if rng.random() < 0.4:
            del out[key]
        elif isinstance(out[key], list) and out[key] and rng.random() < 0.7:
            levels = [list(level) for level in out[key]]
            levels[rng.randrange(len(levels))][rng.randrange(2)] = rng.choice(_JUNK)
            out[key] = levels
        else:
            out[key] = rng.choice(_JUNK)
        return out

    def handle(actions: Any) -> None:
        nonlocal wanted
        wanted = wanted or any(isinstance(a, FetchSnapshot) for a in actions)
        malformed(actions)

    def maybe(payload: dict[str, Any]) -> dict[str, Any]:
        return spoil(payload) if not clean and rng.random() < corrupt else payload

    clean_from = len(events) - 3
    for i, event in enumerate(events):
        clean = i >= clean_from
        handle(sync.on_diff(maybe(event), float(i)))
        handle(sync.on_book_ticker(maybe(exchange.ticker_at(i)), float(i)))
        if wanted and rng.random() < 0.5:
            wanted = False
            handle(sync.on_snapshot(maybe(exchange.snapshot_at(i)), float(i)))
        if sync.state is BookState.SYNCED:
            assert_book_is_truth(sync, exchange)
    if wanted:
        handle(sync.on_snapshot(exchange.snapshot_at(len(events) - 1), 0.0))
    assert sync.state is BookState.SYNCED
    assert_book_is_truth(sync, exchange)
    assert sync.stats.ticker_mismatches == 0


# -- the shared snapshot scheduler ----------------------------------------------------------------------
def test_scheduler_starts_500_symbols_within_the_weight_budget() -> None:
    sched = SnapshotScheduler(weight_limit=6000, window_s=60.0, share=0.8, max_concurrency=8)
    weight = depth_weight("spot", 1000)  # 50
    symbols = [f"S{i}USDT" for i in range(500)]
    for s in symbols:
        sched.submit(s, weight, 0.0)
        sched.submit(s, weight, 0.0)  # asked twice, fetched once
    starts: list[float] = []
    now = 0.0
    while len(starts) < 500:
        for s in sched.ready(now):
            starts.append(now)
            sched.finish(s, now + 0.05)
        wake = sched.next_wakeup(now)
        assert wake is not None or len(starts) == 500
        now = max(wake or now, now + 0.05)
    # In every window of 60 s, at most 80% of 6000 weight was spent.
    for t in starts:
        assert sum(weight for u in starts if t <= u < t + 60.0) <= 4800
    assert sched.rate_limited == 0
    assert starts[-1] >= 5 * 60.0  # 500 * 50 = 25 000 weight needs five and a bit windows


def test_scheduler_concurrency_and_retry_after() -> None:
    sched = SnapshotScheduler(weight_limit=6000, max_concurrency=2)
    for s in ("A", "B", "C"):
        sched.submit(s, 5, 0.0)
    assert sched.ready(0.0) == ["A", "B"]
    assert sched.ready(0.0) == []
    assert sched.next_wakeup(0.0) is None  # only a finish frees a slot
    sched.finish("A", 1.0, status=429, retry_after=30.0)
    assert sched.rate_limited == 1
    assert sched.ready(2.0) == []
    assert sched.next_wakeup(2.0) == pytest.approx(31.0, abs=1e-3)
    sched.submit("A", 5, 2.0)  # the book asks again after its error
    assert sched.ready(31.01) == ["C"]  # B still holds the other slot
    sched.finish("B", 32.0, status=418)  # no Retry-After: a whole window
    assert sched.ready(33.0) == []
    assert sched.next_wakeup(33.0) == pytest.approx(92.0, abs=1e-3)
    assert sched.ready(92.01) == ["A"]
    assert sched.rate_limited == 2


def test_scheduler_backs_off_only_the_book_whose_answers_are_of_no_use() -> None:
    sched = SnapshotScheduler(rng=random.Random(1))
    sched.submit("A", 5, 0.0)
    sched.submit("B", 5, 0.0)
    assert sched.ready(0.0) == ["A", "B"]
    sched.finish("A", 0.0, status=503)
    sched.finish("B", 0.0, status=200)
    assert sched.failed == 1
    delays = []
    now = 0.0
    for _ in range(4):  # A keeps failing (or its answers keep predating its buffer): growing delays
        sched.submit("A", 5, now, retry=True)
        sched.submit("B", 5, now)
        assert "B" in sched.ready(now)
        wake = sched.next_wakeup(now)
        assert wake is not None and wake > now
        assert sched.ready(wake) == ["A"]
        delays.append(wake - now)
        sched.finish("A", wake)
        sched.finish("B", wake)
        now = wake
    assert delays == sorted(delays) and delays[-1] > 2 * delays[0]
    sched.succeeded("A")
    sched.submit("A", 5, now, retry=True)  # after a success, the backoff starts over
    assert sched.next_wakeup(now) == pytest.approx(now + delays[0], rel=0.3)
    sched.cancel("A")
    assert sched.queued == 0
    with pytest.raises(ValueError):
        sched.submit("X", 10_000, now)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_symbols=st.integers(1, 60), limit=st.sampled_from([100, 500, 1000]),
       concurrency=st.integers(1, 10), p_fail=st.floats(0.0, 0.4), p_429=st.floats(0.0, 0.1))
def test_scheduler_never_overspends_and_everyone_gets_a_snapshot(seed: int, n_symbols: int, limit: int,
                                                                concurrency: int, p_fail: float,
                                                                p_429: float) -> None:
    """Random answers (successes, failures, 429s with and without Retry-After), random latencies."""
    rng = random.Random(seed)
    window, budget_limit = 10.0, 1000
    sched = SnapshotScheduler(weight_limit=budget_limit, window_s=window, share=0.8,
                              max_concurrency=concurrency, rng=random.Random(seed))
    weight = depth_weight("spot", limit)
    for i in range(n_symbols):
        sched.submit(f"S{i}", weight, 0.0)
    now, starts, done = 0.0, [], set()
    in_flight: dict[str, float] = {}  # symbol -> when its answer lands
    paused_until = 0.0
    for _ in range(20_000):
        if len(done) == n_symbols:
            break
        for symbol in sched.ready(now):
            assert now >= paused_until, "started during a 429 pause"
            starts.append(now)
            in_flight[symbol] = now + rng.uniform(0.01, 0.5)
        assert len(in_flight) <= concurrency
        landing = min(in_flight.values(), default=None)
        wake = sched.next_wakeup(now)
        candidates = [t for t in (landing, wake) if t is not None]
        assert candidates, "stuck: nothing in flight and nothing will ever start"
        now = max(now, min(candidates))
        for symbol, t in list(in_flight.items()):
            if t > now:
                continue
            del in_flight[symbol]
            roll = rng.random()
            if roll < p_429:
                retry_after = rng.choice([None, 1.0, 3.0])
                sched.finish(symbol, now, status=429, retry_after=retry_after)
                paused_until = max(paused_until, now + (retry_after or window))
                sched.submit(symbol, weight, now, retry=True)
            elif roll < p_429 + p_fail:
                sched.finish(symbol, now, status=rng.choice([0, 500, 503]))
                sched.submit(symbol, weight, now, retry=True)
            else:
                sched.finish(symbol, now)
                sched.succeeded(symbol)
                done.add(symbol)
    assert len(done) == n_symbols
    starts.sort()
    for i, t in enumerate(starts):  # any window of ``window`` seconds holds at most the budget
        j = i
        while j < len(starts) and starts[j] < t + window:
            j += 1
        assert (j - i) * weight <= budget_limit * 0.8
