"""``binance-ws tail --market``: the futures products from the command line, as a user runs it (a
subprocess) against the scripted futures exchange of the engine tests over loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import orjson
import pytest

from tests.engine._futures_server import FuturesServer, futures_server
from tests.futures_payloads import DEPTH, INDEX_PRICE, MARK_PRICE

_CMD = [sys.executable, "-m", "binance_ws.cli", "tail"]


async def _run_while_pushing(server: FuturesServer, args: list[str], pushes: list[tuple[str, Any]]) -> Any:
    proc = await asyncio.create_subprocess_exec(*_CMD, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    done = asyncio.ensure_future(proc.communicate())
    deadline = asyncio.get_running_loop().time() + 60
    while not done.done():
        assert asyncio.get_running_loop().time() < deadline, "tail did not finish"
        for stream, payload in pushes:
            server.push(stream, payload)
        await asyncio.sleep(0.05)
    out, err = done.result()
    assert proc.returncode == 0, err.decode()[-2000:]
    return [orjson.loads(line) for line in out.splitlines()]


async def test_tail_market_usdm_reads_public_and_market_routes() -> None:
    async with futures_server("usdm") as server:
        url = f"ws://127.0.0.1:{server.port}"
        msgs = await _run_while_pushing(
            server, ["btcusdt@markPrice@1s", "btcusdt@depth5", "--market", "usdm", "--endpoint", url,
                     "--json", "--count", "4"],
            [("btcusdt@markPrice@1s", MARK_PRICE), ("btcusdt@depth5", DEPTH)])
        assert {m["stream"] for m in msgs} == {"btcusdt@markPrice@1s", "btcusdt@depth5"}
        assert all(m["data"] in (MARK_PRICE, DEPTH) for m in msgs)
        assert {route for route, _ in server.connects} >= {"public", "market"}


async def test_tail_market_coinm_reads_the_unrouted_host() -> None:
    async with futures_server("coinm") as server:
        msgs = await _run_while_pushing(
            server, ["btcusd@indexPrice", "--market", "coinm", "--endpoint", f"ws://127.0.0.1:{server.port}",
                     "--json", "--count", "1"], [("btcusd@indexPrice", INDEX_PRICE)])
        assert msgs == [{"stream": "btcusd@indexPrice", "data": INDEX_PRICE}]


@pytest.mark.parametrize(("args", "message"), [
    (["btcusdt@trade", "--market", "usdx"],
     "error: --market 'usdx' is not one of spot, usdm, coinm, spot-testnet, usdm-testnet, coinm-testnet"),
    (["btcusdt@markPrice", "--market", "usdm-testnet", "--sim"],
     "error: --sim serves the products themselves: --market spot, usdm or coinm"),
    (["btcusdt@markPrice"],
     "error: stream 'btcusdt@markPrice': 'markPrice' is a usdm/coinm stream, not on spot"),
    (["btcusdt@avgPrice", "--market", "usdm", "--testnet"],
     "error: stream 'btcusdt@avgPrice': 'avgPrice' is a spot stream, not on usdm-testnet"),
    (["btcusd@indexPrice", "--market", "COINM-testnet", "--endpoint", "http://x"],
     "error: --endpoint 'http://x' is an http:// URL"),
])
def test_tail_market_refuses_bad_input_in_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run([*_CMD, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr


# -- --sim --market: the embedded simulator serves the product -------------------------------------------
@pytest.mark.parametrize(("market", "names"), [
    ("usdm", ["btcusdt@markPrice@1s", "btcusdt@depth5@100ms"]),  # /market and /public
    ("coinm", ["btcusd_perp@markPrice@1s", "btcusd_perp@depth5@100ms"]),
])
def test_tail_sim_serves_the_futures_product(market: str, names: list[str]) -> None:
    proc = subprocess.run([*_CMD, *names, "--sim", "--market", market, "--json", "--count", "12"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    msgs = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert len(msgs) == 12 and {m["stream"] for m in msgs} == set(names)
    kinds = {m["stream"]: m["data"]["e"] for m in msgs}
    assert kinds == {names[0]: "markPriceUpdate", names[1]: "depthUpdate"}
    assert all("pu" in m["data"] for m in msgs if m["data"]["e"] == "depthUpdate")


@pytest.mark.parametrize("command", [["book", "BTCUSDT"], ["top", "btcusdt@markPrice@1s"]])
def test_views_take_the_market_too(command: list[str]) -> None:
    cmd = [sys.executable, "-m", "binance_ws.cli", *command, "--sim", "--market", "usdm", "-n", "6",
           "--interval", "0.5"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("UTC --") == 6
    last = proc.stdout.rpartition("UTC --")[2]
    # The futures book syncs on the futures rule (pu chain, /fapi/v1/depth); top sees the /market stream.
    assert ("SYNCED" in last) if command[0] == "book" else ("btcusdt@markPrice@1s" in last)
