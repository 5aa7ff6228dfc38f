"""Futures on the asyncio manager: python-binance 1.0.37's futures socket factories, by name and argument.

A manager connects to one market. A futures call on it (``futures_type=FuturesType.USD_M`` or
``COIN_M``) reaches the futures market of the same environment: the manager itself when it is that
market, else a sibling manager made on first use with the same settings and closed with it. Which
market that is comes from :func:`futures_market_for` (mainnet spot -> USD-M / COIN-M, a testnet -> the
futures testnets; a local endpoint such as the simulator has no implied futures market, so pass
``futures_market=`` / ``coin_futures_market=``).

Stream names, routes and models come from the product declarations (``binance_ws.products``): a USD-M
``futures_multiplex_socket`` is split over ``/public`` and ``/market`` as each stream needs, where
python-binance puts every stream on ``/market`` (and book streams there stay silent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from binance_ws import errors, streams
from binance_ws.engine.userdata import ListenKeyStream, UserDecode
from binance_ws.enums import KLINE_INTERVAL_1MINUTE, ContractType, FuturesType
from binance_ws.markets import COINM, COINM_TESTNET, USDM, USDM_TESTNET, Market

if TYPE_CHECKING:
    from binance_ws.engine.manager import AsyncSocketManager, StreamSocket

#: The futures markets of each environment, by the name suffix of its market row (PROTOCOL 1.4).
_FUTURES_OF: Final[dict[str, tuple[Market, Market]]] = {
    "": (USDM, COINM),
    "-testnet": (USDM_TESTNET, COINM_TESTNET),
}
#: python-binance's default depth of ``futures_depth_socket`` (a partial book of 10 levels).
DEFAULT_FUTURES_DEPTH: Final = "10"
#: USD-M's routed user-data path (PROTOCOL 8).
PRIVATE_PATH: Final = "/private"


def futures_type_of(value: Any) -> FuturesType:
    """``value`` as a :class:`FuturesType`: ours, python-binance's (same values), 1/2, or "usdm"/"coinm".
    Raises ``ValueError`` for anything else."""
    if isinstance(value, FuturesType):
        return value
    raw = value.value if isinstance(value, Enum) else value
    if raw in (1, "usdm", "USD_M"):
        return FuturesType.USD_M
    if raw in (2, "coinm", "COIN_M"):
        return FuturesType.COIN_M
    raise ValueError(f"futures_type must be FuturesType.USD_M or FuturesType.COIN_M, got {value!r}")


def contract_type_of(value: Any) -> str:
    """A contract type (:class:`ContractType`, python-binance's, or its string) as the stream spells it."""
    raw = value.value if isinstance(value, Enum) else value
    if not isinstance(raw, str):
        raise errors.InvalidStreamError(
            f"contract_type must be a ContractType such as ContractType.PERPETUAL, got {value!r}")
    return raw.lower()


def futures_market_for(market: Market, futures_type: Any, *, usdm: Market | None = None,
                       coinm: Market | None = None) -> Market:
    """The market a futures call of ``futures_type`` reaches from a manager on ``market``: the explicit
    ``usdm``/``coinm`` row if given, ``market`` itself if it is that product, else the futures market of
    the same environment. Raises ``ValueError`` for a local endpoint without an explicit row."""
    kind = futures_type_of(futures_type)
    product = "usdm" if kind is FuturesType.USD_M else "coinm"
    explicit = usdm if kind is FuturesType.USD_M else coinm
    if explicit is not None:
        return explicit
    if market.product.name == product:
        return market
    if market.local:
        raise ValueError(
            f"{market.name} is a local endpoint with no {product} market: pass "
            f"{'futures_market' if product == 'usdm' else 'coin_futures_market'}=local_market(stream_url, "
            f"rest_url, base={product.upper()}) to the manager")
    suffix = "-testnet" if market.name.endswith("-testnet") else ""
    pair = _FUTURES_OF[suffix]
    return pair[0] if kind is FuturesType.USD_M else pair[1]


def private_stream_url(market: Market) -> str:
    """The base URL of ``market``'s listen-key user-data streams: ``.../private`` on a routed market."""
    root = market.stream_url.rstrip("/")
    if market.routed_paths:
        root = root.rsplit("/", 1)[0] + PRIVATE_PATH
    return root


class FuturesSockets:
    """python-binance 1.0.37's futures socket factories, mixed into ``AsyncSocketManager``.

    Each returns a socket opened by ``async with`` (``recv()``, ``async for``), like the spot ones; its
    names are validated at once against the futures market (:class:`~binance_ws.errors.InvalidStreamError`).
    """

    market: Market
    client: Any

    if TYPE_CHECKING:
        def futures_manager(self, futures_type: Any = FuturesType.USD_M) -> AsyncSocketManager: ...

    def _futures_socket_of(self, names: str | Iterable[str], futures_type: Any, **opts: Any) -> StreamSocket:
        return self.futures_manager(futures_type).socket(names, **opts)

    def kline_futures_socket(self, symbol: str, interval: str = KLINE_INTERVAL_1MINUTE,
                             futures_type: Any = FuturesType.USD_M,
                             contract_type: Any = ContractType.PERPETUAL, **opts: Any) -> StreamSocket:
        """``<pair>_<contractType>@continuousKline_<interval>`` (python-binance's stream for this call)."""
        market = self.futures_manager(futures_type).market
        name = streams.continuous_kline(symbol, contract_type_of(contract_type), interval, market)
        return self._futures_socket_of(name, futures_type, **opts)

    def aggtrade_futures_socket(self, symbol: str, futures_type: Any = FuturesType.USD_M,
                                **opts: Any) -> StreamSocket:
        """``<symbol>@aggTrade`` on futures."""
        return self._futures_socket_of(streams.agg_trade(symbol), futures_type, **opts)

    def futures_ticker_socket(self, **opts: Any) -> StreamSocket:
        """``!ticker@arr`` on USD-M."""
        return self._futures_socket_of(streams.all_ticker(), FuturesType.USD_M, **opts)

    def futures_coin_ticker_socket(self, **opts: Any) -> StreamSocket:
        """``!ticker@arr`` on COIN-M."""
        return self._futures_socket_of(streams.all_ticker(), FuturesType.COIN_M, **opts)

    def index_price_socket(self, symbol: str, fast: bool = True, **opts: Any) -> StreamSocket:
        """``<pair>@indexPrice@1s`` (``fast``) or ``@indexPrice`` on COIN-M."""
        return self._futures_socket_of(streams.index_price(symbol, fast), FuturesType.COIN_M, **opts)

    def symbol_mark_price_socket(self, symbol: str, fast: bool = True,
                                 futures_type: Any = FuturesType.USD_M, **opts: Any) -> StreamSocket:
        """``<symbol>@markPrice@1s`` (``fast``) or ``@markPrice``."""
        return self._futures_socket_of(streams.mark_price(symbol, fast), futures_type, **opts)

    def all_mark_price_socket(self, fast: bool = True, futures_type: Any = FuturesType.USD_M,
                              **opts: Any) -> StreamSocket:
        """``!markPrice@arr@1s`` (``fast``) or ``!markPrice@arr``."""
        return self._futures_socket_of(streams.all_mark_price(fast), futures_type, **opts)

    def symbol_ticker_futures_socket(self, symbol: str, futures_type: Any = FuturesType.USD_M,
                                     **opts: Any) -> StreamSocket:
        """``<symbol>@bookTicker`` on futures (python-binance's stream for this name)."""
        return self._futures_socket_of(streams.book_ticker(symbol), futures_type, **opts)

    def individual_symbol_ticker_futures_socket(self, symbol: str, futures_type: Any = FuturesType.USD_M,
                                                **opts: Any) -> StreamSocket:
        """``<symbol>@ticker`` on futures."""
        return self._futures_socket_of(streams.ticker(symbol), futures_type, **opts)

    def all_ticker_futures_socket(self, channel: str = "!bookTicker", futures_type: Any = FuturesType.USD_M,
                                  **opts: Any) -> StreamSocket:
        """An all-market futures stream, ``!bookTicker`` by default (``!ticker@arr``, ``!miniTicker@arr``,
        ...)."""
        return self._futures_socket_of(channel, futures_type, **opts)

    def futures_multiplex_socket(self, streams: Iterable[str], futures_type: Any = FuturesType.USD_M,
                                 category: str | None = None, **opts: Any) -> StreamSocket:
        """Several futures streams, messages ``{'stream', 'data'}``; each stream goes to the route its
        product declares (``category``, python-binance's one path for all, is accepted and not needed)."""
        from binance_ws.streams import stream_list

        return self._futures_socket_of(stream_list(streams), futures_type, wrap=True, **opts)

    def futures_depth_socket(self, symbol: str, depth: str | int | None = DEFAULT_FUTURES_DEPTH,
                             futures_type: Any = FuturesType.USD_M, interval: int | None = None,
                             **opts: Any) -> StreamSocket:
        """``<symbol>@depth<depth>`` (default 10 levels, python-binance's); ``depth=None`` for the diff
        stream; ``interval`` 0/100/500 ms for the other speeds."""
        market = self.futures_manager(futures_type).market
        return self._futures_socket_of(streams.depth(symbol, depth, interval, market), futures_type, **opts)

    def futures_rpi_depth_socket(self, symbol: str, futures_type: Any = FuturesType.USD_M,
                                 **opts: Any) -> StreamSocket:
        """``<symbol>@rpiDepth@500ms`` (USD-M, depth with RPI orders)."""
        return self._futures_socket_of(f"{symbol.lower()}@rpiDepth@500ms", futures_type, **opts)

    def futures_user_socket(self, queue_size: int = 10_000, decode: UserDecode = "dict") -> UserSocket:
        """USD-M user data over a listen key (``/private`` on the routed market), kept alive and replaced;
        needs a client with an API key. Messages are the bare events, or with ``decode="typed"`` their
        models (:data:`binance_ws.models.UsdmUserEvent`; see :class:`ListenKeyStream`)."""
        return UserSocket(self, FuturesType.USD_M, queue_size, decode)

    futures_socket = futures_user_socket

    def coin_futures_user_socket(self, queue_size: int = 10_000, decode: UserDecode = "dict") -> UserSocket:
        """COIN-M user data over a listen key; the client's ``futures_market`` must be COIN-M's.
        ``decode="typed"``: :data:`binance_ws.models.CoinmUserEvent` models."""
        return UserSocket(self, FuturesType.COIN_M, queue_size, decode)

    coin_futures_socket = coin_futures_user_socket


class UserSocket:
    """A futures user-data socket of the per-socket API: ``async with`` creates the listen key and
    connects; inside, ``await s.recv()`` or ``async for``. Error events (``disconnected``, keep-alive
    failures) arrive in the same queue as the events; when full, the oldest message is dropped."""

    def __init__(self, owner: FuturesSockets, futures_type: FuturesType, queue_size: int,
                 decode: UserDecode = "dict") -> None:
        if decode not in ("dict", "typed"):
            raise ValueError(f"decode must be 'dict' or 'typed', not {decode!r}")
        self._owner = owner
        self._type = futures_type
        self._decode: UserDecode = decode
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self.stream: ListenKeyStream | None = None

    def _put(self, msg: Any) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(msg)

    async def __aenter__(self) -> UserSocket:
        self.stream = await start_futures_user_stream(self._owner, self._type, self._owner.client, self._put,
                                                      decode=self._decode)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.stream is not None:
            await self.stream.stop()

    async def recv(self) -> Any:
        return await self._queue.get()

    def __aiter__(self) -> UserSocket:
        return self

    async def __anext__(self) -> Any:
        return await self._queue.get()


def check_listen_key_client(client: Any, market: Market) -> None:
    """Raise ``ValueError`` unless ``market`` delivers user data over a listen key and ``client``'s
    listen-key calls (its ``futures_market``) reach the same product."""
    if market.product.user_data != "listen-key":
        raise ValueError(
            f"{market.name} delivers user data over {market.product.user_data}, not a listen key")
    own = getattr(client, "futures_market", None)
    if own is not None and own.product.name != market.product.name:
        raise ValueError(f"the client's listen keys come from {own.name}, not {market.product.name}: make it "
                         f"with futures_market={market.product.name.upper()} (or that market's local row)")


async def start_futures_user_stream(owner: FuturesSockets, futures_type: Any, client: Any, callback: Any,
                                    **options: Any) -> ListenKeyStream:
    """Start the listen-key user-data stream of ``futures_type`` for ``client`` (a ``Client`` or
    ``AsyncClient`` with an API key; its ``futures_market`` serves the listenKey calls), on the private
    URL of ``owner``'s futures market (``decode="typed"``: that market's user-data models). Raises
    ``ValueError`` without an API key."""
    client = getattr(client, "async_client", client)
    if client is None or not getattr(client, "api_key", None):
        raise ValueError("a futures user socket needs a client with an API key")
    market = owner.futures_manager(futures_type).market
    check_listen_key_client(client, market)
    stream = ListenKeyStream(client, callback, kind="futures", stream_url=private_stream_url(market),
                             events=market.product.user_events, market=market, **options)
    await stream.start()
    return stream
