"""The comparison suite: which clients, which scenarios, interleaved repetitions, medians, the table.

Scenarios: ``max-1`` and ``max-10`` (as fast as the client takes them, one stream or ten streams on one
combined connection: throughput, CPU a message, peak RSS, lost) and ``rate-<R>`` for each offered rate
(one stream paced at R msg/s: the same plus delivery-latency percentiles, the first
``LATENCY_WARMUP_S`` of messages left out). Repetitions are interleaved
(every client and scenario once, then again) so slow drift of a shared machine spreads over all of
them; each figure is the median over the repetitions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks.harness import venvs
from benchmarks.harness.loadserver import Scenario
from benchmarks.harness.runner import LATENCY_WARMUP_S, ClientSpec, RunError, python_for, run_one

RESULTS_DIR: Final = Path(__file__).resolve().parent.parent / "results"
CHART_SCRIPT: Final = Path(__file__).resolve().parent / "chart.py"

#: Every client, by the key ``--clients`` takes. The raw ones are the ceilings (no library at all).
CLIENTS: Final[dict[str, ClientSpec]] = {
    "raw-orjson": ClientSpec("raw picows+orjson", "raw_picows.py", "orjson", note="ceiling"),
    "raw-msgspec": ClientSpec("raw picows+msgspec", "raw_picows.py", "msgspec", note="ceiling"),
    "raw-none": ClientSpec("raw picows, no decode", "raw_picows.py", "none", note="ceiling of raw mode"),
    "async-dict": ClientSpec("binance-ws async dict", "bws_async.py", "dict"),
    "async-typed": ClientSpec("binance-ws async typed", "bws_async.py", "typed"),
    "async-raw": ClientSpec("binance-ws async raw", "bws_async.py", "raw"),
    "threaded": ClientSpec("binance-ws threaded", "bws_threaded.py", "dict"),
    "python-binance": ClientSpec("python-binance 1.0.37", "python_binance.py", venv="python-binance"),
    "unicorn": ClientSpec("unicorn-bwa 2.16.1", "unicorn.py", venv="unicorn"),
    "binance-sdk-spot": ClientSpec("binance-sdk-spot 13.3.0", "binance_sdk.py", venv="binance-sdk-spot"),
}
#: The ceiling the "vs raw" column divides by.
BASELINE: Final = "raw-orjson"
SINGLE_STREAM: Final = ("btcusdt@trade",)
#: Ten trade streams on one combined connection (real symbols, so every client accepts the names).
TEN_STREAMS: Final = tuple(f"{s}@trade" for s in ("btcusdt", "ethusdt", "bnbusdt", "solusdt", "xrpusdt",
                                                  "adausdt", "dogeusdt", "trxusdt", "linkusdt", "ltcusdt"))


@dataclass(frozen=True, slots=True)
class Plan:
    """What to run: client keys, offered rates, repetitions, messages per max-rate run, seconds per
    paced run."""

    clients: tuple[str, ...]
    rates: tuple[float, ...]
    repeat: int
    count: int
    seconds: float

    def scenarios(self) -> dict[str, tuple[Scenario, bool]]:
        """Scenario name -> (scenario, measure latency)."""
        out: dict[str, tuple[Scenario, bool]] = {
            "max-1": (Scenario(SINGLE_STREAM, self.count, 0), False),
            "max-10": (Scenario(TEN_STREAMS, self.count, 0), False),
        }
        for rate in self.rates:
            # The warm-up the latency figures leave out comes on top of the measured seconds.
            count = max(1, int(rate * (self.seconds + LATENCY_WARMUP_S)))
            out[f"rate-{rate:g}"] = (Scenario(SINGLE_STREAM, count, rate), True)
        return out


def prepare(keys: Iterable[str], log: Callable[[str], None]) -> dict[str, str]:
    """Install the venvs the chosen clients need; returns client key -> reason for those that cannot
    run (shown as n/a)."""
    unavailable = {}
    for key in keys:
        spec = CLIENTS[key]
        if spec.venv is None:
            continue
        log(f"venv {spec.venv}: installing (pinned) if needed ...")
        try:
            venvs.ensure(spec.venv)
        except venvs.VenvError as exc:
            unavailable[key] = f"install failed: {exc}"
    return unavailable


def run(plan: Plan, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the plan (interleaved repetitions) and return the results document."""
    unavailable = prepare(plan.clients, log)
    scenarios = plan.scenarios()
    runs: list[dict[str, Any]] = []
    for rep in range(plan.repeat):
        for scen_name, (scenario, latency) in scenarios.items():
            for key in plan.clients:
                if key in unavailable:
                    continue
                spec = CLIENTS[key]
                started = time.monotonic()
                entry: dict[str, Any] = {"client": key, "scenario": scen_name, "rep": rep}
                try:
                    entry["result"] = run_one(spec, scenario, python_for(spec), latency=latency)
                except RunError as exc:
                    entry["error"] = str(exc)
                runs.append(entry)
                log(f"rep {rep + 1}/{plan.repeat} {scen_name:>10} {spec.name:<26} "
                    f"{_brief(entry)} ({time.monotonic() - started:.1f} s)")
    return {"machine": machine(), "plan": dataclasses.asdict(plan),
            "unavailable": unavailable, "runs": runs,
            "summary": summarize(runs, plan, unavailable)}


