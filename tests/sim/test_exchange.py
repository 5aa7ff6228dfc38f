"""The matching engine: price-time priority, order types, filters, update ids, trade records, the flow."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_ws.sim.clock import SimClock
from binance_ws.sim.config import DEFAULT_SYMBOLS, SymbolSpec
from binance_ws.sim.exchange import (
    SCALE,
    AggTrade,
    BadParameterError,
    Exchange,
    ExchangeError,
    FilterFailureError,
    InvalidSymbolError,
    OrderEvent,
    OrderRejectedError,
    SymbolBook,
    Trade,
    UnknownOrderError,
    bar_close,
    bar_open,
    fmt,
)
from binance_ws.sim.flow import OrderFlow

SPEC = SymbolSpec("TESTUSDT", "TEST", "USDT", 100.0, tick_size="0.01000000", step_size="0.00100000",
                  min_notional="1.00000000")


class Recorder:
    """A book listener that keeps every engine event in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_level(self, book: SymbolBook, is_bid: bool, price: int, qty: int) -> None:
        self.events.append(("level", book.update_id, is_bid, price, qty))

    def on_trade(self, book: SymbolBook, trade: Trade) -> None:
        self.events.append(("trade", trade.id, trade.price, trade.qty, trade.buyer_is_maker, trade.agg_id))

    def on_agg_trade(self, book: SymbolBook, agg: AggTrade) -> None:
        self.events.append(("agg", agg.id, agg.price, agg.qty, agg.first_id, agg.last_id))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == kind]


@pytest.fixture
def ex() -> Exchange:
    return Exchange((SPEC,), SimClock())


def u(value: str) -> int:
    return round(float(value) * SCALE)


def test_price_time_priority_and_partial_fills(ex: Exchange) -> None:
    rec = Recorder()
    ex.add_listener(rec)
    first = ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", "100.00")
    second = ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", "100.00")
    ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", "99.99")
    taker = ex.place_order("TESTUSDT", "BUY", "LIMIT", "2.5", "100.00", "GTC")

    # Best price first, then the earlier order at the same price.
    assert [(f["price"], f["qty"]) for f in taker["fills"]] == [
        ("99.99000000", "1.00000000"), ("100.00000000", "1.00000000"), ("100.00000000", "0.50000000")]
    assert taker["status"] == "FILLED" and taker["executedQty"] == "2.50000000"
    assert taker["cummulativeQuoteQty"] == "249.99000000"
    assert first["orderId"] < second["orderId"]
    bids, asks = ex.book_levels("TESTUSDT")
    assert bids == {} and asks == {"100.00000000": "0.50000000"}
    open_order = ex.orders[second["orderId"]]
    assert open_order.status == "PARTIALLY_FILLED" and fmt(open_order.remaining) == "0.50000000"
    # One aggregate trade per taker order per price (PROTOCOL 4.1): two prices, three fills.
    aggs = rec.of("agg")
    assert [(a[2], a[3], a[4], a[5]) for a in aggs] == [
        (u("99.99"), u("1"), 1, 1), (u("100"), u("1.5"), 2, 3)]
    assert all(t[4] is False for t in rec.of("trade"))  # a buying taker: the buyer is not the maker


def test_every_level_change_advances_update_id_by_exactly_one(ex: Exchange) -> None:
    rec = Recorder()
    ex.add_listener(rec)
    for price in ("100.01", "100.02", "100.03"):
        ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", price)
        ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", price)
    ex.place_order("TESTUSDT", "BUY", "LIMIT", "1", "99.00")
    ex.place_order("TESTUSDT", "BUY", "MARKET", "4.5")  # sweeps 100.01, 100.02, half of 100.03
    levels = rec.of("level")
    assert [e[1] for e in levels] == list(range(1, len(levels) + 1))
    assert ex.symbols["TESTUSDT"].update_id == len(levels)
    # The sweep changed three levels: three level events, whatever the number of fills in each.
    assert [(e[3], e[4]) for e in levels[-3:]] == [
        (u("100.01"), 0), (u("100.02"), 0), (u("100.03"), u("1.5"))]
    assert len(rec.of("trade")) == 5


