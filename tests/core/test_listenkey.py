"""The listen-key schedule: keep-alives on time, failures retried, dead keys replaced, never stuck."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_ws.core.listenkey import LISTEN_KEY_GONE, Action, ListenKeySchedule


def test_keepalive_every_interval_after_success() -> None:
    s = ListenKeySchedule(keepalive_interval_s=100, ttl_s=300)
    assert s.due(0) is Action.REPLACE  # no key yet
    assert s.on_key("k1", 0) is True
    assert s.due(99.9) is Action.NOTHING and s.due(100) is Action.KEEPALIVE
    s.on_keepalive_ok(100)
    assert s.next_at() == 200 and s.expires_at == 400
    assert s.on_key("k1", 150) is False  # POST handed back the same key: no reconnect


def test_failed_keepalive_is_retried_before_the_key_dies() -> None:
    s = ListenKeySchedule(keepalive_interval_s=100, ttl_s=300, retry_initial_s=5, retry_max_s=40)
    s.on_key("k", 0)
    s.on_keepalive_failed(100, None)
    assert s.due(104) is Action.NOTHING and s.due(105) is Action.KEEPALIVE
    s.on_keepalive_failed(105, -1001)
    assert s.next_at() == 115  # doubling
    s.on_keepalive_failed(298, None)
    assert s.next_at() == 300  # never later than expiry
    assert s.failed_keepalives == 3
    s.on_keepalive_failed(300, None)
    assert s.due(300) is Action.REPLACE  # the key is dead by now


def test_gone_key_and_expired_event_ask_for_a_replacement() -> None:
    s = ListenKeySchedule(keepalive_interval_s=100, ttl_s=300)
    s.on_key("k", 0)
    s.on_keepalive_failed(100, LISTEN_KEY_GONE)
    assert s.due(100) is Action.REPLACE
    s.on_replace_failed(100)
    assert s.due(100) is Action.NOTHING and s.due(s.next_at()) is Action.REPLACE
    assert s.on_key("k2", 110) is True
    assert s.on_expired("k", 120) is False  # about the old key: ignored
    assert s.due(120) is Action.NOTHING
    assert s.on_expired("k2", 130) is True and s.due(130) is Action.REPLACE


def test_expiry_during_a_keepalive_still_replaces() -> None:
    s = ListenKeySchedule(keepalive_interval_s=100, ttl_s=300)
    s.on_key("k", 0)
    assert s.on_expired("k", 100)  # arrives while the PUT is in flight
    s.on_keepalive_ok(101)
    assert s.due(101) is Action.REPLACE


def test_interval_must_be_shorter_than_the_lifetime() -> None:
    with pytest.raises(ValueError):
        ListenKeySchedule(keepalive_interval_s=3600, ttl_s=3600)


outcome = st.one_of(
    st.tuples(st.just("ok"), st.none()),
    st.tuples(st.just("fail"), st.sampled_from([None, -1001, -1003, LISTEN_KEY_GONE])),
    st.tuples(st.just("replace_failed"), st.none()),
    st.tuples(st.just("key"), st.sampled_from(["a", "b"])),
    st.tuples(st.just("expired"), st.sampled_from(["a", "b", None])),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.floats(0, 500), outcome), max_size=40))
def test_schedule_always_has_a_next_step_in_time(steps: list[tuple[float, tuple[str, object]]]) -> None:
    s = ListenKeySchedule(keepalive_interval_s=100, ttl_s=300, retry_initial_s=5, retry_max_s=60)
    now = 0.0
    s.on_key("a", now)
    for dt, (kind, arg) in steps:
        now += dt
        if kind == "ok":
            s.on_keepalive_ok(now)
        elif kind == "fail":
            s.on_keepalive_failed(now, arg)  # type: ignore[arg-type]
        elif kind == "replace_failed":
            s.on_replace_failed(now)
        elif kind == "key":
            s.on_key(str(arg), now)
        else:
            s.on_expired(arg, now)  # type: ignore[arg-type]
        # Something is always planned (possibly overdue, then due at once): the timer never ends.
        action = s.due(max(now, s.next_at()))
        assert action in (Action.KEEPALIVE, Action.REPLACE)
        if kind == "expired":
            continue  # about an old key it changes nothing; otherwise a replacement is due now
        # Every other outcome plans from now and never too late; only a replacement may stay overdue
        # (a keep-alive that succeeds does not cancel it).
        if action is Action.KEEPALIVE:
            assert now <= s.next_at() <= s.expires_at
            assert s.next_at() <= now + s.keepalive_interval_s
        else:
            assert s.next_at() <= now + s.retry_max_s
