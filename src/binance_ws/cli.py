"""The ``binance-ws`` command: ``sim`` runs the local exchange, ``tail`` streams messages to the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Binance WebSocket streams, and a local Binance to try them on.")


@app.command()
def sim(
    host: Annotated[str, typer.Option(help="Address to bind (loopback only by default).")] = "127.0.0.1",
    stream_port: Annotated[int, typer.Option(help="Stream server port (0: any free port).")] = 9443,
    rest_port: Annotated[int, typer.Option(help="REST port (0: any free port).")] = 9444,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic order flow.")] = 1,
    rate: Annotated[float, typer.Option(help="Order-flow actions a second, per symbol.")] = 50.0,
    replay: Annotated[Optional[Path], typer.Option(help="Serve this recording instead of synthetic flow.")] = None,
    speed: Annotated[float, typer.Option(help="Replay pace: 1 = original, N = N times faster, 0 = as fast as read.")] = 1.0,
) -> None:
    """Run the simulated exchange until Ctrl-C, printing its stream and REST URLs."""
    from binance_ws.sim import SimConfig, Simulator
    from binance_ws.sim.replay import Replay

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = SimConfig(host=host, stream_port=stream_port, rest_port=rest_port, seed=seed, flow_rate=rate)

    async def run() -> None:
        rep = Replay(replay, speed=speed) if replay is not None else None
        async with Simulator(cfg, replay=rep) as s:
            typer.echo(f"streams: {s.stream_url}/ws/<stream>  {s.stream_url}/stream?streams=<a>/<b>")
            typer.echo(f"REST:    {s.rest_url}/api/v3/exchangeInfo")
            typer.echo(f"control: {s.rest_url}/sim/")
            typer.echo(f"symbols: {' '.join(s.symbols())}")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
