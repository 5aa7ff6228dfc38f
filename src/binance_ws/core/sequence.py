"""Sequence checks on the hot path: duplicates (drop them), gaps and resets (report them) per stream.

One tracker object per stream keeps the last id seen in ``last``. It reads an event's two ids, its *link*
(what ties it to the event before) and its *final* id, from a decoded payload (:meth:`observe`), a typed
model (:meth:`observe_typed`) or the raw payload bytes (:meth:`observe_raw`), and returns a
:class:`Verdict`. The rules (PROTOCOL.md):

* trades ``t`` (4.2) and aggregate trades ``a`` (4.1) count up by one per event on a symbol (link and
  final are the same id);
* spot diff depth (5.1): an event covers update ids ``U..u`` and the next one starts at ``u + 1``;
* futures diff depth (5.2): ids jump (shared across symbols), but each event's ``pu`` is the previous
  event's ``u``.

With ``last`` the final id of the last event taken, and each tracker's documented ``window`` and
``max_jump`` (class attributes), an event with final id ``n`` is:

* in sequence (OK) when it links to ``last``; an overlapping spot event (``U <= last + 1 <= u``) too;
* a GAP when ``last < n <= last + max_jump`` and it does not link: the verdict names the missing ids;
  the payload itself is good and is delivered after the gap is reported;
* a DUPLICATE when ``last - window < n <= last``: seen already (a re-delivery, or an event arriving late
  after a reorder). It is dropped;
* a RESET when ``n <= last - window`` (ids went backwards further than any re-delivery goes: the
  numbering restarted, e.g. after a reconnect to a reset exchange) or ``n > last + max_jump`` (a jump no
  outage explains: a corrupt id, or numbering restarted higher). Tracking restarts from the event, which
  is delivered, after the reset is reported;
* also a RESET when two events in a row are duplicates and the second links to the first (``k`` then
  ``k + 1``, both at or below ``last``): re-deliveries never count up below ``last`` (a rotation's
  hand-over drops them before they reach the tracker, see :class:`~binance_ws.engine.router.Handover`),
  a numbering that restarted within the window does. Tracking restarts from the second event; the
  first was dropped as a duplicate, and the verdict names it (``skipped``) so that is not silent.

Everything except the in-sequence case is rare, so only that case is inlined by the router.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import msgspec

from binance_ws.markets import SPOT, Market
from binance_ws.streams import parse_stream


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one observation: ``kind`` is "ok", "duplicate", "gap" or "reset".

    For a gap, ``first_missing..last_missing`` (inclusive) is the range of ids that never arrived. For
    futures depth, whose ids are not contiguous, it is the id range the missing events lie in. For a
    reset, ``last_seen`` is the final id tracking had reached, ``got`` the final id of the event it
    restarts from, and ``skipped`` the final id of the event dropped as a duplicate just before (the
    run rule of the module docstring), or None.
    """

    kind: str
    first_missing: int = 0
    last_missing: int = 0
    last_seen: int = 0
    got: int = 0
    skipped: int | None = None

    @property
    def is_gap(self) -> bool:
        return self.kind == "gap"

    @property
    def is_reset(self) -> bool:
        return self.kind == "reset"


#: The verdicts without data are singletons: compare with ``is`` on the hot path.
OK: Final = Verdict("ok")
DUPLICATE: Final = Verdict("duplicate")


def gap(first_missing: int, last_missing: int) -> Verdict:
    """A gap verdict for the inclusive id range that is missing."""
    return Verdict("gap", first_missing, last_missing)


def reset(last_seen: int, got: int, skipped: int | None = None) -> Verdict:
    """A reset verdict: tracking had reached ``last_seen`` and restarts from ``got``."""
    return Verdict("reset", last_seen=last_seen, got=got, skipped=skipped)


#: What a raw reader gives: the event's (link id, final id), or None for a payload without them.
Ids = tuple[int, int] | None


