"""Everything about the simulated exchange that a test may want to change, in one place.

Defaults are Binance's production values (../shared/PROTOCOL.md sections 2 and 4); tests compress time by
shrinking them (a 2 s "day": ``SimConfig(connection_lifetime_s=2)``), or all at once with
:meth:`SimConfig.compressed`. :meth:`SimConfig.market` builds a market shaped like the real one: up to
:data:`MAX_SYMBOLS` generated symbols whose activity is heavy-tailed (:class:`Activity`).
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field

#: Most symbols :meth:`SimConfig.market` generates (about Binance spot's whole list).
MAX_SYMBOLS = 2000


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
    # python-binance's docs subscribe 'neobtc@ticker' beside 'bnbbtc@aggTrade'; list it so they run.
    SymbolSpec("NEOBTC", "NEO", "BTC", 0.00017, tick_size="0.00000100", step_size="0.01000000",
               min_notional="0.00010000"),
)


def generate_symbols(count: int, seed: int = 1) -> tuple[SymbolSpec, ...]:
    """``count`` symbols ``SYM0001USDT`` .. (base ``SYM0001``, quote USDT), deterministic by ``seed``.

    Starting prices spread log-uniformly from 0.001 to 20,000 USDT, as real listings do; the tick size is
    about a 10,000th of the price and the step size keeps the 5 USDT minimum notional a handful of steps.
    """
    if not 1 <= count <= MAX_SYMBOLS:
        raise ValueError(f"symbol count must be between 1 and {MAX_SYMBOLS}, not {count}")
    rng = random.Random(f"symbols-{seed}")
    specs = []
    for i in range(1, count + 1):
        price = 10 ** rng.uniform(-3.0, math.log10(20_000.0))
        base = f"SYM{i:04d}"
        specs.append(_spec(base, "USDT", price, _MIN_NOTIONAL_USDT))
    return tuple(specs)


#: Quote assets a symbol name may end with (longest first), each with a rough price in USDT: a named
#: symbol's starting price and minimum notional are drawn in USDT and expressed in its quote.
QUOTE_ASSETS: dict[str, float] = {"FDUSD": 1.0, "USDT": 1.0, "USDC": 1.0, "BTC": 61_800.0, "ETH": 2_450.0,
                                  "BNB": 525.0}
#: Binance spot's usual minimum order value (NOTIONAL filter) on USDT pairs.
_MIN_NOTIONAL_USDT = 5.0


def named_symbols(names: list[str], seed: int = 1) -> tuple[SymbolSpec, ...]:
    """The symbols ``names`` (``binance-ws sim --symbols BTCUSDT,XRPUSDT``): a default symbol keeps its
    spec; any other is split at the quote asset it ends with (:data:`QUOTE_ASSETS`) and gets a starting
    price drawn as :func:`generate_symbols` draws them (deterministic by ``seed`` and name), with filters
    to match. Raises ``ValueError`` naming a name that is not letters and digits ending in a known quote.
    """
    known = {spec.symbol: spec for spec in DEFAULT_SYMBOLS}
    specs: list[SymbolSpec] = []
    for raw in names:
        name = raw.strip().upper()
        if name in known:
            specs.append(known[name])
            continue
        quote = next((q for q in QUOTE_ASSETS if name.endswith(q) and len(name) > len(q)), None)
        if quote is None or not name.isalnum():
            raise ValueError(f"cannot list {raw.strip()!r}: a symbol is a base asset followed by one of "
                             f"{', '.join(QUOTE_ASSETS)} (e.g. XRPUSDT)")
        usdt_price = 10 ** random.Random(f"symbol-{name}-{seed}").uniform(-3.0, math.log10(20_000.0))
        specs.append(_spec(name.removesuffix(quote), quote, usdt_price / QUOTE_ASSETS[quote],
                           _MIN_NOTIONAL_USDT / QUOTE_ASSETS[quote]))
    if len({s.symbol for s in specs}) != len(specs):
        raise ValueError(f"a symbol is named twice in {','.join(names)}")
    return tuple(specs)


def _spec(base: str, quote: str, price: float, min_notional: float) -> SymbolSpec:
    """A symbol at about ``price`` with Binance-like filters: the tick is about a 10,000th of the price and
    the step keeps ``min_notional`` a handful of steps."""
    magnitude = math.floor(math.log10(price))
    tick = 10.0 ** max(-8, magnitude - 4)
    step = 10.0 ** min(3, max(-8, math.ceil(math.log10(min_notional / price)) - 2))
    price = round(round(price / tick) * tick, 8)
    return SymbolSpec(f"{base}{quote}", base, quote, price, tick_size=f"{tick:.8f}", step_size=f"{step:.8f}",
                      min_notional=f"{max(min_notional, 1e-8):.8f}")


@dataclass(frozen=True, slots=True)
class Activity:
    """How busy each symbol is: order-flow actions a second drawn from a log-normal, deterministic by seed.

    An action places, cancels or takes (about one in ten trades), so it changes the book. With the
    defaults, of 2,000 symbols the busiest few act every few milliseconds, the median one 3 times a
    minute, and about one in seven has less than one action in 5 minutes (silent for minutes at a time).
    """

    #: Actions a second of the median symbol.
    median_rate: float = 0.05
    #: Standard deviation of ln(rate): the heaviness of the tail.
    sigma: float = 2.5
    #: No symbol acts more often than this (bounds the CPU of the busiest few).
    max_rate: float = 400.0

    def rates(self, count: int, seed: int = 1) -> list[float]:
        """The rates of ``count`` symbols, in symbol order (the same for the same seed and count)."""
        rng = random.Random(f"activity-{seed}")
        return [min(self.max_rate, self.median_rate * math.exp(self.sigma * rng.gauss(0.0, 1.0)))
                for _ in range(count)]


@dataclass(slots=True)
class SimConfig:
    """Configuration of a :class:`binance_ws.sim.Simulator`."""

    symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS
    #: Seed of the synthetic order flow; the same seed gives the same sequence of engine events.
    seed: int = 1
    #: Synthetic order-flow actions per second, per symbol (0 stops the flow; tests may drive it by hand).
    #: Every symbol gets it when ``activity`` is None.
    flow_rate: float = 50.0
    #: Per-symbol heavy-tailed rates instead of ``flow_rate`` (see :meth:`market`).
    activity: Activity | None = None
    #: Trades per symbol recorded as history at start (over the hour before it, deterministic by
    #: ``seed``), so ``/trades``, ``/klines`` and the tickers have something to show at once, as on a
    #: real exchange; live trade ids continue from them.
    history_trades: int = 200
    #: How often the driver steps the flow and flushes periodic streams (a cadence shorter than this is
    #: served once a tick).
    tick_s: float = 0.01

    # Push cadences of the periodic streams (PROTOCOL.md 4.5-4.12).
    #: ``@depth@100ms`` and ``@depth<N>@100ms``.
    depth_fast_s: float = 0.1
    #: ``@depth`` and ``@depth<N>``.
    depth_s: float = 1.0
    #: ``@miniTicker``, ``@ticker``, ``@ticker_<w>``, ``@avgPrice``, ``!miniTicker@arr``,
    #: ``!ticker_<w>@arr`` and ``@kline_1s``.
    ticker_s: float = 1.0
    #: ``@kline_<i>`` for every interval but ``1s``.
    kline_s: float = 2.0
    #: How many times faster than real time the market's periods run (informational: set by
    #: :meth:`compressed`, which has already divided every period by it).
    time_scale: float = 1.0
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

    #: Which product the exchange is served as: "spot", or "usdm" / "coinm" (futures streams, routes and
    #: limits: build the config with ``binance_ws.sim.futures.product.product_config``).
    product: str = "spot"

    #: Serve the retired ``!ticker@arr`` / ``!bookTicker`` streams (off: refused as today's Binance does).
    legacy_streams: bool = False
    #: Keep the pre-2026 spot listen-key REST flow (off: ``POST /api/v3/userDataStream`` answers 410).
    legacy_listen_keys: bool = False

    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def market(cls, symbols: int = MAX_SYMBOLS, *, seed: int = 1, activity: Activity | None = None,
               **overrides: object) -> SimConfig:
        """A market shaped like Binance spot: ``symbols`` generated symbols (:func:`generate_symbols`)
        with heavy-tailed activity (:class:`Activity`), both deterministic by ``seed``.

        Raises ``ValueError`` unless ``1 <= symbols <=`` :data:`MAX_SYMBOLS`.
        """
        return cls(symbols=generate_symbols(symbols, seed), seed=seed, activity=activity or Activity(),
                   **overrides)  # type: ignore[arg-type]

    def symbol_rates(self) -> dict[str, float]:
        """Order-flow actions a second of each symbol, as the simulator's driver will run them."""
        names = [s.symbol.upper() for s in self.symbols]
        if self.activity is None:
            return dict.fromkeys(names, self.flow_rate)
        return dict(zip(names, self.activity.rates(len(names), self.seed), strict=True))

    def compressed(self, factor: float) -> SimConfig:
        """This config with every period of the market divided by ``factor``: the stream cadences, the
        ping interval and pong deadline, and the connection lifetime. ``SimConfig.market(2000)
        .compressed(1000)`` closes every connection after 86.4 s: a week of daily disconnects in about
        10 minutes.

        The order-flow rates are left alone: the flow's CPU cost follows its rate, and a week of real
        activity cannot be run in minutes in Python; change ``flow_rate`` or ``activity`` for that.
        A cadence shorter than ``tick_s`` is served once a tick. Limits on what a client sends (messages
        a second, connection attempts, REST weight) keep real time, since the client does not run
        compressed. Event times (``E``) stay wall-clock times, so klines and rolling windows still close on
        real minutes: they are pushed more often, not faster.
        """
        if not factor > 0:
            raise ValueError(f"time compression factor must be > 0, not {factor}")
        return dataclasses.replace(
            self, time_scale=self.time_scale * factor,
            depth_fast_s=self.depth_fast_s / factor, depth_s=self.depth_s / factor,
            ticker_s=self.ticker_s / factor, kline_s=self.kline_s / factor,
            ping_interval_s=self.ping_interval_s / factor, pong_timeout_s=self.pong_timeout_s / factor,
            connection_lifetime_s=self.connection_lifetime_s / factor)
