"""``binance-ws collect`` as a user runs it: a subprocess, a real redis-server, the simulator."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from typing import Any

import pytest

from binance_ws.sim import Simulator
from tests.redis_server import RedisServer, free_port
from tests.redis_server import redis_server as redis_server  # the fixture

_CLI = [sys.executable, "-m", "binance_ws.cli", "collect"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_CLI, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "says"), [
    (["btcusdt@trade"], "--redis URL is required"),
    (["btcusdt@nonsense", "--redis", "redis://127.0.0.1:1/0"], "btcusdt@nonsense"),
    (["btcusdt@trade", "--redis", "http://127.0.0.1:6379"], "redis://"),
    (["btcusdt@trade", "--redis", "redis://127.0.0.1:6379", "--redundancy", "0"], "--redundancy"),
    (["btcusdt@trade", "--redis", "redis://127.0.0.1:6379", "--market", "margin"], "--market"),
    (["btcusdt@trade", "--redis", "redis://127.0.0.1:6379", "--lease-ttl", "0"], "--lease-ttl"),
    (["btcusdt@trade", "--redis", "redis://127.0.0.1:6379", "--rest", "ws://x"], "--rest"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    proc = _run(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], proc.stderr


def test_an_unreachable_redis_is_one_line_exit_1_and_never_shows_the_password() -> None:
    port = free_port()
    proc = _run("btcusdt@trade", "--sim", "--redis", f"redis://user:hunter2@127.0.0.1:{port}/0")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach Redis" in lines[0] and f":{port}" in lines[0], proc.stderr
    assert "hunter2" not in proc.stderr


def test_a_stream_the_server_refuses_is_one_line_exit_2_beside_others_being_subscribed(
        redis_server: RedisServer) -> None:
    """solusdt is not listed by the embedded simulator: its shard's subscribe is refused while the other
    shards' are under way, and what the member leaves behind on its way out must not reach stderr."""
    for _ in range(3):  # the moment the others are cancelled at varies: the noise came about every run
        proc = _run("solusdt@trade", "btcusdt@trade", "ethusdt@trade", "ethusdt@depth@100ms", "--sim",
                    "--redis", redis_server.url, "--shards", "4")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [
            "error: the server refused solusdt@trade (shard 0): Binance stream error 2: Invalid request: "
            "invalid stream"], proc.stderr
        import redis

        with redis.Redis(port=redis_server.port) as c:
            c.flushall()  # the next run is a fresh fleet


def test_redis_outage_must_not_be_negative() -> None:
    proc = _run("btcusdt@trade", "--redis", "redis://127.0.0.1:6379", "--redis-outage", "-1")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["error: --redis-outage must be 0 or more seconds, not -1.0"]


async def _scrape(url: str) -> dict[tuple[str, str], float]:
    """Samples of a /metrics page by (name, sink label)."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        text = await resp.text()
    return {(sample.name, sample.labels.get("sink", "")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def _wait(pred: Any, what: str, deadline_s: float = 30) -> None:
    async with asyncio.timeout(deadline_s):
        while not await pred():
            await asyncio.sleep(0.05)


async def test_collects_into_redis_and_sigterm_releases_the_leases(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    async with Simulator(flow_rate=200.0) as sim:
        names = ["btcusdt@trade", "ethusdt@trade", "btcusdt@depth@100ms"]
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            *_CLI, *names, "--endpoint", sim.stream_url, "--redis", redis_server.url, "--lease-ttl", "1",
            "--shards", "4", "--name", "solo", "--metrics-port", str(port), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        try:
            async def stored() -> bool:
                return all([await client.xlen(f"binance:spot:{n}") > 5 for n in names])

            await _wait(stored, "messages in Redis")
            leases = [k async for k in client.scan_iter("{binance:spot:fleet}:lease:*")]
            assert len(leases) == 4
            assert {await client.get(k) for k in leases} == {b"solo"}
            # --metrics-port: what the sink wrote (never more than Redis holds), how long, which shards.
            samples = await _scrape(f"http://127.0.0.1:{port}/metrics")
            stored = sum([await client.xlen(f"binance:spot:{n}") for n in names])
            assert 0 < samples[("binance_ws_sink_entries_total", "redis")] <= stored
            assert samples[("binance_ws_sink_write_seconds_count", "redis")] > 0
            assert samples[("binance_ws_shards_owned", "")] == 4
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err
            assert [k async for k in client.scan_iter("{binance:spot:fleet}:lease:*")] == []
            # A member started with other streams is refused while the fleet's configuration lives.
            other = await asyncio.create_subprocess_exec(
                *_CLI, "btcusdt@trade", "--endpoint", sim.stream_url, "--redis", redis_server.url,
                "--shards", "4", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(other.communicate(), 30)
            assert other.returncode == 2, err
            assert err.decode().count("\n") == 1 and "same streams and --shards" in err.decode()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await client.aclose()


@pytest.mark.parametrize(("market", "names"), [
    ("usdm", ["btcusdt@aggTrade", "btcusdt@trade", "btcusdt@markPrice@1s"]),
    ("coinm", ["btcusd_perp@aggTrade", "btcusd_perp@depth@100ms"]),
])
async def test_collect_sim_serves_the_market_it_is_given(redis_server: RedisServer, market: str,
                                                         names: list[str]) -> None:
    """``--sim --market usdm`` collects from an embedded USD-M simulator (it was a spot one, which
    refused every futures stream), into binance:usdm:<stream>."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    proc = await asyncio.create_subprocess_exec(
        *_CLI, *names, "--sim", "--market", market, "--redis", redis_server.url, "--shards", "2",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async def stored() -> bool:
            assert proc.returncode is None, await proc.stderr.read() if proc.stderr else b""
            return all([await client.xlen(f"binance:{market}:{n}") > 0 for n in names])

        await _wait(stored, "futures messages in Redis", 60)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        assert err == b""  # the embedded simulator makes the API key historicalTrades needs: no warning
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await client.aclose()
