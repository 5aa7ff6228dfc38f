"""``binance-ws tail`` as a user runs it: a subprocess against the simulator over loopback."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading
import time

import orjson
import pytest

from binance_ws.sim import Simulator

_CMD = [sys.executable, "-m", "binance_ws.cli", "tail"]
#: fcntl.F_SETPIPE_SZ (Linux), named in the fcntl module from Python 3.10 on.
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def _tail(*args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    """``binance-ws tail ARGS`` with stdout a pipe: lines unlimited, or fitted to ``columns`` ($COLUMNS)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run([*_CMD, *args], capture_output=True, text=True, timeout=60, env=env)


def _is_clock(text: str) -> bool:
    return len(text) == len("00:00:00.000") and text[2] == text[5] == ":" and text[8] == "."


def test_tail_sim_readable_lines() -> None:
    """Receive time, then event time ("-" when the payload carries none: a partial book), stream, fields;
    prices as Binance sends them without the zero padding."""
    proc = _tail("btcusdt@trade", "ethusdt@aggTrade", "bnbbtc@depth5@100ms", "--sim", "--count", "12")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 12
    for line in lines:
        received, event, stream, rest = line.split(maxsplit=3)
        assert _is_clock(received)
        assert stream in ("btcusdt@trade", "ethusdt@aggTrade", "bnbbtc@depth5@100ms")
        if stream == "bnbbtc@depth5@100ms":
            assert event == "-"
            assert rest.startswith("bid ") and " ask " in rest
        else:
            assert _is_clock(event)
            side, qty, at, price = rest.split()[:4]
            assert side in ("BUY", "SELL") and at == "@" and " id " in rest
            for number in (qty, price):
                assert not (number.endswith("0") and "." in number), number  # padding trimmed
                float(number)


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


def _pending(fd: int) -> int:
    """Bytes waiting in pipe ``fd``."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


async def test_tail_keeps_the_event_loop_free_while_the_terminal_is_stuck(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """stdout is a pipe nobody reads for a while (a stuck terminal): the loop that answers pings must go on
    turning, and once the reader comes back every line arrives, complete and in order."""
    from binance_ws import markets
    from binance_ws.cli import tail as cli

    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, F_SETPIPE_SZ, 4096)  # the smallest pipe: a few lines fill it
    writer = os.fdopen(write_fd, "w")
    monkeypatch.setattr(sys, "stdout", writer)
    count = 400
    beats: list[float] = []
    verdict: dict[str, float] = {}
    chunks: list[bytes] = []

    async def heartbeat() -> None:
        while True:
            beats.append(time.monotonic())
            await asyncio.sleep(0.01)

    def reader() -> None:
        # Read nothing until the pipe is full and 1.5 s more, note how the loop fared, then drain it all.
        deadline = time.monotonic() + 30
        while _pending(read_fd) < 4096 - 512 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.5)
        verdict["beats_in_last_s"] = sum(1 for b in list(beats) if b > time.monotonic() - 1.0)
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)

    beat = asyncio.create_task(heartbeat())
    drain = threading.Thread(target=reader, daemon=True)
    drain.start()
    try:
        code = await asyncio.wait_for(
            cli._tail(["btcusdt@bookTicker", "ethusdt@bookTicker", "btcusdt@trade"], markets.SPOT, True,
                      count, True), 60)
    finally:
        beat.cancel()
        writer.close()
        drain.join(10)
        os.close(read_fd)
    assert code == 0
    assert verdict["beats_in_last_s"] > 20, verdict  # the loop kept turning while stdout was stuck
    lines = b"".join(chunks).splitlines()
    assert len(lines) == count
    last: dict[str, int] = {}
    for line in lines:
        msg = orjson.loads(line)
        key = msg["data"]["u"] if "u" in msg["data"] else msg["data"]["t"]
        assert key > last.get(msg["stream"], -1), "a line out of order"
        last[msg["stream"]] = key
