"""Soak: a time-compressed week over 1,000 streams with random faults, checked against the simulator's truth.

The simulator runs in a child process (its own core) with Binance's periods divided by ``--scale``: the
24 h connection lifetime, the server's ping cadence and its pong deadline. The client side (this process)
uses the same scaled market (lifetime, ping cadence) and scaled manager settings (``ping_interval``,
``ping_timeout``, ``stable_after``; rotation follows the scaled lifetime). Two floors keep it honest: ping
cadences are at least 0.5 s and deadlines at least 2 s of wall time (``SoakOptions.min_ping_s``,
``min_deadline_s``), because what a client sends is limited in real time (5 messages a second, one slot of
which is for pings and pongs): a client cannot answer a ping every 20 ms, as Binance's own would not.
Connection-attempt and REST limits keep real time too, as :meth:`SimConfig.compressed` documents. The
client process's RSS includes the benchmark's own bookkeeping (small: id ranges, not ids).

Streams: ``--symbols`` generated symbols (heavy-tailed activity) x trade, aggTrade, depth@100ms,
bookTicker, spread over three managers; each manager carries each decode mode (dict, raw, typed).
A seeded RNG injects a fault from the simulator's whole list every ``--fault-every`` seconds (on
average), through its HTTP control endpoint, as an operator would.

Ground truth is observed inside the simulator's process from the outside, without changing it: an
extra exchange listener records every id the exchange *produced* (trade ``t``, aggTrade ``a``, book
update ids, which diff depth's ``U..u`` cover), a wrapper around the hub's ``publish`` records what it
was asked to publish (before the fault filter), and a counting attempt limiter records every handshake.
At the end the delivered ids are compared with the produced ones over ``[first delivered, mark]``:

* real gaps: runs of produced ids never delivered (a connection was down, a ``skip`` or a stall);
* reported gaps: the client's gap events; **lost silently**: missing ids no gap event covers (must be 0);
* **duplicated**: ids delivered twice (must be 0).

    python -m benchmarks.soak                       # a week at --scale 1000 (about 10 minutes)
    python -m benchmarks.soak --quick               # 20 s, 100 streams, a handful of faults
    python -m benchmarks.soak --minutes 3 --scale 3000 --json soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import json
import multiprocessing
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

import aiohttp
import orjson

from binance_ws import AsyncSocketManager, DepthCacheManager
from binance_ws.core.lifecycle import DEFAULT_PING_TIMEOUT_S, DEFAULT_STABLE_AFTER_S
from binance_ws.engine.delivery import RawMessage
from binance_ws.markets import local_market

#: The four stream kinds of each symbol, and which ones carry ids the client sequence-checks.
KINDS: tuple[str, ...] = ("trade", "aggTrade", "depth@100ms", "bookTicker")
ID_KINDS: frozenset[str] = frozenset({"trade", "aggTrade", "depth@100ms"})
MODES: tuple[str, ...] = ("dict", "raw", "typed")
DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
SERVER_PING_S = 20.0
PONG_DEADLINE_S = 60.0

Ranges = list[list[int]]


# -- integer range sets ---------------------------------------------------------------------------------
class RangeSet:
    """Disjoint, sorted, non-adjacent ``[lo, hi]`` ranges; ids mostly arrive in order, so adding is O(1)."""

    __slots__ = ("r",)

    def __init__(self, ranges: Ranges | None = None) -> None:
        self.r: Ranges = [list(x) for x in ranges] if ranges else []

    def add(self, lo: int, hi: int) -> int:
        """Add ``lo..hi``; returns how many of those ids were already in the set."""
        r = self.r
        if not r or lo > r[-1][1] + 1:
            r.append([lo, hi])
            return 0
        last = r[-1]
        if lo == last[1] + 1:
            last[1] = hi
            return 0
        # Out of order or overlapping: merge in the general way.
        i = bisect.bisect_left(r, [lo, lo]) - 1
        i = max(i, 0)
        overlap = 0
        j = i
        new_lo, new_hi = lo, hi
        while j < len(r) and r[j][0] <= hi + 1:
            a, b = r[j]
            if b < lo - 1:
                j += 1
                i = j
                continue
            overlap += max(0, min(b, hi) - max(a, lo) + 1)
            new_lo, new_hi = min(new_lo, a), max(new_hi, b)
            j += 1
        r[i:j] = [[new_lo, new_hi]]
        return overlap

    def size(self) -> int:
        return sum(b - a + 1 for a, b in self.r)

    def clip(self, lo: int, hi: int) -> RangeSet:
        return RangeSet([[max(a, lo), min(b, hi)] for a, b in self.r if b >= lo and a <= hi])

    def minus(self, other: RangeSet) -> RangeSet:
        out: Ranges = []
        o = other.r
        k = 0
        for a, b in self.r:
            cur = a
            while k < len(o) and o[k][1] < cur:
                k += 1
            m = k
            while m < len(o) and o[m][0] <= b:
                if o[m][0] > cur:
                    out.append([cur, o[m][0] - 1])
                cur = max(cur, o[m][1] + 1)
                m += 1
            if cur <= b:
                out.append([cur, b])
        return RangeSet(out)

    def first(self) -> int | None:
        return self.r[0][0] if self.r else None

    def last(self) -> int | None:
        return self.r[-1][1] if self.r else None


# -- the simulator's side (child process) ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SimParams:
    symbols: int
    seed: int
    scale: float
    median_rate: float
    min_ping_s: float
    min_deadline_s: float


def _sim_process(pipe: Pipe, params: SimParams) -> None:
    asyncio.run(_sim_main(pipe, params))


async def _sim_main(pipe: Pipe, p: SimParams) -> None:
    import resource

    from binance_ws.sim import Simulator
    from binance_ws.sim.config import Activity, SimConfig
    from binance_ws.sim.exchange import AggTrade, SymbolBook, Trade
    from binance_ws.sim.server import AttemptLimiter

    cfg = SimConfig.market(p.symbols, seed=p.seed, activity=Activity(median_rate=p.median_rate))
    cfg = dataclasses.replace(cfg, time_scale=p.scale, connection_lifetime_s=DAY_S / p.scale,
                              ping_interval_s=max(SERVER_PING_S / p.scale, p.min_ping_s),
                              pong_timeout_s=max(PONG_DEADLINE_S / p.scale, p.min_deadline_s))
    sim = Simulator(cfg)

    handshakes: list[float] = []

    class CountingLimiter(AttemptLimiter):
        """The server's own limiter, noting the time of every handshake (accepted or refused)."""

        def attempt(self, key: str, now: float) -> float:
            handshakes.append(now)
            return super().attempt(key, now)

    sim.stream_server.attempts = CountingLimiter(cfg.max_connections_per_window, cfg.connection_window_s)

    produced: dict[str, RangeSet] = {}
    names = {s.symbol: s.symbol.lower() for s in cfg.symbols}

    def note(stream: str, lo: int, hi: int) -> None:
        rs = produced.get(stream)
        if rs is None:
            rs = produced[stream] = RangeSet()
        rs.add(lo, hi)

    class Truth:
        """An exchange listener beside the feeds: every id the engine produces, subscribed or not."""

        def on_level(self, book: SymbolBook, is_bid: bool, price: int, qty: int) -> None:
            u = book.update_id
            note(f"{names[book.symbol]}@depth@100ms", u, u)

        def on_trade(self, book: SymbolBook, trade: Trade) -> None:
            note(f"{names[book.symbol]}@trade", trade.id, trade.id)

        def on_agg_trade(self, book: SymbolBook, agg: AggTrade) -> None:
            note(f"{names[book.symbol]}@aggTrade", agg.id, agg.id)

    sim.exchange.add_listener(Truth())

    published: dict[str, RangeSet] = {}
    publish = sim.hub.publish

    def observed_publish(stream: str, payload: Any) -> None:
        if isinstance(payload, dict):
            event = payload.get("e")
            ids = ((payload["U"], payload["u"]) if event == "depthUpdate"
                   else (payload["t"], payload["t"]) if event == "trade"
                   else (payload["a"], payload["a"]) if event == "aggTrade" else None)
            if ids is not None:
                rs = published.get(stream)
                if rs is None:
                    rs = published[stream] = RangeSet()
                rs.add(*ids)
        publish(stream, payload)

    sim.hub.publish = observed_publish  # type: ignore[method-assign]

    weight = [0]
    rest_weight = sim.rest._weight

    def counted_weight(request: Any) -> int:
        w = rest_weight(request)
        weight[0] += w
        return w

    sim.rest._weight = counted_weight  # type: ignore[method-assign]

    marks: dict[str, int] = {}
    async with sim:
        pipe.send({"stream_url": sim.stream_url, "rest_url": sim.rest_url, "ws_api_url": sim.ws_api_url})
        while True:
            cmd = await asyncio.to_thread(pipe.recv)
            if cmd == "mark":
                marks = {s: rs.r[-1][1] for s, rs in produced.items() if rs.r}
                pipe.send(len(marks))
            elif cmd == "report":
                pipe.send({
                    "produced": {s: rs.r for s, rs in produced.items()},
                    "published": {s: rs.r for s, rs in published.items()},
                    "marks": marks,
                    "handshakes": handshakes,
                    "faults": dict(sim.faults.counts),
                    "rest_weight": weight[0],
                    "hub_published": sim.hub.published,
                    "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "rss_mb": rss_mb(),
                    "attempt_limit": cfg.max_connections_per_window,
                    "attempt_window_s": cfg.connection_window_s,
                })
            else:
                break


