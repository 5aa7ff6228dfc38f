"""What a new user gets wrong with ``record``, ``replay``, ``export``, ``collect``, ``book`` and ``top`` (and
the options ``tail`` and ``sim`` gained): each case is one line on stderr naming what is wrong, the exit
status the README's "The command line" documents, and no secret in the line.

The cases are independent processes, so they run concurrently (a few at a time: the machine has two
cores) against one real simulator process and one real redis-server; each test then checks its own case.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from tests.redis_server import RedisServer, free_port

_CLI = [sys.executable, "-m", "binance_ws.cli"]
_PASSWORD = "s3cret-pw"
_TIMEOUT_S = 60
#: A case still running after this long failed: a wrong input must fail at once, not retry.
_CASE_TIMEOUT_S = 30


@dataclass(frozen=True)
class _Case:
    args: tuple[str, ...]
    code: int
    says: tuple[str, ...]  # all of these in the one line
    never: tuple[str, ...] = ()  # none of these anywhere in stderr
    redis: bool = False


@dataclass
class _World:
    """The addresses the cases' placeholders stand for."""

    ws: str
    rest: str
    dead: int
    tmp: Path
    redis: str | None  # redis://127.0.0.1:PORT (password set), None without redis-server


#: Per case: exit status (None: killed after the timeout), stderr, seconds, the world it ran in.
_Results = dict[str, tuple[int | None, str, float, _World]]


def _fill(arg: str, w: _World) -> str:
    redis = w.redis or "redis://127.0.0.1:1"
    return (arg.replace("{ws}", w.ws).replace("{rest}", w.rest).replace("{dead}", str(w.dead))
            .replace("{wsport}", w.ws.rsplit(":", 1)[1]).replace("{restport}", w.rest.rsplit(":", 1)[1])
            .replace("{tmp}", str(w.tmp)).replace("{redis}", redis).replace("{pw}", _PASSWORD)
            .replace("{authed}", redis.replace("//", f"//:{_PASSWORD}@"))
            .replace("{wrongpw}", redis.replace("//", "//:wrong-pw@")))


