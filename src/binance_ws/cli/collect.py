"""``binance-ws collect``: stream into Redis Streams, alone or as one member of a fleet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from typing import Annotated, Any
from urllib.parse import urlsplit

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

#: Seconds the first PING of --redis may take (a server that is not Redis may never answer).
REDIS_CHECK_TIMEOUT_S = 5.0

#: Products by --market: the row of binance_ws.markets, and the name in the Redis keys.
_MARKETS = ("spot", "usdm", "coinm")


def _redis_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise _BadInput(f"--redis {_safe(raw)!r}: give a redis:// (or rediss://, unix://) URL, e.g. "
                        "redis://127.0.0.1:6379/0")
    if parts.scheme != "unix":
        if not parts.hostname:
            raise _BadInput(f"--redis {_safe(raw)!r} names no host: try redis://127.0.0.1:6379/0")
        try:
            _ = parts.port
        except ValueError:
            raise _BadInput(f"--redis {_safe(raw)!r}: the port is not a number from 0 to 65535") from None
    return raw.strip()


def _rest_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _BadInput(f"--rest {raw!r}: give the REST base URL, e.g. http://127.0.0.1:9444 or "
                        "https://api.binance.com")
    return f"{parts.scheme}://{parts.netloc}"


def _safe(url: str) -> str:
    """``url`` without a password (secrets never reach a log or an error line)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    # The text after the last "@" is host[:port] as given (never parsed: a bad port must not raise here).
    netloc = f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc).geturl()


def _redis_failure(url: str, exc: BaseException) -> _Failure:
    """A failed first PING as one line: a wrong or missing password is bad input (exit 2); a server that
    is not Redis, or none at all, cannot be reached (exit 1)."""
    from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError, ResponseError

    where = _safe(url)
    text = _first_line(exc)
    if isinstance(exc, (AuthenticationError, AuthenticationWrongNumberOfArgsError)) or (
            isinstance(exc, ResponseError) and ("NOAUTH" in text or "authenticated" in text)):
        if urlsplit(url).password is None:
            return _Failure(f"Redis at {where} needs a password: give it in the URL, "
                            "redis://:PASSWORD@host:port/db", EXIT_BAD_INPUT)
        return _Failure(f"Redis at {where} refused the user name or password", EXIT_BAD_INPUT)
    if "Protocol Error" in text or "Timeout reading" in text:
        return _Failure(f"{where} is not a Redis server ({text}): check the port", EXIT_GAVE_UP)
    return _Failure(f"cannot reach Redis at {where}: {text}", EXIT_GAVE_UP)


