"""Order-book synchronisation as a pure state machine, and the snapshot scheduler all books share.

Nothing here does I/O or reads a clock. :class:`BookSync` is fed diff events, REST snapshots, bookTickers
and disconnects (with the time, epoch seconds) and returns actions for its binding to carry out
(:class:`FetchSnapshot`) or report (:class:`BookReady`, :class:`BookUpdated`, :class:`BookStale`,
:class:`BookFailed`). :class:`SnapshotScheduler` decides when each requested snapshot may be fetched so that
every book of a process shares one REST weight budget.

Sequencing follows ../shared/PROTOCOL.md section 5, by the market's ``sequence_rule`` (a
:class:`~binance_ws.products.SequenceRule`, declared per product: the data below, no branch per product):

* spot (5.1): buffer diffs from the subscription on, then fetch a snapshot (at the first event, or at
  once with ``on_resumed``); a snapshot older than the buffer is fetched again; events with
  ``u <= lastUpdateId`` are dropped; the first applied one must satisfy ``U <= lastUpdateId + 1 <= u``;
  each later one ``U == previous u + 1``, anything else is a gap.
* futures, USD-M and COIN-M (5.2): events with ``u < lastUpdateId`` are dropped; the first applied one
  must satisfy ``U <= lastUpdateId <= u``; each later one ``pu == previous u``. Ids are not contiguous.

A gap, a crossed book, a disagreement with a bookTicker at the same update id, a side that ran out of
known levels (the price moved past the snapshot's depth), an overflowing buffer or a disconnect restarts
the sync of that one symbol. Meanwhile the last good book stays readable, marked ``STALE`` with the time
and the reason; the new book is built aside and swapped in once synced.

Malformed input never raises out of the machine and never corrupts a book: a diff whose ids (``U``, ``u``,
futures ``pu``) are missing or not integers is skipped (if it mattered, the next event shows the gap); a
diff with good ids whose levels are missing or bad (:class:`~binance_ws.core.book.MalformedLevel`) was
needed for continuity, so the book resyncs (reason ``"malformed"``); a bad snapshot is fetched again with
backoff; a bad bookTicker is not checked. Each of these returns :class:`BookMalformed`, whose ``event`` is
the documented error event (:mod:`binance_ws.errors`, type ``"malformed"``).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from binance_ws import errors
from binance_ws.core.backoff import Backoff, BackoffPolicy
from binance_ws.core.book import BookState, DepthCache, OrderBook, ValueType
from binance_ws.core.budget import WeightBudget
from binance_ws.products import SEQUENCE_RULES, SequenceRule

# -- REST depth facts ---------------------------------------------------------------------------------
# The weights and accepted sizes of ``GET /depth`` are part of each product's SequenceRule
# (binance_ws.products: PROTOCOL 5.1 spot, 5.2 futures); callers may name a rule ("spot", "futures").
#: HTTP statuses meaning "slow down": 429 rate limit, 418 IP ban; both carry Retry-After (PROTOCOL 7.3).
RATE_LIMIT_STATUSES: Final = frozenset({418, 429})

# -- Policy (ours, not Binance's) ---------------------------------------------------------------------
#: Diff events buffered while a snapshot is awaited; beyond this the sync restarts (about 100 s of a busy
#: @100ms spot stream, a few seconds of a futures @0ms stream).
DEFAULT_MAX_BUFFER: Final = 1000
#: bookTickers kept waiting for the diff that brings the book to their update id. Tickers are conflated
#: and arrive several times per diff event (PROTOCOL 4.9); older ones are simply not checked.
MAX_PENDING_TICKERS: Final = 64
#: A side known only down to the snapshot's worst level resyncs when fewer levels than this remain
#: (capped at half the snapshot limit): callers mostly read the top 20.
MIN_KNOWN_LEVELS: Final = 20

# Resync reasons, as reported in BookStale.reason and counted in SyncStats.
REASON_GAP: Final = "gap"
REASON_CROSSED: Final = "crossed"
REASON_TICKER: Final = "ticker_mismatch"
REASON_OVERFLOW: Final = "buffer_overflow"
REASON_DEPTH: Final = "depth_exhausted"
REASON_DISCONNECTED: Final = "disconnected"
REASON_CLOSED: Final = "closed"
REASON_MALFORMED: Final = errors.ERR_MALFORMED

#: What reading a malformed payload can raise (missing key, wrong type, bad number); caught, never escapes.
_BAD_INPUT = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, IndexError)


def sequence_rule(rule: SequenceRule | str) -> SequenceRule:
    """``rule``, or the rule of that name (``"spot"``, ``"futures"``); ``ValueError`` for another name."""
    if isinstance(rule, SequenceRule):
        return rule
    try:
        return SEQUENCE_RULES[rule]
    except KeyError:
        raise ValueError(f"unknown sequence rule {rule!r}; known: {', '.join(SEQUENCE_RULES)}") from None


def depth_weight(rule: SequenceRule | str, limit: int) -> int:
    """REST weight of one depth snapshot of ``limit`` levels.

    Raises ``ValueError`` for a limit the market does not accept.
    """
    return sequence_rule(rule).weight(limit)


def validate_depth_limit(rule: SequenceRule | str, limit: int) -> None:
    """Raise ``ValueError`` unless ``limit`` is a snapshot size the market serves as asked."""
    sequence_rule(rule).validate_limit(limit)


# -- Actions ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FetchSnapshot:
    """Fetch ``GET <rest_prefix>/depth?symbol=<symbol>&limit=<limit>`` and feed it to ``on_snapshot``.

    ``retry`` says the previous answer was of no use (it failed, or it predates the buffered events: a
    lagging REST node); the scheduler then backs this book off instead of asking again at once.
    """

    symbol: str
    limit: int
    retry: bool = False


@dataclass(frozen=True, slots=True)
class BookReady:
    """The book became ``SYNCED`` (first time, or again after a resync) at ``update_id``."""

    symbol: str
    update_id: int


@dataclass(frozen=True, slots=True)
class BookUpdated:
    """A diff event was applied to a synced book."""

    symbol: str


@dataclass(frozen=True, slots=True)
class BookStale:
    """The book stopped being trustworthy at ``since`` (epoch s) for ``reason``; a resync is under way."""

    symbol: str
    reason: str
    since: float


@dataclass(frozen=True, slots=True)
class BookFailed:
    """The sync gave up for ``reason``; no further actions come from this book."""

    symbol: str
    reason: str


@dataclass(frozen=True, slots=True)
class BookMalformed:
    """A payload of this book was refused. ``event`` is the error event to report, in the documented shape:
    ``{'e': 'error', 'type': 'malformed', 'm': 'Malformed frame skipped', 'symbol': s, 'source': 'diff' |
    'snapshot' | 'bookTicker', 'detail': <what was wrong, naming the bad key or level>, 'resync': bool}``.
    Other actions returned with it say what the book does about it (:class:`BookStale`, a new
    :class:`FetchSnapshot`)."""

    symbol: str
    event: dict[str, Any]


Action = FetchSnapshot | BookReady | BookUpdated | BookStale | BookFailed | BookMalformed


@dataclass(slots=True)
class SyncStats:
    """Counters of one book's sync, for metrics and tests."""

    applied: int = 0
    dropped: int = 0
    snapshots_requested: int = 0
    snapshots_too_old: int = 0
    snapshot_errors: int = 0
    resyncs: int = 0
    gaps: int = 0
    crossed: int = 0
    depth_exhausted: int = 0
    ticker_checks: int = 0
    ticker_mismatches: int = 0
    overflows: int = 0
    disconnects: int = 0
    malformed: int = 0


