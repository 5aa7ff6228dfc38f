"""``python -m binance_ws.cli``."""

from binance_ws.cli import main

main()
