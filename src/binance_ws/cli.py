"""The ``binance-ws`` command: ``sim`` runs the local exchange, ``tail`` streams messages to the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Final

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Binance WebSocket streams, and a local Binance to try them on.")


@app.command()
def sim(
    host: Annotated[str, typer.Option(help="Address to bind (loopback only by default).")] = "127.0.0.1",
    stream_port: Annotated[int, typer.Option(help="Stream server port (0: any free port).")] = 9443,
    rest_port: Annotated[int, typer.Option(help="REST port (0: any free port).")] = 9444,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic order flow (and of --symbols).")] = 1,
    rate: Annotated[float | None, typer.Option(
        help="Order-flow actions a second: per symbol (default 50), or with --symbols of the median "
             "symbol (default 0.05, the others heavy-tailed around it).")] = None,
    symbols: Annotated[int | None, typer.Option(
        help="List N generated symbols (SYM0001USDT..., up to 2000) with heavy-tailed activity: "
             "a few act every few ms, most a few times a minute, some stay silent for minutes.")] = None,
    time_scale: Annotated[float, typer.Option(
        help="Run the market's periods N times faster: stream cadences, pings, the 24 h connection "
             "lifetime.")] = 1.0,
    replay: Annotated[Path | None,
                      typer.Option(help="Serve this recording instead of synthetic flow.")] = None,
    speed: Annotated[float, typer.Option(
        help="Replay pace: 1 = original, N = N times faster, 0 = as fast as read.")] = 1.0,
) -> None:
    """Run the simulated exchange until Ctrl-C, printing its stream and REST URLs."""
    from binance_ws.recording import RecordingError
    from binance_ws.sim import SimConfig, Simulator
    from binance_ws.sim.config import MAX_SYMBOLS, Activity
    from binance_ws.sim.replay import Replay, ReplayError

    def fail(message: str) -> None:
        typer.echo(f"binance-ws sim: {message}", err=True)
        raise typer.Exit(2)

    if symbols is not None and not 1 <= symbols <= MAX_SYMBOLS:
        fail(f"--symbols must be between 1 and {MAX_SYMBOLS}, not {symbols}")
    if not time_scale > 0:
        fail(f"--time-scale must be > 0, not {time_scale}")
    if rate is not None and rate < 0:
        fail(f"--rate must be >= 0, not {rate}")
    if symbols is None:
        cfg = SimConfig(host=host, stream_port=stream_port, rest_port=rest_port, seed=seed,
                        flow_rate=50.0 if rate is None else rate)
    else:
        activity = Activity() if rate is None else Activity(median_rate=rate)
        cfg = SimConfig.market(symbols, seed=seed, activity=activity, host=host, stream_port=stream_port,
                               rest_port=rest_port)
    if time_scale != 1.0:
        cfg = cfg.compressed(time_scale)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def run() -> None:
        rep = Replay(replay, speed=speed) if replay is not None else None
        async with Simulator(cfg, replay=rep) as s:
            names = s.symbols()
            typer.echo(f"streams: {s.stream_url}/ws/<stream>  {s.stream_url}/stream?streams=<a>/<b>")
            typer.echo(f"REST:    {s.rest_url}/api/v3/exchangeInfo")
            typer.echo(f"control: {s.rest_url}/sim/")
            shown = names if len(names) <= 8 else [f"{len(names)}:", *names[:3], "...", names[-1]]
            typer.echo(f"symbols: {' '.join(shown)}")
            # Runs until Ctrl-C, or until a replay fails (then stop() raises it on the way out).
            await (rep.failed if rep is not None else asyncio.Event()).wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass  # Ctrl-C is how this command ends
    except (ReplayError, RecordingError, OSError) as exc:
        # A bad or unreadable recording: one line, no traceback (the log above has the details).
        typer.echo(f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)}", err=True)
        raise typer.Exit(1) from None


# -- tail -------------------------------------------------------------------------------------------

#: Fields shown per event type ("e"), in order, with a label; payloads without "e" are told apart by shape.
_TAIL_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "24hrTicker": (("c", "last"), ("P", "chg%"), ("b", "bid"), ("a", "ask"), ("v", "vol")),
    "24hrMiniTicker": (("c", "last"), ("o", "open"), ("h", "high"), ("l", "low"), ("v", "vol")),
    "1hTicker": (("c", "last"), ("P", "chg%"), ("v", "vol")),
    "4hTicker": (("c", "last"), ("P", "chg%"), ("v", "vol")),
    "1dTicker": (("c", "last"), ("P", "chg%"), ("v", "vol")),
    "avgPrice": (("w", "avg"), ("i", "over")),
    "referencePrice": (("r", "ref"),),
    "blockTrade": (("p", "price"), ("q", "qty"), ("t", "id")),
}


def _clock(ms: object) -> str:
    """HH:MM:SS.mmm (UTC) of an event time in ms, or of now when the payload carries none."""
    stamp = ms / 1000 if isinstance(ms, int) else time.time()
    return time.strftime("%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp * 1000) % 1000:03d}"


def _describe(msg: Any) -> tuple[str, str]:
    """A style and the key fields of one payload, as one readable line."""
    if isinstance(msg, list):
        names = " ".join(str(x.get("s")) for x in msg[:8] if isinstance(x, dict))
        return "", f"{len(msg)} symbols: {names}{' ...' if len(msg) > 8 else ''}"
    if not isinstance(msg, dict):
        return "", repr(msg)
    kind = msg.get("e")
    if kind == "error":
        extra = " ".join(f"{k}={v}" for k, v in msg.items() if k not in ("e", "m"))
        return "bold red", f"error: {msg.get('m')} {extra}".rstrip()
    if kind in ("trade", "aggTrade"):
        # m: the buyer is the maker, so the taker (aggressor) sold.
        side = "SELL" if msg.get("m") else "BUY "
        ident = msg.get("t") if kind == "trade" else msg.get("a")
        return ("red" if msg.get("m") else "green"), f"{side} {msg.get('q')} @ {msg.get('p')}  id {ident}"
    if kind == "kline":
        k = msg.get("k", {})
        closed = " closed" if k.get("x") else ""
        return "", (f"{k.get('i')} o {k.get('o')} h {k.get('h')} l {k.get('l')} c {k.get('c')} "
                    f"v {k.get('v')}{closed}")
    if kind == "depthUpdate":
        bids, asks = msg.get("b", []), msg.get("a", [])
        return "", f"U {msg.get('U')} u {msg.get('u')}  {len(bids)} bids {len(asks)} asks"
    if kind in _TAIL_FIELDS:
        return "", "  ".join(f"{label} {msg.get(key)}" for key, label in _TAIL_FIELDS[kind])
    if "lastUpdateId" in msg:  # partial book (PROTOCOL 4.11): no event type
        bid = msg["bids"][0] if msg.get("bids") else ["-", "-"]
        ask = msg["asks"][0] if msg.get("asks") else ["-", "-"]
        return "", f"bid {bid[1]} @ {bid[0]}  ask {ask[1]} @ {ask[0]}  id {msg['lastUpdateId']}"
    if "b" in msg and "a" in msg and "u" in msg:  # spot book ticker (PROTOCOL 4.9): no event type
        return "", f"bid {msg.get('B')} @ {msg.get('b')}  ask {msg.get('A')} @ {msg.get('a')}  u {msg['u']}"
    fields = "  ".join(f"{k} {v}" for k, v in msg.items() if not isinstance(v, (list, dict)))
    return "", fields[:200]


@app.command()
def tail(
    stream: Annotated[list[str], typer.Argument(help="Stream names, e.g. btcusdt@trade bnbbtc@depth5.")],
    use_sim: Annotated[bool, typer.Option("--sim", help="Stream from an embedded simulator.")] = False,
    endpoint: Annotated[str | None, typer.Option(help="Stream server base URL (ws://host:port).")] = None,
    testnet: Annotated[bool, typer.Option("--testnet", help="Use Binance's spot testnet.")] = False,
    count: Annotated[int, typer.Option(help="Stop after this many messages (0: run until Ctrl-C).")] = 0,
    json_lines: Annotated[bool, typer.Option("--json", help='Raw lines: {"stream":...,"data":...}.')] = False,
) -> None:
    """Stream messages to the terminal: one readable line each (time, stream, key fields), or raw JSON.

    Exit status: 0 after --count messages, 2 for a bad stream name or option, 1 if reconnecting gave up.
    """
    from binance_ws import errors, markets, streams

    if sum((use_sim, endpoint is not None, testnet)) > 1:
        typer.echo("error: choose one of --sim, --endpoint, --testnet", err=True)
        raise typer.Exit(2)
    if count < 0:
        typer.echo("error: --count must be 0 or more", err=True)
        raise typer.Exit(2)
    market = markets.SPOT_TESTNET if testnet else markets.SPOT
    if endpoint is not None:
        market = market.with_urls(stream_url=endpoint.rstrip("/"), name="endpoint",
                                  local=endpoint.startswith("ws://"))
    try:
        names = [streams.validate_stream(s, market) for s in stream]
    except errors.InvalidStreamError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    code = 0
    try:
        code = asyncio.run(_tail(names, market, use_sim, count, json_lines))
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python's exit-time flush of stdout
        # from raising again (the recipe in the signal module's documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as exc:  # stdout cannot be written at all (closed, full disk): say so, in one line
        typer.echo(f"error: cannot write to stdout: {exc}", err=True)
        with contextlib.suppress(OSError):  # and keep the exit-time flush from failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    raise typer.Exit(code)


#: Lines rendered but not yet written that ``tail`` holds before it waits for the terminal.
OUTPUT_QUEUE_LINES: Final = 4096


class _Output:
    """Lines written to a binary stream by a thread of its own, so a slow terminal never blocks the event
    loop (pings, pongs and reads go on): a bounded queue, drained in order by one writer thread.

    ``await put(line)`` waits (off the loop) only when the queue is full, and returns False once the
    reader has gone (a closed pipe, ``| head``); the writer then discards what is left.
    """

    def __init__(self, stream: BinaryIO, maxsize: int = OUTPUT_QUEUE_LINES) -> None:
        self._stream = stream
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize)
        #: Set when the reader went away (EPIPE); ``error`` holds any other write error.
        self.broken = threading.Event()
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="binance-ws-tail-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                return
            if self.broken.is_set():
                continue  # nobody reads any more: drain so that put() never blocks
            try:
                self._stream.write(line)
                if self._queue.empty():
                    self._stream.flush()
            except BrokenPipeError:
                self.broken.set()
            except (OSError, ValueError) as exc:  # ValueError: the stream was closed under us
                self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
                self.broken.set()

    async def put(self, line: bytes) -> bool:
        if self.broken.is_set():
            return False
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            await asyncio.to_thread(self._queue.put, line)
        return not self.broken.is_set()

    def close(self) -> None:
        """Write what is queued, then end the thread (blocking: call off the loop)."""
        self._queue.put(None)
        self._thread.join()
        if not self.broken.is_set():
            with contextlib.suppress(BrokenPipeError):  # the reader left after the last line: fine
                self._stream.flush()


async def _tail(names: list[str], market: Any, use_sim: bool, count: int, json_lines: bool) -> int:
    out = _Output(sys.stdout.buffer)
    try:
        code = await _tail_to(out, names, market, use_sim, count, json_lines)
    finally:
        await asyncio.to_thread(out.close)
    if out.error is not None:
        raise out.error
    if out.broken.is_set():
        raise BrokenPipeError("the reader of stdout went away")
    return code


async def _tail_to(out: _Output, names: list[str], market: Any, use_sim: bool, count: int,
                   json_lines: bool) -> int:
    from rich.console import Console
    from rich.text import Text

    from binance_ws import errors
    from binance_ws.engine.delivery import RawMessage
    from binance_ws.engine.manager import AsyncSocketManager

    async with contextlib.AsyncExitStack() as stack:
        if use_sim:
            from binance_ws.sim import Simulator

            sim = await stack.enter_async_context(Simulator())
            market = sim.market
        manager = await stack.enter_async_context(AsyncSocketManager(market=market))
        # "block": a slow terminal pauses reading rather than dropping what it has not shown yet.
        sub = await manager.subscribe(names, decode="raw" if json_lines else "dict", wrap=not json_lines,
                                      overflow="block")
        # Rendered here (styles as the terminal takes them), written by the output thread.
        console = Console(highlight=False, soft_wrap=True)

        def render(text: Text) -> bytes:
            with console.capture() as captured:
                console.print(text)
            return captured.get().encode("utf-8", "replace")

        shown = 0
        async for msg in sub:
            if isinstance(msg, RawMessage):
                line_out = b'{"stream":"' + msg.stream.encode() + b'","data":' + msg.data + b"}\n"
            elif isinstance(msg, dict) and msg.get("e") == "error":
                style, line = _describe(msg)
                if not await out.put(render(Text(f"{_clock(None)}  {line}", style=style))):
                    return 0
                if msg.get("m") == errors.MSG_MAX_RETRIES:
                    return 1
                continue  # an error event is shown but not counted as a message
            else:
                data = msg["data"]
                style, line = _describe(data)
                when = _clock(data.get("E") if isinstance(data, dict) else None)
                label = Text(f"{when}  {msg['stream']:<24} ", style="dim")
                line_out = render(label + Text(line, style=style))
            if not await out.put(line_out):
                return 0  # the reader went away: _tail reports it as a broken pipe
            shown += 1
            if count and shown >= count:
                return 0
    return 1  # the subscription ended without being asked to: every stream was given up


def main() -> None:
    app()


if __name__ == "__main__":
    main()
