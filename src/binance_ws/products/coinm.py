"""COIN-M futures (PROTOCOL 1.4, 5.2, 8; the developers.binance.com coin-margined pages it cites).

Symbols are contracts (``btcusd_perp``, ``btcusd_200626``); pairs (``btcusd``) name the index price,
index-price klines and continuous klines; events carry the pair in ``ps``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from binance_ws import models as m
from binance_ws.products.base import MARKET, PUBLIC, Kind
from binance_ws.products.usdm import USDM_PRODUCT

COINM_PRODUCT: Final = replace(
    USDM_PRODUCT,
    name="coinm",
    kinds={
        "trade": Kind(MARKET, None, m.Trade, "t"),  # [OBS] hftbacktest's COIN-M captures
        "aggTrade": Kind(MARKET, None, m.FuturesAggTrade, "a"),  # 100 ms aggregation, no nq
        "indexPrice": Kind(MARKET, 3.0, m.IndexPrice),  # <pair>@indexPrice, 3 s or @1s
        "markPrice": Kind(MARKET, 3.0, m.MarkPrice),  # <symbol>@markPrice, 3 s or @1s
        "pairMarkPrice": Kind(MARKET, 3.0, list[m.MarkPrice]),  # <pair>@markPrice: every contract
        "kline": Kind(MARKET, 0.25, m.Kline),
        "continuousKline": Kind(MARKET, 0.25, m.ContinuousKline),
        "indexPriceKline": Kind(MARKET, 0.25, m.PairKline),  # <pair>@indexPriceKline_<i>
        "markPriceKline": Kind(MARKET, 0.25, m.PairKline),  # <symbol>@markPriceKline_<i>
        "miniTicker": Kind(MARKET, 0.5, m.FuturesMiniTicker),  # 500 ms
        "ticker": Kind(MARKET, 0.5, m.FuturesTicker),  # 500 ms
        "bookTicker": Kind(PUBLIC, None, m.FuturesBookTicker),
        "forceOrder": Kind(MARKET, 1.0, m.ForceOrder),
        "depth": Kind(PUBLIC, None, m.FuturesDepthUpdate, "depth"),
        "depthN": Kind(PUBLIC, None, m.FuturesDepthUpdate),
        "miniTickerArr": Kind(MARKET, 1.0, list[m.FuturesMiniTicker]),
        "tickerArr": Kind(MARKET, 1.0, list[m.FuturesTicker]),
        "bookTickerAll": Kind(PUBLIC, None, m.FuturesBookTicker),  # !bookTicker, real-time on COIN-M
        "forceOrderArr": Kind(MARKET, 1.0, m.ForceOrder),
        "contractInfo": Kind(MARKET, None, m.ContractInfo),
        "userData": Kind(MARKET, None, m.CoinmUserEvent),  # no TRADE_LITE, ALGO_UPDATE
    },
    symbol_kinds=frozenset({"trade", "aggTrade", "indexPrice", "markPrice", "miniTicker", "ticker",
                            "bookTicker", "forceOrder"}),
    fast_kinds=frozenset({"indexPrice", "markPrice"}),
    suffixed_kinds={},
    user_events=(),  # unrouted: a listen key's stream carries every event
    kline_kinds=frozenset({"kline", "continuousKline", "indexPriceKline", "markPriceKline"}),
    contract_types=("perpetual", "current_quarter", "next_quarter"),
    all_market={
        "!miniTicker@arr": ("miniTickerArr", 1.0),
        "!ticker@arr": ("tickerArr", 1.0),
        "!bookTicker": ("bookTickerAll", None),
        "!forceOrder@arr": ("forceOrderArr", 1.0),
        "!contractInfo": ("contractInfo", None),
    },
    rest_prefix="/dapi/v1",
)
