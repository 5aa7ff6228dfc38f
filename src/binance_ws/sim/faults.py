"""Fault injection for the simulator: every failure a Binance client must survive, on demand.

Each fault is observable from the client side: a connection that ends with no close frame, a close
with a chosen code, a stalled socket, unanswered pings, broken frames, gaps and duplicates in depth
streams, ``serverShutdown`` notices, refused handshakes, slow or failing REST answers. Tests call the
methods directly; :mod:`binance_ws.sim.control` exposes them over HTTP. ``counts`` records what was
injected.

Connection-level faults take ``conn``: a connection id (the server sends it in the
``X-Sim-Connection-Id`` handshake header) or None for every live connection; they return how many
connections they touched.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from binance_ws.sim.hub import StreamHub
from binance_ws.sim.server import CLOSE_GOING_AWAY
from binance_ws.sim.wire import combined

if TYPE_CHECKING:
    from binance_ws.sim.rest import RestServer
    from binance_ws.sim.server import StreamServer, _Connection

#: Diff-depth streams (``<symbol>@depth`` and ``<symbol>@depth@100ms``, PROTOCOL.md 4.12): the default
#: target of the sequence faults, since they are the streams whose ids a client checks.
DIFF_DEPTH = r"@depth(@\d+ms)?$"
#: Close codes a test may choose (normal, going away, policy violation, internal error).
CLOSE_CODES = (1000, 1001, 1008, 1011)
#: Default size of an oversized frame: past picows' default 10 MiB frame limit on the client.
OVERSIZED_FRAME = 16 * 1024 * 1024 + 1
#: Handshake statuses a refusal may use.
REFUSAL_STATUSES = (429, 503)

_MALFORMED_JSON = b'{"e":"trade","E":17231612553'
_INVALID_UTF8 = b'{"e":"trade","s":"\xff\xfe\xfd"}'


@dataclass(slots=True)
class _SequenceRule:
    """Skip, duplicate or reorder the next ``remaining`` events of streams matching ``pattern``."""

    action: str
    pattern: re.Pattern[str]
    remaining: int
    #: Reorder binds to the first matching stream and holds its events until it has them all.
    stream: str | None = None
    held: list[Any] = field(default_factory=list)

    def apply(self, stream: str, payload: Any, counts: Counter[str]) -> list[Any]:
        if self.action == "skip":
            self.remaining -= 1
            counts["skipped"] += 1
            return []
        if self.action == "duplicate":
            self.remaining -= 1
            counts["duplicated"] += 1
            return [payload, payload]
        if self.stream is None:
            self.stream = stream
        elif stream != self.stream:
            return [payload]
        self.held.append(payload)
        self.remaining -= 1
        if self.remaining:
            return []
        counts["reordered"] += len(self.held)
        out, self.held = self.held[::-1], []
        return out

    def describe(self) -> dict[str, Any]:
        return {"action": self.action, "pattern": self.pattern.pattern, "remaining": self.remaining,
                "stream": self.stream, "held": len(self.held)}


class Faults:
    """Injects failures into a running simulator (see the module docstring).

    ``Faults(hub, stream_server, rest)``: the parts never read fault flags; a fault installs a hook on the
    part it affects (``hub.filter``, ``stream_server.answer_pings`` and ``.refusal``, ``rest.delay_s`` and
    ``.injected_failure``) and :meth:`clear` removes it.
    """

    def __init__(self, hub: StreamHub, stream_server: StreamServer, rest: RestServer) -> None:
        self._hub = hub
        self._server = stream_server
        self._rest = rest
        self._rest_delay_s = 0.0
        self._rest_fail_status: int | None = None
        self._rest_fail_count = 0
        #: Client pings go unanswered on every connection.
        self.ignore_pings = False
        self.counts: Counter[str] = Counter()
        self._refuse_status: int | None = None
        self._refuse_left: int | None = None
        self._rules: list[_SequenceRule] = []
        self._timers: list[asyncio.TimerHandle] = []

    # -- connection faults --------------------------------------------------------------------------------
    def _targets(self, conn: int | None) -> list[_Connection]:
        conns = self._server.connections
        if conn is None:
            return list(conns.values())
        found = conns.get(conn)
        return [found] if found is not None else []

    def drop(self, conn: int | None = None) -> int:
        """Abort TCP with no close frame (a network failure as the client sees it)."""
        targets = self._targets(conn)
        for c in targets:
            c.abort()
        self.counts["dropped"] += len(targets)
        return len(targets)

    def close(self, code: int = 1000, reason: str = "", conn: int | None = None) -> int:
        """Close with ``code`` (one of ``CLOSE_CODES``) and ``reason``. Raises ValueError for another code."""
        if code not in CLOSE_CODES:
            raise ValueError(f"close code must be one of {CLOSE_CODES}")
        targets = self._targets(conn)
        for c in targets:
            c.close(code, reason)
        self.counts["closed"] += len(targets)
        return len(targets)

    def stall(self, duration_s: float | None = None, conn: int | None = None) -> int:
        """Keep TCP open but send nothing (data is lost, pings go unanswered, none are sent), for
        ``duration_s`` seconds or until :meth:`unstall` / :meth:`clear`. On a WS API connection requests
        go unanswered, but events the WS API pushes by itself still go out."""
        targets = self._targets(conn)
        for c in targets:
            c.stall()
        if duration_s is not None and targets:
            ids = [c.id for c in targets]
            self._later(duration_s, lambda: self._unstall_ids(ids))
        self.counts["stalled"] += len(targets)
        return len(targets)

    def unstall(self, conn: int | None = None) -> int:
        """End a stall: stream data flows again (what was published meanwhile is gone)."""
        targets = [c for c in self._targets(conn) if c.stalled]
        for c in targets:
            c.unstall()
        return len(targets)

    def _unstall_ids(self, ids: Iterable[int]) -> None:
        for conn_id in ids:
            self.unstall(conn_id)

    def stop_answering_pings(self, enabled: bool = True) -> None:
        """Leave client pings unanswered on every connection, current and new (False restores)."""
        self.ignore_pings = enabled
        self._server.answer_pings = not enabled
        if enabled:
            self.counts["pings_ignored"] += 1

    def send_malformed_json(self, conn: int | None = None, stream: str | None = None) -> int:
        """Send a text frame holding truncated JSON; with ``stream``, inside that stream's combined
        wrapper (a broken payload on a named stream, as a client routing by name sees it)."""
        frame = _MALFORMED_JSON if stream is None else combined(stream, _MALFORMED_JSON)
        return self._send(frame, conn, "malformed_json")

    def send_invalid_utf8(self, conn: int | None = None) -> int:
        """Send a text frame that is not valid UTF-8."""
        return self._send(_INVALID_UTF8, conn, "invalid_utf8")

    def send_oversized(self, size: int = OVERSIZED_FRAME, conn: int | None = None) -> int:
        """Send one valid-JSON text frame of ``size`` bytes (default past a client's 10 MiB frame limit)."""
        head, tail = b'{"e":"padding","p":"', b'"}'
        pad = max(0, size - len(head) - len(tail))
        return self._send(head + b"x" * pad + tail, conn, "oversized")

    def _send(self, frame: bytes, conn: int | None, name: str) -> int:
        targets = self._targets(conn)
        for c in targets:
            c.send_raw(frame)
        self.counts[name] += len(targets)
        return len(targets)

    def server_shutdown(self, delay_s: float = 1.0, conn: int | None = None) -> int:
        """Send the ``serverShutdown`` event (raw, combined or WS API form), then close with 1001 after
        ``delay_s`` seconds; data keeps flowing meanwhile."""
        targets = self._targets(conn)
        for c in targets:
            c.send_raw(c.shutdown_notice())
        ids = [c.id for c in targets]
        if ids:
            self._later(delay_s, lambda: self._shutdown_ids(ids))
        self.counts["server_shutdown"] += len(targets)
        return len(targets)

    def _shutdown_ids(self, ids: Iterable[int]) -> None:
        for conn_id in ids:
            for c in self._targets(conn_id):
                c.close(*CLOSE_GOING_AWAY)

    # -- handshake refusals -------------------------------------------------------------------------------
    def refuse(self, status: int = 429, count: int | None = None) -> None:
        """Refuse the next ``count`` handshakes (None: all, until :meth:`accept`) with HTTP ``status``.
        Raises ValueError for a status outside ``REFUSAL_STATUSES``."""
        if status not in REFUSAL_STATUSES:
            raise ValueError(f"status must be one of {REFUSAL_STATUSES}")
        self._refuse_status = status
        self._refuse_left = count
        self._server.refusal = self.take_refusal

    def accept(self) -> None:
        """Stop refusing handshakes."""
        self._refuse_status = None
        self._refuse_left = None
        self._server.refusal = None

    def take_refusal(self) -> int | None:
        """The stream server's ``refusal`` hook, called for each handshake: the status to refuse it with,
        or None."""
        status = self._refuse_status
        if status is None:
            return None
        if self._refuse_left is not None:
            self._refuse_left -= 1
            if self._refuse_left <= 0:
                self.accept()
        self.counts["refused"] += 1
        return status

    # -- REST ---------------------------------------------------------------------------------------------
    def rest(self, delay_s: float = 0.0, fail_status: int | None = None, fail_count: int = 0) -> None:
        """Delay every REST answer by ``delay_s`` and fail the next ``fail_count`` with ``fail_status``
        (a negative ``fail_count``: every answer). Installs the REST server's ``delay_s`` and
        ``injected_failure`` hooks."""
        if fail_status is not None and not 400 <= fail_status <= 599:
            raise ValueError("fail_status must be an HTTP error status")
        self._rest_delay_s, self._rest_fail_status, self._rest_fail_count = delay_s, fail_status, fail_count
        self._install_rest()

    # The standing REST faults, also settable one by one (each assignment reinstalls the hooks): every
    # answer is delayed by ``rest_delay_s``; the next ``rest_fail_count`` answers (-1: all) fail with
    # ``rest_fail_status``.
    @property
    def rest_delay_s(self) -> float:
        return self._rest_delay_s

    @rest_delay_s.setter
    def rest_delay_s(self, value: float) -> None:
        self._rest_delay_s = value
        self._install_rest()

    @property
    def rest_fail_status(self) -> int | None:
        return self._rest_fail_status

    @rest_fail_status.setter
    def rest_fail_status(self, value: int | None) -> None:
        self._rest_fail_status = value
        self._install_rest()

    @property
    def rest_fail_count(self) -> int:
        return self._rest_fail_count

    @rest_fail_count.setter
    def rest_fail_count(self, value: int) -> None:
        self._rest_fail_count = value
        self._install_rest()

    def _install_rest(self) -> None:
        self._rest.delay_s = self._rest_delay_s
        failing = bool(self._rest_fail_status) and self._rest_fail_count != 0
        self._rest.injected_failure = self._rest_failure if failing else None

    def _rest_failure(self) -> int | None:
        """The REST server's ``injected_failure`` hook: the status to fail this request with, or None."""
        status, count = self._rest_fail_status, self._rest_fail_count
        if not status or count == 0:
            return None
        if count > 0:
            self.rest_fail_count = count - 1  # the last one uninstalls the hook
        return status

    # -- sequence faults (hub filter) ---------------------------------------------------------------------
    def skip(self, n: int = 1, pattern: str = DIFF_DEPTH) -> None:
        """Drop the next ``n`` events of streams matching the regex ``pattern`` (a gap)."""
        self._add_rule("skip", n, pattern)

    def duplicate(self, n: int = 1, pattern: str = DIFF_DEPTH) -> None:
        """Deliver each of the next ``n`` matching events twice."""
        self._add_rule("duplicate", n, pattern)

    def reorder(self, n: int = 2, pattern: str = DIFF_DEPTH) -> None:
        """Deliver the next ``n`` events of the first matching stream in reverse order."""
        if n < 2:
            raise ValueError("reordering needs at least 2 events")
        self._add_rule("reorder", n, pattern)

    def _add_rule(self, action: str, n: int, pattern: str) -> None:
        if n < 1:
            raise ValueError("n must be at least 1")
        self._rules.append(_SequenceRule(action, re.compile(pattern), n))
        self._hub.filter = self._filter

    def _filter(self, stream: str, payload: Any) -> list[Any]:
        items = [payload]
        for rule in list(self._rules):
            if not rule.pattern.search(stream):
                continue
            out: list[Any] = []
            for item in items:
                out.extend(rule.apply(stream, item, self.counts) if rule.remaining else [item])
            items = out
            if not rule.remaining:
                self._rules.remove(rule)
        if not self._rules:
            self._hub.filter = None
        return items

    # -- all ----------------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Undo every standing fault: unstall, answer pings, accept handshakes, stop sequence faults (events
        held for a reorder are dropped) and REST faults. Counters are kept."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.unstall()
        self.stop_answering_pings(False)
        self.accept()
        self._rules.clear()
        if self._hub.filter == self._filter:
            self._hub.filter = None
        self.rest()

    def _later(self, delay_s: float, callback: Any) -> None:
        loop = asyncio.get_running_loop()
        # Forget timers that already fired, so a long run does not accumulate them.
        self._timers = [h for h in self._timers if not h.cancelled() and h.when() > loop.time()]
        self._timers.append(loop.call_later(delay_s, callback))

    def state(self) -> dict[str, Any]:
        """Standing faults, counters and live connections, JSON-able."""
        server = self._server
        return {
            "ignore_pings": self.ignore_pings,
            "refuse": {"status": self._refuse_status, "remaining": self._refuse_left},
            "sequence_rules": [r.describe() for r in self._rules],
            "rest_delay_s": self.rest_delay_s,
            "rest_fail_status": self.rest_fail_status,
            "rest_fail_count": self.rest_fail_count,
            "counts": dict(self.counts),
            "connections": [c.describe() for c in server.connections.values()],
        }