# -- the client's side -----------------------------------------------------------------------------------
def rss_mb() -> float:
    """This process's resident memory (VmRSS), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass(slots=True)
class StreamTrack:
    delivered: RangeSet = field(default_factory=RangeSet)
    messages: int = 0
    duplicated: int = 0
    gaps: RangeSet = field(default_factory=RangeSet)
    gap_events: int = 0


class Recorder:
    """What the client delivered, per stream, and the error events it raised."""

    def __init__(self) -> None:
        self.tracks: dict[str, StreamTrack] = {}
        self.messages = 0
        self.errors: Counter[str] = Counter()
        #: on_link notices: how often streams were reported down / up again.
        self.links: Counter[str] = Counter()

    def on_link(self, state: str, streams: list[str]) -> None:
        self.links[state] += 1
        self.links[state + "_streams"] += len(streams)

    def track(self, stream: str) -> StreamTrack:
        t = self.tracks.get(stream)
        if t is None:
            t = self.tracks[stream] = StreamTrack()
        return t

    def ids(self, stream: str, lo: int, hi: int) -> None:
        t = self.track(stream)
        t.messages += 1
        self.messages += 1
        t.duplicated += t.delivered.add(lo, hi)

    def plain(self, stream: str) -> None:
        self.track(stream).messages += 1
        self.messages += 1

    def error(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", "max_retries"))
        self.errors[kind] += 1
        if kind == "gap":
            t = self.track(event["stream"])
            t.gap_events += 1
            t.gaps.add(int(event["first"]), int(event["last"]))

    def callback(self, kind: str, mode: str) -> Callable[[Any], None]:
        """A subscription callback for streams of ``kind`` delivered in ``mode``."""
        suffix = "@" + kind

        def on_dict(msg: dict[str, Any]) -> None:
            if msg.get("e") == "error":
                self.error(msg)
                return
            stream = msg["s"].lower() + suffix
            if kind == "trade":
                self.ids(stream, msg["t"], msg["t"])
            elif kind == "aggTrade":
                self.ids(stream, msg["a"], msg["a"])
            elif kind == "depth@100ms":
                self.ids(stream, msg["U"], msg["u"])
            else:
                self.plain(stream)

        def on_raw(msg: Any) -> None:
            if isinstance(msg, RawMessage):
                if kind in ID_KINDS:
                    on_dict(orjson.loads(msg.data))
                else:
                    self.plain(msg.stream)
            else:
                self.error(msg)

        def on_typed(msg: Any) -> None:
            if isinstance(msg, dict):
                self.error(msg)
                return
            stream = msg.symbol.lower() + suffix
            if kind == "trade":
                self.ids(stream, msg.trade_id, msg.trade_id)
            elif kind == "aggTrade":
                self.ids(stream, msg.agg_trade_id, msg.agg_trade_id)
            elif kind == "depth@100ms":
                self.ids(stream, msg.first_update_id, msg.final_update_id)
            else:
                self.plain(stream)

        return {"dict": on_dict, "raw": on_raw, "typed": on_typed}[mode]


# -- faults ----------------------------------------------------------------------------------------------
SEQ_PATTERNS: tuple[str, ...] = (r"@depth(@\d+ms)?$", r"@trade$", r"@aggTrade$")
#: (fault, relative weight). Every fault of the simulator's list.
FAULTS: tuple[tuple[str, int], ...] = (
    ("drop", 3), ("close", 3), ("stall", 3), ("stop_answering_pings", 1), ("send_malformed_json", 2),
    ("send_invalid_utf8", 2), ("send_oversized", 1), ("server_shutdown", 3), ("refuse", 2), ("rest", 1),
    ("skip", 3), ("duplicate", 3), ("reorder", 2), ("clear", 1),
)


class FaultInjector:
    """Picks and triggers faults over the simulator's HTTP control endpoint, with a seeded RNG."""

    def __init__(self, session: aiohttp.ClientSession, rest_url: str, rng: random.Random,
                 streams: list[str]) -> None:
        self.session = session
        self.url = rest_url + "/sim/"
        self.rng = rng
        self.streams = streams
        self.injected: Counter[str] = Counter()
        self.touched: Counter[str] = Counter()
        self.log: list[tuple[float, str, dict[str, Any], Any]] = []
        self._later: set[asyncio.Task[None]] = set()

    async def post(self, name: str, params: dict[str, Any] | None = None) -> Any:
        async with self.session.post(self.url + "faults/" + name, json=params or {}) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"fault {name} {params}: {resp.status} {body}")
            return body.get("result")

    async def _connection(self) -> dict[str, Any] | None:
        """One live stream connection of the simulator, as its control endpoint describes it."""
        async with self.session.get(self.url) as resp:
            state = (await resp.json())["state"]
        conns = [c for c in state["connections"] if c["kind"] == "stream"]
        return self.rng.choice(conns) if conns else None

    def _after(self, delay_s: float, name: str, params: dict[str, Any], label: str) -> None:
        """Trigger ``name`` later (the end of a standing fault), counted as ``label``."""
        async def run() -> None:
            await asyncio.sleep(delay_s)
            await self.post(name, params)
            self.injected[label] += 1

        task = asyncio.create_task(run())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def inject(self, t: float) -> str:
        rng = self.rng
        name = rng.choices([n for n, _ in FAULTS], [w for _, w in FAULTS])[0]
        params: dict[str, Any] = {}
        if name in ("drop", "close", "stall", "send_malformed_json", "send_invalid_utf8", "send_oversized",
                    "server_shutdown"):
            conn = await self._connection()
            if conn is None:
                return "none"
            params["conn"] = conn["id"]
        if name == "close":
            params.update(code=rng.choice((1000, 1001, 1008, 1011)), reason="soak")
        elif name == "stall":
            if rng.random() < 0.5:
                params["duration_s"] = round(rng.uniform(0.02, 1.5), 3)
            else:  # stalled until an explicit unstall
                self._after(rng.uniform(0.02, 1.5), "unstall", {"conn": params["conn"]}, "unstall")
        elif name == "stop_answering_pings":
            self._after(rng.uniform(0.05, 1.0), "stop_answering_pings", {"enabled": False},
                        "stop_answering_pings(off)")
        elif name == "send_malformed_json" and rng.random() < 0.5 and conn and conn["streams"]:
            params["stream"] = rng.choice(conn["streams"])  # a broken payload on a stream it carries
        elif name == "server_shutdown":
            params["delay_s"] = round(rng.uniform(0.05, 1.0), 3)
        elif name == "refuse":
            params.update(status=rng.choice((429, 503)), count=rng.randint(1, 3))
        elif name == "rest":
            params.update(delay_s=round(rng.uniform(0.0, 0.3), 3), fail_status=rng.choice((None, 500, 503)),
                          fail_count=rng.randint(0, 3))
            self._after(rng.uniform(0.5, 3.0), "rest", {}, "rest(reset)")
        elif name in ("skip", "duplicate"):
            params.update(n=rng.randint(1, 3), pattern=rng.choice(SEQ_PATTERNS))
        elif name == "reorder":
            params.update(n=rng.randint(2, 4), pattern=rng.choice(SEQ_PATTERNS))
        result = await self.post(name, params)
        self.injected[name] += 1
        if isinstance(result, int):
            self.touched[name] += result
        self.log.append((round(t, 3), name, params, result))
        return name

    async def settle(self) -> None:
        for task in list(self._later):
            task.cancel()
        await asyncio.gather(*self._later, return_exceptions=True)
        await self.post("clear")
        await self.post("stop_answering_pings", {"enabled": False})
        await self.post("rest", {})


