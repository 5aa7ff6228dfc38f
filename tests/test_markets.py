"""Which market a client or manager uses when the code names none (``BINANCE_WS_MARKET``)."""

from __future__ import annotations

import pytest

from binance_ws import AsyncSocketManager, BinanceSocketManager, Client
from binance_ws.markets import ENV_MARKET, SPOT, SPOT_TESTNET, default_market


def test_unset_or_empty_is_binance_spot() -> None:
    assert default_market({}) is SPOT
    assert default_market({ENV_MARKET: "  "}) is SPOT


def test_a_market_name_or_a_simulators_urls() -> None:
    assert default_market({ENV_MARKET: "spot-testnet"}) is SPOT_TESTNET
    local = default_market({ENV_MARKET: "ws://127.0.0.1:9443,http://127.0.0.1:9444,ws://127.0.0.1:9443/ws-api/v3"})
    assert (local.stream_url, local.rest_url, local.ws_api_url, local.local) == (
        "ws://127.0.0.1:9443", "http://127.0.0.1:9444", "ws://127.0.0.1:9443/ws-api/v3", True)
    assert local.max_incoming_per_second == SPOT.max_incoming_per_second  # spot's rules
    assert default_market({ENV_MARKET: "ws://h:1, http://h:2"}).ws_api_url == ""


@pytest.mark.parametrize("value", ["nosuch", "http://h:2,ws://h:1", "ws://h:1", "ws://h:1,http://h:2,x,y"])
def test_anything_else_is_refused_naming_the_forms(value: str) -> None:
    with pytest.raises(ValueError, match=r"neither a market name .*stream_url,rest_url"):
        default_market({ENV_MARKET: value})


def test_clients_and_managers_follow_it_and_an_explicit_market_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MARKET, "ws://127.0.0.1:1,http://127.0.0.1:2")
    with Client() as client:
        assert client.market.rest_url == "http://127.0.0.1:2"
    assert Client(env={}).market is SPOT  # an explicit environment is the only one read
    assert BinanceSocketManager(None).market.stream_url == "ws://127.0.0.1:1"
    assert AsyncSocketManager().market.stream_url == "ws://127.0.0.1:1"
    assert AsyncSocketManager(market=SPOT_TESTNET).market is SPOT_TESTNET
    with Client(market=SPOT_TESTNET) as testnet:
        assert AsyncSocketManager(testnet).market is SPOT_TESTNET  # the client's market
