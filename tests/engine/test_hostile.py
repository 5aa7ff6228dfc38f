"""The client against servers that behave in ways our simulator does not, written here with picows:
fragmented messages, frames serialised otherwise than Binance does today, empty close frames, and a
server that accepts every connection and drops it at once. Real sockets on loopback, the real client
stack; nothing mocked."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable

import orjson
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
)

from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.markets import SPOT, Market, local_market
from tests.engine._hostile import serving
from tests.engine._util import most_in_window, until

TRADE = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 0, "p": "1.00", "q": "2.00", "T": 1, "m": True, "M": True}


def trade(t: int) -> dict:
    return {**TRADE, "t": t}


class Server:
    """A picows server whose every connection gets a listener from ``make(server)``; it counts
    handshakes (with their times) and keeps what listeners record."""

    def __init__(self, make: Callable[[Server], WSListener]) -> None:
        self.make = make
        self.handshakes: list[float] = []
        self.paths: list[str] = []
        self.close_codes: list[int] = []
        self.port = 0

    def market(self, **changes: object) -> Market:
        url = f"ws://127.0.0.1:{self.port}"
        return dataclasses.replace(local_market(url, "http://127.0.0.1:9", base=SPOT), **changes)  # type: ignore[arg-type]

    def _factory(self, request: WSUpgradeRequest) -> WSListener:
        self.handshakes.append(time.monotonic())
        self.paths.append(request.path.decode() if isinstance(request.path, bytes) else str(request.path))
        return self.make(self)


@contextlib.asynccontextmanager
async def serve(make: Callable[[Server], WSListener]) -> AsyncIterator[Server]:
    server = Server(make)
    async with serving(server._factory) as server.port:
        yield server


class Scripted(WSListener):
    """Answers SUBSCRIBE/UNSUBSCRIBE and pings; once connected, runs ``script(transport)`` soon after."""

    def __init__(self, server: Server, script: Callable[[WSTransport], None]) -> None:
        self.server = server
        self.script = script

    def on_ws_connected(self, transport: WSTransport) -> None:
        asyncio.get_running_loop().call_later(0.05, self.script, transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif frame.msg_type is WSMsgType.TEXT:
            msg = orjson.loads(frame.get_payload_as_bytes())
            transport.send(WSMsgType.TEXT, orjson.dumps({"result": None, "id": msg["id"]}))
        elif frame.msg_type is WSMsgType.CLOSE:
            self.server.close_codes.append(int(frame.get_close_code()))
            transport.disconnect()


def combined(stream: str, data: dict) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


async def test_a_fragmented_message_is_reassembled() -> None:
    def script(transport: WSTransport) -> None:
        whole = combined("btcusdt@trade", trade(1))
        parts = [whole[:10], whole[10:40], whole[40:]]
        transport.send(WSMsgType.TEXT, parts[0], fin=False)
        transport.send_ping(b"between")  # control frames may come between fragments (RFC 6455 5.4)
        transport.send(WSMsgType.CONTINUATION, parts[1], fin=False)
        transport.send(WSMsgType.CONTINUATION, parts[2], fin=True)
        transport.send(WSMsgType.TEXT, combined("btcusdt@trade", trade(2)))

    got: list[dict] = []
    async with serve(lambda s: Scripted(s, script)) as server, \
            AsyncSocketManager(market=server.market()) as sm:
        await sm.subscribe("btcusdt@trade", got.append)
        await until(lambda: len(got) >= 2, timeout=3.0, what="both trades")
        assert got == [trade(1), trade(2)]  # whole, in order, no malformed or gap event


async def test_frames_with_other_whitespace_or_key_order_are_delivered_to_every_subscriber() -> None:
    def script(transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, combined("btcusdt@trade", trade(1)))
        transport.send(WSMsgType.TEXT, orjson.dumps({"data": trade(2), "stream": "btcusdt@trade"}))
        transport.send(WSMsgType.TEXT, orjson.dumps({"stream": "btcusdt@trade", "data": trade(3)},
                                                    option=orjson.OPT_INDENT_2))
        transport.send(WSMsgType.TEXT, combined("btcusdt@trade", trade(4)))

    first: list[dict] = []
    second: list[dict] = []
    async with serve(lambda s: Scripted(s, script)) as server, \
            AsyncSocketManager(market=server.market()) as sm:
        await sm.subscribe("btcusdt@trade", first.append)
        await sm.subscribe("btcusdt@trade", second.append)
        await until(lambda: len(first) >= 4 and len(second) >= 4, timeout=3.0, what="four trades each")
        assert first == second == [trade(1), trade(2), trade(3), trade(4)]


async def test_an_empty_close_frame_is_answered_with_a_valid_code() -> None:
    def script(transport: WSTransport) -> None:
        transport.send(WSMsgType.CLOSE, b"")  # no status code at all

    async with serve(lambda s: Scripted(s, script)) as server, \
            AsyncSocketManager(market=server.market()) as sm:
        await sm.subscribe("btcusdt@trade", lambda m: None)
        await until(lambda: server.close_codes, timeout=3.0, what="the client's close frame")
        assert server.close_codes[0] == WSCloseCode.OK  # not 0 (or 1005), which may not be sent


class Dropper(WSListener):
    """Accepts the handshake, then drops the connection at once."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.disconnect(graceful=False)


async def test_a_server_that_drops_every_connection_never_draws_more_than_the_attempt_budget() -> None:
    # 40 connections retrying forever against a server that accepts and drops each one: the attempt
    # budget (compressed here to 25 per 2 s) is never passed, and each connection's flaps escalate its
    # backoff instead of a reconnect loop.
    async with serve(lambda s: Dropper()) as server:
        market = server.market(max_connections_per_window=25, connection_window_s=2.0)
        async with AsyncSocketManager(market=market, max_reconnects=None,
                                      max_streams_per_connection=1) as sm:
            names = [f"s{i:02d}usdt@trade" for i in range(40)]
            # Not awaited: a subscribe cancelled would take its streams back (see the manager).
            pending = asyncio.create_task(sm.subscribe(names, lambda m: None))
            await asyncio.sleep(5.0)
            conns = sm.connections
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        assert len(server.handshakes) >= 25
        assert most_in_window(server.handshakes, 2.0) <= 25
        assert conns and all(c.life.flaps >= 1 for c in conns if c.connects > 1)


async def test_a_fragmented_message_reaches_a_raw_subscriber_whole() -> None:
    whole = combined("btcusdt@trade", trade(7))

    def script(transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, whole[:30], fin=False)
        transport.send(WSMsgType.CONTINUATION, whole[30:], fin=True)

    got: list = []
    async with serve(lambda s: Scripted(s, script)) as server, \
            AsyncSocketManager(market=server.market()) as sm:
        await sm.subscribe("btcusdt@trade", got.append, decode="raw")
        await until(lambda: got, timeout=3.0, what="the trade")
        await asyncio.sleep(0.1)
        assert len(got) == 1 and orjson.loads(got[0].data) == trade(7)
