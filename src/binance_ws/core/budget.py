"""Rate budgets as plain objects fed the current time: token bucket, sliding window, request weight.

Pure and synchronous: every method takes ``now`` (seconds, any monotonic origin) and answers how long
the caller must wait; nothing sleeps here. Binance's limits (PROTOCOL.md section 2: 5 incoming messages
a second per connection, 300 connection attempts per 5 minutes per IP; section 7.3: REST weight, 429/418
with Retry-After) live in :mod:`binance_ws.markets`; these objects only enforce whatever they are given.
"""

from __future__ import annotations

from collections import deque
from typing import Final

#: Added to every wait: a caller that sleeps exactly the answer must find the budget open, and
#: ``now + (deadline - now)`` can round below ``deadline``. One microsecond is far above float
#: resolution for monotonic clocks and far below any Binance limit's granularity.
_EPS: Final = 1e-6


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up; starts full.

    Over any interval of length t it grants at most ``capacity + rate * t`` tokens. Raises ValueError
    for a non-positive rate or capacity, or for a request larger than the capacity (it could never pass).
    """

    __slots__ = ("_last", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("token bucket needs a positive rate and capacity")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self._tokens = float(capacity)
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        last = self._last
        # A clock that steps back grants nothing rather than raising.
        if last is not None and now > last:
            self._tokens = min(self.capacity, self._tokens + (now - last) * self.rate)
        if last is None or now > last:
            self._last = now

    def available(self, now: float) -> float:
        """Tokens available at ``now``."""
        self._refill(now)
        return self._tokens

    def take(self, now: float, n: float = 1) -> float:
        """Take ``n`` tokens: 0.0 if taken now, else the seconds until they will be there (nothing taken)."""
        if n > self.capacity:
            raise ValueError(f"cannot take {n} tokens from a bucket of {self.capacity}")
        self._refill(now)
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self.rate + _EPS


class SlidingWindow:
    """At most ``limit`` events in any window of ``window_s`` seconds (e.g. 300 connects per 300 s).

    Stricter than a token bucket of the same rate: no burst above ``limit`` in any window, which is how
    a server counting events in a rolling window sees it. Raises ValueError for non-positive arguments.
    """

    __slots__ = ("_times", "limit", "window_s")

    def __init__(self, limit: int, window_s: float) -> None:
        if limit <= 0 or window_s <= 0:
            raise ValueError("sliding window needs a positive limit and window")
        self.limit = int(limit)
        self.window_s = float(window_s)
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        times = self._times
        horizon = now - self.window_s
        while times and times[0] <= horizon:
            times.popleft()

    def wait(self, now: float, limit: int | None = None) -> float:
        """Seconds until one more event is allowed (0.0: allowed now); records nothing.

        ``limit`` (default: the window's own) lets a caller keep part of the window in reserve; it must
        be at least 1 (ValueError).
        """
        cap = self.limit if limit is None else limit
        if cap < 1:
            raise ValueError("a sliding-window limit must be at least 1")
        self._expire(now)
        times = self._times
        if len(times) < cap:
            return 0.0
        # Once the oldest len - cap + 1 events have left the window, one more fits under ``cap``.
        return max(times[len(times) - cap] + self.window_s - now, 0.0) + _EPS

    def acquire(self, now: float) -> float:
        """Record one event at ``now`` if allowed and return 0.0, else the seconds to wait (nothing
        recorded)."""
        delay = self.wait(now)
        if delay == 0.0:
            self._times.append(now)
        return delay

    def record(self, now: float) -> None:
        """Count an event that happened regardless of the budget (e.g. a pong that had to go out)."""
        self._expire(now)
        self._times.append(now)

    def used(self, now: float) -> int:
        """Events counted in the window ending at ``now``."""
        self._expire(now)
        return len(self._times)


class WeightBudget:
    """REST request weight: at most ``limit`` weight per ``window_s``, plus bans from 429/418.

    :meth:`spend` answers how long to wait before a request of that weight may go; :meth:`block_until`
    records a server-imposed pause (``now + Retry-After``) that overrides the local count. Raises
    ValueError for non-positive limits or a single request heavier than the whole budget.
    """

    __slots__ = ("_blocked_until", "_spent", "limit", "window_s")

    def __init__(self, limit: int, window_s: float) -> None:
        if limit <= 0 or window_s <= 0:
            raise ValueError("weight budget needs a positive limit and window")
        self.limit = int(limit)
        self.window_s = float(window_s)
        self._spent: deque[tuple[float, int]] = deque()
        self._blocked_until = float("-inf")

    def _expire(self, now: float) -> int:
        spent = self._spent
        horizon = now - self.window_s
        while spent and spent[0][0] <= horizon:
            spent.popleft()
        return sum(w for _, w in spent)

    def spend(self, now: float, weight: int) -> float:
        """Spend ``weight`` at ``now`` and return 0.0, or return the seconds to wait (nothing spent)."""
        if weight > self.limit:
            raise ValueError(f"a request of weight {weight} exceeds the whole budget of {self.limit}")
        if now < self._blocked_until:
            return self._blocked_until - now + _EPS
        used = self._expire(now)
        if used + weight <= self.limit:
            self._spent.append((now, weight))
            return 0.0
        # Wait until enough of the oldest spending leaves the window (weight <= limit, so the spending
        # in the window always covers the excess).
        excess = used + weight - self.limit
        freed = 0
        for t, w in self._spent:  # noqa: B007 - t is the answer once the loop stops
            freed += w
            if freed >= excess:
                break
        return max(t + self.window_s - now, 0.0) + _EPS

    def block_until(self, until: float) -> None:
        """Refuse every request before ``until`` (a 429/418 ``Retry-After``); later blocks extend it."""
        self._blocked_until = max(self._blocked_until, until)

    def blocked_until(self) -> float:
        """When the current server-imposed pause ends (``-inf`` if none)."""
        return self._blocked_until

    def used(self, now: float) -> int:
        """Weight spent in the window ending at ``now``."""
        return self._expire(now)
