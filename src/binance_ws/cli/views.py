"""What the live views (``book``, ``top``) share: where to connect, and one loop that shows a rich
renderable, redrawn in place on a terminal (rich ``Live``), or printed as a snapshot per interval into a
pipe or file (like ``top -b``), so a view is useful in both."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final

import typer
from rich.console import Console, RenderableType

from binance_ws.cli.common import _BadInput, _endpoint

#: Redraws a second at most on a terminal (the data changes faster; the eye does not).
REFRESH_PER_S: Final = 4

UseSim = Annotated[bool, typer.Option("--sim", help="Watch an embedded simulator.")]
Endpoint = Annotated[str | None, typer.Option(
    metavar="URL", help="Stream server base URL, ws://host:port or wss://host:port.")]
Testnet = Annotated[bool, typer.Option("--testnet", help="Use Binance's spot testnet.")]
Interval = Annotated[float, typer.Option(
    metavar="S", min=0.05, help="Seconds between redraws (between snapshots into a pipe).")]
Iterations = Annotated[int, typer.Option(
    "--iterations", "-n", metavar="N", min=0, help="Stop after N redraws (0: until Ctrl-C).")]


MarketName = Annotated[str, typer.Option(
    "--market", metavar="MARKET",
    help="spot, usdm (USD-M futures) or coinm (COIN-M futures); or spot-testnet, usdm-testnet, "
         "coinm-testnet. With --sim, the simulator serves that product.")]

#: The products a market name may be (each with a ``-testnet`` row).
PRODUCT_MARKETS: Final = ("spot", "usdm", "coinm")


def market_row(name: str, testnet: bool = False) -> Any:
    """The market row ``--market`` (with ``--testnet``) names; :class:`_BadInput` naming the choices."""
    from binance_ws import markets

    choices = [*PRODUCT_MARKETS, *(f"{n}-testnet" for n in PRODUCT_MARKETS)]
    key = name.lower()
    if key not in choices:
        raise _BadInput(f"--market {name!r} is not one of {', '.join(choices)}")
    if testnet and not key.endswith("-testnet"):
        key += "-testnet"
    return markets.MARKETS[key]


def resolve_market(use_sim: bool, endpoint: str | None, testnet: bool, rest: str | None = None,
                   market_name: str = "spot") -> Any:
    """The market row the options name (the simulator's is made when it starts). Raises
    :class:`~binance_ws.cli.common._BadInput` for a conflicting choice or a bad URL."""
    if sum((use_sim, endpoint is not None, testnet)) > 1:
        raise _BadInput("choose one of --sim, --endpoint, --testnet")
    market = market_row(market_name, testnet)
    if use_sim and market.name.endswith("-testnet"):
        raise _BadInput("--sim serves the products themselves: --market spot, usdm or coinm")
    if endpoint is not None:
        url = _endpoint(endpoint)
        # A routed product's row names its /public path (USD-M, PROTOCOL 8); the others are the base.
        stream_url = f"{url}/public" if market.routed_paths else url
        market = market.with_urls(stream_url=stream_url, name=f"{market.name} at {url}",
                                  local=url.startswith("ws://"))
    if rest is not None:
        if not rest.startswith(("http://", "https://")):
            raise _BadInput(f"--rest {rest!r}: give the REST base URL, http://host:port or https://host:port")
        market = market.with_urls(rest_url=rest.rstrip("/"))
    return market


def simulator_for(market: Any) -> Any:
    """An embedded simulator serving ``market``'s product (spot, USD-M or COIN-M) with that product's
    default symbols and limits; ``sim.market`` is the row pointing at it."""
    from binance_ws.sim import Simulator
    from binance_ws.sim.futures.product import product_config

    return Simulator(product_config(market.product.name))


def is_terminal() -> bool:
    return sys.stdout.isatty()


async def show(render: Callable[[], Awaitable[RenderableType]], interval: float, iterations: int) -> None:
    """Draw ``render()`` every ``interval`` seconds, ``iterations`` times (0: until cancelled): in place
    on a terminal, else one plain snapshot after another, each after a line with the UTC time."""
    shown = 0
    if is_terminal():
        from rich.live import Live

        console = Console()
        with Live(await render(), console=console, refresh_per_second=REFRESH_PER_S,
                  transient=False, redirect_stderr=False) as live:
            shown = 1
            while not iterations or shown < iterations:
                await asyncio.sleep(interval)
                live.update(await render())
                shown += 1
        return
    console = Console(force_terminal=False, no_color=True, width=_pipe_width())
    while True:
        view = await render()
        console.print(time.strftime("-- %H:%M:%S UTC --", time.gmtime()))
        console.print(view)
        sys.stdout.flush()
        shown += 1
        if iterations and shown >= iterations:
            return
        await asyncio.sleep(interval)


def _pipe_width() -> int:
    """Columns for snapshots into a pipe: $COLUMNS, else wide enough that no table wraps."""
    import os

    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else 160
