"""Hostile servers for engine tests, on 127.0.0.1 with picows/asyncio: real sockets, chosen misbehaviour.

:class:`HostileStreamServer` speaks just enough of the market-stream protocol (``/stream?streams=``,
``SUBSCRIBE``/``UNSUBSCRIBE`` answered with ``{"result":null,"id":N}``) and can be told to leave some
methods unanswered; :func:`dropping_server` accepts TCP connections and closes them at once, so a
client never gets past the handshake and sits in its reconnect backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from binance_ws.markets import SPOT, Market, local_market


class _Peer(WSListener):
    def __init__(self, server: HostileStreamServer) -> None:
        self.server = server
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.server.peers.append(self)

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
        method = msg.get("method")
        self.server.requests.append((method, list(msg.get("params") or [])))
        answer = self.server.answer(method, msg.get("params") or [])
        if answer is None:
            return  # left unanswered: the stall under test
        transport.send(WSMsgType.TEXT, orjson.dumps({**answer, "id": msg.get("id")}))


Answer = Callable[[str, list[Any]], dict[str, Any] | None]


def _ok(method: str, params: list[Any]) -> dict[str, Any] | None:
    return {"result": None}


@dataclasses.dataclass
class HostileStreamServer:
    """``answer(method, params)`` returns the reply (``{"result": None}``, ``{"error": {...}}``) or None
    to leave the request unanswered; ``requests`` lists what arrived, ``peers`` the open sockets."""

    answer: Answer = _ok
    requests: list[tuple[str, list[Any]]] = dataclasses.field(default_factory=list)
    peers: list[_Peer] = dataclasses.field(default_factory=list)
    port: int = 0

    @property
    def market(self) -> Market:
        return local_market(f"ws://127.0.0.1:{self.port}", "http://127.0.0.1:1", "", base=SPOT)

    def methods(self) -> list[str]:
        return [m for m, _ in self.requests]


@asynccontextmanager
async def serving(factory: Callable[[WSUpgradeRequest], WSListener | None],
                  peers: list[Any] | None = None) -> AsyncIterator[int]:
    """A picows server on an ephemeral loopback port (yielded); on exit the ``peers`` still connected
    (objects with a ``transport``) are cut and the server closed."""
    server = await ws_create_server(factory, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for peer in list(peers or ()):
            if peer.transport is not None:
                peer.transport.disconnect(graceful=False)
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def hostile_stream_server(answer: Answer = _ok) -> AsyncIterator[HostileStreamServer]:
    state = HostileStreamServer(answer)
    async with serving(lambda request: _Peer(state), state.peers) as state.port:
        yield state


@asynccontextmanager
async def dropping_server() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP server on 127.0.0.1 that closes every connection as soon as it is accepted: yields its
    port and a list that counts the attempts."""
    attempts: list[int] = []

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts.append(1)
        writer.transport.abort()

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], attempts
    finally:
        server.close()
        await server.wait_closed()


WsApiAnswer = Callable[[int, str, dict[str, Any]], dict[str, Any] | None]


class _ApiPeer(WSListener):
    def __init__(self, server: HostileWsApiServer, index: int) -> None:
        self.server = server
        self.index = index
        self.transport: WSTransport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.server.peers.append(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.TEXT:
            msg = orjson.loads(frame.get_payload_as_bytes())
            self.server.requests.append((self.index, msg["method"]))
            result = self.server.answer(self.index, msg["method"], msg.get("params") or {})
            if result is not None:
                transport.send(WSMsgType.TEXT, orjson.dumps({"id": msg["id"], "status": 200,
                                                             "result": result}))

    def push(self, event: dict[str, Any], subscription_id: int = 0) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, orjson.dumps({"subscriptionId": subscription_id,
                                                          "event": event}))


@dataclasses.dataclass
class HostileWsApiServer:
    """A WebSocket API server: ``answer(connection index, method, params)`` gives the ``result`` (or None
    to leave the request unanswered); ``peers`` are the connections in order (index 0 first)."""

    answer: WsApiAnswer
    requests: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    peers: list[_ApiPeer] = dataclasses.field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws-api/v3"

    @property
    def market(self) -> Market:
        return local_market(f"ws://127.0.0.1:{self.port}", "http://127.0.0.1:1", self.url, base=SPOT)


@asynccontextmanager
async def hostile_ws_api_server(answer: WsApiAnswer) -> AsyncIterator[HostileWsApiServer]:
    state = HostileWsApiServer(answer)
    count = 0

    def factory(request: WSUpgradeRequest) -> WSListener:
        nonlocal count
        count += 1
        return _ApiPeer(state, count - 1)

    async with serving(factory, state.peers) as state.port:
        yield state
