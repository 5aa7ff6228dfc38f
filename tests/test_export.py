"""``binance-ws export FILE --parquet DIR``: one table per event type, typed, ns timestamps, partitioned
by symbol and day; without pyarrow, one line naming the extra."""

from __future__ import annotations

import calendar
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from binance_ws.recording import RecordingWriter

pa = pytest.importorskip("pyarrow")
ds = pytest.importorskip("pyarrow.dataset")

S = 1_000_000_000
MIDNIGHT = calendar.timegm((2026, 12, 5, 0, 0, 0)) * S
E_MS = MIDNIGHT // 1_000_000


def _trade(symbol: str, t: int) -> bytes:
    return orjson.dumps({"e": "trade", "E": E_MS + t, "s": symbol, "t": t, "p": "61837.63000000",
                         "q": "0.02000000", "T": E_MS + t, "m": t % 2 == 0, "M": True})


def _recording(path: Path) -> None:
    with RecordingWriter(path, market="spot") as w:
        w.write(MIDNIGHT - S, "btcusdt@trade", _trade("BTCUSDT", 1))
        w.write_snapshot(MIDNIGHT - S, "BTCUSDT", b'{"lastUpdateId":9,"bids":[["1.5","2"]],"asks":[]}')
        w.write(MIDNIGHT + S, "btcusdt@trade", _trade("BTCUSDT", 2))
        w.write(MIDNIGHT + S, "ethusdt@trade", _trade("ETHUSDT", 7))
        w.write(MIDNIGHT + 2 * S, "btcusdt@depth@100ms", orjson.dumps(
            {"e": "depthUpdate", "E": E_MS, "s": "BTCUSDT", "U": 10, "u": 12, "b": [["1.6", "3"]],
             "a": [["1.7", "0"]]}))
        w.write(MIDNIGHT + 2 * S, "btcusdt@bookTicker",
                b'{"u":12,"s":"BTCUSDT","b":"1.6","B":"3","a":"1.8","A":"1"}')
        w.write(MIDNIGHT + 3 * S, "btcusdt@miniTicker", orjson.dumps(
            {"e": "24hrMiniTicker", "E": E_MS, "s": "BTCUSDT", "c": "1.6", "o": "1.5", "h": "1.7",
             "l": "1.4", "v": "100", "q": "160"}))
        w.write_marker(MIDNIGHT + 4 * S, "gap", {"type": "gap", "stream": "btcusdt@depth@100ms"})


def _cli(*args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    prefix = [sys.executable, "-c", code + "from binance_ws.cli import main; main()"] if code else \
        [sys.executable, "-m", "binance_ws.cli"]
    return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60)


def test_export_writes_typed_tables_partitioned_by_symbol_and_day(tmp_path: Path) -> None:
    # Arrange
    source = tmp_path / "spot_mixed_20261205.rec.zst"
    _recording(source)
    out = tmp_path / "pq"
    # Act
    proc = _cli("export", str(source), "--parquet", str(out))
    # Assert
    assert proc.returncode == 0, proc.stderr
    counts = dict(line.split("\t") for line in proc.stdout.strip().splitlines())
    assert counts == {"24hrMiniTicker": "1", "bookTicker": "1", "depthUpdate": "1", "marker": "1",
                      "snapshot": "1", "trade": "3"}
    assert sorted(p.relative_to(out).as_posix() for p in (out / "trade").rglob("*.parquet")) == [
        "trade/symbol=BTCUSDT/date=2026-12-04/spot_mixed_20261205.parquet",
        "trade/symbol=BTCUSDT/date=2026-12-05/spot_mixed_20261205.parquet",
        "trade/symbol=ETHUSDT/date=2026-12-05/spot_mixed_20261205.parquet",
    ]
    trades = ds.dataset(out / "trade", partitioning="hive").to_table().sort_by("trade_id")
    assert trades.schema.field("recv_ns").type == pa.timestamp("ns", tz="UTC")
    assert trades.schema.field("event_time").type == pa.timestamp("ns", tz="UTC")
    assert trades.schema.field("price").type == pa.float64()
    assert trades.column("trade_id").to_pylist() == [1, 2, 7]
    assert trades.column("symbol").to_pylist() == ["BTCUSDT", "BTCUSDT", "ETHUSDT"]
    assert trades.column("recv_ns").cast(pa.int64()).to_pylist() == [MIDNIGHT - S, MIDNIGHT + S, MIDNIGHT + S]
    assert trades.column("event_time").cast(pa.int64()).to_pylist()[0] == (E_MS + 1) * 1_000_000
    assert trades.column("buyer_is_maker").to_pylist() == [False, True, False]
    depth = ds.dataset(out / "depthUpdate", partitioning="hive").to_table()
    assert depth.column("bids").to_pylist() == [[{"price": 1.6, "qty": 3.0}]]
    assert depth.column("final_update_id").to_pylist() == [12]
    snap = ds.dataset(out / "snapshot", partitioning="hive").to_table()
    assert snap.column("last_update_id").to_pylist() == [9]
    book = ds.dataset(out / "bookTicker", partitioning="hive").to_table()
    assert book.column("ask_price").to_pylist() == [1.8]
    mini = ds.dataset(out / "24hrMiniTicker", partitioning="hive").to_table()
    assert mini.schema.field("c").type == pa.float64() and mini.column("c").to_pylist() == [1.6]
    assert mini.schema.field("E").type == pa.timestamp("ns", tz="UTC")
    marker = ds.dataset(out / "marker", partitioning="hive").to_table()
    assert marker.column("kind").to_pylist() == ["gap"] and marker.column("symbol").to_pylist() == ["BTCUSDT"]


def test_export_without_pyarrow_names_the_extra(tmp_path: Path) -> None:
    source = tmp_path / "r.rec"
    _recording(source)
    block = "import sys; sys.modules['pyarrow'] = None; "
    proc = _cli("export", str(source), "--parquet", str(tmp_path / "pq"), code=block)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: Parquet export needs pyarrow: pip install 'binance-ws[parquet]'"]
    assert not (tmp_path / "pq").exists()


def test_export_refuses_missing_and_unreadable_files_in_one_line(tmp_path: Path) -> None:
    proc = _cli("export", str(tmp_path / "nope"), "--parquet", str(tmp_path / "pq"))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no such file"]
    (tmp_path / "junk").write_text("hello\n")
    proc = _cli("export", str(tmp_path / "junk"), "--parquet", str(tmp_path / "pq"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "not a recording" in proc.stderr
