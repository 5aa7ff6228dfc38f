"""Every injected fault, observed from a raw client over loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from picows import WSCloseCode, WSInvalidStatusError, WSMsgType, WSProtocolError, ws_connect

from tests.sim._client import QuietSim, RawClient, connect, depth, install_echo_wsapi, trade


@pytest.fixture
async def sim() -> AsyncIterator[QuietSim]:
    async with QuietSim(max_incoming_per_second=50) as s:
        yield s


async def marker(sim: QuietSim, client: RawClient, i: int) -> None:
    """Publish trade ``i`` and wait until the client has it: everything sent before it has arrived."""
    sim.hub.publish("btcusdt@trade", trade(i))
    await client.wait_for(lambda: trade(i) in client.messages())


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a server-side condition (the client helper waits on client-side ones)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# -- ending connections -----------------------------------------------------------------------------------
async def test_drop_ends_the_connection_without_a_close_frame(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    assert sim.faults.drop() == 1
    assert await client.closed() is None
    assert sim.faults.counts["dropped"] == 1


async def test_drop_one_connection_leaves_the_others(sim: QuietSim) -> None:
    first = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    second = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    assert sim.faults.drop(conn=first.conn_id) == 1
    assert await first.closed() is None
    await marker(sim, second, 1)
    assert not second.disconnected


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1011])
async def test_close_with_a_chosen_code_and_reason(sim: QuietSim, code: int) -> None:
    client = await connect(f"{sim.stream_url}/stream?streams=btcusdt@trade")
    sim.faults.close(code, "maintenance")
    assert await client.closed() == (code, "maintenance")


def test_close_refuses_other_codes() -> None:
    with pytest.raises(ValueError):
        QuietSim().faults.close(4000)


# -- stalls and pings ----------------------------------------------------------------------------------
async def test_stall_sends_nothing_until_it_ends(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    assert client.transport is not None
    started = time.monotonic()
    sim.faults.stall(duration_s=0.3)
    sim.hub.publish("btcusdt@trade", trade(1))
    client.transport.send_ping(b"during")
    client.send_text(b'{"method":"LIST_SUBSCRIPTIONS","id":1}')
    (conn,) = sim.stream_server.connections.values()
    await until(lambda: not conn.stalled)
    assert time.monotonic() - started >= 0.3
    await marker(sim, client, 2)
    assert client.messages() == [trade(2)]
    assert client.of_type(WSMsgType.PONG) == []
    assert not client.disconnected


async def test_stall_until_cleared(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    sim.faults.stall()
    sim.hub.publish("btcusdt@trade", trade(1))
    assert sim.faults.state()["connections"][0]["stalled"] is True
    sim.faults.clear()
    await marker(sim, client, 2)
    assert client.messages() == [trade(2)]


async def test_stop_answering_pings(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws")
    assert client.transport is not None
    sim.faults.stop_answering_pings()
    client.transport.send_ping(b"one")
    # Frames are handled in order: once the reply is here, a pong would have been too.
    assert await client.request({"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {"result": [], "id": 1}
    assert client.of_type(WSMsgType.PONG) == []
    sim.faults.stop_answering_pings(False)
    client.transport.send_ping(b"two")
    await client.wait_for(lambda: client.of_type(WSMsgType.PONG) == [b"two"])


# -- broken frames ---------------------------------------------------------------------------------------
async def test_malformed_json_frame(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    sim.faults.send_malformed_json()
    await client.wait_for(lambda: bool(client.texts()))
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(client.texts()[0])


async def test_invalid_utf8_text_frame(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    sim.faults.send_invalid_utf8()
    await client.wait_for(lambda: bool(client.texts()))
    with pytest.raises(UnicodeDecodeError):
        client.texts()[0].decode()


async def test_oversized_frame_trips_the_client_frame_limit(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade", ws_max_frame_size=4096)
    assert client.transport is not None
    sim.faults.send_oversized(size=8192)
    with pytest.raises(WSProtocolError):
        await asyncio.wait_for(client.transport.wait_disconnected(), 5)
    assert client.transport.close_handshake.sent.code is WSCloseCode.MESSAGE_TOO_BIG
    assert sim.faults.counts["oversized"] == 1


async def test_oversized_frame_is_valid_json_of_the_asked_size(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    sim.faults.send_oversized(size=100_000)
    await client.wait_for(lambda: bool(client.texts()))
    assert len(client.texts()[0]) == 100_000
    assert orjson.loads(client.texts()[0])["e"] == "padding"


# -- sequence faults ---------------------------------------------------------------------------------------
async def sequence(sim: QuietSim, client: RawClient, ids: range) -> list[int]:
    for u in ids:
        sim.hub.publish("btcusdt@depth", depth(u))
    await marker(sim, client, 0)
    return [m["u"] for m in client.messages() if m.get("e") == "depthUpdate"]


async def test_skip_depth_events_makes_a_gap(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@depth/btcusdt@trade")
    sim.faults.skip(2)
    assert await sequence(sim, client, range(1, 6)) == [3, 4, 5]
    assert sim.faults.counts["skipped"] == 2


async def test_duplicate_depth_events(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@depth/btcusdt@trade")
    sim.faults.duplicate(1)
    assert await sequence(sim, client, range(1, 4)) == [1, 1, 2, 3]


async def test_reorder_depth_events(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@depth/btcusdt@trade")
    sim.faults.reorder(3)
    assert await sequence(sim, client, range(1, 6)) == [3, 2, 1, 4, 5]
    assert sim.hub.filter is None, "the filter leaves the hot path once its events are done"


async def test_sequence_faults_leave_other_streams_alone(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@depth/btcusdt@trade")
    sim.faults.skip(5)
    await marker(sim, client, 1)
    await marker(sim, client, 2)
    assert client.messages() == [trade(1), trade(2)]


# -- serverShutdown --------------------------------------------------------------------------------------
async def test_server_shutdown_raw_then_close(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    started = time.monotonic()
    sim.faults.server_shutdown(delay_s=0.3)
    notice = await client.next_text()
    assert set(notice) == {"e", "E"} and notice["e"] == "serverShutdown"
    await marker(sim, client, 1)  # data still flows until the close
    assert await client.closed() == (1001, "")
    assert time.monotonic() - started >= 0.3


async def test_server_shutdown_combined_form(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/stream?streams=btcusdt@trade")
    sim.faults.server_shutdown(delay_s=0.05)
    notice = await client.next_text()
    assert notice["stream"] == "!serverShutdown" and notice["data"]["e"] == "serverShutdown"
    assert await client.closed() == (1001, "")


async def test_server_shutdown_ws_api_form(sim: QuietSim) -> None:
    install_echo_wsapi(sim)
    client = await connect(f"{sim.stream_url}/ws-api/v3")
    sim.faults.server_shutdown(delay_s=0.05)
    notice = await client.next_text()
    assert set(notice) == {"event"} and notice["event"]["e"] == "serverShutdown"
    assert await client.closed() == (1001, "")


# -- refusals and REST knobs ---------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 503])
async def test_refuse_the_next_handshakes(sim: QuietSim, status: int) -> None:
    sim.faults.refuse(status, count=2)
    for _ in range(2):
        with pytest.raises(WSInvalidStatusError) as info:
            await ws_connect(RawClient, f"{sim.stream_url}/ws")
        assert info.value.response is not None and info.value.response.status == status
    await connect(f"{sim.stream_url}/ws")
    assert sim.faults.counts["refused"] == 2


async def test_refuse_until_accepted(sim: QuietSim) -> None:
    sim.faults.refuse(503)
    with pytest.raises(WSInvalidStatusError):
        await ws_connect(RawClient, f"{sim.stream_url}/ws")
    sim.faults.accept()
    await connect(f"{sim.stream_url}/ws")


def test_rest_knobs_and_clear() -> None:
    faults = QuietSim().faults
    assert (faults.rest_delay_s, faults.rest_fail_status, faults.rest_fail_count) == (0.0, None, 0)
    faults.rest_delay_s, faults.rest_fail_status, faults.rest_fail_count = 0.5, 503, 2
    faults.clear()
    assert (faults.rest_delay_s, faults.rest_fail_status, faults.rest_fail_count) == (0.0, None, 0)


# -- the sequence filter as a pure function of what is published -----------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["skip", "duplicate", "reorder"]), st.integers(min_value=2, max_value=6),
       st.integers(min_value=0, max_value=12))
def test_sequence_faults_change_exactly_n_events(action: str, n: int, events: int) -> None:
    sim = QuietSim()
    getattr(sim.faults, action)(n)
    out: list[int] = []
    for u in range(events):
        if sim.hub.filter is None:
            out.append(u)
        else:
            out.extend(p["u"] for p in sim.hub.filter("btcusdt@depth", {"u": u}))
        # Other streams pass untouched whatever the rule.
        if sim.hub.filter is not None:
            assert list(sim.hub.filter("btcusdt@trade", {"t": u})) == [{"t": u}]
    k = min(n, events)
    if action == "skip":
        assert out == list(range(k, events))
    elif action == "duplicate":
        assert out == [u for u in range(k) for _ in (0, 1)] + list(range(k, events))
    elif events >= n:
        assert out == list(range(n))[::-1] + list(range(n, events))
    else:
        assert out == []  # still held: fewer events than the reorder needs
    assert (sim.hub.filter is None) == (events >= n)
