"""The REST clients against the simulator over loopback: every key type, every named failure."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import ssl
import threading
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yarl import URL

from binance_ws.client import AsyncClient, BinanceAPIError, Client
from binance_ws.core.backoff import BackoffPolicy
from binance_ws.core.signing import HmacSigner, generate_private_key, make_signer
from binance_ws.engine.wsapi import WsApiConnection
from binance_ws.errors import BinanceWSError
from binance_ws.markets import SPOT
from tests.userdata_support import KEY_KINDS, accounts_sim, best, make_account


@pytest.mark.parametrize("kind", KEY_KINDS)
async def test_place_query_cancel_with_each_key_type(kind: str) -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", kind)  # type: ignore[arg-type]
        async with creds.client(sim) as client:
            assert client.key_type == kind
            bid, _ = best(sim)
            low = str(Decimal(bid) - Decimal(50))
            placed = await client.create_order("BTCUSDT", "BUY", "LIMIT", timeInForce="GTC",
                                               quantity="0.01000", price=low, newClientOrderId="c-1")
            assert placed["status"] == "NEW" and placed["clientOrderId"] == "c-1"
            got = await client.get_order("BTCUSDT", orderId=placed["orderId"])
            assert got["status"] == "NEW" and got["price"] == f"{Decimal(low):.8f}"
            account = await client.get_account()
            usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
            assert Decimal(usdt["locked"]) == Decimal(low) * Decimal("0.01")
            cancelled = await client.cancel_order("BTCUSDT", origClientOrderId="c-1")
            assert cancelled["status"] == "CANCELED" and cancelled["origClientOrderId"] == "c-1"
            with pytest.raises(BinanceAPIError) as info:
                await client.cancel_order("BTCUSDT", orderId=placed["orderId"])
            assert (info.value.status, info.value.code) == (400, -2011)


async def test_market_data_calls_and_time_offset() -> None:
    async with accounts_sim() as sim, AsyncClient(market=sim.market, env={}) as client:
        assert await client.ping() == {}
        sim.clock.advance(7_000)
        offset = await client.sync_time()
        assert 6_000 < offset < 8_000
        info = await client.get_exchange_info()
        assert {s["symbol"] for s in info["symbols"]} >= {"BTCUSDT", "ETHUSDT"}
        book = await client.get_order_book("BTCUSDT", limit=5)
        assert len(book["bids"]) == 5 and book["lastUpdateId"] > 0
        # Trade once so the history calls have something to show.
        creds = make_account(sim, "t", "HMAC")
        async with creds.client(sim) as trader:
            await trader.create_order("BTCUSDT", "BUY", "MARKET", quantity="0.00100")
        trades = await client.get_recent_trades("BTCUSDT", limit=5)
        aggs = await client.get_aggregate_trades("BTCUSDT", limit=5)
        assert trades and aggs and aggs[-1]["l"] == trades[-1]["id"]


async def test_errors_name_the_cause() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        order = {"quantity": "0.01000", "timeInForce": "GTC", "price": best(sim)[0]}

        async def failure(client: AsyncClient) -> BinanceAPIError:
            async with client:
                with pytest.raises(BinanceAPIError) as info:
                    await client.create_order("BTCUSDT", "BUY", "LIMIT", **order)
            return info.value

        wrong_key = await failure(AsyncClient("A" * 64, creds.secret, market=sim.market, env={}))
        assert (wrong_key.status, wrong_key.code) == (401, -2015)
        assert "Invalid API-key" in str(wrong_key)
        bad_format = await failure(AsyncClient("not-a-key", creds.secret, market=sim.market, env={}))
        assert bad_format.code == -2014
        bad_sig = await failure(AsyncClient(creds.api_key, "wrong-secret", market=sim.market, env={}))
        assert (bad_sig.status, bad_sig.code) == (400, -1022) and "Signature" in str(bad_sig)
        # The server's clock runs 30 s ahead and the client never measured it: the timestamp is stale.
        sim.clock.advance(30_000)
        stale = await failure(creds.client(sim, auto_time_sync=False))
        assert stale.code == -1021 and "recvWindow" in str(stale)
        # Measuring the offset (the default) fixes it, also when the clock drifts after the first
        # measurement: the refused request is re-measured and sent once more.
        async with creds.client(sim) as synced:
            assert (await synced.get_account())["accountType"] == "SPOT"
            sim.clock.advance(30_000)
            assert (await synced.get_account())["accountType"] == "SPOT"
            assert 55_000 < synced.time_offset_ms < 65_000
        for err in (wrong_key, bad_sig, stale):
            assert creds.secret not in str(err) and creds.api_key not in str(err)
            assert isinstance(err, BinanceWSError)


async def test_signing_uses_the_percent_encoded_payload() -> None:
    """A client that signs the raw text instead of the encoded one gets -1022 (rule of 2026-01-15)."""
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        assert creds.secret is not None
        signer = HmacSigner(creds.secret)
        client_id = "a/b:c"  # reserved characters: the encoded and raw forms differ
        raw = f"symbol=BTCUSDT&orderId=1&origClientOrderId={client_id}&timestamp={sim.clock.now_ms()}"
        encoded = raw.replace("/", "%2F").replace(":", "%3A")
        headers = {"X-MBX-APIKEY": creds.api_key}
        async with aiohttp.ClientSession() as http:
            for signed_text, expected in ((raw, -1022), (encoded, -2013)):
                url = f"{sim.rest_url}/api/v3/order?{encoded}&signature={signer.sign(signed_text)}"
                async with http.get(URL(url, encoded=True), headers=headers) as resp:
                    assert (await resp.json())["code"] == expected
        # Query string and body together, joined with no separator (PROTOCOL 7.1).
        async with creds.client(sim) as client:
            payload = await client.create_order("BTCUSDT", "BUY", "MARKET", quantity="0.00100",
                                                newClientOrderId=client_id)
            assert payload["clientOrderId"] == client_id


async def test_rate_limit_and_retired_listen_key_raise_one_exception_type() -> None:
    async with accounts_sim() as sim, AsyncClient(market=sim.market, env={}, api_key="K" * 64) as client:
        sim.faults.rest_fail_status, sim.faults.rest_fail_count = 429, 1
        with pytest.raises(BinanceAPIError) as info:
            await client.ping()
        assert info.value.status == 429 and info.value.is_rate_limited and info.value.retry_after == 1.0
        assert await client.ping() == {}
        with pytest.raises(BinanceAPIError) as gone:
            await client.stream_get_listen_key()
        assert gone.value.status == 410
    # A dead endpoint is the same exception type, status 0.
    async with AsyncClient(base_url="http://127.0.0.1:9", env={}, timeout_s=2) as dead:
        with pytest.raises(BinanceAPIError) as down:
            await dead.ping()
        assert down.value.status == 0 and down.value.code is None


def test_keys_from_environment_and_tls_defaults(tmp_path: Any) -> None:
    pem = generate_private_key("ED25519")
    path = tmp_path / "k.pem"
    path.write_text(pem)
    client = AsyncClient(env={"BINANCE_API_KEY": "k" * 64, "BINANCE_PRIVATE_KEY_PATH": str(path)})
    assert client.key_type == "ED25519" and client.api_key == "k" * 64
    assert client.base_url == SPOT.rest_url and client.base_url.startswith("https://")
    hmac_client = AsyncClient(env={"BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s"})
    assert hmac_client.key_type == "HMAC"
    assert AsyncClient(env={}).key_type is None
    with pytest.raises(ValueError):
        AsyncClient(env={}, recv_window=60_001)


async def test_sync_client_from_threads() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "ED25519")
        results: list[Any] = []
        errors: list[BaseException] = []

        def work(client: Client) -> None:
            try:
                results.append(client.create_order("BTCUSDT", "BUY", "MARKET", quantity="0.00100"))
            except BaseException as exc:
                errors.append(exc)

        def run_all() -> None:
            with Client(creds.api_key, private_key=creds.private_key, market=sim.market, env={}) as client:
                threads = [threading.Thread(target=work, args=(client,)) for _ in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                assert client.key_type == "ED25519"
                results.append(client.get_server_time())

        await asyncio.to_thread(run_all)
        assert not errors
        assert sum(1 for r in results if r.get("status") == "FILLED") == 4
        assert "serverTime" in results[-1]


async def test_no_secret_in_logs_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with accounts_sim() as sim:
        kinds = [make_account(sim, f"u{i}", kind) for i, kind in enumerate(KEY_KINDS)]
        texts: list[str] = []
        for creds in kinds:
            client = creds.client(sim)
            sync = Client(creds.api_key, creds.secret, private_key=creds.private_key, market=sim.market,
                          env={})
            record = sim.accounts.lookup_key(creds.api_key)  # type: ignore[attr-defined]
            texts += [repr(client), str(client), repr(client.signer), repr(sync), repr(record)]
            async with client:
                await client.create_order("BTCUSDT", "BUY", "MARKET", quantity="0.00100")
                try:
                    await client.create_order("BTCUSDT", "BUY", "LIMIT", quantity="1", price="1",
                                              timeInForce="GTC")
                except BinanceAPIError as exc:
                    texts.append(str(exc))
                    texts.append(repr(exc))
            sync.close()
        texts.append(caplog.text)
        blob = "\n".join(texts)
        for creds in kinds:
            pem_lines = (creds.private_key or "").splitlines()
            secrets = [creds.secret] if creds.secret else [ln for ln in pem_lines if "-----" not in ln]
            for secret in secrets:
                assert secret not in blob
        signer = make_signer(secret="topsecret")
        assert "topsecret" not in repr(signer)


@pytest.mark.interop
@pytest.mark.parametrize("kind", KEY_KINDS)
async def test_python_binance_signs_as_the_simulator_verifies(kind: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An independent implementation (python-binance 1.0.37, unmodified) signs orders the simulator
    accepts, for each key type: the simulator's checks are Binance's, not merely our client's."""
    binance = pytest.importorskip("binance")
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", kind)  # type: ignore[arg-type]
        monkeypatch.setattr(binance.AsyncClient, "API_URL", f"{sim.rest_url}/api")
        other = await binance.AsyncClient.create(creds.api_key, creds.secret, private_key=creds.private_key)
        try:
            placed = await other.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.00100")
            assert placed["status"] == "FILLED"
            got = await other.get_order(symbol="BTCUSDT", orderId=placed["orderId"])
            assert got["executedQty"] == "0.00100000"
            account = await other.get_account()
            btc = next(b for b in account["balances"] if b["asset"] == "BTC")
            assert Decimal(btc["free"]) == Decimal("5.001")
        finally:
            await other.close_connection()


