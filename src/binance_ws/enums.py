"""Public constants, named as in python-binance so seed code ports unchanged.

Values are Binance's own strings; the source of each set is ../shared/PROTOCOL.md section 4.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

# Kline intervals (PROTOCOL.md 4.5). 1s exists on spot only.
KLINE_INTERVAL_1SECOND: Final = "1s"
KLINE_INTERVAL_1MINUTE: Final = "1m"
KLINE_INTERVAL_3MINUTE: Final = "3m"
KLINE_INTERVAL_5MINUTE: Final = "5m"
KLINE_INTERVAL_15MINUTE: Final = "15m"
KLINE_INTERVAL_30MINUTE: Final = "30m"
KLINE_INTERVAL_1HOUR: Final = "1h"
KLINE_INTERVAL_2HOUR: Final = "2h"
KLINE_INTERVAL_4HOUR: Final = "4h"
KLINE_INTERVAL_6HOUR: Final = "6h"
KLINE_INTERVAL_8HOUR: Final = "8h"
KLINE_INTERVAL_12HOUR: Final = "12h"
KLINE_INTERVAL_1DAY: Final = "1d"
KLINE_INTERVAL_3DAY: Final = "3d"
KLINE_INTERVAL_1WEEK: Final = "1w"
KLINE_INTERVAL_1MONTH: Final = "1M"

#: Every kline interval, in Binance's order, with its length in milliseconds (1M is nominal: 30 days;
#: real month bars follow the calendar, see binance_ws.streams.kline_bounds).
KLINE_INTERVALS_MS: Final[dict[str, int]] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 2_592_000_000,
}

# Partial book depth levels (PROTOCOL.md 4.11).
WEBSOCKET_DEPTH_5: Final = "5"
WEBSOCKET_DEPTH_10: Final = "10"
WEBSOCKET_DEPTH_20: Final = "20"
DEPTH_LEVELS: Final = (5, 10, 20)

# Rolling-window ticker sizes (PROTOCOL.md 4.8).
TICKER_WINDOWS: Final = ("1h", "4h", "1d")

# Order enums (PROTOCOL.md 6.4).
SIDE_BUY: Final = "BUY"
SIDE_SELL: Final = "SELL"
ORDER_TYPE_LIMIT: Final = "LIMIT"
ORDER_TYPE_MARKET: Final = "MARKET"
ORDER_TYPE_LIMIT_MAKER: Final = "LIMIT_MAKER"
TIME_IN_FORCE_GTC: Final = "GTC"
TIME_IN_FORCE_IOC: Final = "IOC"
TIME_IN_FORCE_FOK: Final = "FOK"


class FuturesType(Enum):
    """Which futures product a futures call reaches; python-binance's ``binance.enums.FuturesType``
    (same members and values), so code written for it runs after changing the import."""

    USD_M = 1
    COIN_M = 2


class ContractType(Enum):
    """The contract of a continuous kline (python-binance's ``binance.enums.ContractType``)."""

    PERPETUAL = "perpetual"
    CURRENT_QUARTER = "current_quarter"
    NEXT_QUARTER = "next_quarter"
