"""Sequence trackers: duplicates dropped, gaps reported with exactly the missing ids."""

from __future__ import annotations

import gzip
import json
import random

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_ws.core.sequence import (
    DUPLICATE,
    OK,
    AggTradeTracker,
    FuturesDepthTracker,
    SequenceTracker,
    SpotDepthTracker,
    TradeTracker,
    gap,
    reset,
)
from binance_ws.markets import SPOT, USDM
from binance_ws.models import decoder_for
from tests.paths import RECORDINGS as _RECORDINGS


def test_for_stream_picks_the_rule() -> None:
    assert isinstance(SequenceTracker.for_stream("bnbbtc@trade"), TradeTracker)
    assert isinstance(SequenceTracker.for_stream("bnbbtc@aggTrade"), AggTradeTracker)
    assert isinstance(SequenceTracker.for_stream("bnbbtc@depth@100ms"), SpotDepthTracker)
    assert isinstance(SequenceTracker.for_stream("btcusdt@depth", USDM), FuturesDepthTracker)
    assert SequenceTracker.for_stream("bnbbtc@depth5") is None
    assert SequenceTracker.for_stream("bnbbtc@bookTicker") is None
    assert SequenceTracker.for_stream("bnbbtc@kline_1m") is None


@pytest.mark.parametrize(("tracker", "key"), [(TradeTracker, "t"), (AggTradeTracker, "a")])
def test_trade_ids(tracker: type[SequenceTracker], key: str) -> None:
    t = tracker()
    assert [t.observe({key: i}) for i in (10, 11, 11, 9, 14, 15)] == [OK, OK, DUPLICATE, DUPLICATE,
                                                                       gap(12, 13), OK]
    assert t.last == 15
    assert t.observe({"e": "other"}) is OK and t.last == 15
    t.reset()
    assert t.observe({key: 3}) is OK


def test_spot_depth_recorded_sequence() -> None:
    # Shapes from PROTOCOL 4.12: U/u ranges; the next event starts at u + 1.
    t = SpotDepthTracker()
    assert t.observe({"U": 100, "u": 105}) is OK
    assert t.observe({"U": 106, "u": 110}) is OK
    assert t.observe({"U": 106, "u": 110}) is DUPLICATE
    assert t.observe({"U": 104, "u": 112}) is OK  # overlaps what we have: still in sequence
    assert t.observe({"U": 120, "u": 125}) == gap(113, 119)


def test_futures_depth_pu_chain() -> None:
    # PROTOCOL 5.2 [OBS]: ids jump, pu links to the previous u.
    t = FuturesDepthTracker()
    assert t.observe({"U": 1000, "u": 1010, "pu": 990}) is OK
    assert t.observe({"U": 1050, "u": 1070, "pu": 1010}) is OK
    assert t.observe({"U": 1050, "u": 1070, "pu": 1010}) is DUPLICATE
    assert t.observe({"U": 1200, "u": 1300, "pu": 1150}) == gap(1071, 1150)




def test_real_futures_recording_is_one_unbroken_pu_chain() -> None:
    path = _RECORDINGS / "cryptofeed_BINANCE_FUTURES.ws.1.0"
    trackers: dict[str, FuturesDepthTracker] = {}
    seen = 0
    for line in path.read_text().splitlines()[1:]:
        _, _, body = line.partition(": ")
        try:
            msg = json.loads(body)
        except ValueError:
            continue
        if "@depth" in msg.get("stream", ""):
            tracker = trackers.setdefault(msg["stream"], FuturesDepthTracker())
            assert tracker.observe(msg["data"]) is OK
            seen += 1
    assert seen > 100


def test_real_spot_recording_has_no_gap_and_a_dropped_event_is_found() -> None:
    trackers: dict[str, SequenceTracker] = {}
    counts: dict[str, int] = {}
    dropped: dict[str, int] = {}
    with gzip.open(_RECORDINGS / "spot_btcusdt_20240808.hftbacktest.gz", "rt") as f:
        for line in f:
            msg = json.loads(line.partition(" ")[2])
            stream = msg.get("stream")
            if stream is None:
                continue  # the REST snapshot line
            tracker = trackers.get(stream) or trackers.setdefault(stream, SequenceTracker.for_stream(stream))
            if tracker is None:
                continue
            counts[stream] = counts.get(stream, 0) + 1
            if counts[stream] == 100:
                dropped[stream] = msg["data"]["t" if stream.endswith("@trade") else "U"]
                continue  # lose one event: the next one must report exactly its ids
            v = tracker.observe(msg["data"])
            if counts[stream] == 101:
                assert v.is_gap and v.first_missing == dropped[stream]
            else:
                assert v is OK, (stream, msg["data"])
    assert counts["btcusdt@trade"] > 9000 and counts["btcusdt@depth@100ms"] > 3000