@app.command(short_help="Write streams into Redis Streams, alone or as one of a fleet.")
def collect(
    stream: Annotated[list[str], typer.Argument(metavar="STREAM",
        help="Stream names, e.g. btcusdt@trade btcusdt@depth@100ms.")],
    redis_url: Annotated[str | None, typer.Option(
        "--redis", metavar="URL", help="Redis to write into, e.g. redis://127.0.0.1:6379/0.")] = None,
    cluster: Annotated[bool, typer.Option(
        "--cluster", help="The --redis URL is a node of a Redis Cluster (keys spread over its slots).")
    ] = False,
    use_sim: Annotated[bool, typer.Option("--sim", help="Stream from an embedded simulator.")] = False,
    endpoint: Annotated[str | None, typer.Option(
        metavar="URL", help="Stream server base URL, ws://host:port or wss://host:port.")] = None,
    market: Annotated[str, typer.Option(
        metavar="NAME", help="Product: spot, usdm or coinm (the <market> in the Redis keys).")] = "spot",
    maxlen: Annotated[int, typer.Option(
        metavar="N", help="Entries each Redis stream keeps, about (XADD MAXLEN ~; 0: all).")] = 1_000_000,
    redundancy: Annotated[int, typer.Option(
        metavar="N", help="Members collecting each shard at once (2: no gap when one dies).")] = 1,
    lease_ttl: Annotated[float, typer.Option(
        metavar="SECONDS", help="Shard lease TTL: a dead member's shards are taken over within it.")] = 10.0,
    shards: Annotated[int, typer.Option(
        metavar="N", help="Shards the streams are split into (the same on every member).")] = 16,
    rest: Annotated[str | None, typer.Option(
        metavar="URL", help="REST base URL to backfill missed trades from (default: the market's; none "
                            "with --endpoint unless given).")] = None,
    backfill_weight: Annotated[int | None, typer.Option(
        metavar="N", help="REST weight a minute backfilling may spend (default: 40% of the market's "
                          "per-IP limit, 2400 on spot, 960 on futures; 0: never backfill).")] = None,
    redis_outage: Annotated[float, typer.Option(
        metavar="SECONDS", help="How long to go on while Redis does not answer (a restart, a failover): "
                                "writes wait and are tried again (0: give up at once).")] = 60.0,
    name: Annotated[str | None, typer.Option(
        metavar="NAME", help="This member's name in the fleet (default: host:pid).")] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log what the member and the library do on stderr.")] = False,
    metrics_port: MetricsPort = None,
    metrics_addr: MetricsAddr = DEFAULT_ADDR,
) -> None:
    """Write every message of the streams into Redis Streams (binance:<market>:<stream>, fields d: the
    payload as received, r: receive time in ns). Any number of collect processes with the same streams
    and --redis share the work: shards under leases, taken over when a member dies, each message stored
    once.

    Exit status: 0 on SIGTERM (leases released: others take over at once); 2 for bad input (a stream
    name, an option, a stream the server refuses, a wrong or missing Redis password, a fleet started
    with other streams or --shards); 1 when Redis, the stream server or --rest cannot be reached (or
    --redis is not a Redis server), Redis stopped answering for longer than --redis-outage, or
    reconnecting gave up.
    """
    from binance_ws import errors, markets, streams

    logging.getLogger("binance_ws").setLevel(logging.INFO if verbose else logging.CRITICAL)
    if not verbose:  # a Redis outage (and its end), a backfill cut short: said on stderr all the same
        for logger in ("binance_ws.sinks.redis", "binance_ws.fleet.backfill"):
            logging.getLogger(logger).setLevel(logging.WARNING)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if redis_url is None:
        raise _fail("--redis URL is required (where to write), e.g. --redis redis://127.0.0.1:6379/0",
                    EXIT_BAD_INPUT)
    if use_sim and endpoint is not None:
        raise _fail("choose one of --sim, --endpoint", EXIT_BAD_INPUT)
    if market not in _MARKETS:
        raise _fail(f"--market must be one of {', '.join(_MARKETS)}, not {market!r}", EXIT_BAD_INPUT)
    for option, value, low in (("--redundancy", redundancy, 1), ("--shards", shards, 1),
                               ("--maxlen", maxlen, 0), ("--backfill-weight", backfill_weight, 0)):
        if value is not None and value < low:
            raise _fail(f"{option} must be {low} or more, not {value}", EXIT_BAD_INPUT)
    if not redis_outage >= 0:
        raise _fail(f"--redis-outage must be 0 or more seconds, not {redis_outage}", EXIT_BAD_INPUT)
    if not lease_ttl >= 0.2:
        raise _fail(f"--lease-ttl must be at least 0.2 s, not {lease_ttl}", EXIT_BAD_INPUT)
    product = {"spot": markets.SPOT, "usdm": markets.USDM, "coinm": markets.COINM}[market]
    try:
        url = _redis_url(redis_url)
        rest_url = product.rest_url
        if endpoint is not None:
            base = _endpoint(endpoint)
            product = product.with_urls(stream_url=base, name="endpoint", local=base.startswith("ws://"))
            rest_url = ""
        if rest is not None:
            rest_url = _rest_url(rest)
        names = [streams.validate_stream(s, product) for s in stream]
    except (_BadInput, errors.InvalidStreamError) as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    member = name or f"{socket.gethostname()}:{os.getpid()}"
    try:
        code = asyncio.run(_collect(names, product, market, use_sim, url, member, cluster=cluster,
                                    maxlen=maxlen, redundancy=redundancy, lease_ttl=lease_ttl, shards=shards,
                                    rest_url=rest_url if backfill_weight != 0 else "",
                                    backfill_weight=backfill_weight, rest_explicit=rest is not None,
                                    metrics=(metrics_port, metrics_addr), redis_outage=redis_outage))
    except KeyboardInterrupt:  # Ctrl-C ends a member as SIGTERM does (slots handed over on the way out)
        code = EXIT_OK
    except _Failure as exc:
        typer.echo(f"error: {exc}", err=True)
        code = exc.code
    raise typer.Exit(code)


