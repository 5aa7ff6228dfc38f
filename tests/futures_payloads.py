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

# -- futures user data (PROTOCOL 8's event list; the key sets and types of Binance's USD-M and COIN-M
# user-data pages, every conditional key included). Values are ours; keys and JSON types are Binance's.

ORDER_TRADE_UPDATE_O = {
    "s": "BTCUSDT", "c": "TEST", "S": "SELL", "o": "TRAILING_STOP_MARKET", "f": "GTC", "q": "0.001",
    "p": "0", "ap": "0", "sp": "7103.04", "x": "NEW", "X": "NEW", "i": 8886774, "M": "1", "l": "0", "z": "0",
    "L": "0", "N": "USDT", "n": "0", "T": 1568879465650, "t": 0, "b": "0", "a": "9.91", "m": False,
    "R": False, "wt": "CONTRACT_PRICE", "ot": "TRAILING_STOP_MARKET", "ps": "LONG", "cp": False,
    "AP": "7476.89", "cr": "5.0", "pP": False, "si": 0, "ss": 0, "rp": "0", "V": "EXPIRE_TAKER",
    "pm": "OPPONENT", "gtd": 0, "er": "0"}
ORDER_TRADE_UPDATE = {"e": "ORDER_TRADE_UPDATE", "E": 1568879465651, "T": 1568879465650,
                      "o": ORDER_TRADE_UPDATE_O}
COINM_ORDER_TRADE_UPDATE = {
    "e": "ORDER_TRADE_UPDATE", "E": 1591274595442, "T": 1591274595442, "i": "SfsR",
    "o": {"s": "BTCUSD_200925", "c": "TEST", "S": "SELL", "o": "TRAILING_STOP_MARKET", "f": "GTC", "q": "2",
          "p": "0", "ap": "0", "sp": "9103.1", "x": "NEW", "X": "NEW", "i": 8888888, "l": "0", "z": "0",
          "L": "0", "ma": "BTC", "N": "BTC", "n": "0", "T": 1591274595442, "t": 0, "rp": "0", "b": "0",
          "a": "0", "m": False, "R": False, "wt": "CONTRACT_PRICE", "ot": "TRAILING_STOP_MARKET",
          "ps": "LONG", "cp": False, "AP": "9476.8", "cr": "5.0", "pP": False, "V": "EXPIRE_TAKER",
          "pm": "NONE", "er": "0"}}
TRADE_LITE = {"e": "TRADE_LITE", "E": 1721895408092, "T": 1721895408214, "s": "BTCUSDT", "q": "0.001",
              "p": "0", "m": False, "c": "z8hcUoOsqEdKMeKPSABslD", "S": "BUY", "L": "64089.20", "l": "0.040",
              "t": 109100866, "i": 8886774}
_POSITIONS = [
    {"s": "BTCUSDT", "pa": "0", "ep": "0.00000", "bep": "0", "cr": "200", "up": "0", "mt": "isolated",
     "iw": "0.00000000", "ps": "BOTH"},
    {"s": "BTCUSDT", "pa": "20", "ep": "6563.66500", "bep": "6563.6", "cr": "0", "up": "2850.21200",
     "mt": "isolated", "iw": "13200.70726908", "ps": "LONG"}]
ACCOUNT_UPDATE = {"e": "ACCOUNT_UPDATE", "E": 1564745798939, "T": 1564745798938, "a": {
    "m": "ORDER", "B": [{"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50.12345678"},
                        {"a": "BUSD", "wb": "1.00000000", "cw": "0.00000000", "bc": "-49.12345678"}],
    "P": _POSITIONS}}
#: A crossed position's funding fee: the balance only, no ``P``; ``S`` names the symbol.
FUNDING_ACCOUNT_UPDATE = {"e": "ACCOUNT_UPDATE", "E": 1564745798939, "T": 1564745798938, "a": {
    "m": "FUNDING_FEE", "B": [{"a": "USDT", "wb": "122624.1", "cw": "100.1", "bc": "0"}], "S": "BTCUSDT"}}
