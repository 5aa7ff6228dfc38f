"""Recordings of stream traffic: the project's own format, and readers for the real captures others publish.

Pure file I/O (no sockets), shared by the simulator's replay and the client-side recorder.

The project's format, version 1, is text with one message a line, so ``zgrep btcusdt@trade`` works::

    #binance-ws-recording 1 {"market":"spot","url":"wss://stream.binance.com:9443/stream?streams=..."}
    1723161253937085768 btcusdt@depth@100ms {"e":"depthUpdate","E":1723161255208,...}
    1723161254206652067 snapshot:BTCUSDT {"lastUpdateId":50093239218,"bids":[...],"asks":[...]}

Each record line is ``<local receive time, ns since epoch> <tag> <payload>``: the tag is the stream name
(Binance stream names never contain a space) or ``snapshot:<SYMBOL>`` for a REST depth snapshot, and the
payload is the message body exactly as received (for combined streams, the ``data`` value, byte for byte).
The file is gzip or zstd compressed when its name ends in ``.gz`` / ``.zst``; readers go by the file's
magic bytes, so a renamed file still reads.

Readers also understand, auto-detected from the first line:

- hftbacktest (``<ns> <combined-stream JSON>``, plus bare REST depth snapshot lines);
- cryptofeed ``*.ws.*`` (line 1 ``<connect URL> <-> <epoch s>``, then ``<epoch s>: <combined JSON>``),
  merged in time order with the snapshots of its sibling ``*.http.*`` files
  (``<request URL> -> <epoch s>: <JSON body>``); an ``.http`` file alone reads as snapshots only.

Every reader yields :class:`Record` in file order.
"""

from __future__ import annotations

import glob
import gzip
import heapq
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal, NamedTuple, Protocol
from urllib.parse import parse_qs, urlsplit

import orjson
import zstandard

from binance_ws.errors import BinanceWSError
from binance_ws.markets import MARKETS

Kind = Literal["stream", "snapshot"]
KIND_STREAM: Final = "stream"
KIND_SNAPSHOT: Final = "snapshot"

#: First token of the project's header line, and the newest format version this module reads and writes.
MAGIC: Final = b"#binance-ws-recording"
FORMAT_VERSION: Final = 1
#: Tag prefix of snapshot lines in the project's format (stream names never contain ``:`` before ``@``).
SNAPSHOT_TAG: Final = "snapshot:"

#: Names of the formats :func:`detect_format` recognises.
FORMAT_OWN: Final = "binance-ws"
FORMAT_HFTBACKTEST: Final = "hftbacktest"
FORMAT_CRYPTOFEED_WS: Final = "cryptofeed-ws"
FORMAT_CRYPTOFEED_HTTP: Final = "cryptofeed-http"

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
# How much the writer buffers before handing bytes to the compressor: few large writes compress
# faster than many small ones.
_WRITE_BUFFER: Final = 1 << 16
_READ_BUFFER: Final = 1 << 20
# Compression levels: fast enough for a live recorder, most of the size gain of the maximum levels.
_GZIP_LEVEL: Final = 6
_ZSTD_LEVEL: Final = 3

# The combined-stream wrapper as Binance sends it: "stream" first, no whitespace (PROTOCOL 1.2, 10).
_COMBINED_HEAD: Final = b'{"stream":"'
_COMBINED_DATA: Final = b'","data":'
# cryptofeed separators: `<url> <-> <ts>` (ws header), `<ts>: <json>` (ws), `<url> -> <ts>: <json>` (http).
_CF_WS_HEADER = re.compile(rb"^(wss?://\S+) <-> (\d+(?:\.\d+)?)$")
_CF_HTTP_LINE = re.compile(rb"^(https?://\S+) -> (\d+(?:\.\d+)?): ")
_NS_LINE = re.compile(rb"^\d+ ")
# REST paths whose answer is an order-book snapshot (spot /api/v3, USD-M /fapi/v1, COIN-M /dapi/v1).
_DEPTH_PATH_SUFFIX: Final = "/depth"
# Query parameters that are secrets and must not be copied into a recording header.
_SECRET_PARAMS = re.compile(r"(?i)(listenKey|signature|apiKey)=[^&]*")


class RecordingError(BinanceWSError, ValueError):
    """A recording could not be read: unknown format, unsupported version, or a malformed line."""


