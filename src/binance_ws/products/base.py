"""The shape of a product declaration: what differs between spot, USD-M and COIN-M, as data.

A :class:`Product` says which streams exist (:class:`Kind`: the route each lives on, its push cadence,
its payload model, which id sequence it carries), how depth is sequenced (:class:`SequenceRule`), the
REST prefix and depth weights, the connection limits and the user-data transport. ``spot.py``,
``usdm.py`` and ``coinm.py`` hold one declaration each, with the source of every fact; the stream
parser, the models' decoders, the sequence trackers, the book sync, the router and the CLI read them.
Adding a product means adding a declaration here, not branches there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

#: Where a stream is served on a product whose streams are routed by path (USD-M since 2026,
#: PROTOCOL 8): ``/public`` (book data) or ``/market`` (everything else). Unrouted products ignore it.
Route = Literal["public", "market"]
PUBLIC: Final[Route] = "public"
MARKET: Final[Route] = "market"

#: Which id sequence a stream's events carry (``binance_ws.core.sequence`` picks the tracker):
#: "t" trade ids, "a" aggregate-trade ids, "depth" the product's :class:`SequenceRule`, None for none.
Ids = Literal["t", "a", "depth"] | None

#: How user data reaches a client: over the WebSocket API (spot since 2026, PROTOCOL 6.3) or a listen
#: key on the stream host (futures, PROTOCOL 8).
UserDataTransport = Literal["ws-api", "listen-key"]


@dataclass(frozen=True, slots=True)
class SequenceRule:
    """How diff-depth events chain, and what a REST depth snapshot costs (PROTOCOL 5.1, 5.2).

    ``link`` is the key tying an event to the one before: ``"U"`` (spot: ``U == previous u + 1``) or
    ``"pu"`` (futures: ``pu == previous u``). With a snapshot at ``lastUpdateId`` = L, events with
    ``u <= L`` (``drop_at_or_below``) or ``u < L`` are dropped, and the first applied event must satisfy
    ``U <= L + first_offset <= u``. ``weights`` are (largest limit, weight) rows of ``GET /depth``;
    ``limits`` the only snapshot sizes accepted (None: any size 1..the largest weight row).
    """

    name: str
    link: Literal["U", "pu"]
    drop_at_or_below: bool
    first_offset: int
    weights: tuple[tuple[int, int], ...]
    limits: tuple[int, ...] | None = None

    @property
    def contiguous(self) -> bool:
        """Whether update ids count up by one across events (spot), rather than jump (futures)."""
        return self.link == "U"

    @property
    def id_keys(self) -> tuple[str, ...]:
        """The keys every diff event of this rule carries as integers."""
        return ("U", "u") if self.link == "U" else ("U", "u", "pu")

    @property
    def max_limit(self) -> int:
        return self.weights[-1][0]

    def validate_limit(self, limit: int) -> None:
        """Raise ``ValueError`` unless ``limit`` is a snapshot size this rule's market serves as asked."""
        if self.limits is not None:
            if limit not in self.limits:
                raise ValueError(f"{self.name} depth limit must be one of {self.limits}, not {limit}")
        elif not 1 <= limit <= self.max_limit:
            raise ValueError(f"{self.name} depth limit must be 1..{self.max_limit}, not {limit}")

    def weight(self, limit: int) -> int:
        """REST weight of one snapshot of ``limit`` levels; ``ValueError`` for a limit not served."""
        self.validate_limit(limit)
        for top, weight in self.weights:
            if limit <= top:
                return weight
        raise ValueError(f"depth limit {limit} is above {self.max_limit}")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Kind:
    """One stream kind of a product: its route, push cadence (seconds; None: event driven), the msgspec
    type of its payload, and the id sequence its events carry."""

    route: Route
    cadence_s: float | None
    model: Any
    ids: Ids = None


@dataclass(frozen=True, slots=True, eq=False)
class Product:
    """Everything a client needs to know about one Binance product, in one place.

    ``kinds`` maps each kind (``StreamInfo.kind``) to its :class:`Kind`. Stream-name grammar per kind
    family: ``symbol_kinds`` are ``<symbol>@<kind>`` with no suffix (``fast_kinds`` also take ``@1s``;
    a kind ``pair<Kind>`` in ``kinds`` is what ``<pair>@<kind>`` means, a pair being a name without
    ``_``: COIN-M ``btcusd@markPrice``); ``suffixed_kinds`` take exactly the suffix named;
    ``kline_kinds`` take ``_<interval>`` (``continuousKline`` on ``<pair>_<contractType>``);
    ``all_market`` names the ``!...`` streams with their kind and cadence; ``retired`` the ones Binance
    switched off, with what to use instead. Products compare and hash by identity (each is declared
    once), so market rows holding one stay hashable.
    """

    name: str
    kinds: Mapping[str, Kind]
    symbol_kinds: frozenset[str]
    all_market: Mapping[str, tuple[str, float | None]]
    sequence: SequenceRule
    rest_prefix: str
    #: Depth speeds (ms) the diff and partial depth streams take, and the one a name without a suffix has.
    depth_speeds_ms: tuple[int, ...]
    depth_default_ms: int
    #: kline families: kind -> push cadence; the 1s interval (spot only) pushes every second.
    kline_kinds: frozenset[str] = frozenset({"kline"})
    has_1s_klines: bool = False
    utc8_klines: bool = False
    rolling_tickers: bool = False
    fast_kinds: frozenset[str] = frozenset()
    #: ``<symbol>@<kind>@<suffix>`` kinds that exist with one suffix only (USD-M ``rpiDepth@500ms``).
    suffixed_kinds: Mapping[str, str] = field(default_factory=dict)
    contract_types: tuple[str, ...] = ()
    retired: Mapping[str, str] = field(default_factory=dict)
    #: Connection facts (PROTOCOL 2; futures 8).
    max_streams_per_connection: int = 1024
    max_incoming_per_second: float = 5.0
    server_ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    rest_weight_per_minute: int = 6000
    unsigned_ids_only: bool = False
    user_data: UserDataTransport = "ws-api"
    #: The user-data event types a routed listen-key stream asks for (``&events=``, USD-M ``/private``).
    user_events: tuple[str, ...] = ()

    def kind(self, name: str) -> Kind | None:
        return self.kinds.get(name)

    @property
    def max_depth_limit(self) -> int:
        return self.sequence.max_limit

    def __str__(self) -> str:
        return self.name
