"""Wire helpers shared by the simulator's servers: the combined wrapper and the microsecond time unit."""

from __future__ import annotations

from typing import Any

# Keys that hold epoch times in stream payloads (PROTOCOL.md section 4 and 6.4). Kline bodies nest
# their open/close times under "k". Trade "t" is an id, not a time, so it is not listed.
_TIME_KEYS = frozenset({"E", "T", "O", "C", "W"})
_KLINE_TIME_KEYS = frozenset({"t", "T"})


def to_microseconds(payload: Any) -> Any:
    """A copy of ``payload`` with every time field in µs (``timeUnit=MICROSECOND``, PROTOCOL 1.3)."""
    if isinstance(payload, list):
        return [to_microseconds(p) for p in payload]
    if not isinstance(payload, dict):
        return payload
    out = dict(payload)
    for key in _TIME_KEYS.intersection(out):
        if key in ("O", "C") and out.get("e") not in _WINDOW_EVENTS and out.get("e") != "executionReport":
            continue
        value = out[key]
        if isinstance(value, int):
            out[key] = value * 1000
    if out.get("e") == "outboundAccountPosition" and isinstance(out.get("u"), int):
        out["u"] = out["u"] * 1000
    kline = out.get("k")
    if isinstance(kline, dict):
        k = dict(kline)
        for key in _KLINE_TIME_KEYS.intersection(k):
            k[key] = k[key] * 1000
        out["k"] = k
    return out


# Ticker events whose "O"/"C" are window open/close times (elsewhere "O"/"C" mean other things).
_WINDOW_EVENTS = frozenset({"24hrTicker", "1hTicker", "4hTicker", "1dTicker"})


def combined(stream: str, payload: bytes) -> bytes:
    """Wrap an encoded payload as Binance's combined stream does, ``stream`` first."""
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"
