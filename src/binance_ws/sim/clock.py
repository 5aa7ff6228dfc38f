"""The simulator's notion of exchange time: wall-clock epoch time plus an offset a test can move."""

from __future__ import annotations

import time


class SimClock:
    """Epoch time in ms/µs; ``advance`` shifts it forward without sleeping (kline and window tests)."""

    __slots__ = ("offset_ms",)

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def now_us(self) -> int:
        return time.time_ns() // 1_000 + self.offset_ms * 1_000

    def advance(self, ms: int) -> None:
        self.offset_ms += ms
