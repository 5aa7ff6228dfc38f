"""The sync ``Client`` calls a python-binance user reaches for first, and its clean-up at exit.

``get_klines`` and ``get_symbol_ticker`` run against the simulator. The simulator of this branch has no
``openOrders``, ``myTrades`` or ``order/test`` route yet, so for those three the request the client
builds (method, path, parameters, API-key header, HMAC signature over the text as sent) is checked
against a small aiohttp server written here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from binance_ws import Client
from binance_ws.enums import KLINE_INTERVAL_1MINUTE
from binance_ws.markets import local_market
from binance_ws.sim import Simulator

SECRET = "s3cr3t"


class ServerThread:
    """An aiohttp app on its own loop thread, for sync tests."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-http", daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(app)

        async def start() -> int:
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

        self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def sim_urls() -> Iterator[tuple[str, str]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-sim", daemon=True)
    thread.start()
    sim = asyncio.run_coroutine_threadsafe(Simulator(flow_rate=200.0).start(), loop).result(10)
    yield sim.stream_url, sim.rest_url
    asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_klines_and_symbol_ticker_against_the_simulator(sim_urls: tuple[str, str]) -> None:
    with Client(market=local_market(*sim_urls), env={}) as client:
        deadline = time.monotonic() + 10
        while not client.get_recent_trades("BTCUSDT", limit=1):  # klines are built from trades
            assert time.monotonic() < deadline, "the simulator traded nothing"
            time.sleep(0.05)
        bars = client.get_klines(symbol="BTCUSDT", interval=KLINE_INTERVAL_1MINUTE, limit=5)
        assert 1 <= len(bars) <= 5
        open_time, o, h, low, c = bars[-1][:5]
        assert isinstance(open_time, int) and float(low) <= float(o) <= float(h) and float(c) > 0
        ticker = client.get_symbol_ticker(symbol="BTCUSDT")
        assert isinstance(ticker, dict) and ticker["symbol"] == "BTCUSDT" and float(ticker["price"]) > 0
        every = client.get_symbol_ticker()
        assert isinstance(every, list) and {"BTCUSDT", "ETHUSDT", "BNBBTC"} <= {t["symbol"] for t in every}


def test_a_missing_call_names_client_not_async_client() -> None:
    client = Client(env={})
    with pytest.raises(AttributeError, match="'Client' object has no attribute 'get_nothing'"):
        client.get_nothing  # noqa: B018
    assert client.recv_window == 5000  # plain attributes still read through
    client.close()


def test_signed_seed_calls_build_binance_requests() -> None:
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        body = await request.text()
        query = request.rel_url.raw_query_string
        seen.append({"method": request.method, "path": request.path, "query": query, "body": body,
                     "key": request.headers.get("X-MBX-APIKEY")})
        signed = query if request.method == "GET" else body
        text, _, signature = signed.rpartition("&signature=")
        expected = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
        if signature != expected:
            return web.json_response({"code": -1022, "msg": "Signature for this request is not valid."},
                                     status=400)
        return web.json_response({} if request.path.endswith("/test") else [])

    async def server_time(request: web.Request) -> web.Response:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    app = web.Application()
    app.router.add_get("/api/v3/time", server_time)
    for path in ("/api/v3/openOrders", "/api/v3/myTrades"):
        app.router.add_get(path, record)
    app.router.add_post("/api/v3/order/test", record)
    server = ServerThread(app)
    try:
        with Client("my-key", SECRET, market=local_market("ws://127.0.0.1:1", server.url), env={}) as client:
            assert client.create_test_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                            quantity="0.001", price="60000") == {}
            assert client.get_open_orders(symbol="BTCUSDT") == []
            assert client.get_open_orders() == []
            assert client.get_my_trades(symbol="ETHUSDT", limit=10) == []
    finally:
        server.stop()
    assert [(r["method"], r["path"]) for r in seen] == [
        ("POST", "/api/v3/order/test"), ("GET", "/api/v3/openOrders"), ("GET", "/api/v3/openOrders"),
        ("GET", "/api/v3/myTrades")]
    assert all(r["key"] == "my-key" for r in seen)
    assert seen[0]["body"].startswith(
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=60000&")
    assert seen[1]["query"].startswith("symbol=BTCUSDT&") and not seen[2]["query"].startswith("symbol=")
    assert seen[3]["query"].startswith("symbol=ETHUSDT&limit=10&")
    assert all("timestamp=" in (r["query"] or r["body"]) for r in seen)


_SEED_SCRIPT = """
import sys
from binance_ws import Client
from binance_ws.markets import local_market
client = Client(market=local_market("ws://127.0.0.1:1", sys.argv[1]), env={})
print(client.ping())
# never closed, as seed code does
"""


def test_a_client_never_closed_exits_without_an_unclosed_session_warning() -> None:
    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/api/v3/ping", ping)
    server = ServerThread(app)
    try:
        proc = subprocess.run([sys.executable, "-X", "dev", "-c", _SEED_SCRIPT, server.url],
                              capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "{}"
    assert "Unclosed" not in proc.stderr and "unclosed" not in proc.stderr, proc.stderr
