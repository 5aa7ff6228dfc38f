"""The ``binance-ws`` command: ``sim`` runs the local exchange, ``tail`` streams messages to the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import shutil
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Final
from urllib.parse import urlsplit

import typer

# Plain help (rich_markup_mode=None): the rich renderer of this typer labels every flag "<bool>", as if
# --sim took a value.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Binance WebSocket streams, and a local Binance to try them on.")

#: Exit statuses, documented in the README's "The command line".
EXIT_OK: Final = 0
EXIT_GAVE_UP: Final = 1
EXIT_BAD_INPUT: Final = 2


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from binance_ws import __version__
        try:
            shown = version("binance-ws")
        except PackageNotFoundError:  # run from a source tree (PYTHONPATH=src), not installed
            shown = __version__
        typer.echo(f"binance-ws {shown}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False) -> None:
    """Binance WebSocket streams, and a local Binance to try them on."""


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
    """Run the simulated exchange until Ctrl-C, printing the URLs a client needs.

    Exit status: 0 on Ctrl-C; 2 for a bad option; 1 if the simulator cannot start (a port in use, a file
    that is not a recording) or a replay fails part-way.
    """
    import errno

    from binance_ws.recording import RecordingError
    from binance_ws.sim import SimConfig, Simulator
    from binance_ws.sim.config import MAX_SYMBOLS, Activity
    from binance_ws.sim.replay import Replay, ReplayError

    def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
        # An option refused: "binance-ws sim: ..."; the simulator failing to start or run: "error: ...".
        # Both prefixes are pinned by tests of the simulator (tests/sim/test_market.py, test_replay.py).
        prefix = "binance-ws sim" if code == EXIT_BAD_INPUT else "error"
        typer.echo(f"{prefix}: {message}", err=True)
        return typer.Exit(code)

    if symbols is not None and not 1 <= symbols <= MAX_SYMBOLS:
        raise fail(f"--symbols must be between 1 and {MAX_SYMBOLS}, not {symbols}")
    if not time_scale > 0:
        raise fail(f"--time-scale must be > 0, not {time_scale}")
    if rate is not None and rate < 0:
        raise fail(f"--rate must be >= 0, not {rate}")
    for option, port in (("--stream-port", stream_port), ("--rest-port", rest_port)):
        if not 0 <= port <= 65535:
            raise fail(f"{option} must be between 0 and 65535, not {port}")
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
    logging.getLogger("binance_ws.sim").setLevel(logging.INFO)

    async def run() -> None:
        rep = Replay(replay, speed=speed) if replay is not None else None
        async with Simulator(cfg, replay=rep) as s:
            names = s.symbols()
            typer.echo(f"streams: {s.stream_url}/ws/<stream>  {s.stream_url}/stream?streams=<a>/<b>")
            typer.echo(f"WS API:  {s.ws_api_url}")
            typer.echo(f"REST:    {s.rest_url}/api/v3/exchangeInfo")
            typer.echo(f"control: {s.rest_url}/sim/")
            shown = names if len(names) <= 8 else [f"{len(names)}:", *names[:3], "...", names[-1]]
            typer.echo(f"symbols: {' '.join(shown)}")
            if names and rep is None:  # a replay holds only the streams it recorded
                typer.echo(f"try:     binance-ws tail {names[0].lower()}@trade --endpoint {s.stream_url}")
            # Runs until Ctrl-C, or until a replay fails (then stop() raises it on the way out).
            watch = asyncio.create_task(_watch_sim(s))
            try:
                await (rep.failed if rep is not None else asyncio.Event()).wait()
            finally:
                watch.cancel()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass  # Ctrl-C is how this command ends
    except OSError as exc:
        first = _first_line(exc)
        if exc.errno == errno.EADDRINUSE:
            first += ": another binance-ws sim? --stream-port 0 --rest-port 0 pick free ports"
        raise fail(first, EXIT_GAVE_UP) from None
    except (ReplayError, RecordingError) as exc:
        # A bad or unreadable recording: one line, no traceback (the log above has the details).
        message = _first_line(exc)
        if replay is not None and _is_tail_json(replay):
            message += (" -- this is `binance-ws tail --json` output, which has no receive times; "
                        "record with `binance-ws tail --record FILE` to replay it")
        raise fail(message, EXIT_GAVE_UP) from None


#: How often ``sim`` looks at its simulator to log what changed.
SIM_WATCH_INTERVAL_S: Final = 0.5


async def _watch_sim(s: Any, interval: float = SIM_WATCH_INTERVAL_S) -> None:
    """Log at INFO what clients do to the simulator (connections opened and closed, streams subscribed
    and dropped, faults applied), read from its public state: the simulator itself logs only its start."""
    log = logging.getLogger("binance_ws.cli.sim")
    conns: dict[int, float] = {}  # id -> when it opened (monotonic)
    streams: set[str] = set()
    counts: dict[str, int] = {}
    while True:
        state = s.faults.state()
        now = {c["id"]: c for c in state["connections"]}
        for cid in now.keys() - conns.keys():
            c = now[cid]
            conns[cid] = time.monotonic() - float(c.get("age_s", 0.0))
            log.info("connection %s opened: %s %s%s", cid, c.get("peer"), c.get("kind"),
                     f" {c['path']}" if c.get("path") else "")
        for cid in conns.keys() - now.keys():
            log.info("connection %s closed after %.1f s", cid, time.monotonic() - conns.pop(cid))
        subscribed = set(s.hub.subscribed_streams())
        if subscribed - streams:
            log.info("subscribed: %s", " ".join(sorted(subscribed - streams)))
        if streams - subscribed:
            log.info("no longer subscribed: %s", " ".join(sorted(streams - subscribed)))
        for name, n in state["counts"].items():
            if n != counts.get(name, 0):
                log.info("fault %s: %d (+%d)", name, n, n - counts.get(name, 0))
        streams, counts = subscribed, dict(state["counts"])
        await asyncio.sleep(interval)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def _is_tail_json(path: Path) -> bool:
    """Whether ``path`` starts like ``binance-ws tail --json`` output (a combined-stream JSON line)."""
    try:
        with path.open("rb") as f:
            return f.read(11) == b'{"stream":"'
    except OSError:
        return False


# -- tail -------------------------------------------------------------------------------------------


class _BadInput(Exception):
    """Input refused before anything connects: one line for stderr, exit status 2."""


#: A Binance decimal string ("61800.03000000"): trailing zeros after the point are padding.
_DECIMAL: Final = re.compile(r"-?\d+\.\d+")


def _num(value: object) -> str:
    """A price or quantity as Binance sent it, without the zero padding: '61800.03000000' -> '61800.03',
    '0.00000000' -> '0'; integers and anything else unchanged."""
    text = str(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        text = value.rstrip("0").rstrip(".")
        return "0" if text in ("", "-", "-0") else text
    return text


def _clock(ms: float) -> str:
    """HH:MM:SS.mmm (UTC) of a time in ms since the epoch."""
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000)) + f".{int(ms) % 1000:03d}"


#: Width of a clock column (HH:MM:SS.mmm).
_CLOCK_WIDTH: Final = 12

#: Fields shown per event type ("e"), most useful first (a narrow terminal drops from the right).
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


def _describe(msg: Any) -> tuple[str, list[str]]:
    """A style and the key fields of one payload, each field a whole unit (never cut inside a number)."""
    if isinstance(msg, list):  # !miniTicker@arr and the like: symbol and price of each
        items = [f"{x.get('s')} {_num(x.get('c', x.get('p', '')))}".rstrip() for x in msg
                 if isinstance(x, dict)]
        return "", [f"{len(msg)} symbols:", *items]
    if not isinstance(msg, dict):
        return "", [repr(msg)]
    kind = msg.get("e")
    if kind in ("trade", "aggTrade"):
        # m: the buyer is the maker, so the taker (aggressor) sold.
        side = "SELL" if msg.get("m") else "BUY "
        ident = msg.get("t") if kind == "trade" else msg.get("a")
        return ("red" if msg.get("m") else "green"), [f"{side} {_num(msg.get('q'))} @ {_num(msg.get('p'))}",
                                                      f"id {ident}"]
    if kind == "kline":
        k = msg.get("k", {})
        return "", [f"{k.get('i')}{' closed' if k.get('x') else ''}", f"c {_num(k.get('c'))}",
                    f"o {_num(k.get('o'))}", f"h {_num(k.get('h'))}", f"l {_num(k.get('l'))}",
                    f"v {_num(k.get('v'))}"]
    if kind == "depthUpdate":
        bids, asks = msg.get("b", []), msg.get("a", [])
        return "", [f"U {msg.get('U')} u {msg.get('u')}", f"{len(bids)} bids {len(asks)} asks"]
    if kind in _TAIL_FIELDS:
        return "", [f"{label} {_num(msg.get(key))}" for key, label in _TAIL_FIELDS[kind]]
    if "lastUpdateId" in msg:  # partial book (PROTOCOL 4.11): no event type
        bid = msg["bids"][0] if msg.get("bids") else ["-", "-"]
        ask = msg["asks"][0] if msg.get("asks") else ["-", "-"]
        return "", [f"bid {_num(bid[1])} @ {_num(bid[0])}", f"ask {_num(ask[1])} @ {_num(ask[0])}",
                    f"id {msg['lastUpdateId']}"]
    if "b" in msg and "a" in msg and "u" in msg:  # spot book ticker (PROTOCOL 4.9): no event type
        return "", [f"bid {_num(msg.get('B'))} @ {_num(msg.get('b'))}",
                    f"ask {_num(msg.get('A'))} @ {_num(msg.get('a'))}", f"u {msg['u']}"]
    return "", [f"{k} {_num(v)}" for k, v in msg.items()
                if k not in ("e", "E", "s") and not isinstance(v, (list, dict))]


def _fit(fields: list[str], room: int | None) -> str:
    """``fields`` joined by two spaces, dropping whole fields from the right (marked "…") past ``room``."""
    line = "  ".join(fields)
    if room is None or len(line) <= room:
        return line
    kept = fields[0]
    for field in fields[1:]:
        if len(kept) + 2 + len(field) + 3 > room:
            break
        kept += "  " + field
    return kept + "  …"


def _width() -> int | None:
    """Columns to fit lines in: the terminal's (or $COLUMNS); None (no limit) when stdout is a pipe or
    file and $COLUMNS is not set, so nothing is dropped from what a program reads."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _endpoint(raw: str) -> str:
    """The stream base URL in ``raw``: ws:// or wss://, a host, an optional port; a trailing ``/ws`` or
    ``/stream`` (what ``binance-ws sim`` prints) is dropped. Raises :class:`_BadInput` naming the fix."""
    text = raw.strip()
    if "://" not in text:
        raise _BadInput(f"--endpoint {raw!r} has no scheme: try ws://{text.lstrip('/')} "
                        "(or wss:// for a TLS server such as Binance's)")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        fix = "ws" if scheme == "http" else "wss"
        raise _BadInput(f"--endpoint {raw!r} is an {scheme}:// URL (REST); streams are WebSocket: "
                        f"try {fix}://{parts.netloc}")
    if scheme not in ("ws", "wss"):
        raise _BadInput(f"--endpoint {raw!r}: the scheme must be ws:// or wss://, not {scheme}://")
    if not parts.hostname:
        raise _BadInput(f"--endpoint {raw!r} names no host: try ws://127.0.0.1:9443")
    try:
        port = parts.port
    except ValueError:
        raise _BadInput(f"--endpoint {raw!r}: the port is not a number from 0 to 65535") from None
    path = parts.path.rstrip("/")
    base = f"{scheme}://{parts.netloc}"
    if parts.query or parts.fragment or path.startswith(("/ws/", "/stream/")):
        raise _BadInput(f"--endpoint {raw!r} names streams: give the server's base URL, {base}, and "
                        "the streams as arguments")
    if path in ("/ws", "/stream"):
        path = ""
    if port == 0:
        raise _BadInput(f"--endpoint {raw!r}: port 0 is not a server's port")
    return base + path


