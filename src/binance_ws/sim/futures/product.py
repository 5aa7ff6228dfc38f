"""Futures products as the simulator serves them: the shared declarations plus simulator-only facts.

What the client and the simulator both state (the route of each stream kind, push cadences, connection
limits, depth speeds, kline intervals, contract types, the REST prefix) is read from the one declaration
per product in :mod:`binance_ws.products` (``usdm.py``, ``coinm.py``) and the market rows of
:mod:`binance_ws.markets` (whether streams are routed by path). Only what the simulator alone needs lives
here: which payload keys each product's events carry (``ps``, ``ap``), which optional streams it generates,
the default symbols and their display precisions.

Sources for the simulator-only facts: ../shared/PROTOCOL.md section 8 [FUT], the real USD-M captures in
tests/data (cryptofeed 2021, hftbacktest 2024) and the COIN-M market-stream pages (``ps`` on COIN-M
events; COIN-M ``markPriceUpdate`` has no ``ap``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

from binance_ws.enums import KLINE_INTERVALS_MS
from binance_ws.markets import COINM as COINM_MARKET
from binance_ws.markets import USDM as USDM_MARKET
from binance_ws.markets import Market
from binance_ws.products import Product
from binance_ws.products.usdm import USDM_PRODUCT
from binance_ws.sim.config import SimConfig, SymbolSpec

Route = Literal["public", "market"]
PUBLIC: Route = "public"
MARKET: Route = "market"

#: Partial-depth sizes (PROTOCOL 8, same as spot).
DEPTH_LEVELS = (5, 10, 20)


def _ms(seconds: float | None) -> int:
    """A declared cadence in ms; an event-driven (None) kind is served every tick (0)."""
    return round(seconds * 1000) if seconds else 0


def depth_speeds_ms(declared: Product) -> dict[str, int]:
    """Diff and partial depth name suffixes and their push periods (ms), from the declaration: the bare
    name is the default speed; ``@0ms`` (undocumented, subscribed by the hftbacktest USD-M captures) is
    one event per driver tick."""
    speeds = {"": declared.depth_default_ms}
    speeds.update({f"@{ms}ms": ms for ms in declared.depth_speeds_ms if ms != declared.depth_default_ms})
    return speeds


#: USD-M's (and COIN-M's: the same declared speeds) depth suffixes -> period in ms.
DEPTH_SPEEDS_MS: dict[str, int] = depth_speeds_ms(USDM_PRODUCT)
#: Futures kline intervals: spot's without ``1s`` (the declaration's ``has_1s_klines``).
KLINE_INTERVALS: tuple[str, ...] = tuple(i for i in KLINE_INTERVALS_MS
                                         if USDM_PRODUCT.has_1s_klines or i != "1s")
#: Contract types of ``<pair>_<contractType>@continuousKline_<i>`` (declared).
CONTRACT_TYPES: tuple[str, ...] = USDM_PRODUCT.contract_types
#: Cadences of USD-M's market-wide and index streams, as declared.
ALL_BOOK_TICKER_MS = _ms(USDM_PRODUCT.all_market["!bookTicker"][1])
FORCE_ORDER_MS = _ms(USDM_PRODUCT.kinds["forceOrder"].cadence_s)
ARRAY_MS = _ms(USDM_PRODUCT.all_market["!miniTicker@arr"][1])
INDEX_MS = _ms(USDM_PRODUCT.kinds["compositeIndex"].cadence_s)


@dataclass(frozen=True, slots=True)
class FuturesProduct:
    """One futures product as served: its shared declaration (``declared``, ``market``) and what only the
    simulator needs (payload keys, optional streams)."""

    name: str
    declared: Product
    market: Market
    #: Events carry the pair as ``ps`` (COIN-M, PROTOCOL 8).
    pair_key: bool
    #: ``markPriceUpdate`` carries ``ap`` (USD-M; absent from the COIN-M page).
    mark_ap: bool
    #: ``!markPrice@arr`` exists (USD-M); COIN-M has ``<pair>@markPrice`` arrays instead.
    all_mark_price: bool
    #: ``assetIndex`` and ``compositeIndex`` streams exist (USD-M).
    index_streams: bool = False

    # -- read from the declaration -------------------------------------------------------------------
    @property
    def routed(self) -> bool:
        """Market streams are split over ``/public`` and ``/market``; unrouted ``/ws`` and ``/stream``
        connections get only ``/public`` streams (PROTOCOL 8, USD-M since 2026). COIN-M is unrouted."""
        return self.market.routed_paths

    @property
    def routes(self) -> tuple[str, ...]:
        """Path prefixes a client connects to (``/public/ws/...``); empty for unrouted products."""
        return ("/public", "/market", "/private") if self.routed else ()

    def cadence_ms(self, kind: str) -> int:
        return _ms(self.declared.kinds[kind].cadence_s)

    @property
    def mark_price_ms(self) -> int:
        return self.cadence_ms("markPrice")

    @property
    def mark_price_fast_ms(self) -> int:
        return 1000  # the ``@1s`` variant of a fast kind (``Product.fast_kinds``)

    @property
    def kline_ms(self) -> int:
        return self.cadence_ms("kline")

    @property
    def mini_ticker_ms(self) -> int:
        return self.cadence_ms("miniTicker")

    @property
    def ticker_ms(self) -> int:
        return self.cadence_ms("ticker")

    @property
    def ping_interval_s(self) -> float:
        return self.declared.server_ping_interval_s

    @property
    def pong_timeout_s(self) -> float:
        return self.declared.pong_timeout_s

    @property
    def max_incoming_per_second(self) -> float:
        return self.declared.max_incoming_per_second

    @property
    def max_streams_per_connection(self) -> int:
        return self.declared.max_streams_per_connection

    @property
    def unsigned_ids_only(self) -> bool:
        return self.declared.unsigned_ids_only

    @property
    def rest_prefix(self) -> str:
        return self.declared.rest_prefix

    def route_of_kind(self, kind: str) -> Route | None:
        found = self.declared.kinds.get(kind)
        return found.route if found is not None else None


USDM = FuturesProduct(name="usdm", declared=USDM_MARKET.product, market=USDM_MARKET, pair_key=False,
                      mark_ap=True, all_mark_price=True, index_streams=True)
COINM = FuturesProduct(name="coinm", declared=COINM_MARKET.product, market=COINM_MARKET, pair_key=True,
                       mark_ap=False, all_mark_price=False)
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
    """Decimals of ``spec``'s prices and quantities on the wire: :data:`PRECISIONS` where it is at least
    as fine as the tick and step (a spot-sized book keeps its own), else the tick's and step's."""
    own = (decimals(spec.tick_size), decimals(spec.step_size))
    shown = PRECISIONS.get(spec.symbol.upper(), own)
    return shown if shown[0] >= own[0] and shown[1] >= own[1] else own


_SPEEDS = "|".join(re.escape(s) for s in DEPTH_SPEEDS_MS if s)
_PARTIAL = re.compile(rf"depth({'|'.join(map(str, DEPTH_LEVELS))})({_SPEEDS})?")
_DIFF = re.compile(rf"depth({_SPEEDS})?")
_KLINE = re.compile(r"kline_(\w+)")


#: ``<symbol>@<suffix>`` kinds whose name is the suffix itself.
_PLAIN_KINDS = ("aggTrade", "trade", "markPrice", "miniTicker", "ticker", "bookTicker", "forceOrder",
                "assetIndex", "compositeIndex")


def symbol_suffix_route(suffix: str, declared: Product = USDM_PRODUCT) -> Route | None:
    """Which route serves ``<symbol>@<suffix>`` (the declaration's kind routes), or None for an unknown
    suffix."""
    kind: str | None = None
    if _PARTIAL.fullmatch(suffix):
        kind = "depthN"
    elif _DIFF.fullmatch(suffix):
        kind = "depth"
    elif suffix == "markPrice@1s":
        kind = "markPrice"
    elif suffix in _PLAIN_KINDS:
        kind = suffix
    else:
        kline = _KLINE.fullmatch(suffix)
        if kline and kline.group(1) in KLINE_INTERVALS:
            kind = "kline"
    found = declared.kinds.get(kind) if kind else None
    return found.route if found is not None else None


#: All-market streams and their routes (the declaration's ``all_market`` kinds).
MARKET_WIDE: dict[str, Route] = {name: USDM_PRODUCT.kinds[kind].route
                                 for name, (kind, _) in USDM_PRODUCT.all_market.items()}


_CONTINUOUS = re.compile(rf"[a-z0-9]+_({'|'.join(CONTRACT_TYPES)})@continuousKline_(\w+)")


def route_of_name(name: str) -> Route | None:
    """The route of a futures stream by its name's form alone (no symbol check): what a replayed
    recording's streams are routed by. None for a name of no known form."""
    if name.startswith("!"):
        return MARKET_WIDE.get(name)
    continuous = _CONTINUOUS.fullmatch(name)
    if continuous:
        return USDM_PRODUCT.kinds["continuousKline"].route if continuous.group(2) in KLINE_INTERVALS else None
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
