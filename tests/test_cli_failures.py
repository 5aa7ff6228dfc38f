"""Every way ``binance-ws`` fails, as a user meets it: one line on stderr, the documented exit status.

Exit statuses (README, "The command line"): 2 for bad input (a stream name, an option, an --endpoint
URL, a stream the server refuses), 1 when a server cannot be reached or reconnecting gave up (and for
``sim``, when it cannot start: a port in use, a file that is not a recording), 0 after --count messages
or when the reader of stdout goes away.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from binance_ws.sim import Simulator
from binance_ws.sim.replay import Replay

_CLI = [sys.executable, "-m", "binance_ws.cli"]
_DATA = Path(__file__).parent / "data"


def _run(*args: str, columns: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run([*_CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


async def _arun(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    """The command, from a test whose loop runs the simulator (so it must not block that loop)."""
    proc = await asyncio.create_subprocess_exec(*_CLI, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _one_line(stderr: str, failure: bool = True) -> str:
    """The single line a failure prints, with the one prefix every command uses (``failure=False``: an
    error event, which is not a failure); fails the test if there is more (a traceback, a usage block) or
    none."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith("error: ") or not failure, lines[0]
    return lines[0]


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- streams the server refuses: exit 2, one line naming the stream ----------------------------------

@pytest.mark.parametrize("stream", ["foousdt@trade", "btc-usdt@trade"])
async def test_a_stream_the_server_refuses_is_one_line_and_exit_2(sim: Simulator, stream: str) -> None:
    code, out, err = await _arun("tail", stream, "--endpoint", sim.stream_url)
    assert code == 2, err
    line = _one_line(err)
    assert stream in line and "refused" in line and sim.stream_url in line
    assert out == ""


async def test_a_stream_the_replay_does_not_hold_is_one_line_and_exit_2() -> None:
    # The cryptofeed capture holds NKNUSDT's depth, bookTicker, kline_1m and aggTrade, not its trades.
    async with Simulator(replay=Replay(_DATA / "cryptofeed_BINANCE.ws.1.0", speed=0)) as sim:
        code, out, err = await _arun("tail", "nknusdt@trade", "--endpoint", sim.stream_url)
    assert code == 2, err
    assert "refused nknusdt@trade" in _one_line(err)
    assert out == ""


# -- --endpoint: checked before connecting ---------------------------------------------------------

@pytest.mark.parametrize(("endpoint", "fix"), [
    ("127.0.0.1:9443", "try ws://127.0.0.1:9443"),
    ("http://127.0.0.1:9443", "try ws://127.0.0.1:9443"),
    ("https://stream.binance.com:9443", "try wss://stream.binance.com:9443"),
    ("ftp://127.0.0.1:9443", "ws:// or wss://"),
    ("ws://:9443", "names no host"),
    ("ws://127.0.0.1:99999", "port"),
    ("ws://127.0.0.1:9443/ws/btcusdt@trade", "streams as arguments"),
    ("ws://127.0.0.1:9443/stream?streams=btcusdt@trade", "streams as arguments"),
])
def test_a_bad_endpoint_url_is_refused_at_once_with_the_fix(endpoint: str, fix: str) -> None:
    started = time.monotonic()
    proc = _run("tail", "btcusdt@trade", "--endpoint", endpoint)
    assert proc.returncode == 2, proc.stderr
    assert fix in _one_line(proc.stderr)
    assert proc.stdout == ""
    assert time.monotonic() - started < 10  # no connection attempt, let alone retries


@pytest.mark.parametrize("suffix", ["/ws", "/ws/", "/stream"])
async def test_the_urls_sim_prints_work_as_endpoints(sim: Simulator, suffix: str) -> None:
    code, out, err = await _arun("tail", "btcusdt@bookTicker", "--endpoint", sim.stream_url + suffix,
                                 "--count", "2", "--json")
    assert code == 0, err
    assert [orjson.loads(line)["stream"] for line in out.splitlines()] == ["btcusdt@bookTicker"] * 2


# -- servers that cannot be reached: exit 1 in seconds, the host named -----------------------------

def test_nothing_listening_is_one_line_naming_the_host_and_exit_1() -> None:
    port = _free_port()
    started = time.monotonic()
    proc = _run("tail", "btcusdt@trade", "--endpoint", f"ws://127.0.0.1:{port}")
    assert proc.returncode == 1, proc.stderr
    line = _one_line(proc.stderr)
    assert f"127.0.0.1:{port}" in line and "refused" in line
    assert time.monotonic() - started < 15  # not ~27 s of reconnect attempts