class SequenceTracker(ABC):
    """Base of the per-stream trackers; ``last`` is the final id of the last event taken (None before
    the first event).

    :meth:`for_stream` picks the right tracker for a stream name. A payload without the id fields this
    tracker reads (not a sequenced event) is passed as OK and leaves the state alone. An id that is not
    a number raises (TypeError), as it would from any reader of the payload.
    """

    __slots__ = ("_behind", "_behind_at", "last")

    #: Wire keys of the (link, final) ids, and the attributes of the typed model holding them.
    fields: ClassVar[tuple[str, str]]
    attrs: ClassVar[tuple[str, str]]
    #: Ids at most this far below ``last`` are duplicates; further below, a reset.
    window: ClassVar[int]
    #: A final id more than this far above ``last`` is a reset, not a gap.
    max_jump: ClassVar[int]

    def __init__(self, last: int | None = None) -> None:
        self.last = last
        # The final id of the last duplicate, and the ``last`` it was seen under (the run rule).
        self._behind: int | None = None
        self._behind_at: int | None = None

    def observe(self, payload: dict[str, Any]) -> Verdict:
        """Check a decoded payload against the sequence and advance it; see the module docstring."""
        link_key, final_key = self.fields
        try:
            link = payload[link_key]
            final = payload[final_key]
        except KeyError:
            return OK
        return self.check(link, final)

    def observe_typed(self, obj: Any) -> Verdict:
        """:meth:`observe` for a typed model (:mod:`binance_ws.models`) of the stream's kind."""
        link_attr, final_attr = self.attrs
        link = getattr(obj, link_attr, None)
        final = getattr(obj, final_attr, None)
        if link is None or final is None:
            return OK
        return self.check(link, final)

    def observe_raw(self, data: bytes) -> Verdict:
        """:meth:`observe` for the payload's JSON bytes, read without decoding all of it (see
        :meth:`read_raw`)."""
        ids = self.read_raw(data)
        if ids is None:
            return OK
        return self.check(ids[0], ids[1])

    @abstractmethod
    def read_raw(self, data: bytes) -> Ids:
        """The (link, final) ids of a payload's JSON bytes, or None if it has none; raises ValueError
        (msgspec's DecodeError is one) for a payload whose ids cannot be read."""

    def position(self, data: bytes) -> int | None:
        """The final id of a payload's JSON bytes (its place in the stream), or None; raises as
        :meth:`read_raw`."""
        ids = self.read_raw(data)
        return None if ids is None else ids[1]

    def is_seen(self, final: int, last: int) -> bool:
        """Whether an event ending at ``final`` is one already taken when tracking is at ``last``: the
        duplicate range of the module docstring."""
        return last - self.window < final <= last

    def check(self, link: int, final: int) -> Verdict:
        """The verdict for an event with these ids; advances the state (see the module docstring)."""
        last = self.last
        if last is None:
            self.last = final
            return OK
        if final <= last:
            if final > last - self.window:
                behind = self._behind
                if behind is not None and self._behind_at == last and self._links(link, behind):
                    self._behind = self._behind_at = None
                    self.last = final
                    return reset(last, final, behind)
                self._behind, self._behind_at = final, last
                return DUPLICATE
            self._behind = self._behind_at = None
            self.last = final
            return reset(last, final)
        self.last = final
        if final - last > self.max_jump:
            return reset(last, final)
        return self._missing(link, last)

    @abstractmethod
    def _links(self, link: int, previous: int) -> bool:
        """Whether an event with ``link`` comes right after one whose final id is ``previous``."""

    @abstractmethod
    def _missing(self, link: int, last: int) -> Verdict:
        """OK, or the gap before an event with ``link`` ahead of ``last``."""

    def reset(self) -> None:
        """Forget the sequence (a fresh start: the next event is accepted as it comes)."""
        self.last = None
        self._behind = self._behind_at = None

    @staticmethod
    def for_stream(name: str, market: Market = SPOT) -> SequenceTracker | None:
        """The tracker for stream ``name`` on ``market``, or None for streams without a sequence
        (tickers, klines, partial books, book ticker which is conflated): the product declares which
        ids each kind carries (``Kind.ids``), the market's ``sequence_rule`` how depth chains. Raises
        InvalidStreamError for an invalid name."""
        info = parse_stream(name, market)
        declared = market.product.kind(info.kind)
        ids = None if declared is None else declared.ids
        if ids == "t":
            return TradeTracker()
        if ids == "a":
            return AggTradeTracker()
        if ids == "depth":
            return SpotDepthTracker() if market.sequence_rule.contiguous else FuturesDepthTracker()
        return None


def id_reader(key: str) -> Callable[[bytes], Any]:
    """A decoder of a payload's bytes to an object whose ``n`` is the integer at ``key`` (None if
    absent). msgspec skips every other key without building anything: measured cheaper than a byte scan
    and ``int()`` for a trade payload, and it reads any key order and spacing."""
    ids = msgspec.defstruct(f"Ids_{key}", [("n", int | None, msgspec.field(default=None, name=key))],
                            gc=False)
    return msgspec.json.Decoder(ids).decode


