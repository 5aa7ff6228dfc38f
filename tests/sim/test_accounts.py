"""Simulated accounts: Binance's auth checks and codes, balances, and the user-event sequences."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_ws.core.signing import (
    HmacSigner,
    generate_private_key,
    private_key_signer,
    public_key_pem,
    ws_payload,
)
from binance_ws.sim import Simulator
from binance_ws.sim.accounts import Accounts, SimApiError
from tests.userdata_support import accounts_sim, best


def _accounts(sim: Any) -> Accounts:
    return sim.accounts  # type: ignore[no-any-return]


def _signed(sim: Any, api_key: str, signer: Any, **extra: Any) -> tuple[dict[str, Any], str, str]:
    params = {"apiKey": api_key, "timestamp": sim.clock.now_ms(), **extra}
    payload = ws_payload(params)
    return params, payload, signer.sign(payload)


async def test_auth_errors_name_the_cause() -> None:
    async with accounts_sim() as sim:
        accts = _accounts(sim)
        accts.create_account("alice", {"USDT": "1000"})
        key, secret = accts.register_hmac_key("alice")
        good = HmacSigner(secret)

        params, payload, sig = _signed(sim, key, good)
        assert accts.authenticate(key, params, payload, sig).name == "alice"

        def code_of(api_key: str | None, params: dict[str, Any], payload: str, sig: str | None) -> int:
            with pytest.raises(SimApiError) as info:
                accts.authenticate(api_key, params, payload, sig)
            return info.value.code

        assert code_of("short", params, payload, sig) == -2014
        assert code_of(None, params, payload, sig) == -2014
        assert code_of(accts.new_api_key(), params, payload, sig) == -2015
        assert code_of(key, params, payload, HmacSigner("other").sign(payload)) == -1022
        stale, _, _ = _signed(sim, key, good)
        stale["timestamp"] -= 10_000
        assert code_of(key, stale, ws_payload(stale), good.sign(ws_payload(stale))) == -1021
        ahead = {**params, "timestamp": sim.clock.now_ms() + 5_000}
        with pytest.raises(SimApiError, match="ahead of the server"):
            accts.authenticate(key, ahead, ws_payload(ahead), good.sign(ws_payload(ahead)))
        wide = {**params, "recvWindow": 60_001}
        assert code_of(key, wide, ws_payload(wide), good.sign(ws_payload(wide))) == -1131
        assert code_of(key, {"apiKey": key}, "apiKey=" + key, sig) == -1102
        # A larger recvWindow admits the older timestamp; microsecond timestamps are accepted.
        old = {**stale, "recvWindow": 20_000}
        assert accts.authenticate(key, old, ws_payload(old), good.sign(ws_payload(old))).name == "alice"
        micro = {"apiKey": key, "timestamp": sim.clock.now_us()}
        assert accts.authenticate(key, micro, ws_payload(micro), good.sign(ws_payload(micro))).name == "alice"
        # Moving the server clock makes a fresh-looking timestamp stale.
        sim.clock.advance(60_000)
        assert code_of(key, params, payload, sig) == -1021


async def test_public_keys_verify_and_wrong_private_key_fails() -> None:
    async with accounts_sim() as sim:
        accts = _accounts(sim)
        accts.create_account("bob")
        for kind in ("RSA", "ED25519"):
            signer = private_key_signer(generate_private_key(kind))  # type: ignore[arg-type]
            key = accts.register_public_key("bob", public_key_pem(signer))
            assert accts.lookup_key(key).key_type == kind
            params, payload, sig = _signed(sim, key, signer)
            assert accts.authenticate(key, params, payload, sig).name == "bob"
            impostor = private_key_signer(generate_private_key(kind))  # type: ignore[arg-type]
            with pytest.raises(SimApiError) as info:
                accts.authenticate(key, params, payload, impostor.sign(payload))
            assert info.value.code == -1022
            assert key not in repr(accts.lookup_key(key))


async def test_resting_order_then_maker_fills_and_balances() -> None:
    async with accounts_sim() as sim:
        accts = _accounts(sim)
        alice = accts.create_account("alice", {"USDT": "10000"})
        bob = accts.create_account("bob", {"BTC": "1"})
        events: list[dict[str, Any]] = []
        accts.subscribe(alice, events.append)
        bid, _ = best(sim)
        price = Decimal(bid) + Decimal("0.01")  # improves the bid: rests at the top
        resp = accts.place_order(alice, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                         "timeInForce": "GTC", "quantity": "0.01000", "price": str(price)})
        assert resp["status"] == "NEW" and resp["fills"] == []
        assert [e["e"] for e in events] == ["executionReport", "outboundAccountPosition"]
        new = events[0]
        assert (new["x"], new["X"]) == ("NEW", "NEW")
        assert (new["i"], new["c"]) == (resp["orderId"], resp["clientOrderId"])
        assert new["w"] is True and new["W"] == new["O"] and new["N"] is None and new["t"] == -1
        usdt = next(b for b in events[1]["B"] if b["a"] == "USDT")
        cost = price * Decimal("0.01")
        assert Decimal(usdt["l"]) == cost and Decimal(usdt["f"]) == Decimal(10000) - cost

        events.clear()
        accts.place_order(bob, {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.00400"})
        accts.place_order(bob, {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.00600"})
        kinds = [(e["e"], e.get("x"), e.get("X")) for e in events]
        assert kinds == [("executionReport", "TRADE", "PARTIALLY_FILLED"),
                         ("outboundAccountPosition", None, None),
                         ("executionReport", "TRADE", "FILLED"),
                         ("outboundAccountPosition", None, None)]
        first, last = events[0], events[2]
        assert first["m"] is True and first["l"] == "0.00400000" and first["L"] == f"{price:.8f}"
        assert last["z"] == "0.01000000" and Decimal(last["Z"]) == cost and last["t"] > first["t"]
        assert first["I"] < last["I"]
        assert accts.account("alice").balances["BTC"].free == Decimal("0.01")
        assert accts.account("alice").balances["USDT"].locked == 0
        assert accts.account("bob").balances["USDT"].free == cost
        assert accts.account("bob").balances["BTC"].free == Decimal("0.99")
        query = accts.query_order(alice, {"symbol": "BTCUSDT", "orderId": resp["orderId"]})
        assert query["status"] == "FILLED" and query["executedQty"] == "0.01000000"


async def test_taker_order_reports_each_fill_then_one_position() -> None:
    async with accounts_sim() as sim:
        accts = _accounts(sim)
        alice = accts.create_account("alice", {"USDT": "100000"})
        events: list[dict[str, Any]] = []
        accts.subscribe(alice, events.append)
        asks = sim.exchange.depth_snapshot("BTCUSDT", 3)["asks"]
        qty = Decimal(asks[0][1]) + Decimal(asks[1][1]) / 2  # sweeps the first level, part of the second
        resp = accts.place_order(alice, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                         "quantity": str(qty)})
        assert resp["status"] == "FILLED" and len(resp["fills"]) >= 2
        reports = [e for e in events if e["e"] == "executionReport"]
        assert reports[0]["x"] == "NEW" and all(r["x"] == "TRADE" for r in reports[1:])
        assert reports[-1]["X"] == "FILLED" and all(r["X"] == "PARTIALLY_FILLED" for r in reports[1:-1])
        assert all(r["m"] is False for r in reports[1:])
        assert [e["e"] for e in events].count("outboundAccountPosition") == 1 and events[-1]["e"] == \
            "outboundAccountPosition"
        spent = sum(Decimal(f["price"]) * Decimal(f["qty"]) for f in resp["fills"])
        usdt = accts.account("alice").balances["USDT"]
        assert usdt.free == Decimal(100000) - spent and usdt.locked == 0


async def test_cancel_and_ioc_expiry_release_funds() -> None:
    async with accounts_sim() as sim:
        accts = _accounts(sim)
        alice = accts.create_account("alice", {"USDT": "10000"})
        events: list[dict[str, Any]] = []
        accts.subscribe(alice, events.append)
        bid, _ = best(sim)
        low = str(Decimal(bid) - Decimal("100"))
        resp = accts.place_order(alice, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                         "timeInForce": "GTC", "quantity": "0.01000", "price": low,
                                         "newClientOrderId": "mine-1"})
        events.clear()
        cancel = accts.cancel_order(alice, {"symbol": "BTCUSDT", "origClientOrderId": "mine-1"})
        assert cancel["status"] == "CANCELED" and cancel["origClientOrderId"] == "mine-1"
        report = events[0]
        assert (report["x"], report["X"], report["C"], report["c"]) == ("CANCELED", "CANCELED", "mine-1",
                                                                        cancel["clientOrderId"])
        assert events[1]["e"] == "outboundAccountPosition"
        assert accts.account("alice").balances["USDT"].free == Decimal(10000)
        with pytest.raises(SimApiError) as info:
            accts.cancel_order(alice, {"symbol": "BTCUSDT", "orderId": resp["orderId"]})
        assert info.value.code == -2011

        events.clear()
        accts.place_order(alice, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                  "timeInForce": "IOC", "quantity": "0.01000", "price": low})
        assert [(e.get("x"), e.get("X")) for e in events if e["e"] == "executionReport"] == \
            [("NEW", "NEW"), ("EXPIRED", "EXPIRED")]
        assert accts.account("alice").balances["USDT"].free == Decimal(10000)


async def test_order_refusals_and_deposit_events() -> None:
    async with accounts_sim() as sim:
        accts = _accounts(sim)
        alice = accts.create_account("alice", {"USDT": "10"})
        _, ask = best(sim)

        def code_of(params: dict[str, Any]) -> int:
            with pytest.raises(SimApiError) as info:
                accts.place_order(alice, params)
            return info.value.code

        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": "0.01000", "price": ask}
        assert code_of(order) == -2010
        assert code_of({**order, "symbol": "NOPE"}) == -1121
        assert code_of({k: v for k, v in order.items() if k != "price"}) == -1102
        assert code_of({**order, "quantity": "0.000001"}) == -1013
        assert code_of({k: v for k, v in order.items() if k != "timeInForce"}) == -1102
        with pytest.raises(SimApiError) as info:
            accts.query_order(alice, {"symbol": "BTCUSDT", "orderId": 999999})
        assert info.value.code == -2013
        assert accts.account("alice").balances["USDT"].free == Decimal(10)

        events: list[dict[str, Any]] = []
        accts.subscribe(alice, events.append)
        accts.deposit(alice, "USDT", "1000")
        assert events[0]["e"] == "balanceUpdate" and events[0]["d"] == "1000.00000000"
        assert events[1]["e"] == "outboundAccountPosition" and events[1]["B"] == \
            [{"a": "USDT", "f": "1010.00000000", "l": "0.00000000"}]
        assert accts.place_order(alice, order)["status"] in ("FILLED", "PARTIALLY_FILLED", "NEW")


order_action = st.tuples(
    st.sampled_from(["a", "b"]),
    st.sampled_from(["BUY", "SELL"]),
    st.sampled_from(["LIMIT", "MARKET", "IOC", "CANCEL"]),
    st.integers(-30, 30),  # price offset from the mid, in ticks
    st.integers(1, 40),  # quantity, in lots of 0.001
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(order_action, min_size=1, max_size=25))
def test_balances_stay_consistent_under_any_order_sequence(
        actions: list[tuple[str, str, str, int, int]]) -> None:
    """Whatever two accounts do to each other and to the book: nothing goes negative, and what is locked
    is exactly what open orders hold."""
    sim = Simulator(flow_rate=0.0)
    accts = Accounts(sim.clock, sim.exchange)
    accounts = {name: accts.create_account(name, {"USDT": "3000", "BTC": "0.05"}) for name in ("a", "b")}
    snapshot = sim.exchange.depth_snapshot("BTCUSDT", 1)
    mid = (Decimal(snapshot["bids"][0][0]) + Decimal(snapshot["asks"][0][0])) / 2
    for who, side, kind, ticks, lots in actions:
        account = accounts[who]
        open_ids = [i for i, h in account.orders.items() if h.order.status in ("NEW", "PARTIALLY_FILLED")]
        params: dict[str, Any] = {"symbol": "BTCUSDT", "side": side, "quantity": f"{Decimal(lots) / 1000}"}
        if kind == "MARKET":
            params["type"] = "MARKET"
        else:
            price = (mid + Decimal(ticks) * Decimal("0.01")).quantize(Decimal("0.01"))
            params.update(type="LIMIT", timeInForce="IOC" if kind == "IOC" else "GTC", price=str(price))
        try:
            if kind != "CANCEL":
                accts.place_order(account, params)
            elif open_ids:
                accts.cancel_order(account, {"symbol": "BTCUSDT", "orderId": open_ids[0]})
        except SimApiError as exc:
            assert exc.code in (-2010, -1013)  # refused for balance or notional: nothing changed
        for acct in accounts.values():
            for asset, bal in acct.balances.items():
                assert bal.free >= 0 and bal.locked >= 0, (asset, bal)
                held = sum((h.locked for h in acct.orders.values() if h.lock_asset == asset), Decimal(0))
                assert bal.locked == held, (asset, bal.locked, held)
            for h in acct.orders.values():
                if h.order.status in ("FILLED", "CANCELED", "EXPIRED"):
                    assert h.locked == 0
