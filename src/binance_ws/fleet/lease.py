"""Who collects which shard: the fleet's lease policy, a pure object fed what Redis shows and the time.

Streams are split into ``shards`` (:func:`shard_of`, the same on every member); each shard has
``redundancy`` slots, and each slot is owned under a lease with a TTL (a Redis key set ``NX PX``, renewed
while its owner is healthy). A member never holds two slots of one shard. Every member runs
:meth:`FleetPolicy.step` once per heartbeat (a quarter of the TTL) on a :class:`FleetView` and carries
out the actions it returns:

* **renew** what it holds; **claim** vacant slots the shared assignment gives it (the member holding
  fewest slots, ties broken by a hash of member and slot, so members agree without talking);
* a member whose heartbeat is older than half the TTL is **suspect**: its slots are assigned to others at
  once, and their new owners **watch** (subscribe to) those shards before the old lease lapses, so the
  takeover costs no reconnect after it; the claim follows the moment the lease lapses (``next_step_ms``);
* **balance**: a member holding at least two fewer slots than another asks for one of its slots (``want``)
  once it is itself subscribed to that shard; the owner **releases** it and the asker claims it. Nothing
  is missed, because both write while they overlap and the writes are de-duplicated (:mod:`.dedup`).

For the first half TTL after it starts a member claims nothing and asks for nothing (it renews and
subscribes to what it already holds, after a restart under the same name), so members started together
see each other before the first claims.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

#: (shard, slot index).
Slot = tuple[int, int]


def shard_of(stream: str, shards: int) -> int:
    """The shard of ``stream`` (stable across processes and machines)."""
    return zlib.crc32(stream.encode()) % shards


def _rank(member: str, slot: Slot) -> int:
    return zlib.crc32(f"{member}/{slot[0]}/{slot[1]}".encode())


@dataclass(frozen=True, slots=True)
class Lease:
    owner: str
    #: When the lease lapses unless renewed (Redis server time, ms).
    expires_ms: int


@dataclass(frozen=True, slots=True)
class FleetView:
    """What one read of Redis shows: its time, each member's last heartbeat, the leases, the wants."""

    now_ms: int
    members: Mapping[str, int]
    leases: Mapping[Slot, Lease]
    wants: Mapping[Slot, str] = field(default_factory=dict)
    #: Members leaving (stopped gracefully): their slots go to others, handed over once subscribed.
    draining: frozenset[str] = frozenset()


class Claim(NamedTuple):
    slot: Slot


class Renew(NamedTuple):
    slot: Slot


class Release(NamedTuple):
    slot: Slot


class Want(NamedTuple):
    slot: Slot


class Watch(NamedTuple):
    shard: int


class Unwatch(NamedTuple):
    shard: int


Action = Claim | Renew | Release | Want | Watch | Unwatch


