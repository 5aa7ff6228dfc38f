"""Replay through the simulator, over real loopback sockets: pacing, ordering, backpressure, REST snapshots.

Recordings here are small synthetic ones written with the project's own writer, for a symbol the engine
does not list (XYZUSDT), so every frame a client sees comes from the replay. The full real capture is
replayed in tests/realdata/test_replay_recordings.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from binance_ws.recording import RecordingError, RecordingWriter
from binance_ws.sim import Simulator
from binance_ws.sim.replay import MIN_SLEEP_S, Pacer, Replay, ReplayError

TRADE = "xyzusdt@trade"
BOOK = "xyzusdt@bookTicker"
T0_NS = 1_723_161_254_000_000_000
TIMEOUT_S = 10.0


def _trade(i: int) -> bytes:
    return orjson.dumps({"e": "trade", "E": 1723161255000 + i, "s": "XYZUSDT", "t": i, "p": "1.00000000",
                         "q": f"{i}.00000000", "T": 1723161255000 + i, "m": i % 2 == 0, "M": True})


def _book(i: int) -> bytes:
    return orjson.dumps({"u": 1000 + i, "s": "XYZUSDT", "b": "0.99000000", "B": "1.00000000",
                         "a": "1.01000000", "A": f"{i}.00000000"})


def _snapshot(last_update_id: int, levels: int) -> bytes:
    return orjson.dumps({"lastUpdateId": last_update_id,
                         "bids": [[f"{1 - i / 100:.8f}", "1.00000000"] for i in range(1, levels + 1)],
                         "asks": [[f"{1 + i / 100:.8f}", "1.00000000"] for i in range(1, levels + 1)]})


def _record(path: Path, count: int, gap_ms: float = 1.0, *,
            url: str | None = None) -> list[tuple[str, bytes]]:
    """Write ``count`` messages alternating trade / bookTicker, ``gap_ms`` apart; return them in order."""
    sent: list[tuple[str, bytes]] = []
    with RecordingWriter(path, market="spot", url=url) as w:
        for i in range(count):
            stream, payload = (TRADE, _trade(i)) if i % 2 == 0 else (BOOK, _book(i))
            w.write(T0_NS + int(i * gap_ms * 1e6), stream, payload)
            sent.append((stream, payload))
    return sent


def _combined(stream: str, payload: bytes) -> bytes:
    return b'{"stream":"%s","data":%s}' % (stream.encode(), payload)


class _Client(WSListener):
    """Collects text frames with their arrival time (monotonic)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.arrivals: list[float] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.frames.append(frame.get_payload_as_bytes())
            self.arrivals.append(time.monotonic())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()


async def _connect(url: str) -> tuple[WSTransport, _Client]:
    transport, client = await ws_connect(_Client, url)
    assert isinstance(client, _Client)
    return transport, client


async def _until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _sim(replay: Replay) -> Simulator:
    # No synthetic flow: only replayed frames on the wire.
    return Simulator(replay=replay, flow_rate=0.0)


async def test_speed_zero_delivers_every_message_in_order(tmp_path: Path) -> None:
    # Arrange
    sent = _record(tmp_path / "r.zst", 500)
    replay = Replay(tmp_path / "r.zst", speed=0)
    async with _sim(replay) as sim:
        # Act
        transport, client = await _connect(f"{sim.stream_url}/stream?streams={TRADE}/{BOOK}")
        await _until(lambda: len(client.frames) >= len(sent), "every replayed message")
        await asyncio.wait_for(replay.done.wait(), TIMEOUT_S)
        transport.disconnect()
    # Assert
    assert client.frames == [_combined(s, p) for s, p in sent]
    assert (replay.sent, replay.passes, replay.messages) == (500, 1, 500)


async def test_raw_connection_gets_the_recorded_bytes_unwrapped(tmp_path: Path) -> None:
    sent = _record(tmp_path / "r.gz", 100)
    replay = Replay(tmp_path / "r.gz", speed=0)
    async with _sim(replay) as sim:
        transport, client = await _connect(f"{sim.stream_url}/ws/{TRADE}")
        await asyncio.wait_for(replay.done.wait(), TIMEOUT_S)
        await _until(lambda: len(client.frames) >= 50, "the trade messages")
        transport.disconnect()
    assert client.frames == [p for s, p in sent if s == TRADE]


