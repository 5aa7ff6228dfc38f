"""Sequence events reach every delivery mode over real sockets: a subscriber that takes raw bytes or
typed models hears about a gap or a reset exactly as a dict subscriber does, through every reader the
connection may use (whole raw frames, whole typed frames, the byte split and the routes' feeds)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from binance_ws import errors
from binance_ws.engine import AsyncSocketManager
from binance_ws.engine.delivery import RawMessage, Subscription
from binance_ws.sim import Simulator
from tests.engine._util import until

STREAM = "btcusdt@trade"
MODES = ["dict", "raw", "typed"]
#: Added to every trade id until the "restart" (a far-ahead numbering the ids then fall back from).
OFFSET = 10_000_000


def trade_id(msg: Any) -> int | None:
    """The trade id of a delivered message in any mode; None for an error event."""
    if isinstance(msg, dict):
        return None if msg.get("e") == "error" else int(msg["t"])
    if isinstance(msg, RawMessage):
        return int(orjson.loads(msg.data)["t"])
    return int(msg.trade_id)


def ids_of(got: list[Any]) -> list[int]:
    return [n for n in (trade_id(m) for m in got) if n is not None]


def events_of(got: list[Any]) -> list[dict[str, Any]]:
    return [m for m in got if isinstance(m, dict) and m.get("e") == "error"]


class _Collector:
    """A callback subscriber, or a queue subscriber drained as the test polls."""

    def __init__(self) -> None:
        self.got: list[Any] = []
        self.sub: Subscription | None = None

    def __call__(self) -> list[Any]:
        sub = self.sub
        if sub is not None and sub.callback is None:
            while True:
                try:
                    self.got.append(sub.recv_nowait())
                except asyncio.QueueEmpty:
                    break
        return self.got


async def _subscribe(sm: AsyncSocketManager, mode: str, delivery: str) -> _Collector:
    collector = _Collector()
    callback: Callable[[Any], Any] | None = collector.got.append if delivery == "callback" else None
    collector.sub = await sm.subscribe(STREAM, callback, decode=mode)  # type: ignore[arg-type]
    return collector


def _reader(sm: AsyncSocketManager) -> str:
    link = sm.connections[0].link
    assert link is not None
    return link.on_ws_frame.__func__.__name__  # type: ignore[attr-defined]


#: The socket reader each mode settles on with one callback subscriber (see docs/architecture.md); a
#: queue subscriber is fed by the byte split.
READERS = {"dict": "_whole_dict_frame", "raw": "_raw_frame", "typed": "_whole_typed_frame"}


@pytest.mark.parametrize("delivery", ["callback", "queue"])
@pytest.mark.parametrize("mode", MODES)
async def test_skipped_trades_are_a_gap_event_in_every_mode(sim: Simulator, mode: str, delivery: str) -> None:
    async with AsyncSocketManager(market=sim.market) as sm:
        c = await _subscribe(sm, mode, delivery)
        await until(lambda: len(ids_of(c())) > 5, what="first trades")
        assert _reader(sm) == (READERS[mode] if delivery == "callback" else "_split_frame")
        sim.faults.skip(4, pattern=r"@trade$")
        await until(lambda: sim.faults.counts["skipped"] == 4, what="skipped trades")
        n = len(c())
        await until(lambda: len(ids_of(c()[n:])) > 3, what="trades after the skip")
    got = c()
    gaps = events_of(got)
    assert len(gaps) == 1, gaps
    at = got.index(gaps[0])
    before, after = ids_of(got[:at]), ids_of(got[at + 1:])
    # The same event a dict subscriber gets, naming exactly the four trades that never came.
    assert gaps[0] == {"e": "error", "m": errors.MSG_GAP, "type": errors.ERR_GAP, "stream": STREAM,
                       "first": before[-1] + 1, "last": before[-1] + 4}
    assert after[0] == before[-1] + 5
    assert before == list(range(before[0], before[-1] + 1)) and after == list(range(after[0], after[-1] + 1))


@pytest.mark.parametrize("delivery", ["callback", "queue"])
@pytest.mark.parametrize("mode", MODES)
async def test_ids_falling_back_are_a_reset_event_and_delivery_goes_on(sim: Simulator, mode: str,
                                                                       delivery: str) -> None:
    # The trade ids run OFFSET ahead, then fall back to the exchange's own numbering (as after a
    # reconnect to an exchange whose ids restarted). Before the fix every later trade was dropped as a
    # duplicate, silently, in every mode.
    shifted = [True]

    def renumber(stream: str, payload: Any) -> list[Any]:
        if stream == STREAM and shifted[0]:
            return [{**payload, "t": payload["t"] + OFFSET}]
        return [payload]
    sim.hub.filter = renumber
    async with AsyncSocketManager(market=sim.market) as sm:
        c = await _subscribe(sm, mode, delivery)
        await until(lambda: len(ids_of(c())) > 5, what="first trades")
        shifted[0] = False
        n = len(c())
        await until(lambda: len(ids_of(c()[n:])) > 5, what="trades after the restart")
    got = c()
    resets = events_of(got)
    assert len(resets) == 1, resets
    at = got.index(resets[0])
    before, after = ids_of(got[:at]), ids_of(got[at + 1:])
    assert resets[0] == {"e": "error", "m": errors.MSG_RESET, "type": errors.ERR_RESET, "stream": STREAM,
                         "last": before[-1], "got": after[0]}
    assert before[-1] > OFFSET > after[0]
    assert after == list(range(after[0], after[-1] + 1))  # nothing dropped after the restart