@st.composite
def _ids_with_holes(draw: st.DrawFn) -> tuple[list[int], set[int]]:
    n = draw(st.integers(1, 300))
    removed = draw(st.sets(st.integers(1, n - 1), max_size=n - 1)) if n > 1 else set()
    return [i for i in range(1, n + 1) if i not in removed], removed


@given(_ids_with_holes(), st.integers(0, 2**32), st.randoms())
def test_id_tracker_finds_exactly_the_removed_ids(case: tuple[list[int], set[int]], base: int,
                                                  rnd: random.Random) -> None:
    kept, removed = case
    stream: list[int] = []
    for i in kept:
        stream.append(i)
        if stream and rnd.random() < 0.2:
            stream.append(rnd.choice(stream))  # a re-delivery, as during a rotation
    t = TradeTracker(last=base)
    missing: set[int] = set()
    delivered: list[int] = []
    for i in stream:
        v = t.observe({"t": base + i})
        if v is DUPLICATE:
            continue
        if v.is_gap:
            missing.update(range(v.first_missing - base, v.last_missing - base + 1))
        else:
            assert v is OK
        delivered.append(i)
    assert missing == removed
    assert delivered == kept


@given(st.lists(st.integers(1, 5), min_size=1, max_size=200), st.randoms())
def test_spot_depth_tracker_finds_exactly_the_removed_ids(sizes: list[int], rnd: random.Random) -> None:
    events = []
    first = 1
    for size in sizes:
        events.append((first, first + size - 1))
        first += size
    kept = [events[0]] + [e for e in events[1:-1] if rnd.random() < 0.7] + ([events[-1]] if len(events) > 1
                                                                           else [])
    removed = {i for e in events if e not in kept for i in range(e[0], e[1] + 1)}
    t = SpotDepthTracker()
    missing: set[int] = set()
    for U, u in kept:
        v = t.observe({"U": U, "u": u})
        if v.is_gap:
            missing.update(range(v.first_missing, v.last_missing + 1))
        assert t.observe({"U": U, "u": u}) is DUPLICATE
    assert missing == removed


@given(st.lists(st.integers(1, 50), min_size=2, max_size=200), st.randoms())
def test_futures_depth_gap_covers_the_lost_events(jumps: list[int], rnd: random.Random) -> None:
    events = []
    u = 0
    for j in jumps:
        U = u + j
        events.append({"U": U, "u": U + rnd.randint(0, 5), "pu": u})
        u = events[-1]["u"]
    t = FuturesDepthTracker()
    assert t.observe(events[0]) is OK
    previous = events[0]
    for e in events[1:]:
        if rnd.random() < 0.3 and e is not events[-1]:
            continue  # lost
        v = t.observe(e)
        if e["pu"] == previous["u"]:
            assert v is OK
        else:
            # Every lost event's ids lie in the reported range, and no delivered one does.
            lost = [x for x in events if previous["u"] < x["u"] <= e["pu"]]
            assert v.is_gap and lost
            assert all(v.first_missing <= x["U"] and x["u"] <= v.last_missing for x in lost)
            assert v.first_missing > previous["u"] and v.last_missing < e["U"]
        previous = e


# -- resets: ids that go backwards past a re-delivery, or jump absurdly far ahead ----------------------

@pytest.mark.parametrize(("tracker", "key"), [(TradeTracker, "t"), (AggTradeTracker, "a")])
def test_ids_restarting_far_below_are_a_reset_and_tracking_follows_them(tracker: type[SequenceTracker],
                                                                        key: str) -> None:
    # Ids restart after a reconnect (a reset exchange): before the fix every later event was a
    # "duplicate", dropped without a word.
    t = tracker()
    assert [t.observe({key: i}) for i in (500_000, 500_001)] == [OK, OK]
    assert t.observe({key: 7}) == reset(500_001, 7)
    assert [t.observe({key: i}) for i in (8, 9, 11)] == [OK, OK, gap(10, 10)]
    assert t.last == 11


def test_a_corrupt_id_far_ahead_is_a_reset_and_normal_flow_resumes_after_it() -> None:
    t = TradeTracker()
    assert t.observe({"t": 1000}) is OK
    far = 1000 + TradeTracker.max_jump + 1
    assert t.observe({"t": far}) == reset(1000, far)
    # The next good id is far below the corrupt one: a reset back, not a billion duplicates.
    assert t.observe({"t": 1001}) == reset(far, 1001)
    assert [t.observe({"t": i}) for i in (1002, 1003)] == [OK, OK]
    # The largest jump that is still a gap.
    assert t.observe({"t": 1003 + TradeTracker.max_jump}) == gap(1004, 1002 + TradeTracker.max_jump)


