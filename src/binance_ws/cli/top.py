"""``binance-ws top``: every connection and stream of a client, live (rate, lag, reconnects, gaps, queues).

Two sources, one view. With stream names it opens them itself and watches its own metrics; with
``--metrics-url`` it watches another process (a ``tail``, ``record`` or ``collect`` started with
``--metrics-port``) through its Prometheus endpoint, parsed with prometheus-client's parser. Either way
the view is computed from the same metric samples, so what ``top`` shows is what a Prometheus server
scraping that process stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import typer
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from binance_ws.cli.app import EXIT_BAD_INPUT, EXIT_GAVE_UP, EXIT_OK, app
from binance_ws.cli.common import _BadInput, _fail, _Failure, _unreachable
from binance_ws.cli.metrics_port import missing_prometheus
from binance_ws.cli.views import (
    Endpoint,
    Interval,
    Iterations,
    MarketName,
    Testnet,
    UseSim,
    resolve_market,
    show,
    simulator_for,
)

#: Seconds a scrape of --metrics-url may take.
SCRAPE_TIMEOUT_S: Final = 10.0

#: One sample: metric name (with its _total/_bucket/... suffix), labels, value.
Sample = tuple[str, dict[str, str], float]


@dataclass
class _Row:
    labels: dict[str, str]
    values: dict[str, float] = field(default_factory=dict)


class TopModel:
    """Per-stream, per-connection and per-subscription figures from successive scrapes: counters as
    totals, rates and mean lag over the last interval (differences of counters and lag sums)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._last_at: float | None = None
        self.interval = 0.0
        self.streams: dict[str, dict[str, float]] = {}
        self.connections: dict[str, dict[str, float]] = {}
        self.queues: dict[str, _Row] = {}
        self.hosts: dict[str, dict[str, float]] = {}
        self.extra: dict[str, float] = {}

    def update(self, samples: Iterable[Sample], now: float) -> None:
        current: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.streams, self.connections, self.queues, self.hosts, self.extra = {}, {}, {}, {}, {}
        interval = 0.0 if self._last_at is None else now - self._last_at
        self.interval = interval

        def delta(name: str, labels: dict[str, str], value: float) -> float | None:
            key = (name, tuple(sorted(labels.items())))
            current[key] = value
            before = self._last.get(key)
            return None if before is None or interval <= 0 else value - before

        for name, labels, value in samples:
            short = name.removeprefix("binance_ws_")
            if "stream" in labels and "subscription" not in labels:
                row = self.streams.setdefault(labels["stream"], {})
                if short == "messages_total":
                    row["total"] = value
                    if (d := delta(name, labels, value)) is not None:
                        row["rate"] = d / interval
                elif short in ("lag_seconds_sum", "lag_seconds_count"):
                    d = delta(name, labels, value)
                    row[short] = value
                    if d is not None:
                        row["d_" + short] = d
                elif short in ("gaps_total", "resets_total"):
                    row[short] = value
            elif "connection" in labels:
                self.connections.setdefault(labels["connection"], {})[short] = value
            elif "subscription" in labels:
                self.queues.setdefault(labels["subscription"], _Row(labels)).values[short] = value
            elif "host" in labels:
                self.hosts.setdefault(labels["host"], {})[short] = value
            elif short in ("rest_weight_used", "rest_weight_reported", "shards_owned"):
                self.extra[short] = value
        for row in self.streams.values():
            count, total = row.get("d_lag_seconds_count"), row.get("d_lag_seconds_sum")
            if count:
                row["lag"] = (total or 0.0) / count
            elif row.get("lag_seconds_count"):
                row["lag"] = row.get("lag_seconds_sum", 0.0) / row["lag_seconds_count"]
        self._last, self._last_at = current, now

    def render(self, title: str) -> RenderableType:
        head = Text(title, style="bold")
        for host, row in sorted(self.hosts.items()):
            head.append(f"   attempts {host}: {row.get('connection_attempts_window', 0):.0f}"
                        f"/{row.get('connection_attempts_limit', 0):.0f} per 5 min")
        if "rest_weight_used" in self.extra:
            head.append(f"   REST weight {self.extra['rest_weight_used']:.0f}/min")
        if self.extra.get("shards_owned"):
            head.append(f"   shards {self.extra['shards_owned']:.0f}")

        conns = Table(title="connections", title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("connection", "state", "streams", "connects", "reconnects", "rotations"):
            conns.add_column(col, justify="left" if col == "connection" else "right")
        for conn, row in sorted(self.connections.items()):
            up = row.get("connection_up", 0) == 1
            conns.add_row(conn, Text("up", style="green") if up else Text("down", style="bold red"),
                          _int(row.get("connection_streams")), _int(row.get("connects_total")),
                          _int(row.get("reconnects_total"), alarm=True), _int(row.get("rotations_total")))

        streams = Table(title="streams", title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("stream", "msg/s", "messages", "lag ms", "gaps", "resets"):
            streams.add_column(col, justify="left" if col == "stream" else "right")
        for name, row in sorted(self.streams.items(), key=lambda kv: (-kv[1].get("rate", 0.0), kv[0])):
            rate = row.get("rate")
            lag = row.get("lag")
            streams.add_row(name, "-" if rate is None else f"{rate:,.1f}", _int(row.get("total")),
                            "-" if lag is None else f"{lag * 1000:,.1f}",
                            _int(row.get("gaps_total"), alarm=True),
                            _int(row.get("resets_total"), alarm=True))

        queues = Table(title="subscriptions", title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("#", "streams", "queue", "peak", "delivered", "dropped"):
            queues.add_column(col, justify="left" if col in ("#", "streams") else "right")
        for ident, q in sorted(self.queues.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
            queues.add_row(ident, q.labels.get("streams", ""), _int(q.values.get("queue_depth")),
                           _int(q.values.get("queue_peak")), _int(q.values.get("delivered_total")),
                           _int(q.values.get("dropped_total"), alarm=True))
        parts: list[RenderableType] = [head, conns, streams]
        if self.queues:
            parts.append(queues)
        return Group(*parts)


def _int(value: float | None, *, alarm: bool = False) -> Text:
    if value is None:
        return Text("-")
    return Text(f"{value:,.0f}", style="bold red" if alarm and value > 0 else "")


def _flatten(families: Iterable[Any]) -> list[Sample]:
    return [(s.name, dict(s.labels), float(s.value)) for f in families for s in f.samples]


async def _scrape(url: str) -> list[Sample]:
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as resp:
            if resp.status != 200:
                raise _Failure(f"{url} answered HTTP {resp.status}: is it a --metrics-port endpoint?",
                               EXIT_GAVE_UP)
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _Failure(f"cannot scrape {url}: {exc or type(exc).__name__}", EXIT_GAVE_UP) from None
    try:
        return _flatten(text_string_to_metric_families(text))
    except ValueError as exc:
        raise _Failure(f"{url} did not answer Prometheus text ({exc})", EXIT_GAVE_UP) from None


def _metrics_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _BadInput(f"--metrics-url {raw!r}: give http://host:port/metrics (what --metrics-port serves)")
    return raw.strip() if parts.path not in ("", "/") else raw.strip().rstrip("/") + "/metrics"


@app.command(short_help="Every connection and stream, live: rate, lag, gaps, queues.")
def top(
    stream: Annotated[list[str] | None, typer.Argument(metavar="STREAM",
        help="Streams to open and watch; or none, with --metrics-url.")] = None,
    use_sim: UseSim = False,
    endpoint: Endpoint = None,
    testnet: Testnet = False,
    market_name: MarketName = "spot",
    metrics_url: Annotated[str | None, typer.Option(
        metavar="URL", help="Watch another process instead: its --metrics-port endpoint, "
                            "http://host:port/metrics.")] = None,
    interval: Interval = 1.0,
    iterations: Iterations = 0,
) -> None:
    """Every connection and stream, live: messages a second, lag (receive time minus event time E),
    reconnects, gaps, queue depth. On a terminal the view redraws in place; into a pipe it prints a
    snapshot every interval.

    Exit status: 0 after --iterations or Ctrl-C; 2 for bad input; 1 when the server or the metrics
    endpoint cannot be reached.
    """
    from binance_ws import errors, streams

    logging.getLogger("binance_ws").setLevel(logging.CRITICAL)
    names = list(stream or [])
    try:
        if metrics_url is not None:
            if names or use_sim or endpoint is not None or testnet:
                raise _BadInput("--metrics-url watches another process: give no streams, --sim, "
                                "--endpoint or --testnet with it")
            source = _metrics_url(metrics_url)
            market = None
        else:
            if not names:
                raise _BadInput("give streams to watch (top btcusdt@trade --sim), or --metrics-url URL")
            market = resolve_market(use_sim, endpoint, testnet, market_name=market_name)
            names = [streams.validate_stream(s, market) for s in names]
            source = ""
        if (why := missing_prometheus("top")) is not None:
            raise _BadInput(why)
    except (_BadInput, errors.InvalidStreamError) as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    code = EXIT_OK
    try:
        asyncio.run(_top(names, market, use_sim, source, interval, iterations))
    except KeyboardInterrupt:
        code = EXIT_OK
    except _Failure as exc:
        typer.echo(f"error: {exc}", err=True)
        code = exc.code
    raise typer.Exit(code)


async def _top(names: list[str], market: Any, use_sim: bool, url: str, interval: float,
               iterations: int) -> None:
    model = TopModel()
    if url:
        async def from_url() -> list[Sample]:
            return await _scrape(url)
        await _watch(model, from_url, url, interval, iterations)
        return
    from binance_ws import errors
    from binance_ws.engine.manager import AsyncSocketManager
    from binance_ws.metrics import Metrics

    async with contextlib.AsyncExitStack() as stack:
        if use_sim:
            sim = await stack.enter_async_context(simulator_for(market))
            market = sim.market
        elif (why := await _unreachable(market.stream_url)) is not None:
            raise _Failure(why, EXIT_GAVE_UP)
        manager = await stack.enter_async_context(AsyncSocketManager(market=market))
        metrics = Metrics()
        stack.callback(metrics.close)
        metrics.watch(manager)
        given_up: list[str] = []

        def consume(msg: Any) -> None:  # the view needs the counters, not the messages
            if isinstance(msg, dict) and msg.get("m") == errors.MSG_MAX_RETRIES:
                given_up.append(market.stream_url)

        try:
            await manager.subscribe(names, consume, decode="raw")
        except errors.SubscriptionError as exc:
            which = names[0] if len(names) == 1 else "one of " + ", ".join(names)
            raise _Failure(f"{market.stream_url} refused {which}: {exc.msg} (code {exc.code})",
                           EXIT_BAD_INPUT) from None

        async def from_self() -> list[Sample]:
            if given_up:
                raise _Failure(f"gave up reconnecting to {given_up[0]}", EXIT_GAVE_UP)
            return _flatten(metrics.collect())

        await _watch(model, from_self, market.stream_url, interval, iterations)


async def _watch(model: TopModel, source: Callable[[], Awaitable[list[Sample]]], where: str,
                 interval: float, iterations: int) -> None:
    model.update(await source(), time.monotonic())

    async def render() -> RenderableType:
        model.update(await source(), time.monotonic())
        return model.render(f"binance-ws top  {where}  {time.strftime('%H:%M:%S', time.gmtime())} UTC")

    # The first redraw comes one interval after the first sample, so rates are over a whole interval.
    await asyncio.sleep(interval)
    await show(render, interval, iterations)
