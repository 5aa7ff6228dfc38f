"""Record soak: ``binance-ws record`` over a simulated market, SIGKILLed once, checked three ways.

Real processes only: a ``binance-ws sim`` (``--symbols N``, its cadences ``--time-scale`` times faster),
a ``binance-ws record`` of every symbol's trade, depth@100ms and bookTicker streams, SIGKILLed part-way
and started again (its new files are the ``.1`` parts), then ended with SIGTERM. Then:

* **every file reads back** (the killed run's up to its last complete line), and within each file every
  symbol's trade ids run on without a hole that no gap or reconnect marker explains;
* **a book rebuilt from one file alone** (the busiest of the killed run: its diffs and its own REST
  snapshot lines, by PROTOCOL 5.1) agrees with that file's bookTickers whenever their update ids meet;
* **replay reproduces it byte for byte**: ``binance-ws replay FILE --speed 0`` serves the file, a second
  ``binance-ws record`` records it, and the two files' stream messages are the same bytes in the same order.

    python -m benchmarks.record_soak                 # 200 symbols, 10 compressed minutes (60 s at x10)
    python -m benchmarks.record_soak --quick         # 20 symbols, about 15 s
    python -m benchmarks.record_soak --json record.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from binance_ws.recording import KIND_MARKER, KIND_SNAPSHOT, read_header, read_recording

#: Marker kinds after which a hole in the ids is explained (the recorder said it may have missed data).
EXPLAINING_MARKERS = frozenset({"gap", "reset", "link_down", "link_up"})
STARTUP_TIMEOUT_S = 60.0


@dataclass
class RecordSoakOptions:
    symbols: int = 200
    #: Order-flow actions a second of the median symbol (heavy-tailed around it).
    rate: float = 2.0
    time_scale: float = 10.0
    #: Wall seconds of recording (simulated: ``seconds * time_scale``).
    seconds: float = 60.0
    #: Wall seconds after the start when the recorder is SIGKILLed (and started again).
    kill_after_s: float = 30.0
    snapshot_interval_s: float = 10.0
    #: Levels a side of each snapshot: 100 costs 5 weight on spot (1000 costs 50, and 200 symbols would
    #: take two minutes of the REST budget to snapshot once).
    snapshot_limit: int = 100
    seed: int = 1

    @classmethod
    def quick(cls) -> RecordSoakOptions:
        return cls(symbols=20, rate=2.0, time_scale=10.0, seconds=8.0, kill_after_s=4.0,
                   snapshot_interval_s=2.0)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "binance_ws.cli", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("COLUMNS", None)
    return env


class Server:
    """A ``binance-ws sim`` or ``replay`` child process and the URLs it printed."""

    def __init__(self, args: list[str], log: IO[bytes]) -> None:
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=_env())
        self.stream_url = self.rest_url = ""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (self.stream_url and self.rest_url):
            line = self.proc.stdout.readline().decode()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"{args[3]} did not start (exit {self.proc.poll()})")
            if line.startswith("streams:"):
                self.stream_url = line.split()[1].split("/ws/")[0]
            elif line.startswith("REST:"):
                self.rest_url = line.split()[1].split("/api/")[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_recorder(server: Server, names: list[str], out: Path, snapshot_interval_s: float,
                   log: IO[bytes], snapshot_limit: int = 100) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cli("record", *names, "--endpoint", server.stream_url, "--rest", server.rest_url,
            "--out", str(out), "--quiet", "--snapshot-interval", f"{snapshot_interval_s:g}",
            "--snapshot-limit", str(snapshot_limit)),
        stdout=subprocess.DEVNULL, stderr=log, env=_env())


def stop_recorder(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM (the recorder flushes and closes its files); its exit status."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def messages(path: Path) -> int:
    return sum(1 for r in read_recording(path) if r.kind != KIND_SNAPSHOT)


# -- checks ---------------------------------------------------------------------------------------
def check_file(path: Path) -> dict[str, int]:
    """Read every record of ``path``; count messages, snapshots, markers, and trade-id holes that no
    marker explains (must be 0)."""
    counts = {"messages": 0, "snapshots": 0, "markers": 0, "trades": 0, "diffs": 0, "silent_holes": 0}
    last_trade: dict[str, int] = {}
    for rec in read_recording(path, markers=True):
        if rec.kind == KIND_MARKER:
            counts["markers"] += 1
            if rec.stream in EXPLAINING_MARKERS:
                last_trade.clear()
            continue
        if rec.kind == KIND_SNAPSHOT:
            counts["snapshots"] += 1
            continue
        counts["messages"] += 1
        if rec.stream is not None and "@depth" in rec.stream:
            counts["diffs"] += 1
        if rec.stream is not None and rec.stream.endswith("@trade"):
            counts["trades"] += 1
            tid = orjson.loads(rec.payload)["t"]
            previous = last_trade.get(rec.stream)
            if previous is not None and tid != previous + 1:
                counts["silent_holes"] += 1
            last_trade[rec.stream] = tid
    return counts


class RebuiltBook:
    """One symbol's book from a recording alone (PROTOCOL 5.1): diffs buffered until a snapshot line,
    events up to its ``lastUpdateId`` dropped, then ``U == previous u + 1``; a hole or a marker waits for
    the next snapshot line. Each bookTicker whose ``u`` meets the book's is compared with its top."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.update_id: int | None = None
        self.buffer: list[dict[str, Any]] = []
        self.tickers: dict[int, dict[str, Any]] = {}
        self.synced_times = 0
        self.applied = 0
        self.compared = 0
        self.disagreed: list[str] = []

    def diff(self, ev: dict[str, Any]) -> None:
        if self.update_id is None:
            self.buffer.append(ev)
            return
        if ev["u"] <= self.update_id:
            return
        if ev["U"] > self.update_id + 1:
            self.unsync()  # a hole: wait for the next snapshot line
            self.buffer.append(ev)
            return
        for side, levels in ((self.bids, ev["b"]), (self.asks, ev["a"])):
            for price, qty in levels:
                if Decimal(qty) == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.update_id = ev["u"]
        self.applied += 1
        ticker = self.tickers.pop(self.update_id, None)
        if ticker is not None:
            self.compare(ticker)
        if len(self.tickers) > 10_000:
            self.tickers.clear()

    def snapshot(self, snap: dict[str, Any]) -> None:
        if self.update_id is not None:
            return
        last = snap["lastUpdateId"]
        pending = [ev for ev in self.buffer if ev["u"] > last]
        if pending and pending[0]["U"] > last + 1:
            return  # older than what was buffered: wait for a later snapshot line
        self.bids = dict(map(tuple, snap["bids"]))  # type: ignore[arg-type]
        self.asks = dict(map(tuple, snap["asks"]))  # type: ignore[arg-type]
        self.update_id = last
        self.synced_times += 1
        self.buffer = []
        for ev in pending:
            self.diff(ev)

    def ticker(self, t: dict[str, Any]) -> None:
        if self.update_id is not None and t["u"] == self.update_id:
            self.compare(t)
        elif self.update_id is None or t["u"] > self.update_id:
            self.tickers[t["u"]] = t

    def compare(self, t: dict[str, Any]) -> None:
        bid = max(self.bids.items(), key=lambda kv: Decimal(kv[0]), default=None)
        ask = min(self.asks.items(), key=lambda kv: Decimal(kv[0]), default=None)
        self.compared += 1
        if bid != (t["b"], t["B"]) or ask != (t["a"], t["A"]):
            self.disagreed.append(f"u={t['u']} ticker {t['b']}x{t['B']} / {t['a']}x{t['A']} "
                                  f"book {bid} / {ask}")

    def unsync(self) -> None:
        self.update_id = None
        self.buffer = []
        self.tickers.clear()


