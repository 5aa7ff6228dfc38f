"""Cost of the sequence check on the hot path, per message, against an empty call in the same run.

Every trade, aggTrade and diff-depth message of a dict subscriber goes through one ``observe``; the
baseline is the cheapest thing the router could do instead (call a function that reads the same key).

    python benchmarks/core_sequence.py            # 200 000 messages per tracker, best of 7
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from typing import Any

from binance_ws.core.sequence import AggTradeTracker, FuturesDepthTracker, SpotDepthTracker, TradeTracker


def _per_message(msgs: list[dict[str, Any]], make: Callable[[], Callable[[dict[str, Any]], Any]],
                 repeat: int) -> float:
    def run() -> None:
        observe = make()
        for m in msgs:
            observe(m)

    return min(timeit.repeat(run, number=1, repeat=repeat)) / len(msgs) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n = args.count
    cases: list[tuple[str, list[dict[str, Any]], Callable[[], Callable[[dict[str, Any]], Any]], str]] = [
        ("trade t", [{"e": "trade", "t": i} for i in range(n)], lambda: TradeTracker().observe, "t"),
        ("aggTrade a", [{"e": "aggTrade", "a": i} for i in range(n)], lambda: AggTradeTracker().observe, "a"),
        ("spot depth U/u", [{"e": "depthUpdate", "U": 3 * i, "u": 3 * i + 2} for i in range(n)],
         lambda: SpotDepthTracker().observe, "u"),
        ("futures depth pu", [{"e": "depthUpdate", "U": 10 * i + 5, "u": 10 * i + 9, "pu": 10 * i - 1}
                              for i in range(n)], lambda: FuturesDepthTracker().observe, "u"),
    ]
    for name, msgs, make, key in cases:
        def baseline(key: str = key) -> Callable[[dict[str, Any]], Any]:
            return lambda m: m[key]

        base = _per_message(msgs, baseline, args.repeat)
        cost = _per_message(msgs, make, args.repeat)
        print(f"{name:<17} observe {cost:6.1f} ns/msg  baseline call {base:5.1f} ns  "
              f"(+{cost - base:.1f} ns, {cost / base:.2f}x)")


if __name__ == "__main__":
    main()
