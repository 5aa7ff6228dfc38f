"""Shared fixtures: a running simulator on loopback for every test that asks for one."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from binance_ws.markets import ENV_MARKET
from binance_ws.sim import Simulator

# A shell that tried `binance-ws sim` may still export its market; tests name their markets themselves.
os.environ.pop(ENV_MARKET, None)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator with ephemeral ports and a brisk synthetic flow."""
    async with Simulator(flow_rate=200.0) as s:
        yield s
