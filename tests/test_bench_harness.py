"""Smoke test of the benchmark machinery (``python -m benchmarks``) with tiny counts: the load server's
frames, a real run of binance-ws and of the raw baseline over loopback, medians and the n/a path.
Peers are never run here, and nothing is asserted about speed."""

from __future__ import annotations

import orjson
import pytest

from benchmarks.harness.loadserver import CHUNK, FIRST_TRADE_ID, ChunkTemplate, Scenario
from benchmarks.harness.runner import ClientSpec, RunError, python_for, run_one
from benchmarks.harness.suite import CLIENTS, TEN_STREAMS, Plan, summarize, table


def frames(chunk: bytes) -> list[bytes]:
    """Split a run of unmasked server text frames, checking each header."""
    out, pos = [], 0
    while pos < len(chunk):
        assert chunk[pos] == 0x81
        size = chunk[pos + 1]
        pos += 2
        if size == 126:
            size = int.from_bytes(chunk[pos:pos + 2], "big")
            pos += 2
        out.append(chunk[pos:pos + size])
        pos += size
    assert pos == len(chunk)
    return out


@pytest.mark.parametrize("streams", [("btcusdt@trade",), TEN_STREAMS])
def test_chunks_are_valid_frames_with_consecutive_ids_per_stream(streams: tuple[str, ...]) -> None:
    template = ChunkTemplate(streams, combined=len(streams) > 1)
    last: dict[str, int] = {}
    for _ in range(2):
        for body in frames(template.next_chunk()):
            msg = orjson.loads(body)
            stream, trade = (msg["stream"], msg["data"]) if len(streams) > 1 else (streams[0], msg)
            assert trade["s"] == stream.split("@")[0].upper()
            assert trade["t"] == last.get(stream, FIRST_TRADE_ID - 1) + 1
            assert trade["T"] == trade["E"] // 1_000_000
            last[stream] = trade["t"]
    assert sorted(last) == sorted(streams)
    assert sum(t - FIRST_TRADE_ID + 1 for t in last.values()) == 2 * CHUNK


def test_stream_counts_that_do_not_split_a_chunk_evenly_are_refused() -> None:
    with pytest.raises(ValueError, match="power of 10"):
        ChunkTemplate(("a@trade", "b@trade", "c@trade"), combined=True)


@pytest.mark.parametrize("key", ["raw-orjson", "async-typed", "async-dict", "threaded"])
def test_a_full_speed_run_delivers_every_message(key: str) -> None:
    spec = CLIENTS[key]
    result = run_one(spec, Scenario(TEN_STREAMS, 3_000, 0), python_for(spec), latency=False)
    assert result["error"] is None and result["errors"] == 0
    assert result["received"] == result["expected"] == result["sent"] == 3_000
    assert result["msgs_per_s"] > 0 and result["cpu_us_per_msg"] > 0 and result["rss_mb"] > 0


def test_a_paced_run_reports_latency_percentiles() -> None:
    spec = CLIENTS["async-raw"]
    # 0.75 s at 2 000 msg/s: the first 0.5 s are warm-up, left out of the latency figures.
    result = run_one(spec, Scenario(("btcusdt@trade",), 1_500, 2_000), python_for(spec), latency=True)
    assert result["received"] == 1_500 and result["error"] is None
    lat = result["latency_us"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]


def test_a_client_that_cannot_run_gives_a_reason_not_a_number() -> None:
    broken = ClientSpec("broken", "does_not_exist.py")
    with pytest.raises(RunError, match="exited before READY"):
        run_one(broken, Scenario(("btcusdt@trade",), 10, 0), python_for(broken), latency=False)


def test_summary_takes_medians_and_shows_unavailable_clients_as_na() -> None:
    plan = Plan(clients=("raw-orjson", "async-typed", "unicorn"), rates=(), repeat=3, count=10, seconds=1)

    def run(key: str, rep: int, rate: float) -> dict[str, object]:
        return {"client": key, "scenario": "max-1", "rep": rep,
                "result": {"msgs_per_s": rate, "cpu_us_per_msg": 1e6 / rate, "rss_mb": 30.0 + rep,
                           "expected": 10, "received": 10 - rep, "error": None}}

    runs = [run("raw-orjson", r, v) for r, v in enumerate((100.0, 300.0, 200.0))]
    runs += [run("async-typed", r, v) for r, v in enumerate((50.0, 70.0, 60.0))]
    runs.append({"client": "async-typed", "scenario": "max-10", "rep": 0, "error": "client exited"})
    summary = summarize(runs, plan, {"unicorn": "install failed: no such version"})
    assert summary["max-1"]["raw-orjson"]["msgs_per_s"] == 200.0
    assert summary["max-1"]["async-typed"]["msgs_per_s"] == 60.0
    assert summary["max-1"]["async-typed"]["lost"] == 1 and summary["max-1"]["async-typed"]["rss_mb"] == 31.0
    assert summary["max-10"]["async-typed"] == {"na": "client exited"}
    assert summary["max-1"]["unicorn"] == {"na": "install failed: no such version"}
    text = table({"machine": {"date_utc": "d", "nproc": 2, "cpu": "c", "python": "3", "load_avg": (0, 0, 0)},
                  "plan": {"repeat": 3}, "summary": summary})
    assert "n/a: install failed: no such version" in text and "n/a: client exited" in text
    assert "0.30" in text  # async-typed at 60 msg/s against the baseline's 200
