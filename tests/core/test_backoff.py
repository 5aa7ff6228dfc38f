"""Reconnect backoff: growth, cap, jitter bounds, giving up after N failures, reset."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_ws.core.backoff import BACKOFF_MAX_RETRIES, Backoff, BackoffPolicy


def test_defaults_give_up_after_five_like_the_seed() -> None:
    b = Backoff(BackoffPolicy(jitter=0.0))
    delays = [b.next_delay() for _ in range(BACKOFF_MAX_RETRIES)]
    assert delays == [0.25, 0.75, 2.25, 6.75, 20.25]
    assert b.exhausted
    assert b.next_delay() is None
    assert b.failures == BACKOFF_MAX_RETRIES


def test_reset_starts_over() -> None:
    b = Backoff(BackoffPolicy(jitter=0.0, max_retries=2))
    assert b.next_delay() == 0.25
    assert b.next_delay() == 0.75
    assert b.next_delay() is None
    b.reset()
    assert b.failures == 0
    assert b.next_delay() == 0.25


def test_forever_and_at_least() -> None:
    b = Backoff(BackoffPolicy(jitter=0.0, max_retries=None, max_s=1.0))
    delays = [b.next_delay() for _ in range(1000)]
    assert delays[-1] == 1.0 and None not in delays
    assert b.next_delay(at_least=7.5) == 7.5  # a Retry-After longer than the schedule wins


@pytest.mark.parametrize("kwargs", [
    {"initial_s": -1.0}, {"initial_s": 2.0, "max_s": 1.0}, {"factor": 0.5}, {"jitter": 1.0},
    {"max_retries": -1},
])
def test_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


@given(
    initial=st.floats(0.001, 10.0), factor=st.floats(1.0, 4.0), cap=st.floats(10.0, 120.0),
    jitter=st.floats(0.0, 0.99), retries=st.one_of(st.none(), st.integers(0, 30)), seed=st.integers(),
)
def test_backoff_monotone_to_the_cap_and_gives_up_after_n(
        initial: float, factor: float, cap: float, jitter: float, retries: int | None, seed: int) -> None:
    policy = BackoffPolicy(initial, factor, cap, jitter, retries)
    b = Backoff(policy, random.Random(seed))
    previous = 0.0
    handed = 0
    for n in range(40):
        base = policy.base_delay(n)
        assert previous <= base <= cap
        previous = base
        delay = b.next_delay()
        if retries is not None and n >= retries:
            assert delay is None
            continue
        handed += 1
        assert delay is not None
        assert base * (1 - jitter) - 1e-9 <= delay <= base
    assert handed == (40 if retries is None else min(retries, 40))
