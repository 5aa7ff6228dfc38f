"""Sequence checks on the hot path: duplicates (drop them) and gaps (report them) per stream.

One tracker object per stream keeps the last id seen in ``last``; :meth:`SequenceTracker.observe` takes a
decoded payload and returns a :class:`Verdict`. The rules (PROTOCOL.md):

* trades ``t`` (4.2) and aggregate trades ``a`` (4.1) count up by one per event on a symbol;
* spot diff depth (5.1): an event covers update ids ``U..u`` and the next one starts at ``u + 1``;
* futures diff depth (5.2): ids jump (shared across symbols), but each event's ``pu`` is the previous
  event's ``u``.

An id at or below ``last`` is a DUPLICATE (seen already: during a make-before-break rotation both
connections deliver it). A jump returns a GAP verdict naming the missing range; the payload itself is
good and should still be delivered, after the gap is reported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from binance_ws.markets import SPOT, Market
from binance_ws.streams import parse_stream


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one observation: ``kind`` is "ok", "duplicate" or "gap".

    For a gap, ``first_missing..last_missing`` (inclusive) is the range of ids that never arrived. For
    futures depth, whose ids are not contiguous, it is the id range the missing events lie in.
    """

    kind: str
    first_missing: int = 0
    last_missing: int = 0

    @property
    def is_gap(self) -> bool:
        return self.kind == "gap"


#: The verdicts without data are singletons: compare with ``is`` on the hot path.
OK: Final = Verdict("ok")
DUPLICATE: Final = Verdict("duplicate")


def gap(first_missing: int, last_missing: int) -> Verdict:
    """A gap verdict for the inclusive id range that is missing."""
    return Verdict("gap", first_missing, last_missing)


class SequenceTracker(ABC):
    """Base of the per-stream trackers; ``last`` is the highest id seen (None before the first event).

    :meth:`for_stream` picks the right tracker for a stream name. A payload without the id fields this
    tracker reads (not a sequenced event) is passed as OK and leaves the state alone.
    """

    __slots__ = ("last",)

    def __init__(self, last: int | None = None) -> None:
        self.last = last

    @abstractmethod
    def observe(self, payload: dict[str, Any]) -> Verdict:
        """Check ``payload`` against the sequence and advance it; see the module docstring."""

    def reset(self) -> None:
        """Forget the sequence (a fresh start: the next event is accepted as it comes)."""
        self.last = None

    @staticmethod
    def for_stream(name: str, market: Market = SPOT) -> SequenceTracker | None:
        """The tracker for stream ``name`` on ``market``, or None for streams without a sequence
        (tickers, klines, partial books, book ticker which is conflated). Raises InvalidStreamError
        for an invalid name."""
        info = parse_stream(name, market)
        if info.kind == "trade":
            return TradeTracker()
        if info.kind == "aggTrade":
            return AggTradeTracker()
        if info.kind == "depth":
            return FuturesDepthTracker() if market.sequence_rule == "futures" else SpotDepthTracker()
        return None


class _IdSequence(SequenceTracker):
    """Events numbered one by one in the field named by the class's ``key``. The router inlines the
    in-order case with that key on its single-subscriber feeds, so ``observe`` runs per message only
    where several subscribers share a stream."""

    __slots__ = ()
    #: The payload field holding the id.
    key: ClassVar[str]

    def observe(self, payload: dict[str, Any]) -> Verdict:
        try:
            n = payload[self.key]
        except KeyError:
            return OK
        last = self.last
        if last is not None and n == last + 1:
            self.last = n
            return OK
        if last is None:
            self.last = n
            return OK
        if n <= last:
            return DUPLICATE
        self.last = n
        return gap(last + 1, n - 1)


class TradeTracker(_IdSequence):
    """Trades: ``t`` counts up by one per trade of a symbol (PROTOCOL 4.2)."""

    __slots__ = ()
    key = "t"


class AggTradeTracker(_IdSequence):
    """Aggregate trades: ``a`` counts up by one per aggregate trade of a symbol (PROTOCOL 4.1)."""

    __slots__ = ()
    key = "a"


class SpotDepthTracker(SequenceTracker):
    """Spot diff depth: event ``U..u`` follows when ``U <= last + 1 <= u`` (PROTOCOL 5.1)."""

    __slots__ = ()

    def observe(self, payload: dict[str, Any]) -> Verdict:
        try:
            first = payload["U"]
            final = payload["u"]
        except KeyError:
            return OK
        last = self.last
        if last is None:
            self.last = final
            return OK
        if final <= last:
            return DUPLICATE
        self.last = final
        if first > last + 1:
            return gap(last + 1, first - 1)
        return OK


class FuturesDepthTracker(SequenceTracker):
    """Futures diff depth: event follows when its ``pu`` equals the last ``u`` (PROTOCOL 5.2)."""

    __slots__ = ()

    def observe(self, payload: dict[str, Any]) -> Verdict:
        try:
            prev = payload["pu"]
            final = payload["u"]
        except KeyError:
            return OK
        last = self.last
        if last is None:
            self.last = final
            return OK
        if final <= last:
            return DUPLICATE
        self.last = final
        # pu below last (an overlapping event) carries absolute quantities and is harmless; only events
        # chained to an id we never saw mean some were lost, somewhere in last+1..pu.
        if prev > last:
            return gap(last + 1, prev)
        return OK
