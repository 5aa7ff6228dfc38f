"""The stream server over real loopback sockets: paths, wrappers, time unit, control messages, refusals."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from picows import WSInvalidStatusError, WSMsgType, ws_connect

from binance_ws.sim import Simulator
from binance_ws.sim.config import SimConfig
from binance_ws.sim.server import StreamControl, parse_path
from tests.sim._client import QuietSim, RawClient, connect, depth, install_echo_wsapi, trade


@pytest.fixture
async def sim() -> AsyncIterator[QuietSim]:
    async with QuietSim() as s:
        yield s


async def refused(url: str) -> tuple[int, dict]:
    """Status and JSON body of a refused handshake."""
    with pytest.raises(WSInvalidStatusError) as info:
        await ws_connect(RawClient, url)
    response = info.value.response
    assert response is not None
    body = info.value.raw_body or b""
    return int(response.status), orjson.loads(body) if body.startswith(b"{") else {"text": body.decode()}


# -- paths and wrappers -------------------------------------------------------------------------------------
async def test_raw_path_delivers_unwrapped_payload(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    sim.hub.publish("btcusdt@trade", trade(1))
    assert await client.next_text() == trade(1)


async def test_raw_path_with_several_streams(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade/btcusdt@depth")
    sim.hub.publish("btcusdt@trade", trade(1))
    sim.hub.publish("btcusdt@depth", depth(7))
    await client.wait_for(lambda: len(client.texts()) == 2)
    assert client.messages() == [trade(1), depth(7)]


async def test_combined_path_wraps_with_stream_first(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/stream?streams=btcusdt@trade/ethusdt@trade")
    sim.hub.publish("ethusdt@trade", trade(2))
    await client.wait_for(lambda: bool(client.texts()))
    raw = client.texts()[0]
    assert raw.startswith(b'{"stream":"ethusdt@trade","data":')
    assert orjson.loads(raw) == {"stream": "ethusdt@trade", "data": trade(2)}


async def test_url_encoded_names_are_accepted(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/stream?streams=btcusdt%40trade%2Fbtcusdt%40depth")
    assert await client.request({"method": "LIST_SUBSCRIPTIONS", "id": 1}) == \
        {"result": ["btcusdt@trade", "btcusdt@depth"], "id": 1}


async def test_bare_paths_open_empty_connections(sim: QuietSim) -> None:
    raw = await connect(f"{sim.stream_url}/ws")
    combined = await connect(f"{sim.stream_url}/stream")
    assert await raw.request({"method": "GET_PROPERTY", "params": ["combined"], "id": 1}) == \
        {"result": False, "id": 1}
    assert await combined.request({"method": "GET_PROPERTY", "params": ["combined"], "id": 1}) == \
        {"result": True, "id": 1}


@pytest.mark.parametrize("unit", ["MICROSECOND", "microsecond"])
async def test_time_unit_microsecond(sim: QuietSim, unit: str) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade?timeUnit={unit}")
    sim.hub.publish("btcusdt@trade", trade(1))
    msg = await client.next_text()
    assert (msg["E"], msg["T"], msg["t"]) == (trade(1)["E"] * 1000, trade(1)["T"] * 1000, trade(1)["t"])


@pytest.mark.parametrize("unit", ["MILLISECOND", "millisecond"])
async def test_time_unit_millisecond(sim: QuietSim, unit: str) -> None:
    client = await connect(f"{sim.stream_url}/stream?streams=btcusdt@trade&timeUnit={unit}")
    sim.hub.publish("btcusdt@trade", trade(1))
    assert (await client.next_text())["data"] == trade(1)


async def test_bad_time_unit_is_refused(sim: QuietSim) -> None:
    status, body = await refused(f"{sim.stream_url}/ws/btcusdt@trade?timeUnit=NANOSECOND")
    assert (status, body["code"]) == (400, -1194)


async def test_unknown_stream_in_url_is_accepted_and_silent(sim: QuietSim) -> None:
    # As on Binance (ccxt pro connects to /ws/<its own name>, then SUBSCRIBEs): the handshake succeeds,
    # the unknown name sends nothing and is not listed; the known name in the same URL is served.
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade/nosuch@trade")
    assert await client.request({"method": "LIST_SUBSCRIPTIONS", "id": 1}) == \
        {"result": ["btcusdt@trade"], "id": 1}
    sim.hub.publish("nosuch@trade", trade(0))
    sim.hub.publish("btcusdt@trade", trade(1))
    await client.wait_for(lambda: len(client.texts()) == 2)
    assert client.messages()[1] == trade(1)
    upper = await connect(f"{sim.stream_url}/stream?streams=BTCUSDT@trade")
    assert await upper.request({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": "ccxt-1"}) == \
        {"result": None, "id": "ccxt-1"}
    sim.hub.publish("btcusdt@trade", trade(2))
    assert await upper.next_text(1) == {"stream": "btcusdt@trade", "data": trade(2)}


async def test_too_many_streams_in_url_is_refused_counting_unknown_names(sim: QuietSim) -> None:
    names = "/".join(f"x{i}@trade" for i in range(sim.config.max_streams_per_connection + 1))
    assert await refused(f"{sim.stream_url}/ws/{names}") == \
        (400, {"code": 2, "msg": "Invalid request: too many streams"})


async def test_unknown_path_is_404(sim: QuietSim) -> None:
    assert (await refused(f"{sim.stream_url}/nowhere"))[0] == 404


@pytest.fixture
def echo_wsapi(sim: QuietSim) -> None:
    install_echo_wsapi(sim)


async def test_ws_api_path_without_a_listener_is_404(sim: QuietSim) -> None:
    sim.stream_server.ws_api = None
    assert (await refused(f"{sim.stream_url}/ws-api/v3"))[0] == 404


async def test_ws_api_path_is_routed_to_the_listener(sim: QuietSim, echo_wsapi: None) -> None:
    client = await connect(f"{sim.stream_url}/ws-api/v3")
    client.send_text(b'{"method":"ping","id":1}')
    await client.wait_for(lambda: bool(client.texts()))
    assert client.texts() == [b'echo:{"method":"ping","id":1}']
    # Pings are the server's business, not the listener's.
    assert client.transport is not None
    client.transport.send_ping(b"p")
    await client.wait_for(lambda: client.of_type(WSMsgType.PONG) == [b"p"])


async def test_two_subscribers_get_one_encoding_each(sim: QuietSim) -> None:
    raw = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    micro = await connect(f"{sim.stream_url}/stream?streams=btcusdt@trade&timeUnit=MICROSECOND")
    sim.hub.publish("btcusdt@trade", trade(3))
    assert await raw.next_text() == trade(3)
    assert (await micro.next_text())["data"]["E"] == trade(3)["E"] * 1000


# -- control messages ---------------------------------------------------------------------------------------
async def test_subscribe_unsubscribe_list(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws")
    assert await client.request({"method": "SUBSCRIBE", "params": ["btcusdt@trade", "btcusdt@depth"],
                                 "id": 1}) == {"result": None, "id": 1}
    sim.hub.publish("btcusdt@trade", trade(1))
    await client.wait_for(lambda: len(client.texts()) == 2)
    assert client.messages()[-1] == trade(1)
    assert await client.request({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 312}) == \
        {"result": None, "id": 312}
    assert await client.request({"method": "LIST_SUBSCRIPTIONS", "id": 3}) == \
        {"result": ["btcusdt@depth"], "id": 3}
    sim.hub.publish("btcusdt@trade", trade(2))
    sim.hub.publish("btcusdt@depth", depth(9))
    await client.wait_for(lambda: client.messages()[-1] == depth(9))
    assert trade(2) not in client.messages()


async def test_raw_reply_bytes_match_binance(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws")
    client.send_text(b'{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}')
    await client.wait_for(lambda: bool(client.texts()))
    assert client.texts()[0] == b'{"result":null,"id":1}'


async def test_set_property_combined_wraps_later_payloads(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    assert await client.request({"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}) == \
        {"result": None, "id": 5}
    assert await client.request({"method": "GET_PROPERTY", "params": ["combined"], "id": 2}) == \
        {"result": True, "id": 2}
    before = len(client.texts())
    sim.hub.publish("btcusdt@trade", trade(1))
    assert await client.next_text(before) == {"stream": "btcusdt@trade", "data": trade(1)}


async def test_invalid_stream_error_has_the_observed_nested_shape(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws")
    client.send_text(b'{"method":"SUBSCRIBE","params":["btcusdt@trade","nosuch@x"],"id":2}')
    await client.wait_for(lambda: bool(client.texts()))
    assert client.texts()[0] == b'{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}'
    # All or nothing: the valid name was not subscribed either.
    assert await client.request({"method": "LIST_SUBSCRIPTIONS", "id": 3}) == {"result": [], "id": 3}


async def test_invalid_json_error_has_the_observed_shape(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws")
    client.send_text(b'{"method": SUBSCRIBE')
    await client.wait_for(lambda: bool(client.texts()))
    assert client.texts()[0] == b'{"id":null,"error":{"code":3,"msg":"Invalid json"}}'


@pytest.mark.parametrize(("request_id", "ok"), [
    (1, True), (-5, True), (2 ** 63 - 1, True), (-(2 ** 63), True), (None, True),
    ("abc123", True), ("a" * 36, True), ("a-b", True), ("a_b", True),
    ("0b8e4a52-3c5e-4c47-9b1f-2f6a1f1d9e7c", True),  # binance-sdk-spot's uuid4 id
    ("a" * 37, False), ("a b", False), ("a.b", False), ("é", False), ("", False),
    (1.5, False), (True, False), ([1], False),
    (2 ** 63, False),
])
async def test_id_rules(sim: QuietSim, request_id: object, ok: bool) -> None:
    client = await connect(f"{sim.stream_url}/ws")
    reply = await client.request({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
    if ok:
        assert reply == {"result": [], "id": request_id}
    else:
        msg = "Invalid request: request ID must be an unsigned integer"
        assert reply == {"error": {"code": 2, "msg": msg}, "id": None}


@pytest.mark.parametrize(("msg", "code", "text"), [
    ({"method": "SET_PROPERTY", "params": ["colour", True], "id": 1}, 0, "Unknown property"),
    ({"method": "GET_PROPERTY", "params": ["colour"], "id": 1}, 0, "Unknown property"),
    ({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 1}, 1,
     "Invalid value type: expected Boolean"),
    ({"method": "SET_PROPERTY", "params": ["combined"], "id": 1}, 1, "Invalid value type: expected Boolean"),
    ({"method": "SET_PROPERTY", "params": [5, True], "id": 1}, 2,
     "Invalid request: property name must be a string"),
    ({"method": "GET_PROPERTY", "params": [], "id": 1}, 2, "Invalid request: property name must be a string"),
    ({"method": "SET_PROPERTY", "params": ["combined", True, 1], "id": 1}, 2,
     "Invalid request: too many parameters"),
    ({"method": "LIST_SUBSCRIPTIONS", "params": ["x"], "id": 1}, 2, "Invalid request: too many parameters"),
    ({"method": "SUBSCRIBE", "params": [1], "id": 1}, 2, "Invalid request: invalid stream"),
    ({"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 1}, 2,
     "Invalid request: params must be an array"),
])
async def test_documented_errors(sim: QuietSim, msg: dict, code: int, text: str) -> None:
    client = await connect(f"{sim.stream_url}/ws")
    assert await client.request(msg) == {"error": {"code": code, "msg": text}, "id": 1}


async def test_unknown_method_and_missing_method_use_serde_wording(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws")
    unknown = await client.request(b'{"method":"subscribe","params":[],"id":7}')
    assert unknown["id"] == 7 and unknown["error"]["code"] == 2
    assert unknown["error"]["msg"] == (
        "Invalid request: unknown variant `subscribe`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, "
        "`LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 21")
    missing = await client.request(b'{"params":[],"id":8}')
    msg = "Invalid request: missing field `method` at line 1 column 20"
    assert missing == {"error": {"code": 2, "msg": msg}, "id": 8}


async def test_client_ping_is_answered_with_its_payload(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws")
    assert client.transport is not None
    client.transport.send_ping(b"hello")
    await client.wait_for(lambda: bool(client.of_type(WSMsgType.PONG)))
    assert client.of_type(WSMsgType.PONG) == [b"hello"]


async def test_client_close_is_echoed(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws/btcusdt@trade")
    client.close()
    await client.wait_for(lambda: client.disconnected)
    await client.wait_for(lambda: not sim.stream_server.connections)
    assert not sim.hub.has_subscribers("btcusdt@trade")


async def test_fragmented_control_message_is_reassembled(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/ws")
    assert client.transport is not None
    client.transport.send(WSMsgType.TEXT, b'{"method":"LIST_SUB', fin=False)
    client.transport.send(WSMsgType.CONTINUATION, b'SCRIPTIONS","id":4}', fin=True)
    assert await client.next_text() == {"result": [], "id": 4}


# -- the control protocol as a pure state machine ----------------------------------------------------------
NAMES = ["a@trade", "b@trade", "c@depth", "d@depth", "bad"]


@given(st.lists(st.tuples(st.sampled_from(["SUBSCRIBE", "UNSUBSCRIBE"]),
                          st.lists(st.sampled_from(NAMES), max_size=4)), max_size=30))
def test_control_keeps_a_consistent_bounded_subscription_set(ops: list[tuple[str, list[str]]]) -> None:
    control = StreamControl(combined=False, max_streams=3, stream_exists=lambda n: n != "bad")
    model: dict[str, None] = {}
    for i, (method, params) in enumerate(ops):
        result = control.handle(orjson.dumps({"method": method, "params": params, "id": i}))
        reply = orjson.loads(result.reply)
        if "bad" in params:
            assert reply["error"]["msg"] == "Invalid request: invalid stream"
            assert (result.added, result.removed) == ([], [])
        elif method == "SUBSCRIBE":
            new = [n for n in dict.fromkeys(params) if n not in model]
            if len(model) + len(new) > 3:
                assert reply["error"]["msg"] == "Invalid request: too many streams"
            else:
                assert result.added == new
                model.update(dict.fromkeys(new))
        else:
            assert set(result.removed) == {n for n in params if n in model}
            for n in params:
                model.pop(n, None)
        assert list(control.streams) == list(model)
        assert len(control.streams) <= 3


@given(st.binary(max_size=64))
def test_control_answers_any_bytes_with_one_json_object(data: bytes) -> None:
    control = StreamControl(combined=True, max_streams=5, stream_exists=lambda n: True)
    reply = orjson.loads(control.handle(data).reply)
    assert isinstance(reply, dict) and "id" in reply and ("result" in reply or "error" in reply)


def test_parse_path_forms() -> None:
    assert parse_path(b"/ws/a@trade/b@depth").streams == ["a@trade", "b@depth"]  # type: ignore[union-attr]
    route = parse_path(b"/stream?streams=a@trade/a@trade&timeUnit=microsecond")
    assert route is not None and route.streams == ["a@trade"] and route.combined and route.micro
    assert parse_path(b"/elsewhere") is None


# -- blast mode ---------------------------------------------------------------------------------------------
async def test_blast_sends_count_consecutive_trades_across_chunks(sim: QuietSim) -> None:
    count = 25_000  # spans three pre-generated chunks
    client = await connect(f"{sim.stream_url}/blast?stream=ethusdt@trade&count={count}")
    await client.wait_for(lambda: len(client.frames) >= count, timeout=20)
    msgs = client.messages()
    assert len(msgs) == count
    assert [m["t"] for m in msgs] == list(range(3_735_680_000, 3_735_680_000 + count))
    assert {m["s"] for m in msgs} == {"ETHUSDT"} and all(m["E"] == m["T"] for m in msgs)


async def test_blast_combined_and_micro(sim: QuietSim) -> None:
    url = f"{sim.stream_url}/blast?stream=btcusdt@trade&count=3&combined=1&timeUnit=MICROSECOND"
    client = await connect(url)
    await client.wait_for(lambda: len(client.texts()) == 3)
    first = client.messages()[0]
    assert first["stream"] == "btcusdt@trade" and first["data"]["e"] == "trade"
    assert len(str(first["data"]["E"])) == 16


async def test_blast_at_a_fixed_rate_is_paced(sim: QuietSim) -> None:
    client = await connect(f"{sim.stream_url}/blast?stream=btcusdt@trade&count=100&rate=500")
    started = time.monotonic()
    await client.wait_for(lambda: len(client.texts()) == 100)
    assert time.monotonic() - started >= 0.1  # 100 messages at 500/s take 0.2 s from the server side


async def test_blast_refuses_a_non_trade_stream(sim: QuietSim) -> None:
    assert (await refused(f"{sim.stream_url}/blast?stream=btcusdt@depth"))[0] == 400
    assert (await refused(f"{sim.stream_url}/blast?stream=btcusdt@trade&count=x"))[0] == 400


async def test_ws_api_path_reaches_the_simulator_ws_api(sim: QuietSim) -> None:
    client = await connect(sim.ws_api_url)
    reply = await client.request({"id": 1, "method": "ping"})
    assert (reply["id"], reply["status"], reply["result"]) == (1, 200, {})


async def test_mini_ticker_array_speed_forms_python_binance_asks_for() -> None:
    # python-binance's miniticker_socket() connects to /ws/!miniTicker@arr@<n>ms; Binance streams the
    # 1000 ms and 3000 ms forms (python-binance #267). Ticker cadence 0.1 s here, so 3000 ms is 0.3 s.
    cfg = dataclasses.replace(SimConfig(flow_rate=400.0, seed=3), ticker_s=0.1)
    async with Simulator(cfg) as sim:
        fast = await connect(f"{sim.stream_url}/ws/!miniTicker@arr@1000ms")
        slow = await connect(f"{sim.stream_url}/stream?streams=!miniTicker@arr@3000ms")
        t0 = time.monotonic()
        await fast.wait_for(lambda: len(fast.texts()) >= 6)
        await slow.wait_for(lambda: len(slow.texts()) >= 2)
        elapsed = time.monotonic() - t0
    for batch in fast.messages():
        assert batch and all(m["e"] == "24hrMiniTicker" for m in batch)
    for wrapped in slow.messages():
        assert wrapped["stream"] == "!miniTicker@arr@3000ms" and wrapped["data"][0]["e"] == "24hrMiniTicker"
    # Three ticker pushes per slow push: the slow stream cannot keep up with the fast one.
    assert len(slow.texts()) <= len(fast.texts()) // 3 + 1, elapsed


async def test_plus_in_a_combined_url_is_a_plus(sim: QuietSim) -> None:
    # "@+08:00" klines (PROTOCOL 4.5) travel unencoded in /stream?streams=...; a "+" is not a space there.
    client = await connect(f"{sim.stream_url}/stream?streams=btcusdt@kline_1m@+08:00")
    assert await client.request({"method": "LIST_SUBSCRIPTIONS", "id": 1}) == \
        {"result": ["btcusdt@kline_1m@+08:00"], "id": 1}
