"""The file sink: the project's recording format (or hftbacktest's), one file per stream group and UTC day.

A stream's *group* is its symbol (``btcusdt@trade``, ``btcusdt@depth@100ms`` and ``snapshot:BTCUSDT`` share
``btcusdt``'s file, so any one file holds what rebuilding that book needs); a stream of no symbol
(``!miniTicker@arr``) is a group of its own. Files are named ``<market>_<group>_<YYYYMMDD>.rec.zst``
(``.hftbacktest.zst`` for that format) in the output folder; a file that already exists (a recorder
restarted the same day) is never overwritten: the next one is ``<...>_<YYYYMMDD>.1.rec.zst``, and so on.

When a group's lines reach a new UTC day its file is closed and the next one opened (the decision is a
pure :class:`RotationPolicy`, tested with a fake clock); :meth:`FileSink.tick` also closes the files of
groups that stayed silent past midnight. Lines are flushed as self-contained zstd frames at least every
``flush_interval_s`` seconds (see :mod:`binance_ws.recording`), so a recorder killed with SIGKILL leaves
every file readable up to the last flush.

Markers (:class:`~binance_ws.sinks.base.Marker`) become marker lines in the files of the streams they name
(``stream`` or ``streams`` in their detail; every open file when they name none). A ``snapshot`` marker
carries a REST depth snapshot (``{"symbol": "BTCUSDT", "data": <body bytes>}``) and becomes a snapshot
line in that symbol's file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

from binance_ws.recording import HftbacktestWriter, RecordingWriter, stream_symbol
from binance_ws.sinks.base import Entry, Marker

FileFormat = Literal["binance-ws", "hftbacktest"]
FILE_FORMATS: Final[tuple[FileFormat, ...]] = ("binance-ws", "hftbacktest")
#: Name part after the day, by format.
_EXTENSIONS: Final[dict[FileFormat, str]] = {"binance-ws": "rec", "hftbacktest": "hftbacktest"}

NS_PER_DAY: Final = 86_400 * 1_000_000_000
#: Default bound on how long a written line may sit in memory before it is in a frame on disk.
DEFAULT_FLUSH_INTERVAL_S: Final = 1.0
#: Marker kinds counted as gaps and as reconnects in :class:`FileStats`.
GAP_KINDS: Final = frozenset({"gap", "reset"})
LINK_UP: Final = "link_up"
LINK_DOWN: Final = "link_down"
SNAPSHOT: Final = "snapshot"


def stream_group(stream: str) -> str:
    """The group (file) of a stream: its symbol in lower case, or for a stream of no symbol the stream
    name made safe for a file name (``!miniTicker@arr`` -> ``all_miniTicker_arr``)."""
    symbol = stream_symbol(stream)
    if symbol is not None:
        return symbol.lower()
    return stream.replace("!", "all_").replace("@", "_").replace("/", "_")


def utc_day(day: int) -> str:
    """``YYYYMMDD`` of a day number (days since the epoch, UTC)."""
    return time.strftime("%Y%m%d", time.gmtime(day * 86_400))


class Open(NamedTuple):
    """Open a file for ``group`` and UTC ``day`` (days since the epoch)."""

    group: str
    day: int


class Close(NamedTuple):
    """Close ``group``'s file of ``day``."""

    group: str
    day: int


