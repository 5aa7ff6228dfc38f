"""Futures contracts as data: how one engine symbol is listed on USD-M and on COIN-M, and what the two
products' REST and user-data shapes differ in.

The simulator has one matching engine per symbol. ``BTCUSDT``'s book is served as spot ``BTCUSDT``, as the
USD-M perpetual ``BTCUSDT`` and as the COIN-M perpetual ``BTCUSD_PERP``; only the names, assets, units and
key sets below differ (PROTOCOL.md 8; Binance's USD-M and COIN-M REST and user-data pages, whose key sets
are also those of Binance's generated connector models). A book already in contract form
(``BTCUSD_PERP``, quote ``USD``: a simulator run as COIN-M) is listed on COIN-M as itself, its engine
quantities being contracts already.

Units: USD-M quantities are in the base asset, as in the engine. COIN-M quantities are contracts of
``contractSize`` USD each: a level of ``q`` base units at price ``p`` shows ``round(q * p / size)``
contracts (at least 1 for a non-empty level), and a COIN-M trade's ``baseQty`` is the engine's quantity
(for a contract-form book: contracts x size / price).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from binance_ws.products import COINM_PRODUCT, USDM_PRODUCT, Product
from binance_ws.sim.config import SymbolSpec
from binance_ws.sim.exchange import SCALE
from binance_ws.sim.futures.product import precision

#: ``deliveryDate`` of a perpetual (Binance's placeholder, 2100-12-25).
PERPETUAL_DELIVERY: Final = 4133404800000
#: ``onboardDate`` of every simulated contract (Binance's BTCUSDT perpetual listing, 2019-09-25).
ONBOARD_DATE: Final = 1569398400000
#: Interest rate of a funding period (0.01 % per 8 h, Binance's published default).
INTEREST_RATE: Final = 0.0001
#: Funding is settled every 8 h at 00:00, 08:00, 16:00 UTC.
FUNDING_PERIOD_MS: Final = 8 * 3_600_000
#: The funding rate is the premium clamped around the interest rate by this much (+-0.05 %).
FUNDING_CLAMP: Final = 0.0005
#: Futures order types and times in force (USD-M and COIN-M common-definition pages).
ORDER_TYPES: Final = ("LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                      "TRAILING_STOP_MARKET")
USDM_TIME_IN_FORCE: Final = ("GTC", "IOC", "FOK", "GTX", "GTD")
COINM_TIME_IN_FORCE: Final = ("GTC", "IOC", "FOK", "GTX")
#: COIN-M contract sizes in USD (BTC contracts are 100 USD, every other coin's 10 USD).
COINM_CONTRACT_SIZES: Final = {"BTC": 100}
COINM_DEFAULT_CONTRACT_SIZE: Final = 10

#: Quote assets whose engine symbols are listed as USD-M perpetuals.
USDM_QUOTES: Final = frozenset({"USDT", "USDC"})
#: Quote assets whose engine symbols are listed as COIN-M perpetuals (``<BASE>USD_PERP``).
COINM_QUOTES: Final = frozenset({"USDT", "USD"})


def decimals(step: str) -> int:
    """Decimal places of a tick or step size string: ``"0.10000000"`` -> 1, ``"1.00000000"`` -> 0."""
    return len(step.partition(".")[2].rstrip("0"))


def fixed(units: int, places: int) -> str:
    """Engine units (1e-8) as a decimal string with ``places`` decimals (truncated)."""
    sign = "-" if units < 0 else ""
    q = abs(units) // 10 ** (8 - places)
    if not places:
        return f"{sign}{q}"
    s = str(q).rjust(places + 1, "0")
    return f"{sign}{s[:-places]}.{s[-places:]}"


def plain(value: Decimal) -> str:
    """A Decimal as Binance prints futures amounts: no exponent, no trailing zeros (``"0"``, ``"1.5"``)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True, slots=True)
