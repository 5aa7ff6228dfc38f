"""binance_ws.metrics: the frame tap on a fake clock, and a manager's metrics served over HTTP from its
own thread while the engine runs against the simulator."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from binance_ws import AsyncSocketManager, BinanceSocketManager, DepthCacheManager, metrics
from binance_ws.metrics import LAG_BUCKETS_S, LAG_SAMPLE_EVERY, FrameTap
from binance_ws.sim import Simulator

NOW_S = 1_723_161_256.0


def _frame(stream: str, payload: dict[str, object]) -> bytes:
    return b'{"stream":"%s","data":%s}' % (stream.encode(), orjson.dumps(payload))


def test_tap_counts_every_frame_and_samples_the_lag() -> None:
    tap = FrameTap(clock=lambda: NOW_S)
    for i in range(20):
        tap.feed(_frame("btcusdt@trade", {"e": "trade", "E": int(NOW_S * 1000) - 30, "t": i}))
    counts = tap.streams[b'{"stream":"btcusdt@trade']
    assert counts.frames == 20
    assert counts.lag_count == len(range(0, 20, LAG_SAMPLE_EVERY))  # frames 1, 9, 17
    assert abs(counts.lag_sum / counts.lag_count - 0.030) < 1e-6
    assert counts.buckets[LAG_BUCKETS_S.index(0.05)] == counts.lag_count  # 30 ms: the 50 ms bucket


def test_tap_reads_microseconds_skips_frames_without_e_and_ignores_non_stream_frames() -> None:
    tap = FrameTap(clock=lambda: NOW_S)
    tap.feed(_frame("x@trade", {"e": "trade", "E": int(NOW_S * 1_000_000) - 2_000_000}))  # 2 s, in µs
    tap.feed(_frame("x@depth5", {"lastUpdateId": 1, "bids": [], "asks": []}))
    tap.feed(b'{"result":null,"id":1}')
    tap.feed(b"")
    tap.feed(_frame("x@bad", {"e": "trade", "E": "soon"}))
    assert abs(tap.streams[b'{"stream":"x@trade'].lag_sum - 2.0) < 1e-6
    assert tap.streams[b'{"stream":"x@depth5'].frames == 1
    assert tap.streams[b'{"stream":"x@depth5'].lag_count == 0
    assert tap.streams[b'{"stream":"x@bad'].lag_count == 0
    assert len(tap.streams) == 3


def test_sinks_report_into_the_registry() -> None:
    from binance_ws.cli.metrics_port import sinks_for

    m = metrics.Metrics(CollectorRegistry())
    sinks = sinks_for(m)
    sinks.observe_write_latency(0.002)
    sinks.written(50)
    sinks.set_shards(["0", "3"])
    sinks.set_shards(["3", "5"])
    off = sinks_for(None)  # metrics off: the same calls, to nowhere
    off.observe_write_latency(0.002)
    off.written(50)
    off.file_opened()
    off.set_shards(["0"])
    get = m.registry.get_sample_value
    assert get("binance_ws_sink_write_seconds_count", {"sink": "redis"}) == 1
    assert get("binance_ws_sink_entries_total", {"sink": "redis"}) == 50
    assert get("binance_ws_shards_owned") == 2
    assert get("binance_ws_shard_owned", {"shard": "0"}) is None
    assert get("binance_ws_shard_owned", {"shard": "5"}) == 1
    m.close()


async def test_expose_serves_a_manager_and_its_books_over_http() -> None:
    async with Simulator(flow_rate=200.0) as sim, AsyncSocketManager(market=sim.market) as sm:
        m = metrics.expose(sm, port=0)
        try:
            async with DepthCacheManager(sm, ["BTCUSDT"]) as books:
                m.watch_books(books)
                async with asyncio.timeout(30):  # synced, and diffs applied since
                    while books.get_depth_cache().state.value != "SYNCED" or books.stats().applied < 2:
                        await asyncio.sleep(0.05)
                # Scraped from another thread, as Prometheus would: the state is read on the loop.
                url = f"http://127.0.0.1:{m.port}/metrics"
                with await asyncio.to_thread(urllib.request.urlopen, url, timeout=10) as resp:
                    text = resp.read().decode()
        finally:
            m.close()
        assert all(c.tap is None for c in sm.connections)  # closed: the tap is gone
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    market = sim.market.name
    assert value("binance_ws_book_state", market=market, symbol="BTCUSDT", state="SYNCED") == 1
    assert value("binance_ws_book_state", market=market, symbol="BTCUSDT", state="STALE") == 0
    assert value("binance_ws_book_stale_seconds", market=market, symbol="BTCUSDT") == 0
    assert value("binance_ws_snapshots_total", market=market, outcome="ok") >= 1
    assert value("binance_ws_rest_weight_used", market=market) >= 1
    assert value("binance_ws_rest_weight_reported", market=market) >= 1
    assert value("binance_ws_messages_total", market=market, stream="btcusdt@depth@100ms") >= 1
    assert value("binance_ws_connection_up", market=market, connection="c-1") == 1


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


async def _until(condition: object, what: str) -> None:
    async with asyncio.timeout(30):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_a_dropped_connection_counts_a_reconnect_and_an_attempt() -> None:
    async with Simulator(flow_rate=200.0) as sim, AsyncSocketManager(market=sim.market) as sm:
        m = metrics.expose(sm, port=0)
        try:
            sub = await sm.subscribe(["btcusdt@trade"], lambda msg: None)
            conn = sm.connections[0]
            sim.faults.drop()
            await _until(lambda: conn.connects == 2 and conn.link is not None and not conn.link.lost.done(),
                         "the reconnect")
            samples = await asyncio.to_thread(_scrape, m.port or 0)
            await sub.close()
        finally:
            m.close()
    labels = (("connection", "c-1"), ("market", sim.market.name))
    assert samples[("binance_ws_reconnects_total", labels)] == 1
    assert samples[("binance_ws_connects_total", labels)] == 2
    assert samples[("binance_ws_connection_up", labels)] == 1
    host = sim.stream_url.split("://")[1]
    assert samples[("binance_ws_connection_attempts_window", (("host", host),))] == 2


async def test_expose_a_threaded_socket_manager() -> None:
    async with Simulator(flow_rate=200.0) as sim:
        received: list[dict[str, object]] = []
        bm = BinanceSocketManager(None, market=sim.market)
        bm.start_trade_socket("BTCUSDT", received.append)
        try:
            try:
                metrics.expose(bm)
            except RuntimeError as exc:
                assert "start()" in str(exc)
            else:
                raise AssertionError("exposing a manager not started must fail")
            bm.start()
            m = metrics.expose(bm, port=0)  # from this thread: the engine runs on bm's own
            await _until(lambda: len(received) >= 5, "trades")
            seen = len(received)
            samples = await asyncio.to_thread(_scrape, m.port or 0)
            m.close()
        finally:
            await asyncio.to_thread(bm.close)
    count = samples[("binance_ws_messages_total", (("market", sim.market.name), ("stream", "btcusdt@trade")))]
    assert count >= seen  # counted as received, before the callback


async def test_two_managers_on_one_market_need_names_of_their_own() -> None:
    import pytest

    from binance_ws.markets import local_market

    market = local_market("ws://127.0.0.1:1", "http://127.0.0.1:1")
    async with AsyncSocketManager(market=market) as a, AsyncSocketManager(market=market) as b:
        m = metrics.Metrics(CollectorRegistry())
        m.watch(a)
        with pytest.raises(ValueError, match="name="):
            m.watch(b)
        m.watch(b, name="second")
        assert all(manager._tap is not None for manager in (a, b))
        m.close()
        assert all(manager._tap is None for manager in (a, b))


async def test_the_tap_counts_each_frame_once_through_pauses_and_reader_switches(tmp_path: Path) -> None:
    """A "block" queue small enough to pause the socket again and again (frames held, then replayed),
    and a second subscriber joining half-way (the connection switches readers): every frame is counted
    exactly once."""
    from binance_ws.recording import RecordingWriter
    from binance_ws.sim.replay import Replay

    total = 600
    with RecordingWriter(tmp_path / "r.zst", market="spot") as w:
        for i in range(total):
            w.write(i, "xyzusdt@trade", orjson.dumps({"e": "trade", "E": 1, "s": "XYZUSDT", "t": i}))
    async with Simulator(replay=Replay(tmp_path / "r.zst", speed=0), flow_rate=0.0) as sim, \
            AsyncSocketManager(market=sim.market) as sm:
        m = metrics.expose(sm)
        tap = m._watched[0].tap
        sub = await sm.subscribe(["xyzusdt@trade"], queue_size=16, overflow="block")
        got = 0
        async with asyncio.timeout(30):
            while got < total:
                await sub.recv()
                got += 1
                if got == total // 2:
                    await sm.subscribe(["xyzusdt@trade"], lambda msg: None)
                if got % 50 == 0:
                    await asyncio.sleep(0.01)  # a slow reader: the socket pauses
        m.close()
    assert sub.peak == 16  # the queue filled: reading paused
    assert tap.streams[b'{"stream":"xyzusdt@trade'].frames == total
