"""Real recordings (tests/data; the complete captures in ../shared/data/recordings when present): every
file reads completely and byte for byte, with its README's counts, and the spot BTCUSDT capture replays
through the simulator to a real client unchanged."""

from __future__ import annotations

import asyncio
import gzip
import re
import time
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
import pytest
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from binance_ws.recording import (
    FORMAT_CRYPTOFEED_HTTP,
    FORMAT_CRYPTOFEED_WS,
    FORMAT_HFTBACKTEST,
    KIND_SNAPSHOT,
    KIND_STREAM,
    Record,
    RecordingWriter,
    detect_format,
    read_header,
    read_recording,
)
from binance_ws.sim import Simulator
from binance_ws.sim.replay import Replay

# The in-repository copies (tests/data/README.md); the complete captures are optional (tests/paths.py).
from tests.paths import RECORDINGS, complete_recording

SPOT_BTC = "spot_btcusdt_20240808.hftbacktest.gz"
SPOT_ETH = "spot_ethusdt_20240808.hftbacktest.gz"
USDM_BTC = "usdm_btcusdt_20240808.hftbacktest.gz"

# (file, complete?, lines in the file, stream messages, snapshot symbol and id): the complete captures as
# ../shared/data/recordings/README.md states them, the in-repository starts as tests/data/README.md does.
HFTBACKTEST = [
    (SPOT_BTC, True, 41_249,
     {"btcusdt@depth@100ms": 3_451, "btcusdt@bookTicker": 28_040, "btcusdt@trade": 9_757},
     "BTCUSDT", 50093239218),
    (SPOT_ETH, True, 33_618, None, "ETHUSDT", 35346513512),
    (USDM_BTC, True, 93_954, None, "BTCUSDT", 5123107852948),
    (SPOT_BTC, False, 38_000,
     {"btcusdt@depth@100ms": 3_092, "btcusdt@bookTicker": 25_694, "btcusdt@trade": 9_213},
     "BTCUSDT", 50093239218),
    (SPOT_ETH, False, 12_000,
     {"ethusdt@depth@100ms": 1_142, "ethusdt@bookTicker": 8_937, "ethusdt@trade": 1_920},
     "ETHUSDT", 35346513512),
    (USDM_BTC, False, 12_000,
     {"btcusdt@depth@0ms": 901, "btcusdt@bookTicker": 9_178, "btcusdt@trade": 1_920},
     "BTCUSDT", 5123107852948),
]
CRYPTOFEED = [
    # lines, of which: the connect URL, the messages, and (spot) one trailing blank line
    ("cryptofeed_BINANCE.ws.1.0", 267, 265, ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"], "spot"),
    ("cryptofeed_BINANCE_FUTURES.ws.1.0", 1_536, 1_535, ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"],
     "usdm"),
]
_COMBINED = re.compile(rb'^\{"stream":"([^"]+)","data":(.*)\}$', re.S)


def _raw_lines(path: Path) -> list[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return fh.read().split(b"\n")


@pytest.mark.parametrize(("name", "complete", "lines", "per_stream", "symbol", "last_update_id"), HFTBACKTEST,
                         ids=[f"{h[0]}-{'complete' if h[1] else 'tests_data'}" for h in HFTBACKTEST])
def test_hftbacktest_reads_every_line_byte_for_byte(name: str, complete: bool, lines: int,
                                                    per_stream: dict[str, int] | None, symbol: str,
                                                    last_update_id: int) -> None:
    # Arrange: the file split by hand, independently of the reader
    path = complete_recording(name) if complete else RECORDINGS / name
    raw = [line for line in _raw_lines(path) if line]
    # Act
    records = list(read_recording(path))
    # Assert
    assert detect_format(path) == FORMAT_HFTBACKTEST
    assert len(raw) == lines
    assert len(records) == lines
    snapshots = [r for r in records if r.kind == KIND_SNAPSHOT]
    assert [(r.symbol, orjson.loads(r.payload)["lastUpdateId"]) for r in snapshots] == [
        (symbol, last_update_id)
    ]
    for line, rec in zip(raw, records, strict=True):
        ns, _, body = line.partition(b" ")
        assert rec.recv_ns == int(ns)
        match = _COMBINED.match(body)
        if match is None:
            assert (rec.kind, rec.payload) == (KIND_SNAPSHOT, body)
        else:
            assert (rec.kind, rec.payload) == (KIND_STREAM, match.group(2))
            assert rec.stream == match.group(1).decode()
    if per_stream is not None:
        assert Counter(r.stream for r in records if r.kind == KIND_STREAM) == per_stream


def test_spot_btcusdt_snapshot_is_line_8() -> None:
    records = list(read_recording(RECORDINGS / SPOT_BTC))
    assert [i + 1 for i, r in enumerate(records) if r.kind == KIND_SNAPSHOT] == [8]


@pytest.mark.parametrize(("name", "lines", "count", "symbols", "market"), CRYPTOFEED)
def test_cryptofeed_reads_messages_and_the_matching_snapshots(name: str, lines: int, count: int,
                                                              symbols: list[str], market: str) -> None:
    path = RECORDINGS / name
    raw = _raw_lines(path)
    messages = [line for line in raw[1:] if line]
    records = list(read_recording(path))
    header = read_header(path)

    assert detect_format(path) == FORMAT_CRYPTOFEED_WS
    assert len(raw) - 1 == lines  # the file ends with a newline
    assert len(messages) == count
    assert (header.market, header.url) == (market, raw[0].split(b" <-> ")[0].decode())
    streams = [r for r in records if r.kind == KIND_STREAM and r.stream is not None]
    assert [b'{"stream":"%s","data":%s}' % (r.stream.encode(), r.payload) for r in streams] == [
        m.partition(b": ")[2] for m in messages
    ]
    assert [r.recv_ns for r in records] == sorted(r.recv_ns for r in records)
    snapshots = {r.symbol: orjson.loads(r.payload) for r in records if r.kind == KIND_SNAPSHOT}
    assert sorted(snapshots) == sorted(symbols)
    assert all(s["lastUpdateId"] > 0 and s["bids"] and s["asks"] for s in snapshots.values())
    assert {s.split("@")[0].upper() for s in header.url_streams()} == set(symbols)


@pytest.mark.parametrize(("name", "lines", "count", "symbols", "market"), CRYPTOFEED)
def test_cryptofeed_http_file_alone_reads_as_snapshots(name: str, lines: int, count: int,
                                                       symbols: list[str], market: str) -> None:
    path = RECORDINGS / name.replace(".ws.1.0", ".http.0.0")
    records = list(read_recording(path))
    assert detect_format(path) == FORMAT_CRYPTOFEED_HTTP
    assert read_header(path).market == market
    assert [r.kind for r in records] == [KIND_SNAPSHOT] * 4
    assert [r.symbol for r in records] == symbols
    raw = [line for line in _raw_lines(path) if line]
    assert [r.payload for r in records] == [line.split(b": ", 1)[1] for line in raw]


@pytest.mark.parametrize("suffix", ["zst", "gz"])
def test_real_capture_survives_conversion_to_the_project_format(tmp_path: Path, suffix: str) -> None:
    source = RECORDINGS / "cryptofeed_BINANCE_FUTURES.ws.1.0"
    records = list(read_recording(source))
    out = tmp_path / f"futures.rec.{suffix}"
    with RecordingWriter(out, market=read_header(source).market, url=read_header(source).url) as w:
        w.write_all(records)
    back: list[Record] = list(read_recording(out))
    assert back == records
    assert read_header(out).url_streams() == read_header(source).url_streams()


class _Collector(WSListener):
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.frames.append(frame.get_payload_as_bytes())


async def test_spot_btcusdt_replays_byte_for_byte_through_the_simulator() -> None:
    # Arrange: what Binance sent, straight from the file
    path = RECORDINGS / SPOT_BTC
    bodies = [line.partition(b" ")[2] for line in _raw_lines(path) if line]
    expected = [b for b in bodies if b.startswith(b'{"stream":')]
    recorded_snapshot = orjson.loads(next(b for b in bodies if not b.startswith(b'{"stream":')))
    replay = Replay(path, speed=0)
    assert replay.streams == {"btcusdt@depth@100ms", "btcusdt@bookTicker", "btcusdt@trade"}
    # The synthetic flow keeps running for the other symbols; the replayed one is left to the recording.
    async with Simulator(replay=replay, flow_rate=200.0) as sim:
        assert "BTCUSDT" not in sim.exchange.symbols and "ETHUSDT" in sim.exchange.symbols
        async with aiohttp.ClientSession() as http, \
                http.get(f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=5000") as resp:
            assert resp.status == 200
            served = await resp.json()
        # Act
        url = f"{sim.stream_url}/stream?streams=" + "/".join(sorted(replay.streams))
        transport, client = await ws_connect(_Collector, url)
        assert isinstance(client, _Collector)
        deadline = time.monotonic() + 60
        while len(client.frames) < len(expected) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        transport.disconnect()
    # Assert
    assert len(client.frames) == len(expected) == 37_999  # tests/data holds the first 38,000 lines
    assert client.frames == expected
    assert replay.done.is_set() and replay.sent == 37_999
    assert served == recorded_snapshot


async def test_cryptofeed_capture_of_unlisted_symbols_replays_with_its_snapshots() -> None:
    # Four symbols the engine does not list: their streams validate because the recording has them.
    path = RECORDINGS / "cryptofeed_BINANCE.ws.1.0"
    records = list(read_recording(path))
    expected = [b'{"stream":"%s","data":%s}' % (r.stream.encode(), r.payload)
                for r in records if r.kind == KIND_STREAM and r.stream is not None]
    snapshots = {r.symbol: orjson.loads(r.payload) for r in records if r.kind == KIND_SNAPSHOT}
    replay = Replay(path, speed=0)
    async with Simulator(replay=replay) as sim:
        assert not set(replay.symbols) & set(sim.exchange.symbols)
        # Every stream of the connect URL, including runeeur@bookTicker which carried no message.
        url = f"{sim.stream_url}/stream?streams=" + "/".join(read_header(path).url_streams())
        transport, client = await ws_connect(_Collector, url)
        assert isinstance(client, _Collector)
        await asyncio.wait_for(replay.done.wait(), 30)
        deadline = time.monotonic() + 30
        while len(client.frames) < len(expected) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        transport.disconnect()
        async with aiohttp.ClientSession() as http:
            served = {}
            for symbol in snapshots:
                async with http.get(f"{sim.rest_url}/api/v3/depth?symbol={symbol}&limit=1000") as resp:
                    assert resp.status == 200
                    served[symbol] = await resp.json()
    assert client.frames == expected
    assert served == snapshots


async def test_faults_apply_to_a_replay_without_changing_the_other_bytes(tmp_path: Path) -> None:
    # Arrange: the first 3000 messages of the spot capture, in the project's format
    head = [r for r in read_recording(RECORDINGS / SPOT_BTC) if r.kind == KIND_STREAM][:3000]
    path = tmp_path / "head.rec.zst"
    with RecordingWriter(path, market="spot") as w:
        w.write_all(head)
    depth = [r.payload for r in head if r.stream == "btcusdt@depth@100ms"]
    replay = Replay(path, speed=0)
    async with Simulator(replay=replay) as sim:
        # Act: the next diff-depth event goes out twice (a fault filter decodes and re-encodes it)
        sim.faults.duplicate(1)
        transport, client = await ws_connect(_Collector, f"{sim.stream_url}/ws/btcusdt@depth@100ms")
        assert isinstance(client, _Collector)
        await asyncio.wait_for(replay.done.wait(), 30)
        deadline = time.monotonic() + 30
        while len(client.frames) < len(depth) + 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        transport.disconnect()
    # Assert
    assert client.frames == [depth[0], *depth]