def test_time_in_force_and_order_types(ex: Exchange) -> None:
    book = ex.symbols["TESTUSDT"]
    ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", "100.00")
    before = book.update_id
    fok = ex.place_order("TESTUSDT", "BUY", "LIMIT", "2", "100.00", "FOK")
    assert fok["status"] == "EXPIRED" and fok["fills"] == [] and book.update_id == before
    ioc = ex.place_order("TESTUSDT", "BUY", "LIMIT", "2", "100.00", "IOC")
    assert ioc["status"] == "EXPIRED" and ioc["executedQty"] == "1.00000000"
    assert ex.book_levels("TESTUSDT") == ({}, {})  # the IOC remainder never rests
    ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", "100.00")
    with pytest.raises(OrderRejectedError) as err:
        ex.place_order("TESTUSDT", "BUY", "LIMIT_MAKER", "1", "100.00")
    assert err.value.code == -2010
    maker = ex.place_order("TESTUSDT", "BUY", "LIMIT_MAKER", "1", "99.99")
    assert maker["status"] == "NEW" and "workingTime" in maker
    market = ex.place_order("TESTUSDT", "BUY", "MARKET", "3")
    assert market["status"] == "EXPIRED" and market["executedQty"] == "1.00000000"
    assert ex.place_order("TESTUSDT", "SELL", "MARKET", "1")["status"] == "FILLED"


@pytest.mark.parametrize(("kwargs", "error", "code", "msg"), [
    ({"symbol": "NOPE"}, InvalidSymbolError, -1121, "Invalid symbol."),
    ({"price": "100.005"}, FilterFailureError, -1013, "Filter failure: PRICE_FILTER"),
    ({"quantity": "1.0005"}, FilterFailureError, -1013, "Filter failure: LOT_SIZE"),
    ({"quantity": "0.001", "price": "1.00"}, FilterFailureError, -1013, "Filter failure: NOTIONAL"),
    ({"price": "0.000000001"}, FilterFailureError, -1013, "Filter failure: PRICE_FILTER"),
    ({"side": "HOLD"}, BadParameterError, -1102, None),
    ({"quantity": "-1"}, BadParameterError, -1102, None),
    ({"price": None}, BadParameterError, -1102, None),
    ({"order_type": "STOP"}, BadParameterError, -1116, "Invalid orderType."),
    ({"time_in_force": "GTX"}, BadParameterError, -1115, "Invalid timeInForce."),
])
def test_invalid_orders_raise_binance_codes(ex: Exchange, kwargs: dict[str, Any], error: type[ExchangeError],
                                            code: int, msg: str | None) -> None:
    args: dict[str, Any] = {"symbol": "TESTUSDT", "side": "BUY", "order_type": "LIMIT", "quantity": "1",
                            "price": "100.00"} | kwargs
    before = ex.symbols["TESTUSDT"].update_id
    with pytest.raises(error) as err:
        ex.place_order(**args)
    assert err.value.code == code
    if msg is not None:
        assert err.value.msg == msg
    assert ex.symbols["TESTUSDT"].update_id == before


def test_orders_on_a_symbol_not_trading_are_rejected() -> None:
    halted = SymbolSpec("HALTUSDT", "HALT", "USDT", 1.0, status="HALT")
    ex = Exchange((halted,), SimClock())
    with pytest.raises(OrderRejectedError) as err:
        ex.place_order("HALTUSDT", "BUY", "LIMIT", "10", "1.00")
    assert (err.value.code, err.value.msg) == (-2010, "Market is closed.")


