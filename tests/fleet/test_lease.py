"""The fleet's lease policy over simulated time: members step on a fake clock against an in-memory lease
table that behaves as the Redis keys do (SET NX PX, compare-and-renew, compare-and-delete)."""

from __future__ import annotations

from collections import Counter

import pytest

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

TTL = 1000


class World:
    def __init__(self, shards: int, redundancy: int) -> None:
        self.shards = shards
        self.redundancy = redundancy
        self.now = 0
        self.leases: dict[Slot, Lease] = {}
        self.wants: dict[Slot, tuple[str, int]] = {}
        self.beats: dict[str, int] = {}
        self.members: dict[str, FleetPolicy] = {}
        self.dead: set[str] = set()
        self.draining: set[str] = set()
        self.next_step: dict[str, int] = {}
        #: (time, shard) at which some live member's subscription of a shard was live.
        self.uncovered: Counter[int] = Counter()

    def join(self, name: str) -> FleetPolicy:
        p = FleetPolicy(name, self.shards, self.redundancy, TTL, self.now)
        self.members[name] = p
        self.next_step[name] = self.now + len(self.members) * 7  # staggered, as real processes are
        return p

    def view(self) -> FleetView:
        now = self.now
        return FleetView(now, dict(self.beats),
                         {s: lease for s, lease in self.leases.items() if lease.expires_ms > now},
                         {s: w for s, (w, exp) in self.wants.items() if exp > now},
                         frozenset(self.draining))

    def apply(self, name: str, actions: list) -> None:
        now = self.now
        p = self.members[name]
        for a in actions:
            if isinstance(a, Claim):
                cur = self.leases.get(a.slot)
                if cur is None or cur.expires_ms <= now:
                    self.leases[a.slot] = Lease(name, now + TTL)
            elif isinstance(a, Renew):
                cur = self.leases.get(a.slot)
                if cur is not None and cur.owner == name and cur.expires_ms > now:
                    self.leases[a.slot] = Lease(name, now + TTL)
            elif isinstance(a, Release):
                cur = self.leases.get(a.slot)
                if cur is not None and cur.owner == name:
                    del self.leases[a.slot]
            elif isinstance(a, Want):
                self.wants[a.slot] = (name, now + TTL)
            elif isinstance(a, Watch):
                p.ready(a.shard)  # the subscription is live by the next step
            elif isinstance(a, Unwatch):
                pass

    def run(self, until: int, tick: int = 10) -> None:
        while self.now < until:
            self.now += tick
            for name, p in self.members.items():
                if name in self.dead or self.now < self.next_step[name]:
                    continue
                self.beats[name] = self.now
                self.apply(name, p.step(self.view()))
                self.next_step[name] = self.now + p.heartbeat_ms
            live = [p for n, p in self.members.items() if n not in self.dead]
            for shard in range(self.shards):
                # A leaving member's subscriptions count: it keeps collecting until handed over.
                if self.now > 2 * TTL and not any(p.watched.get(shard) for p in live):
                    self.uncovered[shard] += 1

    def load(self) -> Counter[str]:
        return Counter(lease.owner for lease in self.leases.values() if lease.expires_ms > self.now)

    def held_by(self, name: str) -> set[Slot]:
        return {s for s, lease in self.leases.items() if lease.owner == name and lease.expires_ms > self.now}


def check_consistent(w: World) -> None:
    live = [n for n in w.members if n not in w.dead]
    assert len(w.leases) == w.shards * w.redundancy
    assert all(w.leases[s].owner in live for s in w.leases)
    for shard in range(w.shards):  # never two slots of one shard on one member
        owners = [w.leases[(shard, k)].owner for k in range(w.redundancy)]
        assert len(set(owners)) == len(owners)
    for name in live:  # each member subscribes to exactly what it holds
        assert set(w.members[name].watched) == {s for s, _ in w.held_by(name)}
    loads = [w.load()[n] for n in live]
    assert max(loads) - min(loads) <= 1, loads


def test_members_started_together_share_the_slots_evenly() -> None:
    w = World(8, 1)
    for n in ("a", "b", "c"):
        w.join(n)
    w.run(3 * TTL)
    check_consistent(w)
    assert sorted(w.load().values()) == [2, 3, 3]


