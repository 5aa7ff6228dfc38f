"""Every snippet in README.md and docs/*.md runs as written against the simulator (issue 13).

Each ```python block runs in its own interpreter; each ```bash block's ``binance-ws`` commands run as
commands (``binance-ws`` is ``python -m binance_ws.cli``, so this checkout's code runs). Snippets that talk
to a simulator started on its own get it the way a reader does: this module starts the real ``binance-ws
sim`` once, and every snippet runs with the two ``export`` lines it prints (``BINANCE_WS_MARKET`` and the
demo account's HMAC key) in its environment. The only changes ever made to a snippet's text: ``sim``'s
default addresses (``ws://127.0.0.1:9443``, ``http://127.0.0.1:9444``) become that simulator's, and a
``binance-ws sim`` (or ``replay``) line gets ``--stream-port 0 --rest-port 0`` (it runs until it has printed
its URLs, then is stopped by SIGTERM), so that parallel test runs never fight over a port. Python snippets
run in a directory of their own; commands in the checkout (they name ``tests/data`` files).

A block preceded by ``<!-- not-run: reason -->`` is not run; those are listed and their number pinned, so
a snippet is never skipped silently. Blocks run in parallel, a few at a time.
"""

from __future__ import annotations

import ast
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.paths import REPO
from tests.sim_process import START_TIMEOUT_S, RunningSim, cli_sim

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.+?)\s*-->")
#: Blocks marked not-run (pinned: a new one must be added here knowingly).
EXPECTED_NOT_RUN = 9
#: The package's public face: what a snippet may import (never engine/, core/, cli/ or sim's parts).
PUBLIC = {"binance_ws", "binance_ws.enums", "binance_ws.errors", "binance_ws.markets", "binance_ws.models",
          "binance_ws.recording", "binance_ws.sim", "binance_ws.depthcache", "binance_ws.metrics",
          "binance_ws.recorder", "binance_ws.sinks", "binance_ws.sinks.files", "binance_ws.sinks.redis",
          "binance_ws.export"}
#: Per snippet; they run in parallel, so the whole file takes about the slowest few.
SNIPPET_TIMEOUT_S = 60.0
WORKERS = 4
DEFAULT_STREAM_URL = "ws://127.0.0.1:9443"
DEFAULT_REST_URL = "http://127.0.0.1:9444"


def _local(text: str, sim: RunningSim) -> str:
    """``text`` with ``sim``'s default addresses replaced by those of the simulator this test started."""
    return text.replace(DEFAULT_STREAM_URL, sim.stream_url).replace(DEFAULT_REST_URL, sim.rest_url)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence
    lang: str
    code: str
    not_run: str | None  # the reason, when marked

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> Iterator[Block]:
    """The fenced ```python and ```bash blocks of ``path``, each with the not-run marker before it."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.fullmatch(r"```(\w*)\s*", lines[i])
        if fence is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.search(before)
        if fence.group(1) in ("python", "bash"):
            yield Block(path, i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n",
                        marker.group(1) if marker else None)
        i = end + 1


ALL = [b for path in DOCS for b in blocks(path)]
RUN = [b for b in ALL if b.not_run is None]


def test_every_snippet_is_run_or_marked_with_a_reason() -> None:
    not_run = [(b.id, b.not_run) for b in ALL if b.not_run is not None]
    print("not run:", *(f"{where}: {why}" for where, why in not_run), sep="\n  ")
    assert len(not_run) == EXPECTED_NOT_RUN, not_run
    assert len([b for b in RUN if b.lang == "python"]) >= 8  # the extraction found the snippets


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "python"], ids=lambda b: b.id)
def test_snippets_import_only_the_public_face(block: Block) -> None:
    tree = ast.parse(block.code)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    ours = {name for name in imported if name.split(".")[0] == "binance_ws"}
    assert ours <= PUBLIC, f"{block.id} imports internals: {sorted(ours - PUBLIC)}"


@dataclass
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    what: str


def _command(argv: list[str], sim: RunningSim) -> tuple[list[str], bool]:
    """A bash line as this test runs it, and whether it is a ``sim`` that runs until stopped."""
    argv = [_local(a, sim) for a in argv]
    server = argv[1:2] in (["sim"], ["replay"])
    if server and "--stream-port" not in argv:
        argv += ["--stream-port", "0", "--rest-port", "0"]
    return [sys.executable, "-m", "binance_ws.cli", *argv[1:]], server


def _run_sim_command(argv: list[str], env: dict[str, str]) -> Outcome:
    """Start a documented ``binance-ws sim`` (or ``replay``) line, wait until it has printed its URLs and
    symbols, then stop it as SIGTERM does (it exits 0, removing its key files)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=REPO)
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    out: list[str] = []
    deadline = time.monotonic() + SNIPPET_TIMEOUT_S
    try:
        while not any(o.startswith("symbols:") for o in out) and time.monotonic() < deadline:
            try:
                out.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    served = any(o.startswith("symbols:") for o in out)
    return Outcome(proc.returncode if served else -1, "".join(out), err, shlex.join(argv))


