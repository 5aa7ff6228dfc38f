"""Make-before-break rotation, time-compressed: hundreds of forced rotations lose and duplicate nothing."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from binance_ws import errors
from binance_ws.engine import AsyncSocketManager
from binance_ws.sim import Simulator
from tests.engine._util import rotating_market, rotation_simulator, trade_ids, until

ROTATIONS = 200


def _assert_exact(got: list[dict]) -> None:
    assert [m for m in got if m.get("e") == "error"] == []
    ids = trade_ids(got)
    assert len(ids) == len(got)
    assert ids == list(range(ids[0], ids[0] + len(ids))), "a trade was lost or delivered twice"


async def test_planned_cut_and_server_shutdown_rotations_lose_and_duplicate_nothing() -> None:
    # A 2 s "day" on the server, 30 ms on ours: each connection is replaced before the server's cut
    # (with room for a slow handshake on a loaded machine: cut first, and the loss is real).
    # Half of the rotations are forced by serverShutdown instead.
    async with rotation_simulator() as sim:
        # Our side believes in a 30 ms day: it rotates 10% before that.
        market = rotating_market(sim)
        got: list[dict] = []
        async with AsyncSocketManager(market=market, handover_grace=0.5) as sm:
            # Raw delivery skips the sequence tracker, so the handover alone must get it exactly right.
            await sm.subscribe("btcusdt@trade", lambda raw: got.append(orjson.loads(raw.data)), decode="raw")
            conn = sm.connections[0]
            await until(lambda: conn.rotations >= ROTATIONS // 2, timeout=30, what="planned rotations")
            planned = conn.rotations
        async with AsyncSocketManager(market=market, rotate_after=0, handover_grace=0.5) as sm2:
            got2: list[dict] = []
            await sm2.subscribe("btcusdt@trade", lambda raw: got2.append(orjson.loads(raw.data)),
                                decode="raw")
            conn2 = sm2.connections[0]
            while conn2.rotations < ROTATIONS // 2:
                done = conn2.rotations
                await until(lambda: conn2.link is not None and conn2.link.heard, what="data")
                sim.faults.server_shutdown(delay_s=1.0)
                await until(lambda done=done: conn2.rotations > done, timeout=5, what="shutdown rotation")
            shutdowns = conn2.rotations
    assert planned >= ROTATIONS // 2 and shutdowns >= ROTATIONS // 2
    assert conn.drops == 0 and conn2.drops == 0
    _assert_exact(got)
    _assert_exact(got2)
    assert len(trade_ids(got)) > planned  # trades flowed across the rotations


async def test_rotation_of_id_less_and_quiet_streams() -> None:
    # Tickers have no ids (switched by content) and a quiet symbol's trades may never prove the overlap
    # (switched after the grace period); both keep flowing with nothing repeated.
    async with Simulator(flow_rate=200.0) as sim:
        got: dict[str, list[dict]] = {}
        async with AsyncSocketManager(market=sim.market, rotate_after=0.3, handover_grace=0.2) as sm:
            for name in ("btcusdt@ticker", "btcusdt@depth5@100ms", "btcusdt@trade"):
                await sm.subscribe(name, got.setdefault(name, []).append)
            conn = sm.connections[0]
            await until(lambda: conn.rotations >= 4, timeout=10, what="rotations")
        assert conn.drops == 0
    tickers = [m["E"] for m in got["btcusdt@ticker"]]
    assert len(tickers) >= 2 and tickers == sorted(set(tickers))
    books = [m["lastUpdateId"] for m in got["btcusdt@depth5@100ms"]]
    assert books == sorted(set(books)) or books == sorted(books)  # repeats only if the book did not move
    assert [m for ms in got.values() for m in ms if m.get("e") == "error" and m["m"] != errors.MSG_GAP] == []
    _assert_exact(got["btcusdt@trade"])


async def test_rotation_survives_the_old_socket_dying_mid_handover() -> None:
    async with Simulator(flow_rate=500.0) as sim:
        got: list[dict] = []
        async with AsyncSocketManager(market=sim.market, rotate_after=0, handover_grace=5.0) as sm:
            await sm.subscribe("btcusdt@trade", got.append)
            conn = sm.connections[0]
            await until(lambda: len(got) > 5)
            sim.faults.server_shutdown(delay_s=0.0)
            await until(lambda: conn.rotations == 1 or conn.drops == 1, timeout=5)
            n = len(got)
            await until(lambda: len(got) > n + 10)
        await asyncio.sleep(0)
    ids = trade_ids(got)
    assert len(ids) == len(set(ids)) and ids == sorted(ids)


async def test_the_overlap_of_a_rotation_is_dropped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    # Once a stream is handed over, its frames still arriving on the old socket are the overlap:
    # dropped without a word (a warning each flooded the log, thousands per rotation at 1,000 streams).
    async with rotation_simulator() as sim:
        got: list[dict] = []
        with caplog.at_level(logging.WARNING, "binance_ws"):
            async with AsyncSocketManager(market=rotating_market(sim), handover_grace=0.5) as sm:
                names = [f"{s}@{k}" for s in ("btcusdt", "ethusdt", "bnbbtc")
                         for k in ("trade", "bookTicker")]
                await sm.subscribe(names, got.append)
                conn = sm.connections[0]
                await until(lambda: conn.rotations >= 4, timeout=30, what="rotations")
    assert conn.drops == 0 and got
    assert "unknown stream" not in caplog.text and "skipped" not in caplog.text