def test_cancel_and_order_listener(ex: Exchange) -> None:
    events: list[OrderEvent] = []
    ex.add_order_listener("alice", events.append)
    placed = ex.place_order("TESTUSDT", "SELL", "LIMIT", "2", "100.00", owner="alice", client_order_id="a1")
    ex.place_order("TESTUSDT", "BUY", "MARKET", "0.5")
    before = ex.symbols["TESTUSDT"].update_id
    cancelled = ex.cancel_order("TESTUSDT", placed["orderId"])
    assert cancelled["status"] == "CANCELED" and cancelled["clientOrderId"] == "a1"
    assert ex.symbols["TESTUSDT"].update_id == before + 1
    assert ex.book_levels("TESTUSDT") == ({}, {})
    with pytest.raises(UnknownOrderError):
        ex.cancel_order("TESTUSDT", placed["orderId"])
    assert [(e.kind, e.is_maker) for e in events] == [("NEW", False), ("TRADE", True), ("CANCELED", False)]
    assert events[1].trade is not None and fmt(events[1].trade.qty) == "0.50000000"
    ex.remove_order_listener("alice", events.append)
    ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", "100.00", owner="alice")
    assert len(events) == 3


def test_trade_history_rest_shapes(ex: Exchange) -> None:
    for _ in range(5):
        ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", "100.00")
        ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", "100.01")
        ex.place_order("TESTUSDT", "BUY", "MARKET", "2")
    trades = ex.trades("TESTUSDT", 3)
    assert [t["id"] for t in trades] == [8, 9, 10]
    assert set(trades[0]) == {"id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"}
    assert [t["id"] for t in ex.trades("TESTUSDT", 2, from_id=4)] == [4, 5]
    aggs = ex.agg_trades("TESTUSDT", 100)
    assert len(aggs) == 10 and set(aggs[0]) == {"a", "p", "q", "f", "l", "T", "m", "M"}
    assert [a["a"] for a in ex.agg_trades("TESTUSDT", 3, from_id=9)] == [9, 10]
    t0 = aggs[0]["T"]
    assert ex.agg_trades("TESTUSDT", 100, start_time=t0, end_time=aggs[-1]["T"]) == aggs
    assert ex.agg_trades("TESTUSDT", 100, start_time=aggs[-1]["T"] + 1) == []
    klines = ex.klines("TESTUSDT", "1m", 10)
    assert sum(float(k[5]) for k in klines) == pytest.approx(10.0)
    assert all(k[6] == k[0] + 59_999 for k in klines)


def test_klines_fill_bars_without_trades_at_the_previous_close() -> None:
    clock = SimClock()
    ex = Exchange((SPEC,), clock)
    for price in ("100.00", "101.00"):
        ex.place_order("TESTUSDT", "SELL", "LIMIT", "1", price)
        ex.place_order("TESTUSDT", "BUY", "MARKET", "1")
        clock.advance(3_000)
    rows = ex.klines("TESTUSDT", "1s", 100)
    assert [r[0] for r in rows] == list(range(rows[0][0], rows[0][0] + 1_000 * len(rows), 1_000))
    assert len(rows) in (4, 5)  # 3 s apart: two traded bars and the empty ones between them
    assert rows[0][1:6] == ["100.00000000"] * 4 + ["1.00000000"]
    for empty in rows[1:-1]:
        assert empty[1:6] == ["100.00000000"] * 4 + ["0.00000000"] and empty[8] == 0
    assert rows[-1][4] == "101.00000000" and rows[-1][8] == 1
    assert ex.klines("TESTUSDT", "1s", 2, start_time=rows[0][0]) == rows[:2]
    assert ex.klines("TESTUSDT", "1s", 2) == rows[-2:]


def test_bar_bounds_follow_the_calendar() -> None:
    t = 1_723_161_255_343  # Thursday 2024-08-08 23:54:15.343 UTC = Friday 07:54 at UTC+8
    h8 = 8 * 3_600_000
    assert bar_open("1m", t) == 1_723_161_240_000
    assert bar_close("1m", 1_723_161_240_000) == 1_723_161_299_999
    assert bar_open("1d", t) == 1_723_075_200_000  # 2024-08-08 00:00 UTC
    assert bar_open("1d", t, h8) == 1_723_132_800_000  # 2024-08-09 00:00 UTC+8 = 08-08 16:00 UTC
    assert bar_open("1w", t) == 1_722_816_000_000  # Monday 2024-08-05 00:00 UTC
    assert bar_open("1M", t) == 1_722_470_400_000  # 2024-08-01 00:00 UTC
    assert bar_close("1M", 1_722_470_400_000) == 1_725_148_800_000 - 1  # 2024-09-01 00:00 UTC - 1 ms
    # 2024-07-31 20:00 UTC is already August at UTC+8.
    assert bar_open("1M", 1_722_470_400_000 - 4 * 3_600_000, h8) == 1_722_470_400_000 - h8
    assert bar_open("1M", 1_722_470_400_000 - 4 * 3_600_000) == 1_719_792_000_000  # 2024-07-01 UTC


