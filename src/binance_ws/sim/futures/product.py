"""Futures products as data: which streams exist, on which route, at which cadence, with which keys.

Sources: ../shared/PROTOCOL.md section 8 [FUT] (routes, cadences, payload keys, limits), section 5.2
(``pu``), the real USD-M captures in tests/data (cryptofeed 2021, hftbacktest 2024), and the COIN-M
market-stream pages (``ps`` on COIN-M events; miniTicker 500 ms on COIN-M, 2 s on USD-M; COIN-M
``markPriceUpdate`` has no ``ap``). Where these disagree the choice is noted beside the field.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from binance_ws.enums import KLINE_INTERVALS_MS
from binance_ws.sim.config import SimConfig, SymbolSpec

Route = Literal["public", "market"]
PUBLIC: Route = "public"
MARKET: Route = "market"

#: Partial-depth sizes (PROTOCOL 8, same as spot).
DEPTH_LEVELS = (5, 10, 20)
#: Diff and partial depth speeds: suffix -> push period in ms (PROTOCOL 8: 250 ms default, 500 and
#: 100 ms variants; ``@0ms`` is undocumented but subscribed by the hftbacktest USD-M captures, served
#: as one event per driver tick).
DEPTH_SPEEDS_MS: dict[str, int] = {"": 250, "@500ms": 500, "@100ms": 100, "@0ms": 0}
#: Futures kline intervals: spot's without ``1s`` (PROTOCOL 8).
KLINE_INTERVALS: tuple[str, ...] = tuple(i for i in KLINE_INTERVALS_MS if i != "1s")
#: Contract types of ``<pair>_<contractType>@continuousKline_<i>``.
CONTRACT_TYPES: tuple[str, ...] = ("perpetual", "current_quarter", "next_quarter")
#: ``!bookTicker`` is a snapshot of every symbol every 5 s (PROTOCOL 8).
ALL_BOOK_TICKER_MS = 5000
#: ``@forceOrder``: at most the largest liquidation per symbol per 1000 ms (PROTOCOL 8).
FORCE_ORDER_MS = 1000
#: Arrays of every symbol (``!miniTicker@arr``, ``!ticker@arr``, ``!markPrice@arr``): 1000 ms.
ARRAY_MS = 1000
#: ``assetIndex`` (1 s) and ``compositeIndex`` (1000 ms).
INDEX_MS = 1000


@dataclass(frozen=True, slots=True)
class FuturesProduct:
    """One futures product's stream declarations."""

    name: str
    #: Market streams are split over ``/public`` and ``/market``; unrouted ``/ws`` and ``/stream``
    #: connections get only ``/public`` streams (PROTOCOL 8, USD-M since 2026). COIN-M is unrouted.
    routed: bool
    #: Events carry the pair as ``ps`` (COIN-M, PROTOCOL 8).
    pair_key: bool
    #: ``markPriceUpdate`` carries ``ap`` (USD-M; absent from the COIN-M page).
    mark_ap: bool
    #: ``!markPrice@arr`` exists (USD-M); COIN-M has ``<pair>@markPrice`` arrays instead.
    all_mark_price: bool
    #: ``assetIndex`` and ``compositeIndex`` streams exist (USD-M).
    index_streams: bool = False
    #: Push periods in ms.
    mark_price_ms: int = 3000
    mark_price_fast_ms: int = 1000
    kline_ms: int = 250
    mini_ticker_ms: int = 2000
    ticker_ms: int = 2000
    # Connection limits (PROTOCOL 8): pings every 3 min, pong within 10 min, 10 incoming messages a
    # second, 24 h lifetime, ids must be unsigned integers.
    ping_interval_s: float = 180.0
    pong_timeout_s: float = 600.0
    max_incoming_per_second: float = 10.0
    max_streams_per_connection: int = 1024
    unsigned_ids_only: bool = True
    #: Path prefixes a client connects to (``/public/ws/...``); empty for unrouted products.
    routes: tuple[str, ...] = field(default=())


USDM = FuturesProduct(name="usdm", routed=True, pair_key=False, mark_ap=True, all_mark_price=True,
                      index_streams=True, routes=("/public", "/market", "/private"))
COINM = FuturesProduct(name="coinm", routed=False, pair_key=True, mark_ap=False, all_mark_price=False,
                       mini_ticker_ms=500)
PRODUCTS: dict[str, FuturesProduct] = {p.name: p for p in (USDM, COINM)}

#: Symbols a futures simulator lists by default: real tick and step sizes (BTCUSDT perpetual trades in
#: 0.10 ticks and 0.001 steps, as in the hftbacktest capture's "61800.20"/"0.006").
USDM_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTCUSDT", "BTC", "USDT", 61_800.0, tick_size="0.10000000", step_size="0.00100000",
               min_notional="100.00000000"),
    SymbolSpec("ETHUSDT", "ETH", "USDT", 2_450.0, tick_size="0.01000000", step_size="0.00100000",
               min_notional="20.00000000"),
)
#: COIN-M perpetuals: quantities are contracts (whole numbers), prices in USD with 0.1 / 0.01 ticks.
COINM_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTCUSD_PERP", "BTC", "USD", 61_800.0, tick_size="0.10000000", step_size="1.00000000",
               min_notional="1.00000000"),
    SymbolSpec("ETHUSD_PERP", "ETH", "USD", 2_450.0, tick_size="0.01000000", step_size="1.00000000",
               min_notional="1.00000000"),
)
DEFAULT_SYMBOLS: dict[str, tuple[SymbolSpec, ...]] = {"usdm": USDM_SYMBOLS, "coinm": COINM_SYMBOLS}


