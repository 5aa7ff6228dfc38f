"""The benchmark's load server: Binance-shaped trade frames over picows, in its own process on core 0.

It speaks just enough of the stream protocol for every client under test to connect unmodified:
``/ws/<stream>`` (raw payloads) and ``/stream?streams=a/b`` (combined ``{"stream","data"}`` wrapper),
plus live ``SUBSCRIBE`` requests answered ``{"result":null,"id":N}`` (binance-sdk-spot subscribes that
way). It serves one scenario per process: once the client has every stream of the scenario and the
harness says "go" (the client has reported it is ready), it sends ``count`` trades round-robin over the
streams, each stream's trade ids consecutive (so no client's gap check fires), then idles until closed.

Each trade's ``E`` holds the wall-clock send time in **nanoseconds** (``time.time_ns()``: the same
clock in every process), from which clients compute delivery latency. Two pacing modes:

* ``rate=0``: as fast as the socket drains. Frames are pre-generated in chunks of ``CHUNK`` messages with
  placeholders, so a new chunk is two ``bytes.replace`` calls and the server is never the bottleneck;
  ``E`` is stamped once per chunk (throughput runs do not report latency).
* ``rate>0``: every ``TICK_S`` the messages due are formatted, then stamped with the current time and
  written at once.

Why not the simulator's ``/blast`` mode: it serves one raw path of its own, which the peer libraries
cannot be pointed at (they build ``/ws/<stream>`` or ``/stream`` URLs themselves), stamps ``E`` in ms,
and has no multi-stream round-robin.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

#: Messages per pre-generated chunk (max-rate mode); divided evenly among the streams, and the share
#: per stream must be a power of ten so a chunk's ids are one placeholder prefix plus a fixed suffix.
CHUNK: Final = 10_000
#: Messages per write in max-rate mode: small enough to interleave reads (pings, close), large enough
#: to keep per-write overhead low.
WRITE_BATCH: Final = 500
#: Pacing granularity of a fixed-rate run.
TICK_S: Final = 0.0005
#: First trade id: the size of real BTCUSDT ids (PROTOCOL.md 4.2).
FIRST_TRADE_ID: Final = 3_735_680_000
#: The core the server is pinned to; clients go on the other one.
SERVER_CORE: Final = 0

#: Placeholders for the send time (ns, and ms for ``T``), replaced in a whole batch just before it is
#: written, so the stamp is as late as possible; as wide as the values (19 digits until the year 2286).
TIME_PH: Final = b"~" * 19
MS_PH: Final = b"`" * 13
_TRADE = (b'{"e":"trade","E":' + TIME_PH + b',"s":"%s","t":%s,"p":"%.8f","q":"%.8f","T":' + MS_PH
          + b',"m":%s,"M":true}')


def stamp(frames: bytes) -> bytes:
    """``frames`` with the current time in place of the placeholders."""
    now = time.time_ns()
    return frames.replace(TIME_PH, b"%d" % now).replace(MS_PH, b"%d" % (now // 1_000_000))


@dataclass(frozen=True, slots=True)
class Scenario:
    """What one server process serves: ``streams`` (``<symbol>@trade`` names), ``count`` messages in
    total, ``rate`` messages a second (0: as fast as possible)."""

    streams: tuple[str, ...]
    count: int
    rate: float


def pin(core: int) -> None:
    """Pin this process to ``core`` when the machine has more than one."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})


def _frame_header(size: int) -> bytes:
    """RFC 6455 header of an unmasked final text frame of ``size`` bytes."""
    if size < 126:
        return bytes((0x81, size))
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big")
    return bytes((0x81, 127)) + size.to_bytes(8, "big")


def _wrap(stream: str, body: bytes, combined: bool) -> bytes:
    payload = b'{"stream":"%s","data":%s}' % (stream.encode(), body) if combined else body
    return _frame_header(len(payload)) + payload


def trade_body(symbol: bytes, trade_id: bytes, i: int) -> bytes:
    """One trade payload with the time placeholders; price and quantity vary with ``i`` like a busy
    book."""
    price = 61_800 + ((i * 7919) % 2000 - 1000) / 100
    qty = ((i * 104_729) % 100_000 + 1) / 100_000
    return _TRADE % (symbol, trade_id, price, qty, b"true" if i % 3 else b"false")


