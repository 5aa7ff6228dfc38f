"""USD-M futures (PROTOCOL 1.4, 5.2, 8; the developers.binance.com futures pages it cites)."""

from __future__ import annotations

from typing import Final

from binance_ws import models as m
from binance_ws.products.base import MARKET, PUBLIC, Kind, Product, SequenceRule

#: PROTOCOL 5.2 (USD-M and COIN-M): drop ``u < lastUpdateId``; first event ``U <= lastUpdateId <= u``;
#: then ``pu == previous u``. ``GET /fapi/v1/depth`` and ``/dapi/v1/depth``: limits 5, 10, 20, 50, 100,
#: 500, 1000; weight 5-50 -> 2, 100 -> 5, 500 -> 10, 1000 -> 20.
FUTURES_RULE: Final = SequenceRule(name="futures", link="pu", drop_at_or_below=False, first_offset=0,
                                   weights=((50, 2), (100, 5), (500, 10), (1000, 20)),
                                   limits=(5, 10, 20, 50, 100, 500, 1000))

USDM_PRODUCT: Final = Product(
    name="usdm",
    kinds={
        # [OBS] hftbacktest's USD-M captures subscribe to an undocumented <symbol>@trade; its route is
        # not in PROTOCOL 8's lists: /public as ccxt 4.5.90 routes it (binance.get_future_ws_category).
        "trade": Kind(PUBLIC, None, m.Trade, "t"),
        "aggTrade": Kind(MARKET, None, m.FuturesAggTrade, "a"),  # 100 ms aggregation, event driven
        "markPrice": Kind(MARKET, 3.0, m.MarkPrice),  # 3 s, or 1 s with @1s
        "kline": Kind(MARKET, 0.25, m.Kline),  # 250 ms, no 1s interval
        "continuousKline": Kind(MARKET, 0.25, m.ContinuousKline),  # <pair>_<contractType>, 250 ms
        "miniTicker": Kind(MARKET, 2.0, m.FuturesMiniTicker),  # 2 s
        "ticker": Kind(MARKET, 2.0, m.FuturesTicker),  # 2000 ms
        "bookTicker": Kind(PUBLIC, None, m.FuturesBookTicker),  # real-time
        "forceOrder": Kind(MARKET, 1.0, m.ForceOrder),  # 1000 ms snapshot
        "compositeIndex": Kind(MARKET, 1.0, m.CompositeIndex),  # 1000 ms
        "assetIndex": Kind(MARKET, 1.0, m.AssetIndex),  # 1 s, multi-assets mode
        "depth": Kind(PUBLIC, None, m.FuturesDepthUpdate, "depth"),  # 250 ms default; 500, 100
        "depthN": Kind(PUBLIC, None, m.FuturesDepthUpdate),  # the same depthUpdate shape, with pu
        # <symbol>@rpiDepth@500ms: depth with RPI orders, its own id chain (not tracked here).
        "rpiDepth": Kind(PUBLIC, 0.5, m.FuturesDepthUpdate),
        "miniTickerArr": Kind(MARKET, 1.0, list[m.FuturesMiniTicker]),
        "tickerArr": Kind(MARKET, 1.0, list[m.FuturesTicker]),
        "bookTickerAll": Kind(PUBLIC, 5.0, m.FuturesBookTicker),  # !bookTicker, documented at 5 s
        "markPriceArr": Kind(MARKET, 3.0, list[m.MarkPrice]),
        "forceOrderArr": Kind(MARKET, 1.0, m.ForceOrder),  # one liquidation a message
        "contractInfo": Kind(MARKET, None, m.ContractInfo),  # real-time, on change
        "assetIndexArr": Kind(MARKET, 1.0, list[m.AssetIndex]),
        "userData": Kind(MARKET, None, m.UsdmUserEvent),  # listen key on /private
    },
    symbol_kinds=frozenset({"trade", "aggTrade", "markPrice", "miniTicker", "ticker", "bookTicker",
                            "forceOrder", "compositeIndex", "assetIndex"}),
    fast_kinds=frozenset({"markPrice"}),
    suffixed_kinds={"rpiDepth": "500ms"},
    kline_kinds=frozenset({"kline", "continuousKline"}),
    contract_types=("perpetual", "current_quarter", "next_quarter", "tradifi_perpetual"),
    all_market={
        "!miniTicker@arr": ("miniTickerArr", 1.0),
        "!ticker@arr": ("tickerArr", 1.0),
        "!bookTicker": ("bookTickerAll", 5.0),
        "!markPrice@arr": ("markPriceArr", 3.0),
        "!markPrice@arr@1s": ("markPriceArr", 1.0),
        "!forceOrder@arr": ("forceOrderArr", 1.0),
        "!contractInfo": ("contractInfo", None),
        "!assetIndex@arr": ("assetIndexArr", 1.0),
    },
    sequence=FUTURES_RULE,
    rest_prefix="/fapi/v1",
    # 250 ms default, 500 and 100 ms variants; [OBS] hftbacktest records a real-time @0ms.
    depth_speeds_ms=(0, 100, 250, 500),
    depth_default_ms=250,
    max_incoming_per_second=10.0,
    server_ping_interval_s=180.0,  # ping every 3 min, pong deadline 10 min
    pong_timeout_s=600.0,
    rest_weight_per_minute=2400,
    unsigned_ids_only=True,  # control-message ids are unsigned integers (PROTOCOL 8)
    user_data="listen-key",
    # Every user-data event of the USD-M pages (PROTOCOL 8 lists them), asked for on /private.
    user_events=("ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "TRADE_LITE", "MARGIN_CALL", "ACCOUNT_CONFIG_UPDATE",
                 "STRATEGY_UPDATE", "GRID_UPDATE", "CONDITIONAL_ORDER_TRIGGER_REJECT", "ALGO_UPDATE",
                 "listenKeyExpired"),
)