# -- the run ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SoakOptions:
    #: Wall-clock minutes; None: a simulated week at ``scale`` (10.08 minutes at 1000).
    minutes: float | None = None
    scale: float = 1000.0
    symbols: int = 250
    seed: int = 7
    fault_every_s: float = 3.0
    median_rate: float = 0.5
    min_ping_s: float = 0.5
    min_deadline_s: float = 2.0
    max_streams_per_connection: int = 200
    #: Order books (DepthCacheManager, snapshots over REST) of the first symbols, on a manager of their
    #: own (their diff depth and bookTicker are subscribed a second time there).
    books: int = 10
    settle_s: float = 30.0

    @classmethod
    def quick(cls, **overrides: Any) -> SoakOptions:
        return dataclasses.replace(cls(minutes=20 / 60, scale=5000, symbols=25, fault_every_s=1.5,
                                       max_streams_per_connection=20, books=3), **overrides)


def max_in_window(times: list[float], window_s: float) -> int:
    """The most of ``times`` (sorted) in any half-open window of ``window_s`` seconds."""
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def evaluate(rec: Recorder, truth: dict[str, Any]) -> dict[str, Any]:
    """Delivered ids against the simulator's produced ids (see the module docstring)."""
    produced = {s: RangeSet(r) for s, r in truth["produced"].items()}
    published = {s: RangeSet(r) for s, r in truth["published"].items()}
    marks: dict[str, int] = truth["marks"]
    real_ids = real_runs = unpublished = silent = covered_ids = dup = reported_events = reported_ids = 0
    tail_ids = tail_streams = 0
    checked = 0
    silent_streams: dict[str, Ranges] = {}
    for stream, t in rec.tracks.items():
        dup += t.duplicated
        reported_events += t.gap_events
        reported_ids += t.gaps.size()
        first, last = t.delivered.first(), t.delivered.last()
        if stream not in produced or first is None or last is None or stream not in marks:
            continue
        checked += 1
        # Ids lost after the last one delivered cannot be told by ids (no later message reveals them):
        # counted apart; the subscriber heard of the outage through on_link.
        tail = produced[stream].clip(last + 1, marks[stream]).minus(t.delivered).size()
        if tail:
            tail_ids += tail
            tail_streams += 1
        missing = produced[stream].clip(first, last).minus(t.delivered)
        real_runs += len(missing.r)
        real_ids += missing.size()
        unpublished += missing.minus(published.get(stream, RangeSet())).size()
        lost = missing.minus(t.gaps)
        covered_ids += missing.size() - lost.size()
        if lost.r:
            silent += lost.size()
            silent_streams[stream] = lost.r[:5]
    handshakes = sorted(truth["handshakes"])
    return {
        "id_streams_checked": checked,
        "gaps_real_runs": real_runs, "gaps_real_ids": real_ids,
        "gaps_real_ids_never_published": unpublished,
        "gaps_reported_events": reported_events, "gaps_reported_ids": reported_ids,
        "gap_ids_covered_by_reports": covered_ids,
        "missing_after_last_delivery_ids": tail_ids, "missing_after_last_delivery_streams": tail_streams,
        "lost_silently": silent, "lost_silently_examples": dict(list(silent_streams.items())[:5]),
        "duplicated": dup,
        "handshakes": len(handshakes),
        "attempt_limit": truth["attempt_limit"], "attempt_window_s": truth["attempt_window_s"],
        "max_attempts_per_window": max_in_window(handshakes, truth["attempt_window_s"]),
    }