#: Seconds the check before subscribing waits for a TCP (and TLS) connection.
PREFLIGHT_TIMEOUT_S: Final = 10.0


async def _unreachable(url: str, timeout: float = PREFLIGHT_TIMEOUT_S) -> str | None:
    """None if a TCP connection (and for wss:// a TLS handshake) to ``url``'s host opens; else one line
    saying why, naming the host. Run once before subscribing, so a wrong address fails in seconds rather
    than after every reconnect attempt."""
    parts = urlsplit(url)
    tls = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    where = f"{host}:{port}"
    context = None
    if tls:  # only "does it speak TLS at all": the connection proper verifies the certificate
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=context, server_hostname=host if tls else None), timeout)
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r} ({exc.strerror}): check the name, or the network"
    except ConnectionRefusedError:
        return f"cannot connect to {where}: connection refused (nothing listens there)"
    except TimeoutError:
        return f"cannot connect to {where}: no answer within {timeout:g} s"
    except (ssl.SSLError, ConnectionResetError) as exc:
        # A plain server answers a TLS hello with garbage (SSLError) or by closing (reset).
        if tls:
            why = getattr(exc, "reason", None) or exc.strerror or "the server closed the connection"
            return (f"TLS handshake with {where} failed ({why}): if it is a plain server (like "
                    f"binance-ws sim), use ws://{where}")
        return f"cannot connect to {where}: {exc.strerror or 'connection reset'}"
    except OSError as exc:
        return f"cannot connect to {where}: {exc.strerror or type(exc).__name__}"
    try:
        # The WebSocket upgrade, as the connection proper will ask for it: a server that is not a stream
        # server (a REST port, a web server) says so here, instead of through every reconnect attempt.
        path = (urlsplit(url).path.rstrip("/") or "") + "/ws"
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {where}\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        status = (await asyncio.wait_for(reader.readline(), timeout)).decode("latin-1").strip()
    except TimeoutError:
        return f"{where} did not answer a WebSocket handshake within {timeout:g} s"
    except (OSError, ssl.SSLError) as exc:
        return f"{where} closed the connection during the WebSocket handshake ({exc.strerror or exc})"
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if status.split(" ")[1:2] != ["101"]:
        answer = status or "nothing (the connection closed)"
        return (f"{url} is not a WebSocket stream server: it answered the handshake with {answer!s:.60}"
                f" (is this the REST port?)")
    return None


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command()
def tail(
    stream: Annotated[list[str], typer.Argument(help="Stream names, e.g. btcusdt@trade bnbbtc@depth5.")],
    use_sim: Annotated[bool, typer.Option("--sim", help="Stream from an embedded simulator.")] = False,
    endpoint: Annotated[str | None, typer.Option(
        metavar="URL", help="Stream server base URL, ws://host:port or wss://host:port.")] = None,
    testnet: Annotated[bool, typer.Option("--testnet", help="Use Binance's spot testnet.")] = False,
    count: Annotated[int, typer.Option(
        metavar="N", help="Stop after this many messages (0: run until Ctrl-C).")] = 0,
    json_lines: Annotated[bool, typer.Option(
        "--json", help='Raw lines on stdout: {"stream":...,"data":...}; error events as JSON on stderr.')]
        = False,
    record: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Also write every message to FILE in the recording format "
                              "`binance-ws sim --replay` reads (.gz/.zst compress).")] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Also log what the library does (connects, retries) on stderr.")] = False,
) -> None:
    """Stream messages to stdout: one readable line each (receive time, event time, stream, key fields),
    or raw JSON. Error events (gaps, reconnects) go to stderr.

    Exit status: 0 after --count messages or when the reader goes away (| head); 2 for bad input (a stream
    name, an option, an --endpoint URL, a stream the server refuses); 1 when the server cannot be reached
    or reconnecting gave up.
    """
    from binance_ws import errors, markets, streams

    # What goes wrong reaches this command as error events, shown on stderr in the chosen format; the
    # library's own warnings about the same things would repeat them as unformatted lines.
    logging.getLogger("binance_ws").setLevel(logging.INFO if verbose else logging.CRITICAL)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if sum((use_sim, endpoint is not None, testnet)) > 1:
        raise _fail("choose one of --sim, --endpoint, --testnet", EXIT_BAD_INPUT)
    if count < 0:
        raise _fail("--count must be 0 or more", EXIT_BAD_INPUT)
    market = markets.SPOT_TESTNET if testnet else markets.SPOT
    try:
        if endpoint is not None:
            url = _endpoint(endpoint)
            market = market.with_urls(stream_url=url, name="endpoint", local=url.startswith("ws://"))
        names = [streams.validate_stream(s, market) for s in stream]
    except (_BadInput, errors.InvalidStreamError) as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    code = EXIT_OK
    try:
        code = asyncio.run(_tail(names, market, use_sim, count, json_lines, record))
    except KeyboardInterrupt:
        code = 130
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


