"""The simulator's parts are wired in one place: no module under ``sim/`` imports the simulator itself
(issue 12 item 5), so each part receives exactly what it uses and can be built without the others."""

from __future__ import annotations

import ast
from pathlib import Path

import binance_ws.sim

SIM_DIR = Path(binance_ws.sim.__file__).parent
SIMULATOR = "binance_ws.sim.simulator"
#: The package's public face and the wiring itself.
ALLOWED = {"__init__.py", "simulator.py"}


def simulator_imports(source: str) -> list[str]:
    """How ``source`` reaches ``binance_ws.sim.simulator``: import statements, ``from binance_ws.sim import
    simulator``, and any string naming the module (``importlib.import_module``, ``__import__``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith(SIMULATOR)]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.startswith(SIMULATOR) or (
                    module == "binance_ws.sim" and any(a.name == "simulator" for a in node.names)) or (
                    node.level > 0 and (module == "simulator" or (
                        not module and any(a.name == "simulator" for a in node.names)))):
                found.append(f"from {'.' * node.level}{module} import ...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SIMULATOR in node.value:
            found.append(f"string {node.value!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name in ("import_module", "__import__"):
                found.append(f"dynamic import at line {node.lineno}")
    return found


def test_no_part_imports_the_simulator() -> None:
    modules = sorted(SIM_DIR.rglob("*.py"))
    assert len(modules) > 10  # the walk really sees the package
    offenders = {str(p.relative_to(SIM_DIR)): hits for p in modules
                 if p.name not in ALLOWED or p.parent != SIM_DIR
                 if (hits := simulator_imports(p.read_text()))}
    assert offenders == {}


def test_the_check_catches_every_form() -> None:
    for source in ("from binance_ws.sim.simulator import Simulator",
                   "import binance_ws.sim.simulator",
                   "from binance_ws.sim import simulator",
                   "from .simulator import Simulator",
                   "from . import simulator",
                   "if TYPE_CHECKING:\n    from binance_ws.sim.simulator import Simulator",
                   "import importlib\nm = importlib.import_module('binance_ws.sim.wsapi')",
                   "x = 'binance_ws.sim.simulator'"):
        assert simulator_imports(source), source
    assert simulator_imports("from binance_ws.sim.exchange import Exchange") == []
