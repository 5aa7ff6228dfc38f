"""The life of one connection, Sans-I/O: when to ping, when it is dead, when to rotate, when to reopen.

Two plain objects, fed events and the time (seconds on any monotonic clock) and answering with what to
do; nothing here sleeps, sends or reads a clock. python-websockets' ``protocol.py`` is the model: the
asyncio layer (``engine/connection.py`` for market streams, ``engine/wsapi.py`` for WebSocket API and
user-data sessions) carries the actions out and feeds back what happened, and tests run days of
connection life in milliseconds with a fake clock (``tests/core/test_lifecycle.py``).

:class:`Liveness` watches one socket. **Silence is normal on Binance**: most symbols are quiet for
seconds or minutes, and a book that did not change sends nothing (PROTOCOL 4.12). So silence never
kills a connection; it makes us ask. After ``ping_interval_s`` without any frame from the server we
send a ping; only a ping left unanswered for ``ping_timeout_s`` (no frame of any kind since it left),
or a server that stopped pinging for ``server_ping_grace`` times its own cadence (PROTOCOL 2: every
20 s on spot, 3 min on futures), marks the socket dead. A stalled server is therefore found within
``ping_interval_s + ping_timeout_s`` of its last frame.

:class:`Lifecycle` strings sockets together: open, watch, rotate before the server's 24 h cut or on
``serverShutdown``, and after a loss wait (exponential backoff with jitter) and reopen, until the
retries are spent. Every attempt, of any cause, also passes the shared attempt budget (PROTOCOL 2: 300
connection attempts per 5 minutes per IP). A socket that dies within ``stable_after_s`` of opening is a
*flap*: it does not reset the backoff, so a server that accepts and then drops every connection draws
ever longer waits (and, with the seed's 5 retries, the documented give-up) instead of a reconnect loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from binance_ws.core.backoff import Backoff, BackoffPolicy

#: Our ping after this many of the server's ping cadences of silence, by default (PROTOCOL 2: 20 s on
#: spot, so 30 s): a healthy connection hears a server ping within one cadence, so a longer silence is
#: worth a question, and the server's own ping always comes first (our ping and pong share one slot of
#: the 5-a-second message budget: a ping of ours just before the server's would delay its pong).
PING_AFTER_SERVER_CADENCES: Final = 1.5
DEFAULT_PING_TIMEOUT_S: Final = 10.0
#: A server that has not pinged for this many of its own cadences has stopped keeping the connection
#: alive: Binance pings every 20 s and closes a connection that misses a minute of pongs (3 cadences).
SERVER_PING_GRACE: Final = 3.0
#: A socket must live this long before its opening counts as a success (backoff reset): one that
#: dies sooner escalates the next delay (flap damping). Our choice: longer than any handshake plus
#: subscription, far shorter than a healthy connection's life.
DEFAULT_STABLE_AFTER_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    """How one socket's health is judged.

    ``ping_interval_s``: silence (no frame at all) after which we ping. ``ping_timeout_s``: how long a
    ping may go unanswered. ``server_ping_interval_s``: the server's own ping cadence (None: the server
    does not ping, so its silence on pings proves nothing). ``rotate_after_s``: socket age at which it is
    replaced (infinite: never). Raises ValueError on nonsensical values.
    """

    ping_interval_s: float
    ping_timeout_s: float = DEFAULT_PING_TIMEOUT_S
    server_ping_interval_s: float | None = None
    server_ping_grace: float = SERVER_PING_GRACE
    rotate_after_s: float = math.inf

    def __post_init__(self) -> None:
        if not self.ping_interval_s > 0 or not self.ping_timeout_s > 0:
            raise ValueError("ping interval and timeout must be positive")
        if self.server_ping_interval_s is not None and not self.server_ping_interval_s > 0:
            raise ValueError("the server's ping interval must be positive")
        if not self.server_ping_grace >= 1:
            raise ValueError("the server ping grace must be at least one cadence")
        if not self.rotate_after_s > 0:
            raise ValueError("rotate_after_s must be positive (math.inf: never)")


# -- what Liveness.poll answers -------------------------------------------------------------------
#: Send a ping now.
PING: Final = "ping"
#: Replace the socket (make-before-break): it reached its age.
ROTATE: Final = "rotate"
#: The socket is dead: no answer to our ping in time.
NO_PONG: Final = "no pong"
#: The socket is dead: the server stopped pinging past its own cadence.
NO_SERVER_PING: Final = "server stopped pinging"


class Liveness:
    """Health of one open socket; see the module docstring.

    Feed it :meth:`heard` for every frame from the server (data, pings, pongs, answers),
    :meth:`server_ping` for the server's pings in particular and :meth:`ping_sent` when our ping has
    actually left (it may wait for a free slot in the message budget); call :meth:`poll` at or after
    :meth:`next_check` and act on its answer.
    """

    __slots__ = ("_ping_asked", "heard_at", "opened_at", "ping_sent_at", "pings", "policy", "rotate_at",
                 "server_ping_at")

    def __init__(self, policy: LivenessPolicy, now: float) -> None:
        self.policy = policy
        self.opened_at = now
        #: When the socket is due for replacement (see :meth:`postpone_rotation`).
        self.rotate_at = now + policy.rotate_after_s
        #: The last frame of any kind from the server.
        self.heard_at = now
        #: The server's last ping (the opening counts: its cadence starts there).
        self.server_ping_at = now
        #: Our outstanding ping (None: none outstanding), and whether one was asked for but not sent.
        self.ping_sent_at: float | None = None
        self._ping_asked = False
        #: Our pings sent so far on this socket.
        self.pings = 0

    def heard(self, now: float) -> None:
        """A frame of any kind arrived: the socket is alive, and answers any outstanding ping."""
        if now > self.heard_at:
            self.heard_at = now
        if self.ping_sent_at is not None and now >= self.ping_sent_at:
            self.ping_sent_at = None

    def server_ping(self, now: float) -> None:
        """The server pinged us (we answer with a pong; that is the transport's business)."""
        self.heard(now)
        self.server_ping_at = max(self.server_ping_at, now)

    def ping_sent(self, now: float) -> None:
        """Our ping has left; the deadline for an answer runs from now."""
        self._ping_asked = False
        self.ping_sent_at = now
        self.pings += 1

    def postpone_rotation(self, now: float, delay_s: float) -> None:
        """A replacement could not be opened: keep this socket and try again ``delay_s`` from now."""
        self.rotate_at = now + delay_s

    @property
    def awaiting_pong(self) -> bool:
        return self.ping_sent_at is not None or self._ping_asked

    def poll(self, now: float) -> str | None:
        """What to do at ``now``: :data:`ROTATE`, :data:`NO_PONG` or :data:`NO_SERVER_PING` (dead),
        :data:`PING`, or None (nothing)."""
        policy = self.policy
        if now >= self.rotate_at:
            return ROTATE
        # Deadlines are compared in the form next_check computes them, so that a caller waking exactly
        # at one finds it due (``a + b - a`` can round below ``b``).
        sent = self.ping_sent_at
        if sent is not None and now >= sent + policy.ping_timeout_s:
            return NO_PONG
        cadence = policy.server_ping_interval_s
        if cadence is not None and now >= self.server_ping_at + cadence * policy.server_ping_grace:
            return NO_SERVER_PING
        if not self.awaiting_pong and now >= self.heard_at + policy.ping_interval_s:
            self._ping_asked = True
            return PING
        return None

    def next_check(self, now: float) -> float:
        """The earliest time :meth:`poll` may answer something new (no sooner than ``now``)."""
        policy = self.policy
        due = [self.rotate_at]
        if self.ping_sent_at is not None:
            due.append(self.ping_sent_at + policy.ping_timeout_s)
        elif self._ping_asked:
            # Asked for but not sent yet (waiting for a slot in the message budget): look again soon.
            due.append(now + min(policy.ping_timeout_s, policy.ping_interval_s))
        else:
            due.append(self.heard_at + policy.ping_interval_s)
        if policy.server_ping_interval_s is not None:
            due.append(self.server_ping_at + policy.server_ping_interval_s * policy.server_ping_grace)
        return max(now, min(due))


# -- the connection's life across sockets ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Wait:
    """Wait ``delay_s`` before the next attempt; ``reason`` says why (backoff, budget, Retry-After)."""

    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Open:
    """Open a socket now (the attempt has been counted against the budget)."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop: ``failures`` attempts in a row failed (the documented max-retries error)."""

    failures: int


Decision = Wait | Open | GiveUp
#: The shared attempt budget: records an attempt at ``now`` and returns 0.0, or returns the seconds
#: to wait before one is allowed (nothing recorded). See :class:`~binance_ws.core.budget.SlidingWindow`.
AttemptBudget = Callable[[float], float]


class Lifecycle:
    """Decisions across one connection's sockets: when to open the next and when to give up.

    Call :meth:`attempt` when a socket is wanted (first start, after a loss once the wait is over); it
    answers :class:`Open` (go), :class:`Wait` (ask again after the delay) or :class:`GiveUp`. Report the
    outcome with :meth:`opened` or :meth:`failed`, and a loss with :meth:`lost`, which answers how long to
    wait before the next attempt (or GiveUp). Counters (``attempts``, ``flaps``, ``losses``) are for
    metrics and tests.
    """

    __slots__ = ("_backoff", "_budget", "_not_before", "attempts", "flaps", "losses", "open_at",
                 "stable_after_s")

    def __init__(self, backoff: BackoffPolicy | Backoff, budget: AttemptBudget | None = None, *,
                 stable_after_s: float = DEFAULT_STABLE_AFTER_S) -> None:
        self._backoff = backoff if isinstance(backoff, Backoff) else Backoff(backoff)
        self._budget = budget
        self.stable_after_s = stable_after_s
        #: When the current socket opened (None: none open).
        self.open_at: float | None = None
        self._not_before = -math.inf
        self.attempts = 0
        self.flaps = 0
        self.losses = 0

    @property
    def failures(self) -> int:
        """Failed attempts (and flaps) in a row."""
        return self._backoff.failures

    def attempt(self, now: float) -> Decision:
        """May a socket be opened at ``now``? Counts the attempt against the budget when it answers Open."""
        if now < self._not_before:
            return Wait(self._not_before - now, "backoff")
        if self._budget is not None:
            wait = self._budget(now)
            if wait > 0:
                return Wait(wait, "connection attempt budget")
        self.attempts += 1
        return Open()

    def opened(self, now: float) -> None:
        """The socket is up (handshake and subscriptions done). Backoff is reset only once it has lived
        ``stable_after_s`` (see :meth:`settle`)."""
        self.open_at = now
        if self.stable_after_s <= 0:
            self._backoff.reset()

    def settle(self, now: float) -> None:
        """Call now and then while a socket is open: once it has lived ``stable_after_s`` the backoff is
        reset, so the next loss reconnects quickly again."""
        if self.open_at is not None and now - self.open_at >= self.stable_after_s:
            self._backoff.reset()

    def failed(self, now: float, retry_after: float | None = None) -> Wait | GiveUp:
        """The attempt failed (refused, timed out, 429/418 with ``retry_after`` seconds)."""
        return self._next(now, retry_after or 0.0)

    def lost(self, now: float) -> Wait | GiveUp:
        """The open socket was lost (dead, closed by the server, dropped). A socket that lived less than
        ``stable_after_s`` is a flap: the backoff keeps escalating."""
        self.losses += 1
        if self.open_at is not None:
            self.settle(now)
            if now - self.open_at < self.stable_after_s:
                self.flaps += 1
        self.open_at = None
        return self._next(now, 0.0)

    def _next(self, now: float, at_least: float) -> Wait | GiveUp:
        delay = self._backoff.next_delay(at_least)
        if delay is None:
            return GiveUp(self._backoff.failures)
        self._not_before = now + delay
        return Wait(delay, "backoff")

    def deferred(self, now: float, at_least: float) -> float:
        """A planned replacement (rotation) failed: seconds until it is tried again, escalating with
        each failure in a row; the live socket is kept meanwhile."""
        delay = self._backoff.next_delay(at_least)
        return delay if delay is not None else max(self._backoff.policy.max_s, at_least)
