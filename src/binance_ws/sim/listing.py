"""What the simulated exchange lists: symbols, streams and depth snapshots, from the engine and a replay.

The REST server, the stream server and the WebSocket API all answer "which symbols", "is this a stream"
and "what is the book" the same way; :class:`Listing` is that one answer, built by the simulator from the
parts that know (the matching engine, the feeds and, when replaying, the recording).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from binance_ws.sim.exchange import Exchange
    from binance_ws.sim.replay import Replay


class StreamCatalogue(Protocol):
    """The feeds as the listing sees them (spot ``Feeds`` or ``FuturesFeeds``)."""

    def is_valid_stream(self, name: str) -> bool: ...


class Listing:
    """The exchange's catalogue: ``Listing(exchange, feeds, replay)``; ``book`` gives the live book's
    snapshot body (default: the engine's spot-shaped one; futures feeds give theirs, in their id space)."""

    def __init__(self, exchange: Exchange, feeds: StreamCatalogue, replay: Replay | None = None, *,
                 book: Callable[[str, int], dict[str, Any]] | None = None) -> None:
        self._exchange = exchange
        self._feeds = feeds
        self._replay = replay
        self._book = book or exchange.depth_snapshot

    def symbols(self) -> list[str]:
        """Uppercase symbols this exchange lists (engine symbols plus replayed ones)."""
        names = list(self._exchange.symbols)
        if self._replay is not None:
            names.extend(s for s in self._replay.symbols if s not in self._exchange.symbols)
        return names

    def stream_exists(self, name: str) -> bool:
        """Whether ``name`` is a stream this exchange serves (validated on SUBSCRIBE and in URLs)."""
        if self._replay is not None and name in self._replay.streams:
            return True
        return self._feeds.is_valid_stream(name)

    def depth_snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        """The REST ``/depth`` body: a replay's recorded snapshot, else the engine's live book."""
        if self._replay is not None:
            snap = self._replay.snapshot(symbol, limit)
            if snap is not None:
                return snap
        return self._book(symbol, limit)
