"""Trades a fleet missed, fetched over REST: what closes the takeover's gap when a member dies alone.

When a trade or aggTrade stream's next message leaves a gap that no other writer fills within the sink's
hold (:mod:`binance_ws.sinks.redis`), the writer asks Binance's REST API for the missing ids
(``GET /api/v3/historicalTrades`` / ``/api/v3/aggTrades`` with ``fromId``, at most 1,000 a request) and
stores them, rebuilt in the stream's payload shape, before the held messages. What REST cannot say is the
event time: a rebuilt payload's ``E`` is its trade time ``T``. Each fill is noted in the events stream
(kind ``backfill``). A :class:`~binance_ws.core.budget.WeightBudget` bounds the weight spent (Binance
counts it per IP: members sharing an IP share its 6,000 a minute), and a 429/418 stops filling until its
``Retry-After``. Diff depth has no such history (its gaps are what book resyncs are for), and other
streams have no ids to miss.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import orjson

from binance_ws.core.budget import WeightBudget
from binance_ws.engine.rest import AsyncClient, BinanceAPIError

log = logging.getLogger(__name__)

#: Binance spot REST (PROTOCOL 7 / Binance's docs): request weights and the most rows a request returns.
HISTORICAL_TRADES_WEIGHT: Final = 25
AGG_TRADES_WEIGHT: Final = 4
MAX_ROWS: Final = 1000
#: Weight a minute one member may spend filling (of spot's 6,000 per IP).
DEFAULT_WEIGHT_PER_MINUTE: Final = 2400
#: Most requests one gap may take (1,000 ids each): a longer gap is stored as a gap.
MAX_REQUESTS_PER_GAP: Final = 10


class TradeBackfill:
    """Fetches ``first..last`` of a spot ``<symbol>@trade`` or ``@aggTrade`` stream: ``await fill(stream,
    first, last)`` returns the payloads (bytes, in id order; fewer when Binance has no more, the budget
    is out, or a request fails)."""

    def __init__(self, client: AsyncClient, *, weight_per_minute: int = DEFAULT_WEIGHT_PER_MINUTE) -> None:
        self.client = client
        self.budget = WeightBudget(weight_per_minute, 60.0)
        self.requests = 0
        self.filled = 0

    @staticmethod
    def can_fill(stream: str) -> bool:
        return stream.endswith(("@trade", "@aggTrade")) and not stream.startswith("!")

    async def _get(self, endpoint: str, weight: int, params: dict[str, Any]) -> list[dict[str, Any]]:
        wait = self.budget.spend(time.monotonic(), weight)
        if wait > 0:
            raise _OutOfBudget(wait)
        self.requests += 1
        try:
            result: list[dict[str, Any]] = await self.client._request("GET", self.client._api(endpoint),
                                                                       params)
        except BinanceAPIError as exc:
            if exc.is_rate_limited:
                self.budget.block_until(time.monotonic() + (exc.retry_after or 60.0))
            raise
        return result

    async def fill(self, stream: str, first: int, last: int) -> list[bytes]:
        symbol, _, kind = stream.partition("@")
        symbol = symbol.upper()
        out: list[bytes] = []
        start = first
        try:
            for _ in range(MAX_REQUESTS_PER_GAP):
                if start > last:
                    break
                limit = min(MAX_ROWS, last - start + 1)
                if kind == "trade":
                    rows = await self._get("historicalTrades", HISTORICAL_TRADES_WEIGHT,
                                           {"symbol": symbol, "fromId": start, "limit": limit})
                    for r in rows:
                        if start <= r["id"] <= last:
                            out.append(orjson.dumps({
                                "e": "trade", "E": r["time"], "s": symbol, "t": r["id"], "p": r["price"],
                                "q": r["qty"], "T": r["time"], "m": r["isBuyerMaker"],
                                "M": r.get("isBestMatch", True)}))
                    ids = [r["id"] for r in rows]
                else:
                    rows = await self._get("aggTrades", AGG_TRADES_WEIGHT,
                                           {"symbol": symbol, "fromId": start, "limit": limit})
                    for r in rows:
                        if start <= r["a"] <= last:
                            out.append(orjson.dumps({"e": "aggTrade", "E": r["T"], "s": symbol, **r}))
                    ids = [r["a"] for r in rows]
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
