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
from binance_ws.markets import SPOT, USDM, Market
from binance_ws.products import PRODUCTS, SPOT_PRODUCT, Product

# -- tables ----------------------------------------------------------------------------------------
# What differs per product (kinds, cadences, depth speeds, all-market and retired streams) is declared
# in binance_ws.products; what is left here is the grammar every product shares.

#: Suffix of kline streams on the UTC+8 calendar (4.5, since 2024-05-30; spot only).
UTC8_SUFFIX: Final = "@+08:00"
_UTC8_OFFSET_MS: Final = 8 * 3_600_000
#: The suffix of the faster variant of a periodic futures stream (markPrice, indexPrice: 1 s, PROTOCOL 8).
_FAST_SUFFIX: Final = "1s"
_FAST_MS: Final = 1000
#: Streams spot has retired, with what to use instead (4.7, 4.9, 4.13).
RETIRED_STREAMS: Final = SPOT_PRODUCT.retired
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
    "miniTickerArr"/"rollingTickerArr" for the all-market arrays, "userData" for a listen key, ...): a
    key of the market's ``product.kinds``, which declares its route, cadence and model.
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
    #: A continuous kline's contract type (``perpetual``, ``current_quarter``, ...); ``symbol`` is its pair.
    contract_type: str | None = None

    @property
    def params(self) -> dict[str, object]:
        """The kind's parameters as a dict (only those that are set)."""
        out: dict[str, object] = {}
        for key in ("interval", "levels", "speed_ms", "window", "contract_type"):
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


def kline(symbol: str, interval: str = "1m", utc8: bool = False, market: Market = SPOT) -> str:
    """``<symbol>@kline_<interval>`` (``@+08:00`` appended with ``utc8``); raises on an unknown interval."""
    if utc8 and not market.product.utc8_klines:
        raise InvalidStreamError(f"UTC+8 klines exist on spot only, not on {market.name}")
    return f"{_sym(symbol)}@kline_{_check_interval(interval, market)}{UTC8_SUFFIX if utc8 else ''}"


def depth(symbol: str, levels: int | str | None = None, speed_ms: int | None = None,
          market: Market = SPOT) -> str:
    """A depth stream of ``market``: the diff stream ``<symbol>@depth`` or, with ``levels`` (5, 10, 20 or
    a ``WEBSOCKET_DEPTH_*`` constant), the partial book ``<symbol>@depth<N>``; ``speed_ms`` appends
    ``@<speed>ms`` unless it is the product's default (spot 1000 ms: 100 is the other; futures 250 ms:
    0, 100, 500). Raises :class:`InvalidStreamError` otherwise."""
    name = f"{_sym(symbol)}@depth"
    if levels is not None:
        name += str(_check_levels(levels))
    speed = _check_speed(speed_ms, market)
    if speed != market.product.depth_default_ms:
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


# -- futures builders (PROTOCOL 8) ------------------------------------------------------------------

def mark_price(symbol: str, fast: bool = False) -> str:
    """``<symbol>@markPrice`` (3 s) or, with ``fast``, ``<symbol>@markPrice@1s``; on COIN-M a pair
    (``btcusd``) names every contract of the pair."""
    return f"{_sym(symbol)}@markPrice{'@1s' if fast else ''}"


def all_mark_price(fast: bool = False) -> str:
    """``!markPrice@arr`` (3 s) or ``!markPrice@arr@1s`` (USD-M)."""
    return "!markPrice@arr@1s" if fast else "!markPrice@arr"


def index_price(pair: str, fast: bool = False) -> str:
    """``<pair>@indexPrice`` (3 s) or ``<pair>@indexPrice@1s`` (COIN-M)."""
    return f"{_sym(pair)}@indexPrice{'@1s' if fast else ''}"


def continuous_kline(pair: str, contract_type: str = "perpetual", interval: str = "1m",
                     market: Market = USDM) -> str:
    """``<pair>_<contractType>@continuousKline_<interval>`` (futures); ``contract_type`` is
    ``perpetual``, ``current_quarter`` or ``next_quarter`` (any case). Checked against ``market``
    (USD-M unless given; spot has no continuous klines)."""
    name = f"{_sym(pair)}_{str(contract_type).lower()}@continuousKline_{interval}"
    parse_stream(name, market)
    return name


def force_order(symbol: str | None = None) -> str:
    """``<symbol>@forceOrder``, or ``!forceOrder@arr`` (every symbol) when ``symbol`` is None."""
    return "!forceOrder@arr" if symbol is None else f"{_sym(symbol)}@forceOrder"