def rebuild(path: Path) -> RebuiltBook:
    book = RebuiltBook()
    for rec in read_recording(path, markers=True):
        if rec.kind == KIND_MARKER:
            if rec.stream in EXPLAINING_MARKERS:
                book.unsync()
        elif rec.kind == KIND_SNAPSHOT:
            book.snapshot(orjson.loads(rec.payload))
        elif rec.stream is not None and "@depth" in rec.stream:
            book.diff(orjson.loads(rec.payload))
        elif rec.stream is not None and rec.stream.endswith("@bookTicker"):
            book.ticker(orjson.loads(rec.payload))
    return book


def stream_records(path: Path) -> list[tuple[str | None, bytes]]:
    return [(r.stream, r.payload) for r in read_recording(path) if r.kind != KIND_SNAPSHOT]


def replay_check(path: Path, work: Path, log: IO[bytes]) -> dict[str, Any]:
    """Serve ``path`` with ``binance-ws replay --speed 0``, record it again, compare the messages."""
    original = stream_records(path)
    names = read_header(path).url_streams()
    out = work / "replayed"
    server = Server(cli("replay", str(path), "--speed", "0", "--stream-port", "0", "--rest-port", "0"), log)
    started = time.monotonic()
    try:
        rec = start_recorder(server, names, out, 0, log)
        try:
            def done() -> bool:
                files = list(out.glob("*.rec.zst"))
                return len(files) == 1 and messages(files[0]) >= len(original)
            wait_for(done, "the replayed recording", 120)
        finally:
            code = stop_recorder(rec)
    finally:
        server.stop()
    (copy,) = out.glob("*.rec.zst")
    again = stream_records(copy)
    return {"replayed_messages": len(again), "original_messages": len(original),
            "byte_for_byte": again == original, "recorder_exit": code,
            "replay_wall_s": round(time.monotonic() - started, 2)}


