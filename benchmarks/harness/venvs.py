"""Per-peer virtual environments under ``benchmarks/.venvs/`` (gitignored), each with one pinned package.

Every peer library is installed into its own venv so that none of them (nor their dependency pins) can
touch the project's environment, and so the harness runs each peer exactly as a user would get it from
PyPI. The chart venv holds matplotlib, which is never a runtime dependency of binance-ws.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Final

VENV_ROOT: Final = Path(__file__).resolve().parent.parent / ".venvs"


@dataclass(frozen=True, slots=True)
class VenvSpec:
    """A venv name and the pinned requirements it holds. ``no_deps`` are installed after
    ``requirements`` without dependency resolution (for a pin the package index cannot satisfy; the
    requirements then list the dependencies by hand)."""

    name: str
    requirements: tuple[str, ...]
    no_deps: tuple[str, ...] = ()


#: Pinned peer versions (the versions the benchmark brief names), plus orjson where the peer's client
#: script needs nothing else; matplotlib only for the chart.
VENVS: Final[dict[str, VenvSpec]] = {
    "python-binance": VenvSpec("python-binance", ("python-binance==1.0.37",)),
    "unicorn": VenvSpec("unicorn", ("unicorn-binance-websocket-api==2.16.1",)),
    # binance-common 4.7.0 (pinned by binance-sdk-spot 13.3.0) asks certifi>=2026.10.19, newer than the
    # index holds; certifi is only a CA bundle, unused over ws:// loopback, so the newest one is taken
    # and the two Binance packages are installed with their other requirements listed here.
    "binance-sdk-spot": VenvSpec(
        "binance-sdk-spot",
        ("aiohttp>=3.14.5,<4", "pycryptodome>=3.17,<5", "pydantic>=2.14.1", "requests>=2.34.2",
         "urllib3>=2.8.0", "certifi==2026.10.18"),
        no_deps=("binance-common==4.7.0", "binance-sdk-spot==13.3.0")),
    "chart": VenvSpec("chart", ("matplotlib==3.11.2",)),
}


class VenvError(RuntimeError):
    """A venv could not be created or its requirements could not be installed; the message says why."""


def python_of(name: str) -> Path:
    """The interpreter of venv ``name`` (it may not exist yet)."""
    return VENV_ROOT / name / "bin" / "python"


def ensure(name: str, *, quiet: bool = True) -> Path:
    """Create venv ``name`` and install its pinned requirements unless already done; return its python.

    A marker file records the requirements installed, so a changed pin reinstalls. Raises
    :class:`VenvError` with pip's last lines when the install fails.
    """
    spec = VENVS[name]
    root = VENV_ROOT / name
    marker = root / ".installed"
    wanted = "\n".join((*spec.requirements, *spec.no_deps))
    if marker.exists() and marker.read_text() == wanted:
        return python_of(name)
    if not python_of(name).exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
    pip = [str(python_of(name)), "-m", "pip", "install", "--disable-pip-version-check",
           *(["-q"] if quiet else [])]
    for cmd in ([*pip, *spec.requirements], [*pip, "--no-deps", *spec.no_deps] if spec.no_deps else None):
        if cmd is None:
            continue
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines()
                     if not ln.startswith("WARNING")]
            raise VenvError(f"{' '.join(cmd[5:])} failed: {' / '.join(lines[-3:])}")
    marker.write_text(wanted)
    return python_of(name)


if __name__ == "__main__":
    for venv_name in sys.argv[1:] or VENVS:
        try:
            print(venv_name, ensure(venv_name))
        except VenvError as exc:
            print(venv_name, "FAILED", exc)
