"""``binance-ws sim``: run the simulated exchange until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from binance_ws.cli.app import ERROR_PREFIX, EXIT_BAD_INPUT, EXIT_GAVE_UP, EXIT_OK, app
from binance_ws.cli.common import _first_line, _input_file, _is_tail_json


@app.command(short_help="Run a local simulated Binance (streams, WS API, REST).")
def sim(
    market: Annotated[str | None, typer.Option(
        help="Serve the exchange as spot, usdm (USD-M futures: /public, /market and /private routes) "
             "or coinm (COIN-M futures). Default: spot, or with --replay the recording's product "
             "(a futures depth snapshot says USD-M or COIN-M).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback only by default).")] = "127.0.0.1",
    stream_port: Annotated[int, typer.Option(help="Stream server port (0: any free port).")] = 9443,
    rest_port: Annotated[int, typer.Option(help="REST port (0: any free port).")] = 9444,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic order flow (and of --symbols).")] = 1,
    rate: Annotated[float | None, typer.Option(
        help="Order-flow actions a second: per symbol (default 50), or with --symbols of the median "
             "symbol (default 0.05, the others heavy-tailed around it).")] = None,
    symbols: Annotated[str | None, typer.Option(
        help="N: list N generated symbols (SYM0001USDT..., up to 2000) with heavy-tailed activity: "
             "a few act every few ms, most a few times a minute, some stay silent for minutes. Or names: "
             "BTCUSDT,XRPUSDT,ADABTC lists those (any base with a USDT, USDC, FDUSD, BTC, ETH or BNB "
             "quote).")] = None,
    time_scale: Annotated[float, typer.Option(
        help="Run the market's periods N times faster: stream cadences, pings, the 24 h connection "
             "lifetime.")] = 1.0,
    replay: Annotated[Path | None,
                      typer.Option(help="Serve this recording instead of synthetic flow.")] = None,
    speed: Annotated[float, typer.Option(
        help="Replay pace: 1 = original, N = N times faster, 0 = as fast as read.")] = 1.0,
    demo_account: Annotated[bool, typer.Option(
        help="Create a 'demo' account with balances and an HMAC, an Ed25519 and an RSA key, and print "
             "them.")] = True,
    key_dir: Annotated[Path | None, typer.Option(
        help="Where to write the demo account's private keys (default: a new temporary directory, "
             "removed on exit).")] = None,
) -> None:
    """Run the simulated exchange until Ctrl-C, printing the URLs a client needs and a demo account's keys.

    Exit status: 0 on Ctrl-C, SIGTERM, or when the reader of stdout goes away (| head); 2 for a bad
    option; 1 if the simulator cannot start (a port in use, a file that is not a recording) or a replay
    fails part-way.
    """
    import errno

    from binance_ws.recording import RecordingError, read_recording
    from binance_ws.sim import SimConfig, Simulator
    from binance_ws.sim.config import MAX_SYMBOLS, Activity
    from binance_ws.sim.futures.product import PRODUCT_NAMES, product_config
    from binance_ws.sim.replay import Replay, ReplayError

    def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
        typer.echo(f"{ERROR_PREFIX}{message}", err=True)
        return typer.Exit(code)

    rep: Replay | None = None
    if replay is not None:
        if (why := _input_file(replay)) is not None:
            raise fail(f"--replay {why}")
        try:
            if replay.stat().st_size == 0:
                raise ReplayError(f"{replay} is empty: not a recording")
            if next(iter(read_recording(replay)), None) is None:
                raise ReplayError(f"{replay} holds no records (empty, or cut short before its first flush): "
                                  "nothing to replay")
            rep = Replay(replay, speed=speed)
            if rep.messages == 0:  # else it would serve the default symbols, silently
                raise ReplayError(f"{replay} holds no messages (empty, or cut short before its first "
                                  "flush): nothing to replay")
        except (ReplayError, RecordingError, OSError, ValueError) as exc:
            message = _first_line(exc)
            if _is_tail_json(replay):
                message += (" -- this is `binance-ws tail --json` output, which has no receive times; "
                            "record with `binance-ws tail --record FILE` to replay it")
            raise fail(message, EXIT_GAVE_UP) from None
        if market is not None and market != rep.product:
            raise fail(f"--replay {replay.name} is a {rep.product} recording; serve it with --market "
                       f"{rep.product} (or leave --market out)")
        market = rep.product
    market = market or "spot"
    if market not in PRODUCT_NAMES:
        raise fail(f"--market must be one of {', '.join(PRODUCT_NAMES)}, not {market!r}")
    if symbols is not None and market != "spot":
        raise fail("--symbols lists spot symbols; it cannot be used with --market usdm or coinm")
    count, named = _symbols_option(symbols, seed)
    if count is not None and not 1 <= count <= MAX_SYMBOLS:
        raise fail(f"--symbols must be between 1 and {MAX_SYMBOLS}, not {count}")
    if isinstance(named, str):
        raise fail(f"--symbols: {named}")
    if not time_scale > 0:
        raise fail(f"--time-scale must be > 0, not {time_scale}")
    if rate is not None and rate < 0:
        raise fail(f"--rate must be >= 0, not {rate}")
    for option, port in (("--stream-port", stream_port), ("--rest-port", rest_port)):
        if not 0 <= port <= 65535:
            raise fail(f"{option} must be between 0 and 65535, not {port}")
    if count is None:
        cfg = product_config(market, host=host, stream_port=stream_port, rest_port=rest_port, seed=seed,
                             flow_rate=50.0 if rate is None else rate)
        if named is not None:
            cfg = dataclasses.replace(cfg, symbols=named)
    else:
        activity = Activity() if rate is None else Activity(median_rate=rate)
        cfg = SimConfig.market(count, seed=seed, activity=activity, host=host, stream_port=stream_port,
                               rest_port=rest_port)
    if time_scale != 1.0:
        cfg = cfg.compressed(time_scale)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("binance_ws.sim").setLevel(logging.INFO)

    async def run() -> None:
        # SIGTERM ends sim as Ctrl-C does, through the loop: the demo account's key files are removed.
        terminated = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminated.set)
        async with Simulator(cfg, replay=rep) as s, contextlib.AsyncExitStack() as stack:
            names = s.symbols()
            for line in _urls(s, market):
                typer.echo(line)
            shown = names if len(names) <= 8 else [f"{len(names)}:", *names[:3], "...", names[-1]]
            typer.echo(f"symbols: {' '.join(shown)}")
            if market == "spot":  # the spot forms of the URLs, and an account to trade with
                typer.echo(f"market:  export BINANCE_WS_MARKET={s.stream_url},{s.rest_url},{s.ws_api_url}")
                typer.echo(f'python:  local_market("{s.stream_url}", "{s.rest_url}", "{s.ws_api_url}")')
            if demo_account and market == "spot":
                _print_demo_account(s, key_dir or Path(stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="binance-ws-sim-"))))
            if names and rep is None:  # a replay holds only the streams it recorded
                if market == "spot":
                    typer.echo(f"try:     binance-ws tail {names[0].lower()}@trade --endpoint {s.stream_url}")
                else:
                    typer.echo(f"try:     binance-ws tail {names[0].lower()}@markPrice@1s "
                               f"{names[0].lower()}@bookTicker --market {market} --endpoint {s.stream_url}")
            # Runs until Ctrl-C or SIGTERM, or until a replay fails (then stop() raises it on the way out).
            watch = asyncio.create_task(_watch_sim(s))
            ends = [asyncio.create_task(e.wait()) for e in (terminated, rep.failed if rep else None) if e]
            try:
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (watch, *ends):
                    task.cancel()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass  # Ctrl-C (or SIGTERM) is how this command ends
    except BrokenPipeError:  # the reader of the URLs went away (| head): done, as tail is
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        raise typer.Exit(EXIT_OK) from None
    except OSError as exc:
        first = _first_line(exc)
        if exc.errno == errno.EADDRINUSE:
            # asyncio's "[Errno 98] error while attempting to bind on address ('h', p): ...", said plainly.
            where = re.search(r"\('([^']*)', (\d+)", first)
            at = f"{where[1]}:{where[2]}" if where else host
            first = (f"cannot listen on {at}: address already in use: another binance-ws sim? "
                     "--stream-port 0 --rest-port 0 pick free ports")
        elif isinstance(exc, socket.gaierror):
            first = f"--host {host!r}: cannot resolve it ({exc.strerror}): give an address such as 127.0.0.1"
        elif exc.errno == errno.EADDRNOTAVAIL:
            first = f"--host {host!r} is not an address of this machine ({exc.strerror})"
        raise fail(first, EXIT_GAVE_UP) from None
    except (ReplayError, RecordingError) as exc:
        # A bad or unreadable recording: one line, no traceback (the log above has the details).
        message = _first_line(exc)
        if replay is not None and replay.stat().st_size == 0:
            message = f"{replay} is empty: not a recording"
        if replay is not None and _is_tail_json(replay):
            message += (" -- this is `binance-ws tail --json` output, which has no receive times; "
                        "record with `binance-ws tail --record FILE` to replay it")
        raise fail(message, EXIT_GAVE_UP) from None


def _symbols_option(value: str | None, seed: int) -> tuple[int | None, tuple[Any, ...] | str | None]:
    """``--symbols``: ``(N, None)`` for a count, ``(None, specs)`` for names, ``(None, why)`` for names
    that cannot be listed, ``(None, None)`` when not given."""
    from binance_ws.sim.config import named_symbols

    if value is None:
        return None, None
    if value.strip().lstrip("-").isdigit():
        return int(value), None
    try:
        return None, named_symbols(value.split(","), seed)
    except ValueError as exc:
        return None, str(exc)


def _print_demo_account(s: Any, key_dir: Path) -> None:
    """Create the demo account on ``s`` and print what a client needs to use it: the API keys, the HMAC
    secret (here, once: this is how it is handed over; it is never logged) and the private keys' files."""
    from binance_ws.sim.demo import create_demo_account

    demo = create_demo_account(s.accounts, s.config.symbols, key_dir)
    typer.echo(f"account: {demo.name}  " + "  ".join(f"{a} {v}" for a, v in demo.balances.items()))
    typer.echo(f"HMAC:    export BINANCE_API_KEY={demo.hmac_api_key} BINANCE_API_SECRET={demo.hmac_secret}")
    typer.echo(f"Ed25519: export BINANCE_API_KEY={demo.ed25519_api_key} "
               f"BINANCE_PRIVATE_KEY_PATH={demo.ed25519_pem}")
    typer.echo(f"RSA:     export BINANCE_API_KEY={demo.rsa_api_key} BINANCE_PRIVATE_KEY_PATH={demo.rsa_pem}")


