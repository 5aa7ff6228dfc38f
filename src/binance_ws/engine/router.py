"""The hot path after the socket: find a frame's stream cheaply, decode once, check sequence, fan out.

Every connection is a combined one (``/stream?streams=...``), so each data frame reads
``{"stream":"<name>","data":<payload>}`` with ``stream`` first (PROTOCOL.md 1.2). :func:`split_combined`
finds the name and the payload slice without parsing JSON; the connection looks the name up in its
table and hands the payload bytes to the stream's :class:`Route`, which decodes them at most once per
decoder whatever the number of subscribers.

:class:`Handover` joins two connections carrying the same stream during a rotation (make-before-break):
it delivers from the old one until the new one provably overlaps it, then switches, so nothing is lost
or delivered twice, for every stream kind: frames are compared by their ids where the stream has them
(trade, aggTrade, diff depth), by their bytes elsewhere (event times differ between two messages).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, Final, Protocol

import msgspec
import orjson

from binance_ws import errors
from binance_ws.core.sequence import (
    DUPLICATE,
    OK,
    SequenceTracker,
    Verdict,
)
from binance_ws.engine.delivery import Decoder, RawMessage, Subscription, log
from binance_ws.models import codec_of

#: The start of every combined frame (PROTOCOL.md 1.2: ``stream`` is always the first key) and what
#: follows the stream name. Stream names hold no quotes, so the first separator ends the name.
COMBINED_PREFIX: Final = b'{"stream":"'
DATA_SEPARATOR: Final = b'","data":'

#: A route's entry point: called with the payload bytes of one frame.
Feed = Callable[[bytes], None]

#: The whole-frame decoding of a route whose one subscriber wants dicts: the decoded frame is the
#: ``{'stream', 'data'}`` dict a wrapped subscriber gets, and its ``data`` the payload dict (see
#: :attr:`Route.whole`).
WHOLE_DICT: Final = orjson.loads


def RAW_SPLIT(frame: bytes) -> Any:
    """The :attr:`Route.whole` of a route whose one subscriber takes raw frames: not a decoding (never
    called) but the mark that the socket may split frames and call that callback itself."""
    raise TypeError("RAW_SPLIT marks raw routes; it decodes nothing")


def decoded_key(name: str) -> str:
    """``name`` as the str object orjson gives for that key when it decodes a frame.

    orjson keeps recently seen keys in a cache and hands out the same object each time, so a lookup
    with that object matches by identity instead of comparing the characters: a few dozen
    instructions saved on every lookup of the hot path. Should orjson evict the key, lookups still
    work (they compare the characters again)."""
    decoded: str = next(iter(orjson.loads(orjson.dumps({name: 0}))))
    return decoded


#: The keys of a combined frame, as orjson decodes them (see :func:`decoded_key`).
STREAM_KEY: Final = decoded_key("stream")
DATA_KEY: Final = decoded_key("data")


def route_key(stream: str) -> bytes:
    """The key a connection's table holds for ``stream``: the frame's bytes up to the separator, so that
    one ``bytes.partition`` both checks the frame's shape and yields the key (the cheapest split)."""
    return COMBINED_PREFIX + stream.encode()


def split_combined(frame: bytes) -> tuple[bytes, bytes] | None:
    """``(route key, payload bytes)`` of a combined frame, or None for anything else (control
    responses, raw-form events)."""
    head, sep, tail = frame.partition(DATA_SEPARATOR)
    if not sep or not head.startswith(COMBINED_PREFIX):
        return None
    return head, tail[:-1]


