"""The ``binance-ws`` command: ``sim`` runs the local exchange, ``tail`` streams messages to the terminal,
``record`` writes them to files, ``replay`` serves a recording, ``export`` turns one into Parquet,
``collect`` writes them into Redis Streams.

One module per command (``sim``, ``tail``, ...), registered on the one Typer app in :mod:`.app`; what the
commands share is in :mod:`.common`.
"""

from __future__ import annotations

from binance_ws.cli import book as _book_command  # noqa: F401  (registers the command)
from binance_ws.cli import collect as _collect_command  # noqa: F401
from binance_ws.cli import export as _export_command  # noqa: F401
from binance_ws.cli import record as _record_command  # noqa: F401
from binance_ws.cli import replay as _replay_command  # noqa: F401
from binance_ws.cli import sim as _sim_command  # noqa: F401
from binance_ws.cli import tail as _tail_command  # noqa: F401
from binance_ws.cli import top as _top_command  # noqa: F401
from binance_ws.cli.app import EXIT_BAD_INPUT, EXIT_GAVE_UP, EXIT_OK, app

__all__ = ["EXIT_BAD_INPUT", "EXIT_GAVE_UP", "EXIT_OK", "app", "main"]


def main() -> None:
    app()
