"""The ``binance-ws`` command: ``sim`` runs the local exchange, ``tail`` streams messages to the terminal,
``record`` writes them to files, ``replay`` serves a recording, ``export`` turns one into Parquet,
``collect`` writes them into Redis Streams.

One module per command (``sim``, ``tail``, ...), registered on the one Typer app in :mod:`.app`; what the
commands share is in :mod:`.common`.
"""

from __future__ import annotations

import contextlib
import signal
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


def _term_as_interrupt(signum: int, frame: object) -> None:
    # SIGTERM ends a command as Ctrl-C does (files flushed and closed, exit 0); commands that run a loop
    # of their own (record, collect) install their own handler while it runs.
    signal.raise_signal(signal.SIGINT)


def main() -> None:
    """The ``binance-ws`` entry point: the app, with a usage error (an unknown option, a missing
    argument, a value out of range) as one ``error:`` line and exit status 2, like every other failure."""
    try:  # typer >= 0.26 carries its own copy of click
        from typer._click import exceptions as click_errors  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from click import exceptions as click_errors  # type: ignore[no-redef,unused-ignore]

    with contextlib.suppress(ValueError, OSError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, _term_as_interrupt)
    try:
        code = app(standalone_mode=False, prog_name="binance-ws")
    except click_errors.NoArgsIsHelpError as exc:  # no command, or none of its arguments: the help
        exc.show()
        code = EXIT_BAD_INPUT
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "binance-ws"
        message = " ".join(exc.format_message().split()).rstrip(".")
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"{ERROR_PREFIX}{message} (see {where} --help)\n")
        code = EXIT_BAD_INPUT
    except click_errors.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except typer.Abort:  # Ctrl-C or end of input before a command ran
        code = EXIT_OK
    if code == 130:  # typer's status for a Ctrl-C that no command caught: Ctrl-C ends with 0
        code = EXIT_OK
    sys.exit(code if isinstance(code, int) else EXIT_OK)
