"""The local order book: price levels per side, kept sorted incrementally, read best-first without sorting.

Pure data structure, no I/O. :class:`DepthCache` is what callers read (the object a depth-cache manager
hands out); :mod:`binance_ws.core.booksync` decides when it is right and feeds it.

Layout of one side: a dict ``key -> (price, qty)`` and a list of the keys kept ascending with ``bisect``.
The key is the price as a float (negated on the ask side), so the best level of both sides sits at the
*end* of the list: most activity happens near the top of the book, and inserting or deleting near the end
of a Python list moves few pointers. Reading the top N is a slice of the key list, never a sort, and the
stored ``(price, qty)`` tuples are returned as they are, so a read allocates only the result list.

Keys are floats, never strings: ``"10.0" < "9.0"`` as strings. Every distinct price with at most 15
significant digits (all Binance prices) maps to a distinct float, and equal prices written differently
(``"7.6110"`` / ``"7.611"``) map to the same key, which is what a book needs.

Known range: a REST snapshot of ``limit`` levels says nothing about the levels beyond its worst price
(PROTOCOL 5.1: "levels beyond the snapshot are unknown until they change"). A side whose snapshot came back
full therefore records that worst price as its boundary, and diff updates beyond it are ignored: keeping
them would show a level while hiding unknown levels between it and the boundary. A side that came back
short of ``limit`` is complete. :meth:`OrderBook.trim` moves the boundary inwards, by price.

Bad numbers: a price must be a finite number above 0 and a quantity a finite number of at least 0. A level
that is not (``"nan"``, ``"inf"``, ``"-1"``, ``"abc"``, ``null``, not a ``[price, qty]`` pair) is refused with
:class:`MalformedLevel` before it touches the sorted keys: a NaN key would break ``bisect`` for good. The
check rides on the ``float()`` parse the appliers do anyway (one chained comparison per value), so it is
cheap; the price of that is that it is not transactional: levels of the same event listed before the bad
one are already applied when it is refused, so the caller must treat the book as no longer right
(:class:`~binance_ws.core.booksync.BookSync` resyncs). JSON numbers instead of strings are accepted as the
number they are (``value_type="str"`` then returns ``str()`` of it).
"""

from __future__ import annotations

import enum
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Literal

ValueType = Literal["float", "decimal", "str"]


def _decimal(value: Any) -> Decimal:
    """A wire value as a Decimal: a string exactly, a JSON number by its repr (not its binary value)."""
    return Decimal(value) if value.__class__ is str else Decimal(repr(value))


#: Converters from Binance's wire strings to the value type a caller chose.
_CONVERTERS: dict[str, Callable[[Any], Any]] = {"float": float, "decimal": _decimal, "str": str}

_NEG_INF = float("-inf")
_INF = float("inf")
#: What a failed parse or check of a wire level raises inside the appliers (then described by _refusal).
_PARSE_ERRORS = (TypeError, ValueError, ArithmeticError)

Level = tuple[Any, Any]
#: A level as it comes off the wire: ``[price, qty]`` strings (PROTOCOL 4.12 / 5.1).
WireLevel = Sequence[str]


class MalformedLevel(ValueError):
    """A level the book refused: ``side`` (``"bid"`` or ``"ask"``), the ``level`` as received, ``why``."""

    def __init__(self, side: str, level: object, why: str) -> None:
        super().__init__(f"{side} level {level!r}: {why}")
        self.side = side
        self.level = level
        self.why = why


def _refusal(side: str, levels: object) -> MalformedLevel | None:
    """The first level of ``levels`` the book refuses, described; None if all are fine. Error path only."""
    try:
        items = list(levels)  # type: ignore[call-overload]
    except TypeError:
        return MalformedLevel(side, levels, "the side is not a list of levels")
    for level in items:
        try:
            p, q = level
            pf, qf = float(p), float(q)
        except _PARSE_ERRORS:
            return MalformedLevel(side, level, "not a [price, quantity] pair of numbers")
        if not 0.0 < pf < _INF:
            return MalformedLevel(side, level, "price is not a finite number above 0")
        if not 0.0 <= qf < _INF:
            return MalformedLevel(side, level, "quantity is not a finite number of at least 0")
    return None


class BookState(enum.Enum):
    """Whether a book can be trusted (issue 4)."""

    #: No book yet: waiting for the stream and the first snapshot.
    SYNCING = "SYNCING"
    #: The book equals the exchange's book as of ``update_id``, and every later event is being applied.
    SYNCED = "SYNCED"
    #: The book was synced, then a gap, an integrity failure or a disconnect happened; it is still readable
    #: but frozen at ``update_id`` since ``stale_since`` while a new one is built.
    STALE = "STALE"
    #: Given up (the symbol does not exist, or the caller closed it).
    FAILED = "FAILED"


