"""Exception types a caller can catch, and the one shape of error events delivered to callbacks.

Error events: every error a data callback can ever receive is a dict
``{'e': 'error', 'm': <message>, 'type': <kind>, ...}``. ``'m'`` is one of the ``MSG_*`` strings below
(or starts with one, followed by detail); ``'type'`` is one of the ``ERR_*`` kinds. Extra keys are
documented per kind. Nothing else that is not Binance's own payload ever reaches a data callback.
"""

from __future__ import annotations

from typing import Any, Final


class BinanceWSError(Exception):
    """Base class of every exception this library raises."""


class InvalidStreamError(BinanceWSError, ValueError):
    """A stream name, symbol, interval or depth level was refused before connecting."""


class ConnectionClosedError(BinanceWSError):
    """A connection closed and will not be reopened (maximum retries, or closed by the caller)."""


class RateLimitError(BinanceWSError):
    """Binance answered 429 or 418; ``retry_after`` says how long to wait, in seconds."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class SubscriptionError(BinanceWSError):
    """A SUBSCRIBE/UNSUBSCRIBE/property request was answered with an error object."""

    def __init__(self, code: int, msg: str, request_id: Any = None) -> None:
        super().__init__(f"Binance stream error {code}: {msg}")
        self.code = code
        self.msg = msg
        self.request_id = request_id


# Error-event kinds ('type') and messages ('m').
ERR_MAX_RETRIES: Final = "max_retries"
ERR_GAP: Final = "gap"
ERR_DISCONNECTED: Final = "disconnected"
ERR_SUBSCRIPTION: Final = "subscription"
ERR_MALFORMED: Final = "malformed"
#: A stream's ids went backwards past what a re-delivery explains, or jumped absurdly far ahead
#: (:mod:`binance_ws.core.sequence`): extra keys ``stream``, ``last`` (the id tracking had reached) and
#: ``got`` (the id it restarts from; that message is delivered), and ``skipped`` when one earlier
#: message was dropped as a duplicate before the restart showed.
ERR_RESET: Final = "reset"
#: A stream was silent longer than the ``no_data_timeout`` its manager was given: extra keys ``stream``
#: and ``silent_s``. Once per silence; it is a signal, not a failure: the connection is not touched
#: (a quiet symbol's book sends nothing while it does not change, PROTOCOL 4.12).
ERR_QUIET: Final = "quiet"

MSG_MAX_RETRIES: Final = "Max reconnect retries reached"
MSG_GAP: Final = "Gap detected"
MSG_DISCONNECTED: Final = "Connection lost, reconnecting"
MSG_SUBSCRIPTION: Final = "Subscription refused"
MSG_MALFORMED: Final = "Malformed frame skipped"
MSG_RESET: Final = "Sequence reset"
MSG_QUIET: Final = "No data for longer than expected"


def error_event(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """Build an error event in the documented shape."""
    event: dict[str, Any] = {"e": "error", "m": message, "type": kind}
    event.update(extra)
    return event


def max_retries_event() -> dict[str, Any]:
    """The exact dict the seed promises after the last failed reconnect attempt."""
    return {"e": "error", "m": MSG_MAX_RETRIES}


def first_line(exc: BaseException) -> str:
    """An exception as one line: the first line of its text (its repr when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)
