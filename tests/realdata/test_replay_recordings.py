"""Real recordings (../shared/data/recordings): every file reads completely and byte for byte, with the
README's counts."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path

import orjson
import pytest

from binance_ws.recording import (
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

# The recordings live beside the checkout, in ../shared/data/recordings (read-only ground truth).
RECORDINGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "recordings"
pytestmark = pytest.mark.skipif(not RECORDINGS.is_dir(), reason="real recordings not available")

SPOT_BTC = "spot_btcusdt_20240808.hftbacktest.gz"

# (file, lines in the file, stream messages, snapshot symbols) as the recordings README states them;
HFTBACKTEST = [
    (SPOT_BTC, 41_249, {"btcusdt@depth@100ms": 3_451, "btcusdt@bookTicker": 28_040, "btcusdt@trade": 9_757},
     "BTCUSDT", 50093239218),
    ("spot_ethusdt_20240808.hftbacktest.gz", 33_618, None, "ETHUSDT", 35346513512),
    ("usdm_btcusdt_20240808.hftbacktest.gz", 93_954, None, "BTCUSDT", 5123107852948),
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


@pytest.mark.parametrize(("name", "lines", "per_stream", "symbol", "last_update_id"), HFTBACKTEST)
def test_hftbacktest_reads_every_line_byte_for_byte(name: str, lines: int, per_stream: dict[str, int] | None,
                                                    symbol: str, last_update_id: int) -> None:
    # Arrange: the file split by hand, independently of the reader
    path = RECORDINGS / name
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
