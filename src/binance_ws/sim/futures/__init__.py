"""Futures market streams of the simulator (USD-M and COIN-M): product declarations, the mark-price,
funding and liquidation models, and the feeds that turn engine events into futures payloads.

Spot and futures share one matching engine per symbol (``binance_ws.sim.exchange``); what differs is
declared in :mod:`binance_ws.sim.futures.product` (routes, cadences, key sets, limits), not branched on.
"""