def composite_index(symbol: str) -> str:
    """``<symbol>@compositeIndex`` (USD-M composite index symbols such as ``defiusdt``)."""
    return f"{_sym(symbol)}@compositeIndex"


def asset_index(asset: str | None = None) -> str:
    """``<asset>@assetIndex``, or ``!assetIndex@arr`` when ``asset`` is None (USD-M multi-assets mode)."""
    return "!assetIndex@arr" if asset is None else f"{_sym(asset)}@assetIndex"


def contract_info() -> str:
    """``!contractInfo`` (futures): listings, settlements and bracket changes."""
    return "!contractInfo"


def all_book_ticker() -> str:
    """``!bookTicker`` (futures only: spot removed it in 2022)."""
    return "!bookTicker"


def all_ticker() -> str:
    """``!ticker@arr`` (futures only: spot retired it in 2026)."""
    return "!ticker@arr"


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
    default = market.product.depth_default_ms
    speeds = market.product.depth_speeds_ms
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


def _lower_kinds(product: Product) -> dict[str, str]:
    names = (*product.symbol_kinds, *product.kline_kinds, "depth")
    return {k.lower(): k for k in names}


def _served_by(kind: str) -> list[str]:
    return [p.name for p in PRODUCTS.values() if kind in p.symbol_kinds or kind in p.kline_kinds]


def parse_stream(name: str, market: Market = SPOT) -> StreamInfo:
    """Parse a stream name into a :class:`StreamInfo`.

    Raises :class:`InvalidStreamError`, naming the fix, for anything Binance would refuse on ``market``
    (whose product declares the kinds it serves): uppercase symbols, unknown types, kline intervals,
    depth levels or speeds, retired streams. A bare listen key parses as kind "userData".
    """
    if not isinstance(name, str) or not name:
        raise InvalidStreamError(
            f"stream name must be a non-empty string such as 'bnbbtc@trade', got {name!r}")
    product = market.product
    if name.startswith("!"):
        return _parse_all_market(name, market)
    if "@" not in name:
        if is_user_stream(name):
            return StreamInfo(name=name, kind="userData")
        raise InvalidStreamError(
            f"stream name {name!r} has no '@<type>'; market streams look like 'bnbbtc@trade'")
    sym_part, _, rest = name.partition("@")
    if not sym_part:
        raise InvalidStreamError(f"stream name {name!r} has no symbol before '@'")
    kind, _, suffix = rest.partition("@")
    family, _, param = kind.partition("_")
    if family == "continuousKline" and family in product.kline_kinds:
        return _parse_continuous(name, sym_part, param, suffix, market)
    symbol = validate_symbol(sym_part)
    if sym_part != sym_part.lower():
        fixed = f"{sym_part.lower()}@{rest}"
        raise InvalidStreamError(f"stream names use lowercase symbols: did you mean {fixed!r}?")
    if kind in product.symbol_kinds:
        speed = None
        if suffix == _FAST_SUFFIX and kind in product.fast_kinds:
            speed = _FAST_MS
        elif suffix:
            raise InvalidStreamError(f"stream {name!r}: {kind!r} takes no '@{suffix}' suffix")
        pair_kind = f"pair{kind[0].upper()}{kind[1:]}"
        if pair_kind in product.kinds and "_" not in sym_part:
            kind = pair_kind  # COIN-M: a pair names every contract of the pair
        return StreamInfo(name=name, kind=kind, symbol=symbol, speed_ms=speed)
    if kind in product.suffixed_kinds:
        only = product.suffixed_kinds[kind]
        if suffix != only:
            raise InvalidStreamError(f"stream {name!r}: {kind!r} exists only as '{sym_part}@{kind}@{only}'")
        return StreamInfo(name=name, kind=kind, symbol=symbol)
    if param and family in product.kline_kinds:
        return _parse_kline(name, symbol, family, param, suffix, market)
    if family == "ticker" and param and product.rolling_tickers:
        if param not in TICKER_WINDOWS or suffix:
            raise InvalidStreamError(
                f"stream {name!r}: unknown ticker window {param!r}; valid: {' '.join(TICKER_WINDOWS)}")
        return StreamInfo(name=name, kind="rollingTicker", symbol=symbol, window=param)
    if kind.startswith("depth"):
        return _parse_depth(name, symbol, kind[len("depth"):], suffix, market)
    guess = _lower_kinds(product).get(family.lower())
    if guess is not None and guess != family:
        fixed_kind = guess + kind[len(family):]
        raise InvalidStreamError(
            f"unknown stream type {kind!r} in {name!r}: did you mean {f'{sym_part}@{fixed_kind}'!r}?")
    own = family in product.symbol_kinds or family in product.kline_kinds
    elsewhere = [] if own else [p for p in _served_by(family) if p != product.name]
    if elsewhere:
        raise InvalidStreamError(
            f"stream {name!r}: {family!r} is a {'/'.join(elsewhere)} stream, not on {market.name}")
    klines = [f"{k}_<interval>" for k in sorted(product.kline_kinds)]
    valid = " ".join([*sorted(product.symbol_kinds), *klines,
                      *(["ticker_<window>"] if product.rolling_tickers else []), "depth", "depth<5|10|20>"])
    raise InvalidStreamError(f"unknown stream type {kind!r} in {name!r}; valid: {valid}")


