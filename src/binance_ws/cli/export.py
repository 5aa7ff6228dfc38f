"""``binance-ws export``: a recording as Parquet tables (the ``parquet`` extra, pyarrow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from binance_ws.cli.app import EXIT_BAD_INPUT, EXIT_GAVE_UP, EXIT_OK, app
from binance_ws.cli.common import _fail, _first_line


@app.command()
def export(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A recording (any format replay reads).")],
    parquet: Annotated[Path, typer.Option(
        "--parquet", metavar="DIR", help="Write Parquet tables here: DIR/<event type>/symbol=S/date=D/.")],
) -> None:
    """Write FILE as Parquet: one table per event type (trade, depthUpdate, bookTicker, snapshot, marker,
    ...) with typed columns and ns timestamps, partitioned by symbol and UTC day. Prints the rows written
    per table.

    Exit status: 0 when written; 2 for a FILE that does not exist, or without pyarrow (install the
    extra: pip install 'binance-ws[parquet]'); 1 if FILE is not a recording or a file cannot be written.
    """
    from binance_ws.export import ExportError, export_parquet
    from binance_ws.recording import RecordingError

    if not file.is_file():
        raise _fail(f"{file}: no such file", EXIT_BAD_INPUT)
    try:
        counts = export_parquet(file, parquet)
    except ExportError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    except (RecordingError, OSError, ValueError) as exc:
        raise _fail(f"{file}: {_first_line(exc)}", EXIT_GAVE_UP) from None
    for table, rows in counts.items():
        typer.echo(f"{table}\t{rows}")
    raise typer.Exit(EXIT_OK)