class Route:
    """One stream's subscribers and the decoding they need; :meth:`feed` is the per-frame hot path.

    Sequence tracking (gaps, resets, duplicates) runs for every stream kind with ids (trade ``t``,
    aggTrade ``a``, depth ``U/u``/``pu``) whatever its subscribers decode to: from the decoded dict, from
    the typed model's attributes, or, for raw subscribers, from the payload bytes without decoding them
    (:meth:`~binance_ws.core.sequence.SequenceTracker.read_raw`). Events reach every subscriber of the
    stream through :meth:`Subscription.push_event`, in the one documented shape.
    """

    __slots__ = ("_dict", "_raw", "_tables", "_typed", "_wrap", "feed", "gaps", "heard", "heard_at", "name",
                 "quiet", "quiet_events", "resets", "subscribers", "tracker", "watched", "whole",
                 "whole_target")

    def __init__(self, name: str, tracker: SequenceTracker | None = None, *, watched: bool = False) -> None:
        self.name = name
        #: Whether the stream's silence is watched (the manager's ``no_data_timeout``): then every frame
        #: sets ``heard`` through the feed (the connection splits frames for it), and the connection's
        #: monitor samples it, reporting a silence once (``quiet``, counted in ``quiet_events``).
        self.watched = watched
        self.heard = False
        self.heard_at: float | None = None
        self.quiet = False
        self.quiet_events = 0
        #: Gap and reset events reported on this stream (for metrics).
        self.gaps = 0
        self.resets = 0
        self.subscribers: list[Subscription] = []
        self.tracker = tracker
        self._dict: tuple[Callable[[str, Any], None], ...] = ()
        self._wrap: tuple[Callable[[str, Any], None], ...] = ()
        self._raw: tuple[Callable[[str, Any], None], ...] = ()
        self._typed: tuple[tuple[Decoder, tuple[Callable[[str, Any], None], ...]], ...] = ()
        self.feed: Feed = self._feed_general
        #: How this route can take frames without :attr:`feed`: the function that decodes a whole frame
        #: (a typed envelope decoder, or :data:`WHOLE_DICT`), :data:`RAW_SPLIT` for one raw callback, or
        #: None. A connection whose routes all share one reads frames that way (see :class:`RouteTable`)
        #: and hands them to :attr:`whole_target`: a function taking the decoded frame (typed), a
        #: :data:`DictTarget` (dicts), or a :data:`RawTarget` (raw).
        self.whole: Callable[[bytes], Any] | None = None
        self.whole_target: Any = None
        #: The connection tables holding this route, told when its decoding changes.
        self._tables: weakref.WeakSet[RouteTable] = weakref.WeakSet()
        self._rebuild()

    def add(self, sub: Subscription) -> None:
        if sub not in self.subscribers:
            self.subscribers.append(sub)
            self._rebuild()

    def remove(self, sub: Subscription) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)
            self._rebuild()

    def _rebuild(self) -> None:
        """Precompute the fan-out so that :meth:`feed` does no per-subscriber branching."""
        typed: dict[Decoder, list[Callable[[str, Any], None]]] = {}
        dict_: list[Callable[[str, Any], None]] = []
        wrap: list[Callable[[str, Any], None]] = []
        raw: list[Callable[[str, Any], None]] = []
        for sub in self.subscribers:
            if sub.decode == "raw":
                raw.append(sub.push)
            elif sub.decode == "dict":
                (wrap if sub.wrap else dict_).append(sub.push)
            elif callable(sub.decode):
                typed.setdefault(sub.decode, []).append(sub.push)
            else:  # "typed" is resolved to a decoder by the manager before a subscription exists
                raise ValueError(f"unresolved decode mode {sub.decode!r}")
        self._dict, self._wrap, self._raw = tuple(dict_), tuple(wrap), tuple(raw)
        self._typed = tuple((dec, tuple(pushes)) for dec, pushes in typed.items())
        # The common cases get a feed without the general branching: one callback (the seed API, the
        # threaded facade, the benchmarks) in any mode, or only dict subscribers.
        single = self.subscribers[0] if len(self.subscribers) == 1 else None
        self.whole = self.whole_target = None
        if single is not None and single.callback is not None:
            callback = single.callback
            if raw:
                self.feed = self._raw_callback_feed(callback)
                self.whole, self.whole_target = RAW_SPLIT, self._raw_target(callback)
            elif wrap or dict_:
                self.feed = self._wrapped_callback_feed(callback) if wrap else self._callback_feed(callback)
                tracker = self.tracker
                key = getattr(tracker, "key", None)
                target: DictTarget = (callback, tracker, key and decoded_key(key), self.admit, bool(wrap))
                self.whole, self.whole_target = WHOLE_DICT, target
            else:
                self._typed_callback_feeds(self._typed[0][0], callback)
        elif dict_ and not (wrap or raw or typed):
            self.feed = self._feed_dict
        else:
            self.feed = self._feed_general
        if self.watched:
            # Only streams whose silence was asked about pay for noticing frames: one store and a call.
            inner = self.feed

            def watched_feed(data: bytes) -> None:
                self.heard = True
                inner(data)
            self.feed = watched_feed
            self.whole = self.whole_target = None
        for table in list(self._tables):
            table.changed()

    def _callback_feed(self, callback: Callable[[Any], Any]) -> Feed:
        """A feed for a single dict callback subscriber: decode, check the sequence, call, in one frame."""
        loads = orjson.loads
        tracker = self.tracker
        check = self._check
        name = self.name

        key: str | None = getattr(tracker, "key", None)  # id streams: trade, aggTrade
        if key is not None:
            key = decoded_key(key)
        if tracker is not None and key is not None:
            # The tracker's in-order case inlined (its state stays in the tracker); anything else
            # (first event, duplicate, gap) goes through tracker.observe. Only a missing id is let
            # through unchecked (observe does the same); any other error (a payload that is not an
            # object, an id that is not a number) propagates, as it does from the general feed.
            observe = tracker.observe

            def feed(data: bytes) -> None:
                msg = loads(data)
                try:
                    n = msg[key]
                except KeyError:
                    pass
                else:
                    last = tracker.last
                    if last is not None and n == last + 1:
                        tracker.last = n
                    else:
                        verdict = observe(msg)
                        if verdict is not OK and not check(verdict):
                            return
                try:
                    callback(msg)
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)
        elif tracker is not None:
            observe = tracker.observe

            def feed(data: bytes) -> None:
                msg = loads(data)
                verdict = observe(msg)
                if verdict is not OK and not check(verdict):
                    return
                try:
                    callback(msg)
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)
        else:
            def feed(data: bytes) -> None:
                msg = loads(data)
                try:
                    callback(msg)
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)
        return feed

    def _wrapped_callback_feed(self, callback: Callable[[Any], Any]) -> Feed:
        """For a single callback that wants ``{'stream', 'data'}`` dicts (the threaded facade's multiplex
        socket), when the connection splits frames: build the dict, check, call. Connections that read
        whole frames deliver the decoded frame itself, which is that dict (:data:`DictTarget`)."""
        loads = orjson.loads
        name = self.name
        admit = self.admit
        check = self.tracker is not None

        def feed(data: bytes) -> None:
            msg = {"stream": name, "data": loads(data)}
            if check and not admit(msg):
                return
            try:
                callback(msg)
            except Exception:
                log.exception("callback %r raised on a message of %s", callback, name)
        return feed

    def admit(self, msg: dict[str, Any]) -> bool:
        """Check a ``{'stream', 'data'}`` message against the sequence: False for a duplicate (drop it),
        True otherwise, after reporting a gap."""
        tracker = self.tracker
        if tracker is None:
            return True
        verdict = tracker.observe(msg["data"])
        return verdict is OK or self._check(verdict)

    def _typed_callback_feeds(self, decoder: Decoder, callback: Callable[[Any], Any]) -> None:
        """Feeds for a single typed callback subscriber: decode with its model, check the sequence,
        call. A payload the model refuses becomes the documented malformed event for the callback (and
        is not checked: its ids are unknown). With a library decoder (see
        :func:`~binance_ws.models.codec_of`) the bytes feed calls msgspec directly, the ids are read from
        the model's attributes (an id stream's in-order case inlined), and whole frames can be taken
        (:attr:`whole`); with any other decoder the ids are read from the payload bytes before decoding."""
        name = self.name
        refused = self._refused
        codec = codec_of(decoder)
        tracker = self.tracker
        if codec is None:
            admit_raw = self.admit_raw if tracker is not None else None

            def feed(data: bytes) -> None:
                if admit_raw is not None and not admit_raw(data):
                    return
                try:
                    obj = decoder(data)
                except Exception as exc:
                    obj = refused(decoder, data, exc)
                try:
                    callback(obj)
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)
            self.feed = feed
            return
        direct, malformed = codec.direct, codec.malformed
        decode_error = msgspec.DecodeError
        attr: str | None = getattr(tracker, "attr", None)  # id streams: trade, aggTrade
        admit_typed = self.admit_typed
        if tracker is None:
            def direct_feed(data: bytes) -> None:
                try:
                    obj = direct(data)
                except decode_error as exc:
                    obj = refused(decoder, data, malformed(exc))
                try:
                    callback(obj)
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)

            def feed_whole(msg: Any) -> None:
                try:
                    callback(msg.data)
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)
        elif attr is not None:
            # The tracker's in-order case inlined, as in the dict feed; anything else (first event, a
            # duplicate, a gap, a reset, an id that is not there) goes through admit_typed.
            def direct_feed(data: bytes) -> None:
                try:
                    obj = direct(data)
                except decode_error as exc:
                    obj = refused(decoder, data, malformed(exc))
                else:
                    n = getattr(obj, attr, None)
                    last = tracker.last
                    if last is not None and n == last + 1:
                        tracker.last = n
                    elif not admit_typed(obj):
                        return
                try:
                    callback(obj)
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)

            def feed_whole(msg: Any) -> None:
                obj = msg.data
                n = getattr(obj, attr, None)
                last = tracker.last
                if last is not None and n == last + 1:
                    tracker.last = n
                elif not admit_typed(obj):
                    return
                try:
                    callback(obj)
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)
        else:
            def direct_feed(data: bytes) -> None:
                try:
                    obj = direct(data)
                except decode_error as exc:
                    obj = refused(decoder, data, malformed(exc))
                else:
                    if not admit_typed(obj):
                        return
                try:
                    callback(obj)
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)

            def feed_whole(msg: Any) -> None:
                obj = msg.data
                if not admit_typed(obj):
                    return
                try:
                    callback(obj)
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)
        self.feed, self.whole_target, self.whole = direct_feed, feed_whole, codec.envelope

    def _raw_callback_feed(self, callback: Callable[[Any], Any]) -> Feed:
        """A feed for a single raw callback subscriber: no decoding; the ids are read from the bytes
        (an id stream's in-order case inlined, as on the socket's raw reader: see :meth:`_raw_target`)."""
        name = self.name
        tracker = self.tracker
        if tracker is None:
            def feed(data: bytes) -> None:
                try:
                    callback(RawMessage(name, data))
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)
            return feed
        admit_raw = self.admit_raw
        read: Callable[[bytes], Any] | None = getattr(tracker, "read_id", None)
        if read is None:
            def feed(data: bytes) -> None:
                if not admit_raw(data):
                    return
                try:
                    callback(RawMessage(name, data))
                except Exception:
                    log.exception("callback %r raised on a message of %s", callback, name)
            return feed

        def id_feed(data: bytes) -> None:
            try:
                n = read(data).n
                # TypeError before the first event or without an id:
                in_order = n == tracker.last + 1  # type: ignore[operator]
            except Exception:
                in_order = False  # admit_raw reads it again and reports what is wrong
            if in_order:
                tracker.last = n
            elif not admit_raw(data):
                return
            try:
                callback(RawMessage(name, data))
            except Exception:
                log.exception("callback %r raised on a message of %s", callback, name)
        return id_feed

    def _raw_target(self, callback: Callable[[Any], Any]) -> RawTarget:
        """What the socket's raw reader needs for this route (see :data:`RawTarget`)."""
        tracker = self.tracker
        if tracker is None:
            return callback, self.name, None, None, None
        return callback, self.name, getattr(tracker, "read_id", None), tracker, self.admit_raw

    def admit_raw(self, data: bytes) -> bool:
        """Check raw payload bytes against the sequence: False for a duplicate (drop it), True otherwise,
        after reporting a gap or a reset. A payload whose ids cannot be read (broken JSON, an id that
        is not a number) is let through unchecked, with a warning: a raw subscriber gets the bytes as
        they came and sees what is wrong with them."""
        tracker = self.tracker
        if tracker is None:
            return True
        try:
            verdict = tracker.observe_raw(data)
        except (ValueError, TypeError) as exc:
            log.warning("%s: sequence ids unreadable (%s); payload of %d bytes delivered unchecked",
                        self.name, exc, len(data))
            return True
        return verdict is OK or self._check(verdict)

    def admit_typed(self, obj: Any) -> bool:
        """Check a typed model against the sequence: False for a duplicate, True otherwise, after
        reporting a gap or a reset."""
        tracker = self.tracker
        if tracker is None:
            return True
        verdict = tracker.observe_typed(obj)
        return verdict is OK or self._check(verdict)

    def _feed_dict(self, data: bytes) -> None:
        msg = orjson.loads(data)
        tracker = self.tracker
        if tracker is not None:
            verdict = tracker.observe(msg)
            if verdict is not OK and not self._check(verdict):
                return
        name = self.name
        for push in self._dict:
            push(name, msg)

    def _feed_general(self, data: bytes) -> None:
        name = self.name
        if self._dict or self._wrap:
            msg = orjson.loads(data)
            tracker = self.tracker
            if tracker is not None:
                verdict = tracker.observe(msg)
                if verdict is not OK and not self._check(verdict):
                    return
            for push in self._dict:
                push(name, msg)
            if self._wrap:
                wrapped = {"stream": name, "data": msg}
                for push in self._wrap:
                    push(name, wrapped)
        elif not self.admit_raw(data):  # no dict decoded: read the ids from the bytes
            return
        if self._raw:
            raw = RawMessage(name, data)
            for push in self._raw:
                push(name, raw)
        for decoder, pushes in self._typed:
            try:
                obj = decoder(data)
            except Exception as exc:
                # A payload the subscriber's model refuses is skipped for those subscribers only, and
                # they are told in the documented error shape; other decoders still get the frame.
                event = self._refused(decoder, data, exc)
                for push in pushes:
                    push(name, event)
                continue
            for push in pushes:
                push(name, obj)

    def _refused(self, decoder: Decoder, data: bytes, exc: Exception) -> dict[str, Any]:
        """Log a payload ``decoder`` refused and return the documented malformed event for its
        subscribers."""
        log.warning("%s: payload refused by %r: %s", self.name, decoder, exc)
        return errors.error_event(errors.ERR_MALFORMED, errors.MSG_MALFORMED, stream=self.name,
                                  size=len(data), detail=str(exc))

    def _check(self, verdict: Verdict) -> bool:
        """Act on a non-OK verdict: report a gap or a reset (True: deliver the message), drop a duplicate
        (False)."""
        if verdict is DUPLICATE:
            return False
        if verdict.is_reset:
            self.resets += 1
            event = errors.error_event(errors.ERR_RESET, errors.MSG_RESET, stream=self.name,
                                       last=verdict.last_seen, got=verdict.got)
            if verdict.skipped is not None:
                event["skipped"] = verdict.skipped
        else:
            self.gaps += 1
            event = errors.error_event(errors.ERR_GAP, errors.MSG_GAP, stream=self.name,
                                       first=verdict.first_missing, last=verdict.last_missing)
        self.broadcast(event)
        return True

    def broadcast(self, event: dict[str, Any]) -> None:
        """Deliver an error event to every subscriber of this stream."""
        for sub in self.subscribers:
            sub.push_event(event)