class _IdSequence(SequenceTracker):
    """Events numbered one by one in the field named by the class's ``key``. The router inlines the
    in-order case with that key (``attr`` for typed models, :attr:`read_id` for raw bytes) on its
    single-subscriber feeds, so :meth:`check` runs per message only for the rare cases or where several
    subscribers share a stream."""

    __slots__ = ()
    #: The payload field holding the id, and the typed model's attribute for it.
    key: ClassVar[str]
    attr: ClassVar[str]
    #: Decodes a payload's bytes to an object whose ``n`` is the id (see :func:`id_reader`).
    read_id: ClassVar[Callable[[bytes], Any]]
    #: One symbol's trades: a re-delivery or a reorder is a few ids back; a numbering restart is not
    #: within ten thousand trades of where it was.
    window = 10_000
    #: A billion trades of one symbol (BTCUSDT made about 3.7 billion in seven years).
    max_jump = 1_000_000_000

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.fields = (cls.key, cls.key)
        cls.attrs = (cls.attr, cls.attr)
        cls.read_id = staticmethod(id_reader(cls.key))

    def observe(self, payload: dict[str, Any]) -> Verdict:
        # The in-order case first, without the generic two-id path: the wrapped and shared dict feeds
        # call this per message.
        try:
            n = payload[self.key]
        except KeyError:
            return OK
        last = self.last
        if last is not None and n == last + 1:
            self.last = n
            return OK
        return self.check(n, n)

    def read_raw(self, data: bytes) -> Ids:
        n = type(self).read_id(data).n
        return None if n is None else (n, n)

    def _links(self, link: int, previous: int) -> bool:
        return link == previous + 1

    def _missing(self, link: int, last: int) -> Verdict:
        if link == last + 1:
            return OK
        return gap(last + 1, link - 1)


class TradeTracker(_IdSequence):
    """Trades: ``t`` counts up by one per trade of a symbol (PROTOCOL 4.2)."""

    __slots__ = ()
    key = "t"
    attr = "trade_id"


class AggTradeTracker(_IdSequence):
    """Aggregate trades: ``a`` counts up by one per aggregate trade of a symbol (PROTOCOL 4.1)."""

    __slots__ = ()
    key = "a"
    attr = "agg_trade_id"


_Search = Callable[[bytes], re.Match[bytes] | None]


def _int_after(key: bytes) -> _Search:
    """A search for the integer value of JSON key ``key`` in payload bytes."""
    return re.compile(rb'"' + key + rb'":\s*(-?\d+)').search


class _DepthSequence(SequenceTracker):
    """Diff depth: the ids are read from raw bytes with a search for each key, not a decoder: they come
    before the price levels, which a decoder would have to skip (some 24 µs for a 700-level event
    against 0.5 µs for the search)."""

    __slots__ = ()
    #: Searches for the (link, final) keys' integer values.
    _search: ClassVar[tuple[_Search, _Search]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._search = (_int_after(cls.fields[0].encode()), _int_after(cls.fields[1].encode()))

    def read_raw(self, data: bytes) -> Ids:
        link_search, final_search = self._search
        link = link_search(data)
        final = final_search(data)
        if link is None or final is None:
            return None
        return int(link[1]), int(final[1])


class SpotDepthTracker(_DepthSequence):
    """Spot diff depth: event ``U..u`` follows when ``U <= last + 1 <= u`` (PROTOCOL 5.1)."""

    __slots__ = ()
    fields = ("U", "u")
    attrs = ("first_update_id", "final_update_id")
    #: Update ids of one symbol: a busy book moves some thousands an event; a re-delivery or a reorder
    #: is a few events back.
    window = 1_000_000
    max_jump = 1_000_000_000_000

    def _links(self, link: int, previous: int) -> bool:
        return link == previous + 1

    def _missing(self, link: int, last: int) -> Verdict:
        # The event's range ends past last (checked before); it starts at or before last + 1, or after.
        if link > last + 1:
            return gap(last + 1, link - 1)
        return OK


class FuturesDepthTracker(_DepthSequence):
    """Futures diff depth: event follows when its ``pu`` equals the last ``u`` (PROTOCOL 5.2)."""

    __slots__ = ()
    fields = ("pu", "u")
    attrs = ("prev_final_update_id", "final_update_id")
    #: Update ids are shared by every symbol: tens of thousands an event in the recordings (PROTOCOL 5.2).
    window = 100_000_000
    max_jump = 1_000_000_000_000_000

    def _links(self, link: int, previous: int) -> bool:
        return link == previous

    def _missing(self, link: int, last: int) -> Verdict:
        # pu below last (an overlapping event) carries absolute quantities and is harmless; only events
        # chained to an id we never saw mean some were lost, somewhere in last+1..pu.
        if link > last:
            return gap(last + 1, link)
        return OK
