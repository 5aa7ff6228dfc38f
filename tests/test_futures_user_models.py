"""Futures user-data models: every event PROTOCOL 8 lists decodes key for key and type for type from the
documented payloads (tests/futures_payloads.py), as the product declares it (COIN-M has no TRADE_LITE),
and reaches a futures user socket with ``decode="typed"`` over loopback as those models. The simulator's
own futures user data is decoded in tests/sim/test_futures_user_typed.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import orjson
import pytest

from binance_ws import models
from binance_ws.client import AsyncClient, Client
from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.errors import ERR_MALFORMED
from binance_ws.markets import COINM, SPOT, USDM, local_market
from binance_ws.models import MalformedPayloadError, decoder_for, futures_user_event
from binance_ws.websockets import BinanceSocketManager
from tests.engine._futures_server import futures_server, until
from tests.futures_payloads import (
    COINM_USER_EXAMPLES,
    LISTEN_KEY_EXPIRED,
    ORDER_TRADE_UPDATE,
    TRADE_LITE,
    USDM_USER_EXAMPLES,
)

KEY = "x" * 64
NOWHERE_SPOT = local_market("ws://127.0.0.1:1", "http://127.0.0.1:1", base=SPOT)
DEADLINE_S = 10.0


def wire(obj: Any) -> Any:
    """What a model encodes back to: its wire keys and JSON types."""
    return orjson.loads(msgspec.json.encode(obj))


def shape(value: Any) -> Any:
    """``value``'s keys and JSON types at every depth (``==`` alone takes ``0`` for ``False``)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def assert_key_for_key(obj: Any, payload: dict[str, Any]) -> None:
    """Every key of ``payload`` is a field of ``obj``'s model holding the same value with the same JSON
    type, at every depth, and the model holds nothing else (absent optional keys stay absent)."""
    encoded = wire(obj)
    assert shape(encoded) == shape(payload)
    assert encoded == payload


EXAMPLES = [(USDM, *e) for e in USDM_USER_EXAMPLES] + [(COINM, *e) for e in COINM_USER_EXAMPLES]


@pytest.mark.parametrize(("market", "payload", "model"), EXAMPLES,
                         ids=[f"{m.name}-{p['e']}-{i}" for i, (m, p, _) in enumerate(EXAMPLES)])
def test_documented_user_events_decode_key_for_key(market: Any, payload: dict[str, Any], model: str) -> None:
    decoded = decoder_for(KEY, market)(orjson.dumps(payload))  # the product's userData declaration
    assert type(decoded).__name__ == model
    assert_key_for_key(decoded, payload)
    assert futures_user_event(payload, market) == decoded  # the dict path gives the same object
    # Keys Binance adds later are skipped, at the top and inside, never refused.
    grown = {**payload, "zz": [1, {"y": None}]}
    inner = next((k for k, v in payload.items() if isinstance(v, dict)), None)
    if inner is not None:
        grown[inner] = {**payload[inner], "newKey": "1"}
    assert decoder_for(KEY, market)(orjson.dumps(grown)) == decoded


def test_each_product_declares_its_own_user_data_union() -> None:
    assert USDM.product.kind("userData").model is models.UsdmUserEvent  # type: ignore[union-attr]
    assert COINM.product.kind("userData").model is models.CoinmUserEvent  # type: ignore[union-attr]
    assert models.user_event_types(models.UsdmUserEvent) == {
        "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "TRADE_LITE", "MARGIN_CALL", "ACCOUNT_CONFIG_UPDATE",
        "STRATEGY_UPDATE", "GRID_UPDATE", "CONDITIONAL_ORDER_TRIGGER_REJECT", "ALGO_UPDATE",
        "listenKeyExpired"}
    # What a routed /private stream asks for (&events=) is exactly what is modelled.
    assert set(USDM.product.user_events) == models.user_event_types(models.UsdmUserEvent)
    assert models.user_event_types(models.CoinmUserEvent) == models.user_event_types(models.UsdmUserEvent) - {
        "TRADE_LITE", "ALGO_UPDATE", "CONDITIONAL_ORDER_TRIGGER_REJECT"}
    with pytest.raises(MalformedPayloadError, match="CoinmUserEvent"):
        futures_user_event(TRADE_LITE, COINM)


def test_order_fields_read_by_name() -> None:
    event = futures_user_event(ORDER_TRADE_UPDATE)
    assert isinstance(event, models.OrderTradeUpdate)
    o = event.order
    assert (o.symbol, o.side, o.order_type, o.execution_type, o.order_status, o.order_id) == \
        ("BTCUSDT", "SELL", "TRAILING_STOP_MARKET", "NEW", "NEW", 8886774)
    assert (o.activation_price, o.callback_rate, o.commission_asset, o.ask_notional) == \
        ("7476.89", "5.0", "USDT", "9.91")
    assert (o.margin_asset, event.account_alias) == (None, None)  # COIN-M keys