async def test_microsecond_client_gets_times_converted(tmp_path: Path) -> None:
    sent = _record(tmp_path / "r", 20)
    replay = Replay(tmp_path / "r", speed=0)
    async with _sim(replay) as sim:
        transport, client = await _connect(f"{sim.stream_url}/ws/{TRADE}?timeUnit=MICROSECOND")
        await _until(lambda: len(client.frames) >= 10, "the trade messages")
        transport.disconnect()
    recorded = [orjson.loads(p) for s, p in sent if s == TRADE]
    received = [orjson.loads(f) for f in client.frames]
    assert [(m["E"], m["T"], m["t"]) for m in received] == [
        (r["E"] * 1000, r["T"] * 1000, r["t"]) for r in recorded
    ]


@pytest.mark.parametrize(("speed", "span_s"), [(1.0, 0.6), (4.0, 1.6)])
async def test_paced_replay_follows_the_recorded_clock_divided_by_speed(tmp_path: Path, speed: float,
                                                                         span_s: float) -> None:
    # Arrange: 41 messages spread evenly over span_s of recorded time
    count = 41
    _record(tmp_path / "r.zst", count, gap_ms=span_s * 1000 / (count - 1))
    replay = Replay(tmp_path / "r.zst", speed=speed)
    async with _sim(replay) as sim:
        # Act
        transport, client = await _connect(f"{sim.stream_url}/stream?streams={TRADE}/{BOOK}")
        await asyncio.wait_for(replay.done.wait(), TIMEOUT_S)
        await _until(lambda: len(client.frames) >= count, "every message")
        transport.disconnect()
    # Assert: never ahead of the schedule (a lower bound holds however loaded the machine is; the slack
    # covers a first frame that reached the client late) ...
    expected = span_s / speed
    took = client.arrivals[-1] - client.arrivals[0]
    assert took >= expected - 0.1
    # ... and with speed > 1 clearly quicker than the recorded pace.
    if speed > 1:
        assert took < span_s


