"""AsyncSocketManager against the simulator over loopback: subscribing, decoding modes, the socket
factories, sharding, closing."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from binance_ws import errors
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.engine import AsyncSocketManager, RawMessage
from binance_ws.sim import Simulator
from tests.engine._util import trade_ids, until


async def test_trade_socket_delivers_payloads_in_order(sim: Simulator) -> None:
    async with AsyncSocketManager(market=sim.market) as sm, sm.trade_socket("BTCUSDT") as s:
        msgs = [await asyncio.wait_for(s.recv(), 5) for _ in range(20)]
    assert all(m["e"] == "trade" and m["s"] == "BTCUSDT" for m in msgs)
    ids = trade_ids(msgs)
    assert ids == list(range(ids[0], ids[0] + 20))


async def test_async_for_and_socket_factories(sim: Simulator) -> None:
    async with AsyncSocketManager(market=sim.market) as sm:
        checks = {
            sm.agg_trade_socket("ETHUSDT"): lambda m: m["e"] == "aggTrade" and m["s"] == "ETHUSDT",
            sm.kline_socket("BTCUSDT", "1s"): lambda m: m["e"] == "kline" and m["k"]["i"] == "1s",
            sm.depth_socket("BTCUSDT"): lambda m: m["e"] == "depthUpdate",
            sm.depth_socket("BTCUSDT", depth=5, interval=100): lambda m: set(m) == {"lastUpdateId", "bids",
                                                                                     "asks"},
            sm.symbol_ticker_socket("BNBBTC"): lambda m: m["e"] == "24hrTicker" and m["s"] == "BNBBTC",
            sm.book_ticker_socket("BTCUSDT"): lambda m: "b" in m and "u" in m and m["s"] == "BTCUSDT",
        }
        for socket, check in checks.items():
            async with socket as s:
                async for msg in s:
                    assert check(msg), msg
                    break


async def test_subscribe_and_unsubscribe_live_on_one_connection(sim: Simulator) -> None:
    async with AsyncSocketManager(market=sim.market) as sm:
        got_a: list[dict] = []
        got_b: list[dict] = []
        a = await sm.subscribe("btcusdt@trade", got_a.append)
        b = await sm.subscribe(["ethusdt@trade", "btcusdt@trade"], got_b.append, wrap=True)
        assert len(sm.connections) == 1
        await until(lambda: len(got_a) > 3 and {m["stream"] for m in got_b} == {"btcusdt@trade",
                                                                                 "ethusdt@trade"})
        # Decoded once, delivered to both: the same payload object.
        shared = {id(m["data"]) for m in got_b} & {id(m) for m in got_a}
        assert shared
        await sm.unsubscribe(b)
        assert sm.streams == ["btcusdt@trade"]
        server_conn = next(iter(sim.stream_server.connections.values()))
        await until(lambda: list(server_conn.control.streams) == ["btcusdt@trade"], what="UNSUBSCRIBE")
        n = len(got_b)
        await until(lambda: len(got_a) > 10)
        assert len(got_b) == n and b.closed
        await sm.unsubscribe(a)
        assert sm.connections == [] and sm.streams == []


async def test_raw_decode_and_callback_errors_do_not_stop_the_stream(sim: Simulator,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    raw: list[RawMessage] = []
    calls = 0

    def bad(msg: dict) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("subscriber bug")

    async with AsyncSocketManager(market=sim.market) as sm:
        await sm.subscribe("btcusdt@trade", raw.append, decode="raw")
        await sm.subscribe("btcusdt@trade", bad)
        await until(lambda: len(raw) > 5 and calls > 5)
    assert raw[0].stream == "btcusdt@trade" and raw[0].data.startswith(b'{"e":"trade"')
    assert "subscriber bug" in caplog.text


async def test_invalid_input_is_refused_before_connecting(sim: Simulator) -> None:
    async with AsyncSocketManager(market=sim.market) as sm:
        for bad in (lambda: sm.trade_socket("BTC USDT"), lambda: sm.kline_socket("BTCUSDT", "2m"),
                    lambda: sm.depth_socket("BTCUSDT", depth=7),
                    lambda: sm.multiplex_socket(["btcusdt@trade", "btcusdt@nonsense"]),
                    lambda: sm.multiplex_socket(["btcusdt@trade", "a" * 64])):
            with pytest.raises(errors.InvalidStreamError):
                bad()
        with pytest.raises(errors.InvalidStreamError, match="retired"):
            await sm.subscribe("!ticker@arr")
        assert sim.stream_server.connections == {}


async def test_server_refusal_raises_subscription_error(sim: Simulator) -> None:
    async with AsyncSocketManager(market=sim.market) as sm:
        ok = await sm.subscribe("btcusdt@trade")
        with pytest.raises(errors.SubscriptionError, match="invalid stream"):
            await sm.subscribe("xxxyyy@trade")  # well-formed, but the exchange does not list it
        assert sm.streams == ["btcusdt@trade"]
        assert not ok.closed
        msg = await asyncio.wait_for(ok.recv(), 5)
        assert msg["e"] == "trade"


async def test_refused_stream_in_a_new_connection_names_the_stream(sim: Simulator) -> None:
    # A new connection carries its streams in the URL; the server refuses the handshake (400) when one
    # is unknown, so the engine falls back to SUBSCRIBE, which names the refusal. Only that stream
    # stops: the subscription goes on with the others and is told which one was refused.
    async with AsyncSocketManager(market=sim.market) as sm:
        sub = await sm.subscribe(["btcusdt@trade", "xxxyyy@trade"])
        assert sm.streams == ["btcusdt@trade"] and sub.streams == ("btcusdt@trade",)
        got: list[dict[str, object]] = []
        while sum(m["e"] == "trade" for m in got) < 3 or not any(m["e"] == "error" for m in got):
            got.append(await asyncio.wait_for(sub.recv(), 5))
        events = [m for m in got if m["e"] == "error"]
        assert len(events) == 1, events
        event = events[0]
        assert (event["type"], event["m"], event["stream"]) == (
            "subscription", "Subscription refused", "xxxyyy@trade")
        assert event["code"] == 2 and "invalid stream" in str(event["msg"])
        assert {m["e"] for m in got if m is not event} == {"trade"}
        assert not sub.closed
        server_conn = next(iter(sim.stream_server.connections.values()))
        assert set(server_conn.control.streams) == {"btcusdt@trade"}


async def test_a_subscribe_refused_in_full_raises_and_leaves_nothing(sim: Simulator) -> None:
    async with AsyncSocketManager(market=sim.market) as sm:
        with pytest.raises(errors.SubscriptionError, match="invalid stream") as info:
            await sm.subscribe(["xxxyyy@trade", "zzzyyy@trade"])
        assert sorted(getattr(info.value, "refused", {})) == ["xxxyyy@trade", "zzzyyy@trade"]
        assert sm.streams == [] and sm.connections == []
        await until(lambda: not sim.stream_server.connections, what="connection closed")
        sub = await sm.subscribe("btcusdt@trade")
        assert (await asyncio.wait_for(sub.recv(), 5))["e"] == "trade"


async def test_multiplex_socket_with_a_refused_stream_keeps_the_others(sim: Simulator) -> None:
    # The seed docs' example, with a symbol this exchange does not list (LTCBTC) in NEOBTC's place.
    async with AsyncSocketManager(market=sim.market) as sm, \
            sm.multiplex_socket(["bnbbtc@aggTrade", "ltcbtc@ticker", "btcusdt@trade"]) as s:
        seen: set[str] = set()
        refused = []
        while seen != {"bnbbtc@aggTrade", "btcusdt@trade"} or not refused:
            msg = await asyncio.wait_for(s.recv(), 10)
            if msg.get("e") == "error":
                refused.append(msg)
                continue
            assert set(msg) == {"stream", "data"}, msg
            seen.add(msg["stream"])
        assert [(m["type"], m["stream"]) for m in refused] == [("subscription", "ltcbtc@ticker")]


async def test_multiplex_socket_wraps(sim: Simulator) -> None:
    async with AsyncSocketManager(market=sim.market) as sm, \
            sm.multiplex_socket(["btcusdt@trade", "ethusdt@depth@100ms"]) as s:
        seen = set()
        while len(seen) < 2:
            msg = await asyncio.wait_for(s.recv(), 5)
            assert set(msg) == {"stream", "data"}
            seen.add(msg["stream"])


async def test_ticker_socket_batches_every_trading_symbol() -> None:
    async with Simulator(flow_rate=200.0) as sim, AsyncSocketManager(market=sim.market) as sm, \
            sm.ticker_socket() as s:
        batch = await asyncio.wait_for(s.recv(), 5)
        assert isinstance(batch, list) and batch
        assert all(t["e"] == "24hrTicker" for t in batch)
        assert {t["s"] for t in batch} <= set(sim.symbols())
        assert sorted(sm.streams) == sorted(f"{s.lower()}@ticker" for s in sim.symbols())


async def test_miniticker_socket_conflates_above_one_second(sim: Simulator) -> None:
    loop = asyncio.get_running_loop()
    async with AsyncSocketManager(market=sim.market) as sm, sm.miniticker_socket(update_time=1500) as s:
        first = await asyncio.wait_for(s.recv(), 5)
        t0 = loop.time()
        second = await asyncio.wait_for(s.recv(), 5)
        gap = loop.time() - t0
    for batch in (first, second):
        assert isinstance(batch, list) and all(t["e"] == "24hrMiniTicker" for t in batch)
        assert len({t["s"] for t in batch}) == len(batch)  # newest per symbol, no repeats
    assert gap > 1.0  # the server pushes every second; we deliver every 1.5 s


async def test_sharding_3000_streams_within_the_message_rate() -> None:
    # The simulator closes a connection with 1008 the moment it sees a 6th message within a second.
    symbols = [f"S{i:04d}USDT" for i in range(1000)]
    from binance_ws.sim.config import SymbolSpec

    specs = tuple(SymbolSpec(s, s[:-4], "USDT", 1.0) for s in symbols)
    async with Simulator(symbols=specs, flow_rate=0.0) as sim, AsyncSocketManager(market=sim.market) as sm:
        names = [f"{s.lower()}@{kind}" for s in symbols for kind in ("trade", "aggTrade", "bookTicker")]
        sub = await asyncio.wait_for(sm.subscribe(names), 30)
        assert len(sm.connections) >= 3
        assert all(c.drops == 0 and c.connects == 1 for c in sm.connections)
        server_streams = [set(c.control.streams) for c in sim.stream_server.connections.values()]
        assert all(len(s) <= 1024 for s in server_streams)
        assert set().union(*server_streams) == set(names)
        # Unsubscribing everything closes every shard.
        await sm.unsubscribe(sub)
        assert sm.connections == []


async def test_close_leaves_nothing_running(sim: Simulator) -> None:
    before = set(asyncio.all_tasks())
    sm = AsyncSocketManager(market=sim.market)
    sub = await sm.subscribe(["btcusdt@trade", "ethusdt@trade"])
    conflated = await sm.subscribe_conflated("!miniTicker@arr", 1.5)
    async with sm.depth_socket("BTCUSDT", interval=100) as s:
        await asyncio.wait_for(s.recv(), 5)
        await sm.close()
    for ended in (sub, conflated):
        assert ended.closed
        with pytest.raises(errors.ConnectionClosedError):
            while True:
                await asyncio.wait_for(ended.recv(), 1)
    await until(lambda: not sim.stream_server.connections, what="server side closed")
    assert set(asyncio.all_tasks()) - before == set()


async def test_connection_attempts_share_one_budget_per_host(sim: Simulator) -> None:
    # Three managers, two attempts allowed per 0.5 s to this host: the third connection waits.
    market = dataclasses.replace(sim.market, max_connections_per_window=2, connection_window_s=0.5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with AsyncSocketManager(market=market) as a, AsyncSocketManager(market=market) as b, \
            AsyncSocketManager(market=market) as c:
        for sm in (a, b, c):
            await sm.subscribe("btcusdt@trade")
        assert loop.time() - t0 >= 0.5
        assert len(sim.stream_server.connections) == 3


async def test_concurrent_subscribes_are_merged_and_a_refusal_names_its_stream(sim: Simulator) -> None:
    async with AsyncSocketManager(market=sim.market) as sm:
        await sm.subscribe("btcusdt@trade")
        names = [f"{s.lower()}@{kind}" for s in sim.symbols()
                 for kind in ("aggTrade", "bookTicker", "depth")]
        results = await asyncio.wait_for(asyncio.gather(
            *(sm.subscribe(n) for n in names), sm.subscribe("xxxyyy@trade"), return_exceptions=True), 10)
        refused = results[-1]
        assert isinstance(refused, errors.SubscriptionError) and "invalid stream" in refused.msg
        assert [r for r in results[:-1] if isinstance(r, BaseException)] == []
        assert sorted(sm.streams) == sorted(["btcusdt@trade", *names])
        server_conn = next(iter(sim.stream_server.connections.values()))
        assert set(server_conn.control.streams) == {"btcusdt@trade", *names}


async def test_typed_decoder_slot_and_a_failing_decoder_keeps_the_stream(sim: Simulator) -> None:
    import msgspec

    class Trade(msgspec.Struct):
        s: str
        t: int

    class Strict(msgspec.Struct):
        nope: int

    typed: list[Trade] = []
    plain: list[dict] = []
    async with AsyncSocketManager(market=sim.market) as sm:
        await sm.subscribe("btcusdt@trade", lambda m: None, decode=msgspec.json.Decoder(Strict).decode)
        await sm.subscribe("btcusdt@trade", typed.append, decode=msgspec.json.Decoder(Trade).decode)
        await sm.subscribe("btcusdt@trade", plain.append)
        await until(lambda: len(typed) > 5 and len(plain) > 5)
        assert sm.connections[0].connects == 1
    assert isinstance(typed[0], Trade) and typed[0].s == "BTCUSDT"


@pytest.mark.parametrize("names", [[1, None], [b"bnbbtc@trade"], b"bnbbtc@trade", None, 5, [{}],
                                   ["btcusdt@trade", 7]], ids=repr)
async def test_stream_names_that_are_not_strings_raise_invalid_stream_error(sim: Simulator,
                                                                            names: object) -> None:
    async with AsyncSocketManager(market=sim.market) as sm:
        with pytest.raises(errors.InvalidStreamError, match="stream name"):
            await sm.subscribe(names)  # type: ignore[arg-type]
        with pytest.raises(errors.InvalidStreamError, match="stream name"):
            sm.multiplex_socket(names)  # type: ignore[arg-type]
        with pytest.raises(errors.InvalidStreamError, match="stream name"):
            sm.socket(names)  # type: ignore[arg-type]
        assert sm.streams == [] and sm.connections == []
        async with sm.trade_socket("BTCUSDT") as s:
            assert (await asyncio.wait_for(s.recv(), 5))["e"] == "trade"


async def test_wait_ready_follows_the_sockets(sim: Simulator) -> None:
    # Reconnects wait a second, forever: long enough to see a dropped socket not ready.
    slow = BackoffPolicy(initial_s=1.0, factor=1.0, max_s=1.0, jitter=0.1, max_retries=None)
    async with AsyncSocketManager(market=sim.market, backoff=slow) as sm:
        assert await sm.wait_ready(1) is True  # nothing subscribed: nothing to wait for
        sub = await sm.subscribe(["btcusdt@trade", "ethusdt@trade"])
        assert await sm.wait_ready(1) is True
        assert await sm.wait_ready(1, sub) is True
        sim.faults.refuse(503)
        sim.faults.drop()
        await until(lambda: sm.connections[0].link is None, what="the drop seen")
        assert await sm.wait_ready(0.3) is False
        assert await sm.wait_ready(0.3, ["btcusdt@trade"]) is False
        sim.faults.accept()
        assert await sm.wait_ready(10, sub) is True
        assert await sm.wait_ready(1) is True
        # Live again: messages flow right after.
        while (await asyncio.wait_for(sub.recv(), 5)).get("e") != "trade":
            pass