class ChunkTemplate:
    """``CHUNK`` framed messages over ``streams`` with placeholders for the id prefix and the time."""

    def __init__(self, streams: tuple[str, ...], combined: bool) -> None:
        per_stream = CHUNK // len(streams)
        digits = len(str(per_stream)) - 1
        if per_stream * len(streams) != CHUNK or 10 ** digits != per_stream:
            raise ValueError(f"{len(streams)} streams do not divide a chunk of {CHUNK} into a power of 10")
        self.per_stream = per_stream
        self.digits = digits
        self.prefix = FIRST_TRADE_ID // per_stream
        # As wide as the prefix, so frame lengths hold; ids outgrow it only after billions of messages.
        self._id_ph = b"^" * len(str(self.prefix))
        frames = []
        for j in range(CHUNK):
            stream = streams[j % len(streams)]
            symbol = stream.split("@", 1)[0].upper().encode()
            body = trade_body(symbol, self._id_ph + b"%0*d" % (digits, j // len(streams)), j)
            frames.append(_wrap(stream, body, combined))
        self.offsets = [0]
        for frame in frames:
            self.offsets.append(self.offsets[-1] + len(frame))
        self.template = b"".join(frames)

    def next_chunk(self) -> bytes:
        """The next chunk: ids continue where the last one ended, stamped with the current time."""
        prefix = b"%d" % self.prefix
        if len(prefix) != len(self._id_ph):
            raise OverflowError("trade ids outgrew the chunk template")
        self.prefix += 1
        return stamp(self.template.replace(self._id_ph, prefix))


class _Client(WSListener):
    """One client connection: collects its streams (path and SUBSCRIBE), then sends when told to."""

    def __init__(self, server: LoadServer, path: str) -> None:
        super().__init__()
        self.server = server
        url = urlsplit(path)
        self.combined = url.path.rstrip("/").endswith("/stream")
        self.streams: list[str] = []
        if url.path.startswith("/ws/"):
            self.streams = [s for s in url.path[len("/ws/"):].split("/") if s]
        elif self.combined:
            self.streams = [s for v in parse_qs(url.query).get("streams", []) for s in v.split("/") if s]
        self.transport: WSTransport | None = None
        self.writable = asyncio.Event()
        self.writable.set()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.server.attach(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            try:
                msg: Any = orjson.loads(frame.get_payload_as_bytes())
            except orjson.JSONDecodeError:
                return
            if isinstance(msg, dict) and msg.get("method") == "SUBSCRIBE":
                self.streams.extend(p for p in msg.get("params", []) if p not in self.streams)
                transport.send(WSMsgType.TEXT, orjson.dumps({"result": None, "id": msg.get("id")}))
                self.server.check_ready()
            elif isinstance(msg, dict) and "method" in msg:
                transport.send(WSMsgType.TEXT, orjson.dumps({"result": None, "id": msg.get("id")}))
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.server.detach(self)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


class LoadServer:
    """Serves one :class:`Scenario` to the first client that has all of its streams."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.clients: list[_Client] = []
        self.go = asyncio.Event()
        self.ready = asyncio.Event()
        self.target: _Client | None = None
        self.sent = 0

    def attach(self, client: _Client) -> None:
        self.clients.append(client)
        self.check_ready()

    def detach(self, client: _Client) -> None:
        if client in self.clients:
            self.clients.remove(client)

    def check_ready(self) -> None:
        wanted = set(self.scenario.streams)
        for client in self.clients:
            if wanted <= set(client.streams) and self.target is None:
                self.target = client
                self.ready.set()

    async def run(self) -> None:
        await self.ready.wait()
        await self.go.wait()
        client = self.target
        assert client is not None and client.transport is not None
        if self.scenario.rate:
            await self._paced(client)
        else:
            await self._max(client)

    async def _max(self, client: _Client) -> None:
        assert client.transport is not None
        write = client.transport.underlying_transport.write
        template = ChunkTemplate(self.scenario.streams, client.combined)
        offsets = template.offsets
        total = self.scenario.count
        while self.sent < total and not client.transport.is_disconnected:
            chunk = template.next_chunk()
            pos = 0
            while pos < CHUNK and self.sent < total:
                n = min(WRITE_BATCH, CHUNK - pos, total - self.sent)
                write(chunk[offsets[pos]:offsets[pos + n]])
                pos += n
                self.sent += n
                if not client.writable.is_set():
                    await client.writable.wait()
                else:
                    await asyncio.sleep(0)

    async def _paced(self, client: _Client) -> None:
        assert client.transport is not None
        write = client.transport.underlying_transport.write
        streams = self.scenario.streams
        symbols = [s.split("@", 1)[0].upper().encode() for s in streams]
        total, rate = self.scenario.count, self.scenario.rate
        started = time.monotonic()
        n_streams = len(streams)
        while self.sent < total and not client.transport.is_disconnected:
            due = min(total, int((time.monotonic() - started) * rate) + 1) - self.sent
            if due > 0:
                frames = []
                for i in range(self.sent, self.sent + due):
                    k = i % n_streams
                    body = trade_body(symbols[k], b"%d" % (FIRST_TRADE_ID + i // n_streams), i)
                    frames.append(_wrap(streams[k], body, client.combined))
                write(stamp(b"".join(frames)))
                self.sent += due
            await asyncio.sleep(TICK_S)


def serve(scenario: Scenario, pipe: Connection) -> None:
    """Process entry point: pin to the server core, listen on an ephemeral port, report it on ``pipe``;
    then "go" on the pipe starts sending; "stop" (or the pipe closing) ends the process. Reports
    ``("sent", n)`` when done sending."""
    pin(SERVER_CORE)

    async def main() -> None:
        server = LoadServer(scenario)
        listener = await ws_create_server(lambda req: _Client(server, _path(req)), "127.0.0.1", 0,
                                          max_frame_size=1 << 20)
        port = listener.sockets[0].getsockname()[1]
        pipe.send(("port", port))
        loop = asyncio.get_running_loop()
        sender = asyncio.create_task(server.run())

        def command() -> None:
            try:
                msg = pipe.recv()
            except EOFError:
                msg = "stop"
            if msg == "go":
                server.go.set()
            else:
                stop.set()

        stop = asyncio.Event()
        loop.add_reader(pipe.fileno(), command)
        await asyncio.wait([sender, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        if sender.done():
            pipe.send(("sent", server.sent))
            await stop.wait()
        sender.cancel()
        listener.close()

    asyncio.run(main())


def _path(request: WSUpgradeRequest) -> str:
    path = request.path
    return path.decode() if isinstance(path, bytes) else str(path)
