"""USD-M index streams beyond the mark price: ``assetIndex`` (Multi-Assets mode asset rates) and
``compositeIndex`` (index symbols), pure payload builders fed index prices.

Payload keys follow Binance's USD-M market-stream pages ("Multi-Assets Mode Asset Index":
``!assetIndex@arr`` / ``<assetSymbol>@assetIndex``, 1 s; "Composite Index Symbol Information":
``<symbol>@compositeIndex``, 1000 ms); PROTOCOL.md 8 lists the stream names only. Every number is an
8-decimal string there, as here.

The simulator's asset indexes are ``<BASE>USD`` for each listed USDT perpetual's base asset (its index
price, USDT taken at 1 USD) and ``USDTUSD``; its one composite index, :data:`SIM_COMPOSITE`, is a
simulator-only symbol made of the listed perpetuals (Binance's, e.g. ``DEFIUSDT``, hold assets the
simulator does not list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Valuation discounts (bid buffer, ask buffer, auto-exchange bid buffer, auto-exchange ask buffer) of an
#: asset in Multi-Assets mode: the page's examples show 0.10/0.10/0.05/0.05 (ADA) and 0.0001 (USDT).
DEFAULT_BUFFERS = (0.10, 0.10, 0.05, 0.05)
STABLE_BUFFERS = (0.0001, 0.0001, 0.0001, 0.0001)
#: Assets quoted as stable (index 1).
STABLE_ASSETS = frozenset({"USDT"})

#: The simulator's composite index symbol and its weights in quantity per base asset.
SIM_COMPOSITE = "SIMINDEXUSDT"
SIM_COMPOSITE_WEIGHTS: dict[str, float] = {"BTC": 0.001, "ETH": 0.01}


def _f8(x: float) -> str:
    return f"{x:.8f}"


def asset_index(asset_symbol: str, index: float, now_ms: int,
                buffers: tuple[float, float, float, float] = DEFAULT_BUFFERS) -> dict[str, Any]:
    """``assetIndexUpdate``: the index and the bid/ask rates after the valuation discounts."""
    b, a, q, g = buffers
    return {"e": "assetIndexUpdate", "E": now_ms, "s": asset_symbol, "i": _f8(index), "b": _f8(b),
            "a": _f8(a), "B": _f8(index * (1 - b)), "A": _f8(index * (1 + a)), "q": _f8(q), "g": _f8(g),
            "Q": _f8(index * (1 - q)), "G": _f8(index * (1 + g))}


@dataclass(frozen=True, slots=True)
class Component:
    """One constituent of a composite index: base/quote asset, weight in quantity, its index price."""

    base: str
    quote: str
    weight: float
    index: float


def composite_index(symbol: str, components: list[Component], now_ms: int) -> dict[str, Any]:
    """``compositeIndex``: the price (sum of weight x index) and each component's share of it."""
    price = sum(c.weight * c.index for c in components)
    return {"e": "compositeIndex", "E": now_ms, "s": symbol, "p": _f8(price), "C": "baseAsset",
            "c": [{"b": c.base, "q": c.quote, "w": _f8(c.weight),
                   "W": _f8(c.weight * c.index / price if price else 0.0), "i": _f8(c.index)}
                  for c in components]}
