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
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qs, parse_qsl, urlsplit

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


def subscriptions_of(path: str) -> list[tuple[str, frozenset[str] | None]]:
    """Every ``(listenKey, events filter)`` of a stream path, in order: ``/ws/<key>``, ``?listenKey=k``
    or ``/private/stream?listenKey=k1&events=A/B&listenKey=k2&events=C`` (PROTOCOL 8: each ``events``
    applies to the ``listenKey`` before it; a key without one gets every event)."""
    parts = urlsplit(path)
    subs: list[tuple[str, frozenset[str] | None]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "listenKey" and value:
            subs.append((value, None))
        elif name == "events" and subs:
            key, _ = subs[-1]
            subs[-1] = (key, frozenset(e for e in value.split("/") if e) or None)
    if subs:
        return subs
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) >= 2 and segments[-2] == "ws":
        return [(segments[-1], None)]
    return []


def listen_key_of(path: str) -> str | None:
    """The (first) listen key in a stream path, in any form, or None."""
    subs = subscriptions_of(path)
    return subs[0][0] if subs else None


class ListenKeyListener(WSListener):
    """One listen-key stream connection: ``ListenKeyListener(accounts, request)``."""

    def __init__(self, accounts: Accounts, request: WSUpgradeRequest) -> None:
        self._accounts = accounts
        path = request.path.decode()
        #: ``(listen key, events filter)`` per key read on this connection; ``listenKeyExpired`` always
        #: passes a filter, as the client must learn its key is gone (Binance's behaviour here is
        #: undocumented, PROTOCOL 11).
        self.subscriptions = subscriptions_of(path)
        self.key = self.subscriptions[0][0] if self.subscriptions else None
        self.events = self.subscriptions[0][1] if self.subscriptions else None
        #: ``/stream`` (combined): each event is wrapped as ``{"stream": <listenKey>, "data": event}``.
        self.combined = urlsplit(path).path.rstrip("/").endswith("/stream")
        self._senders: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._transport: WSTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        for key, events in self.subscriptions:
            sender = self._sender(key, events)
            if not self._accounts.open_listen_key_stream(key, sender):
                for opened, send in self._senders.items():
                    self._accounts.close_listen_key_stream(opened, send)
                self._senders.clear()
                transport.send_close(UNKNOWN_KEY_CLOSE, b"Invalid listenKey")
                transport.disconnect()
                return
            self._senders[key] = sender
        if not self._senders:
            transport.send_close(UNKNOWN_KEY_CLOSE, b"Invalid listenKey")
            transport.disconnect()
            return
        self._accounts.sessions.add(self)
        self._schedule()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for key, send in self._senders.items():
            self._accounts.close_listen_key_stream(key, send)
        self._senders.clear()
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

    def _sender(self, key: str, events: frozenset[str] | None) -> Callable[[dict[str, Any]], None]:
        def send(event: dict[str, Any]) -> None:
            if events is not None and event.get("e") not in events and event.get("e") != EXPIRED:
                return
            if self._transport is not None and not self._transport.is_disconnected:
                body = {"stream": key, "data": event} if self.combined else event
                self._transport.send(WSMsgType.TEXT, orjson.dumps(body))
        return send

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(EXPIRY_CHECK_S, self._check)

    def _check(self) -> None:
        self._accounts.expire_listen_keys()
        if self._transport is not None:
            self._schedule()
