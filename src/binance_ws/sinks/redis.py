"""Redis Streams sink and reader: each Binance stream goes to one Redis stream.

Layout (``market`` is the product's name: ``spot``, ``usdm``, ``coinm``):

* ``binance:<market>:<stream name>`` (e.g. ``binance:spot:btcusdt@trade``): a Redis stream, one entry a
  message, fields ``d`` (the payload bytes as received) and ``r`` (local receive time, ns since the
  epoch, decimal). Trimmed approximately (``MAXLEN ~``) to about ``maxlen`` entries.
* ``{binance:<market>:<stream name>}:dedup``: a small hash, the stream's de-duplication state
  (:mod:`binance_ws.fleet.dedup`): what lets any number of redundant writers store each message once.
  Its hash tag is the stream's key, so both are in one Redis Cluster hash slot.
* ``binance:<market>:events``: markers (gaps, resets, reconnects, backfills), fields ``k`` (kind), ``d``
  (the event as JSON), ``w`` (the writer's name), ``r`` (its time, ns).

:class:`RedisSink` (a :class:`~binance_ws.sinks.base.Sink`) gathers what every pump hands it during one
event-loop turn into one flush (one in flight at a time). It reads each message's ids itself (one JSON
decode per stream and flush, :func:`binance_ws.fleet.dedup.fast_keys`); then one Lua script call
(``EVALSHA``) per chunk of whole streams, sent as soon as it is packed, applies the dedup rule to those
numbers and ``XADD``\\ s only the new messages, atomically, so writers never race. On Redis Cluster
(a ``redis.asyncio.cluster.RedisCluster`` client) a chunk holds the streams of one hash slot only.
A message that leaves a gap is held briefly (``hold_s``) in case another writer fills it; then (with a
``backfill``, for trades) the gap is fetched over REST and stored first; then it is stored anyway.

:class:`RedisReader` consumes with a consumer group (``XREADGROUP``, ``XACK``; on start it re-reads its
own pending entries and claims other consumers' entries idle past ``claim_idle_ms``) and yields messages
the way a subscription does: dicts, typed models or :class:`~binance_ws.engine.delivery.RawMessage`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import operator
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Final, Protocol

import orjson

from binance_ws import errors
from binance_ws.engine.delivery import RawMessage
from binance_ws.fleet.dedup import dedup_key, fast_keys, key_by_kind, key_of, kind_of
from binance_ws.fleet.outage import DEFAULT_OUTAGE_S, Outage
from binance_ws.sinks.base import Entry, Marker

log = logging.getLogger(__name__)

#: Entries each Redis stream keeps, about (``XADD MAXLEN ~``); 0 keeps everything.
DEFAULT_MAXLEN: Final = 1_000_000
#: Seconds a message that leaves a gap waits for another writer to fill it before it is stored anyway.
DEFAULT_HOLD_S: Final = 0.25
#: Most messages one script call takes (a chunk holds whole streams: a stream's order decides holds).
CHUNK: Final = 2048
#: Markers kept in ``binance:<market>:events``.
EVENTS_MAXLEN: Final = 100_000

# One call per chunk, seven arguments whatever its size (encoding thousands of small arguments costs the
# client more than the server's work). The writer reads each message's ids (fleet/dedup.py fast_keys,
# key_by_kind) and hands them over as numbers, so the script reads no JSON (Redis, one thread shared by a
# whole fleet, does the least): it applies the rule, XADDs the new messages and trims each stream once a
# call (XTRIM MAXLEN ~: the same approximate trim as XADD's, without three more arguments a message).
# KEYS: per stream, its Redis stream and its dedup state (dedup_key_of: the same hash slot). ARGV: [1]
# maxlen ("0": no trim); [2] the payloads end to end, grouped by stream in KEYS order; [3] their lengths
# (little-endian uint32); [4] their receive times, 19 digits each; [5] how many each stream has
# (little-endian uint32); [6] each one's flags (FORCE: store past a gap; FLOOR: never older than what is
# stored, for backfilled trades whose E is only their trade time; HAS_ID: ids given; HAS_PREV: its prev
# too); [7] each one's event time, id and prev (three little-endian doubles: exact below 2^53). Returns
# {messages added, then the index of each held message, and -index, first missing id, last missing id
# for each stored past a gap}. The rule is fleet/dedup.py DedupState.offer's.
_WRITE_LUA: Final = """
local maxlen, blob, lens, times, counts, flagstr, ids = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  ARGV[6], ARGV[7]
local out = {0}
local off, i, n = 1, 0, 1
local sub, byte, find, unpack, call = string.sub, string.byte, string.find, struct.unpack, redis.call
local trim = maxlen ~= '0'
for k = 1, #counts / 4 do
  local stream = KEYS[2 * k - 1]
  local v = call('HMGET', KEYS[2 * k], 'l', 'e', 'h')
  local sl, se, sh, dirty, held = tonumber(v[1]), tonumber(v[2]) or 0, v[3] or '', false, false
  for _ = 1, unpack('<I4', counts, 4 * k - 3) do
    i = i + 1
    local from = off
    off = off + unpack('<I4', lens, 4 * i - 3)
    local status = 0
    if held then
      status = 2
    else
      local f = byte(flagstr, i)
      local e, last, prev = unpack('<ddd', ids, 24 * i - 23)
      if f % 4 >= 2 and e < se then e = se end
      if f >= 4 then
        if sl == nil then status = 1
        elseif e < se then status = 0
        elseif last <= sl then
          if e > se then status = 1 end
        elseif f >= 8 and prev > sl then
          if f % 2 == 0 then
            status = 2
          else  -- stored past a gap nobody filled: said so (its first and last missing ids)
            status = 1
            out[n + 1] = -i
            out[n + 2] = sl + 1
            out[n + 3] = prev
            n = n + 3
          end
        else status = 1 end
        if status == 1 then sl = last; se = e; dirty = true end
      else
        local h = sub(redis.sha1hex(sub(blob, from, off - 1)), 1, 16)
        if e > se or sh == '' then
          status = 1; se = e; sh = h; dirty = true
        elseif e == se and find(sh, h, 1, true) == nil then
          status = 1; dirty = true
          sh = sh .. ',' .. h
          if #sh > 32 * 17 then sh = sub(sh, #sh - 32 * 17 + 2) end
        end
      end
    end
    if status == 1 then
      call('XADD', stream, '*', 'd', sub(blob, from, off - 1), 'r', sub(times, i * 19 - 18, i * 19))
      out[1] = out[1] + 1
    elseif status == 2 then
      held = true
      n = n + 1
      out[n] = i
    end
  end
  if dirty then
    if trim then call('XTRIM', stream, 'MAXLEN', '~', maxlen) end
    if sl then
      call('HSET', KEYS[2 * k], 'l', string.format('%d', sl), 'e', string.format('%d', se), 'h', sh)
    else
      call('HSET', KEYS[2 * k], 'e', string.format('%d', se), 'h', sh)
    end
  end
