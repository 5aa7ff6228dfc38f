"""Every simulator fault either heals by itself or gives the subscriber the documented error event."""

from __future__ import annotations

import asyncio
import gc
import logging

import msgspec
import pytest

from binance_ws import errors
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.engine import AsyncSocketManager
from binance_ws.sim import Simulator
from tests.engine._util import trade_ids, until

#: Reconnect fast in tests: the schedule's shape is tested in tests/core/test_backoff.py.
FAST = BackoffPolicy(initial_s=0.02, factor=2.0, max_s=0.1, jitter=0.1, max_retries=5)


def manager(sim: Simulator, **opts: object) -> AsyncSocketManager:
    opts.setdefault("backoff", FAST)
    return AsyncSocketManager(market=sim.market, **opts)  # type: ignore[arg-type]


async def _heals(sim: Simulator, sm: AsyncSocketManager, got: list[dict], fault: object) -> None:
    """After ``fault`` the stream resumes on a new connection."""
    conn = sm.connections[0]
    await until(lambda: len(trade_ids(got)) > 3, what="first trades")
    connects = conn.connects
    fault()  # type: ignore[operator]
    await until(lambda: conn.connects > connects, what="reconnect")
    n = len(trade_ids(got))
    await until(lambda: len(trade_ids(got)) > n + 3, what="trades after the reconnect")


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1011])
async def test_close_codes_heal(sim: Simulator, code: int) -> None:
    got: list[dict] = []
    async with manager(sim) as sm:
        await sm.subscribe("btcusdt@trade", got.append)
        await _heals(sim, sm, got, lambda: sim.faults.close(code))
    assert all(m.get("e") in ("trade", "error") for m in got)


async def test_abnormal_drop_heals_and_reports_the_gap(sim: Simulator) -> None:
    got: list[dict] = []
    async with manager(sim, backoff=BackoffPolicy(initial_s=0.3, max_s=0.3, jitter=0.0)) as sm:
        await sm.subscribe("btcusdt@trade", got.append)
        await _heals(sim, sm, got, sim.faults.drop)
    gaps = [m for m in got if m.get("e") == "error"]
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap == {"e": "error", "m": errors.MSG_GAP, "type": errors.ERR_GAP, "stream": "btcusdt@trade",
                   "first": gap["first"], "last": gap["last"]}
    at = got.index(gap)
    before, after = trade_ids(got[:at]), trade_ids(got[at + 1:])
    assert gap["first"] == before[-1] + 1 and gap["last"] == after[0] - 1 and gap["last"] >= gap["first"]
    assert before == list(range(before[0], before[-1] + 1))
    assert after == list(range(after[0], after[-1] + 1))


async def test_stalled_server_is_detected_by_the_ping_deadline(sim: Simulator) -> None:
    got: list[dict] = []
    async with manager(sim, ping_interval=0.2, ping_timeout=0.2) as sm:
        await sm.subscribe("btcusdt@trade", got.append)
        await _heals(sim, sm, got, sim.faults.stall)


async def test_unanswered_pings_are_detected() -> None:
    # A quiet stream (no flow): only pings show the connection is alive.
    async with Simulator(flow_rate=0.0) as sim, manager(sim, ping_interval=0.3, ping_timeout=1.0) as sm:
        await sm.subscribe("btcusdt@trade")
        conn = sm.connections[0]
        await asyncio.sleep(1.0)
        assert conn.connects == 1  # answered pings keep it up
        sim.faults.stop_answering_pings()
        await until(lambda: conn.connects > 1, what="reconnect after the pong deadline")


async def test_silence_on_a_periodic_stream_does_not_reconnect() -> None:
    # A diff-depth stream of a book that does not change sends nothing (PROTOCOL 4.12): with pings
    # answered, the connection stays up however long the silence (the old watchdog reconnected here).
    async with Simulator(flow_rate=0.0) as sim, manager(sim, ping_interval=0.2, ping_timeout=0.5) as sm:
        await sm.subscribe(["btcusdt@depth@100ms", "ethusdt@depth@100ms"], lambda m: None)
        conn = sm.connections[0]
        await asyncio.sleep(3.0)
        assert (conn.connects, conn.drops) == (1, 0)
        sim.faults.stall()  # now the server is gone: found by the ping deadline
        await until(lambda: conn.drops == 1, timeout=0.2 + 0.5 + 1.5, what="drop after the ping deadline")


