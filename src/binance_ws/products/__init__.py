"""Products as data: one declaration each for spot, USD-M and COIN-M (see :mod:`.base`)."""

from binance_ws.products.base import MARKET, PUBLIC, Kind, Product, Route, SequenceRule
from binance_ws.products.coinm import COINM_PRODUCT
from binance_ws.products.spot import SPOT_PRODUCT, SPOT_RULE
from binance_ws.products.usdm import FUTURES_RULE, USDM_PRODUCT

#: Every product by name.
PRODUCTS: dict[str, Product] = {p.name: p for p in (SPOT_PRODUCT, USDM_PRODUCT, COINM_PRODUCT)}
#: Every sequence rule by name (the names callers may pass where a rule is expected).
SEQUENCE_RULES: dict[str, SequenceRule] = {r.name: r for r in (SPOT_RULE, FUTURES_RULE)}

__all__ = ["COINM_PRODUCT", "FUTURES_RULE", "MARKET", "PRODUCTS", "PUBLIC", "SEQUENCE_RULES", "SPOT_PRODUCT",
           "SPOT_RULE", "USDM_PRODUCT", "Kind", "Product", "Route", "SequenceRule"]
