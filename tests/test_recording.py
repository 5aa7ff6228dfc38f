"""The project's recording format: round trips through every compression, header, and refusals."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_ws.recording import (
    FORMAT_CRYPTOFEED_HTTP,
    FORMAT_CRYPTOFEED_WS,
    FORMAT_HFTBACKTEST,
    FORMAT_OWN,
    FORMAT_VERSION,
    KIND_SNAPSHOT,
    KIND_STREAM,
    MAGIC,
    Record,
    RecordingError,
    RecordingWriter,
    detect_format,
    read_header,
    read_recording,
    split_combined,
    stream_symbol,
)

SUFFIXES = ["rec.gz", "rec.zst", "rec"]

TRADE = b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000"}'
BOOK = b'{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1"}'
SNAP = b'{"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"]],"asks":[]}'


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_keeps_every_byte_and_the_order(tmp_path: Path, suffix: str) -> None:
    # Arrange
    path = tmp_path / f"btc.{suffix}"
    written = [
        Record(1_000, "btcusdt@trade", TRADE, KIND_STREAM),
        Record(1_001, None, SNAP, KIND_SNAPSHOT, "BTCUSDT"),
        Record(1_002, "btcusdt@bookTicker", BOOK, KIND_STREAM),
        Record(1_002, "btcusdt@kline_1m@+08:00", b"{}", KIND_STREAM),
    ]
    # Act
    with RecordingWriter(path, market="spot", url="wss://stream.binance.com:9443/stream?streams=a/b") as w:
        w.write_all(written)
    # Assert
    assert w.count == 4
    assert detect_format(path) == FORMAT_OWN
    assert list(read_recording(path)) == written


@pytest.mark.parametrize(("suffix", "magic"),
                         [("gz", b"\x1f\x8b"), ("zst", b"\x28\xb5\x2f\xfd"), ("txt", MAGIC)])
def test_compression_follows_the_suffix(tmp_path: Path, suffix: str, magic: bytes) -> None:
    path = tmp_path / f"r.{suffix}"
    with RecordingWriter(path) as w:
        w.write(1, "btcusdt@trade", TRADE)
    assert path.read_bytes().startswith(magic)


def test_reader_goes_by_content_not_by_name(tmp_path: Path) -> None:
    zst = tmp_path / "r.zst"
    with RecordingWriter(zst) as w:
        w.write(7, "btcusdt@trade", TRADE)
    renamed = zst.rename(tmp_path / "r.dat")
    assert list(read_recording(renamed)) == [Record(7, "btcusdt@trade", TRADE, KIND_STREAM)]


def test_plain_file_is_greppable_text(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    with RecordingWriter(path, market="spot") as w:
        w.write(1723161254087896568, "btcusdt@trade", TRADE)
        w.write_snapshot(1723161254206652067, "btcusdt", SNAP)
    lines = path.read_bytes().splitlines()
    assert lines[0] == MAGIC + b' %d {"market":"spot"}' % FORMAT_VERSION
    assert lines[1] == b"1723161254087896568 btcusdt@trade " + TRADE
    assert lines[2] == b"1723161254206652067 snapshot:BTCUSDT " + SNAP


def test_header_carries_market_url_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    url = "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/btcusdt@depth@100ms"
    with RecordingWriter(path, market="spot", url=url, recorder="test", started_ns=5):
        pass
    header = read_header(path)
    assert (header.format, header.version) == (FORMAT_OWN, FORMAT_VERSION)
    assert (header.market, header.url) == ("spot", url)
    assert header.meta == {"recorder": "test", "started_ns": 5}
    assert header.url_streams() == ["btcusdt@trade", "btcusdt@depth@100ms"]
    assert list(read_recording(path)) == []


def test_secrets_in_the_url_are_not_written(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    key = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
    with RecordingWriter(path, url=f"wss://fstream.binance.com/private/ws?listenKey={key}&events=A") as w:
        assert key not in repr(w)
    text = path.read_text()
    assert key not in text
    assert read_header(path).url == "wss://fstream.binance.com/private/ws?listenKey=***&events=A"


def test_raw_ws_url_lists_its_streams(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    with RecordingWriter(path, url="ws://127.0.0.1:9443/ws/btcusdt@trade/ethusdt@trade"):
        pass
    assert read_header(path).url_streams() == ["btcusdt@trade", "ethusdt@trade"]


@pytest.mark.parametrize(
    ("stream", "payload"),
    [("btc usdt@trade", TRADE), ("", TRADE), ("snapshot:BTCUSDT", TRADE), ("btcusdt@trade", b'{"a":\n1}'),
     ("btcusdt@trade", b"{}\r")],
)
def test_writer_refuses_what_would_not_read_back(tmp_path: Path, stream: str, payload: bytes) -> None:
    with RecordingWriter(tmp_path / "r.txt") as w, pytest.raises(ValueError):
        w.write(1, stream, payload)
    assert w.count == 0


def test_writer_refuses_writes_after_close(tmp_path: Path) -> None:
    w = RecordingWriter(tmp_path / "r.txt")
    w.close()
    w.close()  # idempotent
    with pytest.raises(RecordingError, match="closed"):
        w.write(1, "btcusdt@trade", TRADE)


def test_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_bytes(MAGIC + b" %d {}\n1 btcusdt@trade {}\n" % (FORMAT_VERSION + 1))
    with pytest.raises(RecordingError, match="newer"):
        list(read_recording(path))


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"1 btcusdt@trade\n", "expected"), (b"x btcusdt@trade {}\n", "integer")],
)
def test_malformed_line_is_named(tmp_path: Path, body: bytes, why: str) -> None:
    path = tmp_path / "r.txt"
    path.write_bytes(MAGIC + b" 1 {}\n" + body)
    with pytest.raises(RecordingError, match=rf"r\.txt:2: .*{why}"):
        list(read_recording(path))


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(RecordingError, match="not a recording"):
        read_recording(path)


def test_hftbacktest_line_that_is_neither_message_nor_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b'1 {"stream":"btcusdt@trade","data":{}}\n2 {"result":null,"id":1}\n')
    assert detect_format(path) == FORMAT_HFTBACKTEST
    with pytest.raises(RecordingError, match=r"x\.gz:2"):
        list(read_recording(path))


def test_hftbacktest_snapshot_before_any_stream_takes_the_file_symbol(tmp_path: Path) -> None:
    path = tmp_path / "eth.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"5 " + SNAP + b'\n6 {"stream":"ethusdt@trade","data":{"e":"trade"}}\n')
    assert list(read_recording(path)) == [
        Record(5, None, SNAP, KIND_SNAPSHOT, "ETHUSDT"),
        Record(6, "ethusdt@trade", b'{"e":"trade"}', KIND_STREAM),
    ]


def test_cryptofeed_pair_merges_snapshots_by_time_and_skips_other_rest(tmp_path: Path) -> None:
    ws = tmp_path / "BINANCE.ws.3.0"
    ws.write_bytes(
        b"wss://stream.binance.com:9443/stream?streams=btcusdt@trade <-> 1633998511.159679\n"
        b'1633998512.0633569: {"stream":"btcusdt@trade","data":{"t":1}}\n'
        b'1633998513.5: {"stream":"btcusdt@trade","data":{"t":2}}\n\n'
    )
    (tmp_path / "BINANCE.http.3.0").write_bytes(
        b"https://api.binance.com/api/v3/exchangeInfo -> 1633998511.2: {}\n"
        b"https://api.binance.com/api/v3/depth?symbol=btcusdt&limit=1000 -> 1633998513: " + SNAP + b"\n\n"
    )
    (tmp_path / "OTHER.http.3.0").write_bytes(b"https://api.binance.com/api/v3/depth?symbol=X -> 1: {}\n")
    assert detect_format(ws) == FORMAT_CRYPTOFEED_WS
    assert detect_format(tmp_path / "BINANCE.http.3.0") == FORMAT_CRYPTOFEED_HTTP
    assert list(read_recording(ws)) == [
        Record(1633998512063356900, "btcusdt@trade", b'{"t":1}', KIND_STREAM),
        Record(1633998513000000000, None, SNAP, KIND_SNAPSHOT, "BTCUSDT"),
        Record(1633998513500000000, "btcusdt@trade", b'{"t":2}', KIND_STREAM),
    ]


def test_split_combined_slices_without_decoding() -> None:
    frame = b'{"stream":"btcusdt@trade","data":' + TRADE + b"}"
    assert split_combined(frame) == ("btcusdt@trade", TRADE)
    assert split_combined(TRADE) is None
    assert split_combined(b'{"stream":"x"}') is None


@pytest.mark.parametrize(("stream", "symbol"), [("btcusdt@trade", "BTCUSDT"), ("!miniTicker@arr", None),
                                               ("btcusdt@kline_1m@+08:00", "BTCUSDT"), ("bogus", None)])
def test_stream_symbol(stream: str, symbol: str | None) -> None:
    assert stream_symbol(stream) == symbol


_names = st.from_regex(r"[a-z0-9!]{1,12}@[a-zA-Z0-9_@+:]{1,16}", fullmatch=True)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.tuples(st.integers(0, 2**63 - 1), _names, _json), max_size=20),
       suffix=st.sampled_from(SUFFIXES))
def test_any_compact_json_round_trips(tmp_path: Path, records: list[tuple[int, str, object]],
                                      suffix: str) -> None:
    path = tmp_path / f"h.{suffix}"
    expected = [Record(ns, name, orjson.dumps(doc), KIND_STREAM) for ns, name, doc in records]
    with RecordingWriter(path) as w:
        w.write_all(expected)
    assert list(read_recording(path)) == expected
