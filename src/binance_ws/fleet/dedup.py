"""Which message of a stream is new: the rule every redundant writer applies, atomically, in Redis.

Binance gives most streams an id; a message's :class:`DedupKey` is read from its payload:

| stream | ``last`` (its id) | ``prev`` (the id the message before it ended at) |
|---|---|---|
| ``<s>@trade`` | ``t`` | ``t - 1`` (trade ids of a symbol are consecutive) |
| ``<s>@aggTrade`` | ``a`` | ``a - 1`` |
| ``<s>@depth`` / ``@depth@100ms`` (diff) | ``u`` | ``pu`` (futures) or ``U - 1`` (spot) |
| ``<s>@depth<N>`` (partial), ``<s>@bookTicker`` | ``lastUpdateId`` / ``u`` | none: ids skip |
| anything else (klines, tickers, ``!…@arr``) | none | none: event time ``E`` + a content digest |

Ids and ``E`` are read from the bytes (the first ``"t":<digits>`` and so on: Binance's compact JSON has
them at the top level; an array stream's ``E`` is its first element's), by the script in Redis itself;
:func:`dedup_key` reads them the same way here.

The rule (:meth:`DedupState.offer`; ``sinks/redis.py`` runs the same in Lua, one script call per batch):

* an id'd message is **new** when its id is past the stream's last stored id; **a duplicate** when it is
  not, or when its event time is older than the last stored one's (a lagging writer's copy);
* ids going **backwards with the event time going forwards** is Binance resetting a stream's ids (a
  symbol relisted, a book rebuilt): new, and the stored id restarts from it;
* a message whose ``prev`` is past the stored id leaves a **gap**: it is **held** (not stored) unless
  forced, because another writer may still be about to store the messages in between (a fleet member
  that has just joined sees its first message before the old owner's last ones land). The writer offers
  held messages again a moment later, forced, once nobody has filled the gap;
* an id-less message is new when its event time is past the last stored one, or equal to it with a
  digest not yet seen at that time.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final, NamedTuple

#: Statuses of an offered message.
DUPLICATE: Final = 0
ADDED: Final = 1
HELD: Final = 2

#: Digests kept per id-less stream (those seen at its latest event time; bounds a stream without ``E``).
MAX_DIGESTS: Final = 32

_PARTIAL_DEPTH = re.compile(r"depth\d+(@\d+ms)?")
_DIFF_DEPTH = re.compile(r"depth(@\d+ms)?")


class DedupKey(NamedTuple):
    """What the dedup rule reads of one message (see the module's table)."""

    #: The id the stream's previous message ended at, where ids are consecutive (None: they skip).
    prev: int | None
    #: The message's id (None: an id-less stream).
    last: int | None
    #: Event time in ms (0 where the payload has none).
    event_ms: int
    #: Content digest of an id-less message ("" for id'd ones).
    digest: str


def key_of(market: str, stream: str) -> str:
    """The Redis stream key of a Binance stream: ``binance:<market>:<stream name>``."""
    return f"binance:{market}:{stream}"


#: How each kind of stream is keyed (one byte a stream in the script's arguments).
KIND_NONE: Final = 0  # event time + digest
KIND_TRADE: Final = 1  # t; prev t - 1
KIND_AGG: Final = 2  # a; prev a - 1
KIND_DIFF: Final = 3  # u; prev U - 1 (spot)
KIND_ID: Final = 4  # lastUpdateId or u; ids skip
KIND_DIFF_PU: Final = 5  # u; prev pu, or U - 1 without one (futures)

# What the Lua script reads: the integer right after the first occurrence of a top-level key in Binance's
# compact JSON (values are plain integers, nested arrays hold only strings: a key cannot be matched
# inside another value).
_E = b'"E":'
_T = b'"t":'
_A = b'"a":'
_LOWER_U = b'"u":'
_UPPER_U = b'"U":'
_PU = b'"pu":'
_LAST_UPDATE = b'"lastUpdateId":'
_INT = re.compile(rb"-?\d+")


def kind_of(stream: str, futures: bool = False) -> int:
    """The ``KIND_*`` of ``stream`` by its name (``futures``: a USD-M or COIN-M stream)."""
    kind = stream.partition("@")[2]
    if kind == "trade":
        return KIND_TRADE
    if kind == "aggTrade":
        return KIND_AGG
    if _DIFF_DEPTH.fullmatch(kind):
        return KIND_DIFF_PU if futures else KIND_DIFF
    if _PARTIAL_DEPTH.fullmatch(kind) or kind == "bookTicker":
        return KIND_ID
    return KIND_NONE


def _num(key: bytes, data: bytes) -> int | None:
    i = data.find(key)
    if i < 0:
        return None
    m = _INT.match(data, i + len(key))
    return int(m.group()) if m else None


def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def dedup_key(stream: str, data: bytes, futures: bool = False) -> DedupKey:
    """The :class:`DedupKey` of one payload of ``stream`` (its bytes as received), read as the Lua script
    reads it. A payload without its stream's id is keyed like an id-less one (stored once, never lost)."""
    kind = kind_of(stream, futures)
    event = _num(_E, data) or 0
    last: int | None = None
    prev: int | None = None
    if kind == KIND_TRADE:
        last = _num(_T, data)
        prev = None if last is None else last - 1
    elif kind == KIND_AGG:
        last = _num(_A, data)
        prev = None if last is None else last - 1
    elif kind in (KIND_DIFF, KIND_DIFF_PU):
        last = _num(_LOWER_U, data)
        prev = _num(_PU, data) if kind == KIND_DIFF_PU else None
        if prev is None:
            upper = _num(_UPPER_U, data)
            prev = None if upper is None else upper - 1
    elif kind == KIND_ID:
        last = _num(_LAST_UPDATE, data)
        if last is None:
            last = _num(_LOWER_U, data)
    if last is None:
        return DedupKey(None, None, event, _digest(data))
    return DedupKey(prev, last, event, "")


@dataclass(slots=True)
class DedupState:
    """One stream's dedup state, and the rule (the reference for the Lua script in ``sinks/redis.py``)."""

    last: int | None = None
    event_ms: int = 0
    digests: list[str] = field(default_factory=list)

    def offer(self, key: DedupKey, force: bool = False) -> int:
        """:data:`ADDED` (and the state moves on), :data:`DUPLICATE` or :data:`HELD`."""
        if key.last is not None:
            if self.last is None:
                status = ADDED
            elif key.event_ms < self.event_ms:
                status = DUPLICATE
            elif key.last <= self.last:
                status = ADDED if key.event_ms > self.event_ms else DUPLICATE  # backwards in time: a reset
            elif key.prev is not None and key.prev > self.last and not force:
                status = HELD
            else:
                status = ADDED
            if status == ADDED:
                self.last = key.last
                self.event_ms = key.event_ms
            return status
        if key.event_ms > self.event_ms or not self.digests:
            self.event_ms = key.event_ms
            self.digests = [key.digest]
            return ADDED
        if key.event_ms == self.event_ms and key.digest not in self.digests:
            self.digests = [*self.digests, key.digest][-MAX_DIGESTS:]
            return ADDED
        return DUPLICATE