def test_an_unknown_host_is_one_line_naming_it_and_exit_1() -> None:
    proc = _run("tail", "btcusdt@trade", "--endpoint", "ws://no-such-host.invalid:9443")  # RFC 6761
    assert proc.returncode == 1, proc.stderr
    assert "no-such-host.invalid" in _one_line(proc.stderr)


async def test_wss_against_a_plain_server_says_to_use_ws(sim: Simulator) -> None:
    plain = sim.stream_url.removeprefix("ws://")
    code, out, err = await _arun("tail", "btcusdt@trade", "--endpoint", f"wss://{plain}", timeout=60)
    assert code == 1, err
    line = _one_line(err)
    assert "TLS" in line and f"use ws://{plain}" in line
    assert out == ""


async def test_a_server_that_is_not_a_stream_server_is_one_line_and_exit_1(sim: Simulator) -> None:
    rest = sim.rest_url.removeprefix("http://")
    started = time.monotonic()
    code, out, err = await _arun("tail", "btcusdt@trade", "--endpoint", f"ws://{rest}")
    assert code == 1, err
    line = _one_line(err)
    assert "not a WebSocket stream server" in line and rest in line and "404" in line
    assert time.monotonic() - started < 15  # not ~27 s of reconnect attempts
    assert out == ""


async def test_reconnecting_given_up_is_one_line_and_exit_1(sim: Simulator) -> None:
    """Connected, then the server goes and refuses every reconnect: the event lines of the losses, then
    one line naming the URL it gave up on; nothing on stdout but the messages before."""
    proc = await asyncio.create_subprocess_exec(
        *_CLI, "tail", "btcusdt@trade", "--endpoint", sim.stream_url, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 30)
    sim.faults.refuse(503)  # every upgrade from now on
    assert sim.faults.drop() >= 1
    out, err = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode == 1, err.decode()
    lines = err.decode().splitlines()
    assert lines[-1] == f"error: gave up reconnecting to {sim.stream_url}"
    for line in lines[:-1]:  # --json: the error events before it are JSON
        assert orjson.loads(line)["e"] == "error"
    assert all(orjson.loads(line)["data"]["e"] == "trade" for line in out.splitlines())


# -- error events: never on stdout ------------------------------------------------------------------
_EVENTS_COUNT = 60

