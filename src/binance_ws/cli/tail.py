"""``binance-ws tail``: stream messages to the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from binance_ws.cli.app import EXIT_BAD_INPUT, EXIT_GAVE_UP, EXIT_OK, app
from binance_ws.cli.common import (
    _CLOCK_WIDTH,
    _BadInput,
    _clock,
    _describe,
    _error_line,
    _fail,
    _Failure,
    _fit,
    _Output,
    _stderr,
    _unreachable,
    _width,
)
from binance_ws.cli.metrics_port import DEFAULT_ADDR, MetricsAddr, MetricsPort, start_metrics
from binance_ws.cli.views import MarketName, resolve_market, simulator_for


@app.command(short_help="Stream messages to stdout: one readable line each, or JSON.")
def tail(
    stream: Annotated[list[str], typer.Argument(
        metavar="STREAM", help="Stream names, e.g. btcusdt@trade bnbbtc@depth5.")],
    use_sim: Annotated[bool, typer.Option("--sim", help="Stream from an embedded simulator.")] = False,
    endpoint: Annotated[str | None, typer.Option(
        metavar="URL", help="Stream server base URL, ws://host:port or wss://host:port.")] = None,
    testnet: Annotated[bool, typer.Option("--testnet", help="Use the --market's testnet.")] = False,
    market_name: MarketName = "spot",
    count: Annotated[int, typer.Option(
        metavar="N", help="Stop after this many messages (0: run until Ctrl-C).")] = 0,
    json_lines: Annotated[bool, typer.Option(
        "--json", help='Raw lines on stdout: {"stream":...,"data":...}; error events as JSON on stderr.')]
        = False,
    record: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Also write every message to FILE in the recording format "
                              "`binance-ws replay` reads (.gz/.zst compress).")] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Also log what the library does (connects, retries) on stderr.")] = False,
    metrics_port: MetricsPort = None,
    metrics_addr: MetricsAddr = DEFAULT_ADDR,
) -> None:
    """Stream messages to stdout: one readable line each (receive time, event time, stream, key fields),
    or raw JSON. Error events (gaps, reconnects) go to stderr.

    Exit status: 0 after --count messages, when the reader goes away (| head), or on Ctrl-C or SIGTERM;
    2 for bad input (a stream name, an option, an --endpoint URL, a stream the server refuses); 1 when
    the server cannot be reached or reconnecting gave up.
    """
    from binance_ws import errors, streams

    # What goes wrong reaches this command as error events, shown on stderr in the chosen format; the
    # library's own warnings about the same things would repeat them as unformatted lines.
    logging.getLogger("binance_ws").setLevel(logging.INFO if verbose else logging.CRITICAL)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if sum((use_sim, endpoint is not None, testnet)) > 1:
        raise _fail("choose one of --sim, --endpoint, --testnet", EXIT_BAD_INPUT)
    if count < 0:
        raise _fail("--count must be 0 or more", EXIT_BAD_INPUT)
    try:
        market = resolve_market(use_sim, endpoint, testnet, market_name=market_name)
        names = [streams.validate_stream(s, market) for s in stream]
    except (_BadInput, errors.InvalidStreamError) as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    code = EXIT_OK
    try:
        code = asyncio.run(_tail(names, market, use_sim, count, json_lines, record,
                                 metrics=(metrics_port, metrics_addr)))
    except KeyboardInterrupt:
        code = EXIT_OK  # Ctrl-C is how a stream is stopped
    except _Failure as exc:
        typer.echo(f"error: {exc}", err=True)
        code = exc.code
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python's exit-time flush of stdout
        # from raising again (the recipe in the signal module's documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as exc:  # stdout cannot be written at all (closed, full disk): say so, in one line
        typer.echo(f"error: cannot write to stdout: {exc}", err=True)
        with contextlib.suppress(OSError):  # and keep the exit-time flush from failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_GAVE_UP
    raise typer.Exit(code)



async def _tail(names: list[str], market: Any, use_sim: bool, count: int, json_lines: bool,
                record: Path | None = None, *, metrics: tuple[int | None, str] = (None, DEFAULT_ADDR)) -> int:
    out = _Output(sys.stdout.buffer)
    try:
        code = await _tail_to(out, names, market, use_sim, count, json_lines, record, metrics=metrics)
    finally:
        await asyncio.to_thread(out.close)
    if out.error is not None:
        raise out.error
    if out.broken.is_set():
        raise BrokenPipeError("the reader of stdout went away")
    return code



async def _tail_to(out: _Output, names: list[str], market: Any, use_sim: bool, count: int,
                   json_lines: bool, record: Path | None = None, *,
                   metrics: tuple[int | None, str] = (None, DEFAULT_ADDR)) -> int:
    import orjson
    from rich.console import Console
    from rich.text import Text

    from binance_ws import errors
    from binance_ws.engine.delivery import RawMessage
    from binance_ws.engine.manager import AsyncSocketManager

    async with contextlib.AsyncExitStack() as stack:
        if use_sim:
            sim = await stack.enter_async_context(simulator_for(market))
            market = sim.market
        elif (why := await _unreachable(market.stream_url)) is not None:
            raise _Failure(why, EXIT_GAVE_UP)
        writer = None
        flushed_ns = time.time_ns()
        if record is not None:
            from binance_ws.recording import RecordingWriter

            try:
                writer = stack.enter_context(RecordingWriter(record, market=market.name,
                                                             url=market.stream_url))
            except OSError as exc:
                raise _Failure(f"--record {record}: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
        manager = await stack.enter_async_context(AsyncSocketManager(market=market))
        served = start_metrics(manager, *metrics)
        if served is not None:
            stack.callback(served.close)
        try:
            # "block": a slow terminal pauses reading rather than dropping what it has not shown yet.
            # Raw bytes: written as received (--json, --record), decoded here for readable lines.
            sub = await manager.subscribe(names, decode="raw", overflow="block")
        except errors.SubscriptionError as exc:
            which = names[0] if len(names) == 1 else "one of " + ", ".join(names)
            raise _Failure(f"{market.stream_url} refused {which}: {exc.msg} (code {exc.code})",
                           EXIT_BAD_INPUT) from None
        # Rendered here (styles as the terminal takes them), written by the output thread.
        console = Console(highlight=False, soft_wrap=True)
        width = _width()
        # Long names are shortened ("…") only to fit a terminal: a pipe gets them whole.
        stream_width = max(len(n) for n in names)
        if width is not None:
            stream_width = min(stream_width, 20)
        # receive time, event time, stream, then the fields
        room = None if width is None else max(width - 2 * (_CLOCK_WIDTH + 1) - stream_width - 1, 20)

        def render(text: Text) -> bytes:
            with console.capture() as captured:
                console.print(text)
            return captured.get().encode("utf-8", "replace")

        shown = 0
        async for msg in sub:
            if isinstance(msg, dict) and msg.get("e") == "error":
                if msg.get("m") == errors.MSG_MAX_RETRIES:  # the last word: one line, as for any failure
                    raise _Failure(f"gave up reconnecting to {market.stream_url}", EXIT_GAVE_UP)
                # Not a message: on stderr, so stdout stays Binance's payloads only.
                _stderr(_error_line(msg, json_lines))
                continue
            if not isinstance(msg, RawMessage):
                continue  # raw mode delivers nothing else
            received = _clock(time.time() * 1000)
            if writer is not None:
                now_ns = time.time_ns()
                writer.write(now_ns, msg.stream, bytes(msg.data))
                # A frame on disk at least every second, as `record` does: a killed tail loses at most that.
                if now_ns - flushed_ns >= 1_000_000_000:
                    writer.flush()
                    flushed_ns = now_ns
            try:
                # Raw mode hands over a combined frame's data unparsed: one that is not JSON would break
                # a --json pipeline, so it is reported as the library reports malformed frames.
                data = orjson.loads(msg.data)
            except orjson.JSONDecodeError as exc:
                _stderr(_error_line(errors.error_event(errors.ERR_MALFORMED, errors.MSG_MALFORMED,
                                                       stream=msg.stream, reason=str(exc)), json_lines))
                continue
            if json_lines:
                line_out = b'{"stream":"' + msg.stream.encode() + b'","data":' + msg.data + b"}\n"
            else:
                event_ms = data.get("E") if isinstance(data, dict) else None
                event = _clock(event_ms) if isinstance(event_ms, int) else "-".center(_CLOCK_WIDTH)
                name = msg.stream if len(msg.stream) <= stream_width else msg.stream[:stream_width - 1] + "…"
                style, fields = _describe(data)
                label = Text(f"{received} {event} {name:<{stream_width}} ", style="dim")
                line_out = render(label + Text(_fit(fields, room), style=style))
            if not await out.put(line_out):
                return EXIT_OK  # the reader went away: _tail reports it as a broken pipe
            shown += 1
            if count and shown >= count:
                return EXIT_OK
    raise _Failure(f"every stream from {market.stream_url} was given up", EXIT_GAVE_UP)


