"""Measurement shared by every benchmark client (standard library only: it also runs in the peers' venvs).

A client script reads its job from ``argv[1]`` (JSON: ``url``, ``streams``, ``count``, ``latency``,
``warmup``, ``mode``, ``start_timeout``, ``idle_timeout``), connects with the library under test,
prints ``READY`` once subscribed, feeds each message's send time (the trade's ``E``, ns) to
:meth:`Probe.hook`'s function and finally prints one JSON line of results (:meth:`Probe.report`).

What it measures, from the first message to the last: messages a second into the callback, CPU
microseconds a message (``time.process_time``: every thread of the process), peak RSS (``VmHWM``),
and with ``latency`` the delivery latency of every message after the first ``warmup`` ones (receive
wall clock minus the server's send stamp; both ``time.time_ns`` on one machine). A run ends when
every message arrived, or when nothing arrived for ``idle_timeout`` seconds (the rest count as lost).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any

#: Percentiles reported, in percent.
PERCENTILES = (50.0, 99.0, 99.9)
POLL_S = 0.02


class Probe:
    """Counts messages and takes the timings; see the module docstring."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.expected: int = job["count"]
        self.latency: bool = job["latency"]
        self.count = [0]
        self.lat = array("q")
        self.marks: dict[str, tuple[float, float]] = {}
        self.errors = 0
        #: Resident memory (MB) once a tenth of the messages arrived and after the last one: flat memory
        #: over a long run means these two agree.
        self.rss: dict[str, float] = {}
        self._progress = (0, 0.0, 0.0)
        self._progress_at = time.monotonic()

    def hook(self) -> Callable[[int], None]:
        """The per-message function: call it with the message's ``E``."""
        count, expected, marks = self.count, self.expected, self.marks
        perf, cpu = time.perf_counter, time.process_time

        if self.latency:
            append, now = self.lat.append, time.time_ns

            warmup = self.job.get("warmup", 0)

            def on(sent_ns: int) -> None:
                n = count[0] = count[0] + 1
                if n > warmup:
                    append(now() - sent_ns)
                if n == 1 or n == expected:
                    marks["first" if n == 1 else "last"] = (perf(), cpu())
        else:
            settled = max(2, expected // 10)
            rss = self.rss

            def on(sent_ns: int) -> None:
                n = count[0] = count[0] + 1
                if n == 1 or n == expected:
                    marks["first" if n == 1 else "last"] = (perf(), cpu())
                    if n == expected:
                        rss["end"], rss["anon_end"] = _rss_mb(), _status_mb("RssAnon")
                elif n == settled:
                    rss["settled"], rss["anon_settled"] = _rss_mb(), _status_mb("RssAnon")
        return on

    def error(self, msg: Any) -> None:
        """An error event or a message the client could not read (counted, not timed)."""
        self.errors += 1

    @staticmethod
    def ready() -> None:
        print("READY", flush=True)

    def finished(self) -> bool:
        """Poll: True once every message arrived or the run went idle."""
        n = self.count[0]
        now = time.monotonic()
        if n >= self.expected:
            return True
        if n != self._progress[0]:
            self._progress = (n, time.perf_counter(), time.process_time())
            self._progress_at = now
            return False
        limit = self.job["idle_timeout"] if n else self.job["start_timeout"]
        return now - self._progress_at > limit

    def wait(self) -> None:
        """Block (threaded clients) until :meth:`finished`."""
        while not self.finished():
            time.sleep(POLL_S)

    async def wait_async(self) -> None:
        """Await (asyncio clients) until :meth:`finished`."""
        while not self.finished():
            await asyncio.sleep(POLL_S)

    def report(self, error: str | None = None) -> None:
        """Print the results as one JSON line."""
        n = self.count[0]
        first = self.marks.get("first")
        last = self.marks.get("last") or (self._progress[1:] if n > 1 else None)
        out: dict[str, Any] = {"received": n, "expected": self.expected, "errors": self.errors,
                               "rss_mb": _peak_rss_mb(), "error": error}
        if "settled" in self.rss and "end" in self.rss:
            out["rss_settled_mb"], out["rss_end_mb"] = self.rss["settled"], self.rss["end"]
            out["anon_settled_mb"], out["anon_end_mb"] = self.rss["anon_settled"], self.rss["anon_end"]
        if first is not None and last is not None and n > 1 and last[0] > first[0]:
            elapsed = last[0] - first[0]
            out["elapsed_s"] = elapsed
            out["msgs_per_s"] = (n - 1) / elapsed
            out["cpu_us_per_msg"] = (last[1] - first[1]) / (n - 1) * 1e6
        if self.latency and self.lat:
            ordered = sorted(self.lat)
            out["latency_us"] = {f"p{p:g}": ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] / 1e3
                                 for p in PERCENTILES}
            out["latency_us"]["max"] = ordered[-1] / 1e3
        print("RESULT " + json.dumps(out), flush=True)


def _status_mb(field: str) -> float:
    """A memory figure from ``/proc/self/status`` (``VmHWM``: peak resident, ``VmRSS``: current,
    ``RssAnon``: the anonymous part of it, the heap), MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def job_from_argv() -> dict[str, Any]:
    job: dict[str, Any] = json.loads(sys.argv[1])
    return job


def run_guarded(main: Callable[[Probe], None]) -> None:
    """Run a client's ``main(probe)``; any exception is reported as the run's error instead of a crash."""
    probe = Probe(job_from_argv())
    try:
        main(probe)
    except Exception as exc:  # the harness shows a peer's failure as its result
        probe.report(f"{type(exc).__name__}: {exc}")
        return
    probe.report()
