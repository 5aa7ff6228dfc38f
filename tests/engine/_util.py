"""Helpers for engine tests: waiting for conditions with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from binance_ws.markets import Market
from binance_ws.sim import Simulator


async def until(cond: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``cond`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


def trade_ids(messages: list[dict]) -> list[int]:
    """The trade ids among ``messages`` (error events left out)."""
    return [m["t"] for m in messages if m.get("e") == "trade"]


def rotation_simulator() -> Simulator:
    """A busy simulator with a 2 s "day" (it cuts each connection after 2 s) and no connection limit."""
    return Simulator(flow_rate=2000.0, connection_lifetime_s=2.0, max_connections_per_window=10_000,
                     connection_window_s=1.0)


def rotating_market(sim: Simulator) -> Market:
    """``sim``'s market as our side believes it: a 30 ms day, so the client rotates 10% before that,
    each connection replaced well before the server's cut (with room for a slow handshake)."""
    return dataclasses.replace(sim.market, connection_lifetime_s=0.03, max_connections_per_window=10_000,
                               connection_window_s=1.0)


def most_in_window(times: list[float], window_s: float) -> int:
    """The most of ``times`` (sorted) that fall in any window of ``window_s`` seconds."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
