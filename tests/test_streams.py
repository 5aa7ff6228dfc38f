"""Stream names: builders, validation messages that name the fix, parsing, cadences, kline bars."""

from __future__ import annotations

import calendar
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_ws import streams
from binance_ws.enums import KLINE_INTERVALS_MS, WEBSOCKET_DEPTH_5, WEBSOCKET_DEPTH_20
from binance_ws.errors import InvalidStreamError
from binance_ws.markets import SPOT, USDM


def test_builders_produce_binance_names() -> None:
    assert streams.trade("BNBBTC") == "bnbbtc@trade"
    assert streams.agg_trade("bnbbtc") == "bnbbtc@aggTrade"
    assert streams.kline("BNBBTC") == "bnbbtc@kline_1m"
    assert streams.kline("BNBBTC", "1M", utc8=True) == "bnbbtc@kline_1M@+08:00"
    assert streams.depth("BNBBTC") == "bnbbtc@depth"
    assert streams.depth("BNBBTC", speed_ms=100) == "bnbbtc@depth@100ms"
    assert streams.depth("BNBBTC", speed_ms=1000) == "bnbbtc@depth"
    assert streams.depth("BNBBTC", WEBSOCKET_DEPTH_5) == "bnbbtc@depth5"
    assert streams.depth("BNBBTC", 20, 100) == "bnbbtc@depth20@100ms"
    assert streams.book_ticker("BNBBTC") == "bnbbtc@bookTicker"
    assert streams.mini_ticker() == "!miniTicker@arr"
    assert streams.mini_ticker("BNBBTC") == "bnbbtc@miniTicker"
    assert streams.ticker("BNBBTC") == "bnbbtc@ticker"
    assert streams.rolling_ticker("BNBBTC", "4h") == "bnbbtc@ticker_4h"
    assert streams.rolling_ticker(None, "1d") == "!ticker_1d@arr"
    assert streams.avg_price("BNBBTC") == "bnbbtc@avgPrice"


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda: streams.kline("BNBBTC", "2m"), "unknown kline interval '2m'; valid: 1s 1m 3m"),
    (lambda: streams.kline("BNBBTC", "1H"), "did you mean '1h'?"),
    (lambda: streams.depth("BNBBTC", 7), "depth level 7 is not one of 5, 10, 20"),
    (lambda: streams.depth("BNBBTC", "7"), "depth level '7' is not one of 5, 10, 20"),
    (lambda: streams.depth("BNBBTC", speed_ms=250), "250 ms is not one of 100, 1000 ms"),
    (lambda: streams.rolling_ticker("BNBBTC", "2h"), "valid: 1h 4h 1d"),
    (lambda: streams.trade(""), "symbol is empty"),
    (lambda: streams.trade("BNB BTC"), "is not a Binance symbol"),
    (lambda: streams.trade("bnbbtc@trade"), "looks like a stream name"),
    (lambda: streams.trade("X" * 21), "longer than 20"),
])
def test_builders_refuse_with_the_fix(call, fragment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidStreamError) as err:
        call()
    assert fragment in str(err.value)


@pytest.mark.parametrize(("name", "fragment"), [
    ("BNBBTC@trade", "stream names use lowercase symbols: did you mean 'bnbbtc@trade'?"),
    ("bnbbtc@kline_2m", "unknown kline interval '2m'; valid: 1s 1m 3m 5m"),
    ("bnbbtc@depth7", "depth level 7 is not one of 5, 10, 20"),
    ("bnbbtc@depth@1000ms", "drop '@1000ms'"),
    ("bnbbtc@aggtrade", "did you mean 'bnbbtc@aggTrade'?"),
    ("bnbbtc@foo", "unknown stream type 'foo'"),
    ("bnbbtc", "has no '@<type>'"),
    ("@trade", "no symbol"),
    ("bnbbtc@trade@100ms", "takes no '@100ms'"),
    ("bnbbtc@kline_1m@+09:00", "the only kline suffix is '@+08:00'"),
    ("!ticker@arr", "retired by Binance on 2026-03-26"),
    ("!bookTicker", "'<symbol>@bookTicker'"),
    ("!ticker_2h@arr", "unknown ticker window '2h'"),
    ("!whatever", "unknown all-market stream"),
    ("", "non-empty"),
])
def test_validate_stream_names_the_fix(name: str, fragment: str) -> None:
    with pytest.raises(InvalidStreamError) as err:
        streams.validate_stream(name)
    assert fragment in str(err.value)