class FleetPolicy:
    """One member's decisions. ``watched`` is the set of shards it is subscribed to (or subscribing);
    the I/O layer calls :meth:`ready` once a :class:`Watch`'s subscription is live."""

    def __init__(self, name: str, shards: int, redundancy: int, ttl_ms: int, started_ms: int) -> None:
        if shards < 1 or redundancy < 1 or ttl_ms < 4:
            raise ValueError("shards and redundancy must be at least 1, the lease TTL at least 4 ms")
        self.name = name
        self.shards = shards
        self.redundancy = redundancy
        self.ttl_ms = ttl_ms
        self.started_ms = started_ms
        self.slots: list[Slot] = [(s, k) for s in range(shards) for k in range(redundancy)]
        #: shard -> whether its subscription is live.
        self.watched: dict[int, bool] = {}
        #: The slot this member asked for, and when.
        self.wanting: tuple[Slot, int] | None = None
        self.next_step_ms = self.heartbeat_ms
        #: Set by :meth:`drain`: this member hands its slots over and takes nothing.
        self.draining = False

    @property
    def heartbeat_ms(self) -> int:
        """How often to run :meth:`step` (and renew)."""
        return self.ttl_ms // 4

    @property
    def suspect_ms(self) -> int:
        """A member not heard from for longer than this is taken to be gone."""
        return self.ttl_ms // 2

    def drain(self) -> None:
        """Leave the fleet without a gap: from now on take nothing and release each slot once another
        member, subscribed to its shard, asks for it."""
        self.draining = True
        self.wanting = None

    def ready(self, shard: int) -> None:
        if shard in self.watched:
            self.watched[shard] = True

    def step(self, view: FleetView) -> list[Action]:
        now = view.now_ms
        me = self.name
        live = {m for m, beat in view.members.items()
                if now - beat <= self.suspect_ms and m not in view.draining} | {me}
        leases = {s: lease for s, lease in view.leases.items() if lease.expires_ms > now}
        mine = sorted(s for s, lease in leases.items() if lease.owner == me)
        actions: list[Action] = [Renew(s) for s in mine]
        self.next_step_ms = self.heartbeat_ms
        if self.draining:
            return actions + self._drain_step(view, live - {me}, mine)
        settled = now - self.started_ms >= self.suspect_ms
        load: Counter[str] = Counter({m: 0 for m in live})
        holders: dict[int, set[str]] = {}
        for (shard, _), lease in leases.items():
            if lease.owner in live:
                load[lease.owner] += 1
                holders.setdefault(shard, set()).add(lease.owner)
        vacant = [s for s in self.slots if s not in leases or leases[s].owner not in live]
        quota = math.ceil(len(self.slots) / len(live))
        targets: list[Slot] = []
        for slot in vacant if settled else ():
            taken = holders.setdefault(slot[0], set())
            candidates = [m for m in sorted(live) if m not in taken and load[m] < quota]
            if not candidates:
                continue
            wanted = view.wants.get(slot)
            pick = (wanted if wanted in candidates
                    else min(candidates, key=lambda m: (load[m], _rank(m, slot))))
            load[pick] += 1
            taken.add(pick)
            if pick == me:
                targets.append(slot)
        # The next step is due in a heartbeat, or sooner the moment an orphaned lease this member is to
        # take over lapses (so that it is claimed at once, within the TTL of the death). A slot whose
        # owner is leaving is asked for once this member is subscribed to its shard.
        for slot in targets:
            if slot not in leases:
                actions.append(Claim(slot))
            elif leases[slot].owner in view.draining:
                if self.watched.get(slot[0]) and view.wants.get(slot) != me:
                    actions.append(Want(slot))
            else:
                self.next_step_ms = max(1, min(self.next_step_ms, leases[slot].expires_ms - now + 1))
        # Balance: ask the most loaded member for one of its slots, once subscribed to that shard.
        if self.wanting is not None:
            slot, since = self.wanting
            if slot in mine or now - since > self.ttl_ms:
                self.wanting = None
        if self.wanting is None and not targets and settled:
            giver = max((m for m in live if m != me), key=lambda m: (load[m], m), default=None)
            if giver is not None and load[giver] - load[me] >= 2:
                mine_shards = {s for s, _ in mine}
                offer = [s for s in self.slots if s in leases and leases[s].owner == giver
                         and s[0] not in mine_shards]
                if offer:
                    self.wanting = (offer[0], now)
        if (self.wanting is not None and self.watched.get(self.wanting[0][0])
                and view.wants.get(self.wanting[0]) != me):
            actions.append(Want(self.wanting[0]))
        # Hand over what a lighter member asks for (it is subscribed already: it says so by asking).
        released: set[Slot] = set()
        for slot in mine:
            asker = view.wants.get(slot)
            if asker is not None and asker != me and asker in live and load[asker] + 2 <= load[me]:
                actions.append(Release(slot))
                released.add(slot)
                load[me] -= 1
                load[asker] += 1
        # Subscriptions: every shard held, targeted or asked for; nothing else.
        want_shards = {slot[0] for slot in mine if slot not in released} | {slot[0] for slot in targets}
        if self.wanting is not None:
            want_shards.add(self.wanting[0][0])
        return actions + self._resubscribe(want_shards)

    def _resubscribe(self, want_shards: set[int]) -> list[Action]:
        actions: list[Action] = []
        for shard in sorted(want_shards - self.watched.keys()):
            self.watched[shard] = False
            actions.append(Watch(shard))
        for shard in sorted(self.watched.keys() - want_shards):
            del self.watched[shard]
            actions.append(Unwatch(shard))
        return actions

    def _drain_step(self, view: FleetView, others: set[str], mine: list[Slot]) -> list[Action]:
        """Leaving: release each slot a live member asks for (it is subscribed: it says so by asking)."""
        actions: list[Action] = []
        kept: set[int] = set()
        for slot in mine:
            if view.wants.get(slot) in others:
                actions.append(Release(slot))
            else:
                kept.add(slot[0])
        return actions + self._resubscribe(kept)
