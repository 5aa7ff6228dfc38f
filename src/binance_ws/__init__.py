"""binance-ws: Binance WebSocket streams done right.

Public API (see README.md): ``BinanceSocketManager`` (threaded, seed-compatible), ``AsyncSocketManager``
(asyncio) and its ``Subscription`` / ``RawMessage``, ``DepthCacheManager`` / ``DepthCache`` (local order
books), ``Client`` / ``AsyncClient`` (signed REST), ``user_socket`` / ``UserDataStream`` /
``ListenKeyStream`` (user data), the exceptions, ``local_market`` (a market row for a simulator's URLs),
``binance_ws.enums``, ``binance_ws.errors``, ``binance_ws.markets`` and the simulator in ``binance_ws.sim``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> module that defines it. Imported on first use: ``import binance_ws.streams`` (or the
#: simulator) must not pull in the whole engine, and the engine itself imports this package.
_LAZY = {
    "BinanceSocketManager": "binance_ws.websockets",
    "AsyncSocketManager": "binance_ws.engine.manager",
    "DepthCacheManager": "binance_ws.depthcache",
    "DepthCache": "binance_ws.core.book",
    "Client": "binance_ws.client",
    "AsyncClient": "binance_ws.client",
    "BinanceAPIError": "binance_ws.client",
    "Subscription": "binance_ws.engine.delivery",
    "RawMessage": "binance_ws.engine.delivery",
    "user_socket": "binance_ws.engine.userdata",
    "UserDataStream": "binance_ws.engine.userdata",
    "ListenKeyStream": "binance_ws.engine.userdata",
    "BinanceWSError": "binance_ws.errors",
    "InvalidStreamError": "binance_ws.errors",
    "SubscriptionError": "binance_ws.errors",
    "local_market": "binance_ws.markets",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'binance_ws' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
