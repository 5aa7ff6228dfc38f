"""Parquet export of a recording: one table per event type, typed columns, ns timestamps, partitioned by
symbol and UTC day. Needs the ``parquet`` extra (pyarrow): ``pip install 'binance-ws[parquet]'``.

``export_parquet(path, out_dir)`` writes
``<out_dir>/<table>/symbol=<SYMBOL>/date=<YYYY-MM-DD>/<name>.parquet`` (Hive partitioning:
``pyarrow.dataset.dataset(out_dir / "trade", partitioning="hive")`` reads it back with
``symbol`` and ``date`` as columns), ``<name>`` being the recording's file name, so exporting several
recordings into one folder adds files and exporting one again replaces its own.

Tables: ``trade``, ``aggTrade``, ``depthUpdate``, ``bookTicker``, ``kline``, ``snapshot`` (REST depth
snapshots), ``marker`` (gaps, reconnects), and one per other event type (``24hrTicker``...) with columns
inferred from the payloads. Every row has ``recv_ns`` (local receive time) and ``stream``; Binance's
millisecond times (``E``, ``T``, kline ``t``/``T``) become ``timestamp[ns, UTC]`` columns; prices and
quantities (decimal strings) become ``float64``; book levels ``list<struct<price, qty>>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson

from binance_ws.recording import KIND_MARKER, KIND_SNAPSHOT, read_recording, stream_symbol

#: Rows a table holds in memory before they go to its files as one row group.
CHUNK_ROWS: Final = 100_000
NS_PER_MS: Final = 1_000_000

# (column, Binance key, type) of the tables whose fields are known; types: "ms" (Binance time in ms ->
# timestamp ns), "int", "float" (decimal string), "bool", "str", "levels" ([[price, qty], ...]).
_Spec = tuple[tuple[str, str, str], ...]
_SPECS: Final[dict[str, _Spec]] = {
    "trade": (("event_time", "E", "ms"), ("trade_time", "T", "ms"), ("trade_id", "t", "int"),
              ("price", "p", "float"), ("qty", "q", "float"), ("buyer_is_maker", "m", "bool")),
    "aggTrade": (("event_time", "E", "ms"), ("trade_time", "T", "ms"), ("agg_id", "a", "int"),
                 ("first_trade_id", "f", "int"), ("last_trade_id", "l", "int"), ("price", "p", "float"),
                 ("qty", "q", "float"), ("buyer_is_maker", "m", "bool")),
    "depthUpdate": (("event_time", "E", "ms"), ("transaction_time", "T", "ms"),
                    ("first_update_id", "U", "int"), ("final_update_id", "u", "int"),
                    ("prev_final_update_id", "pu", "int"),
                    ("bids", "b", "levels"), ("asks", "a", "levels")),
    "bookTicker": (("event_time", "E", "ms"), ("transaction_time", "T", "ms"), ("update_id", "u", "int"),
                   ("bid_price", "b", "float"), ("bid_qty", "B", "float"), ("ask_price", "a", "float"),
                   ("ask_qty", "A", "float")),
    "kline": (("event_time", "E", "ms"), ("open_time", "t", "ms"), ("close_time", "T", "ms"),
              ("interval", "i", "str"), ("first_trade_id", "f", "int"), ("last_trade_id", "L", "int"),
              ("open", "o", "float"), ("high", "h", "float"), ("low", "l", "float"), ("close", "c", "float"),
              ("volume", "v", "float"), ("trades", "n", "int"), ("closed", "x", "bool"),
              ("quote_volume", "q", "float"), ("taker_buy_volume", "V", "float"),
              ("taker_buy_quote_volume", "Q", "float")),
    "snapshot": (("last_update_id", "lastUpdateId", "int"), ("event_time", "E", "ms"),
                 ("transaction_time", "T", "ms"), ("bids", "bids", "levels"), ("asks", "asks", "levels")),
    "marker": (("kind", "", "str"), ("detail", "", "str")),
}
#: Keys of Binance times in ms in the payloads of other event types.
_MS_KEYS: Final = frozenset({"E", "T", "O", "C"})


class ExportError(Exception):
    """The export could not run: pyarrow missing, or a recording that cannot be read."""


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ExportError("Parquet export needs pyarrow: pip install 'binance-ws[parquet]'") from None
    return pyarrow


def table_of(stream: str | None, doc: Any) -> str:
    """The table a payload goes to: its event type ``e``, ``bookTicker`` for the spot bookTicker (which
    has none), ``depth`` for a partial book, else the stream's kind after ``@``."""
    if isinstance(doc, dict):
        kind = doc.get("e")
        if isinstance(kind, str) and kind:
            return kind
        if "lastUpdateId" in doc:
            return "depth"
        if "u" in doc and "b" in doc and "a" in doc:
            return "bookTicker"
    if stream:
        return stream.partition("@")[2].partition("@")[0] or "other"
    return "other"


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _levels(value: Any) -> list[dict[str, float | None]] | None:
    if not isinstance(value, list):
        return None
    return [{"price": _float(level[0]), "qty": _float(level[1])} for level in value
            if isinstance(level, list) and len(level) >= 2]


def _convert(kind: str, value: Any) -> Any:
    if kind == "ms":
        ms = _int(value)
        return None if ms is None else ms * NS_PER_MS
    if kind == "int":
        return _int(value)
    if kind == "float":
        return _float(value)
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if kind == "levels":
        return _levels(value)
    return None if value is None else str(value)


