"""binance-ws: Binance WebSocket streams done right.

Public API (see README.md): ``BinanceSocketManager`` (threaded, seed-compatible), ``AsyncSocketManager``
(asyncio), ``binance_ws.enums``, ``binance_ws.errors``, ``binance_ws.markets`` and the simulator in
``binance_ws.sim``.
"""

__version__ = "0.1.0"
