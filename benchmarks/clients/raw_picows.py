"""Ceiling client: picows and one JSON decode per frame, nothing else (``mode``: orjson or msgspec;
``none``: no decode at all, the ceiling of raw delivery).

It connects to the same combined path binance-ws uses (``/stream?streams=...``), so both read the same
bytes; the difference between them is what the library adds per message.
"""

from __future__ import annotations

import asyncio

import msgspec
import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect
from probe import Probe, run_guarded


class Trade(msgspec.Struct, gc=False):
    """The trade payload, all fields (as binance_ws.models.Trade decodes them)."""

    e: str
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class Combined(msgspec.Struct, gc=False):
    stream: str
    data: Trade


def main(probe: Probe) -> None:
    job = probe.job
    on = probe.hook()
    text = WSMsgType.TEXT
    if job["mode"] == "msgspec":
        decode = msgspec.json.Decoder(Combined).decode

        def handle(payload: bytes) -> None:
            on(decode(payload).data.E)
    elif job["mode"] == "none":
        if job["latency"]:
            def handle(payload: bytes) -> None:
                start = payload.index(b'"E":') + 4
                on(int(payload[start:payload.index(b",", start)]))
        else:
            def handle(payload: bytes) -> None:
                on(0)
    else:
        loads = orjson.loads

        def handle(payload: bytes) -> None:
            on(loads(payload)["data"]["E"])

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is text:
                handle(frame.get_payload_as_bytes())

    async def run() -> None:
        url = f"{job['url']}/stream?streams={'/'.join(job['streams'])}"
        transport, _ = await ws_connect(Listener, url, max_frame_size=1 << 20)
        probe.ready()
        await probe.wait_async()
        transport.disconnect()

    asyncio.run(run())


if __name__ == "__main__":
    run_guarded(main)