class _Failure(Exception):
    """``tail`` stops: ``str()`` is the one line for stderr, ``code`` the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


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


async def _tail(names: list[str], market: Any, use_sim: bool, count: int, json_lines: bool,
                record: Path | None = None) -> int:
    out = _Output(sys.stdout.buffer)
    try:
        code = await _tail_to(out, names, market, use_sim, count, json_lines, record)
    finally:
        await asyncio.to_thread(out.close)
    if out.error is not None:
        raise out.error
    if out.broken.is_set():
        raise BrokenPipeError("the reader of stdout went away")
    return code


def _error_line(event: dict[str, Any], json_lines: bool) -> str:
    """An error event as one stderr line: the event itself as JSON (--json), or readable."""
    if json_lines:
        import orjson

        return orjson.dumps(event, default=str).decode() + "\n"
    extra = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("e", "m"))
    return f"{_clock(time.time() * 1000)}  error: {event.get('m')} {extra}".rstrip() + "\n"


def _stderr(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # nobody reads stderr either: nothing more to do
        sys.stderr.write(line)
        sys.stderr.flush()


async def _tail_to(out: _Output, names: list[str], market: Any, use_sim: bool, count: int,
                   json_lines: bool, record: Path | None = None) -> int:
    import orjson
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
        elif (why := await _unreachable(market.stream_url)) is not None:
            raise _Failure(why, EXIT_GAVE_UP)
        writer = None
        if record is not None:
            from binance_ws.recording import RecordingWriter

            try:
                writer = stack.enter_context(RecordingWriter(record, market=market.name,
                                                             url=market.stream_url))
            except OSError as exc:
                raise _Failure(f"--record {record}: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
        manager = await stack.enter_async_context(AsyncSocketManager(market=market))
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
                writer.write(time.time_ns(), msg.stream, bytes(msg.data))
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
