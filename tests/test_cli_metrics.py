"""``binance-ws tail --metrics-port``: a real subprocess, scraped over HTTP, parsed with prometheus-client's
own parser, its figures checked against what the command printed.

The simulator replays a recording written here (known messages, one trade id missing), as fast as the
client reads, so when the command has printed every message nothing more arrives and the figures are
exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from binance_ws.metrics import LAG_SAMPLE_EVERY
from binance_ws.recording import RecordingWriter
from binance_ws.sim import Simulator
from binance_ws.sim.replay import Replay

TRADE = "xyzusdt@trade"
BOOK = "xyzusdt@bookTicker"
TRADES = 300
BOOKS = 200
#: The trade id the recording leaves out: one gap of one id.
MISSING_ID = 150
DEADLINE_S = 60.0
_CMD = [sys.executable, "-m", "binance_ws.cli", "tail"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _record(path: Path) -> None:
    """TRADES trades (ids 0.., MISSING_ID left out) and BOOKS book tickers (no ``E``), interleaved, their
    event times now: the lag the command measures is then this test's own few seconds."""
    now_ms = int(time.time() * 1000)
    with RecordingWriter(path, market="spot") as w:
        for i in range(TRADES + 1):
            if i != MISSING_ID:
                w.write(time.time_ns(), TRADE, orjson.dumps(
                    {"e": "trade", "E": now_ms, "s": "XYZUSDT", "t": i, "p": "1.00000000", "q": "1.00000000",
                     "T": now_ms, "m": i % 2 == 0, "M": True}))
            if i < BOOKS:
                w.write(time.time_ns(), BOOK, orjson.dumps(
                    {"u": 1000 + i, "s": "XYZUSDT", "b": "0.99000000", "B": "1.00000000", "a": "1.01000000",
                     "A": "2.00000000"}))


async def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the endpoint, by sample name, parsed by prometheus-client."""
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    found = [v for got, v in samples.get(name, []) if all(got.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


@pytest.fixture
async def replaying(tmp_path: Path) -> AsyncIterator[Simulator]:
    _record(tmp_path / "r.zst")
    async with Simulator(replay=Replay(tmp_path / "r.zst", speed=0), flow_rate=0.0) as sim:
        yield sim


async def test_tail_metrics_port_scraped_and_parsed(replaying: Simulator) -> None:
    # Arrange
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        *_CMD, TRADE, BOOK, "--endpoint", replaying.stream_url, "--json", "--metrics-port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        # Act: read every message the replay holds
        lines: dict[str, int] = {TRADE: 0, BOOK: 0}
        async with asyncio.timeout(DEADLINE_S):
            while sum(lines.values()) < TRADES + BOOKS:
                lines[orjson.loads(await proc.stdout.readline())["stream"]] += 1
            gap_line = orjson.loads(await proc.stderr.readline())
        samples = await _scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()

    # Assert: every figure is the command's own view of what it printed
    assert lines == {TRADE: TRADES, BOOK: BOOKS}
    assert _value(samples, "binance_ws_messages_total", stream=TRADE) == TRADES
    assert _value(samples, "binance_ws_messages_total", stream=BOOK) == BOOKS
    # One gap, reported on stderr and counted; none on the book tickers (no ids checked there).
    assert gap_line["type"] == "gap" and (gap_line["first"], gap_line["last"]) == (MISSING_ID, MISSING_ID)
    assert _value(samples, "binance_ws_gaps_total", stream=TRADE) == 1
    assert _value(samples, "binance_ws_gaps_total", stream=BOOK) == 0
    # Lag: observed on the 1st, 9th, 17th... trade (they carry E), never on a book ticker (it has none);
    # the test's own seconds, within the 10 s bucket.
    sampled = len(range(0, TRADES, LAG_SAMPLE_EVERY))
    assert _value(samples, "binance_ws_lag_seconds_count", stream=TRADE) == sampled
    assert _value(samples, "binance_ws_lag_seconds_bucket", stream=TRADE, le="+Inf") == sampled
    assert _value(samples, "binance_ws_lag_seconds_bucket", stream=TRADE, le="10.0") == sampled
    assert not [labels for name, vs in samples.items() if name.startswith("binance_ws_lag")
                for labels, _ in vs if labels.get("stream") == BOOK]
    assert 0 <= _value(samples, "binance_ws_lag_seconds_sum", stream=TRADE) / sampled < DEADLINE_S
    # One connection, up, carrying both streams, opened once; the attempt counted in the 5-minute window.
    assert _value(samples, "binance_ws_connection_up") == 1
    assert _value(samples, "binance_ws_connection_streams") == 2
    assert _value(samples, "binance_ws_connects_total") == 1
    assert _value(samples, "binance_ws_reconnects_total") == 0
    host = replaying.stream_url.split("://")[1]
    assert _value(samples, "binance_ws_connection_attempts_window", host=host) == 1
    assert _value(samples, "binance_ws_connection_attempts_limit", host=host) == 300
    # tail's one subscription: "block" (nothing dropped), everything handed over, nothing waiting.
    assert _value(samples, "binance_ws_dropped_total") == 0
    assert _value(samples, "binance_ws_queue_depth") == 0
    # delivered counts the gap event too: it travels the same queue.
    assert _value(samples, "binance_ws_delivered_total") == TRADES + BOOKS + 1


def test_tail_metrics_port_in_use_is_one_line() -> None:
    import subprocess

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([*_CMD, "btcusdt@trade", "--sim", "--count", "1", "--metrics-port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: --metrics-port {port}: cannot listen on 127.0.0.1:{port}")
    assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""


async def test_record_metrics_port_counts_what_the_files_took(replaying: Simulator, tmp_path: Path) -> None:
    # Arrange: record the replay's book tickers (no REST snapshot needed) with metrics on
    from binance_ws.recording import read_recording

    port, out = _free_port(), tmp_path / "out"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "binance_ws.cli", "record", BOOK, "--endpoint", replaying.stream_url,
        "--out", str(out), "--quiet", "--metrics-port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        # Act: wait until the file sink has reported every book ticker (it reports once a tick)
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        async with asyncio.timeout(DEADLINE_S):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    samples = await _scrape(f"http://127.0.0.1:{port}/metrics")
                    if [v for labels, v in samples.get("binance_ws_sink_entries_total", [])
                            if labels.get("sink") == "file" and v >= BOOKS]:
                        break
                await asyncio.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()

    # Assert: the counts are what the files hold
    files = sorted(out.iterdir())
    held = sum(1 for f in files for r in read_recording(f) if r.stream == BOOK)
    assert held == BOOKS
    assert _value(samples, "binance_ws_sink_entries_total", sink="file") == BOOKS
    assert _value(samples, "binance_ws_files_total") == len(files)
    assert _value(samples, "binance_ws_messages_total", stream=BOOK) == BOOKS
