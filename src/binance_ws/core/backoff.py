"""Reconnect delays: exponential backoff with jitter, giving up after a number of failures in a row.

Pure: the caller asks for the next delay, sleeps it (or not) and reports success with :meth:`Backoff.reset`.
The schedule follows the usual "exponential backoff with jitter" pattern (AWS architecture blog,
"Exponential Backoff And Jitter", 2015) as python-websockets' ``client.backoff`` does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

#: First retry after a quarter second: a dropped connection on a healthy network usually reconnects
#: at once, and 300 connection attempts per 5 minutes (PROTOCOL 2) leave room for a fast first try.
BACKOFF_INITIAL_S: Final = 0.25
#: Tripling makes the seed's 5 attempts span about 30 s (0.25 + 0.75 + 2.25 + 6.75 + 20.25): a fast
#: first retry for a plain drop, and enough patience for a server restart before giving up.
BACKOFF_FACTOR: Final = 3.0
#: Never wait more than 30 s: long enough to ride out a Binance restart, short enough to not lose a
#: day-trading session.
BACKOFF_MAX_S: Final = 30.0
#: Each delay is shortened by a random fraction up to 20% so that many connections dropped together
#: (server restart) do not reconnect in lockstep.
BACKOFF_JITTER: Final = 0.2
#: The seed library (python-binance ``MAX_RECONNECTS``) gives up after 5 failed reconnects in a row.
BACKOFF_MAX_RETRIES: Final = 5


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait before each reconnect attempt, and when to give up.

    The n-th delay (n from 0) is ``min(max_s, initial_s * factor**n)`` minus up to ``jitter`` of it;
    ``max_retries`` None retries forever. Raises ValueError on nonsensical values.
    """

    initial_s: float = BACKOFF_INITIAL_S
    factor: float = BACKOFF_FACTOR
    max_s: float = BACKOFF_MAX_S
    jitter: float = BACKOFF_JITTER
    max_retries: int | None = BACKOFF_MAX_RETRIES

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s:
            raise ValueError("backoff needs 0 <= initial_s <= max_s")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must be >= 0 or None")

    def base_delay(self, n: int) -> float:
        """The delay before retry ``n`` (from 0) without jitter: non-decreasing in ``n``, capped at max_s."""
        if self.initial_s == 0:
            return 0.0
        # Step by step, stopping at the cap: factor**n would overflow for large n.
        delay = self.initial_s
        for _ in range(n):
            delay *= self.factor
            if delay >= self.max_s:
                return self.max_s
        return min(delay, self.max_s)


class Backoff:
    """The running state of one connection's reconnect schedule.

    Call :meth:`next_delay` each time a connection is lost or an attempt fails; it returns the seconds
    to wait before the next attempt, or None once ``policy.max_retries`` attempts in a row have been
    handed out (give up). Call :meth:`reset` once a connection is up and healthy.
    """

    __slots__ = ("_rng", "failures", "policy")

    def __init__(self, policy: BackoffPolicy | None = None, rng: random.Random | None = None) -> None:
        self.policy = policy or BackoffPolicy()
        self._rng = rng or random.Random()
        #: Consecutive failures so far: each :meth:`next_delay` call counts one.
        self.failures = 0

    def next_delay(self, at_least: float = 0.0) -> float | None:
        """Seconds to wait before the next attempt (never less than ``at_least``, e.g. a Retry-After),
        or None to give up."""
        policy = self.policy
        if policy.max_retries is not None and self.failures >= policy.max_retries:
            return None
        delay = policy.base_delay(self.failures)
        if policy.jitter:
            delay -= delay * policy.jitter * self._rng.random()
        self.failures += 1
        return max(delay, at_least)

    @property
    def exhausted(self) -> bool:
        """Whether the next :meth:`next_delay` will give up."""
        return self.policy.max_retries is not None and self.failures >= self.policy.max_retries

    def reset(self) -> None:
        """Forget past failures (a connection succeeded)."""
        self.failures = 0
