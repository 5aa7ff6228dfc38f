"""AsyncSocketManager against hostile servers on loopback: a subscribe that is cancelled or fails leaves
nothing behind, and a server that never answers UNSUBSCRIBE holds up nobody else."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from binance_ws import errors
from binance_ws.engine import AsyncSocketManager
from tests.engine._hostile import hostile_stream_server
from tests.engine._util import until

REQUEST_TIMEOUT_S = 0.3


def _manager(market: Any, **opts: Any) -> AsyncSocketManager:
    return AsyncSocketManager(market=market, request_timeout=REQUEST_TIMEOUT_S, no_data_timeout=0, **opts)


def _ignore(msg: Any) -> None:
    pass


async def test_cancelled_subscribe_undoes_its_route_and_subscriber() -> None:
    stall = False

    def answer(method: str, params: list[Any]) -> dict[str, Any] | None:
        return None if stall and method == "SUBSCRIBE" else {"result": None}

    async with hostile_stream_server(answer) as srv, _manager(srv.market) as sm:
        keep = await sm.subscribe("btcusdt@trade", _ignore)
        stall = True
        task = asyncio.create_task(sm.subscribe("ethusdt@trade", _ignore))
        # (The first socket SUBSCRIBEd btcusdt@trade itself: wait for ethusdt's own request.)
        await until(lambda: ("SUBSCRIBE", ["ethusdt@trade"]) in srv.requests, what="the live SUBSCRIBE")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sm.streams == ["btcusdt@trade"]
        assert list(sm._subs) == [keep]
        # The server is told as well: the stream it was asked for is unsubscribed.
        await until(lambda: ("UNSUBSCRIBE", ["ethusdt@trade"]) in srv.requests, what="the UNSUBSCRIBE")
        assert [c.streams for c in sm.connections] == [{"btcusdt@trade": None}]


async def test_failed_subscribe_undoes_its_route_and_subscriber() -> None:
    # A merged SUBSCRIBE is refused, and the per-stream retries that would name the culprit are never
    # answered: the subscribe fails (a timeout), and must not leave its streams registered.
    live = 0

    def answer(method: str, params: list[Any]) -> dict[str, Any] | None:
        nonlocal live
        if method != "SUBSCRIBE" or params == ["btcusdt@trade"]:  # the first socket's own SUBSCRIBE
            return {"result": None}
        live += 1
        return {"error": {"code": 2, "msg": "Invalid request: invalid stream"}} if live == 1 else None

    async with hostile_stream_server(answer) as srv, _manager(srv.market) as sm:
        keep = await sm.subscribe("btcusdt@trade", _ignore)
        with pytest.raises((TimeoutError, errors.BinanceWSError)):
            await asyncio.wait_for(sm.subscribe(["ethusdt@trade", "bnbbtc@trade"], _ignore), 5)
        assert sm.streams == ["btcusdt@trade"]
        assert list(sm._subs) == [keep]
        assert sm._opening == {} and sm._refused == {}


async def test_stalled_unsubscribe_holds_up_no_other_subscribe_and_is_bounded() -> None:
    def answer(method: str, params: list[Any]) -> dict[str, Any] | None:
        return None if method == "UNSUBSCRIBE" else {"result": None}

    async with hostile_stream_server(answer) as srv, _manager(srv.market) as sm:
        gone = await sm.subscribe("btcusdt@trade", _ignore)
        await sm.subscribe("ethusdt@trade", _ignore)
        closing = asyncio.create_task(gone.close())
        await until(lambda: "UNSUBSCRIBE" in srv.methods(), what="the UNSUBSCRIBE")
        started = time.monotonic()
        # Another subscriber of a live stream needs no network at all: it must not wait on the stall.
        again = await asyncio.wait_for(sm.subscribe("ethusdt@trade", _ignore), 1.0)
        assert time.monotonic() - started < 1.0 and not again.closed
        # The stalled UNSUBSCRIBE itself ends by its deadline, not never.
        await asyncio.wait_for(closing, REQUEST_TIMEOUT_S + 5)
        assert gone.closed and sorted(sm.streams) == ["ethusdt@trade"]
        # And a new stream on that same connection gets through once the deadline has passed.
        await asyncio.wait_for(sm.subscribe("ltcbtc@trade", _ignore), REQUEST_TIMEOUT_S + 5)
        assert sorted(sm.streams) == ["ethusdt@trade", "ltcbtc@trade"]
