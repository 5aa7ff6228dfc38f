"""Memory over a long run: resident memory after a tenth of the messages and after the last, per client.

Uses the suite's load server and clients (``benchmarks/harness``): one stream at full speed, ``--count``
messages (10 M by default), each client once. Flat means the end figure is within 10% of the settled one.

Flatness is judged on anonymous resident memory (``RssAnon``: the heap, where a leak shows). Total RSS is
printed beside it but also counts file-backed pages (shared libraries), which the kernel may drop and
fault back in at will: on this VM a DAMON scheme pages out cold memory.

Flat out (the default), a client that decodes slower than the server sends is always behind, and picows
doubles its read buffer each time one read fills it (it never shrinks it): a one-time step bounded by
the kernel's receive window, which the bare picows+orjson client shows too. ``--rate`` offers the
messages at a pace the client keeps up with, which measures the library rather than that backlog.

    python -m benchmarks.memory                          # 10 M messages, binance-ws modes + the ceiling
    python -m benchmarks.memory --rate 300000            # offered at 300k msg/s instead of flat out
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
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered msg/s (default 0: as fast as the server can send)")
    args = parser.parse_args(argv)
    print(f"{'client':<26} {'messages':>11} {'lost':>6} {'msg/s':>10} {'heap at 10% MB':>15} "
          f"{'heap at end MB':>15} {'growth':>7} {'RSS growth':>11}")
    worst = 0.0
    for key in args.clients.split(","):
        spec = CLIENTS[key]
        try:
            r = run_one(spec, Scenario(SINGLE_STREAM, args.count, args.rate), python_for(spec), latency=False)
        except RunError as exc:
            print(f"{spec.name:<26} n/a: {exc}")
            continue
        if "anon_end_mb" not in r:
            print(f"{spec.name:<26} n/a: {r.get('error') or 'run did not finish'}")
            continue
        growth = r["anon_end_mb"] / r["anon_settled_mb"] - 1
        rss_growth = r["rss_end_mb"] / r["rss_settled_mb"] - 1
        worst = max(worst, growth)
        print(f"{spec.name:<26} {r['received']:>11,} {r['expected'] - r['received']:>6} "
              f"{r.get('msgs_per_s', 0):>10,.0f} {r['anon_settled_mb']:>15.1f} {r['anon_end_mb']:>15.1f} "
              f"{growth:>+7.1%} {rss_growth:>+11.1%}")
    print(f"worst heap growth {worst:+.1%} (flat: under +10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
