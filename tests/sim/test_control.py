"""The HTTP control endpoint: faults triggered from outside the process, seen by a stream client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from binance_ws.sim import Simulator
from binance_ws.sim.control import FAULT_NAMES, add_routes
from tests.sim._client import QuietSim, connect


@pytest.fixture
async def control() -> AsyncIterator[tuple[QuietSim, str]]:
    """A stream server and a bare aiohttp app carrying only the control routes."""
    async with QuietSim() as sim:
        app = web.Application()
        add_routes(app, sim.faults)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield sim, f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


async def test_index_lists_faults_and_state(control: tuple[QuietSim, str]) -> None:
    sim, base = control
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    async with aiohttp.ClientSession() as http, http.get(f"{base}/sim/") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert set(body["faults"]) == set(FAULT_NAMES)
    assert body["faults"]["close"]["params"] == {"code": 1000, "reason": "", "conn": None}
    (conn,) = body["state"]["connections"]
    assert conn["id"] == client.conn_id and conn["streams"] == ["btcusdt@trade"]


async def test_post_close_reaches_the_client(control: tuple[QuietSim, str]) -> None:
    sim, base = control
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    async with aiohttp.ClientSession() as http, \
            http.post(f"{base}/sim/faults/close", json={"code": 1011, "reason": "oops"}) as resp:
        assert resp.status == 200
        assert await resp.json() == {"fault": "close", "result": 1}
    assert await client.closed() == (1011, "oops")


async def test_post_errors(control: tuple[QuietSim, str]) -> None:
    _, base = control
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/sim/faults/explode") as resp:
            assert resp.status == 404
        async with http.post(f"{base}/sim/faults/close", json={"colour": "red"}) as resp:
            assert resp.status == 400
        async with http.post(f"{base}/sim/faults/close", json={"code": 4000}) as resp:
            assert resp.status == 400
        async with http.post(f"{base}/sim/faults/skip", data=b"not json") as resp:
            assert resp.status == 400


async def test_rest_fault_and_clear(control: tuple[QuietSim, str]) -> None:
    sim, base = control
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/sim/faults/rest", json={"fail_status": 503, "fail_count": 2}) as resp:
            assert resp.status == 200
        assert (sim.faults.rest_fail_status, sim.faults.rest_fail_count) == (503, 2)
        async with http.post(f"{base}/sim/faults/clear") as resp:
            assert resp.status == 200
    assert (sim.faults.rest_fail_status, sim.faults.rest_fail_count) == (None, 0)


async def test_simulator_mounts_the_control_routes() -> None:
    async with Simulator(flow_rate=0.0) as sim:
        client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
        async with aiohttp.ClientSession() as http, http.post(f"{sim.rest_url}/sim/faults/drop") as resp:
            assert resp.status == 200
        assert await client.closed() is None
