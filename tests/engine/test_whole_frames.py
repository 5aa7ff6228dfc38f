"""Whole-frame reading: a connection whose routes all take one decoding of the whole frame (one typed
model, or dicts for one callback each) decodes first and routes by ``stream``; raw callbacks are called
from the split; any other mix, and any frame that does not decode, goes through the byte split and the
routes. All must deliver the same thing."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import orjson
import pytest

from binance_ws import errors
from binance_ws.core.sequence import SequenceTracker, TradeTracker
from binance_ws.engine import AsyncSocketManager
from binance_ws.engine.delivery import RawMessage, Subscription
from binance_ws.engine.router import RAW_SPLIT, WHOLE_DICT, Route, RouteTable, route_key
from binance_ws.models import Trade, codec_of, decoder_for
from binance_ws.sim import Simulator
from tests.engine._util import rotating_market, rotation_simulator, until

TRADES = ["btcusdt@trade", "ethusdt@trade"]


def _mode(sm: AsyncSocketManager) -> str:
    link = sm.connections[0].link
    assert link is not None
    return link.on_ws_frame.__func__.__name__  # type: ignore[attr-defined]


def _ids_in_order(ids: list[int]) -> bool:
    return ids == list(range(ids[0], ids[0] + len(ids)))


# -- the table, without sockets ----------------------------------------------------------------------

class _Listener:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def use_frames(self, whole: Any, by_name: dict[str, Any]) -> None:
        self.calls.append((whole, by_name))


class _Rare:
    rare = True

    def feed(self, data: bytes) -> None:
        pass


class _Side:
    def feed(self, data: bytes) -> None:
        pass


def _route(name: str, decode: Any, wrap: bool = False) -> Route:
    route = Route(name)
    route.add(Subscription([name], lambda m: None, decode=decode, wrap=wrap))
    return route


def test_table_reads_whole_frames_only_when_every_route_shares_one_decoding() -> None:
    table, listener = RouteTable(), _Listener()
    table.attach(listener)  # no running loop: recomputed at once
    envelope = codec_of(decoder_for("btcusdt@trade"))
    assert envelope is not None
    btc, eth = (_route(s, decoder_for(s)) for s in TRADES)
    table[route_key("btcusdt@trade")] = btc
    table[route_key("ethusdt@trade")] = eth
    table[b"rare"] = _Rare()
    whole, by_name = listener.calls[-1]
    assert whole is envelope.envelope
    assert by_name == {"btcusdt@trade": btc.whole_target, "ethusdt@trade": eth.whole_target}

    # Another model on the same socket: bytes again.
    table[route_key("btcusdt@aggTrade")] = _route("btcusdt@aggTrade", decoder_for("btcusdt@aggTrade"))
    assert listener.calls[-1] == (None, {})
    table.pop(route_key("btcusdt@aggTrade"))
    assert listener.calls[-1][0] is envelope.envelope

    # A second subscriber on one stream changes that route's decoding, and the table hears of it.
    extra = Subscription(["btcusdt@trade"], lambda m: None)
    btc.add(extra)
    assert listener.calls[-1] == (None, {})
    btc.remove(extra)
    assert listener.calls[-1][0] is envelope.envelope

    # A handover side (not a route, not rare) stops it too.
    table[route_key("ethusdt@trade")] = _Side()
    assert listener.calls[-1] == (None, {})
    # ...and the replaced route no longer reports to this table.
    calls = len(listener.calls)
    eth.add(Subscription(["ethusdt@trade"], lambda m: None))
    assert len(listener.calls) == calls


def test_table_dict_routes_and_what_never_reads_whole() -> None:
    table, listener = RouteTable(), _Listener()
    table.attach(listener)
    for s in TRADES:
        table[route_key(s)] = _route(s, "dict", wrap=True)
    assert listener.calls[-1][0] is WHOLE_DICT
    # Plain dicts for one callback read the same decoded frame (they get its "data").
    table[route_key("x@trade")] = _route("x@trade", "dict")
    assert listener.calls[-1][0] is WHOLE_DICT
    assert listener.calls[-1][1]["x@trade"][4] is False  # not wrapped
    table.pop(route_key("x@trade"))
    # User decoders and raw routes mixed in keep the byte split.
    for decode in ("raw", lambda data: data):
        table[route_key("x@trade")] = _route("x@trade", decode)
        assert listener.calls[-1] == (None, {}), decode
        table.pop(route_key("x@trade"))
    table[route_key("x@trade")] = Route("x@trade")  # no subscriber yet
    assert listener.calls[-1] == (None, {})


def test_table_raw_callbacks_are_called_by_the_socket_itself() -> None:
    table, listener = RouteTable(), _Listener()
    table.attach(listener)
    callbacks = {s: (lambda m: None) for s in TRADES}
    routes = {s: Route(s, SequenceTracker.for_stream(s)) for s in TRADES}
    for s in TRADES:
        routes[s].add(Subscription([s], callbacks[s], decode="raw"))
        table[route_key(s)] = routes[s]
    plain = Route("btcusdt@ticker")
    plain.add(Subscription([plain.name], callbacks[TRADES[0]], decode="raw"))
    table[route_key(plain.name)] = plain
    whole, by_key = listener.calls[-1]
    assert whole is RAW_SPLIT
    # The callback and stream, and what the socket needs to check the sequence from the bytes: the id
    # reader and tracker for its in-order case, the route's admit_raw for the rest (none for a ticker).
    assert by_key == {route_key(s): (callbacks[s], s, TradeTracker.read_id, routes[s].tracker,
                                     routes[s].admit_raw) for s in TRADES} | {
        route_key(plain.name): (callbacks[TRADES[0]], plain.name, None, None, None)}


async def test_table_recomputes_once_per_loop_turn_and_reads_bytes_meanwhile() -> None:
    table, listener = RouteTable(), _Listener()
    table.attach(listener)
    routes = [_route(f"s{i}@trade", decoder_for("btcusdt@trade")) for i in range(50)]
    for route in routes:
        table[route_key(route.name)] = route
    assert all(whole is None for whole, _ in listener.calls)  # bytes until the loop turns
    await asyncio.sleep(0)
    whole, by_name = listener.calls[-1]
    assert whole is not None and len(by_name) == 50
    assert sum(1 for w, _ in listener.calls if w is not None) == 1


# -- over sockets ------------------------------------------------------------------------------------

async def test_typed_streams_read_whole_frames_and_a_broken_payload_still_reaches_the_subscriber(
        sim: Simulator) -> None:
    got: dict[str, list[Any]] = {s: [] for s in TRADES}
    async with AsyncSocketManager(market=sim.market) as sm:
        for s in TRADES:
            await sm.subscribe(s, got[s].append, decode="typed")
        await until(lambda: all(len(v) > 5 for v in got.values()))
        assert _mode(sm) == "_whole_typed_frame"
        sim.faults.send_malformed_json(stream="btcusdt@trade")
        await until(lambda: any(isinstance(m, dict) for m in got["btcusdt@trade"]), what="error event")
        n = len(got["btcusdt@trade"])
        await until(lambda: len(got["btcusdt@trade"]) > n + 3)
        assert sm.connections[0].connects == 1
    events = [m for m in got["btcusdt@trade"] if isinstance(m, dict)]
    assert len(events) == 1
    assert events[0]["type"] == errors.ERR_MALFORMED and events[0]["stream"] == "btcusdt@trade"
    for s, messages in got.items():
        trades = [m for m in messages if isinstance(m, Trade)]
        assert {t.symbol for t in trades} == {s.split("@")[0].upper()}
        assert _ids_in_order([t.trade_id for t in trades])


async def test_multiplex_reads_whole_frames_and_still_reports_gaps(sim: Simulator) -> None:
    got: list[dict[str, Any]] = []
    async with AsyncSocketManager(market=sim.market) as sm:
        await sm.subscribe(TRADES, got.append, wrap=True)
        await until(lambda: len(got) > 10)
        assert _mode(sm) == "_whole_dict_frame"
        sim.faults.skip(2, pattern=r"btcusdt@trade")
        await until(lambda: any(m.get("e") == "error" for m in got), what="gap event")
        n = len(got)
        await until(lambda: len(got) > n + 5)
    gaps = [m for m in got if m.get("e") == "error"]
    assert len(gaps) == 1 and gaps[0]["type"] == errors.ERR_GAP and gaps[0]["stream"] == "btcusdt@trade"
    assert gaps[0]["last"] - gaps[0]["first"] == 1
    wrapped = [m for m in got if "data" in m]
    assert all(set(m) == {"stream", "data"} and m["data"]["s"].lower() + "@trade" == m["stream"]
               for m in wrapped)
    eth = [m["data"]["t"] for m in wrapped if m["stream"] == "ethusdt@trade"]
    assert _ids_in_order(eth)


async def test_raw_callbacks_are_called_from_the_split_and_a_raising_one_keeps_its_stream(
        sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    got: dict[str, list[bytes]] = {s: [] for s in TRADES}
    raised = []

    def btc(msg: RawMessage) -> None:
        got[msg.stream].append(msg.data)
        if len(got[msg.stream]) == 3:
            raised.append(msg.data)
            raise RuntimeError("user bug")

    async with AsyncSocketManager(market=sim.market) as sm:
        await sm.subscribe("btcusdt@trade", btc, decode="raw")
        await sm.subscribe("ethusdt@trade", lambda m: got[m.stream].append(m.data), decode="raw")
        with caplog.at_level(logging.ERROR, "binance_ws.engine"):
            await until(lambda: all(len(v) > 8 for v in got.values()))
        assert _mode(sm) == "_raw_frame"
    assert raised and "user bug" in caplog.text
    for s, payloads in got.items():
        trades = [orjson.loads(p) for p in payloads]
        assert {t["s"] for t in trades} == {s.split("@")[0].upper()}
        assert _ids_in_order([t["t"] for t in trades])


async def test_plain_and_wrapped_dict_callbacks_share_whole_frames_on_one_socket(sim: Simulator) -> None:
    plain: list[dict[str, Any]] = []
    wrapped: list[dict[str, Any]] = []
    async with AsyncSocketManager(market=sim.market) as sm:
        await sm.subscribe("btcusdt@trade", plain.append)
        await sm.subscribe(["ethusdt@trade", "ethusdt@depth@100ms"], wrapped.append, wrap=True)
        await until(lambda: len(plain) > 5 and len({m["stream"] for m in wrapped}) == 2)
        assert len(sm.connections) == 1 and _mode(sm) == "_whole_dict_frame"
        sim.faults.skip(1, pattern=r"btcusdt@trade")
        await until(lambda: any(m.get("e") == "error" for m in plain), what="gap event")
    assert all(m["e"] == "trade" and m["s"] == "BTCUSDT" for m in plain if m["e"] != "error")
    assert [m["type"] for m in plain if m["e"] == "error"] == [errors.ERR_GAP]
    assert all(set(m) == {"stream", "data"} for m in wrapped)
    assert _ids_in_order([m["data"]["t"] for m in wrapped if m["stream"] == "ethusdt@trade"])
    depth = [m["data"] for m in wrapped if m["stream"] == "ethusdt@depth@100ms"]
    assert all(m["e"] == "depthUpdate" and m["U"] == prev["u"] + 1 for prev, m in itertools.pairwise(depth))


async def test_a_second_kind_of_subscriber_switches_the_socket_to_bytes_and_back(sim: Simulator) -> None:
    typed: list[Any] = []
    plain: list[dict[str, Any]] = []
    async with AsyncSocketManager(market=sim.market) as sm:
        await sm.subscribe(TRADES, typed.append, decode="typed")
        await until(lambda: len(typed) > 5 and _mode(sm) == "_whole_typed_frame")
        sub = await sm.subscribe("btcusdt@trade", plain.append)
        await until(lambda: len(plain) > 5)
        assert _mode(sm) == "_split_frame"
        await sub.close()
        await until(lambda: _mode(sm) == "_whole_typed_frame", what="whole frames again")
        n = len(typed)
        await until(lambda: len(typed) > n + 5)
    assert all(isinstance(m, Trade) for m in typed)
    for s in TRADES:
        symbol = s.split("@")[0].upper()
        assert _ids_in_order([t.trade_id for t in typed if t.symbol == symbol])
    assert _ids_in_order([m["t"] for m in plain])


async def test_typed_rotations_lose_and_duplicate_nothing() -> None:
    # As tests/engine/test_rotation.py, with typed delivery: the socket reads whole frames between
    # rotations and bytes during each handover.
    async with rotation_simulator() as sim:
        market = rotating_market(sim)
        got: list[Any] = []
        modes: set[str] = set()
        async with AsyncSocketManager(market=market, handover_grace=0.5) as sm:
            await sm.subscribe("btcusdt@trade", got.append, decode="typed")
            conn = sm.connections[0]
            while conn.rotations < 30:
                if conn.link is not None:
                    modes.add(conn.link.on_ws_frame.__func__.__name__)  # type: ignore[attr-defined]
                await asyncio.sleep(0.002)
    assert "_whole_typed_frame" in modes
    assert conn.drops == 0
    assert all(isinstance(m, Trade) for m in got)
    ids = [t.trade_id for t in got]
    assert _ids_in_order(ids), "a trade was lost or delivered twice"
