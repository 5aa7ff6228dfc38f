"""Signing: PROTOCOL.md 7.1 test vectors, WS API payload rules, all three key types, no secret leaks."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_ws.core.signing import (
    Ed25519Signer,
    HmacSigner,
    RsaSigner,
    SigningError,
    Verifier,
    encode_params,
    generate_private_key,
    make_signer,
    private_key_signer,
    public_key_pem,
    rest_payload,
    ws_payload,
)

# PROTOCOL.md 7.1 (Binance's documented example key; not a real credential).
VECTOR_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
VECTOR_PARAMS = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
                 ("quantity", 1), ("price", 0.1), ("recvWindow", 5000), ("timestamp", 1499827319559)]


def test_hmac_vector_query_only() -> None:
    payload = encode_params(VECTOR_PARAMS)
    assert payload == ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
                       "&recvWindow=5000&timestamp=1499827319559")
    assert HmacSigner(VECTOR_SECRET).sign(payload) == \
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_hmac_vector_query_plus_body_without_separator() -> None:
    payload = rest_payload(encode_params(VECTOR_PARAMS[:4]), encode_params(VECTOR_PARAMS[4:]))
    assert "GTCquantity=1" in payload
    assert HmacSigner(VECTOR_SECRET).sign(payload) == \
        "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"


def test_hmac_vector_non_ascii_symbol_is_percent_encoded_before_signing() -> None:
    params = [("symbol", "１２３４５６"), *VECTOR_PARAMS[1:]]
    payload = encode_params(params)
    assert payload.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY")
    assert HmacSigner(VECTOR_SECRET).sign(payload) == \
        "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"


def test_encode_params_escapes_reserved_characters_and_drops_none() -> None:
    assert encode_params({"a": "x y&z=+/", "b": None, "c": True}) == "a=x%20y%26z%3D%2B%2F&c=true"


def test_ws_payload_sorts_skips_signature_and_keeps_raw_values() -> None:
    params = {"timestamp": 1, "apiKey": "K", "signature": "zzz", "symbol": "１２", "recvWindow": 100}
    assert ws_payload(params) == "apiKey=K&recvWindow=100&symbol=１２&timestamp=1"


@given(st.dictionaries(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1,
                               max_size=8),
                       st.one_of(st.integers(), st.text(max_size=12)), max_size=8))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_ws_payload_is_order_independent(params: dict[str, object]) -> None:
    reordered = dict(reversed(list(params.items())))
    assert ws_payload(params) == ws_payload(reordered)


@pytest.mark.parametrize("key_type", ["RSA", "ED25519"])
def test_asymmetric_signers_verify_with_their_public_key(key_type: str) -> None:
    pem = generate_private_key(key_type, bits=2048)  # type: ignore[arg-type]
    signer = private_key_signer(pem)
    assert signer.key_type == key_type
    payload = encode_params(VECTOR_PARAMS)
    sig = signer.sign(payload)
    verifier = Verifier.from_public_key(public_key_pem(signer))
    assert verifier.key_type == key_type
    assert verifier.verify(payload, sig)
    assert not verifier.verify(payload + "0", sig)
    assert not verifier.verify(payload, "not base64!")
    other = private_key_signer(generate_private_key(key_type, bits=2048))  # type: ignore[arg-type]
    assert not verifier.verify(payload, other.sign(payload))


def test_ed25519_signature_is_deterministic_and_base64() -> None:
    signer = private_key_signer(generate_private_key("ED25519"))
    assert isinstance(signer, Ed25519Signer)
    sig = signer.sign("apiKey=K&timestamp=1")
    assert sig == signer.sign("apiKey=K&timestamp=1")
    assert len(sig) == 88 and sig.endswith("==")  # 64 raw bytes


def test_hmac_verification_is_case_insensitive() -> None:
    sig = HmacSigner(VECTOR_SECRET).sign("x=1")
    verifier = Verifier.hmac(VECTOR_SECRET)
    assert verifier.verify("x=1", sig.upper())
    assert not verifier.verify("x=2", sig)


def test_private_key_from_path_and_encrypted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    signer = private_key_signer(generate_private_key("ED25519"))
    encrypted = signer._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(b"pw"))
    path = tmp_path / "key.pem"
    path.write_bytes(encrypted)
    loaded = private_key_signer(path, password="pw")
    assert loaded.sign("a=1") == signer.sign("a=1")
    with pytest.raises(SigningError):
        private_key_signer(path, password="wrong")
    with pytest.raises(SigningError, match="cannot read"):
        private_key_signer(tmp_path / "missing.pem")


def test_make_signer_requires_exactly_one_key() -> None:
    with pytest.raises(SigningError):
        make_signer()
    with pytest.raises(SigningError):
        make_signer(secret="s", private_key=generate_private_key("ED25519"))
    assert isinstance(make_signer(secret="s"), HmacSigner)
    assert isinstance(make_signer(private_key=generate_private_key("RSA")), RsaSigner)


def test_reprs_and_pickles_never_show_secrets() -> None:
    pem = generate_private_key("ED25519")
    body = pem.splitlines()[1]
    objects = [HmacSigner(VECTOR_SECRET), private_key_signer(pem), Verifier.hmac(VECTOR_SECRET)]
    for obj in objects:
        text = repr(obj) + str(obj)
        assert VECTOR_SECRET not in text and body not in text
        with pytest.raises(TypeError):
            pickle.dumps(obj)
    with pytest.raises(SigningError) as info:
        private_key_signer(pem.replace(body, body[::-1]))
    assert body not in str(info.value) and body[::-1] not in str(info.value)
