"""A demo account for a simulator run on its own: balances and an API key of each kind, ready to hand over.

``binance-ws sim`` creates one so that signed REST, the WebSocket API and user data can be tried from
another process. The HMAC secret is returned for the caller to print once (the documented hand-over); the
Ed25519 and RSA private keys are written to PEM files readable by their owner only, and only their paths
are shown. Nothing here logs a secret, and :class:`DemoAccount`'s repr shows none.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from binance_ws.core.signing import generate_private_key, private_key_signer, public_key_pem
from binance_ws.sim.accounts import Accounts
from binance_ws.sim.config import SymbolSpec

DEMO_ACCOUNT: Final = "demo"
#: Free balances of the demo account; every other asset the exchange lists gets ``OTHER_BALANCE``.
DEMO_BALANCES: Final[dict[str, str]] = {"USDT": "100000", "BTC": "10", "ETH": "100", "BNB": "1000",
                                        "NEO": "1000"}
OTHER_BALANCE: Final = "1000000"
#: RSA keys Binance accepts are 2048 bits or more.
RSA_BITS: Final = 2048
#: The asymmetric keys the demo account gets: file-name part and key type.
_KEY_KINDS: Final[tuple[tuple[str, Literal["ED25519", "RSA"]], ...]] = (
    ("ed25519", "ED25519"), ("rsa", "RSA"))


@dataclass(frozen=True, repr=False)
class DemoAccount:
    """The demo account's name, balances and keys: one HMAC key, one Ed25519 and one RSA key (PEM files)."""

    name: str
    balances: dict[str, str]
    hmac_api_key: str
    hmac_secret: str
    ed25519_api_key: str
    ed25519_pem: Path
    rsa_api_key: str
    rsa_pem: Path

    def __repr__(self) -> str:
        return (f"DemoAccount({self.name!r}, hmac={self.hmac_api_key[:6]}..., "
                f"ed25519={self.ed25519_api_key[:6]}..., rsa={self.rsa_api_key[:6]}...)")


def demo_balances(symbols: Iterable[SymbolSpec]) -> dict[str, str]:
    """A balance for every asset of ``symbols`` (their quotes and bases, in order of appearance)."""
    assets: list[str] = []
    for spec in symbols:
        for asset in (spec.quote, spec.base):
            if asset not in assets:
                assets.append(asset)
    return {asset: DEMO_BALANCES.get(asset, OTHER_BALANCE) for asset in assets}


def create_demo_account(accounts: Accounts, symbols: Iterable[SymbolSpec], key_dir: Path,
                        name: str = DEMO_ACCOUNT) -> DemoAccount:
    """Create ``name`` in ``accounts`` with :func:`demo_balances` of the listed ``symbols``, register its
    three keys and write the two private keys to ``key_dir`` (``<name>-ed25519.pem``, ``<name>-rsa.pem``,
    mode 0600). ``binance-ws sim`` calls it as ``create_demo_account(sim.accounts, sim.config.symbols,
    key_dir)``."""
    balances = demo_balances(symbols)
    accounts.create_account(name, balances)
    hmac_key, secret = accounts.register_hmac_key(name)
    key_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    api_keys = {}
    for kind, key_type in _KEY_KINDS:
        pem = generate_private_key(key_type, RSA_BITS)
        paths[kind] = key_dir / f"{name}-{kind}.pem"
        _write_private(paths[kind], pem.encode())
        api_keys[kind] = accounts.register_public_key(name, public_key_pem(private_key_signer(pem)))
    return DemoAccount(name, balances, hmac_key, secret, api_keys["ed25519"], paths["ed25519"],
                       api_keys["rsa"], paths["rsa"])


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only, from the first byte (never 0644 first)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its old mode through O_CREAT
        f.write(data)
