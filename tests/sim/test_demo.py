"""The demo account ``binance-ws sim`` hands over: balances, one key of each kind, no secret in a repr."""

from __future__ import annotations

from pathlib import Path

from binance_ws.core.signing import private_key_signer
from binance_ws.sim import Simulator
from binance_ws.sim.demo import create_demo_account
from tests.sim_process import cli_sim


def test_demo_account_has_every_asset_and_a_key_of_each_kind(tmp_path: Path) -> None:
    sim = Simulator(flow_rate=0.0)
    demo = create_demo_account(sim.accounts, sim.config.symbols, tmp_path / "keys")
    assets = {a for spec in sim.config.symbols for a in (spec.base, spec.quote)}
    assert set(demo.balances) == assets and demo.balances["USDT"] == "100000"
    info = sim.accounts.account_info(sim.accounts.account("demo"))
    assert {b["asset"]: float(b["free"]) for b in info["balances"]}["USDT"] == 100_000
    kinds = {sim.accounts.lookup_key(k).key_type
             for k in (demo.hmac_api_key, demo.ed25519_api_key, demo.rsa_api_key)}
    assert kinds == {"HMAC", "ED25519", "RSA"}
    for pem, kind in ((demo.ed25519_pem, "ED25519"), (demo.rsa_pem, "RSA")):
        assert pem.stat().st_mode & 0o777 == 0o600
        signer = private_key_signer(pem)
        verifier = sim.accounts.lookup_key(demo.ed25519_api_key if kind == "ED25519" else demo.rsa_api_key)
        assert verifier.verifier.verify("a=1", signer.sign("a=1"))
    shown = repr(demo)
    assert demo.hmac_secret not in shown and "BEGIN" not in shown and demo.hmac_api_key[:6] in shown


def test_sim_command_without_a_demo_account_prints_no_key(tmp_path: Path) -> None:
    with cli_sim(tmp_path, "--no-demo-account") as sim:
        assert "HMAC" not in sim.lines and "account" not in sim.lines
        assert sim.lines["market"] == (f"export BINANCE_WS_MARKET={sim.stream_url},{sim.rest_url},"
                                       f"{sim.ws_api_url}")


def test_sim_command_writes_the_keys_where_asked(tmp_path: Path) -> None:
    with cli_sim(tmp_path, "--key-dir", str(tmp_path / "mine")) as sim:
        path = Path(sim.keys("RSA")["BINANCE_PRIVATE_KEY_PATH"])
        assert path == tmp_path / "mine" / "demo-rsa.pem"
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # kept: the directory is yours
