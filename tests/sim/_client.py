"""A tiny raw picows client for the stream-server tests: records every frame, waits for conditions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from binance_ws.sim import Simulator
from binance_ws.sim.config import SimConfig
from binance_ws.sim.server import CONNECTION_ID_HEADER

#: Generous: tests run on a loaded 2-core machine; conditions usually hold in milliseconds.
TIMEOUT = 5.0


class RawClient(WSListener):
    """Keeps every frame it receives (type and payload) and whether the server closed it, and how."""

    def __init__(self, *, answer_pings: bool = True) -> None:
        self.answer_pings = answer_pings
        self.frames: list[tuple[WSMsgType, bytes]] = []
        self.transport: WSTransport | None = None
        self.disconnected = False
        self._changed = asyncio.Event()

    # -- picows callbacks ---------------------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.frames.append((frame.msg_type, frame.get_payload_as_bytes()))
        if frame.msg_type is WSMsgType.PING and self.answer_pings:
            transport.send_pong(frame.get_payload_as_bytes())
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        self._changed.set()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected = True
        self._changed.set()

    # -- helpers --------------------------------------------------------------------------------------------
    @property
    def conn_id(self) -> int:
        assert self.transport is not None
        return int(self.transport.response.headers[CONNECTION_ID_HEADER])

    def texts(self) -> list[bytes]:
        return [p for t, p in self.frames if t is WSMsgType.TEXT]

    def messages(self) -> list[Any]:
        return [orjson.loads(p) for p in self.texts()]

    def of_type(self, kind: WSMsgType) -> list[bytes]:
        return [p for t, p in self.frames if t is kind]

    async def wait_for(self, cond: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait until ``cond()`` holds; fail the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"condition not met within {timeout} s; frames: {self.frames[-5:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    async def next_text(self, after: int = 0, timeout: float = TIMEOUT) -> Any:
        """The first JSON text message after the first ``after`` ones, decoded."""
        await self.wait_for(lambda: len(self.texts()) > after, timeout)
        return orjson.loads(self.texts()[after])

    async def request(self, msg: Any, timeout: float = TIMEOUT) -> Any:
        """Send a control message (a dict, or raw bytes) and return the next text reply."""
        before = len(self.texts())
        self.send_text(msg if isinstance(msg, bytes) else orjson.dumps(msg))
        return await self.next_text(before, timeout)

    def send_text(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, data)

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int, str] | None:
        """Wait for the disconnect; the server's close code and reason, or None if it sent no close frame."""
        await self.wait_for(lambda: self.disconnected, timeout)
        close = self.of_type(WSMsgType.CLOSE)
        if not close:
            return None
        payload = close[0]
        return int.from_bytes(payload[:2], "big"), payload[2:].decode()

    def close(self) -> None:
        if self.transport is not None and not self.disconnected:
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()


async def connect(url: str, **kwargs: Any) -> RawClient:
    """Open a raw picows connection; ``kwargs`` go to :class:`RawClient` and, prefixed ``ws_``, to
    ``ws_connect`` (e.g. ``ws_local_addr=("127.0.0.2", 0)``)."""
    # Pings must reach RawClient, which answers them itself (or not: ``answer_pings=False``).
    ws_kwargs = {"enable_auto_pong": False, **{k[3:]: v for k, v in kwargs.items() if k.startswith("ws_")}}
    client_kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ws_")}
    _, client = await ws_connect(lambda: RawClient(**client_kwargs), url, **ws_kwargs)
    assert isinstance(client, RawClient)
    if client.transport is None or client.transport.response is None:
        raise ConnectionError("server closed the connection during the handshake")
    return client


class QuietSim(Simulator):
    """The real simulator with its order flow off: tests publish into ``hub`` themselves and see exactly
    what they published (``stream_exists`` is the exchange's own)."""

    def __init__(self, **overrides: Any) -> None:
        super().__init__(SimConfig(flow_rate=0.0), **overrides)

    async def __aenter__(self) -> QuietSim:
        await self.start()
        return self


def trade(i: int) -> dict[str, Any]:
    """A spot trade payload (PROTOCOL.md 4.2) with id ``i``."""
    return {"e": "trade", "E": 1723161255343 + i, "s": "BTCUSDT", "t": 3735683259 + i,
            "p": "61837.63000000", "q": "0.02000000", "T": 1723161255342 + i, "m": True, "M": True}


def depth(u: int) -> dict[str, Any]:
    """A diff-depth payload (PROTOCOL.md 4.12) covering update id ``u``."""
    return {"e": "depthUpdate", "E": 1723161255343 + u, "s": "BTCUSDT", "U": u, "u": u,
            "b": [["61837.63000000", "1.00000000"]], "a": []}


class EchoApi(WSListener):
    """Stands in for ``WsApiListener``: echoes text frames, so routing and forwarding are visible."""

    def __init__(self, request: object) -> None:
        self.request = request

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        transport.send(WSMsgType.TEXT, b"echo:" + frame.get_payload_as_bytes())


def install_echo_wsapi(sim: Simulator) -> None:
    """Route ``sim``'s ``/ws-api/v3`` to :class:`EchoApi` (the stream server's ``ws_api`` factory)."""
    sim.stream_server.ws_api = EchoApi