async def test_a_silence_longer_than_asked_is_a_quiet_event_once_not_a_reconnect() -> None:
    got: list[dict] = []
    async with Simulator(flow_rate=0.0) as sim, \
            manager(sim, no_data_timeout=0.3, ping_interval=0.2, ping_timeout=0.5) as sm:
        await sm.subscribe("btcusdt@depth@100ms", got.append)
        conn = sm.connections[0]
        await until(lambda: got, what="the quiet event")
        await asyncio.sleep(1.0)
        quiet = [m for m in got if m.get("type") == "quiet"]
        assert len(quiet) == 1 and quiet[0]["stream"] == "btcusdt@depth@100ms" and quiet[0]["e"] == "error"
        assert quiet[0]["silent_s"] >= 0.3
        assert (conn.connects, conn.drops) == (1, 0)
        sim.config.flow_rate = 500.0  # the book moves again: data, then a new silence is a new event
        await until(lambda: any(m.get("e") == "depthUpdate" for m in got), what="depth updates")
        sim.config.flow_rate = 0.0
        await until(lambda: sum(m.get("type") == "quiet" for m in got) == 2, what="a second quiet event")
        assert (conn.connects, conn.drops) == (1, 0)


async def test_pings_both_ways_stay_within_the_message_rate() -> None:
    # The server pings three times a second, we ping when idle: answering every ping at once would pass
    # the 5 messages a second the simulator allows (it closes 1008); coalesced pongs keep it alive.
    async with Simulator(flow_rate=0.0, ping_interval_s=0.3, pong_timeout_s=1.0) as sim, \
            manager(sim, ping_interval=0.1, ping_timeout=0.5) as sm:
        await sm.subscribe("btcusdt@trade")
        await asyncio.sleep(2.0)
        assert sm.connections[0].connects == 1 and sm.connections[0].drops == 0


@pytest.mark.parametrize("fault", ["send_malformed_json", "send_invalid_utf8"])
async def test_broken_frames_are_skipped(sim: Simulator, fault: str,
                                         caplog: pytest.LogCaptureFixture) -> None:
    got: list[dict] = []
    async with manager(sim) as sm:
        await sm.subscribe("btcusdt@trade", got.append)
        await until(lambda: len(got) > 3)
        with caplog.at_level(logging.WARNING, "binance_ws.engine"):
            getattr(sim.faults, fault)()
            n = len(got)
            await until(lambda: len(got) > n + 5)
        assert sm.connections[0].connects == 1
        assert "malformed frame skipped" in caplog.text
    assert all(m["e"] == "trade" for m in got)


async def test_broken_payload_on_a_stream_reaches_its_subscribers_as_an_error_event(sim: Simulator) -> None:
    got: list[dict] = []
    async with manager(sim) as sm:
        await sm.subscribe("btcusdt@trade", got.append)
        await until(lambda: len(got) > 3)
        sim.faults.send_malformed_json(stream="btcusdt@trade")
        await until(lambda: any(m["e"] == "error" for m in got))
        n = len(got)
        await until(lambda: len(got) > n + 3)
        assert sm.connections[0].connects == 1
    errors_seen = [m for m in got if m["e"] == "error"]
    assert errors_seen == [{"e": "error", "type": "malformed", "m": "Malformed frame skipped",
                            "stream": "btcusdt@trade", "size": errors_seen[0]["size"]}]
    assert errors_seen[0]["size"] > 0
    ids = [m["t"] for m in got if m["e"] == "trade"]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


