"""Sinks: where collected messages go. One interface (:mod:`binance_ws.sinks.base`), one module per
backend."""

from binance_ws.sinks.base import Entry, Marker, Pump, Sink

__all__ = ["Entry", "Marker", "Pump", "Sink"]
