"""What every ``binance-ws`` command shares: one-line failures, endpoint checks, readable lines, and
an output thread that never blocks the event loop."""

from __future__ import annotations

import asyncio
import contextlib
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
from typing import Any, BinaryIO, Final
from urllib.parse import urlsplit

import typer

from binance_ws import errors
from binance_ws.cli.app import ERROR_PREFIX

#: An exception as one line (the command line's errors): binance_ws.errors.first_line.
_first_line = errors.first_line


def _is_tail_json(path: Path) -> bool:
    """Whether ``path`` starts like ``binance-ws tail --json`` output (a combined-stream JSON line)."""
    try:
        with path.open("rb") as f:
            return f.read(11) == b'{"stream":"'
    except OSError:
        return False



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
    # Futures (PROTOCOL 8)
    "markPriceUpdate": (("p", "mark"), ("i", "index"), ("P", "settle"), ("r", "funding"), ("T", "next")),
    "indexPriceUpdate": (("i", "pair"), ("p", "index")),
    "compositeIndex": (("p", "index"),),
    "assetIndexUpdate": (("i", "index"), ("b", "bid buf"), ("a", "ask buf")),
    "contractInfo": (("ps", "pair"), ("ct", "type"), ("cs", "status"), ("dt", "delivery")),
}
#: Kline-shaped events: the bar in ``k``; continuous klines also name the pair and contract type.
_KLINES = ("kline", "continuous_kline", "markPrice_kline", "indexPrice_kline")


def _describe(msg: Any) -> tuple[str, list[str]]:
    """A style and the key fields of one payload, each field a whole unit (never cut inside a number)."""
    if isinstance(msg, list):  # !miniTicker@arr, !markPrice@arr, !assetIndex@arr: symbol and price of each
        items = [f"{x.get('s')} {_num(x.get('c', x.get('p', x.get('i', ''))))}".rstrip() for x in msg
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
    if kind in _KLINES:
        k = msg.get("k", {})
        which = [f"{msg.get('ps')} {msg.get('ct')}"] if kind == "continuous_kline" else []
        if kind != "kline" and kind != "continuous_kline":
            which = [f"{kind.partition('_')[0]} {msg.get('ps', msg.get('s', ''))}".rstrip()]
        return "", [*which, f"{k.get('i')}{' closed' if k.get('x') else ''}", f"c {_num(k.get('c'))}",
                    f"o {_num(k.get('o'))}", f"h {_num(k.get('h'))}", f"l {_num(k.get('l'))}",
                    f"v {_num(k.get('v'))}"]
    if kind == "forceOrder":  # the liquidation order is nested under "o" (PROTOCOL 8)
        o = msg["o"] if isinstance(msg.get("o"), dict) else {}
        liquidated = str(o.get("S"))
        return ("red" if liquidated == "SELL" else "green"), [
            f"{o.get('s')} liquidation {liquidated} {_num(o.get('q'))} @ {_num(o.get('p'))}",
            f"avg {_num(o.get('ap'))}", f"filled {_num(o.get('z'))}", f"{o.get('X')}"]
    if kind == "depthUpdate":
        bids, asks = msg.get("b", []), msg.get("a", [])
        return "", [f"U {msg.get('U')} u {msg.get('u')}", f"{len(bids)} bids {len(asks)} asks"]
    if kind in _TAIL_FIELDS:  # keys a product does not send (futures tickers: no b, a) are left out
        fields = [f"{label} {_num(msg[key])}" for key, label in _TAIL_FIELDS[kind] if key in msg]
        if kind == "compositeIndex" and isinstance(msg.get("c"), list):
            fields.append(f"{len(msg['c'])} components")
        return "", fields
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
        hint = "is this the REST port?"
        if urlsplit(url).path.rstrip("/"):  # a routed product's path (USD-M's /public): maybe not served
            hint += (f" or a server without {urlsplit(url).path.rstrip('/')} for this --market: "
                     "binance-ws sim --market usdm serves it")
        return (f"{url} is not a WebSocket stream server: it answered the handshake with {answer!s:.60} "
                f"({hint})")
    return None


async def _rest_unreachable(url: str, timeout: float = PREFLIGHT_TIMEOUT_S) -> str | None:
    """None if a TCP connection to the REST base ``url`` (``--rest``) opens; else one line naming it. Run
    before subscribing, so snapshots that can never come fail at once instead of never syncing."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{host}:{port}"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except socket.gaierror as exc:
        return f"--rest {url}: cannot resolve host {host!r} ({exc.strerror}): check the name"
    except ConnectionRefusedError:
        return f"--rest {url}: cannot connect to {where}: connection refused (nothing listens there)"
    except TimeoutError:
        return f"--rest {url}: cannot connect to {where}: no answer within {timeout:g} s"
    except OSError as exc:
        return f"--rest {url}: cannot connect to {where}: {exc.strerror or type(exc).__name__}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def _input_file(path: Path) -> str | None:
    """None if ``path`` is a file that can be read; else the one line saying what it is instead."""
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        hint = f", e.g. {path / inside[0]}" if inside else ""
        return f"{path} is a folder: give one recording file in it{hint}"
    if not path.exists():
        return f"{path}: no such file"
    if not path.is_file():
        return f"{path} is not a regular file"
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror or exc})"
    return None


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"{ERROR_PREFIX}{message}", err=True)
    return typer.Exit(code)



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