class Record(NamedTuple):
    """One recorded message."""

    #: Local receive time, nanoseconds since the epoch.
    recv_ns: int
    #: Stream name (``btcusdt@trade``); None for snapshots.
    stream: str | None
    #: The message body exactly as received (the ``data`` value of a combined frame).
    payload: bytes
    kind: Kind
    #: Uppercase symbol of a snapshot; None for stream messages.
    symbol: str | None = None


@dataclass(slots=True)
class RecordingHeader:
    """What a recording says about itself before its first message."""

    format: str
    #: The project's format version (None for foreign formats).
    version: int | None = None
    #: Market name as in :data:`binance_ws.markets.MARKETS` (``spot``, ``usdm``...), when known.
    market: str | None = None
    #: The URL the recorder connected to, when known.
    url: str | None = None
    #: Any further metadata the writer stored.
    meta: dict[str, Any] = field(default_factory=dict)

    def url_streams(self) -> list[str]:
        """The stream names in ``url``'s ``streams=`` query or ``/ws/a/b`` path (empty if none)."""
        if not self.url:
            return []
        parts = urlsplit(self.url)
        names = parse_qs(parts.query).get("streams")
        if names:
            return [s for s in names[0].split("/") if s]
        _, _, tail = parts.path.partition("/ws/")
        return [s for s in tail.split("/") if s] if tail else []


# -- compression ----------------------------------------------------------------------------------
def _open_read(path: Path) -> IO[bytes]:
    """A buffered binary reader over the decompressed content, chosen by magic bytes."""
    with open(path, "rb") as fh:
        magic = fh.read(len(_ZSTD_MAGIC))
    if magic.startswith(_GZIP_MAGIC):
        # gzip.open owns (and closes) the file it opens; a GzipFile given a fileobj would leave it open.
        return io.BufferedReader(gzip.open(path, "rb"), _READ_BUFFER)
    raw = open(path, "rb")  # noqa: SIM115 - ownership passes to the returned reader
    if magic == _ZSTD_MAGIC:
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return io.BufferedReader(reader, _READ_BUFFER)
    return raw


class _Sink(Protocol):
    """What the writer needs of a (compressing) file."""

    def write(self, data: bytes | bytearray, /) -> int: ...

    def close(self) -> None: ...


def _open_write(path: Path) -> _Sink:
    """A binary writer that compresses by suffix: ``.gz`` gzip, ``.zst`` zstd, anything else plain."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=_GZIP_LEVEL)
    if suffix == ".zst":
        return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).stream_writer(open(path, "wb"), closefd=True)
    return open(path, "wb")


def _first_line(path: Path) -> bytes:
    with _open_read(path) as fh:
        return fh.readline()


# -- small parsers --------------------------------------------------------------------------------
def split_combined(body: bytes) -> tuple[str, bytes] | None:
    """``(stream, data bytes)`` of a combined-stream frame, without decoding JSON; None if not one.

    The ``data`` bytes are a slice of ``body``, so they are exactly what the server sent.
    """
    if not body.startswith(_COMBINED_HEAD) or not body.endswith(b"}"):
        return None
    end = body.find(_COMBINED_DATA, len(_COMBINED_HEAD))
    if end < 0:
        return None
    return body[len(_COMBINED_HEAD):end].decode(), body[end + len(_COMBINED_DATA):-1]


def _epoch_s_to_ns(text: bytes) -> int:
    """Exact ns from a decimal epoch-seconds string (a float would lose the last digits)."""
    whole, _, frac = text.partition(b".")
    return int(whole) * 1_000_000_000 + int(frac[:9].ljust(9, b"0") or b"0")


def stream_symbol(stream: str) -> str | None:
    """Uppercase symbol of a per-symbol stream name (``btcusdt@trade`` -> ``BTCUSDT``), else None."""
    if stream.startswith("!"):
        return None
    head, at, _ = stream.partition("@")
    return head.upper() if at and head else None


def _market_for_url(url: str) -> str | None:
    """The :data:`MARKETS` row whose stream or REST host matches ``url``'s host."""
    host = urlsplit(url).hostname
    for market in MARKETS.values():
        if host in (urlsplit(market.stream_url).hostname, urlsplit(market.rest_url).hostname):
            return market.name
    return None


