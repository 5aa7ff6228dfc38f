"""``python -m benchmarks``: binance-ws against the raw ceilings and the peer libraries, over loopback.

A load server (its own process, pinned to core 0) sends Binance trade frames; each client runs in its
own process on core 1 (peers from their own pinned venvs under ``benchmarks/.venvs/``). Printed: a
table per scenario (messages a second, ratio to raw picows+orjson, CPU us a message, peak RSS, lost,
latency percentiles at the offered rates); written: ``benchmarks/results/bench-<time>.json`` and a PNG.

    python -m benchmarks                       # everything, 3 interleaved repetitions
    python -m benchmarks --quick               # small counts, 1 repetition (a minute or two)
    python -m benchmarks --clients raw-orjson,async-typed --rates 5000 --repeat 5
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.harness.suite import CLIENTS, Plan, run, save, table

DEFAULT_RATES = (5_000.0, 50_000.0)


def parse(argv: list[str] | None = None) -> tuple[Plan, bool]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="30k messages, 1 s paced runs, 1 repetition")
    parser.add_argument("--clients", default=",".join(CLIENTS),
                        help=f"comma-separated, from: {', '.join(CLIENTS)}")
    parser.add_argument("--repeat", type=int, default=None, help="interleaved repetitions (default 3)")
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in DEFAULT_RATES),
                        help="offered rates (msg/s) of the latency runs, comma-separated")
    parser.add_argument("--count", type=int, default=None, help="messages per max-rate run (300000)")
    parser.add_argument("--seconds", type=float, default=None, help="length of a paced run (5)")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG (and the chart venv)")
    args = parser.parse_args(argv)
    keys = tuple(k.strip() for k in args.clients.split(",") if k.strip())
    unknown = [k for k in keys if k not in CLIENTS]
    if unknown:
        parser.error(f"unknown client(s) {', '.join(unknown)}; choose from {', '.join(CLIENTS)}")
    try:
        rates = tuple(float(r) for r in args.rates.split(",") if r.strip())
    except ValueError:
        parser.error(f"--rates must be numbers, got {args.rates!r}")
    plan = Plan(clients=keys, rates=rates,
                repeat=args.repeat or (1 if args.quick else 3),
                count=args.count or (30_000 if args.quick else 300_000),
                seconds=args.seconds or (1.0 if args.quick else 5.0))
    return plan, not args.no_chart


def main(argv: list[str] | None = None) -> int:
    plan, chart = parse(argv)
    doc = run(plan)
    doc["names"] = {k: CLIENTS[k].name for k in plan.clients}
    print()
    print(table(doc))
    path = save(doc, chart=chart)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
