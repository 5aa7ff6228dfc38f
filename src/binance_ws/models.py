"""Typed messages: msgspec Structs for every spot stream payload and user-data event.

Binance names payload fields with one or two letters (``"p"``, ``"q"``, ``"E"``); the Structs here give
them readable attribute names (``price``, ``quantity``, ``event_time``) and keep the wire keys through
``msgspec.field(name=...)``, so decoding goes straight from the frame's bytes to the object with no
intermediate dict. Key-by-key sources: PROTOCOL.md section 4 (streams) and 6.4 (user data).

Prices, quantities, volumes and percentages stay ``str``, exactly as Binance sends them
(``"61837.63000000"``): a float would round (0.1 + 0.2 != 0.3) and lose the trailing precision that
tells a symbol's tick size, and a ``Decimal`` costs several times a str to build on the hot path.
Convert with ``Decimal(trade.price)`` where exact arithmetic is needed. Ids, counts and times are
``int``; flags ``bool``. Keys Binance documents as "ignore" (trade ``M``, kline ``B``) are not kept;
unknown keys (fields Binance adds later) are skipped, so a new field never breaks decoding.

Use with the socket manager (the decoder runs once per frame, whatever the number of subscribers)::

    from binance_ws.models import decoder_for
    await sm.subscribe("btcusdt@trade", on_trade, decode=decoder_for("btcusdt@trade"))

``on_trade`` then receives :class:`Trade` objects (``t.price``, ``t.trade_id``). Error events (gaps,
reconnects) still arrive as the documented dicts of :mod:`binance_ws.errors`. A payload that does not
match its model raises :class:`MalformedPayloadError` inside the decoder; the connection skips that one
frame, the subscriber receives the documented ``{'e': 'error', 'type': 'malformed', ...}`` event, and the
stream goes on.

User-data events arrive on one stream in several kinds, so they form a tagged union on ``"e"``
(:data:`UserEvent`); the class tells the kind. :func:`user_event` converts the dicts the user-data
callbacks receive; ``decoder_for(<listen key>)`` decodes a legacy user stream's bare event bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, NamedTuple, TypeAlias

import msgspec
import orjson
from msgspec import Struct, field

from binance_ws import errors, streams
from binance_ws.markets import SPOT, Market

#: One order-book level: ``[price, quantity]`` strings (PROTOCOL 4.11, 4.12).
PriceLevel: TypeAlias = tuple[str, str]


class MalformedPayloadError(errors.BinanceWSError, orjson.JSONDecodeError):
    """A payload is not valid JSON or does not match its model (a missing key, a wrong type).

    It is an :class:`orjson.JSONDecodeError`, the error the connection already treats as "skip this
    frame, keep the stream": a typed subscriber sees the same behaviour for a broken payload as a dict
    subscriber does. The message names the model and msgspec's reason (e.g. "Expected `int`, got
    `str` - at `$.t`"); it never quotes the payload.
    """

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"{model} payload rejected: {reason}", "", 0)
        self.model = model
        self.reason = reason

    def __str__(self) -> str:
        # JSONDecodeError would append a line/column of the (empty) document, which means nothing here.
        return str(self.msg)


# Every Struct: gc=False because a decoded message holds only str/int/bool/lists of those (no cycles),
# which makes allocation cheaper; frozen because a delivered message may be shared by subscribers;
# omit_defaults so that encoding gives back the wire payload (absent conditional keys stay absent).
class _Message(Struct, frozen=True, gc=False, omit_defaults=True):
    pass


class _Event(_Message, frozen=True, gc=False):
    """The header every market event carries (PROTOCOL 4): type ``e``, event time ``E``, symbol ``s``."""

    event_type: str = field(name="e")
    event_time: int = field(name="E")
    symbol: str = field(name="s")


# -- market streams (PROTOCOL 4) ---------------------------------------------------------------------

class _TradeFields(_Event, frozen=True, gc=False):
    """What a trade and a block trade both carry (PROTOCOL 4.2, 4.3)."""

    trade_id: int = field(name="t")
    price: str = field(name="p")
    quantity: str = field(name="q")
    trade_time: int = field(name="T")
    is_buyer_maker: bool = field(name="m")


class Trade(_TradeFields, frozen=True, gc=False):
    """``<symbol>@trade`` (PROTOCOL 4.2)."""


class AggTrade(_Event, frozen=True, gc=False):
    """``<symbol>@aggTrade`` (PROTOCOL 4.1): one taker order filled at one price."""

    agg_trade_id: int = field(name="a")
    price: str = field(name="p")
    quantity: str = field(name="q")
    first_trade_id: int = field(name="f")
    last_trade_id: int = field(name="l")
    trade_time: int = field(name="T")
    is_buyer_maker: bool = field(name="m")


class BlockTrade(_TradeFields, frozen=True, gc=False):
    """``<symbol>@blockTrade`` (PROTOCOL 4.3)."""


class ReferencePrice(_Message, frozen=True, gc=False):
    """``<symbol>@referencePrice`` (PROTOCOL 4.4); ``reference_price`` is None when there is none."""

    event_type: str = field(name="e")
    symbol: str = field(name="s")
    reference_price: str | None = field(name="r")
    time: int = field(name="t")


class KlineBar(_Message, frozen=True, gc=False):
    """The bar inside a kline event (``k``, PROTOCOL 4.5)."""

    start_time: int = field(name="t")
    close_time: int = field(name="T")
    symbol: str = field(name="s")
    interval: str = field(name="i")
    first_trade_id: int = field(name="f")
    last_trade_id: int = field(name="L")
    open: str = field(name="o")
    close: str = field(name="c")
    high: str = field(name="h")
    low: str = field(name="l")
    base_volume: str = field(name="v")
    trade_count: int = field(name="n")
    is_closed: bool = field(name="x")
    quote_volume: str = field(name="q")
    taker_buy_base_volume: str = field(name="V")
    taker_buy_quote_volume: str = field(name="Q")


class Kline(_Event, frozen=True, gc=False):
    """``<symbol>@kline_<interval>`` and its ``@+08:00`` form (PROTOCOL 4.5)."""

    kline: KlineBar = field(name="k")


class MiniTicker(_Event, frozen=True, gc=False):
    """``<symbol>@miniTicker`` and each element of ``!miniTicker@arr`` (PROTOCOL 4.6)."""

    close_price: str = field(name="c")
    open_price: str = field(name="o")
    high_price: str = field(name="h")
    low_price: str = field(name="l")
    base_volume: str = field(name="v")
    quote_volume: str = field(name="q")


class _WindowStats(_Event, frozen=True, gc=False):
    """The statistics of a rolling window, common to the 24 h and the 1h/4h/1d tickers (PROTOCOL 4.7,
    4.8)."""

    price_change: str = field(name="p")
    price_change_percent: str = field(name="P")
    open_price: str = field(name="o")
    high_price: str = field(name="h")
    low_price: str = field(name="l")
    last_price: str = field(name="c")
    weighted_avg_price: str = field(name="w")
    base_volume: str = field(name="v")
    quote_volume: str = field(name="q")
    open_time: int = field(name="O")
    close_time: int = field(name="C")
    first_trade_id: int = field(name="F")
    last_trade_id: int = field(name="L")
    trade_count: int = field(name="n")


class Ticker(_WindowStats, frozen=True, gc=False):
    """``<symbol>@ticker``, 24 h rolling statistics (PROTOCOL 4.7), with the last trade and the best
    bid and ask."""

    prev_close_price: str = field(name="x")
    last_quantity: str = field(name="Q")
    best_bid_price: str = field(name="b")
    best_bid_quantity: str = field(name="B")
    best_ask_price: str = field(name="a")
    best_ask_quantity: str = field(name="A")


class RollingTicker(_WindowStats, frozen=True, gc=False):
    """``<symbol>@ticker_<1h|4h|1d>`` and each element of ``!ticker_<w>@arr`` (PROTOCOL 4.8);
    ``event_type`` is ``1hTicker``, ``4hTicker`` or ``1dTicker``."""


class BookTicker(_Message, frozen=True, gc=False):
    """``<symbol>@bookTicker`` (PROTOCOL 4.9): no event type or time on spot; ``update_id`` shares the
    diff-depth update-id sequence."""

    update_id: int = field(name="u")
    symbol: str = field(name="s")
    best_bid_price: str = field(name="b")
    best_bid_quantity: str = field(name="B")
    best_ask_price: str = field(name="a")
    best_ask_quantity: str = field(name="A")


class AvgPrice(_Event, frozen=True, gc=False):
    """``<symbol>@avgPrice`` (PROTOCOL 4.10)."""

    interval: str = field(name="i")
    average_price: str = field(name="w")
    last_trade_time: int = field(name="T")


class PartialDepth(_Message, frozen=True, gc=False):
    """``<symbol>@depth<5|10|20>[@100ms]`` (PROTOCOL 4.11): a top-N snapshot, best level first."""

    last_update_id: int = field(name="lastUpdateId")
    bids: list[PriceLevel]
    asks: list[PriceLevel]


class DepthUpdate(_Event, frozen=True, gc=False):
    """``<symbol>@depth[@100ms]`` (PROTOCOL 4.12): absolute quantities, ``"0"`` deletes a level.
    ``prev_final_update_id`` (``pu``) is set on futures only (PROTOCOL 8)."""

    first_update_id: int = field(name="U")
    final_update_id: int = field(name="u")
    bids: list[PriceLevel] = field(name="b")
    asks: list[PriceLevel] = field(name="a")
    prev_final_update_id: int | None = field(default=None, name="pu")


# -- user data (PROTOCOL 6.4): a tagged union on "e" -------------------------------------------------

class _UserEvent(Struct, frozen=True, gc=False, omit_defaults=True, tag_field="e"):
    pass


class ExecutionReport(_UserEvent, frozen=True, gc=False, tag="executionReport"):
    """``executionReport``: every order state change. Keys Binance sends only in some cases (trailing,
    strategy, self-trade prevention, allocations, SOR, expiry) default to None; the pegged-order keys
    (``gP``, ``gOT``, ``gOV``, ``gp``) are not modelled (their types are undocumented) and are skipped."""

    event_time: int = field(name="E")
    symbol: str = field(name="s")
    client_order_id: str = field(name="c")
    side: str = field(name="S")
    order_type: str = field(name="o")
    time_in_force: str = field(name="f")
    quantity: str = field(name="q")
    price: str = field(name="p")
    stop_price: str = field(name="P")
    iceberg_quantity: str = field(name="F")
    order_list_id: int = field(name="g")
    original_client_order_id: str = field(name="C")
    execution_type: str = field(name="x")
    order_status: str = field(name="X")
    reject_reason: str = field(name="r")
    order_id: int = field(name="i")
    last_executed_quantity: str = field(name="l")
    cumulative_filled_quantity: str = field(name="z")
    last_executed_price: str = field(name="L")
    commission: str = field(name="n")
    commission_asset: str | None = field(name="N")
    transaction_time: int = field(name="T")
    trade_id: int = field(name="t")
    execution_id: int = field(name="I")
    is_working: bool = field(name="w")
    is_maker: bool = field(name="m")
    creation_time: int = field(name="O")
    cumulative_quote_quantity: str = field(name="Z")
    last_quote_quantity: str = field(name="Y")
    quote_order_quantity: str = field(name="Q")
    self_trade_prevention_mode: str = field(name="V")
    working_time: int | None = field(default=None, name="W")
    prevented_match_id: int | None = field(default=None, name="v")
    trailing_delta: int | None = field(default=None, name="d")
    trailing_time: int | None = field(default=None, name="D")
    strategy_id: int | None = field(default=None, name="j")
    strategy_type: int | None = field(default=None, name="J")
    prevented_quantity: str | None = field(default=None, name="A")
    last_prevented_quantity: str | None = field(default=None, name="B")
    trade_group_id: int | None = field(default=None, name="u")
    counter_order_id: int | None = field(default=None, name="U")
    counter_symbol: str | None = field(default=None, name="Cs")
    prevented_execution_quantity: str | None = field(default=None, name="pl")
    prevented_execution_price: str | None = field(default=None, name="pL")
    prevented_execution_quote_quantity: str | None = field(default=None, name="pY")
    match_type: str | None = field(default=None, name="b")
    allocation_id: int | None = field(default=None, name="a")
    working_floor: str | None = field(default=None, name="k")
    used_sor: bool | None = field(default=None, name="uS")
    expiry_reason: str | None = field(default=None, name="eR")


class Balance(_Message, frozen=True, gc=False):
    """One asset in :class:`OutboundAccountPosition`."""

    asset: str = field(name="a")
    free: str = field(name="f")
    locked: str = field(name="l")


class OutboundAccountPosition(_UserEvent, frozen=True, gc=False, tag="outboundAccountPosition"):
    """``outboundAccountPosition``: the assets whose balances may have changed."""

    event_time: int = field(name="E")
    last_update_time: int = field(name="u")
    balances: list[Balance] = field(name="B")


class BalanceUpdate(_UserEvent, frozen=True, gc=False, tag="balanceUpdate"):
    """``balanceUpdate``: a deposit, withdrawal or transfer (``delta`` is signed)."""

    event_time: int = field(name="E")
    asset: str = field(name="a")
    delta: str = field(name="d")
    clear_time: int = field(name="T")


class ListStatusOrder(_Message, frozen=True, gc=False):
    """One order of an order list in :class:`ListStatus`."""

    symbol: str = field(name="s")
    order_id: int = field(name="i")
    client_order_id: str = field(name="c")


class ListStatus(_UserEvent, frozen=True, gc=False, tag="listStatus"):
    """``listStatus``: sent besides ``executionReport`` for orders of an order list (OCO, OTO)."""

    event_time: int = field(name="E")
    symbol: str = field(name="s")
    order_list_id: int = field(name="g")
    contingency_type: str = field(name="c")
    list_status_type: str = field(name="l")
    list_order_status: str = field(name="L")
    list_reject_reason: str = field(name="r")
    list_client_order_id: str = field(name="C")
    transaction_time: int = field(name="T")
    orders: list[ListStatusOrder] = field(name="O")


class ExternalLockUpdate(_UserEvent, frozen=True, gc=False, tag="externalLockUpdate"):
    """``externalLockUpdate``: part of a balance locked or unlocked by another system."""

    event_time: int = field(name="E")
    asset: str = field(name="a")
    delta: str = field(name="d")
    clear_time: int = field(name="T")


class EventStreamTerminated(_UserEvent, frozen=True, gc=False, tag="eventStreamTerminated"):
    """``eventStreamTerminated``: a WebSocket API user-data subscription ended."""

    event_time: int = field(name="E")


class ListenKeyExpired(_UserEvent, frozen=True, gc=False, tag="listenKeyExpired"):
    """``listenKeyExpired``: the legacy listen-key stream's key lapsed (PROTOCOL 6.2)."""

    event_time: int = field(name="E")
    listen_key: str = field(name="listenKey")

    def __repr__(self) -> str:
        # A listen key is a credential: never shown.
        return f"ListenKeyExpired(event_time={self.event_time}, listen_key='***')"