class RotationPolicy:
    """Which file each line goes to, one per group and UTC day. Pure: fed receive times, returns actions.

    :meth:`line` answers, for a line of ``group`` received at ``ns``, what to do before writing it:
    nothing, ``[Open]``, or ``[Close, Open]`` when ``ns`` is on a later UTC day than the group's open file.
    A receive time on an earlier day than the open file (the local clock stepped back across midnight)
    stays in the open file: files never go back a day. :meth:`tick` closes the files of every group whose
    day has ended by ``now_ns``, silent groups included.
    """

    def __init__(self) -> None:
        self._days: dict[str, int] = {}

    @staticmethod
    def day_of(ns: int) -> int:
        return ns // NS_PER_DAY

    def line(self, group: str, ns: int) -> list[Open | Close]:
        day = ns // NS_PER_DAY
        current = self._days.get(group)
        if current is None:
            self._days[group] = day
            return [Open(group, day)]
        if day <= current:
            return []
        self._days[group] = day
        return [Close(group, current), Open(group, day)]

    def tick(self, now_ns: int) -> list[Close]:
        today = now_ns // NS_PER_DAY
        ended = [Close(g, d) for g, d in self._days.items() if d < today]
        for action in ended:
            del self._days[action.group]
        return ended

    def day(self, group: str) -> int | None:
        """The day of ``group``'s open file, None if it has none."""
        return self._days.get(group)

    def close_all(self) -> list[Close]:
        closing = [Close(g, d) for g, d in self._days.items()]
        self._days.clear()
        return closing


@dataclass(slots=True)
class FileStats:
    """What a :class:`FileSink` has written, for a status line or metrics."""

    messages: int = 0
    #: Payload bytes of the messages (as received, before compression).
    bytes: int = 0
    snapshots: int = 0
    markers: int = 0
    gaps: int = 0
    reconnects: int = 0
    #: Files opened so far, and open now.
    files: int = 0
    open_files: int = 0


_Writer = RecordingWriter | HftbacktestWriter


