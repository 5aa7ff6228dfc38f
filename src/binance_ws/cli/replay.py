"""``binance-ws replay``: serve a recording as a local Binance (what ``binance-ws sim --replay`` does)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from binance_ws.cli.app import EXIT_BAD_INPUT, app
from binance_ws.cli.common import _fail, _input_file


@app.command(short_help="Serve a recording as a local Binance.")
def replay(
    file: Annotated[Path, typer.Argument(
        metavar="FILE", help="A recording: record's, tail --record's, hftbacktest's, cryptofeed's.")],
    host: Annotated[str, typer.Option(help="Address to bind (loopback only by default).")] = "127.0.0.1",
    stream_port: Annotated[int, typer.Option(help="Stream server port (0: any free port).")] = 9443,
    rest_port: Annotated[int, typer.Option(help="REST port (0: any free port).")] = 9444,
    speed: Annotated[float, typer.Option(
        help="Replay pace: 1 = original, N = N times faster, 0 = as fast as the client reads.")] = 1.0,
) -> None:
    """Serve FILE's messages, byte for byte and in recorded order, to the clients subscribed to their
    streams, and its depth snapshots over REST; the replay starts with the first subscriber. Runs until
    Ctrl-C, printing the URLs a client needs.

    Exit status: 0 on Ctrl-C or SIGTERM; 2 for a bad option or a FILE that does not exist or is a
    folder; 1 if FILE is not a
    recording, a port is in use, or the replay fails part-way.
    """
    from binance_ws.cli.sim import sim

    if (why := _input_file(file)) is not None:
        raise _fail(why, EXIT_BAD_INPUT)
    if not speed >= 0:
        raise _fail(f"--speed must be 0 or more, not {speed:g}", EXIT_BAD_INPUT)
    for option, port in (("--stream-port", stream_port), ("--rest-port", rest_port)):
        if not 0 <= port <= 65535:
            raise _fail(f"{option} must be between 0 and 65535, not {port}", EXIT_BAD_INPUT)
    sim(host=host, stream_port=stream_port, rest_port=rest_port, seed=1, rate=None, symbols=None,
        time_scale=1.0, replay=file, speed=speed)
