"""The seed's threaded BinanceSocketManager against the simulator over loopback, from plain threads.

The simulator runs on its own event-loop thread here, so each test is ordinary synchronous code, as a
seed user's program is: it starts sockets, waits for its callbacks and stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from binance_ws import BinanceSocketManager, errors
from binance_ws.client import Client
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.enums import KLINE_INTERVAL_1SECOND, WEBSOCKET_DEPTH_5
from binance_ws.markets import local_market
from binance_ws.sim import Simulator
from tests.userdata_support import accounts_sim, best, make_account

T = TypeVar("T")

#: Reconnect fast: the schedule's shape is tested in tests/core/test_backoff.py.
FAST = BackoffPolicy(initial_s=0.02, factor=2.0, max_s=0.1, jitter=0.1, max_retries=3)


class SimThread:
    """A running simulator on a background loop; ``call`` runs a coroutine or function there."""

    def __init__(self, accounts: bool = False) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-sim", daemon=True)
        self.thread.start()

        async def make() -> Simulator:
            if not accounts:
                return await Simulator(flow_rate=200.0).start()
            async with contextlib.AsyncExitStack() as stack:
                sim = await stack.enter_async_context(accounts_sim())
                self._stack = stack.pop_all()
            return sim

        self._stack: contextlib.AsyncExitStack | None = None
        self.sim = self.call(make())

    def call(self, what: Coroutine[Any, Any, T] | Callable[[], T]) -> T:
        if asyncio.iscoroutine(what):
            return asyncio.run_coroutine_threadsafe(what, self.loop).result(10)

        async def run() -> T:
            return what()  # type: ignore[operator,return-value]

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        self.call(self._stack.aclose() if self._stack is not None else self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def simt() -> Iterator[SimThread]:
    s = SimThread()
    yield s
    s.stop()


@pytest.fixture
def bm(simt: SimThread) -> Iterator[BinanceSocketManager]:
    manager = BinanceSocketManager(None, market=simt.sim.market, backoff=FAST)
    yield manager
    manager.close()


class Inbox:
    """A thread-safe message list that a test can wait on."""

    def __init__(self, raise_every: int = 0) -> None:
        self.items: list[Any] = []
        self._cond = threading.Condition()
        self._raise_every = raise_every

    def __call__(self, msg: Any) -> None:
        with self._cond:
            self.items.append(msg)
            self._cond.notify_all()
        if self._raise_every and len(self.items) % self._raise_every == 0:
            raise RuntimeError("a buggy callback")

    def wait(self, cond: Callable[[list[Any]], bool], timeout: float = 5.0, what: str = "messages") -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: cond(self.items), timeout):
                raise AssertionError(f"timed out waiting for {what}; got {self.items[-3:]}")

    def count(self, n: int, timeout: float = 5.0) -> list[Any]:
        self.wait(lambda items: len(items) >= n, timeout, f"{n} messages")
        return list(self.items)


def test_every_seed_socket_delivers_its_payloads(simt: SimThread, bm: BinanceSocketManager) -> None:
    trades = Inbox()
    # Attached before start(): nothing connects until then.
    assert bm.start_trade_socket("BTCUSDT", trades) == "btcusdt@trade"
    bm.start()
    sockets: list[tuple[str | bool, Inbox, Callable[[Any], bool]]] = [
        ("btcusdt@trade", trades, lambda m: m["e"] == "trade" and m["s"] == "BTCUSDT")]

    def start(fn: Callable[..., str | bool], *args: Any, check: Callable[[Any], bool], **kw: Any) -> None:
        inbox = Inbox()
        sockets.append((fn(*args, inbox, **kw), inbox, check))

    start(bm.start_aggtrade_socket, "ETHUSDT", check=lambda m: m["e"] == "aggTrade" and m["s"] == "ETHUSDT")
    start(bm.start_kline_socket, "BTCUSDT", interval=KLINE_INTERVAL_1SECOND,
          check=lambda m: m["e"] == "kline" and m["k"]["i"] == "1s")
    start(bm.start_depth_socket, "BTCUSDT", check=lambda m: m["e"] == "depthUpdate" and m["U"] <= m["u"])
    start(bm.start_depth_socket, "BTCUSDT", depth=WEBSOCKET_DEPTH_5, interval=100,
          check=lambda m: set(m) == {"lastUpdateId", "bids", "asks"} and len(m["bids"]) <= 5)
    start(bm.start_symbol_ticker_socket, "BNBBTC",
          check=lambda m: m["e"] == "24hrTicker" and m["s"] == "BNBBTC")
    start(bm.start_symbol_book_ticker_socket, "BTCUSDT", check=lambda m: m["s"] == "BTCUSDT" and "u" in m)
    start(bm.start_multiplex_socket, ["btcusdt@trade", "ethusdt@aggTrade"],
          check=lambda m: set(m) == {"stream", "data"}
          and m["data"]["s"] == m["stream"].split("@")[0].upper())
    start(bm.start_miniticker_socket,
          check=lambda m: isinstance(m, list) and all(x["e"] == "24hrMiniTicker" for x in m))
    start(bm.start_ticker_socket,
          check=lambda m: isinstance(m, list) and all(x["e"] == "24hrTicker" for x in m)
          and len({x["s"] for x in m}) == len(m))
    start(bm.start_book_ticker_socket, check=lambda m: set(m) >= {"u", "s", "b", "B", "a", "A"})
    keys = [k for k, _, _ in sockets]
    assert keys == ["btcusdt@trade", "ethusdt@aggTrade", "btcusdt@kline_1s", "btcusdt@depth",
                    "btcusdt@depth5@100ms", "bnbbtc@ticker", "btcusdt@bookTicker",
                    "streams=btcusdt@trade/ethusdt@aggTrade",
                    "!miniTicker@arr@1000ms", "!ticker@arr", "!bookTicker"]
    trades.count(5)
    for key, inbox, check in sockets:
        msgs = inbox.count(1, timeout=10)
        assert all(check(m) for m in msgs), (key, msgs[:2])
    # The all-symbol book ticker covers every symbol the exchange lists.
    books = sockets[-1][1]
    books.wait(lambda items: {m["s"] for m in items} == set(simt.sim.symbols()), timeout=10,
               what="a book ticker of every symbol")
    # Trade ids arrive in order, none lost or repeated.
    ids = [m["t"] for m in trades.items]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_duplicates_return_false_and_stop_restarts(bm: BinanceSocketManager) -> None:
    bm.start()
    a, b = Inbox(), Inbox()
    assert bm.start_trade_socket("BTCUSDT", a) == "btcusdt@trade"
    assert bm.start_trade_socket("btcusdt", b) is False  # the same stream: nothing new opens
    assert bm.start_multiplex_socket(["btcusdt@trade"], b) == "streams=btcusdt@trade"
    assert bm.start_multiplex_socket(["btcusdt@trade"], b) is False
    a.count(3)
    bm.stop_socket("btcusdt@trade")
    n = len(a.items)
    b.wait(lambda items: len(items) > 10, what="the multiplex socket to keep going")
    assert len(a.items) == n  # stopped: nothing more after stop_socket returned
    assert all("stream" in m for m in b.items)
    # A stopped socket can be started again.
    c = Inbox()
    assert bm.start_trade_socket("BTCUSDT", c) == "btcusdt@trade"
    c.count(3)
    bm.stop_socket("no-such-key")


def test_seed_per_kind_stops(bm: BinanceSocketManager) -> None:
    bm.start()
    depth_diff, depth5, eth_depth, trades = Inbox(), Inbox(), Inbox(), Inbox()
    # 100 ms variants keep the test short; the stop matches every speed and level of the symbol.
    bm.start_depth_socket("BTCUSDT", depth_diff, interval=100)
    bm.start_depth_socket("BTCUSDT", depth5, depth=5)
    bm.start_depth_socket("ETHUSDT", eth_depth, interval=100)
    bm.start_trade_socket("BTCUSDT", trades)
    for inbox in (depth_diff, depth5, eth_depth, trades):
        inbox.count(1, timeout=10)
    bm.stop_depth_socket("BTCUSDT")
    counts = len(depth_diff.items), len(depth5.items)
    n_eth, n_trades = len(eth_depth.items), len(trades.items)
    eth_depth.wait(lambda items: len(items) > n_eth + 1, timeout=10, what="ETH depth to go on")
    trades.wait(lambda items: len(items) > n_trades + 5, what="trades to go on")
    assert (len(depth_diff.items), len(depth5.items)) == counts
    bm.stop_trade_socket("BTCUSDT")
    assert bm.start_trade_socket("BTCUSDT", trades) == "btcusdt@trade"


def test_close_then_start_again(simt: SimThread) -> None:
    bm = BinanceSocketManager(None, market=simt.sim.market)
    first = Inbox()
    bm.start_trade_socket("BTCUSDT", first)
    bm.start()
    first.count(3)
    bm.close()
    n = len(first.items)
    assert not [t for t in threading.enumerate() if t.name == "binance-ws-sockets"]
    assert simt.call(lambda: len(simt.sim.stream_server.connections)) == 0 or _wait_no_connections(simt)
    assert len(first.items) == n
    # After close() the sockets are gone: starting one again is a fresh start, and start() is needed.
    second = Inbox()
    assert bm.start_trade_socket("BTCUSDT", second) == "btcusdt@trade"
    time.sleep(0.2)
    assert second.items == []
    bm.start()
    second.count(3)
    bm.close()
    bm.close()  # idempotent


def _wait_no_connections(simt: SimThread) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if simt.call(lambda: len(simt.sim.stream_server.connections)) == 0:
            return True
        time.sleep(0.02)
    return False


def test_invalid_input_is_refused_before_connecting(bm: BinanceSocketManager) -> None:
    cb = Inbox()
    with pytest.raises(errors.InvalidStreamError, match="unknown kline interval '2m'"):
        bm.start_kline_socket("BNBBTC", cb, interval="2m")
    with pytest.raises(errors.InvalidStreamError, match="depth level 7 is not one of 5, 10, 20"):
        bm.start_depth_socket("BNBBTC", cb, depth=7)
    with pytest.raises(errors.InvalidStreamError, match="did you mean 'bnbbtc@trade'"):
        bm.start_multiplex_socket(["BNBBTC@trade"], cb)
    with pytest.raises(errors.InvalidStreamError, match="start_user_socket"):
        bm.start_multiplex_socket(["bnbbtc@trade", "x" * 64], cb)
    with pytest.raises(errors.InvalidStreamError, match="unknown stream type 'foo'"):
        bm.start_multiplex_socket(["bnbbtc@foo"], cb)
    with pytest.raises(errors.InvalidStreamError, match="symbol"):
        bm.start_trade_socket("BNB/BTC", cb)
    with pytest.raises(errors.InvalidStreamError, match="update_time"):
        bm.start_miniticker_socket(cb, update_time=500)
    with pytest.raises(ValueError, match="API key"):
        bm.start_user_socket(cb)
    bm.start()
    assert bm.start_trade_socket("BNBBTC", cb) == "bnbbtc@trade"  # nothing half-registered above


def test_callback_that_raises_is_logged_and_the_stream_goes_on(
        bm: BinanceSocketManager, caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox(raise_every=2)
    with caplog.at_level(logging.ERROR):
        bm.start_trade_socket("BTCUSDT", inbox)
        bm.start()
        msgs = inbox.count(10)
    assert any("a buggy callback" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    ids = [m["t"] for m in msgs]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_miniticker_update_time_conflates(bm: BinanceSocketManager) -> None:
    inbox = Inbox()
    stamps: list[float] = []

    def on_batch(batch: Any) -> None:
        stamps.append(time.monotonic())
        inbox(batch)

    assert bm.start_miniticker_socket(on_batch, update_time=1100) == "!miniTicker@arr@1100ms"
    bm.start()
    inbox.count(2, timeout=10)
    # Delivered every update_time at most (a loaded machine only makes the gaps longer).
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(stamps))
    for batch in inbox.items:
        assert isinstance(batch, list) and batch
        assert len({x["s"] for x in batch}) == len(batch)  # newest per symbol, once


def test_max_retries_gives_the_exact_error_and_stops_the_socket(simt: SimThread) -> None:
    # The seed's default of 5 reconnects, on a compressed schedule.
    fast5 = BackoffPolicy(initial_s=0.02, factor=2.0, max_s=0.1, jitter=0.1, max_retries=5)
    bm = BinanceSocketManager(None, market=simt.sim.market, backoff=fast5)
    inbox = Inbox()
    bm.start_trade_socket("BTCUSDT", inbox)
    bm.start()
    inbox.count(3)
    simt.call(lambda: simt.sim.faults.refuse(503))
    simt.call(lambda: simt.sim.faults.drop())
    inbox.wait(lambda items: any(m.get("e") == "error" and m.get("m") == errors.MSG_MAX_RETRIES
                                 for m in items), timeout=10, what="the max-retries event")
    final = [m for m in inbox.items if m.get("e") == "error" and m.get("m") == errors.MSG_MAX_RETRIES]
    assert final == [{"e": "error", "m": "Max reconnect retries reached"}]
    assert simt.call(lambda: simt.sim.faults.counts["refused"]) == 5  # the 5th failed reconnect ends it
    # Everything a callback gets is Binance's payload or the documented error shape.
    assert all(m.get("e") in ("trade", "error") for m in inbox.items)
    assert all(isinstance(m["m"], str) for m in inbox.items if m["e"] == "error")
    # The socket stopped: it can be started again once the exchange accepts connections.
    simt.call(lambda: simt.sim.faults.accept())
    again = Inbox()
    assert bm.start_trade_socket("BTCUSDT", again) == "btcusdt@trade"
    again.count(3, timeout=10)
    bm.close()


def test_multiplex_socket_with_a_refused_stream_keeps_the_others(bm: BinanceSocketManager) -> None:
    # The seed docs' example, with a symbol the simulator does not list (LTCBTC) in NEOBTC's place.
    inbox = Inbox()
    assert bm.start_multiplex_socket(["bnbbtc@aggTrade", "ltcbtc@ticker"], inbox) == \
        "streams=bnbbtc@aggTrade/ltcbtc@ticker"
    bm.start()

    def errors_in(items: list[Any]) -> list[dict[str, Any]]:
        return [m for m in items if m.get("e") == "error"]

    inbox.wait(lambda items: bool(errors_in(items)), timeout=10, what="the refusal")
    count = len([m for m in inbox.items if m.get("stream") == "bnbbtc@aggTrade"])
    inbox.wait(lambda items: len([m for m in items if m.get("stream") == "bnbbtc@aggTrade"]) >= count + 3,
               timeout=15, what="aggTrades after the refusal")
    [event] = errors_in(inbox.items)
    assert {k: event[k] for k in ("e", "type", "m", "stream", "code")} == {
        "e": "error", "type": "subscription", "m": "Subscription refused", "stream": "ltcbtc@ticker",
        "code": 2}
    assert "invalid stream" in event["msg"]
    assert {m["stream"] for m in inbox.items if m is not event} == {"bnbbtc@aggTrade"}


def test_a_socket_refused_in_full_names_each_stream(bm: BinanceSocketManager) -> None:
    inbox = Inbox()
    bm.start_multiplex_socket(["ltcbtc@ticker", "xyzbtc@trade"], inbox)
    bm.start()
    inbox.count(2, timeout=10)
    assert sorted((m["type"], m["stream"], m["code"]) for m in inbox.items) == [
        ("subscription", "ltcbtc@ticker", 2), ("subscription", "xyzbtc@trade", 2)]
    assert bm.wait_ready("streams=ltcbtc@ticker/xyzbtc@trade", timeout=1) is False


def test_socket_started_from_a_callback(bm: BinanceSocketManager) -> None:
    klines = Inbox()
    keys: list[str | bool] = []

    def on_trade(msg: dict[str, Any]) -> None:
        if not keys:
            keys.append(bm.start_kline_socket("BTCUSDT", klines, interval=KLINE_INTERVAL_1SECOND))

    bm.start_trade_socket("BTCUSDT", on_trade)
    bm.start()
    klines.count(1, timeout=10)
    assert keys == ["btcusdt@kline_1s"]


def test_user_socket_delivers_account_events() -> None:
    simt = SimThread(accounts=True)
    try:
        creds = simt.call(lambda: make_account(simt.sim, "alice", "HMAC"))
        client = Client(creds.api_key, creds.secret, market=simt.sim.market, env={})
        bm = BinanceSocketManager(client)  # the client says where to connect
        inbox = Inbox()
        assert bm.start_user_socket(inbox) == "userData"
        assert bm.start_user_socket(inbox) is False
        bm.start()

        def rest_a_buy() -> None:
            bid, _ = best(simt.sim)
            accounts = simt.sim.accounts  # type: ignore[attr-defined]
            accounts.place_order(accounts.account("alice"), {
                "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                "quantity": "0.01000", "price": bid})

        # The subscription is made asynchronously after start(): retry until the event shows up.
        deadline = time.monotonic() + 10
        while not any(m.get("e") == "executionReport" for m in inbox.items):
            assert time.monotonic() < deadline, inbox.items
            simt.call(rest_a_buy)
            with contextlib.suppress(AssertionError):
                inbox.wait(lambda items: any(m.get("e") == "executionReport" for m in items), timeout=0.5)
        report = next(m for m in inbox.items if m.get("e") == "executionReport")
        assert (report["s"], report["S"], report["x"], report["X"]) == ("BTCUSDT", "BUY", "NEW", "NEW")
        assert creds.secret is not None and creds.secret not in repr(bm)
        bm.close()
        client.close()
    finally:
        simt.stop()


def test_wait_ready_then_an_order_always_sees_its_execution_report() -> None:
    # The README's user-data snippet: place an order right after start(). Without waiting for the
    # subscription the report was missed in 2 runs of 6; waited ready, it is seen every time.
    simt = SimThread(accounts=True)
    try:
        creds = simt.call(lambda: make_account(simt.sim, "carol", "HMAC"))
        client = Client(creds.api_key, creds.secret, market=simt.sim.market, env={})
        for run in range(5):
            bm = BinanceSocketManager(client)
            inbox = Inbox()
            assert bm.wait_ready() is False  # not started
            bm.start_user_socket(inbox)
            bm.start()
            assert bm.wait_ready("userData", timeout=10) is True
            bid, _ = simt.call(lambda: best(simt.sim))
            order = client.create_order("BTCUSDT", "BUY", "LIMIT", timeInForce="GTC", quantity="0.01000",
                                        price=bid, newClientOrderId=f"run{run}")
            tag = f"run{run}"
            inbox.wait(lambda items, tag=tag: any(m.get("e") == "executionReport" and m.get("c") == tag
                                                  for m in items), timeout=5, what=f"{tag}'s executionReport")
            report = next(m for m in inbox.items if m.get("c") == tag)
            assert report["i"] == order["orderId"] and report["X"] == "NEW"
            bm.close()
        client.close()
    finally:
        simt.stop()


def test_wait_ready_for_market_sockets(simt: SimThread) -> None:
    # Reconnects wait a second, forever: long enough to see a dropped socket not ready.
    slow = BackoffPolicy(initial_s=1.0, factor=1.0, max_s=1.0, jitter=0.1, max_retries=None)
    bm = BinanceSocketManager(None, market=simt.sim.market, backoff=slow, max_reconnects=None)
    inbox = Inbox()
    bm.start_trade_socket("BTCUSDT", inbox)
    bm.start_multiplex_socket(["ethusdt@trade", "bnbbtc@aggTrade"], inbox)
    assert bm.wait_ready(timeout=1) is False  # nothing runs before start()
    bm.start()
    assert bm.wait_ready(timeout=10) is True
    assert bm.wait_ready("btcusdt@trade", timeout=1) is True
    assert bm.wait_ready("nosuch@trade", timeout=1) is False
    # A socket whose only stream is refused could not start: not ready, and told why.
    bm.start_trade_socket("LTCBTC", inbox)
    assert bm.wait_ready("ltcbtc@trade", timeout=10) is False
    assert bm.wait_ready(timeout=10) is True  # the failed one is forgotten; the others are live
    # While the exchange refuses to reconnect, the dropped sockets are not ready; once it accepts, they are.
    simt.call(lambda: simt.sim.faults.refuse(503))
    simt.call(lambda: simt.sim.faults.drop())
    time.sleep(0.2)
    assert bm.wait_ready(timeout=0.3) is False
    simt.call(lambda: simt.sim.faults.accept())
    assert bm.wait_ready(timeout=10) is True
    count = len(inbox.items)
    inbox.count(count + 3, timeout=10)
    bm.close()
    assert bm.wait_ready(timeout=1) is False


def test_user_socket_gives_up_like_the_others_and_can_start_again() -> None:
    simt = SimThread(accounts=True)
    try:
        creds = simt.call(lambda: make_account(simt.sim, "bob", "HMAC"))
        client = Client(creds.api_key, creds.secret, market=simt.sim.market, env={})
        bm = BinanceSocketManager(client, backoff=FAST)
        inbox = Inbox()
        bm.start_user_socket(inbox)
        bm.start()
        # Connected and subscribed once the WS API connection exists on the server.
        deadline = time.monotonic() + 10
        while not simt.call(lambda: [c for c in simt.sim.stream_server.connections.values()
                                     if c.kind == "ws-api"]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        simt.call(lambda: simt.sim.faults.refuse(503))
        simt.call(lambda: simt.sim.faults.drop())
        inbox.wait(lambda items: {"e": "error", "m": errors.MSG_MAX_RETRIES} in items, timeout=10,
                   what="the max-retries event")
        simt.call(lambda: simt.sim.faults.accept())
        assert bm.start_user_socket(inbox) == "userData"  # the given-up socket no longer counts
        bm.close()
        client.close()
    finally:
        simt.stop()


@pytest.mark.parametrize("fault", ["drop", "close-1011", "server-shutdown"])
def test_socket_heals_after_a_fault(simt: SimThread, bm: BinanceSocketManager, fault: str) -> None:
    inbox = Inbox()
    bm.start_trade_socket("BTCUSDT", inbox)
    bm.start()
    inbox.count(3)
    faults = simt.sim.faults
    simt.call({"drop": lambda: faults.drop(), "close-1011": lambda: faults.close(1011),
               "server-shutdown": lambda: faults.server_shutdown(0.2)}[fault])
    n = len(inbox.items)
    inbox.wait(lambda items: len([m for m in items[n:] if m.get("e") == "trade"]) >= 10, timeout=10,
               what="trades after the fault")
    errors_seen = [m for m in inbox.items if m.get("e") == "error"]
    # Only the documented error shape, never a max-retries end: the socket healed.
    assert all(isinstance(m["m"], str) and m.get("type") in (errors.ERR_GAP, errors.ERR_DISCONNECTED)
               for m in errors_seen), errors_seen
    trades = [m["t"] for m in inbox.items if m.get("e") == "trade"]
    assert trades == sorted(set(trades))  # nothing delivered twice or out of order
    if fault == "server-shutdown":
        # Make-before-break: the replacement connection was up before the old one closed.
        assert not errors_seen and trades == list(range(trades[0], trades[-1] + 1))


def test_depth_cache_syncs_to_the_engine_book_and_stops(simt: SimThread, bm: BinanceSocketManager) -> None:
    books = Inbox()
    assert bm.start_depth_cache(lambda cache: books(cache.copy()), "BTCUSDT", limit=1000) == \
        "btcusdt@depthcache"
    assert bm.start_depth_cache(books, "btcusdt") is False
    with pytest.raises(errors.InvalidStreamError):
        bm.start_depth_cache(books, "BTC USDT")
    bm.start()
    books.wait(lambda items: any(b.state.value == "SYNCED" for b in items), what="a synced book")
    # Freeze the flow, let the last diffs arrive, then the synced book must be the engine's book.
    simt.call(lambda: setattr(simt.sim.config, "flow_rate", 0.0))
    engine_id = simt.call(lambda: simt.sim.exchange.symbols["BTCUSDT"].update_id)
    books.wait(lambda items: items[-1].update_id == simt.call(
        lambda: simt.sim.exchange.symbols["BTCUSDT"].update_id), timeout=5, what="the last update")
    book = books.items[-1]
    assert book.state.value == "SYNCED" and book.update_id >= engine_id
    bids, asks = simt.call(lambda: simt.sim.exchange.book_levels("BTCUSDT"))
    assert {float(p): float(q) for p, q in bids.items()} == dict(book.get_bids())
    assert {float(p): float(q) for p, q in asks.items()} == dict(book.get_asks())
    bm.stop_depth_cache("BTCUSDT")
    count = len(books.items)
    simt.call(lambda: setattr(simt.sim.config, "flow_rate", 200.0))
    time.sleep(0.3)
    assert len(books.items) == count


NOT_STREAM_NAMES: list[Any] = [[1, None], [b"bnbbtc@trade"], b"bnbbtc@trade", None, 5, [{}],
                               ["bnbbtc@trade", 7]]


@pytest.mark.parametrize("names", NOT_STREAM_NAMES, ids=repr)
def test_stream_names_that_are_not_strings_raise_invalid_stream_error(bm: BinanceSocketManager,
                                                                      names: Any) -> None:
    cb = Inbox()
    bm.start()
    with pytest.raises(errors.InvalidStreamError, match="stream name"):
        bm.start_multiplex_socket(names, cb)
    with pytest.raises(errors.InvalidStreamError):
        bm.start_depth_socket("BNBBTC", cb, depth=float("inf"))
    assert bm.start_trade_socket("BNBBTC", cb) == "bnbbtc@trade"  # nothing half-registered above
    cb.count(1)


class RefusingServer:
    """An HTTP server on 127.0.0.1 that answers every WebSocket handshake with 503 and hangs up: a socket
    pointed at it never gets a connection and sits in its reconnect backoff."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.attempts = 0
        self.thread = threading.Thread(target=self._serve, name="test-refusing-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by the test
            with conn:
                conn.settimeout(5)
                request = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in request:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    self.attempts += 1
                    conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


@pytest.mark.parametrize("stop", ["stop_socket", "stop_trade_socket"])
def test_stop_returns_promptly_while_the_socket_waits_to_reconnect(stop: str) -> None:
    server = RefusingServer()
    market = local_market(f"ws://127.0.0.1:{server.port}", "http://127.0.0.1:1")
    bm = BinanceSocketManager(None, market=market, max_reconnects=None,
                              backoff=BackoffPolicy(initial_s=0.3, factor=2.0, max_s=5.0, max_retries=None))
    try:
        cb = Inbox()
        key = bm.start_trade_socket("BNBBTC", cb)
        bm.start()
        deadline = time.monotonic() + 10
        while server.attempts < 2:  # refused at least once: in the backoff now
            assert time.monotonic() < deadline, "the socket never tried to connect"
            time.sleep(0.01)
        started = time.monotonic()
        if stop == "stop_socket":
            bm.stop_socket(key)  # type: ignore[arg-type]
        else:
            bm.stop_trade_socket("BNBBTC")
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"{stop} took {elapsed:.1f} s"
        # Nothing of it is left on the engine: no stream, no connection retrying.
        manager = bm._manager
        assert manager is not None
        deadline = time.monotonic() + 5
        while manager.streams or manager.connections:
            assert time.monotonic() < deadline, "the stopped socket is still registered"
            time.sleep(0.01)
        assert bm.start_trade_socket("BNBBTC", cb) == "bnbbtc@trade"
    finally:
        bm.close()
        server.close()