class FileSink:
    """Writes entries and markers to files in ``out_dir`` (created if missing), one per group and UTC day.

    ``format`` is ``"binance-ws"`` (the project's format) or ``"hftbacktest"``; ``compression`` the file
    suffix (``"zst"``, ``"gz"``, or ``""`` for plain text). ``market`` and ``url`` (the stream server's
    base URL) go into each file's header; given the recorded ``streams``, the header's URL names the
    file's own (``<url>/stream?streams=a/b``), so a replay knows them even if some carried nothing.
    ``on_open(group, symbol)`` is called whenever a file opens (``symbol`` None for a group of no
    symbol): the recorder takes a depth snapshot then, so every file alone rebuilds its book. ``clock``
    (ns since the epoch) is only read by :meth:`tick`; lines are filed by their own receive times.
    Implements :class:`~binance_ws.sinks.base.Sink`. Raises ``OSError`` when a file cannot be written.
    """

    def __init__(self, out_dir: str | Path, *, market: str, url: str | None = None,
                 streams: Iterable[str] = (), format: FileFormat = "binance-ws", compression: str = "zst",
                 flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
                 on_open: Callable[[str, str | None], None] | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        if format not in FILE_FORMATS:
            raise ValueError(f"format must be one of {', '.join(FILE_FORMATS)}, not {format!r}")
        if compression not in ("zst", "gz", ""):
            raise ValueError(f"compression must be 'zst', 'gz' or '', not {compression!r}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.market = market
        self.url = url
        self.format = format
        self.compression = compression
        self.flush_interval_ns = int(flush_interval_s * 1e9)
        self.on_open = on_open
        self.clock = clock
        self.policy = RotationPolicy()
        self.stats = FileStats()
        #: Every file opened, in order.
        self.paths: list[Path] = []
        self._writers: dict[str, _Writer] = {}
        self._groups: dict[str, str] = {}  # stream -> group
        self._members: dict[str, list[str]] = {}  # group -> its streams, as given
        for name in streams:
            group = self._groups[name] = stream_group(name)
            self._members.setdefault(group, []).append(name)
        self._last_flush = clock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<FileSink {str(self.out_dir)!r} {self.format} open={len(self._writers)} {self.stats}>"

    # -- Sink -------------------------------------------------------------------------------------
    async def write(self, entries: Sequence[Entry]) -> None:
        groups = self._groups
        stats = self.stats
        writer: _Writer | None = None
        for ns, stream, data in entries:
            group = groups.get(stream)
            if group is None:
                group = groups[stream] = stream_group(stream)
            writer = self._writer(group, ns)
            writer.write(ns, stream, data)
            stats.bytes += len(data)
        stats.messages += len(entries)
        if entries and entries[-1].received_ns - self._last_flush >= self.flush_interval_ns:
            self.flush(entries[-1].received_ns)

    async def mark(self, marker: Marker) -> None:
        self.write_marker(marker)

    async def close(self) -> None:
        self.close_now()

    # -- the rest ---------------------------------------------------------------------------------
    def write_marker(self, marker: Marker) -> None:
        """File ``marker`` at once (what :meth:`mark` does, callable outside a coroutine)."""
        ns, kind, detail = marker
        stats = self.stats
        if kind == SNAPSHOT:
            symbol = str(detail["symbol"]).upper()
            self._writer(symbol.lower(), ns).write_snapshot(ns, symbol, bytes(detail["data"]))
            stats.snapshots += 1
            return
        stats.markers += 1
        if kind in GAP_KINDS:
            stats.gaps += 1
        elif kind == LINK_UP:
            stats.reconnects += 1
        named = _streams_named(detail)
        groups = {self._groups.get(s) or stream_group(s) for s in named} if named else set(self._writers)
        for group in sorted(groups):
            self._writer(group, ns).write_marker(ns, kind, detail)

    def flush(self, now_ns: int | None = None) -> None:
        """Hand every file's buffered lines to the OS (one zstd frame each)."""
        for writer in self._writers.values():
            writer.flush()
        self._last_flush = self.clock() if now_ns is None else now_ns

    def tick(self) -> None:
        """Call about once a second: flushes what waited ``flush_interval_s``, and closes the files of
        days that have ended."""
        now = self.clock()
        for action in self.policy.tick(now):
            self._close(action.group)
        if now - self._last_flush >= self.flush_interval_ns:
            self.flush(now)

    def close_now(self) -> None:
        """Flush and close every file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for action in self.policy.close_all():
            self._close(action.group)

    @property
    def open_paths(self) -> list[Path]:
        return [w.path for w in self._writers.values()]

    def _writer(self, group: str, ns: int) -> _Writer:
        actions = self.policy.line(group, ns)
        if not actions:
            return self._writers[group]
        for action in actions:
            if isinstance(action, Close):
                self._close(action.group)
            else:
                self._open(action.group, action.day)
        return self._writers[group]

    def _open(self, group: str, day: int) -> None:
        if self._closed:
            raise RuntimeError("the file sink is closed")
        stem = f"{self.market}_{group}_{utc_day(day)}"
        suffix = f".{_EXTENSIONS[self.format]}" + (f".{self.compression}" if self.compression else "")
        part = 0
        while True:
            path = self.out_dir / (stem + (f".{part}" if part else "") + suffix)
            try:
                writer: _Writer
                if self.format == "hftbacktest":
                    writer = HftbacktestWriter(path, exclusive=True)
                else:
                    url = self.url
                    members = self._members.get(group)
                    if url is not None and members:
                        url = f"{url.rstrip('/')}/stream?streams={'/'.join(members)}"
                    writer = RecordingWriter(path, market=self.market, url=url, exclusive=True,
                                             group=group, day=utc_day(day))
                break
            except FileExistsError:
                part += 1
        self._writers[group] = writer
        self.paths.append(path)
        self.stats.files += 1
        self.stats.open_files = len(self._writers)
        if self.on_open is not None:
            symbol = group.upper() if group.isalnum() else None
            self.on_open(group, symbol)

    def _close(self, group: str) -> None:
        writer = self._writers.pop(group, None)
        if writer is not None:
            writer.close()
        self.stats.open_files = len(self._writers)


def _streams_named(detail: Mapping[str, Any]) -> list[str]:
    """The streams a marker's detail names (``stream`` and ``streams``)."""
    named: list[str] = []
    stream = detail.get("stream")
    if isinstance(stream, str) and stream:
        named.append(stream)
    streams = detail.get("streams")
    if isinstance(streams, Iterable) and not isinstance(streams, (str, bytes)):
        named.extend(s for s in streams if isinstance(s, str) and s)
    return named
