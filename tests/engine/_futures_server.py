"""A scripted USD-M/COIN-M futures exchange for engine tests: picows streams + aiohttp REST on loopback.

The simulator serves spot only for now (its futures streams land later), so the futures client is tested
against this server, written from PROTOCOL 8 and independent of the client's product tables:

* streams on ``/public/stream?streams=``, ``/market/stream?...`` (USD-M, routed) and ``/stream?...``
  (unrouted, COIN-M); ``SUBSCRIBE``/``UNSUBSCRIBE`` answered ``{"result":null,"id":N}``. A stream
  subscribed on the wrong route is acknowledged but never delivered (PROTOCOL 8), and a control id that
  is not an unsigned integer is refused, as futures require;
* ``push(stream, payload)`` sends a payload, combined-wrapped, to every socket whose route serves it;
* REST ``GET <prefix>/depth`` from a handler the test sets, and ``POST/PUT/DELETE <prefix>/listenKey``;
  user data on ``/private/ws?listenKey=`` (routed) or ``/ws/<key>``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from aiohttp import web
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest

from binance_ws.markets import COINM, USDM, Market, local_market
from tests.engine._hostile import serving

#: PROTOCOL 8: what ``/public`` carries; everything else of the market streams is on ``/market``. The
#: undocumented ``@trade`` is on ``/public`` as ccxt 4.5.90 routes it (``get_future_ws_category``).
_PUBLIC_MARKERS = ("@bookTicker", "@depth", "@rpiDepth", "@trade")


def served_on(stream: str) -> str:
    """The USD-M route of ``stream`` by PROTOCOL 8's list (written here, not read from the client)."""
    return "public" if stream == "!bookTicker" or any(m in stream for m in _PUBLIC_MARKERS) else "market"


