"""Helpers shared by the interop tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from binance_ws.sim import Simulator


async def until(what: str, check: Callable[[], Any], deadline_s: float = 20.0) -> Any:
    """Poll ``check`` (cheap, non-blocking) until it returns something truthy; fail naming ``what``."""
    end = time.monotonic() + deadline_s
    while not (value := check()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value


async def rest_get(sim: Simulator, path: str, **params: Any) -> Any:
    """The simulator's REST answer, over HTTP, as a client sees it."""
    async with aiohttp.ClientSession() as session, \
            session.get(f"{sim.rest_url}{path}", params=params) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


class Stepper:
    """Drives the simulator's order flow from a task (a step every ``interval_s``: about 100 actions a
    second per symbol by default) until :meth:`stop`; the book moves while clients connect and
    synchronise, then holds still."""

    def __init__(self, sim: Simulator, interval_s: float = 0.01) -> None:
        self.sim = sim
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.sim.step()
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