#: What a connection reading whole frames as dicts needs of a stream's route: the callback, the
#: sequence tracker and its id field (None: no tracker, or no id to check inline), the route's
#: :meth:`Route.admit` for everything but the in-order case, and whether the callback takes the
#: ``{'stream', 'data'}`` dict (the decoded frame itself) or the payload dict. A plain tuple: the socket
#: unpacks it per frame, and CPython unpacks exact tuples fastest.
DictTarget = tuple[Callable[[Any], Any], SequenceTracker | None, str | None,
                   Callable[[dict[str, Any]], bool], bool]


#: What a connection reading raw frames needs of a stream's route: the callback, the stream name, and
#: for the sequence check the tracker's id reader (id streams, whose in-order case the socket inlines),
#: the tracker, and :meth:`Route.admit_raw` for everything else (all None for a stream without ids).
RawTarget = tuple[Callable[[Any], Any], str, Callable[[bytes], Any] | None, SequenceTracker | None,
                  Callable[[bytes], bool] | None]


class WholeFrames(Protocol):
    """Where a :class:`RouteTable` says how frames are to be read (the connection's socket)."""

    def use_frames(self, whole: Callable[[bytes], Any] | None, by_name: dict[Any, Any]) -> None: ...


class RouteTable:
    """One connection's table: :func:`route_key` -> a :class:`Route`, or another object with a
    ``feed(payload_bytes)`` (a rotation's handover side, the shutdown notice). :attr:`entries` is the
    plain dict the socket's hot path reads.

    It also works out how the socket can read frames without the routes' byte feeds: when every entry
    is a :class:`Route` with the same :attr:`Route.whole` (one typed model, or dicts, plain or wrapped,
    for one callback each), it hands its :attr:`listener` that decoding and a stream name ->
    :attr:`Route.whole_target` map; frames are then decoded once, whole, and routed by their
    ``stream``: no byte split, no slice, no wrapper built. When every route has one raw callback
    (:data:`RAW_SPLIT`) the map goes from route key to a :data:`RawTarget` and the socket calls the
    callbacks from its split. Otherwise the listener gets None and frames are split by their bytes and
    fed to the entries. Entries whose class sets ``rare = True`` (the shutdown notice) do not count.

    Any change puts the listener on the byte path at once, always correct, and the recomputation runs
    once per event-loop turn (a connection subscribing 1024 streams one at a time recomputes once, not
    1024 times).
    """

    __slots__ = ("__weakref__", "_pending", "entries", "listener")

    def __init__(self) -> None:
        self.entries: dict[bytes, Any] = {}
        self.listener: WholeFrames | None = None
        self._pending = False

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def get(self, key: bytes, default: Any = None) -> Any:
        return self.entries.get(key, default)

    def __setitem__(self, key: bytes, value: Any) -> None:
        old = self.entries.get(key)
        if isinstance(old, Route) and old is not value:
            old._tables.discard(self)
        self.entries[key] = value
        if isinstance(value, Route):
            value._tables.add(self)
        self.changed()

    def pop(self, key: bytes, default: Any = None) -> Any:
        value = self.entries.pop(key, default)
        if isinstance(value, Route):
            value._tables.discard(self)
        self.changed()
        return value

    def attach(self, listener: WholeFrames) -> None:
        """Tell ``listener`` how to read frames from now on (it starts on the byte path)."""
        self.listener = listener
        self.changed()

    def changed(self) -> None:
        """An entry or a route's decoding changed: split frames by bytes until :meth:`refresh` runs."""
        listener = self.listener
        if listener is None:
            return
        listener.use_frames(None, {})
        if self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.refresh()
            return
        self._pending = True
        loop.call_soon(self.refresh)

    def refresh(self) -> None:
        """Recompute the listener's whole-frame decoding from the entries."""
        self._pending = False
        listener = self.listener
        if listener is None:
            return
        whole: Callable[[bytes], Any] | None = None
        by_name: dict[Any, Any] = {}
        for key, entry in self.entries.items():
            if not isinstance(entry, Route):
                if getattr(entry, "rare", False):
                    continue
                whole = None
                break
            if entry.whole is None or (whole is not None and entry.whole is not whole):
                whole = None
                break
            whole = entry.whole
            # Raw targets are keyed as the byte split finds them; the others by the decoded ``stream``.
            by_name[key if whole is RAW_SPLIT else key[len(COMBINED_PREFIX):].decode()] = entry.whole_target
        listener.use_frames(whole, by_name if whole is not None else {})


