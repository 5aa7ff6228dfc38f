"""The stream engine: combined connections that heal themselves, one hot path, bounded delivery.

``AsyncSocketManager`` is the entry point; ``Subscription`` is what it hands back; ``RawMessage`` is what
``decode="raw"`` subscribers receive; ``LinkHook`` / ``LinkState`` type a subscriber's ``on_link`` hook.
"""

from binance_ws.engine.delivery import LinkHook, LinkState, OverflowPolicy, RawMessage, Subscription
from binance_ws.engine.manager import AsyncSocketManager, StreamSocket

__all__ = ["AsyncSocketManager", "LinkHook", "LinkState", "OverflowPolicy", "RawMessage", "StreamSocket",
           "Subscription"]
