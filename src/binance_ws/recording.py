"""Recordings of stream traffic: the project's own format, and readers for the real captures others publish.

Pure file I/O (no sockets), shared by the simulator's replay and the client-side recorder.

The project's format, version 1, is text with one message a line, so ``zgrep btcusdt@trade`` works::

    #binance-ws-recording 1 {"market":"spot","url":"wss://stream.binance.com:9443/stream?streams=..."}
    1723161253937085768 btcusdt@depth@100ms {"e":"depthUpdate","E":1723161255208,...}
    1723161254206652067 snapshot:BTCUSDT {"lastUpdateId":50093239218,"bids":[...],"asks":[...]}

Each record line is ``<local receive time, ns since epoch> <tag> <payload>``: the tag is the stream name
(Binance stream names never contain a space) or ``snapshot:<SYMBOL>`` for a REST depth snapshot, and the
payload is the message body exactly as received (for combined streams, the ``data`` value, byte for byte).
A tag ``marker:<kind>`` is a marker line (``gap``, ``reset``, ``link_down``, ``link_up``...), its payload
a JSON object describing it; readers skip markers unless asked (``read_recording(path, markers=True)``),
and a reader older than markers reads them as messages of a stream named ``marker:<kind>``.

The file is gzip or zstd compressed when its name ends in ``.gz`` / ``.zst``; readers go by the file's
magic bytes, so a renamed file still reads. The writer compresses each flush as an independent zstd frame
(gzip member), so a file cut short (a recorder killed mid-write) reads up to its last complete line: the
readers drop a truncated final frame and an unterminated final line.

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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal, NamedTuple, Protocol
from urllib.parse import parse_qs, urlsplit

import orjson
import zstandard

from binance_ws.errors import BinanceWSError
from binance_ws.markets import MARKETS

Kind = Literal["stream", "snapshot", "marker"]
KIND_STREAM: Final = "stream"
KIND_SNAPSHOT: Final = "snapshot"
KIND_MARKER: Final = "marker"

#: First token of the project's header line, and the newest format version this module reads and writes.
MAGIC: Final = b"#binance-ws-recording"
FORMAT_VERSION: Final = 1
#: Tag prefix of snapshot lines in the project's format (stream names never contain ``:`` before ``@``).
SNAPSHOT_TAG: Final = "snapshot:"
#: Tag prefix of marker lines (gaps, reconnects...) in the project's format.
MARKER_TAG: Final = "marker:"

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
    """One recorded message (or, from ``read_recording(path, markers=True)``, a marker)."""

    #: Local receive time, nanoseconds since the epoch.
    recv_ns: int
    #: Stream name (``btcusdt@trade``); None for snapshots; the marker's kind (``gap``...) for a marker.
    stream: str | None
    #: The message body exactly as received (the ``data`` value of a combined frame); a marker's JSON.
    payload: bytes
    kind: Kind
    #: Uppercase symbol of a snapshot; None for stream messages and markers.
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
        return io.BufferedReader(_TolerantGzip(path), _READ_BUFFER)
    raw = open(path, "rb")  # noqa: SIM115 - ownership passes to the returned reader
    if magic == _ZSTD_MAGIC:
        # A truncated final frame (a writer killed mid-frame) ends the stream: what it held of whole
        # frames reads, and the unterminated line its partial output may leave is dropped by the readers.
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return io.BufferedReader(reader, _READ_BUFFER)
    return raw


class _TolerantGzip(io.RawIOBase):
    """A gzip stream whose truncated last member ends it instead of raising ``EOFError``."""

    def __init__(self, path: Path) -> None:
        self._gz = gzip.open(path, "rb")  # noqa: SIM115 - closed by close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # read1: at most one read of the underlying stream, so the data of whole members before a cut
        # is returned before the cut is met (readinto would fill the buffer and lose it to the error).
        try:
            data = self._gz.read1(len(buffer))
        except EOFError:  # "Compressed file ended before the end-of-stream marker was reached"
            return 0
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._gz.close()
        super().close()


class _Sink(Protocol):
    """What the writer needs of a (compressing) file."""

    def write(self, data: bytes | bytearray, /) -> int: ...

    def close(self) -> None: ...


class _FramedFile:
    """A file written in self-contained pieces: each ``write`` is compressed on its own (one zstd frame,
    one gzip member, or plain bytes) and handed to the OS at once, so whatever a killed process leaves
    is every piece it wrote plus at most one cut-short piece, which the readers drop."""

    def __init__(self, path: Path, compress: Any, exclusive: bool) -> None:
        self._fh = open(path, "xb" if exclusive else "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self._compress = compress

    def write(self, data: bytes | bytearray, /) -> int:
        piece = memoryview(self._compress(bytes(data)) if self._compress is not None else data)
        while piece:
            written = self._fh.write(piece) or 0
            piece = piece[written:]
        return len(data)

    def close(self) -> None:
        self._fh.close()


def _gzip_member(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)


def _open_write(path: Path, exclusive: bool = False) -> _Sink:
    """A writer that compresses by suffix: ``.gz`` gzip, ``.zst`` zstd, anything else plain.

    With ``exclusive`` raises ``FileExistsError`` rather than overwrite an existing file.
    """
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return _FramedFile(path, _gzip_member, exclusive)
    if suffix == ".zst":
        return _FramedFile(path, zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress, exclusive)
    return _FramedFile(path, None, exclusive)


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
def read_recording(path: str | Path, *, markers: bool = False) -> Iterator[Record]:
    """Every record of ``path``, in order, whatever its (auto-detected) format.

    With ``markers``, the project's marker lines are yielded too, as records of kind
    :data:`KIND_MARKER` whose ``stream`` is the marker's kind and ``payload`` its JSON object. A file cut
    short (a killed writer) reads up to its last complete line; an empty file reads as no records.

    Raises :class:`RecordingError` (on the first bad line, naming it) for unknown formats and malformed
    lines, ``OSError`` if a file cannot be read.
    """
    path = Path(path)
    if not _first_line(path):
        # Nothing at all (an hftbacktest file, which has no header, whose writer died before its first
        # flush): an empty recording.
        return iter(())
    fmt = detect_format(path)
    if fmt == FORMAT_OWN:
        return _read_own(path, markers)
    if fmt == FORMAT_HFTBACKTEST:
        return _read_hftbacktest(path)
    if fmt == FORMAT_CRYPTOFEED_HTTP:
        return _read_cryptofeed_http(path)
    snapshots = [_read_cryptofeed_http(p) for p in cryptofeed_snapshot_files(path)]
    return heapq.merge(_read_cryptofeed_ws(path), *snapshots, key=lambda r: r.recv_ns)


def _lines(path: Path, skip: int = 0, *, whole: bool = False) -> Iterator[tuple[int, bytes]]:
    """``(line number, line without newline)`` for each non-blank line after the first ``skip``; with
    ``whole``, an unterminated last line (a writer cut short mid-line) is dropped."""
    with _open_read(path) as fh:
        for number, line in enumerate(fh, 1):
            if number <= skip:
                continue
            if whole and not line.endswith(b"\n"):
                return
            line = line.rstrip(b"\r\n")
            if line:
                yield number, line


# Records are built with tuple.__new__: the NamedTuple constructor's keyword handling costs a third of
# the per-line time of the hot readers.
_new_record = tuple.__new__


def _bad(path: Path, number: int, line: bytes, why: str) -> RecordingError:
    return RecordingError(f"{path}:{number}: {why}: {line[:80]!r}")


def _own_tag(name: str) -> tuple[str | None, Kind, str | None]:
    """``(stream, kind, symbol)`` of a tag in the project's format (a marker's kind in place of stream)."""
    if name.startswith(SNAPSHOT_TAG):
        return None, KIND_SNAPSHOT, name[len(SNAPSHOT_TAG):]
    if name.startswith(MARKER_TAG):
        return name[len(MARKER_TAG):], KIND_MARKER, None
    return name, KIND_STREAM, None


def _read_own(path: Path, markers: bool = False) -> Iterator[Record]:
    _parse_own_header(path, _first_line(path).rstrip(b"\r\n"))
    names: dict[bytes, tuple[str | None, Kind, str | None]] = {}
    for number, line in _lines(path, skip=1, whole=True):
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
        if kind is KIND_MARKER and not markers:
            continue
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
            if not raw.endswith(b"\n"):
                break  # an unterminated last line: the writer was cut short mid-line
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


# -- writers --------------------------------------------------------------------------------------
class _LineWriter:
    """What both writers share: a buffer of whole lines, flushed as one self-contained piece."""

    def __init__(self, path: str | Path, first: bytes, exclusive: bool) -> None:
        self.path = Path(path)
        self._fh: _Sink | None = _open_write(self.path, exclusive)
        self._buf = bytearray(first)
        #: Records written so far (markers included).
        self.count = 0
        #: Bytes of lines handed to the file so far (before compression).
        self.bytes = 0
        if first:
            self.flush()  # the header is on disk before any record: a file killed at once still reads

    def _line(self, line: bytes) -> None:
        if self._fh is None:
            raise RecordingError(f"{self.path}: recording already closed")
        self._buf += line
        self.count += 1
        if len(self._buf) >= _WRITE_BUFFER:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered lines to the file as one piece (a zstd frame, a gzip member): once this
        returns they survive the process being killed."""
        if self._fh is not None and self._buf:
            self._fh.write(self._buf)
            self.bytes += len(self._buf)
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

    @property
    def closed(self) -> bool:
        return self._fh is None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fh is None else "open"
        return f"<{type(self).__name__} {str(self.path)!r} {state} records={self.count}>"

    @staticmethod
    def _check_payload(payload: bytes) -> None:
        if b"\n" in payload or b"\r" in payload:
            raise ValueError("payload spans several lines; record the compact JSON as received")


