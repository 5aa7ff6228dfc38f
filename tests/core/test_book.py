"""The order-book structure: ordering by numeric price, absolute quantities, value types, known range."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_ws.core.book import BookState, DepthCache, MalformedLevel, OrderBook


def _lv(price: str, qty: str) -> list[str]:
    return [price, qty]


def test_sides_are_best_first_and_ordered_by_number_not_string() -> None:
    book = OrderBook()
    # As strings "10.0" < "9.5" < "9.0"; as prices 9.0 < 9.5 < 10.0.
    book.load_snapshot([_lv("9.0", "1"), _lv("10.0", "2"), _lv("9.5", "3")],
                       [_lv("11.0", "1"), _lv("100.0", "2"), _lv("20.0", "3")], 7)
    assert book.get_bids() == [(10.0, 2.0), (9.5, 3.0), (9.0, 1.0)]
    assert book.get_asks() == [(11.0, 1.0), (20.0, 3.0), (100.0, 2.0)]
    assert book.best_bid() == (10.0, 2.0)
    assert book.best_ask() == (11.0, 1.0)
    assert book.get_bids(2) == [(10.0, 2.0), (9.5, 3.0)]
    assert book.get_asks(1) == [(11.0, 1.0)]
    assert book.get_bids(0) == []
    assert book.get_asks(50) == book.get_asks()
    assert book.update_id == 7


def test_absolute_quantities_zero_deletes_and_absent_delete_is_harmless() -> None:
    book = OrderBook()
    book.load_snapshot([_lv("1.00000000", "5.00000000")], [_lv("2.00000000", "5.00000000")], 1)
    book.apply([_lv("1.00000000", "3.00000000"), _lv("0.50000000", "1.00000000")],
               [_lv("2.00000000", "0.00000000"), _lv("3.00000000", "0.00000000")])
    assert book.get_bids() == [(1.0, 3.0), (0.5, 1.0)]
    assert book.get_asks() == []
    assert book.best_ask() is None
    # The same price written with fewer decimals is the same level.
    book.apply([_lv("1", "0")], [])
    assert book.get_bids() == [(0.5, 1.0)]


def test_value_types_keep_exactness() -> None:
    snap_b, snap_a = [_lv("0.10000000", "1.10000000")], [_lv("0.20000000", "2.00000000")]
    as_str = OrderBook("str")
    as_str.load_snapshot(snap_b, snap_a, 1)
    assert as_str.get_bids() == [("0.10000000", "1.10000000")]
    as_dec = OrderBook("decimal")
    as_dec.load_snapshot(snap_b, snap_a, 1)
    as_dec.apply([_lv("0.30000000", "0.70000000")], [])
    assert as_dec.get_bids() == [(Decimal("0.3"), Decimal("0.7")), (Decimal("0.1"), Decimal("1.1"))]
    assert isinstance(as_dec.best_ask()[0], Decimal)  # type: ignore[index]
    with pytest.raises(ValueError, match="value_type"):
        OrderBook("int")  # type: ignore[arg-type]


def test_full_snapshot_bounds_the_side_and_updates_beyond_are_ignored() -> None:
    book = OrderBook()
    bids = [_lv(str(p), "1") for p in (10, 9, 8)]
    asks = [_lv(str(p), "1") for p in (11, 12)]
    book.load_snapshot(bids, asks, 1, limit=3)
    # Bids came back full (3 of 3): below 8 is unknown. Asks came back short: the side is complete.
    assert book.bounds() == (8.0, None)
    book.apply([_lv("7", "4"), _lv("8.5", "2")], [_lv("50", "1")])
    assert book.get_bids() == [(10.0, 1.0), (9.0, 1.0), (8.5, 2.0), (8.0, 1.0)]
    assert book.get_asks()[-1] == (50.0, 1.0)


def test_trim_cuts_by_price_and_moves_the_boundary() -> None:
    book = OrderBook()
    # Prices whose string order differs from their numeric order.
    book.load_snapshot([_lv(p, "1") for p in ("9", "10", "100", "99.5")],
                       [_lv(p, "1") for p in ("101", "1000", "200")], 1)
    book.trim(2)
    assert book.get_bids() == [(100.0, 1.0), (99.5, 1.0)]
    assert book.get_asks() == [(101.0, 1.0), (200.0, 1.0)]
    assert book.bounds() == (99.5, 200.0)
    book.apply([_lv("50", "1")], [_lv("300", "1"), _lv("150", "1")])
    assert book.get_bids() == [(100.0, 1.0), (99.5, 1.0)]
    assert book.get_asks() == [(101.0, 1.0), (150.0, 1.0), (200.0, 1.0)]


def test_crossed_and_thin() -> None:
    book = OrderBook()
    book.load_snapshot([_lv("10", "1"), _lv("9", "1")], [_lv("11", "1"), _lv("12", "1")], 1, limit=2)
    assert not book.crossed()
    assert not book.thin(2)
    book.apply([_lv("9", "0")], [])
    assert book.thin(2)
    book.apply([_lv("11", "1")], [])
    assert book.crossed()


def test_depth_cache_adopts_a_new_book_in_one_step() -> None:
    cache = DepthCache("BTCUSDT")
    assert cache.state is BookState.SYNCING
    fresh = OrderBook()
    fresh.load_snapshot([_lv("1", "1")], [_lv("2", "1")], 42, update_time=5)
    cache.adopt(fresh)
    assert (cache.update_id, cache.update_time, cache.best_bid()) == (42, 5, (1.0, 1.0))
    assert "BTCUSDT" in repr(cache)
    twin = cache.copy()
    cache.apply([_lv("1", "0")], [_lv("3", "2")])
    cache.state = BookState.STALE
    assert (twin.get_bids(), twin.get_asks(), twin.state) == ([(1.0, 1.0)], [(2.0, 1.0)], BookState.SYNCING)
    assert twin.update_id == 42 and twin.symbol == "BTCUSDT"


BAD_LEVELS: list[tuple[object, str]] = [
    (["nan", "1"], "price"),
    (["inf", "1"], "price"),
    (["-1.5", "1"], "price"),
    (["0", "1"], "price"),
    (["2.5", "nan"], "quantity"),
    (["2.5", "-inf"], "quantity"),
    (["2.5", "-1"], "quantity"),
    (["abc", "1"], "pair"),
    ([None, "1"], "pair"),
    (["2.5"], "pair"),
    (None, "pair"),
    (["1e400", "1"], "price"),  # overflows to inf
]


@pytest.mark.parametrize(("bad", "why"), BAD_LEVELS)
@pytest.mark.parametrize("side", ["bid", "ask"])
@pytest.mark.parametrize("value_type", ["float", "decimal", "str"])
def test_bad_numbers_are_refused_and_the_book_stays_readable(bad: object, why: str, side: str,
                                                             value_type: str) -> None:
    book = OrderBook(value_type)  # type: ignore[arg-type]
    book.load_snapshot([_lv("1", "1"), _lv("2", "1"), _lv("3", "1")], [_lv("5", "1"), _lv("6", "1")], 1)
    levels = [_lv("4.5" if side == "ask" else "2.5", "7"), bad]
    with pytest.raises(MalformedLevel) as info:
        book.apply(levels if side == "bid" else [], levels if side == "ask" else [])
    assert info.value.side == side and info.value.level == bad and why in info.value.why
    # The bad level never reached the keys: deletes hit the right level and every read works.
    book.apply([_lv("2", "0")], [_lv("5", "0")])
    prices_b = [float(p) for p, _ in book.get_bids()]
    prices_a = [float(p) for p, _ in book.get_asks()]
    assert prices_b == sorted(prices_b, reverse=True) and 2.0 not in prices_b
    assert prices_a == sorted(prices_a) and 5.0 not in prices_a
    assert book.depth() == (len(book._bids.levels), len(book._asks.levels))
    assert book.best_bid() == book.get_bids(1)[0] and book.best_ask() == book.get_asks(1)[0]


@pytest.mark.parametrize(("bad", "why"), BAD_LEVELS[:8])
def test_a_snapshot_with_a_bad_number_is_refused(bad: object, why: str) -> None:
    book = OrderBook()
    with pytest.raises(MalformedLevel, match=why):
        book.load_snapshot([_lv("1", "1"), bad], [_lv("2", "1")], 1)  # type: ignore[list-item]
    with pytest.raises(MalformedLevel):
        book.load_snapshot([_lv("1", "1")], None, 1)  # type: ignore[arg-type]


def test_json_numbers_are_accepted_as_the_number_they_are() -> None:
    book = OrderBook("decimal")
    book.load_snapshot([[0.1, 2]], [["0.2", "1"]], 1)  # type: ignore[list-item]
    book.apply([[0.3, 1.5]], [])  # type: ignore[list-item]
    assert book.get_bids() == [(Decimal("0.3"), Decimal("1.5")), (Decimal("0.1"), Decimal("2"))]
    as_float = OrderBook()
    as_float.load_snapshot([[0.1, 2]], [], 1)  # type: ignore[list-item]
    assert as_float.get_bids() == [(0.1, 2.0)]


_prices = st.integers(min_value=1, max_value=400).map(lambda t: f"{t / 4:.8f}")
_qtys = st.sampled_from(["0.00000000", "0", "1.00000000", "2.50000000", "0.00100000"])
_levels = st.lists(st.tuples(_prices, _qtys), max_size=12)
Levels = list[tuple[str, str]]


@settings(max_examples=150, deadline=None)
@given(snapshot=_levels, diffs=st.lists(st.tuples(_levels, _levels), max_size=20),
       top=st.integers(min_value=1, max_value=30))
def test_book_matches_a_naive_dict_and_sort_book(snapshot: Levels, diffs: list[tuple[Levels, Levels]],
                                                top: int) -> None:
    """Whatever the updates, the incrementally sorted book equals the naive one rebuilt by sorting."""
    book = OrderBook()
    book.load_snapshot(snapshot, snapshot, 1)
    ref_b = {float(p): float(q) for p, q in snapshot if float(q)}
    ref_a = dict(ref_b)
    for bids, asks in diffs:
        book.apply(bids, asks)
        for ref, levels in ((ref_b, bids), (ref_a, asks)):
            for p, q in levels:
                if float(q):
                    ref[float(p)] = float(q)
                else:
                    ref.pop(float(p), None)
        assert book.get_bids() == sorted(ref_b.items(), reverse=True)
        assert book.get_asks() == sorted(ref_a.items())
        assert book.get_bids(top) == sorted(ref_b.items(), reverse=True)[:top]
        assert book.get_asks(top) == sorted(ref_a.items())[:top]
