"""User data against the simulator: the spot WS API socket (event sequences per key type, recovery)
and futures listen keys (keep-alive, expiry, replacement)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest

from binance_ws.client import BinanceAPIError
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.core.listenkey import ListenKeySchedule
from binance_ws.engine.userdata import ListenKeyStream, UserDataStream, user_socket
from binance_ws.errors import ERR_DISCONNECTED
from binance_ws.sim.accounts import LISTEN_KEY_TTL_MS
from tests.userdata_support import KEY_KINDS, accounts_sim, best, make_account

WAIT_S = 5.0


async def wait_for(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def fill_resting_buy(sim: Any, account: str, maker: str = "mm") -> int:
    """``account`` rests a buy at the top of the book and ``maker`` sells into it; returns the order id."""
    bid, _ = best(sim)
    accounts = sim.accounts
    order = accounts.place_order(accounts.account(account), {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000",
        "price": str(Decimal(bid) + Decimal("0.01"))})
    accounts.place_order(accounts.account(maker), {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                   "quantity": "0.01000"})
    return int(order["orderId"])


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["e"], e.get("x"), e.get("X")) for e in events]


FILL_SEQUENCE = [("executionReport", "NEW", "NEW"), ("outboundAccountPosition", None, None),
                 ("executionReport", "TRADE", "FILLED"), ("outboundAccountPosition", None, None)]


def fill_futures_buy(sim: Any, account: str, maker: str = "mm") -> int:
    """The USD-M version of :func:`fill_resting_buy`: both orders are futures orders on ``BTCUSDT``."""
    bid, _ = best(sim)
    futures, accounts = sim.futures["usdm"], sim.accounts
    order = futures.place_order(accounts.account(account), {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000",
        "price": str(Decimal(bid) + Decimal("0.01"))})
    futures.place_order(accounts.account(maker), {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                  "quantity": "0.01000"})
    return int(order["orderId"])


def futures_shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["e"], e.get("o", {}).get("x"), e.get("o", {}).get("X")) for e in events]


#: What a futures listen key carries for a filled resting order (never spot's executionReport).
FUTURES_FILL_SEQUENCE = [("ORDER_TRADE_UPDATE", "NEW", "NEW"), ("ORDER_TRADE_UPDATE", "TRADE", "FILLED"),
                         ("TRADE_LITE", None, None), ("ACCOUNT_UPDATE", None, None)]


@pytest.mark.parametrize(("kind", "mode"), [*((k, "signature") for k in KEY_KINDS), ("ED25519", "logon")])
async def test_filled_order_gives_the_event_sequence(kind: str, mode: str) -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", kind)  # type: ignore[arg-type]
        make_account(sim, "mm", "HMAC")
        events: list[dict[str, Any]] = []
        async with creds.client(sim) as client:
            stream = await user_socket(client, events.append, mode=mode)  # type: ignore[arg-type]
            try:
                order_id = fill_resting_buy(sim, "alice")
                await wait_for(lambda: len(events) >= 4)
                assert shape(events) == FILL_SEQUENCE
                assert events[2]["i"] == order_id and events[2]["z"] == "0.01000000"
                assert "subscriptionId" not in events[0]  # bare event dicts
            finally:
                await stream.stop()
            assert events[-1]["e"] == "eventStreamTerminated"


async def test_refusals_raise_naming_the_cause() -> None:
    async with accounts_sim() as sim:
        hm = make_account(sim, "hm", "HMAC")
        events: list[dict[str, Any]] = []
        async with hm.client(sim) as client:
            with pytest.raises(BinanceAPIError) as logon:
                await user_socket(client, events.append, mode="logon")
            assert logon.value.code == -4056
        wrong = hm.client(sim)
        wrong.api_key = "C" * 64
        with pytest.raises(BinanceAPIError) as unknown:
            await user_socket(wrong, events.append)
        assert unknown.value.code == -2015 and "Invalid API-key" in str(unknown.value)
        bad = make_account(sim, "bad", "HMAC")
        bad.secret = "not-the-secret"
        with pytest.raises(BinanceAPIError) as sig:
            await user_socket(bad.client(sim), events.append)
        assert sig.value.code == -1022
        assert events == []  # a refusal is raised, not turned into a silent or half-open stream


async def test_stale_clock_is_measured_and_retried() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "ED25519")
        sim.clock.advance(45_000)
        events: list[dict[str, Any]] = []
        client = creds.client(sim, auto_time_sync=False)
        stream = await user_socket(client, events.append)
        try:
            assert 40_000 < client.time_offset_ms < 50_000 and stream.subscription_id is not None
        finally:
            await stream.stop()


async def test_dropped_connection_resubscribes_and_events_keep_coming() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        make_account(sim, "mm", "HMAC")
        events: list[dict[str, Any]] = []
        async with creds.client(sim) as client:
            stream = UserDataStream(client, events.append)
            await stream.start()
            try:
                fill_resting_buy(sim, "alice")
                await wait_for(lambda: len(events) >= 4)
                assert sim.faults.drop() >= 1  # cut the WS API connection (no close frame)
                await wait_for(lambda: stream.subscriptions == 2 and stream.subscription_id is not None)
                errors = [e for e in events if e["e"] == "error"]
                assert errors and errors[0]["type"] == ERR_DISCONNECTED
                events.clear()
                fill_resting_buy(sim, "alice")
                await wait_for(lambda: len(events) >= 4)
                assert shape(events) == FILL_SEQUENCE
                # Cut it again, the graceful way this time: it still comes back.
                assert sim.accounts.drop_sessions(graceful=True) == 1
                await wait_for(lambda: stream.subscriptions == 3 and stream.subscription_id is not None)
                events.clear()
                sim.accounts.deposit(sim.accounts.account("alice"), "USDT", "5")
                await wait_for(lambda: [e["e"] for e in events] == ["balanceUpdate",
                                                                    "outboundAccountPosition"])
            finally:
                await stream.stop()


async def test_server_ended_subscription_is_renewed_on_the_same_connection() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "ED25519")
        received: list[dict[str, Any]] = []

        async def on_event(event: dict[str, Any]) -> None:  # async callbacks are awaited in order
            received.append(event)

        async with creds.client(sim) as client, UserDataStream(client, on_event, mode="logon") as stream:
            connections = stream.connection.connections
            (session,) = sim.accounts.sessions
            assert session.terminate_subscriptions() == 1
            await wait_for(lambda: stream.subscriptions == 2 and stream.subscription_id is not None)
            assert received[0]["e"] == "eventStreamTerminated"
            assert stream.connection.connections == connections  # same connection, new subscription
            sim.accounts.deposit(sim.accounts.account("alice"), "BTC", "1")
            await wait_for(lambda: [e["e"] for e in received[1:]] == ["balanceUpdate",
                                                                      "outboundAccountPosition"])


# -- futures listen keys ------------------------------------------------------------------------------


@asynccontextmanager
async def listen_key_streams(sim: Any) -> AsyncIterator[str]:
    """The simulator's own ``/private`` base URL for listen-key streams (USD-M's routed form)."""
    yield f"{sim.stream_url}/private"


def futures_client(sim: Any, creds: Any) -> Any:
    return creds.client(sim, futures_base_url=sim.rest_url)


async def test_futures_listen_key_expiry_is_replaced_and_events_keep_flowing() -> None:
    async with accounts_sim() as sim, listen_key_streams(sim) as url:
        creds = make_account(sim, "alice", "HMAC")
        make_account(sim, "mm", "HMAC")
        events: list[dict[str, Any]] = []
        async with futures_client(sim, creds) as client, \
                ListenKeyStream(client, events.append, stream_url=url) as stream:
            first_key = stream.listen_key
            assert first_key is not None and sim.accounts.is_listen_key(first_key)
            fill_resting_buy(sim, "alice")  # spot activity: nothing on a futures key
            fill_futures_buy(sim, "alice")
            await wait_for(lambda: len(events) >= 4)
            assert futures_shape(events) == FUTURES_FILL_SEQUENCE
            events.clear()
            sim.clock.advance(LISTEN_KEY_TTL_MS + 1)  # nobody kept it alive for an hour
            await wait_for(lambda: stream.keys_used == 2 and stream.connection.connections == 2
                           and stream.connection.connected)
            assert events[0] == {"e": "listenKeyExpired", "E": events[0]["E"], "listenKey": first_key}
            assert stream.listen_key != first_key and not sim.accounts.is_listen_key(first_key)
            events.clear()
            fill_futures_buy(sim, "alice")
            await wait_for(lambda: len([e for e in events if e["e"] != "error"]) >= 4)
            assert futures_shape([e for e in events if e["e"] != "error"]) == FUTURES_FILL_SEQUENCE


async def test_keepalive_failures_are_retried_and_a_gone_key_replaced() -> None:
    async with accounts_sim() as sim, listen_key_streams(sim) as url:
        creds = make_account(sim, "alice", "ED25519")
        events: list[dict[str, Any]] = []
        schedule = ListenKeySchedule(keepalive_interval_s=0.05, ttl_s=3600, retry_initial_s=0.02,
                                     retry_max_s=0.05)
        async with futures_client(sim, creds) as client, \
                ListenKeyStream(client, events.append, stream_url=url, schedule=schedule) as stream:
            # Keep-alives extend the key on the server: 100 minutes on, it is still the same live key.
            key = stream.listen_key
            for _ in range(2):
                sim.clock.advance(50 * 60_000)
                extended = sim.clock.now_ms() + LISTEN_KEY_TTL_MS - 1
                await wait_for(lambda least=extended: sim.accounts._listen_keys[key].expires_ms >= least)
            assert stream.keys_used == 1 and not [e for e in events if e["e"] == "listenKeyExpired"]
            real_key = client.api_key
            client.api_key = "D" * 64  # every keep-alive now fails (-2015), for a while
            await wait_for(lambda: schedule.failed_keepalives >= 3)
            errors = [e for e in events if e["e"] == "error"]
            assert errors and errors[0]["type"] == "keepalive" and errors[0]["code"] == -2015
            client.api_key = real_key
            await wait_for(lambda: schedule.failed_keepalives == 0)
            assert stream.listen_key == key and stream.keys_used == 1
            # The key vanishes server-side: the next keep-alive gets -1125 and a new key is made.
            sim.accounts.close_listen_key(sim.accounts.account("alice"), key)
            await wait_for(lambda: stream.keys_used == 2 and stream.connection.connections == 2
                           and stream.connection.connected)
            events.clear()
            sim.futures["usdm"].deposit(sim.accounts.account("alice"), "USDT", "1")
            await wait_for(lambda: [e["e"] for e in events if e["e"] != "error"] == ["ACCOUNT_UPDATE"])


async def test_dropped_listen_key_stream_reconnects_to_the_same_key() -> None:
    async with accounts_sim() as sim, listen_key_streams(sim) as url:
        creds = make_account(sim, "alice", "RSA")
        events: list[dict[str, Any]] = []
        async with futures_client(sim, creds) as client, \
                ListenKeyStream(client, events.append, stream_url=url) as stream:
            assert sim.accounts.drop_sessions() == 1
            await wait_for(lambda: stream.connection.connections == 2 and stream.connection.connected)
            assert stream.keys_used == 1 and events[0]["type"] == ERR_DISCONNECTED
            sim.futures["usdm"].deposit(sim.accounts.account("alice"), "USDT", "3")
            await wait_for(lambda: [e["e"] for e in events[1:]] == ["ACCOUNT_UPDATE"])
        assert not sim.accounts._listen_keys  # stop() deleted the key


async def test_server_shutdown_hands_over_without_losing_or_repeating_events() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        alice = sim.accounts.account("alice")
        events: list[dict[str, Any]] = []
        sent: list[int] = []
        async with creds.client(sim) as client, UserDataStream(client, events.append) as stream:
            first = stream.connection

            async def churn() -> None:
                for amount in range(1, 400):  # distinct amounts: every event is unique
                    sim.accounts.deposit(alice, "USDT", str(amount))
                    sent.append(amount)
                    await asyncio.sleep(0)  # events keep coming while the connections overlap

            task = asyncio.create_task(churn())
            await asyncio.sleep(0)
            assert sim.faults.server_shutdown(delay_s=2.0) == 1
            await task
            await wait_for(lambda: stream.handovers == 1)
            await wait_for(lambda: sum(e["e"] == "balanceUpdate" for e in events) >= len(sent))
            assert stream.connection is not first and not first.connected
            got = [int(Decimal(e["d"])) for e in events if e["e"] == "balanceUpdate"]
            assert got == sent  # each exactly once, in order
            assert not [e for e in events if e["e"] in ("error", "eventStreamTerminated", "serverShutdown")]


async def test_unreachable_endpoint_raises_instead_of_waiting_forever() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        events: list[dict[str, Any]] = []
        fast = BackoffPolicy(initial_s=0.01, max_s=0.02, max_retries=None)
        async with creds.client(sim) as client:
            with pytest.raises(BinanceAPIError) as info:
                await user_socket(client, events.append, ws_api_url="ws://127.0.0.1:9/ws-api/v3",
                                  backoff=fast)
        assert info.value.status == 0 and "cannot connect" in str(info.value)
        assert all(e["type"] == ERR_DISCONNECTED for e in events)


async def test_no_secret_or_listen_key_in_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with accounts_sim() as sim, listen_key_streams(sim) as url:
        hm = make_account(sim, "hm", "HMAC")
        ed = make_account(sim, "ed", "ED25519")
        texts: list[str] = []
        keys: list[str] = []
        async with hm.client(sim) as client, UserDataStream(client, texts.append) as spot:
            sim.faults.drop()
            await wait_for(lambda: spot.subscriptions == 2 and spot.subscription_id is not None)
            texts += [repr(spot), repr(spot.connection), repr(client)]
        async with futures_client(sim, ed) as client, \
                ListenKeyStream(client, texts.append, stream_url=url) as futures:
            assert futures.listen_key is not None
            keys.append(futures.listen_key)
            sim.accounts.drop_sessions()
            await wait_for(lambda: futures.connection.connections == 2 and futures.connection.connected)
            sim.clock.advance(LISTEN_KEY_TTL_MS + 1)
            await wait_for(lambda: futures.keys_used == 2 and futures.connection.connected)
            keys.append(futures.listen_key)
            texts += [repr(futures), repr(futures.connection), repr(futures.schedule)]
            with pytest.raises(BinanceAPIError) as info:
                await user_socket(client, texts.append, mode="logon",
                                  ws_api_url="ws://127.0.0.1:9/ws-api/v3?listenKey=" + keys[0],
                                  backoff=BackoffPolicy(initial_s=0.01, max_s=0.01, max_retries=None))
            texts.append(str(info.value))
    blob = "\n".join(str(t) for t in texts) + caplog.text
    assert "WebSocket API" in caplog.text  # the drops were logged, just without secrets
    assert hm.secret and hm.secret not in blob
    pem_body = [line for line in (ed.private_key or "").splitlines() if "-----" not in line]
    assert pem_body and not any(line in blob for line in pem_body)
    for key in keys:
        assert key not in caplog.text and key not in str(info.value)


async def test_stalled_connection_is_detected_by_pings_and_replaced() -> None:
    """A connection that stays open but answers nothing (no pongs) is found dead and replaced."""
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "ED25519")
        events: list[dict[str, Any]] = []
        async with creds.client(sim) as client, \
                UserDataStream(client, events.append, ping_idle_s=0.2, ping_reply_timeout_s=0.2) as stream:
            first = stream.connection.connections
            assert sim.faults.stall() == 1
            await wait_for(lambda: stream.connection.connections == first + 1
                           and stream.subscription_id is not None)
            assert any(e["e"] == "error" and e["type"] == ERR_DISCONNECTED for e in events)
            events.clear()
            sim.accounts.deposit(sim.accounts.account("alice"), "USDT", "2")
            await wait_for(lambda: [e["e"] for e in events] == ["balanceUpdate", "outboundAccountPosition"])


async def test_a_quiet_session_that_answers_pings_is_kept() -> None:
    """No account events for a long while is normal: our pings are answered, so nothing reconnects
    (the WebSocket API session runs on the same connection protocol as market streams)."""
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "ED25519")
        events: list[dict[str, Any]] = []
        async with creds.client(sim) as client, \
                UserDataStream(client, events.append, ping_idle_s=0.1, ping_reply_timeout_s=0.1) as stream:
            await asyncio.sleep(2.0)
            assert stream.connection.connections == 1 and stream.connection.connected
            assert events == []
            assert stream.connection.liveness.pings >= 5  # silence made us ask, and every answer came
