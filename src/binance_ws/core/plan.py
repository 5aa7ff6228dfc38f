"""Which stream rides on which connection, and when each control message may be sent.

Two pure objects, fed requests and time, returning what to do:

* :class:`SubscriptionPlan` packs streams onto the fewest combined connections (never above the
  per-connection stream limit) and answers each ``add``/``remove`` with :data:`Action` objects:
  open a connection, subscribe, unsubscribe, close an emptied connection.
* :class:`ControlScheduler` holds one connection's outgoing ``SUBSCRIBE``/``UNSUBSCRIBE`` requests,
  coalesces them into as few messages as allowed, and releases them no faster than Binance's incoming
  message limit, counting the pings and pongs the connection sends as well.

Binance facts (PROTOCOL.md): 1024 streams per connection and 5 incoming messages a second per connection,
pings, pongs and control JSON all counted (section 2; futures 10/s, section 8). The per-message parameter
cap is ours: a ~437-stream SUBSCRIBE was seen failing silently (section 3, [OBS]).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import orjson

from binance_ws.core.budget import SlidingWindow

#: Streams per connection (PROTOCOL 2).
MAX_STREAMS_PER_CONNECTION: Final = 1024
#: Streams per SUBSCRIBE/UNSUBSCRIBE message: well below the ~437 seen failing (PROTOCOL 3 [OBS]).
MAX_PARAMS_PER_MESSAGE: Final = 200
#: Incoming messages a second per connection (PROTOCOL 2: 5 on spot; futures 10, section 8).
MAX_INCOMING_PER_SECOND: Final = 5.0
#: The server's one-second window is measured on its clock, after network jitter: counting our frames
#: over a slightly longer window keeps a burst that arrives bunched up still within the limit.
CONTROL_WINDOW_S: Final = 1.1
#: Slots of each window kept free for pings and pongs, which cannot wait behind control messages.
CONTROL_RESERVE: Final = 1


@dataclass(frozen=True, slots=True)
class Open:
    """Open connection ``conn_id`` carrying ``streams`` (in the URL or subscribed once it is up)."""

    conn_id: str
    streams: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Send one ``SUBSCRIBE`` for ``streams`` on the already planned connection ``conn_id``."""

    conn_id: str
    streams: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Send one ``UNSUBSCRIBE`` for ``streams`` on connection ``conn_id``."""

    conn_id: str
    streams: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Close:
    """Close connection ``conn_id``: none of its streams is wanted any more."""

    conn_id: str


Action = Open | Subscribe | Unsubscribe | Close


def _chunks(items: list[str], size: int) -> Iterable[tuple[str, ...]]:
    for i in range(0, len(items), size):
        yield tuple(items[i:i + size])


class SubscriptionPlan:
    """The desired mapping of streams to connections, changed by ``add`` and ``remove``.

    Packing is first-fit in connection creation order: free room on an existing connection (including
    room freed by earlier removals) is used before a new connection is opened, so connections are as
    few as the order of requests allows. Streams are never moved between live connections (that would
    risk a gap); an emptied connection is closed. Connection ids are ``<prefix><n>``, never reused.
    Adding a present stream or removing an absent one does nothing. Raises ValueError for limits < 1.
    """

    def __init__(self, max_streams_per_connection: int = MAX_STREAMS_PER_CONNECTION,
                 max_params_per_message: int = MAX_PARAMS_PER_MESSAGE,
                 connection_prefix: str = "c") -> None:
        if max_streams_per_connection < 1 or max_params_per_message < 1:
            raise ValueError("stream and parameter limits must be at least 1")
        self.max_streams_per_connection = max_streams_per_connection
        self.max_params_per_message = max_params_per_message
        self.connection_prefix = connection_prefix
        self._conn_of: dict[str, str] = {}
        #: conn id -> its streams in insertion order (dict as an ordered set); creation order of conns.
        self._streams: dict[str, dict[str, None]] = {}
        self._next_id = 1

    def add(self, streams: Iterable[str]) -> list[Action]:
        """Plan ``streams`` (those not yet planned) and return the actions that realise it."""
        new = [s for s in dict.fromkeys(streams) if s not in self._conn_of]
        if not new:
            return []
        actions: list[Action] = []
        pos = 0
        for conn_id, members in self._streams.items():
            room = self.max_streams_per_connection - len(members)
            if room <= 0:
                continue
            batch = new[pos:pos + room]
            pos += len(batch)
            self._place(conn_id, batch)
            actions.extend(Subscribe(conn_id, chunk) for chunk in _chunks(batch, self.max_params_per_message))
            if pos >= len(new):
                return actions
        while pos < len(new):
            batch = new[pos:pos + self.max_streams_per_connection]
            pos += len(batch)
            conn_id = f"{self.connection_prefix}{self._next_id}"
            self._next_id += 1
            self._streams[conn_id] = {}
            self._place(conn_id, batch)
            actions.append(Open(conn_id, tuple(batch)))
        return actions

    def _place(self, conn_id: str, batch: list[str]) -> None:
        members = self._streams[conn_id]
        for s in batch:
            members[s] = None
            self._conn_of[s] = conn_id

    def remove(self, streams: Iterable[str]) -> list[Action]:
        """Drop ``streams`` (those planned) and return the actions: unsubscribes, or closes of
        connections left empty."""
        by_conn: dict[str, list[str]] = {}
        for s in dict.fromkeys(streams):
            conn_id = self._conn_of.pop(s, None)
            if conn_id is not None:
                by_conn.setdefault(conn_id, []).append(s)
                del self._streams[conn_id][s]
        actions: list[Action] = []
        for conn_id, gone in by_conn.items():
            if self._streams[conn_id]:
                actions.extend(Unsubscribe(conn_id, chunk)
                               for chunk in _chunks(gone, self.max_params_per_message))
            else:
                del self._streams[conn_id]
                actions.append(Close(conn_id))
        return actions

    def connection_of(self, stream: str) -> str | None:
        """The connection planned for ``stream``, or None."""
        return self._conn_of.get(stream)

    def streams_of(self, conn_id: str) -> tuple[str, ...]:
        """The streams planned on ``conn_id`` in the order they were added (empty if unknown)."""
        members = self._streams.get(conn_id)
        return tuple(members) if members is not None else ()

    def connections(self) -> list[str]:
        """Planned connection ids, oldest first."""
        return list(self._streams)

    def __contains__(self, stream: object) -> bool:
        return stream in self._conn_of

    def __len__(self) -> int:
        return len(self._conn_of)


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """One JSON control request (PROTOCOL 3) ready to send; ``id`` matches the server's answer."""

    id: int
    method: str
    params: tuple[str, ...]

    def encode(self) -> bytes:
        """The text-frame payload, ``{"method":..., "params":[...], "id":...}``."""
        return orjson.dumps({"method": self.method, "params": list(self.params), "id": self.id})