#: Frames remembered per side while two connections overlap (about two seconds of a busy stream). A new
#: connection further ahead than this keeps only its latest frames held: the old one still delivers the
#: older ones.
HANDOVER_WINDOW: Final = 4096


class Handover:
    """Switch one stream from an old connection to its replacement without loss or duplicates.

    Until the switch, the old connection's frames are delivered and remembered; the new connection's
    frames are held back. The new connection overlaps once one of its frames is one the old one
    delivered: from there it drops what the old one already delivered and takes over at the first
    frame the old one has not. If the old connection delivers a frame the new one is holding, the new
    one is ahead: its later held frames are delivered and it takes over. :meth:`force` ends the old
    side without proof (it died, or the stream was silent for the grace period): held frames the old
    one did not deliver are delivered, and the new side still drops frames the old one delivered until
    it passes them.

    "Is one the old one delivered" is decided by ids where the stream has them (trade, aggTrade, diff
    depth: the route's tracker reads the final id from the bytes): a frame of the new connection at or
    below the old one's last id, within the tracker's duplicate window, was delivered; one further below
    is a restarted numbering and leads at once (the route's tracker then reports the reset). That needs
    only the old side's last id, whatever the frames' bytes. Id-less streams (tickers, klines, book
    ticker) compare frames by their bytes, which identify a message there (event times differ), through
    dicts of the frames in flight: membership is O(1) a frame.
    """

    __slots__ = ("_delivered", "_forced", "_held", "_held_ids", "_last", "_last_id", "_on_switch",
                 "_overlapping", "_route", "_tracker", "switched")

    def __init__(self, route: Route, on_switch: Callable[[], None]) -> None:
        self._route = route
        self._on_switch = on_switch
        #: Set for a stream with ids: frames are compared by them (see the class docstring).
        self._tracker = route.tracker
        self._last_id: int | None = None
        self._held_ids: list[tuple[int, bytes]] = []
        self._delivered: dict[bytes, None] = {}
        self._last: bytes | None = None
        self._held: dict[bytes, None] = {}
        self._overlapping = False
        self._forced = False
        self.switched = False

    @property
    def holding(self) -> bool:
        """Whether frames of the new connection wait for the old one to catch up."""
        return bool(self._held or self._held_ids)

    def _position(self, data: bytes) -> int | None:
        """The final id of a frame of an id stream, or None if it has none (or none readable: the route
        reports that when it is fed the frame)."""
        try:
            return self._tracker.position(data)  # type: ignore[union-attr]
        except (ValueError, TypeError):
            return None

    def from_old(self, data: bytes) -> None:
        if self.switched or self._forced:
            return
        self._route.feed(data)
        if self._tracker is not None:
            self._old_id(data)
            return
        held = self._held
        if data in held:
            frames = iter(held)
            for frame in frames:
                if frame == data:
                    break
            for frame in frames:
                self._route.feed(frame)
            held.clear()
            self._switch()
            return
        delivered = self._delivered
        delivered[data] = None
        self._last = data
        if len(delivered) > HANDOVER_WINDOW:
            del delivered[next(iter(delivered))]

    def _old_id(self, data: bytes) -> None:
        n = self._position(data)
        if n is None:
            return
        self._last_id = n
        held = self._held_ids
        if held and held[0][0] <= n:
            # The new connection holds this frame or an earlier one: it is ahead. Its frames the old one
            # has not delivered follow, and it leads from here.
            is_seen = self._tracker.is_seen  # type: ignore[union-attr]
            for m, frame in held:
                if not is_seen(m, n):
                    self._route.feed(frame)
            held.clear()
            self._switch()

    def from_new(self, data: bytes) -> None:
        if self.switched:
            self._route.feed(data)
            return
        if self._tracker is not None:
            self._new_id(data)
            return
        if data in self._delivered:
            self._overlapping = True
            if data == self._last:
                self._switch()
            return
        if self._overlapping or self._forced:
            # The new connection has passed everything the old one delivered: it leads from here.
            self._route.feed(data)
            self._switch()
            return
        held = self._held
        held[data] = None
        if len(held) > HANDOVER_WINDOW:
            del held[next(iter(held))]

    def _new_id(self, data: bytes) -> None:
        n = self._position(data)
        if n is None:
            self._route.feed(data)  # nothing to compare: the route checks (and passes) it
            return
        last = self._last_id
        if last is not None and self._tracker.is_seen(n, last):  # type: ignore[union-attr]
            self._overlapping = True
            if n == last:
                self._switch()
            return
        if self._overlapping or self._forced or (last is not None and n < last):
            # Past everything the old one delivered (or numbered anew, below its window): it leads.
            self._route.feed(data)
            self._switch()
            return
        held = self._held_ids
        held.append((n, data))
        if len(held) > HANDOVER_WINDOW:
            del held[0]

    def force(self) -> None:
        """Stop taking the old connection's frames and let the new one lead (see the class docstring)."""
        if self.switched or self._forced:
            return
        self._forced = True
        ahead = False
        if self._tracker is not None:
            last = self._last_id
            held_ids, self._held_ids = self._held_ids, []
            is_seen = self._tracker.is_seen
            for n, frame in held_ids:
                if ahead or last is None or not is_seen(n, last):
                    ahead = True
                    self._route.feed(frame)
            if ahead or last is None:
                self._switch()
            return
        delivered = self._delivered
        held, self._held = self._held, {}
        for frame in held:
            if ahead or frame not in delivered:
                ahead = True
                self._route.feed(frame)
        if ahead or not delivered:
            self._switch()

    def _switch(self) -> None:
        self.switched = True
        self._delivered.clear()
        self._last = None
        self._held_ids.clear()
        self._on_switch()
