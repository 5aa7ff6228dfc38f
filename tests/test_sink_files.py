"""The file sink: one file per symbol and UTC day, rotated at midnight by a pure policy (fake clock),
markers and snapshots filed beside the messages, nothing ever overwritten."""

from __future__ import annotations

import calendar
from pathlib import Path

import orjson
import pytest

from binance_ws.recording import KIND_MARKER, KIND_SNAPSHOT, read_header, read_recording
from binance_ws.sinks.base import Entry, Marker, Sink
from binance_ws.sinks.files import Close, FileSink, Open, RotationPolicy, stream_group

S = 1_000_000_000
#: 2026-12-05 00:00:00 UTC in ns.
MIDNIGHT = calendar.timegm((2026, 12, 5, 0, 0, 0)) * S
TRADE = b'{"e":"trade","s":"BTCUSDT","t":%d}'


class FakeClock:
    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


def test_policy_opens_once_then_rotates_exactly_at_utc_midnight() -> None:
    policy = RotationPolicy()
    day = MIDNIGHT // (86_400 * S)
    assert policy.line("btcusdt", MIDNIGHT - 10 * S) == [Open("btcusdt", day - 1)]
    assert policy.line("btcusdt", MIDNIGHT - 1) == []
    assert policy.line("btcusdt", MIDNIGHT) == [Close("btcusdt", day - 1), Open("btcusdt", day)]
    assert policy.line("btcusdt", MIDNIGHT + 5 * S) == []
    # a clock stepped back across midnight stays in today's file
    assert policy.line("btcusdt", MIDNIGHT - 2 * S) == []
    assert policy.day("btcusdt") == day


def test_policy_tick_closes_groups_silent_past_midnight_only() -> None:
    policy = RotationPolicy()
    day = MIDNIGHT // (86_400 * S)
    policy.line("btcusdt", MIDNIGHT - 5 * S)
    policy.line("ethusdt", MIDNIGHT - 5 * S)
    assert policy.tick(MIDNIGHT - 1) == []
    policy.line("ethusdt", MIDNIGHT + 1)  # rotated by its own line
    assert policy.tick(MIDNIGHT + 2 * S) == [Close("btcusdt", day - 1)]
    assert policy.day("btcusdt") is None
    assert policy.line("btcusdt", MIDNIGHT + 3 * S) == [Open("btcusdt", day)]
    assert sorted(policy.close_all()) == [Close("btcusdt", day), Close("ethusdt", day)]


@pytest.mark.parametrize(("stream", "group"), [("btcusdt@trade", "btcusdt"),
                                               ("btcusdt@depth@100ms", "btcusdt"),
                                               ("!miniTicker@arr", "all_miniTicker_arr")])
def test_stream_group(stream: str, group: str) -> None:
    assert stream_group(stream) == group


async def test_sink_rotates_files_at_midnight_and_each_day_reads_alone(tmp_path: Path) -> None:
    # Arrange
    clock = FakeClock(MIDNIGHT - 3 * S)
    opened: list[tuple[str, str | None]] = []
    sink = FileSink(tmp_path, market="spot", url="ws://127.0.0.1:1",
                    streams=["btcusdt@trade", "btcusdt@bookTicker", "ethusdt@trade"],
                    on_open=lambda g, s: opened.append((g, s)), clock=clock)
    _: Sink = sink  # the Sink protocol
    # Act: lines either side of midnight; ethusdt falls silent before it
    await sink.write([Entry(MIDNIGHT - 2 * S, "btcusdt@trade", TRADE % 1),
                      Entry(MIDNIGHT - 2 * S, "ethusdt@trade", b"{}")])
    await sink.write([Entry(MIDNIGHT - 1, "btcusdt@trade", TRADE % 2)])
    await sink.write([Entry(MIDNIGHT, "btcusdt@trade", TRADE % 3)])
    clock.ns = MIDNIGHT + 2 * S
    sink.tick()
    assert sink.stats.open_files == 1  # ethusdt's day ended and closed without a line
    await sink.close()
    # Assert
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["spot_btcusdt_20261204.rec.zst", "spot_btcusdt_20261205.rec.zst",
                     "spot_ethusdt_20261204.rec.zst"]
    before = [r.payload for r in read_recording(tmp_path / names[0])]
    after = [r.payload for r in read_recording(tmp_path / names[1])]
    assert before == [TRADE % 1, TRADE % 2] and after == [TRADE % 3]
    header = read_header(tmp_path / names[1])
    assert header.market == "spot" and header.url_streams() == ["btcusdt@trade", "btcusdt@bookTicker"]
    assert header.meta == {"group": "btcusdt", "day": "20261205"}
    assert opened == [("btcusdt", "BTCUSDT"), ("ethusdt", "ETHUSDT"), ("btcusdt", "BTCUSDT")]
    assert sink.stats.files == 3 and sink.stats.messages == 4