#: Any user-data event; ``type(event)`` tells the kind.
UserEvent: TypeAlias = (ExecutionReport | OutboundAccountPosition | BalanceUpdate | ListStatus
                        | ExternalLockUpdate | EventStreamTerminated | ListenKeyExpired)

# -- decoders --------------------------------------------------------------------------------------

#: The model of each stream kind (``StreamInfo.kind`` of :func:`binance_ws.streams.parse_stream`).
MODELS: Final[dict[str, Any]] = {
    "trade": Trade,
    "aggTrade": AggTrade,
    "blockTrade": BlockTrade,
    "referencePrice": ReferencePrice,
    "kline": Kline,
    "miniTicker": MiniTicker,
    "miniTickerArr": list[MiniTicker],
    "ticker": Ticker,
    "rollingTicker": RollingTicker,
    "rollingTickerArr": list[RollingTicker],
    "bookTicker": BookTicker,
    "avgPrice": AvgPrice,
    "depthN": PartialDepth,
    "depth": DepthUpdate,
    "userData": UserEvent,
}


def _model_name(model: Any) -> str:
    return getattr(model, "__name__", None) or str(model)


class Codec(NamedTuple):
    """What the engine's hot path uses of a decoder from :func:`decoder_for`, besides calling it.

    ``direct`` decodes a payload like the decoder but raises msgspec's ``DecodeError`` (one Python call
    fewer a frame; :meth:`malformed` gives the decoder's own error). ``envelope`` decodes a whole
    combined frame, ``{"stream": ..., "data": <payload>}``, into a Struct with ``stream`` and ``data``:
    a connection whose streams all want this model decodes each frame once and routes by ``stream``
    instead of splitting the bytes first. There is one envelope function per kind, so connections
    compare them by identity.
    """

    direct: Callable[[bytes], Any]
    envelope: Callable[[bytes], Any]
    model: str

    def malformed(self, exc: Exception) -> MalformedPayloadError:
        return MalformedPayloadError(self.model, str(exc))


