"""Connection attempts per host, counted once for the whole process (PROTOCOL 2: 300 per 5 minutes per
IP, the WebSocket API included): every market-stream connection, WebSocket API session and user-data
stream of every manager and thread draws from the same window for its host, whatever the server does."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from binance_ws.core.budget import SlidingWindow
from binance_ws.markets import SPOT, Market

log = logging.getLogger("binance_ws.engine")

#: Added to the window (at least; 2% of it for long windows): the server counts handshakes when they
#: reach it, we count attempts when they leave, so a burst that arrived late followed by one that
#: arrived fast would look like more than the limit in its window. A slightly longer window absorbs it.
ATTEMPT_WINDOW_MARGIN_S: Final = 1.0

_lock = threading.Lock()
_windows: dict[tuple[str, int, float], SlidingWindow] = {}


def attempt_budget(market: Market = SPOT, url: str | None = None) -> Callable[[float], float]:
    """The attempt budget of ``url``'s host (default: the market's stream host) with ``market``'s limit:
    called with the monotonic time, it records an attempt and returns 0.0, or returns the seconds to
    wait (nothing recorded)."""
    key = (urlsplit(url or market.stream_url).netloc, market.max_connections_per_window,
           market.connection_window_s)
    with _lock:
        window = _windows.get(key)
        if window is None:
            span = market.connection_window_s
            window = _windows[key] = SlidingWindow(market.max_connections_per_window,
                                                   span + max(ATTEMPT_WINDOW_MARGIN_S, span / 50))

    def acquire(now: float) -> float:
        with _lock:
            return window.acquire(now)
    return acquire


def attempts_used(now: float | None = None) -> list[tuple[str, int, int, float]]:
    """Connection attempts counted per host by this process: ``(host, attempts in the window, limit,
    window_s)`` for each budget in use, the window being Binance's (5 minutes) plus the margin above."""
    at = time.monotonic() if now is None else now
    with _lock:
        return [(host, window.used(at), limit, span) for (host, limit, span), window in _windows.items()]


async def acquire_connection_slot(market: Market = SPOT, url: str | None = None) -> None:
    """Wait until one more connection attempt to ``url``'s host is within its budget."""
    acquire = attempt_budget(market, url)
    while True:
        wait = acquire(time.monotonic())
        if wait == 0.0:
            return
        log.warning("connection attempts to %s at the limit; waiting %.1f s",
                    urlsplit(url or market.stream_url).netloc, wait)
        await asyncio.sleep(wait)


#: Close codes that may not be sent on the wire (RFC 6455 7.4.1).
_UNSENDABLE_CLOSE_CODES: Final = frozenset({1004, 1005, 1006, 1015})


def sendable_close_code(code: int) -> bool:
    """Whether ``code`` may be echoed in a close frame (an empty close frame reads as 0 or 1005: no)."""
    return 1000 <= code < 5000 and code not in _UNSENDABLE_CLOSE_CODES
