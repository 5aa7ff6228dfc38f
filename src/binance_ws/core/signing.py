"""Request signing for Binance's REST API and WebSocket API, and the matching verification.

Sans-I/O: signers turn a payload string into a signature string; the payload builders say exactly
which bytes are signed (../shared/PROTOCOL.md section 7):

* REST (7.1): the percent-encoded query string concatenated with the percent-encoded form body, no
  separator. Since 2026-01-15 the payload must be percent-encoded *before* signing.
* WebSocket API (7.2): every param except ``signature``, sorted by name, joined as raw ``k=v`` with ``&``.

Key types (7.1): HMAC-SHA256 (lowercase hex, verified case-insensitively), RSA PKCS#1 v1.5 with
SHA-256 (base64) and Ed25519 (base64). Secret-holding objects never show their secret in ``repr``,
``str`` or pickles; the simulator verifies with :class:`Verifier` built from a secret or public key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from binance_ws.errors import BinanceWSError

KeyType = Literal["HMAC", "RSA", "ED25519"]

#: Characters left as-is when percent-encoding a REST parameter: RFC 3986 unreserved only, so that
#: ``&``, ``=``, ``+``, ``/`` and every non-ASCII byte are escaped (PROTOCOL 7.1, 2026-01-15 rule).
_UNRESERVED = "-_.~"

#: What a key file or PEM string may be handed to us as.
KeyMaterial = str | bytes | os.PathLike[str]


class SigningError(BinanceWSError, ValueError):
    """Key material could not be loaded or is of a type Binance does not accept. Never carries the key."""


# -- payloads --------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A parameter value as Binance expects it on the wire (booleans lowercase, everything else ``str``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_params(params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """Percent-encode ``params`` in the given order as ``k=v&...``; ``None`` values are left out.

    This string is both what goes on the wire and what is signed, so the two can never disagree.
    """
    items = params.items() if isinstance(params, Mapping) else params
    return "&".join(
        f"{quote(str(k), safe=_UNRESERVED)}={quote(format_value(v), safe=_UNRESERVED)}"
        for k, v in items
        if v is not None
    )


def rest_payload(query: str = "", body: str = "") -> str:
    """The REST signature payload: query string then body, joined with no separator (PROTOCOL 7.1)."""
    return query + body


def ws_payload(params: Mapping[str, Any]) -> str:
    """The WebSocket API signature payload: params but ``signature``, sorted, raw ``k=v`` (PROTOCOL 7.2)."""
    return "&".join(
        f"{k}={format_value(params[k])}" for k in sorted(params) if k != "signature" and params[k] is not None
    )


# -- signers ---------------------------------------------------------------------------------------


class Signer(Protocol):
    """Something that signs payloads for one API key."""

    key_type: KeyType

    def sign(self, payload: str) -> str:
        """Sign the UTF-8 bytes of ``payload`` and return the signature as Binance expects it."""
        ...


class HmacSigner:
    """HMAC-SHA256 with the API secret; lowercase hex output (PROTOCOL 7.1)."""

    __slots__ = ("_secret",)
    key_type: KeyType = "HMAC"

    def __init__(self, secret: str | bytes) -> None:
        if not secret:
            raise SigningError("empty HMAC secret")
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)

    def sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(secret=<redacted>)"

    def __reduce__(self) -> Any:
        raise TypeError("signers hold secrets and cannot be pickled")


class RsaSigner:
    """RSASSA-PKCS1-v1_5 with SHA-256 over a PKCS#8 private key; base64 output (PROTOCOL 7.1)."""

    __slots__ = ("_key",)
    key_type: KeyType = "RSA"

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key

    def sign(self, payload: str) -> str:
        raw = self._key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(raw).decode()

    def __repr__(self) -> str:
        return f"RsaSigner(bits={self._key.key_size}, key=<redacted>)"

    def __reduce__(self) -> Any:
        raise TypeError("signers hold secrets and cannot be pickled")


class Ed25519Signer:
    """Ed25519 over the payload bytes; base64 output (PROTOCOL 7.1, the recommended key type)."""

    __slots__ = ("_key",)
    key_type: KeyType = "ED25519"

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    def sign(self, payload: str) -> str:
        return base64.b64encode(self._key.sign(payload.encode())).decode()

    def __repr__(self) -> str:
        return "Ed25519Signer(key=<redacted>)"

    def __reduce__(self) -> Any:
        raise TypeError("signers hold secrets and cannot be pickled")