async def test_replay_waits_for_the_first_subscriber(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    sent = _record(tmp_path / "r", 50)
    replay = Replay(tmp_path / "r", speed=0)
    async with _sim(replay) as sim:
        # Give an eager replay every chance to run into the void first.
        for _ in range(3):
            async with http.get(f"{sim.rest_url}/api/v3/ping") as resp:
                assert resp.status == 200
        await asyncio.sleep(0.05)
        assert replay.sent == 0
        transport, client = await _connect(f"{sim.stream_url}/stream?streams={TRADE}/{BOOK}")
        await _until(lambda: len(client.frames) >= 50, "every message")
        transport.disconnect()
    assert client.frames[0] == _combined(*sent[0])


async def test_without_waiting_the_replay_runs_with_nobody_listening(tmp_path: Path) -> None:
    _record(tmp_path / "r", 50)
    replay = Replay(tmp_path / "r", speed=0, wait_for_subscriber=False)
    async with _sim(replay) as sim:
        await asyncio.wait_for(replay.done.wait(), TIMEOUT_S)
        assert sim.hub.subscribed_streams() == []
    assert replay.sent == 50


async def test_loop_starts_over_in_the_same_order(tmp_path: Path) -> None:
    sent = _record(tmp_path / "r", 6)
    replay = Replay(tmp_path / "r", speed=0, loop=True)
    async with _sim(replay) as sim:
        transport, client = await _connect(f"{sim.stream_url}/stream?streams={TRADE}/{BOOK}")
        await _until(lambda: len(client.frames) >= 3 * len(sent), "three passes")
        transport.disconnect()
        assert replay.passes >= 2
        # With nobody left listening, no new pass starts (the one under way may finish).
        await _until(lambda: not sim.hub.subscribed_streams(), "the client to be gone")
        passes = replay.passes
        await asyncio.sleep(0.1)
        assert replay.passes <= passes + 1
        assert not replay.done.is_set()
    assert client.frames[: 3 * len(sent)] == [_combined(s, p) for s, p in sent] * 3


async def test_speed_zero_waits_for_a_slow_reader_and_drops_nothing(tmp_path: Path) -> None:
    # Arrange: ~16 MB of messages, far more than socket buffers hold
    path = tmp_path / "big.zst"
    filler = "x" * 800
    count = 20_000
    with RecordingWriter(path) as w:
        for i in range(count):
            w.write(T0_NS + i, TRADE, orjson.dumps({"e": "trade", "t": i, "s": "XYZUSDT", "pad": filler}))
    replay = Replay(path, speed=0)
    async with _sim(replay) as sim:
        transport, client = await _connect(f"{sim.stream_url}/ws/{TRADE}")
        # Act: stop reading; the replay must stall instead of queueing the rest or dropping it
        transport.underlying_transport.pause_reading()
        await _until(lambda: replay.sent > 0, "the replay to start")
        stalled_at = -1
        while stalled_at != replay.sent:  # settle: no progress over one interval
            stalled_at = replay.sent
            await asyncio.sleep(0.2)
        assert stalled_at < count
        transport.underlying_transport.resume_reading()
        await _until(lambda: len(client.frames) >= count, "every message after resuming", timeout=30)
        transport.disconnect()
    # Assert
    assert [orjson.loads(f)["t"] for f in client.frames] == list(range(count))


async def test_rest_depth_serves_the_snapshot_the_replay_has_reached(tmp_path: Path,
                                                                     http: aiohttp.ClientSession) -> None:
    # Arrange: snapshot 1, messages, snapshot 2, messages
    path = tmp_path / "r.gz"
    with RecordingWriter(path) as w:
        w.write_snapshot(T0_NS, "XYZUSDT", _snapshot(999, 10))
        w.write(T0_NS + 1, TRADE, _trade(0))
        w.write_snapshot(T0_NS + 2, "XYZUSDT", _snapshot(1005, 10))
        w.write(T0_NS + 3, TRADE, _trade(1))
    replay = Replay(path, speed=0)
    url_template = "{}/api/v3/depth?symbol=XYZUSDT&limit={}"
    async with _sim(replay) as sim:
        # Act / Assert: before the replay starts, the first snapshot, cut to the limit
        async with http.get(url_template.format(sim.rest_url, 5)) as resp:
            assert resp.status == 200
            first = await resp.json()
        assert first == {**orjson.loads(_snapshot(999, 5))}
        transport, _ = await _connect(f"{sim.stream_url}/ws/{TRADE}")
        await asyncio.wait_for(replay.done.wait(), TIMEOUT_S)
        async with http.get(url_template.format(sim.rest_url, 100)) as resp:
            second = await resp.json()
        transport.disconnect()
    assert second == orjson.loads(_snapshot(1005, 10))


async def test_replayed_streams_of_unlisted_symbols_validate(tmp_path: Path) -> None:
    # The connect URL lists a stream that carried no message: still a stream of this recording.
    _record(tmp_path / "r", 4, url="wss://stream.binance.com:9443/stream?streams=xyzusdt@trade/xyzusdt@depth@100ms")
    replay = Replay(tmp_path / "r", speed=0)
    async with _sim(replay) as sim:
        transport, client = await _connect(f"{sim.stream_url}/ws")
        transport.send(WSMsgType.TEXT, orjson.dumps(
            {"method": "SUBSCRIBE", "params": [TRADE, "xyzusdt@depth@100ms"], "id": 1}))
        transport.send(WSMsgType.TEXT, orjson.dumps(
            {"method": "SUBSCRIBE", "params": ["qqqusdt@trade"], "id": 2}))
        await _until(lambda: len(client.frames) >= 2 + 2, "both answers and the trades")
        transport.disconnect()
    answers = {m["id"]: m for m in map(orjson.loads, client.frames) if "id" in m}
    assert answers[1] == {"result": None, "id": 1}
    assert "error" in answers[2]
    assert sim.stream_exists(TRADE) and sim.stream_exists("xyzusdt@depth@100ms")
    assert "XYZUSDT" in sim.symbols()


def test_replay_describes_its_recording(tmp_path: Path) -> None:
    path = tmp_path / "r"
    _record(path, 11, gap_ms=100.0, url="wss://stream.binance.com:9443/ws/xyzusdt@trade/xyzusdt@kline_1m")
    replay = Replay(path)
    assert replay.symbols == ["XYZUSDT"]
    assert replay.streams == {TRADE, BOOK, "xyzusdt@kline_1m"}
    assert replay.messages == 11
    assert replay.duration_s == pytest.approx(1.0)
    assert replay.snapshot("XYZUSDT", 5) is None


def test_replay_refuses_bad_arguments(tmp_path: Path) -> None:
    _record(tmp_path / "r", 2)
    with pytest.raises(ValueError, match="speed"):
        Replay(tmp_path / "r", speed=-1)
    (tmp_path / "junk").write_text("not a recording\n")
    with pytest.raises(RecordingError):
        Replay(tmp_path / "junk")
    with pytest.raises(OSError):
        Replay(tmp_path / "missing.gz")


# -- the pacing schedule, without sleeping ------------------------------------------------------------
@given(gaps_ns=st.lists(st.integers(0, 3_000_000_000), min_size=1, max_size=60),
       speed=st.floats(0.01, 1000.0),
       overshoots=st.lists(st.floats(0.0, 0.05), min_size=60, max_size=60))
def test_pacer_sends_nothing_early_and_lateness_never_accumulates(gaps_ns: list[int], speed: float,
                                                                 overshoots: list[float]) -> None:
    # A sleeper that always wakes up late by up to 50 ms: with a relative schedule the lateness would
    # add up over the messages; with the absolute one it stays within one overshoot.
    pacer = Pacer(speed)
    now = start = 1_000.0
    first_ns = T0_NS + gaps_ns[0]
    recv_ns = T0_NS
    for gap, overshoot in zip(gaps_ns, overshoots, strict=False):
        recv_ns += gap
        wait = pacer.wait(recv_ns, now)
        assert wait == 0.0 or wait >= MIN_SLEEP_S
        if wait:
            now += wait + overshoot
        due = start + (recv_ns - first_ns) / 1e9 / speed
        assert now >= due - MIN_SLEEP_S - 1e-6
        assert now - due <= max(overshoots) + 1e-6


def test_pacer_sends_at_once_when_recorded_time_goes_back() -> None:
    pacer = Pacer(1.0)
    assert pacer.wait(T0_NS, 5.0) == 0.0
    assert pacer.wait(T0_NS + 2_000_000_000, 5.0) == pytest.approx(2.0)
    assert pacer.wait(T0_NS - 1_000_000_000, 7.5) == 0.0


@pytest.mark.parametrize("speed", [0.0, -1.0])
def test_pacer_needs_a_positive_speed(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        Pacer(speed)


async def test_a_replay_that_fails_part_way_is_loud(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r"
    _record(path, 10)
    replay = Replay(path, speed=0)
    with path.open("ab") as f:  # the file goes bad after it was opened (a capture still being written)
        f.write(b"this is not a record\n")
    sim = await _sim(replay).start()
    try:
        transport, client = await _connect(f"{sim.stream_url}/stream?streams={TRADE}/{BOOK}")
        await asyncio.wait_for(replay.failed.wait(), TIMEOUT_S)
        await _until(lambda: len(client.frames) >= 10, "the messages before the bad line")
        transport.disconnect()
    finally:
        with pytest.raises(ReplayError, match=r"replay of .* failed after 10 messages: RecordingError"):
            await sim.stop()
    assert isinstance(replay.error, ReplayError) and isinstance(replay.error.__cause__, RecordingError)
    errors = [r for r in caplog.records if r.levelname == "ERROR" and r.name == "binance_ws.sim.replay"]
    assert len(errors) == 1 and "RecordingError" in errors[0].getMessage()


def _cli_sim(*args: str) -> list[str]:
    return [sys.executable, "-m", "binance_ws.cli", "sim", "--stream-port", "0", "--rest-port", "0", *args]


def test_cli_sim_reports_a_bad_recording_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("not a recording\n")
    proc = subprocess.run(_cli_sim("--replay", str(tmp_path / "junk")), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


async def test_cli_sim_exits_with_one_line_when_the_replay_fails(tmp_path: Path) -> None:
    path = tmp_path / "r"
    _record(path, 10)
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(*_cli_sim("--replay", str(path), "--speed", "0"),
                                                stdout=pipe, stderr=pipe)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("streams: ws://"), line
        url = line.split()[1].split("/ws/")[0]
        with path.open("ab") as f:
            f.write(b"this is not a record\n")
        transport, _client = await _connect(f"{url}/stream?streams={TRADE}/{BOOK}")
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        transport.disconnect()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1
    text = err.decode()
    assert "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("error: replay of ") and "RecordingError" in last
    assert any(" ERROR " in line and "replay of" in line for line in text.splitlines())
