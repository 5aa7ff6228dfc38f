"""Markets are data: one row per Binance environment (spot, its data-only host and testnet, USD-M,
COIN-M and their testnets): where to connect, and the :class:`~binance_ws.products.Product` whose
declaration says everything else (stream kinds, routes, models, sequence rule, REST prefix, limits).

Sources are ../shared/PROTOCOL.md sections 1, 2, 5, 8 (cited per field, and in ``binance_ws.products``).
Logic elsewhere reads these rows; it never hard-codes a URL, a limit or a sequence rule.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from binance_ws.products import COINM_PRODUCT, SPOT_PRODUCT, USDM_PRODUCT, Product, SequenceRule

__all__ = ["COINM", "COINM_TESTNET", "ENV_MARKET", "MARKETS", "SPOT", "SPOT_DATA", "SPOT_TESTNET", "USDM",
           "USDM_TESTNET", "Market", "SequenceRule", "default_market", "local_market"]


@dataclass(frozen=True, slots=True)
class Market:
    """One Binance environment: where to connect and which rules apply there.

    The rule fields are copied from ``product`` when a row is made (:func:`_row`); they stay fields so a
    test or a proxy can point one rule elsewhere with ``dataclasses.replace``.
    """

    name: str
    #: Base of market streams, without path (PROTOCOL 1.1 / 1.4 / 8).
    stream_url: str
    #: Base of the REST API (PROTOCOL 1.4).
    rest_url: str
    #: WebSocket API URL, or "" where the environment has none.
    ws_api_url: str
    #: REST path prefix ("/api/v3", "/fapi/v1", "/dapi/v1").
    rest_prefix: str = "/api/v3"
    #: Streams one connection may hold (PROTOCOL 2; futures 8).
    max_streams_per_connection: int = 1024
    #: Incoming messages (control JSON, pings, pongs) a second per connection
    #: (PROTOCOL 2; futures 10).
    max_incoming_per_second: float = 5.0
    #: Connection attempts per window per IP (PROTOCOL 2: 300 per 5 minutes).
    max_connections_per_window: int = 300
    connection_window_s: float = 300.0
    #: Server ping cadence and pong deadline (PROTOCOL 2: 20 s / 60 s; futures 8: 3 min / 10 min).
    server_ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    #: Connection lifetime before the server cuts it (PROTOCOL 2).
    connection_lifetime_s: float = 86_400.0
    #: Depth sequencing rule (PROTOCOL 5.1 spot, 5.2 futures with ``pu``).
    sequence_rule: SequenceRule = SPOT_PRODUCT.sequence
    #: Largest REST depth snapshot (PROTOCOL 5.1: 5000 spot; 5.2: 1000 futures).
    max_depth_limit: int = 5000
    #: REST request-weight budget per minute (spot REQUEST_WEIGHT 6000/min; futures 2400/min).
    rest_weight_per_minute: int = 6000
    #: Whether control-message ids must be unsigned integers (PROTOCOL 3: futures).
    unsigned_ids_only: bool = False
    #: Whether market streams are routed by path (/public, /market) as on USD-M since 2026 (PROTOCOL 8).
    routed_paths: bool = False
    #: The 1s kline interval exists (spot only, PROTOCOL 4.5 and 8).
    has_1s_klines: bool = True
    #: Whether a real exchange is behind it (TLS verification always on) or the local simulator.
    local: bool = False
    #: The product's declaration: stream kinds, routes, cadences, models, REST and user-data facts.
    product: Product = SPOT_PRODUCT

    def with_urls(self, *, stream_url: str | None = None, rest_url: str | None = None,
                  ws_api_url: str | None = None, name: str | None = None,
                  local: bool | None = None) -> Market:
        """A copy pointed elsewhere (the simulator, a proxy) with the same rules."""
        return dataclasses.replace(
            self,
            name=name or self.name,
            stream_url=stream_url if stream_url is not None else self.stream_url,
            rest_url=rest_url if rest_url is not None else self.rest_url,
            ws_api_url=ws_api_url if ws_api_url is not None else self.ws_api_url,
            local=self.local if local is None else local,
        )


def _row(product: Product, **fields: Any) -> Market:
    """A market row with ``product``'s rules (``fields`` are the environment's own: name, URLs, ...)."""
    rules: dict[str, Any] = dict(
        product=product,
        rest_prefix=product.rest_prefix,
        max_streams_per_connection=product.max_streams_per_connection,
        max_incoming_per_second=product.max_incoming_per_second,
        server_ping_interval_s=product.server_ping_interval_s,
        pong_timeout_s=product.pong_timeout_s,
        sequence_rule=product.sequence,
        max_depth_limit=product.max_depth_limit,
        rest_weight_per_minute=product.rest_weight_per_minute,
        unsigned_ids_only=product.unsigned_ids_only,
        has_1s_klines=product.has_1s_klines,
    )
    return Market(**{**rules, **fields})


SPOT = _row(
    SPOT_PRODUCT,
    name="spot",
    stream_url="wss://stream.binance.com:9443",
    rest_url="https://api.binance.com",
    ws_api_url="wss://ws-api.binance.com:443/ws-api/v3",
)
SPOT_DATA = dataclasses.replace(
    SPOT,
    name="spot-data",  # market data only, no user streams (PROTOCOL 1.1)
    stream_url="wss://data-stream.binance.vision:443",
    rest_url="https://data-api.binance.vision",
    ws_api_url="",
)
SPOT_TESTNET = dataclasses.replace(
    SPOT,
    name="spot-testnet",
    stream_url="wss://stream.testnet.binance.vision:9443",
    rest_url="https://testnet.binance.vision",
    ws_api_url="wss://ws-api.testnet.binance.vision/ws-api/v3",
)
USDM = _row(
    USDM_PRODUCT,
    name="usdm",
    stream_url="wss://fstream.binance.com/public",
    rest_url="https://fapi.binance.com",
    ws_api_url="wss://ws-fapi.binance.com/ws-fapi/v1",
    routed_paths=True,  # /public, /market, /private since 2026 (PROTOCOL 8)
)
USDM_TESTNET = dataclasses.replace(
    USDM,
    name="usdm-testnet",
    stream_url="wss://fstream.binancefuture.com",
    rest_url="https://demo-fapi.binance.com",
    ws_api_url="wss://testnet.binancefuture.com/ws-fapi/v1",
    routed_paths=False,
)
COINM = _row(
    COINM_PRODUCT,
    name="coinm",
    stream_url="wss://dstream.binance.com",
    rest_url="https://dapi.binance.com",
    ws_api_url="",
)
COINM_TESTNET = dataclasses.replace(
    COINM,
    name="coinm-testnet",
    stream_url="wss://dstream.binancefuture.com",
    rest_url="https://testnet.binancefuture.com",
)

MARKETS: dict[str, Market] = {
    m.name: m for m in (SPOT, SPOT_DATA, SPOT_TESTNET, USDM, USDM_TESTNET, COINM, COINM_TESTNET)
}


#: The environment variable that picks the market when code names none: a name in :data:`MARKETS`
#: (``spot-testnet``, ...), or a simulator's URLs ``stream_url,rest_url[,ws_api_url]`` as ``binance-ws sim``
#: prints them. Unset: Binance spot.
ENV_MARKET: Final = "BINANCE_WS_MARKET"


def default_market(environ: Mapping[str, str] | None = None) -> Market:
    """The market of a client or manager given none: :data:`ENV_MARKET`'s, else :data:`SPOT`.

    Raises ValueError naming the accepted forms when the variable is set to anything else.
    """
    value = (os.environ if environ is None else environ).get(ENV_MARKET, "").strip()
    if not value:
        return SPOT
    if value in MARKETS:
        return MARKETS[value]
    urls = [u.strip() for u in value.split(",")]
    schemes = (("ws://", "wss://"), ("http://", "https://"), ("ws://", "wss://"))
    if 2 <= len(urls) <= 3 and all(u.startswith(s) for u, s in zip(urls, schemes, strict=False)):
        return local_market(urls[0], urls[1], urls[2] if len(urls) == 3 else "")
    raise ValueError(f"{ENV_MARKET}={value!r} is neither a market name ({', '.join(MARKETS)}) nor "
                     "'stream_url,rest_url[,ws_api_url]' (ws://..., http://..., ws://...)")


def local_market(stream_url: str, rest_url: str, ws_api_url: str = "", base: Market = SPOT) -> Market:
    """A market row for a simulator (or any endpoint) at the given URLs, with ``base``'s rules."""
    return base.with_urls(stream_url=stream_url, rest_url=rest_url, ws_api_url=ws_api_url,
                          name=f"{base.name}-local", local=True)
