"""The ``binance-ws`` command: ``sim`` runs the local exchange, ``tail`` streams messages to the terminal,
``record`` writes them to files, ``replay`` serves a recording, ``export`` turns one into Parquet,
``collect`` writes them into Redis Streams.

One module per command (``sim``, ``tail``, ...), registered on the one Typer app in :mod:`.app`; what the
commands share is in :mod:`.common`.
"""

from __future__ import annotations

import sys

import typer

from binance_ws.cli import book as _book_command  # noqa: F401  (registers the command)
from binance_ws.cli import collect as _collect_command  # noqa: F401
from binance_ws.cli import export as _export_command  # noqa: F401
from binance_ws.cli import record as _record_command  # noqa: F401
from binance_ws.cli import replay as _replay_command  # noqa: F401
from binance_ws.cli import sim as _sim_command  # noqa: F401
from binance_ws.cli import tail as _tail_command  # noqa: F401
from binance_ws.cli import top as _top_command  # noqa: F401
from binance_ws.cli.app import ERROR_PREFIX, EXIT_BAD_INPUT, EXIT_GAVE_UP, EXIT_OK, app

__all__ = ["ERROR_PREFIX", "EXIT_BAD_INPUT", "EXIT_GAVE_UP", "EXIT_OK", "app", "main"]


def main() -> None:
    """Run ``binance-ws``. Typer's own usage errors (an unknown option or command, a value of the wrong
    type) are one ``error: ...`` line and exit 2 like every other failure, not a four-line usage block."""
    try:
        code = app(standalone_mode=False, prog_name="binance-ws")
    except typer.TyperException as exc:  # Typer's (vendored Click's) ClickException and UsageError
        if type(exc).__name__ == "NoArgsIsHelpError":  # no arguments at all: the help, as documented
            exc.show()  # type: ignore[attr-defined]
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            typer.echo(f"{ERROR_PREFIX}{exc.format_message().rstrip('.')}{hint}", err=True)
        sys.exit(getattr(exc, "exit_code", EXIT_BAD_INPUT))
    except typer.Abort:  # Ctrl-C outside a command's own handling
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
