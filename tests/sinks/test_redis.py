"""The Redis Streams sink and reader against a real redis-server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import orjson
import pytest

from binance_ws import AsyncSocketManager
from binance_ws.engine.delivery import RawMessage
from binance_ws.fleet.dedup import (
    ADDED,
    DUPLICATE,
    HELD,
    KIND_AGG,
    KIND_DIFF,
    KIND_DIFF_PU,
    KIND_ID,
    KIND_TRADE,
    DedupKey,
    DedupState,
    dedup_key,
    fast_keys,
    key_by_kind,
)
from binance_ws.models import Trade
from binance_ws.sim import Simulator
from binance_ws.sinks import Entry, Marker, Pump
from binance_ws.sinks.redis import _WRITE_LUA, FORCE, RedisReader, RedisSink, pack_messages

KEY = b"binance:spot:btcusdt@trade"


def trade(t: int, e: int | None = None) -> bytes:
    return orjson.dumps({"e": "trade", "E": e if e is not None else 1_700_000_000_000 + t, "s": "BTCUSDT",
                         "t": t, "p": "1.0", "q": "2.0", "T": 1, "m": False, "M": True})


def entries(ids: list[int], stream: str = "btcusdt@trade") -> list[Entry]:
    return [Entry(1_000 + t, stream, trade(t)) for t in ids]


async def stored_ids(client: Any, key: bytes = KEY) -> list[int]:
    return [orjson.loads(f[b"d"])["t"] for _, f in await client.xrange(key)]


async def test_entries_are_stored_as_received_with_their_receive_time(redis_client: Any) -> None:
    sink = RedisSink(redis_client, "spot")
    batch = entries([1, 2, 3])
    await sink.write(batch)
    rows = await redis_client.xrange(KEY)
    assert [(f[b"d"], int(f[b"r"])) for _, f in rows] == [(e.data, e.received_ns) for e in batch]
    await sink.write(entries([2, 3, 4]))
    assert await stored_ids(redis_client) == [1, 2, 3, 4]
    assert (sink.added, sink.duplicates) == (4, 2)
    await sink.close()


async def test_redundant_writers_store_each_message_once_in_order(redis_client: Any) -> None:
    a = RedisSink(redis_client, "spot", hold_s=0.05)
    b = RedisSink(redis_client, "spot", hold_s=0.05)
    ids = list(range(1, 401))
    rng = random.Random(3)

    async def feed(sink: RedisSink, lag: int) -> None:
        i = 0
        while i < len(ids):
            n = rng.randint(1, 20)
            await sink.write(entries(ids[i:i + n]))
            i += n
            await asyncio.sleep(0.001 * lag)

    await asyncio.gather(feed(a, 1), feed(b, 2))
    await a.close()
    await b.close()
    assert await stored_ids(redis_client) == ids
    assert a.added + b.added == 400


async def test_a_gap_is_held_for_another_writer_to_fill_then_stored_anyway(redis_client: Any) -> None:
    old = RedisSink(redis_client, "spot", hold_s=5.0)
    new = RedisSink(redis_client, "spot", hold_s=5.0)
    await old.write(entries([1, 2, 3]))
    # A member that has just joined sees 6 first: held, not stored past the gap.
    await new.write(entries([6, 7]))
    assert new.held == 2
    assert await stored_ids(redis_client) == [1, 2, 3]
    await old.write(entries([4, 5, 6]))  # the old owner's last messages land
    await new.write(entries([8]))
    assert await stored_ids(redis_client) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert new.held == 0
    # Nobody fills a gap: stored after hold_s.
    quick = RedisSink(redis_client, "spot", hold_s=0.1)
    await quick.write(entries([20, 21]))
    assert await stored_ids(redis_client) == [1, 2, 3, 4, 5, 6, 7, 8]
    for _ in range(100):
        if quick.held == 0:
            break
        await asyncio.sleep(0.05)
    assert await stored_ids(redis_client) == [1, 2, 3, 4, 5, 6, 7, 8, 20, 21]
    # ... and said so: the gap stored, with the ids nobody had.
    events = [orjson.loads(f[b"d"]) for _, f in await redis_client.xrange(b"binance:spot:events")]
    assert [(e["type"], e["stream"], e["first"], e["last"]) for e in events] == [
        ("gap", "btcusdt@trade", 9, 19)]
    assert (quick.gaps, new.gaps, old.gaps) == (1, 0, 0)
    for s in (old, new, quick):
        await s.close()


async def test_ids_going_back_with_time_going_forward_are_a_reset_and_stored(redis_client: Any) -> None:
    sink = RedisSink(redis_client, "spot")
    await sink.write([Entry(1, "btcusdt@trade", trade(t, 1000 + t)) for t in (100, 101, 102)])
    await sink.write([Entry(2, "btcusdt@trade", trade(t, 2000 + t)) for t in (1, 2)])  # the reset
    await sink.write([Entry(3, "btcusdt@trade", trade(102, 1102))])  # a lagging copy from before it
    assert await stored_ids(redis_client) == [100, 101, 102, 1, 2]
    await sink.close()


async def test_id_less_streams_are_deduplicated_by_event_time_and_content(redis_client: Any) -> None:
    sink = RedisSink(redis_client, "spot")

    def kline(e: int, c: str) -> Entry:
        return Entry(e, "btcusdt@kline_1m", orjson.dumps({"e": "kline", "E": e, "s": "BTCUSDT",
                                                           "k": {"c": c}}))

    await sink.write([kline(1, "a"), kline(2, "b"), kline(2, "c")])
    await sink.write([kline(1, "a"), kline(2, "b"), kline(2, "c"), kline(3, "d")])
    rows = await redis_client.xrange(b"binance:spot:btcusdt@kline_1m")
    assert [orjson.loads(f[b"d"])["k"]["c"] for _, f in rows] == ["a", "b", "c", "d"]
    await sink.close()


async def test_streams_are_trimmed_approximately_to_maxlen(redis_client: Any) -> None:
    sink = RedisSink(redis_client, "spot", maxlen=100)
    for start in range(1, 5001, 500):
        await sink.write(entries(list(range(start, start + 500))))
    n = await redis_client.xlen(KEY)
    assert 100 <= n < 1000
    await sink.close()


async def test_futures_diff_depth_is_chained_by_pu(redis_client: Any) -> None:
    sink = RedisSink(redis_client, "usdm", hold_s=5.0)

    def depth(first: int, last: int, pu: int) -> Entry:
        return Entry(1, "btcusdt@depth@100ms", orjson.dumps({"e": "depthUpdate", "E": last, "U": first,
                                                               "u": last, "pu": pu, "b": [], "a": []}))

    # Futures ids are not consecutive across messages: U is not pu + 1, and that is no gap.
    await sink.write([depth(10, 14, 8), depth(20, 25, 14), depth(31, 33, 25)])
    await sink.write([depth(40, 44, 38)])  # pu 38 was never stored: a gap, held
    assert (sink.added, sink.held) == (3, 1)
    await sink.close()
    rows = await redis_client.xrange(b"binance:usdm:btcusdt@depth@100ms")
    assert [orjson.loads(f[b"d"])["u"] for _, f in rows] == [14, 25, 33, 44]


async def test_markers_go_to_the_events_stream(redis_client: Any) -> None:
    sink = RedisSink(redis_client, "spot", writer="w1")
    await sink.mark(Marker(5, "gap", {"e": "error", "type": "gap", "stream": "btcusdt@trade"}))
    (_, fields), = await redis_client.xrange(b"binance:spot:events")
    assert fields[b"k"] == b"gap" and fields[b"w"] == b"w1"
    assert orjson.loads(fields[b"d"])["stream"] == "btcusdt@trade"
    await sink.close()


async def test_the_lua_script_applies_the_same_rule_as_the_pure_one(redis_client: Any) -> None:
    """Random offers (duplicates, lagging copies, gaps, resets, forces) give the same statuses."""
    script = redis_client.register_script(_WRITE_LUA)

    async def offer(stream: str, data: bytes, flags: int = 0) -> int:
        reply = await script(keys=[stream, stream + ":dedup"],
                             args=["0", *pack_messages([stream], [(1, data, 0, flags)])])
        return HELD if reply[1:] == [1] else ADDED if reply[0] == 1 else DUPLICATE

    rng = random.Random(7)
    seen: set[int] = set()
    for trial in range(6):
        ref = DedupState()
        stream = f"t{trial}@trade"
        t, e = 1000, 5000
        for _ in range(150):
            roll = rng.random()
            if roll < 0.5:
                t, e = t + 1, e + rng.randint(0, 2)
                cand = (t, e)
            elif roll < 0.7:
                cand = (t - rng.randint(0, 5), e - rng.randint(0, 3))  # a copy from behind
            elif roll < 0.85:
                cand = (t + rng.randint(2, 9), e + 1)  # past a gap
            elif roll < 0.9:
                cand = (rng.randint(1, 50), e + 10)  # a reset
            else:
                cand = (t, e)
            force = rng.random() < 0.3
            data = trade(*cand)
            want = ref.offer(dedup_key(stream, data), force)
            assert await offer(stream, data, FORCE if force else 0) == want, (trial, cand, force)
            seen.add(want)
            if want == ADDED:  # the stream moved on (past a gap, or back after a reset)
                t, e = cand
    assert seen == {ADDED, DUPLICATE, HELD}  # every outcome was compared
    # Id-less streams: event time and digest.
    ref = DedupState()
    e = 100
    outcomes = set()
    for _ in range(300):
        e += rng.choice((-1, 0, 0, 0, 1))
        data = orjson.dumps({"e": "kline", "E": e, "k": {"c": rng.randint(0, 40)}})
        want = ref.offer(dedup_key("x@kline_1m", data))
        assert await offer("x@kline_1m", data) == want
        outcomes.add(want)
    assert outcomes == {ADDED, DUPLICATE}


def test_dedup_keys_per_stream_kind() -> None:
    assert dedup_key("x@trade", trade(7)) == DedupKey(6, 7, 1_700_000_000_007, "")
    agg = orjson.dumps({"e": "aggTrade", "E": 5, "a": 40})
    assert dedup_key("x@aggTrade", agg)[:3] == (39, 40, 5)
    spot_depth = orjson.dumps({"e": "depthUpdate", "E": 5, "U": 10, "u": 14, "b": [], "a": []})
    assert dedup_key("x@depth@100ms", spot_depth)[:3] == (9, 14, 5)
    fut_depth = orjson.dumps({"e": "depthUpdate", "E": 5, "U": 10, "u": 14, "pu": 8, "b": [], "a": []})
    assert dedup_key("x@depth", fut_depth, futures=True)[:3] == (8, 14, 5)  # futures chain by pu
    assert dedup_key("x@depth5@100ms", orjson.dumps({"lastUpdateId": 3, "bids": [], "asks": []}))[:3] == \
        (None, 3, 0)
    assert dedup_key("x@bookTicker", orjson.dumps({"u": 77, "s": "X", "b": "1"}))[:2] == (None, 77)
    kline = dedup_key("x@kline_1m", orjson.dumps({"e": "kline", "E": 9, "k": {}}))
    assert kline.last is None and kline.event_ms == 9 and kline.digest
    assert dedup_key("!miniTicker@arr", orjson.dumps([{"E": 3}, {"E": 4}])).event_ms == 3  # the first
    assert dedup_key("x@trade", b"not json").last is None
    assert dedup_key("x@trade", b'{"e":"trade","E":5,"s":"X","t":7}')[:3] == (6, 7, 5)  # id last


async def test_reader_yields_like_a_subscription_and_recovers_pending_entries(redis_client: Any) -> None:
    sink = RedisSink(redis_client, "spot")
    await sink.write(entries(list(range(1, 21))))
    await sink.close()
    first = RedisReader(redis_client, ["btcusdt@trade"], group="g", consumer="c1", claim_idle_ms=60_000)
    got = [(await first.recv())["t"] for _ in range(5)]
    assert got == [1, 2, 3, 4, 5]
    # c1 dies holding 5 (unacknowledged: the fifth was never followed by another recv): a restart under
    # the same name gets its pending entries again first.
    again = RedisReader(redis_client, ["btcusdt@trade"], group="g", consumer="c1", claim_idle_ms=60_000)
    assert [(await again.recv())["t"] for _ in range(6)] == [1, 2, 3, 4, 5, 6]
    # Another consumer claims what c1 left once idle past claim_idle_ms (here: at once).
    other = RedisReader(redis_client, ["btcusdt@trade"], group="g", consumer="c2", claim_idle_ms=1,
                        decode="raw")
    await asyncio.sleep(0.01)
    msg = await other.recv()
    assert isinstance(msg, RawMessage) and msg.stream == "btcusdt@trade"
    assert other.claimed >= 1
    typed = RedisReader(redis_client, ["btcusdt@trade"], group="t", consumer="c", decode="typed")
    model = await typed.recv()
    assert isinstance(model, Trade) and model.trade_id == 1
    assert typed.entry is not None and typed.entry[0] == "btcusdt@trade" and typed.entry[2] == 1001


async def test_pump_from_the_simulator_into_redis_and_back(redis_client: Any) -> None:
    async with Simulator(flow_rate=300.0) as sim, AsyncSocketManager(market=sim.market) as manager:
        names = [f"{s.lower()}@trade" for s in sim.symbols()] + ["btcusdt@depth@100ms"]
        sub = await manager.subscribe(names, decode="raw", overflow="block")
        sink = RedisSink(redis_client, "spot")
        pump = Pump(sub, sink)
        task = asyncio.create_task(pump.run())
        reader = RedisReader(redis_client, names, group="g", consumer="c")
        seen: dict[str, list[int]] = {}
        depth = 0
        async with asyncio.timeout(30):
            while sum(len(v) for v in seen.values()) < 300 or depth < 3:
                msg = await reader.recv()
                if msg.get("e") == "trade":
                    seen.setdefault(msg["s"], []).append(msg["t"])
                else:
                    depth += 1
        await sub.close()
        await task
        await sink.close()
    for ids in seen.values():  # consecutive ids: nothing lost or doubled on the way
        assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert pump.written >= 300


@pytest.mark.parametrize("maxlen", [-1])
def test_bad_maxlen_is_refused(maxlen: int) -> None:
    with pytest.raises(ValueError):
        RedisSink(object(), "spot", maxlen=maxlen)


async def test_payloads_in_an_unusual_key_order_are_keyed_the_same(redis_client: Any) -> None:
    """The script reads Binance's usual layout in one match and anything else key by key: both give the
    ids dedup_key reads (a reordered copy of a stored message is a duplicate; the next one follows)."""
    sink = RedisSink(redis_client, "spot", hold_s=5.0)
    usual = [orjson.dumps({"e": "aggTrade", "E": 10 + a, "s": "X", "a": a, "p": "1", "q": "1", "f": 1,
                           "l": 1, "T": 1, "m": True, "M": True}) for a in (1, 2, 3)]
    odd = [orjson.dumps({"a": a, "E": 10 + a, "e": "aggTrade", "s": "X"}) for a in (2, 3, 4)]
    await sink.write([Entry(1, "x@aggTrade", d) for d in usual])
    await sink.write([Entry(2, "x@aggTrade", d) for d in odd])
    assert (sink.added, sink.duplicates, sink.held) == (4, 2, 0)
    depth = [orjson.dumps({"e": "depthUpdate", "E": 5, "s": "X", "U": 1, "u": 3, "b": [], "a": []}),
             orjson.dumps({"u": 6, "U": 4, "E": 6, "e": "depthUpdate", "b": [], "a": []})]
    await sink.write([Entry(3, "x@depth@100ms", d) for d in depth])
    assert (sink.added, sink.held) == (6, 0)
    await sink.close()


async def test_a_cancelled_read_skips_nothing(redis_client: Any) -> None:
    """Entries Redis hands to a read that is being cancelled stay pending for the consumer; the next read
    starts with them."""
    sink = RedisSink(redis_client, "spot")
    await sink.write(entries([1]))
    reader = RedisReader(redis_client, ["btcusdt@trade"], group="g", consumer="c", block_ms=5000)
    assert (await reader.recv())["t"] == 1
    blocked = asyncio.create_task(reader.recv())  # waits in XREADGROUP for something new
    await asyncio.sleep(0.2)
    blocked.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await blocked
    # What a cancelled read can leave behind: an entry delivered to "c" that never reached its caller.
    await sink.write(entries([2]))
    await redis_client.xreadgroup("g", "c", {KEY: ">"}, count=1)
    got = await asyncio.wait_for(reader.recv(), 10)
    assert got["t"] == 2
    await sink.close()


def test_ids_read_a_batch_at_a_time_agree_with_one_at_a_time() -> None:
    """The writer decodes a stream's whole batch as one JSON array: the same keys as one by one, and a
    batch any payload of which lacks its id, or is not one JSON value, is read one at a time instead."""
    agg = [orjson.dumps({"e": "aggTrade", "E": 9 + a, "s": "X", "a": a, "p": "1"}) for a in range(3, 8)]
    spot = [orjson.dumps({"e": "depthUpdate", "E": 5 + i, "s": "X", "U": 10 * i + 1, "u": 10 * i + 9,
                          "b": [], "a": [["1", "2"]]}) for i in range(5)]
    fut = [orjson.dumps({"e": "depthUpdate", "E": 5 + i, "T": 4, "s": "X", "U": 10 * i + 3, "u": 10 * i + 9,
                         "pu": 10 * i - 1, "b": [], "a": []}) for i in range(5)]
    for kind, datas in ((KIND_TRADE, [trade(t) for t in range(1, 6)]), (KIND_AGG, agg), (KIND_DIFF, spot),
                        (KIND_DIFF_PU, fut)):
        got = fast_keys(kind, datas)
        assert got is not None
        assert [DedupKey(p, last, e, "") for e, last, p in zip(*got, strict=True)] == \
            [key_by_kind(kind, d) for d in datas]
    assert fast_keys(KIND_TRADE, [trade(1), b'{"e":"trade","E":5}']) is None  # no id
    assert fast_keys(KIND_TRADE, [trade(1), b'{"t":2},{"t":3}', b""]) is None  # two values and none
    assert fast_keys(KIND_TRADE, [b'{"t":2},{"t":3}', b" "]) is None
    assert fast_keys(KIND_TRADE, [trade(1), b"not json"]) is None
    assert fast_keys(KIND_ID, [orjson.dumps({"lastUpdateId": 3})]) is None  # ids skip: one at a time


async def test_a_batch_with_a_payload_unlike_the_rest_is_stored_right(redis_client: Any) -> None:
    sink = RedisSink(redis_client, "spot")
    odd = b'{"e":"trade","E":1,"s":"BTCUSDT","p":"1"}'  # no "t": keyed by event time and content
    await sink.write([*entries([1, 2]), Entry(5, "btcusdt@trade", odd), *entries([3])])
    await sink.write([*entries([2, 3, 4]), Entry(5, "btcusdt@trade", odd)])
    rows = [f[b"d"] for _, f in await redis_client.xrange(KEY)]
    assert rows == [trade(1), trade(2), odd, trade(3), trade(4)]
    assert (sink.added, sink.duplicates) == (5, 3)
    await sink.close()


async def test_a_reader_task_cancelled_mid_command_stops(redis_client: Any) -> None:
    """redis-py 8.0 and 8.2 swallow a cancellation that lands inside about half the commands it hits; a
    consumer looping over a reader must still stop when its task is cancelled, wherever the cancel lands
    (and what it had been handed but not acknowledged is read again: nothing is skipped)."""
    sink = RedisSink(redis_client, "spot")
    next_id = 1
    stop_writing = asyncio.Event()

    async def writer() -> None:
        nonlocal next_id
        while not stop_writing.is_set():
            await sink.write(entries(range(next_id, next_id + 20)))
            next_id += 20
            await asyncio.sleep(0.001)

    seen: set[int] = set()

    async def consume(reader: RedisReader) -> None:
        async for msg in reader:
            seen.add(msg["t"])

    writing = asyncio.create_task(writer())
    rng = random.Random(7)
    try:
        for _ in range(60):
            reader = RedisReader(redis_client, ["btcusdt@trade"], group="g", consumer="c", count=16,
                                 block_ms=50)
            task = asyncio.create_task(consume(reader))
            await asyncio.sleep(rng.uniform(0.0, 0.01))
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=3)
            assert done, "a cancelled reader task went on reading"
            assert task.cancelled()
    finally:
        stop_writing.set()
        await writing
    await sink.close()
    reader = RedisReader(redis_client, ["btcusdt@trade"], group="g", consumer="c", block_ms=50)
    while len(seen) < next_id - 1:
        seen.add((await asyncio.wait_for(reader.recv(), 5))["t"])
    assert seen == set(range(1, next_id))


async def test_cancelling_one_writer_leaves_the_shared_flush_to_the_others(redis_client: Any) -> None:
    """Writers of one event-loop turn share a flush: one of them cancelled must not fail the others'
    writes, and what it handed over is stored all the same."""
    sink = RedisSink(redis_client, "spot")
    first = asyncio.create_task(sink.write(entries([1, 2])))
    second = asyncio.create_task(sink.write(entries([3], "ethusdt@trade")))
    await asyncio.sleep(0)  # both have queued their entries and wait on the same flush
    first.cancel()
    await second  # would raise CancelledError if the cancel reached the shared flush
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert first.cancelled()
    await sink.close()
    assert await stored_ids(redis_client) == [1, 2]
    assert await stored_ids(redis_client, b"binance:spot:ethusdt@trade") == [3]


async def test_a_write_waits_through_a_redis_restart_and_gives_up_past_the_outage_limit(
        redis_server: Any) -> None:
    """The sink alone (no fleet): a write made while Redis is away waits and lands once it is back; one
    made with a shorter limit fails with RedisGone, one line naming the limit and the cause."""
    import redis.asyncio as aioredis

    from binance_ws.sinks.redis import RedisGone

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        sink = RedisSink(client, "spot", outage_s=30.0)
        await sink.write(entries([1, 2]))
        redis_server.kill()
        waiting = asyncio.create_task(sink.write(entries([3, 4])))
        await asyncio.sleep(1.0)
        assert not waiting.done()  # held while Redis is away, not failed
        await asyncio.to_thread(redis_server.start)  # no persistence: it comes back empty
        await asyncio.wait_for(waiting, 20)
        assert await stored_ids(client) == [3, 4]
        assert sink.outage.outages == 1 and not sink.outage.down
        await sink.close()

        quick = RedisSink(client, "spot", outage_s=0.5)
        redis_server.kill()
        with pytest.raises(RedisGone, match=r"^Redis did not answer the sink for 0.5 s \(ConnectionError: "):
            await asyncio.wait_for(quick.write(entries([5])), 20)
    finally:
        await client.aclose()


async def test_a_reader_reads_on_after_a_redis_restart_that_lost_its_group(redis_server: Any) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        sink = RedisSink(client, "spot")
        await sink.write(entries([1, 2]))
        reader = RedisReader(client, ["btcusdt@trade"], group="g", consumer="c", block_ms=100)
        assert [(await reader.recv())["t"] for _ in range(2)] == [1, 2]
        waiting = asyncio.create_task(reader.recv())
        await asyncio.sleep(0.3)
        redis_server.kill()
        await asyncio.sleep(1.0)
        assert not waiting.done()  # away: the read waits, it does not fail
        await asyncio.to_thread(redis_server.start)  # empty: no stream, no group
        await sink.write(entries([7, 8]))
        got = await asyncio.wait_for(waiting, 20)
        assert got["t"] == 7 and (await asyncio.wait_for(reader.recv(), 20))["t"] == 8
        await sink.close()
    finally:
        await client.aclose()