class _Peer(WSListener):
    def __init__(self, server: FuturesServer, route: str, streams: list[str], user_key: str | None,
                 combined: bool = True) -> None:
        self.server = server
        self.combined = combined
        self.route = route  # "public", "market", "" (unrouted) or "private"
        self.streams: set[str] = set(streams)
        self.user_key = user_key
        self.transport: WSTransport | None = None

    def serves(self, stream: str) -> bool:
        return stream in self.streams and (self.route == "" or served_on(stream) == self.route)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.server.peers.append(self)
        self.server.connects.append((self.route, sorted(self.streams)))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self in self.server.peers:
            self.server.peers.remove(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
            return
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        msg = orjson.loads(frame.get_payload_as_bytes())
        request_id, method, params = msg.get("id"), msg.get("method"), list(msg.get("params") or [])
        self.server.requests.append((self.route, method, params, request_id))
        if not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 0:
            # Futures take only unsigned integer ids (PROTOCOL 8).
            error = {"code": 3, "msg": "Invalid JSON: expected unsigned integer id"}
            transport.send(WSMsgType.TEXT, orjson.dumps({"error": error, "id": request_id}))
            return
        if method == "SUBSCRIBE":
            self.streams.update(params)
        elif method == "UNSUBSCRIBE":
            self.streams.difference_update(params)
        reply: dict[str, Any] = {"result": None, "id": request_id}
        if method == "LIST_SUBSCRIPTIONS":
            reply["result"] = sorted(self.streams)
        transport.send(WSMsgType.TEXT, orjson.dumps(reply))


@dataclasses.dataclass
class FuturesServer:
    """State of the scripted exchange (see the module docstring)."""

    product: str = "usdm"
    peers: list[_Peer] = dataclasses.field(default_factory=list)
    connects: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)
    requests: list[tuple[str, Any, list[Any], Any]] = dataclasses.field(default_factory=list)
    rest_calls: list[tuple[str, str, dict[str, str]]] = dataclasses.field(default_factory=list)
    depth: Callable[[dict[str, str]], Awaitable[Any]] | None = None
    listen_keys: list[str] = dataclasses.field(default_factory=list)
    #: The ``events=`` of each ``/private`` connection, split.
    private_events: list[list[str]] = dataclasses.field(default_factory=list)
    port: int = 0
    rest_port: int = 0

    @property
    def prefix(self) -> str:
        return "/fapi/v1" if self.product == "usdm" else "/dapi/v1"

    @property
    def market(self) -> Market:
        """A market row of this product pointed here (routed like USD-M's ``.../public``)."""
        if self.product == "usdm":
            return local_market(f"ws://127.0.0.1:{self.port}/public", f"http://127.0.0.1:{self.rest_port}",
                                base=USDM)
        return local_market(f"ws://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.rest_port}", base=COINM)

    def push(self, stream: str, payload: Any) -> int:
        """Send ``payload`` on ``stream`` to every socket whose route serves it; how many got it."""
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        frame = b'{"stream":"' + stream.encode() + b'","data":' + body + b"}"
        sent = 0
        for peer in list(self.peers):
            if peer.transport is not None and peer.serves(stream):
                peer.transport.send(WSMsgType.TEXT, frame if peer.combined else body)
                sent += 1
        return sent

    def push_user(self, event: dict[str, Any]) -> int:
        sent = 0
        for peer in list(self.peers):
            if peer.transport is not None and peer.user_key in self.listen_keys:
                peer.transport.send(WSMsgType.TEXT, orjson.dumps(event))
                sent += 1
        return sent

    def subscribed(self, stream: str) -> bool:
        return any(peer.serves(stream) for peer in self.peers)

    def routes_of(self, stream: str) -> list[str]:
        return [peer.route for peer in self.peers if stream in peer.streams]

    def _factory(self, request: WSUpgradeRequest) -> WSListener | None:
        parts = urlsplit(request.path.decode())
        path, query = parts.path, parse_qs(parts.query)
        route = ""
        if self.product == "usdm":
            route, _, path = path.lstrip("/").partition("/")
            path = "/" + path
            if route not in ("public", "market", "private"):
                return None
        if "listenKey" in query:
            self.private_events.append(query.get("events", [""])[-1].split("/"))
            return _Peer(self, "private", [], query["listenKey"][-1])
        if path.startswith("/ws/") and "@" not in path and self.product != "usdm":
            return _Peer(self, "private", [], path[len("/ws/"):])
        if path in ("/stream", "/stream/"):
            names = [n for v in query.get("streams", []) for n in unquote(v).split("/") if n]
            return _Peer(self, route, names, None)
        if path == "/ws" or path.startswith("/ws/"):  # raw: /ws/<s1>/<s2>, payloads unwrapped
            return _Peer(self, route, [n for n in unquote(path[3:]).split("/") if n], None, combined=False)
        return None

    def rest_app(self) -> web.Application:
        app = web.Application()

        async def depth(request: web.Request) -> web.Response:
            params = dict(request.query)
            self.rest_calls.append(("GET", request.path, params))
            if self.depth is None:
                return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
            return web.json_response(await self.depth(params))

        async def listen_key(request: web.Request) -> web.Response:
            params = dict(request.query)
            self.rest_calls.append((request.method, request.path, params))
            if request.method == "POST":
                key = f"{len(self.listen_keys) + 1:064d}"
                self.listen_keys.append(key)
                return web.json_response({"listenKey": key})
            return web.json_response({})

        app.router.add_get(f"{self.prefix}/depth", depth)
        for method in ("POST", "PUT", "DELETE"):
            app.router.add_route(method, f"{self.prefix}/listenKey", listen_key)
        return app


@asynccontextmanager
async def futures_server(product: str = "usdm") -> AsyncIterator[FuturesServer]:
    state = FuturesServer(product)
    runner = web.AppRunner(state.rest_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.rest_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with serving(state._factory, state.peers) as state.port:
            yield state
    finally:
        await runner.cleanup()


async def until(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)