async def soak(opts: SoakOptions, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the soak; returns the report (a JSON-able dict)."""
    say = progress or (lambda _: None)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    params = SimParams(opts.symbols, opts.seed, opts.scale, opts.median_rate, opts.min_ping_s,
                       opts.min_deadline_s)
    proc = ctx.Process(target=_sim_process, args=(child, params), name="soak-sim", daemon=True)
    proc.start()
    try:
        return await _run(opts, parent, say)
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.kill()


async def _run(opts: SoakOptions, pipe: Pipe, say: Callable[[str], None]) -> dict[str, Any]:
    urls = await asyncio.to_thread(pipe.recv)
    scale = opts.scale
    market = dataclasses.replace(local_market(urls["stream_url"], urls["rest_url"], urls["ws_api_url"]),
                                 connection_lifetime_s=DAY_S / scale,
                                 server_ping_interval_s=max(SERVER_PING_S / scale, opts.min_ping_s))
    settings: dict[str, Any] = {
        "ping_interval": max(SERVER_PING_S / scale, opts.min_ping_s),
        "ping_timeout": max(DEFAULT_PING_TIMEOUT_S / scale, opts.min_deadline_s),
        "stable_after": max(DEFAULT_STABLE_AFTER_S / scale, opts.min_deadline_s),
        "max_reconnects": None,
        "max_streams_per_connection": opts.max_streams_per_connection,
    }
    symbols = [f"sym{i:04d}usdt" for i in range(1, opts.symbols + 1)]
    rec = Recorder()
    managers = [AsyncSocketManager(market=market, **settings) for _ in range(3)]
    all_streams: list[str] = []
    subs = []
    t0 = time.monotonic()
    for g, sm in enumerate(managers):
        group = symbols[g::3]
        for j, kind in enumerate(KINDS):
            mode = MODES[(g + j) % 3]
            names = [f"{s}@{kind}" for s in group]
            all_streams.extend(names)
            subs.append(await sm.subscribe(names, rec.callback(kind, mode),
                                           decode=mode, on_link=rec.on_link))
    book_sm = AsyncSocketManager(market=market, **settings)
    book_changes = [0]

    def on_book(_: Any) -> None:
        book_changes[0] += 1

    dcm = await DepthCacheManager(book_sm, [s.upper() for s in symbols[:opts.books]], limit=100,
                                  ws_interval=100, callback=on_book).start() if opts.books else None
    opened = sum(len(m.connections) for m in managers)
    say(f"{len(all_streams)} streams on {opts.symbols} symbols, {opened} connections, "
        f"subscribed in {time.monotonic() - t0:.1f} s")
    rss = {"start": rss_mb()}
    duration = opts.minutes * 60 if opts.minutes is not None else WEEK_S / scale
    rng = random.Random(opts.seed)
    start = time.monotonic()
    async with aiohttp.ClientSession() as session:
        faults = FaultInjector(session, urls["rest_url"], rng, all_streams)
        next_fault = start + rng.expovariate(1 / opts.fault_every_s)
        next_report = start + 60
        middle_done = False
        while (now := time.monotonic()) < start + duration:
            if now >= next_fault:
                await faults.inject(now - start)
                next_fault = now + rng.expovariate(1 / opts.fault_every_s)
            if not middle_done and now >= start + duration / 2:
                rss["middle"] = rss_mb()
                middle_done = True
            if now >= next_report:
                next_report += 60
                say(f"{now - start:6.0f} s ({(now - start) * scale / DAY_S:.2f} simulated days): "
                    f"{rec.messages:,} messages, {sum(faults.injected.values())} faults, "
                    f"RSS {rss_mb():.0f} MB")
            await asyncio.sleep(min(0.05, max(0.0, min(next_fault, start + duration) - now)))
        rss.setdefault("middle", rss_mb())
        wall = time.monotonic() - start
        await faults.settle()
        # Marks are taken once every connection is live again, so nothing still reconnecting counts.
        deadline = time.monotonic() + opts.settle_s
        while time.monotonic() < deadline and not all(
                c.link is not None for m in [*managers, book_sm] for c in m.connections):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        pipe.send("mark")
        await asyncio.to_thread(pipe.recv)
        await asyncio.sleep(1.5)
        pipe.send("report")
        truth = await asyncio.to_thread(pipe.recv)
        conns = [c for m in [*managers, book_sm] for c in m.connections]
        engine = {
            "connections": len(conns),
            "connects": sum(c.connects for c in conns),
            "drops": sum(c.drops for c in conns),
            "rotations": sum(c.rotations for c in conns),
            "attempts": sum(c.life.attempts for c in conns),
            "flaps": sum(c.life.flaps for c in conns),
            "gave_up": sum(c.gave_up for c in conns),
        }
        books: dict[str, Any] = {}
        if dcm is not None:
            states = Counter(dcm.get_depth_cache(s).state.value for s in dcm.symbols)
            totals: Counter[str] = Counter()
            for s in dcm.symbols:
                totals.update({k: v for k, v in dataclasses.asdict(dcm.stats(s)).items() if v})
            books = {"books": len(dcm.symbols), "changes": book_changes[0], "states": dict(states),
                     **dict(totals)}
            await dcm.close()
        rss["end"] = rss_mb()
        for m in [*managers, book_sm]:
            await m.close()
    report: dict[str, Any] = {
        "options": dataclasses.asdict(opts),
        "wall_s": round(wall, 1),
        "simulated_days": round(wall * scale / DAY_S, 2),
        "symbols": opts.symbols,
        "streams": len(all_streams),
        "messages_delivered": rec.messages,
        "sim_messages_published": truth["hub_published"],
        "client_error_events": dict(rec.errors),
        "link_notices": dict(rec.links),
        "faults_injected": dict(faults.injected),
        "faults_injected_total": sum(faults.injected.values()),
        "faults_sim_counts": truth["faults"],
        **engine,
        **evaluate(rec, truth),
        "rest_weight": truth["rest_weight"],
        "books": books,
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "sim_rss_mb": round(truth["rss_mb"], 1),
        "fault_log": faults.log,
    }
    return report


def table(r: dict[str, Any]) -> str:
    rows = [
        ("wall time / simulated",
         f"{r['wall_s']} s / {r['simulated_days']} days (scale {r['options']['scale']:g})"),
        ("streams / symbols", f"{r['streams']:,} / {r['symbols']:,}"),
        ("messages delivered",
         f"{r['messages_delivered']:,} (sim sent {r['sim_messages_published']:,} to subscribers)"),
        ("faults injected", f"{r['faults_injected_total']}: " + ", ".join(
            f"{k} {v}" for k, v in sorted(r["faults_injected"].items()))),
        ("connections / connects / drops / rotations",
         f"{r['connections']} / {r['connects']} / {r['drops']} / {r['rotations']}"),
        ("attempts / flaps / gave up", f"{r['attempts']} / {r['flaps']} / {r['gave_up']}"),
        ("handshakes at the server", f"{r['handshakes']}"),
        ("most attempts in any window", f"{r['max_attempts_per_window']} "
                                        f"(limit {r['attempt_limit']} per {r['attempt_window_s']:g} s)"),
        ("gaps real (runs / ids)", f"{r['gaps_real_runs']} / {r['gaps_real_ids']} "
                                   f"({r['gaps_real_ids_never_published']} ids never published: link down)"),
        ("gaps reported (events / ids)", f"{r['gaps_reported_events']} / {r['gaps_reported_ids']} "
                                         f"(covering {r['gap_ids_covered_by_reports']} real gap ids)"),
        ("missed at the end (no later id)", f"{r['missing_after_last_delivery_ids']} ids on "
                                            f"{r['missing_after_last_delivery_streams']} streams "
                                            f"(link down notices: {r['link_notices'].get('down', 0)})"),
        ("lost silently", f"{r['lost_silently']}"),
        ("duplicated", f"{r['duplicated']}"),
        ("client error events", ", ".join(f"{k} {v}" for k, v in sorted(r["client_error_events"].items()))),
        ("REST weight", f"{r['rest_weight']}"),
        ("order books", ", ".join(f"{k} {v}" for k, v in r["books"].items()) or "none"),
        ("RSS client start / middle / end MB",
         f"{r['rss_mb']['start']} / {r['rss_mb']['middle']} / {r['rss_mb']['end']} (sim {r['sim_rss_mb']})"),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float,
                        help="wall-clock length (default: a simulated week at --scale; --quick: 20 s)")
    parser.add_argument("--scale", type=float, help="time compression (default 1000: 24 h -> 86.4 s)")
    parser.add_argument("--symbols", type=int, help="symbols, 4 streams each (default 250; --quick 25)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--fault-every", type=float, dest="fault_every_s", help="mean seconds between faults")
    parser.add_argument("--quick", action="store_true", help="20 s, 100 streams")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k not in ("quick", "json") and v is not None}
    opts = SoakOptions.quick(**given) if args.quick else SoakOptions(**given)
    report = asyncio.run(soak(opts, progress=lambda s: print(s, flush=True)))
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    ok = report["lost_silently"] == 0 and report["duplicated"] == 0 \
        and report["max_attempts_per_window"] <= report["attempt_limit"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