def _read_material(material: KeyMaterial) -> bytes:
    """PEM bytes from a PEM string/bytes or from a path to a PEM file."""
    if isinstance(material, bytes):
        return material
    if isinstance(material, str) and "-----BEGIN" in material:
        return material.encode()
    path = Path(material)
    try:
        return path.read_bytes()
    except OSError as exc:
        # The path is not secret; the error text from the OS names only the path.
        raise SigningError(f"cannot read private key file {path}: {exc.strerror}") from None


def private_key_signer(material: KeyMaterial,
                       password: str | bytes | None = None) -> RsaSigner | Ed25519Signer:
    """A signer from a PEM private key (string, bytes or file path), RSA or Ed25519 by its content.

    Raises :class:`SigningError` if the key cannot be parsed or is of another type; the message never
    contains key material.
    """
    pem = _read_material(material)
    pw = password.encode() if isinstance(password, str) else password
    try:
        key = serialization.load_pem_private_key(pem, password=pw)
    except (ValueError, TypeError) as exc:
        # The library's message describes the format problem, never the key bytes.
        raise SigningError(f"cannot load private key: {type(exc).__name__}") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return Ed25519Signer(key)
    if isinstance(key, rsa.RSAPrivateKey):
        return RsaSigner(key)
    raise SigningError(f"unsupported private key type {type(key).__name__}: Binance accepts RSA and Ed25519")


def make_signer(*, secret: str | bytes | None = None, private_key: KeyMaterial | None = None,
                private_key_password: str | bytes | None = None) -> Signer:
    """The signer for whichever key material was given (exactly one of ``secret`` / ``private_key``)."""
    if (secret is None) == (private_key is None):
        raise SigningError("give exactly one of an HMAC secret or a private key")
    if secret is not None:
        return HmacSigner(secret)
    assert private_key is not None
    return private_key_signer(private_key, private_key_password)


# -- verification (the simulator's side) ---------------------------------------------------------------


class Verifier:
    """Checks a signature for one registered API key: HMAC secret, or RSA / Ed25519 public key.

    ``verify`` never raises for a bad signature; it answers ``False`` (the server turns that into -1022).
    """

    __slots__ = ("_hmac", "_public", "key_type")

    def __init__(self, key_type: KeyType, *, secret: bytes | None = None,
                 public_key: rsa.RSAPublicKey | ed25519.Ed25519PublicKey | None = None) -> None:
        self.key_type = key_type
        self._hmac = secret
        self._public = public_key

    @classmethod
    def hmac(cls, secret: str | bytes) -> Verifier:
        return cls("HMAC", secret=secret.encode() if isinstance(secret, str) else bytes(secret))

    @classmethod
    def from_public_key(cls, material: KeyMaterial) -> Verifier:
        """A verifier from a PEM public key (SubjectPublicKeyInfo); RSA or Ed25519 by its content."""
        pem = _read_material(material)
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError:
            raise SigningError("cannot load public key") from None
        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls("ED25519", public_key=key)
        if isinstance(key, rsa.RSAPublicKey):
            return cls("RSA", public_key=key)
        raise SigningError(f"unsupported public key type {type(key).__name__}")

    def verify(self, payload: str, signature: str) -> bool:
        data = payload.encode()
        if self._hmac is not None:
            expected = hmac.new(self._hmac, data, hashlib.sha256).hexdigest()
            # HMAC signatures are case-insensitive (PROTOCOL 7.1).
            return hmac.compare_digest(expected, signature.lower())
        try:
            raw = base64.b64decode(signature, validate=True)
        except (ValueError, TypeError):
            return False
        try:
            if isinstance(self._public, ed25519.Ed25519PublicKey):
                self._public.verify(raw, data)
            elif isinstance(self._public, rsa.RSAPublicKey):
                self._public.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                return False
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"Verifier({self.key_type}, key=<redacted>)"

    def __reduce__(self) -> Any:
        raise TypeError("verifiers may hold secrets and cannot be pickled")


def public_key_pem(signer: RsaSigner | Ed25519Signer) -> str:
    """The PEM public key of an asymmetric signer: what a user registers with Binance (and the simulator)."""
    key = signer._key.public_key()
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def generate_private_key(key_type: Literal["RSA", "ED25519"], bits: int = 2048) -> str:
    """A fresh unencrypted PKCS#8 PEM private key (for tests and the simulator's demo accounts)."""
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    key = rsa.generate_private_key(65537, bits) if key_type == "RSA" else ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