end
return out
"""

#: Flags of a message in a script call.
FORCE: Final = 1
FLOOR: Final = 2
HAS_ID: Final = 4
HAS_PREV: Final = 8
_ID_PREV: Final = bytes([HAS_ID | HAS_PREV])


def message_ids(kind: int, datas: list[bytes], ids: array[float], flags: bytearray) -> None:
    """Append the script's numbers (event time, id, prev: three a message) and id flags of ``datas`` (a
    stream of ``kind``) to ``ids`` and ``flags``."""
    n = len(datas)
    fast = fast_keys(kind, datas)
    if fast is not None:
        part = array("d", bytes(24 * n))
        part[0::3], part[1::3], part[2::3] = (array("d", column) for column in fast)
        ids += part
        flags += _ID_PREV * n
        return
    for key in map(partial(key_by_kind, kind), datas):
        last, prev = key.last, key.prev
        if last is None:
            ids.extend((key.event_ms, 0, 0))
            flags.append(0)
        elif prev is None:
            ids.extend((key.event_ms, last, 0))
            flags.append(HAS_ID)
        else:
            ids.extend((key.event_ms, last, prev))
            flags.append(HAS_ID | HAS_PREV)


def pack_messages(streams: Sequence[str], items: Sequence[tuple[int, bytes, int, int]],
                  futures: bool = False) -> tuple[bytes, ...]:
    """The script's ARGV[2..7] for ``(stream index, payload, receive ns, flags)`` messages of
    ``streams`` (index 1 is ``streams[0]``; ``futures``: USD-M or COIN-M streams), grouped by stream in
    index order (raises ValueError otherwise)."""
    counts = array("I", bytes(4 * len(streams)))
    last = 0
    for i, _, _, _ in items:
        if i < last:
            raise ValueError("messages must come grouped by stream, in index order")
        counts[i - 1] += 1
        last = i
    ids = array("d")
    flags = bytearray()
    for i, data, _, f in items:
        message_ids(kind_of(streams[i - 1], futures), [data], ids, flags)
        flags[-1] |= f
    lens = array("I", [len(data) for _, data, _, _ in items])
    if sys.byteorder == "big":
        for a in (lens, counts, ids):
            a.byteswap()
    return (b"".join([data for _, data, _, _ in items]), lens.tobytes(),
            _times([r for _, _, r, _ in items]), counts.tobytes(), bytes(flags), ids.tobytes())


def _times(received: list[int]) -> bytes:
    """Receive times, 19 digits each (ns since the epoch: 19 digits from 2001 to 2286)."""
    out = (b"%019d" * len(received)) % tuple(received)
    if len(out) != 19 * len(received):
        raise ValueError("a receive time is not between 0 and 10^19 ns")
    return out


_DATA: Final = operator.itemgetter(2)  # Entry.data
_RECEIVED: Final = operator.itemgetter(0)  # Entry.received_ns


def dedup_key_of(stream_key: str) -> str:
    """The dedup state's key of a Redis stream: ``{<stream key>}:dedup``, whose hash tag puts it in the
    stream's hash slot (a key without braces hashes whole), so a script touching both is Redis Cluster
    safe."""
    return "{" + stream_key + "}:dedup"


def _is_cluster(client: Any) -> bool:
    try:
        from redis.asyncio.cluster import RedisCluster
    except ImportError:  # pragma: no cover - redis is what the client is made of
        return False
    return isinstance(client, RedisCluster)


def redis_away_errors() -> tuple[type[BaseException], ...]:
    """What a call raises while Redis is away rather than wrong: a refused or dropped connection, a
    timeout, ``LOADING`` after a restart, a Redis Cluster failing over (``CLUSTERDOWN``, ``TRYAGAIN``,
    ``MASTERDOWN``, a write reaching a demoted primary: ``READONLY``)."""
    from redis import exceptions as x

    return (x.ConnectionError, x.TimeoutError, x.TryAgainError, x.ClusterDownError, x.ReadOnlyError,
            OSError, TimeoutError)


class RedisGone(Exception):
    """Redis stayed away past the outage limit: ``str()`` is one line saying for how long and why."""


def described(exc: BaseException) -> str:
    """``Type: first line``: what a Redis failure is called in the outage messages."""
    return f"{type(exc).__name__}: {errors.first_line(exc)}"


async def retry_while_away(outage: Outage, call: Callable[[], Any], what: str,
                           clock: Callable[[], float] = time.monotonic) -> Any:
    """``await call()``, again after each failure :func:`redis_away_errors` lists, as ``outage`` says
    (:class:`RedisGone` once it gives up); the first failure and the end of an outage are logged once."""
    away = redis_away_errors()
    while True:
        try:
            result = await call()
        except away as exc:
            was_down = outage.down
            delay = outage.failed(clock())
            if delay is None:
                raise RedisGone(f"Redis did not answer {what} for {outage.limit_s:g} s "
                                f"({described(exc)})") from exc
            if not was_down:
                log.warning("Redis does not answer %s (%s): trying again for up to %g s", what,
                            described(exc), outage.limit_s)
            await asyncio.sleep(delay)
            continue
        if outage.down:
            took = outage.ok(clock())
            log.warning("Redis answers %s again after %.1f s", what, took or 0.0)
        return result


def cancels() -> int:
    """How many cancellations the current task has been asked for (0 outside a task)."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def raise_owed_cancel(before: int) -> None:
    """Raise the :class:`asyncio.CancelledError` the current task was asked for since ``before``
    (:func:`cancels` then) but never got: redis-py 8.0 and 8.2 swallow a cancellation that lands inside
    about half the commands it hits (measured: 5.2, 6.4 and 7.4 none). Called after each Redis call of a
    loop, so a cancelled task stops instead of going on for ever."""
    if cancels() > before:
        raise asyncio.CancelledError