async def _collect(names: list[str], product: Any, label: str, use_sim: bool, url: str, member: str, *,
                   cluster: bool = False, maxlen: int, redundancy: int, lease_ttl: float, shards: int,
                   rest_url: str = "", backfill_weight: int | None = None, rest_explicit: bool = False,
                   metrics: tuple[int | None, str] = (None, DEFAULT_ADDR),
                   redis_outage: float = 60.0) -> int:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from binance_ws.engine.manager import AsyncSocketManager
    from binance_ws.fleet.collector import Collector, CollectorError

    stopping = asyncio.Event()
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_term() -> None:
        stopping.set()
        if main is not None:
            main.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, on_term)
    async with contextlib.AsyncExitStack() as stack:
        if cluster:
            from redis.asyncio.cluster import RedisCluster

            client: Any = RedisCluster.from_url(url, socket_connect_timeout=5)
        else:
            client = aioredis.Redis.from_url(url, socket_connect_timeout=5)
        stack.push_async_callback(client.aclose)
        try:
            await asyncio.wait_for(client.ping(), REDIS_CHECK_TIMEOUT_S)
        except TimeoutError:
            raise _Failure(f"{_safe(url)} did not answer a Redis PING within {REDIS_CHECK_TIMEOUT_S:g} s: "
                           "is it a Redis server?", EXIT_GAVE_UP) from None
        except (RedisError, OSError) as exc:
            raise _redis_failure(url, exc) from None
        if rest_url and rest_explicit and (why := await _rest_unreachable(rest_url)) is not None:
            raise _Failure(why, EXIT_GAVE_UP)
        if use_sim:
            from binance_ws.cli.views import simulator_for

            sim = await stack.enter_async_context(simulator_for(product))  # serves --market's product
            product = sim.market
            rest_url = sim.rest_url if rest_url else ""
        elif (why := await _unreachable(product.stream_url)) is not None:
            raise _Failure(why, EXIT_GAVE_UP)
        manager = await stack.enter_async_context(AsyncSocketManager(market=product))
        # --metrics-port: the engine's figures, plus the writes (latency, entries) and the shards owned.
        served = start_metrics(manager, *metrics)
        if served is not None:
            stack.callback(served.close)
        backfill = None
        if rest_url:  # the REST trade history (historicalTrades, aggTrades) of --market's product
            from binance_ws.engine.rest import ENV_API_KEY, AsyncClient
            from binance_ws.fleet.backfill import TradeBackfill

            # Futures historicalTrades is MARKET_DATA: the API key header (BINANCE_API_KEY; the embedded
            # simulator makes one). Only the key is read, never a secret.
            api_key = os.environ.get(ENV_API_KEY) or None
            if use_sim:
                sim.accounts.create_account("collector")
                api_key, _ = sim.accounts.register_hmac_key("collector")
            rest_client = AsyncClient(api_key, market=product, base_url=rest_url, env={})
            stack.push_async_callback(rest_client.close)
            backfill = TradeBackfill(rest_client, weight_per_minute=backfill_weight)
            if backfill.trades_unavailable and any(n.endswith("@trade") for n in names):
                logging.getLogger("binance_ws.fleet.backfill").warning(
                    "%s is not set: a gap in a %s @trade stream cannot be backfilled (historicalTrades "
                    "needs the API key; @aggTrade gaps can be)", ENV_API_KEY, label)
        collector = Collector(client, manager, label, names, name=member, shards=shards,
                              redundancy=redundancy, lease_ttl_s=lease_ttl, maxlen=maxlen, backfill=backfill,
                              report=sinks_for(served) if served is not None else None,
                              redis_outage_s=redis_outage)
        try:
            await collector.run()
        except asyncio.CancelledError:
            await collector.stop(release=True)
            if stopping.is_set():
                if main is not None:
                    main.uncancel()  # the SIGTERM's cancel is handled: the rest of the exit runs normally
                return EXIT_OK
            raise KeyboardInterrupt from None
        except CollectorError as exc:
            await collector.stop(release=True)
            raise _Failure(str(exc), exc.code) from None
        except (RedisError, OSError) as exc:
            await collector.stop(release=False)
            raise _Failure(f"Redis at {_safe(url)}: {_first_line(exc)}", EXIT_GAVE_UP) from None
    return EXIT_GAVE_UP
