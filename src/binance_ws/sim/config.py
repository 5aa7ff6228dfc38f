"""Everything about the simulated exchange that a test may want to change, in one place.

Defaults are Binance's production values (../shared/PROTOCOL.md section 2); tests compress time by
shrinking them (a 2 s "day": ``SimConfig(connection_lifetime_s=2)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SymbolSpec:
    """A tradable symbol with its exchange filters (published by exchangeInfo)."""

    symbol: str
    base: str
    quote: str
    #: Starting mid price.
    price: float
    tick_size: str = "0.01000000"
    step_size: str = "0.00001000"
    min_notional: str = "5.00000000"
    status: str = "TRADING"


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTCUSDT", "BTC", "USDT", 61_800.0, tick_size="0.01000000", step_size="0.00001000"),
    SymbolSpec("ETHUSDT", "ETH", "USDT", 2_450.0, tick_size="0.01000000", step_size="0.00010000"),
    SymbolSpec("BNBBTC", "BNB", "BTC", 0.0085, tick_size="0.00000100", step_size="0.00100000",
               min_notional="0.00010000"),
)


@dataclass(slots=True)
class SimConfig:
    """Configuration of a :class:`binance_ws.sim.Simulator`."""

    symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS
    #: Seed of the synthetic order flow; the same seed gives the same sequence of engine events.
    seed: int = 1
    #: Synthetic order-flow actions per second, per symbol (0 stops the flow; tests may drive it by hand).
    flow_rate: float = 50.0
    #: How often the driver steps the flow and flushes periodic streams.
    tick_s: float = 0.01
    host: str = "127.0.0.1"
    #: 0 picks an ephemeral port.
    stream_port: int = 0
    rest_port: int = 0

    # Stream-server limits (PROTOCOL.md section 2).
    max_streams_per_connection: int = 1024
    max_incoming_per_second: float = 5.0
    max_connections_per_window: int = 300
    connection_window_s: float = 300.0
    ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    connection_lifetime_s: float = 86_400.0
    #: Largest frame the server accepts from a client.
    max_frame_size: int = 1 << 20

    # REST limits (spot REQUEST_WEIGHT: 6000 a minute; an IP that keeps going after 429 gets 418).
    rest_weight_limit: int = 6000
    rest_weight_window_s: float = 60.0
    #: How many requests past a 429 before the IP is banned (418).
    rest_ban_after_429s: int = 3
    rest_ban_s: float = 120.0

    #: Serve the retired ``!ticker@arr`` / ``!bookTicker`` streams (off: refused as today's Binance does).
    legacy_streams: bool = False
    #: Keep the pre-2026 spot listen-key REST flow (off: ``POST /api/v3/userDataStream`` answers 410).
    legacy_listen_keys: bool = False

    extra: dict[str, object] = field(default_factory=dict)