def test_flow_is_deterministic_for_a_seed_and_keeps_books_deep() -> None:
    def run(seed: int) -> tuple[list[tuple[Any, ...]], list[Any]]:
        ex = Exchange(DEFAULT_SYMBOLS, SimClock())
        rec = Recorder()
        ex.add_listener(rec)
        OrderFlow(ex, seed).step(20_000)
        return rec.events, [ex.book_levels(s) for s in ex.symbols]

    events, books = run(7)
    again, books_again = run(7)
    assert events == again and books == books_again
    assert run(8)[0] != events
    assert any(e[0] == "trade" for e in events)
    for bids, asks in books:
        assert len(bids) >= 10 and len(asks) >= 10
        assert max(map(float, bids)) < min(map(float, asks))


def test_flow_without_symbols_does_nothing() -> None:
    ex = Exchange((), SimClock())
    OrderFlow(ex, 1).step(100)
    assert ex.next_order_id == 1


actions = st.lists(st.tuples(
    st.sampled_from(["LIMIT", "LIMIT", "LIMIT_MAKER", "MARKET", "IOC", "FOK", "CANCEL"]),
    st.booleans(), st.integers(9_990, 10_010), st.integers(20, 3_000)), max_size=80)


@settings(max_examples=60, deadline=None)
@given(actions)
def test_book_invariants_hold_for_any_order_sequence(seq: list[tuple[str, bool, int, int]]) -> None:
    ex = Exchange((SPEC,), SimClock())
    rec = Recorder()
    ex.add_listener(rec)
    book = ex.symbols["TESTUSDT"]
    placed: list[int] = []
    for kind, buy, ticks, steps in seq:
        side = "BUY" if buy else "SELL"
        price, qty = fmt(ticks * book.tick), fmt(steps * book.step)
        try:
            if kind == "CANCEL":
                if placed:
                    ex.cancel_order("TESTUSDT", placed.pop(ticks % len(placed)))
            elif kind in ("IOC", "FOK"):
                ex.place_order("TESTUSDT", side, "LIMIT", qty, price, kind)
            elif kind == "MARKET":
                ex.place_order("TESTUSDT", side, "MARKET", qty)
            else:
                placed.append(ex.place_order("TESTUSDT", side, kind, qty, price)["orderId"])
        except (OrderRejectedError, UnknownOrderError):
            pass
        # Never crossed; each level's total is the sum of its resting orders.
        bb, ba = book.best_bid(), book.best_ask()
        assert bb is None or ba is None or bb[0] < ba[0]
        for side_levels in (book.bids, book.asks):
            for p, level in side_levels.items():
                assert level.qty == sum(o.remaining for o in level.orders) > 0
                assert p % book.tick == 0
    levels = rec.of("level")
    assert book.update_id == len(levels)
    # Replaying the level events alone reproduces the book: they are a complete diff stream.
    rebuilt: tuple[dict[int, int], dict[int, int]] = ({}, {})
    for _, _, is_bid, p, q in levels:
        side_book = rebuilt[0] if is_bid else rebuilt[1]
        if q:
            side_book[p] = q
        else:
            side_book.pop(p, None)
    assert rebuilt == ({p: lv.qty for p, lv in book.bids.items()}, {p: lv.qty for p, lv in book.asks.items()})
    trades = rec.of("trade")
    assert [t[1] for t in trades] == list(range(1, len(trades) + 1))
    assert sum(a[3] for a in rec.of("agg")) == sum(t[3] for t in trades)
