"""binance-ws: Binance WebSocket streams done right.

Public API (see README.md): ``BinanceSocketManager`` (threaded, seed-compatible), ``AsyncSocketManager``
(asyncio), ``binance_ws.enums``, ``binance_ws.errors``, ``binance_ws.markets`` and the simulator in
``binance_ws.sim``.
"""

__version__ = "0.1.0"

from typing import Any

__all__ = ["AsyncSocketManager", "BinanceSocketManager"]


def __getattr__(name: str) -> Any:
    # Imported on first use: ``import binance_ws.streams`` (or the simulator) must not pull in the
    # whole engine, and the engine itself imports this package.
    if name == "BinanceSocketManager":
        from binance_ws.websockets import BinanceSocketManager
        return BinanceSocketManager
    if name == "AsyncSocketManager":
        from binance_ws.engine.manager import AsyncSocketManager
        return AsyncSocketManager
    raise AttributeError(f"module 'binance_ws' has no attribute {name!r}")
