"""One fleet member: the thin asyncio layer around :class:`~binance_ws.fleet.lease.FleetPolicy`.

Each heartbeat it runs one Lua script that stamps its heartbeat and reads the fleet (Redis's clock, the
members, every lease and handover request), asks the policy what to do, and does it: ``SET NX PX`` to
claim, compare-and-renew, compare-and-delete to release, one subscription and one
:class:`~binance_ws.sinks.base.Pump` per watched shard into the shared :class:`RedisSink`.

Keys (beside the sink's), all under the hash tag ``{binance:<market>:fleet}`` (one Redis Cluster hash slot):
``{…}:members`` (heartbeats, a sorted set by server time), ``{…}:draining`` (members handing over, by when
that lapses), ``{…}:lease:<shard>:<slot>`` (owner's name, PX the TTL), ``{…}:want:<shard>:<slot>`` (a
handover request), ``{…}:config`` (shards and stream list: every member must agree).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Sequence
from typing import Any, Final

from binance_ws import errors
from binance_ws.engine.delivery import Subscription
from binance_ws.fleet.lease import (
    Claim,
    FleetPolicy,
    FleetView,
    Lease,
    Release,
    Renew,
    Slot,
    Unwatch,
    Want,
    Watch,
    shard_of,
)
from binance_ws.fleet.outage import DEFAULT_OUTAGE_S, Outage
from binance_ws.sinks.base import Entry, Marker, Pump
from binance_ws.sinks.redis import (
    DEFAULT_HOLD_S,
    DEFAULT_MAXLEN,
    Backfill,
    RedisGone,
    RedisSink,
    cancels,
    described,
    raise_owed_cancel,
    redis_away_errors,
    retry_while_away,
)

log = logging.getLogger(__name__)

DEFAULT_SHARDS: Final = 16
DEFAULT_LEASE_TTL_S: Final = 10.0
#: A member silent this many TTLs is dropped from the members set.
FORGET_AFTER_TTLS: Final = 20

# Every key a script touches is in its KEYS, and every fleet key carries the hash tag {binance:<market>:fleet}
# (fleet_prefix): one hash slot, so the scripts run on Redis Cluster too. KEYS: [1] members, [2] draining
# (a sorted set by when each mark lapses), then each slot's lease key, then each slot's want key (slots in
# FleetPolicy.slots order). ARGV: [1] this member, [2] forget members silent this long (ms), [3] mark this
# member draining for this long (ms; 0: not draining).
_VIEW_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if tonumber(ARGV[3]) > 0 then redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local draining = redis.call('ZRANGE', KEYS[2], 0, -1)
local slots = (#KEYS - 2) / 2
local leases, wants = {}, {}
for i = 1, slots do
  local owner = redis.call('GET', KEYS[2 + i])
  if owner then
    table.insert(leases, i); table.insert(leases, owner)
    table.insert(leases, redis.call('PTTL', KEYS[2 + i]))
  end
  local w = redis.call('GET', KEYS[2 + slots + i])
  if w then table.insert(wants, i); table.insert(wants, w) end
end
return {now, members, leases, wants, draining}
"""
_RENEW_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def fleet_prefix(market: str) -> str:
    """What every fleet key of ``market`` starts with: ``{binance:<market>:fleet}:`` (its hash tag puts them
    all in one Redis Cluster hash slot, so one script may touch any of them)."""
    return "{binance:" + market + ":fleet}:"


class CollectorError(Exception):
    """The member stops: ``str()`` is one line, ``code`` the CLI's exit status (1 or 2)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _ShardSink:
    """The shared sink as one shard's pump sees it: a given-up connection ends the member."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    async def write(self, entries: Sequence[Entry]) -> None:
        await self.collector.sink.write(entries)

    async def mark(self, marker: Marker) -> None:
        if marker.detail.get("m") == errors.MSG_MAX_RETRIES:
            self.collector._fail(CollectorError("gave up reconnecting to the stream server"))
        await self.collector.sink.mark(marker)

    async def close(self) -> None:
        return None