def pair_of(symbol: str) -> str:
    """The pair of a futures symbol: ``BTCUSD_PERP`` -> ``BTCUSD``; a USD-M perpetual is its own pair."""
    return symbol.partition("_")[0]


def decimals(step: str) -> int:
    """Decimal places of a tick or step size string: ``"0.10000000"`` -> 1, ``"1.00000000"`` -> 0."""
    return len(step.partition(".")[2].rstrip("0"))


#: Display precision (pricePrecision, quantityPrecision) where it is finer than the tick: USD-M BTCUSDT
#: trades in 0.10 ticks but prints prices with 2 decimals (hftbacktest capture: "61800.20", "0.006").
PRECISIONS: dict[str, tuple[int, int]] = {"BTCUSDT": (2, 3), "ETHUSDT": (2, 3)}


def precision(spec: SymbolSpec) -> tuple[int, int]:
    """Decimals of ``spec``'s prices and quantities on the wire."""
    return PRECISIONS.get(spec.symbol.upper(), (decimals(spec.tick_size), decimals(spec.step_size)))


_PARTIAL = re.compile(r"depth(5|10|20)(@500ms|@100ms|@0ms)?")
_DIFF = re.compile(r"depth(@500ms|@100ms|@0ms)?")
_KLINE = re.compile(r"kline_(\w+)")


def symbol_suffix_route(suffix: str) -> Route | None:
    """Which route serves ``<symbol>@<suffix>`` (PROTOCOL 8 lists), or None for an unknown suffix."""
    if suffix == "bookTicker" or _PARTIAL.fullmatch(suffix) or _DIFF.fullmatch(suffix):
        return PUBLIC
    if suffix in ("aggTrade", "trade", "markPrice", "markPrice@1s", "miniTicker", "ticker", "forceOrder",
                  "assetIndex", "compositeIndex"):
        return MARKET
    kline = _KLINE.fullmatch(suffix)
    if kline and kline.group(1) in KLINE_INTERVALS:
        return MARKET
    return None


#: All-market streams and their routes.
MARKET_WIDE: dict[str, Route] = {
    "!bookTicker": PUBLIC,
    "!markPrice@arr": MARKET,
    "!markPrice@arr@1s": MARKET,
    "!miniTicker@arr": MARKET,
    "!ticker@arr": MARKET,
    "!forceOrder@arr": MARKET,
    "!contractInfo": MARKET,
    "!assetIndex@arr": MARKET,
}


_CONTINUOUS = re.compile(rf"[a-z0-9]+_({'|'.join(CONTRACT_TYPES)})@continuousKline_(\w+)")


def route_of_name(name: str) -> Route | None:
    """The route of a futures stream by its name's form alone (no symbol check): what a replayed
    recording's streams are routed by. None for a name of no known form."""
    if name.startswith("!"):
        return MARKET_WIDE.get(name)
    continuous = _CONTINUOUS.fullmatch(name)
    if continuous:
        return MARKET if continuous.group(2) in KLINE_INTERVALS else None
    sym, sep, suffix = name.partition("@")
    if not sep or not sym:
        return None
    return symbol_suffix_route(suffix)


def delivered(product: FuturesProduct | None, connection_route: str | None,
              stream_route: Route | None) -> bool:
    """Whether a stream of ``stream_route`` reaches a connection on ``connection_route``.

    PROTOCOL 8: on a routed product each route carries only its own streams, and an unrouted legacy
    connection (``/ws``, ``/stream``) gets only the ``/public`` ones; a stream asked for on the wrong
    route is acknowledged but delivers nothing. Unrouted products (spot, COIN-M) deliver everything.
    """
    if product is None or not product.routed or stream_route is None:
        return True
    return stream_route == (connection_route or PUBLIC)


#: Products a simulator can be served as.
PRODUCT_NAMES: tuple[str, ...] = ("spot", *PRODUCTS)


def product_config(name: str, **overrides: Any) -> SimConfig:
    """A :class:`SimConfig` for the simulator served as ``name`` ("spot", "usdm" or "coinm"): for futures,
    the product's default symbols and its connection limits (PROTOCOL 8: 10 incoming messages a second,
    pings every 3 minutes, pong within 10). ``overrides`` are SimConfig fields. Raises ``ValueError``
    for an unknown product."""
    if name not in PRODUCT_NAMES:
        raise ValueError(f"product must be spot, usdm or coinm, not {name!r}")
    if name == "spot":
        return SimConfig(**overrides)
    p = PRODUCTS[name]
    base = SimConfig(symbols=DEFAULT_SYMBOLS[name], product=name,
                     max_incoming_per_second=p.max_incoming_per_second, ping_interval_s=p.ping_interval_s,
                     pong_timeout_s=p.pong_timeout_s, max_streams_per_connection=p.max_streams_per_connection)
    return dataclasses.replace(base, **overrides)
