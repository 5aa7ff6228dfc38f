"""How long a writer goes on trying a Redis that stopped answering: the outage rule, without I/O.

Redis restarts (a deploy, an upgrade, a crash under a supervisor), loads its data back (``LOADING``), and
a Redis Cluster fails a primary over to its replica: each is seconds of refused or failed calls, after
which the same calls succeed. A collector that exits at the first failed call turns every such moment into
a gap in every stream it owns, for every member at once. So each Redis user of the fleet (the sink's
writes, the member's heartbeat) keeps one :class:`Outage`: told of each failed call (``failed``) it
answers how long to wait before trying again, backing off as :data:`REDIS_RETRY` says (the reconnect
schedule's :class:`~binance_ws.core.backoff.BackoffPolicy`: 50 ms doubling to 1 s), until
``limit_s`` has passed since the first failure of this outage; then ``None``: give up (the member stops,
its exit says why). A call that succeeds ends the outage (``ok`` returns its length). ``limit_s`` 0 gives
up at once (the behaviour without this rule).

Fed the time by the caller, so the rule is tested with a fake clock (tests/fleet/test_outage.py).
"""

from __future__ import annotations

from typing import Final

from binance_ws.core.backoff import BackoffPolicy

#: Seconds a collector keeps trying Redis by default before it gives up (``--redis-outage``).
DEFAULT_OUTAGE_S: Final = 60.0
#: The waits between tries: 50 ms doubling to 1 s, no jitter (a local Redis, not an exchange's limit),
#: no count limit (the outage's length is: ``limit_s``).
REDIS_RETRY: Final = BackoffPolicy(initial_s=0.05, factor=2.0, max_s=1.0, jitter=0.0, max_retries=None)


class Outage:
    """One Redis user's view of an outage: ``failed(now)`` -> seconds to wait, or ``None`` to give up;
    ``ok(now)`` -> how long the outage that just ended lasted (``None`` if there was none)."""

    def __init__(self, limit_s: float = DEFAULT_OUTAGE_S, *, retry: BackoffPolicy = REDIS_RETRY) -> None:
        if limit_s < 0:
            raise ValueError("an outage limit is 0 (give up at once) or more seconds")
        self.limit_s = limit_s
        self.retry = retry
        #: When the current outage began (its first failed call), or None while Redis answers.
        self.since: float | None = None
        self._tries = 0
        #: Outages lived through (each counted once, when it began).
        self.outages = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, now: float) -> float | None:
        """A call failed as Redis does when it is away: wait this long and try again, or ``None``."""
        if self.since is None:
            self.since = now
            self._tries = 0
            self.outages += 1
        left = self.since + self.limit_s - now
        if left <= 0:
            return None
        delay = min(self.retry.base_delay(self._tries), left)
        self._tries += 1
        return delay

    def ok(self, now: float) -> float | None:
        """A call succeeded: the outage (if any) is over; returns its length."""
        since, self.since = self.since, None
        return None if since is None else now - since
