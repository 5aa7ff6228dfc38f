"""Shared fixtures: a running simulator on loopback for every test that asks for one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from binance_ws.sim import Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator with ephemeral ports and a brisk synthetic flow."""
    async with Simulator(flow_rate=200.0) as s:
        yield s