def test_a_dead_members_shards_are_watched_before_its_lease_lapses_and_taken_within_the_ttl() -> None:
    w = World(8, 1)
    for n in ("a", "b", "c"):
        w.join(n)
    w.run(3 * TTL)
    victim = "b"
    lost = w.held_by(victim)
    assert lost
    lapse = max(w.leases[s].expires_ms for s in lost)
    w.dead.add(victim)
    killed = w.now
    watched_at: dict[int, int] = {}
    while w.now < killed + 2 * TTL:
        w.run(w.now + 10)
        for shard, _ in lost:
            if shard not in watched_at and any(w.members[n].watched.get(shard) for n in ("a", "c")):
                watched_at[shard] = w.now
        if all(s in w.leases and w.leases[s].owner != victim and w.leases[s].expires_ms > w.now
               for s in lost):
            break
    taken = w.now
    assert taken - killed <= TTL + w.members["a"].heartbeat_ms
    assert all(t < lapse for t in watched_at.values()) and len(watched_at) == len(lost)
    w.run(w.now + 2 * TTL)
    check_consistent(w)


def test_redundancy_two_keeps_every_shard_covered_through_a_death() -> None:
    w = World(8, 2)
    for n in ("a", "b", "c"):
        w.join(n)
    w.run(3 * TTL)
    check_consistent(w)
    w.dead.add("a")
    w.run(w.now + 3 * TTL)
    check_consistent(w)
    assert not w.uncovered, w.uncovered


def test_a_late_member_gets_its_share_by_handover_without_an_uncovered_moment() -> None:
    w = World(9, 1)
    w.join("a")
    w.run(3 * TTL)
    assert w.load() == {"a": 9}
    w.join("b")
    w.join("c")
    w.run(w.now + 12 * TTL)
    check_consistent(w)
    assert sorted(w.load().values()) == [3, 3, 3]
    assert not w.uncovered, w.uncovered


def test_more_redundancy_than_members_leaves_slots_vacant_rather_than_doubling_up() -> None:
    w = World(4, 3)
    w.join("a")
    w.join("b")
    w.run(3 * TTL)
    assert len(w.leases) == 8
    for shard in range(4):
        assert {w.leases[(shard, k)].owner for k in range(3) if (shard, k) in w.leases} == {"a", "b"}


def test_shard_of_is_stable_and_in_range() -> None:
    assert shard_of("btcusdt@trade", 16) == shard_of("btcusdt@trade", 16)
    assert {shard_of(f"s{i}@trade", 4) for i in range(100)} == {0, 1, 2, 3}


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        FleetPolicy("a", 0, 1, TTL, 0)


def test_the_successor_steps_again_the_moment_an_orphaned_lease_lapses() -> None:
    w = World(4, 1)
    for n in ("a", "b"):
        w.join(n)
    w.run(3 * TTL)
    lost = w.held_by("b")
    lapse = min(w.leases[s].expires_ms for s in lost)
    w.dead.add("b")
    p = w.members["a"]
    while not any(p.watched.get(s) is not None for s, _ in lost):  # "a" suspects b: watches its shards
        w.run(w.now + 10)
    while lapse - w.now >= p.heartbeat_ms:
        w.run(w.now + 10)
    assert w.now < lapse
    p.step(w.view())
    assert p.next_step_ms == lapse - w.now + 1


def test_a_leaving_member_hands_every_slot_over_without_an_uncovered_moment() -> None:
    w = World(9, 1)
    for n in ("a", "b", "c"):
        w.join(n)
    w.run(3 * TTL)
    held = w.held_by("b")
    assert held
    w.draining.add("b")
    w.members["b"].drain()
    w.run(w.now + 3 * TTL)
    assert not w.held_by("b") and not w.members["b"].watched
    assert sorted(w.load().values()) == [4, 5]
    assert not w.uncovered, w.uncovered
    # Without the handover (b simply gone), the same shards go uncovered for a while.
    w2 = World(9, 1)
    for n in ("a", "b", "c"):
        w2.join(n)
    w2.run(3 * TTL)
    w2.dead.add("b")
    w2.run(w2.now + 3 * TTL)
    assert w2.uncovered
