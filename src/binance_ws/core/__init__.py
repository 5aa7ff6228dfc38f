"""The client's Sans-I/O core: plain objects fed events and time, returning decisions and actions.

``backoff`` (reconnect delays), ``budget`` (token bucket, sliding window, REST weight), ``plan`` (streams
onto connections, control-message pacing) and ``sequence`` (duplicates and gaps). Nothing here opens a
socket, sleeps or touches asyncio; the engine in :mod:`binance_ws.engine` binds them to I/O.
"""

from binance_ws.core.backoff import Backoff, BackoffPolicy
from binance_ws.core.budget import SlidingWindow, TokenBucket, WeightBudget
from binance_ws.core.plan import (
    Action,
    Close,
    ControlMessage,
    ControlScheduler,
    Open,
    Subscribe,
    SubscriptionPlan,
    Unsubscribe,
)
from binance_ws.core.sequence import DUPLICATE, OK, SequenceTracker, Verdict

__all__ = [
    "DUPLICATE",
    "OK",
    "Action",
    "Backoff",
    "BackoffPolicy",
    "Close",
    "ControlMessage",
    "ControlScheduler",
    "Open",
    "SequenceTracker",
    "SlidingWindow",
    "Subscribe",
    "SubscriptionPlan",
    "TokenBucket",
    "Unsubscribe",
    "Verdict",
    "WeightBudget",
]
