"""Real traffic no one here wrote, at its recorded pace, with the client's default settings: the
cryptofeed capture of four illiquid spot symbols (2021; RUNEEUR's diff depth is silent for 19.4 s,
BLZETH's for 7.6 s). Any subset of its streams arrives whole, in order, with no reconnect and no error
event. Before the connection protocol (core/lifecycle.py) the four ``@depth@100ms`` streams alone drew
28 reconnects and lost 4 messages in these 30 s."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.recording import KIND_STREAM, read_recording
from binance_ws.sim import Simulator
from binance_ws.sim.replay import Replay
from tests.paths import RECORDINGS

CAPTURE = RECORDINGS / "cryptofeed_BINANCE.ws.1.0"
pytestmark = pytest.mark.skipif(not CAPTURE.is_file(), reason="cryptofeed capture not available")

SUBSETS: dict[str, list[str]] = {
    "four quiet books": ["nknusdt@depth@100ms", "blzeth@depth@100ms", "lrcbtc@depth@100ms",
                         "runeeur@depth@100ms"],
    "the quietest symbol": ["runeeur@depth@100ms", "runeeur@aggTrade", "runeeur@bookTicker",
                            "runeeur@kline_1m"],
    "everything": [],  # filled from the capture
    "one book and one trade stream": ["blzeth@depth@100ms", "lrcbtc@aggTrade"],
}


def recorded(streams: set[str]) -> list[tuple[str, bytes]]:
    return [(r.stream, r.payload) for r in read_recording(CAPTURE)
            if r.kind == KIND_STREAM and r.stream in streams]


async def play(streams: list[str], decode: str) -> tuple[list[Any], AsyncSocketManager, Replay]:
    replay = Replay(CAPTURE, speed=1.0)
    got: list[Any] = []
    async with Simulator(replay=replay) as sim, AsyncSocketManager(market=sim.market) as sm:
        await sm.subscribe(streams, got.append, wrap=decode == "dict", decode=decode)  # type: ignore[arg-type]
        await asyncio.wait_for(replay.done.wait(), replay.duration_s + 30)
        await asyncio.sleep(0.5)
        return got, sm, replay


@pytest.mark.slow
async def test_every_subset_of_the_capture_arrives_whole_at_its_pace_with_no_reconnect() -> None:
    all_streams = sorted(Replay(CAPTURE, speed=0).streams)
    SUBSETS["everything"] = all_streams
    modes = ["typed", "dict", "raw", "dict"]
    # One simulator per subset, all at once: 30 s of recorded time in 30 s of wall time.
    results = await asyncio.gather(*(play(streams, mode) for streams, mode in zip(SUBSETS.values(), modes,
                                                                                  strict=True)))
    for (name, streams), mode, (got, sm, replay) in zip(SUBSETS.items(), modes, results, strict=True):
        assert replay.passes == 1
        errors = [m for m in got if isinstance(m, dict) and m.get("e") == "error"]
        assert errors == [], name
        for conn in sm.connections:
            assert (conn.connects, conn.drops) == (1, 0), f"{name}: {conn.connects} connects"
        want = recorded(set(streams))
        assert want, name
        if mode == "raw":
            have = [(m.stream, m.data) for m in got]
            assert have == want, name
        elif mode == "dict":
            assert [(m["stream"], m["data"]) for m in got] == [(s, orjson.loads(p)) for s, p in want], name
        else:
            assert len(got) == len(want), name  # typed: one struct per recorded message
