"""The real USD-M capture (tests/data/usdm_btcusdt_20240808.hftbacktest.gz: ``@depth@0ms`` with ``pu``,
``@bookTicker``, ``@trade`` and one ``/fapi/v1/depth`` snapshot) served as Binance serves it since 2026:
book data and ``@trade`` on ``/public`` (as ccxt routes the undocumented ``@trade``), the snapshot from
``/fapi/v1/depth``. Our
``FuturesDepthCacheManager`` syncs from it over loopback by PROTOCOL 5.2, and every bookTicker whose
``u`` the book reaches matches its best bid and ask (the no-socket version of this check is
``test_book_replay.test_hftbacktest_usdm_book_agrees_with_every_book_ticker``).

The first test has the scripted futures exchange of the engine tests serve the capture: every message in
recorded order, as fast as the socket takes them; the snapshot is answered at the moment the recording
took it (the REST call is held until the replay reaches that line). The second has the simulator replay
it, served as USD-M.
"""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import orjson

from binance_ws.depthcache import FuturesDepthCacheManager
from binance_ws.engine.manager import AsyncSocketManager
from tests.engine._futures_server import futures_server, until
from tests.paths import RECORDINGS
from tests.realdata.test_book_replay import TickerWatch

CAPTURE = RECORDINGS / "usdm_btcusdt_20240808.hftbacktest.gz"


def _lines() -> list[tuple[str | None, Any]]:
    """(stream, payload) per recorded message; stream None for the REST snapshot line."""
    out: list[tuple[str | None, Any]] = []
    with gzip.open(CAPTURE) as f:
        for line in f:
            msg = orjson.loads(line.split(b" ", 1)[1])
            out.append((msg["stream"], msg["data"]) if "stream" in msg else (None, msg))
    return out


async def test_usdm_capture_on_public_syncs_our_book_and_agrees_with_every_book_ticker() -> None:
    lines = _lines()
    last_u = max(data["u"] for stream, data in lines if stream is not None and "@depth" in stream)
    snapshot_line = next(data for stream, data in lines if stream is None)
    async with futures_server("usdm") as server, AsyncSocketManager(market=server.market,
                                                                    no_data_timeout=0) as sm:
        reached = asyncio.Event()

        async def snapshot(params: dict[str, str]) -> Any:
            await reached.wait()
            return snapshot_line

        server.depth = snapshot
        holder: list[TickerWatch] = []
        dcm = FuturesDepthCacheManager(sm, "BTCUSDT", limit=1000, ws_interval=0, max_buffer=5000,
                                       callback=lambda cache: holder[0].on_book(cache))
        watch = TickerWatch(dcm)  # type: ignore[arg-type]
        holder.append(watch)
        trades: list[Any] = []
        async with dcm:
            await sm.subscribe("btcusdt@bookTicker", watch.on_ticker)
            await sm.subscribe("btcusdt@trade", trades.append)
            sent = 0
            for stream, data in lines:
                if stream is None:
                    reached.set()
                    continue
                assert server.push(stream, data) >= 1, stream
                sent += 1
                if sent % 200 == 0:
                    await asyncio.sleep(0)  # let the client read while we write
            await until(lambda: dcm.get_depth_cache().update_id == last_u
                        or dcm.stats().depth_exhausted > 0, 30, "the last diff")
            await until(lambda: len(trades) == sum(1 for s, _ in lines if s == "btcusdt@trade"), 30, "trades")
            # Book data and trades rode /public.
            assert set(server.routes_of("btcusdt@depth@0ms")) == set(server.routes_of("btcusdt@bookTicker")) \
                == set(server.routes_of("btcusdt@trade")) == {"public"}
        stats = dcm.stats("BTCUSDT")
        assert [c[1] for c in server.rest_calls] == ["/fapi/v1/depth"]  # one snapshot: never a resync
    assert watch.mismatches == []
    # 87 on every run here; the no-socket replay, fed the snapshot exactly at its line, checks 91: over
    # sockets the snapshot's answer lands a few bookTickers later, and those pass before the book syncs.
    assert watch.matches > 80
    assert (stats.gaps, stats.crossed, stats.ticker_mismatches, stats.overflows, stats.resyncs) == (0,) * 5
    # Every diff after the snapshot applied, as in the no-socket replay (897 of the 901 recorded).
    assert stats.applied == 897
    assert stats.ticker_checks == watch.matches  # the book's own cross-check saw the same tickers


# -- the same capture, replayed by the simulator served as USD-M ---------------------------------------------
async def test_usdm_capture_replayed_by_the_simulator_on_public_agrees_with_every_book_ticker() -> None:
    """``binance-ws sim --replay`` of the capture: the simulator serves it as USD-M (detected from the
    snapshot's futures shape), its streams on ``/public``, its snapshot from ``/fapi/v1/depth``."""
    from binance_ws.sim import Simulator
    from binance_ws.sim.futures.product import product_config
    from binance_ws.sim.replay import Replay

    lines = _lines()
    last_u = max(data["u"] for stream, data in lines if stream is not None and "@depth" in stream)
    replay = Replay(CAPTURE, speed=0)
    assert replay.product == "usdm"
    async with Simulator(product_config(replay.product, flow_rate=0.0), replay=replay) as sim, \
            AsyncSocketManager(market=sim.market, no_data_timeout=0) as sm:
        assert sim.market.stream_url.endswith("/public") and sim.market.rest_prefix == "/fapi/v1"
        holder: list[TickerWatch] = []
        dcm = FuturesDepthCacheManager(sm, "BTCUSDT", limit=1000, ws_interval=0, max_buffer=5000,
                                       callback=lambda cache: holder[0].on_book(cache))
        watch = TickerWatch(dcm)  # type: ignore[arg-type]
        holder.append(watch)
        async with dcm:
            await sm.subscribe("btcusdt@bookTicker", watch.on_ticker)
            await asyncio.wait_for(replay.done.wait(), 60)
            await until(lambda: dcm.get_depth_cache().update_id == last_u
                        or dcm.stats().depth_exhausted > 0, 30, "the last diff")
            # Every connection the client opened is on /public: the capture holds book data only.
            paths = {c["path"].split("?")[0].split("/")[1] for c in sim.faults.state()["connections"]}
            assert paths == {"public"}
        stats = dcm.stats("BTCUSDT")
    assert watch.mismatches == []
    assert watch.matches > 80  # 91 here: the no-socket replay checks 91 too
    assert stats.snapshots_requested == 1 and stats.ticker_checks == watch.matches
    assert (stats.gaps, stats.crossed, stats.ticker_mismatches, stats.overflows, stats.resyncs) == (0,) * 5
    assert stats.applied == 897  # every diff after the recorded snapshot, as over the scripted server
