"""Order-book benchmark: level updates applied per second, and the cost of reading the top 20 levels.

Compares :class:`binance_ws.core.book.OrderBook` with the plain dict-and-sort book python-binance uses
(``binance.ws.depthcache.DepthCache`` when python-binance is installed, else a faithful copy: a dict from
price string to qty, sorted in full on every read), in the same process, on:

* real traffic: the BTCUSDT spot diffs of ``spot_btcusdt_20240808.hftbacktest.gz`` applied on top of its
  recorded snapshot (run several times over);
* synthetic diffs on books of several sizes (updates clustered near the top, 30% deletes);
* top-20 reads (both sides) on books of several sizes.

Run: ``python benchmarks/book.py`` (about 30 s; ``--quick`` for a smoke run). Figures are the best of
``--repeat`` runs; ratios are ours / baseline.
"""

from __future__ import annotations

import argparse
import gzip
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from binance_ws.core.book import OrderBook
from binance_ws.core.booksync import BookSync

RECORDING = (Path(__file__).resolve().parents[2] / "shared" / "data" / "recordings"
             / "spot_btcusdt_20240808.hftbacktest.gz")

Diff = tuple[list[list[str]], list[list[str]]]


class DictSortBook:
    """What python-binance's DepthCache does: dict keyed by the price string, a full sort on every read."""

    def __init__(self) -> None:
        self._bids: dict[str, float] = {}
        self._asks: dict[str, float] = {}

    def add_bid(self, bid: Sequence[str]) -> None:
        self._bids[bid[0]] = float(bid[1])
        if bid[1] == "0.00000000":
            del self._bids[bid[0]]

    def add_ask(self, ask: Sequence[str]) -> None:
        self._asks[ask[0]] = float(ask[1])
        if ask[1] == "0.00000000":
            del self._asks[ask[0]]

    def get_bids(self) -> list[list[float]]:
        return sorted(([float(p), float(q)] for p, q in self._bids.items()), key=lambda x: x[0], reverse=True)

    def get_asks(self) -> list[list[float]]:
        return sorted(([float(p), float(q)] for p, q in self._asks.items()), key=lambda x: x[0])


def _baseline_factory() -> tuple[str, Callable[[], Any]]:
    try:
        from binance.ws.depthcache import DepthCache
    except ImportError:
        return "dict-and-sort (copy of python-binance's)", DictSortBook
    return "python-binance 1.0.x DepthCache", lambda: DepthCache("BTCUSDT")


def _load_recording() -> tuple[dict[str, Any], list[Diff]]:
    snapshot: dict[str, Any] | None = None
    diffs: list[Diff] = []
    with gzip.open(RECORDING) as f:
        for line in f:
            msg = orjson.loads(line.split(b" ", 1)[1])
            if "lastUpdateId" in msg:
                snapshot = msg
            elif "@depth" in msg["stream"] and snapshot is not None:
                data = msg["data"]
                if data["u"] > snapshot["lastUpdateId"]:
                    diffs.append((data["b"], data["a"]))
    assert snapshot is not None
    return snapshot, diffs


def _synthetic(levels: int, n_events: int, seed: int = 7) -> tuple[dict[str, Any], list[Diff]]:
    rng = random.Random(seed)
    mid, tick = 60_000.0, 0.01
    snapshot = {
        "lastUpdateId": 1,
        "bids": [[f"{mid - (i + 1) * tick:.8f}", "1.00000000"] for i in range(levels)],
        "asks": [[f"{mid + i * tick:.8f}", "1.00000000"] for i in range(levels)],
    }
    diffs: list[Diff] = []
    for _ in range(n_events):
        bids: list[list[str]] = []
        asks: list[list[str]] = []
        for _ in range(20):  # PROTOCOL 4.12: about 17-20 levels a side per event on average
            offset = min(int(rng.expovariate(1 / 40)), levels - 1)
            qty = "0.00000000" if rng.random() < 0.3 else f"{rng.random() * 3:.8f}"
            if rng.random() < 0.5:
                bids.append([f"{mid - (offset + 1) * tick:.8f}", qty])
            else:
                asks.append([f"{mid + offset * tick:.8f}", qty])
        diffs.append((bids, asks))
    return snapshot, diffs


def _best(repeat: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(repeat))


def _apply_ours(snapshot: dict[str, Any], diffs: list[Diff], rounds: int) -> float:
    total = 0.0
    for _ in range(rounds):
        book = OrderBook()
        book.load_snapshot(snapshot["bids"], snapshot["asks"], snapshot["lastUpdateId"])
        apply = book.apply
        t0 = time.perf_counter()
        for bids, asks in diffs:
            apply(bids, asks)
        total += time.perf_counter() - t0
    return total


