"""Helpers for engine tests: waiting for conditions with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


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
