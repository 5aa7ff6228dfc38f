"""Futures accounts of the simulator: each account's futures wallet and positions on one product (USD-M or
COIN-M), its orders on the shared matching engine, and the futures user-data events they cause.

``FuturesAccounts(clock, exchange, accounts, market)``. Keys, authentication and listen keys are the
spot :class:`~binance_ws.sim.accounts.Accounts`' (one Binance account, one API key); what a futures listen
key carries is this module's events, sent on the account's ``market.name`` channel:

* ``ORDER_TRADE_UPDATE`` for every order state change (NEW, TRADE, CANCELED, EXPIRED), with the ``o``
  key set of Binance's page for the product (USD-M adds ``si ss gtd``, COIN-M adds ``ma`` and the
  account alias ``i``). The simulator charges no commission, so ``N``/``n`` are not pushed, as Binance
  does for a trade without commission; ``M`` (amendments), ``AP`` and ``cr`` (trailing stops) never
  apply.
* ``TRADE_LITE`` for every fill (USD-M only), then ``ACCOUNT_UPDATE`` (reason ``ORDER``) with the margin
  asset's balance and the changed position. Deposits send ``ACCOUNT_UPDATE`` with reason ``DEPOSIT``.
* ``listenKeyExpired`` (``e E listenKey``) comes from the listen keys themselves.

Positions are one-way (``ps`` ``BOTH``), cross margin, no leverage or margin checks, no funding
payments, no liquidation: enough for a client to see every event shape; not a risk engine. Orders are
LIMIT (GTC, IOC, FOK; GTX is a post-only that is rejected if it would take) and MARKET, on USD-M and on
COIN-M books in contract form (a simulator run as COIN-M; a spot-named book shown in contracts takes
none, as its contracts would need converting at some price).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from binance_ws.sim.accounts import Account, Accounts, SimApiError, parse_decimal, units
from binance_ws.sim.clock import SimClock
from binance_ws.sim.contracts import Contract, ContractMarket, plain
from binance_ws.sim.exchange import (
    CANCELED,
    EXPIRED,
    FILLED,
    NEW,
    TRADE,
    Exchange,
    ExchangeError,
    Order,
    OrderEvent,
)

log = logging.getLogger("binance_ws.sim.futures_accounts")

ZERO: Final = Decimal(0)
#: Order types and times in force the simulator's futures orders take (see the module docstring).
ORDER_TYPES: Final = ("LIMIT", "MARKET")
TIME_IN_FORCE: Final = ("GTC", "IOC", "FOK", "GTX")
#: newOrderRespType values (ACK is the futures default).
RESP_TYPES: Final = ("ACK", "RESULT")


@dataclass
class Position:
    """One symbol's one-way position: signed amount, entry price, realized profit (pre-fee).

    ``contract_size`` 0 is a linear (USD-M) contract, profit ``qty x (exit - entry)`` in the quote asset;
    otherwise an inverse (COIN-M) one, profit ``contracts x size x (1/entry - 1/exit)`` in the base
    asset. The entry price is the quantity-weighted average (Binance averages inverse entries
    harmonically; the simulator does not)."""

    amount: Decimal = ZERO
    entry: Decimal = ZERO
    realized: Decimal = ZERO
    contract_size: int = 0

    def pnl(self, qty: Decimal, entry: Decimal, price: Decimal) -> Decimal:
        """Profit of a long ``qty`` opened at ``entry`` and valued at ``price``."""
        if not self.contract_size:
            return qty * (price - entry)
        if not entry or not price:
            return ZERO
        return qty * self.contract_size * (1 / entry - 1 / price)

    def fill(self, qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill of signed ``qty`` at ``price``; returns the profit it realized."""
        if not self.amount or (self.amount > 0) == (qty > 0):
            total = abs(self.amount) + abs(qty)
            self.entry = (abs(self.amount) * self.entry + abs(qty) * price) / total
            self.amount += qty
            return ZERO
        closed = min(abs(qty), abs(self.amount))
        profit = self.pnl(closed, self.entry, price) * (1 if self.amount > 0 else -1)
        self.realized += profit
        was_long = self.amount > 0
        self.amount += qty
        if not self.amount:
            self.entry = ZERO
        elif (self.amount > 0) != was_long:
            self.entry = price  # flipped: the rest opened at this price
        return profit


@dataclass
class FuturesAccount:
    """An account's futures side on one product."""

    account: Account
    wallet: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    #: Orders by id: (contract, order).
    orders: dict[int, tuple[Contract, Order]] = field(default_factory=dict)
    #: The next ACK answers by order id (before the engine runs the order).
    alias: str = ""


