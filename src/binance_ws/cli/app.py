"""The ``binance-ws`` Typer application and its exit statuses; each command lives in a module of its own."""

from __future__ import annotations

from typing import Annotated, Final

import typer

# Plain help (rich_markup_mode=None): the rich renderer of this typer labels every flag "<bool>", as if
# --sim took a value.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Binance WebSocket streams, and a local Binance to try them on.")

#: Exit statuses, documented in the README's "The command line".
EXIT_OK: Final = 0
EXIT_GAVE_UP: Final = 1
EXIT_BAD_INPUT: Final = 2
#: Every failure of every command is one stderr line starting with this (README, "The command line").
ERROR_PREFIX: Final = "error: "


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from binance_ws import __version__
        try:
            shown = version("binance-ws")
        except PackageNotFoundError:  # run from a source tree (PYTHONPATH=src), not installed
            shown = __version__
        typer.echo(f"binance-ws {shown}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False) -> None:
    """Binance WebSocket streams, and a local Binance to try them on."""

