"""binance-ws threaded client: the seed-compatible BinanceSocketManager (callbacks on its loop thread).

One stream: ``start_trade_socket``; several: ``start_multiplex_socket`` (wrapped messages), the calls a
python-binance user makes.
"""

from __future__ import annotations

from typing import Any

from probe import Probe, run_guarded

from binance_ws.markets import local_market
from binance_ws.websockets import BinanceSocketManager


def main(probe: Probe) -> None:
    job = probe.job
    on = probe.hook()
    error = probe.error
    streams = job["streams"]

    def callback(msg: Any) -> None:
        try:
            on(msg["E"])
        except KeyError:  # an error event (documented shape, no "E")
            error(msg)

    def wrapped(msg: Any) -> None:
        try:
            on(msg["data"]["E"])
        except KeyError:  # an error event (documented shape, no "data")
            error(msg)

    bm = BinanceSocketManager(market=local_market(job["url"], "http://127.0.0.1:9"))
    bm.start()
    try:
        if len(streams) == 1:
            bm.start_trade_socket(streams[0].split("@")[0].upper(), callback)
        else:
            bm.start_multiplex_socket(streams, wrapped)
        probe.ready()
        probe.wait()
    finally:
        bm.close()


if __name__ == "__main__":
    run_guarded(main)
