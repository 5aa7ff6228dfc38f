"""``binance-ws sim`` as a user runs it: the real command in a subprocess on free ports, its output parsed.

Used by the docs test and the seed-examples test: they take the URLs, the market line and the demo
account's keys from the command's stdout, exactly as a reader copies them from a terminal.
"""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.paths import REPO

SIM_COMMAND = [sys.executable, "-m", "binance_ws.cli", "sim"]
#: Long enough for a loaded 2-core machine to start Python, the simulator and generate an RSA key.
START_TIMEOUT_S = 60.0


async def printed_lines(stdout: asyncio.StreamReader | None, until: str = "symbols") -> dict[str, str]:
    """What a ``binance-ws sim`` started with ``asyncio.create_subprocess_exec`` printed, by label, up
    to the line labelled ``until``."""
    assert stdout is not None
    lines: dict[str, str] = {}
    while until not in lines:
        line = (await asyncio.wait_for(stdout.readline(), START_TIMEOUT_S)).decode()
        assert line, "the command ended before it served"
        key, _, value = line.partition(":")
        lines[key] = value.strip()
    return lines


def _exports(value: str) -> dict[str, str]:
    """``export A=1 B=2`` -> {"A": "1", "B": "2"}."""
    words = value.split()
    assert words[0] == "export", value
    return dict(word.split("=", 1) for word in words[1:])


@dataclass
class RunningSim:
    """A started ``binance-ws sim``: its printed lines by label (``streams``, ``HMAC``, ...)."""

    proc: subprocess.Popen[str]
    stderr_path: Path
    lines: dict[str, str] = field(default_factory=dict)

    @property
    def stream_url(self) -> str:
        return self.lines["streams"].split()[0].removesuffix("/ws/<stream>")

    @property
    def rest_url(self) -> str:
        return self.lines["REST"].split()[0].removesuffix("/api/v3/exchangeInfo")

    @property
    def ws_api_url(self) -> str:
        return self.lines["WS API"]

    def keys(self, kind: str = "HMAC") -> dict[str, str]:
        """The environment a key's ``export`` line sets (kind: ``HMAC``, ``Ed25519`` or ``RSA``)."""
        return _exports(self.lines[kind])

    def env(self, kind: str = "HMAC") -> dict[str, str]:
        """This process's environment plus the printed market and ``kind`` key exports."""
        return {**os.environ, **_exports(self.lines["market"]), **self.keys(kind)}

    def stderr(self) -> str:
        return self.stderr_path.read_text()


@contextmanager
def cli_sim(tmp: Path, *args: str, until: str = "try") -> Iterator[RunningSim]:
    """Run ``binance-ws sim --stream-port 0 --rest-port 0 *args`` until the line labelled ``until`` is
    printed; on the way out stop it with SIGTERM and check it exits 0 (it ends as on Ctrl-C)."""
    stderr_path = tmp / "sim.stderr"
    with stderr_path.open("w") as err:
        proc = subprocess.Popen([*SIM_COMMAND, "--stream-port", "0", "--rest-port", "0", *args],
                                stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO)
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sim = RunningSim(proc, stderr_path)
    try:
        while until not in sim.lines:
            try:
                line = lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                raise AssertionError(f"sim printed no {until!r} line: {sim.lines}\n{sim.stderr()}") from None
            label, _, value = line.partition(":")
            sim.lines[label.strip()] = value.strip()
        yield sim
    finally:
        proc.terminate()
        code = proc.wait(30)
        reader.join(10)
    assert code == 0, sim.stderr()
