"""Run one client against one scenario: a load-server process on core 0, the client process on core 1.

The client is a script in ``benchmarks/clients/`` run by the interpreter of its venv. The harness waits
for its ``READY`` line (it has subscribed), tells the server "go", and reads its ``RESULT`` line; a
client that fails to start, crashes or hangs gives a result with ``error`` set, never a number.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks.harness.loadserver import SERVER_CORE, Scenario, serve

CLIENTS_DIR: Final = Path(__file__).resolve().parent.parent / "clients"
#: The core clients run on (the server has the other one).
CLIENT_CORE: Final = 1
#: How long a client may take to import, connect and subscribe (peers sleep between SUBSCRIBEs).
READY_TIMEOUT_S: Final = 60.0
#: A run ends when nothing arrived for this long after the first message (the rest are lost) ...
IDLE_TIMEOUT_S: Final = 3.0
#: ... or when nothing at all arrived this long after "go".
START_TIMEOUT_S: Final = 15.0
#: Grace for the client to print its result after the run ended.
RESULT_GRACE_S: Final = 30.0
#: Paced runs leave the first this many seconds of messages out of the latency figures: connection
#: warm-up (one peer delivers its first ~0.25 s late), not steady-state delivery.
LATENCY_WARMUP_S: Final = 0.5
#: How long a client may take to exit after its result (some peers linger in their close handshakes);
#: then it is killed, which cannot change a result already printed.
CLIENT_EXIT_S: Final = 3.0


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """A client under test: display name, script, delivery mode, and the venv it needs (None: this
    interpreter, with binance-ws installed)."""

    name: str
    script: str
    mode: str = ""
    venv: str | None = None
    note: str = ""


class RunError(RuntimeError):
    """A client could not be run to a result; the message says why (it is shown instead of a number)."""


def _pin_client() -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {CLIENT_CORE})


def _lines(stream: Any, into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


def _next_line(lines: queue.Queue[str | None], deadline: float, want: str) -> str:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RunError(f"no {want} line in time")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            raise RunError(f"no {want} line in time") from None
        if line is None:
            raise RunError(f"client exited before {want}")
        if line.startswith(want):
            return line


def run_one(client: ClientSpec, scenario: Scenario, python: str | Path, *, latency: bool) -> dict[str, Any]:
    """Run ``client`` (with interpreter ``python``) against ``scenario``; return its result dict.
    Raises :class:`RunError` when there is no result (with the client's last stderr lines)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(scenario, child), daemon=True)
    server.start()
    proc: subprocess.Popen[str] | None = None
    stderr_tail: list[str] = []
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not parent.poll(0.1):
            if not server.is_alive() or time.monotonic() > deadline:
                raise RunError("load server did not start")
        _, port = parent.recv()
        job = {"url": f"ws://127.0.0.1:{port}", "streams": list(scenario.streams), "count": scenario.count,
               "latency": latency, "warmup": int(scenario.rate * LATENCY_WARMUP_S), "mode": client.mode,
               "idle_timeout": IDLE_TIMEOUT_S, "start_timeout": START_TIMEOUT_S}
        proc = subprocess.Popen([str(python), str(CLIENTS_DIR / client.script), json.dumps(job)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_pin_client, cwd=str(CLIENTS_DIR))
        lines: queue.Queue[str | None] = queue.Queue()
        errs: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
        threading.Thread(target=_lines, args=(proc.stderr, errs), daemon=True).start()
        try:
            _next_line(lines, time.monotonic() + READY_TIMEOUT_S, "READY")
            parent.send("go")
            budget = START_TIMEOUT_S + RESULT_GRACE_S + (scenario.count / scenario.rate if scenario.rate
                                                          else 120.0)
            line = _next_line(lines, time.monotonic() + budget, "RESULT")
        except RunError:
            while not errs.empty():
                err = errs.get()
                if err:
                    stderr_tail.append(err)
            raise
        result: dict[str, Any] = json.loads(line[len("RESULT "):])
        if parent.poll(1):
            msg = parent.recv()
            if isinstance(msg, tuple) and msg[0] == "sent":
                result["sent"] = msg[1]
        return result
    except RunError as exc:
        tail = " / ".join(stderr_tail[-3:])
        raise RunError(f"{exc}{': ' + tail if tail else ''}") from None
    finally:
        if proc is not None:
            try:
                proc.wait(CLIENT_EXIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        try:
            parent.send("stop")
        except (BrokenPipeError, OSError):
            pass
        server.join(10)
        if server.is_alive():
            server.kill()
            server.join()


def python_for(client: ClientSpec) -> str:
    """The interpreter a client runs with (the venv's must exist: see :mod:`benchmarks.harness.venvs`)."""
    if client.venv is None:
        return sys.executable
    from benchmarks.harness.venvs import python_of
    return str(python_of(client.venv))


__all__ = ["SERVER_CORE", "ClientSpec", "RunError", "python_for", "run_one"]
