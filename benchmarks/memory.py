"""Memory over a long run: resident memory after a tenth of the messages and after the last, per client.

Uses the suite's load server and clients (``benchmarks/harness``): one stream at full speed, ``--count``
messages (10 M by default), each client once. Flat means the end figure is within 10% of the settled one.

    python -m benchmarks.memory                          # 10 M messages, binance-ws modes + the ceiling
    python -m benchmarks.memory --count 2000000 --clients async-dict,threaded
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.harness.loadserver import Scenario
from benchmarks.harness.runner import RunError, python_for, run_one
from benchmarks.harness.suite import CLIENTS, SINGLE_STREAM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--clients", default="raw-orjson,async-dict,async-typed,async-raw,threaded")
    args = parser.parse_args(argv)
    print(f"{'client':<26} {'messages':>11} {'lost':>6} {'msg/s':>10} {'RSS at 10% MB':>14} "
          f"{'RSS at end MB':>14} {'growth':>7}")
    worst = 0.0
    for key in args.clients.split(","):
        spec = CLIENTS[key]
        try:
            r = run_one(spec, Scenario(SINGLE_STREAM, args.count, 0), python_for(spec), latency=False)
        except RunError as exc:
            print(f"{spec.name:<26} n/a: {exc}")
            continue
        if "rss_end_mb" not in r:
            print(f"{spec.name:<26} n/a: {r.get('error') or 'run did not finish'}")
            continue
        growth = r["rss_end_mb"] / r["rss_settled_mb"] - 1
        worst = max(worst, growth)
        print(f"{spec.name:<26} {r['received']:>11,} {r['expected'] - r['received']:>6} "
              f"{r.get('msgs_per_s', 0):>10,.0f} {r['rss_settled_mb']:>14.1f} {r['rss_end_mb']:>14.1f} "
              f"{growth:>+7.1%}")
    print(f"worst growth {worst:+.1%} (flat: under +10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