def _urls(s: Any, market: str) -> list[str]:
    """Every URL a client of the simulator served as ``market`` needs, one ``label: url`` line each."""
    base = s.stream_url
    lines = []
    if market == "usdm":
        # PROTOCOL.md 8: book data on /public, the rest on /market, user data on /private; the legacy
        # unrouted paths get only the /public streams.
        lines += [f"public:  {base}/public/ws/<stream>  {base}/public/stream?streams=<a>/<b>",
                  f"market:  {base}/market/ws/<stream>  {base}/market/stream?streams=<a>/<b>",
                  f"private: {base}/private/ws?listenKey=<key>  (key: POST {s.rest_url}/fapi/v1/listenKey)",
                  f"legacy:  {base}/ws/<stream>  {base}/stream?streams=<a>/<b>  (public streams only)"]
    else:
        lines.append(f"streams: {base}/ws/<stream>  {base}/stream?streams=<a>/<b>")
    if market == "spot":
        lines += [f"WS API:  {s.ws_api_url}", f"REST:    {s.rest_url}/api/v3/exchangeInfo"]
    else:
        # Futures REST (exchangeInfo, depth in the streams' id space, premiumIndex from the mark model).
        lines.append(f"REST:    {s.rest_url}{s.market.rest_prefix}/exchangeInfo")
    lines.append(f"control: {s.rest_url}/sim/")
    return lines


#: How often ``sim`` looks at its simulator to log what changed.
SIM_WATCH_INTERVAL_S: Final = 0.5


async def _watch_sim(s: Any, interval: float = SIM_WATCH_INTERVAL_S) -> None:
    """Log at INFO what clients do to the simulator (connections opened and closed, streams subscribed
    and dropped, faults applied), read from its public state: the simulator itself logs only its start."""
    from binance_ws.engine.wsapi import redact_url  # a listen key in a path is a credential

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
                     f" {redact_url(c['path'])}" if c.get("path") else "")
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

