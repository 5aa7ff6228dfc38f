"""Subscription plan (streams onto connections) and control-message pacing."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_ws.core.plan import (
    Action,
    Close,
    ControlMessage,
    ControlScheduler,
    Open,
    Subscribe,
    SubscriptionPlan,
    Unsubscribe,
)


def _names(n: int, prefix: str = "s") -> list[str]:
    return [f"{prefix}{i}@trade" for i in range(n)]


def test_fills_before_opening_and_shards_past_the_limit() -> None:
    plan = SubscriptionPlan(max_streams_per_connection=1024)
    actions = plan.add(_names(3000))
    assert [type(a) for a in actions] == [Open, Open, Open]
    assert [len(a.streams) for a in actions if isinstance(a, Open)] == [1024, 1024, 952]
    assert plan.connections() == ["c1", "c2", "c3"]
    assert len(plan) == 3000
    assert plan.add(_names(10)) == []  # idempotent
    more = plan.add(_names(80, "x"))
    # The free room on c3 (72) is used, in SUBSCRIBE batches, before a fourth connection opens.
    assert more == [Subscribe("c3", tuple(_names(72, "x"))), Open("c4", tuple(_names(80, "x")[72:]))]


def test_subscribe_batches_respect_the_params_cap() -> None:
    plan = SubscriptionPlan(max_params_per_message=200)
    plan.add(["a@trade"])
    actions = plan.add(_names(450))
    assert [len(a.streams) for a in actions if isinstance(a, Subscribe)] == [200, 200, 50]
    assert all(a.conn_id == "c1" for a in actions if isinstance(a, Subscribe))


def test_remove_unsubscribes_closes_empty_and_reuses_room() -> None:
    plan = SubscriptionPlan(max_streams_per_connection=2, connection_prefix="conn-")
    assert plan.add(["a", "b", "c"]) == [Open("conn-1", ("a", "b")), Open("conn-2", ("c",))]
    assert plan.remove(["a", "zzz"]) == [Unsubscribe("conn-1", ("a",))]
    assert plan.remove(["c"]) == [Close("conn-2")]
    assert plan.connections() == ["conn-1"]
    assert plan.connection_of("c") is None and "c" not in plan
    assert plan.add(["d", "e"]) == [Subscribe("conn-1", ("d",)), Open("conn-3", ("e",))]  # ids never reused
    assert plan.streams_of("conn-1") == ("b", "d")
    assert plan.streams_of("nope") == ()
    with pytest.raises(ValueError):
        SubscriptionPlan(max_streams_per_connection=0)


_ops = st.lists(st.tuples(st.booleans(), st.lists(st.integers(0, 60), max_size=25)), max_size=40)


@given(max_streams=st.integers(1, 12), max_params=st.integers(1, 5), ops=_ops)
def test_plan_invariants_after_any_sequence(max_streams: int, max_params: int,
                                            ops: list[tuple[bool, list[int]]]) -> None:
    plan = SubscriptionPlan(max_streams, max_params)
    # What the connections would carry if every action were carried out as returned.
    server: dict[str, list[str]] = {}
    wanted: set[str] = set()
    only_adds = True
    for is_add, ids in ops:
        names = [f"s{i}" for i in ids]
        actions: list[Action] = plan.add(names) if is_add else plan.remove(names)
        only_adds = only_adds and is_add
        if is_add:
            wanted.update(names)
        else:
            wanted.difference_update(names)
        for a in actions:
            if isinstance(a, Open):
                assert a.conn_id not in server
                server[a.conn_id] = list(a.streams)
            elif isinstance(a, Subscribe):
                assert 1 <= len(a.streams) <= max_params
                assert not set(a.streams) & set(server[a.conn_id])
                server[a.conn_id].extend(a.streams)
            elif isinstance(a, Unsubscribe):
                assert 1 <= len(a.streams) <= max_params
                assert set(a.streams) <= set(server[a.conn_id])
                server[a.conn_id] = [s for s in server[a.conn_id] if s not in a.streams]
            else:
                del server[a.conn_id]
        # Every wanted stream is on exactly one connection, no connection is over the limit or empty.
        placed = [s for members in server.values() for s in members]
        assert sorted(placed) == sorted(wanted)
        assert all(0 < len(members) <= max_streams for members in server.values())
        assert {c: list(plan.streams_of(c)) for c in plan.connections()} == server
        assert all(plan.connection_of(s) in server for s in wanted)
        if only_adds:
            assert len(server) == math.ceil(len(wanted) / max_streams)


def test_control_message_wire_shape() -> None:
    msg = ControlMessage(7, "SUBSCRIBE", ("bnbbtc@trade", "bnbbtc@depth"))
    assert orjson.loads(msg.encode()) == {"method": "SUBSCRIBE", "params": ["bnbbtc@trade", "bnbbtc@depth"],
                                          "id": 7}


def test_scheduler_coalesces_and_paces() -> None:
    sched = ControlScheduler(5.0, max_params_per_message=200, window_s=1.0, reserve=1)
    for name in _names(1000):
        sched.subscribe([name])  # one call per stream, as a facade adding sockets one by one would
    sent, wait = sched.poll(0.0)
    assert [len(m.params) for m in sent] == [200, 200, 200, 200]  # 4 slots: one kept for pongs
    assert [m.id for m in sent] == [1, 2, 3, 4]
    assert wait == pytest.approx(1.0, abs=1e-5)
    assert sched.poll(0.5) == ([], pytest.approx(0.5, abs=1e-5))
    sent, wait = sched.poll(1.0 + 1e-5)
    assert [len(m.params) for m in sent] == [200] and wait is None
    assert sched.pending == 0


def test_scheduler_cancels_and_orders_unsubscribe_first() -> None:
    sched = ControlScheduler()
    sched.subscribe(["a", "b"])
    sched.unsubscribe(["b", "c"])  # b was never sent: forgotten; c is on the server: unsubscribed
    sched.subscribe(["c"])  # c's unsubscribe is still queued: dropped, c stays subscribed
    sched.unsubscribe(["d"])
    sched.request("LIST_SUBSCRIPTIONS")
    sent, _ = sched.poll(0.0)
    assert [(m.method, m.params) for m in sent] == [
        ("LIST_SUBSCRIPTIONS", ()), ("UNSUBSCRIBE", ("d",)), ("SUBSCRIBE", ("a",))]
    sched.subscribe(["x"])
    sched.clear()
    assert sched.pending == 0 and sched.poll(5.0) == ([], None)
    with pytest.raises(ValueError):
        ControlScheduler(1.0, reserve=1)


def test_scheduler_counts_pongs() -> None:
    sched = ControlScheduler(5.0, window_s=1.0, reserve=1)
    for t in (0.0, 0.1, 0.2):
        sched.record_frame(t)
    sched.subscribe(["a", "b"])
    sched.max_params_per_message = 1
    sent, wait = sched.poll(0.3)
    assert len(sent) == 1  # 3 pongs + 1 control = the 4 control-usable slots
    assert wait == pytest.approx(0.7, abs=1e-5)


@given(
    rate=st.sampled_from([5.0, 10.0]),
    events=st.lists(st.tuples(st.floats(0.0, 0.4), st.sampled_from(["sub", "unsub", "pong", "poll"]),
                              st.lists(st.integers(0, 30), max_size=8)), max_size=120),
)
def test_scheduler_never_exceeds_the_rate_and_converges(
        rate: float, events: list[tuple[float, str, list[int]]]) -> None:
    window = 1.0
    sched = ControlScheduler(rate, max_params_per_message=3, window_s=window, reserve=1)
    server: set[str] = set()
    desired: set[str] = set()
    frames: list[float] = []
    pongs: list[float] = []
    now = 0.0

    def apply(sent: list[ControlMessage]) -> None:
        for m in sent:
            frames.append(now)
            assert len(m.params) <= 3
            if m.method == "SUBSCRIBE":
                assert not set(m.params) & server
                server.update(m.params)
            else:
                assert set(m.params) <= server
                server.difference_update(m.params)

    for dt, kind, ids in events:
        now += dt
        names = [f"s{i}" for i in ids]
        if kind == "sub":
            fresh = [n for n in dict.fromkeys(names) if n not in desired]
            desired.update(fresh)
            sched.subscribe(fresh)
        elif kind == "unsub":
            gone = [n for n in dict.fromkeys(names) if n in desired]
            desired.difference_update(gone)
            sched.unsubscribe(gone)
        elif kind == "pong" and not [p for p in pongs if p > now - window]:
            pongs.append(now)  # at most one pong a window: the reserve
            frames.append(now)
            sched.record_frame(now)
        else:
            apply(sched.poll(now)[0])
    while True:
        sent, wait = sched.poll(now)
        apply(sent)
        if wait is None:
            break
        now += wait
    assert server == desired
    frames.sort()
    for i, t0 in enumerate(frames):
        assert sum(1 for t in frames[i:] if t < t0 + window) <= rate