_CODECS: Final[dict[Callable[[bytes], Any], Codec]] = {}


def codec_of(decoder: Callable[[bytes], Any]) -> Codec | None:
    """The :class:`Codec` of a decoder :func:`decoder_for` returned; None for any other callable."""
    return _CODECS.get(decoder)


@functools.cache
def _decoder(kind: str) -> Callable[[bytes], Any]:
    """The decode function for a stream kind: one msgspec Decoder per kind for the whole process."""
    model = MODELS[kind]
    decode = msgspec.json.Decoder(model).decode
    name = _model_name(model)
    decode_error = msgspec.DecodeError

    def decode_payload(data: bytes) -> Any:
        try:
            return decode(data)
        except decode_error as exc:
            raise MalformedPayloadError(name, str(exc)) from None

    decode_payload.__qualname__ = decode_payload.__name__ = f"decode_{kind}"
    envelope = msgspec.defstruct(f"Combined_{kind}", [("stream", str), ("data", model)], frozen=True,
                                 gc=False)
    _CODECS[decode_payload] = Codec(decode, msgspec.json.Decoder(envelope).decode, name)
    return decode_payload


def decoder_for(stream: str, market: Market = SPOT) -> Callable[[bytes], Any]:
    """The typed decoder for ``stream``'s payloads: pass it as ``subscribe(..., decode=...)``.

    It takes a payload's bytes and returns the stream's model (e.g. :class:`Trade` for
    ``"btcusdt@trade"``; a list of :class:`MiniTicker` for ``"!miniTicker@arr"``; a :data:`UserEvent`
    for a listen key). The same function object is returned for every stream of one kind, so
    subscribers of one stream share a single decode per frame. Raises
    :class:`~binance_ws.errors.InvalidStreamError` for a name ``market`` does not serve or a kind with
    no model (futures-only streams); the decoder raises :class:`MalformedPayloadError`.
    """
    info = streams.parse_stream(stream, market)
    if info.kind not in MODELS:
        raise errors.InvalidStreamError(
            f"no typed model for {info.kind!r} streams ({stream!r}); use decode='dict'. Typed kinds: "
            f"{', '.join(MODELS)}")
    return _decoder(info.kind)


_to_user_event: Final = functools.partial(msgspec.convert, type=UserEvent)


def user_event(event: dict[str, Any]) -> UserEvent:
    """Convert one event dict as the user-data callbacks receive it (the inner ``event``) to its
    model. Raises :class:`MalformedPayloadError` for an unknown ``e`` or a key of the wrong type."""
    try:
        result: UserEvent = _to_user_event(event)
    except msgspec.ValidationError as exc:
        raise MalformedPayloadError("UserEvent", str(exc)) from None
    return result
