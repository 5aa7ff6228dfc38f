"""Draw a results JSON as a PNG (runs in the chart venv: matplotlib is no dependency of binance-ws).

    benchmarks/.venvs/chart/bin/python benchmarks/harness/chart.py results.json chart.png

Left: messages a second into the callback at full speed (one stream, ten streams). Right: delivery
latency p50 and p99 at each offered rate (log scale). Clients without a number are left out.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(src: str, dst: str) -> None:
    with open(src) as fh:
        doc: dict[str, Any] = json.load(fh)
    summary = doc["summary"]
    names = doc.get("names", {})
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 6))
    clients = doc["plan"]["clients"]
    label = [names.get(c, c) for c in clients]
    width = 0.4
    for i, scen in enumerate(("max-1", "max-10")):
        row = summary.get(scen, {})
        values = [row.get(c, {}).get("msgs_per_s") or 0 for c in clients]
        left.barh([y + i * width for y in range(len(clients))], values, height=width,
                  label="1 stream" if scen == "max-1" else "10 streams")
    left.set_yticks([y + width / 2 for y in range(len(clients))], label)
    left.invert_yaxis()
    left.set_xlabel("messages per second into the callback (higher is better)")
    left.legend()
    rates = [s for s in summary if s.startswith("rate-")]
    bar = width * 2 / max(1, 2 * len(rates))
    k = 0
    for scen in rates:
        for pct in ("p50", "p99"):
            values = [(summary[scen].get(c, {}).get("latency_us") or {}).get(pct) or 0 for c in clients]
            right.barh([y + k * bar for y in range(len(clients))], values, height=bar,
                       label=f"{pct} at {scen[5:]} msg/s")
            k += 1
    right.set_yticks([y + width / 2 for y in range(len(clients))], label)
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("delivery latency, microseconds (log, lower is better)")
    right.legend()
    m = doc["machine"]
    fig.suptitle(f"binance-ws vs peers over loopback — {m['date_utc']} UTC, {m['nproc']} cores, {m['cpu']}")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
