"""Which message of a stream is new: the rule every redundant writer applies, atomically, in Redis.

Binance gives most streams an id; a message's :class:`DedupKey` is read from its payload:

| stream | ``last`` (its id) | ``prev`` (the id the message before it ended at) |
|---|---|---|
| ``<s>@trade`` | ``t`` | ``t - 1`` (trade ids of a symbol are consecutive) |
| ``<s>@aggTrade`` | ``a`` | ``a - 1`` |
| ``<s>@depth`` / ``@depth@100ms`` (diff) | ``u`` | ``pu`` (futures) or ``U - 1`` (spot) |
| ``<s>@depth<N>`` (partial), ``<s>@bookTicker`` | ``lastUpdateId`` / ``u`` | none: ids skip |
| anything else (klines, tickers, ``!…@arr``) | none | none: event time ``E`` + a content digest |

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

import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import orjson

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


def _event_ms(payload: Any) -> int:
    if isinstance(payload, dict):
        e = payload.get("E", 0)
        return e if isinstance(e, int) else 0
    if isinstance(payload, list):  # !miniTicker@arr and the like: the newest element's time
        return max((x.get("E", 0) for x in payload if isinstance(x, dict) and isinstance(x.get("E"), int)),
                   default=0)
    return 0


def _digest(data: bytes) -> str:
    return format(zlib.crc32(data), "x")


def dedup_key(stream: str, data: bytes) -> DedupKey:
    """The :class:`DedupKey` of one payload of ``stream`` (its bytes as received)."""
    kind = stream.partition("@")[2]
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return DedupKey(None, None, 0, _digest(data))  # stored once, like any id-less message
    event = _event_ms(payload)
    if isinstance(payload, dict):
        try:
            if kind == "trade":
                t = int(payload["t"])
                return DedupKey(t - 1, t, event, "")
            if kind == "aggTrade":
                a = int(payload["a"])
                return DedupKey(a - 1, a, event, "")
            if _DIFF_DEPTH.fullmatch(kind):
                prev = int(payload["pu"]) if "pu" in payload else int(payload["U"]) - 1
                return DedupKey(prev, int(payload["u"]), event, "")
            if _PARTIAL_DEPTH.fullmatch(kind) or kind == "bookTicker":
                ident = payload.get("lastUpdateId", payload.get("u"))
                if isinstance(ident, int):
                    return DedupKey(None, ident, event, "")
        except (KeyError, TypeError, ValueError):
            pass  # not the shape its stream promises: kept by content, never dropped
    return DedupKey(None, None, event, _digest(data))


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