def _is_snapshot_body(body: bytes) -> bool:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and "lastUpdateId" in doc


def redact_url(url: str) -> str:
    """``url`` with secret query values (listenKey, signature, apiKey) replaced by ``***``."""
    return _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}=***", url)


# -- format detection -----------------------------------------------------------------------------
def detect_format(path: str | Path) -> str:
    """Which format ``path`` holds (one of the ``FORMAT_*`` names).

    Raises :class:`RecordingError` if the first line matches none, and ``OSError`` if the file cannot
    be read.
    """
    line = _first_line(Path(path)).rstrip(b"\r\n")
    if line.startswith(MAGIC):
        return FORMAT_OWN
    if _CF_WS_HEADER.match(line):
        return FORMAT_CRYPTOFEED_WS
    if _CF_HTTP_LINE.match(line):
        return FORMAT_CRYPTOFEED_HTTP
    if _NS_LINE.match(line):
        return FORMAT_HFTBACKTEST
    raise RecordingError(f"{path}: not a recording this library can read (first line {line[:60]!r})")


def read_header(path: str | Path) -> RecordingHeader:
    """The header of ``path`` in any supported format (foreign formats carry less).

    Raises :class:`RecordingError` for an unknown format or a newer version of the project's format.
    """
    path = Path(path)
    fmt = detect_format(path)
    line = _first_line(path).rstrip(b"\r\n")
    if fmt == FORMAT_OWN:
        return _parse_own_header(path, line)
    if fmt == FORMAT_CRYPTOFEED_WS:
        match = _CF_WS_HEADER.match(line)
        assert match is not None  # detect_format matched it
        url = match.group(1).decode()
        return RecordingHeader(fmt, market=_market_for_url(url), url=url,
                               meta={"connected_ns": _epoch_s_to_ns(match.group(2))})
    if fmt == FORMAT_CRYPTOFEED_HTTP:
        match = _CF_HTTP_LINE.match(line)
        assert match is not None
        return RecordingHeader(fmt, market=_market_for_url(match.group(1).decode()))
    return RecordingHeader(fmt)


def _parse_own_header(path: Path, line: bytes) -> RecordingHeader:
    parts = line.split(b" ", 2)
    try:
        version = int(parts[1])
        meta = orjson.loads(parts[2]) if len(parts) > 2 else {}
    except (IndexError, ValueError) as exc:
        raise RecordingError(f"{path}: malformed header line {line[:80]!r}") from exc
    if version > FORMAT_VERSION:
        raise RecordingError(f"{path}: recording format version {version} is newer than this "
                             f"library reads ({FORMAT_VERSION})")
    if not isinstance(meta, dict):
        raise RecordingError(f"{path}: header metadata is not a JSON object")
    market = meta.pop("market", None)
    url = meta.pop("url", None)
    return RecordingHeader(FORMAT_OWN, version=version, market=market, url=url, meta=meta)


# -- readers --------------------------------------------------------------------------------------
def read_recording(path: str | Path) -> Iterator[Record]:
    """Every record of ``path``, in order, whatever its (auto-detected) format.

    Raises :class:`RecordingError` (on the first bad line, naming it) for unknown formats and malformed
    lines, ``OSError`` if a file cannot be read.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == FORMAT_OWN:
        return _read_own(path)
    if fmt == FORMAT_HFTBACKTEST:
        return _read_hftbacktest(path)
    if fmt == FORMAT_CRYPTOFEED_HTTP:
        return _read_cryptofeed_http(path)
    snapshots = [_read_cryptofeed_http(p) for p in cryptofeed_snapshot_files(path)]
    return heapq.merge(_read_cryptofeed_ws(path), *snapshots, key=lambda r: r.recv_ns)


def _lines(path: Path, skip: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(line number, line without newline)`` for each non-blank line after the first ``skip``."""
    with _open_read(path) as fh:
        for number, line in enumerate(fh, 1):
            if number <= skip:
                continue
            line = line.rstrip(b"\r\n")
            if line:
                yield number, line


# Records are built with tuple.__new__: the NamedTuple constructor's keyword handling costs a third of
# the per-line time of the hot readers.
_new_record = tuple.__new__


def _bad(path: Path, number: int, line: bytes, why: str) -> RecordingError:
    return RecordingError(f"{path}:{number}: {why}: {line[:80]!r}")