class Backfill(Protocol):
    """Fetches the messages of a gap (ids ``first..last``) from elsewhere: REST for trades
    (:class:`binance_ws.fleet.backfill.TradeBackfill`)."""

    def can_fill(self, stream: str) -> bool: ...

    async def fill(self, stream: str, first: int, last: int) -> list[bytes]: ...


class _Pending:
    """A held message: its entry, since when (monotonic s), whether a backfill of the gap before it was
    tried, and its flags (FLOOR for a backfilled one)."""

    __slots__ = ("entry", "filled", "flags", "held_since")

    def __init__(self, entry: Entry, flags: int = 0) -> None:
        self.entry = entry
        self.flags = flags
        self.held_since: float | None = None
        self.filled = False


class RedisSink:
    """Stores entries in ``binance:<market>:<stream>`` through the dedup script (see the module doc).

    ``client`` is a ``redis.asyncio.Redis`` (bytes, not decoded responses). ``write`` returns once its
    entries are stored, or held (a gap another writer may fill; stored by ``hold_s`` later at most, or
    at ``close``). With ``backfill``, a gap nobody filled in ``hold_s`` is first fetched from it (REST,
    for trades) and stored before the held messages; a gap it cannot fill is stored as a gap.
    Counters: ``added``, ``duplicates``, ``held`` (now waiting), ``backfilled``, ``calls`` (round trips);
    ``on_flush(seconds, added)`` is told after each flush (the metrics' write latency and entries).
    """

    def __init__(self, client: Any, market: str, *, maxlen: int = DEFAULT_MAXLEN,
                 hold_s: float = DEFAULT_HOLD_S, writer: str = "", backfill: Backfill | None = None,
                 on_flush: Callable[[float, int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 outage_s: float = DEFAULT_OUTAGE_S) -> None:
        if maxlen < 0:
            raise ValueError("maxlen must be 0 (no trimming) or more")
        self.client = client
        self.market = market
        #: USD-M and COIN-M diff depth chains by ``pu``; spot's by ``U``.
        self.futures = market in ("usdm", "coinm")
        self.maxlen = maxlen
        self.hold_s = hold_s
        self.writer = writer
        self.clock = clock
        self.backfill = backfill
        #: Told after each flush: its seconds (first call sent to last reply) and the messages it added.
        self.on_flush = on_flush
        #: A call Redis fails while away (restart, failover) is tried again for up to ``outage_s``
        #: (fleet.outage); the writers wait meanwhile (back-pressure), then fail with RedisGone.
        self.outage = Outage(outage_s)
        self._filling: dict[str, asyncio.Task[None]] = {}
        self.backfilled = 0
        self._sha = hashlib.sha1(_WRITE_LUA.encode()).hexdigest()
        self._loaded = False
        self._keys: dict[str, str] = {}
        self._kinds: dict[str, int] = {}
        #: A stream's hash slot, with a Redis Cluster client (None: one Redis, any keys in one call).
        self._slot_of: Callable[[str], int] | None = None
        if _is_cluster(client):
            from redis.crc import key_slot

            slots: dict[str, int] = {}

            def slot_of(stream: str) -> int:
                slot = slots.get(stream)
                if slot is None:
                    slot = slots[stream] = key_slot(self._key(stream).encode())
                return slot

            self._slot_of = slot_of
        self._queue: list[Entry] = []
        self._held: dict[str, list[_Pending]] = {}
        self._flush: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        self.added = 0
        self.duplicates = 0
        #: Gaps stored as gaps (nobody had the messages in between; each noted in the events stream).
        self.gaps = 0
        self.calls = 0

    @property
    def held(self) -> int:
        return sum(len(v) for v in self._held.values())

    def _kind(self, stream: str) -> int:
        kind = self._kinds.get(stream)
        if kind is None:
            kind = self._kinds[stream] = kind_of(stream, self.futures)
        return kind

    def _key(self, stream: str) -> str:
        key = self._keys.get(stream)
        if key is None:
            key = self._keys[stream] = key_of(self.market, stream)
        return key

    async def write(self, entries: Sequence[Entry]) -> None:
        if self._closed:
            raise RuntimeError("the Redis sink is closed")
        self._queue.extend(entries)
        # Shielded: the flush is shared by every writer, so cancelling one must not cancel the others'.
        await asyncio.shield(self._schedule())

    def _schedule(self) -> asyncio.Future[None]:
        """The flush that will take what is queued: one per event-loop turn, shared by every writer."""
        if self._flush is None:
            loop = asyncio.get_running_loop()
            fut = self._flush = loop.create_future()
            # Its failure reaches every writer awaiting it; one whose writers were all cancelled
            # meanwhile (a stopping member) has nobody left to tell, and must not be logged as lost.
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            loop.call_soon(lambda: loop.create_task(self._run_flush(fut)))
        return self._flush

    async def _run_flush(self, fut: asyncio.Future[None]) -> None:
        self._flush = None
        try:
            await self._store(force_all=False)
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not fut.done():
                fut.set_result(None)

    def _retry_held(self) -> None:
        self._retry = None
        if self._held and not self._closed:
            fut = self._schedule()
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # failure resurfaces on write

    async def _store(self, force_all: bool) -> None:
        # One flush at a time: a stream's messages must reach the script in order.
        async with self._lock:
            await self._store_locked(force_all)

    async def _store_locked(self, force_all: bool) -> None:
        queue, self._queue = self._queue, []
        now = self.clock()
        # Per stream: held messages first (their order), then the new ones. A stream being backfilled
        # waits whole (held) until its fill is in.
        by_stream: dict[str, list[Any]] = {}
        held, self._held = self._held, {}
        for stream, items in held.items():
            first = items[0]
            if (stream not in self._filling and not force_all and self.backfill is not None
                    and not first.filled and first.held_since is not None
                    and now - first.held_since >= self.hold_s and self.backfill.can_fill(stream)):
                self._filling[stream] = asyncio.get_running_loop().create_task(self._fill(stream))
            if stream in self._filling:
                self._held[stream] = items
            else:
                by_stream[stream] = list(items)
        filling = self._filling
        for e in queue:
            stream = e.stream
            if stream in filling:
                self._held.setdefault(stream, []).append(_Pending(e))
            else:
                group = by_stream.get(stream)
                if group is None:
                    by_stream[stream] = [e]
                else:
                    group.append(e)
        if not by_stream:
            return
        if not self._loaded:
            await retry_while_away(self.outage, partial(self.client.script_load, _WRITE_LUA), "the sink",
                                   self.clock)
            self._loaded = True
        # Chunks of whole streams, each one script call; each is sent as soon as it is packed, so the
        # server runs one while the next is being packed (chunks share no stream: their order is free).
        hold_s = self.hold_s
        started = time.perf_counter()
        added_before = self.added
        sent: list[tuple[list[Any], asyncio.Task[Any]]] = []
        chunk: list[tuple[str, list[Any]]] = []
        size = 0
        streams = list(by_stream.items())
        slot_of = self._slot_of
        if slot_of is not None:  # Redis Cluster: a call's keys share one hash slot
            streams.sort(key=lambda item: slot_of(item[0]))
        for n, (stream, items) in enumerate(streams, 1):
            chunk.append((stream, items))
            size += len(items)
            if size < CHUNK and n < len(streams) and (
                    slot_of is None or slot_of(streams[n][0]) == slot_of(stream)):
                continue
            keys: list[str] = []
            flat: list[Any] = []
            datas: list[bytes] = []
            received: list[int] = []
            flags = bytearray()
            ids: array[float] = array("d")
            counts = array("I")
            for name, part in chunk:
                key = self._key(name)
                keys += (key, dedup_key_of(key))
                counts.append(len(part))
                flat += part
                if not isinstance(part[0], _Pending):  # the usual case: new messages only
                    mine = list(map(_DATA, part))
                    received += map(_RECEIVED, part)
                else:
                    mine = []
                    extra = bytearray()
                    for item in part:
                        if isinstance(item, _Pending):
                            since = item.held_since
                            f = item.flags
                            if force_all or (since is not None and now - since >= hold_s):
                                f |= FORCE
                            entry = item.entry
                        else:
                            f, entry = 0, item
                        mine.append(entry.data)
                        received.append(entry.received_ns)
                        extra.append(f)
                datas += mine
                start = len(flags)
                message_ids(self._kind(name), mine, ids, flags)
                if isinstance(part[0], _Pending):
                    for j, f in enumerate(extra, start):
                        flags[j] |= f
            lens = array("I", map(len, datas))
            if sys.byteorder == "big":
                for arr in (lens, counts, ids):
                    arr.byteswap()
            args = (str(self.maxlen), b"".join(datas), lens.tobytes(), _times(received), counts.tobytes(),
                    bytes(flags), ids.tobytes())
            sent.append((flat, asyncio.ensure_future(self._call(keys, args))))
            chunk, size = [], 0
            if n < len(streams):
                await asyncio.sleep(0)  # the call goes out now: Redis runs it while the next is packed
        await asyncio.wait([task for _, task in sent])
        self.calls += len(sent)
        failure: BaseException | None = None
        gaps: list[tuple[str, int, int]] = []
        for flat, task in sent:
            exc = task.exception()
            if exc is not None:
                failure = failure or exc
                continue
            reply = task.result()
            added = int(reply[0])
            self.added += added
            kept = 0
            rest = [int(x) for x in reply[1:]]
            k = 0
            while k < len(rest):
                i = rest[k]
                if i < 0:  # stored past a gap: (-index, first missing id, last missing id)
                    item = flat[-i - 1]
                    entry = item.entry if isinstance(item, _Pending) else item
                    gaps.append((entry.stream, rest[k + 1], rest[k + 2]))
                    k += 3
                    continue
                item = flat[i - 1]
                p = item if isinstance(item, _Pending) else _Pending(item)
                if p.held_since is None:
                    p.held_since = now
                self._held.setdefault(p.entry.stream, []).append(p)
                kept += 1
                k += 1
            self.duplicates += len(flat) - added - kept
        if failure is not None:
            raise failure
        for gap_stream, gap_first, gap_last in gaps:
            self.gaps += 1
            await self.mark(Marker(time.time_ns(), "gap", {
                "e": "error", "m": "Gap stored", "type": "gap", "stream": gap_stream, "first": gap_first,
                "last": gap_last}))
        if self.on_flush is not None:
            self.on_flush(time.perf_counter() - started, self.added - added_before)
        if self._held and self._retry is None and not force_all:
            loop = asyncio.get_running_loop()
            self._retry = loop.call_later(self.hold_s, self._retry_held)

    async def _call(self, keys: list[str], args: tuple[Any, ...]) -> Any:
        return await retry_while_away(self.outage, partial(self._call_once, keys, args), "the sink",
                                      self.clock)

    async def _call_once(self, keys: list[str], args: tuple[Any, ...]) -> Any:
        # Tried again after a failure: a call that ran but whose answer was lost is harmless to repeat,
        # the dedup state in Redis makes its messages duplicates the second time.
        from redis.exceptions import NoScriptError

        try:
            return await self.client.evalsha(self._sha, len(keys), *keys, *args)
        except NoScriptError:  # the server lost its scripts (restarted, SCRIPT FLUSH): nothing ran
            await self.client.script_load(_WRITE_LUA)
            return await self.client.evalsha(self._sha, len(keys), *keys, *args)

    async def _fill(self, stream: str) -> None:
        """Fetch the gap before ``stream``'s first held message and put it in front of it."""
        assert self.backfill is not None
        try:
            items = self._held.get(stream) or []
            want = dedup_key(stream, items[0].entry.data, self.futures).prev if items else None
            if want is None:
                return
            last = await self.client.hget(dedup_key_of(self._key(stream)), "l")
            if last is not None and int(last) < want:
                payloads = await self.backfill.fill(stream, int(last) + 1, want)
                now_ns = time.time_ns()
                # REST has no event time (E is the trade time): FLOOR keeps it from looking older.
                fills = [_Pending(Entry(now_ns, stream, data), FLOOR) for data in payloads]
                if fills:
                    self.backfilled += len(fills)
                    self._held[stream] = fills + (self._held.get(stream) or [])
                    await self.mark(Marker(now_ns, "backfill", {
                        "stream": stream, "first": int(last) + 1, "last": want, "filled": len(fills)}))
        except Exception as exc:  # REST or Redis trouble: the gap is stored as a gap, and said so
            log.warning("backfill of %s failed: %s", stream, exc)
        finally:
            for p in self._held.get(stream) or []:
                p.filled = True
            self._filling.pop(stream, None)
            if not self._closed:
                self._schedule().add_done_callback(lambda f: f.cancelled() or f.exception())

    async def mark(self, marker: Marker) -> None:
        if self._closed:
            return
        await retry_while_away(self.outage, partial(
            self.client.xadd, f"binance:{self.market}:events",
            {"k": marker.kind, "d": orjson.dumps(marker.detail, default=str), "w": self.writer,
             "r": marker.received_ns}, maxlen=EVENTS_MAXLEN, approximate=True), "the sink", self.clock)

    async def close(self) -> None:
        """Store what is queued and held (held messages forced: no writer is left to fill their gaps)."""
        if self._closed:
            return
        if self._flush is not None:
            with contextlib.suppress(Exception):
                await self._flush
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for task in list(self._filling.values()):
            with contextlib.suppress(Exception):
                await task
        self._closed = True
        if self._queue or self._held:
            left = len(self._queue) + self.held
            try:
                await self._store(force_all=True)
            except RedisGone:
                log.warning("%d messages were not written: Redis is away", left)
                raise


class RedisReader:
    """Messages of ``streams`` read back from Redis through a consumer group, like a subscription.

    ``async for msg in reader`` yields dicts (``decode="dict"``), :class:`RawMessage` (``"raw"``) or typed
    models (``"typed"``, :func:`binance_ws.models.decoder_for`). Delivery is at least once: an entry is
    acknowledged (``XACK``) when the next one is asked for, so a consumer that dies mid-message gets it
    again, as does another consumer of the group once it has been idle ``claim_idle_ms``. After each
    message, ``entry`` is its ``(stream, entry id, receive ns)``. The group is created on first use at
    ``start`` (``"0"``: everything the streams hold; ``"$"``: only what comes after).
    """

    def __init__(self, client: Any, streams: Iterable[str], *, market: str = "spot",
                 group: str = "binance-ws", consumer: str = "reader", decode: str = "dict",
                 count: int = 512, block_ms: int = 1000, claim_idle_ms: int = 30_000,
                 start: str = "0", product: Any = None, outage_s: float = DEFAULT_OUTAGE_S) -> None:
        self.client = client
        #: Reads Redis fails while away (restart, failover) are tried again for up to ``outage_s``, then
        #: ``recv`` raises RedisGone; a group Redis came back without is created again.
        self.outage = Outage(outage_s)
        self.streams = list(dict.fromkeys(streams))
        if not self.streams:
            raise ValueError("a reader needs at least one stream")
        self.market = market
        self.group = group
        self.consumer = consumer
        self.decode = decode
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.start = start
        self._names = {key_of(market, s).encode(): s for s in self.streams}
        self._decoders: dict[str, Callable[[bytes], Any]] = {}
        if decode == "typed":
            from binance_ws import markets, models

            prod = product or {"spot": markets.SPOT, "usdm": markets.USDM, "coinm": markets.COINM}.get(
                market, markets.SPOT)
            self._decoders = {s: models.decoder_for(s, prod) for s in self.streams}
        elif decode not in ("dict", "raw"):
            raise ValueError("decode must be 'dict', 'raw' or 'typed'")
        self._buffer: deque[tuple[bytes, bytes, dict[bytes, bytes]]] = deque()
        self._unacked: dict[bytes, list[bytes]] = {}
        self._ready = False
        self._pending_done = False
        self._last_claim = 0.0
        self.entry: tuple[str, str, int] | None = None
        #: Entries delivered, and those taken over from other consumers.
        self.delivered = 0
        self.claimed = 0

    def __aiter__(self) -> RedisReader:
        return self

    async def __anext__(self) -> Any:
        return await self.recv()

    async def _setup(self) -> None:
        from redis.exceptions import ResponseError

        pipe = self.client.pipeline(transaction=False)
        for key in self._names:
            pipe.xgroup_create(key, self.group, id=self.start, mkstream=True)
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, ResponseError) and "BUSYGROUP" not in str(result):
                raise result
        self._ready = True

    async def ack(self) -> None:
        """Acknowledge everything delivered so far (``recv`` does it for the previous batch itself)."""
        unacked, self._unacked = self._unacked, {}
        if unacked:
            pipe = self.client.pipeline(transaction=False)
            for key, ids in unacked.items():
                pipe.xack(key, self.group, *ids)
            await pipe.execute()

    async def _claim(self) -> None:
        """Take over entries other consumers left pending past ``claim_idle_ms`` (every stream at once)."""
        self._last_claim = time.monotonic()
        cursors: dict[bytes, Any] = dict.fromkeys(self._names, b"0-0")
        while cursors:
            pipe = self.client.pipeline(transaction=False)
            for key, cursor in cursors.items():
                pipe.xautoclaim(key, self.group, self.consumer, self.claim_idle_ms, start_id=cursor,
                                count=self.count)
            replies = await pipe.execute()
            following: dict[bytes, Any] = {}
            for key, reply in zip(cursors, replies, strict=True):
                cursor, entries = reply[0], reply[1]
                for entry_id, fields in entries:
                    if fields:
                        self._buffer.append((key, entry_id, fields))
                        self.claimed += 1
                if entries and cursor not in (b"0-0", "0-0"):
                    following[key] = cursor
            cursors = following

    async def _fill(self) -> None:
        if not self._ready:
            await self._setup()
        await self.ack()
        if not self._pending_done:  # our own pending entries first (a restart under the same name)
            reply = await self.client.xreadgroup(self.group, self.consumer, dict.fromkeys(self._names, "0"),
                                                 count=self.count)
            got = [(key, i, f) for key, entries in reply or [] for i, f in entries if f]
            if got:
                self._buffer.extend(got)
                return
            self._pending_done = True
        if time.monotonic() - self._last_claim >= self.claim_idle_ms / 1000:
            await self._claim()
            if self._buffer:
                return
        reply = await self.client.xreadgroup(self.group, self.consumer, dict.fromkeys(self._names, ">"),
                                             count=self.count, block=self.block_ms)
        for key, entries in reply or []:
            self._buffer.extend((key, i, f) for i, f in entries)

    async def _fill_once(self) -> None:
        from redis.exceptions import ResponseError

        try:
            await self._fill()
        except redis_away_errors():
            self._pending_done = False  # a read whose answer was lost left its entries pending for us
            raise
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis came back without the group (a restart without persistence): make it again.
            self._ready = False
            self._pending_done = False
            self._unacked.clear()
            await self._fill()

    async def recv(self) -> Any:
        """The next message (waits for one; while Redis is away, up to ``outage_s``)."""
        if not self._buffer:
            before = cancels()
            while not self._buffer:
                try:
                    await retry_while_away(self.outage, self._fill_once, "the reader")
                    raise_owed_cancel(before)
                except asyncio.CancelledError:
                    # Entries Redis handed over as the read was cancelled are pending for this consumer:
                    # the next read starts with the pending ones again, so none is skipped (nor doubled).
                    self._buffer.clear()
                    self._pending_done = False
                    raise
        key, entry_id, fields = self._buffer.popleft()
        self._unacked.setdefault(key, []).append(entry_id)
        self.delivered += 1
        stream = self._names[key]
        data = fields[b"d"]
        self.entry = (stream, entry_id.decode(), int(fields.get(b"r", b"0")))
        if self.decode == "raw":
            return RawMessage(stream, data)
        if self.decode == "typed":
            return self._decoders[stream](data)
        return orjson.loads(data)
