"""``binance-ws export``: a recording as Parquet tables (the ``parquet`` extra, pyarrow)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from binance_ws.cli.app import EXIT_BAD_INPUT, EXIT_GAVE_UP, EXIT_OK, app
from binance_ws.cli.common import _fail, _first_line, _input_file


@app.command(short_help="Write a recording as Parquet tables (needs pyarrow).")
def export(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A recording (any format replay reads).")],
    parquet: Annotated[Path, typer.Option(
        "--parquet", metavar="DIR", help="Write Parquet tables here: DIR/<event type>/symbol=S/date=D/.")],
) -> None:
    """Write FILE as Parquet: one table per event type (trade, depthUpdate, bookTicker, snapshot, marker,
    ...) with typed columns and ns timestamps, partitioned by symbol and UTC day. Prints the rows written
    per table.

    Exit status: 0 when written; 2 for a FILE that does not exist or is a folder, a DIR that cannot be
    written, or without pyarrow (install the extra: pip install 'binance-ws[parquet]'); 1 if FILE is not
    a recording, holds no records, or a file cannot be read or written.
    """
    from binance_ws.export import ExportError, export_parquet
    from binance_ws.recording import RecordingError

    if (why := _input_file(file)) is not None:
        raise _fail(why, EXIT_BAD_INPUT)
    if (why := _unwritable_dir(parquet)) is not None:
        raise _fail(f"--parquet {parquet}: {why}", EXIT_BAD_INPUT)
    try:
        counts = export_parquet(file, parquet)
    except ExportError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    except OSError as exc:
        where = exc.filename or file
        raise _fail(f"{where}: {exc.strerror or _first_line(exc)}", EXIT_GAVE_UP) from None
    except (RecordingError, ValueError) as exc:
        line = _first_line(exc)
        raise _fail(line if line.startswith(str(file)) else f"{file}: {line}", EXIT_GAVE_UP) from None
    if not counts:
        raise _fail(f"{file} holds no records (empty, or cut short before its first flush): nothing "
                    "written", EXIT_GAVE_UP)
    for table, rows in counts.items():
        typer.echo(f"{table}\t{rows}")
    raise typer.Exit(EXIT_OK)


def _unwritable_dir(path: Path) -> str | None:
    """Why ``path`` cannot become a folder to write in (None: it can), creating nothing: a file in the
    way, or the nearest existing folder above it not writable."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return "is a file, not a folder" if existing == path else f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None
