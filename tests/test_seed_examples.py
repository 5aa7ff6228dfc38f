"""python-binance's documented examples, imports changed only, against ``binance-ws sim`` and its printed key.

Issue 13, "Done when": the seed's websocket docs (trade socket, the ``['bnbbtc@aggTrade', 'neobtc@ticker']``
multiplex socket, the user socket) and its order example run in their own interpreter, unchanged but for
their imports, against the real ``binance-ws sim`` command: the API key and secret are the ones it printed
(pasted as a reader would), the endpoint its printed ``export BINANCE_WS_MARKET=...`` line. What the seed
leaves to the reader is marked ``# (glue)``: waiting until the sockets are live before the order, and
waiting for Enter before closing (the test presses it once every expected message has been printed).
"""

from __future__ import annotations

import asyncio
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

from binance_ws import Client, local_market
from tests.sim_process import RunningSim, cli_sim

#: python-binance 0.7's websockets and account docs, in their order; only the three imports differ.
SEED_PROGRAM = '''
from binance_ws import Client                   # seed: from binance.client import Client
from binance_ws import BinanceSocketManager     # seed: from binance.websockets import BinanceSocketManager
from binance_ws.enums import *                  # seed: from binance.enums import *

client = Client(api_key, api_secret)
bm = BinanceSocketManager(client)

def process_message(msg):
    print("message type: {}".format(msg['e']))
    print(msg)
    # do something

# start any sockets here, i.e a trade socket
conn_key = bm.start_trade_socket('BNBBTC', process_message)
# then start the socket manager
bm.start()

def process_m_message(msg):
    print("stream: {} data: {}".format(msg['stream'], msg['data']))

# pass a list of stream names
conn_key = bm.start_multiplex_socket(['bnbbtc@aggTrade', 'neobtc@ticker'], process_m_message)

bm.start_user_socket(process_message)

bm.wait_ready()                                 # (glue) every socket is live, the user socket included

order = client.create_order(
    symbol='BNBBTC',
    side=SIDE_BUY,
    type=ORDER_TYPE_LIMIT,
    timeInForce=TIME_IN_FORCE_GTC,
    quantity=100,
    price='0.00001')

input()                                         # (glue) until the test has seen every message

bm.stop_socket(conn_key)
bm.close()
'''

#: Lines the program must print: each socket's messages, the order's report; never an error event.
EXPECTED = ("message type: trade", "stream: bnbbtc@aggTrade data:", "stream: neobtc@ticker data:",
            "message type: executionReport", "message type: outboundAccountPosition")
DEADLINE_S = 60.0


def test_seed_examples_run_against_binance_ws_sim_with_its_printed_key(tmp_path: Path) -> None:
    with cli_sim(tmp_path) as sim:
        keys = sim.keys("HMAC")
        # The reader pastes the printed key and secret where the seed says api_key, api_secret.
        program = (f"api_key = {keys['BINANCE_API_KEY']!r}\napi_secret = {keys['BINANCE_API_SECRET']!r}\n"
                   + SEED_PROGRAM)
        env = {**sim.env(), "PYTHONUNBUFFERED": "1"}
        for name in ("BINANCE_API_KEY", "BINANCE_API_SECRET"):
            env.pop(name)  # only the market line is in the environment: the key is in the program
        proc = subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None and proc.stdin is not None
        lines: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        seen: list[str] = []
        try:
            deadline = time.monotonic() + DEADLINE_S
            while not all(any(s.startswith(e) for s in seen) for e in EXPECTED):
                try:
                    seen.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    missing = [e for e in EXPECTED if not any(s.startswith(e) for s in seen)]
                    proc.kill()
                    stderr = proc.communicate()[1]
                    raise AssertionError(f"never printed {missing}; stderr:\n{stderr}") from None
            proc.stdin.write("\n")
            proc.stdin.flush()
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        stderr = proc.stderr.read() if proc.stderr else ""
        assert code == 0, stderr
        assert "Traceback" not in stderr, stderr
        assert not any(s.startswith("message type: error") for s in seen), seen
        report = next(s for s in seen if s.startswith("{") and "'executionReport'" in s)
        assert "'s': 'BNBBTC'" in report and "'X': 'NEW'" in report
    assert keys["BINANCE_API_SECRET"] not in sim.stderr()  # printed once on stdout, never logged


def test_every_printed_key_signs(tmp_path: Path) -> None:
    with cli_sim(tmp_path) as sim:
        market = local_market(sim.stream_url, sim.rest_url, sim.ws_api_url)
        for kind in ("HMAC", "Ed25519", "RSA"):
            keys = sim.keys(kind)
            with Client(market=market, env=keys) as client:
                balances = {b["asset"]: b["free"] for b in client.get_account()["balances"]}
            assert float(balances["USDT"]) == 100_000, kind
            assert float(balances["NEO"]) == 1_000, kind
        pem = Path(sim.keys("Ed25519")["BINANCE_PRIVATE_KEY_PATH"])
        assert pem.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert not pem.exists()  # removed when sim ends


def test_sim_logs_no_secret(tmp_path: Path) -> None:
    # A futures listen key (a credential) opened on the stream port shows in sim's log without its key.
    async def use_a_listen_key(sim: RunningSim) -> str:
        headers = {"X-MBX-APIKEY": sim.keys()["BINANCE_API_KEY"]}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{sim.rest_url}/fapi/v1/listenKey", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                key: str = (await resp.json())["listenKey"]
            async with http.ws_connect(f"{sim.stream_url}/ws/{key}"):
                deadline = time.monotonic() + DEADLINE_S
                while "connection" not in sim.stderr() or " user " not in sim.stderr():
                    assert time.monotonic() < deadline, sim.stderr()
                    await asyncio.sleep(0.1)
        return key

    with cli_sim(tmp_path) as sim:
        key = asyncio.run(use_a_listen_key(sim))
    log = sim.stderr()
    assert " user /ws/<redacted>" in log, log
    assert key not in log and sim.keys()["BINANCE_API_SECRET"] not in log