# -- the run --------------------------------------------------------------------------------------
def run(o: RecordSoakOptions, work: Path) -> dict[str, Any]:
    log = (work / "processes.log").open("wb")
    out = work / "recording"
    report: dict[str, Any] = {"options": asdict(o)}
    sim = Server(cli("sim", "--symbols", str(o.symbols), "--rate", f"{o.rate:g}", "--time-scale",
                     f"{o.time_scale:g}", "--seed", str(o.seed), "--stream-port", "0", "--rest-port", "0"),
                 log)
    try:
        names = [f"sym{i:04d}usdt@{kind}" for i in range(1, o.symbols + 1)
                 for kind in ("trade", "depth@100ms", "bookTicker")]
        started = time.monotonic()
        first = start_recorder(sim, names, out, o.snapshot_interval_s, log, o.snapshot_limit)
        wait_for(lambda: any(out.glob("*.zst")), "the first file", STARTUP_TIMEOUT_S)
        time.sleep(max(0.0, o.kill_after_s - (time.monotonic() - started)))
        first.kill()  # SIGKILL: no flush, no close
        first.wait()
        killed_files = sorted(out.glob("*.zst"))
        second = start_recorder(sim, names, out, o.snapshot_interval_s, log, o.snapshot_limit)
        time.sleep(max(0.0, o.seconds - (time.monotonic() - started)))
        report["second_recorder_exit"] = stop_recorder(second)
        report["wall_s"] = round(time.monotonic() - started, 2)
        report["simulated_s"] = round(report["wall_s"] * o.time_scale, 1)
    finally:
        sim.stop()
    files = sorted(out.glob("*.zst"))
    per_file = {p.name: check_file(p) for p in files}
    report["files"] = len(files)
    report["files_of_killed_run"] = len(killed_files)
    report["bytes_on_disk"] = sum(p.stat().st_size for p in files)
    for key in ("messages", "snapshots", "markers", "trades", "diffs", "silent_holes"):
        report[key] = sum(c[key] for c in per_file.values())
    depth_files = [c for c in per_file.values() if c["diffs"]]
    report["files_with_diffs"] = len(depth_files)
    report["files_with_diffs_and_a_snapshot"] = sum(1 for c in depth_files if c["snapshots"])
    report["files_read_back"] = len(per_file)
    busiest = max(killed_files, key=lambda p: per_file[p.name]["messages"])
    book = rebuild(busiest)
    report["book_file"] = busiest.name
    report["book_synced"] = book.synced_times
    report["book_diffs_applied"] = book.applied
    report["book_tickers_compared"] = book.compared
    report["book_disagreements"] = len(book.disagreed)
    report["book_disagreement_examples"] = book.disagreed[:3]
    report.update(replay_check(busiest, work, log))
    log.close()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.record_soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 symbols, about 15 s")
    parser.add_argument("--symbols", type=int)
    parser.add_argument("--seconds", type=float, help="wall seconds of recording")
    parser.add_argument("--time-scale", type=float)
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args(argv)
    o = RecordSoakOptions.quick() if args.quick else RecordSoakOptions()
    if args.symbols:
        o.symbols = args.symbols
    if args.seconds:
        o.kill_after_s = o.kill_after_s * args.seconds / o.seconds
        o.seconds = args.seconds
    if args.time_scale:
        o.time_scale = args.time_scale
    with tempfile.TemporaryDirectory(prefix="record-soak-") as tmp:
        report = run(o, Path(tmp))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