def test_listen_key_expired_time_is_an_int_whatever_form_binance_sends() -> None:
    # Binance's current USD-M page shows "E" as a string; the model gives the int.
    event = decoder_for(KEY, USDM)(orjson.dumps(LISTEN_KEY_EXPIRED))
    assert isinstance(event, models.FuturesListenKeyExpired)
    assert event.event_time == 1736996475556 and isinstance(event.event_time, int)
    assert event.listen_key == LISTEN_KEY_EXPIRED["listenKey"]
    assert LISTEN_KEY_EXPIRED["listenKey"] not in repr(event)  # a credential
    with pytest.raises(MalformedPayloadError, match="time in ms"):
        decoder_for(KEY, USDM)(b'{"e":"listenKeyExpired","E":"soon"}')


def test_wrong_types_are_refused_with_the_path() -> None:
    bad = {**ORDER_TRADE_UPDATE, "o": {**ORDER_TRADE_UPDATE["o"], "i": "8886774"}}  # id as a string
    with pytest.raises(MalformedPayloadError, match=r"\$\.o\.i"):
        futures_user_event(bad)
    with pytest.raises(MalformedPayloadError, match="UsdmUserEvent"):
        futures_user_event({"e": "somethingNew", "E": 1})


# -- typed delivery over loopback --------------------------------------------------------------------------

async def test_usdm_user_socket_delivers_models_over_private() -> None:
    """``futures_user_socket(decode="typed")`` of the asyncio manager, on a routed ``/private`` stream."""
    async with futures_server("usdm") as server, \
            AsyncClient("k" * 64, "s3cr3t", market=NOWHERE_SPOT, futures_market=server.market,
                        env={}) as client, \
            AsyncSocketManager(client, market=NOWHERE_SPOT, futures_market=server.market) as sm, \
            sm.futures_user_socket(decode="typed") as user:
        await until(lambda: any(p.route == "private" for p in server.peers), what="/private stream")
        payloads = [p for p, _ in USDM_USER_EXAMPLES]
        new_kind = {"e": "SOMETHING_NEW", "E": 5}  # an event Binance adds later: passed as its dict
        broken = {**TRADE_LITE, "t": "109100866"}  # refused by its model: a malformed error event
        for payload in [*payloads, new_kind, broken, ORDER_TRADE_UPDATE]:
            assert server.push_user(payload) == 1
        got = [await asyncio.wait_for(user.recv(), DEADLINE_S) for _ in range(len(payloads) + 3)]
    for obj, (payload, model) in zip(got, USDM_USER_EXAMPLES, strict=False):
        assert type(obj).__name__ == model
        assert_key_for_key(obj, payload)
    assert got[len(payloads)] == new_kind
    error = got[len(payloads) + 1]
    assert (error["e"], error["type"], error["event"]) == ("error", ERR_MALFORMED, "TRADE_LITE")
    assert "$.t" in error["detail"]
    assert isinstance(got[-1], models.OrderTradeUpdate)  # the stream goes on after a refused event


async def test_coinm_threaded_user_socket_delivers_models(caplog: pytest.LogCaptureFixture) -> None:
    """``start_coin_futures_user_socket(callback, decode="typed")`` of the threaded seed manager."""
    caplog.set_level(logging.WARNING)
    async with futures_server("coinm") as server:
        client = Client("k" * 64, "s3cr3t", market=NOWHERE_SPOT, futures_market=server.market, env={})
        bm = BinanceSocketManager(client, market=NOWHERE_SPOT, coin_futures_market=server.market)
        events: list[Any] = []
        with pytest.raises(ValueError, match="decode must be"):
            bm.start_coin_futures_user_socket(events.append, decode="raw")  # type: ignore[arg-type]
        assert bm.start_coin_futures_user_socket(events.append, decode="typed") == "coinFuturesUserData"
        bm.start()
        try:
            assert await asyncio.to_thread(bm.wait_ready, "coinFuturesUserData", DEADLINE_S)
            await until(lambda: server.peers, what="listen-key stream")
            for payload, _ in COINM_USER_EXAMPLES:
                server.push_user(payload)
            await until(lambda: len(events) >= len(COINM_USER_EXAMPLES), what="COIN-M events")
            got = events[:len(COINM_USER_EXAMPLES)]  # closing may add a "disconnected" error event
        finally:
            await asyncio.to_thread(bm.close)
            await asyncio.to_thread(client.close)
    for obj, (payload, model) in zip(got, COINM_USER_EXAMPLES, strict=True):
        assert type(obj).__name__ == model
        assert_key_for_key(obj, payload)
    first = got[0]
    assert isinstance(first, models.OrderTradeUpdate)
    assert (first.account_alias, first.order.margin_asset) == ("SfsR", "BTC")
    assert "malformed" not in caplog.text