def test_retired_ticker_array_names_its_replacements() -> None:
    with pytest.raises(InvalidStreamError) as err:
        streams.validate_stream("!ticker@arr")
    assert "@ticker" in str(err.value) and "!miniTicker@arr" in str(err.value)


def test_user_streams_are_recognised_and_refused_in_market_lists() -> None:
    key = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
    assert streams.is_user_stream(key)
    assert not streams.is_user_stream("bnbbtc@trade")
    assert not streams.is_user_stream("!miniTicker@arr")
    with pytest.raises(InvalidStreamError, match="start_user_socket"):
        streams.validate_stream(key)
    assert streams.validate_stream(key, allow_user=True) == key
    assert streams.parse_stream(key).kind == "userData"


def test_market_rules_apply() -> None:
    assert streams.validate_stream("bnbbtc@kline_1s") == "bnbbtc@kline_1s"
    with pytest.raises(InvalidStreamError, match="spot only"):
        streams.validate_stream("btcusdt@kline_1s", USDM)
    assert streams.validate_stream("btcusdt@depth@0ms", USDM) == "btcusdt@depth@0ms"
    assert streams.validate_stream("btcusdt@depth5@500ms", USDM) == "btcusdt@depth5@500ms"
    with pytest.raises(InvalidStreamError):
        streams.validate_stream("btcusdt@depth@500ms", SPOT)
    with pytest.raises(InvalidStreamError, match="250 ms is the default"):
        streams.validate_stream("btcusdt@depth@250ms", USDM)
    assert streams.validate_stream("btcusdt@markPrice@1s", USDM)
    assert streams.validate_stream("!ticker@arr", USDM) == "!ticker@arr"
    with pytest.raises(InvalidStreamError):
        streams.validate_stream("btcusdt@markPrice", SPOT)
    assert streams.validate_stream("btcusd_perp@aggTrade", USDM)


def test_parse_stream_fields() -> None:
    info = streams.parse_stream("bnbbtc@depth10@100ms")
    assert (info.symbol, info.kind, info.levels, info.speed_ms) == ("BNBBTC", "depthN", 10, 100)
    assert info.params == {"levels": 10, "speed_ms": 100}
    info = streams.parse_stream("bnbbtc@depth")
    assert (info.kind, info.levels, info.speed_ms) == ("depth", None, 1000)
    info = streams.parse_stream("ethusdt@kline_4h@+08:00")
    assert (info.symbol, info.kind, info.interval, info.utc8) == ("ETHUSDT", "kline", "4h", True)
    assert streams.parse_stream("!miniTicker@arr") == streams.StreamInfo("!miniTicker@arr", "miniTickerArr")
    info = streams.parse_stream("!ticker_4h@arr")
    assert (info.kind, info.window, info.symbol) == ("rollingTickerArr", "4h", None)


_symbols = st.sampled_from(["BNBBTC", "btcusdt", "EthUsdt", "1000SATSUSDT"])


@st.composite
def _built(draw: st.DrawFn) -> tuple[str, str, dict[str, object]]:
    symbol = draw(_symbols)
    which = draw(st.sampled_from(["trade", "kline", "depth", "depthN", "rolling", "simple"]))
    if which == "trade":
        return streams.trade(symbol), "trade", {}
    if which == "kline":
        interval = draw(st.sampled_from(list(KLINE_INTERVALS_MS)))
        utc8 = draw(st.booleans())
        expect: dict[str, object] = {"interval": interval}
        if utc8:
            expect["utc8"] = True
        return streams.kline(symbol, interval, utc8), "kline", expect
    if which in ("depth", "depthN"):
        levels = None if which == "depth" else draw(st.sampled_from([5, 10, 20, WEBSOCKET_DEPTH_20]))
        speed = draw(st.sampled_from([None, 100, 1000]))
        expect = {"speed_ms": speed or 1000}
        if levels is not None:
            expect["levels"] = int(levels)
        return streams.depth(symbol, levels, speed), which, expect
    if which == "rolling":
        window = draw(st.sampled_from(["1h", "4h", "1d"]))
        return streams.rolling_ticker(symbol, window), "rollingTicker", {"window": window}
    builder, kind = draw(st.sampled_from([
        (streams.agg_trade, "aggTrade"), (streams.book_ticker, "bookTicker"), (streams.ticker, "ticker"),
        (streams.avg_price, "avgPrice"), (streams.mini_ticker, "miniTicker")]))
    return builder(symbol), kind, {}


