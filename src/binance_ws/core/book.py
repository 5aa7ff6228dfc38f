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
"""

from __future__ import annotations

import enum
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Literal

ValueType = Literal["float", "decimal", "str"]

#: Converters from Binance's wire strings to the value type a caller chose.
_CONVERTERS: dict[str, Callable[[str], Any]] = {"float": float, "decimal": Decimal, "str": str}

_NEG_INF = float("-inf")

Level = tuple[Any, Any]
#: A level as it comes off the wire: ``[price, qty]`` strings (PROTOCOL 4.12 / 5.1).
WireLevel = Sequence[str]


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
        conv, sign = self.conv, self.sign
        table: dict[float, Level] = {}
        for p, q in levels:
            if float(q) != 0.0:
                table[sign * float(p)] = (conv(p), conv(q))
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
# the loop carries no sign arithmetic, and ``float`` values are stored without converting twice.
def _apply_bids(side: _Side, levels: Iterable[WireLevel]) -> None:
    """Set each bid level to its absolute quantity; 0 deletes (deleting an absent level is normal)."""
    table, keys, lo, conv = side.levels, side.keys, side.lo, side.conv
    is_float = conv is float
    for p, q in levels:
        k = float(p)
        if k < lo:
            continue
        qf = float(q)
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
        k = -pf
        if k < lo:
            continue
        qf = float(q)
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
        """Replace the whole book with a REST snapshot taken with ``limit`` levels per side."""
        self._bids.load(bids, limit)
        self._asks.load(asks, limit)
        self.update_id = update_id
        self.update_time = update_time

    def apply(self, bids: Iterable[WireLevel], asks: Iterable[WireLevel]) -> None:
        """Apply one diff event's level lists (absolute quantities, 0 deletes)."""
        _apply_bids(self._bids, bids)
        _apply_asks(self._asks, asks)

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
