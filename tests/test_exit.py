"""A program using the threaded manager exits by itself: checked in a fresh interpreter per case."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_PROGRAM = textwrap.dedent('''
    import asyncio, threading
    from binance_ws import BinanceSocketManager
    from binance_ws.sim import Simulator

    # The exchange runs on a daemon thread of its own, as a remote Binance would be elsewhere.
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    sim = asyncio.run_coroutine_threadsafe(Simulator(flow_rate=200.0).start(), loop).result(10)

    got = threading.Event()
    bm = BinanceSocketManager(None, market=sim.market)

    def on_trade(msg):
        got.set()
        if MODE == "close-in-callback":
            bm.close()

    bm.start_trade_socket("BTCUSDT", on_trade)
    bm.start()
    assert got.wait(10), "no trade arrived"
    if MODE == "close":
        bm.close()
    elif MODE == "close-in-callback":
        bm.join(10)
    if MODE != "no-close":
        ours = [t.name for t in threading.enumerate() if t.name.startswith("binance-ws")]
        print("ours", ours)
    print("non-daemon", [t.name for t in threading.enumerate()
                         if not t.daemon and t is not threading.main_thread()])
    # No explicit exit: the interpreter must finish on its own.
''')


@pytest.mark.parametrize("mode", ["close", "close-in-callback", "no-close"])
def test_program_exits_by_itself(mode: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"MODE = {mode!r}\n{_PROGRAM}"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert "non-daemon []" in lines, proc.stdout
    if mode != "no-close":
        # close() leaves no thread of ours behind, daemon or not.
        assert "ours []" in lines, proc.stdout
