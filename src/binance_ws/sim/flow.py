"""Synthetic order flow: limit orders around a drifting mid price, cancels and market orders.

The flow only submits orders; books cross only through the matching engine. It owns its own
``random.Random(seed)``, so one seed always produces the same sequence of engine events (trade ids,
prices, quantities, update ids); only the timestamps follow the clock.

Each action goes to a symbol drawn uniformly, or, given per-symbol ``rates``, in proportion to its rate:
``n`` actions spread that way are ``n`` events of independent Poisson processes of those rates (the
driver turns elapsed time times the total rate into ``n``), at one bisection per action, whatever the
number of symbols.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from binance_ws.enums import ORDER_TYPE_LIMIT, ORDER_TYPE_MARKET, TIME_IN_FORCE_GTC, TIME_IN_FORCE_IOC
from binance_ws.sim.exchange import SCALE, Exchange, Order, SymbolBook

#: How far back a seeded trade history reaches (:meth:`OrderFlow.seed_history`).
HISTORY_SPAN_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class FlowShape:
    """The mix of actions and the shape of the book they keep (probabilities per action)."""

    #: Resting flow orders per symbol the flow steers towards (cancels rise above it, fall below it).
    target_orders: int = 160
    p_cancel: float = 0.33
    p_market: float = 0.05
    p_ioc: float = 0.04
    #: Chance per action that the mid price moves by one tick.
    p_drift: float = 0.05
    #: Mean and cap of a limit order's distance from the mid, in ticks.
    mean_offset_ticks: float = 9.0
    max_offset_ticks: int = 60
    #: A quantity is 1..max_size_multiple times the smallest one meeting min notional.
    max_size_multiple: int = 5
    #: Levels per side placed at start-up so that books are deep from the first snapshot.
    initial_levels: int = 30


class _SymbolFlow:
    __slots__ = ("book", "mid", "resting")

    def __init__(self, book: SymbolBook, mid_ticks: int) -> None:
        self.book = book
        #: Reference mid price, in ticks.
        self.mid = mid_ticks
        self.resting: list[Order] = []


class OrderFlow:
    """Drives an :class:`Exchange` with synthetic actions, deterministically for a seed."""

    def __init__(self, exchange: Exchange, seed: int, shape: FlowShape | None = None,
                 rates: Sequence[float] | None = None) -> None:
        self.exchange = exchange
        self.shape = shape or FlowShape()
        self.rng = random.Random(seed)
        self.seed = seed
        self._flows: list[_SymbolFlow] = []
        for book in exchange.symbols.values():
            mid_ticks = max(self.shape.max_offset_ticks + 2, round(book.spec.price * SCALE) // book.tick)
            self._flows.append(_SymbolFlow(book, mid_ticks))
        #: Running sums of the per-symbol rates (None: every symbol alike).
        self._cumulative: list[float] | None = None
        #: Actions a second of all symbols together (``sum(rates)``; 0 without rates).
        self.total_rate = 0.0
        if rates is not None:
            if len(rates) != len(self._flows) or any(r < 0 for r in rates):
                raise ValueError(f"need one rate >= 0 per symbol ({len(self._flows)}), got {len(rates)}")
            self._cumulative = list(itertools.accumulate(rates))
            self.total_rate = self._cumulative[-1] if self._cumulative else 0.0
        for sf in self._flows:
            self._seed_book(sf)

    def _seed_book(self, sf: _SymbolFlow) -> None:
        for level in range(1, self.shape.initial_levels + 1):
            for is_buy in (True, False):
                for _ in range(2):
                    price_ticks = sf.mid - level if is_buy else sf.mid + level
                    self._limit(sf, is_buy, price_ticks, TIME_IN_FORCE_GTC)

    def seed_history(self, per_symbol: int, now_ms: int, span_ms: int = HISTORY_SPAN_MS) -> None:
        """Give every symbol ``per_symbol`` past trades spread over the ``span_ms`` before ``now_ms``: a
        random walk of one tick at a time ending at the current mid, sizes as the flow draws them. Its own
        ``random.Random`` (from the seed), so the live flow that follows is the same with or without it."""
        if per_symbol <= 0:
            return
        rng = random.Random(f"history-{self.seed}")
        for sf in self._flows:
            book = sf.book
            ticks = sf.mid
            walk: list[int] = []
            for _ in range(per_symbol):
                walk.append(ticks)
                r = rng.random()
                ticks += 1 if r < 0.2 else -1 if r < 0.4 else 0
                ticks = max(ticks, 1)
            walk.reverse()  # walked back from the mid: the newest trade is at the mid
            step = book.step
            min_steps = -(-book.min_notional * SCALE * 11 // (10 * min(walk) * book.tick * step))
            gap = span_ms / per_symbol
            trades = []
            for i, t in enumerate(walk):
                qty = step * min_steps * (1 + int(rng.random() * self.shape.max_size_multiple))
                at = now_ms - span_ms + int(i * gap + rng.random() * gap)
                trades.append((t * book.tick, qty, min(at, now_ms - 1), rng.random() < 0.5))
            self.exchange.seed_history(book.symbol, trades)

    def step(self, n: int) -> None:
        """Run ``n`` actions, each on a symbol chosen at random (none when no symbol is listed)."""
        rng = self.rng
        flows = self._flows
        if not flows:
            return
        shape = self.shape
        target = shape.target_orders
        p_market = shape.p_market
        p_ioc = p_market + shape.p_ioc
        p_drift = shape.p_drift
        exchange = self.exchange
        # random() and math.log stand in for randrange()/expovariate(), which are pure-Python and slow.
        rand = rng.random
        n_flows = len(flows)
        neg_mean = -shape.mean_offset_ticks
        max_offset = shape.max_offset_ticks
        cumulative = self._cumulative
        if cumulative is not None and not self.total_rate:
            return
        pick = bisect.bisect_right
        total = self.total_rate
        last = n_flows - 1
        for _ in range(n):
            if cumulative is None:
                sf = flows[int(rand() * n_flows)]
            else:
                sf = flows[min(pick(cumulative, rand() * total), last)]
            if rand() < p_drift:
                sf.mid += 1 if rand() < 0.5 else -1
                sf.mid = max(sf.mid, max_offset + 2)
            # Cancels grow more likely as the book fills beyond its target, so depth stays steady.
            p_cancel = shape.p_cancel * len(sf.resting) / target
            r = rand()
            is_buy = rand() < 0.5
            if r < p_market:
                qty = self._size(sf.book, sf.mid * sf.book.tick)
                exchange.submit(sf.book, is_buy, ORDER_TYPE_MARKET, qty, 0, TIME_IN_FORCE_GTC)
            elif r < p_ioc:
                # Marketable IOC limits that sweep one or two levels and never rest.
                ticks = sf.mid + 2 if is_buy else sf.mid - 2
                self._limit(sf, is_buy, ticks, TIME_IN_FORCE_IOC)
            elif r < p_ioc + p_cancel and sf.resting:
                self._cancel_one(sf)
            else:
                offset = 1 + min(int(neg_mean * math.log(1.0 - rand())), max_offset)
                self._limit(sf, is_buy, sf.mid - offset if is_buy else sf.mid + offset, TIME_IN_FORCE_GTC)

    def _size(self, book: SymbolBook, price: int) -> int:
        """A random quantity, in units, that clears the symbol's min notional at ``price`` with margin."""
        step = book.step
        # Smallest step count with price * qty >= 1.1 * minNotional (ceil division, all integers).
        steps = -(-book.min_notional * SCALE * 11 // (10 * price * step))
        return step * steps * (1 + int(self.rng.random() * self.shape.max_size_multiple))

    def _limit(self, sf: _SymbolFlow, is_buy: bool, price_ticks: int, tif: str) -> None:
        book = sf.book
        price = price_ticks * book.tick
        order = self.exchange.submit(book, is_buy, ORDER_TYPE_LIMIT, self._size(book, price), price, tif)
        if order.working_time >= 0 and order.remaining:
            sf.resting.append(order)

    def _cancel_one(self, sf: _SymbolFlow) -> None:
        resting = sf.resting
        # Orders filled since they rested are dropped from the list as they are drawn.
        while resting:
            i = int(self.rng.random() * len(resting))
            order = resting[i]
            resting[i] = resting[-1]
            resting.pop()
            if self.exchange.cancel(sf.book, order):
                return