async def test_oversized_frame_reconnects(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    got: list[dict] = []
    with caplog.at_level(logging.WARNING):
        async with manager(sim) as sm:
            await sm.subscribe("btcusdt@trade", got.append)
            await _heals(sim, sm, got, sim.faults.send_oversized)
        gc.collect()
        await asyncio.sleep(0)
    # picows' protocol error is read and logged where it happens, never left "never retrieved".
    assert "connection ended by a protocol error" in caplog.text
    assert "never retrieved" not in caplog.text


async def test_handshake_429_honours_retry_after() -> None:
    async with Simulator(flow_rate=200.0, max_connections_per_window=1, connection_window_s=0.6) as sim, \
            manager(sim) as sm:
        got: list[dict] = []
        await sm.subscribe("btcusdt@trade", got.append)
        conn = sm.connections[0]
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        # Our own limiter follows the market row (300 / 5 min); the server allows one per 0.6 s, so the
        # reconnect is refused with 429 and Retry-After: 1.
        sim.faults.close(1001)
        await until(lambda: conn.connects >= 2, what="refused attempt")
        await until(lambda: conn.link is not None and len(trade_ids(got)) > 0 and conn.drops == 1, 5)
        n = len(got)
        await until(lambda: len(got) > n + 3, what="trades after the 429")
        assert loop.time() - t0 >= 1.0  # waited Retry-After, not the 20 ms backoff


async def test_refused_handshakes_heal(sim: Simulator) -> None:
    got: list[dict] = []
    async with manager(sim) as sm:
        await sm.subscribe("btcusdt@trade", got.append)
        sim.faults.refuse(503, count=3)
        await _heals(sim, sm, got, lambda: sim.faults.close(1011))
    assert [m for m in got if m.get("e") == "error" and m.get("type") != errors.ERR_GAP] == []


async def test_max_retries_event_after_the_fifth_failed_reconnect(sim: Simulator) -> None:
    got: list[dict] = []
    queued: list[dict] = []
    async with manager(sim) as sm:
        await sm.subscribe("btcusdt@trade", got.append)
        sub = await sm.subscribe(["btcusdt@trade"])
        await until(lambda: len(got) > 2)
        refused_before = sim.faults.counts["refused"]
        sim.faults.refuse(503)
        sim.faults.drop()
        await until(lambda: sm.connections == [], what="give up")
        assert sim.faults.counts["refused"] - refused_before == 5  # five reconnects, then no more
        while True:
            msg = await asyncio.wait_for(sub.recv(), 1)
            queued.append(msg)
            if msg.get("e") == "error":
                break
        with pytest.raises(errors.ConnectionClosedError):
            await asyncio.wait_for(sub.recv(), 1)
    errors_seen = [m for m in got if m.get("e") == "error"]
    assert errors_seen == [{"e": "error", "m": "Max reconnect retries reached"}]
    assert got[-1] == errors.max_retries_event()
    assert queued[-1] == {"e": "error", "m": "Max reconnect retries reached"}
    assert sub.closed


async def test_server_shutdown_rotates_without_loss(sim: Simulator) -> None:
    got: list[dict] = []
    async with manager(sim) as sm:
        await sm.subscribe("btcusdt@trade", got.append)
        conn = sm.connections[0]
        await until(lambda: len(got) > 3)
        sim.faults.server_shutdown(delay_s=0.5)
        await until(lambda: conn.rotations == 1, what="rotation")
        n = len(got)
        await until(lambda: len(got) > n + 20)
        assert conn.drops == 0
    ids = trade_ids(got)
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert len(ids) == len(got)


async def test_a_connection_that_never_opens_ends_with_the_max_retries_event(sim: Simulator) -> None:
    sim.faults.refuse(503)
    async with manager(sim) as sm:
        sub = await asyncio.wait_for(sm.subscribe("btcusdt@trade"), 10)
        assert await asyncio.wait_for(sub.recv(), 1) == {"e": "error", "m": "Max reconnect retries reached"}
        with pytest.raises(errors.ConnectionClosedError):
            await sub.recv()
        assert sm.connections == [] and sm.streams == []
        assert sim.faults.counts["refused"] == 6  # the first attempt and five reconnects
        sim.faults.accept()
        again = await sm.subscribe("btcusdt@trade")
        assert (await asyncio.wait_for(again.recv(), 5))["e"] == "trade"


async def test_payload_a_typed_model_refuses_becomes_an_error_event_for_that_subscriber_only(
        sim: Simulator) -> None:
    class WrongTrade(msgspec.Struct):
        t: str  # the trade id is a number on the wire: every payload is refused

    typed: list[object] = []
    plain: list[dict] = []
    async with manager(sim) as sm:
        await sm.subscribe("btcusdt@trade", typed.append, decode=msgspec.json.Decoder(WrongTrade).decode)
        await sm.subscribe("btcusdt@trade", plain.append)
        await until(lambda: len(plain) > 3 and len(typed) > 3)
        assert sm.connections[0].drops == 0
    assert all(m["e"] == "trade" for m in plain)
    assert all(isinstance(m, dict) and m["type"] == "malformed" and m["stream"] == "btcusdt@trade"
               and "$.t" in m["detail"] for m in typed)
