"""The seed examples with python-binance's futures calls (its docs' style: a threaded
``BinanceSocketManager``, ``bm.start_futures_*(callback, ...)``), imported from ``binance_ws``, run as a
user runs them against ``binance-ws sim --market usdm`` started as a subprocess: only the market row
(the URLs the command prints) differs from what would reach Binance."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from binance_ws import BinanceSocketManager, Client
from binance_ws.markets import USDM, local_market

DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def usdm_sim() -> Iterator[tuple[str, str]]:
    """``binance-ws sim --market usdm`` on free ports: (stream base URL, REST base URL)."""
    proc = subprocess.Popen([sys.executable, "-m", "binance_ws.cli", "sim", "--market", "usdm",
                             "--stream-port", "0", "--rest-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    try:
        lines: dict[str, str] = {}
        while "symbols" not in lines:
            line = proc.stdout.readline()
            assert line, "binance-ws sim ended before it served"
            key, _, value = line.partition(":")
            lines[key] = value.strip()
        stream = lines["public"].split()[0].removesuffix("/public/ws/<stream>")
        rest = lines["REST"].removesuffix("/fapi/v1/exchangeInfo")
        yield stream, rest
    finally:
        proc.terminate()
        proc.wait(30)


class Inbox:
    """What the callbacks received, by conn_key, for the test thread to wait on."""

    def __init__(self) -> None:
        self.got: dict[str, list[Any]] = {}
        self._cond = threading.Condition()

    def callback(self, key: str) -> Any:
        def handle(msg: Any) -> None:
            with self._cond:
                self.got.setdefault(key, []).append(msg)
                self._cond.notify_all()
        return handle

    def wait(self, keys: set[str], n: int = 2) -> None:
        end = time.monotonic() + DEADLINE_S
        with self._cond:
            while not all(len(self.got.get(k, [])) >= n for k in keys):
                left = end - time.monotonic()
                missing = {k for k in keys if len(self.got.get(k, [])) < n}
                assert left > 0, f"no messages for {missing}"
                self._cond.wait(left)


def test_seed_futures_examples_against_binance_ws_sim_market_usdm(usdm_sim: tuple[str, str]) -> None:
    stream, rest = usdm_sim
    market = local_market(f"{stream}/public", rest, base=USDM)  # the one line that is not Binance's
    client = Client(market=market, env={})
    inbox = Inbox()
    bm = BinanceSocketManager(client, market=market)
    bm.start()
    try:
        # As in python-binance's docs, names and argument order unchanged.
        bm.start_symbol_mark_price_socket(callback=inbox.callback("mark"), symbol="BTCUSDT")
        bm.start_all_mark_price_socket(inbox.callback("all_mark"))
        bm.start_futures_depth_socket(inbox.callback("depth"), "BTCUSDT", depth="5")
        bm.start_kline_futures_socket(inbox.callback("kline"), "BTCUSDT")
        bm.start_futures_multiplex_socket(inbox.callback("multiplex"),
                                          ["btcusdt@aggTrade", "ethusdt@bookTicker"])
        bm.start_futures_depth_cache(inbox.callback("book"), "BTCUSDT")
        inbox.wait({"mark", "all_mark", "depth", "kline", "multiplex", "book"})
        got = inbox.got
        assert {(m["e"], m["s"]) for m in got["mark"]} == {("markPriceUpdate", "BTCUSDT")}
        assert {m["s"] for m in got["all_mark"][0]} == {"BTCUSDT", "ETHUSDT"}
        depth = got["depth"][-1]
        assert depth["e"] == "depthUpdate" and len(depth["b"]) <= 5 and "pu" in depth
        kline = got["kline"][-1]
        assert (kline["e"], kline["ps"], kline["ct"]) == ("continuous_kline", "BTCUSDT", "PERPETUAL")
        assert {m["stream"] for m in got["multiplex"]} <= {"btcusdt@aggTrade", "ethusdt@bookTicker"}
        # The depth cache synced from /fapi/v1/depth by PROTOCOL 5.2: a book, best bid under best ask.
        cache = got["book"][-1]
        bids, asks = cache.get_bids(), cache.get_asks()
        assert bids and asks and bids[0][0] < asks[0][0]
        snapshot = client.futures_order_book("BTCUSDT", 5)
        assert {"lastUpdateId", "E", "T"} <= snapshot.keys()
    finally:
        bm.close()
        client.close()