class RecordingWriter(_LineWriter):
    """Writes the project's format; use as a context manager or call :meth:`close`.

    ``RecordingWriter(path, market="spot", url=...)`` writes the header at once; :meth:`write` appends a
    stream message, :meth:`write_snapshot` a REST depth snapshot and :meth:`write_marker` a marker. Lines
    are buffered and handed to the file by :meth:`flush` (at the latest every 64 KiB), each flush one
    independent zstd frame / gzip member by suffix (``.gz``, ``.zst``), so a killed writer leaves a file
    that reads up to its last flush. ``exclusive`` refuses to overwrite (``FileExistsError``). Secret
    query values in ``url`` are redacted. Not thread-safe.
    """

    def __init__(self, path: str | Path, *, market: str | None = None, url: str | None = None,
                 exclusive: bool = False, **meta: Any) -> None:
        header: dict[str, Any] = {}
        if market is not None:
            header["market"] = market
        if url is not None:
            header["url"] = redact_url(url)
        header.update(meta)
        self._tags: dict[str, bytes] = {}
        super().__init__(path, b"%s %d %s\n" % (MAGIC, FORMAT_VERSION, orjson.dumps(header)), exclusive)

    def write(self, recv_ns: int, stream: str, payload: bytes) -> None:
        """Append one stream message.

        Raises ``ValueError`` if ``stream`` is not a plain stream name or ``payload`` spans lines, and
        :class:`RecordingError` if the writer is closed.
        """
        tag = self._tags.get(stream)
        if tag is None:
            if stream.startswith((SNAPSHOT_TAG, MARKER_TAG)):
                raise ValueError(f"stream name {stream!r} collides with the snapshot or marker tag")
            tag = self._tags[stream] = self._tag(stream)
        self._append(recv_ns, tag, payload)

    def write_snapshot(self, recv_ns: int, symbol: str, payload: bytes) -> None:
        """Append one REST depth snapshot body for ``symbol``.

        Raises ``ValueError`` / :class:`RecordingError` as :meth:`write` does.
        """
        self._append(recv_ns, self._tag(SNAPSHOT_TAG + symbol.upper()), payload)

    def write_marker(self, recv_ns: int, kind: str, detail: Mapping[str, Any]) -> None:
        """Append a marker line: ``kind`` (``gap``, ``link_down``...) and ``detail`` as a JSON object
        (values JSON cannot hold are written as their ``str``).

        Raises ``ValueError`` / :class:`RecordingError` as :meth:`write` does.
        """
        self._append(recv_ns, self._tag(MARKER_TAG + kind), orjson.dumps(dict(detail), default=str))

    def write_record(self, record: Record) -> None:
        """Append a :class:`Record` from any reader (converting a foreign recording)."""
        if record.kind == KIND_SNAPSHOT:
            self.write_snapshot(record.recv_ns, record.symbol or "", record.payload)
        elif record.kind == KIND_MARKER:
            self._append(record.recv_ns, self._tag(MARKER_TAG + (record.stream or "")), record.payload)
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
        self._check_payload(payload)
        self._line(b"%d %s %s\n" % (recv_ns, tag, payload))

    def __enter__(self) -> RecordingWriter:
        return self


