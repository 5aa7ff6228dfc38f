"""Spot (PROTOCOL 2, 4, 5.1, 6.3): what its streams are, how its depth chains, what its REST costs."""

from __future__ import annotations

from typing import Final

from binance_ws import models as m
from binance_ws.products.base import MARKET, PUBLIC, Kind, Product, SequenceRule

#: PROTOCOL 5.1: drop ``u <= lastUpdateId``; first event ``U <= lastUpdateId + 1 <= u``; then
#: ``U == previous u + 1``. ``GET /api/v3/depth`` weight 1-100 -> 5, 101-500 -> 25, 501-1000 -> 50,
#: 1001-5000 -> 250; any limit 1..5000.
SPOT_RULE: Final = SequenceRule(name="spot", link="U", drop_at_or_below=True, first_offset=1,
                                weights=((100, 5), (500, 25), (1000, 50), (5000, 250)))

SPOT_PRODUCT: Final = Product(
    name="spot",
    kinds={
        "trade": Kind(MARKET, None, m.Trade, "t"),  # 4.2 real-time
        "aggTrade": Kind(MARKET, None, m.AggTrade, "a"),  # 4.1 real-time
        "blockTrade": Kind(MARKET, None, m.BlockTrade),  # 4.3 real-time (since 2026-05-12)
        "bookTicker": Kind(PUBLIC, None, m.BookTicker),  # 4.9 real-time
        "referencePrice": Kind(MARKET, 1.0, m.ReferencePrice),  # 4.4 1000 ms
        "miniTicker": Kind(MARKET, 1.0, m.MiniTicker),  # 4.6 1000 ms
        "ticker": Kind(MARKET, 1.0, m.Ticker),  # 4.7 1000 ms
        "avgPrice": Kind(MARKET, 1.0, m.AvgPrice),  # 4.10 1000 ms
        "kline": Kind(MARKET, 2.0, m.Kline),  # 4.5: 2 s (the 1s interval: 1 s)
        "rollingTicker": Kind(MARKET, 1.0, m.RollingTicker),  # 4.8 1000 ms
        "depth": Kind(PUBLIC, None, m.DepthUpdate, "depth"),  # 4.12 cadence = the speed
        "depthN": Kind(PUBLIC, None, m.PartialDepth),  # 4.11 cadence = the speed
        "miniTickerArr": Kind(MARKET, 1.0, list[m.MiniTicker]),  # 4.6
        "rollingTickerArr": Kind(MARKET, 1.0, list[m.RollingTicker]),  # 4.8
        "userData": Kind(MARKET, None, m.UserEvent),  # 6.2 legacy listen-key stream
    },
    symbol_kinds=frozenset({"trade", "aggTrade", "blockTrade", "bookTicker", "referencePrice",
                            "miniTicker", "ticker", "avgPrice"}),
    all_market={"!miniTicker@arr": ("miniTickerArr", 1.0)},
    retired={
        "!ticker@arr": "was retired by Binance on 2026-03-26; subscribe to '<symbol>@ticker' for each "
                       "symbol or to '!miniTicker@arr' instead (BinanceSocketManager.start_ticker_socket "
                       "does the per-symbol subscription for you)",
        "!bookTicker": "was removed by Binance on 2022-12-07; subscribe to '<symbol>@bookTicker' for "
                       "each symbol instead (they may share one connection)",
    },
    sequence=SPOT_RULE,
    rest_prefix="/api/v3",
    depth_speeds_ms=(100, 1000),  # 4.11, 4.12
    depth_default_ms=1000,
    has_1s_klines=True,
    utc8_klines=True,  # 4.5, since 2024-05-30
    rolling_tickers=True,
    user_data="ws-api",  # 6.3
)
