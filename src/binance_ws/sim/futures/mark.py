"""Mark price, index, funding and liquidations, generated from the book: pure objects fed prices and time.

Binance's published method (USD-M "Mark Price and Funding Rate" pages, paraphrased):

* the premium index is sampled from the book against the index price; the funding rate of a period is
  ``F = P + clamp(I - P, -0.05%, +0.05%)`` with ``P`` the average premium and ``I`` the interest rate
  (0.01% per 8 h), capped;
* the mark price is the median of ``index * (1 + last funding rate * time to funding / 8 h)``,
  ``index + 5-minute moving average of the basis`` and the last price;
* funding is settled every 8 h at 00:00, 08:00 and 16:00 UTC (``T`` = next funding time).

The simulator has no spot market to build an index from, so the index is the book's mid price smoothed
over :data:`INDEX_TAU_MS` (an index lags the contract it follows). ``ap`` is not described by the
scraped page (PROTOCOL 8); it is served as the 1-minute moving average of the mark price.
Liquidations come from :class:`Positions`: synthetic leveraged positions, deterministic by seed, each
liquidated when the mark price crosses its liquidation price and replaced by a new one at the mark.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

#: Funding every 8 h, on the UTC grid (00:00, 08:00, 16:00).
FUNDING_INTERVAL_MS = 8 * 3_600_000
#: Interest rate per funding interval (0.01%).
INTEREST_RATE = 0.0001
#: ``clamp(I - P, -0.05%, 0.05%)``.
FUNDING_CLAMP = 0.0005
#: Funding rate cap (a typical USD-M cap; per-symbol on Binance).
FUNDING_CAP = 0.0075
#: Time constant of the simulated index (an exponential average of the mid price).
INDEX_TAU_MS = 5_000
#: Window of the basis moving average in the mark price.
BASIS_WINDOW_MS = 300_000
#: Window of ``ap`` (simulator choice, see the module docstring).
MARK_AVERAGE_MS = 60_000
#: The estimated settle price ``P`` averages the index over the last hour.
SETTLE_WINDOW_MS = 3_600_000
#: Premium / basis / index samples are taken at most this often.
SAMPLE_MS = 1_000


def next_funding_time(now_ms: int) -> int:
    """The next funding time after ``now_ms`` on the 8-hour UTC grid."""
    return (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


class _Window:
    """Time-stamped samples over a sliding window, with their running sum."""

    __slots__ = ("_samples", "_sum", "span_ms")

    def __init__(self, span_ms: int) -> None:
        self.span_ms = span_ms
        self._samples: deque[tuple[int, float]] = deque()
        self._sum = 0.0

    def add(self, t_ms: int, value: float) -> None:
        self._samples.append((t_ms, value))
        self._sum += value
        limit = t_ms - self.span_ms
        while self._samples and self._samples[0][0] <= limit:
            self._sum -= self._samples.popleft()[1]

    def mean(self, default: float) -> float:
        return self._sum / len(self._samples) if self._samples else default


@dataclass(frozen=True, slots=True)
class MarkState:
    """One ``markPriceUpdate``'s numbers (floats in quote currency; formatted at the edge)."""

    mark: float
    mark_average: float
    index: float
    settle: float
    funding_rate: float
    next_funding_ms: int


class MarkModel:
    """Mark price and funding of one perpetual: :meth:`observe` the book, :meth:`state` for a push."""

    def __init__(self, price: float, now_ms: int) -> None:
        self.index = price
        self.last_price = price
        self.mid = price
        self._last_ms = now_ms
        self._last_sample_ms: int | None = None
        self._premium = _Window(FUNDING_INTERVAL_MS)
        self._basis = _Window(BASIS_WINDOW_MS)
        self._marks = _Window(MARK_AVERAGE_MS)
        self._settle = _Window(SETTLE_WINDOW_MS)
        #: Funding rate of the last settled period (used in the mark price) and the period's end.
        self.last_funding_rate = INTEREST_RATE
        self._period_end = next_funding_time(now_ms)
        self.mark = price

    def observe(self, now_ms: int, mid: float | None, last_price: float | None) -> None:
        """Feed the book's mid price and last trade price at ``now_ms`` (None: unchanged)."""
        if mid is not None and mid > 0:
            self.mid = mid
        if last_price is not None and last_price > 0:
            self.last_price = last_price
        dt = max(0, now_ms - self._last_ms)
        self._last_ms = now_ms
        # Exponential smoothing, exact for any step: the index lags the book by about INDEX_TAU_MS.
        alpha = 1.0 - math.exp(-dt / INDEX_TAU_MS)
        self.index += (self.mid - self.index) * alpha
        if now_ms >= self._period_end:
            self.last_funding_rate = self.funding_rate()
            self._premium = _Window(FUNDING_INTERVAL_MS)
            self._period_end = next_funding_time(now_ms)
        if self._last_sample_ms is None or now_ms - self._last_sample_ms >= SAMPLE_MS:
            self._last_sample_ms = now_ms
            index = self.index
            self._premium.add(now_ms, (self.mid - index) / index if index else 0.0)
            self._basis.add(now_ms, self.mid - index)
            self._settle.add(now_ms, index)
        self.mark = self._mark(now_ms)
        self._marks.add(now_ms, self.mark)

    def funding_rate(self) -> float:
        """The estimated funding rate of the running period: ``P + clamp(I - P)``, capped."""
        premium = self._premium.mean(0.0)
        rate = premium + min(FUNDING_CLAMP, max(-FUNDING_CLAMP, INTEREST_RATE - premium))
        return min(FUNDING_CAP, max(-FUNDING_CAP, rate))

    def _mark(self, now_ms: int) -> float:
        to_funding = (self._period_end - now_ms) / FUNDING_INTERVAL_MS
        price1 = self.index * (1.0 + self.last_funding_rate * to_funding)
        price2 = self.index + self._basis.mean(0.0)
        return sorted((price1, price2, self.last_price))[1]

    def state(self, now_ms: int) -> MarkState:
        """The numbers of a ``markPriceUpdate`` at ``now_ms``."""
        return MarkState(mark=self.mark, mark_average=self._marks.mean(self.mark), index=self.index,
                         settle=self._settle.mean(self.index), funding_rate=self.funding_rate(),
                         next_funding_ms=self._period_end)


