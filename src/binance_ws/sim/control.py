"""HTTP control endpoint of the simulator, so faults can be triggered from outside the process.

* ``GET /sim/``: the faults one can trigger (with their parameters) and the current state (standing
  faults, counters, live connections).
* ``POST /sim/faults/<name>`` with an optional JSON object of parameters: trigger one fault, e.g.
  ``curl -X POST localhost:9444/sim/faults/close -d '{"code":1001,"reason":"bye"}'``.
  Answers ``{"fault": name, "result": ...}``; 404 for an unknown name, 400 for bad parameters.
* ``POST /sim/faults/clear``: undo every standing fault.

The simulator mounts it on its REST app with :func:`add_routes`; it has no state of its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from binance_ws.sim.faults import Faults

#: The :class:`Faults` methods reachable over HTTP (the rest of its API is for the servers).
FAULT_NAMES: tuple[str, ...] = (
    "drop", "close", "stall", "unstall", "stop_answering_pings", "send_malformed_json",
    "send_invalid_utf8", "send_oversized", "skip", "duplicate", "reorder", "server_shutdown",
    "refuse", "accept", "rest", "clear",
)


def _describe(method: Callable[..., Any]) -> dict[str, Any]:
    params = {name: (None if p.default is inspect.Parameter.empty else p.default)
              for name, p in inspect.signature(method).parameters.items()}
    doc = inspect.getdoc(method) or ""
    return {"params": params, "doc": doc.split("\n\n", 1)[0].replace("\n", " ")}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def add_routes(app: web.Application, faults: Faults) -> None:
    """Mount the ``/sim/`` control routes on ``app``, acting on ``faults``."""

    async def index(request: web.Request) -> web.Response:
        return _json({"faults": {name: _describe(getattr(faults, name)) for name in FAULT_NAMES},
                      "state": faults.state()})

    async def trigger(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in FAULT_NAMES:
            return _json({"error": f"unknown fault {name!r}", "faults": list(FAULT_NAMES)}, 404)
        raw = await request.read()
        try:
            params = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            return _json({"error": "body must be a JSON object"}, 400)
        if not isinstance(params, dict):
            return _json({"error": "body must be a JSON object"}, 400)
        method = getattr(faults, name)
        try:
            inspect.signature(method).bind(**params)
            result = method(**params)
        except (TypeError, ValueError) as err:
            return _json({"error": str(err), **_describe(method)}, 400)
        return _json({"fault": name, "result": result})

    app.router.add_get("/sim/", index)
    app.router.add_get("/sim", index)
    app.router.add_post("/sim/faults/{name}", trigger)