class FuturesAccounts:
    """Every account's futures side on one product (see the module docstring)."""

    def __init__(self, clock: SimClock, exchange: Exchange, accounts: Accounts,
                 market: ContractMarket) -> None:
        self._clock = clock
        self._exchange = exchange
        self._accounts = accounts
        self.market = market
        #: Contracts by futures symbol, and by engine symbol.
        self.contracts: dict[str, Contract] = {}
        self._by_engine: dict[str, Contract] = {}
        for book in exchange.symbols.values():
            contract = market.listing(book.spec)
            if contract is not None:
                self.contracts[contract.symbol] = contract
                self._by_engine[contract.engine_symbol] = contract
        self._futures: dict[str, FuturesAccount] = {}
        self._client_ids = itertools.count(1)

    # -- accounts -------------------------------------------------------------------------------------
    def of(self, account: Account) -> FuturesAccount:
        """``account``'s futures side (made on first use, listening to its futures orders)."""
        fa = self._futures.get(account.name)
        if fa is None:
            fa = self._futures[account.name] = FuturesAccount(account, alias=f"sim{account.uid}")
            self._exchange.add_order_listener(self._owner(account), lambda ev: self._on_event(fa, ev))
        return fa

    def _owner(self, account: Account) -> str:
        return f"{self.market.name}:{account.name}"

    def contract(self, symbol: str | None) -> Contract:
        found = self.contracts.get((symbol or "").upper())
        if found is None:
            raise SimApiError(-1121)
        return found

    def deposit(self, account: Account, asset: str, amount: Decimal | str) -> None:
        """Credit (or debit) the futures wallet: an ``ACCOUNT_UPDATE`` with reason ``DEPOSIT``."""
        fa = self.of(account)
        delta = Decimal(str(amount))
        fa.wallet[asset] = fa.wallet.get(asset, ZERO) + delta
        self._account_update(fa, "DEPOSIT", [(asset, delta)], [])

    def emit(self, account: Account, event: dict[str, Any]) -> None:
        self._accounts.emit(account, event, channel=self.market.name)

    # -- orders -----------------------------------------------------------------------------------------
    def place_order(self, account: Account, params: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /fapi/v1/order``: place on the engine; the answer is ACK (default) or RESULT."""
        for name in ("symbol", "side", "type"):
            if not params.get(name):
                raise SimApiError(-1102, name)
        contract = self.contract(str(params["symbol"]))
        if contract.converts:
            # Contracts would have to be turned into base units at some price: not simulated.
            raise SimApiError(-1000, msg="The simulator takes COIN-M orders only on books in contract "
                                         "form (a simulator run as COIN-M).")
        side, order_type = str(params["side"]), str(params["type"])
        if side not in ("BUY", "SELL"):
            raise SimApiError(-1102, "side")
        if order_type not in ORDER_TYPES:
            raise SimApiError(-1116)
        qty = parse_decimal(params, "quantity")
        assert qty is not None  # required: parse_decimal raised otherwise
        price = parse_decimal(params, "price", required=order_type == "LIMIT")
        tif = str(params.get("timeInForce") or ("GTC" if order_type == "MARKET" else ""))
        if order_type == "LIMIT" and tif not in TIME_IN_FORCE:
            raise SimApiError(-1102, "timeInForce")
        resp_type = str(params.get("newOrderRespType") or "ACK")
        if resp_type not in RESP_TYPES:
            raise SimApiError(-1102, "newOrderRespType")
        client_id = str(params.get("newClientOrderId") or f"sim-f{next(self._client_ids)}")
        fa = self.of(account)
        engine_type, engine_tif = order_type, tif
        if tif == "GTX":
            engine_type, engine_tif = "LIMIT_MAKER", ""
        try:
            self._exchange.place_order(contract.engine_symbol, side, engine_type, qty, price,
                                       engine_tif or "GTC", owner=self._owner(account),
                                       client_order_id=client_id)
        except ExchangeError as exc:
            raise SimApiError.from_exchange(exc) from None
        order = next(o for _, o in reversed(fa.orders.values()) if o.client_order_id == client_id)
        return self.order_body(contract, order, ack=resp_type == "ACK", tif=tif, order_type=order_type)

    def order_body(self, contract: Contract, order: Order, *, ack: bool = False, tif: str | None = None,
                   order_type: str | None = None) -> dict[str, Any]:
        """Binance's futures order answer (``POST /fapi/v1/order`` shape; COIN-M's ``/dapi/v1/order`` has
        ``cumBase`` for ``cumQuote``, adds ``pair`` and has no ``goodTillDate``)."""
        executed = ZERO if ack else units(order.executed)
        cum_quote = ZERO if ack else units(order.cum_quote_raw) / Decimal(10 ** 8)
        executed_text = contract.quantity(0 if ack else order.executed, order.price)
        kind = order_type or ("MARKET" if order.type == "MARKET" else "LIMIT")
        avg = cum_quote / executed if executed else ZERO
        body: dict[str, Any] = {
            "clientOrderId": order.client_order_id or f"sim{order.order_id}", "cumQty": executed_text}
        if contract.contract_size:  # COIN-M: the filled value in the base asset, and the pair
            body["cumBase"] = plain(executed * contract.contract_size / avg if executed else ZERO)
        else:
            body["cumQuote"] = plain(cum_quote)
        body.update({
            "executedQty": executed_text, "orderId": order.order_id,
            "avgPrice": plain(avg) if executed else "0.00",
            "origQty": contract.quantity(order.orig_qty, order.price), "price": contract.price(order.price),
            "reduceOnly": False, "side": order.side, "positionSide": "BOTH",
            "status": NEW if ack else order.status, "stopPrice": "0", "closePosition": False,
            "symbol": contract.symbol})
        if contract.contract_size:
            body["pair"] = contract.pair
        body.update({
            "timeInForce": tif or self._tif(order), "type": kind, "origType": kind,
            "updateTime": self._clock.now_ms(), "workingType": "CONTRACT_PRICE", "priceProtect": False,
            "priceMatch": "NONE", "selfTradePreventionMode": "NONE"})
        if not contract.contract_size:
            body["goodTillDate"] = 0
        return body

    @staticmethod
    def _tif(order: Order) -> str:
        return "GTX" if order.type == "LIMIT_MAKER" else (order.time_in_force or "GTC")

    def cancel_order(self, account: Account, params: Mapping[str, Any]) -> dict[str, Any]:
        """``DELETE /fapi/v1/order`` by ``orderId`` or ``origClientOrderId``; -2011 for an unknown one."""
        contract = self.contract(str(params.get("symbol") or ""))
        fa = self.of(account)
        order = self._find(fa, contract, params)
        if order.status not in (NEW, "PARTIALLY_FILLED"):
            raise SimApiError(-2011)
        try:
            self._exchange.cancel_order(contract.engine_symbol, order.order_id)
        except ExchangeError as exc:
            raise SimApiError.from_exchange(exc) from None
        return self.order_body(contract, order)

    def _find(self, fa: FuturesAccount, contract: Contract, params: Mapping[str, Any]) -> Order:
        raw_id = params.get("orderId")
        client = params.get("origClientOrderId")
        for c, order in fa.orders.values():
            if c is contract and ((raw_id and str(order.order_id) == str(raw_id))
                                  or (client and order.client_order_id == client)):
                return order
        if not raw_id and not client:
            raise SimApiError(-1102, "orderId")
        raise SimApiError(-2011)

    def account_body(self, account: Account) -> dict[str, Any]:
        """A short ``GET /fapi/v2/balance``-style view: wallet and positions (tests read it)."""
        fa = self.of(account)
        return {"wallet": {a: plain(v) for a, v in fa.wallet.items()},
                "positions": {s: plain(p.amount) for s, p in fa.positions.items()}}

    # -- events -----------------------------------------------------------------------------------------
    def _on_event(self, fa: FuturesAccount, ev: OrderEvent) -> None:
        order = ev.order
        contract = self._by_engine.get(order.symbol)
        if contract is None:
            return
        fa.orders.setdefault(order.order_id, (contract, order))
        trade = ev.trade
        profit = ZERO
        position: Position | None = None
        if ev.kind == TRADE and trade is not None:
            qty = units(trade.qty) * (1 if order.is_buy else -1)
            position = fa.positions.get(contract.symbol)
            if position is None:
                position = fa.positions[contract.symbol] = Position(contract_size=contract.contract_size)
            profit = position.fill(qty, units(trade.price))
            asset = contract.margin_asset
            fa.wallet[asset] = fa.wallet.get(asset, ZERO) + profit
        self.emit(fa.account, self._order_update(fa, contract, order, ev, profit))
        if trade is not None and position is not None:
            if self.market.trade_lite:
                self.emit(fa.account, self._trade_lite(contract, order, ev))
            self._account_update(fa, "ORDER", [(contract.margin_asset, ZERO)], [contract.symbol], ev.time)

    def _notional(self, fa: FuturesAccount, contract: Contract, buy: bool) -> Decimal:
        return sum((units(o.remaining) * units(o.price) for c, o in fa.orders.values()
                    if c is contract and o.is_buy == buy and o.status in (NEW, "PARTIALLY_FILLED")), ZERO)

    def _order_update(self, fa: FuturesAccount, contract: Contract, order: Order, ev: OrderEvent,
                      profit: Decimal) -> dict[str, Any]:
        trade = ev.trade
        kind = "MARKET" if order.type == "MARKET" else "LIMIT"
        executed = units(order.executed)
        avg = units(order.cum_quote_raw) / Decimal(10 ** 8) / executed if executed else ZERO
        o: dict[str, Any] = {
            "s": contract.symbol, "c": order.client_order_id or f"sim{order.order_id}", "S": order.side,
            "o": kind, "f": self._tif(order), "q": contract.quantity(order.orig_qty, order.price),
            "p": contract.price(order.price), "ap": plain(avg), "sp": "0", "x": ev.kind, "X": order.status,
            "i": order.order_id,
            "l": contract.quantity(trade.qty, trade.price) if trade else "0",
            "z": contract.quantity(order.executed, order.price),
            "L": contract.price(trade.price) if trade else "0",
        }
        if self.market.pair_keys:
            o["ma"] = contract.margin_asset
        o.update({
            "T": ev.time, "t": trade.id if trade else 0,
        })
        if self.market.pair_keys:
            o["rp"] = plain(profit)
        o.update({
            "b": plain(self._notional(fa, contract, True)), "a": plain(self._notional(fa, contract, False)),
            "m": ev.is_maker, "R": False, "wt": "CONTRACT_PRICE", "ot": kind, "ps": "BOTH", "cp": False,
        })
        if self.market.pair_keys:
            o.update({"pP": False, "V": "NONE", "pm": "NONE", "er": "0"})
        else:
            o.update({"pP": False, "si": 0, "ss": 0, "rp": plain(profit), "V": "NONE", "pm": "NONE",
                      "gtd": 0, "er": "0"})
        event: dict[str, Any] = {"e": "ORDER_TRADE_UPDATE", "E": ev.time, "T": ev.time}
        if self.market.pair_keys:
            event["i"] = fa.alias
        event["o"] = o
        return event

    @staticmethod
    def _trade_lite(contract: Contract, order: Order, ev: OrderEvent) -> dict[str, Any]:
        trade = ev.trade
        assert trade is not None
        return {"e": "TRADE_LITE", "E": ev.time, "T": ev.time, "s": contract.symbol,
                "q": contract.quantity(order.orig_qty, order.price), "p": contract.price(order.price),
                "m": ev.is_maker, "c": order.client_order_id or f"sim{order.order_id}", "S": order.side,
                "L": contract.price(trade.price), "l": contract.quantity(trade.qty, trade.price),
                "t": trade.id, "i": order.order_id}

    def _account_update(self, fa: FuturesAccount, reason: str, balances: list[tuple[str, Decimal]],
                        symbols: list[str], when: int | None = None) -> None:
        now = self._clock.now_ms() if when is None else when
        b = [{"a": asset, "wb": plain(fa.wallet.get(asset, ZERO)), "cw": plain(fa.wallet.get(asset, ZERO)),
              "bc": plain(change)} for asset, change in balances]
        p = []
        for symbol in symbols:
            pos = fa.positions[symbol]
            contract = self.contracts[symbol]
            last = units(self._exchange.book(contract.engine_symbol).last_price)
            unrealized = pos.pnl(pos.amount, pos.entry, last) if pos.amount else ZERO
            p.append({"s": symbol, "pa": plain(pos.amount), "ep": plain(pos.entry), "bep": plain(pos.entry),
                      "cr": plain(pos.realized), "up": plain(unrealized), "mt": "cross", "iw": "0",
                      "ps": "BOTH"})
        event: dict[str, Any] = {"e": "ACCOUNT_UPDATE", "E": now, "T": now}
        if self.market.pair_keys:
            event["i"] = fa.alias
        event["a"] = {"m": reason, "B": b, "P": p}
        self.emit(fa.account, event)


__all__ = ["CANCELED", "EXPIRED", "FILLED", "FuturesAccount", "FuturesAccounts", "Position"]