_CASES: dict[str, _Case] = {
    # record
    "record: --rest nothing listens on": _Case(
        ("record", "btcusdt@depth", "--endpoint", "{ws}", "--rest", "http://127.0.0.1:{dead}", "--out",
         "{tmp}/r1", "--duration", "20", "-q"), 1, ("--rest", "127.0.0.1:{dead}", "connection refused")),
    "record: --out is a file": _Case(
        ("record", "btcusdt@trade", "--endpoint", "{ws}", "--out", "{tmp}/afile"), 2, ("--out",)),
    "record: no stream": _Case(("record", "--out", "{tmp}/r2"), 2, ("Missing argument", "record --help")),
    "record: unknown --market": _Case(
        ("record", "btcusdt@trade", "--market", "bogus", "--out", "{tmp}/r3"), 2, ("--market", "bogus")),
    # replay
    "replay: a folder": _Case(("replay", "{tmp}/rec"), 2, ("is a folder", "{tmp}/rec/one.rec")),
    "replay: no such file": _Case(("replay", "{tmp}/nope.rec"), 2, ("no such file",)),
    "replay: an empty file": _Case(
        ("replay", "{tmp}/empty", "--stream-port", "0", "--rest-port", "0"), 1, ("is empty",)),
    "replay: a file cut before its first flush": _Case(
        ("replay", "{tmp}/header-only.rec", "--stream-port", "0", "--rest-port", "0"), 1,
        ("holds no records",)),
    "replay: a tail --json capture": _Case(
        ("replay", "{tmp}/capture.jsonl", "--stream-port", "0", "--rest-port", "0"), 1, ("tail --json",)),
    "replay: a port in use": _Case(
        ("replay", "{tmp}/rec/one.rec", "--stream-port", "{wsport}", "--rest-port", "0"), 1,
        ("cannot listen on 127.0.0.1:{wsport}", "address already in use"), ("Errno",)),
    "replay: a --host that does not resolve": _Case(
        ("replay", "{tmp}/rec/one.rec", "--host", "nosuchhost.invalid", "--stream-port", "0", "--rest-port",
         "0"), 1, ("--host", "nosuchhost.invalid"), ("Errno",)),
    # export
    "export: an empty file": _Case(("export", "{tmp}/empty", "--parquet", "{tmp}/p1"), 1, ("no records",)),
    "export: a file cut inside its first frame": _Case(
        ("export", "{tmp}/cut.rec.zst", "--parquet", "{tmp}/p2"), 1, ("no records",)),
    "replay: a file cut inside its first frame": _Case(
        ("replay", "{tmp}/cut.rec.zst", "--stream-port", "0", "--rest-port", "0"), 1, ("holds no records",)),
    "export: a file cut before its first flush": _Case(
        ("export", "{tmp}/header-only.rec", "--parquet", "{tmp}/p5"), 1, ("no records",)),
    "export: garbage": _Case(
        ("export", "{tmp}/garbage", "--parquet", "{tmp}/p3"), 1, ("not a recording",)),
    "export: a folder": _Case(("export", "{tmp}/rec", "--parquet", "{tmp}/p4"), 2, ("is a folder",)),
    "export: --parquet is a file": _Case(
        ("export", "{tmp}/rec/one.rec", "--parquet", "{tmp}/afile"), 2, ("--parquet", "not a folder")),
    # collect
    "collect: a --redis port out of range, with a password": _Case(
        ("collect", "btcusdt@trade", "--sim", "--redis", "redis://:{pw}@127.0.0.1:99999/0"), 2, ("port",),
        (_PASSWORD, "Traceback")),
    "collect: --redis is the REST port": _Case(
        ("collect", "btcusdt@trade", "--endpoint", "{ws}", "--redis", "redis://127.0.0.1:{restport}/0"), 1,
        ("not a Redis server",)),
    "collect: Redis wants a password, none given": _Case(
        ("collect", "btcusdt@trade", "--endpoint", "{ws}", "--redis", "{redis}/0"), 2,
        ("needs a password", "redis://:PASSWORD@"), redis=True),
    "collect: a wrong password": _Case(
        ("collect", "btcusdt@trade", "--endpoint", "{ws}", "--redis", "{wrongpw}/0"), 2,
        ("refused the user name or password",), ("wrong-pw",),
        redis=True),
    "collect: a symbol the server does not list": _Case(
        ("collect", "foousdt@trade", "--endpoint", "{ws}", "--redis", "{authed}/1", "--lease-ttl", "1"), 2,
        ("refused foousdt@trade",), (_PASSWORD,), redis=True),
    "collect: --rest nothing listens on": _Case(
        ("collect", "btcusdt@trade", "--endpoint", "{ws}", "--rest", "http://127.0.0.1:{dead}", "--redis",
         "{authed}/2"), 1, ("--rest", "connection refused"), (_PASSWORD,), redis=True),
    # book, top
    "book: --rest nothing listens on": _Case(
        ("book", "btcusdt", "--endpoint", "{ws}", "--rest", "http://127.0.0.1:{dead}", "-n", "1"), 1,
        ("--rest", "connection refused")),
    "book: an option it does not have": _Case(
        ("book", "btcusdt", "--market", "usdm"), 2, ("No such option: --market", "book --help")),
    "book: an empty SYMBOL": _Case(("book", "", "--sim", "-n", "1"), 2, ("SYMBOL is empty",)),
    "book: --levels 0": _Case(("book", "btcusdt", "--sim", "--levels", "0"), 2, ("--levels",)),
    "top: a stream the server refuses": _Case(
        ("top", "foousdt@trade", "--endpoint", "{ws}", "-n", "1"), 2, ("refused foousdt@trade",)),
    # tail, sim, the app
    "tail: --metrics-port 0": _Case(("tail", "btcusdt@trade", "--metrics-port", "0"), 2, ("--metrics-port",)),
    "tail: --metrics-port in use": _Case(
        ("tail", "btcusdt@trade", "--endpoint", "{ws}", "--metrics-port", "{restport}"), 2,
        ("--metrics-port", "in use")),
    "tail: --market usdm against a spot server": _Case(
        ("tail", "btcusdt@trade", "--market", "usdm", "--endpoint", "{ws}", "--count", "1"), 1,
        ("{ws}/public", "--market usdm")),
    "sim: --replay a folder": _Case(("sim", "--replay", "{tmp}/rec"), 2, ("is a folder",)),
    "an unknown command": _Case(("nosuchcommand",), 2, ("No such command",)),
}


