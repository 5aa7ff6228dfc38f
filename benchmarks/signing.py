"""Signing cost per request: our signers and payload encoder against the bare library calls.

Run: ``python benchmarks/signing.py`` (a few seconds). Prints operations per second and, for HMAC and
the encoder, the ratio to the plain-library baseline measured in the same process.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import urlencode

from binance_ws.core.signing import encode_params, generate_private_key, make_signer, ws_payload

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"  # PROTOCOL 7.1 example key
ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000",
         "price": "61800.01", "newClientOrderId": "bench-1", "recvWindow": 5000, "timestamp": 1499827319559}


def rate(fn: Callable[[], object], seconds: float = 0.4) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    payload = encode_params(ORDER)
    key = SECRET.encode()
    data = payload.encode()
    hmac_signer = make_signer(secret=SECRET)
    ed = make_signer(private_key=generate_private_key("ED25519"))
    rsa = make_signer(private_key=generate_private_key("RSA"))

    base_hmac = rate(lambda: hmac.new(key, data, hashlib.sha256).hexdigest())
    ours_hmac = rate(lambda: hmac_signer.sign(payload))
    base_enc = rate(lambda: urlencode(ORDER))
    ours_enc = rate(lambda: encode_params(ORDER))
    rows = [
        ("hmac.new(...).hexdigest() baseline", base_hmac, None),
        ("HmacSigner.sign", ours_hmac, ours_hmac / base_hmac),
        ("urllib urlencode baseline", base_enc, None),
        ("encode_params (percent-encoded, signed text)", ours_enc, ours_enc / base_enc),
        ("ws_payload (sorted raw)", rate(lambda: ws_payload(ORDER)), None),
        ("Ed25519Signer.sign", rate(lambda: ed.sign(payload)), None),
        ("RsaSigner.sign (2048 bit)", rate(lambda: rsa.sign(payload), 1.0), None),
    ]
    for name, ops, ratio in rows:
        extra = f"  ({ratio:.2f}x baseline)" if ratio is not None else ""
        print(f"{name:<48} {ops:>12,.0f} /s{extra}")


if __name__ == "__main__":
    main()
