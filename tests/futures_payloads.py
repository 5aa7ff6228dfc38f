"""Documented futures payloads (PROTOCOL 8 and the developers.binance.com futures pages it cites,
scraped 2026-05-28): one example per stream kind, as Binance sends it, for model and engine tests."""

from __future__ import annotations

from typing import Any

MARK_PRICE = {"e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000",
              "ap": "11794.15000000", "i": "11784.62659091", "P": "11784.25641265", "r": "0.00038167",
              "T": 1562306400000}
COINM_MARK_PRICE = {"e": "markPriceUpdate", "E": 1596095725000, "s": "BTCUSD_201225", "p": "10934.62615417",
                    "P": "10962.17178236", "i": "10933.62615417", "r": "", "T": 0}
AGG_TRADE = {"e": "aggTrade", "E": 123456789, "s": "BTCUSDT", "a": 5933014, "p": "0.001", "q": "100",
             "nq": "100", "f": 100, "l": 105, "T": 123456785, "m": True}
COINM_AGG_TRADE = {"e": "aggTrade", "E": 1591261134288, "a": 424951, "s": "BTCUSD_200626", "p": "9643.5",
                   "q": "2", "f": 606073, "l": 606073, "T": 1591261134199, "m": False}
BOOK_TICKER = {"e": "bookTicker", "u": 400900217, "E": 1568014460893, "T": 1568014460891, "s": "BNBUSDT",
               "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}
COINM_BOOK_TICKER = {"e": "bookTicker", "u": 17242169, "s": "BTCUSD_200626", "b": "9548.1", "B": "52",
                     "a": "9548.5", "A": "11", "T": 1591268628155, "E": 1591268628166, "ps": "BTCUSD"}
DEPTH = {"e": "depthUpdate", "E": 1571889248277, "T": 1571889248276, "s": "BTCUSDT", "U": 390497796,
         "u": 390497878, "pu": 390497794, "b": [["7403.89", "0.002"], ["7403.90", "3.906"]],
         "a": [["7405.96", "3.340"], ["7406.63", "4.525"]]}
COINM_DEPTH = {"e": "depthUpdate", "E": 1591270260907, "T": 1591270260891, "s": "BTCUSD_200626",
               "ps": "BTCUSD", "U": 17285681, "u": 17285702, "pu": 17285675, "b": [["9517.6", "10"]],
               "a": [["9518.5", "45"]]}
TICKER = {"e": "24hrTicker", "E": 123456789, "s": "BTCUSDT", "p": "0.0015", "P": "250.00", "w": "0.0018",
          "c": "0.0025", "Q": "10", "o": "0.0010", "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18",
          "O": 0, "C": 86400000, "F": 0, "L": 18150, "n": 18151}
COINM_TICKER = {**TICKER, "s": "BTCUSD_200626", "ps": "BTCUSD"}
MINI_TICKER = {"e": "24hrMiniTicker", "E": 1591267704450, "s": "BTCUSD_200626", "ps": "BTCUSD",
               "c": "9561.7", "o": "9580.9", "h": "10000.0", "l": "7000.0", "v": "487476",
               "q": "33264343847.22378500"}
KLINE_BAR = {"t": 1607443020000, "T": 1607443079999, "i": "1m", "f": 116467658886, "L": 116468012423,
             "o": "18787.00", "c": "18804.04", "h": "18804.04", "l": "18786.54", "v": "197.664", "n": 543,
             "x": False, "q": "3715253.19494", "V": "184.769", "Q": "3472925.84746", "B": "0"}
CONTINUOUS_KLINE = {"e": "continuous_kline", "E": 1607443058651, "ps": "BTCUSDT", "ct": "PERPETUAL",
                    "k": KLINE_BAR}
KLINE = {"e": "kline", "E": 1607443058651, "s": "BTCUSDT", "k": {**KLINE_BAR, "s": "BTCUSDT"}}
INDEX_PRICE = {"e": "indexPriceUpdate", "E": 1591261236000, "i": "BTCUSD", "p": "9636.57860000"}
INDEX_PRICE_KLINE = {"e": "indexPrice_kline", "E": 1591267070033, "ps": "BTCUSD",
                     "k": {**KLINE_BAR, "s": "0", "v": "0", "q": "0", "V": "0", "Q": "0"}}
FORCE_ORDER = {"e": "forceOrder", "E": 1568014460893,
               "o": {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910",
                     "ap": "9910", "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893}}
COMPOSITE_INDEX = {"e": "compositeIndex", "E": 1602310596000, "s": "DEFIUSDT", "p": "554.41604065",
                   "C": "baseAsset",
                   "c": [{"b": "BAL", "q": "USDT", "w": "1.04884844", "W": "0.01457800", "i": "24.33521021"},
                         {"b": "BAND", "q": "USDT", "w": "3.53782729", "W": "0.03935200", "i": "7.26420084"}]}
ASSET_INDEX = {"e": "assetIndexUpdate", "E": 1686749230000, "s": "ADAUSD", "i": "0.27462452",
               "b": "0.10000000", "a": "0.10000000", "B": "0.24716207", "A": "0.30208698", "q": "0.05000000",
               "g": "0.05000000", "Q": "0.26089330", "G": "0.28835575"}
CONTRACT_INFO = {"e": "contractInfo", "E": 1669647330375, "s": "APTUSD_PERP", "ps": "APTUSD",
                 "ct": "PERPETUAL", "dt": 4133404800000, "ot": 1666594800000, "cs": "TRADING",
                 "bks": [{"bs": 1, "bnf": 0, "bnc": 5000, "mmr": 0.01, "cf": 0, "mi": 21, "ma": 50},
                         {"bs": 2, "bnf": 5000, "bnc": 25000, "mmr": 0.025, "cf": 75, "mi": 11, "ma": 20}]}

#: (stream, payload, model name) on USD-M.
USDM_EXAMPLES: list[tuple[str, Any, str]] = [
    ("btcusdt@markPrice", MARK_PRICE, "MarkPrice"),
    ("btcusdt@markPrice@1s", MARK_PRICE, "MarkPrice"),
    ("!markPrice@arr", [MARK_PRICE, {**MARK_PRICE, "s": "ETHUSDT"}], "list"),
    ("!markPrice@arr@1s", [MARK_PRICE], "list"),
    ("btcusdt@aggTrade", AGG_TRADE, "FuturesAggTrade"),
    ("bnbusdt@bookTicker", BOOK_TICKER, "FuturesBookTicker"),
    ("!bookTicker", BOOK_TICKER, "FuturesBookTicker"),
    ("btcusdt@depth", DEPTH, "FuturesDepthUpdate"),
    ("btcusdt@depth@100ms", DEPTH, "FuturesDepthUpdate"),
    ("btcusdt@depth5@500ms", DEPTH, "FuturesDepthUpdate"),
    ("btcusdt@depth20", DEPTH, "FuturesDepthUpdate"),
    ("btcusdt@ticker", TICKER, "FuturesTicker"),
    ("!ticker@arr", [TICKER], "list"),
    ("btcusdt@miniTicker", {k: v for k, v in MINI_TICKER.items() if k != "ps"}, "FuturesMiniTicker"),
    ("!miniTicker@arr", [{k: v for k, v in MINI_TICKER.items() if k != "ps"}], "list"),
    ("btcusdt@kline_1m", KLINE, "Kline"),
    ("btcusdt_perpetual@continuousKline_1m", CONTINUOUS_KLINE, "ContinuousKline"),
    ("btcusdt_current_quarter@continuousKline_1h", {**CONTINUOUS_KLINE, "ct": "CURRENT_QUARTER"},
     "ContinuousKline"),
    ("btcusdt@forceOrder", FORCE_ORDER, "ForceOrder"),
    ("!forceOrder@arr", FORCE_ORDER, "ForceOrder"),
    ("defiusdt@compositeIndex", COMPOSITE_INDEX, "CompositeIndex"),
    ("adausd@assetIndex", ASSET_INDEX, "AssetIndex"),
    ("!assetIndex@arr", [ASSET_INDEX], "list"),
    ("!contractInfo", CONTRACT_INFO, "ContractInfo"),
]
#: (stream, payload, model name) on COIN-M.
COINM_EXAMPLES: list[tuple[str, Any, str]] = [
    ("btcusd_201225@markPrice", COINM_MARK_PRICE, "MarkPrice"),
    ("btcusd@markPrice@1s", [COINM_MARK_PRICE, {**COINM_MARK_PRICE, "s": "BTCUSD_PERP"}], "list"),
    ("btcusd@indexPrice", INDEX_PRICE, "IndexPrice"),
    ("btcusd@indexPrice@1s", INDEX_PRICE, "IndexPrice"),
    ("btcusd@indexPriceKline_1m", INDEX_PRICE_KLINE, "PairKline"),
    ("btcusd_200626@markPriceKline_1m", {**INDEX_PRICE_KLINE, "e": "markPrice_kline",
                                         "k": {**INDEX_PRICE_KLINE["k"], "s": "BTCUSD_200626"}}, "PairKline"),
    ("btcusd_next_quarter@continuousKline_5m", {**CONTINUOUS_KLINE, "ps": "BTCUSD", "ct": "NEXT_QUARTER"},
     "ContinuousKline"),
    ("btcusd_200626@aggTrade", COINM_AGG_TRADE, "FuturesAggTrade"),
    ("btcusd_200626@bookTicker", COINM_BOOK_TICKER, "FuturesBookTicker"),
    ("btcusd_200626@depth@500ms", COINM_DEPTH, "FuturesDepthUpdate"),
    ("btcusd_200626@ticker", COINM_TICKER, "FuturesTicker"),
    ("btcusd_200626@miniTicker", MINI_TICKER, "FuturesMiniTicker"),
    ("!contractInfo", CONTRACT_INFO, "ContractInfo"),
]