async def test_sink_files_snapshots_and_markers_beside_their_streams(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, market="spot", clock=FakeClock(MIDNIGHT))
    await sink.write([Entry(MIDNIGHT + 1, "btcusdt@depth@100ms", b'{"U":1,"u":2}'),
                      Entry(MIDNIGHT + 1, "ethusdt@trade", TRADE % 1)])
    await sink.mark(Marker(MIDNIGHT + 2, "snapshot", {"symbol": "BTCUSDT", "data": b'{"lastUpdateId":2}'}))
    await sink.mark(Marker(MIDNIGHT + 3, "gap", {"e": "error", "type": "gap", "stream": "ethusdt@trade"}))
    await sink.mark(Marker(MIDNIGHT + 4, "link_up", {"streams": ["btcusdt@depth@100ms"]}))
    await sink.mark(Marker(MIDNIGHT + 5, "quiet", {"e": "error"}))  # names no stream: every file
    await sink.close()
    btc = list(read_recording(tmp_path / "spot_btcusdt_20261205.rec.zst", markers=True))
    eth = list(read_recording(tmp_path / "spot_ethusdt_20261205.rec.zst", markers=True))
    assert [(r.kind, r.stream or r.symbol) for r in btc] == [
        ("stream", "btcusdt@depth@100ms"), (KIND_SNAPSHOT, "BTCUSDT"), (KIND_MARKER, "link_up"),
        (KIND_MARKER, "quiet")]
    assert [(r.kind, r.stream) for r in eth] == [("stream", "ethusdt@trade"), (KIND_MARKER, "gap"),
                                                 (KIND_MARKER, "quiet")]
    assert orjson.loads(eth[1].payload)["stream"] == "ethusdt@trade"
    assert (sink.stats.snapshots, sink.stats.gaps, sink.stats.reconnects) == (1, 1, 1)


async def test_a_restarted_sink_never_overwrites_the_days_file(tmp_path: Path) -> None:
    for run in range(3):
        sink = FileSink(tmp_path, market="spot", clock=FakeClock(MIDNIGHT))
        await sink.write([Entry(MIDNIGHT + run, "btcusdt@trade", TRADE % run)])
        await sink.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["spot_btcusdt_20261205.1.rec.zst", "spot_btcusdt_20261205.2.rec.zst",
                     "spot_btcusdt_20261205.rec.zst"]
    assert [r.payload for r in read_recording(tmp_path / names[2])] == [TRADE % 0]


async def test_hftbacktest_format_and_flush_interval(tmp_path: Path) -> None:
    clock = FakeClock(MIDNIGHT)
    sink = FileSink(tmp_path, market="spot", format="hftbacktest", flush_interval_s=1.0, clock=clock)
    await sink.write([Entry(MIDNIGHT + 1, "btcusdt@trade", TRADE % 1)])
    path = tmp_path / "spot_btcusdt_20261205.hftbacktest.zst"
    assert list(read_recording(path)) == []  # buffered: under 64 KiB and under a second
    await sink.write([Entry(MIDNIGHT + S, "btcusdt@trade", TRADE % 2)])  # a second later: flushed
    assert [r.payload for r in read_recording(path)] == [TRADE % 1, TRADE % 2]
    await sink.mark(Marker(MIDNIGHT + S, "gap", {"stream": "btcusdt@trade"}))
    await sink.close()
    assert [r.stream for r in read_recording(path)] == ["btcusdt@trade", "btcusdt@trade"]


def test_sink_refuses_unknown_format_and_compression(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        FileSink(tmp_path, market="spot", format="csv")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compression"):
        FileSink(tmp_path, market="spot", compression="bz2")
