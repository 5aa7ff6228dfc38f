"""The simulator's listen-key user stream: one connection reading one listen key's account events.

Paths (../shared/PROTOCOL.md 6.2 and 8): ``/ws/<listenKey>`` (legacy spot and COIN-M form) and
``/private/ws?listenKey=<key>[&events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE]`` (USD-M since 2026; ``events``
keeps only the listed event types). Events are bare, with no envelope. When the key
expires the stream receives ``listenKeyExpired`` and nothing more until the client uses a new key.

A key carries the events of the futures product it was made on (``/fapi/v1/listenKey``: USD-M,
``/dapi/v1/listenKey``: COIN-M): ``ORDER_TRADE_UPDATE``, ``TRADE_LITE`` (USD-M), ``ACCOUNT_UPDATE``
(:mod:`binance_ws.sim.futures_accounts`), never spot's ``executionReport``; the lifecycle (keep-alive,
expiry, replacement) is Binance's. The server builds one ``ListenKeyListener(accounts, request)`` per
connection; ``Accounts.open_listen_key_stream`` is the per-key event source it reads.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest

from binance_ws.sim.accounts import Accounts

EXPIRED: Final = "listenKeyExpired"
#: How often an open stream checks its key for expiry (simulator bookkeeping; tests move the clock).
EXPIRY_CHECK_S: Final = 0.05
#: Close code for a key that does not exist when connecting (Binance's is undocumented, PROTOCOL 11).
UNKNOWN_KEY_CLOSE: Final = WSCloseCode.POLICY_VIOLATION


def events_of(path: str) -> frozenset[str] | None:
    """The ``events=A/B`` filter of a ``/private`` path (PROTOCOL 8), or None for every event."""
    raw = parse_qs(urlsplit(path).query).get("events")
    if not raw:
        return None
    return frozenset(e for part in raw for e in part.split("/") if e)


def listen_key_of(path: str) -> str | None:
    """The listen key in a stream path, in either form, or None."""
    parts = urlsplit(path)
    query = parse_qs(parts.query).get("listenKey")
    if query:
        return query[0]
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) == 2 and segments[0] == "ws":
        return segments[1]
    return None


class ListenKeyListener(WSListener):
    """One listen-key stream connection: ``ListenKeyListener(accounts, request)``."""

    def __init__(self, accounts: Accounts, request: WSUpgradeRequest) -> None:
        self._accounts = accounts
        path = request.path.decode()
        self.key = listen_key_of(path)
        #: Event types this connection asked for (``events=``); ``listenKeyExpired`` always passes, as the
        #: client must learn its key is gone (Binance's behaviour here is undocumented, PROTOCOL 11).
        self.events = events_of(path)
        self._transport: WSTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        if self.key is None or not self._accounts.open_listen_key_stream(self.key, self._send):
            transport.send_close(UNKNOWN_KEY_CLOSE, b"Invalid listenKey")
            transport.disconnect()
            return
        self._accounts.sessions.add(self)
        self._schedule()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.key is not None:
            self._accounts.close_listen_key_stream(self.key, self._send)
        self._accounts.sessions.discard(self)
        self._transport = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def close(self, code: WSCloseCode = WSCloseCode.GOING_AWAY) -> None:
        if self._transport is not None:
            self._transport.send_close(code)
            self._transport.disconnect()

    def drop(self) -> None:
        if self._transport is not None:
            self._transport.disconnect(graceful=False)

    def _send(self, event: dict[str, Any]) -> None:
        if self.events is not None and event.get("e") not in self.events and event.get("e") != EXPIRED:
            return
        if self._transport is not None and not self._transport.is_disconnected:
            self._transport.send(WSMsgType.TEXT, orjson.dumps(event))

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(EXPIRY_CHECK_S, self._check)

    def _check(self) -> None:
        self._accounts.expire_listen_keys()
        if self._transport is not None:
            self._schedule()