def test_duplicates_and_late_events_within_the_window_are_dropped() -> None:
    t = TradeTracker()
    assert t.observe({"t": 100_000}) is OK
    # A re-delivery of the last id, the oldest id the window covers, a reorder (counting down).
    for n in (100_000, 100_000 - TradeTracker.window + 1, 99_990, 99_989, 99_988):
        assert t.observe({"t": n}) is DUPLICATE, n
    assert t.observe({"t": 100_000 - TradeTracker.window}) == reset(100_000, 100_000 - TradeTracker.window)


def test_a_numbering_restarted_within_the_window_is_a_reset_on_its_second_event() -> None:
    t = TradeTracker()
    assert [t.observe({"t": i}) for i in (500, 501)] == [OK, OK]
    assert t.observe({"t": 1}) is DUPLICATE  # could be a re-delivery...
    assert t.observe({"t": 2}) == reset(501, 2, skipped=1)  # ...but re-deliveries never count up
    assert [t.observe({"t": i}) for i in (3, 4)] == [OK, OK]
    # A duplicate, then the next id in sequence, then a duplicate linking to the first: no run.
    assert [t.observe({"t": i}) for i in (3, 5, 4)] == [DUPLICATE, OK, DUPLICATE]


def test_depth_resets() -> None:
    spot = SpotDepthTracker()
    assert spot.observe({"U": 10_000_000, "u": 10_000_005}) is OK
    assert spot.observe({"U": 1, "u": 5}) == reset(10_000_005, 5)
    assert spot.observe({"U": 6, "u": 9}) is OK
    assert spot.observe({"U": 8, "u": 9}) is DUPLICATE
    futures = FuturesDepthTracker()
    assert futures.observe({"U": 600_860_425_000, "u": 600_860_425_198, "pu": 600_860_424_000}) is OK
    assert futures.observe({"U": 40, "u": 50, "pu": 30}) == reset(600_860_425_198, 50)
    assert futures.observe({"U": 60, "u": 70, "pu": 50}) is OK
    huge = 70 + FuturesDepthTracker.max_jump + 1
    assert futures.observe({"U": huge - 5, "u": huge, "pu": huge - 10}) == reset(70, huge)
    assert futures.observe({"U": huge + 1, "u": huge + 1000, "pu": huge}) is OK
    # Futures duplicates that count up within the window (pu links to the previous duplicate's u).
    assert futures.observe({"U": huge + 1, "u": huge + 10, "pu": huge - 50}) is DUPLICATE
    assert futures.observe({"U": huge + 11, "u": huge + 20, "pu": huge + 10}) == reset(huge + 1000, huge + 20,
                                                                                        skipped=huge + 10)


@given(st.lists(st.sampled_from(["next", "dup", "skip", "back", "far", "restart"]), max_size=60))
def test_raw_and_typed_readers_give_the_dict_verdicts(steps: list[str]) -> None:
    """Raw bytes and typed models are checked exactly like decoded dicts, for every id kind."""
    for stream, market in (("btcusdt@trade", SPOT), ("btcusdt@aggTrade", SPOT),
                           ("btcusdt@depth@100ms", SPOT), ("btcusdt@depth", USDM)):
        kind = SequenceTracker.for_stream(stream, market)
        assert kind is not None
        decode = decoder_for(stream, market if market is SPOT else SPOT)
        trackers = [SequenceTracker.for_stream(stream, market) for _ in range(3)]
        n = 1_000_000
        for step in steps:
            n = {"next": n + 1, "dup": n, "skip": n + 3, "back": n - 2, "far": n + kind.max_jump + 7,
                 "restart": max(1, n - kind.window - 1)}[step]
            payload: dict[str, object] = {"e": "x", "E": 1, "s": "BTCUSDT", "p": "1", "q": "1", "f": 1,
                                          "l": 1, "T": 1, "m": True}
            if "depth" in stream:
                payload.update(U=n - 1, u=n, b=[], a=[], **({"pu": n - 2} if market is USDM else {}))
            else:
                payload["t" if stream.endswith("@trade") else "a"] = n
            data = orjson.dumps(payload)
            d, r, t = trackers
            assert d.observe(payload) == r.observe_raw(data) == t.observe_typed(decode(data)), (stream, step)


def test_readers_pass_payloads_without_ids_and_refuse_unreadable_ones() -> None:
    t = TradeTracker(last=5)
    assert t.observe_raw(b'{"e":"other"}') is OK and t.observe_typed(object()) is OK and t.last == 5
    with pytest.raises(msgspec.DecodeError):
        t.observe_raw(b'{"e":"trade","t":"x"}')
    assert SpotDepthTracker(last=5).observe_raw(b'{"e":"depthUpdate","b":[]}') is OK
    assert TradeTracker().position(b'{"t": 42}') == 42
    assert SpotDepthTracker().position(b'{"U":1, "u":  9,"b":[["1","2"]]}') == 9