def _parse_kline(name: str, symbol: str, family: str, interval: str, suffix: str,
                 market: Market) -> StreamInfo:
    try:
        _check_interval(interval, market)
    except InvalidStreamError as exc:
        raise InvalidStreamError(f"stream {name!r}: {exc}") from None
    utc8 = False
    if suffix:
        if "@" + suffix != UTC8_SUFFIX or not market.product.utc8_klines or family != "kline":
            raise InvalidStreamError(
                f"stream {name!r}: the only kline suffix is {UTC8_SUFFIX!r} (UTC+8 bars, spot only)")
        utc8 = True
    return StreamInfo(name=name, kind=family, symbol=symbol, interval=interval, utc8=utc8)


def _parse_continuous(name: str, sym_part: str, interval: str, suffix: str, market: Market) -> StreamInfo:
    pair_part, _, contract = sym_part.rpartition("_")
    types = market.product.contract_types
    for ct in types:  # contract types hold '_' themselves (current_quarter)
        if sym_part.endswith("_" + ct):
            pair_part, contract = sym_part[: -len(ct) - 1], ct
            break
    else:
        raise InvalidStreamError(
            f"stream {name!r}: continuous klines are named '<pair>_<contractType>@continuousKline_<i>' "
            f"with a contract type of {', '.join(types)}")
    pair = validate_symbol(pair_part)
    if sym_part != sym_part.lower():
        fixed = name.replace(sym_part, sym_part.lower(), 1)
        raise InvalidStreamError(f"stream names use lowercase symbols: did you mean {fixed!r}?")
    info = _parse_kline(name, pair, "continuousKline", interval, suffix, market)
    return StreamInfo(name=name, kind=info.kind, symbol=pair, interval=info.interval, contract_type=contract)


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
    default = market.product.depth_default_ms
    if speed == default:
        # Names carry no suffix for the default speed (PROTOCOL 4.11, 4.12, 8): '@1000ms' is not a
        # stream Binance lists.
        raise InvalidStreamError(f"stream {name!r}: drop '@{suffix}', {default} ms is the default speed")
    return StreamInfo(name=name, kind="depth" if levels is None else "depthN", symbol=symbol,
                      levels=levels, speed_ms=speed_ms)


def _parse_all_market(name: str, market: Market) -> StreamInfo:
    product = market.product
    if name in product.all_market:
        return StreamInfo(name=name, kind=product.all_market[name][0])
    if name in product.retired:
        raise InvalidStreamError(f"{name!r} {product.retired[name]}")
    match = re.fullmatch(r"!ticker_([0-9a-z]+)@arr", name)
    if match is not None and product.rolling_tickers:
        window = match.group(1)
        if window not in TICKER_WINDOWS:
            raise InvalidStreamError(
                f"stream {name!r}: unknown ticker window {window!r}; valid: {' '.join(TICKER_WINDOWS)}")
        return StreamInfo(name=name, kind="rollingTickerArr", window=window)
    valid = [*product.all_market, *(["!ticker_<1h|4h|1d>@arr"] if product.rolling_tickers else [])]
    raise InvalidStreamError(
        f"unknown all-market stream {name!r} on {market.name}; valid: {', '.join(valid)}")


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
    kind = info.kind
    if kind in ("depth", "depthN"):
        return None if info.speed_ms == 0 else (info.speed_ms or 0) / 1000.0
    if info.speed_ms is not None:  # a fast variant (markPrice@1s, indexPrice@1s)
        return info.speed_ms / 1000.0
    if kind == "kline" and info.interval == "1s":
        return _FAST_MS / 1000.0
    if name in market.product.all_market:
        return market.product.all_market[name][1]
    declared = market.product.kind(kind)
    return None if declared is None else declared.cadence_s


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
