"""Each stream-server limit, with time compressed through SimConfig, seen from a raw client."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from picows import WSInvalidStatusError, WSMsgType, ws_connect

from binance_ws.sim.server import AttemptLimiter, IncomingLimit, PingTracker
from tests.sim._client import QuietSim, RawClient, connect, install_echo_wsapi, trade


# -- streams per connection ---------------------------------------------------------------------------------
async def test_url_with_too_many_streams_is_refused() -> None:
    async with QuietSim(max_streams_per_connection=2) as sim:
        with pytest.raises(WSInvalidStatusError) as info:
            await ws_connect(RawClient, f"{sim.stream_url}/ws/btcusdt@trade/ethusdt@trade/bnbbtc@trade")
        assert info.value.response is not None and info.value.response.status == 400
        await connect(f"{sim.stream_url}/ws/btcusdt@trade/ethusdt@trade")


async def test_subscribe_past_the_stream_limit_is_an_error_and_keeps_the_connection() -> None:
    async with QuietSim(max_streams_per_connection=2) as sim:
        client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
        reply = await client.request({"method": "SUBSCRIBE", "params": ["ethusdt@trade", "bnbbtc@trade"],
                                      "id": 1})
        assert reply == {"error": {"code": 2, "msg": "Invalid request: too many streams"}, "id": 1}
        assert await client.request({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 2}) == \
            {"result": None, "id": 2}
        assert await client.request({"method": "LIST_SUBSCRIPTIONS", "id": 3}) == \
            {"result": ["btcusdt@trade", "ethusdt@trade"], "id": 3}


# -- incoming message rate -------------------------------------------------------------------------------
async def test_messages_within_the_rate_are_answered() -> None:
    async with QuietSim(max_incoming_per_second=5) as sim:
        client = await connect(f"{sim.stream_url}/ws")
        for i in range(5):
            client.send_text(b'{"method":"LIST_SUBSCRIPTIONS","id":%d}' % i)
        await client.wait_for(lambda: len(client.texts()) == 5)
        assert not client.disconnected


async def test_one_message_too_many_closes_with_1008() -> None:
    async with QuietSim(max_incoming_per_second=5) as sim:
        client = await connect(f"{sim.stream_url}/ws")
        for i in range(6):
            client.send_text(b'{"method":"LIST_SUBSCRIPTIONS","id":%d}' % i)
        assert await client.closed() == (1008, "Too many requests")
        assert len(client.texts()) == 5


@pytest.mark.parametrize("kind", ["ping", "pong"])
async def test_pings_and_pongs_count_toward_the_rate(kind: str) -> None:
    async with QuietSim(max_incoming_per_second=3) as sim:
        client = await connect(f"{sim.stream_url}/ws")
        assert client.transport is not None
        send = client.transport.send_ping if kind == "ping" else client.transport.send_pong
        for _ in range(4):
            send(b"")
        assert await client.closed() == (1008, "Too many requests")


# -- connection attempts per IP ------------------------------------------------------------------------------
async def test_connection_attempts_past_the_window_limit_get_429() -> None:
    async with QuietSim(max_connections_per_window=3, connection_window_s=60) as sim:
        url = f"{sim.stream_url}/ws/btcusdt@trade"
        for _ in range(3):
            (await connect(url)).close()
        with pytest.raises(WSInvalidStatusError) as info:
            await ws_connect(RawClient, url)
        response = info.value.response
        assert response is not None and response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        # The limit is per IP: another loopback address still gets in.
        other = await connect(url, ws_local_addr=("127.0.0.2", 0))
        assert other.transport is not None and other.transport.response.status == 101


async def test_attempts_are_allowed_again_after_the_window() -> None:
    async with QuietSim(max_connections_per_window=1, connection_window_s=0.3) as sim:
        url = f"{sim.stream_url}/ws"
        await connect(url)
        with pytest.raises(WSInvalidStatusError):
            await ws_connect(RawClient, url)
        await asyncio.sleep(0.35)
        await connect(url)


async def test_ws_api_handshakes_count_toward_the_same_attempt_limit() -> None:
    async with QuietSim(max_connections_per_window=2, connection_window_s=60) as sim:
        install_echo_wsapi(sim)
        await connect(f"{sim.stream_url}/ws")
        await connect(f"{sim.stream_url}/ws-api/v3")
        with pytest.raises(WSInvalidStatusError) as info:
            await ws_connect(RawClient, f"{sim.stream_url}/ws-api/v3")
        assert info.value.response is not None and info.value.response.status == 429


# -- server pings -----------------------------------------------------------------------------------------
async def test_server_pings_and_a_client_that_pongs_stays_connected() -> None:
    async with QuietSim(ping_interval_s=0.1, pong_timeout_s=0.3) as sim:
        client = await connect(f"{sim.stream_url}/ws")
        await client.wait_for(lambda: len(client.of_type(WSMsgType.PING)) >= 5)
        pings = client.of_type(WSMsgType.PING)
        assert len(set(pings)) == len(pings), "each ping carries its own payload"
        assert not client.disconnected


async def test_no_pong_closes_after_the_timeout() -> None:
    async with QuietSim(ping_interval_s=0.1, pong_timeout_s=0.3) as sim:
        client = await connect(f"{sim.stream_url}/ws", answer_pings=False)
        started = time.monotonic()
        assert await client.closed() == (1008, "Pong timeout")
        assert time.monotonic() - started >= 0.2  # 0.4 s after the server accepted, less handshake time


async def test_unsolicited_or_wrong_pongs_do_not_keep_a_connection_alive() -> None:
    async with QuietSim(ping_interval_s=0.1, pong_timeout_s=0.3, max_incoming_per_second=100) as sim:
        client = await connect(f"{sim.stream_url}/ws", answer_pings=False)
        assert client.transport is not None
        for _ in range(20):
            if client.disconnected:
                break
            client.transport.send_pong(b"")
            client.transport.send_pong(b"not-the-payload")
            await asyncio.sleep(0.05)
        assert await client.closed() == (1008, "Pong timeout")


# -- lifetime -------------------------------------------------------------------------------------------
async def test_connection_closes_at_its_lifetime_with_1001_and_nothing_else() -> None:
    async with QuietSim(connection_lifetime_s=0.5) as sim:
        client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
        started = time.monotonic()
        assert await client.closed() == (1001, "")
        assert time.monotonic() - started >= 0.3  # lifetime counted from the server side of the handshake
        assert client.texts() == []


async def test_ws_api_connections_share_lifetime_and_pings() -> None:
    async with QuietSim(ping_interval_s=0.1, pong_timeout_s=0.3, connection_lifetime_s=5) as sim:
        install_echo_wsapi(sim)
        client = await connect(f"{sim.stream_url}/ws-api/v3", answer_pings=False)
        await client.wait_for(lambda: bool(client.of_type(WSMsgType.PING)))
        assert await client.closed() == (1008, "Pong timeout")


# -- slow consumers -------------------------------------------------------------------------------------
async def test_slow_consumer_is_closed_before_the_buffer_passes_its_cap() -> None:
    async with QuietSim() as sim:
        cap = 512 * 1024
        sim.stream_server.max_send_buffer = cap
        client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
        assert client.transport is not None
        client.transport.underlying_transport.pause_reading()
        (conn,) = sim.stream_server.connections.values()
        payload = {**trade(0), "pad": "x" * 1000}
        burst = 200  # frames published per loop iteration, written together
        peak = 0
        for _ in range(400):  # enough to fill the kernel buffers on both sides and then the cap
            for _ in range(burst):
                sim.hub.publish("btcusdt@trade", payload)
            await asyncio.sleep(0)
            if conn.transport is not None and not conn.transport.is_disconnected:
                peak = max(peak, conn.transport.underlying_transport.get_write_buffer_size())
            if not sim.hub.has_subscribers("btcusdt@trade"):
                break
        assert not sim.hub.has_subscribers("btcusdt@trade")
        assert cap < peak <= cap + burst * 1200
        client.transport.underlying_transport.resume_reading()
        assert await client.closed() == (1008, "Send buffer full")
        assert len(client.texts()) > 0


# -- the pure limit objects ----------------------------------------------------------------------------------
@given(st.lists(st.floats(min_value=0, max_value=0.5), max_size=60), st.integers(min_value=1, max_value=10))
def test_incoming_limit_never_admits_more_than_the_limit_in_any_window(gaps: list[float], limit: int) -> None:
    rate = IncomingLimit(limit)
    now, admitted = 0.0, []
    for gap in gaps:
        now += gap
        if rate.allow(now):
            admitted.append(now)
    for i, t in enumerate(admitted):
        assert sum(1 for u in admitted[i:] if u - t < 1.0) <= limit


@given(st.lists(st.floats(min_value=0, max_value=1.0), max_size=40))
def test_attempt_limiter_allows_exactly_the_limit_per_window(gaps: list[float]) -> None:
    limiter = AttemptLimiter(3, 2.0)
    now, history = 0.0, []
    for gap in gaps:
        now += gap
        recent = sum(1 for t in history if now - t < 2.0)
        allowed = limiter.attempt("ip", now) == 0.0
        assert allowed == (recent < 3)
        history.append(now)


def test_ping_tracker_settles_older_pings_and_ignores_unknown_pongs() -> None:
    pings = PingTracker(timeout_s=1.0)
    pings.sent(b"1", 0.0)
    pings.sent(b"2", 0.5)
    assert not pings.pong(b"")
    assert pings.deadline() == 1.0 and pings.expired(1.0)
    assert pings.pong(b"2")
    assert pings.outstanding == 0 and not pings.expired(10.0)


# -- frame size -----------------------------------------------------------------------------------------
async def test_a_client_frame_past_max_frame_size_closes_with_1009() -> None:
    async with QuietSim(max_frame_size=1024) as sim:
        client = await connect(f"{sim.stream_url}/ws")
        client.send_text(b'{"method":"LIST_SUBSCRIPTIONS","id":1,"pad":"' + b"x" * 2048 + b'"}')
        code_reason = await client.closed()
        assert code_reason is not None and code_reason[0] == 1009


@given(st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=12)), max_size=40))
def test_ping_tracker_matches_a_model(ops: list[tuple[bool, int]]) -> None:
    """Model: an ordered list of (payload, sent_at); a pong for a listed payload removes it and all older."""
    pings = PingTracker(timeout_s=5.0)
    model: list[tuple[bytes, float]] = []
    now = 0.0
    for send, k in ops:
        now += 1.0
        payload = b"%d" % k
        if send:
            if all(p != payload for p, _ in model):
                pings.sent(payload, now)
                model.append((payload, now))
        else:
            index = next((i for i, (p, _) in enumerate(model) if p == payload), None)
            assert pings.pong(payload) == (index is not None)
            if index is not None:
                del model[:index + 1]
        assert pings.outstanding == len(model)
        assert pings.deadline() == (model[0][1] + 5.0 if model else None)
        assert pings.expired(now) == bool(model and now >= model[0][1] + 5.0)