def _apply_baseline(factory: Callable[[], Any], snapshot: dict[str, Any], diffs: list[Diff],
                    rounds: int) -> float:
    total = 0.0
    for _ in range(rounds):
        book = factory()
        for bid in snapshot["bids"]:
            book.add_bid(bid)
        for ask in snapshot["asks"]:
            book.add_ask(ask)
        add_bid, add_ask = book.add_bid, book.add_ask
        t0 = time.perf_counter()
        for bids, asks in diffs:
            for bid in bids:
                add_bid(bid)
            for ask in asks:
                add_ask(ask)
        total += time.perf_counter() - t0
    return total


def bench_updates(label: str, snapshot: dict[str, Any], diffs: list[Diff], rounds: int, repeat: int,
                  factory: Callable[[], Any]) -> None:
    n = rounds * sum(len(b) + len(a) for b, a in diffs)
    ours = n / _best(repeat, lambda: _apply_ours(snapshot, diffs, rounds))
    base = n / _best(repeat, lambda: _apply_baseline(factory, snapshot, diffs, rounds))
    print(f"  {label:<34} ours {ours / 1e6:6.2f} M/s   baseline {base / 1e6:6.2f} M/s   "
          f"ratio {ours / base:5.2f}")


def bench_sync(repeat: int) -> None:
    """The same recording through the whole sync machine (sequence checks, ticker checks, integrity)."""
    events: list[tuple[str, dict[str, Any]]] = []
    with gzip.open(RECORDING) as f:
        for line in f:
            msg = orjson.loads(line.split(b" ", 1)[1])
            if "lastUpdateId" in msg:
                events.append(("snapshot", msg))
            elif "@depth" in msg["stream"]:
                events.append(("depth", msg["data"]))
            elif msg["stream"].endswith("@bookTicker"):
                events.append(("ticker", msg["data"]))
    levels = sum(len(d["b"]) + len(d["a"]) for k, d in events if k == "depth")

    applied: list[int] = []

    def run() -> float:
        # limit=5000: the recorded 1000-level snapshot then counts as the whole book, so every event is
        # applied (with limit=1000 the book leaves its known range after ~4 minutes and resyncs).
        sync = BookSync("BTCUSDT", limit=5000)
        on_diff, on_ticker, on_snapshot = sync.on_diff, sync.on_book_ticker, sync.on_snapshot
        t0 = time.perf_counter()
        for kind, data in events:
            if kind == "depth":
                on_diff(data, 0.0)
            elif kind == "ticker":
                on_ticker(data, 0.0)
            else:
                on_snapshot(data, 0.0)
        elapsed = time.perf_counter() - t0
        applied.append(sync.stats.applied)
        return elapsed

    best = _best(repeat, run)
    print(f"  BTCUSDT recording through BookSync  {levels / best / 1e6:6.2f} M level updates/s "
          f"({len(events) / best / 1e3:.0f} k messages/s incl. {sum(k == 'ticker' for k, _ in events)} "
          f"bookTickers; {applied[-1]} diff events applied)")


def bench_top20(levels: int, reads: int, repeat: int, factory: Callable[[], Any]) -> None:
    snapshot, _ = _synthetic(levels, 0)
    ours_book = OrderBook()
    ours_book.load_snapshot(snapshot["bids"], snapshot["asks"], 1)
    base_book = factory()
    for bid in snapshot["bids"]:
        base_book.add_bid(bid)
    for ask in snapshot["asks"]:
        base_book.add_ask(ask)
    base_reads = max(2, reads * 100 // (levels * 10))  # the baseline sorts everything: read it less

    def ours() -> float:
        t0 = time.perf_counter()
        for _ in range(reads):
            ours_book.get_bids(20)
            ours_book.get_asks(20)
        return (time.perf_counter() - t0) / reads

    def base() -> float:
        t0 = time.perf_counter()
        for _ in range(base_reads):
            base_book.get_bids()[:20]
            base_book.get_asks()[:20]
        return (time.perf_counter() - t0) / base_reads

    o, b = _best(repeat, ours), _best(repeat, base)
    print(f"  {levels:>7} levels a side        ours {o * 1e6:8.2f} µs    baseline {b * 1e6:10.1f} µs   "
          f"ratio {o / b:8.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for a smoke run")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    name, factory = _baseline_factory()
    print(f"baseline: {name}")
    print("level updates applied per second (bids and asks of each diff event):")
    if RECORDING.exists():
        snapshot, diffs = _load_recording()
        bench_updates(f"BTCUSDT spot recording ({len(diffs)} ev)", snapshot, diffs,
                      max(1, int(5 * scale)), args.repeat, factory)
        bench_sync(args.repeat)
    for levels in (1_000, 10_000, 100_000):
        snapshot, diffs = _synthetic(levels, max(100, int(3_000 * scale)))
        bench_updates(f"synthetic, {levels} levels a side", snapshot, diffs, 1, args.repeat, factory)
    print("reading the top 20 of both sides (per read):")
    for levels in (100, 1_000, 10_000, 100_000):
        bench_top20(levels, max(100, int(20_000 * scale)), args.repeat, factory)


if __name__ == "__main__":
    main()
