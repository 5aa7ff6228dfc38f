"""``binance-ws record`` / ``replay`` and the Recorder, with real processes and sockets.

The acceptance run (benchmarks/record_soak.py in quick mode): a ``binance-ws sim`` of 20 symbols, a
``binance-ws record`` of their trade, depth@100ms and bookTicker streams SIGKILLed part-way and started
again; every file reads back, trade ids run on in every file, a book rebuilt from one file alone agrees
with its bookTickers, and ``binance-ws replay`` of that file recorded again gives the same bytes.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from benchmarks.record_soak import RebuiltBook, RecordSoakOptions, run
from benchmarks.record_soak import rebuild as _rebuild
from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.recorder import Recorder
from binance_ws.recording import FORMAT_HFTBACKTEST, KIND_MARKER, KIND_SNAPSHOT, detect_format, read_recording
from binance_ws.sim import Simulator
from binance_ws.sinks.files import FileSink

TIMEOUT_S = 30.0


@pytest.mark.slow
def test_record_killed_once_reads_back_replays_byte_for_byte_and_rebuilds_books(tmp_path: Path) -> None:
    report = run(RecordSoakOptions.quick(), tmp_path)
    print(report)  # shown if an assertion fails
    assert report["second_recorder_exit"] == 0
    assert report["files_of_killed_run"] > 0 and report["files"] > report["files_of_killed_run"]
    assert report["files_read_back"] == report["files"]
    assert report["messages"] > 200 and report["trades"] > 20
    assert report["silent_holes"] == 0
    # A file opened just before the kill (a quiet symbol's first diff) may lose its snapshot with it.
    assert report["files_with_diffs_and_a_snapshot"] >= 0.8 * report["files_with_diffs"] > 0
    assert report["book_synced"] >= 1 and report["book_diffs_applied"] > 20
    assert report["book_tickers_compared"] > 5
    assert report["book_disagreements"] == 0, report["book_disagreement_examples"]
    assert report["original_messages"] > 20
    assert report["byte_for_byte"], (report["replayed_messages"], report["original_messages"])
    assert report["recorder_exit"] == 0


def test_rebuilt_book_notices_a_ticker_that_disagrees() -> None:
    # The check the acceptance run relies on can fail.
    book = RebuiltBook()
    book.snapshot({"lastUpdateId": 10, "bids": [["1.0", "2"]], "asks": [["1.1", "3"]]})
    book.diff({"U": 11, "u": 12, "b": [["1.05", "1"]], "a": []})
    book.ticker({"u": 12, "b": "1.05", "B": "1", "a": "1.1", "A": "3"})
    book.ticker({"u": 12, "b": "1.0", "B": "2", "a": "1.1", "A": "3"})
    assert book.compared == 2 and len(book.disagreed) == 1


async def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_recorder_files_link_markers_and_a_fresh_snapshot_after_a_dropped_connection(
        tmp_path: Path) -> None:
    # Arrange: an in-process simulator and recorder (one symbol's diff depth, trades, bookTicker)
    async with Simulator(flow_rate=200.0) as sim, AsyncSocketManager(market=sim.market) as manager:
        names = ["btcusdt@depth@100ms", "btcusdt@trade", "btcusdt@bookTicker"]
        sink = FileSink(tmp_path, market="spot", url=sim.stream_url, streams=names)
        recorder = Recorder(manager, names, sink, snapshot_interval_s=0, snapshot_limit=100)
        task = asyncio.create_task(recorder.run())
        await _until(lambda: recorder.snapshots_taken >= 1 and sink.stats.messages > 20, "recording")
        # Act: the server drops the socket with no close frame
        sim.faults.drop()
        await _until(lambda: sink.stats.reconnects >= 1 and recorder.snapshots_taken >= 2,
                     "the reconnect and its snapshot")
        before = sink.stats.messages
        await _until(lambda: sink.stats.messages > before + 10, "messages after the reconnect")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # Assert
    (path,) = tmp_path.glob("*.zst")
    records = list(read_recording(path, markers=True))
    kinds = [r.stream if r.kind == KIND_MARKER else r.kind for r in records]
    assert kinds.count(KIND_SNAPSHOT) >= 2
    down, up = kinds.index("link_down"), kinds.index("link_up")
    assert down < up
    assert KIND_SNAPSHOT in kinds[up:]  # a fresh snapshot after the reconnect
    assert set(orjson.loads(records[down].payload)["streams"]) == set(names)
    assert sink.stats.open_files == 0  # closed on the way out


# -- the command line -----------------------------------------------------------------------------
def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "binance_ws.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _one_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("args", "words"), [
    (["BTCUSDT@trade"], ["lowercase", "btcusdt@trade"]),
    (["btcusdt@trade", "--market", "moon"], ["--market", "usdm"]),
    (["btcusdt@trade", "--format", "csv"], ["--format", "hftbacktest"]),
    (["btcusdt@trade", "--compress", "bz2"], ["--compress"]),
    (["btcusdt@trade", "--sim", "--endpoint", "ws://127.0.0.1:1"], ["--sim", "--endpoint"]),
    (["btcusdt@trade", "--sim", "--testnet"], ["--sim", "--testnet"]),
    (["btcusdt@trade", "--rest", "http://127.0.0.1:1"], ["--rest", "--endpoint"]),
    (["btcusdt@depth@100ms", "--endpoint", "ws://127.0.0.1:1"], ["--rest"]),
    (["btcusdt@trade", "--endpoint", "ws://127.0.0.1:1", "--rest", "ws://x"], ["--rest"]),
    (["btcusdt@trade", "--snapshot-limit", "6000"], ["--snapshot-limit", "5000"]),
    (["btcusdt@trade", "--duration", "-1"], ["--duration"]),
])
def test_record_refuses_bad_input_in_one_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    _one_line(_cli("record", *args, "--out", str(tmp_path / "out")), 2, *words)
    assert not any(tmp_path.glob("out/*.zst"))


def test_record_refuses_an_out_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    _one_line(_cli("record", "btcusdt@trade", "--sim", "--out", str(tmp_path / "file")), 2, "--out")


def test_record_gives_up_on_a_server_that_is_not_there(tmp_path: Path) -> None:
    port = _closed_port()
    _one_line(_cli("record", "btcusdt@trade", "--endpoint", f"ws://127.0.0.1:{port}", "--out",
                   str(tmp_path)), 1, f"127.0.0.1:{port}", "refused")


def test_record_sim_for_a_while_in_hftbacktest_format(tmp_path: Path) -> None:
    proc = _cli("record", "btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@trade", "--sim", "--out",
                str(tmp_path), "--format", "hftbacktest", "--duration", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.endswith(".hftbacktest.zst") for f in files), files
    btc = tmp_path / next(f for f in files if "btcusdt" in f)
    assert detect_format(btc) == FORMAT_HFTBACKTEST
    records = list(read_recording(btc))
    assert {r.stream for r in records} == {None, "btcusdt@trade", "btcusdt@depth@100ms"}
    assert {r.symbol for r in records if r.kind == KIND_SNAPSHOT} == {"BTCUSDT"}


def test_replay_refuses_a_missing_file_and_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    _one_line(_cli("replay", str(tmp_path / "nope")), 2, "no such file")
    (tmp_path / "junk").write_text("hello\n")
    proc = _cli("replay", str(tmp_path / "junk"), "--stream-port", "0", "--rest-port", "0")
    _one_line(proc, 1, "not a recording")
    _one_line(_cli("replay", str(tmp_path / "junk"), "--speed", "-1"), 2, "--speed")
    _one_line(_cli("replay", str(tmp_path / "junk"), "--rest-port", "70000"), 2, "--rest-port")


def test_record_on_a_terminal_shows_a_live_status_line(tmp_path: Path) -> None:
    import os
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "binance_ws.cli", "record", "btcusdt@trade", "btcusdt@depth@100ms",
             "--sim", "--out", str(tmp_path), "--duration", "2"],
            stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        shown = b""
        while True:  # read as it is written, so the terminal's buffer never fills
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the recorder has exited and everything it wrote was read
                break
            if not chunk:
                break
            shown += chunk
        proc.wait(60)
    finally:
        os.close(master)
    assert proc.returncode == 0
    text = shown.decode(errors="replace")
    assert "msg/s" in text and "files 1/1" in text and "gaps 0" in text and "reconnects 0" in text, text
    assert "Traceback" not in text


async def test_recording_across_utc_midnight_gives_two_files_each_rebuilding_its_book(tmp_path: Path) -> None:
    # Arrange: the recorder's clock (receive times, the sink's ticks) is shifted so that UTC midnight
    # falls 1.5 s into the recording
    day_ns = 86_400 * 1_000_000_000
    midnight = (time.time_ns() // day_ns + 1) * day_ns
    offset = midnight - (time.time_ns() + 1_500_000_000)

    def clock() -> int:
        return time.time_ns() + offset

    async with Simulator(flow_rate=300.0) as sim, AsyncSocketManager(market=sim.market) as manager:
        names = ["btcusdt@depth@100ms", "btcusdt@bookTicker"]
        sink = FileSink(tmp_path, market="spot", url=sim.stream_url, streams=names, clock=clock)
        recorder = Recorder(manager, names, sink, snapshot_interval_s=0, snapshot_limit=1000, clock=clock)
        task = asyncio.create_task(recorder.run())
        # Act
        await _until(lambda: sink.stats.files == 2 and recorder.snapshots_taken >= 2
                     and clock() > midnight + 2_000_000_000, "the second day's file and its snapshot")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # Assert: one file a day, split exactly at midnight, and each rebuilds the book alone
    before, after = sorted(tmp_path.glob("*.zst"))
    assert before.name.endswith(f"{time.strftime('%Y%m%d', time.gmtime(midnight // 10**9 - 1))}.rec.zst")
    assert after.name.endswith(f"{time.strftime('%Y%m%d', time.gmtime(midnight // 10**9))}.rec.zst")
    assert all(r.recv_ns < midnight for r in read_recording(before, markers=True))
    assert all(r.recv_ns >= midnight for r in read_recording(after, markers=True))
    for path in (before, after):
        book = _rebuild(path)
        assert book.synced_times >= 1 and book.applied > 0, path.name
        assert book.disagreed == [], book.disagreed[:3]


async def test_recorder_files_a_gap_marker_and_resnapshots_the_symbol(tmp_path: Path) -> None:
    async with Simulator(flow_rate=300.0) as sim, AsyncSocketManager(market=sim.market) as manager:
        names = ["btcusdt@depth@100ms", "btcusdt@bookTicker"]
        sink = FileSink(tmp_path, market="spot", url=sim.stream_url, streams=names)
        recorder = Recorder(manager, names, sink, snapshot_interval_s=0, snapshot_limit=100)
        task = asyncio.create_task(recorder.run())
        await _until(lambda: recorder.snapshots_taken >= 1 and sink.stats.messages > 10, "recording")
        # Act: the server skips one diff depth message
        sim.faults.skip(1)
        await _until(lambda: sink.stats.gaps >= 1 and recorder.snapshots_taken >= 2, "the gap and a snapshot")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (path,) = tmp_path.glob("*.zst")
    kinds = [r.stream if r.kind == KIND_MARKER else r.kind for r in read_recording(path, markers=True)]
    gap = kinds.index("gap")
    assert KIND_SNAPSHOT in kinds[:gap] and KIND_SNAPSHOT in kinds[gap:]
    book = _rebuild(path)  # resyncs on the marker, from the snapshot after it
    assert book.synced_times >= 2 and book.disagreed == []
