"""unicorn-binance-websocket-api 2.16.1 (its own venv): BinanceWebSocketApiManager with
``websocket_base_uri`` pointed at the local server, ``output="dict"`` and a ``process_stream_data``
callback (called on its worker thread). Update checks (GitHub) are off: nothing leaves the machine."""

from __future__ import annotations

from typing import Any

from probe import Probe, run_guarded
from unicorn_binance_websocket_api import BinanceWebSocketApiManager


def main(probe: Probe) -> None:
    job = probe.job
    on = probe.hook()
    error = probe.error
    streams = job["streams"]

    def callback(msg: Any) -> None:
        data = msg.get("data") if isinstance(msg, dict) else None
        if data is None or "E" not in data:
            error(msg)  # subscription answers and status messages also come here
        else:
            on(data["E"])

    ubwa = BinanceWebSocketApiManager(exchange="binance.com", warn_on_update=False,
                                      websocket_base_uri=job["url"] + "/", output_default="dict",
                                      disable_colorama=True)
    try:
        stream_id = ubwa.create_stream(channels="trade", markets=[s.split("@")[0] for s in streams],
                                       process_stream_data=callback, output="dict")
        # create_stream returns before connecting: ready means connected, as for the other clients.
        if not ubwa.wait_till_stream_has_started(stream_id, timeout=30):
            raise RuntimeError("stream did not start within 30 s")
        probe.ready()
        probe.wait()
    finally:
        ubwa.stop_manager()


if __name__ == "__main__":
    run_guarded(main)
