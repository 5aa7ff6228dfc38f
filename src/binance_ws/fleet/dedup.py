"""Which message of a stream is new: the rule every redundant writer applies, atomically, in Redis.

Binance gives most streams an id; a message's :class:`DedupKey` is read from its payload:

| stream | ``last`` (its id) | ``prev`` (the id the message before it ended at) |
|---|---|---|
| ``<s>@trade`` | ``t`` | ``t - 1`` (trade ids of a symbol are consecutive) |
| ``<s>@aggTrade`` | ``a`` | ``a - 1`` |
| ``<s>@depth`` / ``@depth@100ms`` (diff) | ``u`` | ``pu`` (futures) or ``U - 1`` (spot) |
| ``<s>@depth<N>`` (partial), ``<s>@bookTicker`` | ``lastUpdateId`` / ``u`` | none: ids skip |
| anything else (klines, tickers, ``!…@arr``) | none | none: event time ``E`` + a content digest |

Ids and ``E`` are the payload's top-level JSON fields (integers; ``E`` is 0 where there is none), read by
the writer (:func:`fast_keys`: a whole batch of one stream as one JSON array, through msgspec) and handed
to the script in Redis as numbers. A payload without its stream's id (or that is no JSON object) is keyed
like an id-less one: ``E`` is then the first ``"E":<digits>`` in its bytes (an array stream's is its
first element's) and the digest is of its bytes.

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
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import msgspec

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

# An id-less payload's event time: the integer right after the first "E": in its bytes.
_E: Final = b'"E":'
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
    """The :class:`DedupKey` of one payload of ``stream`` (its bytes as received). A payload without its
    stream's id is keyed like an id-less one (stored once, never lost)."""
    return key_by_kind(kind_of(stream, futures), data)


class _Trade(msgspec.Struct):
    E: int = 0
    t: int | None = None


class _Agg(msgspec.Struct):
    E: int = 0
    a: int | None = None


class _Diff(msgspec.Struct):
    E: int = 0
    U: int | None = None
    u: int | None = None
    pu: int | None = None


class _Id(msgspec.Struct):
    E: int = 0
    lastUpdateId: int | None = None  # Binance's field name
    u: int | None = None


_ShapeT = _Trade | _Agg | _Diff | _Id
_SHAPES: Final[dict[int, type[_ShapeT]]] = {
    KIND_TRADE: _Trade, KIND_AGG: _Agg, KIND_DIFF: _Diff, KIND_DIFF_PU: _Diff, KIND_ID: _Id}
_ONE: Final = {k: msgspec.json.Decoder(t) for k, t in _SHAPES.items()}
_MANY: Final[dict[int, Any]] = {k: msgspec.json.Decoder(list[t])  # type: ignore[valid-type]
                                 for k, t in _SHAPES.items()}


def _ids(kind: int, m: Any) -> tuple[int | None, int | None]:
    """(prev, last) of a decoded payload of ``kind``."""
    if kind == KIND_TRADE:
        return (None, None) if m.t is None else (m.t - 1, m.t)
    if kind == KIND_AGG:
        return (None, None) if m.a is None else (m.a - 1, m.a)
    if kind == KIND_ID:
        return None, m.lastUpdateId if m.lastUpdateId is not None else m.u
    if m.u is None:
        return None, None
    if kind == KIND_DIFF_PU and m.pu is not None:
        return m.pu, m.u
    return (None if m.U is None else m.U - 1), m.u


def key_by_kind(kind: int, data: bytes) -> DedupKey:
    """:func:`dedup_key` for a stream of ``kind`` (``KIND_*``)."""
    decoder = _ONE.get(kind)
    if decoder is not None:
        try:
            m = decoder.decode(data)
        except msgspec.DecodeError:
            pass
        else:
            prev, last = _ids(kind, m)
            if last is not None:
                return DedupKey(prev, last, m.E, "")
    return DedupKey(None, None, _num(_E, data) or 0, _digest(data))


_GET_E: Final = operator.attrgetter("E")
_GET_ID: Final = {KIND_TRADE: operator.attrgetter("t"), KIND_AGG: operator.attrgetter("a"),
                  KIND_DIFF: operator.attrgetter("u"), KIND_DIFF_PU: operator.attrgetter("u")}
_GET_U: Final = operator.attrgetter("U")
_GET_PU: Final = operator.attrgetter("pu")


def fast_keys(kind: int, datas: list[bytes]) -> tuple[list[int], list[int], list[int]] | None:
    """Event times, ids and prevs of ``datas`` (a stream of ``kind`` whose ids chain), decoded as one
    JSON array, when every payload has its stream's ids (else None: :func:`key_by_kind` one at a time)."""
    get_id = _GET_ID.get(kind)
    if get_id is None or not datas:
        return None
    try:
        # One element a payload: a payload giving two would need another giving none, which is no JSON.
        decoded: list[Any] = _MANY[kind].decode(b"[" + b",".join(datas) + b"]")
    except msgspec.DecodeError:
        return None
    if len(decoded) != len(datas):
        return None
    ids: list[Any] = list(map(get_id, decoded))
    if None in ids:
        return None
    if kind == KIND_DIFF_PU:
        prevs: list[Any] = list(map(_GET_PU, decoded))
    elif kind == KIND_DIFF:
        prevs = list(map(_GET_U, decoded))
        if None in prevs:
            return None
        prevs = [u - 1 for u in prevs]
    else:
        prevs = [t - 1 for t in ids]
    if None in prevs:
        return None
    return list(map(_GET_E, decoded)), ids, prevs


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