def run_block(block: Block, sim: RunningSim, tmp: Path) -> list[Outcome]:
    env = {**sim.env(), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    if block.lang == "python":
        # Each in a directory of its own: a snippet that writes files (the recorder's) leaves no trace.
        workdir = tmp / block.id.replace("/", "_").replace(":", "_")
        workdir.mkdir()
        script = workdir / "snippet.py"
        script.write_text(_local(block.code, sim))
        try:
            proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                                  cwd=workdir, timeout=SNIPPET_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            return [Outcome(None, str(exc.stdout or ""), str(exc.stderr or ""), "python (timed out)")]
        return [Outcome(proc.returncode, proc.stdout, proc.stderr, "python")]
    outcomes = []
    for line in block.code.splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        assert argv[0] == "binance-ws", f"{block.id}: only binance-ws commands run here, not {line!r}"
        command, server = _command(argv, sim)
        if server:
            outcomes.append(_run_sim_command(command, env))
            continue
        try:
            proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO,
                                  timeout=SNIPPET_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            outcomes.append(Outcome(None, str(exc.stdout or ""), str(exc.stderr or ""),
                                    f"{line} (timed out)"))
            continue
        outcomes.append(Outcome(proc.returncode, proc.stdout, proc.stderr, line))
    return outcomes


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Outcome]]]:
    tmp = tmp_path_factory.mktemp("docs")
    with cli_sim(tmp) as sim, ThreadPoolExecutor(WORKERS) as pool:
        futures = {b.id: pool.submit(run_block, b, sim, tmp) for b in RUN}
        deadline = SNIPPET_TIMEOUT_S * 4 + START_TIMEOUT_S
        results = {key: f.result(timeout=deadline) for key, f in futures.items()}
        yield results
        # The demo account's secret was printed once, on stdout; it is in no log.
        assert sim.keys()["BINANCE_API_SECRET"] not in sim.stderr()


@pytest.mark.parametrize("block", RUN, ids=lambda b: b.id)
def test_snippet_runs(block: Block, outcomes: dict[str, list[Outcome]]) -> None:
    ran = outcomes[block.id]
    assert ran
    for o in ran:
        report = (f"{block.id} ({o.what}) exited {o.code}\n--- stdout\n{o.stdout[-3000:]}"
                  f"\n--- stderr\n{o.stderr[-3000:]}")
        assert o.code == 0, report
        assert "Traceback" not in o.stderr, report
        assert o.stdout.strip(), report
    if block.lang == "python" and "create_order" in block.code and "user_socket" in block.code:
        assert "executionReport" in ran[0].stdout, f"{block.id}: the order's event never arrived"


def test_module_runs_under_its_own_checkout() -> None:
    # Subprocesses import this checkout's package (PYTHONPATH or an editable install of it).
    out = subprocess.run([sys.executable, "-c", "import binance_ws, sys; print(binance_ws.__file__)"],
                         capture_output=True, text=True, env=dict(os.environ), check=True).stdout
    assert Path(out.strip()).is_relative_to(REPO / "src") or "site-packages" in out