def _arrow_type(pa: Any, kind: str) -> Any:
    return {
        "ms": pa.timestamp("ns", tz="UTC"), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
        "str": pa.string(),
        "levels": pa.list_(pa.struct([("price", pa.float64()), ("qty", pa.float64())])),
    }[kind]


def _infer(key: str, value: Any) -> str:
    if key in _MS_KEYS and _int(value) is not None:
        return "ms"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str) and _float(value) is not None and key not in ("s", "i", "e"):
        return "float"
    return "str"


class _Table:
    """Rows of one table, buffered, and a Parquet writer per (symbol, day) partition."""

    def __init__(self, pa: Any, name: str, spec: _Spec | None, out_dir: Path, file_name: str) -> None:
        self.pa = pa
        self.name = name
        self.spec = spec
        self.out_dir = out_dir
        self.file_name = file_name
        self.rows: list[tuple[str, str, dict[str, Any]]] = []  # (symbol, day, row)
        self.writers: dict[tuple[str, str], Any] = {}
        self.schema: Any = None
        self.written = 0

    def add(self, symbol: str, day: str, row: dict[str, Any]) -> None:
        self.rows.append((symbol, day, row))
        if len(self.rows) >= CHUNK_ROWS:
            self.flush()

    def _spec_of(self) -> _Spec:
        if self.spec is not None:
            return self.spec
        # Other event types: columns from the first rows' keys, in order, types from their values.
        columns: dict[str, str] = {}
        for _, _, row in self.rows:
            for key, value in row["_doc"].items():
                if key not in columns and not isinstance(value, (dict, list)):
                    columns[key] = _infer(key, value)
        self.spec = tuple((key, key, kind) for key, kind in columns.items())
        return self.spec

    def flush(self) -> None:
        if not self.rows:
            return
        pa, pq = self.pa, self.pa.parquet
        spec = self._spec_of()
        if self.schema is None:
            fields = [("recv_ns", pa.timestamp("ns", tz="UTC")), ("stream", pa.string())]
            fields += [(column, _arrow_type(pa, kind)) for column, _, kind in spec]
            self.schema = pa.schema(fields)
        parts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for symbol, day, row in self.rows:
            doc = row.pop("_doc")
            if self.name != "marker":
                for column, key, kind in spec:
                    row[column] = _convert(kind, doc.get(key))
            parts.setdefault((symbol, day), []).append(row)
        self.rows = []
        for part, rows in parts.items():
            writer = self.writers.get(part)
            if writer is None:
                folder = self.out_dir / self.name / f"symbol={part[0]}" / f"date={part[1]}"
                folder.mkdir(parents=True, exist_ok=True)
                writer = self.writers[part] = pq.ParquetWriter(folder / f"{self.file_name}.parquet",
                                                              self.schema)
            writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
            self.written += len(rows)

    def close(self) -> None:
        self.flush()
        for writer in self.writers.values():
            writer.close()


def export_parquet(path: str | Path, out_dir: str | Path, *,
                   progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Write ``path`` (any format :mod:`binance_ws.recording` reads) as Parquet tables under ``out_dir``;
    returns the rows written per table. ``progress(records)`` is called every :data:`CHUNK_ROWS` records.

    Raises :class:`ExportError` without pyarrow, :class:`~binance_ws.recording.RecordingError` for a file
    that is not a recording, ``OSError`` when a file cannot be read or written.
    """
    pa = _pyarrow()
    path, out_dir = Path(path), Path(out_dir)
    file_name = path.name.split(".")[0] if not path.name.startswith(".") else path.name
    tables: dict[str, _Table] = {}
    days: dict[int, str] = {}
    try:
        for count, rec in enumerate(read_recording(path, markers=True), 1):
            day_n = rec.recv_ns // 86_400_000_000_000
            day = days.get(day_n)
            if day is None:
                day = days[day_n] = time.strftime("%Y-%m-%d", time.gmtime(day_n * 86_400))
            row: dict[str, Any] = {"recv_ns": rec.recv_ns, "stream": rec.stream}
            if rec.kind == KIND_MARKER:
                name, symbol = "marker", _marker_symbol(rec.payload)
                row["stream"] = None
                row["kind"], row["detail"] = rec.stream, rec.payload.decode("utf-8", "replace")
                row["_doc"] = {}
            else:
                doc = orjson.loads(rec.payload)
                if rec.kind == KIND_SNAPSHOT:
                    name, symbol = "snapshot", rec.symbol or ""
                else:
                    name = table_of(rec.stream, doc)
                    symbol = (doc.get("s") if isinstance(doc, dict) else None) or \
                        stream_symbol(rec.stream or "") or ""
                row["_doc"] = doc if isinstance(doc, dict) else {"data": orjson.dumps(doc).decode()}
            table = tables.get(name)
            if table is None:
                table = tables[name] = _Table(pa, name, _SPECS.get(name), out_dir, file_name)
            table.add(str(symbol).upper() or "ALL", day, row)
            if progress is not None and count % CHUNK_ROWS == 0:
                progress(count)
    finally:
        for table in tables.values():
            table.close()
    return {name: table.written for name, table in sorted(tables.items())}


def _marker_symbol(payload: bytes) -> str:
    try:
        detail = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return ""
    stream = detail.get("stream") if isinstance(detail, dict) else None
    return (stream_symbol(stream) or "") if isinstance(stream, str) else ""