class _Side:
    """One side of a book. ``sign`` is +1 for bids (best = highest) and -1 for asks (best = lowest)."""

    __slots__ = ("conv", "keys", "levels", "lo", "sign")

    def __init__(self, sign: int, conv: Callable[[str], Any]) -> None:
        self.sign = sign
        self.conv = conv
        #: key -> (price, qty) in the caller's value type.
        self.levels: dict[float, Level] = {}
        #: keys ascending; the best level is last.
        self.keys: list[float] = []
        #: Keys below ``lo`` are outside the known range (see module docstring).
        self.lo = _NEG_INF

    def load(self, levels: Iterable[WireLevel], limit: int | None) -> None:
        """Replace the side; raises :class:`MalformedLevel` (leaving the side as it was) on a bad level."""
        conv, sign = self.conv, self.sign
        table: dict[float, Level] = {}
        try:
            for p, q in levels:
                pf, qf = float(p), float(q)
                if not (0.0 < pf < _INF and 0.0 <= qf < _INF):
                    raise ValueError
                if qf != 0.0:
                    table[sign * pf] = (conv(p), conv(q))
        except _PARSE_ERRORS:
            raise _refusal("bid" if sign > 0 else "ask", levels) or MalformedLevel(
                "bid" if sign > 0 else "ask", levels, "a value did not convert") from None
        self.levels = table
        self.keys = sorted(table)
        full = limit is not None and len(self.keys) >= limit
        self.lo = self.keys[0] if full and self.keys else _NEG_INF

    def top(self, limit: int | None) -> list[Level]:
        table, keys = self.levels, self.keys
        if limit is None:
            return [table[k] for k in reversed(keys)]
        if limit <= 0:
            return []
        return [table[k] for k in keys[: -limit - 1 : -1]]

    def best(self) -> Level | None:
        keys = self.keys
        return self.levels[keys[-1]] if keys else None

    def copy(self) -> _Side:
        twin = _Side(self.sign, self.conv)
        twin.levels = dict(self.levels)
        twin.keys = list(self.keys)
        twin.lo = self.lo
        return twin

    def trim(self, depth: int) -> None:
        excess = len(self.keys) - depth
        if excess <= 0:
            return
        table = self.levels
        for k in self.keys[:excess]:
            del table[k]
        del self.keys[:excess]
        # What was cut is no longer known: later updates out there must not come back as holes.
        self.lo = self.keys[0] if self.keys else self.lo


# The two appliers are the hot path (every level of every diff event); they are written out per side so
# the loop carries no sign arithmetic, and ``float`` values are stored without converting twice. The bad-
# number check is one chained comparison per value on the floats parsed anyway (False for NaN, inf,
# negatives); what fails raises a plain ValueError that OrderBook.apply turns into a MalformedLevel.
def _apply_bids(side: _Side, levels: Iterable[WireLevel]) -> None:
    """Set each bid level to its absolute quantity; 0 deletes (deleting an absent level is normal)."""
    table, keys, lo, conv = side.levels, side.keys, side.lo, side.conv
    is_float = conv is float
    for p, q in levels:
        k = float(p)
        qf = float(q)
        if not (0.0 < k < _INF and 0.0 <= qf < _INF):
            raise ValueError
        if k < lo:
            continue
        if qf == 0.0:
            if table.pop(k, None) is not None:
                del keys[bisect_left(keys, k)]
            continue
        if k not in table:
            insort(keys, k)
        table[k] = (k, qf) if is_float else (conv(p), conv(q))


def _apply_asks(side: _Side, levels: Iterable[WireLevel]) -> None:
    """As :func:`_apply_bids`, with keys negated so the lowest ask sorts last."""
    table, keys, lo, conv = side.levels, side.keys, side.lo, side.conv
    is_float = conv is float
    for p, q in levels:
        pf = float(p)
        qf = float(q)
        if not (0.0 < pf < _INF and 0.0 <= qf < _INF):
            raise ValueError
        k = -pf
        if k < lo:
            continue
        if qf == 0.0:
            if table.pop(k, None) is not None:
                del keys[bisect_left(keys, k)]
            continue
        if k not in table:
            insort(keys, k)
        table[k] = (pf, qf) if is_float else (conv(p), conv(q))