@pytest.mark.interop
@pytest.mark.parametrize("kind", KEY_KINDS)
async def test_python_binance_places_orders_over_the_simulated_ws_api(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """python-binance's own WebSocket API signing (sorted params, PROTOCOL 7.2) is accepted as well."""
    binance = pytest.importorskip("binance")
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", kind)  # type: ignore[arg-type]
        monkeypatch.setattr(binance.AsyncClient, "API_URL", f"{sim.rest_url}/api")
        monkeypatch.setattr(binance.AsyncClient, "WS_API_URL", sim.ws_api_url)
        # Its close waits for its reader's receive timeout (10 s by default): a speed knob, not logic.
        monkeypatch.setattr(binance.ws.reconnecting_websocket.ReconnectingWebsocket, "TIMEOUT", 0.2)
        other = await binance.AsyncClient.create(creds.api_key, creds.secret, private_key=creds.private_key)
        try:
            placed = await other.ws_create_order(symbol="BTCUSDT", side="SELL", type="MARKET",
                                                 quantity="0.00100")
            assert placed["status"] == "FILLED" and placed["side"] == "SELL"
        finally:
            await other.close_connection()
        btc = sim.accounts.account("alice").balances["BTC"]  # type: ignore[attr-defined]
        assert btc.free == Decimal("4.999")


def _self_signed(tmp_path: Any) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (trusted by nobody)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


async def test_tls_certificates_are_verified(tmp_path: Any) -> None:
    """An https / wss endpoint with an untrusted certificate is refused, never silently accepted."""
    app = web.Application()
    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/api/v3/ping", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_self_signed(tmp_path))
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with AsyncClient(base_url=f"https://127.0.0.1:{port}", env={}) as client:
            with pytest.raises(BinanceAPIError) as info:
                await client.ping()
        assert info.value.status == 0 and "Certificate" in str(info.value)
        connection = WsApiConnection(f"wss://127.0.0.1:{port}/ws-api/v3",
                                     backoff=BackoffPolicy(initial_s=0.01, max_s=0.01, max_retries=None))
        with pytest.raises(BinanceAPIError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await connection.start()
        await connection.close()
    finally:
        await runner.cleanup()


async def test_one_client_serves_several_event_loops() -> None:
    """The facade drives ``client.async_client`` from its own loop while ``Client`` runs another."""
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        client = Client(creds.api_key, creds.secret, market=sim.market, env={})
        try:
            before = await asyncio.to_thread(client.get_account)  # the Client's private loop
            after = await client.async_client.get_account()  # this test's loop, same client
            assert before["balances"] == after["balances"]
        finally:
            await asyncio.to_thread(client.close)  # closes both loops' sessions
        assert not client.async_client._sessions