class HftbacktestWriter(_LineWriter):
    """Writes hftbacktest's collector format, which :func:`read_recording` reads back: ``<ns> <combined
    stream JSON>`` for a message, ``<ns> <body>`` for a REST depth snapshot, no header. hftbacktest keeps
    one symbol a file (a snapshot line names none). Markers have no place in it: :meth:`write_marker`
    only counts them (``markers_dropped``). Same flushing, compression and errors as
    :class:`RecordingWriter`.
    """

    def __init__(self, path: str | Path, *, exclusive: bool = False) -> None:
        super().__init__(path, b"", exclusive)
        #: Markers given to a file that cannot hold them.
        self.markers_dropped = 0

    def write(self, recv_ns: int, stream: str, payload: bytes) -> None:
        """Append one stream message (raises as :meth:`RecordingWriter.write`)."""
        if not stream or any(c in stream for c in ' \t\r\n"'):
            raise ValueError(f"{stream!r} is not a valid stream name")
        self._check_payload(payload)
        self._line(b"%d %s%s%s%s}\n" % (recv_ns, _COMBINED_HEAD, stream.encode(), _COMBINED_DATA, payload))

    def write_snapshot(self, recv_ns: int, symbol: str, payload: bytes) -> None:
        """Append one REST depth snapshot body (its symbol is the file's)."""
        self._check_payload(payload)
        self._line(b"%d %s\n" % (recv_ns, payload))

    def write_marker(self, recv_ns: int, kind: str, detail: Mapping[str, Any]) -> None:
        """hftbacktest has no marker lines: counted in ``markers_dropped``, not written."""
        self.markers_dropped += 1

    def __enter__(self) -> HftbacktestWriter:
        return self
