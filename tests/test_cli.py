"""``binance-ws tail`` as a user runs it: a subprocess against the simulator over loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import orjson
import pytest

from binance_ws.sim import Simulator

_CMD = [sys.executable, "-m", "binance_ws.cli", "tail"]


def _tail(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_CMD, *args], capture_output=True, text=True, timeout=60)


def test_tail_sim_readable_lines() -> None:
    proc = _tail("btcusdt@trade", "ethusdt@aggTrade", "bnbbtc@depth5@100ms", "--sim", "--count", "12")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 12
    for line in lines:
        clock, stream, rest = line.split(maxsplit=2)
        assert len(clock) == len("00:00:00.000") and clock[2] == ":" and clock[8] == "."
        assert stream in ("btcusdt@trade", "ethusdt@aggTrade", "bnbbtc@depth5@100ms")
        if stream == "bnbbtc@depth5@100ms":
            assert rest.startswith("bid ") and " ask " in rest
        else:
            assert rest.split()[0] in ("BUY", "SELL") and " @ " in rest and " id " in rest


def test_tail_sim_json_lines_are_binance_payloads() -> None:
    proc = _tail("btcusdt@trade", "ethusdt@trade", "--sim", "--count", "10", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    msgs = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert len(msgs) == 10
    ids: dict[str, list[int]] = {}
    for m in msgs:
        assert list(m) == ["stream", "data"]
        assert m["data"]["e"] == "trade" and m["data"]["s"] == m["stream"].split("@")[0].upper()
        ids.setdefault(m["stream"], []).append(m["data"]["t"])
    for seq in ids.values():
        assert seq == list(range(seq[0], seq[0] + len(seq)))


@pytest.mark.parametrize(("args", "fragment"), [
    (["BTCUSDT@trade", "--sim"], "did you mean 'btcusdt@trade'?"),
    (["btcusdt@kline_2m", "--sim"], "unknown kline interval '2m'"),
    (["!ticker@arr", "--sim"], "retired"),
    (["btcusdt@trade", "--sim", "--testnet"], "choose one of"),
    (["btcusdt@trade", "--sim", "--count", "-1"], "--count"),
])
def test_tail_refuses_bad_input_with_the_fix(args: list[str], fragment: str) -> None:
    proc = _tail(*args)
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert proc.stdout == ""


async def test_tail_endpoint(sim: Simulator) -> None:
    # The simulator runs in this test's loop, so the command must run without blocking it.
    proc = await asyncio.create_subprocess_exec(
        *_CMD, "btcusdt@bookTicker", "--endpoint", sim.stream_url, "--count", "3", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    msgs = [orjson.loads(line) for line in out.splitlines()]
    assert len(msgs) == 3 and all(m["stream"] == "btcusdt@bookTicker" and "b" in m["data"] for m in msgs)


def test_tail_stops_quietly_when_the_reader_goes_away() -> None:
    proc = subprocess.Popen([*_CMD, "btcusdt@bookTicker", "--sim", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(3):
        assert orjson.loads(proc.stdout.readline())["stream"] == "btcusdt@bookTicker"
    proc.stdout.close()  # like `| head -3` exiting
    try:
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert b"Traceback" not in proc.stderr.read()