class Collector:
    """Collects ``streams`` as one member ``name`` of the fleet in ``client``'s Redis (see module doc).

    ``manager`` is a started :class:`~binance_ws.engine.manager.AsyncSocketManager`; ``market`` the
    product's name in the keys; ``backfill`` fetches trades a gap left out (see :mod:`.backfill`).
    ``run()`` returns only by failing (:class:`CollectorError`) or being cancelled; ``stop()`` releases
    the leases so that others take over at once.
    """

    def __init__(self, client: Any, manager: Any, market: str, streams: Sequence[str], *, name: str,
                 shards: int = DEFAULT_SHARDS, redundancy: int = 1,
                 lease_ttl_s: float = DEFAULT_LEASE_TTL_S, maxlen: int = DEFAULT_MAXLEN,
                 hold_s: float = DEFAULT_HOLD_S, backfill: Backfill | None = None,
                 report: Any = None, redis_outage_s: float = DEFAULT_OUTAGE_S) -> None:
        self.client = client
        self.manager = manager
        self.market = market
        self.streams = list(dict.fromkeys(streams))
        self.name = name
        self.shards = shards
        self.redundancy = redundancy
        self.ttl_ms = int(lease_ttl_s * 1000)
        self.by_shard: dict[int, list[str]] = {}
        for s in self.streams:
            self.by_shard.setdefault(shard_of(s, shards), []).append(s)
        self.prefix = fleet_prefix(market)
        self._draining_px = 0
        #: Where its figures go (binance_ws.metrics.Sinks: write latency, entries, shards owned), if anywhere.
        self.report = report
        on_flush = None
        if report is not None:
            def on_flush(seconds: float, added: int) -> None:
                report.observe_write_latency(seconds, sink="redis")
                report.written(added, sink="redis")
        self.sink = RedisSink(client, market, maxlen=maxlen, hold_s=hold_s, writer=name, backfill=backfill,
                              on_flush=on_flush, outage_s=redis_outage_s)
        #: The heartbeat's own view of a Redis outage (the sink keeps another: on Redis Cluster one node
        #: can be away while the fleet's keys answer).
        self.outage = Outage(redis_outage_s)
        #: Set once Redis stayed away past the limit (the member is failing).
        self.redis_gone = False
        self.policy: FleetPolicy | None = None
        self._view = client.register_script(_VIEW_LUA)
        self._renew = client.register_script(_RENEW_LUA)
        self._release = client.register_script(_RELEASE_LUA)
        self._watches: dict[int, tuple[asyncio.Task[None], list[Subscription]]] = {}
        self._failed: asyncio.Future[None] | None = None
        self._marking: set[asyncio.Task[None]] = set()
        #: What happened, for logs and the benchmark: claims won, leases lost, handovers given.
        self.claimed = 0
        self.lost = 0
        self.released = 0

    def _fail(self, exc: BaseException) -> None:
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(exc)

    def config_value(self) -> str:
        digest = zlib.crc32("\n".join(sorted(self.streams)).encode())
        return f"shards={self.shards} streams={len(self.streams)}/{digest:08x}"

    async def _check_config(self) -> None:
        key = self.prefix + "config"
        mine = self.config_value()
        await self.client.set(key, mine, nx=True, px=self.ttl_ms * FORGET_AFTER_TTLS)
        theirs = await self.client.get(key)
        if theirs is not None and theirs.decode() != mine:
            raise CollectorError(
                f"the fleet in Redis collects {theirs.decode()}, this member {mine}: start every member "
                f"with the same streams and --shards (or wait for the old fleet's {key} to lapse)", 2)
        await self.client.pexpire(key, self.ttl_ms * FORGET_AFTER_TTLS)

    async def _load_scripts(self) -> None:
        """Load the scripts a pipeline runs (on Redis Cluster into every primary: a cluster pipeline does
        not load them itself)."""
        for script in (self._renew, self._release):
            await self.client.script_load(script.script)

    async def read_view(self) -> FleetView:
        slots = [(s, k) for s in range(self.shards) for k in range(self.redundancy)]
        keys = [self.prefix + "members", self.prefix + "draining",
                *(self._slot_key("lease", slot) for slot in slots),
                *(self._slot_key("want", slot) for slot in slots)]
        now, members, leases, wants, draining = await self._view(
            keys=keys, args=[self.name, self.ttl_ms * FORGET_AFTER_TTLS, self._draining_px])
        beats = {members[i].decode(): int(float(members[i + 1])) for i in range(0, len(members), 2)}
        table = {slots[int(leases[i]) - 1]: Lease(leases[i + 1].decode(), now + int(leases[i + 2]))
                 for i in range(0, len(leases), 3) if int(leases[i + 2]) > 0}
        asks = {slots[int(wants[i]) - 1]: wants[i + 1].decode() for i in range(0, len(wants), 2)}
        return FleetView(int(now), beats, table, asks, frozenset(d.decode() for d in draining))

    def _slot_key(self, kind: str, slot: Slot) -> str:
        return f"{self.prefix}{kind}:{slot[0]}:{slot[1]}"

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # A cancelled member must stop (it would renew its leases for ever), and redis-py 8 may swallow
        # the cancellation (see raise_owed_cancel; 7.x cannot pipeline EVALSHA on a cluster).
        owed = cancels()
        self._failed = loop.create_future()
        # The first failure ends run(); one arriving after run() ended another way (the heartbeat gave
        # up on Redis as a pump did) has nobody left to tell, and must not be logged as lost.
        self._failed.add_done_callback(lambda f: f.cancelled() or f.exception())
        await self._check_config()
        await self._load_scripts()
        view = await self.read_view()
        self.policy = policy = FleetPolicy(self.name, self.shards, self.redundancy, self.ttl_ms, view.now_ms)
        away = redis_away_errors()
        while True:
            try:
                await self._carry_out(policy.step(view))
            except away as exc:  # not tried again: the next step decides afresh, on a fresh view
                log.debug("%s: the fleet's actions did not reach Redis: %s", self.name, described(exc))
            if self.report is not None:
                self.report.set_shards(sorted({slot[0] for slot, lease in view.leases.items()
                                               if lease.owner == self.name}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._failed), policy.next_step_ms / 1000)
            if self._failed.done():
                self._failed.result()
            view = await self._beat()
            raise_owed_cancel(owed)

    async def _beat(self) -> FleetView:
        """Keep the fleet's config (set again if Redis came back empty) and read the view; tried again
        while Redis is away (fleet.outage), the streams still being collected, until the outage limit."""
        async def once() -> FleetView:
            if self._failed is not None and self._failed.done():
                self._failed.result()
            await self._check_config()
            return await self.read_view()

        try:
            return await retry_while_away(self.outage, once, "the fleet's heartbeat")
        except RedisGone as exc:
            raise self._redis_gone(exc) from None

    def _redis_gone(self, exc: RedisGone) -> CollectorError:
        """Redis stayed away past the limit: stopping must not wait for it again (no handover, and what
        is left unwritten fails at once)."""
        self.redis_gone = True
        self.sink.outage = Outage(0.0)
        return CollectorError(str(exc))

    async def _carry_out(self, actions: list[Any]) -> None:
        pipe = self.client.pipeline(transaction=False)
        asked: list[Any] = []
        for a in actions:
            if isinstance(a, Claim):
                pipe.set(self._slot_key("lease", a.slot), self.name, nx=True, px=self.ttl_ms)
                asked.append(a)
            elif isinstance(a, Renew):
                await self._renew(keys=[self._slot_key("lease", a.slot)], args=[self.name, self.ttl_ms],
                                  client=pipe)
                asked.append(a)
            elif isinstance(a, Release):
                await self._release(keys=[self._slot_key("lease", a.slot)], args=[self.name], client=pipe)
                asked.append(a)
            elif isinstance(a, Want):
                pipe.set(self._slot_key("want", a.slot), self.name, px=self.ttl_ms)
                asked.append(a)
            elif isinstance(a, Watch):
                self._start_watch(a.shard)
            elif isinstance(a, Unwatch):
                self._stop_watch(a.shard)
        if not asked:
            return
        from redis.exceptions import NoScriptError

        try:
            results = await pipe.execute()
        except NoScriptError:  # Redis lost its scripts (restarted): the next heartbeat does it again
            await self._load_scripts()
            return
        for a, result in zip(asked, results, strict=True):
            if isinstance(a, Claim) and result:
                self.claimed += 1
                log.info("%s claimed shard %d slot %d", self.name, *a.slot)
            elif isinstance(a, Renew) and not result:
                self.lost += 1
                log.warning("%s lost its lease on shard %d slot %d", self.name, *a.slot)
            elif isinstance(a, Release) and result:
                self.released += 1
                log.info("%s handed over shard %d slot %d", self.name, *a.slot)

    def _start_watch(self, shard: int) -> None:
        subs: list[Subscription] = []
        task = asyncio.get_running_loop().create_task(self._watch(shard, subs),
                                                      name=f"binance-ws-collect-shard-{shard}")
        self._watches[shard] = (task, subs)

    def _stop_watch(self, shard: int) -> None:
        watch = self._watches.pop(shard, None)
        if watch is None:
            return
        task, subs = watch

        async def stop() -> None:
            for sub in subs:
                await sub.close()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        asyncio.get_running_loop().create_task(stop())

    def _marked(self, task: asyncio.Task[None]) -> None:
        self._marking.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._fail(self._redis_gone(exc) if isinstance(exc, RedisGone) else exc)

    async def _watch(self, shard: int, subs: list[Subscription]) -> None:
        names = self.by_shard.get(shard, [])
        try:
            if names:
                def on_link(state: str, streams: tuple[str, ...]) -> None:
                    marker = Marker(time.time_ns(), f"link_{state}",
                                    {"streams": list(streams), "shard": shard})
                    task = asyncio.get_running_loop().create_task(self.sink.mark(marker))
                    self._marking.add(task)  # held until done (the loop keeps only weak references)
                    task.add_done_callback(self._marked)

                sub = await self.manager.subscribe(names, decode="raw", overflow="block", on_link=on_link)
                subs.append(sub)
            if self.policy is not None:
                self.policy.ready(shard)
            if names:
                await Pump(subs[0], _ShardSink(self)).run()
        except asyncio.CancelledError:
            raise
        except errors.SubscriptionError as exc:
            which = names[0] if len(names) == 1 else "one of " + ", ".join(names[:3]) + (
                ", ..." if len(names) > 3 else "")
            self._fail(CollectorError(f"the server refused {which} (shard {shard}): {exc}", 2))
        except RedisGone as exc:  # away past the outage limit: the member cannot go on
            self._fail(self._redis_gone(exc))
        except Exception as exc:  # a sink write failed otherwise: the member cannot go on
            self._fail(CollectorError(f"shard {shard}: {type(exc).__name__}: {exc}"))

    async def stop(self, release: bool = True) -> None:
        """Leave the fleet. With ``release``, hand every slot over first (others subscribe, ask, and this
        member lets go: no gap), for at most two TTLs or until no other member is live; then release
        what is left (others claim it at their next heartbeat), stop the pumps and flush."""
        policy = self.policy
        if self.redis_gone:
            release = False
        if release and policy is not None:
            with contextlib.suppress(Exception):
                await self._drain(policy)
            with contextlib.suppress(Exception):
                await self._load_scripts()
                pipe = self.client.pipeline(transaction=False)
                for slot in policy.slots:
                    await self._release(keys=[self._slot_key("lease", slot)], args=[self.name], client=pipe)
                pipe.zrem(self.prefix + "members", self.name)
                pipe.zrem(self.prefix + "draining", self.name)
                await pipe.execute()
        for shard in list(self._watches):
            task, subs = self._watches.pop(shard)
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.sink.close()

    async def _drain(self, policy: FleetPolicy) -> None:
        policy.drain()
        self._draining_px = self.ttl_ms * 4  # said at every read of the fleet from now on
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.ttl_ms / 1000
        while loop.time() < deadline:
            view = await self.read_view()
            now = view.now_ms
            held = [s for s, lease in view.leases.items() if lease.owner == self.name]
            others = [m for m, beat in view.members.items()
                      if m != self.name and m not in view.draining and now - beat <= policy.suspect_ms]
            if not held or not others:
                return
            await self._carry_out(policy.step(view))
            await asyncio.sleep(policy.heartbeat_ms / 1000)