class OrderBook:
    """Bids and asks of one symbol with the update id they are valid at.

    ``value_type`` picks what prices and quantities are returned as: ``"float"`` (fastest), ``"decimal"``
    (exact arithmetic) or ``"str"`` (Binance's original strings, untouched). Raises ``ValueError`` for any
    other value type.
    """

    __slots__ = ("_asks", "_bids", "update_id", "update_time", "value_type")

    def __init__(self, value_type: ValueType = "float") -> None:
        try:
            conv = _CONVERTERS[value_type]
        except KeyError:
            raise ValueError(f"value_type must be one of {sorted(_CONVERTERS)}, not {value_type!r}") from None
        self.value_type = value_type
        self._bids = _Side(1, conv)
        self._asks = _Side(-1, conv)
        #: Binance update id the book is valid at (``lastUpdateId`` of the snapshot, then each event's ``u``).
        self.update_id = 0
        #: Event time (ms) of the last applied event, or of the snapshot if it carried one; 0 if unknown.
        self.update_time = 0

    # -- writing --------------------------------------------------------------------------------
    def load_snapshot(self, bids: Iterable[WireLevel], asks: Iterable[WireLevel], update_id: int,
                      *, limit: int | None = None, update_time: int = 0) -> None:
        """Replace the whole book with a REST snapshot taken with ``limit`` levels per side.

        Raises :class:`MalformedLevel` on a bad level; the book is then left half loaded: discard it."""
        self._bids.load(bids, limit)
        self._asks.load(asks, limit)
        self.update_id = update_id
        self.update_time = update_time

    def apply(self, bids: Iterable[WireLevel], asks: Iterable[WireLevel]) -> None:
        """Apply one diff event's level lists (absolute quantities, 0 deletes).

        Raises :class:`MalformedLevel` for a level that is not a ``[price, qty]`` pair of finite numbers
        (price above 0, quantity at least 0). The keys stay sorted and consistent, but the event's levels
        before the bad one are applied: the book no longer equals the exchange's (see the module docstring).
        """
        try:
            _apply_bids(self._bids, bids)
            _apply_asks(self._asks, asks)
        except _PARSE_ERRORS:
            raise (_refusal("bid", bids) or _refusal("ask", asks)
                   or MalformedLevel("bid/ask", (bids, asks), "a value did not convert")) from None

    def trim(self, depth: int) -> None:
        """Keep the ``depth`` best levels per side, cutting by price; what is cut becomes unknown."""
        self._bids.trim(depth)
        self._asks.trim(depth)

    # -- reading --------------------------------------------------------------------------------
    def get_bids(self, limit: int | None = None) -> list[Level]:
        """Bids as ``(price, qty)``, best (highest) first; the top ``limit`` only if given."""
        return self._bids.top(limit)

    def get_asks(self, limit: int | None = None) -> list[Level]:
        """Asks as ``(price, qty)``, best (lowest) first; the top ``limit`` only if given."""
        return self._asks.top(limit)

    def best_bid(self) -> Level | None:
        """The highest bid ``(price, qty)``, or None on an empty side. O(1)."""
        return self._bids.best()

    def best_ask(self) -> Level | None:
        """The lowest ask ``(price, qty)``, or None on an empty side. O(1)."""
        return self._asks.best()

    def crossed(self) -> bool:
        """Whether the best bid is at or above the best ask: impossible on a correct book."""
        bk, ak = self._bids.keys, self._asks.keys
        return bool(bk and ak and bk[-1] >= -ak[-1])

    def thin(self, min_levels: int) -> bool:
        """Whether a side known only down to a boundary holds fewer than ``min_levels`` levels: the
        market moved past what the snapshot covered, so the book no longer shows what it should."""
        bids, asks = self._bids, self._asks
        return ((bids.lo != _NEG_INF and len(bids.keys) < min_levels)
                or (asks.lo != _NEG_INF and len(asks.keys) < min_levels))

    def depth(self) -> tuple[int, int]:
        """Number of known (bid, ask) levels."""
        return len(self._bids.keys), len(self._asks.keys)

    def bounds(self) -> tuple[float | None, float | None]:
        """Worst known (bid, ask) price, or None for a side known in full (see the module docstring)."""
        blo, alo = self._bids.lo, self._asks.lo
        return (None if blo == _NEG_INF else blo, None if alo == _NEG_INF else -alo)


class DepthCache(OrderBook):
    """The book a caller reads: an :class:`OrderBook` plus its symbol and whether it can be trusted.

    ``state`` is a :class:`BookState`; while it is ``STALE``, ``stale_since`` (epoch seconds) and
    ``stale_reason`` say since when and why, and the levels are the last good ones. The sync machine swaps
    in a fresh book's levels in one step when it is synced again, so a reader never sees a half-built book.
    """

    __slots__ = ("stale_reason", "stale_since", "state", "symbol")

    def __init__(self, symbol: str, value_type: ValueType = "float") -> None:
        super().__init__(value_type)
        self.symbol = symbol
        self.state = BookState.SYNCING
        self.stale_since: float | None = None
        self.stale_reason: str | None = None

    def copy(self) -> DepthCache:
        """An independent copy of the book and its state, e.g. to hand to another thread: the original
        keeps changing on the event loop, the copy never does. O(levels)."""
        twin = DepthCache(self.symbol, self.value_type)
        twin._bids, twin._asks = self._bids.copy(), self._asks.copy()
        twin.update_id, twin.update_time = self.update_id, self.update_time
        twin.state, twin.stale_since, twin.stale_reason = self.state, self.stale_since, self.stale_reason
        return twin

    def adopt(self, book: OrderBook) -> None:
        """Take over ``book``'s levels and ids (``book`` must not be used afterwards)."""
        self._bids, self._asks = book._bids, book._asks
        self.update_id, self.update_time = book.update_id, book.update_time

    def __repr__(self) -> str:
        nb, na = self.depth()
        return (f"<DepthCache {self.symbol} {self.state.value} update_id={self.update_id} "
                f"bids={nb} asks={na} best={self.best_bid()}/{self.best_ask()}>")