class ControlScheduler:
    """One connection's outgoing control messages, released within the incoming-message limit.

    Queue changes with :meth:`subscribe` / :meth:`unsubscribe` (a subscribe and an unsubscribe of the
    same stream still waiting cancel out; repeated requests merge), count every ping or pong the
    connection sends with :meth:`record_frame`, and call :meth:`poll` to get the messages that may go
    now plus how long until the next may. At most ``max_per_second`` frames of any kind fall in any
    ``window_s`` window, of which control messages use all but ``reserve``. Unsubscribes go before
    subscribes so the server's stream count never peaks above the plan's. Message ids are unsigned
    integers (futures accept nothing else, PROTOCOL 3). Raises ValueError when no slot is left for
    control messages.
    """

    def __init__(self, max_per_second: float = MAX_INCOMING_PER_SECOND, *,
                 max_params_per_message: int = MAX_PARAMS_PER_MESSAGE,
                 window_s: float = CONTROL_WINDOW_S, reserve: int = CONTROL_RESERVE,
                 first_id: int = 1) -> None:
        limit = math.floor(max_per_second)
        if limit - reserve < 1 or max_params_per_message < 1:
            raise ValueError("the rate leaves no slot for control messages")
        self._window = SlidingWindow(limit, window_s)
        self._control_limit = limit - reserve
        self.max_params_per_message = max_params_per_message
        self._sub: dict[str, None] = {}
        self._unsub: dict[str, None] = {}
        self._other: list[tuple[str, tuple[str, ...]]] = []
        self._next_id = first_id

    def subscribe(self, streams: Iterable[str]) -> None:
        """Queue a SUBSCRIBE of ``streams``, which the server must not carry yet (the plan ensures it)."""
        for s in dict.fromkeys(streams):
            if s in self._unsub:
                del self._unsub[s]  # still subscribed on the server: dropping the unsubscribe is enough
            else:
                self._sub[s] = None

    def unsubscribe(self, streams: Iterable[str]) -> None:
        """Queue an UNSUBSCRIBE of ``streams``, which must be subscribed or queued for it."""
        for s in dict.fromkeys(streams):
            if s in self._sub:
                del self._sub[s]  # never sent: forgetting the subscribe is enough
            else:
                self._unsub[s] = None

    def request(self, method: str, params: Iterable[str] = ()) -> None:
        """Queue another control request (``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY``...), sent first."""
        self._other.append((method, tuple(params)))

    def record_frame(self, now: float) -> None:
        """Count a frame sent outside the scheduler (a pong, our own ping): it uses the same budget."""
        self._window.record(now)

    def clear(self) -> None:
        """Forget everything queued (the connection is being replaced with the full stream list)."""
        self._sub.clear()
        self._unsub.clear()
        self._other.clear()

    @property
    def pending(self) -> int:
        """Streams and requests waiting to be sent."""
        return len(self._sub) + len(self._unsub) + len(self._other)

    def poll(self, now: float) -> tuple[list[ControlMessage], float | None]:
        """The messages to send now, and the seconds until :meth:`poll` may release more (None: nothing
        left to send)."""
        out: list[ControlMessage] = []
        while self.pending:
            delay = self._window.wait(now, self._control_limit)
            if delay:
                return out, delay
            self._window.record(now)
            out.append(self._next_message())
        return out, None

    def _next_message(self) -> ControlMessage:
        if self._other:
            method, params = self._other.pop(0)
        elif self._unsub:
            method, params = "UNSUBSCRIBE", self._take(self._unsub)
        else:
            method, params = "SUBSCRIBE", self._take(self._sub)
        msg = ControlMessage(self._next_id, method, params)
        self._next_id += 1
        return msg

    def _take(self, pending: dict[str, None]) -> tuple[str, ...]:
        batch = []
        for s in pending:
            batch.append(s)
            if len(batch) >= self.max_params_per_message:
                break
        for s in batch:
            del pending[s]
        return tuple(batch)
