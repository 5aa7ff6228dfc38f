"""A subscriber's ``on_link`` hook: "down" then "up" across an unplanned drop, nothing across a rotation."""

from __future__ import annotations

from binance_ws.engine import LinkState
from binance_ws.sim import Simulator
from tests.engine._util import trade_ids, until
from tests.engine.test_faults import manager

BTC, ETH = "btcusdt@trade", "ethusdt@trade"


class Recorder:
    """Messages and link reports in the order they reached one subscriber."""

    def __init__(self) -> None:
        self.got: list[object] = []

    def message(self, msg: dict) -> None:
        self.got.append(msg)

    def link(self, state: LinkState, streams: tuple[str, ...]) -> None:
        self.got.append((state, streams))

    @property
    def reports(self) -> list[tuple[LinkState, tuple[str, ...]]]:
        return [m for m in self.got if isinstance(m, tuple)]

    def trades_after(self, report: int) -> int:
        """Trades delivered after the ``report``-th link report."""
        at = self.got.index(self.reports[report])
        return len(trade_ids([m for m in self.got[at + 1:] if isinstance(m, dict)]))


async def _trades_flow(rec: Recorder) -> None:
    n = len(rec.got)
    await until(lambda: len(rec.got) > n + 5, what="trades")


async def test_a_drop_is_reported_down_then_up_with_each_subscribers_streams(sim: Simulator) -> None:
    both, eth, silent = Recorder(), Recorder(), Recorder()
    async with manager(sim) as sm:
        await sm.subscribe([BTC, ETH], both.message, on_link=both.link)
        await sm.subscribe(ETH, eth.message, on_link=eth.link)
        await sm.subscribe(BTC, silent.message)
        [conn] = sm.connections
        await _trades_flow(both)
        sim.faults.drop()
        await until(lambda: len(both.reports) == 2 and len(eth.reports) == 2, what="down and up")
        # Trades resume on the new socket, and nothing more is reported.
        await until(lambda: both.trades_after(0) > 5 and eth.trades_after(0) > 5, what="trades after up")
        assert conn.drops == 1
    assert [(state, set(streams)) for state, streams in both.reports] == [("down", {BTC, ETH}),
                                                                           ("up", {BTC, ETH})]
    assert eth.reports == [("down", (ETH,)), ("up", (ETH,))]
    assert silent.reports == []


async def test_a_rotation_is_not_reported(sim: Simulator) -> None:
    rec = Recorder()
    async with manager(sim) as sm:
        await sm.subscribe(BTC, rec.message, on_link=rec.link)
        [conn] = sm.connections
        await _trades_flow(rec)
        sim.faults.server_shutdown(delay_s=0.5)
        await until(lambda: conn.rotations == 1, what="rotation")
        # Past the old socket's close (at the latest 0.5 s after the notice) and into the new one's data.
        await until(lambda: len(sim.stream_server.connections) == 1, what="the old socket closed")
        await _trades_flow(rec)
        assert conn.drops == 0
    assert rec.reports == []
    ids = trade_ids(rec.got)  # type: ignore[arg-type]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


async def test_a_hook_that_raises_does_not_stop_the_connection(sim: Simulator) -> None:
    rec = Recorder()

    def broken(state: LinkState, streams: tuple[str, ...]) -> None:
        rec.link(state, streams)
        raise RuntimeError("subscriber bug")

    async with manager(sim) as sm:
        await sm.subscribe(BTC, rec.message, on_link=broken)
        [conn] = sm.connections
        await _trades_flow(rec)
        sim.faults.drop()
        await until(lambda: len(rec.reports) == 2, what="down and up")
        await until(lambda: rec.trades_after(1) > 5, what="trades after up")
        assert sm.connections == [conn] and not conn.gave_up
    assert rec.reports == [("down", (BTC,)), ("up", (BTC,))]