@given(_built())
def test_every_built_name_validates_and_parses_back(built: tuple[str, str, dict[str, object]]) -> None:
    name, kind, params = built
    assert streams.validate_stream(name) == name
    info = streams.parse_stream(name)
    assert info.kind == kind
    assert info.params == params
    assert info.symbol is not None and name.startswith(info.symbol.lower() + "@")


def test_expected_cadence() -> None:
    assert streams.expected_cadence_s("bnbbtc@trade") is None
    assert streams.expected_cadence_s("bnbbtc@aggTrade") is None
    assert streams.expected_cadence_s("bnbbtc@bookTicker") is None
    assert streams.expected_cadence_s("bnbbtc@ticker") == 1.0
    assert streams.expected_cadence_s("!miniTicker@arr") == 1.0
    assert streams.expected_cadence_s("bnbbtc@kline_1m") == 2.0
    assert streams.expected_cadence_s("bnbbtc@kline_1s") == 1.0
    assert streams.expected_cadence_s("bnbbtc@depth") == 1.0
    assert streams.expected_cadence_s("bnbbtc@depth5@100ms") == 0.1
    assert streams.expected_cadence_s("btcusdt@depth", USDM) == 0.25
    assert streams.expected_cadence_s("btcusdt@depth@0ms", USDM) is None
    assert streams.expected_cadence_s("btcusdt@kline_1m", USDM) == 0.25
    assert streams.expected_cadence_s("btcusdt@markPrice", USDM) == 3.0
    assert streams.expected_cadence_s("btcusdt@markPrice@1s", USDM) == 1.0
    assert streams.expected_cadence_s("btcusdt@ticker", USDM) == 2.0
    assert streams.expected_cadence_s("a" * 64) is None


def test_kline_bounds_known_bars() -> None:
    t = 1723161255343  # 2024-08-09 00:34:15 UTC, a Friday
    assert streams.kline_bounds("1m", t) == (1723161240000, 1723161299999)
    assert streams.kline_bounds("1w", t) == (1722816000000, 1723420799999)  # Monday 2024-08-05
    assert streams.kline_bounds("1M", t) == (1722470400000, 1725148799999)  # August 2024
    # UTC+8: the day opens at 16:00 UTC the day before.
    assert streams.kline_bounds("1d", t, utc8=True) == (1723132800000, 1723219199999)
    with pytest.raises(InvalidStreamError):
        streams.kline_bounds("2m", t)