class Contract:
    """One engine symbol listed as a futures contract."""

    symbol: str
    engine_symbol: str
    pair: str
    base: str
    quote: str
    margin_asset: str
    spec: SymbolSpec
    price_places: int
    qty_places: int
    #: USD per contract (COIN-M); 0 on USD-M, where quantities are base units.
    contract_size: int = 0
    #: Whether the engine's quantities are base units to show as contracts (a spot-named book listed on
    #: COIN-M); a contract-form book (``BTCUSD_PERP``) already trades in contracts.
    converts: bool = False

    def price(self, units: int) -> str:
        return fixed(units, self.price_places)

    def quantity(self, qty_units: int, price_units: int) -> str:
        """An engine quantity in this product's unit."""
        if not self.converts:
            return fixed(qty_units, self.qty_places)
        if price_units <= 0 or qty_units <= 0:
            return "0"
        contracts = round(qty_units * price_units / SCALE / SCALE / self.contract_size)
        return str(max(1, contracts))

    def base_quantity(self, qty_units: int, price_units: int) -> float:
        """An engine quantity in the base asset (COIN-M ``baseQty``)."""
        if self.converts or not self.contract_size:
            return qty_units / SCALE
        return qty_units / SCALE * self.contract_size / (price_units / SCALE) if price_units > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ContractMarket:
    """One futures product's declarations: REST prefix, listing rule, limits and key-set differences."""

    name: str
    #: The product's shared declaration (binance_ws.products): REST prefix, weight limit, depth limits
    #: and depth weights are read from it.
    declared: Product
    #: ``exchangeInfo`` ``futuresType``-era top level: USD-M lists margin ``assets``; COIN-M has none.
    lists_assets: bool
    #: COIN-M bodies and events carry the pair (``depth``, ``premiumIndex``) and the account alias ``i``.
    pair_keys: bool
    #: USD-M sends ``TRADE_LITE`` beside ``ORDER_TRADE_UPDATE`` for every fill (since 2024-09-03).
    trade_lite: bool
    #: Status key of an exchangeInfo symbol (``status`` on USD-M, ``contractStatus`` on COIN-M).
    status_key: str
    time_in_force: tuple[str, ...]
    depth_default: int = 500
    trades_default: int = 500
    trades_max: int = 1000
    #: ``historicalTrades`` (MARKET_DATA: the API key header) and ``aggTrades`` (public): weight 20 each on
    #: both products; limits default 100 / max 500 and default 500 / max 1000 (Binance's USD-M and COIN-M
    #: "Old Trades Lookup" and "Compressed/Aggregate Trades List").
    history_weight: int = 20
    historical_default: int = 100
    historical_max: int = 500
    agg_default: int = 500
    agg_max: int = 1000
    klines_default: int = 500
    klines_max: int = 1500
    #: Kline weight by limit band (upper bound -> weight).
    klines_weights: tuple[tuple[int, int], ...] = ((99, 1), (499, 2), (1000, 5), (1500, 10))
    #: premiumIndex weight with and without ``symbol``.
    premium_weights: tuple[int, int] = (1, 10)

    @property
    def prefix(self) -> str:
        """REST prefix (``/fapi/v1``, ``/dapi/v1``)."""
        return self.declared.rest_prefix

    @property
    def weight_limit(self) -> int:
        """REQUEST_WEIGHT per minute (PROTOCOL 8: 2400 on both)."""
        return self.declared.rest_weight_per_minute

    @property
    def depth_limits(self) -> tuple[int, ...]:
        """The valid REST depth limits (PROTOCOL 5.2); others are rounded up to the next one."""
        limits = self.declared.sequence.limits
        return limits if limits is not None else tuple(b for b, _ in self.declared.sequence.weights)

    @property
    def depth_weights(self) -> tuple[tuple[int, int], ...]:
        """Depth weight by limit band (upper bound -> weight)."""
        return self.declared.sequence.weights

    def listing(self, spec: SymbolSpec) -> Contract | None:
        """How ``spec``'s book is listed here, or None if it is not."""
        engine = spec.symbol.upper()
        places = precision(spec)  # the futures streams' precision: one wire format for REST, streams, events
        if self.name == "usdm":
            if spec.quote not in USDM_QUOTES:
                return None
            return Contract(engine, engine, engine.partition("_")[0], spec.base, spec.quote, spec.quote,
                            spec, *places)
        if "_" in engine:
            if spec.quote != "USD":
                return None
            symbol, converts = engine, False
        elif spec.quote in COINM_QUOTES:
            symbol, converts = f"{spec.base}USD_PERP", True
        else:
            return None
        size = COINM_CONTRACT_SIZES.get(spec.base, COINM_DEFAULT_CONTRACT_SIZE)
        return Contract(symbol, engine, symbol.partition("_")[0], spec.base, "USD", spec.base, spec,
                        places[0], 0, size, converts)

    def rate_limits(self) -> list[dict[str, object]]:
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}]


USDM = ContractMarket(name="usdm", declared=USDM_PRODUCT, lists_assets=True, pair_keys=False, trade_lite=True,
                      status_key="status", time_in_force=USDM_TIME_IN_FORCE)
COINM = ContractMarket(name="coinm", declared=COINM_PRODUCT, lists_assets=False, pair_keys=True,
                       trade_lite=False, status_key="contractStatus", time_in_force=COINM_TIME_IN_FORCE,
                       premium_weights=(10, 10))
CONTRACT_MARKETS: Final = (USDM, COINM)


def band(bands: tuple[tuple[int, int], ...], value: int) -> int:
    """The weight of ``value`` in ``(upper bound, weight)`` bands (the last band beyond its bound)."""
    return next((w for bound, w in bands if value <= bound), bands[-1][1])


def next_funding_time(now_ms: int) -> int:
    """The next 00:00 / 08:00 / 16:00 UTC after ``now_ms``."""
    return (now_ms // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
