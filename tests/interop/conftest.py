"""Interop fixtures: a simulator whose book moves only while the test lets it, so a client's view can be
compared with the simulator's at one update id."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from binance_ws.sim import Simulator
from tests.interop.support import Stepper


@pytest.fixture
async def quiet_sim() -> AsyncIterator[Simulator]:
    """A simulator with no order flow of its own (``flow_rate=0``): only :class:`Stepper` moves it."""
    async with Simulator(flow_rate=0.0) as s:
        yield s


@pytest.fixture
async def stepper(quiet_sim: Simulator) -> AsyncIterator[Stepper]:
    s = Stepper(quiet_sim)
    yield s
    await s.stop()