@given(st.sampled_from(list(KLINE_INTERVALS_MS)), st.integers(0, 4_000_000_000_000), st.booleans())
def test_kline_bounds_hold_the_time(interval: str, t: int, utc8: bool) -> None:
    start, end = streams.kline_bounds(interval, t, utc8)
    assert start <= t <= end
    # Consecutive bars tile time: the next bar opens right after this one closes.
    assert streams.kline_bounds(interval, end + 1, utc8)[0] == end + 1
    shift = 8 * 3_600_000 if utc8 else 0
    if interval == "1M":
        tm = time.gmtime((start + shift) // 1000)
        assert (tm.tm_mday, tm.tm_hour, tm.tm_min) == (1, 0, 0)
        assert end - start + 1 == calendar.monthrange(tm.tm_year, tm.tm_mon)[1] * 86_400_000
    else:
        assert end - start + 1 == KLINE_INTERVALS_MS[interval]
    if interval == "1w":
        assert time.gmtime((start + shift) // 1000).tm_wday == 0


_alphabet = st.sampled_from([*"abcBTC019@!_-.:+/ ", "kline_", "depth", "@100ms", "ticker_", "arr", "é"])


_pieces = st.lists(st.sampled_from(["trade", "aggTrade", "depth", "5", "10", "7", "@", "100ms", "500ms",
                                     "0ms", "kline_", "1m", "2m", "ticker", "_1h", "+08:00", "markPrice",
                                     "1s", "bookTicker"]), max_size=5).map("".join)
_near_names = st.builds(lambda sym, rest: f"{sym}@{rest}",
                        st.sampled_from(["btcusdt", "BTCUSDT", "btcusd_perp", "", "!ticker"]), _pieces)


@given(st.one_of(st.text(max_size=40), st.lists(_alphabet, max_size=12).map("".join), _near_names),
       st.sampled_from([SPOT, USDM]))
def test_any_text_parses_or_is_refused_cleanly(name: str, market: object) -> None:
    try:
        info = streams.parse_stream(name, market)  # type: ignore[arg-type]
    except InvalidStreamError as exc:
        assert str(exc)
        return
    assert info.name == name
    # Whatever parses has a cadence answer and validates the same way.
    streams.expected_cadence_s(name, market)  # type: ignore[arg-type]
    if info.kind != "userData":
        assert streams.validate_stream(name, market) == name  # type: ignore[arg-type]


@pytest.mark.parametrize("names", [[1, None], [b"x"], b"x", None, 5, ["bnbbtc@trade", 7]], ids=repr)
def test_stream_list_refuses_what_is_not_strings(names: object) -> None:
    with pytest.raises(InvalidStreamError, match="stream name"):
        streams.stream_list(names)  # type: ignore[arg-type]
    assert streams.stream_list("bnbbtc@trade") == ["bnbbtc@trade"]
    assert streams.stream_list(("a", "b")) == ["a", "b"]
    assert streams.is_user_stream(5) is False  # type: ignore[arg-type]
    with pytest.raises(InvalidStreamError, match="depth level inf"):
        streams.depth("BNBBTC", float("inf"))  # type: ignore[arg-type]


# -- futures names, declared per product (PROTOCOL 8) ---------------------------------------------------

def test_every_documented_futures_stream_parses_with_its_kind_and_cadence() -> None:
    from binance_ws.markets import COINM
    usdm = {
        "btcusdt@aggTrade": ("aggTrade", None), "btcusdt@markPrice": ("markPrice", 3.0),
        "btcusdt@markPrice@1s": ("markPrice", 1.0), "!markPrice@arr": ("markPriceArr", 3.0),
        "!markPrice@arr@1s": ("markPriceArr", 1.0), "btcusdt@kline_1m": ("kline", 0.25),
        "btcusdt_perpetual@continuousKline_1m": ("continuousKline", 0.25),
        "btcusdt@miniTicker": ("miniTicker", 2.0), "!miniTicker@arr": ("miniTickerArr", 1.0),
        "btcusdt@ticker": ("ticker", 2.0), "!ticker@arr": ("tickerArr", 1.0),
        "btcusdt@bookTicker": ("bookTicker", None), "!bookTicker": ("bookTickerAll", 5.0),
        "btcusdt@forceOrder": ("forceOrder", 1.0), "!forceOrder@arr": ("forceOrderArr", 1.0),
        "btcusdt@depth5": ("depthN", 0.25), "btcusdt@depth10@500ms": ("depthN", 0.5),
        "btcusdt@depth20@100ms": ("depthN", 0.1), "btcusdt@depth": ("depth", 0.25),
        "btcusdt@depth@100ms": ("depth", 0.1), "btcusdt@depth@0ms": ("depth", None),
        "defiusdt@compositeIndex": ("compositeIndex", 1.0), "!contractInfo": ("contractInfo", None),
        "!assetIndex@arr": ("assetIndexArr", 1.0), "adausd@assetIndex": ("assetIndex", 1.0),
        "btcusdt@rpiDepth@500ms": ("rpiDepth", 0.5),
    }
    coinm = {
        "btcusd@indexPrice": ("indexPrice", 3.0), "btcusd@indexPrice@1s": ("indexPrice", 1.0),
        "btcusd_perp@markPrice": ("markPrice", 3.0), "btcusd@markPrice@1s": ("pairMarkPrice", 1.0),
        "btcusd@indexPriceKline_1m": ("indexPriceKline", 0.25),
        "btcusd_200626@markPriceKline_1m": ("markPriceKline", 0.25),
        "btcusd_current_quarter@continuousKline_1m": ("continuousKline", 0.25),
        "btcusd_perp@ticker": ("ticker", 0.5), "btcusd_perp@miniTicker": ("miniTicker", 0.5),
        "!bookTicker": ("bookTickerAll", None), "btcusd_perp@depth@500ms": ("depth", 0.5),
    }
    for market, table in ((USDM, usdm), (COINM, coinm)):
        for name, (kind, cadence) in table.items():
            assert streams.parse_stream(name, market).kind == kind, name
            assert streams.expected_cadence_s(name, market) == cadence, name
    info = streams.parse_stream("btcusd_current_quarter@continuousKline_1m", COINM)
    assert (info.symbol, info.contract_type, info.interval) == ("BTCUSD", "current_quarter", "1m")


@pytest.mark.parametrize(("name", "market_name", "message"), [
    ("btcusdt@markPrice", "spot", "'markPrice' is a usdm/coinm stream, not on spot"),
    ("btcusdt@avgPrice", "usdm", "'avgPrice' is a spot stream, not on usdm"),
    ("btcusd@indexPrice", "usdm", "'indexPrice' is a coinm stream, not on usdm"),
    ("!bookTicker", "spot", "removed by Binance on 2022-12-07"),
    ("!assetIndex@arr", "coinm", "unknown all-market stream '!assetIndex@arr' on coinm"),
    ("btcusdt@markPrice@2s", "usdm", "'markPrice' takes no '@2s' suffix"),
    ("btcusdt_weekly@continuousKline_1m", "usdm", "contract type of perpetual, current_quarter"),
    ("btcusdt_perpetual@continuousKline_1s", "usdm", "1s kline interval exists on spot only"),
    ("btcusdt@kline_1m@+08:00", "usdm", "UTC+8 bars, spot only"),
    ("btcusdt@rpiDepth", "usdm", "exists only as 'btcusdt@rpiDepth@500ms'"),
    ("btcusdt@depth@1000ms", "usdm", "1000 ms is not one of 0, 100, 250, 500 ms on usdm"),
    ("btcusdt@markprice", "usdm", "did you mean 'btcusdt@markPrice'"),
    ("btcusdt@ticker_1h", "usdm", "unknown stream type 'ticker_1h' in 'btcusdt@ticker_1h'; valid:"),
    ("btcusdt@trade@1s", "usdm", "'trade' takes no '@1s' suffix"),
])
def test_futures_names_are_refused_with_the_fix(name: str, market_name: str, message: str) -> None:
    from binance_ws.markets import MARKETS
    with pytest.raises(InvalidStreamError, match=re.escape(message)):
        streams.validate_stream(name, MARKETS[market_name])


def test_futures_builders() -> None:
    from binance_ws.markets import COINM
    assert streams.mark_price("BTCUSDT", fast=True) == "btcusdt@markPrice@1s"
    assert streams.all_mark_price() == "!markPrice@arr"
    assert streams.continuous_kline("BTCUSDT", "PERPETUAL", "5m") == "btcusdt_perpetual@continuousKline_5m"
    assert streams.index_price("BTCUSD", fast=True) == "btcusd@indexPrice@1s"
    assert streams.depth("BTCUSDT", None, 0, USDM) == "btcusdt@depth@0ms"
    assert streams.depth("BTCUSDT", 5, 250, USDM) == "btcusdt@depth5"
    assert streams.kline("BTCUSD_PERP", "1h", market=COINM) == "btcusd_perp@kline_1h"
    with pytest.raises(InvalidStreamError, match="spot only"):
        streams.kline("BTCUSDT", "1s", market=USDM)
    with pytest.raises(InvalidStreamError, match="continuous klines"):
        streams.continuous_kline("BTCUSDT", "weekly")
    for name in (streams.force_order(), streams.force_order("BTCUSDT"), streams.composite_index("DEFIUSDT"),
                 streams.asset_index(), streams.asset_index("ADAUSD"), streams.contract_info(),
                 streams.all_book_ticker(), streams.all_ticker()):
        assert streams.validate_stream(name, USDM) == name


def test_usdm_routes_are_declared_per_kind() -> None:
    from binance_ws.engine.manager import RoutedPlan
    plan = RoutedPlan(USDM, 1024)
    public = ["btcusdt@bookTicker", "!bookTicker", "btcusdt@depth", "btcusdt@depth5@100ms",
              "btcusdt@rpiDepth@500ms", "btcusdt@trade"]
    market = ["btcusdt@aggTrade", "btcusdt@markPrice@1s", "!markPrice@arr", "btcusdt@kline_1m",
              "btcusdt_perpetual@continuousKline_1m", "btcusdt@miniTicker", "!miniTicker@arr",
              "btcusdt@ticker", "!ticker@arr", "btcusdt@forceOrder", "!forceOrder@arr",
              "defiusdt@compositeIndex", "!contractInfo", "!assetIndex@arr"]
    assert {name: plan.path_of(name) for name in public + market} == {
        **dict.fromkeys(public, "/public"), **dict.fromkeys(market, "/market")}


def test_market_rows_stay_hashable_and_carry_their_product() -> None:
    from binance_ws.markets import MARKETS
    assert len({hash(m) for m in MARKETS.values()}) == len(MARKETS)
    assert {m.product.name for m in MARKETS.values()} == {"spot", "usdm", "coinm"}
    for market in MARKETS.values():  # the rule fields of a row are its product's
        assert market.sequence_rule is market.product.sequence
        assert market.rest_prefix == market.product.rest_prefix