# -- liquidations ---------------------------------------------------------------------------------------
#: Leverages of the synthetic positions and the maintenance margin rate of their bracket.
LEVERAGES = (10, 20, 25, 50, 75, 100, 125)
MAINTENANCE_MARGIN_RATE = 0.004
#: How far a new position's liquidation price lies from the price, as a fraction, drawn log-uniformly
#: from this range: positions were opened over the past at many prices and leverages, so some always sit
#: close to liquidation and ordinary moves liquidate a few, large moves many.
LIQUIDATION_DISTANCE = (2e-5, 5e-2)


@dataclass(slots=True)
class Position:
    """A synthetic leveraged position; ``qty`` in engine units (1e-8)."""

    is_long: bool
    qty: int
    entry: float
    leverage: int

    @property
    def liquidation_price(self) -> float:
        move = 1.0 / self.leverage - MAINTENANCE_MARGIN_RATE
        return self.entry * (1.0 - move) if self.is_long else self.entry * (1.0 + move)

    @property
    def bankruptcy_price(self) -> float:
        move = 1.0 / self.leverage
        return self.entry * (1.0 - move) if self.is_long else self.entry * (1.0 + move)


@dataclass(frozen=True, slots=True)
class Liquidation:
    """One forced order: ``side`` is the liquidation order's side (SELL closes a long)."""

    side: str
    qty: int
    price: float
    average_price: float
    time_ms: int

    @property
    def notional(self) -> float:
        return self.qty * self.average_price


class Positions:
    """Open synthetic positions of one symbol, liquidated by the mark price; deterministic by seed.

    :meth:`check` liquidates every position the mark has crossed (replacing each with a fresh one at the
    mark) and keeps, per 1000 ms window, only the largest liquidation, as Binance's ``forceOrder``
    snapshot does (PROTOCOL 8); :meth:`due` hands out the windows that have closed.
    """

    def __init__(self, symbol: str, price: float, step_units: int, *, count: int = 50, seed: int = 1,
                 window_ms: int = 1000) -> None:
        self._rng = random.Random(f"positions-{symbol}-{seed}")
        self._step = max(1, step_units)
        self.window_ms = window_ms
        self.positions = [self._open(price) for _ in range(count)]
        self._windows: dict[int, Liquidation] = {}
        self.liquidated = 0

    def _open(self, price: float) -> Position:
        rng = self._rng
        steps = max(1, int(rng.lognormvariate(2.0, 1.2)))
        is_long = rng.random() < 0.5
        leverage = rng.choice(LEVERAGES)
        low, high = LIQUIDATION_DISTANCE
        distance = math.exp(rng.uniform(math.log(low), math.log(high)))
        # The entry that puts the liquidation price ``distance`` away from ``price``.
        move = 1.0 / leverage - MAINTENANCE_MARGIN_RATE
        if is_long:
            entry = price * (1.0 - distance) / (1.0 - move)
        else:
            entry = price * (1.0 + distance) / (1.0 + move)
        return Position(is_long, steps * self._step, entry, leverage)

    def check(self, mark: float, now_ms: int) -> None:
        """Liquidate the positions whose liquidation price ``mark`` has reached."""
        for i, pos in enumerate(self.positions):
            liq = pos.liquidation_price
            if (mark <= liq) if pos.is_long else (mark >= liq):
                self.liquidated += 1
                event = Liquidation("SELL" if pos.is_long else "BUY", pos.qty, pos.bankruptcy_price, mark,
                                    now_ms)
                window = now_ms // self.window_ms
                best = self._windows.get(window)
                if best is None or event.notional > best.notional:
                    self._windows[window] = event
                self.positions[i] = self._open(mark)

    def due(self, now_ms: int) -> list[Liquidation]:
        """The largest liquidation of every window that ended by ``now_ms``, oldest first."""
        current = now_ms // self.window_ms
        done = sorted(w for w in self._windows if w < current)
        return [self._windows.pop(w) for w in done]
