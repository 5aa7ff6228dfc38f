"""Rate budgets: token bucket, sliding window, REST weight with Retry-After blocks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_ws.core.budget import SlidingWindow, TokenBucket, WeightBudget


def test_bucket_burst_then_rate() -> None:
    b = TokenBucket(rate=5.0, capacity=5.0)
    assert [b.take(0.0) for _ in range(5)] == [0.0] * 5
    wait = b.take(0.0)
    assert wait == pytest.approx(0.2, abs=1e-5)
    assert b.take(0.1) == pytest.approx(0.1, abs=1e-5)  # a refusal takes nothing
    assert b.take(0.2) == 0.0
    with pytest.raises(ValueError):
        b.take(1.0, 6)
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


def test_bucket_ignores_a_clock_stepping_back() -> None:
    b = TokenBucket(rate=1.0, capacity=1.0)
    assert b.take(10.0) == 0.0
    assert b.take(5.0) > 0  # no tokens appear from going back in time
    assert b.take(11.0) == 0.0


_steps = st.lists(st.tuples(st.floats(0.0, 0.5), st.integers(1, 3)), max_size=200)


@given(rate=st.floats(0.5, 20.0), capacity=st.integers(3, 10), steps=_steps)
def test_bucket_never_allows_more_than_rate_t_plus_capacity(
        rate: float, capacity: int, steps: list[tuple[float, int]]) -> None:
    b = TokenBucket(rate, capacity)
    now = 0.0
    granted: list[tuple[float, int]] = []
    for dt, n in steps:
        now += dt
        wait = b.take(now, n)
        if wait == 0.0:
            granted.append((now, n))
        else:
            # The promised wait is honest: after it (with nothing else taken) the request passes.
            probe = TokenBucket(rate, capacity)
            probe._tokens, probe._last = b._tokens, b._last
            assert probe.take(now + wait + 1e-9, n) == 0.0
    for i, (t0, _) in enumerate(granted):
        total = 0
        for t1, n in granted[i:]:
            total += n
            assert total <= rate * (t1 - t0) + capacity + 1e-6


@given(limit=st.integers(1, 10), window=st.floats(0.1, 5.0), gaps=st.lists(st.floats(0.0, 1.0), max_size=200))
def test_sliding_window_never_exceeds_limit(limit: int, window: float, gaps: list[float]) -> None:
    w = SlidingWindow(limit, window)
    now = 0.0
    times: list[float] = []
    for gap in gaps:
        now += gap
        wait = w.acquire(now)
        if wait == 0.0:
            times.append(now)
        else:
            assert w.acquire(now + wait) == 0.0
            times.append(now + wait)
            now += wait
    for i, t0 in enumerate(times):
        assert sum(1 for t in times[i:] if t < t0 + window) <= limit


def test_sliding_window_connection_attempts() -> None:
    w = SlidingWindow(300, 300.0)  # PROTOCOL 2: 300 connection attempts per 5 minutes
    assert all(w.acquire(i * 0.01) == 0.0 for i in range(300))
    wait = w.acquire(3.0)
    assert wait == pytest.approx(300.0 - 3.0, abs=1e-5)
    assert w.used(3.0) == 300
    assert w.acquire(300.0) == 0.0  # the first attempt has left the window
    with pytest.raises(ValueError):
        w.wait(0.0, limit=0)


def test_weight_budget_and_retry_after() -> None:
    b = WeightBudget(limit=100, window_s=60.0)
    assert b.spend(0.0, 60) == 0.0
    assert b.spend(1.0, 30) == 0.0
    assert b.spend(2.0, 20) == pytest.approx(58.0, abs=1e-5)  # needs the first 60 to leave the window
    assert b.used(2.0) == 90
    assert b.spend(60.0, 20) == 0.0
    b.block_until(70.0)  # a 429 with Retry-After: 10
    assert b.spend(65.0, 1) == pytest.approx(5.0, abs=1e-5)
    b.block_until(68.0)  # an earlier block does not shorten the current one
    assert b.blocked_until() == 70.0
    assert b.spend(70.0, 1) == 0.0
    with pytest.raises(ValueError):
        b.spend(71.0, 101)


@given(st.lists(st.tuples(st.floats(0.0, 5.0), st.integers(1, 50)), max_size=200))
def test_weight_budget_never_overspends(steps: list[tuple[float, int]]) -> None:
    b = WeightBudget(limit=100, window_s=10.0)
    now = 0.0
    spent: list[tuple[float, int]] = []
    for dt, weight in steps:
        now += dt
        wait = b.spend(now, weight)
        if wait:
            now += wait
            assert b.spend(now, weight) == 0.0
        spent.append((now, weight))
    for i, (t0, _) in enumerate(spent):
        assert sum(w for t, w in spent[i:] if t < t0 + 10.0) <= 100
