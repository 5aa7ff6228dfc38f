"""Shared by the user-data tests: a simulator with accounts wired in, and accounts with each key type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from binance_ws.client import AsyncClient
from binance_ws.core.signing import generate_private_key, private_key_signer, public_key_pem
from binance_ws.sim import Simulator
from binance_ws.sim.accounts import Accounts

KeyKind = Literal["HMAC", "RSA", "ED25519"]
KEY_KINDS: tuple[KeyKind, ...] = ("HMAC", "RSA", "ED25519")
START_BALANCES = {"USDT": "100000", "BTC": "5", "ETH": "50", "BNB": "100"}


@asynccontextmanager
async def accounts_sim(**overrides: Any) -> AsyncIterator[Simulator]:
    """A running simulator (accounts and signed REST routes included). The synthetic flow is off so
    books only move when a test trades; the start-up book is deep on both sides."""
    sim = Simulator(**{"flow_rate": 0.0, **overrides})
    async with sim:
        yield sim


@dataclass
class Credentials:
    """What a user holds for one account: the API key and the secret or private key PEM."""

    kind: KeyKind
    api_key: str
    secret: str | None = None
    private_key: str | None = None

    def client(self, sim: Simulator, **kwargs: Any) -> AsyncClient:
        return AsyncClient(self.api_key, self.secret, private_key=self.private_key, market=sim.market,
                           env={}, **kwargs)


def make_account(sim: Simulator, name: str, kind: KeyKind,
                 balances: dict[str, str] | None = None) -> Credentials:
    """Create account ``name`` with a key of type ``kind`` registered; returns the user's credentials."""
    accounts: Accounts = sim.accounts  # type: ignore[attr-defined]
    accounts.create_account(name, balances or START_BALANCES)
    if kind == "HMAC":
        api_key, secret = accounts.register_hmac_key(name)
        return Credentials(kind, api_key, secret=secret)
    pem = generate_private_key(kind, bits=2048)
    api_key = accounts.register_public_key(name, public_key_pem(private_key_signer(pem)))
    return Credentials(kind, api_key, private_key=pem)


def best(sim: Simulator, symbol: str = "BTCUSDT") -> tuple[str, str]:
    """The best bid and ask prices of ``symbol`` as strings."""
    snap = sim.exchange.depth_snapshot(symbol, 1)
    return snap["bids"][0][0], snap["asks"][0][0]
