"""When to keep a listen key alive and when to replace it: a pure schedule, fed time and outcomes.

Futures user data still rides on listen keys (../shared/PROTOCOL.md 8), as did spot before 2026-02-20
(6.2): a key lives 60 minutes unless a keep-alive (``PUT``) extends it; Binance recommends one every
30 minutes. What kills user streams in practice is a keep-alive that fails once and is never retried, or
a key that expired while nobody noticed. This schedule never stops: a failed keep-alive is retried soon
(bounded by the key's remaining life), a key the server no longer knows (-1125) or a ``listenKeyExpired``
event asks for a replacement, and a replacement that fails is retried too.

The caller (``engine/userdata.py``) asks :meth:`ListenKeySchedule.due` what to do at ``now``, does it,
and reports the outcome with the ``on_*`` methods.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

#: A listen key expires 60 min after its last keep-alive (PROTOCOL 6.2 and 8).
LISTEN_KEY_TTL_S: Final = 3600.0
#: Binance recommends a keep-alive about every 30 minutes (PROTOCOL 6.2); the seed's ``user_timeout``.
KEEPALIVE_INTERVAL_S: Final = 1800.0
#: After a failed keep-alive or replacement, try again this soon (doubling up to the cap), so that a
#: transient failure costs seconds, not the key.
RETRY_INITIAL_S: Final = 5.0
RETRY_MAX_S: Final = 60.0
#: Error code for "This listenKey does not exist." (PROTOCOL 7.3): the key is gone, replace it.
LISTEN_KEY_GONE: Final = -1125


class Action(enum.Enum):
    """What the schedule wants done now."""

    NOTHING = "nothing"
    #: ``PUT`` the current key.
    KEEPALIVE = "keepalive"
    #: Create a key (``POST``; returns a new one, or the live one extended) and reconnect to it.
    REPLACE = "replace"


@dataclass
class ListenKeySchedule:
    """The keep-alive / replacement schedule of one listen key. Times are seconds on any monotonic clock.

    Raises ValueError if the keep-alive interval is not shorter than the key's lifetime.
    """

    keepalive_interval_s: float = KEEPALIVE_INTERVAL_S
    ttl_s: float = LISTEN_KEY_TTL_S
    retry_initial_s: float = RETRY_INITIAL_S
    retry_max_s: float = RETRY_MAX_S

    def __post_init__(self) -> None:
        if not 0 < self.keepalive_interval_s < self.ttl_s:
            raise ValueError("keep-alive interval must be positive and shorter than the key's lifetime")
        self.key: str | None = None
        #: When the key dies if nothing extends it (the server's view, as far as we know it).
        self.expires_at = 0.0
        self._next_at = 0.0
        self._pending = Action.REPLACE
        self._failures = 0
        #: Keep-alives that failed in a row (for metrics and error events).
        self.failed_keepalives = 0

    # -- questions ----------------------------------------------------------------------------------
    def due(self, now: float) -> Action:
        """What to do at ``now`` (NOTHING until :meth:`next_at`)."""
        return self._pending if now >= self._next_at else Action.NOTHING

    def next_at(self) -> float:
        """When the next action is due."""
        return self._next_at

    # -- outcomes -------------------------------------------------------------------------------------
    def on_key(self, key: str, now: float) -> bool:
        """A ``POST`` returned ``key`` (new or extended); returns True if it differs from the key in use,
        i.e. the stream must reconnect to it."""
        changed = key != self.key
        self.key = key
        self.expires_at = now + self.ttl_s
        self._failures = 0
        self.failed_keepalives = 0
        self._plan(Action.KEEPALIVE, now + self.keepalive_interval_s)
        return changed

    def on_keepalive_ok(self, now: float) -> None:
        """A ``PUT`` succeeded. A replacement asked for meanwhile (``listenKeyExpired`` arriving while
        the ``PUT`` was in flight) still stands."""
        self.expires_at = now + self.ttl_s
        self._failures = 0
        self.failed_keepalives = 0
        if self._pending is not Action.REPLACE:
            self._plan(Action.KEEPALIVE, now + self.keepalive_interval_s)

    def on_keepalive_failed(self, now: float, code: int | None) -> None:
        """A ``PUT`` failed with Binance ``code`` (None: network). -1125 or a dead key: replace it now;
        anything else: retry soon, but never later than the key's expiry."""
        self.failed_keepalives += 1
        if code == LISTEN_KEY_GONE or now >= self.expires_at:
            self._plan(Action.REPLACE, now)
            return
        retry = min(now + self._retry_delay(), self.expires_at)
        self._plan(Action.KEEPALIVE, retry)

    def on_replace_failed(self, now: float) -> None:
        """Creating a key failed: try again after the retry delay."""
        self._plan(Action.REPLACE, now + self._retry_delay())

    def on_expired(self, key: str | None, now: float) -> bool:
        """A ``listenKeyExpired`` event arrived for ``key``; returns True if it was the key in use (then
        a replacement is due now). Events about an older key are ignored."""
        if key is not None and key != self.key:
            return False
        self._plan(Action.REPLACE, now)
        return True

    def _retry_delay(self) -> float:
        delay = min(self.retry_max_s, self.retry_initial_s * 2.0 ** self._failures)
        self._failures += 1
        return delay

    def _plan(self, action: Action, at: float) -> None:
        self._pending = action
        self._next_at = at
