"""Typed messages: msgspec Structs for every stream payload (spot, USD-M, COIN-M) and user-data event.

Binance names payload fields with one or two letters (``"p"``, ``"q"``, ``"E"``); the Structs here give
them readable attribute names (``price``, ``quantity``, ``event_time``) and keep the wire keys through
``msgspec.field(name=...)``, so decoding goes straight from the frame's bytes to the object with no
intermediate dict. Key-by-key sources: PROTOCOL.md section 4 (spot streams), 8 (futures) and 6.4 (user
data). Which model a stream kind decodes to is declared per product (``binance_ws.products``): a USD-M
``depthUpdate`` is a :class:`FuturesDepthUpdate` (with ``T`` and ``pu``), a spot one a :class:`DepthUpdate`.

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
callbacks receive; ``decoder_for(<listen key>)`` decodes a legacy user stream's bare event bytes. Futures
user data is one union per product (:data:`UsdmUserEvent`, :data:`CoinmUserEvent`: ``ORDER_TRADE_UPDATE``,
``ACCOUNT_UPDATE``, ``TRADE_LITE`` and the rest), declared as the product's ``userData`` model:
``decoder_for(<listen key>, USDM)``, :func:`futures_user_event`, or ``decode="typed"`` on the futures
user sockets.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeAlias

import msgspec
import orjson
from msgspec import Struct, field

from binance_ws import errors

if TYPE_CHECKING:
    from binance_ws.markets import Market

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


# -- futures streams, USD-M and COIN-M (PROTOCOL 8; the futures pages it cites) ------------------------

class FuturesAggTrade(_Event, frozen=True, gc=False):
    """``<symbol>@aggTrade`` on futures: 100 ms aggregation by price and side, no ``M``; ``nq`` (the
    quantity without RPI trades) on USD-M only, and absent from older recordings."""

    agg_trade_id: int = field(name="a")
    price: str = field(name="p")
    quantity: str = field(name="q")
    first_trade_id: int = field(name="f")
    last_trade_id: int = field(name="l")
    trade_time: int = field(name="T")
    is_buyer_maker: bool = field(name="m")
    normal_quantity: str | None = field(default=None, name="nq")


class MarkPrice(_Event, frozen=True, gc=False):
    """``<symbol>@markPrice[@1s]`` and each element of ``!markPrice@arr`` (USD-M) or ``<pair>@markPrice``
    (COIN-M). ``funding_rate`` is ``""`` and ``next_funding_time`` 0 on COIN-M delivery contracts; ``ap``
    (USD-M) is a second price the docs do not describe."""

    mark_price: str = field(name="p")
    index_price: str = field(name="i")
    estimated_settle_price: str = field(name="P")
    funding_rate: str = field(name="r")
    next_funding_time: int = field(name="T")
    ap: str | None = field(default=None, name="ap")


class IndexPrice(_Message, frozen=True, gc=False):
    """``<pair>@indexPrice[@1s]`` (COIN-M): ``i`` is the pair."""

    event_type: str = field(name="e")
    event_time: int = field(name="E")
    pair: str = field(name="i")
    index_price: str = field(name="p")


class ContinuousKlineBar(_Message, frozen=True, gc=False):
    """The bar of a continuous-contract kline: a kline bar without the symbol (``f``/``L`` are update ids)."""

    start_time: int = field(name="t")
    close_time: int = field(name="T")
    interval: str = field(name="i")
    first_update_id: int = field(name="f")
    last_update_id: int = field(name="L")
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


class ContinuousKline(_Message, frozen=True, gc=False):
    """``<pair>_<contractType>@continuousKline_<interval>`` (``e`` is ``continuous_kline``)."""

    event_type: str = field(name="e")
    event_time: int = field(name="E")
    pair: str = field(name="ps")
    contract_type: str = field(name="ct")
    kline: ContinuousKlineBar = field(name="k")


class PairKline(_Message, frozen=True, gc=False):
    """COIN-M ``<pair>@indexPriceKline_<i>`` (``indexPrice_kline``; the bar's symbol is ``"0"``) and
    ``<symbol>@markPriceKline_<i>`` (``markPrice_kline``)."""

    event_type: str = field(name="e")
    event_time: int = field(name="E")
    pair: str = field(name="ps")
    kline: KlineBar = field(name="k")


class FuturesMiniTicker(MiniTicker, frozen=True, gc=False):
    """``<symbol>@miniTicker`` and ``!miniTicker@arr`` elements on futures; COIN-M adds the pair."""

    pair: str | None = field(default=None, name="ps")


class FuturesTicker(_WindowStats, frozen=True, gc=False):
    """``<symbol>@ticker`` and ``!ticker@arr`` elements on futures: the 24 h window and the last
    quantity, no previous close and no best bid or ask; COIN-M adds the pair."""

    last_quantity: str = field(name="Q")
    pair: str | None = field(default=None, name="ps")


class FuturesBookTicker(_Message, frozen=True, gc=False):
    """``<symbol>@bookTicker`` and ``!bookTicker`` on futures: with event and transaction times; COIN-M
    adds the pair. RPI orders are excluded (PROTOCOL 8)."""

    event_type: str = field(name="e")
    update_id: int = field(name="u")
    event_time: int = field(name="E")
    transaction_time: int = field(name="T")
    symbol: str = field(name="s")
    best_bid_price: str = field(name="b")
    best_bid_quantity: str = field(name="B")
    best_ask_price: str = field(name="a")
    best_ask_quantity: str = field(name="A")
    pair: str | None = field(default=None, name="ps")


class FuturesDepthUpdate(_Event, frozen=True, gc=False):
    """Futures diff depth ``<symbol>@depth[@500ms|@100ms]`` and partial depth ``@depth<N>[...]`` alike:
    ``U..u`` with ``pu`` the previous event's ``u`` (PROTOCOL 5.2, 8); COIN-M adds the pair."""

    transaction_time: int = field(name="T")
    first_update_id: int = field(name="U")
    final_update_id: int = field(name="u")
    prev_final_update_id: int = field(name="pu")
    bids: list[PriceLevel] = field(name="b")
    asks: list[PriceLevel] = field(name="a")
    pair: str | None = field(default=None, name="ps")


class LiquidationOrder(_Message, frozen=True, gc=False):
    """The order inside a ``forceOrder`` event."""

    symbol: str = field(name="s")
    side: str = field(name="S")
    order_type: str = field(name="o")
    time_in_force: str = field(name="f")
    quantity: str = field(name="q")
    price: str = field(name="p")
    average_price: str = field(name="ap")
    order_status: str = field(name="X")
    last_filled_quantity: str = field(name="l")
    filled_accumulated_quantity: str = field(name="z")
    trade_time: int = field(name="T")
    pair: str | None = field(default=None, name="ps")


class ForceOrder(_Message, frozen=True, gc=False):
    """``<symbol>@forceOrder`` and ``!forceOrder@arr`` (one liquidation a message, the largest per symbol
    per second)."""

    event_type: str = field(name="e")
    event_time: int = field(name="E")
    order: LiquidationOrder = field(name="o")


class CompositeIndexComponent(_Message, frozen=True, gc=False):
    base_asset: str = field(name="b")
    quote_asset: str = field(name="q")
    weight_in_quantity: str = field(name="w")
    weight_in_percentage: str = field(name="W")
    index_price: str = field(name="i")


class CompositeIndex(_Event, frozen=True, gc=False):
    """``<symbol>@compositeIndex`` (USD-M, 1000 ms)."""

    price: str = field(name="p")
    components: list[CompositeIndexComponent] = field(name="c")
    component_type: str | None = field(default=None, name="C")


class AssetIndex(_Event, frozen=True, gc=False):
    """``<asset>@assetIndex`` and ``!assetIndex@arr`` elements (USD-M multi-assets mode, 1 s)."""

    index_price: str = field(name="i")
    bid_buffer: str = field(name="b")
    ask_buffer: str = field(name="a")
    bid_rate: str = field(name="B")
    ask_rate: str = field(name="A")
    auto_exchange_bid_buffer: str = field(name="q")
    auto_exchange_ask_buffer: str = field(name="g")
    auto_exchange_bid_rate: str = field(name="Q")
    auto_exchange_ask_rate: str = field(name="G")


class Bracket(_Message, frozen=True, gc=False):
    """One leverage bracket of a ``contractInfo`` event (numbers on the wire, not strings)."""

    bracket: int = field(name="bs")
    notional_floor: float = field(name="bnf")
    notional_cap: float = field(name="bnc")
    maintenance_ratio: float = field(name="mmr")
    cumulative: float = field(name="cf")
    min_leverage: int = field(name="mi")
    max_leverage: int = field(name="ma")


class ContractInfo(_Event, frozen=True, gc=False):
    """``!contractInfo``: a listing, settlement or bracket change; ``bks`` only when brackets changed."""

    pair: str = field(name="ps")
    contract_type: str = field(name="ct")
    delivery_date: int = field(name="dt")
    onboard_date: int = field(name="ot")
    contract_status: str = field(name="cs")
    brackets: list[Bracket] | None = field(default=None, name="bks")


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

# -- futures user data, USD-M and COIN-M (PROTOCOL 8; Binance's user-data pages of each product) --------
# A tagged union on "e" per product (:data:`UsdmUserEvent`, :data:`CoinmUserEvent`), declared as the
# ``userData`` kind's model. Keys the pages mark "only pushed when ..." (commission, trailing stops,
# amendments, funding) default to None; COIN-M's account alias (``i``) and margin asset (``ma``) are None
# on USD-M, USD-M's ``si ss gtd`` None on COIN-M.

class FuturesOrder(_Message, frozen=True, gc=False):
    """The order inside ``ORDER_TRADE_UPDATE`` (``o``). ``bid_notional``/``ask_notional`` are the open
    orders' notional on each side (COIN-M: quantity of base asset); ``commission`` and
    ``commission_asset`` are pushed only when the trade paid one."""

    symbol: str = field(name="s")
    client_order_id: str = field(name="c")
    side: str = field(name="S")
    order_type: str = field(name="o")
    time_in_force: str = field(name="f")
    quantity: str = field(name="q")
    price: str = field(name="p")
    average_price: str = field(name="ap")
    stop_price: str = field(name="sp")
    execution_type: str = field(name="x")
    order_status: str = field(name="X")
    order_id: int = field(name="i")
    last_filled_quantity: str = field(name="l")
    filled_accumulated_quantity: str = field(name="z")
    last_filled_price: str = field(name="L")
    trade_time: int = field(name="T")
    trade_id: int = field(name="t")
    bid_notional: str = field(name="b")
    ask_notional: str = field(name="a")
    is_maker: bool = field(name="m")
    is_reduce_only: bool = field(name="R")
    working_type: str = field(name="wt")
    original_order_type: str = field(name="ot")
    position_side: str = field(name="ps")
    is_close_all: bool = field(name="cp")
    realized_profit: str = field(name="rp")
    price_protect: bool = field(name="pP")
    self_trade_prevention_mode: str = field(name="V")
    price_match: str = field(name="pm")
    expiry_reason: str | None = field(default=None, name="er")
    margin_asset: str | None = field(default=None, name="ma")  # COIN-M
    commission_asset: str | None = field(default=None, name="N")
    commission: str | None = field(default=None, name="n")
    activation_price: str | None = field(default=None, name="AP")  # trailing stops
    callback_rate: str | None = field(default=None, name="cr")  # trailing stops
    modify_id: str | None = field(default=None, name="M")  # amendments with a modifyId
    strategy_id: int | None = field(default=None, name="si")  # USD-M, "ignore"
    strategy_status: int | None = field(default=None, name="ss")  # USD-M, "ignore"
    good_till_date: int | None = field(default=None, name="gtd")  # USD-M


class OrderTradeUpdate(_UserEvent, frozen=True, gc=False, tag="ORDER_TRADE_UPDATE"):
    """``ORDER_TRADE_UPDATE``: every order state change (NEW, TRADE, CANCELED, EXPIRED, AMENDMENT,
    CALCULATED); ``account_alias`` on COIN-M only."""

    event_time: int = field(name="E")
    transaction_time: int = field(name="T")
    order: FuturesOrder = field(name="o")
    account_alias: str | None = field(default=None, name="i")


class TradeLite(_UserEvent, frozen=True, gc=False, tag="TRADE_LITE"):
    """``TRADE_LITE`` (USD-M, since 2024-09-03): a fill, sooner and with fewer keys than
    ``ORDER_TRADE_UPDATE``."""

    event_time: int = field(name="E")
    transaction_time: int = field(name="T")
    symbol: str = field(name="s")
    quantity: str = field(name="q")
    price: str = field(name="p")
    is_maker: bool = field(name="m")
    client_order_id: str = field(name="c")
    side: str = field(name="S")
    last_filled_price: str = field(name="L")
    last_filled_quantity: str = field(name="l")
    trade_id: int = field(name="t")
    order_id: int = field(name="i")


class FuturesBalance(_Message, frozen=True, gc=False):
    """One asset of an ``ACCOUNT_UPDATE`` (``B``); ``balance_change`` excludes profit and commission."""

    asset: str = field(name="a")
    wallet_balance: str = field(name="wb")
    cross_wallet_balance: str = field(name="cw")
    balance_change: str = field(name="bc")


class FuturesPosition(_Message, frozen=True, gc=False):
    """One position of an ``ACCOUNT_UPDATE`` (``P``)."""

    symbol: str = field(name="s")
    position_amount: str = field(name="pa")
    entry_price: str = field(name="ep")
    breakeven_price: str = field(name="bep")
    accumulated_realized: str = field(name="cr")
    unrealized_pnl: str = field(name="up")
    margin_type: str = field(name="mt")
    isolated_wallet: str = field(name="iw")
    position_side: str = field(name="ps")


class AccountUpdateData(_Message, frozen=True, gc=False):
    """The ``a`` of an ``ACCOUNT_UPDATE``: the reason (``ORDER``, ``DEPOSIT``, ``FUNDING_FEE``, ...), the
    changed balances and positions (None when ``P`` is absent: a crossed position's funding fee);
    ``funding_symbol`` only with ``FUNDING_FEE``."""

    reason: str = field(name="m")
    balances: list[FuturesBalance] = field(name="B")
    positions: list[FuturesPosition] | None = field(default=None, name="P")
    funding_symbol: str | None = field(default=None, name="S")


class AccountUpdate(_UserEvent, frozen=True, gc=False, tag="ACCOUNT_UPDATE"):
    """``ACCOUNT_UPDATE``: balances or positions changed; ``account_alias`` on COIN-M only."""

    event_time: int = field(name="E")
    transaction_time: int = field(name="T")
    data: AccountUpdateData = field(name="a")
    account_alias: str | None = field(default=None, name="i")


class MarginCallPosition(_Message, frozen=True, gc=False):
    """One position of a ``MARGIN_CALL`` (``p``)."""

    symbol: str = field(name="s")
    position_side: str = field(name="ps")
    position_amount: str = field(name="pa")
    margin_type: str = field(name="mt")
    isolated_wallet: str = field(name="iw")
    mark_price: str = field(name="mp")
    unrealized_pnl: str = field(name="up")
    maintenance_margin: str = field(name="mm")


class MarginCall(_UserEvent, frozen=True, gc=False, tag="MARGIN_CALL"):
    """``MARGIN_CALL``: positions at risk; ``cross_wallet_balance`` only with a crossed position."""

    event_time: int = field(name="E")
    positions: list[MarginCallPosition] = field(name="p")
    cross_wallet_balance: str | None = field(default=None, name="cw")
    account_alias: str | None = field(default=None, name="i")


class LeverageConfig(_Message, frozen=True, gc=False):
    """``ac`` of ``ACCOUNT_CONFIG_UPDATE``: a symbol's new leverage."""

    symbol: str = field(name="s")
    leverage: int = field(name="l")


class MultiAssetsConfig(_Message, frozen=True, gc=False):
    """``ai`` of ``ACCOUNT_CONFIG_UPDATE`` (USD-M): multi-assets mode switched."""

    multi_assets_mode: bool = field(name="j")


class AccountConfigUpdate(_UserEvent, frozen=True, gc=False, tag="ACCOUNT_CONFIG_UPDATE"):
    """``ACCOUNT_CONFIG_UPDATE``: a leverage change (``leverage``) or, on USD-M, a multi-assets mode
    change (``multi_assets``); one of the two is set."""

    event_time: int = field(name="E")
    transaction_time: int = field(name="T")
    leverage: LeverageConfig | None = field(default=None, name="ac")
    multi_assets: MultiAssetsConfig | None = field(default=None, name="ai")


class StrategyInfo(_Message, frozen=True, gc=False):
    """``su`` of ``STRATEGY_UPDATE``: ``op_code`` says what happened (Binance's page lists the codes)."""

    strategy_id: int = field(name="si")
    strategy_type: str = field(name="st")
    strategy_status: str = field(name="ss")
    symbol: str = field(name="s")
    update_time: int = field(name="ut")
    op_code: int = field(name="c")


class StrategyUpdate(_UserEvent, frozen=True, gc=False, tag="STRATEGY_UPDATE"):
    """``STRATEGY_UPDATE``: a trading strategy (grid) was created, changed or ended."""

    event_time: int = field(name="E")
    transaction_time: int = field(name="T")
    strategy: StrategyInfo = field(name="su")


class GridInfo(_Message, frozen=True, gc=False):
    """``gu`` of ``GRID_UPDATE``."""

    strategy_id: int = field(name="si")
    strategy_type: str = field(name="st")
    strategy_status: str = field(name="ss")
    symbol: str = field(name="s")
    realized_pnl: str = field(name="r")
    unmatched_average_price: str = field(name="up")
    unmatched_quantity: str = field(name="uq")
    unmatched_fee: str = field(name="uf")
    matched_pnl: str = field(name="mp")
    update_time: int = field(name="ut")


class GridUpdate(_UserEvent, frozen=True, gc=False, tag="GRID_UPDATE"):
    """``GRID_UPDATE``: a grid strategy's fills changed."""

    event_time: int = field(name="E")
    transaction_time: int = field(name="T")
    grid: GridInfo = field(name="gu")


class RejectedTrigger(_Message, frozen=True, gc=False):
    """``or`` of ``CONDITIONAL_ORDER_TRIGGER_REJECT``."""

    symbol: str = field(name="s")
    order_id: int = field(name="i")
    reject_reason: str = field(name="r")


class ConditionalOrderTriggerReject(_UserEvent, frozen=True, gc=False,
                                    tag="CONDITIONAL_ORDER_TRIGGER_REJECT"):
    """``CONDITIONAL_ORDER_TRIGGER_REJECT`` (USD-M): a triggered TP/SL order was rejected."""

    event_time: int = field(name="E")
    transaction_time: int = field(name="T")
    order: RejectedTrigger = field(name="or")


class AlgoOrder(_Message, frozen=True, gc=False):
    """``o`` of ``ALGO_UPDATE``; the matching-engine keys (``ai ap aq act``) only once triggered."""

    client_algo_id: str = field(name="caid")
    algo_id: int = field(name="aid")
    algo_type: str = field(name="at")
    order_type: str = field(name="o")
    symbol: str = field(name="s")
    side: str = field(name="S")
    position_side: str = field(name="ps")
    time_in_force: str = field(name="f")
    quantity: str = field(name="q")
    algo_status: str = field(name="X")
    trigger_price: str = field(name="tp")
    price: str = field(name="p")
    self_trade_prevention_mode: str = field(name="V")
    working_type: str = field(name="wt")
    price_match: str = field(name="pm")
    is_close_all: bool = field(name="cp")
    price_protect: bool = field(name="pP")
    is_reduce_only: bool = field(name="R")
    trigger_time: int = field(name="tt")
    good_till_date: int = field(name="gtd")
    order_id: str | None = field(default=None, name="ai")
    average_price: str | None = field(default=None, name="ap")
    executed_quantity: str | None = field(default=None, name="aq")
    actual_order_type: str | None = field(default=None, name="act")
    failure_reason: str | None = field(default=None, name="rm")
    is_activated: bool | None = field(default=None, name="ia")


class AlgoUpdate(_UserEvent, frozen=True, gc=False, tag="ALGO_UPDATE"):
    """``ALGO_UPDATE`` (USD-M): an algo (conditional) order changed."""

    event_time: int = field(name="E")
    transaction_time: int = field(name="T")
    order: AlgoOrder = field(name="o")


class FuturesListenKeyExpired(_UserEvent, frozen=True, gc=False, tag="listenKeyExpired"):
    """``listenKeyExpired`` on a futures key. ``event_time`` is always an int once decoded: Binance's
    current USD-M page shows ``E`` as a string (``"1736996475556"``), older copies and COIN-M as a
    number; ``listenKey`` is absent from the older copies."""

    event_time: int | str = field(name="E")
    listen_key: str | None = field(default=None, name="listenKey")

    def __post_init__(self) -> None:
        if isinstance(self.event_time, str):
            try:
                msgspec.structs.force_setattr(self, "event_time", int(self.event_time))
            except ValueError:
                raise ValueError(f"E must be a time in ms, not {self.event_time!r}") from None

    def __repr__(self) -> str:
        # A listen key is a credential: never shown.
        return f"FuturesListenKeyExpired(event_time={self.event_time}, listen_key='***')"


#: Any USD-M user-data event (the ``userData`` model of ``binance_ws.products.usdm``).
UsdmUserEvent: TypeAlias = (OrderTradeUpdate | TradeLite | AccountUpdate | MarginCall | AccountConfigUpdate
                            | StrategyUpdate | GridUpdate | ConditionalOrderTriggerReject | AlgoUpdate
                            | FuturesListenKeyExpired)
#: Any COIN-M user-data event: no TRADE_LITE, ALGO_UPDATE or CONDITIONAL_ORDER_TRIGGER_REJECT.
CoinmUserEvent: TypeAlias = (OrderTradeUpdate | AccountUpdate | MarginCall | AccountConfigUpdate
                             | StrategyUpdate | GridUpdate | FuturesListenKeyExpired)

# -- decoders --------------------------------------------------------------------------------------

def _model_name(model: Any) -> str:
    return _UNION_NAMES.get(model) or getattr(model, "__name__", None) or str(model)


#: The unions' own names (a union type has no ``__name__``), for error messages.
_UNION_NAMES: Final[dict[Any, str]] = {UserEvent: "UserEvent", UsdmUserEvent: "UsdmUserEvent",
                                       CoinmUserEvent: "CoinmUserEvent"}


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
def _decoder(model: Any) -> Callable[[bytes], Any]:
    """The decode function for a payload model: one msgspec Decoder per model for the whole process."""
    decode = msgspec.json.Decoder(model).decode
    name = _model_name(model)
    decode_error = msgspec.DecodeError

    def decode_payload(data: bytes) -> Any:
        try:
            return decode(data)
        except decode_error as exc:
            raise MalformedPayloadError(name, str(exc)) from None

    decode_payload.__qualname__ = decode_payload.__name__ = f"decode_{name}"
    envelope = msgspec.defstruct(f"Combined_{name}", [("stream", str), ("data", model)], frozen=True,
                                 gc=False)
    _CODECS[decode_payload] = Codec(decode, msgspec.json.Decoder(envelope).decode, name)
    return decode_payload


def decoder_for(stream: str, market: Market | None = None) -> Callable[[bytes], Any]:
    """The typed decoder for ``stream``'s payloads on ``market`` (spot when None): pass it as
    ``subscribe(..., decode=...)``.

    It takes a payload's bytes and returns the model the market's product declares for the stream's
    kind (e.g. :class:`Trade` for ``"btcusdt@trade"``; a list of :class:`MiniTicker` for
    ``"!miniTicker@arr"``; :class:`FuturesDepthUpdate` for a USD-M ``"btcusdt@depth"``; a
    :data:`UserEvent` for a spot listen key). The same function object is returned for every stream of
    one model, so subscribers of one stream share a single decode per frame. Raises
    :class:`~binance_ws.errors.InvalidStreamError` for a name ``market`` does not serve or a kind with
    no model (futures user data); the decoder raises :class:`MalformedPayloadError`.
    """
    from binance_ws import streams  # streams -> markets -> products -> models: import when called
    from binance_ws.markets import SPOT

    market = market or SPOT
    info = streams.parse_stream(stream, market)
    kind = market.product.kind(info.kind)
    if kind is None or kind.model is None:
        typed = ", ".join(k for k, v in market.product.kinds.items() if v.model is not None)
        raise errors.InvalidStreamError(
            f"no typed model for {info.kind!r} streams ({stream!r}) on {market.name}; use decode='dict'. "
            f"Typed kinds: {typed}")
    return _decoder(kind.model)


_to_user_event: Final = functools.partial(msgspec.convert, type=UserEvent)


def user_event(event: dict[str, Any]) -> UserEvent:
    """Convert one event dict as the user-data callbacks receive it (the inner ``event``) to its
    model. Raises :class:`MalformedPayloadError` for an unknown ``e`` or a key of the wrong type."""
    try:
        result: UserEvent = _to_user_event(event)
    except msgspec.ValidationError as exc:
        raise MalformedPayloadError("UserEvent", str(exc)) from None
    return result


def user_event_model(market: Market | None = None) -> Any:
    """The user-data union ``market``'s product declares (spot when None): :data:`UserEvent`,
    :data:`UsdmUserEvent` or :data:`CoinmUserEvent`."""
    from binance_ws.markets import SPOT

    kind = (market or SPOT).product.kind("userData")
    if kind is None or kind.model is None:
        raise errors.InvalidStreamError(f"{(market or SPOT).name} declares no user-data model")
    return kind.model


@functools.cache
def user_converter(model: Any) -> tuple[frozenset[str], Callable[[dict[str, Any]], Any]]:
    """The event types (tags) of a user-data union and a function converting one event dict to it."""
    tags = frozenset(str(t.__struct_config__.tag) for t in typing.get_args(model))
    return tags, functools.partial(msgspec.convert, type=model)


def user_event_types(model: Any) -> frozenset[str]:
    """The ``e`` values a user-data union models (the others are events Binance added since)."""
    return user_converter(model)[0]


def futures_user_event(event: dict[str, Any], market: Market | None = None) -> Any:
    """Convert one futures user-data event dict (as a futures user socket delivers it with
    ``decode="dict"``) to the model ``market``'s product declares (USD-M when None). Raises
    :class:`MalformedPayloadError` for an event type the product does not model or a key of the wrong
    type."""
    from binance_ws.markets import USDM

    model = user_event_model(market or USDM)
    try:
        return user_converter(model)[1](event)
    except msgspec.ValidationError as exc:
        raise MalformedPayloadError(_model_name(model), str(exc)) from None
