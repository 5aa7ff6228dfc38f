"""Recording read/write throughput, and replay delivery over loopback, against naive baselines.

    python benchmarks/bench_recording.py [--rounds 3] [--skip-replay]

Reading: ``read_recording`` (slices the combined frame, no JSON decoding) against the obvious reader
that decodes each line with orjson and re-encodes ``data`` (which also loses the exact bytes).
Writing: ``RecordingWriter`` (buffered) against one ``gzip`` write per line. Replay: messages a second
from ``Replay(speed=0)`` through the simulator to one picows client on ``/stream``, against reading the
same file alone (the ratio is the cost of the network path). Figures are best-of-rounds, same process.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from binance_ws.recording import RecordingWriter, read_recording

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "recordings"
DATA = RECORDINGS / "spot_btcusdt_20240808.hftbacktest.gz"


def _best(fn: Callable[[], int], rounds: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(rounds):
        t = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t)
    return best, n


def naive_read(path: Path) -> int:
    n = 0
    with gzip.open(path, "rb") as fh:
        for line in fh:
            _ns, _, body = line.partition(b" ")
            doc = orjson.loads(body)
            if "stream" in doc:
                orjson.dumps(doc["data"])
            n += 1
    return n


def ours_read(path: Path) -> int:
    return sum(1 for _ in read_recording(path))


def naive_write(path: Path, records: list) -> int:
    with gzip.open(path, "wb", compresslevel=6) as fh:
        for r in records:
            fh.write(b"%d %s %s\n" % (r.recv_ns, (r.stream or "-").encode(), r.payload))
    return len(records)


def ours_write(path: Path, records: list) -> int:
    with RecordingWriter(path) as w:
        w.write_all(records)
    return w.count


async def replay_rate() -> tuple[float, int]:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    from binance_ws.sim import Simulator
    from binance_ws.sim.replay import Replay

    class Counter(WSListener):
        n = 0

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                self.n += 1

    replay = Replay(DATA, speed=0)
    async with Simulator(replay=replay, flow_rate=0.0) as sim:
        url = f"{sim.stream_url}/stream?streams=" + "/".join(sorted(replay.streams))
        t = time.perf_counter()
        transport, client = await ws_connect(Counter, url)
        while client.n < replay.messages:
            await asyncio.sleep(0.005)
        took = time.perf_counter() - t
        transport.disconnect()
    return took, client.n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-replay", action="store_true")
    args = ap.parse_args()
    records = list(read_recording(DATA))

    base, n = _best(lambda: naive_read(DATA), args.rounds)
    ours, _ = _best(lambda: ours_read(DATA), args.rounds)
    print(f"read   {n} lines: naive {n / base:,.0f}/s, read_recording {n / ours:,.0f}/s, x{base / ours:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("gz", "zst"):
            out = Path(tmp) / f"r.{suffix}"
            base, n = _best(lambda: naive_write(Path(tmp) / "naive.gz", records), args.rounds)
            ours, _ = _best(lambda out=out: ours_write(out, records), args.rounds)
            print(f"write  {n} records .{suffix}: naive gzip {n / base:,.0f}/s, RecordingWriter "
                  f"{n / ours:,.0f}/s, x{base / ours:.2f}, {out.stat().st_size / 1e6:.2f} MB")

    if not args.skip_replay:
        took, n = asyncio.run(replay_rate())
        read_s, _ = _best(lambda: ours_read(DATA), 1)
        print(f"replay {n} messages speed=0 to one picows client: {n / took:,.0f} msg/s "
              f"({took:.2f} s; reading alone {read_s:.2f} s, x{took / read_s:.1f})")


if __name__ == "__main__":
    main()