def _brief(entry: dict[str, Any]) -> str:
    if "error" in entry:
        return f"n/a ({entry['error'][:80]})"
    r = entry["result"]
    if r.get("error"):
        return f"n/a ({r['error'][:80]})"
    return f"{r.get('msgs_per_s', 0):>10,.0f} msg/s lost {r['expected'] - r['received']}"


def machine() -> dict[str, Any]:
    """Where the figures were taken."""
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "nproc": os.cpu_count(),
            "cpu": model, "python": platform.python_version(), "load_avg": os.getloadavg()}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]], plan: Plan, unavailable: dict[str, str]) -> dict[str, Any]:
    """Per scenario and client: medians over the repetitions, or the reason there is no number."""
    out: dict[str, Any] = {}
    for scen_name in plan.scenarios():
        row: dict[str, Any] = {}
        for key in plan.clients:
            if key in unavailable:
                row[key] = {"na": unavailable[key]}
                continue
            good = [r["result"] for r in runs if r["client"] == key and r["scenario"] == scen_name
                    and "result" in r and not r["result"].get("error") and "msgs_per_s" in r["result"]]
            if not good:
                reasons = [r.get("error") or r.get("result", {}).get("error") or "no messages"
                           for r in runs if r["client"] == key and r["scenario"] == scen_name]
                row[key] = {"na": reasons[0] if reasons else "not run"}
                continue
            cell: dict[str, Any] = {
                "msgs_per_s": _median([g["msgs_per_s"] for g in good]),
                "cpu_us_per_msg": _median([g["cpu_us_per_msg"] for g in good]),
                "rss_mb": _median([g["rss_mb"] for g in good]),
                "lost": _median([g["expected"] - g["received"] for g in good]),
                "reps": len(good),
            }
            lats = [g["latency_us"] for g in good if "latency_us" in g]
            if lats:
                cell["latency_us"] = {p: _median([lat[p] for lat in lats]) for p in lats[0]}
            row[key] = cell
        out[scen_name] = row
    return out


def table(doc: dict[str, Any]) -> str:
    """The summary as plain-text tables, one per scenario."""
    lines = []
    m = doc["machine"]
    lines.append(f"{m['date_utc']} UTC, {m['nproc']} cores, {m['cpu']}, Python {m['python']}, "
                 f"load avg {', '.join(f'{x:.1f}' for x in m['load_avg'])}; medians of "
                 f"{doc['plan']['repeat']} interleaved repetition(s)")
    for scen_name, row in doc["summary"].items():
        latency = scen_name.startswith("rate-")
        lines.append("")
        head = (f"{scen_name:<10} {'client':<26} {'msg/s':>10} {'vs raw':>7} {'CPU us/msg':>10} "
                f"{'RSS MB':>7} {'lost':>6}")
        if latency:
            head += f" {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'max us':>8}"
        lines.append(head)
        base = row.get(BASELINE, {}).get("msgs_per_s")
        for key, cell in row.items():
            name = CLIENTS[key].name
            if "na" in cell:
                lines.append(f"{'':<10} {name:<26} n/a: {cell['na'][:100]}")
                continue
            ratio = f"{cell['msgs_per_s'] / base:.2f}" if base and not latency else ""
            text = (f"{'':<10} {name:<26} {cell['msgs_per_s']:>10,.0f} {ratio:>7} "
                    f"{cell['cpu_us_per_msg']:>10.2f} {cell['rss_mb']:>7.1f} {cell['lost']:>6.0f}")
            if latency and "latency_us" in cell:
                lat = cell["latency_us"]
                text += f" {lat['p50']:>8.0f} {lat['p99']:>8.0f} {lat['p99.9']:>9.0f} {lat['max']:>8.0f}"
            lines.append(text)
    return "\n".join(lines)


def save(doc: dict[str, Any], *, chart: bool = True, log: Callable[[str], None] = print) -> Path:
    """Write the JSON document (and, with ``chart``, a PNG next to it); return the JSON path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS_DIR / f"bench-{stamp}.json"
    path.write_text(json.dumps(doc, indent=1))
    if chart:
        try:
            python = venvs.ensure("chart")
        except venvs.VenvError as exc:
            log(f"chart skipped: {exc}")
            return path
        png = path.with_suffix(".png")
        proc = subprocess.run([str(python), str(CHART_SCRIPT), str(path), str(png)], capture_output=True,
                              text=True, check=False)
        log(f"chart: {png}" if proc.returncode == 0 else f"chart failed: {proc.stderr.strip()[-300:]}")
    return path


__all__ = ["BASELINE", "CLIENTS", "Plan", "run", "save", "summarize", "table"]