def _own_tag(name: str) -> tuple[str | None, Kind, str | None]:
    """``(stream, kind, symbol)`` of a tag in the project's format."""
    if name.startswith(SNAPSHOT_TAG):
        return None, KIND_SNAPSHOT, name[len(SNAPSHOT_TAG):]
    return name, KIND_STREAM, None


def _read_own(path: Path) -> Iterator[Record]:
    _parse_own_header(path, _first_line(path).rstrip(b"\r\n"))
    names: dict[bytes, tuple[str | None, Kind, str | None]] = {}
    for number, line in _lines(path, skip=1):
        parts = line.split(b" ", 2)
        if len(parts) != 3:
            raise _bad(path, number, line, "expected '<ns> <stream> <payload>'")
        ns, tag, payload = parts
        try:
            recv_ns = int(ns)
        except ValueError as exc:
            raise _bad(path, number, line, "receive time is not an integer") from exc
        # One str per distinct tag: no decode per line, and equal names are the same object downstream.
        known = names.get(tag)
        if known is None:
            known = names[tag] = _own_tag(tag.decode())
        stream, kind, symbol = known
        yield _new_record(Record, (recv_ns, stream, payload, kind, symbol))


def _read_hftbacktest(path: Path) -> Iterator[Record]:
    # Snapshot lines carry no symbol: hftbacktest records one symbol a file, so a snapshot takes the
    # symbol of the streams around it; one seen before any stream line waits for the first.
    symbol: str | None = None
    pending: list[Record] = []
    names: dict[bytes, str] = {}
    head, head_len, data, data_len = _COMBINED_HEAD, len(_COMBINED_HEAD), _COMBINED_DATA, len(_COMBINED_DATA)
    with _open_read(path) as fh:
        # The file is read here rather than through _lines: one generator less per line.
        for number, raw in enumerate(fh, 1):
            line = raw.rstrip(b"\r\n")
            if not line:
                continue
            ns, _, body = line.partition(b" ")
            try:
                recv_ns = int(ns)
            except ValueError as exc:
                raise _bad(path, number, line, "expected '<ns> <json>'") from exc
            # split_combined, inlined for the hot path, with one str per distinct stream name.
            end = body.find(data, head_len) if body.startswith(head) and body.endswith(b"}") else -1
            if end > 0:
                raw_name = body[head_len:end]
                stream = names.get(raw_name)
                if stream is None:
                    stream = names[raw_name] = raw_name.decode()
                    if symbol is None:
                        symbol = stream_symbol(stream)
                        if symbol is not None:
                            yield from (r._replace(symbol=symbol) for r in pending)
                            pending.clear()
                yield _new_record(Record, (recv_ns, stream, body[end + data_len:-1], KIND_STREAM, None))
            elif _is_snapshot_body(body):
                snap = Record(recv_ns, None, body, KIND_SNAPSHOT, symbol)
                if symbol is None:
                    pending.append(snap)
                else:
                    yield snap
            else:
                raise _bad(path, number, line, "neither a combined-stream message nor a depth snapshot")
    yield from pending


def _read_cryptofeed_ws(path: Path) -> Iterator[Record]:
    for number, line in _lines(path, skip=1):
        ts, sep, body = line.partition(b": ")
        split = split_combined(body) if sep else None
        if split is None:
            raise _bad(path, number, line, "expected '<epoch s>: <combined-stream json>'")
        try:
            recv_ns = _epoch_s_to_ns(ts)
        except ValueError as exc:
            raise _bad(path, number, line, "bad timestamp") from exc
        yield Record(recv_ns, split[0], split[1], KIND_STREAM)


def _read_cryptofeed_http(path: Path) -> Iterator[Record]:
    for number, line in _lines(path):
        match = _CF_HTTP_LINE.match(line)
        if match is None:
            raise _bad(path, number, line, "expected '<url> -> <epoch s>: <json>'")
        url = urlsplit(match.group(1).decode())
        # Other REST answers (exchangeInfo, ...) are not market data a replay can serve.
        if not url.path.endswith(_DEPTH_PATH_SUFFIX):
            continue
        symbols = parse_qs(url.query).get("symbol")
        if not symbols:
            raise _bad(path, number, line, "depth request without a symbol")
        yield Record(_epoch_s_to_ns(match.group(2)), None, line[match.end():], KIND_SNAPSHOT,
                     symbols[0].upper())


