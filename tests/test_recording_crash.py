"""The recording format under a writer that dies: files cut anywhere read up to their last complete line;
marker lines; the hftbacktest writer read back by the hftbacktest reader."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from binance_ws.recording import (
    FORMAT_HFTBACKTEST,
    KIND_MARKER,
    KIND_SNAPSHOT,
    KIND_STREAM,
    HftbacktestWriter,
    Record,
    RecordingWriter,
    detect_format,
    read_recording,
)

TRADE = b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":%d,"p":"61837.63000000","q":"0.02000000"}'
SNAP = b'{"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"]],"asks":[]}'


def _write(path: Path, frames: int, per_frame: int) -> list[Record]:
    """``frames`` flushes of ``per_frame`` trades each; the records written, in order."""
    written = []
    with RecordingWriter(path, market="spot") as w:
        for f in range(frames):
            for i in range(per_frame):
                n = f * per_frame + i
                w.write(1_000 + n, "btcusdt@trade", TRADE % n)
                written.append(Record(1_000 + n, "btcusdt@trade", TRADE % n, KIND_STREAM))
            w.flush()
    return written


@pytest.mark.parametrize("suffix", ["zst", "gz", "rec"])
def test_a_file_cut_anywhere_reads_every_complete_line_before_the_cut(tmp_path: Path, suffix: str) -> None:
    # Arrange: 4 flushes of 5 lines, then the file cut at many points, as a killed writer leaves it
    whole = tmp_path / f"whole.{suffix}"
    written = _write(whole, 4, 5)
    data = whole.read_bytes()
    with RecordingWriter(tmp_path / f"h.{suffix}", market="spot") as header_only:
        pass
    header_end = len(header_only.path.read_bytes())
    seen_counts = set()
    for cut in range(header_end, len(data) + 1, max(1, len(data) // 60)):
        part = tmp_path / f"cut.{suffix}"
        part.write_bytes(data[:cut])
        # Act
        got = list(read_recording(part))
        # Assert: a prefix of what was written, never a partial line, never an error
        assert got == written[:len(got)], cut
        seen_counts.add(len(got))
    assert list(read_recording(whole)) == written
    assert len(seen_counts) >= 3  # cuts fell in several frames


def test_compressed_flushes_are_independent_frames(tmp_path: Path) -> None:
    path = tmp_path / "r.zst"
    _write(path, 3, 2)
    # header frame + one frame per flush
    assert path.read_bytes().count(b"\x28\xb5\x2f\xfd") == 4


def test_the_header_is_on_disk_before_any_record(tmp_path: Path) -> None:
    path = tmp_path / "r.zst"
    w = RecordingWriter(path, market="spot")
    w.write(1, "btcusdt@trade", TRADE % 1)  # buffered, not flushed
    # a process killed now leaves a file that reads as an empty recording
    assert list(read_recording(path)) == []
    w.close()
    assert len(list(read_recording(path))) == 1


def test_exclusive_writer_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "r.zst"
    _write(path, 1, 1)
    with pytest.raises(FileExistsError):
        RecordingWriter(path, exclusive=True)
    assert len(list(read_recording(path))) == 1


def test_markers_are_skipped_unless_asked_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.zst"
    with RecordingWriter(path) as w:
        w.write(1, "btcusdt@trade", TRADE % 1)
        w.write_marker(2, "gap", {"e": "error", "type": "gap", "stream": "btcusdt@trade", "missing": 3})
        w.write_snapshot(3, "btcusdt", SNAP)
        w.write_marker(4, "link_down", {"streams": ["btcusdt@trade"]})
    plain = list(read_recording(path))
    assert [r.kind for r in plain] == [KIND_STREAM, KIND_SNAPSHOT]
    every = list(read_recording(path, markers=True))
    assert [(r.kind, r.stream) for r in every] == [(KIND_STREAM, "btcusdt@trade"), (KIND_MARKER, "gap"),
                                                   (KIND_SNAPSHOT, None), (KIND_MARKER, "link_down")]
    assert orjson.loads(every[1].payload)["missing"] == 3
    # a copy through write_all keeps the markers
    copy = tmp_path / "copy.zst"
    with RecordingWriter(copy) as w:
        w.write_all(every)
    assert list(read_recording(copy, markers=True)) == every


def test_marker_lines_are_plain_lines_an_older_reader_takes_as_a_stream(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    with RecordingWriter(path) as w:
        w.write_marker(7, "link_up", {"streams": ["a@trade"]})
    line = path.read_bytes().splitlines()[1]
    assert line == b'7 marker:link_up {"streams":["a@trade"]}'
    with RecordingWriter(tmp_path / "x") as w, pytest.raises(ValueError, match="marker"):
        w.write(1, "marker:gap", b"{}")


@pytest.mark.parametrize("suffix", ["hftbacktest.zst", "hftbacktest.gz", "hftbacktest"])
def test_hftbacktest_writer_reads_back_with_the_hftbacktest_reader(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"btcusdt_20240808.{suffix}"
    with HftbacktestWriter(path) as w:
        w.write_snapshot(1, "BTCUSDT", SNAP)
        w.write(2, "btcusdt@trade", TRADE % 2)
        w.write_marker(3, "gap", {"stream": "btcusdt@trade"})
        w.write(4, "btcusdt@depth@100ms", b'{"e":"depthUpdate","U":1,"u":2,"b":[],"a":[]}')
    assert w.markers_dropped == 1
    assert detect_format(path) == FORMAT_HFTBACKTEST
    assert list(read_recording(path)) == [
        Record(1, None, SNAP, KIND_SNAPSHOT, "BTCUSDT"),
        Record(2, "btcusdt@trade", TRADE % 2, KIND_STREAM),
        Record(4, "btcusdt@depth@100ms", b'{"e":"depthUpdate","U":1,"u":2,"b":[],"a":[]}', KIND_STREAM),
    ]


def test_hftbacktest_file_cut_mid_line_reads_up_to_it(tmp_path: Path) -> None:
    path = tmp_path / "x.hftbacktest"
    with HftbacktestWriter(path) as w:
        for i in range(3):
            w.write(i, "btcusdt@trade", TRADE % i)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    assert [r.recv_ns for r in read_recording(path)] == [0, 1]