# Internal phases (the public BookState is derived from them and from whether a good book exists).
_WAIT = 0  # nothing buffered: the next diff starts the buffer and asks for a snapshot
_FETCH = 1  # buffering, a snapshot is wanted
_LIVE = 2  # synced: every diff is applied as it comes
_DONE = 3  # failed or closed

# _step results
_APPLIED = 0
_DROPPED = 1
_GAP = 2

_NONE: tuple[Action, ...] = ()


class BookSync:
    """The sync state machine of one symbol's book (PROTOCOL 5.1 / 5.2).

    ``rule`` is the market's ``sequence_rule``; ``limit`` the snapshot size (validated against the
    market, ``ValueError`` otherwise); ``max_depth``, if given, keeps only that many best levels per side;
    ``max_buffer`` bounds the events held while a snapshot is awaited. A side the snapshot did not cover
    in full resyncs once fewer than ``min_levels`` known levels remain (:data:`MIN_KNOWN_LEVELS`, at most
    half the limit); ``check_tickers`` turns the bookTicker cross-check on.
    ``cache`` is the :class:`DepthCache` callers read; it is the same object for the whole life of the sync.
    Events are the decoded ``depthUpdate`` payloads (``U``, ``u``, ``pu`` on futures, ``b``, ``a``, ``E``),
    snapshots the decoded REST bodies, tickers the decoded ``bookTicker`` payloads.
    """

    __slots__ = ("_buffer", "_drop_equal_first", "_first_offset", "_first_pending", "_id_keys", "_inflight",
                 "_link", "_link_offset", "_phase", "_tickers", "_updated", "cache", "check_tickers", "limit",
                 "max_buffer", "max_depth", "min_levels", "rule", "stats",
                 "symbol")

    def __init__(self, symbol: str, *, rule: SequenceRule | str = "spot", limit: int = 1000,
                 max_buffer: int = DEFAULT_MAX_BUFFER, max_depth: int | None = None,
                 value_type: ValueType = "float", check_tickers: bool = True) -> None:
        rule = sequence_rule(rule)
        rule.validate_limit(limit)
        if max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        self.symbol = symbol.upper()
        self.rule = rule
        self.limit = limit
        self.max_buffer = max_buffer
        self.max_depth = max_depth
        self.min_levels = max(1, min(MIN_KNOWN_LEVELS, limit // 2))
        self.check_tickers = check_tickers
        self.cache = DepthCache(self.symbol, value_type)
        self.stats = SyncStats()
        # The rule as data (PROTOCOL 5.1 / 5.2): the key chaining events and the id it must equal past
        # the previous u, the acceptance offset of the first event, whether u == lastUpdateId is stale.
        self._link = rule.link
        self._link_offset = 1 if rule.contiguous else 0
        self._first_offset = rule.first_offset
        self._drop_equal_first = rule.drop_at_or_below
        self._id_keys = rule.id_keys
        self._buffer: deque[Mapping[str, Any]] = deque()
        self._tickers: deque[Mapping[str, Any]] = deque(maxlen=MAX_PENDING_TICKERS)
        self._phase = _WAIT
        self._inflight = False
        # After a snapshot, the next applied event must pass the acceptance test instead of the chain test.
        self._first_pending = False
        self._updated: tuple[Action, ...] = (BookUpdated(self.symbol),)

    @property
    def state(self) -> BookState:
        """The book's state (the same as ``cache.state``)."""
        return self.cache.state

    @property
    def snapshot_in_flight(self) -> bool:
        """Whether a :class:`FetchSnapshot` was issued and its answer has not been fed back yet."""
        return self._inflight

    # -- inputs ---------------------------------------------------------------------------------
    def on_diff(self, event: Mapping[str, Any], now: float) -> Sequence[Action]:
        """Feed one ``depthUpdate`` event of this symbol."""
        phase = self._phase
        if phase == _LIVE:
            try:
                result = self._step(self.cache, event)
            except _BAD_INPUT as exc:
                return self._refuse_live(event, exc, now)
            if result == _APPLIED:
                if self.max_depth is not None:
                    self.cache.trim(self.max_depth)
                reason = self._integrity_failure()
                if reason is not None:
                    return self._resync(reason, now, event)
                return self._updated
            if result == _DROPPED:
                return _NONE
            bad_ids = _bad_ids(event, self._id_keys)
            if bad_ids is not None:  # not a gap: ids that are no ids (e.g. a string U); skip it
                return self._malformed("diff", bad_ids, resync=False)
            self.stats.gaps += 1
            return self._resync(REASON_GAP, now, event)
        if phase == _DONE:
            return _NONE
        bad_ids = _bad_ids(event, self._id_keys)
        if bad_ids is not None:
            # Buffered events are judged by their ids later: one without them cannot be placed. Skipped;
            # if it mattered, the buffer shows a hole when the snapshot lands, which restarts the buffer.
            return self._malformed("diff", bad_ids, resync=False)
        buf = self._buffer
        buf.append(event)
        if len(buf) > self.max_buffer:
            # Cleanly start over from this event: the buffer stays bounded, and a snapshot already in
            # flight is still judged against the new first event when it lands.
            self.stats.overflows += 1
            buf.clear()
            buf.append(event)
        if phase == _WAIT:
            self._phase = _FETCH
            return self._request()
        return _NONE

    def on_snapshot(self, snapshot: Mapping[str, Any], now: float) -> Sequence[Action]:
        """Feed the REST depth body answering the last :class:`FetchSnapshot`."""
        self._inflight = False
        if self._phase != _FETCH:
            return _NONE  # an answer that outlived its request (disconnect, close): the next sync asks anew
        try:
            last_id: int = snapshot["lastUpdateId"]
            if last_id.__class__ is not int:
                raise TypeError(f"lastUpdateId {last_id!r} is not an integer")
            book = OrderBook(self.cache.value_type)
            book.load_snapshot(snapshot["bids"], snapshot["asks"], last_id, limit=self.limit,
                               update_time=snapshot.get("E", 0))
        except _BAD_INPUT as exc:
            # The old book (if any) is untouched: the new one was being built aside. Ask again, backing off.
            self.stats.snapshot_errors += 1
            return self._malformed("snapshot", _describe(exc), resync=True) + self._request(retry=True)
        buf = self._buffer
        # PROTOCOL 5.1 step 3 / 5.2 step 4: a snapshot that predates the buffer leaves a hole. (Spot
        # accepts lastUpdateId == U - 1: the acceptance test U <= lastUpdateId + 1 then holds exactly.)
        # With nothing buffered yet (a quiet symbol, see on_resumed) the next event takes that test.
        if buf and last_id + self._first_offset < buf[0]["U"]:
            self.stats.snapshots_too_old += 1
            return self._request(retry=True)
        self._first_pending = True
        while buf:
            event = buf[0]
            try:
                result = self._step(book, event)
            except _BAD_INPUT as exc:
                # Its ids were checked when it was buffered and it passed the sequence test, so the book
                # needs it: discard the half-built book and start again after it.
                buf.popleft()
                self.stats.resyncs += 1
                return self._malformed("diff", _describe(exc), resync=True) + self._request()
            if result == _GAP:
                # The stream itself skipped while buffering: restart the buffer at the event after the hole.
                self.stats.gaps += 1
                self.stats.resyncs += 1
                return self._request()
            buf.popleft()
        if self.max_depth is not None:
            book.trim(self.max_depth)
        if book.crossed():
            self.stats.crossed += 1
            return self._resync(REASON_CROSSED, now, None)
        cache = self.cache
        cache.adopt(book)
        cache.state = BookState.SYNCED
        cache.stale_since = None
        cache.stale_reason = None
        self._phase = _LIVE
        actions: tuple[Action, ...] = (BookReady(self.symbol, cache.update_id),)
        reason = self._pending_ticker_failure()
        if reason is not None:
            return actions + self._resync(reason, now, None)
        return actions

    def on_snapshot_error(self, now: float, reason: str = "snapshot failed", *,
                          fatal: bool = False) -> Sequence[Action]:
        """The snapshot request failed. A fatal failure (unknown symbol) fails the book; others retry."""
        self._inflight = False
        self.stats.snapshot_errors += 1
        if fatal:
            return self._fail(reason, now)
        if self._phase == _FETCH:
            return self._request(retry=True)
        return _NONE

    def on_book_ticker(self, ticker: Mapping[str, Any], now: float) -> Sequence[Action]:
        """Feed a ``bookTicker`` of this symbol: checked against the book when their update ids meet."""
        if not self.check_tickers or self._phase == _DONE:
            return _NONE
        # Only the id is checked here (tickers come several times per diff and most are never compared);
        # prices and quantities are read when a ticker meets its book, and a bad one is then not counted
        # as a mismatch (see _ticker_agrees).
        try:
            u = ticker["u"]
        except _BAD_INPUT:
            u = None
        if u.__class__ is not int:
            return self._malformed("bookTicker", _bad_ticker(ticker) or "bad 'u'", resync=False)
        if self._phase == _LIVE:
            book_id = self.cache.update_id
            if u < book_id:
                return _NONE
            if u == book_id:
                agrees = self._ticker_agrees(ticker)
                if agrees is None:
                    return self._malformed("bookTicker", _bad_ticker(ticker) or "unreadable", resync=False)
                if agrees:
                    return _NONE
                return self._resync(REASON_TICKER, now, None)
        self._tickers.append(ticker)
        return _NONE

    def on_disconnect(self, now: float) -> Sequence[Action]:
        """The connection carrying this symbol's diffs dropped: events were lost, so the book must resync."""
        if self._phase == _DONE:
            return _NONE
        self.stats.disconnects += 1
        return self._resync(REASON_DISCONNECTED, now, None)

    def on_resumed(self, now: float) -> Sequence[Action]:
        """The symbol's diff stream is subscribed (at start, or again after a disconnect): buffering has
        begun, so the snapshot may be asked for now instead of at the symbol's next event, which on a
        quiet symbol can be minutes away. Continuity is still proven by the first event applied after the
        snapshot (the acceptance test); until an event comes, the book is the snapshot, which is right."""
        if self._phase != _WAIT:
            return _NONE
        self._phase = _FETCH
        return self._request()

    def close(self, now: float) -> Sequence[Action]:
        """Stop: the book stays readable and is marked ``FAILED``."""
        if self._phase == _DONE:
            return _NONE
        return self._fail(REASON_CLOSED, now)

    # -- internals ------------------------------------------------------------------------------
    def _refuse_live(self, event: Any, exc: BaseException, now: float) -> tuple[Action, ...]:
        """A live diff that could not be read. Without usable ids it cannot be placed: skip it (a needed
        one shows as a gap at the next event). With them it passed the sequence test and failed in its
        levels, possibly half applied: the book is no longer right, so resync with a fresh snapshot."""
        bad_ids = _bad_ids(event, self._id_keys)
        if bad_ids is not None:
            return self._malformed("diff", bad_ids, resync=False)
        note = self._malformed("diff", _describe(exc), resync=True)
        return (*note, *self._resync(REASON_MALFORMED, now, None), *self.on_resumed(now))

    def _malformed(self, source: str, detail: str, *, resync: bool) -> tuple[Action, ...]:
        self.stats.malformed += 1
        event = errors.error_event(errors.ERR_MALFORMED, errors.MSG_MALFORMED, symbol=self.symbol,
                                   source=source, detail=detail, resync=resync)
        return (BookMalformed(self.symbol, event),)

    def _step(self, book: OrderBook, event: Mapping[str, Any]) -> int:
        """Apply ``event`` to ``book`` if the sequence rule allows; say what happened. Raises one of
        ``_BAD_INPUT`` on a malformed event (the callers turn that into :class:`BookMalformed`)."""
        u: int = event["u"]
        if u.__class__ is not int:
            raise TypeError(f"diff 'u' is {u!r}, not an integer")
        book_id = book.update_id
        if self._first_pending:
            if u < book_id or (u == book_id and self._drop_equal_first):
                self.stats.dropped += 1
                return _DROPPED
            if event["U"] > book_id + self._first_offset:
                return _GAP
            self._first_pending = False
        else:
            if u <= book_id:  # a duplicate of an applied event
                self.stats.dropped += 1
                return _DROPPED
            if event[self._link] != book_id + self._link_offset:
                return _GAP
        book.apply(event["b"], event["a"])
        book.update_id = u
        book.update_time = event.get("E", book.update_time)
        self.stats.applied += 1
        return _APPLIED

    def _integrity_failure(self) -> str | None:
        """The reason the just-updated live book cannot be right, or None."""
        cache = self.cache
        if cache.crossed():
            self.stats.crossed += 1
            return REASON_CROSSED
        if cache.thin(self.min_levels):
            self.stats.depth_exhausted += 1
            return REASON_DEPTH
        if self._tickers:
            return self._pending_ticker_failure()
        return None

    def _pending_ticker_failure(self) -> str | None:
        """Check the waiting bookTicker at the book's update id, if one came; drop older ones."""
        tickers = self._tickers
        book_id = self.cache.update_id
        while tickers and tickers[0]["u"] < book_id:
            tickers.popleft()
        if tickers and tickers[0]["u"] == book_id:
            agrees = self._ticker_agrees(tickers.popleft())
            if agrees is None:
                self.stats.malformed += 1  # a malformed waiting ticker: counted, not checked
            elif not agrees:
                return REASON_TICKER
        return None

    def _ticker_agrees(self, ticker: Mapping[str, Any]) -> bool | None:
        """Whether the book's best levels are the ticker's; None if the ticker cannot be read."""
        cache = self.cache
        try:
            if _level_is(cache.best_bid(), ticker["b"], ticker["B"]) and \
                    _level_is(cache.best_ask(), ticker["a"], ticker["A"]):
                self.stats.ticker_checks += 1
                return True
        except _BAD_INPUT:
            return None
        if _bad_ticker(ticker) is not None:  # NaN compares unequal to everything: not a real mismatch
            return None
        self.stats.ticker_checks += 1
        self.stats.ticker_mismatches += 1
        return False

    def _request(self, *, retry: bool = False) -> tuple[Action, ...]:
        if self._inflight:
            return _NONE
        self._inflight = True
        self.stats.snapshots_requested += 1
        return (FetchSnapshot(self.symbol, self.limit, retry),)

    def _resync(self, reason: str, now: float, first: Mapping[str, Any] | None) -> tuple[Action, ...]:
        """Throw the live sync away; buffer from ``first`` (the event that showed the problem) if given."""
        self.stats.resyncs += 1
        self._tickers.clear()
        self._buffer.clear()
        cache = self.cache
        actions: tuple[Action, ...] = _NONE
        if cache.state == BookState.SYNCED:
            cache.state = BookState.STALE
            cache.stale_since = now
            cache.stale_reason = reason
            actions = (BookStale(self.symbol, reason, now),)
        if first is None:
            self._phase = _WAIT
            return actions
        self._buffer.append(first)
        self._phase = _FETCH
        return actions + self._request()

    def _fail(self, reason: str, now: float) -> tuple[Action, ...]:
        self._phase = _DONE
        self._buffer.clear()
        self._tickers.clear()
        cache = self.cache
        if cache.state == BookState.SYNCED:
            cache.stale_since = now
        cache.state = BookState.FAILED
        cache.stale_reason = reason
        return (BookFailed(self.symbol, reason),)


def _bad_ids(event: Any, keys: tuple[str, ...]) -> str | None:
    """What is wrong with a diff's update ids, or None if ``keys`` (``U``, ``u``, futures ``pu``) are
    integers."""
    if not isinstance(event, Mapping):
        return f"a diff must be an object, not {type(event).__name__}"
    for key in keys:
        if key not in event:
            return f"diff without {key!r}"
        value = event[key]
        if value.__class__ is not int:
            return f"diff {key!r} is {value!r}, not an integer"
    return None


def _bad_ticker(ticker: Any) -> str | None:
    """What is wrong with a bookTicker the cross-check reads, or None."""
    try:
        u = ticker["u"]
        if u.__class__ is not int:
            return f"bookTicker 'u' is {u!r}, not an integer"
        for key in ("b", "B", "a", "A"):
            if not 0.0 <= float(ticker[key]) < _INF:
                return f"bookTicker {key!r} is {ticker[key]!r}, not a finite number of at least 0"
    except KeyError as exc:
        return f"bookTicker without {exc.args[0]!r}"
    except _BAD_INPUT as exc:
        return f"bookTicker: {_describe(exc)}"
    return None


def _describe(exc: BaseException) -> str:
    """A malformed-input exception as the ``detail`` of an error event."""
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}" if exc.args else "missing key"
    return str(exc) or type(exc).__name__


_INF: Final = float("inf")


def _level_is(level: tuple[Any, Any] | None, price: str, qty: str) -> bool:
    """Whether a book level equals a bookTicker's price and quantity (an empty side shows as qty 0)."""
    if level is None:
        return float(qty) == 0.0
    return float(level[0]) == float(price) and float(level[1]) == float(qty)


# -- Snapshot scheduling ------------------------------------------------------------------------------
#: Share of the REST weight limit snapshots may use: the rest is left to whatever else the process (or
#: another process on the same IP) sends.
DEFAULT_WEIGHT_SHARE: Final = 0.8
#: Snapshots in flight at once: enough to start hundreds of books in seconds, few enough that a slow REST
#: server is not flooded.
DEFAULT_MAX_CONCURRENCY: Final = 8
#: Per-symbol retry schedule after a snapshot answer of no use (failed, or older than the buffered events):
#: the reconnect schedule's shape, never giving up (a book is only useful once it has a snapshot).
SNAPSHOT_BACKOFF: Final = BackoffPolicy(max_retries=None)


class SnapshotScheduler:
    """When each requested depth snapshot may be fetched: one REST weight budget for every book.

    ``weight_limit`` per ``window_s`` is the exchange's limit (``Market.rest_weight_per_minute`` per 60 s);
    snapshots spend at most ``share`` of it within any window of that length (a
    :class:`~binance_ws.core.budget.WeightBudget`), which keeps them under the limit whether the exchange
    counts in sliding or calendar windows. At most ``max_concurrency`` are in flight. A 429/418 pauses every
    fetch for its ``Retry-After`` (a whole window when absent). A request marked ``retry`` (the book's last
    answer failed or was too old) waits for its own backoff, growing until :meth:`succeeded`, so one failing
    book neither spins nor eats the budget of the others. Pure: the binding calls :meth:`submit` for each
    :class:`FetchSnapshot`, starts what :meth:`ready` returns, reports each end with :meth:`finish` and each
    book that synced with :meth:`succeeded`, and sleeps until :meth:`next_wakeup` or the next finish.
    Raises ``ValueError`` for a share outside (0, 1] or a concurrency below 1.
    """

    def __init__(self, *, weight_limit: int = 6000, window_s: float = 60.0,
                 share: float = DEFAULT_WEIGHT_SHARE, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                 backoff: BackoffPolicy = SNAPSHOT_BACKOFF, rng: random.Random | None = None) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.budget = WeightBudget(max(1, int(weight_limit * share)), window_s)
        self.max_concurrency = max_concurrency
        self._policy = backoff
        self._rng = rng or random.Random()
        self._queue: dict[str, int] = {}  # symbol -> weight, in request order
        self._in_flight: dict[str, int] = {}
        self._backoffs: dict[str, Backoff] = {}
        self._not_before: dict[str, float] = {}
        self._budget_free_at = 0.0
        #: Answers seen: 429s and 418s (should stay 0), and other failures.
        self.rate_limited = 0
        self.failed = 0

    def submit(self, symbol: str, weight: int, now: float, *, retry: bool = False) -> None:
        """Ask for a snapshot of ``symbol`` costing ``weight``; a symbol queued or in flight is not doubled.
        With ``retry`` it waits for the symbol's next backoff delay first.

        Raises ``ValueError`` for a weight the budget could never grant.
        """
        if weight > self.budget.limit:
            raise ValueError(f"a snapshot of weight {weight} can never fit a budget of {self.budget.limit}")
        if symbol in self._queue or symbol in self._in_flight:
            return
        self._queue[symbol] = weight
        if retry:
            backoff = self._backoffs.get(symbol)
            if backoff is None:
                backoff = self._backoffs[symbol] = Backoff(self._policy, self._rng)
            self._not_before[symbol] = now + (backoff.next_delay() or 0.0)

    def succeeded(self, symbol: str) -> None:
        """``symbol``'s book synced: its next request, whenever it comes, goes without backoff."""
        self._backoffs.pop(symbol, None)
        self._not_before.pop(symbol, None)

    def cancel(self, symbol: str) -> None:
        """Forget a queued request and the symbol's backoff (a book that was closed)."""
        self._queue.pop(symbol, None)
        self.succeeded(symbol)

    def ready(self, now: float) -> list[str]:
        """Symbols whose snapshot may start now; they count as in flight and their weight is spent."""
        started: list[str] = []
        for symbol, weight in list(self._queue.items()):
            if len(self._in_flight) >= self.max_concurrency:
                break
            if self._not_before.get(symbol, 0.0) > now:
                continue
            wait = self.budget.spend(now, weight)
            if wait > 0.0:
                # First come, first served: nobody overtakes the head of the queue on budget.
                self._budget_free_at = now + wait
                break
            del self._queue[symbol]
            self._in_flight[symbol] = weight
            started.append(symbol)
        return started

    def finish(self, symbol: str, now: float, *, status: int = 200, retry_after: float | None = None) -> None:
        """Report how a started fetch ended: HTTP ``status`` (0 for no answer at all) and the response's
        ``Retry-After`` seconds if it had one."""
        self._in_flight.pop(symbol, None)
        if status in RATE_LIMIT_STATUSES:
            self.rate_limited += 1
            self.budget.block_until(now + (retry_after if retry_after is not None else self.budget.window_s))
        elif not 200 <= status < 300:
            self.failed += 1

    def next_wakeup(self, now: float) -> float | None:
        """The earliest time :meth:`ready` may start something, or None if only a :meth:`finish` (or a
        :meth:`submit`) can change that."""
        if not self._queue or len(self._in_flight) >= self.max_concurrency:
            return None
        soonest = min(self._not_before.get(s, 0.0) for s in self._queue)
        return max(now, soonest, self._budget_free_at, self.budget.blocked_until())

    def spent(self, now: float) -> int:
        """Weight spent within the window ending at ``now``."""
        return self.budget.used(now)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)