def _run(args: list[str]) -> tuple[int | None, str, float]:
    """Exit status (None: still running after the timeout, then killed), stderr, seconds taken."""
    started = time.monotonic()
    try:
        proc = subprocess.run([*_CLI, *args], capture_output=True, text=True, timeout=_CASE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return None, err, time.monotonic() - started
    return proc.returncode, proc.stderr, time.monotonic() - started


def _start_sim() -> tuple[subprocess.Popen[str], str, str]:
    """``binance-ws sim`` on free ports; its stream and REST base URLs, read from what it prints."""
    proc = subprocess.Popen([*_CLI, "sim", "--stream-port", "0", "--rest-port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    ws = rest = ""
    for line in proc.stdout:
        if line.startswith("streams:"):
            ws = line.split()[1].removesuffix("/ws/<stream>")
        elif line.startswith("REST:"):
            rest = line.split()[1].removesuffix("/api/v3/exchangeInfo")
        if ws and rest:
            return proc, ws, rest
    raise AssertionError("binance-ws sim printed no URLs")


def _files(tmp: Path, ws: str) -> None:
    """The inputs the cases name: a recording, an empty file, garbage, a cut one, a tail --json capture."""
    (tmp / "afile").write_text("x")
    (tmp / "empty").write_bytes(b"")
    (tmp / "garbage").write_bytes(bytes(range(256)) * 2)
    (tmp / "rec").mkdir()
    out = subprocess.run([*_CLI, "tail", "btcusdt@trade", "--endpoint", ws, "--count", "3", "--json",
                          "--record", str(tmp / "rec" / "one.rec.zst")],
                         capture_output=True, text=True, timeout=_TIMEOUT_S)
    assert out.returncode == 0, out.stderr
    (tmp / "rec" / "one.rec.zst").rename(tmp / "rec" / "one.rec")  # readers go by magic bytes, not names
    (tmp / "capture.jsonl").write_text(out.stdout)
    whole = (tmp / "rec" / "one.rec").read_bytes()
    (tmp / "cut.rec.zst").write_bytes(whole[:20])  # inside the first frame: no whole line
    plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(whole), read_across_frames=True)
    header = io.BufferedReader(plain).readline()
    (tmp / "header-only.rec").write_bytes(header)  # a recorder killed before its first messages' flush


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Results]:
    tmp = tmp_path_factory.mktemp("clisweep")
    sim, ws, rest = _start_sim()
    redis: RedisServer | None = None
    try:
        try:
            redis = RedisServer(tmp_path_factory.mktemp("redis"))
        except FileNotFoundError:
            redis = None
        if redis is not None:
            with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as c:
                c.sendall(f"CONFIG SET requirepass {_PASSWORD}\r\n".encode())
                assert c.recv(16).startswith(b"+OK")
        world = _World(ws=ws, rest=rest, dead=free_port(), tmp=tmp,
                       redis=f"redis://127.0.0.1:{redis.port}" if redis is not None else None)
        _files(tmp, ws)
        todo = {name: case for name, case in _CASES.items() if redis is not None or not case.redis}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = {name: pool.submit(_run, [_fill(a, world) for a in case.args])
                       for name, case in todo.items()}
            yield {name: (*f.result(), world) for name, f in futures.items()}
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(20)
        if redis is not None:
            redis.stop()


@pytest.mark.parametrize("name", list(_CASES))
def test_each_wrong_input_is_one_line_and_the_documented_status(
        results: _Results, name: str) -> None:
    case = _CASES[name]
    if name not in results:
        pytest.skip("redis-server is not installed (scripts/test installs it)")
    code, stderr, seconds, world = results[name]
    assert code is not None, f"still running after {seconds:.0f} s: {stderr[-2000:]}"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    line = lines[0]
    assert line.startswith("error: "), line
    assert code == case.code, line
    for text in case.says:
        text = _fill(text, world)
        assert text in line, line
    for text in (*case.never, "Traceback"):
        assert text not in stderr, stderr


def test_the_command_list_has_a_whole_line_for_every_command() -> None:
    proc = subprocess.run([*_CLI, "--help"], capture_output=True, text=True, timeout=_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split("Commands:", 1)[1].strip().splitlines()
    names = [line.split()[0] for line in listed]
    assert names == ["book", "collect", "export", "record", "replay", "sim", "tail", "top"]
    for line in listed:
        summary = line.split(None, 1)[1]
        assert summary.endswith(".") and not summary.endswith("..."), line


def _wait_for_lines(proc: subprocess.Popen[bytes], n: int) -> list[bytes]:
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + _TIMEOUT_S
    while len(lines) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    assert len(lines) == n, f"{len(lines)} lines"
    return lines


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_tail_record_ends_on_a_signal_with_0_and_loses_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    from binance_ws.recording import read_recording

    sim, ws, _ = _start_sim()
    try:
        path = tmp_path / "t.rec.zst"
        proc = subprocess.Popen([*_CLI, "tail", "btcusdt@trade", "--endpoint", ws, "--json", "--record",
                                 str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for_lines(proc, 3)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=_TIMEOUT_S)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(20)
    assert proc.returncode == 0, err
    assert err == b""
    shown = 3 + len(out.splitlines())
    assert len(list(read_recording(path))) >= shown  # everything printed is in the file


def test_book_top_and_sim_end_on_sigterm_with_0(tmp_path: Path) -> None:
    sim, ws, rest = _start_sim()
    try:
        procs = {
            "book": [*_CLI, "book", "btcusdt", "--endpoint", ws, "--rest", rest, "--interval", "0.1"],
            "top": [*_CLI, "top", "btcusdt@trade", "--endpoint", ws, "--interval", "0.1"],
        }
        running = {name: subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          env={**os.environ, "COLUMNS": "100"})
                   for name, args in procs.items()}
        for proc in running.values():
            _wait_for_lines(proc, 1)  # drawing: connected and subscribed
        for proc in running.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in running.items():
            _, err = proc.communicate(timeout=_TIMEOUT_S)
            assert proc.returncode == 0, (name, err)
            assert b"Traceback" not in err, (name, err)
    finally:
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(20) == 0  # the simulator, too


def test_sim_ends_with_0_when_the_reader_of_its_urls_is_gone() -> None:
    # binance-ws sim | head -1, with head gone before the URLs are written: the first write finds no reader.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.Popen([*_CLI, "sim", "--stream-port", "0", "--rest-port", "0"], stdout=write_end,
                                stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    try:
        _, err = proc.communicate(timeout=_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [line for line in err.decode().splitlines() if " INFO " not in line]
    assert proc.returncode == 0 and lines == [], lines
