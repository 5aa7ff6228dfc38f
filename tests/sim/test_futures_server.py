"""The simulator as USD-M / COIN-M over loopback: routed paths (``/public``, ``/market``, legacy ``/ws`` and
``/stream`` with public streams only), futures limits and ids, the client's AsyncSocketManager on a
USD-M-shaped local market, and the USD-M capture replayed on ``/public`` (PROTOCOL.md 8)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from itertools import pairwise
from typing import Any

import aiohttp
import orjson
import pytest
from picows import WSInvalidStatusError

from binance_ws.sim import Simulator
from binance_ws.sim.futures.product import product_config
from binance_ws.sim.replay import Replay
from tests.paths import DATA
from tests.sim._client import TIMEOUT, RawClient, connect
from tests.sim_process import printed_lines

USDM_CAPTURE = DATA / "usdm_btcusdt_20240808.hftbacktest.gz"


def events(messages: list[Any]) -> set[str]:
    """The event types (``e``) among stream messages (control replies have none)."""
    found = set()
    for m in messages:
        data = m.get("data", m) if isinstance(m, dict) else m
        for p in data if isinstance(data, list) else [data]:
            if isinstance(p, dict) and "e" in p:
                found.add(p["e"])
    return found


async def ask(client: RawClient, msg: dict[str, Any]) -> Any:
    """Send a control message and return its reply, skipping stream messages that arrive meanwhile."""
    before = len(client.texts())
    client.send_text(orjson.dumps(msg))

    def replies() -> list[Any]:
        return [m for m in map(orjson.loads, client.texts()[before:])
                if isinstance(m, dict) and ("result" in m or "error" in m)]

    await client.wait_for(lambda: bool(replies()))
    return replies()[0]


async def test_routes_deliver_their_own_streams_and_acknowledge_the_others() -> None:
    async with Simulator(product_config("usdm", flow_rate=200.0)) as sim:
        base = sim.stream_url
        both = "btcusdt@depth@100ms/btcusdt@markPrice@1s"
        public = await connect(f"{base}/public/stream?streams={both}")
        market = await connect(f"{base}/market/stream?streams={both}")
        await public.wait_for(lambda: "depthUpdate" in events(public.messages()))
        await market.wait_for(lambda: "markPriceUpdate" in events(market.messages()))
        # Both names are subscribed on both; each route serves only its own (PROTOCOL 8).
        for client in (public, market):
            reply = await ask(client, {"method": "LIST_SUBSCRIPTIONS", "id": 1})
            assert reply == {"result": ["btcusdt@depth@100ms", "btcusdt@markPrice@1s"], "id": 1}
        await asyncio.sleep(1.5)
        assert events(public.messages()) == {"depthUpdate"}
        assert events(market.messages()) == {"markPriceUpdate"}


async def test_subscribe_on_the_wrong_route_is_acknowledged_and_silent() -> None:
    async with Simulator(product_config("usdm", flow_rate=200.0)) as sim:
        client = await connect(f"{sim.stream_url}/public/ws")
        assert await client.request({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 7}) == \
            {"result": None, "id": 7}
        assert await ask(client, {"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 8}) == \
            {"result": None, "id": 8}
        await client.wait_for(lambda: "bookTicker" in events(client.messages()))
        await asyncio.sleep(1.0)
        assert events(client.messages()) == {"bookTicker"}
        # Unknown names are still refused, as on spot.
        reply = await ask(client, {"method": "SUBSCRIBE", "params": ["btcusdt@kline_1s"], "id": 9})
        assert reply == {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 9}


@pytest.mark.parametrize("path", ["/ws/btcusdt@bookTicker/btcusdt@aggTrade",
                                  "/stream?streams=btcusdt@bookTicker/btcusdt@aggTrade"])
async def test_legacy_paths_get_only_public_streams(path: str) -> None:
    async with Simulator(product_config("usdm", flow_rate=200.0)) as sim:
        client = await connect(f"{sim.stream_url}{path}")
        await client.wait_for(lambda: "bookTicker" in events(client.messages()))
        await asyncio.sleep(1.0)
        assert events(client.messages()) == {"bookTicker"}


async def test_coinm_is_unrouted_and_carries_pairs() -> None:
    async with Simulator(product_config("coinm", flow_rate=200.0)) as sim:
        client = await connect(f"{sim.stream_url}/stream?streams=btcusd_perp@bookTicker/"
                               "btcusd_perp@markPrice@1s")
        await client.wait_for(lambda: {"bookTicker", "markPriceUpdate"} <= events(client.messages()))
        book = next(m["data"] for m in client.messages() if m["data"]["e"] == "bookTicker")
        assert book["ps"] == "BTCUSD"


# -- limits and ids -----------------------------------------------------------------------------------------
def test_futures_config_has_protocol_8_limits() -> None:
    cfg = product_config("usdm")
    assert (cfg.max_incoming_per_second, cfg.ping_interval_s, cfg.pong_timeout_s) == (10.0, 180.0, 600.0)
    assert cfg.connection_lifetime_s == 86_400.0
    assert [s.symbol for s in cfg.symbols] == ["BTCUSDT", "ETHUSDT"]
    assert [s.symbol for s in product_config("coinm").symbols] == ["BTCUSD_PERP", "ETHUSD_PERP"]
    with pytest.raises(ValueError, match="spot, usdm or coinm"):
        product_config("options")


async def test_ten_messages_a_second_are_allowed_the_eleventh_closes() -> None:
    async with Simulator(product_config("usdm", flow_rate=0.0)) as sim:
        ok = await connect(f"{sim.stream_url}/market/ws")
        for i in range(10):
            ok.send_text(b'{"method":"LIST_SUBSCRIPTIONS","id":%d}' % i)
        await ok.wait_for(lambda: len(ok.texts()) == 10)
        over = await connect(f"{sim.stream_url}/market/ws")
        for i in range(11):
            over.send_text(b'{"method":"LIST_SUBSCRIPTIONS","id":%d}' % i)
        assert await over.closed() == (1008, "Too many requests")
        assert not ok.disconnected


async def test_pings_every_3_minutes_compressed() -> None:
    async with Simulator(product_config("usdm", flow_rate=0.0).compressed(360)) as sim:  # 180 s -> 0.5 s
        client = await connect(f"{sim.stream_url}/public/ws")
        started = time.monotonic()
        await client.wait_for(lambda: len([f for f in client.frames if f[0].name == "PING"]) >= 2)
        assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize("request_id", ["abc", -1, "0f8c2f36-8a4e-4fd4-a5d5-1b6a0d1c2e3f"])
async def test_futures_request_ids_must_be_unsigned_integers(request_id: Any) -> None:
    async with Simulator(product_config("usdm", flow_rate=0.0)) as sim:
        client = await connect(f"{sim.stream_url}/public/ws")
        reply = await client.request({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
        assert reply["error"] == {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}
        assert await client.request({"method": "LIST_SUBSCRIPTIONS", "id": 0}) == {"result": [], "id": 0}


# -- the client's manager on a USD-M-shaped local market ---------------------------------------------------
async def test_async_socket_manager_routes_streams_over_public_and_market() -> None:
    from binance_ws.engine.manager import AsyncSocketManager

    async with Simulator(product_config("usdm", flow_rate=200.0)) as sim:
        market = sim.market
        assert market.routed_paths and market.stream_url.endswith("/public")
        got: dict[str, list[Any]] = {}
        done = asyncio.Event()
        names = ["btcusdt@depth@100ms", "btcusdt@aggTrade", "btcusdt@markPrice@1s"]

        def on_message(msg: Any) -> None:
            data = msg.get("data", msg)
            got.setdefault(str(data.get("e")), []).append(data)
            if {"depthUpdate", "aggTrade", "markPriceUpdate"} <= got.keys():
                done.set()

        async with AsyncSocketManager(market=market) as manager:
            for name in names:
                await manager.subscribe(name, on_message)
            await asyncio.wait_for(done.wait(), TIMEOUT * 2)
            paths = {c["path"].split("?")[0] for c in sim.faults.state()["connections"]}
        assert paths == {"/public/stream", "/market/stream"}
        depth = got["depthUpdate"]
        assert all(b["pu"] == a["u"] for a, b in pairwise(depth))


# -- replay of the USD-M capture on /public ------------------------------------------------------------------
async def test_usdm_capture_replays_on_public_and_nothing_on_market() -> None:
    replay = Replay(USDM_CAPTURE, speed=0, loop=True)
    async with Simulator(product_config("usdm", flow_rate=0.0), replay=replay) as sim:
        names = "btcusdt@depth@0ms/btcusdt@bookTicker/btcusdt@trade"
        public = await connect(f"{sim.stream_url}/public/stream?streams={names}")
        market = await connect(f"{sim.stream_url}/market/stream?streams={names}")
        await public.wait_for(lambda: len(public.texts()) >= 901 + 9178 + 1920, TIMEOUT * 6)
        # Every captured stream is on /public (the capture is of the pre-2026 unrouted URL; PROTOCOL 8
        # routes the book streams there, and @trade as ccxt routes it): /market carries none of them.
        assert {m["stream"] for m in public.messages()} == set(names.split("/"))
        assert market.texts() == []
        depth = [m["data"] for m in public.messages() if m["stream"] == "btcusdt@depth@0ms"][:901]
        assert len(depth) == 901
        assert all(b["pu"] == a["u"] for a, b in pairwise(depth))
        # REST depth answers with the recording's snapshot (its lastUpdateId falls in the captured chain).
        snap = sim.depth_snapshot("BTCUSDT", 5)
        assert snap["lastUpdateId"] == 5123107852948


# -- binance-ws sim --market ---------------------------------------------------------------------------------
_SIM = [sys.executable, "-m", "binance_ws.cli", "sim", "--stream-port", "0", "--rest-port", "0"]


@pytest.mark.parametrize(("args", "message"), [
    (["--market", "options"], "error: --market must be one of spot, usdm, coinm, not 'options'"),
    (["--market", "usdm", "--symbols", "10"],
     "error: --symbols lists spot symbols; it cannot be used with --market usdm or coinm"),
    (["--replay", str(USDM_CAPTURE), "--market", "spot"],
     f"error: --replay {USDM_CAPTURE.name} is a usdm recording; serve it with --market usdm "
     "(or leave --market out)"),
])
def test_sim_market_refuses_bad_input_in_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run([*_SIM, *args], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [message], "")


async def test_sim_market_usdm_prints_every_route_and_serves_them() -> None:
    proc = await asyncio.create_subprocess_exec(*_SIM, "--market", "usdm", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        lines = await printed_lines(proc.stdout)
        assert {"public", "market", "private", "legacy", "REST", "control"} <= lines.keys()
        assert lines["symbols"] == "BTCUSDT ETHUSDT"
        public = lines["public"].split()[0].replace("<stream>", "btcusdt@depth5@100ms")
        market = lines["market"].split()[0].replace("<stream>", "btcusdt@markPrice@1s")
        assert "/private/ws?listenKey=" in lines["private"]
        depth, mark = await connect(public), await connect(market)
        await depth.wait_for(lambda: len(depth.texts()) >= 2, TIMEOUT * 2)
        await mark.wait_for(lambda: len(mark.texts()) >= 2, TIMEOUT * 2)
        assert events(depth.messages()) == {"depthUpdate"} and events(mark.messages()) == {"markPriceUpdate"}
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def test_sim_replay_of_the_usdm_capture_serves_it_as_usdm_without_market() -> None:
    proc = await asyncio.create_subprocess_exec(*_SIM, "--replay", str(USDM_CAPTURE), "--speed", "0",
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        lines = await printed_lines(proc.stdout)
        assert lines["REST"].endswith("/fapi/v1/exchangeInfo") and "public" in lines
        public = lines["public"].split()[0].replace("<stream>", "btcusdt@depth@0ms")
        depth = await connect(public)
        await depth.wait_for(lambda: len(depth.texts()) >= 10, TIMEOUT * 2)
        assert all("pu" in m for m in depth.messages())
        rest = lines["REST"].replace("exchangeInfo", "depth?symbol=BTCUSDT&limit=5")
        async with aiohttp.ClientSession() as http, http.get(rest) as resp:
            assert (await resp.json())["lastUpdateId"] == 5123107852948  # the recorded snapshot
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


# -- /private ------------------------------------------------------------------------------------------------
async def test_private_route_serves_listen_key_streams_only() -> None:
    async with Simulator(product_config("usdm", flow_rate=0.0)) as sim:
        account = sim.accounts.create_account("alice")
        key = sim.accounts.create_listen_key(account)
        user = await connect(f"{sim.stream_url}/private/ws?listenKey={key}")
        for _ in range(50):  # the server opens the key's stream once the handshake is done
            sim.futures["usdm"].deposit(account, "USDT", "10")
            with contextlib.suppress(AssertionError):
                await user.wait_for(lambda: "ACCOUNT_UPDATE" in events(user.messages()), 0.1)
                break
        assert "ACCOUNT_UPDATE" in events(user.messages())
        # Market streams are not served on /private (404), and a listen key is no stream on /public.
        with pytest.raises(WSInvalidStatusError) as info:
            await connect(f"{sim.stream_url}/private/ws/btcusdt@depth")
        assert info.value.response is not None and info.value.response.status == 404
        public = await connect(f"{sim.stream_url}/public/ws?listenKey={key}")
        assert await public.request({"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {"result": [], "id": 1}