COINM_ACCOUNT_UPDATE = {"e": "ACCOUNT_UPDATE", "E": 1564745798939, "T": 1564745798938, "i": "SfsR", "a": {
    "m": "ORDER", "B": [{"a": "BTC", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50.12345678"}],
    "P": [{**p, "s": "BTCUSD_200925"} for p in _POSITIONS]}}
MARGIN_CALL = {"e": "MARGIN_CALL", "E": 1587727187525, "cw": "3.16812045", "p": [
    {"s": "ETHUSDT", "ps": "LONG", "pa": "1.327", "mt": "CROSSED", "iw": "0", "mp": "187.17127",
     "up": "-1.166074", "mm": "1.614445"}]}
COINM_MARGIN_CALL = {**MARGIN_CALL, "i": "SfsR", "p": [{**MARGIN_CALL["p"][0], "s": "ETHUSD_PERP"}]}
ACCOUNT_CONFIG_LEVERAGE = {"e": "ACCOUNT_CONFIG_UPDATE", "E": 1611646737479, "T": 1611646737476,
                           "ac": {"s": "BTCUSDT", "l": 25}}
ACCOUNT_CONFIG_MULTI_ASSETS = {"e": "ACCOUNT_CONFIG_UPDATE", "E": 1611646737479, "T": 1611646737476,
                               "ai": {"j": True}}
STRATEGY_UPDATE = {"e": "STRATEGY_UPDATE", "T": 1669262908216, "E": 1669262908218, "su": {
    "si": 176054594, "st": "GRID", "ss": "NEW", "s": "BTCUSDT", "ut": 1669262908216, "c": 8007}}
GRID_UPDATE = {"e": "GRID_UPDATE", "T": 1669262908216, "E": 1669262908218, "gu": {
    "si": 176057039, "st": "GRID", "ss": "WORKING", "s": "BTCUSDT", "r": "-0.00300716", "up": "16720",
    "uq": "-0.001", "uf": "-0.00300716", "mp": "0.0", "ut": 1669262908197}}
CONDITIONAL_ORDER_TRIGGER_REJECT = {"e": "CONDITIONAL_ORDER_TRIGGER_REJECT", "E": 1685517224945,
                                    "T": 1685517224955, "or": {"s": "ETHUSDT", "i": 155618472834,
                                                               "r": "Due to the order could not be filled "
                                                                    "immediately, the FOK order has been "
                                                                    "rejected."}}
ALGO_UPDATE = {"e": "ALGO_UPDATE", "T": 1750515742297, "E": 1750515742303, "o": {
    "caid": "Q5xaq5EGKgXXa0fD7fs0Ip", "aid": 2148719, "at": "CONDITIONAL", "o": "TAKE_PROFIT",
    "s": "BNBUSDT", "S": "SELL", "ps": "BOTH", "f": "GTC", "q": "0.01", "X": "TRIGGERED", "ai": "12345",
    "ap": "0.00000", "aq": "0.00000", "act": "LIMIT", "tp": "750", "p": "750", "V": "EXPIRE_MAKER",
    "wt": "CONTRACT_PRICE", "pm": "NONE", "cp": False, "pP": False, "R": False, "tt": 0, "gtd": 0,
    "rm": "", "ia": False}}
#: Binance's current USD-M page shows ``E`` as a string; older copies and COIN-M a number, no listenKey.
LISTEN_KEY_EXPIRED = {"e": "listenKeyExpired", "E": "1736996475556",
                      "listenKey": "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"}
LISTEN_KEY_EXPIRED_OLD = {"e": "listenKeyExpired", "E": 1576653824250}

#: (payload, model name): every USD-M user-data event PROTOCOL 8 lists.
USDM_USER_EXAMPLES: list[tuple[Any, str]] = [
    (ORDER_TRADE_UPDATE, "OrderTradeUpdate"), (TRADE_LITE, "TradeLite"), (ACCOUNT_UPDATE, "AccountUpdate"),
    (FUNDING_ACCOUNT_UPDATE, "AccountUpdate"), (MARGIN_CALL, "MarginCall"),
    (ACCOUNT_CONFIG_LEVERAGE, "AccountConfigUpdate"), (ACCOUNT_CONFIG_MULTI_ASSETS, "AccountConfigUpdate"),
    (STRATEGY_UPDATE, "StrategyUpdate"), (GRID_UPDATE, "GridUpdate"),
    (CONDITIONAL_ORDER_TRIGGER_REJECT, "ConditionalOrderTriggerReject"), (ALGO_UPDATE, "AlgoUpdate"),
    (LISTEN_KEY_EXPIRED_OLD, "FuturesListenKeyExpired"),
]
#: COIN-M's: account alias ``i``, margin asset ``ma``; no TRADE_LITE, ALGO_UPDATE or trigger rejects.
COINM_USER_EXAMPLES: list[tuple[Any, str]] = [
    (COINM_ORDER_TRADE_UPDATE, "OrderTradeUpdate"), (COINM_ACCOUNT_UPDATE, "AccountUpdate"),
    (COINM_MARGIN_CALL, "MarginCall"), (ACCOUNT_CONFIG_LEVERAGE, "AccountConfigUpdate"),
    (STRATEGY_UPDATE, "StrategyUpdate"), (GRID_UPDATE, "GridUpdate"),
    (LISTEN_KEY_EXPIRED_OLD, "FuturesListenKeyExpired"),
]
