"""User data against a hostile WebSocket API server on 127.0.0.1: answers we cannot use and requests
never answered end in a raised or reported error within a deadline, never in a wait for ever, and a
failed handover leaves the stream able to hand over again."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from binance_ws.client import AsyncClient, BinanceAPIError
from binance_ws.engine import wsapi
from binance_ws.engine.userdata import ERR_HANDOVER, UserDataStream
from binance_ws.engine.wsapi import WsApiConnection
from tests.engine._hostile import HostileWsApiServer, hostile_ws_api_server
from tests.engine._util import until

SUBSCRIBE = "userDataStream.subscribe.signature"


def _client(srv: HostileWsApiServer) -> AsyncClient:
    return AsyncClient("k" * 64, "s" * 64, market=srv.market, env={})


async def test_an_answer_without_subscription_id_makes_start_raise_not_hang() -> None:
    # The subscribe answer lacks "subscriptionId": the hook fails with a KeyError, which is no network
    # trouble; start() must say so rather than wait for an event that never comes.
    async with hostile_ws_api_server(lambda i, method, params: {}) as srv:
        stream = UserDataStream(_client(srv), lambda e: None, ws_api_url=srv.url)
        with pytest.raises(BinanceAPIError, match="KeyError"):
            await asyncio.wait_for(stream.start(), 10)
        await until(lambda: all(p.closed.done() for p in srv.peers), what="the connection closed")


async def test_a_hook_that_never_finishes_is_cut_by_the_setup_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wsapi, "SETUP_TIMEOUT_S", 0.3)
    monkeypatch.setattr(wsapi, "START_ATTEMPTS", 2)
    hook_started = asyncio.Event()

    async def stuck(conn: WsApiConnection) -> None:
        hook_started.set()
        await asyncio.Event().wait()

    async with hostile_ws_api_server(lambda i, method, params: None) as srv:
        conn = WsApiConnection(srv.url, on_connect=stuck)
        try:
            with pytest.raises(BinanceAPIError, match="cannot connect"):
                await asyncio.wait_for(conn.start(), 10)
        finally:
            await conn.close()
        assert hook_started.is_set() and len(srv.peers) == 2


async def test_a_failed_handover_is_reported_and_cleared(caplog: pytest.LogCaptureFixture) -> None:
    def answer(index: int, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if method == SUBSCRIBE:
            # The first connection subscribes; a handover's new one gets an answer it cannot use.
            return {"subscriptionId": 0} if index == 0 else {}
        return {}

    events: list[dict[str, Any]] = []
    async with hostile_ws_api_server(answer) as srv:
        stream = UserDataStream(_client(srv), events.append, ws_api_url=srv.url)
        await asyncio.wait_for(stream.start(), 10)
        try:
            old = stream.connection
            srv.peers[0].push({"e": "serverShutdown", "E": 1})
            await until(lambda: len(srv.peers) >= 2, what="the handover's new connection")
            await until(lambda: stream._handover is None, timeout=10, what="the handover to end")
            failures = [e for e in events if e.get("e") == "error" and e.get("type") == ERR_HANDOVER]
            assert len(failures) == 1 and "KeyError" in failures[0]["reason"]
            assert any(r.levelno == logging.ERROR and "handover failed" in r.getMessage()
                       for r in caplog.records)
            assert stream.connection is old and stream._incoming is None
            await until(lambda: srv.peers[1].closed.done(), what="the new connection closed")
            # Not stuck: the next notice starts another handover.
            srv.peers[0].push({"e": "serverShutdown", "E": 2})
            await until(lambda: len(srv.peers) >= 3, what="a second handover attempt")
        finally:
            await asyncio.wait_for(stream.stop(), 10)
