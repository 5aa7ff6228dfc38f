"""Replay of a recording as live traffic: the simulator serves real captured messages, not synthetic ones.

``Simulator(replay=Replay(path, speed=0))`` publishes every recorded stream message, byte for byte, to the
clients subscribed to its stream, in recorded order; REST ``/depth`` answers with the recording's own
snapshot. Any format :mod:`binance_ws.recording` reads will do (the project's, hftbacktest, cryptofeed).

Pacing, by ``speed``:

- ``1.0``: the recorded pace, from the local receive timestamps;
- ``N``: N times faster (gaps divided by N);
- ``0``: as fast as the subscribers read: before each message the replay waits until that stream's
  subscribers have room in their send buffers, so nothing is ever dropped or piled up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from binance_ws.errors import BinanceWSError
from binance_ws.recording import KIND_SNAPSHOT, read_header, read_recording, stream_symbol

if TYPE_CHECKING:
    from binance_ws.sim.hub import StreamHub

log = logging.getLogger("binance_ws.sim.replay")

#: How often to look for a subscriber while waiting for one.
SUBSCRIBER_POLL_S: Final = 0.005
#: Gaps shorter than this are not slept: a timer per message would cost more than the gap itself, and
#: the schedule is absolute, so skipped sleeps do not add up to drift.
MIN_SLEEP_S: Final = 0.001
#: Let other tasks (the servers, a client in the same loop) run at least every this many messages,
#: even when the replay is behind schedule or the subscribers never push back.
YIELD_EVERY: Final = 256


def _product_of(snapshots: dict[str, list[_Snapshot]], streams: frozenset[str]) -> str:
    """Which product a recording is of, from its shape: a futures depth snapshot carries ``E`` and ``T``
    (``GET /fapi/v1/depth``, ``/dapi/v1/depth``; spot's has ``lastUpdateId bids asks`` only, PROTOCOL 5),
    and COIN-M symbols are contracts (``btcusd_perp``). "spot" when nothing says futures."""
    futures = any({"E", "T"} <= snap.truncated(0).keys() for snaps in snapshots.values() for snap in snaps)
    if not futures:
        return "spot"
    symbols = {stream_symbol(s) or "" for s in streams} | set(snapshots)
    return "coinm" if any("_" in sym for sym in symbols) else "usdm"


class ReplayError(BinanceWSError):
    """A replay stopped part-way (a recording that went bad or unreadable after it was opened): the
    simulator stops serving it, logs it at error level, and raises this from ``Simulator.stop``."""


class Pacer:
    """When each recorded message is due: recorded gaps divided by ``speed``, on the local monotonic clock.

    Pure (fed times, returns waits), so the schedule is tested without sleeping. The schedule is
    absolute, anchored at the first message: a late wake-up delays the messages that follow only until
    the schedule catches up, never for the rest of the replay (no drift). Recorded time running
    backwards (a recorder's clock step) makes a message due at once.
    """

    __slots__ = ("_first_ns", "_scale", "_start")

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"a paced replay needs speed > 0, not {speed}")
        self._scale = 1e-9 / speed
        self._first_ns: int | None = None
        self._start = 0.0

    def wait(self, recv_ns: int, now: float) -> float:
        """Seconds to wait at monotonic time ``now`` before sending the message received at ``recv_ns``;
        0 when it is due (waits under :data:`MIN_SLEEP_S` are not worth a timer)."""
        if self._first_ns is None:
            self._first_ns, self._start = recv_ns, now
            return 0.0
        delay = self._start + (recv_ns - self._first_ns) * self._scale - now
        return delay if delay >= MIN_SLEEP_S else 0.0


class _Snapshot:
    """One recorded REST depth snapshot, decoded on first use."""

    __slots__ = ("_body", "_doc", "recv_ns")

    def __init__(self, recv_ns: int, body: bytes) -> None:
        self.recv_ns = recv_ns
        self._body = body
        self._doc: dict[str, Any] | None = None

    def truncated(self, limit: int) -> dict[str, Any]:
        if self._doc is None:
            self._doc = orjson.loads(self._body)
        doc = self._doc
        return {**doc, "bids": doc["bids"][:limit], "asks": doc["asks"][:limit]}


class Replay:
    """A recording served as the simulator's live streams.

    ``Replay(path, speed=1.0, *, wait_for_subscriber=True, loop=False)`` reads the recording once to
    learn its streams, symbols and snapshots (raises :class:`binance_ws.recording.RecordingError` or
    ``OSError`` if it cannot); :meth:`run` then streams it from the file. With ``loop`` the recording
    starts over when it ends, forever. With ``wait_for_subscriber`` a pass starts only while some client
    is subscribed to one of the recording's streams (the first pass waits for the first subscriber).

    Progress for tests: ``messages`` (stream messages in one pass), ``sent`` (published so far, over
    all passes), ``passes`` (complete passes) and ``done`` (an ``asyncio.Event`` set when the last pass
    ends; never with ``loop``). A replay that fails part-way sets ``failed`` and ``error`` (a
    :class:`ReplayError` naming the cause), logs it at error level and raises it from :meth:`run`.
    """

    def __init__(self, path: str | Path, speed: float = 1.0, *, wait_for_subscriber: bool = True,
                 loop: bool = False) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0 (0: as fast as the client reads), not {speed}")
        self.path = Path(path)
        self.speed = speed
        self.wait_for_subscriber = wait_for_subscriber
        self.loop = loop
        self.sent = 0
        self.passes = 0
        self.done = asyncio.Event()
        #: Set when :meth:`run` fails; ``error`` says why.
        self.failed = asyncio.Event()
        self.error: ReplayError | None = None
        #: Receive time of the last record replayed (selects which recorded snapshot REST serves).
        self.position_ns: int | None = None
        streams = set(read_header(self.path).url_streams())
        self._snapshots: dict[str, list[_Snapshot]] = defaultdict(list)
        self.messages = 0
        first_ns = last_ns = None
        for rec in read_recording(self.path):
            if first_ns is None:
                first_ns = rec.recv_ns
            last_ns = rec.recv_ns
            if rec.kind == KIND_SNAPSHOT:
                if rec.symbol is not None:
                    self._snapshots[rec.symbol].append(_Snapshot(rec.recv_ns, rec.payload))
            elif rec.stream is not None:
                self.messages += 1
                streams.add(rec.stream)
        self._streams = frozenset(streams)
        #: Recorded time from the first to the last record, in seconds (the replay's length at speed 1).
        self.duration_s = 0.0 if first_ns is None or last_ns is None else (last_ns - first_ns) / 1e9
        self._symbols = sorted({s for s in map(stream_symbol, self._streams) if s} | set(self._snapshots))
        self.product = _product_of(self._snapshots, self._streams)

    def __repr__(self) -> str:
        return (f"<Replay {self.path.name!r} speed={self.speed} messages={self.messages} sent={self.sent} "
                f"passes={self.passes}>")

    # -- what the simulator asks ------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        """Uppercase symbols the recording covers (from its streams and snapshots)."""
        return list(self._symbols)

    @property
    def streams(self) -> frozenset[str]:
        """Stream names in the recording (and in its connect URL, even if they carried no message)."""
        return self._streams

    def snapshot(self, symbol: str, limit: int) -> dict[str, Any] | None:
        """The REST ``/depth`` body for ``symbol``, from the recording, with at most ``limit`` levels a side.

        Of several recorded snapshots, the latest one already reached by the replay is served (the
        first before that point), as the real REST answer reflects the book at request time. None if
        the recording has no snapshot for ``symbol``.
        """
        snaps = self._snapshots.get(symbol.upper())
        if not snaps:
            return None
        chosen = snaps[0]
        if self.position_ns is not None:
            for snap in snaps:
                if snap.recv_ns > self.position_ns:
                    break
                chosen = snap
        return chosen.truncated(limit)

    # -- playing ----------------------------------------------------------------------------------
    async def run(self, hub: StreamHub) -> None:
        """Publish the recording into ``hub`` at the configured pace; returns when done (or never,
        with ``loop``). Cancel the task to stop early. Raises :class:`ReplayError` (also kept in
        ``error``, and logged) if the recording cannot be read or served to the end."""
        try:
            await self._run(hub)
        except Exception as exc:
            error = ReplayError(f"replay of {self.path} failed after {self.sent} messages: "
                                f"{type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self.error = error
            self.failed.set()
            log.error("%s", error)  # one line; the traceback is there for whoever debugs
            log.debug("replay failure", exc_info=exc)
            raise error from exc

    async def _run(self, hub: StreamHub) -> None:
        while True:
            if self.wait_for_subscriber:
                await self._subscriber(hub)
            await self._play_once(hub)
            self.passes += 1
            if not self.loop:
                self.done.set()
                return
            await asyncio.sleep(0)  # a short recording looping at speed 0 must not starve the loop

    async def _subscriber(self, hub: StreamHub) -> None:
        while not any(hub.has_subscribers(s) for s in self._streams):
            await asyncio.sleep(SUBSCRIBER_POLL_S)

    async def _play_once(self, hub: StreamHub) -> None:
        pacer = Pacer(self.speed) if self.speed > 0 else None
        publish = hub.publish_encoded
        since_yield = 0
        for rec in read_recording(self.path):
            self.position_ns = rec.recv_ns
            stream = rec.stream
            if stream is None:  # a snapshot: served over REST, not pushed
                continue
            if pacer is not None:
                delay = pacer.wait(rec.recv_ns, time.monotonic())
                if delay:
                    await asyncio.sleep(delay)
                    since_yield = 0
            else:
                await hub.drained(stream)
            publish(stream, rec.payload)
            self.sent += 1
            since_yield += 1
            if since_yield >= YIELD_EVERY:
                await asyncio.sleep(0)
                since_yield = 0
