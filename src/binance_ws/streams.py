"""Binance stream names: build them, validate them before connecting, parse them, know their cadence.

Every fact here (stream types, intervals, depth levels and speeds, push cadences, retired streams) comes
from ../shared/PROTOCOL.md section 4 (spot) and 8 (futures), cited per table row. Builders return the
exact names Binance expects (lowercase symbol, ``@``, the type); :func:`validate_stream` refuses a bad
name with a message that says how to fix it, so nothing invalid ever reaches a socket.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from binance_ws.enums import DEPTH_LEVELS, KLINE_INTERVALS_MS, TICKER_WINDOWS
from binance_ws.errors import InvalidStreamError
from binance_ws.markets import SPOT, Market

# -- tables (PROTOCOL.md section 4 unless noted) ---------------------------------------------------

#: Per-symbol stream types and the nominal seconds between pushes (None: real-time, pushed on events,
#: so silence only means no activity). Kinds with parameters (kline, depth, ticker_<w>) are parsed
#: separately below; their cadences are in the tables after this one.
_SIMPLE_KINDS: Final[dict[str, float | None]] = {
    "trade": None,  # 4.2 real-time
    "aggTrade": None,  # 4.1 real-time (futures: 100 ms aggregation, still event driven, 8)
    "blockTrade": None,  # 4.3 real-time
    "bookTicker": None,  # 4.9 real-time
    "referencePrice": 1.0,  # 4.4 1000 ms
    "miniTicker": 1.0,  # 4.6 1000 ms
    "ticker": 1.0,  # 4.7 1000 ms
    "avgPrice": 1.0,  # 4.10 1000 ms
}
#: Futures-only per-symbol kinds (PROTOCOL 8): markPrice is 3 s (or 1 s with ``@1s``), forceOrder a
#: 1000 ms snapshot, compositeIndex 1000 ms per the futures pages.
_FUTURES_SIMPLE_KINDS: Final[dict[str, float | None]] = {
    "markPrice": 3.0,
    "forceOrder": 1.0,
    "compositeIndex": 1.0,
}
#: Futures push some shared kinds at another pace: the 24 h ticker every 2000 ms (PROTOCOL 8).
_FUTURES_CADENCE_S: Final[dict[str, float | None]] = {"ticker": 2.0}
#: Kline push cadence: 1 s for the 1s interval, 2 s for every other one (4.5); futures 250 ms (8).
_KLINE_CADENCE_S: Final = 2.0
_KLINE_1S_CADENCE_S: Final = 1.0
_FUTURES_KLINE_CADENCE_S: Final = 0.25
#: Depth speeds: spot diff and partial depth default to 1000 ms with an ``@100ms`` variant (4.11, 4.12);
#: futures default to 250 ms and add 500 ms and an undocumented real-time ``@0ms`` (8).
_SPOT_DEPTH_SPEEDS_MS: Final = (100, 1000)
_SPOT_DEPTH_DEFAULT_MS: Final = 1000
_FUTURES_DEPTH_SPEEDS_MS: Final = (0, 100, 250, 500)
_FUTURES_DEPTH_DEFAULT_MS: Final = 250
#: Suffix of kline streams on the UTC+8 calendar (4.5, since 2024-05-30).
UTC8_SUFFIX: Final = "@+08:00"
_UTC8_OFFSET_MS: Final = 8 * 3_600_000
#: All-market array streams, and their cadence (4.6, 4.8: 1000 ms; futures 8).
_ALL_MARKET_CADENCE_S: Final = 1.0
#: Streams Binance has retired, with what to use instead (4.7, 4.9, 4.13).
RETIRED_STREAMS: Final[dict[str, str]] = {
    "!ticker@arr": "was retired by Binance on 2026-03-26; subscribe to '<symbol>@ticker' for each symbol "
                   "or to '!miniTicker@arr' instead (BinanceSocketManager.start_ticker_socket does the "
                   "per-symbol subscription for you)",
    "!bookTicker": "was removed by Binance on 2022-12-07; subscribe to '<symbol>@bookTicker' for each "
                   "symbol instead (they may share one connection)",
}
#: Futures still serve these all-market streams (8): name -> (kind, cadence).
_FUTURES_ALL_MARKET: Final[dict[str, tuple[str, float | None]]] = {
    "!ticker@arr": ("tickerArr", 1.0),
    "!miniTicker@arr": ("miniTickerArr", 1.0),
    "!bookTicker": ("bookTickerAll", 5.0),
    "!markPrice@arr": ("markPriceArr", 3.0),
    "!markPrice@arr@1s": ("markPriceArr", 1.0),
    "!forceOrder@arr": ("forceOrderArr", 1.0),
    "!contractInfo": ("contractInfo", None),
}
#: Symbols: Binance's REST pattern is ``^[A-Z0-9-_.]{1,20}$``; non-ASCII (UTF-8) symbol names exist
#: since 2025 (1.2), so letters are any Unicode letters. Futures delivery symbols contain ``_`` (8).
MAX_SYMBOL_LENGTH: Final = 20
_SYMBOL_RE: Final = re.compile(r"^[^\W_]([^\W]|[-.])*$")
#: A spot listen key is 64 alphanumeric characters (6.2); futures keys are similar. A user stream is
#: named by the bare key (no ``@``).
_LISTEN_KEY_RE: Final = re.compile(r"^[A-Za-z0-9]{32,128}$")


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a stream name means.

    ``symbol`` is uppercase as in event bodies, or None for all-market (``!...``) and user streams.
    ``kind`` is the stream type as Binance spells it after the ``@`` ("trade", "aggTrade", "kline",
    "depth" for the diff stream, "depthN" for a partial book, "rollingTicker" for ``ticker_<w>``,
    "miniTickerArr"/"rollingTickerArr" for the all-market arrays, "userData" for a listen key, ...).
    Parameters that apply to the kind are set; the others are None.
    """

    name: str
    kind: str
    symbol: str | None = None
    interval: str | None = None
    utc8: bool = False
    levels: int | None = None
    speed_ms: int | None = None
    window: str | None = None

    @property
    def params(self) -> dict[str, object]:
        """The kind's parameters as a dict (only those that are set)."""
        out: dict[str, object] = {}
        for key in ("interval", "levels", "speed_ms", "window"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.utc8:
            out["utc8"] = True
        return out


# -- symbols ---------------------------------------------------------------------------------------

def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` in Binance's uppercase form.

    Raises :class:`InvalidStreamError` when it is not a string, is empty, too long, or holds characters
    no Binance symbol has (spaces, ``@``, ``/``...).
    """
    if not isinstance(symbol, str):
        raise InvalidStreamError(f"symbol must be a string such as 'BNBBTC', got {symbol!r}")
    if not symbol:
        raise InvalidStreamError("symbol is empty; pass one such as 'BNBBTC'")
    if len(symbol) > MAX_SYMBOL_LENGTH:
        raise InvalidStreamError(f"symbol {symbol!r} is longer than {MAX_SYMBOL_LENGTH} characters")
    if "@" in symbol or "/" in symbol:
        raise InvalidStreamError(
            f"symbol {symbol!r} looks like a stream name; pass the bare symbol such as 'BNBBTC'")
    if not _SYMBOL_RE.match(symbol):
        raise InvalidStreamError(
            f"symbol {symbol!r} is not a Binance symbol: use letters and digits only, such as 'BNBBTC'")
    return symbol.upper()


def _sym(symbol: str) -> str:
    return validate_symbol(symbol).lower()


# -- builders --------------------------------------------------------------------------------------

def trade(symbol: str) -> str:
    """``<symbol>@trade``: every trade, real-time."""
    return f"{_sym(symbol)}@trade"


def agg_trade(symbol: str) -> str:
    """``<symbol>@aggTrade``: trades aggregated per taker order and price, real-time."""
    return f"{_sym(symbol)}@aggTrade"


def block_trade(symbol: str) -> str:
    """``<symbol>@blockTrade``: block trades, real-time (spot, since 2026-05-12)."""
    return f"{_sym(symbol)}@blockTrade"


def kline(symbol: str, interval: str = "1m", utc8: bool = False) -> str:
    """``<symbol>@kline_<interval>`` (``@+08:00`` appended with ``utc8``); raises on an unknown interval."""
    return f"{_sym(symbol)}@kline_{_check_interval(interval, SPOT)}{UTC8_SUFFIX if utc8 else ''}"


def depth(symbol: str, levels: int | str | None = None, speed_ms: int | None = None) -> str:
    """A spot depth stream: the diff stream ``<symbol>@depth`` or, with ``levels`` (5, 10, 20 or a
    ``WEBSOCKET_DEPTH_*`` constant), the partial book ``<symbol>@depth<N>``; ``speed_ms=100`` appends
    ``@100ms`` (1000 or None is the default speed). Raises :class:`InvalidStreamError` otherwise."""
    name = f"{_sym(symbol)}@depth"
    if levels is not None:
        name += str(_check_levels(levels))
    speed = _check_speed(speed_ms, SPOT)
    if speed != _SPOT_DEPTH_DEFAULT_MS:
        name += f"@{speed}ms"
    return name


def book_ticker(symbol: str) -> str:
    """``<symbol>@bookTicker``: best bid and ask, real-time."""
    return f"{_sym(symbol)}@bookTicker"


def mini_ticker(symbol: str | None = None) -> str:
    """``<symbol>@miniTicker``, or ``!miniTicker@arr`` (every symbol that changed) when ``symbol`` is None."""
    return "!miniTicker@arr" if symbol is None else f"{_sym(symbol)}@miniTicker"


def ticker(symbol: str) -> str:
    """``<symbol>@ticker``: the 24 h rolling ticker (the all-symbol array was retired in 2026)."""
    return f"{_sym(symbol)}@ticker"


def rolling_ticker(symbol: str | None, window: str) -> str:
    """``<symbol>@ticker_<window>`` or ``!ticker_<window>@arr``; ``window`` is one of 1h, 4h, 1d."""
    if window not in TICKER_WINDOWS:
        raise InvalidStreamError(
            f"unknown ticker window {window!r}; valid: {' '.join(TICKER_WINDOWS)}")
    return f"!ticker_{window}@arr" if symbol is None else f"{_sym(symbol)}@ticker_{window}"


def avg_price(symbol: str) -> str:
    """``<symbol>@avgPrice``: the exchange's average price, every second."""
    return f"{_sym(symbol)}@avgPrice"


def reference_price(symbol: str) -> str:
    """``<symbol>@referencePrice``: the reference price, every second."""
    return f"{_sym(symbol)}@referencePrice"


# -- checks ----------------------------------------------------------------------------------------

def _check_interval(interval: object, market: Market) -> str:
    if not isinstance(interval, str) or interval not in KLINE_INTERVALS_MS:
        valid = " ".join(KLINE_INTERVALS_MS)
        hint = ""
        if isinstance(interval, str) and interval.lower() in KLINE_INTERVALS_MS and interval != "1M":
            hint = f" (did you mean {interval.lower()!r}? only the month is '1M')"
        raise InvalidStreamError(f"unknown kline interval {interval!r}{hint}; valid: {valid}")
    if interval == "1s" and not market.has_1s_klines:
        raise InvalidStreamError(f"the 1s kline interval exists on spot only, not on {market.name}")
    return interval


def _check_levels(levels: object) -> int:
    try:
        n = int(levels)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):  # not a number, or inf/nan
        n = -1
    if n not in DEPTH_LEVELS or isinstance(levels, bool):
        raise InvalidStreamError(
            f"depth level {levels!r} is not one of {', '.join(map(str, DEPTH_LEVELS))}"
            " (or None for the diff stream)")
    return n


def _check_speed(speed_ms: int | None, market: Market) -> int:
    futures = market.sequence_rule == "futures"
    default = _FUTURES_DEPTH_DEFAULT_MS if futures else _SPOT_DEPTH_DEFAULT_MS
    speeds = _FUTURES_DEPTH_SPEEDS_MS if futures else _SPOT_DEPTH_SPEEDS_MS
    if speed_ms is None:
        return default
    if speed_ms not in speeds or isinstance(speed_ms, bool):
        raise InvalidStreamError(
            f"depth update speed {speed_ms!r} ms is not one of {', '.join(map(str, speeds))} ms on "
            f"{market.name} (None means the default, {default} ms)")
    return int(speed_ms)


# -- parsing and validation ------------------------------------------------------------------------

def is_user_stream(name: str) -> bool:
    """Whether ``name`` is a user data stream (a bare listen key), not a market stream."""
    if not isinstance(name, str):
        return False
    return "@" not in name and not name.startswith("!") and bool(_LISTEN_KEY_RE.match(name))


_KINDS_BY_LOWER: Final[dict[str, str]] = {
    k.lower(): k for k in (*_SIMPLE_KINDS, *_FUTURES_SIMPLE_KINDS, "depth", "kline", "continuousKline")
}


def parse_stream(name: str, market: Market = SPOT) -> StreamInfo:
    """Parse a stream name into a :class:`StreamInfo`.

    Raises :class:`InvalidStreamError`, naming the fix, for anything Binance would refuse on ``market``:
    uppercase symbols, unknown types, kline intervals, depth levels or speeds, retired streams.
    A bare listen key parses as kind "userData".
    """
    if not isinstance(name, str) or not name:
        raise InvalidStreamError(
            f"stream name must be a non-empty string such as 'bnbbtc@trade', got {name!r}")
    futures = market.sequence_rule == "futures"
    if name.startswith("!"):
        return _parse_all_market(name, market, futures)
    if "@" not in name:
        if is_user_stream(name):
            return StreamInfo(name=name, kind="userData")
        raise InvalidStreamError(
            f"stream name {name!r} has no '@<type>'; market streams look like 'bnbbtc@trade'")
    sym_part, _, rest = name.partition("@")
    if not sym_part:
        raise InvalidStreamError(f"stream name {name!r} has no symbol before '@'")
    symbol = validate_symbol(sym_part)
    if sym_part != sym_part.lower():
        fixed = f"{sym_part.lower()}@{rest}"
        raise InvalidStreamError(f"stream names use lowercase symbols: did you mean {fixed!r}?")
    kind, _, suffix = rest.partition("@")
    if kind in _SIMPLE_KINDS or (futures and kind in _FUTURES_SIMPLE_KINDS):
        if kind == "markPrice" and suffix == "1s":
            return StreamInfo(name=name, kind=kind, symbol=symbol, speed_ms=1000)
        if suffix:
            raise InvalidStreamError(f"stream {name!r}: {kind!r} takes no '@{suffix}' suffix")
        if futures and kind in ("blockTrade", "referencePrice", "avgPrice"):
            raise InvalidStreamError(f"stream {name!r}: {kind!r} is a spot stream, not on {market.name}")
        return StreamInfo(name=name, kind=kind, symbol=symbol)
    if kind.startswith("kline_"):
        return _parse_kline(name, symbol, kind[len("kline_"):], suffix, market)
    if kind.startswith("ticker_"):
        window = kind[len("ticker_"):]
        if window not in TICKER_WINDOWS or suffix:
            raise InvalidStreamError(
                f"stream {name!r}: unknown ticker window {window!r}; valid: {' '.join(TICKER_WINDOWS)}")
        return StreamInfo(name=name, kind="rollingTicker", symbol=symbol, window=window)
    if kind.startswith("depth"):
        return _parse_depth(name, symbol, kind[len("depth"):], suffix, market)
    guess = _KINDS_BY_LOWER.get(kind.lower())
    if guess is not None and guess != kind:
        raise InvalidStreamError(
            f"unknown stream type {kind!r} in {name!r}: did you mean {f'{sym_part}@{guess}'!r}?")
    valid = " ".join([*_SIMPLE_KINDS, *(_FUTURES_SIMPLE_KINDS if futures else ()),
                      "kline_<interval>", "ticker_<window>", "depth", "depth<5|10|20>"])
    raise InvalidStreamError(f"unknown stream type {kind!r} in {name!r}; valid: {valid}")


def _parse_kline(name: str, symbol: str, interval: str, suffix: str, market: Market) -> StreamInfo:
    try:
        _check_interval(interval, market)
    except InvalidStreamError as exc:
        raise InvalidStreamError(f"stream {name!r}: {exc}") from None
    utc8 = False
    if suffix:
        if "@" + suffix != UTC8_SUFFIX or market.sequence_rule == "futures":
            raise InvalidStreamError(
                f"stream {name!r}: the only kline suffix is {UTC8_SUFFIX!r} (UTC+8 bars, spot only)")
        utc8 = True
    return StreamInfo(name=name, kind="kline", symbol=symbol, interval=interval, utc8=utc8)


def _parse_depth(name: str, symbol: str, level_part: str, suffix: str, market: Market) -> StreamInfo:
    levels: int | None = None
    if level_part:
        if not level_part.isdigit():
            raise InvalidStreamError(f"unknown stream type 'depth{level_part}' in {name!r}; use 'depth' "
                                     f"or 'depth<5|10|20>'")
        levels = _check_levels(int(level_part))
    speed: int | None = None
    if suffix:
        match = re.fullmatch(r"(\d+)ms", suffix)
        if match is None:
            raise InvalidStreamError(f"stream {name!r}: depth speed suffix must look like '@100ms'")
        speed = int(match.group(1))
    try:
        speed_ms = _check_speed(speed, market)
    except InvalidStreamError as exc:
        raise InvalidStreamError(f"stream {name!r}: {exc}") from None
    default = _FUTURES_DEPTH_DEFAULT_MS if market.sequence_rule == "futures" else _SPOT_DEPTH_DEFAULT_MS
    if speed == default:
        # Names carry no suffix for the default speed (PROTOCOL 4.11, 4.12, 8): '@1000ms' is not a
        # stream Binance lists.
        raise InvalidStreamError(f"stream {name!r}: drop '@{suffix}', {default} ms is the default speed")
    return StreamInfo(name=name, kind="depth" if levels is None else "depthN", symbol=symbol,
                      levels=levels, speed_ms=speed_ms)


def _parse_all_market(name: str, market: Market, futures: bool) -> StreamInfo:
    if futures and name in _FUTURES_ALL_MARKET:
        return StreamInfo(name=name, kind=_FUTURES_ALL_MARKET[name][0])
    if name in RETIRED_STREAMS:
        raise InvalidStreamError(f"{name!r} {RETIRED_STREAMS[name]}")
    if name == "!miniTicker@arr":
        return StreamInfo(name=name, kind="miniTickerArr")
    match = re.fullmatch(r"!ticker_([0-9a-z]+)@arr", name)
    if match is not None:
        window = match.group(1)
        if window not in TICKER_WINDOWS:
            raise InvalidStreamError(
                f"stream {name!r}: unknown ticker window {window!r}; valid: {' '.join(TICKER_WINDOWS)}")
        return StreamInfo(name=name, kind="rollingTickerArr", window=window)
    raise InvalidStreamError(
        f"unknown all-market stream {name!r}; valid: !miniTicker@arr, !ticker_<1h|4h|1d>@arr")


def validate_stream(name: str, market: Market = SPOT, *, allow_user: bool = False) -> str:
    """Return ``name`` unchanged if ``market`` serves it; raise :class:`InvalidStreamError` naming the fix.

    A user data stream (a bare listen key) is refused unless ``allow_user``: it is not a market stream
    and cannot share a multiplex socket's market subscriptions.
    """
    info = parse_stream(name, market)
    if info.kind == "userData" and not allow_user:
        raise InvalidStreamError(
            "a user data stream (listen key) is not a market stream: use start_user_socket for it, "
            "not a multiplex list")
    return name


def stream_list(names: str | Iterable[str]) -> list[str]:
    """``names`` (one stream name, or an iterable of them) as a list of strings, in order.

    Only the shape is checked here (each name is validated by :func:`validate_stream`): raises
    :class:`InvalidStreamError` for anything but a string or an iterable of strings (``None``, a number,
    ``bytes``, a list holding one), so a caller's mistake never surfaces as a ``TypeError`` from deep
    inside the library.
    """
    if isinstance(names, str):
        return [names]
    if isinstance(names, (bytes, bytearray, memoryview)):
        raise InvalidStreamError(
            f"stream names must be str, not {type(names).__name__}: decode it first, got {names!r}")
    try:
        out = list(names)
    except TypeError:
        raise InvalidStreamError(
            f"pass a stream name or a list of them such as ['bnbbtc@trade'], got {names!r}") from None
    for name in out:
        if not isinstance(name, str):
            raise InvalidStreamError(
                f"stream names must be strings such as 'bnbbtc@trade', got {name!r} "
                f"({type(name).__name__}) in {out!r}")
    return out


def expected_cadence_s(name: str, market: Market = SPOT) -> float | None:
    """The nominal seconds between pushes on stream ``name``, for sizing a no-data watchdog.

    None means the stream is event driven (trades, book ticker, user data): silence only means nothing
    happened, so no watchdog should fire on it. Periodic streams may also skip a push when nothing
    changed (diff depth), so a watchdog should allow several cadences of silence. Raises
    :class:`InvalidStreamError` for an invalid name.
    """
    info = parse_stream(name, market)
    futures = market.sequence_rule == "futures"
    kind = info.kind
    if kind in ("depth", "depthN"):
        return None if info.speed_ms == 0 else (info.speed_ms or 0) / 1000.0
    if kind == "kline":
        if futures:
            return _FUTURES_KLINE_CADENCE_S
        return _KLINE_1S_CADENCE_S if info.interval == "1s" else _KLINE_CADENCE_S
    if kind == "markPrice" and info.speed_ms is not None:
        return info.speed_ms / 1000.0
    if futures and kind in _FUTURES_CADENCE_S:
        return _FUTURES_CADENCE_S[kind]
    if kind in _SIMPLE_KINDS:
        return _SIMPLE_KINDS[kind]
    if kind in _FUTURES_SIMPLE_KINDS:
        return _FUTURES_SIMPLE_KINDS[kind]
    if kind == "rollingTicker":
        return 1.0
    if kind == "userData":
        return None
    if futures and name in _FUTURES_ALL_MARKET:
        return _FUTURES_ALL_MARKET[name][1]
    return _ALL_MARKET_CADENCE_S


# -- kline bars ------------------------------------------------------------------------------------

def kline_bounds(interval: str, t_ms: int, utc8: bool = False) -> tuple[int, int]:
    """The open and close times (ms, close = next open - 1, PROTOCOL 4.5) of the ``interval`` bar that
    holds epoch time ``t_ms``.

    Bars are aligned to the epoch, weeks start on Monday, months follow the calendar; with ``utc8`` the
    boundaries follow the UTC+8 calendar while the returned times stay UTC epoch values. Raises
    :class:`InvalidStreamError` for an unknown interval.
    """
    _check_interval(interval, SPOT)
    shift = _UTC8_OFFSET_MS if utc8 else 0
    local = t_ms + shift
    if interval == "1M":
        tm = time.gmtime(local // 1000)
        start = calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0)) * 1000
        year, month = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
        end = calendar.timegm((year, month, 1, 0, 0, 0)) * 1000
        return start - shift, end - shift - 1
    length = KLINE_INTERVALS_MS[interval]
    # The epoch fell on a Thursday; Binance weeks open on Monday, 4 days later.
    anchor = 4 * KLINE_INTERVALS_MS["1d"] if interval == "1w" else 0
    start = (local - anchor) // length * length + anchor
    return start - shift, start - shift + length - 1