@pytest.mark.parametrize("json_lines", [True, False])
async def test_error_events_go_to_stderr_and_stdout_stays_payloads(sim: Simulator, json_lines: bool) -> None:
    proc = await asyncio.create_subprocess_exec(
        # Enough messages that the tail cannot have read them all before the bad frame goes out, even
        # when a loaded machine lets the first line reach this test late.
        *_CLI, "tail", "btcusdt@trade", "--endpoint", sim.stream_url, "--count", str(_EVENTS_COUNT),
        *(["--json"] if json_lines else []), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert sim.faults.send_malformed_json(stream="btcusdt@trade") == 1
    rest, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = [first, *rest.splitlines()]
    assert len(lines) == _EVENTS_COUNT
    if json_lines:
        assert all(orjson.loads(line)["data"]["e"] == "trade" for line in lines)
        event = orjson.loads(_one_line(err.decode(), failure=False))
        assert event["e"] == "error" and event["type"] == "malformed" and "m" in event
    else:
        assert all(b"error" not in line for line in lines)
        assert "error: Malformed frame skipped" in _one_line(err.decode(), failure=False)


# -- the reader goes away: exit 0, quietly ----------------------------------------------------------

@pytest.mark.parametrize("json_lines", [True, False])
def test_a_closed_pipe_ends_quietly_with_exit_0(json_lines: bool) -> None:
    mode = ["--json"] if json_lines else []
    proc = subprocess.Popen([*_CLI, "tail", "btcusdt@bookTicker", "--sim", *mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        for _ in range(3):
            assert b"btcusdt@bookTicker" in proc.stdout.readline()
        proc.stdout.close()  # like `| head -3` exiting
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert proc.stderr.read() == b""


# -- readable lines ---------------------------------------------------------------------------------

def test_readable_lines_fit_80_columns_for_every_stream_kind() -> None:
    streams = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@kline_1m", "btcusdt@miniTicker",
               "btcusdt@ticker", "btcusdt@ticker_1h", "btcusdt@bookTicker", "btcusdt@depth5",
               "btcusdt@depth@100ms", "btcusdt@avgPrice", "!miniTicker@arr"]
    proc = _run("tail", *streams, "--sim", "--count", "60", columns=80)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 60
    seen = set()
    for line in lines:
        assert len(line) <= 80, line
        _received, _event, stream, rest = line.split(maxsplit=3)
        seen.add(stream)
        # Cut only between whole fields ("  …"), never inside a number.
        assert not line.endswith("…") or line.endswith("  …"), line
        if stream == "!miniTicker@arr":
            symbols, first = rest.split("  ")[:2]  # "3 symbols:", then "BTCUSDT 61800"
            assert symbols.endswith("symbols:") and first.split()[0].isupper()
            float(first.split()[1])
    assert "!miniTicker@arr" in seen and "btcusdt@kline_1m" in seen


def test_version_and_plain_flags_in_help() -> None:
    version = _run("--version")
    assert version.returncode == 0 and version.stdout.startswith("binance-ws 0.")
    helptext = _run("tail", "--help").stdout
    assert "--sim " in helptext and "<bool>" not in helptext


@pytest.mark.parametrize(("args", "says"), [
    (["tail", "btcusdt@trade", "--nosuch"], "error: No such option: --nosuch (see binance-ws tail --help)"),
    (["tail", "btcusdt@trade", "--count", "x"], "error: Invalid value for '--count'"),
    (["tail"], "error: Missing argument 'STREAM' (see binance-ws tail --help)"),
    (["sim", "--stream-port", "abc"], "error: Invalid value for '--stream-port'"),
    (["sim", "--symbols", "0"], "error: --symbols must be between 1 and 2000, not 0"),
    (["nosuch"], "error: No such command 'nosuch' (see binance-ws --help)"),
])
def test_usage_errors_are_one_line_with_the_same_prefix_and_exit_2(args: list[str], says: str) -> None:
    proc = _run(*args)
    assert proc.returncode == 2, proc.stderr
    assert _one_line(proc.stderr).startswith(says)
    assert proc.stdout == ""


def test_no_arguments_shows_the_help() -> None:
    proc = _run()
    assert proc.returncode == 2 and "Usage: binance-ws [OPTIONS] COMMAND" in proc.stdout + proc.stderr


# -- sim --------------------------------------------------------------------------------------------

def test_sim_on_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run("sim", "--stream-port", str(port), "--rest-port", "0")
    assert proc.returncode == 1, proc.stderr
    assert "in use" in _one_line(proc.stderr) and "--stream-port 0" in proc.stderr


def test_sim_replay_of_a_tail_json_capture_says_to_record_instead(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_text(_run("tail", "btcusdt@trade", "--sim", "--json", "--count", "3").stdout)
    proc = _run("sim", "--stream-port", "0", "--rest-port", "0", "--replay", str(capture))
    assert proc.returncode == 1, proc.stderr
    assert "tail --record" in _one_line(proc.stderr)


def test_tail_record_writes_what_sim_replays(tmp_path: Path) -> None:
    from binance_ws.recording import read_recording

    path = tmp_path / "rec.gz"
    proc = _run("tail", "btcusdt@trade", "--sim", "--json", "--count", "4", "--record", str(path))
    assert proc.returncode == 0, proc.stderr
    sent = [orjson.loads(line)["data"] for line in proc.stdout.splitlines()]
    recorded = [orjson.loads(r.payload) for r in read_recording(path)]
    assert recorded == sent


def test_sim_prints_every_url_and_logs_what_clients_do() -> None:
    sim = subprocess.Popen([*_CLI, "sim", "--stream-port", "0", "--rest-port", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert sim.stdout is not None and sim.stderr is not None
    try:
        printed = {}
        while "try" not in printed:
            label, _, rest = sim.stdout.readline().partition(":")
            assert rest, "sim ended before printing its URLs"
            printed[label] = rest.strip()
        assert printed["WS API"].endswith("/ws-api/v3") and printed["REST"].startswith("http://")
        command = printed["try"].split()  # binance-ws tail btcusdt@trade --endpoint ws://...
        # Long enough a connection (seconds, not 0.7 s) that sim's 0.5 s look at its state cannot miss
        # it on a loaded machine.
        tail = _run(*command[1:], "--count", "15")
        assert tail.returncode == 0, tail.stderr
        time.sleep(1.5)  # the log is written every 0.5 s
        sim.send_signal(2)  # Ctrl-C
        assert sim.wait(30) == 0
    finally:
        sim.kill()
    log = sim.stderr.read()
    assert "opened" in log and "subscribed: btcusdt@trade" in log and "closed after" in log, log
