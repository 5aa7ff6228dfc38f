"""``binance-ws book SYMBOL``: one order book, live: the ladder (asks over bids), spread, update rate,
sync state and staleness, kept by the library's :class:`~binance_ws.DepthCacheManager` (Binance's
snapshot-plus-diffs procedure, resynced on a gap)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Annotated, Any, Final

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from binance_ws.cli.app import EXIT_BAD_INPUT, EXIT_GAVE_UP, EXIT_OK, app
from binance_ws.cli.common import _BadInput, _fail, _Failure, _num, _rest_unreachable, _unreachable
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

#: Width of the quantity bars, in cells.
BAR_WIDTH: Final = 24
#: Shades of the states shown.
_STATE_STYLE: Final = {"SYNCED": "bold green", "SYNCING": "bold yellow", "STALE": "bold red",
                       "FAILED": "bold red"}


class BookView:
    """Renders one :class:`~binance_ws.core.book.DepthCache` and its sync counters; the update rate is
    the diffs applied between two renders over the time between them."""

    def __init__(self, levels: int) -> None:
        self.levels = levels
        self._applied: int | None = None
        self._at = 0.0

    def render(self, cache: Any, stats: Any, now: float, wall: float) -> RenderableType:
        rate = None
        if self._applied is not None and now > self._at:
            rate = (stats.applied - self._applied) / (now - self._at)
        self._applied, self._at = stats.applied, now
        state = cache.state.value
        head = Text()
        head.append(f"{cache.symbol}  ", style="bold")
        head.append(state, style=_STATE_STYLE.get(state, ""))
        head.append(f"   update id {cache.update_id}")
        head.append(f"   {'-' if rate is None else f'{rate:,.1f}'} updates/s")
        if cache.update_time:
            head.append(f"   last event {max(0.0, wall - cache.update_time / 1000):.2f} s ago")
        if cache.stale_since is not None:
            head.append(f"   stale {wall - cache.stale_since:.1f} s ({cache.stale_reason or '?'})",
                        style="red")
        head.append(f"   resyncs {stats.resyncs}  gaps {stats.gaps}")

        asks = cache.get_asks(self.levels)
        bids = cache.get_bids(self.levels)
        biggest = max([float(q) for _, q in asks + bids] or [1.0]) or 1.0
        ladder = Table(box=None, pad_edge=False, show_edge=False, expand=False)
        ladder.add_column("bids", justify="right", min_width=BAR_WIDTH)
        ladder.add_column("qty", justify="right")
        ladder.add_column("price", justify="right")
        ladder.add_column("qty", justify="left")
        ladder.add_column("asks", justify="left", min_width=BAR_WIDTH)
        for price, qty in reversed(asks):
            ladder.add_row("", "", Text(_num(str(price)), style="red"), _num(str(qty)),
                           Text(_bar(float(qty), biggest), style="red"))
        ladder.add_row("", "", Text(_spread(bids, asks), style="bold"), "", "")
        for price, qty in bids:
            ladder.add_row(Text(_bar(float(qty), biggest), style="green"), _num(str(qty)),
                           Text(_num(str(price)), style="green"), "", "")
        return Group(head, Text(""), ladder)


def _bar(qty: float, biggest: float) -> str:
    cells = qty / biggest * BAR_WIDTH
    return "█" * int(cells) + ("▌" if cells - int(cells) >= 0.5 else "")


def _spread(bids: list[Any], asks: list[Any]) -> str:
    if not bids or not asks:
        return "(empty side)"
    bid, ask = float(bids[0][0]), float(asks[0][0])
    mid = (bid + ask) / 2
    return f"spread {ask - bid:.8g} ({(ask - bid) / mid * 10_000:.3g} bps)" if mid else "spread -"


@app.command(short_help="A live order book: the ladder, spread, sync state, staleness.")
def book(
    symbol: Annotated[str, typer.Argument(metavar="SYMBOL", help="Symbol, e.g. BTCUSDT.")],
    use_sim: UseSim = False,
    endpoint: Endpoint = None,
    rest: Annotated[str | None, typer.Option(
        metavar="URL", help="REST base URL for the snapshots, with --endpoint (http://host:port).")] = None,
    testnet: Testnet = False,
    market_name: MarketName = "spot",
    levels: Annotated[int, typer.Option(metavar="N", min=1, max=100, help="Levels shown per side.")] = 10,
    limit: Annotated[int, typer.Option(metavar="N", min=1, help="Snapshot size (levels fetched).")] = 1000,
    interval: Interval = 0.25,
    iterations: Iterations = 0,
) -> None:
    """A live order book: the ladder, spread, updates a second, sync state and staleness. On a terminal
    it redraws in place; into a pipe it prints a snapshot every interval.

    Exit status: 0 after --iterations or Ctrl-C; 2 for bad input (a symbol the server refuses
    included); 1 when the stream server or the REST server (the snapshots) cannot be reached.
    """
    from binance_ws import errors, streams

    logging.getLogger("binance_ws").setLevel(logging.CRITICAL)
    try:
        if not symbol.strip():
            raise _BadInput("SYMBOL is empty: give one such as BTCUSDT")
        if endpoint is not None and rest is None:
            raise _BadInput("--endpoint needs --rest too (the snapshots come over REST), e.g. "
                            "--endpoint ws://127.0.0.1:9443 --rest http://127.0.0.1:9444")
        if rest is not None and endpoint is None:
            raise _BadInput("--rest goes with --endpoint")
        market = resolve_market(use_sim, endpoint, testnet, rest, market_name)
        streams.validate_stream(f"{symbol.lower()}@depth", market)
        if limit > market.max_depth_limit:
            raise _BadInput(f"--limit {limit} is above the largest snapshot ({market.max_depth_limit})")
    except (_BadInput, errors.InvalidStreamError) as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    code = EXIT_OK
    try:
        asyncio.run(_book(symbol.upper(), market, use_sim, levels, limit, interval, iterations))
    except KeyboardInterrupt:
        code = EXIT_OK
    except _Failure as exc:
        typer.echo(f"error: {exc}", err=True)
        code = exc.code
    raise typer.Exit(code)


async def _book(symbol: str, market: Any, use_sim: bool, levels: int, limit: int, interval: float,
                iterations: int) -> None:
    from binance_ws import errors
    from binance_ws.depthcache import DepthCacheManager
    from binance_ws.engine.manager import AsyncSocketManager

    async with contextlib.AsyncExitStack() as stack:
        if use_sim:
            sim = await stack.enter_async_context(simulator_for(market))
            market = sim.market
        elif (why := await _unreachable(market.stream_url)) is not None:
            raise _Failure(why, EXIT_GAVE_UP)
        elif (why := await _rest_unreachable(market.rest_url)) is not None:
            raise _Failure(why, EXIT_GAVE_UP)  # else the book would show SYNCING for ever, saying nothing
        manager = await stack.enter_async_context(AsyncSocketManager(market=market))
        given_up: list[str] = []

        def on_error(event: dict[str, Any]) -> None:
            if event.get("m") == errors.MSG_MAX_RETRIES:
                given_up.append(market.stream_url)

        try:
            books = await stack.enter_async_context(
                DepthCacheManager(manager, [symbol], limit=limit, on_error=on_error))
        except errors.SubscriptionError as exc:
            raise _Failure(f"{market.stream_url} refused {symbol}: {exc.msg} (code {exc.code})",
                           EXIT_BAD_INPUT) from None
        view = BookView(levels)

        async def render() -> RenderableType:
            if given_up:
                raise _Failure(f"gave up reconnecting to {given_up[0]}", EXIT_GAVE_UP)
            return view.render(books.get_depth_cache(symbol), books.stats(symbol), time.monotonic(),
                               time.time())

        await show(render, interval, iterations)
