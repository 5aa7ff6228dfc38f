"""Trades a fleet missed, fetched over REST: what closes the takeover's gap when a member dies alone.

When a trade or aggTrade stream's next message leaves a gap that no other writer fills within the sink's
hold (:mod:`binance_ws.sinks.redis`), the writer asks Binance's REST API for the missing ids
(``historicalTrades`` / ``aggTrades`` with ``fromId``) and stores them, rebuilt in the stream's payload
shape, before the held messages. What REST cannot say is the event time: a rebuilt payload's ``E`` is
its trade time ``T`` (and a futures aggTrade has no ``nq``, which REST does not give). Each fill is noted
in the events stream (kind ``backfill``). A :class:`~binance_ws.core.budget.WeightBudget` bounds the weight
spent (Binance counts it per IP: members sharing an IP share its limit), and a 429/418 stops filling until
its ``Retry-After``. Diff depth has no such history (its gaps are what book resyncs are for), and other
streams have no ids to miss.

Products differ in a table, :data:`HISTORY` (Binance's REST docs, "Old Trades Lookup" and
"Compressed/Aggregate Trades List"): spot's ``historicalTrades`` weighs 25 and returns up to 1,000 rows
with no key; USD-M's and COIN-M's weigh 20, return up to 500 and are MARKET_DATA (the API key header:
without a key, futures ``@trade`` gaps stay gaps, ``@aggTrade`` ones are filled); ``aggTrades`` weighs 4
on spot and 20 on futures, up to 1,000 rows, no key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from binance_ws.core.budget import WeightBudget
from binance_ws.engine.rest import AsyncClient, BinanceAPIError

log = logging.getLogger(__name__)

#: Share of a product's per-IP REST weight a minute one member may spend filling, by default.
DEFAULT_WEIGHT_SHARE: Final = 0.4
#: Most requests one gap may take: a longer gap is stored as a gap.
MAX_REQUESTS_PER_GAP: Final = 10


def _spot_trade(symbol: str, r: dict[str, Any]) -> dict[str, Any]:
    return {"e": "trade", "E": r["time"], "s": symbol, "t": r["id"], "p": r["price"], "q": r["qty"],
            "T": r["time"], "m": r["isBuyerMaker"], "M": r.get("isBestMatch", True)}


def _futures_trade(symbol: str, r: dict[str, Any]) -> dict[str, Any]:
    # The stream's keys (hftbacktest's USD-M capture): X is the order type, MARKET for what REST lists
    # ("only market trades": no insurance fund or ADL trades).
    return {"e": "trade", "E": r["time"], "T": r["time"], "s": symbol, "t": r["id"], "p": r["price"],
            "q": r["qty"], "X": "MARKET", "m": r["isBuyerMaker"]}


def _spot_agg(symbol: str, r: dict[str, Any]) -> dict[str, Any]:
    return {"e": "aggTrade", "E": r["T"], "s": symbol, **r}


def _futures_agg(symbol: str, r: dict[str, Any]) -> dict[str, Any]:
    return {"e": "aggTrade", "E": r["T"], "a": r["a"], "s": symbol, "p": r["p"], "q": r["q"], "f": r["f"],
            "l": r["l"], "T": r["T"], "m": r["m"]}


@dataclass(frozen=True, slots=True)
class TradeHistory:
    """One product's REST trade history: weights, rows a request, whether trades need the API key, and
    how a row becomes the stream's payload."""

    trades_weight: int
    trades_max: int
    trades_need_key: bool
    aggs_weight: int
    aggs_max: int
    trade_payload: Callable[[str, dict[str, Any]], dict[str, Any]]
    agg_payload: Callable[[str, dict[str, Any]], dict[str, Any]]


_FUTURES = TradeHistory(20, 500, True, 20, 1000, _futures_trade, _futures_agg)
#: By product name (``Product.name``).
HISTORY: Final[dict[str, TradeHistory]] = {
    "spot": TradeHistory(25, 1000, False, 4, 1000, _spot_trade, _spot_agg),
    "usdm": _FUTURES,
    "coinm": _FUTURES,
}


def default_weight_per_minute(product: Any) -> int:
    """What one member may spend a minute by default: :data:`DEFAULT_WEIGHT_SHARE` of ``product``'s
    per-IP limit (2,400 of spot's 6,000; 960 of futures' 2,400)."""
    return int(product.rest_weight_per_minute * DEFAULT_WEIGHT_SHARE)


class TradeBackfill:
    """Fetches ``first..last`` of a ``<symbol>@trade`` or ``@aggTrade`` stream of ``client``'s product:
    ``await fill(stream, first, last)`` returns the payloads (bytes, in id order; fewer when Binance has no
    more, the budget is out, or a request fails)."""

    def __init__(self, client: AsyncClient, *, weight_per_minute: int | None = None) -> None:
        self.client = client
        product = client.market.product
        self.history = HISTORY[product.name]
        self.budget = WeightBudget(weight_per_minute if weight_per_minute is not None
                                   else default_weight_per_minute(product), 60.0)
        self.requests = 0
        self.filled = 0
        #: Trades need the API key on this product and the client has none: only aggTrades are filled.
        self.trades_unavailable = self.history.trades_need_key and not client.api_key

    def can_fill(self, stream: str) -> bool:
        if stream.startswith("!"):
            return False
        if stream.endswith("@aggTrade"):
            return True
        return stream.endswith("@trade") and not self.trades_unavailable

    async def _get(self, endpoint: str, weight: int, params: dict[str, Any],
                   api_key: bool = False) -> list[dict[str, Any]]:
        wait = self.budget.spend(time.monotonic(), weight)
        if wait > 0:
            raise _OutOfBudget(wait)
        self.requests += 1
        try:
            result: list[dict[str, Any]] = await self.client._request(
                "GET", self.client._api(endpoint), params, api_key=api_key)
        except BinanceAPIError as exc:
            if exc.is_rate_limited:
                self.budget.block_until(time.monotonic() + (exc.retry_after or 60.0))
            raise
        return result

    async def fill(self, stream: str, first: int, last: int) -> list[bytes]:
        symbol, _, kind = stream.partition("@")
        symbol = symbol.upper()
        h = self.history
        out: list[bytes] = []
        start = first
        try:
            for _ in range(MAX_REQUESTS_PER_GAP):
                if start > last:
                    break
                if kind == "trade":
                    rows = await self._get("historicalTrades", h.trades_weight, {
                        "symbol": symbol, "fromId": start, "limit": min(h.trades_max, last - start + 1)},
                        api_key=h.trades_need_key)
                    ids = [r["id"] for r in rows]
                    out += (orjson.dumps(h.trade_payload(symbol, r)) for r in rows
                            if start <= r["id"] <= last)
                else:
                    rows = await self._get("aggTrades", h.aggs_weight, {
                        "symbol": symbol, "fromId": start, "limit": min(h.aggs_max, last - start + 1)})
                    ids = [r["a"] for r in rows]
                    out += (orjson.dumps(h.agg_payload(symbol, r)) for r in rows
                            if start <= r["a"] <= last)
                if not ids or max(ids) < start:
                    break
                start = max(ids) + 1
        except _OutOfBudget as exc:
            log.warning("backfill of %s stopped at %d: REST weight budget spent (open again in %.0f s)",
                        stream, start, exc.wait)
        except (TimeoutError, BinanceAPIError) as exc:
            log.warning("backfill of %s stopped at %d: %s", stream, start, exc)
        self.filled += len(out)
        return out


class _OutOfBudget(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"wait {wait:.1f} s")
        self.wait = wait
