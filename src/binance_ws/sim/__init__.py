"""binance_ws.sim: a faithful local Binance (matching engine, stream server, REST, replay, faults).

The simulator never imports the client engine; tests and the CLI join the two.
"""

from binance_ws.sim.config import SimConfig, SymbolSpec
from binance_ws.sim.simulator import Simulator

__all__ = ["SimConfig", "Simulator", "SymbolSpec"]
