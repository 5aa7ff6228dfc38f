"""The README's pictures of ``binance-ws book`` and ``binance-ws top``, taken from a real terminal.

Each view runs in a tmux pane against the simulator; after a few seconds the pane is captured with its
colours (``tmux capture-pane -e``), drawn by rich as SVG, and converted to PNG by ``rsvg-convert``
(Debian's librsvg2-bin). Needs tmux and rsvg-convert::

    python scripts/screenshots.py            # writes docs/img/book.png and docs/img/top.png
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.text import Text

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
COLUMNS, ROWS = 104, 33
CLI = f"{shlex.quote(sys.executable)} -m binance_ws.cli"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def capture(command: str, settle_s: float, name: str, rows: int = ROWS) -> None:
    """Run ``command`` in a fresh tmux pane, wait ``settle_s``, save the pane as ``OUT/name.png``."""
    session = f"bws-shot-{os.getpid()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(COLUMNS), "-y", str(rows),
                    f"env PYTHONPATH={shlex.quote(env['PYTHONPATH'])} TERM=xterm-256color {command}"],
                   check=True, env=env)
    try:
        time.sleep(settle_s)
        pane = subprocess.run(["tmux", "capture-pane", "-e", "-p", "-t", session], check=True,
                              capture_output=True, text=True).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    console = Console(record=True, width=COLUMNS, force_terminal=True, color_system="truecolor",
                      file=open(os.devnull, "w"))  # noqa: SIM115 - rich keeps the file for its life
    console.print(Text.from_ansi(pane.rstrip("\n")))
    with tempfile.TemporaryDirectory() as tmp:
        svg = Path(tmp) / f"{name}.svg"
        console.save_svg(str(svg), title=command.replace(CLI, "binance-ws").split(" --metrics-url")[0])
        # rsvg-convert collapses runs of spaces in text, as XML does by default: keep them.
        svg.write_text(svg.read_text().replace("<svg ", '<svg xml:space="preserve" ', 1))
        subprocess.run(["rsvg-convert", "--zoom", "1.5", "-o", str(OUT / f"{name}.png"), str(svg)],
                       check=True)
    print(f"wrote {OUT / name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    capture(f"{CLI} book BTCUSDT --sim --levels 12", 6.0, "book")
    port = _free_port()
    tail = subprocess.Popen(
        [sys.executable, "-m", "binance_ws.cli", "tail", "btcusdt@trade", "ethusdt@trade", "bnbbtc@trade",
         "btcusdt@aggTrade", "btcusdt@depth@100ms", "ethusdt@depth@100ms", "btcusdt@bookTicker",
         "ethusdt@bookTicker", "--sim", "--json", "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        time.sleep(3.0)
        capture(f"{CLI} top --metrics-url http://127.0.0.1:{port}/metrics", 6.0, "top", rows=30)
    finally:
        tail.terminate()
        tail.wait(10)


if __name__ == "__main__":
    main()
