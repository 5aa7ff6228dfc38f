"""``binance-ws book`` and ``binance-ws top`` as users run them: subprocesses against the simulator, on a
pseudo-terminal (redrawn in place by rich) and into a pipe (one plain snapshot per interval)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
import time

import pytest

_CLI = [sys.executable, "-m", "binance_ws.cli"]
TIMEOUT_S = 60
_SNAPSHOT = re.compile(r"^-- \d\d:\d\d:\d\d UTC --$", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


def _piped(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_CLI, *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=_env())


def _on_terminal(*args: str, columns: int = 120, rows: int = 40) -> tuple[int, str, str]:
    """Run on a pseudo-terminal of ``columns`` x ``rows``: exit status, what the terminal got, stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen([*_CLI, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE,
                            env={**_env(), "TERM": "xterm-256color"})
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        code = proc.wait(TIMEOUT_S)
    finally:
        proc.kill()
        os.close(master)
    assert proc.stderr is not None
    return code, out.decode("utf-8", "replace"), proc.stderr.read().decode()


def _ladder(snapshot: str) -> tuple[list[float], list[float]]:
    """Ask and bid prices of a book snapshot, top to bottom (asks above the spread line, bids below)."""
    asks: list[float] = []
    bids: list[float] = []
    side = asks
    for line in snapshot.splitlines():
        if "spread" in line:
            side = bids
            continue
        numbers = [float(t) for t in line.split() if re.fullmatch(r"\d+(\.\d+)?", t)]
        if len(numbers) == 2:
            side.append(numbers[0] if side is asks else numbers[1])  # asks: price qty; bids: qty price
    return asks, bids


def test_book_into_a_pipe_prints_snapshots_of_a_consistent_ladder() -> None:
    proc = _piped("book", "BTCUSDT", "--sim", "--levels", "5", "-n", "12", "--interval", "0.25")
    assert proc.returncode == 0, proc.stderr[-2000:]
    snapshots = _SNAPSHOT.split(proc.stdout)[1:]
    assert len(snapshots) == 12
    assert "\x1b[" not in proc.stdout  # plain text: no terminal codes into a file
    synced = [s for s in snapshots if "BTCUSDT  SYNCED" in s]
    assert synced, snapshots[-1]
    asks, bids = _ladder(synced[-1])
    assert len(asks) == len(bids) == 5
    assert asks == sorted(asks, reverse=True) and bids == sorted(bids, reverse=True)
    assert min(asks) > max(bids)  # best ask above best bid: not crossed
    assert re.search(r"spread [\d.e-]+ \(", synced[-1])
    assert re.search(r"[\d.]+ updates/s", synced[-1])


def test_book_on_a_terminal_redraws_in_place() -> None:
    code, screen, err = _on_terminal("book", "BTCUSDT", "--sim", "-n", "8", "--interval", "0.25")
    assert code == 0, err[-2000:]
    assert _ANSI.search(screen)  # colours and cursor moves: rich Live
    text = _ANSI.sub("", screen)
    assert "BTCUSDT" in text and "spread" in text
    assert not _SNAPSHOT.search(text)  # no pipe-style snapshot headers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_top_watches_its_own_streams_into_a_pipe() -> None:
    proc = _piped("top", "btcusdt@trade", "ethusdt@depth@100ms", "--sim", "-n", "2", "--interval", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = _SNAPSHOT.split(proc.stdout)[-1]
    rows = {line.split()[0]: line.split() for line in last.splitlines() if "@" in line}
    assert set(rows) == {"btcusdt@trade", "ethusdt@depth@100ms"}
    # stream, msg/s, messages, lag ms, gaps, resets (the sim's diff depth pushes 10 a second)
    _, rate, total, lag, gaps, resets = rows["ethusdt@depth@100ms"]
    assert float(rate) > 0 and int(total.replace(",", "")) > 0 and float(lag) >= 0
    assert gaps == resets == "0"
    # connection, state, streams, connects, reconnects, rotations
    assert re.search(r"^ *c-1 +up +2 +1 +0 +0 *$", last, re.M)


def test_top_watches_another_process_through_its_metrics_port() -> None:
    port = _free_port()
    tail = subprocess.Popen([*_CLI, "tail", "btcusdt@trade", "btcusdt@bookTicker", "--sim", "--json",
                             "--metrics-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert tail.stdout is not None
        tail.stdout.readline()  # it is up, and its metrics are served
        proc = _piped("top", "--metrics-url", f"http://127.0.0.1:{port}", "-n", "2", "--interval", "0.5")
    finally:
        tail.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            tail.wait(TIMEOUT_S)
        tail.kill()
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = _SNAPSHOT.split(proc.stdout)[-1]
    assert f"127.0.0.1:{port}/metrics" in last
    assert "btcusdt@trade" in last and "btcusdt@bookTicker" in last
    assert re.search(r"^ *1 +btcusdt@trade \+1 +\d+ +\d+ +[\d,]+ +0 *$", last, re.M)  # tail's one queue


def test_top_on_a_terminal_redraws_in_place() -> None:
    code, screen, err = _on_terminal("top", "btcusdt@trade", "--sim", "-n", "3", "--interval", "0.5")
    assert code == 0, err[-2000:]
    assert _ANSI.search(screen)
    assert "btcusdt@trade" in _ANSI.sub("", screen)


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["top"], 2, "give streams to watch"),
    (["top", "btcusdt@trade", "--metrics-url", "http://127.0.0.1:9/metrics"], 2, "--metrics-url watches"),
    (["top", "--metrics-url", "ftp://x"], 2, "give http://host:port/metrics"),
    (["top", "BTCUSDT@trade", "--sim"], 2, "did you mean 'btcusdt@trade'?"),
    (["book", "BTCUSDT", "--endpoint", "ws://127.0.0.1:9443"], 2, "--endpoint needs --rest"),
    (["book", "BTC/USDT", "--sim"], 2, ""),
    (["book", "NOSUCHUSDT", "--sim", "-n", "1"], 2, "refused"),
])
def test_views_refuse_bad_input_in_one_line(args: list[str], code: int, fragment: str) -> None:
    proc = _piped(*args)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    assert fragment in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("args", [["top", "btcusdt@trade", "--sim"],
                                  ["tail", "btcusdt@trade", "--sim", "--metrics-port", "9"]])
def test_metrics_without_prometheus_client_is_one_line(args: list[str]) -> None:
    # The metrics extra is optional: a Python where prometheus_client cannot be imported.
    run = ("import sys; sys.modules['prometheus_client'] = None; sys.argv = ['binance-ws', *sys.argv[1:]]; "
           "from binance_ws.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", run, *args], capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=_env())
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "error: " + ("top" if args[0] == "top" else "--metrics-port") + \
        " needs prometheus-client: pip install 'binance-ws[metrics]'\n"


def test_top_metrics_url_unreachable_is_exit_1() -> None:
    proc = _piped("top", "--metrics-url", f"http://127.0.0.1:{_free_port()}/metrics", "-n", "1")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot scrape") and len(proc.stderr.splitlines()) == 1