def cryptofeed_snapshot_files(ws_path: str | Path) -> list[Path]:
    """The ``.http`` siblings of a cryptofeed ``<name>.ws.<n>.<m>`` file (``<name>.http.*``), sorted."""
    ws_path = Path(ws_path)
    name, sep, _ = ws_path.name.rpartition(".ws.")
    if not sep:
        return []
    return sorted(ws_path.parent.glob(f"{glob.escape(name)}.http.*"))


# -- writer ---------------------------------------------------------------------------------------
class RecordingWriter:
    """Writes the project's format; use as a context manager or call :meth:`close`.

    ``RecordingWriter(path, market="spot", url=...)`` writes the header at once; :meth:`write` appends a
    stream message and :meth:`write_snapshot` a REST depth snapshot. Lines are buffered and compressed
    by suffix (``.gz``, ``.zst``). Secret query values in ``url`` are redacted. Not thread-safe.
    """

    def __init__(self, path: str | Path, *, market: str | None = None, url: str | None = None,
                 **meta: Any) -> None:
        self.path = Path(path)
        header: dict[str, Any] = {}
        if market is not None:
            header["market"] = market
        if url is not None:
            header["url"] = redact_url(url)
        header.update(meta)
        self._fh: _Sink | None = _open_write(self.path)
        self._buf = bytearray(b"%s %d %s\n" % (MAGIC, FORMAT_VERSION, orjson.dumps(header)))
        self._tags: dict[str, bytes] = {}
        #: Records written so far.
        self.count = 0

    def write(self, recv_ns: int, stream: str, payload: bytes) -> None:
        """Append one stream message.

        Raises ``ValueError`` if ``stream`` is not a plain stream name or ``payload`` spans lines, and
        :class:`RecordingError` if the writer is closed.
        """
        tag = self._tags.get(stream)
        if tag is None:
            if stream.startswith(SNAPSHOT_TAG):
                raise ValueError(f"stream name {stream!r} collides with the snapshot tag")
            tag = self._tags[stream] = self._tag(stream)
        self._append(recv_ns, tag, payload)

    def write_snapshot(self, recv_ns: int, symbol: str, payload: bytes) -> None:
        """Append one REST depth snapshot body for ``symbol``.

        Raises ``ValueError`` / :class:`RecordingError` as :meth:`write` does.
        """
        self._append(recv_ns, self._tag(SNAPSHOT_TAG + symbol.upper()), payload)

    def write_record(self, record: Record) -> None:
        """Append a :class:`Record` from any reader (converting a foreign recording)."""
        if record.kind == KIND_SNAPSHOT:
            self.write_snapshot(record.recv_ns, record.symbol or "", record.payload)
        else:
            self.write(record.recv_ns, record.stream or "", record.payload)

    def write_all(self, records: Iterable[Record]) -> None:
        """Append every record of ``records``."""
        for record in records:
            self.write_record(record)

    @staticmethod
    def _tag(name: str) -> bytes:
        tag = name.encode()
        if not tag or any(c in tag for c in b" \t\r\n"):
            raise ValueError(f"{name!r} is not a valid stream or symbol name")
        return tag

    def _append(self, recv_ns: int, tag: bytes, payload: bytes) -> None:
        if self._fh is None:
            raise RecordingError(f"{self.path}: recording already closed")
        if b"\n" in payload or b"\r" in payload:
            raise ValueError("payload spans several lines; record the compact JSON as received")
        self._buf += b"%d %s %s\n" % (recv_ns, tag, payload)
        self.count += 1
        if len(self._buf) >= _WRITE_BUFFER:
            self.flush()

    def flush(self) -> None:
        """Hand buffered lines to the file (compressed data may still sit in the compressor)."""
        if self._fh is not None and self._buf:
            self._fh.write(self._buf)
            self._buf.clear()

    def close(self) -> None:
        """Flush and close the file (idempotent); the recording is complete once this returns."""
        if self._fh is None:
            return
        try:
            self.flush()
        finally:
            fh, self._fh = self._fh, None
            fh.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fh is None else "open"
        return f"<RecordingWriter {str(self.path)!r} {state} records={self.count}>"
