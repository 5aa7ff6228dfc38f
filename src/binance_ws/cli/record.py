"""``binance-ws record``: record streams to files, one per stream group (symbol) and UTC day."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from binance_ws.cli.app import EXIT_BAD_INPUT, EXIT_GAVE_UP, EXIT_OK, app
from binance_ws.cli.common import (
    _BadInput,
    _endpoint,
    _fail,
    _Failure,
    _first_line,
    _rest_unreachable,
    _unreachable,
)
from binance_ws.cli.metrics_port import DEFAULT_ADDR, MetricsAddr, MetricsPort, sinks_for, start_metrics

#: How often the status line is redrawn.
STATUS_INTERVAL_S: Final = 1.0


def _rest_url(raw: str) -> str:
    """The REST base URL in ``raw`` (http:// or https://, a host, an optional port); a trailing path such
    as ``/api/v3/exchangeInfo`` (what ``binance-ws sim`` prints) is dropped."""
    from urllib.parse import urlsplit

    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _BadInput(f"--rest {raw!r}: give the REST base URL, http://host:port or https://host:port")
    return f"{parts.scheme}://{parts.netloc}"


@app.command(short_help="Record streams to files, one per symbol and UTC day.")
def record(
    stream: Annotated[list[str], typer.Argument(metavar="STREAM",
        help="Stream names, e.g. btcusdt@trade btcusdt@depth@100ms btcusdt@bookTicker.")],
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Folder the files go to (created).")],
    use_sim: Annotated[bool, typer.Option("--sim", help="Record from an embedded simulator.")] = False,
    endpoint: Annotated[str | None, typer.Option(
        metavar="URL", help="Stream server base URL, ws://host:port or wss://host:port.")] = None,
    rest: Annotated[str | None, typer.Option(
        metavar="URL", help="REST base URL for the depth snapshots, with --endpoint (http://host:port).")]
        = None,
    testnet: Annotated[bool, typer.Option("--testnet", help="Use the --market's testnet.")] = False,
    market_name: Annotated[str, typer.Option(
        "--market", metavar="MARKET",
        help="spot, usdm (USD-M futures) or coinm (COIN-M futures); or spot-testnet, usdm-testnet, "
             "coinm-testnet. Names the files.")] = "spot",
    file_format: Annotated[str, typer.Option(
        "--format", metavar="FORMAT", help="binance-ws (the project's format) or hftbacktest.")]
        = "binance-ws",
    compress: Annotated[str, typer.Option(metavar="zst|gz|none", help="File compression.")] = "zst",
    snapshot_interval: Annotated[float, typer.Option(
        metavar="SECONDS", help="REST depth snapshot of each diff-depth symbol this often (0: only when a "
                                "file opens and after gaps and reconnects).")] = 600.0,
    snapshot_limit: Annotated[int, typer.Option(metavar="N", help="Levels a side of each snapshot.")] = 1000,
    duration: Annotated[float, typer.Option(
        metavar="SECONDS", help="Stop after this long (0: until Ctrl-C or SIGTERM).")] = 0.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No status line.")] = False,
    metrics_port: MetricsPort = None,
    metrics_addr: MetricsAddr = DEFAULT_ADDR,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Also log what the library does (connects, retries) on stderr.")] = False,
) -> None:
    """Record streams to DIR: one file per symbol (or stream of no symbol) and UTC day, rotated at
    midnight, zstd frames flushed every second (a killed recorder's files read up to their last second);
    REST depth snapshots beside diff-depth streams; gaps and reconnects as marker lines. A status line on
    a terminal shows messages/s, bytes, files, gaps and reconnects.

    Exit status: 0 on Ctrl-C, SIGTERM or after --duration; 2 for bad input (a stream name, an option, a
    URL, a stream the server refuses, an --out that cannot be written); 1 when the server or --rest
    cannot be reached, reconnecting gave up, or a file cannot be written.
    """
    from binance_ws import errors, streams
    from binance_ws.cli.views import market_row
    from binance_ws.recorder import depth_symbols
    from binance_ws.sinks.files import FILE_FORMATS

    logging.getLogger("binance_ws").setLevel(logging.INFO if verbose else logging.CRITICAL)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if sum((use_sim, endpoint is not None, testnet)) > 1:
        raise _fail("choose one of --sim, --endpoint, --testnet", EXIT_BAD_INPUT)
    if rest is not None and endpoint is None:
        raise _fail("--rest goes with --endpoint", EXIT_BAD_INPUT)
    if file_format not in FILE_FORMATS:
        raise _fail(f"--format {file_format!r}: one of {', '.join(FILE_FORMATS)}", EXIT_BAD_INPUT)
    if compress not in ("zst", "gz", "none"):
        raise _fail(f"--compress {compress!r}: one of zst, gz, none", EXIT_BAD_INPUT)
    for option, value in (("--snapshot-interval", snapshot_interval), ("--duration", duration)):
        if not value >= 0:
            raise _fail(f"{option} must be 0 or more, not {value:g}", EXIT_BAD_INPUT)
    try:
        market = market_row(market_name, testnet)  # as tail chooses it
        if use_sim and market.name.endswith("-testnet"):
            raise _BadInput("--sim serves the products themselves: --market spot, usdm or coinm")
        file_market = market.name
        if not 1 <= snapshot_limit <= market.max_depth_limit:
            raise _BadInput(f"--snapshot-limit must be between 1 and {market.max_depth_limit} on "
                            f"{market.name}")
        if endpoint is not None:
            url = _endpoint(endpoint)
            # A routed product's row names its /public path (USD-M, PROTOCOL 8); the others are the base.
            stream_url = f"{url}/public" if market.routed_paths else url
            market = market.with_urls(stream_url=stream_url, name=f"{market.name} at {url}",
                                      rest_url=_rest_url(rest) if rest is not None else None,
                                      local=url.startswith("ws://"))
        names = list(dict.fromkeys(streams.validate_stream(s, market) for s in stream))
        if endpoint is not None and rest is None and depth_symbols(names, market):
            raise _BadInput("diff depth streams need REST snapshots: with --endpoint, give --rest "
                            "http://host:port (binance-ws sim prints it as REST)")
    except (_BadInput, errors.InvalidStreamError) as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".binance-ws-record-{time.time_ns()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise _fail(f"--out {out}: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
    options = _Options(names, market, file_market, use_sim, out, file_format,
                       "" if compress == "none" else compress, snapshot_interval, snapshot_limit, duration,
                       not quiet and sys.stderr.isatty(), (metrics_port, metrics_addr))
    options.rest_given = rest is not None
    code = EXIT_OK
    try:
        code = asyncio.run(_record(options))
    except KeyboardInterrupt:
        code = EXIT_OK  # Ctrl-C is how a recording ends; the files were closed on the way out
    except _Failure as exc:
        typer.echo(f"error: {exc}", err=True)
        code = exc.code
    except OSError as exc:  # a file that cannot be written (a full disk): one line
        typer.echo(f"error: writing to {out}: {_first_line(exc)}", err=True)
        code = EXIT_GAVE_UP
    raise typer.Exit(code)


class _Options:
    def __init__(self, names: list[str], market: Any, market_name: str, use_sim: bool, out: Path,
                 file_format: str, compression: str, snapshot_interval: float, snapshot_limit: int,
                 duration: float, status: bool,
                 metrics: tuple[int | None, str] = (None, DEFAULT_ADDR)) -> None:
        self.names = names
        self.market = market
        self.market_name = market_name
        self.use_sim = use_sim
        self.out = out
        self.file_format = file_format
        self.compression = compression
        self.snapshot_interval = snapshot_interval
        self.snapshot_limit = snapshot_limit
        self.duration = duration
        self.status = status
        self.metrics = metrics
        self.rest_given = False


async def _record(o: _Options) -> int:
    from binance_ws import errors
    from binance_ws.engine.manager import AsyncSocketManager
    from binance_ws.recorder import Recorder, RecorderGaveUp
    from binance_ws.sinks.files import FileSink

    market = o.market
    async with contextlib.AsyncExitStack() as stack:
        if o.use_sim:
            from binance_ws.cli.views import simulator_for

            sim = await stack.enter_async_context(simulator_for(market))  # serves --market's product
            market = sim.market
        elif (why := await _unreachable(market.stream_url)) is not None:
            raise _Failure(why, EXIT_GAVE_UP)
        elif o.rest_given and (why := await _rest_unreachable(market.rest_url)) is not None:
            raise _Failure(why, EXIT_GAVE_UP)  # else no snapshot would ever be written, and nothing said
        manager = await stack.enter_async_context(AsyncSocketManager(market=market))
        sink = FileSink(o.out, market=o.market_name, url=market.stream_url, streams=o.names,
                        format=o.file_format, compression=o.compression)  # type: ignore[arg-type]
        status = _Status(o, sink) if o.status else None
        recorder = Recorder(manager, o.names, sink, snapshot_interval_s=o.snapshot_interval,
                            snapshot_limit=o.snapshot_limit,
                            on_tick=status.update if status is not None else None)
        # --metrics-port: the engine's figures, plus what the files took (their growth each tick).
        served = start_metrics(manager, *o.metrics)
        if served is not None:
            stack.callback(served.close)
            recorder.tick_hooks.append(_FileReport(sink, sinks_for(served)))
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        # SIGTERM ends a recording as Ctrl-C does: the files are flushed and closed on the way out.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        run = asyncio.create_task(recorder.run(), name="binance-ws-record")
        try:
            if status is not None:
                stack.enter_context(status)
            done, _ = await asyncio.wait([run], timeout=o.duration or None)
            if run in done:
                run.result()
                raise _Failure(f"every stream from {market.stream_url} was given up", EXIT_GAVE_UP)
            return EXIT_OK
        except asyncio.CancelledError:
            return EXIT_OK
        except errors.SubscriptionError as exc:
            which = o.names[0] if len(o.names) == 1 else "one of " + ", ".join(o.names)
            raise _Failure(f"{market.stream_url} refused {which}: {exc.msg} (code {exc.code})",
                           EXIT_BAD_INPUT) from None
        except RecorderGaveUp:
            raise _Failure(f"gave up reconnecting to {market.stream_url}", EXIT_GAVE_UP) from None
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGTERM)
            if not run.done():
                run.cancel()
            with contextlib.suppress(asyncio.CancelledError, RecorderGaveUp, errors.SubscriptionError):
                await run
    return EXIT_OK


class _FileReport:
    """Reports a :class:`FileSink`'s growth since the last tick to the metrics: entries and files."""

    def __init__(self, sink: Any, report: Any) -> None:
        self._sink = sink
        self._report = report
        self._seen = (0, 0)

    def __call__(self, recorder: Any) -> None:
        stats = self._sink.stats
        messages, files = self._seen
        if stats.messages > messages:
            self._report.written(stats.messages - messages, sink="file")
        for _ in range(stats.files - files):
            self._report.file_opened()
        self._seen = (stats.messages, stats.files)


class _Status:
    """The live status line (rich, on stderr): messages/s, bytes, files, gaps, reconnects, snapshots."""

    def __init__(self, o: _Options, sink: Any) -> None:
        from rich.console import Console
        from rich.live import Live

        self._sink = sink
        self._live = Live("", console=Console(stderr=True), refresh_per_second=4, transient=False)
        self._last = (time.monotonic(), 0)
        self._rate = 0.0

    def __enter__(self) -> _Status:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def update(self, recorder: Any) -> None:
        from rich.text import Text

        stats = self._sink.stats
        now = time.monotonic()
        then, count = self._last
        if now - then >= STATUS_INTERVAL_S:
            self._rate = (stats.messages - count) / (now - then)
            self._last = (now, stats.messages)
        # One terminal line: what a glance needs (where it records was in the command).
        self._live.update(Text(
            f"{self._rate:,.0f} msg/s  {stats.messages:,} msgs  {_size(stats.bytes)}  "
            f"files {stats.open_files}/{stats.files}  gaps {stats.gaps}  reconnects {stats.reconnects}  "
            f"snapshots {stats.snapshots}", style="bold" if stats.gaps or stats.reconnects else ""))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"
